//! summary.json while the run goes: written when the load starts and rewritten
//! every [`CHECKPOINT`] with the live counters, marked running, so a run that dies
//! (killed, out of memory, the machine gone) still leaves a recent summary beside
//! its scenario and latency log. The final summary replaces it.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use super::Summary;
use crate::metrics::Live;

/// How often summary.json is rewritten while the run goes: a run that dies leaves
/// one at most this old.
const CHECKPOINT: Duration = Duration::from_secs(5);

/// Rewrites summary.json, status `running`, every [`CHECKPOINT`] until stopped
/// (aborted when dropped).
#[derive(Debug)]
pub struct Checkpoint(tokio::task::JoinHandle<()>);

impl Checkpoint {
    /// Writes `base` with the live counters now and then every [`CHECKPOINT`].
    pub(super) fn spawn(
        base: Summary,
        dir: &Path,
        live: Arc<Live>,
        start: Instant,
        duration: Duration,
    ) -> Checkpoint {
        let dir = dir.to_path_buf();
        Checkpoint(tokio::spawn(async move {
            let mut tick = tokio::time::interval(CHECKPOINT);
            let mut warned = false;
            loop {
                tick.tick().await;
                let mut summary = base.clone();
                let elapsed = start.elapsed();
                summary.load_elapsed_s = elapsed.min(duration).as_secs_f64().round();
                summary.sessions.created = Live::get(&live.sessions);
                summary.verdict.reasons.push(format!(
                    "checkpoint {}s after the load started: {} operations, {} errors, \
                     {} anomalies, {} faults so far",
                    elapsed.as_secs(),
                    Live::get(&live.ops),
                    Live::get(&live.errors),
                    Live::get(&live.anomalies),
                    Live::get(&live.faults),
                ));
                if let Err(err) = summary.write_json(&dir) {
                    if !std::mem::replace(&mut warned, true) {
                        eprintln!("warning: cannot write the running summary.json: {err}");
                    }
                }
            }
        }))
    }

    /// Stops the rewrites, waiting for one under way, so the final summary replaces
    /// the last checkpoint and never the other way round.
    pub async fn stop(&mut self) {
        self.0.abort();
        let _ = (&mut self.0).await;
    }
}

impl Drop for Checkpoint {
    fn drop(&mut self) {
        self.0.abort();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn the_checkpoint_rewrites_the_summary_every_5s_until_stopped() {
        let dir = tempfile::tempdir().unwrap();
        let base = Summary::parse(include_str!("../../tests/fixtures/summary.json")).unwrap();
        let live = Arc::new(Live::default());
        let read = || Summary::read(dir.path()).unwrap();
        let mut checkpoint = Checkpoint::spawn(
            base,
            dir.path(),
            Arc::clone(&live),
            Instant::now(),
            Duration::from_secs(60),
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert!(read()
            .verdict
            .reasons
            .last()
            .unwrap()
            .starts_with("checkpoint 0s after"));
        Live::add(&live.ops, 42);
        tokio::time::sleep(Duration::from_secs(10)).await;
        let summary = read();
        let reason = summary.verdict.reasons.last().unwrap();
        assert!(reason.starts_with("checkpoint 10s after"), "{reason}");
        assert!(reason.contains("42 operations"), "{reason}");
        assert_eq!(summary.load_elapsed_s, 10.0);
        checkpoint.stop().await;
        std::fs::remove_file(dir.path().join("summary.json")).unwrap();
        tokio::time::sleep(Duration::from_secs(10)).await;
        assert!(
            !dir.path().join("summary.json").exists(),
            "rewritten after stop"
        );
    }
}
