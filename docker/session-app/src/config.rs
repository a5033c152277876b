//! Configuration, read once at start from environment variables.
//!
//! | variable | meaning | default |
//! |---|---|---|
//! | `MODE` | `redis` (correct, stateless), `memory` (deliberately loses sessions when the replica dies), `write-behind` (deliberately loses the last flush interval of acknowledged writes when the replica dies) or `memcached` (a pool of memcached nodes: loses the sessions of a node that is lost) | `redis` |
//! | `SESSION_STORE` | Redis URL, e.g. `redis://store:6379`, or a Redis Cluster's nodes, e.g. `redis-cluster://node-0:6379,node-1:6379` (required in `redis` and `write-behind` modes), or the pool's nodes in `memcached` mode, e.g. `memcached://cache-0:11211,cache-1:11211`; ignored in `memory` mode | none |
//! | `PORT` | TCP port, bound on `0.0.0.0` | `8080` |
//! | `INSTANCE_ID` | value of the `X-Served-By` header | `$HOSTNAME`, else `unknown` |
//! | `SESSION_TTL_SECS` | Redis expiry of a session, refreshed on every append (memory mode never expires; write-behind refreshes it on every flush) | `3600` |
//! | `FLUSH_INTERVAL_MS` | write-behind mode: how often acknowledged appends are written to Redis, 1 to 3600000 (ignored in other modes, but still validated) | `1000` |
//! | `TLS` | `off` (plain HTTP) or `self-signed` (HTTPS only, with a certificate made at start; see [`crate::tls`]) | `off` |
//! | `SESSION_STORE_WAIT` | `redis` and `write-behind` modes: after every write to Redis, `WAIT` for this many replicas to acknowledge it; a write fewer replicas acknowledged in time is answered 503 (not acknowledged), so a failover cannot lose it. 0 to 16 | `0` (no `WAIT`: Redis's asynchronous replication) |
//! | `SESSION_STORE_WAIT_TIMEOUT_MS` | how long that `WAIT` may take, 1 to 60000 | `1000` |
//! | `LEAK_KIB_PER_REQUEST` | a deliberate memory leak: every request keeps this many KiB (written, so they are resident) for good, 0 to 1024; lets the harness's `oom` fault watch a memory limit being exceeded | `0` |
//!
//! A variable set to the empty string counts as unset: `docker run -e MODE=` and compose files
//! with blank values are common, and "empty means default" is the least surprising reading.
//! Any other invalid value is a [`ConfigError`]; the binary prints it and exits with code 2,
//! because a harness that starts a misconfigured replica should fail loudly at once rather than
//! measure a service that silently runs in the wrong mode.

use std::fmt;

/// How sessions are stored; each mode has its own module under `store`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// All state in Redis, written atomically by Lua scripts: any replica can serve any session.
    Redis,
    /// State in a process-local map: the broken baseline the harness must catch.
    Memory,
    /// Sessions created in Redis, appends acknowledged from a local cache and flushed to Redis
    /// every `FLUSH_INTERVAL_MS`: a killed replica loses its unflushed writes, not sessions.
    WriteBehind,
    /// Sessions in a pool of memcached nodes, each on the node its key hashes to: any
    /// replica serves any session, and a lost node loses its share of them.
    Memcached,
}

impl Mode {
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Redis => "redis",
            Mode::Memory => "memory",
            Mode::WriteBehind => "write-behind",
            Mode::Memcached => "memcached",
        }
    }
}

impl fmt::Display for Mode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    pub mode: Mode,
    /// Present (and syntactically valid) whenever `mode` needs Redis.
    pub store_url: Option<String>,
    pub port: u16,
    pub instance_id: String,
    pub ttl_secs: u64,
    /// Write-behind mode's flush period in milliseconds, within `1..=MAX_FLUSH_INTERVAL_MS`.
    pub flush_interval_ms: u64,
    /// Serve HTTPS only, with a self-signed certificate made at start.
    pub tls: bool,
    /// KiB every request leaks (`LEAK_KIB_PER_REQUEST`), within `0..=MAX_LEAK_KIB`.
    pub leak_kib_per_request: u64,
    /// `WAIT` for replicas after every write (`SESSION_STORE_WAIT`), when asked.
    pub store_wait: Option<StoreWait>,
}

