//! Filters through the HTTP API: every operator on every type with exact counts from small
//! fixtures, missing values, JSON and text forms, the engine kept in step with every kind
//! of write, filtered lists with sorts and cursors, and hostile filters.

use std::collections::HashSet;

use axum::http::StatusCode;
use serde_json::{Value, json};

use crate::support::*;

// ---------------------------------------------------------------------------------------
// Helpers (also used by segments.rs)
// ---------------------------------------------------------------------------------------

/// `POST …/count` with `{"filter": filter}` and the app's own key.
pub async fn count_reply(api: &Api, app: &App, filter: Value) -> (StatusCode, Value) {
    api.send(
        "POST",
        &app.path("/count"),
        Some(&app.key),
        Some(json!({ "filter": filter })),
    )
    .await
}

/// The count of a filter (JSON form, or text form as a JSON string); asserts the 200 shape.
pub async fn count(api: &Api, app: &App, filter: impl Into<Value>) -> u64 {
    let filter = filter.into();
    let (status, body) = count_reply(api, app, filter.clone()).await;
    assert_eq!(status, StatusCode::OK, "count of {filter}: {body}");
    let obj = body.as_object().unwrap();
    assert_eq!(
        obj.len(),
        2,
        "count answers exactly count and took_ms: {body}"
    );
    let took = body["took_ms"].as_f64().unwrap();
    assert!(took >= 0.0, "{body}");
    body["count"].as_u64().unwrap()
}

/// Asserts a filter is refused with 400 and the filter language's `code`.
pub async fn count_error(api: &Api, app: &App, filter: Value, code: &str, needles: &[&str]) {
    let (status, body) = count_reply(api, app, filter.clone()).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "filter {filter}: {body}");
    assert_error(&body, code, needles);
}

/// GET …/customers?filter=…&sort=…&limit=… once.
pub async fn list_page(
    api: &Api,
    app: &App,
    filter: &str,
    sort: Option<&str>,
    limit: usize,
    cursor: Option<&str>,
) -> (StatusCode, Value) {
    let mut query = format!("?filter={}&limit={limit}", enc(filter));
    if let Some(sort) = sort {
        query.push_str(&format!("&sort={}", enc(sort)));
    }
    if let Some(c) = cursor {
        query.push_str(&format!("&cursor={}", enc(c)));
    }
    api.send(
        "GET",
        &app.path(&format!("/customers{query}")),
        Some(&app.key),
        None,
    )
    .await
}

/// Every member of a text filter, following cursors, in `sort` order, `limit` per page.
pub async fn members_sorted(
    api: &Api,
    app: &App,
    filter: &str,
    sort: Option<&str>,
    limit: usize,
) -> Vec<String> {
    let mut out = Vec::new();
    let mut cursor: Option<String> = None;
    for _ in 0..10_000 {
        let (status, body) = list_page(api, app, filter, sort, limit, cursor.as_deref()).await;
        assert_eq!(status, StatusCode::OK, "list ?filter={filter}: {body}");
        let page = body["customers"].as_array().unwrap();
        assert!(page.len() <= limit, "a page holds more than limit: {body}");
        out.extend(ids(page));
        match &body["next_cursor"] {
            Value::Null => return out,
            Value::String(c) => {
                assert!(!page.is_empty(), "an empty page with a next cursor: {body}");
                cursor = Some(c.clone());
            }
            other => panic!("next_cursor is neither null nor a string: {other}"),
        }
    }
    panic!("pagination never ended for {filter}");
}

/// Every member of a text filter in the default order.
pub async fn members(api: &Api, app: &App, filter: &str) -> Vec<String> {
    members_sorted(api, app, filter, None, 1000).await
}

/// Sorted owned strings.
pub fn set(items: &[&str]) -> Vec<String> {
    let mut v: Vec<String> = items.iter().map(|s| (*s).to_owned()).collect();
    v.sort();
    v
}

/// Checks every (text filter, expected members) pair by count and by list; panics once
/// with every mismatch.
async fn check_members(api: &Api, app: &App, cases: &[(String, Vec<&str>)]) -> Vec<String> {
    let mut failures = Vec::new();
    for (filter, expected) in cases {
        let n = count(api, app, Value::String(filter.clone())).await;
        let mut got = members(api, app, filter).await;
        got.sort();
        let expected = set(expected);
        if n != expected.len() as u64 || got != expected {
            failures.push(format!(
                "{filter}: expected {expected:?} ({}), count {n}, list {got:?}",
                expected.len()
            ));
        }
    }
    failures
}

