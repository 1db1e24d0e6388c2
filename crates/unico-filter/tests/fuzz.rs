//! Fuzzing on stable: the text and JSON parsers, and the checker behind them, fed hostile
//! input (arbitrary strings, soups of the language's own tokens, valid filters with bytes
//! changed, arbitrary JSON trees). Whatever the input, the answer is a filter or an error
//! that points inside the input, never a panic; and an accepted filter's canonical text
//! and JSON forms read back to the same filter.
//!
//! `UNICO_FUZZ_CASES=N` sets the cases per harness (default 2 000); for example
//! `UNICO_FUZZ_CASES=1000000 cargo test --release -p unico-filter --test fuzz`.
#![allow(clippy::unwrap_used)]

mod common;

use common::schema;
use proptest::prelude::*;
use serde_json::Value as Json;
use unico_filter::{EvalContext, Filter, FilterInput, Location, parse_json, parse_text, resolve};

fn config() -> ProptestConfig {
    let cases = std::env::var("UNICO_FUZZ_CASES")
        .ok()
        .map(|v| v.parse().expect("UNICO_FUZZ_CASES must be a number"))
        .unwrap_or(2_000);
    ProptestConfig {
        cases,
        max_shrink_iters: 10_000,
        ..ProptestConfig::default()
    }
}

/// Words, names, literals and punctuation of the text form, including its edge cases,
/// beside its keywords ([`unico_filter::text::KEYWORDS`]).
const TOKENS: &[&str] = &[
    "count",
    "sum",
    "avg",
    "min",
    "max",
    "first",
    "last",
    "subscribed",
    "of",
    "times",
    "at_least",
    "at_most",
    "exactly",
    "where",
    "email",
    "sms",
    "in-app",
    "age",
    "country",
    "tier",
    "last_purchase_at",
    "birthdate",
    "signup_date",
    "`last purchase`",
    "`a``b`",
    "país",
    "purchase",
    "email_open",
    "app_open",
    "add_to_cart",
    "`order.completed-v2`",
    "amount",
    "currency",
    "sku",
    "x",
    "=",
    "!=",
    "<",
    "<=",
    ">",
    ">=",
    "(",
    ")",
    ",",
    "\"",
    "`",
    "\"ES\"",
    "\"\"",
    "\"a\\\"b\"",
    "\"\\u00e9\"",
    "\"\\ud800\"",
    "0",
    "-1",
    "1e308",
    "1e309",
    "-0",
    "3.5",
    "0.1",
    "99999999999999999999",
    "NaN",
    "inf",
    "7d",
    "90d",
    "24h",
    "1000000d",
    "1000001d",
    "0d",
    "2m",
    "1y",
    "\"2026-02-29\"",
    "\"2024-02-29\"",
    "\"2026-11-02T10:00:00+01:00\"",
    "\"2026-11-02T10:00:00+24:00\"",
    "\"9999-12-31\"",
    "\"0000-01-01\"",
    "\n",
    "\t",
    " ",
    "\u{feff}",
    "\u{0}",
    "é",
    "👍",
];

fn token_soup() -> impl Strategy<Value = String> {
    prop::collection::vec(
        (
            prop::sample::select(
                unico_filter::text::KEYWORDS
                    .iter()
                    .chain(TOKENS)
                    .copied()
                    .collect::<Vec<&str>>(),
            ),
            prop::sample::select(&[" ", " ", " ", "", "\n"][..]),
        ),
        0..40,
    )
    .prop_map(|parts| parts.into_iter().map(|(t, s)| format!("{t}{s}")).collect())
}

/// Valid filters of many shapes, to be damaged.
const VALID: &[&str] = &[
    "country = \"ES\" and age between 25 and 34",
    "tier in (\"gold\", \"platinum\") and last_purchase_at before 90d ago",
    "country = \"ES\" or (age > 50 and not tier exists)",
    "birthdate anniversary",
    "birthdate anniversary within 7d",
    "last_purchase_at within_last 30d",
    "signup_date on \"2024-02-29\"",
    "`last purchase` contains \"x\" or `a``b` >= 3",
    "did purchase at_least 3 times within_last 90d",
    "did_not email_open within_last 30d",
    "sum amount of purchase within_last 365d > 500",
    "did purchase on pos where amount > 100 within_last 180d",
    "last app_open before 30d ago",
    "count of add_to_cart >= 2 and did purchase where sku = \"a\"",
    "subscribed email and not subscribed `in-app`",
    "país not_in (\"ES\", \"FR\") and age not_exists",
    "last_purchase_at after \"2026-11-02T10:00:00+01:00\"",
];

