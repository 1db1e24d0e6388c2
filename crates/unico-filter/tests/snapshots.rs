//! Data-driven snapshot tests of the parsers: the trees they build and the errors users
//! see, for good and hostile input. Refresh with `INSTA_UPDATE=always`, then review the
//! `.snap` files by reading them.

mod common;

use serde_json::{Value, json};
use unico_filter::limits::{MAX_DEPTH, MAX_FILTER_BYTES, MAX_IN_VALUES};
use unico_filter::{ErrorKind, FilterError, check, parse_json, parse_text};

fn error_line(e: &FilterError) -> String {
    format!("error[{}]: {e}", e.code())
}

/// Each input, then its tree or its error.
fn text_trees(inputs: &[&str]) -> String {
    let mut out = String::new();
    for input in inputs {
        out.push_str(&format!("> {input}\n"));
        match parse_text(input) {
            Ok(ast) => out.push_str(&common::render_ast(&ast)),
            Err(e) => out.push_str(&format!("{}\n", error_line(&e))),
        }
        out.push('\n');
    }
    out
}

/// Each input, then the error of parsing and checking it, or its canonical text.
fn text_checks(inputs: &[&str]) -> String {
    let schema = common::schema();
    let mut out = String::new();
    for input in inputs {
        out.push_str(&format!("> {input}\n"));
        match parse_text(input).and_then(|ast| check(&ast, &schema)) {
            Ok(filter) => out.push_str(&format!("ok: {filter}\n")),
            Err(e) => out.push_str(&format!("{}\n", error_line(&e))),
        }
        out.push('\n');
    }
    out
}

fn json_checks(inputs: &[Value]) -> String {
    let schema = common::schema();
    let mut out = String::new();
    for input in inputs {
        out.push_str(&format!("> {input}\n"));
        match parse_json(input).and_then(|ast| check(&ast, &schema)) {
            Ok(filter) => out.push_str(&format!("ok: {filter}\n")),
            Err(e) => out.push_str(&format!("{}\n", error_line(&e))),
        }
        out.push('\n');
    }
    out
}

#[test]
fn text_trees_of_good_input() {
    let report = text_trees(&[
        r#"country = "ES" and age between 25 and 34 and not gender = "F" and (tier in ("gold", "platinum") or last_purchase_at before 90d ago)"#,
        "a = 1 or b = 2 and c = 3",
        "(a = 1 or b = 2) and c = 3",
        "not a = 1 and b = 2",
        "not (a = 1 or b = 2)",
        "not not a exists",
        "a = 1 or b = 2 or c = 3 and d = 4 and e = 5",
        "((((a = 1))))",
        "AND_field = 1 AND x NOT_EXISTS Or y Exists",
        "`last purchase` exists and `on` = \"x\" and `a``b` > 1 and país = \"España\"",
        "age != -3.5 and age < 1e3 and age <= 2.5E-3 and age > -0 and age >= 42",
        "x in (1, -2, \"three\")",
        "x not_in (\"a\")",
        "x contains \"ab\" and x not_contains \"c\" and x starts_with \"d\" and x ends_with \"e\"",
        "t after 7d from now and t before 90m ago and t between 2w ago and 1h from now",
        "t within_last 30d and t not_within_last 12h",
        "t on \"2024-05-01\" and t anniversary and t anniversary within 7d",
        r#"s = "quote \" backslash \\ slash \/ newline \n tab \t unicode \u00e9 \ud83d\ude00 end""#,
        "s = \"raw\nnewline and emoji 🎉 and ñ\"",
        "a = 1\n  and\n  b = 2",
        "  customerId starts_with \"ana\"  ",
    ]);
    insta::assert_snapshot!(report);
}

