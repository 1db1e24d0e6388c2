//! CSV export: the long and wide shapes, formula neutralisation, raw round trips through
//! the importer, and the parameters.

use axum::http::StatusCode;
use serde_json::{Value, json};

use crate::support::*;

/// Parses an export (RFC 4180, LF line ends, every record ended by LF) into its cells.
fn parse_csv(text: &str) -> Vec<Vec<String>> {
    let (mut rows, mut row, mut cell) = (Vec::new(), Vec::new(), String::new());
    let mut chars = text.chars().peekable();
    let mut quoted = false;
    let mut was_quoted = false;
    while let Some(c) = chars.next() {
        if quoted {
            if c == '"' {
                if chars.peek() == Some(&'"') {
                    chars.next();
                    cell.push('"');
                } else {
                    quoted = false;
                }
            } else {
                cell.push(c);
            }
            continue;
        }
        match c {
            '"' => {
                assert!(cell.is_empty() && !was_quoted, "stray quote in {text:?}");
                quoted = true;
                was_quoted = true;
            }
            ',' => {
                row.push(std::mem::take(&mut cell));
                was_quoted = false;
            }
            '\n' => {
                row.push(std::mem::take(&mut cell));
                rows.push(std::mem::take(&mut row));
                was_quoted = false;
            }
            _ => {
                assert!(!was_quoted, "text after a closing quote in {text:?}");
                cell.push(c);
            }
        }
    }
    assert!(
        !quoted && cell.is_empty() && row.is_empty(),
        "the export does not end with a line break: {text:?}"
    );
    rows
}

fn cells(rows: &[&[&str]]) -> Vec<Vec<String>> {
    rows.iter()
        .map(|r| r.iter().map(|c| (*c).to_owned()).collect())
        .collect()
}

async fn export_ok(api: &Api, app: &App, query: &str) -> String {
    let (status, headers, text) = api.export_csv(app, &app.key, query).await;
    assert_eq!(status, StatusCode::OK, "{text}");
    let content_type = headers["content-type"].to_str().unwrap();
    assert!(
        content_type.starts_with("text/csv"),
        "content-type {content_type}"
    );
    text
}

/// city (string), age (number), signup_at (datetime), birthday (date): not alphabetical.
async fn app_with_fields(api: &Api, name: &str) -> App {
    let a = api.create_app(name).await;
    for (name, ty) in [
        ("city", "string"),
        ("age", "number"),
        ("signup_at", "datetime"),
        ("birthday", "date"),
    ] {
        api.create_field(&a, name, ty).await;
    }
    a
}

/// Customers created in customerId order (so any stable export order is this one).
async fn three_customers(api: &Api, a: &App) {
    api.create_customer(
        a,
        "a",
        json!({
            "age": 31,
            "city": "Madrid",
            "signup_at": "2024-03-05T15:22:10+01:00",
            "birthday": "1994-11-28",
        }),
    )
    .await;
    api.create_customer(a, "b", json!({})).await;
    api.create_customer(a, "c", json!({"age": -3.5, "birthday": "2000-02-29"}))
        .await;
}

#[tokio::test]
async fn a_long_export_writes_one_row_per_value_and_customer_id_alone_for_no_fields() {
    let api = Api::new();
    let a = app_with_fields(&api, "A").await;
    three_customers(&api, &a).await;
    // Another application's customers never appear.
    let other = app_with_fields(&api, "B").await;
    api.create_customer(&other, "zzz", json!({"age": 1})).await;

    let expected = "customerId,fieldName,fieldValue\n\
                    a,city,Madrid\n\
                    a,age,31\n\
                    a,signup_at,2024-03-05T14:22:10.000Z\n\
                    a,birthday,1994-11-28\n\
                    b,,\n\
                    c,age,-3.5\n\
                    c,birthday,2000-02-29\n";
    assert_eq!(export_ok(&api, &a, "").await, expected);
    assert_eq!(export_ok(&api, &a, "?format=long").await, expected);
    assert_eq!(export_ok(&api, &a, "?format=long&raw=true").await, expected);

    // An application with no customers: the header alone.
    let empty = api.create_app("Empty").await;
    assert_eq!(
        export_ok(&api, &empty, "").await,
        "customerId,fieldName,fieldValue\n"
    );
    assert_eq!(
        export_ok(&api, &empty, "?format=wide").await,
        "customerId\n"
    );
}

