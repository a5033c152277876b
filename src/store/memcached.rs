//! What a memcached node says of itself (`stats`, in its text protocol), read into the
//! same [`Info`] a Redis gives, so one observer watches a pool like any other store.
//!
//! A node has no `run_id`: its process is its pid and the second it started (`time`
//! less `uptime`), so a node lost and started again (pid 1 again in a fresh container)
//! is still a new process. It has no roles and no replication; it counts what it
//! evicted to stay within its memory (`evictions`), not what expired.

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

use super::info::Info;

/// The largest `stats` answer read: a few KiB, so more is not a memcached talking.
const MAX_ANSWER: usize = 64 << 10;

/// Reads a `stats` answer (`STAT name value` lines, then `END`); `None` when it is not
/// one (no pid).
pub fn parse(text: &str) -> Option<Info> {
    let stats: std::collections::HashMap<&str, &str> = (text.lines())
        .filter_map(|line| line.trim_end().strip_prefix("STAT "))
        .filter_map(|stat| stat.split_once(' '))
        .collect();
    let number = |key: &str| stats.get(key).and_then(|v| v.parse::<u64>().ok());
    let pid = number("pid")?;
    let started = number("time")
        .unwrap_or(0)
        .saturating_sub(number("uptime").unwrap_or(0));
    Some(Info {
        run_id: format!("pid {pid}, started {started}"),
        keys: number("curr_items").unwrap_or(0),
        evicted_keys: number("evictions").unwrap_or(0),
        used_memory: number("bytes").unwrap_or(0),
        maxmemory: number("limit_maxbytes").unwrap_or(0),
        maxmemory_policy: "memcached's LRU".into(),
        ..Info::default()
    })
}

/// A connection to one node.
pub struct Connection {
    stream: BufReader<TcpStream>,
}

impl Connection {
    pub async fn connect(addr: &str) -> std::io::Result<Connection> {
        Ok(Connection {
            stream: BufReader::new(TcpStream::connect(addr).await?),
        })
    }

    /// `stats`, `None` when the node gives none; the caller bounds it in time.
    pub async fn stats(&mut self) -> Option<Info> {
        self.stream.get_mut().write_all(b"stats\r\n").await.ok()?;
        let mut answer = String::new();
        loop {
            let read = self.stream.read_line(&mut answer).await.ok()?;
            if read == 0 || answer.len() > MAX_ANSWER {
                return None;
            }
            if answer.ends_with("END\r\n") {
                return parse(&answer);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// memcached 1.6's answer, cut to the lines around the fields read.
    const STATS: &str = "STAT pid 1\r\nSTAT uptime 42\r\nSTAT time 1765000042\r\nSTAT version 1.6.18\r\nSTAT curr_items 812\r\nSTAT bytes 104512\r\nSTAT evictions 3\r\nSTAT limit_maxbytes 67108864\r\nEND\r\n";

    #[test]
    fn a_node_says_its_process_items_and_evictions() {
        let info = parse(STATS).unwrap();
        assert_eq!(
            (info.run_id.as_str(), info.keys, info.evicted_keys),
            ("pid 1, started 1765000000", 812, 3)
        );
        assert_eq!((info.used_memory, info.maxmemory), (104512, 64 << 20));
        assert_eq!(info.role_name(), "unknown");
        // A fresh container: pid 1 again, started later.
        let again = STATS.replace("uptime 42", "uptime 1");
        assert_ne!(parse(&again).unwrap().run_id, info.run_id);
        assert_eq!(parse("ERROR\r\n"), None);
    }
}
