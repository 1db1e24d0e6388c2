//! Batch upsert: per-item results, partial success, limits.

use axum::http::StatusCode;
use serde_json::{Value, json};

use crate::support::*;

async fn batch(api: &Api, app: &App, body: Value) -> (StatusCode, Value) {
    api.send(
        "POST",
        &app.path("/customers/batch"),
        Some(&app.key),
        Some(body),
    )
    .await
}

async fn app_with_age(api: &Api) -> App {
    let a = api.create_app("A").await;
    api.create_field(&a, "age", "number").await;
    api.create_field(&a, "city", "string").await;
    a
}

#[tokio::test]
async fn batch_answers_each_item_in_request_order() {
    let api = Api::new();
    let a = app_with_age(&api).await;
    api.create_customer(&a, "old", json!({"age": 1, "city": "Vigo"}))
        .await;
    let (status, body) = batch(
        &api,
        &a,
        json!([
            {"customerId": "zed", "fields": {"age": 5}},
            {"customerId": "old", "fields": {"age": 2}},
            {"customerId": "bad", "fields": {"age": "many"}},
            {"customerId": "amy"},
            {"fields": {"age": 3}},
            {"customerId": "x", "fields": {"nope": 1}},
            "not an object",
        ]),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let results = body["results"].as_array().unwrap();
    assert_eq!(results.len(), 7, "{body}");
    let statuses: Vec<&str> = results
        .iter()
        .map(|r| r["status"].as_str().unwrap())
        .collect();
    assert_eq!(
        statuses,
        [
            "created", "updated", "error", "created", "error", "error", "error"
        ]
    );
    assert_eq!(results[0]["customerId"], "zed");
    assert_eq!(results[1]["customerId"], "old");
    assert_eq!(results[2]["customerId"], "bad");
    assert_eq!(results[3]["customerId"], "amy");
    assert_eq!(results[5]["customerId"], "x");
    for (i, needle) in [(2, "many"), (4, "customerId"), (5, "nope"), (6, "object")] {
        let err = &results[i]["error"];
        assert_eq!(err["code"], "invalid_input", "{i}: {err}");
        assert!(err["details"].is_array(), "{err}");
        let message = err["message"].as_str().unwrap();
        assert!(message.contains(needle), "item {i}: {message}");
    }
    // Successful items carry no error; failed ones are not written.
    assert!(results[0].get("error").is_none());
    assert!(results[1].get("error").is_none());
    assert_eq!(api.customer_ids(&a).await, ["amy", "old", "zed"]);
    assert_eq!(
        api.get_customer(&a, "old").await.unwrap()["fields"],
        json!({"age": 2, "city": "Vigo"}),
        "an upsert changes only the fields it names"
    );
    assert_eq!(
        api.get_customer(&a, "zed").await.unwrap()["fields"],
        json!({"age": 5})
    );
    assert!(api.get_customer(&a, "bad").await.is_none());
    assert!(api.get_customer(&a, "x").await.is_none());
}

#[tokio::test]
async fn batch_error_details_name_the_item() {
    let api = Api::new();
    let a = app_with_age(&api).await;
    let (status, body) = batch(
        &api,
        &a,
        json!([
            {"customerId": "ok"},
            {"customerId": "bad", "fields": {"age": "x", "city": 3}},
        ]),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let err = &body["results"][1]["error"];
    let mut fields: Vec<&str> = err["details"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["field"].as_str().unwrap())
        .collect();
    fields.sort();
    assert_eq!(fields, ["[1].fields.age", "[1].fields.city"], "{err}");
}

#[tokio::test]
async fn batch_with_duplicate_customer_id_applies_both_in_order() {
    let api = Api::new();
    let a = app_with_age(&api).await;
    let (status, body) = batch(
        &api,
        &a,
        json!([
            {"customerId": "ana", "fields": {"age": 1, "city": "Lugo"}},
            {"customerId": "ana", "fields": {"age": 2}},
        ]),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["results"][0]["status"], "created");
    assert_eq!(body["results"][1]["status"], "updated");
    assert_eq!(
        api.get_customer(&a, "ana").await.unwrap()["fields"],
        json!({"age": 2, "city": "Lugo"})
    );
    assert_eq!(api.customer_ids(&a).await, ["ana"]);
    assert_eq!(api.value_count(&a, "age").await, 1);
}

#[tokio::test]
async fn batch_null_and_empty_string_remove_values() {
    let api = Api::new();
    let a = app_with_age(&api).await;
    api.create_customer(&a, "ana", json!({"age": 1, "city": "Lugo"}))
        .await;
    let (status, body) = batch(
        &api,
        &a,
        json!([{"customerId": "ana", "fields": {"age": null, "city": ""}}]),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["results"][0]["status"], "updated");
    assert_eq!(
        api.get_customer(&a, "ana").await.unwrap()["fields"],
        json!({})
    );
}

#[tokio::test]
async fn batch_of_10000_items_is_accepted() {
    let api = Api::new();
    let a = app_with_age(&api).await;
    let items: Vec<Value> = (0..10_000)
        .map(|i| json!({"customerId": format!("c{i:05}"), "fields": {"age": i}}))
        .collect();
    let (status, body) = batch(&api, &a, Value::Array(items)).await;
    assert_eq!(status, StatusCode::OK, "{}", body["error"]);
    let results = body["results"].as_array().unwrap();
    assert_eq!(results.len(), 10_000);
    assert!(results.iter().all(|r| r["status"] == "created"));
    assert_eq!(results[9_999]["customerId"], "c09999");
    assert_eq!(api.value_count(&a, "age").await, 10_000);
    assert_eq!(
        api.get_customer(&a, "c04321").await.unwrap()["fields"]["age"],
        4321
    );
}

#[tokio::test]
async fn batch_of_10001_items_is_400_limit_exceeded_and_writes_nothing() {
    let api = Api::new();
    let a = app_with_age(&api).await;
    let items: Vec<Value> = (0..10_001)
        .map(|i| json!({"customerId": format!("c{i}"), "fields": {"age": i}}))
        .collect();
    let (status, body) = batch(&api, &a, Value::Array(items)).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_error(&body, "limit_exceeded", &["10000", "10001"]);
    assert!(api.customer_ids(&a).await.is_empty());
    assert_eq!(api.value_count(&a, "age").await, 0);
}

#[tokio::test]
async fn batch_body_must_be_an_array() {
    let api = Api::new();
    let a = app_with_age(&api).await;
    for body in [
        json!({"customerId": "ana"}),
        json!({"items": [{"customerId": "ana"}]}),
        json!("ana"),
        json!(null),
        json!(3),
    ] {
        let (status, reply) = batch(&api, &a, body.clone()).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}: {reply}");
        assert_error(&reply, "invalid_input", &["array"]);
    }
    assert!(api.customer_ids(&a).await.is_empty());
}

#[tokio::test]
async fn empty_batch_is_200_with_no_results() {
    let api = Api::new();
    let a = app_with_age(&api).await;
    let (status, body) = batch(&api, &a, json!([])).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body, json!({"results": []}));
}

#[tokio::test]
async fn batch_result_names_the_item_and_any_customer_shown_matches_a_get() {
    let api = Api::new();
    let a = app_with_age(&api).await;
    let (status, body) = batch(
        &api,
        &a,
        json!([{"customerId": "ana", "fields": {"age": "31"}}]),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let r = &body["results"][0];
    assert_eq!(r["customerId"], "ana");
    assert_eq!(r["status"], "created");
    // SPEC §7 does not require the customer in a result; when shown, it is the stored one.
    if let Some(c) = r.get("customer") {
        assert_eq!(c, &api.get_customer(&a, "ana").await.unwrap());
        assert_eq!(serde_json::to_string(&c["fields"]["age"]).unwrap(), "31");
    }
    assert_eq!(
        api.get_customer(&a, "ana").await.unwrap()["fields"],
        json!({"age": 31})
    );
}
