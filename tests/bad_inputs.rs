//! Bad input, tried on purpose: every broken scenario under `tests/bad_inputs/` (and a
//! few generated ones too big or too binary to commit) must give exit 2 and a message
//! naming the problem, from `validate` and from `run`, and never a panic. `run` must
//! fail before it touches Docker: these tests point `DOCKER_HOST` at a socket that does
//! not exist, so reaching the engine would give exit 3, not 2.

use std::path::{Path, PathBuf};
use std::process::Output;

use assert_cmd::Command;

/// Each committed file and a fragment its error must contain.
const CORPUS: &[(&str, &str)] = &[
    (
        "chaos-every-1ns.toml",
        "9:9: this chaos entry would inject about",
    ),
    ("chaos-poisson-too-dense.toml", "at most 10000 per entry"),
    ("bad-name.toml", "1:8: `name` must be non-empty"),
    (
        "chaos-every-zero.toml",
        "14:9: `chaos.every` must be longer than zero",
    ),
    (
        "chaos-target-out-of-range.toml",
        "\"replica-9\" names no replica",
    ),
    ("chaos-two-schedules.toml", "more than one schedule"),
    (
        "chaos-peer-unknown.toml",
        "15:8: unknown `chaos.peer` \"database\"; accepted values: \"store\" (leave `peer` out to cut the target off from everyone)\n",
    ),
    (
        "chaos-peer-on-the-store.toml",
        "16:8: `chaos.peer` cuts replicas off from the store, and target \"store\" is no replica; accepted targets with `peer`: \"random-replica\", \"replica-<slot>\" (from 0), a share like \"25%\"\n",
    ),
    ("chaos-without-schedule.toml", "has no schedule"),
    ("deep-nesting.toml", "max recursion depth"),
    ("duplicate-key.toml", "2:1: duplicate key"),
    ("duplicate-table.toml", "3:2: duplicate key"),
    (
        "duration-as-number.toml",
        "3:12: invalid type: integer `10`, expected a string",
    ),
    ("empty.toml", "1:1: missing field `name`"),
    (
        "env-not-string.toml",
        "5:16: invalid type: integer `3`, expected a string",
    ),
    (
        "huge-duration.toml",
        "3:12: `duration` = \"99999999999999h\" is too long",
    ),
    (
        "integer-overflow.toml",
        "6:12: invalid type: integer `99999999999999999999` is out of range",
    ),
    (
        "malformed-duration.toml",
        "`duration` = \"5 parsecs\" is not a duration",
    ),
    (
        "min-alive-above-replicas.toml",
        "`min_alive` is 5; it must be between 0 and 3",
    ),
    ("missing-load.toml", "missing field `load`"),
    (
        "negative-duration.toml",
        "`duration` = \"-5s\" is not a duration",
    ),
    ("negative-replicas.toml", "`service.replicas` is -2"),
    ("negative-seed.toml", "`seed` is -1"),
    ("rate-huge.toml", "`load.rate` is 1e300"),
    ("rate-inf.toml", "`load.rate` is inf"),
    ("rate-nan.toml", "`load.rate` is NaN"),
    ("rate-negative.toml", "`load.rate` is -3"),
    (
        "rate-zero.toml",
        "9:8: `load.rate` is 0; it must be more than 0",
    ),
    (
        "unknown-fault.toml",
        "13:9: unknown fault \"meteor\"; accepted values: \"kill\", \"stop\", \"restart\", \"pause\", \"disconnect\", \"blackhole\", \"cpu\", \"loss\", \"bandwidth\", \"oom\", \"latency\", \"slow_store\", \"memory_pressure\", \"failover\", \"store_split\", \"store_lag\"\n",
    ),
    (
        "unknown-key-nested.toml",
        "11:1: unknown field `bogus`, expected one of `model`",
    ),
    ("unknown-key-top.toml", "1:1: unknown field `colour`"),
    (
        "secrets-not-a-name.toml",
        "3:12: `secrets` lists \"DATABASE URL\", which is no environment variable's name",
    ),
    (
        "flow-unknown-variable.toml",
        "18:8: `flow.steps.0.path`: unknown template variable `{{cart}}`",
    ),
    (
        "flow-bad-pointer.toml",
        "21:17: `flow.steps.1.read.list` = \"items\" is not a JSON pointer",
    ),
    (
        "flow-read-without-kind.toml",
        "15:8: `flow.steps.0.read` has no kind; a read needs exactly one of `list",
    ),
    (
        "flow-capture-before-made.toml",
        "14:8: `flow.steps.0.path`: unknown template variable `{{csrf}}`",
    ),
    (
        "flow-unknown-method.toml",
        "14:10: unknown method \"FETCH\" in `flow.steps.0.method`; accepted values: \"GET\"",
    ),
    ("unterminated-string.toml", "1:10: invalid basic string"),
    (
        "wrong-type-rate.toml",
        "9:8: invalid type: string \"fast\", expected a number",
    ),
    (
        "wrong-type-replicas.toml",
        "6:12: invalid type: string \"three\", expected an integer",
    ),
    ("zero-duration.toml", "`duration` must be longer than zero"),
    (
        "env-unknown-placeholder.toml",
        "5:25: `service.env.SESSION_STORE`: unknown placeholder {stor}; accepted placeholders: {store}, {store_port}, {store_nodes}, {replica}, {instance}",
    ),
    (
        "command-not-a-list.toml",
        "6:11: invalid type: string \"redis-server --port 7000\", expected a sequence",
    ),
    (
        "store-persistence-not-redis.toml",
        "8:15: `store.persistence` is a Redis setting",
    ),
    (
        "store-kind-unknown.toml",
        "6:8: unknown store kind \"postgres\"; accepted values: \"redis\", \"tcp\", \"none\"",
    ),
    (
        "store-port-zero.toml",
        "6:8: `store.port` is 0; it must be between 1 and 65535",
    ),
    (
        "store-none-but-placeholder.toml",
        "5:23: `service.command`: placeholder {store} cannot be used here; accepted placeholders: {replica}, {instance} (there is no store",
    ),
    (
        "store-none-with-image.toml",
        "7:9: `store.image` configures a store, but `store.kind = \"none\"`",
    ),
    (
        "balancer-kind-unknown.toml",
        "6:8: unknown balancer kind \"nginx\"; accepted values: \"haproxy\", \"direct\"",
    ),
    (
        "balancer-direct-chaos-on-balancer.toml",
        "12:10: chaos target \"balancer\": with `balancer.kind = \"direct\"` there is no balancer",
    ),
    (
        "zero-replicas.toml",
        "6:12: `service.replicas` is 0; it must be between 1 and 64",
    ),
    (
        "attach-store-not-redis.toml",
        "6:9: `attach.store` \"http://127.0.0.1:6379\": the scheme is \"http\", and the harness speaks plain Redis only; write a redis:// URL with a host and a port, e.g. redis://127.0.0.1:6379",
    ),
    (
        "attach-memory-pressure-without-store.toml",
        "10:9: fault \"memory_pressure\" acts on the stack's store, which the harness reaches only where `[attach]` names it: set `store = \"redis://HOST:PORT\"` there",
    ),
    (
        "tls-ca-file-missing.toml",
        "9:11: `load.tls.ca_file` = \"no-such-ca.pem\": cannot read",
    ),
];

