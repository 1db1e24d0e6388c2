//! Every acknowledged write survives `kill -9` of the server.
#![allow(clippy::unwrap_used)]

mod support;

use serde_json::json;
use support::{ADMIN_KEY, Server, agent, call};

#[test]
fn acknowledged_writes_survive_sigkill() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[]);
    let base = server.base.clone();
    let http = agent();
    let (status, app) = call(
        &http,
        "POST",
        &format!("{base}/v1/apps"),
        ADMIN_KEY,
        Some(json!({"name": "Shop"})),
    );
    assert_eq!(status, 201);
    let key = app["api_key"].as_str().unwrap().to_owned();
    let app_url = format!("{base}/v1/apps/{}", app["id"]);
    for (name, ty) in [("visits", "number"), ("note", "string")] {
        let (status, _) = call(
            &http,
            "POST",
            &format!("{app_url}/fields"),
            &key,
            Some(json!({"name": name, "type": ty})),
        );
        assert_eq!(status, 201);
    }

    // A first count builds the application's segment engine, which is saved as a snapshot
    // in the background: after the kill, the restart reads it and applies the log after it.
    let (status, body) = call(
        &http,
        "POST",
        &format!("{app_url}/count"),
        &key,
        Some(json!({"filter": "visits exists"})),
    );
    assert_eq!((status, &body["count"]), (200, &json!(0)), "{body}");
    std::thread::sleep(std::time::Duration::from_millis(200));

    // Concurrent writers; each remembers exactly what the server acknowledged.
    let writers: Vec<_> = (0..4)
        .map(|t| {
            let (app_url, key) = (app_url.clone(), key.clone());
            std::thread::spawn(move || {
                let http = agent();
                let mut acknowledged = Vec::new();
                for i in 0..40 {
                    let id = format!("t{t}/c{i}");
                    let url = format!("{app_url}/customers");
                    let (status, _) = call(
                        &http,
                        "POST",
                        &url,
                        &key,
                        Some(json!({"customerId": id, "fields": {"note": "new"}})),
                    );
                    assert_eq!(status, 201);
                    let encoded = id.replace('/', "%2F");
                    let (status, body) = call(
                        &http,
                        "PATCH",
                        &format!("{url}/{encoded}"),
                        &key,
                        Some(json!({"fields": {"visits": i}})),
                    );
                    assert_eq!(status, 200, "{body}");
                    acknowledged.push((encoded, i));
                }
                acknowledged
            })
        })
        .collect();
    let acknowledged: Vec<(String, i64)> = writers
        .into_iter()
        .flat_map(|w| w.join().unwrap())
        .collect();
    let (status, _) = call(
        &http,
        "POST",
        &format!("{app_url}/customers/batch"),
        &key,
        Some(json!([{"customerId": "batched", "fields": {"visits": 7}}])),
    );
    assert_eq!(status, 200);

    server.kill_9();

    let server = Server::start(dir.path(), &[]);
    let app_url = app_url.replace(&base, &server.base);
    for (id, visits) in &acknowledged {
        let (status, body) = call(
            &http,
            "GET",
            &format!("{app_url}/customers/{id}"),
            &key,
            None,
        );
        assert_eq!(status, 200, "{id} lost");
        assert_eq!(body["fields"]["visits"], json!(visits), "{id}");
        assert_eq!(body["fields"]["note"], json!("new"), "{id}");
    }
    let (status, body) = call(
        &http,
        "GET",
        &format!("{app_url}/customers/batched"),
        &key,
        None,
    );
    assert_eq!((status, &body["fields"]["visits"]), (200, &json!(7)));
    let (_, fields) = call(&http, "GET", &format!("{app_url}/fields"), &key, None);
    assert_eq!(
        fields["fields"][0]["value_count"],
        json!(acknowledged.len() + 1)
    );

    // The segment engine after the restart (its snapshot, taken before the writes, caught up
    // from the change log) counts exactly what is stored, and counts a new write at once.
    let count = |filter: &str| {
        let (status, body) = call(
            &http,
            "POST",
            &format!("{app_url}/count"),
            &key,
            Some(json!({ "filter": filter })),
        );
        assert_eq!(status, 200, "{body}");
        body["count"].as_u64().unwrap()
    };
    let at_least_20 = acknowledged.iter().filter(|(_, v)| *v >= 20).count() as u64;
    assert_eq!(count("visits exists"), acknowledged.len() as u64 + 1);
    assert_eq!(count("note = \"new\""), acknowledged.len() as u64);
    assert_eq!(
        count("visits >= 20"),
        at_least_20,
        "batched has 7: not counted"
    );
    let (status, _) = call(
        &http,
        "PATCH",
        &format!("{app_url}/customers/batched"),
        &key,
        Some(json!({"fields": {"visits": 99}})),
    );
    assert_eq!(status, 200);
    assert_eq!(
        count("visits >= 20"),
        at_least_20 + 1,
        "the PATCH is counted at once"
    );
}

