//! What the benchmarks share: the demo service as a local endpoint, the load plans
//! they drive it with, and their settings from the environment.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use sessionstorm::plan::RateProfile;
use sessionstorm::plan::{LoadPlan, Model, DEFAULT_START_WINDOW};

/// A figure of this process's `/proc/self/status` in MiB (`VmRSS`, `VmHWM` ...),
/// or `None` where it cannot be read.
pub fn status_mib(field: &str) -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let kib: f64 = status
        .lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))?
        .split_whitespace()
        .next()?
        .parse()
        .ok()?;
    Some(kib / 1024.0)
}

/// A setting from the environment, or `default`.
pub fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// The demo service in memory mode on a free loopback port; killed when dropped.
pub struct Endpoint {
    pub child: Child,
    pub port: u16,
}

impl Drop for Endpoint {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Builds the demo service (release) and starts it.
pub fn endpoint() -> Endpoint {
    let root = env!("CARGO_MANIFEST_DIR");
    let status = Command::new(env!("CARGO"))
        .args(["build", "--release", "-p", "session-app"])
        .current_dir(root)
        .status()
        .expect("cargo runs");
    assert!(status.success(), "cannot build session-app");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let child = Command::new(format!("{root}/target/release/session-app"))
        .env("MODE", "memory")
        .env("PORT", port.to_string())
        .env("INSTANCE_ID", "bench")
        .stderr(Stdio::null())
        .spawn()
        .expect("session-app starts");
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "session-app did not listen");
        std::thread::sleep(Duration::from_millis(20));
    }
    Endpoint { child, port }
}

/// An open model at `rate` operations per second.
pub fn open(rate: f64, session_interval: Duration) -> Model {
    Model::Open {
        profile: RateProfile::constant(rate),
        max_in_flight: 100_000,
        session_interval,
        start_window: DEFAULT_START_WINDOW,
    }
}

/// A plan of `model` with sessions of `appends` appends.
pub fn plan(model: Model, appends: u32) -> LoadPlan {
    LoadPlan {
        model,
        appends_per_session: appends,
        warmup: Duration::from_secs(1),
        operations: None,
        request_timeout: Duration::from_secs(5),
        retries: 2,
        keep_alive: true,
        max_idle_connections: 1024,
        tls: Default::default(),
        flow: None,
        threads: 1,
        max_connections: 1024,
    }
}

/// The one-minute load average, to read the figures by.
pub fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|l| l.split_whitespace().next().map(str::to_string))
        .unwrap_or_else(|| "?".into())
}
