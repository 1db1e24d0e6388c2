//! The applications' segment engines, kept exactly in step with the store by following its
//! change log.
//!
//! **Following.** One thread, the follower, reads the store's change log in sequence order
//! (woken by each commit) and applies every entry to the loaded index of its application;
//! `applied` is the sequence number up to which every loaded index holds every change. The
//! store's writer never waits for it: a write is acknowledged once durable. A question
//! asked of an engine first waits until `applied` reaches the store's horizon as it was
//! when the question arrived (the head, or a commit in progress, visible to readers a moment
//! before the head moves): read your writes, every write acknowledged before the question
//! or seen through another request is counted, at most [`READ_YOUR_WRITES_TIMEOUT`]; a question that cannot be answered
//! exactly is an error, never a stale count.
//!
//! **Building.** An application's [`AppIndex`] is built when first asked for (`unico serve`
//! asks for every application's at start-up): from its snapshot file if snapshots are
//! enabled and the log still holds every change after the snapshot's sequence number,
//! otherwise from a store scan, which answers the sequence number it reflects. Either way
//! the new index then catches up by reading the log from its own sequence number until it
//! is at least at `applied`, and only then becomes the one the follower updates; entries it
//! already holds are skipped. A large import is logged as the ids of the customers it
//! wrote: the follower reads them back from the store in batches (the next batch read on a
//! helper thread while the index absorbs the one before) and upserts them, under the
//! index's write lock, so no question sees half an import. A bulk change (written only by
//! earlier versions) or the application's deletion met while catching up means scanning
//! again; after a bulk change the follower drops the index and starts a rebuild at once, in
//! the background; questions wait for it. An application created after start-up gets its
//! index at its first logged change.
//!
//! **Snapshots** are stamped with (application, sequence number, time zone); the sequence
//! number is one at or below which every change of the application is in the file (applying
//! a change twice is harmless: entries carry whole states). Files are written to a temporary
//! name and renamed; a damaged one fails its checksum and is ignored. They are written in the
//! background after a scan build, every [`SNAPSHOT_INTERVAL`] for indexes that changed, and
//! at shutdown.
//!
//! **Failures are loud.** A panic while the registry's lock is held (a bug) poisons it:
//! the next one to take the lock finds every index suspect, drops them all, starts their
//! rebuild and answers `Unavailable` (503 to a client); questions after it wait for the
//! rebuilt indexes, as after a large import. A panic while a change is applied marks that
//! index broken: it is dropped and rebuilt, and no question reads it meanwhile. Nothing
//! that may have missed a change is ever answered from. [`Engines::health`] counts these
//! failures.

use std::cell::RefCell;
use std::collections::HashMap;
use std::panic::AssertUnwindSafe;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, OnceLock, PoisonError, RwLock, Weak};
use std::time::{Duration, Instant};

use unico_core::AppId;
use unico_engine::{AppIndex, PreparedEvents};
use unico_filter::EvalContext;
use unico_store::{Change, LogEntry, Store, StoreError};

/// How often changed indexes are snapshotted.
pub const SNAPSHOT_INTERVAL: Duration = Duration::from_secs(60);
/// Longest a question waits for the engines to reach the writes acknowledged before it.
pub const READ_YOUR_WRITES_TIMEOUT: Duration = Duration::from_secs(10);
/// Log entries read at a time.
const LOG_BATCH: usize = 4096;
/// Longest the follower sleeps without looking at the log (it is woken by every commit;
/// this bounds how long a dropped registry keeps its thread).
const FOLLOW_WAKE: Duration = Duration::from_millis(200);

/// An index and what it reflects.
pub struct Loaded {
    index: AppIndex,
    /// Every change of the application up to this sequence number is in the index.
    seq: u64,
    /// The application's time zone name, for the snapshot stamp.
    timezone: String,
    /// Changes applied since the build.
    changes: u64,
    /// Events imports whose prepared tables the index took over since the build.
    prepared_imports: u64,
    /// `changes` when the last snapshot was taken (`u64::MAX`: never).
    saved: AtomicU64,
    /// Whether the index was read from a snapshot rather than built from a scan.
    from_snapshot: bool,
    /// Applying a change panicked half-way: the index may miss part of it and is never
    /// read again (it is dropped and rebuilt).
    broken: bool,
    /// How long the build took.
    build_time: Duration,
    /// A customer was erased since the snapshot on disk was written: that file still holds
    /// the customer's values, so it is removed at once (see [`Engines::forget_snapshot`]).
    erased: bool,
}

impl Loaded {
    fn new(index: AppIndex, seq: u64, timezone: String, from_snapshot: bool) -> Self {
        Self {
            index,
            seq,
            timezone,
            changes: 0,
            prepared_imports: 0,
            saved: AtomicU64::new(u64::MAX),
            from_snapshot,
            broken: false,
            build_time: Duration::ZERO,
            erased: false,
        }
    }
}

enum Slot {
    /// A build is under way; questions wait for it.
    Building,
    Ready(Arc<RwLock<Loaded>>),
}

struct Registry {
    slots: HashMap<AppId, Slot>,
    /// Every log entry up to here is applied to every ready index.
    applied: u64,
    /// The follower is applying entries up to here (`>= applied`): an index registered
    /// meanwhile must already hold them, since the follower will not visit it.
    applying: u64,
}

/// The loaded indexes, one per application, and the thread that follows the log.
pub struct Engines {
    store: Weak<dyn Store>,
    registry: Mutex<Registry>,
    /// Signalled when a build ends or `applied` moves.
    moved: Condvar,
    snapshots: OnceLock<PathBuf>,
    /// Serialises snapshot writes (they share temporary file names).
    writing: Mutex<()>,
    /// Applications whose snapshot removal after an erasure waits for a snapshot being
    /// written.
    rewrites: Mutex<std::collections::HashSet<AppId>>,
    /// This registry, for the threads it starts itself.
    me: Weak<Engines>,
    /// Indexes dropped because a panic left them (or the registry) suspect.
    failures: AtomicU64,
}

/// The engines' state for `/health` and `/metrics`.
#[derive(Debug, Clone, PartialEq)]
pub struct EnginesHealth {
    /// Every change up to here is applied to every loaded index.
    pub applied: u64,
    /// The change log's head.
    pub head: u64,
    /// Indexes ready to answer.
    pub loaded: usize,
    /// Indexes being built.
    pub building: usize,
    /// Indexes dropped (and rebuilt) since the start because a panic made them suspect.
    pub failures: u64,
}

