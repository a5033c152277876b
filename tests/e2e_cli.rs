//! End-to-end tests of the command line's behaviour around a run, against real
//! containers: a replica that dies at start, the plain progress lines, `-q`. Each
//! run is named and a guard removes whatever carries its label, pass or fail.

mod common;

use std::process::{Command, Output};

use common::{
    bin, blackholed, docker_turn, labelled, repo, sigkill, start_run, unique, wait_for, RunGuard,
    HELD_FAULTS,
};

fn run(run_id: &str, extra: &[&str]) -> (Output, String, String) {
    let out = tempfile::tempdir().unwrap();
    let smoke = repo("scenarios/smoke.toml");
    let output = bin()
        .args(["run", smoke.to_str().unwrap(), "--run-id", run_id, "--out"])
        .arg(out.path())
        .args(extra)
        .env_remove("SESSIONSTORM_LOG")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    (output, stdout, stderr)
}

#[test]
fn a_replica_that_exits_at_start_is_exit_3_with_its_last_log_lines_and_nothing_left() {
    let _docker = docker_turn();
    let id = unique("e2e-crash");
    let _guard = RunGuard(id.clone());
    // session-app exits with status 2 on an unknown MODE.
    let (output, stdout, stderr) = run(
        &id,
        &["--duration", "5s", "--set", "service.env.MODE=bogus"],
    );
    assert_eq!(
        output.status.code(),
        Some(3),
        "stdout:\n{stdout}\nstderr:\n{stderr}"
    );
    assert!(
        stderr.contains("exited at start") || stderr.contains("exited before it was ready"),
        "{stderr}"
    );
    assert!(stderr.contains("last log lines"), "{stderr}");
    assert!(
        stderr.contains("MODE=\"bogus\" is not supported"),
        "{stderr}"
    );
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert!(labelled(&id).is_empty(), "left behind: {:?}", labelled(&id));
}

#[test]
fn off_a_terminal_progress_is_plain_lines_and_quiet_prints_the_verdict_only() {
    let _docker = docker_turn();
    let id = unique("e2e-plain");
    let _guard = RunGuard(id.clone());
    let (output, stdout, stderr) = run(&id, &["--duration", "7s", "--set", "chaos.0.every=3s"]);
    assert_eq!(
        output.status.code(),
        Some(0),
        "stdout:\n{stdout}\nstderr:\n{stderr}"
    );
    let progress: Vec<&str> = stdout
        .lines()
        .filter(|l| l.contains("replicas answering"))
        .collect();
    assert!(!progress.is_empty(), "{stdout}");
    for line in &progress {
        assert!(line.contains("ops/s") && line.contains("p99"), "{line}");
        assert!(line.contains("/3 replicas answering"), "{line}");
    }
    assert!(
        !stdout.contains('\u{1b}') && !stdout.contains('\r'),
        "{stdout:?}"
    );
    assert!(labelled(&id).is_empty());

    let id = unique("e2e-quiet");
    let _guard = RunGuard(id.clone());
    let (output, stdout, stderr) = run(&id, &["--duration", "3s", "-q"]);
    assert_eq!(
        output.status.code(),
        Some(0),
        "stdout:\n{stdout}\nstderr:\n{stderr}"
    );
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 2, "{stdout}");
    assert!(lines[0].starts_with("verdict PASSED"), "{stdout}");
    assert!(
        lines[1].starts_with("report ") && lines[1].ends_with("summary.json"),
        "{stdout}"
    );
}

#[test]
fn sigterm_then_a_second_interrupt_tears_down_at_once() {
    let _docker = docker_turn();
    let id = unique("e2e-twice");
    let _guard = RunGuard(id.clone());
    let out = tempfile::tempdir().unwrap();
    let (mut child, stdout, _) = start_run(&repo("scenarios/smoke.toml"), &id, out.path());
    let drain = std::thread::spawn(move || stdout.map_while(Result::ok).collect::<Vec<_>>());
    std::thread::sleep(std::time::Duration::from_secs(1));
    assert!(!labelled(&id).is_empty(), "cluster is up");
    assert_contained(&id);
    let signalled = std::time::Instant::now();
    let pid = child.id().to_string();
    Command::new("kill").args(["-TERM", &pid]).status().unwrap();
    std::thread::sleep(std::time::Duration::from_millis(300));
    Command::new("kill").args(["-INT", &pid]).status().unwrap();
    let status = child.wait().unwrap();
    let seen = drain.join().unwrap();
    assert_eq!(status.code(), Some(130), "{seen:#?}");
    assert!(
        signalled.elapsed() < std::time::Duration::from_secs(20),
        "{:?}",
        signalled.elapsed()
    );
    assert!(labelled(&id).is_empty(), "left behind: {:?}", labelled(&id));
}

