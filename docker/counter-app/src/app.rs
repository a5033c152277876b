//! Routes: a login form that creates the session, a page showing the counter, and a form
//! post that increments it. Unknown sessions go to the login page, the way Django's
//! `login_required` does (`/accounts/login/?next=/path`).

use crate::http::{Request, Response};
use crate::store::{plausible_id, Store, StoreError};

/// The session cookie, named like Django's.
pub const COOKIE: &str = "sessionid";
pub const LOGIN: &str = "/accounts/login/";

/// Answers one request.
pub fn handle(store: &dyn Store, request: &Request) -> Response {
    let result = match (request.method.as_str(), request.path.as_str()) {
        ("GET", "/healthz") => store.ping().map(|()| Response::new(200, "ok\n")),
        ("GET", LOGIN) => Ok(html(
            200,
            "<form method=\"post\"><input name=\"username\"><button>Log in</button></form>",
        )),
        ("POST", LOGIN) => login(store, request),
        ("GET", "/") => page(store, request),
        ("POST", "/increment") => increment(store, request),
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
    Ok(Response::see_other(&next).with(
        "Set-Cookie",
        format!("{COOKIE}={id}; Path=/; HttpOnly; SameSite=Lax"),
    ))
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

fn page(store: &dyn Store, request: &Request) -> Result<Response, StoreError> {
    let Some((_, count)) = session(store, request)? else {
        return Ok(to_login("/"));
    };
    Ok(html(
        200,
        &format!(
            "<p>Count: <span id=\"count\">{count}</span></p>\
             <form method=\"post\" action=\"/increment\"><button>+1</button></form>"
        ),
    ))
}

fn increment(store: &dyn Store, request: &Request) -> Result<Response, StoreError> {
    let Some((id, _)) = session(store, request)? else {
        return Ok(to_login("/increment"));
    };
    let Some(op) = request.field("op").filter(|op| !op.is_empty()) else {
        return Ok(Response::new(400, "op is required\n"));
    };
    Ok(match store.increment(&id, &op)? {
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
        let login = handle(&store, &request("POST", LOGIN, None, "username=ann"));
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
                &request("POST", "/increment", Some(cookie), &format!("op={op}")),
            );
            assert_eq!((r.status, location(&r)), (303, "/"));
        }
        let page = handle(&store, &request("GET", "/", Some(cookie), ""));
        assert!(
            page.body.contains("Count: <span id=\"count\">2</span>"),
            "{}",
            page.body
        );
    }

    #[test]
    fn an_unknown_session_goes_to_the_login_page() {
        let store = Memory::default();
        let cookie = "sessionid=0123456789abcdef0123456789abcdef";
        let r = handle(&store, &request("GET", "/", Some(cookie), ""));
        assert_eq!((r.status, location(&r)), (303, "/accounts/login/?next=/"));
        let r = handle(&store, &request("POST", "/increment", None, "op=1"));
        assert_eq!(location(&r), "/accounts/login/?next=/increment");
    }
}
