//! The actix-app binary as processes on loopback: the counter's before/after semantics,
//! a new cookie value on every answer, a session carried by one process to another only
//! when they share the key (cookie store, and Redis with a local `redis-server`), and a
//! clean exit on SIGTERM.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const SECRET: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn wait_for_port(port: u16, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(15);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "{what} did not listen");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A child process killed when the test ends, whatever happens.
struct Process(Child);

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts actix-app with `env` on a free port.
fn start(env: &[(&str, &str)]) -> (Process, u16) {
    let port = free_port();
    let mut command = Command::new(env!("CARGO_BIN_EXE_actix-app"));
    command
        .env("PORT", port.to_string())
        .env("SESSION_KEY", SECRET)
        .stderr(Stdio::null());
    for (name, value) in env {
        command.env(name, value);
    }
    let child = Process(command.spawn().unwrap());
    wait_for_port(port, "actix-app");
    (child, port)
}

/// Starts a throwaway `redis-server` (no persistence) on a free port.
fn redis() -> (Process, u16) {
    let port = free_port();
    let child = Command::new("redis-server")
        .args([
            "--port",
            &port.to_string(),
            "--save",
            "",
            "--bind",
            "127.0.0.1",
        ])
        .stdout(Stdio::null())
        .spawn()
        .expect("redis-server is installed (the sessionstorm/redis image is built from it)");
    let child = Process(child);
    wait_for_port(port, "redis-server");
    (child, port)
}

/// One answer: status, the `id` cookie it sets (as `id=…`), the count it shows.
struct Answer {
    status: u16,
    cookie: Option<String>,
    count: Option<u64>,
    head: String,
}

fn get(port: u16, path: &str, cookie: Option<&str>) -> Answer {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
    let cookie = cookie
        .map(|c| format!("Cookie: {c}\r\n"))
        .unwrap_or_default();
    let request = format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n{cookie}\r\n");
    stream.write_all(request.as_bytes()).unwrap();
    let mut raw = String::new();
    stream.read_to_string(&mut raw).unwrap();
    let (head, body) = raw.split_once("\r\n\r\n").unwrap();
    let cookie = head
        .lines()
        .filter_map(|l| l.split_once(": "))
        .find(|(n, _)| n.eq_ignore_ascii_case("set-cookie"))
        .map(|(_, v)| v.split(';').next().unwrap().to_string());
    let count = body
        .split_once("Current count: ")
        .map(|(_, rest)| rest.chars().take_while(char::is_ascii_digit).collect())
        .map(|digits: String| digits.parse().unwrap());
    Answer {
        status: head[9..12].parse().unwrap(),
        cookie,
        count,
        head: head.to_string(),
    }
}

/// Visits `/` once on each port in turn, carrying the cookie; returns the counts shown.
fn visit(ports: &[u16]) -> Vec<u64> {
    let mut cookie: Option<String> = None;
    let mut counts = Vec::new();
    for &port in ports {
        let answer = get(port, "/", cookie.as_deref());
        assert_eq!(answer.status, 200, "{}", answer.head);
        let set = answer.cookie.expect("every answer sets the session cookie");
        assert!(set.starts_with("id="), "{set}");
        assert_ne!(cookie.as_ref(), Some(&set), "the cookie value changes");
        cookie = Some(set);
        counts.push(answer.count.expect("the page shows the count"));
    }
    counts
}

fn stop(mut process: Process) -> Option<i32> {
    let killed = Command::new("kill")
        .args(["-TERM", &process.0.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        if let Some(status) = process.0.try_wait().unwrap() {
            return status.code();
        }
        assert!(Instant::now() < deadline, "no exit after SIGTERM");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn the_page_shows_the_count_before_the_visit_and_the_cookie_changes_every_time() {
    let (app, port) = start(&[("STORE", "cookie")]);
    assert_eq!(visit(&[port, port, port, port]), [0, 1, 2, 3]);
    let health = get(port, "/healthz", None);
    assert_eq!((health.status, health.cookie), (200, None));
    assert!(
        !health.head.to_ascii_lowercase().contains("x-served-by"),
        "{}",
        health.head
    );
    assert_eq!(stop(app), Some(0));
}

#[test]
fn a_cookie_only_session_moves_between_processes_only_with_a_shared_key() {
    let (_a, a) = start(&[("STORE", "cookie")]);
    let (_b, b) = start(&[("STORE", "cookie")]);
    assert_eq!(visit(&[a, b, a, b]), [0, 1, 2, 3]);

    let (_c, c) = start(&[("STORE", "cookie"), ("KEY", "generate")]);
    let (_d, d) = start(&[("STORE", "cookie"), ("KEY", "generate")]);
    // d cannot decrypt c's cookie: a fresh session, and c cannot read d's either.
    assert_eq!(visit(&[c, c, d, c]), [0, 1, 0, 0]);
}

#[test]
fn a_redis_session_moves_between_processes_only_with_a_shared_key() {
    let (_redis, redis_port) = redis();
    let url = format!("redis://127.0.0.1:{redis_port}");
    let env = |key| {
        [
            ("STORE", "redis"),
            ("SESSION_STORE", url.as_str()),
            ("KEY", key),
        ]
    };
    let (a, a_port) = start(&env("shared"));
    let (_b, b_port) = start(&env("shared"));
    assert_eq!(get(a_port, "/healthz", None).status, 200);
    assert_eq!(visit(&[a_port, b_port, a_port, b_port]), [0, 1, 2, 3]);
    assert_eq!(stop(a), Some(0));

    let (_c, c) = start(&env("generate"));
    let (_d, d) = start(&env("generate"));
    assert_eq!(visit(&[c, c, d, c]), [0, 1, 0, 0]);
}

#[test]
fn bad_configuration_is_refused_with_exit_2() {
    let out = Command::new(env!("CARGO_BIN_EXE_actix-app"))
        .env("STORE", "memory")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("accepted values: redis, cookie"));
}
