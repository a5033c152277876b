//! Stores whose keys are spread over members: a memcached pool (the service hashes
//! keys over `{store_nodes}`, so a lost node loses every session it held) and a Redis
//! Cluster (three primaries with a replica each; the cluster fails over by itself).

use std::time::Instant;

use super::DockerCluster;
use crate::cluster::engine::EngineError;

impl DockerCluster {
    /// Starts `nodes` memcached nodes and waits until each takes connections.
    pub(super) async fn start_pool(
        &self,
        nodes: usize,
        deadline: Instant,
    ) -> Result<(), EngineError> {
        for index in 0..nodes {
            self.create_member(index, self.pool_flags()).await?;
        }
        for index in 0..nodes {
            self.wait_member(index, deadline).await?;
        }
        Ok(())
    }

    /// A node's flags: the store's port.
    fn pool_flags(&self) -> Vec<String> {
        vec!["-p".into(), self.plan.store.port.to_string()]
    }

    /// A fresh, empty node in node `index`'s place, under its name.
    pub(super) async fn replace_pool_node(
        &self,
        index: usize,
        deadline: Instant,
    ) -> Result<(), EngineError> {
        self.renew_member(index, self.pool_flags(), deadline).await
    }

    pub(super) async fn start_redis_cluster(&self, _deadline: Instant) -> Result<(), EngineError> {
        Err(EngineError::State("cluster: being built".into()))
    }

    pub(super) async fn cluster_primary(&self) -> Result<usize, EngineError> {
        Err(EngineError::State("cluster: being built".into()))
    }

    pub(super) async fn cluster_failover(
        &self,
        _deadline: Instant,
    ) -> Result<(usize, String), EngineError> {
        Err(EngineError::State("cluster: being built".into()))
    }

    pub(super) async fn replace_cluster_member(
        &self,
        _index: usize,
        _deadline: Instant,
    ) -> Result<(), EngineError> {
        Err(EngineError::State("cluster: being built".into()))
    }
}
