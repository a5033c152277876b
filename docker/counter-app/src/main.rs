//! Entry point: configuration from the environment, a thread per connection, and a
//! graceful stop on SIGTERM/SIGINT (no new connections, the ones in progress finish).
//!
//! | variable | meaning | default |
//! |---|---|---|
//! | `MODE` | `redis` (correct) or `memory` (sessions in this process: deliberately broken) | `redis` |
//! | `SESSION_STORE` | Redis URL (redis mode) | `redis://127.0.0.1:6379` |
//! | `PORT` | TCP port on `0.0.0.0` | `8080` |
//! | `INSTANCE_ID` | value of `X-Served-By` | `$HOSTNAME`, else `unknown` |
//! | `SESSION_TTL_SECS` | Redis expiry of a session, refreshed on every increment | `3600` |
//! | `SESSION_START` | `login` (at the login form) or `first_write` (at the first increment, whose answer sets the cookie, as Rails and PHP do) | `login` |
//!
//! Exit codes: 0 after a signal, 2 for invalid configuration, 1 when the port cannot be
//! bound.

use std::net::{Ipv4Addr, TcpListener, TcpStream};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use counter_app::app::{self, Start};
use counter_app::http;
use counter_app::store::{Memory, Redis, Store};

/// How long in-flight connections get to finish after SIGTERM.
const DRAIN: Duration = Duration::from_secs(10);
/// A client that sends nothing for this long is dropped.
const IDLE: Duration = Duration::from_secs(5);

fn env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

fn main() -> ExitCode {
    let mode = env("MODE").unwrap_or_else(|| "redis".into());
    let port: u16 = match env("PORT").map(|p| p.parse()) {
        None => 8080,
        Some(Ok(p)) => p,
        Some(Err(_)) => {
            eprintln!("counter-app: invalid configuration: PORT must be a port number");
            return ExitCode::from(2);
        }
    };
    let ttl: u64 = env("SESSION_TTL_SECS")
        .and_then(|t| t.parse().ok())
        .unwrap_or(3600);
    let instance = env("INSTANCE_ID")
        .or_else(|| env("HOSTNAME"))
        .unwrap_or_else(|| "unknown".into());
    let start = match env("SESSION_START").as_deref() {
        None | Some("login") => Start::Login,
        Some("first_write") => Start::FirstWrite,
        Some(other) => {
            eprintln!(
                "counter-app: invalid configuration: SESSION_START={other:?}; accepted values: login, first_write"
            );
            return ExitCode::from(2);
        }
    };
    let store: Arc<dyn Store> = match mode.as_str() {
        "memory" => Arc::new(Memory::default()),
        "redis" => {
            let url = env("SESSION_STORE").unwrap_or_else(|| "redis://127.0.0.1:6379".into());
            match Redis::new(&url, ttl) {
                Ok(store) => Arc::new(store),
                Err(e) => {
                    eprintln!("counter-app: invalid configuration: SESSION_STORE: {}", e.0);
                    return ExitCode::from(2);
                }
            }
        }
        other => {
            eprintln!(
                "counter-app: invalid configuration: MODE={other:?}; accepted values: redis, memory"
            );
            return ExitCode::from(2);
        }
    };
    let listener = match TcpListener::bind((Ipv4Addr::UNSPECIFIED, port)) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("counter-app: cannot listen on 0.0.0.0:{port}: {e}");
            return ExitCode::from(1);
        }
    };
    let stopping = Arc::new(AtomicBool::new(false));
    wait_for_signal(Arc::clone(&stopping), port);
    eprintln!("counter-app: listening on 0.0.0.0:{port} mode={mode} instance={instance}");

    let active = Arc::new(AtomicUsize::new(0));
    for stream in listener.incoming() {
        if stopping.load(Ordering::SeqCst) {
            break;
        }
        let Ok(stream) = stream else { continue };
        let (store, instance, active) = (Arc::clone(&store), instance.clone(), Arc::clone(&active));
        active.fetch_add(1, Ordering::SeqCst);
        std::thread::spawn(move || {
            serve(&stream, store.as_ref(), start, &instance);
            active.fetch_sub(1, Ordering::SeqCst);
        });
    }
    let deadline = Instant::now() + DRAIN;
    while active.load(Ordering::SeqCst) > 0 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    eprintln!("counter-app: stopped");
    ExitCode::SUCCESS
}

/// Answers the one request of a connection; a broken request gets a 400 if it can.
fn serve(stream: &TcpStream, store: &dyn Store, start: Start, instance: &str) {
    let _ = stream.set_read_timeout(Some(IDLE));
    let response = match http::read_request(stream) {
        Ok(Some(request)) => app::handle(store, start, &request),
        Ok(None) => return,
        Err(e) => http::Response::new(400, format!("{e}\n")),
    };
    let _ = http::write_response(stream, &response, instance);
}

/// Waits for SIGTERM or SIGINT on a side thread, then sets `stopping` and wakes the
/// accept loop with a connection of its own. Installed before the first accept, so a
/// signal right after start is not lost (as PID 1 an unhandled SIGTERM is ignored).
fn wait_for_signal(stopping: Arc<AtomicBool>, port: u16) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .build()
        .expect("a single-thread runtime builds");
    let mut term = {
        let _guard = runtime.enter();
        tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .expect("SIGTERM handler installs")
    };
    std::thread::spawn(move || {
        let name = runtime.block_on(async {
            tokio::select! {
                _ = term.recv() => "SIGTERM",
                _ = tokio::signal::ctrl_c() => "SIGINT",
            }
        });
        eprintln!("counter-app: {name} received, finishing in-flight requests");
        stopping.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect((Ipv4Addr::LOCALHOST, port));
    });
}
