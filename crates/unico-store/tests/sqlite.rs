//! The embedded backend against the conformance suite, plus what only it promises.
#![allow(clippy::unwrap_used)]

use unico_core::{AppName, CustomerId, FieldName, FieldType, TimeZoneName};
use unico_store::{SqliteStore, Store};

fn fresh() -> (SqliteStore, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    (SqliteStore::open(dir.path()).unwrap(), dir)
}

unico_store::conformance_suite!(fresh());

#[test]
fn data_survives_reopening_the_directory() {
    let dir = tempfile::tempdir().unwrap();
    let app = {
        let store = SqliteStore::open(dir.path()).unwrap();
        let app = store
            .create_app(&AppName::parse("A").unwrap(), &TimeZoneName::utc(), 1)
            .unwrap();
        store
            .create_field(
                app.id,
                &FieldName::parse("f").unwrap(),
                FieldType::Number,
                1,
            )
            .unwrap();
        store
            .create_customer(app.id, &CustomerId::parse("x").unwrap(), &[], 1)
            .unwrap();
        app
    };
    let store = SqliteStore::open(dir.path()).unwrap();
    assert_eq!(store.get_app(app.id).unwrap(), app);
    assert!(
        store
            .get_customer(app.id, &CustomerId::parse("x").unwrap())
            .is_ok()
    );
    assert_eq!(store.schema(app.id).unwrap().len(), 1);
}

#[test]
fn concurrent_writers_share_commits_and_all_land() {
    let (store, _dir) = fresh();
    let store = std::sync::Arc::new(store);
    let app = store
        .create_app(&AppName::parse("A").unwrap(), &TimeZoneName::utc(), 1)
        .unwrap()
        .id;
    let threads: Vec<_> = (0..8)
        .map(|t| {
            let store = store.clone();
            std::thread::spawn(move || {
                for i in 0..50 {
                    store
                        .create_customer(
                            app,
                            &CustomerId::parse(&format!("t{t}-{i}")).unwrap(),
                            &[],
                            1,
                        )
                        .unwrap();
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    assert_eq!(store.count_customers(app).unwrap(), 400);
}

#[test]
fn the_audit_log_refuses_changes_and_removals() {
    let (store, dir) = fresh();
    store
        .record_audit(&unico_store::audit::NewAudit {
            app: None,
            at: 1,
            actor: "admin".into(),
            action: "app.deleted".into(),
            target: "1".into(),
        })
        .unwrap();
    let conn = rusqlite::Connection::open(dir.path().join("unico.db")).unwrap();
    for sql in ["UPDATE audit SET actor = 'x'", "DELETE FROM audit"] {
        let err = conn.execute(sql, []).unwrap_err().to_string();
        assert!(err.contains("append-only"), "{sql}: {err}");
    }
    assert_eq!(store.audit_log(None, None, 10).unwrap().len(), 1);
}

#[test]
fn an_imports_keys_are_held_across_a_restart() {
    use unico_core::{Channel, EventCode, EventType, Properties};
    use unico_store::{EventBatch, NewEvent};
    const NOW: i64 = 1_780_000_000_000;
    let event = |key: &str, customer: &str| NewEvent {
        by_identity: None,
        event_id: Some(key.to_owned()),
        customer_id: CustomerId::parse(customer).unwrap(),
        event_type: EventCode::parse("purchase").unwrap(),
        channel: Channel::parse("web").unwrap(),
        device_id: None,
        timestamp: NOW - 1000,
        properties: Properties::default(),
    };
    let import = |store: &SqliteStore, app, events: Vec<NewEvent>| {
        let feed = vec![EventBatch::Items(events), EventBatch::End { keep: true }];
        store
            .run_event_import(
                app,
                Box::new(feed.into_iter()),
                NOW,
                std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0)),
                None,
                None,
            )
            .unwrap()
    };
    let dir = tempfile::tempdir().unwrap();
    let keys: Vec<String> = (0..5_000).map(|i| format!("key-{i}")).collect();
    let app = {
        let store = SqliteStore::open(dir.path()).unwrap();
        let app = store
            .create_app(&AppName::parse("A").unwrap(), &TimeZoneName::utc(), 1)
            .unwrap()
            .id;
        store
            .create_event_type(
                app,
                &EventType {
                    code: EventCode::parse("purchase").unwrap(),
                    name: "Purchase".into(),
                    retention_days: 3650,
                    enabled: true,
                    properties: Vec::new(),
                    created_at: NOW,
                },
            )
            .unwrap();
        let events = keys
            .iter()
            .enumerate()
            .map(|(i, k)| event(k, &format!("c{}", i % 97)))
            .collect();
        let counts = import(&store, app, events);
        assert_eq!(counts.updated, 0);
        app
    };
    // Reopened: every key is still held, sent one by one or imported again.
    let store = SqliteStore::open(dir.path()).unwrap();
    let outcomes = store
        .insert_events(
            app,
            keys.iter().step_by(7).map(|k| event(k, "other")).collect(),
            NOW,
        )
        .unwrap();
    assert!(outcomes.iter().all(|o| o.as_ref().unwrap().duplicate));
    let mut again: Vec<NewEvent> = keys.iter().step_by(3).map(|k| event(k, "other")).collect();
    again.push(event("fresh", "other"));
    let counts = import(&store, app, again.clone());
    assert_eq!(counts.updated as usize, again.len() - 1);
    assert_eq!(counts.created, 1, "only the fresh key's customer");
    let stored = store.read_events(app, 0, i64::MAX, 100_000).unwrap();
    assert_eq!(stored.len(), keys.len() + 1);
}
