//! The OpenAPI document is generated from the code and kept in `docs/openapi.json`;
//! this test fails when they drift. Refresh with `UPDATE_OPENAPI=1 cargo test -p unico-server --test openapi`.
#![allow(clippy::unwrap_used)]

use std::sync::Arc;

use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use tower::ServiceExt;
use unico_server::{ApiDoc, AppState, router};
use utoipa::OpenApi;

fn document() -> String {
    let mut text = serde_json::to_string_pretty(&ApiDoc::openapi()).unwrap();
    text.push('\n');
    text
}

#[test]
fn committed_document_matches_the_code() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/openapi.json");
    let generated = document();
    if std::env::var_os("UPDATE_OPENAPI").is_some() {
        std::fs::write(path, &generated).unwrap();
    }
    let committed = std::fs::read_to_string(path).unwrap_or_default();
    assert!(
        committed == generated,
        "docs/openapi.json is stale: run UPDATE_OPENAPI=1 cargo test -p unico-server --test openapi"
    );
}

/// Every documented operation exists in the router (neither 404 route_not_found nor 405).
#[tokio::test]
async fn every_documented_operation_is_routed() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(unico_store::SqliteStore::open(dir.path()).unwrap());
    let app = router(AppState::new(store, "admin-key-for-tests-0123"));
    let doc = serde_json::to_value(ApiDoc::openapi()).unwrap();
    let mut operations = 0;
    for (path, item) in doc["paths"].as_object().unwrap() {
        for method in item.as_object().unwrap().keys() {
            let concrete = path
                .replace("{app}", "1")
                .replace("{key_id}", "1")
                .replace("{name}", "f")
                .replace("{customerId}", "c");
            let request = Request::builder()
                .method(Method::from_bytes(method.to_uppercase().as_bytes()).unwrap())
                .uri(&concrete)
                .body(Body::empty())
                .unwrap();
            let response = app.clone().oneshot(request).await.unwrap();
            assert_ne!(
                response.status(),
                StatusCode::METHOD_NOT_ALLOWED,
                "{method} {path}"
            );
            let body = axum::body::to_bytes(response.into_body(), 1 << 20)
                .await
                .unwrap();
            assert!(
                !String::from_utf8_lossy(&body).contains("route_not_found"),
                "{method} {path}"
            );
            operations += 1;
        }
    }
    assert!(operations >= 20, "only {operations} operations documented");
}
