//! Where the load's requests go, as both sides of the run need it: the cluster
//! knows the addresses and learns of new ones ([`Targets::set`]), the load sends
//! there. It sits below both, so neither imports the other.
//!
//! Behind HAProxy there is one target and nothing to choose. Without a balancer
//! (`balancer.kind = "direct"`) the load spreads requests itself, round robin over
//! the replicas it believes up, so the failure window a dead replica causes shows
//! raw, without a balancer's retries. The load learns of deaths only the way a
//! client would: a request refused or reset puts the replica down for
//! [`DOWN_FOR`] ([`Targets::put_down`]), after which it is tried again. The cluster
//! tells it the new address of a replica it replaced or restarted, since Docker
//! publishes the new container on a new port.
//!
//! With `sticky`, a session stays on the replica that served it first until a
//! request to it fails, then moves to the next one: what a sticky balancer does,
//! and why it hides a stateful service until a replica dies.
//!
//! The addresses change a few times a run and are read on every request: they sit
//! behind a lock, and an epoch counter, bumped on every change, lets each load
//! thread keep its own copy and take the lock only when the epoch moved
//! (`load::targets`).

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::RwLock;
use std::time::{Duration, Instant};

/// The header HAProxy adds to every answer that went through a server, naming it by
/// its alias (`replica-2`): an error HAProxy made itself (a 502 when the replica
/// died mid-request) carries no `X-Served-By`, but this still says whose it was.
pub const SERVER_HEADER: &str = "x-sessionstorm-server";

/// How long a replica that refused or reset a connection is left out of the round.
pub const DOWN_FOR: Duration = Duration::from_secs(1);

/// The set of places requests go to, shared by the load and the cluster.
#[derive(Debug)]
pub struct Targets {
    /// One base URL per slot; written when a replica gets a new address.
    bases: RwLock<Vec<String>>,
    /// Bumped, under the write lock, on every change of `bases`.
    epoch: AtomicU64,
    /// Per slot: milliseconds since `started` until which it is left out; 0: up.
    down_until: Vec<AtomicU64>,
    next: AtomicUsize,
    sticky: bool,
    /// The slots are replicas (`direct`), not one balancer.
    replicas: bool,
    started: Instant,
}

impl Targets {
    /// Every request to `base` (the balancer).
    pub fn one(base: &str) -> Targets {
        Targets {
            replicas: false,
            ..Targets::direct(&[base.to_string()], false)
        }
    }

    /// Requests spread over `bases`, one per replica slot.
    pub fn direct(bases: &[String], sticky: bool) -> Targets {
        Targets {
            bases: RwLock::new(bases.to_vec()),
            epoch: AtomicU64::new(0),
            down_until: bases.iter().map(|_| AtomicU64::new(0)).collect(),
            next: AtomicUsize::new(0),
            sticky,
            replicas: true,
            started: Instant::now(),
        }
    }

    /// How many slots there are; fixed for the run.
    pub fn slots(&self) -> usize {
        self.down_until.len()
    }

    /// The replica slot a request went to (`replica-2`), when requests go to
    /// replicas directly: a failed one is put down to it.
    pub fn replica_of(&self, slot: usize) -> Option<String> {
        self.replicas.then(|| format!("replica-{slot}"))
    }

    fn now_ms(&self) -> u64 {
        self.started.elapsed().as_millis() as u64
    }

    /// The slot the next request of a session goes to. `home` is the session's
    /// replica (sticky only): kept while set, chosen round robin otherwise. A
    /// session with no home yet (a create) gets one here.
    pub fn choose(&self, home: &mut Option<usize>) -> usize {
        let n = self.slots();
        if n == 1 {
            return 0;
        }
        if let (true, Some(slot)) = (self.sticky, *home) {
            return slot;
        }
        let now = self.now_ms();
        let first = self.next.fetch_add(1, Ordering::Relaxed);
        // Round robin over those believed up; when none is, over all of them.
        let slot = (0..n)
            .map(|i| (first + i) % n)
            .find(|&s| self.down_until[s].load(Ordering::Relaxed) <= now)
            .unwrap_or(first % n);
        if self.sticky {
            *home = Some(slot);
        }
        slot
    }

    /// A request to `slot` was refused or reset: left out of the round for
    /// [`DOWN_FOR`].
    pub fn put_down(&self, slot: usize) {
        let until = self.now_ms() + DOWN_FOR.as_millis() as u64;
        self.down_until[slot].store(until, Ordering::Relaxed);
    }

    /// The replica in `slot` now answers at `base` (a replacement, or the same
    /// container on a new port after a restart): believed up from now.
    pub fn set(&self, slot: usize, base: &str) {
        let Some(down_until) = self.down_until.get(slot) else {
            return;
        };
        let mut bases = self.bases.write().expect("targets lock");
        bases[slot] = base.to_string();
        self.epoch.fetch_add(1, Ordering::Release);
        drop(bases);
        down_until.store(0, Ordering::Relaxed);
    }

    /// Counts the changes of the addresses: a copy taken at one epoch is current
    /// while this says the same.
    pub fn epoch(&self) -> u64 {
        self.epoch.load(Ordering::Acquire)
    }

    /// The base URLs now, with the epoch they are of.
    pub fn bases(&self) -> (u64, Vec<String>) {
        let bases = self.bases.read().expect("targets lock");
        (self.epoch.load(Ordering::Acquire), bases.clone())
    }

    /// The base URLs, for people: "http://127.0.0.1:3301, http://127.0.0.1:3302".
    pub fn describe(&self) -> String {
        let (_, bases) = self.bases();
        (bases.iter())
            .map(|base| base.trim_end_matches('/'))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_change_of_address_moves_the_epoch_and_brings_the_slot_up() {
        let targets = Targets::direct(&["http://a:1".into(), "http://b:2".into()], false);
        assert_eq!(
            targets.bases(),
            (0, vec!["http://a:1".into(), "http://b:2".into()])
        );
        targets.put_down(1);
        assert_eq!(targets.choose(&mut None), 0);
        assert_eq!(targets.choose(&mut None), 0, "slot 1 is down");
        targets.set(1, "http://b:3/");
        assert_eq!(targets.epoch(), 1);
        assert_eq!(targets.bases().1[1], "http://b:3/");
        assert_eq!(targets.describe(), "http://a:1, http://b:3");
        let slots: Vec<usize> = (0..2).map(|_| targets.choose(&mut None)).collect();
        assert!(slots.contains(&1), "up again: {slots:?}");
        targets.set(7, "http://nowhere");
        assert_eq!(targets.epoch(), 1, "no such slot: nothing changed");
    }
}
