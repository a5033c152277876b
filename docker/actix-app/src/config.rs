//! Configuration from the environment (an empty variable counts as unset).
//!
//! | variable | meaning | default |
//! |---|---|---|
//! | `STORE` | `redis` (`RedisSessionStore`) or `cookie` (`CookieSessionStore`: the whole state in the cookie) | `redis` |
//! | `KEY` | `shared` (the key comes from `SESSION_KEY`) or `generate` (`Key::generate()` per process: deliberately broken with more than one replica) | `shared` |
//! | `SESSION_KEY` | the cookie key's master secret, at least 64 bytes (`KEY=shared`) | none |
//! | `SESSION_STORE` | Redis URL (`STORE=redis`) | `redis://127.0.0.1:6379` |
//! | `PORT` | TCP port on `0.0.0.0` | `8080` |
//! | `INSTANCE_ID` | this replica's name in the log | `$HOSTNAME`, else `unknown` |

use actix_web::cookie::Key;

/// Where the session state lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Store {
    Redis { url: String },
    Cookie,
}

/// Where the cookie key comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeySource {
    /// From `SESSION_KEY`: every replica encrypts and decrypts with the same key.
    Shared,
    /// `Key::generate()` once per process: a cookie made by one replica means nothing to
    /// another, so its session is silently replaced by an empty one.
    Generate,
}

pub struct Config {
    pub store: Store,
    pub key_source: KeySource,
    /// Made once per process and cloned into every worker: a key generated per worker
    /// would lose sessions even inside one replica.
    pub key: Key,
    pub port: u16,
    pub instance: String,
}

impl Config {
    /// Reads the configuration through `var` (the process environment in `main`);
    /// the error names the variable and its accepted values.
    pub fn from_env(var: impl Fn(&str) -> Option<String>) -> Result<Config, String> {
        let var = |name: &str| var(name).filter(|v| !v.is_empty());
        let store = match var("STORE").as_deref() {
            None | Some("redis") => {
                let url = var("SESSION_STORE").unwrap_or_else(|| "redis://127.0.0.1:6379".into());
                redis::Client::open(url.as_str())
                    .map_err(|e| format!("SESSION_STORE={url:?} is not a Redis URL: {e}"))?;
                Store::Redis { url }
            }
            Some("cookie") => Store::Cookie,
            Some(other) => return Err(format!("STORE={other:?}; accepted values: redis, cookie")),
        };
        let (key_source, key) = match var("KEY").as_deref() {
            None | Some("shared") => (KeySource::Shared, shared_key(var("SESSION_KEY"))?),
            Some("generate") => (KeySource::Generate, Key::generate()),
            Some(other) => return Err(format!("KEY={other:?}; accepted values: shared, generate")),
        };
        let port = match var("PORT") {
            None => 8080,
            Some(p) => p
                .parse()
                .map_err(|_| format!("PORT={p:?} must be a port number (1-65535)"))?,
        };
        let instance = var("INSTANCE_ID")
            .or_else(|| var("HOSTNAME"))
            .unwrap_or_else(|| "unknown".into());
        Ok(Config {
            store,
            key_source,
            key,
            port,
            instance,
        })
    }
}

/// The key every replica derives alike from `SESSION_KEY`; `Key::try_from` takes the
/// first 64 bytes (32 to sign, 32 to encrypt) and refuses fewer.
fn shared_key(secret: Option<String>) -> Result<Key, String> {
    let secret = secret.ok_or("KEY=shared needs SESSION_KEY (at least 64 bytes)")?;
    Key::try_from(secret.as_bytes()).map_err(|_| {
        format!(
            "SESSION_KEY has {} bytes; at least 64 are needed",
            secret.len()
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    fn config(vars: &[(&str, &str)]) -> Result<Config, String> {
        Config::from_env(|name| {
            vars.iter()
                .find(|(n, _)| *n == name)
                .map(|(_, v)| v.to_string())
        })
    }

    #[test]
    fn defaults_to_redis_and_a_shared_key() {
        let c = config(&[("SESSION_KEY", SECRET), ("HOSTNAME", "h1")]).unwrap();
        assert_eq!(
            c.store,
            Store::Redis {
                url: "redis://127.0.0.1:6379".into()
            }
        );
        assert_eq!(c.key_source, KeySource::Shared);
        assert_eq!((c.port, c.instance.as_str()), (8080, "h1"));
    }

    #[test]
    fn a_shared_key_is_the_same_in_every_process_and_a_generated_one_is_not() {
        let shared = |_: ()| config(&[("SESSION_KEY", SECRET)]).unwrap().key;
        assert_eq!(shared(()).master(), shared(()).master());
        let generated = |_: ()| config(&[("KEY", "generate")]).unwrap().key;
        assert_ne!(generated(()).master(), generated(()).master());
    }

    #[test]
    fn bad_values_name_the_variable_and_what_is_accepted() {
        let err = |vars: &[(&str, &str)]| config(vars).err().unwrap();
        assert_eq!(
            err(&[("STORE", "memory")]),
            "STORE=\"memory\"; accepted values: redis, cookie"
        );
        assert_eq!(
            err(&[("STORE", "cookie"), ("KEY", "random")]),
            "KEY=\"random\"; accepted values: shared, generate"
        );
        assert_eq!(
            err(&[("STORE", "cookie")]),
            "KEY=shared needs SESSION_KEY (at least 64 bytes)"
        );
        assert_eq!(
            err(&[("STORE", "cookie"), ("SESSION_KEY", "short")]),
            "SESSION_KEY has 5 bytes; at least 64 are needed"
        );
        assert!(
            err(&[("SESSION_STORE", "http://x"), ("SESSION_KEY", SECRET)])
                .starts_with("SESSION_STORE=\"http://x\" is not a Redis URL")
        );
        assert_eq!(
            err(&[("KEY", "generate"), ("PORT", "80000")]),
            "PORT=\"80000\" must be a port number (1-65535)"
        );
    }
}
