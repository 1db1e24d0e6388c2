//! Two `unico serve` processes on one PostgreSQL database agree: what one writes, the
//! other counts (within the documented bound), imports started on one are seen on the
//! other, a key revoked on one stops working on the other, a console session started on one
//! is signed in on the other (and signed out on both), and when the database goes away both
//! answer 503 rather than fail.
//!
//! Needs the PostgreSQL server that `.ci/run` makes sure is running (127.0.0.1:5432, user
//! `postgres`, trust authentication; `UNICO_TEST_POSTGRES` names another administrative
//! URL). Each run makes a database of its own and drops it.
#![allow(clippy::unwrap_used)]

mod support;

use std::time::{Duration, Instant};

use serde_json::{Value, json};
use support::{ADMIN_KEY, Server, agent, call};
use unico_store::postgres::testing::TestDatabase;

/// How soon a write through one server is counted by the other (documented in
/// docs/scale-out.md): the other learns of the commit by a notification.
const BOUND: Duration = Duration::from_secs(1);

fn count(base: &str, app: i64, key: &str, filter: &str) -> u64 {
    let (status, body) = call(
        &agent(),
        "POST",
        &format!("{base}/v1/apps/{app}/count"),
        key,
        Some(json!({ "filter": filter })),
    );
    assert_eq!(status, 200, "{body}");
    body["count"].as_u64().unwrap()
}

/// Polls `probe` until it answers true; answers how long that took (panics past 10 s).
fn within(what: &str, probe: impl Fn() -> bool) -> Duration {
    let started = Instant::now();
    while !probe() {
        assert!(started.elapsed() < Duration::from_secs(10), "{what}: never");
        std::thread::sleep(Duration::from_millis(2));
    }
    started.elapsed()
}

/// An agent that shows redirects instead of following them (the console answers a request
/// without a live session with a redirect to its sign-in page).
fn no_redirects() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .max_redirects(0)
        .build()
        .new_agent()
}

