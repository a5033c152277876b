//! A Redis Cluster (`[store] topology = "cluster"`): members `store-0..2` start as the
//! primaries of a third of the slots each and `store-3..5` as their replicas
//! (`store-<n + 3>` follows `store-<n>`), with Redis's asynchronous replication per
//! shard. The service is given every member (`{store_nodes}`); its cluster client
//! learns the slot map from them and follows `MOVED`.
//!
//! The store image holds `redis-server` only, so the harness forms the cluster itself
//! over Redis's protocol, as `redis-cli --cluster create` would: `CLUSTER
//! ADDSLOTSRANGE` on the primaries, `CLUSTER MEET`, `CLUSTER REPLICATE`.
//!
//! Members announce their alias as host name, and the cluster answers with host names
//! (`MOVED 0 store-3:6379`, `CLUSTER SLOTS`; Redis 7.0's
//! `cluster-preferred-endpoint-type hostname`), so what a client was told still names
//! the right member after a member is replaced by a container at another address.
//!
//! `store-primary` is the primary serving slot 0 now. A fault needs one member, and
//! always the same shard's: successive failovers go back and forth between `store-0`
//! and its replica, each time through the replica that took the dead member's place.

use std::time::Instant;

use super::DockerCluster;
use crate::cluster::engine::EngineError;
use crate::plan::topology::{self, CLUSTER_PRIMARIES};
use crate::store::cluster_nodes::{self, Node};
use crate::store::resp::{self, Reply};

/// How long a member may be silent before the others suspect it (`cluster-node-timeout`,
/// 15 s by default): as short as the replicated store's Sentinels wait (1 s), so a
/// failover takes seconds, not a quarter of a minute.
const NODE_TIMEOUT_MS: u32 = 1000;
/// The slot whose primary `store-primary` names.
const PRIMARY_SLOT: u16 = 0;

impl DockerCluster {
    /// Starts the members, forms the cluster, and waits until every member says the
    /// cluster is ok and every replica has its primary's data.
    pub(super) async fn start_redis_cluster(&self, deadline: Instant) -> Result<(), EngineError> {
        let members = self.plan.store.topology.members();
        for index in 0..members {
            self.create_member(index, self.cluster_flags(index)).await?;
        }
        for index in 0..members {
            self.wait_member(index, deadline).await?;
        }
        for (index, (lo, hi)) in cluster_nodes::split_slots(CLUSTER_PRIMARIES)
            .into_iter()
            .enumerate()
        {
            let (lo, hi) = (lo.to_string(), hi.to_string());
            self.expect_ok(index, &["CLUSTER", "ADDSLOTSRANGE", &lo, &hi])
                .await?;
        }
        for index in 1..members {
            self.meet(index, 0).await?;
        }
        for index in CLUSTER_PRIMARIES..members {
            let primary = self.node_id(index - CLUSTER_PRIMARIES).await?;
            self.replicate(index, &primary, deadline).await?;
        }
        for index in 0..members {
            self.wait_joined(index, deadline).await?;
        }
        Ok(())
    }

    /// A member's flags: the harness's, a cluster node announcing its alias.
    fn cluster_flags(&self, index: usize) -> Vec<String> {
        let mut flags = self.redis_base();
        let timeout = NODE_TIMEOUT_MS.to_string();
        flags.extend(
            [
                "--cluster-enabled",
                "yes",
                // In the member's data folder: a member started again keeps its id
                // and rejoins as what the cluster made of it meanwhile.
                "--cluster-config-file",
                "nodes.conf",
                "--cluster-node-timeout",
                &timeout,
                "--cluster-announce-hostname",
                &topology::member(index),
                "--cluster-preferred-endpoint-type",
                "hostname",
                // A fresh replica gets its primary's data at once, not after the 5 s
                // Redis waits for more replicas to sync at the same time.
                "--repl-diskless-sync-delay",
                "0",
            ]
            .map(String::from),
        );
        flags
    }