#[tokio::test]
async fn a_wide_export_has_one_column_per_field_in_schema_order() {
    let api = Api::new();
    let a = app_with_fields(&api, "A").await;
    three_customers(&api, &a).await;
    assert_eq!(
        export_ok(&api, &a, "?format=wide").await,
        "customerId,city,age,signup_at,birthday\n\
         a,Madrid,31,2024-03-05T14:22:10.000Z,1994-11-28\n\
         b,,,,\n\
         c,,-3.5,,2000-02-29\n"
    );
    // A field added later comes last; a deleted field is gone.
    api.create_field(&a, "email", "string").await;
    let (status, body) = api
        .send("DELETE", &a.path("/fields/age"), Some(&a.key), None)
        .await;
    assert!(status.is_success(), "{status}: {body}");
    assert_eq!(
        export_ok(&api, &a, "?format=wide").await,
        "customerId,city,signup_at,birthday,email\n\
         a,Madrid,2024-03-05T14:22:10.000Z,1994-11-28,\n\
         b,,,,\n\
         c,,,2000-02-29,\n"
    );
}

async fn formula_customers(api: &Api) -> App {
    let a = app_with_fields(api, "A").await;
    for (id, fields) in [
        ("-neg", json!({"city": "-x", "age": -5})),
        ("=cid", json!({"city": "=1+1"})),
        ("f3", json!({"city": "+x", "age": -0.25})),
        ("f4", json!({"city": "@x"})),
        ("f5", json!({"city": "\tx"})),
        ("f6", json!({"city": "\rx"})),
        ("f7", json!({"city": "a=b"})),
        ("f8", json!({"city": "'q"})),
        ("f9", json!({"city": "-3"})),
    ] {
        api.create_customer(&a, id, fields).await;
    }
    a
}

#[tokio::test]
async fn formula_cells_are_neutralised_by_default_and_numbers_never_altered() {
    let api = Api::new();
    let a = formula_customers(&api).await;
    let long = parse_csv(&export_ok(&api, &a, "").await);
    assert_eq!(
        long,
        cells(&[
            &["customerId", "fieldName", "fieldValue"],
            &["'-neg", "city", "'-x"],
            &["'-neg", "age", "-5"],
            &["'=cid", "city", "'=1+1"],
            &["f3", "city", "'+x"],
            &["f3", "age", "-0.25"],
            &["f4", "city", "'@x"],
            &["f5", "city", "'\tx"],
            &["f6", "city", "'\rx"],
            &["f7", "city", "a=b"],
            &["f8", "city", "'q"],
            &["f9", "city", "'-3"],
        ])
    );
    let wide = parse_csv(&export_ok(&api, &a, "?format=wide").await);
    assert_eq!(
        wide,
        cells(&[
            &["customerId", "city", "age", "signup_at", "birthday"],
            &["'-neg", "'-x", "-5", "", ""],
            &["'=cid", "'=1+1", "", "", ""],
            &["f3", "'+x", "-0.25", "", ""],
            &["f4", "'@x", "", "", ""],
            &["f5", "'\tx", "", "", ""],
            &["f6", "'\rx", "", "", ""],
            &["f7", "a=b", "", "", ""],
            &["f8", "'q", "", "", ""],
            &["f9", "'-3", "", "", ""],
        ])
    );
}

#[tokio::test]
async fn a_raw_export_writes_every_cell_unchanged() {
    let api = Api::new();
    let a = formula_customers(&api).await;
    for raw in ["true", "1"] {
        let long = parse_csv(&export_ok(&api, &a, &format!("?raw={raw}")).await);
        assert_eq!(
            long,
            cells(&[
                &["customerId", "fieldName", "fieldValue"],
                &["-neg", "city", "-x"],
                &["-neg", "age", "-5"],
                &["=cid", "city", "=1+1"],
                &["f3", "city", "+x"],
                &["f3", "age", "-0.25"],
                &["f4", "city", "@x"],
                &["f5", "city", "\tx"],
                &["f6", "city", "\rx"],
                &["f7", "city", "a=b"],
                &["f8", "city", "'q"],
                &["f9", "city", "-3"],
            ])
        );
    }
    let wide = parse_csv(&export_ok(&api, &a, "?format=wide&raw=true").await);
    assert_eq!(wide[1], ["-neg", "-x", "-5", "", ""]);
    assert_eq!(wide[2], ["=cid", "=1+1", "", "", ""]);
    assert_eq!(wide[6], ["f6", "\rx", "", "", ""]);
    assert_eq!(wide.len(), 10);
    // raw=false is the default.
    assert_eq!(
        export_ok(&api, &a, "?raw=false").await,
        export_ok(&api, &a, "").await
    );
}

