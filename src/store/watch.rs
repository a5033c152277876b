//! The store's own timeline: the harness asks the store how it is a few times a
//! second while the load runs, and keeps what can explain a lost session: a restart
//! (a new `run_id`), its keys falling to none, keys evicted under `maxmemory`, a change
//! of role, a new memory limit, and when it did not answer at all.
//!
//! Samples become one point a second ([`StorePoint`], in a bounded [`Series`]), events
//! a bounded list ([`StoreEvent`]): summary.json stays small for any run length.

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::info::Info;
use super::resp::{Connection, Reply};
use crate::load::series::{Point, Series};

/// How often the store is asked.
pub const EVERY: Duration = Duration::from_millis(250);
/// How long one question may take: a store slower than this is as good as silent.
const ASK_TIMEOUT: Duration = Duration::from_millis(500);
/// Events listed at most; the rest are counted.
const MAX_EVENTS: usize = 200;

/// The store over one second (or several, in a long run).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StorePoint {
    /// Its first second, from the start of the load.
    pub t: u64,
    pub span_s: u64,
    /// Keys at the end of the span, and the fewest and most seen in it.
    pub keys: u64,
    pub keys_min: u64,
    pub keys_max: u64,
    /// Keys evicted, and expired, in the span.
    pub evicted: u64,
    pub expired: u64,
    pub used_memory_max: u64,
    /// The limit at the end of the span (0: none).
    pub maxmemory: u64,
    /// Samples in which the store did not answer.
    pub unanswered: u64,
}

impl Point for StorePoint {
    fn t(&self) -> u64 {
        self.t
    }

    fn absorb(&mut self, later: &StorePoint) {
        self.span_s += later.span_s;
        self.keys = later.keys;
        self.keys_min = self.keys_min.min(later.keys_min);
        self.keys_max = self.keys_max.max(later.keys_max);
        self.evicted += later.evicted;
        self.expired += later.expired;
        self.used_memory_max = self.used_memory_max.max(later.used_memory_max);
        self.maxmemory = later.maxmemory;
        self.unanswered += later.unanswered;
    }
}

/// What the store did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StoreEventKind {
    /// It stopped answering.
    Unreachable,
    /// It answers again.
    Reachable,
    /// A new process: what it holds now is what it loaded, or nothing.
    Restarted,
    /// The same process, its keys fallen from some to none (a flush, or a replica
    /// resynced from an empty primary).
    Emptied,
    /// It removed keys to stay under `maxmemory`.
    Evicted,
    /// It became a primary, or a replica.
    Role,
    /// Its `maxmemory` changed.
    MemoryLimit,
}

/// Something the store did, when, in words.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoreEvent {
    /// When the harness asked and saw it, since the start of the load.
    pub at_ms: u64,
    /// When it asked before that: the store did it after this, by `at_ms`.
    #[serde(default)]
    pub since_ms: u64,
    pub kind: StoreEventKind,
    pub detail: String,
    /// Keys evicted in this episode (evictions less than a second apart are one).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub keys: u64,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// The store's timeline over a run.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoreTimeline {
    /// The member watched, as chaos targets it (`store`).
    pub member: String,
    pub points: Vec<StorePoint>,
    pub events: Vec<StoreEvent>,
    pub events_total: u64,
    /// Keys evicted over the run, all episodes.
    pub evicted_total: u64,
}

impl StoreTimeline {
    /// The last event that may have come before `at` (since the load's start), of
    /// those `which` picks: one the store did after the question before the one that
    /// saw it (`since_ms`), as a harness that asks four times a second sees it late.
    pub fn last_before(
        &self,
        at: Duration,
        which: impl Fn(&StoreEvent) -> bool,
    ) -> Option<&StoreEvent> {
        let at = at.as_millis() as u64;
        (self.events.iter().rev()).find(|e| e.since_ms < at && which(e))
    }

