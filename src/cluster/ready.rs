//! Readiness as data: what "ready" means for a container is a list of [`Probe`]s,
//! and one loop ([`wait_ready`]) asks them until they pass, the wait times out or
//! the user interrupts. Every engine's waits end the same ways, said the same way
//! ([`Waiting`]): the container exited (with its last log lines), the wait was
//! interrupted, or it timed out, with the last reason and the setting to raise.
//!
//! The swarm engine's question (is a task of the slot serving through the
//! balancer?) needs its own task list and the balancer's statistics, so it asks
//! it itself and ends each round through [`Waiting::again`], like [`wait_ready`].

use std::time::{Duration, Instant};

use bollard::models::{ContainerState, HealthStatusEnum};
use tokio_util::sync::CancellationToken;

use super::engine::{Engine, EngineError};

/// How often readiness is asked again.
pub const POLL: Duration = Duration::from_millis(100);

/// How many of a container's last log lines an error shows.
const LOG_LINES: usize = 20;

/// One question asked of a starting container, again each round until it passes.
#[derive(Debug, Clone)]
pub enum Probe {
    /// The container runs. One that stopped comes back by nobody's hand, so the
    /// wait fails at once with its last log lines: a replica that crashes at start
    /// would otherwise look like a slow one until the timeout.
    Alive(String),
    /// Docker runs the container; a stopped one is waited for, as its restart
    /// policy may start it again.
    Running(String),
    /// The container's process started after `before` (its `StartedAt` then): a
    /// restart happened, and the old process is not taken for the new one.
    RestartedSince { container: String, before: String },
    /// The container's own healthcheck, when it has one, no longer says
    /// starting or unhealthy.
    Healthy(String),
    /// A GET of the URL answers 200.
    Http(String),
    /// A Redis at the container's address on `network` answers PING with PONG
    /// (one loading its append-only file answers LOADING instead).
    RedisPing {
        container: String,
        network: String,
        port: u16,
    },
    /// The container's address on `network` accepts a TCP connection at `port`: a
    /// store taken as ready when the harness knows no better question to ask it.
    Tcp {
        container: String,
        network: String,
        port: u16,
    },
}

/// What is waited for, until when, and what a failed wait says.
#[derive(Debug)]
pub struct Waiting<'a> {
    /// What is waited for, as messages name it: "container sessionstorm-…",
    /// "the store sessionstorm-…", "replica-2".
    pub subject: String,
    pub deadline: Instant,
    /// The user's interrupt, which cuts the wait short.
    pub cancel: &'a CancellationToken,
    /// What the timeout says was late, before the last reason ("X was not ready
    /// in time").
    pub late: String,
    /// What the timeout says after the last reason: what to check, and the setting
    /// to raise.
    pub advice: String,
}

impl Waiting<'_> {
    /// Ends a round that did not pass for `why`: fails when interrupted or past the
    /// deadline, sleeps until the next round otherwise.
    pub async fn again(&self, why: String) -> Result<(), EngineError> {
        if self.cancel.is_cancelled() {
            return Err(EngineError::State(format!(
                "stopped waiting for {}: interrupted",
                self.subject
            )));
        }
        if Instant::now() >= self.deadline {
            return Err(EngineError::State(format!(
                "{}: {why}. {}",
                self.late, self.advice
            )));
        }
        tokio::time::sleep(POLL).await;
        Ok(())
    }

    /// The container stopped for good: its exit, with its last log lines.
    async fn exited(&self, engine: &Engine, container: &str) -> EngineError {
        let logs = engine.logs_tail(container, LOG_LINES).await;
        EngineError::State(format!(
            "{} exited before it was ready; its last log lines:\n{logs}",
            self.subject
        ))
    }
}

/// Asks `probes` in order, every [`POLL`], until they all pass in one round; the
/// first that does not pass says why the round failed. HTTP probes go through
/// `http`, whose TLS settings are the caller's.
pub async fn wait_ready(
    engine: &Engine,
    http: &reqwest::Client,
    probes: &[Probe],
    waiting: &Waiting<'_>,
) -> Result<(), EngineError> {
    loop {
        match round(engine, http, probes, waiting).await? {
            None => return Ok(()),
            Some(why) => waiting.again(why).await?,
        }
    }
}

