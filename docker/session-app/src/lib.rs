//! `session-app`: the demo service for sessionstorm, implementing the session contract v1.
//!
//! It has one correct and two deliberately broken modes so the harness's claims can be tested
//! both ways: `MODE=redis` keeps all state in Redis and survives any replica dying;
//! `MODE=memory` keeps sessions in the replica and loses them with it; `MODE=write-behind`
//! creates sessions in Redis but acknowledges appends from a local cache flushed every
//! `FLUSH_INTERVAL_MS`, so a killed replica loses its last unflushed writes (but no session);
//! `MODE=memcached` spreads sessions over a pool of memcached nodes, and loses a lost node's.
//! With `TLS=self-signed` it serves HTTPS only ([`tls`]).
//! See [`config`] for the environment variables, [`store::redis`] for the Redis key layout,
//! [`store::write_behind`] for the flush design and [`http`] for the status codes.
//!
//! The library exists so the integration tests can run the real server in-process; the
//! binary in `main.rs` only adds environment parsing, signals and exit codes.

use std::future::Future;
use std::io;
use std::sync::Arc;
use std::time::Duration;

use axum::http::HeaderValue;
use tokio::net::TcpListener;

pub mod config;
pub mod http;
pub mod store;
pub mod tls;

use config::{Config, Mode};
use store::memcached::MemcachedStore;
use store::memory::MemoryStore;
use store::redis::RedisStore;
use store::write_behind::WriteBehindStore;
use store::Store;

/// Serves on `listener` with the store chosen by `config.mode` until `shutdown` resolves, then
/// lets in-flight requests finish and returns.
///
/// In write-behind mode the periodic flusher runs inside this future (dropping the future, as
/// a killed process or an aborted task does, stops it without a final flush), and after a
/// graceful shutdown one last flush runs before returning; if that fails, the unflushed writes
/// are lost and this returns an error.
///
/// This match is the one place that knows every mode; adding a mode means adding an arm here.
pub async fn build_and_serve(
    config: &Config,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> io::Result<()> {
    match config.mode {
        Mode::Memory => serve(Arc::new(MemoryStore::new()), config, listener, shutdown).await,
        Mode::Redis => {
            let store = RedisStore::new(store_url(config)?, config.ttl_secs, config.store_wait)
                .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
            serve(Arc::new(store), config, listener, shutdown).await
        }
        Mode::Memcached => {
            let store = MemcachedStore::new(store_url(config)?, config.ttl_secs)
                .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
            serve(Arc::new(store), config, listener, shutdown).await
        }
        Mode::WriteBehind => {
            let store = Arc::new(
                WriteBehindStore::new(
                    store_url(config)?,
                    config.ttl_secs,
                    Duration::from_millis(config.flush_interval_ms),
                    config.store_wait,
                )
                .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?,
            );
            let served = tokio::select! {
                served = serve(store.clone(), config, listener, shutdown) => served,
                never = store.clone().flush_periodically() => match never {},
            };
            // Only reached after a graceful shutdown; every acknowledged append is cached by now.
            let dirty = store.dirty_sessions();
            store.flush().await.map_err(|e| {
                io::Error::other(format!(
                    "final write-behind flush failed, writes of {dirty} session(s) lost: {e}"
                ))
            })?;
            served
        }
    }
}

fn store_url(config: &Config) -> io::Result<&str> {
    config.store_url.as_deref().ok_or_else(|| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{} mode needs SESSION_STORE", config.mode),
        )
    })
}

async fn serve<S: Store>(
    store: Arc<S>,
    config: &Config,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> io::Result<()> {
    let instance = HeaderValue::from_str(&config.instance_id)
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
    let mut app = http::router(store, instance);
    if config.leak_kib_per_request > 0 {
        let bytes = (config.leak_kib_per_request * 1024) as usize;
        app = app.layer(axum::middleware::map_request(
            move |req: axum::extract::Request| async move {
                // Written (not just reserved) so the pages are resident and count
                // against the container's memory limit.
                std::mem::forget(vec![1u8; bytes]);
                req
            },
        ));
    }
    if config.tls {
        let listener = tls::TlsListener::self_signed(listener, &config.instance_id)?;
        axum::serve(listener, app)
            .with_graceful_shutdown(shutdown)
            .await
    } else {
        axum::serve(listener, app)
            .with_graceful_shutdown(shutdown)
            .await
    }
}
