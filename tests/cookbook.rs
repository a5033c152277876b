//! The README's cookbook of flows for real session libraries: every block must stay
//! a valid scenario, so a person can copy one, change the image and port, and run it.

mod common;

use common::{bin, repo, temp_scenario};

/// The ```toml blocks of the README's cookbook section.
fn cookbook() -> Vec<String> {
    let readme = std::fs::read_to_string(repo("README.md")).unwrap();
    let start = readme
        .find("### Cookbook: flows for real session libraries")
        .expect("the README has a cookbook");
    let section = &readme[start..];
    let section = &section[..section.find("\n## ").unwrap_or(section.len())];
    section
        .split("```toml\n")
        .skip(1)
        .map(|block| block[..block.find("```").expect("a closed block")].to_string())
        .collect()
}

#[test]
fn every_cookbook_flow_validates() {
    let flows = cookbook();
    assert_eq!(flows.len(), 8, "one flow per framework");
    for flow in flows {
        let (_dir, path) = temp_scenario(&flow);
        let out = bin().args(["validate", &path]).output().unwrap();
        assert!(
            out.status.success(),
            "{flow}\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(flow.contains("[flow]"), "{flow}");
    }
}