/// The hostile customers of the round trip: (customerId, fields).
fn hostile_customers() -> Vec<(String, Value)> {
    let long_text = "é".repeat(2048);
    vec![
        (
            "plain".into(),
            json!({"s": "hello", "n": 42, "dt": "2024-03-05T15:22:10.123+01:00", "d": "1987-06-21"}),
        ),
        ("=1+1".into(), json!({"s": "=1+1", "n": -3.5})),
        ("-7".into(), json!({"s": "-x", "t": "+x"})),
        ("@x".into(), json!({"s": "@SUM(A1)", "t": "\tlead tab"})),
        ("a,b".into(), json!({"s": "\rlead cr", "t": "a,b;c"})),
        (
            "quote\"d".into(),
            json!({"s": "say \"hi\"", "t": "\"", "n": 0.1}),
        ),
        (
            "multi".into(),
            json!({"s": "line1\nline2", "t": "crlf\r\nend\r"}),
        ),
        ("spaces".into(), json!({"s": "  padded  ", "t": " "})),
        (
            "unicode é 😀".into(),
            json!({"s": "ünïcödé 😀 中文", "n": 1e300}),
        ),
        ("nul".into(), json!({"s": "nul\u{0}inside", "n": 1e-7})),
        (
            "big".into(),
            json!({"s": long_text, "n": 123_456_789_012_345_678_f64}),
        ),
        (
            "edges".into(),
            json!({"n": -1.5e15, "dt": "1900-01-01T00:00:00Z", "d": "0001-01-01"}),
        ),
        (
            "epoch".into(),
            json!({"n": 0, "dt": "1970-01-01T00:00:00Z", "d": "2000-02-29"}),
        ),
        (
            "late".into(),
            json!({"dt": "9999-12-30T21:59:59.999Z", "d": "9999-12-31"}),
        ),
        ("empty".into(), json!({})),
        ("customerId".into(), json!({"s": "customerId"})),
        ("'q".into(), json!({"s": "'already", "t": "semi;colon"})),
        ("fieldName".into(), json!({"t": ""})),
        (
            "odd names".into(),
            json!({"last, \"first\"": "Doe, \"J\"", "=calc": -1}),
        ),
    ]
}

/// s, t, `last, "first"` (string), n, `=calc` (number), dt (datetime), d (date), in `order`.
async fn round_trip_app(api: &Api, name: &str, order: &[&str]) -> App {
    let a = api.create_app(name).await;
    for field in order {
        let ty = match *field {
            "s" | "t" | "last, \"first\"" => "string",
            "n" | "=calc" => "number",
            "dt" => "datetime",
            "d" => "date",
            other => panic!("{other}"),
        };
        api.create_field(&a, field, ty).await;
    }
    a
}

async fn snapshot(api: &Api, app: &App) -> Vec<(String, Value)> {
    api.all_customers(app)
        .await
        .iter()
        .map(|c| {
            (
                c["customerId"].as_str().unwrap().to_owned(),
                c["fields"].clone(),
            )
        })
        .collect()
}

#[tokio::test]
async fn a_raw_export_imports_back_into_a_fresh_application_unchanged() {
    let api = Api::new();
    let source = round_trip_app(
        &api,
        "Source",
        &["s", "t", "n", "dt", "d", "last, \"first\"", "=calc"],
    )
    .await;
    for (id, fields) in hostile_customers() {
        api.create_customer(&source, &id, fields).await;
    }
    let original = snapshot(&api, &source).await;
    assert_eq!(original.len(), hostile_customers().len());
    assert_eq!(
        original
            .iter()
            .find(|(id, _)| id == "nul")
            .map(|(_, f)| f["s"].clone()),
        Some(json!("nul\u{0}inside"))
    );

    for (format, name) in [("long", "FromLong"), ("wide", "FromWide")] {
        let csv = export_ok(&api, &source, &format!("?format={format}&raw=true")).await;
        // The same fields, created in another order.
        let target = round_trip_app(
            &api,
            name,
            &["=calc", "d", "n", "t", "last, \"first\"", "dt", "s"],
        )
        .await;
        let report = api.import_csv(&target, "", csv.clone()).await;
        assert_eq!(report["state"], "succeeded", "{format}: {report}");
        assert_eq!(report["rows_rejected"], 0, "{format}: {report}");
        assert_eq!(
            report["created"],
            json!(original.len()),
            "{format}: {report}"
        );
        let copy = snapshot(&api, &target).await;
        for ((id_a, fields_a), (id_b, fields_b)) in original.iter().zip(&copy) {
            assert_eq!(id_a, id_b, "{format}");
            assert_eq!(fields_a, fields_b, "{format}: customer {id_a:?}");
        }
        assert_eq!(copy, original, "{format}");
        // And the copy exports to the same bytes (schema order aside, in long).
        if format == "long" {
            let again = export_ok(&api, &target, "?format=long&raw=true").await;
            let mut rows_a = parse_csv(&csv);
            let mut rows_b = parse_csv(&again);
            rows_a.sort();
            rows_b.sort();
            assert_eq!(rows_a, rows_b);
        }
    }
}

