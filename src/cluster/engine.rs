//! A thin wrapper around bollard: one method per Docker operation the harness uses,
//! each failing with an error that names the operation and the object.
//!
//! Bollard's own errors say what the HTTP call returned; ours say which container we
//! were killing. Outcomes that are normal during chaos (killing a container that is
//! already gone, removing one that was removed) are results here, not errors.

use std::collections::HashMap;
use std::time::Duration;

use bollard::errors::Error as BollardError;
use bollard::models::{
    ContainerCreateBody, EndpointIpamConfig, EndpointSettings, HostConfig, Ipam, IpamConfig,
    NetworkConnectRequest, NetworkCreateRequest, NetworkDisconnectRequest, NetworkingConfig,
    PortBinding, VolumeCreateRequest,
};
use bollard::query_parameters::{
    AttachContainerOptionsBuilder, CreateContainerOptionsBuilder, InspectContainerOptions,
    KillContainerOptionsBuilder, ListConfigsOptionsBuilder, ListContainersOptionsBuilder,
    ListNetworksOptionsBuilder, ListServicesOptionsBuilder, ListVolumesOptionsBuilder,
    LogsOptionsBuilder, RemoveContainerOptionsBuilder, RemoveVolumeOptionsBuilder,
    RestartContainerOptionsBuilder, StopContainerOptionsBuilder, UploadToContainerOptionsBuilder,
};
use bollard::Docker;
use futures_util::StreamExt;

/// A failed Docker operation.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error(
        "cannot reach the Docker engine ({host}): {reason}\n\
         Is it running and may this user use it? Check with `docker info`; \
         set DOCKER_HOST if the engine listens elsewhere."
    )]
    Unreachable { host: String, reason: String },
    #[error("Docker could not {action} {object}: {source}")]
    Call {
        action: &'static str,
        object: String,
        #[source]
        source: BollardError,
    },
    #[error("{0}")]
    State(String),
}

/// What a kill found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KillOutcome {
    Killed,
    /// The container had already stopped or been removed: an expected outcome in chaos.
    AlreadyGone,
}

impl KillOutcome {
    pub fn name(self) -> &'static str {
        match self {
            KillOutcome::Killed => "killed",
            KillOutcome::AlreadyGone => "already_gone",
        }
    }
}

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
    /// address of the engine's host when it is remote: [`published_host`]).
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
    pub services: Vec<bollard::models::Service>,
    pub configs: Vec<bollard::models::Config>,
    pub containers: Vec<bollard::models::ContainerSummary>,
    pub networks: Vec<bollard::models::Network>,
    pub volumes: Vec<bollard::models::Volume>,
}

/// A connected, version-negotiated Docker client.
#[derive(Debug, Clone)]
pub struct Engine {
    docker: Docker,
}

/// Where the engine's socket is mounted in the harness's own helper containers (the
/// reaper, the swarm engine's agent jobs), and where they connect, as `DOCKER_HOST`
/// is unset there.
pub const SOCKET_IN_CONTAINER: &str = "/var/run/docker.sock";

/// The engine's socket on this host, when the engine is reached through one: a
/// helper that talks to the engine needs it mounted. `None` for an engine over TCP.
pub fn host_socket() -> Option<String> {
    match std::env::var("DOCKER_HOST") {
        Ok(host) if !host.is_empty() => host.strip_prefix("unix://").map(String::from),
        _ => Some(SOCKET_IN_CONTAINER.to_string()),
    }
}

/// The engine's host when it is reached over TCP (`DOCKER_HOST=tcp://HOST:PORT`):
/// its containers' published ports are on that machine, not on this one.
fn remote_host() -> Option<String> {
    tcp_host(&std::env::var("DOCKER_HOST").ok()?)
}

/// The host of a `tcp://HOST[:PORT][/…]` engine address; `None` for any other kind.
fn tcp_host(docker_host: &str) -> Option<String> {
    let rest = docker_host.strip_prefix("tcp://")?;
    let authority = rest.split('/').next().unwrap_or(rest);
    let name = match authority.rsplit_once(':') {
        Some((name, port)) if port.chars().all(|c| c.is_ascii_digit()) => name,
        _ => authority,
    };
    Some(
        name.trim_start_matches('[')
            .trim_end_matches(']')
            .to_string(),
    )
}

/// Where the harness reaches a published port: the engine's own host over TCP,
/// 127.0.0.1 for an engine on this machine.
pub fn published_host() -> String {
    remote_host().unwrap_or_else(|| "127.0.0.1".to_string())
}

/// The address ports are published on: loopback on this machine (nothing else
/// reaches the run), every address of a remote engine's host (the harness is not
/// on its loopback).
fn publish_ip() -> &'static str {
    if remote_host().is_some() {
        "0.0.0.0"
    } else {
        "127.0.0.1"
    }
}

