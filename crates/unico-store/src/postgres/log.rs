//! The change log on PostgreSQL: appended in each writing transaction, read back by
//! sequence number, and followed across processes with `LISTEN`/`NOTIFY`.
//!
//! **Sequence order is commit order.** PostgreSQL hands out sequence values when they are
//! asked for, not at commit, so with a `serial` two transactions could commit out of
//! number order and a follower reading "everything after 41" could pass over 42 for good
//! when 42 commits after 43 was read. Instead every writing transaction, as its very last
//! step before `COMMIT`, takes its numbers by updating the one-row `log_head` table
//! (`seq = seq + n`). That row lock is held until the transaction ends, so the next writer
//! gets its numbers only once this one has committed (or rolled back, giving its numbers
//! back: there are no gaps). It plays the part of a transaction-level advisory lock, and
//! also gives the log a durable head that survives pruning. Because it is the last lock a
//! transaction takes, it never waits while holding it, and adds no deadlock.
//!
//! **Waking waiters.** The same transaction sends `NOTIFY unico_log, '<last seq>'`, which
//! PostgreSQL delivers after the commit, in commit order. A [`Listener`] thread per store
//! keeps a connection that `LISTEN`s and moves the in-process [`Head`]; the store also moves
//! it itself after each of its own commits. So `log_head()` answers, without I/O, the
//! highest sequence number this process knows to be committed: every write it acknowledged,
//! and every other server's write it has heard of.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use postgres::GenericClient;
use postgres::fallible_iterator::FallibleIterator;

use super::conn::{self, Db, Res};
use crate::changes::{Change, LogBounds, LogEntry};
use crate::error::StoreError;
use crate::log_row::{EntryRow, Head};

/// The channel commits are announced on.
pub const CHANNEL: &str = "unico_log";
/// The listener's `application_name`, telling its session apart in `pg_stat_activity`.
pub const LISTENER_NAME: &str = "unico-log-listener";
/// Log rows inserted by one statement, at most.
const ROWS_PER_INSERT: usize = 1000;
/// How often the listener checks whether its store is gone.
const LISTEN_POLL: Duration = Duration::from_millis(100);
/// How long the listener waits before connecting again after losing its connection.
const RECONNECT_DELAY: Duration = Duration::from_secs(1);

/// The last sequence number ever given (pruned entries included).
pub fn head<C: GenericClient>(db: &mut Db<'_, C>) -> Res<u64> {
    let seq: i64 = db.query_one("SELECT seq FROM log_head", &[])?.try_get(0)?;
    Ok(seq.max(0) as u64)
}

/// Appends `changes` in order and announces them; answers the sequence number of the last
/// one (`None` if there were none, and then nothing is locked). Must be the transaction's
/// last statement before `COMMIT` (see the module docs).
pub fn append<C: GenericClient>(db: &mut Db<'_, C>, changes: &[Change]) -> Res<Option<u64>> {
    if changes.is_empty() {
        return Ok(None);
    }
    let n = changes.len() as i64;
    if changes.len() <= ROWS_PER_INSERT {
        return append_at_once(db, changes).map(Some);
    }
    let row = db.query_one(
        "UPDATE log_head SET seq = seq + $1
         RETURNING seq, (extract(epoch FROM clock_timestamp()) * 1000)::bigint",
        &[&n],
    )?;
    let last: i64 = row.try_get(0)?;
    let at: i64 = row.try_get(1)?;
    let mut seq = last - n;
    for chunk in changes.chunks(ROWS_PER_INSERT) {
        let mut cols = LogColumns::default();
        for change in chunk {
            seq += 1;
            cols.push(seq, EntryRow::of(change));
        }
        db.execute(
            "INSERT INTO change_log (seq, at, app_id, kind, customer, customer_id, created_at, updated_at, data, text, old)
             SELECT s, $1, a, k, c, ci, ca, ua, d, t, o
             FROM unnest($2::bigint[], $3::bigint[], $4::bigint[], $5::bigint[], $6::text[], $7::bigint[],
                         $8::bigint[], $9::bytea[], $10::text[], $11::bytea[]) AS r(s, a, k, c, ci, ca, ua, d, t, o)",
            &[
                &at,
                &cols.seq,
                &cols.app,
                &cols.kind,
                &cols.customer,
                &cols.customer_id,
                &cols.created_at,
                &cols.updated_at,
                &cols.data,
                &cols.text,
                &cols.old,
            ],
        )?;
    }
    db.execute("SELECT pg_notify($1, $2)", &[&CHANNEL, &last.to_string()])?;
    Ok(Some(last as u64))
}

