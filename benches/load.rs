//! `cargo bench --bench load`: what the load engine costs, in figures.
//!
//! The endpoint is the demo service in memory mode, a separate process on a
//! loopback port, so the CPU this process uses is the driver's alone. In each of
//! `BENCH_ROUNDS` rounds, printed:
//!
//! 1. the driver flat out (16 closed-model users): throughput, CPU seconds per
//!    100k requests and allocations per request (a counting global allocator),
//!    beside `wrk -t1 -c16` (one thread, 16 keep-alive connections, flat out)
//!    reading the same session, and the ratio of CPU per request; then the same
//!    users on 2 load threads (`[load] threads = 2`), and the scaling;
//! 2. the closed model paced to `BENCH_RATE`, for what any client idle between its
//!    requests costs;
//! 3. the driver at a fixed open-model rate, session checking on: its CPU per
//!    request, corrected and uncorrected p99 and its own lateness (send − intended
//!    start), beside oha's p99 at the same rate against the same endpoint,
//!    corrected for coordinated omission as the driver's is, reading a session of 5
//!    items (the mean size of the driver's reads); twice, with the service running
//!    freely and with it stopped for 50 ms once a second ([`Stalls`]); oha's CPU
//!    per request at that rate, and the floor: a blocking client with no runtime
//!    that sleeps to each due time and then for its answer ([`floor_client`]),
//!    and the same client reading each answer only at the next due time (one
//!    wake-up a request, the least any design that starts on time can wake);
//! 4. the open model at `BENCH_HIGH_RATE`, and at three quarters of what the
//!    endpoint served flat out: the rate reached, CPU per request, lateness, how
//!    long the load thread waited for a core ([`RunQueueWait`]), and, when it falls
//!    behind, what stops it.
//!
//! Then a table of every figure's median over the rounds (lowest and highest
//! beside it, the load average of each round first), peak RSS with 100 000 live
//! sessions, the cost of recording one latency and of checking one answer.
//!
//! Figures, not assertions: the machine is shared and noisy. Tune with
//! `BENCH_RATE` (default 4000 ops/s), `BENCH_HIGH_RATE` (default 40 000 ops/s),
//! `BENCH_SECONDS` (default 10 per phase) and `BENCH_ROUNDS` (default 3).

use std::alloc::{GlobalAlloc, Layout, System};
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use sessionstorm::load::session::LiveSession;
mod common;

use common::{endpoint, env_or, load_average, open, plan, Endpoint};
use sessionstorm::load::collector::Sinks;
use sessionstorm::load::spill::{Spill, SPILL_FILE};
use sessionstorm::load::Driver;
use sessionstorm::metrics::{new_histogram, FailureTimeline, Live, Outcome};
use sessionstorm::plan::{LoadPlan, Model, Think};
use sessionstorm::session::{Op, Seen, SessionModel, State};
use sessionstorm::target::Targets;
use tokio_util::sync::CancellationToken;

/// CPU time of this process, or of its reaped children, split as user and system
/// time: on loopback the system share is mostly TCP delivery to the service,
/// including waking its threads, which costs more the idler the service is.
#[derive(Debug, Clone, Copy)]
struct Cpu {
    user: Duration,
    system: Duration,
}

impl Cpu {
    fn total(self) -> Duration {
        self.user + self.system
    }
}

impl std::ops::Sub for Cpu {
    type Output = Cpu;
    fn sub(self, earlier: Cpu) -> Cpu {
        Cpu {
            user: self.user - earlier.user,
            system: self.system - earlier.system,
        }
    }
}

fn cpu(who: i32) -> Cpu {
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: getrusage writes into the struct we own and reads nothing else.
    unsafe { libc::getrusage(who, &mut usage) };
    let tv = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    Cpu {
        user: tv(usage.ru_utime),
        system: tv(usage.ru_stime),
    }
}

/// Starts this process's peak resident set (`VmHWM`) afresh from what it holds now
/// (`clear_refs`, Linux 4.0 on), so a phase's peak is its own rather than the
/// highest of every phase before it (the open model falling behind at its high
/// rate holds far more in flight than any later phase). False where it cannot.
fn reset_peak_rss() -> bool {
    std::fs::write("/proc/self/clear_refs", "5").is_ok()
}

/// The system allocator, counting the bytes currently allocated, so the memory a
/// session holds is measured exactly rather than read off a noisy RSS.
struct Counting;

static ALLOCATED: AtomicUsize = AtomicUsize::new(0);
/// Allocations made so far (reallocations included), for allocations per request.
static ALLOCATIONS: AtomicUsize = AtomicUsize::new(0);

