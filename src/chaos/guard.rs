//! The safety rule of chaos: a fault goes ahead only if it leaves at least
//! `min_alive` replicas healthy and hits no target already under a fault.
//!
//! Kept apart from the code that applies faults because it is the one place that
//! decides whether a fault may happen at all, and it holds state (who is down) for
//! the whole chaos run while each fault's task comes and goes.

use std::collections::BTreeSet;

use crate::cluster::Victim;

/// Which targets are under a fault now; decides whether a fault may go ahead.
#[derive(Debug)]
pub struct Guard {
    replicas: usize,
    min_alive: usize,
    /// Under a fault right now.
    busy: BTreeSet<Victim>,
    /// Replica slots left down for good (`after_kill = "none"`).
    gone: BTreeSet<usize>,
}

impl Guard {
    pub fn new(replicas: usize, min_alive: usize) -> Self {
        Guard {
            replicas,
            min_alive,
            busy: BTreeSet::new(),
            gone: BTreeSet::new(),
        }
    }

    fn healthy(&self) -> usize {
        let down: BTreeSet<usize> = self
            .busy
            .iter()
            .filter_map(|v| match v {
                Victim::Replica(slot) => Some(*slot),
                _ => None,
            })
            .chain(self.gone.iter().copied())
            .collect();
        self.replicas - down.len()
    }

    /// Marks `victims` as under a fault, or says why the fault must be skipped.
    pub fn reserve(&mut self, victims: &[Victim]) -> Result<(), String> {
        for v in victims {
            if self.busy.contains(v) {
                return Err(format!("{v} is already under a fault"));
            }
            if matches!(v, Victim::Replica(slot) if self.gone.contains(slot)) {
                return Err(format!("{v} was left down by an earlier fault"));
            }
        }
        let hit = victims
            .iter()
            .filter(|v| matches!(v, Victim::Replica(_)))
            .count();
        let healthy = self.healthy();
        if hit > 0 && healthy.saturating_sub(hit) < self.min_alive {
            return Err(format!(
                "min_alive = {}: {healthy} replicas healthy, this fault would take down {hit}",
                self.min_alive
            ));
        }
        self.busy.extend(victims.iter().copied());
        Ok(())
    }

    /// Replica slots left down for good, in order.
    pub fn left_down(&self) -> Vec<usize> {
        self.gone.iter().copied().collect()
    }

    /// The fault on `victims` is over; `left_down` replicas stay down for good.
    pub fn release(&mut self, victims: &[Victim], left_down: bool) {
        for v in victims {
            self.busy.remove(v);
            if let (true, Victim::Replica(slot)) = (left_down, v) {
                self.gone.insert(*slot);
            }
        }
    }
}