/// [`append`] of at most [`ROWS_PER_INSERT`] changes in one statement (one round trip
/// instead of three: the head's update, the rows, the notification, in that order).
fn append_at_once<C: GenericClient>(db: &mut Db<'_, C>, changes: &[Change]) -> Res<u64> {
    let n = changes.len() as i64;
    let mut cols = LogColumns::default();
    for change in changes {
        cols.push(0, EntryRow::of(change));
    }
    let row = db.query_one(
        "WITH head AS (
             UPDATE log_head SET seq = seq + $1
             RETURNING seq, (extract(epoch FROM clock_timestamp()) * 1000)::bigint AS at
         ), logged AS (
             INSERT INTO change_log (seq, at, app_id, kind, customer, customer_id, created_at, updated_at, data, text, old)
             SELECT h.seq - $1 + r.n, h.at, r.a, r.k, r.c, r.ci, r.ca, r.ua, r.d, r.t, r.o
             FROM head h, unnest($2::bigint[], $3::bigint[], $4::bigint[], $5::text[], $6::bigint[],
                                 $7::bigint[], $8::bytea[], $9::text[], $10::bytea[])
                  WITH ORDINALITY AS r(a, k, c, ci, ca, ua, d, t, o, n)
         )
         SELECT h.seq FROM head h CROSS JOIN LATERAL (SELECT pg_notify($11, h.seq::text)) told",
        &[
            &n,
            &cols.app,
            &cols.kind,
            &cols.customer,
            &cols.customer_id,
            &cols.created_at,
            &cols.updated_at,
            &cols.data,
            &cols.text,
            &cols.old,
            &CHANNEL,
        ],
    )?;
    let last: i64 = row.try_get(0)?;
    Ok(last.max(0) as u64)
}

/// Log rows as columns, for one multi-row insert.
#[derive(Default)]
struct LogColumns {
    seq: Vec<i64>,
    app: Vec<i64>,
    kind: Vec<i64>,
    customer: Vec<Option<i64>>,
    customer_id: Vec<Option<String>>,
    created_at: Vec<Option<i64>>,
    updated_at: Vec<Option<i64>>,
    data: Vec<Option<Vec<u8>>>,
    text: Vec<Option<String>>,
    old: Vec<Option<Vec<u8>>>,
}

impl LogColumns {
    fn push(&mut self, seq: i64, r: EntryRow) {
        self.seq.push(seq);
        self.app.push(r.app);
        self.kind.push(r.kind);
        self.customer.push(r.customer);
        self.customer_id.push(r.customer_id);
        self.created_at.push(r.created_at);
        self.updated_at.push(r.updated_at);
        self.data.push(r.data);
        self.text.push(r.text);
        self.old.push(r.old);
    }
}

/// Which entries are held: `floor` is the last sequence number pruned (or never written).
pub fn bounds<C: GenericClient>(db: &mut Db<'_, C>) -> Res<LogBounds> {
    let row = db.query_one(
        "SELECT h.seq, (SELECT min(seq) FROM change_log) FROM log_head h",
        &[],
    )?;
    let head = row.try_get::<_, i64>(0)?.max(0) as u64;
    let oldest: Option<i64> = row.try_get(1)?;
    let floor = oldest.map_or(head, |s| (s.max(0) as u64).saturating_sub(1));
    Ok(LogBounds { floor, head })
}

/// Up to `limit` entries after `after`; run in one snapshot, so that a prune cannot slip
/// between the floor's check and the read.
pub fn read<C: GenericClient>(db: &mut Db<'_, C>, after: u64, limit: usize) -> Res<Vec<LogEntry>> {
    if after < bounds(db)?.floor {
        return Err(StoreError::LogPruned(after).into());
    }
    let rows = db.query(
        "SELECT seq, at, app_id, kind, customer, customer_id, created_at, updated_at, data, text, old
         FROM change_log WHERE seq > $1 ORDER BY seq LIMIT $2",
        &[
            &(after.min(i64::MAX as u64) as i64),
            &(limit.min(i64::MAX as usize) as i64),
        ],
    )?;
    let mut out = Vec::with_capacity(rows.len());
    for row in rows {
        let seq = row.try_get::<_, i64>(0)?.max(0) as u64;
        let entry = EntryRow {
            app: row.try_get(2)?,
            kind: row.try_get(3)?,
            customer: row.try_get(4)?,
            customer_id: row.try_get(5)?,
            created_at: row.try_get(6)?,
            updated_at: row.try_get(7)?,
            data: row.try_get(8)?,
            text: row.try_get(9)?,
            old: row.try_get(10)?,
        };
        out.push(LogEntry {
            seq,
            at: row.try_get(1)?,
            change: entry.into_change(seq)?,
        });
    }
    Ok(out)
}