// SAFETY: every call is forwarded to the system allocator unchanged.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATED.fetch_add(layout.size(), Ordering::Relaxed);
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        ALLOCATED.fetch_sub(layout.size(), Ordering::Relaxed);
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCATED.fetch_add(new_size, Ordering::Relaxed);
        ALLOCATED.fetch_sub(layout.size(), Ordering::Relaxed);
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// Stalls of the endpoint: SIGSTOP for `STALL` once every `STALL_EVERY`, then
/// SIGCONT, for as long as this lives. At sub-millisecond latencies two load tools
/// compare their own overheads; with the service stalling, the p99 is the stalls'
/// (the requests due while it is stopped wait for it), and two tools that both
/// correct for coordinated omission must agree on it.
struct Stalls {
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
    pid: i32,
}

/// How long the load threads were ready to run but waited for a core (the second
/// field of each thread's `/proc/self/task/*/schedstat` is the kernel's count of
/// it), sampled every 20 ms while a phase runs: on two cores shared with the
/// endpoint and the kernel's network work, this is what makes a start late when
/// the load thread itself has CPU to spare. Up to 20 ms at a thread's start and end
/// go unseen; the sampler's own reads (well under 1% of a core) count in the
/// phase's CPU.
struct RunQueueWait {
    stop: Arc<AtomicBool>,
    sampler: std::thread::JoinHandle<Duration>,
}

impl RunQueueWait {
    fn watch() -> RunQueueWait {
        let stop = Arc::new(AtomicBool::new(false));
        let stopped = Arc::clone(&stop);
        let sampler = std::thread::spawn(move || {
            // Per load thread: its wait when first seen and when last seen.
            let mut waits: std::collections::HashMap<String, (u64, u64)> = Default::default();
            while !stopped.load(Ordering::Relaxed) {
                for task in std::fs::read_dir("/proc/self/task")
                    .into_iter()
                    .flatten()
                    .flatten()
                {
                    let path = task.path();
                    let comm = std::fs::read_to_string(path.join("comm")).unwrap_or_default();
                    let wait = std::fs::read_to_string(path.join("schedstat"))
                        .ok()
                        .and_then(|s| s.split_whitespace().nth(1)?.parse().ok());
                    // `sessionstorm-load-N`, cut to the kernel's 15 characters.
                    if let (true, Some(wait)) = (comm.trim_end() == "sessionstorm-lo", wait) {
                        let key = task.file_name().to_string_lossy().into_owned();
                        waits.entry(key).or_insert((wait, wait)).1 = wait;
                    }
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            // A thread id the kernel reused between two samples reads lower: none.
            Duration::from_nanos(
                waits
                    .values()
                    .map(|(first, last)| last.saturating_sub(*first))
                    .sum(),
            )
        });
        RunQueueWait { stop, sampler }
    }

    fn waited(self) -> Duration {
        self.stop.store(true, Ordering::Relaxed);
        self.sampler.join().unwrap_or_default()
    }
}

/// A start window wide enough for five operations at 4000 ops/s to share a
/// wake-up, for the trade of lateness against CPU.
const WIDE_WINDOW: Duration = Duration::from_millis(1);

const STALL: Duration = Duration::from_millis(50);
const STALL_EVERY: Duration = Duration::from_secs(1);

impl Stalls {
    fn start(endpoint: &Endpoint) -> Stalls {
        let pid = endpoint.child.id() as i32;
        let stop = Arc::new(AtomicBool::new(false));
        let stopped = Arc::clone(&stop);
        let thread = std::thread::spawn(move || {
            while !stopped.load(Ordering::Relaxed) {
                std::thread::sleep(STALL_EVERY - STALL);
                // SAFETY: signals to the endpoint this benchmark started and owns.
                unsafe { libc::kill(pid, libc::SIGSTOP) };
                std::thread::sleep(STALL);
                unsafe { libc::kill(pid, libc::SIGCONT) };
            }
        });
        Stalls {
            stop,
            thread: Some(thread),
            pid,
        }
    }
}

impl Drop for Stalls {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
        // SAFETY: as above; the endpoint must run on whatever happened.
        unsafe { libc::kill(self.pid, libc::SIGCONT) };
    }
}

struct Driven {
    requests: u64,
    /// Heap allocations per request, the whole process counted (the load and the
    /// final tally of sessions).
    allocations_per_request: f64,
    cpu: Cpu,
    wall: Duration,
    corrected_p99_ms: f64,
    /// Reads alone: GET /session, the request oha sends.
    read_corrected_p99_ms: f64,
    uncorrected_p99_ms: f64,
    /// Start lateness (send − intended start) p50, p99 and max, in ms.
    lateness_ms: [f64; 3],
    live_sessions: usize,
    anomalies: usize,
    missed_starts: u64,
}

fn drive(runtime: &tokio::runtime::Runtime, url: &str, plan: LoadPlan, seconds: u64) -> Driven {
    runtime.block_on(async {
        let live = Arc::new(Live::default());
        let driver = Arc::new(Driver::new(
            Arc::new(Targets::one(url)),
            &plan,
            1,
            tokio::time::Instant::now(),
            Arc::clone(&live),
            Arc::new(FailureTimeline::new(Duration::from_secs(seconds + 60))),
        ));
        let stop = CancellationToken::new();
        let stopper = stop.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_secs(seconds)).await;
            stopper.cancel();
        });
        let (cpu_before, wall) = (cpu(libc::RUSAGE_SELF), Instant::now());
        let allocations = ALLOCATIONS.load(Ordering::Relaxed);
        let dir = tempfile::tempdir().expect("a temporary folder");
        let spill = Spill::create(&dir.path().join(SPILL_FILE)).expect("a spill file");
        let outcome = driver.run(&stop, Sinks::new(), spill).await;
        let (cpu, wall) = (cpu(libc::RUSAGE_SELF) - cpu_before, wall.elapsed());
        let allocations = ALLOCATIONS.load(Ordering::Relaxed) - allocations;
        let all = outcome
            .collected
            .totals
            .latency_of(&[Op::Create, Op::Append, Op::Read], Outcome::Ok);
        let reads = outcome
            .collected
            .totals
            .latency_of(&[Op::Read], Outcome::Ok);
        let requests = Live::get(&live.ops);
        Driven {
            requests,
            allocations_per_request: allocations as f64 / requests.max(1) as f64,
            cpu,
            wall,
            corrected_p99_ms: all.corrected.value_at_quantile(0.99) as f64 / 1000.0,
            read_corrected_p99_ms: reads.corrected.value_at_quantile(0.99) as f64 / 1000.0,
            uncorrected_p99_ms: all.uncorrected.value_at_quantile(0.99) as f64 / 1000.0,
            lateness_ms: {
                let late = &outcome.collected.totals.start_lateness;
                [0.5, 0.99, 1.0].map(|q| late.value_at_quantile(q) as f64 / 1000.0)
            },
            live_sessions: outcome.sessions.count as usize,
            anomalies: outcome.anomalies.len(),
            missed_starts: outcome.collected.totals.missed_starts,
        }
    })
}

