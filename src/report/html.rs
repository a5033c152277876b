//! `report.html`: one self-contained file (inline CSS and SVG, no script, nothing
//! fetched), rendered by a minijinja template from the summary and the [`charts`].
//!
//! [`charts`]: super::charts

use minijinja::{context, Environment, Value};

use super::{charts, Summary};

const TEMPLATE: &str = include_str!("report.html.j2");

pub fn render(summary: &Summary) -> std::io::Result<String> {
    render_inner(summary).map_err(std::io::Error::other)
}

fn render_inner(summary: &Summary) -> Result<String, String> {
    let chart =
        |draw: fn(&Summary) -> Result<String, String>| draw(summary).map(Value::from_safe_string);
    let charts = context! {
        throughput => chart(charts::throughput)?,
        latency => chart(charts::latency)?,
        error_rate => chart(charts::error_rate)?,
        spectrum => chart(charts::spectrum)?,
        replicas => chart(charts::replicas)?,
        anomalies => chart(charts::anomalies)?,
        store => chart(charts::store)?,
    };
    let requests: u64 = summary.operations.values().map(|o| o.ok + o.errors).sum();
    let errors: u64 = summary.operations.values().map(|o| o.errors).sum();
    // The faults' column of replication lag, where the store has replicas.
    let store_lag = (summary.faults.events.iter()).any(|e| e.store_lag_bytes.is_some());
    let mut env = Environment::new();
    env.set_auto_escape_callback(|_| minijinja::AutoEscape::Html);
    env.add_template("report.html", TEMPLATE)
        .map_err(|e| format!("the report template is broken: {e:#}"))?;
    let template = env.get_template("report.html").map_err(|e| e.to_string())?;
    template
        .render(context! {
            s => Value::from_serialize(summary),
            charts,
            requests,
            errors,
            store_lag,
            version => env!("CARGO_PKG_VERSION"),
        })
        .map_err(|e| format!("cannot render report.html: {e:#}"))
}
