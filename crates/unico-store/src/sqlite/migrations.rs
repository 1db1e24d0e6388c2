//! The embedded database's schema, as numbered migrations applied in order at open.
//!
//! `PRAGMA user_version` records how many have run. A migration, once released, is never
//! edited: changes are new migrations. A database from a newer build is refused.

use rusqlite::Connection;

use crate::error::StoreError;

const MIGRATIONS: &[&str] = &[
    // 1: applications, keys, fields, customers (values as one blob per customer).
    "CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID;
     CREATE TABLE apps (
         id INTEGER PRIMARY KEY AUTOINCREMENT,
         name TEXT NOT NULL,
         timezone TEXT NOT NULL,
         created_at INTEGER NOT NULL);
     CREATE TABLE api_keys (
         id INTEGER PRIMARY KEY AUTOINCREMENT,
         app_id INTEGER NOT NULL REFERENCES apps(id) ON DELETE CASCADE,
         hash BLOB NOT NULL UNIQUE,
         prefix TEXT NOT NULL,
         created_at INTEGER NOT NULL,
         revoked_at INTEGER);
     CREATE INDEX api_keys_by_app ON api_keys(app_id);
     CREATE TABLE fields (
         id INTEGER PRIMARY KEY AUTOINCREMENT,
         app_id INTEGER NOT NULL REFERENCES apps(id) ON DELETE CASCADE,
         name TEXT NOT NULL,
         type TEXT NOT NULL,
         created_at INTEGER NOT NULL,
         value_count INTEGER NOT NULL DEFAULT 0,
         UNIQUE (app_id, name));
     CREATE TABLE customers (
         id INTEGER PRIMARY KEY AUTOINCREMENT,
         app_id INTEGER NOT NULL,
         customer_id TEXT NOT NULL,
         created_at INTEGER NOT NULL,
         updated_at INTEGER NOT NULL,
         data BLOB NOT NULL);
     CREATE UNIQUE INDEX customers_by_customer_id ON customers(app_id, customer_id);
     CREATE INDEX customers_by_updated_at ON customers(app_id, updated_at, customer_id);",
    // 2: import history and the rows each import rejected.
    "CREATE TABLE imports (
         id INTEGER PRIMARY KEY AUTOINCREMENT,
         app_id INTEGER NOT NULL REFERENCES apps(id) ON DELETE CASCADE,
         mode TEXT NOT NULL,
         state TEXT NOT NULL,
         created_at INTEGER NOT NULL,
         finished_at INTEGER,
         rows_read INTEGER NOT NULL DEFAULT 0,
         rows_written INTEGER NOT NULL DEFAULT 0,
         created INTEGER NOT NULL DEFAULT 0,
         updated INTEGER NOT NULL DEFAULT 0,
         values_written INTEGER NOT NULL DEFAULT 0,
         rows_rejected INTEGER NOT NULL DEFAULT 0,
         message TEXT);
     CREATE INDEX imports_by_app ON imports(app_id, id);
     CREATE TABLE import_errors (
         import_id INTEGER NOT NULL REFERENCES imports(id) ON DELETE CASCADE,
         ord INTEGER NOT NULL,
         line INTEGER NOT NULL,
         col TEXT NOT NULL,
         value TEXT NOT NULL,
         message TEXT NOT NULL,
         PRIMARY KEY (import_id, ord)) WITHOUT ROWID;",
    // 3: updated_at order is served by a scan (and by the segment engine), not an index
    // that every write and every import row would have to maintain.
    "DROP INDEX customers_by_updated_at;",
    // 4: saved segments (audiences).
    "CREATE TABLE segments (
         id INTEGER PRIMARY KEY AUTOINCREMENT,
         app_id INTEGER NOT NULL REFERENCES apps(id) ON DELETE CASCADE,
         name TEXT NOT NULL,
         filter TEXT NOT NULL,
         created_at INTEGER NOT NULL,
         updated_at INTEGER NOT NULL);
     CREATE INDEX segments_by_app ON segments(app_id, id);",
    // 5: the durable change log, replacing the per-application data versions.
    "CREATE TABLE change_log (
         seq INTEGER PRIMARY KEY AUTOINCREMENT,
         at INTEGER NOT NULL,
         app_id INTEGER NOT NULL,
         kind INTEGER NOT NULL,
         customer INTEGER,
         customer_id TEXT,
         created_at INTEGER,
         updated_at INTEGER,
         data BLOB,
         text TEXT);
     DELETE FROM meta WHERE key LIKE 'data_version.%';",
    // 6: an updated customer's previous values in its log entry.
    "ALTER TABLE change_log ADD COLUMN old BLOB;",
    // 7: interactions: the event type registry and the events, by customer and by key.
    "CREATE TABLE event_types (
         id INTEGER PRIMARY KEY AUTOINCREMENT,
         app_id INTEGER NOT NULL REFERENCES apps(id),
         code TEXT NOT NULL,
         name TEXT NOT NULL,
         retention_days INTEGER NOT NULL,
         enabled INTEGER NOT NULL,
         properties TEXT NOT NULL,
         created_at INTEGER NOT NULL,
         UNIQUE (app_id, code));
     CREATE TABLE events (
         id INTEGER PRIMARY KEY AUTOINCREMENT,
         app_id INTEGER NOT NULL,
         customer INTEGER NOT NULL REFERENCES customers(id) ON DELETE CASCADE,
         type_id INTEGER NOT NULL,
         channel TEXT NOT NULL,
         device_id TEXT,
         ts INTEGER NOT NULL,
         event_key TEXT,
         properties TEXT);
     CREATE INDEX events_by_customer ON events(customer, ts, id);
     CREATE INDEX events_by_type_time ON events(type_id, ts);
     CREATE UNIQUE INDEX events_by_key ON events(app_id, event_key) WHERE event_key IS NOT NULL;
     ALTER TABLE imports ADD COLUMN kind TEXT NOT NULL DEFAULT 'customers';",
    // 8: computed fields: what a field aggregates (NULL for a stored field).
    "ALTER TABLE fields ADD COLUMN computed TEXT;",
    // 9: events by type and day instead of by type and exact time. Retention only asks for
    // "this type, before that instant"; keyed by the day, an event's entry goes after the
    // others of its type and day (the row id breaks ties), so a backfill in customer order
    // touches one leaf page per (type, day) instead of one at random per event, and the
    // index is smaller.
    "DROP INDEX events_by_type_time;
     CREATE INDEX events_by_type_day ON events(type_id, ts / 86400000);",
    // 10: channel subscriptions: the standing one per customer and channel, and every change.
    "CREATE TABLE subscriptions (
         customer INTEGER NOT NULL REFERENCES customers(id) ON DELETE CASCADE,
         channel TEXT NOT NULL,
         subscribed INTEGER NOT NULL,
         changed_at INTEGER NOT NULL,
         source TEXT NOT NULL,
         PRIMARY KEY (customer, channel)) WITHOUT ROWID;
     CREATE TABLE subscription_history (
         id INTEGER PRIMARY KEY AUTOINCREMENT,
         customer INTEGER NOT NULL REFERENCES customers(id) ON DELETE CASCADE,
         channel TEXT NOT NULL,
         subscribed INTEGER NOT NULL,
         at INTEGER NOT NULL,
         source TEXT NOT NULL,
         recorded_at INTEGER NOT NULL);
     CREATE INDEX subscription_history_by_customer ON subscription_history(customer, id);",
    // 11: a customer's log entries, found when it is erased.
    "CREATE INDEX change_log_by_customer ON change_log(customer) WHERE customer IS NOT NULL;",
    // 12: the audit log, append-only.
    "CREATE TABLE audit (
         id INTEGER PRIMARY KEY AUTOINCREMENT,
         app_id INTEGER,
         at INTEGER NOT NULL,
         actor TEXT NOT NULL,
         action TEXT NOT NULL,
         target TEXT NOT NULL);
     CREATE INDEX audit_by_app ON audit(app_id, id);
     CREATE TRIGGER audit_no_update BEFORE UPDATE ON audit
         BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
     CREATE TRIGGER audit_no_delete BEFORE DELETE ON audit
         BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;",
    // 13: identities (one holder per normalised value), the customerIds of merged customers
    // (aliases of their survivor, with the values that lost) and anonymous customers.
    "CREATE TABLE identities (
         app_id INTEGER NOT NULL,
         kind TEXT NOT NULL,
         value TEXT NOT NULL,
         customer INTEGER NOT NULL REFERENCES customers(id) ON DELETE CASCADE,
         linked_at INTEGER NOT NULL,
         PRIMARY KEY (app_id, kind, value)) WITHOUT ROWID;
     CREATE INDEX identities_by_customer ON identities(customer);
     CREATE TABLE customer_aliases (
         app_id INTEGER NOT NULL,
         alias TEXT NOT NULL,
         customer INTEGER NOT NULL REFERENCES customers(id) ON DELETE CASCADE,
         merged_id INTEGER NOT NULL,
         merged_at INTEGER NOT NULL,
         lost BLOB NOT NULL,
         PRIMARY KEY (app_id, alias)) WITHOUT ROWID;
     CREATE INDEX customer_aliases_by_customer ON customer_aliases(customer);
     CREATE TABLE anonymous_customers (
         customer INTEGER PRIMARY KEY REFERENCES customers(id) ON DELETE CASCADE);",
    // 14: console sessions, kept here so that every server of one database knows them (see
    // `crate::sessions`): under the hash of their token, in the order they started (`id`),
    // gone with their application.
    "CREATE TABLE console_sessions (
         id INTEGER PRIMARY KEY AUTOINCREMENT,
         token_hash BLOB NOT NULL UNIQUE,
         key_hash BLOB NOT NULL,
         app_id INTEGER REFERENCES apps(id) ON DELETE CASCADE,
         csrf TEXT NOT NULL,
         started INTEGER NOT NULL,
         last_used INTEGER NOT NULL);
     CREATE INDEX console_sessions_by_key ON console_sessions(key_hash, id);
     CREATE INDEX console_sessions_by_app ON console_sessions(app_id, id);",
    // 15: events by type and 30-day period instead of by type and day. A backfill in
    // customer order appends each event at the end of its (type, period) group: a day's
    // groups were thousands of leaf pages written at random (most of an import's index
    // work, measured), a period's are a few hundred that stay in the cache. Retention
    // reads the period it cuts through and checks each event's time.
    "DROP INDEX events_by_type_day;
     CREATE INDEX events_by_type_period ON events(type_id, ts / 2592000000);",
    // 16: the events' reference to their customer checked at commit instead of per
    // statement. An immediate foreign key may abort a many-row INSERT halfway, so SQLite
    // copied every page such a statement touched into a statement journal first (a fifth
    // of an import's writer time, measured); checked at commit, a violation still fails
    // the whole transaction and deleting a customer still deletes its events. The table
    // is rebuilt (SQLite cannot alter a constraint) with its ids and its id sequence, so
    // no id an older log entry names is ever given again.
    "CREATE TABLE events_rebuilt (
         id INTEGER PRIMARY KEY AUTOINCREMENT,
         app_id INTEGER NOT NULL,
         customer INTEGER NOT NULL
             REFERENCES customers(id) ON DELETE CASCADE DEFERRABLE INITIALLY DEFERRED,
         type_id INTEGER NOT NULL,
         channel TEXT NOT NULL,
         device_id TEXT,
         ts INTEGER NOT NULL,
         event_key TEXT,
         properties TEXT);
     INSERT INTO events_rebuilt (id, app_id, customer, type_id, channel, device_id, ts, event_key, properties)
         SELECT id, app_id, customer, type_id, channel, device_id, ts, event_key, properties
         FROM events ORDER BY id;
     INSERT INTO sqlite_sequence (name, seq)
         SELECT 'events_rebuilt', seq FROM sqlite_sequence WHERE name = 'events'
         AND NOT EXISTS (SELECT 1 FROM sqlite_sequence WHERE name = 'events_rebuilt');
     UPDATE sqlite_sequence
         SET seq = max(seq, coalesce((SELECT seq FROM sqlite_sequence WHERE name = 'events'), 0))
         WHERE name = 'events_rebuilt';
     DROP TABLE events;
     ALTER TABLE events_rebuilt RENAME TO events;
     CREATE INDEX events_by_customer ON events(customer, ts, id);
     CREATE INDEX events_by_type_period ON events(type_id, ts / 2592000000);
     CREATE UNIQUE INDEX events_by_key ON events(app_id, event_key) WHERE event_key IS NOT NULL;",
    // 17: events in blocks, one row per customer and write instead of one per event (see
    // `events.rs`): a backfill inserted three B-tree entries per event before. The keys
    // move to their own table, written in key order; the id counter to `meta`. The rows
    // become blocks in Rust after this script ([`convert`]).
    "CREATE TABLE event_blocks (
         id INTEGER PRIMARY KEY,
         app_id INTEGER NOT NULL,
         customer INTEGER NOT NULL
             REFERENCES customers(id) ON DELETE CASCADE DEFERRABLE INITIALLY DEFERRED,
         last_id INTEGER NOT NULL,
         min_ts INTEGER NOT NULL,
         max_ts INTEGER NOT NULL,
         events INTEGER NOT NULL,
         expires_at INTEGER NOT NULL,
         data BLOB NOT NULL);
     CREATE INDEX event_blocks_by_customer ON event_blocks(customer, max_ts);
     CREATE INDEX event_blocks_by_expiry ON event_blocks(app_id, expires_at);
     CREATE TABLE event_keys (
         app_id INTEGER NOT NULL,
         key TEXT NOT NULL,
         id INTEGER NOT NULL,
         PRIMARY KEY (app_id, key)) WITHOUT ROWID;
     INSERT INTO event_keys (app_id, key, id)
         SELECT app_id, event_key, id FROM events WHERE event_key IS NOT NULL
         ORDER BY app_id, event_key;
     INSERT OR REPLACE INTO meta (key, value) VALUES ('next_event_id', 1 + max(
         coalesce((SELECT seq FROM sqlite_sequence WHERE name = 'events'), 0),
         coalesce((SELECT max(id) FROM events), 0)));",
    // 18: the rows, once in blocks.
    "DROP TABLE events;",
    // 19: retention finds its blocks by reminders, one per write of blocks (a run of
    // block ids and the earliest expiry among them), instead of one index entry per
    // block: a backfill paid for a million entries of `event_blocks_by_expiry`.
    "CREATE TABLE event_expiry (
         app_id INTEGER NOT NULL,
         expires_at INTEGER NOT NULL,
         lo INTEGER NOT NULL,
         hi INTEGER NOT NULL,
         PRIMARY KEY (app_id, expires_at, lo)) WITHOUT ROWID;
     INSERT INTO event_expiry (app_id, expires_at, lo, hi)
         SELECT app_id, expires_at, id, id FROM event_blocks
         WHERE expires_at < 9223372036854775807;
     DROP INDEX event_blocks_by_expiry;",
];

