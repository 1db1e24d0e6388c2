//! Listing customers: order, limits, cursors and sorts.

use std::collections::HashSet;

use axum::http::StatusCode;
use serde_json::{Value, json};

use crate::support::*;

async fn list(api: &Api, app: &App, query: &str) -> (StatusCode, Value) {
    api.send(
        "GET",
        &app.path(&format!("/customers{query}")),
        Some(&app.key),
        None,
    )
    .await
}

/// Creates `n` customers `c000`… through one batch, with `age` = index.
async fn app_with_customers(api: &Api, n: usize) -> App {
    let a = api.create_app("A").await;
    api.create_field(&a, "age", "number").await;
    let items: Vec<Value> = (0..n)
        .map(|i| json!({"customerId": format!("c{i:03}"), "fields": {"age": i}}))
        .collect();
    let (status, body) = api
        .send(
            "POST",
            &a.path("/customers/batch"),
            Some(&a.key),
            Some(Value::Array(items)),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    a
}

#[tokio::test]
async fn default_order_is_utf8_byte_order_of_customer_id() {
    let api = Api::new();
    let a = api.create_app("A").await;
    let input = [
        "ä", "a", "B", "Z", "ab", "é", "z", "日本", "😀", "10", "9", "_", "A",
    ];
    for id in input {
        api.create_customer(&a, id, json!({})).await;
    }
    let (status, body) = list(&api, &a, "").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let got = ids(body["customers"].as_array().unwrap());
    let mut expected: Vec<String> = input.iter().map(|s| s.to_string()).collect();
    expected.sort_by(|x, y| x.as_bytes().cmp(y.as_bytes()));
    assert_eq!(got, expected);
    // Spelled out: upper case before lower case before accented.
    let pos = |s: &str| got.iter().position(|x| x == s).unwrap();
    assert!(pos("B") < pos("a") && pos("a") < pos("ä") && pos("z") < pos("é"));
    assert!(pos("10") < pos("9"));
    assert_eq!(body["next_cursor"], Value::Null);
    // Descending is the exact reverse.
    let (_, body) = list(&api, &a, "?sort=-customerId").await;
    expected.reverse();
    assert_eq!(ids(body["customers"].as_array().unwrap()), expected);
}

#[tokio::test]
async fn default_limit_is_50_with_a_next_cursor() {
    let api = Api::new();
    let a = app_with_customers(&api, 51).await;
    let (status, body) = list(&api, &a, "").await;
    assert_eq!(status, StatusCode::OK);
    let page = body["customers"].as_array().unwrap();
    assert_eq!(page.len(), 50);
    assert_eq!(page[0]["customerId"], "c000");
    assert_eq!(page[49]["customerId"], "c049");
    let cursor = body["next_cursor"].as_str().unwrap();
    let (status, body) = list(&api, &a, &format!("?cursor={}", enc(cursor))).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(ids(body["customers"].as_array().unwrap()), ["c050"]);
    assert_eq!(body["next_cursor"], Value::Null);
}

#[tokio::test]
async fn limit_of_1000_is_accepted() {
    let api = Api::new();
    let a = app_with_customers(&api, 1001).await;
    let (status, body) = list(&api, &a, "?limit=1000").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["customers"].as_array().unwrap().len(), 1000);
    assert!(body["next_cursor"].is_string());
    let (status, body) = list(&api, &a, "?limit=1").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["customers"].as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn limit_above_1000_is_400_limit_exceeded() {
    let api = Api::new();
    let a = app_with_customers(&api, 1).await;
    for limit in ["1001", "1000000"] {
        let (status, body) = list(&api, &a, &format!("?limit={limit}")).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{limit}: {body}");
        assert_error(&body, "limit_exceeded", &["1000", limit]);
    }
}

#[tokio::test]
async fn limit_that_is_not_1_to_1000_is_400() {
    let api = Api::new();
    let a = app_with_customers(&api, 1).await;
    for limit in ["0", "-1", "abc", "", "1.5", "10%20"] {
        let (status, body) = list(&api, &a, &format!("?limit={limit}")).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{limit}: {body}");
        assert_error(&body, "invalid_parameter", &["limit"]);
    }
}

#[tokio::test]
async fn cursor_pagination_visits_everyone_exactly_once() {
    let api = Api::new();
    let a = app_with_customers(&api, 23).await;
    for (sort, limit) in [
        (None, 5),
        (Some("-customerId"), 4),
        (Some("created_at"), 7),
        (Some("-created_at"), 3),
        (Some("updated_at"), 6),
        (Some("-updated_at"), 6),
        (Some("age"), 5),
        (Some("-age"), 2),
        (None, 23),
        (None, 1),
    ] {
        let all = api.all_customers_sorted(&a, sort, limit).await;
        let got = ids(&all);
        let unique: HashSet<&String> = got.iter().collect();
        assert_eq!(got.len(), 23, "{sort:?}/{limit}: {got:?}");
        assert_eq!(unique.len(), 23, "{sort:?}/{limit}: duplicates in {got:?}");
    }
}

#[tokio::test]
async fn tampered_cursor_is_400() {
    let api = Api::new();
    let a = app_with_customers(&api, 5).await;
    let (_, body) = list(&api, &a, "?limit=2").await;
    let cursor = body["next_cursor"].as_str().unwrap().to_owned();
    let truncated = cursor[..cursor.len() - 3].to_owned();
    let bad: Vec<String> = vec![
        "garbage".into(),
        "".into(),
        "c1".into(),
        "c1zz".into(),
        truncated,
        format!("{cursor}00"),
        format!("x{cursor}"),
        cursor.replacen("c1", "c2", 1),
    ];
    for c in bad {
        let (status, body) = list(&api, &a, &format!("?limit=2&cursor={}", enc(&c))).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{c}: {body}");
        assert_error(&body, "invalid_parameter", &["cursor"]);
    }
}

#[tokio::test]
async fn cursor_reused_with_another_sort_is_400() {
    let api = Api::new();
    let a = app_with_customers(&api, 5).await;
    let (_, body) = list(&api, &a, "?limit=2").await;
    let cursor = enc(body["next_cursor"].as_str().unwrap());
    for sort in ["-customerId", "created_at", "age", "-age", "updated_at"] {
        let (status, body) = list(&api, &a, &format!("?limit=2&cursor={cursor}&sort={sort}")).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{sort}: {body}");
        assert_error(&body, "invalid_parameter", &["sort"]);
    }
    // Explicitly naming the default sort is the same order.
    let (status, _) = list(
        &api,
        &a,
        &format!("?limit=2&cursor={cursor}&sort=customerId"),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn sort_by_field_puts_missing_values_last_in_both_directions() {
    let api = Api::new();
    let a = api.create_app("A").await;
    api.create_field(&a, "score", "number").await;
    for (id, score) in [
        ("e", json!(3)),
        ("a", Value::Null),
        ("d", json!(-1.5)),
        ("c", json!(10)),
        ("b", json!(3)),
        ("f", Value::Null),
        ("g", json!(2)),
    ] {
        api.create_customer(&a, id, json!({ "score": score })).await;
    }
    for limit in [1000, 2, 1] {
        let asc = ids(&api.all_customers_sorted(&a, Some("score"), limit).await);
        assert_eq!(asc, ["d", "g", "b", "e", "c", "a", "f"], "limit {limit}");
        let desc = api.all_customers_sorted(&a, Some("-score"), limit).await;
        let scores: Vec<Option<f64>> = desc
            .iter()
            .map(|c| c["fields"].get("score").and_then(Value::as_f64))
            .collect();
        assert_eq!(
            scores[..5],
            [Some(10.0), Some(3.0), Some(3.0), Some(2.0), Some(-1.5)],
            "limit {limit}: {desc:?}"
        );
        let desc = ids(&desc);
        let mut tail = desc[5..].to_vec();
        tail.sort();
        assert_eq!(tail, ["a", "f"], "missing values must come last: {desc:?}");
    }
}

#[tokio::test]
async fn sort_by_string_date_and_datetime_fields() {
    let api = Api::new();
    let a = api.create_app("A").await;
    api.create_field(&a, "city", "string").await;
    api.create_field(&a, "born", "date").await;
    api.create_field(&a, "seen", "datetime").await;
    api.create_customer(
        &a,
        "1",
        json!({"city": "b", "born": "2000-01-01", "seen": "2024-01-01T00:00:00+01:00"}),
    )
    .await;
    api.create_customer(
        &a,
        "2",
        json!({"city": "B", "born": "1999-12-31", "seen": "2023-12-31T23:30:00Z"}),
    )
    .await;
    api.create_customer(
        &a,
        "3",
        json!({"city": "á", "born": "2000-01-02", "seen": "2024-01-01T00:00:00Z"}),
    )
    .await;
    api.create_customer(&a, "4", json!({})).await;
    let by = |s: &'static str| {
        let api = &api;
        let a = &a;
        async move { ids(&api.all_customers_sorted(a, Some(s), 1000).await) }
    };
    assert_eq!(by("city").await, ["2", "1", "3", "4"]);
    assert_eq!(by("born").await, ["2", "1", "3", "4"]);
    assert_eq!(by("-born").await, ["3", "1", "2", "4"]);
    // 2024-01-01T00:00:00+01:00 is 2023-12-31T23:00:00Z, the earliest.
    assert_eq!(by("seen").await, ["1", "2", "3", "4"]);
    assert_eq!(by("-seen").await, ["3", "2", "1", "4"]);
}

#[tokio::test]
async fn sort_by_created_at_and_updated_at() {
    let api = Api::new();
    let a = api.create_app("A").await;
    api.create_field(&a, "n", "number").await;
    for id in ["m", "z", "a"] {
        api.create_customer(&a, id, json!({"n": 1})).await;
    }
    let by = |s: &'static str| {
        let api = &api;
        let a = &a;
        async move { ids(&api.all_customers_sorted(a, Some(s), 1000).await) }
    };
    assert_eq!(by("created_at").await, ["m", "z", "a"]);
    assert_eq!(by("-created_at").await, ["a", "z", "m"]);
    // Touch "m" once the clock has passed every updated_at: it becomes the latest.
    let latest = api.get_customer(&a, "a").await.unwrap()["updated_at"]
        .as_str()
        .unwrap()
        .to_owned();
    api.wait_for_clock_past(&latest).await;
    let (status, _) = api
        .patch_customer(&a, "m", json!({"fields": {"n": 2}}))
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(by("updated_at").await.last().unwrap(), "m");
    assert_eq!(by("-updated_at").await.first().unwrap(), "m");
    // created_at order did not change.
    assert_eq!(by("created_at").await, ["m", "z", "a"]);
}

#[tokio::test]
async fn unknown_sort_field_is_400_with_suggestion() {
    let api = Api::new();
    let a = app_with_customers(&api, 2).await;
    let (status, body) = list(&api, &a, "?sort=agee").await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_error(
        &body,
        "invalid_parameter",
        &["agee", "did you mean \"age\""],
    );
    for sort in ["-nope", "-", "", "id", "customerid", "--age", "+age"] {
        let (status, body) = list(&api, &a, &format!("?sort={}", enc(sort))).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{sort:?}: {body}");
        assert_error(&body, "invalid_parameter", &["sort"]);
    }
}

#[tokio::test]
async fn unknown_or_repeated_query_parameter_is_400() {
    let api = Api::new();
    let a = app_with_customers(&api, 2).await;
    for query in ["?limt=5", "?page=2", "?Limit=5", "?limit=5&offset=10"] {
        let (status, body) = list(&api, &a, query).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{query}: {body}");
        assert_error(
            &body,
            "invalid_parameter",
            &["unknown query parameter", "limit"],
        );
    }
    let (status, body) = list(&api, &a, "?limit=5&limit=6").await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_error(&body, "invalid_parameter", &["limit", "twice"]);
}

#[tokio::test]
async fn list_shows_customers_in_spec_shape() {
    let api = Api::new();
    let a = app_with_customers(&api, 3).await;
    let (_, body) = list(&api, &a, "").await;
    let obj = body.as_object().unwrap();
    assert_eq!(obj.len(), 2, "{body}");
    let first = &body["customers"][0];
    assert_eq!(first, &api.get_customer(&a, "c000").await.unwrap());
    assert_eq!(serde_json::to_string(&first["fields"]["age"]).unwrap(), "0");
}

#[tokio::test]
async fn empty_app_lists_nothing() {
    let api = Api::new();
    let a = api.create_app("A").await;
    let (status, body) = list(&api, &a, "").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, json!({"customers": [], "next_cursor": null}));
}
