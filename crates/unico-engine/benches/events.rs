//! The events benchmark (E1–E6 of `shared/bench/WORKLOAD.md`) on the engine alone, with
//! synthetic data shaped like `gen_events.py`'s: 1M customers, ~10 events per customer on
//! average (25 % with none, a heavy tail), the same ten types, mix, channels and
//! properties, times over the two years before 2026-11-28 skewed to recent days, grouped by
//! customer and in time order within each (a backfill). Prints the load time, memory per
//! event, the snapshot size and its read time (cold start), and the median of 7 runs
//! (after 1 warm-up) of E1–E6, each checked against counts tallied while generating.
//!
//! Run: `cargo bench -p unico-engine --bench events`. `UNICO_BENCH_CUSTOMERS=100000` for a
//! smaller run, `UNICO_BENCH_RUNS` for more runs, `UNICO_BENCH_THREADS=1` to pin the scans
//! to one thread.

use std::io::{BufReader, BufWriter};
use std::time::{Duration, Instant};

use jiff::tz::TimeZone;
use serde_json::json;
use unico_core::{
    Channel, Customer, CustomerId, Event, EventCode, FieldDef, FieldId, FieldName, FieldType,
    Properties, Schema, Value,
};
use unico_engine::AppIndex;
use unico_filter::filter::Which;
use unico_filter::resolve::{EventMeasure, EventTest, Resolved, TestKind};
use unico_filter::{EvalContext, Filter, FilterInput, resolve};

const DAY: i64 = 86_400_000;
/// 2026-11-28T00:00:00Z, the workload's "today".
const NOW: i64 = 1_795_824_000_000;
const WINDOW_DAYS: i64 = 730;

/// code, weight, channels.
const TYPES: [(&str, u32, &[&str]); 10] = [
    ("page_view", 34, &["web", "app"]),
    ("app_open", 18, &["app"]),
    ("email_open", 14, &["email"]),
    ("add_to_cart", 9, &["web", "app"]),
    ("email_click", 6, &["email"]),
    ("push_open", 6, &["push"]),
    ("purchase", 6, &["web", "app", "pos"]),
    ("sms_click", 3, &["sms"]),
    ("whatsapp_reply", 2, &["whatsapp"]),
    ("store_visit", 2, &["pos"]),
];
const CATEGORIES: [(&str, u32); 12] = [
    ("shoes", 18),
    ("dresses", 12),
    ("shirts", 12),
    ("trousers", 10),
    ("bags", 9),
    ("accessories", 8),
    ("sportswear", 8),
    ("kids", 6),
    ("home", 6),
    ("beauty", 5),
    ("outlet", 4),
    ("gift-cards", 2),
];
const PATHS: [&str; 8] = [
    "/",
    "/search",
    "/cart",
    "/product",
    "/category",
    "/account",
    "/offers",
    "/stores",
];
const COUNTRIES: [(&str, u32); 6] = [
    ("ES", 30),
    ("FR", 15),
    ("DE", 15),
    ("IT", 15),
    ("PT", 10),
    ("MX", 15),
];

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// Uniform in [0, 1).
    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }

    fn normal(&mut self) -> f64 {
        let u = self.unit().max(1e-300);
        let v = self.unit();
        (-2.0 * u.ln()).sqrt() * (std::f64::consts::TAU * v).cos()
    }

    fn lognormal(&mut self, mu: f64, sigma: f64) -> f64 {
        (mu + sigma * self.normal()).exp()
    }

    fn weighted<'a, T>(&mut self, items: &'a [(T, u32)]) -> &'a T {
        let total: u32 = items.iter().map(|(_, w)| w).sum();
        let mut x = self.below(total as usize) as u32;
        for (item, w) in items {
            if x < *w {
                return item;
            }
            x -= w;
        }
        &items[items.len() - 1].0
    }
}

/// Per customer, what E1–E6 need, tallied while generating (the expected counts).
#[derive(Default)]
struct Tally {
    purchases_90d: u32,
    email_open_30d: bool,
    purchase_30d: bool,
    purchase_cents_365d: i64,
    add_to_cart_7d: bool,
    purchase_7d: bool,
    app_open_ever: bool,
    app_open_30d: bool,
    pos_purchase_over_100_180d: bool,
}

#[derive(Default)]
struct Expected {
    e1: u64,
    e2: u64,
    e3: u64,
    e4: u64,
    e5: u64,
    e6: u64,
}

fn within(ts: i64, days: i64) -> bool {
    NOW - days * DAY <= ts && ts <= NOW
}

