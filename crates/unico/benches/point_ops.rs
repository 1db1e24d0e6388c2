//! W3 point operations over HTTP against the real binary (release build, durable store):
//! single-customer reads and single-field PATCHes from concurrent keep-alive clients.
//!
//! `cargo bench -p unico --bench point_ops` — env `UNICO_BENCH_CLIENTS` (default 32),
//! `UNICO_BENCH_SECONDS` per round (default 3), `UNICO_BENCH_ROUNDS` (default 5).
//! Prints each round and the median, in operations per second.
#![allow(clippy::unwrap_used)]

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

const ADMIN_KEY: &str = "bench-admin-key-0123456789";
const CUSTOMERS: usize = 10_000;

fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .max_idle_connections_per_host(64)
        .build()
        .new_agent()
}

fn send(agent: &ureq::Agent, method: &str, url: &str, body: Option<String>) -> u16 {
    let req = ureq::http::Request::builder()
        .method(method)
        .uri(url)
        .header("Authorization", format!("Bearer {ADMIN_KEY}"))
        .header("Content-Type", "application/json");
    let res = match body {
        Some(b) => agent.run(req.body(b).unwrap()),
        None => agent.run(req.body(()).unwrap()),
    }
    .unwrap();
    let status = res.status().as_u16();
    let _ = res.into_body().read_to_vec();
    status
}

fn round(clients: u64, seconds: u64, op: Arc<dyn Fn(&ureq::Agent, u64) -> u16 + Send + Sync>) -> f64 {
    let done = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let threads: Vec<_> = (0..clients)
        .map(|t| {
            let (done, stop, op) = (done.clone(), stop.clone(), op.clone());
            std::thread::spawn(move || {
                let agent = agent();
                let mut i = t * 7919;
                while !stop.load(Ordering::Relaxed) {
                    assert_eq!(op(&agent, i), 200);
                    done.fetch_add(1, Ordering::Relaxed);
                    i += 1;
                }
            })
        })
        .collect();
    let start = Instant::now();
    std::thread::sleep(Duration::from_secs(seconds));
    stop.store(true, Ordering::Relaxed);
    for t in threads {
        t.join().unwrap();
    }
    done.load(Ordering::Relaxed) as f64 / start.elapsed().as_secs_f64()
}

fn median(mut xs: Vec<f64>) -> f64 {
    xs.sort_by(f64::total_cmp);
    xs[xs.len() / 2]
}

fn main() {
    if std::env::args().any(|a| a == "--list" || a == "--test") {
        return; // `cargo test --benches` probes; nothing to list.
    }
    let clients = env_or("UNICO_BENCH_CLIENTS", 32);
    let seconds = env_or("UNICO_BENCH_SECONDS", 3);
    let rounds = env_or("UNICO_BENCH_ROUNDS", 5);
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_unico"))
        .args(["serve", "--addr", "127.0.0.1:0", "--data"])
        .arg(dir.path())
        .env("UNICO_ADMIN_KEY", ADMIN_KEY)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let base = loop {
        let line = lines.next().unwrap().unwrap();
        if let Some(addr) = line.strip_prefix("Listening on ") {
            break addr.to_owned();
        }
    };
    std::thread::spawn(move || for _ in lines.by_ref() {});
    let http = agent();
    assert_eq!(send(&http, "POST", &format!("{base}/v1/apps"), Some(r#"{"name":"bench"}"#.into())), 201);
    let app = format!("{base}/v1/apps/1");
    assert_eq!(send(&http, "POST", &format!("{app}/fields"), Some(r#"{"name":"visits","type":"number"}"#.into())), 201);
    assert_eq!(send(&http, "POST", &format!("{app}/fields"), Some(r#"{"name":"city","type":"string"}"#.into())), 201);
    let items: Vec<String> = (0..CUSTOMERS)
        .map(|i| format!(r#"{{"customerId":"c{i:07}","fields":{{"visits":{i},"city":"Madrid"}}}}"#))
        .collect();
    assert_eq!(send(&http, "POST", &format!("{app}/customers/batch"), Some(format!("[{}]", items.join(",")))), 200);

    println!("W3 over HTTP: {clients} keep-alive clients, {rounds} rounds of {seconds} s, {CUSTOMERS} customers");
    let reads_app = app.clone();
    let read: Arc<dyn Fn(&ureq::Agent, u64) -> u16 + Send + Sync> = Arc::new(move |a, i| {
        send(a, "GET", &format!("{reads_app}/customers/c{:07}", i % CUSTOMERS as u64), None)
    });
    let patch: Arc<dyn Fn(&ureq::Agent, u64) -> u16 + Send + Sync> = Arc::new(move |a, i| {
        let url = format!("{app}/customers/c{:07}", (i * 31) % CUSTOMERS as u64);
        send(a, "PATCH", &url, Some(format!(r#"{{"fields":{{"visits":{i}}}}}"#)))
    });
    for (name, op) in [("read one customer", read), ("durable single-field PATCH", patch)] {
        let results: Vec<f64> = (0..rounds).map(|_| round(clients, seconds, op.clone())).collect();
        let shown: Vec<String> = results.iter().map(|r| format!("{r:.0}")).collect();
        println!("{name:>28}: median {:>7.0} ops/s   rounds [{}]", median(results.clone()), shown.join(", "));
    }
    let _ = child.kill();
    let _ = child.wait();
}
