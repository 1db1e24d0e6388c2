//! The PostgreSQL backend: the scale-out path, where several servers share one database.
//!
//! **Connecting.** [`PostgresStore::connect`] takes a `postgres://` URL, applies the
//! migrations ([`migrations`]) and starts the change log's listener. Connections are plain
//! TCP or a Unix socket without TLS for now (`NoTls`): put the database on a trusted
//! network or a local socket; TLS can be added behind the same URL later.
//!
//! **Layout.** As in the embedded backend, a customer is one row with its values in one
//! [`crate::codec`] blob, and field value counts are kept in `fields.value_count` by every
//! write in its own transaction; [`migrations`] says why. Events are rows of one
//! `events` table, written by batches of set-based statements ([`events`]); an import of
//! events writes its batches the same way in one transaction ([`event_imports`]).
//!
//! **Concurrency.** Every call runs on the caller's (blocking) thread with a connection of
//! its own from a small pool ([`conn`]), except single-customer writes (creating or
//! updating one customer), which are queued to a few writer connections that commit many
//! of them in one transaction ([`group`]): group commit, as the embedded store's writer
//! does. Writes are `READ COMMITTED` transactions that lock
//! what they change in one fixed order ([`writes`]); a write the server aborts to break a
//! deadlock is run again. Every writing transaction appends its changes to the change log
//! as its last step before `COMMIT`, which makes the log's order the commit order ([`log`]).
//!
//! **Reads** need no lock; a scan runs in one `REPEATABLE READ` snapshot that also reads
//! the log's head, so it says exactly which point of the log it reflects.
//!
//! **Durability.** A write is acknowledged after `COMMIT` returns, so it is as durable as
//! the server's `synchronous_commit` (on by default) makes commits.

mod conn;
mod event_identities;
mod event_imports;
mod events;
mod group;
mod identities;
mod imports;
mod log;
mod migrations;
mod pages;
mod rows;
mod sessions;
mod subscriptions;
pub mod testing;
mod writes;

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;

use postgres::{IsolationLevel, Transaction};
use unico_core::limits::MAX_FIELDS_PER_APP;
use unico_core::{
    AppId, AppName, Application, Channel, Computed, Customer, CustomerId, Event, EventCode,
    EventType, FieldChange, FieldDef, FieldId, FieldName, FieldType, Identity, Schema,
    Subscription, SubscriptionChange, TimeZoneName,
};

use crate::audit::{AuditRecord, NewAudit};
use crate::changes::{Change, LogBounds, LogEntry};
use crate::error::StoreError;
use crate::events::{Activity, EventOutcome, EventPage, EventQuery, EventTypePatch, NewEvent};
use crate::identities::{HeldIdentity, LinkOutcome, MergeOutcome, MergeRecord};
use crate::live::check_changes;
use crate::log_row::Head;
use crate::store::{
    ApiKeyInfo, EventBatch, FieldStat, ImportBatch, ImportCounts, ImportFinish, ImportKind,
    ImportMode, ImportRecord, ImportRowError, ImportState, ListQuery, Page, SegmentRecord, Store,
    UpsertItem, UpsertOutcome,
};
use crate::subscriptions::{HistoryEntry, SubscriptionsOutcome};
use conn::{Conn, Db, Fail, Pool, Res};
use writes::{CountDeltas, Mode, Wx};

pub use conn::MAX_CONNECTIONS;

/// How many times a write the server aborted (deadlock, serialization) is run again.
const WRITE_RETRIES: usize = 4;
/// Customers fetched per round trip by a scan.
const SCAN_BATCH: i32 = 1000;

/// The PostgreSQL store.
pub struct PostgresStore {
    pool: Pool,
    head: Arc<Head>,
    /// Hears other connections' commits; stops when the store drops.
    _listener: log::Listener,
    /// Commits single-customer writes in groups (see `group.rs`).
    group: group::Group,
    /// Imports of at most this many customers reach the change log customer by customer.
    incremental_import: u64,
}

impl std::fmt::Debug for PostgresStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostgresStore").finish_non_exhaustive()
    }
}

impl PostgresStore {
    /// Connects to the database at `url` (`postgres://user@host:port/database`, or the
    /// `key=value` form), bringing its schema up to date.
    pub fn connect(url: &str) -> Result<Self, StoreError> {
        let mut config: postgres::Config = url.parse().map_err(|e| {
            StoreError::Invalid(format!("the database URL is not a PostgreSQL one: {e}"))
        })?;
        if config.get_application_name().is_none() {
            config.application_name("unico");
        }
        let mut first = conn::connect(&config)?;
        migrations::migrate(&mut first)?;
        let seq: i64 = first
            .query_one("SELECT seq FROM log_head", &[])
            .and_then(|r| r.try_get(0))
            .map_err(|e| conn::internal(&e))?;
        let head = Head::new(seq.max(0) as u64);
        let listener = log::Listener::start(config.clone(), head.clone())?;
        let group = group::Group::start(&config, &head)?;
        Ok(Self {
            group,
            pool: Pool::new(config, first),
            head,
            _listener: listener,
            incremental_import: crate::changes::INCREMENTAL_IMPORT_CUSTOMERS,
        })
    }

    /// Announces imports of at most `customers` customers customer by customer, larger
    /// ones as one [`crate::Change::Customers`] (default
    /// [`crate::INCREMENTAL_IMPORT_CUSTOMERS`]).
    pub fn with_incremental_import_limit(mut self, customers: u64) -> Self {
        self.incremental_import = customers;
        self
    }

