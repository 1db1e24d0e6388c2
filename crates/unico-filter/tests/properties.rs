//! Property tests: both canonical forms parse back to the same filter, the resolved form
//! agrees with the reference evaluator (on customers with events too), `not` and
//! `did_not` are exact complements, and no input makes the text parser panic.

mod common;

use common::*;
use jiff::tz::TimeZone;
use proptest::prelude::*;
use serde_json::{Value as Json, json};
use unico_core::time::{days_from_civil, format_date, format_datetime};
use unico_core::{Channel, Customer, CustomerId, Event, FieldId, FieldType, PropertyType, Value};
use unico_filter::{
    EvalContext, Facts, Filter, FilterInput, check, matches, matches_with, matches_with_events,
    name_literal, parse_json, parse_text, resolve, string_literal,
};

const MS_PER_DAY: i64 = 86_400_000;

/// Instants the generated values cluster around, so that comparisons hit their edges:
/// DST changes, a leap day, a year end.
const ANCHORS: [&str; 5] = [
    "2024-02-28T23:30:00Z",
    "2024-03-31T00:30:00Z",
    "2019-02-17T02:30:00Z",
    "2023-12-31T23:59:59.999Z",
    "2024-10-27T01:00:00Z",
];

const ZONES: [&str; 6] = [
    "UTC",
    "Europe/Madrid",
    "America/Sao_Paulo",
    "America/New_York",
    "Asia/Kathmandu",
    "Pacific/Apia",
];

fn anchor() -> impl Strategy<Value = i64> {
    prop::sample::select(&ANCHORS[..]).prop_map(ms)
}

/// An instant near an anchor, or anywhere in the supported years.
fn instant() -> impl Strategy<Value = i64> {
    let min = i64::from(days_from_civil(1, 1, 1)) * MS_PER_DAY;
    let max = i64::from(days_from_civil(10_000, 1, 1)) * MS_PER_DAY - 1;
    prop_oneof![
        4 => (anchor(), -400 * MS_PER_DAY..400 * MS_PER_DAY).prop_map(|(a, d)| a + d),
        2 => (anchor(), -3i64..=3).prop_map(|(a, h)| a + h * 3_600_000),
        1 => min..=max,
    ]
}

fn date() -> impl Strategy<Value = i32> {
    instant().prop_map(|ms| ms.div_euclid(MS_PER_DAY) as i32)
}

fn string_value() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => prop::sample::select(vec!["ES", "es", "FR", "Ángel", "straße", "a\"b", "x`y", "tab\there"])
            .prop_map(str::to_owned),
        1 => "[a-zA-Z0-9 \"\\\\`\n\té😀\u{7}ß]{1,12}",
    ]
}

fn number() -> impl Strategy<Value = f64> {
    prop_oneof![
        3 => (-5i32..=40).prop_map(f64::from),
        1 => (-40i32..=40).prop_map(|n| f64::from(n) / 4.0),
        1 => any::<f64>().prop_filter("finite", |n| n.is_finite()),
    ]
}

fn duration(date_only: bool) -> impl Strategy<Value = String> {
    let units: &[char] = if date_only {
        &['d', 'w']
    } else {
        &['m', 'h', 'd', 'w']
    };
    (
        prop_oneof![4 => 0u32..40, 1 => 0u32..=1_000_000],
        prop::sample::select(units.to_vec()),
    )
        .prop_map(|(n, u)| format!("{n}{u}"))
}

/// A JSON value for a time bound: absolute or relative.
fn time_bound(ty: FieldType) -> BoxedStrategy<Json> {
    let date_only = ty == FieldType::Date;
    let relative = (duration(date_only), any::<bool>()).prop_map(|(d, ago)| {
        if ago {
            json!({"ago": d})
        } else {
            json!({"from_now": d})
        }
    });
    if date_only {
        prop_oneof![date().prop_map(|d| json!(format_date(d))), relative].boxed()
    } else {
        prop_oneof![
            instant().prop_map(|ms| json!(format_datetime(ms))),
            instant().prop_map(|ms| json!(ms)),
            relative,
        ]
        .boxed()
    }
}

fn scalar(ty: FieldType) -> BoxedStrategy<Json> {
    match ty {
        FieldType::String => string_value().prop_map(Json::from).boxed(),
        _ => number().prop_map(|n| json!(n)).boxed(),
    }
}

