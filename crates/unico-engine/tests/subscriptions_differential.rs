//! Differential tests of subscription conditions: the engine against the reference
//! evaluator (`unico_filter::matches_with` with the customer's `Facts`) on random
//! customers, subscription changes (subscribes, unsubscribes, repeats of the last change
//! as a replayed log does, changes of customers the index does not hold, removals and the
//! reuse of their slots), events, and snapshot round trips, with random filters mixing
//! subscription, field and event conditions under `and`, `or` and `not`. Counts, member
//! lists, complements, cheap counts and `subscribers` must agree exactly.

use std::collections::{BTreeMap, BTreeSet};

use jiff::tz::TimeZone;
use proptest::prelude::*;
use serde_json::{Value as Json, json};
use unico_core::{
    Channel, Customer, CustomerId, Event, EventCode, EventType, EventTypes, FieldDef, FieldId,
    FieldName, FieldType, Properties, PropertyType, Schema, Value,
};
use unico_engine::AppIndex;
use unico_filter::{EvalContext, Facts, Filter, FilterInput, matches_with};

const DAY: i64 = 86_400_000;
/// 2026-11-28T00:00:00Z.
const NOW: i64 = 1_795_824_000_000;
/// Channels changes are made on: the default ones, the declared `wallet`, and `fax`,
/// which the application does not take (no filter names it; the index keeps it anyway).
const CHANNELS: [&str; 6] = ["email", "sms", "push", "whatsapp", "wallet", "fax"];
/// Channels filters name (every one the test application takes).
const FILTER_CHANNELS: [&str; 5] = ["email", "sms", "push", "whatsapp", "wallet"];

fn cases(default: u32) -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn channel(c: &str) -> Channel {
    Channel::parse(c).expect("valid channel")
}

fn schema() -> Schema {
    let field = |id, name: &str, field_type| FieldDef {
        id: FieldId(id),
        name: FieldName::parse(name).expect("valid"),
        field_type,
        created_at: 0,
        computed: None,
    };
    let event_type = |code: &str| EventType {
        code: EventCode::parse(code).expect("valid"),
        name: code.into(),
        retention_days: 1095,
        enabled: true,
        properties: vec![("amount".to_owned(), PropertyType::Number)],
        created_at: 0,
    };
    Schema::new(vec![
        field(1, "country", FieldType::String),
        field(2, "age", FieldType::Number),
        // Named like the word that starts a subscription condition.
        field(3, "subscribed", FieldType::String),
    ])
    .with_event_types(EventTypes::new(vec![
        event_type("purchase"),
        event_type("app_open"),
    ]))
    .with_declared_channels(vec![channel("wallet")])
}

fn customer(id: i64, country: Option<usize>, age: Option<u8>) -> Customer {
    let mut fields = Vec::new();
    if let Some(c) = country {
        fields.push((FieldId(1), Value::String(["ES", "FR"][c % 2].into())));
    }
    if let Some(a) = age {
        fields.push((FieldId(2), Value::Number(f64::from(a))));
    }
    if id % 3 == 0 {
        fields.push((FieldId(3), Value::String("yes".into())));
    }
    Customer {
        id,
        customer_id: CustomerId::parse(&format!("c{id:06}")).expect("valid"),
        created_at: 0,
        updated_at: 0,
        fields,
    }
}

fn event(id: i64, customer: i64, code: usize, web: bool, days_ago: i64, amount: u8) -> Event {
    Event {
        id,
        customer,
        event_id: None,
        event_type: EventCode::parse(["purchase", "app_open"][code % 2]).expect("valid"),
        channel: channel(if web { "web" } else { "app" }),
        device_id: None,
        timestamp: NOW - days_ago * DAY,
        properties: Properties::from_json(json!({"amount": amount})).expect("valid"),
    }
}

/// A leaf of a generated filter, in the JSON form.
fn leaf() -> BoxedStrategy<Json> {
    prop_oneof![
        4 => prop::sample::select(&FILTER_CHANNELS[..]).prop_map(|c| json!({"subscribed": c})),
        1 => Just(json!({"field": "country", "op": "eq", "value": "ES"})),
        1 => Just(json!({"field": "age", "op": "gt", "value": 30})),
        1 => Just(json!({"field": "country", "op": "exists"})),
        1 => Just(json!({"field": "subscribed", "op": "eq", "value": "yes"})),
        1 => Just(json!({"event": "purchase", "op": "did", "within_last": "30d"})),
        1 => Just(json!({"event": "app_open", "op": "did", "channel": "app"})),
        1 => Just(json!({"event": "purchase", "agg": "sum", "property": "amount", "op": "gt", "value": 100})),
    ]
    .boxed()
}

fn filter_json() -> impl Strategy<Value = Json> {
    leaf().prop_recursive(4, 24, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 1..4).prop_map(|v| json!({"and": v})),
            prop::collection::vec(inner.clone(), 1..4).prop_map(|v| json!({"or": v})),
            inner.prop_map(|v| json!({"not": v})),
        ]
    })
}

