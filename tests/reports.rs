//! The run folder's exporters on a fixed summary (tests/fixtures/summary.json, a
//! real smoke run trimmed to four seconds, with anomalies and a missed gate added):
//! snapshots of every text file, summary.json against the committed JSON Schema,
//! report.html's content and, in headless Chromium, that it renders.

use std::path::Path;
use std::process::Command;

use sessionstorm::report::{self, csv, html, junit, AnomalySummary, Summary};

const FIXTURE: &str = include_str!("fixtures/summary.json");
const SCHEMA: &str = include_str!("../reports/summary.schema.json");

fn fixture() -> Summary {
    Summary::parse(FIXTURE).expect("the fixture is a valid summary")
}

fn text(bytes: Vec<u8>) -> String {
    String::from_utf8(bytes).unwrap()
}

#[test]
fn latency_csv_snapshot() {
    let mut latency = csv::LatencyCsv::new(Vec::new()).unwrap();
    for row in &fixture().intervals {
        latency.write(row).unwrap();
    }
    insta::assert_snapshot!(text(latency.into_inner().unwrap()));
}

#[test]
fn events_csv_snapshot() {
    let summary = fixture();
    insta::assert_snapshot!(text(csv::events(&summary, &summary.faults.events).unwrap()));
}

#[test]
fn sessions_csv_snapshot() {
    insta::assert_snapshot!(text(csv::sessions(&fixture().anomalies.samples).unwrap()));
}

#[test]
fn replicas_csv_snapshot() {
    insta::assert_snapshot!(text(csv::replicas(&fixture()).unwrap()));
}

#[test]
fn junit_snapshot_has_a_failure_for_the_missed_gate() {
    let xml = junit::render(&fixture()).unwrap();
    assert!(xml.contains(r#"failures="2""#), "{xml}");
    insta::assert_snapshot!(xml);
}

#[test]
fn terminal_text_snapshot() {
    insta::assert_snapshot!(fixture().render_text());
}

fn validator() -> jsonschema::Validator {
    let schema: serde_json::Value = serde_json::from_str(SCHEMA).unwrap();
    jsonschema::validator_for(&schema).expect("the committed schema is a valid JSON Schema")
}

fn errors(validator: &jsonschema::Validator, value: &serde_json::Value) -> Vec<String> {
    validator
        .iter_errors(value)
        .map(|e| format!("{} at {}", e, e.instance_path()))
        .collect()
}

#[test]
fn summary_json_matches_the_committed_schema() {
    let validator = validator();
    let dir = tempfile::tempdir().unwrap();
    // Written by the code, not just the fixture as committed.
    fixture().write_json(dir.path()).unwrap();
    let written: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("summary.json")).unwrap()).unwrap();
    let problems = errors(&validator, &written);
    assert!(problems.is_empty(), "{problems:#?}");
}

#[test]
fn schema_rejects_a_summary_without_verdict_or_with_a_bad_status() {
    let validator = validator();
    let mut value: serde_json::Value = serde_json::from_str(FIXTURE).unwrap();
    value["verdict"]["status"] = "maybe".into();
    assert!(!errors(&validator, &value).is_empty());
    value.as_object_mut().unwrap().remove("verdict");
    let problems = errors(&validator, &value);
    assert!(
        problems.iter().any(|p| p.contains("verdict")),
        "{problems:?}"
    );
}

#[test]
fn summary_round_trips_through_json() {
    let summary = fixture();
    let json = serde_json::to_string(&summary).unwrap();
    let again = Summary::parse(Box::leak(json.into_boxed_str())).unwrap();
    assert_eq!(
        serde_json::to_value(&again).unwrap(),
        serde_json::to_value(&summary).unwrap()
    );
}

