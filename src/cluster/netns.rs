//! What the harness runs inside a container's network namespace, for the faults
//! that act on its traffic without taking it off the network: iptables rules
//! (`blackhole`, `loss`) and a `tbf` qdisc (`bandwidth`). Each runs in a short-lived
//! helper container from `sessionstorm/nettools` sharing the target's network
//! namespace, with NET_ADMIN; the helper is removed when it is done. Shared by the
//! harness-made and the attached cluster.
//!
//! Every change is a pair (on, off) computed from the fault's own setting, so what
//! to undo is plain data: [`Shaping`]. The iptables ones may hold for the
//! container's traffic with some [`Endpoint`]s only (a fault's `peer`): the same
//! rules, one pair per endpoint, each matching its address.

use std::collections::HashMap;
use std::net::IpAddr;

use super::engine::{ContainerSpec, Engine, EngineError};
use super::upload::tar_of;
use crate::plan::KernelFeature;

/// The interface a container's traffic leaves by on its (first) network.
const INTERFACE: &str = "eth0";

/// One change to a container's traffic, and (with `on = false`) its undoing.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "snake_case")]
pub enum Shaping {
    /// Drop every packet in and out.
    Blackhole,
    /// Drop this percentage of packets in and out, each drawn at random.
    Loss(u8),
    /// Send at most this many bits per second (egress of the interface).
    Rate(u64),
}

/// What a shaping is confined to: one address, or one TCP port of it (the harness's
/// delaying proxy, on the run network's gateway, which also carries other traffic).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    pub ip: IpAddr,
    pub port: Option<u16>,
}

impl Endpoint {
    /// All of `ip`'s traffic, an address as the engine gives it.
    pub fn host(ip: &str) -> Result<Self, EngineError> {
        let ip = ip
            .parse()
            .map_err(|e| EngineError::State(format!("cannot read the address {ip:?}: {e}")))?;
        Ok(Endpoint { ip, port: None })
    }

    /// The iptables match for packets from it (`-s`, `--sport`) or to it (`-d`,
    /// `--dport`), with a trailing space.
    fn matcher(&self, host: &str, port: &str) -> String {
        let bits = if self.ip.is_ipv4() { 32 } else { 128 };
        match self.port {
            None => format!("{host} {}/{bits} ", self.ip),
            Some(p) => format!("{host} {}/{bits} -p tcp {port} {p} ", self.ip),
        }
    }
}

impl std::fmt::Display for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.port {
            None => write!(f, "{}", self.ip),
            Some(port) => write!(f, "{}", std::net::SocketAddr::new(self.ip, port)),
        }
    }
}

impl Shaping {
    /// The helper's entry point and arguments, and the file it reads (iptables), for
    /// all the container's traffic, or (`only`) its traffic with these endpoints.
    fn command(
        self,
        on: bool,
        device: &str,
        only: Option<&[Endpoint]>,
    ) -> (&'static str, Vec<String>, Option<String>) {
        let op = if on { "-I" } else { "-D" };
        let rules = |matcher: &str| {
            let mut text = String::from("*filter\n");
            for (from, to) in match only {
                None => vec![(String::new(), String::new())],
                Some(endpoints) => endpoints
                    .iter()
                    .map(|e| (e.matcher("-s", "--sport"), e.matcher("-d", "--dport")))
                    .collect(),
            } {
                text.push_str(&format!(
                    "{op} INPUT {from}{matcher}-j DROP\n{op} OUTPUT {to}{matcher}-j DROP\n"
                ));
            }
            text + "COMMIT\n"
        };
        let restore = restore_rules();
        match self {
            Shaping::Blackhole => (IPTABLES, restore, Some(rules(""))),
            Shaping::Loss(percent) => {
                let matcher = format!(
                    "-m statistic --mode random --probability {:.2} ",
                    f64::from(percent) / 100.0
                );
                (IPTABLES, restore, Some(rules(&matcher)))
            }
            Shaping::Rate(bits) if on => {
                // A burst of 20 ms at the rate (at least two full frames), and a queue
                // that holds 200 ms before dropping: a slow link, not a lossy one.
                let burst = (bits / 8 / 50).max(3028);
                let args = format!(
                    "qdisc replace dev {device} root tbf rate {bits}bit burst {burst} latency 200ms"
                );
                (TC, args.split(' ').map(String::from).collect(), None)
            }
            Shaping::Rate(_) => {
                let args = format!("qdisc del dev {device} root");
                (TC, args.split(' ').map(String::from).collect(), None)
            }
        }
    }

