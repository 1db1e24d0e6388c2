//! Authentication and tenant isolation.

use axum::body::Body;
use axum::http::{Request, StatusCode};
use serde_json::{Value, json};

use crate::support::*;

#[tokio::test]
async fn v1_without_authorization_header_is_401() {
    let api = Api::new();
    let a = api.create_app("A").await;
    for path in ["/v1/apps".to_owned(), a.path(""), a.path("/customers")] {
        let (status, body) = api.send("GET", &path, None, None).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{path}");
        assert_error(&body, "unauthorized", &["Authorization", "Bearer"]);
    }
}

#[tokio::test]
async fn unauthenticated_write_is_401_and_writes_nothing() {
    let api = Api::new();
    let a = api.create_app("A").await;
    let (status, body) = api
        .send(
            "POST",
            &a.path("/fields"),
            None,
            Some(json!({"name": "age", "type": "number"})),
        )
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_error(&body, "unauthorized", &[]);
    let (status, _) = api
        .send("POST", "/v1/apps", None, Some(json!({"name": "x"})))
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(api.fields(&a).await, json!([]));
    let (_, list) = api.admin("GET", "/v1/apps", None).await;
    assert_eq!(list["apps"].as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn malformed_authorization_header_is_401() {
    let api = Api::new();
    for header in [
        format!("Basic {ADMIN}"),
        "Bearer".into(),
        "Bearer ".into(),
        "Bearer    ".into(),
        ADMIN.into(),
        format!("Token {ADMIN}"),
    ] {
        let req = Request::get("/v1/apps")
            .header("authorization", header.as_str())
            .body(Body::empty())
            .unwrap();
        let reply = api.request(req).await;
        assert_eq!(reply.status, StatusCode::UNAUTHORIZED, "{header:?}");
        assert_error(&reply.body, "unauthorized", &["Authorization"]);
    }
    // Bytes that are not text in the header.
    let req = Request::get("/v1/apps")
        .header(
            "authorization",
            axum::http::HeaderValue::from_bytes(b"Bearer \xff\xfe").unwrap(),
        )
        .body(Body::empty())
        .unwrap();
    let reply = api.request(req).await;
    assert_eq!(reply.status, StatusCode::UNAUTHORIZED);
    assert_error(&reply.body, "unauthorized", &[]);
}

#[tokio::test]
async fn wrong_key_is_401() {
    let api = Api::new();
    let a = api.create_app("A").await;
    let mut near = a.key.clone();
    near.pop();
    near.push('x');
    for key in [
        "unico_nope".to_owned(),
        format!("{ADMIN}x"),
        ADMIN.to_uppercase(),
        near,
        format!("{}{}", a.key, a.key),
    ] {
        let (status, body) = api.send("GET", &a.path(""), Some(&key), None).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{key}");
        assert_error(&body, "unauthorized", &["invalid"]);
    }
}

#[tokio::test]
async fn revoked_key_is_401_right_after_revocation() {
    let api = Api::new();
    let a = api.create_app("A").await;
    let (status, created) = api.send("POST", &a.path("/keys"), Some(&a.key), None).await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let second = created["key"].as_str().unwrap().to_owned();
    let second_id = created["id"].as_i64().unwrap();
    // The new key works (and is now cached by the server).
    let (status, _) = api
        .send("GET", &a.path("/fields"), Some(&second), None)
        .await;
    assert_eq!(status, StatusCode::OK);

    let (status, body) = api
        .admin("DELETE", &a.path(&format!("/keys/{second_id}")), None)
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
    let (status, body) = api
        .send("GET", &a.path("/fields"), Some(&second), None)
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    assert_error(&body, "unauthorized", &["revoked"]);
    // The first key is untouched.
    let (status, _) = api
        .send("GET", &a.path("/fields"), Some(&a.key), None)
        .await;
    assert_eq!(status, StatusCode::OK);
    // The listing shows the revocation.
    let (_, keys) = api.admin("GET", &a.path("/keys"), None).await;
    let revoked = keys["keys"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["id"] == second_id)
        .unwrap();
    assert!(revoked["revoked_at"].is_string(), "{keys}");
    // Revoking again or an unknown key is 404.
    let (status, body) = api.admin("DELETE", &a.path("/keys/987654"), None).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    assert_error(&body, "not_found", &[]);
    let (status, _) = api.admin("DELETE", &a.path("/keys/abc"), None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn a_key_can_revoke_itself() {
    let api = Api::new();
    let a = api.create_app("A").await;
    let (_, keys) = api.send("GET", &a.path("/keys"), Some(&a.key), None).await;
    let id = keys["keys"][0]["id"].as_i64().unwrap();
    let (status, _) = api
        .send(
            "DELETE",
            &a.path(&format!("/keys/{id}")),
            Some(&a.key),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, _) = api.send("GET", &a.path(""), Some(&a.key), None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn key_listing_never_shows_secrets() {
    let api = Api::new();
    let a = api.create_app("A").await;
    let (status, keys) = api.send("GET", &a.path("/keys"), Some(&a.key), None).await;
    assert_eq!(status, StatusCode::OK);
    let text = keys.to_string();
    assert!(!text.contains(&a.key), "{text}");
    assert!(keys["keys"][0].get("key").is_none());
    let prefix = keys["keys"][0]["prefix"].as_str().unwrap();
    assert!(a.key.starts_with(prefix) && prefix.len() < a.key.len());
}

#[tokio::test]
async fn api_key_cannot_create_apps() {
    let api = Api::new();
    let a = api.create_app("A").await;
    let (status, body) = api
        .send("POST", "/v1/apps", Some(&a.key), Some(json!({"name": "B"})))
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    assert_error(&body, "forbidden", &["admin key"]);
    let (_, list) = api.admin("GET", "/v1/apps", None).await;
    assert_eq!(list["apps"].as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn api_key_cannot_patch_or_delete_its_own_app() {
    let api = Api::new();
    let a = api.create_app("A").await;
    let (status, body) = api
        .send(
            "PATCH",
            &a.path(""),
            Some(&a.key),
            Some(json!({"name": "Z"})),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    assert_error(&body, "forbidden", &["admin"]);
    let (status, body) = api.send("DELETE", &a.path(""), Some(&a.key), None).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    let (status, body) = api.admin("GET", &a.path(""), None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["name"], "A");
}

/// Everything visible in an application, through the admin key.
async fn snapshot(api: &Api, app: &App) -> Value {
    let (_, info) = api.admin("GET", &app.path(""), None).await;
    let (_, keys) = api.admin("GET", &app.path("/keys"), None).await;
    json!({
        "app": info,
        "keys": keys,
        "fields": api.fields(app).await,
        "customers": api.all_customers(&App { id: app.id, key: ADMIN.into() }).await,
    })
}

#[tokio::test]
async fn api_key_of_app_a_is_403_on_every_route_of_app_b_and_writes_nothing() {
    let api = Api::new();
    let a = api.create_app("A").await;
    let b = api.create_app("B").await;
    api.create_field(&b, "age", "number").await;
    api.create_customer(&b, "bob", json!({"age": 40})).await;
    let (_, keys) = api.admin("GET", &b.path("/keys"), None).await;
    let b_key_id = keys["keys"][0]["id"].as_i64().unwrap();
    let before = snapshot(&api, &b).await;

    let routes: Vec<(&str, String, Option<Value>)> = vec![
        ("GET", b.path(""), None),
        ("PATCH", b.path(""), Some(json!({"name": "pwned"}))),
        ("DELETE", b.path(""), None),
        ("GET", b.path("/keys"), None),
        ("POST", b.path("/keys"), None),
        ("DELETE", b.path(&format!("/keys/{b_key_id}")), None),
        ("GET", b.path("/fields"), None),
        (
            "POST",
            b.path("/fields"),
            Some(json!({"name": "x", "type": "string"})),
        ),
        ("GET", b.path("/fields/age"), None),
        (
            "PATCH",
            b.path("/fields/age"),
            Some(json!({"type": "string"})),
        ),
        ("DELETE", b.path("/fields/age"), None),
        ("GET", b.path("/customers"), None),
        (
            "POST",
            b.path("/customers"),
            Some(json!({"customerId": "eve", "fields": {"age": 1}})),
        ),
        (
            "POST",
            b.path("/customers/batch"),
            Some(json!([{"customerId": "bob", "fields": {"age": 1}}, {"customerId": "eve"}])),
        ),
        ("GET", b.path("/customers/bob"), None),
        ("GET", b.path("/customers/batch"), None),
        (
            "PATCH",
            b.path("/customers/bob"),
            Some(json!({"fields": {"age": 1}})),
        ),
        ("DELETE", b.path("/customers/bob"), None),
    ];
    for (method, path, body) in routes {
        let (status, reply) = api.send(method, &path, Some(&a.key), body).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{method} {path}: {reply}");
        assert_error(&reply, "forbidden", &[]);
    }
    assert_eq!(snapshot(&api, &b).await, before);
    // B's key still works.
    let (status, _) = api
        .send("GET", &b.path("/customers/bob"), Some(&b.key), None)
        .await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn revoking_another_apps_key_through_own_app_path_fails_and_key_keeps_working() {
    let api = Api::new();
    let a = api.create_app("A").await;
    let b = api.create_app("B").await;
    let (_, keys) = api.admin("GET", &b.path("/keys"), None).await;
    let b_key_id = keys["keys"][0]["id"].as_i64().unwrap();
    // A's key on A's path, naming B's key id.
    let (status, body) = api
        .send(
            "DELETE",
            &a.path(&format!("/keys/{b_key_id}")),
            Some(&a.key),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    assert_error(&body, "not_found", &[]);
    // The admin naming it under the wrong app, too.
    let (status, _) = api
        .admin("DELETE", &a.path(&format!("/keys/{b_key_id}")), None)
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = api.send("GET", &b.path(""), Some(&b.key), None).await;
    assert_eq!(status, StatusCode::OK);
    let (_, keys) = api.admin("GET", &b.path("/keys"), None).await;
    assert!(keys["keys"][0].get("revoked_at").is_none(), "{keys}");
}

#[tokio::test]
async fn admin_key_reaches_every_app() {
    let api = Api::new();
    let a = api.create_app("A").await;
    let b = api.create_app("B").await;
    for app in [&a, &b] {
        let (status, body) = api
            .admin(
                "POST",
                &app.path("/fields"),
                Some(json!({"name": "age", "type": "number"})),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        let (status, body) = api
            .admin(
                "POST",
                &app.path("/customers"),
                Some(json!({"customerId": "ana", "fields": {"age": 3}})),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        for path in [
            app.path(""),
            app.path("/keys"),
            app.path("/fields"),
            app.path("/fields/age"),
            app.path("/customers"),
            app.path("/customers/ana"),
        ] {
            let (status, body) = api.admin("GET", &path, None).await;
            assert_eq!(status, StatusCode::OK, "{path}: {body}");
        }
        let (status, _) = api
            .admin(
                "PATCH",
                &app.path("/customers/ana"),
                Some(json!({"fields": {"age": 4}})),
            )
            .await;
        assert_eq!(status, StatusCode::OK);
        let (status, _) = api.admin("DELETE", &app.path("/customers/ana"), None).await;
        assert_eq!(status, StatusCode::NO_CONTENT);
    }
}

#[tokio::test]
async fn same_customer_id_and_field_name_live_apart_in_two_apps() {
    let api = Api::new();
    let a = api.create_app("A").await;
    let b = api.create_app("B").await;
    api.create_field(&a, "age", "number").await;
    api.create_field(&b, "age", "string").await;
    api.create_customer(&a, "ana", json!({"age": 30})).await;
    api.create_customer(&b, "ana", json!({"age": "thirty"}))
        .await;
    assert_eq!(
        api.get_customer(&a, "ana").await.unwrap()["fields"]["age"],
        30
    );
    assert_eq!(
        api.get_customer(&b, "ana").await.unwrap()["fields"]["age"],
        "thirty"
    );
    // Deleting in A leaves B alone.
    let (status, _) = api
        .send("DELETE", &a.path("/fields/age"), Some(&a.key), None)
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        api.get_customer(&b, "ana").await.unwrap()["fields"]["age"],
        "thirty"
    );
    // A field of B is unknown in A.
    api.create_field(&b, "city", "string").await;
    let (status, body) = api
        .patch_customer(&a, "ana", json!({"fields": {"city": "Madrid"}}))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_error(&body, "invalid_input", &["unknown field"]);
}

#[tokio::test]
async fn health_and_openapi_need_no_key() {
    let api = Api::new();
    let (status, body) = api.send("GET", "/health", None, None).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["writer"]["alive"], true, "{body}");
    let (status, body) = api.send("GET", "/openapi.json", None, None).await;
    assert_eq!(status, StatusCode::OK);
    assert!(body["openapi"].as_str().unwrap().starts_with('3'), "{body}");
    assert!(body["paths"]["/v1/apps/{app}/customers"].is_object());
    // A wrong key does not break them either.
    let (status, _) = api.send("GET", "/health", Some("nonsense"), None).await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn lowercase_bearer_and_extra_spaces_are_accepted() {
    let api = Api::new();
    let req = Request::get("/v1/apps")
        .header("authorization", format!("bearer {ADMIN}"))
        .body(Body::empty())
        .unwrap();
    assert_eq!(api.request(req).await.status, StatusCode::OK);
}
