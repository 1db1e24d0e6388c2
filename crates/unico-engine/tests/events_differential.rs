//! Differential tests of event conditions: the engine against the reference semantics of
//! `ResolvedFilter::matches_with_events` on random customers with random events (types,
//! channels, times at and around window edges and in the future, number, string,
//! missing, wrongly typed and ignored properties), random resolved event tests built
//! directly (the text and JSON forms do not spell event conditions yet), combined with
//! field conditions under `and`, `or` and `not`. Counts, member lists and complements
//! must agree exactly, through customer upserts and removals (slot reuse, purges),
//! duplicate event ids, retention and snapshot round trips.
//!
//! The reference of one event condition is `EventTest::counts` (the per-event
//! predicate of `unico_filter`), the aggregate arithmetic of `unico_filter::aggregate`
//! and `PropertyTest::matches` for number tests, as `matches_with_events` uses them;
//! field conditions are `ResolvedFilter::matches`. `PROPTEST_CASES=20000 cargo test -p
//! unico-engine --release --test events_differential event_conditions` runs a longer
//! search (proptest applies `PROPTEST_CASES` to every test it runs: the many-events test
//! takes ~0.2 s a case in release, so give it fewer).

use std::collections::BTreeMap;

use jiff::tz::TimeZone;
use proptest::prelude::*;
use serde_json::json;
use unico_core::{
    Channel, Customer, CustomerId, Event, EventCode, FieldDef, FieldId, FieldName, FieldType,
    PropRef, Properties, PropertyType, Schema, Value,
};
use unico_engine::{AppIndex, PreparedEvents};
use unico_filter::aggregate::{average, from_micros, to_micros};
use unico_filter::filter::{Agg, Which};
use unico_filter::resolve::{EventMeasure, EventTest, PropertyTest, Resolved, TestKind, TextOp};
use unico_filter::{EvalContext, Filter, FilterInput, ResolvedFilter, resolve};

const DAY: i64 = 86_400_000;
/// 2026-11-28T00:00:00Z.
const NOW: i64 = 1_795_824_000_000;
const TYPES: [&str; 3] = ["purchase", "page_view", "app_open"];
const CHANNELS: [&str; 4] = ["web", "app", "pos", "email"];
const STRINGS: [&str; 8] = ["EUR", "eur", "USD", "shoes", "Shoes", "Ángel", "straße", ""];
const NUMBERS: [f64; 16] = [
    0.0, -0.0, 1.0, 3.0, 10.0, 12.34, 100.0, 100.5, -5.0, 2.5e-7, 5000.25, 1e15, 1e20, 127.0,
    128.0, 40_000.0,
];
const NEEDLES: [&str; 6] = ["e", "eur", "ß", "sho", "", "ángel"];
/// Offsets from `NOW` that sit on the edges of the windows the tests use.
const EDGES: [i64; 10] = [
    0,
    1,
    -1,
    -90 * DAY,
    -90 * DAY - 1,
    -90 * DAY + 1,
    -30 * DAY,
    -30 * DAY - 1,
    3_600_000,
    -365 * DAY,
];

fn cases(default: u32) -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn schema() -> Schema {
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
            name: FieldName::parse("age").expect("valid"),
            field_type: FieldType::Number,
            created_at: 0,
            computed: None,
        },
    ])
}

fn customer(id: i64, country: Option<usize>, age: Option<u8>) -> Customer {
    let mut fields = Vec::new();
    if let Some(c) = country {
        fields.push((FieldId(1), Value::String(["ES", "FR", "es"][c % 3].into())));
    }
    if let Some(a) = age {
        fields.push((FieldId(2), Value::Number(f64::from(a))));
    }
    Customer {
        id,
        customer_id: CustomerId::parse(&format!("c{id}")).expect("valid"),
        created_at: 0,
        updated_at: 0,
        fields,
    }
}

/// What an event property holds.
#[derive(Debug, Clone)]
enum PropSeed {
    Num(usize),
    Str(usize),
    /// An object, array, boolean or null: kept by the store, never compared.
    Other(usize),
}

