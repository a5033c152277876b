//! Turns the answers of every member at each question (or their silence), and a
//! Sentinel's lines, into the store's timeline: pure, so every rule is tested
//! without a store.
//!
//! Per member: a restart (a new process), keys fallen to none, a full resync that
//! dropped keys, evictions, a new role, a new memory limit, silence. Across members:
//! which one said it was a primary at each question (spans, and a split when two do
//! on a store with one primary), and how far each replica was behind the primary of
//! its replication history.

use std::time::Duration;

use super::cluster_view::{self, View};
use super::info::Info;
use super::timeline::{
    LagTrace, MemberTimeline, PrimarySpan, Recorded, StoreEvent, StoreEventKind, StorePoint,
    StoreTimeline, MAX_EVENTS,
};
use crate::load::series::Series;

/// The events so far: the first [`MAX_EVENTS`] listed, all counted.
#[derive(Debug, Default)]
struct Events {
    list: Vec<StoreEvent>,
    total: u64,
    /// When the store was asked before the question under way.
    since: Duration,
}

impl Events {
    /// Adds one seen at the question at `at`; its place in the list, if listed.
    fn push(&mut self, at: Duration, event: StoreEvent) -> Option<usize> {
        self.add(at, self.since, event)
    }

    /// Adds one heard as it happened, at `at` (a line pushed to the harness).
    fn heard(&mut self, at: Duration, event: StoreEvent) {
        self.add(at, at, event);
    }

    fn add(&mut self, at: Duration, since: Duration, event: StoreEvent) -> Option<usize> {
        self.total += 1;
        if self.list.len() >= MAX_EVENTS {
            return None;
        }
        self.list.push(StoreEvent {
            at_ms: at.as_millis() as u64,
            since_ms: since.as_millis() as u64,
            ..event
        });
        Some(self.list.len() - 1)
    }
}

/// One member's answers so far.
#[derive(Debug)]
struct Member {
    /// Its name on its events: empty for a store watched as itself.
    name: String,
    /// Whether its role matters (a store with primaries).
    roles: bool,
    last: Option<Info>,
    /// Whether the last question got an answer (none asked yet: true).
    answered: bool,
    point: Option<StorePoint>,
    series: Series<StorePoint>,
    evicted_total: u64,
    /// Its eviction episode under way: its event's place in the list (if listed)
    /// and when it last evicted, to tell one episode from the next.
    episode: Option<(Option<usize>, Duration)>,
    /// The questions at which it said it was a primary, first and last, since it
    /// last did not.
    primary: Option<(u64, u64)>,
}

impl Member {
    fn new(name: &str, roles: bool) -> Member {
        Member {
            name: name.to_string(),
            roles,
            last: None,
            answered: true,
            point: None,
            series: Series::default(),
            evicted_total: 0,
            episode: None,
            primary: None,
        }
    }

    /// An event of this member's; `replica` where its role matters and it was one.
    fn event(&self, kind: StoreEventKind, detail: String, keys: u64, replica: bool) -> StoreEvent {
        StoreEvent {
            keys,
            replica: self.roles && replica,
            ..event(kind, detail, &self.name)
        }
    }

