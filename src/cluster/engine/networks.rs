//! Networks: the run's bridge with a pinned subnet, a container taken off one and
//! put back, and removal once the last endpoints are gone.

use std::collections::HashMap;
use std::time::Duration;

use bollard::models::{
    EndpointIpamConfig, EndpointSettings, Ipam, IpamConfig, NetworkConnectRequest,
    NetworkCreateRequest, NetworkDisconnectRequest,
};

use super::{call_failed, is_status, Engine, EngineError};

/// How long a network removal waits for its last endpoints to go.
const NETWORK_BUSY: Duration = Duration::from_secs(15);

impl Engine {
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
        let failed = || call_failed("create network", name);
        self.docker
            .create_network(request(None))
            .await
            .map_err(failed())?;
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
        self.docker.remove_network(name).await.map_err(failed())?;
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
            .map_err(failed())
    }

    /// The gateway address of `network`: the host's side of its bridge.
    pub async fn gateway(&self, network: &str) -> Result<String, EngineError> {
        let info = self
            .docker
            .inspect_network(network, None)
            .await
            .map_err(call_failed("inspect network", network))?;
        info.ipam
            .and_then(|i| i.config)
            .and_then(|c| c.into_iter().find_map(|c| c.gateway))
            .filter(|g| !g.is_empty())
            .ok_or_else(|| EngineError::State(format!("network {network} has no gateway address")))
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
            .map_err(call_failed("disconnect from its network container", name))
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
            Err(source) => Err(call_failed("reconnect to its network container", name)(
                source,
            )),
        }
    }

    /// Removes a network; one that is gone is fine. An overlay network still has
    /// endpoints for a moment after its service's tasks were removed: retried for
    /// up to [`NETWORK_BUSY`].
    pub(super) async fn remove_network(&self, name: &str) -> Result<(), EngineError> {
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
                Err(source) => return Err(call_failed("remove network", name)(source)),
            }
        }
    }
}
