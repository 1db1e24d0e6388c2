//! Snapshots: a round trip keeps every answer (event conditions included); a snapshot of
//! other data, of another schema, of an older format, damaged or truncated is refused.

#![allow(clippy::unwrap_used)]

use jiff::tz::TimeZone;
use unico_core::{
    Channel, Customer, CustomerId, Event, EventCode, FieldDef, FieldId, FieldName, FieldType,
    Properties, Schema, Value,
};
use unico_engine::AppIndex;
use unico_engine::snapshot::SnapshotError;
use unico_filter::filter::Agg;
use unico_filter::resolve::{EventMeasure, EventTest, PropertyTest, Resolved, TestKind};
use unico_filter::{EvalContext, Filter, FilterInput};

const DAY: i64 = 86_400_000;

/// Events of customer `id` (a few, of two types, with number and string properties).
fn events_of(id: i64, next: &mut i64) -> Vec<Event> {
    (0..id % 7)
        .map(|k| {
            *next += 1;
            let amount = if k % 3 == 0 {
                serde_json::json!(k * 10)
            } else {
                serde_json::json!(k as f64 / 3.0)
            };
            Event {
                id: *next,
                customer: id,
                event_id: None,
                event_type: EventCode::parse(["purchase", "page_view"][(k % 2) as usize]).unwrap(),
                channel: Channel::parse(["web", "pos", "app"][(id % 3) as usize]).unwrap(),
                device_id: None,
                timestamp: 40 * DAY - (id * 7 + k) % 100 * DAY,
                properties: Properties::from_json(
                    serde_json::json!({"amount": amount, "category": format!("cat{}", id % 5)}),
                )
                .unwrap(),
            }
        })
        .collect()
}

/// Event conditions to compare answers with.
fn event_trees() -> Vec<Resolved> {
    let test = |event: &str, window: (i64, i64), wheres: Vec<PropertyTest>, measure| {
        Resolved::Event(EventTest {
            event: EventCode::parse(event).unwrap(),
            channel: None,
            window,
            wheres,
            measure,
        })
    };
    let did = EventMeasure::Count {
        lo: 1,
        hi: u64::MAX,
        negated: false,
    };
    vec![
        test("purchase", (10 * DAY, 40 * DAY), vec![], did.clone()),
        test(
            "page_view",
            (i64::MIN, i64::MAX),
            vec![],
            EventMeasure::Count {
                lo: 0,
                hi: 1,
                negated: false,
            },
        ),
        test(
            "purchase",
            (i64::MIN, i64::MAX),
            vec![],
            EventMeasure::Agg {
                agg: Agg::Sum,
                property: Some("amount".into()),
                test: TestKind::NumRange {
                    lo: 1.0,
                    lo_inclusive: false,
                    hi: f64::INFINITY,
                    hi_inclusive: false,
                },
            },
        ),
        test(
            "page_view",
            (0, 30 * DAY),
            vec![PropertyTest {
                property: "category".into(),
                property_type: unico_core::PropertyType::String,
                kind: TestKind::StrIn {
                    values: vec!["cat1".into(), "cat3".into()],
                    negated: false,
                },
            }],
            did,
        ),
    ]
}

fn schema(types: &[FieldType]) -> Schema {
    Schema::new(
        types
            .iter()
            .enumerate()
            .map(|(i, &ty)| FieldDef {
                id: FieldId(i as u32 + 1),
                name: FieldName::parse(&format!("f{}", i + 1)).unwrap(),
                field_type: ty,
                created_at: 0,
                computed: None,
            })
            .collect(),
    )
}

fn index(customers: i64) -> (AppIndex, Schema) {
    let schema = schema(&[
        FieldType::String,
        FieldType::Number,
        FieldType::Datetime,
        FieldType::Date,
    ]);
    let mut index = AppIndex::new(&schema);
    index.set_timezone(TimeZone::get("Europe/Madrid").unwrap());
    let batch: Vec<Customer> = (1..=customers)
        .map(|id| Customer {
            id,
            customer_id: CustomerId::parse(&format!("c{:05}", (id * 7919) % 100_000)).unwrap(),
            created_at: id * 1000,
            updated_at: id * 2000,
            fields: vec![
                (FieldId(1), Value::String(format!("v{}", id % 300))),
                (FieldId(2), Value::Number((id % 50) as f64)),
                (FieldId(3), Value::Datetime(id * 86_400_000)),
                (FieldId(4), Value::Date((id % 400) as i32)),
            ]
            .into_iter()
            .filter(|(f, _)| (id + i64::from(f.0)) % 5 != 0)
            .collect(),
        })
        .collect();
    index.upsert_many(&batch);
    let mut next = 0;
    let events: Vec<Event> = (1..=customers)
        .flat_map(|id| events_of(id, &mut next))
        .collect();
    index.add_events(&events);
    for id in (1..=customers).step_by(3) {
        index.remove(id);
    }
    (index, schema)
}

