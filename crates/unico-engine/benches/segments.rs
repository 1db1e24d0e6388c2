//! The segment benchmark of `shared/bench/WORKLOAD.md` on the engine alone: loads the
//! 1M-customer long CSV, builds an [`AppIndex`], checks Q1–Q7 against the reference
//! evaluator, and prints the median of 7 runs (after 1 warm-up) of Q1–Q8.
//!
//! Data: `python3 shared/bench/gen_customers.py --customers 1000000 --format long --out
//! target/bench-data/customers_long.csv` (or set `UNICO_BENCH_CSV` to another file with
//! its `fields.json` beside it). Run: `cargo bench -p unico-engine`.

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use jiff::tz::TimeZone;
use unico_core::value::parse_text;
use unico_core::{Customer, CustomerId, FieldDef, FieldId, FieldName, FieldType, Schema};
use unico_engine::AppIndex;
use unico_filter::{EvalContext, Filter, FilterInput, matches};

const QUERIES: [(&str, &str, u64); 7] = [
    ("Q1", r#"country = "ES" and age between 25 and 34"#, 76_402),
    (
        "Q2",
        r#"tier in ("gold", "platinum") and last_purchase_at before 90d ago"#,
        68_269,
    ),
    (
        "Q3",
        r#"city = "Madrid" or (lifetime_value > 5000 and orders >= 10)"#,
        101_808,
    ),
    ("Q4", "birthdate anniversary", 2_255),
    (
        "Q5",
        r#"email ends_with "@gmail.com" and not gender = "F""#,
        234_382,
    ),
    ("Q6", r#"first_name contains "an""#, 194_782),
    ("Q7", "last_purchase_at not_exists", 300_076),
];

fn csv_path() -> PathBuf {
    std::env::var_os("UNICO_BENCH_CSV").map_or_else(
        || {
            PathBuf::from(env!("CARGO_MANIFEST_DIR"))
                .join("../../target/bench-data/customers_long.csv")
        },
        PathBuf::from,
    )
}

fn load_schema(path: &std::path::Path) -> Schema {
    let text = std::fs::read_to_string(path).expect("fields.json beside the CSV");
    let json: serde_json::Value = serde_json::from_str(&text).expect("fields.json is JSON");
    let fields = json
        .as_array()
        .expect("fields.json is an array")
        .iter()
        .enumerate()
        .map(|(i, f)| FieldDef {
            id: FieldId(i as u32 + 1),
            name: FieldName::parse(f["name"].as_str().expect("name")).expect("valid name"),
            field_type: FieldType::parse(f["type"].as_str().expect("type")).expect("known type"),
            created_at: 0,
            computed: None,
        })
        .collect();
    Schema::new(fields)
}

fn load_customers(path: &std::path::Path, schema: &Schema) -> Vec<Customer> {
    let mut reader = csv::Reader::from_path(path).expect("the benchmark CSV exists");
    let mut customers: Vec<Customer> = Vec::with_capacity(1_000_000);
    let mut by_cid: HashMap<String, usize> = HashMap::with_capacity(1_000_000);
    let mut record = csv::StringRecord::new();
    let created_at = unico_core::time::parse_datetime("2026-01-01T00:00:00Z").expect("valid");
    while reader.read_record(&mut record).expect("readable CSV") {
        let (cid, name, value) = (&record[0], &record[1], &record[2]);
        let i = match by_cid.get(cid) {
            Some(&i) => i,
            None => {
                let i = customers.len();
                customers.push(Customer {
                    id: i as i64 + 1,
                    customer_id: CustomerId::parse(cid).expect("valid customerId"),
                    created_at,
                    updated_at: created_at,
                    fields: Vec::new(),
                });
                by_cid.insert(cid.to_owned(), i);
                i
            }
        };
        if name.is_empty() {
            continue;
        }
        let def = schema.by_name(name).expect("a field of fields.json");
        if let Some(v) = parse_text(def.field_type, value).expect("valid value") {
            customers[i].fields.push((def.id, v));
        }
    }
    for c in &mut customers {
        c.fields.sort_by_key(|(id, _)| *id);
        c.fields.dedup_by_key(|(id, _)| *id);
    }
    customers
}

fn median(mut runs: Vec<Duration>) -> f64 {
    runs.sort();
    runs[runs.len() / 2].as_secs_f64() * 1000.0
}

/// Timed runs after the warm-up: 7, or `UNICO_BENCH_RUNS` (more runs steady a median on a
/// noisy machine).
fn run_count() -> usize {
    std::env::var("UNICO_BENCH_RUNS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(7)
}

fn time<T>(mut f: impl FnMut() -> T) -> (f64, T) {
    let mut out = f(); // warm-up
    let mut runs = Vec::with_capacity(run_count());
    for _ in 0..run_count().max(1) {
        let t = Instant::now();
        out = f();
        runs.push(t.elapsed());
    }
    (median(runs), out)
}

fn main() {
    // `cargo bench` passes `--bench`; `cargo test --benches` passes nothing useful. Skip
    // quietly when the data is not there (CI builds benches without running them).
    let csv = csv_path();
    if !csv.exists() {
        eprintln!(
            "no benchmark data at {}; generate it with shared/bench/gen_customers.py",
            csv.display()
        );
        return;
    }
    let schema = load_schema(&csv.with_file_name("fields.json"));
    let t = Instant::now();
    let customers = load_customers(&csv, &schema);
    println!(
        "read {} customers from {} in {:.0} ms (CSV parsing, not the engine)",
        customers.len(),
        csv.display(),
        t.elapsed().as_secs_f64() * 1000.0
    );

    let t = Instant::now();
    let mut index = AppIndex::with_capacity(&schema, customers.len());
    index.upsert_many(&customers);
    let build_ms = t.elapsed().as_secs_f64() * 1000.0;
    println!(
        "build: {build_ms:.0} ms for {} customers; memory_bytes {:.0} MB",
        index.len(),
        index.memory_bytes() as f64 / 1e6
    );
    // A snapshot round trip in memory: the CPU part of a restart's cold start (the file's
    // read from the page cache comes on top), median of 5 reads.
    let mut bytes = Vec::new();
    let t = Instant::now();
    index.write_snapshot(b"bench", &mut bytes).expect("written");
    let write_ms = t.elapsed().as_secs_f64() * 1000.0;
    let mut reads: Vec<f64> = (0..5)
        .map(|_| {
            let t = Instant::now();
            let back = AppIndex::read_snapshot(
                &mut bytes.as_slice(),
                bytes.len() as u64,
                b"bench",
                &schema,
                TimeZone::UTC,
            )
            .expect("reads back");
            let ms = t.elapsed().as_secs_f64() * 1000.0;
            assert_eq!(back.len(), index.len());
            ms
        })
        .collect();
    reads.sort_by(f64::total_cmp);
    println!(
        "snapshot: {:.0} MB, written in {write_ms:.0} ms, read in {:.0} ms (median of 5)",
        bytes.len() as f64 / 1e6,
        reads[2]
    );
    drop(bytes);
    // The UTC zone is the application's default; "today" is 2026-11-28.
    index.set_timezone(TimeZone::UTC);
    let now = unico_core::time::parse_datetime("2026-11-28T00:00:00Z").expect("valid");
    let ctx = EvalContext::new(now, TimeZone::UTC);

    let check = std::env::var_os("UNICO_BENCH_NO_CHECK").is_none();
    let mut q1 = None;
    for (name, text, expected) in QUERIES {
        let filter = Filter::parse(FilterInput::Text(text), &schema).expect("query parses");
        let (ms, count) = time(|| index.count(&filter, &ctx));
        let reference = if check {
            customers
                .iter()
                .filter(|c| matches(&filter, c, &ctx))
                .count() as u64
        } else {
            count
        };
        let members = index.members(&filter, &ctx).len();
        println!(
            "{name}: {ms:>7.3} ms  count {count:>7} (members {members}, reference {reference}, WORKLOAD.md {expected}){}",
            if count == reference && members == count {
                ""
            } else {
                "  MISMATCH"
            }
        );
        if name == "Q1" {
            q1 = Some(filter);
        }
    }
    // `UNICO_BENCH_THREADS=1,2`: Q1–Q7 again at each of these thread counts (what the
    // split over threads gains, spawns included).
    for threads in std::env::var("UNICO_BENCH_THREADS")
        .unwrap_or_default()
        .split(',')
        .filter_map(|t| t.trim().parse::<usize>().ok())
    {
        let mut tuned = index.clone();
        tuned.set_parallelism(threads, 1 << 16);
        let line: Vec<String> = QUERIES
            .iter()
            .map(|(name, text, _)| {
                let filter = Filter::parse(FilterInput::Text(text), &schema).expect("parses");
                let (ms, _) = time(|| tuned.count(&filter, &ctx));
                format!("{name} {ms:.3}")
            })
            .collect();
        println!("{threads} thread(s): {}", line.join("  "));
    }
    // `UNICO_BENCH_STATS=1`: the console's summaries of every customer, field by field
    // (top 8 values of strings; range then a 16-bucket histogram of the others).
    if std::env::var_os("UNICO_BENCH_STATS").is_some() {
        use unico_engine::stats::Attribute;
        let all = index.all();
        let mut line = Vec::new();
        let mut total = 0.0;
        for def in schema.fields() {
            let attr = Attribute::Field(def.id);
            let (ms, _) = if def.field_type == FieldType::String {
                time(|| index.top_values(&all, attr, 8).distinct)
            } else {
                time(|| {
                    let (lo, hi) = index.range(&all, attr).unwrap_or((0.0, 1.0));
                    let width = ((hi - lo) / 16.0).max(f64::MIN_POSITIVE);
                    index.histogram(&all, attr, lo, width, 16).len() as u64
                })
            };
            total += ms;
            line.push(format!("{} {ms:.1}", def.name.as_str()));
        }
        println!(
            "summaries (ms, one thread): {} — total {total:.1}",
            line.join("  ")
        );
    }
    // Extra filters to time, `;`-separated (profiling one part of a query).
    for text in std::env::var("UNICO_BENCH_EXTRA")
        .unwrap_or_default()
        .split(';')
    {
        if text.trim().is_empty() {
            continue;
        }
        let filter = Filter::parse(FilterInput::Text(text), &schema).expect("query parses");
        let (ms, count) = time(|| index.count(&filter, &ctx));
        println!("{text}: {ms:>7.3} ms  count {count}");
    }
    if let Some(q1) = q1 {
        let (ms, page) = time(|| {
            let members = index.members(&q1, &ctx);
            index.page_by_customer_id(&members, None, false, 50)
        });
        let members = index.members(&q1, &ctx);
        let (page_ms, _) = time(|| index.page_by_customer_id(&members, None, false, 50));
        let (walk_ms, walked) =
            time(|| index.page_matching_by_customer_id(&q1, &ctx, None, false, 50));
        println!(
            "Q8 by a row-at-a-time walk: {walk_ms:>7.3} ms{}",
            if walked == page { "" } else { "  MISMATCH" }
        );
        let first = page
            .first()
            .and_then(|id| customers.get(*id as usize - 1))
            .map_or("", |c| c.customer_id.as_str());
        println!(
            "Q8: {ms:>7.3} ms  (members of Q1 + page of 50; the page walk alone {page_ms:.3} ms), first {first}"
        );
    }
}
