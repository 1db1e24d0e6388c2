//! Conformance cases for imports larger than a batch: rows of existing customers and
//! customerIds repeated far apart in the file, checked against a model applied in file order.

use std::collections::BTreeMap;

use super::*;
use unico_core::FieldId;

/// What an import leaves, by a model: each row applied in file order to its customer.
type Model = BTreeMap<String, BTreeMap<FieldId, Value>>;

fn apply(model: &mut Model, item: &UpsertItem) {
    let fields = model
        .entry(item.customer_id.as_str().to_owned())
        .or_default();
    for change in &item.changes {
        match &change.value {
            Some(v) => fields.insert(change.field, v.clone()),
            None => fields.remove(&change.field),
        };
    }
}

fn item(id: String, changes: Vec<FieldChange>) -> UpsertItem {
    UpsertItem {
        customer_id: cid(&id),
        changes,
        subscriptions: Vec::new(),
    }
}

fn remove(field: &FieldDef) -> FieldChange {
    FieldChange {
        field: field.id,
        value: None,
    }
}

/// An import of thousands of rows over existing customers (changed, unchanged, a value
/// removed), new ones, and customerIds that come again thousands of rows later: every
/// customer ends as the rows applied in file order leave it, new customers' ids follow the
/// file, and the counts (created, updated, values per field) are exact.
pub fn a_large_import_applies_every_row_in_file_order(store: &dyn Store) {
    let a = app(store, "A");
    let n = field(store, a, "n", FieldType::Number);
    let s = field(store, a, "s", FieldType::String);
    let run = |items: Vec<UpsertItem>| {
        let batches = items
            .chunks(700)
            .map(|chunk| ImportBatch::Items(chunk.to_vec()))
            .chain([ImportBatch::End { keep: true }])
            .collect::<Vec<_>>();
        store
            .run_import(
                a,
                Box::new(batches.into_iter()),
                7,
                Arc::new(AtomicU64::new(0)),
                None,
            )
            .unwrap()
    };
    let mut model = Model::new();
    let mut existing: Vec<UpsertItem> = (0..3000)
        .map(|i| {
            let mut changes = vec![set(&n, Value::Number(f64::from(i)))];
            if i % 2 == 0 {
                changes.push(set(&s, Value::String(format!("x{}", i % 3))));
            }
            item(format!("e{i:05}"), changes)
        })
        .collect();
    // Into an application without customers, with a customerId coming again at the end.
    existing.push(item(
        "e00001".into(),
        vec![set(&s, Value::String("later".into()))],
    ));
    existing.iter().for_each(|i| apply(&mut model, i));
    let counts = run(existing);
    assert_eq!((counts.created, counts.updated), (3000, 0));

    let mut rows: Vec<UpsertItem> = (0..3000)
        .map(|i| {
            let changes = match i % 3 {
                0 => vec![set(&n, Value::Number(f64::from(i) + 0.5))],
                1 => vec![set(&n, Value::Number(f64::from(i)))], // the value it holds
                _ => vec![remove(&s), set(&n, Value::Number(f64::from(-i)))],
            };
            item(format!("e{i:05}"), changes)
        })
        .collect();
    // New customers, interleaved in an order that is not the customerIds'.
    rows.extend((0..2500).map(|j| {
        let id = format!("n{:05}", (j * 7919) % 2500);
        item(id, vec![set(&n, Value::Number(f64::from(j)))])
    }));
    // Both kinds again, thousands of rows later.
    rows.extend((0..3000).step_by(7).map(|i| {
        item(
            format!("e{i:05}"),
            vec![set(&s, Value::String("again".into()))],
        )
    }));
    rows.extend((0..2500).step_by(5).map(|j| {
        item(
            format!("n{j:05}"),
            vec![remove(&n), set(&s, Value::String(format!("new{j}")))],
        )
    }));
    rows.iter().for_each(|i| apply(&mut model, i));
    let counts = run(rows);
    assert!(counts.kept);
    assert_eq!(
        (counts.created, counts.updated),
        (2500, 3000),
        "each customer counted once, as created or as updated"
    );

    let mut seen = Model::new();
    let mut new_ids = Vec::new();
    store
        .scan_customers(a, &mut |c| {
            if c.customer_id.as_str().starts_with('n') {
                new_ids.push((c.id, c.customer_id.as_str().to_owned()));
            }
            seen.insert(
                c.customer_id.as_str().to_owned(),
                c.fields.into_iter().collect(),
            );
            true
        })
        .unwrap();
    assert_eq!(seen.len(), model.len());
    for (id, fields) in &model {
        assert_eq!(seen.get(id), Some(fields), "customer {id}");
    }
    // Created in file order: by id, the new customers come as their first rows did.
    let file_order: Vec<String> = (0..2500)
        .map(|j| format!("n{:05}", (j * 7919) % 2500))
        .collect();
    new_ids.sort();
    let by_id: Vec<String> = new_ids.into_iter().map(|(_, c)| c).collect();
    assert_eq!(by_id, file_order);

    let counted = |f: &FieldDef| {
        model
            .values()
            .filter(|fields| fields.contains_key(&f.id))
            .count() as u64
    };
    for stat in store.field_stats(a).unwrap() {
        assert_eq!(
            stat.value_count,
            counted(&stat.field),
            "values of {}",
            stat.field.name.as_str()
        );
    }
    assert_eq!(store.count_customers(a).unwrap(), 5500);
}