    /// Runs `op` on a pooled connection, outside any transaction.
    fn read<R>(
        &self,
        op: impl FnOnce(&mut Db<'_, postgres::Client>) -> Res<R>,
    ) -> Result<R, StoreError> {
        let mut lease = self.pool.get()?;
        let Conn { client, stmts } = lease.conn();
        op(&mut Db::new(client, stmts)).map_err(Fail::into_store)
    }

    /// Runs `op` in one `REPEATABLE READ`, read-only transaction: one snapshot throughout.
    fn snapshot<R>(
        &self,
        op: impl FnOnce(&mut Db<'_, Transaction<'_>>) -> Res<R>,
    ) -> Result<R, StoreError> {
        let mut lease = self.pool.get()?;
        let Conn { client, stmts } = lease.conn();
        let run = || -> Res<R> {
            let mut tx = client
                .build_transaction()
                .isolation_level(IsolationLevel::RepeatableRead)
                .read_only(true)
                .start()?;
            let r = op(&mut Db::new(&mut tx, stmts))?;
            tx.commit()?;
            Ok(r)
        };
        run().map_err(Fail::into_store)
    }

    /// Runs `op` in a transaction, appends the changes it emitted to the log, commits, and
    /// moves the head. A transaction the server aborted to break a deadlock runs again.
    fn write<R>(&self, mut op: impl FnMut(&mut Wx<'_, '_>) -> Res<R>) -> Result<R, StoreError> {
        let mut retries = 0;
        loop {
            let mut lease = self.pool.get()?;
            match write_once(lease.conn(), &self.head, &mut op) {
                Ok((r, seq)) => {
                    if let Some(seq) = seq {
                        self.head.advance(seq);
                    }
                    return Ok(r);
                }
                Err(e) if e.retryable() && retries < WRITE_RETRIES => {
                    retries += 1;
                    tracing::debug!(
                        retries,
                        "a write was aborted to break a deadlock; running it again"
                    );
                }
                Err(e) => return Err(e.into_store()),
            }
        }
    }

    fn write_one(
        &self,
        app: AppId,
        customer_id: &CustomerId,
        changes: &[FieldChange],
        now: i64,
        mode: Mode,
    ) -> Result<Customer, StoreError> {
        let work = group::Work::Customer(group::CustomerWrite {
            app,
            customer_id: customer_id.clone(),
            changes: changes.to_vec(),
            now,
            mode,
        });
        let answer = match self.group.run(work)? {
            group::Outcome::Done(answer) => answer,
            group::Outcome::Failed(e) => return Err(e),
            group::Outcome::Alone(mut op) => self.write(|w| op(w))?,
        };
        answer
            .downcast::<Customer>()
            .map(|c| *c)
            .map_err(|_| StoreError::Internal("a customer write answered something else".into()))
    }

    /// Creates a stored field, or a computed one (whose event type must be registered).
    fn add_field(
        &self,
        app: AppId,
        name: &FieldName,
        field_type: FieldType,
        computed: Option<Computed>,
        now: i64,
    ) -> Result<FieldDef, StoreError> {
        self.write(|w| {
            w.own_app(app)?;
            let existing = rows::field_stats(&mut w.db, app)?;
            if existing.iter().any(|s| s.field.name == *name) {
                return Err(StoreError::Conflict(format!("field \"{name}\" exists already")).into());
            }
            if existing.len() >= MAX_FIELDS_PER_APP {
                return Err(StoreError::Limit(format!(
                    "an application holds at most {MAX_FIELDS_PER_APP} fields"
                ))
                .into());
            }
            if let Some(def) = &computed
                && events::registry(&mut w.db, app)?
                    .get(def.event.as_str())
                    .is_none()
            {
                return Err(StoreError::Conflict(format!(
                    "event type \"{}\" is not registered (it was deleted meanwhile?)",
                    def.event
                ))
                .into());
            }
            let id: i64 = w
                .db
                .query_one(
                    "INSERT INTO fields (app_id, name, type, created_at, computed) VALUES ($1, $2, $3, $4, $5) RETURNING id",
                    &[
                        &app.0,
                        &name.as_str(),
                        &field_type.as_str(),
                        &now,
                        &computed.as_ref().map(Computed::to_storage),
                    ],
                )?
                .try_get(0)?;
            let def = FieldDef {
                id: FieldId(u32::try_from(id).map_err(|_| {
                    StoreError::Internal(format!("field id {id} is past the largest a field can have"))
                })?),
                name: name.clone(),
                field_type,
                created_at: now,
                computed: computed.clone(),
            };
            let schema = w.schema(app)?;
            w.emit(Change::Schema { app, schema });
            Ok(def)
        })
    }

    /// The field named `name`, with its value count; `NotFound` if there is none.
    fn field_by_name(w: &mut Wx<'_, '_>, app: AppId, name: &FieldName) -> Res<FieldStat> {
        rows::field_stats(&mut w.db, app)?
            .into_iter()
            .find(|s| s.field.name == *name)
            .ok_or_else(|| StoreError::NotFound(format!("field \"{name}\"")).into())
    }
}

/// One try of a write: see [`PostgresStore::write`].
fn write_once<R>(
    conn: &mut Conn,
    head: &Head,
    op: &mut impl FnMut(&mut Wx<'_, '_>) -> Res<R>,
) -> Res<(R, Option<u64>)> {
    let Conn { client, stmts } = conn;
    let mut tx = client.transaction()?;
    let (r, changes) = {
        let mut w = Wx::new(Db::new(&mut tx, stmts));
        let r = op(&mut w)?;
        writes::flush_counts(std::mem::take(&mut w.deltas), &mut w.db)?;
        (r, w.changes)
    };
    let seq = log::append(&mut Db::new(&mut tx, stmts), &changes)?;
    head.committing(seq, || tx.commit())?;
    Ok((r, seq))
}

/// One import in one transaction; see [`Store::run_import`]. `write_all` writes its
/// batches (customers or events) and answers `None` if the feed said not to keep them.
fn import_once(
    conn: &mut Conn,
    head: &Head,
    written: &AtomicU64,
    finish: Option<ImportFinish>,
    write_all: impl FnOnce(&mut Wx<'_, '_>) -> Res<Option<ImportCounts>>,
) -> Res<(ImportCounts, Option<u64>)> {
    let Conn { client, stmts } = conn;
    let mut tx = client.transaction()?;
    let (counts, changes) = {
        let mut w = Wx::new(Db::new(&mut tx, stmts));
        let outcome = imports::run(&mut w, written, write_all);
        let counts = match finish {
            None => outcome?,
            Some(finish) => {
                // The record joins the writes' transaction: both commit, or neither. A
                // failure of the writes left the transaction as it was before them.
                let outcome = outcome.map_err(Fail::into_store);
                let (record, errors) = finish(outcome.as_ref().copied());
                imports::finish(&mut w.db, &record, &errors)?;
                outcome.unwrap_or_default()
            }
        };
        (counts, w.changes)
    };
    let seq = log::append(&mut Db::new(&mut tx, stmts), &changes)?;
    head.committing(seq, || tx.commit())?;
    Ok((counts, seq))
}

impl PostgresStore {
    /// Records a new running import of `kind`.
    fn new_import(
        &self,
        app: AppId,
        mode: ImportMode,
        kind: ImportKind,
        now: i64,
    ) -> Result<ImportRecord, StoreError> {
        self.write(|w| {
            rows::get_app(&mut w.db, app)?;
            let row = w.db.query_one(
                &format!(
                    "INSERT INTO imports (app_id, mode, state, created_at, kind) VALUES ($1, $2, 'running', $3, $4) RETURNING {}",
                    rows::IMPORT_COLUMNS
                ),
                &[&app.0, &mode.as_str(), &now, &kind.as_str()],
            )?;
            rows::import(&row)
        })
    }

