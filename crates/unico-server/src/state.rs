//! The state every handler shares.

use std::path::PathBuf;
use std::sync::Arc;

use unico_store::{Store, StoreError};

use crate::auth::KeyRing;
use crate::engines::Engines;
use crate::error::ApiError;
use crate::import_job::ImportJobs;

/// Shared by all requests; cheap to clone.
#[derive(Clone)]
pub struct AppState {
    pub store: Arc<dyn Store>,
    pub keys: Arc<KeyRing>,
    /// Imports running in this process.
    pub imports: Arc<ImportJobs>,
    /// Places of imports, per application and in total.
    pub import_slots: Arc<crate::limits::ImportSlots>,
    /// Places and time-outs of requests.
    pub request_limits: Arc<crate::limits::RequestLimits>,
    /// Requests counted for `/metrics`.
    pub metrics: Arc<crate::metrics::Metrics>,
    /// Segment engines of the applications queried so far.
    pub engines: Arc<Engines>,
    /// Console sign-in sessions (kept in the store, shared by every server).
    pub sessions: Arc<crate::console::session::Sessions>,
    /// Console sign-in rate limits (per key, and failed sign-ins per client).
    pub sign_ins: Arc<crate::console::session::SignInLimits>,
    /// Where uploaded CSV files wait for their import (deleted once it ends).
    pub spool_dir: PathBuf,
    /// The data directory, whose disk `/health` reports (the spool directory's when not
    /// set).
    pub data_dir: Option<PathBuf>,
    /// Free bytes an upload's spool must leave on its disk
    /// ([`crate::limits::SPOOL_MIN_FREE_BYTES`] unless a test says otherwise).
    pub spool_reserve_bytes: u64,
}

impl AppState {
    /// State over `store`; uploads are spooled in the system's temporary directory until
    /// [`AppState::with_spool_dir`] says otherwise.
    pub fn new(store: Arc<dyn Store>, admin_key: &str) -> Self {
        Self {
            engines: Engines::attach(&store),
            sessions: Arc::new(crate::console::session::Sessions::new(store.clone())),
            store,
            keys: Arc::new(KeyRing::new(admin_key)),
            imports: Arc::new(ImportJobs::default()),
            import_slots: Arc::default(),
            request_limits: Arc::default(),
            metrics: Arc::default(),
            sign_ins: Arc::default(),
            spool_dir: std::env::temp_dir(),
            data_dir: None,
            spool_reserve_bytes: crate::limits::SPOOL_MIN_FREE_BYTES,
        }
    }

    /// Other request bounds than [`crate::limits`]'s defaults (tests).
    pub fn with_request_limits(mut self, limits: crate::limits::RequestLimits) -> Self {
        self.request_limits = Arc::new(limits);
        self
    }

    /// Other import bounds than [`crate::limits`]'s defaults (tests).
    pub fn with_import_slots(mut self, slots: crate::limits::ImportSlots) -> Self {
        self.import_slots = Arc::new(slots);
        self
    }

    /// Reports the disk of `dir` in `/health`.
    pub fn with_data_dir(mut self, dir: PathBuf) -> Self {
        self.data_dir = Some(dir);
        self
    }

    /// Another reserve of free disk for upload spools (tests: a reserve larger than the
    /// disk stands for a full disk).
    pub fn with_spool_reserve(mut self, bytes: u64) -> Self {
        self.spool_reserve_bytes = bytes;
        self
    }

    pub fn with_spool_dir(mut self, dir: PathBuf) -> Self {
        self.spool_dir = dir;
        self
    }

    /// The application's schema, to read a request's values with: the segment engine's
    /// copy when it is loaded and holds every write this server knows of (no store round
    /// trip, which on PostgreSQL is two queries per request), else the store's. The store
    /// checks the values against its own schema in the write's transaction anyway (a
    /// field deleted or retyped meanwhile is a conflict). Another server's change reaches
    /// the engine a few milliseconds after it commits: a caller whose values do not read
    /// with this copy, or whose customer holds a field it lacks, asks
    /// [`AppState::store_schema`] before answering.
    pub async fn schema(&self, app: unico_core::AppId) -> Result<unico_core::Schema, ApiError> {
        if let Some(schema) = self
            .engines
            .try_query(app, 0, |index, _| index.schema().clone())
        {
            return Ok(schema);
        }
        self.store_schema(app).await
    }

    /// Reads a request's values with [`AppState::schema`]; values that do not read with
    /// it are read again with the store's schema before the error is answered. Answers
    /// the schema they were read with, and what `read` gave.
    pub async fn read_with_schema<T>(
        &self,
        app: unico_core::AppId,
        read: impl Fn(&unico_core::Schema) -> Result<T, ApiError>,
    ) -> Result<(unico_core::Schema, T), ApiError> {
        let schema = self.schema(app).await?;
        if let Ok(values) = read(&schema) {
            return Ok((schema, values));
        }
        let schema = self.store_schema(app).await?;
        let values = read(&schema)?;
        Ok((schema, values))
    }

    /// The application's schema as the store holds it now.
    pub async fn store_schema(
        &self,
        app: unico_core::AppId,
    ) -> Result<unico_core::Schema, ApiError> {
        self.blocking(move |s| s.schema(app)).await
    }

    /// Runs a store call on a blocking thread, off the async runtime.
    pub async fn blocking<R: Send + 'static>(
        &self,
        op: impl FnOnce(&dyn Store) -> Result<R, StoreError> + Send + 'static,
    ) -> Result<R, ApiError> {
        on_blocking_thread(self.store.clone(), op).await
    }
}

/// Runs a call on `store` on a blocking thread, off the async runtime.
pub(crate) async fn on_blocking_thread<R: Send + 'static>(
    store: Arc<dyn Store>,
    op: impl FnOnce(&dyn Store) -> Result<R, StoreError> + Send + 'static,
) -> Result<R, ApiError> {
    tokio::task::spawn_blocking(move || op(store.as_ref()))
        .await
        .map_err(|e| ApiError::Internal(format!("blocking task failed: {e}")))?
        .map_err(ApiError::from)
}

impl AppState {
    /// Like [`AppState::blocking`], for work that mixes store calls with request
    /// validation: one hop to a blocking thread instead of several.
    pub async fn blocking_api<R: Send + 'static>(
        &self,
        op: impl FnOnce(&dyn Store) -> Result<R, ApiError> + Send + 'static,
    ) -> Result<R, ApiError> {
        let store = self.store.clone();
        tokio::task::spawn_blocking(move || op(store.as_ref()))
            .await
            .map_err(|e| ApiError::Internal(format!("blocking task failed: {e}")))?
    }
}

/// The current time in epoch milliseconds.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}
