//! The charts of report.html, drawn with plotters' SVG backend into strings.
//!
//! Every time chart shares one x axis (seconds from the start of the load) and
//! draws each fault on it: a red line at its injection, labelled, with the error
//! window users saw after it shaded. The SVG backend writes `<text>` elements, so no
//! font files are needed to draw or to view the charts.

use std::collections::BTreeMap;

use plotters::coord::ranged1d::{AsRangedCoord, ValueFormatter};
use plotters::coord::types::RangedCoordf64;
use plotters::coord::Shift;
use plotters::prelude::*;

use crate::metrics::Percentiles;
use crate::session::{AnomalyKind, Op};
use crate::store::timeline::{StoreEventKind, StorePoint, StoreTimeline};

use super::Summary;

const WIDTH: u32 = 1100;
const HEIGHT: u32 = 340;
const FONT: &str = "sans-serif";
/// Latency below this is drawn at it on log axes (log 0 does not exist).
const FLOOR_MS: f64 = 0.01;

type Result<T> = std::result::Result<T, String>;

fn err(e: impl std::fmt::Display) -> String {
    format!("cannot draw a chart: {e}")
}

fn op_color(op: Op) -> RGBColor {
    match op {
        Op::Create => RGBColor(31, 119, 180),
        Op::Append => RGBColor(44, 160, 44),
        Op::Read => RGBColor(255, 127, 14),
        Op::Sweep => RGBColor(148, 103, 189),
    }
}

fn kind_color(kind: AnomalyKind) -> RGBColor {
    match kind {
        AnomalyKind::LostSession => RGBColor(140, 20, 20),
        AnomalyKind::LostWrite => RGBColor(255, 127, 14),
        AnomalyKind::StaleRead => RGBColor(31, 119, 180),
        AnomalyKind::Duplicate => RGBColor(148, 103, 189),
        AnomalyKind::Phantom => RGBColor(127, 127, 127),
    }
}

const FAULT: RGBColor = RGBColor(214, 39, 40);

/// A fault as drawn: when (seconds), its label, and the error window after it.
struct Fault {
    at: f64,
    label: String,
    window: Option<(f64, f64)>,
}

fn faults(summary: &Summary) -> Vec<Fault> {
    summary
        .faults
        .events
        .iter()
        // What hit a target; skipped and failed faults did not.
        .filter(|e| !matches!(e.outcome, "skipped" | "failed"))
        .map(|e| Fault {
            at: e.injected_ms as f64 / 1000.0,
            label: format!("{} {}", e.fault, e.target),
            window: e.recovery.as_ref().map(|r| {
                (
                    r.first_failure_ms as f64 / 1000.0,
                    (r.last_failure_ms + 10) as f64 / 1000.0,
                )
            }),
        })
        .collect()
}

/// The x range of the time charts: the whole load, and every fault.
fn time_range(summary: &Summary) -> std::ops::Range<f64> {
    let last_interval = summary.intervals.last().map_or(0, |r| r.t + 1) as f64;
    let last_fault = faults(summary).iter().map(|f| f.at).fold(0.0, f64::max);
    0.0..last_interval
        .max(summary.load_elapsed_s)
        .max(last_fault)
        .max(1.0)
}

/// Draws the faults across the chart's whole height, `y` being its y range.
fn draw_faults<'a, DB: DrawingBackend + 'a, Y: Ranged<ValueType = f64>>(
    chart: &mut ChartContext<'a, DB, Cartesian2d<RangedCoordf64, Y>>,
    faults: &[Fault],
    y: (f64, f64),
) -> Result<()> {
    chart
        .draw_series(faults.iter().filter_map(|f| {
            f.window.map(|(from, to)| {
                Rectangle::new(
                    [(from, y.0), (to.max(from + 0.05), y.1)],
                    FAULT.mix(0.12).filled(),
                )
            })
        }))
        .map_err(err)?;
    chart
        .draw_series(
            faults
                .iter()
                .map(|f| PathElement::new(vec![(f.at, y.0), (f.at, y.1)], FAULT.stroke_width(1))),
        )
        .map_err(err)?;
    // Labels at the top, staggered so neighbouring faults stay readable.
    chart
        .draw_series(faults.iter().enumerate().map(|(i, f)| {
            let top = chart_top_label(y, i);
            Text::new(
                f.label.clone(),
                (f.at, top),
                (FONT, 11).into_font().color(&FAULT),
            )
        }))
        .map_err(err)?;
    Ok(())
}