    /// One command to member `index`; its answer, or what went wrong, in words.
    async fn ask_member(&self, index: usize, args: &[&str]) -> Result<Reply, String> {
        let addr = (self.member_addr(index).await).map_err(|e| e.to_string())?;
        resp::ask(&addr, args).await
    }

    /// Sends `args` to member `index`, which must answer OK.
    async fn expect_ok(&self, index: usize, args: &[&str]) -> Result<(), EngineError> {
        match self.ask_member(index, args).await {
            Ok(Reply::Simple(ok)) if ok == "OK" => Ok(()),
            other => Err(EngineError::State(format!(
                "{} refused `{}`: {other:?}",
                topology::member(index),
                args.join(" ")
            ))),
        }
    }

    /// Member `index`'s node id.
    async fn node_id(&self, index: usize) -> Result<String, EngineError> {
        match self.ask_member(index, &["CLUSTER", "MYID"]).await {
            Ok(reply) if reply.text().is_some() => Ok(reply.text().unwrap_or_default()),
            other => Err(EngineError::State(format!(
                "{} did not tell its cluster node id: {other:?}",
                topology::member(index)
            ))),
        }
    }

    /// Member `index` meets member `known` (at its address: Redis 7.0 meets by IP).
    async fn meet(&self, index: usize, known: usize) -> Result<(), EngineError> {
        let at = self.member_socket(known).await?;
        let (ip, port) = (at.ip().to_string(), at.port().to_string());
        self.expect_ok(index, &["CLUSTER", "MEET", &ip, &port])
            .await
    }

    /// Makes member `index` a replica of node `primary`, once it has heard of it.
    async fn replicate(
        &self,
        index: usize,
        primary: &str,
        deadline: Instant,
    ) -> Result<(), EngineError> {
        loop {
            let answer = self
                .ask_member(index, &["CLUSTER", "REPLICATE", primary])
                .await;
            if matches!(&answer, Ok(Reply::Simple(ok)) if ok == "OK") {
                return Ok(());
            }
            let awaited = format!(
                "{} to replicate node {primary} (it answered {answer:?})",
                topology::member(index)
            );
            self.before(deadline, &awaited).await?;
        }
    }

    /// Waits until member `index` knows every member, says the cluster is ok and, as
    /// a replica, has its primary's data.
    pub(super) async fn wait_joined(
        &self,
        index: usize,
        deadline: Instant,
    ) -> Result<(), EngineError> {
        let members = self.plan.store.topology.members();
        let known = format!("cluster_known_nodes:{members}\r\n");
        loop {
            let cluster = self.ask_member(index, &["CLUSTER", "INFO"]).await;
            let cluster = cluster.ok().and_then(|r| r.text()).unwrap_or_default();
            let replication = self.ask_member(index, &["INFO", "replication"]).await;
            let replication = replication.ok().and_then(|r| r.text()).unwrap_or_default();
            let following = replication.contains("role:master")
                || replication.contains("master_link_status:up");
            if cluster.contains("cluster_state:ok") && cluster.contains(&known) && following {
                return Ok(());
            }
            let awaited = format!("{} to join the cluster", topology::member(index));
            self.before(deadline, &awaited).await?;
        }
    }

    /// The cluster as the first member that answers (but `skip`) sees it, and which
    /// member that was.
    async fn cluster_view(&self, skip: Option<usize>) -> Result<(usize, Vec<Node>), EngineError> {
        let mut heard = Vec::new();
        for index in (0..self.plan.store.topology.members()).filter(|i| Some(*i) != skip) {
            match self.ask_member(index, &["CLUSTER", "NODES"]).await {
                Ok(Reply::Bulk(Some(text))) => {
                    return Ok((index, cluster_nodes::parse(&String::from_utf8_lossy(&text))))
                }
                other => heard.push(format!("{}: {other:?}", topology::member(index))),
            }
        }
        Err(EngineError::State(format!(
            "no member of the cluster says what the cluster is: {}",
            heard.join("; ")
        )))
    }

