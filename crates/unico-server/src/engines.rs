//! The applications' segment engines, kept exactly in step with the store through its
//! change feed.
//!
//! An application's [`AppIndex`] is built when first asked for (`unico serve` asks for
//! every application's at start-up): from its snapshot file if snapshots are enabled and
//! the file is current, otherwise from a store scan. Changes committed while it builds are
//! buffered and replayed on top (replaying a customer's latest state, a deletion or a
//! schema is idempotent), so no write is ever missed. After a large import (a bulk change)
//! the index is dropped and rebuilt at once in the background.
//!
//! **Snapshots.** Each index carries the store's data version it reflects: read on the
//! store's writer (so every commit it counts was delivered) before the build, then moved
//! by the [`Change::DataVersion`] that follows each commit's changes. A snapshot is
//! stamped with (application, data version, time zone) and used only if the store's
//! current version is the stamp's: the store moves the version in the same transaction as
//! any change, so a write that committed after the snapshot (even one followed by a
//! `kill -9`), a field deleted or retyped, a time zone change or an import all make it
//! stale. A snapshot whose contents ran ahead of its stamp (a scan that saw a later
//! commit) can never match, since that commit moved the version past the stamp. Files are
//! written to a temporary name and renamed; a damaged one fails its checksum and is
//! ignored. Snapshots are written in the background after a scan build, every
//! [`SNAPSHOT_INTERVAL`] for indexes that changed, and at shutdown.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, OnceLock, RwLock, Weak};
use std::time::Duration;

use unico_core::AppId;
use unico_engine::AppIndex;
use unico_filter::EvalContext;
use unico_store::{Change, ChangeListener, Store, StoreError};

/// How often changed indexes are snapshotted.
pub const SNAPSHOT_INTERVAL: Duration = Duration::from_secs(60);

/// An index and what it reflects.
pub struct Loaded {
    index: AppIndex,
    /// The store's data version the index reflects.
    version: u64,
    /// The application's time zone name, for the snapshot stamp.
    timezone: String,
    /// Changes applied since the build.
    changes: u64,
    /// `changes` when the last snapshot was taken (`u64::MAX`: never).
    saved: AtomicU64,
    /// Whether the index was read from a snapshot rather than built from a scan.
    from_snapshot: bool,
}

impl Loaded {
    fn new(index: AppIndex, version: u64, timezone: String, from_snapshot: bool) -> Self {
        Self {
            index,
            version,
            timezone,
            changes: 0,
            saved: AtomicU64::new(u64::MAX),
            from_snapshot,
        }
    }
}

enum Slot {
    /// A build is scanning the store; changes that commit meanwhile wait here.
    Building(Vec<Change>),
    Ready(Arc<RwLock<Loaded>>),
}

/// The loaded indexes, one per application.
pub struct Engines {
    store: Weak<dyn Store>,
    slots: Mutex<HashMap<AppId, Slot>>,
    built: Condvar,
    snapshots: OnceLock<PathBuf>,
    /// Serialises snapshot writes (they share temporary file names).
    writing: Mutex<()>,
    /// This registry, for the rebuilds it starts itself.
    me: Weak<Engines>,
}

fn apply(loaded: &mut Loaded, change: &Change) {
    let index = &mut loaded.index;
    match change {
        Change::Customer { customer, .. } => index.upsert(customer),
        Change::CustomerDeleted { id, .. } => index.remove(*id),
        Change::Schema { schema, .. } => index.set_schema(schema),
        Change::TimeZone { timezone, .. } => {
            index.set_timezone(timezone.zone());
            loaded.timezone = timezone.as_str().to_owned();
        }
        Change::DataVersion { version, .. } => {
            loaded.version = *version;
            return;
        }
        Change::AppDeleted { .. } | Change::Bulk { .. } => {}
    }
    loaded.changes += 1;
}

fn stamp(app: AppId, version: u64, timezone: &str) -> Vec<u8> {
    format!("app {} data version {version} time zone {timezone}", app.0).into_bytes()
}

fn snapshot_path(dir: &Path, app: AppId) -> PathBuf {
    dir.join(format!("engine-{}.snapshot", app.0))
}

impl Engines {
    /// Engines over `store`, subscribed to its change feed.
    pub fn attach(store: &Arc<dyn Store>) -> Arc<Engines> {
        let engines = Arc::new_cyclic(|me| Engines {
            store: Arc::downgrade(store),
            slots: Mutex::new(HashMap::new()),
            built: Condvar::new(),
            snapshots: OnceLock::new(),
            writing: Mutex::new(()),
            me: me.clone(),
        });
        store.set_listener(engines.clone());
        engines
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
        let ready: Vec<(AppId, Arc<RwLock<Loaded>>)> = match self.slots.lock() {
            Ok(slots) => slots
                .iter()
                .filter_map(|(app, slot)| match slot {
                    Slot::Ready(l) => Some((*app, l.clone())),
                    Slot::Building(_) => None,
                })
                .collect(),
            Err(_) => return,
        };
        for (app, loaded) in ready {
            self.save_snapshot(app, &loaded);
        }
    }