/// A field, event or subscription condition valid for the test schema, in the JSON form.
fn condition() -> BoxedStrategy<Json> {
    prop_oneof![
        3 => field_condition(),
        2 => event_condition(),
        1 => subscription_condition(),
    ]
    .boxed()
}

/// Channels of generated subscription conditions and customers: the default ones, the
/// test schema's declared ones (`in-app` and `on` need backticks), and a case variant.
const SUBSCRIPTION_CHANNELS: [&str; 7] =
    ["email", "sms", "push", "whatsapp", "in-app", "on", "EMAIL"];

fn subscription_condition() -> BoxedStrategy<Json> {
    prop::sample::select(&SUBSCRIPTION_CHANNELS[..])
        .prop_map(|c| json!({"subscribed": c}))
        .boxed()
}

/// The channels a customer is subscribed to (a subset of the accepted ones).
fn subscriptions_strategy() -> impl Strategy<Value = Vec<Channel>> {
    prop::sample::subsequence(&SUBSCRIPTION_CHANNELS[..6], 0..=6).prop_map(|cs| {
        cs.into_iter()
            .map(|c| Channel::parse(c).expect("valid channel"))
            .collect()
    })
}

// ---- event conditions and events ----

/// Channels of generated conditions and events (`on` needs backticks in the text form).
const CHANNELS: [&str; 5] = ["web", "pos", "app", "email", "on"];

/// Properties of generated conditions and events: declared on some event types (see
/// `common::EVENT_TYPES`), undeclared on others.
const PROPERTIES: [&str; 7] = [
    "amount", "currency", "store", "sku", "x", "opens", "subject",
];

fn declared(event: &str, property: &str) -> Option<PropertyType> {
    EVENT_TYPES
        .iter()
        .find(|(code, _)| *code == event)
        .and_then(|(_, props)| props.iter().find(|(n, _)| *n == property))
        .map(|(_, t)| *t)
}

/// A short duration, so that windows and event times often meet at their edges.
fn event_duration() -> impl Strategy<Value = String> {
    (
        prop_oneof![6 => 0u32..8, 1 => 0u32..=1_000_000],
        prop::sample::select(vec!['m', 'h', 'd', 'w']),
    )
        .prop_map(|(n, u)| format!("{n}{u}"))
}

fn event_time_bound() -> BoxedStrategy<Json> {
    prop_oneof![
        2 => (event_duration(), any::<bool>()).prop_map(|(d, ago)| {
            if ago { json!({"ago": d}) } else { json!({"from_now": d}) }
        }),
        1 => time_bound(FieldType::Datetime),
    ]
    .boxed()
}

/// A value for a test on a property of type `ty`.
fn property_value(ty: PropertyType) -> BoxedStrategy<Json> {
    match ty {
        PropertyType::String => prop::sample::select(vec!["EUR", "eur", "Madrid", "x", "ES"])
            .prop_map(Json::from)
            .boxed(),
        PropertyType::Number => prop_oneof![
            3 => (-2i32..=6).prop_map(|n| json!(n)),
            1 => (-8i32..=24).prop_map(|n| json!(f64::from(n) / 4.0)),
            // Tenths are inexact in binary: their sums show whether sums are exact.
            2 => (-5i32..=12).prop_map(|n| json!(f64::from(n) / 10.0)),
            1 => number().prop_map(|n| json!(n)),
        ]
        .boxed(),
    }
}

/// `{"op": ..., "value": ...}` of a string or number test; `exists` only if `exists`.
fn property_test(ty: PropertyType, exists: bool) -> BoxedStrategy<Json> {
    let mut ops = match ty {
        PropertyType::String => vec![
            "eq",
            "neq",
            "in",
            "not_in",
            "contains",
            "not_contains",
            "starts_with",
            "ends_with",
        ],
        PropertyType::Number => {
            vec![
                "eq", "neq", "in", "not_in", "lt", "lte", "gt", "gte", "between",
            ]
        }
    };
    if exists {
        ops.extend(["exists", "not_exists"]);
    }
    prop::sample::select(ops)
        .prop_flat_map(move |op| {
            let value: BoxedStrategy<Option<Json>> = match op {
                "exists" | "not_exists" => Just(None).boxed(),
                "in" | "not_in" => prop::collection::vec(property_value(ty), 1..4)
                    .prop_map(|v| Some(Json::Array(v)))
                    .boxed(),
                "between" => (property_value(ty), property_value(ty))
                    .prop_map(|(a, b)| Some(json!([a, b])))
                    .boxed(),
                _ => property_value(ty).prop_map(Some).boxed(),
            };
            (Just(op), value)
        })
        .prop_map(|(op, value)| {
            let mut t = json!({"op": op});
            if let Some(v) = value {
                t["value"] = v;
            }
            t
        })
        .boxed()
}