#[test]
fn text_syntax_errors() {
    let report = text_trees(&[
        "",
        "   \n  ",
        "age",
        "age =",
        "age = = 3",
        "age == 3",
        "age <> 3",
        "age ! 3",
        "country = 'ES'",
        "country = ES",
        "country = \"ES",
        "country = \"ES\\q\"",
        "country = \"\\u12\"",
        "country = \"\\ud83d\"",
        "`last purchase exists",
        "`` exists",
        "(age = 1",
        "age = 1)",
        "age = 1 and",
        "and age = 1",
        "age = 1 age = 2",
        "tier in ()",
        "tier in (\"a\",)",
        "tier in \"a\"",
        "tier in (\"a\" \"b\")",
        "age between 1 or 2",
        "last_purchase_at before 90d",
        "last_purchase_at before 90d from",
        "last_purchase_at within_last 30",
        "last_purchase_at within_last 1.5d",
        "last_purchase_at within_last -5d",
        "last_purchase_at within_last 30x",
        "last_purchase_at within_last 99999999999d",
        "birthdate anniversary within",
        "2fa = 1",
        "age = 12abc",
        "age = -",
        "exists exists",
        "in = 1",
        "gender not in (\"F\")",
        "age eq 5",
        "age equals 5",
        "age = 1 # comment",
        "age = 1 \u{7}",
        "né = \"x\" and ☃ = 1",
        "país = \"x\" and\n  (age = 1\n   or )",
    ]);
    insta::assert_snapshot!(report);
}

#[test]
fn check_errors_of_text_input() {
    let report = text_checks(&[
        "agee > 30",
        "Country = \"ES\"",
        "customerid = \"x\"",
        "id = 1",
        "zzzzzz = 1",
        "AGE > 30",
        "age = \"abc\"",
        "age = \"3,5\"",
        "age = \"nan\"",
        "age = 1e999",
        "age = \"\"",
        "age contains \"4\"",
        "age > 90d ago",
        "age before 3",
        "country > 5",
        "country = 5",
        "country = \"\"",
        "country within_last 3d",
        "last_purchase_at = \"2024-05-01\"",
        "last_purchase_at before \"yesterday\"",
        "last_purchase_at before \"2024-05-01T10:00:00\"",
        "last_purchase_at before 1714557600000",
        "last_purchase_at on 1d ago",
        "last_purchase_at on \"2024-13-01\"",
        "last_purchase_at on \"2024-05-01T10:00:00Z\"",
        "birthdate before \"2024-05-01T10:00:00Z\"",
        "birthdate within_last 12h",
        "birthdate after 90m ago",
        "birthdate anniversary within 367d",
        "birthdate anniversary within 53w",
        "birthdate anniversary within 2h",
        "created_at contains \"2024\"",
        "customerId > 3",
        "tier in (\"gold\", 3)",
        "age between 1 and \"x\"",
        "age = 1 and (country = \"ES\" or agee = 2)",
        "país = \"x\" and\n  edad > 30",
    ]);
    insta::assert_snapshot!(report);
}

#[test]
fn checked_filters_print_canonically() {
    let report = text_checks(&[
        r#"country = "ES" and age between 25 and 34 and not gender = "F" and (tier in ("gold", "platinum") or last_purchase_at before 90d ago)"#,
        "age > 30 AND NOT (country = \"ES\" OR country = \"FR\")",
        "age = \"42\" and age >= 1e3 and age < 0.000001 and age > 1e300 and age != -0",
        "(age = 1 and age = 2) and (age = 3 or age = 4) or not (age = 5)",
        "last_purchase_at after \"2024-03-05T15:22:10+01:00\" and last_purchase_at before \"2024-05-01\"",
        "birthdate between \"1980-01-01\" and 18w ago and signup_date within_last 2w",
        "birthdate anniversary within 2w and birthdate anniversary within 0d and birthdate anniversary",
        "`last purchase` contains \"Ñ\\\"`\" and `on` exists and `a``b` not_exists and país = \"tab\\there\"",
        "created_at on \"2024-02-29\" and updated_at within_last 90m and customerId in (\"a\", \"b\")",
    ]);
    insta::assert_snapshot!(report);
}

