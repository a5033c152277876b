//! The open model's clock: when operation *i* is meant to start.
//!
//! A rate profile is piecewise linear: it starts at `start` operations per second,
//! each stage ramps linearly to its target over its length, and the last rate holds
//! afterwards. Operation *i* is due when the integral of the rate reaches *i*, so
//! the schedule is a pure function of the profile: it does not drift when the
//! harness falls behind, which is what makes the corrected latency honest (wrk2's
//! constant-throughput clock, generalised to ramps).
//!
//! Each load thread keeps its own share of the schedule ([`Schedule`]: every
//! `shards`-th operation) and sleeps to its next due time on an [`Alarm`], then
//! starts every operation that is due by the time it wakes, each with its own due
//! time kept for the corrected latency (wrk2's design, with one schedule per load
//! thread rather than per connection). tokio's timer works in whole milliseconds and
//! rounds every deadline up, so an operation started by it would start 0–1 ms late,
//! and that lateness of the harness would show up in the corrected latency as if the
//! service had been slow; the alarm is a `timerfd` in the load thread's own event
//! loop instead, which wakes within microseconds of its deadline. Before it, a pacer
//! thread sent each due time to the load thread: two thread wake-ups per request,
//! and about four times the CPU per request of the closed model.
//!
//! A wake-up has a cost of its own, whatever it does: on the development machine
//! (virtual, two cores) a thread that sleeps to a timer and wakes spends about 20 µs
//! of CPU on it, three times what a whole request costs flat out. So operations due
//! close together share one wake-up ([`Schedule::wake_at`], `[load] start_window`):
//! the first of them starts up to the window late, and that lateness is recorded.

use std::time::Duration;

use tokio::time::Instant;

use crate::plan::RateProfile;

/// One load thread's share of the open model's schedule: operations `first`,
/// `first + step`, `first + 2 × step`, … of the profile, as absolute due times.
#[derive(Debug)]
pub struct Schedule {
    profile: RateProfile,
    start: Instant,
    next: u64,
    step: u64,
    /// The due time of operation `next`, `None` once the profile has ended.
    due: Option<Instant>,
    /// How much later than its due time an operation may start so that it shares
    /// a wake-up with the operations due after it ([`Schedule::wake_at`]).
    window: Duration,
    /// When to wake for the operations from `next` on: the due time of the last
    /// one within `window` of the first when enough are, else the first's.
    wake: Option<Instant>,
}

/// The most operations one wake-up is planned for: at a million operations a
/// second and a window of a millisecond, looking further ahead than this would
/// cost more than the wake-ups it saves.
const MAX_BATCH: u64 = 64;
/// The fewest operations worth sharing a wake-up: below it, each starts on time.
/// With the default window of 500 µs, at 4000 operations a second (two in a
/// window) every operation keeps its exact start; from about 6000 a second, four
/// or more share a wake-up.
const MIN_BATCH: usize = 4;

impl Schedule {
    /// Operations `first`, `first + step`, … of `profile`, counted from `start`;
    /// operations due within `window` of each other are started by one wake-up.
    pub fn share(
        profile: RateProfile,
        start: Instant,
        (first, step): (u64, u64),
        window: Duration,
    ) -> Schedule {
        let mut schedule = Schedule {
            due: profile.due(first).map(|offset| start + offset),
            profile,
            start,
            next: first,
            step: step.max(1),
            window,
            wake: None,
        };
        schedule.wake = schedule.plan_wake();
        schedule
    }

    /// When the next operation of this share is due; `None` once the profile ended.
    pub fn peek(&self) -> Option<Instant> {
        self.due
    }

    /// When to wake for the next operations: when [`MIN_BATCH`] or more fall due
    /// within the window after the next one, at the due time of the last of them,
    /// so one wake-up starts them all, the first at most the window late;
    /// otherwise at the next one's own due time. A thread's wake-up costs CPU of its
    /// own (about 20 µs on the development machine, a virtual one: reprogramming
    /// its timer, leaving and entering idle), so at tens of thousands of operations
    /// a second one wake-up per operation costs more than the requests, and the
    /// thread runs out of CPU long before the service does.
    pub fn wake_at(&self) -> Option<Instant> {
        self.wake
    }

    fn plan_wake(&self) -> Option<Instant> {
        let first = self.due?;
        let (mut last, mut count) = (first, 1);
        for j in 1..=MAX_BATCH {
            match self.profile.due(self.next + j * self.step) {
                Some(offset) if self.start + offset <= first + self.window => {
                    last = self.start + offset;
                    count += 1;
                }
                _ => break,
            }
        }
        Some(if count >= MIN_BATCH { last } else { first })
    }

    /// The next operation's due time, if it is due by `now`; moves past it.
    pub fn take_due(&mut self, now: Instant) -> Option<Instant> {
        let due = self.due.filter(|&due| due <= now)?;
        self.next += self.step;
        self.due = self
            .profile
            .due(self.next)
            .map(|offset| self.start + offset);
        // The wake-up planned still covers the operations up to it.
        if self
            .due
            .is_none_or(|next| self.wake.is_none_or(|wake| next > wake))
        {
            self.wake = self.plan_wake();
        }
        Some(due)
    }

