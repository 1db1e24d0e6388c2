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
