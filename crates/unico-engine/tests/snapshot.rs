//! Snapshots: a round trip keeps every answer; a snapshot of other data, of another
//! schema, damaged or truncated is refused.

#![allow(clippy::unwrap_used)]

use jiff::tz::TimeZone;
use unico_core::{Customer, CustomerId, FieldDef, FieldId, FieldName, FieldType, Schema, Value};
use unico_engine::AppIndex;
use unico_engine::snapshot::SnapshotError;
use unico_filter::{EvalContext, Filter, FilterInput};

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
    }
    check(&original, &restored);
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