impl PropSeed {
    fn json(&self) -> serde_json::Value {
        match self {
            PropSeed::Num(i) => json!(NUMBERS[i % NUMBERS.len()]),
            PropSeed::Str(i) => json!(STRINGS[i % STRINGS.len()]),
            PropSeed::Other(i) => {
                [json!({"a": 1}), json!([1]), json!(true), json!(null)][i % 4].clone()
            }
        }
    }
}

fn prop_seed() -> impl Strategy<Value = PropSeed> {
    prop_oneof![
        4 => (0..NUMBERS.len()).prop_map(PropSeed::Num),
        3 => (0..STRINGS.len()).prop_map(PropSeed::Str),
        1 => (0usize..4).prop_map(PropSeed::Other),
    ]
}

#[derive(Debug, Clone)]
struct EventSeed {
    /// The event id; its type follows from it (one id is one event).
    id: i64,
    customer: i64,
    channel: usize,
    offset: i64,
    props: Vec<(usize, PropSeed)>,
}

const PROP_NAMES: [&str; 4] = ["amount", "currency", "category", "nested"];

fn time_offset() -> impl Strategy<Value = i64> {
    prop_oneof![
        3 => prop::sample::select(&EDGES[..]),
        3 => -400 * DAY..2 * DAY,
        1 => -3 * 3_600_000i64..3 * 3_600_000,
    ]
}

/// Ids far apart (more than 2³¹ from their neighbours), negative and extreme.
const FAR_IDS: [i64; 7] = [
    1 << 40,
    (1 << 40) + 1,
    3_000_000_000,
    -5,
    -3_000_000_000,
    i64::MAX,
    i64::MIN,
];

fn event_seed(ids: i64, customers: i64) -> impl Strategy<Value = EventSeed> {
    (
        prop_oneof![12 => 1..=ids, 1 => prop::sample::select(&FAR_IDS[..])],
        1..=customers,
        0..CHANNELS.len(),
        time_offset(),
        prop::collection::vec((0..PROP_NAMES.len(), prop_seed()), 0..4),
    )
        .prop_map(|(id, customer, channel, offset, props)| EventSeed {
            id,
            customer,
            channel,
            offset,
            props,
        })
}

fn make_event(s: &EventSeed) -> Event {
    let mut map = serde_json::Map::new();
    for (name, p) in &s.props {
        map.insert(PROP_NAMES[*name].to_owned(), p.json());
    }
    Event {
        id: s.id,
        customer: s.customer,
        event_id: None,
        event_type: EventCode::parse(TYPES[s.id.rem_euclid(3) as usize]).expect("valid"),
        channel: Channel::parse(CHANNELS[s.channel]).expect("valid"),
        device_id: None,
        timestamp: NOW + s.offset,
        properties: Properties::from_json(serde_json::Value::Object(map)).expect("valid"),
    }
}

fn sorted_numbers(picks: &[usize]) -> Vec<f64> {
    let mut v: Vec<f64> = picks
        .iter()
        .map(|&i| NUMBERS[i % NUMBERS.len()] + 0.0)
        .collect();
    v.sort_unstable_by(f64::total_cmp);
    v.dedup();
    v
}

fn sorted_strings(picks: &[usize]) -> Vec<String> {
    let mut v: Vec<String> = picks
        .iter()
        .map(|&i| STRINGS[i % STRINGS.len()].to_owned())
        .collect();
    v.sort_unstable();
    v.dedup();
    v
}

/// A bound of a number range: a pool number or an infinity.
fn bound(i: usize, upper: bool) -> f64 {
    if i >= NUMBERS.len() {
        if upper {
            f64::INFINITY
        } else {
            f64::NEG_INFINITY
        }
    } else {
        NUMBERS[i]
    }
}

fn num_kind() -> impl Strategy<Value = TestKind> {
    prop_oneof![
        1 => Just(TestKind::Exists),
        1 => Just(TestKind::NotExists),
        3 => (prop::collection::vec(0..NUMBERS.len(), 0..4), any::<bool>())
            .prop_map(|(p, negated)| TestKind::NumIn { values: sorted_numbers(&p), negated }),
        4 => (0..NUMBERS.len() + 1, any::<bool>(), 0..NUMBERS.len() + 1, any::<bool>())
            .prop_map(|(a, ai, b, bi)| TestKind::NumRange {
                lo: bound(a, false),
                lo_inclusive: ai,
                hi: bound(b, true),
                hi_inclusive: bi,
            }),
    ]
}

