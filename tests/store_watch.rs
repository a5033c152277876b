//! The store's timeline against real servers on loopback: a redis-server's evictions
//! under a lowered `maxmemory`, a SIGKILL and a restart with no persistence; a
//! primary and its replica through a promotion (`REPLICAOF NO ONE`), a split and an
//! empty restart; a Sentinel's lines; a memcached node lost and started again. The
//! tests fail, not skip, without redis-server or memcached.

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use sessionstorm::store::resp::{Connection, Reply};
use sessionstorm::store::timeline::{StoreEventKind, StoreTimeline};
use sessionstorm::store::watch::{fixed, watch, Member, Protocol, Roles, Watched};
use tokio_util::sync::CancellationToken;

/// A server process on a loopback port, killed when dropped.
struct Server {
    child: Child,
    /// Its working folder, its own (a replica writes the copy it receives to disk,
    /// which a restarted primary must not load), removed after it.
    _dir: tempfile::TempDir,
}

impl Server {
    /// Runs `program` with `args` in a fresh folder, and waits until `port` takes
    /// connections.
    fn start(program: &str, args: &[&str], port: u16) -> Server {
        let dir = tempfile::tempdir().unwrap();
        let child = Command::new(program)
            .args(args)
            .current_dir(dir.path())
            .stdout(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("{program} runs (apt-get install {program}): {e}"));
        let deadline = Instant::now() + Duration::from_secs(5);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "{program} did not come up");
            std::thread::sleep(Duration::from_millis(20));
        }
        Server { child, _dir: dir }
    }

    /// A redis-server without persistence on `port`, with `more` flags; a replica of
    /// it syncs at once.
    fn redis(port: u16, more: &[&str]) -> Server {
        let port_text = port.to_string();
        let mut args = vec!["--port", &port_text, "--bind", "127.0.0.1"];
        args.extend(["--save", "", "--appendonly", "no"]);
        args.extend(["--maxmemory-policy", "allkeys-lru"]);
        args.extend(["--repl-diskless-sync-delay", "0"]);
        args.extend(more);
        Server::start("redis-server", &args, port)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
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

/// Members `store-0 ..` at `addrs`.
fn members(addrs: &[&str], protocol: Protocol) -> Vec<Member> {
    (addrs.iter().enumerate())
        .map(|(i, addr)| Member {
            name: format!("store-{i}"),
            protocol,
            locate: fixed(addr.to_string()),
        })
        .collect()
}

async fn sleep_ms(ms: u64) {
    tokio::time::sleep(Duration::from_millis(ms)).await;
}

/// Each event as a person reads it: `store-0 restarted …`.
fn said(timeline: &StoreTimeline) -> Vec<String> {
    (timeline.events.iter())
        .map(|e| format!("{} {}", timeline.who(e), e.detail))
        .collect()
}

/// Where in `timeline`'s events `member` first did `kind`.
fn first(timeline: &StoreTimeline, member: &str, kind: StoreEventKind) -> usize {
    (timeline.events.iter())
        .position(|e| timeline.who(e) == member && e.kind == kind)
        .unwrap_or_else(|| panic!("no {kind:?} of {member}: {:#?}", said(timeline)))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn evictions_a_kill_and_an_empty_restart_are_on_the_timeline() {
    let port = free_port();
    let addr = format!("127.0.0.1:{port}");
    let redis = Server::redis(port, &[]);
    let stop = CancellationToken::new();
    let watched = Watched::single("store", Protocol::Redis, fixed(addr.to_string()));
    let watcher = tokio::spawn(watch(watched, tokio::time::Instant::now(), stop.clone()));

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
    sleep_ms(600).await;
    let reply = call(&addr, &["CONFIG", "SET", "maxmemory", "1mb"]).await;
    assert_eq!(reply, Reply::Simple("OK".into()));
    // Redis evicts as writes come in.
    for k in 0..50 {
        connection
            .call(&["SET", &format!("more:{k}"), &value])
            .await
            .unwrap();
    }
    sleep_ms(600).await;

    drop(redis);
    sleep_ms(600).await;
    let _again = Server::redis(port, &[]);
    sleep_ms(600).await;
    stop.cancel();
    let timeline = watcher.await.unwrap().timeline;

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
    // A single store keeps its shape: no members, no roles.
    assert!(timeline.members.is_empty() && timeline.primaries.is_empty());
}

/// A primary and its replica: the replica's lag is measured, a promotion while the
/// primary still serves is a split, and the primary restarted empty empties the
/// replica that follows it again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_promotion_a_split_and_an_empty_primary_are_told_per_member() {
    let (p, r) = (free_port(), free_port());
    let (primary, replica) = (format!("127.0.0.1:{p}"), format!("127.0.0.1:{r}"));
    let first_primary = Server::redis(p, &[]);
    let _replica = Server::redis(r, &["--replicaof", "127.0.0.1", &p.to_string()]);
    let stop = CancellationToken::new();
    let watched = Watched {
        store: "store".into(),
        members: members(&[&primary, &replica], Protocol::Redis),
        roles: Roles::OnePrimary,
        sentinels: Vec::new(),
    };
    let watcher = tokio::spawn(watch(watched, tokio::time::Instant::now(), stop.clone()));

    let mut connection = Connection::connect(&primary).await.unwrap();
    for k in 0..500 {
        connection
            .call(&["SET", &format!("sess:{k}"), "v"])
            .await
            .unwrap();
    }
    // The replica has them all.
    let deadline = Instant::now() + Duration::from_secs(10);
    while !(call(&replica, &["DBSIZE"]).await == Reply::Integer(500)) {
        assert!(Instant::now() < deadline, "the replica did not catch up");
        sleep_ms(50).await;
    }
    sleep_ms(600).await;
    assert_eq!(
        call(&replica, &["REPLICAOF", "NO", "ONE"]).await,
        Reply::Simple("OK".into())
    );
    sleep_ms(600).await;
    drop(first_primary);
    sleep_ms(600).await;
    let _empty = Server::redis(p, &[]);
    sleep_ms(600).await;
    let follow = ["REPLICAOF", "127.0.0.1", &p.to_string()];
    assert_eq!(call(&replica, &follow).await, Reply::Simple("OK".into()));
    let deadline = Instant::now() + Duration::from_secs(10);
    while !(call(&replica, &["DBSIZE"]).await == Reply::Integer(0)) {
        assert!(Instant::now() < deadline, "the replica did not resync");
        sleep_ms(50).await;
    }
    sleep_ms(600).await;
    stop.cancel();
    let recorded = watcher.await.unwrap();
    let t = &recorded.timeline;
    use StoreEventKind::*;

    let promoted = first(t, "store-1", Role);
    assert_eq!(
        t.events[promoted].detail,
        "became a primary (was a replica)"
    );
    let split = first(t, "store", Split);
    assert_eq!(
        t.events[split].detail,
        "2 primaries at once: store-0, store-1"
    );
    let restarted = first(t, "store-0", Restarted);
    assert!(promoted < restarted && split < restarted, "{:#?}", said(t));
    assert_eq!(
        t.events[restarted].detail,
        "restarted (a new process): it holds 0 keys, 500 before"
    );
    let emptied = first(t, "store-1", Emptied);
    assert!(restarted < emptied, "{:#?}", said(t));
    assert!(t.events[emptied].replica, "{:?}", t.events[emptied]);
    // Who was primary when: store-0 until it died and again once back; store-1 from
    // its promotion until it followed store-0 again.
    let spans: Vec<&str> = t.primaries.iter().map(|s| s.member.as_str()).collect();
    assert_eq!(
        spans,
        ["store-0", "store-1", "store-0"],
        "{:?}",
        t.primaries
    );
    assert!(
        t.primaries[1].from_ms < t.primaries[0].to_ms,
        "a split overlaps"
    );
    // The replica's lag was measured while it followed store-0, in both histories.
    let replica_points = &t.members[1].points;
    assert!(
        replica_points.iter().any(|p| p.lag_bytes_max.is_some()),
        "{replica_points:?}"
    );
    let before_promotion = t.events[promoted].since_ms;
    assert!(
        recorded.lag.at(before_promotion).is_some(),
        "{:?}",
        recorded.lag
    );
    // What the service could see is the primaries' doing, not the replica's resync.
    let after = Duration::from_millis(t.events.last().unwrap().at_ms + 1000);
    let nearest = t.nearest(after).unwrap();
    assert!(
        nearest.starts_with("store-1 became a replica (was a primary)"),
        "{nearest}"
    );
}

/// A Sentinel's lines: its primary killed, it says the primary is down, then that it
/// found no replica to promote.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sentinel_s_lines_are_on_the_timeline() {
    let (p, s) = (free_port(), free_port());
    let primary = format!("127.0.0.1:{p}");
    let redis = Server::redis(p, &[]);
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("sentinel.conf");
    std::fs::write(
        &config,
        format!(
            "port {s}\nbind 127.0.0.1\nsentinel monitor sessions 127.0.0.1 {p} 1\nsentinel down-after-milliseconds sessions 500\n"
        ),
    )
    .unwrap();
    let _sentinel = Server::start("redis-server", &[config.to_str().unwrap(), "--sentinel"], s);
    let stop = CancellationToken::new();
    let watched = Watched {
        store: "store".into(),
        members: members(&[&primary], Protocol::Redis),
        roles: Roles::OnePrimary,
        sentinels: vec![("sentinel-0".into(), fixed(format!("127.0.0.1:{s}")))],
    };
    let watcher = tokio::spawn(watch(watched, tokio::time::Instant::now(), stop.clone()));
    sleep_ms(1000).await;
    drop(redis);
    sleep_ms(2000).await;
    stop.cancel();
    let t = watcher.await.unwrap().timeline;
    let lines: Vec<&str> = (t.events.iter())
        .filter(|e| e.kind == StoreEventKind::Sentinel)
        .map(|e| e.detail.as_str())
        .collect();
    let down = format!("+sdown master sessions 127.0.0.1 {p}");
    assert!(lines.contains(&down.as_str()), "{lines:?}");
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("+odown master sessions")),
        "{lines:?}"
    );
    assert!(
        lines.contains(
            &format!("-failover-abort-no-good-slave master sessions 127.0.0.1 {p}").as_str()
        ),
        "{lines:?}"
    );
    assert!(
        (t.events.iter())
            .filter(|e| e.kind == StoreEventKind::Sentinel)
            .all(|e| e.member == "sentinel-0" && e.since_ms == e.at_ms),
        "{:#?}",
        t.events
    );
    // The lines lead up to what the primary did; they are never the nearest event.
    assert!(t
        .nearest(Duration::from_secs(60))
        .unwrap()
        .starts_with("store-0 stopped"));
}