    /// Runs an import on a connection of its own (not retried: the feed is consumed as it
    /// is written), then moves the head.
    fn run_import_with(
        &self,
        written: &AtomicU64,
        finish: Option<ImportFinish>,
        write_all: impl FnOnce(&mut Wx<'_, '_>) -> Res<Option<ImportCounts>>,
    ) -> Result<ImportCounts, StoreError> {
        let mut lease = self.pool.get()?;
        let (counts, seq) = import_once(lease.conn(), &self.head, written, finish, write_all)
            .map_err(Fail::into_store)?;
        if let Some(seq) = seq {
            self.head.advance(seq);
        }
        Ok(counts)
    }
}

impl Store for PostgresStore {
    fn link_identity(
        &self,
        app: AppId,
        customer_id: &CustomerId,
        identity: &Identity,
        now: i64,
    ) -> Result<LinkOutcome, StoreError> {
        // Most links merge nothing and need no merge turn; one that does runs again with it.
        if let Some(outcome) =
            self.write(|w| identities::link(w, app, customer_id, identity, now, false))?
        {
            return Ok(outcome);
        }
        self.write(|w| identities::link(w, app, customer_id, identity, now, true))?
            .ok_or_else(|| StoreError::Internal("a link with the merge turn asked for it".into()))
    }

    fn unlink_identity(
        &self,
        app: AppId,
        customer_id: &CustomerId,
        identity: &Identity,
    ) -> Result<(), StoreError> {
        self.write(|w| identities::unlink(w, app, customer_id, identity))
    }

    fn identities(
        &self,
        app: AppId,
        customer_id: &CustomerId,
    ) -> Result<Vec<HeldIdentity>, StoreError> {
        self.read(|db| identities::list(db, app, customer_id))
    }

    fn find_identity(
        &self,
        app: AppId,
        identity: &Identity,
    ) -> Result<Option<Customer>, StoreError> {
        self.read(|db| identities::find(db, app, identity))
    }

    fn is_anonymous(&self, app: AppId, customer_id: &CustomerId) -> Result<bool, StoreError> {
        self.read(|db| identities::is_anonymous(db, app, customer_id))
    }

    fn merge_customers(
        &self,
        app: AppId,
        into: &CustomerId,
        from: &CustomerId,
        now: i64,
    ) -> Result<MergeOutcome, StoreError> {
        self.write(|w| identities::merge_by_id(w, app, into, from, now))
    }

    fn merges(&self, app: AppId, customer_id: &CustomerId) -> Result<Vec<MergeRecord>, StoreError> {
        self.read(|db| identities::merges(db, app, customer_id))
    }

    fn create_event_type(
        &self,
        app: AppId,
        event_type: &EventType,
    ) -> Result<EventType, StoreError> {
        self.write(|w| events::create_type(w, app, event_type))
    }

    fn update_event_type(
        &self,
        app: AppId,
        code: &EventCode,
        patch: &EventTypePatch,
    ) -> Result<EventType, StoreError> {
        self.write(|w| events::update_type(w, app, code, patch))
    }

    fn delete_event_type(&self, app: AppId, code: &EventCode) -> Result<u64, StoreError> {
        self.write(|w| events::delete_type(w, app, code))
    }

