//! The `slow_store` and `latency` faults' mechanism: a TCP proxy in the harness
//! process on a path (replicas to their store; the balancer to a replica), which
//! passes traffic through untouched until told to hold the answers back by a delay
//! (fixed plus seeded jitter).
//!
//! The engine's kernel has no `netem` here, so delay is added in userspace. The
//! proxy listens on the run network's gateway address (the host side of the bridge),
//! and replicas are given that address for `{store}` (the balancer: for each
//! server) from the start, so switching the delay on and off changes no container
//! and leaves nothing to clean up: the revert is a number set back to zero. Only
//! the answers are held back, so one round trip takes `delay` longer; every held
//! chunk's real added delay is measured, and the fault's record shows it.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// How long a connection to the upstream may take before the client's is closed.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);

/// The delay in force now, and what was measured while it was.
#[derive(Debug, Default)]
struct Setting {
    delay_us: AtomicU64,
    jitter_us: AtomicU64,
    /// Held chunks, and their added delay in total and at most, since the last `set`.
    held: AtomicU64,
    added_us: AtomicU64,
    max_us: AtomicU64,
}

/// What the proxy measured while a delay was in force.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Measured {
    pub held: u64,
    pub mean: Duration,
    pub max: Duration,
}

impl std::fmt::Display for Measured {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "measured: {} answers held back, {:.1} ms on average, {:.1} ms at most",
            self.held,
            self.mean.as_secs_f64() * 1000.0,
            self.max.as_secs_f64() * 1000.0
        )
    }
}

/// A running proxy; stops when dropped.
#[derive(Debug)]
pub struct DelayProxy {
    /// Where it is reached.
    pub addr: SocketAddr,
    /// Where it forwards to; a replaced replica's new address is set here.
    upstream: Arc<Mutex<SocketAddr>>,
    setting: Arc<Setting>,
    stop: CancellationToken,
    /// Ends the connections open now (a child of `stop`, replaced at each `cut`).
    open: Arc<Mutex<CancellationToken>>,
}

impl Drop for DelayProxy {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

impl DelayProxy {
    /// Listens on `bind` (port 0: any free one) and forwards every connection to
    /// `upstream`; jitter is drawn from `seed`.
    pub async fn start(bind: SocketAddr, upstream: SocketAddr, seed: u64) -> std::io::Result<Self> {
        let listener = TcpListener::bind(bind).await?;
        let addr = listener.local_addr()?;
        let setting = Arc::new(Setting::default());
        let stop = CancellationToken::new();
        let rng = Arc::new(Mutex::new(StdRng::seed_from_u64(seed)));
        let upstream = Arc::new(Mutex::new(upstream));
        let open = Arc::new(Mutex::new(stop.child_token()));
        let (shared, halt, target) = (Arc::clone(&setting), stop.clone(), Arc::clone(&upstream));
        let connections = Arc::clone(&open);
        tokio::spawn(async move {
            loop {
                let accepted = tokio::select! {
                    a = listener.accept() => a,
                    () = halt.cancelled() => return,
                };
                let Ok((client, _)) = accepted else { continue };
                let halt = connections.lock().expect("open lock").clone();
                let (shared, rng) = (Arc::clone(&shared), Arc::clone(&rng));
                let upstream = *target.lock().expect("upstream lock");
                tokio::spawn(async move {
                    tokio::select! {
                        () = forward(client, upstream, shared, rng) => {}
                        () = halt.cancelled() => {}
                    }
                });
            }
        });
        Ok(DelayProxy {
            addr,
            upstream,
            setting,
            stop,
            open,
        })
    }

    /// Ends every connection open now, dropping what it still held back: the link
    /// goes down with the server it led to (a killed primary takes down the
    /// replication stream in flight). New connections pass as before.
    pub fn cut(&self) {
        let mut open = self.open.lock().expect("open lock");
        open.cancel();
        *open = self.stop.child_token();
    }

    /// Forwards new connections to `upstream` from now on.
    pub fn set_upstream(&self, upstream: SocketAddr) {
        *self.upstream.lock().expect("upstream lock") = upstream;
    }

    /// Holds the store's answers back by `delay` plus up to `jitter` from now on.
    pub fn set(&self, delay: Duration, jitter: Duration) {
        let s = &self.setting;
        for counter in [&s.held, &s.added_us, &s.max_us] {
            counter.store(0, Ordering::Relaxed);
        }
        s.jitter_us
            .store(jitter.as_micros() as u64, Ordering::Relaxed);
        s.delay_us
            .store(delay.as_micros() as u64, Ordering::Relaxed);
    }

