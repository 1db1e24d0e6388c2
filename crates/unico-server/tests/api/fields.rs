//! Customer fields: the application's schema.

use axum::http::StatusCode;
use serde_json::{Value, json};

use crate::support::*;

async fn post_field(api: &Api, app: &App, body: Value) -> (StatusCode, Value) {
    api.send("POST", &app.path("/fields"), Some(&app.key), Some(body))
        .await
}

#[tokio::test]
async fn create_field_is_201_with_lowercase_type_and_zero_count() {
    let api = Api::new();
    let a = api.create_app("A").await;
    for (name, ty, out) in [
        ("age", "NUMBER", "number"),
        ("city", "String", "string"),
        ("last_seen", "DateTime", "datetime"),
        ("birthday", "date", "date"),
    ] {
        let (status, body) = post_field(&api, &a, json!({"name": name, "type": ty})).await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        assert_eq!(body["name"], name);
        assert_eq!(body["type"], out);
        assert_eq!(body["value_count"], 0);
        assert!(body["created_at"].as_str().unwrap().ends_with('Z'));
    }
    let list = api.fields(&a).await;
    let got: Vec<(&str, &str)> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|f| (f["name"].as_str().unwrap(), f["type"].as_str().unwrap()))
        .collect();
    assert_eq!(got.len(), 4);
    for pair in [
        ("age", "number"),
        ("city", "string"),
        ("last_seen", "datetime"),
        ("birthday", "date"),
    ] {
        assert!(got.contains(&pair), "{got:?}");
    }
    let (status, one) = api
        .send("GET", &a.path("/fields/age"), Some(&a.key), None)
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(one["type"], "number");
}

#[tokio::test]
async fn duplicate_field_is_409_and_keeps_the_first_type() {
    let api = Api::new();
    let a = api.create_app("A").await;
    api.create_field(&a, "age", "number").await;
    let (status, body) = post_field(&api, &a, json!({"name": "age", "type": "string"})).await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert_error(&body, "conflict", &["age"]);
    let list = api.fields(&a).await;
    assert_eq!(list.as_array().unwrap().len(), 1);
    assert_eq!(list[0]["type"], "number");
}

#[tokio::test]
async fn field_names_are_case_sensitive() {
    let api = Api::new();
    let a = api.create_app("A").await;
    api.create_field(&a, "age", "number").await;
    api.create_field(&a, "Age", "string").await;
    api.create_customer(&a, "ana", json!({"age": 3, "Age": "three"}))
        .await;
    let c = api.get_customer(&a, "ana").await.unwrap();
    assert_eq!(c["fields"], json!({"age": 3, "Age": "three"}));
}

#[tokio::test]
async fn reserved_field_names_are_400() {
    let api = Api::new();
    let a = api.create_app("A").await;
    for name in ["id", "customerId", "created_at", "updated_at"] {
        let (status, body) = post_field(&api, &a, json!({"name": name, "type": "string"})).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{name}: {body}");
        assert_error(&body, "invalid_input", &["reserved", name]);
        assert_eq!(details(&body)[0].0, "name");
    }
    assert_eq!(api.fields(&a).await, json!([]));
}

#[tokio::test]
async fn invalid_field_names_are_400_with_reason() {
    let api = Api::new();
    let a = api.create_app("A").await;
    let cases: Vec<(String, &str)> = vec![
        (String::new(), "empty"),
        ("x".repeat(129), "129 characters"),
        ("é".repeat(129), "at most 128"),
        ("a\tb".into(), "control character"),
        ("a\nb".into(), "control character"),
        ("a\u{0}b".into(), "control character"),
        ("a\u{7f}".into(), "control character"),
        (" age".into(), "white space"),
        ("age ".into(), "white space"),
    ];
    for (name, reason) in cases {
        let (status, body) = post_field(&api, &a, json!({"name": name, "type": "string"})).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{name:?}: {body}");
        assert_error(&body, "invalid_input", &[reason]);
    }
    assert_eq!(api.fields(&a).await, json!([]));
}

