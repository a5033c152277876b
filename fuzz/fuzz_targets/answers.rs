#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    sessionstorm::fuzz_inputs::answers(data);
});
