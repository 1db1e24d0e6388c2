//! The single writer thread and its group commit.
//!
//! SQLite admits one writer at a time, so every write is a job sent to one thread that owns
//! the write connection. The thread takes every job waiting (up to [`MAX_JOBS_PER_COMMIT`]),
//! runs each in its own savepoint inside one transaction, commits once (one fsync), and only
//! then answers each caller. Concurrent writers thus share fsyncs, and an answer is never
//! sent for a write that is not yet durable.
//!
//! The changes of a group's jobs are appended to the change log in the group's own
//! transaction, and the log's head moves (waking its readers) after the commit and before
//! any caller is answered: a write that was acknowledged is always in the log.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, mpsc};
use std::thread;

use rusqlite::Connection;
use unico_core::AppId;

use super::log::{self, Head};
use super::recent::{Prepared, RecentEvents, Staged};
use super::rows;
use super::schema_cache::SchemaCache;
use crate::changes::Change;
use crate::error::StoreError;
use crate::live::LiveFields;

/// What a write job sees: the connection, inside the group's transaction, and the
/// writer's cache of each application's live fields. The cache is exact because every
/// schema change runs on this thread and calls [`WriteCtx::forget`].
pub struct WriteCtx {
    pub conn: Connection,
    live: HashMap<AppId, Arc<LiveFields>>,
    /// Changes of the current group's jobs, delivered once the group commits.
    events: Vec<Change>,
    /// Events the group's jobs stored, published to [`RecentEvents`] once it commits.
    recent: Vec<Staged>,
    /// What an import prepared for the followers, published once the group commits.
    prepared: Vec<Prepared>,
}

impl WriteCtx {
    /// Records a change, logged if and when its job commits.
    pub fn emit(&mut self, change: Change) {
        self.events.push(change);
    }

    /// Offers the events a job stored to the log's followers, if and when it commits.
    pub fn stage_recent(&mut self, staged: Staged) {
        self.recent.push(staged);
    }

    /// Offers what an import prepared to the log's followers, if and when it commits.
    pub fn stage_prepared(&mut self, prepared: Prepared) {
        self.prepared.push(prepared);
    }

    /// The application's schema as this transaction sees it.
    pub fn schema(&self, app: AppId) -> Result<unico_core::Schema, StoreError> {
        Ok(unico_core::Schema::new(
            rows::field_stats(&self.conn, app)?
                .into_iter()
                .map(|s| s.field)
                .collect(),
        )
        .with_event_types(super::events::registry(&self.conn, app)?)
        .with_declared_channels(super::subscriptions::declared(&self.conn, app)?))
    }

