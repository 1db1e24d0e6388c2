//! Differential property tests: the engine against the reference evaluator
//! `unico_filter::matches` on random schemas (all four types), customers with missing
//! and mistyped values, sequences of upserts, removals, schema and time-zone changes,
//! random filters, instants and zones. Counts, members, `not` complements, pages in
//! customerId order and pages by field must all agree exactly.
//!
//! The default run is a few thousand cases; `PROPTEST_CASES=50000 cargo test -p
//! unico-engine --release --test differential` runs a longer one.

use std::cmp::Ordering;
use std::collections::BTreeMap;

use jiff::tz::TimeZone;
use proptest::prelude::*;
use serde_json::{Value as Json, json};
use unico_core::time::{days_from_civil, format_date, format_datetime, parse_datetime};
use unico_core::{Customer, CustomerId, FieldDef, FieldId, FieldName, FieldType, Schema, Value};
use unico_engine::{AppIndex, SortKey};
use unico_filter::{EvalContext, Filter, FilterInput, matches};

const MS_PER_DAY: i64 = 86_400_000;
const FIELDS: usize = 5;
const ZONES: [&str; 6] = [
    "UTC",
    "Europe/Madrid",
    "America/Sao_Paulo",
    "Asia/Kathmandu",
    "Pacific/Apia",
    "Etc/GMT-14",
];
const STRINGS: [&str; 12] = [
    "ES",
    "es",
    "FR",
    "Ángel",
    "ángel",
    "ÁNGEL",
    "straße",
    "an",
    "Ana",
    "x@gmail.com",
    "X@GMAIL.COM",
    "z",
];
const CID_PREFIXES: [&str; 6] = ["c", "C", "é", "a@x", "Z", "ä"];
const ANCHORS: [&str; 4] = [
    "2024-02-28T23:30:00Z",
    "2024-03-31T00:30:00Z",
    "2019-02-17T02:30:00Z",
    "2023-12-31T23:59:59.999Z",
];

fn cases(default: u32) -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn instant() -> impl Strategy<Value = i64> {
    (
        prop::sample::select(&ANCHORS[..]),
        prop_oneof![
            3 => -400 * MS_PER_DAY..400 * MS_PER_DAY,
            2 => -3 * 3_600_000i64..3 * 3_600_000,
            1 => -30 * 365 * MS_PER_DAY..30 * 365 * MS_PER_DAY,
        ],
    )
        .prop_map(|(a, d)| parse_datetime(a).expect("anchor") + d)
}

/// A value in every type at once; the field's type picks one.
#[derive(Debug, Clone)]
struct Seed {
    text: usize,
    number: f64,
    ms: i64,
}

/// Numbers at the edges of the engine's number forms (fixed-point `i8`/`i16`/`i32` at
/// scales 0–4, else `f64`): a column that receives one of them widens, and as filter
/// bounds they fall between, on and outside the integers a column can hold.
const EDGE_NUMBERS: [f64; 24] = [
    127.0,
    128.0,
    -128.0,
    -129.0,
    32_767.0,
    32_768.0,
    -32_769.0,
    2_147_483_647.0,
    2_147_483_648.0,
    -2_147_483_649.0,
    5_000.5,
    4_999.995,
    12.3456,
    12.34567,
    0.1,
    0.30000000000000004,
    1e-7,
    214_748.364_7,
    214_748.364_8,
    1e15,
    1e300,
    -1e300,
    f64::MAX,
    f64::MIN_POSITIVE,
];

fn number() -> impl Strategy<Value = f64> {
    prop_oneof![
        6 => (-3i32..=40).prop_map(f64::from),
        2 => (-8i32..=8).prop_map(|n| f64::from(n) / 4.0),
        2 => Just(-0.0),
        1 => (-2_000i32..=2_000).prop_map(|n| f64::from(n) / 100.0),
        1 => prop::sample::select(&EDGE_NUMBERS[..]),
        1 => prop::sample::select(&EDGE_NUMBERS[..]).prop_map(|x| -x),
    ]
}

