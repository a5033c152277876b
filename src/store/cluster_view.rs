//! A Redis Cluster's own account of a failover, as the store's timeline keeps it: at
//! each question one live member's `CLUSTER NODES` and `CLUSTER INFO`, and what
//! changed since the last: a node suspected (`fail?`) or marked failing (`fail`), a
//! node's role as the cluster says it (whose slots it serves, whom it replicates),
//! a node joining or forgotten, and `cluster_state` between ok and fail. Pure, so
//! every rule is tested from the texts Redis answers.
//!
//! It is the cluster's word, as Sentinel's lines are Sentinel's: what a member says
//! of itself (`INFO`) is in its own events; this is what the cluster agreed of it.

use super::cluster_nodes::{self, Node};

/// What one member said of the cluster at a question.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct View {
    /// `cluster_state:ok`: every slot is served.
    pub ok: bool,
    pub nodes: Vec<Node>,
}

/// Something the cluster says changed: the member it is about (empty: the cluster
/// as a whole) and what, in words.
pub type Said = (String, String);

impl View {
    /// From the texts of `CLUSTER INFO` and `CLUSTER NODES`.
    pub fn parse(info: &str, nodes: &str) -> View {
        View {
            ok: info.lines().any(|l| l.trim() == "cluster_state:ok"),
            nodes: cluster_nodes::parse(nodes),
        }
    }

    fn node(&self, id: &str) -> Option<&Node> {
        self.nodes.iter().find(|n| n.id == id)
    }

    /// The member a node is (the host name it announces), else its id, shortened.
    fn name(&self, id: &str) -> String {
        match self.node(id).map(|n| n.host.as_str()) {
            Some(host) if !host.is_empty() => host.to_string(),
            _ => format!("node {}", short(id)),
        }
    }

    /// `a primary of slots 0-5460`, `a replica of store-0`.
    fn role(&self, node: &Node) -> String {
        if let (false, Some(primary)) = (node.primary, &node.primary_id) {
            return format!("a replica of {}", self.name(primary));
        }
        let slots: Vec<String> = (node.slots.iter())
            .map(|&(lo, hi)| match lo == hi {
                true => lo.to_string(),
                false => format!("{lo}-{hi}"),
            })
            .collect();
        match slots.as_slice() {
            [] => "a primary of no slot".to_string(),
            [one] if !one.contains('-') => format!("a primary of slot {one}"),
            _ => format!("a primary of slots {}", slots.join(", ")),
        }
    }
}

/// A node's health in the cluster's view.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Health {
    Up,
    /// `fail?`: the node that answered has not heard from it in time.
    Suspected,
    /// `fail`: most primaries agreed it failed; its replica may take its slots.
    Failed,
}

fn health(node: &Node) -> Health {
    match (node.failed, node.suspected) {
        (true, _) => Health::Failed,
        (false, true) => Health::Suspected,
        (false, false) => Health::Up,
    }
}

/// The first 8 characters of a node id, as enough to tell nodes apart.
fn short(id: &str) -> &str {
    id.get(..8).unwrap_or(id)
}

/// What the cluster says changed from `before` to `now`, in the order of `now`'s
/// nodes, the cluster's state first and forgotten nodes last. Nodes are followed by
/// id: a member replaced by a fresh node is a new node under the same name.
pub fn changes(before: &View, now: &View) -> Vec<Said> {
    let mut said = Vec::new();
    if before.ok != now.ok {
        let detail = match now.ok {
            true => "cluster_state:ok again: every slot is served",
            false => "cluster_state:fail: the cluster refuses keys",
        };
        said.push((String::new(), detail.to_string()));
    }
    let asked = (now.nodes.iter().find(|n| n.myself)).map(|n| now.name(&n.id));
    for node in &now.nodes {
        let name = now.name(&node.id);
        let Some(was) = before.node(&node.id) else {
            let detail = format!(
                "joined the cluster (node {}): {}",
                short(&node.id),
                now.role(node)
            );
            said.push((name, detail));
            continue;
        };
        let health_now = health(node);
        if health_now != health(was) {
            let detail = match health_now {
                Health::Failed => "marked failing by the cluster (fail)".to_string(),
                Health::Suspected => match &asked {
                    Some(asked) => format!("suspected failing by {asked} (fail?)"),
                    None => "suspected failing (fail?)".to_string(),
                },
                Health::Up => "no longer failing in the cluster's view".to_string(),
            };
            said.push((name.clone(), detail));
        }
        let (role, role_was) = (now.role(node), before.role(was));
        if role != role_was {
            said.push((name, format!("is {role} (was {role_was})")));
        }
    }
    for gone in (before.nodes.iter()).filter(|n| now.node(&n.id).is_none()) {
        let detail = format!("forgotten by the cluster (node {})", short(&gone.id));
        said.push((before.name(&gone.id), detail));
    }
    said
}

