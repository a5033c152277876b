//! The store's timeline as the reports keep it (summary.json's `store`): each
//! member's points, what every member did, which member was primary when, and the
//! questions that tie a lost session to what the store did before it.
//!
//! A single store keeps today's shape: its points at the top, its events naming no
//! member. A store of members (replicated, clustered, pooled) has a timeline per
//! member under `members`, and its events name the member (or the Sentinel) that did
//! them. Everything here is bounded: summary.json stays small for any run length.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::load::series::Point;

/// Events listed at most, and primary spans; the rest of the events are counted.
pub const MAX_EVENTS: usize = 200;

/// A member over one second (or several, in a long run).
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
    /// A replica: the most bytes it was behind its primary at a question in the span
    /// (the primary's `master_repl_offset` less its own, in the same replication
    /// history); none where that was never known (a primary, a replica resyncing).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lag_bytes_max: Option<u64>,
    /// Where its replication stream stood at the end of the span; 0 for a Redis that
    /// never had a replica (it keeps no offset) and for a memcached.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub repl_offset: u64,
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
        self.lag_bytes_max = self.lag_bytes_max.max(later.lag_bytes_max);
        self.repl_offset = later.repl_offset;
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
    /// The same process took a full copy from a primary of another replication
    /// history, and holds fewer keys than before for it: what it held of its own is
    /// gone (a replica of a restarted primary, an old primary rejoining after a split).
    Resynced,
    /// It removed keys to stay under `maxmemory`.
    Evicted,
    /// It became a primary, or a replica.
    Role,
    /// Its `maxmemory` changed.
    MemoryLimit,
    /// Two members of a store with one primary said they were primaries at once: a
    /// split, each side acknowledging writes the other does not have.
    Split,
    /// A line a Sentinel published (`+sdown`, `+switch-master` …), as it said it.
    Sentinel,
    /// A Redis Cluster's own view changed (`CLUSTER NODES`, `CLUSTER INFO`): a node
    /// suspected or marked failing, a node's role as the cluster says it, a node
    /// joined or forgotten, `cluster_state` between ok and fail.
    Cluster,
}

impl StoreEventKind {
    /// An account of the store by its watchers (Sentinel's lines, the cluster's
    /// view), not what a member did: it only leads up to what the members do.
    pub fn is_an_account(self) -> bool {
        matches!(self, StoreEventKind::Sentinel | StoreEventKind::Cluster)
    }
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
    /// The member that did it (`store-1`), the Sentinel that said it, or the member
    /// the cluster's view is about; empty for the store as a whole
    /// ([`StoreTimeline::member`]).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub member: String,
    /// The member was a replica then: the service reads and writes the primary, so
    /// what a replica loses is not what the service loses.
    #[serde(default, skip_serializing_if = "is_false")]
    pub replica: bool,
}

impl StoreEvent {
    /// Whether the service could have seen what this did to the data: neither a
    /// replica's, nor a Sentinel's line, nor the cluster's view.
    pub fn reaches_the_service(&self) -> bool {
        !self.replica && !self.kind.is_an_account()
    }
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

fn is_false(b: &bool) -> bool {
    !b
}

/// One member of a store of members, over the run.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemberTimeline {
    /// As chaos targets it (`store-0`).
    pub member: String,
    pub points: Vec<StorePoint>,
    /// Keys it evicted over the run.
    pub evicted_total: u64,
}

/// A member that said it was a primary at every question from `from_ms` to `to_ms`
/// (since the start of the load): a span per stretch, so two at once is a split.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PrimarySpan {
    pub member: String,
    pub from_ms: u64,
    pub to_ms: u64,
}

/// The store's timeline over a run.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoreTimeline {
    /// The store as chaos targets it (`store`).
    pub member: String,
    /// A single store's points; a store of members has them per member, in `members`.
    pub points: Vec<StorePoint>,
    /// What the store, its members and a Sentinel did, in the order seen.
    pub events: Vec<StoreEvent>,
    pub events_total: u64,
    /// Keys evicted over the run, all members and episodes.
    pub evicted_total: u64,
    /// A store of members: each member's own timeline.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub members: Vec<MemberTimeline>,
    /// A replicated or clustered store: which member was primary when, in the order
    /// the spans began (at most [`MAX_EVENTS`]).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub primaries: Vec<PrimarySpan>,
}