/// A valid filter with a few characters inserted, removed or replaced.
fn damaged() -> impl Strategy<Value = String> {
    (
        prop::sample::select(VALID),
        prop::collection::vec((any::<prop::sample::Index>(), 0u8..3, any::<char>()), 1..6),
    )
        .prop_map(|(text, edits)| {
            let mut chars: Vec<char> = text.chars().collect();
            for (at, kind, c) in edits {
                let i = at.index(chars.len() + 1);
                match kind {
                    0 => chars.insert(i, c),
                    1 if i < chars.len() => {
                        chars.remove(i);
                    }
                    _ if i < chars.len() => chars[i] = c,
                    _ => chars.push(c),
                }
            }
            chars.into_iter().collect()
        })
}

/// Keys and values the JSON form uses, so that random trees reach deep into the parser.
fn json_tree() -> impl Strategy<Value = Json> {
    const KEYS: &[&str] = &[
        "field",
        "op",
        "value",
        "and",
        "or",
        "not",
        "event",
        "did",
        "did_not",
        "count",
        "agg",
        "property",
        "where",
        "channel",
        "within_last",
        "within_days",
        "between",
        "ago",
        "from_now",
        "subscribed",
        "eq",
        "gte",
        "lte",
        "",
        "x",
    ];
    const STRINGS: &[&str] = &[
        "age",
        "country",
        "birthdate",
        "last_purchase_at",
        "purchase",
        "amount",
        "email",
        "=",
        "!=",
        ">",
        "in",
        "between",
        "exists",
        "anniversary",
        "before",
        "within_last",
        "contains",
        "sum",
        "avg",
        "count",
        "last",
        "7d",
        "90d",
        "0d",
        "ES",
        "2024-02-29",
        "2026-11-02T10:00:00Z",
        "not a date",
        "",
    ];
    let leaf = prop_oneof![
        Just(Json::Null),
        any::<bool>().prop_map(Json::Bool),
        any::<i64>().prop_map(Json::from),
        any::<f64>().prop_map(|f| serde_json::Number::from_f64(f).map_or(Json::Null, Json::Number)),
        prop::sample::select(STRINGS).prop_map(|s| Json::String(s.to_owned())),
        ".{0,12}".prop_map(Json::String),
    ];
    leaf.prop_recursive(6, 64, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Json::Array),
            prop::collection::vec((prop::sample::select(KEYS), inner), 0..6).prop_map(|kv| {
                Json::Object(kv.into_iter().map(|(k, v)| (k.to_owned(), v)).collect())
            }),
        ]
    })
}

/// What every input must meet: no panic (proptest reports one as a failure), an error
/// that points inside the text, and an accepted filter whose canonical forms read back
/// to itself.
fn check_text(input: &str) {
    let schema = schema();
    match parse_text(input) {
        Err(e) => {
            if let &Location::Text { line, column } = e.location() {
                let lines: Vec<&str> = input.split('\n').collect();
                assert!(
                    (1..=lines.len()).contains(&line),
                    "line {line} outside the input: {e}"
                );
                let width = lines[line - 1].chars().count();
                assert!(
                    (1..=width + 1).contains(&column),
                    "column {column} outside line {line} ({width} characters): {e}"
                );
            }
            assert!(!e.to_string().is_empty());
        }
        Ok(ast) => {
            if let Ok(filter) = unico_filter::check(&ast, &schema) {
                round_trips(&filter);
            }
        }
    }
}

fn check_json(input: &Json) {
    let schema = schema();
    if let Ok(ast) = parse_json(input)
        && let Ok(filter) = unico_filter::check(&ast, &schema)
    {
        round_trips(&filter);
    }
}

fn round_trips(filter: &Filter) {
    let schema = schema();
    let text = filter.to_text();
    let again = Filter::parse(FilterInput::Text(&text), &schema)
        .unwrap_or_else(|e| panic!("the canonical text {text:?} does not parse: {e}"));
    assert_eq!(&again, filter, "{text}");
    let json = filter.to_json();
    let again = Filter::parse(FilterInput::Json(&json), &schema)
        .unwrap_or_else(|e| panic!("the canonical JSON {json} does not parse: {e}"));
    assert_eq!(&again, filter, "{json}");
    // Lowering relative times must not panic either, at any clock.
    for now_ms in [
        0,
        1_764_000_000_000,
        253_402_300_799_999,
        -62_135_596_800_000,
    ] {
        let _ = resolve(filter, &EvalContext::new(now_ms, jiff::tz::TimeZone::UTC));
    }
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn text_parser_never_panics_on_arbitrary_strings(input in ".{0,200}") {
        check_text(&input);
    }

    #[test]
    fn text_parser_never_panics_on_token_soup(input in token_soup()) {
        check_text(&input);
    }

    #[test]
    fn text_parser_never_panics_on_damaged_filters(input in damaged()) {
        check_text(&input);
    }

    #[test]
    fn json_parser_never_panics_on_arbitrary_trees(input in json_tree()) {
        check_json(&input);
    }

    #[test]
    fn json_parser_never_panics_on_arbitrary_json_text(input in ".{0,200}") {
        if let Ok(value) = serde_json::from_str::<Json>(&input) {
            check_json(&value);
        }
    }
}