fn str_kind() -> impl Strategy<Value = TestKind> {
    prop_oneof![
        1 => Just(TestKind::Exists),
        1 => Just(TestKind::NotExists),
        3 => (prop::collection::vec(0..STRINGS.len(), 0..4), any::<bool>())
            .prop_map(|(p, negated)| TestKind::StrIn { values: sorted_strings(&p), negated }),
        3 => (0usize..3, 0..NEEDLES.len(), any::<bool>()).prop_map(|(op, n, negated)| {
            TestKind::StrText {
                op: [TextOp::Contains, TextOp::StartsWith, TextOp::EndsWith][op],
                needle_lower: NEEDLES[n].to_lowercase(),
                negated,
            }
        }),
    ]
}

fn property_test() -> impl Strategy<Value = PropertyTest> {
    let name = prop_oneof![
        6 => (0..PROP_NAMES.len()).prop_map(|i| PROP_NAMES[i].to_owned()),
        1 => Just("missing".to_owned()),
    ];
    (
        name,
        prop_oneof![
            num_kind().prop_map(|k| (PropertyType::Number, k)),
            str_kind().prop_map(|k| (PropertyType::String, k))
        ],
    )
        .prop_map(|(property, (property_type, kind))| PropertyTest {
            property,
            property_type,
            kind,
        })
}

fn window() -> impl Strategy<Value = (i64, i64)> {
    prop_oneof![
        2 => Just((i64::MIN, i64::MAX)),
        3 => prop::sample::select(vec![90, 30, 365, 7, 0]).prop_map(|d: i64| (NOW - d * DAY, NOW)),
        2 => (time_offset(), time_offset()).prop_map(|(a, b)| (NOW + a.min(b), NOW + a.max(b))),
        1 => Just((1, 0)),
    ]
}

fn ms_ranges() -> impl Strategy<Value = TestKind> {
    prop_oneof![
        1 => Just(TestKind::Exists),
        4 => (prop::collection::vec(time_offset(), 0..4), any::<bool>()).prop_map(|(mut pts, negated)| {
            pts.sort_unstable();
            pts.dedup();
            let ranges = pts
                .chunks_exact(2)
                .map(|p| (NOW + p[0], NOW + p[1]))
                .collect();
            TestKind::MsRanges { ranges, negated }
        }),
        1 => Just(TestKind::MsRanges { ranges: vec![(i64::MIN, NOW - 30 * DAY - 1)], negated: false }),
    ]
}

fn measure() -> impl Strategy<Value = EventMeasure> {
    let count = prop_oneof![
        3 => Just((1, u64::MAX)),
        2 => (0u64..4).prop_map(|n| (n, u64::MAX)),
        2 => (0u64..4).prop_map(|n| (0, n)),
        2 => (0u64..4).prop_map(|n| (n, n)),
        1 => Just((3, 1)),
        1 => Just((0, u64::MAX)),
    ];
    let agg = prop::sample::select(vec![Agg::Count, Agg::Sum, Agg::Avg, Agg::Min, Agg::Max]);
    let property = prop_oneof![
        4 => Just(Some("amount".to_owned())),
        1 => Just(Some("currency".to_owned())),
        1 => Just(Some("missing".to_owned())),
        1 => Just(None),
    ];
    prop_oneof![
        5 => (count, any::<bool>()).prop_map(|((lo, hi), negated)| EventMeasure::Count { lo, hi, negated }),
        4 => (agg, property, num_kind()).prop_map(|(agg, property, test)| EventMeasure::Agg { agg, property, test }),
        2 => (any::<bool>(), ms_ranges()).prop_map(|(first, test)| EventMeasure::Time {
            which: if first { Which::First } else { Which::Last },
            test,
        }),
    ]
}