fn per_100k(cpu: Duration, requests: u64) -> f64 {
    cpu.as_secs_f64() / requests.max(1) as f64 * 100_000.0
}

/// "T s per 100k requests (user U, system S)".
fn cpu_line(cpu: Cpu, requests: u64) -> String {
    format!(
        "{:.2} s per 100k requests (user {:.2}, system {:.2})",
        per_100k(cpu.total(), requests),
        per_100k(cpu.user, requests),
        per_100k(cpu.system, requests)
    )
}

/// wrk against GET /session with a live session's cookie, closed loop; returns
/// (requests, its CPU time).
fn wrk(port: u16, cookie: &str, seconds: u64) -> Option<(u64, Cpu)> {
    let before = cpu(libc::RUSAGE_CHILDREN);
    let out = Command::new("wrk")
        .args([
            "-t1",
            "-c16",
            &format!("-d{seconds}s"),
            "-H",
            &format!("Cookie: {cookie}"),
        ])
        .arg(format!("http://127.0.0.1:{port}/session"))
        .output()
        .ok()?;
    let used = cpu(libc::RUSAGE_CHILDREN) - before;
    let text = String::from_utf8_lossy(&out.stdout);
    let requests = text
        .lines()
        .find(|l| l.contains("requests in"))?
        .split_whitespace()
        .next()?
        .parse()
        .ok()?;
    Some((requests, used))
}

/// What oha measured: its corrected p99, how many requests it sent, its CPU time.
struct Oha {
    p99_ms: f64,
    requests: u64,
    cpu: Cpu,
}

/// oha (`cargo install oha`) at `rate` requests per second in all against the same
/// URL, 16 connections like wrk's, its latency corrected for coordinated omission
/// the way the driver's is (from each request's scheduled time).
fn oha(port: u16, cookie: &str, rate: u64, seconds: u64) -> Option<Oha> {
    let before = cpu(libc::RUSAGE_CHILDREN);
    let out = Command::new("oha")
        .args([
            "--no-tui",
            "--output-format",
            "json",
            "--latency-correction",
        ])
        .args([
            "-z",
            &format!("{seconds}s"),
            "-c",
            "16",
            "-q",
            &rate.to_string(),
        ])
        .args(["-H", &format!("Cookie: {cookie}")])
        .arg(format!("http://127.0.0.1:{port}/session"))
        .output()
        .ok()?;
    let cpu = cpu(libc::RUSAGE_CHILDREN) - before;
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).ok()?;
    let p99 = report.pointer("/latencyPercentiles/p99")?.as_f64()?;
    let rate = report.pointer("/summary/requestsPerSec")?.as_f64()?;
    let took = report.pointer("/summary/total")?.as_f64()?;
    Some(Oha {
        p99_ms: p99 * 1000.0,
        requests: (rate * took).round() as u64,
        cpu,
    })
}

