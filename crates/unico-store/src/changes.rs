//! The change feed: every committed write, delivered in commit order to a listener.
//!
//! In-memory views of the data (the segment engine, later webhooks) subscribe here instead
//! of being updated by request handlers, so they see writes in exactly the order they
//! were committed, and before the writer is told its write is durable.

use unico_core::{AppId, Customer, Schema, TimeZoneName};

/// One committed change.
/// An import touching at most this many customers is announced customer by customer
/// ([`Change::Customer`]); a larger one as one [`Change::Bulk`].
pub const INCREMENTAL_IMPORT_CUSTOMERS: u64 = 10_000;

#[derive(Debug, Clone)]
pub enum Change {
    /// A customer was created or updated; this is its new state.
    Customer {
        app: AppId,
        customer: Customer,
    },
    CustomerDeleted {
        app: AppId,
        id: i64,
    },
    /// The application's fields changed; this is the new schema.
    Schema {
        app: AppId,
        schema: Schema,
    },
    /// The application's time zone changed.
    TimeZone {
        app: AppId,
        timezone: TimeZoneName,
    },
    AppDeleted {
        app: AppId,
    },
    /// Many customers changed at once (an import too large to announce customer by
    /// customer): views should reload the application.
    Bulk {
        app: AppId,
    },
    /// The application's data version after the commit that carried the changes just
    /// before this one (see [`crate::Store::data_version`]); one per application per
    /// commit, after that application's changes.
    DataVersion {
        app: AppId,
        version: u64,
    },
}

impl Change {
    /// The application the change belongs to.
    pub fn app(&self) -> AppId {
        match self {
            Change::Customer { app, .. }
            | Change::CustomerDeleted { app, .. }
            | Change::Schema { app, .. }
            | Change::TimeZone { app, .. }
            | Change::AppDeleted { app }
            | Change::Bulk { app }
            | Change::DataVersion { app, .. } => *app,
        }
    }
}

/// Receives committed changes. Called on the store's writer thread: keep it quick and
/// never call back into the store's write methods.
pub trait ChangeListener: Send + Sync {
    fn committed(&self, changes: &[Change]);
}