/// What the engine should hold.
#[derive(Default)]
struct Model {
    customers: BTreeMap<i64, Customer>,
    /// The channels each held customer is subscribed to.
    subscribed: BTreeMap<i64, BTreeSet<Channel>>,
    events: BTreeMap<i64, Vec<Event>>,
    event_ids: BTreeSet<i64>,
}

impl Model {
    fn upsert(&mut self, index: &mut AppIndex, c: Customer) {
        index.upsert(&c);
        self.customers.insert(c.id, c);
    }

    fn remove(&mut self, index: &mut AppIndex, id: i64) {
        index.remove(id);
        self.customers.remove(&id);
        self.subscribed.remove(&id);
        for e in self.events.remove(&id).unwrap_or_default() {
            self.event_ids.remove(&e.id);
        }
    }

    fn set(&mut self, index: &mut AppIndex, id: i64, c: &Channel, on: bool) {
        index.set_subscribed(id, c, on);
        if !self.customers.contains_key(&id) {
            return;
        }
        let set = self.subscribed.entry(id).or_default();
        if on {
            set.insert(c.clone());
        } else {
            set.remove(c);
        }
    }

    fn add(&mut self, index: &mut AppIndex, batch: &[Event]) {
        index.add_events(batch);
        for e in batch {
            if self.customers.contains_key(&e.customer) && self.event_ids.insert(e.id) {
                self.events.entry(e.customer).or_default().push(e.clone());
            }
        }
    }

    fn subscriptions(&self, id: i64) -> Vec<Channel> {
        self.subscribed
            .get(&id)
            .map_or_else(Vec::new, |s| s.iter().cloned().collect())
    }

    /// Every held customer's subscriptions as the index answers them one by one.
    fn check_state(&self, index: &AppIndex) -> Result<(), TestCaseError> {
        prop_assert_eq!(index.len(), self.customers.len());
        for id in 1..=30 {
            for c in CHANNELS {
                let c = channel(c);
                let want = self.subscribed.get(&id).is_some_and(|s| s.contains(&c));
                prop_assert_eq!(index.is_subscribed(id, &c), want, "{} on {}", id, c);
            }
        }
        for c in CHANNELS {
            let c = channel(c);
            let want = self.subscribed.values().filter(|s| s.contains(&c)).count();
            prop_assert_eq!(index.subscribers(&index.all(), &c), want as u64, "{}", c);
        }
        Ok(())
    }

    fn check(&self, index: &AppIndex, json: &Json) -> Result<(), TestCaseError> {
        let schema = schema();
        let filter = Filter::parse(FilterInput::Json(json), &schema).expect("generated filter");
        let ctx = EvalContext::new(NOW, TimeZone::UTC);
        let none = Vec::new();
        let want: Vec<i64> = self
            .customers
            .values()
            .filter(|c| {
                let subscribed = self.subscriptions(c.id);
                let facts = Facts {
                    events: self.events.get(&c.id).unwrap_or(&none),
                    subscribed: &subscribed,
                };
                matches_with(&filter, c, &facts, &ctx)
            })
            .map(|c| c.id)
            .collect();
        prop_assert_eq!(
            index.count(&filter, &ctx),
            want.len() as u64,
            "count of {}",
            filter
        );
        if let Some(n) = index.count_if_cheap(&filter, &ctx) {
            prop_assert_eq!(n, want.len() as u64, "cheap count of {}", filter);
        }
        let members = index.members(&filter, &ctx);
        // customerIds are `c` and the id on six digits: their order is the ids'.
        prop_assert_eq!(
            index.page_by_customer_id(&members, None, false, usize::MAX),
            want.clone(),
            "members of {}",
            filter
        );
        for c in CHANNELS {
            let c = channel(c);
            let subscribers = want
                .iter()
                .filter(|id| self.subscribed.get(id).is_some_and(|s| s.contains(&c)))
                .count();
            prop_assert_eq!(index.subscribers(&members, &c), subscribers as u64);
        }
        let not =
            Filter::parse(FilterInput::Json(&json!({"not": json})), &schema).expect("negation");
        prop_assert_eq!(
            index.count(&not, &ctx),
            (self.customers.len() - want.len()) as u64,
            "complement of {}",
            filter
        );
        // The text form reaches the same audience.
        let text =
            Filter::parse(FilterInput::Text(&filter.to_text()), &schema).expect("canonical text");
        prop_assert_eq!(index.count(&text, &ctx), want.len() as u64);
        Ok(())
    }
}

