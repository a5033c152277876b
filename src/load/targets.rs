//! Where each request goes: the balancer, or (with `balancer.kind = "direct"`) one of
//! the replicas' own published ports.
//!
//! Behind HAProxy there is one target and nothing to choose. Without a balancer the
//! load spreads requests itself, round robin over the replicas it believes up, so
//! the failure window a dead replica causes shows raw, without a balancer's retries.
//! The driver learns of deaths only the way a client would: a request refused or
//! reset marks the replica down for [`DOWN_FOR`], after which it is tried again.
//! The cluster tells it the new address of a replica it replaced or restarted
//! ([`Targets::set`]), since Docker publishes the new container on a new port.
//!
//! With `sticky`, a session stays on the replica that served it first until a
//! request to it fails, then moves to the next one: what a sticky balancer does,
//! and why it hides a stateful service until a replica dies.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use super::http::Origin;
use crate::metrics::ErrorKind;

/// How long a replica that refused or reset a connection is left out of the round.
pub const DOWN_FOR: Duration = Duration::from_secs(1);

/// A target's origin and the contract's two paths there, worked out once rather
/// than on every request.
#[derive(Debug)]
pub struct Urls {
    /// The session URL in full, which a flow's paths are resolved against.
    pub url: url::Url,
    pub origin: Origin,
    /// Request targets: `/session` and `/session/items` under the base's path.
    pub session: String,
    pub items: String,
}

impl Urls {
    fn new(base: &str) -> Self {
        let base = base.trim_end_matches('/');
        let bad = |e: &dyn std::fmt::Display| -> ! {
            panic!("the target URL {base:?} is not an http:// or https:// URL: {e}")
        };
        let parse =
            |path: &str| url::Url::parse(&format!("{base}{path}")).unwrap_or_else(|e| bad(&e));
        let (url, items) = (parse("/session"), parse("/session/items"));
        let path = super::http::path_of;
        Urls {
            origin: Origin::of(&url).unwrap_or_else(|| bad(&"no host, or not http(s)")),
            session: path(&url),
            items: path(&items),
            url,
        }
    }
}

/// One replica's address (or the balancer's) and whether it is believed up.
#[derive(Debug)]
struct Slot {
    urls: RwLock<Arc<Urls>>,
    /// Milliseconds since [`Targets::epoch`] until which the slot is left out; 0: up.
    down_until: AtomicU64,
}

/// The set of places requests go to, shared by the load and the cluster.
#[derive(Debug)]
pub struct Targets {
    slots: Vec<Slot>,
    next: AtomicUsize,
    sticky: bool,
    /// The slots are replicas (`direct`), not one balancer.
    replicas: bool,
    epoch: Instant,
}