    /// What the shaping needs from the kernel.
    pub fn needs(self) -> KernelFeature {
        match self {
            Shaping::Blackhole => KernelFeature::Iptables,
            Shaping::Loss(_) => KernelFeature::IptablesStatistic,
            Shaping::Rate(_) => KernelFeature::Tbf,
        }
    }
}

const IPTABLES: &str = "/usr/sbin/xtables-nft-multi";

/// iptables' arguments to add (or delete) the rules of `/etc/sessionstorm.rules`,
/// leaving every other rule as it is.
fn restore_rules() -> Vec<String> {
    ["iptables-restore", "--noflush", "/etc/sessionstorm.rules"]
        .map(String::from)
        .to_vec()
}
const TC: &str = "/usr/sbin/tc";

/// Applies (`on`) or undoes `shaping` on `container` (a name, an id, or `none` for a
/// helper in a namespace of its own, as the kernel probe uses), from a helper named
/// `helper` labelled `labels`. A kernel that lacks the mechanism makes the helper
/// fail: that is reported as such, never taken for a fault in place.
pub(super) async fn shape(
    engine: &Engine,
    helper: &str,
    labels: HashMap<String, String>,
    container: &str,
    shaping: Shaping,
    on: bool,
) -> Result<(), EngineError> {
    run_helper(engine, helper, labels, container, shaping, None, on).await
}

/// [`shape`], for `container`'s traffic with `peers` only: one pair of rules per
/// endpoint, so undoing it with the same `peers` deletes exactly the rules it added.
/// A rate is a qdisc on the whole interface, and an empty list would confine the
/// shaping to nothing: both are refused.
pub(super) async fn shape_with(
    engine: &Engine,
    helper: &str,
    labels: HashMap<String, String>,
    container: &str,
    shaping: Shaping,
    peers: &[Endpoint],
    on: bool,
) -> Result<(), EngineError> {
    if matches!(shaping, Shaping::Rate(_)) || peers.is_empty() {
        return Err(EngineError::State(format!(
            "{shaping:?} cannot be confined to the traffic with {peers:?} of {container}"
        )));
    }
    run_helper(engine, helper, labels, container, shaping, Some(peers), on).await
}

/// The helper of [`shape`] and [`shape_with`]: all the traffic, or `only` that with
/// these endpoints.
async fn run_helper(
    engine: &Engine,
    helper: &str,
    labels: HashMap<String, String>,
    container: &str,
    shaping: Shaping,
    only: Option<&[Endpoint]>,
    on: bool,
) -> Result<(), EngineError> {
    // A probe's namespace of its own has only the loopback interface.
    let device = if container == "none" { "lo" } else { INTERFACE };
    let (entrypoint, cmd, rules) = shaping.command(on, device, only);
    let helper = Helper {
        name: helper,
        labels,
        container,
    };
    run(engine, helper, entrypoint, cmd, rules, shaping.needs()).await
}

/// Sends (`on`) the TCP connections `container` opens to `from` to `to` instead
/// (DNAT in its namespace): the container still believes it talks to `from`.
/// `on = false` deletes the same rule; connections already open keep their way.
pub(super) async fn redirect(
    engine: &Engine,
    helper: &str,
    labels: HashMap<String, String>,
    container: &str,
    from: std::net::SocketAddr,
    to: std::net::SocketAddr,
    on: bool,
) -> Result<(), EngineError> {
    let op = if on { "-I" } else { "-D" };
    let rules = format!(
        "*nat\n{op} OUTPUT -p tcp -d {} --dport {} -j DNAT --to-destination {to}\nCOMMIT\n",
        from.ip(),
        from.port()
    );
    let helper = Helper {
        name: helper,
        labels,
        container,
    };
    let needs = KernelFeature::Iptables;
    run(
        engine,
        helper,
        IPTABLES,
        restore_rules(),
        Some(rules),
        needs,
    )
    .await
}

/// A helper container: its name and labels, and the container whose network
/// namespace it joins.
struct Helper<'a> {
    name: &'a str,
    labels: HashMap<String, String>,
    container: &'a str,
}

