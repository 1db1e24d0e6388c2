//! The audit log over HTTP: each audited action recorded with who did it, an application's
//! key seeing its own records only, the admin seeing all, pages, and no personal data.

use axum::http::StatusCode;
use serde_json::{Value, json};

use crate::support::*;

fn actions(body: &Value) -> Vec<String> {
    body["records"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            format!(
                "{} {} {}",
                r["actor"].as_str().unwrap(),
                r["action"].as_str().unwrap(),
                r["target"].as_str().unwrap()
            )
        })
        .collect()
}

#[tokio::test]
async fn audited_actions_are_recorded_with_who_did_them() {
    let api = Api::new();
    let a = api.create_app("Shop").await;
    let b = api.create_app("Other").await;
    api.create_field(&a, "city", "string").await;
    let (status, body) = api
        .send(
            "POST",
            &a.path("/event-types"),
            Some(&a.key),
            Some(json!({"code": "purchase"})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    api.create_customer(&a, "ana@example.com", json!({"city": "Vigo"}))
        .await;
    let (_, keys) = api.send("GET", &a.path("/keys"), Some(&a.key), None).await;
    let first_key = keys["keys"][0]["id"].as_i64().unwrap();
    let (_, key) = api.send("POST", &a.path("/keys"), Some(&a.key), None).await;
    let key_id = key["id"].as_i64().unwrap();
    for (method, path) in [
        ("DELETE", a.path("/customers/ana@example.com?erase=true")),
        ("DELETE", a.path("/fields/city")),
        ("DELETE", a.path("/event-types/purchase")),
        ("DELETE", a.path(&format!("/keys/{key_id}"))),
    ] {
        let (status, body) = api.send(method, &path, Some(&a.key), None).await;
        assert!(status.is_success(), "{method} {path}: {status} {body}");
    }
    let (status, _) = api
        .admin(
            "PATCH",
            &format!("/v1/apps/{}", a.id),
            Some(json!({"timezone": "Europe/Madrid"})),
        )
        .await;
    assert_eq!(status, StatusCode::OK);

    let (status, body) = api.send("GET", &a.path("/audit"), Some(&a.key), None).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let got = actions(&body);
    let own = &got[..got.len() - 3];
    assert_eq!(
        own,
        [
            "admin app.updated timezone".to_owned(),
            format!("key:{} key.revoked {key_id}", first_key),
            format!("key:{} event_type.deleted purchase", first_key),
            format!("key:{} field.deleted city", first_key),
            format!("key:{} customer.erased 1", first_key),
        ],
        "{body}"
    );
    assert_eq!(
        got[got.len() - 3..],
        [
            format!("key:{first_key} key.created {key_id}"),
            format!("admin key.created {first_key}"),
            format!("admin app.created {}", a.id),
        ],
        "{got:?}"
    );
    // No personal data: the erased customer is an internal id.
    assert!(!body.to_string().contains("ana@example.com"), "{body}");

    // Another application's key sees nothing of it; the admin sees everything.
    let (status, _) = api.send("GET", &a.path("/audit"), Some(&b.key), None).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, _) = api.send("GET", "/v1/audit", Some(&a.key), None).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, all) = api.admin("GET", "/v1/audit", None).await;
    assert_eq!(status, StatusCode::OK, "{all}");
    let all = actions(&all);
    assert!(
        all.iter()
            .any(|r| r == &format!("admin app.created {}", b.id)),
        "{all:?}"
    );
    assert!(all.iter().any(|r| r.contains("customer.erased")), "{all:?}");

    // Pages, older records after `next_before`.
    let (_, first) = api
        .send("GET", &a.path("/audit?limit=2"), Some(&a.key), None)
        .await;
    assert_eq!(first["records"].as_array().unwrap().len(), 2);
    let next = first["next_before"].as_i64().unwrap();
    let (_, second) = api
        .send(
            "GET",
            &a.path(&format!("/audit?limit=2&before={next}")),
            Some(&a.key),
            None,
        )
        .await;
    assert_eq!(actions(&second), got[2..4].to_vec());
    for bad in ["limit=0", "limit=1001", "before=x"] {
        let (status, _) = api
            .send("GET", &a.path(&format!("/audit?{bad}")), Some(&a.key), None)
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{bad}");
    }
}