#[test]
fn json_form_parses_and_errors_carry_a_path() {
    let report = json_checks(&[
        json!({"and": [
            {"field": "country", "op": "eq", "value": "ES"},
            {"field": "age", "op": "between", "value": [25, 34]},
            {"not": {"field": "gender", "op": "eq", "value": "F"}},
            {"or": [ {"field": "tier", "op": "in", "value": ["gold", "platinum"]},
                     {"field": "last_purchase_at", "op": "before", "value": {"ago": "90d"}} ]}
        ]}),
        json!({"and": [{"field": "age", "op": "GT", "value": "30"}]}),
        json!({"field": "last_purchase_at", "op": "after", "value": 1714557600000_i64}),
        json!({"field": "birthdate", "op": "anniversary", "value": {"within_days": 7}}),
        json!({"field": "birthdate", "op": "anniversary", "value": null}),
        json!({"field": "age", "op": "exists", "value": null}),
        json!({"field": "age", "op": "gte", "value": 1.5e300}),
        json!([1, 2]),
        json!("age > 3"),
        json!({}),
        json!({"and": []}),
        json!({"and": {"field": "age", "op": "exists"}}),
        json!({"and": [], "field": "age"}),
        json!({"field": "age", "op": "exists", "extra": 1}),
        json!({"op": "exists"}),
        json!({"field": "age"}),
        json!({"field": "", "op": "exists"}),
        json!({"field": 3, "op": "exists"}),
        json!({"field": "age", "op": 3}),
        json!({"field": "age", "op": "greater"}),
        json!({"field": "age", "op": "gt"}),
        json!({"field": "age", "op": "exists", "value": 3}),
        json!({"field": "age", "op": "between", "value": [1, 2, 3]}),
        json!({"field": "age", "op": "between", "value": 3}),
        json!({"field": "age", "op": "in", "value": []}),
        json!({"field": "age", "op": "in", "value": 3}),
        json!({"field": "age", "op": "in", "value": [1, true]}),
        json!({"field": "age", "op": "gt", "value": {"ago": 3}}),
        json!({"field": "age", "op": "gt", "value": {"since": "3d"}}),
        json!({"field": "age", "op": "gt", "value": {"ago": "3d"}}),
        json!({"field": "last_purchase_at", "op": "within_last", "value": 30}),
        json!({"field": "last_purchase_at", "op": "within_last", "value": "30 days"}),
        json!({"field": "last_purchase_at", "op": "after", "value": 1.5}),
        json!({"field": "last_purchase_at", "op": "after", "value": 999_999_999_999_999_i64}),
        json!({"field": "birthdate", "op": "after", "value": 0}),
        json!({"field": "birthdate", "op": "anniversary", "value": {"within_days": -1}}),
        json!({"field": "birthdate", "op": "anniversary", "value": {"within_days": 400}}),
        json!({"field": "birthdate", "op": "anniversary", "value": 7}),
        json!({"and": [
            {"field": "age", "op": "gt", "value": 1},
            {"or": [{"field": "age", "op": "exists"}, {"field": "agee", "op": "exists"}]}
        ]}),
        json!({"and": [
            {"field": "age", "op": "gt", "value": 1},
            {"field": "age", "op": "lt", "value": 2},
            {"field": "age", "op": "eq", "value": "abc"}
        ]}),
        json!({"not": {"field": "country", "op": "contains", "value": 3}}),
        json!({"field": "country", "op": "lt", "value": "x"}),
    ]);
    insta::assert_snapshot!(report);
}

// ---- limits: one test at each limit and one past it ----

/// `{key: inner}`, built without `json!` (which would clone `inner` recursively).
fn wrap(key: &str, inner: Value) -> Value {
    let mut map = serde_json::Map::new();
    map.insert(key.to_owned(), inner);
    Value::Object(map)
}

fn deep_not_text(nots: usize) -> String {
    format!("{}age = 1", "not ".repeat(nots))
}

fn deep_not_json(nots: usize) -> Value {
    let mut v = json!({"field": "age", "op": "eq", "value": 1});
    for _ in 0..nots {
        v = wrap("not", v);
    }
    v
}

/// Alternating and/or groups, `levels` deep in all (the innermost level a condition).
fn deep_groups_json(levels: usize) -> Value {
    let mut v = json!({"field": "age", "op": "eq", "value": 1});
    for i in 1..levels {
        let key = if i % 2 == 0 { "and" } else { "or" };
        v = wrap(
            key,
            Value::Array(vec![json!({"field": "age", "op": "gt", "value": i}), v]),
        );
    }
    v
}

