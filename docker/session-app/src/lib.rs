//! `session-app`: the demo service for sessionstorm, implementing the session contract v1.
//!
//! It has one correct and one deliberately broken mode so the harness's claims can be tested
//! both ways: `MODE=redis` keeps all state in Redis and survives any replica dying;
//! `MODE=memory` keeps sessions in the replica and loses them with it. See [`config`] for the
//! environment variables, [`store::redis`] for the Redis key layout and [`http`] for the
//! status codes.
//!
//! The library exists so the integration tests can run the real server in-process; the
//! binary in `main.rs` only adds environment parsing, signals and exit codes.

use std::future::Future;
use std::io;
use std::sync::Arc;

use axum::http::HeaderValue;
use tokio::net::TcpListener;

pub mod config;
pub mod http;
pub mod store;

use config::{Config, Mode};
use store::memory::MemoryStore;
use store::redis::RedisStore;
use store::Store;

/// Serves on `listener` with the store chosen by `config.mode` until `shutdown` resolves, then
/// lets in-flight requests finish and returns.
///
/// This match is the one place that knows every mode; adding a mode means adding an arm here.
pub async fn build_and_serve(
    config: &Config,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> io::Result<()> {
    match config.mode {
        Mode::Memory => serve(MemoryStore::new(), config, listener, shutdown).await,
        Mode::Redis => {
            let url = config.store_url.as_deref().ok_or_else(|| {
                io::Error::new(
                    io::ErrorKind::InvalidInput,
                    "redis mode needs SESSION_STORE",
                )
            })?;
            let store = RedisStore::new(url, config.ttl_secs)
                .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
            serve(store, config, listener, shutdown).await
        }
    }
}

async fn serve<S: Store>(
    store: S,
    config: &Config,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> io::Result<()> {
    let instance = HeaderValue::from_str(&config.instance_id)
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
    let app = http::router(Arc::new(store), instance);
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await
}
