//! Customers: create, read, patch, delete; value rules and customerId rules.

use axum::http::StatusCode;
use serde_json::{Value, json};

use crate::support::*;

/// An app with one field of each type: age (number), city (string), last_seen (datetime),
/// birthday (date).
async fn app_with_fields(api: &Api) -> App {
    let a = api.create_app("A").await;
    api.create_field(&a, "age", "number").await;
    api.create_field(&a, "city", "string").await;
    api.create_field(&a, "last_seen", "datetime").await;
    api.create_field(&a, "birthday", "date").await;
    a
}

async fn post_customer(api: &Api, app: &App, body: Value) -> (StatusCode, Value) {
    api.send("POST", &app.path("/customers"), Some(&app.key), Some(body))
        .await
}

/// Creating `{"customerId": "c", "fields": {field: value}}` must be refused with a 400
/// naming the field, and nothing must be written.
async fn assert_value_refused(api: &Api, app: &App, field: &str, value: Value, needles: &[&str]) {
    let (status, body) = post_customer(
        api,
        app,
        json!({"customerId": "c", "fields": { field: value.clone() }}),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{field} = {value}: {body}");
    assert_error(&body, "invalid_input", needles);
    let d = details(&body);
    assert_eq!(d.len(), 1, "{body}");
    assert_eq!(d[0].0, format!("fields.{field}"), "{body}");
    assert!(api.get_customer(app, "c").await.is_none(), "written anyway");
}

/// Creates customer `c` with one value and answers how it reads back.
async fn stored_as(api: &Api, app: &App, field: &str, value: Value) -> Value {
    let created = api
        .create_customer(app, "c", json!({ field: value.clone() }))
        .await;
    let read = api.get_customer(app, "c").await.unwrap();
    assert_eq!(created, read, "the 201 body differs from a later GET");
    let (status, _) = api
        .send("DELETE", &app.path("/customers/c"), Some(&app.key), None)
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    read["fields"].get(field).cloned().unwrap_or(Value::Null)
}

#[tokio::test]
async fn create_customer_is_201_with_the_spec_shape() {
    let api = Api::new();
    let a = app_with_fields(&api).await;
    let (status, body) = post_customer(
        &api,
        &a,
        json!({"customerId": "ana@example.com", "fields": {
            "age": 31,
            "city": "Madrid",
            "last_seen": "2024-03-05T15:22:10+01:00",
            "birthday": "1994-11-28",
        }}),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let obj = body.as_object().unwrap();
    let keys: Vec<&str> = obj.keys().map(String::as_str).collect();
    for k in ["id", "customerId", "created_at", "updated_at", "fields"] {
        assert!(keys.contains(&k), "{body}");
    }
    assert_eq!(keys.len(), 5, "{body}");
    assert!(body["id"].is_i64());
    assert_eq!(body["customerId"], "ana@example.com");
    let created = body["created_at"].as_str().unwrap();
    assert_eq!(created.len(), 24, "{created}");
    assert!(
        created.ends_with('Z') && created.as_bytes()[19] == b'.',
        "{created}"
    );
    assert_eq!(body["updated_at"], body["created_at"]);
    assert_eq!(
        body["fields"],
        json!({
            "age": 31,
            "city": "Madrid",
            "last_seen": "2024-03-05T14:22:10.000Z",
            "birthday": "1994-11-28",
        })
    );
    // 31 is written as 31, not 31.0.
    let text = serde_json::to_string(&body["fields"]["age"]).unwrap();
    assert_eq!(text, "31");
    assert_eq!(api.get_customer(&a, "ana@example.com").await.unwrap(), body);
}

#[tokio::test]
async fn absent_fields_are_omitted_and_fields_may_be_missing_or_null() {
    let api = Api::new();
    let a = app_with_fields(&api).await;
    let c = api.create_customer(&a, "one", json!({"age": 3})).await;
    assert_eq!(c["fields"], json!({"age": 3}));
    let (status, c) = post_customer(&api, &a, json!({"customerId": "two"})).await;
    assert_eq!(status, StatusCode::CREATED, "{c}");
    assert_eq!(c["fields"], json!({}));
    let (status, c) = post_customer(&api, &a, json!({"customerId": "three", "fields": null})).await;
    assert_eq!(status, StatusCode::CREATED, "{c}");
    assert_eq!(c["fields"], json!({}));
    // null and "" on create mean "no value".
    let c = api
        .create_customer(&a, "four", json!({"age": null, "city": ""}))
        .await;
    assert_eq!(c["fields"], json!({}));
}

#[tokio::test]
async fn duplicate_customer_is_409_and_keeps_the_first() {
    let api = Api::new();
    let a = app_with_fields(&api).await;
    let first = api.create_customer(&a, "ana", json!({"age": 30})).await;
    let (status, body) = post_customer(
        &api,
        &a,
        json!({"customerId": "ana", "fields": {"age": 99}}),
    )
    .await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert_error(&body, "conflict", &["ana"]);
    assert_eq!(api.get_customer(&a, "ana").await.unwrap(), first);
}

#[tokio::test]
async fn customer_ids_are_case_sensitive() {
    let api = Api::new();
    let a = app_with_fields(&api).await;
    api.create_customer(&a, "ana", json!({"age": 1})).await;
    api.create_customer(&a, "Ana", json!({"age": 2})).await;
    api.create_customer(&a, "ANA", json!({"age": 3})).await;
    assert_eq!(
        api.get_customer(&a, "Ana").await.unwrap()["fields"]["age"],
        2
    );
    assert_eq!(api.customer_ids(&a).await, ["ANA", "Ana", "ana"]);
}

#[tokio::test]
async fn unknown_field_is_400_with_did_you_mean_and_writes_nothing() {
    let api = Api::new();
    let a = app_with_fields(&api).await;
    let (status, body) = post_customer(
        &api,
        &a,
        json!({"customerId": "c", "fields": {"agee": 3, "city": "Madrid"}}),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_error(&body, "invalid_input", &["agee", "did you mean \"age\""]);
    assert_eq!(details(&body)[0].0, "fields.agee");
    assert!(api.get_customer(&a, "c").await.is_none());
    // A name with no near match says how to create it.
    let (status, body) = post_customer(
        &api,
        &a,
        json!({"customerId": "c", "fields": {"favourite_colour": "red"}}),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_error(
        &body,
        "invalid_input",
        &["unknown field", "favourite_colour"],
    );
    assert!(api.get_customer(&a, "c").await.is_none());
}

#[tokio::test]
async fn unknown_top_level_keys_are_400() {
    let api = Api::new();
    let a = app_with_fields(&api).await;
    for body in [
        json!({"customerId": "c", "id": 5}),
        json!({"customerId": "c", "created_at": "2024-01-01T00:00:00Z"}),
        json!({"customerId": "c", "age": 3}),
        json!({"customerId": "c", "fields": [1]}),
        json!({"customerId": "c", "fields": "age=3"}),
    ] {
        let (status, reply) = post_customer(&api, &a, body.clone()).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}: {reply}");
        assert_error(&reply, "invalid_input", &[]);
    }
    assert!(api.customer_ids(&a).await.is_empty());
    let (status, reply) = post_customer(&api, &a, json!(["c"])).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{reply}");
    assert_error(&reply, "invalid_input", &["expected an object"]);
}

#[tokio::test]
async fn wrong_json_types_are_400() {
    let api = Api::new();
    let a = app_with_fields(&api).await;
    assert_value_refused(&api, &a, "age", json!("thirty"), &["age", "thirty"]).await;
    assert_value_refused(&api, &a, "age", json!(true), &["age", "boolean"]).await;
    assert_value_refused(&api, &a, "age", json!([1]), &["age", "array"]).await;
    assert_value_refused(&api, &a, "age", json!({"n": 1}), &["age", "object"]).await;
    assert_value_refused(&api, &a, "city", json!(42), &["city", "number"]).await;
    assert_value_refused(&api, &a, "city", json!(false), &["city", "boolean"]).await;
    assert_value_refused(&api, &a, "city", json!(["Madrid"]), &["city", "array"]).await;
    assert_value_refused(
        &api,
        &a,
        "last_seen",
        json!(true),
        &["last_seen", "boolean"],
    )
    .await;
    assert_value_refused(
        &api,
        &a,
        "birthday",
        json!(19940101),
        &["birthday", "number"],
    )
    .await;
}

#[tokio::test]
async fn nan_and_infinity_strings_are_400() {
    let api = Api::new();
    let a = app_with_fields(&api).await;
    for text in ["NaN", "nan", "Infinity", "-Infinity", "inf", "1e999"] {
        assert_value_refused(&api, &a, "age", json!(text), &["finite"]).await;
    }
}

#[tokio::test]
async fn decimal_comma_is_400_saying_so() {
    let api = Api::new();
    let a = app_with_fields(&api).await;
    assert_value_refused(&api, &a, "age", json!("3,5"), &["decimal comma", "3.5"]).await;
    assert_value_refused(&api, &a, "age", json!("0x10"), &["0x10"]).await;
    assert_value_refused(&api, &a, "age", json!("12abc"), &["12abc"]).await;
}

#[tokio::test]
async fn numbers_are_accepted_as_json_numbers_or_numeric_strings() {
    let api = Api::new();
    let a = app_with_fields(&api).await;
    assert_eq!(stored_as(&api, &a, "age", json!("42")).await, json!(42));
    assert_eq!(stored_as(&api, &a, "age", json!(31.0)).await, json!(31));
    assert_eq!(stored_as(&api, &a, "age", json!(-3.5)).await, json!(-3.5));
    assert_eq!(stored_as(&api, &a, "age", json!("1e3")).await, json!(1000));
    assert_eq!(stored_as(&api, &a, "age", json!("-3.5")).await, json!(-3.5));
    assert_eq!(stored_as(&api, &a, "age", json!(0.1)).await, json!(0.1));
    assert_eq!(stored_as(&api, &a, "age", json!(1e300)).await, json!(1e300));
    let big = stored_as(&api, &a, "age", json!(9007199254740993_i64)).await;
    assert_eq!(big.as_f64().unwrap(), 9007199254740992.0);
}

#[tokio::test]
async fn datetimes_are_normalised_to_utc_with_milliseconds() {
    let api = Api::new();
    let a = app_with_fields(&api).await;
    for (input, out) in [
        (json!("2024-03-05T14:22:10Z"), "2024-03-05T14:22:10.000Z"),
        (
            json!("2024-03-05T15:22:10+01:00"),
            "2024-03-05T14:22:10.000Z",
        ),
        (
            json!("2024-03-05T09:22:10-05:00"),
            "2024-03-05T14:22:10.000Z",
        ),
        (
            json!("2024-03-05T14:22:10.123456Z"),
            "2024-03-05T14:22:10.123Z",
        ),
        (
            json!("2024-03-06T00:30:00+01:00"),
            "2024-03-05T23:30:00.000Z",
        ),
        (json!("1987-06-21"), "1987-06-21T00:00:00.000Z"),
        (json!(1709648530000_i64), "2024-03-05T14:22:10.000Z"),
        (json!(0), "1970-01-01T00:00:00.000Z"),
        (json!(-1), "1969-12-31T23:59:59.999Z"),
        (json!("2024-02-29T12:00:00Z"), "2024-02-29T12:00:00.000Z"),
    ] {
        assert_eq!(
            stored_as(&api, &a, "last_seen", input.clone()).await,
            json!(out),
            "{input}"
        );
    }
}

#[tokio::test]
async fn datetime_without_offset_is_400_saying_what_is_accepted() {
    let api = Api::new();
    let a = app_with_fields(&api).await;
    for text in [
        "2024-03-05T14:22:10",
        "2024-03-05T14:22:10.500",
        "2024-03-05 14:22",
    ] {
        assert_value_refused(
            &api,
            &a,
            "last_seen",
            json!(text),
            &[text, "Z", "offset", "2024-03-05T14:22:10Z"],
        )
        .await;
    }
    for text in ["yesterday", "05/03/2024", "2024", "2024-03-05T25:00:00Z"] {
        assert_value_refused(
            &api,
            &a,
            "last_seen",
            json!(text),
            &["accepted", "2024-03-05T14:22:10Z", "1987-06-21"],
        )
        .await;
    }
}

#[tokio::test]
async fn float_epoch_for_datetime_is_400() {
    let api = Api::new();
    let a = app_with_fields(&api).await;
    assert_value_refused(&api, &a, "last_seen", json!(1709648530000.5), &["integer"]).await;
    assert_value_refused(&api, &a, "last_seen", json!(1.5), &["integer"]).await;
}

#[tokio::test]
async fn epoch_outside_supported_years_is_400() {
    let api = Api::new();
    let a = app_with_fields(&api).await;
    assert_value_refused(
        &api,
        &a,
        "last_seen",
        json!(i64::MAX),
        &["outside the supported years"],
    )
    .await;
    assert_value_refused(
        &api,
        &a,
        "last_seen",
        json!("0000-01-01T00:00:00Z"),
        &["0000"],
    )
    .await;
}

#[tokio::test]
async fn impossible_calendar_dates_are_400() {
    let api = Api::new();
    let a = app_with_fields(&api).await;
    for text in ["2023-02-29", "2024-13-01", "2024-04-31", "2024-00-10"] {
        assert_value_refused(&api, &a, "birthday", json!(text), &[text, "calendar date"]).await;
        assert_value_refused(&api, &a, "last_seen", json!(text), &[text]).await;
    }
    assert_value_refused(
        &api,
        &a,
        "last_seen",
        json!("2023-02-29T10:00:00Z"),
        &["2023-02-29"],
    )
    .await;
    // 29 February of a leap year is fine.
    assert_eq!(
        stored_as(&api, &a, "birthday", json!("2024-02-29")).await,
        json!("2024-02-29")
    );
}

#[tokio::test]
async fn date_field_refuses_a_datetime() {
    let api = Api::new();
    let a = app_with_fields(&api).await;
    for text in [
        "2024-03-05T14:22:10Z",
        "2024-03-05T00:00:00+01:00",
        "1994/11/28",
    ] {
        assert_value_refused(&api, &a, "birthday", json!(text), &["YYYY-MM-DD"]).await;
    }
    assert_eq!(
        stored_as(&api, &a, "birthday", json!("1994-11-28")).await,
        json!("1994-11-28")
    );
}

#[tokio::test]
async fn string_values_hold_up_to_4096_bytes() {
    let api = Api::new();
    let a = app_with_fields(&api).await;
    let ok = "x".repeat(4096);
    assert_eq!(stored_as(&api, &a, "city", json!(ok)).await, json!(ok));
    // 2 048 two-byte characters are 4 096 bytes.
    let ok = "é".repeat(2048);
    assert_eq!(stored_as(&api, &a, "city", json!(ok)).await, json!(ok));
    assert_value_refused(&api, &a, "city", json!("x".repeat(4097)), &["4097", "4096"]).await;
    assert_value_refused(&api, &a, "city", json!("é".repeat(2049)), &["4098"]).await;
}

#[tokio::test]
async fn strings_are_stored_exactly_as_given() {
    let api = Api::new();
    let a = app_with_fields(&api).await;
    for text in [
        " Málaga ",
        "a\u{0}b",
        "line\nbreak\ttab",
        "=1+2",
        "😀 日本語",
        "\"quoted\"",
    ] {
        assert_eq!(
            stored_as(&api, &a, "city", json!(text)).await,
            json!(text),
            "{text:?}"
        );
    }
}

#[tokio::test]
async fn customer_id_must_be_a_valid_string() {
    let api = Api::new();
    let a = app_with_fields(&api).await;
    let cases: Vec<(Value, &str)> = vec![
        (json!({"fields": {"age": 3}}), "required"),
        (json!({"customerId": 42}), "string"),
        (json!({"customerId": null}), "string"),
        (json!({"customerId": ["a"]}), "string"),
        (json!({"customerId": ""}), "empty"),
        (json!({"customerId": "x".repeat(257)}), "257"),
        (json!({"customerId": "a\u{0}b"}), "control character"),
        (json!({"customerId": "a\nb"}), "control character"),
        (json!({"customerId": "a\u{1b}[31m"}), "control character"),
        (json!({"customerId": " ana"}), "white space"),
    ];
    for (body, needle) in cases {
        let (status, reply) = post_customer(&api, &a, body.clone()).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}: {reply}");
        assert_error(&reply, "invalid_input", &[needle]);
        assert_eq!(details(&reply)[0].0, "customerId", "{reply}");
    }
    assert!(api.customer_ids(&a).await.is_empty());
    // 256 characters (multi-byte too) is the limit, inclusive.
    for id in ["x".repeat(256), "ñ".repeat(256)] {
        api.create_customer(&a, &id, json!({})).await;
        assert_eq!(
            api.get_customer(&a, &id).await.unwrap()["customerId"],
            id.as_str()
        );
    }
}

#[tokio::test]
async fn odd_customer_ids_round_trip_through_percent_encoded_paths() {
    let api = Api::new();
    let a = app_with_fields(&api).await;
    let odd = [
        "a/b",
        "a?b",
        "a#b",
        "%",
        "%2F",
        "日本語",
        "ana@example.com",
        "batch",
        "a b",
        "a+b",
        "..",
        ".",
        "a;b=c&d",
    ];
    for (i, id) in odd.iter().enumerate() {
        let c = api.create_customer(&a, id, json!({"age": i})).await;
        assert_eq!(c["customerId"], *id);
    }
    for (i, id) in odd.iter().enumerate() {
        let path = a.path(&format!("/customers/{}", enc(id)));
        let (status, got) = api.send("GET", &path, Some(&a.key), None).await;
        assert_eq!(status, StatusCode::OK, "GET {id}: {got}");
        assert_eq!(got["customerId"], *id);
        assert_eq!(got["fields"]["age"], i);
        let (status, got) = api
            .send(
                "PATCH",
                &path,
                Some(&a.key),
                Some(json!({"fields": {"city": id}})),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "PATCH {id}: {got}");
        assert_eq!(got["customerId"], *id);
        assert_eq!(got["fields"]["city"], *id);
    }
    let mut sorted: Vec<String> = odd.iter().map(|s| s.to_string()).collect();
    sorted.sort();
    assert_eq!(api.customer_ids(&a).await, sorted);
    for id in odd {
        let path = a.path(&format!("/customers/{}", enc(id)));
        let (status, body) = api.send("DELETE", &path, Some(&a.key), None).await;
        assert_eq!(status, StatusCode::NO_CONTENT, "DELETE {id}: {body}");
        assert!(api.get_customer(&a, id).await.is_none(), "{id} still there");
    }
    assert!(api.customer_ids(&a).await.is_empty());
}

#[tokio::test]
async fn patch_sets_and_removes_values() {
    let api = Api::new();
    let a = app_with_fields(&api).await;
    api.create_customer(
        &a,
        "ana",
        json!({"age": 30, "city": "Madrid", "birthday": "1994-11-28"}),
    )
    .await;
    let (status, body) = api
        .patch_customer(
            &a,
            "ana",
            json!({"fields": {"age": 31, "city": null, "birthday": "", "last_seen": 0}}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        body["fields"],
        json!({"age": 31, "last_seen": "1970-01-01T00:00:00.000Z"})
    );
    assert_eq!(api.get_customer(&a, "ana").await.unwrap(), body);
    // An empty fields object changes nothing.
    let (status, same) = api.patch_customer(&a, "ana", json!({"fields": {}})).await;
    assert_eq!(status, StatusCode::OK, "{same}");
    assert_eq!(same, body);
}

#[tokio::test]
async fn patch_with_customer_id_is_409_and_changes_nothing() {
    let api = Api::new();
    let a = app_with_fields(&api).await;
    let before = api.create_customer(&a, "ana", json!({"age": 30})).await;
    let mut bodies = vec![
        json!({"customerId": "bob", "fields": {"age": 99}}),
        json!({"customerId": "ana", "fields": {"age": 99}}),
        json!({"id": 12345, "fields": {"age": 99}}),
        json!({"fields": {"age": 99}, "created_at": "2000-01-01T00:00:00Z"}),
        json!({"updated_at": "2000-01-01T00:00:00Z"}),
    ];
    for body in bodies.drain(..) {
        let (status, reply) = api.patch_customer(&a, "ana", body.clone()).await;
        assert_eq!(status, StatusCode::CONFLICT, "{body}: {reply}");
        assert_error(&reply, "immutable", &["cannot be changed"]);
    }
    assert_eq!(api.get_customer(&a, "ana").await.unwrap(), before);
    assert!(api.get_customer(&a, "bob").await.is_none());
}

#[tokio::test]
async fn patch_with_immutable_key_inside_fields_is_refused() {
    let api = Api::new();
    let a = app_with_fields(&api).await;
    let before = api.create_customer(&a, "ana", json!({"age": 30})).await;
    for key in ["id", "customerId", "created_at", "updated_at"] {
        let (status, reply) = api
            .patch_customer(&a, "ana", json!({"fields": { key: "x", "age": 1 }}))
            .await;
        assert!(
            status == StatusCode::BAD_REQUEST || status == StatusCode::CONFLICT,
            "{key}: {status} {reply}"
        );
        assert!(
            reply["error"]["message"].as_str().unwrap().contains(key),
            "{reply}"
        );
    }
    assert_eq!(api.get_customer(&a, "ana").await.unwrap(), before);
}

#[tokio::test]
async fn patch_unknown_key_or_missing_fields_is_400() {
    let api = Api::new();
    let a = app_with_fields(&api).await;
    let before = api.create_customer(&a, "ana", json!({"age": 30})).await;
    let (status, body) = api
        .patch_customer(&a, "ana", json!({"fields": {"age": 1}, "age": 2}))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_error(&body, "invalid_input", &["\"age\" is not a known key"]);
    for body in [
        json!({}),
        json!({"fields": null}),
        json!({"fields": [1]}),
        json!([]),
    ] {
        let (status, reply) = api.patch_customer(&a, "ana", body.clone()).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}: {reply}");
        assert_error(&reply, "invalid_input", &[]);
    }
    let (status, body) = api
        .patch_customer(&a, "ana", json!({"fields": {"agee": 2}}))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_error(&body, "invalid_input", &["did you mean \"age\""]);
    assert_eq!(api.get_customer(&a, "ana").await.unwrap(), before);
}

#[tokio::test]
async fn patch_of_missing_customer_is_404_and_creates_nothing() {
    let api = Api::new();
    let a = app_with_fields(&api).await;
    let (status, body) = api
        .patch_customer(&a, "ghost", json!({"fields": {"age": 1}}))
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    assert_error(&body, "not_found", &[]);
    assert!(api.get_customer(&a, "ghost").await.is_none());
    assert!(api.customer_ids(&a).await.is_empty());
    assert_eq!(api.value_count(&a, "age").await, 0);
}

#[tokio::test]
async fn patch_with_several_bad_fields_lists_each_and_writes_nothing() {
    let api = Api::new();
    let a = app_with_fields(&api).await;
    let before = api
        .create_customer(&a, "ana", json!({"age": 30, "city": "Madrid"}))
        .await;
    let (status, body) = api
        .patch_customer(
            &a,
            "ana",
            json!({"fields": {
                "city": "Lugo",
                "age": "old",
                "last_seen": "2024-03-05T14:22:10",
                "birthday": "2023-02-29",
                "nope": 1,
            }}),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_error(&body, "invalid_input", &["more problems"]);
    let mut fields: Vec<String> = details(&body).into_iter().map(|(f, _)| f).collect();
    fields.sort();
    assert_eq!(
        fields,
        [
            "fields.age",
            "fields.birthday",
            "fields.last_seen",
            "fields.nope"
        ],
        "{body}"
    );
    for (field, message) in details(&body) {
        let name = field.trim_start_matches("fields.");
        assert!(message.contains(name), "{field}: {message}");
    }
    // Even the valid city was not written.
    assert_eq!(api.get_customer(&a, "ana").await.unwrap(), before);
}

#[tokio::test]
async fn updated_at_moves_on_change_and_not_on_a_no_op_patch() {
    let api = Api::new();
    let a = app_with_fields(&api).await;
    let created = api.create_customer(&a, "ana", json!({"age": 30})).await;
    let t0 = created["updated_at"].as_str().unwrap().to_owned();

    // No-op PATCHes once the clock has moved on: updated_at stays.
    api.wait_for_clock_past(&t0).await;
    for fields in [
        json!({"age": 30}),
        json!({"age": "30"}),
        json!({"city": null}),
        json!({}),
    ] {
        let (status, body) = api
            .patch_customer(&a, "ana", json!({ "fields": fields }))
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(
            body["updated_at"],
            t0.as_str(),
            "no-op {fields} moved updated_at"
        );
    }
    assert_eq!(
        api.get_customer(&a, "ana").await.unwrap()["updated_at"],
        t0.as_str()
    );

    // A real change moves it, and created_at stays.
    let (status, body) = api
        .patch_customer(&a, "ana", json!({"fields": {"age": 31}}))
        .await;
    assert_eq!(status, StatusCode::OK);
    let t1 = body["updated_at"].as_str().unwrap().to_owned();
    assert!(t1.as_str() > t0.as_str(), "{t1} <= {t0}");
    assert_eq!(body["created_at"], created["created_at"]);
    assert_eq!(body["id"], created["id"]);

    // Removing a value is a change too.
    api.wait_for_clock_past(&t1).await;
    let (_, body) = api
        .patch_customer(&a, "ana", json!({"fields": {"age": null}}))
        .await;
    assert!(body["updated_at"].as_str().unwrap() > t1.as_str(), "{body}");
}

#[tokio::test]
async fn delete_customer_is_204_then_404() {
    let api = Api::new();
    let a = app_with_fields(&api).await;
    let first = api.create_customer(&a, "ana", json!({"age": 30})).await;
    let (status, body) = api
        .send("DELETE", &a.path("/customers/ana"), Some(&a.key), None)
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert_eq!(body, Value::Null);
    assert!(api.get_customer(&a, "ana").await.is_none());
    let (status, body) = api
        .send("DELETE", &a.path("/customers/ana"), Some(&a.key), None)
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    assert_error(&body, "not_found", &[]);
    assert!(api.customer_ids(&a).await.is_empty());
    // The customerId is free again; the new customer starts empty.
    let again = api.create_customer(&a, "ana", json!({})).await;
    assert_eq!(again["fields"], json!({}));
    assert_ne!(again["id"], first["id"]);
}

#[tokio::test]
async fn get_unknown_or_invalid_customer_id_is_404() {
    let api = Api::new();
    let a = app_with_fields(&api).await;
    for raw in ["ghost", "%20lead", "a%00b", &"x".repeat(300)] {
        let (status, body) = api
            .send(
                "GET",
                &a.path(&format!("/customers/{raw}")),
                Some(&a.key),
                None,
            )
            .await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{raw}: {body}");
        assert_error(&body, "not_found", &[]);
    }
}

#[tokio::test]
async fn customer_ids_are_compared_byte_for_byte_without_unicode_normalisation() {
    let api = Api::new();
    let a = app_with_fields(&api).await;
    let nfc = "Jos\u{e9}";
    let nfd = "Jose\u{301}";
    api.create_customer(&a, nfc, json!({"age": 1})).await;
    api.create_customer(&a, nfd, json!({"age": 2})).await;
    assert_eq!(api.get_customer(&a, nfc).await.unwrap()["fields"]["age"], 1);
    assert_eq!(api.get_customer(&a, nfd).await.unwrap()["fields"]["age"], 2);
    assert_eq!(api.customer_ids(&a).await.len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_creates_of_one_customer_id_give_one_201_and_409s() {
    let api = std::sync::Arc::new(Api::new());
    let a = app_with_fields(&api).await;
    let mut tasks = Vec::new();
    for i in 0..8 {
        let api = api.clone();
        let a = a.clone();
        tasks.push(tokio::spawn(async move {
            api.send(
                "POST",
                &a.path("/customers"),
                Some(&a.key),
                Some(json!({"customerId": "ana", "fields": {"age": i}})),
            )
            .await
        }));
    }
    let mut created = 0;
    for task in tasks {
        let (status, body) = task.await.unwrap();
        match status {
            StatusCode::CREATED => created += 1,
            StatusCode::CONFLICT => assert_error(&body, "conflict", &[]),
            other => panic!("concurrent create answered {other}: {body}"),
        }
    }
    assert_eq!(created, 1);
    assert_eq!(api.customer_ids(&a).await, ["ana"]);
    assert_eq!(api.value_count(&a, "age").await, 1);
}
