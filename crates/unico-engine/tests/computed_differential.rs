//! Differential tests of computed fields: for random customers with random events and
//! random definitions (every aggregate, number, string and missing properties, windows
//! at their edges), the engine's column of values must equal the reference
//! (`unico_filter::computed_value` over each customer's events) for every customer, and
//! conditions on the computed field (parsed from the text form against a schema holding
//! it) must count and list the same customers in the engine as in the reference
//! evaluator. In an application time zone far from UTC, so calendar-day tests (`on`)
//! depend on it.

use std::collections::BTreeMap;

use jiff::tz::TimeZone;
use proptest::prelude::*;
use serde_json::json;
use unico_core::{
    Channel, Computed, ComputedAgg, Customer, CustomerId, Event, EventCode, FieldDef, FieldId,
    FieldName, FieldType, Properties, Schema, Value,
};
use unico_engine::AppIndex;
use unico_filter::{EvalContext, Filter, FilterInput, computed_value, matches_with_events};

const DAY: i64 = 86_400_000;
/// 2026-11-28T00:00:00Z.
const NOW: i64 = 1_795_824_000_000;
const TYPES: [&str; 2] = ["purchase", "app_open"];
const AMOUNTS: [f64; 9] = [0.0, 1.0, 3.0, 12.34, 100.0, -5.0, 0.1, 0.2, 5000.25];
/// Offsets from `NOW`, many on the edges of the windows used.
const OFFSETS: [i64; 12] = [
    0,
    1,
    -1,
    -7 * DAY,
    -7 * DAY - 1,
    -30 * DAY,
    -30 * DAY + 1,
    -90 * DAY,
    -90 * DAY - 1,
    -200 * DAY,
    3_600_000,
    -13 * 3_600_000,
];
const WINDOWS: [Option<&str>; 5] = [None, Some("7d"), Some("30d"), Some("90d"), Some("36h")];
const PROPERTIES: [&str; 3] = ["amount", "currency", "missing"];

fn tz() -> TimeZone {
    TimeZone::get("Pacific/Chatham").expect("a known zone")
}

#[derive(Debug, Clone)]
struct Seed {
    customer: i64,
    kind: usize,
    offset: i64,
    amount: Option<usize>,
    currency: bool,
}

fn seed(customers: i64) -> impl Strategy<Value = Seed> {
    (
        1..=customers,
        0..TYPES.len(),
        prop_oneof![3 => prop::sample::select(&OFFSETS[..]), 2 => -300 * DAY..DAY],
        prop::option::of(0..AMOUNTS.len()),
        any::<bool>(),
    )
        .prop_map(|(customer, kind, offset, amount, currency)| Seed {
            customer,
            kind,
            offset,
            amount,
            currency,
        })
}

fn definition() -> impl Strategy<Value = Computed> {
    (
        prop::sample::select(ComputedAgg::ALL.to_vec()),
        0..TYPES.len(),
        0..PROPERTIES.len(),
        prop::sample::select(WINDOWS.to_vec()),
    )
        .prop_map(|(agg, kind, property, window)| {
            Computed::new(
                EventCode::parse(TYPES[kind]).expect("valid"),
                agg,
                agg.needs_property()
                    .then(|| PROPERTIES[property].to_owned()),
                window.map(|w| Computed::parse_window(w).expect("valid")),
            )
            .expect("a valid definition")
        })
}

/// Conditions on the computed field `f`, by the type of its values.
fn conditions(ty: FieldType) -> Vec<&'static str> {
    let mut out = vec!["f exists", "f not_exists", "not f exists"];
    if ty == FieldType::Number {
        out.extend([
            "f = 0",
            "f != 0",
            "f > 1",
            "f >= 3",
            "f < 100",
            "f between 0.3 and 100",
            "f in (0, 1, 3, 12.34)",
            "f not_in (0, 0.3)",
            "f > 1 or f = 0",
        ]);
    } else {
        out.extend([
            "f before 30d ago",
            "f after 7d ago",
            "f within_last 7d",
            "f not_within_last 30d",
            "f between 90d ago and 1d ago",
            "f on \"2026-11-28\"",
            "f on \"2026-11-27\"",
        ]);
    }
    out
}

fn schema(def: &Computed) -> Schema {
    Schema::new(vec![
        FieldDef {
            id: FieldId(1),
            name: FieldName::parse("country").expect("valid"),
            field_type: FieldType::String,
            created_at: 0,
            computed: None,
        },
        FieldDef {
            id: FieldId(2),
            name: FieldName::parse("f").expect("valid"),
            field_type: def.agg.field_type(),
            created_at: 0,
            computed: Some(def.clone()),
        },
    ])
}

fn event(id: i64, s: &Seed) -> Event {
    let mut props = serde_json::Map::new();
    if let Some(a) = s.amount {
        props.insert("amount".into(), json!(AMOUNTS[a]));
    }
    if s.currency {
        props.insert("currency".into(), json!("EUR"));
    }
    Event {
        id,
        customer: s.customer,
        event_id: None,
        event_type: EventCode::parse(TYPES[s.kind]).expect("valid"),
        channel: Channel::parse("web").expect("valid"),
        device_id: None,
        timestamp: NOW + s.offset,
        properties: Properties::from_json(serde_json::Value::Object(props)).expect("valid"),
    }
}

fn customer(id: i64) -> Customer {
    Customer {
        id,
        customer_id: CustomerId::parse(&format!("c{id}")).expect("valid"),
        created_at: 0,
        updated_at: 0,
        fields: vec![(FieldId(1), Value::String("ES".into()))],
    }
}

