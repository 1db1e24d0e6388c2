//! Counts stay exact while several writers and a large import run at once.
//!
//! An import of more than `INCREMENTAL_IMPORT_CUSTOMERS` customers reaches the segment
//! engine differently from single writes; these tests run both together and then compare
//! every count and filtered list with what the store holds.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use axum::http::StatusCode;
use serde_json::{Value, json};

use crate::support::{Api, App, enc};

async fn count(api: &Api, app: &App, filter: &str) -> u64 {
    let (status, body) = api
        .send(
            "POST",
            &app.path("/count"),
            Some(&app.key),
            Some(json!({ "filter": filter })),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{filter}: {body}");
    body["count"].as_u64().unwrap()
}

/// Keeps creating and patching `hot{t}-{0..20}` and creating `new{t}-{n}` until `stop`.
async fn writer(api: Arc<Api>, app: App, t: usize, stop: Arc<AtomicBool>, done: Arc<AtomicU64>) {
    let mut round = 0u64;
    while !stop.load(Ordering::Relaxed) {
        for k in 0..20 {
            let id = format!("hot{t}-{k}");
            let (status, body) = api
                .patch_customer(&app, &id, json!({ "fields": { "v": format!("h{round}") } }))
                .await;
            match status {
                StatusCode::OK => {}
                StatusCode::NOT_FOUND => {
                    api.create_customer(&app, &id, json!({ "v": format!("h{round}") }))
                        .await;
                }
                other => panic!("PATCH {id} answered {other}: {body}"),
            }
            done.fetch_add(1, Ordering::Relaxed);
        }
        api.create_customer(&app, &format!("new{t}-{round}"), json!({ "v": "n" }))
            .await;
        round += 1;
        tokio::task::yield_now().await;
    }
}

/// Every customer as the store lists it (unfiltered lists come from the store).
async fn stored(api: &Api, app: &App) -> Vec<(String, Option<String>)> {
    api.all_customers(app)
        .await
        .iter()
        .map(|c| {
            (
                c["customerId"].as_str().unwrap().to_owned(),
                c["fields"]["v"].as_str().map(str::to_owned),
            )
        })
        .collect()
}

/// Four writers keep creating and patching customers while a 100 000-customer import (a
/// bulk change for the engine, and a dictionary past 65 536 codes) runs; afterwards every
/// count the engine gives equals the stored data, and filtered lists hold exactly the
/// matching customers.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn counts_are_exact_after_a_bulk_import_beside_concurrent_writers() {
    let api = Arc::new(Api::new());
    let app = api.create_app("busy").await;
    api.create_field(&app, "v", "string").await;
    // The engine exists before the import (as after `unico serve`'s start).
    assert_eq!(count(&api, &app, "v exists").await, 0);

    let stop = Arc::new(AtomicBool::new(false));
    let done = Arc::new(AtomicU64::new(0));
    let writers: Vec<_> = (0..4)
        .map(|t| {
            tokio::spawn(writer(
                api.clone(),
                app.clone(),
                t,
                stop.clone(),
                done.clone(),
            ))
        })
        .collect();
    // Let the writers get going, so the import lands among their commits.
    while done.load(Ordering::Relaxed) < 200 {
        tokio::task::yield_now().await;
    }
    let rows = 100_000;
    let mut csv = String::from("customerId,v\n");
    for i in 0..rows {
        csv.push_str(&format!("imp-{i},x{i}\n"));
    }
    let report = api.import_csv(&app, "", csv).await;
    assert_eq!(report["state"], "succeeded", "{report}");
    // Writers keep going past the import and through the engine's rebuild.
    let after = done.load(Ordering::Relaxed) + 400;
    while done.load(Ordering::Relaxed) < after {
        tokio::task::yield_now().await;
    }
    stop.store(true, Ordering::Relaxed);
    for w in writers {
        w.await.unwrap();
    }

    let all = stored(&api, &app).await;
    let starts = |p: &str| all.iter().filter(|(id, _)| id.starts_with(p)).count() as u64;
    assert_eq!(starts("imp-"), rows);
    assert_eq!(starts("hot"), 80);
    assert_eq!(
        count(&api, &app, "customerId exists").await,
        all.len() as u64
    );
    for prefix in ["imp-", "hot", "new"] {
        assert_eq!(
            count(&api, &app, &format!("customerId starts_with \"{prefix}\"")).await,
            starts(prefix),
            "customerId starts_with {prefix}"
        );
    }
    let with = |v: &str| all.iter().filter(|(_, x)| x.as_deref() == Some(v)).count() as u64;
    for v in ["x1", "x99999", "n"] {
        assert_eq!(
            count(&api, &app, &format!("v = \"{v}\"")).await,
            with(v),
            "v = {v}"
        );
    }
    // Every hot customer's latest value is what the engine matches it by.
    for (id, v) in all.iter().filter(|(id, _)| id.starts_with("hot")) {
        let v = v.as_deref().unwrap();
        let filter = format!("customerId = \"{id}\" and v = \"{v}\"");
        assert_eq!(count(&api, &app, &filter).await, 1, "{filter}");
    }
    // A filtered list holds exactly the matching customers.
    let (status, body) = api
        .send(
            "GET",
            &app.path(&format!(
                "/customers?limit=1000&filter={}",
                enc("customerId starts_with \"hot\"")
            )),
            Some(&app.key),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let listed: Vec<&str> = body["customers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c: &Value| c["customerId"].as_str().unwrap())
        .collect();
    assert_eq!(listed.len(), 80, "{listed:?}");
    assert!(listed.iter().all(|id| id.starts_with("hot")), "{listed:?}");
}
