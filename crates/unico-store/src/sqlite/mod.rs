//! The embedded backend: one SQLite database file in the data directory.
//!
//! **Layout.** A customer is one row (`customers`), its values one [`codec`] blob, so a
//! million customers are a million rows read sequentially at start-up and written in bulk
//! by imports. Field value counts live in `fields.value_count`, kept in step by every
//! write in the same transaction.
//!
//! **Durability.** WAL journal with `synchronous=FULL`: a commit is fsynced before the
//! caller hears back. All writes go through one [`writer::Writer`] thread (group commit);
//! reads use a small pool of their own connections and never wait for writes.

pub mod backup;
mod bulk;
mod event_block;
mod events;
mod identities;
mod imports;
mod log;
mod migrations;
mod recent;
mod rows;
mod schema_cache;
mod sessions;
mod subscriptions;
mod writer;
pub use writer::{MAX_JOBS_PER_COMMIT, WRITER_QUEUE_BOUND};
mod writes;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use rusqlite::OptionalExtension;
use rusqlite::functions::FunctionFlags;
use rusqlite::{Connection, OpenFlags, params};
use unico_core::limits::MAX_FIELDS_PER_APP;
use unico_core::{
    AppId, AppName, Application, Channel, Computed, Customer, CustomerId, Event, EventCode,
    EventType, FieldChange, FieldDef, FieldId, FieldName, FieldType, Identity, Schema,
    Subscription, SubscriptionChange, TimeZoneName,
};

use crate::audit::{AuditRecord, NewAudit};
use crate::changes::Change;
use crate::codec;
use crate::cursor::Cursor;
use crate::error::StoreError;
use crate::events::{Activity, EventOutcome, EventPage, EventQuery, EventTypePatch, NewEvent};
use crate::identities::{HeldIdentity, LinkOutcome, MergeOutcome, MergeRecord};
use crate::store::SegmentRecord;
use crate::store::{
    ApiKeyInfo, FieldStat, ImportBatch, ImportCounts, ImportMode, ImportRecord, ImportRowError,
    ImportState, ListQuery, Page, SortBy, Store, UpsertItem, UpsertOutcome,
};
use crate::subscriptions::{HistoryEntry, SubscriptionsOutcome};
use writes::{CountDeltas, Mode};

/// Name of the database file inside the data directory.
pub const DB_FILE: &str = "unico.db";
/// Read connections kept open for reuse.
const MAX_IDLE_READERS: usize = 8;

/// How often the WAL is copied back into the database file, off the write path.
const CHECKPOINT_INTERVAL: std::time::Duration = std::time::Duration::from_millis(500);

/// The embedded store.
pub struct SqliteStore {
    path: PathBuf,
    writer: writer::Writer,
    checkpointer: Option<(std::sync::mpsc::Sender<()>, std::thread::JoinHandle<()>)>,
    head: std::sync::Arc<log::Head>,
    readers: Mutex<Vec<Connection>>,
    schemas: Arc<schema_cache::SchemaCache>,
    /// Events just committed by `insert_events`, for the log's followers.
    recent: Arc<recent::RecentEvents>,
    /// Imports of at most this many customers reach the change feed customer by customer.
    incremental_import: u64,
}

fn open_connection(path: &Path, write: bool) -> Result<Connection, StoreError> {
    let flags = if write {
        OpenFlags::SQLITE_OPEN_READ_WRITE
            | OpenFlags::SQLITE_OPEN_CREATE
            | OpenFlags::SQLITE_OPEN_NO_MUTEX
    } else {
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX
    };
    let conn = Connection::open_with_flags(path, flags)?;
    conn.busy_timeout(std::time::Duration::from_secs(30))?;
    conn.execute_batch(
        "PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL; PRAGMA foreign_keys = ON;
         PRAGMA cache_size = -65536; PRAGMA temp_store = MEMORY;",
    )?;
    conn.set_prepared_statement_cache_capacity(64);
    register_functions(&conn)?;
    Ok(conn)
}

/// `unico_sort_key(data, field_id, descending)`: the value's [`codec::sort_key`] prefixed
/// with 0x01, or, for a customer without a value, 0x02 ascending / 0x00 descending, so
/// customers without a value come last in both directions.
fn register_functions(conn: &Connection) -> Result<(), StoreError> {
    conn.create_scalar_function(
        "unico_sort_key",
        3,
        FunctionFlags::SQLITE_UTF8 | FunctionFlags::SQLITE_DETERMINISTIC,
        |ctx| {
            let data = ctx.get_raw(0).as_blob().map_err(rusqlite::Error::from)?;
            let field = FieldId(ctx.get::<i64>(1)? as u32);
            let descending: bool = ctx.get(2)?;
            let value = codec::decode_one(data, field)
                .map_err(|e| rusqlite::Error::UserFunctionError(Box::new(e)))?;
            Ok(match value {
                Some(v) => {
                    let mut key = vec![1u8];
                    key.extend(codec::sort_key(&v));
                    key
                }
                None => vec![if descending { 0 } else { 2 }],
            })
        },
    )?;
    Ok(())
}

impl SqliteStore {
    /// Announces imports of at most `customers` customers customer by customer, larger
    /// ones as one [`crate::Change::Customers`] (default
    /// [`crate::INCREMENTAL_IMPORT_CUSTOMERS`]). Tests use a small bound to reach the
    /// ids path with few customers.
    pub fn with_incremental_import_limit(mut self, customers: u64) -> Self {
        self.incremental_import = customers;
        self
    }

    /// Opens (creating if needed) the store in `data_dir`.
    pub fn open(data_dir: &Path) -> Result<Self, StoreError> {
        std::fs::create_dir_all(data_dir).map_err(|e| {
            StoreError::Internal(format!(
                "cannot create data directory {}: {e}",
                data_dir.display()
            ))
        })?;
        let path = data_dir.join(DB_FILE);
        let mut conn = open_connection(&path, true)?;
        migrations::migrate(&mut conn)?;
        // Commits never stop to checkpoint; a background thread does it instead.
        conn.execute_batch("PRAGMA wal_autocheckpoint = 0; PRAGMA journal_size_limit = 67108864;")?;
        let checkpointer = start_checkpointer(&path)?;
        let head = log::Head::new(log::last_seq(&conn)?);
        let schemas = Arc::new(schema_cache::SchemaCache::default());
        let recent = Arc::new(recent::RecentEvents::default());
        Ok(Self {
            writer: writer::Writer::start(conn, head.clone(), schemas.clone(), recent.clone())?,
            recent,
            checkpointer: Some(checkpointer),
            head,
            path,
            readers: Mutex::new(Vec::new()),
            schemas,
            incremental_import: crate::changes::INCREMENTAL_IMPORT_CUSTOMERS,
        })
    }

