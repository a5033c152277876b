//! The store's own timeline, as it happens: the harness asks every member of the
//! store how it is a few times a second while the load runs (a Redis `INFO`, a
//! memcached `stats`), all members at once so their answers describe one moment, and
//! listens to a Sentinel's lines where the store has Sentinels. A Redis Cluster's
//! members are also asked what the cluster is (`CLUSTER INFO`, `CLUSTER NODES`),
//! and the first that answers gives the cluster's view. [`Observer`] turns what it
//! hears into the timeline (`super::timeline`).
//!
//! The engine says what to ask ([`Watched`], from `Lifecycle::store_watch`) and
//! where each member answers now: a member may be replaced by a fresh container
//! under its name, so it is looked up again at every question.

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use futures_util::future::join_all;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::cluster_view::View;
use super::info::Info;
use super::observe::Observer;
pub use super::observe::Roles;
use super::resp::{Connection, Reply};
use super::timeline::Recorded;
use super::{memcached, sentinel};

/// How often the store is asked.
pub const EVERY: Duration = Duration::from_millis(250);
/// How long finding a member and connecting to it may take, and then its answer: a
/// store slower than this is as good as silent.
const ASK_TIMEOUT: Duration = Duration::from_millis(500);

/// Where a member (or a Sentinel) answers now (its address can change when it is
/// replaced), or `None` while it has none.
pub type Locate =
    Box<dyn Fn() -> Pin<Box<dyn Future<Output = Option<String>> + Send>> + Send + Sync>;

/// A member that is always at `addr`: an attached stack's store, where `[attach]
/// store` says the harness reaches it.
pub fn fixed(addr: String) -> Locate {
    Box::new(move || {
        let addr = addr.clone();
        Box::pin(async move { Some(addr) })
    })
}

/// How a member is asked how it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    /// `INFO`, over Redis's protocol.
    Redis,
    /// `stats`, over memcached's text protocol.
    Memcached,
}

/// One member of the store, as the harness asks it.
pub struct Member {
    /// As chaos targets it: `store-0`, or `store` for a single store.
    pub name: String,
    pub protocol: Protocol,
    pub locate: Locate,
}

/// What the engine says of the store it can watch.
pub struct Watched {
    /// The store as chaos targets it (`store`).
    pub store: String,
    /// Its members; a single store is one member named like the store.
    pub members: Vec<Member>,
    pub roles: Roles,
    /// A replicated store's Sentinels, by name: the first that answers is listened to.
    pub sentinels: Vec<(String, Locate)>,
}

impl Watched {
    /// A store of one process, watched as itself.
    pub fn single(store: &str, protocol: Protocol, locate: Locate) -> Watched {
        Watched {
            store: store.to_string(),
            members: vec![Member {
                name: store.to_string(),
                protocol,
                locate,
            }],
            roles: Roles::None,
            sentinels: Vec::new(),
        }
    }

    /// Watched as itself: one member, named like the store.
    fn is_single(&self) -> bool {
        matches!(self.members.as_slice(), [only] if only.name == self.store)
    }
}

/// Asks every member of `watched` every [`EVERY`] until `stop`, from `start` (the
/// load's), and listens to its Sentinels.
pub async fn watch(watched: Watched, start: Instant, stop: CancellationToken) -> Recorded {
    let mut observer = match watched.is_single() {
        true => Observer::single(&watched.store),
        false => {
            let names: Vec<String> = watched.members.iter().map(|m| m.name.clone()).collect();
            Observer::of(&watched.store, &names, watched.roles)
        }
    };
    let Watched {
        members,
        sentinels,
        roles,
        ..
    } = watched;
    let cluster = roles == Roles::Sharded;
    let (heard, mut lines) = tokio::sync::mpsc::unbounded_channel();
    let listening = tokio::spawn(sentinel::listen(sentinels, start, heard, stop.clone()));
    let mut tick = tokio::time::interval(EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            Some(h) = lines.recv() => {
                observer.sentinel(h.at, &h.sentinel, &h.line);
                continue;
            }
            () = stop.cancelled() => break,
        }
        let lines = join_all(members.iter().map(Line::open)).await;
        // The time asked: what the answers say was so by then.
        let asked = start.elapsed();
        let asks = lines.into_iter().map(|line| Line::ask(line, cluster));
        let (answers, views): (Vec<_>, Vec<_>) = join_all(asks).await.into_iter().unzip();
        observer.observe(asked, answers);
        if cluster {
            observer.cluster(asked, views.into_iter().flatten().next());
        }
    }
    let _ = listening.await;
    while let Ok(h) = lines.try_recv() {
        observer.sentinel(h.at, &h.sentinel, &h.line);
    }
    observer.finish()
}

/// A member's connection, made before the question so that every member is asked
/// at the same moment: a replica's offset and its primary's are then comparable.
enum Line {
    Redis(Connection),
    Memcached(memcached::Connection),
}

impl Line {
    /// A connection to `member` where it answers now, `None` when it takes none in
    /// time.
    async fn open(member: &Member) -> Option<Line> {
        let open = async {
            let addr = (member.locate)().await?;
            Some(match member.protocol {
                Protocol::Redis => Line::Redis(Connection::connect(&addr).await.ok()?),
                Protocol::Memcached => {
                    Line::Memcached(memcached::Connection::connect(&addr).await.ok()?)
                }
            })
        };
        tokio::time::timeout(ASK_TIMEOUT, open).await.ok().flatten()
    }

    /// What the member says of itself now, `None` when it says nothing in time, and
    /// where `cluster`, of the Redis Cluster it is a node of, on the same line.
    async fn ask(line: Option<Line>, cluster: bool) -> (Option<Info>, Option<View>) {
        let question = async {
            match line? {
                Line::Redis(mut connection) => {
                    let info = Info::parse(&text(&mut connection, &["INFO"]).await?);
                    let view = match cluster {
                        true => view(&mut connection).await,
                        false => None,
                    };
                    Some((Some(info), view))
                }
                Line::Memcached(mut connection) => Some((connection.stats().await, None)),
            }
        };
        (tokio::time::timeout(ASK_TIMEOUT, question).await.ok())
            .flatten()
            .unwrap_or((None, None))
    }
}

/// What a Redis Cluster's node says the cluster is, `None` when it does not say.
async fn view(connection: &mut Connection) -> Option<View> {
    let info = text(connection, &["CLUSTER", "INFO"]).await?;
    let nodes = text(connection, &["CLUSTER", "NODES"]).await?;
    Some(View::parse(&info, &nodes))
}

/// A Redis's answer to `command` when it is a text.
async fn text(connection: &mut Connection, command: &[&str]) -> Option<String> {
    match connection.call(command).await.ok()? {
        reply @ Reply::Bulk(Some(_)) => reply.text(),
        _ => None,
    }
}
