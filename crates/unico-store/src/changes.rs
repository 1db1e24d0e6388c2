//! The change log: every committed write, appended in the same transaction to a durable,
//! ordered log, and read back from any sequence number.
//!
//! Views of the data (the segment engines, later webhooks and other servers) follow the log
//! instead of being updated by request handlers, so they see writes in exactly the order
//! they were committed, can catch up after a restart from the sequence number they last
//! applied, and never hold up a write.

use unico_core::{AppId, Channel, Customer, EventCode, FieldId, Schema, TimeZoneName, Value};

/// An import touching at most this many customers is logged customer by customer
/// ([`Change::Customer`]); a larger one as one [`Change::Customers`] listing their ids.
pub const INCREMENTAL_IMPORT_CUSTOMERS: u64 = 10_000;

/// One committed change.
#[derive(Debug, Clone)]
pub enum Change {
    /// A customer was created or updated; this is its new state, and what it held before.
    Customer {
        app: AppId,
        customer: Customer,
        before: Before,
    },
    CustomerDeleted {
        app: AppId,
        id: i64,
    },
    /// A customer was erased (a privacy erasure): deleted like [`Change::CustomerDeleted`],
    /// and views must keep nothing of its values either, in memory or on disk (a view
    /// rewrites any snapshot of the application that still holds them).
    CustomerErased {
        app: AppId,
        id: i64,
    },
    /// The application's fields or event types changed; this is the new schema.
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
    /// Events were stored: these ids (sorted, disjoint, inclusive ranges), all of this
    /// application. Views read them from the store ([`crate::Store::read_events`]) in
    /// batches. An import logs all its events this way, however many (millions are a few
    /// ranges): a view absorbs them without rebuilding the application from a scan.
    Events {
        app: AppId,
        ranges: Vec<(i64, i64)>,
    },
    /// The application's events of one type older than `before` (epoch ms, exclusive) were
    /// removed: retention, or the type's deletion (`before` is `i64::MAX`).
    EventsRemoved {
        app: AppId,
        event: EventCode,
        before: i64,
    },
    /// Many customers were written at once (an import too large to log customer by
    /// customer): these internal ids (sorted, disjoint, inclusive ranges), all of this
    /// application. Views read them as they are now from the store
    /// ([`crate::Store::read_customers`]) in batches and apply each as a whole-state
    /// upsert, so a million imported customers reach a view without a rebuild. An id no
    /// longer there was deleted since (its deletion is later in the log).
    Customers {
        app: AppId,
        ranges: Vec<(i64, i64)>,
    },
    /// Many customers changed at once, without saying which: views reload the application
    /// from a scan at a later sequence number. No longer written (imports log
    /// [`Change::Customers`]); read back from logs written by earlier versions.
    Bulk {
        app: AppId,
    },
    /// A customer's standing subscription to a channel changed; this is the new state.
    Subscription {
        app: AppId,
        customer: i64,
        channel: Channel,
        subscribed: bool,
    },
}

/// What a customer held before a logged change of it.
#[derive(Debug, Clone, PartialEq)]
pub enum Before {
    /// The change created the customer.
    Created,
    /// The customer's values before the change (all of them, changed or not).
    Values(Vec<(FieldId, Value)>),
    /// Not recorded: a customer written by an import (logged customer by customer with
    /// its new state only), or an entry logged before previous values were kept.
    Unknown,
}

/// One field a change moved: its value before and after (`None`: absent).
#[derive(Debug, Clone, PartialEq)]
pub struct FieldDelta {
    pub field: FieldId,
    pub old: Option<Value>,
    pub new: Option<Value>,
}

impl Change {
    /// For a customer change whose previous values are known: the fields it changed, in
    /// field order, each with its old and new value. `None` for other changes, and for a
    /// customer whose previous values were not recorded.
    pub fn field_deltas(&self) -> Option<Vec<FieldDelta>> {
        let Change::Customer {
            customer, before, ..
        } = self
        else {
            return None;
        };
        let old: &[(FieldId, Value)] = match before {
            Before::Created => &[],
            Before::Values(values) => values,
            Before::Unknown => return None,
        };
        let mut fields: Vec<FieldId> = old
            .iter()
            .chain(&customer.fields)
            .map(|(id, _)| *id)
            .collect();
        fields.sort_unstable();
        fields.dedup();
        let value = |list: &[(FieldId, Value)], id: FieldId| {
            list.iter().find(|(f, _)| *f == id).map(|(_, v)| v.clone())
        };
        Some(
            fields
                .into_iter()
                .filter_map(|field| {
                    let (old, new) = (value(old, field), value(&customer.fields, field));
                    (old != new).then_some(FieldDelta { field, old, new })
                })
                .collect(),
        )
    }
}

impl Change {
    /// The application the change belongs to.
    pub fn app(&self) -> AppId {
        match self {
            Change::Customer { app, .. }
            | Change::CustomerDeleted { app, .. }
            | Change::CustomerErased { app, .. }
            | Change::Schema { app, .. }
            | Change::TimeZone { app, .. }
            | Change::AppDeleted { app }
            | Change::Events { app, .. }
            | Change::Customers { app, .. }
            | Change::EventsRemoved { app, .. }
            | Change::Subscription { app, .. }
            | Change::Bulk { app } => *app,
        }
    }
}

/// One entry of the durable change log: a committed change and its place in the order.
#[derive(Debug, Clone)]
pub struct LogEntry {
    /// Increases by one with every change, across applications, in commit order; never
    /// reused.
    pub seq: u64,
    /// When it was committed (epoch milliseconds).
    pub at: i64,
    pub change: Change,
}

/// How much of the log a store still holds: every entry with `floor < seq <= head` can be
/// read; older ones were pruned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LogBounds {
    pub floor: u64,
    pub head: u64,
}

/// How long log entries are kept before [`crate::Store::prune_log`] may remove them: long
/// enough for a snapshot written at shutdown to be caught up after a restart days later.
pub const LOG_RETENTION_MS: i64 = 7 * 24 * 3_600_000;
