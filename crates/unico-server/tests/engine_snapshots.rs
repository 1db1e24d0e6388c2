//! Segment engine snapshots: a restart reads a current snapshot instead of scanning, and
//! never one that disagrees with the store (a write after it, even followed by a crash, a
//! field deletion, a time zone change, a damaged file).

#![allow(clippy::unwrap_used)]

use std::path::Path;
use std::sync::Arc;

use unico_core::{
    AppId, AppName, CustomerId, FieldChange, FieldDef, FieldName, FieldType, TimeZoneName, Value,
};
use unico_filter::{Filter, FilterInput};
use unico_server::engines::Engines;
use unico_store::{SqliteStore, Store};

const NOW: i64 = 1_800_000_000_000;

fn open(dir: &Path) -> (Arc<dyn Store>, Arc<Engines>) {
    let store: Arc<dyn Store> = Arc::new(SqliteStore::open(&dir.join("db")).unwrap());
    let engines = Engines::attach(&store);
    engines.enable_snapshots(dir.join("engines")).unwrap();
    (store, engines)
}

fn customer(store: &dyn Store, app: AppId, cid: &str, field: &FieldDef, v: f64) {
    store
        .create_customer(
            app,
            &CustomerId::parse(cid).unwrap(),
            &[FieldChange {
                field: field.id,
                value: Some(Value::Number(v)),
            }],
            NOW,
        )
        .unwrap();
}

fn count(store: &dyn Store, engines: &Arc<Engines>, app: AppId, text: &str) -> u64 {
    let filter = Filter::parse(FilterInput::Text(text), &store.schema(app).unwrap()).unwrap();
    engines
        .query(app, NOW, |index, ctx| index.count(&filter, ctx))
        .unwrap()
}

/// A new application named `name` with one number field, `age`.
fn app_with_age(store: &dyn Store, name: &str) -> (AppId, FieldDef) {
    let app = store
        .create_app(&AppName::parse(name).unwrap(), &TimeZoneName::utc(), NOW)
        .unwrap()
        .id;
    let age = store
        .create_field(
            app,
            &FieldName::parse("age").unwrap(),
            FieldType::Number,
            NOW,
        )
        .unwrap();
    (app, age)
}

/// A store with one application of 300 customers, its engine built and snapshotted.
fn setup(dir: &Path) -> (AppId, FieldDef) {
    let (store, engines) = open(dir);
    let (app, age) = app_with_age(store.as_ref(), "a");
    for i in 0..300 {
        customer(
            store.as_ref(),
            app,
            &format!("c{i:04}"),
            &age,
            f64::from(i % 60),
        );
    }
    assert_eq!(count(store.as_ref(), &engines, app, "age >= 30"), 150);
    assert_eq!(engines.from_snapshot(app), Some(false));
    engines.save_snapshots();
    assert!(
        dir.join("engines")
            .join(format!("engine-{}.snapshot", app.0))
            .exists()
    );
    (app, age)
}

#[test]
fn a_restart_reads_a_current_snapshot_and_follows_later_writes() {
    let dir = tempfile::tempdir().unwrap();
    let (app, age) = setup(dir.path());
    let (store, engines) = open(dir.path());
    assert_eq!(count(store.as_ref(), &engines, app, "age >= 30"), 150);
    assert_eq!(engines.from_snapshot(app), Some(true));
    customer(store.as_ref(), app, "new", &age, 45.0);
    assert_eq!(count(store.as_ref(), &engines, app, "age >= 30"), 151);
    // A graceful stop saves the change; the next start reads it.
    engines.save_snapshots();
    drop((store, engines));
    let (store, engines) = open(dir.path());
    assert_eq!(count(store.as_ref(), &engines, app, "age >= 30"), 151);
    assert_eq!(engines.from_snapshot(app), Some(true));
}

#[test]
fn writes_after_the_snapshot_then_a_crash_are_caught_up_from_the_log() {
    let dir = tempfile::tempdir().unwrap();
    let (app, age) = setup(dir.path());
    {
        // The engine hears the writes, but the process dies before any new snapshot.
        let (store, engines) = open(dir.path());
        assert_eq!(count(store.as_ref(), &engines, app, "age >= 30"), 150);
        customer(store.as_ref(), app, "late", &age, 59.0);
        store
            .delete_customer(app, &CustomerId::parse("c0031").unwrap())
            .unwrap();
        customer(store.as_ref(), app, "later", &age, 12.0);
        std::mem::forget(engines);
    }
    let (store, engines) = open(dir.path());
    assert_eq!(count(store.as_ref(), &engines, app, "age >= 30"), 150);
    assert_eq!(
        engines.from_snapshot(app),
        Some(true),
        "the snapshot is read and the log after it applied"
    );
    assert_eq!(
        count(store.as_ref(), &engines, app, "customerId = \"late\""),
        1
    );
    assert_eq!(
        count(store.as_ref(), &engines, app, "customerId = \"c0031\""),
        0
    );
    assert_eq!(count(store.as_ref(), &engines, app, "age < 30"), 151);
}

