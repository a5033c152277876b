//! The open model's clock: when operation *i* is meant to start.
//!
//! A rate profile is piecewise linear: it starts at `start` operations per second,
//! each stage ramps linearly to its target over its length, and the last rate holds
//! afterwards. Operation *i* is due when the integral of the rate reaches *i*, so
//! the schedule is a pure function of the profile: it does not drift when the
//! harness falls behind, which is what makes the corrected latency honest (wrk2's
//! constant-throughput clock, generalised to ramps).

use std::time::Duration;

/// One stage: ramp linearly from the previous rate to `to` over `over`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Stage {
    pub to: f64,
    pub over: Duration,
}

/// Operations per second over time.
#[derive(Debug, Clone, PartialEq)]
pub struct RateProfile {
    pub start: f64,
    pub stages: Vec<Stage>,
}

impl RateProfile {
    /// A constant rate.
    pub fn constant(rate: f64) -> Self {
        RateProfile {
            start: rate,
            stages: Vec::new(),
        }
    }

    /// The rate at `t`.
    pub fn rate_at(&self, t: Duration) -> f64 {
        let mut from = self.start;
        let mut begin = Duration::ZERO;
        for stage in &self.stages {
            let end = begin + stage.over;
            if t < end {
                let f = (t - begin).as_secs_f64() / stage.over.as_secs_f64();
                return from + (stage.to - from) * f;
            }
            from = stage.to;
            begin = end;
        }
        from
    }

    /// When operation `i` (counting from 0) is due, measured from the start of the
    /// load; `None` if the rate has dropped to zero for good before it.
    pub fn due(&self, i: u64) -> Option<Duration> {
        // Operation i is due when the cumulative count reaches i.
        let mut need = i as f64;
        let mut from = self.start;
        let mut begin = 0.0_f64;
        for stage in &self.stages {
            let len = stage.over.as_secs_f64();
            let slope = (stage.to - from) / len;
            let count = (from + stage.to) / 2.0 * len;
            if need < count {
                // Solve from*t + slope*t²/2 = need for t in [0, len).
                let t = if slope.abs() < 1e-12 {
                    need / from
                } else {
                    (-from + (from * from + 2.0 * slope * need).max(0.0).sqrt()) / slope
                };
                return Some(Duration::from_secs_f64(begin + t.clamp(0.0, len)));
            }
            need -= count;
            from = stage.to;
            begin += len;
        }
        (from > 0.0).then(|| Duration::from_secs_f64(begin + need / from))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