/// A property condition on events of type `event`: of the declared type, else of either
/// type (and then not `exists`, which needs a declared type).
fn where_condition(event: &'static str) -> BoxedStrategy<Json> {
    prop::sample::select(&PROPERTIES[..])
        .prop_flat_map(move |property| {
            let test = match declared(event, property) {
                Some(ty) => property_test(ty, true),
                None => prop_oneof![
                    property_test(PropertyType::String, false),
                    property_test(PropertyType::Number, false),
                ]
                .boxed(),
            };
            (Just(property), test)
        })
        .prop_map(|(property, mut test)| {
            test["field"] = json!(property);
            test
        })
        .boxed()
}

/// A datetime test (`op` and `value`) of a first or last time.
fn time_test() -> BoxedStrategy<Json> {
    prop_oneof![
        (
            prop::sample::select(vec!["before", "after"]),
            event_time_bound()
        )
            .prop_map(|(op, v)| json!({"op": op, "value": v})),
        (event_time_bound(), event_time_bound())
            .prop_map(|(a, b)| json!({"op": "between", "value": [a, b]})),
        (
            prop::sample::select(vec!["within_last", "not_within_last"]),
            event_duration()
        )
            .prop_map(|(op, d)| json!({"op": op, "value": d})),
        date().prop_map(|d| json!({"op": "on", "value": format_date(d)})),
    ]
    .boxed()
}

/// A number test of an aggregate.
fn aggregate_test() -> BoxedStrategy<Json> {
    property_test(PropertyType::Number, false)
}

/// An event condition valid for the test schema, in the JSON form.
fn event_condition() -> BoxedStrategy<Json> {
    let codes: Vec<&'static str> = EVENT_TYPES.iter().map(|(code, _)| *code).collect();
    (
        prop_oneof![3 => Just("purchase"), 1 => prop::sample::select(codes)],
        prop::option::weighted(0.3, prop::sample::select(&CHANNELS[..])),
        prop_oneof![
            2 => Just(None),
            2 => event_duration().prop_map(|d| Some(json!({"within_last": d}))),
            1 => (event_time_bound(), event_time_bound())
                .prop_map(|(a, b)| Some(json!({"between": [a, b]}))),
        ],
        0usize..4,
        0usize..7,
    )
        .prop_flat_map(|(event, channel, window, wheres, kind)| {
            let measure: BoxedStrategy<Json> = match kind {
                0 | 1 => (
                    prop::option::of((prop::sample::select(vec!["gte", "lte", "eq"]), 0u32..4)),
                    Just(if kind == 0 { "did" } else { "did_not" }),
                )
                    .prop_map(|(count, op)| {
                        let mut m = json!({"op": op});
                        if let Some((bound, n)) = count {
                            m["count"] = json!({ bound: n });
                        }
                        m
                    })
                    .boxed(),
                2 => aggregate_test()
                    .prop_map(|mut t| {
                        t["agg"] = json!("count");
                        t
                    })
                    .boxed(),
                3 | 4 => (
                    prop::sample::select(vec!["sum", "avg", "min", "max"]),
                    // Never a property declared as a string.
                    prop::sample::select(vec!["amount", "opens", "x"]),
                    aggregate_test(),
                )
                    .prop_map(|(agg, property, mut t)| {
                        t["agg"] = json!(agg);
                        t["property"] = json!(property);
                        t
                    })
                    .boxed(),
                _ => (prop::sample::select(vec!["first", "last"]), time_test())
                    .prop_map(|(which, mut t)| {
                        t["agg"] = json!(which);
                        t
                    })
                    .boxed(),
            };
            let time = kind >= 5;
            (
                Just(event),
                Just(channel),
                // First and last take no window.
                Just(if time { None } else { window }),
                prop::collection::vec(where_condition(event), wheres),
                measure,
            )
        })
        .prop_map(|(event, channel, window, wheres, measure)| {
            let mut e = measure;
            e["event"] = json!(event);
            if let Some(c) = channel {
                e["channel"] = json!(c);
            }
            if let Some(Json::Object(w)) = window {
                for (k, v) in w {
                    e[k] = v;
                }
            }
            match wheres.len() {
                0 => {}
                1 => e["where"] = wheres[0].clone(),
                _ => e["where"] = Json::Array(wheres),
            }
            e
        })
        .boxed()
}

