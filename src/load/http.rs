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
use std::sync::{Arc, Mutex, OnceLock};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::{Buf, Bytes, BytesMut};
use http::header::{HeaderName, HeaderValue, CONNECTION, CONTENT_LENGTH, TRANSFER_ENCODING};
use http::{HeaderMap, Method, Request, StatusCode, Uri};
use rustls::pki_types::ServerName;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;

use super::tls::Reasons;
use crate::metrics::ErrorKind;
use crate::plan::TlsPlan;

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

/// The request line's target of `url`: its path and query.
pub fn path_of(url: &url::Url) -> Option<Uri> {
    url[url::Position::BeforePath..url::Position::AfterQuery]
        .parse()
        .ok()
}

/// A request for `path` with `body`; headers are added by the caller.
pub fn request(method: Method, path: Uri, body: Bytes) -> Request<Bytes> {
    let mut request = Request::new(body);
    *request.method_mut() = method;
    *request.uri_mut() = path;
    request
}

/// An answer read in full.
#[derive(Debug)]
pub struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
}

/// Headers an answer may have at most; more is not an answer the load can judge.
const MAX_HEADERS: usize = 64;
/// The longest answer head, and the largest body, read before giving up on it.
const MAX_HEAD: usize = 64 * 1024;
const MAX_BODY: usize = 64 * 1024 * 1024;
/// Bytes asked of the socket at a time.
const READ_SIZE: usize = 16 * 1024;

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
}

/// Idle connections to one origin, the most recently used last.
struct Idle {
    origin: Origin,
    conns: Vec<Conn>,
}

/// The client: idle keep-alive connections by origin, shared by every operation.
pub struct Http {
    idle: Mutex<Vec<Idle>>,
    timeout: Duration,
    keep_alive: bool,
    max_idle: usize,
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
            tls,
            tls_config: OnceLock::new(),
            tls_failures: Reasons::default(),
        }
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
    pub async fn send(
        &self,
        origin: &Origin,
        request: &Request<Bytes>,
    ) -> Result<Reply, ErrorKind> {
        tokio::time::timeout(self.timeout, self.exchange(origin, request))
            .await
            .unwrap_or(Err(ErrorKind::Timeout))
    }

    async fn exchange(
        &self,
        origin: &Origin,
        request: &Request<Bytes>,
    ) -> Result<Reply, ErrorKind> {
        // A pooled connection the server closed since is mostly found out before
        // use (`Conn::open`); one that closed in between fails the write, and the
        // request, which never reached the server, goes out on a new connection.
        if let Some(mut conn) = self.idle_conn(origin) {
            match self.exchange_on(&mut conn, origin, request).await {
                Err(Failed { unsent: true, .. }) => {}
                result => return self.settle(origin, conn, result),
            }
        }
        let mut conn = self.connect(origin).await?;
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
        request: &Request<Bytes>,
    ) -> Result<(Reply, bool), Failed> {
        encode(request, origin, self.keep_alive, &mut conn.write);
        // Flushing a TCP stream returns at once; TLS may hold records back.
        let written = match conn.stream.write_all(&conn.write).await {
            Ok(()) => conn.stream.flush().await,
            Err(e) => Err(e),
        };
        written.map_err(|_| Failed {
            kind: ErrorKind::Reset,
            unsent: true,
        })?;
        let head_only = request.method() == Method::HEAD;
        read_reply(&mut conn.stream, &mut conn.read, head_only)
            .await
            .map_err(|kind| Failed {
                kind,
                unsent: false,
            })
    }

    /// An idle connection to `origin` the server has not closed, as far as can be
    /// told without writing to it.
    fn idle_conn(&self, origin: &Origin) -> Option<Conn> {
        loop {
            let conn = {
                let mut idle = self.idle.lock().expect("pool lock");
                idle.iter_mut().find(|i| i.origin == *origin)?.conns.pop()?
            };
            if conn.open() {
                return Some(conn);
            }
        }
    }

    fn release(&self, origin: &Origin, conn: Conn) {
        let mut idle = self.idle.lock().expect("pool lock");
        match idle.iter_mut().find(|i| i.origin == *origin) {
            Some(i) if i.conns.len() < self.max_idle => i.conns.push(conn),
            Some(_) => {}
            None => {
                // A new origin: without a balancer, a replaced replica answers on a
                // new port, and the connections to the old one are closed. Let them
                // go rather than hold their sockets for the rest of the run.
                for i in idle.iter_mut() {
                    i.conns.retain(Conn::open);
                }
                idle.retain(|i| !i.conns.is_empty());
                idle.push(Idle {
                    origin: origin.clone(),
                    conns: vec![conn],
                });
            }
        }
    }
}

