//! Computed fields over HTTP: defined with `POST …/fields`, read-only everywhere a value
//! could be written, current on every read (customer, list, export) and filterable like
//! any field, moving as events arrive.

use axum::http::StatusCode;
use serde_json::{Value, json};

use crate::filters::count;
use crate::support::*;

async fn post(api: &Api, app: &App, path: &str, body: Value) -> (StatusCode, Value) {
    api.send("POST", &app.path(path), Some(&app.key), Some(body))
        .await
}

/// A shop with a `purchase` type (amount a number, currency a string), an `app_open`
/// type, a stored `country` field and four computed fields.
async fn shop(api: &Api) -> App {
    let a = api.create_app("Shop").await;
    let (status, body) = post(
        api,
        &a,
        "/event-types",
        json!({"code": "purchase", "properties": {"amount": "number", "currency": "string"}}),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    post(api, &a, "/event-types", json!({"code": "app_open"})).await;
    api.create_field(&a, "country", "string").await;
    for (name, ty, computed) in [
        (
            "purchases_90d",
            "number",
            json!({"event": "purchase", "agg": "count", "within_last": "90d"}),
        ),
        (
            "spent",
            "number",
            json!({"event": "purchase", "agg": "sum", "property": "amount"}),
        ),
        (
            "avg_basket",
            "number",
            json!({"event": "purchase", "agg": "avg", "property": "amount"}),
        ),
        (
            "last_open",
            "datetime",
            json!({"event": "app_open", "agg": "last"}),
        ),
    ] {
        let (status, body) = post(
            api,
            &a,
            "/fields",
            json!({"name": name, "type": ty, "computed": computed}),
        )
        .await;
        assert_eq!(status, StatusCode::CREATED, "{name}: {body}");
        assert_eq!(body["computed"], computed, "{body}");
        assert!(body.get("value_count").is_none(), "{body}");
    }
    a
}

async fn ingest(api: &Api, app: &App, events: Value) {
    let (status, body) = post(api, app, "/events", json!({ "events": events })).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    for r in body["results"].as_array().unwrap() {
        assert_eq!(r["status"], "stored", "{body}");
    }
}

fn days_ago(days: i64) -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
        - days * 86_400_000
}

