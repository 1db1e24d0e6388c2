//! Fuzzing on stable: the snapshot reader fed arbitrary bytes and damaged snapshots (bytes
//! changed, words set to huge lengths, cut short, lengthened), with the checksum left
//! stale or resealed so that the damage reaches every check. The answer is an index or an
//! error, never a panic, and never an allocation past a bound: the test runs under an
//! allocator capped per read, so a length taken from the file unchecked aborts it. An
//! index that is accepted answers counts without panicking.
//!
//! `UNICO_FUZZ_CASES=N` sets the cases (default 2 000); for example
//! `UNICO_FUZZ_CASES=200000 cargo test --release -p unico-engine --test fuzz_snapshot`.
#![allow(clippy::unwrap_used)]

use jiff::tz::TimeZone;
use proptest::prelude::*;
use unico_core::{
    Channel, Customer, CustomerId, Event, EventCode, EventType, EventTypes, FieldDef, FieldId,
    FieldName, FieldType, Properties, Schema, Value,
};
use unico_engine::AppIndex;
use unico_engine::snapshot::reseal_for_fuzzing;
use unico_filter::{EvalContext, Filter, FilterInput};

/// Every allocation goes through this cap: each read may allocate at most
/// [`READ_ALLOCATION_BOUND`] more than was allocated before it.
#[global_allocator]
static ALLOCATOR: cap::Cap<std::alloc::System> = cap::Cap::new(std::alloc::System, usize::MAX);

/// Far above what reading the test's snapshots needs (well under a megabyte), far below
/// what an unchecked length from the file would ask for.
const READ_ALLOCATION_BOUND: usize = 256 << 20;

const STAMP: &[u8] = b"app 1, version 7";

/// The valid snapshot the damage starts from, built once.
static SNAPSHOT: std::sync::OnceLock<Vec<u8>> = std::sync::OnceLock::new();

fn config() -> ProptestConfig {
    let cases = std::env::var("UNICO_FUZZ_CASES")
        .ok()
        .map(|v| v.parse().expect("UNICO_FUZZ_CASES must be a number"))
        .unwrap_or(2_000);
    ProptestConfig {
        cases,
        max_shrink_iters: 10_000,
        ..ProptestConfig::default()
    }
}

fn schema() -> Schema {
    let fields = [
        ("age", FieldType::Number),
        ("city", FieldType::String),
        ("seen", FieldType::Datetime),
        ("born", FieldType::Date),
    ];
    let types = ["purchase", "view"]
        .iter()
        .map(|code| EventType {
            code: EventCode::parse(code).unwrap(),
            name: (*code).to_owned(),
            retention_days: 365,
            enabled: true,
            properties: [
                ("amount".to_owned(), unico_core::PropertyType::Number),
                ("sku".to_owned(), unico_core::PropertyType::String),
            ]
            .into_iter()
            .collect(),
            created_at: 0,
        })
        .collect();
    Schema::new(
        fields
            .iter()
            .enumerate()
            .map(|(i, (name, ty))| FieldDef {
                id: FieldId(i as u32 + 1),
                name: FieldName::parse(name).unwrap(),
                field_type: *ty,
                created_at: 0,
                computed: None,
            })
            .collect(),
    )
    .with_event_types(EventTypes::new(types))
}

/// A snapshot holding every kind of part: numbers (narrow and wide), strings, datetimes,
/// dates, removed customers (free and retired slots), events with properties, consent.
fn snapshot() -> Vec<u8> {
    let schema = schema();
    let mut index = AppIndex::new(&schema);
    let customers: Vec<Customer> = (1..=150)
        .map(|id| {
            let mut fields = vec![(FieldId(2), Value::String(format!("city {}", id % 9)))];
            if id % 4 != 0 {
                let age = if id == 77 { 1e12 } else { (id % 90) as f64 };
                fields.push((FieldId(1), Value::Number(age)));
            }
            if id % 3 == 0 {
                fields.push((
                    FieldId(3),
                    Value::Datetime(1_700_000_000_000 + id * 3_600_000),
                ));
                fields.push((FieldId(4), Value::Date((id * 37 % 20_000) as i32)));
            }
            Customer {
                id,
                customer_id: CustomerId::parse(&format!("c{id:04}")).unwrap(),
                created_at: id,
                updated_at: id,
                fields,
            }
        })
        .collect();
    index.upsert_many(&customers);
    let events: Vec<Event> = (0..400)
        .map(|k: i64| Event {
            id: k + 1,
            customer: k % 150 + 1,
            event_id: None,
            event_type: EventCode::parse(["purchase", "view"][(k % 2) as usize]).unwrap(),
            channel: Channel::parse(["web", "pos", "app"][(k % 3) as usize]).unwrap(),
            device_id: None,
            timestamp: 1_700_000_000_000 + k * 86_400_000,
            properties: Properties::from_json(
                serde_json::json!({"amount": k as f64 / 4.0, "sku": format!("s{}", k % 7)}),
            )
            .unwrap(),
        })
        .collect();
    index.add_events(&events);
    for id in (1..=150).step_by(5) {
        index.set_subscribed(id, &Channel::parse("email").unwrap(), true);
    }
    index.remove(10);
    index.remove(20);
    let mut bytes = Vec::new();
    index.write_snapshot(STAMP, &mut bytes).unwrap();
    bytes
}