    /// Makes the writer thread panic, as a bug in a write would, so that it stops. For
    /// the tests that prove a dead writer is reported and refuses writes loudly.
    #[doc(hidden)]
    pub fn inject_writer_panic_for_tests(&self) {
        let _ = self.writer.write(|_| -> Result<(), StoreError> {
            panic!("injected failure in the store's writer")
        });
        // The caller hears of the failure while the thread is still unwinding: wait until it
        // has ended, so that what the test observes next is a dead writer, not a dying one.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while self.writer.stats().alive && std::time::Instant::now() < deadline {
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
    }

    fn read<R>(
        &self,
        op: impl FnOnce(&Connection) -> Result<R, StoreError>,
    ) -> Result<R, StoreError> {
        let pooled = self.readers.lock().map_err(|_| poisoned())?.pop();
        let conn = match pooled {
            Some(c) => c,
            None => open_connection(&self.path, false)?,
        };
        let result = op(&conn);
        let mut pool = self.readers.lock().map_err(|_| poisoned())?;
        if pool.len() < MAX_IDLE_READERS {
            pool.push(conn);
        }
        result
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
        let name = name.clone();
        let result = self.writer.write(move |w| {
            w.forget(app);
            let c = &w.conn;
            ensure_app(c, app)?;
            let existing = rows::field_stats(c, app)?;
            if existing.iter().any(|s| s.field.name == name) {
                return Err(StoreError::Conflict(format!(
                    "field \"{name}\" exists already"
                )));
            }
            if existing.len() >= MAX_FIELDS_PER_APP {
                return Err(StoreError::Limit(format!(
                    "an application holds at most {MAX_FIELDS_PER_APP} fields"
                )));
            }
            if let Some(def) = &computed
                && events::registry(c, app)?.get(def.event.as_str()).is_none()
            {
                return Err(StoreError::Conflict(format!(
                    "event type \"{}\" is not registered (it was deleted meanwhile?)",
                    def.event
                )));
            }
            c.execute(
                "INSERT INTO fields (app_id, name, type, created_at, computed) VALUES (?1, ?2, ?3, ?4, ?5)",
                params![
                    app.0,
                    name.as_str(),
                    field_type.as_str(),
                    now,
                    computed.as_ref().map(Computed::to_storage)
                ],
            )?;
            let def = FieldDef {
                id: FieldId(c.last_insert_rowid() as u32),
                name,
                field_type,
                created_at: now,
                computed,
            };
            let schema = w.schema(app)?;
            w.emit(Change::Schema { app, schema });
            Ok(def)
        });
        self.forget_schema(app);
        result
    }

    fn forget_schema(&self, app: AppId) {
        self.schemas.forget(app);
    }
}

impl Drop for SqliteStore {
    fn drop(&mut self) {
        if let Some((stop, thread)) = self.checkpointer.take() {
            drop(stop);
            let _ = thread.join();
        }
    }
}

/// Copies committed WAL frames into the database file every [`CHECKPOINT_INTERVAL`]
/// (passive: it never blocks readers or the writer), so commits stay fast and the WAL
/// stays small.
fn start_checkpointer(
    path: &Path,
) -> Result<(std::sync::mpsc::Sender<()>, std::thread::JoinHandle<()>), StoreError> {
    let conn = open_connection(path, true)?;
    let (stop, stopped) = std::sync::mpsc::channel::<()>();
    let thread = std::thread::Builder::new()
        .name("unico-checkpoint".into())
        .spawn(move || {
            while let Err(std::sync::mpsc::RecvTimeoutError::Timeout) =
                stopped.recv_timeout(CHECKPOINT_INTERVAL)
            {
                if let Err(e) = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(())) {
                    tracing::warn!(error = %e, "WAL checkpoint failed; will retry");
                }
            }
            let _ = conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()));
        })
        .map_err(|e| StoreError::Internal(format!("cannot start the checkpoint thread: {e}")))?;
    Ok((stop, thread))
}

const SEGMENT_COLUMNS: &str = "id, app_id, name, filter, created_at, updated_at";

fn segment_from_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<SegmentRecord> {
    Ok(SegmentRecord {
        id: row.get(0)?,
        app: AppId(row.get(1)?),
        name: row.get(2)?,
        filter: row.get(3)?,
        created_at: row.get(4)?,
        updated_at: row.get(5)?,
    })
}

fn segment(c: &Connection, app: AppId, id: i64) -> Result<SegmentRecord, StoreError> {
    use rusqlite::OptionalExtension;
    c.prepare_cached(&format!(
        "SELECT {SEGMENT_COLUMNS} FROM segments WHERE app_id = ?1 AND id = ?2"
    ))?
    .query_row(params![app.0, id], segment_from_row)
    .optional()?
    .ok_or_else(|| StoreError::NotFound(format!("segment {id}")))
}

/// Every segment's id and name in the application.
fn segment_names(c: &Connection, app: AppId) -> Result<Vec<(i64, String)>, StoreError> {
    let mut stmt = c.prepare_cached("SELECT id, name FROM segments WHERE app_id = ?1")?;
    let names = stmt
        .query_map([app.0], |r| Ok((r.get(0)?, r.get(1)?)))?
        .collect::<Result<Vec<_>, _>>()?;
    Ok(names)
}

fn poisoned() -> StoreError {
    StoreError::Internal("a lock was poisoned by an earlier panic".into())
}

fn ensure_app(conn: &Connection, app: AppId) -> Result<(), StoreError> {
    rows::get_app(conn, app).map(|_| ())
}

fn field_by_name(conn: &Connection, app: AppId, name: &FieldName) -> Result<FieldStat, StoreError> {
    rows::field_stats(conn, app)?
        .into_iter()
        .find(|s| s.field.name == *name)
        .ok_or_else(|| StoreError::NotFound(format!("field \"{name}\"")))
}

