//! Event conditions (SPEC §7): both forms of every shape give the same filter and print
//! back canonically, the words that start them stay usable as field names, errors say
//! where, and the audiences of the workload (E1–E6) select whom they should. Every
//! evaluation here is done three ways: the reference evaluator, the resolved form, and
//! `not (...)`, which must be the complement.

mod common;

use common::*;
use jiff::tz::TimeZone;
use serde_json::{Value as Json, json};
use unico_core::{Customer, Event, Value};
use unico_filter::filter::{Measure, Node};
use unico_filter::{
    EvalContext, Filter, FilterInput, Location, check, matches, matches_with_events, parse_json,
    parse_text, resolve,
};

const NOW: &str = "2024-05-10T12:00:00Z";
const MS_PER_DAY: i64 = 86_400_000;

fn now() -> i64 {
    ms(NOW)
}

/// `days` days before now (fractions allowed through `extra_ms`).
fn ago(days: i64, extra_ms: i64) -> i64 {
    now() - days * MS_PER_DAY + extra_ms
}

fn text(input: &str) -> Filter {
    Filter::parse(FilterInput::Text(input), &schema())
        .unwrap_or_else(|e| panic!("{input:?} should parse: {e}"))
}

fn from_json(input: &Json) -> Filter {
    Filter::parse(FilterInput::Json(input), &schema())
        .unwrap_or_else(|e| panic!("{input} should parse: {e}"))
}

// ---- both forms ----

/// Each text in canonical form with its canonical JSON.
const FORMS: &[(&str, &str)] = &[
    ("did purchase", r#"{"event": "purchase", "op": "did"}"#),
    (
        "did_not purchase within_last 30d",
        r#"{"event": "purchase", "op": "did_not", "within_last": "30d"}"#,
    ),
    (
        "did purchase at_least 3 times within_last 90d",
        r#"{"event": "purchase", "op": "did", "count": {"gte": 3}, "within_last": "90d"}"#,
    ),
    (
        "did purchase at_most 1 time",
        r#"{"event": "purchase", "op": "did", "count": {"lte": 1}}"#,
    ),
    (
        "did_not purchase exactly 0 times",
        r#"{"event": "purchase", "op": "did_not", "count": {"eq": 0}}"#,
    ),
    (
        "did purchase on pos where amount > 100 within_last 180d",
        r#"{"event": "purchase", "op": "did", "channel": "pos", "within_last": "180d",
            "where": {"field": "amount", "op": "gt", "value": 100}}"#,
    ),
    (
        r#"did purchase on web where (amount between 10 and 20.5 and currency in ("EUR", "USD") and store starts_with "Mad") at_least 2 times between "2024-01-01T00:00:00.000Z" and 7d ago"#,
        r#"{"event": "purchase", "op": "did", "channel": "web", "count": {"gte": 2},
            "between": ["2024-01-01T00:00:00.000Z", {"ago": "7d"}],
            "where": [{"field": "amount", "op": "between", "value": [10, 20.5]},
                      {"field": "currency", "op": "in", "value": ["EUR", "USD"]},
                      {"field": "store", "op": "starts_with", "value": "Mad"}]}"#,
    ),
    (
        "did purchase where amount exists between 30d ago and 2h from now",
        r#"{"event": "purchase", "op": "did", "between": [{"ago": "30d"}, {"from_now": "2h"}],
            "where": {"field": "amount", "op": "exists"}}"#,
    ),
    (
        "did email_open where (subject contains \"sale\" and opens >= 2 and campaign = \"7\")",
        r#"{"event": "email_open", "op": "did", "where": [
            {"field": "subject", "op": "contains", "value": "sale"},
            {"field": "opens", "op": "gte", "value": 2},
            {"field": "campaign", "op": "eq", "value": "7"}]}"#,
    ),
    (
        "sum amount of purchase within_last 365d > 500",
        r#"{"event": "purchase", "agg": "sum", "property": "amount", "within_last": "365d",
            "op": "gt", "value": 500}"#,
    ),
    (
        "count of purchase on app within_last 90d >= 3",
        r#"{"event": "purchase", "agg": "count", "channel": "app", "within_last": "90d",
            "op": "gte", "value": 3}"#,
    ),
    (
        "avg amount of purchase where currency = \"EUR\" between 10 and 20",
        r#"{"event": "purchase", "agg": "avg", "property": "amount",
            "where": {"field": "currency", "op": "eq", "value": "EUR"},
            "op": "between", "value": [10, 20]}"#,
    ),
    (
        "min amount of purchase between \"2024-01-01T00:00:00.000Z\" and 1d ago between -5 and 5",
        r#"{"event": "purchase", "agg": "min", "property": "amount",
            "between": ["2024-01-01T00:00:00.000Z", {"ago": "1d"}], "op": "between", "value": [-5, 5]}"#,
    ),
    (
        "max amount of purchase not_in (1, 2.5)",
        r#"{"event": "purchase", "agg": "max", "property": "amount", "op": "not_in", "value": [1, 2.5]}"#,
    ),
    (
        "sum total of email_open != 0",
        r#"{"event": "email_open", "agg": "sum", "property": "total", "op": "neq", "value": 0}"#,
    ),
    (
        "last app_open before 30d ago",
        r#"{"event": "app_open", "agg": "last", "op": "before", "value": {"ago": "30d"}}"#,
    ),
    (
        "first purchase on web where amount > 0 within_last 7d",
        r#"{"event": "purchase", "agg": "first", "channel": "web",
            "where": {"field": "amount", "op": "gt", "value": 0}, "op": "within_last", "value": "7d"}"#,
    ),
    (
        "last app_open on app on \"2024-05-01\"",
        r#"{"event": "app_open", "agg": "last", "channel": "app", "op": "on", "value": "2024-05-01"}"#,
    ),
    (
        "first purchase between \"2024-01-01T00:00:00.000Z\" and 3d ago",
        r#"{"event": "purchase", "agg": "first", "op": "between",
            "value": ["2024-01-01T00:00:00.000Z", {"ago": "3d"}]}"#,
    ),
    (
        "last purchase not_within_last 12h",
        r#"{"event": "purchase", "agg": "last", "op": "not_within_last", "value": "12h"}"#,
    ),
    (
        "first add_to_cart after \"2024-05-01T10:00:00.000Z\"",
        r#"{"event": "add_to_cart", "agg": "first", "op": "after", "value": "2024-05-01T10:00:00.000Z"}"#,
    ),
    // Names that need backticks, and names like the words of event conditions.
    (
        "did `on` on `on` where x = 1",
        r#"{"event": "on", "op": "did", "channel": "on", "where": {"field": "x", "op": "eq", "value": 1}}"#,
    ),
    (
        "did `order.completed-v2` on `click-and-collect` where `line items` > 2",
        r#"{"event": "order.completed-v2", "op": "did", "channel": "click-and-collect",
            "where": {"field": "line items", "op": "gt", "value": 2}}"#,
    ),
    (
        "did did where did = \"x\" and did = \"y\"",
        r#"{"and": [{"event": "did", "op": "did", "where": {"field": "did", "op": "eq", "value": "x"}},
                    {"field": "did", "op": "eq", "value": "y"}]}"#,
    ),
    (
        "sum of of did > 1",
        r#"{"event": "did", "agg": "sum", "property": "of", "op": "gt", "value": 1}"#,
    ),
    (
        "count of did = 0 or count = 0",
        r#"{"or": [{"event": "did", "agg": "count", "op": "eq", "value": 0},
                   {"field": "count", "op": "eq", "value": 0}]}"#,
    ),
    // Combined with field conditions under and / or / not.
    (
        "country = \"ES\" and (did purchase within_last 30d or not last app_open within_last 7d)",
        r#"{"and": [{"field": "country", "op": "eq", "value": "ES"},
                    {"or": [{"event": "purchase", "op": "did", "within_last": "30d"},
                            {"not": {"event": "app_open", "agg": "last", "op": "within_last", "value": "7d"}}]}]}"#,
    ),
];

