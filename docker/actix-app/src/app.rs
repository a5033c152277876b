//! Routes: the session counter and the health check.

use std::time::Duration;

use actix_session::Session;
use actix_web::{web, HttpResponse};

/// The counter's key inside the session.
const COUNTER: &str = "counter";
/// How long the health check waits for Redis before calling the replica unhealthy.
const PING_TIMEOUT: Duration = Duration::from_secs(1);

/// What `/healthz` checks besides the process answering.
#[derive(Clone)]
pub enum Health {
    /// Cookie store: nothing else to reach.
    Always,
    /// Redis store: Redis must answer PING.
    Redis(redis::aio::ConnectionManager),
}

/// Registers the routes; `health` is shared by every worker.
pub fn routes(health: Health) -> impl FnOnce(&mut web::ServiceConfig) {
    move |cfg| {
        cfg.app_data(web::Data::new(health))
            .route("/", web::get().to(count))
            .route("/healthz", web::get().to(healthz));
    }
}

/// The canonical session counter: the page shows the count read from the session,
/// and the session keeps it plus one, so every visit is a write.
async fn count(session: Session) -> actix_web::Result<HttpResponse> {
    let count: u64 = session.get(COUNTER)?.unwrap_or(0);
    session.insert(COUNTER, count + 1)?;
    Ok(HttpResponse::Ok()
        .content_type("text/html; charset=utf-8")
        .body(format!(
            "<!doctype html><title>actix-app</title><p>Current count: {count}</p>\n"
        )))
}

async fn healthz(health: web::Data<Health>) -> HttpResponse {
    let Health::Redis(conn) = health.get_ref() else {
        return HttpResponse::Ok().body("ok\n");
    };
    let mut conn = conn.clone();
    let command = redis::cmd("PING");
    let ping = command.query_async::<String>(&mut conn);
    match actix_web::rt::time::timeout(PING_TIMEOUT, ping).await {
        Ok(Ok(_)) => HttpResponse::Ok().body("ok\n"),
        Ok(Err(e)) => HttpResponse::ServiceUnavailable().body(format!("redis: {e}\n")),
        Err(_) => HttpResponse::ServiceUnavailable().body("redis: no answer to PING\n"),
    }
}
