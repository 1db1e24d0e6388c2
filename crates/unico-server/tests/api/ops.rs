//! Operations: loud invariants (a failure is an error, never a wrong answer) and `/health`.

use axum::http::StatusCode;
use serde_json::json;
use unico_core::AppId;

use crate::filters::{count, count_reply};
use crate::support::*;

/// An application with `n` customers aged 0..n.
async fn app_with_customers(api: &Api, n: u64) -> App {
    let app = api.create_app("Ops").await;
    api.create_field(&app, "age", "number").await;
    for i in 0..n {
        api.create_customer(&app, &format!("c{i}"), json!({ "age": i }))
            .await;
    }
    app
}

#[tokio::test]
async fn health_reports_the_writer_the_engines_and_the_disk() {
    let api = Api::new();
    let app = app_with_customers(&api, 3).await;
    assert_eq!(count(&api, &app, "age >= 1").await, 2);
    let (status, body) = api.send("GET", "/health", None, None).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["status"], "ok", "{body}");
    assert_eq!(body["writer"]["alive"], true, "{body}");
    assert_eq!(body["engines"]["behind"], 0, "{body}");
    assert_eq!(body["engines"]["loaded"], 1, "{body}");
    assert_eq!(body["engines"]["failures"], 0, "{body}");
    assert!(body["engines"]["head"].as_u64().unwrap() > 0, "{body}");
    assert!(body["disk"]["free_bytes"].as_u64().unwrap() > 0, "{body}");
    assert!(
        body["disk"]["total_bytes"].as_u64() >= body["disk"]["free_bytes"].as_u64(),
        "{body}"
    );
}

/// A writer that died (a panic in a write) must not leave `/health` green: it answers 503
/// naming the writer, `/ready` takes the server out of the load balancer, and writes are
/// refused with 503 rather than hang or pretend.
#[tokio::test]
async fn a_dead_writer_turns_health_red_and_writes_fail_loudly() {
    let api = Api::new();
    let app = app_with_customers(&api, 1).await;
    api.sqlite.inject_writer_panic_for_tests();
    let (status, body) = api.send("GET", "/health", None, None).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert_error(&body, "unavailable", &["writer stopped"]);
    let details = body["error"]["details"].as_array().unwrap();
    let fields: Vec<&str> = details
        .iter()
        .map(|d| d["field"].as_str().unwrap())
        .collect();
    assert_eq!(fields, ["writer", "engines", "disk"], "{body}");
    let (status, body) = api.send("GET", "/ready", None, None).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    let (status, body) = api
        .send(
            "POST",
            &app.path("/customers"),
            Some(&app.key),
            Some(json!({"customerId": "late"})),
        )
        .await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert_error(&body, "unavailable", &["writer"]);
}

/// A panic while the engines' registry was held (a bug) poisons its lock. The question
/// that finds it is answered 503 `unavailable` (never a count from indexes that may have
/// missed changes), the engines are rebuilt, and the next question counts exactly again,
/// including a write made after the failure.
#[tokio::test]
async fn a_poisoned_engine_registry_answers_503_and_is_rebuilt() {
    let api = Api::new();
    let app = app_with_customers(&api, 5).await;
    assert_eq!(count(&api, &app, "age >= 2").await, 3);
    api.state.engines.inject_panic_holding_registry_for_tests();
    let (status, body) = count_reply(&api, &app, json!("age >= 2")).await;
    // The follower thread takes the registry's lock too (it wakes every 200 ms): if it
    // found the poison first, it already dropped and rebuilt the indexes, and the question
    // waits for the rebuilt one. Either way the answer is never a number from before.
    if status == StatusCode::OK {
        assert_eq!(body["count"], 3, "{body}");
    } else {
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
        assert_error(&body, "unavailable", &["rebuilt"]);
    }
    api.create_customer(&app, "c9", json!({ "age": 9 })).await;
    assert_eq!(count(&api, &app, "age >= 2").await, 4);
    let (_, health) = api.send("GET", "/health", None, None).await;
    assert_eq!(health["engines"]["failures"], 1, "{health}");
    assert_eq!(health["engines"]["loaded"], 1, "{health}");
}

