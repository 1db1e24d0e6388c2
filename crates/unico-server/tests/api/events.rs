//! Interactions over HTTP: the event type registry, events in with per-item results, and
//! the customer's timeline.

use axum::http::StatusCode;
use serde_json::{Value, json};

use crate::support::*;

const JSON: Option<&str> = Some("application/json");

async fn register(api: &Api, app: &App, body: Value) -> (StatusCode, Value) {
    api.send(
        "POST",
        &app.path("/event-types"),
        Some(&app.key),
        Some(body),
    )
    .await
}

async fn ingest(api: &Api, app: &App, events: Value) -> (StatusCode, Value) {
    api.send(
        "POST",
        &app.path("/events"),
        Some(&app.key),
        Some(json!({ "events": events })),
    )
    .await
}

pub(crate) async fn shop(api: &Api) -> App {
    let a = api.create_app("Shop").await;
    let (status, body) = register(
        api,
        &a,
        json!({"code": "purchase", "name": "Purchase", "retention_days": 730,
               "properties": {"amount": "number", "currency": "string"}}),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    register(api, &a, json!({"code": "email_open"})).await;
    a
}

fn statuses(body: &Value) -> Vec<&str> {
    body["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["status"].as_str().unwrap())
        .collect()
}

#[tokio::test]
async fn event_types_are_registered_changed_and_deleted() {
    let api = Api::new();
    let a = shop(&api).await;
    let (status, body) = api
        .send("GET", &a.path("/event-types"), Some(&a.key), None)
        .await;
    assert_eq!(status, StatusCode::OK);
    let codes: Vec<&str> = body["event_types"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["code"].as_str().unwrap())
        .collect();
    assert_eq!(codes, ["email_open", "purchase"]);
    let open = &body["event_types"][0];
    assert_eq!(open["name"], "email_open");
    assert_eq!(open["retention_days"], 1095);
    assert_eq!(open["enabled"], true);
    let (status, body) = api
        .send("GET", &a.path("/event-types/purchase"), Some(&a.key), None)
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        body["properties"],
        json!({"amount": "number", "currency": "string"})
    );
    let (status, _) = register(&api, &a, json!({"code": "purchase"})).await;
    assert_eq!(status, StatusCode::CONFLICT);
    let (status, body) = api
        .send(
            "PATCH",
            &a.path("/event-types/purchase"),
            Some(&a.key),
            Some(json!({"enabled": false, "retention_days": 30})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        (body["enabled"].clone(), body["retention_days"].clone()),
        (json!(false), json!(30))
    );
    for (bad, field) in [
        (json!({"code": "has space"}), "code"),
        (json!({"code": "ok", "retention_days": 0}), "retention_days"),
        (
            json!({"code": "ok", "retention_days": 36501}),
            "retention_days",
        ),
        (json!({"code": "ok", "name": "tab\there"}), "name"),
        (
            json!({"code": "ok", "properties": {"amount": "money"}}),
            "properties.amount",
        ),
        (
            json!({"code": "ok", "properties": {"a b": "number"}}),
            "properties.a b",
        ),
    ] {
        let (status, body) = register(&api, &a, bad.clone()).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{bad}: {body}");
        assert_eq!(body["error"]["details"][0]["field"], field, "{bad}: {body}");
    }
    let (status, _) = register(&api, &a, json!({"code": "ok", "colour": "red"})).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (status, body) = api
        .send(
            "DELETE",
            &a.path("/event-types/email_open"),
            Some(&a.key),
            None,
        )
        .await;
    assert_eq!(
        (status, body["events_deleted"].clone()),
        (StatusCode::OK, json!(0))
    );
    let (status, _) = api
        .send(
            "GET",
            &a.path("/event-types/email_open"),
            Some(&a.key),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    // Another application's key sees none of it.
    let b = api.create_app("Other").await;
    let (status, _) = api
        .send("GET", &a.path("/event-types"), Some(&b.key), None)
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn events_are_answered_per_item_and_stored_once_per_key() {
    let api = Api::new();
    let a = shop(&api).await;
    api.create_customer(&a, "ana", json!({})).await;
    let (status, body) = ingest(
        &api,
        &a,
        json!([
            {"event_id": "e1", "customerId": "ana", "type": "purchase", "channel": "web",
             "timestamp": "2026-11-30T10:00:00Z", "properties": {"amount": 59.9, "currency": "EUR"}},
            {"event_id": "e1", "customerId": "ana", "type": "purchase", "channel": "pos"},
            {"customerId": "newbie", "type": "email_open", "channel": "Email", "device_id": "d-1"},
            {"customerId": "ana", "type": "refund", "channel": "web"},
        ]),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(statuses(&body), ["stored", "duplicate", "stored", "error"]);
    assert_eq!(body["results"][1]["id"], body["results"][0]["id"]);
    assert_eq!(body["results"][2]["customer_created"], true);
    assert!(body["results"][0].get("customer_created").is_none());
    assert!(
        body["results"][3]["error"]["message"]
            .as_str()
            .unwrap()
            .contains("refund"),
        "{body}"
    );
    assert_eq!(
        (
            body["stored"].clone(),
            body["duplicates"].clone(),
            body["errors"].clone()
        ),
        (json!(2), json!(1), json!(1))
    );
    assert!(api.get_customer(&a, "newbie").await.is_some());
    // The same key in a later request is still a duplicate.
    let (_, again) = ingest(
        &api,
        &a,
        json!([{"event_id": "e1", "customerId": "ana", "type": "purchase", "channel": "web"}]),
    )
    .await;
    assert_eq!(statuses(&again), ["duplicate"]);
    // A disabled type refuses new events.
    api.send(
        "PATCH",
        &a.path("/event-types/email_open"),
        Some(&a.key),
        Some(json!({"enabled": false})),
    )
    .await;
    let (_, body) = ingest(
        &api,
        &a,
        json!([{"customerId": "ana", "type": "email_open", "channel": "email"}]),
    )
    .await;
    assert_eq!(statuses(&body), ["error"]);
    assert!(
        body["results"][0]["error"]["message"]
            .as_str()
            .unwrap()
            .contains("disabled")
    );
}

#[tokio::test]
async fn hostile_events_fail_alone_with_the_reason() {
    let api = Api::new();
    let a = shop(&api).await;
    let mut deep = json!(1);
    for _ in 0..6 {
        deep = json!({ "a": deep });
    }
    let cases = vec![
        (
            json!({"type": "purchase", "channel": "web"}),
            "events[0].customerId",
        ),
        (
            json!({"customerId": 7, "type": "purchase", "channel": "web"}),
            "events[1].customerId",
        ),
        (
            json!({"customerId": "x", "channel": "web"}),
            "events[2].type",
        ),
        (
            json!({"customerId": "x", "type": "purchase"}),
            "events[3].channel",
        ),
        (
            json!({"customerId": "x", "type": "purchase", "channel": "web", "timestamp": "yesterday"}),
            "events[4].timestamp",
        ),
        (
            json!({"customerId": "x", "type": "purchase", "channel": "web", "timestamp": "1999-12-31T23:59:59Z"}),
            "events[5].timestamp",
        ),
        (
            json!({"customerId": "x", "type": "purchase", "channel": "web", "timestamp": "2999-01-01T00:00:00Z"}),
            "events[6].timestamp",
        ),
        (
            json!({"customerId": "x", "type": "purchase", "channel": "web", "timestamp": 1.5}),
            "events[7].timestamp",
        ),
        (
            json!({"customerId": "x", "type": "purchase", "channel": "web", "properties": [1]}),
            "events[8].properties",
        ),
        (
            json!({"customerId": "x", "type": "purchase", "channel": "web", "properties": deep}),
            "events[9].properties",
        ),
        (
            json!({"customerId": "x", "type": "purchase", "channel": "web", "properties": {"a": "x".repeat(9000)}}),
            "events[10].properties",
        ),
        (
            json!({"customerId": "x", "type": "purchase", "channel": "web", "colour": "red"}),
            "events[11].colour",
        ),
        (
            json!({"customerId": "x", "type": "purchase", "channel": "web", "event_id": ""}),
            "events[12].event_id",
        ),
        (
            json!({"customerId": "x", "type": "purchase", "channel": "web", "device_id": "a\u{0}b"}),
            "events[13].device_id",
        ),
        (
            json!({"customerId": " x", "type": "purchase", "channel": "web"}),
            "events[14].customerId",
        ),
        (json!("not an object"), "events[15]"),
        (
            json!({"customerId": "x", "type": "purchase", "channel": "w e b"}),
            "events[16].channel",
        ),
    ];
    let n = cases.len();
    let mut items: Vec<Value> = cases.iter().map(|(item, _)| item.clone()).collect();
    items.push(json!({"customerId": "good", "type": "purchase", "channel": "web"}));
    let (status, body) = ingest(&api, &a, Value::Array(items)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    for (i, (item, field)) in cases.iter().enumerate() {
        let r = &body["results"][i];
        assert_eq!(r["status"], "error", "{item}: {r}");
        assert_eq!(r["error"]["code"], "invalid_input", "{item}: {r}");
        assert_eq!(r["error"]["details"][0]["field"], *field, "{item}: {r}");
    }
    assert_eq!(body["results"][n]["status"], "stored");
    assert!(
        api.get_customer(&a, "x").await.is_none(),
        "no invalid event created its customer"
    );
    // The request itself.
    for (bad, why) in [
        (json!([]), "not an object"),
        (json!({"events": {}}), "events not an array"),
        (json!({"events": [], "more": 1}), "unknown key"),
    ] {
        let (status, body) = api
            .send("POST", &a.path("/events"), Some(&a.key), Some(bad))
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{why}: {body}");
    }
    let many: Vec<Value> = (0..10_001)
        .map(|_| json!({"customerId": "x", "type": "purchase", "channel": "web"}))
        .collect();
    let (status, body) = ingest(&api, &a, Value::Array(many)).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(body["error"]["code"], "limit_exceeded");
    assert!(api.get_customer(&a, "x").await.is_none());
}

#[tokio::test]
async fn the_timeline_pages_newest_first_with_filters_and_a_summary() {
    let api = Api::new();
    let a = shop(&api).await;
    let mut events = Vec::new();
    for day in 1..=9 {
        events.push(json!({"customerId": "ana", "type": "purchase", "channel": if day % 2 == 0 { "pos" } else { "web" },
            "timestamp": format!("2026-11-{day:02}T12:00:00Z"), "properties": {"amount": day}}));
        events.push(
            json!({"customerId": "ana", "type": "email_open", "channel": "email",
            "timestamp": format!("2026-11-{day:02}T08:00:00Z")}),
        );
    }
    events.push(json!({"customerId": "bob", "type": "purchase", "channel": "web"}));
    let (status, _) = ingest(&api, &a, Value::Array(events)).await;
    assert_eq!(status, StatusCode::OK);
    let (status, page) = api
        .send(
            "GET",
            &a.path("/customers/ana/events?limit=4&summary=true"),
            Some(&a.key),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{page}");
    let times = |p: &Value| -> Vec<String> {
        p["events"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["timestamp"].as_str().unwrap().to_owned())
            .collect()
    };
    assert_eq!(
        times(&page),
        [
            "2026-11-09T12:00:00.000Z",
            "2026-11-09T08:00:00.000Z",
            "2026-11-08T12:00:00.000Z",
            "2026-11-08T08:00:00.000Z"
        ]
    );
    assert_eq!(page["events"][0]["type"], "purchase");
    assert_eq!(page["events"][0]["customerId"], "ana");
    assert_eq!(page["events"][0]["properties"], json!({"amount": 9}));
    assert_eq!(page["summary"]["events"], 18);
    assert_eq!(page["summary"]["first_seen"], "2026-11-01T08:00:00.000Z");
    assert_eq!(page["summary"]["last_seen"], "2026-11-09T12:00:00.000Z");
    assert_eq!(page["summary"]["channels"], json!(["email", "pos", "web"]));
    // Walk every page.
    let mut all = times(&page);
    let mut cursor = page["next_cursor"].as_str().map(str::to_owned);
    while let Some(c) = cursor {
        let (_, next) = api
            .send(
                "GET",
                &a.path(&format!("/customers/ana/events?limit=4&cursor={c}")),
                Some(&a.key),
                None,
            )
            .await;
        assert!(next.get("summary").is_none());
        all.extend(times(&next));
        cursor = next["next_cursor"].as_str().map(str::to_owned);
    }
    assert_eq!(all.len(), 18);
    let (_, pos) = api
        .send(
            "GET",
            &a.path("/customers/ana/events?type=purchase&channel=pos"),
            Some(&a.key),
            None,
        )
        .await;
    assert_eq!(pos["events"].as_array().unwrap().len(), 4);
    let (_, window) = api
        .send(
            "GET",
            &a.path("/customers/ana/events?from=2026-11-03T00:00:00Z&to=2026-11-05T00:00:00Z"),
            Some(&a.key),
            None,
        )
        .await;
    assert_eq!(window["events"].as_array().unwrap().len(), 4);
    for (query, why) in [
        ("limit=0", "limit"),
        ("limit=1001", "limit"),
        ("cursor=zz", "cursor"),
        ("type=bad%20code", "type"),
        ("from=soon", "from"),
        ("colour=red", "unknown"),
        ("summary=yes", "summary"),
    ] {
        let (status, body) = api
            .send(
                "GET",
                &a.path(&format!("/customers/ana/events?{query}")),
                Some(&a.key),
                None,
            )
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{why}: {body}");
        assert_eq!(body["error"]["code"], "invalid_parameter", "{why}: {body}");
    }
    let (status, _) = api
        .send(
            "GET",
            &a.path("/customers/nobody/events"),
            Some(&a.key),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

pub(crate) async fn import_events(api: &Api, app: &App, query: &str, ndjson: &str) -> Value {
    import_event_bytes(api, app, query, ndjson.as_bytes().to_vec()).await
}

async fn import_event_bytes(api: &Api, app: &App, query: &str, ndjson: Vec<u8>) -> Value {
    let req = axum::http::Request::builder()
        .method("POST")
        .uri(app.path(&format!("/events/imports{query}")))
        .header("authorization", format!("Bearer {}", app.key))
        .header("content-type", "application/x-ndjson")
        .body(axum::body::Body::from(ndjson))
        .unwrap();
    let reply = api.request(req).await;
    assert_eq!(reply.status, StatusCode::ACCEPTED, "{}", reply.body);
    let id = reply.body["id"].as_i64().unwrap();
    api.wait_event_import(app, id).await
}

#[tokio::test]
async fn an_ndjson_backfill_is_atomic_unless_asked_and_reports_each_bad_line() {
    let api = Api::new();
    let a = shop(&api).await;
    let good = [
        r#"{"event_id":"e1","customerId":"c1","type":"purchase","channel":"web","timestamp":"2026-10-01T12:03:44Z","properties":{"amount":59.9}}"#,
        r#"{"event_id":"e2","customerId":"c1","type":"email_open","channel":"email","timestamp":"2026-10-02T08:00:00Z"}"#,
        "",
        r#"{"event_id":"e3","customerId":"c2","type":"purchase","channel":"pos","timestamp":"2026-10-03T10:00:00Z"}"#,
    ];
    let bad = [
        r#"{"event_id":"e4","customerId":"c3","type":"purchse","channel":"web"}"#,
        r#"{"event_id":"e5","customerId":"c3","type":"purchase","channel":"web","timestamp":"nope"}"#,
        r#"not json"#,
    ];
    let file = format!("{}\n{}\n", good.join("\n"), bad.join("\n"));
    // Atomic: nothing is written, every bad line is reported where it is.
    let report = import_events(&api, &a, "", &file).await;
    assert_eq!(report["state"], "failed", "{report}");
    assert_eq!(report["lines_read"], 6);
    assert_eq!(report["lines_rejected"], 3);
    assert_eq!(report["events_stored"], 0);
    let errors = report["errors"].as_array().unwrap();
    assert_eq!(
        errors
            .iter()
            .map(|e| (e["line"].as_u64().unwrap(), e["column"].as_str().unwrap()))
            .collect::<Vec<_>>(),
        [(5, "type"), (6, "timestamp"), (7, "line")]
    );
    assert!(
        errors[0]["message"]
            .as_str()
            .unwrap()
            .contains("did you mean \"purchase\""),
        "{report}"
    );
    assert_eq!(errors[0]["value"], "purchse");
    assert!(api.get_customer(&a, "c1").await.is_none());
    // skip_invalid: the valid lines are written.
    let report = import_events(&api, &a, "?mode=skip_invalid", &file).await;
    assert_eq!(report["state"], "succeeded", "{report}");
    assert_eq!(report["events_stored"], 3);
    assert_eq!(report["customers_created"], 2);
    assert_eq!(report["duplicates"], 0);
    // Again: every event is a duplicate, nothing new is stored.
    let report = import_events(&api, &a, "?mode=skip_invalid", &file).await;
    assert_eq!(
        (
            report["events_stored"].clone(),
            report["duplicates"].clone()
        ),
        (json!(0), json!(3)),
        "{report}"
    );
    let (_, page) = api
        .send("GET", &a.path("/customers/c1/events"), Some(&a.key), None)
        .await;
    assert_eq!(page["events"].as_array().unwrap().len(), 2);
    assert_eq!(page["events"][1]["properties"]["amount"], 59.9);
    // An events import is not a CSV import, and the other way round.
    let id = report["id"].as_i64().unwrap();
    let (status, _) = api
        .send(
            "GET",
            &a.path(&format!("/imports/{id}")),
            Some(&a.key),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn an_application_may_register_event_types_on_first_sight() {
    let api = Api::new();
    let a = api.create_app("Shop").await;
    let (_, app) = api.admin("GET", &format!("/v1/apps/{}", a.id), None).await;
    assert_eq!(app["auto_register_event_types"], false);
    let (_, body) = ingest(
        &api,
        &a,
        json!([{"customerId": "ana", "type": "signup", "channel": "web"}]),
    )
    .await;
    assert_eq!(statuses(&body), ["error"]);
    let (status, app) = api
        .admin(
            "PATCH",
            &format!("/v1/apps/{}", a.id),
            Some(json!({"auto_register_event_types": true})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{app}");
    assert_eq!(app["auto_register_event_types"], true);
    let (_, body) = ingest(
        &api,
        &a,
        json!([{"customerId": "ana", "type": "signup", "channel": "web"}]),
    )
    .await;
    assert_eq!(statuses(&body), ["stored"]);
    let (status, t) = api
        .send("GET", &a.path("/event-types/signup"), Some(&a.key), None)
        .await;
    assert_eq!(
        (status, t["retention_days"].clone()),
        (StatusCode::OK, json!(1095))
    );
    let report = import_events(
        &api,
        &a,
        "",
        "{\"customerId\": \"bob\", \"type\": \"refund\", \"channel\": \"pos\"}\n",
    )
    .await;
    assert_eq!(report["state"], "succeeded", "{report}");
    let (status, _) = api
        .send("GET", &a.path("/event-types/refund"), Some(&a.key), None)
        .await;
    assert_eq!(status, StatusCode::OK);
    // The count sees the new type at once.
    let (status, count) = api
        .send(
            "POST",
            &a.path("/count"),
            Some(&a.key),
            Some(json!({"filter": "did refund"})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{count}");
    assert_eq!(count["count"], 1, "{count}");
}

#[tokio::test]
async fn an_ndjson_backfill_reports_binary_and_oversized_lines_where_they_are() {
    let api = Api::new();
    let a = shop(&api).await;
    let good = br#"{"customerId":"c1","type":"purchase","channel":"web"}"#;
    let mut file = Vec::new();
    file.extend_from_slice(good);
    file.extend_from_slice(
        b"\n{\"customerId\":\"c\xff\xfe\",\"type\":\"purchase\",\"channel\":\"web\"}\n",
    );
    file.extend_from_slice(
        br#"{"customerId":"c2","type":"purchase","channel":"web","properties":{"note":""#,
    );
    file.extend(std::iter::repeat_n(b'x', 1_100_000));
    file.extend_from_slice(b"\"}}\n[1, 2]\n");
    file.extend_from_slice(good);
    let report = import_event_bytes(&api, &a, "", file.clone()).await;
    assert_eq!(report["state"], "failed", "{report}");
    let errors: Vec<(u64, String)> = report["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["line"].as_u64().unwrap(),
                e["column"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(
        errors,
        [
            (2, "line".to_owned()),
            (3, "line".to_owned()),
            (4, "line".to_owned())
        ],
        "{report}"
    );
    assert!(
        report["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("UTF-8")
    );
    assert!(
        report["errors"][1]["message"]
            .as_str()
            .unwrap()
            .contains("longer than")
    );
    assert!(
        api.get_customer(&a, "c1").await.is_none(),
        "atomic: nothing written"
    );
    let report = import_event_bytes(&api, &a, "?mode=skip_invalid", file).await;
    assert_eq!(
        (report["state"].clone(), report["events_stored"].clone()),
        (json!("succeeded"), json!(2)),
        "{report}"
    );
}

/// A batch of events is read in one pass that checks it as it goes (the usual shape), or
/// checked whole first (any other): either way a repeated key, at any depth, or a body of
/// more values than the route takes is refused with its position, and nothing is stored.
#[tokio::test]
async fn a_repeated_key_or_too_many_values_in_a_batch_of_events_stores_nothing() {
    let api = Api::new();
    let a = shop(&api).await;
    let plain =
        r#"{"customerId":"ana","type":"purchase","channel":"web","properties":{"amount":5}}"#;
    let cases = [
        // In an item's own keys, in its properties, deep in them, at the top.
        (
            format!(
                r#"{{"events":[{plain},{{"customerId":"bob","type":"purchase","channel":"web","type":"email_open"}}]}}"#
            ),
            "type",
        ),
        (
            format!(
                r#"{{"events":[{plain},{{"customerId":"bob","type":"purchase","channel":"web","properties":{{"amount":1,"amount":2}}}}]}}"#
            ),
            "amount",
        ),
        (
            format!(
                r#"{{"events":[{plain},{{"customerId":"bob","type":"purchase","channel":"web","properties":{{"a":[{{"b":1,"b":1}}]}}}}]}}"#
            ),
            "b",
        ),
        (
            format!(r#"{{"events":[{plain}],"events":[{plain}]}}"#),
            "events",
        ),
        // An item in another shape (a number for a time) beside it.
        (
            format!(
                r#"{{"events":[{plain},{{"customerId":"bob","type":"purchase","channel":"web","timestamp":1764000000000,"properties":{{"c":1,"c":2}}}}]}}"#
            ),
            "c",
        ),
    ];
    for (body, key) in cases {
        let (status, reply) = api
            .send_raw("POST", &a.path("/events"), Some(&a.key), JSON, body.clone())
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}: {reply}");
        assert_error(
            &reply,
            "invalid_json",
            &[&format!("\"{key}\""), "twice", "line", "column"],
        );
    }
    // Two million and one values in one event's properties.
    let zeros = vec!["0"; 2_000_001].join(",");
    let body = format!(
        r#"{{"events":[{{"customerId":"ana","type":"purchase","channel":"web","properties":{{"z":[{zeros}]}}}}]}}"#
    );
    let (status, reply) = api
        .send_raw("POST", &a.path("/events"), Some(&a.key), JSON, body)
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{reply}");
    assert_error(&reply, "limit_exceeded", &["2000000", "JSON values"]);
    assert!(api.customer_ids(&a).await.is_empty(), "nothing was stored");
    // The same items without the repeat are stored.
    let (status, reply) = api
        .send_raw(
            "POST",
            &a.path("/events"),
            Some(&a.key),
            JSON,
            format!(r#"{{"events":[{plain}]}}"#),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{reply}");
    assert_eq!(reply["stored"], 1, "{reply}");
}