/// How long a network removal waits for its last endpoints to go.
const NETWORK_BUSY: Duration = Duration::from_secs(15);

/// How long connecting may take before we say the engine is unreachable.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);

/// Docker takes grace periods in whole seconds.
fn grace_secs(grace: Duration) -> i32 {
    grace.as_secs_f64().ceil().min(3600.0) as i32
}

/// A list of Swarm objects, empty where this engine is no swarm manager (503): it
/// has no services nor configs then.
fn swarm_only<T>(
    answer: Result<Vec<T>, BollardError>,
    action: &'static str,
    label: &str,
) -> Result<Vec<T>, EngineError> {
    match answer {
        Ok(found) => Ok(found),
        Err(err) if is_status(&err, &[503]) => Ok(Vec::new()),
        Err(source) => Err(EngineError::Call {
            action,
            object: label.to_string(),
            source,
        }),
    }
}

fn is_status(err: &BollardError, codes: &[u16]) -> bool {
    matches!(err, BollardError::DockerResponseServerError { status_code, .. } if codes.contains(status_code))
}

impl Engine {
    /// Connects to the engine named by DOCKER_HOST (or the local socket) and agrees on
    /// an API version with it, since engines on different machines speak different ones.
    pub async fn connect() -> Result<Engine, EngineError> {
        let host =
            std::env::var("DOCKER_HOST").unwrap_or_else(|_| "unix:///var/run/docker.sock".into());
        let unreachable = |reason: String| EngineError::Unreachable {
            host: host.clone(),
            reason,
        };
        let docker = Docker::connect_with_defaults()
            .map_err(|e| unreachable(e.to_string()))?
            .with_timeout(Duration::from_secs(60));
        let negotiated = tokio::time::timeout(CONNECT_TIMEOUT, async {
            let docker = docker.negotiate_version().await?;
            docker.ping().await?;
            Ok::<_, BollardError>(docker)
        })
        .await
        .map_err(|_| unreachable(format!("no answer within {CONNECT_TIMEOUT:?}")))?
        .map_err(|e| unreachable(e.to_string()))?;
        Ok(Engine { docker: negotiated })
    }

    pub fn docker(&self) -> &Docker {
        &self.docker
    }

    /// Creates a bridge network whose subnet is pinned (user-configured), so a
    /// container taken off it can come back with the address it had, as after a real
    /// partition. Docker picks a free subnet first; the network is then made again
    /// with that subnet stated. Should that fail (another network took it in
    /// between), the network is made without a stated subnet and reconnects get a
    /// fresh address.
    pub async fn create_network(
        &self,
        name: &str,
        labels: HashMap<String, String>,
    ) -> Result<(), EngineError> {
        let request = |ipam: Option<Ipam>| NetworkCreateRequest {
            name: name.to_string(),
            driver: Some("bridge".into()),
            labels: Some(labels.clone()),
            ipam,
            ..Default::default()
        };
        let failed = |source| EngineError::Call {
            action: "create network",
            object: name.to_string(),
            source,
        };
        self.docker
            .create_network(request(None))
            .await
            .map_err(failed)?;
        let chosen = self
            .docker
            .inspect_network(name, None)
            .await
            .ok()
            .and_then(|n| n.ipam?.config?.into_iter().next())
            .filter(|c| c.subnet.is_some());
        let Some(config) = chosen else {
            return Ok(());
        };
        self.docker.remove_network(name).await.map_err(failed)?;
        let pinned = Ipam {
            config: Some(vec![IpamConfig {
                subnet: config.subnet,
                gateway: config.gateway,
                ..Default::default()
            }]),
            ..Default::default()
        };
        if self
            .docker
            .create_network(request(Some(pinned)))
            .await
            .is_ok()
        {
            return Ok(());
        }
        self.docker
            .create_network(request(None))
            .await
            .map(drop)
            .map_err(failed)
    }

