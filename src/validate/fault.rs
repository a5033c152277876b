//! A chaos entry's `fault` and the keys that belong to it: a lookup in the fault
//! table ([`crate::plan::faults`]), then the entry's parser.
//!
//! The table says which keys each fault takes; the parsers here turn them into plan
//! units (a share of a core, a percentage, a bit rate, a size, a delay), each with
//! its own range. They stay in validation, keyed by the entry's kind, because they
//! report problems at a position, which the plan cannot.

use std::ops::Range;
use std::time::Duration;

use toml::Spanned;

use super::Validator;
use crate::plan::chaos::MIN_MEMORY;
use crate::plan::faults::{self, FaultEntry};
use crate::plan::{Fault, Peer};
use crate::scenario;

/// A rate below this makes `tbf` drop nearly everything: that is a `blackhole`.
const MIN_RATE: u64 = 8_000;
const RATE_FORMAT: &str =
    "a number with a unit: bit, kbit, mbit or gbit (per second), for example \"1mbit\"";
const MEMORY_FORMAT: &str =
    "a number with a unit: KiB, MiB or GiB (or k, m, g), for example \"32MiB\"";
/// The least `maxmemory` a `memory_pressure` fault sets.
const MIN_STORE_MEMORY: u64 = 1 << 20;
/// More than this is an outage, not a slow store: use `pause` or `blackhole`.
const MAX_DELAY: Duration = Duration::from_secs(60);

/// What a chaos entry's `fault` and its keys came to.
pub(super) enum Named {
    Fault(Fault),
    /// A name the table does not know (noted); the rest of the entry is still checked.
    Unknown,
    /// A known fault whose keys are missing or wrong (noted); the entry is not
    /// checked further.
    WrongKeys,
}

