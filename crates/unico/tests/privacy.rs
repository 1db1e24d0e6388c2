//! Privacy operations on the real binary: a person's subject export holds everything kept
//! on them, and erasing them leaves no trace of their customerId, values, event properties
//! or consent anywhere in the data directory (store files, write-ahead log, engine
//! snapshots), while everyone else stays.

#![allow(clippy::unwrap_used)]

mod support;

use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use support::{ADMIN_KEY, Server, agent, call};

const MARKERS: [&str; 4] = [
    "erase-me-7f3a",
    "SecretValue-91x",
    "SecretValue-92y",
    "SecretProp-55q",
];

/// The markers found in any file under `dir`.
fn traces(dir: &Path) -> Vec<(String, String)> {
    let mut found = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).unwrap().flatten() {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
                continue;
            }
            let Ok(bytes) = std::fs::read(&path) else {
                continue;
            };
            for m in MARKERS {
                if bytes.windows(m.len()).any(|w| w == m.as_bytes()) {
                    found.push((path.display().to_string(), m.to_owned()));
                }
            }
        }
    }
    found
}

fn stop(server: Server) {
    // SIGTERM: the graceful shutdown writes the engines' snapshots.
    let pid = server.child.id().to_string();
    std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap();
    let mut server = server;
    server.child.wait().unwrap();
}

