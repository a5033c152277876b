//! Shared test helpers: the real server in-process on 127.0.0.1:0, a throwaway redis-server,
//! and contract checks that every mode must pass while its replica stays alive.

#![allow(dead_code)] // each test binary uses a different subset

use std::net::{SocketAddr, TcpListener as StdListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use reqwest::{Response, StatusCode};
use serde_json::{json, Value};
use session_app::config::{Config, Mode};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// One running instance of the service; stopped gracefully by [`TestApp::stop`], killed by
/// [`TestApp::kill`], or aborted when dropped (e.g. on a failed assertion).
pub struct TestApp {
    pub base: String,
    pub instance: String,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<std::io::Result<()>>>,
}

/// The configuration of a test app on a free port: short session TTL, no TLS, no leak,
/// no waiting for replicas; a test changes what it tests.
pub fn config(mode: Mode, store_url: Option<String>, instance: &str) -> Config {
    Config {
        mode,
        store_url,
        port: 0,
        instance_id: instance.to_owned(),
        ttl_secs: 60,
        flush_interval_ms: session_app::config::DEFAULT_FLUSH_INTERVAL_MS,
        tls: false,
        leak_kib_per_request: 0,
        store_wait: None,
    }
}

impl TestApp {
    pub async fn start(mode: Mode, store_url: Option<String>, instance: &str) -> TestApp {
        TestApp::start_with(config(mode, store_url, instance)).await
    }

    pub async fn start_with(config: Config) -> TestApp {
        let instance = config.instance_id.clone();
        let scheme = if config.tls { "https" } else { "http" };
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (tx, rx) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            session_app::build_and_serve(&config, listener, async {
                let _ = rx.await;
            })
            .await
        });
        TestApp {
            base: format!("{scheme}://{addr}"),
            instance,
            stop: Some(tx),
            task: Some(task),
        }
    }

    pub async fn memory(instance: &str) -> TestApp {
        TestApp::start(Mode::Memory, None, instance).await
    }

    pub async fn redis(redis: &RedisServer, instance: &str) -> TestApp {
        TestApp::start(Mode::Redis, Some(redis.url()), instance).await
    }

    /// Redis mode waiting for `replicas` replicas after every write, `timeout_ms` at most.
    pub async fn redis_waiting(
        redis: &RedisServer,
        instance: &str,
        replicas: u32,
        timeout_ms: u64,
    ) -> TestApp {
        let store_wait = Some(session_app::config::StoreWait {
            replicas,
            timeout_ms,
        });
        TestApp::start_with(Config {
            store_wait,
            ..config(Mode::Redis, Some(redis.url()), instance)
        })
        .await
    }

    pub async fn write_behind(redis: &RedisServer, instance: &str, flush_ms: u64) -> TestApp {
        TestApp::start_with(Config {
            flush_interval_ms: flush_ms,
            ..config(Mode::WriteBehind, Some(redis.url()), instance)
        })
        .await
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// Graceful stop; fails the test if the server does not drain within 5 s.
    pub async fn stop(mut self) {
        let _ = self.stop.take().unwrap().send(());
        let task = self.task.take().unwrap();
        tokio::time::timeout(Duration::from_secs(5), task)
            .await
            .expect("server did not shut down within 5 s")
            .unwrap()
            .unwrap();
    }
}