impl EnginesHealth {
    /// Committed changes the engines have not applied yet.
    pub fn behind(&self) -> u64 {
        self.head.saturating_sub(self.applied)
    }
}

/// One loaded index's size, for `/metrics`.
#[derive(Debug, Clone, PartialEq)]
pub struct EngineSize {
    pub app: AppId,
    pub customers: usize,
    pub events: u64,
    pub bytes: usize,
    /// How long its build (scan or snapshot read) took.
    pub build_time: Duration,
    pub from_snapshot: bool,
    /// Events imports taken over as prepared tables since the build.
    pub prepared_imports: u64,
}

/// What applying one change to an index asks of the registry.
enum Applied {
    Done,
    /// The index must be built again from a scan (a bulk change).
    Rebuild,
    /// The application is gone.
    Gone,
}

/// Events read from the store at a time, when applying a logged batch of events or
/// building an index.
const EVENT_READ_BATCH: usize = 50_000;
/// Batches of logged events read ahead of the index absorbing them.
const EVENT_BATCHES_AHEAD: usize = 2;
/// Customers put into an index at a time while it is built from a scan, or read at a
/// time when applying a logged import.
const CUSTOMER_READ_BATCH: usize = 65_536;
/// Batches of logged customers read ahead of the index absorbing them (each is tens of
/// megabytes of values).
const CUSTOMER_BATCHES_AHEAD: usize = 1;

fn apply(loaded: &mut Loaded, change: &Change, store: &dyn Store) -> Applied {
    let index = &mut loaded.index;
    match change {
        Change::Events { app, ranges } => {
            // An import's tables, prepared as it wrote its events, are taken in instead
            // of reading the events back.
            if let (Some(&(lo, _)), Some(&(_, hi))) = (ranges.first(), ranges.last())
                && let Some(prepared) = store.take_prepared_events(*app, lo, hi)
                && let Ok(prepared) = prepared.downcast::<PreparedEvents>()
            {
                index.add_prepared(*prepared);
                loaded.changes += 1;
                loaded.prepared_imports += 1;
                return Applied::Done;
            }
            // The events are read as they are now: one removed since (its customer deleted,
            // retention) is missing here and its removal is later in the log anyway. Any
            // failure to read means the index can no longer be trusted: rebuild it.
            if let Err(e) = add_logged_events(index, *app, ranges, store) {
                tracing::warn!(app = app.0, error = %e, "cannot read logged events; rebuilding the segment engine");
                return Applied::Rebuild;
            }
        }
        Change::Customers { app, ranges } => {
            // As for events: read as they are now; a failure to read means the index can
            // no longer be trusted.
            if let Err(e) = add_logged_customers(index, *app, ranges, store) {
                tracing::warn!(app = app.0, error = %e, "cannot read logged customers; rebuilding the segment engine");
                return Applied::Rebuild;
            }
        }
        Change::EventsRemoved { event, before, .. } => {
            index.remove_events_before(event, *before);
        }
        Change::Customer { customer, .. } => index.upsert(customer),
        Change::CustomerDeleted { id, .. } => index.remove(*id),
        Change::CustomerErased { id, .. } => {
            index.erase(*id);
            loaded.erased = true;
        }
        Change::Schema { schema, .. } => index.set_schema(schema),
        Change::TimeZone { timezone, .. } => {
            index.set_timezone(timezone.zone());
            loaded.timezone = timezone.as_str().to_owned();
        }
        Change::Subscription {
            customer,
            channel,
            subscribed,
            ..
        } => index.set_subscribed(*customer, channel, *subscribed),
        Change::Bulk { .. } => return Applied::Rebuild,
        Change::AppDeleted { .. } => return Applied::Gone,
    }
    loaded.changes += 1;
    Applied::Done
}

/// Reads the rows of `ranges` in batches (`read(from, to)` answers at most one batch of
/// the rows with ids in `from..=to`, ascending), handing each to `take` in id order until
/// it answers false.
fn read_batches<T>(
    ranges: &[(i64, i64)],
    read: &dyn Fn(i64, i64) -> Result<Vec<T>, StoreError>,
    id: fn(&T) -> i64,
    take: &mut dyn FnMut(Vec<T>) -> bool,
) -> Result<(), StoreError> {
    for &(lo, hi) in ranges {
        let mut from = lo;
        while from <= hi {
            let rows = read(from, hi)?;
            let Some(last) = rows.last().map(id) else {
                break;
            };
            from = last + 1;
            if !take(rows) {
                return Ok(());
            }
        }
    }
    Ok(())
}

/// Threads reading a large logged change for [`absorb_logged`]. Reading and decoding
/// rows costs about three times what the index spends absorbing them (measured on a
/// backfill's 9.67 M events), so one reader kept the index waiting.
const LOG_READERS: usize = 2;

