//! Backup and restore on the real binary: a backup taken while a large import is running is
//! a consistent database (the import wholly in it or wholly out), it restores into an empty
//! data directory and serves every acknowledged write, and a restore refuses to overwrite a
//! database or to take a file that is not one.

#![allow(clippy::unwrap_used)]

mod support;

use std::process::Command;

use serde_json::json;
use support::{ADMIN_KEY, Server, agent, call};

fn unico(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_unico"))
        .args(args)
        .env_remove("UNICO_DATA")
        .output()
        .unwrap()
}

#[test]
fn a_backup_taken_mid_import_restores_a_consistent_store() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let server = Server::start(&data, &[]);
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
    let items: Vec<_> = (0..500)
        .map(|i| json!({"customerId": format!("acked-{i}")}))
        .collect();
    let (status, _) = call(
        &http,
        "POST",
        &format!("{url}/customers/batch"),
        &key,
        Some(json!(items)),
    );
    assert_eq!(status, 200);

    // A large import, and a backup while it runs.
    let mut csv = String::from("customerId\n");
    for i in 0..150_000 {
        csv.push_str(&format!("imported-{i}\n"));
    }
    let response = http
        .run(
            ureq::http::Request::builder()
                .method("POST")
                .uri(format!("{url}/imports"))
                .header("Authorization", format!("Bearer {key}"))
                .header("Content-Type", "text/csv")
                .body(csv)
                .unwrap(),
        )
        .unwrap();
    assert_eq!(response.status().as_u16(), 202);
    let backup = dir.path().join("backup.db");
    let out = unico(&[
        "backup",
        "--data",
        data.to_str().unwrap(),
        "--out",
        backup.to_str().unwrap(),
    ]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // A backup never overwrites a file.
    let again = unico(&[
        "backup",
        "--data",
        data.to_str().unwrap(),
        "--out",
        backup.to_str().unwrap(),
    ]);
    assert_ne!(again.status.code(), Some(0));
    drop(server);

    // A restore refuses a directory holding a database, and a file that is not one.
    let refused = unico(&[
        "restore",
        backup.to_str().unwrap(),
        "--data",
        data.to_str().unwrap(),
    ]);
    assert_ne!(refused.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&refused.stderr).contains("already holds a database"));
    let junk = dir.path().join("junk.db");
    std::fs::write(&junk, "not a database at all, just text").unwrap();
    let refused = unico(&[
        "restore",
        junk.to_str().unwrap(),
        "--data",
        dir.path().join("other").to_str().unwrap(),
    ]);
    assert_ne!(refused.status.code(), Some(0));
    assert!(!dir.path().join("other").join("unico.db").exists());

    let restored = dir.path().join("restored");
    let out = unico(&[
        "restore",
        backup.to_str().unwrap(),
        "--data",
        restored.to_str().unwrap(),
    ]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let server = Server::start(&restored, &[]);
    let url = format!("{}/v1/apps/{}", server.base, app["id"]);
    let count = |filter: &str| {
        let (status, body) = call(
            &http,
            "POST",
            &format!("{url}/count"),
            &key,
            Some(json!({"filter": filter})),
        );
        assert_eq!(status, 200, "{body}");
        body["count"].as_u64().unwrap()
    };
    // Every acknowledged write is there, and the import wholly or not at all.
    assert_eq!(count("customerId starts_with \"acked-\""), 500);
    let imported = count("customerId starts_with \"imported-\"");
    assert!(
        imported == 0 || imported == 150_000,
        "{imported} imported customers: a half import"
    );
}