/// One customer's events (ids from `next_id`), tallied.
fn customer_events(rng: &mut Rng, customer: i64, next_id: &mut i64, out: &mut Vec<Event>) -> Tally {
    let mut tally = Tally::default();
    if rng.unit() >= 0.75 {
        return tally;
    }
    let sigma: f64 = 1.2;
    let mu = (10.0f64 / 0.75).ln() - sigma * sigma / 2.0;
    let k = (rng.lognormal(mu, sigma) as usize).clamp(1, 2000);
    let signup = NOW - rng.below(5 * 365) as i64 * DAY;
    let start = signup.max(NOW - WINDOW_DAYS * DAY);
    let span = (NOW - start) as f64;
    let mut offsets: Vec<i64> = (0..k)
        .map(|_| (span * rng.unit().powf(0.6)) as i64)
        .collect();
    offsets.sort_unstable();
    let weights: Vec<(usize, u32)> = TYPES.iter().enumerate().map(|(i, t)| (i, t.1)).collect();
    for off in offsets {
        let ts = start + off / 1000 * 1000;
        let t = *rng.weighted(&weights);
        let (code, _, channels) = TYPES[t];
        let channel = channels[rng.below(channels.len())];
        let props = match code {
            "purchase" => {
                let amount = (rng.lognormal(3.8, 0.8).min(5000.0) * 100.0).round() / 100.0;
                if within(ts, 90) {
                    tally.purchases_90d += 1;
                }
                tally.purchase_30d |= within(ts, 30);
                tally.purchase_7d |= within(ts, 7);
                if within(ts, 365) {
                    tally.purchase_cents_365d += (amount * 100.0).round() as i64;
                }
                tally.pos_purchase_over_100_180d |=
                    channel == "pos" && amount > 100.0 && within(ts, 180);
                json!({"amount": amount, "currency": "EUR",
                       "items": 1 + (-rng.unit().max(1e-12).ln() / 0.8) as i64,
                       "category": rng.weighted(&CATEGORIES)})
            }
            "add_to_cart" => {
                tally.add_to_cart_7d |= within(ts, 7);
                json!({"category": rng.weighted(&CATEGORIES),
                       "amount": (rng.lognormal(3.5, 0.7).min(2000.0) * 100.0).round() / 100.0})
            }
            "page_view" => json!({"path": PATHS[rng.below(PATHS.len())],
                                  "category": rng.weighted(&CATEGORIES)}),
            "email_open" | "email_click" | "push_open" | "sms_click" => {
                if code == "email_open" {
                    tally.email_open_30d |= within(ts, 30);
                }
                json!({"campaign": format!("cmp-{:03}", rng.below(120))})
            }
            _ => {
                if code == "app_open" {
                    tally.app_open_ever = true;
                    tally.app_open_30d |= within(ts, 30);
                }
                json!({})
            }
        };
        *next_id += 1;
        out.push(Event {
            id: *next_id,
            customer,
            event_id: None,
            event_type: EventCode::parse(code).expect("valid"),
            channel: Channel::parse(channel).expect("valid"),
            device_id: None,
            timestamp: ts,
            properties: Properties::from_json(props).expect("valid"),
        });
    }
    tally
}

fn median(mut runs: Vec<Duration>) -> f64 {
    runs.sort();
    runs[runs.len() / 2].as_secs_f64() * 1000.0
}

fn env_usize(name: &str) -> Option<usize> {
    std::env::var(name).ok().and_then(|v| v.parse().ok())
}

fn time<T>(mut f: impl FnMut() -> T) -> (f64, T) {
    let runs = env_usize("UNICO_BENCH_RUNS").unwrap_or(7).max(1);
    let mut out = f(); // warm-up
    let mut times = Vec::with_capacity(runs);
    for _ in 0..runs {
        let t = Instant::now();
        out = f();
        times.push(t.elapsed());
    }
    (median(times), out)
}

fn event(code: &str, channel: Option<&str>, days: Option<i64>, measure: EventMeasure) -> Resolved {
    Resolved::Event(EventTest {
        event: EventCode::parse(code).expect("valid"),
        channel: channel.map(|c| Channel::parse(c).expect("valid")),
        window: days.map_or((i64::MIN, i64::MAX), |d| (NOW - d * DAY, NOW)),
        wheres: Vec::new(),
        measure,
    })
}

fn did(negated: bool) -> EventMeasure {
    EventMeasure::Count {
        lo: 1,
        hi: u64::MAX,
        negated,
    }
}