/// Writes count only once this many of the store's replicas hold them: Redis replicates
/// asynchronously, and a failover to a replica that lacks an acknowledged write loses it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StoreWait {
    pub replicas: u32,
    pub timeout_ms: u64,
}

pub const DEFAULT_PORT: u16 = 8080;
pub const DEFAULT_TTL_SECS: u64 = 3600;
pub const DEFAULT_FLUSH_INTERVAL_MS: u64 = 1000;
/// One hour: "never during this test" without risking timer overflow on absurd values.
pub const MAX_FLUSH_INTERVAL_MS: u64 = 3_600_000;
/// A MiB per request outgrows any limit within seconds; more is a typo.
pub const MAX_LEAK_KIB: u64 = 1024;
/// More replicas than any test topology has is a typo.
pub const MAX_WAIT_REPLICAS: u32 = 16;
pub const DEFAULT_WAIT_TIMEOUT_MS: u64 = 1000;
/// `WAIT` with a timeout of 0 blocks for ever; a minute is longer than any request waits.
pub const MAX_WAIT_TIMEOUT_MS: u64 = 60_000;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError(String);

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ConfigError {}

impl Config {
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// Takes the variable lookup as a function so tests never have to mutate the real
    /// process environment (which is shared by all test threads).
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let get = |name: &str| lookup(name).filter(|v| !v.is_empty());

        let mode = match get("MODE").as_deref() {
            None | Some("redis") => Mode::Redis,
            Some("memory") => Mode::Memory,
            Some("write-behind") => Mode::WriteBehind,
            Some("memcached") => Mode::Memcached,
            Some(other) => {
                return Err(ConfigError(format!(
                    "MODE={other:?} is not supported; use \"redis\" (default), \"memory\", \"write-behind\" or \"memcached\""
                )))
            }
        };

        let store_url = match mode {
            Mode::Memory => None,
            Mode::Redis | Mode::WriteBehind => {
                let url = get("SESSION_STORE").ok_or_else(|| {
                    ConfigError(format!(
                        "SESSION_STORE is required in {mode} mode (e.g. SESSION_STORE=redis://store:6379)"
                    ))
                })?;
                // This only parses; it does not connect, so a store that is still
                // starting up does not stop the service from starting.
                crate::store::redis::check_url(&url).map_err(|e| {
                    ConfigError(format!(
                        "SESSION_STORE={url:?} is not a usable redis URL: {e}"
                    ))
                })?;
                Some(url)
            }
            Mode::Memcached => {
                let url = get("SESSION_STORE").ok_or_else(|| {
                    ConfigError(
                        "SESSION_STORE is required in memcached mode \
                         (e.g. SESSION_STORE=memcached://cache-0:11211,cache-1:11211)"
                            .to_owned(),
                    )
                })?;
                crate::store::memcached::parse_nodes(&url).map_err(|e| {
                    ConfigError(format!(
                        "SESSION_STORE={url:?} is not a memcached pool: {e}"
                    ))
                })?;
                Some(url)
            }
        };

        let port = match get("PORT") {
            None => DEFAULT_PORT,
            Some(p) => p.parse::<u16>().map_err(|_| {
                ConfigError(format!("PORT={p:?} is not a TCP port number (0-65535)"))
            })?,
        };

        let tls = match get("TLS").as_deref() {
            None | Some("off") => false,
            Some("self-signed") => true,
            Some(other) => {
                return Err(ConfigError(format!(
                    "TLS={other:?} is not supported; use \"off\" (default) or \"self-signed\""
                )))
            }
        };

        let instance_id = get("INSTANCE_ID")
            .or_else(|| get("HOSTNAME"))
            .unwrap_or_else(|| "unknown".to_owned());
        if axum::http::HeaderValue::from_str(&instance_id).is_err() {
            return Err(ConfigError(format!(
                "instance id {instance_id:?} (INSTANCE_ID or HOSTNAME) cannot be sent as an HTTP header value"
            )));
        }