/// A property value an event holds: usually of the type filters expect of it, sometimes
/// of the other one, or something filters never compare.
fn event_property_value() -> BoxedStrategy<Json> {
    prop_oneof![
        4 => property_value(PropertyType::Number),
        3 => property_value(PropertyType::String),
        1 => prop_oneof![Just(Json::Null), Just(json!(true)), Just(json!([1])), Just(json!({"a": 1}))],
    ]
    .boxed()
}

/// An event time near `now`: at a whole number of units before or after it, give or take
/// a millisecond, so that windows meet their edges; sometimes anywhere near an anchor.
fn event_offset() -> impl Strategy<Value = i64> {
    let unit = prop::sample::select(vec![60_000i64, 3_600_000, MS_PER_DAY, 7 * MS_PER_DAY]);
    prop_oneof![
        6 => (0i64..8, unit, -1i64..=1).prop_map(|(n, u, d)| -(n * u) + d),
        1 => (0i64..3, prop::sample::select(vec![60_000i64, 3_600_000, MS_PER_DAY]), -1i64..=1)
            .prop_map(|(n, u, d)| n * u + d),
        1 => -400 * MS_PER_DAY..MS_PER_DAY,
    ]
}

/// Events of one customer, at offsets from now.
fn events_strategy() -> impl Strategy<Value = Vec<(i64, Event)>> {
    let codes: Vec<&'static str> = EVENT_TYPES
        .iter()
        .map(|(code, _)| *code)
        .chain(["unregistered"])
        .collect();
    let one = (
        prop_oneof![3 => Just("purchase"), 2 => prop::sample::select(codes)],
        prop::sample::select(&CHANNELS[..]),
        event_offset(),
        prop::collection::vec(
            (
                prop::sample::select(&PROPERTIES[..]),
                event_property_value(),
            ),
            0..4,
        ),
    )
        .prop_map(|(code, channel, offset, props)| {
            let props: serde_json::Map<String, Json> =
                props.into_iter().map(|(k, v)| (k.to_owned(), v)).collect();
            (offset, event(code, channel, 0, Json::Object(props)))
        });
    prop::collection::vec(one, 0..8)
}

/// The events with their offsets taken from `now`.
fn at(now: i64, events: &[(i64, Event)]) -> Vec<Event> {
    events
        .iter()
        .map(|(offset, e)| {
            let mut e = e.clone();
            e.timestamp = now.saturating_add(*offset);
            e
        })
        .collect()
}

/// A field condition valid for the test schema, in the JSON form.
fn field_condition() -> BoxedStrategy<Json> {
    let mut targets: Vec<(String, FieldType)> = FIELDS
        .iter()
        .map(|&(_, name, ty)| (name.to_owned(), ty))
        .collect();
    targets.push(("customerId".into(), FieldType::String));
    targets.push(("created_at".into(), FieldType::Datetime));
    targets.push(("updated_at".into(), FieldType::Datetime));
    prop::sample::select(targets)
        .prop_flat_map(|(name, ty)| {
            let ops: Vec<&'static str> = match ty {
                FieldType::String => vec![
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
                FieldType::Number => vec![
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
                FieldType::Datetime | FieldType::Date => vec![
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
            };
            (Just(name), Just(ty), prop::sample::select(ops))
        })
        .prop_flat_map(|(name, ty, op)| {
            let value: BoxedStrategy<Option<Json>> = match op {
                "exists" | "not_exists" => Just(None).boxed(),
                "in" | "not_in" => prop::collection::vec(scalar(ty), 1..5)
                    .prop_map(|v| Some(Json::Array(v)))
                    .boxed(),
                "between" if ty == FieldType::Number => (number(), number())
                    .prop_map(|(a, b)| Some(json!([a, b])))
                    .boxed(),
                "between" => (time_bound(ty), time_bound(ty))
                    .prop_map(|(a, b)| Some(json!([a, b])))
                    .boxed(),
                "before" | "after" => time_bound(ty).prop_map(Some).boxed(),
                "within_last" | "not_within_last" => duration(ty == FieldType::Date)
                    .prop_map(|d| Some(json!(d)))
                    .boxed(),
                "on" => date().prop_map(|d| Some(json!(format_date(d)))).boxed(),
                "anniversary" => prop_oneof![
                    Just(None),
                    (0u32..=366).prop_map(|n| Some(json!({"within_days": n}))),
                ]
                .boxed(),
                _ => scalar(ty).prop_map(Some).boxed(),
            };
            (Just(name), Just(op), value)
        })
        .prop_map(|(name, op, value)| {
            let mut c = json!({"field": name, "op": op});
            if let Some(v) = value {
                c["value"] = v;
            }
            c
        })
        .boxed()
}

fn filter_json() -> impl Strategy<Value = Json> {
    condition().prop_recursive(5, 48, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 1..4).prop_map(|v| json!({"and": v})),
            prop::collection::vec(inner.clone(), 1..4).prop_map(|v| json!({"or": v})),
            inner.prop_map(|v| json!({"not": v})),
        ]
    })
}