#[test]
fn a_summary_of_another_schema_version_is_refused_with_a_reason() {
    let text = FIXTURE.replacen(r#""schema_version": 1"#, r#""schema_version": 99"#, 1);
    let err = Summary::parse(Box::leak(text.into_boxed_str())).unwrap_err();
    assert!(err.contains("schema version 99"), "{err}");
}

#[test]
fn html_holds_verdict_charts_faults_anomalies_and_the_scenario_escaped() {
    let mut summary = fixture();
    // The fixture predates the anomaly groups and bins: made from its samples here.
    summary.anomalies = AnomalySummary::of(summary.anomalies.samples.clone());
    let page = html::render(&summary).unwrap();
    assert!(page.contains(r#"<div class="banner failed" id="verdict">"#));
    assert!(page.contains("gate anomalies == 0 missed"));
    assert_eq!(
        page.matches("<svg").count(),
        7,
        "six charts and the store's lane"
    );
    assert!(page.contains(r#"id="chart-anomalies""#));
    let store = &page[page
        .find(r#"id="store-events""#)
        .expect("the store's events")..];
    assert!(store.contains("restarted (a new process): it holds 0 keys, 900 before"));
    let groups = &page[page
        .find(r#"id="anomaly-groups""#)
        .expect("the groups table")..];
    let first = &summary.anomalies.groups[0];
    assert!(
        groups.contains(&format!("<td>{}</td>", first.count)),
        "the largest group is listed"
    );
    // Both kills are drawn on the time charts (three of them) and listed.
    assert!(
        page.matches("kill replica-1.0").count() >= 3,
        "fault labels on the charts"
    );
    assert!(page.contains("acknowledged item &quot;i3&quot; missing"));
    assert!(
        page.contains("&lt;b&gt;kill&lt;"),
        "the description is escaped"
    );
    assert!(!page.contains("<b>kill</b>"));
    assert!(page.contains("[service]"), "the scenario as run");
    for fetch in ["src=\"http", "href=\"http", "@import", "url("] {
        assert!(
            !page.contains(fetch),
            "report.html fetches something: {fetch}"
        );
    }
    assert!(!page.contains("<script"), "no script at all");
}

#[test]
fn the_run_folder_finishes_every_file_and_rebuild_rewrites_the_html() {
    let dir = tempfile::tempdir().unwrap();
    let mut summary = fixture();
    let anomalies = summary.anomalies.samples.clone();
    let faults = summary.faults.events.clone();
    let all = report::FullLists {
        anomalies: &anomalies,
        faults: &faults,
    };
    let folder = report::RunFolder::at(dir.path());
    let (_, warnings) = folder.finish(&mut summary, all).unwrap();
    assert!(warnings.is_empty(), "{warnings:?}");
    // The latency log and latency.csv are streamed by the run, not written here.
    let streamed = ["latency_log", "latency_csv"];
    for (_, file) in report::FILES.iter().filter(|(k, _)| !streamed.contains(k)) {
        assert!(dir.path().join(file).is_file(), "{file} missing");
    }
    std::fs::remove_file(dir.path().join("report.html")).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_sessionstorm"))
        .arg("report")
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let page = std::fs::read_to_string(dir.path().join("report.html")).unwrap();
    assert!(page.contains("id=\"verdict\""));
    // Nothing half-written is left behind.
    let stray: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().ends_with(".tmp"))
        .collect();
    assert!(stray.is_empty(), "{stray:?}");
}

#[test]
fn report_command_on_a_folder_without_summary_is_invalid_input() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_sessionstorm"))
        .arg("report")
        .arg(dir.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("summary.json"));
}

/// Opens report.html in headless Chromium and checks the DOM it built: the verdict
/// and every chart are there. Chromium must be installed (`apt-get install chromium`,
/// done by .ci/run): this test fails rather than skip without it.
#[test]
fn report_html_renders_in_headless_chromium() {
    let chromium = ["chromium", "chromium-browser", "google-chrome"]
        .into_iter()
        .find(|c| Command::new(c).arg("--version").output().is_ok_and(|o| o.status.success()))
        .expect("headless Chromium is needed for this test: install it with `apt-get install -y chromium` (.ci/run does)");
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("report.html");
    std::fs::write(&path, html::render(&fixture()).unwrap()).unwrap();
    let out = Command::new(chromium)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--no-first-run",
        ])
        .arg(format!(
            "--user-data-dir={}",
            dir.path().join("profile").display()
        ))
        .arg("--dump-dom")
        .arg(format!("file://{}", path.display()))
        .output()
        .unwrap();
    let dom = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "chromium failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        dom.contains("FAILED"),
        "verdict banner missing from the DOM"
    );
    assert!(dom.contains("gate anomalies == 0 missed"));
    for id in [
        "chart-throughput",
        "chart-latency",
        "chart-error-rate",
        "chart-spectrum",
        "chart-replicas",
    ] {
        let at = dom
            .find(&format!("id=\"{id}\""))
            .unwrap_or_else(|| panic!("{id} missing"));
        assert!(
            dom[at..]
                .trim_start_matches(|c| c != '>')
                .get(1..40)
                .is_some_and(|s| s.contains("<svg")),
            "{id} has no svg"
        );
    }
    assert!(Path::new(&path).is_file());
}

/// A copy of the fixture's folder, with `edit` applied to its summary.
fn run_folder(edit: impl FnOnce(&mut serde_json::Value)) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let mut value: serde_json::Value = serde_json::from_str(FIXTURE).unwrap();
    edit(&mut value);
    std::fs::write(dir.path().join("summary.json"), value.to_string()).unwrap();
    dir
}

fn compare(baseline: &Path, current: &Path, extra: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_sessionstorm"))
        .arg("compare")
        .arg(baseline)
        .arg(current)
        .args(extra)
        .output()
        .unwrap()
}

#[test]
fn compare_command_exits_1_on_a_regression_0_without_and_2_on_unreadable_input() {
    let baseline = run_folder(|_| {});
    let slower = run_folder(|v| {
        v["run_id"] = "slower".into();
        v["operations"]["read"]["latency_ms"]["p50"] = 20.0.into();
    });
    let out = compare(baseline.path(), slower.path(), &["--format", "markdown"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(
        stdout.contains("| p50_ms.read | 7.30 | 20 | +174.0% | +10% | FAIL |"),
        "{stdout}"
    );

    // Slower reads are within a tolerance given for them.
    let out = compare(
        baseline.path(),
        slower.path(),
        &["--tolerance", "p50_ms.read=200%"],
    );
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    // And the other way round it is an improvement.
    let out = compare(slower.path(), baseline.path(), &[]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );

    let broken = tempfile::tempdir().unwrap();
    std::fs::write(
        broken.path().join("summary.json"),
        "{\"schema_version\": 1}",
    )
    .unwrap();
    let out = compare(baseline.path(), broken.path(), &[]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("the current run:") && stderr.contains("not a sessionstorm summary"),
        "{stderr}"
    );

    let out = compare(
        baseline.path(),
        slower.path(),
        &["--tolerance", "p99_ms.apend=5%"],
    );
    assert_eq!(out.status.code(), Some(2), "a misspelled metric is refused");
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown operation"));
}

#[test]
fn charts_draw_faults_that_hit_and_leave_out_skipped_ones() {
    let mut summary = fixture();
    let events = &mut summary.faults.events;
    events[0].outcome = "revert_failed";
    events[0].error = Some("unpause refused".into());
    events[1].outcome = "skipped";
    let svg = report::charts::latency(&summary).unwrap();
    assert!(
        svg.contains("kill replica-0.0"),
        "a fault whose revert failed did hit"
    );
    assert!(
        !svg.contains("kill replica-1.0"),
        "a skipped fault hit nothing"
    );
}

/// The fixture as a run on a replicated store would have it: each member's points,
/// their events (a replica's, a Sentinel's line and, as a Redis Cluster would tell
/// it, the cluster's view among them), who was primary when (a split), and the
/// replicas' lag at the first fault.
fn replicated_store() -> Summary {
    let mut json: serde_json::Value = serde_json::from_str(FIXTURE).unwrap();
    let point = |t: u64, keys: u64, lag: Option<u64>| {
        let mut point = serde_json::json!({
            "t": t, "span_s": 1, "keys": keys, "keys_min": keys, "keys_max": keys,
            "evicted": 0, "expired": 0, "used_memory_max": 1048576, "maxmemory": 0,
            "unanswered": 0, "repl_offset": 5000
        });
        if let Some(lag) = lag {
            point["lag_bytes_max"] = lag.into();
        }
        point
    };
    json["store"] = serde_json::json!({
        "member": "store",
        "points": [],
        "events": [
            {"at_ms": 7000, "since_ms": 6750, "kind": "unreachable", "detail": "stopped answering", "member": "store-0"},
            {"at_ms": 7500, "since_ms": 7250, "kind": "restarted", "detail": "restarted (a new process): it holds 0 keys, 900 before", "member": "store-0"},
            {"at_ms": 8000, "since_ms": 7750, "kind": "emptied", "detail": "emptied: 900 keys, then none", "member": "store-1", "replica": true},
            {"at_ms": 8250, "since_ms": 8250, "kind": "sentinel", "detail": "+sdown master sessions store-0 6379", "member": "sentinel-0"},
            {"at_ms": 8500, "since_ms": 8250, "kind": "cluster", "detail": "marked failing by the cluster (fail)", "member": "store-0"},
            {"at_ms": 9000, "since_ms": 8750, "kind": "split", "detail": "2 primaries at once: store-0, store-1"}
        ],
        "events_total": 6,
        "evicted_total": 0,
        "members": [
            {"member": "store-0", "points": [point(0, 120, None), point(7, 0, None)], "evicted_total": 0},
            {"member": "store-1", "points": [point(0, 118, Some(120)), point(7, 0, None)], "evicted_total": 0}
        ],
        "primaries": [
            {"member": "store-0", "from_ms": 0, "to_ms": 6750},
            {"member": "store-0", "from_ms": 7500, "to_ms": 13000},
            {"member": "store-1", "from_ms": 8500, "to_ms": 12000}
        ]
    });
    json["faults"]["events"][0]["store_lag_bytes"] = 120.into();
    Summary::parse(Box::leak(json.to_string().into_boxed_str())).unwrap()
}

#[test]
fn a_store_of_members_is_reported_per_member() {
    let summary = replicated_store();
    let dir = tempfile::tempdir().unwrap();
    summary.write_json(dir.path()).unwrap();
    let written: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("summary.json")).unwrap()).unwrap();
    let problems = errors(&validator(), &written);
    assert!(problems.is_empty(), "{problems:#?}");

    let terminal = summary.render_text();
    for line in [
        "store store: 6 events, 0 keys evicted",
        "  7.0s store-0 stopped answering",
        "  8.0s store-1 emptied: 900 keys, then none",
        "  9.0s 2 primaries at once: store-0, store-1",
        "  primary: store-0 0.0–6.8s, store-0 7.5–13.0s, store-1 8.5–12.0s",
        "  replicas' bytes behind the primary at each fault: kill replica-0.0 at 5.0s: 120",
    ] {
        assert!(terminal.contains(line), "{line:?} in {terminal}");
    }
    assert!(
        !terminal.contains("+sdown") && !terminal.contains("marked failing"),
        "a Sentinel's lines and the cluster's view are in events.csv: {terminal}"
    );

    let events = text(csv::events(&summary, &summary.faults.events).unwrap());
    for row in [
        "7000,store,unreachable,store-0,",
        "8000,store,emptied,store-1,",
        "8250,store,sentinel,sentinel-0,",
        "8500,store,cluster,store-0,",
        "9000,store,split,store,",
        "the store's replicas 120 bytes behind their primary",
    ] {
        assert!(events.contains(row), "{row:?} in {events}");
    }

    let page = html::render(&summary).unwrap();
    assert!(page.contains("<h2>The store (store: store-0, store-1)</h2>"));
    assert_eq!(
        page.matches("<svg").count(),
        7,
        "six charts and the store's lane"
    );
    let primaries = &page[page
        .find(r#"id="store-primaries""#)
        .expect("who was primary")..];
    assert!(primaries.contains("<td class=\"l\">store-1</td><td>8.5</td><td>12.0</td>"));
    let store = &page[page
        .find(r#"id="store-events""#)
        .expect("the store's events")..];
    assert!(store.contains("<td class=\"l\">store-1 (replica)</td><td class=\"l\">emptied</td>"));
    let faults = &page[page.find(r#"id="faults""#).unwrap()..];
    assert!(faults.contains("<th>store lag bytes</th>") && faults.contains("<td>120</td>"));
    let lane = report::charts::store(&summary).unwrap();
    assert!(
        lane.contains("store-0") && lane.contains("store-1"),
        "a row per member"
    );
    // The anomalies over time carry what the store did that the service could see:
    // store-0's restart and the split, not a replica's emptying, a Sentinel's line
    // nor the cluster's view.
    let anomalies = report::charts::anomalies(&summary).unwrap();
    assert!(anomalies.contains("store event (restarted, emptied, evicted, role)"));
    let without = {
        let mut s = replicated_store();
        s.store
            .as_mut()
            .unwrap()
            .events
            .retain(|e| !e.reaches_the_service());
        report::charts::anomalies(&s).unwrap()
    };
    assert!(
        !without.contains("store event"),
        "only events the service saw"
    );
}

/// A day of one-second rows, as the collector makes them: summary.json and
/// report.html stay small, and the day's one slow second is still in the chart data.
#[test]
fn a_day_long_run_has_a_bounded_summary_and_report() {
    use sessionstorm::load::series::{Series, MAX_POINTS};
    let mut summary = fixture();
    let second = summary.intervals[1].clone();
    let mut series = Series::default();
    for t in 0..86_400 {
        let mut row = second.clone();
        row.t = t;
        row.warmup = false;
        if t == 50_000 {
            for op in row.ops.values_mut() {
                op.corrected_ms.max = 9_999.0;
            }
        }
        series.push(row);
    }
    summary.intervals = series.into_rows();
    summary.load_elapsed_s = 86_400.0;
    // A kill every 5 s, and an anomaly a second after every tenth one.
    let kill = summary.faults.events[0].clone();
    let faults: Vec<_> = (0..86_400 / 5)
        .map(|i| {
            let mut fault = kill.clone();
            fault.injected_ms = i * 5000;
            fault.planned_ms = i * 5000;
            fault.target = format!("replica-{}.{i}", i % 3);
            fault
        })
        .collect();
    let sample = summary.anomalies.samples[0].clone();
    let anomalies: Vec<_> = (0..faults.len() as u64 / 10)
        .map(|i| {
            let mut a = sample.clone();
            a.at = std::time::Duration::from_millis(i * 50_000 + 1000);
            a
        })
        .collect();
    summary.faults = report::FaultSummary::of(&faults, None, &anomalies);
    summary.anomalies = AnomalySummary::of(anomalies);
    assert!(summary.faults.events.len() <= report::EVENTS_LISTED);
    assert!(summary.anomalies.per_second.len() <= MAX_POINTS);
    assert!(summary.intervals.len() <= MAX_POINTS);
    let spike = summary
        .intervals
        .iter()
        .flat_map(|r| r.ops.values())
        .map(|o| o.corrected_ms.max)
        .fold(0.0, f64::max);
    assert_eq!(spike, 9_999.0);
    let dir = tempfile::tempdir().unwrap();
    let json = summary.write_json(dir.path()).unwrap();
    let json_size = std::fs::metadata(json).unwrap().len();
    let page = html::render(&summary).unwrap();
    assert!(json_size < 2_000_000, "summary.json is {json_size} bytes");
    assert!(
        page.len() < 2_000_000,
        "report.html is {} bytes",
        page.len()
    );
    assert!(page.contains("Throughput"));
    assert!(
        page.contains("200 of 17280 faults shown") && page.contains("all in events.csv"),
        "the page says the fault table is cut"
    );
    let problems = errors(&validator(), &serde_json::to_value(&summary).unwrap());
    assert!(problems.is_empty(), "{problems:#?}");
    println!(
        "a day, 17280 faults, 1728 anomalies: summary.json {json_size} bytes, report.html {} bytes",
        page.len()
    );
}