/// Hands the logged rows of `ranges` to `absorb`, in id order. A large change (more than
/// one `batch`: an import's millions of rows) is cut into spans of `batch` ids, read by
/// [`LOG_READERS`] helper threads taking turns (span `i` by reader `i % LOG_READERS`), each
/// at most `ahead` spans before the one `absorb` takes, so reading overlaps itself and the
/// absorbing; each reader also frees the spans `absorb` is done with (freeing tens of
/// thousands of customers' values takes a tenth of a second that the index need not wait
/// for). A reader's error stops the absorbing at its span and is returned.
fn absorb_logged<T: Send>(
    ranges: &[(i64, i64)],
    batch: usize,
    ahead: usize,
    read: &(dyn Fn(i64, i64) -> Result<Vec<T>, StoreError> + Sync),
    id: fn(&T) -> i64,
    absorb: &mut dyn FnMut(&[T]),
) -> Result<(), StoreError> {
    let rows: i64 = ranges.iter().map(|(lo, hi)| hi - lo + 1).sum();
    if rows <= batch as i64 {
        return read_batches(ranges, read, id, &mut |rows| {
            absorb(&rows);
            true
        });
    }
    let spans: Vec<(i64, i64)> = ranges
        .iter()
        .flat_map(|&(lo, hi)| {
            (lo..=hi)
                .step_by(batch)
                .map(move |from| (from, hi.min(from.saturating_add(batch as i64 - 1))))
        })
        .collect();
    std::thread::scope(|scope| {
        let mut inboxes = Vec::with_capacity(LOG_READERS);
        let mut readers = Vec::with_capacity(LOG_READERS);
        for k in 0..LOG_READERS {
            let (tx, rx) = std::sync::mpsc::sync_channel::<Vec<T>>(ahead);
            let (done_tx, done_rx) = std::sync::mpsc::channel::<Vec<T>>();
            let mine: Vec<(i64, i64)> =
                spans.iter().copied().skip(k).step_by(LOG_READERS).collect();
            let reader = std::thread::Builder::new()
                .name("unico-log-read".into())
                .spawn_scoped(scope, move || {
                    let mut outcome = Ok(());
                    for span in mine {
                        let mut rows: Vec<T> = Vec::new();
                        outcome = read_batches(&[span], read, id, &mut |mut more| {
                            if rows.is_empty() {
                                rows = more;
                            } else {
                                rows.append(&mut more);
                            }
                            true
                        });
                        done_rx.try_iter().for_each(drop);
                        if outcome.is_err() || tx.send(rows).is_err() {
                            break;
                        }
                    }
                    drop(tx);
                    done_rx.iter().for_each(drop);
                    outcome
                })
                .map_err(|e| StoreError::Internal(format!("cannot start a log reader: {e}")))?;
            inboxes.push((rx, done_tx));
            readers.push(reader);
        }
        for i in 0..spans.len() {
            let (rx, done) = &inboxes[i % LOG_READERS];
            let Ok(rows) = rx.recv() else {
                break;
            };
            absorb(&rows);
            // The reader gone (failed), the span is freed here.
            let _ = done.send(rows);
        }
        drop(inboxes);
        let mut outcome = Ok(());
        for reader in readers {
            let read = reader
                .join()
                .map_err(|_| StoreError::Internal("a log reader failed unexpectedly".into()))
                .and_then(|read| read);
            if outcome.is_ok() {
                outcome = read;
            }
        }
        outcome
    })
}

/// Adds the logged events of `ranges` to `index`.
fn add_logged_events(
    index: &mut AppIndex,
    app: AppId,
    ranges: &[(i64, i64)],
    store: &dyn Store,
) -> Result<(), StoreError> {
    absorb_logged(
        ranges,
        EVENT_READ_BATCH,
        EVENT_BATCHES_AHEAD,
        &|from, to| store.read_events(app, from, to, EVENT_READ_BATCH),
        |e| e.id,
        &mut |events| index.add_events(events),
    )
}

/// Upserts the logged customers of `ranges` (a large import) into `index`.
fn add_logged_customers(
    index: &mut AppIndex,
    app: AppId,
    ranges: &[(i64, i64)],
    store: &dyn Store,
) -> Result<(), StoreError> {
    let started = Instant::now();
    let mut customers = 0usize;
    absorb_logged(
        ranges,
        CUSTOMER_READ_BATCH,
        CUSTOMER_BATCHES_AHEAD,
        &|from, to| store.read_customers(app, from, to, CUSTOMER_READ_BATCH),
        |c| c.id,
        &mut |batch| {
            customers += batch.len();
            index.upsert_many(batch);
        },
    )?;
    if customers > 0 {
        tracing::info!(
            app = app.0,
            customers,
            took_ms = started.elapsed().as_millis() as u64,
            "segment engine absorbed imported customers"
        );
    }
    Ok(())
}

fn stamp(app: AppId, seq: u64, timezone: &str) -> Vec<u8> {
    format!("app {} seq {seq} time zone {timezone}", app.0).into_bytes()
}

/// The sequence number of a stamp written by [`stamp`] for this application and zone.
fn stamped_seq(stamp: &[u8], app: AppId, timezone: &str) -> Option<u64> {
    let text = std::str::from_utf8(stamp).ok()?;
    let rest = text.strip_prefix(&format!("app {} seq ", app.0))?;
    let (seq, zone) = rest.split_once(" time zone ")?;
    (zone == timezone).then_some(())?;
    seq.parse().ok()
}

fn snapshot_path(dir: &Path, app: AppId) -> PathBuf {
    dir.join(format!("engine-{}.snapshot", app.0))
}

/// The answer of a question that met a failed engine.
fn engine_failed(what: &str) -> StoreError {
    StoreError::Unavailable(format!(
        "the segment engine failed ({what}) and is being rebuilt; the answer would not be exact, retry shortly"
    ))
}

impl Engines {
    /// Engines over `store`, following its change log from its current head.
    pub fn attach(store: &Arc<dyn Store>) -> Arc<Engines> {
        let engines = Arc::new_cyclic(|me| Engines {
            store: Arc::downgrade(store),
            registry: Mutex::new(Registry {
                slots: HashMap::new(),
                applied: store.log_head(),
                applying: store.log_head(),
            }),
            moved: Condvar::new(),
            snapshots: OnceLock::new(),
            writing: Mutex::new(()),
            rewrites: Mutex::new(std::collections::HashSet::new()),
            me: me.clone(),
            failures: AtomicU64::new(0),
        });
        let weak = Arc::downgrade(&engines);
        let started = std::thread::Builder::new()
            .name("unico-engines".into())
            .spawn(move || follow(weak));
        if let Err(e) = started {
            tracing::error!(error = %e, "cannot start following the change log");
        }
        engines
    }

    fn store(&self) -> Result<Arc<dyn Store>, StoreError> {
        self.store
            .upgrade()
            .ok_or_else(|| StoreError::Internal("the store is closed".into()))
    }