fn corpus_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/bad_inputs")
}

fn sessionstorm(args: &[&str]) -> Output {
    Command::cargo_bin("sessionstorm")
        .unwrap()
        .args(args)
        .env(
            "DOCKER_HOST",
            "unix:///nonexistent/sessionstorm-test/docker.sock",
        )
        .env_remove("SESSIONSTORM_LOG")
        .timeout(std::time::Duration::from_secs(60))
        .output()
        .unwrap()
}

/// Runs `validate` and `run` on `scenario` (with `extra` arguments for `run`) and checks
/// exit 2, the expected fragment on stderr, and no panic.
fn assert_rejected(scenario: &Path, extra: &[&str], expected: &str) {
    let out_dir = tempfile::tempdir().unwrap();
    let scenario = scenario.to_str().unwrap();
    let out = out_dir.path().to_str().unwrap();
    let mut run = vec!["run", scenario, "--out", out];
    run.extend_from_slice(extra);
    // `validate` takes --set too, but not the other run flags.
    let mut commands = vec![run];
    if extra.first().is_none_or(|a| *a == "--set") {
        let mut validate = vec!["validate", scenario];
        validate.extend_from_slice(extra);
        commands.insert(0, validate);
    }
    for args in commands {
        let output = sessionstorm(&args);
        let stderr = String::from_utf8_lossy(&output.stderr);
        let stdout = String::from_utf8_lossy(&output.stdout);
        assert!(
            !stderr.contains("panicked") && !stdout.contains("panicked"),
            "{args:?} panicked:\n{stderr}"
        );
        assert_eq!(
            output.status.code(),
            Some(2),
            "{args:?} should exit 2 (invalid input)\nstdout:\n{stdout}\nstderr:\n{stderr}"
        );
        assert!(
            stderr.contains(expected),
            "{args:?}: stderr should contain {expected:?}, got:\n{stderr}"
        );
        assert!(
            stderr.len() < 4000,
            "{args:?}: a short message, got {stderr}"
        );
        // Nothing was started, not even a report folder.
        assert_eq!(
            std::fs::read_dir(out_dir.path()).unwrap().count(),
            0,
            "{args:?} wrote into --out"
        );
    }
}

