//! The load's HTTP/1.1 client: keep-alive connections per origin, each exchange
//! written and read by the operation's own task.
//!
//! The load used reqwest (and then hyper's connection API) until profiling the
//! benchmark showed where a request's CPU went. With reqwest, a quarter of the
//! driver's time was spent around the exchange: parsing the URL again (IDNA
//! included) on every request, cloning the client's service stack, hashing the pool
//! key, spawning a task per request to return the connection. With hyper alone, a
//! request still crossed two tasks and four channels (request queue, response
//! oneshot, body channel, readiness signal), about 25 allocations and several
//! wake-ups per request, and the driver stayed near twice wrk's CPU per request.
//! Like wrk, this client writes the request and parses the answer in place, with
//! httparse (hyper's own parser), on the task that waits for it.
//!
//! What it speaks: requests with a `Content-Length` body; answers framed by
//! `Content-Length`, `Transfer-Encoding: chunked` or the end of the connection;
//! informational (1xx) answers skipped; `Connection: close` and HTTP/1.0 honoured
//! by not reusing the connection. Redirects are never followed: a 303 to a login
//! page is an answer for the checker to judge.
//!
//! `https://` origins get a TLS connection (rustls, through tokio-rustls) with SNI
//! from the URL's host and ALPN `http/1.1`, trusting whom [`super::tls`] says; the
//! configuration is made once per client, when the first TLS connection needs it.
//! A connection is an enum of the plain and the TLS stream, so a plain request
//! pays one `match` per read or write, no allocation and no dynamic call; a TLS
//! connection is boxed once when it is made. A handshake rustls refuses is its own
//! error kind, [`ErrorKind::Tls`], and its reason (an unknown issuer, say) is kept,
//! counted, for the report ([`Http::tls_failures`]).

use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::task::{Context, Poll};
use std::thread::ThreadId;
use std::time::Duration;

use bytes::BytesMut;
use http::Method;
use rustls::pki_types::ServerName;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::TcpStream;
use tokio::sync::Notify;
use tokio_rustls::client::TlsStream;

use super::wire::{encode, read_reply, Outgoing, Reply, READ_SIZE};
use crate::metrics::ErrorKind;
use crate::plan::TlsPlan;
use crate::tls::Reasons;

/// Where requests go: a host and port, the `Host` header that names them, and for
/// `https://` the name the server's certificate must carry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Origin {
    host: String,
    port: u16,
    host_header: String,
    /// `Some` for `https://`: the name sent as SNI and checked in the certificate.
    tls: Option<ServerName<'static>>,
}

impl Origin {
    /// The origin of an `http://` or `https://` URL; `None` for any other URL or
    /// one with no host.
    pub fn of(url: &url::Url) -> Option<Origin> {
        let port = url.port_or_known_default()?;
        let (host, name) = match url.host()? {
            url::Host::Domain(name) => (name.to_string(), ServerName::try_from(name).ok()?),
            url::Host::Ipv4(ip) => (ip.to_string(), ServerName::from(std::net::IpAddr::V4(ip))),
            url::Host::Ipv6(ip) => (ip.to_string(), ServerName::from(std::net::IpAddr::V6(ip))),
        };
        let tls = match url.scheme() {
            "http" => None,
            "https" => Some(name.to_owned()),
            _ => return None,
        };
        let host_header = match url.port() {
            Some(port) => format!("{}:{port}", url.host_str()?),
            None => url.host_str()?.to_string(),
        };
        Some(Origin {
            host,
            port,
            host_header,
            tls,
        })
    }
}

/// The request line's target of `url`: its path and query (the `url` crate has
/// percent-encoded them already).
pub fn path_of(url: &url::Url) -> String {
    url[url::Position::BeforePath..url::Position::AfterQuery].to_string()
}

/// A connection's byte stream: plain TCP, or TLS over it. An enum rather than a
/// trait object, so plain HTTP stays a direct call into the socket.
enum Stream {
    Plain(TcpStream),
    /// Boxed: a TLS session is kilobytes, and connections move in and out of the
    /// pool.
    Tls(Box<TlsStream<TcpStream>>),
}

impl AsyncRead for Stream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Stream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_flush(cx),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}