    /// What it answered at `at` (`None`: nothing), `lag` bytes behind its primary.
    fn observe(&mut self, at: Duration, info: Option<Info>, lag: Option<u64>, events: &mut Events) {
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
        let was_replica = self.last.as_ref().is_some_and(is_replica);
        let Some(info) = info else {
            point.unanswered += 1;
            if self.answered {
                self.answered = false;
                let event = self.event(
                    StoreEventKind::Unreachable,
                    "stopped answering".into(),
                    0,
                    was_replica,
                );
                events.push(at, event);
            }
            return;
        };
        point.keys = info.keys;
        point.keys_min = point.keys_min.min(info.keys);
        point.keys_max = point.keys_max.max(info.keys);
        point.used_memory_max = point.used_memory_max.max(info.used_memory);
        point.maxmemory = info.maxmemory;
        point.lag_bytes_max = point.lag_bytes_max.max(lag);
        point.repl_offset = info.repl_offset;
        let replica = is_replica(&info);
        if !self.answered {
            self.answered = true;
            let event = self.event(
                StoreEventKind::Reachable,
                "answers again".into(),
                0,
                replica,
            );
            events.push(at, event);
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
        // Keys gone that it neither evicted nor expired (at least: writes since
        // the last question hide some).
        let vanished = last.keys > info.keys + evicted + expired;
        let mut found = Vec::new();
        if !same {
            let detail = format!(
                "restarted (a new process): it holds {} keys, {} before",
                info.keys, last.keys
            );
            found.push((StoreEventKind::Restarted, detail, replica));
        } else if vanished && info.keys == 0 {
            let detail = format!("emptied: {} keys, then none", last.keys);
            found.push((StoreEventKind::Emptied, detail, replica));
        } else if vanished && last.replid != info.replid && !last.replid.is_empty() {
            let detail = format!(
                "resynced from a primary of another history: it holds {} keys, {} before",
                info.keys, last.keys
            );
            found.push((StoreEventKind::Resynced, detail, replica));
        }
        if last.role != info.role && !info.role.is_empty() {
            let detail = format!("became a {} (was a {})", info.role_name(), last.role_name());
            // A primary's demotion is the service's business (what it acknowledged
            // alone is gone), but a new process come back a replica held nothing
            // the service used.
            found.push((StoreEventKind::Role, detail, replica && !same));
        }
        if last.maxmemory != info.maxmemory {
            let detail = format!(
                "maxmemory {} (was {}), policy {}",
                memory(info.maxmemory),
                memory(last.maxmemory),
                info.maxmemory_policy
            );
            found.push((StoreEventKind::MemoryLimit, detail, replica));
        }
        for (kind, detail, replica) in found {
            events.push(at, self.event(kind, detail, 0, replica));
        }
        if evicted > 0 {
            self.evicted(at, evicted, &info, events);
        }
        self.last = Some(info);
    }

    /// Evictions less than a second after its last ones extend that episode.
    fn evicted(&mut self, at: Duration, keys: u64, info: &Info, events: &mut Events) {
        self.evicted_total += keys;
        let policy = &info.maxmemory_policy;
        match self.episode {
            Some((listed, last)) if at <= last + Duration::from_secs(1) => {
                if let Some(episode) = listed.map(|i| &mut events.list[i]) {
                    episode.keys += keys;
                    episode.detail =
                        format!("evicted {} keys under maxmemory ({policy})", episode.keys);
                }
                self.episode = Some((listed, at));
            }
            _ => {
                let detail = format!("evicted {keys} keys under maxmemory ({policy})");
                let event = self.event(StoreEventKind::Evicted, detail, keys, is_replica(info));
                self.episode = Some((events.push(at, event), at));
            }
        }
    }

    /// Follows whether it said it was a primary at `at`; a span that ended, if one did.
    fn primary_at(&mut self, at: u64, primary: bool) -> Option<PrimarySpan> {
        match (self.primary, primary) {
            (Some((from, _)), true) => {
                self.primary = Some((from, at));
                None
            }
            (None, true) => {
                self.primary = Some((at, at));
                None
            }
            (Some(_), false) => self.close(),
            (None, false) => None,
        }
    }

    /// Its span as a primary under way, ended.
    fn close(&mut self) -> Option<PrimarySpan> {
        self.primary.take().map(|(from_ms, to_ms)| PrimarySpan {
            member: self.name.clone(),
            from_ms,
            to_ms,
        })
    }

    fn finish(mut self) -> MemberTimeline {
        if let Some(point) = self.point.take() {
            self.series.push(point);
        }
        let mut points = self.series.into_rows();
        for point in &mut points {
            if point.keys_min == u64::MAX {
                point.keys_min = 0;
            }
        }
        MemberTimeline {
            member: self.name,
            points,
            evicted_total: self.evicted_total,
        }
    }
}

/// An event of `member` (empty: the store), its times filled in as it is logged.
fn event(kind: StoreEventKind, detail: String, member: &str) -> StoreEvent {
    StoreEvent {
        at_ms: 0,
        since_ms: 0,
        kind,
        detail,
        keys: 0,
        member: member.to_string(),
        replica: false,
    }
}

fn is_replica(info: &Info) -> bool {
    info.role == "slave"
}

fn is_primary(info: &Info) -> bool {
    info.role == "master"
}

/// How many bytes `replica` is behind the member among `all` that is a primary of
/// its replication history; `None` when it is no replica or no such primary answered.
fn lag_of(replica: &Info, all: &[Option<Info>]) -> Option<u64> {
    if !is_replica(replica) || replica.replid.is_empty() {
        return None;
    }
    (all.iter().flatten())
        .find(|p| is_primary(p) && p.replid == replica.replid)
        .map(|p| p.repl_offset.saturating_sub(replica.repl_offset))
}

/// The roles a store's members have.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Roles {
    /// None: a single store, a memcached pool.
    None,
    /// One primary and its replicas (a replicated store): who was primary when, each
    /// replica's lag, and a split when two say they are primaries at once.
    OnePrimary,
    /// A primary per shard, each with its replicas (a Redis Cluster): who was primary
    /// when and each replica's lag; no split is told, since a node just started says
    /// it is a primary before it holds any slot.
    Sharded,
}

