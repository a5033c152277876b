//! A cluster someone else started (`sessionstorm run --attach`): the containers a
//! label selector matches are the replicas, and nothing else is ever acted on.
//!
//! The harness creates, renames and removes none of the user's containers. A killed
//! or stopped replica comes back as the same container. Docker counts a kill or stop
//! through its API as a manual stop and then ignores the restart policy, so a
//! replica whose policy restarts it (`always`, `unless-stopped`, `on-failure`) is
//! killed the way a crash kills it: SIGKILL to its main process from the host, and
//! Docker restarts it by its policy. Any other replica is killed through the API and
//! started again by the harness (`docker start`), as is every stopped one. It is ready again when it runs, is `healthy` if
//! it has a Docker healthcheck, and the target URL answers its health path. The
//! only objects the harness makes are its network helpers (`blackhole`, `loss`,
//! `bandwidth`), labelled with the run and removed at teardown. Every fault that
//! holds a container is noted in the run's [`Journal`] before it is applied and
//! after it is reverted ([`super::hold`]), so the run's reaper can undo it should
//! the harness die.
//!
//! Slots are the matched containers sorted by name (`replica-0` is the first), and
//! every action resolves its victim through [`AttachedCluster::member`], the one
//! door to the matched set.
//!
//! The stack's store is never a container the harness acts on. Where `[attach]
//! store` names its Redis, the harness reaches it as it reaches its own: it watches
//! it ([`Lifecycle::store_watch`]), and `memory_pressure` sets its `maxmemory`
//! (`CONFIG SET`) after reading the value it had (`CONFIG GET`), noted as a hold so
//! that the reaper sets that value back should the harness die.

use std::collections::{BTreeSet, HashMap};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bollard::models::RestartPolicyNameEnum;
use tokio_util::sync::CancellationToken;

use super::docker::Started;
use super::engine::{Engine, EngineError, Removed};
use super::hold::{Endpoint, Hold, Journal, Note};
use super::limits::{self, Ended, Limits};
use super::netns::{self, Shaping};
use super::ready::{wait_ready, Probe, Waiting};
use super::{Acted, Action, Cluster, Lifecycle, Victim, RUN_LABEL};
use crate::error::Error;
use crate::plan::attach::{AttachPlan, COMPOSE_ONEOFF, COMPOSE_SERVICE};
use crate::plan::{faults, Plan};
use crate::store::resp;
use crate::target::Targets;

/// One matched container.
#[derive(Debug, Clone)]
pub struct Member {
    /// Actions address the container by id, so a container made later under the
    /// same name is never hit.
    pub id: String,
    pub name: String,
    /// Its restart policy, as Docker names it (`no` when it has none).
    pub restart_policy: String,
}

impl Member {
    /// Whether Docker itself starts the container again after a SIGKILL.
    fn restarted_by_docker(&self) -> bool {
        matches!(
            self.restart_policy.as_str(),
            "always" | "unless-stopped" | "on-failure"
        )
    }
}

/// The matched containers of a running stack, and the run acting on them.
#[derive(Debug)]
pub struct AttachedCluster {
    engine: Engine,
    run_id: String,
    members: Vec<Member>,
    url: String,
    /// The target URL's health path: answers 200 when the stack serves.
    health_url: String,
    ready_timeout: Duration,
    /// Client for readiness checks, separate from the load's.
    http: reqwest::Client,
    /// Cuts readiness waits short when the user interrupts the run.
    cancel: CancellationToken,
    /// Per slot killed or stopped: when the container had started before (to tell
    /// its restart from the old process) and whether Docker restarts it by itself.
    downed: Mutex<HashMap<usize, (Option<String>, bool)>>,
    /// Per slot taken off its networks: those networks, to come back on.
    detached: Mutex<HashMap<usize, Vec<Endpoint>>>,
    /// Per slot, the shaping of its traffic in force now, to undo at teardown at the latest.
    shaped: Mutex<HashMap<usize, BTreeSet<Shaping>>>,
    /// Per slot under a `cpu` or `oom` fault, its limits before, to put back.
    kept: Mutex<HashMap<usize, Limits>>,
    /// Numbers the short-lived helper containers of the network faults.
    helpers: AtomicU32,
    /// Where every hold on a matched container is noted, for the reaper to undo
    /// should the harness die.
    journal: Journal,
    /// The stack's Redis, `host:port` (`[attach] store`), if named.
    store: Option<String>,
    /// A Sentinel of that store, `host:port` (`[attach] sentinel`), if named: listened
    /// to, never told anything.
    sentinel: Option<String>,
    /// The store's `maxmemory` before a `memory_pressure` fault lowered it (the
    /// first value, if faults overlap), to put back.
    store_was: Mutex<Option<u64>>,
}

