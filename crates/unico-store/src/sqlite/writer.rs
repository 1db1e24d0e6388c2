//! The single writer thread and its group commit.
//!
//! SQLite admits one writer at a time, so every write is a job sent to one thread that owns
//! the write connection. The thread takes every job waiting (up to [`MAX_JOBS_PER_COMMIT`]),
//! runs each in its own savepoint inside one transaction, commits once (one fsync), and only
//! then answers each caller. Concurrent writers thus share fsyncs, and an answer is never
//! sent for a write that is not yet durable.

use std::collections::HashMap;
use std::sync::{Arc, mpsc};
use std::thread;

use rusqlite::Connection;
use unico_core::AppId;

use super::rows;
use crate::changes::{Change, ChangeListener};
use crate::error::StoreError;

/// The listener slot shared by the store and its writer thread.
pub type ListenerSlot = Arc<std::sync::RwLock<Option<Arc<dyn ChangeListener>>>>;

/// What a write job sees: the connection, inside the group's transaction, and the
/// writer's cache of each application's live fields. The cache is exact because every
/// schema change runs on this thread and calls [`WriteCtx::forget`].
pub struct WriteCtx {
    pub conn: Connection,
    live: HashMap<AppId, Arc<rows::LiveFields>>,
    /// Changes of the current group's jobs, delivered once the group commits.
    events: Vec<Change>,
}

impl WriteCtx {
    /// Records a change, published to the listener if and when its job commits.
    pub fn emit(&mut self, change: Change) {
        self.events.push(change);
    }

    /// The application's schema as this transaction sees it.
    pub fn schema(&self, app: AppId) -> Result<unico_core::Schema, StoreError> {
        Ok(unico_core::Schema::new(
            rows::field_stats(&self.conn, app)?
                .into_iter()
                .map(|s| s.field)
                .collect(),
        ))
    }

    /// The application's live fields; `NotFound` if the application does not exist.
    pub fn live_fields(&mut self, app: AppId) -> Result<Arc<rows::LiveFields>, StoreError> {
        if let Some(live) = self.live.get(&app) {
            return Ok(live.clone());
        }
        rows::get_app(&self.conn, app)?;
        let live = Arc::new(rows::live_field_types(&self.conn, app)?);
        self.live.insert(app, live.clone());
        Ok(live)
    }

    /// Drops the cached fields of `app`; called by every job that changes its schema.
    pub fn forget(&mut self, app: AppId) {
        self.live.remove(&app);
    }
}

/// Most jobs committed together; bounds the latency one commit adds.
pub const MAX_JOBS_PER_COMMIT: usize = 256;

type Reply = Box<dyn FnOnce(Result<(), StoreError>) + Send>;
/// A job runs against the writer's context, or, given `None`, gives up without touching it.
type Job = Box<dyn FnOnce(Option<&mut WriteCtx>) -> Reply + Send>;

/// Handle to the writer thread. Dropping it stops the thread after pending jobs.
pub struct Writer {
    jobs: Option<mpsc::Sender<Job>>,
    thread: Option<thread::JoinHandle<()>>,
}

impl Writer {
    pub fn start(conn: Connection, listener: ListenerSlot) -> Result<Self, StoreError> {
        let (tx, rx) = mpsc::channel::<Job>();
        let thread = thread::Builder::new()
            .name("unico-writer".into())
            .spawn(move || run(conn, rx, listener))
            .map_err(|e| StoreError::Internal(format!("cannot start the writer thread: {e}")))?;
        Ok(Self {
            jobs: Some(tx),
            thread: Some(thread),
        })
    }

    /// Runs `op` in the writer's transaction and answers once it is durable. If `op` fails
    /// its changes are rolled back and other jobs of the same commit are unaffected.
    pub fn write<R: Send + 'static>(
        &self,
        op: impl FnOnce(&mut WriteCtx) -> Result<R, StoreError> + Send + 'static,
    ) -> Result<R, StoreError> {
        let (tx, rx) = mpsc::sync_channel::<Result<R, StoreError>>(1);
        let job: Job = Box::new(move |conn| {
            let outcome = match conn {
                Some(ctx) => in_savepoint(ctx, op),
                None => Err(StoreError::Internal("not run".into())),
            };
            Box::new(move |committed: Result<(), StoreError>| {
                let _ = tx.send(committed.and(outcome));
            })
        });
        let jobs = self
            .jobs
            .as_ref()
            .ok_or_else(|| StoreError::Internal("the store is closed".into()))?;
        jobs.send(job)
            .map_err(|_| StoreError::Internal("the writer thread stopped".into()))?;
        rx.recv()
            .map_err(|_| StoreError::Internal("the writer thread stopped".into()))?
    }
}