impl Stream {
    /// The TCP socket under the stream.
    fn tcp(&self) -> &TcpStream {
        match self {
            Stream::Plain(s) => s,
            Stream::Tls(s) => s.get_ref().0,
        }
    }
}

/// One keep-alive connection and what was read on it past the last answer.
struct Conn {
    stream: Stream,
    read: BytesMut,
    /// The request being written, reused from one request to the next.
    write: Vec<u8>,
    slot: Slot,
}

/// Idle connections to one origin made on one thread, the most recently used last.
/// A connection is registered with the runtime of the thread that made it: used
/// from another load thread, each of its wake-ups would cross threads (and stop
/// with that thread's runtime), so each load thread keeps its own.
struct Idle {
    origin: Origin,
    thread: ThreadId,
    conns: Vec<Conn>,
    /// Connections open from this thread to this origin, idle or in use.
    open: Arc<AtomicUsize>,
    /// Wakes a request waiting for a connection when one is handed back or closed.
    freed: Arc<Notify>,
}

/// A connection's place under the cap of its thread and origin
/// ([`Http::with_max_connections`]): given back when the connection is dropped,
/// waking a request that waits for one.
struct Slot {
    open: Arc<AtomicUsize>,
    freed: Arc<Notify>,
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.open.fetch_sub(1, Ordering::Relaxed);
        self.freed.notify_one();
    }
}

/// What a request gets from the pool.
enum Checkout {
    /// An idle connection, open as far as can be told.
    Idle(Conn),
    /// Room for a new connection.
    New(Slot),
}

/// The client: idle keep-alive connections by origin, shared by every operation.
pub struct Http {
    idle: Mutex<Vec<Idle>>,
    timeout: Duration,
    keep_alive: bool,
    max_idle: usize,
    /// Connections open at once per origin and thread; a request beyond them waits
    /// for one.
    max_conns: usize,
    /// Whom to trust on `https://`; made into `tls_config` at the first TLS
    /// connection, so a plain run never reads the platform's certificates.
    tls: TlsPlan,
    tls_config: OnceLock<Arc<rustls::ClientConfig>>,
    /// Why TLS handshakes failed, counted.
    tls_failures: Reasons,
}

impl std::fmt::Debug for Http {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Http")
            .field("timeout", &self.timeout)
            .field("keep_alive", &self.keep_alive)
            .field("max_idle", &self.max_idle)
            .finish_non_exhaustive()
    }
}

/// Why an exchange failed, and whether the request surely never reached the server.
struct Failed {
    kind: ErrorKind,
    unsent: bool,
}

impl Http {
    /// A client giving each exchange `timeout` in all (connecting and the TLS
    /// handshake included), keeping up to `max_idle` idle connections per origin
    /// when `keep_alive`, trusting whom `tls` says on `https://` origins.
    pub fn new(timeout: Duration, keep_alive: bool, max_idle: usize, tls: TlsPlan) -> Http {
        Http {
            idle: Mutex::new(Vec::new()),
            timeout,
            keep_alive,
            max_idle,
            max_conns: usize::MAX,
            tls,
            tls_config: OnceLock::new(),
            tls_failures: Reasons::default(),
        }
    }

    /// At most `max` connections open at once per origin from each thread; a request
    /// beyond them waits for one (its wait counts in its latency and its timeout),
    /// as a client with a connection pool does. Without a cap, every request in
    /// flight opens a connection of its own, and a moment's stall of the service
    /// turns into thousands of connects, a listen queue that overflows and SYNs
    /// resent a second later.
    pub fn with_max_connections(mut self, max: usize) -> Http {
        self.max_conns = max.max(1);
        self
    }

    /// Why TLS handshakes failed so far ("tls: invalid peer certificate:
    /// UnknownIssuer"), with how often.
    pub fn tls_failures(&self) -> std::collections::BTreeMap<String, u64> {
        self.tls_failures.snapshot()
    }

    /// Sends `request` to `origin` and reads the whole answer, within the timeout.
    /// Failures are sorted as the reports count them: a refused or failed connect,
    /// a TLS handshake the client or server refused, a timeout, a reset (the
    /// connection broke before a whole answer came), or a bad body (an answer that
    /// is not HTTP/1.x, or too large).
    pub async fn send(&self, origin: &Origin, request: &Outgoing<'_>) -> Result<Reply, ErrorKind> {
        tokio::time::timeout(self.timeout, self.exchange(origin, request))
            .await
            .unwrap_or(Err(ErrorKind::Timeout))
    }