impl Http {
    /// A new connection to `origin`, with its TLS handshake done for `https://`.
    async fn connect(&self, origin: &Origin) -> Result<Conn, ErrorKind> {
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
                    .get_or_init(|| super::tls::client_config(&self.tls));
                let connector = tokio_rustls::TlsConnector::from(Arc::clone(config));
                match connector.connect(name.clone(), tcp).await {
                    Ok(tls) => Stream::Tls(Box::new(tls)),
                    Err(e) => {
                        // A replica killed mid-handshake is a broken connection,
                        // like any other; only what rustls refused is a TLS error.
                        let Some(reason) = super::tls::handshake_failure(&e) else {
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

/// Writes `request` as HTTP/1.1 into `out`, replacing what was there.
fn encode(request: &Request<Bytes>, origin: &Origin, keep_alive: bool, out: &mut Vec<u8>) {
    out.clear();
    out.extend_from_slice(request.method().as_str().as_bytes());
    out.push(b' ');
    let path = request.uri().path_and_query().map_or("/", |p| p.as_str());
    out.extend_from_slice(path.as_bytes());
    out.extend_from_slice(b" HTTP/1.1\r\nhost: ");
    out.extend_from_slice(origin.host_header.as_bytes());
    out.extend_from_slice(b"\r\n");
    for (name, value) in request.headers() {
        out.extend_from_slice(name.as_str().as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(value.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    let body = request.body();
    let has_body = !body.is_empty()
        || matches!(
            *request.method(),
            Method::POST | Method::PUT | Method::PATCH
        );
    if has_body {
        use std::io::Write;
        let _ = write!(out, "content-length: {}\r\n", body.len());
    }
    if !keep_alive {
        out.extend_from_slice(b"connection: close\r\n");
    }
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(body);
}

/// Reads more of the answer into `buf`; the end of the connection is `Ok(false)`.
async fn fill<R: AsyncRead + Unpin>(io: &mut R, buf: &mut BytesMut) -> Result<bool, ErrorKind> {
    buf.reserve(READ_SIZE);
    match io.read_buf(buf).await {
        Ok(0) => Ok(false),
        Ok(_) => Ok(true),
        Err(_) => Err(ErrorKind::Reset),
    }
}

/// An answer's head, parsed.
struct Head {
    /// Its length in bytes, the blank line included.
    len: usize,
    status: StatusCode,
    headers: HeaderMap,
    http10: bool,
}

/// The answer head at the start of `buf`, if all of it is there. Kept out of the
/// async reader so the parser's header slots live on the stack for the parse
/// alone, not in every operation's future.
fn parse_head(buf: &[u8]) -> Result<Option<Head>, ErrorKind> {
    let mut slots = [const { std::mem::MaybeUninit::<httparse::Header>::uninit() }; MAX_HEADERS];
    let mut parsed = httparse::Response::new(&mut []);
    let len = match httparse::ParserConfig::default().parse_response_with_uninit_headers(
        &mut parsed,
        buf,
        &mut slots,
    ) {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(_) => return Err(ErrorKind::BadBody),
    };
    let status = parsed
        .code
        .and_then(|c| StatusCode::from_u16(c).ok())
        .ok_or(ErrorKind::BadBody)?;
    let mut headers = HeaderMap::with_capacity(parsed.headers.len());
    for h in parsed.headers.iter() {
        let name = HeaderName::from_bytes(h.name.as_bytes()).map_err(|_| ErrorKind::BadBody)?;
        let value = HeaderValue::from_bytes(h.value).map_err(|_| ErrorKind::BadBody)?;
        headers.append(name, value);
    }
    Ok(Some(Head {
        len,
        status,
        headers,
        http10: parsed.version == Some(0),
    }))
}

/// How an answer's body is framed.
enum Framing {
    Length(usize),
    Chunked,
    UntilClose,
}

/// Reads one whole answer from `io`, starting with what `buf` holds; leaves in
/// `buf` what came after it. Returns the answer and whether the connection may
/// carry another request.
async fn read_reply<R: AsyncRead + Unpin>(
    io: &mut R,
    buf: &mut BytesMut,
    head_only: bool,
) -> Result<(Reply, bool), ErrorKind> {
    loop {
        let Head {
            len: head_len,
            status,
            headers,
            http10,
        } = loop {
            if let Some(head) = parse_head(buf)? {
                break head;
            }
            if buf.len() >= MAX_HEAD {
                return Err(ErrorKind::BadBody);
            }
            if !fill(io, buf).await? {
                return Err(ErrorKind::Reset);
            }
        };
        buf.advance(head_len);
        if status.is_informational() && status != StatusCode::SWITCHING_PROTOCOLS {
            continue;
        }
        let closes = http10
            || headers
                .get_all(CONNECTION)
                .iter()
                .any(|v| v.as_bytes().eq_ignore_ascii_case(b"close"));
        let framing = if head_only
            || status == StatusCode::NO_CONTENT
            || status == StatusCode::NOT_MODIFIED
        {
            Framing::Length(0)
        } else if headers
            .get_all(TRANSFER_ENCODING)
            .iter()
            .any(|v| v.as_bytes().to_ascii_lowercase().ends_with(b"chunked"))
        {
            Framing::Chunked
        } else if let Some(length) = headers.get(CONTENT_LENGTH) {
            let length = std::str::from_utf8(length.as_bytes())
                .ok()
                .and_then(|l| l.trim().parse().ok())
                .filter(|&l| l <= MAX_BODY)
                .ok_or(ErrorKind::BadBody)?;
            Framing::Length(length)
        } else {
            Framing::UntilClose
        };
        let (body, reusable) = match framing {
            Framing::Length(n) => {
                while buf.len() < n {
                    if !fill(io, buf).await? {
                        return Err(ErrorKind::Reset);
                    }
                }
                (buf.split_to(n).freeze(), !closes)
            }
            Framing::Chunked => (read_chunked(io, buf).await?, !closes),
            Framing::UntilClose => {
                while fill(io, buf).await? {
                    if buf.len() > MAX_BODY {
                        return Err(ErrorKind::BadBody);
                    }
                }
                (buf.split().freeze(), false)
            }
        };
        let reply = Reply {
            status,
            headers,
            body,
        };
        return Ok((reply, reusable));
    }
}

/// The position just past the next CRLF in `buf`, reading more until there is one.
async fn line<R: AsyncRead + Unpin>(io: &mut R, buf: &mut BytesMut) -> Result<usize, ErrorKind> {
    let mut searched = 0;
    loop {
        if let Some(at) = buf[searched..].windows(2).position(|w| w == b"\r\n") {
            return Ok(searched + at + 2);
        }
        if buf.len() > MAX_HEAD {
            return Err(ErrorKind::BadBody);
        }
        searched = buf.len().saturating_sub(1);
        if !fill(io, buf).await? {
            return Err(ErrorKind::Reset);
        }
    }
}

/// Reads a chunked body from where `buf` starts, trailers included.
async fn read_chunked<R: AsyncRead + Unpin>(
    io: &mut R,
    buf: &mut BytesMut,
) -> Result<Bytes, ErrorKind> {
    let mut body = BytesMut::new();
    loop {
        let end = line(io, buf).await?;
        let size_text = std::str::from_utf8(&buf[..end - 2]).map_err(|_| ErrorKind::BadBody)?;
        let size_text = size_text.split(';').next().unwrap_or("").trim();
        let size = usize::from_str_radix(size_text, 16).map_err(|_| ErrorKind::BadBody)?;
        buf.advance(end);
        if size == 0 {
            // Trailers, up to an empty line.
            loop {
                let end = line(io, buf).await?;
                buf.advance(end);
                if end == 2 {
                    return Ok(body.freeze());
                }
            }
        }
        if body.len() + size > MAX_BODY {
            return Err(ErrorKind::BadBody);
        }
        while buf.len() < size + 2 {
            if !fill(io, buf).await? {
                return Err(ErrorKind::Reset);
            }
        }
        body.extend_from_slice(&buf[..size]);
        if &buf[size..size + 2] != b"\r\n" {
            return Err(ErrorKind::BadBody);
        }
        buf.advance(size + 2);
    }
}

/// Reads answers from `data` as a service would send them before closing the
/// connection, until one fails or nothing is left; (status, body length) of each.
/// The entry point for fuzzing the reader ([`crate::fuzz_inputs::answers`]).
pub fn read_answers(data: &[u8]) -> Vec<Result<(StatusCode, usize), ErrorKind>> {
    use futures_util::FutureExt;
    let (mut io, mut buf) = (data, BytesMut::new());
    let mut answers = Vec::new();
    while !(io.is_empty() && buf.is_empty()) {
        // A slice never makes a read wait, so the reader finishes in one poll.
        let read = read_reply(&mut io, &mut buf, false)
            .now_or_never()
            .expect("reading from memory never waits");
        let failed = read.is_err();
        answers.push(read.map(|(reply, _)| (reply.status, reply.body.len())));
        if failed {
            break;
        }
    }
    answers
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use super::*;

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
        assert_eq!(path_of(&url).unwrap(), "/a/b?next=/c");
    }

    #[test]
    fn requests_carry_host_length_and_headers() {
        let mut post = request(Method::POST, "/session/items".parse().unwrap(), "{}".into());
        post.headers_mut()
            .insert(http::header::COOKIE, HeaderValue::from_static("sid=a"));
        let mut out = Vec::new();
        encode(&post, &origin("http://127.0.0.1:80"), true, &mut out);
        assert_eq!(
            String::from_utf8(out.clone()).unwrap(),
            "POST /session/items HTTP/1.1\r\nhost: 127.0.0.1\r\ncookie: sid=a\r\ncontent-length: 2\r\n\r\n{}"
        );
        let empty_post = request(Method::POST, "/session".parse().unwrap(), Bytes::new());
        encode(&empty_post, &origin("http://h:1"), false, &mut out);
        assert_eq!(
            String::from_utf8(out.clone()).unwrap(),
            "POST /session HTTP/1.1\r\nhost: h:1\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
        );
        let get = request(Method::GET, "/session".parse().unwrap(), Bytes::new());
        encode(&get, &origin("http://h:1"), true, &mut out);
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "GET /session HTTP/1.1\r\nhost: h:1\r\n\r\n"
        );
    }

    /// Reads up to `n` answers from `wire`, delivered `piece` bytes at a time and
    /// then closed, stopping at the first that fails: (status, body, reusable).
    async fn read_n(
        wire: &str,
        piece: usize,
        head_only: bool,
        n: usize,
    ) -> Vec<Result<(u16, String, bool), ErrorKind>> {
        let (mut server, mut client) = tokio::io::duplex(64);
        let bytes = wire.as_bytes().to_vec();
        let writer = tokio::spawn(async move {
            for chunk in bytes.chunks(piece) {
                server.write_all(chunk).await.unwrap();
            }
        });
        let mut buf = BytesMut::new();
        let mut answers = Vec::new();
        while answers.len() < n {
            let result = read_reply(&mut client, &mut buf, head_only)
                .await
                .map(|(r, reuse)| {
                    (
                        r.status.as_u16(),
                        String::from_utf8(r.body.to_vec()).unwrap(),
                        reuse,
                    )
                });
            let failed = result.is_err();
            answers.push(result);
            if failed {
                break;
            }
        }
        writer.await.unwrap();
        answers
    }

    #[tokio::test]
    async fn answers_framed_every_way_read_the_same_in_any_pieces() {
        let wire = concat!(
            "HTTP/1.1 100 Continue\r\n\r\n",
            "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nX-Served-By: a\r\n\r\nhello",
            "HTTP/1.1 201 Created\r\nTransfer-Encoding: chunked\r\n\r\n",
            "3;ext=1\r\nabc\r\n10\r\n0123456789abcdef\r\n0\r\nTrailer: x\r\n\r\n",
            "HTTP/1.1 204 No Content\r\n\r\n",
            "HTTP/1.1 303 See Other\r\nLocation: /login\r\nContent-Length: 0\r\n\r\n",
            "HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nuntil the end",
        );
        for piece in [1, 2, 3, 7, 64, wire.len()] {
            let answers = read_n(wire, piece, false, 5).await;
            assert_eq!(
                answers,
                vec![
                    Ok((200, "hello".into(), true)),
                    Ok((201, "abc0123456789abcdef".into(), true)),
                    Ok((204, String::new(), true)),
                    Ok((303, String::new(), true)),
                    Ok((200, "until the end".into(), false)),
                ],
                "pieces of {piece}"
            );
        }
    }

    #[tokio::test]
    async fn a_closed_or_broken_answer_is_a_reset_or_a_bad_body() {
        use ErrorKind::{BadBody, Reset};
        type Expected = Result<(u16, &'static str, bool), ErrorKind>;
        let cases: [(&str, bool, Expected); 6] = [
            (
                "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort",
                false,
                Err(Reset),
            ),
            ("HTTP/1.1 200 OK\r\nContent-Le", false, Err(Reset)),
            ("SSH-2.0-OpenSSH\r\n\r\n", false, Err(BadBody)),
            (
                "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
                false,
                Err(BadBody),
            ),
            // HTTP/1.0 closes after the answer; a HEAD answer has no body.
            (
                "HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nok",
                false,
                Ok((200, "ok", false)),
            ),
            (
                "HTTP/1.1 200 OK\r\nContent-Length: 99\r\n\r\n",
                true,
                Ok((200, "", true)),
            ),
        ];
        for (wire, head_only, expected) in cases {
            let expected = expected.map(|(status, body, reuse)| (status, body.to_string(), reuse));
            assert_eq!(
                read_n(wire, 4, head_only, 1).await,
                vec![expected],
                "{wire:?}"
            );
        }
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
        let get = || request(Method::GET, "/".parse().unwrap(), Bytes::new());
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
    async fn a_refused_connection_and_a_silent_server_are_told_apart() {
        let get = request(Method::GET, "/".parse().unwrap(), Bytes::new());
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
        let pki = crate::load::tls::testing::pki();
        let trusting = TlsPlan {
            ca_file: Some("ca.pem".into()),
            roots: vec![pki.ca.clone()],
            insecure: false,
        };
        let http = Http::new(Duration::from_secs(5), true, 8, trusting);
        let get = request(Method::GET, "/".parse().unwrap(), Bytes::new());
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
        let pki = crate::load::tls::testing::pki();
        let get = request(Method::GET, "/".parse().unwrap(), Bytes::new());
        let (tls, _) = serve(usize::MAX, Some(Arc::clone(&pki.server)), "localhost").await;

        // The platform's roots do not know the test CA; nor does another CA.
        let other = crate::load::tls::testing::pki();
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
