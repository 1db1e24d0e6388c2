//! A PostgreSQL database made for one test, for this crate's tests and those of the crates
//! above it (like the conformance suite, it ships with the library so every test suite
//! uses the same one).
//!
//! It is created on the server named by `UNICO_TEST_POSTGRES` (an administrative
//! `postgres://` URL;
//! default `postgres://postgres@127.0.0.1:5432/postgres`, the server `.ci/run` makes sure
//! is running) with a name of its own, so tests run in parallel, and dropped with its
//! guard, connections and all.

use std::sync::atomic::{AtomicU64, Ordering};

use postgres::{Client, NoTls};

/// The administrative URL tests create their databases through.
pub fn admin_url() -> String {
    std::env::var("UNICO_TEST_POSTGRES")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned())
}

/// A connection with the administrative URL.
pub fn admin() -> Result<Client, postgres::Error> {
    Client::connect(&admin_url(), NoTls)
}

/// A database of its own for one test; dropped with the guard.
pub struct TestDatabase {
    name: String,
}

impl TestDatabase {
    /// Creates an empty database; panics if the server cannot be reached (a test that
    /// needs PostgreSQL cannot go on without it).
    pub fn create() -> TestDatabase {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        let name = format!(
            "unico_test_{}_{}_{nanos}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        let created = admin().and_then(|mut c| c.batch_execute(&format!("CREATE DATABASE {name}")));
        if let Err(e) = created {
            panic!(
                "cannot create the test database {name} through {}: {e}",
                admin_url()
            );
        }
        TestDatabase { name }
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// The database's URL: the administrative URL with this database in place of its own.
    pub fn url(&self) -> String {
        let admin = admin_url();
        let (base, query) = match admin.split_once('?') {
            Some((base, query)) => (base, format!("?{query}")),
            None => (admin.as_str(), String::new()),
        };
        let server = base.rsplit_once('/').map_or(base, |(server, _)| server);
        format!("{server}/{}{query}", self.name)
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        if let Ok(mut admin) = admin() {
            let _ = admin.batch_execute(&format!(
                "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                self.name
            ));
        }
    }
}
