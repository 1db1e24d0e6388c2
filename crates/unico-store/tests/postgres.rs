//! The PostgreSQL backend against the conformance suite, plus what only it promises.
//!
//! Each test gets a database of its own on the local server (created here, dropped when
//! the test's guard drops), so tests run in parallel. The server is the one `.ci/run`
//! makes sure is running: `127.0.0.1:5432`, user `postgres`, trust authentication; set
//! `UNICO_TEST_POSTGRES` to another administrative URL to use another.
#![allow(clippy::unwrap_used)]

use std::sync::atomic::{AtomicU64, Ordering};

use unico_core::{AppName, CustomerId, FieldName, FieldType, TimeZoneName};
use unico_store::{PostgresStore, Store};

const DEFAULT_ADMIN_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";

fn admin_url() -> String {
    std::env::var("UNICO_TEST_POSTGRES").unwrap_or_else(|_| DEFAULT_ADMIN_URL.to_owned())
}

/// A database made for one test, dropped (its connections ended) with the guard.
struct TestDb {
    name: String,
}

impl TestDb {
    fn create() -> TestDb {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .subsec_nanos();
        let name = format!(
            "unico_test_{}_{}_{nanos}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        let mut admin = postgres::Client::connect(&admin_url(), postgres::NoTls).unwrap();
        admin
            .batch_execute(&format!("CREATE DATABASE {name}"))
            .unwrap();
        TestDb { name }
    }

    fn url(&self) -> String {
        let mut config: postgres::Config = admin_url().parse().unwrap();
        config.dbname(&self.name);
        // The key=value form takes every setting the admin URL had.
        let mut url = format!("dbname={}", self.name);
        if let Some(user) = config.get_user() {
            url.push_str(&format!(" user={user}"));
        }
        for host in config.get_hosts() {
            if let postgres::config::Host::Tcp(h) = host {
                url.push_str(&format!(" host={h}"));
            }
        }
        if let Some(port) = config.get_ports().first() {
            url.push_str(&format!(" port={port}"));
        }
        url
    }

    fn open(&self) -> PostgresStore {
        PostgresStore::connect(&self.url()).unwrap()
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        if let Ok(mut admin) = postgres::Client::connect(&admin_url(), postgres::NoTls) {
            let _ = admin.batch_execute(&format!(
                "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                self.name
            ));
        }
    }
}

fn fresh() -> (PostgresStore, TestDb) {
    let db = TestDb::create();
    (db.open(), db)
}

unico_store::conformance_suite!(fresh());

#[test]
fn data_survives_reconnecting() {
    let db = TestDb::create();
    let app = {
        let store = db.open();
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
    let store = db.open();
    assert_eq!(store.get_app(app.id).unwrap(), app);
    assert!(
        store
            .get_customer(app.id, &CustomerId::parse("x").unwrap())
            .is_ok()
    );
    assert_eq!(store.schema(app.id).unwrap().len(), 1);
    assert_eq!(store.log_head(), 2, "the head is read back at connect");
}