#[test]
fn every_file_of_the_corpus_is_rejected_with_its_problem_named() {
    let dir = corpus_dir();
    let mut listed: Vec<&str> = CORPUS.iter().map(|(f, _)| *f).collect();
    listed.sort_unstable();
    let mut present: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    present.sort_unstable();
    assert_eq!(listed, present, "every corpus file has an expectation");
    for (file, expected) in CORPUS {
        let path = dir.join(file);
        assert_rejected(&path, &[], expected);
        // Errors name the file.
        assert_rejected(&path, &[], &format!("{}:", path.display()));
    }
}

#[test]
fn binary_garbage_is_rejected_as_not_text() {
    let dir = tempfile::tempdir().unwrap();
    // A fixed pseudo-random byte soup with invalid UTF-8 in it.
    let mut state = 0x2545_f491_4f6c_dd1du64;
    let bytes: Vec<u8> = (0..64 * 1024)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state >> 24) as u8
        })
        .chain([0xff, 0xfe, 0x00])
        .collect();
    let path = dir.path().join("garbage.toml");
    std::fs::write(&path, bytes).unwrap();
    assert_rejected(&path, &[], "not UTF-8 text");

    // Control characters that are valid UTF-8 but not TOML.
    let path = dir.path().join("controls.toml");
    std::fs::write(&path, "\u{1}\u{2}\u{7f}name\u{0} = \u{1b}[31m\n").unwrap();
    assert_rejected(&path, &[], "controls.toml:1:");
}

#[test]
fn a_ten_megabyte_file_is_rejected_quickly_with_its_place() {
    let dir = tempfile::tempdir().unwrap();
    let good =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios/smoke.toml"))
            .unwrap();
    let filler = "# padding padding padding padding padding padding padding padding\n";
    let lines = 10 * 1024 * 1024 / filler.len();
    let mut text = good.replace("[service]", "bogus_at_the_end = 1\n[service]");
    text = format!("{}{}", filler.repeat(lines), text);
    let path = dir.path().join("big.toml");
    std::fs::write(&path, &text).unwrap();
    let line = lines
        + text[filler.len() * lines..]
            .lines()
            .position(|l| l.starts_with("bogus"))
            .unwrap()
        + 1;
    let started = std::time::Instant::now();
    assert_rejected(
        &path,
        &[],
        &format!("big.toml:{line}:1: unknown field `bogus_at_the_end`"),
    );
    // Loose bound: two runs of a debug build over 10 MB, on a shared machine.
    assert!(
        started.elapsed().as_secs() < 50,
        "took {:?}",
        started.elapsed()
    );

    // 10 MB on one line, no newline: a syntax error, not a hang or a crash.
    let path = dir.path().join("one-line.toml");
    std::fs::write(&path, "x".repeat(10 * 1024 * 1024)).unwrap();
    assert_rejected(&path, &[], "one-line.toml:1:");
}