fn seed() -> impl Strategy<Value = Seed> {
    (0..STRINGS.len(), number(), instant()).prop_map(|(text, number, ms)| Seed { text, number, ms })
}

impl Seed {
    fn value(&self, ty: FieldType) -> Value {
        match ty {
            FieldType::String => Value::String(STRINGS[self.text].to_owned()),
            FieldType::Number => Value::Number(self.number),
            FieldType::Datetime => Value::Datetime(self.ms),
            FieldType::Date => Value::Date(self.ms.div_euclid(MS_PER_DAY) as i32),
        }
    }
}

#[derive(Debug, Clone)]
struct CustomerSeed {
    id: i64,
    created_at: i64,
    updated_at: i64,
    /// Per field: a value, and whether to send it with the wrong type.
    values: Vec<Option<(Seed, bool)>>,
}

fn customer_seed() -> impl Strategy<Value = CustomerSeed> {
    (
        1i64..=24,
        instant(),
        instant(),
        prop::collection::vec(
            prop::option::weighted(0.7, (seed(), prop::bool::weighted(0.1))),
            FIELDS,
        ),
    )
        .prop_map(|(id, created_at, updated_at, values)| CustomerSeed {
            id,
            created_at,
            updated_at,
            values,
        })
}

fn field_type() -> impl Strategy<Value = FieldType> {
    prop::sample::select(FieldType::ALL.to_vec())
}

fn schema_seed() -> impl Strategy<Value = Vec<Option<FieldType>>> {
    prop::collection::vec(prop::option::weighted(0.85, field_type()), FIELDS)
}

#[derive(Debug, Clone)]
enum Op {
    Upsert(CustomerSeed),
    Remove(i64),
    SetSchema(Vec<Option<FieldType>>),
    SetTimezone(usize),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        10 => customer_seed().prop_map(Op::Upsert),
        3 => (1i64..=24).prop_map(Op::Remove),
        1 => schema_seed().prop_map(Op::SetSchema),
        1 => (0..ZONES.len()).prop_map(Op::SetTimezone),
    ]
}

/// A condition to be made concrete against whatever schema is current.
#[derive(Debug, Clone)]
struct Cond {
    target: usize,
    op: usize,
    values: Vec<Seed>,
    relative: [Option<(bool, u32, usize)>; 2],
    amount: u32,
    unit: usize,
    within: Option<u32>,
}

fn cond() -> impl Strategy<Value = Cond> {
    let rel = prop::option::weighted(0.4, (any::<bool>(), 0u32..800, 0usize..4));
    (
        any::<usize>(),
        any::<usize>(),
        prop::collection::vec(seed(), 1..4),
        [rel.clone(), rel],
        prop_oneof![3 => 0u32..800, 1 => 0u32..=1_000_000],
        0usize..4,
        prop::option::of(0u32..=366),
    )
        .prop_map(
            |(target, op, values, relative, amount, unit, within)| Cond {
                target,
                op,
                values,
                relative,
                amount,
                unit,
                within,
            },
        )
}

#[derive(Debug, Clone)]
enum Shape {
    Cond(Cond),
    And(Vec<Shape>),
    Or(Vec<Shape>),
    Not(Box<Shape>),
}

fn shape() -> impl Strategy<Value = Shape> {
    cond()
        .prop_map(Shape::Cond)
        .prop_recursive(4, 24, 3, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 1..4).prop_map(Shape::And),
                prop::collection::vec(inner.clone(), 1..4).prop_map(Shape::Or),
                inner.prop_map(|s| Shape::Not(Box::new(s))),
            ]
        })
}

fn ops_for(ty: FieldType) -> &'static [&'static str] {
    match ty {
        FieldType::String => &[
            "exists",
            "not_exists",
            "eq",
            "neq",
            "in",
            "not_in",
            "contains",
            "not_contains",
            "starts_with",
            "ends_with",
        ],
        FieldType::Number => &[
            "exists",
            "not_exists",
            "eq",
            "neq",
            "lt",
            "lte",
            "gt",
            "gte",
            "between",
            "in",
            "not_in",
        ],
        FieldType::Datetime | FieldType::Date => &[
            "exists",
            "not_exists",
            "before",
            "after",
            "between",
            "within_last",
            "not_within_last",
            "on",
            "anniversary",
        ],
    }
}