const FILTERS: &[&str] = &[
    r#"f1 = "v7" or f2 between 3 and 9"#,
    r#"f1 starts_with "v1" and not f4 anniversary"#,
    "f3 exists and f2 > 20",
    r#"customerId starts_with "c1""#,
    "f3 anniversary",
];

fn bytes(index: &AppIndex, stamp: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    index.write_snapshot(stamp, &mut out).unwrap();
    out
}

fn read(bytes: &[u8], stamp: &[u8], schema: &Schema) -> Result<AppIndex, SnapshotError> {
    AppIndex::read_snapshot(
        &mut &bytes[..],
        bytes.len() as u64,
        stamp,
        schema,
        TimeZone::get("Europe/Madrid").unwrap(),
    )
}

#[test]
fn a_round_trip_keeps_every_answer_and_takes_writes() {
    let (mut original, schema) = index(5000);
    let mut restored = read(&bytes(&original, b"app 1 v 9"), b"app 1 v 9", &schema).unwrap();
    let ctx = EvalContext::new(40 * 86_400_000, TimeZone::get("Europe/Madrid").unwrap());
    let check = |a: &AppIndex, b: &AppIndex| {
        assert_eq!(a.len(), b.len());
        assert_eq!(a.event_count(), b.event_count());
        assert!(a.event_count() > 1000);
        for id in (1..100).chain(4900..5000) {
            assert_eq!(
                a.customer_events(id),
                b.customer_events(id),
                "customer {id}"
            );
        }
        let tz = TimeZone::get("Europe/Madrid").unwrap();
        for tree in event_trees() {
            let n = a.count_resolved(&tree, &tz);
            assert!(n > 0 && n < a.len() as u64, "{tree:?} selects {n}");
            assert_eq!(n, b.count_resolved(&tree, &tz), "{tree:?}");
            let (ma, mb) = (
                a.members_resolved(&tree, &tz),
                b.members_resolved(&tree, &tz),
            );
            assert_eq!(
                a.page_by_customer_id(&ma, None, false, usize::MAX),
                b.page_by_customer_id(&mb, None, false, usize::MAX),
            );
        }
        for text in FILTERS {
            let f = Filter::parse(FilterInput::Text(text), &schema).unwrap();
            assert_eq!(a.count(&f, &ctx), b.count(&f, &ctx), "{text}");
            let (ma, mb) = (a.members(&f, &ctx), b.members(&f, &ctx));
            assert_eq!(
                a.page_by_customer_id(&ma, None, false, usize::MAX),
                b.page_by_customer_id(&mb, None, false, usize::MAX),
                "{text}"
            );
        }
    };
    check(&original, &restored);
    // Later writes land the same way on both.
    for index in [&mut original, &mut restored] {
        index.upsert(&Customer {
            id: 2,
            customer_id: CustomerId::parse("zz").unwrap(),
            created_at: 1,
            updated_at: 1,
            fields: vec![(FieldId(1), Value::String("brand new".into()))],
        });
        index.upsert(&Customer {
            id: 9999,
            customer_id: CustomerId::parse("c00001").unwrap(),
            created_at: 1,
            updated_at: 1,
            fields: vec![(FieldId(1), Value::String("v7".into()))],
        });
        index.remove(5);
        let mut next = 1_000_000;
        let events: Vec<Event> = [2, 9999, 6, 5000]
            .iter()
            .flat_map(|&id| events_of(id, &mut next))
            .collect();
        index.add_events(&events);
        index.add_events(&events);
        for id in (2..400).step_by(5) {
            index.remove(id);
        }
        index.remove_events_before(&EventCode::parse("purchase").unwrap(), -20 * DAY);
    }
    check(&original, &restored);
}

