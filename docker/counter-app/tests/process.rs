//! The counter-app binary as a process (memory mode, no Redis needed): real TCP,
//! the redirects and cookie a flow relies on, and a clean exit on SIGTERM.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command};
use std::time::{Duration, Instant};

/// Sends one request and returns the whole answer (the app closes the connection).
fn send(port: u16, request: &str) -> String {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
    stream.write_all(request.as_bytes()).unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).unwrap();
    answer
}

fn header<'a>(answer: &'a str, name: &str) -> Option<&'a str> {
    answer
        .lines()
        .take_while(|l| !l.is_empty())
        .find_map(|l| {
            l.split_once(": ")
                .filter(|(n, _)| n.eq_ignore_ascii_case(name))
        })
        .map(|(_, v)| v.trim())
}

fn start() -> (Child, u16) {
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let child = Command::new(env!("CARGO_BIN_EXE_counter-app"))
        .env("MODE", "memory")
        .env("PORT", port.to_string())
        .env("INSTANCE_ID", "test-1")
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "counter-app did not listen");
        std::thread::sleep(Duration::from_millis(20));
    }
    (child, port)
}

#[test]
fn login_increment_page_and_a_clean_exit_on_sigterm() {
    let (mut child, port) = start();
    let health = send(port, "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n");
    assert!(health.starts_with("HTTP/1.1 200"), "{health}");
    assert_eq!(header(&health, "x-served-by"), Some("test-1"));

    let body = "username=ann&next=%2F";
    let login = send(
        port,
        &format!("POST /accounts/login/ HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\r\n{body}", body.len()),
    );
    assert!(login.starts_with("HTTP/1.1 303"), "{login}");
    let cookie = header(&login, "set-cookie")
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_string();
    assert!(cookie.starts_with("sessionid="), "{cookie}");

    for op in ["a", "b", "b"] {
        let body = format!("op={op}");
        let r = send(
            port,
            &format!("POST /increment HTTP/1.1\r\nHost: x\r\nCookie: {cookie}\r\nContent-Length: {}\r\n\r\n{body}", body.len()),
        );
        assert!(r.starts_with("HTTP/1.1 303"), "{r}");
        assert_eq!(header(&r, "location"), Some("/"));
    }
    let page = send(
        port,
        &format!("GET / HTTP/1.1\r\nHost: x\r\nCookie: {cookie}\r\n\r\n"),
    );
    assert!(page.contains("<span id=\"count\">2</span>"), "{page}");
    let unknown = send(
        port,
        "GET / HTTP/1.1\r\nHost: x\r\nCookie: sessionid=00000000000000000000000000000000\r\n\r\n",
    );
    assert_eq!(
        header(&unknown, "location"),
        Some("/accounts/login/?next=/")
    );

    let killed = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let deadline = Instant::now() + Duration::from_secs(10);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        assert!(Instant::now() < deadline, "no exit after SIGTERM");
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(status.code(), Some(0));
}

#[test]
fn an_unknown_mode_is_refused_with_exit_2() {
    let out = Command::new(env!("CARGO_BIN_EXE_counter-app"))
        .env("MODE", "sticky")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("accepted values: redis, memory"));
}
