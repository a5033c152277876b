//! The `blackhole` fault's mechanism, shared by the harness-made and the attached
//! cluster: DROP rules in a container's network namespace, put there by a
//! short-lived helper container from `sessionstorm/nettools`.

use std::collections::HashMap;

use super::engine::{ContainerSpec, Engine, EngineError};
use super::upload::tar_of;

/// Inserts (`-I`) or deletes (`-D`) DROP rules for all traffic in and out of
/// `container`, from a helper container named `helper` (labelled `labels`) sharing
/// its network namespace; the helper is removed when it is done. A kernel without
/// nf_tables (or an engine that refuses NET_ADMIN) makes the helper fail: that is
/// reported as such, never taken for a blackhole.
pub(super) async fn iptables(
    engine: &Engine,
    helper: &str,
    labels: HashMap<String, String>,
    container: &str,
    op: &str,
) -> Result<(), EngineError> {
    let rules = format!("*filter\n{op} INPUT -j DROP\n{op} OUTPUT -j DROP\nCOMMIT\n");
    engine
        .create(&ContainerSpec {
            name: helper.to_string(),
            image: crate::images::BuiltIn::Nettools.tag().to_string(),
            cmd: ["iptables-restore", "--noflush", "/etc/blackhole.rules"]
                .map(String::from)
                .to_vec(),
            labels,
            network: format!("container:{container}"),
            cap_add: vec!["NET_ADMIN".into()],
            ..Default::default()
        })
        .await?;
    let uploaded = engine
        .upload(helper, "/etc", tar_of("blackhole.rules", &rules))
        .await;
    if let Err(err) = uploaded {
        let _ = engine.remove(helper).await;
        return Err(err);
    }
    let (code, logs) = engine.run_to_end(helper).await?;
    if code != 0 {
        return Err(EngineError::State(format!(
            "blackhole: iptables {op} in the network namespace of {container} failed \
             (exit {code}): {}. This kernel may lack nf_tables/netfilter support for \
             containers; nothing was blackholed",
            logs.trim()
        )));
    }
    Ok(())
}
