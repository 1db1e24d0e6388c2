//! Properties: a raw export imports back to the same customers (long and wide), and no input
//! makes the reader panic or depend on how the stream is chunked.

mod common;

use std::collections::BTreeMap;

use proptest::prelude::*;
use unico_core::customer::apply_changes;
use unico_core::time::days_from_civil;
use unico_core::{Customer, CustomerId, FieldId, FieldType, Schema, Value};
use unico_csv::{ExportOptions, ExportShape, ImportReader, Row, Separator, export};

fn schema() -> Schema {
    common::schema_of(&[
        ("name", FieldType::String),
        ("score", FieldType::Number),
        ("seen_at", FieldType::Datetime),
        ("born", FieldType::Date),
        ("note", FieldType::String),
    ])
}

fn value_of(ty: FieldType) -> BoxedStrategy<Value> {
    let min_ms = i64::from(days_from_civil(1, 1, 1)) * 86_400_000;
    // Not the last 26 hours of 9999: `unico_core::time::parse_datetime` refuses them (they
    // are past `jiff::Timestamp::MAX`) though the core accepts them as epoch milliseconds and
    // formats them; reported to the core's owner.
    let max_ms = i64::from(days_from_civil(9999, 12, 30)) * 86_400_000 + 22 * 3_600_000 - 1;
    match ty {
        FieldType::String => "(?s).{1,24}".prop_map(Value::String).boxed(),
        FieldType::Number => prop_oneof![
            any::<i32>().prop_map(f64::from),
            prop::num::f64::NORMAL | prop::num::f64::SUBNORMAL | prop::num::f64::ZERO,
        ]
        .prop_map(Value::Number)
        .boxed(),
        FieldType::Datetime => (min_ms..=max_ms).prop_map(Value::Datetime).boxed(),
        FieldType::Date => (days_from_civil(1, 1, 1)..=days_from_civil(9999, 12, 31))
            .prop_map(Value::Date)
            .boxed(),
    }
}

fn customer_strategy() -> impl Strategy<Value = (String, Vec<(FieldId, Value)>)> {
    let id = "[=+@\"a-z-][a-z0-9 ,;\"'=é-]{0,12}[a-z0-9\"]";
    let fields: Vec<_> = schema()
        .fields()
        .iter()
        .map(|f| {
            proptest::option::of(value_of(f.field_type)).prop_map({
                let id = f.id;
                move |v| v.map(|v| (id, v))
            })
        })
        .collect();
    (id, fields).prop_map(|(id, fields)| (id, fields.into_iter().flatten().collect()))
}

fn import_all(bytes: &[u8], schema: &Schema) -> BTreeMap<String, Vec<(FieldId, Value)>> {
    let mut customers = BTreeMap::new();
    for row in ImportReader::new(bytes, schema).expect("header") {
        match row.expect("no file error") {
            Row::Op(op) => {
                let fields: &mut Vec<(FieldId, Value)> =
                    customers.entry(op.customer_id.into_string()).or_default();
                apply_changes(fields, &op.changes);
            }
            Row::Invalid(e) => panic!("invalid row in a raw export: {e}"),
        }
    }
    customers
}

proptest! {
    #[test]
    fn raw_export_imports_back_unchanged(
        list in proptest::collection::vec(customer_strategy(), 0..12),
        semicolon in any::<bool>(),
    ) {
        let schema = schema();
        let mut expected = BTreeMap::new();
        for (id, fields) in list {
            expected.insert(id, fields);
        }
        let customers: Vec<Customer> = expected
            .iter()
            .map(|(id, fields)| Customer {
                id: 0,
                customer_id: CustomerId::parse(id).expect("valid id"),
                created_at: 0,
                updated_at: 0,
                fields: fields.clone(),
            })
            .collect();
        let separator = if semicolon { Separator::Semicolon } else { Separator::Comma };
        for shape in [ExportShape::Long, ExportShape::Wide] {
            let options = ExportOptions { shape, raw: true, separator };
            let (_, bytes) = export(Vec::new(), &schema, &customers, options).expect("export");
            prop_assert_eq!(&import_all(&bytes, &schema), &expected, "{:?}", shape);
        }
    }

    #[test]
    fn any_bytes_give_the_same_outcome_however_they_are_chunked(
        header in prop_oneof![
            Just(&b"customerId,fieldName,fieldValue\n"[..]),
            Just(&b"customerId;name;score\r\n"[..]),
            Just(&b"customerId\n"[..]),
            Just(&b""[..]),
        ],
        body in proptest::collection::vec(
            prop_oneof![
                Just(b'a'), Just(b','), Just(b';'), Just(b'"'), Just(b'\n'), Just(b'\r'),
                Just(0u8), Just(0xC3), Just(0xA9), Just(0xFF), Just(b'1'), Just(b'.'),
            ],
            0..200,
        ),
    ) {
        let mut bytes = header.to_vec();
        bytes.extend_from_slice(&body);
        // `import` renders it whole and one byte at a time and asserts both agree.
        let _ = common::import(&bytes, &schema());
    }
}
