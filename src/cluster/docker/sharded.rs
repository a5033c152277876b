//! A store whose keys the service spreads over its members: a memcached pool (the
//! service hashes keys over `{store_nodes}`, so a lost node loses every session it
//! held). A Redis Cluster spreads keys itself: see [`super::redis_cluster`].

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
}