/// Work a migration needs beyond its script, run after it in the same transaction.
fn convert(version: usize, tx: &rusqlite::Transaction<'_>) -> Result<(), StoreError> {
    if version == 17 {
        super::events::convert_rows_to_blocks(tx)?;
    }
    Ok(())
}

/// How many migrations this build knows (the newest schema version it opens).
pub fn known() -> usize {
    MIGRATIONS.len()
}

/// Brings the database up to this build's schema.
pub fn migrate(conn: &mut Connection) -> Result<(), StoreError> {
    let version: usize =
        conn.query_row("PRAGMA user_version", [], |r| r.get::<_, i64>(0))? as usize;
    if version > MIGRATIONS.len() {
        return Err(StoreError::Internal(format!(
            "the data directory was written by a newer Unico (schema version {version}, this build knows {})",
            MIGRATIONS.len()
        )));
    }
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(version) {
        let tx = conn.transaction()?;
        tx.execute_batch(sql)?;
        convert(i + 1, &tx)?;
        tx.pragma_update(None, "user_version", (i + 1) as i64)?;
        tx.commit()?;
        tracing::info!(version = i + 1, "applied storage migration");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Applies the migrations after the database's version up to the `n`th (their
    /// scripts only).
    fn migrate_to(conn: &mut Connection, n: usize) {
        let version: usize = conn
            .query_row("PRAGMA user_version", [], |r| r.get::<_, i64>(0))
            .unwrap() as usize;
        for (i, sql) in MIGRATIONS.iter().enumerate().take(n).skip(version) {
            conn.execute_batch(sql).unwrap();
            conn.pragma_update(None, "user_version", (i + 1) as i64)
                .unwrap();
        }
    }

    /// Rebuilding the events table keeps every event with its id, never gives an id again
    /// (one given and deleted before included), and deleting a customer still deletes its
    /// events.
    /// A database at schema `version` (15 or later) holding application 1 with customers 1
    /// (`c1`) and 2 (`c2`) and event types 1 (`open`) and 2 (`buy`).
    fn with_customers_and_types(version: usize) -> Connection {
        let mut conn = Connection::open_in_memory().unwrap();
        conn.execute_batch("PRAGMA foreign_keys = ON").unwrap();
        migrate_to(&mut conn, version);
        conn.execute_batch(
            "INSERT INTO apps (id, name, timezone, created_at) VALUES (1, 'a', 'UTC', 0);
             INSERT INTO customers (id, app_id, customer_id, created_at, updated_at, data)
                 VALUES (1, 1, 'c1', 0, 0, x''), (2, 1, 'c2', 0, 0, x'');
             INSERT INTO event_types (id, app_id, code, name, retention_days, enabled, properties, created_at)
                 VALUES (1, 1, 'open', 'open', 30, 1, '', 0), (2, 1, 'buy', 'buy', 30, 1, '', 0);",
        )
        .unwrap();
        conn
    }

    #[test]
    fn the_events_rebuild_keeps_ids_and_the_id_sequence() {
        let mut conn = with_customers_and_types(15);
        conn.execute_batch(
            "INSERT INTO events (app_id, customer, type_id, channel, ts, event_key)
                 VALUES (1, 1, 1, 'web', 10, 'k1'), (1, 2, 1, 'web', 20, 'k2'), (1, 2, 1, 'app', 30, 'k3');
             DELETE FROM events WHERE event_key = 'k3';",
        )
        .unwrap();
        migrate_to(&mut conn, 16);
        let kept: Vec<(i64, String)> = conn
            .prepare("SELECT id, event_key FROM events ORDER BY id")
            .unwrap()
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(kept, vec![(1, "k1".to_string()), (2, "k2".to_string())]);
        conn.execute(
            "INSERT INTO events (app_id, customer, type_id, channel, ts, event_key) VALUES (1, 1, 1, 'web', 40, 'k4')",
            [],
        )
        .unwrap();
        assert_eq!(
            conn.last_insert_rowid(),
            4,
            "id 3 was given before the rebuild"
        );
        // The key stays unique per application.
        let again = conn.execute(
            "INSERT INTO events (app_id, customer, type_id, channel, ts, event_key) VALUES (1, 2, 1, 'web', 50, 'k1')",
            [],
        );
        assert!(again.is_err());
        conn.execute("DELETE FROM customers WHERE id = 1", [])
            .unwrap();
        let left: i64 = conn
            .query_row("SELECT count(*) FROM events", [], |r| r.get(0))
            .unwrap();
        assert_eq!(left, 1, "customer 1's events go with it");
        // A reference to nobody fails the transaction at its commit.
        let tx = conn.transaction().unwrap();
        tx.execute(
            "INSERT INTO events (app_id, customer, type_id, channel, ts) VALUES (1, 99, 1, 'web', 60)",
            [],
        )
        .unwrap();
        assert!(tx.commit().is_err());
    }

    /// Events stored one per row become blocks with their ids, keys, devices, properties
    /// and customers; the id counter goes on after the largest id ever given; each key
    /// leads to its event; the old table goes.
    #[test]
    fn event_rows_become_blocks() {
        let mut conn = with_customers_and_types(16);
        conn.execute_batch(
            "INSERT INTO events (app_id, customer, type_id, channel, device_id, ts, event_key, properties)
                 VALUES (1, 1, 1, 'web', NULL, 10, 'k1', NULL),
                        (1, 2, 2, 'pos', 'd9', 20, 'k2', '{\"amount\":5}'),
                        (1, 1, 2, 'app', NULL, 30, NULL, '{\"amount\":7.5}'),
                        (1, 2, 1, 'web', NULL, 40, 'k4', NULL),
                        (1, 1, 1, 'web', NULL, 50, 'k5', NULL);
             DELETE FROM events WHERE event_key = 'k5';",
        )
        .unwrap();
        migrate(&mut conn).unwrap();
        let gone: i64 = conn
            .query_row(
                "SELECT count(*) FROM sqlite_master WHERE name = 'events'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(gone, 0);
        let app = unico_core::AppId(1);
        let events = super::super::events::read_range(&conn, app, 0, i64::MAX, 100).unwrap();
        let seen: Vec<_> = events
            .iter()
            .map(|e| {
                (
                    e.id,
                    e.customer,
                    e.event_type.as_str().to_owned(),
                    e.channel.as_str().to_owned(),
                    e.device_id.clone(),
                    e.timestamp,
                    e.event_id.clone(),
                    e.properties.to_json_text(),
                )
            })
            .collect();
        let s = |t: &str| t.to_owned();
        assert_eq!(
            seen,
            vec![
                (1, 1, s("open"), s("web"), None, 10, Some(s("k1")), s("{}")),
                (
                    2,
                    2,
                    s("buy"),
                    s("pos"),
                    Some(s("d9")),
                    20,
                    Some(s("k2")),
                    s("{\"amount\":5}")
                ),
                (
                    3,
                    1,
                    s("buy"),
                    s("app"),
                    None,
                    30,
                    None,
                    s("{\"amount\":7.5}")
                ),
                (4, 2, s("open"), s("web"), None, 40, Some(s("k4")), s("{}")),
            ]
        );
        let number = |sql: &str| -> i64 { conn.query_row(sql, [], |r| r.get(0)).unwrap() };
        assert_eq!(
            number("SELECT count(*) FROM event_blocks"),
            2,
            "one block per customer"
        );
        assert_eq!(
            number("SELECT CAST(value AS INTEGER) FROM meta WHERE key = 'next_event_id'"),
            6,
            "id 5 was given before"
        );
        assert_eq!(
            number("SELECT id FROM event_keys WHERE app_id = 1 AND key = 'k4'"),
            4
        );
        assert_eq!(
            number("SELECT count(*) FROM event_keys"),
            3,
            "k1, k2 and k4; k5 went with its event"
        );
        // Retention is reminded of each converted block, due when its first event expires.
        assert_eq!(
            number(
                "SELECT count(*) FROM event_expiry x JOIN event_blocks b
                 ON x.lo = b.id AND x.hi = b.id AND x.expires_at = b.expires_at
                 AND x.app_id = b.app_id"
            ),
            2
        );
        assert_eq!(number("SELECT count(*) FROM event_expiry"), 2);
    }
}
