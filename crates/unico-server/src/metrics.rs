//! `/metrics`: counters kept by the request layer and gauges read at scrape time, written
//! in the Prometheus text format (0.0.4) by hand: a few dozen lines instead of a crate
//! and its dependencies.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Mutex;
use std::time::Duration;

use crate::state::AppState;

/// Upper bounds, in seconds, of the request-latency histogram: from a point read (well
/// under a millisecond) to the request time-out.
pub const LATENCY_BUCKETS_SECONDS: [f64; 12] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0, 5.0, 30.0,
];

#[derive(Default)]
struct Latency {
    /// Requests that took at most each bound (not cumulative; summed when written).
    buckets: [u64; LATENCY_BUCKETS_SECONDS.len()],
    count: u64,
    seconds: f64,
}

/// Requests by route template (method and path) and status, and their latencies.
#[derive(Default)]
pub struct Metrics {
    requests: Mutex<BTreeMap<(String, String, u16), u64>>,
    latency: Mutex<BTreeMap<(String, String), Latency>>,
}

impl Metrics {
    /// Counts one answered request.
    pub fn record(&self, method: &str, route: &str, status: u16, took: Duration) {
        let key = (method.to_owned(), route.to_owned());
        if let Ok(mut requests) = self.requests.lock() {
            *requests
                .entry((key.0.clone(), key.1.clone(), status))
                .or_insert(0) += 1;
        }
        if let Ok(mut latency) = self.latency.lock() {
            let l = latency.entry(key).or_default();
            let secs = took.as_secs_f64();
            if let Some(i) = LATENCY_BUCKETS_SECONDS.iter().position(|&b| secs <= b) {
                l.buckets[i] += 1;
            }
            l.count += 1;
            l.seconds += secs;
        }
    }
}

/// A label value, escaped as the text format asks.
fn label(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

fn header(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
}

/// The whole exposition.
pub fn render(state: &AppState) -> String {
    let mut out = String::with_capacity(8192);
    let metrics = &state.metrics;
    header(
        &mut out,
        "unico_http_requests_total",
        "counter",
        "Requests answered, by method, route template and status.",
    );
    if let Ok(requests) = metrics.requests.lock() {
        for ((method, route, status), n) in requests.iter() {
            let _ = writeln!(
                out,
                "unico_http_requests_total{{method=\"{method}\",route=\"{}\",status=\"{status}\"}} {n}",
                label(route)
            );
        }
    }
    header(
        &mut out,
        "unico_http_request_duration_seconds",
        "histogram",
        "Time to the response's head, by method and route template.",
    );
    if let Ok(latency) = metrics.latency.lock() {
        for ((method, route), l) in latency.iter() {
            let route = label(route);
            let mut cumulative = 0;
            for (bound, n) in LATENCY_BUCKETS_SECONDS.iter().zip(l.buckets) {
                cumulative += n;
                let _ = writeln!(
                    out,
                    "unico_http_request_duration_seconds_bucket{{method=\"{method}\",route=\"{route}\",le=\"{bound}\"}} {cumulative}"
                );
            }
            let _ = writeln!(
                out,
                "unico_http_request_duration_seconds_bucket{{method=\"{method}\",route=\"{route}\",le=\"+Inf\"}} {}\n\
                 unico_http_request_duration_seconds_sum{{method=\"{method}\",route=\"{route}\"}} {}\n\
                 unico_http_request_duration_seconds_count{{method=\"{method}\",route=\"{route}\"}} {}",
                l.count, l.seconds, l.count
            );
        }
    }
    let writer = state.store.writer_stats();
    header(
        &mut out,
        "unico_writer_up",
        "gauge",
        "1 while the store's writer takes writes.",
    );
    let _ = writeln!(out, "unico_writer_up {}", u8::from(writer.alive));
    header(
        &mut out,
        "unico_writer_queue_depth",
        "gauge",
        "Write jobs waiting for the store's writer.",
    );
    let _ = writeln!(out, "unico_writer_queue_depth {}", writer.queued);
    header(
        &mut out,
        "unico_writer_queue_bound",
        "gauge",
        "Most write jobs that may wait before writes are refused (0: no queue).",
    );
    let _ = writeln!(out, "unico_writer_queue_bound {}", writer.queue_bound);
    header(
        &mut out,
        "unico_writer_commit_duration_seconds",
        "histogram",
        "Group commits of the store's writer, from BEGIN to the durable commit.",
    );
    for (bound, n) in unico_store::COMMIT_BUCKETS_SECONDS
        .iter()
        .zip(&writer.commit_buckets)
    {
        let _ = writeln!(
            out,
            "unico_writer_commit_duration_seconds_bucket{{le=\"{bound}\"}} {n}"
        );
    }
    let _ = writeln!(
        out,
        "unico_writer_commit_duration_seconds_bucket{{le=\"+Inf\"}} {}\n\
         unico_writer_commit_duration_seconds_sum {}\n\
         unico_writer_commit_duration_seconds_count {}",
        writer.commits, writer.commit_seconds, writer.commits
    );
    header(
        &mut out,
        "unico_imports_running",
        "gauge",
        "Imports (CSV and NDJSON) uploading or running.",
    );
    let _ = writeln!(
        out,
        "unico_imports_running {}",
        state.import_slots.running()
    );
    header(
        &mut out,
        "unico_imports_finished_total",
        "counter",
        "Imports that ended (succeeded, failed, or whose upload broke) since the start.",
    );
    let _ = writeln!(
        out,
        "unico_imports_finished_total {}",
        state.import_slots.ended()
    );
    let health = state.engines.health();
    header(
        &mut out,
        "unico_engines_behind",
        "gauge",
        "Committed changes the segment engines have not applied yet.",
    );
    let _ = writeln!(out, "unico_engines_behind {}", health.behind());
    header(
        &mut out,
        "unico_engines_failures_total",
        "counter",
        "Segment engines dropped and rebuilt because a failure made them suspect.",
    );
    let _ = writeln!(out, "unico_engines_failures_total {}", health.failures);
    header(
        &mut out,
        "unico_engines_building",
        "gauge",
        "Segment engines being built.",
    );
    let _ = writeln!(out, "unico_engines_building {}", health.building);
    let sizes = state.engines.sizes();
    for (name, help) in [
        (
            "unico_engine_bytes",
            "Heap held by an application's segment engine.",
        ),
        (
            "unico_engine_customers",
            "Customers in an application's segment engine.",
        ),
        (
            "unico_engine_events",
            "Events in an application's segment engine.",
        ),
        (
            "unico_engine_build_seconds",
            "How long the engine's last build (scan or snapshot read) took.",
        ),
        (
            "unico_engine_prepared_imports",
            "Events imports whose tables the engine took over as prepared while they wrote, since its build.",
        ),
    ] {
        header(&mut out, name, "gauge", help);
        for s in &sizes {
            let value = match name {
                "unico_engine_bytes" => s.bytes.to_string(),
                "unico_engine_customers" => s.customers.to_string(),
                "unico_engine_events" => s.events.to_string(),
                "unico_engine_prepared_imports" => s.prepared_imports.to_string(),
                _ => s.build_time.as_secs_f64().to_string(),
            };
            let _ = writeln!(out, "{name}{{app=\"{}\"}} {value}", s.app.0);
        }
    }
    out
}