#[test]
fn files_that_cannot_be_read_are_named() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing.toml");
    assert_rejected(&missing, &[], "cannot read the scenario file");
    assert_rejected(dir.path(), &[], "cannot read the scenario file");
}

#[test]
fn bad_overrides_are_named_by_the_setting() {
    let smoke = Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios/smoke.toml");
    // An open-model scenario at a constant rate (the shipped one ramps).
    let dir = tempfile::tempdir().unwrap();
    let open = dir.path().join("open.toml");
    std::fs::write(
        &open,
        "name = \"open\"\nduration = \"10s\"\n[service]\nreplicas = 3\n[load]\nrate = 10\nappends_per_session = 1\n",
    )
    .unwrap();
    let cases: &[(&Path, &[&str], &str)] = &[
        (
            &open,
            &["--set", "load.rate=0"],
            "--set load.rate=0: `load.rate` is 0",
        ),
        (&open, &["--rate", "0"], "--rate 0: `load.rate` is 0"),
        (
            &open,
            &["--tls-ca", "/nonexistent/ca.pem"],
            "--tls-ca /nonexistent/ca.pem: `load.tls.ca_file` = \"/nonexistent/ca.pem\": cannot read /nonexistent/ca.pem",
        ),
        (
            &smoke,
            &["--replicas", "0"],
            "--replicas 0: `service.replicas` is 0",
        ),
        (
            &smoke,
            &["--replicas=-1"],
            "invalid value '-1' for '--replicas",
        ),
        (
            &smoke,
            &["--rate", "fast"],
            "invalid value 'fast' for '--rate",
        ),
        (
            &smoke,
            &["--set", "service.replicas=three"],
            "--set service.replicas=three: invalid type: string \"three\", expected an integer",
        ),
        (
            &smoke,
            &["--set", "load.bogus=1"],
            "--set load.bogus=1: unknown field `bogus`",
        ),
        (
            &smoke,
            &["--set", "chaos.7.every=2s"],
            "`chaos` has 1 entry, so there is no `chaos.7`",
        ),
        (
            &smoke,
            &["--set", "chaos.0.every=5 parsecs"],
            "--set chaos.0.every=5 parsecs: `chaos.every` = \"5 parsecs\" is not a duration",
        ),
        (
            &smoke,
            &["--set", "name.first=x"],
            "`name` is a string, not a table",
        ),
        (&smoke, &["--set", "load.rate"], "has no '='"),
        (&smoke, &["--set", "=1"], "is not a key"),
        (
            &smoke,
            &["--duration", "5 parsecs"],
            "unknown time unit \"parsecs\"",
        ),
        (&smoke, &["--duration", "0s"], "longer than zero"),
        (&smoke, &["--duration", "99999999h"], "at most 30 days"),
        (&smoke, &["--seed=-1"], "invalid value '-1' for '--seed"),
        (&smoke, &["--run-id", "a b"], "--run-id"),
    ];
    for (scenario, extra, expected) in cases {
        assert_rejected(scenario, extra, expected);
    }
}

#[test]
fn an_unwritable_out_folder_is_invalid_input_before_anything_starts() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("a-file");
    std::fs::write(&file, "not a folder").unwrap();
    let out = file.join("reports");
    let smoke = Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios/smoke.toml");
    let output = sessionstorm(&[
        "run",
        smoke.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("cannot create the report folder"),
        "{stderr}"
    );
    assert!(
        stderr.contains("choose another folder with --out"),
        "{stderr}"
    );
    assert!(!stderr.contains("panicked"), "{stderr}");
}