    async fn exchange(&self, origin: &Origin, request: &Outgoing<'_>) -> Result<Reply, ErrorKind> {
        // A pooled connection the server closed since is mostly found out before
        // use (`Conn::open`); one that closed in between fails the write, and the
        // request, which never reached the server, goes out on a new connection.
        let slot = match self.checkout(origin).await {
            Checkout::Idle(mut conn) => match self.exchange_on(&mut conn, origin, request).await {
                Err(Failed { unsent: true, .. }) => conn.slot,
                result => return self.settle(origin, conn, result),
            },
            Checkout::New(slot) => slot,
        };
        // Boxed: a TLS handshake's future is kilobytes, and inline it would make
        // every exchange's future as large (a whole `send` 1520 bytes against 856),
        // copied whole on every request.
        let mut conn = Box::pin(self.connect(origin, slot)).await?;
        let result = self.exchange_on(&mut conn, origin, request).await;
        self.settle(origin, conn, result)
    }

    /// Keeps the connection for the next request when its answer allows it.
    fn settle(
        &self,
        origin: &Origin,
        conn: Conn,
        result: Result<(Reply, bool), Failed>,
    ) -> Result<Reply, ErrorKind> {
        let (reply, reusable) = result.map_err(|f| f.kind)?;
        // Bytes past the answer would be an answer to no request: out of step.
        if reusable && self.keep_alive && conn.read.is_empty() {
            self.release(origin, conn);
        }
        Ok(reply)
    }

    async fn exchange_on(
        &self,
        conn: &mut Conn,
        origin: &Origin,
        request: &Outgoing<'_>,
    ) -> Result<(Reply, bool), Failed> {
        encode(
            request,
            &origin.host_header,
            self.keep_alive,
            &mut conn.write,
        );
        // Flushing a TCP stream returns at once; TLS may hold records back.
        let written = match conn.stream.write_all(&conn.write).await {
            Ok(()) => conn.stream.flush().await,
            Err(e) => Err(e),
        };
        written.map_err(|_| Failed {
            kind: ErrorKind::Reset,
            unsent: true,
        })?;
        let head_only = *request.method == Method::HEAD;
        read_reply(&mut conn.stream, &mut conn.read, head_only)
            .await
            .map_err(|kind| Failed {
                kind,
                unsent: false,
            })
    }

    /// An idle connection to `origin` the server has not closed, as far as can be
    /// told without writing to it, or room for a new one; waits while this thread
    /// has `max_conns` connections to it in use.
    async fn checkout(&self, origin: &Origin) -> Checkout {
        let thread = std::thread::current().id();
        loop {
            let freed = {
                let mut idle = self.idle.lock().expect("pool lock");
                let at = match idle.iter().position(|i| i.is(origin, thread)) {
                    Some(at) => at,
                    None => {
                        // A new origin: without a balancer, a replaced replica answers
                        // on a new port, and the connections to the old one are closed.
                        // Let them go rather than hold their sockets for the rest of
                        // the run.
                        for i in idle.iter_mut() {
                            i.conns.retain(Conn::open);
                        }
                        idle.retain(|i| !i.conns.is_empty() || i.open.load(Ordering::Relaxed) > 0);
                        idle.push(Idle {
                            origin: origin.clone(),
                            thread,
                            conns: Vec::new(),
                            open: Arc::default(),
                            freed: Arc::default(),
                        });
                        idle.len() - 1
                    }
                };
                let entry = &mut idle[at];
                while let Some(conn) = entry.conns.pop() {
                    if conn.open() {
                        return Checkout::Idle(conn);
                    }
                }
                if entry.open.load(Ordering::Relaxed) < self.max_conns {
                    entry.open.fetch_add(1, Ordering::Relaxed);
                    return Checkout::New(Slot {
                        open: Arc::clone(&entry.open),
                        freed: Arc::clone(&entry.freed),
                    });
                }
                Arc::clone(&entry.freed)
            };
            freed.notified().await;
        }
    }