    fn save_snapshot(&self, app: AppId, loaded: &RwLock<Loaded>) {
        let Some(dir) = self.snapshots.get() else {
            return;
        };
        let Ok(_writing) = self.writing.lock() else {
            return;
        };
        let path = snapshot_path(dir, app);
        let tmp = path.with_extension("snapshot.tmp");
        let started = std::time::Instant::now();
        let written = (|| -> std::io::Result<bool> {
            let file = {
                let Ok(guard) = loaded.read() else {
                    return Ok(false);
                };
                if guard.saved.load(Ordering::Relaxed) == guard.changes {
                    return Ok(false);
                }
                let file = std::fs::File::create(&tmp)?;
                let mut out = std::io::BufWriter::with_capacity(1 << 20, file);
                let stamp = stamp(app, guard.version, &guard.timezone);
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

    /// The application's index, building it if needed (blocking).
    pub fn index(self: &Arc<Self>, app: AppId) -> Result<Arc<RwLock<Loaded>>, StoreError> {
        let poisoned = || StoreError::Internal("the engine registry lock was poisoned".into());
        loop {
            let mut slots = self.slots.lock().map_err(|_| poisoned())?;
            match slots.get(&app) {
                Some(Slot::Ready(index)) => return Ok(index.clone()),
                Some(Slot::Building(_)) => {
                    drop(self.built.wait(slots).map_err(|_| poisoned())?);
                    continue;
                }
                None => {
                    slots.insert(app, Slot::Building(Vec::new()));
                }
            }
            drop(slots);
            let built = self.build(app);
            let mut slots = self.slots.lock().map_err(|_| poisoned())?;
            let buffered = match slots.remove(&app) {
                Some(Slot::Building(changes)) => changes,
                _ => Vec::new(),
            };
            let result = match built {
                Ok(mut loaded) => {
                    let from_snapshot = loaded.from_snapshot;
                    let stale = buffered
                        .iter()
                        .any(|c| matches!(c, Change::Bulk { .. } | Change::AppDeleted { .. }));
                    if stale {
                        // An import or a deletion landed during the scan: scan again.
                        self.built.notify_all();
                        continue;
                    }
                    for change in &buffered {
                        apply(&mut loaded, change);
                    }
                    if from_snapshot && loaded.changes == 0 {
                        loaded.saved.store(0, Ordering::Relaxed);
                    }
                    let loaded = Arc::new(RwLock::new(loaded));
                    slots.insert(app, Slot::Ready(loaded.clone()));
                    if !from_snapshot && self.snapshots.get().is_some() {
                        let (engines, target) = (self.clone(), loaded.clone());
                        let _ = std::thread::Builder::new()
                            .name("unico-snapshot".into())
                            .spawn(move || engines.save_snapshot(app, &target));
                    }
                    Ok(loaded)
                }
                Err(e) => Err(e),
            };
            self.built.notify_all();
            return result;
        }
    }

    /// Whether the application's loaded index came from a snapshot (`None`: not loaded).
    pub fn from_snapshot(&self, app: AppId) -> Option<bool> {
        match self.slots.lock().ok()?.get(&app)? {
            Slot::Ready(loaded) => Some(loaded.read().ok()?.from_snapshot),
            Slot::Building(_) => None,
        }
    }

    /// Runs `query` against the application's index, with "now" taken at the call and
    /// "today" in the index's time zone (blocking: may build the index).
    pub fn query<R>(
        self: &Arc<Self>,
        app: AppId,
        now_ms: i64,
        query: impl FnOnce(&AppIndex, &EvalContext) -> R,
    ) -> Result<R, StoreError> {
        let loaded = self.index(app)?;
        let loaded = loaded
            .read()
            .map_err(|_| StoreError::Internal("an engine lock was poisoned".into()))?;
        let ctx = EvalContext::new(now_ms, loaded.index.timezone().clone());
        Ok(query(&loaded.index, &ctx))
    }

    /// Runs `query` against the application's index if it is loaded and no write holds
    /// it at this instant, without ever blocking (for handlers on the async runtime);
    /// `None` otherwise, and the caller takes the blocking path ([`Engines::query`]).
    pub fn try_query<R>(
        &self,
        app: AppId,
        now_ms: i64,
        query: impl FnOnce(&AppIndex, &EvalContext) -> R,
    ) -> Option<R> {
        let loaded = match self.slots.try_lock().ok()?.get(&app)? {
            Slot::Ready(loaded) => loaded.clone(),
            Slot::Building(_) => return None,
        };
        let loaded = loaded.try_read().ok()?;
        let ctx = EvalContext::new(now_ms, loaded.index.timezone().clone());
        Some(query(&loaded.index, &ctx))
    }

    /// Builds the application's index: from its snapshot if current, else from a scan.
    fn build(&self, app: AppId) -> Result<Loaded, StoreError> {
        let store = self
            .store
            .upgrade()
            .ok_or_else(|| StoreError::Internal("the store is closed".into()))?;
        let started = std::time::Instant::now();
        // First the version: commits after it are buffered (the slot is Building).
        let version = store.data_version(app)?;
        let application = store.get_app(app)?;
        let schema = store.schema(app)?;
        let timezone = application.timezone.as_str().to_owned();
        if let Some(dir) = self.snapshots.get() {
            let path = snapshot_path(dir, app);
            let stamp = stamp(app, version, &timezone);
            let read = std::fs::File::open(&path).and_then(|f| Ok((f.metadata()?.len(), f)));
            match read {
                Ok((len, file)) => {
                    let mut input = std::io::BufReader::with_capacity(1 << 20, file);
                    match AppIndex::read_snapshot(
                        &mut input,
                        len,
                        &stamp,
                        &schema,
                        application.timezone.zone(),
                    ) {
                        Ok(index) => {
                            tracing::info!(
                                app = app.0,
                                customers = index.len(),
                                took_ms = started.elapsed().as_millis() as u64,
                                memory_mb = index.memory_bytes() / (1 << 20),
                                "segment engine loaded from its snapshot"
                            );
                            return Ok(Loaded::new(index, version, timezone, true));
                        }
                        Err(e) => {
                            tracing::info!(app = app.0, reason = %e, "segment engine snapshot not used; scanning the store");
                        }
                    }
                }
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => {
                    tracing::warn!(app = app.0, error = %e, "cannot open the segment engine snapshot");
                }
            }
        }
        // Sized up front: growing a million customers' vector would copy it ~20 times.
        let expected = store.count_customers(app)? as usize;
        let mut customers = Vec::with_capacity(expected);
        store.scan_customers(app, &mut |c| {
            customers.push(c);
            true
        })?;
        let scanned_ms = started.elapsed().as_millis() as u64;
        let mut index = AppIndex::with_capacity(&schema, customers.len());
        index.set_timezone(application.timezone.zone());
        index.upsert_many(&customers);
        tracing::info!(
            app = app.0,
            customers = customers.len(),
            scan_ms = scanned_ms,
            took_ms = started.elapsed().as_millis() as u64,
            memory_mb = index.memory_bytes() / (1 << 20),
            "segment engine built"
        );
        Ok(Loaded::new(index, version, timezone, false))
    }
}

impl ChangeListener for Engines {
    fn committed(&self, changes: &[Change]) {
        let mut rebuild = Vec::new();
        // Changes for loaded indexes are applied after the registry's lock is released, so
        // that an index busy elsewhere (a snapshot being written holds its read lock) delays
        // only its own application's writes. Only this thread (the store's writer) removes a
        // loaded index, so those collected here stay the current ones.
        let mut ready = Vec::new();
        {
            let Ok(mut slots) = self.slots.lock() else {
                return;
            };
            for change in changes {
                let app = change.app();
                if let (Change::AppDeleted { .. }, Some(dir)) = (change, self.snapshots.get()) {
                    let _ = std::fs::remove_file(snapshot_path(dir, app));
                }
                match slots.get_mut(&app) {
                    // Engines are built for every application at start-up; one that has
                    // none yet (created since) gets it after its first import.
                    None if matches!(change, Change::Bulk { .. }) => rebuild.push(app),
                    None => {}
                    Some(Slot::Building(buffer)) => buffer.push(change.clone()),
                    Some(Slot::Ready(loaded)) => {
                        if matches!(change, Change::Bulk { .. } | Change::AppDeleted { .. }) {
                            slots.remove(&app);
                            if matches!(change, Change::Bulk { .. }) {
                                rebuild.push(app);
                            }
                            continue;
                        }
                        ready.push((loaded.clone(), change));
                    }
                }
            }
        }
        for (loaded, change) in ready {
            if let Ok(mut loaded) = loaded.write() {
                apply(&mut loaded, change);
            }
        }
        // An import replaced many customers at once: rebuild the engine now, in the
        // background, so that the next question after the import waits as little as
        // possible (it waits for this build rather than answering from stale columns).
        for app in rebuild {
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
}