impl AttachedCluster {
    /// Finds the containers `attach` selects and checks that they look like the
    /// replicas of one running service. Nothing matching, or a match that is not
    /// running, is an infrastructure error (the stack is not up as described); a
    /// selector that also matches other services is bad input.
    pub async fn discover(
        engine: Engine,
        run_id: &str,
        plan: &Plan,
        attach: &AttachPlan,
        cancel: CancellationToken,
    ) -> Result<AttachedCluster, Error> {
        let labels: Vec<String> = attach
            .labels
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        let found = engine
            .containers_labelled(&labels)
            .await
            .map_err(Error::infra)?;
        let mut members = Vec::new();
        let mut images = Vec::new();
        let mut services = Vec::new();
        for summary in found {
            let Some(id) = summary.id else { continue };
            let info = engine.inspect(&id).await.map_err(Error::infra)?;
            let config = info.config.unwrap_or_default();
            let container_labels = config.labels.unwrap_or_default();
            if container_labels.get(COMPOSE_ONEOFF).map(String::as_str) == Some("True") {
                continue;
            }
            let name = info
                .name
                .unwrap_or_default()
                .trim_start_matches('/')
                .to_string();
            if container_labels.get(RUN_LABEL).map(String::as_str) == Some(run_id) {
                return Err(Error::Invalid(format!(
                    "container {name} carries this run's own label {RUN_LABEL}={run_id}, so teardown would remove it; choose another --run-id"
                )));
            }
            let state = info.state.unwrap_or_default();
            if state.running != Some(true) || state.paused == Some(true) {
                let status = state
                    .status
                    .map_or_else(|| "unknown".into(), |s| s.to_string());
                return Err(Error::infra(anyhow::anyhow!(
                    "container {name} matches {} but is not running (status {status}); start the stack first \
                     (`docker start {name}`, or `docker-compose up -d`)",
                    attach.selector()
                )));
            }
            let restart_policy = info
                .host_config
                .and_then(|h| h.restart_policy)
                .and_then(|p| p.name)
                .filter(|n| *n != RestartPolicyNameEnum::EMPTY)
                .map_or_else(|| "no".to_string(), |n| n.to_string());
            images.push((name.clone(), config.image.unwrap_or_default()));
            if let Some(service) = container_labels.get(COMPOSE_SERVICE) {
                services.push(service.clone());
            }
            members.push(Member {
                id,
                name,
                restart_policy,
            });
        }
        if members.is_empty() {
            return Err(Error::infra(anyhow::anyhow!(
                "no container matches {}: is the stack up? `docker ps -a --filter label={}` lists what matches",
                attach.selector(),
                labels.join(" --filter label=")
            )));
        }
        services.sort();
        services.dedup();
        if services.len() > 1 {
            return Err(Error::Invalid(format!(
                "{} matches containers of {} Compose services ({}): faults would hit the stack's store or proxy too; \
                 name the replicas' service with --service NAME (or `service` in [attach])",
                attach.selector(),
                services.len(),
                services.join(", ")
            )));
        }
        let first_image = &images[0].1;
        if images.iter().any(|(_, image)| image != first_image) {
            let list: Vec<String> = images.iter().map(|(n, i)| format!("{n} ({i})")).collect();
            return Err(Error::Invalid(format!(
                "{} matches containers of different images: {}; replicas are copies of one service, so narrow the selector",
                attach.selector(),
                list.join(", ")
            )));
        }
        members.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(AttachedCluster {
            engine,
            run_id: run_id.to_string(),
            members,
            url: attach.url.clone(),
            health_url: format!("{}{}", attach.url, plan.service.health_path),
            ready_timeout: plan.service.ready_timeout,
            http: crate::tls::probe_client(&plan.load.tls, Duration::from_secs(1)),
            cancel,
            downed: Mutex::default(),
            detached: Mutex::default(),
            shaped: Mutex::default(),
            kept: Mutex::default(),
            helpers: AtomicU32::new(0),
            journal: Journal::default(),
            store: attach.store.clone(),
            sentinel: attach.sentinel.clone(),
            store_was: Mutex::default(),
        })
    }