/// How the floor client waits for an answer.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Answers {
    /// Right after its request, asleep until it comes: two wake-ups a request
    /// whenever answers come faster than the interval.
    AtOnce,
    /// At the next due time, before that request is sent (the last one after the
    /// run): one wake-up a request when answers come within the interval. The
    /// least any design that starts each request on time can wake here; its
    /// latency would need the kernel's receive time (`SO_TIMESTAMPNS`).
    AtNextDue,
}

/// The least a client can spend to start each request at its due time and read its
/// answer, here: one thread, one keep-alive connection, `clock_nanosleep` to each
/// due time (absolute, no timer slack), a blocking write and blocking reads, no
/// runtime, no checking; each answer read as `answers` says. Returns (requests, CPU
/// time of the thread).
fn floor_client(port: u16, cookie: &str, rate: u64, seconds: u64, answers: Answers) -> (u64, Cpu) {
    use std::io::{Read, Write};
    let request = format!("GET /session HTTP/1.1\r\nhost: 127.0.0.1\r\ncookie: {cookie}\r\n\r\n");
    let mut socket =
        std::net::TcpStream::connect(("127.0.0.1", port)).expect("the endpoint answers");
    socket.set_nodelay(true).expect("a TCP socket");
    let mut now = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes into the struct we own.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut now) };
    let start = now.tv_sec as u128 * 1_000_000_000 + now.tv_nsec as u128;
    let interval = 1_000_000_000 / rate as u128;
    let total = rate * seconds;
    let before = cpu(libc::RUSAGE_THREAD);
    let mut answer = Vec::with_capacity(4096);
    // Reads one whole answer: until the head is in and, once it is, until the body
    // it announces.
    let mut read_answer = |socket: &mut std::net::TcpStream| {
        answer.clear();
        let mut chunk = [0u8; 4096];
        let mut whole = None;
        while whole.is_none_or(|whole| answer.len() < whole) {
            let n = socket.read(&mut chunk).expect("the endpoint answers");
            assert!(n > 0, "the endpoint closed the connection");
            answer.extend_from_slice(&chunk[..n]);
            if whole.is_none() {
                whole = answer
                    .windows(4)
                    .position(|w| w == b"\r\n\r\n")
                    .map(|head| {
                        let text = String::from_utf8_lossy(&answer[..head]).to_ascii_lowercase();
                        let length: usize = text
                            .lines()
                            .find_map(|l| l.strip_prefix("content-length:"))
                            .and_then(|l| l.trim().parse().ok())
                            .unwrap_or(0);
                        head + 4 + length
                    });
            }
        }
    };
    for i in 0..total {
        let due = start + i as u128 * interval;
        let at = libc::timespec {
            tv_sec: (due / 1_000_000_000) as libc::time_t,
            tv_nsec: (due % 1_000_000_000) as libc::c_long,
        };
        // SAFETY: sleeps to an absolute time; a spec we own, no remainder asked for.
        unsafe {
            libc::clock_nanosleep(
                libc::CLOCK_MONOTONIC,
                libc::TIMER_ABSTIME,
                &at,
                std::ptr::null_mut(),
            )
        };
        if answers == Answers::AtNextDue && i > 0 {
            read_answer(&mut socket);
        }
        socket
            .write_all(request.as_bytes())
            .expect("the endpoint reads");
        if answers == Answers::AtOnce {
            read_answer(&mut socket);
        }
    }
    if answers == Answers::AtNextDue {
        read_answer(&mut socket);
    }
    (total, cpu(libc::RUSAGE_THREAD) - before)
}

/// The median of `values`, if there are any.
fn median(values: &mut [f64]) -> Option<f64> {
    values.sort_by(f64::total_cmp);
    values.get(values.len() / 2).copied()
}

/// One plain HTTP/1.1 exchange on a fresh connection; the whole answer.
fn exchange(port: u16, request: &str) -> String {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    stream.write_all(request.as_bytes()).unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).unwrap();
    answer
}