#[test]
fn snapshots_of_an_older_format_are_refused() {
    let (index, schema) = index(300);
    let mut good = bytes(&index, b"v1");
    assert!(read(&good, b"v1", &schema).is_ok());
    // The format follows the 12-byte magic; 3 is the last format without events, 4 the
    // last without subscriptions.
    for old in [3u64, 4] {
        let mut bytes = good.clone();
        bytes[12..20].copy_from_slice(&old.to_le_bytes());
        assert!(matches!(
            read(&bytes, b"v1", &schema),
            Err(SnapshotError::Mismatch("another format"))
        ));
    }
    good[12..20].copy_from_slice(&3u64.to_le_bytes());
    assert!(read(&good, b"v1", &schema).is_err());
}

#[test]
fn snapshots_of_other_data_or_damaged_are_refused() {
    let (index, schema) = index(3000);
    let good = bytes(&index, b"v1");
    assert!(matches!(
        read(&good, b"v2", &schema),
        Err(SnapshotError::Mismatch(_))
    ));
    let other = self::schema(&[FieldType::String, FieldType::Number, FieldType::Datetime]);
    assert!(matches!(
        read(&good, b"v1", &other),
        Err(SnapshotError::Mismatch(_))
    ));
    let retyped = self::schema(&[
        FieldType::String,
        FieldType::String,
        FieldType::Datetime,
        FieldType::Date,
    ]);
    assert!(matches!(
        read(&good, b"v1", &retyped),
        Err(SnapshotError::Mismatch(_))
    ));
    // Every truncation and a flipped bit anywhere are caught.
    for cut in [0, 5, 20, good.len() / 3, good.len() / 2, good.len() - 1] {
        assert!(read(&good[..cut], b"v1", &schema).is_err(), "cut at {cut}");
    }
    for at in (40..good.len()).step_by(good.len() / 97) {
        let mut bad = good.clone();
        bad[at] ^= 0x10;
        assert!(read(&bad, b"v1", &schema).is_err(), "flip at {at}");
    }
    let mut longer = good.clone();
    longer.push(0);
    assert!(read(&longer, b"v1", &schema).is_err());
    assert!(read(&good, b"v1", &schema).is_ok());
}

/// Whether `needle` occurs anywhere in `hay`.
fn holds(hay: &[u8], needle: &str) -> bool {
    hay.windows(needle.len()).any(|w| w == needle.as_bytes())
}

