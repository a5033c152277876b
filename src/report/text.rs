//! The verdict block printed on the terminal at the end of a run: a few lines read
//! from the summary, so the terminal and the files cannot disagree.

use std::fmt::Write as _;

use super::Summary;

impl Summary {
    /// On an orchestrator: its tasks, nodes, replacements per slot, and the time
    /// from each kill to a new task serving (median and max over the run's kills).
    fn scheduling_line(&self) -> Option<String> {
        let facts = self.scheduling.as_ref()?;
        let mut nodes: Vec<&str> = facts.tasks.iter().map(|t| t.node.as_str()).collect();
        nodes.sort_unstable();
        nodes.dedup();
        let per_slot: Vec<String> = (facts.restarts_by_slot.iter())
            .map(|(slot, n)| format!("replica-{slot} {n}"))
            .collect();
        let mut line = format!(
            "{}: {} tasks on {} ({}); replacements per slot: {}",
            facts.engine,
            facts.tasks.len(),
            if nodes.len() == 1 { "node" } else { "nodes" },
            nodes.join(", "),
            per_slot.join(", ")
        );
        let mut ready: Vec<u64> = (self.faults.events.iter())
            .filter(|e| e.replacement.is_some())
            .filter_map(|e| e.ready_after_ms)
            .collect();
        ready.sort_unstable();
        if let (Some(median), Some(max)) = (ready.get(ready.len() / 2), ready.last()) {
            let _ = write!(
                line,
                "; kill or stop to new task serving (restart delay {} ms): median {median} ms, max {max} ms over {} faults",
                facts.restart_delay_ms,
                ready.len()
            );
        }
        Some(line)
    }

    /// What the store did, where it was watched: its first events (a Sentinel's
    /// lines and the cluster's view are in events.csv), how many more, which member was primary when, and
    /// how far its replicas were behind at each fault.
    fn store_lines(&self, out: &mut String) {
        const SHOWN: usize = 6;
        let Some(store) = &self.store else { return };
        if store.events.is_empty() && store.primaries.is_empty() {
            return;
        }
        let _ = writeln!(
            out,
            "store {}: {} events, {} keys evicted",
            store.member, store.events_total, store.evicted_total
        );
        let own = (store.events.iter()).filter(|e| !e.kind.is_an_account());
        let mut shown = 0;
        for e in own.take(SHOWN) {
            let who = match e.member.as_str() {
                "" => String::new(),
                member => format!("{member} "),
            };
            let _ = writeln!(out, "  {:.1}s {who}{}", e.at_ms as f64 / 1000.0, e.detail);
            shown += 1;
        }
        let more = store.events_total.saturating_sub(shown);
        if more > 0 {
            let _ = writeln!(out, "  … {more} more in events.csv");
        }
        let spans: Vec<String> = (store.primaries.iter())
            .map(|s| {
                let (from, to) = (s.from_ms as f64 / 1000.0, s.to_ms as f64 / 1000.0);
                format!("{} {from:.1}–{to:.1}s", s.member)
            })
            .collect();
        if !spans.is_empty() {
            let _ = writeln!(out, "  primary: {}", shortened(&spans, SHOWN));
        }
        let lags: Vec<String> = (self.faults.events.iter())
            .filter_map(|f| {
                let bytes = f.store_lag_bytes?;
                let at = f.injected_ms as f64 / 1000.0;
                Some(format!("{} {} at {at:.1}s: {bytes}", f.fault, f.target))
            })
            .collect();
        if !lags.is_empty() {
            let _ = writeln!(
                out,
                "  replicas' bytes behind the primary at each fault: {}",
                shortened(&lags, SHOWN)
            );
        }
    }

