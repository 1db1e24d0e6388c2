//! The crash campaign: the real server, under concurrent single writes, batch upserts, a
//! CSV import and event ingestion, is killed with SIGKILL at a random moment, again and
//! again. After each restart every acknowledged write must be there, a write in flight at
//! the kill wholly there or wholly absent (a batch, an import, a batch of events: never a
//! part of one), and the segment engine's counts must equal a recount of what the store
//! holds, both as recovered (snapshot and change log) and rebuilt from a store scan.
//!
//! Three runs by default (part of the test suite); the long campaign:
//! `UNICO_CRASH_RUNS=100 cargo test -p unico --test crash_campaign -- --nocapture`, and
//! `UNICO_CRASH_SEED=N` replays the kill moments and data of one campaign.
#![allow(clippy::unwrap_used)]

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use support::{ADMIN_KEY, Server};

/// Runs on one data directory before it is replaced by a fresh one, so the data stays
/// small enough to be listed and checked in full after each kill.
const RUNS_PER_DATA_DIR: usize = 10;
/// Customers written one at a time, per writer thread.
const SINGLES_PER_WRITER: usize = 40;
const WRITERS: usize = 3;
/// Customers the batch upserts cycle through, and the items of one batch.
const BATCHED_CUSTOMERS: usize = 1_000;
const BATCH_ITEMS: usize = 200;
/// Rows of a run's CSV import: small ones are logged customer by customer, large ones
/// (over the store's incremental limit of 10 000) as one bulk change the engines rebuild on.
const SMALL_IMPORT_ROWS: usize = 4_000;
const LARGE_IMPORT_ROWS: usize = 10_500;
/// Customers the events name, and the events of one batch.
const EVENT_CUSTOMERS: usize = 150;
const EVENTS_PER_BATCH: usize = 100;
/// The latest moment of a kill after the load starts.
const KILL_WITHIN_MS: u64 = 3_000;
/// The window after an import's upload is acknowledged in which a kill finds it writing.
const IMPORT_KILL_WINDOW_MS: u64 = 200;

/// A small deterministic generator (xorshift64*): the campaign is replayed from its seed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(60)))
        .build()
        .new_agent()
}

/// One request; `None` when no answer came (the server died under it).
fn send(
    http: &ureq::Agent,
    method: &str,
    url: &str,
    key: &str,
    content_type: &str,
    body: Option<String>,
) -> Option<(u16, Value)> {
    let req = ureq::http::Request::builder()
        .method(method)
        .uri(url)
        .header("Authorization", format!("Bearer {key}"))
        .header("Content-Type", content_type);
    let response = match body {
        Some(b) => http.run(req.body(b).ok()?),
        None => http.run(req.body(()).ok()?),
    }
    .ok()?;
    let status = response.status().as_u16();
    let text = response.into_body().read_to_string().ok()?;
    Some((status, serde_json::from_str(&text).unwrap_or(Value::Null)))
}

/// A request that must be answered (the server is not being killed).
fn must(
    http: &ureq::Agent,
    method: &str,
    url: &str,
    key: &str,
    body: Option<Value>,
) -> (u16, Value) {
    send(
        http,
        method,
        url,
        key,
        "application/json",
        body.map(|b| b.to_string()),
    )
    .unwrap_or_else(|| panic!("{method} {url}: no answer"))
}

/// What one writer thread saw: its acknowledged states, and the write it had sent when the
/// server died (its effect unknown: all or nothing).
#[derive(Default)]
struct SinglesOutcome {
    acknowledged: Vec<(String, Option<i64>)>,
    in_flight: Option<(String, Option<i64>)>,
}

