//! Applications: create, list, get, patch, delete.

use axum::http::StatusCode;
use serde_json::json;

use crate::support::*;

#[tokio::test]
async fn create_app_is_201_with_api_key_and_utc_default() {
    let api = Api::new();
    let (status, body) = api
        .admin("POST", "/v1/apps", Some(json!({"name": "Acme"})))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert!(body["id"].is_i64(), "{body}");
    assert_eq!(body["name"], "Acme");
    assert_eq!(body["timezone"], "UTC");
    let created = body["created_at"].as_str().unwrap();
    assert!(created.ends_with('Z') && created.len() == 24, "{created}");
    let key = body["api_key"].as_str().unwrap();
    assert!(key.len() > 20, "{key}");
    // The key works at once on its own application.
    let (status, _) = api
        .send("GET", &format!("/v1/apps/{}", body["id"]), Some(key), None)
        .await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn create_app_keeps_a_given_iana_timezone() {
    let api = Api::new();
    let (status, body) = api
        .admin(
            "POST",
            "/v1/apps",
            Some(json!({"name": "Madrid", "timezone": "Europe/Madrid"})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(body["timezone"], "Europe/Madrid");
}

#[tokio::test]
async fn create_app_with_unknown_timezone_is_400_and_creates_nothing() {
    let api = Api::new();
    for tz in ["Mars/Olympus_Mons", "", "+01:00x"] {
        let (status, body) = api
            .admin(
                "POST",
                "/v1/apps",
                Some(json!({"name": "Acme", "timezone": tz})),
            )
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{tz}: {body}");
        assert_error(&body, "invalid_input", &["time zone"]);
        assert_eq!(details(&body)[0].0, "timezone");
    }
    let (_, list) = api.admin("GET", "/v1/apps", None).await;
    assert_eq!(list["apps"], json!([]));
}

#[tokio::test]
async fn create_app_with_empty_or_oversized_name_is_400_and_creates_nothing() {
    let api = Api::new();
    for name in [
        String::new(),
        "   ".into(),
        "x".repeat(201),
        "a\u{7}b".into(),
    ] {
        let (status, body) = api
            .admin("POST", "/v1/apps", Some(json!({ "name": name })))
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{name:?}: {body}");
        assert_error(&body, "invalid_input", &["name"]);
    }
    let (_, list) = api.admin("GET", "/v1/apps", None).await;
    assert_eq!(list["apps"], json!([]));
    // 200 characters is the limit, inclusive.
    let (status, body) = api
        .admin("POST", "/v1/apps", Some(json!({ "name": "é".repeat(200) })))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
}

#[tokio::test]
async fn create_app_without_name_or_with_unknown_key_is_400() {
    let api = Api::new();
    let (status, body) = api.admin("POST", "/v1/apps", Some(json!({}))).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_error(&body, "invalid_json", &["name"]);
    let (status, body) = api
        .admin("POST", "/v1/apps", Some(json!({"name": "x", "tz": "UTC"})))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_error(&body, "invalid_json", &["tz"]);
    let (_, list) = api.admin("GET", "/v1/apps", None).await;
    assert_eq!(list["apps"], json!([]));
}

#[tokio::test]
async fn admin_lists_every_app_and_api_key_lists_only_its_own() {
    let api = Api::new();
    let a = api.create_app("A").await;
    let b = api.create_app("B").await;
    let (status, body) = api.admin("GET", "/v1/apps", None).await;
    assert_eq!(status, StatusCode::OK);
    let names: Vec<&str> = body["apps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["A", "B"]);
    // No app listing ever shows a key.
    assert!(body["apps"][0].get("api_key").is_none());

    let (status, body) = api.send("GET", "/v1/apps", Some(&a.key), None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["apps"].as_array().unwrap().len(), 1, "{body}");
    assert_eq!(body["apps"][0]["id"], a.id);
    let (_, body) = api.send("GET", "/v1/apps", Some(&b.key), None).await;
    assert_eq!(body["apps"].as_array().unwrap().len(), 1, "{body}");
    assert_eq!(body["apps"][0]["id"], b.id);
}

#[tokio::test]
async fn get_app_answers_the_app() {
    let api = Api::new();
    let a = api.create_app("Acme").await;
    let (status, body) = api.admin("GET", &a.path(""), None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["id"], a.id);
    assert_eq!(body["name"], "Acme");
    assert_eq!(body["timezone"], "UTC");
    assert!(body.get("api_key").is_none(), "the key is shown once only");
}

#[tokio::test]
async fn patch_app_renames_and_changes_timezone() {
    let api = Api::new();
    let a = api.create_app("Acme").await;
    let (status, body) = api
        .admin(
            "PATCH",
            &a.path(""),
            Some(json!({"name": "Acme ES", "timezone": "Europe/Madrid"})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["name"], "Acme ES");
    assert_eq!(body["timezone"], "Europe/Madrid");
    let (_, body) = api.admin("GET", &a.path(""), None).await;
    assert_eq!(body["name"], "Acme ES");
    assert_eq!(body["timezone"], "Europe/Madrid");
    // Only the timezone: the name stays.
    let (status, body) = api
        .admin("PATCH", &a.path(""), Some(json!({"timezone": "UTC"})))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["name"], "Acme ES");
    assert_eq!(body["timezone"], "UTC");
}

#[tokio::test]
async fn patch_app_with_bad_timezone_is_400_and_changes_nothing() {
    let api = Api::new();
    let a = api.create_app("Acme").await;
    let (status, body) = api
        .admin(
            "PATCH",
            &a.path(""),
            Some(json!({"name": "Renamed", "timezone": "Nowhere/Land"})),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_error(&body, "invalid_input", &["Nowhere/Land"]);
    let (_, body) = api.admin("GET", &a.path(""), None).await;
    assert_eq!(body["name"], "Acme");
    assert_eq!(body["timezone"], "UTC");
}

#[tokio::test]
async fn patch_app_with_empty_name_is_400() {
    let api = Api::new();
    let a = api.create_app("Acme").await;
    let (status, body) = api
        .admin("PATCH", &a.path(""), Some(json!({"name": ""})))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_error(&body, "invalid_input", &["name"]);
    let (_, body) = api.admin("GET", &a.path(""), None).await;
    assert_eq!(body["name"], "Acme");
}

#[tokio::test]
async fn patch_unknown_app_is_404() {
    let api = Api::new();
    let (status, body) = api
        .admin("PATCH", "/v1/apps/4242", Some(json!({"name": "x"})))
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    assert_error(&body, "not_found", &[]);
}

#[tokio::test]
async fn delete_app_is_204_then_404_and_its_keys_stop_working() {
    let api = Api::new();
    let a = api.create_app("Acme").await;
    let (status, body) = api.send("POST", &a.path("/keys"), Some(&a.key), None).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let second = body["key"].as_str().unwrap().to_owned();

    let (status, body) = api.admin("DELETE", &a.path(""), None).await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
    assert_eq!(body, serde_json::Value::Null);

    let (status, body) = api.admin("GET", &a.path(""), None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_error(&body, "not_found", &[]);
    let (status, _) = api.admin("DELETE", &a.path(""), None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    for key in [&a.key, &second] {
        for path in [a.path(""), a.path("/fields"), "/v1/apps".into()] {
            let (status, body) = api.send("GET", &path, Some(key), None).await;
            assert_eq!(status, StatusCode::UNAUTHORIZED, "{path}: {body}");
            assert_error(&body, "unauthorized", &[]);
        }
    }
}

#[tokio::test]
async fn deleted_app_data_is_gone_and_not_seen_by_a_new_app() {
    let api = Api::new();
    let a = api.create_app("Old").await;
    api.create_field(&a, "age", "number").await;
    api.create_customer(&a, "ana", json!({"age": 30})).await;
    let (status, _) = api.admin("DELETE", &a.path(""), None).await;
    assert_eq!(status, StatusCode::NO_CONTENT);

    // Data of the deleted app is not reachable under its id.
    let (status, _) = api.admin("GET", &a.path("/fields"), None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = api.admin("GET", &a.path("/customers/ana"), None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    let b = api.create_app("New").await;
    assert_ne!(b.id, a.id, "application ids are never reused");
    assert_eq!(api.fields(&b).await, json!([]));
    assert!(api.customer_ids(&b).await.is_empty());
    // The old key does not reach the new app.
    let (status, _) = api.send("GET", &b.path(""), Some(&a.key), None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn unknown_app_is_404_on_every_route() {
    let api = Api::new();
    let _real = api.create_app("real").await;
    let routes: Vec<(&str, String, Option<serde_json::Value>)> = vec![
        ("GET", "/v1/apps/999".into(), None),
        ("DELETE", "/v1/apps/999".into(), None),
        ("GET", "/v1/apps/999/keys".into(), None),
        ("POST", "/v1/apps/999/keys".into(), None),
        ("DELETE", "/v1/apps/999/keys/1".into(), None),
        ("GET", "/v1/apps/999/fields".into(), None),
        (
            "POST",
            "/v1/apps/999/fields".into(),
            Some(json!({"name": "age", "type": "number"})),
        ),
        ("GET", "/v1/apps/999/fields/age".into(), None),
        ("DELETE", "/v1/apps/999/fields/age".into(), None),
        ("GET", "/v1/apps/999/customers".into(), None),
        (
            "POST",
            "/v1/apps/999/customers".into(),
            Some(json!({"customerId": "ana"})),
        ),
        (
            "POST",
            "/v1/apps/999/customers/batch".into(),
            Some(json!([{"customerId": "ana"}])),
        ),
        ("GET", "/v1/apps/999/customers/ana".into(), None),
        (
            "PATCH",
            "/v1/apps/999/customers/ana".into(),
            Some(json!({"fields": {}})),
        ),
        ("DELETE", "/v1/apps/999/customers/ana".into(), None),
    ];
    for (method, path, body) in routes {
        let (status, reply) = api.admin(method, &path, body).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{method} {path}: {reply}");
        assert_error(&reply, "not_found", &[]);
    }
    // Nothing was created for the unknown app.
    let (_, list) = api.admin("GET", "/v1/apps", None).await;
    assert_eq!(list["apps"].as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn non_numeric_app_id_is_404() {
    let api = Api::new();
    let _a = api.create_app("real").await;
    for id in [
        "-1",
        "abc",
        "1.0",
        "1e3",
        "99999999999999999999999",
        "%20",
        "0x1",
    ] {
        for suffix in ["", "/fields", "/customers"] {
            let path = format!("/v1/apps/{id}{suffix}");
            let (status, body) = api.admin("GET", &path, None).await;
            assert_eq!(status, StatusCode::NOT_FOUND, "{path}: {body}");
            assert_error(&body, "not_found", &[]);
        }
    }
}

#[tokio::test]
async fn every_answer_carries_a_request_id_and_a_client_may_choose_it() {
    use axum::body::Body;
    use axum::http::Request;
    let api = Api::new();
    let ask = |id: Option<&str>| {
        let mut req = Request::builder().method("GET").uri("/health");
        if let Some(id) = id {
            req = req.header("x-request-id", id);
        }
        req.body(Body::empty()).unwrap()
    };
    let (_, headers, _) = api.request_bytes(ask(None)).await;
    let first = headers["x-request-id"].to_str().unwrap().to_owned();
    assert_eq!(first.len(), 16, "{first}");
    let (_, headers, _) = api.request_bytes(ask(None)).await;
    assert_ne!(
        headers["x-request-id"],
        first.as_str(),
        "each request its own id"
    );
    let (_, headers, _) = api.request_bytes(ask(Some("trace-7f3a/42"))).await;
    assert_eq!(headers["x-request-id"], "trace-7f3a/42");
    let long = "x".repeat(65);
    for bad in ["has space", long.as_str(), ""] {
        let (_, headers, _) = api.request_bytes(ask(Some(bad))).await;
        let id = headers["x-request-id"].to_str().unwrap();
        assert_ne!(id, bad);
        assert_eq!(id.len(), 16, "{bad:?} was replaced");
    }
    // Errors carry it too.
    let (status, headers, _) = api
        .request_bytes(
            Request::builder()
                .uri("/v1/apps")
                .body(Body::empty())
                .unwrap(),
        )
        .await;
    assert_eq!(status, axum::http::StatusCode::UNAUTHORIZED);
    assert!(headers.contains_key("x-request-id"));
}
