//! Scheduling facts of a Swarm run, as the report shows them: where each task ran,
//! the states it went through and when (Swarm's own timestamps, from the task list),
//! and how often each slot's task was replaced.
//!
//! Plain data, filled in by a watcher that reads the task list while the run goes:
//! Swarm keeps only the last few tasks of a slot (`TaskHistoryRetentionLimit`, 5 by
//! default), so reading it once at the end would lose the early ones.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Everything the run saw Swarm do with the replicas' service.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Scheduling {
    pub engine: String,
    pub service: String,
    pub restart_delay_ms: u64,
    /// Node id → host name.
    pub nodes: BTreeMap<String, String>,
    /// In order of creation.
    pub tasks: Vec<TaskFacts>,
    /// Slot (from 0, as chaos names replicas) → tasks that replaced a failed one.
    pub restarts_by_slot: BTreeMap<usize, u32>,
}

/// One task of the replicas' service.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaskFacts {
    pub id: String,
    /// From 0 (Swarm counts from 1).
    pub slot: usize,
    /// The node's host name (its id when unknown).
    pub node: String,
    pub created_at: String,
    /// Each state the watcher saw, with the time Swarm gave it.
    pub states: Vec<StateChange>,
    /// Swarm's error for a task that failed (e.g. "task: non-zero exit (137)").
    #[serde(default)]
    pub error: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StateChange {
    pub state: String,
    pub at: String,
}

impl Scheduling {
    /// Takes in one reading of the task list: new tasks, and states not seen yet.
    pub fn observe(&mut self, tasks: &[Observed]) {
        for seen in tasks {
            let index = match self.tasks.iter().position(|t| t.id == seen.id) {
                Some(i) => i,
                None => {
                    self.tasks.push(TaskFacts {
                        id: seen.id.clone(),
                        slot: seen.slot,
                        node: self
                            .nodes
                            .get(&seen.node)
                            .cloned()
                            .unwrap_or_else(|| seen.node.clone()),
                        created_at: seen.created_at.clone(),
                        states: Vec::new(),
                        error: None,
                    });
                    self.tasks.len() - 1
                }
            };
            // A task is assigned its node after it is created.
            if self.tasks[index].node.is_empty() && !seen.node.is_empty() {
                self.tasks[index].node = (self.nodes.get(&seen.node)).unwrap_or(&seen.node).clone();
            }
            let task = &mut self.tasks[index];
            if task.states.last().map(|s| &s.state) != Some(&seen.state) {
                task.states.push(StateChange {
                    state: seen.state.clone(),
                    at: seen.at.clone(),
                });
            }
            if seen.error.is_some() {
                task.error = seen.error.clone();
            }
        }
        self.tasks.sort_by(|a, b| a.created_at.cmp(&b.created_at));
        self.restarts_by_slot.clear();
        for task in &self.tasks {
            *self.restarts_by_slot.entry(task.slot).or_default() += 1;
        }
        for count in self.restarts_by_slot.values_mut() {
            *count -= 1;
        }
    }
}

/// One task as one reading of the task list shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Observed {
    pub id: String,
    pub slot: usize,
    pub node: String,
    pub created_at: String,
    pub state: String,
    pub at: String,
    pub error: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seen(id: &str, slot: usize, state: &str, at: &str) -> Observed {
        Observed {
            id: id.into(),
            slot,
            node: "n1".into(),
            created_at: format!("2026-01-01T00:00:0{}Z", id.len()),
            state: state.into(),
            at: at.into(),
            error: None,
        }
    }

    #[test]
    fn states_are_kept_once_each_and_replacements_counted_per_slot() {
        let mut facts = Scheduling {
            nodes: BTreeMap::from([("n1".to_string(), "host-a".to_string())]),
            ..Default::default()
        };
        facts.observe(&[seen("a", 0, "running", "t1"), seen("b", 1, "running", "t1")]);
        facts.observe(&[seen("a", 0, "running", "t1"), seen("b", 1, "running", "t1")]);
        let mut failed = seen("a", 0, "failed", "t2");
        failed.error = Some("task: non-zero exit (137)".into());
        facts.observe(&[
            failed,
            seen("b", 1, "running", "t1"),
            seen("aa", 0, "ready", "t3"),
        ]);
        let mut unassigned = seen("c", 2, "pending", "t5");
        unassigned.node = String::new();
        facts.observe(&[seen("aa", 0, "running", "t4"), unassigned]);
        facts.observe(&[seen("c", 2, "running", "t6")]);
        let c = facts.tasks.iter().find(|t| t.id == "c").unwrap();
        assert_eq!(c.node, "host-a", "the node once it is assigned");
        let a = &facts.tasks[0];
        assert_eq!(a.node, "host-a");
        assert_eq!(
            a.states
                .iter()
                .map(|s| s.state.as_str())
                .collect::<Vec<_>>(),
            ["running", "failed"]
        );
        assert_eq!(a.error.as_deref(), Some("task: non-zero exit (137)"));
        let aa = facts.tasks.iter().find(|t| t.id == "aa").unwrap();
        assert_eq!(aa.states.len(), 2);
        assert_eq!(
            facts.restarts_by_slot,
            BTreeMap::from([(0, 1), (1, 0), (2, 0)])
        );
    }
}