/// Values compared exactly, an absent value only with an absent one.
fn same(a: &Option<Value>, b: &Option<Value>) -> bool {
    match (a, b) {
        (Some(Value::Number(x)), Some(Value::Number(y))) => x.to_bits() == y.to_bits() || x == y,
        _ => a == b,
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 300, ..ProptestConfig::default() })]

    #[test]
    fn computed_fields_agree_with_the_reference(
        customers in 1i64..12,
        seeds in prop::collection::vec(seed(12), 0..60),
        def in definition(),
        removed in prop::option::of(1i64..12),
    ) {
        let schema = schema(&def);
        let mut index = AppIndex::new(&schema);
        index.set_timezone(tz());
        let mut held: BTreeMap<i64, Vec<Event>> = BTreeMap::new();
        for id in 1..=customers {
            index.upsert(&customer(id));
            held.insert(id, Vec::new());
        }
        let events: Vec<Event> = seeds
            .iter()
            .enumerate()
            .filter(|(_, s)| s.customer <= customers)
            .map(|(i, s)| event(i as i64 + 1, s))
            .collect();
        index.add_events(&events);
        for e in &events {
            held.entry(e.customer).or_default().push(e.clone());
        }
        if let Some(id) = removed.filter(|id| *id <= customers) {
            index.remove(id);
            held.remove(&id);
        }
        let ctx = EvalContext::new(NOW, tz());

        let column = index.computed_column(&def, &ctx);
        for (id, events) in &held {
            let want = computed_value(&def, events, &ctx);
            let got = column.value(&index, *id);
            prop_assert!(same(&got, &want), "{def}: customer {id}: engine {got:?}, reference {want:?}");
        }
        // A page's worth (every other customer) gets the same values, the rest none.
        let page: Vec<i64> = held.keys().copied().filter(|id| id % 2 == 1).collect();
        let some = index.computed_column_for(&def, &ctx, &page);
        for (id, events) in &held {
            let want = if id % 2 == 1 { computed_value(&def, events, &ctx) } else { None };
            let got = some.value(&index, *id);
            prop_assert!(same(&got, &want), "{def}: page customer {id}: engine {got:?}, reference {want:?}");
        }
        prop_assert_eq!(
            column.holding(&index.all()),
            held.values().filter(|ev| computed_value(&def, ev, &ctx).is_some()).count() as u64
        );

        for text in conditions(def.agg.field_type()) {
            let filter = Filter::parse(FilterInput::Text(text), &schema).expect("a valid filter");
            let want: Vec<i64> = held
                .iter()
                .filter(|(id, events)| matches_with_events(&filter, &customer(**id), events, &ctx))
                .map(|(id, _)| *id)
                .collect();
            prop_assert_eq!(
                index.count(&filter, &ctx),
                want.len() as u64,
                "{} with f = {}", text, def
            );
            // The condition reads back as written on the field, not as its events.
            prop_assert!(filter.to_text().starts_with("f ") || filter.to_text().starts_with("not f "));
        }
    }
}

#[test]
fn a_condition_on_a_computed_field_is_its_event_condition() {
    let def = Computed::new(
        EventCode::parse("purchase").expect("valid"),
        ComputedAgg::Count,
        None,
        Some(Computed::parse_window("90d").expect("valid")),
    )
    .expect("valid");
    let schema = schema(&def);
    let ctx = EvalContext::new(NOW, TimeZone::UTC);
    let mut index = AppIndex::new(&schema);
    index.upsert(&customer(1));
    index.upsert(&customer(2));
    let buy = |id, customer, offset| {
        event(
            id,
            &Seed {
                customer,
                kind: 0,
                offset,
                amount: Some(1),
                currency: false,
            },
        )
    };
    // Customer 1: three purchases in the window (one on its first instant); customer 2:
    // two in it and one a millisecond before it.
    index.add_events(&[
        buy(1, 1, 0),
        buy(2, 1, -DAY),
        buy(3, 1, -90 * DAY),
        buy(4, 2, 0),
        buy(5, 2, -DAY),
        buy(6, 2, -90 * DAY - 1),
    ]);
    let by_field = Filter::parse(FilterInput::Text("f >= 3"), &schema).expect("valid");
    let by_events = Filter::parse(
        FilterInput::Text("did purchase at_least 3 times within_last 90d"),
        &schema
            .clone()
            .with_event_types(unico_core::EventTypes::new(vec![unico_core::EventType {
                code: EventCode::parse("purchase").expect("valid"),
                name: "Purchase".into(),
                retention_days: 1095,
                enabled: true,
                properties: Vec::new(),
                created_at: 0,
            }])),
    )
    .expect("valid");
    assert_eq!(index.count(&by_field, &ctx), 1);
    assert_eq!(index.count(&by_events, &ctx), 1);
    let column = index.computed_column(&def, &ctx);
    assert_eq!(column.value(&index, 1), Some(Value::Number(3.0)));
    assert_eq!(column.value(&index, 2), Some(Value::Number(2.0)));
    // A day later the oldest purchase of customer 1 has left the window.
    let later = EvalContext::new(NOW + DAY, TimeZone::UTC);
    assert_eq!(index.count(&by_field, &later), 0);
    assert_eq!(
        index.computed_column(&def, &later).value(&index, 1),
        Some(Value::Number(2.0))
    );
}