#[test]
fn a_subject_export_holds_everything_and_an_erasure_leaves_no_trace() {
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
    assert_eq!(status, 201, "{app}");
    let key = app["api_key"].as_str().unwrap().to_owned();
    let url = format!("{}/v1/apps/{}", server.base, app["id"]);
    let api = |method: &str, rest: &str, body: Option<Value>| {
        call(&http, method, &format!("{url}{rest}"), &key, body)
    };
    assert_eq!(
        api(
            "POST",
            "/fields",
            Some(json!({"name": "note", "type": "string"}))
        )
        .0,
        201
    );
    assert_eq!(
        api("POST", "/event-types", Some(json!({"code": "purchase"}))).0,
        201
    );
    for (id, note) in [
        ("erase-me-7f3a", "SecretValue-91x"),
        ("keeper", "KeepValue-1"),
    ] {
        let (status, body) = api(
            "POST",
            "/customers",
            Some(json!({"customerId": id, "fields": {"note": note}})),
        );
        assert_eq!(status, 201, "{body}");
    }
    // An update, so the change log holds the values before and after.
    let (status, _) = api(
        "PATCH",
        "/customers/erase-me-7f3a",
        Some(json!({"fields": {"note": "SecretValue-92y"}})),
    );
    assert_eq!(status, 200);
    let (status, body) = api(
        "POST",
        "/events",
        Some(
            json!({"events": [{"customerId": "erase-me-7f3a", "type": "purchase",
                    "channel": "web", "properties": {"memo": "SecretProp-55q"}},
                   {"customerId": "keeper", "type": "purchase", "channel": "web"}]}),
        ),
    );
    assert_eq!(status, 200, "{body}");
    let (status, _) = api(
        "PUT",
        "/customers/erase-me-7f3a/subscriptions/email",
        Some(json!({"subscribed": true, "source": "checkout"})),
    );
    assert_eq!(status, 200);

    // The subject export: the profile, every event, the consent and its history.
    let (status, export) = api("GET", "/customers/erase-me-7f3a/export", None);
    assert_eq!(status, 200, "{export}");
    assert_eq!(export["customer"]["fields"]["note"], "SecretValue-92y");
    assert_eq!(export["events"].as_array().unwrap().len(), 1);
    assert_eq!(export["events"][0]["properties"]["memo"], "SecretProp-55q");
    assert_eq!(export["subscriptions"][0]["channel"], "email");
    assert_eq!(export["subscription_history"][0]["source"], "checkout");

    // The engine holds them and, after a graceful stop, so does its snapshot on disk.
    let (status, body) = api("POST", "/count", Some(json!({"filter": "note exists"})));
    assert_eq!((status, body["count"].as_u64()), (200, Some(2)), "{body}");
    stop(server);
    let before = traces(dir.path());
    assert!(
        before.iter().any(|(path, _)| path.contains("engines")),
        "the test must see the markers in a snapshot first: {before:?}"
    );

    let server = Server::start(dir.path(), &[]);
    let url = format!("{}/v1/apps/{}", server.base, app["id"]);
    let api = |method: &str, rest: &str, body: Option<Value>| {
        call(&http, method, &format!("{url}{rest}"), &key, body)
    };
    let (status, body) = api("DELETE", "/customers/erase-me-7f3a?erase=maybe", None);
    assert_eq!(status, 400, "{body}");
    let (status, body) = api("DELETE", "/customers/erase-me-7f3a?erase=true", None);
    assert_eq!(status, 204, "{body}");
    assert_eq!(api("GET", "/customers/erase-me-7f3a", None).0, 404);
    assert_eq!(api("GET", "/customers/erase-me-7f3a/export", None).0, 404);
    let (_, body) = api("POST", "/count", Some(json!({"filter": "note exists"})));
    assert_eq!(body["count"], 1, "{body}");
    let (_, keeper) = api("GET", "/customers/keeper", None);
    assert_eq!(keeper["fields"]["note"], "KeepValue-1");

    // The engine rebuilds without the customer and rewrites its snapshot; the store
    // overwrote the deleted pages and checkpointed its write-ahead log.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let left = traces(dir.path());
        if left.is_empty() {
            break;
        }
        assert!(Instant::now() < deadline, "traces left: {left:?}");
        std::thread::sleep(Duration::from_millis(200));
    }
    stop(server);
    assert_eq!(traces(dir.path()), Vec::<(String, String)>::new());
    // The rest is all there after a restart.
    let server = Server::start(dir.path(), &[]);
    let url = format!("{}/v1/apps/{}", server.base, app["id"]);
    let (_, body) = call(
        &http,
        "POST",
        &format!("{url}/count"),
        &key,
        Some(json!({"filter": "note = \"KeepValue-1\" and did purchase"})),
    );
    assert_eq!(body["count"], 1, "{body}");
    // The same from the command line.
    let cli = |args: &[&str]| {
        let mut all = args.to_vec();
        all.extend(["--app", "Shop", "--server", &server.base, "--key", &key]);
        std::process::Command::new(env!("CARGO_BIN_EXE_unico"))
            .args(&all)
            .env_remove("UNICO_SERVER")
            .env_remove("UNICO_KEY")
            .output()
            .unwrap()
    };
    let out = cli(&[
        "customers",
        "consent",
        "keeper",
        "sms",
        "yes",
        "--source",
        "kiosk",
    ]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let printed = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        printed.contains("sms") && printed.contains("subscribed") && printed.contains("kiosk"),
        "{printed}"
    );
    assert!(
        printed.contains("email         no consent recorded"),
        "{printed}"
    );
    let out = cli(&["customers", "consent", "keeper", "fax", "yes"]);
    assert_ne!(out.status.code(), Some(0));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("\"fax\" is not a subscription channel"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = cli(&["customers", "export", "keeper"]);
    assert_eq!(out.status.code(), Some(0));
    let doc: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(doc["customer"]["fields"]["note"], "KeepValue-1");
    assert_eq!(doc["events"].as_array().unwrap().len(), 1);
    let out = cli(&["customers", "erase", "keeper"]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let (status, _) = call(&http, "GET", &format!("{url}/customers/keeper"), &key, None);
    assert_eq!(status, 404);
    // Both erasures are in the audit log, by the application's key, without personal data.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_unico"))
        .args([
            "apps",
            "audit",
            &app["id"].to_string(),
            "--server",
            &server.base,
            "--key",
            &key,
        ])
        .env_remove("UNICO_SERVER")
        .env_remove("UNICO_KEY")
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let printed = String::from_utf8_lossy(&out.stdout).to_string();
    assert_eq!(printed.matches("customer.erased").count(), 2, "{printed}");
    assert!(
        !printed.contains("keeper") && !printed.contains("erase-me"),
        "{printed}"
    );
}
