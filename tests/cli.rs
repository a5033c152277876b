//! The command line itself: help texts, completions, quiet output and secrets, all
//! without Docker (`DOCKER_HOST` points at a socket that does not exist).

use std::path::Path;
use std::process::Output;

use assert_cmd::Command;

const NO_DOCKER: &str = "unix:///nonexistent/sessionstorm-test/docker.sock";

fn sessionstorm(args: &[&str]) -> Output {
    Command::cargo_bin("sessionstorm")
        .unwrap()
        .args(args)
        .env("DOCKER_HOST", NO_DOCKER)
        .env_remove("SESSIONSTORM_LOG")
        .timeout(std::time::Duration::from_secs(60))
        .output()
        .unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn help_lists_every_command_with_examples_and_exit_codes() {
    let out = sessionstorm(&["--help"]);
    assert!(out.status.success());
    let help = text(&out.stdout);
    for word in [
        "run",
        "validate",
        "plan",
        "images",
        "cleanup",
        "completions",
        "--quiet",
        "--verbose",
        "Examples:",
        "Exit codes:",
    ] {
        assert!(help.contains(word), "--help lacks {word:?}:\n{help}");
    }
}

#[test]
fn every_subcommand_has_help_with_examples() {
    for command in [
        "run",
        "validate",
        "plan",
        "images",
        "cleanup",
        "completions",
    ] {
        let out = sessionstorm(&[command, "--help"]);
        assert!(out.status.success(), "{command} --help");
        let help = text(&out.stdout);
        assert!(help.contains("Examples:"), "{command} --help:\n{help}");
        assert!(
            help.contains(&format!("sessionstorm {command}")),
            "{command}:\n{help}"
        );
    }
    let run = text(&sessionstorm(&["run", "--help"]).stdout);
    for flag in [
        "--seed",
        "--duration",
        "--rate",
        "--replicas",
        "--set",
        "--out",
        "--run-id",
    ] {
        assert!(run.contains(flag), "run --help lacks {flag}");
    }
}

#[test]
fn plan_and_validate_take_the_same_overrides_as_run() {
    let storm = Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios/kill-storm.toml");
    let storm = storm.to_str().unwrap();
    for command in ["validate", "plan"] {
        let help = text(&sessionstorm(&[command, "--help"]).stdout);
        for flag in ["--seed", "--duration", "--rate", "--replicas", "--set"] {
            assert!(help.contains(flag), "{command} --help lacks {flag}");
        }
    }
    let out = sessionstorm(&[
        "plan",
        storm,
        "--duration",
        "10s",
        "--replicas",
        "6",
        "--set",
        "chaos.0.every=3s",
    ]);
    assert!(out.status.success(), "{out:?}");
    let plan = text(&out.stdout);
    assert!(
        plan.contains("6 replicas") && plan.contains("every 3s"),
        "{plan}"
    );
    assert!(plan.contains("timeline (2 faults"), "{plan}");
    let out = sessionstorm(&[
        "plan",
        storm,
        "--set",
        r#"gates.checks=["p99_ms.apend < 5"]"#,
    ]);
    assert_eq!(out.status.code(), Some(2));
    let err = text(&out.stderr);
    assert!(
        err.contains(r#"--set gates.checks=["p99_ms.apend < 5"]: "#) && err.contains("apend"),
        "{err}"
    );
}

#[test]
fn completions_are_printed_for_each_shell() {
    for (shell, marker) in [
        ("bash", "complete -F"),
        ("zsh", "#compdef sessionstorm"),
        ("fish", "complete -c sessionstorm"),
    ] {
        let out = sessionstorm(&["completions", shell]);
        assert!(out.status.success(), "{shell}");
        let script = text(&out.stdout);
        assert!(script.contains(marker), "{shell}: {script}");
        assert!(
            script.contains("validate") && script.contains("cleanup"),
            "{shell}"
        );
    }
    let out = sessionstorm(&["completions", "tcsh"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("possible values"));
}

#[test]
fn quiet_validate_prints_nothing_and_errors_still_show() {
    let smoke = Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios/smoke.toml");
    let out = sessionstorm(&["-q", "validate", smoke.to_str().unwrap()]);
    assert!(out.status.success());
    assert_eq!(text(&out.stdout), "");
    let out = sessionstorm(&[
        "validate",
        smoke.to_str().unwrap(),
        "-q",
        "--set",
        "service.replicas=0",
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("--set service.replicas=0: "));
}

#[test]
fn secrets_are_masked_in_the_scenario_kept_with_the_run_and_in_errors() {
    let dir = tempfile::tempdir().unwrap();
    let scenario = dir.path().join("secret.toml");
    std::fs::write(
        &scenario,
        "name = \"secret\"\nduration = \"5s\"\nsecrets = [\"DATABASE_URL\"]\n[service]\nreplicas = 1\nenv = { MODE = \"redis\", DB_PASSWORD = \"hunter2\" }\n[load]\nrate = 1\nappends_per_session = 1\n",
    )
    .unwrap();
    let out_dir = dir.path().join("reports");
    let out = sessionstorm(&[
        "run",
        scenario.to_str().unwrap(),
        "--out",
        out_dir.to_str().unwrap(),
        "--run-id",
        "masked",
        "--set",
        "service.env.API_TOKEN=tok-123",
        "--set",
        "service.env.DATABASE_URL=pg://u:pw-456@db/x",
    ]);
    // No Docker here: the run stops at the engine, after keeping the scenario.
    assert_eq!(out.status.code(), Some(3), "{}", text(&out.stderr));
    let kept = std::fs::read_to_string(out_dir.join("masked/scenario.toml")).unwrap();
    assert!(kept.contains("DB_PASSWORD = \"***\""), "{kept}");
    assert!(kept.contains("MODE = \"redis\""), "{kept}");
    assert!(
        kept.contains("# override: --set service.env.API_TOKEN=***"),
        "{kept}"
    );
    // A name the scenario lists in `secrets` is masked when set on the command line.
    assert!(
        kept.contains("# override: --set service.env.DATABASE_URL=***"),
        "{kept}"
    );
    for shown in [kept, text(&out.stdout), text(&out.stderr)] {
        assert!(
            !shown.contains("hunter2") && !shown.contains("tok-123") && !shown.contains("pw-456"),
            "{shown}"
        );
    }

    // A secret of the wrong type in the file is named without its value.
    let typed = dir.path().join("typed.toml");
    std::fs::write(
        &typed,
        "name = \"t\"\nduration = \"5s\"\n[service]\nreplicas = 1\nenv = { MODE = \"redis\", DB_PASSWORD = 98765 }\n[load]\nrate = 1\nappends_per_session = 1\n",
    )
    .unwrap();
    let out = sessionstorm(&["validate", typed.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = text(&out.stderr);
    assert!(stderr.contains("typed.toml:5:39: "), "{stderr}");
    assert!(!stderr.contains("98765"), "{stderr}");

    // An override that is wrong is named without its secret value.
    let out = sessionstorm(&[
        "validate",
        scenario.to_str().unwrap(),
        "--set",
        "service.env.API_TOKEN=[1, 2]",
    ]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("--set service.env.API_TOKEN=***: "),
        "{stderr}"
    );
    assert!(!stderr.contains("[1, 2]"), "{stderr}");
}

#[test]
fn a_docker_engine_that_never_answers_is_exit_3_within_seconds() {
    // Accepts connections (the kernel does) and never answers: a hung engine.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let host = format!("tcp://{}", listener.local_addr().unwrap());
    let smoke = Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios/smoke.toml");
    let out = tempfile::tempdir().unwrap();
    let started = std::time::Instant::now();
    let output = Command::cargo_bin("sessionstorm")
        .unwrap()
        .args(["run", smoke.to_str().unwrap(), "--out"])
        .arg(out.path())
        .env("DOCKER_HOST", &host)
        .timeout(std::time::Duration::from_secs(60))
        .output()
        .unwrap();
    let elapsed = started.elapsed();
    let stderr = text(&output.stderr);
    assert_eq!(output.status.code(), Some(3), "{stderr}");
    assert!(
        stderr.contains("cannot reach the Docker engine"),
        "{stderr}"
    );
    assert!(stderr.contains("docker info"), "{stderr}");
    // It waited on the engine DOCKER_HOST named (and only that one), for no longer
    // than its 2 s connect timeout; a loose bound for a loaded machine.
    assert!(
        elapsed < std::time::Duration::from_secs(8),
        "took {elapsed:?}"
    );
    drop(listener);
}

#[test]
fn attach_bad_inputs_are_exit_2_with_the_problem_named_before_docker_is_asked() {
    let scenario = |name: &str| {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("scenarios")
            .join(name)
            .to_str()
            .unwrap()
            .to_string()
    };
    let (smoke, attach) = (scenario("smoke.toml"), scenario("attach.toml"));
    let url = "http://127.0.0.1:9";
    let bad_file = tempfile::tempdir().unwrap();
    let both = bad_file.path().join("both.toml");
    std::fs::write(
        &both,
        "name = \"b\"\nduration = \"5s\"\n[attach]\nurl = \"http://127.0.0.1:9\"\nselector = [\"a=b\"]\ncompose_project = \"shop\"\n[load]\nusers = 1\nappends_per_session = 1\n",
    )
    .unwrap();
    let cases: Vec<(Vec<&str>, Vec<&str>)> = vec![
        // A scenario describing containers to start: every such key is named.
        (
            vec![&smoke, "--attach", url, "--selector", "a=b"],
            vec![
                "smoke.toml:11:1: `service.replicas` is not used in attach mode",
                "smoke.toml:10:1: `service.image` is not used in attach mode",
                "smoke.toml:16:1: `store.image` is not used in attach mode",
                "smoke.toml:19:1: `balancer.kind` is not used in attach mode",
            ],
        ),
        (
            vec![&attach, "--selector", "a=b", "--compose-project", "shop"],
            vec!["cannot be used with"],
        ),
        (
            vec![&attach, "--selector", "app.role"],
            vec!["--selector app.role: selector \"app.role\" has no '='"],
        ),
        (
            vec![&attach, "--attach", "127.0.0.1:8080"],
            vec!["--attach 127.0.0.1:8080: ", "e.g. http://127.0.0.1:8080"],
        ),
        (
            vec![&attach, "--compose-project", "Shop"],
            vec!["--compose-project Shop: compose project \"Shop\""],
        ),
        (
            vec![&attach, "--replicas", "3"],
            vec!["--replicas 3: `service.replicas` is not used in attach mode"],
        ),
        (
            vec![&attach, "--set", "chaos.0.target=store"],
            vec!["--set chaos.0.target=store: chaos target \"store\": in attach mode faults hit only"],
        ),
        (
            vec![both.to_str().unwrap()],
            vec!["both.toml:6:19: `attach.selector` and `attach.compose_project` both choose the replicas; keep one"],
        ),
        (
            vec![&smoke, "--selector", "a=b", "--set", "service.replicas=2"],
            vec!["attach mode needs the URL the stack answers at"],
        ),
        (
            vec![&attach, "--attach", "https://127.0.0.1:9", "--tls-ca", "/nonexistent/ca.pem"],
            vec!["--tls-ca /nonexistent/ca.pem: `load.tls.ca_file` = \"/nonexistent/ca.pem\": cannot read /nonexistent/ca.pem"],
        ),
        (
            vec![&attach, "--tls-ca", "ca.pem", "--tls-insecure"],
            vec!["cannot be used with"],
        ),
    ];
    for (args, expected) in cases {
        let mut full = vec!["run"];
        full.extend(&args);
        let out = sessionstorm(&full);
        let stderr = text(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        for want in expected {
            assert!(
                stderr.contains(want),
                "{args:?}: wanted {want:?} in:\n{stderr}"
            );
        }
        assert!(!stderr.contains("panicked"), "{stderr}");
    }
    // https:// is an attach URL like http://.
    let out = sessionstorm(&[
        "validate",
        &attach,
        "--attach",
        "https://127.0.0.1:9",
        "--tls-insecure",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
}