#[test]
fn the_demo_application_is_created_once() {
    let dir = tempfile::tempdir().unwrap();
    let http = agent();
    let server = Server::start(dir.path(), &["--demo", "--demo-customers", "300"]);
    let (status, apps) = call(
        &http,
        "GET",
        &format!("{}/v1/apps", server.base),
        ADMIN_KEY,
        None,
    );
    assert_eq!(status, 200);
    assert_eq!(apps["apps"].as_array().unwrap().len(), 1);
    let app_url = format!("{}/v1/apps/{}", server.base, apps["apps"][0]["id"]);
    let (_, page) = call(
        &http,
        "GET",
        &format!("{app_url}/customers?limit=1000"),
        ADMIN_KEY,
        None,
    );
    assert_eq!(page["customers"].as_array().unwrap().len(), 300);
    let (_, fields) = call(&http, "GET", &format!("{app_url}/fields"), ADMIN_KEY, None);
    assert!(fields["fields"].as_array().unwrap().len() >= 10, "{fields}");
    server.kill_9();
    let server = Server::start(dir.path(), &["--demo"]);
    let (_, apps) = call(
        &http,
        "GET",
        &format!("{}/v1/apps", server.base),
        ADMIN_KEY,
        None,
    );
    assert_eq!(
        apps["apps"].as_array().unwrap().len(),
        1,
        "a second start adds no second demo"
    );
}

#[test]
fn a_generated_admin_key_is_kept_in_the_data_directory() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_unico"))
        .args(["serve", "--addr", "127.0.0.1:0", "--data"])
        .arg(dir.path())
        .env_remove("UNICO_ADMIN_KEY")
        .env("RUST_LOG", "warn")
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::BufRead;
    let mut lines = std::io::BufReader::new(child.stdout.take().unwrap()).lines();
    let first = lines.next().unwrap().unwrap();
    let printed = first.rsplit(' ').next().unwrap().to_owned();
    let stored = std::fs::read_to_string(dir.path().join("admin.key")).unwrap();
    assert_eq!(printed, stored.trim());
    assert!(printed.starts_with("unico_admin_") && printed.len() > 40);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(dir.path().join("admin.key"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o077, 0, "only the owner may read the admin key");
    }
    let _ = child.kill();
    let _ = child.wait();
}

/// Posts a batch of events; `None` when the server did not answer (it was killed).
fn post_events(
    http: &ureq::Agent,
    url: &str,
    key: &str,
    events: &serde_json::Value,
) -> Option<serde_json::Value> {
    let req = ureq::http::Request::builder()
        .method("POST")
        .uri(url)
        .header("Authorization", format!("Bearer {key}"))
        .header("Content-Type", "application/json")
        .body(json!({ "events": events }).to_string())
        .ok()?;
    let response = http.run(req).ok()?;
    if response.status().as_u16() != 200 {
        return None;
    }
    serde_json::from_str(&response.into_body().read_to_string().ok()?).ok()
}

