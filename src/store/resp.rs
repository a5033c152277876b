//! The few Redis commands the harness sends to a store it watches, in Redis's own
//! protocol (RESP2) over one TCP connection.
//!
//! The harness asks a store how it is (`INFO`), and never depends on a client library
//! for it: the questions are few, the answers small, and a store that answers garbage
//! must be a recorded fact, not a panic. Every call is bounded in time by its caller.

use std::io;

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

/// The largest answer read: `INFO` is a few KiB, so more is not a Redis talking.
const MAX_BULK: usize = 1 << 20;
/// Arrays deeper than this are not an answer to anything the harness asks.
const MAX_DEPTH: usize = 4;

/// One answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    Simple(String),
    Error(String),
    Integer(i64),
    /// `None`: the null bulk string.
    Bulk(Option<Vec<u8>>),
    /// `None`: the null array.
    Array(Option<Vec<Reply>>),
}

impl Reply {
    /// The text of a simple or bulk string.
    pub fn text(&self) -> Option<String> {
        match self {
            Reply::Simple(s) => Some(s.clone()),
            Reply::Bulk(Some(b)) => Some(String::from_utf8_lossy(b).into_owned()),
            _ => None,
        }
    }
}

/// A connection to one Redis (a store member or a Sentinel).
pub struct Connection {
    stream: BufReader<TcpStream>,
}

impl Connection {
    pub async fn connect(addr: &str) -> io::Result<Connection> {
        let stream = TcpStream::connect(addr).await?;
        stream.set_nodelay(true)?;
        Ok(Connection {
            stream: BufReader::new(stream),
        })
    }

    /// Sends one command and reads its answer; a Redis error is an answer
    /// ([`Reply::Error`]), not an `Err`.
    pub async fn call(&mut self, args: &[&str]) -> io::Result<Reply> {
        self.stream.get_mut().write_all(&encode(args)).await?;
        self.next().await
    }

    /// The next answer or pushed message (after `PSUBSCRIBE`).
    pub async fn next(&mut self) -> io::Result<Reply> {
        read(&mut self.stream, 0).await
    }
}

/// How long one command of the harness's may take, connecting included.
const COMMAND_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(2);

/// One command to the Redis at `addr`, on a connection of its own; its answer (a
/// Redis error included), or what went wrong, in words.
pub async fn ask(addr: &str, args: &[&str]) -> Result<Reply, String> {
    let call = async {
        let mut connection = Connection::connect(addr).await?;
        connection.call(args).await
    };
    match tokio::time::timeout(COMMAND_TIMEOUT, call).await {
        Ok(Ok(reply)) => Ok(reply),
        Ok(Err(e)) => Err(format!("{addr}: {e}")),
        Err(_) => Err(format!(
            "{addr} did not answer within {} s",
            COMMAND_TIMEOUT.as_secs()
        )),
    }
}

/// `CONFIG SET key value` on the Redis at `addr`; what went wrong, in words.
pub async fn config_set(addr: &str, key: &str, value: &str) -> Result<(), String> {
    match ask(addr, &["CONFIG", "SET", key, value]).await? {
        Reply::Simple(ok) if ok == "OK" => Ok(()),
        other => Err(format!("{addr} answered {other:?}")),
    }
}

/// `CONFIG GET key` on the Redis at `addr`: the value, as Redis answers it
/// (`[key, value]`).
pub async fn config_get(addr: &str, key: &str) -> Result<String, String> {
    let reply = ask(addr, &["CONFIG", "GET", key]).await?;
    match &reply {
        Reply::Array(Some(pair)) if pair.len() == 2 => pair[1].text(),
        _ => None,
    }
    .ok_or_else(|| format!("{addr} answered {reply:?} to CONFIG GET {key}"))
}

/// A `maxmemory` in words, as fault records say what they set: `maxmemory 2048 KiB`,
/// or `maxmemory none` for 0 (no limit).
pub fn maxmemory_words(bytes: u64) -> String {
    match bytes {
        0 => "maxmemory none".to_string(),
        b => format!("maxmemory {} KiB", b >> 10),
    }
}