    /// The last event that may have come before `at`, in words: `store restarted …
    /// between 4.0s and 4.3s`.
    pub fn nearest(&self, at: Duration) -> Option<String> {
        self.last_before(at, |_| true).map(|e| {
            format!(
                "{} {} between {:.1}s and {:.1}s",
                self.member,
                e.detail,
                e.since_ms as f64 / 1000.0,
                e.at_ms as f64 / 1000.0
            )
        })
    }
}

/// Turns answers (or their absence) into points and events; pure, so every rule is
/// tested without a store.
#[derive(Debug, Default)]
pub struct Observer {
    last: Option<Info>,
    /// Whether the last question got an answer (none asked yet: true).
    answered: bool,
    point: Option<StorePoint>,
    /// When keys were last evicted, to tell one episode from the next.
    last_eviction: Option<Duration>,
    /// When the store was last asked, and when before that.
    asked: Duration,
    since: Duration,
    series: Series<StorePoint>,
    timeline: StoreTimeline,
}

impl Observer {
    pub fn new(member: &str) -> Observer {
        Observer {
            answered: true,
            timeline: StoreTimeline {
                member: member.to_string(),
                ..StoreTimeline::default()
            },
            ..Observer::default()
        }
    }

    /// What the store answered at `at` since the load's start, `None` for no answer.
    pub fn observe(&mut self, at: Duration, info: Option<Info>) {
        self.since = std::mem::replace(&mut self.asked, at);
        let second = at.as_secs();
        if self.point.as_ref().is_some_and(|p| p.t != second) {
            self.series.push(self.point.take().expect("checked"));
        }
        let point = self.point.get_or_insert_with(|| StorePoint {
            t: second,
            span_s: 1,
            keys_min: u64::MAX,
            ..StorePoint::default()
        });
        let Some(info) = info else {
            point.unanswered += 1;
            if self.answered {
                self.answered = false;
                self.event(
                    at,
                    StoreEventKind::Unreachable,
                    "stopped answering".into(),
                    0,
                );
            }
            return;
        };
        point.keys = info.keys;
        point.keys_min = point.keys_min.min(info.keys);
        point.keys_max = point.keys_max.max(info.keys);
        point.used_memory_max = point.used_memory_max.max(info.used_memory);
        point.maxmemory = info.maxmemory;
        if !self.answered {
            self.answered = true;
            self.event(at, StoreEventKind::Reachable, "answers again".into(), 0);
        }
        let Some(last) = self.last.take() else {
            self.last = Some(info);
            return;
        };
        let same = last.run_id == info.run_id;
        // Counters start again with a new process.
        let (evicted, expired) = match same {
            true => (
                info.evicted_keys.saturating_sub(last.evicted_keys),
                info.expired_keys.saturating_sub(last.expired_keys),
            ),
            false => (info.evicted_keys, info.expired_keys),
        };
        let point = self.point.as_mut().expect("made above");
        point.evicted += evicted;
        point.expired += expired;
        if !same {
            let detail = format!(
                "restarted (a new process): it holds {} keys, {} before",
                info.keys, last.keys
            );
            self.event(at, StoreEventKind::Restarted, detail, 0);
        } else if last.keys > 0 && info.keys == 0 {
            let detail = format!("emptied: {} keys, then none", last.keys);
            self.event(at, StoreEventKind::Emptied, detail, 0);
        }
        if last.role != info.role && !info.role.is_empty() {
            let detail = format!("became a {} (was a {})", info.role_name(), last.role_name());
            self.event(at, StoreEventKind::Role, detail, 0);
        }
        if last.maxmemory != info.maxmemory {
            let detail = format!(
                "maxmemory {} (was {}), policy {}",
                memory(info.maxmemory),
                memory(last.maxmemory),
                info.maxmemory_policy
            );
            self.event(at, StoreEventKind::MemoryLimit, detail, 0);
        }
        if evicted > 0 {
            self.evicted(at, evicted, &info);
        }
        self.last = Some(info);
    }

