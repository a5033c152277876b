//! Swarm objects: the manager's own state, services and their tasks, the nodes.
//! The swarm engine (`cluster::swarm`) asks these; the sweep removes services.

use std::collections::HashMap;

use bollard::models::{
    NetworkCreateRequest, Node, Service, ServiceCreateResponse, ServiceSpec, SwarmInfo, Task,
};
use bollard::query_parameters::{
    InspectNetworkOptionsBuilder, InspectServiceOptions, ListNodesOptions, ListTasksOptionsBuilder,
};

use super::{call_failed, is_status, Engine, EngineError};

impl Engine {
    /// The swarm this engine is part of, as it says (`docker info`).
    pub async fn swarm_state(&self) -> Result<SwarmInfo, EngineError> {
        let info = self.info("read the state of").await?;
        Ok(info.swarm.unwrap_or_default())
    }

    /// A service by name.
    pub async fn service(&self, name: &str) -> Result<Service, EngineError> {
        self.docker
            .inspect_service(name, None::<InspectServiceOptions>)
            .await
            .map_err(call_failed("find the Swarm service", name))
    }

    /// Creates a service; `what` is what the error calls it ("service", "the agent
    /// job").
    pub async fn create_service(
        &self,
        spec: ServiceSpec,
        what: &'static str,
    ) -> Result<ServiceCreateResponse, EngineError> {
        let name = spec.name.clone().unwrap_or_default();
        self.docker
            .create_service(spec, None)
            .await
            .map_err(call_failed(what, name))
    }

    /// Removes a Swarm service (its tasks' containers go with it); one that is
    /// already gone is fine.
    pub async fn remove_service(&self, name: &str) -> Result<(), EngineError> {
        match self.docker.delete_service(name).await {
            Ok(()) => Ok(()),
            Err(err) if is_status(&err, &[404]) => Ok(()),
            Err(source) => Err(call_failed("remove service", name)(source)),
        }
    }

    /// The tasks of a service, every state.
    pub async fn tasks(&self, service: &str) -> Result<Vec<Task>, EngineError> {
        let filters = HashMap::from([("service", vec![service])]);
        self.docker
            .list_tasks(Some(
                ListTasksOptionsBuilder::default().filters(&filters).build(),
            ))
            .await
            .map_err(call_failed("list the tasks of service", service))
    }

    /// The nodes of the swarm.
    pub async fn nodes(&self) -> Result<Vec<Node>, EngineError> {
        self.docker
            .list_nodes(None::<ListNodesOptions>)
            .await
            .map_err(call_failed("list the nodes of", "the swarm"))
    }

    /// Creates an attachable overlay network: a service's tasks and plain
    /// containers meet on it.
    pub async fn create_overlay_network(
        &self,
        name: &str,
        labels: HashMap<String, String>,
    ) -> Result<(), EngineError> {
        let request = NetworkCreateRequest {
            name: name.to_string(),
            driver: Some("overlay".into()),
            attachable: Some(true),
            labels: Some(labels),
            ..Default::default()
        };
        self.docker
            .create_network(request)
            .await
            .map(drop)
            .map_err(call_failed("create overlay network", name))
    }

    /// The tasks of `service` on an overlay network, as the manager sees it (a
    /// verbose inspection lists every node's tasks): Docker's JSON, one object a
    /// task, with its `Name` and `EndpointIP`.
    pub async fn overlay_tasks(
        &self,
        network: &str,
        service: &str,
    ) -> Result<Vec<serde_json::Value>, EngineError> {
        let options = InspectNetworkOptionsBuilder::default()
            .verbose(true)
            .build();
        let found = self
            .docker
            .inspect_network(network, Some(options))
            .await
            .map_err(call_failed("inspect network", network))?;
        let mut services = found.services.unwrap_or_default();
        let tasks = (services.remove(service))
            .and_then(|mut s| s.get_mut("Tasks").map(serde_json::Value::take))
            .and_then(|t| match t {
                serde_json::Value::Array(tasks) => Some(tasks),
                _ => None,
            });
        Ok(tasks.unwrap_or_default())
    }
}