/// A writer: creates, patches and deletes its own customers one request at a time.
fn single_writer(
    app_url: String,
    key: String,
    t: usize,
    mut known: BTreeMap<String, Option<i64>>,
    seed: u64,
    stop: Arc<AtomicBool>,
) -> SinglesOutcome {
    let http = agent();
    let mut rng = Rng(seed | 1);
    let mut out = SinglesOutcome::default();
    while !stop.load(Ordering::Relaxed) {
        let id = format!("w{t}-{:03}", rng.below(SINGLES_PER_WRITER as u64));
        let value = rng.below(1_000) as i64;
        let current = known.get(&id).copied().flatten();
        let fields = json!({"fields": {"v": value, "s": format!("t{t}")}});
        let (method, url, body, new_state, ok) = match current {
            None => {
                let mut body = fields.clone();
                body["customerId"] = json!(id);
                (
                    "POST",
                    format!("{app_url}/customers"),
                    Some(body),
                    Some(value),
                    201,
                )
            }
            Some(_) if rng.below(8) == 0 => (
                "DELETE",
                format!("{app_url}/customers/{id}"),
                None,
                None,
                204,
            ),
            Some(_) => (
                "PATCH",
                format!("{app_url}/customers/{id}"),
                Some(fields),
                Some(value),
                200,
            ),
        };
        let answer = send(
            &http,
            method,
            &url,
            &key,
            "application/json",
            body.map(|b| b.to_string()),
        );
        match answer {
            Some((status, _)) if status == ok => {
                known.insert(id.clone(), new_state);
                out.acknowledged.push((id, new_state));
            }
            Some((status, body)) if status < 500 => {
                panic!("{method} {url}: {status} {body}")
            }
            // No answer, or one that does not say what happened (a 503 from a time-out
            // may follow a commit): the write is in flight, and the writer stops.
            _ => {
                out.in_flight = Some((id, new_state));
                return out;
            }
        }
    }
    out
}

/// What the batch thread saw: the acknowledged batches (serial, ids) and the one in flight.
#[derive(Default)]
struct BatchOutcome {
    acknowledged: Vec<(i64, Vec<String>)>,
    in_flight: Option<(i64, Vec<String>)>,
}

fn batch_writer(
    app_url: String,
    key: String,
    first_serial: i64,
    seed: u64,
    stop: Arc<AtomicBool>,
) -> BatchOutcome {
    let http = agent();
    let mut rng = Rng(seed | 1);
    let mut out = BatchOutcome::default();
    let mut serial = first_serial;
    while !stop.load(Ordering::Relaxed) {
        let start = rng.below(BATCHED_CUSTOMERS as u64) as usize;
        let ids: Vec<String> = (0..BATCH_ITEMS)
            .map(|i| format!("b{:04}", (start + i * 5) % BATCHED_CUSTOMERS))
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        let items: Vec<Value> = ids
            .iter()
            .map(|id| json!({"customerId": id, "fields": {"bn": serial}}))
            .collect();
        let answer = send(
            &http,
            "POST",
            &format!("{app_url}/customers/batch"),
            &key,
            "application/json",
            Some(Value::Array(items).to_string()),
        );
        match answer {
            Some((200, body)) => {
                let results = body["results"].as_array().unwrap();
                assert!(
                    results.iter().all(|r| r["status"] != "error"),
                    "a batch item was refused: {body}"
                );
                out.acknowledged.push((serial, ids));
            }
            _ => {
                out.in_flight = Some((serial, ids));
                return out;
            }
        }
        serial += 1;
    }
    out
}

/// What the import thread saw.
#[derive(Default, Debug)]
struct ImportOutcome {
    /// The import's id, once the upload was acknowledged (202).
    id: Option<i64>,
    /// It was seen to succeed before the kill.
    succeeded: bool,
}