    /// The rate of the whole profile at `at`.
    pub fn rate_at(&self, at: Instant) -> f64 {
        self.profile
            .rate_at(at.saturating_duration_since(self.start))
    }
}

/// Wakes a load thread at a due time.
pub enum Alarm {
    /// A `timerfd` registered with the thread's runtime: microsecond wake-ups.
    #[cfg(target_os = "linux")]
    Precise(precise::TimerFd),
    /// tokio's timer: whole milliseconds. Where no `timerfd` can be had, and on
    /// tokio's paused clock in tests, where it fires exactly on time.
    Tokio(std::pin::Pin<Box<tokio::time::Sleep>>),
}

impl Alarm {
    /// The best alarm this thread's runtime offers; `precise` asks for the timerfd.
    pub fn new(precise: bool) -> Alarm {
        #[cfg(target_os = "linux")]
        if precise {
            if let Ok(fd) = precise::TimerFd::new() {
                return Alarm::Precise(fd);
            }
        }
        let _ = precise;
        Alarm::Tokio(Box::pin(tokio::time::sleep_until(Instant::now())))
    }

    /// Returns at `at` (at once if it has passed). Cancel-safe, and cheap to call
    /// again with the same time: the alarm is set once per wake-up.
    pub async fn until(&mut self, at: Instant) {
        match self {
            #[cfg(target_os = "linux")]
            Alarm::Precise(fd) => fd.until(at).await,
            Alarm::Tokio(sleep) => {
                if sleep.deadline() != at {
                    sleep.as_mut().reset(at);
                }
                sleep.as_mut().await;
            }
        }
    }
}

#[cfg(target_os = "linux")]
mod precise {
    use std::io;
    use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

    use tokio::io::unix::AsyncFd;
    use tokio::io::Interest;
    use tokio::time::Instant;

    /// A one-shot `timerfd` on `CLOCK_MONOTONIC` (the clock `Instant` reads), set
    /// to absolute times.
    pub struct TimerFd {
        fd: AsyncFd<OwnedFd>,
        /// The time it is set to and has not yet fired for.
        armed: Option<Instant>,
        /// One instant read on both clocks, to turn an `Instant` into a `timespec`.
        base: (Instant, libc::timespec),
    }

    fn monotonic() -> libc::timespec {
        let mut now = libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        // SAFETY: clock_gettime writes into the struct we own.
        unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut now) };
        now
    }

    impl TimerFd {
        /// A timerfd registered with the current runtime.
        pub fn new() -> io::Result<TimerFd> {
            let flags = libc::TFD_NONBLOCK | libc::TFD_CLOEXEC;
            // SAFETY: plain system call; the descriptor is owned from here on.
            let raw = unsafe { libc::timerfd_create(libc::CLOCK_MONOTONIC, flags) };
            if raw < 0 {
                return Err(io::Error::last_os_error());
            }
            // SAFETY: `raw` is a fresh descriptor nobody else owns.
            let fd = unsafe { OwnedFd::from_raw_fd(raw) };
            // SAFETY: the descriptor is owned by the `AsyncFd` and closed with it.
            let fd = unsafe { AsyncFd::register_with_interest(fd, Interest::READABLE) }?;
            Ok(TimerFd {
                fd,
                armed: None,
                base: (Instant::now(), monotonic()),
            })
        }

        fn set(&mut self, at: Instant) {
            let (base, mono) = self.base;
            let nanos = mono.tv_nsec as u128
                + mono.tv_sec as u128 * 1_000_000_000
                + at.saturating_duration_since(base).as_nanos();
            // Zero would disarm it: a time in the past fires at once all the same.
            let nanos = nanos.max(1);
            let spec = libc::itimerspec {
                it_interval: libc::timespec {
                    tv_sec: 0,
                    tv_nsec: 0,
                },
                it_value: libc::timespec {
                    tv_sec: (nanos / 1_000_000_000) as libc::time_t,
                    tv_nsec: (nanos % 1_000_000_000) as libc::c_long,
                },
            };
            let fd = self.fd.get_ref().as_raw_fd();
            // SAFETY: a valid timerfd and a spec we own; the old value is not asked for.
            unsafe {
                libc::timerfd_settime(fd, libc::TFD_TIMER_ABSTIME, &spec, std::ptr::null_mut())
            };
            self.armed = Some(at);
        }

        pub async fn until(&mut self, at: Instant) {
            if self.armed != Some(at) {
                self.set(at);
            }
            // The runtime shutting down is an error: then nothing is waited for.
            if let Ok(mut ready) = self.fd.readable().await {
                // Not read: setting the timer again clears what it counted, and the
                // next expiry is a new edge for the event loop. One system call per
                // wake-up (the `timerfd_settime` of the next due time) rather than two.
                ready.clear_ready();
            }
            self.armed = None;
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

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
