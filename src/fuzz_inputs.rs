//! Entry points for fuzzing the input side, shared by the cargo-fuzz targets in
//! `fuzz/` and by the bounded mutation test in `tests/fuzz_inputs.rs`: each takes
//! arbitrary bytes and must return without panicking, whatever they are.

use std::path::PathBuf;

use crate::plan;
use crate::scenario::overrides::{Overrides, Setting};
use crate::scenario::Source;
use crate::session::State;
use crate::validate;

/// Reads `data` as a scenario, validates it, and if it is valid draws its plan and
/// fault timeline the way `sessionstorm plan` does.
pub fn scenario(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    scenario_with(text, &[]);
}

/// Like [`scenario`], with `--set` overrides (one `key=value` a line after a line
/// `---` at the end of `data`).
pub fn scenario_with_overrides(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let (scenario, settings) = text.split_once("\n---\n").unwrap_or((text, ""));
    let settings: Vec<Setting> = settings.lines().filter_map(|l| l.parse().ok()).collect();
    scenario_with(scenario, &settings);
}

fn scenario_with(text: &str, settings: &[Setting]) {
    let source = Source {
        path: PathBuf::from("fuzz.toml"),
        text: text.to_string(),
    };
    let overrides = Overrides {
        set: settings.to_vec(),
        ..Overrides::default()
    };
    match validate::build(&source, &overrides) {
        Ok(plan) => {
            let _ = crate::commands::describe_plan(&plan);
        }
        Err(problems) => {
            assert!(!problems.is_empty(), "an error always names a problem");
            for problem in problems {
                let _ = problem.to_string();
            }
        }
    }
}

/// The duration parsers: `--duration` and the scenario's (humantime), `--set`, and
/// the session state's reader.
pub fn parsers(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(d) = crate::cli::parse_duration(text) {
        assert!(
            !d.is_zero() && d <= plan::MAX_DURATION,
            "{text:?} gave {d:?}"
        );
    }
    let _ = text.parse::<Setting>();
    let _ = crate::secrets::mask_scenario(text);
    // The session state's hand-written reader reads what serde_json reads, the same.
    if let Some(state) = crate::session::json::plain(text) {
        let serde: Option<State> = serde_json::from_str(text).ok();
        assert_eq!(serde, Some(state), "{text:?}");
    }
}

/// Bytes as a service's answers on one connection: the load's HTTP reader must
/// sort them into answers or a failure, never panic, never read a body larger
/// than what came.
pub fn answers(data: &[u8]) {
    for (_, body) in crate::load::wire::read_answers(data).into_iter().flatten() {
        assert!(
            body <= data.len(),
            "a body of {body} bytes from {} bytes",
            data.len()
        );
    }
}