#[test]
fn both_forms_of_every_shape_give_the_same_filter_and_print_back() {
    for (text_form, json_form) in FORMS {
        let json_form: Json = serde_json::from_str(json_form).expect("test JSON");
        let a = text(text_form);
        let b = from_json(&json_form);
        assert_eq!(a, b, "{text_form}");
        assert_eq!(a.to_text(), *text_form);
        assert_eq!(a.to_json(), json_form, "{text_form}");
        // And through the other form once more.
        assert_eq!(text(&b.to_text()), a);
        assert_eq!(from_json(&a.to_json()), b);
    }
}

#[test]
fn spellings_other_than_the_canonical_one() {
    let same = [
        (
            "DID purchase AT_LEAST 3 TIMES Within_Last 90d",
            "did purchase at_least 3 times within_last 90d",
        ),
        (
            "did purchase at_least 1 times",
            "did purchase at_least 1 time",
        ),
        ("did purchase at_least 2", "did purchase at_least 2 times"),
        // Options in any order print in one: channel, where, count, window.
        (
            "did purchase within_last 180d at_least 2 times where amount > 100 on POS",
            "did purchase on pos where amount > 100 at_least 2 times within_last 180d",
        ),
        ("did purchase ever", "did purchase"),
        (
            "did purchase where (amount > 1)",
            "did purchase where amount > 1",
        ),
        (
            "SUM amount OF purchase EVER > 1",
            "sum amount of purchase > 1",
        ),
        (
            "Last app_open BEFORE 30d ago",
            "last app_open before 30d ago",
        ),
        // A number in a string for a number property, as for a number field.
        (
            "did purchase where amount = \"42\"",
            "did purchase where amount = 42",
        ),
        (
            "sum amount of purchase > \"500\"",
            "sum amount of purchase > 500",
        ),
        // An undeclared property is a number when the operator says so.
        (
            "did email_open where opens > \"2\"",
            "did email_open where opens > 2",
        ),
    ];
    for (input, canonical) in same {
        assert_eq!(text(input).to_text(), canonical, "{input}");
    }
    // The JSON form: op and agg names ignore case, epoch milliseconds are times, a
    // one-element where array is the object.
    let json_same = [
        (
            json!({"event": "purchase", "op": "DID", "where": [{"field": "amount", "op": "GT", "value": 1}]}),
            "did purchase where amount > 1",
        ),
        (
            json!({"event": "purchase", "agg": "Sum", "property": "amount", "op": "gt", "value": "1.50"}),
            "sum amount of purchase > 1.5",
        ),
        (
            json!({"event": "purchase", "op": "did", "between": [1714557600000_i64, "2024-05-02"]}),
            "did purchase between \"2024-05-01T10:00:00.000Z\" and \"2024-05-02T00:00:00.000Z\"",
        ),
        (
            json!({"event": "app_open", "agg": "LAST", "op": "after", "value": 1714557600000_i64}),
            "last app_open after \"2024-05-01T10:00:00.000Z\"",
        ),
    ];
    for (input, canonical) in json_same {
        assert_eq!(from_json(&input).to_text(), canonical, "{input}");
    }
}