#[tokio::test]
async fn values_are_computed_from_events_on_every_read_and_move_as_events_arrive() {
    let api = Api::new();
    let a = shop(&api).await;
    api.create_customer(&a, "quiet", json!({"country": "FR"}))
        .await;
    ingest(
        &api,
        &a,
        json!([
            {"event_id": "p1", "customerId": "ana", "type": "purchase", "channel": "web",
             "timestamp": days_ago(1), "properties": {"amount": 0.1}},
            {"event_id": "p2", "customerId": "ana", "type": "purchase", "channel": "pos",
             "timestamp": days_ago(10), "properties": {"amount": 0.2}},
            {"event_id": "p3", "customerId": "ana", "type": "purchase", "channel": "web",
             "timestamp": days_ago(200), "properties": {"amount": 10}},
            {"event_id": "o1", "customerId": "ana", "type": "app_open", "channel": "app",
             "timestamp": "2026-01-02T03:04:05Z"},
            {"event_id": "o2", "customerId": "ana", "type": "app_open", "channel": "app",
             "timestamp": "2025-12-31T00:00:00Z"}
        ]),
    )
    .await;

    let ana = api.get_customer(&a, "ana").await.unwrap();
    let fields = &ana["fields"];
    assert_eq!(fields["purchases_90d"], json!(2), "{ana}");
    // Sums are exact: 0.1 + 0.2 + 10 is 10.3, not 10.299999…
    assert_eq!(fields["spent"], json!(10.3), "{ana}");
    assert_eq!(fields["avg_basket"].as_f64().unwrap(), 10.3 / 3.0, "{ana}");
    assert_eq!(fields["last_open"], "2026-01-02T03:04:05.000Z", "{ana}");
    // No events: the count and the sum are 0, the others have no value.
    let quiet = api.get_customer(&a, "quiet").await.unwrap();
    assert_eq!(
        quiet["fields"],
        json!({"country": "FR", "purchases_90d": 0, "spent": 0}),
        "{quiet}"
    );

    // Filters see the same values, and an event acknowledged moves the count at once.
    assert_eq!(count(&api, &a, json!("purchases_90d >= 2")).await, 1);
    assert_eq!(count(&api, &a, json!("spent = 0")).await, 1);
    assert_eq!(count(&api, &a, json!("avg_basket not_exists")).await, 1);
    assert_eq!(
        count(&api, &a, json!("last_open after \"2026-01-01\"")).await,
        1
    );
    ingest(
        &api,
        &a,
        json!([{"event_id": "p4", "customerId": "quiet", "type": "purchase",
                "channel": "web", "properties": {"amount": 5}},
               {"event_id": "p5", "customerId": "quiet", "type": "purchase",
                "channel": "web", "properties": {"amount": 5}}]),
    )
    .await;
    assert_eq!(count(&api, &a, json!("purchases_90d >= 2")).await, 2);
    assert_eq!(count(&api, &a, json!("avg_basket = 5")).await, 1);
    let quiet = api.get_customer(&a, "quiet").await.unwrap();
    assert_eq!(quiet["fields"]["spent"], json!(10), "{quiet}");

    // Lists, filtered or not, show the values too.
    let (status, body) = api
        .send(
            "GET",
            &a.path("/customers?filter=spent%20%3E%201"),
            Some(&a.key),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let listed: Vec<(&str, &Value)> = body["customers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| (c["customerId"].as_str().unwrap(), &c["fields"]["spent"]))
        .collect();
    assert_eq!(listed, [("ana", &json!(10.3)), ("quiet", &json!(10))]);
    let all = api.all_customers(&a).await;
    assert!(
        all.iter().all(|c| c["fields"]["purchases_90d"].is_number()),
        "{all:?}"
    );
}

#[tokio::test]
async fn exports_carry_the_values_unless_asked_not_to() {
    let api = Api::new();
    let a = shop(&api).await;
    ingest(
        &api,
        &a,
        json!([{"event_id": "p1", "customerId": "ana", "type": "purchase", "channel": "web",
                "timestamp": days_ago(2), "properties": {"amount": 12.5}}]),
    )
    .await;
    api.patch_customer(&a, "ana", json!({"fields": {"country": "ES"}}))
        .await;
    let (status, _, long) = api.export_csv(&a, &a.key, "?raw=true").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        long,
        "customerId,fieldName,fieldValue\nana,country,ES\nana,purchases_90d,1\nana,spent,12.5\nana,avg_basket,12.5\n"
    );
    let (_, _, wide) = api.export_csv(&a, &a.key, "?format=wide&raw=true").await;
    assert_eq!(
        wide,
        "customerId,country,purchases_90d,spent,avg_basket,last_open\nana,ES,1,12.5,12.5,\n"
    );
    let (_, _, stored) = api
        .export_csv(&a, &a.key, "?format=wide&raw=true&computed=false")
        .await;
    assert_eq!(stored, "customerId,country\nana,ES\n");
    // That export imports back; one with the computed columns is refused, positioned.
    let report = api.import_csv(&a, "", stored).await;
    assert_eq!(report["state"], "succeeded", "{report}");
    let report = api.import_csv(&a, "", wide).await;
    assert_eq!(report["state"], "failed", "{report}");
    assert!(
        report.to_string().contains("is a computed field"),
        "{report}"
    );
    let (status, _, _) = api.export_csv(&a, &a.key, "?computed=maybe").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn computed_fields_are_read_only() {
    let api = Api::new();
    let a = shop(&api).await;
    api.create_customer(&a, "ana", json!({})).await;
    let (status, body) = api
        .send(
            "PATCH",
            &a.path("/customers/ana"),
            Some(&a.key),
            Some(json!({"fields": {"spent": 3}})),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(
        details(&body),
        [(
            "fields.spent".to_owned(),
            "\"spent\" is a computed field (sum amount of purchase): its value comes from the customer's events and cannot be set".to_owned()
        )]
    );
    let (status, body) = post(
        &api,
        &a,
        "/customers",
        json!({"customerId": "bob", "fields": {"purchases_90d": 1}}),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    let report = api
        .import_csv(
            &a,
            "",
            "customerId,fieldName,fieldValue\nbob,country,ES\nbob,spent,4\n",
        )
        .await;
    assert_eq!(report["state"], "failed", "{report}");
    let error = &report["errors"][0];
    assert_eq!(error["line"], 3, "{report}");
    assert_eq!(error["column"], "fieldName", "{report}");
    assert!(
        error["message"]
            .as_str()
            .unwrap()
            .contains("\"spent\" is a computed field (sum amount of purchase)"),
        "{report}"
    );
    assert!(api.get_customer(&a, "bob").await.is_none());
    // Its type follows its aggregate.
    let (status, body) = api
        .send(
            "PATCH",
            &a.path("/fields/spent"),
            Some(&a.key),
            Some(json!({"type": "string"})),
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert_error(&body, "conflict", &["computed"]);
}

#[tokio::test]
async fn definitions_are_checked_and_their_event_type_is_kept() {
    let api = Api::new();
    let a = shop(&api).await;
    let refused = [
        (
            json!({"event": "purchase", "agg": "median", "property": "amount"}),
            "number",
            "computed.agg",
            "unknown aggregate \"median\"",
        ),
        (
            json!({"event": "purchase", "agg": "sum"}),
            "number",
            "computed.property",
            "\"sum\" needs the number property",
        ),
        (
            json!({"event": "purchase", "agg": "count", "property": "amount"}),
            "number",
            "computed.property",
            "\"count\" takes no property",
        ),
        (
            json!({"event": "refund", "agg": "count"}),
            "number",
            "computed.event",
            "event type \"refund\" is not registered; registered: app_open, purchase",
        ),
        (
            json!({"event": "purchase", "agg": "max", "property": "currency"}),
            "number",
            "computed.property",
            "currency is declared as a string on purchase",
        ),
        (
            json!({"event": "purchase", "agg": "count", "within_last": "90 days"}),
            "number",
            "computed.within_last",
            "is not a duration",
        ),
        (
            json!({"event": "purchase", "agg": "last"}),
            "number",
            "type",
            "its type must be datetime (got number)",
        ),
        (
            json!({"event": "Not A Code", "agg": "count"}),
            "number",
            "computed.event",
            "",
        ),
    ];
    for (computed, ty, field, needle) in refused {
        let (status, body) = post(
            &api,
            &a,
            "/fields",
            json!({"name": "x", "type": ty, "computed": computed}),
        )
        .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{computed}: {body}");
        let d = details(&body);
        assert_eq!(d.len(), 1, "{body}");
        assert_eq!(d[0].0, field, "{body}");
        assert!(d[0].1.contains(needle), "{computed}: {body}");
    }
    let (status, body) = post(
        &api,
        &a,
        "/fields",
        json!({"name": "x", "type": "number", "computed": {"event": "purchase", "agg": "count", "extra": 1}}),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(
        api.fields(&a)
            .await
            .as_array()
            .unwrap()
            .iter()
            .all(|f| f["name"] != "x")
    );

    // A type computed fields aggregate cannot be deleted from under them.
    let (status, body) = api
        .send(
            "DELETE",
            &a.path("/event-types/app_open"),
            Some(&a.key),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert_error(&body, "conflict", &["\"last_open\""]);
    let (status, _) = api
        .send("DELETE", &a.path("/fields/last_open"), Some(&a.key), None)
        .await;
    assert_eq!(status, StatusCode::OK);
    let (status, body) = api
        .send(
            "DELETE",
            &a.path("/event-types/app_open"),
            Some(&a.key),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
}

#[tokio::test]
async fn a_segment_on_a_computed_field_reads_back_as_written_and_follows_new_events() {
    let api = Api::new();
    let a = shop(&api).await;
    let (status, body) = post(
        &api,
        &a,
        "/segments",
        json!({"name": "Buyers", "filter": "purchases_90d >= 1 and spent < 100"}),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(
        body["filter_text"], "purchases_90d >= 1 and spent < 100",
        "{body}"
    );
    let id = body["id"].as_i64().unwrap();
    let path = a.path(&format!("/segments/{id}"));
    let members = async |api: &Api| {
        let (status, body) = api.send("GET", &path, Some(&a.key), None).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        body["count"].as_u64().unwrap()
    };
    assert_eq!(members(&api).await, 0);
    ingest(
        &api,
        &a,
        json!([{"event_id": "p1", "customerId": "ana", "type": "purchase", "channel": "web",
                "properties": {"amount": 60}}]),
    )
    .await;
    assert_eq!(members(&api).await, 1);
    ingest(
        &api,
        &a,
        json!([{"event_id": "p2", "customerId": "ana", "type": "purchase", "channel": "web",
                "properties": {"amount": 60}}]),
    )
    .await;
    assert_eq!(members(&api).await, 0, "ana spent 120 now");
}

#[tokio::test]
async fn a_list_is_not_sorted_by_a_computed_field_and_says_so() {
    let api = Api::new();
    let a = shop(&api).await;
    let (status, body) = api
        .send("GET", &a.path("/customers?sort=-spent"), Some(&a.key), None)
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_error(&body, "invalid_parameter", &["\"spent\"", "computed field"]);
}