fn kind_of(result: Result<unico_filter::Ast, FilterError>) -> Option<ErrorKind> {
    result.err().map(|e| e.kind().clone())
}

#[test]
fn depth_limit_at_64_levels_in_both_forms() {
    let schema = common::schema();
    // A lone condition is level 1, so 63 nots make 64 levels.
    let at = parse_text(&deep_not_text(MAX_DEPTH - 1)).expect("64 levels parse");
    assert!(check(&at, &schema).is_ok());
    let past = parse_text(&deep_not_text(MAX_DEPTH)).unwrap_err();
    assert_eq!(past.kind(), &ErrorKind::TooDeep);

    assert!(parse_json(&deep_not_json(MAX_DEPTH - 1)).is_ok());
    assert_eq!(
        kind_of(parse_json(&deep_not_json(MAX_DEPTH))),
        Some(ErrorKind::TooDeep)
    );

    // Groups: the canonical text of a 64-level tree parses back; 65 levels do not, in
    // either form.
    let filter = check(
        &parse_json(&deep_groups_json(MAX_DEPTH)).expect("64 levels"),
        &schema,
    )
    .expect("checks");
    let text = filter.to_text();
    let back = check(&parse_text(&text).expect("canonical text parses"), &schema).expect("checks");
    assert_eq!(back, filter);
    assert_eq!(
        kind_of(parse_json(&deep_groups_json(MAX_DEPTH + 1))),
        Some(ErrorKind::TooDeep)
    );
    let deeper = format!("age = 0 and ({text})");
    assert_eq!(kind_of(parse_text(&deeper)), Some(ErrorKind::TooDeep));

    // Redundant parentheses are bounded too.
    let parens = |n: usize| format!("{}age = 1{}", "(".repeat(n), ")".repeat(n));
    assert!(parse_text(&parens(MAX_DEPTH)).is_ok());
    assert_eq!(
        kind_of(parse_text(&parens(MAX_DEPTH + 1))),
        Some(ErrorKind::TooDeep)
    );

    let report = [
        error_line(&past),
        error_line(&parse_json(&deep_not_json(MAX_DEPTH)).unwrap_err()),
        error_line(&parse_text(&parens(MAX_DEPTH + 1)).unwrap_err()),
        error_line(&parse_text(&deeper).unwrap_err()),
    ]
    .join("\n");
    insta::assert_snapshot!(report);
}

#[test]
fn hostile_nesting_is_an_error_not_a_stack_overflow() {
    for input in [
        "(".repeat(60_000),
        "not ".repeat(16_000),
        format!("{}age = 1{}", "(".repeat(30_000), ")".repeat(30_000)),
    ] {
        assert_eq!(kind_of(parse_text(&input)), Some(ErrorKind::TooDeep));
    }
    // serde_json itself refuses nesting past 128, so build the value by hand, as deep as
    // fits in the size limit (9 bytes a level).
    let mut v = json!({"field": "age", "op": "exists"});
    for _ in 0..7_000 {
        v = wrap("not", v);
    }
    let result = kind_of(parse_json(&v));
    // Dropping a deep Value recurses in serde_json; leak it so that the fixture itself
    // cannot overflow the test thread's stack.
    std::mem::forget(v);
    assert_eq!(result, Some(ErrorKind::TooDeep));
}

