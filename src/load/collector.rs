//! Merges the shards' per-second recorders into one row per interval, writes each
//! completed interval to the HdrHistogram interval log, and keeps run totals.
//!
//! An interval is complete once every source has reported it or finished, so a row
//! never misses a late shard. Only percentiles stay in memory per interval; the
//! histograms themselves go to the log and are merged into the totals, so memory is
//! bounded whatever the run's length.

use std::collections::BTreeMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;

use crate::metrics::{ErrorKind, Live, Outcome, Percentiles, Recorder};
use crate::report::hlog::HlogWriter;
use crate::session::Op;

/// The length of an interval.
pub const INTERVAL: Duration = Duration::from_secs(1);

/// What sources send.
#[derive(Debug)]
pub enum Message {
    /// What `source` recorded during interval `index` (counting from 0).
    Interval {
        source: usize,
        index: u64,
        /// Boxed: a recorder is large next to `Done`.
        recorder: Box<Recorder>,
    },
    /// `source` will send nothing more.
    Done { source: usize },
}

/// One interval of the run, as it goes into summary.json.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IntervalRow {
    /// Start of the interval, seconds from the start of the load.
    pub t: u64,
    /// Inside the warm-up: shown, but left out of the run's statistics.
    pub warmup: bool,
    pub missed_starts: u64,
    pub ops: BTreeMap<Op, IntervalOp>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IntervalOp {
    pub ok: u64,
    /// Operations that ended without an answer (after their retries).
    pub failed: u64,
    /// Failed requests by kind.
    pub errors: BTreeMap<ErrorKind, u64>,
    pub corrected_ms: Percentiles,
    pub uncorrected_ms: Percentiles,
}

impl IntervalOp {
    pub fn of(recorder: &Recorder, op: Op) -> Self {
        let ok = recorder.latency.get(&(op, Outcome::Ok));
        IntervalOp {
            ok: recorder.count(op, Outcome::Ok),
            failed: recorder.count(op, Outcome::Error),
            errors: recorder.errors_of(op),
            corrected_ms: ok.map_or_else(Percentiles::empty, |l| Percentiles::of(&l.corrected)),
            uncorrected_ms: ok.map_or_else(Percentiles::empty, |l| Percentiles::of(&l.uncorrected)),
        }
    }
}

/// The collector's result.
#[derive(Debug, Default)]
pub struct Collected {
    /// Everything after the warm-up.
    pub totals: Recorder,
    pub intervals: Vec<IntervalRow>,
    /// Why the interval log stopped being written, if it did.
    pub hlog_error: Option<String>,
}

/// Receives from `sources` sources until each has said it is done.
pub async fn collect(
    mut inbox: mpsc::UnboundedReceiver<Message>,
    sources: usize,
    warmup: Duration,
    mut hlog: Option<HlogWriter>,
    live: Arc<Live>,
) -> Collected {
    let mut collected = Collected::default();
    let mut pending: BTreeMap<u64, Recorder> = BTreeMap::new();
    // The next interval each source will report; u64::MAX once it is done.
    let mut next = vec![0u64; sources];
    while let Some(message) = inbox.recv().await {
        match message {
            Message::Interval {
                source,
                index,
                recorder,
            } => {
                pending.entry(index).or_default().merge(&recorder);
                next[source] = index + 1;
            }
            Message::Done { source } => next[source] = u64::MAX,
        }
        let complete_below = next.iter().copied().min().unwrap_or(u64::MAX);
        while let Some(entry) = pending.first_entry() {
            if *entry.key() >= complete_below {
                break;
            }
            let (index, recorder) = entry.remove_entry();
            close_interval(&mut collected, index, &recorder, warmup, &mut hlog);
            publish(&live, collected.intervals.last(), &recorder);
        }
        if complete_below == u64::MAX {
            break;
        }
    }
    // Sources that vanished without saying so: close what they left.
    for (index, recorder) in std::mem::take(&mut pending) {
        close_interval(&mut collected, index, &recorder, warmup, &mut hlog);
    }
    collected
}

/// Feeds the live display with the interval just closed.
fn publish(live: &Live, row: Option<&IntervalRow>, recorder: &Recorder) {
    let Some(row) = row else { return };
    let p99_ms = row
        .ops
        .values()
        .map(|op| op.corrected_ms.p99)
        .fold(0.0, f64::max);
    live.interval_p99_us
        .store((p99_ms * 1000.0) as u64, Ordering::Relaxed);
    live.serving
        .store(recorder.served_by.len() as u64, Ordering::Relaxed);
}

fn close_interval(
    collected: &mut Collected,
    index: u64,
    recorder: &Recorder,
    warmup: Duration,
    hlog: &mut Option<HlogWriter>,
) {
    let warm = INTERVAL * (index as u32 + 1) <= warmup;
    if !warm {
        collected.totals.merge(recorder);
    }
    if let Some(writer) = hlog {
        if let Err(err) = writer.write_interval(INTERVAL * index as u32, INTERVAL, recorder) {
            collected.hlog_error = Some(err.to_string());
            *hlog = None;
        }
    }
    collected.intervals.push(IntervalRow {
        t: index,
        warmup: warm,
        missed_starts: recorder.missed_starts,
        ops: recorder
            .ops()
            .into_iter()
            .map(|op| (op, IntervalOp::of(recorder, op)))
            .collect(),
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    fn recorder(ms: u64, missed: u64) -> Recorder {
        let mut r = Recorder::default();
        r.op(
            Op::Append,
            Outcome::Ok,
            Duration::from_millis(ms),
            Duration::from_millis(1),
        );
        r.missed_starts = missed;
        r
    }

    #[tokio::test]
    async fn intervals_close_when_every_source_reported_and_warmup_is_left_out() {
        let (tx, rx) = mpsc::unbounded_channel();
        let send = |source, index, r| {
            tx.send(Message::Interval {
                source,
                index,
                recorder: Box::new(r),
            })
            .unwrap()
        };
        send(0, 0, recorder(10, 1));
        send(1, 0, recorder(20, 0));
        send(0, 1, recorder(30, 0));
        send(1, 1, recorder(40, 2));
        send(0, 2, recorder(50, 0));
        tx.send(Message::Done { source: 0 }).unwrap();
        tx.send(Message::Done { source: 1 }).unwrap();
        let collected = collect(rx, 2, Duration::from_secs(1), None, Arc::default()).await;
        let rows = &collected.intervals;
        assert_eq!(rows.len(), 3);
        assert_eq!(rows.iter().map(|r| r.t).collect::<Vec<_>>(), [0, 1, 2]);
        assert!(rows[0].warmup && !rows[1].warmup);
        assert_eq!(rows[0].ops[&Op::Append].ok, 2);
        assert_eq!(rows[1].missed_starts, 2);
        // Totals leave the warm-up interval out: 3 operations, 2 missed starts.
        assert_eq!(collected.totals.count(Op::Append, Outcome::Ok), 3);
        assert_eq!(collected.totals.missed_starts, 2);
        let p = &rows[1].ops[&Op::Append].corrected_ms;
        assert!(p.max >= 39.0 && p.max <= 41.0, "{p:?}");
    }
}
