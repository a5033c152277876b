//! Where each request goes, on a load thread: the cluster's [`Targets`] (shared,
//! `crate::target`) choose the slot, and the thread's own copy of the slots' URLs,
//! parsed once, says where that is.
//!
//! "No lock on the hot path": each load thread keeps its copy (`View`) and
//! re-reads the addresses under the targets' lock only when their epoch moved,
//! which happens when the cluster replaces or restarts a replica, a few times a
//! run. A request pays one atomic load to learn that nothing changed.

use std::cell::RefCell;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use super::http::Origin;
use crate::metrics::ErrorKind;
use crate::target::Targets;

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

/// Which target a request went to, and its URLs.
#[derive(Debug, Clone)]
pub struct Pick {
    pub slot: usize,
    pub urls: Arc<Urls>,
}

/// Numbers the routers, so a thread's [`View`] knows whose copy it holds.
static ROUTERS: AtomicU64 = AtomicU64::new(0);

/// The load's side of the [`Targets`]: picks a target for each request and puts a
/// failed one down.
#[derive(Debug)]
pub struct Router {
    targets: Arc<Targets>,
    id: u64,
}

/// A load thread's copy of one router's URLs, at the targets' epoch it was taken.
/// A run has one router; should two take turns on a thread, each turn costs a
/// fresh copy, never a wrong one.
#[derive(Debug, Default)]
struct View {
    router: Option<u64>,
    epoch: u64,
    urls: Vec<Arc<Urls>>,
}

thread_local! {
    static VIEW: RefCell<View> = RefCell::new(View::default());
}

impl Router {
    pub fn new(targets: Arc<Targets>) -> Self {
        Router {
            targets,
            id: ROUTERS.fetch_add(1, Ordering::Relaxed),
        }
    }

    /// The URLs of `slot`, from this thread's copy, taken again first if the
    /// addresses changed since (or the copy is another router's).
    fn urls(&self, slot: usize) -> Arc<Urls> {
        VIEW.with_borrow_mut(|view| {
            if view.router != Some(self.id) || view.epoch != self.targets.epoch() {
                let (epoch, bases) = self.targets.bases();
                *view = View {
                    router: Some(self.id),
                    epoch,
                    urls: bases.iter().map(|base| Arc::new(Urls::new(base))).collect(),
                };
            }
            Arc::clone(&view.urls[slot])
        })
    }

    /// Where the next request of a session goes. `home` is the session's replica
    /// (sticky only): kept while set, chosen round robin otherwise. A session with
    /// no home yet (a create) gets one here.
    pub fn pick(&self, home: &mut Option<usize>) -> Pick {
        let slot = self.targets.choose(home);
        Pick {
            slot,
            urls: self.urls(slot),
        }
    }

    /// A request to `pick` failed with `kind`: a refused or reset connection leaves
    /// its replica out of the round for a while, and a sticky session moves on.
    pub fn failed(&self, pick: &Pick, kind: ErrorKind, home: &mut Option<usize>) {
        if self.targets.slots() == 1 {
            return;
        }
        if matches!(kind, ErrorKind::Connect | ErrorKind::Reset) {
            self.targets.put_down(pick.slot);
        }
        *home = None;
    }

    /// The replica slot a request went to (`replica-2`), when requests go to
    /// replicas directly: a failed one is put down to it.
    pub fn replica_of(&self, pick: &Pick) -> Option<String> {
        self.targets.replica_of(pick.slot)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn three(sticky: bool) -> Router {
        let bases: Vec<String> = (1..=3).map(|p| format!("http://127.0.0.1:{p}")).collect();
        Router::new(Arc::new(Targets::direct(&bases, sticky)))
    }

    fn one(base: &str) -> Router {
        Router::new(Arc::new(Targets::one(base)))
    }

    fn port(pick: &Pick) -> u16 {
        pick.urls.url.port().unwrap()
    }

    #[test]
    fn one_target_takes_everything() {
        let targets = one("http://127.0.0.1:9/");
        let mut home = None;
        let pick = targets.pick(&mut home);
        assert_eq!(pick.urls.url.as_str(), "http://127.0.0.1:9/session");
        assert_eq!(pick.urls.session, "/session");
        assert_eq!(pick.urls.items, "/session/items");
        let prefixed = one("http://127.0.0.1:9/shop/");
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
        targets.targets.set(0, "http://127.0.0.1:40000");
        let ports: Vec<u16> = (0..3).map(|_| port(&targets.pick(&mut home))).collect();
        assert!(ports.contains(&40000), "{ports:?}");
        assert!(!ports.contains(&1), "{ports:?}");
        assert_eq!(
            targets.targets.describe(),
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

    #[test]
    fn each_thread_sees_a_new_address_and_re_reads_only_when_the_epoch_moved() {
        let targets = Arc::new(Targets::direct(&["http://127.0.0.1:1".into()], false));
        let router = Arc::new(Router::new(Arc::clone(&targets)));
        let first = router.pick(&mut None);
        assert!(
            Arc::ptr_eq(&first.urls, &router.pick(&mut None).urls),
            "the same copy"
        );
        let (tell, told) = std::sync::mpsc::channel();
        let (ask, asked) = std::sync::mpsc::channel::<()>();
        let other = {
            let router = Arc::clone(&router);
            std::thread::spawn(move || {
                tell.send(port(&router.pick(&mut None))).unwrap();
                asked.recv().unwrap();
                port(&router.pick(&mut None))
            })
        };
        assert_eq!(told.recv().unwrap(), 1);
        targets.set(0, "http://127.0.0.1:40000");
        ask.send(()).unwrap();
        assert_eq!(
            other.join().unwrap(),
            40000,
            "the other thread's copy follows"
        );
        let after = router.pick(&mut None);
        assert_eq!(port(&after), 40000, "and this one's");
        assert!(Arc::ptr_eq(&after.urls, &router.pick(&mut None).urls));
        // Another router on this thread takes its own copy, not this one's.
        assert_eq!(port(&one("http://127.0.0.1:9").pick(&mut None)), 9);
        assert_eq!(port(&router.pick(&mut None)), 40000);
    }
}