#[tokio::test]
async fn bad_export_parameters_are_400_and_other_keys_403() {
    let api = Api::new();
    let a = app_with_fields(&api, "A").await;
    let b = app_with_fields(&api, "B").await;
    for (query, needles) in [
        ("?format=xlsx", &["format", "long", "wide", "xlsx"][..]),
        ("?format=LONG", &["format"][..]),
        ("?raw=yes", &["raw", "true", "false"][..]),
        ("?fromat=wide", &["fromat"][..]),
    ] {
        let (status, _, text) = api.export_csv(&a, &a.key, query).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{query}: {text}");
        let body: Value = serde_json::from_str(&text).unwrap();
        assert_error(&body, "invalid_parameter", needles);
    }
    let (status, _, text) = api.export_csv(&a, &b.key, "").await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{text}");
    let body: Value = serde_json::from_str(&text).unwrap();
    assert_error(&body, "forbidden", &[]);
    let (status, _, text) = api.export_csv(&a, ADMIN, "").await;
    assert_eq!(status, StatusCode::OK, "{text}");
}

#[tokio::test]
async fn a_raw_wide_export_whose_fields_are_named_like_the_long_header_imports_back() {
    // The spec: "a raw export imports back unchanged", whatever the fields are named.
    let api = Api::new();
    let source = api.create_app("Source").await;
    api.create_field(&source, "fieldName", "string").await;
    api.create_field(&source, "fieldValue", "number").await;
    api.create_customer(&source, "c1", json!({"fieldName": "x", "fieldValue": 2}))
        .await;
    api.create_customer(&source, "c2", json!({"fieldValue": 3}))
        .await;
    let original = snapshot(&api, &source).await;
    let csv = export_ok(&api, &source, "?format=wide&raw=true").await;
    let target = api.create_app("Target").await;
    api.create_field(&target, "fieldName", "string").await;
    api.create_field(&target, "fieldValue", "number").await;
    let report = api.import_csv(&target, "", csv.clone()).await;
    assert_eq!(report["state"], "succeeded", "{csv}\n{report}");
    assert_eq!(snapshot(&api, &target).await, original);
}

#[tokio::test]
async fn an_export_with_a_filter_writes_only_its_members() {
    // SPEC §3/§4: export "for all customers or a filter's members", `?filter=`.
    let api = Api::new();
    let a = app_with_fields(&api, "A").await;
    three_customers(&api, &a).await;
    let filter = enc("age > 0");
    assert_eq!(
        export_ok(&api, &a, &format!("?filter={filter}")).await,
        "customerId,fieldName,fieldValue\n\
         a,city,Madrid\n\
         a,age,31\n\
         a,signup_at,2024-03-05T14:22:10.000Z\n\
         a,birthday,1994-11-28\n"
    );
    let filter = enc("not age exists");
    assert_eq!(
        export_ok(&api, &a, &format!("?filter={filter}&format=wide")).await,
        "customerId,city,age,signup_at,birthday\nb,,,,\n"
    );
    // A bad filter is a 400 that says where.
    let (status, _, text) = api
        .export_csv(&a, &a.key, &format!("?filter={}", enc("age > \"x\"")))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{text}");
    let body: Value = serde_json::from_str(&text).unwrap();
    let message = body["error"]["message"].as_str().unwrap();
    assert!(message.contains("age"), "{body}");
}

#[tokio::test]
async fn exports_are_named_for_what_they_hold_and_excel_gets_its_dialect() {
    let api = Api::new();
    let a = api.create_app("Demo Shop").await;
    api.create_field(&a, "city", "string").await;
    api.create_customer(&a, "ana", json!({"city": "Vigo; Lugo"}))
        .await;
    let (status, headers, text) = api.export_csv(&a, &a.key, "?excel=true&format=wide").await;
    assert_eq!(status, StatusCode::OK);
    assert!(text.starts_with('\u{feff}'), "{text:?}");
    assert_eq!(text, "\u{feff}customerId;city\nana;\"Vigo; Lugo\"\n");
    let disposition = headers["content-disposition"].to_str().unwrap();
    assert!(
        disposition.starts_with("attachment; filename=\"demo-shop-customers-20")
            && disposition.ends_with(".csv\""),
        "{disposition}"
    );
    let (_, headers, _) = api.export_csv(&a, &a.key, "?filter=city%20exists").await;
    assert!(
        headers["content-disposition"]
            .to_str()
            .unwrap()
            .contains("demo-shop-filtered-"),
        "{headers:?}"
    );
    let (status, segment) = api
        .send(
            "POST",
            &a.path("/segments"),
            Some(&a.key),
            Some(json!({"name": "Lapsed VIPs", "filter": "city exists"})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{segment}");
    let (_, headers, _) = api
        .export_csv(&a, &a.key, &format!("?segment={}", segment["id"]))
        .await;
    assert!(
        headers["content-disposition"]
            .to_str()
            .unwrap()
            .contains("demo-shop-segment-lapsed-vips-"),
        "{headers:?}"
    );
    let (status, _, _) = api.export_csv(&a, &a.key, "?excel=maybe").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
}
