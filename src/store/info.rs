//! What a Redis says of itself in `INFO`, reduced to what tells a session's fate: who
//! it is (its `run_id` changes when it restarts), its role, how many keys it holds,
//! how many it evicted or expired, its memory, and where it stands in its replication
//! stream (which history, how far). A memcached's `stats` is read into the same
//! [`Info`] (`super::memcached`), so one observer watches both.

use std::collections::HashMap;

/// One `INFO` answer, the fields the harness reads.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Info {
    /// New at every start of the process: a changed one is a restart.
    pub run_id: String,
    /// `master` or `slave`, as Redis says.
    pub role: String,
    /// Keys over every database (`# Keyspace`).
    pub keys: u64,
    /// Keys removed to make room under `maxmemory`, since the process started.
    pub evicted_keys: u64,
    /// Keys removed at their TTL, since the process started.
    pub expired_keys: u64,
    pub used_memory: u64,
    /// 0: no limit.
    pub maxmemory: u64,
    pub maxmemory_policy: String,
    /// Where its replication stream stands (a primary's, or what a replica has read).
    pub repl_offset: u64,
    /// The replication history it is in (`master_replid`): a replica shares its
    /// primary's, so its offset and the primary's can be compared; a primary starts a
    /// new one when it restarts or is promoted.
    pub replid: String,
    /// Replicas connected to it (a primary).
    pub connected_replicas: u64,
}

impl Info {
    /// Reads an `INFO` text; fields it lacks stay empty or zero (an older Redis, or a
    /// section not asked for).
    pub fn parse(text: &str) -> Info {
        let fields: HashMap<&str, &str> = (text.lines())
            .filter_map(|line| line.trim_end().split_once(':'))
            .collect();
        let number = |key: &str| fields.get(key).and_then(|v| v.parse().ok()).unwrap_or(0);
        let text = |key: &str| fields.get(key).map_or(String::new(), |v| v.to_string());
        // `db0:keys=12,expires=12,avg_ttl=0`, one line per database.
        let keys = (fields.iter())
            .filter(|(k, _)| k.starts_with("db") && k[2..].bytes().all(|b| b.is_ascii_digit()))
            .filter_map(|(_, v)| v.split(',').find_map(|kv| kv.strip_prefix("keys=")))
            .filter_map(|n| n.parse::<u64>().ok())
            .sum();
        let repl_offset = match fields.get("role") {
            Some(&"slave") => number("slave_repl_offset"),
            _ => number("master_repl_offset"),
        };
        Info {
            run_id: text("run_id"),
            role: text("role"),
            keys,
            evicted_keys: number("evicted_keys"),
            expired_keys: number("expired_keys"),
            used_memory: number("used_memory"),
            maxmemory: number("maxmemory"),
            maxmemory_policy: text("maxmemory_policy"),
            repl_offset,
            replid: text("master_replid"),
            connected_replicas: number("connected_slaves"),
        }
    }

    /// A primary, in words people use.
    pub fn role_name(&self) -> &'static str {
        match self.role.as_str() {
            "master" => "primary",
            "slave" => "replica",
            _ => "unknown",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A Redis 7.0 `INFO` answer, cut to the lines around the fields read.
    const PRIMARY: &str = "# Server\r\nredis_version:7.0.15\r\nrun_id:5e3b1c\r\nuptime_in_seconds:4\r\n\r\n# Memory\r\nused_memory:1013432\r\nmaxmemory:2097152\r\nmaxmemory_policy:allkeys-lru\r\n\r\n# Stats\r\nexpired_keys:3\r\nevicted_keys:120\r\n\r\n# Replication\r\nrole:master\r\nconnected_slaves:2\r\nslave0:ip=172.27.0.3,port=6379,state=online,offset=5432,lag=0\r\nmaster_replid:9f2c\r\nmaster_repl_offset:5446\r\n\r\n# Keyspace\r\ndb0:keys=1200,expires=1200,avg_ttl=3599000\r\ndb3:keys=5,expires=0,avg_ttl=0\r\n";

    #[test]
    fn a_primary_says_who_it_is_and_what_it_holds() {
        let info = Info::parse(PRIMARY);
        assert_eq!(
            info,
            Info {
                run_id: "5e3b1c".into(),
                role: "master".into(),
                keys: 1205,
                evicted_keys: 120,
                expired_keys: 3,
                used_memory: 1013432,
                maxmemory: 2097152,
                maxmemory_policy: "allkeys-lru".into(),
                repl_offset: 5446,
                replid: "9f2c".into(),
                connected_replicas: 2,
            }
        );
        assert_eq!(info.role_name(), "primary");
    }

    #[test]
    fn a_replica_gives_the_offset_it_has_read_and_an_empty_store_no_keys() {
        let info = Info::parse(
            "role:slave\r\nmaster_repl_offset:900\r\nslave_repl_offset:880\r\nrun_id:aa\r\n",
        );
        assert_eq!(
            (info.role_name(), info.repl_offset, info.keys),
            ("replica", 880, 0)
        );
        assert_eq!(Info::parse("garbage\n:::\n"), Info::default());
    }
}