    /// Passes traffic through untouched again; what was measured meanwhile.
    pub fn clear(&self) -> Measured {
        let s = &self.setting;
        s.delay_us.store(0, Ordering::Relaxed);
        s.jitter_us.store(0, Ordering::Relaxed);
        let held = s.held.swap(0, Ordering::Relaxed);
        Measured {
            held,
            mean: Duration::from_micros(s.added_us.swap(0, Ordering::Relaxed) / held.max(1)),
            max: Duration::from_micros(s.max_us.swap(0, Ordering::Relaxed)),
        }
    }
}

/// Pipes one connection both ways; the store's answers wait out the delay in force
/// when they arrive, in order (a chunk is never sent before the one before it).
async fn forward(
    client: TcpStream,
    upstream: SocketAddr,
    setting: Arc<Setting>,
    rng: Arc<Mutex<StdRng>>,
) {
    // A server that is gone (a killed container's address answers nothing) is
    // given up on soon, as a refused connection would be, not after the kernel's
    // two minutes of retries.
    let connecting = tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(upstream));
    let Ok(Ok(server)) = connecting.await else {
        return;
    };
    let _ = client.set_nodelay(true);
    let _ = server.set_nodelay(true);
    let (mut client_in, mut client_out) = client.into_split();
    let (mut server_in, mut server_out) = server.into_split();
    let requests = tokio::io::copy(&mut client_in, &mut server_out);
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<(Instant, Vec<u8>)>();
    let answers_in = async move {
        let mut buf = vec![0u8; 16 * 1024];
        let mut release = Instant::now();
        loop {
            let n = match server_in.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => n,
            };
            let now = Instant::now();
            let delay = setting.delay_us.load(Ordering::Relaxed);
            if delay > 0 {
                let jitter = setting.jitter_us.load(Ordering::Relaxed);
                let extra = if jitter > 0 {
                    rng.lock().expect("rng lock").random_range(0..=jitter)
                } else {
                    0
                };
                release = release.max(now + Duration::from_micros(delay + extra));
                let added = (release - now).as_micros() as u64;
                setting.held.fetch_add(1, Ordering::Relaxed);
                setting.added_us.fetch_add(added, Ordering::Relaxed);
                setting.max_us.fetch_max(added, Ordering::Relaxed);
            } else {
                release = release.max(now);
            }
            if tx.send((release, buf[..n].to_vec())).is_err() {
                return;
            }
        }
    };
    let answers_out = async move {
        while let Some((release, chunk)) = rx.recv().await {
            tokio::time::sleep_until(release).await;
            if client_out.write_all(&chunk).await.is_err() {
                return;
            }
        }
    };
    tokio::select! {
        _ = requests => {}
        () = async { tokio::join!(answers_in, answers_out); } => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An echo server standing in for the store.
    async fn echo() -> SocketAddr {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            while let Ok((mut s, _)) = listener.accept().await {
                tokio::spawn(async move {
                    let mut buf = [0u8; 64];
                    while let Ok(n) = s.read(&mut buf).await {
                        if n == 0 || s.write_all(&buf[..n]).await.is_err() {
                            return;
                        }
                    }
                });
            }
        });
        addr
    }

    async fn round_trip(stream: &mut TcpStream) -> Duration {
        let began = Instant::now();
        stream.write_all(b"ping").await.unwrap();
        let mut buf = [0u8; 4];
        stream.read_exact(&mut buf).await.unwrap();
        assert_eq!(&buf, b"ping");
        began.elapsed()
    }

    #[tokio::test]
    async fn holds_answers_back_only_while_set_and_measures_it() {
        let proxy = DelayProxy::start("127.0.0.1:0".parse().unwrap(), echo().await, 1)
            .await
            .unwrap();
        let mut stream = TcpStream::connect(proxy.addr).await.unwrap();
        round_trip(&mut stream).await;
        proxy.set(Duration::from_millis(150), Duration::from_millis(20));
        let slow = round_trip(&mut stream).await;
        assert!(slow >= Duration::from_millis(150), "{slow:?}");
        let measured = proxy.clear();
        assert_eq!(measured.held, 1);
        assert!(
            (150..=170).contains(&(measured.mean.as_millis() as u64)),
            "{measured}"
        );
        // Reverted: nothing held back any more.
        round_trip(&mut stream).await;
        assert_eq!(proxy.clear().held, 0);
    }

    #[tokio::test]
    async fn a_cut_drops_what_was_held_back_and_lets_new_connections_pass() {
        let proxy = DelayProxy::start("127.0.0.1:0".parse().unwrap(), echo().await, 1)
            .await
            .unwrap();
        let mut held = TcpStream::connect(proxy.addr).await.unwrap();
        round_trip(&mut held).await;
        proxy.set(Duration::from_millis(300), Duration::ZERO);
        held.write_all(b"lost").await.unwrap();
        tokio::time::sleep(Duration::from_millis(50)).await;
        proxy.cut();
        // The answer was held back when the link went: it never comes.
        let mut buf = [0u8; 4];
        let read = tokio::time::timeout(Duration::from_secs(2), held.read(&mut buf)).await;
        assert!(matches!(read, Ok(Ok(0)) | Ok(Err(_))), "{read:?}");
        proxy.clear();
        let mut fresh = TcpStream::connect(proxy.addr).await.unwrap();
        round_trip(&mut fresh).await;
    }
}