#[test]
fn a_snapshot_the_log_no_longer_reaches_is_not_used() {
    let dir = tempfile::tempdir().unwrap();
    let (app, age) = setup(dir.path());
    {
        let store: Arc<dyn Store> = Arc::new(SqliteStore::open(&dir.path().join("db")).unwrap());
        customer(store.as_ref(), app, "late", &age, 59.0);
        customer(store.as_ref(), app, "later", &age, 1.0);
        // Everything but the newest entry goes: the change to "late" is no longer logged.
        assert!(store.prune_log(i64::MAX).unwrap() > 0);
    }
    let (store, engines) = open(dir.path());
    assert_eq!(count(store.as_ref(), &engines, app, "age >= 30"), 151);
    assert_eq!(engines.from_snapshot(app), Some(false), "scanned instead");
}

#[test]
fn field_deletion_retyping_and_time_zones_make_it_stale() {
    let dir = tempfile::tempdir().unwrap();
    let (app, age) = setup(dir.path());
    {
        let store: Arc<dyn Store> = Arc::new(SqliteStore::open(&dir.path().join("db")).unwrap());
        store.delete_field(app, &age.name).unwrap();
        store
            .create_field(
                app,
                &FieldName::parse("age").unwrap(),
                FieldType::String,
                NOW,
            )
            .unwrap();
    }
    let (store, engines) = open(dir.path());
    assert_eq!(count(store.as_ref(), &engines, app, "age exists"), 0);
    assert_eq!(engines.from_snapshot(app), Some(false));
    engines.save_snapshots();
    drop((store, engines));
    {
        let store: Arc<dyn Store> = Arc::new(SqliteStore::open(&dir.path().join("db")).unwrap());
        store
            .update_app(app, None, Some(&TimeZoneName::parse("Asia/Tokyo").unwrap()))
            .unwrap();
    }
    let (store, engines) = open(dir.path());
    assert_eq!(count(store.as_ref(), &engines, app, "age exists"), 0);
    assert_eq!(engines.from_snapshot(app), Some(false));
    assert_eq!(
        engines
            .query(app, NOW, |index, _| index
                .timezone()
                .iana_name()
                .map(str::to_owned))
            .unwrap()
            .as_deref(),
        Some("Asia/Tokyo")
    );
}

#[test]
fn a_damaged_snapshot_is_ignored() {
    let dir = tempfile::tempdir().unwrap();
    let (app, _) = setup(dir.path());
    let path = dir
        .path()
        .join("engines")
        .join(format!("engine-{}.snapshot", app.0));
    let mut bytes = std::fs::read(&path).unwrap();
    let at = bytes.len() / 2;
    bytes[at] ^= 0x01;
    std::fs::write(&path, &bytes).unwrap();
    let (store, engines) = open(dir.path());
    assert_eq!(count(store.as_ref(), &engines, app, "age >= 30"), 150);
    assert_eq!(engines.from_snapshot(app), Some(false));
    // Truncated, too.
    engines.save_snapshots();
    drop((store, engines));
    let bytes = std::fs::read(&path).unwrap();
    std::fs::write(&path, &bytes[..bytes.len() - 9]).unwrap();
    let (store, engines) = open(dir.path());
    assert_eq!(count(store.as_ref(), &engines, app, "age >= 30"), 150);
    assert_eq!(engines.from_snapshot(app), Some(false));
}

/// Registers the event type `buy` (with a number property `amount`) in `app`.
fn register_buy(store: &dyn Store, app: AppId) -> unico_core::EventCode {
    let buy = unico_core::EventCode::parse("buy").unwrap();
    store
        .create_event_type(
            app,
            &unico_core::EventType {
                code: buy.clone(),
                name: "Buy".into(),
                retention_days: 3650,
                enabled: true,
                properties: vec![("amount".into(), unico_core::PropertyType::Number)],
                created_at: NOW,
            },
        )
        .unwrap();
    buy
}