#[test]
fn size_limit_is_64_kib_in_both_forms() {
    let schema = common::schema();
    let text = |len: usize| format!("age = 1{}", " ".repeat(len - "age = 1".len()));
    assert!(parse_text(&text(MAX_FILTER_BYTES)).is_ok());
    let past = parse_text(&text(MAX_FILTER_BYTES + 1)).unwrap_err();
    assert_eq!(
        past.kind(),
        &ErrorKind::TooLarge {
            bytes: MAX_FILTER_BYTES + 1
        }
    );

    // A JSON filter padded so that its compact form is exactly `len` bytes.
    let json_of = |len: usize| {
        let mut v = json!({"field": "country", "op": "in", "value": ["é\"\n\u{1}"]});
        let base = serde_json::to_string(&v).map_or(0, |s| s.len());
        v["value"][0] = Value::String(format!("é\"\n\u{1}{}", "x".repeat(len - base)));
        assert_eq!(serde_json::to_string(&v).map_or(0, |s| s.len()), len);
        v
    };
    let at = json_of(MAX_FILTER_BYTES);
    assert!(parse_json(&at).is_ok());
    // (The value itself is longer than a string value may be: checking says so.)
    assert_eq!(
        check(&parse_json(&at).expect("parses"), &schema)
            .unwrap_err()
            .code(),
        "filter_invalid_value"
    );
    let json_past = parse_json(&json_of(MAX_FILTER_BYTES + 1)).unwrap_err();
    assert_eq!(
        json_past.kind(),
        &ErrorKind::TooLarge {
            bytes: MAX_FILTER_BYTES + 1
        }
    );

    let report = format!("{}\n{}", error_line(&past), error_line(&json_past));
    insta::assert_snapshot!(report);
}

#[test]
fn in_lists_hold_at_most_10_000_values() {
    let schema = common::schema();
    let text = |n: usize| format!("age in ({})", vec!["1"; n].join(","));
    let at = parse_text(&text(MAX_IN_VALUES)).expect("10 000 values parse");
    assert!(check(&at, &schema).is_ok());
    let past = parse_text(&text(MAX_IN_VALUES + 1)).unwrap_err();
    assert_eq!(past.kind(), &ErrorKind::ListTooLong);

    let json_of = |n: usize| json!({"field": "age", "op": "not_in", "value": vec![1; n]});
    let at = parse_json(&json_of(MAX_IN_VALUES)).expect("10 000 values parse");
    assert!(check(&at, &schema).is_ok());
    let json_past = parse_json(&json_of(MAX_IN_VALUES + 1)).unwrap_err();
    assert_eq!(json_past.kind(), &ErrorKind::ListTooLong);

    let report = format!("{}\n{}", error_line(&past), error_line(&json_past));
    insta::assert_snapshot!(report);
}

#[test]
fn text_and_json_of_the_spec_example_give_the_same_filter() {
    let schema = common::schema();
    let text = r#"country = "ES" and age between 25 and 34 and not gender = "F" and (tier in ("gold", "platinum") or last_purchase_at before 90d ago)"#;
    let json = json!({"and": [
        {"field": "country", "op": "eq", "value": "ES"},
        {"field": "age", "op": "between", "value": [25, 34]},
        {"not": {"field": "gender", "op": "eq", "value": "F"}},
        {"or": [ {"field": "tier", "op": "in", "value": ["gold", "platinum"]},
                 {"field": "last_purchase_at", "op": "before", "value": {"ago": "90d"}} ]}
    ]});
    let from_text = check(&parse_text(text).expect("parses"), &schema).expect("checks");
    let from_json = check(&parse_json(&json).expect("parses"), &schema).expect("checks");
    assert_eq!(from_text, from_json);
    assert_eq!(from_text.to_text(), text);
    assert_eq!(from_text.to_json(), json);
}

// ---- event conditions ----

#[test]
fn event_condition_trees() {
    let report = text_trees(&[
        "did purchase at_least 3 times within_last 90d",
        "did_not purchase on pos where (amount > 100 and currency in (\"EUR\", \"USD\")) between \"2024-01-01\" and 7d ago",
        "sum amount of purchase within_last 365d > 500 and country = \"ES\"",
        "count of `order.completed-v2` ever between 1 and 3",
        "last app_open on web before 30d ago",
        "first app_open on \"2024-05-01\"",
        "last = 3 or count > 2 or did exists or not sum in (1) or first != \"x\"",
    ]);
    insta::assert_snapshot!(report);
}

