//! `[load]`: the model (open with a rate or stages, or closed with users), and the
//! client's settings.

use std::ops::Range;
use std::time::Duration;

use toml::Spanned;

use super::Validator;
use crate::plan::{LoadPlan, Model, RateProfile, Stage, Think, DEFAULT_START_WINDOW};
use crate::scenario;

const MODELS: &str = "\"open\", \"closed\"";
/// More load threads than this is a typo: a machine has fewer cores.
const MAX_THREADS: i64 = 256;
/// Past this, the harness's own lateness would be a large part of what a fast
/// service's corrected latency shows.
const MAX_START_WINDOW: Duration = Duration::from_millis(10);
const THINK_DISTRIBUTIONS: &str = "\"fixed\", \"exponential\"";

impl Validator<'_> {
    pub(super) fn load(&mut self, raw: &scenario::Load) -> Option<LoadPlan> {
        let model = self.model(raw);
        let appends = self.int_in(
            &raw.appends_per_session,
            "load.appends_per_session",
            1,
            100_000,
        );
        let warmup = match &raw.warmup {
            Some(w) => self.duration(w, "load.warmup"),
            None => Some(Duration::ZERO),
        };
        let operations = match &raw.operations {
            Some(n) => self
                .int_in(n, "load.operations", 1, i64::MAX)
                .map(|n| Some(n as u64)),
            None => Some(None),
        };
        let request_timeout = self.optional_duration(
            &raw.request_timeout,
            "load.request_timeout",
            Duration::from_secs(2),
        );
        let retries = match &raw.retries {
            Some(r) => self.int_in(r, "load.retries", 0, 100),
            None => Some(3),
        };
        let max_idle = match &raw.max_idle_connections {
            Some(n) => self.int_in(n, "load.max_idle_connections", 0, 1_000_000),
            None => Some(1024),
        };
        let threads = match &raw.threads {
            Some(n) => self.int_in(n, "load.threads", 1, MAX_THREADS),
            None => Some(1),
        };
        let max_connections = match &raw.max_connections {
            Some(n) => self.int_in(n, "load.max_connections", 1, 1_000_000),
            None => Some(1024),
        };
        Some(LoadPlan {
            model: model?,
            appends_per_session: appends? as u32,
            warmup: warmup?,
            operations: operations?,
            request_timeout: request_timeout?,
            retries: retries? as u32,
            keep_alive: raw.keep_alive.unwrap_or(true),
            max_idle_connections: max_idle? as usize,
            tls: Default::default(),
            flow: None,
            threads: threads? as usize,
            max_connections: max_connections? as usize,
        })
    }

    fn model(&mut self, raw: &scenario::Load) -> Option<Model> {
        // Without `model`, `users` alone says closed; anything else is open.
        let implied = if raw.users.is_some() && raw.rate.is_none() && raw.stages.is_none() {
            "closed"
        } else {
            "open"
        };
        let (name, span) = raw
            .model
            .as_ref()
            .map_or((implied, 0..0), |m| (m.get_ref().as_str(), m.span()));
        // Keys of the other model are mistakes, not things to ignore silently.
        let misplaced = |v: &mut Self, key: &str, span: Option<Range<usize>>, model: &str| {
            if let Some(span) = span {
                v.problem(
                    span,
                    format!("`load.{key}` belongs to the {model} model; set `load.model = \"{model}\"` or remove it"),
                );
            }
        };
        match name {
            "open" => {
                misplaced(
                    self,
                    "users",
                    raw.users.as_ref().map(Spanned::span),
                    "closed",
                );
                misplaced(
                    self,
                    "think_time",
                    raw.think_time.as_ref().map(Spanned::span),
                    "closed",
                );
                let profile = self.profile(raw);
                let session_interval = self.optional_duration(
                    &raw.session_interval,
                    "load.session_interval",
                    Duration::from_secs(1),
                );
                let max_in_flight = match &raw.max_in_flight {
                    Some(n) => self.int_in(n, "load.max_in_flight", 1, 1_000_000),
                    None => Some(10_000),
                };
                let start_window = self.start_window(raw.start_window.as_ref());
                Some(Model::Open {
                    profile: profile?,
                    max_in_flight: max_in_flight? as usize,
                    session_interval: session_interval?,
                    start_window: start_window?,
                })
            }
            "closed" => {
                misplaced(self, "rate", raw.rate.as_ref().map(Spanned::span), "open");
                misplaced(
                    self,
                    "session_interval",
                    raw.session_interval.as_ref().map(Spanned::span),
                    "open",
                );
                misplaced(
                    self,
                    "start_window",
                    raw.start_window.as_ref().map(Spanned::span),
                    "open",
                );
                misplaced(
                    self,
                    "stages",
                    raw.stages
                        .as_ref()
                        .and_then(|s| s.first())
                        .map(|s| s.to.span()),
                    "open",
                );
                let Some(users) = &raw.users else {
                    self.problem(
                        span,
                        "the closed model needs `load.users`, the number of virtual users",
                    );
                    return None;
                };
                let users = self.int_in(users, "load.users", 1, 100_000);
                let think = self.think(raw);
                Some(Model::Closed {
                    users: users? as usize,
                    think: think?,
                })
            }
            other => {
                self.problem(
                    span,
                    format!("unknown load model {other:?}; accepted values: {MODELS}"),
                );
                None
            }
        }
    }

    /// `load.start_window`: zero (every start on its own wake-up) to
    /// [`MAX_START_WINDOW`]; [`DEFAULT_START_WINDOW`] when not given.
    fn start_window(&mut self, value: Option<&Spanned<String>>) -> Option<Duration> {
        let Some(value) = value else {
            return Some(DEFAULT_START_WINDOW);
        };
        let window = self.duration(value, "load.start_window")?;
        if window > MAX_START_WINDOW {
            self.problem(
                value.span(),
                format!(
                    "`load.start_window` = {:?} is too long: it is how late an operation may start, at most {}; \
                     \"0s\" starts every operation at its exact time",
                    value.get_ref(),
                    humantime::format_duration(MAX_START_WINDOW)
                ),
            );
            return None;
        }
        Some(window)
    }

    fn rate(&mut self, value: &Spanned<f64>, key: &str, allow_zero: bool) -> Option<f64> {
        let r = *value.get_ref();
        let ok = r.is_finite() && r <= 1e7 && if allow_zero { r >= 0.0 } else { r > 0.0 };
        if !ok {
            let least = if allow_zero { "0" } else { "more than 0" };
            // 1e300 written out is three hundred digits.
            let r = if r.abs() > 1e9 {
                format!("{r:e}")
            } else {
                r.to_string()
            };
            self.problem(
                value.span(),
                format!(
                    "`{key}` is {r}; it must be {least} and at most 10000000 operations per second"
                ),
            );
            return None;
        }
        Some(r)
    }

    fn profile(&mut self, raw: &scenario::Load) -> Option<RateProfile> {
        match (&raw.rate, &raw.stages) {
            (Some(rate), None) => Some(RateProfile::constant(self.rate(
                rate,
                "load.rate",
                false,
            )?)),
            (rate, Some(stages)) if !stages.is_empty() => {
                let start = match (rate, &raw.start_rate) {
                    (Some(r), _) => self.rate(r, "load.rate", true),
                    (None, Some(r)) => self.rate(r, "load.start_rate", true),
                    (None, None) => Some(0.0),
                };
                let stages: Vec<Option<Stage>> = stages
                    .iter()
                    .map(|s| {
                        let to = self.rate(&s.to, "load.stages.to", true);
                        let over = self.positive_duration(&s.over, "load.stages.over");
                        Some(Stage {
                            to: to?,
                            over: over?,
                        })
                    })
                    .collect();
                Some(RateProfile {
                    start: start?,
                    stages: stages.into_iter().collect::<Option<_>>()?,
                })
            }
            _ => {
                let span = raw
                    .model
                    .as_ref()
                    .map_or(raw.appends_per_session.span(), Spanned::span);
                self.problem(
                    span,
                    "the open model needs `load.rate` (operations per second) or `load.stages` \
                     (for example stages = [{ to = 200, over = \"10s\" }])",
                );
                None
            }
        }
    }

    fn think(&mut self, raw: &scenario::Load) -> Option<Think> {
        let time = match &raw.think_time {
            Some(t) => self.duration(t, "load.think_time")?,
            None => Duration::ZERO,
        };
        match raw
            .think_distribution
            .as_ref()
            .map(|d| (d.get_ref().as_str(), d.span()))
        {
            None | Some(("fixed", _)) => Some(Think::Fixed(time)),
            Some(("exponential", _)) => Some(Think::Exponential(time)),
            Some((other, span)) => {
                self.problem(
                    span,
                    format!("unknown think distribution {other:?}; accepted values: {THINK_DISTRIBUTIONS}"),
                );
                None
            }
        }
    }
}
