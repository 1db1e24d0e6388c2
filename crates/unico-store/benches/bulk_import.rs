//! The store's share of an import: 1M customers × 12 values written through `run_import`
//! into a fresh store (no CSV parsing), durable. `cargo bench -p unico-store --bench bulk_import`.
#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::Instant;

use unico_core::{AppName, CustomerId, FieldChange, FieldName, FieldType, TimeZoneName, Value};
use unico_store::{ImportBatch, SqliteStore, Store, UpsertItem};

fn main() {
    if std::env::args().any(|a| a == "--list" || a == "--test") {
        return;
    }
    let customers: usize = std::env::var("CUSTOMERS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000);
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let store = SqliteStore::open(dir.path()).unwrap();
    let app = store
        .create_app(&AppName::parse("bench").unwrap(), &TimeZoneName::utc(), 0)
        .unwrap()
        .id;
    let mut fields = Vec::new();
    for (i, ty) in [FieldType::String; 7]
        .into_iter()
        .chain([FieldType::Number; 3])
        .chain([FieldType::Datetime; 2])
        .enumerate()
    {
        fields.push(
            store
                .create_field(app, &FieldName::parse(&format!("f{i}")).unwrap(), ty, 0)
                .unwrap(),
        );
    }
    let make = move |n: usize| -> UpsertItem {
        let changes = fields
            .iter()
            .enumerate()
            .map(|(i, f)| FieldChange {
                field: f.id,
                value: Some(match f.field_type {
                    FieldType::String => Value::String(format!("value-{}-{}", i, n % 3000)),
                    FieldType::Number => Value::Number((n * (i + 1)) as f64 / 7.0),
                    _ => Value::Datetime(1_600_000_000_000 + (n as i64) * 1000),
                }),
            })
            .collect();
        UpsertItem {
            customer_id: CustomerId::parse(&format!("c{n:09}")).unwrap(),
            changes,
        }
    };
    let batches = (0..customers)
        .step_by(8192)
        .map(move |start| {
            ImportBatch::Items((start..(start + 8192).min(customers)).map(&make).collect())
        })
        .chain(std::iter::once(ImportBatch::End { keep: true }));
    let started = Instant::now();
    let counts = store
        .run_import(app, Box::new(batches), 1, Arc::new(AtomicU64::new(0)))
        .unwrap();
    let took = started.elapsed();
    assert_eq!(counts.created as usize, customers);
    println!(
        "bulk import: {customers} customers × 12 values in {:.2} s ({:.0} customers/s), durable",
        took.as_secs_f64(),
        customers as f64 / took.as_secs_f64()
    );
}