/// Erasing a customer answers every question like removing it, and leaves none of its
/// values in the index's snapshot: not its customerId, not a string only it holds or held
/// before an update, not its events' property values. Strings other customers hold too stay, and so do they.
#[test]
fn an_erased_customer_leaves_nothing_in_a_snapshot_and_counts_like_a_removal() {
    let (mut erased, schema) = index(3000);
    let mut removed = index(3000).0;
    let marked = |id: i64, note: &str| Customer {
        id,
        customer_id: CustomerId::parse(&format!("person-{id}-Zq81")).unwrap(),
        created_at: 1,
        updated_at: 1,
        fields: vec![
            (FieldId(1), Value::String(note.into())),
            (FieldId(2), Value::Number(73_519.25)),
        ],
    };
    let event = |id: i64, customer: i64, memo: &str| Event {
        id,
        customer,
        event_id: None,
        event_type: EventCode::parse("purchase").unwrap(),
        channel: Channel::parse("web").unwrap(),
        device_id: None,
        timestamp: 39 * DAY,
        properties: Properties::from_json(serde_json::json!({"memo": memo, "amount": 4.5}))
            .unwrap(),
    };
    for index in [&mut erased, &mut removed] {
        // The one to erase held a value before (its code now dead in the dictionary), and
        // holds a value of its own and one it shares with 7001.
        index.upsert(&marked(7000, "EarlierNote-Bt6"));
        index.upsert(&marked(7000, "OnlyMine-Xk2"));
        index.upsert(&marked(7001, "v7"));
        index.upsert(&Customer {
            fields: vec![(FieldId(1), Value::String("SharedNote-Pw4".into()))],
            ..marked(7002, "")
        });
        index.add_events(&[
            event(900_001, 7000, "SecretMemo-Jj3"),
            event(900_002, 7000, "SharedMemo-Hh5"),
            event(900_003, 7002, "SharedMemo-Hh5"),
        ]);
    }
    let before = bytes(&erased, b"s");
    for marker in [
        "person-7000-Zq81",
        "OnlyMine-Xk2",
        "EarlierNote-Bt6",
        "SecretMemo-Jj3",
    ] {
        assert!(holds(&before, marker), "the test must see {marker} first");
    }
    erased.erase(7000);
    removed.remove(7000);
    let after = bytes(&erased, b"s");
    for marker in [
        "person-7000-Zq81",
        "OnlyMine-Xk2",
        "EarlierNote-Bt6",
        "SecretMemo-Jj3",
    ] {
        assert!(!holds(&after, marker), "{marker} is still in the snapshot");
    }
    for kept in ["person-7001-Zq81", "SharedMemo-Hh5", "v7"] {
        assert!(holds(&after, kept), "{kept} went with the erased customer");
    }
    // Both answer alike, before and after a round trip through the snapshot.
    let restored = read(&after, b"s", &schema).unwrap();
    let ctx = EvalContext::new(40 * DAY, TimeZone::get("Europe/Madrid").unwrap());
    for text in FILTERS.iter().copied().chain([
        r#"f1 = "OnlyMine-Xk2""#,
        r#"f1 = "v7""#,
        "f2 = 73519.25",
        r#"customerId starts_with "person-""#,
    ]) {
        let f = Filter::parse(FilterInput::Text(text), &schema).unwrap();
        let want = removed.count(&f, &ctx);
        assert_eq!(erased.count(&f, &ctx), want, "{text}");
        assert_eq!(restored.count(&f, &ctx), want, "{text}");
    }
    let tz = TimeZone::get("Europe/Madrid").unwrap();
    let memo = |value: &str| {
        Resolved::Event(EventTest {
            event: EventCode::parse("purchase").unwrap(),
            channel: None,
            window: (i64::MIN, i64::MAX),
            wheres: vec![PropertyTest {
                property: "memo".into(),
                property_type: unico_core::PropertyType::String,
                kind: TestKind::StrIn {
                    values: vec![value.into()],
                    negated: false,
                },
            }],
            measure: EventMeasure::Count {
                lo: 1,
                hi: u64::MAX,
                negated: false,
            },
        })
    };
    for tree in event_trees()
        .into_iter()
        .chain([memo("SecretMemo-Jj3"), memo("SharedMemo-Hh5")])
    {
        let want = removed.count_resolved(&tree, &tz);
        assert_eq!(erased.count_resolved(&tree, &tz), want, "{tree:?}");
        assert_eq!(restored.count_resolved(&tree, &tz), want, "{tree:?}");
    }
    assert_eq!(erased.count_resolved(&memo("SharedMemo-Hh5"), &tz), 1);
    // The erased values can come back, on someone new, like any value.
    let mut again = restored;
    again.upsert(&marked(7003, "OnlyMine-Xk2"));
    let f = Filter::parse(FilterInput::Text(r#"f1 = "OnlyMine-Xk2""#), &schema).unwrap();
    assert_eq!(again.count(&f, &ctx), 1);
}

/// A snapshot read back and written again is the same bytes (before and after a page is
/// read from it), and the index read back takes a change like the original.
#[test]
fn a_snapshot_read_back_and_written_again_is_the_same() {
    let (mut original, schema) = index(3000);
    let first = bytes(&original, b"s");
    let restored = read(&first, b"s", &schema).unwrap();
    assert_eq!(
        bytes(&restored, b"s"),
        first,
        "written again before any use"
    );
    let all = restored.all();
    let page = restored.page_by_customer_id(&all, None, false, 20);
    assert_eq!(
        page,
        original.page_by_customer_id(&original.all(), None, false, 20)
    );
    assert_eq!(bytes(&restored, b"s"), first, "written again after a page");
    let mut changed = read(&first, b"s", &schema).unwrap();
    let renamed = Customer {
        id: 2,
        customer_id: CustomerId::parse("a-first").unwrap(),
        created_at: 1,
        updated_at: 1,
        fields: vec![],
    };
    changed.upsert(&renamed);
    original.upsert(&renamed);
    let (a, b) = (changed.all(), original.all());
    assert_eq!(
        changed.page_by_customer_id(&a, None, false, usize::MAX),
        original.page_by_customer_id(&b, None, false, usize::MAX)
    );
}