/// Where the `i`th fault label goes: near the top, on one of three rows.
fn chart_top_label(y: (f64, f64), i: usize) -> f64 {
    let row = (i % 3) as f64;
    if y.0 > 0.0 && y.1 / y.0 > 100.0 {
        // A log axis: step down by factors.
        y.1 / 1.6f64.powf(row + 1.0)
    } else {
        y.1 - (y.1 - y.0) * (0.04 + 0.06 * row)
    }
}

fn svg(draw: impl FnOnce(&DrawingArea<SVGBackend<'_>, Shift>) -> Result<()>) -> Result<String> {
    svg_sized(WIDTH, HEIGHT, draw)
}

fn svg_sized(
    width: u32,
    height: u32,
    draw: impl FnOnce(&DrawingArea<SVGBackend<'_>, Shift>) -> Result<()>,
) -> Result<String> {
    let mut out = String::new();
    {
        let root = SVGBackend::with_string(&mut out, (width, height)).into_drawing_area();
        root.fill(&WHITE).map_err(err)?;
        draw(&root)?;
        root.present().map_err(err)?;
    }
    Ok(out)
}

/// Per-interval series of one figure, by operation; `pick` also gets the seconds
/// the interval spans (more than one in a long run's downsampled series).
fn series(
    summary: &Summary,
    pick: impl Fn(&crate::load::collector::IntervalOp, f64) -> Option<f64>,
) -> BTreeMap<Op, Vec<(f64, f64)>> {
    let mut out: BTreeMap<Op, Vec<(f64, f64)>> = BTreeMap::new();
    for row in &summary.intervals {
        for (op, o) in &row.ops {
            if let Some(v) = pick(o, row.span_s as f64) {
                out.entry(*op).or_default().push((middle(row), v));
            }
        }
    }
    out
}

/// Where an interval is drawn: the middle of the seconds it spans.
fn middle(row: &crate::load::collector::IntervalRow) -> f64 {
    row.t as f64 + row.span_s as f64 / 2.0
}

/// The legend, drawn in its own area right of the plot so it never hides a fault
/// label or a line.
fn legend(area: &DrawingArea<SVGBackend<'_>, Shift>, entries: &[(String, RGBColor)]) -> Result<()> {
    for (i, (label, color)) in entries.iter().enumerate() {
        let y = 52 + i as i32 * 18;
        area.draw(&PathElement::new(
            vec![(6, y), (28, y)],
            color.stroke_width(2),
        ))
        .map_err(err)?;
        area.draw(&Text::new(label.clone(), (34, y - 7), (FONT, 12)))
            .map_err(err)?;
    }
    Ok(())
}

/// Room right of the plot for the legend.
const LEGEND_WIDTH: u32 = 200;

/// The frame every chart over time shares: the plot left of its legend, `caption`
/// above it, seconds since the load started on x and `y_desc` on `y` (whose ends are
/// `y_span`), and the faults drawn across the whole height, first in the legend.
/// `draw` adds the chart's own series and returns their legend entries.
fn time_chart<Y>(
    summary: &Summary,
    caption: &str,
    y_desc: &str,
    (y, y_span): (Y, (f64, f64)),
    draw: impl FnOnce(
        &mut ChartContext<'_, SVGBackend<'_>, Cartesian2d<RangedCoordf64, Y::CoordDescType>>,
    ) -> Result<Vec<(String, RGBColor)>>,
) -> Result<String>
where
    Y: AsRangedCoord<Value = f64>,
    Y::CoordDescType: ValueFormatter<f64>,
{
    let x = time_range(summary);
    let faults = faults(summary);
    svg(|root| {
        let (root, side) = root.split_horizontally(WIDTH - LEGEND_WIDTH);
        let mut chart = ChartBuilder::on(&root)
            .caption(caption, (FONT, 18))
            .margin(12)
            .x_label_area_size(36)
            .y_label_area_size(60)
            .build_cartesian_2d(x, y)
            .map_err(err)?;
        chart
            .configure_mesh()
            .x_desc("seconds since the load started")
            .y_desc(y_desc)
            .light_line_style(BLACK.mix(0.05))
            .draw()
            .map_err(err)?;
        draw_faults(&mut chart, &faults, y_span)?;
        let mut entries = vec![("fault (shaded: users saw errors)".to_string(), FAULT)];
        entries.extend(draw(&mut chart)?);
        legend(&side, &entries)
    })
}

/// Completed operations per second, by operation, and failed operations. In a
/// long run's downsampled series each point is the mean over its seconds, and a
/// thin line under it the fewest done in any one of them, so a dip stays visible.
pub fn throughput(summary: &Summary) -> Result<String> {
    let ok = series(summary, |o, span| Some(o.ok as f64 / span));
    let fewest = series(summary, |o, _| o.ok_min.map(|n| n as f64));
    let mut failed: BTreeMap<u64, (f64, f64)> = BTreeMap::new();
    for row in &summary.intervals {
        let span = row.span_s as f64;
        let n = row.ops.values().map(|o| o.failed as f64).sum::<f64>();
        failed.entry(row.t).or_insert((middle(row), 0.0)).1 += n / span;
    }
    let top = ok
        .values()
        .flatten()
        .map(|p| p.1)
        .chain(failed.values().map(|p| p.1))
        .fold(1.0, f64::max)
        * 1.25;
    let caption = "Throughput: operations per second";
    time_chart(
        summary,
        caption,
        "operations / s",
        (0.0..top, (0.0, top)),
        |chart| {
            let mut entries = Vec::new();
            for (op, points) in ok {
                let color = op_color(op);
                entries.push((format!("{} ok", op.name()), color));
                chart
                    .draw_series(LineSeries::new(points, color.stroke_width(2)))
                    .map_err(err)?;
            }
            for (op, points) in fewest {
                let color = op_color(op).mix(0.5);
                chart
                    .draw_series(LineSeries::new(points, color.stroke_width(1)))
                    .map_err(err)?;
            }
            let failed: Vec<(f64, f64)> = failed.into_values().collect();
            chart
                .draw_series(LineSeries::new(failed, BLACK.stroke_width(1)))
                .map_err(err)?;
            entries.push(("failed (no answer)".to_string(), BLACK));
            Ok(entries)
        },
    )
}

/// The store's lane, against the faults. Empty without a watched store.
pub fn store(summary: &Summary) -> Result<String> {
    match &summary.store {
        None => Ok(String::new()),
        Some(store) if store.members.is_empty() => single_store(summary, store),
        Some(store) => store_members(summary, store),
    }
}

/// Events marked on the store's lane: what changes what a member holds or serves.
fn marked(kind: StoreEventKind) -> bool {
    use StoreEventKind::*;
    matches!(kind, Restarted | Emptied | Resynced | Unreachable | Role)
}

/// Where a point is drawn: the middle of the seconds it spans.
fn store_middle(p: &StorePoint) -> f64 {
    p.t as f64 + p.span_s as f64 / 2.0
}

/// One figure of `points`, over time.
fn store_line(points: &[StorePoint], of: fn(&StorePoint) -> u64) -> Vec<(f64, f64)> {
    (points.iter())
        .map(|p| (store_middle(p), of(p) as f64))
        .collect()
}

/// A single store: the keys it held (the most each second, and a thin line for the
/// fewest), the keys it evicted, and what it did (a triangle at the top for each
/// restart, emptying or silence).
fn single_store(summary: &Summary, store: &StoreTimeline) -> Result<String> {
    let (most, fewest, evicted) = (
        store_line(&store.points, |p| p.keys_max),
        store_line(&store.points, |p| p.keys_min),
        store_line(&store.points, |p| p.evicted),
    );
    let top = most.iter().chain(&evicted).map(|p| p.1).fold(1.0, f64::max) * 1.25;
    let marks: Vec<(f64, f64)> = (store.events.iter())
        .filter(|e| marked(e.kind))
        .map(|e| (e.at_ms as f64 / 1000.0, top * 0.95))
        .collect();
    let caption = "The store: keys held and evicted, and what it did";
    time_chart(summary, caption, "keys", (0.0..top, (0.0, top)), |chart| {
        let held = RGBColor(31, 119, 180);
        chart
            .draw_series(LineSeries::new(most, held.stroke_width(2)))
            .map_err(err)?;
        chart
            .draw_series(LineSeries::new(fewest, held.mix(0.5).stroke_width(1)))
            .map_err(err)?;
        chart
            .draw_series(evictions(evicted, EVICTED))
            .map_err(err)?;
        chart
            .draw_series(
                marks
                    .into_iter()
                    .map(|p| TriangleMarker::new(p, 6, DID.filled())),
            )
            .map_err(err)?;
        Ok(vec![
            ("keys held".to_string(), held),
            ("keys evicted".to_string(), EVICTED),
            ("restarted, emptied, silent, role".to_string(), DID),
        ])
    })
}

const EVICTED: RGBColor = RGBColor(214, 39, 40);
const DID: RGBColor = RGBColor(148, 103, 189);
/// One colour per member, in order (a cluster has six).
const MEMBERS: [RGBColor; 6] = [
    RGBColor(31, 119, 180),
    RGBColor(44, 160, 44),
    RGBColor(255, 127, 14),
    RGBColor(23, 190, 207),
    RGBColor(140, 86, 75),
    RGBColor(188, 189, 34),
];

/// Keys evicted in a span, as dots where there were any.
fn evictions(
    evicted: Vec<(f64, f64)>,
    color: RGBColor,
) -> impl Iterator<Item = Circle<(f64, f64), i32>> {
    (evicted.into_iter())
        .filter(|p| p.1 > 0.0)
        .map(move |p| Circle::new(p, 3, color.filled()))
}

/// A store of members: each member's keys (the most each second, and a thin line for
/// the fewest) in its colour with its evictions, and above them a row per member, filled where it said it was a
/// primary (two rows filled at once: a split) and marked where it restarted,
/// emptied, resynced, went silent or changed role.
fn store_members(summary: &Summary, store: &StoreTimeline) -> Result<String> {
    let members = &store.members;
    let color = |i: usize| MEMBERS[i % MEMBERS.len()];
    let most = (members.iter())
        .flat_map(|m| &m.points)
        .map(|p| p.keys_max.max(p.evicted) as f64)
        .fold(1.0, f64::max);
    // The keys below, the rows above them.
    let (keys_top, top) = (most * 1.1, most * 1.1 / 0.7);
    let height = (top - keys_top) / members.len() as f64;
    let row = |i: usize| {
        let low = keys_top + height * i as f64;
        (low + height * 0.2, low + height * 0.8)
    };
    let index = |member: &str| members.iter().position(|m| m.member == member);
    let spans: Vec<(usize, f64, f64)> = (store.primaries.iter())
        .filter_map(|s| {
            let from = s.from_ms as f64 / 1000.0;
            // A span of one question is still drawn.
            let to = (s.to_ms as f64 / 1000.0).max(from + 0.25);
            Some((index(&s.member)?, from, to))
        })
        .collect();
    let marks: Vec<(usize, f64)> = (store.events.iter())
        .filter(|e| marked(e.kind))
        .filter_map(|e| Some((index(&e.member)?, e.at_ms as f64 / 1000.0)))
        .collect();
    let caption = "The store: each member's keys, when it was primary (its row), what it did";
    time_chart(summary, caption, "keys", (0.0..top, (0.0, top)), |chart| {
        let mut entries = Vec::new();
        for (i, member) in members.iter().enumerate() {
            let c = color(i);
            chart
                .draw_series(LineSeries::new(
                    store_line(&member.points, |p| p.keys_max),
                    c.stroke_width(2),
                ))
                .map_err(err)?;
            chart
                .draw_series(LineSeries::new(
                    store_line(&member.points, |p| p.keys_min),
                    c.mix(0.5).stroke_width(1),
                ))
                .map_err(err)?;
            let evicted = store_line(&member.points, |p| p.evicted);
            chart.draw_series(evictions(evicted, c)).map_err(err)?;
            let (low, high) = row(i);
            chart
                .draw_series(std::iter::once(Text::new(
                    member.member.clone(),
                    (0.0, high),
                    (FONT, 11).into_font().color(&c),
                )))
                .map_err(err)?;
            chart
                .draw_series(spans.iter().filter(|s| s.0 == i).map(|&(_, from, to)| {
                    Rectangle::new([(from, low), (to, high)], c.mix(0.6).filled())
                }))
                .map_err(err)?;
            entries.push((format!("{} keys, primary in its row", member.member), c));
        }
        chart
            .draw_series(marks.iter().map(|&(i, at)| {
                let (low, high) = row(i);
                TriangleMarker::new((at, (low + high) / 2.0), 6, DID.filled())
            }))
            .map_err(err)?;
        entries.push(("restarted, emptied, silent, role".to_string(), DID));
        Ok(entries)
    })
}

/// Anomalies per second, by kind, against the faults: which fault each burst of
/// loss followed.
pub fn anomalies(summary: &Summary) -> Result<String> {
    let per_second = &summary.anomalies.per_second;
    let top = per_second
        .iter()
        .flat_map(|s| AnomalyKind::ALL.iter().filter_map(|k| s.peak_of(*k)))
        .fold(1, u64::max) as f64
        * 1.25;
    // What the store did that the service could see, above the anomalies it may
    // explain: a restart, an emptying, evictions, a new primary, a split.
    let store_marks: Vec<(f64, f64)> = (summary.store.iter())
        .flat_map(|s| &s.events)
        .filter(|e| {
            e.reaches_the_service()
                && (marked(e.kind)
                    || matches!(e.kind, StoreEventKind::Evicted | StoreEventKind::Split))
        })
        .map(|e| (e.at_ms as f64 / 1000.0, top * 0.95))
        .collect();
    let caption = "Anomalies per second, by kind, against the faults";
    time_chart(
        summary,
        caption,
        "anomalies / s",
        (0.0..top, (0.0, top)),
        |chart| {
            let mut entries = Vec::new();
            for kind in AnomalyKind::ALL {
                let points: Vec<(f64, f64)> = per_second
                    .iter()
                    .filter_map(|s| {
                        Some((s.t as f64 + s.span_s as f64 / 2.0, s.peak_of(kind)? as f64))
                    })
                    .collect();
                if points.is_empty() {
                    continue;
                }
                let color = kind_color(kind);
                entries.push((kind.name().to_string(), color));
                chart
                    .draw_series(
                        points
                            .into_iter()
                            .map(|p| Circle::new(p, 3, color.filled())),
                    )
                    .map_err(err)?;
            }
            if !store_marks.is_empty() {
                entries.push((
                    "store event (restarted, emptied, evicted, role)".to_string(),
                    DID,
                ));
                chart
                    .draw_series(
                        store_marks
                            .into_iter()
                            .map(|p| TriangleMarker::new(p, 6, DID.filled())),
                    )
                    .map_err(err)?;
            }
            Ok(entries)
        },
    )
}

/// p50 (dashed) and p99 (solid) latency per second, corrected, on a log axis.
pub fn latency(summary: &Summary) -> Result<String> {
    let p50 = series(summary, |o, _| {
        (o.corrected_ms.count > 0).then_some(o.corrected_ms.p50.max(FLOOR_MS))
    });
    let p99 = series(summary, |o, _| {
        (o.corrected_ms.count > 0).then_some(o.corrected_ms.p99.max(FLOOR_MS))
    });
    let (lo, hi) = log_bounds(p50.values().chain(p99.values()).flatten().map(|p| p.1));
    let caption = "Latency per second (corrected for coordinated omission): p99 solid, p50 dashed";
    let y = ((lo..hi).log_scale(), (lo, hi));
    time_chart(summary, caption, "ms (log)", y, |chart| {
        let mut entries = Vec::new();
        for (op, points) in p99 {
            let color = op_color(op);
            entries.push((format!("{} p99 (p50 dashed)", op.name()), color));
            chart
                .draw_series(LineSeries::new(points, color.stroke_width(2)))
                .map_err(err)?;
        }
        for (op, points) in p50 {
            let color = op_color(op);
            chart
                .draw_series(DashedLineSeries::new(points, 4, 3, color.stroke_width(1)))
                .map_err(err)?;
        }
        Ok(entries)
    })
}

/// Failed requests / requests per second, in percent.
pub fn error_rate(summary: &Summary) -> Result<String> {
    let points: Vec<(f64, f64)> = summary
        .intervals
        .iter()
        .map(|row| {
            let errors: u64 = row.ops.values().flat_map(|o| o.errors.values()).sum();
            let ok: u64 = row.ops.values().map(|o| o.ok).sum();
            let all = errors + ok;
            let rate = if all == 0 {
                0.0
            } else {
                errors as f64 * 100.0 / all as f64
            };
            (middle(row), rate)
        })
        .collect();
    let top = (points.iter().map(|p| p.1).fold(0.0, f64::max) * 1.25).max(1.0);
    let caption = "Error rate: failed requests per second, in % of requests";
    time_chart(
        summary,
        caption,
        "% of requests",
        (0.0..top, (0.0, top)),
        |chart| {
            chart
                .draw_series(
                    AreaSeries::new(points, 0.0, FAULT.mix(0.35))
                        .border_style(FAULT.stroke_width(2)),
                )
                .map_err(err)?;
            Ok(vec![("error rate".to_string(), FAULT)])
        },
    )
}

/// (percentile, ms) points of a latency distribution.
type Points = Vec<[f64; 2]>;

/// The spectrum of one operation: (percentile, ms) points of the whole
/// distribution, or, for a summary written before those were kept, its five
/// percentiles.
fn spectrum_of(points: &[[f64; 2]], p: &Percentiles) -> Points {
    if points.is_empty() {
        vec![
            [50.0, p.p50],
            [90.0, p.p90],
            [99.0, p.p99],
            [99.9, p.p999],
            [100.0, p.max],
        ]
    } else {
        points.to_vec()
    }
}

/// Where a percentile sits on the "nines" axis: x = -log10(1 - p/100), so 90% is
/// 1, 99% is 2, 99.9% is 3; 100% (the max) has no finite place and is drawn at
/// `max_at`, one step past the deepest percentile the data has.
fn nines(percentile: f64, max_at: f64) -> f64 {
    if percentile >= 100.0 {
        max_at
    } else {
        -(1.0 - percentile / 100.0).log10()
    }
}

/// The label of a whole step on the nines axis (0%, 90%, 99%, 99.9% … and max);
/// nothing between steps.
fn nines_label(x: f64, max_at: f64) -> String {
    let step = x.round();
    if (x - step).abs() > 0.01 || step < 0.0 {
        String::new()
    } else if (step - max_at).abs() < 0.01 {
        "max".into()
    } else {
        match step as usize {
            0 => "0%".into(),
            1 => "90%".into(),
            n => format!("99.{}%", "9".repeat(n - 2)).replace(".%", "%"),
        }
    }
}

/// The whole run's latency distribution by percentile, corrected (solid) and
/// uncorrected (dashed), on a nines axis with the latency on a log axis, as
/// HdrHistogram's plotter draws it.
pub fn spectrum(summary: &Summary) -> Result<String> {
    let ops: Vec<(Op, Points, Points)> = summary
        .operations
        .iter()
        .filter(|(_, o)| o.latency_ms.count > 0)
        .map(|(op, o)| {
            (
                *op,
                spectrum_of(&o.spectrum.corrected, &o.latency_ms),
                spectrum_of(&o.spectrum.uncorrected, &o.latency_uncorrected_ms),
            )
        })
        .collect();
    let all = || ops.iter().flat_map(|(_, c, u)| c.iter().chain(u));
    let deepest = all()
        .filter(|p| p[0] < 100.0)
        .map(|p| nines(p[0], 0.0))
        .fold(3.0, f64::max);
    let max_at = deepest.floor() + 1.0;
    let (lo, hi) = log_bounds(all().map(|p| p[1].max(FLOOR_MS)));
    let curve = |points: &[[f64; 2]]| -> Vec<(f64, f64)> {
        points
            .iter()
            .map(|p| (nines(p[0], max_at), p[1].max(FLOOR_MS)))
            .collect()
    };
    svg(|root| {
        let (root, side) = root.split_horizontally(WIDTH - LEGEND_WIDTH);
        let mut chart = ChartBuilder::on(&root)
            .caption(
                "Latency percentile spectrum: corrected solid, uncorrected dashed",
                (FONT, 18),
            )
            .margin(12)
            .x_label_area_size(36)
            .y_label_area_size(60)
            .build_cartesian_2d(-0.1..max_at + 0.2, (lo..hi).log_scale())
            .map_err(err)?;
        chart
            .configure_mesh()
            .x_desc("percentile (one step per nine)")
            .y_desc("ms (log)")
            .x_labels(max_at as usize + 1)
            .x_label_formatter(&|x| nines_label(*x, max_at))
            .light_line_style(BLACK.mix(0.05))
            .draw()
            .map_err(err)?;
        let mut entries = Vec::new();
        for (op, corrected, uncorrected) in &ops {
            let color = op_color(*op);
            entries.push((op.name().to_string(), color));
            chart
                .draw_series(LineSeries::new(curve(corrected), color.stroke_width(2)))
                .map_err(err)?;
            chart
                .draw_series(DashedLineSeries::new(
                    curve(uncorrected),
                    5,
                    4,
                    color.stroke_width(1),
                ))
                .map_err(err)?;
        }
        legend(&side, &entries)
    })
}

/// Answers per replica instance, with the failed requests put down to each.
pub fn replicas(summary: &Summary) -> Result<String> {
    let instances: std::collections::BTreeSet<&String> = summary
        .served_by
        .keys()
        .chain(summary.errors_by.keys())
        .collect();
    let count = |map: &BTreeMap<String, u64>, k: &String| map.get(k).copied().unwrap_or(0);
    let bars: Vec<(&String, u64)> = instances
        .iter()
        .map(|k| (*k, count(&summary.served_by, k)))
        .collect();
    let n = bars.len().max(1);
    let top = bars.iter().map(|b| b.1).max().unwrap_or(1).max(1) as f64 * 1.15;
    svg(|root| {
        let mut chart = ChartBuilder::on(root)
            .caption(
                "Load per replica instance: answers served (X-Served-By), failed requests in red",
                (FONT, 18),
            )
            .margin(12)
            .x_label_area_size(60)
            .y_label_area_size(60)
            .build_cartesian_2d(0.0..n as f64, 0.0..top)
            .map_err(err)?;
        let names: Vec<String> = bars.iter().map(|b| b.0.clone()).collect();
        chart
            .configure_mesh()
            .disable_x_mesh()
            .x_labels(n * 2 + 1)
            .x_label_formatter(&|x| {
                let i = x.floor() as usize;
                if (x - i as f64 - 0.5).abs() < 0.01 {
                    names.get(i).cloned().unwrap_or_default()
                } else {
                    String::new()
                }
            })
            .y_desc("answers")
            .light_line_style(BLACK.mix(0.05))
            .draw()
            .map_err(err)?;
        chart
            .draw_series(bars.iter().enumerate().map(|(i, (_, v))| {
                Rectangle::new(
                    [(i as f64 + 0.15, 0.0), (i as f64 + 0.85, *v as f64)],
                    op_color(Op::Create).mix(0.8).filled(),
                )
            }))
            .map_err(err)?;
        chart
            .draw_series(bars.iter().enumerate().map(|(i, (_, v))| {
                Text::new(
                    v.to_string(),
                    (i as f64 + 0.4, *v as f64 + top * 0.02),
                    (FONT, 12),
                )
            }))
            .map_err(err)?;
        chart
            .draw_series(bars.iter().enumerate().filter_map(|(i, (k, v))| {
                let errors = count(&summary.errors_by, k);
                (errors > 0).then(|| {
                    Text::new(
                        format!("{errors} failed"),
                        (i as f64 + 0.4, *v as f64 + top * 0.07),
                        (FONT, 12).into_font().color(&FAULT),
                    )
                })
            }))
            .map_err(err)?;
        Ok(())
    })
}

/// A log axis that holds every value, with room above and below.
fn log_bounds(values: impl Iterator<Item = f64>) -> (f64, f64) {
    let (lo, hi) = values.fold((f64::MAX, f64::MIN), |(lo, hi), v| (lo.min(v), hi.max(v)));
    if lo > hi {
        return (0.1, 100.0);
    }
    ((lo / 2.0).max(FLOOR_MS / 2.0), (hi * 3.0).max(lo * 10.0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_nines_axis_puts_each_nine_one_step_further_and_max_last() {
        assert!(nines(0.0, 5.0).abs() < 1e-9);
        assert!((nines(90.0, 5.0) - 1.0).abs() < 1e-9);
        assert!((nines(99.9, 5.0) - 3.0).abs() < 1e-9);
        assert_eq!(nines(100.0, 5.0), 5.0);
        let labels: Vec<String> = [0.0, 1.0, 2.0, 3.0, 4.0, 5.0, 2.5]
            .iter()
            .map(|x| nines_label(*x, 5.0))
            .collect();
        assert_eq!(labels, ["0%", "90%", "99%", "99.9%", "99.99%", "max", ""]);
    }
}