fn importer(
    app_url: String,
    key: String,
    run: usize,
    rows: usize,
    stop: Arc<AtomicBool>,
    uploaded: std::sync::mpsc::Sender<()>,
) -> ImportOutcome {
    let http = agent();
    let mut csv = String::from("customerId,imp,s\n");
    for i in 0..rows {
        csv.push_str(&format!("i{run:03}-{i:05},{run},imported\n"));
    }
    let mut out = ImportOutcome::default();
    let answer = send(
        &http,
        "POST",
        &format!("{app_url}/imports?mode=atomic"),
        &key,
        "text/csv",
        Some(csv),
    );
    let Some((202, started)) = answer else {
        return out;
    };
    let id = started["id"].as_i64().unwrap();
    out.id = Some(id);
    let _ = uploaded.send(());
    while !stop.load(Ordering::Relaxed) {
        match send(
            &http,
            "GET",
            &format!("{app_url}/imports/{id}"),
            &key,
            "application/json",
            None,
        ) {
            Some((200, report)) if report["state"] == "running" => {}
            Some((200, report)) => {
                assert_eq!(report["state"], "succeeded", "{report}");
                assert_eq!(report["rows_written"], json!(rows), "{report}");
                out.succeeded = true;
                return out;
            }
            _ => return out,
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    out
}

/// One batch of events: (event_id, customerId, is a purchase).
type EventBatch = Vec<(String, String, bool)>;

#[derive(Default)]
struct EventsOutcome {
    acknowledged: Vec<EventBatch>,
    in_flight: Option<EventBatch>,
}

fn events_body(batch: &EventBatch) -> String {
    let events: Vec<Value> = batch
        .iter()
        .map(|(event_id, customer, buy)| {
            json!({"event_id": event_id, "customerId": customer,
                   "type": if *buy { "buy" } else { "view" }, "channel": "web"})
        })
        .collect();
    json!({ "events": events }).to_string()
}

fn event_sender(
    app_url: String,
    key: String,
    run: usize,
    seed: u64,
    stop: Arc<AtomicBool>,
) -> EventsOutcome {
    let http = agent();
    let mut rng = Rng(seed | 1);
    let mut out = EventsOutcome::default();
    for b in 0.. {
        if stop.load(Ordering::Relaxed) {
            break;
        }
        let batch: EventBatch = (0..EVENTS_PER_BATCH)
            .map(|i| {
                (
                    format!("r{run}-b{b}-{i}"),
                    format!("e{:03}", rng.below(EVENT_CUSTOMERS as u64)),
                    rng.below(6) == 0,
                )
            })
            .collect();
        let answer = send(
            &http,
            "POST",
            &format!("{app_url}/events"),
            &key,
            "application/json",
            Some(events_body(&batch)),
        );
        match answer {
            Some((200, body)) => {
                assert_eq!(body["errors"], 0, "{body}");
                out.acknowledged.push(batch);
            }
            _ => {
                out.in_flight = Some(batch);
                return out;
            }
        }
    }
    out
}

/// What the store must hold: kept from acknowledged writes, and resolved from what the
/// store shows for the writes in flight at each kill (after checking they are all or none).
#[derive(Default)]
struct Model {
    /// customerId → v, for the single writers' customers (None: deleted or never made).
    singles: BTreeMap<String, Option<i64>>,
    /// customerId → the serial of the last batch that wrote it.
    batched: BTreeMap<String, i64>,
    /// run → rows, for the imports that were applied.
    imports: BTreeMap<usize, usize>,
    /// customerId → (views, purchases).
    events: BTreeMap<String, (u64, u64)>,
    next_serial: i64,
}

/// Totals over the whole campaign.
#[derive(Default)]
struct Totals {
    kills: usize,
    acknowledged_singles: usize,
    acknowledged_batches: usize,
    acknowledged_events: usize,
    imports_applied: usize,
    imports_seen_succeeded: usize,
    imports_rolled_back: usize,
    /// Imports whose upload was acknowledged but which were not seen to end before the kill.
    imports_cut_running: usize,
    in_flight_applied: usize,
    in_flight_absent: usize,
    counts_checked: usize,
}

struct App {
    id: i64,
    key: String,
    segment: i64,
}

impl App {
    fn url(&self, server: &Server) -> String {
        format!("{}/v1/apps/{}", server.base, self.id)
    }
}

fn create_app(server: &Server) -> App {
    let http = agent();
    let (status, app) = must(
        &http,
        "POST",
        &format!("{}/v1/apps", server.base),
        ADMIN_KEY,
        Some(json!({"name": "Crash shop"})),
    );
    assert_eq!(status, 201, "{app}");
    let id = app["id"].as_i64().unwrap();
    let key = app["api_key"].as_str().unwrap().to_owned();
    let url = format!("{}/v1/apps/{id}", server.base);
    for (name, ty) in [
        ("v", "number"),
        ("s", "string"),
        ("bn", "number"),
        ("imp", "number"),
    ] {
        let (status, body) = must(
            &http,
            "POST",
            &format!("{url}/fields"),
            &key,
            Some(json!({"name": name, "type": ty})),
        );
        assert_eq!(status, 201, "{body}");
    }
    for code in ["view", "buy"] {
        let (status, body) = must(
            &http,
            "POST",
            &format!("{url}/event-types"),
            &key,
            Some(json!({ "code": code })),
        );
        assert_eq!(status, 201, "{body}");
    }
    let (status, body) = must(
        &http,
        "POST",
        &format!("{url}/segments"),
        &key,
        Some(json!({"name": "high v", "filter": "v >= 500"})),
    );
    assert_eq!(status, 201, "{body}");
    App {
        id,
        key,
        segment: body["id"].as_i64().unwrap(),
    }
}

/// Every customer the store holds, with its fields, read page by page.
fn list_all(server: &Server, app: &App) -> BTreeMap<String, Value> {
    let http = agent();
    let mut all = BTreeMap::new();
    let mut cursor: Option<String> = None;
    loop {
        let mut url = format!("{}/customers?limit=1000", app.url(server));
        if let Some(c) = &cursor {
            url.push_str(&format!("&cursor={c}"));
        }
        let (status, page) = must(&http, "GET", &url, &app.key, None);
        assert_eq!(status, 200, "{page}");
        for c in page["customers"].as_array().unwrap() {
            let id = c["customerId"].as_str().unwrap().to_owned();
            all.insert(id, c["fields"].clone());
        }
        match page["next_cursor"].as_str() {
            Some(next) => cursor = Some(next.to_owned()),
            None => return all,
        }
    }
}

fn number(fields: &Value, name: &str) -> Option<i64> {
    fields.get(name).and_then(Value::as_i64)
}

/// The filters whose counts are checked, each with its count recomputed from the model.
fn expected_counts(model: &Model) -> Vec<(String, u64)> {
    let singles = || model.singles.values().flatten();
    let imported: usize = model.imports.values().sum();
    let last_import = model.imports.iter().next_back();
    let mut checks = vec![
        ("v exists".to_owned(), singles().count() as u64),
        (
            "v >= 500".to_owned(),
            singles().filter(|v| **v >= 500).count() as u64,
        ),
        (
            "s = \"t1\" and v < 250".to_owned(),
            model
                .singles
                .iter()
                .filter(|(id, v)| id.starts_with("w1-") && v.is_some_and(|v| v < 250))
                .count() as u64,
        ),
        ("bn exists".to_owned(), model.batched.len() as u64),
        ("imp exists".to_owned(), imported as u64),
        ("s = \"imported\"".to_owned(), imported as u64),
        (
            "did buy".to_owned(),
            model.events.values().filter(|(_, b)| *b > 0).count() as u64,
        ),
        (
            "count of buy >= 3".to_owned(),
            model.events.values().filter(|(_, b)| *b >= 3).count() as u64,
        ),
        (
            "count of view >= 10 and not did buy".to_owned(),
            model
                .events
                .values()
                .filter(|(v, b)| *v >= 10 && *b == 0)
                .count() as u64,
        ),
    ];
    if let Some(&median) = model
        .batched
        .values()
        .collect::<Vec<_>>()
        .get(model.batched.len() / 2)
    {
        checks.push((
            format!("bn >= {median}"),
            model.batched.values().filter(|s| *s >= median).count() as u64,
        ));
    }
    if let Some((run, rows)) = last_import {
        checks.push((format!("imp = {run}"), *rows as u64));
    }
    checks
}

fn check_counts(server: &Server, app: &App, model: &Model, when: &str) -> usize {
    let http = agent();
    let url = app.url(server);
    let checks = expected_counts(model);
    for (filter, expected) in &checks {
        let (status, body) = must(
            &http,
            "POST",
            &format!("{url}/count"),
            &app.key,
            Some(json!({ "filter": filter })),
        );
        assert_eq!(status, 200, "{filter}: {body}");
        assert_eq!(
            body["count"],
            json!(expected),
            "{when}: `{filter}` counted {} where the store holds {expected}",
            body["count"]
        );
    }
    let (status, body) = must(
        &http,
        "GET",
        &format!("{url}/segments/{}", app.segment),
        &app.key,
        None,
    );
    assert_eq!(status, 200, "{body}");
    let high = model
        .singles
        .values()
        .flatten()
        .filter(|v| **v >= 500)
        .count();
    assert_eq!(body["count"], json!(high), "{when}: the saved segment");
    checks.len() + 1
}

/// Restarts after a kill, checks everything against the model and brings the model up to
/// what the store holds.
#[allow(clippy::too_many_arguments)]
fn verify(
    server: &Server,
    app: &App,
    model: &mut Model,
    totals: &mut Totals,
    run: usize,
    import_rows: usize,
    singles: Vec<SinglesOutcome>,
    batches: BatchOutcome,
    import: ImportOutcome,
    events: EventsOutcome,
) {
    let http = agent();
    let url = app.url(server);

    // Events: every acknowledged batch is stored (sent again, all duplicates); the batch in
    // flight is all or none, and stored after it is sent again.
    for batch in &events.acknowledged {
        let (status, body) = send(
            &http,
            "POST",
            &format!("{url}/events"),
            &app.key,
            "application/json",
            Some(events_body(batch)),
        )
        .unwrap();
        assert_eq!(status, 200, "{body}");
        assert_eq!(
            body["duplicates"],
            json!(batch.len()),
            "run {run}: an acknowledged event was lost: {body}"
        );
        totals.acknowledged_events += batch.len();
    }
    let mut all_events = events.acknowledged;
    if let Some(batch) = events.in_flight {
        let (status, body) = send(
            &http,
            "POST",
            &format!("{url}/events"),
            &app.key,
            "application/json",
            Some(events_body(&batch)),
        )
        .unwrap();
        assert_eq!(status, 200, "{body}");
        let duplicates = body["duplicates"].as_u64().unwrap();
        assert!(
            duplicates == 0 || duplicates == batch.len() as u64,
            "run {run}: a batch of events was half stored: {body}"
        );
        if duplicates == 0 {
            totals.in_flight_absent += 1;
        } else {
            totals.in_flight_applied += 1;
        }
        all_events.push(batch);
    }
    for batch in &all_events {
        for (_, customer, buy) in batch {
            let entry = model.events.entry(customer.clone()).or_default();
            if *buy {
                entry.1 += 1;
            } else {
                entry.0 += 1;
            }
        }
    }

    let stored = list_all(server, app);

    // Single writes: acknowledged states are applied in order; the one in flight may or
    // may not be there.
    for outcome in singles {
        totals.acknowledged_singles += outcome.acknowledged.len();
        for (id, state) in outcome.acknowledged {
            model.singles.insert(id, state);
        }
        if let Some((id, state)) = outcome.in_flight {
            let before = model.singles.get(&id).copied().flatten();
            let now = stored.get(&id).map(|f| number(f, "v"));
            let now = now.map(|v| v.unwrap_or_else(|| panic!("{id} lost its value")));
            assert!(
                now == before || now == state,
                "run {run}: {id} holds {now:?}: neither its acknowledged {before:?} nor the write in flight {state:?}"
            );
            if now == state && now != before {
                totals.in_flight_applied += 1;
            } else {
                totals.in_flight_absent += 1;
            }
            model.singles.insert(id, now);
        }
    }

    // Batches: one transaction each, so the one in flight is there in full or not at all.
    for (serial, ids) in batches.acknowledged {
        totals.acknowledged_batches += 1;
        for id in ids {
            model.batched.insert(id, serial);
        }
    }
    if let Some((serial, ids)) = batches.in_flight {
        let applied = ids
            .iter()
            .filter(|id| stored.get(*id).and_then(|f| number(f, "bn")) == Some(serial))
            .count();
        assert!(
            applied == 0 || applied == ids.len(),
            "run {run}: batch {serial} was half applied ({applied} of {} items)",
            ids.len()
        );
        if applied > 0 {
            totals.in_flight_applied += 1;
            for id in ids {
                model.batched.insert(id, serial);
            }
        } else {
            totals.in_flight_absent += 1;
        }
    }
    model.next_serial = model
        .next_serial
        .max(model.batched.values().copied().max().unwrap_or(0) + 1);

    // The import: all its rows or none, and its report says which.
    let prefix = format!("i{run:03}-");
    let imported = stored.keys().filter(|id| id.starts_with(&prefix)).count();
    assert!(
        imported == 0 || imported == import_rows,
        "run {run}: the import was half applied: {imported} of {import_rows} rows"
    );
    if import.succeeded {
        assert_eq!(
            imported, import_rows,
            "run {run}: a succeeded import was lost"
        );
        totals.imports_seen_succeeded += 1;
    }
    if let Some(id) = import.id {
        if !import.succeeded {
            totals.imports_cut_running += 1;
        }
        let (status, report) = must(&http, "GET", &format!("{url}/imports/{id}"), &app.key, None);
        assert_eq!(status, 200, "{report}");
        let expected = if imported == import_rows {
            "succeeded"
        } else {
            "failed"
        };
        assert_eq!(report["state"], expected, "run {run}: {report}");
    }
    if imported == import_rows {
        totals.imports_applied += 1;
        model.imports.insert(run, import_rows);
    } else {
        totals.imports_rolled_back += 1;
    }

    // The store holds exactly the model: nothing lost, nothing extra, every value.
    let mut expected: BTreeMap<String, Value> = BTreeMap::new();
    for (id, v) in &model.singles {
        if let Some(v) = v {
            let t = &id[1..2];
            expected.insert(id.clone(), json!({"v": v, "s": format!("t{t}")}));
        }
    }
    for (id, serial) in &model.batched {
        expected.insert(id.clone(), json!({ "bn": serial }));
    }
    for (r, rows) in &model.imports {
        for i in 0..*rows {
            expected.insert(
                format!("i{r:03}-{i:05}"),
                json!({"imp": r, "s": "imported"}),
            );
        }
    }
    for id in model.events.keys() {
        expected.insert(id.clone(), json!({}));
    }
    let missing: Vec<_> = expected
        .keys()
        .filter(|id| !stored.contains_key(*id))
        .collect();
    assert!(missing.is_empty(), "run {run}: customers lost: {missing:?}");
    let extra: Vec<_> = stored
        .keys()
        .filter(|id| !expected.contains_key(*id))
        .collect();
    assert!(
        extra.is_empty(),
        "run {run}: customers never written: {extra:?}"
    );
    for (id, fields) in &expected {
        assert_eq!(&stored[id], fields, "run {run}: {id}");
    }

    totals.counts_checked += check_counts(server, app, model, "recovered engine");
}

fn env_number(name: &str) -> Option<u64> {
    std::env::var(name).ok().map(|v| {
        v.parse()
            .unwrap_or_else(|_| panic!("{name} must be a number"))
    })
}

fn remove_engines(data: &Path) {
    let engines = data.join("engines");
    if engines.exists() {
        std::fs::remove_dir_all(&engines).unwrap();
    }
}

#[test]
fn acknowledged_writes_survive_sigkill_at_random_moments() {
    let runs = env_number("UNICO_CRASH_RUNS").unwrap_or(3) as usize;
    let seed = env_number("UNICO_CRASH_SEED").unwrap_or_else(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos() as u64
    });
    println!("crash campaign: {runs} runs, UNICO_CRASH_SEED={seed}");
    let mut rng = Rng(seed | 1);
    let mut totals = Totals::default();
    let started = Instant::now();

    let mut run = 0;
    while run < runs {
        let dir = tempfile::tempdir().unwrap();
        let mut server = Server::start(dir.path(), &[]);
        let app = create_app(&server);
        let mut model = Model {
            next_serial: 1,
            ..Model::default()
        };
        for _ in 0..RUNS_PER_DATA_DIR.min(runs - run) {
            let url = app.url(&server);
            // A count first, so the engine is loaded and snapshotted as a restart finds it.
            totals.counts_checked += check_counts(&server, &app, &model, "before the load");

            let stop = Arc::new(AtomicBool::new(false));
            let import_rows = if run % 3 == 2 {
                LARGE_IMPORT_ROWS
            } else {
                SMALL_IMPORT_ROWS
            };
            let writers: Vec<_> = (0..WRITERS)
                .map(|t| {
                    let known: BTreeMap<String, Option<i64>> = model
                        .singles
                        .iter()
                        .filter(|(id, _)| id.starts_with(&format!("w{t}-")))
                        .map(|(id, v)| (id.clone(), *v))
                        .collect();
                    let (url, key, stop, seed) =
                        (url.clone(), app.key.clone(), stop.clone(), rng.next());
                    std::thread::spawn(move || single_writer(url, key, t, known, seed, stop))
                })
                .collect();
            let batcher = {
                let (url, key, stop, seed) =
                    (url.clone(), app.key.clone(), stop.clone(), rng.next());
                let serial = model.next_serial;
                std::thread::spawn(move || batch_writer(url, key, serial, seed, stop))
            };
            let (uploaded, upload_acknowledged) = std::sync::mpsc::channel();
            let importer = {
                let (url, key, stop) = (url.clone(), app.key.clone(), stop.clone());
                std::thread::spawn(move || importer(url, key, run, import_rows, stop, uploaded))
            };
            let sender = {
                let (url, key, stop, seed) =
                    (url.clone(), app.key.clone(), stop.clone(), rng.next());
                std::thread::spawn(move || event_sender(url, key, run, seed, stop))
            };

            // A third of the kills early (often during the import's upload), a third while
            // the import is being written (timed from its upload's acknowledgement, as it
            // takes a few hundred milliseconds), a third later.
            let load_started = Instant::now();
            match rng.below(3) {
                0 => std::thread::sleep(Duration::from_millis(rng.below(KILL_WITHIN_MS / 5))),
                1 => {
                    let _ = upload_acknowledged.recv_timeout(Duration::from_secs(10));
                    std::thread::sleep(Duration::from_millis(rng.below(IMPORT_KILL_WINDOW_MS)));
                }
                _ => std::thread::sleep(Duration::from_millis(
                    KILL_WITHIN_MS / 5 + rng.below(KILL_WITHIN_MS * 4 / 5),
                )),
            }
            let kill_after = load_started.elapsed().as_millis();
            server.kill_9();
            stop.store(true, Ordering::Relaxed);
            totals.kills += 1;

            let singles: Vec<SinglesOutcome> =
                writers.into_iter().map(|w| w.join().unwrap()).collect();
            let batches = batcher.join().unwrap();
            let import = importer.join().unwrap();
            let events = sender.join().unwrap();

            server = Server::start(dir.path(), &[]);
            verify(
                &server,
                &app,
                &mut model,
                &mut totals,
                run,
                import_rows,
                singles,
                batches,
                import,
                events,
            );

            // A fresh recount: the engines' snapshots deleted, the index rebuilt from a scan
            // of the store, every count the same.
            server.kill_9();
            totals.kills += 1;
            remove_engines(dir.path());
            server = Server::start(dir.path(), &[]);
            totals.counts_checked += check_counts(&server, &app, &model, "rebuilt engine");
            println!(
                "run {run}: killed after {kill_after} ms; import {}",
                if model.imports.contains_key(&run) {
                    "applied"
                } else {
                    "rolled back"
                }
            );
            run += 1;
        }
        drop(server);
    }

    println!(
        "crash campaign: {runs} runs, {} kills in {:.0} s; verified {} acknowledged single writes, {} batches, {} events; imports {} applied ({} seen succeeded before the kill), {} rolled back, {} killed after their upload and before they were seen to end; writes in flight at a kill: {} applied whole, {} absent whole; {} counts equal to the recount; losses 0",
        totals.kills,
        started.elapsed().as_secs_f64(),
        totals.acknowledged_singles,
        totals.acknowledged_batches,
        totals.acknowledged_events,
        totals.imports_applied,
        totals.imports_seen_succeeded,
        totals.imports_rolled_back,
        totals.imports_cut_running,
        totals.in_flight_applied,
        totals.in_flight_absent,
        totals.counts_checked,
    );
    assert!(totals.acknowledged_singles > 0 || runs == 0);
}
