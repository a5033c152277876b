//! Routes: a login form that creates the session, a page showing the counter, and a form
//! post that increments it. Unknown sessions go to the login page, the way Django's
//! `login_required` does (`/accounts/login/?next=/path`), unless sessions start on their
//! first write ([`Start::FirstWrite`]), the way Rails' and PHP's do.

use crate::http::{Request, Response};
use crate::store::{plausible_id, Store, StoreError};

/// The session cookie, named like Django's.
pub const COOKIE: &str = "sessionid";
pub const LOGIN: &str = "/accounts/login/";

/// How a session begins.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Start {
    /// At the login form; a request without a known session is sent there.
    Login,
    /// At the first increment, whose answer sets the cookie (Rails and PHP make a
    /// session only when something is written to it); a page without a known session
    /// shows a counter of 0 and sets no cookie. An unknown cookie gets a new session,
    /// under a new id.
    FirstWrite,
}

/// Answers one request.
pub fn handle(store: &dyn Store, start: Start, request: &Request) -> Response {
    let result = match (request.method.as_str(), request.path.as_str()) {
        ("GET", "/healthz") => store.ping().map(|()| Response::new(200, "ok\n")),
        ("GET", LOGIN) => Ok(html(
            200,
            "<form method=\"post\"><input name=\"username\"><button>Log in</button></form>",
        )),
        ("POST", LOGIN) => login(store, request),
        ("GET", "/") => page(store, start, request),
        ("POST", "/increment") => increment(store, start, request),
        (_, "/" | "/increment" | "/healthz" | LOGIN) => Ok(Response::new(405, "")),
        _ => Ok(Response::new(404, "not found\n")),
    };
    result
        .unwrap_or_else(|StoreError(why)| Response::new(503, format!("store unavailable: {why}\n")))
}

fn login(store: &dyn Store, request: &Request) -> Result<Response, StoreError> {
    let user = request.field("username").unwrap_or_default();
    if user.is_empty() {
        return Ok(Response::new(400, "username is required\n"));
    }
    let id = store.create(&user)?;
    // Only local paths: `next` must not turn the app into an open redirect.
    let next = request
        .field("next")
        .filter(|n| n.starts_with('/') && !n.starts_with("//"))
        .unwrap_or_else(|| "/".to_string());
    Ok(Response::see_other(&next).with("Set-Cookie", session_cookie(&id)))
}

fn session_cookie(id: &str) -> String {
    format!("{COOKIE}={id}; Path=/; HttpOnly; SameSite=Lax")
}

/// The session named by the cookie, if it is one the store knows, with its counter.
fn session(store: &dyn Store, request: &Request) -> Result<Option<(String, u64)>, StoreError> {
    let Some(id) = request.cookie(COOKIE).filter(|id| plausible_id(id)) else {
        return Ok(None);
    };
    Ok(store.count(id)?.map(|count| (id.to_string(), count)))
}

fn to_login(path: &str) -> Response {
    Response::see_other(&format!("{LOGIN}?next={path}"))
}

fn page(store: &dyn Store, start: Start, request: &Request) -> Result<Response, StoreError> {
    let count = match (session(store, request)?, start) {
        (Some((_, count)), _) => count,
        (None, Start::FirstWrite) => 0,
        (None, Start::Login) => return Ok(to_login("/")),
    };
    Ok(html(
        200,
        &format!(
            "<p>Count: <span id=\"count\">{count}</span></p>\
             <form method=\"post\" action=\"/increment\"><button>+1</button></form>"
        ),
    ))
}

fn increment(store: &dyn Store, start: Start, request: &Request) -> Result<Response, StoreError> {
    let Some(op) = request.field("op").filter(|op| !op.is_empty()) else {
        return Ok(Response::new(400, "op is required\n"));
    };
    let (id, new) = match (session(store, request)?, start) {
        (Some((id, _)), _) => (id, false),
        (None, Start::FirstWrite) => (store.create("")?, true),
        (None, Start::Login) => return Ok(to_login("/increment")),
    };
    Ok(match store.increment(&id, &op)? {
        Some(_) if new => Response::see_other("/").with("Set-Cookie", session_cookie(&id)),
        Some(_) => Response::see_other("/"),
        None => to_login("/increment"),
    })
}

