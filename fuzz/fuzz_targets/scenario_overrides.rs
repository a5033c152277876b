#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    sessionstorm::fuzz_inputs::scenario_with_overrides(data);
});