fn duration(amount: u32, unit: usize, ty: FieldType) -> String {
    let units = if ty == FieldType::Date {
        ['d', 'w', 'd', 'w']
    } else {
        ['m', 'h', 'd', 'w']
    };
    format!("{amount}{}", units[unit % 4])
}

fn scalar(s: &Seed, ty: FieldType) -> Json {
    match ty {
        FieldType::String => json!(STRINGS[s.text]),
        _ => json!(s.number),
    }
}

fn time_bound(c: &Cond, i: usize, ty: FieldType) -> Json {
    let s = &c.values[i % c.values.len()];
    match c.relative[i % 2] {
        Some((ago, amount, unit)) => {
            let d = duration(amount, unit, ty);
            if ago {
                json!({"ago": d})
            } else {
                json!({"from_now": d})
            }
        }
        None if ty == FieldType::Date => json!(format_date(s.ms.div_euclid(MS_PER_DAY) as i32)),
        None => json!(format_datetime(s.ms)),
    }
}

impl Shape {
    fn json(&self, targets: &[(String, FieldType)]) -> Json {
        match self {
            Shape::And(v) => json!({"and": v.iter().map(|s| s.json(targets)).collect::<Vec<_>>()}),
            Shape::Or(v) => json!({"or": v.iter().map(|s| s.json(targets)).collect::<Vec<_>>()}),
            Shape::Not(s) => json!({"not": s.json(targets)}),
            Shape::Cond(c) => {
                let (name, ty) = &targets[c.target % targets.len()];
                let ty = *ty;
                let ops = ops_for(ty);
                let op = ops[c.op % ops.len()];
                let first = &c.values[0];
                let value = match op {
                    "exists" | "not_exists" => None,
                    "in" | "not_in" => Some(Json::Array(
                        c.values.iter().map(|s| scalar(s, ty)).collect(),
                    )),
                    "between" if ty == FieldType::Number => {
                        let lo = first.number;
                        let hi = c.values[c.values.len() - 1].number;
                        Some(json!([lo, hi]))
                    }
                    "between" => Some(json!([time_bound(c, 0, ty), time_bound(c, 1, ty)])),
                    "before" | "after" => Some(time_bound(c, 0, ty)),
                    "within_last" | "not_within_last" => {
                        Some(json!(duration(c.amount, c.unit, ty)))
                    }
                    "on" => Some(json!(format_date(first.ms.div_euclid(MS_PER_DAY) as i32))),
                    "anniversary" => c.within.map(|n| json!({"within_days": n})),
                    "contains" | "not_contains" | "starts_with" | "ends_with" => {
                        // Needles: pool strings and their pieces.
                        let s = STRINGS[first.text];
                        let cut = s
                            .char_indices()
                            .nth(c.amount as usize % 3)
                            .map_or(s.len(), |(i, _)| i);
                        let needle = if c.unit % 2 == 0 || cut == 0 {
                            s
                        } else {
                            &s[..cut]
                        };
                        Some(json!(needle))
                    }
                    _ => Some(scalar(first, ty)),
                };
                let mut j = json!({"field": name, "op": op});
                if let Some(v) = value {
                    j["value"] = v;
                }
                j
            }
        }
    }
}

fn make_schema(types: &[Option<FieldType>]) -> Schema {
    Schema::new(
        types
            .iter()
            .enumerate()
            .filter_map(|(i, t)| {
                t.map(|field_type| FieldDef {
                    id: FieldId(i as u32 + 1),
                    name: FieldName::parse(&format!("f{}", i + 1)).expect("valid"),
                    field_type,
                    created_at: 0,
                    computed: None,
                })
            })
            .collect(),
    )
}

fn customer_id(id: i64) -> String {
    format!("{}{id}", CID_PREFIXES[id as usize % CID_PREFIXES.len()])
}