const FILTERS: &[&str] = &[
    "age > 10",
    "city = \"city 3\" or city contains \"4\"",
    "seen within_last 30d",
    "born anniversary",
    "did purchase at_least 2 times",
    "sum amount of view > 3",
    "did purchase where sku = \"s1\"",
    "subscribed email",
];

fn read(bytes: &[u8]) {
    let schema = schema();
    let before = ALLOCATOR.allocated();
    ALLOCATOR
        .set_limit(before + READ_ALLOCATION_BOUND)
        .expect("a limit above what is allocated");
    let read = AppIndex::read_snapshot(
        &mut &bytes[..],
        bytes.len() as u64,
        STAMP,
        &schema,
        TimeZone::UTC,
    );
    ALLOCATOR.set_limit(usize::MAX).unwrap();
    if let Ok(index) = read {
        let ctx = EvalContext::new(1_750_000_000_000, TimeZone::UTC);
        for text in FILTERS {
            let filter = Filter::parse(FilterInput::Text(text), &schema).unwrap();
            assert!(index.count(&filter, &ctx) <= index.len() as u64, "{text}");
        }
    }
}

/// Damage to a valid snapshot.
#[derive(Debug, Clone)]
enum Damage {
    /// A byte set to a value.
    Byte(prop::sample::Index, u8),
    /// An aligned 8-byte word (lengths and counts are words) set to a value.
    Word(prop::sample::Index, u64),
    /// Cut short.
    Truncate(prop::sample::Index),
    /// Bytes inserted.
    Insert(prop::sample::Index, Vec<u8>),
    /// Bytes removed.
    Remove(prop::sample::Index, usize),
}

fn damage() -> impl Strategy<Value = Damage> {
    let word = prop_oneof![
        any::<u64>(),
        Just(u64::MAX),
        Just(1 << 32),
        Just(1 << 40),
        Just(1 << 60),
        0u64..4096,
    ];
    prop_oneof![
        4 => (any::<prop::sample::Index>(), any::<u8>()).prop_map(|(i, b)| Damage::Byte(i, b)),
        4 => (any::<prop::sample::Index>(), word).prop_map(|(i, w)| Damage::Word(i, w)),
        1 => any::<prop::sample::Index>().prop_map(Damage::Truncate),
        1 => (any::<prop::sample::Index>(), prop::collection::vec(any::<u8>(), 1..24))
            .prop_map(|(i, b)| Damage::Insert(i, b)),
        1 => (any::<prop::sample::Index>(), 1usize..24).prop_map(|(i, n)| Damage::Remove(i, n)),
    ]
}

fn apply(bytes: &mut Vec<u8>, damage: &Damage) {
    if bytes.is_empty() {
        return;
    }
    match damage {
        Damage::Byte(at, b) => {
            let i = at.index(bytes.len());
            bytes[i] = *b;
        }
        Damage::Word(at, w) => {
            let words = bytes.len() / 8;
            if words > 0 {
                // Words sit at offsets ≡ 4 (mod 8) after the 12-byte magic; try both.
                let i = at.index(words) * 8 + if at.index(2) == 0 { 0 } else { 4 };
                if i + 8 <= bytes.len() {
                    bytes[i..i + 8].copy_from_slice(&w.to_le_bytes());
                }
            }
        }
        Damage::Truncate(at) => bytes.truncate(at.index(bytes.len())),
        Damage::Insert(at, more) => {
            let i = at.index(bytes.len() + 1);
            bytes.splice(i..i, more.iter().copied());
        }
        Damage::Remove(at, n) => {
            let i = at.index(bytes.len());
            let end = (i + n).min(bytes.len());
            bytes.drain(i..end);
        }
    }
}

#[test]
fn the_snapshot_read_back_is_accepted() {
    let mut bytes = snapshot();
    reseal_for_fuzzing(&mut bytes);
    let index = AppIndex::read_snapshot(
        &mut &bytes[..],
        bytes.len() as u64,
        STAMP,
        &schema(),
        TimeZone::UTC,
    )
    .unwrap();
    assert_eq!(index.len(), 148);
}

proptest! {
    #![proptest_config(config())]

    /// One test (so one thread) for every kind of input: the allocation cap is global.
    #[test]
    fn the_reader_refuses_damage_without_panic_or_huge_allocation(
        kind in 0u8..4,
        damages in prop::collection::vec(damage(), 1..5),
        noise in prop::collection::vec(any::<u8>(), 0..512),
    ) {
        let mut bytes = match kind {
            // Arbitrary bytes.
            0 => noise,
            // Arbitrary bytes after a header the reader accepts.
            1 => {
                let mut b = b"UNICO-ENGINE".to_vec();
                b.extend_from_slice(&5u64.to_le_bytes());
                b.extend_from_slice(&(STAMP.len() as u64).to_le_bytes());
                b.extend_from_slice(STAMP);
                b.extend_from_slice(&noise);
                b
            }
            // A damaged snapshot, its checksum left stale or resealed.
            _ => SNAPSHOT.get_or_init(snapshot).clone(),
        };
        if kind >= 2 {
            for d in &damages {
                apply(&mut bytes, d);
            }
            if kind == 3 {
                reseal_for_fuzzing(&mut bytes);
            }
        }
        read(&bytes);
    }
}