/// One round of `probes`: `None` when all pass, else the first one's reason.
async fn round(
    engine: &Engine,
    http: &reqwest::Client,
    probes: &[Probe],
    waiting: &Waiting<'_>,
) -> Result<Option<String>, EngineError> {
    // The container probes of a round share one inspection.
    let mut inspected: Option<(&str, ContainerState)> = None;
    for probe in probes {
        let container = match probe {
            Probe::Alive(c) | Probe::Running(c) | Probe::Healthy(c) => Some(c.as_str()),
            Probe::RestartedSince { container, .. } => Some(container.as_str()),
            _ => None,
        };
        if let Some(container) = container {
            if inspected.as_ref().map(|(c, _)| *c) != Some(container) {
                let state = engine.inspect(container).await?.state.unwrap_or_default();
                inspected = Some((container, state));
            }
        }
        let state = inspected.as_ref().map(|(_, state)| state);
        let running = state.is_some_and(|s| s.running == Some(true));
        let why = match probe {
            Probe::Alive(container) if !running => {
                return Err(waiting.exited(engine, container).await)
            }
            Probe::Running(_) if !running => Some("it is not running".to_string()),
            Probe::RestartedSince { before, .. }
                if state.and_then(|s| s.started_at.as_deref()) == Some(before.as_str()) =>
            {
                Some("it has not been restarted".to_string())
            }
            Probe::Healthy(_) => match state.and_then(|s| s.health.as_ref()?.status) {
                Some(health @ (HealthStatusEnum::STARTING | HealthStatusEnum::UNHEALTHY)) => {
                    Some(format!("its healthcheck says {health}"))
                }
                _ => None,
            },
            Probe::Http(url) => match http.get(url).send().await {
                Ok(answer) if answer.status() == 200 => None,
                Ok(answer) => Some(format!("{url} answered {}", answer.status())),
                Err(err) => Some(format!("{url} did not answer: {err}")),
            },
            Probe::RedisPing {
                container,
                network,
                port,
            }
            | Probe::Tcp {
                container,
                network,
                port,
            } => match engine.ip(container, network).await {
                Ok(ip) if matches!(probe, Probe::RedisPing { .. }) => {
                    redis_ping(&format!("{ip}:{port}")).await.err()
                }
                Ok(ip) => tcp_connect(&format!("{ip}:{port}")).await.err(),
                Err(err) => Some(err.to_string()),
            },
            _ => None,
        };
        if why.is_some() {
            return Ok(why);
        }
    }
    Ok(None)
}

/// Sends PING to a Redis at `addr` and expects PONG, within a second.
async fn redis_ping(addr: &str) -> Result<(), String> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let exchange = async {
        let mut stream = tokio::net::TcpStream::connect(addr).await?;
        stream.write_all(b"PING\r\n").await?;
        let mut answer = [0u8; 64];
        let n = stream.read(&mut answer).await?;
        Ok::<_, std::io::Error>(String::from_utf8_lossy(&answer[..n]).trim().to_string())
    };
    match tokio::time::timeout(Duration::from_secs(1), exchange).await {
        Ok(Ok(answer)) if answer == "+PONG" => Ok(()),
        Ok(Ok(answer)) => Err(format!("it answered {answer:?}")),
        Ok(Err(err)) => Err(err.to_string()),
        Err(_) => Err("no answer within 1s".into()),
    }
}

/// Connects to `addr` over TCP, within a second.
async fn tcp_connect(addr: &str) -> Result<(), String> {
    match tokio::time::timeout(Duration::from_secs(1), tokio::net::TcpStream::connect(addr)).await {
        Ok(Ok(_)) => Ok(()),
        Ok(Err(err)) => Err(err.to_string()),
        Err(_) => Err("no connection within 1s".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn waiting(cancel: &CancellationToken, deadline: Instant) -> Waiting<'_> {
        Waiting {
            subject: "container c".into(),
            deadline,
            cancel,
            late: "c was not ready in time".into(),
            advice: "Raise `service.ready_timeout` if the service is slow to start.".into(),
        }
    }

    #[tokio::test]
    async fn a_late_wait_names_the_last_reason_and_the_setting_to_raise() {
        let cancel = CancellationToken::new();
        let late = waiting(&cancel, Instant::now());
        let err = late.again("http://c/health answered 503".into()).await;
        assert_eq!(
            err.unwrap_err().to_string(),
            "c was not ready in time: http://c/health answered 503. \
             Raise `service.ready_timeout` if the service is slow to start."
        );
        let on_time = waiting(&cancel, Instant::now() + Duration::from_secs(60));
        assert!(on_time.again("not yet".into()).await.is_ok());
        cancel.cancel();
        let err = on_time.again("not yet".into()).await.unwrap_err();
        assert_eq!(
            err.to_string(),
            "stopped waiting for container c: interrupted"
        );
    }
}