impl TestApp {
    /// The in-process stand-in for SIGKILL: aborts the server task, so its future is dropped
    /// where it stands and nothing after the serve loop (such as a final flush) runs. Waits
    /// until the task is really gone. Connections already open may linger in their own tasks,
    /// so the caller must not talk to this instance again.
    pub async fn kill(mut self) {
        let task = self.task.take().unwrap();
        task.abort();
        let err = task
            .await
            .expect_err("server task finished before it was killed");
        assert!(err.is_cancelled(), "{err}");
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

/// A private redis-server child process, killed when dropped (also during a panic).
pub struct RedisServer {
    pub port: u16,
    child: Child,
}

impl RedisServer {
    /// Starts on a free port. The port is free when picked, not when redis-server binds
    /// it: another test may take it in between, and then redis-server exits; a few other
    /// ports are tried before giving up.
    pub fn start() -> RedisServer {
        let mut failures = Vec::new();
        for _ in 0..3 {
            match Self::try_start_on(free_port()) {
                Ok(server) => return server,
                Err(why) => failures.push(why),
            }
        }
        panic!("redis-server did not come up: {failures:?}")
    }

    /// A replica of `primary`, on a free port, once it answers PING (it may still be
    /// syncing).
    pub fn replica_of(primary: &RedisServer) -> RedisServer {
        let of = ["--replicaof", "127.0.0.1", &primary.port.to_string()];
        Self::try_start_with(free_port(), &of).expect("a replica starts")
    }

    /// Starts on a given port (used to restart the store "in place").
    pub fn try_start_on(port: u16) -> Result<RedisServer, String> {
        Self::try_start_with(port, &[])
    }

    /// Redis Cluster nodes, one primary each, in `dir` (where they keep their
    /// cluster state), joined into one cluster that covers every slot.
    pub fn cluster(dir: &std::path::Path, nodes: usize) -> Vec<RedisServer> {
        let servers: Vec<RedisServer> = (0..nodes)
            .map(|_| {
                let port = free_port();
                let config = dir.join(format!("nodes-{port}.conf"));
                let node = ["--cluster-enabled", "yes", "--cluster-config-file"];
                let extra = [&node[..], &[config.to_str().unwrap()]].concat();
                Self::try_start_with(port, &extra).expect("a cluster node starts")
            })
            .collect();
        let addresses: Vec<String> = servers
            .iter()
            .map(|s| format!("127.0.0.1:{}", s.port))
            .collect();
        let created = Command::new("redis-cli")
            .arg("--cluster")
            .arg("create")
            .args(&addresses)
            .args(["--cluster-replicas", "0", "--cluster-yes"])
            .output()
            .expect("redis-cli runs");
        assert!(
            created.status.success(),
            "{}",
            String::from_utf8_lossy(&created.stdout)
        );
        let deadline = Instant::now() + Duration::from_secs(10);
        for server in &servers {
            loop {
                let info = Command::new("redis-cli")
                    .args(["-p", &server.port.to_string(), "cluster", "info"])
                    .output()
                    .expect("redis-cli runs");
                if String::from_utf8_lossy(&info.stdout).contains("cluster_state:ok") {
                    break;
                }
                assert!(
                    Instant::now() < deadline,
                    "the cluster never covered its slots"
                );
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        servers
    }

    /// How many keys this server holds.
    pub fn keys(&self) -> u64 {
        let mut conn = redis::Client::open(self.url())
            .unwrap()
            .get_connection()
            .unwrap();
        redis::cmd("DBSIZE").query(&mut conn).unwrap()
    }

    fn try_start_with(port: u16, extra: &[&str]) -> Result<RedisServer, String> {
        let child = Command::new("redis-server")
            .args(["--port", &port.to_string()])
            .args(["--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .args(extra)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| {
                panic!(
                    "cannot run redis-server ({e}); install redis-server \
                     (e.g. apt-get install -y redis-server) to run the redis-mode tests"
                )
            });
        let mut server = RedisServer { port, child };
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            if let Ok(Some(status)) = server.child.try_wait() {
                return Err(format!("redis-server on port {port} exited: {status}"));
            }
            // Ours, not another test's redis-server on a port ours failed to bind.
            if answers_ping(port) && matches!(server.child.try_wait(), Ok(None)) {
                return Ok(server);
            }
            if Instant::now() > deadline {
                return Err(format!(
                    "redis-server on port {port} not reachable after 5 s"
                ));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A port nobody listens on right now. Racy in theory, fine for a handful of local tests.
/// Whether a Redis answers PING on `port`: a listener alone could be another
/// process that took the port before redis-server could bind it.
fn answers_ping(port: u16) -> bool {
    use std::io::{Read, Write};
    let Ok(mut stream) = TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(1)));
    let mut answer = [0u8; 7];
    stream.write_all(b"PING\r\n").is_ok()
        && stream.read_exact(&mut answer).is_ok()
        && &answer == b"+PONG\r\n"
}

/// A private memcached child process, killed when dropped (also during a panic).
pub struct MemcachedServer {
    pub port: u16,
    child: Child,
}

impl MemcachedServer {
    pub fn start() -> MemcachedServer {
        Self::start_on(free_port())
    }

    /// Starts on `port` (again, to bring a lost node back empty), once it answers.
    pub fn start_on(port: u16) -> MemcachedServer {
        let child = Command::new("memcached")
            .args(["-p", &port.to_string(), "-l", "127.0.0.1", "-U", "0"])
            // memcached refuses to run as root unless told which user to be.
            .args(["-u", "root"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| {
                panic!(
                    "cannot run memcached ({e}); install memcached \
                     (e.g. apt-get install -y memcached) to run the memcached-mode tests"
                )
            });
        let server = MemcachedServer { port, child };
        let deadline = Instant::now() + Duration::from_secs(5);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "memcached on {port} did not come up"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        server
    }

    pub fn node(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }
}

impl Drop for MemcachedServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn free_port() -> u16 {
    let l = StdListener::bind("127.0.0.1:0").unwrap();
    let SocketAddr::V4(a) = l.local_addr().unwrap() else {
        unreachable!()
    };
    a.port()
}

/// Trusts any certificate: `TLS=self-signed` replicas make theirs at start.
pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .danger_accept_invalid_certs(true)
        .build()
        .unwrap()
}

pub fn served_by(res: &Response) -> &str {
    res.headers()
        .get("x-served-by")
        .expect("X-Served-By missing")
        .to_str()
        .unwrap()
}

/// `POST /session`; checks the contract's answer and returns (cookie header value, id).
pub async fn create(c: &reqwest::Client, app: &TestApp) -> (String, String) {
    let res = c.post(app.url("/session")).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::CREATED);
    assert_eq!(served_by(&res), app.instance);
    let set_cookie = res
        .headers()
        .get("set-cookie")
        .expect("Set-Cookie missing")
        .to_str()
        .unwrap()
        .to_owned();
    let body: Value = res.json().await.unwrap();
    let id = body["session"].as_str().expect("session id").to_owned();
    assert_eq!(set_cookie, format!("sid={id}; Path=/; HttpOnly"));
    assert_eq!(body, json!({"session": id, "version": 0, "items": []}));
    (format!("sid={id}"), id)
}

pub async fn append(
    c: &reqwest::Client,
    app: &TestApp,
    cookie: &str,
    op: &str,
    item: &str,
) -> Response {
    c.post(app.url("/session/items"))
        .header("cookie", cookie)
        .json(&json!({"op": op, "item": item}))
        .send()
        .await
        .unwrap()
}

pub async fn get(c: &reqwest::Client, app: &TestApp, cookie: Option<&str>) -> Response {
    let mut req = c.get(app.url("/session"));
    if let Some(cookie) = cookie {
        req = req.header("cookie", cookie);
    }
    req.send().await.unwrap()
}

/// Everything the contract promises while the replica is alive.
pub async fn check_contract(app: &TestApp) {
    let c = client();
    let (cookie, id) = create(&c, app).await;

    let res = append(&c, app, &cookie, "op-1", "apple").await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(served_by(&res), app.instance);
    let body: Value = res.json().await.unwrap();
    assert_eq!(
        body,
        json!({"session": id, "version": 1, "items": ["apple"]})
    );

    // The same op again (a client retry) is answered with the current state, not re-applied.
    let res = append(&c, app, &cookie, "op-1", "apple").await;
    assert_eq!(res.status(), StatusCode::OK);
    let body: Value = res.json().await.unwrap();
    assert_eq!(
        body,
        json!({"session": id, "version": 1, "items": ["apple"]})
    );

    let res = append(&c, app, &cookie, "op-2", "pear").await;
    let body: Value = res.json().await.unwrap();
    assert_eq!(
        body,
        json!({"session": id, "version": 2, "items": ["apple", "pear"]})
    );

    // Cookie among others, sent by hand; numeric op ids are accepted as their text.
    let res = c
        .post(app.url("/session/items"))
        .header("cookie", format!("theme=dark; {cookie}; x=1"))
        .body(r#"{"op": 3, "item": "fig"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.json::<Value>().await.unwrap()["version"], 3);

    let res = get(&c, app, Some(&cookie)).await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(served_by(&res), app.instance);
    let body: Value = res.json().await.unwrap();
    assert_eq!(
        body,
        json!({"session": id, "version": 3, "items": ["apple", "pear", "fig"]})
    );

    // Unknown, missing and malformed session ids are all "unknown session".
    let unknown = "sid=00000000-0000-4000-8000-000000000000";
    for cookie in [Some(unknown), None, Some("sid=garbage")] {
        let res = get(&c, app, cookie).await;
        assert_eq!(res.status(), StatusCode::NOT_FOUND, "GET with {cookie:?}");
        assert_eq!(served_by(&res), app.instance);
    }
    let res = append(&c, app, unknown, "op-1", "x").await;
    assert_eq!(res.status(), StatusCode::NOT_FOUND);
    assert_eq!(served_by(&res), app.instance);
    let res = c
        .post(app.url("/session/items"))
        .json(&json!({"op": "o", "item": "x"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::NOT_FOUND);

    // Malformed bodies: 400 whatever the content type or the shape.
    for body in [
        "{not json",
        r#"{"item": "no op"}"#,
        r#"{"op": "o"}"#,
        r#"{"op": "", "item": "x"}"#,
        "",
    ] {
        let res = c
            .post(app.url("/session/items"))
            .header("cookie", &cookie)
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::BAD_REQUEST, "body {body:?}");
        assert_eq!(served_by(&res), app.instance);
        let err: Value = res.json().await.unwrap();
        assert!(err["error"].is_string(), "{err}");
    }
    // None of that changed the session.
    let body: Value = get(&c, app, Some(&cookie)).await.json().await.unwrap();
    assert_eq!(body["version"], 3);

    let res = c.get(app.url("/healthz")).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(served_by(&res), app.instance);

    // Even axum's own answers are attributed.
    let res = c.get(app.url("/nope")).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::NOT_FOUND);
    assert_eq!(served_by(&res), app.instance);
    let res = c.delete(app.url("/session")).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(served_by(&res), app.instance);
}

/// Many concurrent copies of one op (a client retrying aggressively, or several replicas
/// receiving the same retried request) must apply it exactly once.
pub async fn check_concurrent_duplicates(app: &TestApp) {
    let c = client();
    let (cookie, _) = create(&c, app).await;
    let mut tasks = Vec::new();
    for _ in 0..20 {
        let (c, url, cookie) = (c.clone(), app.url("/session/items"), cookie.clone());
        tasks.push(tokio::spawn(async move {
            let res = c
                .post(url)
                .header("cookie", cookie)
                .json(&json!({"op": "same-op", "item": "once"}))
                .send()
                .await
                .unwrap();
            assert_eq!(res.status(), StatusCode::OK);
            res.json::<Value>().await.unwrap()
        }));
    }
    for t in tasks {
        let body = t.await.unwrap();
        assert_eq!(body["version"], 1, "{body}");
        assert_eq!(body["items"], json!(["once"]));
    }
    let body: Value = get(&c, app, Some(&cookie)).await.json().await.unwrap();
    assert_eq!(body["version"], 1);
    assert_eq!(body["items"], json!(["once"]));
}