    /// The member serving slot 0 now (what `store-primary` means for a cluster).
    pub(super) async fn cluster_primary(&self) -> Result<usize, EngineError> {
        let (_, nodes) = self.cluster_view(None).await?;
        match serving_member(&nodes) {
            Some(index) => Ok(index),
            None => Err(EngineError::State(format!(
                "no member that has not failed serves slot {PRIMARY_SLOT}: the cluster has not failed over yet"
            ))),
        }
    }

    /// SIGKILLs the primary of slot 0, then waits until a live member serves it and
    /// every member that answers says the cluster is ok; returns the member killed
    /// and what happened.
    pub(super) async fn cluster_failover(
        &self,
        deadline: Instant,
    ) -> Result<(usize, String), EngineError> {
        let killed = self.cluster_primary().await?;
        let began = Instant::now();
        self.engine.kill(&self.member_container(killed)).await?;
        let promoted = loop {
            let view = self.cluster_view(Some(killed)).await;
            let serving = view.ok().and_then(|(_, nodes)| serving_member(&nodes));
            match serving {
                Some(now) if now != killed => break now,
                _ => {
                    self.before(deadline, "the cluster to promote a replica")
                        .await?
                }
            }
        };
        let promoted_after = began.elapsed();
        self.wait_cluster_ok(killed, deadline).await?;
        Ok((
            killed,
            format!(
                "{} killed; {} promoted after {:.1} s, the cluster ok after {:.1} s",
                topology::member(killed),
                topology::member(promoted),
                promoted_after.as_secs_f64(),
                began.elapsed().as_secs_f64()
            ),
        ))
    }

    /// Waits until every member that answers (but `down`) says the cluster is ok, and
    /// one does: a client gets answers from every shard again.
    async fn wait_cluster_ok(&self, down: usize, deadline: Instant) -> Result<(), EngineError> {
        let members = self.plan.store.topology.members();
        loop {
            let (mut ok, mut fail) = (0, Vec::new());
            for index in (0..members).filter(|i| *i != down) {
                let Ok(reply) = self.ask_member(index, &["CLUSTER", "INFO"]).await else {
                    continue;
                };
                match reply
                    .text()
                    .unwrap_or_default()
                    .contains("cluster_state:ok")
                {
                    true => ok += 1,
                    false => fail.push(topology::member(index)),
                }
            }
            if ok > 0 && fail.is_empty() {
                return Ok(());
            }
            let awaited = format!(
                "the cluster to be ok again (not yet on {})",
                fail.join(", ")
            );
            self.before(deadline, &awaited).await?;
        }
    }

    /// A fresh, empty node under member `index`'s name, in the cluster as a replica of
    /// the primary with the fewest replicas (the one the dead member leaves without).
    ///
    /// Replacing is supported, and stays the default, because it can be made
    /// reliable: the harness waits until the cluster serves every slot without the
    /// dead node (a primary killed outright fails over first), makes every other
    /// member forget it before the fresh node meets them (a failed node stays in
    /// every table and would be gossiped back into the fresh one), and retries
    /// `CLUSTER REPLICATE` until the fresh node has heard of its primary. A fresh
    /// container may get the dead one's address; the forgotten id cannot claim it.
    /// (`after_kill = "restart"` starts the killed container again instead, which
    /// rejoins with its own `nodes.conf`.)
    pub(super) async fn replace_cluster_member(
        &self,
        index: usize,
        deadline: Instant,
    ) -> Result<(), EngineError> {
        let name = topology::member(index);
        // A primary killed outright (`kill`, not `failover`) first fails over: its
        // replica must serve its slots before it can be let go.
        let gone = loop {
            let (_, nodes) = self.cluster_view(Some(index)).await?;
            match nodes.iter().find(|n| n.host == name) {
                None => break None,
                Some(old) if cluster_nodes::covered_without(&nodes, &old.id) => {
                    break Some(old.id.clone())
                }
                Some(_) => {
                    let awaited = format!("the cluster to serve every slot without {name}");
                    self.before(deadline, &awaited).await?
                }
            }
        };
        self.renew_member(index, self.cluster_flags(index), deadline)
            .await?;
        let members = self.plan.store.topology.members();
        if let Some(gone) = &gone {
            for other in (0..members).filter(|o| *o != index) {
                // A member that is down, or never knew it, has nothing to forget.
                let _ = self.ask_member(other, &["CLUSTER", "FORGET", gone]).await;
            }
        }
        let (known, nodes) = self.cluster_view(Some(index)).await?;
        self.meet(index, known).await?;
        let primary = loneliest_primary(&nodes, gone.as_deref()).ok_or_else(|| {
            EngineError::State(format!(
                "no primary in the cluster for the fresh {name} to replicate"
            ))
        })?;
        self.replicate(index, &primary, deadline).await?;
        self.wait_joined(index, deadline).await
    }
}