    /// Notes every hold in `journal` from now on.
    pub fn with_journal(mut self, journal: Journal) -> Self {
        self.journal = journal;
        self
    }

    /// Notes a hold before the fault is applied.
    async fn hold(&self, hold: Hold) {
        self.journal.note(&Note::Hold(hold)).await;
    }

    /// Notes a hold released after the fault was reverted.
    async fn release(&self, hold: Hold) {
        self.journal.note(&Note::Release(hold)).await;
    }

    /// The matched containers, in slot order.
    pub fn members(&self) -> &[Member] {
        &self.members
    }

    /// The container a victim names: only ever one of the matched set. The store and
    /// the balancer of an attached stack are not the harness's to hit.
    fn member(&self, victim: Victim) -> Result<(usize, &Member), EngineError> {
        match victim {
            Victim::Replica(slot) if slot < self.members.len() => Ok((slot, &self.members[slot])),
            other => Err(EngineError::State(format!(
                "attached, faults hit only the {} containers the selector matched; {other} is not one of them",
                self.members.len()
            ))),
        }
    }

    /// The store's address, where the victim is the store `[attach] store` names
    /// (validation refuses a store fault without it).
    fn store(&self, victim: Victim) -> Result<&str, EngineError> {
        match (&self.store, victim) {
            (Some(store), Victim::Store) => Ok(store),
            _ => Err(EngineError::State(format!(
                "attached, only {} act on the store, and only the one `[attach] store` names; not on the {victim}",
                faults::names_and(|e| e.attached == faults::Support::StoreNamed)
            ))),
        }
    }

    /// Lowers the store's `maxmemory` to `bytes`, having read and kept the value it
    /// had and noted the hold. A `CONFIG SET` that fails leaves the hold open, so the
    /// revert (or teardown, or the reaper) still sets the kept value back: one that
    /// timed out may have been applied.
    async fn lower_store_memory(&self, store: &str, bytes: u64) -> Result<String, EngineError> {
        let failed = |why: String| EngineError::State(format!("the store's maxmemory: {why}"));
        let kept = *self.store_was.lock().expect("store lock");
        let was = match kept {
            Some(was) => was,
            None => {
                let text = resp::config_get(store, "maxmemory").await.map_err(failed)?;
                let was = text.parse().map_err(|_| {
                    failed(format!(
                        "{store} says maxmemory {text:?}, not a number of bytes"
                    ))
                })?;
                *self.store_was.lock().expect("store lock") = Some(was);
                was
            }
        };
        self.hold(Hold::StoreMemory {
            store: store.to_string(),
            was,
        })
        .await;
        resp::config_set(store, "maxmemory", &bytes.to_string())
            .await
            .map_err(failed)?;
        Ok(resp::maxmemory_words(bytes))
    }

    /// Sets back the store's `maxmemory` kept by [`Self::lower_store_memory`], if a
    /// fault lowered it; says what it set.
    async fn store_memory_back(&self, store: &str) -> Result<Option<String>, EngineError> {
        let Some(was) = *self.store_was.lock().expect("store lock") else {
            return Ok(None);
        };
        let hold = Hold::StoreMemory {
            store: store.to_string(),
            was,
        };
        hold.undo(&self.engine, &self.run_id).await?;
        *self.store_was.lock().expect("store lock") = None;
        self.release(hold).await;
        Ok(Some(resp::maxmemory_words(was)))
    }

    /// When the container last started, as Docker says.
    async fn started_at(&self, member: &Member) -> Result<Option<String>, EngineError> {
        let info = self.engine.inspect(&member.id).await?;
        Ok(info.state.and_then(|s| s.started_at))
    }

