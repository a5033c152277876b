//! A bounded, seeded fuzz run over the input side, as a plain `cargo test`: the
//! shipped scenarios and the bad-input corpus, mutated a few thousand times (byte
//! flips, cuts, splices, TOML tokens, `--set` overrides), must never panic the
//! parser, the validator or the plan printer; the HTTP answers in `tests/answers/`,
//! mutated the same way, must never panic the load's answer reader. The same entry
//! points are cargo-fuzz targets in `fuzz/` for longer, coverage-guided runs.
//!
//! `SESSIONSTORM_FUZZ_CASES` sets the number of cases (default 3000) and
//! `SESSIONSTORM_FUZZ_SEED` the seed (default fixed, so a failure replays).

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::Path;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use sessionstorm::fuzz_inputs;

/// Pieces of TOML and of values a careless or hostile hand might type.
const TOKENS: &[&str] = &[
    "=",
    "\"",
    "'",
    "[",
    "]",
    "[[chaos]]",
    "[load]",
    "[service]",
    "{",
    "}",
    ",",
    ".",
    "\n",
    "#",
    "-1",
    "0",
    "1",
    "64",
    "65",
    "1e309",
    "-0.0",
    "nan",
    "inf",
    "9223372036854775807",
    "18446744073709551616",
    "\"5 parsecs\"",
    "\"0s\"",
    "\"1ns\"",
    "\"99999999999h\"",
    "\"30days\"",
    "rate",
    "users",
    "every",
    "at",
    "stages",
    "start_after",
    "schedule = \"rolling\"",
    "mean_interval",
    "target",
    "\"replica-99\"",
    "\"150%\"",
    "\"0%\"",
    "min_alive",
    "replicas",
    "duration",
    "fault",
    "\"disconnect\"",
    "\"pause\"",
    "after_kill",
    "true",
    "[\"1s\", \"2s\"]",
    "[]",
    "{ to = 0, over = \"1s\" }",
    "\u{0}",
    "\u{feff}",
    "é",
    "\r\n",
    "\"\"\"",
    "'''",
    "\\u0000",
    "model = \"open\"",
    "model = \"closed\"",
    "env = { A = \"b\" }",
];

const SETTINGS: &[&str] = &[
    "load.rate=0",
    "load.rate=1e308",
    "service.replicas=0",
    "service.replicas=64",
    "chaos.0.every=1ns",
    "chaos.1.fault=kill",
    "chaos.0.at=[\"1s\"]",
    "load=3",
    "chaos=[]",
    "service.env.DB_PASSWORD=x",
    "duration=1ms",
    "seed=-1",
    "min_alive=100",
    "a.b.c.d=1",
    "chaos.0.0=1",
    "load.stages.0.to=5",
    "load.stages=[{ to = 1, over = \"1s\" }]",
    "name=",
];

fn seeds() -> Vec<String> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut texts = Vec::new();
    for dir in ["scenarios", "tests/bad_inputs"] {
        let mut paths: Vec<_> = std::fs::read_dir(root.join(dir))
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        paths.sort();
        for path in paths {
            if let Ok(text) = std::fs::read_to_string(&path) {
                texts.push(text);
            }
        }
    }
    texts
}

fn mutate(rng: &mut StdRng, mut bytes: Vec<u8>, seeds: &[String]) -> Vec<u8> {
    for _ in 0..rng.random_range(1..=4) {
        let at = rng.random_range(0..=bytes.len());
        match rng.random_range(0..7) {
            0 if !bytes.is_empty() => {
                let i = rng.random_range(0..bytes.len());
                bytes[i] ^= 1 << rng.random_range(0..8);
            }
            1 => {
                let end = (at + rng.random_range(0..40)).min(bytes.len());
                bytes.drain(at..end);
            }
            2 | 3 => {
                let token = TOKENS[rng.random_range(0..TOKENS.len())];
                bytes.splice(at..at, token.bytes());
            }
            4 => bytes.truncate(at),
            5 => {
                // Splice a piece of another seed.
                let other = seeds[rng.random_range(0..seeds.len())].as_bytes();
                let from = rng.random_range(0..=other.len());
                let to = (from + rng.random_range(0..200)).min(other.len());
                bytes.splice(at..at, other[from..to].iter().copied());
            }
            _ => {
                // Duplicate a line: duplicate keys and tables.
                let text = String::from_utf8_lossy(&bytes).into_owned();
                let lines: Vec<&str> = text.lines().collect();
                if !lines.is_empty() {
                    let line = lines[rng.random_range(0..lines.len())];
                    bytes.splice(at..at, format!("\n{line}\n").into_bytes());
                }
            }
        }
    }
    bytes
}