#[test]
fn the_types_of_properties_come_from_the_event_type_else_from_the_filter() {
    use unico_core::PropertyType;
    let types = |input: &str| -> Vec<PropertyType> {
        match text(input).root() {
            Node::Event(e) => e.wheres.iter().map(|w| w.property_type).collect(),
            other => panic!("not an event condition: {other:?}"),
        }
    };
    // Declared: `amount` is a number, `currency` a string, whatever the value looks like.
    assert_eq!(
        types("did purchase where (amount = \"7\" and currency = \"7\" and amount exists)"),
        [
            PropertyType::Number,
            PropertyType::String,
            PropertyType::Number
        ]
    );
    // Undeclared: the operator, else the (first) value.
    assert_eq!(
        types(
            "did email_open where (a > 1 and b contains \"x\" and c = 1 and d = \"1\" and e in (1, 2) and f not_in (\"x\") and g between 1 and 2)"
        ),
        [
            PropertyType::Number,
            PropertyType::String,
            PropertyType::Number,
            PropertyType::String,
            PropertyType::Number,
            PropertyType::String,
            PropertyType::Number,
        ]
    );
}

// ---- words of event conditions as field names ----

#[test]
fn fields_named_like_the_words_of_event_conditions_still_work() {
    let ctx = EvalContext::new(now(), TimeZone::UTC);
    let c = customer(vec![
        (LAST, Value::Datetime(ago(40, 0))),
        (COUNT, Value::Number(3.0)),
        (DID, Value::String("yes".into())),
        (SUM, Value::Number(10.0)),
        (FIRST, Value::String("Ana".into())),
    ]);
    let cases = [
        ("last before 30d ago", true),
        ("last within_last 30d", false),
        ("last exists", true),
        ("count > 2", true),
        ("count = 3", true),
        ("count in (1, 2)", false),
        ("count between 1 and 3", true),
        ("did = \"yes\"", true),
        ("did != \"yes\"", false),
        ("did not_in (\"no\")", true),
        ("did contains \"E\"", true),
        ("sum >= 10", true),
        ("sum between 1 and 2", false),
        ("first starts_with \"a\"", true),
        ("first not_exists", false),
        ("LAST before 30d ago", false), // field names are case-sensitive: `LAST` is unknown
    ];
    for (input, expected) in cases {
        if input.starts_with("LAST") {
            let e = Filter::parse(FilterInput::Text(input), &schema()).unwrap_err();
            assert_eq!(e.code(), "filter_unknown_field", "{input}");
            continue;
        }
        let f = text(input);
        assert!(
            matches!(f.root(), Node::Condition(_)),
            "{input} is a field condition"
        );
        assert_eq!(f.to_text(), input);
        assert_eq!(matches(&f, &c, &ctx), expected, "{input}");
        assert_eq!(resolve(&f, &ctx).matches(&c), expected, "{input}");
    }
    // Next to event conditions, in both orders.
    let f = text("last before 30d ago and last app_open before 30d ago");
    let Node::And(children) = f.root() else {
        panic!("an and")
    };
    assert!(matches!(children[0], Node::Condition(_)));
    assert!(matches!(
        &children[1],
        Node::Event(e) if matches!(e.measure, Measure::Time { .. })
    ));
}

// ---- errors ----

/// Text inputs, their error code and the column the error points at.
const TEXT_ERRORS: &[(&str, &str, usize)] = &[
    // unknown event type, with a suggestion
    (
        "did purchse within_last 30d",
        "filter_unknown_event_type",
        5,
    ),
    (
        "sum amount of Purchase > 3",
        "filter_unknown_event_type",
        15,
    ),
    // repeated options
    ("did purchase on web on app", "filter_syntax", 21),
    ("did purchase within_last 3d ever", "filter_syntax", 29),
    ("did purchase at_least 1 at_most 3", "filter_syntax", 25),
    (
        "did purchase where amount > 1 where amount < 3",
        "filter_syntax",
        31,
    ),
    ("count of purchase on web on web > 1", "filter_syntax", 26),
    // a window on first / last
    ("last app_open ever before 3d ago", "filter_syntax", 15),
    (
        "last app_open within_last 30d before 3d ago",
        "filter_syntax",
        31,
    ),
    (
        "first purchase before 3d ago between 2d ago and 1d ago",
        "filter_syntax",
        30,
    ),
    // the property of an aggregate
    ("sum of purchase > 5", "filter_syntax", 5),
    ("avg of purchase > 5", "filter_syntax", 5),
    ("count amount of purchase > 5", "filter_syntax", 7),
    ("sum currency of purchase > 5", "filter_invalid_value", 5),
    // bad counts
    ("did purchase at_least -1", "filter_syntax", 23),
    ("did purchase at_least 2.5 times", "filter_syntax", 23),
    ("did purchase at_least 1000001 times", "filter_syntax", 23),
    ("did purchase exactly many times", "filter_syntax", 22),
    ("count of purchase at_least 3", "filter_syntax", 19),
    // bad durations
    ("did purchase within_last 30", "filter_syntax", 26),
    ("did purchase within_last 1.5d", "filter_syntax", 26),
    ("did purchase within_last 99999999999d", "filter_syntax", 26),
    ("last app_open within_last 3x", "filter_syntax", 27),
    // between with mixed bounds
    (
        "did purchase between \"2024-01-01\" and 5",
        "filter_syntax",
        39,
    ),
    ("did purchase between 5 and 7d ago", "filter_syntax", 22),
    (
        "sum amount of purchase between 10 and 7d ago",
        "filter_syntax",
        39,
    ),
    (
        "did purchase between \"2024-01-01\" and \"soon\"",
        "filter_invalid_value",
        39,
    ),
    // values of the wrong type for a declared property
    (
        "did purchase where amount = \"x\"",
        "filter_invalid_value",
        29,
    ),
    (
        "did purchase where currency = 5",
        "filter_invalid_value",
        31,
    ),
    (
        "did purchase where currency > 5",
        "filter_operator_mismatch",
        29,
    ),
    (
        "did purchase where amount contains \"1\"",
        "filter_operator_mismatch",
        27,
    ),
    // exists on an undeclared property
    (
        "did email_open where opens exists",
        "filter_undeclared_property",
        28,
    ),
    (
        "did email_open where opens not_exists",
        "filter_undeclared_property",
        28,
    ),
    // other shapes
    (
        "did email_open where a in (1, \"x\")",
        "filter_invalid_value",
        31,
    ),
    (
        "did email_open where a before 3d ago",
        "filter_operator_mismatch",
        24,
    ),
    (
        "did email_open where a = 3d ago",
        "filter_invalid_value",
        26,
    ),
    (
        "did purchase where amount = \"\"",
        "filter_invalid_value",
        29,
    ),
    (
        "did purchase where (amount > 1 or amount < 0)",
        "filter_syntax",
        32,
    ),
    ("did purchase where (amount > 1", "filter_syntax", 31),
    ("did purchase on \"web\"", "filter_syntax", 17),
    ("did purchase on `e mail`", "filter_invalid_value", 17),
    ("did not purchase", "filter_syntax", 1),
    ("did purchase at_least 1 time and", "filter_syntax", 33),
    (
        "sum amount of purchase > 5 within_last 3d",
        "filter_syntax",
        28,
    ),
    (
        "sum amount of purchase contains \"x\"",
        "filter_operator_mismatch",
        24,
    ),
    (
        "sum amount of purchase > 90d ago",
        "filter_invalid_value",
        26,
    ),
    ("count of purchase", "filter_syntax", 18),
    ("last app_open = 5", "filter_operator_mismatch", 15),
    ("last app_open anniversary", "filter_operator_mismatch", 15),
    (
        "last app_open on \"2024-02-30\"",
        "filter_invalid_value",
        18,
    ),
    ("first purchase before 5", "filter_invalid_value", 23),
];