    /// Waits until `member` runs (a process started after `before`, when given), is
    /// healthy if it has a healthcheck, and the target URL answers its health path.
    async fn wait_ready(
        &self,
        member: &Member,
        before: Option<&str>,
        deadline: Instant,
    ) -> Result<(), EngineError> {
        let container = || member.id.clone();
        let mut probes = vec![Probe::Running(container())];
        if let Some(before) = before {
            probes.push(Probe::RestartedSince {
                container: container(),
                before: before.to_string(),
            });
        }
        probes.push(Probe::Healthy(container()));
        probes.push(Probe::Http(self.health_url.clone()));
        let waiting = Waiting {
            subject: member.name.clone(),
            deadline,
            cancel: &self.cancel,
            late: format!(
                "{} was not ready in time (restart policy {})",
                member.name, member.restart_policy
            ),
            advice: "Raise `service.ready_timeout` if the service is slow to start.".into(),
        };
        wait_ready(&self.engine, &self.http, &probes, &waiting).await
    }

    /// After a kill or stop: lets Docker restart the container when its restart
    /// policy does (after a crash only), or starts it again; then waits until ready.
    async fn bring_back(
        &self,
        slot: usize,
        member: &Member,
        deadline: Instant,
    ) -> Result<(), EngineError> {
        let (before, docker_restarts) = self
            .downed
            .lock()
            .expect("downed lock")
            .remove(&slot)
            .unwrap_or((None, false));
        if !docker_restarts && !self.engine.is_running(&member.id).await? {
            self.engine.start(&member.id).await?;
        }
        self.release(down(member)).await;
        self.wait_ready(member, before.as_deref(), deadline).await
    }

    /// Takes the container off every network it is on, remembering each with its
    /// aliases and address.
    async fn detach(&self, slot: usize, member: &Member) -> Result<(), EngineError> {
        let info = self.engine.inspect(&member.id).await?;
        let short_id: String = member.id.chars().take(12).collect();
        let endpoints: Vec<Endpoint> = info
            .network_settings
            .and_then(|n| n.networks)
            .unwrap_or_default()
            .into_iter()
            .map(|(network, settings)| Endpoint {
                // The default bridge takes no aliases; Docker adds the short id itself.
                aliases: match network.as_str() {
                    "bridge" => Vec::new(),
                    _ => (settings.aliases.unwrap_or_default().into_iter())
                        .filter(|a| *a != short_id)
                        .collect(),
                },
                ip: settings.ip_address.filter(|ip| !ip.is_empty()),
                network,
            })
            .collect();
        if endpoints.is_empty() {
            return Err(EngineError::State(format!(
                "{} is on no network it can be taken off",
                member.name
            )));
        }
        self.detached
            .lock()
            .expect("detached lock")
            .insert(slot, endpoints.clone());
        self.hold(Hold::Detached {
            container: member.id.clone(),
            endpoints: endpoints.clone(),
        })
        .await;
        for endpoint in &endpoints {
            self.engine
                .disconnect(&endpoint.network, &member.id)
                .await?;
        }
        Ok(())
    }

    /// Puts the container back on the networks [`detach`](Self::detach) took it off.
    async fn reattach(&self, slot: usize, member: &Member) -> Result<(), EngineError> {
        let endpoints = self
            .detached
            .lock()
            .expect("detached lock")
            .get(&slot)
            .cloned()
            .unwrap_or_default();
        let hold = Hold::Detached {
            container: member.id.clone(),
            endpoints,
        };
        hold.undo(&self.engine, &self.run_id).await?;
        self.detached.lock().expect("detached lock").remove(&slot);
        self.release(hold).await;
        Ok(())
    }