fn check(kind: &str, data: &[u8], run: fn(&[u8])) {
    if catch_unwind(AssertUnwindSafe(|| run(data))).is_err() {
        panic!(
            "{kind} panicked on this input:\n---\n{}\n---",
            String::from_utf8_lossy(data)
        );
    }
}

#[test]
fn mutated_scenarios_and_overrides_never_panic() {
    let cases: usize = std::env::var("SESSIONSTORM_FUZZ_CASES")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(3000);
    let seed: u64 = std::env::var("SESSIONSTORM_FUZZ_SEED")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(0x5e55_1025);
    let mut rng = StdRng::seed_from_u64(seed);
    let seeds = seeds();
    assert!(
        seeds.len() > 20,
        "the shipped scenarios and the corpus are the seeds"
    );
    // Quiet the default panic message: a caught panic is reported with its input.
    let hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {}));
    for _ in 0..cases {
        let base = seeds[rng.random_range(0..seeds.len())].clone().into_bytes();
        let mut data = mutate(&mut rng, base, &seeds);
        if rng.random_bool(0.3) {
            data.extend_from_slice(b"\n---\n");
            for _ in 0..rng.random_range(1..4) {
                data.extend_from_slice(SETTINGS[rng.random_range(0..SETTINGS.len())].as_bytes());
                data.push(b'\n');
            }
            check(
                "scenario_with_overrides",
                &data,
                fuzz_inputs::scenario_with_overrides,
            );
        } else {
            check("scenario", &data, fuzz_inputs::scenario);
        }
        let mut piece: Vec<u8> = Vec::new();
        for _ in 0..rng.random_range(1..4) {
            piece.extend_from_slice(TOKENS[rng.random_range(0..TOKENS.len())].as_bytes());
            if rng.random_bool(0.5) {
                piece.extend_from_slice(rng.random_range(0..100_000u32).to_string().as_bytes());
                piece.extend_from_slice(
                    [&b"s"[..], b"ms", b"m", b"h", b" ", b"days"][rng.random_range(0..6)],
                );
            }
        }
        check("parsers", &piece, fuzz_inputs::parsers);
    }
    std::panic::set_hook(hook);
}

/// The HTTP answers in `tests/answers/` (also the fuzz corpus of `answers`).
fn answer_seeds() -> Vec<Vec<u8>> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/answers");
    let mut seeds: Vec<Vec<u8>> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| std::fs::read(e.unwrap().path()).unwrap())
        .collect();
    seeds.sort();
    seeds
}

#[test]
fn the_answer_seeds_read_whole_and_mutated_answers_never_panic() {
    let seeds = answer_seeds();
    assert!(seeds.len() >= 4);
    for seed in &seeds {
        let answers = sessionstorm::load::wire::read_answers(seed);
        assert!(
            !answers.is_empty() && answers.iter().all(Result::is_ok),
            "{answers:?} from {}",
            String::from_utf8_lossy(seed)
        );
    }
    let texts: Vec<String> = seeds
        .iter()
        .map(|s| String::from_utf8_lossy(s).into_owned())
        .collect();
    let mut rng = StdRng::seed_from_u64(0xa115_3e25);
    let hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {}));
    for _ in 0..3000 {
        let base = seeds[rng.random_range(0..seeds.len())].clone();
        let data = mutate(&mut rng, base, &texts);
        check("answers", &data, fuzz_inputs::answers);
    }
    std::panic::set_hook(hook);
}
