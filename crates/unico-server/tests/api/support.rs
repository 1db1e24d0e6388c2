//! The test harness: a fresh server per test and small helpers to talk to it.

use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::http::{HeaderMap, Method, Request, StatusCode};
use http_body_util::BodyExt;
use serde_json::{Value, json};
use tower::ServiceExt;
use unico_store::{SqliteStore, Store};

pub const ADMIN: &str = "unico_admin_test_key_0123456789";

/// One server over its own store in its own temporary directory.
pub struct Api {
    router: Router,
    /// The store and the state behind the router, for tests that inject failures.
    pub sqlite: Arc<SqliteStore>,
    pub state: unico_server::AppState,
    _dir: tempfile::TempDir,
}

/// An application created for a test, with its first API key.
#[derive(Debug, Clone)]
pub struct App {
    pub id: i64,
    pub key: String,
}

impl App {
    pub fn path(&self, rest: &str) -> String {
        format!("/v1/apps/{}{rest}", self.id)
    }
}

/// A response: status, headers and the body parsed as JSON (`Null` when empty, a JSON
/// string holding the text when the body is not JSON).
pub struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Value,
}

impl Api {
    pub fn new() -> Self {
        Self::configured(|state| state)
    }

    /// A server whose state `configure` adjusts (other limits).
    pub fn configured(
        configure: impl FnOnce(unico_server::AppState) -> unico_server::AppState,
    ) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let sqlite = Arc::new(SqliteStore::open(dir.path()).unwrap());
        let store: Arc<dyn Store> = sqlite.clone();
        // Uploads are spooled under this test's own directory, as `unico serve` does under
        // its data directory: tests run in parallel and their import ids coincide.
        let spool = dir.path().join("spool");
        std::fs::create_dir_all(&spool).unwrap();
        let state = configure(unico_server::AppState::new(store, ADMIN).with_spool_dir(spool));
        Api {
            router: unico_server::router(state.clone()),
            sqlite,
            state,
            _dir: dir,
        }
    }

    /// Serves this router on a loopback port, with hyper below it as `unico serve` runs it,
    /// for the few tests about what happens before a request reaches the router. The server
    /// stops with the test's runtime.
    pub async fn serve(&self) -> std::net::SocketAddr {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let router = self.router.clone();
        tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
        addr
    }

    /// Sends any request and reads the whole reply as bytes.
    pub async fn request_bytes(&self, req: Request<Body>) -> (StatusCode, HeaderMap, Vec<u8>) {
        let resp = self.router.clone().oneshot(req).await.unwrap();
        let status = resp.status();
        let headers = resp.headers().clone();
        let bytes = resp.into_body().collect().await.unwrap().to_bytes();
        (status, headers, bytes.to_vec())
    }

    /// Sends any request and reads the whole reply.
    pub async fn request(&self, req: Request<Body>) -> Reply {
        let (status, headers, bytes) = self.request_bytes(req).await;
        let body = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes)
                .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()))
        };
        Reply {
            status,
            headers,
            body,
        }
    }

    /// Sends raw bytes with the given Content-Type (none when `None`).
    pub async fn send_raw(
        &self,
        method: &str,
        path: &str,
        key: Option<&str>,
        content_type: Option<&str>,
        body: impl Into<Body>,
    ) -> (StatusCode, Value) {
        let mut req = Request::builder()
            .method(Method::from_bytes(method.as_bytes()).unwrap())
            .uri(path);
        if let Some(key) = key {
            req = req.header("authorization", format!("Bearer {key}"));
        }
        if let Some(ct) = content_type {
            req = req.header("content-type", ct);
        }
        let reply = self.request(req.body(body.into()).unwrap()).await;
        (reply.status, reply.body)
    }

    /// Sends a request with an optional JSON body and key.
    pub async fn send(
        &self,
        method: &str,
        path: &str,
        key: Option<&str>,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        match body {
            Some(json) => {
                self.send_raw(
                    method,
                    path,
                    key,
                    Some("application/json"),
                    serde_json::to_vec(&json).unwrap(),
                )
                .await
            }
            None => self.send_raw(method, path, key, None, Body::empty()).await,
        }
    }

    pub async fn admin(
        &self,
        method: &str,
        path: &str,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        self.send(method, path, Some(ADMIN), body).await
    }

    /// Creates an application with the admin key.
    pub async fn create_app(&self, name: &str) -> App {
        let (status, body) = self
            .admin("POST", "/v1/apps", Some(json!({ "name": name })))
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        App {
            id: body["id"].as_i64().unwrap(),
            key: body["api_key"].as_str().unwrap().to_owned(),
        }
    }

    /// Creates a field in `app` with its own key.
    pub async fn create_field(&self, app: &App, name: &str, ty: &str) -> Value {
        let (status, body) = self
            .send(
                "POST",
                &app.path("/fields"),
                Some(&app.key),
                Some(json!({ "name": name, "type": ty })),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        body
    }

    /// Creates a customer in `app`; answers the customer as returned.
    pub async fn create_customer(&self, app: &App, customer_id: &str, fields: Value) -> Value {
        let (status, body) = self
            .send(
                "POST",
                &app.path("/customers"),
                Some(&app.key),
                Some(json!({ "customerId": customer_id, "fields": fields })),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        body
    }

    /// GET one customer by customerId (percent-encoded here); `None` when 404.
    pub async fn get_customer(&self, app: &App, customer_id: &str) -> Option<Value> {
        let (status, body) = self
            .send(
                "GET",
                &app.path(&format!("/customers/{}", enc(customer_id))),
                Some(&app.key),
                None,
            )
            .await;
        match status {
            StatusCode::OK => Some(body),
            StatusCode::NOT_FOUND => {
                assert_error(&body, "not_found", &[]);
                None
            }
            other => panic!("GET customer answered {other}: {body}"),
        }
    }

    /// PATCH one customer with `body` (the whole JSON body).
    pub async fn patch_customer(
        &self,
        app: &App,
        customer_id: &str,
        body: Value,
    ) -> (StatusCode, Value) {
        self.send(
            "PATCH",
            &app.path(&format!("/customers/{}", enc(customer_id))),
            Some(&app.key),
            Some(body),
        )
        .await
    }

    /// Every customer of `app`, following cursors, in the default order.
    pub async fn all_customers(&self, app: &App) -> Vec<Value> {
        self.all_customers_sorted(app, None, 1000).await
    }

    /// Every customer of `app` in `sort` order, `limit` per page.
    pub async fn all_customers_sorted(
        &self,
        app: &App,
        sort: Option<&str>,
        limit: usize,
    ) -> Vec<Value> {
        let mut out = Vec::new();
        let mut cursor: Option<String> = None;
        for _ in 0..100_000 {
            let mut query = format!("?limit={limit}");
            if let Some(sort) = sort {
                query.push_str(&format!("&sort={}", enc(sort)));
            }
            if let Some(c) = &cursor {
                query.push_str(&format!("&cursor={}", enc(c)));
            }
            let (status, body) = self
                .send(
                    "GET",
                    &app.path(&format!("/customers{query}")),
                    Some(&app.key),
                    None,
                )
                .await;
            assert_eq!(status, StatusCode::OK, "{body}");
            let page = body["customers"].as_array().unwrap();
            assert!(page.len() <= limit, "a page holds more than limit");
            out.extend(page.iter().cloned());
            match &body["next_cursor"] {
                Value::Null => return out,
                Value::String(c) => cursor = Some(c.clone()),
                other => panic!("next_cursor is neither null nor a string: {other}"),
            }
        }
        panic!("pagination never ended");
    }

    /// The customerIds of every customer, in the default order.
    pub async fn customer_ids(&self, app: &App) -> Vec<String> {
        ids(&self.all_customers(app).await)
    }

    /// The field list of `app` (as the admin sees it).
    pub async fn fields(&self, app: &App) -> Value {
        let (status, body) = self.admin("GET", &app.path("/fields"), None).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        body["fields"].clone()
    }

    /// The value_count of one field from the field list.
    pub async fn value_count(&self, app: &App, name: &str) -> u64 {
        let fields = self.fields(app).await;
        fields
            .as_array()
            .unwrap()
            .iter()
            .find(|f| f["name"] == name)
            .unwrap_or_else(|| panic!("no field {name} in {fields}"))["value_count"]
            .as_u64()
            .unwrap()
    }

    /// Uploads `csv` as an import (`Content-Type: text/csv`) with `query` (`""` or
    /// `"?mode=…"`), with `app`'s key.
    pub async fn post_csv(
        &self,
        app: &App,
        query: &str,
        csv: impl Into<Body>,
    ) -> (StatusCode, Value) {
        self.send_raw(
            "POST",
            &app.path(&format!("/imports{query}")),
            Some(&app.key),
            Some("text/csv"),
            csv,
        )
        .await
    }

    /// Polls `GET …/imports/{id}` until the import is no longer `running` (bounded to 30 s;
    /// the import runs on a background thread) and answers its final report.
    pub async fn wait_import(&self, app: &App, id: i64) -> Value {
        self.wait_import_at(app, &format!("/imports/{id}"), id)
            .await
    }

    /// Polls an events import until it ends; answers its final report.
    pub async fn wait_event_import(&self, app: &App, id: i64) -> Value {
        self.wait_import_at(app, &format!("/events/imports/{id}"), id)
            .await
    }

    async fn wait_import_at(&self, app: &App, path: &str, id: i64) -> Value {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        loop {
            let (status, body) = self
                .send("GET", &app.path(path), Some(&app.key), None)
                .await;
            assert_eq!(status, StatusCode::OK, "{body}");
            assert_eq!(body["id"], id, "{body}");
            match body["state"].as_str() {
                Some("running") => {}
                Some("succeeded" | "failed") => return body,
                other => panic!("unexpected import state {other:?}: {body}"),
            }
            assert!(
                std::time::Instant::now() < deadline,
                "import {id} still running after 30 s: {body}"
            );
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
    }

    /// Uploads `csv`, checks the 202 `{id, state: running}` answer and waits for the end of
    /// the import; answers the final report.
    pub async fn import_csv(&self, app: &App, query: &str, csv: impl Into<Body>) -> Value {
        let (status, body) = self.post_csv(app, query, csv).await;
        assert_eq!(status, StatusCode::ACCEPTED, "{body}");
        let obj = body.as_object().unwrap();
        assert_eq!(obj.len(), 2, "202 answers exactly id and state: {body}");
        assert_eq!(body["state"], "running", "{body}");
        let id = body["id"].as_i64().unwrap();
        self.wait_import(app, id).await
    }

    /// `GET …/export{query}` with `key`: status, headers and the body as text.
    pub async fn export_csv(
        &self,
        app: &App,
        key: &str,
        query: &str,
    ) -> (StatusCode, HeaderMap, String) {
        let req = Request::builder()
            .method(Method::GET)
            .uri(app.path(&format!("/export{query}")))
            .header("authorization", format!("Bearer {key}"))
            .body(Body::empty())
            .unwrap();
        let (status, headers, bytes) = self.request_bytes(req).await;
        (status, headers, String::from_utf8(bytes).unwrap())
    }

    /// Writes customers in a separate application until the server's clock has passed
    /// `instant` (an RFC 3339 string as the API formats them). No sleeping: the server's
    /// own timestamps prove time moved on.
    pub async fn wait_for_clock_past(&self, instant: &str) {
        let clock = self.create_app("clock").await;
        for i in 0..100_000 {
            let c = self
                .create_customer(&clock, &format!("tick-{i}"), json!({}))
                .await;
            if c["created_at"].as_str().unwrap() > instant {
                return;
            }
        }
        panic!("the server clock never moved past {instant}");
    }
}

/// The customerIds of a list of customers.
pub fn ids(customers: &[Value]) -> Vec<String> {
    customers
        .iter()
        .map(|c| c["customerId"].as_str().unwrap().to_owned())
        .collect()
}

/// Percent-encodes everything but unreserved characters (RFC 3986), for paths and queries.
pub fn enc(text: &str) -> String {
    let mut out = String::new();
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Asserts `body` is our error shape `{"error": {"code", "message", "details"}}` with
/// `code`, and that the message contains each of `needles`.
pub fn assert_error(body: &Value, code: &str, needles: &[&str]) {
    let err = body
        .get("error")
        .unwrap_or_else(|| panic!("not an error body: {body}"));
    let obj = err
        .as_object()
        .unwrap_or_else(|| panic!("error is not an object: {body}"));
    assert_eq!(
        obj.len(),
        3,
        "error must hold exactly code, message and details: {body}"
    );
    assert_eq!(err["code"], code, "wrong code in {body}");
    let message = err["message"]
        .as_str()
        .unwrap_or_else(|| panic!("message is not a string: {body}"));
    assert!(!message.is_empty(), "empty message: {body}");
    assert!(err["details"].is_array(), "details is not an array: {body}");
    for needle in needles {
        assert!(
            message.contains(needle),
            "message {message:?} does not mention {needle:?}"
        );
    }
}

/// The `details` of an error body as (field, message) pairs.
pub fn details(body: &Value) -> Vec<(String, String)> {
    body["error"]["details"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| {
            (
                d["field"].as_str().unwrap_or("").to_owned(),
                d["message"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}
