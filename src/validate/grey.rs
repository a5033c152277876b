//! The settings of the grey faults (`cpu`, `loss`, `bandwidth`, `oom`): each fault's
//! own key, checked against the fault it is given to, and parsed into plan units.
//!
//! Apart from [`super::chaos`] because these are quantities with units (a share of a
//! core, a percentage, a bit rate, a size), each with its own parser and range.

use std::time::Duration;

use toml::Spanned;

use super::Validator;
use crate::plan::chaos::MIN_MEMORY;
use crate::plan::Fault;
use crate::scenario;

/// A rate below this makes `tbf` drop nearly everything: that is a `blackhole`.
const MIN_RATE: u64 = 8_000;
const RATE_FORMAT: &str =
    "a number with a unit: bit, kbit, mbit or gbit (per second), for example \"1mbit\"";
const MEMORY_FORMAT: &str =
    "a number with a unit: KiB, MiB or GiB (or k, m, g), for example \"32MiB\"";

/// Which key each grey fault takes, for the messages.
const KEYS: [(&str, &[&str]); 6] = [
    ("cpus", &["cpu"]),
    ("loss", &["loss"]),
    ("rate", &["bandwidth"]),
    ("memory", &["oom"]),
    ("delay", &["latency", "slow_store"]),
    ("jitter", &["latency", "slow_store"]),
];
/// More than this is an outage, not a slow store: use `pause` or `blackhole`.
const MAX_DELAY: Duration = Duration::from_secs(60);

impl Validator<'_> {
    /// The fault named `name`, with its setting from `raw`; `None` (and a problem
    /// noted) when the setting is missing or wrong. `Some(None)` for a name that is
    /// no grey fault.
    pub(super) fn grey_fault(
        &mut self,
        name: &str,
        raw: &scenario::Chaos,
    ) -> Option<Option<Fault>> {
        let span = raw.fault.span();
        let fault = match name {
            "cpu" => {
                let Some(cpus) = &raw.cpus else {
                    self.problem(span, "fault \"cpu\" needs `cpus`, the share of one core left to the replica, e.g. `cpus = 0.1`");
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
                Fault::Cpu {
                    millicores: (value * 1000.0).round() as u32,
                }
            }
            "loss" => {
                let Some(loss) = &raw.loss else {
                    self.problem(span, "fault \"loss\" needs `loss`, the share of packets dropped, e.g. `loss = \"5%\"`");
                    return None;
                };
                match parse_percent(loss.get_ref()) {
                    Some(percent) => Fault::Loss { percent },
                    None => {
                        self.problem(
                            loss.span(),
                            format!("`chaos.loss` = {:?}: accepted values are 1% to 99% (100% is a \"blackhole\")", loss.get_ref()),
                        );
                        return None;
                    }
                }
            }
            "bandwidth" => {
                let Some(rate) = &raw.rate else {
                    self.problem(span, "fault \"bandwidth\" needs `rate`, what the container may send per second, e.g. `rate = \"1mbit\"`");
                    return None;
                };
                match parse_rate(rate.get_ref()) {
                    Ok(bits_per_sec) if bits_per_sec >= MIN_RATE => {
                        Fault::Bandwidth { bits_per_sec }
                    }
                    Ok(_) => {
                        self.problem(rate.span(), "`chaos.rate` must be at least 8kbit; to cut traffic off use fault \"blackhole\"");
                        return None;
                    }
                    Err(why) => {
                        self.problem(
                            rate.span(),
                            format!(
                                "`chaos.rate` = {:?}: {why}; write {RATE_FORMAT}",
                                rate.get_ref()
                            ),
                        );
                        return None;
                    }
                }
            }
            "oom" => match &raw.memory {
                None => Fault::Oom { bytes: None },
                Some(memory) => match parse_bytes(memory.get_ref()) {
                    Ok(bytes) if bytes >= MIN_MEMORY => Fault::Oom { bytes: Some(bytes) },
                    Ok(_) => {
                        self.problem(memory.span(), "`chaos.memory` must be at least 6MiB, the smallest limit Docker accepts");
                        return None;
                    }
                    Err(why) => {
                        self.problem(
                            memory.span(),
                            format!(
                                "`chaos.memory` = {:?}: {why}; write {MEMORY_FORMAT}",
                                memory.get_ref()
                            ),
                        );
                        return None;
                    }
                },
            },
            "slow_store" | "latency" => {
                let Some(delay) = &raw.delay else {
                    self.problem(span, format!("fault \"{name}\" needs `delay`, how long answers are held back, e.g. `delay = \"300ms\"`"));
                    return None;
                };
                let delay = self.positive_duration(delay, "chaos.delay")?;
                let jitter = match &raw.jitter {
                    Some(j) => self.duration(j, "chaos.jitter")?,
                    None => Duration::ZERO,
                };
                if delay + jitter > MAX_DELAY {
                    self.problem(span, "`chaos.delay` + `chaos.jitter` must stay within 60s; to stop the store use fault \"pause\"");
                    return None;
                }
                let (delay_ms, jitter_ms) = (delay.as_millis() as u32, jitter.as_millis() as u32);
                if name == "latency" {
                    Fault::Latency {
                        delay_ms,
                        jitter_ms,
                    }
                } else {
                    Fault::SlowStore {
                        delay_ms,
                        jitter_ms,
                    }
                }
            }
            _ => return Some(None),
        };
        Some(Some(fault))
    }

    /// Notes a grey fault's key given to a fault that does not take it.
    pub(super) fn grey_keys_fit(&mut self, fault: &str, raw: &scenario::Chaos) {
        let given = [
            raw.cpus.as_ref().map(Spanned::span),
            raw.loss.as_ref().map(Spanned::span),
            raw.rate.as_ref().map(Spanned::span),
            raw.memory.as_ref().map(Spanned::span),
            raw.delay.as_ref().map(Spanned::span),
            raw.jitter.as_ref().map(Spanned::span),
        ];
        for ((key, owners), span) in KEYS.iter().zip(given) {
            if let Some(span) = span {
                if !owners.contains(&fault) {
                    let names: Vec<String> = owners.iter().map(|o| format!("\"{o}\"")).collect();
                    self.problem(
                        span,
                        format!(
                            "`chaos.{key}` applies only to fault {}",
                            names.join(" and ")
                        ),
                    );
                }
            }
        }
    }
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
