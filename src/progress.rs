//! What a run shows while it goes on, and how loud the harness is.
//!
//! On a terminal a live display (indicatif, on stderr): elapsed/total as a bar, ops/s,
//! p99 of the last interval, errors, anomalies, replicas answering, the last fault.
//! Off a terminal (CI logs, pipes) one plain line per interval, no escape codes.
//! `NO_COLOR` turns colour off in both. `-q` keeps only the verdict and the report
//! path on stdout.
//!
//! Every line the harness prints goes through [`emit`] (the `say!` macro), so lines
//! printed while the live display is up are drawn above it instead of through it.

use std::io::{IsTerminal as _, Write as _};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::metrics::Live;

/// How often the plain line is printed off a terminal.
pub const PLAIN_EVERY: Duration = Duration::from_secs(5);
/// How often the live display is redrawn.
const LIVE_EVERY: Duration = Duration::from_millis(500);

static QUIET: AtomicBool = AtomicBool::new(false);
static BAR: Mutex<Option<ProgressBar>> = Mutex::new(None);

/// `-q`: from now on only [`emit_always`] lines reach stdout.
pub fn set_quiet(quiet: bool) {
    QUIET.store(quiet, Ordering::Relaxed);
}

pub fn is_quiet() -> bool {
    QUIET.load(Ordering::Relaxed)
}

/// Whether colour may be used: not when `NO_COLOR` is set to anything non-empty
/// (<https://no-color.org>).
pub fn color_allowed() -> bool {
    std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
}

/// How progress is shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// A redrawn display on a terminal.
    Live,
    /// One line per interval.
    Plain,
    /// Nothing (`-q`).
    Quiet,
}

impl Mode {
    /// Live only when both stdout and stderr are terminals that can redraw.
    pub fn detect() -> Mode {
        if is_quiet() {
            Mode::Quiet
        } else if std::io::stdout().is_terminal()
            && std::io::stderr().is_terminal()
            && std::env::var("TERM").map_or(true, |t| t != "dumb")
        {
            Mode::Live
        } else {
            Mode::Plain
        }
    }
}

/// Prints a line on stdout unless quiet, above the live display when one is up;
/// a closed stdout is ignored (the report on disk matters more).
pub fn emit(line: &str) {
    if !is_quiet() {
        emit_always(line);
    }
}

/// Prints a line on stdout even when quiet: the verdict and the report path.
pub fn emit_always(line: &str) {
    let print = || {
        let _ = writeln!(std::io::stdout().lock(), "{line}");
    };
    let bar = BAR.lock().ok().and_then(|b| b.clone());
    match bar {
        Some(bar) => bar.suspend(print),
        None => print(),
    }
}

/// Where tracing writes: stderr, above the live display when one is up, so a log
/// line does not tear through the bar.
pub struct LogWriter;

impl std::io::Write for LogWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let bar = BAR.lock().ok().and_then(|b| b.clone());
        match bar {
            Some(bar) => bar.suspend(|| std::io::stderr().write(buf)),
            None => std::io::stderr().write(buf),
        }
    }

    fn flush(&mut self) -> std::io::Result<()> {
        std::io::stderr().flush()
    }
}

/// What the display shows at one moment.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Snapshot {
    pub elapsed: Duration,
    pub total: Duration,
    pub ops: u64,
    pub ops_per_s: f64,
    pub p99_ms: f64,
    pub errors: u64,
    pub missed_starts: u64,
    pub anomalies: u64,
    pub sessions: u64,
    pub serving: u64,
    pub replicas: usize,
    pub faults: u64,
    pub last_fault: Option<String>,
}

impl Snapshot {
    /// The counters of one plain line (and of the live display's message).
    pub fn counters(&self) -> String {
        let mut line = format!(
            "{:.0} ops/s · p99 {:.1} ms · {} errors · {} anomalies · {}/{} replicas answering · {} sessions · {} faults",
            self.ops_per_s,
            self.p99_ms,
            self.errors,
            self.anomalies,
            self.serving,
            self.replicas,
            self.sessions,
            self.faults,
        );
        if self.missed_starts > 0 {
            line.push_str(&format!(" · {} missed starts", self.missed_starts));
        }
        if let Some(fault) = &self.last_fault {
            line.push_str(&format!(" · last fault: {fault}"));
        }
        line
    }

    /// One line for logs: no escape codes, no carriage returns.
    pub fn plain_line(&self) -> String {
        format!(
            "[{:>5.1}s/{}] {} requests · {}",
            self.elapsed.as_secs_f64(),
            humantime::format_duration(self.total),
            self.ops,
            self.counters()
        )
    }
}

/// The last fault, in words, as the display shows it.
pub type LastFault = Arc<Mutex<Option<String>>>;