fn event_test() -> impl Strategy<Value = EventTest> {
    (
        prop_oneof![6 => 0..TYPES.len(), 1 => Just(TYPES.len())],
        prop::option::weighted(0.4, 0..CHANNELS.len() + 1),
        window(),
        prop::collection::vec(property_test(), 0..3),
        measure(),
    )
        .prop_map(|(event, channel, window, wheres, measure)| EventTest {
            event: EventCode::parse(TYPES.get(event).copied().unwrap_or("never_seen"))
                .expect("valid"),
            channel: channel
                .map(|c| Channel::parse(CHANNELS.get(c).copied().unwrap_or("sms")).expect("valid")),
            window,
            wheres,
            measure,
        })
}

/// A field condition, as JSON the checker reads.
fn field_condition() -> impl Strategy<Value = serde_json::Value> {
    prop_oneof![
        Just(json!({"field": "country", "op": "eq", "value": "ES"})),
        Just(json!({"field": "country", "op": "exists"})),
        Just(json!({"field": "age", "op": "gt", "value": 30})),
        Just(json!({"field": "age", "op": "not_exists"})),
    ]
}

#[derive(Debug, Clone)]
enum Shape {
    Field(serde_json::Value),
    Event(EventTest),
    And(Vec<Shape>),
    Or(Vec<Shape>),
    Not(Box<Shape>),
}

fn shape() -> impl Strategy<Value = Shape> {
    prop_oneof![
        1 => field_condition().prop_map(Shape::Field),
        3 => event_test().prop_map(Shape::Event),
    ]
    .prop_recursive(3, 12, 3, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 1..4).prop_map(Shape::And),
            prop::collection::vec(inner.clone(), 1..4).prop_map(Shape::Or),
            inner.prop_map(|s| Shape::Not(Box::new(s))),
        ]
    })
}

/// A shape made concrete: field conditions resolved, event tests as they are.
enum Tree {
    Field(ResolvedFilter),
    Event(EventTest),
    And(Vec<Tree>),
    Or(Vec<Tree>),
    Not(Box<Tree>),
}

impl Tree {
    fn new(shape: &Shape, schema: &Schema, ctx: &EvalContext) -> Tree {
        match shape {
            Shape::Field(j) => {
                let f = Filter::parse(FilterInput::Json(j), schema).expect("valid filter");
                Tree::Field(resolve(&f, ctx))
            }
            Shape::Event(t) => Tree::Event(t.clone()),
            Shape::And(v) => Tree::And(v.iter().map(|s| Tree::new(s, schema, ctx)).collect()),
            Shape::Or(v) => Tree::Or(v.iter().map(|s| Tree::new(s, schema, ctx)).collect()),
            Shape::Not(s) => Tree::Not(Box::new(Tree::new(s, schema, ctx))),
        }
    }

    fn resolved(&self) -> Resolved {
        match self {
            Tree::Field(f) => f.root().clone(),
            Tree::Event(t) => Resolved::Event(t.clone()),
            Tree::And(v) => Resolved::And(v.iter().map(Tree::resolved).collect()),
            Tree::Or(v) => Resolved::Or(v.iter().map(Tree::resolved).collect()),
            Tree::Not(t) => Resolved::Not(Box::new(t.resolved())),
        }
    }

    fn matches(&self, c: &Customer, events: &[Event]) -> bool {
        match self {
            Tree::Field(f) => f.matches(c),
            Tree::Event(t) => reference(t, events),
            Tree::And(v) => v.iter().all(|t| t.matches(c, events)),
            Tree::Or(v) => v.iter().any(|t| t.matches(c, events)),
            Tree::Not(t) => !t.matches(c, events),
        }
    }
}

/// A present number against a test, as the reference tests it.
fn number_passes(kind: &TestKind, v: f64) -> bool {
    PropertyTest {
        property: String::new(),
        property_type: PropertyType::Number,
        kind: kind.clone(),
    }
    .matches(Some(PropRef::Num(v)))
}