/// A SIGKILLed harness, mid-run with a pause, a disconnect and a blackhole under
/// way, leaves nothing: its reaper removes every object of the run within seconds
/// (the test waits 30), and the run folder keeps a summary.json marked running and
/// the latency log so far.
#[test]
fn a_sigkilled_harness_leaves_nothing_behind_and_a_running_summary() {
    let _docker = docker_turn();
    let id = unique("e2e-sigkill");
    let _guard = RunGuard(id.clone());
    let (_dir, scenario) = common::temp_scenario(&format!(
        r#"name = "sigkill"
seed = 1
duration = "60s"
min_alive = 0
[service]
image = "sessionstorm/session-app"
replicas = 3
env = {{ MODE = "redis" }}
[store]
image = "sessionstorm/redis"
[load]
users = 4
appends_per_session = 5
request_timeout = "1s"
{HELD_FAULTS}[[chaos]]
fault = "blackhole"
target = "replica-2"
at = ["1s"]
duration = "10m"
"#
    ));
    let out = tempfile::tempdir().unwrap();
    let (mut child, _stdout, _) = start_run(std::path::Path::new(&scenario), &id, out.path());
    let replica = |slot: usize| format!("sessionstorm-{id}-replica-{slot}.0");
    let status = |name: &str| {
        let out = Command::new("docker")
            .args(["inspect", "-f", "{{.State.Status}}", name])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    };
    let held = wait_for(std::time::Duration::from_secs(30), || {
        status(&replica(0)) == "paused" && blackholed(&replica(2))
    });
    assert!(held.is_some(), "the faults never took hold");
    sigkill(&mut child);
    // Generous: the reaper's own pauses and a helper container's undo of the
    // blackhole take seconds on a slow machine; the time taken is printed.
    let gone = wait_for(std::time::Duration::from_secs(30), || {
        labelled(&id).is_empty()
    });
    assert!(
        gone.is_some(),
        "left 30 s after SIGKILL: {:?}",
        labelled(&id)
    );
    println!("nothing of the run left {:?} after SIGKILL", gone.unwrap());
    let folder = out.path().join(&id);
    let summary: serde_json::Value =
        serde_json::from_slice(&std::fs::read(folder.join("summary.json")).unwrap()).unwrap();
    assert_eq!(summary["verdict"]["status"], "running", "{summary}");
    let problems = common::schema_problems(&summary);
    assert!(problems.is_empty(), "{problems:#?}");
    assert_eq!(summary["verdict"]["exit_code"], 3);
    assert_eq!(summary["run_id"], id.as_str());
    assert_eq!(summary["cluster"]["replicas"], 3);
    let reasons = summary["verdict"]["reasons"].to_string();
    assert!(reasons.contains("checkpoint"), "{reasons}");
    assert!(folder.join("scenario.toml").exists());
    let hlog = std::fs::read_to_string(folder.join("latency.hlog")).unwrap();
    assert!(hlog.contains("Tag=append.ok.corrected,"), "{hlog}");
}

/// What a run leaves when it dies and its reaper cannot finish (here: a reaper that
/// cannot reach the engine) is listed by the next run with the reaper's log, and
/// `cleanup --run` removes it, reaper included.
#[test]
fn the_next_run_reports_what_a_dead_run_left_with_its_reaper_log() {
    let _docker = docker_turn();
    let dead = unique("e2e-dead");
    let _guard = RunGuard(dead.clone());
    let out = tempfile::tempdir().unwrap();
    // Fails at once (nothing matches), after its leftovers report and its reaper.
    let run_matching_nothing = || {
        let id = unique("e2e-next");
        let _guard = RunGuard(id.clone());
        let output = bin()
            .args(["run", repo("scenarios/attach.toml").to_str().unwrap()])
            .args(["--attach", "http://127.0.0.1:9", "--selector"])
            .arg(format!("sessionstorm.test=nothing-{id}"))
            .args(["--run-id", &id, "--out"])
            .arg(out.path())
            .output()
            .unwrap();
        assert_eq!(output.status.code(), Some(3), "{output:?}");
        assert!(labelled(&id).is_empty(), "{:?}", labelled(&id));
        String::from_utf8_lossy(&output.stderr).into_owned()
    };
    // The first run builds the reaper's image.
    run_matching_nothing();
    let label = format!("sessionstorm.run={dead}");
    let store = format!("sessionstorm-{dead}-store");
    let reaper = format!("sessionstorm-{dead}-reaper");
    let docker = |args: &[&str]| Command::new("docker").args(args).output().unwrap();
    let started = docker(&[
        "run",
        "-d",
        "--name",
        &store,
        "--label",
        &label,
        "--label",
        "sessionstorm.role=store",
        "sessionstorm/redis",
    ]);
    assert!(started.status.success(), "{started:?}");
    // No engine socket mounted: it fails, exits and stays with its log.
    docker(&[
        "run",
        "--name",
        &reaper,
        "--label",
        &label,
        "--label",
        "sessionstorm.role=reaper",
        "--network",
        "none",
        "sessionstorm/reaper",
        "--run",
        &dead,
    ]);
    let stderr = run_matching_nothing();
    assert!(
        stderr.contains(&format!("  run {dead}: containers {reaper}, {store}\n")),
        "{stderr}"
    );
    assert!(stderr.contains("its reaper's log:"), "{stderr}");
    assert!(
        stderr.contains("cannot reach the Docker engine"),
        "{stderr}"
    );
    assert!(
        stderr.contains(&format!("`sessionstorm cleanup --run {dead}`")),
        "{stderr}"
    );
    let cleanup = bin().args(["cleanup", "--run", &dead]).output().unwrap();
    assert!(cleanup.status.success(), "{cleanup:?}");
    assert!(labelled(&dead).is_empty(), "{:?}", labelled(&dead));
}