    /// Evictions less than a second after the last ones extend that episode.
    fn evicted(&mut self, at: Duration, keys: u64, info: &Info) {
        self.timeline.evicted_total += keys;
        let policy = &info.maxmemory_policy;
        let goes_on = self
            .last_eviction
            .is_some_and(|last| at <= last + Duration::from_secs(1));
        self.last_eviction = Some(at);
        match self.timeline.events.last_mut() {
            Some(episode) if goes_on && episode.kind == StoreEventKind::Evicted => {
                episode.keys += keys;
                episode.detail =
                    format!("evicted {} keys under maxmemory ({policy})", episode.keys);
            }
            _ => {
                let detail = format!("evicted {keys} keys under maxmemory ({policy})");
                self.event(at, StoreEventKind::Evicted, detail, keys);
            }
        }
    }

    fn event(&mut self, at: Duration, kind: StoreEventKind, detail: String, keys: u64) {
        self.timeline.events_total += 1;
        if self.timeline.events.len() < MAX_EVENTS {
            self.timeline.events.push(StoreEvent {
                at_ms: at.as_millis() as u64,
                since_ms: self.since.as_millis() as u64,
                kind,
                detail,
                keys,
            });
        }
    }

    pub fn finish(mut self) -> StoreTimeline {
        if let Some(point) = self.point.take() {
            self.series.push(point);
        }
        self.timeline.points = self.series.into_rows();
        for point in &mut self.timeline.points {
            if point.keys_min == u64::MAX {
                point.keys_min = 0;
            }
        }
        self.timeline
    }
}

/// `2 MiB`, `none`.
fn memory(bytes: u64) -> String {
    match bytes {
        0 => "none".to_string(),
        b if b % (1 << 20) == 0 => format!("{} MiB", b >> 20),
        b => format!("{:.1} MiB", b as f64 / f64::from(1 << 20)),
    }
}

/// Where the store answers now (its address can change when it is replaced), or
/// `None` while it has none.
pub type Locate =
    Box<dyn Fn() -> Pin<Box<dyn Future<Output = Option<String>> + Send>> + Send + Sync>;

/// A store that is always at `addr`: an attached stack's, where `[attach] store`
/// says the harness reaches it.
pub fn fixed(addr: String) -> Locate {
    Box::new(move || {
        let addr = addr.clone();
        Box::pin(async move { Some(addr) })
    })
}

/// Asks the store `INFO` every [`EVERY`] until `stop`, from `start` (the load's).
pub async fn watch(
    member: String,
    locate: Locate,
    start: Instant,
    stop: CancellationToken,
) -> StoreTimeline {
    let mut observer = Observer::new(&member);
    let mut tick = tokio::time::interval(EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            () = stop.cancelled() => break,
        }
        // The time asked: what the answer says was so by then.
        let asked = start.elapsed();
        let info = match locate().await {
            Some(addr) => ask(&addr).await,
            None => None,
        };
        observer.observe(asked, info);
    }
    observer.finish()
}