/// A large events import (many of the follower's read batches) reaches the loaded engine
/// as logged event ranges: the same index absorbs them, with no rebuild from a scan, and
/// counts every event at once; a restart from the snapshot written after it agrees.
#[test]
fn a_large_events_import_reaches_the_loaded_engine_without_a_rebuild() {
    use unico_core::{Channel, Properties};
    use unico_store::{Change, EventBatch, NewEvent};

    const PER_CUSTOMER: usize = 400;
    let dir = tempfile::tempdir().unwrap();
    let (app, _) = setup(dir.path());
    let (store, engines) = open(dir.path());
    let buy = register_buy(store.as_ref(), app);
    assert_eq!(count(store.as_ref(), &engines, app, "did buy"), 0);
    let loaded = engines.index(app).unwrap();
    let head = store.log_head();
    let channel = Channel::parse("web").unwrap();
    let events: Vec<NewEvent> = (0..300 * PER_CUSTOMER)
        .map(|i| NewEvent {
            by_identity: None,
            event_id: Some(format!("e{i}")),
            customer_id: CustomerId::parse(&format!("c{:04}", i / PER_CUSTOMER)).unwrap(),
            event_type: buy.clone(),
            channel: channel.clone(),
            device_id: None,
            timestamp: NOW - 1000 * (i % PER_CUSTOMER) as i64,
            properties: Properties::from_json(
                serde_json::json!({ "amount": (i / PER_CUSTOMER) % 2 }),
            )
            .unwrap(),
        })
        .collect();
    let batches: Vec<EventBatch> = events
        .chunks(4096)
        .map(|c| EventBatch::Items(c.to_vec()))
        .chain([EventBatch::End { keep: true }])
        .collect();
    let written = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let counts = store
        .run_event_import(app, Box::new(batches.into_iter()), NOW, written, None, None)
        .unwrap();
    assert!(counts.kept);
    let logged: Vec<Change> = store
        .read_log(head, 100)
        .unwrap()
        .into_iter()
        .map(|e| e.change)
        .collect();
    match logged.as_slice() {
        [Change::Events { ranges, .. }] => assert_eq!(
            ranges.iter().map(|(lo, hi)| hi - lo + 1).sum::<i64>(),
            (300 * PER_CUSTOMER) as i64
        ),
        other => panic!("a large import is logged as its events' ranges, got {other:?}"),
    }
    assert_eq!(
        count(store.as_ref(), &engines, app, "did buy at_least 400 times"),
        300
    );
    assert_eq!(
        count(store.as_ref(), &engines, app, "did buy at_least 401 times"),
        0
    );
    assert_eq!(
        count(store.as_ref(), &engines, app, "did buy where amount > 0"),
        150
    );
    assert!(
        Arc::ptr_eq(&loaded, &engines.index(app).unwrap()),
        "the engine was rebuilt instead of absorbing the import"
    );
    engines.save_snapshots();
    drop(engines);
    drop(store);
    let (store, engines) = open(dir.path());
    assert_eq!(
        count(store.as_ref(), &engines, app, "did buy where amount > 0"),
        150
    );
    assert_eq!(engines.from_snapshot(app), Some(true));
}