impl Store for SqliteStore {
    fn backend(&self) -> &'static str {
        "sqlite"
    }

    fn check_ready(&self) -> Result<(), StoreError> {
        // A job that writes nothing: it proves the writer takes jobs and commits.
        self.writer.write(|_| Ok(()))
    }

    fn writer_stats(&self) -> crate::WriterStats {
        self.writer.stats()
    }

    fn log_head(&self) -> u64 {
        self.head.get()
    }

    fn log_horizon(&self) -> u64 {
        self.head.horizon()
    }

    fn log_bounds(&self) -> Result<crate::LogBounds, StoreError> {
        self.read(log::bounds)
    }

    fn read_log(&self, after: u64, limit: usize) -> Result<Vec<crate::LogEntry>, StoreError> {
        // One read transaction: a prune cannot slip between the floor's check and the read.
        self.read(|c| {
            c.execute_batch("BEGIN")?;
            let entries = log::read(c, after, limit);
            c.execute_batch("COMMIT")?;
            entries
        })
    }

    fn wait_log(&self, after: u64, timeout: std::time::Duration) -> u64 {
        self.head.wait_past(after, timeout)
    }

    fn prune_log(&self, before: i64) -> Result<u64, StoreError> {
        self.writer.write(move |w| log::prune(&w.conn, before))
    }

    fn get_meta(&self, key: &str) -> Result<Option<String>, StoreError> {
        use rusqlite::OptionalExtension;
        let key = key.to_owned();
        self.read(move |c| {
            Ok(
                c.query_row("SELECT value FROM meta WHERE key = ?1", [key], |r| r.get(0))
                    .optional()?,
            )
        })
    }

    fn set_meta(&self, key: &str, value: &str) -> Result<(), StoreError> {
        let (key, value) = (key.to_owned(), value.to_owned());
        self.writer.write(move |w| {
            let c = &w.conn;
            c.execute(
                "INSERT INTO meta (key, value) VALUES (?1, ?2) ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                [key, value],
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
        let (name, tz) = (name.as_str().to_owned(), timezone.as_str().to_owned());
        self.writer.write(move |w| {
            let c = &w.conn;
            c.execute(
                "INSERT INTO apps (name, timezone, created_at) VALUES (?1, ?2, ?3)",
                params![name, tz, now],
            )?;
            rows::get_app(c, AppId(c.last_insert_rowid()))
        })
    }

    fn list_apps(&self) -> Result<Vec<Application>, StoreError> {
        self.read(|c| {
            let mut stmt = c.prepare_cached(&format!(
                "SELECT {} FROM apps ORDER BY id",
                rows::APP_COLUMNS
            ))?;
            let apps = stmt
                .query_map([], rows::app_from_row)?
                .collect::<Result<Vec<_>, _>>()?;
            apps.into_iter().map(rows::to_app).collect()
        })
    }

    fn get_app(&self, app: AppId) -> Result<Application, StoreError> {
        self.read(|c| rows::get_app(c, app))
    }

    fn update_app(
        &self,
        app: AppId,
        name: Option<&AppName>,
        timezone: Option<&TimeZoneName>,
    ) -> Result<Application, StoreError> {
        let name = name.map(|n| n.as_str().to_owned());
        let tz = timezone.map(|t| t.as_str().to_owned());
        self.writer.write(move |w| {
            let c = &w.conn;
            ensure_app(c, app)?;
            if let Some(name) = name {
                c.execute(
                    "UPDATE apps SET name = ?2 WHERE id = ?1",
                    params![app.0, name],
                )?;
            }
            if let Some(tz) = &tz {
                c.execute(
                    "UPDATE apps SET timezone = ?2 WHERE id = ?1",
                    params![app.0, tz],
                )?;
            }
            let updated = rows::get_app(c, app)?;
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
        let result = self.writer.write(move |w| {
            w.forget(app);
            let c = &w.conn;
            ensure_app(c, app)?;
            events::delete_app_events(c, app)?;
            c.execute("DELETE FROM event_types WHERE app_id = ?1", [app.0])?;
            c.execute("DELETE FROM customers WHERE app_id = ?1", [app.0])?;
            c.execute("DELETE FROM apps WHERE id = ?1", [app.0])?;
            w.emit(Change::AppDeleted { app });
            Ok(())
        });
        self.forget_schema(app);
        result
    }

    fn create_key(
        &self,
        app: AppId,
        hash: &[u8; 32],
        prefix: &str,
        now: i64,
    ) -> Result<ApiKeyInfo, StoreError> {
        let (hash, prefix) = (hash.to_vec(), prefix.to_owned());
        self.writer.write(move |w| {
            let c = &w.conn;
            ensure_app(c, app)?;
            c.execute(
                "INSERT INTO api_keys (app_id, hash, prefix, created_at) VALUES (?1, ?2, ?3, ?4)",
                params![app.0, hash, prefix, now],
            )?;
            Ok(c.query_row(
                &format!("SELECT {} FROM api_keys WHERE id = ?1", rows::KEY_COLUMNS),
                [c.last_insert_rowid()],
                rows::key_from_row,
            )?)
        })
    }

    fn list_keys(&self, app: AppId) -> Result<Vec<ApiKeyInfo>, StoreError> {
        self.read(|c| {
            ensure_app(c, app)?;
            let mut stmt = c.prepare_cached(&format!(
                "SELECT {} FROM api_keys WHERE app_id = ?1 ORDER BY id",
                rows::KEY_COLUMNS
            ))?;
            Ok(stmt
                .query_map([app.0], rows::key_from_row)?
                .collect::<Result<Vec<_>, _>>()?)
        })
    }

    fn revoke_key(&self, app: AppId, key_id: i64, now: i64) -> Result<(), StoreError> {
        self.writer.write(move |w| {
            let c = &w.conn;
            let n = c.execute(
                "UPDATE api_keys SET revoked_at = ?3 WHERE id = ?2 AND app_id = ?1 AND revoked_at IS NULL",
                params![app.0, key_id, now],
            )?;
            if n == 0 {
                return Err(StoreError::NotFound(format!("key {key_id}")));
            }
            Ok(())
        })
    }

    fn start_session(
        &self,
        token_hash: &[u8; 32],
        session: &crate::ConsoleSession,
        now: i64,
        limits: &crate::SessionLimits,
    ) -> Result<(), StoreError> {
        let (token_hash, session, limits) = (*token_hash, session.clone(), *limits);
        self.writer
            .write(move |w| sessions::start(&w.conn, &token_hash, &session, now, &limits))
    }

    fn use_session(
        &self,
        token_hash: &[u8; 32],
        now: i64,
        limits: &crate::SessionLimits,
    ) -> Result<Option<crate::ConsoleSession>, StoreError> {
        let Some(stored) = self.read(|c| sessions::find(c, token_hash))? else {
            return Ok(None);
        };
        // Most uses only read: the last use is written once per `touch_ms`, and an expired
        // session is dropped by the writer.
        let expired = limits.expired(stored.started, stored.last_used, now);
        if expired || now.saturating_sub(stored.last_used) >= limits.touch_ms {
            let (token_hash, limits) = (*token_hash, *limits);
            if !self
                .writer
                .write(move |w| sessions::touch(&w.conn, &token_hash, now, &limits))?
            {
                return Ok(None);
            }
        }
        Ok(Some(stored.session))
    }

    fn end_session(&self, token_hash: &[u8; 32]) -> Result<(), StoreError> {
        let token_hash = *token_hash;
        self.writer.write(move |w| {
            w.conn.execute(
                "DELETE FROM console_sessions WHERE token_hash = ?1",
                [&token_hash[..]],
            )?;
            Ok(())
        })
    }

    fn find_key(&self, hash: &[u8; 32]) -> Result<Option<ApiKeyInfo>, StoreError> {
        use rusqlite::OptionalExtension;
        self.read(|c| {
            Ok(c.prepare_cached(&format!(
                "SELECT {} FROM api_keys WHERE hash = ?1 AND revoked_at IS NULL",
                rows::KEY_COLUMNS
            ))?
            .query_row([&hash[..]], rows::key_from_row)
            .optional()?)
        })
    }

    fn schema(&self, app: AppId) -> Result<Schema, StoreError> {
        self.schemas.get_or_load(app, || {
            self.read(|c| {
                ensure_app(c, app)?;
                Ok(Schema::new(
                    rows::field_stats(c, app)?
                        .into_iter()
                        .map(|s| s.field)
                        .collect(),
                )
                .with_event_types(events::registry(c, app)?)
                .with_declared_channels(subscriptions::declared(c, app)?))
            })
        })
    }

    fn field_stats(&self, app: AppId) -> Result<Vec<FieldStat>, StoreError> {
        self.read(|c| {
            ensure_app(c, app)?;
            rows::field_stats(c, app)
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
        let name = name.clone();
        let result = self.writer.write(move |w| {
            w.forget(app);
            let c = &w.conn;
            ensure_app(c, app)?;
            let stat = field_by_name(c, app, &name)?;
            crate::live::refuse_computed_retype(&stat.field, field_type)?;
            if stat.field.field_type != field_type && stat.value_count > 0 {
                return Err(StoreError::Conflict(format!(
                    "field \"{name}\" is {} and {} customers hold a value for it; a field's type can change only while no customer holds a value",
                    stat.field.field_type, stat.value_count
                )));
            }
            c.execute(
                "UPDATE fields SET type = ?2 WHERE id = ?1",
                params![i64::from(stat.field.id.0), field_type.as_str()],
            )?;
            let schema = w.schema(app)?;
            w.emit(Change::Schema { app, schema });
            Ok(FieldDef { field_type, ..stat.field })
        });
        self.forget_schema(app);
        result
    }

    fn delete_field(&self, app: AppId, name: &FieldName) -> Result<u64, StoreError> {
        let name = name.clone();
        let result = self.writer.write(move |w| {
            w.forget(app);
            let c = &w.conn;
            ensure_app(c, app)?;
            let stat = field_by_name(c, app, &name)?;
            let removed = writes::purge_field(c, app, stat.field.id)?;
            c.execute(
                "DELETE FROM fields WHERE id = ?1",
                [i64::from(stat.field.id.0)],
            )?;
            let schema = w.schema(app)?;
            w.emit(Change::Schema { app, schema });
            Ok(removed)
        });
        self.forget_schema(app);
        result
    }

    fn create_event_type(
        &self,
        app: AppId,
        event_type: &EventType,
    ) -> Result<EventType, StoreError> {
        let t = event_type.clone();
        let result = self.writer.write(move |w| events::create_type(w, app, &t));
        self.forget_schema(app);
        result
    }

    fn update_event_type(
        &self,
        app: AppId,
        code: &EventCode,
        patch: &EventTypePatch,
    ) -> Result<EventType, StoreError> {
        let (code, patch) = (code.clone(), patch.clone());
        let result = self
            .writer
            .write(move |w| events::update_type(w, app, &code, &patch));
        self.forget_schema(app);
        result
    }

    fn delete_event_type(&self, app: AppId, code: &EventCode) -> Result<u64, StoreError> {
        let code = code.clone();
        let result = self
            .writer
            .write(move |w| events::delete_type(w, app, &code));
        self.forget_schema(app);
        result
    }

    fn insert_events(
        &self,
        app: AppId,
        items: Vec<NewEvent>,
        now: i64,
    ) -> Result<Vec<Result<EventOutcome, StoreError>>, StoreError> {
        let result = self
            .writer
            .write(move |w| events::insert(w, app, items, now));
        // A type registered on first sight changes the schema.
        self.forget_schema(app);
        result
    }

    fn customer_events(
        &self,
        app: AppId,
        customer_id: &CustomerId,
        query: &EventQuery,
    ) -> Result<EventPage, StoreError> {
        self.read(|c| events::timeline(c, app, customer_id, query))
    }

    fn customer_activity(
        &self,
        app: AppId,
        customer_id: &CustomerId,
    ) -> Result<Activity, StoreError> {
        self.read(|c| events::activity(c, app, customer_id))
    }

    fn read_customers(
        &self,
        app: AppId,
        from: i64,
        to: i64,
        limit: usize,
    ) -> Result<Vec<Customer>, StoreError> {
        self.read(|c| {
            let mut stmt = c.prepare_cached(&format!(
                // The id range on the rowid: the app's index would be no help here.
                "SELECT {} FROM customers NOT INDEXED WHERE id BETWEEN ?1 AND ?2 AND app_id = ?3 ORDER BY id LIMIT ?4",
                rows::CUSTOMER_COLUMNS
            ))?;
            let mut rows_iter = stmt.query(params![from, to, app.0, limit as i64])?;
            let mut out = Vec::new();
            while let Some(row) = rows_iter.next()? {
                out.push(rows::to_customer(rows::customer_from_row(row)?)?);
            }
            Ok(out)
        })
    }

    fn read_events(
        &self,
        app: AppId,
        from: i64,
        to: i64,
        limit: usize,
    ) -> Result<Vec<Event>, StoreError> {
        if let Some(events) = self.recent.take(app, from, to, limit) {
            return Ok(events);
        }
        self.read(|c| events::read_range(c, app, from, to, limit))
    }

    fn take_prepared_events(
        &self,
        app: AppId,
        lo: i64,
        hi: i64,
    ) -> Option<Box<dyn std::any::Any + Send>> {
        self.recent.take_prepared(app, lo, hi)
    }

    fn takes_event_sinks(&self) -> bool {
        true
    }

    fn expire_events(&self, now: i64) -> Result<u64, StoreError> {
        self.writer.write(move |w| events::expire(w, now))
    }

    fn scan_app(
        &self,
        app: AppId,
        schema: &mut dyn FnMut(Schema),
        customers: &mut dyn FnMut(Customer) -> bool,
        visit_events: &mut dyn FnMut(Event) -> bool,
    ) -> Result<u64, StoreError> {
        self.read(|c| {
            // One read transaction, as in `scan_customers`.
            c.execute_batch("BEGIN")?;
            let scanned = (|| {
                let seq = log::last_seq(c)?;
                ensure_app(c, app)?;
                schema(
                    Schema::new(
                        rows::field_stats(c, app)?
                            .into_iter()
                            .map(|s| s.field)
                            .collect(),
                    )
                    .with_event_types(events::registry(c, app)?),
                );
                {
                    let mut stmt = c.prepare(&format!(
                        "SELECT {} FROM customers NOT INDEXED WHERE app_id = ?1 ORDER BY id",
                        rows::CUSTOMER_COLUMNS
                    ))?;
                    let mut rows_iter = stmt.query([app.0])?;
                    while let Some(row) = rows_iter.next()? {
                        if !customers(rows::to_customer(rows::customer_from_row(row)?)?) {
                            break;
                        }
                    }
                }
                events::scan(c, app, visit_events)?;
                Ok(seq)
            })();
            c.execute_batch("COMMIT")?;
            scanned
        })
    }

    fn record_audit(&self, entry: &NewAudit) -> Result<i64, StoreError> {
        let e = entry.clone();
        self.writer.write(move |w| {
            w.conn.execute(
                "INSERT INTO audit (app_id, at, actor, action, target) VALUES (?1, ?2, ?3, ?4, ?5)",
                params![e.app.map(|a| a.0), e.at, e.actor, e.action, e.target],
            )?;
            Ok(w.conn.last_insert_rowid())
        })
    }

    fn audit_log(
        &self,
        app: Option<AppId>,
        before: Option<i64>,
        limit: usize,
    ) -> Result<Vec<AuditRecord>, StoreError> {
        self.read(|c| {
            let mut stmt = c.prepare_cached(
                "SELECT id, app_id, at, actor, action, target FROM audit
                 WHERE (?1 IS NULL OR app_id = ?1) AND id < ?2 ORDER BY id DESC LIMIT ?3",
            )?;
            let rows = stmt.query_map(
                params![
                    app.map(|a| a.0),
                    before.unwrap_or(i64::MAX),
                    i64::try_from(limit).unwrap_or(i64::MAX)
                ],
                |r| {
                    Ok(AuditRecord {
                        id: r.get(0)?,
                        app: r.get::<_, Option<i64>>(1)?.map(AppId),
                        at: r.get(2)?,
                        actor: r.get(3)?,
                        action: r.get(4)?,
                        target: r.get(5)?,
                    })
                },
            )?;
            Ok(rows.collect::<Result<Vec<_>, _>>()?)
        })
    }

    fn erase_customer(&self, app: AppId, customer_id: &CustomerId) -> Result<i64, StoreError> {
        let customer_id = customer_id.clone();
        let id = self.writer.write(move |w| {
            // Deleted pages are overwritten with zeros, not left readable in the file.
            w.conn.execute_batch("PRAGMA secure_delete = ON")?;
            let erased = (|| {
                let found = rows::find_customer(&w.conn, app, &customer_id)?
                    .ok_or_else(|| rows::not_found(&customer_id))?;
                // The customers merged into it: their entries hold their values too.
                let merged = identities::merged_ids(&w.conn, found.id)?;
                let id = writes::delete_customer(&w.conn, app, &customer_id)?;
                for id in std::iter::once(id).chain(merged) {
                    w.conn
                        .execute(crate::log_row::SCRUB_CUSTOMER_ENTRIES, params![app.0, id])?;
                }
                Ok::<i64, StoreError>(id)
            })();
            w.conn.execute_batch("PRAGMA secure_delete = OFF")?;
            let id = erased?;
            w.emit(Change::CustomerErased { app, id });
            Ok(id)
        })?;
        // The write-ahead log still holds the old pages until a checkpoint copies the
        // zeroed ones into the database and empties it. Readers in flight can hold it
        // back: retry in the background until it completes (or a minute has passed; the
        // automatic checkpoints and the log's reuse overwrite the frames anyway). It never
        // waits for readers itself: a truncating checkpoint that waits holds the write lock
        // meanwhile, and every write (the next erasure too) would wait behind it.
        let path = self.path.clone();
        std::thread::spawn(move || {
            let Ok(conn) = open_connection(&path, false) else {
                return;
            };
            if conn.busy_timeout(std::time::Duration::ZERO).is_err() {
                return;
            }
            for _ in 0..600 {
                // A passive checkpoint first copies the pages without holding writers
                // back; the truncating one then has little left to copy while it does.
                let _ = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(()));
                let done = conn
                    .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |r| {
                        Ok(r.get::<_, i64>(0)? == 0)
                    })
                    .unwrap_or(false);
                if done {
                    return;
                }
                std::thread::sleep(std::time::Duration::from_millis(100));
            }
            tracing::warn!("the write-ahead log could not be emptied after an erasure");
        });
        Ok(id)
    }

    fn set_declared_channels(
        &self,
        app: AppId,
        channels: &[Channel],
    ) -> Result<Schema, StoreError> {
        let channels = channels.to_vec();
        let result = self
            .writer
            .write(move |w| subscriptions::set_declared(w, app, &channels));
        self.forget_schema(app);
        result
    }

    fn set_subscriptions(
        &self,
        app: AppId,
        customer_id: &CustomerId,
        changes: &[SubscriptionChange],
        create: bool,
        now: i64,
    ) -> Result<SubscriptionsOutcome, StoreError> {
        let (customer_id, changes) = (customer_id.clone(), changes.to_vec());
        self.writer
            .write(move |w| subscriptions::apply(w, app, &customer_id, &changes, create, now))
    }

    fn subscriptions(
        &self,
        app: AppId,
        customer_id: &CustomerId,
    ) -> Result<Vec<Subscription>, StoreError> {
        self.read(|c| subscriptions::standing(c, app, customer_id))
    }

    fn subscription_history(
        &self,
        app: AppId,
        customer_id: &CustomerId,
        limit: usize,
    ) -> Result<Vec<HistoryEntry>, StoreError> {
        self.read(|c| subscriptions::history(c, app, customer_id, limit))
    }

    fn scan_subscription_history(
        &self,
        app: AppId,
        visit: &mut dyn FnMut(i64, &Channel, bool, i64),
    ) -> Result<(), StoreError> {
        self.read(|c| {
            ensure_app(c, app)?;
            subscriptions::scan_history(c, app, visit)
        })
    }

    fn scan_subscriptions(
        &self,
        app: AppId,
        visit: &mut dyn FnMut(i64, Channel, bool),
    ) -> Result<(), StoreError> {
        self.read(|c| {
            ensure_app(c, app)?;
            subscriptions::scan(c, app, visit)
        })
    }

    fn link_identity(
        &self,
        app: AppId,
        customer_id: &CustomerId,
        identity: &Identity,
        now: i64,
    ) -> Result<LinkOutcome, StoreError> {
        let (customer_id, identity) = (customer_id.clone(), identity.clone());
        self.writer
            .write(move |w| identities::link(w, app, &customer_id, &identity, now))
    }

    fn unlink_identity(
        &self,
        app: AppId,
        customer_id: &CustomerId,
        identity: &Identity,
    ) -> Result<(), StoreError> {
        let (customer_id, identity) = (customer_id.clone(), identity.clone());
        self.writer
            .write(move |w| identities::unlink(&w.conn, app, &customer_id, &identity))
    }

    fn identities(
        &self,
        app: AppId,
        customer_id: &CustomerId,
    ) -> Result<Vec<HeldIdentity>, StoreError> {
        self.read(|c| identities::list(c, app, customer_id))
    }

    fn find_identity(
        &self,
        app: AppId,
        identity: &Identity,
    ) -> Result<Option<Customer>, StoreError> {
        self.read(|c| {
            ensure_app(c, app)?;
            identities::find(c, app, identity)
        })
    }

    fn is_anonymous(&self, app: AppId, customer_id: &CustomerId) -> Result<bool, StoreError> {
        self.read(|c| identities::is_anonymous(c, app, customer_id))
    }

    fn merge_customers(
        &self,
        app: AppId,
        into: &CustomerId,
        from: &CustomerId,
        now: i64,
    ) -> Result<MergeOutcome, StoreError> {
        let (into, from) = (into.clone(), from.clone());
        self.writer
            .write(move |w| identities::merge_by_id(w, app, &into, &from, now))
    }

    fn merges(&self, app: AppId, customer_id: &CustomerId) -> Result<Vec<MergeRecord>, StoreError> {
        self.read(|c| identities::merges(c, app, customer_id))
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
        self.read(|c| {
            rows::find_customer(c, app, customer_id)?.ok_or_else(|| rows::not_found(customer_id))
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
        let customer_id = customer_id.clone();
        self.writer.write(move |w| {
            let id = writes::delete_customer(&w.conn, app, &customer_id)?;
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
        self.writer.write(move |w| {
            let live = w.live_fields(app)?;
            let schema = w.schema(app)?;
            let c = &w.conn;
            let mut deltas = CountDeltas::default();
            let mut writer = writes::CustomerWriter::new(c)?;
            let mut results = Vec::with_capacity(items.len());
            let mut befores = Vec::with_capacity(items.len());
            let mut consents = Vec::new();
            for item in items {
                let outcome = crate::live::check_changes(&live, &item.changes)
                    .and_then(|()| {
                        crate::subscriptions::check_channels(&schema, &item.subscriptions)
                    })
                    .and_then(|()| {
                        writer.write(
                            c,
                            app,
                            &item.customer_id,
                            &item.changes,
                            now,
                            Mode::Upsert,
                            &mut deltas,
                        )
                    });
                if outcome.is_ok() && !item.subscriptions.is_empty() {
                    consents.push((item.customer_id, item.subscriptions));
                }
                results.push(outcome.map(|(outcome, before)| {
                    befores.push(before);
                    outcome
                }));
            }
            writes::flush_counts(deltas, c)?;
            drop(writer);
            for (outcome, before) in results.iter().flatten().zip(befores) {
                w.emit(Change::Customer {
                    app,
                    customer: outcome.customer.clone(),
                    before,
                });
            }
            // After the customers, so a follower holds each one before its consent.
            for (customer_id, changes) in consents {
                subscriptions::apply(w, app, &customer_id, &changes, false, now)?;
            }
            Ok(results)
        })
    }

    fn list_customers(&self, app: AppId, query: &ListQuery) -> Result<Page, StoreError> {
        let query = query.clone();
        self.read(move |c| list_page(c, app, &query))
    }

    fn count_customers(&self, app: AppId) -> Result<u64, StoreError> {
        self.read(|c| {
            let n: i64 = c
                .prepare_cached("SELECT count(*) FROM customers WHERE app_id = ?1")?
                .query_row([app.0], |r| r.get(0))?;
            Ok(n as u64)
        })
    }

    fn scan_customers(
        &self,
        app: AppId,
        visit: &mut dyn FnMut(Customer) -> bool,
    ) -> Result<u64, StoreError> {
        self.read(|c| {
            // One read transaction: its snapshot starts at the log's head read first, so
            // the customers visited are exactly those of that point of the log.
            c.execute_batch("BEGIN")?;
            let scanned = (|| {
                let seq = log::last_seq(c)?;
                let mut stmt = c.prepare(&format!(
                    // NOT INDEXED: walk the table in rowid (= id) order; through the
                    // customerId index SQLite would sort a million rows in a temporary
                    // B-tree first.
                    "SELECT {} FROM customers NOT INDEXED WHERE app_id = ?1 ORDER BY id",
                    rows::CUSTOMER_COLUMNS
                ))?;
                let mut rows_iter = stmt.query([app.0])?;
                while let Some(row) = rows_iter.next()? {
                    if !visit(rows::to_customer(rows::customer_from_row(row)?)?) {
                        break;
                    }
                }
                Ok(seq)
            })();
            c.execute_batch("COMMIT")?;
            scanned
        })
    }

    fn get_customers(&self, app: AppId, ids: &[i64]) -> Result<Vec<Customer>, StoreError> {
        self.read(|c| {
            let mut stmt = c.prepare_cached(&format!(
                "SELECT {} FROM customers WHERE id = ?1 AND app_id = ?2",
                rows::CUSTOMER_COLUMNS
            ))?;
            let mut out = Vec::with_capacity(ids.len());
            for id in ids {
                if let Some(row) = stmt
                    .query_row(params![id, app.0], rows::customer_from_row)
                    .optional()?
                {
                    out.push(rows::to_customer(row)?);
                }
            }
            Ok(out)
        })
    }

    fn create_segment(
        &self,
        app: AppId,
        name: &str,
        filter: &str,
        now: i64,
    ) -> Result<SegmentRecord, StoreError> {
        let (name, filter) = (name.to_owned(), filter.to_owned());
        self.writer.write(move |w| {
            let c = &w.conn;
            ensure_app(c, app)?;
            crate::segment_name::check_unique(&name, None, segment_names(c, app)?)?;
            c.execute(
                "INSERT INTO segments (app_id, name, filter, created_at, updated_at) VALUES (?1, ?2, ?3, ?4, ?4)",
                params![app.0, name, filter, now],
            )?;
            segment(c, app, c.last_insert_rowid())
        })
    }

    fn list_segments(&self, app: AppId) -> Result<Vec<SegmentRecord>, StoreError> {
        self.read(|c| {
            ensure_app(c, app)?;
            let mut stmt = c.prepare_cached(&format!(
                "SELECT {SEGMENT_COLUMNS} FROM segments WHERE app_id = ?1 ORDER BY id"
            ))?;
            Ok(stmt
                .query_map([app.0], segment_from_row)?
                .collect::<Result<Vec<_>, _>>()?)
        })
    }

    fn get_segment(&self, app: AppId, id: i64) -> Result<SegmentRecord, StoreError> {
        self.read(|c| segment(c, app, id))
    }

    fn update_segment(
        &self,
        app: AppId,
        id: i64,
        name: &str,
        filter: &str,
        now: i64,
    ) -> Result<SegmentRecord, StoreError> {
        let (name, filter) = (name.to_owned(), filter.to_owned());
        self.writer.write(move |w| {
            let c = &w.conn;
            crate::segment_name::check_unique(&name, Some(id), segment_names(c, app)?)?;
            let n = c.execute(
                "UPDATE segments SET name = ?3, filter = ?4, updated_at = ?5 WHERE app_id = ?1 AND id = ?2",
                params![app.0, id, name, filter, now],
            )?;
            if n == 0 {
                return Err(StoreError::NotFound(format!("segment {id}")));
            }
            segment(c, app, id)
        })
    }

    fn delete_segment(&self, app: AppId, id: i64) -> Result<(), StoreError> {
        self.writer.write(move |w| {
            let n = w.conn.execute(
                "DELETE FROM segments WHERE app_id = ?1 AND id = ?2",
                params![app.0, id],
            )?;
            if n == 0 {
                return Err(StoreError::NotFound(format!("segment {id}")));
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
        self.writer.write(move |w| {
            imports::create(&w.conn, app, mode, crate::store::ImportKind::Customers, now)
        })
    }

    fn run_import(
        &self,
        app: AppId,
        batches: Box<dyn Iterator<Item = ImportBatch> + Send>,
        now: i64,
        written: std::sync::Arc<std::sync::atomic::AtomicU64>,
        finish: Option<crate::store::ImportFinish>,
    ) -> Result<ImportCounts, StoreError> {
        let incremental = self.incremental_import;
        self.writer.write(move |w| {
            let outcome = imports::run(w, app, batches, now, written, incremental);
            imports::conclude(&w.conn, outcome, finish)
        })
    }

    fn create_event_import(
        &self,
        app: AppId,
        mode: ImportMode,
        now: i64,
    ) -> Result<ImportRecord, StoreError> {
        self.writer.write(move |w| {
            imports::create(&w.conn, app, mode, crate::store::ImportKind::Events, now)
        })
    }

    fn run_event_import(
        &self,
        app: AppId,
        batches: Box<dyn Iterator<Item = crate::store::EventBatch> + Send>,
        now: i64,
        written: std::sync::Arc<std::sync::atomic::AtomicU64>,
        finish: Option<crate::store::ImportFinish>,
        sink: Option<Box<dyn crate::store::EventSink>>,
    ) -> Result<ImportCounts, StoreError> {
        let incremental = self.incremental_import;
        let result = self.writer.write(move |w| {
            let outcome = events::import(w, app, batches, now, &written, incremental, sink);
            imports::conclude(&w.conn, outcome, finish)
        });
        self.forget_schema(app);
        result
    }

    fn finish_import(
        &self,
        record: &ImportRecord,
        errors: &[ImportRowError],
    ) -> Result<(), StoreError> {
        let (record, errors) = (record.clone(), errors.to_vec());
        self.writer
            .write(move |w| imports::finish(&w.conn, &record, &errors))
    }

    fn get_import(
        &self,
        app: AppId,
        id: i64,
    ) -> Result<(ImportRecord, Vec<ImportRowError>), StoreError> {
        self.read(|c| {
            ensure_app(c, app)?;
            let record = imports::get_import(c, app, id)?;
            Ok((record, imports::errors(c, id)?))
        })
    }

    fn list_imports(&self, app: AppId, limit: usize) -> Result<Vec<ImportRecord>, StoreError> {
        self.read(|c| {
            ensure_app(c, app)?;
            let mut stmt = c.prepare_cached(&format!(
                "SELECT {} FROM imports WHERE app_id = ?1 ORDER BY id DESC LIMIT ?2",
                imports::IMPORT_COLUMNS
            ))?;
            Ok(stmt
                .query_map(params![app.0, limit as i64], imports::import_from_row)?
                .collect::<Result<Vec<_>, _>>()?)
        })
    }

    fn fail_interrupted_imports(&self, now: i64) -> Result<u64, StoreError> {
        self.writer.write(move |w| {
            let n = w.conn.execute(
                "UPDATE imports SET state = ?1, finished_at = ?2, rows_written = 0, created = 0, updated = 0,
                     values_written = 0, message = 'interrupted: the server stopped during the import; nothing of it was written'
                 WHERE state = 'running'",
                params![ImportState::Failed.as_str(), now],
            )?;
            Ok(n as u64)
        })
    }
}

impl SqliteStore {
    fn write_one(
        &self,
        app: AppId,
        customer_id: &CustomerId,
        changes: &[FieldChange],
        now: i64,
        mode: Mode,
    ) -> Result<Customer, StoreError> {
        let (customer_id, changes) = (customer_id.clone(), changes.to_vec());
        self.writer.write(move |w| {
            crate::live::check_changes(&*w.live_fields(app)?, &changes)?;
            let c = &w.conn;
            let mut deltas = CountDeltas::default();
            let (outcome, before) = writes::CustomerWriter::new(c)?.write(
                c,
                app,
                &customer_id,
                &changes,
                now,
                mode,
                &mut deltas,
            )?;
            writes::flush_counts(deltas, c)?;
            w.emit(Change::Customer {
                app,
                customer: outcome.customer.clone(),
                before,
            });
            Ok(outcome.customer)
        })
    }
}

/// How a row's position in the page order is read back, to make the next cursor.
enum KeyColumn {
    /// customerId order: the customerId alone is the position.
    None,
    /// An integer column (id, updated_at), kept big-endian.
    Integer(usize),
    /// A blob column (a field's sort key).
    Blob(usize),
}

/// One page in the requested order, fetching one row more than asked to know whether
/// another page follows.
fn list_page(c: &Connection, app: AppId, query: &ListQuery) -> Result<Page, StoreError> {
    use rusqlite::types::Value as Sql;
    let desc = query.sort.descending;
    let (cmp, dir) = if desc { ("<", "DESC") } else { (">", "ASC") };
    let after = query.after.as_ref();
    let cols = rows::CUSTOMER_COLUMNS;
    let int_key = |cur: &Cursor| -> Result<i64, StoreError> {
        Ok(i64::from_be_bytes(
            cur.key.as_slice().try_into().map_err(|_| bad_cursor())?,
        ))
    };
    // ?1 is the application, ?2 the row count; the sort adds its own parameters after.
    let mut args: Vec<Sql> = vec![Sql::Integer(app.0), Sql::Integer((query.limit + 1) as i64)];
    let (sql, key) = match &query.sort.by {
        SortBy::CustomerId => {
            let mut filter = String::new();
            if let Some(cur) = after {
                filter = format!(" AND customer_id {cmp} ?3");
                args.push(Sql::Text(cur.customer_id.clone()));
            }
            (
                format!(
                    "SELECT {cols} FROM customers WHERE app_id = ?1{filter} ORDER BY customer_id {dir} LIMIT ?2"
                ),
                KeyColumn::None,
            )
        }
        SortBy::CreatedAt => {
            let mut filter = String::new();
            if let Some(cur) = after {
                filter = format!(" AND id {cmp} ?3");
                args.push(Sql::Integer(int_key(cur)?));
            }
            (
                format!(
                    "SELECT {cols} FROM customers WHERE app_id = ?1{filter} ORDER BY id {dir} LIMIT ?2"
                ),
                KeyColumn::Integer(0),
            )
        }
        SortBy::UpdatedAt => {
            let mut filter = String::new();
            if let Some(cur) = after {
                filter = format!(
                    " AND (updated_at {cmp} ?3 OR (updated_at = ?3 AND customer_id {cmp} ?4))"
                );
                args.push(Sql::Integer(int_key(cur)?));
                args.push(Sql::Text(cur.customer_id.clone()));
            }
            (
                format!(
                    "SELECT {cols} FROM customers WHERE app_id = ?1{filter} ORDER BY updated_at {dir}, customer_id {dir} LIMIT ?2"
                ),
                KeyColumn::Integer(3),
            )
        }
        SortBy::Field(field) => {
            args.push(Sql::Integer(i64::from(field.id.0)));
            args.push(Sql::Integer(i64::from(desc)));
            let mut filter = String::new();
            if let Some(cur) = after {
                filter = format!(" WHERE (k {cmp} ?5 OR (k = ?5 AND customer_id {cmp} ?6))");
                args.push(Sql::Blob(cur.key.clone()));
                args.push(Sql::Text(cur.customer_id.clone()));
            }
            (
                format!(
                    "SELECT * FROM (SELECT {cols}, unico_sort_key(data, ?3, ?4) AS k FROM customers WHERE app_id = ?1){filter} ORDER BY k {dir}, customer_id {dir} LIMIT ?2"
                ),
                KeyColumn::Blob(5),
            )
        }
    };
    let mut stmt = c.prepare_cached(&sql)?;
    let mut rows_iter = stmt.query(rusqlite::params_from_iter(args))?;
    let mut out: Vec<(Customer, Vec<u8>)> = Vec::with_capacity(query.limit + 1);
    while let Some(row) = rows_iter.next()? {
        let key = match key {
            KeyColumn::None => Vec::new(),
            KeyColumn::Integer(i) => row.get::<_, i64>(i)?.to_be_bytes().to_vec(),
            KeyColumn::Blob(i) => row.get(i)?,
        };
        out.push((rows::to_customer(rows::customer_from_row(row)?)?, key));
    }
    let next = if out.len() > query.limit {
        out.truncate(query.limit);
        out.last().map(|(customer, key)| Cursor {
            order: Cursor::order_tag(&query.sort),
            key: key.clone(),
            customer_id: customer.customer_id.as_str().to_owned(),
        })
    } else {
        None
    };
    Ok(Page {
        customers: out.into_iter().map(|(c, _)| c).collect(),
        next,
    })
}

fn bad_cursor() -> StoreError {
    StoreError::Invalid("the cursor does not fit this order".into())
}
