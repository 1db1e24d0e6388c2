//! The PostgreSQL backend against the conformance suite, plus what only it promises.
//!
//! Each test gets a database of its own on the local server (created here, dropped when
//! the test's guard drops), so tests run in parallel. The server is the one `.ci/run`
//! makes sure is running: `127.0.0.1:5432`, user `postgres`, trust authentication; set
//! `UNICO_TEST_POSTGRES` to another administrative URL to use another.
#![allow(clippy::unwrap_used)]

use unico_core::{AppName, CustomerId, FieldName, FieldType, TimeZoneName};
use unico_store::{PostgresStore, Store};

use unico_store::postgres::testing::{TestDatabase, admin_url};

fn open(db: &TestDatabase) -> PostgresStore {
    PostgresStore::connect(&db.url()).unwrap()
}

fn fresh() -> (PostgresStore, TestDatabase) {
    let db = TestDatabase::create();
    (open(&db), db)
}

unico_store::conformance_suite!(fresh());

#[test]
fn data_survives_reconnecting() {
    let db = TestDatabase::create();
    let app = {
        let store = open(&db);
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
    let store = open(&db);
    assert_eq!(store.get_app(app.id).unwrap(), app);
    assert!(
        store
            .get_customer(app.id, &CustomerId::parse("x").unwrap())
            .is_ok()
    );
    assert_eq!(store.schema(app.id).unwrap().len(), 1);
    assert_eq!(store.log_head(), 2, "the head is read back at connect");
}

/// Two stores on one database stand for two servers: what one commits wakes the other's
/// waiters (through LISTEN/NOTIFY) and is read from its log, in the same order.
#[test]
fn another_servers_commits_wake_this_ones_waiters() {
    let db = TestDatabase::create();
    let (one, two) = (open(&db), open(&db));
    let app = one
        .create_app(&AppName::parse("A").unwrap(), &TimeZoneName::utc(), 1)
        .unwrap()
        .id;
    let before = two.log_head();
    std::thread::scope(|s| {
        let waiter = s.spawn(|| two.wait_log(before, std::time::Duration::from_secs(30)));
        one.create_customer(app, &CustomerId::parse("x").unwrap(), &[], 1)
            .unwrap();
        assert_eq!(waiter.join().unwrap(), one.log_head());
    });
    let entries = two.read_log(before, 10).unwrap();
    assert_eq!(entries.len(), 1);
    assert!(matches!(
        &entries[0].change,
        unico_store::Change::Customer { customer, .. } if customer.customer_id.as_str() == "x"
    ));
    // Writes through both interleave into one log, numbered one by one.
    for i in 0..10 {
        let store = if i % 2 == 0 { &one } else { &two };
        store
            .create_customer(app, &CustomerId::parse(&format!("c{i}")).unwrap(), &[], 1)
            .unwrap();
    }
    let head = one.log_head().max(two.log_head());
    assert_eq!(head, before + 11);
    let seqs: Vec<u64> = one
        .read_log(before, 100)
        .unwrap()
        .iter()
        .map(|e| e.seq)
        .collect();
    assert_eq!(seqs, (before + 1..=head).collect::<Vec<_>>());
    assert_eq!(
        two.wait_log(head - 1, std::time::Duration::from_secs(30)),
        head
    );
}

/// The database's `unico_sort_key` (which orders field sorts) gives, for every type and
/// field ids across varint widths, exactly the codec's sort key, and the missing-value
/// markers otherwise.
#[test]
fn the_sort_key_function_agrees_with_the_codec() {
    use unico_core::{FieldId, Value};
    use unico_store::codec;

    let db = TestDatabase::create();
    drop(open(&db)); // the migrations create the function
    let mut client = postgres::Client::connect(&db.url(), postgres::NoTls).unwrap();
    let values = [
        Value::Number(-1e300),
        Value::Number(-2.5),
        Value::Number(-0.0),
        Value::Number(0.0),
        Value::Number(f64::MIN_POSITIVE),
        Value::Number(3.0),
        Value::Number(f64::MAX),
        Value::Datetime(-62_135_596_800_000),
        Value::Datetime(-1),
        Value::Datetime(0),
        Value::Datetime(253_402_300_799_999),
        Value::Date(-719_162),
        Value::Date(-1),
        Value::Date(2_932_896),
        Value::String(String::new()),
        Value::String("Málaga 日本".into()),
        Value::String("x".repeat(300)),
    ];
    let ids = [1u32, 127, 128, 300, 70_000];
    for (i, value) in values.iter().enumerate() {
        // The value under one id, between others of other types.
        let target = FieldId(ids[i % ids.len()]);
        let mut fields: Vec<(FieldId, Value)> = ids
            .iter()
            .map(|&id| {
                (
                    FieldId(id),
                    values[(i + id as usize) % values.len()].clone(),
                )
            })
            .collect();
        fields.retain(|(id, _)| *id != target);
        fields.push((target, value.clone()));
        fields.sort_by_key(|(id, _)| *id);
        let blob = codec::encode(&fields);
        for &(id, ref v) in &fields {
            let key: Vec<u8> = client
                .query_one(
                    "SELECT unico_sort_key($1, $2, false)",
                    &[&blob, &i64::from(id.0)],
                )
                .unwrap()
                .get(0);
            let mut expected = vec![1u8];
            expected.extend(codec::sort_key(v));
            assert_eq!(key, expected, "{v:?} as field {}", id.0);
        }
        for (missing, descending, marker) in
            [(2u32, false, 2u8), (301, true, 0), (70_001, false, 2)]
        {
            let key: Vec<u8> = client
                .query_one(
                    "SELECT unico_sort_key($1, $2, $3)",
                    &[&blob, &i64::from(missing), &descending],
                )
                .unwrap()
                .get(0);
            assert_eq!(key, vec![marker]);
        }
    }
}

/// The least-privilege setup that `docs/scale-out.md` gives works: a login role that is no
/// superuser, cannot create databases or roles, and owns only its own schema in a
/// database an administrator owns, migrates the schema and runs every kind of work.
#[test]
fn runs_as_a_role_that_owns_only_its_schema() {
    use unico_core::{FieldChange, Value};
    use unico_store::{ImportBatch, ListQuery, Sort, SortBy, UpsertItem};

    let db = TestDatabase::create();
    let role = format!("{}_role", db.name());
    let mut admin = postgres::Client::connect(&admin_url(), postgres::NoTls).unwrap();
    admin
        .batch_execute(&format!(
            "CREATE ROLE {role} LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE;
             REVOKE ALL ON DATABASE {db} FROM PUBLIC;
             GRANT CONNECT ON DATABASE {db} TO {role};
             ALTER ROLE {role} IN DATABASE {db} SET search_path = unico;",
            db = db.name()
        ))
        .unwrap();
    let mut in_db = postgres::Client::connect(&db.url(), postgres::NoTls).unwrap();
    in_db
        .batch_execute(&format!("CREATE SCHEMA unico AUTHORIZATION {role}"))
        .unwrap();
    drop(in_db);
    // The same server and database, as the role.
    let config: postgres::Config = db.url().parse().unwrap();
    let mut url = format!("dbname={} user={role}", db.name());
    for host in config.get_hosts() {
        if let postgres::config::Host::Tcp(h) = host {
            url.push_str(&format!(" host={h}"));
        }
    }
    if let Some(port) = config.get_ports().first() {
        url.push_str(&format!(" port={port}"));
    }
    {
        let store = PostgresStore::connect(&url).unwrap();
        let app = store
            .create_app(&AppName::parse("A").unwrap(), &TimeZoneName::utc(), 1)
            .unwrap()
            .id;
        let n = store
            .create_field(app, &FieldName::parse("n").unwrap(), FieldType::Number, 1)
            .unwrap();
        let items = (0..50)
            .map(|i| UpsertItem {
                customer_id: CustomerId::parse(&format!("c{i}")).unwrap(),
                changes: vec![FieldChange {
                    field: n.id,
                    value: Some(Value::Number(f64::from(i % 7))),
                }],
                subscriptions: Vec::new(),
            })
            .collect();
        let batches = vec![ImportBatch::Items(items), ImportBatch::End { keep: true }];
        store
            .run_import(
                app,
                Box::new(batches.into_iter()),
                2,
                Default::default(),
                None,
            )
            .unwrap();
        let page = store
            .list_customers(
                app,
                &ListQuery {
                    sort: Sort {
                        by: SortBy::Field(n.clone()),
                        descending: true,
                    },
                    after: None,
                    limit: 3,
                },
            )
            .unwrap();
        assert_eq!(page.customers[0].get(n.id), Some(&Value::Number(6.0)));
        store
            .delete_field(app, &FieldName::parse("n").unwrap())
            .unwrap();
        assert_eq!(store.read_log(0, 100).unwrap().len(), 52);
        assert_eq!(store.prune_log(i64::MAX).unwrap(), 51);
    }
    // Everything landed in the role's schema, nothing in public.
    let mut in_db = postgres::Client::connect(&db.url(), postgres::NoTls).unwrap();
    let tables: Vec<String> = in_db
        .query(
            "SELECT table_schema FROM information_schema.tables WHERE table_name = 'customers'",
            &[],
        )
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(tables, ["unico"]);
    drop(in_db);
    drop(db);
    let _ = admin.batch_execute(&format!("DROP ROLE IF EXISTS {role}"));
}

/// When the listening session is cut (a database restart, an administrator), the listener
/// connects again and rereads the head: commits made meanwhile by another server still wake
/// this one's waiters.
#[test]
fn the_listener_comes_back_after_its_session_is_cut() {
    let db = TestDatabase::create();
    let (one, two) = (open(&db), open(&db));
    let app = one
        .create_app(&AppName::parse("A").unwrap(), &TimeZoneName::utc(), 1)
        .unwrap()
        .id;
    let before = one.log_head();
    let mut admin = postgres::Client::connect(&admin_url(), postgres::NoTls).unwrap();
    let cut = admin
        .execute(
            // Waits (up to 10 s) until each session is gone: the commit below then happens
            // while nobody listens, and only the reconnect's reread of the head can tell.
            "SELECT pg_terminate_backend(pid, 10000) FROM pg_stat_activity
             WHERE datname = $1 AND application_name = 'unico-log-listener'",
            &[&db.name()],
        )
        .unwrap();
    assert_eq!(cut, 2, "both stores' listeners");
    two.create_customer(app, &CustomerId::parse("x").unwrap(), &[], 1)
        .unwrap();
    assert_eq!(
        one.wait_log(before, std::time::Duration::from_secs(30)),
        before + 1,
        "heard after reconnecting"
    );
}

/// Single-customer writes are committed in groups by a few writer connections. Writes of
/// customers another session holds (an import, a long transaction) must not hold those
/// groups back: they wait on their own, and every other write goes through meanwhile.
#[test]
fn writes_of_held_customers_hold_no_group_back() {
    let db = TestDatabase::create();
    let store = open(&db);
    let app = store
        .create_app(&AppName::parse("A").unwrap(), &TimeZoneName::utc(), 1)
        .unwrap()
        .id;
    let field = store
        .create_field(app, &FieldName::parse("f").unwrap(), FieldType::Number, 1)
        .unwrap()
        .id;
    let set = |v: f64| {
        [unico_core::FieldChange {
            field,
            value: Some(unico_core::Value::Number(v)),
        }]
    };
    let held: Vec<CustomerId> = (0..4)
        .map(|i| CustomerId::parse(&format!("held{i}")).unwrap())
        .collect();
    for c in &held {
        store.create_customer(app, c, &[], 1).unwrap();
    }
    // More held customers than the store has writers: were a waiting write to keep its
    // group, every writer would be stuck behind one.
    let mut other = postgres::Client::connect(&db.url(), postgres::NoTls).unwrap();
    let mut holder = other.transaction().unwrap();
    holder
        .execute(
            "SELECT 1 FROM customers WHERE customer_id LIKE 'held%' FOR UPDATE",
            &[],
        )
        .unwrap();
    let done = std::sync::atomic::AtomicUsize::new(0);
    std::thread::scope(|s| {
        let waiting: Vec<_> = held
            .iter()
            .map(|c| {
                let (store, done) = (&store, &done);
                s.spawn(move || {
                    let r = store.update_customer(app, c, &set(7.0), 2);
                    done.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                    r
                })
            })
            .collect();
        let (freed, free_done) = std::sync::mpsc::channel();
        let store = &store;
        s.spawn(move || {
            for i in 0..40 {
                let c = CustomerId::parse(&format!("free{i}")).unwrap();
                store
                    .create_customer(app, &c, &set(f64::from(i)), 2)
                    .unwrap();
            }
            freed.send(()).unwrap();
        });
        let went_through = free_done.recv_timeout(std::time::Duration::from_secs(30));
        let still_waiting = done.load(std::sync::atomic::Ordering::SeqCst) == 0;
        // Let the held writes go before judging, so no thread stays stuck.
        holder.commit().unwrap();
        assert!(
            went_through.is_ok(),
            "the other writes waited for the held customers"
        );
        assert!(
            still_waiting,
            "the held customers' writes waited for their rows"
        );
        for w in waiting {
            w.join().unwrap().unwrap();
        }
    });
    for c in &held {
        assert_eq!(
            store.get_customer(app, c).unwrap().fields,
            vec![(field, unico_core::Value::Number(7.0))]
        );
    }
    assert_eq!(
        count(
            &db,
            "SELECT count(*) FROM customers WHERE customer_id LIKE 'free%'"
        ),
        40
    );
    assert_eq!(store.field_stats(app).unwrap()[0].value_count, 44);
}

/// What the test database holds of events and customers, straight from its tables.
fn count(db: &TestDatabase, sql: &str) -> i64 {
    let mut client = postgres::Client::connect(&db.url(), postgres::NoTls).unwrap();
    client.query_one(sql, &[]).unwrap().get(0)
}

fn event_type(code: &str) -> unico_core::EventType {
    unico_core::EventType {
        code: unico_core::EventCode::parse(code).unwrap(),
        name: code.to_owned(),
        retention_days: 3650,
        enabled: true,
        properties: Vec::new(),
        created_at: 1,
    }
}

fn new_event(key: Option<String>, customer: &str, ts: i64) -> unico_store::NewEvent {
    unico_store::NewEvent {
        by_identity: None,
        event_id: key,
        customer_id: CustomerId::parse(customer).unwrap(),
        event_type: unico_core::EventCode::parse("purchase").unwrap(),
        channel: unico_core::Channel::parse("web").unwrap(),
        device_id: None,
        timestamp: ts,
        properties: Default::default(),
    }
}

/// Two servers storing the same keys in opposite orders, each item for a customer of its
/// own, plus keyless events of one shared new customer: no batch fails (no deadlock), each
/// key is stored once, a customer exists only if one of its events was stored (a customer
/// created for a key another batch stored first is removed again), and the log names
/// exactly the events and customers stored.
#[test]
fn two_servers_storing_the_same_keys_store_each_once() {
    use std::collections::HashSet;
    use unico_store::{Before, Change};

    const NOW: i64 = 1_796_083_200_000;
    let db = TestDatabase::create();
    let (one, two) = (open(&db), open(&db));
    let app = one
        .create_app(&AppName::parse("A").unwrap(), &TimeZoneName::utc(), 1)
        .unwrap()
        .id;
    one.create_event_type(app, &event_type("purchase")).unwrap();
    let keys: Vec<String> = (0..300).map(|i| format!("k{i:03}")).collect();
    let stored: Vec<i64> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..4)
            .map(|t| {
                let store = if t % 2 == 0 { &one } else { &two };
                let mut mine: Vec<&String> = keys.iter().collect();
                if t % 2 == 1 {
                    mine.reverse();
                }
                s.spawn(move || {
                    let mut ids = Vec::new();
                    for chunk in mine.chunks(30) {
                        let mut batch: Vec<_> = chunk
                            .iter()
                            .map(|k| new_event(Some((*k).clone()), &format!("c-{k}-{t}"), NOW))
                            .collect();
                        batch.push(new_event(None, "shared", NOW));
                        for r in store.insert_events(app, batch, NOW).unwrap() {
                            let r = r.unwrap();
                            if !r.duplicate {
                                ids.push(r.id);
                            }
                        }
                    }
                    ids
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().unwrap())
            .collect()
    });
    let keyless = 4 * 10;
    assert_eq!(stored.len(), keys.len() + keyless);
    assert_eq!(
        count(&db, "SELECT count(DISTINCT event_key) FROM events"),
        keys.len() as i64
    );
    assert_eq!(
        count(&db, "SELECT count(*) FROM events"),
        (keys.len() + keyless) as i64
    );
    assert_eq!(
        count(
            &db,
            "SELECT count(*) FROM customers c WHERE NOT EXISTS (SELECT 1 FROM events e WHERE e.customer = c.id)"
        ),
        0,
        "no customer was left without its event"
    );
    let customers = count(&db, "SELECT count(*) FROM customers");
    assert_eq!(customers, keys.len() as i64 + 1);
    let (mut logged_events, mut logged_customers) = (Vec::new(), HashSet::new());
    for entry in one.read_log(0, 100_000).unwrap() {
        match entry.change {
            Change::Events { ranges, .. } => {
                logged_events.extend(ranges.iter().flat_map(|&(lo, hi)| lo..=hi))
            }
            Change::Customer {
                customer,
                before: Before::Created,
                ..
            } => assert!(logged_customers.insert(customer.id), "logged once"),
            _ => {}
        }
    }
    logged_events.sort_unstable();
    let mut stored = stored;
    stored.sort_unstable();
    assert_eq!(logged_events, stored);
    assert_eq!(logged_customers.len() as i64, customers);
}

/// Customers deleted while events are written for them: every batch succeeds, and no event
/// is left whose customer is gone (events have no foreign key; the write locks and the
/// deletion's own delete keep them in step).
#[test]
fn events_never_outlive_their_customer() {
    const NOW: i64 = 1_796_083_200_000;
    let db = TestDatabase::create();
    let store = open(&db);
    let app = store
        .create_app(&AppName::parse("A").unwrap(), &TimeZoneName::utc(), 1)
        .unwrap()
        .id;
    store
        .create_event_type(app, &event_type("purchase"))
        .unwrap();
    let done = std::sync::atomic::AtomicBool::new(false);
    std::thread::scope(|s| {
        let deleter = s.spawn(|| {
            let mut deleted = 0;
            while !done.load(std::sync::atomic::Ordering::Relaxed) {
                for i in 0..5 {
                    let c = CustomerId::parse(&format!("x{i}")).unwrap();
                    if store.delete_customer(app, &c).is_ok() {
                        deleted += 1;
                    }
                }
            }
            deleted
        });
        for round in 0..100 {
            let batch = (0..5)
                .flat_map(|i| (0..4).map(move |j| (i, j)))
                .map(|(i, j)| new_event(Some(format!("r{round}-{i}-{j}")), &format!("x{i}"), NOW))
                .collect();
            for r in store.insert_events(app, batch, NOW).unwrap() {
                r.unwrap();
            }
        }
        done.store(true, std::sync::atomic::Ordering::Relaxed);
        assert!(deleter.join().unwrap() > 0, "deletions ran meanwhile");
    });
    assert_eq!(
        count(
            &db,
            "SELECT count(*) FROM events e WHERE NOT EXISTS (SELECT 1 FROM customers c WHERE c.id = e.customer)"
        ),
        0
    );
}

/// Two servers merging customers into one while both write events, values and consent
/// for every one of them: nothing is lost or lands on a merged (deleted) customer, and no
/// merged customerId comes back as a customer of its own (writers waiting for a merge
/// follow its alias to the survivor).
#[test]
fn merges_racing_writers_on_two_servers_lose_nothing() {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use unico_core::{Channel, FieldChange, Source, SubscriptionChange, Value};
    const NOW: i64 = 1_796_083_200_000;
    const ROUNDS: usize = 60;
    const MERGED: usize = 4;
    let db = TestDatabase::create();
    let (one, two) = (open(&db), open(&db));
    let servers: [&PostgresStore; 2] = [&one, &two];
    let app = one
        .create_app(&AppName::parse("A").unwrap(), &TimeZoneName::utc(), 1)
        .unwrap()
        .id;
    one.create_event_type(app, &event_type("purchase")).unwrap();
    let n = one
        .create_field(app, &FieldName::parse("n").unwrap(), FieldType::Number, 1)
        .unwrap();
    let cid = |k: usize| CustomerId::parse(&format!("c{k}")).unwrap();
    for k in 0..=MERGED {
        one.create_customer(app, &cid(k), &[], NOW).unwrap();
    }
    // Upserts that landed on their own customer, and on the survivor through the alias.
    let seen = [AtomicUsize::new(0), AtomicUsize::new(0)];
    let seen = &seen;
    std::thread::scope(|s| {
        for k in 1..=MERGED {
            let store = servers[k % 2];
            s.spawn(move || {
                for r in 0..ROUNDS {
                    // Both sides of the merge in one batch, in either order.
                    let mut batch = vec![
                        new_event(Some(format!("e{k}-{r}")), &format!("c{k}"), NOW),
                        new_event(Some(format!("s{k}-{r}")), "c0", NOW),
                    ];
                    if r % 2 == 1 {
                        batch.reverse();
                    }
                    for out in store.insert_events(app, batch, NOW).unwrap() {
                        out.unwrap();
                    }
                }
            });
            let store = servers[(k + 1) % 2];
            let n = n.clone();
            s.spawn(move || {
                for r in 0..ROUNDS {
                    let change = FieldChange {
                        field: n.id,
                        value: Some(Value::Number(r as f64)),
                    };
                    let item = unico_store::UpsertItem {
                        customer_id: cid(k),
                        changes: vec![change],
                        subscriptions: vec![],
                    };
                    for out in store.upsert_batch(app, vec![item], NOW).unwrap() {
                        let landed = &out.unwrap().customer.customer_id;
                        seen[usize::from(*landed == cid(0))].fetch_add(1, Ordering::Relaxed);
                    }
                    let consent = SubscriptionChange {
                        channel: Channel::parse("email").unwrap(),
                        subscribed: r % 2 == 0,
                        at: NOW + r as i64,
                        source: Source::api(),
                    };
                    store
                        .set_subscriptions(app, &cid(k), &[consent], false, NOW)
                        .unwrap();
                }
            });
        }
        s.spawn(move || {
            for k in 1..=MERGED {
                std::thread::sleep(std::time::Duration::from_millis(20));
                servers[k % 2]
                    .merge_customers(app, &cid(0), &cid(k), NOW)
                    .unwrap();
            }
        });
    });
    assert!(
        seen.iter().all(|n| n.load(Ordering::Relaxed) > 0),
        "the merges ran amid the writes"
    );
    assert_eq!(
        one.count_customers(app).unwrap(),
        1,
        "no merged id came back"
    );
    let total = (2 * MERGED * ROUNDS) as u64;
    assert_eq!(one.customer_activity(app, &cid(0)).unwrap().events, total);
    for k in 1..=MERGED {
        assert_eq!(one.get_customer(app, &cid(k)).unwrap().customer_id, cid(0));
    }
    assert_eq!(
        count(
            &db,
            "SELECT count(*) FROM events e WHERE NOT EXISTS (SELECT 1 FROM customers c WHERE c.id = e.customer)"
        ),
        0
    );
    assert_eq!(
        count(&db, "SELECT count(*) FROM subscription_history"),
        (MERGED * ROUNDS) as i64,
        "every consent statement is kept, on the survivor"
    );
    let stats = one.field_stats(app).unwrap();
    assert_eq!(stats[0].value_count, 1, "value counts follow the merges");
    assert_eq!(one.merges(app, &cid(0)).unwrap().len(), MERGED);
}

/// How many events per second batches of 1 000 reach (not a check: a measurement, run by
/// hand in a release build; `BATCHES` batches of each kind, 50 by default):
/// `cargo test --release -p unico-store --test postgres -- --ignored event_insert_rate --nocapture`.
#[test]
#[ignore]
fn event_insert_rate() {
    const NOW: i64 = 1_796_083_200_000;
    let batches: usize = std::env::var("BATCHES")
        .ok()
        .and_then(|b| b.parse().ok())
        .unwrap_or(50);
    let db = TestDatabase::create();
    let store = open(&db);
    let app = store
        .create_app(&AppName::parse("A").unwrap(), &TimeZoneName::utc(), 1)
        .unwrap()
        .id;
    store
        .create_event_type(app, &event_type("purchase"))
        .unwrap();
    let mut props = serde_json::Map::new();
    props.insert("amount".into(), serde_json::json!(59.9));
    props.insert("sku".into(), serde_json::json!("A-1234"));
    let props = unico_core::Properties::from_json(serde_json::Value::Object(props)).unwrap();
    let run = |what: &str, customer: &dyn Fn(usize, usize) -> String, keyed: bool| {
        let start = std::time::Instant::now();
        for b in 0..batches {
            let batch = (0..1000)
                .map(|i| {
                    let key = keyed.then(|| format!("{what}-{b}-{i}"));
                    let mut e = new_event(key, &customer(b, i), NOW - i as i64);
                    e.properties = props.clone();
                    e
                })
                .collect();
            for r in store.insert_events(app, batch, NOW).unwrap() {
                r.unwrap();
            }
        }
        let secs = start.elapsed().as_secs_f64();
        println!(
            "{what}: {batches} batches of 1 000 in {secs:.2} s: {:.0} events/s",
            (batches * 1000) as f64 / secs
        );
    };
    run("keyed, new customers", &|b, i| format!("n{b}-{i}"), true);
    run("keyed, existing customers", &|_, i| format!("n0-{i}"), true);
    run(
        "no key, existing customers",
        &|_, i| format!("n0-{i}"),
        false,
    );
}

fn typed_event(code: &str, customer: &str, key: Option<String>) -> unico_store::NewEvent {
    unico_store::NewEvent {
        by_identity: None,
        event_type: unico_core::EventCode::parse(code).unwrap(),
        ..new_event(key, customer, 1_796_083_200_000)
    }
}

/// Writes registering types on first sight, through two servers at once: the same new type
/// from four writers is registered once and none fails; near the limit, exactly as many
/// types as fit are registered, and the items of the others are refused alone.
#[test]
fn writes_registering_types_at_once_keep_to_the_limit() {
    use unico_core::limits::MAX_EVENT_TYPES_PER_APP;

    const NOW: i64 = 1_796_083_200_000;
    let db = TestDatabase::create();
    let (one, two) = (open(&db), open(&db));
    let app = one
        .create_app(&AppName::parse("A").unwrap(), &TimeZoneName::utc(), 1)
        .unwrap()
        .id;
    one.set_meta(&unico_store::events::auto_register_key(app), "true")
        .unwrap();
    std::thread::scope(|s| {
        for t in 0..4 {
            let store = if t % 2 == 0 { &one } else { &two };
            s.spawn(move || {
                let batch = vec![typed_event("signup", &format!("c{t}"), None)];
                for r in store.insert_events(app, batch, NOW).unwrap() {
                    r.unwrap();
                }
            });
        }
    });
    assert_eq!(
        count(
            &db,
            "SELECT count(*) FROM event_types WHERE code = 'signup'"
        ),
        1
    );
    assert_eq!(count(&db, "SELECT count(*) FROM events"), 4);
    // Four places left; four writers bring two new types each.
    let mut client = postgres::Client::connect(&db.url(), postgres::NoTls).unwrap();
    client
        .execute(
            "INSERT INTO event_types (app_id, code, name, retention_days, enabled, properties, created_at)
             SELECT $1, 'filler' || n, 'filler', 30, true, '', 1 FROM generate_series(1, $2::bigint) AS n",
            &[&app.0, &(MAX_EVENT_TYPES_PER_APP as i64 - 5)],
        )
        .unwrap();
    let outcomes: Vec<bool> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..4)
            .map(|t| {
                let store = if t % 2 == 0 { &one } else { &two };
                s.spawn(move || {
                    let batch = vec![
                        typed_event(&format!("t{t}a"), &format!("d{t}"), None),
                        typed_event(&format!("t{t}b"), &format!("d{t}"), None),
                    ];
                    store
                        .insert_events(app, batch, NOW)
                        .unwrap()
                        .into_iter()
                        .map(|r| match r {
                            Ok(_) => true,
                            Err(unico_store::StoreError::Invalid(_)) => false,
                            Err(e) => panic!("{e:?}"),
                        })
                        .collect::<Vec<bool>>()
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().unwrap())
            .collect()
    });
    assert_eq!(outcomes.iter().filter(|ok| **ok).count(), 4);
    assert_eq!(
        count(&db, "SELECT count(*) FROM event_types"),
        MAX_EVENT_TYPES_PER_APP as i64
    );
    assert_eq!(
        one.schema(app).unwrap().event_types().all().len(),
        MAX_EVENT_TYPES_PER_APP
    );
}

/// An events import creating customers past the incremental limit is logged as one entry
/// of their ids, then one of its events' ids (views read both back, no rescan); keys
/// repeated across its batches, and keys stored before it, are duplicates.
#[test]
fn a_large_events_import_is_logged_as_its_customers_and_events() {
    use unico_store::{Change, EventBatch};

    const NOW: i64 = 1_796_083_200_000;
    let db = TestDatabase::create();
    let store = open(&db).with_incremental_import_limit(5);
    let app = store
        .create_app(&AppName::parse("A").unwrap(), &TimeZoneName::utc(), 1)
        .unwrap()
        .id;
    store
        .create_event_type(app, &event_type("purchase"))
        .unwrap();
    store
        .insert_events(app, vec![new_event(Some("k0".into()), "c0", NOW)], NOW)
        .unwrap();
    let head = store.log_head();
    let batch = |from: usize| -> Vec<unico_store::NewEvent> {
        (from..from + 100)
            .map(|i| new_event(Some(format!("k{i}")), &format!("c{}", i % 20), NOW))
            .collect()
    };
    // The third batch repeats the first one's keys; `k0` was stored before.
    let feed = vec![
        EventBatch::Items(batch(0)),
        EventBatch::Items(batch(100)),
        EventBatch::Items(batch(0)),
        EventBatch::End { keep: true },
    ];
    let written = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    let counts = store
        .run_event_import(
            app,
            Box::new(feed.into_iter()),
            NOW,
            written.clone(),
            None,
            None,
        )
        .unwrap();
    assert!(counts.kept);
    assert_eq!((counts.created, counts.updated), (19, 101));
    assert_eq!(written.load(std::sync::atomic::Ordering::Relaxed), 300);
    assert_eq!(count(&db, "SELECT count(*) FROM events"), 200);
    let entries = store.read_log(head, 100).unwrap();
    assert_eq!(entries.len(), 2, "{entries:?}");
    assert!(
        matches!(&entries[0].change, Change::Customers { ranges, .. } if ranges.iter().map(|(lo, hi)| hi - lo + 1).sum::<i64>() == 19),
        "the 19 customers created, by id: {entries:?}"
    );
    assert!(matches!(entries[1].change, Change::Events { .. }));
}

/// While an events import that registered a type runs, batches of known types are written
/// at once; a batch that must register a type waits for the import's end (the
/// registration turn the import holds), and then succeeds, logged after the import.
#[test]
fn batches_run_beside_an_events_import() {
    use std::sync::atomic::Ordering;
    use std::time::{Duration, Instant};
    use unico_store::{Change, EventBatch};

    const NOW: i64 = 1_796_083_200_000;
    let db = TestDatabase::create();
    let store = open(&db);
    let app = store
        .create_app(&AppName::parse("A").unwrap(), &TimeZoneName::utc(), 1)
        .unwrap()
        .id;
    store
        .create_event_type(app, &event_type("purchase"))
        .unwrap();
    store
        .set_meta(&unico_store::events::auto_register_key(app), "true")
        .unwrap();
    let head = store.log_head();
    let (tx, rx) = std::sync::mpsc::sync_channel::<EventBatch>(1);
    let written = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    std::thread::scope(|s| {
        let import = s.spawn(|| {
            store.run_event_import(
                app,
                Box::new(rx.into_iter()),
                NOW,
                written.clone(),
                None,
                None,
            )
        });
        tx.send(EventBatch::Items(
            (0..10)
                .map(|i| typed_event("backfill", &format!("b{i}"), Some(format!("b{i}"))))
                .collect(),
        ))
        .unwrap();
        let deadline = Instant::now() + Duration::from_secs(30);
        while written.load(Ordering::Relaxed) == 0 {
            assert!(Instant::now() < deadline, "the import wrote its batch");
            std::thread::sleep(Duration::from_millis(5));
        }
        let live = store
            .insert_events(app, vec![new_event(None, "live", NOW)], NOW)
            .unwrap();
        assert!(live[0].as_ref().unwrap().customer_created);
        let late = s.spawn(|| {
            let r = store.insert_events(app, vec![typed_event("late", "late", None)], NOW);
            (r, Instant::now())
        });
        std::thread::sleep(Duration::from_millis(300));
        assert!(
            !late.is_finished(),
            "a registering batch waits for the import"
        );
        let ended = Instant::now();
        tx.send(EventBatch::End { keep: true }).unwrap();
        let counts = import.join().unwrap().unwrap();
        assert_eq!(counts.created, 10);
        let (late, at) = late.join().unwrap();
        assert!(late.unwrap()[0].is_ok());
        assert!(at >= ended);
    });
    let logged: Vec<String> = store
        .read_log(head, 100)
        .unwrap()
        .into_iter()
        .map(|e| match e.change {
            Change::Schema { schema, .. } => format!("schema {}", schema.event_types().all().len()),
            Change::Customer { customer, .. } => customer.customer_id.as_str().to_owned(),
            Change::Events { ranges, .. } => format!(
                "events {}",
                ranges.iter().map(|(lo, hi)| hi - lo + 1).sum::<i64>()
            ),
            other => format!("{other:?}"),
        })
        .collect();
    let mut expected = vec!["live".to_owned(), "events 1".to_owned()];
    expected.push("schema 2".into());
    expected.extend((0..10).map(|i| format!("b{i}")));
    expected.extend(["events 10", "schema 3", "late", "events 1"].map(String::from));
    assert_eq!(logged, expected);
}

/// How many events per second an events import reaches (not a check: a measurement, run by
/// hand in a release build): `EVENTS` events (1 000 000 by default) in batches of 4 096, as
/// the NDJSON import sends them, each with a key and two properties, for `CUSTOMERS`
/// customers (100 000 by default) created by their first event, in one import:
/// `cargo test --release -p unico-store --test postgres -- --ignored event_import_rate --nocapture`.
#[test]
#[ignore]
fn event_import_rate() {
    use unico_store::EventBatch;

    const NOW: i64 = 1_796_083_200_000;
    const BATCH: usize = 4096;
    let env = |name: &str, default: usize| -> usize {
        std::env::var(name)
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(default)
    };
    let (events, customers) = (env("EVENTS", 1_000_000), env("CUSTOMERS", 100_000));
    let db = TestDatabase::create();
    let store = open(&db);
    let app = store
        .create_app(&AppName::parse("A").unwrap(), &TimeZoneName::utc(), 1)
        .unwrap()
        .id;
    store
        .create_event_type(app, &event_type("purchase"))
        .unwrap();
    let mut props = serde_json::Map::new();
    props.insert("amount".into(), serde_json::json!(59.9));
    props.insert("sku".into(), serde_json::json!("A-1234"));
    let props = unico_core::Properties::from_json(serde_json::Value::Object(props)).unwrap();
    // Built ahead, so only the store's work is timed.
    let feed: Vec<EventBatch> = (0..events)
        .collect::<Vec<_>>()
        .chunks(BATCH)
        .map(|chunk| {
            EventBatch::Items(
                chunk
                    .iter()
                    .map(|&i| {
                        // Customers spread over the file, as a backfill in time order has them.
                        let c = (i * 7919) % customers;
                        let mut e = new_event(
                            Some(format!("e-{i}")),
                            &format!("customer-{c}"),
                            NOW - (events - i) as i64 * 1000,
                        );
                        e.properties = props.clone();
                        e
                    })
                    .collect(),
            )
        })
        .chain([EventBatch::End { keep: true }])
        .collect();
    let start = std::time::Instant::now();
    let counts = store
        .run_event_import(
            app,
            Box::new(feed.into_iter()),
            NOW,
            Default::default(),
            None,
            None,
        )
        .unwrap();
    let secs = start.elapsed().as_secs_f64();
    assert_eq!(counts.created as usize, customers.min(events));
    println!(
        "import of {events} events ({customers} customers created) in {secs:.2} s: {:.0} events/s",
        events as f64 / secs
    );
}