    /// Starts (`on`) or undoes `shaping` of the container's traffic.
    async fn shape(
        &self,
        slot: usize,
        member: &Member,
        shaping: Shaping,
        on: bool,
    ) -> Result<(), EngineError> {
        let hold = Hold::Shaped {
            container: member.id.clone(),
            shaping,
        };
        if on {
            let n = self.helpers.fetch_add(1, Ordering::Relaxed);
            let helper = format!("sessionstorm-{}-nettools-{n}", self.run_id);
            let labels = super::run_labels(&self.run_id, "helper");
            self.hold(hold.clone()).await;
            let applied =
                netns::shape(&self.engine, &helper, labels, &member.id, shaping, true).await;
            if let Err(err) = applied {
                self.release(hold).await;
                return Err(err);
            }
            let mut shaped = self.shaped.lock().expect("shaped lock");
            shaped.entry(slot).or_default().insert(shaping);
        } else {
            hold.undo(&self.engine, &self.run_id).await?;
            (self.shaped.lock().expect("shaped lock"))
                .entry(slot)
                .or_default()
                .remove(&shaping);
            self.release(hold).await;
        }
        Ok(())
    }

    /// Keeps the container's limits before a fault changes them (the first ones, if a
    /// fault is already holding it), notes the hold, and returns them.
    async fn keep_limits(
        &self,
        slot: usize,
        member: &Member,
        cpu: bool,
    ) -> Result<Limits, EngineError> {
        let kept = self.kept.lock().expect("kept lock").get(&slot).copied();
        let was = match kept {
            Some(was) => was,
            None => {
                let was = limits::current(&self.engine, &member.id).await?;
                self.kept.lock().expect("kept lock").insert(slot, was);
                was
            }
        };
        self.hold(Hold::Limited {
            container: member.id.clone(),
            was,
            cpu,
        })
        .await;
        Ok(was)
    }

    /// Puts back the limits kept for the slot, if a fault changed them.
    /// (`cpu`: the CPU limits, else the memory limit.)
    async fn put_limits_back(
        &self,
        slot: usize,
        member: &Member,
        cpu: bool,
    ) -> Result<(), EngineError> {
        let was = self.kept.lock().expect("kept lock").get(&slot).copied();
        if let Some(was) = was {
            let hold = Hold::Limited {
                container: member.id.clone(),
                was,
                cpu,
            };
            hold.undo(&self.engine, &self.run_id).await?;
            self.kept.lock().expect("kept lock").remove(&slot);
            self.release(hold).await;
        }
        Ok(())
    }

    /// Freezes (`on`) or thaws the container.
    async fn pause(&self, member: &Member, on: bool) -> Result<(), EngineError> {
        let hold = Hold::Paused {
            container: member.id.clone(),
        };
        if on {
            self.hold(hold.clone()).await;
            let applied = self.engine.pause(&member.id).await;
            if applied.is_err() {
                self.release(hold).await;
            }
            applied
        } else {
            hold.undo(&self.engine, &self.run_id).await?;
            self.release(hold).await;
            Ok(())
        }
    }

    /// Undoes whatever fault still holds the container. Chaos reverts its faults
    /// itself; this is for a run cut short (second Ctrl-C) and for replicas left down
    /// by `after_kill = "none"`: the user's stack is left running as it was found.
    async fn restore(&self, slot: usize, member: &Member) -> Result<(), EngineError> {
        if self.engine.is_paused(&member.id).await? {
            self.pause(member, false).await?;
        }
        let detached = self
            .detached
            .lock()
            .expect("detached lock")
            .contains_key(&slot);
        if detached {
            self.reattach(slot, member).await?;
        }
        let shaped = self
            .shaped
            .lock()
            .expect("shaped lock")
            .get(&slot)
            .cloned()
            .unwrap_or_default();
        for shaping in shaped {
            self.shape(slot, member, shaping, false).await?;
        }
        let kept = self.kept.lock().expect("kept lock").get(&slot).copied();
        if let Some(was) = kept {
            for cpu in [true, false] {
                let hold = Hold::Limited {
                    container: member.id.clone(),
                    was,
                    cpu,
                };
                hold.undo(&self.engine, &self.run_id).await?;
                self.release(hold).await;
            }
            self.kept.lock().expect("kept lock").remove(&slot);
        }
        let downed = self.downed.lock().expect("downed lock").remove(&slot);
        if downed.is_some() {
            let hold = down(member);
            hold.undo(&self.engine, &self.run_id).await?;
            self.release(hold).await;
        }
        Ok(())
    }
}