/// A command as RESP: an array of bulk strings.
pub fn encode(args: &[&str]) -> Vec<u8> {
    let mut out = format!("*{}\r\n", args.len()).into_bytes();
    for arg in args {
        out.extend_from_slice(format!("${}\r\n", arg.len()).as_bytes());
        out.extend_from_slice(arg.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    out
}

fn bad(what: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, what)
}

/// Reads one reply; boxed, since arrays hold replies.
fn read<'a, R: AsyncBufReadExt + Unpin + Send>(
    stream: &'a mut R,
    depth: usize,
) -> std::pin::Pin<Box<dyn std::future::Future<Output = io::Result<Reply>> + Send + 'a>> {
    Box::pin(async move {
        let mut line = Vec::new();
        (&mut *stream)
            .take(MAX_BULK as u64)
            .read_until(b'\n', &mut line)
            .await?;
        let Some(line) = line.strip_suffix(b"\r\n") else {
            return Err(match line.is_empty() {
                true => io::ErrorKind::UnexpectedEof.into(),
                false => bad("a reply line without its CRLF".into()),
            });
        };
        let text = String::from_utf8_lossy(&line[1.min(line.len())..]).into_owned();
        let length = || -> io::Result<i64> {
            text.parse()
                .map_err(|_| bad(format!("a length that is no number: {text:?}")))
        };
        match line.first() {
            Some(b'+') => Ok(Reply::Simple(text)),
            Some(b'-') => Ok(Reply::Error(text)),
            Some(b':') => Ok(Reply::Integer(length()?)),
            Some(b'$') => {
                let Ok(n) = usize::try_from(length()?) else {
                    return Ok(Reply::Bulk(None));
                };
                if n > MAX_BULK {
                    return Err(bad(format!("a {n}-byte string, more than any answer here")));
                }
                let mut data = vec![0; n + 2];
                stream.read_exact(&mut data).await?;
                data.truncate(n);
                Ok(Reply::Bulk(Some(data)))
            }
            Some(b'*') => {
                let Ok(n) = usize::try_from(length()?) else {
                    return Ok(Reply::Array(None));
                };
                if depth >= MAX_DEPTH || n > 1024 {
                    return Err(bad(format!("an array of {n} at depth {depth}")));
                }
                let mut items = Vec::with_capacity(n);
                for _ in 0..n {
                    items.push(read(stream, depth + 1).await?);
                }
                Ok(Reply::Array(Some(items)))
            }
            _ => Err(bad(format!(
                "a reply of no known type: {:?}",
                String::from_utf8_lossy(line)
            ))),
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn parse(bytes: &[u8]) -> io::Result<Reply> {
        let mut reader = tokio::io::BufReader::new(bytes);
        read(&mut reader, 0).await
    }

    #[tokio::test]
    async fn every_kind_of_reply_is_read() {
        assert_eq!(parse(b"+OK\r\n").await.unwrap(), Reply::Simple("OK".into()));
        assert_eq!(
            parse(b"-ERR no\r\n").await.unwrap(),
            Reply::Error("ERR no".into())
        );
        assert_eq!(parse(b":42\r\n").await.unwrap(), Reply::Integer(42));
        assert_eq!(
            parse(b"$5\r\nhello\r\n").await.unwrap(),
            Reply::Bulk(Some(b"hello".to_vec()))
        );
        assert_eq!(parse(b"$-1\r\n").await.unwrap(), Reply::Bulk(None));
        assert_eq!(
            parse(b"*2\r\n$1\r\na\r\n:1\r\n").await.unwrap(),
            Reply::Array(Some(vec![
                Reply::Bulk(Some(b"a".to_vec())),
                Reply::Integer(1)
            ]))
        );
        assert_eq!(parse(b"*-1\r\n").await.unwrap(), Reply::Array(None));
    }

    #[tokio::test]
    async fn garbage_is_an_error_not_a_panic() {
        for bytes in [
            &b""[..],
            b"hello\r\n",
            b"+OK",
            b"$x\r\n",
            b"$99999999999\r\nx\r\n",
            b"$5\r\nab",
            b"*1\r\n*1\r\n*1\r\n*1\r\n*1\r\n:1\r\n",
        ] {
            assert!(
                parse(bytes).await.is_err(),
                "{:?}",
                String::from_utf8_lossy(bytes)
            );
        }
    }

    /// A one-answer Redis on 127.0.0.1: reads one command, writes `answer`.
    async fn answering(answer: &'static [u8]) -> String {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        tokio::spawn(async move {
            let (mut socket, _) = listener.accept().await.unwrap();
            let mut command = [0; 256];
            let _ = socket.read(&mut command).await;
            socket.write_all(answer).await.unwrap();
        });
        addr
    }

    #[tokio::test]
    async fn config_get_reads_the_value_of_the_pair() {
        let addr = answering(b"*2\r\n$9\r\nmaxmemory\r\n$7\r\n1048576\r\n").await;
        assert_eq!(config_get(&addr, "maxmemory").await.unwrap(), "1048576");
        let addr = answering(b"*0\r\n").await;
        let err = config_get(&addr, "maxmemory").await.unwrap_err();
        assert!(err.contains("to CONFIG GET maxmemory"), "{err}");
        let addr = answering(b"-ERR unknown command\r\n").await;
        assert!(config_set(&addr, "maxmemory", "0").await.is_err());
    }

    #[test]
    fn commands_are_arrays_of_bulk_strings() {
        assert_eq!(
            encode(&["CONFIG", "SET", "maxmemory", "1mb"]),
            b"*4\r\n$6\r\nCONFIG\r\n$3\r\nSET\r\n$9\r\nmaxmemory\r\n$3\r\n1mb\r\n"
        );
    }
}