fn html(status: u16, body: &str) -> Response {
    Response::new(
        status,
        format!("<!doctype html><title>counter</title><body>{body}</body>\n"),
    )
    .with("Content-Type", "text/html; charset=utf-8")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Memory;

    fn request(method: &str, path: &str, cookie: Option<&str>, body: &str) -> Request {
        Request {
            method: method.into(),
            path: path.into(),
            query: String::new(),
            headers: cookie
                .map(|c| vec![("Cookie".to_string(), c.to_string())])
                .unwrap_or_default(),
            body: body.as_bytes().to_vec(),
        }
    }

    fn location(r: &Response) -> &str {
        &r.headers.iter().find(|(n, _)| *n == "Location").unwrap().1
    }

    #[test]
    fn login_increment_and_page() {
        let store = Memory::default();
        let login = handle(
            &store,
            Start::Login,
            &request("POST", LOGIN, None, "username=ann"),
        );
        assert_eq!((login.status, location(&login)), (303, "/"));
        let set = &login
            .headers
            .iter()
            .find(|(n, _)| *n == "Set-Cookie")
            .unwrap()
            .1;
        let cookie = set.split(';').next().unwrap();
        for op in ["1", "2", "2"] {
            let r = handle(
                &store,
                Start::Login,
                &request("POST", "/increment", Some(cookie), &format!("op={op}")),
            );
            assert_eq!((r.status, location(&r)), (303, "/"));
        }
        let page = handle(&store, Start::Login, &request("GET", "/", Some(cookie), ""));
        assert!(
            page.body.contains("Count: <span id=\"count\">2</span>"),
            "{}",
            page.body
        );
    }

    fn set_cookie(r: &Response) -> Option<&str> {
        r.headers
            .iter()
            .find(|(n, _)| *n == "Set-Cookie")
            .map(|(_, v)| v.split(';').next().unwrap())
    }

    #[test]
    fn sessions_may_start_on_their_first_write() {
        let store = Memory::default();
        let start = Start::FirstWrite;
        let page = handle(&store, start, &request("GET", "/", None, ""));
        assert!(
            page.body.contains("<span id=\"count\">0</span>"),
            "{}",
            page.body
        );
        assert_eq!(set_cookie(&page), None, "a read makes no session");
        let first = handle(&store, start, &request("POST", "/increment", None, "op=a"));
        let cookie = set_cookie(&first)
            .expect("the first write sets the cookie")
            .to_string();
        let again = handle(
            &store,
            start,
            &request("POST", "/increment", Some(&cookie), "op=b"),
        );
        assert_eq!((again.status, set_cookie(&again)), (303, None));
        let page = handle(&store, start, &request("GET", "/", Some(&cookie), ""));
        assert!(
            page.body.contains("<span id=\"count\">2</span>"),
            "{}",
            page.body
        );
        // An unknown cookie gets a fresh session under another id.
        let stale = "sessionid=0123456789abcdef0123456789abcdef";
        let fresh = handle(
            &store,
            start,
            &request("POST", "/increment", Some(stale), "op=c"),
        );
        let other = set_cookie(&fresh).expect("a new cookie");
        assert!(other != stale && other != cookie, "{other}");
    }

    #[test]
    fn an_unknown_session_goes_to_the_login_page() {
        let store = Memory::default();
        let cookie = "sessionid=0123456789abcdef0123456789abcdef";
        let r = handle(&store, Start::Login, &request("GET", "/", Some(cookie), ""));
        assert_eq!((r.status, location(&r)), (303, "/accounts/login/?next=/"));
        let r = handle(
            &store,
            Start::Login,
            &request("POST", "/increment", None, "op=1"),
        );
        assert_eq!(location(&r), "/accounts/login/?next=/increment");
    }
}