fn customer_strategy() -> impl Strategy<Value = Customer> {
    let values = FIELDS
        .iter()
        .map(|&(id, _, ty)| {
            let value: BoxedStrategy<Value> = match ty {
                FieldType::String => string_value().prop_map(Value::String).boxed(),
                FieldType::Number => number().prop_map(Value::Number).boxed(),
                FieldType::Datetime => instant().prop_map(Value::Datetime).boxed(),
                FieldType::Date => date().prop_map(Value::Date).boxed(),
            };
            prop::option::weighted(0.8, value).prop_map(move |v| v.map(|v| (FieldId(id), v)))
        })
        .collect::<Vec<_>>();
    (
        values,
        prop::sample::select(vec!["ES", "ana@example.com", "Ángel"]),
        instant(),
        instant(),
    )
        .prop_map(|(values, id, created_at, updated_at)| Customer {
            id: 1,
            customer_id: CustomerId::parse(id).expect("valid"),
            created_at,
            updated_at,
            fields: values.into_iter().flatten().collect(),
        })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 400, ..ProptestConfig::default() })]

    #[test]
    fn both_canonical_forms_parse_back_to_the_same_filter(json in filter_json()) {
        let schema = schema();
        let filter = check(&parse_json(&json).expect("generated JSON parses"), &schema)
            .expect("generated JSON checks");

        let text = filter.to_text();
        let from_text = parse_text(&text)
            .and_then(|ast| check(&ast, &schema))
            .map_err(|e| TestCaseError::fail(format!("{text:?}: {e}")))?;
        prop_assert_eq!(&from_text, &filter, "text {}", text);
        prop_assert_eq!(from_text.to_text(), text.clone());

        let canonical = filter.to_json();
        // Through bytes too, as a saved segment would be.
        let reread: Json = serde_json::from_str(&canonical.to_string()).expect("valid JSON");
        let from_json = check(&parse_json(&reread).expect("canonical JSON parses"), &schema)
            .expect("canonical JSON checks");
        prop_assert_eq!(&from_json, &filter);
        prop_assert_eq!(from_json.to_json(), canonical);

        // And the convenience entry point, with the text form inside a JSON string.
        let via_string = Filter::parse(FilterInput::Json(&Json::String(text)), &schema)
            .expect("text in a JSON string parses");
        prop_assert_eq!(via_string, filter);
    }

    #[test]
    fn a_string_literal_reads_back_as_its_text(text in "\\PC{1,12}|[\"\\\\\t\n\r\u{0}\u{7f}a]{1,8}") {
        let filter = Filter::parse(
            FilterInput::Text(&format!("customerId = {}", string_literal(&text))),
            &schema(),
        )
        .map_err(|e| TestCaseError::fail(format!("{text:?}: {e}")))?;
        prop_assert_eq!(
            filter.to_json(),
            json!({"field": "customerId", "op": "eq", "value": text})
        );
    }

    #[test]
    fn a_name_literal_reads_back_as_its_field(
        name in "[a-z_][a-z0-9_]{0,8}|\\PC{1,10}|(and|or|not|in|exists)|[ `a]{1,6}"
    ) {
        // Any valid field name, a keyword or one needing backticks, names its own field.
        prop_assume!(unico_core::FieldName::parse(&name).is_ok());
        let schema = unico_core::Schema::new(vec![unico_core::FieldDef {
            id: FieldId(1),
            name: unico_core::FieldName::parse(&name).unwrap(),
            field_type: FieldType::String,
            created_at: 0,
            computed: None,
        }]);
        let filter = Filter::parse(
            FilterInput::Text(&format!("{} exists", name_literal(&name))),
            &schema,
        )
        .map_err(|e| TestCaseError::fail(format!("{name:?}: {e}")))?;
        prop_assert_eq!(filter.to_json(), json!({"field": name, "op": "exists"}));
    }

    #[test]
    fn resolved_form_agrees_with_the_reference_and_not_is_the_complement(
        json in filter_json(),
        customers in prop::collection::vec(
            (customer_strategy(), events_strategy(), subscriptions_strategy()),
            1..6,
        ),
        now in instant(),
        zone in prop::sample::select(&ZONES[..]),
    ) {
        let schema = schema();
        let filter = check(&parse_json(&json).expect("parses"), &schema).expect("checks");
        let negated = check(&parse_json(&json!({"not": json})).expect("parses"), &schema)
            .expect("checks");
        let ctx = EvalContext::new(now, TimeZone::get(zone).expect("known zone"));
        let resolved = resolve(&filter, &ctx);
        for (c, events, subscribed) in &customers {
            let events = at(now, events);
            let facts = Facts { events: &events, subscribed };
            let expected = matches_with(&filter, c, &facts, &ctx);
            prop_assert_eq!(
                resolved.matches_with(c, &facts),
                expected,
                "{} on {:?} with {:?} subscribed to {:?}", filter, c, events, subscribed
            );
            prop_assert_eq!(matches_with(&negated, c, &facts, &ctx), !expected);
            // Without subscriptions, the events-only entry points see none; without
            // events either, both see nothing.
            let events_only = Facts::events(&events);
            prop_assert_eq!(
                matches_with_events(&filter, c, &events, &ctx),
                matches_with(&filter, c, &events_only, &ctx)
            );
            prop_assert_eq!(
                resolved.matches_with_events(c, &events),
                matches_with_events(&filter, c, &events, &ctx)
            );
            prop_assert_eq!(matches(&filter, c, &ctx), matches_with_events(&filter, c, &[], &ctx));
            prop_assert_eq!(resolved.matches(c), matches(&filter, c, &ctx));
        }
    }

    /// One event condition at a time, on many sets of events near now: the resolved form
    /// agrees with the reference at the edges of windows (an event exactly at now − d, at
    /// now, a millisecond out), on empty and partly typed aggregates, and `did_not` is
    /// the exact complement of `did`.
    #[test]
    fn event_conditions_agree_and_did_not_is_the_complement(
        condition in event_condition(),
        histories in prop::collection::vec(events_strategy(), 1..8),
        now in instant(),
        zone in prop::sample::select(&ZONES[..]),
    ) {
        let schema = schema();
        let filter = check(&parse_json(&condition).expect("parses"), &schema).expect("checks");
        let flipped = match condition["op"].as_str() {
            Some("did") => Some(json!("did_not")),
            Some("did_not") => Some(json!("did")),
            _ => None,
        }
        .map(|op| {
            let mut c = condition.clone();
            c["op"] = op;
            check(&parse_json(&c).expect("parses"), &schema).expect("checks")
        });
        let ctx = EvalContext::new(now, TimeZone::get(zone).expect("known zone"));
        let resolved = resolve(&filter, &ctx);
        let nobody = customer(vec![]);
        for events in &histories {
            let events = at(now, events);
            let expected = matches_with_events(&filter, &nobody, &events, &ctx);
            prop_assert_eq!(
                resolved.matches_with_events(&nobody, &events),
                expected,
                "{} with {:?}", filter, events
            );
            if let Some(flipped) = &flipped {
                prop_assert_eq!(matches_with_events(flipped, &nobody, &events, &ctx), !expected);
                prop_assert_eq!(
                    resolve(flipped, &ctx).matches_with_events(&nobody, &events),
                    !expected
                );
            }
        }
    }

    #[test]
    fn the_text_parser_never_panics_and_what_parses_round_trips(
        input in prop_oneof![
            any::<String>(),
            prop::collection::vec(
                prop::sample::select(vec![
                    "age", "country", "`last purchase`", "birthdate", "last_purchase_at",
                    "and", "or", "not", "(", ")", ",", "=", "!=", "<", "<=", ">", ">=",
                    "in", "not_in", "between", "contains", "exists", "before", "after",
                    "within_last", "on", "anniversary", "within", "ago", "from", "now",
                    "\"ES\"", "\"2024-05-01\"", "\"", "`", "\\", "42", "-3.5", "1e3",
                    "90d", "7w", "30m", "é", " ", "\n",
                    "did", "did_not", "DID", "count", "sum", "avg", "min", "max", "first",
                    "last", "of", "purchase", "app_open", "`on`", "amount", "currency",
                    "where", "at_least", "at_most", "exactly", "times", "ever", "pos",
                    "web", "not", "30d ago",
                    "subscribed", "SUBSCRIBED", "email", "sms", "`in-app`", "`on`", "emial",
                ]),
                0..24,
            ).prop_map(|tokens| tokens.join(" ")),
        ]
    ) {
        let schema = schema();
        if let Ok(filter) = parse_text(&input).and_then(|ast| check(&ast, &schema)) {
            let text = filter.to_text();
            let again = parse_text(&text).and_then(|ast| check(&ast, &schema));
            prop_assert_eq!(again.ok(), Some(filter), "{:?} -> {:?}", input, text);
        }
    }

    #[test]
    fn the_json_parser_never_panics(input in arbitrary_json()) {
        let schema = schema();
        if let Ok(filter) = parse_json(&input).and_then(|ast| check(&ast, &schema)) {
            let again = parse_json(&filter.to_json()).and_then(|ast| check(&ast, &schema));
            prop_assert_eq!(again.ok(), Some(filter));
        }
    }
}