/// The whole store's answers, question after question, turned into its timeline.
#[derive(Debug)]
pub struct Observer {
    store: String,
    /// Watched as itself (a single store): its points go at the top of the timeline.
    single: bool,
    roles: Roles,
    members: Vec<Member>,
    /// Spans as primary that ended, the first of them: room is kept for those of
    /// every member still under way, so that [`MAX_EVENTS`] holds them all.
    spans: Vec<PrimarySpan>,
    log: Events,
    /// Two primaries or more at the last question, of a store that has one.
    split: bool,
    lag: LagTrace,
    asked: Duration,
    /// A Redis Cluster's last view of itself, from one live member.
    cluster: Option<View>,
}

impl Observer {
    /// A store watched as itself, `store`, one process.
    pub fn single(store: &str) -> Observer {
        let mut observer = Observer::of(store, &[String::new()], Roles::None);
        observer.single = true;
        observer
    }

    /// `store` with `members`, whose roles are `roles`.
    pub fn of(store: &str, members: &[String], roles: Roles) -> Observer {
        Observer {
            store: store.to_string(),
            single: false,
            roles,
            members: (members.iter())
                .map(|name| Member::new(name, roles != Roles::None))
                .collect(),
            spans: Vec::new(),
            log: Events::default(),
            split: false,
            lag: LagTrace::default(),
            asked: Duration::ZERO,
            cluster: None,
        }
    }

    /// What each member answered at `at` since the load's start (in the order the
    /// members were given; `None`: no answer).
    pub fn observe(&mut self, at: Duration, answers: Vec<Option<Info>>) {
        self.log.since = std::mem::replace(&mut self.asked, at);
        let lags: Vec<Option<u64>> = (answers.iter())
            .map(|a| a.as_ref().and_then(|a| lag_of(a, &answers)))
            .collect();
        let split = match self.roles {
            Roles::None => None,
            Roles::OnePrimary | Roles::Sharded => {
                let most = lags.iter().flatten().max().copied();
                self.lag.push(at.as_millis() as u64, most);
                self.roles(at, &answers)
            }
        };
        for ((member, info), lag) in self.members.iter_mut().zip(answers).zip(lags) {
            member.observe(at, info, lag, &mut self.log);
        }
        // After the promotions that made it.
        if let Some(split) = split {
            self.log.push(at, split);
        }
    }

    /// Follows which members said they were primaries at `at` (their spans); a split
    /// when two or more did of a store that has one, and it was not split before.
    fn roles(&mut self, at: Duration, answers: &[Option<Info>]) -> Option<StoreEvent> {
        let room = MAX_EVENTS - self.members.len();
        let mut primaries = Vec::new();
        for (member, info) in self.members.iter_mut().zip(answers) {
            let primary = info.as_ref().is_some_and(is_primary);
            if primary {
                primaries.push(member.name.clone());
            }
            let ended = member.primary_at(at.as_millis() as u64, primary);
            if let Some(span) = ended.filter(|_| self.spans.len() < room) {
                self.spans.push(span);
            }
        }
        let split = self.roles == Roles::OnePrimary && primaries.len() > 1;
        let was_split = std::mem::replace(&mut self.split, split);
        if !split || was_split {
            return None;
        }
        let detail = format!(
            "{} primaries at once: {}",
            primaries.len(),
            primaries.join(", ")
        );
        Some(event(StoreEventKind::Split, detail, ""))
    }

    /// A line Sentinel `sentinel` published, heard at `at`.
    pub fn sentinel(&mut self, at: Duration, sentinel: &str, line: &str) {
        let line = event(StoreEventKind::Sentinel, line.to_string(), sentinel);
        self.log.heard(at, line);
    }

    /// What a Redis Cluster said of itself at the question at `at` (after
    /// [`Observer::observe`] of it), one live member's view (`None`: none answered):
    /// what changed since the last view, as `cluster` events.
    pub fn cluster(&mut self, at: Duration, view: Option<View>) {
        let Some(view) = view else { return };
        let Some(before) = self.cluster.replace(view) else {
            return;
        };
        let now = self.cluster.as_ref().expect("just replaced");
        for (member, detail) in cluster_view::changes(&before, now) {
            self.log
                .push(at, event(StoreEventKind::Cluster, detail, &member));
        }
    }