/// Which target a request went to, and its URLs.
#[derive(Debug, Clone)]
pub struct Pick {
    pub slot: usize,
    pub urls: Arc<Urls>,
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
            slots: bases
                .iter()
                .map(|base| Slot {
                    urls: RwLock::new(Arc::new(Urls::new(base))),
                    down_until: AtomicU64::new(0),
                })
                .collect(),
            next: AtomicUsize::new(0),
            sticky,
            replicas: true,
            epoch: Instant::now(),
        }
    }

    /// The replica slot a request went to (`replica-2`), when requests go to
    /// replicas directly: a failed one is put down to it.
    pub fn replica_of(&self, pick: &Pick) -> Option<String> {
        self.replicas.then(|| format!("replica-{}", pick.slot))
    }

    fn now_ms(&self) -> u64 {
        self.epoch.elapsed().as_millis() as u64
    }

    fn urls(&self, slot: usize) -> Arc<Urls> {
        Arc::clone(&self.slots[slot].urls.read().expect("target lock"))
    }

    /// Where the next request of a session goes. `home` is the session's replica
    /// (sticky only): kept while set, chosen round robin otherwise. A session with
    /// no home yet (a create) gets one here.
    pub fn pick(&self, home: &mut Option<usize>) -> Pick {
        let n = self.slots.len();
        if n == 1 {
            return Pick {
                slot: 0,
                urls: self.urls(0),
            };
        }
        if let (true, Some(slot)) = (self.sticky, *home) {
            return Pick {
                slot,
                urls: self.urls(slot),
            };
        }
        let now = self.now_ms();
        let first = self.next.fetch_add(1, Ordering::Relaxed);
        // Round robin over those believed up; when none is, over all of them.
        let slot = (0..n)
            .map(|i| (first + i) % n)
            .find(|&s| self.slots[s].down_until.load(Ordering::Relaxed) <= now)
            .unwrap_or(first % n);
        if self.sticky {
            *home = Some(slot);
        }
        Pick {
            slot,
            urls: self.urls(slot),
        }
    }

    /// A request to `pick` failed with `kind`: a refused or reset connection leaves
    /// its replica out of the round for a while, and a sticky session moves on.
    pub fn failed(&self, pick: &Pick, kind: ErrorKind, home: &mut Option<usize>) {
        if self.slots.len() == 1 {
            return;
        }
        if matches!(kind, ErrorKind::Connect | ErrorKind::Reset) {
            let until = self.now_ms() + DOWN_FOR.as_millis() as u64;
            self.slots[pick.slot]
                .down_until
                .store(until, Ordering::Relaxed);
        }
        *home = None;
    }

    /// The replica in `slot` now answers at `base` (a replacement, or the same
    /// container on a new port after a restart): believed up from now.
    pub fn set(&self, slot: usize, base: &str) {
        let Some(target) = self.slots.get(slot) else {
            return;
        };
        *target.urls.write().expect("target lock") = Arc::new(Urls::new(base));
        target.down_until.store(0, Ordering::Relaxed);
    }

    /// The base URLs, for people: "http://127.0.0.1:3301, http://127.0.0.1:3302".
    pub fn describe(&self) -> String {
        (0..self.slots.len())
            .map(|s| {
                let urls = self.urls(s);
                urls.url.as_str().trim_end_matches("/session").to_string()
            })
            .collect::<Vec<_>>()
            .join(", ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn three(sticky: bool) -> Targets {
        let bases: Vec<String> = (1..=3).map(|p| format!("http://127.0.0.1:{p}")).collect();
        Targets::direct(&bases, sticky)
    }

    fn port(pick: &Pick) -> u16 {
        pick.urls.url.port().unwrap()
    }

    #[test]
    fn one_target_takes_everything() {
        let targets = Targets::one("http://127.0.0.1:9/");
        let mut home = None;
        let pick = targets.pick(&mut home);
        assert_eq!(pick.urls.url.as_str(), "http://127.0.0.1:9/session");
        assert_eq!(pick.urls.session, "/session");
        assert_eq!(pick.urls.items, "/session/items");
        let prefixed = Targets::one("http://127.0.0.1:9/shop/");
        assert_eq!(prefixed.pick(&mut None).urls.items, "/shop/session/items");
        targets.failed(&pick, ErrorKind::Connect, &mut home);
        assert_eq!(targets.pick(&mut home).slot, 0);
        assert_eq!(home, None);
    }

    #[test]
    fn round_robin_skips_a_replica_that_refused() {
        let targets = three(false);
        let mut home = None;
        let slots: Vec<usize> = (0..6).map(|_| targets.pick(&mut home).slot).collect();
        assert_eq!(slots, [0, 1, 2, 0, 1, 2]);
        assert_eq!(home, None, "not sticky: no home");
        let dead = targets.pick(&mut home);
        assert_eq!(dead.slot, 0);
        targets.failed(&dead, ErrorKind::Connect, &mut home);
        let slots: Vec<usize> = (0..4).map(|_| targets.pick(&mut home).slot).collect();
        assert_eq!(slots, [1, 2, 1, 1], "slot 0 left out while down");
        // A timeout says nothing about the replica being gone.
        let slow = targets.pick(&mut home);
        targets.failed(&slow, ErrorKind::Timeout, &mut home);
        assert_ne!(targets.pick(&mut home).slot, 0);
    }

    #[test]
    fn a_replaced_replica_is_found_at_its_new_port_and_is_up_again() {
        let targets = three(false);
        let mut home = None;
        let first = targets.pick(&mut home);
        targets.failed(&first, ErrorKind::Reset, &mut home);
        targets.set(0, "http://127.0.0.1:40000");
        let ports: Vec<u16> = (0..3).map(|_| port(&targets.pick(&mut home))).collect();
        assert!(ports.contains(&40000), "{ports:?}");
        assert!(!ports.contains(&1), "{ports:?}");
        assert_eq!(
            targets.describe(),
            "http://127.0.0.1:40000, http://127.0.0.1:2, http://127.0.0.1:3"
        );
    }

    #[test]
    fn all_down_still_picks_one() {
        let targets = three(false);
        let mut home = None;
        for _ in 0..3 {
            let pick = targets.pick(&mut home);
            targets.failed(&pick, ErrorKind::Connect, &mut home);
        }
        let picks: Vec<usize> = (0..3).map(|_| targets.pick(&mut home).slot).collect();
        assert_eq!(picks, [0, 1, 2]);
    }

    #[test]
    fn sticky_session_stays_until_a_request_fails_then_moves() {
        let targets = three(true);
        let mut home = None;
        let create = targets.pick(&mut home);
        assert_eq!(home, Some(create.slot));
        let mut other = None;
        targets.pick(&mut other); // another session takes the next slot
        for _ in 0..5 {
            assert_eq!(targets.pick(&mut home).slot, create.slot);
        }
        targets.failed(&create, ErrorKind::Status5xx, &mut home);
        assert_eq!(home, None);
        let moved = targets.pick(&mut home);
        assert_ne!(moved.slot, create.slot);
        assert_eq!(home, Some(moved.slot));
        assert_eq!(targets.pick(&mut home).slot, moved.slot);
    }
}