/// The customer sent to the engine: values for every field, some of the wrong type, some
/// for fields outside the schema.
fn make_customer(seed: &CustomerSeed, schema: &Schema) -> Customer {
    let fields = seed
        .values
        .iter()
        .enumerate()
        .filter_map(|(i, v)| {
            let (s, wrong) = v.as_ref()?;
            let id = FieldId(i as u32 + 1);
            let ty = schema.by_id(id).map_or(FieldType::Number, |d| d.field_type);
            let ty = if *wrong {
                FieldType::ALL[(FieldType::ALL.iter().position(|t| *t == ty).unwrap_or(0) + 1) % 4]
            } else {
                ty
            };
            Some((id, s.value(ty)))
        })
        .collect();
    Customer {
        id: seed.id,
        customer_id: CustomerId::parse(&customer_id(seed.id)).expect("valid"),
        created_at: seed.created_at,
        updated_at: seed.updated_at,
        fields,
    }
}

/// What the engine keeps of a customer: values of schema fields of their field's type.
fn kept(mut c: Customer, schema: &Schema) -> Customer {
    c.fields.retain(|(id, v)| {
        schema
            .by_id(*id)
            .is_some_and(|d| d.field_type == v.field_type())
    });
    c
}

struct Model {
    schema: Schema,
    customers: BTreeMap<i64, Customer>,
    tz: TimeZone,
}

impl Model {
    fn apply(&mut self, op: &Op, index: &mut AppIndex) {
        match op {
            Op::Upsert(seed) => {
                let c = make_customer(seed, &self.schema);
                index.upsert(&c);
                self.customers.insert(c.id, kept(c, &self.schema));
            }
            Op::Remove(id) => {
                index.remove(*id);
                self.customers.remove(id);
            }
            Op::SetSchema(types) => {
                let schema = make_schema(types);
                index.set_schema(&schema);
                for c in self.customers.values_mut() {
                    // A dropped or retyped field loses its values.
                    let old = &self.schema;
                    c.fields.retain(|(id, _)| {
                        old.by_id(*id).map(|d| d.field_type)
                            == schema.by_id(*id).map(|d| d.field_type)
                    });
                }
                self.schema = schema;
            }
            Op::SetTimezone(z) => {
                self.tz = TimeZone::get(ZONES[*z]).expect("zone");
                index.set_timezone(self.tz.clone());
            }
        }
    }

    fn targets(&self) -> Vec<(String, FieldType)> {
        let mut t: Vec<(String, FieldType)> = self
            .schema
            .fields()
            .iter()
            .map(|d| (d.name.as_str().to_owned(), d.field_type))
            .collect();
        t.push(("customerId".into(), FieldType::String));
        t.push(("created_at".into(), FieldType::Datetime));
        t.push(("updated_at".into(), FieldType::Datetime));
        t
    }
}

fn sort_value(c: &Customer, key: SortKey) -> Option<Value> {
    match key {
        SortKey::CustomerId => Some(Value::String(c.customer_id.as_str().to_owned())),
        SortKey::CreatedAt => Some(Value::Datetime(c.created_at)),
        SortKey::UpdatedAt => Some(Value::Datetime(c.updated_at)),
        SortKey::Field(id) => c.get(id).cloned(),
    }
}

fn cmp_values(a: &Value, b: &Value) -> Ordering {
    match (a, b) {
        (Value::String(x), Value::String(y)) => x.as_bytes().cmp(y.as_bytes()),
        (Value::Number(x), Value::Number(y)) => (x + 0.0).total_cmp(&(y + 0.0)),
        (Value::Datetime(x), Value::Datetime(y)) => x.cmp(y),
        (Value::Date(x), Value::Date(y)) => x.cmp(y),
        _ => Ordering::Equal,
    }
}

/// The documented listing order, written plainly.
fn reference_order(a: &Customer, b: &Customer, key: SortKey, descending: bool) -> Ordering {
    match (sort_value(a, key), sort_value(b, key)) {
        (Some(_), None) => Ordering::Less,
        (None, Some(_)) => Ordering::Greater,
        (x, y) => {
            let v = match (x, y) {
                (Some(x), Some(y)) => cmp_values(&x, &y),
                _ => Ordering::Equal,
            };
            let o = v.then_with(|| {
                a.customer_id
                    .as_str()
                    .as_bytes()
                    .cmp(b.customer_id.as_str().as_bytes())
                    .then(a.id.cmp(&b.id))
            });
            if descending { o.reverse() } else { o }
        }
    }
}