impl Validator<'_> {
    /// The fault `raw` names, with its settings; every key given that the fault does
    /// not take is noted.
    pub(super) fn fault(&mut self, raw: &scenario::Chaos) -> Named {
        let name = raw.fault.get_ref().as_str();
        let entry = faults::lookup(name);
        for (key, span) in fault_keys(raw) {
            let Some(span) = span else { continue };
            if !entry.is_some_and(|e| e.keys.contains(&key)) {
                let owners = faults::names_and(|e| e.keys.contains(&key));
                self.problem(
                    span,
                    format!("`chaos.{key}` applies only to fault {owners}"),
                );
            }
        }
        let Some(entry) = entry else {
            self.problem(
                raw.fault.span(),
                format!(
                    "unknown fault {name:?}; accepted values: {}",
                    faults::names(|_| true)
                ),
            );
            return Named::Unknown;
        };
        // The entry's fault, with its settings read from its keys.
        let fault = match entry.fault {
            plain @ (Fault::Kill
            | Fault::Stop
            | Fault::Restart
            | Fault::Pause
            | Fault::Disconnect
            | Fault::Failover
            | Fault::StoreSplit) => Some(plain),
            Fault::Blackhole { .. } => self.peer(raw).map(|peer| Fault::Blackhole { peer }),
            Fault::Cpu { .. } => self.cpu_share(entry, raw),
            Fault::Loss { .. } => self.packet_loss(entry, raw),
            Fault::Bandwidth { .. } => self.send_rate(entry, raw),
            Fault::Oom { .. } => self.memory_limit(raw),
            Fault::MemoryPressure { .. } => self.store_memory(entry, raw),
            delaying @ (Fault::Latency { .. }
            | Fault::SlowStore { .. }
            | Fault::StoreLag { .. }) => self
                .hold_back(entry, raw)
                .map(|(delay_ms, jitter_ms)| delaying.with_delay(delay_ms, jitter_ms)),
        };
        fault.map_or(Named::WrongKeys, Named::Fault)
    }

    /// `cpus`: the share of one core left, in thousandths.
    fn cpu_share(&mut self, entry: &FaultEntry, raw: &scenario::Chaos) -> Option<Fault> {
        let Some(cpus) = &raw.cpus else {
            self.problem(raw.fault.span(), format!("fault {:?} needs `cpus`, the share of one core left to the replica, e.g. `cpus = 0.1`", entry.name));
            return None;
        };
        let value = *cpus.get_ref();
        if !(0.01..=64.0).contains(&value) {
            self.problem(
                cpus.span(),
                format!("`chaos.cpus` = {value} is out of range; accepted values: 0.01 to 64 (a share of one core)"),
            );
            return None;
        }
        Some(Fault::Cpu {
            millicores: (value * 1000.0).round() as u32,
        })
    }

    /// `peer`, optional: whom alone the victim is cut off from (`Some(None)`: from
    /// everyone).
    fn peer(&mut self, raw: &scenario::Chaos) -> Option<Option<Peer>> {
        let Some(peer) = &raw.peer else {
            return Some(None);
        };
        let name = peer.get_ref().as_str();
        if let Some(known) = Peer::ALL.into_iter().find(|p| p.name() == name) {
            return Some(Some(known));
        }
        let accepted: Vec<String> = Peer::ALL
            .iter()
            .map(|p| format!("{:?}", p.name()))
            .collect();
        self.problem(
            peer.span(),
            format!(
                "unknown `chaos.peer` {name:?}; accepted values: {} (leave `peer` out to cut the target off from everyone)",
                accepted.join(", ")
            ),
        );
        None
    }

    /// `loss`: the share of packets dropped, and `peer`.
    fn packet_loss(&mut self, entry: &FaultEntry, raw: &scenario::Chaos) -> Option<Fault> {
        let Some(loss) = &raw.loss else {
            self.problem(
                raw.fault.span(),
                format!(
                    "fault {:?} needs `loss`, the share of packets dropped, e.g. `loss = \"5%\"`",
                    entry.name
                ),
            );
            return None;
        };
        let peer = self.peer(raw);
        let Some(percent) = parse_percent(loss.get_ref()) else {
            self.problem(
                loss.span(),
                format!(
                    "`chaos.loss` = {:?}: accepted values are 1% to 99% (100% is a {:?})",
                    loss.get_ref(),
                    Fault::Blackhole { peer: None }.name()
                ),
            );
            return None;
        };
        Some(Fault::Loss {
            percent,
            peer: peer?,
        })
    }

    /// `rate`: what the container may send per second.
    fn send_rate(&mut self, entry: &FaultEntry, raw: &scenario::Chaos) -> Option<Fault> {
        let Some(rate) = &raw.rate else {
            self.problem(raw.fault.span(), format!("fault {:?} needs `rate`, what the container may send per second, e.g. `rate = \"1mbit\"`", entry.name));
            return None;
        };
        match parse_rate(rate.get_ref()) {
            Ok(bits_per_sec) if bits_per_sec >= MIN_RATE => Some(Fault::Bandwidth { bits_per_sec }),
            Ok(_) => {
                self.problem(
                    rate.span(),
                    format!(
                        "`chaos.rate` must be at least 8kbit; to cut traffic off use fault {:?}",
                        Fault::Blackhole { peer: None }.name()
                    ),
                );
                None
            }
            Err(why) => {
                self.problem(
                    rate.span(),
                    format!(
                        "`chaos.rate` = {:?}: {why}; write {RATE_FORMAT}",
                        rate.get_ref()
                    ),
                );
                None
            }
        }
    }

    /// `memory`, optional: the limit the container is to outgrow.
    fn memory_limit(&mut self, raw: &scenario::Chaos) -> Option<Fault> {
        let Some(memory) = &raw.memory else {
            return Some(Fault::Oom { bytes: None });
        };
        let least = (MIN_MEMORY, "6MiB, the smallest limit Docker accepts");
        let bytes = self.memory_at_least(memory, least)?;
        Some(Fault::Oom { bytes: Some(bytes) })
    }

    /// `memory`, required: the store's `maxmemory` while the fault lasts.
    fn store_memory(&mut self, entry: &FaultEntry, raw: &scenario::Chaos) -> Option<Fault> {
        let Some(memory) = &raw.memory else {
            self.problem(
                raw.fault.span(),
                format!("fault {:?} needs `memory`, the store's maxmemory while it lasts, e.g. `memory = \"2MiB\"`", entry.name),
            );
            return None;
        };
        let least = (
            MIN_STORE_MEMORY,
            "1MiB: below that Redis's own buffers fill it",
        );
        let bytes = self.memory_at_least(memory, least)?;
        Some(Fault::MemoryPressure { bytes })
    }

    /// `chaos.memory` in bytes, at least `min` (`why` says why, after "at least").
    fn memory_at_least(
        &mut self,
        memory: &Spanned<String>,
        (min, why): (u64, &str),
    ) -> Option<u64> {
        match parse_bytes(memory.get_ref()) {
            Ok(bytes) if bytes >= min => Some(bytes),
            Ok(_) => {
                self.problem(
                    memory.span(),
                    format!("`chaos.memory` must be at least {why}"),
                );
                None
            }
            Err(bad) => {
                self.problem(
                    memory.span(),
                    format!(
                        "`chaos.memory` = {:?}: {bad}; write {MEMORY_FORMAT}",
                        memory.get_ref()
                    ),
                );
                None
            }
        }
    }

    /// `delay` and `jitter`: how long answers are held back, and up to how much
    /// more, in ms.
    fn hold_back(&mut self, entry: &FaultEntry, raw: &scenario::Chaos) -> Option<(u32, u32)> {
        let span = raw.fault.span();
        let Some(delay) = &raw.delay else {
            self.problem(span, format!("fault {:?} needs `delay`, how long answers are held back, e.g. `delay = \"300ms\"`", entry.name));
            return None;
        };
        let delay = self.positive_duration(delay, "chaos.delay")?;
        let jitter = match &raw.jitter {
            Some(j) => self.duration(j, "chaos.jitter")?,
            None => Duration::ZERO,
        };
        if delay + jitter > MAX_DELAY {
            self.problem(
                span,
                format!(
                    "`chaos.delay` + `chaos.jitter` must stay within 60s; to stop the store use fault {:?}",
                    Fault::Pause.name()
                ),
            );
            return None;
        }
        Some((delay.as_millis() as u32, jitter.as_millis() as u32))
    }
}