/// The reference semantics of one event condition over one customer's events
/// (`unico_filter::resolve`'s `event_matches`).
fn reference(t: &EventTest, events: &[Event]) -> bool {
    let counted: Vec<&Event> = events.iter().filter(|e| t.counts(e)).collect();
    match &t.measure {
        EventMeasure::Count { lo, hi, negated } => {
            let n = counted.len() as u64;
            (*lo <= n && n <= *hi) != *negated
        }
        EventMeasure::Agg {
            agg,
            property,
            test,
        } => {
            let numbers: Vec<f64> = counted
                .iter()
                .filter_map(|e| match e.property(property.as_deref()?) {
                    Some(PropRef::Num(n)) => Some(n),
                    _ => None,
                })
                .collect();
            let value = match agg {
                Agg::Count => Some(counted.len() as f64),
                Agg::Sum => Some(from_micros(numbers.iter().map(|&v| to_micros(v)).sum())),
                Agg::Avg => average(
                    numbers.iter().map(|&v| to_micros(v)).sum(),
                    numbers.len() as u64,
                ),
                Agg::Min => numbers.iter().copied().min_by(f64::total_cmp),
                Agg::Max => numbers.iter().copied().max_by(f64::total_cmp),
            };
            value.is_some_and(|v| number_passes(test, v))
        }
        EventMeasure::Time { which, test } => {
            let times = counted.iter().map(|e| e.timestamp);
            let time = match which {
                Which::First => times.min(),
                Which::Last => times.max(),
            };
            time.is_some_and(|ms| match test {
                TestKind::Exists => true,
                TestKind::MsRanges { ranges, negated } => {
                    ranges.iter().any(|&(a, b)| a <= ms && ms <= b) != *negated
                }
                _ => false,
            })
        }
    }
}

/// The customers and events the engine should hold.
#[derive(Default)]
struct Model {
    customers: BTreeMap<i64, Customer>,
    /// Events of held customers, by customer.
    events: BTreeMap<i64, Vec<Event>>,
    /// The customer of every held event id.
    ids: BTreeMap<i64, i64>,
}

impl Model {
    fn upsert(&mut self, index: &mut AppIndex, c: Customer) {
        index.upsert(&c);
        self.customers.insert(c.id, c);
    }

    fn remove(&mut self, index: &mut AppIndex, id: i64) {
        index.remove(id);
        self.customers.remove(&id);
        for e in self.events.remove(&id).unwrap_or_default() {
            self.ids.remove(&e.id);
        }
    }

    fn add(&mut self, index: &mut AppIndex, batch: &[Event]) {
        index.add_events(batch);
        self.note(batch);
    }

    /// As the server does with an import's events: prepared in pieces as they are
    /// written, then taken in at once.
    fn add_prepared(&mut self, index: &mut AppIndex, batch: &[Event]) {
        let mut prepared = PreparedEvents::new();
        for piece in batch.chunks(5) {
            prepared.add(piece);
        }
        index.add_prepared(prepared);
        self.note(batch);
    }

    fn note(&mut self, batch: &[Event]) {
        for e in batch {
            if self.customers.contains_key(&e.customer) && !self.ids.contains_key(&e.id) {
                self.ids.insert(e.id, e.customer);
                self.events.entry(e.customer).or_default().push(e.clone());
            }
        }
    }

    fn retention(
        &mut self,
        index: &mut AppIndex,
        code: &str,
        before: i64,
    ) -> Result<(), TestCaseError> {
        let code = EventCode::parse(code).expect("valid");
        let mut want = 0u64;
        for events in self.events.values_mut() {
            events.retain(|e| {
                let old = e.event_type == code && e.timestamp < before;
                if old {
                    self.ids.remove(&e.id);
                    want += 1;
                }
                !old
            });
        }
        prop_assert_eq!(index.remove_events_before(&code, before), want);
        Ok(())
    }

    fn check_counts(&self, index: &AppIndex) -> Result<(), TestCaseError> {
        prop_assert_eq!(index.len(), self.customers.len());
        prop_assert_eq!(index.event_count(), self.ids.len() as u64);
        for id in self.customers.keys() {
            prop_assert_eq!(
                index.customer_events(*id),
                self.events.get(id).map_or(0, Vec::len),
                "events of customer {}",
                id
            );
        }
        Ok(())
    }