fn check_filter(
    model: &Model,
    index: &AppIndex,
    shape: &Shape,
    now: i64,
    zone: Option<usize>,
    paging: (usize, bool, usize),
) -> Result<(), TestCaseError> {
    let json = shape.json(&model.targets());
    let filter = Filter::parse(FilterInput::Json(&json), &model.schema)
        .map_err(|e| TestCaseError::fail(format!("generated filter {json} is invalid: {e}")))?;
    let tz = zone.map_or_else(
        || model.tz.clone(),
        |z| TimeZone::get(ZONES[z]).expect("zone"),
    );
    let ctx = EvalContext::new(now, tz);
    let mut expected: Vec<&Customer> = model
        .customers
        .values()
        .filter(|c| matches(&filter, c, &ctx))
        .collect();
    prop_assert_eq!(
        index.count(&filter, &ctx),
        expected.len() as u64,
        "count of {}",
        filter
    );
    if let Some(n) = index.count_if_cheap(&filter, &ctx) {
        prop_assert_eq!(n, expected.len() as u64, "cheap count of {}", filter);
    }
    let members = index.members(&filter, &ctx);
    prop_assert_eq!(members.len(), expected.len() as u64);

    // customerId order, whole and paged.
    expected.sort_by(|a, b| reference_order(a, b, SortKey::CustomerId, false));
    let ids: Vec<i64> = expected.iter().map(|c| c.id).collect();
    prop_assert_eq!(
        &index.page_by_customer_id(&members, None, false, usize::MAX),
        &ids,
        "{}",
        filter
    );
    let mut reversed = ids.clone();
    reversed.reverse();
    prop_assert_eq!(
        &index.page_by_customer_id(&members, None, true, usize::MAX),
        &reversed
    );
    let (pick, descending, limit) = paging;
    let after = customer_id(pick as i64 % 24 + 1);
    let want: Vec<i64> = expected
        .iter()
        .filter(|c| {
            let o = c.customer_id.as_str().as_bytes().cmp(after.as_bytes());
            if descending {
                o == Ordering::Less
            } else {
                o == Ordering::Greater
            }
        })
        .map(|c| c.id)
        .collect();
    let want: Vec<i64> = if descending {
        want.into_iter().rev().take(limit).collect()
    } else {
        want.into_iter().take(limit).collect()
    };
    prop_assert_eq!(
        index.page_by_customer_id(&members, Some(&after), descending, limit),
        want.clone()
    );
    // The row-at-a-time walk gives the same pages, whether it fills the page or gives up
    // and evaluates the whole filter.
    let mut short_walk = index.clone();
    short_walk.set_page_walk(3);
    for walker in [index, &short_walk] {
        prop_assert_eq!(
            walker.page_matching_by_customer_id(&filter, &ctx, Some(&after), descending, limit),
            want.clone(),
            "walk of {}",
            filter
        );
        prop_assert_eq!(
            walker.page_matching_by_customer_id(&filter, &ctx, None, false, limit),
            ids.iter().copied().take(limit).collect::<Vec<_>>()
        );
    }

    // Field order, whole and after a cursor.
    let mut keys = [
        SortKey::CreatedAt,
        SortKey::UpdatedAt,
        SortKey::Field(FieldId(1 + pick as u32 % 6)),
    ];
    keys.rotate_left(pick % 3);
    let key = keys[0];
    expected.sort_by(|a, b| reference_order(a, b, key, descending));
    let ids: Vec<i64> = expected.iter().map(|c| c.id).collect();
    prop_assert_eq!(
        &index.page_by_field(&members, key, None, descending, usize::MAX),
        &ids,
        "{:?}",
        key
    );
    let got = index.page_by_field(&members, key, None, descending, limit);
    prop_assert_eq!(&got[..], &ids[..limit.min(ids.len())]);
    if let Some(&cursor_id) = ids.get(pick % ids.len().max(1)) {
        let position = index
            .sort_position(cursor_id, key)
            .expect("a member has a position");
        let at = ids.iter().position(|&i| i == cursor_id).unwrap_or(0);
        let want: Vec<i64> = ids[at + 1..].iter().copied().take(limit).collect();
        prop_assert_eq!(
            index.page_by_field(&members, key, Some(&position), descending, limit),
            want
        );
    }

    // `not` is the exact complement.
    let not_json = json!({"not": json});
    let negated = Filter::parse(FilterInput::Json(&not_json), &model.schema).expect("not parses");
    prop_assert_eq!(
        index.count(&negated, &ctx),
        model.customers.len() as u64 - expected.len() as u64
    );
    Ok(())
}