        let ttl_secs = match get("SESSION_TTL_SECS") {
            None => DEFAULT_TTL_SECS,
            Some(t) => match t.parse::<u64>() {
                // Redis EXPIRE takes a signed 64-bit value; 0 would delete sessions at once.
                Ok(n) if n > 0 && n <= i64::MAX as u64 => n,
                _ => {
                    return Err(ConfigError(format!(
                        "SESSION_TTL_SECS={t:?} must be a positive whole number of seconds"
                    )))
                }
            },
        };

        let flush_interval_ms = match get("FLUSH_INTERVAL_MS") {
            None => DEFAULT_FLUSH_INTERVAL_MS,
            Some(f) => match f.parse::<u64>() {
                Ok(n) if (1..=MAX_FLUSH_INTERVAL_MS).contains(&n) => n,
                _ => {
                    return Err(ConfigError(format!(
                        "FLUSH_INTERVAL_MS={f:?} must be a whole number of milliseconds \
                         from 1 to {MAX_FLUSH_INTERVAL_MS}"
                    )))
                }
            },
        };

        let leak_kib_per_request = match get("LEAK_KIB_PER_REQUEST") {
            None => 0,
            Some(k) => match k.parse::<u64>() {
                Ok(n) if n <= MAX_LEAK_KIB => n,
                _ => {
                    return Err(ConfigError(format!(
                        "LEAK_KIB_PER_REQUEST={k:?} must be a whole number of KiB from 0 to {MAX_LEAK_KIB}"
                    )))
                }
            },
        };

        let replicas = match get("SESSION_STORE_WAIT") {
            None => 0,
            Some(n) => match n.parse::<u32>() {
                Ok(n) if n <= MAX_WAIT_REPLICAS => n,
                _ => {
                    return Err(ConfigError(format!(
                        "SESSION_STORE_WAIT={n:?} must be a number of replicas from 0 to {MAX_WAIT_REPLICAS}"
                    )))
                }
            },
        };
        let timeout_ms = match get("SESSION_STORE_WAIT_TIMEOUT_MS") {
            None => DEFAULT_WAIT_TIMEOUT_MS,
            Some(t) => match t.parse::<u64>() {
                Ok(n) if (1..=MAX_WAIT_TIMEOUT_MS).contains(&n) => n,
                _ => {
                    return Err(ConfigError(format!(
                    "SESSION_STORE_WAIT_TIMEOUT_MS={t:?} must be a whole number of milliseconds \
                         from 1 to {MAX_WAIT_TIMEOUT_MS}"
                )))
                }
            },
        };
        let store_wait = (replicas > 0).then_some(StoreWait {
            replicas,
            timeout_ms,
        });
        let cluster = (store_url.as_deref())
            .is_some_and(|url| url.starts_with(crate::store::redis::CLUSTER_SCHEME));
        if cluster && store_wait.is_some() {
            return Err(ConfigError(
                "SESSION_STORE_WAIT cannot be used with a Redis Cluster: WAIT must go to the \
                 primary that took the write, which the cluster client does not say; unset one"
                    .to_owned(),
            ));
        }