#[test]
fn acknowledged_events_survive_sigkill_during_a_large_ingest() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[]);
    let http = agent();
    let (status, app) = call(
        &http,
        "POST",
        &format!("{}/v1/apps", server.base),
        ADMIN_KEY,
        Some(json!({"name": "Shop"})),
    );
    assert_eq!(status, 201);
    let key = app["api_key"].as_str().unwrap().to_owned();
    let app_path = format!("/v1/apps/{}", app["id"]);
    for code in ["view", "buy"] {
        let (status, _) = call(
            &http,
            "POST",
            &format!("{}{app_path}/event-types", server.base),
            &key,
            Some(json!({"code": code})),
        );
        assert_eq!(status, 201);
    }
    // Writers send keyed batches until the server dies under them; each keeps the batches
    // the server acknowledged.
    let url = format!("{}{app_path}/events", server.base);
    let writers: Vec<_> = (0..3)
        .map(|t| {
            let (url, key) = (url.clone(), key.clone());
            std::thread::spawn(move || {
                let http = agent();
                let mut acknowledged = Vec::new();
                for b in 0.. {
                    let batch: Vec<serde_json::Value> = (0..250)
                        .map(|i| {
                            json!({"event_id": format!("t{t}-b{b}-{i}"), "customerId": format!("c{}", (b * 7 + i) % 300),
                                   "type": if i % 5 == 0 { "buy" } else { "view" }, "channel": "web",
                                   "properties": {"amount": i}})
                        })
                        .collect();
                    let batch = serde_json::Value::Array(batch);
                    match post_events(&http, &url, &key, &batch) {
                        Some(answer) => {
                            assert_eq!(answer["errors"], 0, "{answer}");
                            acknowledged.push(batch);
                        }
                        None => return acknowledged,
                    }
                }
                acknowledged
            })
        })
        .collect();
    std::thread::sleep(std::time::Duration::from_millis(1500));
    server.kill_9();
    let acknowledged: Vec<serde_json::Value> = writers
        .into_iter()
        .flat_map(|w| w.join().unwrap())
        .collect();
    assert!(acknowledged.len() >= 3, "the writers had time to write");

    let server = Server::start(dir.path(), &[]);
    let url = format!("{}{app_path}/events", server.base);
    // Every acknowledged event is stored: sent again, each one is a duplicate.
    for batch in &acknowledged {
        let answer = post_events(&http, &url, &key, batch).unwrap();
        assert_eq!(
            answer["duplicates"], 250,
            "an acknowledged event was lost: {answer}"
        );
    }
    // The engine after the restart counts exactly what the store holds.
    let count = |filter: &str| {
        let (status, body) = call(
            &http,
            "POST",
            &format!("{}{app_path}/count", server.base),
            &key,
            Some(json!({ "filter": filter })),
        );
        assert_eq!(status, 200, "{body}");
        body["count"].as_u64().unwrap()
    };
    let mut with_buys = 0;
    let mut events = 0;
    for c in 0..300 {
        let (status, page) = call(
            &http,
            "GET",
            &format!(
                "{}{app_path}/customers/c{c}/events?type=buy&limit=1&summary=true",
                server.base
            ),
            &key,
            None,
        );
        if status == 404 {
            continue;
        }
        assert_eq!(status, 200);
        events += page["summary"]["events"].as_u64().unwrap();
        if !page["events"].as_array().unwrap().is_empty() {
            with_buys += 1;
        }
    }
    assert!(events >= acknowledged.len() as u64 * 250);
    assert_eq!(count("did buy"), with_buys);
    let (_, list) = call(
        &http,
        "GET",
        &format!("{}{app_path}/customers?limit=1000", server.base),
        &key,
        None,
    );
    let total = list["customers"].as_array().unwrap().len() as u64;
    assert_eq!(
        count("count of view >= 0"),
        total,
        "a count of no events is 0"
    );
    assert_eq!(
        count("sum amount of buy >= 0"),
        total,
        "a sum of no events is 0"
    );
}