/// A console request from the console's own page (`Sec-Fetch-Site`), with the session
/// cookie if any; answers the status, `Location` and `Set-Cookie`.
fn console(
    method: &str,
    url: &str,
    cookie: Option<&str>,
    form: Option<String>,
) -> (u16, String, Option<String>) {
    let mut req = ureq::http::Request::builder()
        .method(method)
        .uri(url)
        .header("Sec-Fetch-Site", "same-origin")
        .header("Content-Type", "application/x-www-form-urlencoded");
    if let Some(c) = cookie {
        req = req.header("Cookie", c);
    }
    let response = no_redirects()
        .run(req.body(form.unwrap_or_default()).unwrap())
        .unwrap();
    let header = |name: &str| {
        response
            .headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    (
        response.status().as_u16(),
        header("location").unwrap_or_default(),
        header("set-cookie").map(|c| c.split(';').next().unwrap().to_owned()),
    )
}

#[test]
fn two_servers_on_one_database_agree() {
    let db = TestDatabase::create();
    let url = db.url();
    let (dir_a, dir_b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let a = Server::start(dir_a.path(), &["--database", &url]);
    let b = Server::start(dir_b.path(), &["--database", &url]);
    let http = agent();
    let (status, app) = call(
        &http,
        "POST",
        &format!("{}/v1/apps", a.base),
        ADMIN_KEY,
        Some(json!({"name": "shop"})),
    );
    assert_eq!(status, 201, "{app}");
    let id = app["id"].as_i64().unwrap();
    let key = app["api_key"].as_str().unwrap().to_owned();
    // A field created through B is used through A at once (A reads the store's schema when
    // its engine has not followed the field yet).
    let (status, ready) = call(&http, "GET", &format!("{}/ready", b.base), ADMIN_KEY, None);
    assert_eq!(
        (status, &ready["status"]),
        (200, &json!("ready")),
        "{ready}"
    );
    let (status, body) = call(
        &http,
        "POST",
        &format!("{}/v1/apps/{id}/fields", b.base),
        &key,
        Some(json!({"name": "age", "type": "number"})),
    );
    assert_eq!(status, 201, "{body}");
    for i in 1..=5 {
        let (status, body) = call(
            &http,
            "POST",
            &format!("{}/v1/apps/{id}/customers", a.base),
            &key,
            Some(json!({"customerId": format!("c{i}"), "fields": {"age": i * 10}})),
        );
        assert_eq!(status, 201, "{body}");
    }
    let mut delays = vec![within("B counts A's customers", || {
        count(&b.base, id, &key, "age >= 30") == 3
    })];
    // Each PATCH through A is counted by B within the bound.
    for (i, age) in [(1, 99), (2, 98), (3, 1)] {
        let (status, body) = call(
            &http,
            "PATCH",
            &format!("{}/v1/apps/{id}/customers/c{i}", a.base),
            &key,
            Some(json!({"fields": {"age": age}})),
        );
        assert_eq!(status, 200, "{body}");
        // A itself counts its own acknowledged write at once.
        let on_a = count(&a.base, id, &key, "age >= 30");
        delays.push(within("B counts A's PATCH", || {
            count(&b.base, id, &key, "age >= 30") == on_a
        }));
    }
    let worst = delays.iter().max().copied().unwrap();
    eprintln!("A → B visibility: {delays:?}");
    assert!(
        worst <= BOUND,
        "a write took {worst:?} to reach the other server"
    );

    // An import started on B is seen running or done on A, and its customers counted there.
    let mut csv = String::from("customerId,age\n");
    for i in 0..2000 {
        csv.push_str(&format!("imp{i},{}\n", i % 100));
    }
    let request = ureq::http::Request::builder()
        .method("POST")
        .uri(format!("{}/v1/apps/{id}/imports", b.base))
        .header("Authorization", format!("Bearer {key}"))
        .header("Content-Type", "text/csv")
        .body(csv)
        .unwrap();
    let response = http.run(request).unwrap();
    assert_eq!(response.status().as_u16(), 202);
    let started: Value =
        serde_json::from_str(&response.into_body().read_to_string().unwrap()).unwrap();
    let import = started["id"].as_i64().unwrap();
    within("A sees B's import succeed", || {
        let (status, report) = call(
            &http,
            "GET",
            &format!("{}/v1/apps/{id}/imports/{import}", a.base),
            &key,
            None,
        );
        assert_eq!(status, 200, "{report}");
        report["state"] == "succeeded"
    });
    within("A counts the imported customers", || {
        count(&a.base, id, &key, "customerId starts_with \"imp\"") == 2000
    });

    // A key made on A works on B; revoked on A, it stops working on B within the key
    // cache's time.
    let (status, made) = call(
        &http,
        "POST",
        &format!("{}/v1/apps/{id}/keys", a.base),
        ADMIN_KEY,
        None,
    );
    assert_eq!(status, 201, "{made}");
    let second = made["key"].as_str().unwrap().to_owned();
    assert_eq!(count(&b.base, id, &second, "age exists"), 2005);
    let (status, body) = call(
        &http,
        "DELETE",
        &format!("{}/v1/apps/{id}/keys/{}", a.base, made["id"]),
        ADMIN_KEY,
        None,
    );
    assert_eq!(status, 204, "{body}");
    let refused = within("B refuses the revoked key", || {
        let (status, _) = call(
            &http,
            "GET",
            &format!("{}/v1/apps/{id}/customers?limit=1", b.base),
            &second,
            None,
        );
        status == 401
    });
    assert!(refused <= Duration::from_secs(3), "took {refused:?}");

    // A console session started on A is signed in on B (sessions live in the database),
    // and signed out through B, it is signed out on A too.
    let (status, location, cookie) = console(
        "POST",
        &format!("{}/console/sign-in", a.base),
        None,
        Some(format!("key={key}")),
    );
    assert_eq!(
        (status, location.as_str()),
        (303, format!("/console/apps/{id}/customers").as_str())
    );
    let cookie = cookie.unwrap();
    let page = format!("/console/apps/{id}/customers");
    for server in [&b, &a, &b] {
        let (status, location, _) = console(
            "GET",
            &format!("{}{page}", server.base),
            Some(&cookie),
            None,
        );
        assert_eq!((status, location.as_str()), (200, ""), "on {}", server.base);
    }
    let (status, _, cleared) = console(
        "POST",
        &format!("{}/console/sign-out", b.base),
        Some(&cookie),
        None,
    );
    assert_eq!(status, 303);
    assert_eq!(cleared.as_deref(), Some("unico_session="));
    for server in [&a, &b] {
        let (status, location, _) = console(
            "GET",
            &format!("{}{page}", server.base),
            Some(&cookie),
            None,
        );
        assert_eq!(
            (status, location.as_str()),
            (303, "/console"),
            "signed out on {}",
            server.base
        );
    }

    // The database goes away: requests are answered 503 with Retry-After (worth retrying),
    // never a 500, and the server keeps running.
    drop(db);
    let request = ureq::http::Request::builder()
        .method("GET")
        .uri(format!("{}/v1/apps/{id}/customers/c1", a.base))
        .header("Authorization", format!("Bearer {key}"))
        .body(())
        .unwrap();
    let response = http.run(request).unwrap();
    assert_eq!(response.status().as_u16(), 503);
    assert_eq!(
        response
            .headers()
            .get("retry-after")
            .map(|v| v.to_str().unwrap()),
        Some("1")
    );
    let body: Value =
        serde_json::from_str(&response.into_body().read_to_string().unwrap()).unwrap();
    assert_eq!(body["error"]["code"], "unavailable", "{body}");
    let (status, health) = call(&http, "GET", &format!("{}/health", a.base), ADMIN_KEY, None);
    assert_eq!(status, 200, "{health}");
    // Readiness says so, for load balancers, without the store's own words.
    let (status, ready) = call(&http, "GET", &format!("{}/ready", b.base), ADMIN_KEY, None);
    assert_eq!(status, 503, "{ready}");
    assert_eq!(ready["error"]["code"], "unavailable", "{ready}");
    assert!(!ready.to_string().contains("5432"), "{ready}");
    drop((a, b));
}
