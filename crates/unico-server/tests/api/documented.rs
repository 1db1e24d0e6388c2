//! The OpenAPI document checked against the router it describes.
//!
//! For every operation of the generated document, a fresh server is sent requests that
//! provoke each kind of answer: no key, an unknown or malformed one, another application's
//! key, unknown and malformed path parameters, each query parameter out of its documented
//! range, not UTF-8 or of an unknown name, missing, mistyped, malformed and oversized bodies,
//! a target past the URI limit, the operation's own conflicts and refusals, and a valid
//! request with the application's key and with the admin key. Every status answered must be
//! documented for that operation, every error answered must be in the error shape, and every
//! documented error must use the error schema.
//!
//! The walk follows the document, so an operation is checked as soon as it is documented; one
//! without an entry in [`fixture`] fails until it gets a valid request, and
//! [`no_route_answers_without_being_documented`] catches routes that are not documented.

use std::collections::{BTreeMap, BTreeSet};

use axum::body::{Body, Bytes};
use axum::http::{Method, Request, StatusCode};
use serde_json::{Value, json};
use unico_server::ApiDoc;
use unico_server::routes::MAX_URI_BYTES;
use utoipa::OpenApi;

use crate::support::*;

/// A body larger than any body limit of the server (one allocation, shared by every request
/// that sends it).
const OVERSIZED_BODY_BYTES: usize = 64 * 1024 * 1024;

/// One operation of the generated document.
struct Operation {
    method: Method,
    /// The path template, `/v1/apps/{app}/fields/{name}`.
    path: String,
    spec: Value,
    /// False when the operation declares that it needs no key (`security: [{}]`).
    needs_key: bool,
}

impl Operation {
    fn name(&self) -> String {
        format!("{} {}", self.method, self.path)
    }

    fn documented(&self) -> BTreeSet<u16> {
        let responses = self.spec["responses"].as_object().unwrap();
        responses.keys().map(|k| k.parse().unwrap()).collect()
    }

    /// The parameters found in `place` (`path`, `query`): name and schema.
    fn params(&self, place: &str) -> Vec<(String, Value)> {
        let params = self.spec["parameters"].as_array().cloned();
        params
            .unwrap_or_default()
            .into_iter()
            .filter(|p| p["in"] == place)
            .map(|p| (p["name"].as_str().unwrap().to_owned(), p["schema"].clone()))
            .collect()
    }

    /// The media type of the request body, if the operation takes one.
    fn body_type(&self) -> Option<String> {
        let content = self.spec["requestBody"]["content"].as_object()?;
        content.keys().next().cloned()
    }
}

fn operations(doc: &Value) -> Vec<Operation> {
    let names_a_scheme = |req: &Value| !req.as_object().unwrap().is_empty();
    let global_needs_key = doc["security"]
        .as_array()
        .is_some_and(|reqs| reqs.iter().all(names_a_scheme));
    let mut out = Vec::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, spec) in item.as_object().unwrap() {
            let needs_key = match spec.get("security") {
                Some(reqs) => reqs.as_array().unwrap().iter().all(names_a_scheme),
                None => global_needs_key,
            };
            out.push(Operation {
                method: Method::from_bytes(method.to_uppercase().as_bytes()).unwrap(),
                path: path.clone(),
                spec: spec.clone(),
                needs_key,
            });
        }
    }
    out
}