#[tokio::test]
async fn field_name_of_exactly_128_characters_is_accepted() {
    let api = Api::new();
    let a = api.create_app("A").await;
    for name in ["x".repeat(128), "日".repeat(128)] {
        let (status, body) = post_field(&api, &a, json!({"name": name, "type": "string"})).await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        assert_eq!(body["name"], name.as_str());
    }
    // And usable in a customer, and readable back through its percent-encoded path.
    let name = "日".repeat(128);
    api.create_customer(&a, "ana", json!({ name.clone(): "v" }))
        .await;
    let (status, one) = api
        .send(
            "GET",
            &a.path(&format!("/fields/{}", enc(&name))),
            Some(&a.key),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{one}");
    assert_eq!(one["value_count"], 1);
}

#[tokio::test]
async fn field_names_with_spaces_and_symbols_work_through_paths() {
    let api = Api::new();
    let a = api.create_app("A").await;
    let name = "last purchase/€ #1?";
    api.create_field(&a, name, "number").await;
    api.create_customer(&a, "ana", json!({ name: 5 })).await;
    let path = a.path(&format!("/fields/{}", enc(name)));
    let (status, one) = api.send("GET", &path, Some(&a.key), None).await;
    assert_eq!(status, StatusCode::OK, "{one}");
    assert_eq!(one["name"], name);
    let (status, del) = api.send("DELETE", &path, Some(&a.key), None).await;
    assert_eq!(status, StatusCode::OK, "{del}");
    assert_eq!(del["values_deleted"], 1);
}

#[tokio::test]
async fn unknown_field_type_is_400_listing_accepted_types() {
    let api = Api::new();
    let a = api.create_app("A").await;
    for ty in ["integer", "", "bool", " number"] {
        let (status, body) = post_field(&api, &a, json!({"name": "x", "type": ty})).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{ty:?}: {body}");
        assert_error(
            &body,
            "invalid_input",
            &["string", "number", "datetime", "date"],
        );
        assert_eq!(details(&body)[0].0, "type");
    }
    // Type of the wrong JSON kind, or missing.
    for body in [json!({"name": "x", "type": 1}), json!({"name": "x"})] {
        let (status, reply) = post_field(&api, &a, body).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{reply}");
        assert_error(&reply, "invalid_json", &["type"]);
    }
    assert_eq!(api.fields(&a).await, json!([]));
}

#[tokio::test]
async fn value_count_follows_writes() {
    let api = Api::new();
    let a = api.create_app("A").await;
    api.create_field(&a, "age", "number").await;
    api.create_field(&a, "city", "string").await;
    assert_eq!(api.value_count(&a, "age").await, 0);
    api.create_customer(&a, "ana", json!({"age": 30})).await;
    api.create_customer(&a, "bob", json!({"age": 40, "city": "Lugo"}))
        .await;
    assert_eq!(api.value_count(&a, "age").await, 2);
    assert_eq!(api.value_count(&a, "city").await, 1);
    // Changing a value keeps the count; removing it lowers it.
    let (status, _) = api
        .patch_customer(&a, "ana", json!({"fields": {"age": 31}}))
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(api.value_count(&a, "age").await, 2);
    let (status, _) = api
        .patch_customer(&a, "ana", json!({"fields": {"age": null, "city": "Vigo"}}))
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(api.value_count(&a, "age").await, 1);
    assert_eq!(api.value_count(&a, "city").await, 2);
    // Removing an absent value changes nothing.
    let (status, _) = api
        .patch_customer(&a, "ana", json!({"fields": {"age": ""}}))
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(api.value_count(&a, "age").await, 1);
    // Deleting a customer drops their values.
    let (status, _) = api
        .send("DELETE", &a.path("/customers/bob"), Some(&a.key), None)
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert_eq!(api.value_count(&a, "age").await, 0);
    assert_eq!(api.value_count(&a, "city").await, 1);
    // Batch writes count too.
    let (status, _) = api
        .send(
            "POST",
            &a.path("/customers/batch"),
            Some(&a.key),
            Some(json!([
                {"customerId": "c1", "fields": {"age": 1}},
                {"customerId": "ana", "fields": {"age": 2, "city": null}},
            ])),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(api.value_count(&a, "age").await, 2);
    assert_eq!(api.value_count(&a, "city").await, 0);
    let (_, one) = api
        .send("GET", &a.path("/fields/age"), Some(&a.key), None)
        .await;
    assert_eq!(one["value_count"], 2);
}

#[tokio::test]
async fn patch_field_type_is_allowed_while_empty() {
    let api = Api::new();
    let a = api.create_app("A").await;
    api.create_field(&a, "code", "number").await;
    let (status, body) = api
        .send(
            "PATCH",
            &a.path("/fields/code"),
            Some(&a.key),
            Some(json!({"type": "STRING"})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["name"], "code");
    assert_eq!(body["type"], "string");
    assert_eq!(api.fields(&a).await[0]["type"], "string");
    // The new type is the one values are checked against.
    api.create_customer(&a, "ana", json!({"code": "A-1"})).await;
}

#[tokio::test]
async fn patch_field_type_is_409_while_values_exist_and_changes_nothing() {
    let api = Api::new();
    let a = api.create_app("A").await;
    api.create_field(&a, "age", "number").await;
    api.create_customer(&a, "ana", json!({"age": 30})).await;
    let (status, body) = api
        .send(
            "PATCH",
            &a.path("/fields/age"),
            Some(&a.key),
            Some(json!({"type": "string"})),
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert_error(&body, "conflict", &["age"]);
    assert_eq!(api.fields(&a).await[0]["type"], "number");
    assert_eq!(
        api.get_customer(&a, "ana").await.unwrap()["fields"]["age"],
        30
    );
    // Once the value is gone the change is allowed.
    let (status, _) = api
        .patch_customer(&a, "ana", json!({"fields": {"age": null}}))
        .await;
    assert_eq!(status, StatusCode::OK);
    let (status, body) = api
        .send(
            "PATCH",
            &a.path("/fields/age"),
            Some(&a.key),
            Some(json!({"type": "string"})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["type"], "string");
}

#[tokio::test]
async fn patch_field_with_bad_type_is_400_and_unknown_field_is_404() {
    let api = Api::new();
    let a = api.create_app("A").await;
    api.create_field(&a, "age", "number").await;
    let (status, body) = api
        .send(
            "PATCH",
            &a.path("/fields/age"),
            Some(&a.key),
            Some(json!({"type": "integer"})),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_error(&body, "invalid_input", &["integer"]);
    assert_eq!(api.fields(&a).await[0]["type"], "number");
    let (status, body) = api
        .send(
            "PATCH",
            &a.path("/fields/nope"),
            Some(&a.key),
            Some(json!({"type": "string"})),
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    assert_error(&body, "not_found", &["nope"]);
    // Renaming is not a thing: unknown keys are refused.
    let (status, body) = api
        .send(
            "PATCH",
            &a.path("/fields/age"),
            Some(&a.key),
            Some(json!({"type": "number", "name": "years"})),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(api.fields(&a).await[0]["name"], "age");
}

#[tokio::test]
async fn delete_field_removes_values_from_every_customer() {
    let api = Api::new();
    let a = api.create_app("A").await;
    api.create_field(&a, "age", "number").await;
    api.create_field(&a, "city", "string").await;
    api.create_customer(&a, "ana", json!({"age": 30, "city": "Madrid"}))
        .await;
    api.create_customer(&a, "bob", json!({"age": 40})).await;
    api.create_customer(&a, "cid", json!({"city": "Lugo"}))
        .await;
    let (status, body) = api
        .send("DELETE", &a.path("/fields/age"), Some(&a.key), None)
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body, json!({"values_deleted": 2}));
    assert_eq!(
        api.get_customer(&a, "ana").await.unwrap()["fields"],
        json!({"city": "Madrid"})
    );
    assert_eq!(
        api.get_customer(&a, "bob").await.unwrap()["fields"],
        json!({})
    );
    assert_eq!(
        api.get_customer(&a, "cid").await.unwrap()["fields"],
        json!({"city": "Lugo"})
    );
    let list = api.fields(&a).await;
    assert_eq!(list.as_array().unwrap().len(), 1);
    assert_eq!(list[0]["name"], "city");
    // The list does not show it either.
    for c in api.all_customers(&a).await {
        assert!(c["fields"].get("age").is_none(), "{c}");
    }
    // And it can no longer be written.
    let (status, body) = api
        .patch_customer(&a, "ana", json!({"fields": {"age": 1}}))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    // Deleting again is 404.
    let (status, body) = api
        .send("DELETE", &a.path("/fields/age"), Some(&a.key), None)
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    assert_error(&body, "not_found", &["age"]);
    let (status, _) = api
        .send("GET", &a.path("/fields/age"), Some(&a.key), None)
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn recreated_field_shows_no_old_values() {
    let api = Api::new();
    let a = api.create_app("A").await;
    api.create_field(&a, "age", "number").await;
    api.create_customer(&a, "ana", json!({"age": 30})).await;
    let (status, _) = api
        .send("DELETE", &a.path("/fields/age"), Some(&a.key), None)
        .await;
    assert_eq!(status, StatusCode::OK);
    let created = api.create_field(&a, "age", "string").await;
    assert_eq!(created["value_count"], 0);
    assert_eq!(api.value_count(&a, "age").await, 0);
    assert_eq!(
        api.get_customer(&a, "ana").await.unwrap()["fields"],
        json!({})
    );
    // The new type applies.
    let (status, body) = api
        .patch_customer(&a, "ana", json!({"fields": {"age": "thirty"}}))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["fields"], json!({"age": "thirty"}));
}

#[tokio::test]
async fn get_field_with_invalid_name_in_path_is_404() {
    let api = Api::new();
    let a = api.create_app("A").await;
    for name in ["id", "%20x", "a%09b"] {
        let (status, body) = api
            .send(
                "GET",
                &a.path(&format!("/fields/{name}")),
                Some(&a.key),
                None,
            )
            .await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{name}: {body}");
        assert_error(&body, "not_found", &[]);
    }
}

#[tokio::test]
async fn an_app_holds_at_most_1000_fields() {
    let api = Api::new();
    let a = api.create_app("A").await;
    for i in 0..1000 {
        let (status, body) =
            post_field(&api, &a, json!({"name": format!("f{i}"), "type": "string"})).await;
        assert_eq!(status, StatusCode::CREATED, "field {i}: {body}");
    }
    let (status, body) = post_field(&api, &a, json!({"name": "one_more", "type": "string"})).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_error(&body, "limit_exceeded", &["1000"]);
    assert_eq!(api.fields(&a).await.as_array().unwrap().len(), 1000);
    // Deleting one makes room again.
    let (status, _) = api
        .send("DELETE", &a.path("/fields/f0"), Some(&a.key), None)
        .await;
    assert_eq!(status, StatusCode::OK);
    api.create_field(&a, "one_more", "string").await;
}