/// Runs `entrypoint cmd` in `helper`, with `rules` as `/etc/sessionstorm.rules`, to
/// its end; a failure names what the kernel may lack (`needs`).
async fn run(
    engine: &Engine,
    helper: Helper<'_>,
    entrypoint: &str,
    cmd: Vec<String>,
    rules: Option<String>,
    needs: KernelFeature,
) -> Result<(), EngineError> {
    let Helper {
        name: helper,
        labels,
        container,
    } = helper;
    engine
        .create(&ContainerSpec {
            name: helper.to_string(),
            image: crate::images::BuiltIn::Nettools.tag().to_string(),
            entrypoint: vec![entrypoint.to_string()],
            cmd: cmd.clone(),
            labels,
            network: if container == "none" {
                "none".into()
            } else {
                format!("container:{container}")
            },
            cap_add: vec!["NET_ADMIN".into()],
            ..Default::default()
        })
        .await?;
    if let Some(rules) = rules {
        let uploaded = engine
            .upload(helper, "/etc", tar_of("sessionstorm.rules", &rules))
            .await;
        if let Err(err) = uploaded {
            let _ = engine.remove(helper).await;
            return Err(err);
        }
    }
    let (code, logs) = engine.run_to_end(helper).await?;
    if code != 0 {
        let what = cmd.join(" ");
        return Err(EngineError::State(format!(
            "`{what}` in the network namespace of {container} failed (exit {code}): {}. \
             The engine's kernel may lack {}; nothing was changed",
            logs.trim(),
            needs.describe()
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loss_drops_that_share_both_ways_and_its_undoing_deletes_the_same_rules() {
        let (entry, args, rules) = Shaping::Loss(30).command(true, INTERFACE, None);
        assert_eq!(entry, IPTABLES);
        assert_eq!(args[0], "iptables-restore");
        let rules = rules.unwrap();
        assert!(
            rules.contains("-I INPUT -m statistic --mode random --probability 0.30 -j DROP"),
            "{rules}"
        );
        assert!(
            rules.contains("-I OUTPUT -m statistic --mode random --probability 0.30 -j DROP"),
            "{rules}"
        );
        let undo = Shaping::Loss(30).command(false, INTERFACE, None).2.unwrap();
        assert_eq!(undo, rules.replace("-I ", "-D "));
    }

    #[test]
    fn a_rate_is_a_tbf_on_the_interface_and_its_undoing_deletes_the_root_qdisc() {
        let (entry, args, rules) = Shaping::Rate(1_000_000).command(true, "eth0", None);
        assert_eq!((entry, rules), (TC, None));
        assert_eq!(
            args.join(" "),
            "qdisc replace dev eth0 root tbf rate 1000000bit burst 3028 latency 200ms"
        );
        // 20 ms of a fast rate, above the two-frame floor.
        let fast = Shaping::Rate(100_000_000)
            .command(true, "eth0", None)
            .1
            .join(" ");
        assert!(fast.contains("burst 250000 "), "{fast}");
        let undo = Shaping::Rate(1_000_000)
            .command(false, "lo", None)
            .1
            .join(" ");
        assert_eq!(undo, "qdisc del dev lo root");
    }

    #[test]
    fn a_shaping_with_peers_drops_only_their_packets_and_its_undoing_deletes_those_rules() {
        let peers = [
            Endpoint {
                ip: "172.18.0.2".parse().unwrap(),
                port: None,
            },
            Endpoint {
                ip: "172.18.0.1".parse().unwrap(),
                port: Some(40211),
            },
        ];
        let rules = Shaping::Blackhole
            .command(true, INTERFACE, Some(&peers))
            .2
            .unwrap();
        assert_eq!(
            rules,
            "*filter\n\
             -I INPUT -s 172.18.0.2/32 -j DROP\n\
             -I OUTPUT -d 172.18.0.2/32 -j DROP\n\
             -I INPUT -s 172.18.0.1/32 -p tcp --sport 40211 -j DROP\n\
             -I OUTPUT -d 172.18.0.1/32 -p tcp --dport 40211 -j DROP\n\
             COMMIT\n"
        );
        let undo = Shaping::Blackhole
            .command(false, INTERFACE, Some(&peers))
            .2
            .unwrap();
        assert_eq!(undo, rules.replace("-I ", "-D "));
        let lossy = Shaping::Loss(5)
            .command(true, INTERFACE, Some(&peers[..1]))
            .2
            .unwrap();
        assert!(
            lossy.contains(
                "-I INPUT -s 172.18.0.2/32 -m statistic --mode random --probability 0.05 -j DROP\n"
            ),
            "{lossy}"
        );
        assert_eq!(peers[1].to_string(), "172.18.0.1:40211");
    }
}
