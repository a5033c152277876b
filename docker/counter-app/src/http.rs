//! Just enough HTTP/1.1 for one request per connection: `httparse` reads the head, the
//! body is read by `Content-Length`, and every answer closes the connection. The balancer
//! in front keeps its own connections to clients, so nothing is lost by closing.

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::TcpStream;

/// Larger heads and bodies are refused: a demo form is a few hundred bytes.
const MAX_HEAD: usize = 16 * 1024;
const MAX_BODY: usize = 64 * 1024;

/// One parsed request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    pub method: String,
    /// The path without the query string.
    pub path: String,
    pub query: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Request {
    /// The first header called `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The value of cookie `name` from every `Cookie` header.
    pub fn cookie(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case("cookie"))
            .flat_map(|(_, v)| v.split(';'))
            .filter_map(|pair| pair.trim().split_once('='))
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v.trim())
    }

    /// A field of the url-encoded form body (or of the query string).
    pub fn field(&self, name: &str) -> Option<String> {
        form_urlencoded::parse(&self.body)
            .chain(form_urlencoded::parse(self.query.as_bytes()))
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.into_owned())
    }
}

/// One answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(&'static str, String)>,
    pub body: String,
}

impl Response {
    pub fn new(status: u16, body: impl Into<String>) -> Self {
        Response {
            status,
            headers: Vec::new(),
            body: body.into(),
        }
    }

    /// `303 See Other` to `location`: what a web app answers after a form post.
    pub fn see_other(location: &str) -> Self {
        Response::new(303, "").with("Location", location)
    }

    pub fn with(mut self, name: &'static str, value: impl Into<String>) -> Self {
        self.headers.push((name, value.into()));
        self
    }

    fn reason(&self) -> &'static str {
        match self.status {
            200 => "OK",
            303 => "See Other",
            400 => "Bad Request",
            404 => "Not Found",
            405 => "Method Not Allowed",
            503 => "Service Unavailable",
            _ => "",
        }
    }
}

/// Reads one request from `stream`; `Ok(None)` when the peer closed without sending one
/// (a TCP health check, or the shutdown wake-up).
pub fn read_request(stream: &TcpStream) -> io::Result<Option<Request>> {
    let mut reader = BufReader::new(stream);
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        let n = reader.read_until(b'\n', &mut head)?;
        if n == 0 {
            return if head.is_empty() {
                Ok(None)
            } else {
                Err(io::ErrorKind::UnexpectedEof.into())
            };
        }
        if head.len() > MAX_HEAD {
            return Err(invalid("request head too large"));
        }
    }
    let mut raw = [httparse::EMPTY_HEADER; 64];
    let mut parsed = httparse::Request::new(&mut raw);
    parsed
        .parse(&head)
        .map_err(|e| invalid(&format!("bad request head: {e}")))?;
    let target = parsed.path.unwrap_or("/");
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    let headers: Vec<(String, String)> = parsed
        .headers
        .iter()
        .map(|h| {
            (
                h.name.to_string(),
                String::from_utf8_lossy(h.value).into_owned(),
            )
        })
        .collect();
    let mut request = Request {
        method: parsed.method.unwrap_or("GET").to_string(),
        path: path.to_string(),
        query: query.to_string(),
        headers,
        body: Vec::new(),
    };
    let length: usize = match request.header("content-length") {
        Some(v) => v
            .trim()
            .parse()
            .map_err(|_| invalid("bad Content-Length"))?,
        None => 0,
    };
    if length > MAX_BODY {
        return Err(invalid("request body too large"));
    }
    request.body = vec![0; length];
    reader.read_exact(&mut request.body)?;
    Ok(Some(request))
}

/// Writes `response` with the headers every answer carries.
pub fn write_response(
    mut stream: &TcpStream,
    response: &Response,
    served_by: &str,
) -> io::Result<()> {
    let mut out = format!(
        "HTTP/1.1 {} {}\r\nContent-Length: {}\r\nConnection: close\r\nX-Served-By: {served_by}\r\n",
        response.status,
        response.reason(),
        response.body.len()
    );
    for (name, value) in &response.headers {
        out.push_str(&format!("{name}: {value}\r\n"));
    }
    out.push_str("\r\n");
    out.push_str(&response.body);
    stream.write_all(out.as_bytes())?;
    stream.flush()
}

fn invalid(why: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, why.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(headers: &[(&str, &str)], body: &str, query: &str) -> Request {
        Request {
            method: "POST".into(),
            path: "/".into(),
            query: query.into(),
            headers: headers
                .iter()
                .map(|(n, v)| (n.to_string(), v.to_string()))
                .collect(),
            body: body.as_bytes().to_vec(),
        }
    }

    #[test]
    fn finds_a_cookie_among_others() {
        let r = request(
            &[
                ("Cookie", "csrftoken=x; sessionid=abc"),
                ("cookie", "SRV=s1"),
            ],
            "",
            "",
        );
        assert_eq!(r.cookie("sessionid"), Some("abc"));
        assert_eq!(r.cookie("SRV"), Some("s1"));
        assert_eq!(r.cookie("session"), None);
    }

    #[test]
    fn reads_form_fields_and_query() {
        let r = request(&[], "op=7.1&username=a%20b", "next=%2Fincrement");
        assert_eq!(r.field("op").as_deref(), Some("7.1"));
        assert_eq!(r.field("username").as_deref(), Some("a b"));
        assert_eq!(r.field("next").as_deref(), Some("/increment"));
        assert_eq!(r.field("missing"), None);
    }
}