    /// Hands a connection back for the next request; one more than `max_idle` is
    /// closed.
    fn release(&self, origin: &Origin, conn: Conn) {
        let thread = std::thread::current().id();
        let mut idle = self.idle.lock().expect("pool lock");
        if let Some(i) = idle.iter_mut().find(|i| i.is(origin, thread)) {
            if i.conns.len() < self.max_idle {
                i.conns.push(conn);
                i.freed.notify_one();
            }
        }
    }
}

impl Idle {
    fn is(&self, origin: &Origin, thread: ThreadId) -> bool {
        self.thread == thread && self.origin == *origin
    }
}

impl Http {
    /// A new connection to `origin`, with its TLS handshake done for `https://`.
    async fn connect(&self, origin: &Origin, slot: Slot) -> Result<Conn, ErrorKind> {
        let tcp = TcpStream::connect((origin.host.as_str(), origin.port))
            .await
            .map_err(|_| ErrorKind::Connect)?;
        // Requests are written whole: never wait to fill a segment.
        let _ = tcp.set_nodelay(true);
        let stream = match &origin.tls {
            None => Stream::Plain(tcp),
            Some(name) => {
                let config = self
                    .tls_config
                    .get_or_init(|| crate::tls::client_config(&self.tls));
                let connector = tokio_rustls::TlsConnector::from(Arc::clone(config));
                match connector.connect(name.clone(), tcp).await {
                    Ok(tls) => Stream::Tls(Box::new(tls)),
                    Err(e) => {
                        // A replica killed mid-handshake is a broken connection,
                        // like any other; only what rustls refused is a TLS error.
                        let Some(reason) = crate::tls::handshake_failure(&e) else {
                            return Err(ErrorKind::Reset);
                        };
                        self.tls_failures.add(reason);
                        return Err(ErrorKind::Tls);
                    }
                }
            }
        };
        Ok(Conn {
            stream,
            read: BytesMut::with_capacity(READ_SIZE),
            write: Vec::with_capacity(1024),
            slot,
        })
    }
}