/// JSON values shaped loosely like filters, with wrong types in every position.
fn arbitrary_json() -> impl Strategy<Value = Json> {
    let leaf = prop_oneof![
        Just(Json::Null),
        any::<bool>().prop_map(Json::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        any::<f64>()
            .prop_filter("finite", |n| n.is_finite())
            .prop_map(|n| json!(n)),
        prop::sample::select(vec![
            "age",
            "country",
            "birthdate",
            "last_purchase_at",
            "eq",
            "in",
            "between",
            "gt",
            "exists",
            "anniversary",
            "within_last",
            "30d",
            "2024-05-01",
            "",
            "ES",
            "purchase",
            "app_open",
            "did",
            "did_not",
            "sum",
            "count",
            "last",
            "amount",
            "web",
            "email",
            "in-app",
        ])
        .prop_map(Json::from),
    ];
    leaf.prop_recursive(4, 32, 4, |inner| {
        let key = prop::sample::select(vec![
            "and",
            "or",
            "not",
            "field",
            "op",
            "value",
            "ago",
            "from_now",
            "within_days",
            "x",
            "event",
            "agg",
            "property",
            "channel",
            "count",
            "within_last",
            "between",
            "where",
            "gte",
            "subscribed",
        ]);
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Json::Array),
            prop::collection::vec((key, inner), 0..4).prop_map(|pairs| {
                Json::Object(pairs.into_iter().map(|(k, v)| (k.to_owned(), v)).collect())
            }),
        ]
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 600, ..ProptestConfig::default() })]

    /// Time conditions built around the customer's own values, so that every outcome
    /// (true and false) is common: the resolved ranges must agree with the reference at
    /// the edges (DST changes, skipped days, leap days, window ends).
    #[test]
    fn time_conditions_at_their_edges_agree(
        value in (anchor(), -3 * MS_PER_DAY..3 * MS_PER_DAY).prop_map(|(a, d)| a + d),
        years in 0i64..30,
        now_shift in -2 * MS_PER_DAY..2 * MS_PER_DAY,
        day_shift in -1i32..=1,
        window in 0u32..=3,
        unit_shift in -1i64..=1,
        zone in prop::sample::select(&ZONES[..]),
    ) {
        let schema = schema();
        let tz = TimeZone::get(zone).expect("known zone");
        let now = value + years * 365 * MS_PER_DAY + now_shift;
        let ctx = EvalContext::new(now, tz.clone());
        let local = unico_filter::calendar::local_day(value, &tz);
        let date = value.div_euclid(MS_PER_DAY) as i32;
        let customer = customer(vec![
            (LAST_PURCHASE_AT, Value::Datetime(value)),
            (BIRTHDATE, Value::Date(date)),
        ]);
        let hours = ((now - value) / 3_600_000 + unit_shift).max(0);
        let days = (i64::from(ctx.today()) - i64::from(date) + unit_shift).max(0);
        let filters = [
            format!("last_purchase_at on \"{}\"", format_date(local + day_shift)),
            format!("birthdate on \"{}\"", format_date(date + day_shift)),
            format!("last_purchase_at anniversary within {window}d"),
            format!("birthdate anniversary within {window}d"),
            format!("last_purchase_at within_last {hours}h"),
            format!("last_purchase_at not_within_last {hours}h"),
            format!("birthdate within_last {days}d"),
            format!("birthdate not_within_last {days}d"),
            format!("last_purchase_at before \"{}\"", format_datetime(value + unit_shift)),
            format!("last_purchase_at after \"{}\"", format_datetime(value + unit_shift)),
            format!("last_purchase_at after {hours}h ago"),
            format!("birthdate before {days}d ago"),
            format!("birthdate between {days}d ago and {}d from now", window),
        ];
        for text in &filters {
            let filter = Filter::parse(FilterInput::Text(text), &schema)
                .map_err(|e| TestCaseError::fail(format!("{text}: {e}")))?;
            let expected = matches(&filter, &customer, &ctx);
            prop_assert_eq!(resolve(&filter, &ctx).matches(&customer), expected, "{}", text);
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 300, ..ProptestConfig::default() })]

    /// Windows built around the events' own times, so that every event lies on an edge of
    /// the window or a millisecond off it (at now − d, at now, 1 ms in the future, at each
    /// bound of `between`): every measure must agree with the resolved form there.
    #[test]
    fn event_windows_at_their_edges_agree(
        amount in 0u32..4,
        unit in prop::sample::select(vec!['m', 'h', 'd', 'w']),
        lo in (0u32..4, any::<bool>()),
        hi in (0u32..4, any::<bool>()),
        picks in prop::collection::vec((0usize..12, prop::sample::select(vec![0.1, 0.2, 0.3, 1.5, -0.7])), 0..7),
        now in instant(),
        zone in prop::sample::select(&ZONES[..]),
    ) {
        let schema = schema();
        let ctx = EvalContext::new(now, TimeZone::get(zone).expect("known zone"));
        let unit_ms = match unit {
            'm' => 60_000,
            'h' => 3_600_000,
            'd' => MS_PER_DAY,
            _ => 7 * MS_PER_DAY,
        };
        let d = i64::from(amount) * unit_ms;
        let relative = |(n, ago): (u32, bool)| {
            if ago { format!("{n}{unit} ago") } else { format!("{n}{unit} from now") }
        };
        let offset = |(n, ago): (u32, bool)| {
            let ms = i64::from(n) * unit_ms;
            if ago { -ms } else { ms }
        };
        // Offsets from now on the edges of every window below.
        let edges = [
            -d - 1, -d, -d + 1, -1, 0, 1,
            offset(lo) - 1, offset(lo), offset(lo) + 1,
            offset(hi) - 1, offset(hi), offset(hi) + 1,
        ];
        let events: Vec<Event> = picks
            .iter()
            .map(|&(i, amount)| event("purchase", "web", now + edges[i], json!({"amount": amount})))
            .collect();
        let window = format!("within_last {amount}{unit}");
        let between = format!("between {} and {}", relative(lo), relative(hi));
        let mut filters = Vec::new();
        for w in [&window, &between] {
            filters.extend([
                format!("did purchase {w}"),
                format!("did_not purchase {w}"),
                format!("did purchase at_least 2 times {w}"),
                format!("did purchase exactly 1 time {w}"),
                format!("count of purchase {w} = 2"),
                format!("sum amount of purchase {w} = 0.3"),
                format!("sum amount of purchase {w} = 0.6"),
                format!("sum amount of purchase {w} > 0.4"),
                format!("avg amount of purchase {w} = 0.2"),
                format!("min amount of purchase {w} <= 0.1"),
                format!("max amount of purchase {w} >= 1.5"),
            ]);
        }
        filters.extend([
            format!("last purchase within_last {amount}{unit}"),
            format!("last purchase not_within_last {amount}{unit}"),
            format!("first purchase before {}", relative(lo)),
            format!("last purchase after {}", relative(hi)),
            format!("first purchase {between}"),
        ]);
        for text in &filters {
            let filter = Filter::parse(FilterInput::Text(text), &schema)
                .map_err(|e| TestCaseError::fail(format!("{text}: {e}")))?;
            let nobody = customer(vec![]);
            let expected = matches_with_events(&filter, &nobody, &events, &ctx);
            prop_assert_eq!(
                resolve(&filter, &ctx).matches_with_events(&nobody, &events),
                expected,
                "{} with events at {:?}", text, events.iter().map(|e| e.timestamp - now).collect::<Vec<_>>()
            );
        }
    }
}