    /// The verdict block printed at the end of a run.
    pub fn render_text(&self) -> String {
        let mut out = String::new();
        let requests: u64 = self.operations.values().map(|o| o.ok + o.errors).sum();
        let errors: u64 = self.operations.values().map(|o| o.errors).sum();
        let _ = writeln!(
            out,
            "\nsessions {} created, {} checked in the final sweep, {} unverified",
            self.sessions.created, self.sessions.checked, self.sessions.unverified
        );
        if self.sessions.expired > 0 {
            let _ = writeln!(
                out,
                "sessions {} expired by design (lost after a pause longer than the flow's idle_timeout; the sweep began {:.1}s after the load)",
                self.sessions.expired,
                self.sessions.sweep_after_ms as f64 / 1000.0
            );
        }
        let f = &self.faults;
        let _ = writeln!(
            out,
            "operations {requests} ({errors} failed requests: availability, not loss) · {} load, {} missed starts · faults {} injected, {} skipped, {} failed",
            self.load.model, self.load.missed_starts, f.injected, f.skipped, f.failed
        );
        for (message, n) in &self.error_messages {
            let _ = writeln!(out, "  {n} failed: {message}");
        }
        match &f.worst {
            Some(w) => {
                let _ = writeln!(
                    out,
                    "recovery: {} failed requests in fault windows totalling {} ms; worst window {} ms ({} failed) after {} {} at {:.1}s; recovery_ms {}",
                    f.failed_requests,
                    f.total_window_ms,
                    w.window_ms,
                    w.failed_requests,
                    w.fault,
                    w.target,
                    w.injected_ms as f64 / 1000.0,
                    f.recovery_ms
                );
            }
            None if f.injected > 0 => {
                let _ = writeln!(out, "recovery: no request failed after any fault");
            }
            None => {}
        }
        if let Some(line) = self.scheduling_line() {
            let _ = writeln!(out, "{line}");
        }
        self.store_lines(&mut out);
        if f.revert_failed > 0 {
            let _ = writeln!(
                out,
                "WARNING: {} fault reverts failed; see faults.events (all in events.csv)",
                f.revert_failed
            );
        }
        if let Some(why) = &f.halted {
            let _ = writeln!(out, "WARNING: chaos stopped early: {why}");
        }
        let _ = writeln!(
            out,
            "\nlatency (ms)   count      p50      p90      p99    p99.9      max  uncorrected p99"
        );
        for (op, summary) in &self.operations {
            let p = &summary.latency_ms;
            let _ = writeln!(
                out,
                "  {:<8} {:>9} {:>8.2} {:>8.2} {:>8.2} {:>8.2} {:>8.2} {:>16.2}",
                op.name(),
                p.count,
                p.p50,
                p.p90,
                p.p99,
                p.p999,
                p.max,
                summary.latency_uncorrected_ms.p99
            );
        }
        let _ = writeln!(out, "\nanomalies {}", self.anomalies.total);
        for (kind, n) in self.anomalies.by_kind.iter().filter(|(_, n)| **n > 0) {
            let _ = writeln!(out, "  {kind:<13} {n}");
        }
        for a in self.anomalies.samples.iter().take(5) {
            let _ = writeln!(
                out,
                "  e.g. {} at {:.1}s: session {} ({} served by {}): {}{}",
                a.kind,
                a.at.as_secs_f64(),
                a.session,
                a.op.name(),
                a.served_by.as_deref().unwrap_or("?"),
                a.detail,
                [&a.nearest_fault, &a.nearest_store_event]
                    .into_iter()
                    .flatten()
                    .map(|f| format!(" [after {f}]"))
                    .collect::<String>()
            );
        }
        if !self.gates.is_empty() {
            let _ = writeln!(out, "\ngates");
            for gate in &self.gates {
                let value = gate
                    .value
                    .map_or_else(|| "no value".to_string(), |v| format!("{v}"));
                let mark = if gate.passed { "pass" } else { "FAIL" };
                let _ = writeln!(out, "  {mark} {:<32} (run: {value})", gate.expr);
            }
        }
        let verdict = match self.verdict.status {
            "passed" => "PASSED: no session lost".to_string(),
            status => format!(
                "{}: {}",
                status.to_uppercase(),
                self.verdict.reasons.join("; ")
            ),
        };
        let _ = writeln!(out, "\nverdict {verdict}");
        out
    }
}

/// The first `n` of `items`, joined, and how many more.
fn shortened(items: &[String], n: usize) -> String {
    let mut text = items[..items.len().min(n)].join(", ");
    if items.len() > n {
        let _ = write!(text, " and {} more", items.len() - n);
    }
    text
}
