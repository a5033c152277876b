//! Containers: create, start, signal, inspect, read, update and remove one, and
//! volumes for them.

use std::collections::HashMap;
use std::time::Duration;

use bollard::errors::Error as BollardError;
use bollard::models::{
    ContainerCreateBody, ContainerInspectResponse, ContainerSummary, ContainerUpdateBody,
    EndpointSettings, HostConfig, NetworkingConfig, PortBinding, VolumeCreateRequest,
};
use bollard::query_parameters::{
    AttachContainerOptionsBuilder, CreateContainerOptionsBuilder, InspectContainerOptions,
    KillContainerOptionsBuilder, ListContainersOptionsBuilder, LogsOptionsBuilder,
    RemoveContainerOptionsBuilder, RestartContainerOptionsBuilder, StatsOptionsBuilder,
    StopContainerOptionsBuilder, UploadToContainerOptionsBuilder,
};
use futures_util::StreamExt;

use super::{call_failed, grace_secs, is_status, publish_ip, Engine, EngineError, KillOutcome};

/// A container to create.
#[derive(Debug, Clone, Default)]
pub struct ContainerSpec {
    pub name: String,
    pub image: String,
    pub cmd: Vec<String>,
    /// Replaces the image's entry point when not empty.
    pub entrypoint: Vec<String>,
    pub env: Vec<String>,
    pub labels: HashMap<String, String>,
    pub network: String,
    /// The name other containers reach it by on `network`.
    pub alias: String,
    /// A container port to publish at a free host port, on 127.0.0.1 (on every
    /// address of the engine's host when it is remote: [`published_host`](super::published_host)).
    pub publish: Option<u16>,
    /// The host port for `publish`; Docker picks one when `None`. A fixed port keeps
    /// the address when the container is restarted by a fault.
    pub host_port: Option<u16>,
    /// Volume mounts, `volume:/path`.
    pub binds: Vec<String>,
    /// Extra kernel capabilities, e.g. `NET_ADMIN`.
    pub cap_add: Vec<String>,
    /// Standard input open until the one client attached to it goes (the reaper's
    /// lifeline, see [`Engine::attach_stdin`]).
    pub stdin_once: bool,
}

impl Engine {
    pub async fn create(&self, spec: &ContainerSpec) -> Result<(), EngineError> {
        let port_key = |p: u16| format!("{p}/tcp");
        let port_bindings = spec.publish.map(|p| {
            HashMap::from([(
                port_key(p),
                Some(vec![PortBinding {
                    host_ip: Some(publish_ip().into()),
                    host_port: Some(spec.host_port.map_or_else(String::new, |p| p.to_string())),
                }]),
            )])
        });
        let body = ContainerCreateBody {
            image: Some(spec.image.clone()),
            cmd: (!spec.cmd.is_empty()).then(|| spec.cmd.clone()),
            entrypoint: (!spec.entrypoint.is_empty()).then(|| spec.entrypoint.clone()),
            env: Some(spec.env.clone()),
            labels: Some(spec.labels.clone()),
            open_stdin: spec.stdin_once.then_some(true),
            stdin_once: spec.stdin_once.then_some(true),
            attach_stdin: spec.stdin_once.then_some(true),
            exposed_ports: spec.publish.map(|p| vec![port_key(p)]),
            host_config: Some(HostConfig {
                network_mode: Some(spec.network.clone()),
                port_bindings,
                binds: (!spec.binds.is_empty()).then(|| spec.binds.clone()),
                cap_add: (!spec.cap_add.is_empty()).then(|| spec.cap_add.clone()),
                ..Default::default()
            }),
            // `container:<name>` shares another container's network, `host` the
            // host's, `none` has none of its own: no endpoint.
            networking_config: (!spec.network.starts_with("container:")
                && !matches!(spec.network.as_str(), "none" | "host"))
            .then(|| NetworkingConfig {
                endpoints_config: Some(HashMap::from([(
                    spec.network.clone(),
                    EndpointSettings {
                        aliases: Some(vec![spec.alias.clone()]),
                        ..Default::default()
                    },
                )])),
            }),
            ..Default::default()
        };
        let options = CreateContainerOptionsBuilder::default()
            .name(&spec.name)
            .build();
        self.docker
            .create_container(Some(options), body)
            .await
            .map(drop)
            .map_err(call_failed("create container", spec.name.clone()))
    }