impl Lifecycle for AttachedCluster {
    /// Nothing to start: waits until every matched container is ready and the URL answers.
    async fn start(&self) -> Result<Started, EngineError> {
        let began = Instant::now();
        for member in &self.members {
            self.wait_ready(member, None, began + self.ready_timeout)
                .await?;
        }
        Ok(Started {
            url: self.url.clone(),
            ready_after: began.elapsed(),
            targets: Arc::new(Targets::one(&self.url)),
        })
    }

    async fn wait_healthy(
        &self,
        timeout: Duration,
        left_down: &[usize],
    ) -> Result<Duration, EngineError> {
        let began = Instant::now();
        for (slot, member) in self.members.iter().enumerate() {
            if !left_down.contains(&slot) {
                self.wait_ready(member, None, began + timeout).await?;
            }
        }
        Ok(began.elapsed())
    }

    /// Undoes any fault still holding a matched container or the store, then removes
    /// the run's helpers only: the matched containers never carry the run's label
    /// (checked in [`AttachedCluster::discover`]).
    async fn teardown(&self) -> Result<Removed, EngineError> {
        if let Some(store) = &self.store {
            if let Err(err) = self.store_memory_back(store).await {
                eprintln!("warning: could not put the store's maxmemory back: {err}");
            }
        }
        for (slot, member) in self.members.iter().enumerate() {
            if let Err(err) = self.restore(slot, member).await {
                eprintln!(
                    "warning: could not put {} back as it was found: {err}",
                    member.name
                );
            }
        }
        self.engine.remove_run(&self.run_id).await
    }

    /// The store `[attach] store` names, at that address, and the Sentinel `[attach]
    /// sentinel` names, listened to there.
    fn store_watch(&self) -> Option<crate::store::watch::Watched> {
        use crate::store::watch::{fixed, Protocol, Watched};
        let store = self.store.clone()?;
        let mut watched = Watched::single(STORE, Protocol::Redis, fixed(store));
        watched.sentinels = (self.sentinel.iter())
            .map(|addr| (SENTINEL.to_string(), fixed(addr.clone())))
            .collect();
        Some(watched)
    }
}

impl Cluster for AttachedCluster {
    fn replicas(&self) -> usize {
        self.members.len()
    }

    async fn act(&self, action: Action, victim: Victim) -> Result<Acted, EngineError> {
        // The store is reached at its address, never as a container.
        let store_detail = match action {
            Action::StoreMemory(bytes) => {
                Some(self.lower_store_memory(self.store(victim)?, bytes).await?)
            }
            Action::StoreMemoryBack => self.store_memory_back(self.store(victim)?).await?,
            _ => return self.act_on_member(action, victim).await,
        };
        let mut acted = Acted::on(STORE.to_string());
        acted.detail = store_detail;
        Ok(acted)
    }

    async fn ended(&self, victim: Victim) -> Result<Option<Ended>, EngineError> {
        let (_, member) = self.member(victim)?;
        limits::ended(&self.engine, &member.id).await
    }

    async fn ping(&self) -> Result<(), EngineError> {
        self.engine.ping().await
    }
}

