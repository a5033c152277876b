//! Entry point: configuration from the environment (see [`actix_app::config`]), the
//! session middleware with the chosen store and key, and actix-web's server, which
//! stops on SIGTERM/SIGINT after the requests in progress finish.
//!
//! Exit codes: 0 after a signal, 2 for invalid configuration, 1 when the port cannot be
//! bound or Redis cannot be reached at start.

use std::net::Ipv4Addr;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use actix_app::app::{self, Health};
use actix_app::config::{Config, KeySource, Store};
use actix_session::storage::{CookieSessionStore, RedisSessionStore, SessionStore};
use actix_session::SessionMiddleware;
use actix_web::rt::time::{sleep, timeout};
use actix_web::{App, HttpServer};
use redis::aio::ConnectionManager;

/// Seconds in-flight requests get to finish after SIGTERM.
const DRAIN_SECS: u64 = 10;
/// Worker threads, each with its own `App` (and a clone of the one key).
const WORKERS: usize = 2;
/// How long a replica waits for Redis at start before giving up.
const CONNECT_FOR: Duration = Duration::from_secs(10);
const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(2);

fn main() -> ExitCode {
    let config = match Config::from_env(|name| std::env::var(name).ok()) {
        Ok(config) => config,
        Err(why) => {
            eprintln!("actix-app: invalid configuration: {why}");
            return ExitCode::from(2);
        }
    };
    actix_web::rt::System::new().block_on(run(config))
}

async fn run(config: Config) -> ExitCode {
    let key = match config.key_source {
        KeySource::Shared => "shared",
        KeySource::Generate => "generated",
    };
    let result = match &config.store {
        Store::Cookie => {
            eprintln!(
                "actix-app: store=cookie key={key} instance={}",
                config.instance
            );
            serve(&config, CookieSessionStore::default, Health::Always).await
        }
        Store::Redis { url } => {
            let (store, conn) = match connect(url).await {
                Ok(connected) => connected,
                Err(why) => {
                    eprintln!("actix-app: cannot reach Redis at {url}: {why}");
                    return ExitCode::from(1);
                }
            };
            eprintln!(
                "actix-app: store=redis key={key} instance={}",
                config.instance
            );
            serve(&config, move || store.clone(), Health::Redis(conn)).await
        }
    };
    match result {
        Ok(()) => {
            eprintln!("actix-app: stopped");
            ExitCode::SUCCESS
        }
        Err(why) => {
            eprintln!("actix-app: {why}");
            ExitCode::from(1)
        }
    }
}

/// Runs the server until a signal; `store` makes each worker's session store.
async fn serve<S, F>(config: &Config, store: F, health: Health) -> Result<(), String>
where
    F: Fn() -> S + Clone + Send + 'static,
    S: SessionStore + 'static,
{
    let key = config.key.clone();
    let port = config.port;
    let server = HttpServer::new(move || {
        App::new()
            .wrap(SessionMiddleware::new(store(), key.clone()))
            .configure(app::routes(health.clone()))
    })
    .workers(WORKERS)
    .shutdown_timeout(DRAIN_SECS)
    .bind((Ipv4Addr::UNSPECIFIED, port))
    .map_err(|e| format!("cannot listen on 0.0.0.0:{port}: {e}"))?;
    eprintln!("actix-app: listening on 0.0.0.0:{port}");
    server
        .run()
        .await
        .map_err(|e| format!("server failed: {e}"))
}

/// The session store and a connection for the health check. Retried for a while: a
/// replica may start before Redis accepts connections.
async fn connect(url: &str) -> Result<(RedisSessionStore, ConnectionManager), String> {
    let deadline = Instant::now() + CONNECT_FOR;
    loop {
        let attempt = async {
            let store = RedisSessionStore::new(url)
                .await
                .map_err(|e| e.to_string())?;
            let client = redis::Client::open(url).map_err(|e| e.to_string())?;
            let conn = ConnectionManager::new(client)
                .await
                .map_err(|e| e.to_string())?;
            Ok::<_, String>((store, conn))
        };
        let why = match timeout(ATTEMPT_TIMEOUT, attempt).await {
            Ok(Ok(connected)) => return Ok(connected),
            Ok(Err(why)) => why,
            Err(_) => format!("no connection within {ATTEMPT_TIMEOUT:?}"),
        };
        if Instant::now() >= deadline {
            return Err(why);
        }
        sleep(Duration::from_millis(200)).await;
    }
}