/// `INFO` from the store at `addr`, `None` when it gives none in time.
pub async fn ask(addr: &str) -> Option<Info> {
    let question = async {
        let mut connection = Connection::connect(addr).await.ok()?;
        match connection.call(&["INFO"]).await.ok()? {
            reply @ Reply::Bulk(Some(_)) => reply.text().map(|text| Info::parse(&text)),
            _ => None,
        }
    };
    tokio::time::timeout(ASK_TIMEOUT, question)
        .await
        .ok()
        .flatten()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(run_id: &str, keys: u64, evicted: u64) -> Info {
        Info {
            run_id: run_id.into(),
            role: "master".into(),
            keys,
            evicted_keys: evicted,
            maxmemory_policy: "allkeys-lru".into(),
            ..Info::default()
        }
    }

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    fn kinds(timeline: &StoreTimeline) -> Vec<StoreEventKind> {
        timeline.events.iter().map(|e| e.kind).collect()
    }

    #[test]
    fn a_restart_an_outage_and_an_emptied_store_are_events() {
        let mut o = Observer::new("store");
        o.observe(ms(0), Some(info("a", 10, 0)));
        o.observe(ms(250), Some(info("a", 12, 0)));
        o.observe(ms(500), None);
        o.observe(ms(750), None);
        o.observe(ms(1000), Some(info("b", 0, 0)));
        o.observe(ms(1250), Some(info("b", 3, 0)));
        o.observe(ms(1500), Some(info("b", 0, 0)));
        let t = o.finish();
        use StoreEventKind::*;
        assert_eq!(kinds(&t), [Unreachable, Reachable, Restarted, Emptied]);
        assert_eq!(t.events[0].at_ms, 500);
        assert_eq!(
            t.events[2].detail,
            "restarted (a new process): it holds 0 keys, 12 before"
        );
        assert_eq!(t.points.len(), 2);
        assert_eq!(
            (
                t.points[0].keys,
                t.points[0].keys_min,
                t.points[0].unanswered
            ),
            (12, 10, 2)
        );
        assert_eq!((t.points[1].keys, t.points[1].keys_min), (0, 0));
    }

    #[test]
    fn evictions_less_than_a_second_apart_are_one_episode() {
        let mut o = Observer::new("store");
        o.observe(ms(0), Some(info("a", 100, 0)));
        o.observe(ms(250), Some(info("a", 90, 10)));
        o.observe(ms(500), Some(info("a", 80, 25)));
        o.observe(ms(3000), Some(info("a", 80, 25)));
        o.observe(ms(3250), Some(info("a", 79, 26)));
        let t = o.finish();
        assert_eq!(
            kinds(&t),
            [StoreEventKind::Evicted, StoreEventKind::Evicted]
        );
        assert_eq!(t.events[0].keys, 25);
        assert_eq!(
            t.events[0].detail,
            "evicted 25 keys under maxmemory (allkeys-lru)"
        );
        assert_eq!((t.events[1].at_ms, t.events[1].keys), (3250, 1));
        assert_eq!(t.evicted_total, 26);
        let evicted = |at| t.last_before(ms(at), |e| e.kind == StoreEventKind::Evicted);
        assert_eq!(evicted(2000).map(|e| e.keys), Some(25));
        assert_eq!(evicted(0), None);
        assert_eq!(
            t.nearest(ms(3500)).as_deref(),
            Some("store evicted 1 keys under maxmemory (allkeys-lru) between 3.0s and 3.2s")
        );
        // A restarted store counts its evictions from zero again.
        let mut o = Observer::new("store");
        o.observe(ms(0), Some(info("a", 100, 50)));
        o.observe(ms(250), Some(info("b", 10, 5)));
        assert_eq!(o.finish().evicted_total, 5);
    }

    #[test]
    fn a_new_limit_and_a_new_role_are_events() {
        let mut o = Observer::new("store");
        o.observe(ms(0), Some(info("a", 1, 0)));
        let limited = Info {
            maxmemory: 2 << 20,
            role: "slave".into(),
            ..info("a", 1, 0)
        };
        o.observe(ms(250), Some(limited));
        let t = o.finish();
        assert_eq!(
            kinds(&t),
            [StoreEventKind::Role, StoreEventKind::MemoryLimit]
        );
        assert_eq!(t.events[0].detail, "became a replica (was a primary)");
        assert_eq!(
            t.events[1].detail,
            "maxmemory 2 MiB (was none), policy allkeys-lru"
        );
    }

    #[test]
    fn a_long_run_keeps_a_bounded_timeline() {
        let mut o = Observer::new("store");
        for k in 0..(4 * 3600) {
            // An outage every ten seconds: two events each.
            let answered = (k / 4) % 10 != 0;
            o.observe(ms(k * 250), answered.then(|| info("a", k, 0)));
        }
        let t = o.finish();
        assert!(t.points.len() <= 512, "{}", t.points.len());
        assert_eq!(t.events.len(), MAX_EVENTS);
        assert_eq!(t.events_total, 2 * 360);
    }
}