    fn insert_events(
        &self,
        app: AppId,
        items: Vec<NewEvent>,
        now: i64,
    ) -> Result<Vec<Result<EventOutcome, StoreError>>, StoreError> {
        self.write(|w| events::insert(w, app, &items, now))
    }

    fn customer_events(
        &self,
        app: AppId,
        customer_id: &CustomerId,
        query: &EventQuery,
    ) -> Result<EventPage, StoreError> {
        self.read(|db| events::timeline(db, app, customer_id, query))
    }

    fn customer_activity(
        &self,
        app: AppId,
        customer_id: &CustomerId,
    ) -> Result<Activity, StoreError> {
        self.read(|db| events::activity(db, app, customer_id))
    }

    fn read_customers(
        &self,
        app: AppId,
        from: i64,
        to: i64,
        limit: usize,
    ) -> Result<Vec<Customer>, StoreError> {
        self.read(|db| {
            db.query(
                &format!(
                    "SELECT {} FROM customers WHERE id BETWEEN $1 AND $2 AND app_id = $3 ORDER BY id LIMIT $4",
                    rows::CUSTOMER_COLUMNS
                ),
                &[&from, &to, &app.0, &(limit.min(i64::MAX as usize) as i64)],
            )?
            .iter()
            .map(rows::customer)
            .collect()
        })
    }

    fn read_events(
        &self,
        app: AppId,
        from: i64,
        to: i64,
        limit: usize,
    ) -> Result<Vec<Event>, StoreError> {
        self.read(|db| events::read_range(db, app, from, to, limit))
    }

