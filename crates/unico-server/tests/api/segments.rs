//! Saved segments: create, list, get with the current count, update, delete, members,
//! export, a segment whose field was deleted, and isolation between applications.

use axum::http::StatusCode;
use serde_json::{Value, json};

use crate::filters::{count, members};
use crate::support::*;

const ADULTS_ES_TEXT: &str = r#"age >= 18 and country = "ES""#;

fn adults_es_json() -> Value {
    json!({"and": [
        {"field": "age", "op": "gte", "value": 18},
        {"field": "country", "op": "eq", "value": "ES"}
    ]})
}

/// s1 30 ES gold · s2 17 ES · s3 45 FR gold · s4 20 ES silver · s5 nothing.
async fn fixture(api: &Api) -> App {
    let app = api.create_app("Segments").await;
    api.create_field(&app, "age", "number").await;
    api.create_field(&app, "country", "string").await;
    api.create_field(&app, "tier", "string").await;
    let (status, body) = api
        .send(
            "POST",
            &app.path("/customers/batch"),
            Some(&app.key),
            Some(json!([
                {"customerId": "s1", "fields": {"age": 30, "country": "ES", "tier": "gold"}},
                {"customerId": "s2", "fields": {"age": 17, "country": "ES"}},
                {"customerId": "s3", "fields": {"age": 45, "country": "FR", "tier": "gold"}},
                {"customerId": "s4", "fields": {"age": 20, "country": "ES", "tier": "silver"}},
                {"customerId": "s5", "fields": {}},
            ])),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    app
}

async fn create(api: &Api, app: &App, name: &str, filter: Value) -> Value {
    let (status, body) = api
        .send(
            "POST",
            &app.path("/segments"),
            Some(&app.key),
            Some(json!({"name": name, "filter": filter})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    body
}

async fn get(api: &Api, app: &App, id: i64) -> (StatusCode, Value) {
    api.send(
        "GET",
        &app.path(&format!("/segments/{id}")),
        Some(&app.key),
        None,
    )
    .await
}

async fn list(api: &Api, app: &App) -> Vec<Value> {
    let (status, body) = api
        .send("GET", &app.path("/segments"), Some(&app.key), None)
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body["segments"].as_array().unwrap().clone()
}

/// Every member of a segment through `GET …/segments/{id}/customers`, following cursors.
async fn segment_members(api: &Api, app: &App, id: i64, query: &str, limit: usize) -> Vec<String> {
    let mut out = Vec::new();
    let mut cursor: Option<String> = None;
    for _ in 0..1000 {
        let mut q = format!("?limit={limit}{query}");
        if let Some(c) = &cursor {
            q.push_str(&format!("&cursor={}", enc(c)));
        }
        let (status, body) = api
            .send(
                "GET",
                &app.path(&format!("/segments/{id}/customers{q}")),
                Some(&app.key),
                None,
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        let page = body["customers"].as_array().unwrap();
        assert!(page.len() <= limit, "{body}");
        out.extend(ids(page));
        match &body["next_cursor"] {
            Value::Null => return out,
            Value::String(c) => cursor = Some(c.clone()),
            other => panic!("bad next_cursor {other}"),
        }
    }
    panic!("pagination never ended");
}

#[tokio::test]
async fn create_answers_201_with_canonical_forms_and_count() {
    let api = Api::new();
    let app = fixture(&api).await;
    let seg = create(
        &api,
        &app,
        "Adults in Spain",
        json!(r#"(age >= 18) AND country = "ES""#),
    )
    .await;
    let obj = seg.as_object().unwrap();
    let mut keys: Vec<&str> = obj.keys().map(String::as_str).collect();
    keys.sort_unstable();
    assert_eq!(
        keys,
        [
            "count",
            "created_at",
            "filter",
            "filter_text",
            "id",
            "name",
            "updated_at"
        ],
        "{seg}"
    );
    assert!(seg["id"].is_i64(), "{seg}");
    assert_eq!(seg["name"], "Adults in Spain");
    assert_eq!(seg["filter"], adults_es_json());
    assert_eq!(seg["filter_text"], ADULTS_ES_TEXT);
    assert_eq!(seg["count"], 2);
    assert!(seg["created_at"].as_str().unwrap().ends_with('Z'), "{seg}");
    assert_eq!(seg["created_at"], seg["updated_at"]);
    // A non-canonical JSON form (operator case, a number as a string, a group of one) is
    // stored canonical too.
    let seg2 = create(
        &api,
        &app,
        "Same, from JSON",
        json!({"and": [
            {"and": [{"field": "age", "op": "GTE", "value": "18"}]},
            {"field": "country", "op": "eq", "value": "ES"}
        ]}),
    )
    .await;
    assert_ne!(seg2["id"], seg["id"]);
    assert_eq!(seg2["filter"], adults_es_json());
    assert_eq!(seg2["filter_text"], ADULTS_ES_TEXT);
    assert_eq!(seg2["count"], 2);
    // The count is the one POST …/count gives.
    assert_eq!(count(&api, &app, adults_es_json()).await, 2);
}

#[tokio::test]
async fn list_and_get_carry_current_counts() {
    let api = Api::new();
    let app = fixture(&api).await;
    let adults = create(&api, &app, "Adults ES", json!(ADULTS_ES_TEXT)).await;
    let gold = create(&api, &app, "Gold", json!(r#"tier = "gold""#)).await;
    let id = adults["id"].as_i64().unwrap();
    let listed = list(&api, &app).await;
    assert_eq!(listed.len(), 2, "{listed:?}");
    let find = |segs: &[Value], id: &Value| segs.iter().find(|s| &s["id"] == id).unwrap().clone();
    assert_eq!(find(&listed, &adults["id"])["count"], 2);
    assert_eq!(find(&listed, &gold["id"])["count"], 2);
    assert_eq!(
        find(&listed, &gold["id"])["filter_text"],
        r#"tier = "gold""#
    );
    let (status, one) = get(&api, &app, id).await;
    assert_eq!(status, StatusCode::OK, "{one}");
    assert_eq!(
        one, adults,
        "GET answers what POST answered while nothing changed"
    );
    // Counts are always current: s2 turns 18, s3 loses gold.
    let (status, body) = api
        .patch_customer(&app, "s2", json!({"fields": {"age": 18}}))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, body) = api
        .patch_customer(&app, "s3", json!({"fields": {"tier": null}}))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (_, one) = get(&api, &app, id).await;
    assert_eq!(one["count"], 3, "{one}");
    let listed = list(&api, &app).await;
    assert_eq!(find(&listed, &adults["id"])["count"], 3);
    assert_eq!(find(&listed, &gold["id"])["count"], 1);
    // Another application's list is empty.
    let other = api.create_app("Other").await;
    assert!(list(&api, &other).await.is_empty());
}

#[tokio::test]
async fn put_replaces_name_and_filter() {
    let api = Api::new();
    let app = fixture(&api).await;
    let seg = create(&api, &app, "Adults ES", json!(ADULTS_ES_TEXT)).await;
    let id = seg["id"].as_i64().unwrap();
    api.wait_for_clock_past(seg["updated_at"].as_str().unwrap())
        .await;
    let path = app.path(&format!("/segments/{id}"));
    let (status, body) = api
        .send(
            "PUT",
            &path,
            Some(&app.key),
            Some(json!({"name": "Gold", "filter": {"field": "tier", "op": "eq", "value": "gold"}})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["id"], id);
    assert_eq!(body["name"], "Gold");
    assert_eq!(
        body["filter"],
        json!({"field": "tier", "op": "eq", "value": "gold"})
    );
    assert_eq!(body["filter_text"], r#"tier = "gold""#);
    assert_eq!(body["count"], 2);
    assert_eq!(body["created_at"], seg["created_at"]);
    assert!(
        body["updated_at"].as_str().unwrap() > seg["updated_at"].as_str().unwrap(),
        "{body}"
    );
    let (_, got) = get(&api, &app, id).await;
    assert_eq!(got, body);
    assert_eq!(segment_members(&api, &app, id, "", 10).await, ["s1", "s3"]);
    // A refused update changes nothing.
    for (update, code) in [
        (
            json!({"name": "X", "filter": "tier = gold"}),
            "filter_syntax",
        ),
        (
            json!({"name": "X", "filter": "teir exists"}),
            "filter_unknown_field",
        ),
        (
            json!({"name": "", "filter": "tier exists"}),
            "invalid_input",
        ),
        (json!({"name": "X"}), "invalid_json"),
        (json!({"filter": "tier exists"}), "invalid_json"),
        (
            json!({"name": "X", "filter": "tier exists", "id": 3}),
            "invalid_json",
        ),
    ] {
        let (status, reply) = api
            .send("PUT", &path, Some(&app.key), Some(update.clone()))
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{update}: {reply}");
        assert_error(&reply, code, &[]);
    }
    let (_, after) = get(&api, &app, id).await;
    assert_eq!(after, body);
}

#[tokio::test]
async fn delete_answers_204_then_404() {
    let api = Api::new();
    let app = fixture(&api).await;
    let seg = create(&api, &app, "Adults ES", json!(ADULTS_ES_TEXT)).await;
    let keep = create(&api, &app, "Gold", json!(r#"tier = "gold""#)).await;
    let id = seg["id"].as_i64().unwrap();
    let path = app.path(&format!("/segments/{id}"));
    let (status, body) = api.send("DELETE", &path, Some(&app.key), None).await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
    assert_eq!(body, Value::Null);
    let (status, body) = get(&api, &app, id).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    assert_error(&body, "not_found", &[]);
    let (status, body) = api.send("DELETE", &path, Some(&app.key), None).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    let (status, body) = api
        .send(
            "PUT",
            &path,
            Some(&app.key),
            Some(json!({"name": "Back", "filter": "age exists"})),
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    let (status, body) = api
        .send("GET", &format!("{path}/customers"), Some(&app.key), None)
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    let listed = list(&api, &app).await;
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0]["id"], keep["id"]);
    // The customers are untouched.
    assert_eq!(api.customer_ids(&app).await.len(), 5);
}

#[tokio::test]
async fn members_are_paged_like_the_list() {
    let api = Api::new();
    let app = fixture(&api).await;
    let seg = create(&api, &app, "Spain", json!(r#"country = "ES""#)).await;
    let id = seg["id"].as_i64().unwrap();
    assert_eq!(seg["count"], 3);
    for limit in [1, 2, 3, 50] {
        assert_eq!(
            segment_members(&api, &app, id, "", limit).await,
            ["s1", "s2", "s4"],
            "limit {limit}"
        );
    }
    for limit in [1, 2, 50] {
        assert_eq!(
            segment_members(&api, &app, id, "&sort=-age", limit).await,
            ["s1", "s4", "s2"],
            "limit {limit}"
        );
        assert_eq!(
            segment_members(&api, &app, id, "&sort=-customerId", limit).await,
            ["s4", "s2", "s1"],
            "limit {limit}"
        );
    }
    // The same members as the filtered list.
    assert_eq!(
        members(&api, &app, r#"country = "ES""#).await,
        ["s1", "s2", "s4"]
    );
    // Members follow writes.
    api.create_customer(&app, "s0", json!({"country": "ES"}))
        .await;
    assert_eq!(
        segment_members(&api, &app, id, "", 2).await,
        ["s0", "s1", "s2", "s4"]
    );
    // Bad parameters are 400.
    for q in ["?limit=0", "?limit=abc", "?cursor=garbage", "?sort=agee"] {
        let (status, body) = api
            .send(
                "GET",
                &app.path(&format!("/segments/{id}/customers{q}")),
                Some(&app.key),
                None,
            )
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{q}: {body}");
    }
}

#[tokio::test]
async fn export_of_a_segment_holds_exactly_its_members() {
    let api = Api::new();
    let app = fixture(&api).await;
    let seg = create(&api, &app, "Adults ES", json!(ADULTS_ES_TEXT)).await;
    let id = seg["id"].as_i64().unwrap();
    let (status, headers, text) = api
        .export_csv(&app, &app.key, &format!("?segment={id}&format=wide"))
        .await;
    assert_eq!(status, StatusCode::OK, "{text}");
    assert!(
        headers["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/csv"),
        "{headers:?}"
    );
    let lines: Vec<&str> = text.lines().collect();
    let header: Vec<&str> = lines[0].split(',').collect();
    assert_eq!(header[0], "customerId", "{text}");
    let mut expected_header = vec!["age", "country", "tier"];
    let mut got_header = header[1..].to_vec();
    got_header.sort_unstable();
    expected_header.sort_unstable();
    assert_eq!(got_header, expected_header, "{text}");
    let rows: Vec<Vec<&str>> = lines[1..].iter().map(|l| l.split(',').collect()).collect();
    let exported: Vec<&str> = rows.iter().map(|r| r[0]).collect();
    assert_eq!(exported, ["s1", "s4"], "{text}");
    let cell =
        |row: &[&str], name: &str| row[header.iter().position(|h| *h == name).unwrap()].to_owned();
    assert_eq!(cell(&rows[0], "age"), "30");
    assert_eq!(cell(&rows[0], "country"), "ES");
    assert_eq!(cell(&rows[1], "tier"), "silver");
    // The long shape holds the same customers.
    let (status, _, long) = api
        .export_csv(&app, &app.key, &format!("?segment={id}"))
        .await;
    assert_eq!(status, StatusCode::OK, "{long}");
    let mut long_ids: Vec<&str> = long
        .lines()
        .skip(1)
        .map(|l| l.split(',').next().unwrap())
        .collect();
    long_ids.dedup();
    assert_eq!(long_ids, ["s1", "s4"], "{long}");
    // The export follows the data.
    let (status, body) = api
        .patch_customer(&app, "s2", json!({"fields": {"age": 18}}))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (_, _, text) = api
        .export_csv(&app, &app.key, &format!("?segment={id}&format=wide"))
        .await;
    let exported: Vec<&str> = text
        .lines()
        .skip(1)
        .map(|l| l.split(',').next().unwrap())
        .collect();
    assert_eq!(exported, ["s1", "s2", "s4"], "{text}");
    // An unknown segment.
    for q in ["?segment=999999", "?segment=abc"] {
        let (status, _, text) = api.export_csv(&app, &app.key, q).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{q}: {text}");
    }
}

#[tokio::test]
async fn a_segment_whose_field_was_deleted_is_still_listed() {
    let api = Api::new();
    let app = fixture(&api).await;
    let gold = create(&api, &app, "Gold", json!(r#"tier = "gold""#)).await;
    let adults = create(&api, &app, "Adults ES", json!(ADULTS_ES_TEXT)).await;
    let id = gold["id"].as_i64().unwrap();
    let (status, body) = api
        .send("DELETE", &app.path("/fields/tier"), Some(&app.key), None)
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    // Listed, with its stored filter, a filter_text that says it is invalid now, and no
    // count; the other segment is unaffected.
    let listed = list(&api, &app).await;
    assert_eq!(listed.len(), 2, "{listed:?}");
    let broken = listed.iter().find(|s| s["id"] == id).unwrap();
    assert_eq!(broken["name"], "Gold");
    assert_eq!(broken["filter"], gold["filter"]);
    let text = broken["filter_text"].as_str().unwrap();
    assert!(
        text.starts_with("(invalid now:") && text.contains("tier"),
        "{broken}"
    );
    assert!(broken.get("count").is_none(), "{broken}");
    let ok = listed.iter().find(|s| s["id"] == adults["id"]).unwrap();
    assert_eq!(ok["count"], 2);
    // GET of one: 200, same shape.
    let (status, one) = get(&api, &app, id).await;
    assert_eq!(status, StatusCode::OK, "{one}");
    assert_eq!(&one, broken);
    // Members and export: the filter no longer checks.
    let (status, body) = api
        .send(
            "GET",
            &app.path(&format!("/segments/{id}/customers")),
            Some(&app.key),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_error(&body, "filter_unknown_field", &["tier"]);
    let (status, _, text) = api
        .export_csv(&app, &app.key, &format!("?segment={id}"))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{text}");
    let body: Value = serde_json::from_str(&text).unwrap();
    assert_error(&body, "filter_unknown_field", &["tier"]);
    // It can still be repaired with PUT, or deleted.
    let (status, body) = api
        .send(
            "PUT",
            &app.path(&format!("/segments/{id}")),
            Some(&app.key),
            Some(json!({"name": "Gold", "filter": "age > 40"})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["count"], 1);
    // A field of the same name created again starts empty: a segment on it counts 0.
    api.create_field(&app, "tier", "string").await;
    let again = create(&api, &app, "Gold again", json!(r#"tier = "gold""#)).await;
    assert_eq!(again["count"], 0);
}

#[tokio::test]
async fn another_applications_key_is_403_and_ids_do_not_cross_applications() {
    let api = Api::new();
    let a = fixture(&api).await;
    let b = fixture(&api).await;
    let seg = create(&api, &a, "Adults ES", json!(ADULTS_ES_TEXT)).await;
    let id = seg["id"].as_i64().unwrap();
    let one = a.path(&format!("/segments/{id}"));
    let body = json!({"name": "X", "filter": "age exists"});
    for (method, path, payload) in [
        ("GET", a.path("/segments"), None),
        ("POST", a.path("/segments"), Some(body.clone())),
        ("GET", one.clone(), None),
        ("PUT", one.clone(), Some(body.clone())),
        ("DELETE", one.clone(), None),
        ("GET", format!("{one}/customers"), None),
        (
            "POST",
            a.path("/count"),
            Some(json!({"filter": "age exists"})),
        ),
    ] {
        let (status, reply) = api.send(method, &path, Some(&b.key), payload).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{method} {path}: {reply}");
        assert_error(&reply, "forbidden", &[]);
    }
    let (status, _, text) = api.export_csv(&a, &b.key, &format!("?segment={id}")).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{text}");
    // A's segment id under B's path, with B's key: not found.
    let other = b.path(&format!("/segments/{id}"));
    for (method, path, payload) in [
        ("GET", other.clone(), None),
        ("PUT", other.clone(), Some(body.clone())),
        ("DELETE", other.clone(), None),
        ("GET", format!("{other}/customers"), None),
    ] {
        let (status, reply) = api.send(method, &path, Some(&b.key), payload).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{method} {path}: {reply}");
    }
    let (status, _, text) = api.export_csv(&b, &b.key, &format!("?segment={id}")).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{text}");
    // Nothing happened to A's segment; the admin key reaches it.
    let (status, got) = api.admin("GET", &one, None).await;
    assert_eq!(status, StatusCode::OK, "{got}");
    assert_eq!(got, seg);
    // No key: 401.
    let (status, _) = api.send("GET", &one, None, None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn unknown_segments_are_404() {
    let api = Api::new();
    let app = fixture(&api).await;
    let body = json!({"name": "X", "filter": "age exists"});
    for id in ["999999", "0", "-1"] {
        let one = app.path(&format!("/segments/{id}"));
        for (method, path, payload) in [
            ("GET", one.clone(), None),
            ("PUT", one.clone(), Some(body.clone())),
            ("DELETE", one.clone(), None),
            ("GET", format!("{one}/customers"), None),
        ] {
            let (status, reply) = api.send(method, &path, Some(&app.key), payload).await;
            assert_eq!(status, StatusCode::NOT_FOUND, "{method} {path}: {reply}");
            assert_error(&reply, "not_found", &[]);
        }
    }
}

#[tokio::test]
async fn invalid_segments_are_refused() {
    let api = Api::new();
    let app = fixture(&api).await;
    let path = app.path("/segments");
    for (payload, code) in [
        (json!({"name": "X", "filter": "age >>> 1"}), "filter_syntax"),
        (
            json!({"name": "X", "filter": "agee > 1"}),
            "filter_unknown_field",
        ),
        (
            json!({"name": "X", "filter": r#"age contains "1""#}),
            "filter_operator_mismatch",
        ),
        (
            json!({"name": "X", "filter": r#"age > "x""#}),
            "filter_invalid_value",
        ),
        (json!({"name": "X", "filter": 3}), "filter_syntax"),
        (json!({"name": "X", "filter": null}), "filter_syntax"),
        (json!({"name": "", "filter": "age exists"}), "invalid_input"),
        (
            json!({"name": "   ", "filter": "age exists"}),
            "invalid_input",
        ),
        (
            json!({"name": "a\u{7}b", "filter": "age exists"}),
            "invalid_input",
        ),
        (
            json!({"name": "x".repeat(201), "filter": "age exists"}),
            "invalid_input",
        ),
        (json!({"name": "X"}), "invalid_json"),
        (json!({"filter": "age exists"}), "invalid_json"),
        (json!({"name": 3, "filter": "age exists"}), "invalid_json"),
        (
            json!({"name": "X", "filter": "age exists", "count": 3}),
            "invalid_json",
        ),
    ] {
        let (status, reply) = api
            .send("POST", &path, Some(&app.key), Some(payload.clone()))
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{payload}: {reply}");
        assert_error(&reply, code, &[]);
    }
    let (status, reply) = api
        .send_raw(
            "POST",
            &path,
            Some(&app.key),
            Some("text/plain"),
            r#"{"name": "X", "filter": "age exists"}"#,
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{reply}");
    assert_error(&reply, "invalid_content_type", &[]);
    // 200 characters is fine; nothing refused was stored.
    create(&api, &app, &"é".repeat(200), json!("age exists")).await;
    assert_eq!(list(&api, &app).await.len(), 1);
}

/// SPEC §4: the body is `{"name", "filter"}`; a JSON array is not that object.
#[tokio::test]
async fn segment_body_that_is_an_array_is_400() {
    let api = Api::new();
    let app = fixture(&api).await;
    let (status, reply) = api
        .send(
            "POST",
            &app.path("/segments"),
            Some(&app.key),
            Some(json!(["X", "age exists"])),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{reply}");
    assert_error(&reply, "invalid_input", &["expected an object"]);
    assert!(list(&api, &app).await.is_empty());
}

/// Segment names are unique per application without case: 409 on create and on rename,
/// while another application may use the name and a segment may change its own case.
#[tokio::test]
async fn segment_names_are_unique_per_application_without_case() {
    let api = Api::new();
    let a = api.create_app("A").await;
    let b = api.create_app("B").await;
    for app in [&a, &b] {
        api.create_field(app, "age", "number").await;
    }
    let create = |app: &App, name: &str| {
        let body = json!({"name": name, "filter": "age > 1"});
        let path = app.path("/segments");
        let key = app.key.clone();
        let api = &api;
        async move { api.send("POST", &path, Some(&key), Some(body)).await }
    };
    let (status, vips) = create(&a, "VIPs").await;
    assert_eq!(status, StatusCode::CREATED, "{vips}");
    let (status, body) = create(&a, "vips").await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert_error(&body, "conflict", &["\"VIPs\"", "exists already"]);
    let (status, body) = create(&b, "vips").await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let (status, other) = create(&a, "Lapsed").await;
    assert_eq!(status, StatusCode::CREATED, "{other}");
    let rename = |id: i64, name: &str| {
        let body = json!({"name": name, "filter": "age > 1"});
        let path = a.path(&format!("/segments/{id}"));
        let key = a.key.clone();
        let api = &api;
        async move { api.send("PUT", &path, Some(&key), Some(body)).await }
    };
    let (status, body) = rename(other["id"].as_i64().unwrap(), "VIPS").await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    let (status, body) = rename(vips["id"].as_i64().unwrap(), "VIPS").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["name"], "VIPS");
}
