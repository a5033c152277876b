//! The session contract v1 over HTTP, independent of how sessions are stored.
//!
//! Status codes are part of what the harness measures, so they are chosen to keep causes
//! apart: 404 means "this service does not know the session" (the loss the harness hunts for),
//! 503 means "the store is unreachable right now" (degraded, but nothing is lost), 400 means
//! the client sent garbage. Every answer, errors included, carries `X-Served-By` so the
//! harness can attribute each response, and each loss, to a replica.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::header::{COOKIE, SET_COOKIE};
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::json;
use uuid::Uuid;

use crate::store::{Session, Store, StoreError};

pub const SERVED_BY: HeaderName = HeaderName::from_static("x-served-by");
pub const COOKIE_NAME: &str = "sid";

/// Builds the full application; `instance_id` goes into `X-Served-By`.
pub fn router<S: Store>(store: Arc<S>, instance_id: HeaderValue) -> Router {
    Router::new()
        .route("/session", post(create::<S>).get(read::<S>))
        .route("/session/items", post(append::<S>))
        .route("/healthz", get(health::<S>))
        .route("/livez", get(live))
        .with_state(store)
        // A layer (not per-handler code) so axum's own answers, such as 404 for an unknown
        // path or 405 for a wrong method, are attributed to this replica as well.
        .layer(axum::middleware::map_response(move |mut res: Response| {
            let instance_id = instance_id.clone();
            async move {
                res.headers_mut().insert(SERVED_BY, instance_id);
                res
            }
        }))
}

enum ApiError {
    UnknownSession,
    BadRequest(String),
    Store(StoreError),
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, message) = match self {
            ApiError::UnknownSession => (StatusCode::NOT_FOUND, "unknown session".to_owned()),
            ApiError::BadRequest(why) => (StatusCode::BAD_REQUEST, why),
            ApiError::Store(e) => (StatusCode::SERVICE_UNAVAILABLE, e.to_string()),
        };
        (status, Json(json!({ "error": message }))).into_response()
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        ApiError::Store(e)
    }
}

/// Returns the session id from the `sid` cookie in canonical form, or `None` if there is no
/// such cookie or it is not a UUID. Such a request names no session this service could have
/// issued, so callers answer 404 exactly as for an expired one; validating here also means
/// stores never see arbitrary client bytes in their keys.
fn session_id(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == COOKIE_NAME)
        .and_then(|(_, value)| Uuid::parse_str(value.trim().trim_matches('"')).ok())
        .map(|id| id.hyphenated().to_string())
}

async fn create<S: Store>(State(store): State<Arc<S>>) -> Result<Response, ApiError> {
    let id = Uuid::new_v4().hyphenated().to_string();
    let session = store.create(&id).await?;
    let cookie = HeaderValue::from_str(&format!("{COOKIE_NAME}={id}; Path=/; HttpOnly"))
        .expect("a UUID is a valid header value");
    Ok((StatusCode::CREATED, [(SET_COOKIE, cookie)], Json(session)).into_response())
}

async fn read<S: Store>(
    State(store): State<Arc<S>>,
    headers: HeaderMap,
) -> Result<Json<Session>, ApiError> {
    let id = session_id(&headers).ok_or(ApiError::UnknownSession)?;
    let session = store.get(&id).await?.ok_or(ApiError::UnknownSession)?;
    Ok(Json(session))
}

/// Accepts a string op id, and for convenience a number (used as its decimal text).
#[derive(Deserialize)]
#[serde(untagged)]
enum OpId {
    Text(String),
    Number(serde_json::Number),
}

#[derive(Deserialize)]
struct AppendBody {
    op: OpId,
    item: String,
}

/// The body is parsed by hand rather than with axum's `Json` extractor, which answers 415
/// for a missing content type and 422 for a wrong shape: the contract has one answer for
/// any unusable body, 400.
async fn append<S: Store>(
    State(store): State<Arc<S>>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<Session>, ApiError> {
    let body: AppendBody = serde_json::from_slice(&body).map_err(|e| {
        ApiError::BadRequest(format!(
            "body must be {{\"op\": string, \"item\": string}}: {e}"
        ))
    })?;
    let op = match body.op {
        OpId::Text(s) => s,
        OpId::Number(n) => n.to_string(),
    };
    if op.is_empty() {
        return Err(ApiError::BadRequest("op must not be empty".into()));
    }
    let id = session_id(&headers).ok_or(ApiError::UnknownSession)?;
    let session = store
        .append(&id, &op, &body.item)
        .await?
        .ok_or(ApiError::UnknownSession)?;
    Ok(Json(session))
}

async fn health<S: Store>(State(store): State<Arc<S>>) -> Response {
    match store.ping().await {
        Ok(()) => (StatusCode::OK, Json(json!({ "status": "ok" }))).into_response(),
        Err(e) => (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({ "status": "unavailable", "error": e.to_string() })),
        )
            .into_response(),
    }
}

/// 200 while the process serves, without asking the store: the check of a balancer
/// that keeps a replica in rotation when its store is gone (as many real services'
/// liveness checks do), so that a scenario can show what users then get from it.
async fn live() -> Response {
    (StatusCode::OK, Json(json!({ "status": "ok" }))).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(cookies: &[&str]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for c in cookies {
            h.append(COOKIE, HeaderValue::from_str(c).unwrap());
        }
        h
    }

    #[test]
    fn finds_sid_among_other_cookies() {
        let id = "0b0c1d9e-2f6a-4c53-9d55-3f1e1f2a7b10";
        assert_eq!(
            session_id(&headers(&[&format!("a=1; sid={id}; b=2")])).as_deref(),
            Some(id)
        );
        assert_eq!(
            session_id(&headers(&["a=1", &format!("sid={}", id.to_uppercase())])).as_deref(),
            Some(id)
        );
    }

    #[test]
    fn rejects_missing_or_malformed_sid() {
        assert_eq!(session_id(&headers(&[])), None);
        assert_eq!(session_id(&headers(&["sidx=1; other=2"])), None);
        assert_eq!(session_id(&headers(&["sid=../../etc"])), None);
        assert_eq!(session_id(&headers(&["sid="])), None);
    }
}