    fn expire_events(&self, now: i64) -> Result<u64, StoreError> {
        // One transaction per application with something to remove, so that the
        // application's writes are held back only while its own events go.
        let mut total = 0;
        for app in self.read(|db| events::due(db, now))? {
            match self.write(|w| events::expire_app(w, app, now)) {
                Ok(n) => total += n,
                // Deleted meanwhile, with its events.
                Err(StoreError::NotFound(_)) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(total)
    }
    fn create_event_import(
        &self,
        app: AppId,
        mode: ImportMode,
        now: i64,
    ) -> Result<ImportRecord, StoreError> {
        self.new_import(app, mode, ImportKind::Events, now)
    }

    fn run_event_import(
        &self,
        app: AppId,
        batches: Box<dyn Iterator<Item = EventBatch> + Send>,
        now: i64,
        written: Arc<AtomicU64>,
        finish: Option<ImportFinish>,
        // The engines read an import's events back from the log's ranges.
        _sink: Option<Box<dyn crate::store::EventSink>>,
    ) -> Result<ImportCounts, StoreError> {
        let incremental = self.incremental_import;
        self.run_import_with(&written, finish, |w| {
            event_imports::write_all(w, app, batches, now, &written, incremental)
        })
    }

    fn scan_app(
        &self,
        app: AppId,
        schema: &mut dyn FnMut(Schema),
        customers: &mut dyn FnMut(Customer) -> bool,
        visit_events: &mut dyn FnMut(Event) -> bool,
    ) -> Result<u64, StoreError> {
        // One snapshot for the head, the schema, the customers and the events, as in
        // `scan_customers`.
        self.snapshot(|db| {
            let seq = log::head(db)?;
            schema(rows::app_schema(db, app)?);
            scan_customer_rows(db, app, customers)?;
            events::scan(db, app, visit_events)?;
            Ok(seq)
        })
    }

    fn backend(&self) -> &'static str {
        "postgres"
    }

    fn check_ready(&self) -> Result<(), StoreError> {
        self.read(|db| {
            db.query_one("SELECT 1", &[])?;
            Ok(())
        })
    }

    fn writer_stats(&self) -> crate::WriterStats {
        // Writes go to the database over the pool: no writer thread, no queue of our own.
        crate::WriterStats {
            alive: true,
            queued: 0,
            queue_bound: 0,
            ..crate::WriterStats::default()
        }
    }

    fn log_head(&self) -> u64 {
        self.head.get()
    }

    fn log_horizon(&self) -> u64 {
        self.head.horizon()
    }

    fn log_bounds(&self) -> Result<LogBounds, StoreError> {
        self.read(log::bounds)
    }

    fn read_log(&self, after: u64, limit: usize) -> Result<Vec<LogEntry>, StoreError> {
        self.snapshot(|db| log::read(db, after, limit))
    }

    fn wait_log(&self, after: u64, timeout: std::time::Duration) -> u64 {
        self.head.wait_past(after, timeout)
    }

    fn prune_log(&self, before: i64) -> Result<u64, StoreError> {
        self.write(|w| log::prune(&mut w.db, before))
    }

    fn get_meta(&self, key: &str) -> Result<Option<String>, StoreError> {
        self.read(|db| {
            Ok(db
                .query_opt("SELECT value FROM meta WHERE key = $1", &[&key])?
                .map(|r| r.try_get(0))
                .transpose()?)
        })
    }

    fn set_meta(&self, key: &str, value: &str) -> Result<(), StoreError> {
        self.write(|w| {
            w.db.execute(
                "INSERT INTO meta (key, value) VALUES ($1, $2)
                 ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                &[&key, &value],
            )?;
            Ok(())
        })
    }

    fn create_app(
        &self,
        name: &AppName,
        timezone: &TimeZoneName,
        now: i64,
    ) -> Result<Application, StoreError> {
        self.write(|w| {
            let row = w.db.query_one(
                &format!(
                    "INSERT INTO apps (name, timezone, created_at) VALUES ($1, $2, $3) RETURNING {}",
                    rows::APP_COLUMNS
                ),
                &[&name.as_str(), &timezone.as_str(), &now],
            )?;
            rows::app(&row)
        })
    }

    fn list_apps(&self) -> Result<Vec<Application>, StoreError> {
        self.read(|db| {
            db.query(
                &format!("SELECT {} FROM apps ORDER BY id", rows::APP_COLUMNS),
                &[],
            )?
            .iter()
            .map(rows::app)
            .collect()
        })
    }

    fn get_app(&self, app: AppId) -> Result<Application, StoreError> {
        self.read(|db| rows::get_app(db, app))
    }

    fn update_app(
        &self,
        app: AppId,
        name: Option<&AppName>,
        timezone: Option<&TimeZoneName>,
    ) -> Result<Application, StoreError> {
        let name = name.map(AppName::as_str);
        let tz = timezone.map(TimeZoneName::as_str);
        self.write(|w| {
            let row = w
                .db
                .query_opt(
                    &format!(
                        "UPDATE apps SET name = coalesce($2, name), timezone = coalesce($3, timezone)
                         WHERE id = $1 RETURNING {}",
                        rows::APP_COLUMNS
                    ),
                    &[&app.0, &name, &tz],
                )?
                .ok_or_else(|| StoreError::NotFound(format!("application {app}")))?;
            let updated = rows::app(&row)?;
            if tz.is_some() {
                w.emit(Change::TimeZone {
                    app,
                    timezone: updated.timezone.clone(),
                });
            }
            Ok(updated)
        })
    }

    fn delete_app(&self, app: AppId) -> Result<(), StoreError> {
        self.write(|w| {
            w.own_app(app)?;
            // Its event types go with the application (a foreign key); its events and
            // customers are deleted here, events first (set-based, by their app index).
            w.db.execute("DELETE FROM events WHERE app_id = $1", &[&app.0])?;
            w.db.execute("DELETE FROM customers WHERE app_id = $1", &[&app.0])?;
            w.db.execute("DELETE FROM apps WHERE id = $1", &[&app.0])?;
            w.emit(Change::AppDeleted { app });
            Ok(())
        })
    }

    fn create_key(
        &self,
        app: AppId,
        hash: &[u8; 32],
        prefix: &str,
        now: i64,
    ) -> Result<ApiKeyInfo, StoreError> {
        self.write(|w| {
            rows::get_app(&mut w.db, app)?;
            let row = w.db.query_one(
                &format!(
                    "INSERT INTO api_keys (app_id, hash, prefix, created_at) VALUES ($1, $2, $3, $4) RETURNING {}",
                    rows::KEY_COLUMNS
                ),
                &[&app.0, &&hash[..], &prefix, &now],
            )?;
            rows::key(&row)
        })
    }

    fn list_keys(&self, app: AppId) -> Result<Vec<ApiKeyInfo>, StoreError> {
        self.read(|db| {
            rows::get_app(db, app)?;
            db.query(
                &format!(
                    "SELECT {} FROM api_keys WHERE app_id = $1 ORDER BY id",
                    rows::KEY_COLUMNS
                ),
                &[&app.0],
            )?
            .iter()
            .map(rows::key)
            .collect()
        })
    }

    fn revoke_key(&self, app: AppId, key_id: i64, now: i64) -> Result<(), StoreError> {
        self.write(|w| {
            let n = w.db.execute(
                "UPDATE api_keys SET revoked_at = $3 WHERE id = $2 AND app_id = $1 AND revoked_at IS NULL",
                &[&app.0, &key_id, &now],
            )?;
            if n == 0 {
                return Err(StoreError::NotFound(format!("key {key_id}")).into());
            }
            Ok(())
        })
    }

    fn find_key(&self, hash: &[u8; 32]) -> Result<Option<ApiKeyInfo>, StoreError> {
        self.read(|db| {
            db.query_opt(
                &format!(
                    "SELECT {} FROM api_keys WHERE hash = $1 AND revoked_at IS NULL",
                    rows::KEY_COLUMNS
                ),
                &[&&hash[..]],
            )?
            .map(|r| rows::key(&r))
            .transpose()
        })
    }

    fn schema(&self, app: AppId) -> Result<Schema, StoreError> {
        // Not cached: another server may change it at any time; two indexed queries.
        self.read(|db| rows::app_schema(db, app))
    }

    fn field_stats(&self, app: AppId) -> Result<Vec<FieldStat>, StoreError> {
        self.read(|db| {
            rows::get_app(db, app)?;
            rows::field_stats(db, app)
        })
    }

    fn create_field(
        &self,
        app: AppId,
        name: &FieldName,
        field_type: FieldType,
        now: i64,
    ) -> Result<FieldDef, StoreError> {
        self.add_field(app, name, field_type, None, now)
    }

    fn create_computed_field(
        &self,
        app: AppId,
        name: &FieldName,
        field_type: FieldType,
        computed: &Computed,
        now: i64,
    ) -> Result<FieldDef, StoreError> {
        self.add_field(app, name, field_type, Some(computed.clone()), now)
    }

    fn set_field_type(
        &self,
        app: AppId,
        name: &FieldName,
        field_type: FieldType,
    ) -> Result<FieldDef, StoreError> {
        self.write(|w| {
            w.own_app(app)?;
            let stat = Self::field_by_name(w, app, name)?;
            crate::live::refuse_computed_retype(&stat.field, field_type)?;
            if stat.field.field_type != field_type && stat.value_count > 0 {
                return Err(StoreError::Conflict(format!(
                    "field \"{name}\" is {} and {} customers hold a value for it; a field's type can change only while no customer holds a value",
                    stat.field.field_type, stat.value_count
                ))
                .into());
            }
            w.db.execute(
                "UPDATE fields SET type = $2 WHERE id = $1",
                &[&i64::from(stat.field.id.0), &field_type.as_str()],
            )?;
            let schema = w.schema(app)?;
            w.emit(Change::Schema { app, schema });
            Ok(FieldDef {
                field_type,
                ..stat.field
            })
        })
    }

    fn delete_field(&self, app: AppId, name: &FieldName) -> Result<u64, StoreError> {
        self.write(|w| {
            w.own_app(app)?;
            let stat = Self::field_by_name(w, app, name)?;
            let removed = writes::purge_field(&mut w.db, app, stat.field.id)?;
            w.db.execute(
                "DELETE FROM fields WHERE id = $1",
                &[&i64::from(stat.field.id.0)],
            )?;
            let schema = w.schema(app)?;
            w.emit(Change::Schema { app, schema });
            Ok(removed)
        })
    }

    fn record_audit(&self, entry: &NewAudit) -> Result<i64, StoreError> {
        self.write(|w| {
            Ok(w.db
                .query_one(
                    "INSERT INTO audit (app_id, at, actor, action, target) VALUES ($1, $2, $3, $4, $5) RETURNING id",
                    &[
                        &entry.app.map(|a| a.0),
                        &entry.at,
                        &entry.actor,
                        &entry.action,
                        &entry.target,
                    ],
                )?
                .try_get(0)?)
        })
    }

    fn audit_log(
        &self,
        app: Option<AppId>,
        before: Option<i64>,
        limit: usize,
    ) -> Result<Vec<AuditRecord>, StoreError> {
        self.read(|db| {
            let rows = db.query(
                "SELECT id, app_id, at, actor, action, target FROM audit
                 WHERE ($1::bigint IS NULL OR app_id = $1) AND id < $2 ORDER BY id DESC LIMIT $3",
                &[
                    &app.map(|a| a.0),
                    &before.unwrap_or(i64::MAX),
                    &i64::try_from(limit).unwrap_or(i64::MAX),
                ],
            )?;
            let mut out = Vec::with_capacity(rows.len());
            for r in rows {
                out.push(AuditRecord {
                    id: r.try_get(0)?,
                    app: r.try_get::<_, Option<i64>>(1)?.map(AppId),
                    at: r.try_get(2)?,
                    actor: r.try_get(3)?,
                    action: r.try_get(4)?,
                    target: r.try_get(5)?,
                });
            }
            Ok(out)
        })
    }

    fn erase_customer(&self, app: AppId, customer_id: &CustomerId) -> Result<i64, StoreError> {
        self.write(|w| {
            w.share_app(app)?;
            // Locked first: no merge into it can commit before the erasure.
            let customer = rows::find_customer(&mut w.db, app, customer_id, true)?
                .ok_or_else(|| rows::not_found(customer_id))?;
            // The customers merged into it: their entries hold their values too.
            let merged = identities::merged_ids(&mut w.db, customer.id)?;
            writes::delete_row(&mut w.db, &customer)?;
            let id = customer.id;
            for id in std::iter::once(id).chain(merged) {
                w.db.execute(crate::log_row::SCRUB_CUSTOMER_ENTRIES, &[&app.0, &id])?;
            }
            w.emit(Change::CustomerErased { app, id });
            Ok(id)
        })
    }

    fn set_declared_channels(
        &self,
        app: AppId,
        channels: &[Channel],
    ) -> Result<Schema, StoreError> {
        self.write(|w| subscriptions::set_declared(w, app, channels))
    }

    fn set_subscriptions(
        &self,
        app: AppId,
        customer_id: &CustomerId,
        changes: &[SubscriptionChange],
        create: bool,
        now: i64,
    ) -> Result<SubscriptionsOutcome, StoreError> {
        self.write(|w| subscriptions::apply(w, app, customer_id, changes, create, now))
    }

    fn subscriptions(
        &self,
        app: AppId,
        customer_id: &CustomerId,
    ) -> Result<Vec<Subscription>, StoreError> {
        self.read(|db| subscriptions::standing(db, app, customer_id))
    }

    fn subscription_history(
        &self,
        app: AppId,
        customer_id: &CustomerId,
        limit: usize,
    ) -> Result<Vec<HistoryEntry>, StoreError> {
        self.read(|db| subscriptions::history(db, app, customer_id, limit))
    }

    fn scan_subscription_history(
        &self,
        app: AppId,
        visit: &mut dyn FnMut(i64, &Channel, bool, i64),
    ) -> Result<(), StoreError> {
        self.read(|db| {
            rows::get_app(db, app)?;
            subscriptions::scan_history(db, app, visit)
        })
    }

    fn scan_subscriptions(
        &self,
        app: AppId,
        visit: &mut dyn FnMut(i64, Channel, bool),
    ) -> Result<(), StoreError> {
        self.read(|db| {
            rows::get_app(db, app)?;
            subscriptions::scan(db, app, visit)
        })
    }

    fn start_session(
        &self,
        token_hash: &[u8; 32],
        session: &crate::ConsoleSession,
        now: i64,
        limits: &crate::SessionLimits,
    ) -> Result<(), StoreError> {
        self.write(|w| sessions::start(w, token_hash, session, now, limits))
    }

    fn use_session(
        &self,
        token_hash: &[u8; 32],
        now: i64,
        limits: &crate::SessionLimits,
    ) -> Result<Option<crate::ConsoleSession>, StoreError> {
        let Some(stored) = self.read(|db| sessions::find(db, token_hash))? else {
            return Ok(None);
        };
        // Most uses only read: the last use is written once per `touch_ms`, and an expired
        // session is dropped in a write.
        let expired = limits.expired(stored.started, stored.last_used, now);
        if (expired || now.saturating_sub(stored.last_used) >= limits.touch_ms)
            && !self.write(|w| sessions::touch(w, token_hash, now, limits))?
        {
            return Ok(None);
        }
        Ok(Some(stored.session))
    }

    fn end_session(&self, token_hash: &[u8; 32]) -> Result<(), StoreError> {
        self.write(|w| {
            w.db.execute(
                "DELETE FROM console_sessions WHERE token_hash = $1",
                &[&&token_hash[..]],
            )?;
            Ok(())
        })
    }

    fn create_customer(
        &self,
        app: AppId,
        customer_id: &CustomerId,
        changes: &[FieldChange],
        now: i64,
    ) -> Result<Customer, StoreError> {
        self.write_one(app, customer_id, changes, now, Mode::Create)
    }

    fn get_customer(&self, app: AppId, customer_id: &CustomerId) -> Result<Customer, StoreError> {
        self.read(|db| {
            rows::find_customer(db, app, customer_id, false)?
                .ok_or_else(|| rows::not_found(customer_id).into())
        })
    }

    fn update_customer(
        &self,
        app: AppId,
        customer_id: &CustomerId,
        changes: &[FieldChange],
        now: i64,
    ) -> Result<Customer, StoreError> {
        self.write_one(app, customer_id, changes, now, Mode::Update)
    }

    fn delete_customer(&self, app: AppId, customer_id: &CustomerId) -> Result<i64, StoreError> {
        self.write(|w| {
            w.share_app(app)?;
            let id = writes::delete_customer(&mut w.db, app, customer_id)?;
            w.emit(Change::CustomerDeleted { app, id });
            Ok(id)
        })
    }

    fn upsert_batch(
        &self,
        app: AppId,
        items: Vec<UpsertItem>,
        now: i64,
    ) -> Result<Vec<Result<UpsertOutcome, StoreError>>, StoreError> {
        self.write(|w| {
            let live = w.share_app(app)?;
            let schema = w.schema(app)?;
            let mut deltas = CountDeltas::default();
            let mut results = Vec::with_capacity(items.len());
            for item in &items {
                // An item refused by the checks wrote nothing: it is reported and the batch
                // goes on. A database error fails the whole transaction.
                let checked = check_changes(&live, &item.changes).and_then(|()| {
                    crate::subscriptions::check_channels(&schema, &item.subscriptions)
                });
                let outcome = match checked {
                    Err(e) => Err(e),
                    Ok(()) => Ok(writes::write(
                        &mut w.db,
                        app,
                        &item.customer_id,
                        &item.changes,
                        now,
                        Mode::Upsert,
                        &mut deltas,
                    )?),
                };
                results.push(outcome);
            }
            writes::flush_counts(std::mem::take(&mut deltas), &mut w.db)?;
            for (outcome, before) in results.iter().flatten() {
                w.emit(Change::Customer {
                    app,
                    customer: outcome.customer.clone(),
                    before: before.clone(),
                });
            }
            // After the customers, so a follower holds each one before its consent.
            for (item, result) in items.iter().zip(&results) {
                if result.is_ok() && !item.subscriptions.is_empty() {
                    subscriptions::apply(
                        w,
                        app,
                        &item.customer_id,
                        &item.subscriptions,
                        false,
                        now,
                    )?;
                }
            }
            let results = results
                .into_iter()
                .map(|r| r.map(|(outcome, _)| outcome))
                .collect();
            Ok(results)
        })
    }

    fn list_customers(&self, app: AppId, query: &ListQuery) -> Result<Page, StoreError> {
        self.read(|db| pages::list_page(db, app, query))
    }

    fn get_customers(&self, app: AppId, ids: &[i64]) -> Result<Vec<Customer>, StoreError> {
        self.read(|db| {
            let mut found: HashMap<i64, Customer> = HashMap::with_capacity(ids.len());
            for row in db.query(
                &format!(
                    "SELECT {} FROM customers WHERE app_id = $1 AND id = ANY($2)",
                    rows::CUSTOMER_COLUMNS
                ),
                &[&app.0, &ids],
            )? {
                let customer = rows::customer(&row)?;
                found.insert(customer.id, customer);
            }
            Ok(ids.iter().filter_map(|id| found.get(id).cloned()).collect())
        })
    }

    fn count_customers(&self, app: AppId) -> Result<u64, StoreError> {
        self.read(|db| {
            let n: i64 = db
                .query_one(
                    "SELECT count(*) FROM customers WHERE app_id = $1",
                    &[&app.0],
                )?
                .try_get(0)?;
            Ok(n.max(0) as u64)
        })
    }

    fn scan_customers(
        &self,
        app: AppId,
        visit: &mut dyn FnMut(Customer) -> bool,
    ) -> Result<u64, StoreError> {
        // One snapshot for the head and the customers: they show exactly the commits up to
        // that sequence number, since numbers are taken in commit order.
        self.snapshot(|db| {
            let seq = log::head(db)?;
            scan_customer_rows(db, app, visit)?;
            Ok(seq)
        })
    }

    fn create_segment(
        &self,
        app: AppId,
        name: &str,
        filter: &str,
        now: i64,
    ) -> Result<SegmentRecord, StoreError> {
        self.write(|w| {
            // Saves of one application's segments take turns, so two servers cannot both
            // take one name.
            w.own_app(app)?;
            crate::segment_name::check_unique(name, None, segment_names(w, app)?)?;
            let row = w.db.query_one(
                &format!(
                    "INSERT INTO segments (app_id, name, filter, created_at, updated_at) VALUES ($1, $2, $3, $4, $4) RETURNING {}",
                    rows::SEGMENT_COLUMNS
                ),
                &[&app.0, &name, &filter, &now],
            )?;
            rows::segment(&row)
        })
    }

    fn list_segments(&self, app: AppId) -> Result<Vec<SegmentRecord>, StoreError> {
        self.read(|db| {
            rows::get_app(db, app)?;
            db.query(
                &format!(
                    "SELECT {} FROM segments WHERE app_id = $1 ORDER BY id",
                    rows::SEGMENT_COLUMNS
                ),
                &[&app.0],
            )?
            .iter()
            .map(rows::segment)
            .collect()
        })
    }

    fn get_segment(&self, app: AppId, id: i64) -> Result<SegmentRecord, StoreError> {
        self.read(|db| rows::get_segment(db, app, id))
    }

    fn update_segment(
        &self,
        app: AppId,
        id: i64,
        name: &str,
        filter: &str,
        now: i64,
    ) -> Result<SegmentRecord, StoreError> {
        self.write(|w| {
            w.own_app(app)?;
            crate::segment_name::check_unique(name, Some(id), segment_names(w, app)?)?;
            w.db.query_opt(
                &format!(
                    "UPDATE segments SET name = $3, filter = $4, updated_at = $5 WHERE app_id = $1 AND id = $2 RETURNING {}",
                    rows::SEGMENT_COLUMNS
                ),
                &[&app.0, &id, &name, &filter, &now],
            )?
            .map(|r| rows::segment(&r))
            .transpose()?
            .ok_or_else(|| StoreError::NotFound(format!("segment {id}")).into())
        })
    }

    fn delete_segment(&self, app: AppId, id: i64) -> Result<(), StoreError> {
        self.write(|w| {
            let n = w.db.execute(
                "DELETE FROM segments WHERE app_id = $1 AND id = $2",
                &[&app.0, &id],
            )?;
            if n == 0 {
                return Err(StoreError::NotFound(format!("segment {id}")).into());
            }
            Ok(())
        })
    }

    fn create_import(
        &self,
        app: AppId,
        mode: ImportMode,
        now: i64,
    ) -> Result<ImportRecord, StoreError> {
        self.new_import(app, mode, ImportKind::Customers, now)
    }

    fn run_import(
        &self,
        app: AppId,
        batches: Box<dyn Iterator<Item = ImportBatch> + Send>,
        now: i64,
        written: Arc<AtomicU64>,
        finish: Option<ImportFinish>,
    ) -> Result<ImportCounts, StoreError> {
        let incremental = self.incremental_import;
        self.run_import_with(&written, finish, |w| {
            imports::write_all(w, app, batches, now, &written, incremental)
        })
    }

    fn finish_import(
        &self,
        record: &ImportRecord,
        errors: &[ImportRowError],
    ) -> Result<(), StoreError> {
        self.write(|w| imports::finish(&mut w.db, record, errors))
    }

    fn get_import(
        &self,
        app: AppId,
        id: i64,
    ) -> Result<(ImportRecord, Vec<ImportRowError>), StoreError> {
        self.read(|db| {
            rows::get_app(db, app)?;
            let record = rows::get_import(db, app, id)?;
            Ok((record, imports::errors(db, id)?))
        })
    }

    fn list_imports(&self, app: AppId, limit: usize) -> Result<Vec<ImportRecord>, StoreError> {
        self.read(|db| {
            rows::get_app(db, app)?;
            db.query(
                &format!(
                    "SELECT {} FROM imports WHERE app_id = $1 ORDER BY id DESC LIMIT $2",
                    rows::IMPORT_COLUMNS
                ),
                &[&app.0, &(limit.min(i64::MAX as usize) as i64)],
            )?
            .iter()
            .map(rows::import)
            .collect()
        })
    }

    fn fail_interrupted_imports(&self, now: i64) -> Result<u64, StoreError> {
        self.write(|w| {
            w.db.execute(
                "UPDATE imports SET state = $1, finished_at = $2, rows_written = 0, created = 0, updated = 0,
                     values_written = 0, message = 'interrupted: the server stopped during the import; nothing of it was written'
                 WHERE state = 'running'",
                &[&ImportState::Failed.as_str(), &now],
            )
        })
    }
}

/// Visits the application's customers in id order, streamed in batches from one portal of
/// the caller's (snapshot) transaction, until `visit` answers false.
fn scan_customer_rows(
    db: &mut Db<'_, Transaction<'_>>,
    app: AppId,
    visit: &mut dyn FnMut(Customer) -> bool,
) -> Res<()> {
    let stmt = db.prepare(&format!(
        "SELECT {} FROM customers WHERE app_id = $1 ORDER BY id",
        rows::CUSTOMER_COLUMNS
    ))?;
    let portal = db.c.bind(&stmt, &[&app.0])?;
    loop {
        let batch = db.c.query_portal(&portal, SCAN_BATCH)?;
        if batch.is_empty() {
            return Ok(());
        }
        for row in &batch {
            if !visit(rows::customer(row)?) {
                return Ok(());
            }
        }
    }
}

/// Every segment's id and name in the application.
fn segment_names(w: &mut Wx<'_, '_>, app: AppId) -> Res<Vec<(i64, String)>> {
    Ok(w.db
        .query("SELECT id, name FROM segments WHERE app_id = $1", &[&app.0])?
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect())
}
