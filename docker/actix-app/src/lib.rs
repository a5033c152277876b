//! actix-app: a demo service of sessionstorm built on a real third-party session library,
//! [actix-session](https://docs.rs/actix-session), configured the way its documentation
//! shows, so the harness is tried against what people really deploy.
//!
//! The page is the canonical session counter (tower-sessions' example): every `GET /`
//! reads the counter from the session, stores it plus one, and shows the value read.
//! actix-session keeps the session in a cookie named `id` whose content is encrypted
//! (a private cookie with a random nonce), so every answer sets a new cookie value even
//! though the session stays the same.
//!
//! | request | answer |
//! |---|---|
//! | `GET /` | 200 HTML `Current count: N`, N the count before this request's increment; `Set-Cookie: id=…` (a new value every time) |
//! | `GET /healthz` | 200; 503 when Redis does not answer PING (redis store) |
//!
//! Two settings make the four deployments of the demo ([`config`]): where the state
//! lives (`STORE=redis`, or `cookie`: all of it inside the encrypted cookie) and where
//! the cookie key comes from (`KEY=shared`, derived from `SESSION_KEY` so every replica
//! decrypts every cookie, or `generate`: `Key::generate()` in each process, the
//! deployment that loses every session a replica did not make).
//!
//! No `X-Served-By` header: a library app does not name its replica, so the harness has
//! to learn that from the balancer.
//!
//! Layout: [`config`] reads the environment, [`app`] has the routes, and `main.rs` runs
//! the server (actix-server drains connections on SIGTERM by itself).

pub mod app;
pub mod config;