/// An events import hands the loaded engine the tables it prepared while it wrote
/// (counted in `/metrics`), and they count exactly what reading the events back would:
/// the events of customers the import created, a duplicate key left out, at once after
/// the import, into an engine holding no events (taken over whole) and into one holding
/// some (appended). An import not kept prepares nothing; a restart from the snapshot
/// agrees.
#[test]
fn an_events_import_hands_the_engine_the_tables_it_prepared() {
    use std::sync::atomic::AtomicU64;
    use unico_core::{Channel, Properties};
    use unico_server::prepare::Preparer;
    use unico_store::{EventBatch, EventSink, NewEvent};

    let dir = tempfile::tempdir().unwrap();
    let (app, _) = setup(dir.path());
    let (store, engines) = open(dir.path());
    let buy = register_buy(store.as_ref(), app);
    assert_eq!(count(store.as_ref(), &engines, app, "did buy"), 0);
    assert!(engines.wants_prepared_events(app));
    {
        // Busy applying a change: still loaded, still worth preparing for.
        let index = engines.index(app).unwrap();
        let _applying = index.write().unwrap();
        assert!(engines.wants_prepared_events(app));
    }
    let web = Channel::parse("web").unwrap();
    let event = |key: &str, cid: &str, amount: i64, ago_s: i64| NewEvent {
        by_identity: None,
        event_id: Some(key.to_owned()),
        customer_id: CustomerId::parse(cid).unwrap(),
        event_type: buy.clone(),
        channel: web.clone(),
        device_id: None,
        timestamp: NOW - 1000 * ago_s,
        properties: Properties::from_json(serde_json::json!({ "amount": amount })).unwrap(),
    };
    // Three events for each of the 300 customers (half of them over 100), two for each
    // of 20 customers the import creates, and a key sent twice.
    let mut events = Vec::new();
    for i in 0..300 {
        for k in 0..3 {
            let cid = format!("c{i:04}");
            events.push(event(&format!("e{i}-{k}"), &cid, (i % 2) * 150, k));
        }
    }
    for i in 0..20 {
        for k in 0..2 {
            events.push(event(&format!("n{i}-{k}"), &format!("new{i:02}"), 5, k));
        }
    }
    events.push(event("e7-1", "c0008", 1000, 0));
    let import = |events: &[NewEvent], keep: bool| {
        let batches: Vec<EventBatch> = events
            .chunks(100)
            .map(|c| EventBatch::Items(c.to_vec()))
            .chain([EventBatch::End { keep }])
            .collect();
        let sink = Box::new(Preparer::start(1).unwrap()) as Box<dyn EventSink>;
        store
            .run_event_import(
                app,
                Box::new(batches.into_iter()),
                NOW,
                Arc::new(AtomicU64::new(0)),
                None,
                Some(sink),
            )
            .unwrap()
    };
    let prepared = |engines: &Arc<Engines>| {
        engines
            .sizes()
            .iter()
            .find(|s| s.app == app)
            .map_or(0, |s| s.prepared_imports)
    };
    let c = |engines: &Arc<Engines>, store: &Arc<dyn Store>, text: &str| {
        count(store.as_ref(), engines, app, text)
    };

    assert!(!import(&events, false).kept);
    assert_eq!(c(&engines, &store, "did buy"), 0);
    assert_eq!(prepared(&engines), 0);

    let counts = import(&events, true);
    assert!(counts.kept);
    assert_eq!((counts.created, counts.updated), (20, 1));
    assert_eq!(c(&engines, &store, "did buy at_least 3 times"), 300);
    assert_eq!(c(&engines, &store, "did buy exactly 2 times"), 20);
    assert_eq!(c(&engines, &store, "did buy where amount >= 100"), 150);
    assert_eq!(c(&engines, &store, "did buy where amount = 1000"), 0);
    assert_eq!(
        c(&engines, &store, "did buy within_last 1m at_least 3 times"),
        300
    );
    assert_eq!(prepared(&engines), 1, "the import was read back instead");

    // The engine holds events now: the next import's tables are appended to its own, a
    // string property met for the first time included.
    assert!(engines.wants_prepared_events(app));
    let mut more: Vec<NewEvent> = (0..300)
        .map(|i| event(&format!("m{i}"), &format!("c{i:04}"), 1000, 9))
        .collect();
    for (i, e) in more.iter_mut().enumerate().take(40) {
        e.properties = Properties::from_json(
            serde_json::json!({ "amount": 1000, "currency": if i % 2 == 0 { "EUR" } else { "USD" } }),
        )
        .unwrap();
    }
    assert!(import(&more, true).kept);
    assert_eq!(c(&engines, &store, "did buy where amount = 1000"), 300);
    assert_eq!(c(&engines, &store, "did buy exactly 4 times"), 300);
    assert_eq!(c(&engines, &store, "did buy where currency = \"EUR\""), 20);
    assert_eq!(
        prepared(&engines),
        2,
        "the second import was read back instead"
    );

    engines.save_snapshots();
    drop(engines);
    drop(store);
    let (store, engines) = open(dir.path());
    assert_eq!(c(&engines, &store, "did buy exactly 4 times"), 300);
    assert_eq!(c(&engines, &store, "did buy exactly 2 times"), 20);
    assert_eq!(c(&engines, &store, "did buy where amount >= 100"), 300);
    assert_eq!(c(&engines, &store, "did buy where currency = \"USD\""), 20);
    assert_eq!(engines.from_snapshot(app), Some(true));
}