    pub fn finish(mut self) -> Recorded {
        let mut spans = std::mem::take(&mut self.spans);
        spans.extend(self.members.iter_mut().filter_map(Member::close));
        spans.sort_by_key(|s| (s.from_ms, s.member.clone()));
        let mut events = self.log.list;
        // Sentinel lines come between questions: in the order they happened.
        events.sort_by_key(|e| e.at_ms);
        let members: Vec<MemberTimeline> = self.members.into_iter().map(Member::finish).collect();
        let evicted_total = members.iter().map(|m| m.evicted_total).sum();
        let (points, members) = match self.single {
            true => (
                (members.into_iter().next()).map_or(Vec::new(), |m| m.points),
                Vec::new(),
            ),
            false => (Vec::new(), members),
        };
        Recorded {
            timeline: StoreTimeline {
                member: self.store,
                points,
                events,
                events_total: self.log.total,
                evicted_total,
                members,
                primaries: spans,
            },
            lag: self.lag,
        }
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

    /// A member of a replicated store: its process, role, history, offset and keys.
    fn redis(run_id: &str, role: &str, replid: &str, offset: u64, keys: u64) -> Option<Info> {
        Some(Info {
            role: role.into(),
            replid: replid.into(),
            repl_offset: offset,
            ..info(run_id, keys, 0)
        })
    }

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    fn single(answers: &[(u64, Option<Info>)]) -> StoreTimeline {
        let mut o = Observer::single("store");
        for (at, answer) in answers {
            o.observe(ms(*at), vec![answer.clone()]);
        }
        o.finish().timeline
    }

    fn kinds(timeline: &StoreTimeline) -> Vec<StoreEventKind> {
        timeline.events.iter().map(|e| e.kind).collect()
    }

    /// What each event says, as a person reads it: `store-0 restarted …`.
    fn said(timeline: &StoreTimeline) -> Vec<String> {
        (timeline.events.iter())
            .map(|e| format!("{} {}", timeline.who(e), e.detail))
            .collect()
    }

    fn members(n: usize) -> Vec<String> {
        (0..n).map(|i| format!("store-{i}")).collect()
    }

    #[test]
    fn a_restart_an_outage_and_an_emptied_store_are_events() {
        let t = single(&[
            (0, Some(info("a", 10, 0))),
            (250, Some(info("a", 12, 0))),
            (500, None),
            (750, None),
            (1000, Some(info("b", 0, 0))),
            (1250, Some(info("b", 3, 0))),
            (1500, Some(info("b", 0, 0))),
        ]);
        use StoreEventKind::*;
        assert_eq!(kinds(&t), [Unreachable, Reachable, Restarted, Emptied]);
        assert_eq!(t.events[0].at_ms, 500);
        assert_eq!(
            t.events[2].detail,
            "restarted (a new process): it holds 0 keys, 12 before"
        );
        // A single store's events name no member, and its points are at the top.
        assert!(t.events.iter().all(|e| e.member.is_empty() && !e.replica));
        assert!(t.members.is_empty() && t.primaries.is_empty());
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
        let t = single(&[
            (0, Some(info("a", 100, 0))),
            (250, Some(info("a", 90, 10))),
            (500, Some(info("a", 80, 25))),
            (3000, Some(info("a", 80, 25))),
            (3250, Some(info("a", 79, 26))),
        ]);
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
        let t = single(&[(0, Some(info("a", 100, 50))), (250, Some(info("b", 10, 5)))]);
        assert_eq!(t.evicted_total, 5);
    }

    #[test]
    fn keys_the_store_evicted_or_expired_are_no_emptying() {
        let gone = Info {
            expired_keys: 40,
            ..info("a", 0, 60)
        };
        let t = single(&[(0, Some(info("a", 100, 0))), (250, Some(gone))]);
        assert_eq!(kinds(&t), [StoreEventKind::Evicted]);
        // Ten of them went otherwise: the store was emptied.
        let t = single(&[(0, Some(info("a", 110, 0))), (250, Some(info("a", 0, 100)))]);
        assert_eq!(
            kinds(&t),
            [StoreEventKind::Emptied, StoreEventKind::Evicted]
        );
    }

    #[test]
    fn a_new_limit_and_a_new_role_are_events() {
        let limited = Info {
            maxmemory: 2 << 20,
            role: "slave".into(),
            ..info("a", 1, 0)
        };
        let t = single(&[(0, Some(info("a", 1, 0))), (250, Some(limited))]);
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
        let mut o = Observer::of("store", &members(3), Roles::OnePrimary);
        for k in 0..(4 * 3600) {
            // An outage every ten seconds: two events each, and a primary span.
            let answered = (k / 4) % 10 != 0;
            let primary = answered.then(|| info("a", k, 0));
            o.observe(ms(k * 250), vec![primary, None, None]);
        }
        let t = o.finish().timeline;
        assert!(t.members[0].points.len() <= 512);
        assert_eq!(t.events.len(), MAX_EVENTS);
        // Two members never answer: one event each.
        assert_eq!(t.events_total, 2 * 360 + 2);
        // The spans that ended, in the room left for those under way.
        assert_eq!(t.primaries.len(), MAX_EVENTS - 3 + 1);
    }

    #[test]
    fn a_replica_s_lag_is_against_the_primary_of_its_history() {
        let mut o = Observer::of("store", &members(3), Roles::OnePrimary);
        o.observe(
            ms(0),
            vec![
                redis("p", "master", "h1", 5000, 100),
                redis("r1", "slave", "h1", 4000, 99),
                // Still on an older history: not comparable.
                redis("r2", "slave", "h0", 10, 0),
            ],
        );
        o.observe(
            ms(250),
            vec![
                redis("p", "master", "h1", 6000, 100),
                redis("r1", "slave", "h1", 6000, 100),
                redis("r2", "slave", "h1", 5500, 100),
            ],
        );
        // The primary silent: nobody to compare with.
        o.observe(
            ms(500),
            vec![
                None,
                redis("r1", "slave", "h1", 6000, 100),
                redis("r2", "slave", "h1", 6000, 100),
            ],
        );
        let Recorded { timeline: t, lag } = o.finish();
        assert_eq!(
            [0, 250, 500].map(|at| lag.at(at)),
            [Some(1000), Some(500), None]
        );
        let most = |i: usize| t.members[i].points[0].lag_bytes_max;
        assert_eq!([most(0), most(1), most(2)], [None, Some(1000), Some(500)]);
        assert_eq!(t.members[1].points[0].repl_offset, 6000);
    }

    #[test]
    fn a_promotion_and_a_split_show_who_was_primary_when() {
        let mut o = Observer::of("store", &members(2), Roles::OnePrimary);
        let both = |at, zero: &str, one: &str| {
            let (r0, r1) = (zero == "master", one == "master");
            let h0 = if r0 { "h1" } else { "h2" };
            let h1 = if r1 { "h2" } else { "h1" };
            (
                at,
                vec![redis("a", zero, h0, 10, 5), redis("b", one, h1, 10, 5)],
            )
        };
        for (at, answers) in [
            both(0, "master", "slave"),
            both(250, "master", "slave"),
            // store-1 promoted while store-0 still says it is the primary.
            both(500, "master", "master"),
            both(750, "master", "master"),
            // The split heals: store-0 follows store-1.
            both(1000, "slave", "master"),
        ] {
            o.observe(ms(at), answers);
        }
        o.sentinel(
            ms(600),
            "sentinel-0",
            "+switch-master sessions store-0 6379 store-1 6379",
        );
        let t = o.finish().timeline;
        assert_eq!(
            said(&t),
            [
                "store-1 became a primary (was a replica)",
                "store 2 primaries at once: store-0, store-1",
                "sentinel-0 +switch-master sessions store-0 6379 store-1 6379",
                "store-0 became a replica (was a primary)",
            ]
        );
        assert_eq!(t.events[2].since_ms, 600, "a line is heard as it happens");
        let spans: Vec<(&str, u64, u64)> = (t.primaries.iter())
            .map(|s| (s.member.as_str(), s.from_ms, s.to_ms))
            .collect();
        assert_eq!(spans, [("store-0", 0, 750), ("store-1", 500, 1000)]);
        // The demotion is the primary's business: what store-0 acknowledged alone
        // is gone with it.
        assert_eq!(
            t.nearest(ms(1100)).as_deref(),
            Some("store-0 became a replica (was a primary) between 0.8s and 1.0s")
        );
    }

    #[test]
    fn a_primary_restarted_empty_empties_its_replicas_after_it() {
        let mut o = Observer::of("store", &members(3), Roles::OnePrimary);
        let before = vec![
            redis("p", "master", "h1", 9000, 1309),
            redis("r1", "slave", "h1", 9000, 1309),
            redis("r2", "slave", "h1", 9000, 1309),
        ];
        o.observe(ms(0), before);
        o.observe(
            ms(250),
            vec![
                None,
                redis("r1", "slave", "h1", 9000, 1309),
                redis("r2", "slave", "h1", 9000, 1309),
            ],
        );
        // Back empty, still the primary, of a new history; the replicas resync from
        // it: one seen with none, one with the few written since.
        o.observe(
            ms(500),
            vec![
                redis("p2", "master", "h2", 300, 4),
                redis("r1", "slave", "h1", 9000, 1309),
                redis("r2", "slave", "h1", 9000, 1309),
            ],
        );
        o.observe(
            ms(750),
            vec![
                redis("p2", "master", "h2", 900, 12),
                redis("r1", "slave", "h2", 800, 0),
                redis("r2", "slave", "h2", 900, 12),
            ],
        );
        let t = o.finish().timeline;
        assert_eq!(
            said(&t),
            [
                "store-0 stopped answering",
                "store-0 answers again",
                "store-0 restarted (a new process): it holds 4 keys, 1309 before",
                "store-1 emptied: 1309 keys, then none",
                "store-2 resynced from a primary of another history: it holds 12 keys, 1309 before",
            ]
        );
        let replicas: Vec<bool> = t.events.iter().map(|e| e.replica).collect();
        assert_eq!(replicas, [false, false, false, true, true]);
        // What the replicas lost followed what the primary lost: the restart is
        // what the service saw.
        assert_eq!(
            t.nearest(ms(5000)).as_deref(),
            Some("store-0 restarted (a new process): it holds 4 keys, 1309 before between 0.2s and 0.5s")
        );
        assert_eq!(t.members[0].points[0].keys_min, 4);
    }

    #[test]
    fn a_killed_primary_replaced_by_a_fresh_replica_is_no_demotion() {
        let mut o = Observer::of("store", &members(2), Roles::OnePrimary);
        o.observe(
            ms(0),
            vec![
                redis("p", "master", "h1", 10, 5),
                redis("r", "slave", "h1", 10, 5),
            ],
        );
        o.observe(ms(250), vec![None, redis("r", "master", "h2", 10, 5)]);
        o.observe(
            ms(500),
            vec![
                redis("fresh", "slave", "h2", 10, 5),
                redis("r", "master", "h2", 10, 5),
            ],
        );
        let t = o.finish().timeline;
        assert_eq!(
            said(&t),
            [
                "store-0 stopped answering",
                "store-1 became a primary (was a replica)",
                "store-0 answers again",
                "store-0 restarted (a new process): it holds 5 keys, 5 before",
                "store-0 became a replica (was a primary)",
            ]
        );
        let replicas: Vec<bool> = t.events.iter().map(|e| e.replica).collect();
        assert_eq!(replicas, [false, false, true, true, true]);
        assert_eq!(
            t.nearest(ms(900)).as_deref(),
            Some("store-1 became a primary (was a replica) between 0.0s and 0.2s")
        );
    }

    #[test]
    fn the_cluster_s_view_is_told_from_its_second_answer_and_reaches_no_one() {
        let mut o = Observer::of("store", &members(2), Roles::Sharded);
        let nodes = |flags: &str| {
            View::parse(
                "cluster_state:ok\r\n",
                &format!(
                    "a0 10.0.0.2:6379@16379,store-0 {flags} - 0 0 1 connected 0-16383\n\
                     b1 10.0.0.3:6379@16379,store-1 myself,slave a0 0 0 1 connected\n"
                ),
            )
        };
        let answers = || {
            vec![
                redis("a", "master", "h", 0, 5),
                redis("b", "slave", "h", 0, 5),
            ]
        };
        for (at, view) in [
            (0, Some(nodes("master,fail?"))),
            (250, None),
            (500, Some(nodes("master,fail"))),
            (750, Some(nodes("master,fail"))),
        ] {
            o.observe(ms(at), answers());
            o.cluster(ms(at), view);
        }
        let t = o.finish().timeline;
        assert_eq!(said(&t), ["store-0 marked failing by the cluster (fail)"]);
        assert_eq!(kinds(&t), [StoreEventKind::Cluster]);
        assert_eq!((t.events[0].since_ms, t.events[0].at_ms), (250, 500));
        assert_eq!(t.nearest(ms(1000)), None, "the service sees no view");
    }
}
