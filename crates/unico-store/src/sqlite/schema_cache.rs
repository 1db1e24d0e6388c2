//! The applications' schemas as last read, shared by the readers and the writer.
//!
//! A reader that sees a commit's other effects must never get the schema from before it:
//! an events import that registered a type is reported succeeded by its record, committed
//! with the type, and a question naming the type right after must find it. So the writer
//! *holds* an application out of the cache from just before the commit that changes its
//! schema until just after it: meanwhile readers load the schema from the database without
//! keeping it, and whatever was cached before is dropped on both sides of the commit.

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;

use unico_core::{AppId, Schema};

use crate::error::StoreError;

#[derive(Default)]
pub(crate) struct SchemaCache {
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    schemas: HashMap<AppId, Schema>,
    /// Applications whose schema a commit in progress changes.
    held: HashSet<AppId>,
}

impl SchemaCache {
    /// The cached schema of `app`, or the one `load` reads (kept unless `app` is held).
    /// The lock is held while loading, so a load cannot race a hold or an invalidation.
    pub(crate) fn get_or_load(
        &self,
        app: AppId,
        load: impl FnOnce() -> Result<Schema, StoreError>,
    ) -> Result<Schema, StoreError> {
        let mut inner = self.inner.lock().map_err(|_| poisoned())?;
        if let Some(schema) = inner.schemas.get(&app) {
            return Ok(schema.clone());
        }
        let schema = load()?;
        if !inner.held.contains(&app) {
            inner.schemas.insert(app, schema.clone());
        }
        Ok(schema)
    }

    /// Before a commit that changes these applications' schemas.
    pub(crate) fn hold(&self, apps: &[AppId]) {
        if apps.is_empty() {
            return;
        }
        let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        for app in apps {
            inner.schemas.remove(app);
            inner.held.insert(*app);
        }
    }

    /// After that commit (or its rollback).
    pub(crate) fn release(&self, apps: &[AppId]) {
        if apps.is_empty() {
            return;
        }
        let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        for app in apps {
            inner.schemas.remove(app);
            inner.held.remove(app);
        }
    }

    /// Drops the cached schema of `app`.
    pub(crate) fn forget(&self, app: AppId) {
        let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        inner.schemas.remove(&app);
    }
}

fn poisoned() -> StoreError {
    StoreError::Internal("the schema cache's lock was poisoned".into())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn schema() -> Schema {
        Schema::new(Vec::new())
    }

    /// While held, loads are not kept; after the release, the next load is.
    #[test]
    fn a_held_application_is_loaded_each_time_until_released() {
        let cache = SchemaCache::default();
        let app = AppId(1);
        let loads = std::cell::Cell::new(0);
        let twice = || {
            for _ in 0..2 {
                cache
                    .get_or_load(app, || {
                        loads.set(loads.get() + 1);
                        Ok(schema())
                    })
                    .unwrap();
            }
            loads.get()
        };
        assert_eq!(twice(), 1, "cached");
        cache.hold(&[app]);
        assert_eq!(twice(), 3, "held: read from the database each time");
        cache.release(&[app]);
        assert_eq!(twice(), 4, "kept again");
    }
}
