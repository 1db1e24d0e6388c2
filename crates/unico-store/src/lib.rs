//! Unico's storage layer.
//!
//! Everything durable goes through the [`Store`] trait. Backends implement it and prove it
//! with the shared [`conformance`] suite; their own errors (SQLite, PostgreSQL) are mapped
//! to [`StoreError`] and never leak. Only this crate knows SQL.
//!
//! - [`store`]: the trait and the types that cross it.
//! - [`error`]: what can go wrong, as the layers above need to tell it apart.
//! - [`changes`]: the feed of committed changes, in commit order.
//! - [`codec`]: the persisted encoding of customer values and value sort keys.
//! - [`cursor`]: opaque keyset-pagination cursors.
//! - [`sessions`]: console sessions, shared by every server of one database.
//! - [`sqlite`]: the embedded backend (one file in the data directory, group commit).
//! - [`postgres`]: the PostgreSQL backend (several servers on one database).
//! - [`conformance`]: the behaviour every backend must show, as tests.

pub mod audit;
pub mod changes;
pub mod codec;
pub mod conformance;
pub mod cursor;
pub mod error;
pub mod events;
pub mod identities;
mod live;
mod log_row;
pub mod postgres;
mod prepare;
mod segment_name;
pub mod sessions;
pub mod sqlite;
pub mod store;
pub mod subscriptions;
mod writing;

pub use changes::{
    Before, Change, FieldDelta, INCREMENTAL_IMPORT_CUSTOMERS, LOG_RETENTION_MS, LogBounds, LogEntry,
};
pub use cursor::Cursor;
pub use error::StoreError;
pub use events::{Activity, EventOutcome, EventPage, EventQuery, EventTypePatch, NewEvent};
pub use identities::{ByIdentity, HeldIdentity, LinkOutcome, MergeOutcome, MergeRecord};
pub use postgres::PostgresStore;
pub use sessions::{ConsoleSession, SessionLimits};
pub use sqlite::SqliteStore;
pub use store::COMMIT_BUCKETS_SECONDS;
pub use store::{
    ApiKeyInfo, EventBatch, EventSink, FieldStat, ImportBatch, ImportCounts, ImportFinish,
    ImportKind, ImportMode, ImportRecord, ImportRowError, ImportState, ListQuery, Page,
    SegmentRecord, Sort, SortBy, Store, StoredEvent, UpsertItem, UpsertOutcome, WriterStats,
};