        Ok(Config {
            mode,
            store_url,
            port,
            instance_id,
            ttl_secs,
            flush_interval_ms,
            tls,
            leak_kib_per_request,
            store_wait,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn parse(vars: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let map: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Config::from_lookup(|k| map.get(k).cloned())
    }

    #[test]
    fn bogus_mode_is_rejected() {
        let err = parse(&[("MODE", "bogus"), ("SESSION_STORE", "redis://s:6379")]).unwrap_err();
        assert!(err.to_string().contains("MODE=\"bogus\""), "{err}");
    }

    #[test]
    fn defaults_to_redis_and_requires_store() {
        let err = parse(&[]).unwrap_err();
        assert!(err.to_string().contains("SESSION_STORE"), "{err}");

        let cfg = parse(&[("SESSION_STORE", "redis://store:6379"), ("HOSTNAME", "h1")]).unwrap();
        assert_eq!(cfg.mode, Mode::Redis);
        assert_eq!(cfg.store_url.as_deref(), Some("redis://store:6379"));
        assert_eq!(cfg.port, DEFAULT_PORT);
        assert_eq!(cfg.instance_id, "h1");
        assert_eq!(cfg.ttl_secs, DEFAULT_TTL_SECS);
        assert_eq!(cfg.flush_interval_ms, DEFAULT_FLUSH_INTERVAL_MS);
    }

    #[test]
    fn write_behind_mode_is_accepted_and_needs_store() {
        let err = parse(&[("MODE", "write-behind")]).unwrap_err();
        assert!(err.to_string().contains("SESSION_STORE"), "{err}");
        assert!(err.to_string().contains("write-behind"), "{err}");

        let cfg = parse(&[
            ("MODE", "write-behind"),
            ("SESSION_STORE", "redis://s:6379"),
        ])
        .unwrap();
        assert_eq!(cfg.mode, Mode::WriteBehind);
        assert_eq!(cfg.mode.to_string(), "write-behind");
        assert_eq!(cfg.store_url.as_deref(), Some("redis://s:6379"));
        assert_eq!(cfg.flush_interval_ms, DEFAULT_FLUSH_INTERVAL_MS);

        let cfg = parse(&[
            ("MODE", "write-behind"),
            ("SESSION_STORE", "redis://s:6379"),
            ("FLUSH_INTERVAL_MS", "200"),
        ])
        .unwrap();
        assert_eq!(cfg.flush_interval_ms, 200);
        let cfg = parse(&[
            ("MODE", "write-behind"),
            ("SESSION_STORE", "redis://s:6379"),
            ("FLUSH_INTERVAL_MS", ""),
        ])
        .unwrap();
        assert_eq!(cfg.flush_interval_ms, DEFAULT_FLUSH_INTERVAL_MS);
        assert!(parse(&[("MODE", "write-behind"), ("SESSION_STORE", "not a url")]).is_err());
    }

    #[test]
    fn bad_flush_interval_is_rejected() {
        for bad in ["0", "-1", "1.5", "1s", "3600001", "99999999999999999999"] {
            for mode in ["write-behind", "redis", "memory"] {
                let err = parse(&[
                    ("MODE", mode),
                    ("SESSION_STORE", "redis://s:6379"),
                    ("FLUSH_INTERVAL_MS", bad),
                ])
                .unwrap_err();
                assert!(err.to_string().contains("FLUSH_INTERVAL_MS"), "{err}");
            }
        }
        let max = MAX_FLUSH_INTERVAL_MS.to_string();
        let cfg = parse(&[
            ("MODE", "write-behind"),
            ("SESSION_STORE", "redis://s:6379"),
            ("FLUSH_INTERVAL_MS", &max),
        ])
        .unwrap();
        assert_eq!(cfg.flush_interval_ms, MAX_FLUSH_INTERVAL_MS);
    }

    #[test]
    fn a_leak_is_off_by_default_and_bounded() {
        let cfg = parse(&[("SESSION_STORE", "redis://s:6379")]).unwrap();
        assert_eq!(cfg.leak_kib_per_request, 0);
        let cfg = parse(&[
            ("SESSION_STORE", "redis://s:6379"),
            ("LEAK_KIB_PER_REQUEST", "64"),
        ])
        .unwrap();
        assert_eq!(cfg.leak_kib_per_request, 64);
        let err = parse(&[
            ("SESSION_STORE", "redis://s:6379"),
            ("LEAK_KIB_PER_REQUEST", "4096"),
        ])
        .unwrap_err();
        assert!(err.to_string().contains("0 to 1024"), "{err}");
    }

    #[test]
    fn waiting_for_replicas_is_off_by_default_and_bounded() {
        let store = ("SESSION_STORE", "redis://s:6379");
        assert_eq!(parse(&[store]).unwrap().store_wait, None);
        assert_eq!(
            parse(&[store, ("SESSION_STORE_WAIT", "0")])
                .unwrap()
                .store_wait,
            None
        );
        let cfg = parse(&[store, ("SESSION_STORE_WAIT", "1")]).unwrap();
        assert_eq!(
            cfg.store_wait,
            Some(StoreWait {
                replicas: 1,
                timeout_ms: DEFAULT_WAIT_TIMEOUT_MS
            })
        );
        let cfg = parse(&[
            store,
            ("SESSION_STORE_WAIT", "2"),
            ("SESSION_STORE_WAIT_TIMEOUT_MS", "250"),
        ])
        .unwrap();
        assert_eq!(
            cfg.store_wait.map(|w| (w.replicas, w.timeout_ms)),
            Some((2, 250))
        );
        for (key, bad, says) in [
            ("SESSION_STORE_WAIT", "17", "0 to 16"),
            ("SESSION_STORE_WAIT", "all", "0 to 16"),
            ("SESSION_STORE_WAIT_TIMEOUT_MS", "0", "1 to 60000"),
        ] {
            let err = parse(&[store, (key, bad)]).unwrap_err();
            assert!(err.to_string().contains(says), "{err}");
        }
    }

    #[test]
    fn a_redis_cluster_is_named_by_its_nodes() {
        let nodes = ("SESSION_STORE", "redis-cluster://node-0:6379,node-1:6379");
        let cfg = parse(&[nodes]).unwrap();
        assert_eq!(cfg.store_url.as_deref(), Some(nodes.1));
        let err = parse(&[nodes, ("SESSION_STORE_WAIT", "1")]).unwrap_err();
        assert!(
            err.to_string()
                .contains("cannot be used with a Redis Cluster"),
            "{err}"
        );
    }

    #[test]
    fn memcached_mode_needs_a_pool() {
        let cfg = parse(&[
            ("MODE", "memcached"),
            ("SESSION_STORE", "memcached://cache-0:11211,cache-1:11211"),
        ])
        .unwrap();
        assert_eq!(cfg.mode, Mode::Memcached);
        let err = parse(&[("MODE", "memcached")]).unwrap_err();
        assert!(
            err.to_string().contains("SESSION_STORE is required"),
            "{err}"
        );
        for bad in [
            "redis://s:6379",
            "memcached://cache-0",
            "memcached://:11211",
        ] {
            let err = parse(&[("MODE", "memcached"), ("SESSION_STORE", bad)]).unwrap_err();
            assert!(err.to_string().contains("is not a memcached pool"), "{err}");
        }
    }

    #[test]
    fn memory_mode_needs_no_store() {
        let cfg = parse(&[
            ("MODE", "memory"),
            ("PORT", "9000"),
            ("INSTANCE_ID", "app-2"),
            ("HOSTNAME", "ignored"),
            ("SESSION_TTL_SECS", "60"),
        ])
        .unwrap();
        assert_eq!(cfg.mode, Mode::Memory);
        assert_eq!(cfg.store_url, None);
        assert_eq!(cfg.port, 9000);
        assert_eq!(cfg.instance_id, "app-2");
        assert_eq!(cfg.ttl_secs, 60);
    }

    #[test]
    fn empty_values_mean_default() {
        let cfg = parse(&[("MODE", ""), ("SESSION_STORE", "redis://s"), ("PORT", "")]).unwrap();
        assert_eq!(cfg.mode, Mode::Redis);
        assert_eq!(cfg.port, DEFAULT_PORT);
        assert_eq!(cfg.instance_id, "unknown");
    }

    #[test]
    fn invalid_values_are_rejected() {
        let base = [("MODE", "memory")];
        for bad in [
            ("PORT", "http"),
            ("PORT", "70000"),
            ("SESSION_TTL_SECS", "0"),
            ("SESSION_TTL_SECS", "-5"),
            ("INSTANCE_ID", "bad\nid"),
        ] {
            let mut vars = base.to_vec();
            vars.push(bad);
            assert!(parse(&vars).is_err(), "{bad:?} accepted");
        }
        assert!(parse(&[("SESSION_STORE", "not a url")]).is_err());
    }
}