impl AttachedCluster {
    /// Applies an action to one of the matched containers.
    async fn act_on_member(&self, action: Action, victim: Victim) -> Result<Acted, EngineError> {
        let began = Instant::now();
        let deadline = began + self.ready_timeout;
        let (slot, member) = self.member(victim)?;
        let mut acted = Acted::on(member.name.clone());
        let down_noted = |docker_restarts: bool, before: Option<String>| {
            self.downed
                .lock()
                .expect("downed lock")
                .insert(slot, (before, docker_restarts));
        };
        match action {
            Action::Kill => {
                self.hold(down(member)).await;
                let state = (self.engine.inspect(&member.id).await?.state).unwrap_or_default();
                let running = state.running == Some(true);
                let crashed = match state.pid {
                    Some(pid) if running && member.restarted_by_docker() => {
                        match crash(pid, &member.id) {
                            Ok(()) => true,
                            Err(why) => {
                                tracing::warn!(container = %member.name, %why, "cannot crash it; killing it through the API");
                                false
                            }
                        }
                    }
                    _ => false,
                };
                down_noted(crashed, state.started_at);
                if !crashed {
                    acted.outcome = self.engine.kill(&member.id).await?;
                }
            }
            Action::Stop(grace) => {
                self.hold(down(member)).await;
                down_noted(false, self.started_at(member).await?);
                acted.outcome = self.engine.stop(&member.id, grace).await?;
            }
            Action::Restart(grace) => {
                let before = self.started_at(member).await?;
                self.hold(down(member)).await;
                self.engine.restart(&member.id, grace).await?;
                self.release(down(member)).await;
                self.wait_ready(member, before.as_deref(), deadline).await?;
                acted.ready_after = Some(began.elapsed());
            }
            // No replacement containers when attached: the same one comes back.
            Action::StartAgain | Action::Replace => {
                self.bring_back(slot, member, deadline).await?;
                acted.ready_after = Some(began.elapsed());
            }
            Action::Pause => self.pause(member, true).await?,
            Action::Unpause => self.pause(member, false).await?,
            Action::Disconnect => self.detach(slot, member).await?,
            Action::Reconnect => self.reattach(slot, member).await?,
            Action::BlackholeOn => self.shape(slot, member, Shaping::Blackhole, true).await?,
            Action::BlackholeOff => self.shape(slot, member, Shaping::Blackhole, false).await?,
            Action::ShapeOn(shaping) => self.shape(slot, member, shaping, true).await?,
            Action::ShapeOff(shaping) => self.shape(slot, member, shaping, false).await?,
            Action::Throttle(millicores) => {
                let was = self.keep_limits(slot, member, true).await?;
                limits::throttle(&self.engine, &member.id, was, millicores).await?
            }
            Action::LimitMemory(bytes) => {
                self.keep_limits(slot, member, false).await?;
                let limit = limits::limit_memory(&self.engine, &member.id, bytes).await?;
                acted.detail = Some(format!("memory limit {:.1} MiB", limit as f64 / 1048576.0));
            }
            Action::Unthrottle => self.put_limits_back(slot, member, true).await?,
            Action::UnlimitMemory => self.put_limits_back(slot, member, false).await?,
            Action::Delay { .. }
            | Action::Undelay
            | Action::StoreMemory(_)
            | Action::StoreMemoryBack
            | Action::Failover
            | Action::Isolate
            | Action::Rejoin => {
                let refused = faults::refusals("on an attached stack", |e| e.attached);
                return Err(EngineError::State(refused));
            }
            Action::ShapePeerOn(..) | Action::ShapePeerOff(..) => {
                return Err(EngineError::State(format!(
                    "a fault with a `peer` cannot run on an attached stack: {}",
                    faults::PEER_NEEDS_THE_RUNS_STORE
                )));
            }
        }
        Ok(acted)
    }
}

/// The store, as its faults' records and its timeline name it.
const STORE: &str = "store";
/// The `[attach] sentinel`, as the store's timeline names the lines it heard from it.
const SENTINEL: &str = "sentinel";

/// The hold of a killed or stopped member.
fn down(member: &Member) -> Hold {
    Hold::Down {
        container: member.id.clone(),
    }
}

/// SIGKILLs a container's main process from the host, as a crash or the OOM killer
/// would, so that Docker's restart policy applies (it does not after a kill through
/// its API). The process is first shown to be the container's (its cgroup names the
/// container id), so nothing else is ever signalled; where that cannot be shown (an
/// engine on another machine, a harness in another PID namespace) this fails.
fn crash(pid: i64, id: &str) -> Result<(), String> {
    let cgroup = std::fs::read_to_string(format!("/proc/{pid}/cgroup"))
        .map_err(|e| format!("cannot read the cgroup of process {pid}: {e}"))?;
    if pid <= 1 || !cgroup.contains(id) {
        return Err(format!("process {pid} is not this container's"));
    }
    let pid = libc::pid_t::try_from(pid).map_err(|e| e.to_string())?;
    // SAFETY: kill(2) takes plain integers and touches no memory of ours.
    if unsafe { libc::kill(pid, libc::SIGKILL) } != 0 {
        return Err(format!(
            "SIGKILL to process {pid}: {}",
            std::io::Error::last_os_error()
        ));
    }
    Ok(())
}