/// Deletes entries committed before `before`, always keeping the newest one (so the floor
/// stays readable); answers how many went.
pub fn prune<C: GenericClient>(db: &mut Db<'_, C>, before: i64) -> Res<u64> {
    db.execute(
        "DELETE FROM change_log WHERE at < $1 AND seq < (SELECT max(seq) FROM change_log)",
        &[&before],
    )
}

/// The thread that hears other connections' commits and moves the head. It stops soon
/// after its handle drops.
pub struct Listener {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Listener {
    /// Starts listening; answers once the first session listens (so every commit from
    /// then on is heard), or with its failure.
    pub fn start(mut config: postgres::Config, head: Arc<Head>) -> Result<Listener, StoreError> {
        config.application_name(LISTENER_NAME);
        let stop = Arc::new(AtomicBool::new(false));
        let stopping = stop.clone();
        let (ready, first) = std::sync::mpsc::sync_channel(1);
        let thread = std::thread::Builder::new()
            .name("unico-pg-listen".into())
            .spawn(move || listen(&config, &head, &stopping, ready))
            .map_err(|e| StoreError::Internal(format!("cannot start the log listener: {e}")))?;
        let listener = Listener {
            stop,
            thread: Some(thread),
        };
        match first.recv() {
            Ok(Ok(())) => Ok(listener),
            Ok(Err(e)) => Err(e),
            Err(_) => Err(StoreError::Internal("the log listener stopped".into())),
        }
    }
}

impl Drop for Listener {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Connects, listens, and moves the head on every notification, until `stop`. After a lost
/// connection it connects again and first reads the head, so commits announced while it
/// was away are not missed.
fn listen(
    config: &postgres::Config,
    head: &Head,
    stop: &AtomicBool,
    ready: std::sync::mpsc::SyncSender<Result<(), StoreError>>,
) {
    let mut ready = Some(ready);
    let mut logged_failure = false;
    while !stop.load(Ordering::Relaxed) {
        match listen_once(config, head, stop, &mut ready) {
            Ok(()) => return,
            Err(e) => {
                if let Some(ready) = ready.take() {
                    // The first session failed: the store does not open.
                    let _ = ready.send(Err(e));
                    return;
                }
                if !logged_failure {
                    tracing::warn!(error = %e, "the change log listener lost its connection; reconnecting");
                    logged_failure = true;
                }
                let mut waited = Duration::ZERO;
                while waited < RECONNECT_DELAY && !stop.load(Ordering::Relaxed) {
                    std::thread::sleep(LISTEN_POLL);
                    waited += LISTEN_POLL;
                }
            }
        }
    }
}

fn listen_once(
    config: &postgres::Config,
    head: &Head,
    stop: &AtomicBool,
    ready: &mut Option<std::sync::mpsc::SyncSender<Result<(), StoreError>>>,
) -> Result<(), StoreError> {
    let mut client = conn::connect(config)?;
    let fail = |e: postgres::Error| conn::internal(&e);
    client
        .batch_execute(&format!("LISTEN {CHANNEL}"))
        .map_err(fail)?;
    let seq: i64 = client
        .query_one("SELECT seq FROM log_head", &[])
        .and_then(|r| r.try_get(0))
        .map_err(fail)?;
    head.advance(seq.max(0) as u64);
    if let Some(ready) = ready.take() {
        let _ = ready.send(Ok(()));
    }
    while !stop.load(Ordering::Relaxed) {
        {
            let mut notifications = client.notifications();
            let mut heard = notifications.timeout_iter(LISTEN_POLL);
            while let Some(note) = heard.next().map_err(fail)? {
                if note.channel() == CHANNEL
                    && let Ok(seq) = note.payload().parse::<u64>()
                {
                    head.advance(seq);
                }
            }
        }
        if client.is_closed() {
            return Err(StoreError::Internal(
                "the listening connection closed".into(),
            ));
        }
    }
    Ok(())
}