    /// Attaches to the standard input of a created container: what is written goes
    /// to its process, and when this end closes (dropped, or the process holding it
    /// dies) its input ends, since it was created with `stdin_once`.
    pub async fn attach_stdin(
        &self,
        name: &str,
    ) -> Result<std::pin::Pin<Box<dyn tokio::io::AsyncWrite + Send>>, EngineError> {
        let options = AttachContainerOptionsBuilder::default()
            .stdin(true)
            .stream(true)
            .build();
        self.docker
            .attach_container(name, Some(options))
            .await
            .map(|attached| attached.input)
            .map_err(call_failed("attach to the input of", name))
    }

    /// Puts a tar archive into a created container, before it starts.
    pub async fn upload(&self, name: &str, dir: &str, tar: Vec<u8>) -> Result<(), EngineError> {
        let options = UploadToContainerOptionsBuilder::default().path(dir).build();
        self.docker
            .upload_to_container(name, Some(options), bollard::body_full(tar.into()))
            .await
            .map_err(call_failed("upload files into", name))
    }

    pub async fn start(&self, name: &str) -> Result<(), EngineError> {
        self.docker
            .start_container(name, None)
            .await
            .map_err(call_failed("start container", name))
    }

    /// Sends SIGKILL.
    pub async fn kill(&self, name: &str) -> Result<KillOutcome, EngineError> {
        let options = KillContainerOptionsBuilder::default()
            .signal("SIGKILL")
            .build();
        match self.docker.kill_container(name, Some(options)).await {
            Ok(()) => Ok(KillOutcome::Killed),
            Err(err) if is_status(&err, &[404, 409]) => Ok(KillOutcome::AlreadyGone),
            Err(source) => Err(call_failed("kill container", name)(source)),
        }
    }

    /// Sends SIGTERM, then SIGKILL after `grace` (whole seconds, rounded up).
    pub async fn stop(&self, name: &str, grace: Duration) -> Result<KillOutcome, EngineError> {
        let options = StopContainerOptionsBuilder::default()
            .t(grace_secs(grace))
            .build();
        match self.docker.stop_container(name, Some(options)).await {
            Ok(()) => Ok(KillOutcome::Killed),
            // 304: already stopped.
            Err(err) if is_status(&err, &[304, 404]) => Ok(KillOutcome::AlreadyGone),
            Err(source) => Err(call_failed("stop container", name)(source)),
        }
    }

    /// Stops (SIGTERM, SIGKILL after `grace`) and starts the same container.
    pub async fn restart(&self, name: &str, grace: Duration) -> Result<(), EngineError> {
        let options = RestartContainerOptionsBuilder::default()
            .t(grace_secs(grace))
            .build();
        self.docker
            .restart_container(name, Some(options))
            .await
            .map_err(call_failed("restart container", name))
    }

    /// Freezes every process of the container (cgroup freezer).
    pub async fn pause(&self, name: &str) -> Result<(), EngineError> {
        self.docker
            .pause_container(name)
            .await
            .map_err(call_failed("pause container", name))
    }

    /// Thaws a paused container; one that is not paused (409) is fine.
    pub async fn unpause(&self, name: &str) -> Result<(), EngineError> {
        match self.docker.unpause_container(name).await {
            Ok(()) => Ok(()),
            Err(err) if is_status(&err, &[409]) && !self.is_paused(name).await? => Ok(()),
            Err(source) => Err(call_failed("unpause container", name)(source)),
        }
    }

    /// Whether the container is paused now.
    pub async fn is_paused(&self, name: &str) -> Result<bool, EngineError> {
        let info = self.inspect(name).await?;
        Ok(info.state.and_then(|s| s.paused).unwrap_or(false))
    }

    /// Creates a named volume.
    pub async fn create_volume(
        &self,
        name: &str,
        labels: HashMap<String, String>,
    ) -> Result<(), EngineError> {
        let request = VolumeCreateRequest {
            name: Some(name.to_string()),
            labels: Some(labels),
            ..Default::default()
        };
        self.docker
            .create_volume(request)
            .await
            .map(drop)
            .map_err(call_failed("create volume", name))
    }

    /// Starts a created container, waits until it exits and removes it; returns its
    /// exit code and its output (for error messages).
    pub async fn run_to_end(&self, name: &str) -> Result<(i64, String), EngineError> {
        self.start(name).await?;
        let mut waits = self.docker.wait_container(
            name,
            None::<bollard::query_parameters::WaitContainerOptions>,
        );
        let code = match waits.next().await {
            Some(Ok(answer)) => answer.status_code,
            Some(Err(BollardError::DockerContainerWaitError { code, .. })) => code,
            Some(Err(source)) => {
                let _ = self.remove(name).await;
                return Err(call_failed("wait for container", name)(source));
            }
            None => -1,
        };
        let logs = self.logs_tail(name, 20).await;
        self.remove(name).await?;
        Ok((code, logs))
    }