    /// The application's live fields; `NotFound` if the application does not exist.
    pub fn live_fields(&mut self, app: AppId) -> Result<Arc<LiveFields>, StoreError> {
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

/// Most write jobs waiting for the writer. Past it a write is refused at once with
/// `Unavailable` (503 with `Retry-After`) instead of queueing: a queue longer than the
/// disk can drain only grows, holding every waiting request's data in memory. Two full
/// group commits' worth: a job at the back waits for at most two commits before its own,
/// and it stays below tokio's 512 blocking threads, so the queue fills (and answers 503)
/// before callers exhaust the threads every other request needs.
pub const WRITER_QUEUE_BOUND: usize = 2 * MAX_JOBS_PER_COMMIT;

type Reply = Box<dyn FnOnce(Result<(), StoreError>) + Send>;
/// A job runs against the writer's context, or, given `None`, gives up without touching it.
type Job = Box<dyn FnOnce(Option<&mut WriteCtx>) -> Reply + Send>;

/// Handle to the writer thread. Dropping it stops the thread after pending jobs.
pub struct Writer {
    jobs: Option<mpsc::SyncSender<Job>>,
    thread: Option<thread::JoinHandle<()>>,
    /// Jobs sent and not yet taken by the writer.
    queued: Arc<AtomicUsize>,
    bound: usize,
    commits: Arc<Commits>,
}

/// The writer's commit latencies.
#[derive(Default)]
struct Commits {
    count: AtomicU64,
    micros: AtomicU64,
    buckets: [AtomicU64; crate::store::COMMIT_BUCKETS_SECONDS.len()],
}

impl Commits {
    fn record(&self, took: std::time::Duration) {
        self.count.fetch_add(1, Ordering::Relaxed);
        self.micros
            .fetch_add(took.as_micros() as u64, Ordering::Relaxed);
        let secs = took.as_secs_f64();
        for (bucket, &bound) in self
            .buckets
            .iter()
            .zip(&crate::store::COMMIT_BUCKETS_SECONDS)
        {
            if secs <= bound {
                bucket.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}

impl Writer {
    pub fn start(
        conn: Connection,
        head: Arc<Head>,
        schemas: Arc<SchemaCache>,
        recent: Arc<RecentEvents>,
    ) -> Result<Self, StoreError> {
        Self::start_bounded(conn, head, schemas, recent, WRITER_QUEUE_BOUND)
    }

    /// A writer whose queue holds at most `bound` jobs (at least one).
    pub(crate) fn start_bounded(
        conn: Connection,
        head: Arc<Head>,
        schemas: Arc<SchemaCache>,
        recent: Arc<RecentEvents>,
        bound: usize,
    ) -> Result<Self, StoreError> {
        let bound = bound.max(1);
        let (tx, rx) = mpsc::sync_channel::<Job>(bound);
        let queued = Arc::new(AtomicUsize::new(0));
        let taken = queued.clone();
        let commits = Arc::new(Commits::default());
        let timed = commits.clone();
        let thread = thread::Builder::new()
            .name("unico-writer".into())
            .spawn(move || run(conn, rx, head, &schemas, &recent, &taken, &timed))
            .map_err(|e| StoreError::Internal(format!("cannot start the writer thread: {e}")))?;
        Ok(Self {
            jobs: Some(tx),
            thread: Some(thread),
            queued,
            bound,
            commits,
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
        self.queued.fetch_add(1, Ordering::Relaxed);
        if let Err(e) = jobs.try_send(job) {
            self.queued.fetch_sub(1, Ordering::Relaxed);
            return Err(match e {
                mpsc::TrySendError::Full(_) => StoreError::Unavailable(format!(
                    "the store has {} writes waiting, its most; retry shortly",
                    self.bound
                )),
                mpsc::TrySendError::Disconnected(_) => {
                    StoreError::Unavailable("the store's writer stopped".into())
                }
            });
        }
        rx.recv()
            .map_err(|_| StoreError::Unavailable("the store's writer stopped".into()))?
    }
}

impl Writer {
    /// Whether the thread runs, and its queue.
    pub fn stats(&self) -> crate::WriterStats {
        crate::WriterStats {
            alive: self.thread.as_ref().is_some_and(|t| !t.is_finished()),
            queued: self.queued.load(Ordering::Relaxed),
            queue_bound: self.bound,
            commits: self.commits.count.load(Ordering::Relaxed),
            commit_seconds: self.commits.micros.load(Ordering::Relaxed) as f64 / 1e6,
            commit_buckets: self
                .commits
                .buckets
                .iter()
                .map(|b| b.load(Ordering::Relaxed))
                .collect(),
        }
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
    let recent_before = ctx.recent.len();
    let prepared_before = ctx.prepared.len();
    match op(ctx) {
        Ok(r) => {
            ctx.conn.execute_batch("RELEASE job")?;
            Ok(r)
        }
        Err(e) => {
            // What the job cached or announced may describe rolled-back changes.
            ctx.live.clear();
            ctx.events.truncate(events_before);
            ctx.recent.truncate(recent_before);
            ctx.prepared.truncate(prepared_before);
            ctx.conn.execute_batch("ROLLBACK TO job; RELEASE job")?;
            Err(e)
        }
    }
}

fn run(
    conn: Connection,
    rx: mpsc::Receiver<Job>,
    head: Arc<Head>,
    schemas: &SchemaCache,
    recent: &RecentEvents,
    queued: &AtomicUsize,
    commits: &Commits,
) {
    let mut ctx = WriteCtx {
        conn,
        live: HashMap::new(),
        events: Vec::new(),
        recent: Vec::new(),
        prepared: Vec::new(),
    };
    while let Ok(first) = rx.recv() {
        let mut batch = vec![first];
        while batch.len() < MAX_JOBS_PER_COMMIT {
            match rx.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        queued.fetch_sub(batch.len(), Ordering::Relaxed);
        let began = std::time::Instant::now();
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
        let events = std::mem::take(&mut ctx.events);
        let staged = std::mem::take(&mut ctx.recent);
        let prepared = std::mem::take(&mut ctx.prepared);
        let at = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as i64);
        // Readers must not keep an application's schema from before this commit once
        // they can see its other effects: see `schema_cache`.
        let mut reschemed: Vec<AppId> = events
            .iter()
            .filter_map(|change| match change {
                Change::Schema { app, .. } | Change::AppDeleted { app } => Some(*app),
                _ => None,
            })
            .collect();
        reschemed.dedup();
        schemas.hold(&reschemed);
        let committed = log::append(&ctx.conn, &events, at).and_then(|seq| {
            head.committing(seq, || ctx.conn.execute_batch("COMMIT"))?;
            Ok(seq)
        });
        let committed = match committed {
            Err(e) => {
                tracing::error!(error = %e, "commit failed; rolling back");
                ctx.live.clear();
                let _ = ctx.conn.execute_batch("ROLLBACK");
                Err(e)
            }
            Ok(seq) => {
                // Before the head moves: no follower asks for these events earlier.
                recent.publish(staged, &events);
                recent.publish_prepared(prepared, &events);
                if let Some(seq) = seq {
                    head.advance(seq);
                }
                Ok(())
            }
        };
        schemas.release(&reschemed);
        commits.record(began.elapsed());
        for reply in replies {
            reply(committed.clone());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A full queue refuses the next write at once with `Unavailable` (503 with
    /// `Retry-After` over HTTP), and takes writes again once it drains.
    #[test]
    fn a_full_queue_refuses_writes_with_unavailable() {
        // Jobs that emit no change never touch the log's table.
        let conn = Connection::open_in_memory().unwrap();
        let writer = Arc::new(
            Writer::start_bounded(conn, Head::new(0), Arc::default(), Arc::default(), 2).unwrap(),
        );
        // The writer takes one job and blocks in it; two more fill the queue.
        let (release, hold) = mpsc::channel::<()>();
        let hold = Arc::new(std::sync::Mutex::new(hold));
        let (started, running) = mpsc::channel::<()>();
        let mut waiting = Vec::new();
        {
            let (w, hold) = (writer.clone(), hold.clone());
            waiting.push(thread::spawn(move || {
                w.write(move |_| {
                    started.send(()).unwrap();
                    hold.lock().unwrap().recv().unwrap();
                    Ok(())
                })
            }));
        }
        running.recv().unwrap();
        for _ in 0..2 {
            let w = writer.clone();
            waiting.push(thread::spawn(move || w.write(|_| Ok(()))));
        }
        while writer.stats().queued < 2 {
            thread::yield_now();
        }
        assert_eq!(writer.stats().queue_bound, 2);
        match writer.write(|_| Ok(())) {
            Err(StoreError::Unavailable(m)) => assert!(m.contains("2 writes waiting"), "{m}"),
            other => panic!("a full queue answered {other:?}"),
        }
        release.send(()).unwrap();
        for t in waiting {
            t.join().unwrap().unwrap();
        }
        assert_eq!(writer.stats().queued, 0);
        writer.write(|_| Ok(())).unwrap();
    }
}