#[derive(Debug, Clone)]
enum Op {
    Upsert(i64, Option<usize>, Option<u8>),
    Remove(i64),
    Set(i64, usize, bool),
    /// The last change applied again (a replayed log).
    Repeat,
    Events(Vec<(i64, usize, bool, i64, u8)>),
    Snapshot,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        5 => (1i64..=24, prop::option::of(0usize..2), prop::option::of(18u8..60))
            .prop_map(|(id, c, a)| Op::Upsert(id, c, a)),
        2 => (1i64..=24).prop_map(Op::Remove),
        // Ids up to 30: some changes name customers the index does not hold.
        8 => (1i64..=30, 0..CHANNELS.len(), prop::bool::weighted(0.65))
            .prop_map(|(id, c, on)| Op::Set(id, c, on)),
        2 => Just(Op::Repeat),
        2 => prop::collection::vec((1i64..=26, 0usize..2, any::<bool>(), 0i64..60, any::<u8>()), 1..6)
            .prop_map(Op::Events),
        1 => Just(Op::Snapshot),
    ]
}

fn snapshot(index: &AppIndex) -> AppIndex {
    let mut bytes = Vec::new();
    index.write_snapshot(b"stamp", &mut bytes).expect("written");
    AppIndex::read_snapshot(
        &mut &bytes[..],
        bytes.len() as u64,
        b"stamp",
        index.schema(),
        TimeZone::UTC,
    )
    .expect("a snapshot reads back")
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(600), ..ProptestConfig::default() })]

    #[test]
    fn subscription_conditions_agree_with_the_reference(
        ops in prop::collection::vec(op(), 1..60),
        filters in prop::collection::vec(filter_json(), 1..5),
    ) {
        let mut index = AppIndex::new(&schema());
        let mut model = Model::default();
        let mut last: Option<(i64, Channel, bool)> = None;
        let mut next_event = 1;
        for op in &ops {
            match op {
                Op::Upsert(id, c, a) => model.upsert(&mut index, customer(*id, *c, *a)),
                Op::Remove(id) => model.remove(&mut index, *id),
                Op::Set(id, c, on) => {
                    let c = channel(CHANNELS[*c]);
                    model.set(&mut index, *id, &c, *on);
                    last = Some((*id, c, *on));
                }
                Op::Repeat => {
                    if let Some((id, c, on)) = &last {
                        model.set(&mut index, *id, c, *on);
                    }
                }
                Op::Events(seeds) => {
                    let batch: Vec<Event> = seeds
                        .iter()
                        .map(|&(customer, code, web, days, amount)| {
                            next_event += 1;
                            event(next_event, customer, code, web, days, amount)
                        })
                        .collect();
                    model.add(&mut index, &batch);
                }
                Op::Snapshot => index = snapshot(&index),
            }
            model.check_state(&index)?;
        }
        for f in &filters {
            model.check(&index, f)?;
        }
    }
}

/// Thousands of customers over several blocks and threads, with removals whose slots are
/// taken again: the new customers inherit no subscription, and every count agrees.
#[test]
fn many_customers_over_blocks_and_threads_agree() {
    let mut index = AppIndex::new(&schema());
    index.set_parallelism(4, 64);
    let mut model = Model::default();
    let n = 10_000i64;
    for id in 1..=n {
        model.upsert(
            &mut index,
            customer(id, Some(id as usize), Some((id % 50) as u8)),
        );
        for (k, c) in CHANNELS.iter().enumerate() {
            if (id * 7 + k as i64 * 13) % (k as i64 + 2) == 0 {
                model.set(&mut index, id, &channel(c), true);
            }
        }
    }
    // Unsubscribes, twice each, and removals of subscribed customers.
    for id in (1..=n).step_by(5) {
        model.set(&mut index, id, &channel("email"), false);
        model.set(&mut index, id, &channel("email"), false);
    }
    for id in (1..=n).step_by(7) {
        model.remove(&mut index, id);
    }
    let before = index.memory_bytes();
    // New customers take the freed slots: none of them is subscribed to anything.
    for id in n + 1..=n + 1500 {
        model.upsert(&mut index, customer(id, None, None));
    }
    assert!(index.memory_bytes() >= before);
    for id in n + 1..=n + 1500 {
        for c in CHANNELS {
            assert!(!index.is_subscribed(id, &channel(c)), "{id} inherits {c}");
        }
    }
    let index = snapshot(&index);
    for json in [
        json!({"subscribed": "email"}),
        json!({"not": {"subscribed": "email"}}),
        json!({"and": [{"subscribed": "sms"}, {"not": {"subscribed": "push"}}, {"field": "age", "op": "gt", "value": 20}]}),
        json!({"or": [{"subscribed": "wallet"}, {"field": "country", "op": "eq", "value": "ES"}]}),
    ] {
        let mut runner = proptest::test_runner::TestRunner::default();
        runner
            .run(&Just(()), |()| model.check(&index, &json))
            .expect("agrees");
    }
}

#[test]
fn subscriptions_are_counted_in_memory() {
    let mut index = AppIndex::new(&schema());
    for id in 1..=5000 {
        index.upsert(&customer(id, None, None));
    }
    let before = index.memory_bytes();
    for id in 1..=5000 {
        index.set_subscribed(id, &channel("email"), true);
    }
    // One bit per row of the capacity, at least.
    assert!(index.memory_bytes() >= before + 5000 / 8);
}
