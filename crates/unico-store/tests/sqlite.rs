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
