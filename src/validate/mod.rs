//! Validation: the scenario file and the command line become a [`Plan`].
//!
//! [`build`] is the one place where raw input (the TOML model of [`crate::scenario`]
//! and the command-line overrides) becomes typed values with defaults filled in. It
//! reports every problem it finds at once, each with its position and the accepted
//! values, so a user fixes a scenario in one round instead of one error per run.
//!
//! The [`Validator`] carries what every check needs (the text for positions, the
//! overrides a wrong value may come from, the problems so far); each section of the
//! file has its own file of checks: [`service`] (with store and balancer),
//! [`load`] (with [`tls`]), [`chaos`] (with [`fault`]: a fault looked up in the
//! fault table, and its keys), [`gates`], [`attach`], [`flow`] and [`cluster`] (the
//! engine, and whether the scenario fits it).
//!
//! This layer sits between the raw model and the plan: it imports both, and nothing
//! that runs (cluster, load, chaos, gate, report), so checking a scenario never
//! needs Docker.

use std::ops::Range;
use std::time::Duration;

use toml::Spanned;

use crate::plan::topology::Topology;
use crate::plan::{EngineKind, Plan, Scheme, MAX_DURATION};
use crate::scenario::overrides::{Overrides, Setting};
use crate::scenario::{Problem, Source};
use crate::secrets::Secrets;

pub mod attach;
mod chaos;
mod cluster;
mod fault;
pub mod flow;
mod gates;
mod load;
mod service;
mod store;
#[cfg(test)]
mod tests;
mod tls;

const DURATION_FORMAT: &str =
    "a number with a unit: ms, s, m or h, for example \"30s\" or \"1m 30s\"";

/// Validates the scenario in `source` and applies the overrides.
pub fn build(source: &Source, overrides: &Overrides) -> Result<Plan, Vec<Problem>> {
    let raw = crate::scenario::overrides::parse(source, &overrides.set).map_err(|p| vec![p])?;
    let mut v = Validator {
        source,
        set: &overrides.set,
        problems: Vec::new(),
    };

    let name = raw.name.get_ref().trim().to_string();
    if name.is_empty()
        || !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
    {
        v.problem(
            raw.name.span(),
            "`name` must be non-empty and use only letters, digits, '-', '_' or '.' (it becomes part of container and folder names)",
        );
    }
    let seed = match &raw.seed {
        Some(seed) => v.int_at_least(seed, "seed", 0).map(|s| s as u64),
        None => Some(rand::random()),
    };
    let duration = v.positive_duration(&raw.duration, "duration");

    let (attach, attach_problems) = attach::plan(source, &overrides.set, &overrides.attach, &raw);
    v.problems.extend(attach_problems);
    let attached = attach.is_some() || raw.attach.is_some() || overrides.attach.url.is_some();
    let store = v.store(&raw.store);
    let service = v.service(&raw.service, &store, attached);
    let balancer = v.balancer(&raw.balancer);
    let mut load = v.load(&raw.load);
    let mut tls = tls::validate(source, &overrides.set, raw.load.tls.as_ref())
        .map_err(|problems| v.problems.extend(problems))
        .unwrap_or_default();
    // HTTPS replicas the harness starts carry certificates made for no address the
    // load can use (`direct` reaches them on 127.0.0.1): unless `[load.tls]` says
    // otherwise, they are trusted as the balancer trusts them.
    let https_replicas = service.as_ref().is_some_and(|s| s.scheme == Scheme::Https);
    if https_replicas && !attached && raw.load.tls.is_none() {
        tls.insecure = true;
    }
    if let Some(load) = &mut load {
        load.tls = tls;
    }
    if let Some(raw_flow) = &raw.flow {
        let flow = flow::validate(&mut v, raw_flow).map(std::sync::Arc::new);
        if let Some(load) = &mut load {
            load.flow = flow;
        }
    }
    // Attached, the replicas are counted at the start of the run, and checked then.
    let replicas = match &service {
        Some(s) if !attached => s.replicas,
        _ => 64,
    };
    let min_alive = match &raw.min_alive {
        Some(m) => v
            .int_in(m, "min_alive", 0, replicas as i64)
            .map(|m| m as usize),
        None => Some(1.min(replicas)),
    };
    let chaos: Vec<_> = raw
        .chaos
        .iter()
        .map(|c| v.chaos(c, replicas, store.topology))
        .collect();
    v.chaos_fits_the_run(
        &raw.chaos,
        &chaos,
        balancer.kind,
        &store,
        overrides.duration.or(duration),
    );
    let cluster = v.cluster(&raw.cluster);
    if let Some(topology) = &raw.store.topology {
        let elsewhere = match () {
            _ if attached => Some("an attached stack brings its own store"),
            _ if cluster.engine == EngineKind::Swarm => {
                Some("the swarm engine starts a single store")
            }
            _ => None,
        };
        if let Some(why) = elsewhere.filter(|_| store.topology != Topology::Single) {
            v.problem(
                topology.span(),
                format!("`store.topology = {:?}` needs the docker engine's own store ({why}); remove it, or use `[cluster] engine = \"docker\"`", topology.get_ref()),
            );
        }
    }
    v.fits_the_engine(
        &raw.cluster,
        &cluster,
        cluster::Asked {
            attached,
            attach_labels: attach.as_ref().map(|a| a.labels.as_slice()),
            balancer: &balancer,
            service: service.as_ref(),
            raw_chaos: &raw.chaos,
            chaos: &chaos,
        },
    );
    let secrets = v.secrets(raw.secrets.as_deref().unwrap_or_default());
    let gates = gates::gates(&raw.gates, source, &overrides.set)
        .map_err(|problems| v.problems.extend(problems))
        .unwrap_or_default();

    if !v.problems.is_empty() {
        return Err(v.problems);
    }
    // Every `None` above pushed a problem, so all of these are present.
    let (Some(seed), Some(duration), Some(service), Some(load), Some(min_alive)) =
        (seed, duration, service, load, min_alive)
    else {
        unreachable!("a missing value always records a problem");
    };
    Ok(Plan {
        name,
        description: raw.description.clone(),
        seed: overrides.seed.unwrap_or(seed),
        duration: overrides.duration.unwrap_or(duration),
        service,
        store,
        balancer,
        load,
        min_alive,
        chaos: chaos.into_iter().flatten().collect(),
        gates,
        source: source.clone(),
        overrides: overrides
            .set
            .iter()
            .map(|s| s.origin_masked(&secrets))
            .collect(),
        attach,
        cluster,
    })
}