/// A request body.
#[derive(Clone)]
enum Payload {
    Empty,
    Json(Value),
    Csv(&'static str),
    Ndjson(&'static str),
}

impl Payload {
    fn content_type(&self) -> Option<&'static str> {
        match self {
            Payload::Empty => None,
            Payload::Json(_) => Some("application/json"),
            Payload::Csv(_) => Some("text/csv"),
            Payload::Ndjson(_) => Some("application/x-ndjson"),
        }
    }

    fn bytes(&self) -> Bytes {
        match self {
            Payload::Empty => Bytes::new(),
            Payload::Json(v) => Bytes::from(serde_json::to_vec(v).unwrap()),
            Payload::Csv(text) | Payload::Ndjson(text) => Bytes::from_static(text.as_bytes()),
        }
    }
}

/// A request of an operation that differs from its valid one: other path parameters, a
/// query, another body.
struct Variant {
    why: &'static str,
    params: &'static [(&'static str, &'static str)],
    query: &'static str,
    payload: Payload,
}

/// What the walk cannot guess from the document: a valid body for each operation, and the
/// requests that provoke its own answers (conflicts, values its rules refuse).
struct Fixture {
    valid: Payload,
    variants: Vec<Variant>,
}

fn variant(why: &'static str, payload: Value) -> Variant {
    Variant {
        why,
        params: &[],
        query: "",
        payload: Payload::Json(payload),
    }
}

fn query_variant(why: &'static str, query: &'static str) -> Variant {
    Variant {
        why,
        params: &[],
        query,
        payload: Payload::Empty,
    }
}

/// The fixture of an operation (`"PATCH /v1/apps/{app}"`), `None` for one nobody wrote yet.
fn fixture(operation: &str) -> Option<Fixture> {
    let plain = |valid| {
        Some(Fixture {
            valid,
            variants: Vec::new(),
        })
    };
    let with = |valid, variants| Some(Fixture { valid, variants });
    let bad_filter = || json!({"name": "s", "filter": "age >"});
    match operation {
        "GET /health"
        | "GET /ready"
        | "GET /openapi.json"
        | "GET /metrics"
        | "GET /v1/apps"
        | "GET /v1/apps/{app}"
        | "DELETE /v1/apps/{app}"
        | "GET /v1/apps/{app}/keys"
        | "POST /v1/apps/{app}/keys"
        | "DELETE /v1/apps/{app}/keys/{key_id}"
        | "GET /v1/apps/{app}/fields"
        | "GET /v1/apps/{app}/fields/{name}"
        | "DELETE /v1/apps/{app}/fields/{name}"
        | "GET /v1/apps/{app}/customers/{customerId}"
        | "DELETE /v1/apps/{app}/customers/{customerId}"
        | "GET /v1/apps/{app}/imports"
        | "GET /v1/apps/{app}/imports/{id}"
        | "GET /v1/apps/{app}/segments"
        | "GET /v1/apps/{app}/segments/{id}"
        | "DELETE /v1/apps/{app}/segments/{id}"
        | "GET /v1/apps/{app}/segments/{id}/customers"
        | "GET /v1/apps/{app}/event-types"
        | "GET /v1/apps/{app}/event-types/{code}"
        | "DELETE /v1/apps/{app}/event-types/{code}"
        | "GET /v1/apps/{app}/customers/{customerId}/export"
        | "GET /v1/apps/{app}/customers/{customerId}/subscriptions"
        | "GET /v1/apps/{app}/customers/{customerId}/identities"
        | "DELETE /v1/apps/{app}/customers/{customerId}/identities/{kind}/{value}"
        | "GET /v1/apps/{app}/identities/{kind}/{value}"
        | "GET /v1/apps/{app}/customers/{customerId}/merge" => plain(Payload::Empty),
        "POST /v1/apps/{app}/customers/{customerId}/identities" => with(
            Payload::Json(json!({"kind": "phone", "value": "+34 600 000 001"})),
            vec![
                variant(
                    "a kind the application does not take",
                    json!({"kind": "passport", "value": "X1"}),
                ),
                variant(
                    "an email that is not one",
                    json!({"kind": "email", "value": "nope"}),
                ),
                variant(
                    "an identity another customer holds",
                    json!({"kind": "email", "value": "bob@example.com"}),
                ),
            ],
        ),
        "POST /v1/apps/{app}/customers/{customerId}/merge" => with(
            Payload::Json(json!({"from": "bob"})),
            vec![
                variant("merging a customer into itself", json!({"from": "ana"})),
                variant("an unknown customer", json!({"from": "nobody"})),
            ],
        ),
        "GET /v1/apps/{app}/audit" | "GET /v1/audit" => with(
            Payload::Empty,
            vec![query_variant("a page size past the largest", "limit=5000")],
        ),
        "GET /v1/apps/{app}/customers/{customerId}/subscriptions/history" => with(
            Payload::Empty,
            vec![query_variant("a limit past the largest", "limit=5000")],
        ),
        "PUT /v1/apps/{app}/customers/{customerId}/subscriptions/{channel}" => with(
            Payload::Json(json!({"subscribed": true, "source": "form"})),
            vec![variant("no subscribed", json!({"source": "form"}))],
        ),
        "GET /v1/apps/{app}/customers/{customerId}/events" => with(
            Payload::Empty,
            vec![query_variant("a page size past the largest", "limit=5000")],
        ),
        "POST /v1/apps/{app}/event-types" => with(
            Payload::Json(json!({"code": "email_open", "retention_days": 30})),
            vec![
                variant("a code taken", json!({"code": "purchase"})),
                variant("a code that is not one", json!({"code": "has space"})),
            ],
        ),
        "PATCH /v1/apps/{app}/event-types/{code}" => with(
            Payload::Json(json!({"enabled": false})),
            vec![variant(
                "a retention of no days",
                json!({"retention_days": 0}),
            )],
        ),
        "POST /v1/apps/{app}/events" => with(
            Payload::Json(
                json!({"events": [{"customerId": "ana", "type": "purchase", "channel": "web"}]}),
            ),
            vec![variant(
                "more than 10 000 events",
                json!({"events": vec![json!({}); 10_001]}),
            )],
        ),
        "POST /v1/apps" => with(
            Payload::Json(json!({"name": "C"})),
            vec![
                variant("a name too long", json!({"name": "x".repeat(201)})),
                variant(
                    "an unknown time zone",
                    json!({"name": "D", "timezone": "Mars/Olympus"}),
                ),
            ],
        ),
        "PATCH /v1/apps/{app}" => with(
            Payload::Json(json!({"name": "A2"})),
            vec![variant(
                "an unknown time zone",
                json!({"timezone": "Mars/Olympus"}),
            )],
        ),
        "POST /v1/apps/{app}/fields" => with(
            Payload::Json(json!({"name": "score", "type": "number"})),
            vec![
                variant("a name taken", json!({"name": "age", "type": "number"})),
                variant("an unknown type", json!({"name": "x", "type": "colour"})),
            ],
        ),
        "PATCH /v1/apps/{app}/fields/{name}" => with(
            Payload::Json(json!({"type": "date"})),
            vec![
                Variant {
                    why: "a field that customers hold values of",
                    params: &[("name", "age")],
                    query: "",
                    payload: Payload::Json(json!({"type": "string"})),
                },
                variant("an unknown type", json!({"type": "colour"})),
            ],
        ),
        "GET /v1/apps/{app}/customers" => with(
            Payload::Empty,
            vec![query_variant(
                "a filter that does not parse",
                "filter=age+%3E",
            )],
        ),
        "POST /v1/apps/{app}/customers" => with(
            Payload::Json(json!({"customerId": "zoe", "fields": {"age": 20}})),
            vec![
                variant("a customerId taken", json!({"customerId": "ana"})),
                variant(
                    "a value of the wrong type",
                    json!({"customerId": "yan", "fields": {"age": "old"}}),
                ),
            ],
        ),
        "POST /v1/apps/{app}/customers/batch" => with(
            Payload::Json(json!([{"customerId": "zoe"}])),
            vec![variant(
                "a batch past 10 000 items",
                Value::Array(vec![json!({}); 10_001]),
            )],
        ),
        "PATCH /v1/apps/{app}/customers/{customerId}" => with(
            Payload::Json(json!({"fields": {"age": 31}})),
            vec![
                variant("an immutable key", json!({"customerId": "other"})),
                variant(
                    "a value of the wrong type",
                    json!({"fields": {"age": "old"}}),
                ),
            ],
        ),
        "POST /v1/apps/{app}/imports" => plain(Payload::Csv("customerId\nzoe\n")),
        "POST /v1/apps/{app}/events/imports" => plain(Payload::Ndjson(
            "{\"customerId\": \"zoe\", \"type\": \"purchase\", \"channel\": \"web\"}\n",
        )),
        "GET /v1/apps/{app}/events/imports/{id}" => plain(Payload::Empty),
        "GET /v1/apps/{app}/export" => with(
            Payload::Empty,
            vec![query_variant(
                "a filter that does not parse",
                "filter=age+%3E",
            )],
        ),
        "POST /v1/apps/{app}/count" => with(
            Payload::Json(json!({"filter": "age > 1"})),
            vec![variant(
                "a filter that does not parse",
                json!({"filter": "age >"}),
            )],
        ),
        "POST /v1/apps/{app}/segments" => with(
            Payload::Json(json!({"name": "s", "filter": "age > 1"})),
            vec![
                variant("a filter that does not parse", bad_filter()),
                variant(
                    "the name of another segment, in another case",
                    json!({"name": "ADULTS", "filter": "age > 1"}),
                ),
            ],
        ),
        "PUT /v1/apps/{app}/segments/{id}" => with(
            Payload::Json(json!({"name": "s2", "filter": "age > 2"})),
            vec![variant("a filter that does not parse", bad_filter())],
        ),
        _ => None,
    }
}

/// One server with two applications. In A: fields `age` (held by customer `ana`) and
/// `city` (held by nobody), the event type `purchase`, a second key, a segment and a
/// finished import.
struct World {
    api: Api,
    a: App,
    b: App,
    second_key: i64,
    segment: i64,
    import: i64,
    event_import: i64,
}

impl World {
    async fn new() -> Self {
        let api = Api::new();
        let a = api.create_app("A").await;
        let b = api.create_app("B").await;
        api.create_field(&a, "age", "number").await;
        api.create_field(&a, "city", "string").await;
        api.create_customer(&a, "ana", json!({"age": 30})).await;
        api.create_customer(&a, "bob", json!({"age": 40})).await;
        for (who, email) in [("ana", "ana@example.com"), ("bob", "bob@example.com")] {
            let (status, body) = api
                .send(
                    "POST",
                    &a.path(&format!("/customers/{who}/identities")),
                    Some(&a.key),
                    Some(json!({"kind": "email", "value": email})),
                )
                .await;
            assert_eq!(status, StatusCode::CREATED, "{body}");
        }
        let (status, body) = api
            .send(
                "POST",
                &a.path("/event-types"),
                Some(&a.key),
                Some(json!({"code": "purchase"})),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        let (status, key) = api.send("POST", &a.path("/keys"), Some(&a.key), None).await;
        assert_eq!(status, StatusCode::CREATED, "{key}");
        let segment = json!({"name": "adults", "filter": "age >= 18"});
        let (status, segment) = api
            .send("POST", &a.path("/segments"), Some(&a.key), Some(segment))
            .await;
        assert_eq!(status, StatusCode::CREATED, "{segment}");
        let import = api
            .import_csv(&a, "", "customerId,fieldName,fieldValue\nbob,age,40\n")
            .await;
        let req = axum::http::Request::builder()
            .method("POST")
            .uri(a.path("/events/imports"))
            .header("authorization", format!("Bearer {}", a.key))
            .header("content-type", "application/x-ndjson")
            .body(axum::body::Body::from(
                "{\"customerId\": \"ana\", \"type\": \"purchase\", \"channel\": \"web\"}\n",
            ))
            .unwrap();
        let started = api.request(req).await;
        assert_eq!(started.status, StatusCode::ACCEPTED, "{}", started.body);
        let event_import = started.body["id"].as_i64().unwrap();
        api.wait_event_import(&a, event_import).await;
        World {
            second_key: key["id"].as_i64().unwrap(),
            segment: segment["id"].as_i64().unwrap(),
            import: import["id"].as_i64().unwrap(),
            event_import,
            api,
            a,
            b,
        }
    }

    /// A value of path parameter `name` of `path` that names something of application A.
    fn param(&self, path: &str, name: &str) -> String {
        match name {
            "app" => self.a.id.to_string(),
            "key_id" => self.second_key.to_string(),
            "name" => "city".into(),
            "customerId" => "ana".into(),
            "code" => "purchase".into(),
            "channel" => "email".into(),
            "kind" => "email".into(),
            "value" => "ana@example.com".into(),
            "id" if path.contains("/events/imports/{id}") => self.event_import.to_string(),
            "id" if path.contains("/imports/{id}") => self.import.to_string(),
            "id" if path.contains("/segments/{id}") => self.segment.to_string(),
            _ => panic!("no value for path parameter {name} of {path}: teach World::param"),
        }
    }

    /// `path` with every parameter named, `params` first.
    fn concrete(&self, path: &str, params: &[(&str, &str)]) -> String {
        let mut out = path.to_owned();
        while let Some(start) = out.find('{') {
            let end = start + out[start..].find('}').unwrap();
            let name = out[start + 1..end].to_owned();
            let value = params
                .iter()
                .find(|(n, _)| *n == name)
                .map_or_else(|| self.param(path, &name), |(_, v)| (*v).to_owned());
            out.replace_range(start..=end, &value);
        }
        out
    }
}

/// A value of path parameter `name` that names nothing.
fn unknown(name: &str) -> &'static str {
    match name {
        "name" | "customerId" => "ghost",
        _ => "987654",
    }
}

/// One request and why it is sent.
struct Probe {
    why: String,
    authorization: Option<String>,
    uri: String,
    payload: (Option<&'static str>, Bytes),
}

/// What one operation answered, probe by probe.
struct Answer {
    why: String,
    status: StatusCode,
    body: Value,
}

/// The requests sent to `op`, valid ones last (they may delete what the others need).
fn probes(op: &Operation, world: &World, fixture: &Fixture, oversized: &Bytes) -> Vec<Probe> {
    let admin = Some(format!("Bearer {ADMIN}"));
    let uri = |params: &[(&str, &str)], query: &str| {
        let path = world.concrete(&op.path, params);
        if query.is_empty() {
            path
        } else {
            format!("{path}?{query}")
        }
    };
    let valid = (fixture.valid.content_type(), fixture.valid.bytes());
    let probe = |why: String, authorization: Option<String>, uri: String, payload| Probe {
        why,
        authorization,
        uri,
        payload,
    };
    let mut out = vec![
        probe("no key".into(), None, uri(&[], ""), valid.clone()),
        probe(
            "an unknown key".into(),
            Some("Bearer unico_0123456789abcdef".into()),
            uri(&[], ""),
            valid.clone(),
        ),
        probe(
            "a malformed Authorization header".into(),
            Some("Basic YWRtaW46YWRtaW4=".into()),
            uri(&[], ""),
            valid.clone(),
        ),
        probe(
            "another application's key".into(),
            Some(format!("Bearer {}", world.b.key)),
            uri(&[], ""),
            valid.clone(),
        ),
        probe(
            "a target past the URI limit".into(),
            admin.clone(),
            uri(&[], &format!("x={}", "y".repeat(MAX_URI_BYTES))),
            valid.clone(),
        ),
    ];
    for (name, _) in op.params("path") {
        for value in [unknown(&name), "abc", "%FF", "%20lead"] {
            out.push(probe(
                format!("path parameter {name}={value}"),
                admin.clone(),
                uri(&[(&name, value)], ""),
                valid.clone(),
            ));
        }
    }
    for (name, schema) in op.params("query") {
        for value in query_values(&schema) {
            out.push(probe(
                format!("query parameter {name}={value}"),
                admin.clone(),
                uri(&[], &format!("{name}={value}")),
                valid.clone(),
            ));
        }
    }
    // Operations without query parameters ignore the query: only the others refuse a name.
    if !op.params("query").is_empty() {
        out.push(probe(
            "an unknown query parameter".into(),
            admin.clone(),
            uri(&[], "zzz=1"),
            valid.clone(),
        ));
    }
    if let Some(media_type) = op.body_type() {
        let other_type = if media_type == "application/json" {
            "text/csv"
        } else {
            "application/json"
        };
        let mut bodies = vec![
            ("no Content-Type", None, valid.1.clone()),
            ("another Content-Type", Some(other_type), valid.1.clone()),
            ("no body", valid.0, Bytes::new()),
            (
                "a truncated JSON body",
                valid.0,
                Bytes::from_static(b"{\"a\": "),
            ),
            ("a JSON string", valid.0, Bytes::from_static(b"\"text\"")),
            (
                "an object of unknown keys",
                valid.0,
                Bytes::from_static(b"{\"zzz\": 1}"),
            ),
        ];
        // Uploads stream to disk up to their own, much larger, bound: only JSON bodies.
        if media_type == "application/json" {
            bodies.push(("an oversized body", valid.0, oversized.clone()));
        }
        for (why, content_type, bytes) in bodies {
            out.push(probe(
                why.into(),
                admin.clone(),
                uri(&[], ""),
                (content_type, bytes),
            ));
        }
    }
    for v in &fixture.variants {
        out.push(probe(
            v.why.into(),
            admin.clone(),
            uri(v.params, v.query),
            (v.payload.content_type().or(valid.0), v.payload.bytes()),
        ));
    }
    out.push(probe(
        "the application's key".into(),
        Some(format!("Bearer {}", world.a.key)),
        uri(&[], ""),
        valid.clone(),
    ));
    out.push(probe("the admin key".into(), admin, uri(&[], ""), valid));
    out
}

/// Values of a query parameter worth trying, from its schema: not UTF-8, not of its type,
/// and for integers each documented bound and one past it.
fn query_values(schema: &Value) -> Vec<String> {
    let mut values = vec!["%FF".to_owned(), "zzz".to_owned()];
    match schema["type"].as_str() {
        Some("integer") => {
            values.extend(["-1", "0", "1", "987654"].map(String::from));
            for bound in ["minimum", "maximum"] {
                if let Some(b) = schema[bound].as_i64() {
                    values.extend([b - 1, b, b + 1].map(|v| v.to_string()));
                }
            }
        }
        Some("boolean") => values.extend(["true", "false"].map(String::from)),
        _ => {}
    }
    let mut seen = BTreeSet::new();
    values.retain(|v| seen.insert(v.clone()));
    values
}

async fn send(api: &Api, method: &Method, probe: &Probe) -> (StatusCode, Value) {
    let mut req = Request::builder().method(method.clone()).uri(&probe.uri);
    if let Some(auth) = &probe.authorization {
        req = req.header("authorization", auth);
    }
    if let Some(ct) = probe.payload.0 {
        req = req.header("content-type", ct);
    }
    let reply = api
        .request(req.body(Body::from(probe.payload.1.clone())).unwrap())
        .await;
    (reply.status, reply.body)
}

/// Why `body` is not the error shape, if it is not.
fn not_error_shape(body: &Value) -> Option<String> {
    let error = body.get("error").and_then(Value::as_object);
    let fine = error.is_some_and(|e| {
        e.len() == 3
            && e["code"].as_str().is_some_and(|c| !c.is_empty())
            && e["message"].as_str().is_some_and(|m| !m.is_empty())
            && e["details"].is_array()
    });
    (!fine).then(|| format!("not the error shape: {body}"))
}

/// Checks a documented integer bound: the bound itself is accepted, one past it refused.
fn check_bounds(op: &Operation, answers: &[Answer], problems: &mut Vec<String>) {
    for (name, schema) in op.params("query") {
        let status_of = |value: i64| {
            let why = format!("query parameter {name}={value}");
            answers.iter().find(|a| a.why == why).map(|a| a.status)
        };
        for (bound, past) in [("minimum", -1), ("maximum", 1)] {
            let Some(b) = schema[bound].as_i64() else {
                continue;
            };
            if status_of(b) == Some(StatusCode::BAD_REQUEST) {
                problems.push(format!(
                    "{}: {name}={b} is the documented {bound} but is refused",
                    op.name()
                ));
            }
            if status_of(b + past) != Some(StatusCode::BAD_REQUEST) {
                problems.push(format!(
                    "{}: {name}={} is past the documented {bound} but is not a 400",
                    op.name(),
                    b + past
                ));
            }
        }
    }
}

#[tokio::test]
async fn every_status_answered_is_documented() {
    let doc = serde_json::to_value(ApiDoc::openapi()).unwrap();
    let oversized = Bytes::from(vec![b' '; OVERSIZED_BODY_BYTES]);
    let mut problems = Vec::new();
    let operations = operations(&doc);
    assert!(
        operations.len() >= 30,
        "only {} operations",
        operations.len()
    );
    for op in &operations {
        let documented = op.documented();
        for (status, response) in op.spec["responses"].as_object().unwrap() {
            if response["description"].as_str().is_none_or(str::is_empty) {
                problems.push(format!(
                    "{}: documented {status} has no description",
                    op.name()
                ));
            }
            let schema = &response["content"]["application/json"]["schema"]["$ref"];
            let is_error = status.parse::<u16>().unwrap() >= 400;
            if is_error && schema != "#/components/schemas/ErrorBody" {
                problems.push(format!(
                    "{}: documented {status} does not use ErrorBody",
                    op.name()
                ));
            }
        }
        let Some(fixture) = fixture(&op.name()) else {
            problems.push(format!(
                "{}: no fixture; add a valid request to `fixture`",
                op.name()
            ));
            continue;
        };
        let world = World::new().await;
        let mut answers = Vec::new();
        for probe in probes(op, &world, &fixture, &oversized) {
            let (status, body) = send(&world.api, &op.method, &probe).await;
            if status == StatusCode::ACCEPTED
                && let Some(id) = body["id"].as_i64()
            {
                if op.path.contains("/events/") {
                    world.api.wait_event_import(&world.a, id).await;
                } else {
                    world.api.wait_import(&world.a, id).await;
                }
            }
            answers.push(Answer {
                why: probe.why,
                status,
                body,
            });
        }
        let mut undocumented: BTreeMap<u16, Vec<&str>> = BTreeMap::new();
        for answer in &answers {
            let code = answer.status.as_u16();
            if !documented.contains(&code) {
                undocumented.entry(code).or_default().push(&answer.why);
            }
            let failed = answer.status.is_client_error() || answer.status.is_server_error();
            if failed && let Some(why) = not_error_shape(&answer.body) {
                problems.push(format!("{} ({}): {why}", op.name(), answer.why));
            }
        }
        for (code, whys) in undocumented {
            problems.push(format!(
                "{}: answers {code} ({}) but documents only {documented:?}",
                op.name(),
                whys.join("; ")
            ));
        }
        let needs_key = answers
            .iter()
            .any(|a| a.why == "no key" && a.status == StatusCode::UNAUTHORIZED);
        if needs_key != op.needs_key {
            problems.push(format!(
                "{}: the document says a key is {}needed, the router {}",
                op.name(),
                if op.needs_key { "" } else { "not " },
                if needs_key {
                    "asks for one"
                } else {
                    "does not ask"
                }
            ));
        }
        check_bounds(op, &answers, &mut problems);
    }
    assert!(
        problems.is_empty(),
        "{} problems:\n{}",
        problems.len(),
        problems.join("\n")
    );
}

/// Whether a concrete path is an instance of a documented template.
fn instance_of(template: &str, path: &str) -> bool {
    let template: Vec<&str> = template.split('/').collect();
    let path: Vec<&str> = path.split('/').collect();
    template.len() == path.len()
        && template
            .iter()
            .zip(&path)
            .all(|(t, p)| t.starts_with('{') || t == p)
}

/// Routes SPEC §4 plans and the router does not have yet: whoever adds one must document it.
const PLANNED_PATHS: &[&str] = &[
    "/v1/apps/{app}/event-types",
    "/v1/apps/{app}/event-types/purchase",
    "/v1/apps/{app}/events",
    "/v1/apps/{app}/events/imports",
    "/v1/apps/{app}/events/imports/1",
    "/v1/apps/{app}/customers/ana/events",
    "/v1/apps/{app}/customers/ana/identities",
    "/v1/apps/{app}/customers/ana/identities/email/ana%40example.com",
    "/v1/apps/{app}/identities/email/ana%40example.com",
    "/v1/apps/{app}/customers/ana/merge",
    "/v1/apps/{app}/customers/ana/subscriptions",
    "/v1/apps/{app}/customers/ana/subscriptions/email",
    "/v1/apps/{app}/customers/ana/export",
    "/v1/apps/{app}/audit",
    "/v1/apps/{app}/webhooks",
    "/v1/apps/{app}/webhooks/1",
];

/// Every method on every documented path, and on the paths SPEC §4 plans: a request the
/// router routes (neither 404 `route_not_found` nor 405) must be a documented operation.
#[tokio::test]
async fn no_route_answers_without_being_documented() {
    let doc = serde_json::to_value(ApiDoc::openapi()).unwrap();
    let operations = operations(&doc);
    let world = World::new().await;
    let mut paths: BTreeSet<String> = operations
        .iter()
        .map(|op| world.concrete(&op.path, &[]))
        .collect();
    paths.extend(PLANNED_PATHS.iter().map(|p| world.concrete(p, &[])));
    let mut problems = Vec::new();
    for path in &paths {
        for method in [
            Method::GET,
            Method::POST,
            Method::PUT,
            Method::PATCH,
            Method::DELETE,
        ] {
            let documented = operations
                .iter()
                .any(|op| op.method == method && instance_of(&op.path, path));
            if documented {
                continue;
            }
            let (status, body) = world
                .api
                .admin(method.as_str(), path, Some(json!({})))
                .await;
            let unrouted = status == StatusCode::METHOD_NOT_ALLOWED
                || (status == StatusCode::NOT_FOUND && body["error"]["code"] == "route_not_found");
            if !unrouted {
                problems.push(format!(
                    "{method} {path} answers {status} but no documented operation matches it"
                ));
            }
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}