/// A large customers import (past the incremental limit: logged as the ids it wrote)
/// reaches the loaded engine in place: new customers and updated ones counted at once,
/// by the same index (no rebuild from a scan); a restart from the snapshot written after
/// it agrees.
#[test]
fn a_large_customers_import_reaches_the_loaded_engine_without_a_rebuild() {
    use unico_store::{Change, ImportBatch, UpsertItem};

    let dir = tempfile::tempdir().unwrap();
    let (app, age) = setup(dir.path());
    let (store, engines) = open(dir.path());
    assert_eq!(count(store.as_ref(), &engines, app, "age >= 30"), 150);
    let loaded = engines.index(app).unwrap();
    let head = store.log_head();
    let new = unico_store::INCREMENTAL_IMPORT_CUSTOMERS as usize + 500;
    // The 300 existing customers all set to 100, then `new` new ones of ages 0..99.
    let item = |cid: String, v: f64| UpsertItem {
        customer_id: CustomerId::parse(&cid).unwrap(),
        changes: vec![FieldChange {
            field: age.id,
            value: Some(Value::Number(v)),
        }],
        subscriptions: Vec::new(),
    };
    let items: Vec<UpsertItem> = (0..300)
        .map(|i| item(format!("c{i:04}"), 100.0))
        .chain((0..new).map(|i| item(format!("n{i:06}"), (i % 100) as f64)))
        .collect();
    let batches: Vec<ImportBatch> = items
        .chunks(1000)
        .map(|c| ImportBatch::Items(c.to_vec()))
        .chain([ImportBatch::End { keep: true }])
        .collect();
    let written = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let counts = store
        .run_import(app, Box::new(batches.into_iter()), NOW, written, None)
        .unwrap();
    assert_eq!((counts.created, counts.updated), (new as u64, 300));
    let logged: Vec<Change> = store
        .read_log(head, 100)
        .unwrap()
        .into_iter()
        .map(|e| e.change)
        .collect();
    assert!(
        matches!(logged.as_slice(), [Change::Customers { .. }]),
        "a large import is logged as its customers' ids, got {logged:?}"
    );
    let expected = 300 + (new / 100) as u64 * 70 + (new % 100).saturating_sub(30) as u64;
    assert_eq!(count(store.as_ref(), &engines, app, "age >= 30"), expected);
    assert_eq!(count(store.as_ref(), &engines, app, "age = 100"), 300);
    assert_eq!(
        count(store.as_ref(), &engines, app, "age exists"),
        300 + new as u64
    );
    assert!(
        Arc::ptr_eq(&loaded, &engines.index(app).unwrap()),
        "the engine was rebuilt instead of absorbing the import"
    );
    engines.save_snapshots();
    drop(engines);
    drop(store);
    let (store, engines) = open(dir.path());
    assert_eq!(count(store.as_ref(), &engines, app, "age >= 30"), expected);
    assert_eq!(engines.from_snapshot(app), Some(true));
}

/// An application created after the engines started gets its index at its first change,
/// so its first large import is absorbed in place rather than answered by a scan.
#[test]
fn an_application_created_later_gets_its_engine_before_its_first_import() {
    use unico_store::{ImportBatch, UpsertItem};

    let dir = tempfile::tempdir().unwrap();
    let (store, engines) = open(dir.path());
    let (app, age) = app_with_age(store.as_ref(), "later");
    // The follower starts the build at the field's entry; wait for it to be ready.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while engines.from_snapshot(app).is_none() {
        assert!(
            std::time::Instant::now() < deadline,
            "no engine was built for the new application"
        );
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    let loaded = engines.index(app).unwrap();
    let n = unico_store::INCREMENTAL_IMPORT_CUSTOMERS as usize + 1;
    let items: Vec<UpsertItem> = (0..n)
        .map(|i| UpsertItem {
            customer_id: CustomerId::parse(&format!("x{i}")).unwrap(),
            changes: vec![FieldChange {
                field: age.id,
                value: Some(Value::Number((i % 2) as f64)),
            }],
            subscriptions: Vec::new(),
        })
        .collect();
    let batches = vec![ImportBatch::Items(items), ImportBatch::End { keep: true }];
    let written = Arc::new(std::sync::atomic::AtomicU64::new(0));
    store
        .run_import(app, Box::new(batches.into_iter()), NOW, written, None)
        .unwrap();
    assert_eq!(
        count(store.as_ref(), &engines, app, "age = 1"),
        (n / 2) as u64
    );
    assert!(
        Arc::ptr_eq(&loaded, &engines.index(app).unwrap()),
        "the new application's engine was rebuilt for its import"
    );
}