#[cfg(test)]
mod tests {
    use super::*;

    const OK: &str = "cluster_state:ok\r\ncluster_slots_assigned:16384\r\n";
    const FAIL: &str = "cluster_state:fail\r\ncluster_slots_assigned:16384\r\n";

    /// Three primaries and their replicas, as `store-1` sees them.
    const FORMED: &str = "\
811cf41d9a 192.168.16.2:6379@16379,store-0 master - 0 1796527070000 1 connected 0-5460
0adf87db4c 192.168.16.3:6379@16379,store-1 myself,master - 0 1796527072000 2 connected 5461-10922
293869db11 192.168.16.4:6379@16379,store-2 master - 0 1796527072591 3 connected 10923-16383
0b27f71f22 192.168.16.5:6379@16379,store-3 slave 811cf41d9a 0 1796527072207 1 connected
85373623aa 192.168.16.6:6379@16379,store-4 slave 0adf87db4c 0 1796527072102 2 connected
7a203f0a33 192.168.16.7:6379@16379,store-5 slave 293869db11 0 1796527072407 3 connected
";

    fn view(info: &str, nodes: &str) -> View {
        View::parse(info, nodes)
    }

    /// `FORMED` with `store-0`'s line and `store-3`'s replaced.
    fn with(store_0: &str, store_3: &str) -> String {
        let mut lines: Vec<&str> = FORMED.lines().collect();
        lines[0] = store_0;
        lines[3] = store_3;
        lines.join("\n")
    }

    fn said(before: &View, now: &View) -> Vec<String> {
        (changes(before, now).into_iter())
            .map(|(who, what)| format!("{who}|{what}"))
            .collect()
    }

    #[test]
    fn a_failover_as_the_cluster_tells_it() {
        let formed = view(OK, FORMED);
        assert!(said(&formed, &formed.clone()).is_empty(), "nothing changed");
        let replica = "0b27f71f22 192.168.16.5:6379@16379,store-3 slave 811cf41d9a 0 0 1 connected";
        let suspected = view(
            OK,
            &with(
                "811cf41d9a 192.168.16.2:6379@16379,store-0 master,fail? - 1 0 1 disconnected 0-5460",
                replica,
            ),
        );
        assert_eq!(
            said(&formed, &suspected),
            ["store-0|suspected failing by store-1 (fail?)"]
        );
        let failed = view(
            FAIL,
            &with(
                "811cf41d9a 192.168.16.2:6379@16379,store-0 master,fail - 1 0 1 disconnected 0-5460",
                replica,
            ),
        );
        assert_eq!(
            said(&suspected, &failed),
            [
                "|cluster_state:fail: the cluster refuses keys",
                "store-0|marked failing by the cluster (fail)"
            ]
        );
        let promoted = view(
            OK,
            &with(
                "811cf41d9a 192.168.16.2:6379@16379,store-0 master,fail - 1 0 1 disconnected",
                "0b27f71f22 192.168.16.5:6379@16379,store-3 master - 0 0 4 connected 0-5460",
            ),
        );
        assert_eq!(
            said(&failed, &promoted),
            [
                "|cluster_state:ok again: every slot is served",
                "store-0|is a primary of no slot (was a primary of slots 0-5460)",
                "store-3|is a primary of slots 0-5460 (was a replica of store-0)"
            ]
        );
    }

    #[test]
    fn a_replaced_member_is_a_new_node_under_its_name() {
        let gone = view(
            OK,
            &with(
                "811cf41d9a 192.168.16.2:6379@16379,store-0 master,fail - 1 0 1 disconnected",
                "0b27f71f22 192.168.16.5:6379@16379,store-3 master - 0 0 4 connected 0-5460",
            ),
        );
        let fresh = "ffee0011cc 192.168.16.8:6379@16379,store-0 slave 0b27f71f22 0 0 4 connected";
        let replaced = view(
            OK,
            &with(
                fresh,
                "0b27f71f22 192.168.16.5:6379@16379,store-3 master - 0 0 4 connected 0-5460",
            ),
        );
        assert_eq!(
            said(&gone, &replaced),
            [
                "store-0|joined the cluster (node ffee0011): a replica of store-3",
                "store-0|forgotten by the cluster (node 811cf41d)"
            ]
        );
        // A node that announces no name, and one that came back.
        let nameless = view(
            OK,
            "0123456789 10.0.0.1:6379@16379 master,fail - 0 0 1 connected\n",
        );
        let back = view(
            OK,
            "0123456789 10.0.0.1:6379@16379 master - 0 0 1 connected 7\n",
        );
        assert_eq!(
            said(&nameless, &back),
            [
                "node 01234567|no longer failing in the cluster's view",
                "node 01234567|is a primary of slot 7 (was a primary of no slot)"
            ]
        );
    }
}