impl Conn {
    /// Whether the server has not closed this idle connection, as far as can be told
    /// without writing to it: nothing to read yet on its socket. Closed, reset, or
    /// talking out of turn (a TLS close or any other record), it is not a
    /// connection to reuse.
    fn open(&self) -> bool {
        let mut probe = [0u8; 1];
        matches!(self.stream.tcp().try_read(&mut probe), Err(e) if e.kind() == io::ErrorKind::WouldBlock)
    }
}
#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use super::*;

    const GET: Outgoing<'static> = Outgoing {
        method: &Method::GET,
        target: "/",
        headers: &[],
        body: b"",
    };

    fn origin(url: &str) -> Origin {
        Origin::of(&url::Url::parse(url).unwrap()).unwrap()
    }

    #[test]
    fn origin_names_host_and_port_as_the_url_does() {
        let o = origin("http://127.0.0.1:8080/session");
        assert_eq!((o.host.as_str(), o.port), ("127.0.0.1", 8080));
        assert_eq!(o.host_header, "127.0.0.1:8080");
        let o = origin("http://app.local/x");
        assert_eq!((o.host.as_str(), o.port), ("app.local", 80));
        assert_eq!(o.host_header, "app.local");
        let o = origin("http://[::1]:9/");
        assert_eq!((o.host.as_str(), o.port), ("::1", 9));
        assert_eq!(o.host_header, "[::1]:9");
        assert_eq!(o.tls, None);
        let o = origin("https://shop.local/x");
        assert_eq!((o.host.as_str(), o.port), ("shop.local", 443));
        assert_eq!(o.tls, Some(ServerName::try_from("shop.local").unwrap()));
        let o = origin("https://127.0.0.1:8443/");
        assert_eq!(
            o.tls,
            Some(ServerName::from(std::net::IpAddr::from([127, 0, 0, 1])))
        );
        assert!(Origin::of(&url::Url::parse("ftp://example.com/").unwrap()).is_none());
    }

    #[test]
    fn path_keeps_the_query() {
        let url = url::Url::parse("http://h:1/a/b?next=/c#frag").unwrap();
        assert_eq!(path_of(&url), "/a/b?next=/c");
    }

    /// A server on a loopback port answering every request "ok", closing each
    /// connection after `answers_per_connection` answers; counts connections.
    async fn server(answers_per_connection: usize) -> (Origin, Arc<AtomicUsize>) {
        serve(answers_per_connection, None, "127.0.0.1").await
    }

    /// [`server`], speaking TLS with `config` when given, at `https://HOST:PORT`.
    async fn serve(
        answers_per_connection: usize,
        config: Option<Arc<rustls::ServerConfig>>,
        host: &str,
    ) -> (Origin, Arc<AtomicUsize>) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let accepted = Arc::new(AtomicUsize::new(0));
        let counter = Arc::clone(&accepted);
        let scheme = if config.is_some() { "https" } else { "http" };
        let acceptor = config.map(tokio_rustls::TlsAcceptor::from);
        tokio::spawn(async move {
            loop {
                let (socket, _) = listener.accept().await.unwrap();
                counter.fetch_add(1, Ordering::SeqCst);
                let acceptor = acceptor.clone();
                tokio::spawn(async move {
                    match acceptor {
                        None => answer(socket, answers_per_connection).await,
                        // A client that refuses the certificate ends here.
                        Some(acceptor) => {
                            if let Ok(tls) = acceptor.accept(socket).await {
                                answer(tls, answers_per_connection).await;
                            }
                        }
                    }
                });
            }
        });
        (origin(&format!("{scheme}://{host}:{port}")), accepted)
    }

    /// Answers `n` requests on `socket`, then closes it.
    async fn answer<S: AsyncRead + AsyncWrite + Unpin>(mut socket: S, n: usize) {
        let mut seen = Vec::new();
        for _ in 0..n {
            while !seen.windows(4).any(|w| w == b"\r\n\r\n") {
                let mut chunk = [0u8; 1024];
                match socket.read(&mut chunk).await {
                    Ok(0) | Err(_) => return,
                    Ok(n) => seen.extend_from_slice(&chunk[..n]),
                }
            }
            seen.clear();
            let answer = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";
            if socket.write_all(answer).await.is_err() || socket.flush().await.is_err() {
                return;
            }
        }
    }

    #[tokio::test]
    async fn connections_are_kept_alive_and_one_the_server_closed_is_replaced() {
        let get = || GET;
        let http = Http::new(Duration::from_secs(5), true, 8, TlsPlan::default());
        let (kept, accepted) = server(usize::MAX).await;
        for _ in 0..5 {
            assert_eq!(http.send(&kept, &get()).await.unwrap().body, "ok");
        }
        assert_eq!(accepted.load(Ordering::SeqCst), 1, "one connection, reused");

        let (closing, accepted) = server(1).await;
        for _ in 0..3 {
            assert_eq!(http.send(&closing, &get()).await.unwrap().body, "ok");
            // The server's close reaches the idle connection before the next request.
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert_eq!(
            accepted.load(Ordering::SeqCst),
            3,
            "a closed connection is never reused"
        );
        let pooled = |o: &Origin| {
            let idle = http.idle.lock().unwrap();
            idle.iter()
                .find(|i| i.origin == *o)
                .map_or(0, |i| i.conns.len())
        };
        assert_eq!(pooled(&kept), 1);
        // The closing server's last connection, closed since, went when a new
        // origin came.
        let (other, _) = server(usize::MAX).await;
        http.send(&other, &get()).await.unwrap();
        assert_eq!((pooled(&closing), pooled(&other), pooled(&kept)), (0, 1, 1));

        let once = Http::new(Duration::from_secs(5), false, 8, TlsPlan::default());
        let (fresh, accepted) = server(usize::MAX).await;
        for _ in 0..3 {
            once.send(&fresh, &get()).await.unwrap();
        }
        assert_eq!(accepted.load(Ordering::SeqCst), 3, "keep_alive = false");
    }

    #[tokio::test]
    async fn requests_beyond_the_connection_cap_wait_for_a_connection() {
        let get = GET;
        let http =
            Http::new(Duration::from_secs(5), true, 8, TlsPlan::default()).with_max_connections(2);
        let (kept, accepted) = server(usize::MAX).await;
        let answers = futures_util::future::join_all((0..20).map(|_| http.send(&kept, &get))).await;
        assert!(answers.iter().all(|a| a.as_ref().unwrap().body == "ok"));
        assert_eq!(
            accepted.load(Ordering::SeqCst),
            2,
            "20 requests on 2 connections"
        );
        // A connection that goes makes room for a new one.
        let (closing, accepted) = server(1).await;
        let answers =
            futures_util::future::join_all((0..6).map(|_| http.send(&closing, &get))).await;
        assert!(answers.iter().all(|a| a.as_ref().unwrap().body == "ok"));
        assert_eq!(accepted.load(Ordering::SeqCst), 6);
    }

    #[tokio::test]
    async fn a_refused_connection_and_a_silent_server_are_told_apart() {
        let get = GET;
        let http = Http::new(Duration::from_millis(200), true, 8, TlsPlan::default());
        let free = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let refused = origin(&format!("http://{}", free.local_addr().unwrap()));
        drop(free);
        assert_eq!(
            http.send(&refused, &get).await.unwrap_err(),
            ErrorKind::Connect
        );
        let (silent, _) = server(0).await;
        let silent_listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let quiet = origin(&format!("http://{}", silent_listener.local_addr().unwrap()));
        assert_eq!(
            http.send(&quiet, &get).await.unwrap_err(),
            ErrorKind::Timeout
        );
        // A server that takes the connection and closes it without a word.
        assert_eq!(
            http.send(&silent, &get).await.unwrap_err(),
            ErrorKind::Reset
        );
    }

    #[tokio::test]
    async fn https_with_the_stacks_ca_keeps_its_connection_alive() {
        let pki = crate::tls::testing::pki();
        let trusting = TlsPlan {
            ca_file: Some("ca.pem".into()),
            roots: vec![pki.ca.clone()],
            insecure: false,
        };
        let http = Http::new(Duration::from_secs(5), true, 8, trusting);
        let get = GET;
        // By name (SNI and the certificate's DNS name) and by address (its IP name).
        for host in ["localhost", "127.0.0.1"] {
            let (tls, accepted) = serve(usize::MAX, Some(Arc::clone(&pki.server)), host).await;
            for _ in 0..5 {
                assert_eq!(http.send(&tls, &get).await.unwrap().body, "ok", "{host}");
            }
            assert_eq!(
                accepted.load(Ordering::SeqCst),
                1,
                "{host}: one connection, reused"
            );
        }
        assert!(http.tls_failures().is_empty());

        // A server that closes after each answer: its TLS close is seen before reuse.
        let (closing, accepted) = serve(1, Some(Arc::clone(&pki.server)), "127.0.0.1").await;
        for _ in 0..3 {
            assert_eq!(http.send(&closing, &get).await.unwrap().body, "ok");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert_eq!(accepted.load(Ordering::SeqCst), 3);
    }

    #[tokio::test]
    async fn an_untrusted_certificate_is_a_tls_error_with_its_reason_unless_insecure() {
        let pki = crate::tls::testing::pki();
        let get = GET;
        let (tls, _) = serve(usize::MAX, Some(Arc::clone(&pki.server)), "localhost").await;

        // The platform's roots do not know the test CA; nor does another CA.
        let other = crate::tls::testing::pki();
        for plan in [
            TlsPlan::default(),
            TlsPlan {
                ca_file: Some("other.pem".into()),
                roots: vec![other.ca],
                insecure: false,
            },
        ] {
            let http = Http::new(Duration::from_secs(5), true, 8, plan);
            assert_eq!(http.send(&tls, &get).await.unwrap_err(), ErrorKind::Tls);
            assert_eq!(http.send(&tls, &get).await.unwrap_err(), ErrorKind::Tls);
            let failures = http.tls_failures();
            assert_eq!(failures.len(), 1, "{failures:?}");
            let (reason, count) = failures.into_iter().next().unwrap();
            assert!(reason.contains("UnknownIssuer"), "{reason}");
            assert_eq!(count, 2);
        }

        let insecure = TlsPlan {
            insecure: true,
            ..TlsPlan::default()
        };
        let http = Http::new(Duration::from_secs(5), true, 8, insecure);
        assert_eq!(http.send(&tls, &get).await.unwrap().body, "ok");
    }
}