/// An index left broken by a panic half-way through a change is never answered from: the
/// question is 503, the index is rebuilt, and the next count is exact.
#[tokio::test]
async fn a_broken_engine_is_never_answered_from() {
    let api = Api::new();
    let app = app_with_customers(&api, 4).await;
    assert_eq!(count(&api, &app, "age < 3").await, 3);
    api.state
        .engines
        .inject_broken_index_for_tests(AppId(app.id));
    let (status, body) = count_reply(&api, &app, json!("age < 3")).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert_error(&body, "unavailable", &["rebuilt"]);
    let (status, list) = api
        .send(
            "GET",
            &app.path("/customers?filter=age+%3C+3"),
            Some(&app.key),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{list}");
    assert_eq!(count(&api, &app, "age < 3").await, 3);
}

/// A request past its time-out is answered 503 `unavailable` in the error shape; an upload
/// is not cut by it, and health checks are never bounded.
#[tokio::test]
async fn a_request_past_its_time_out_is_503_but_uploads_are_not_cut() {
    use std::time::Duration;
    use unico_server::limits::RequestLimits;
    let api = Api::configured(|s| {
        s.with_request_limits(RequestLimits::new(
            8,
            8,
            Duration::ZERO,
            Duration::from_secs(1),
        ))
    });
    // Creating an application reaches the store on a blocking thread: never done at once.
    let (status, body) = api
        .admin("POST", "/v1/apps", Some(json!({"name": "Slow"})))
        .await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert_error(&body, "unavailable", &["longer than 0 s"]);
    let (status, body) = api.send("GET", "/health", None, None).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    // The application was created all the same (the time-out stops the answer, not the
    // write): an upload into it is not cut.
    let app_id = loop {
        let (_, apps) = api.admin("GET", "/v1/apps", None).await;
        if let Some(app) = apps["apps"].as_array().and_then(|a| a.first()) {
            break app["id"].as_i64().unwrap();
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    let (status, body) = api
        .send_raw(
            "POST",
            &format!("/v1/apps/{app_id}/imports"),
            Some(ADMIN),
            Some("text/csv"),
            "customerId\nana\n",
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
}

/// Past the most requests at once, a request that waited its time for a place is 503 with
/// `Retry-After`; probes still answer.
#[tokio::test]
async fn a_server_at_its_most_requests_answers_503_and_probes_still_answer() {
    use std::time::Duration;
    use unico_server::limits::RequestLimits;
    let api = Api::configured(|s| {
        s.with_request_limits(RequestLimits::new(
            0,
            1,
            Duration::from_secs(30),
            Duration::from_millis(20),
        ))
    });
    let reply = api
        .request(
            axum::http::Request::builder()
                .uri("/v1/apps")
                .header("authorization", format!("Bearer {ADMIN}"))
                .body(axum::body::Body::empty())
                .unwrap(),
        )
        .await;
    assert_eq!(
        reply.status,
        StatusCode::SERVICE_UNAVAILABLE,
        "{}",
        reply.body
    );
    assert_error(&reply.body, "unavailable", &["most requests at once"]);
    assert_eq!(reply.headers["retry-after"], "1");
    for probe in ["/health", "/ready", "/openapi.json"] {
        let (status, body) = api.send("GET", probe, None, None).await;
        assert_eq!(status, StatusCode::OK, "{probe}: {body}");
    }
}

/// Imports are bounded per application (429 with `Retry-After`) and in total (503), from
/// the upload's first byte to the import's end; a freed place is taken again.
#[tokio::test]
async fn concurrent_imports_are_bounded_per_application_and_in_total() {
    use unico_server::limits::ImportSlots;
    let api = Api::configured(|s| s.with_import_slots(ImportSlots::new(1, 2)));
    let a = api.create_app("A").await;
    let b = api.create_app("B").await;
    let c = api.create_app("C").await;
    let upload = |app: &App| {
        let path = app.path("/imports");
        let key = app.key.clone();
        let api = &api;
        async move {
            api.send_raw(
                "POST",
                &path,
                Some(&key),
                Some("text/csv"),
                "customerId\nana\n",
            )
            .await
        }
    };
    let held = api.state.import_slots.reserve(AppId(a.id)).unwrap();
    let (status, body) = upload(&a).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "{body}");
    assert_error(&body, "too_many_requests", &["1 imports running"]);
    let held_b = api.state.import_slots.reserve(AppId(b.id)).unwrap();
    let (status, body) = upload(&c).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert_error(&body, "unavailable", &["2 imports"]);
    drop((held, held_b));
    let (status, body) = upload(&a).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    // The place is freed when the import ends.
    let id = body["id"].as_i64().unwrap();
    loop {
        let (_, import) = api
            .send(
                "GET",
                &a.path(&format!("/imports/{id}")),
                Some(&a.key),
                None,
            )
            .await;
        if import["state"] != "running" {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    for _ in 0..200 {
        if api.state.import_slots.running() == 0 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    assert_eq!(api.state.import_slots.running(), 0);
    assert_eq!(api.state.import_slots.ended(), 3);
}

/// `GET /metrics` with the admin key.
fn metrics_request() -> axum::http::Request<axum::body::Body> {
    axum::http::Request::builder()
        .uri("/metrics")
        .header("authorization", format!("Bearer {ADMIN}"))
        .body(axum::body::Body::empty())
        .unwrap()
}

/// The value of the sample `name{labels}` in a Prometheus text exposition.
fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|line| line.strip_prefix(series)?.strip_prefix(' '))
        .map(|v| v.parse().unwrap())
}

/// An NDJSON backfill through the API reaches the loaded engine as the tables it prepared
/// while it wrote (`unico_engine_prepared_imports`), into an engine holding no events and
/// then into one holding some, and the counts after each are those of the events stored.
#[tokio::test]
async fn an_events_import_through_the_api_hands_the_engine_its_prepared_tables() {
    let api = Api::new();
    let a = crate::events::shop(&api).await;
    let count = |filter: &'static str| crate::filters::count(&api, &a, filter);
    // The engine is loaded by the first question.
    assert_eq!(count("did purchase").await, 0);
    let line = |key: &str, customer: &str, kind: &str, amount: u32| {
        format!(
            r#"{{"event_id":"{key}","customerId":"{customer}","type":"{kind}","channel":"web","timestamp":"2026-10-01T12:00:00Z","properties":{{"amount":{amount},"currency":"EUR"}}}}"#
        )
    };
    let first: Vec<String> = (0..60)
        .map(|i| line(&format!("a{i}"), &format!("c{}", i % 20), "purchase", i))
        .chain([line("a0", "c0", "purchase", 999)])
        .collect();
    let report = crate::events::import_events(&api, &a, "", &first.join("\n")).await;
    assert_eq!(report["state"], "succeeded", "{report}");
    assert_eq!(
        (
            report["events_stored"].clone(),
            report["duplicates"].clone()
        ),
        (json!(60), json!(1))
    );
    assert_eq!(count("did purchase at_least 3 times").await, 20);
    assert_eq!(count("did purchase where amount >= 40").await, 20);
    assert_eq!(count("did purchase where amount = 999").await, 0);
    let prepared = |text: &str| {
        sample(
            text,
            &format!("unico_engine_prepared_imports{{app=\"{}\"}}", a.id),
        )
    };
    let metrics = || async {
        let (status, _, bytes) = api.request_bytes(metrics_request()).await;
        assert_eq!(status, StatusCode::OK);
        String::from_utf8(bytes).unwrap()
    };
    assert_eq!(prepared(&metrics().await), Some(1.0));
    let second: Vec<String> = (0..30)
        .map(|i| line(&format!("b{i}"), &format!("d{i}"), "email_open", i))
        .collect();
    let report = crate::events::import_events(&api, &a, "", &second.join("\n")).await;
    assert_eq!(report["events_stored"], 30, "{report}");
    assert_eq!(count("did email_open").await, 30);
    assert_eq!(count("did purchase at_least 3 times").await, 20);
    assert_eq!(prepared(&metrics().await), Some(2.0));
}

/// `/metrics` answers the Prometheus text format with the admin key only, and counts the
/// requests made before it by route template and status, with their latencies, beside
/// the writer, imports and engines.
#[tokio::test]
async fn metrics_count_requests_by_route_and_status() {
    let api = Api::new();
    let app = app_with_customers(&api, 3).await;
    assert_eq!(count(&api, &app, "age >= 1").await, 2);
    assert_eq!(count(&api, &app, "age >= 2").await, 1);
    let (status, _) = count_reply(&api, &app, json!("age >")).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (status, body) = api.send("GET", "/metrics", None, None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    let (status, body) = api.send("GET", "/metrics", Some(&app.key), None).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    assert_error(&body, "forbidden", &["admin key"]);
    let (status, headers, bytes) = api.request_bytes(metrics_request()).await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        headers["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/plain; version=0.0.4")
    );
    let text = String::from_utf8(bytes).unwrap();
    let counted = |status: u16| {
        sample(
            &text,
            &format!(
                "unico_http_requests_total{{method=\"POST\",route=\"/v1/apps/{{app}}/count\",status=\"{status}\"}}"
            ),
        )
    };
    assert_eq!(counted(200), Some(2.0), "{text}");
    assert_eq!(counted(400), Some(1.0), "{text}");
    let route = "method=\"POST\",route=\"/v1/apps/{app}/count\"";
    assert_eq!(
        sample(
            &text,
            &format!("unico_http_request_duration_seconds_count{{{route}}}")
        ),
        Some(3.0),
        "{text}"
    );
    assert_eq!(
        sample(
            &text,
            &format!("unico_http_request_duration_seconds_bucket{{{route},le=\"+Inf\"}}")
        ),
        Some(3.0),
        "{text}"
    );
    // The 401 and 403 of /metrics itself were counted too.
    assert_eq!(
        sample(
            &text,
            "unico_http_requests_total{method=\"GET\",route=\"/metrics\",status=\"403\"}"
        ),
        Some(1.0),
        "{text}"
    );
    assert_eq!(sample(&text, "unico_writer_up"), Some(1.0), "{text}");
    assert_eq!(sample(&text, "unico_writer_queue_bound"), Some(512.0));
    let commits = sample(&text, "unico_writer_commit_duration_seconds_count").unwrap();
    assert!(commits >= 5.0, "an app, a field, three customers: {text}");
    assert_eq!(sample(&text, "unico_imports_running"), Some(0.0));
    assert_eq!(
        sample(
            &text,
            &format!("unico_engine_customers{{app=\"{}\"}}", app.id)
        ),
        Some(3.0),
        "{text}"
    );
    assert!(sample(&text, &format!("unico_engine_bytes{{app=\"{}\"}}", app.id)).unwrap() > 0.0);
    // Every line is a comment or a sample with a number.
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        let value = line.rsplit(' ').next().unwrap();
        assert!(value.parse::<f64>().is_ok(), "{line}");
    }
}

/// An upload is refused before its spool fills the disk: when the disk's free space is
/// under the reserve (here a reserve larger than any disk stands for a full one), CSV and
/// NDJSON uploads answer 507 `insufficient_storage`, nothing is spooled, and the import's
/// record says why. With room, the same upload goes through.
#[tokio::test]
async fn uploads_are_refused_before_the_spool_fills_the_disk() {
    let api = Api::configured(|s| s.with_spool_reserve(u64::MAX / 2));
    let app = api.create_app("Full disk").await;
    let (status, body) = api
        .send_raw(
            "POST",
            &app.path("/imports"),
            Some(&app.key),
            Some("text/csv"),
            "customerId\nana\n",
        )
        .await;
    assert_eq!(status, StatusCode::INSUFFICIENT_STORAGE, "{body}");
    assert_error(
        &body,
        "insufficient_storage",
        &["free", "nothing was written"],
    );
    let (status, body) = api
        .send_raw(
            "POST",
            &app.path("/events/imports"),
            Some(&app.key),
            Some("application/x-ndjson"),
            "{}\n",
        )
        .await;
    assert_eq!(status, StatusCode::INSUFFICIENT_STORAGE, "{body}");
    let spool = api.state.spool_dir.clone();
    assert_eq!(
        std::fs::read_dir(&spool).unwrap().count(),
        0,
        "nothing spooled"
    );
    let (_, list) = api
        .send("GET", &app.path("/imports"), Some(&app.key), None)
        .await;
    let first = &list["imports"][0];
    assert_eq!(first["state"], "failed", "{list}");
    assert!(
        first["message"].as_str().unwrap().contains("free"),
        "{list}"
    );

    let roomy = Api::new();
    let app = roomy.create_app("Room").await;
    let (status, body) = roomy
        .send_raw(
            "POST",
            &app.path("/imports"),
            Some(&app.key),
            Some("text/csv"),
            "customerId\nana\n",
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
}
