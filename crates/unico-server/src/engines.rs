//! The segment engines of the applications that have been queried, kept exactly in step
//! with the store through its change feed.
//!
//! An application's [`AppIndex`] is built from a store scan the first time a filter needs
//! it. Changes committed while it builds are buffered and replayed on top of the scan
//! (replaying a customer's latest state, a deletion or a schema is idempotent), so no
//! write is ever missed. After an import (a bulk change) the index is dropped and rebuilt
//! on the next query.

use std::collections::HashMap;
use std::sync::{Arc, Condvar, Mutex, RwLock, Weak};

use unico_core::AppId;
use unico_engine::AppIndex;
use unico_filter::EvalContext;
use unico_store::{Change, ChangeListener, Store, StoreError};

enum Slot {
    /// A build is scanning the store; changes that commit meanwhile wait here.
    Building(Vec<Change>),
    Ready(Arc<RwLock<AppIndex>>),
}

/// The loaded indexes, one per application.
pub struct Engines {
    store: Weak<dyn Store>,
    slots: Mutex<HashMap<AppId, Slot>>,
    built: Condvar,
}

fn apply(index: &mut AppIndex, change: &Change) {
    match change {
        Change::Customer { customer, .. } => index.upsert(customer),
        Change::CustomerDeleted { id, .. } => index.remove(*id),
        Change::Schema { schema, .. } => index.set_schema(schema),
        Change::TimeZone { timezone, .. } => index.set_timezone(timezone.zone()),
        Change::AppDeleted { .. } | Change::Bulk { .. } | Change::DataVersion { .. } => {}
    }
}

fn app_of(change: &Change) -> AppId {
    match change {
        Change::Customer { app, .. }
        | Change::CustomerDeleted { app, .. }
        | Change::Schema { app, .. }
        | Change::TimeZone { app, .. }
        | Change::AppDeleted { app }
        | Change::Bulk { app }
        | Change::DataVersion { app, .. } => *app,
    }
}

impl Engines {
    /// Engines over `store`, subscribed to its change feed.
    pub fn attach(store: &Arc<dyn Store>) -> Arc<Engines> {
        let engines = Arc::new(Engines {
            store: Arc::downgrade(store),
            slots: Mutex::new(HashMap::new()),
            built: Condvar::new(),
        });
        store.set_listener(engines.clone());
        engines
    }

    /// The application's index, building it from the store if needed (blocking).
    pub fn index(&self, app: AppId) -> Result<Arc<RwLock<AppIndex>>, StoreError> {
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
                Ok(mut index) => {
                    let stale = buffered
                        .iter()
                        .any(|c| matches!(c, Change::Bulk { .. } | Change::AppDeleted { .. }));
                    if stale {
                        // An import or a deletion landed during the scan: scan again.
                        self.built.notify_all();
                        continue;
                    }
                    for change in &buffered {
                        apply(&mut index, change);
                    }
                    let index = Arc::new(RwLock::new(index));
                    slots.insert(app, Slot::Ready(index.clone()));
                    Ok(index)
                }
                Err(e) => Err(e),
            };
            self.built.notify_all();
            return result;
        }
    }

    /// Runs `query` against the application's index, with "now" taken at the call and
    /// "today" in the index's time zone (blocking: may build the index).
    pub fn query<R>(
        &self,
        app: AppId,
        now_ms: i64,
        query: impl FnOnce(&AppIndex, &EvalContext) -> R,
    ) -> Result<R, StoreError> {
        let index = self.index(app)?;
        let index = index
            .read()
            .map_err(|_| StoreError::Internal("an engine lock was poisoned".into()))?;
        let ctx = EvalContext::new(now_ms, index.timezone().clone());
        Ok(query(&index, &ctx))
    }

    fn build(&self, app: AppId) -> Result<AppIndex, StoreError> {
        let store = self
            .store
            .upgrade()
            .ok_or_else(|| StoreError::Internal("the store is closed".into()))?;
        let started = std::time::Instant::now();
        let application = store.get_app(app)?;
        let schema = store.schema(app)?;
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
        Ok(index)
    }
}

impl ChangeListener for Engines {
    fn committed(&self, changes: &[Change]) {
        let Ok(mut slots) = self.slots.lock() else {
            return;
        };
        for change in changes {
            let app = app_of(change);
            match slots.get_mut(&app) {
                None => {}
                Some(Slot::Building(buffer)) => buffer.push(change.clone()),
                Some(Slot::Ready(index)) => {
                    if matches!(change, Change::Bulk { .. } | Change::AppDeleted { .. }) {
                        slots.remove(&app);
                        continue;
                    }
                    if let Ok(mut index) = index.write() {
                        apply(&mut index, change);
                    }
                }
            }
        }
    }
}