impl Drop for Writer {
    fn drop(&mut self) {
        self.jobs.take();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn in_savepoint<R>(
    ctx: &mut WriteCtx,
    op: impl FnOnce(&mut WriteCtx) -> Result<R, StoreError>,
) -> Result<R, StoreError> {
    ctx.conn.execute_batch("SAVEPOINT job")?;
    let events_before = ctx.events.len();
    match op(ctx) {
        Ok(r) => {
            ctx.conn.execute_batch("RELEASE job")?;
            Ok(r)
        }
        Err(e) => {
            // What the job cached or announced may describe rolled-back changes.
            ctx.live.clear();
            ctx.events.truncate(events_before);
            ctx.conn.execute_batch("ROLLBACK TO job; RELEASE job")?;
            Err(e)
        }
    }
}

/// The `meta` key of an application's data version.
pub fn data_version_key(app: AppId) -> String {
    format!("data_version.{}", app.0)
}

/// Moves the data version of every application this group changed, in the group's
/// transaction (so a version is never ahead of or behind its data), and announces each
/// new version after the group's changes. A deleted application's version goes with it.
fn bump_data_versions(ctx: &mut WriteCtx) -> Result<(), StoreError> {
    let mut apps: Vec<AppId> = ctx.events.iter().map(Change::app).collect();
    apps.sort_unstable_by_key(|a| a.0);
    apps.dedup();
    for app in apps {
        let key = data_version_key(app);
        let deleted = ctx
            .events
            .iter()
            .any(|c| matches!(c, Change::AppDeleted { app: a } if *a == app));
        if deleted {
            ctx.conn
                .execute("DELETE FROM meta WHERE key = ?1", [&key])?;
            continue;
        }
        let version: i64 = ctx.conn.query_row(
            "INSERT INTO meta (key, value) VALUES (?1, '1')
             ON CONFLICT (key) DO UPDATE SET value = CAST(CAST(value AS INTEGER) + 1 AS TEXT)
             RETURNING CAST(value AS INTEGER)",
            [&key],
            |r| r.get(0),
        )?;
        ctx.events.push(Change::DataVersion {
            app,
            version: version as u64,
        });
    }
    Ok(())
}

fn run(conn: Connection, rx: mpsc::Receiver<Job>, listener: ListenerSlot) {
    let mut ctx = WriteCtx {
        conn,
        live: HashMap::new(),
        events: Vec::new(),
    };
    while let Ok(first) = rx.recv() {
        let mut batch = vec![first];
        while batch.len() < MAX_JOBS_PER_COMMIT {
            match rx.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        if let Err(e) = ctx.conn.execute_batch("BEGIN IMMEDIATE") {
            let err = StoreError::from(e);
            tracing::error!(error = %err, "cannot begin a write transaction");
            for job in batch {
                // Answer without running: nothing of these jobs was written.
                job(None)(Err(err.clone()));
            }
            continue;
        }
        let replies: Vec<Reply> = batch.into_iter().map(|job| job(Some(&mut ctx))).collect();
        let committed = bump_data_versions(&mut ctx)
            .and_then(|()| ctx.conn.execute_batch("COMMIT").map_err(StoreError::from));
        match &committed {
            Err(e) => {
                tracing::error!(error = %e, "commit failed; rolling back");
                ctx.live.clear();
                ctx.events.clear();
                let _ = ctx.conn.execute_batch("ROLLBACK");
            }
            Ok(()) if !ctx.events.is_empty() => {
                let events = std::mem::take(&mut ctx.events);
                if let Ok(slot) = listener.read()
                    && let Some(listener) = slot.as_ref()
                {
                    listener.committed(&events);
                }
            }
            Ok(()) => {}
        }
        for reply in replies {
            reply(committed.clone());
        }
    }
}
