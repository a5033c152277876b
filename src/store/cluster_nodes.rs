//! What a Redis Cluster node says of the cluster in `CLUSTER NODES`, reduced to what
//! the harness needs to form a cluster, fail it over and mend it: each node's id, the
//! host name it announces (its member's alias), its role, its primary, whether it
//! failed, and the slots it serves.
//!
//! `CLUSTER NODES` rather than `CLUSTER SHARDS`: one line per node, including nodes
//! that have failed or serve nothing, in a text that is simple to read and to test.

/// Every slot a Redis Cluster has.
pub const SLOTS: u16 = 16384;

/// One line of `CLUSTER NODES`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Node {
    /// The node's id, which it keeps across restarts (in its `nodes.conf`).
    pub id: String,
    /// The host name it announces (`cluster-announce-hostname`), empty when none.
    pub host: String,
    /// The node that answered (`myself`).
    pub myself: bool,
    pub primary: bool,
    /// Failed in the cluster's view (`fail`).
    pub failed: bool,
    /// Suspected by the node that answered (`fail?`), not yet agreed failed.
    pub suspected: bool,
    /// A replica's primary.
    pub primary_id: Option<String>,
    /// Slot ranges served, inclusive (slots being moved are left out).
    pub slots: Vec<(u16, u16)>,
}

impl Node {
    /// Whether it serves `slot`.
    pub fn serves(&self, slot: u16) -> bool {
        self.slots
            .iter()
            .any(|(lo, hi)| (*lo..=*hi).contains(&slot))
    }
}

/// Reads a `CLUSTER NODES` text; lines that are not a node's are skipped.
pub fn parse(text: &str) -> Vec<Node> {
    text.lines().filter_map(parse_line).collect()
}

/// `<id> <ip:port@cport[,hostname]> <flags> <primary> <ping> <pong> <epoch> <link> <slot>…`
fn parse_line(line: &str) -> Option<Node> {
    let fields: Vec<&str> = line.split_whitespace().collect();
    let [id, address, flags, primary_id, _ping, _pong, _epoch, _link, slots @ ..] = &fields[..]
    else {
        return None;
    };
    let flags: Vec<&str> = flags.split(',').collect();
    let slots = slots
        .iter()
        // `[slot->-id]` and `[slot-<-id]`: a slot on its way between nodes.
        .filter(|s| !s.starts_with('['))
        .filter_map(|s| match s.split_once('-') {
            Some((lo, hi)) => Some((lo.parse().ok()?, hi.parse().ok()?)),
            None => s.parse().ok().map(|one| (one, one)),
        })
        .collect();
    Some(Node {
        id: id.to_string(),
        host: address
            .split_once(',')
            .map_or("", |(_, host)| host)
            .to_string(),
        myself: flags.contains(&"myself"),
        primary: flags.contains(&"master"),
        failed: flags.contains(&"fail"),
        suspected: flags.contains(&"fail?"),
        primary_id: (*primary_id != "-").then(|| primary_id.to_string()),
        slots,
    })
}

/// The node that serves `slot`, in this view.
pub fn serving(nodes: &[Node], slot: u16) -> Option<&Node> {
    nodes.iter().find(|n| n.primary && n.serves(slot))
}

/// Whether every slot is served by a primary that has not failed, none of them `gone`:
/// the cluster can serve every key without the node `gone`.
pub fn covered_without(nodes: &[Node], gone: &str) -> bool {
    let mut served: Vec<(u16, u16)> = (nodes.iter())
        .filter(|n| n.primary && !n.failed && n.id != gone)
        .flat_map(|n| n.slots.iter().copied())
        .collect();
    served.sort();
    let mut next = 0u32;
    for (lo, hi) in served {
        if u32::from(lo) > next {
            return false;
        }
        next = next.max(u32::from(hi) + 1);
    }
    next == u32::from(SLOTS)
}

/// `primaries` slot ranges of (nearly) equal size covering every slot, in order.
pub fn split_slots(primaries: usize) -> Vec<(u16, u16)> {
    let slots = usize::from(SLOTS);
    (0..primaries)
        .map(|i| {
            let lo = i * slots / primaries;
            let hi = (i + 1) * slots / primaries - 1;
            (lo as u16, hi as u16)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What Redis 7.0.15 answered mid-failover: `store-0` failed, its replica
    /// `store-3` promoted, a slot being moved on `store-2`.
    const AFTER_FAILOVER: &str = "\
811cf41d 192.168.16.2:6379@16379,store-0 master,fail - 1796527070586 1796527070000 3 connected
7a203f0a 192.168.16.7:6379@16379,store-5 slave 293869db 0 1796527072407 4 connected
293869db 192.168.16.4:6379@16379,store-2 master - 0 1796527072591 4 connected 10923-16383 [10923->-0adf87db]
0adf87db 192.168.16.3:6379@16379,store-1 myself,master - 0 1796527072000 5 connected 5461-10922
85373623 192.168.16.6:6379@16379,store-4 slave 0adf87db 0 1796527072102 5 connected
0b27f71f 192.168.16.5:6379@16379,store-3 master - 0 1796527072207 6 connected 0-5460
";

    #[test]
    fn a_failover_as_the_cluster_tells_it() {
        let nodes = parse(AFTER_FAILOVER);
        assert_eq!(nodes.len(), 6);
        let old = &nodes[0];
        assert_eq!(
            (old.host.as_str(), old.primary, old.failed),
            ("store-0", true, true)
        );
        assert!(old.slots.is_empty());
        assert_eq!(nodes[1].primary_id.as_deref(), Some("293869db"));
        assert_eq!(nodes[2].slots, vec![(10923, 16383)]);
        assert!(nodes[3].myself && nodes[3].primary_id.is_none());
        assert_eq!(serving(&nodes, 0).unwrap().host, "store-3");
        assert_eq!(serving(&nodes, 16383).unwrap().host, "store-2");
        assert!(covered_without(&nodes, "811cf41d"));
        assert!(!covered_without(&nodes, "0b27f71f"));
    }

    #[test]
    fn a_slot_left_uncovered_or_served_by_a_failed_node_is_seen() {
        let line = "a 10.0.0.1:6379@16379 myself,master - 0 0 1 connected 0-100 102-16383\n";
        let nodes = parse(line);
        assert_eq!(nodes[0].host, "", "no host name announced");
        assert!(!covered_without(&nodes, "b"));
        let failed = "a 10.0.0.1:6379@16379 master,fail - 0 0 1 connected 0-16383\n";
        assert!(!covered_without(&parse(failed), "b"));
        let whole = "a 10.0.0.1:6379@16379 master - 0 0 1 connected 0-16383 42\n";
        assert!(covered_without(&parse(whole), "b"));
        assert!(parse("garbage\n\n").is_empty());
    }

    #[test]
    fn slots_split_evenly_and_cover_everything() {
        assert_eq!(
            split_slots(3),
            vec![(0, 5460), (5461, 10921), (10922, 16383)]
        );
        assert_eq!(split_slots(1), vec![(0, 16383)]);
    }
}