/// The `[[chaos]]` keys that belong to some faults only (those of the table's
/// `keys`), and where each was given.
fn fault_keys(raw: &scenario::Chaos) -> [(&'static str, Option<Range<usize>>); 7] {
    [
        ("cpus", raw.cpus.as_ref().map(Spanned::span)),
        ("loss", raw.loss.as_ref().map(Spanned::span)),
        ("rate", raw.rate.as_ref().map(Spanned::span)),
        ("memory", raw.memory.as_ref().map(Spanned::span)),
        ("delay", raw.delay.as_ref().map(Spanned::span)),
        ("jitter", raw.jitter.as_ref().map(Spanned::span)),
        ("peer", raw.peer.as_ref().map(Spanned::span)),
    ]
}

/// `"5%"` (or `"5"`) as a whole percentage from 1 to 99.
fn parse_percent(text: &str) -> Option<u8> {
    let number = text.trim().trim_end_matches('%').trim();
    number.parse::<u8>().ok().filter(|p| (1..=99).contains(p))
}

/// `"1mbit"`, `"500kbit"`, `"2.5 mbit"` as bits per second (decimal units, as `tc` reads them).
pub fn parse_rate(text: &str) -> Result<u64, String> {
    let (number, unit) = split_unit(text)?;
    let scale = match unit.to_ascii_lowercase().as_str() {
        "bit" | "bps" => 1.0,
        "kbit" => 1e3,
        "mbit" => 1e6,
        "gbit" => 1e9,
        "" => return Err("the unit is missing".into()),
        other => return Err(format!("unknown unit {other:?}")),
    };
    Ok((number * scale).round() as u64)
}

/// `"32MiB"`, `"64m"`, `"1GiB"` as bytes (binary units, as Docker reads `-m 64m`).
pub fn parse_bytes(text: &str) -> Result<u64, String> {
    let (number, unit) = split_unit(text)?;
    let scale = match unit.to_ascii_lowercase().as_str() {
        "k" | "kb" | "kib" => 1u64 << 10,
        "m" | "mb" | "mib" => 1 << 20,
        "g" | "gb" | "gib" => 1 << 30,
        "" => return Err("the unit is missing".into()),
        other => return Err(format!("unknown unit {other:?}")),
    };
    if number > 1024.0 * 1024.0 {
        return Err("too large".into());
    }
    Ok((number * scale as f64).round() as u64)
}

/// A positive number and the unit written after it.
fn split_unit(text: &str) -> Result<(f64, &str), String> {
    let text = text.trim();
    let at = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(at);
    match number.parse::<f64>() {
        Ok(n) if n > 0.0 && n.is_finite() => Ok((n, unit.trim())),
        _ => Err("not a positive number".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_keys_read_are_the_keys_of_the_table() {
        let raw: scenario::Chaos = toml::from_str("fault = \"kill\"").unwrap();
        let mut read: Vec<&str> = fault_keys(&raw).iter().map(|(key, _)| *key).collect();
        let mut table: Vec<&str> = faults::FAULTS
            .iter()
            .flat_map(|e| e.keys.iter().copied())
            .collect();
        read.sort_unstable();
        table.sort_unstable();
        table.dedup();
        assert_eq!(read, table);
    }

    #[test]
    fn rates_read_like_tc() {
        assert_eq!(parse_rate("1mbit"), Ok(1_000_000));
        assert_eq!(parse_rate("500 kbit"), Ok(500_000));
        assert_eq!(parse_rate("2.5Mbit"), Ok(2_500_000));
        assert!(parse_rate("1mb/s").unwrap_err().contains("unknown unit"));
        assert!(parse_rate("fast").is_err());
        assert!(parse_rate("100").unwrap_err().contains("missing"));
    }

    #[test]
    fn sizes_read_like_docker() {
        assert_eq!(parse_bytes("32MiB"), Ok(32 << 20));
        assert_eq!(parse_bytes("64m"), Ok(64 << 20));
        assert_eq!(parse_bytes("1GiB"), Ok(1 << 30));
        assert_eq!(parse_bytes("512k"), Ok(512 << 10));
        assert!(parse_bytes("-3m").is_err());
        assert!(parse_bytes("3 parsecs").is_err());
    }

    #[test]
    fn percentages_stay_between_1_and_99() {
        assert_eq!(parse_percent("5%"), Some(5));
        assert_eq!(parse_percent(" 12 "), Some(12));
        assert_eq!(parse_percent("0%"), None);
        assert_eq!(parse_percent("100%"), None);
        assert_eq!(parse_percent("half"), None);
    }
}