    fn check(&self, index: &AppIndex, shape: &Shape) -> Result<(), TestCaseError> {
        let ctx = EvalContext::new(NOW, TimeZone::UTC);
        let tree = Tree::new(shape, &schema(), &ctx);
        let root = tree.resolved();
        let none = Vec::new();
        let mut want: Vec<(String, i64)> = self
            .customers
            .values()
            .filter(|c| tree.matches(c, self.events.get(&c.id).unwrap_or(&none)))
            .map(|c| (c.customer_id.as_str().to_owned(), c.id))
            .collect();
        want.sort();
        let want: Vec<i64> = want.into_iter().map(|(_, id)| id).collect();
        prop_assert_eq!(
            index.count_resolved(&root, &TimeZone::UTC),
            want.len() as u64,
            "count of {:?}",
            root
        );
        let members = index.members_resolved(&root, &TimeZone::UTC);
        prop_assert_eq!(
            index.page_by_customer_id(&members, None, false, usize::MAX),
            want.clone(),
            "members of {:?}",
            root
        );
        let not = Resolved::Not(Box::new(root.clone()));
        prop_assert_eq!(
            index.count_resolved(&not, &TimeZone::UTC),
            (self.customers.len() - want.len()) as u64,
            "complement of {:?}",
            root
        );
        Ok(())
    }
}

#[derive(Debug, Clone)]
enum Op {
    Upsert(i64, Option<usize>, Option<u8>),
    Remove(i64),
    Events(Vec<EventSeed>),
    /// Events an import prepared as it wrote them, handed over in one step.
    Prepared(Vec<EventSeed>),
    /// Sends again events sent before (by position in the history of sent events).
    Resend(Vec<usize>),
    Retention(usize, i64),
    Snapshot,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => (1i64..=24, prop::option::of(0usize..3), prop::option::of(18u8..60))
            .prop_map(|(id, c, a)| Op::Upsert(id, c, a)),
        2 => (1i64..=24).prop_map(Op::Remove),
        6 => prop::collection::vec(event_seed(120, 26), 1..12).prop_map(Op::Events),
        3 => prop::collection::vec(event_seed(120, 26), 1..24).prop_map(Op::Prepared),
        1 => prop::collection::vec(any::<usize>(), 1..6).prop_map(Op::Resend),
        1 => (0..TYPES.len(), time_offset()).prop_map(|(t, o)| Op::Retention(t, o)),
        1 => Just(Op::Snapshot),
    ]
}

#[test]
fn an_index_with_events_can_be_shared_between_threads() {
    fn shareable<T: Send + Sync>() {}
    shareable::<AppIndex>();
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
    #![proptest_config(ProptestConfig { cases: cases(1000), ..ProptestConfig::default() })]

    #[test]
    fn event_conditions_agree_with_the_reference(
        ops in prop::collection::vec(op(), 1..40),
        shapes in prop::collection::vec(shape(), 1..5),
    ) {
        let mut index = AppIndex::new(&schema());
        let mut model = Model::default();
        let mut sent: Vec<Event> = Vec::new();
        for op in &ops {
            match op {
                Op::Upsert(id, c, a) => model.upsert(&mut index, customer(*id, *c, *a)),
                Op::Remove(id) => model.remove(&mut index, *id),
                Op::Events(seeds) => {
                    let batch: Vec<Event> = seeds.iter().map(make_event).collect();
                    model.add(&mut index, &batch);
                    sent.extend(batch);
                }
                Op::Prepared(seeds) => {
                    // An import's events each have an id of their own (the store's).
                    let mut ids = std::collections::BTreeSet::new();
                    let batch: Vec<Event> = seeds
                        .iter()
                        .filter(|s| ids.insert(s.id))
                        .map(make_event)
                        .collect();
                    model.add_prepared(&mut index, &batch);
                    sent.extend(batch);
                }
                Op::Resend(picks) => {
                    if !sent.is_empty() {
                        let batch: Vec<Event> =
                            picks.iter().map(|&p| sent[p % sent.len()].clone()).collect();
                        model.add(&mut index, &batch);
                    }
                }
                Op::Retention(t, offset) => model.retention(&mut index, TYPES[*t], NOW + offset)?,
                Op::Snapshot => index = snapshot(&index),
            }
            model.check_counts(&index)?;
        }
        for shape in &shapes {
            model.check(&index, shape)?;
        }
    }
}

