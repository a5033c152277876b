//! A run's objects found by their labels, and removed: teardown, `cleanup` and the
//! reaper all use this one sweep.

use std::collections::HashMap;

use bollard::models::{Config, ContainerSummary, Network, Service, Volume};
use bollard::query_parameters::{
    ListConfigsOptionsBuilder, ListNetworksOptionsBuilder, ListServicesOptionsBuilder,
    ListVolumesOptionsBuilder, RemoveVolumeOptionsBuilder,
};

use super::{call_failed, is_status, swarm_only, Engine, EngineError};
use crate::cluster::{REAPER_ROLE, ROLE_LABEL, RUN_LABEL};

/// Objects found (and, unless dry-run, removed) by a label selector.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Removed {
    /// Swarm services and configs (the swarm engine's), gone first so that Swarm
    /// starts no task in place of a container removed next.
    pub services: Vec<String>,
    pub configs: Vec<String>,
    pub containers: Vec<String>,
    pub networks: Vec<String>,
    pub volumes: Vec<String>,
}

impl Removed {
    /// Every name, services first.
    pub fn names(&self) -> impl Iterator<Item = &String> {
        (self.services.iter())
            .chain(&self.configs)
            .chain(&self.containers)
            .chain(&self.networks)
            .chain(&self.volumes)
    }

    /// "2 containers, 1 network and 1 volume", services and configs only when any.
    pub fn describe(&self) -> String {
        let count = |n: usize, what: &str| format!("{n} {what}{}", if n == 1 { "" } else { "s" });
        let mut parts = Vec::new();
        if !self.services.is_empty() {
            parts.push(count(self.services.len(), "service"));
        }
        if !self.configs.is_empty() {
            parts.push(count(self.configs.len(), "config"));
        }
        parts.push(count(self.containers.len(), "container"));
        parts.push(count(self.networks.len(), "network"));
        let last = count(self.volumes.len(), "volume");
        format!("{} and {last}", parts.join(", "))
    }
}

/// Objects as Docker lists them, with their labels and (containers) state.
#[derive(Debug, Clone, Default)]
pub struct Labelled {
    /// Empty when this engine is no swarm manager.
    pub services: Vec<Service>,
    pub configs: Vec<Config>,
    pub containers: Vec<ContainerSummary>,
    pub networks: Vec<Network>,
    pub volumes: Vec<Volume>,
}

impl Engine {
    /// Removes every container, network and volume whose labels match `label` (`key` or
    /// `key=value`). Only labelled objects are ever touched.
    pub async fn remove_labelled(
        &self,
        label: &str,
        dry_run: bool,
    ) -> Result<Removed, EngineError> {
        self.sweep(label, dry_run, |_| false).await
    }

    /// Removes every object of run `run_id` but its reaper, which goes last, once
    /// the run has said so (`crate::reaper`).
    pub async fn remove_run(&self, run_id: &str) -> Result<Removed, EngineError> {
        let is_reaper = |c: &ContainerSummary| {
            (c.labels.as_ref()).and_then(|l| l.get(ROLE_LABEL)) == Some(&REAPER_ROLE.to_string())
        };
        self.sweep(&format!("{RUN_LABEL}={run_id}"), false, is_reaper)
            .await
    }

    /// Every service, config, container, network and volume whose labels match `label`.
    pub async fn labelled(&self, label: &str) -> Result<Labelled, EngineError> {
        let containers = self.containers_labelled(&[label.to_string()]).await?;
        let filters = HashMap::from([("label", vec![label])]);
        let services = swarm_only(
            (self.docker)
                .list_services(Some(
                    ListServicesOptionsBuilder::default()
                        .filters(&filters)
                        .build(),
                ))
                .await,
            "list services labelled",
            label,
        )?;
        let configs = swarm_only(
            (self.docker)
                .list_configs(Some(
                    ListConfigsOptionsBuilder::default()
                        .filters(&filters)
                        .build(),
                ))
                .await,
            "list configs labelled",
            label,
        )?;
        let networks = self
            .docker
            .list_networks(Some(
                ListNetworksOptionsBuilder::default()
                    .filters(&filters)
                    .build(),
            ))
            .await
            .map_err(call_failed("list networks labelled", label))?;
        let volumes = self
            .docker
            .list_volumes(Some(
                ListVolumesOptionsBuilder::default()
                    .filters(&filters)
                    .build(),
            ))
            .await
            .map_err(call_failed("list volumes labelled", label))?
            .volumes
            .unwrap_or_default();
        Ok(Labelled {
            services,
            configs,
            containers,
            networks,
            volumes,
        })
    }

    /// [`remove_labelled`](Self::remove_labelled), leaving the containers `keep` picks.
    async fn sweep(
        &self,
        label: &str,
        dry_run: bool,
        keep: impl Fn(&ContainerSummary) -> bool,
    ) -> Result<Removed, EngineError> {
        let Labelled {
            services,
            configs,
            mut containers,
            networks,
            volumes,
        } = self.labelled(label).await?;
        containers.retain(|c| !keep(c));
        let mut removed = Removed::default();
        for service in services {
            let Some(name) = service.spec.and_then(|s| s.name) else {
                continue;
            };
            if !dry_run {
                self.remove_service(&name).await?;
            }
            removed.services.push(name);
        }
        for config in configs {
            let (Some(id), Some(name)) = (config.id, config.spec.and_then(|s| s.name)) else {
                continue;
            };
            if !dry_run {
                match self.docker.delete_config(&id).await {
                    Ok(()) => {}
                    Err(err) if is_status(&err, &[404]) => {}
                    Err(source) => return Err(call_failed("remove config", name)(source)),
                }
            }
            removed.configs.push(name);
        }
        for container in containers {
            let Some(name) = container
                .names
                .and_then(|n| n.into_iter().next())
                .map(|n| n.trim_start_matches('/').to_string())
            else {
                continue;
            };
            if !dry_run {
                self.remove(&name).await?;
            }
            removed.containers.push(name);
        }
        for network in networks {
            let Some(name) = network.name else { continue };
            if !dry_run {
                self.remove_network(&name).await?;
            }
            removed.networks.push(name);
        }
        // After the containers, which may still use them.
        for volume in volumes {
            if !dry_run {
                let options = RemoveVolumeOptionsBuilder::default().force(true).build();
                match self.docker.remove_volume(&volume.name, Some(options)).await {
                    Ok(()) => {}
                    Err(err) if is_status(&err, &[404]) => {}
                    Err(source) => return Err(call_failed("remove volume", volume.name)(source)),
                }
            }
            removed.volumes.push(volume.name);
        }
        removed.services.sort();
        removed.configs.sort();
        removed.containers.sort();
        removed.networks.sort();
        removed.volumes.sort();
        Ok(removed)
    }
}