#[test]
fn event_condition_errors() {
    let mut report = text_checks(&[
        "did purchse within_last 30d",
        "did purchase on web on app",
        "did purchase within_last 30d ever",
        "did purchase at_least 1 at_most 3",
        "did purchase where amount > 1 where amount < 3",
        "last app_open within_last 30d",
        "last app_open ever before 30d ago",
        "last app_open before 30d ago within_last 7d",
        "sum of purchase > 500",
        "count amount of purchase > 5",
        "sum currency of purchase > 5",
        "did purchase at_least -1 times",
        "did purchase at_least 2.5 times",
        "did purchase at_least 9999999 times",
        "did purchase within_last 1.5d",
        "did purchase within_last 30",
        "did purchase between \"2024-01-01\" and 5",
        "sum amount of purchase between 10 and 7d ago",
        "did purchase where amount = \"x\"",
        "did purchase where currency = 5",
        "did purchase where currency > 5",
        "did email_open where opens exists",
        "did email_open where opens before 3d ago",
        "did email_open where opens in (1, \"x\")",
        "sum amount of purchase contains \"x\"",
        "last app_open = 5",
        "did not purchase",
        "count equals 3",
        "did purchase on \"web\"",
        "did purchase on `e mail`",
        "did purchase where (amount > 1 or amount < 0)",
        "sum amount of purchase > 5 on web",
        "count of purchase at_least 3",
        "first purchase",
    ]);
    report.push_str(&json_checks(&[
        json!({"event": "purchse", "op": "did"}),
        json!({"event": "purchase", "op": "did", "count": {"gte": 2.5}}),
        json!({"event": "purchase", "op": "did", "count": {"more": 2}}),
        json!({"event": "purchase", "op": "did", "within_last": "30 days"}),
        json!({"event": "purchase", "op": "did", "within_last": "3d", "between": ["2024-01-01", "2024-02-01"]}),
        json!({"event": "purchase", "op": "did", "between": ["2024-01-01", 1.5]}),
        json!({"event": "purchase", "op": "did", "where": {"field": "amount", "op": "gt", "value": "x"}}),
        json!({"event": "purchase", "op": "did", "where": [{"field": "currency", "op": "eq", "value": "EUR"}, {"field": "store", "op": "eq", "value": 3}]}),
        json!({"event": "email_open", "op": "did", "where": {"field": "opens", "op": "not_exists"}}),
        json!({"event": "app_open", "agg": "last", "op": "before", "value": {"ago": "30d"}, "within_last": "90d"}),
        json!({"event": "purchase", "agg": "sum", "op": "gt", "value": 500}),
        json!({"event": "purchase", "agg": "count", "property": "amount", "op": "gt", "value": 5}),
        json!({"event": "purchase", "agg": "median", "property": "amount", "op": "gt", "value": 5}),
        json!({"event": "purchase", "agg": "sum", "property": "amount", "op": "within_last", "value": "3d"}),
        json!({"event": "purchase", "op": "gte"}),
        json!({"event": "purchase", "op": "did", "value": 3}),
        json!({"event": "purchase", "op": "did", "channel": "e mail"}),
        json!({"event": "purchase", "op": "did", "extra": 1}),
        json!({"event": "purchase", "op": "did", "where": []}),
    ]));
    insta::assert_snapshot!(report);
}

#[test]
fn subscription_condition_trees() {
    let report = text_trees(&[
        "subscribed email",
        "not subscribed SMS and Subscribed `in-app`",
        "subscribed = \"yes\" or subscribed exists or subscribed in (\"a\")",
        "subscribed `on` or did purchase",
    ]);
    insta::assert_snapshot!(report);
}

#[test]
fn subscription_condition_errors() {
    let mut report = text_checks(&[
        "subscribed emial",
        "country = \"ES\" and not subscribed whatsap",
        "subscribed web",
        "subscribed `e mail`",
        "subscribed",
        "subscribed on",
        "subscribed \"email\"",
        "subscribed email sms",
        "subscribed = 3",
    ]);
    report.push_str(&json_checks(&[
        json!({"subscribed": "emial"}),
        json!({"and": [{"field": "age", "op": "gt", "value": 3}, {"not": {"subscribed": "fax"}}]}),
        json!({"subscribed": true}),
        json!({"subscribed": ""}),
        json!({"subscribed": "email", "channel": "sms"}),
        json!({"subscribed": ["email"]}),
    ]));
    insta::assert_snapshot!(report);
}