/// A small deterministic generator, for tests that need thousands of rows.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

fn random_event(rng: &mut Rng, id: i64, customers: i64, time: i64) -> EventSeed {
    let props = (0..rng.below(4))
        .map(|_| {
            let name = rng.below(PROP_NAMES.len() as u64) as usize;
            let p = match rng.below(8) {
                0..=3 => PropSeed::Num(rng.below(NUMBERS.len() as u64) as usize),
                4..=6 => PropSeed::Str(rng.below(STRINGS.len() as u64) as usize),
                _ => PropSeed::Other(rng.below(4) as usize),
            };
            (name, p)
        })
        .collect();
    EventSeed {
        id,
        customer: rng.below(customers as u64) as i64 + 1,
        channel: rng.below(CHANNELS.len() as u64) as usize,
        offset: time - NOW,
        props,
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(1000) / 200 + 2, ..ProptestConfig::default() })]

    /// Thousands of customers and tens of thousands of events: many zones (some in time
    /// order, so windows skip them; some not), a batch large enough to fill the tables in
    /// parallel, ids out of order, duplicates of old and new events, removals that purge
    /// and reuse slots, retention, and a snapshot.
    #[test]
    fn many_events_over_zones_agree(
        rng_seed in 1u64..u64::MAX,
        shapes in prop::collection::vec(shape(), 6),
    ) {
        let mut rng = Rng(rng_seed);
        let mut index = AppIndex::new(&schema());
        index.set_parallelism(3, 64);
        let mut model = Model::default();
        let n: i64 = 3000;
        for id in 1..=n {
            let c = customer(id, Some(rng.below(4) as usize), (rng.below(3) > 0).then(|| rng.below(60) as u8));
            model.upsert(&mut index, c);
        }
        // A bulk load in time order (ids rising), large enough for the parallel path.
        let mut next_id = 1_000;
        let bulk: Vec<Event> = (0..70_000)
            .map(|k| {
                let time = NOW - 400 * DAY + k * (400 * DAY / 70_000);
                next_id += 3;
                make_event(&random_event(&mut rng, next_id, n, time))
            })
            .collect();
        model.add(&mut index, &bulk);
        // Removals (purges happen on the way) and new customers in freed slots.
        for _ in 0..900 {
            let id = rng.below(n as u64) as i64 + 1;
            model.remove(&mut index, id);
        }
        for id in n + 1..=n + 400 {
            model.upsert(&mut index, customer(id, Some(rng.below(3) as usize), Some(30)));
        }
        // Streaming: random times, ids mostly rising with some out of order, duplicates
        // of old and recent events.
        let mut batch = Vec::new();
        for k in 0..6_000 {
            let time = NOW - rng.below(100) as i64 * DAY + rng.below(DAY as u64) as i64;
            let id = if k % 97 == 0 { rng.below(next_id as u64) as i64 } else { next_id += 1; next_id };
            batch.push(make_event(&random_event(&mut rng, id, n + 400, time)));
            if k % 50 == 0 {
                batch.push(bulk[rng.below(bulk.len() as u64) as usize].clone());
            }
        }
        model.add(&mut index, &batch);
        model.add(&mut index, &batch[..500]);
        model.check_counts(&index)?;
        model.retention(&mut index, "page_view", NOW - 300 * DAY)?;
        model.retention(&mut index, "purchase", NOW - 20 * DAY - 7)?;
        index = snapshot(&index);
        model.check_counts(&index)?;
        for shape in &shapes {
            model.check(&index, shape)?;
        }
        // Still takes writes after the snapshot.
        for id in 1..=300 {
            model.remove(&mut index, id);
        }
        let more: Vec<Event> = (0..2_000)
            .map(|_| {
                next_id += 1;
                let time = NOW - rng.below(40) as i64 * DAY;
                make_event(&random_event(&mut rng, next_id, n + 400, time))
            })
            .collect();
        model.add(&mut index, &more);
        model.check_counts(&index)?;
        for shape in &shapes {
            model.check(&index, shape)?;
        }
    }
}
