//! A Sentinel's own account of a failover: the lines it publishes (`+sdown`,
//! `+odown`, `+switch-master`, `+convert-to-slave` …), heard from one Sentinel with
//! `PSUBSCRIBE *` while the load runs, so the store's timeline says in Sentinel's
//! words when it saw the primary down and whom it promoted.
//!
//! Only the lines that tell that story are kept; the chatter of a failover's inner
//! steps (`+slave-reconf-sent`, `+new-epoch`, discovery of peers) is left out.

use std::time::Duration;

use tokio::sync::mpsc::UnboundedSender;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::resp::{Connection, Reply};
use super::watch::{Locate, EVERY};

/// The channels kept, besides every `-failover-abort-…`.
const KEPT: [&str; 16] = [
    "+sdown",
    "-sdown",
    "+odown",
    "-odown",
    "+try-failover",
    "+elected-leader",
    "+selected-slave",
    "+promoted-slave",
    "+failover-end",
    "+failover-end-for-timeout",
    "+switch-master",
    "+convert-to-slave",
    "+role-change",
    "+reboot",
    "+tilt",
    "-tilt",
];

/// How long connecting and subscribing may take.
const SUBSCRIBE_TIMEOUT: Duration = Duration::from_secs(1);

/// A line a Sentinel published, when the harness heard it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Heard {
    pub at: Duration,
    pub sentinel: String,
    pub line: String,
}

/// The line a pushed message carries (`+switch-master sessions store-0 6379 store-1
/// 6379`), if it is one kept.
pub fn line(message: &Reply) -> Option<String> {
    let Reply::Array(Some(parts)) = message else {
        return None;
    };
    let texts: Vec<String> = parts.iter().filter_map(Reply::text).collect();
    let [kind, _pattern, channel, payload] = texts.as_slice() else {
        return None;
    };
    let kept = KEPT.contains(&channel.as_str()) || channel.starts_with("-failover-abort");
    (kind == "pmessage" && kept).then(|| format!("{channel} {payload}"))
}

/// Listens to the first Sentinel of `sentinels` that answers (the next one when it
/// stops) until `stop`, sending each line kept to `heard`, timed from `start`.
pub async fn listen(
    sentinels: Vec<(String, Locate)>,
    start: Instant,
    heard: UnboundedSender<Heard>,
    stop: CancellationToken,
) {
    for (name, locate) in sentinels.iter().cycle() {
        let subscribed = async {
            let addr = locate().await?;
            let subscribe = async {
                let mut connection = Connection::connect(&addr).await.ok()?;
                // Its first answer says the subscription holds.
                connection.call(&["PSUBSCRIBE", "*"]).await.ok()?;
                Some(connection)
            };
            tokio::time::timeout(SUBSCRIBE_TIMEOUT, subscribe)
                .await
                .ok()
                .flatten()
        };
        let connection = tokio::select! {
            connection = subscribed => connection,
            () = stop.cancelled() => return,
        };
        if let Some(mut connection) = connection {
            loop {
                let message = tokio::select! {
                    message = connection.next() => message,
                    () = stop.cancelled() => return,
                };
                let Ok(message) = message else { break };
                if let Some(line) = line(&message) {
                    let at = start.elapsed();
                    let sentinel = name.clone();
                    let _ = heard.send(Heard { at, sentinel, line });
                }
            }
        }
        tokio::select! {
            () = tokio::time::sleep(EVERY) => {}
            () = stop.cancelled() => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(parts: &[&str]) -> Reply {
        Reply::Array(Some(
            (parts.iter())
                .map(|p| Reply::Bulk(Some(p.as_bytes().to_vec())))
                .collect(),
        ))
    }

    #[test]
    fn the_lines_of_a_failover_are_kept_and_the_chatter_left_out() {
        let switch = message(&[
            "pmessage",
            "*",
            "+switch-master",
            "sessions store-0 6379 store-1 6379",
        ]);
        assert_eq!(
            line(&switch).as_deref(),
            Some("+switch-master sessions store-0 6379 store-1 6379")
        );
        let abort = message(&["pmessage", "*", "-failover-abort-no-good-slave", "x"]);
        assert!(line(&abort).is_some());
        for chatter in [
            message(&["pmessage", "*", "+slave-reconf-sent", "slave store-2:6379"]),
            message(&["pmessage", "*", "+new-epoch", "3"]),
            message(&["psubscribe", "*"]),
            Reply::Integer(1),
        ] {
            assert_eq!(line(&chatter), None, "{chatter:?}");
        }
    }
}