fn check_state(model: &Model, index: &AppIndex) -> Result<(), TestCaseError> {
    prop_assert_eq!(index.len(), model.customers.len());
    for i in 1..=FIELDS as u32 + 1 {
        let want = model
            .customers
            .values()
            .filter(|c| c.get(FieldId(i)).is_some())
            .count();
        prop_assert_eq!(
            index.field_value_count(FieldId(i)),
            want as u64,
            "field {}",
            i
        );
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(1500), ..ProptestConfig::default() })]

    #[test]
    fn the_engine_agrees_with_the_reference(
        types in schema_seed(),
        zone in 0..ZONES.len(),
        ops in prop::collection::vec(op(), 0..40),
        filters in prop::collection::vec(
            (shape(), instant(), prop::option::weighted(0.3, 0..ZONES.len()), (0usize..100, any::<bool>(), 0usize..6)),
            1..4,
        ),
    ) {
        let schema = make_schema(&types);
        let tz = TimeZone::get(ZONES[zone]).expect("zone");
        let mut index = AppIndex::new(&schema);
        index.set_timezone(tz.clone());
        let mut model = Model { schema, customers: BTreeMap::new(), tz };
        // Half of the cases go through a snapshot halfway: the restored index must agree
        // and keep taking writes.
        let cut = if zone % 2 == 0 { ops.len() / 2 } else { ops.len() };
        for op in &ops[..cut] {
            model.apply(op, &mut index);
        }
        if cut < ops.len() {
            let mut bytes = Vec::new();
            index.write_snapshot(b"stamp", &mut bytes).expect("written");
            index = AppIndex::read_snapshot(
                &mut &bytes[..],
                bytes.len() as u64,
                b"stamp",
                index.schema(),
                model.tz.clone(),
            )
            .expect("a snapshot reads back");
            for op in &ops[cut..] {
                model.apply(op, &mut index);
            }
        }
        check_state(&model, &index)?;
        for (shape, now, zone, paging) in &filters {
            check_filter(&model, &index, shape, *now, *zone, *paging)?;
        }
    }
}

/// A small deterministic generator, for tests that need thousands of customers.
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

