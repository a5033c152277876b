//! counter-app: the second demo service of sessionstorm, written unlike `session-app` on
//! purpose so that custom session flows are tried against a different kind of service.
//!
//! It behaves like a small server-rendered web app (the shape of a Django or Spring MVC app
//! with `login_required`): a session cookie named `sessionid`, form posts, `303 See Other`
//! after every post, and a redirect to `/accounts/login/?next=…` when the session is unknown.
//! It does not speak the session contract, so the harness can only drive it with a
//! `[flow]`.
//!
//! | request | answer |
//! |---|---|
//! | `POST /accounts/login/` form `username`, `next` | 303 to `next` (default `/`), `Set-Cookie: sessionid=…` |
//! | `GET /` | 200 HTML page with `Count: <span id="count">N</span>`; 303 to the login page without a session |
//! | `POST /increment` form `op` | 303 to `/`; the counter grows by one per distinct `op` (a resent form counts once) |
//!
//! With `SESSION_START=first_write` there is no login (the way Rails and PHP make a
//! session only on its first write): an increment without a known session makes one
//! and its answer sets `sessionid`, and a page without one shows 0.
//! | `GET /healthz` | 200 when the store answers, else 503 |
//! | every answer | `X-Served-By: <INSTANCE_ID>`, `Connection: close` |
//!
//! Layout: [`http`] reads one request and writes one answer on a blocking socket, [`store`]
//! keeps sessions (Redis or a local map), [`app`] routes, and `main.rs` accepts connections
//! on a thread each and drains them on SIGTERM.

pub mod app;
pub mod http;
pub mod store;
