//! Entry point: configuration from the environment (see `session_app::config`), one log line
//! at start and one at shutdown, graceful drain on SIGTERM/SIGINT.
//!
//! Exit codes: 0 after a signal-initiated shutdown, 2 for invalid configuration, 1 when the
//! port cannot be bound or the server fails (in write-behind mode, also when the final flush
//! after the signal fails, i.e. acknowledged writes were lost).

use std::process::ExitCode;

use session_app::config::{Config, Mode};
use tokio::net::TcpListener;
use tokio::signal::unix::{signal, SignalKind};

#[tokio::main]
async fn main() -> ExitCode {
    let config = match Config::from_env() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("session-app: invalid configuration: {e}");
            return ExitCode::from(2);
        }
    };

    let listener = match TcpListener::bind(("0.0.0.0", config.port)).await {
        Ok(l) => l,
        Err(e) => {
            eprintln!("session-app: cannot listen on 0.0.0.0:{}: {e}", config.port);
            return ExitCode::from(1);
        }
    };

    // Installed before announcing readiness, so a SIGTERM right after start is not lost
    // (as PID 1 in a container, an unhandled SIGTERM would simply be ignored).
    let mut sigterm = match signal(SignalKind::terminate()) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("session-app: cannot install SIGTERM handler: {e}");
            return ExitCode::from(1);
        }
    };
    let shutdown = async move {
        let name = tokio::select! {
            _ = sigterm.recv() => "SIGTERM",
            _ = tokio::signal::ctrl_c() => "SIGINT",
        };
        eprintln!("session-app: {name} received, finishing in-flight requests");
    };

    let store = match (&config.store_url, config.mode) {
        (Some(url), Mode::WriteBehind) => format!(
            "store={url} ttl={}s flush_interval={}ms",
            config.ttl_secs, config.flush_interval_ms
        ),
        (Some(url), _) => format!("store={url} ttl={}s", config.ttl_secs),
        (None, _) => "store=none (process memory)".to_owned(),
    };
    let wait = config.store_wait.map_or(String::new(), |w| {
        format!(" wait={} replicas within {}ms", w.replicas, w.timeout_ms)
    });
    eprintln!(
        "session-app: listening on 0.0.0.0:{} mode={} instance={} {store}{wait}",
        config.port, config.mode, config.instance_id,
    );

    match session_app::build_and_serve(&config, listener, shutdown).await {
        Ok(()) => {
            eprintln!("session-app: stopped");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("session-app: server error: {e}");
            ExitCode::from(1)
        }
    }
}
