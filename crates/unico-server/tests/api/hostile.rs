//! Hostile and malformed requests: every one gets a JSON error, none crashes the server.

use axum::body::Body;
use axum::http::{Request, StatusCode};
use serde_json::json;

use crate::support::*;

const JSON: Option<&str> = Some("application/json");

async fn assert_still_healthy(api: &Api) {
    let (status, body) = api.send("GET", "/health", None, None).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["writer"]["alive"], true, "{body}");
}

#[tokio::test]
async fn malformed_json_is_400_with_line_and_column() {
    let api = Api::new();
    let a = api.create_app("A").await;
    let (status, body) = api
        .send_raw(
            "POST",
            &a.path("/customers"),
            Some(&a.key),
            JSON,
            "{\n  \"customerId\": \"ana\",\n  \"fields\": {,}\n}",
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_error(&body, "invalid_json", &["line 3", "column"]);
    for text in [
        "{",
        "",
        "nul",
        "{\"customerId\": \"ana\"} trailing",
        "{'a': 1}",
    ] {
        let (status, body) = api
            .send_raw("POST", &a.path("/customers"), Some(&a.key), JSON, text)
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{text:?}: {body}");
        assert_error(&body, "invalid_json", &["line", "column"]);
    }
    assert!(api.customer_ids(&a).await.is_empty());
}

#[tokio::test]
async fn wrong_content_type_is_400_invalid_content_type() {
    let api = Api::new();
    let a = api.create_app("A").await;
    let body = r#"{"customerId": "ana"}"#;
    for ct in [
        "text/plain",
        "application/x-www-form-urlencoded",
        "text/csv",
        "application/jsonp",
        "multipart/form-data; boundary=x",
    ] {
        let (status, reply) = api
            .send_raw("POST", &a.path("/customers"), Some(&a.key), Some(ct), body)
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{ct}: {reply}");
        assert_error(&reply, "invalid_content_type", &["application/json", ct]);
    }
    assert!(api.customer_ids(&a).await.is_empty());
}

#[tokio::test]
async fn missing_content_type_is_400_invalid_content_type() {
    let api = Api::new();
    let a = api.create_app("A").await;
    let (status, reply) = api
        .send_raw(
            "POST",
            &a.path("/customers"),
            Some(&a.key),
            None,
            r#"{"customerId": "ana"}"#,
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{reply}");
    assert_error(
        &reply,
        "invalid_content_type",
        &["application/json", "none"],
    );
    let (status, reply) = api
        .send_raw("POST", "/v1/apps", Some(ADMIN), None, r#"{"name": "x"}"#)
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{reply}");
    assert_error(&reply, "invalid_content_type", &[]);
    assert!(api.customer_ids(&a).await.is_empty());
}

#[tokio::test]
async fn json_content_type_with_charset_or_suffix_is_accepted() {
    let api = Api::new();
    let a = api.create_app("A").await;
    for (ct, id) in [
        ("application/json; charset=utf-8", "one"),
        ("Application/JSON", "two"),
        ("application/vnd.api+json", "three"),
    ] {
        let body = format!(r#"{{"customerId": "{id}"}}"#);
        let (status, reply) = api
            .send_raw("POST", &a.path("/customers"), Some(&a.key), Some(ct), body)
            .await;
        assert_eq!(status, StatusCode::CREATED, "{ct}: {reply}");
    }
}

#[tokio::test]
async fn body_over_32_mib_is_413_in_our_shape() {
    let api = Api::new();
    let a = api.create_app("A").await;
    // A valid JSON array just past the limit.
    let limit = 32 * 1024 * 1024;
    let mut big = Vec::with_capacity(limit + 16);
    big.extend_from_slice(b"[\"");
    big.resize(limit, b'x');
    big.extend_from_slice(b"\"]");
    let (status, body) = api
        .send_raw("POST", &a.path("/customers/batch"), Some(&a.key), JSON, big)
        .await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{body}");
    assert_error(&body, "body_too_large", &["33554432"]);
    assert!(api.customer_ids(&a).await.is_empty());
    assert_still_healthy(&api).await;
}

#[tokio::test]
async fn oversized_body_with_content_length_is_413() {
    let api = Api::new();
    let a = api.create_app("A").await;
    let len = 32 * 1024 * 1024 + 1;
    let req = Request::post(a.path("/customers"))
        .header("authorization", format!("Bearer {}", a.key))
        .header("content-type", "application/json")
        .header("content-length", len.to_string())
        .body(Body::from(vec![b' '; len]))
        .unwrap();
    let reply = api.request(req).await;
    assert_eq!(
        reply.status,
        StatusCode::PAYLOAD_TOO_LARGE,
        "{}",
        reply.body
    );
    assert_error(&reply.body, "body_too_large", &[]);
    assert!(
        reply.headers["content-type"]
            .to_str()
            .unwrap()
            .starts_with("application/json")
    );
}

#[tokio::test]
async fn deeply_nested_json_is_400_not_a_crash() {
    let api = Api::new();
    let a = api.create_app("A").await;
    let arrays = "[".repeat(100_000);
    let (status, body) = api
        .send_raw(
            "POST",
            &a.path("/customers/batch"),
            Some(&a.key),
            JSON,
            arrays,
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_error(&body, "invalid_json", &[]);
    let objects = format!("{}1{}", "{\"a\":".repeat(100_000), "}".repeat(100_000));
    let (status, body) = api
        .send_raw("POST", &a.path("/customers"), Some(&a.key), JSON, objects)
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_error(&body, "invalid_json", &[]);
    // Nested well-formed values inside a field are a type error, not a crash.
    api.create_field(&a, "tags", "string").await;
    let nested = format!(
        r#"{{"customerId": "ana", "fields": {{"tags": {}1{}}}}}"#,
        "[".repeat(100),
        "]".repeat(100)
    );
    let (status, body) = api
        .send_raw("POST", &a.path("/customers"), Some(&a.key), JSON, nested)
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(api.customer_ids(&a).await.is_empty());
    assert_still_healthy(&api).await;
}

#[tokio::test]
async fn unknown_route_is_404_route_not_found_json() {
    let api = Api::new();
    let a = api.create_app("A").await;
    for (key, path) in [
        (None, "/nope".to_owned()),
        (Some(ADMIN), "/v2/apps".to_owned()),
        (Some(ADMIN), a.path("/segmentz")),
        (Some(ADMIN), a.path("/customers/a/b")),
        (None, "/v1".to_owned()),
    ] {
        let (status, body) = api.send("GET", &path, key, None).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{path}: {body}");
        assert_error(&body, "route_not_found", &[path.as_str()]);
    }
}

#[tokio::test]
async fn wrong_method_is_405_json() {
    let api = Api::new();
    let a = api.create_app("A").await;
    for (method, path) in [
        ("PUT", "/v1/apps".to_owned()),
        ("DELETE", "/v1/apps".to_owned()),
        ("POST", "/health".to_owned()),
        ("PUT", a.path("")),
        ("DELETE", a.path("/customers")),
        ("PUT", a.path("/customers/ana")),
        ("POST", a.path("/customers/ana")),
        ("PUT", a.path("/fields")),
        ("GET", a.path("/keys/1")),
    ] {
        let (status, body) = api.send(method, &path, Some(ADMIN), None).await;
        assert_eq!(
            status,
            StatusCode::METHOD_NOT_ALLOWED,
            "{method} {path}: {body}"
        );
        assert_error(&body, "method_not_allowed", &[method]);
    }
}

#[tokio::test]
async fn invalid_utf8_in_body_is_400() {
    let api = Api::new();
    let a = api.create_app("A").await;
    let mut bytes = b"{\"customerId\": \"an".to_vec();
    bytes.extend_from_slice(&[0xff, 0xfe, 0xc3]);
    bytes.extend_from_slice(b"a\"}");
    let (status, body) = api
        .send_raw("POST", &a.path("/customers"), Some(&a.key), JSON, bytes)
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_error(&body, "invalid_json", &["line 1"]);
    // A lone surrogate escape is not text either.
    let (status, body) = api
        .send_raw(
            "POST",
            &a.path("/customers"),
            Some(&a.key),
            JSON,
            r#"{"customerId": "a\ud800b"}"#,
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_error(&body, "invalid_json", &[]);
    assert!(api.customer_ids(&a).await.is_empty());
}

#[tokio::test]
async fn nul_bytes_are_refused_in_names_and_kept_in_string_values() {
    let api = Api::new();
    let a = api.create_app("A").await;
    api.create_field(&a, "note", "string").await;
    let (status, body) = api
        .send_raw(
            "POST",
            &a.path("/customers"),
            Some(&a.key),
            JSON,
            r#"{"customerId": "ana\u0000admin"}"#,
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_error(&body, "invalid_input", &["control character"]);
    let (status, body) = api
        .send_raw(
            "POST",
            &a.path("/fields"),
            Some(&a.key),
            JSON,
            r#"{"name": "x\u0000y", "type": "string"}"#,
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_error(&body, "invalid_input", &["control character"]);
    // Raw NUL bytes inside a JSON string are invalid JSON.
    let (status, body) = api
        .send_raw(
            "POST",
            &a.path("/customers"),
            Some(&a.key),
            JSON,
            b"{\"customerId\": \"a\x00b\"}".to_vec(),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_error(&body, "invalid_json", &[]);
    assert!(api.customer_ids(&a).await.is_empty());
    assert_eq!(api.value_count(&a, "note").await, 0);
    // In a string value, NUL is just text and round-trips.
    let c = api
        .create_customer(&a, "ana", json!({"note": "a\u{0}b\u{0}"}))
        .await;
    assert_eq!(c["fields"]["note"], "a\u{0}b\u{0}");
    assert_eq!(
        api.get_customer(&a, "ana").await.unwrap()["fields"]["note"],
        "a\u{0}b\u{0}"
    );
}

#[tokio::test]
async fn huge_numbers_and_odd_json_values_are_400_not_500() {
    let api = Api::new();
    let a = api.create_app("A").await;
    api.create_field(&a, "n", "number").await;
    api.create_field(&a, "t", "datetime").await;
    for raw in [
        r#"{"customerId": "c", "fields": {"n": 1e400}}"#,
        r#"{"customerId": "c", "fields": {"n": -1e400}}"#,
        r#"{"customerId": "c", "fields": {"t": 99999999999999999999999}}"#,
        r#"{"customerId": "c", "fields": {"t": -9223372036854775808}}"#,
        r#"{"customerId": "c", "fields": {"n": NaN}}"#,
    ] {
        let (status, body) = api
            .send_raw("POST", &a.path("/customers"), Some(&a.key), JSON, raw)
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{raw}: {body}");
        assert!(body["error"]["code"].is_string(), "{body}");
    }
    assert!(api.customer_ids(&a).await.is_empty());
}

#[tokio::test]
async fn very_long_unknown_names_are_quoted_shortly() {
    let api = Api::new();
    let a = api.create_app("A").await;
    let long = "q".repeat(100_000);
    let (status, body) = api
        .send(
            "POST",
            &a.path("/customers"),
            Some(&a.key),
            Some(json!({"customerId": "c", "fields": { long.clone(): 1 }})),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_error(&body, "invalid_input", &["unknown field"]);
    assert!(
        body.to_string().len() < 2_000,
        "error echoes the whole name"
    );
    let (status, body) = api
        .send(
            "GET",
            &a.path(&format!("/customers?sort={}", &long[..20_000])),
            Some(&a.key),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(
        body.to_string().len() < 2_000,
        "error echoes the whole sort"
    );
}

#[tokio::test]
async fn server_still_answers_health_after_every_hostile_request() {
    let api = Api::new();
    let a = api.create_app("A").await;
    let hostile: Vec<(&str, String, Option<&str>, Vec<u8>)> = vec![
        ("POST", a.path("/customers"), JSON, b"[[[[[[[[[[[[".to_vec()),
        (
            "POST",
            a.path("/customers"),
            JSON,
            "[".repeat(100_000).into_bytes(),
        ),
        ("POST", a.path("/customers/batch"), JSON, vec![0xff; 1024]),
        ("POST", a.path("/fields"), Some("text/plain"), b"x".to_vec()),
        ("PATCH", a.path("/customers/%ff%fe"), JSON, b"{}".to_vec()),
        ("GET", a.path("/customers/%"), None, Vec::new()),
        ("GET", "/v1/apps/%00".into(), None, Vec::new()),
        ("DELETE", a.path("/fields/%C0%AF"), None, Vec::new()),
        ("GET", a.path("/customers?limit=%ff"), None, Vec::new()),
        ("GET", a.path("/customers?cursor=%00%00"), None, Vec::new()),
        (
            "POST",
            a.path("/customers"),
            JSON,
            b"{\"customerId\": \"\\u0000\"}".to_vec(),
        ),
    ];
    for (method, path, ct, body) in hostile {
        let (status, reply) = api.send_raw(method, &path, Some(&a.key), ct, body).await;
        assert!(
            status.is_client_error(),
            "{method} {path} answered {status}: {reply}"
        );
        assert!(
            reply["error"]["code"].is_string(),
            "{method} {path}: {reply}"
        );
        assert_still_healthy(&api).await;
    }
    assert!(api.customer_ids(&a).await.is_empty());
    assert_eq!(api.fields(&a).await, json!([]));
}

/// Each route reads only the body it needs: a count's filter, an application's settings
/// and one customer are refused at their own size, well below a batch's 32 MiB.
#[tokio::test]
async fn each_route_accepts_the_body_size_it_needs_and_no_more() {
    let api = Api::new();
    let a = api.create_app("A").await;
    api.create_field(&a, "age", "number").await;
    let padded = |prefix: &str, suffix: &str, total: usize| {
        let mut body = prefix.as_bytes().to_vec();
        body.resize(total - suffix.len(), b' ');
        body.extend_from_slice(suffix.as_bytes());
        body
    };
    let cases: [(&str, String, &str, &str, usize); 4] = [
        (
            "POST",
            a.path("/count"),
            r#"{"filter": "age > 1""#,
            "}",
            256 * 1024,
        ),
        ("POST", "/v1/apps".into(), r#"{"name": "B""#, "}", 64 * 1024),
        (
            "POST",
            a.path("/customers"),
            r#"{"customerId": "big""#,
            "}",
            8 * 1024 * 1024,
        ),
        (
            "PATCH",
            a.path("/customers/big"),
            r#"{"fields": {"age": 2}"#,
            "}",
            8 * 1024 * 1024,
        ),
    ];
    for (method, path, prefix, suffix, limit) in cases {
        let key = if path == "/v1/apps" { ADMIN } else { &a.key };
        // At the limit the body is read and answered on its merits.
        let (status, body) = api
            .send_raw(
                method,
                &path,
                Some(key),
                JSON,
                padded(prefix, suffix, limit),
            )
            .await;
        assert!(
            status.is_success(),
            "{method} {path} at its limit: {status} {body}"
        );
        let (status, body) = api
            .send_raw(
                method,
                &path,
                Some(key),
                JSON,
                padded(prefix, suffix, limit + 1),
            )
            .await;
        assert_eq!(
            status,
            StatusCode::PAYLOAD_TOO_LARGE,
            "{method} {path}: {body}"
        );
        assert_error(&body, "body_too_large", &[&limit.to_string()]);
    }
    assert_eq!(
        api.get_customer(&a, "big").await.unwrap()["fields"]["age"],
        2
    );
    assert_still_healthy(&api).await;
}

/// A body within its size but holding more JSON values than its route could use is
/// refused while it is read, before anything is built from it.
#[tokio::test]
async fn a_body_of_too_many_values_is_refused_while_read() {
    let api = Api::new();
    let a = api.create_app("A").await;
    api.create_field(&a, "age", "number").await;
    // 100 001 numbers in a count: 200 KB, under the count's 256 KiB.
    let arrays = vec!["0"; 100_001].join(",");
    let body = format!(r#"{{"filter": [{arrays}]}}"#);
    let (status, reply) = api
        .send_raw("POST", &a.path("/count"), Some(&a.key), JSON, body)
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{reply}");
    assert_error(
        &reply,
        "limit_exceeded",
        &["100000", "JSON values", "line 1"],
    );
    // A batch: one item whose fields hold two million numbers.
    let zeros = vec!["0"; 2_000_001].join(",");
    let body = format!(r#"[{{"customerId": "z", "fields": {{"age": [{zeros}]}}}}]"#);
    let (status, reply) = api
        .send_raw(
            "POST",
            &a.path("/customers/batch"),
            Some(&a.key),
            JSON,
            body,
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{reply}");
    assert_error(&reply, "limit_exceeded", &["2000000"]);
    // Items past 10 000 are refused at the first one too many, however many follow.
    let items = vec!["{}"; 50_000].join(",");
    let (status, reply) = api
        .send_raw(
            "POST",
            &a.path("/customers/batch"),
            Some(&a.key),
            JSON,
            format!("[{items}]"),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{reply}");
    assert_error(&reply, "limit_exceeded", &["10000", "10001"]);
    assert!(api.customer_ids(&a).await.is_empty());
    assert_still_healthy(&api).await;
}

/// An object that repeats a key is refused with its position, wherever it is in the
/// body, and nothing of the request is written (the last value never silently wins).
#[tokio::test]
async fn duplicate_keys_are_refused_everywhere_with_their_position() {
    let api = Api::new();
    let a = api.create_app("A").await;
    api.create_field(&a, "age", "number").await;
    api.create_customer(&a, "ana", json!({"age": 1})).await;
    let cases: [(&str, String, &str, &str); 8] = [
        (
            "POST",
            a.path("/customers"),
            r#"{"customerId":"dup","customerId":"dup2"}"#,
            "customerId",
        ),
        (
            "PATCH",
            a.path("/customers/ana"),
            r#"{"fields":{"age":"bad","age":11}}"#,
            "age",
        ),
        (
            "PATCH",
            a.path("/customers/ana"),
            r#"{"fields":{"age":11,"age":"bad"}}"#,
            "age",
        ),
        // The same key written with an escape is the same key.
        (
            "PATCH",
            a.path("/customers/ana"),
            r#"{"fields":{"age":11,"\u0061ge":12}}"#,
            "age",
        ),
        (
            "POST",
            a.path("/customers/batch"),
            "[{\"customerId\":\"b1\"},\n {\"customerId\":\"b2\",\"fields\":{},\"fields\":{\"age\":3}}]",
            "fields",
        ),
        (
            "POST",
            a.path("/count"),
            r#"{"filter":{"field":"age","field":"customerId","op":"exists"}}"#,
            "field",
        ),
        (
            "POST",
            a.path("/count"),
            r#"{"filter":"age > 1","filter":"age > 2"}"#,
            "filter",
        ),
        (
            "POST",
            a.path("/segments"),
            r#"{"name":"s","filter":"age > 1","name":"t"}"#,
            "name",
        ),
    ];
    for (method, path, body, key) in cases {
        let (status, reply) = api.send_raw(method, &path, Some(&a.key), JSON, body).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}: {reply}");
        assert_error(
            &reply,
            "invalid_json",
            &[&format!("\"{key}\""), "twice", "line", "column"],
        );
    }
    // The batch's position points into its second line, where the repeat is.
    let (_, reply) = api
        .send_raw(
            "POST",
            &a.path("/customers/batch"),
            Some(&a.key),
            JSON,
            "[{\"customerId\":\"b1\"},\n {\"customerId\":\"b2\",\"fields\":{},\"fields\":{}}]",
        )
        .await;
    assert_error(&reply, "invalid_json", &["line 2"]);
    let (status, reply) = api
        .send_raw(
            "POST",
            "/v1/apps",
            Some(ADMIN),
            JSON,
            r#"{"name":"x","name":"y"}"#,
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{reply}");
    assert_error(&reply, "invalid_json", &["\"name\"", "twice"]);
    // Nothing was written by any of them.
    assert_eq!(api.customer_ids(&a).await, vec!["ana"]);
    assert_eq!(
        api.get_customer(&a, "ana").await.unwrap()["fields"]["age"],
        1
    );
    // Distinct keys, and equal keys in different objects, are fine.
    let (status, reply) = api
        .send_raw(
            "POST",
            &a.path("/customers/batch"),
            Some(&a.key),
            JSON,
            r#"[{"customerId":"c1","fields":{"age":1}},{"customerId":"c2","fields":{"age":2}}]"#,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{reply}");
}

/// Regression: a query parameter whose percent-decoded bytes are not UTF-8 was read with
/// U+FFFD in place of each bad byte, so `?filter=%FF` ran a filter nobody wrote. It is a 400
/// that names the parameter, on every route that takes text in its query.
#[tokio::test]
async fn invalid_utf8_in_a_query_parameter_is_400_naming_it() {
    let api = Api::new();
    let a = api.create_app("A").await;
    api.create_field(&a, "name", "string").await;
    let (status, segment) = api
        .send(
            "POST",
            &a.path("/segments"),
            Some(&a.key),
            Some(json!({"name": "all", "filter": "name exists"})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{segment}");
    let members = format!("/segments/{}/customers", segment["id"]);
    let cases = [
        ("GET", "/customers", "filter"),
        ("GET", "/customers", "sort"),
        ("GET", "/customers", "cursor"),
        ("GET", "/customers", "limit"),
        ("GET", "/export", "filter"),
        ("GET", "/export", "format"),
        ("GET", "/export", "raw"),
        ("GET", "/export", "segment"),
        ("GET", members.as_str(), "sort"),
        ("GET", members.as_str(), "cursor"),
        ("POST", "/imports", "mode"),
    ];
    for (method, path, param) in cases {
        for value in ["%FF", "name%20%3D%20%22%C3%28%22", "ok%E2%82"] {
            let uri = a.path(&format!("{path}?{param}={value}"));
            let (status, body) = api
                .send_raw(method, &uri, Some(&a.key), Some("text/csv"), "customerId\n")
                .await;
            assert_eq!(status, StatusCode::BAD_REQUEST, "{method} {uri}: {body}");
            assert_error(
                &body,
                "invalid_parameter",
                &[&format!("\"{param}\""), "UTF-8"],
            );
        }
    }
    // A parameter name that is not UTF-8 is refused too, before it could match a known one.
    let (status, body) = api
        .send("GET", &a.path("/customers?%FF=1"), Some(&a.key), None)
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_error(&body, "invalid_parameter", &["UTF-8"]);
    // U+FFFD written as its UTF-8 bytes is text like any other, and `+` is a space.
    api.create_customer(&a, "ana", json!({"name": "\u{FFFD}"}))
        .await;
    let (status, body) = api
        .send(
            "GET",
            &a.path("/customers?filter=name+%3D+%22%EF%BF%BD%22"),
            Some(&a.key),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(ids(body["customers"].as_array().unwrap()), ["ana"]);
    assert!(api.customer_ids(&a).await.len() == 1);
}

/// The longest request target (path and query) the server reads: past it, a 414 in our
/// error shape. hyper refuses targets over 65 534 bytes itself, with an empty body, so ours
/// must stay below that to be the one that answers (the socket test below checks it).
use unico_server::routes::MAX_URI_BYTES;

/// `GET …/customers?filter=age > 1` padded with spaces to a target of exactly `len` bytes.
fn long_filter_target(a: &App, len: usize) -> String {
    let mut target = a.path("/customers?filter=age+%3E+1");
    target.push_str(&"+".repeat(len - target.len()));
    assert_eq!(target.len(), len);
    target
}

#[tokio::test]
async fn a_uri_past_the_limit_is_414_in_our_shape() {
    let api = Api::new();
    let a = api.create_app("A").await;
    api.create_field(&a, "age", "number").await;
    let (status, body) = api
        .send(
            "GET",
            &long_filter_target(&a, MAX_URI_BYTES),
            Some(&a.key),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "at the limit: {body}");
    for key in [Some(a.key.as_str()), None] {
        let (status, body) = api
            .send("GET", &long_filter_target(&a, MAX_URI_BYTES + 1), key, None)
            .await;
        assert_eq!(status, StatusCode::URI_TOO_LONG, "{body}");
        assert_error(&body, "uri_too_long", &[&MAX_URI_BYTES.to_string()]);
    }
    // Any route, known or not, and the console too.
    let (status, body) = api
        .send(
            "GET",
            &format!("/{}", "x".repeat(MAX_URI_BYTES)),
            None,
            None,
        )
        .await;
    assert_eq!(status, StatusCode::URI_TOO_LONG, "{body}");
    assert_error(&body, "uri_too_long", &[]);
}

/// Sends `GET target` on a fresh connection and answers the status and the body.
async fn raw_get(addr: std::net::SocketAddr, target: &str) -> (u16, Vec<u8>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let head = format!("GET {target} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n");
    stream.write_all(head.as_bytes()).await.unwrap();
    let mut reply = Vec::new();
    stream.read_to_end(&mut reply).await.unwrap();
    let text = String::from_utf8_lossy(&reply);
    let status = text
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("not an HTTP answer: {text}"));
    let body_at = text.find("\r\n\r\n").map_or(reply.len(), |i| i + 4);
    (status, reply[body_at..].to_vec())
}

/// Regression: 414 answers had an empty body. Over a real socket, our limit answers before
/// hyper's, in our error shape.
#[tokio::test]
async fn a_uri_past_the_limit_is_414_in_our_shape_over_a_socket() {
    let api = Api::new();
    let a = api.create_app("A").await;
    let addr = api.serve().await;
    let (status, body) = raw_get(addr, &long_filter_target(&a, MAX_URI_BYTES + 1)).await;
    assert_eq!(status, 414);
    let body: serde_json::Value = serde_json::from_slice(&body)
        .unwrap_or_else(|_| panic!("not JSON: {:?}", String::from_utf8_lossy(&body)));
    assert_error(&body, "uri_too_long", &[&MAX_URI_BYTES.to_string()]);
    // Past hyper's own limit the answer is still a 414 (hyper's, which we cannot shape).
    let (status, _) = raw_get(addr, &long_filter_target(&a, 70_000)).await;
    assert_eq!(status, 414);
}

/// Readiness needs no key and says the store takes writes and the engines follow it.
#[tokio::test]
async fn ready_answers_without_a_key_while_the_store_takes_writes() {
    let api = Api::new();
    let a = api.create_app("A").await;
    api.create_customer(&a, "x", json!({})).await;
    let (status, body) = api.send("GET", "/ready", None, None).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["status"], "ready");
    assert!(body["engines_behind"].as_u64().is_some(), "{body}");
}