    /// The registry's lock. A poisoned one (a panic while it was held) means no index can
    /// be trusted: every one is dropped and rebuilt in the background, the lock is
    /// cleared, and the caller gets `Unavailable`.
    fn lock_registry(&self) -> Result<MutexGuard<'_, Registry>, StoreError> {
        self.registry.lock().map_err(|poison| self.recover(poison))
    }

    /// Resets a poisoned registry (see [`Engines::lock_registry`]); answers the error for
    /// the caller that found it.
    fn recover(&self, poison: PoisonError<MutexGuard<'_, Registry>>) -> StoreError {
        let apps: Vec<AppId> = {
            let mut registry = poison.into_inner();
            registry.applying = registry.applying.max(registry.applied);
            let apps = registry
                .slots
                .drain()
                .filter_map(|(app, slot)| matches!(slot, Slot::Ready(_)).then_some(app))
                .collect();
            self.registry.clear_poison();
            apps
        };
        self.failures.fetch_add(1, Ordering::Relaxed);
        tracing::error!(
            indexes = apps.len(),
            "the segment engine registry was poisoned by a panic; every index is dropped and rebuilt"
        );
        self.moved.notify_all();
        for app in apps {
            self.rebuild_in_background(app);
        }
        engine_failed("a panic while its registry was held")
    }

    /// Drops `app`'s index if it is still `loaded` (found broken or poisoned) and starts
    /// its rebuild; answers the error for the question that found it.
    fn discard(&self, app: AppId, loaded: &Arc<RwLock<Loaded>>) -> StoreError {
        if let Ok(mut registry) = self.lock_registry()
            && matches!(registry.slots.get(&app), Some(Slot::Ready(l)) if Arc::ptr_eq(l, loaded))
        {
            registry.slots.remove(&app);
            self.failures.fetch_add(1, Ordering::Relaxed);
            drop(registry);
            tracing::error!(
                app = app.0,
                "a segment engine was found broken; rebuilding it"
            );
            self.rebuild_in_background(app);
        }
        engine_failed("a panic while a change was applied")
    }

    /// Panics while holding the registry's lock, as a bug would, poisoning it. For the
    /// tests that prove a poisoned registry is answered as an error and rebuilt.
    #[doc(hidden)]
    pub fn inject_panic_holding_registry_for_tests(&self) {
        let outcome = std::panic::catch_unwind(AssertUnwindSafe(|| {
            let _registry = self.registry.lock();
            panic!("injected failure while holding the engine registry");
        }));
        debug_assert!(outcome.is_err());
    }

    /// Marks `app`'s loaded index broken, as a panic half-way through applying a change
    /// would. For the tests that prove a broken index is never answered from.
    #[doc(hidden)]
    pub fn inject_broken_index_for_tests(&self, app: AppId) {
        let loaded = match self.lock_registry() {
            Ok(registry) => match registry.slots.get(&app) {
                Some(Slot::Ready(loaded)) => loaded.clone(),
                _ => return,
            },
            Err(_) => return,
        };
        if let Ok(mut loaded) = loaded.write() {
            loaded.broken = true;
        }
    }

    /// The engines' state: how far they follow the log, what is loaded, what failed.
    pub fn health(&self) -> EnginesHealth {
        let head = self.store.upgrade().map_or(0, |s| s.log_head());
        let (applied, loaded, building) = match self.lock_registry() {
            Ok(registry) => {
                let loaded = registry
                    .slots
                    .values()
                    .filter(|s| matches!(s, Slot::Ready(_)))
                    .count();
                (registry.applied, loaded, registry.slots.len() - loaded)
            }
            Err(_) => (0, 0, 0),
        };
        EnginesHealth {
            applied,
            head,
            loaded,
            building,
            failures: self.failures.load(Ordering::Relaxed),
        }
    }

    /// The size of every loaded index (an index busy being written is skipped).
    pub fn sizes(&self) -> Vec<EngineSize> {
        let ready: Vec<(AppId, Arc<RwLock<Loaded>>)> = match self.lock_registry() {
            Ok(registry) => registry
                .slots
                .iter()
                .filter_map(|(app, slot)| match slot {
                    Slot::Ready(l) => Some((*app, l.clone())),
                    Slot::Building => None,
                })
                .collect(),
            Err(_) => return Vec::new(),
        };
        let mut sizes: Vec<EngineSize> = ready
            .into_iter()
            .filter_map(|(app, loaded)| {
                let loaded = loaded.try_read().ok()?;
                Some(EngineSize {
                    app,
                    customers: loaded.index.len(),
                    events: loaded.index.event_count(),
                    bytes: loaded.index.memory_bytes(),
                    build_time: loaded.build_time,
                    from_snapshot: loaded.from_snapshot,
                    prepared_imports: loaded.prepared_imports,
                })
            })
            .collect();
        sizes.sort_by_key(|s| s.app.0);
        sizes
    }

    /// Keeps snapshots of the indexes in `dir` (created if needed), reads them at build
    /// time, and refreshes changed ones every [`SNAPSHOT_INTERVAL`] in the background.
    pub fn enable_snapshots(self: &Arc<Self>, dir: PathBuf) -> std::io::Result<()> {
        std::fs::create_dir_all(&dir)?;
        if self.snapshots.set(dir).is_err() {
            return Ok(());
        }
        let weak = Arc::downgrade(self);
        std::thread::Builder::new()
            .name("unico-snapshots".into())
            .spawn(move || {
                loop {
                    std::thread::sleep(SNAPSHOT_INTERVAL);
                    let Some(engines) = weak.upgrade() else {
                        return;
                    };
                    engines.save_snapshots();
                }
            })?;
        Ok(())
    }

    /// Snapshots every loaded index that changed since its last snapshot (blocking).
    pub fn save_snapshots(&self) {
        let ready: Vec<(AppId, Arc<RwLock<Loaded>>)> = match self.lock_registry() {
            Ok(registry) => registry
                .slots
                .iter()
                .filter_map(|(app, slot)| match slot {
                    Slot::Ready(l) => Some((*app, l.clone())),
                    Slot::Building => None,
                })
                .collect(),
            Err(_) => return,
        };
        for (app, loaded) in ready {
            self.save_snapshot(app, &loaded);
        }
    }

    fn applied(&self) -> Result<u64, StoreError> {
        Ok(self.lock_registry()?.applied)
    }

    fn save_snapshot(&self, app: AppId, loaded: &RwLock<Loaded>) {
        let Ok(_writing) = self.writing.lock() else {
            return;
        };
        self.save_snapshot_locked(app, loaded);
    }

    /// [`Engines::save_snapshot`] with the `writing` lock held.
    fn save_snapshot_locked(&self, app: AppId, loaded: &RwLock<Loaded>) {
        let Some(dir) = self.snapshots.get() else {
            return;
        };
        let path = snapshot_path(dir, app);
        let tmp = path.with_extension("snapshot.tmp");
        let started = Instant::now();
        // Only the registered index is saved, and `applied` is read with it still
        // registered: every change up to `applied` is then in it (the follower applies to
        // registered indexes only, and drops one at a bulk change under this same lock).
        // An index dropped since (a large import came) is superseded: not saved.
        let applied = match self.lock_registry() {
            Ok(registry) => match registry.slots.get(&app) {
                Some(Slot::Ready(current)) if std::ptr::eq(Arc::as_ptr(current), loaded) => {
                    registry.applied
                }
                _ => return,
            },
            Err(_) => return,
        };
        let written = (|| -> std::io::Result<bool> {
            let file = {
                let Ok(guard) = loaded.read() else {
                    return Ok(false);
                };
                if guard.broken {
                    return Ok(false);
                }
                if guard.saved.load(Ordering::Relaxed) == guard.changes {
                    return Ok(false);
                }
                let file = std::fs::File::create(&tmp)?;
                let mut out = std::io::BufWriter::with_capacity(1 << 20, file);
                let stamp = stamp(app, guard.seq.max(applied), &guard.timezone);
                guard.index.write_snapshot(&stamp, &mut out)?;
                guard.saved.store(guard.changes, Ordering::Relaxed);
                out.into_inner().map_err(|e| e.into_error())?
            };
            file.sync_all()?;
            std::fs::rename(&tmp, &path)?;
            Ok(true)
        })();
        match written {
            Ok(true) => tracing::info!(
                app = app.0,
                took_ms = started.elapsed().as_millis() as u64,
                "segment engine snapshot written"
            ),
            Ok(false) => {}
            Err(e) => {
                let _ = std::fs::remove_file(&tmp);
                tracing::warn!(app = app.0, error = %e, "cannot write the segment engine snapshot");
            }
        }
    }

    /// The application's index, building it if needed (blocking). When it answers, the
    /// index holds every change up to the engines' `applied` point.
    pub fn index(self: &Arc<Self>, app: AppId) -> Result<Arc<RwLock<Loaded>>, StoreError> {
        let mut registry = self.lock_registry()?;
        loop {
            match registry.slots.get(&app) {
                Some(Slot::Ready(index)) => return Ok(index.clone()),
                Some(Slot::Building) => {
                    registry = self.moved.wait(registry).map_err(|p| self.recover(p))?;
                }
                None => break,
            }
        }
        registry.slots.insert(app, Slot::Building);
        drop(registry);
        let started = Instant::now();
        // A panicking build must not leave the slot `Building` forever (every question
        // about the application would wait for it): it is an error, and the next question
        // builds again.
        let built = std::panic::catch_unwind(AssertUnwindSafe(|| self.build_caught_up(app)))
            .unwrap_or_else(|_| {
                tracing::error!(app = app.0, "building a segment engine panicked");
                Err(StoreError::Internal(
                    "building the segment engine failed unexpectedly".into(),
                ))
            });
        let result = match built {
            Ok((mut loaded, mut registry)) => {
                loaded.build_time = started.elapsed();
                let from_snapshot = loaded.from_snapshot;
                let erased = std::mem::take(&mut loaded.erased);
                if from_snapshot && loaded.changes == 0 {
                    loaded.saved.store(0, Ordering::Relaxed);
                }
                let loaded = Arc::new(RwLock::new(loaded));
                registry.slots.insert(app, Slot::Ready(loaded.clone()));
                drop(registry);
                // A snapshot that predates an erasure replayed since holds the erased
                // customer: it goes at once, and the index is saved again.
                if erased && let Some(dir) = self.snapshots.get() {
                    let _ = std::fs::remove_file(snapshot_path(dir, app));
                }
                if (!from_snapshot || erased) && self.snapshots.get().is_some() {
                    let (engines, target) = (self.clone(), loaded.clone());
                    let _ = std::thread::Builder::new()
                        .name("unico-snapshot".into())
                        .spawn(move || engines.save_snapshot(app, &target));
                }
                Ok(loaded)
            }
            Err(e) => {
                // A poisoned registry was reset (every slot dropped) by `lock_registry`.
                if let Ok(mut registry) = self.lock_registry() {
                    registry.slots.remove(&app);
                }
                Err(e)
            }
        };
        self.moved.notify_all();
        result
    }

    /// Builds the application's index and brings it up to the point the follower is
    /// applying; answers it with the registry's guard held (so the follower cannot move on
    /// before the index is registered).
    fn build_caught_up(
        &self,
        app: AppId,
    ) -> Result<(Loaded, std::sync::MutexGuard<'_, Registry>), StoreError> {
        let store = self.store()?;
        // A snapshot is tried once: if the log after it holds a bulk change, or no longer
        // holds what follows it, the next build scans.
        let mut snapshot_allowed = true;
        'build: loop {
            let mut loaded = self.build(store.as_ref(), app, snapshot_allowed)?;
            snapshot_allowed = false;
            loop {
                let registry = self.lock_registry()?;
                if loaded.seq >= registry.applying {
                    return Ok((loaded, registry));
                }
                let target = registry.applying;
                drop(registry);
                // Catch up outside the lock: the follower goes on meanwhile.
                while loaded.seq < target {
                    let entries = match store.read_log(loaded.seq, LOG_BATCH) {
                        Ok(entries) => entries,
                        Err(StoreError::LogPruned(_)) => continue 'build,
                        Err(e) => return Err(e),
                    };
                    let Some(last) = entries.last().map(|e| e.seq) else {
                        break;
                    };
                    for entry in &entries {
                        if entry.change.app() != app {
                            continue;
                        }
                        match apply(&mut loaded, &entry.change, store.as_ref()) {
                            Applied::Done => {}
                            Applied::Rebuild => continue 'build,
                            Applied::Gone => {
                                return Err(StoreError::NotFound(format!("application {}", app.0)));
                            }
                        }
                    }
                    loaded.seq = last;
                }
            }
        }
    }

    /// Whether an events import into `app` is worth preparing the engine's tables for
    /// while it writes (see [`unico_engine::prepared`]): the application's index is
    /// loaded (one that is not is built from a scan when first asked, import included).
    /// An index busy applying a change (a large customer import just before, say) is
    /// still loaded: by the import's commit it is long free to take the tables.
    pub fn wants_prepared_events(&self, app: AppId) -> bool {
        let index = match self.registry.lock() {
            Ok(registry) => match registry.slots.get(&app) {
                Some(Slot::Ready(index)) => index.clone(),
                _ => return false,
            },
            Err(_) => return false,
        };
        match index.try_read() {
            Ok(loaded) => !loaded.broken,
            Err(std::sync::TryLockError::WouldBlock) => true,
            Err(std::sync::TryLockError::Poisoned(_)) => false,
        }
    }

    /// How many committed changes the engines have not applied yet (for readiness).
    pub fn behind(&self) -> u64 {
        self.health().behind()
    }

    /// Whether the application's loaded index came from a snapshot (`None`: not loaded).
    pub fn from_snapshot(&self, app: AppId) -> Option<bool> {
        match self.lock_registry().ok()?.slots.get(&app)? {
            Slot::Ready(loaded) => Some(loaded.read().ok()?.from_snapshot),
            Slot::Building => None,
        }
    }

    /// Waits until every write acknowledged before this call is in the engines, and every
    /// write whose effects the caller could have seen through another request (the
    /// store's horizon: a commit in progress is visible a moment before it is announced).
    fn catch_up_to_horizon(&self) -> Result<(), StoreError> {
        let target = self.store()?.log_horizon();
        let started = Instant::now();
        let deadline = started + READ_YOUR_WRITES_TIMEOUT;
        let mut registry = self.lock_registry()?;
        while registry.applied < target {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(StoreError::Unavailable(format!(
                    "the segment engines are {} changes behind the store after {} s; the count would not be exact, retry shortly",
                    target - registry.applied,
                    READ_YOUR_WRITES_TIMEOUT.as_secs()
                )));
            }
            registry = self
                .moved
                .wait_timeout(registry, left)
                .map_err(|p| {
                    let (guard, _) = p.into_inner();
                    self.recover(PoisonError::new(guard))
                })?
                .0;
        }
        let waited = started.elapsed();
        if waited > Duration::from_millis(100) {
            tracing::info!(
                waited_ms = waited.as_millis() as u64,
                "a question waited for the engines to reach the acknowledged writes"
            );
        }
        Ok(())
    }

    /// Runs `query` against the application's index, with "now" taken at the call and
    /// "today" in the index's time zone (blocking: waits for the writes acknowledged
    /// before it, and may build the index).
    pub fn query<R>(
        self: &Arc<Self>,
        app: AppId,
        now_ms: i64,
        query: impl FnOnce(&AppIndex, &EvalContext) -> R,
    ) -> Result<R, StoreError> {
        self.catch_up_to_horizon()?;
        let index = self.index(app)?;
        let loaded = match index.read() {
            Ok(loaded) if !loaded.broken => loaded,
            _ => return Err(self.discard(app, &index)),
        };
        let ctx = EvalContext::new(now_ms, loaded.index.timezone().clone());
        Ok(query(&loaded.index, &ctx))
    }

    /// Runs `query` against the application's index if it is loaded, already holds every
    /// acknowledged write, and no write holds it at this instant, without ever blocking
    /// (for handlers on the async runtime); `None` otherwise, and the caller takes the
    /// blocking path ([`Engines::query`]).
    pub fn try_query<R>(
        &self,
        app: AppId,
        now_ms: i64,
        query: impl FnOnce(&AppIndex, &EvalContext) -> R,
    ) -> Option<R> {
        let horizon = self.store.upgrade()?.log_horizon();
        let loaded = {
            let registry = self.registry.try_lock().ok()?;
            if registry.applied < horizon {
                return None;
            }
            match registry.slots.get(&app)? {
                Slot::Ready(loaded) => loaded.clone(),
                Slot::Building => return None,
            }
        };
        let loaded = loaded.try_read().ok()?;
        if loaded.broken {
            return None;
        }
        let ctx = EvalContext::new(now_ms, loaded.index.timezone().clone());
        Some(query(&loaded.index, &ctx))
    }

    /// Builds the application's index: from its snapshot (if allowed) when the log still
    /// holds every change after it, else from a scan.
    fn build(
        &self,
        store: &dyn Store,
        app: AppId,
        snapshot_allowed: bool,
    ) -> Result<Loaded, StoreError> {
        let started = Instant::now();
        let application = store.get_app(app)?;
        let schema = store.schema(app)?;
        let timezone = application.timezone.as_str().to_owned();
        if let Some(dir) = self.snapshots.get().filter(|_| snapshot_allowed) {
            let bounds = store.log_bounds()?;
            let path = snapshot_path(dir, app);
            let read = std::fs::File::open(&path).and_then(|f| Ok((f.metadata()?.len(), f)));
            match read {
                Ok((len, file)) => {
                    let mut input = std::io::BufReader::with_capacity(1 << 20, file);
                    let mut at = None;
                    let result = AppIndex::read_snapshot_if(
                        &mut input,
                        len,
                        |s| {
                            at = stamped_seq(s, app, &timezone)
                                .filter(|&seq| seq >= bounds.floor && seq <= bounds.head);
                            at.is_some()
                        },
                        &schema,
                        application.timezone.zone(),
                    );
                    match (result, at) {
                        (Ok(index), Some(seq)) => {
                            tracing::info!(
                                app = app.0,
                                customers = index.len(),
                                seq,
                                took_ms = started.elapsed().as_millis() as u64,
                                memory_mb = index.memory_bytes() / (1 << 20),
                                "segment engine loaded from its snapshot"
                            );
                            return Ok(Loaded::new(index, seq, timezone, true));
                        }
                        (Err(e), _) => {
                            tracing::info!(app = app.0, reason = %e, "segment engine snapshot not used; scanning the store");
                        }
                        (Ok(_), None) => {}
                    }
                }
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => {
                    tracing::warn!(app = app.0, error = %e, "cannot open the segment engine snapshot");
                }
            }
        }
        // The index is made from the schema the scan hands over (as of the scan's point, so
        // every value scanned has its column), sized for the customers, and filled as the
        // scan goes: customers and then events in batches, never all held at once. The
        // time zone read after the scan: a change to it since is also in the log after
        // `seq`, and is applied again in order while catching up.
        let expected = store.count_customers(app)? as usize;
        let zone = store.get_app(app)?.timezone.zone();
        let index: RefCell<Option<AppIndex>> = RefCell::new(None);
        let customers: RefCell<Vec<unico_core::Customer>> = RefCell::new(Vec::new());
        let mut batch: Vec<unico_core::Event> = Vec::new();
        let mut customer_count = 0usize;
        let mut event_count = 0usize;
        let put_customers = || {
            let mut customers = customers.borrow_mut();
            if let Some(index) = index.borrow_mut().as_mut() {
                index.upsert_many(&customers);
            }
            customers.clear();
        };
        let seq = store.scan_app(
            app,
            &mut |schema| {
                let mut made = AppIndex::with_capacity(&schema, expected);
                made.set_timezone(zone.clone());
                *index.borrow_mut() = Some(made);
            },
            &mut |c| {
                customer_count += 1;
                let full = {
                    let mut customers = customers.borrow_mut();
                    customers.push(c);
                    customers.len() >= CUSTOMER_READ_BATCH
                };
                if full {
                    put_customers();
                }
                true
            },
            &mut |e| {
                if !customers.borrow().is_empty() {
                    put_customers();
                    customers.borrow_mut().shrink_to_fit();
                }
                batch.push(e);
                event_count += 1;
                if batch.len() >= EVENT_READ_BATCH {
                    if let Some(index) = index.borrow_mut().as_mut() {
                        index.add_events(&batch);
                    }
                    batch.clear();
                }
                true
            },
        )?;
        put_customers();
        let scanned_ms = started.elapsed().as_millis() as u64;
        let Some(mut index) = index.into_inner() else {
            return Err(StoreError::Internal(
                "the store's scan handed over no schema".into(),
            ));
        };
        let application = store.get_app(app)?;
        index.set_timezone(application.timezone.zone());
        let timezone = application.timezone.as_str().to_owned();
        index.add_events(&batch);
        // Subscriptions as they stand now, at or after `seq`: every logged change after
        // `seq` sets its channel's state again, in order, while the index catches up, so it
        // ends as the log's head says (a customer created since is ignored here and gets
        // its state from the log after its creation).
        store.scan_subscriptions(app, &mut |id, channel, subscribed| {
            index.set_subscribed(id, &channel, subscribed);
        })?;
        tracing::info!(
            app = app.0,
            customers = customer_count,
            events = event_count,
            seq,
            scan_ms = scanned_ms,
            took_ms = started.elapsed().as_millis() as u64,
            memory_mb = index.memory_bytes() / (1 << 20),
            "segment engine built"
        );
        Ok(Loaded::new(index, seq, timezone, false))
    }

    /// Applies a batch of log entries to the ready indexes; answers the applications to
    /// rebuild. The registry's lock is not held while applying, so that an index busy
    /// elsewhere (a snapshot being written holds its read lock) delays only its own
    /// application's changes, never questions about others.
    fn apply_entries(&self, entries: &[LogEntry]) -> Vec<AppId> {
        let mut rebuild = Vec::new();
        let Ok(store) = self.store() else {
            return rebuild;
        };
        let Some(last) = entries.last().map(|e| e.seq) else {
            return rebuild;
        };
        let targets: HashMap<AppId, Arc<RwLock<Loaded>>> = {
            // A poisoned registry was reset (every index dropped and being rebuilt): the
            // entries are read again from `applied`.
            let Ok(mut registry) = self.lock_registry() else {
                return rebuild;
            };
            registry.applying = registry.applying.max(last);
            let mut targets = HashMap::new();
            for entry in entries {
                let app = entry.change.app();
                match registry.slots.get(&app) {
                    Some(Slot::Ready(loaded)) => {
                        targets.entry(app).or_insert_with(|| loaded.clone());
                    }
                    // The build catches up from the log by itself.
                    Some(Slot::Building) => {}
                    // Engines are built for every application at start-up; one that has
                    // none (created since) gets it at its first change (its first field,
                    // usually: a build of nothing), so that what follows, a large import
                    // included, is applied in place.
                    None if !matches!(entry.change, Change::AppDeleted { .. })
                        && !rebuild.contains(&app) =>
                    {
                        rebuild.push(app)
                    }
                    None => {}
                }
            }
            targets
        };
        // Indexes to drop: (application, the index that was found wanting, deleted?).
        let mut dropped: Vec<(AppId, Arc<RwLock<Loaded>>, bool)> = Vec::new();
        // Applications whose index erased a customer: their snapshot file goes.
        let mut erased: Vec<AppId> = Vec::new();
        for entry in entries {
            let app = entry.change.app();
            let Some(target) = targets.get(&app) else {
                continue;
            };
            if dropped.iter().any(|(a, _, _)| *a == app) {
                continue;
            }
            let Ok(mut loaded) = target.write() else {
                // A poisoned index cannot be trusted: build it again.
                self.failures.fetch_add(1, Ordering::Relaxed);
                dropped.push((app, target.clone(), false));
                continue;
            };
            if loaded.seq >= entry.seq {
                continue;
            }
            // A panic half-way leaves the index missing part of the change: it is marked
            // broken (never read again) and rebuilt, and the follower lives on.
            let applied = std::panic::catch_unwind(AssertUnwindSafe(|| {
                apply(&mut loaded, &entry.change, store.as_ref())
            }));
            match applied {
                Ok(Applied::Done) => {
                    loaded.seq = entry.seq;
                    if std::mem::take(&mut loaded.erased) && !erased.contains(&app) {
                        erased.push(app);
                    }
                }
                Ok(Applied::Rebuild) => dropped.push((app, target.clone(), false)),
                Ok(Applied::Gone) => dropped.push((app, target.clone(), true)),
                Err(_) => {
                    tracing::error!(
                        app = app.0,
                        seq = entry.seq,
                        "applying a change to a segment engine panicked; rebuilding it"
                    );
                    loaded.broken = true;
                    self.failures.fetch_add(1, Ordering::Relaxed);
                    dropped.push((app, target.clone(), false));
                }
            }
        }
        // A poisoned registry was reset by `lock_registry` (every index dropped and being
        // rebuilt, these included): nothing is left to drop, and `applied` stays where it
        // was so the entries are read again.
        if let Ok(mut registry) = self.lock_registry() {
            for (app, index, gone) in dropped {
                // Only the index that was found wanting: one registered since is current.
                if matches!(registry.slots.get(&app), Some(Slot::Ready(l)) if Arc::ptr_eq(l, &index))
                {
                    registry.slots.remove(&app);
                }
                if gone {
                    if let Some(dir) = self.snapshots.get() {
                        let _ = std::fs::remove_file(snapshot_path(dir, app));
                    }
                } else {
                    rebuild.push(app);
                }
            }
            registry.applied = registry.applied.max(last);
        }
        self.moved.notify_all();
        for app in erased {
            self.forget_snapshot(app);
        }
        rebuild
    }

    /// After an erasure: removes the application's snapshot file, which holds the erased
    /// customer. The index is written again by the periodic snapshots (within
    /// [`SNAPSHOT_INTERVAL`]) or at shutdown, not at once: a large application's snapshot
    /// is hundreds of megabytes, and writing one per erasure loaded the disk every later
    /// commit waits on. Until then a restart builds the index from a scan (exact). A
    /// snapshot being written could rename its file into place after the removal, still
    /// holding the customer: the removal then waits for it, in a thread of its own (the
    /// follower goes on); erasures in a row share that thread.
    fn forget_snapshot(&self, app: AppId) {
        let Some(dir) = self.snapshots.get() else {
            return;
        };
        let path = snapshot_path(dir, app);
        if let Ok(_writing) = self.writing.try_lock() {
            let _ = std::fs::remove_file(&path);
            return;
        }
        let queued = self
            .rewrites
            .lock()
            .map(|mut queued| queued.insert(app))
            .unwrap_or(false);
        if !queued {
            return;
        }
        let Some(engines) = self.me.upgrade() else {
            return;
        };
        let started = std::thread::Builder::new()
            .name("unico-snapshot".into())
            .spawn(move || {
                let Ok(_writing) = engines.writing.lock() else {
                    return;
                };
                if let Ok(mut queued) = engines.rewrites.lock() {
                    queued.remove(&app);
                }
                let _ = std::fs::remove_file(&path);
            });
        if let Err(e) = started {
            if let Ok(mut queued) = self.rewrites.lock() {
                queued.remove(&app);
            }
            let _ = std::fs::remove_file(snapshot_path(dir, app));
            tracing::warn!(app = app.0, error = %e, "cannot wait for a snapshot being written after an erasure");
        }
    }

    /// Starts building the application's index in the background, so that the next
    /// question after a large import waits as little as possible.
    fn rebuild_in_background(&self, app: AppId) {
        let me = self.me.clone();
        let started = std::thread::Builder::new()
            .name("unico-rebuild".into())
            .spawn(move || {
                if let Some(engines) = me.upgrade()
                    && let Err(e) = engines.index(app)
                {
                    tracing::warn!(app = app.0, error = %e, "cannot rebuild the segment engine");
                }
            });
        if let Err(e) = started {
            tracing::warn!(error = %e, "cannot start rebuilding a segment engine");
        }
    }
}

