//! The open model's clock: when operation *i* is meant to start.
//!
//! A rate profile is piecewise linear: it starts at `start` operations per second,
//! each stage ramps linearly to its target over its length, and the last rate holds
//! afterwards. Operation *i* is due when the integral of the rate reaches *i*, so
//! the schedule is a pure function of the profile: it does not drift when the
//! harness falls behind, which is what makes the corrected latency honest (wrk2's
//! constant-throughput clock, generalised to ramps).
//!
//! [`precise`] walks the schedule on a thread of its own. tokio's timer works in
//! whole milliseconds and rounds every deadline up, so a paced operation started by
//! it would start 0–1 ms late, and that lateness of the harness would show up in the
//! corrected latency as if the service had been slow. A plain thread's sleep wakes
//! within tens of microseconds of its deadline.

use std::time::Duration;

use tokio::sync::mpsc;
use tokio::time::Instant;

use crate::plan::RateProfile;

/// The longest the pacer sleeps before it looks whether anyone still listens, so it
/// ends soon after the load does even when the next operation is far off.
const LONGEST_NAP: Duration = Duration::from_millis(20);

/// Sends the due time of every operation of `profile`, counted from `start`, when
/// that time comes, from a thread of its own; stops when the schedule ends or the
/// receiver is dropped. The due times sent are the schedule's, never the time they
/// were sent at, so the pacer's own lateness cannot shift the schedule.
pub fn precise(start: Instant, profile: RateProfile) -> mpsc::UnboundedReceiver<Instant> {
    let (tx, rx) = mpsc::unbounded_channel();
    let origin = start.into_std();
    std::thread::Builder::new()
        .name("sessionstorm-pacer".into())
        .spawn(move || {
            for i in 0.. {
                let Some(offset) = profile.due(i) else { return };
                let due = origin + offset;
                loop {
                    let now = std::time::Instant::now();
                    if now >= due {
                        break;
                    }
                    if tx.is_closed() {
                        return;
                    }
                    std::thread::sleep((due - now).min(LONGEST_NAP));
                }
                if tx.send(start + offset).is_err() {
                    return;
                }
            }
        })
        .expect("the operating system starts the pacer thread");
    rx
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::Stage;

    fn secs(s: f64) -> Duration {
        Duration::from_secs_f64(s)
    }

    fn close(a: Duration, b: Duration) -> bool {
        a.abs_diff(b) < Duration::from_micros(10)
    }

    #[test]
    fn constant_rate_is_evenly_spaced() {
        let p = RateProfile::constant(100.0);
        assert_eq!(p.due(0), Some(Duration::ZERO));
        assert!(close(p.due(1).unwrap(), secs(0.01)));
        assert!(close(p.due(1000).unwrap(), secs(10.0)));
    }

    #[test]
    fn ramp_then_hold_counts_the_area_under_the_rate() {
        // 0 → 100/s over 10 s is 500 operations; then 100/s holds.
        let p = RateProfile {
            start: 0.0,
            stages: vec![Stage {
                to: 100.0,
                over: secs(10.0),
            }],
        };
        assert!(close(p.due(500).unwrap(), secs(10.0)));
        assert!(close(p.due(600).unwrap(), secs(11.0)));
        // Halfway up the ramp (t = 5 s) 125 operations have been due.
        assert!(close(p.due(125).unwrap(), secs(5.0)));
        assert!((p.rate_at(secs(5.0)) - 50.0).abs() < 1e-9);
    }

    #[test]
    fn ramp_down_to_zero_ends_the_schedule() {
        let p = RateProfile {
            start: 10.0,
            stages: vec![Stage {
                to: 0.0,
                over: secs(2.0),
            }],
        };
        assert!(p.due(9).is_some());
        assert_eq!(p.due(10), None);
    }

    #[test]
    fn schedule_is_monotonic_across_stages() {
        let p = RateProfile {
            start: 5.0,
            stages: vec![
                Stage {
                    to: 50.0,
                    over: secs(3.0),
                },
                Stage {
                    to: 50.0,
                    over: secs(2.0),
                },
                Stage {
                    to: 10.0,
                    over: secs(4.0),
                },
            ],
        };
        let times: Vec<Duration> = (0..400).map_while(|i| p.due(i)).collect();
        assert!(times.windows(2).all(|w| w[0] <= w[1]));
        assert_eq!(times.len(), 400);
    }
}