async fn assert_members(api: &Api, app: &App, cases: &[(&str, Vec<&str>)]) {
    let cases: Vec<(String, Vec<&str>)> = cases
        .iter()
        .map(|(f, m)| ((*f).to_owned(), m.clone()))
        .collect();
    let failures = check_members(api, app, &cases).await;
    assert!(failures.is_empty(), "mismatches:\n{}", failures.join("\n"));
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

fn rfc3339(ms: i64) -> String {
    jiff::Timestamp::from_millisecond(ms).unwrap().to_string()
}

const DAY_MS: i64 = 86_400_000;
const HOUR_MS: i64 = 3_600_000;

fn today_in(tz: &str) -> jiff::civil::Date {
    let tz = jiff::tz::TimeZone::get(tz).unwrap();
    tz.to_datetime(jiff::Timestamp::now()).date()
}

fn add_days(date: jiff::civil::Date, days: i64) -> jiff::civil::Date {
    date.checked_add(jiff::Span::new().days(days)).unwrap()
}

/// The same month and day in 2000 (a leap year, so every month-day exists).
fn in_2000(date: jiff::civil::Date) -> jiff::civil::Date {
    jiff::civil::Date::new(2000, date.month(), date.day()).unwrap()
}

async fn batch(api: &Api, app: &App, items: Value) {
    let (status, body) = api
        .send(
            "POST",
            &app.path("/customers/batch"),
            Some(&app.key),
            Some(items),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    for r in body["results"].as_array().unwrap() {
        assert_ne!(r["status"], "error", "{body}");
    }
}

async fn app_with_fields(api: &Api, fields: &[(&str, &str)]) -> App {
    let app = api.create_app("Filters").await;
    for (name, ty) in fields {
        api.create_field(&app, name, ty).await;
    }
    app
}

async fn create_app_tz(api: &Api, tz: &str) -> App {
    let (status, body) = api
        .admin(
            "POST",
            "/v1/apps",
            Some(json!({"name": "Zoned", "timezone": tz})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(body["timezone"], tz);
    App {
        id: body["id"].as_i64().unwrap(),
        key: body["api_key"].as_str().unwrap().to_owned(),
    }
}

async fn set_timezone(api: &Api, app: &App, tz: &str) {
    let (status, body) = api
        .admin("PATCH", &app.path(""), Some(json!({ "timezone": tz })))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["timezone"], tz, "{body}");
}

// ---------------------------------------------------------------------------------------
// Strings, numbers, missing values, built-ins
// ---------------------------------------------------------------------------------------

/// c1..c6: names, ages and genders chosen so each operator selects a distinct set.
async fn people(api: &Api) -> App {
    let app = app_with_fields(
        api,
        &[
            ("name", "string"),
            ("city", "string"),
            ("age", "number"),
            ("gender", "string"),
        ],
    )
    .await;
    batch(
        api,
        &app,
        json!([
            {"customerId": "c1", "fields": {"name": "ÁNGEL García", "age": 30, "gender": "F", "city": "Madrid"}},
            {"customerId": "c2", "fields": {"name": "angela", "age": 25, "gender": "M", "city": "madrid"}},
            {"customerId": "c3", "fields": {"name": "Bob", "age": 40, "city": "Málaga"}},
            {"customerId": "c4", "fields": {"name": "Straße", "age": 30.5, "gender": "F"}},
            {"customerId": "c5", "fields": {}},
            {"customerId": "c6", "fields": {"name": "ángel", "age": 0}},
        ]),
    )
    .await;
    app
}

#[tokio::test]
async fn string_operators_exact_and_case_insensitive_unicode() {
    let api = Api::new();
    let app = people(&api).await;
    assert_members(
        &api,
        &app,
        &[
            (r#"name = "angela""#, vec!["c2"]),
            (r#"name = "Angela""#, vec![]),
            (r#"name = "ÁNGEL García""#, vec!["c1"]),
            (r#"name != "angela""#, vec!["c1", "c3", "c4", "c6"]),
            (r#"name in ("Bob", "angela", "nobody")"#, vec!["c2", "c3"]),
            (r#"name in ("bob")"#, vec![]),
            (r#"name not_in ("Bob", "angela")"#, vec!["c1", "c4", "c6"]),
            (r#"name contains "áng""#, vec!["c1", "c6"]),
            (r#"name contains "ÁNG""#, vec!["c1", "c6"]),
            (r#"name contains "ang""#, vec!["c2"]),
            (r#"name contains "GARCÍA""#, vec!["c1"]),
            (r#"name not_contains "áng""#, vec!["c2", "c3", "c4"]),
            (r#"name starts_with "án""#, vec!["c1", "c6"]),
            (r#"name starts_with "ÁN""#, vec!["c1", "c6"]),
            (r#"name starts_with "AN""#, vec!["c2"]),
            (r#"name ends_with "CÍA""#, vec!["c1"]),
            (r#"name ends_with "ÁNGEL""#, vec!["c6"]),
            (r#"name ends_with "SSE""#, vec![]),
            (r#"name ends_with "STRASSE""#, vec![]),
            (r#"name ends_with "ße""#, vec!["c4"]),
            (r#"name exists"#, vec!["c1", "c2", "c3", "c4", "c6"]),
            (r#"name not_exists"#, vec!["c5"]),
            (r#"city = "Madrid""#, vec!["c1"]),
            (r#"city contains "MADRID""#, vec!["c1", "c2"]),
            (r#"city starts_with "MÁ""#, vec!["c3"]),
        ],
    )
    .await;
    // The escaped spelling of a string is the same string.
    assert_eq!(count(&api, &app, json!(r#"name = "\u00e1ngel""#)).await, 1);
}

#[tokio::test]
async fn number_operators() {
    let api = Api::new();
    let app = people(&api).await;
    assert_members(
        &api,
        &app,
        &[
            ("age = 30", vec!["c1"]),
            ("age != 30", vec!["c2", "c3", "c4", "c6"]),
            ("age < 30", vec!["c2", "c6"]),
            ("age <= 30", vec!["c1", "c2", "c6"]),
            ("age > 30", vec!["c3", "c4"]),
            ("age >= 30", vec!["c1", "c3", "c4"]),
            ("age between 25 and 30", vec!["c1", "c2"]),
            ("age between 30 and 30.5", vec!["c1", "c4"]),
            ("age between 30.5 and 40", vec!["c3", "c4"]),
            ("age in (25, 40, 99)", vec!["c2", "c3"]),
            ("age not_in (25, 40)", vec!["c1", "c4", "c6"]),
            ("age = -0", vec!["c6"]),
            ("age = \"30\"", vec!["c1"]),
            ("age > 1e1", vec!["c1", "c2", "c3", "c4"]),
            ("age >= -3.5", vec!["c1", "c2", "c3", "c4", "c6"]),
            ("age exists", vec!["c1", "c2", "c3", "c4", "c6"]),
            ("age not_exists", vec!["c5"]),
        ],
    )
    .await;
}

#[tokio::test]
async fn missing_values_make_conditions_false_except_not_exists() {
    let api = Api::new();
    let app = people(&api).await;
    // gender: c1 F, c2 M, c4 F; c3, c5, c6 have none.
    assert_members(
        &api,
        &app,
        &[
            (r#"gender = "F""#, vec!["c1", "c4"]),
            (r#"gender != "F""#, vec!["c2"]),
            (r#"not gender = "F""#, vec!["c2", "c3", "c5", "c6"]),
            (r#"not (gender != "F")"#, vec!["c1", "c3", "c4", "c5", "c6"]),
            (r#"gender not_in ("F")"#, vec!["c2"]),
            (r#"not gender in ("F")"#, vec!["c2", "c3", "c5", "c6"]),
            (r#"gender not_contains "f""#, vec!["c2"]),
            (r#"not gender contains "f""#, vec!["c2", "c3", "c5", "c6"]),
            (r#"gender exists"#, vec!["c1", "c2", "c4"]),
            (r#"gender not_exists"#, vec!["c3", "c5", "c6"]),
            (r#"not gender exists"#, vec!["c3", "c5", "c6"]),
            (r#"not not gender = "F""#, vec!["c1", "c4"]),
            (r#"gender = "F" or gender != "F""#, vec!["c1", "c2", "c4"]),
            (
                r#"gender = "F" or not gender = "F""#,
                vec!["c1", "c2", "c3", "c4", "c5", "c6"],
            ),
            (r#"gender = "F" and not gender = "F""#, vec![]),
            // and binds tighter than or.
            (
                r#"gender = "M" or gender = "F" and age > 30"#,
                vec!["c2", "c4"],
            ),
            (r#"(gender = "M" or gender = "F") and age > 30"#, vec!["c4"]),
        ],
    )
    .await;
    // A number field: neq and not_in are false on c5, which has no age.
    assert_eq!(count(&api, &app, json!("age != 1000")).await, 5);
    assert_eq!(count(&api, &app, json!("not age = 1000")).await, 6);
    assert_eq!(count(&api, &app, json!("age not_in (1000)")).await, 5);
}

#[tokio::test]
async fn customer_id_takes_string_operators() {
    let api = Api::new();
    let app = people(&api).await;
    api.create_customer(&app, "ÉLAN-7", json!({})).await;
    assert_members(
        &api,
        &app,
        &[
            (r#"customerId = "c1""#, vec!["c1"]),
            (r#"customerId = "C1""#, vec![]),
            (
                r#"customerId != "c1""#,
                vec!["c2", "c3", "c4", "c5", "c6", "ÉLAN-7"],
            ),
            (r#"customerId in ("c1", "c2", "zz")"#, vec!["c1", "c2"]),
            (
                r#"customerId not_in ("c1", "c2")"#,
                vec!["c3", "c4", "c5", "c6", "ÉLAN-7"],
            ),
            (
                r#"customerId starts_with "C""#,
                vec!["c1", "c2", "c3", "c4", "c5", "c6"],
            ),
            (r#"customerId contains "6""#, vec!["c6"]),
            (r#"customerId starts_with "éla""#, vec!["ÉLAN-7"]),
            (r#"customerId ends_with "N-7""#, vec!["ÉLAN-7"]),
            (r#"customerId not_contains "c""#, vec!["ÉLAN-7"]),
            (
                r#"customerId exists"#,
                vec!["c1", "c2", "c3", "c4", "c5", "c6", "ÉLAN-7"],
            ),
            (r#"customerId not_exists"#, vec![]),
        ],
    )
    .await;
    count_error(
        &api,
        &app,
        json!(r#"customerId > "c3""#),
        "filter_operator_mismatch",
        &["customerId"],
    )
    .await;
}

#[tokio::test]
async fn created_at_and_updated_at_are_filterable() {
    let api = Api::new();
    let app = people(&api).await;
    let all = api.all_customers(&app).await;
    let latest = all
        .iter()
        .map(|c| c["created_at"].as_str().unwrap().to_owned())
        .max()
        .unwrap();
    let earliest = all
        .iter()
        .map(|c| c["created_at"].as_str().unwrap().to_owned())
        .min()
        .unwrap();
    api.wait_for_clock_past(&latest).await;
    let (status, body) = api
        .patch_customer(&app, "c3", json!({"fields": {"age": 41}}))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let everyone = vec!["c1", "c2", "c3", "c4", "c5", "c6"];
    let after_latest = format!(r#"created_at after "{latest}""#);
    let between = format!(r#"created_at between "{earliest}" and "{latest}""#);
    let updated_after = format!(r#"updated_at after "{latest}""#);
    let updated_before = format!(r#"updated_at <= "{latest}""#);
    assert_members(
        &api,
        &app,
        &[
            ("created_at within_last 1h", everyone.clone()),
            ("created_at not_within_last 1h", vec![]),
            ("created_at before \"2000-01-01\"", vec![]),
            ("created_at after \"2000-01-01\"", everyone.clone()),
            ("created_at before 1h ago", vec![]),
            (
                "created_at between 1h ago and 1h from now",
                everyone.clone(),
            ),
            (&after_latest, vec![]),
            (&between, everyone.clone()),
            (&updated_after, vec!["c3"]),
            ("updated_at exists", everyone.clone()),
            ("created_at not_exists", vec![]),
        ],
    )
    .await;
    // `<=` is a number operator: a datetime takes before/after/between.
    count_error(
        &api,
        &app,
        json!(updated_before),
        "filter_operator_mismatch",
        &["updated_at"],
    )
    .await;
    count_error(
        &api,
        &app,
        json!("created_at contains \"2024\""),
        "filter_operator_mismatch",
        &["created_at"],
    )
    .await;
}

// ---------------------------------------------------------------------------------------
// Time
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn datetime_and_date_operators_absolute_and_relative() {
    let api = Api::new();
    // Dates depend on "today" (UTC here): retry if the day changes while the test runs.
    for _ in 0..3 {
        let today = today_in("UTC");
        let now = now_ms();
        let app = app_with_fields(&api, &[("last", "datetime"), ("signup", "date")]).await;
        let d = |days: i64| add_days(today, days).to_string();
        batch(
            &api,
            &app,
            json!([
                {"customerId": "d1", "fields": {"last": rfc3339(now - 100 * DAY_MS), "signup": d(-100)}},
                {"customerId": "d2", "fields": {"last": rfc3339(now - 80 * DAY_MS), "signup": d(-40)}},
                {"customerId": "d3", "fields": {"last": rfc3339(now - 10 * DAY_MS), "signup": d(-5)}},
                {"customerId": "d4", "fields": {"last": rfc3339(now + DAY_MS), "signup": d(3)}},
                {"customerId": "d5", "fields": {"last": now - 2 * HOUR_MS, "signup": d(0)}},
                {"customerId": "d6", "fields": {}},
                {"customerId": "d7", "fields": {"last": "2024-05-01T00:00:00Z", "signup": "2024-05-01"}},
                {"customerId": "d8", "fields": {"last": "2024-05-01T02:00:00.001+02:00", "signup": "2024-05-02"}},
            ]),
        )
        .await;
        let cases: Vec<(String, Vec<&str>)> = [
            // datetime, relative
            ("last before 90d ago", vec!["d1", "d7", "d8"]),
            ("last after 90d ago", vec!["d2", "d3", "d4", "d5"]),
            (
                "last before 7d from now",
                vec!["d1", "d2", "d3", "d4", "d5", "d7", "d8"],
            ),
            ("last after 12h from now", vec!["d4"]),
            ("last after 2w ago", vec!["d3", "d4", "d5"]),
            ("last between 90d ago and 3h ago", vec!["d2", "d3"]),
            ("last between 90d ago and 1h ago", vec!["d2", "d3", "d5"]),
            ("last within_last 30d", vec!["d3", "d5"]),
            ("last within_last 3h", vec!["d5"]),
            ("last within_last 60m", vec![]),
            (
                "last not_within_last 30d",
                vec!["d1", "d2", "d4", "d7", "d8"],
            ),
            // datetime, absolute (a date alone is midnight UTC)
            (r#"last before "2024-05-01T00:00:00Z""#, vec![]),
            (r#"last before "2024-05-01T00:00:00.001Z""#, vec!["d7"]),
            (r#"last before "2024-05-01""#, vec![]),
            (
                r#"last after "2024-05-01T00:00:00Z""#,
                vec!["d1", "d2", "d3", "d4", "d5", "d8"],
            ),
            (
                r#"last after "2024-05-01""#,
                vec!["d1", "d2", "d3", "d4", "d5", "d8"],
            ),
            (
                r#"last between "2024-05-01T02:00:00+02:00" and "2024-05-01T00:00:00.001Z""#,
                vec!["d7", "d8"],
            ),
            (
                r#"last between "2024-05-01T00:00:00.001Z" and "2024-05-01T00:00:00.002Z""#,
                vec!["d8"],
            ),
            (r#"last on "2024-05-01""#, vec!["d7", "d8"]),
            (r#"last on "2024-04-30""#, vec![]),
            (
                "last exists",
                vec!["d1", "d2", "d3", "d4", "d5", "d7", "d8"],
            ),
            ("last not_exists", vec!["d6"]),
            // date, absolute
            (r#"signup before "2024-05-02""#, vec!["d7"]),
            (
                r#"signup after "2024-05-01""#,
                vec!["d1", "d2", "d3", "d4", "d5", "d8"],
            ),
            (
                r#"signup between "2024-05-01" and "2024-05-02""#,
                vec!["d7", "d8"],
            ),
            (r#"signup on "2024-05-02""#, vec!["d8"]),
            // date, relative: calendar days from today
            ("signup after 3d ago", vec!["d4", "d5"]),
            ("signup after 5d ago", vec!["d4", "d5"]),
            ("signup after 6d ago", vec!["d3", "d4", "d5"]),
            ("signup before 5d ago", vec!["d1", "d2", "d7", "d8"]),
            (
                "signup between 5d ago and 3d from now",
                vec!["d3", "d4", "d5"],
            ),
            ("signup after 2d from now", vec!["d4"]),
            ("signup after 3d from now", vec![]),
            ("signup within_last 30d", vec!["d3", "d5"]),
            ("signup within_last 5d", vec!["d3", "d5"]),
            ("signup within_last 4d", vec!["d5"]),
            ("signup within_last 1w", vec!["d3", "d5"]),
            (
                "signup not_within_last 30d",
                vec!["d1", "d2", "d4", "d7", "d8"],
            ),
            (
                "signup exists",
                vec!["d1", "d2", "d3", "d4", "d5", "d7", "d8"],
            ),
            ("signup not_exists", vec!["d6"]),
        ]
        .into_iter()
        .map(|(f, m)| (f.to_owned(), m))
        .chain([
            (format!(r#"signup on "{}""#, d(0)), vec!["d5"]),
            (
                format!(r#"signup between "{}" and "{}""#, d(-5), d(0)),
                vec!["d3", "d5"],
            ),
        ])
        .collect();
        let failures = check_members(&api, &app, &cases).await;
        // JSON forms of the relative operands.
        let json_cases = [
            (
                json!({"field": "last", "op": "before", "value": {"ago": "90d"}}),
                3,
            ),
            (
                json!({"field": "last", "op": "after", "value": {"from_now": "12h"}}),
                1,
            ),
            (
                json!({"field": "last", "op": "between", "value": [{"ago": "90d"}, {"ago": "3h"}]}),
                2,
            ),
            (
                json!({"field": "last", "op": "within_last", "value": "30d"}),
                2,
            ),
            (
                json!({"field": "signup", "op": "not_within_last", "value": "30d"}),
                5,
            ),
            (
                json!({"field": "signup", "op": "on", "value": "2024-05-02"}),
                1,
            ),
            (
                json!({"field": "last", "op": "before", "value": 1_714_521_600_001_i64}),
                1,
            ),
        ];
        let mut json_failures = Vec::new();
        for (filter, expected) in json_cases {
            let n = count(&api, &app, filter.clone()).await;
            if n != expected {
                json_failures.push(format!("{filter}: expected {expected}, got {n}"));
            }
        }
        if today_in("UTC") != today {
            continue;
        }
        assert!(failures.is_empty(), "mismatches:\n{}", failures.join("\n"));
        assert!(
            json_failures.is_empty(),
            "mismatches:\n{}",
            json_failures.join("\n")
        );
        // Dates take no time of day; hours and minutes are refused on a date field.
        count_error(
            &api,
            &app,
            json!(r#"signup before "2024-05-01T00:00:00Z""#),
            "filter_invalid_value",
            &["signup"],
        )
        .await;
        count_error(
            &api,
            &app,
            json!("signup after 2h ago"),
            "filter_invalid_value",
            &["signup"],
        )
        .await;
        // A bare number is never epoch milliseconds in the text form.
        let (status, _) = count_reply(&api, &app, json!("last before 1714521600001")).await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        return;
    }
    panic!("the day changed during every attempt");
}

#[tokio::test]
async fn on_reads_the_calendar_date_in_the_app_timezone() {
    let api = Api::new();
    let app = create_app_tz(&api, "America/New_York").await;
    api.create_field(&app, "seen", "datetime").await;
    batch(
        &api,
        &app,
        json!([
            // 22:00 on 1 May in New York.
            {"customerId": "n1", "fields": {"seen": "2024-05-02T02:00:00Z"}},
            // 01:00 on 2 May in New York.
            {"customerId": "n2", "fields": {"seen": "2024-05-02T05:00:00Z"}},
            // 23:00 on 30 April in New York.
            {"customerId": "n3", "fields": {"seen": "2024-05-01T03:00:00Z"}},
            // Local midnight of 1 May (EDT, UTC-4): the first instant of the day.
            {"customerId": "n4", "fields": {"seen": "2024-05-01T04:00:00Z"}},
            // The last millisecond of 1 May local.
            {"customerId": "n5", "fields": {"seen": "2024-05-02T03:59:59.999Z"}},
        ]),
    )
    .await;
    assert_members(
        &api,
        &app,
        &[
            (r#"seen on "2024-05-01""#, vec!["n1", "n4", "n5"]),
            (r#"seen on "2024-05-02""#, vec!["n2"]),
            (r#"seen on "2024-04-30""#, vec!["n3"]),
            // before/after with a date alone stay midnight UTC whatever the zone.
            (r#"seen before "2024-05-02""#, vec!["n3", "n4"]),
            (
                r#"seen after "2024-05-01""#,
                vec!["n1", "n2", "n3", "n4", "n5"],
            ),
            (r#"not seen on "2024-05-01""#, vec!["n2", "n3"]),
        ],
    )
    .await;
    // The engine follows a change of the application's time zone.
    set_timezone(&api, &app, "UTC").await;
    assert_members(
        &api,
        &app,
        &[
            (r#"seen on "2024-05-01""#, vec!["n3", "n4"]),
            (r#"seen on "2024-05-02""#, vec!["n1", "n2", "n5"]),
            (r#"seen on "2024-04-30""#, vec![]),
        ],
    )
    .await;
    set_timezone(&api, &app, "Asia/Tokyo").await;
    // Tokyo is UTC+9: n3 (03:00Z) is 12:00 on 1 May; n5 (03:59Z 2 May) is 12:59 on 2 May.
    assert_members(
        &api,
        &app,
        &[
            (r#"seen on "2024-05-01""#, vec!["n3", "n4"]),
            (r#"seen on "2024-05-02""#, vec!["n1", "n2", "n5"]),
        ],
    )
    .await;
}

#[tokio::test]
async fn anniversary_today_and_within_n_days() {
    let api = Api::new();
    for _ in 0..3 {
        let today = today_in("UTC");
        let app = app_with_fields(&api, &[("birthday", "date"), ("bts", "datetime")]).await;
        let md = |k: i64| in_2000(add_days(today, k));
        let dt = |k: i64, time: &str| format!("{}T{time}Z", md(k));
        batch(
            &api,
            &app,
            json!([
                {"customerId": "a1", "fields": {"birthday": md(0).to_string(), "bts": dt(0, "12:00:00")}},
                {"customerId": "a2", "fields": {"birthday": md(3).to_string(), "bts": dt(3, "23:59:59")}},
                {"customerId": "a3", "fields": {"birthday": md(7).to_string(), "bts": dt(7, "00:00:00")}},
                {"customerId": "a4", "fields": {"birthday": md(8).to_string(), "bts": dt(8, "00:00:00")}},
                {"customerId": "a5", "fields": {"birthday": md(-1).to_string(), "bts": dt(-1, "23:59:59")}},
                {"customerId": "a6", "fields": {}},
            ]),
        )
        .await;
        let cases: Vec<(String, Vec<&str>)> = [
            ("birthday anniversary", vec!["a1"]),
            ("birthday anniversary within 0d", vec!["a1"]),
            ("birthday anniversary within 3d", vec!["a1", "a2"]),
            ("birthday anniversary within 7d", vec!["a1", "a2", "a3"]),
            ("birthday anniversary within 1w", vec!["a1", "a2", "a3"]),
            (
                "birthday anniversary within 8d",
                vec!["a1", "a2", "a3", "a4"],
            ),
            (
                "birthday anniversary within 366d",
                vec!["a1", "a2", "a3", "a4", "a5"],
            ),
            (
                "not birthday anniversary",
                vec!["a2", "a3", "a4", "a5", "a6"],
            ),
            ("bts anniversary", vec!["a1"]),
            ("bts anniversary within 3d", vec!["a1", "a2"]),
            ("bts anniversary within 7d", vec!["a1", "a2", "a3"]),
        ]
        .into_iter()
        .map(|(f, m)| (f.to_owned(), m))
        .collect();
        let failures = check_members(&api, &app, &cases).await;
        let json_within = count(
            &api,
            &app,
            json!({"field": "birthday", "op": "anniversary", "value": {"within_days": 7}}),
        )
        .await;
        let json_plain = count(&api, &app, json!({"field": "bts", "op": "anniversary"})).await;
        if today_in("UTC") != today {
            continue;
        }
        assert!(failures.is_empty(), "mismatches:\n{}", failures.join("\n"));
        assert_eq!(json_within, 3);
        assert_eq!(json_plain, 1);
        count_error(
            &api,
            &app,
            json!("birthday anniversary within 367d"),
            "filter_invalid_value",
            &["366"],
        )
        .await;
        return;
    }
    panic!("the day changed during every attempt");
}

#[tokio::test]
async fn anniversary_of_a_datetime_reads_its_date_in_the_app_timezone() {
    let api = Api::new();
    for _ in 0..3 {
        let today = today_in("America/New_York");
        let app = create_app_tz(&api, "America/New_York").await;
        api.create_field(&app, "bts", "datetime").await;
        // 02:00 UTC is the previous evening in New York (UTC-4 or UTC-5).
        let at = |k: i64, time: &str| format!("{}T{time}Z", in_2000(add_days(today, k)));
        batch(
            &api,
            &app,
            json!([
                {"customerId": "b1", "fields": {"bts": at(1, "02:00:00")}},
                {"customerId": "b2", "fields": {"bts": at(0, "02:00:00")}},
                {"customerId": "b3", "fields": {"bts": at(0, "16:00:00")}},
            ]),
        )
        .await;
        let failures = check_members(
            &api,
            &app,
            &[("bts anniversary".to_owned(), vec!["b1", "b3"])],
        )
        .await;
        if today_in("America/New_York") != today {
            continue;
        }
        assert!(failures.is_empty(), "mismatches:\n{}", failures.join("\n"));
        return;
    }
    panic!("the day changed during every attempt");
}

// ---------------------------------------------------------------------------------------
// JSON form and text form
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn json_form_and_text_form_count_the_same() {
    let api = Api::new();
    let app = app_with_fields(
        &api,
        &[
            ("country", "string"),
            ("age", "number"),
            ("gender", "string"),
            ("tier", "string"),
            ("last_purchase_at", "datetime"),
            ("last purchase", "string"),
        ],
    )
    .await;
    let old = rfc3339(now_ms() - 200 * DAY_MS);
    let recent = rfc3339(now_ms() - DAY_MS);
    batch(
        &api,
        &app,
        json!([
            {"customerId": "e1", "fields": {"country": "ES", "age": 30, "gender": "F", "tier": "gold", "last_purchase_at": recent}},
            {"customerId": "e2", "fields": {"country": "ES", "age": 30, "gender": "M", "tier": "silver", "last_purchase_at": old}},
            {"customerId": "e3", "fields": {"country": "ES", "age": 25, "tier": "bronze", "last_purchase_at": recent}},
            {"customerId": "e4", "fields": {"country": "ES", "age": 34, "tier": "platinum"}},
            {"customerId": "e5", "fields": {"country": "FR", "age": 30, "tier": "gold"}},
            {"customerId": "e6", "fields": {"country": "ES", "age": 35, "tier": "gold"}},
            {"customerId": "e7", "fields": {"country": "ES", "age": 28, "last purchase": "x"}},
        ]),
    )
    .await;
    // SPEC §2's example: ES, 25–34, not F, (gold/platinum or purchase before 90d ago).
    // e1 is F; e2 (old purchase) yes; e3 bronze + recent: no; e4 platinum yes; e5 FR;
    // e6 35; e7 no tier, no purchase: no.
    let spec_json = json!({"and": [
        {"field": "country", "op": "eq", "value": "ES"},
        {"field": "age", "op": "between", "value": [25, 34]},
        {"not": {"field": "gender", "op": "eq", "value": "F"}},
        {"or": [ {"field": "tier", "op": "in", "value": ["gold", "platinum"]},
                 {"field": "last_purchase_at", "op": "before", "value": {"ago": "90d"}} ]}
    ]});
    let spec_text = r#"country = "ES" and age between 25 and 34 and not gender = "F" and
(tier in ("gold", "platinum") or last_purchase_at before 90d ago)"#;
    let pairs: Vec<(Value, &str, u64)> = vec![
        (spec_json, spec_text, 2),
        (
            json!({"field": "age", "op": "GT", "value": "29"}),
            "age > 29",
            5,
        ),
        (
            json!({"or": [{"field": "tier", "op": "eq", "value": "gold"}, {"field": "age", "op": "lt", "value": 26}]}),
            r#"tier = "gold" OR age < 26"#,
            4,
        ),
        (
            json!({"and": [{"field": "country", "op": "neq", "value": "FR"}]}),
            r#"(((country != "FR")))"#,
            6,
        ),
        (
            json!({"field": "last purchase", "op": "exists"}),
            "`last purchase` EXISTS",
            1,
        ),
        (
            json!({"field": "last purchase", "op": "not_exists", "value": null}),
            "`last purchase` not_exists",
            6,
        ),
        (
            json!({"not": {"field": "tier", "op": "not_in", "value": ["gold"]}}),
            r#"NOT tier not_in ("gold")"#,
            4,
        ),
    ];
    for (json_form, text, expected) in pairs {
        let by_json = count(&api, &app, json_form.clone()).await;
        let by_text = count(&api, &app, json!(text)).await;
        assert_eq!(by_json, expected, "{json_form}");
        assert_eq!(by_text, expected, "{text}");
        // The filtered list agrees with the count.
        assert_eq!(
            members(&api, &app, text).await.len() as u64,
            expected,
            "{text}"
        );
    }
    // Field names are case-sensitive: an unknown field is an error, never 0.
    count_error(
        &api,
        &app,
        json!("AGE > 29"),
        "filter_unknown_field",
        &["AGE"],
    )
    .await;
    // A JSON string in "filter" is read as the text form, never as a JSON document.
    count_error(
        &api,
        &app,
        json!(r#"{"field": "country", "op": "eq", "value": "ES"}"#),
        "filter_syntax",
        &[],
    )
    .await;
}

// ---------------------------------------------------------------------------------------
// The engine stays exactly in step with every kind of write
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn counts_follow_every_kind_of_write() {
    let api = Api::new();
    let app = app_with_fields(
        &api,
        &[
            ("city", "string"),
            ("age", "number"),
            ("tier", "string"),
            ("seen", "datetime"),
        ],
    )
    .await;
    api.create_customer(
        &app,
        "x1",
        json!({"city": "Madrid", "age": 30, "tier": "gold"}),
    )
    .await;
    api.create_customer(&app, "x2", json!({"city": "Madrid", "age": 20}))
        .await;
    api.create_customer(
        &app,
        "x3",
        json!({"city": "Paris", "age": 40, "tier": "gold"}),
    )
    .await;
    let madrid = r#"city = "Madrid""#;
    assert_members(
        &api,
        &app,
        &[
            (madrid, vec!["x1", "x2"]),
            ("age >= 30", vec!["x1", "x3"]),
            ("tier exists", vec!["x1", "x3"]),
        ],
    )
    .await;

    // PATCH a value.
    let (status, body) = api
        .patch_customer(&app, "x3", json!({"fields": {"city": "Madrid"}}))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_members(
        &api,
        &app,
        &[
            (madrid, vec!["x1", "x2", "x3"]),
            (r#"city = "Paris""#, vec![]),
        ],
    )
    .await;

    // Remove values: null and "".
    let (status, body) = api
        .patch_customer(&app, "x1", json!({"fields": {"city": null}}))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, body) = api
        .patch_customer(&app, "x2", json!({"fields": {"age": ""}}))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_members(
        &api,
        &app,
        &[
            (madrid, vec!["x2", "x3"]),
            ("city not_exists", vec!["x1"]),
            ("age exists", vec!["x1", "x3"]),
            ("age < 25", vec![]),
        ],
    )
    .await;

    // DELETE a customer.
    let (status, body) = api
        .send("DELETE", &app.path("/customers/x2"), Some(&app.key), None)
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
    assert_members(
        &api,
        &app,
        &[
            (madrid, vec!["x3"]),
            ("city not_exists", vec!["x1"]),
            ("not city = \"Paris\"", vec!["x1", "x3"]),
        ],
    )
    .await;

    // Batch upsert: one update, two creations.
    batch(
        &api,
        &app,
        json!([
            {"customerId": "x1", "fields": {"city": "Madrid"}},
            {"customerId": "x4", "fields": {"city": "Madrid", "age": 50}},
            {"customerId": "x5", "fields": {"city": "Paris"}},
        ]),
    )
    .await;
    assert_members(
        &api,
        &app,
        &[
            (madrid, vec!["x1", "x3", "x4"]),
            (r#"city = "Paris""#, vec!["x5"]),
            ("age >= 30", vec!["x1", "x3", "x4"]),
        ],
    )
    .await;

    // Create one customer.
    api.create_customer(&app, "x6", json!({"city": "Madrid", "tier": "silver"}))
        .await;
    assert_members(
        &api,
        &app,
        &[
            (madrid, vec!["x1", "x3", "x4", "x6"]),
            ("tier exists", vec!["x1", "x3", "x6"]),
        ],
    )
    .await;

    // Delete a field used by other filters; then create it again, empty.
    let (status, body) = api
        .send("DELETE", &app.path("/fields/tier"), Some(&app.key), None)
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body, json!({"values_deleted": 3}));
    assert_members(
        &api,
        &app,
        &[
            (madrid, vec!["x1", "x3", "x4", "x6"]),
            ("age >= 30", vec!["x1", "x3", "x4"]),
        ],
    )
    .await;
    count_error(
        &api,
        &app,
        json!("tier exists"),
        "filter_unknown_field",
        &["tier"],
    )
    .await;
    api.create_field(&app, "tier", "string").await;
    assert_members(
        &api,
        &app,
        &[
            ("tier exists", vec![]),
            ("tier not_exists", vec!["x1", "x3", "x4", "x5", "x6"]),
            (r#"tier = "gold""#, vec![]),
        ],
    )
    .await;

    // Change the application's time zone: `on` reads datetimes in the new zone.
    let (status, body) = api
        .patch_customer(
            &app,
            "x4",
            json!({"fields": {"seen": "2024-05-02T02:00:00Z"}}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let on1 = r#"seen on "2024-05-01""#;
    let on2 = r#"seen on "2024-05-02""#;
    assert_members(&api, &app, &[(on1, vec![]), (on2, vec!["x4"])]).await;
    set_timezone(&api, &app, "America/New_York").await;
    assert_members(&api, &app, &[(on1, vec!["x4"]), (on2, vec![])]).await;
    set_timezone(&api, &app, "UTC").await;
    assert_members(&api, &app, &[(on1, vec![]), (on2, vec!["x4"])]).await;

    // Import a long CSV: one creation, two updates.
    let report = api
        .import_csv(
            &app,
            "",
            "customerId,fieldName,fieldValue\nx7,city,Madrid\nx1,city,Paris\nx5,age,31\n",
        )
        .await;
    assert_eq!(report["state"], "succeeded", "{report}");
    assert_members(
        &api,
        &app,
        &[
            (madrid, vec!["x3", "x4", "x6", "x7"]),
            (r#"city = "Paris""#, vec!["x1", "x5"]),
            ("age >= 30", vec!["x1", "x3", "x4", "x5"]),
        ],
    )
    .await;

    // Import a wide CSV: an empty cell leaves the value untouched.
    let report = api
        .import_csv(&app, "", "customerId,city,tier\nx8,Madrid,gold\nx3,,gold\n")
        .await;
    assert_eq!(report["state"], "succeeded", "{report}");
    assert_members(
        &api,
        &app,
        &[
            (madrid, vec!["x3", "x4", "x6", "x7", "x8"]),
            (r#"tier = "gold""#, vec!["x3", "x8"]),
        ],
    )
    .await;

    // A failed atomic import writes nothing, and the counts say so.
    let report = api
        .import_csv(
            &app,
            "",
            "customerId,fieldName,fieldValue\nx9,city,Madrid\nx3,age,not-a-number\n",
        )
        .await;
    assert_eq!(report["state"], "failed", "{report}");
    assert_members(
        &api,
        &app,
        &[
            (madrid, vec!["x3", "x4", "x6", "x7", "x8"]),
            ("customerId = \"x9\"", vec![]),
        ],
    )
    .await;

    // A write right after the rebuild that followed the imports is seen too.
    let (status, body) = api
        .send("DELETE", &app.path("/customers/x8"), Some(&app.key), None)
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
    assert_members(&api, &app, &[(madrid, vec!["x3", "x4", "x6", "x7"])]).await;
}

#[tokio::test]
async fn counts_are_per_application() {
    let api = Api::new();
    let a = app_with_fields(&api, &[("city", "string")]).await;
    let b = app_with_fields(&api, &[("city", "string")]).await;
    api.create_customer(&a, "same", json!({"city": "Madrid"}))
        .await;
    api.create_customer(&b, "same", json!({"city": "Madrid"}))
        .await;
    api.create_customer(&b, "other", json!({"city": "Madrid"}))
        .await;
    assert_eq!(count(&api, &a, json!(r#"city = "Madrid""#)).await, 1);
    assert_eq!(count(&api, &b, json!(r#"city = "Madrid""#)).await, 2);
    assert_eq!(count(&api, &a, json!("not city exists")).await, 0);
    // A's key cannot count in B.
    let (status, body) = api
        .send(
            "POST",
            &b.path("/count"),
            Some(&a.key),
            Some(json!({"filter": "city exists"})),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    assert_error(&body, "forbidden", &[]);
    // Nor list B's members through a filter.
    let (status, body) = api
        .send(
            "GET",
            &b.path(&format!("/customers?filter={}", enc("city exists"))),
            Some(&a.key),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    // The admin key counts in any application.
    let (status, body) = api
        .admin(
            "POST",
            &b.path("/count"),
            Some(json!({"filter": "city exists"})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["count"], 2);
}

// ---------------------------------------------------------------------------------------
// Filtered lists: members only, sorts, cursors
// ---------------------------------------------------------------------------------------

async fn list_fixture(api: &Api) -> App {
    let app = app_with_fields(api, &[("tag", "string"), ("score", "number")]).await;
    batch(
        api,
        &app,
        json!([
            {"customerId": "a", "fields": {"tag": "m", "score": 3}},
            {"customerId": "B", "fields": {"tag": "m", "score": 1}},
            {"customerId": "ä", "fields": {"tag": "m"}},
            {"customerId": "10", "fields": {"tag": "m", "score": 2}},
            {"customerId": "9", "fields": {"tag": "m", "score": 4}},
            {"customerId": "Z", "fields": {"tag": "m"}},
            {"customerId": "b", "fields": {"tag": "x", "score": 0}},
            {"customerId": "aa", "fields": {"tag": "x"}},
            {"customerId": "c", "fields": {"score": 5}},
        ]),
    )
    .await;
    app
}

const TAG_M: &str = r#"tag = "m""#;

#[tokio::test]
async fn filtered_list_holds_members_only_in_byte_order() {
    let api = Api::new();
    let app = list_fixture(&api).await;
    let (status, body) = list_page(&api, &app, TAG_M, None, 50, None).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["next_cursor"], Value::Null, "{body}");
    let page = body["customers"].as_array().unwrap();
    assert_eq!(ids(page), ["10", "9", "B", "Z", "a", "ä"]);
    // Members come back as full customers.
    let a = page.iter().find(|c| c["customerId"] == "a").unwrap();
    assert_eq!(a["fields"], json!({"tag": "m", "score": 3}));
    assert!(a["id"].is_i64() && a["created_at"].is_string(), "{a}");
    let desc = members_sorted(&api, &app, TAG_M, Some("-customerId"), 1000).await;
    assert_eq!(desc, ["ä", "a", "Z", "B", "9", "10"]);
    let explicit = members_sorted(&api, &app, TAG_M, Some("customerId"), 1000).await;
    assert_eq!(explicit, ["10", "9", "B", "Z", "a", "ä"]);
    // A filter no one matches: an empty page and no cursor.
    let (status, body) = list_page(&api, &app, r#"tag = "none""#, None, 10, None).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body, json!({"customers": [], "next_cursor": null}));
}

#[tokio::test]
async fn filtered_list_sorts_by_a_field_with_missing_values_last() {
    let api = Api::new();
    let app = list_fixture(&api).await;
    let asc = members_sorted(&api, &app, TAG_M, Some("score"), 1000).await;
    assert_eq!(asc[..4], ["B", "10", "a", "9"], "{asc:?}");
    assert_eq!(set(&[&asc[4], &asc[5]]), set(&["Z", "ä"]), "{asc:?}");
    let desc = members_sorted(&api, &app, TAG_M, Some("-score"), 1000).await;
    assert_eq!(desc[..4], ["9", "a", "10", "B"], "{desc:?}");
    assert_eq!(set(&[&desc[4], &desc[5]]), set(&["Z", "ä"]), "{desc:?}");
    assert_eq!(desc.len(), 6);
    // created_at order holds the same members.
    let mut by_created = members_sorted(&api, &app, TAG_M, Some("created_at"), 1000).await;
    by_created.sort();
    assert_eq!(by_created, set(&["10", "9", "B", "Z", "a", "ä"]));
}

#[tokio::test]
async fn filtered_list_cursor_visits_every_member_once() {
    let api = Api::new();
    let app = list_fixture(&api).await;
    for sort in [
        None,
        Some("customerId"),
        Some("-customerId"),
        Some("score"),
        Some("-score"),
        Some("created_at"),
        Some("-updated_at"),
    ] {
        let whole = members_sorted(&api, &app, TAG_M, sort, 1000).await;
        assert_eq!(whole.len(), 6, "{sort:?}: {whole:?}");
        for limit in [1, 2, 4, 5, 6] {
            let paged = members_sorted(&api, &app, TAG_M, sort, limit).await;
            assert_eq!(paged, whole, "sort {sort:?} limit {limit}");
            let unique: HashSet<&String> = paged.iter().collect();
            assert_eq!(unique.len(), 6, "sort {sort:?} limit {limit}: {paged:?}");
        }
    }
    // A filter over the missing values only, paged one at a time.
    let none = members_sorted(&api, &app, "score not_exists", Some("score"), 1).await;
    assert_eq!(
        set(&none.iter().map(String::as_str).collect::<Vec<_>>()),
        set(&["Z", "aa", "ä"])
    );
}

#[tokio::test]
async fn filtered_list_cursor_from_another_sort_or_tampered_is_400() {
    let api = Api::new();
    let app = list_fixture(&api).await;
    let (status, body) = list_page(&api, &app, TAG_M, Some("score"), 2, None).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let by_score = body["next_cursor"].as_str().unwrap().to_owned();
    let (status, body) = list_page(&api, &app, TAG_M, None, 2, None).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let by_id = body["next_cursor"].as_str().unwrap().to_owned();
    // The cursors work with their own sort.
    let (status, body) = list_page(&api, &app, TAG_M, Some("score"), 2, Some(&by_score)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(ids(body["customers"].as_array().unwrap()), ["a", "9"]);
    let (status, body) = list_page(&api, &app, TAG_M, None, 2, Some(&by_id)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(ids(body["customers"].as_array().unwrap()), ["B", "Z"]);
    // Reused with another sort: 400.
    for (cursor, sort) in [
        (&by_score, None),
        (&by_score, Some("customerId")),
        (&by_score, Some("-score")),
        (&by_score, Some("created_at")),
        (&by_id, Some("score")),
        (&by_id, Some("-customerId")),
    ] {
        let (status, body) = list_page(&api, &app, TAG_M, sort, 2, Some(cursor)).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{sort:?} {cursor}: {body}");
        assert_error(&body, "invalid_parameter", &["cursor"]);
    }
    // Tampered: wrong prefix, not hex, odd length, truncated, extended, order tag changed.
    let mut tag_changed = by_score.clone();
    // "f1" + 8 hex digits of length, then the order tag's first byte.
    tag_changed.replace_range(10..12, "00");
    for bad in [
        "garbage".to_owned(),
        "".to_owned(),
        format!("f2{}", &by_score[2..]),
        format!("{}zz", &by_score),
        by_score[..by_score.len() - 1].to_owned(),
        by_score[..by_score.len() - 2].to_owned(),
        format!("{by_score}00"),
        format!("{by_score}0000000100"),
        tag_changed,
        "f1ffffffff".to_owned(),
    ] {
        let (status, body) = list_page(&api, &app, TAG_M, Some("score"), 2, Some(&bad)).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "cursor {bad:?}: {body}");
        assert_error(&body, "invalid_parameter", &[]);
    }
}

// ---------------------------------------------------------------------------------------
// Hostile filters
// ---------------------------------------------------------------------------------------

async fn hostile_app(api: &Api) -> App {
    let app = app_with_fields(
        api,
        &[
            ("age", "number"),
            ("name", "string"),
            ("last", "datetime"),
            ("signup", "date"),
        ],
    )
    .await;
    batch(
        api,
        &app,
        json!([
            {"customerId": "h1", "fields": {"age": 5, "name": "100% real_name"}},
            {"customerId": "h2", "fields": {"age": 1, "name": "plain"}},
        ]),
    )
    .await;
    app
}

#[tokio::test]
async fn malformed_text_is_filter_syntax() {
    let api = Api::new();
    let app = hostile_app(&api).await;
    for text in [
        "age >>> 3",
        "!!!",
        "age =",
        "(age > 3",
        "age > 3)",
        r#"name = "abc"#,
        r#"name = "abc\"#,
        "name = 'abc'",
        "age eq 3",
        "age == 3",
        "age <> 3",
        "age > 3 and",
        "and age > 3",
        "age > 3 or or age < 1",
        "age between 1",
        "age in ()",
        "age in (1, 2",
        "",
        "   ",
        "`age",
        "age > 90 d ago",
        "last before 1000001d ago",
        "\u{0}",
        "age > 3; DROP TABLE customers",
    ] {
        let (status, body) = count_reply(&api, &app, json!(text)).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{text:?}: {body}");
        assert_error(&body, "filter_syntax", &[]);
    }
    // Errors say where.
    let (_, body) = count_reply(&api, &app, json!("age >>> 3")).await;
    assert_error(&body, "filter_syntax", &["column"]);
    let (_, body) = count_reply(&api, &app, json!("name = 'abc'")).await;
    assert_error(&body, "filter_syntax", &["double quotes"]);
    // The data survived and filters stay data: % and _ are not wildcards.
    assert_eq!(count(&api, &app, json!("age exists")).await, 2);
    assert_eq!(count(&api, &app, json!(r#"name contains "%""#)).await, 1);
    assert_eq!(count(&api, &app, json!(r#"name contains "_""#)).await, 1);
    assert_eq!(count(&api, &app, json!(r#"name starts_with "%""#)).await, 0);
    assert_eq!(
        count(&api, &app, json!(r#"name = "'; DROP TABLE x; --""#)).await,
        0
    );
}

#[tokio::test]
async fn unknown_fields_mismatched_operators_and_invalid_values() {
    let api = Api::new();
    let app = hostile_app(&api).await;
    count_error(
        &api,
        &app,
        json!("agee > 3"),
        "filter_unknown_field",
        &["agee", "did you mean \"age\""],
    )
    .await;
    count_error(
        &api,
        &app,
        json!({"field": "agee", "op": "gt", "value": 3}),
        "filter_unknown_field",
        &["agee", "did you mean \"age\""],
    )
    .await;
    count_error(&api, &app, json!("id = 3"), "filter_unknown_field", &[]).await;
    for (filter, field) in [
        (json!(r#"age contains "3""#), "age"),
        (json!(r#"name > 3"#), "name"),
        (json!(r#"name between "a" and "b""#), "name"),
        (json!("name within_last 3d"), "name"),
        (json!("age anniversary"), "age"),
        (json!(r#"last = "2024-05-01""#), "last"),
        (json!(r#"signup in ("2024-05-01")"#), "signup"),
        (json!(r#"age on "2024-05-01""#), "age"),
        (
            json!({"field": "age", "op": "starts_with", "value": "1"}),
            "age",
        ),
        (json!({"field": "name", "op": "lt", "value": "b"}), "name"),
    ] {
        count_error(&api, &app, filter, "filter_operator_mismatch", &[field]).await;
    }
    for (filter, field) in [
        (json!(r#"age > "abc""#), "age"),
        (json!("age > 90d ago"), "age"),
        (json!(r#"name = """#), "name"),
        (json!(r#"name in ("a", "")"#), "name"),
        (json!(r#"last before "yesterday""#), "last"),
        (json!(r#"last before "2024-13-01""#), "last"),
        (json!(r#"last before "2024-05-01T10:00:00""#), "last"),
        (json!(r#"signup on "2024-02-30""#), "signup"),
        (json!(r#"last on "2024-05-01T00:00:00Z""#), "last"),
        (json!({"field": "age", "op": "eq", "value": "NaN"}), "age"),
        (json!({"field": "age", "op": "eq", "value": true}), "age"),
        (json!({"field": "name", "op": "eq", "value": 3}), "name"),
        (
            json!({"field": "age", "op": "between", "value": [1]}),
            "age",
        ),
        (json!({"field": "age", "op": "in", "value": 3}), "age"),
    ] {
        let (status, body) = count_reply(&api, &app, filter.clone()).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{filter}: {body}");
        let code = body["error"]["code"].as_str().unwrap_or_default();
        assert!(
            code == "filter_invalid_value" || code == "filter_syntax",
            "{filter}: expected filter_invalid_value (or filter_syntax for a wrong JSON shape), got {body}"
        );
        if filter.is_string() {
            assert_error(&body, "filter_invalid_value", &[field]);
        }
    }
    let (_, body) = count_reply(&api, &app, json!(r#"age > "abc""#)).await;
    assert_error(&body, "filter_invalid_value", &["age", "column"]);
    let (_, body) = count_reply(&api, &app, json!(r#"name = """#)).await;
    assert_error(&body, "filter_invalid_value", &["exists"]);
}

#[tokio::test]
async fn filters_of_the_wrong_json_shape_are_filter_syntax() {
    let api = Api::new();
    let app = hostile_app(&api).await;
    for filter in [
        json!(42),
        json!([]),
        json!([{"field": "age", "op": "gt", "value": 1}]),
        json!(null),
        json!(true),
        json!({}),
        json!({"and": []}),
        json!({"or": []}),
        json!({"and": {"field": "age", "op": "gt", "value": 1}}),
        json!({"not": [{"field": "age", "op": "gt", "value": 1}]}),
        json!({"op": "gt", "value": 1}),
        json!({"field": "age", "value": 1}),
        json!({"field": "age", "op": "bogus", "value": 1}),
        json!({"field": "age", "op": "gt", "value": 1, "extra": 1}),
        json!({"and": [{"field": "age", "op": "gt", "value": 1}], "or": []}),
        json!({"field": 3, "op": "gt", "value": 1}),
    ] {
        let (status, body) = count_reply(&api, &app, filter.clone()).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{filter}: {body}");
        assert_error(&body, "filter_syntax", &[]);
    }
}

/// `not not … age > 1`: `nots` negations around one condition (depth nots + 1).
fn text_nots(nots: usize) -> String {
    format!("{}age > 1", "not ".repeat(nots))
}

fn json_nots(nots: usize) -> Value {
    let mut v = json!({"field": "age", "op": "gt", "value": 1});
    for _ in 0..nots {
        v = json!({ "not": v });
    }
    v
}

#[tokio::test]
async fn nesting_is_limited_to_64_levels() {
    let api = Api::new();
    let app = hostile_app(&api).await;
    // 63 negations + the condition = 64 levels: accepted (an odd count: age <= 1).
    assert_eq!(count(&api, &app, json!(text_nots(63))).await, 1);
    assert_eq!(count(&api, &app, json_nots(63)).await, 1);
    assert_eq!(count(&api, &app, json!(text_nots(62))).await, 1);
    assert_eq!(count(&api, &app, json_nots(62)).await, 1);
    count_error(&api, &app, json!(text_nots(64)), "filter_too_deep", &["64"]).await;
    count_error(&api, &app, json_nots(64), "filter_too_deep", &["64"]).await;
    // Much deeper: still a clean 400 with the limit named, no stack overflow.
    count_error(
        &api,
        &app,
        json!(text_nots(10_000)),
        "filter_too_deep",
        &["64"],
    )
    .await;
    let parens = format!("{}age > 1{}", "(".repeat(20_000), ")".repeat(20_000));
    count_error(&api, &app, json!(parens), "filter_too_deep", &["64"]).await;
    let ands = format!("{}age > 1{}", "age > 1 and (".repeat(100), ")".repeat(100));
    count_error(&api, &app, json!(ands), "filter_too_deep", &["64"]).await;
    // Parentheses that do not nest conditions deeper are fine.
    assert_eq!(count(&api, &app, json!("((((((age > 1))))))")).await, 1);
    // A JSON document too deep for the JSON reader is still a 400.
    let (status, body) = count_reply(&api, &app, json_nots(200)).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
}

#[tokio::test]
async fn size_is_limited_to_64_kib() {
    let api = Api::new();
    let app = hostile_app(&api).await;
    let base = "age > 1";
    let exact = format!("{base}{}", " ".repeat(65_536 - base.len()));
    assert_eq!(exact.len(), 65_536);
    assert_eq!(count(&api, &app, json!(exact)).await, 1);
    let over = format!("{exact} ");
    count_error(&api, &app, json!(over), "filter_too_large", &["65536"]).await;
    // A long string value.
    let long_string = format!(r#"name = "{}""#, "x".repeat(70_000));
    count_error(&api, &app, json!(long_string), "filter_too_large", &[]).await;
    // JSON form, measured written compactly: 9 000 values of 10 bytes each.
    let values: Vec<f64> = (0..9_000).map(|i| 1_000_000.5 + f64::from(i)).collect();
    let big = json!({"field": "age", "op": "in", "value": values});
    assert!(big.to_string().len() > 65_536);
    count_error(&api, &app, big, "filter_too_large", &[]).await;
}

#[tokio::test]
async fn in_lists_hold_at_most_10000_values() {
    let api = Api::new();
    let app = hostile_app(&api).await;
    let list = |n: usize| {
        let mut v: Vec<String> = (0..n).map(|i| (i % 3 + 5).to_string()).collect();
        v[0] = "1".into();
        format!("age in ({})", v.join(","))
    };
    assert_eq!(count(&api, &app, json!(list(10_000))).await, 2);
    count_error(
        &api,
        &app,
        json!(list(10_001)),
        "filter_list_too_long",
        &["10000"],
    )
    .await;
    let json_list = |n: usize| json!({"field": "age", "op": "not_in", "value": vec![7; n]});
    assert_eq!(count(&api, &app, json_list(10_000)).await, 2);
    count_error(
        &api,
        &app,
        json_list(10_001),
        "filter_list_too_long",
        &["10000"],
    )
    .await;
    // The same limit in the list endpoint's query string.
    let (status, body) = list_page(&api, &app, &list(10_001), None, 10, None).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_error(&body, "filter_list_too_long", &[]);
}

#[tokio::test]
async fn count_body_must_be_a_json_object_with_only_filter() {
    let api = Api::new();
    let app = hostile_app(&api).await;
    let path = app.path("/count");
    for body in [
        json!({}),
        json!({"filter": "age > 1", "limit": 3}),
        json!({"Filter": "age > 1"}),
    ] {
        let (status, reply) = api
            .send("POST", &path, Some(&app.key), Some(body.clone()))
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}: {reply}");
        assert_error(&reply, "invalid_json", &[]);
    }
    for body in [json!("age > 1"), json!(null)] {
        let (status, reply) = api
            .send("POST", &path, Some(&app.key), Some(body.clone()))
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}: {reply}");
        assert_error(&reply, "invalid_input", &["expected an object"]);
    }
    let (status, reply) = api
        .send_raw(
            "POST",
            &path,
            Some(&app.key),
            Some("application/json"),
            "{\"filter\": ",
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{reply}");
    assert_error(&reply, "invalid_json", &[]);
    for ct in [
        Some("text/plain"),
        Some("application/x-www-form-urlencoded"),
        None,
    ] {
        let (status, reply) = api
            .send_raw(
                "POST",
                &path,
                Some(&app.key),
                ct,
                r#"{"filter": "age > 1"}"#,
            )
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{ct:?}: {reply}");
        assert_error(&reply, "invalid_content_type", &[]);
    }
    // No key: 401.
    let (status, reply) = api
        .send("POST", &path, None, Some(json!({"filter": "age > 1"})))
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{reply}");
    // GET is not counting.
    let (status, _) = api.send("GET", &path, Some(&app.key), None).await;
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
}

#[tokio::test]
async fn bad_filters_in_query_strings_are_400() {
    let api = Api::new();
    let app = hostile_app(&api).await;
    for (filter, code) in [
        ("age >>> 1", "filter_syntax"),
        ("agee > 1", "filter_unknown_field"),
        (r#"age contains "1""#, "filter_operator_mismatch"),
        (r#"age > "x""#, "filter_invalid_value"),
        ("", "filter_syntax"),
    ] {
        let (status, body) = list_page(&api, &app, filter, None, 10, None).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "list {filter:?}: {body}");
        assert_error(&body, code, &[]);
        let (status, _, text) = api
            .export_csv(&app, &app.key, &format!("?filter={}", enc(filter)))
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "export {filter:?}: {text}");
        let body: Value = serde_json::from_str(&text).unwrap();
        assert_error(&body, code, &[]);
    }
}

/// SPEC §4: the body is `{"filter": …}`. serde's derive also reads a struct from a JSON
/// array of its fields in order, so `["age > 1"]` must be refused explicitly.
#[tokio::test]
async fn count_body_that_is_an_array_is_400() {
    let api = Api::new();
    let app = hostile_app(&api).await;
    let (status, reply) = api
        .send(
            "POST",
            &app.path("/count"),
            Some(&app.key),
            Some(json!(["age > 1"])),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{reply}");
    assert_error(&reply, "invalid_input", &["expected an object"]);
}

/// "Today" is taken in the application's time zone, and follows a change of zone: a date
/// field's relative bounds and a datetime's anniversary are recomputed. Expectations are
/// computed here from the clock for each zone (the zones are often on different dates).
#[tokio::test]
async fn today_follows_the_app_timezone_and_its_changes() {
    let api = Api::new();
    let zones = [
        "UTC",
        "Pacific/Kiritimati",
        "Pacific/Pago_Pago",
        "Asia/Tokyo",
        "UTC",
    ];
    for _ in 0..3 {
        let utc_today = today_in("UTC");
        let app = app_with_fields(&api, &[("signup", "date"), ("bts", "datetime")]).await;
        // Dates around today in UTC, and instants around now, so that some zones see them
        // as today and others as yesterday or tomorrow.
        let now = now_ms();
        let mut expected_fixture = Vec::new();
        let mut items = Vec::new();
        for k in -2..=2_i64 {
            let date = add_days(utc_today, k);
            let instant = now + k * 11 * HOUR_MS;
            let id = format!("t{}", k + 2);
            items.push(json!({"customerId": id, "fields": {
                "signup": date.to_string(),
                "bts": rfc3339(instant),
            }}));
            expected_fixture.push((id, date, instant));
        }
        batch(&api, &app, Value::Array(items)).await;
        // Build the engine before the first change of zone.
        count(&api, &app, json!("signup exists")).await;
        let mut failures = Vec::new();
        let mut stable = true;
        for tz in zones {
            set_timezone(&api, &app, tz).await;
            let zone = jiff::tz::TimeZone::get(tz).unwrap();
            let today = today_in(tz);
            let md = |d: jiff::civil::Date| (d.month(), d.day());
            let within: Vec<&str> = expected_fixture
                .iter()
                .filter(|(_, d, _)| *d >= add_days(today, -1) && *d <= today)
                .map(|(id, _, _)| id.as_str())
                .collect();
            let anniversary: Vec<&str> = expected_fixture
                .iter()
                .filter(|(_, _, ms)| {
                    let ts = jiff::Timestamp::from_millisecond(*ms).unwrap();
                    md(zone.to_datetime(ts).date()) == md(today)
                })
                .map(|(id, _, _)| id.as_str())
                .collect();
            let signup_on = expected_fixture
                .iter()
                .filter(|(_, d, _)| *d == today)
                .count();
            let cases = vec![
                ("signup within_last 1d".to_owned(), within),
                ("bts anniversary".to_owned(), anniversary),
            ];
            for f in check_members(&api, &app, &cases).await {
                failures.push(format!("[{tz}] {f}"));
            }
            let n = count(&api, &app, json!(format!(r#"signup on "{today}""#))).await;
            if n != signup_on as u64 {
                failures.push(format!("[{tz}] signup on today: {n} != {signup_on}"));
            }
            if today_in(tz) != today {
                stable = false;
            }
        }
        if !stable {
            continue;
        }
        assert!(failures.is_empty(), "mismatches:\n{}", failures.join("\n"));
        return;
    }
    panic!("the day changed during every attempt");
}

#[tokio::test]
async fn counts_follow_small_imports_in_place_and_reload_after_large_ones() {
    let api = Api::new();
    let app = app_with_fields(&api, &[("city", "string")]).await;
    api.create_customer(&app, "seed", json!({"city": "Madrid"}))
        .await;
    assert_eq!(count(&api, &app, r#"city = "Madrid""#).await, 1);

    // Above the size announced customer by customer: the engine reloads the application.
    let large = unico_store::INCREMENTAL_IMPORT_CUSTOMERS as usize + 1;
    let mut csv = String::from("customerId,city\nseed,Paris\n");
    for i in 0..large {
        let city = if i % 3 == 0 { "Madrid" } else { "Lyon" };
        csv.push_str(&format!("big{i:05},{city}\n"));
    }
    let report = api.import_csv(&app, "", csv).await;
    assert_eq!(report["state"], "succeeded", "{report}");
    assert_eq!(report["created"].as_u64(), Some(large as u64));
    assert_eq!(
        count(&api, &app, r#"city = "Madrid""#).await,
        large.div_ceil(3) as u64,
        "the seed moved to Paris; every third new customer is in Madrid"
    );

    // A small import: created and updated customers reach the engine in place.
    let report = api
        .import_csv(
            &app,
            "",
            "customerId,city\nbig00001,Madrid\nnew,Madrid\nseed,\n",
        )
        .await;
    assert_eq!(report["state"], "succeeded", "{report}");
    assert_eq!(
        count(&api, &app, r#"city = "Madrid""#).await,
        large.div_ceil(3) as u64 + 2
    );
    assert_eq!(
        count(&api, &app, r#"city = "Paris""#).await,
        1,
        "an empty cell leaves the value"
    );
    assert_eq!(count(&api, &app, r#"customerId = "new""#).await, 1);
}