impl StoreTimeline {
    /// Who did `event`: its member, or the store.
    pub fn who<'a>(&'a self, event: &'a StoreEvent) -> &'a str {
        match event.member.as_str() {
            "" => &self.member,
            member => member,
        }
    }

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

    /// The last event before `at` that the service could have seen, in words:
    /// `store-0 restarted … between 4.0s and 4.3s`. A replica's events, a
    /// Sentinel's lines and the cluster's view only lead up to what the primary does.
    pub fn nearest(&self, at: Duration) -> Option<String> {
        self.last_before(at, StoreEvent::reaches_the_service)
            .map(|e| format!("{} {}", self.who(e), self.when(e)))
    }

    /// `detail between 4.0s and 4.3s`.
    pub fn when(&self, e: &StoreEvent) -> String {
        format!(
            "{} between {:.1}s and {:.1}s",
            e.detail,
            e.since_ms as f64 / 1000.0,
            e.at_ms as f64 / 1000.0
        )
    }
}

/// The most any replica was behind its primary at each question, to say what it
/// was when a fault came: kept in memory for the run only (24 bytes a question,
/// about 350 KiB an hour), never written out.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LagTrace(Vec<(u64, Option<u64>)>);

impl LagTrace {
    /// The question at `at_ms` found the replicas at most `lag` bytes behind (none:
    /// no replica could be compared with a primary).
    pub fn push(&mut self, at_ms: u64, lag: Option<u64>) {
        self.0.push((at_ms, lag));
    }

    /// What the last question at or before `at_ms` found.
    pub fn at(&self, at_ms: u64) -> Option<u64> {
        let after = self.0.partition_point(|(at, _)| *at <= at_ms);
        after.checked_sub(1).and_then(|i| self.0[i].1)
    }
}

/// What watching the store recorded: the timeline for the reports, and the lag at
/// each question for the faults' records.
#[derive(Debug, Clone, Default)]
pub struct Recorded {
    pub timeline: StoreTimeline,
    pub lag: LagTrace,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(at_ms: u64, kind: StoreEventKind, member: &str, replica: bool) -> StoreEvent {
        StoreEvent {
            at_ms,
            since_ms: at_ms - 250,
            kind,
            detail: format!("{kind:?}"),
            keys: 0,
            member: member.into(),
            replica,
        }
    }

    #[test]
    fn the_nearest_event_is_one_the_service_could_see() {
        use StoreEventKind::*;
        let timeline = StoreTimeline {
            member: "store".into(),
            events: vec![
                event(1000, Restarted, "store-0", false),
                event(1500, Emptied, "store-1", true),
                event(1750, Sentinel, "sentinel-0", false),
                event(1800, Cluster, "store-0", false),
                event(2000, Split, "", false),
            ],
            ..StoreTimeline::default()
        };
        let ms = Duration::from_millis;
        assert_eq!(
            timeline.nearest(ms(1700)).as_deref(),
            Some("store-0 Restarted between 0.8s and 1.0s")
        );
        assert_eq!(
            timeline.nearest(ms(2100)).as_deref(),
            Some("store Split between 1.8s and 2.0s")
        );
        assert_eq!(timeline.nearest(ms(750)), None);
        // Any member's evictions, a replica's too, are found by kind.
        let any = timeline.last_before(ms(1900), |e| e.kind == Emptied);
        assert_eq!(any.map(|e| timeline.who(e)), Some("store-1"));
    }

    #[test]
    fn the_lag_at_a_moment_is_the_last_question_s() {
        let mut lag = LagTrace::default();
        lag.push(0, Some(10));
        lag.push(250, None);
        lag.push(500, Some(4096));
        assert_eq!(
            [0, 100, 250, 499, 500, 9000].map(|ms| lag.at(ms)),
            [Some(10), Some(10), None, None, Some(4096), Some(4096)]
        );
        assert_eq!(LagTrace::default().at(100), None);
    }
}