    /// The gateway address of `network`: the host's side of its bridge.
    pub async fn gateway(&self, network: &str) -> Result<String, EngineError> {
        let info = self
            .docker
            .inspect_network(network, None)
            .await
            .map_err(|source| EngineError::Call {
                action: "inspect network",
                object: network.to_string(),
                source,
            })?;
        info.ipam
            .and_then(|i| i.config)
            .and_then(|c| c.into_iter().find_map(|c| c.gateway))
            .filter(|g| !g.is_empty())
            .ok_or_else(|| EngineError::State(format!("network {network} has no gateway address")))
    }

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
            // `container:<name>` shares another container's network, `none` has none of
            // its own: no endpoint.
            networking_config: (!spec.network.starts_with("container:") && spec.network != "none")
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
            .map_err(|source| EngineError::Call {
                action: "create container",
                object: spec.name.clone(),
                source,
            })
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
            .map_err(|source| EngineError::Call {
                action: "attach to the input of",
                object: name.to_string(),
                source,
            })
    }

    /// Puts a tar archive into a created container, before it starts.
    pub async fn upload(&self, name: &str, dir: &str, tar: Vec<u8>) -> Result<(), EngineError> {
        let options = UploadToContainerOptionsBuilder::default().path(dir).build();
        self.docker
            .upload_to_container(name, Some(options), bollard::body_full(tar.into()))
            .await
            .map_err(|source| EngineError::Call {
                action: "upload files into",
                object: name.to_string(),
                source,
            })
    }

    pub async fn start(&self, name: &str) -> Result<(), EngineError> {
        self.docker
            .start_container(name, None)
            .await
            .map_err(|source| EngineError::Call {
                action: "start container",
                object: name.to_string(),
                source,
            })
    }

    /// Sends SIGKILL.
    pub async fn kill(&self, name: &str) -> Result<KillOutcome, EngineError> {
        let options = KillContainerOptionsBuilder::default()
            .signal("SIGKILL")
            .build();
        match self.docker.kill_container(name, Some(options)).await {
            Ok(()) => Ok(KillOutcome::Killed),
            Err(err) if is_status(&err, &[404, 409]) => Ok(KillOutcome::AlreadyGone),
            Err(source) => Err(EngineError::Call {
                action: "kill container",
                object: name.to_string(),
                source,
            }),
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
            Err(source) => Err(EngineError::Call {
                action: "stop container",
                object: name.to_string(),
                source,
            }),
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
            .map_err(|source| EngineError::Call {
                action: "restart container",
                object: name.to_string(),
                source,
            })
    }

    /// Freezes every process of the container (cgroup freezer).
    pub async fn pause(&self, name: &str) -> Result<(), EngineError> {
        self.docker
            .pause_container(name)
            .await
            .map_err(|source| EngineError::Call {
                action: "pause container",
                object: name.to_string(),
                source,
            })
    }

    /// Thaws a paused container; one that is not paused (409) is fine.
    pub async fn unpause(&self, name: &str) -> Result<(), EngineError> {
        match self.docker.unpause_container(name).await {
            Ok(()) => Ok(()),
            Err(err) if is_status(&err, &[409]) && !self.is_paused(name).await? => Ok(()),
            Err(source) => Err(EngineError::Call {
                action: "unpause container",
                object: name.to_string(),
                source,
            }),
        }
    }

    /// Whether the container is paused now.
    pub async fn is_paused(&self, name: &str) -> Result<bool, EngineError> {
        let info = self.inspect(name).await?;
        Ok(info.state.and_then(|s| s.paused).unwrap_or(false))
    }

    /// Takes the container off `network`.
    pub async fn disconnect(&self, network: &str, name: &str) -> Result<(), EngineError> {
        let request = NetworkDisconnectRequest {
            container: name.to_string(),
            force: Some(true),
        };
        self.docker
            .disconnect_network(network, request)
            .await
            .map_err(|source| EngineError::Call {
                action: "disconnect from its network container",
                object: name.to_string(),
                source,
            })
    }

    /// Puts the container back on `network` under `aliases`, at `ip` when given and
    /// the network allows it; one already connected is fine.
    pub async fn connect_network(
        &self,
        network: &str,
        name: &str,
        aliases: &[String],
        ip: Option<&str>,
    ) -> Result<(), EngineError> {
        let request = |ip: Option<&str>| NetworkConnectRequest {
            container: name.to_string(),
            endpoint_config: Some(EndpointSettings {
                aliases: (!aliases.is_empty()).then(|| aliases.to_vec()),
                ipam_config: ip.map(|ip| EndpointIpamConfig {
                    ipv4_address: Some(ip.to_string()),
                    ..Default::default()
                }),
                ..Default::default()
            }),
        };
        let mut answer = self.docker.connect_network(network, request(ip)).await;
        if ip.is_some() && answer.as_ref().is_err_and(|e| is_status(e, &[400, 500])) {
            // The network has no stated subnet, or the address was taken: any address.
            answer = self.docker.connect_network(network, request(None)).await;
        }
        match answer {
            Ok(()) => Ok(()),
            Err(err) if is_status(&err, &[403, 409]) && self.ip(name, network).await.is_ok() => {
                Ok(())
            }
            Err(source) => Err(EngineError::Call {
                action: "reconnect to its network container",
                object: name.to_string(),
                source,
            }),
        }
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
            .map_err(|source| EngineError::Call {
                action: "create volume",
                object: name.to_string(),
                source,
            })
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
                return Err(EngineError::Call {
                    action: "wait for container",
                    object: name.to_string(),
                    source,
                });
            }
            None => -1,
        };
        let logs = self.logs_tail(name, 20).await;
        self.remove(name).await?;
        Ok((code, logs))
    }

    /// Whether the engine answers at all.
    pub async fn ping(&self) -> Result<(), EngineError> {
        self.docker
            .ping()
            .await
            .map(drop)
            .map_err(|source| EngineError::Call {
                action: "answer a ping from",
                object: "the engine".into(),
                source,
            })
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
            Err(source) => Err(EngineError::Call {
                action: "remove container",
                object: name.to_string(),
                source,
            }),
        }
    }

    pub async fn inspect(
        &self,
        name: &str,
    ) -> Result<bollard::models::ContainerInspectResponse, EngineError> {
        self.docker
            .inspect_container(name, None::<InspectContainerOptions>)
            .await
            .map_err(|source| EngineError::Call {
                action: "inspect container",
                object: name.to_string(),
                source,
            })
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
    ) -> Result<Vec<bollard::models::ContainerSummary>, EngineError> {
        let filters = HashMap::from([("label", labels.to_vec())]);
        self.docker
            .list_containers(Some(
                ListContainersOptionsBuilder::default()
                    .all(true)
                    .filters(&filters)
                    .build(),
            ))
            .await
            .map_err(|source| EngineError::Call {
                action: "list containers labelled",
                object: labels.join(", "),
                source,
            })
    }

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
        let is_reaper = |c: &bollard::models::ContainerSummary| {
            (c.labels.as_ref()).and_then(|l| l.get(super::ROLE_LABEL))
                == Some(&super::REAPER_ROLE.to_string())
        };
        self.sweep(&format!("{}={run_id}", super::RUN_LABEL), false, is_reaper)
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
            .map_err(|source| EngineError::Call {
                action: "list networks labelled",
                object: label.to_string(),
                source,
            })?;
        let volumes = self
            .docker
            .list_volumes(Some(
                ListVolumesOptionsBuilder::default()
                    .filters(&filters)
                    .build(),
            ))
            .await
            .map_err(|source| EngineError::Call {
                action: "list volumes labelled",
                object: label.to_string(),
                source,
            })?
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

    /// Removes a Swarm service (its tasks' containers go with it); one that is
    /// already gone is fine.
    pub async fn remove_service(&self, name: &str) -> Result<(), EngineError> {
        match self.docker.delete_service(name).await {
            Ok(()) => Ok(()),
            Err(err) if is_status(&err, &[404]) => Ok(()),
            Err(source) => Err(EngineError::Call {
                action: "remove service",
                object: name.to_string(),
                source,
            }),
        }
    }

    /// Removes a network; one that is gone is fine. An overlay network still has
    /// endpoints for a moment after its service's tasks were removed: retried for
    /// up to [`NETWORK_BUSY`].
    async fn remove_network(&self, name: &str) -> Result<(), EngineError> {
        let deadline = std::time::Instant::now() + NETWORK_BUSY;
        loop {
            match self.docker.remove_network(name).await {
                Ok(()) => return Ok(()),
                Err(err) if is_status(&err, &[404]) => return Ok(()),
                Err(err)
                    if is_status(&err, &[403, 409, 500])
                        && std::time::Instant::now() < deadline =>
                {
                    tokio::time::sleep(Duration::from_millis(250)).await;
                }
                Err(source) => {
                    return Err(EngineError::Call {
                        action: "remove network",
                        object: name.to_string(),
                        source,
                    })
                }
            }
        }
    }

    /// [`remove_labelled`](Self::remove_labelled), leaving the containers `keep` picks.
    async fn sweep(
        &self,
        label: &str,
        dry_run: bool,
        keep: impl Fn(&bollard::models::ContainerSummary) -> bool,
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
                    Err(source) => {
                        return Err(EngineError::Call {
                            action: "remove config",
                            object: name,
                            source,
                        })
                    }
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
                    Err(source) => {
                        return Err(EngineError::Call {
                            action: "remove volume",
                            object: volume.name,
                            source,
                        })
                    }
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

#[cfg(test)]
mod tests {
    use super::tcp_host;

    #[test]
    fn a_tcp_engine_is_reached_at_its_host_and_nothing_else_is_remote() {
        assert_eq!(
            tcp_host("tcp://10.231.5.2:2375").as_deref(),
            Some("10.231.5.2")
        );
        assert_eq!(tcp_host("tcp://node-1:2376/").as_deref(), Some("node-1"));
        assert_eq!(tcp_host("tcp://manager").as_deref(), Some("manager"));
        assert_eq!(tcp_host("tcp://[fd00::2]:2375").as_deref(), Some("fd00::2"));
        assert_eq!(tcp_host("unix:///var/run/docker.sock"), None);
        assert_eq!(tcp_host("ssh://me@host"), None);
    }
}