/// The member serving [`PRIMARY_SLOT`], unless it failed.
fn serving_member(nodes: &[Node]) -> Option<usize> {
    cluster_nodes::serving(nodes, PRIMARY_SLOT)
        .filter(|n| !n.failed)
        .and_then(|n| topology::member_index(&n.host))
}

/// The id of the live primary with the fewest live replicas (`gone` counts as none),
/// the lowest-numbered member among equals.
fn loneliest_primary(nodes: &[Node], gone: Option<&str>) -> Option<String> {
    let replicas = |primary: &Node| {
        (nodes.iter())
            .filter(|r| r.primary_id.as_deref() == Some(&primary.id))
            .filter(|r| !r.failed && Some(r.id.as_str()) != gone)
            .count()
    };
    (nodes.iter())
        .filter(|n| n.primary && !n.failed && !n.slots.is_empty())
        .min_by_key(|n| (replicas(n), topology::member_index(&n.host)))
        .map(|n| n.id.clone())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_fresh_member_replicates_the_primary_left_alone() {
        // `store-0` killed and still listed, `store-3` promoted.
        let view = "\
a0 10.0.0.2:6379@16379,store-0 master,fail - 0 0 3 disconnected
a1 10.0.0.3:6379@16379,store-1 myself,master - 0 0 5 connected 5461-10921
a2 10.0.0.4:6379@16379,store-2 master - 0 0 4 connected 10922-16383
a3 10.0.0.5:6379@16379,store-3 master - 0 0 6 connected 0-5460
a4 10.0.0.6:6379@16379,store-4 slave a1 0 0 5 connected
a5 10.0.0.7:6379@16379,store-5 slave a2 0 0 4 connected
";
        let nodes = cluster_nodes::parse(view);
        assert_eq!(serving_member(&nodes), Some(3));
        assert_eq!(loneliest_primary(&nodes, Some("a0")).as_deref(), Some("a3"));
        // A replica killed: its primary is the one left alone, however the dead
        // replica is still listed.
        let view = view
            .replace(
                "a0 10.0.0.2:6379@16379,store-0 master,fail - 0 0 3 disconnected\n",
                "",
            )
            .replace("slave a2", "slave,fail? a2");
        let nodes = cluster_nodes::parse(&view);
        assert_eq!(loneliest_primary(&nodes, Some("a5")).as_deref(), Some("a2"));
        assert_eq!(loneliest_primary(&nodes, None).as_deref(), Some("a3"));
    }

    #[test]
    fn a_failed_primary_of_slot_0_is_no_primary_to_hit() {
        let view = "a0 10.0.0.2:6379@16379,store-0 master,fail - 0 0 3 connected 0-16383\n";
        assert_eq!(serving_member(&cluster_nodes::parse(view)), None);
    }
}