/// The follower: reads the log from `applied` and applies it, until the registry is gone.
fn follow(engines: Weak<Engines>) {
    loop {
        let Some(me) = engines.upgrade() else {
            return;
        };
        let Ok(store) = me.store() else {
            return;
        };
        let Ok(applied) = me.applied() else {
            continue;
        };
        if store.wait_log(applied, FOLLOW_WAKE) <= applied {
            continue;
        }
        match store.read_log(applied, LOG_BATCH) {
            Ok(entries) => {
                for app in me.apply_entries(&entries) {
                    me.rebuild_in_background(app);
                }
            }
            Err(StoreError::LogPruned(_)) => {
                // The log moved past us (it cannot while we follow it, unless pruned by
                // hand): every index is suspect. Start over from scans at the head.
                tracing::error!("the change log was pruned past the engines; rebuilding them");
                let head = store.log_head();
                let apps: Vec<AppId> = match me.lock_registry() {
                    Ok(mut registry) => {
                        registry.applied = head;
                        registry.slots.drain().map(|(app, _)| app).collect()
                    }
                    Err(_) => continue,
                };
                me.moved.notify_all();
                for app in apps {
                    me.rebuild_in_background(app);
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot read the change log; retrying");
                drop(me);
                std::thread::sleep(FOLLOW_WAKE);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The rows with ids in `from..=to` among `ids`, at most `limit`, ascending.
    fn rows_of(ids: &[i64], from: i64, to: i64, limit: usize) -> Vec<i64> {
        ids.iter()
            .copied()
            .filter(|id| (from..=to).contains(id))
            .take(limit)
            .collect()
    }

    /// A large change read by several readers reaches `absorb` whole and in id order, even
    /// with ids missing from its ranges (rows deleted since) and spans cut short.
    #[test]
    fn logged_rows_are_absorbed_whole_and_in_order() {
        let ids: Vec<i64> = (1..=10_000).filter(|i| i % 7 != 3).collect();
        let ranges = [(1, 4_000), (4_500, 9_000), (9_990, 10_000)];
        let wanted: Vec<i64> = ids
            .iter()
            .copied()
            .filter(|id| ranges.iter().any(|&(lo, hi)| (lo..=hi).contains(id)))
            .collect();
        for batch in [1usize, 64, 1_000, 3_999, 20_000] {
            let read = |from, to| Ok(rows_of(&ids, from, to, batch));
            let mut seen = Vec::new();
            absorb_logged(&ranges, batch, 2, &read, |id| *id, &mut |rows| {
                seen.extend_from_slice(rows)
            })
            .unwrap();
            assert_eq!(seen, wanted, "batch {batch}");
        }
    }

    /// A reader's failure is returned, and nothing past the span it failed on is absorbed.
    #[test]
    fn a_failed_read_stops_the_absorbing_and_is_returned() {
        let ids: Vec<i64> = (1..=1_000).collect();
        let read = |from: i64, to| {
            if from > 500 {
                Err(StoreError::Internal("disk gone".into()))
            } else {
                Ok(rows_of(&ids, from, to, 100))
            }
        };
        let mut seen = Vec::new();
        let err = absorb_logged(&[(1, 1_000)], 100, 1, &read, |id| *id, &mut |rows| {
            seen.extend_from_slice(rows)
        })
        .unwrap_err();
        assert!(err.to_string().contains("disk gone"), "{err}");
        assert_eq!(seen, (1..=500).collect::<Vec<i64>>());
    }
}