/// Collects problems while reading values; each reader returns `None` after recording one.
pub(crate) struct Validator<'a> {
    source: &'a Source,
    /// Overrides whose values may be the ones found wrong.
    set: &'a [Setting],
    problems: Vec<Problem>,
}

impl Validator<'_> {
    pub(crate) fn problem(&mut self, span: Range<usize>, message: impl Into<String>) {
        let problem = crate::scenario::overrides::locate(self.source, self.set, span, message);
        self.problems.push(problem);
    }

    /// Problems recorded so far, to tell whether a part added any.
    pub(crate) fn problem_count(&self) -> usize {
        self.problems.len()
    }

    pub(crate) fn int_in(
        &mut self,
        value: &Spanned<i64>,
        key: &str,
        min: i64,
        max: i64,
    ) -> Option<i64> {
        let n = *value.get_ref();
        if (min..=max).contains(&n) {
            Some(n)
        } else {
            self.problem(
                value.span(),
                format!("`{key}` is {n}; it must be between {min} and {max}"),
            );
            None
        }
    }

    /// `secrets`: more environment names to mask. A name that could never be an
    /// environment variable's is a typo that would leave a secret shown.
    fn secrets(&mut self, names: &[Spanned<String>]) -> Secrets {
        let env_name =
            |n: &str| !n.is_empty() && n.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
        for name in names.iter().filter(|n| !env_name(n.get_ref())) {
            self.problem(
                name.span(),
                format!(
                    "`secrets` lists {:?}, which is no environment variable's name; write names of letters, digits and _, such as \"DATABASE_URL\"",
                    name.get_ref()
                ),
            );
        }
        Secrets::with_names(&names.iter().map(|n| n.get_ref()).collect::<Vec<_>>())
    }

    fn int_at_least(&mut self, value: &Spanned<i64>, key: &str, min: i64) -> Option<i64> {
        self.int_in(value, key, min, i64::MAX)
    }

    pub(crate) fn duration(&mut self, value: &Spanned<String>, key: &str) -> Option<Duration> {
        match humantime::parse_duration(value.get_ref()) {
            Ok(d) if d > MAX_DURATION => {
                self.problem(
                    value.span(),
                    format!(
                        "`{key}` = {:?} is too long; durations are at most 30 days",
                        value.get_ref()
                    ),
                );
                None
            }
            Ok(d) => Some(d),
            Err(err) => {
                self.problem(
                    value.span(),
                    format!(
                        "`{key}` = {:?} is not a duration ({err}); write {DURATION_FORMAT}",
                        value.get_ref()
                    ),
                );
                None
            }
        }
    }

    pub(crate) fn positive_duration(
        &mut self,
        value: &Spanned<String>,
        key: &str,
    ) -> Option<Duration> {
        let d = self.duration(value, key)?;
        if d.is_zero() {
            self.problem(value.span(), format!("`{key}` must be longer than zero"));
            return None;
        }
        Some(d)
    }

    fn optional_duration(
        &mut self,
        value: &Option<Spanned<String>>,
        key: &str,
        default: Duration,
    ) -> Option<Duration> {
        value
            .as_ref()
            .map_or(Some(default), |v| self.positive_duration(v, key))
    }
}
