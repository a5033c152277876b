//! HTTP/1.1 on the wire, for the load's client ([`super::http`]): a request written
//! into a buffer, and an answer read from any byte stream, framed by `Content-Length`,
//! chunks or the end of the connection. Kept apart from the connections and the pool,
//! so the reader is tested (and fuzzed, [`read_answers`]) on bytes alone.

use bytes::{Buf, Bytes, BytesMut};
use http::{Method, StatusCode};
use tokio::io::{AsyncRead, AsyncReadExt};

pub use super::headers::Headers;
use super::headers::MAX_HEAD;
use crate::metrics::ErrorKind;

/// An answer read in full.
#[derive(Debug)]
pub struct Reply {
    pub status: StatusCode,
    pub headers: Headers,
    pub body: Bytes,
}

/// Headers an answer may have at most; more is not an answer the load can judge.
const MAX_HEADERS: usize = 64;
/// The largest body read before giving up on it; the longest head is
/// [`MAX_HEAD`].
const MAX_BODY: usize = 64 * 1024 * 1024;
/// Bytes asked of the socket at a time.
pub(super) const READ_SIZE: usize = 16 * 1024;

/// A request as the load writes it: borrowed parts, no header map. Built on the
/// stack for every request, so sending one allocates nothing but what the caller
/// chose to.
#[derive(Debug, Clone, Copy)]
pub struct Outgoing<'a> {
    pub method: &'a Method,
    /// The request target: path and query.
    pub target: &'a str,
    /// Header names and values, written as they are.
    pub headers: &'a [(&'a str, &'a [u8])],
    pub body: &'a [u8],
}