/// No container of the run mounts a host path but the reaper, which mounts the
/// engine's socket and nothing else, and every published port is on 127.0.0.1 only.
fn assert_contained(run_id: &str) {
    let out = Command::new("docker")
        .args([
            "ps",
            "-q",
            "--filter",
            &format!("label=sessionstorm.run={run_id}"),
        ])
        .output()
        .unwrap();
    let ids: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(String::from)
        .collect();
    assert!(!ids.is_empty());
    let out = Command::new("docker")
        .arg("inspect")
        .args(&ids)
        .output()
        .unwrap();
    let containers: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    for c in containers.as_array().unwrap() {
        let name = &c["Name"];
        let reaper = c["Config"]["Labels"]["sessionstorm.role"] == "reaper";
        for mount in c["Mounts"].as_array().into_iter().flatten() {
            if reaper {
                assert_eq!(
                    mount["Destination"], "/var/run/docker.sock",
                    "{name}: {mount}"
                );
            } else {
                assert_ne!(mount["Type"], "bind", "{name} mounts a host path: {mount}");
            }
        }
        let bindings = &c["HostConfig"]["PortBindings"];
        for (port, list) in bindings.as_object().into_iter().flatten() {
            for b in list.as_array().into_iter().flatten() {
                assert_eq!(
                    b["HostIp"], "127.0.0.1",
                    "{name} publishes {port} beyond loopback"
                );
            }
        }
    }
}

/// Unmounts the small file system when the test ends.
struct Unmount(std::path::PathBuf);

impl Drop for Unmount {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

#[test]
fn a_full_disk_for_the_report_is_a_clear_error_before_anything_starts() {
    let dir = tempfile::tempdir().unwrap();
    let mount = dir.path().join("full");
    std::fs::create_dir(&mount).unwrap();
    // A 16 kB tmpfs, filled up; needs the right to mount (root in CI).
    let mounted = Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=16k", "tmpfs"])
        .arg(&mount)
        .status()
        .is_ok_and(|s| s.success());
    if !mounted {
        eprintln!("skipped: cannot mount a small tmpfs here");
        return;
    }
    let _unmount = Unmount(mount.clone());
    let _ = std::fs::write(mount.join("filler"), vec![0u8; 64 * 1024]);
    let id = unique("e2e-full");
    let _guard = RunGuard(id.clone());
    let smoke = repo("scenarios/smoke.toml");
    let output = bin()
        .args(["run", smoke.to_str().unwrap(), "--run-id", &id, "--out"])
        .arg(&mount)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(3), "{stderr}");
    assert!(stderr.contains("No space left on device"), "{stderr}");
    assert!(
        stderr.contains("choose another folder with --out"),
        "{stderr}"
    );
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert!(
        labelled(&id).is_empty(),
        "started something: {:?}",
        labelled(&id)
    );
}

#[test]
fn a_balancer_port_in_use_is_exit_3_naming_it_and_nothing_is_left() {
    let _docker = docker_turn();
    let id = unique("e2e-port");
    let _guard = RunGuard(id.clone());
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let setting = format!("balancer.port={port}");
    let (output, _, stderr) = run(&id, &["--set", &setting, "--duration", "5s"]);
    assert_eq!(output.status.code(), Some(3), "{stderr}");
    assert!(
        stderr.contains(&format!("port {port} on 127.0.0.1")) && stderr.contains("in use"),
        "{stderr}"
    );
    assert!(labelled(&id).is_empty(), "{:?}", labelled(&id));
    drop(taken);
}