/// The cookie of a session holding `items` items, made with plain HTTP exchanges.
/// wrk and oha read it, so their answers are as large as the driver's reads on
/// average (sessions of 10 appends hold 5 items on average).
fn create_session(port: u16, items: u32) -> String {
    let answer = exchange(
        port,
        "POST /session HTTP/1.1\r\nHost: bench\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
    );
    let cookie = answer
        .lines()
        .find_map(|l| {
            l.to_ascii_lowercase()
                .strip_prefix("set-cookie: ")
                .map(str::to_string)
        })
        .and_then(|c| c.split(';').next().map(str::to_string))
        .expect("the create answer sets a cookie");
    for k in 0..items {
        let body = format!(r#"{{"op":"0.{k}","item":"0.{k}"}}"#);
        let answer = exchange(
            port,
            &format!(
                "POST /session/items HTTP/1.1\r\nHost: bench\r\nCookie: {cookie}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            ),
        );
        assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    }
    cookie
}

/// The load average over the last minute, to judge how noisy the figures are.
/// Heap and inline bytes a session costs, measured while holding many.
fn bytes_per_session(n: usize, appends: u32, finished: bool) -> f64 {
    let before = ALLOCATED.load(Ordering::Relaxed);
    let sessions: Vec<LiveSession> = (0..n as u64)
        .map(|seq| {
            let id = format!("{:08x}-0000-4000-8000-{:012x}", seq, seq);
            let mut model = SessionModel::new(seq, id.clone(), appends);
            if finished {
                for k in 0..appends {
                    model.sent(k);
                    model.acknowledged(k);
                }
            }
            let cookie = http::HeaderValue::try_from(format!("sid={id}")).unwrap();
            LiveSession::new(model, cookie)
        })
        .collect();
    let grown = ALLOCATED.load(Ordering::Relaxed).saturating_sub(before);
    drop(std::hint::black_box(sessions));
    grown as f64 / n as f64
}

/// CPU time the process `pid` has used so far (user and system), from
/// `/proc/PID/stat`: the endpoint's, to tell which side a saturated run ran out of.
fn cpu_of(pid: u32) -> Option<Duration> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name, which is in parentheses and may hold spaces.
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    let ticks: u64 = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    // SAFETY: sysconf reads a constant of the system.
    let per_second = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
    Some(Duration::from_secs_f64(ticks as f64 / per_second))
}

/// Each figure's value in every round, in the order first seen, for the table of
/// medians at the end.
#[derive(Default)]
struct Figures(Vec<(String, Vec<f64>)>);

impl Figures {
    fn add(&mut self, name: &str, value: f64) {
        match self.0.iter_mut().find(|(n, _)| n == name) {
            Some((_, values)) => values.push(value),
            None => self.0.push((name.to_string(), vec![value])),
        }
    }

    /// The figures as a Markdown table: median, lowest and highest of the rounds.
    fn table(&mut self) -> String {
        let mut out = String::from("| figure | median | lowest | highest |\n|---|---|---|---|\n");
        for (name, values) in &mut self.0 {
            let median = median(values).unwrap_or(f64::NAN);
            let (low, high) = (values[0], values[values.len() - 1]);
            let fmt = |v: f64| {
                if v.abs() >= 100.0 {
                    format!("{v:.0}")
                } else if v.abs() >= 10.0 {
                    format!("{v:.1}")
                } else {
                    format!("{v:.3}")
                        .trim_end_matches('0')
                        .trim_end_matches('.')
                        .to_string()
                }
            };
            out += &format!(
                "| {name} | {} | {} | {} |\n",
                fmt(median),
                fmt(low),
                fmt(high)
            );
        }
        out
    }
}

fn main() {
    // `cargo bench` passes --bench; nothing else is taken.
    let rate = env_or("BENCH_RATE", 4000);
    let high_rate = env_or("BENCH_HIGH_RATE", 40_000);
    let seconds = env_or("BENCH_SECONDS", 10);
    let rounds = env_or("BENCH_ROUNDS", 3);
    // Measured first, while nothing else allocates, so the count is exact.
    let n = 100_000;
    println!(
        "memory per session (10 appends, allocator-counted): {:.0} bytes live, {:.0} bytes finished",
        bytes_per_session(n, 10, false),
        bytes_per_session(n, 10, true)
    );
    let runtime = tokio::runtime::Runtime::new().unwrap();

    println!(
        "sessionstorm load engine benchmark (rate {rate} and {high_rate} ops/s, {seconds} s per phase, {rounds} rounds, {} cores, load average {})\n",
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        load_average()
    );
    let endpoint = endpoint();
    let url = format!("http://127.0.0.1:{}", endpoint.port);

    let cookie = create_session(endpoint.port, 5);
    // Flat out, like wrk: 16 users with no think time against wrk's 16 connections.
    let flat_out = Model::Closed {
        users: 16,
        think: Think::Fixed(Duration::ZERO),
    };
    let with_threads = |mut plan: LoadPlan, threads: usize| {
        plan.threads = threads;
        plan
    };
    // The driver and the independent tools take turns, round after round, so a
    // burst of noise on this shared machine lands in one round, not on one side;
    // the medians of the per-round figures are the verdicts.
    let mut figures = Figures::default();
    for round in 1..=rounds {
        let load = load_average();
        println!("round {round} of {rounds} (load average {load})");
        figures.add("load average (1 min)", load.parse().unwrap_or(f64::NAN));
        let flat = drive(&runtime, &url, plan(flat_out.clone(), 10), seconds);
        let flat_cpu = per_100k(flat.cpu.total(), flat.requests);
        let flat_rate = flat.requests as f64 / flat.wall.as_secs_f64();
        println!(
            "  driver, closed model, 16 users flat out: {flat_rate:.0} requests/s; CPU {}; {:.1} allocations per request",
            cpu_line(flat.cpu, flat.requests),
            flat.allocations_per_request
        );
        figures.add("closed, 16 users flat out: requests/s", flat_rate);
        figures.add(
            "closed, 16 users flat out: CPU s per 100k requests",
            flat_cpu,
        );
        figures.add(
            "closed, 16 users flat out: allocations per request",
            flat.allocations_per_request,
        );
        match wrk(endpoint.port, &cookie, seconds) {
            Some((requests, used)) => {
                let theirs = per_100k(used.total(), requests);
                let ratio = flat_cpu / theirs;
                println!(
                    "  wrk -t1 -c16, GET /session holding 5 items: {:.0} requests/s; CPU {}; driver / wrk: {ratio:.2}x",
                    requests as f64 / seconds as f64,
                    cpu_line(used, requests)
                );
                figures.add("wrk -t1 -c16: CPU s per 100k requests", theirs);
                figures.add("**CPU per request, closed flat out / wrk**", ratio);
            }
            None => println!("  wrk: not measured (install it: apt-get install wrk)"),
        }

        // Two load threads, same users: the scaling, on a machine whose cores the
        // endpoint shares.
        let two = drive(
            &runtime,
            &url,
            with_threads(plan(flat_out.clone(), 10), 2),
            seconds,
        );
        let two_rate = two.requests as f64 / two.wall.as_secs_f64();
        println!(
            "  driver, closed model, 16 users flat out on 2 load threads: {two_rate:.0} requests/s ({:.2}x one thread); CPU {}",
            two_rate / flat_rate,
            cpu_line(two.cpu, two.requests),
        );
        figures.add("closed flat out, 2 load threads: requests/s", two_rate);
        figures.add("**throughput, 2 load threads / 1**", two_rate / flat_rate);
        // The closed model paced to the same rate: what a client idle between its
        // requests costs, whatever its model.
        let users = 16;
        let think = Duration::from_secs_f64(users as f64 / rate as f64);
        let calm = drive(
            &runtime,
            &url,
            plan(
                Model::Closed {
                    users,
                    think: Think::Fixed(think),
                },
                10,
            ),
            seconds,
        );
        let calm_cpu = per_100k(calm.cpu.total(), calm.requests);
        println!(
            "  driver, closed model, 16 users thinking {:.1} ms (about {rate} ops/s): {:.0} requests/s; CPU {}",
            think.as_secs_f64() * 1000.0,
            calm.requests as f64 / calm.wall.as_secs_f64(),
            cpu_line(calm.cpu, calm.requests),
        );
        figures.add(
            &format!("closed, paced to about {rate}/s: CPU s per 100k requests"),
            calm_cpu,
        );
        let mut open_cpu = 0.0;
        for stalled in [false, true] {
            let stalls = stalled.then(|| Stalls::start(&endpoint));
            let what = if stalled {
                format!(
                    "endpoint stopped for {} ms every {} s",
                    STALL.as_millis(),
                    STALL_EVERY.as_secs()
                )
            } else {
                "endpoint running freely".to_string()
            };
            let paced = drive(
                &runtime,
                &url,
                plan(open(rate as f64, Duration::from_secs(1)), 10),
                seconds,
            );
            let theirs = oha(endpoint.port, &cookie, rate, seconds);
            drop(stalls);
            println!(
                "  {what}; driver, open model at {rate} ops/s, session checking on: {:.0} requests/s; {} anomalies; CPU {}; {:.1} allocations per request",
                paced.requests as f64 / paced.wall.as_secs_f64(),
                paced.anomalies,
                cpu_line(paced.cpu, paced.requests),
                paced.allocations_per_request
            );
            let [p50, p99, max] = paced.lateness_ms;
            println!(
                "    p99 corrected {:.3} ms (reads alone {:.3} ms), uncorrected {:.3} ms; harness lateness p50 {p50:.3} ms, p99 {p99:.3} ms, max {max:.3} ms",
                paced.corrected_p99_ms, paced.read_corrected_p99_ms, paced.uncorrected_p99_ms
            );
            let tag = if stalled { "stalling" } else { "free" };
            if !stalled {
                open_cpu = per_100k(paced.cpu.total(), paced.requests);
                figures.add(&format!("open {rate}/s: CPU s per 100k requests"), open_cpu);
                figures.add(
                    &format!("open {rate}/s: allocations per request"),
                    paced.allocations_per_request,
                );
                figures.add(&format!("open {rate}/s: harness lateness p99 (ms)"), p99);
            }
            figures.add(
                &format!("open {rate}/s, endpoint {tag}: corrected read p99 (ms)"),
                paced.read_corrected_p99_ms,
            );
            match theirs {
                Some(Oha {
                    p99_ms: theirs,
                    requests,
                    cpu: used,
                }) => {
                    let ratio = paced.read_corrected_p99_ms / theirs;
                    println!(
                        "    oha -c 16 -q {rate} --latency-correction, GET /session holding 5 items: p99 {theirs:.3} ms; driver's corrected read p99 / oha's: {ratio:.2}; CPU {}",
                        cpu_line(used, requests)
                    );
                    if !stalled {
                        figures.add(
                            &format!("oha {rate}/s: CPU s per 100k requests"),
                            per_100k(used.total(), requests),
                        );
                    }
                    figures.add(
                        &format!("oha {rate}/s, endpoint {tag}: corrected p99 (ms)"),
                        theirs,
                    );
                    figures.add(
                        &format!("**corrected p99, driver / oha, endpoint {tag}**"),
                        ratio,
                    );
                }
                None => println!("    oha: not measured (install it: cargo install oha --locked)"),
            }
        }

        let (requests, used) = floor_client(endpoint.port, &cookie, rate, seconds, Answers::AtOnce);
        let floor_cpu = per_100k(used.total(), requests);
        println!(
            "  the floor at {rate} ops/s: one blocking connection sleeping to each due time (clock_nanosleep), then for its answer: CPU {}",
            cpu_line(used, requests)
        );
        figures.add(
            &format!("floor client {rate}/s: CPU s per 100k requests"),
            floor_cpu,
        );
        figures.add(
            &format!("CPU per request, open {rate}/s / floor client"),
            open_cpu / floor_cpu,
        );
        let (requests, used) =
            floor_client(endpoint.port, &cookie, rate, seconds, Answers::AtNextDue);
        let one_wake_cpu = per_100k(used.total(), requests);
        println!(
            "  the floor with one wake-up a request: the same client reading each answer at the next due time: CPU {}",
            cpu_line(used, requests)
        );
        figures.add(
            &format!("floor client {rate}/s, one wake-up a request: CPU s per 100k requests"),
            one_wake_cpu,
        );
        figures.add(
            &format!("CPU per request, floor client {rate}/s with one wake-up a request / closed flat out"),
            one_wake_cpu / flat_cpu,
        );
        // The same rate with a window wide enough for five operations to share a
        // wake-up: what trading start lateness for CPU buys at this rate.
        let mut wide = plan(open(rate as f64, Duration::from_secs(1)), 10);
        if let Model::Open { start_window, .. } = &mut wide.model {
            *start_window = WIDE_WINDOW;
        }
        let batched = drive(&runtime, &url, wide, seconds);
        let batched_cpu = per_100k(batched.cpu.total(), batched.requests);
        println!(
            "  open model at {rate} ops/s, start_window {} ms: CPU {}; harness lateness p50 {:.3} ms, p99 {:.3} ms",
            WIDE_WINDOW.as_secs_f64() * 1000.0,
            cpu_line(batched.cpu, batched.requests),
            batched.lateness_ms[0],
            batched.lateness_ms[1]
        );
        let wide_name = format!("open {rate}/s, start_window 1 ms");
        figures.add(
            &format!("{wide_name}: CPU s per 100k requests"),
            batched_cpu,
        );
        figures.add(
            &format!("{wide_name}: harness lateness p99 (ms)"),
            batched.lateness_ms[1],
        );
        figures.add(
            &format!("CPU per request, {wide_name} / closed flat out"),
            batched_cpu / flat_cpu,
        );
        let open_ratio = open_cpu / flat_cpu;
        println!(
            "  CPU per request at {rate} ops/s: open / closed flat out {open_ratio:.2}x, open / closed paced to the same rate {:.2}x",
            open_cpu / calm_cpu
        );
        figures.add(
            &format!("**CPU per request, open {rate}/s / closed flat out**"),
            open_ratio,
        );
        figures.add(
            &format!("CPU per request, open {rate}/s / closed paced to the same rate"),
            open_cpu / calm_cpu,
        );
        // The open model as fast as the bench goes, one load thread: at the target
        // rate, and at three quarters of what the endpoint served flat out (the
        // highest rate it sustains here).
        let sustained = ((flat_rate * 0.75 / 1000.0).floor() * 1000.0).max(1000.0) as u64;
        for asked in [high_rate, sustained] {
            let endpoint_before = cpu_of(endpoint.child.id());
            let run_queue = RunQueueWait::watch();
            let fast = drive(
                &runtime,
                &url,
                plan(open(asked as f64, Duration::from_secs(1)), 10),
                seconds,
            );
            let endpoint_busy = endpoint_before
                .zip(cpu_of(endpoint.child.id()))
                .map(|(before, after)| (after - before).as_secs_f64() / fast.wall.as_secs_f64());
            let fast_rate = fast.requests as f64 / fast.wall.as_secs_f64();
            let fast_cpu = per_100k(fast.cpu.total(), fast.requests);
            let [_, fast_late, fast_max] = fast.lateness_ms;
            let driver_busy = fast.cpu.total().as_secs_f64() / fast.wall.as_secs_f64();
            let waited = run_queue.waited().as_secs_f64() / fast.wall.as_secs_f64();
            let name = if asked == high_rate {
                format!("open {high_rate}/s")
            } else {
                "open at 3/4 of flat out".to_string()
            };
            println!(
                "  driver, open model at {asked} ops/s: {fast_rate:.0} requests/s, {} missed starts; CPU {}; harness lateness p99 {fast_late:.3} ms, max {fast_max:.3} ms; {:.1} allocations per request",
                fast.missed_starts,
                cpu_line(fast.cpu, fast.requests),
                fast.allocations_per_request
            );
            println!(
                "    busy: driver {:.0}% of a core (load thread, spill writer and bench together), endpoint {}; the load thread waited for a core {:.0} ms a second",
                driver_busy * 100.0,
                endpoint_busy.map_or("?".into(), |b| format!("{:.0}% of a core", b * 100.0)),
                waited * 1000.0
            );
            figures.add(
                &format!("{name}: load thread waiting for a core (ms/s)"),
                waited * 1000.0,
            );
            if fast.missed_starts > 0 || fast_late > 1.0 {
                let why = if asked as f64 > flat_rate {
                    format!("the endpoint served {flat_rate:.0} requests/s flat out here, less than asked")
                } else if driver_busy > 0.9 {
                    "the load thread is out of CPU".to_string()
                } else if waited > 0.02 {
                    format!(
                        "the load thread had CPU to spare but waited for a core {:.0} ms a second: \
                         the endpoint and the kernel's network work share the two cores, and an \
                         operation due while the load thread waits starts late",
                        waited * 1000.0
                    )
                } else {
                    format!("the machine is shared (load average {})", load_average())
                };
                println!("    behind schedule: {why}");
            }
            let ratio = fast_cpu / flat_cpu;
            println!("    CPU per request, open / closed flat out: {ratio:.2}x");
            if asked != high_rate {
                figures.add(&format!("{name}: rate asked"), asked as f64);
            }
            figures.add(&format!("{name}: requests/s reached"), fast_rate);
            figures.add(&format!("{name}: CPU s per 100k requests"), fast_cpu);
            figures.add(&format!("{name}: harness lateness p99 (ms)"), fast_late);
            figures.add(&format!("{name}: missed starts"), fast.missed_starts as f64);
            figures.add(
                &format!("**CPU per request, {name} / closed flat out**"),
                ratio,
            );
        }
    }
    println!(
        "\nmedians of {rounds} rounds (load average now {}):\n\n{}",
        load_average(),
        figures.table()
    );
    println!(
        "targets: open / closed CPU per request within 1.5x; lateness p99 <= 0.2 ms at {rate} ops/s, <= 1 ms at {high_rate} ops/s; \
         closed / wrk within 1.15x; allocations per request <= 8; corrected p99 within 10% of oha's with the endpoint stalling. \
         Two threads against an endpoint on the same two cores: the endpoint takes the second core, so the scaling shows the \
         split works, not what a free core would give."
    );

    // 100k live sessions: keep rate × interval = 100k sessions alive; the first
    // 100k operations are creates.
    let own_peak = reset_peak_rss();
    let before = common::status_mib("VmRSS").unwrap_or(0.0);
    let big = drive(
        &runtime,
        &url,
        plan(open(10_000.0, Duration::from_secs(10)), 10),
        12,
    );
    println!(
        "\nload average {}\n{} live sessions held: peak RSS {:.1} MiB, {before:.1} MiB of it held before{} (target: 100k in under 256 MiB)",
        load_average(),
        big.live_sessions,
        common::status_mib("VmHWM").unwrap_or(0.0),
        if own_peak {
            ""
        } else {
            " (the peak of the whole bench: /proc/self/clear_refs cannot be written here)"
        }
    );
    drop(endpoint);

    let mut h = new_histogram();
    let records = 10_000_000u64;
    let began = Instant::now();
    for i in 0..records {
        h.saturating_record(std::hint::black_box(1 + (i * 7919) % 2_000_000));
    }
    println!(
        "histogram record: {:.1} ns per value",
        began.elapsed().as_nanos() as f64 / records as f64
    );

    // What checking one answer costs (what wrk does not do): a session of 5 items
    // read back, parsed in place as the load reads it, and checked against its model.
    let mut model = SessionModel::new(7, "s7".into(), 10);
    for k in 0..5 {
        model.sent(k);
        model.acknowledged(k);
    }
    let body = br#"{"session":"s7","version":5,"items":["7.0","7.1","7.2","7.3","7.4"]}"#;
    let answers = 1_000_000u32;
    let began = Instant::now();
    for _ in 0..answers {
        let text = std::str::from_utf8(std::hint::black_box(body)).expect("UTF-8");
        let state = State::read(text).expect("a state");
        let seen = Seen {
            op: Op::Read,
            served_by: Some("bench"),
            at: Duration::from_secs(1),
            write: None,
        };
        assert!(model.check(&state, seen).is_empty());
    }
    println!(
        "checking one answer (5 items, parsed in place and checked against the session's model): {:.0} ns",
        began.elapsed().as_nanos() as f64 / answers as f64
    );
}