/// Shows progress until `stop`, in the given mode.
pub async fn show(
    mode: Mode,
    live: Arc<Live>,
    start: Instant,
    total: Duration,
    replicas: usize,
    last_fault: LastFault,
    stop: CancellationToken,
) {
    let every = match mode {
        Mode::Quiet => {
            stop.cancelled().await;
            return;
        }
        Mode::Plain => PLAIN_EVERY,
        Mode::Live => LIVE_EVERY,
    };
    let bar = (mode == Mode::Live).then(|| start_bar(total));
    let mut last = (Instant::now(), 0u64);
    let mut ticks = tokio::time::interval_at(start + every, every);
    loop {
        tokio::select! {
            _ = ticks.tick() => {}
            () = stop.cancelled() => break,
        }
        let now = Instant::now();
        let ops = Live::get(&live.ops);
        let window = now.duration_since(last.0).as_secs_f64().max(1e-3);
        let snapshot = Snapshot {
            elapsed: start.elapsed().min(total),
            total,
            ops,
            ops_per_s: ops.saturating_sub(last.1) as f64 / window,
            p99_ms: Live::get(&live.interval_p99_us) as f64 / 1000.0,
            errors: Live::get(&live.errors),
            missed_starts: Live::get(&live.missed_starts),
            anomalies: Live::get(&live.anomalies),
            sessions: Live::get(&live.sessions),
            serving: Live::get(&live.serving),
            replicas,
            faults: Live::get(&live.faults),
            last_fault: last_fault.lock().ok().and_then(|f| f.clone()),
        };
        last = (now, ops);
        match &bar {
            Some(bar) => {
                bar.set_position(snapshot.elapsed.as_millis() as u64);
                bar.set_message(snapshot.counters());
            }
            None => emit(&snapshot.plain_line()),
        }
    }
    if let Some(bar) = bar {
        if let Ok(mut slot) = BAR.lock() {
            *slot = None;
        }
        bar.finish_and_clear();
    }
}

fn start_bar(total: Duration) -> ProgressBar {
    let template = bar_template(color_allowed());
    let bar =
        ProgressBar::with_draw_target(Some(total.as_millis() as u64), ProgressDrawTarget::stderr());
    bar.set_style(
        ProgressStyle::with_template(template)
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
    );
    bar.set_prefix(format_hms(total));
    bar.enable_steady_tick(Duration::from_millis(250));
    if let Ok(mut slot) = BAR.lock() {
        *slot = Some(bar.clone());
    }
    bar
}

/// The live display's layout; colour only when allowed (`NO_COLOR`).
fn bar_template(color: bool) -> &'static str {
    if color {
        "{elapsed_precise}/{prefix} [{bar:24.cyan/blue}] {wide_msg}"
    } else {
        "{elapsed_precise}/{prefix} [{bar:24}] {wide_msg}"
    }
}

fn format_hms(d: Duration) -> String {
    let s = d.as_secs();
    format!("{:02}:{:02}:{:02}", s / 3600, s / 60 % 60, s % 60)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_plain_line_has_every_figure_and_no_escape_codes() {
        let snapshot = Snapshot {
            elapsed: Duration::from_millis(12_300),
            total: Duration::from_secs(30),
            ops: 4200,
            ops_per_s: 350.4,
            p99_ms: 12.25,
            errors: 3,
            missed_starts: 0,
            anomalies: 0,
            sessions: 40,
            serving: 2,
            replicas: 3,
            faults: 2,
            last_fault: Some("kill replica-1 at 10.0s".into()),
        };
        let line = snapshot.plain_line();
        assert_eq!(
            line,
            "[ 12.3s/30s] 4200 requests · 350 ops/s · p99 12.2 ms · 3 errors · 0 anomalies · 2/3 replicas answering · 40 sessions · 2 faults · last fault: kill replica-1 at 10.0s"
        );
        assert!(!line.contains('\u{1b}') && !line.contains('\r'));
    }

    #[test]
    fn no_color_means_a_template_without_colours() {
        assert!(bar_template(true).contains("cyan"));
        let plain = bar_template(false);
        assert!(!plain.contains("cyan") && !plain.contains("blue"));
        assert!(ProgressStyle::with_template(plain).is_ok());
        assert!(ProgressStyle::with_template(bar_template(true)).is_ok());
        assert_eq!(format_hms(Duration::from_secs(3725)), "01:02:05");
    }

    #[test]
    fn missed_starts_show_only_when_there_are_some() {
        let mut snapshot = Snapshot::default();
        assert!(!snapshot.counters().contains("missed"));
        snapshot.missed_starts = 4;
        assert!(snapshot.counters().contains("4 missed starts"));
    }

    #[tokio::test(start_paused = true)]
    async fn plain_mode_prints_one_line_per_interval_until_stopped() {
        // Lines go to stdout; here we only check that it ticks and stops.
        let live = Arc::new(Live::default());
        let stop = CancellationToken::new();
        let task = tokio::spawn(show(
            Mode::Plain,
            Arc::clone(&live),
            Instant::now(),
            Duration::from_secs(30),
            3,
            LastFault::default(),
            stop.clone(),
        ));
        tokio::time::sleep(PLAIN_EVERY * 2 + Duration::from_millis(10)).await;
        stop.cancel();
        task.await.unwrap();
    }
}