/// A customer's values for [`FIELDS`] fields, 70 % present, numbers spread as `spread` says.
fn random_values(
    rng: &mut Rng,
    spread: &dyn Fn(u64) -> f64,
    anchor: i64,
) -> Vec<Option<(Seed, bool)>> {
    (0..FIELDS)
        .map(|_| {
            (rng.below(10) < 7).then(|| {
                (
                    Seed {
                        text: rng.below(STRINGS.len() as u64) as usize,
                        number: spread(rng.below(40)),
                        ms: anchor + (rng.below(800) as i64 - 400) * MS_PER_DAY / 3,
                    },
                    false,
                )
            })
        })
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(1500) / 100 + 4, ..ProptestConfig::default() })]

    /// Thousands of customers across several blocks (tens of thousands in some cases),
    /// with threads forced on, bulk loads into an empty and into a loaded index, removals,
    /// slot reuse and updates.
    #[test]
    fn many_customers_over_blocks_and_threads_agree(
        rng_seed in 1u64..u64::MAX,
        types in schema_seed(),
        filters in prop::collection::vec((shape(), instant(), (0usize..100, any::<bool>(), 1usize..60)), 4),
    ) {
        let schema = make_schema(&types);
        let mut index = AppIndex::new(&schema);
        index.set_parallelism(3, 64);
        let mut model = Model { schema, customers: BTreeMap::new(), tz: TimeZone::UTC };
        let mut rng = Rng(rng_seed);
        let anchor = parse_datetime(ANCHORS[0]).expect("anchor");
        let base = i64::from(days_from_civil(2020, 1, 1)) * MS_PER_DAY;
        // The numbers of a case share one form: small integers, cents, integers past
        // `i16`, or values only `f64` holds.
        let spread = |n: u64| match rng_seed % 4 {
            0 => n as f64,
            1 => n as f64 / 100.0 - 0.15,
            2 => n as f64 * 40_000.0 - 1.0,
            _ => n as f64 * 1e10 + 0.5,
        };
        // A quarter of the cases load more customers than 65 536, so that the customerId
        // dictionary's codes take four bytes and updates write small codes into it.
        let n: i64 = if (rng_seed >> 8) % 4 == 0 { 70_000 } else { 9000 };
        // Loaded in two batches: the first into the empty index; the second appends new
        // customers to it and, among them, rewrites 300 loaded ones, some twice (the
        // later state wins).
        let mut batch = Vec::new();
        let mut first = Vec::new();
        for id in 1..=n {
            let values = random_values(&mut rng, &spread, anchor);
            let seed = CustomerSeed { id, created_at: base + id * 1000, updated_at: anchor, values };
            let c = make_customer(&seed, &model.schema);
            model.customers.insert(id, kept(c.clone(), &model.schema));
            if id <= n / 2 { first.push(c) } else { batch.push(c) }
            if id > n / 2 && id % 30 == 0 {
                for _ in 0..2 {
                    let old = rng.below((n / 2) as u64) as i64 + 1;
                    let values = random_values(&mut rng, &spread, anchor);
                    let seed = CustomerSeed { id: old, created_at: base + old * 1000, updated_at: anchor + 1, values };
                    let c = make_customer(&seed, &model.schema);
                    model.customers.insert(old, kept(c.clone(), &model.schema));
                    batch.push(c);
                }
            }
        }
        index.upsert_many(&first);
        index.upsert_many(&batch);
        for _ in 0..2000 {
            let id = rng.below(n as u64) as i64 + 1;
            model.apply(&Op::Remove(id), &mut index);
        }
        // New customers appended in bulk after removals left free slots, with updates of
        // remaining ones and re-creations of removed ones in the same batch.
        let mut batch = Vec::new();
        for k in 0..1500i64 {
            let id = if k % 5 == 0 { rng.below(n as u64) as i64 + 1 } else { n + 10_000 + k };
            let values = random_values(&mut rng, &spread, anchor);
            let seed = CustomerSeed { id, created_at: base + id * 1000, updated_at: anchor + 2, values };
            let c = make_customer(&seed, &model.schema);
            model.customers.insert(id, kept(c.clone(), &model.schema));
            batch.push(c);
        }
        index.upsert_many(&batch);
        for id in n + 1..=n + 500 {
            let seed = CustomerSeed { id, created_at: base, updated_at: anchor, values: vec![None; FIELDS] };
            model.apply(&Op::Upsert(seed), &mut index);
        }
        // Updates of customers loaded first (whose customerIds hold the smallest codes of
        // a dictionary now wider than a byte) and of any other, new values each time.
        for k in 0..1500u64 {
            let id = if k % 3 == 0 { rng.below(300) as i64 + 1 } else { rng.below(n as u64 + 500) as i64 + 1 };
            let values = random_values(&mut rng, &spread, anchor);
            let seed = CustomerSeed { id, created_at: base + id * 1000, updated_at: anchor + k as i64, values };
            model.apply(&Op::Upsert(seed), &mut index);
        }
        check_state(&model, &index)?;
        for (shape, now, paging) in &filters {
            check_filter(&model, &index, shape, *now, None, *paging)?;
        }
    }
}