    /// Removes a container, running or not; one that is already gone is fine.
    pub async fn remove(&self, name: &str) -> Result<(), EngineError> {
        let options = RemoveContainerOptionsBuilder::default()
            .force(true)
            .v(true)
            .build();
        match self.docker.remove_container(name, Some(options)).await {
            Ok(()) => Ok(()),
            Err(err) if is_status(&err, &[404]) => Ok(()),
            // 409: removal already in progress, which ends the same way.
            Err(err) if is_status(&err, &[409]) => Ok(()),
            Err(source) => Err(call_failed("remove container", name)(source)),
        }
    }

    pub async fn inspect(&self, name: &str) -> Result<ContainerInspectResponse, EngineError> {
        self.docker
            .inspect_container(name, None::<InspectContainerOptions>)
            .await
            .map_err(call_failed("inspect container", name))
    }

    /// Whether the container is running now.
    pub async fn is_running(&self, name: &str) -> Result<bool, EngineError> {
        let info = self.inspect(name).await?;
        Ok(info.state.and_then(|s| s.running).unwrap_or(false))
    }

    /// The container's address on `network`.
    /// A container that exited at once has none: then the error carries its exit
    /// code and last log lines, which say why.
    pub async fn ip(&self, name: &str, network: &str) -> Result<String, EngineError> {
        let info = self.inspect(name).await?;
        let state = info.state.clone().unwrap_or_default();
        let ip = info
            .network_settings
            .and_then(|n| n.networks)
            .and_then(|mut n| n.remove(network))
            .and_then(|e| e.ip_address)
            .filter(|ip| !ip.is_empty());
        match ip {
            Some(ip) => Ok(ip),
            None if state.running != Some(true) => {
                let logs = self.logs_tail(name, 20).await;
                Err(EngineError::State(format!(
                    "container {name} exited at start (exit code {}); its last log lines:\n{logs}",
                    state
                        .exit_code
                        .map_or_else(|| "unknown".to_string(), |c| c.to_string())
                )))
            }
            None => Err(EngineError::State(format!(
                "container {name} has no address on network {network}"
            ))),
        }
    }

    /// The host port Docker chose for a published container port.
    pub async fn published_port(&self, name: &str, port: u16) -> Result<u16, EngineError> {
        let info = self.inspect(name).await?;
        info.network_settings
            .and_then(|n| n.ports)
            .and_then(|mut p| p.remove(&format!("{port}/tcp")))
            .flatten()
            .and_then(|bindings| bindings.into_iter().find_map(|b| b.host_port?.parse().ok()))
            .ok_or_else(|| {
                EngineError::State(format!(
                    "container {name} has no published port for {port}/tcp"
                ))
            })
    }

    /// The last `lines` lines the container wrote, for error messages.
    pub async fn logs_tail(&self, name: &str, lines: usize) -> String {
        let options = LogsOptionsBuilder::default()
            .stdout(true)
            .stderr(true)
            .tail(&lines.to_string())
            .build();
        let mut stream = self.docker.logs(name, Some(options));
        let mut text = String::new();
        while let Some(Ok(chunk)) = stream.next().await {
            text.push_str(&chunk.to_string());
        }
        text
    }

    /// Every container, running or not, carrying all of `labels` (`key=value`).
    pub async fn containers_labelled(
        &self,
        labels: &[String],
    ) -> Result<Vec<ContainerSummary>, EngineError> {
        let filters = HashMap::from([("label", labels.to_vec())]);
        self.docker
            .list_containers(Some(
                ListContainersOptionsBuilder::default()
                    .all(true)
                    .filters(&filters)
                    .build(),
            ))
            .await
            .map_err(call_failed("list containers labelled", labels.join(", ")))
    }

    /// The container's memory usage now, as its cgroup counts it.
    pub async fn memory_usage(&self, name: &str) -> Result<u64, EngineError> {
        let options = StatsOptionsBuilder::default()
            .stream(false)
            .one_shot(true)
            .build();
        let mut stats = self.docker.stats(name, Some(options));
        match stats.next().await {
            Some(Ok(s)) => Ok(s.memory_stats.and_then(|m| m.usage).unwrap_or(0)),
            Some(Err(source)) => Err(call_failed("read the memory usage of", name)(source)),
            None => Err(EngineError::State(format!("no memory usage for {name}"))),
        }
    }

    /// Changes the container's resources through the update API; `action` is what
    /// the error says was being done ("restore the memory limit of").
    pub async fn update(
        &self,
        name: &str,
        action: &'static str,
        body: ContainerUpdateBody,
    ) -> Result<(), EngineError> {
        self.docker
            .update_container(name, body)
            .await
            .map_err(call_failed(action, name))
    }
}