/// Whether the application's snapshot file holds `marker` (a missing file holds nothing).
fn snapshot_holds(dir: &Path, app: AppId, marker: &str) -> bool {
    let path = dir
        .join("engines")
        .join(format!("engine-{}.snapshot", app.0));
    std::fs::read(path)
        .map(|b| b.windows(marker.len()).any(|w| w == marker.as_bytes()))
        .unwrap_or(false)
}

fn snapshot_exists(dir: &Path, app: AppId) -> bool {
    dir.join("engines")
        .join(format!("engine-{}.snapshot", app.0))
        .exists()
}

/// Waits (bounded) until no snapshot file holds `marker`.
fn wait_gone(dir: &Path, app: AppId, marker: &str) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while snapshot_holds(dir, app, marker) {
        assert!(
            std::time::Instant::now() < deadline,
            "the snapshot still holds {marker}"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

/// An erasure reaches a loaded engine as a change (no rebuild) and the snapshot that held
/// the customer goes at once; the next snapshot is written without it. An erasure
/// committed while no engine ran (a crash before the removal) is replayed from the log onto
/// the old snapshot, which is then written again at once.
#[test]
fn an_erasure_rewrites_the_snapshot_that_held_the_customer() {
    let dir = tempfile::tempdir().unwrap();
    let (app, _) = setup(dir.path());
    assert!(snapshot_holds(dir.path(), app, "c0042"));
    assert!(snapshot_holds(dir.path(), app, "c0043"));
    {
        let (store, engines) = open(dir.path());
        assert_eq!(count(store.as_ref(), &engines, app, "age >= 30"), 150);
        assert_eq!(engines.from_snapshot(app), Some(true));
        store
            .erase_customer(app, &CustomerId::parse("c0042").unwrap())
            .unwrap();
        // c0042 held age 42: one fewer, answered by the same (not rebuilt) index.
        assert_eq!(count(store.as_ref(), &engines, app, "age >= 30"), 149);
        assert_eq!(engines.from_snapshot(app), Some(true), "no rebuild");
        wait_gone(dir.path(), app, "c0042");
        engines.save_snapshots();
        assert!(snapshot_holds(dir.path(), app, "c0043"));
        assert!(!snapshot_holds(dir.path(), app, "c0042"));
    }
    // Erased while nothing follows the log; the old snapshot still holds c0043.
    {
        let store: Arc<dyn Store> = Arc::new(SqliteStore::open(&dir.path().join("db")).unwrap());
        store
            .erase_customer(app, &CustomerId::parse("c0043").unwrap())
            .unwrap();
    }
    assert!(snapshot_holds(dir.path(), app, "c0043"));
    let (store, engines) = open(dir.path());
    assert_eq!(count(store.as_ref(), &engines, app, "age >= 30"), 148);
    assert_eq!(
        count(store.as_ref(), &engines, app, "customerId = \"c0043\""),
        0
    );
    // Written again by itself, without waiting for the periodic snapshots.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while snapshot_holds(dir.path(), app, "c0043") || !snapshot_exists(dir.path(), app) {
        assert!(std::time::Instant::now() < deadline, "not written again");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    assert!(snapshot_holds(dir.path(), app, "c0044"));
    drop(engines);
    let (store, engines) = open(dir.path());
    assert_eq!(count(store.as_ref(), &engines, app, "age >= 30"), 148);
    assert_eq!(engines.from_snapshot(app), Some(true));
}

/// Read your writes across requests: a count asked right after a reader saw a write
/// includes it, though the commit is visible to other connections a moment before the
/// writer announces it. One thread commits customers one at a time; another waits to see
/// each one through the store, then counts at once.
#[test]
fn a_count_right_after_a_write_was_seen_includes_it() {
    const CUSTOMERS: usize = 400;
    let dir = tempfile::tempdir().unwrap();
    let (store, engines) = open(dir.path());
    let (app, age) = app_with_age(store.as_ref(), "seen");
    engines.index(app).unwrap();
    std::thread::scope(|s| {
        s.spawn(|| {
            for i in 0..CUSTOMERS {
                customer(store.as_ref(), app, &format!("s{i:04}"), &age, 1.0);
            }
        });
        for i in 0..CUSTOMERS {
            let cid = CustomerId::parse(&format!("s{i:04}")).unwrap();
            while store.get_customer(app, &cid).is_err() {
                std::hint::spin_loop();
            }
            let counted = count(store.as_ref(), &engines, app, "age = 1");
            assert!(
                counted > i as u64,
                "customer {i} was read, then a count answered {counted}"
            );
        }
    });
}
