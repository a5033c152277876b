//! The store's timeline against a real redis-server on loopback: evictions under a
//! lowered `maxmemory`, a SIGKILL and a restart with no persistence are each seen and
//! told apart (the tests fail, not skip, without redis-server).

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use sessionstorm::store::resp::{Connection, Reply};
use sessionstorm::store::watch::{watch, Locate, StoreEventKind};
use tokio_util::sync::CancellationToken;

/// A redis-server without persistence on `port`, killed when dropped.
struct Redis(Child);

impl Redis {
    fn start(port: u16) -> Redis {
        let child = Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .args(["--maxmemory-policy", "allkeys-lru"])
            .stdout(Stdio::null())
            .spawn()
            .expect("redis-server runs (apt-get install redis-server)");
        let deadline = Instant::now() + Duration::from_secs(5);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "redis-server did not come up");
            std::thread::sleep(Duration::from_millis(20));
        }
        Redis(child)
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

async fn call(addr: &str, args: &[&str]) -> Reply {
    let mut connection = Connection::connect(addr).await.unwrap();
    connection.call(args).await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn evictions_a_kill_and_an_empty_restart_are_on_the_timeline() {
    let port = free_port();
    let addr = format!("127.0.0.1:{port}");
    let redis = Redis::start(port);
    let stop = CancellationToken::new();
    let located = addr.clone();
    let locate: Locate = Box::new(move || {
        let addr = located.clone();
        Box::pin(async move { Some(addr) })
    });
    let watcher = tokio::spawn(watch(
        "store".into(),
        locate,
        tokio::time::Instant::now(),
        stop.clone(),
    ));

    // 2000 keys of 1 KiB, then a limit far below what they take.
    let value = "x".repeat(1024);
    let mut connection = Connection::connect(&addr).await.unwrap();
    for k in 0..2000 {
        let reply = connection
            .call(&["SET", &format!("sess:{k}"), &value])
            .await
            .unwrap();
        assert_eq!(reply, Reply::Simple("OK".into()));
    }
    tokio::time::sleep(Duration::from_millis(600)).await;
    let reply = call(&addr, &["CONFIG", "SET", "maxmemory", "1mb"]).await;
    assert_eq!(reply, Reply::Simple("OK".into()));
    // Redis evicts as writes come in.
    for k in 0..50 {
        connection
            .call(&["SET", &format!("more:{k}"), &value])
            .await
            .unwrap();
    }
    tokio::time::sleep(Duration::from_millis(600)).await;

    drop(redis);
    tokio::time::sleep(Duration::from_millis(600)).await;
    let _again = Redis::start(port);
    tokio::time::sleep(Duration::from_millis(600)).await;
    stop.cancel();
    let timeline = watcher.await.unwrap();

    let kinds: Vec<StoreEventKind> = timeline.events.iter().map(|e| e.kind).collect();
    use StoreEventKind::*;
    assert_eq!(
        kinds,
        // The new process starts with no limit: the lowered one went with the old.
        [
            MemoryLimit,
            Evicted,
            Unreachable,
            Reachable,
            Restarted,
            MemoryLimit
        ],
        "{:#?}",
        timeline.events
    );
    let evicted = timeline.events[1].keys;
    assert!(evicted > 1000, "{evicted} of 2050 keys evicted");
    assert_eq!(timeline.evicted_total, evicted);
    assert!(
        timeline.events[4].detail.contains("it holds 0 keys"),
        "{:?}",
        timeline.events[4]
    );
    let most = timeline.points.iter().map(|p| p.keys_max).max().unwrap();
    assert_eq!(most, 2000, "{:?}", timeline.points);
}