/// A memcached node lost and started again: it stopped answering and came back a
/// new process, empty.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_memcached_node_lost_comes_back_empty() {
    let port = free_port();
    let addr = format!("127.0.0.1:{port}");
    let port_text = port.to_string();
    let args = [
        "-p",
        &port_text,
        "-l",
        "127.0.0.1",
        "-U",
        "0",
        "-u",
        "nobody",
    ];
    let node = Server::start("memcached", &args, port);
    let stop = CancellationToken::new();
    let watched = Watched {
        store: "store".into(),
        members: members(&[&addr], Protocol::Memcached),
        roles: Roles::None,
        sentinels: Vec::new(),
    };
    let watcher = tokio::spawn(watch(watched, tokio::time::Instant::now(), stop.clone()));
    {
        use tokio::io::{AsyncBufReadExt, AsyncWriteExt};
        let mut stream =
            tokio::io::BufReader::new(tokio::net::TcpStream::connect(&addr).await.unwrap());
        for k in 0..40 {
            let set = format!("set sess:{k} 0 0 1\r\nv\r\n");
            stream.get_mut().write_all(set.as_bytes()).await.unwrap();
            let mut answer = String::new();
            stream.read_line(&mut answer).await.unwrap();
            assert_eq!(answer, "STORED\r\n");
        }
    }
    sleep_ms(600).await;
    drop(node);
    sleep_ms(600).await;
    let _again = Server::start("memcached", &args, port);
    sleep_ms(600).await;
    stop.cancel();
    let t = watcher.await.unwrap().timeline;
    assert_eq!(
        said(&t),
        [
            "store-0 stopped answering",
            "store-0 answers again",
            "store-0 restarted (a new process): it holds 0 keys, 40 before",
        ]
    );
    assert!(!t.events[2].replica, "a pool's nodes have no roles");
    let most = t.members[0].points.iter().map(|p| p.keys_max).max();
    assert_eq!(most, Some(40));
    assert!(t.primaries.is_empty());
}