fn main() {
    let customers = env_usize("UNICO_BENCH_CUSTOMERS").unwrap_or(1_000_000) as i64;
    let schema = Schema::new(vec![FieldDef {
        id: FieldId(1),
        name: FieldName::parse("country").expect("valid"),
        field_type: FieldType::String,
        created_at: 0,
        computed: None,
    }]);
    let mut rng = Rng(0x005E_ED0F_E7E7);
    let people: Vec<Customer> = (1..=customers)
        .map(|id| Customer {
            id,
            customer_id: CustomerId::parse(&format!("c{id:09}")).expect("valid"),
            created_at: 0,
            updated_at: 0,
            fields: vec![(
                FieldId(1),
                Value::String((*rng.weighted(&COUNTRIES)).into()),
            )],
        })
        .collect();
    let spain: Vec<bool> = people
        .iter()
        .map(|c| c.fields[0].1 == Value::String("ES".into()))
        .collect();
    let mut index = AppIndex::with_capacity(&schema, people.len());
    index.upsert_many(&people);
    drop(people);
    index.set_timezone(TimeZone::UTC);
    let before = index.memory_bytes();

    // Events, generated and added a slice of customers at a time.
    let mut expected = Expected::default();
    let mut next_id = 0i64;
    let mut load = Duration::ZERO;
    let generated = Instant::now();
    let mut batch = Vec::new();
    let step = 20_000;
    for first in (1..=customers).step_by(step) {
        batch.clear();
        for c in first..(first + step as i64).min(customers + 1) {
            let t = customer_events(&mut rng, c, &mut next_id, &mut batch);
            expected.e1 += u64::from(t.purchases_90d >= 3);
            expected.e2 += u64::from(t.email_open_30d && !t.purchase_30d);
            expected.e3 += u64::from(spain[c as usize - 1] && t.purchase_cents_365d > 50_000);
            expected.e4 += u64::from(t.add_to_cart_7d && !t.purchase_7d);
            expected.e5 += u64::from(t.app_open_ever && !t.app_open_30d);
            expected.e6 += u64::from(t.pos_purchase_over_100_180d);
        }
        let t = Instant::now();
        index.add_events(&batch);
        load += t.elapsed();
    }
    drop(batch);
    let events = index.event_count();
    let after = index.memory_bytes();
    println!(
        "{} customers, {events} events: generated and loaded in {:.1} s, of which add_events {:.2} s ({:.2} M events/s)",
        index.len(),
        generated.elapsed().as_secs_f64(),
        load.as_secs_f64(),
        events as f64 / load.as_secs_f64() / 1e6
    );
    println!(
        "memory_bytes: customers {:.0} MB, events {:.0} MB ({:.1} bytes per event), total {:.0} MB",
        before as f64 / 1e6,
        (after - before) as f64 / 1e6,
        (after - before) as f64 / events.max(1) as f64,
        after as f64 / 1e6
    );

    // A snapshot round trip: what a restart reads instead of scanning the store.
    let path = std::env::temp_dir().join(format!(
        "unico-events-bench-{}.snapshot",
        std::process::id()
    ));
    let t = Instant::now();
    {
        let mut out = BufWriter::new(std::fs::File::create(&path).expect("temporary file"));
        index.write_snapshot(b"bench", &mut out).expect("written");
    }
    let written = t.elapsed();
    let len = std::fs::metadata(&path).expect("written").len();
    drop(index);
    let t = Instant::now();
    let mut index = {
        let mut r = BufReader::new(std::fs::File::open(&path).expect("written"));
        AppIndex::read_snapshot(&mut r, len, b"bench", &schema, TimeZone::UTC).expect("reads back")
    };
    let read = t.elapsed();
    let reread = index.memory_bytes();
    let _ = std::fs::remove_file(&path);
    if let Some(threads) = env_usize("UNICO_BENCH_THREADS") {
        index.set_parallelism(threads, 1 << 19);
    }

    let ctx = EvalContext::new(NOW, TimeZone::UTC);
    let es = Filter::parse(FilterInput::Text(r#"country = "ES""#), &schema).expect("parses");
    let es = resolve(&es, &ctx).root().clone();
    let queries: Vec<(&str, Resolved, u64)> = vec![
        (
            "E1 purchase at least 3 times within 90d",
            event(
                "purchase",
                None,
                Some(90),
                EventMeasure::Count {
                    lo: 3,
                    hi: u64::MAX,
                    negated: false,
                },
            ),
            expected.e1,
        ),
        (
            "E2 email_open within 30d, did_not purchase within 30d",
            Resolved::And(vec![
                event("email_open", None, Some(30), did(false)),
                event("purchase", None, Some(30), did(true)),
            ]),
            expected.e2,
        ),
        (
            "E3 country = ES and sum amount of purchase within 365d > 500",
            Resolved::And(vec![
                es,
                event(
                    "purchase",
                    None,
                    Some(365),
                    EventMeasure::Agg {
                        agg: unico_filter::filter::Agg::Sum,
                        property: Some("amount".into()),
                        test: TestKind::NumRange {
                            lo: 500.0,
                            lo_inclusive: false,
                            hi: f64::INFINITY,
                            hi_inclusive: false,
                        },
                    },
                ),
            ]),
            expected.e3,
        ),
        (
            "E4 add_to_cart within 7d, did_not purchase within 7d",
            Resolved::And(vec![
                event("add_to_cart", None, Some(7), did(false)),
                event("purchase", None, Some(7), did(true)),
            ]),
            expected.e4,
        ),
        (
            "E5 did app_open, did_not app_open within 30d",
            Resolved::And(vec![
                event("app_open", None, None, did(false)),
                event("app_open", None, Some(30), did(true)),
            ]),
            expected.e5,
        ),
        (
            "E5' last app_open before 30d ago",
            event(
                "app_open",
                None,
                None,
                EventMeasure::Time {
                    which: Which::Last,
                    test: TestKind::MsRanges {
                        ranges: vec![(i64::MIN, NOW - 30 * DAY - 1)],
                        negated: false,
                    },
                },
            ),
            expected.e5,
        ),
        (
            "E6 purchase on pos where amount > 100 within 180d",
            {
                let mut e = event("purchase", Some("pos"), Some(180), did(false));
                if let Resolved::Event(t) = &mut e {
                    t.wheres.push(unico_filter::resolve::PropertyTest {
                        property: "amount".into(),
                        property_type: unico_core::PropertyType::Number,
                        kind: TestKind::NumRange {
                            lo: 100.0,
                            lo_inclusive: false,
                            hi: f64::INFINITY,
                            hi_inclusive: false,
                        },
                    });
                }
                e
            },
            expected.e6,
        ),
    ];
    let t = Instant::now();
    let first = index.count_resolved(&queries[0].1, &TimeZone::UTC);
    let first_answer = t.elapsed();
    println!(
        "snapshot: {:.0} MB, written in {:.2} s, read in {:.2} s (memory_bytes then {:.0} MB); first answer {:.1} ms later (E1 = {first})",
        len as f64 / 1e6,
        written.as_secs_f64(),
        read.as_secs_f64(),
        reread as f64 / 1e6,
        first_answer.as_secs_f64() * 1000.0
    );
    for (name, root, want) in &queries {
        let (ms, count) = time(|| index.count_resolved(root, &TimeZone::UTC));
        let members = index.members_resolved(root, &TimeZone::UTC).len();
        println!(
            "{name:<62} {ms:>7.2} ms  count {count:>7} (members {members}, expected {want}){}",
            if count == *want && members == count {
                ""
            } else {
                "  MISMATCH"
            }
        );
    }
    // Computed fields: every customer's value in one pass (what a list, an export or a
    // chart of a computed field asks for).
    let ctx = EvalContext::new(NOW, TimeZone::UTC);
    for (name, agg, property, window) in [
        (
            "count of purchase within_last 90d",
            "count",
            None,
            Some("90d"),
        ),
        (
            "sum amount of purchase within_last 365d",
            "sum",
            Some("amount"),
            Some("365d"),
        ),
        ("last purchase", "last", None, None),
    ] {
        let def = unico_core::Computed::new(
            EventCode::parse("purchase").expect("valid"),
            unico_core::ComputedAgg::parse(agg).expect("valid"),
            property.map(str::to_owned),
            window.map(|w| unico_core::Computed::parse_window(w).expect("valid")),
        )
        .expect("valid");
        let (ms, column) = time(|| index.computed_column(&def, &ctx));
        let holding = column.holding(&index.all());
        println!("computed {name:<53} {ms:>7.2} ms  ({holding} customers hold a value)");
        let page: Vec<i64> = (1..=50).map(|i| i * 997).collect();
        let (ms, _) = time(|| index.computed_column_for(&def, &ctx, &page));
        println!("  the same for a page of 50 customers {:>32.2} ms", ms);
    }
}