/// Writes `request` as HTTP/1.1 into `out`, replacing what was there.
pub(super) fn encode(request: &Outgoing<'_>, host: &str, keep_alive: bool, out: &mut Vec<u8>) {
    out.clear();
    out.extend_from_slice(request.method.as_str().as_bytes());
    out.push(b' ');
    out.extend_from_slice(request.target.as_bytes());
    out.extend_from_slice(b" HTTP/1.1\r\nhost: ");
    out.extend_from_slice(host.as_bytes());
    out.extend_from_slice(b"\r\n");
    for (name, value) in request.headers {
        out.extend_from_slice(name.as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(value);
        out.extend_from_slice(b"\r\n");
    }
    let has_body = !request.body.is_empty()
        || matches!(*request.method, Method::POST | Method::PUT | Method::PATCH);
    if has_body {
        use std::io::Write;
        let _ = write!(out, "content-length: {}\r\n", request.body.len());
    }
    if !keep_alive {
        out.extend_from_slice(b"connection: close\r\n");
    }
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(request.body);
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
    status: StatusCode,
    headers: Headers,
    http10: bool,
}

/// Takes the answer head off the start of `buf`, if all of it is there. Kept out of
/// the async reader so the parser's header slots live on the stack for the parse
/// alone, not in every operation's future. The headers are spans of the head's
/// bytes ([`Headers`]): nothing is copied or allocated per header.
fn take_head(buf: &mut BytesMut) -> Result<Option<Head>, ErrorKind> {
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
    let http10 = parsed.version == Some(0);
    // Where each header lies, as offsets: the parse borrows `buf`, which the head
    // is split off next.
    let base = buf.as_ptr() as usize;
    let at = |part: &[u8]| {
        let start = part.as_ptr() as usize - base;
        [start, start + part.len()]
    };
    // Inline for the usual few headers, not an array of MAX_HEADERS zeroed whole for
    // every answer (more than 16 spill to the heap, and are copied into the headers).
    let spans: smallvec::SmallVec<[[usize; 4]; 16]> = parsed
        .headers
        .iter()
        .map(|h| {
            let ([ns, ne], [vs, ve]) = (at(h.name.as_bytes()), at(h.value));
            [ns, ne, vs, ve]
        })
        .collect();
    let head = buf.split_to(len).freeze();
    let headers = Headers::in_head(head, spans).ok_or(ErrorKind::BadBody)?;
    Ok(Some(Head {
        status,
        headers,
        http10,
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
pub(super) async fn read_reply<R: AsyncRead + Unpin>(
    io: &mut R,
    buf: &mut BytesMut,
    head_only: bool,
) -> Result<(Reply, bool), ErrorKind> {
    loop {
        let Head {
            status,
            headers,
            http10,
        } = loop {
            if let Some(head) = take_head(buf)? {
                break head;
            }
            if buf.len() >= MAX_HEAD {
                return Err(ErrorKind::BadBody);
            }
            if !fill(io, buf).await? {
                return Err(ErrorKind::Reset);
            }
        };
        if status.is_informational() && status != StatusCode::SWITCHING_PROTOCOLS {
            continue;
        }
        // The three framing headers in one pass over the headers, not one each.
        let (mut closes, mut chunked, mut length) = (http10, false, None);
        // (A slice's eq_ignore_ascii_case compares lengths first, so most names are
        // told apart without looking at their bytes.)
        for (name, value) in headers.iter() {
            if name.eq_ignore_ascii_case(b"connection") {
                closes |= value.eq_ignore_ascii_case(b"close");
            } else if name.eq_ignore_ascii_case(b"transfer-encoding") {
                chunked |=
                    value.len() >= 7 && value[value.len() - 7..].eq_ignore_ascii_case(b"chunked");
            } else if name.eq_ignore_ascii_case(b"content-length") {
                length = length.or(Some(value));
            }
        }
        let framing = if head_only
            || status == StatusCode::NO_CONTENT
            || status == StatusCode::NOT_MODIFIED
        {
            Framing::Length(0)
        } else if chunked {
            Framing::Chunked
        } else if let Some(length) = length {
            let length = std::str::from_utf8(length)
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
        // Compared without adding: a chunk size near `usize::MAX` would overflow.
        if size > MAX_BODY - body.len() {
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
    use tokio::io::AsyncWriteExt;

    use super::*;

    #[test]
    fn requests_carry_host_length_and_headers() {
        let post = Outgoing {
            method: &Method::POST,
            target: "/session/items",
            headers: &[("cookie", b"sid=a")],
            body: b"{}",
        };
        let mut out = Vec::new();
        encode(&post, "127.0.0.1", true, &mut out);
        assert_eq!(
            String::from_utf8(out.clone()).unwrap(),
            "POST /session/items HTTP/1.1\r\nhost: 127.0.0.1\r\ncookie: sid=a\r\ncontent-length: 2\r\n\r\n{}"
        );
        let empty_post = Outgoing {
            target: "/session",
            headers: &[],
            body: b"",
            ..post
        };
        encode(&empty_post, "h:1", false, &mut out);
        assert_eq!(
            String::from_utf8(out.clone()).unwrap(),
            "POST /session HTTP/1.1\r\nhost: h:1\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
        );
        let get = Outgoing {
            method: &Method::GET,
            ..empty_post
        };
        encode(&get, "h:1", true, &mut out);
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
            // Chunked wins over a length; names and values in any case.
            "HTTP/1.1 200 OK\r\nContent-Length: 99\r\nTRANSFER-ENCODING: gzip, Chunked\r\n",
            "connection: Close\r\n\r\n2\r\nhi\r\n0\r\n\r\n",
            // Any Connection of "close" closes, any Transfer-Encoding ending in
            // "chunked" is chunked, the first Content-Length frames the body.
            "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: x\r\n\r\n",
            "2\r\nhi\r\n0\r\n\r\n",
            "HTTP/1.1 200 OK\r\nConnection: close\r\nConnection: keep-alive\r\n",
            "Content-Length: 2\r\nContent-Length: 9\r\n\r\nok",
            "HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nuntil the end",
        );
        for piece in [1, 2, 3, 7, 64, wire.len()] {
            let answers = read_n(wire, piece, false, 8).await;
            assert_eq!(
                answers,
                vec![
                    Ok((200, "hello".into(), true)),
                    Ok((201, "abc0123456789abcdef".into(), true)),
                    Ok((204, String::new(), true)),
                    Ok((303, String::new(), true)),
                    Ok((200, "hi".into(), false)),
                    Ok((200, "hi".into(), true)),
                    Ok((200, "ok".into(), false)),
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
        let cases: [(&str, bool, Expected); 7] = [
            (
                "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort",
                false,
                Err(Reset),
            ),
            // A chunk size near usize::MAX overflowed the body's length once.
            (
                "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1\r\na\r\nffffffffffffffff\r\nx\r\n",
                false,
                Err(BadBody),
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

    #[test]
    fn a_head_is_read_up_to_its_limit_and_refused_past_it() {
        // A head of exactly `len` bytes, its last header after the padding.
        let head = |len: usize| {
            let fixed = "HTTP/1.1 200 OK\r\nx-pad: \r\nx-last: yes\r\ncontent-length: 2\r\n\r\n";
            let pad = "p".repeat(len - fixed.len());
            format!("HTTP/1.1 200 OK\r\nx-pad: {pad}\r\nx-last: yes\r\ncontent-length: 2\r\n\r\nok")
        };
        use futures_util::FutureExt;
        let longest = head(MAX_HEAD);
        let (mut io, mut buf) = (longest.as_bytes(), BytesMut::new());
        let (reply, _) = read_reply(&mut io, &mut buf, false)
            .now_or_never()
            .unwrap()
            .unwrap();
        assert_eq!(reply.headers.text("x-last"), Some("yes"));
        assert_eq!(reply.body, "ok");
        assert_eq!(
            read_answers(head(MAX_HEAD + 1).as_bytes()),
            [Err(ErrorKind::BadBody)]
        );
    }
}