#[test]
fn errors_point_at_the_problem_in_the_text_form() {
    let schema = schema();
    let mut wrong = Vec::new();
    for (input, code, column) in TEXT_ERRORS {
        match parse_text(input).and_then(|ast| check(&ast, &schema)) {
            Ok(f) => wrong.push(format!("{input:?} parsed as {f}")),
            Err(e) => {
                let at = Location::Text {
                    line: 1,
                    column: *column,
                };
                if e.code() != *code || *e.location() != at {
                    wrong.push(format!(
                        "{input:?}: expected {code} at column {column}, got {} at {}: {e}",
                        e.code(),
                        e.location()
                    ));
                }
            }
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

#[test]
fn errors_point_at_the_problem_in_the_json_form() {
    let schema = schema();
    let did = |extra: Json| {
        let mut v = json!({"event": "purchase", "op": "did"});
        for (k, x) in extra.as_object().expect("object") {
            v[k] = x.clone();
        }
        v
    };
    let cases: Vec<(Json, &str, &str)> = vec![
        (
            json!({"event": "purchse", "op": "did"}),
            "filter_unknown_event_type",
            "event",
        ),
        (
            json!({"and": [{"field": "age", "op": "exists"}, {"event": "purchse", "op": "did"}]}),
            "filter_unknown_event_type",
            "and[1].event",
        ),
        (
            json!({"event": "app_open", "agg": "last", "op": "before", "value": {"ago": "3d"}, "within_last": "3d"}),
            "filter_syntax",
            "within_last",
        ),
        (
            json!({"event": "app_open", "agg": "first", "op": "before", "value": {"ago": "3d"}, "between": ["2024-01-01", "2024-02-01"]}),
            "filter_syntax",
            "between",
        ),
        (
            json!({"event": "purchase", "agg": "sum", "op": "gt", "value": 500}),
            "filter_syntax",
            "",
        ),
        (
            json!({"event": "purchase", "agg": "count", "property": "amount", "op": "gt", "value": 5}),
            "filter_syntax",
            "property",
        ),
        (
            json!({"event": "purchase", "agg": "sum", "property": "currency", "op": "gt", "value": 5}),
            "filter_invalid_value",
            "property",
        ),
        (
            did(json!({"count": {"gte": -1}})),
            "filter_syntax",
            "count.gte",
        ),
        (
            did(json!({"count": {"gte": 1.5}})),
            "filter_syntax",
            "count.gte",
        ),
        (
            did(json!({"count": {"gte": 1_000_001}})),
            "filter_syntax",
            "count.gte",
        ),
        (did(json!({"count": {"gt": 1}})), "filter_syntax", "count"),
        (
            did(json!({"count": {"gte": 1, "lte": 2}})),
            "filter_syntax",
            "count",
        ),
        (did(json!({"count": 3})), "filter_syntax", "count"),
        (
            did(json!({"within_last": "3x"})),
            "filter_syntax",
            "within_last",
        ),
        (
            did(json!({"within_last": 30})),
            "filter_syntax",
            "within_last",
        ),
        (
            did(json!({"between": ["2024-01-01", true]})),
            "filter_syntax",
            "between[1]",
        ),
        (
            did(json!({"between": ["2024-01-01", 1.5]})),
            "filter_invalid_value",
            "between[1]",
        ),
        (
            did(json!({"between": ["2024-01-01"]})),
            "filter_syntax",
            "between",
        ),
        (
            did(json!({"within_last": "3d", "between": ["2024-01-01", "2024-02-01"]})),
            "filter_syntax",
            "between",
        ),
        (
            did(json!({"where": {"field": "amount", "op": "gt", "value": "x"}})),
            "filter_invalid_value",
            "where.value",
        ),
        (
            did(
                json!({"where": [{"field": "amount", "op": "gt", "value": 1}, {"field": "currency", "op": "eq", "value": 5}]}),
            ),
            "filter_invalid_value",
            "where[1].value",
        ),
        (
            json!({"event": "email_open", "op": "did", "where": {"field": "opens", "op": "exists"}}),
            "filter_undeclared_property",
            "where.op",
        ),
        (did(json!({"where": []})), "filter_syntax", "where"),
        (did(json!({"where": [3]})), "filter_syntax", "where[0]"),
        (
            did(json!({"where": {"field": "amount", "op": "gt", "value": 1, "x": 2}})),
            "filter_syntax",
            "where",
        ),
        (
            did(json!({"channel": "e mail"})),
            "filter_invalid_value",
            "channel",
        ),
        (did(json!({"channel": 3})), "filter_syntax", "channel"),
        (did(json!({"value": 3})), "filter_syntax", "value"),
        (did(json!({"foo": 3})), "filter_syntax", ""),
        (
            json!({"event": "purchase", "op": "gt", "value": 1}),
            "filter_syntax",
            "op",
        ),
        (json!({"event": "purchase"}), "filter_syntax", ""),
        (json!({"event": "", "op": "did"}), "filter_syntax", "event"),
        (
            json!({"event": "purchase", "agg": "median", "property": "amount", "op": "gt", "value": 1}),
            "filter_syntax",
            "agg",
        ),
        (
            json!({"event": "purchase", "agg": "sum", "property": "amount", "op": "did"}),
            "filter_syntax",
            "op",
        ),
        (
            json!({"event": "purchase", "agg": "sum", "property": "amount", "op": "contains", "value": "x"}),
            "filter_operator_mismatch",
            "op",
        ),
        (
            json!({"event": "purchase", "agg": "sum", "property": "amount", "count": {"gte": 1}, "op": "gt", "value": 1}),
            "filter_syntax",
            "count",
        ),
        (
            json!({"event": "purchase", "agg": "last", "op": "gt", "value": 1}),
            "filter_operator_mismatch",
            "op",
        ),
        (
            json!({"event": "purchase", "agg": "last", "op": "before", "value": 1.5}),
            "filter_invalid_value",
            "value",
        ),
        (
            json!({"not": {"event": "purchase", "agg": "min", "property": "amount", "op": "in", "value": [1, "x"]}}),
            "filter_invalid_value",
            "not.value[1]",
        ),
    ];
    let mut wrong = Vec::new();
    for (input, code, path) in &cases {
        match parse_json(input).and_then(|ast| check(&ast, &schema)) {
            Ok(f) => wrong.push(format!("{input} parsed as {f}")),
            Err(e) => {
                let at = Location::Json {
                    path: (*path).to_owned(),
                };
                if e.code() != *code || *e.location() != at {
                    wrong.push(format!(
                        "{input}: expected {code} at {path:?}, got {} at {:?}: {e}",
                        e.code(),
                        e.location()
                    ));
                }
            }
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

#[test]
fn unknown_event_types_suggest_a_registered_one() {
    let e = Filter::parse(FilterInput::Text("did purchse"), &schema()).unwrap_err();
    assert_eq!(
        e.to_string(),
        "unknown event type \"purchse\" at column 5 — did you mean \"purchase\"?"
    );
    let e = Filter::parse(FilterInput::Text("did zzzzzzzz"), &schema()).unwrap_err();
    assert_eq!(
        e.to_string(),
        "unknown event type \"zzzzzzzz\" at column 5; event types are registered per application"
    );
    // A schema without event types knows none.
    let bare = unico_core::Schema::new(vec![]);
    let e = Filter::parse(FilterInput::Text("did purchase"), &bare).unwrap_err();
    assert_eq!(e.code(), "filter_unknown_event_type");
}

// ---- semantics ----

fn ctx() -> EvalContext {
    EvalContext::new(now(), TimeZone::UTC)
}

/// Evaluates `filter` on `customer` with `events` three ways and returns the answer.
fn eval(filter: &str, customer: &Customer, events: &[Event]) -> bool {
    let ctx = ctx();
    let f = text(filter);
    let naive = matches_with_events(&f, customer, events, &ctx);
    assert_eq!(
        resolve(&f, &ctx).matches_with_events(customer, events),
        naive,
        "resolved form disagrees on {filter:?}"
    );
    let negated = text(&format!("not ({filter})"));
    assert_eq!(
        matches_with_events(&negated, customer, events, &ctx),
        !naive,
        "not ({filter}) is no complement"
    );
    naive
}

/// Evaluates every case and reports all the wrong ones at once.
fn expect(who: &str, customer: &Customer, events: &[Event], cases: &[(&str, bool)]) {
    let wrong: Vec<String> = cases
        .iter()
        .filter(|(filter, expected)| eval(filter, customer, events) != *expected)
        .map(|(filter, expected)| format!("{filter:?} should be {expected}"))
        .collect();
    assert!(wrong.is_empty(), "{who}:\n{}", wrong.join("\n"));
}

fn purchase(channel: &str, at: i64, amount: Json) -> Event {
    event("purchase", channel, at, json!({ "amount": amount }))
}

fn nobody() -> Customer {
    customer(vec![])
}

fn spaniard() -> Customer {
    customer(vec![(COUNTRY, Value::String("ES".into()))])
}

#[test]
fn e1_purchased_at_least_3_times_in_the_last_90_days() {
    let e1 = "did purchase at_least 3 times within_last 90d";
    let three = [
        purchase("web", ago(90, 0), json!(1)), // exactly at now − 90d: counts
        purchase("pos", ago(10, 0), json!(2)),
        purchase("app", now(), json!(3)), // exactly now: counts
    ];
    expect("three", &nobody(), &three, &[(e1, true)]);
    let mut early = three.clone();
    early[0].timestamp = ago(90, -1); // 1 ms too early
    expect("one too early", &nobody(), &early, &[(e1, false)]);
    let mut future = three.clone();
    future[2].timestamp = now() + 1; // 1 ms in the future: not in the last 90 days
    expect("one in the future", &nobody(), &future, &[(e1, false)]);
    let mut other = three.clone();
    other[1] = event("add_to_cart", "web", ago(10, 0), json!({}));
    expect("one of another type", &nobody(), &other, &[(e1, false)]);
    expect("none", &nobody(), &[], &[(e1, false)]);
    // The same audience as an aggregate.
    expect(
        "three",
        &nobody(),
        &three,
        &[("count of purchase within_last 90d >= 3", true)],
    );
}

#[test]
fn e2_opened_an_email_in_the_last_30_days_and_did_not_purchase_in_them() {
    let e2 = "did email_open within_last 30d and did_not purchase within_last 30d";
    let opened = event("email_open", "email", ago(10, 0), json!({}));
    expect(
        "opened, bought long ago",
        &nobody(),
        &[opened.clone(), purchase("web", ago(40, 0), json!(5))],
        &[(e2, true)],
    );
    expect(
        "opened and bought",
        &nobody(),
        &[opened.clone(), purchase("web", ago(5, 0), json!(5))],
        &[(e2, false)],
    );
    expect(
        "opened, buys tomorrow",
        &nobody(),
        &[
            opened.clone(),
            purchase("web", now() + MS_PER_DAY, json!(5)),
        ],
        &[(e2, true)],
    );
    expect(
        "opened long ago",
        &nobody(),
        &[event("email_open", "email", ago(31, 0), json!({}))],
        &[(e2, false)],
    );
    expect("nothing", &nobody(), &[], &[(e2, false)]);
}

#[test]
fn e3_spaniards_whose_purchases_sum_over_500_in_the_last_365_days() {
    let e3 = "country = \"ES\" and sum amount of purchase within_last 365d > 500";
    let events = [
        purchase("web", ago(1, 0), json!(200.10)),
        purchase("pos", ago(100, 0), json!(300)),
        purchase("app", ago(364, 0), json!(0.01)),
        purchase("app", ago(366, 0), json!(1000)), // outside the window
        purchase("web", ago(2, 0), json!("9999")), // a string: not a number
        event("purchase", "web", ago(3, 0), json!({})), // no amount
    ];
    expect(
        "ES, 500.11",
        &spaniard(),
        &events,
        &[
            (e3, true),
            ("sum amount of purchase within_last 365d = 500.11", true),
            ("count of purchase within_last 365d = 5", true),
            ("avg amount of purchase within_last 365d > 166.7", true),
            ("avg amount of purchase within_last 365d < 166.71", true),
            ("min amount of purchase within_last 365d = 0.01", true),
            ("max amount of purchase = 1000", true),
        ],
    );
    expect(
        "FR, 500.11",
        &customer(vec![(COUNTRY, Value::String("FR".into()))]),
        &events,
        &[(e3, false)],
    );
    expect(
        "ES, exactly 500",
        &spaniard(),
        &[
            purchase("web", ago(1, 0), json!(250)),
            purchase("web", ago(2, 0), json!(250)),
        ],
        &[(e3, false), ("sum amount of purchase >= 500", true)],
    );
    // Sums are exact to the millionth, whatever the order: 0.1 + 0.2 is 0.3.
    let tenths: Vec<Event> = [0.1, 0.2, 0.3, 0.4]
        .iter()
        .map(|v| purchase("web", ago(1, 0), json!(v)))
        .collect();
    let mut reversed = tenths.clone();
    reversed.reverse();
    for events in [&tenths[..2], &tenths[..], &reversed[..]] {
        expect(
            "tenths",
            &spaniard(),
            events,
            &[(
                if events.len() == 2 {
                    "sum amount of purchase = 0.3"
                } else {
                    "sum amount of purchase = 1"
                },
                true,
            )],
        );
    }
    expect(
        "many tenths",
        &spaniard(),
        &vec![purchase("web", ago(1, 0), json!(0.1)); 5001],
        &[(e3, true), ("sum amount of purchase = 500.1", true)],
    );
}

#[test]
fn e4_added_to_cart_in_the_last_7_days_and_did_not_purchase_in_them() {
    let e4 = "did add_to_cart within_last 7d and did_not purchase within_last 7d";
    let cart = event("add_to_cart", "web", ago(7, 0), json!({"sku": "A1"}));
    expect(
        "abandoned",
        &nobody(),
        std::slice::from_ref(&cart),
        &[(e4, true)],
    );
    expect(
        "bought after",
        &nobody(),
        &[cart.clone(), purchase("web", ago(6, 0), json!(9))],
        &[(e4, false)],
    );
    expect(
        "bought 8 days ago",
        &nobody(),
        &[cart.clone(), purchase("web", ago(8, 0), json!(9))],
        &[(e4, true)],
    );
    expect(
        "cart too old",
        &nobody(),
        &[event("add_to_cart", "web", ago(7, -1), json!({}))],
        &[(e4, false)],
    );
}

#[test]
fn e5_opened_the_app_at_some_time_but_not_in_the_last_30_days() {
    let e5 = "did app_open and did_not app_open within_last 30d";
    let last = "last app_open before 30d ago";
    let open = |at| event("app_open", "app", at, json!({}));
    expect(
        "lapsed",
        &nobody(),
        &[open(ago(31, 0)), open(ago(200, 0))],
        &[(e5, true), (last, true)],
    );
    expect(
        "active",
        &nobody(),
        &[open(ago(31, 0)), open(ago(2, 0))],
        &[(e5, false), (last, false)],
    );
    expect(
        "last opened exactly 30 days ago",
        &nobody(),
        &[open(ago(30, 0))],
        &[(e5, false), (last, false)],
    );
    expect("never", &nobody(), &[], &[(e5, false), (last, false)]);
    // The two spellings differ on an event dated in the future: "ever" holds it, and it
    // is the last one.
    expect(
        "lapsed, with a future event",
        &nobody(),
        &[open(ago(100, 0)), open(now() + 1)],
        &[(e5, true), (last, false)],
    );
}

#[test]
fn e6_a_purchase_over_100_in_a_store_in_the_last_180_days() {
    let e6 = "did purchase on pos where amount > 100 within_last 180d";
    let cases = [
        (
            "in store, 150",
            vec![purchase("pos", ago(100, 0), json!(150))],
            true,
        ),
        (
            "online, 150",
            vec![purchase("web", ago(100, 0), json!(150))],
            false,
        ),
        (
            "in store, exactly 100",
            vec![purchase("pos", ago(100, 0), json!(100))],
            false,
        ),
        (
            "in store, 150 as a string",
            vec![purchase("pos", ago(100, 0), json!("150"))],
            false,
        ),
        (
            "in store, 150, 181 days ago",
            vec![purchase("pos", ago(181, 0), json!(150))],
            false,
        ),
        (
            "in store, no amount",
            vec![event("purchase", "pos", ago(1, 0), json!({}))],
            false,
        ),
        (
            "two halves",
            vec![
                purchase("pos", ago(1, 0), json!(60)),
                purchase("web", ago(1, 0), json!(150)),
            ],
            false,
        ),
    ];
    for (who, events, expected) in cases {
        expect(who, &nobody(), &events, &[(e6, expected)]);
    }
}

#[test]
fn the_audiences_of_the_docs() {
    let bought_3 = "did purchase at_least 3 times within_last 90d";
    let email_not_bought = "did email_open between \"2024-05-01\" and 0m ago and did_not purchase between \"2024-05-01\" and 0m ago";
    let cart_not_bought = "did add_to_cart within_last 7d and did_not purchase within_last 7d";
    let lapsed = "did app_open and did_not app_open within_last 30d";
    let events = [
        event("email_open", "email", ms("2024-05-02T08:00:00Z"), json!({})),
        purchase("web", ms("2024-04-30T23:59:59.999Z"), json!(10)),
        event("app_open", "app", ago(60, 0), json!({})),
    ];
    expect(
        "docs",
        &nobody(),
        &events,
        &[
            (bought_3, false),
            (email_not_bought, true),
            (cart_not_bought, false),
            (lapsed, true),
        ],
    );
}

#[test]
fn counts_windows_and_channels() {
    let events = [
        purchase("web", ago(1, 0), json!(1)),
        purchase("web", ago(2, 0), json!(2)),
        purchase("pos", ago(3, 0), json!(3)),
        event("email_open", "email", ago(1, 0), json!({})),
    ];
    expect(
        "three purchases",
        &nobody(),
        &events,
        &[
            ("did purchase", true),
            ("did_not purchase", false),
            ("did purchase at_least 3 times", true),
            ("did purchase at_least 4 times", false),
            ("did purchase at_most 3 times", true),
            ("did purchase at_most 2 times", false),
            ("did purchase exactly 3 times", true),
            ("did purchase exactly 0 times", false),
            ("did purchase at_least 0 times", true),
            ("did_not purchase at_least 4 times", true),
            ("did purchase on web exactly 2 times", true),
            ("did purchase on WEB exactly 2 times", true),
            ("did purchase on app", false),
            ("did purchase within_last 2d exactly 2 times", true),
            ("did purchase within_last 47h exactly 1 time", true),
            ("did purchase within_last 0m", false),
            ("did app_open", false),
            ("did_not app_open", true),
            ("did purchase at_most 0 times on app", true),
            // Between is inclusive at both ends, with absolute or relative bounds.
            (
                "did purchase between 3d ago and 2d ago exactly 2 times",
                true,
            ),
            (
                "did purchase between 3d ago and 1d from now exactly 3 times",
                true,
            ),
            ("did purchase between 2d ago and 3d ago", false),
            (
                "did purchase between \"2024-05-08T12:00:00Z\" and \"2024-05-08T12:00:00Z\" exactly 1 time",
                true,
            ),
            (
                "did purchase between \"2024-05-08T12:00:00.001Z\" and 0m ago exactly 1 time",
                true,
            ),
            // Combined freely with field conditions.
            ("did purchase or country = \"ES\"", true),
            ("did_not purchase or country = \"ES\"", false),
            ("not (did purchase and not did email_open)", true),
        ],
    );
    expect(
        "a customer with no events",
        &nobody(),
        &[],
        &[
            ("did purchase", false),
            ("did_not purchase", true),
            ("did purchase at_most 0 times", true),
            ("did purchase exactly 0 times", true),
            ("did purchase at_least 0 times", true),
            ("did_not purchase at_least 0 times", false),
        ],
    );
}

#[test]
fn property_conditions() {
    let events = [
        event(
            "purchase",
            "web",
            ago(1, 0),
            json!({"amount": 50, "currency": "EUR", "store": "Madrid Centro"}),
        ),
        event(
            "purchase",
            "web",
            ago(2, 0),
            json!({"amount": "50", "currency": 1, "store": true}),
        ),
        event(
            "email_open",
            "email",
            ago(1, 0),
            json!({"subject": "Big SALE", "opens": 3}),
        ),
    ];
    expect(
        "properties",
        &nobody(),
        &events,
        &[
            ("did purchase where amount = 50 exactly 1 time", true),
            ("did purchase where amount != 50", false), // the other one holds a string: absent
            ("did purchase where amount exists exactly 1 time", true),
            ("did purchase where amount not_exists exactly 1 time", true),
            ("did purchase where currency = \"EUR\" exactly 1 time", true),
            (
                "did purchase where currency != \"USD\" exactly 1 time",
                true,
            ),
            (
                "did purchase where currency not_in (\"USD\") exactly 1 time",
                true,
            ),
            (
                "did purchase where store not_contains \"x\" exactly 1 time",
                true,
            ),
            ("did purchase where store not_exists exactly 1 time", true),
            ("did purchase where store contains \"CENTRO\"", true),
            ("did purchase where store ends_with \"centro\"", true),
            (
                "did purchase where (amount = 50 and currency = \"USD\")",
                false,
            ),
            (
                "did purchase where (amount between 50 and 50 and currency in (\"EUR\"))",
                true,
            ),
            ("did email_open where subject contains \"sale\"", true),
            ("did email_open where opens >= 3", true),
            ("did email_open where opens = \"3\"", false), // read as a string, holds a number
            ("did email_open where missing != \"x\"", false),
            ("did email_open where missing not_in (1)", false),
            ("did_not email_open where missing != \"x\"", true),
        ],
    );
}

#[test]
fn aggregates_of_nothing() {
    let no_amounts = [
        purchase("web", ago(1, 0), json!("12")),
        event("purchase", "web", ago(1, 0), json!({"amount": null})),
        event("purchase", "web", ago(1, 0), json!({"amount": [1]})),
    ];
    for (who, events) in [("no events", &[][..]), ("no amounts", &no_amounts[..])] {
        expect(
            who,
            &nobody(),
            events,
            &[
                // Count and sum of nothing are 0.
                ("sum amount of purchase = 0", true),
                ("sum amount of purchase != 0", false),
                ("sum amount of purchase between -1 and 1", true),
                ("sum amount of purchase in (0)", true),
                // Avg, min and max of nothing are absent: every test is false.
                ("avg amount of purchase = 0", false),
                ("avg amount of purchase != 0", false),
                ("avg amount of purchase not_in (1)", false),
                ("min amount of purchase < 1000000", false),
                ("min amount of purchase != 5", false),
                ("max amount of purchase > -1000000", false),
                ("max amount of purchase != 5", false),
                // First and last of no event are absent too (but these events count,
                // holding an amount or not).
                ("first purchase within_last 1000w", !events.is_empty()),
                ("last purchase not_within_last 1d", false),
            ],
        );
    }
    expect(
        "no events",
        &nobody(),
        &[],
        &[
            ("count of purchase = 0", true),
            ("count of purchase > 0", false),
        ],
    );
    // The amounts that are numbers are aggregated, the others skipped.
    let mixed = [
        purchase("web", ago(1, 0), json!(10)),
        purchase("web", ago(2, 0), json!("1000")),
        purchase("web", ago(3, 0), json!(-0.0)),
        purchase("web", ago(4, 0), json!(-2.5)),
    ];
    expect(
        "mixed amounts",
        &nobody(),
        &mixed,
        &[
            ("count of purchase = 4", true),
            ("sum amount of purchase = 7.5", true),
            ("avg amount of purchase = 2.5", true),
            ("min amount of purchase = -2.5", true),
            ("max amount of purchase = 10", true),
            ("max amount of purchase where amount < 5 = 0", true),
            ("max amount of purchase where amount < 5 in (0)", true),
            ("sum amount of purchase on pos = 0", true),
            ("avg amount of purchase on pos = 0", false),
        ],
    );
}

#[test]
fn first_and_last_times() {
    let events = [
        purchase("web", ms("2024-05-01T10:00:00Z"), json!(1)),
        purchase("pos", ms("2024-05-05T10:00:00Z"), json!(200)),
        purchase("web", ms("2024-05-09T23:30:00Z"), json!(3)),
    ];
    expect(
        "three purchases",
        &nobody(),
        &events,
        &[
            ("first purchase on \"2024-05-01\"", true),
            ("last purchase on \"2024-05-09\"", true),
            ("last purchase within_last 1d", true),
            ("last purchase not_within_last 1d", false),
            ("first purchase before \"2024-05-01T10:00:00.001Z\"", true),
            ("first purchase before \"2024-05-01T10:00:00Z\"", false),
            ("first purchase after \"2024-05-01T09:59:59.999Z\"", true),
            ("last purchase between 1d ago and 0m ago", true),
            ("last purchase on pos on \"2024-05-05\"", true),
            ("first purchase where amount > 100 on \"2024-05-05\"", true),
            ("last purchase on app within_last 1000w", false),
        ],
    );
    // `on` reads the calendar date in the application's time zone.
    let madrid = EvalContext::new(now(), TimeZone::get("Europe/Madrid").expect("zone"));
    let f = text("last purchase on \"2024-05-10\"");
    assert!(matches_with_events(&f, &nobody(), &events, &madrid));
    assert!(resolve(&f, &madrid).matches_with_events(&nobody(), &events));
    assert!(!matches_with_events(&f, &nobody(), &events, &ctx()));
}

#[test]
fn without_events_every_evaluator_sees_none() {
    let ctx = ctx();
    for (filter, expected) in [
        ("did purchase", false),
        ("did_not purchase", true),
        ("sum amount of purchase = 0", true),
        ("count of purchase < 1", true),
        ("last app_open before 30d ago", false),
    ] {
        let f = text(filter);
        assert_eq!(matches(&f, &nobody(), &ctx), expected, "{filter}");
        assert_eq!(resolve(&f, &ctx).matches(&nobody()), expected, "{filter}");
    }
}

/// The examples table of `docs/filters.md`: each row's text and JSON give one filter.
#[test]
fn the_examples_of_the_docs_mean_what_they_say() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/filters.md");
    let docs = std::fs::read_to_string(&path).expect("docs/filters.md is readable");
    let section = docs
        .split("### Examples")
        .nth(1)
        .and_then(|rest| rest.split("\n## ").next())
        .expect("an Examples section");
    let mut rows = 0;
    for line in section.lines().filter(|l| l.starts_with("| ")) {
        let cells: Vec<&str> = line.split(" | ").collect();
        let code = |cell: &str| -> Option<String> {
            let cell = cell.trim().trim_end_matches('|').trim();
            cell.strip_prefix('`')
                .and_then(|c| c.strip_suffix('`'))
                .map(str::to_owned)
        };
        let (Some(text_form), Some(json_form)) = (code(cells[1]), code(cells[2])) else {
            continue; // the header
        };
        let json_form: Json = serde_json::from_str(&json_form)
            .unwrap_or_else(|e| panic!("{json_form}: not JSON: {e}"));
        assert_eq!(text(&text_form), from_json(&json_form), "{text_form}");
        rows += 1;
    }
    assert!(rows >= 7, "found {rows} examples");
}
