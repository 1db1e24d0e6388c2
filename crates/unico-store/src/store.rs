//! The [`Store`] trait: every durable operation of the product, backend-independent.
//!
//! Calls are blocking; async callers run them on a blocking thread. Every write is durable
//! when it returns `Ok`: it survives a crash of the process (and, on the embedded backend,
//! of the machine). Times are passed in by the caller (epoch milliseconds), so the store
//! never reads a clock and tests control time.

use unico_core::{
    AppId, AppName, Application, Channel, Computed, Customer, CustomerId, Event, EventCode,
    EventType, FieldChange, FieldDef, FieldName, FieldType, Identity, Schema, Subscription,
    SubscriptionChange, TimeZoneName,
};

use crate::audit::{AuditRecord, NewAudit};
use crate::changes::{LogBounds, LogEntry};
use crate::cursor::Cursor;
use crate::error::StoreError;
use crate::events::{Activity, EventOutcome, EventPage, EventQuery, EventTypePatch, NewEvent};
use crate::identities::{HeldIdentity, LinkOutcome, MergeOutcome, MergeRecord};
use crate::sessions::{ConsoleSession, SessionLimits};
use crate::subscriptions::{HistoryEntry, SubscriptionsOutcome};

/// A stored API key (the key itself is never stored, only its SHA-256).
#[derive(Debug, Clone, PartialEq)]
pub struct ApiKeyInfo {
    pub id: i64,
    pub app: AppId,
    /// The first characters of the key, to recognise it in lists.
    pub prefix: String,
    pub created_at: i64,
    pub revoked_at: Option<i64>,
}

/// A field with how many customers hold a value for it.
#[derive(Debug, Clone, PartialEq)]
pub struct FieldStat {
    pub field: FieldDef,
    pub value_count: u64,
}

/// What a list is ordered by. Ties are broken by customerId, so the order is total.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SortBy {
    CustomerId,
    /// Creation order (the order ids were assigned).
    CreatedAt,
    UpdatedAt,
    /// A customer field; customers without a value come last in either direction.
    Field(FieldDef),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sort {
    pub by: SortBy,
    pub descending: bool,
}

impl Sort {
    pub fn default_order() -> Self {
        Sort {
            by: SortBy::CustomerId,
            descending: false,
        }
    }
}

/// One page request.
#[derive(Debug, Clone)]
pub struct ListQuery {
    pub sort: Sort,
    /// Start after this position (from the previous page's `next`).
    pub after: Option<Cursor>,
    pub limit: usize,
}

/// One page of customers and where the next one starts (`None` on the last page).
#[derive(Debug, Clone)]
pub struct Page {
    pub customers: Vec<Customer>,
    pub next: Option<Cursor>,
}

/// One item of a batch upsert.
#[derive(Debug, Clone)]
pub struct UpsertItem {
    pub customer_id: CustomerId,
    pub changes: Vec<FieldChange>,
    /// Subscription changes applied with the values, in the same write (the item fails
    /// whole if a channel is not taken).
    pub subscriptions: Vec<SubscriptionChange>,
}

/// What happened to one upserted customer.
#[derive(Debug, Clone, PartialEq)]
pub struct UpsertOutcome {
    pub created: bool,
    pub customer: Customer,
}

/// The write path's state, for `/health` and `/metrics`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct WriterStats {
    /// The store can take writes: the embedded store's writer thread runs. PostgreSQL has
    /// no writer thread and says true (readiness asks the database itself).
    pub alive: bool,
    /// Write jobs waiting for the writer now.
    pub queued: usize,
    /// Most write jobs that may wait (0: the backend has no queue).
    pub queue_bound: usize,
    /// Group commits so far (0 on a backend without a writer of its own).
    pub commits: u64,
    /// Their total duration, in seconds (from `BEGIN` to the commit's answer).
    pub commit_seconds: f64,
    /// Commits that took at most each of [`COMMIT_BUCKETS_SECONDS`] (cumulative).
    pub commit_buckets: Vec<u64>,
}

/// The upper bounds, in seconds, of the commit-latency histogram (`/metrics`): an fsync
/// takes from a fraction of a millisecond (NVMe) to tens (network disks).
pub const COMMIT_BUCKETS_SECONDS: [f64; 10] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0,
];

/// Every durable operation of the product.
pub trait Store: Send + Sync + 'static {
    /// A short name of the backend, for logs.
    fn backend(&self) -> &'static str;

    /// Answers once the store could take a write now (the embedded store's writer runs;
    /// the database answers); `Unavailable` otherwise. For readiness checks.
    fn check_ready(&self) -> Result<(), StoreError>;

    /// The write path's state (cheap: no I/O, never waits for the writer).
    fn writer_stats(&self) -> WriterStats;

    // --- the change log ---
    /// The sequence number of the last committed change (0 before any). Every write
    /// acknowledged before this call returns is at or below it. Cheap: no I/O.
    fn log_head(&self) -> u64;
    /// At or past every change whose effects a reader of the store may already see: the
    /// head, or a commit of this process in progress (its effects can be visible to other
    /// connections a moment before the head moves). What a question waits for to read
    /// every write it could have observed. Cheap: no I/O.
    fn log_horizon(&self) -> u64 {
        self.log_head()
    }
    /// Which entries the log still holds.
    fn log_bounds(&self) -> Result<LogBounds, StoreError>;
    /// Up to `limit` entries after `after`, in sequence order. `LogPruned` if entries
    /// right after `after` were already pruned (the reader must start over from a scan).
    fn read_log(&self, after: u64, limit: usize) -> Result<Vec<LogEntry>, StoreError>;
    /// Waits until the head passes `after` or `timeout` passes; answers the head.
    fn wait_log(&self, after: u64, timeout: std::time::Duration) -> u64;
    /// Removes the entries committed before `before` (epoch milliseconds), keeping at least
    /// the last one; answers how many went.
    fn prune_log(&self, before: i64) -> Result<u64, StoreError>;

    // --- instance metadata ---
    fn get_meta(&self, key: &str) -> Result<Option<String>, StoreError>;
    fn set_meta(&self, key: &str, value: &str) -> Result<(), StoreError>;

    // --- applications ---
    fn create_app(
        &self,
        name: &AppName,
        timezone: &TimeZoneName,
        now: i64,
    ) -> Result<Application, StoreError>;
    fn list_apps(&self) -> Result<Vec<Application>, StoreError>;
    fn get_app(&self, app: AppId) -> Result<Application, StoreError>;
    fn update_app(
        &self,
        app: AppId,
        name: Option<&AppName>,
        timezone: Option<&TimeZoneName>,
    ) -> Result<Application, StoreError>;
    /// Deletes the application with its keys, fields and customers.
    fn delete_app(&self, app: AppId) -> Result<(), StoreError>;

    // --- API keys ---
    fn create_key(
        &self,
        app: AppId,
        hash: &[u8; 32],
        prefix: &str,
        now: i64,
    ) -> Result<ApiKeyInfo, StoreError>;
    fn list_keys(&self, app: AppId) -> Result<Vec<ApiKeyInfo>, StoreError>;
    fn revoke_key(&self, app: AppId, key_id: i64, now: i64) -> Result<(), StoreError>;
    /// The live (unrevoked) key with this hash.
    fn find_key(&self, hash: &[u8; 32]) -> Result<Option<ApiKeyInfo>, StoreError>;

    // --- console sessions (see [`crate::sessions`]) ---
    /// Starts a session stored under `token_hash`, at `now`. Expired sessions are dropped
    /// first; past `limits.per_key`, the key's oldest session ends, then past
    /// `limits.per_app` its application's; `Limit` (and nothing ended) if `limits.total`
    /// live sessions remain.
    fn start_session(
        &self,
        token_hash: &[u8; 32],
        session: &ConsoleSession,
        now: i64,
        limits: &SessionLimits,
    ) -> Result<(), StoreError>;
    /// The live session stored under `token_hash`, its use at `now` recorded (at most once
    /// per `limits.touch_ms`); `None` if there is none or it expired (then it is dropped).
    fn use_session(
        &self,
        token_hash: &[u8; 32],
        now: i64,
        limits: &SessionLimits,
    ) -> Result<Option<ConsoleSession>, StoreError>;
    /// Ends the session stored under `token_hash`, if there is one.
    fn end_session(&self, token_hash: &[u8; 32]) -> Result<(), StoreError>;

    // --- customer fields ---
    fn schema(&self, app: AppId) -> Result<Schema, StoreError>;
    fn field_stats(&self, app: AppId) -> Result<Vec<FieldStat>, StoreError>;
    /// `Conflict` if the name exists, `Limit` past the field limit.
    fn create_field(
        &self,
        app: AppId,
        name: &FieldName,
        field_type: FieldType,
        now: i64,
    ) -> Result<FieldDef, StoreError>;
    /// Creates a computed field: read-only, its values the aggregate `computed` of each
    /// customer's events. `Conflict` if the name exists or the event type is not
    /// registered, `Limit` past the field limit. The caller checks the definition against
    /// the schema (its type, its property); the store re-checks the event type in the
    /// same transaction.
    fn create_computed_field(
        &self,
        app: AppId,
        name: &FieldName,
        field_type: FieldType,
        computed: &Computed,
        now: i64,
    ) -> Result<FieldDef, StoreError>;
    /// Changes a field's type; `Conflict` while any customer holds a value for it, and
    /// for a computed field (its type follows its aggregate).
    fn set_field_type(
        &self,
        app: AppId,
        name: &FieldName,
        field_type: FieldType,
    ) -> Result<FieldDef, StoreError>;
    /// Deletes a field and its value from every customer; answers how many values went.
    fn delete_field(&self, app: AppId, name: &FieldName) -> Result<u64, StoreError>;

    // --- event types (also in [`Store::schema`]'s `event_types`) ---
    /// Registers an event type; `Conflict` if the code exists, `Limit` past
    /// [`unico_core::limits::MAX_EVENT_TYPES_PER_APP`].
    fn create_event_type(
        &self,
        app: AppId,
        event_type: &EventType,
    ) -> Result<EventType, StoreError>;
    fn update_event_type(
        &self,
        app: AppId,
        code: &EventCode,
        patch: &EventTypePatch,
    ) -> Result<EventType, StoreError>;
    /// Deletes an event type and every event of it; answers how many events went.
    fn delete_event_type(&self, app: AppId, code: &EventCode) -> Result<u64, StoreError>;

    // --- events ---
    /// Stores events in one durable write, each checked against the registry (an
    /// unregistered or disabled type is that item's `Invalid` error) and deduplicated by
    /// its key; a customer that does not exist is created. Answers per item, in order.
    fn insert_events(
        &self,
        app: AppId,
        events: Vec<NewEvent>,
        now: i64,
    ) -> Result<Vec<Result<EventOutcome, StoreError>>, StoreError>;
    /// One page of a customer's events, newest first.
    fn customer_events(
        &self,
        app: AppId,
        customer_id: &CustomerId,
        query: &EventQuery,
    ) -> Result<EventPage, StoreError>;
    /// First and last seen, channels and the number of events of a customer.
    fn customer_activity(
        &self,
        app: AppId,
        customer_id: &CustomerId,
    ) -> Result<Activity, StoreError>;
    /// The application's customers with internal ids `from <= id <= to`, ascending by id,
    /// at most `limit`, as they are now (for followers of [`crate::Change::Customers`]).
    fn read_customers(
        &self,
        app: AppId,
        from: i64,
        to: i64,
        limit: usize,
    ) -> Result<Vec<Customer>, StoreError>;
    /// The application's events with `from <= id <= to`, ascending by id, at most `limit`
    /// (for followers of [`crate::Change::Events`]).
    fn read_events(
        &self,
        app: AppId,
        from: i64,
        to: i64,
        limit: usize,
    ) -> Result<Vec<Event>, StoreError>;
    /// What an events import's [`EventSink`] prepared, once the import is committed, if
    /// its events are exactly those of `app` with ids in `lo..=hi` (the one range of a
    /// [`crate::Change::Events`] from its first id to its last); handed over once. A
    /// store that does not keep them answers `None`, and so does one that has since
    /// committed a change removing or moving stored events: the follower then reads the
    /// events back.
    fn take_prepared_events(
        &self,
        app: AppId,
        lo: i64,
        hi: i64,
    ) -> Option<Box<dyn std::any::Any + Send>> {
        let _ = (app, lo, hi);
        None
    }
    /// Whether [`Store::run_event_import`] tells an [`EventSink`] of what it writes (a
    /// caller need not prepare anything otherwise).
    fn takes_event_sinks(&self) -> bool {
        false
    }
    /// Removes every event older than its type's retention at `now`, logging one
    /// [`crate::Change::EventsRemoved`] per type that lost events; answers how many went.
    fn expire_events(&self, now: i64) -> Result<u64, StoreError>;
    /// Hands over the application's schema, then visits every customer of it in id order,
    /// then every event of it in id order (until a visitor answers false), all as of one
    /// point of the change log, whose sequence number it answers.
    fn scan_app(
        &self,
        app: AppId,
        schema: &mut dyn FnMut(Schema),
        customers: &mut dyn FnMut(Customer) -> bool,
        events: &mut dyn FnMut(Event) -> bool,
    ) -> Result<u64, StoreError>;

    /// Erases a customer (the right to erasure): deletes it with its values, events,
    /// subscriptions and their history, as `delete_customer` does, and in the same
    /// transaction removes its customerId and values from the change log (its earlier
    /// entries become plain deletions of it). Logs the deletion, then a `Bulk` change so
    /// that views rebuild the application from the store instead of keeping anything of
    /// the customer in memory or in snapshots. Answers the internal id.
    fn erase_customer(&self, app: AppId, customer_id: &CustomerId) -> Result<i64, StoreError>;

    // --- audit log ---
    /// Appends a record; answers its id.
    fn record_audit(&self, entry: &NewAudit) -> Result<i64, StoreError>;
    /// Records newest first: of one application (`Some`) or of all (`None`), with ids
    /// below `before` when given, at most `limit`.
    fn audit_log(
        &self,
        app: Option<AppId>,
        before: Option<i64>,
        limit: usize,
    ) -> Result<Vec<AuditRecord>, StoreError>;

    // --- channel subscriptions ---
    /// Replaces the channels the application declared for subscriptions (beyond the
    /// default ones); answers the new schema, which is logged.
    fn set_declared_channels(&self, app: AppId, channels: &[Channel])
    -> Result<Schema, StoreError>;
    /// Applies subscription changes to a customer in one durable write: each is kept in
    /// the history, and becomes the standing subscription unless a later statement (by
    /// `at`) is held. `Invalid` for a channel the application does not take; a customer
    /// that does not exist is `NotFound`, or created when `create`.
    fn set_subscriptions(
        &self,
        app: AppId,
        customer_id: &CustomerId,
        changes: &[SubscriptionChange],
        create: bool,
        now: i64,
    ) -> Result<SubscriptionsOutcome, StoreError>;
    /// A customer's standing subscriptions, by channel.
    fn subscriptions(
        &self,
        app: AppId,
        customer_id: &CustomerId,
    ) -> Result<Vec<Subscription>, StoreError>;
    /// A customer's recorded changes, newest first, at most `limit`.
    fn subscription_history(
        &self,
        app: AppId,
        customer_id: &CustomerId,
        limit: usize,
    ) -> Result<Vec<HistoryEntry>, StoreError>;
    /// Every recorded statement of the application's customers, grouped by customer and
    /// channel and in the order the latest-statement rule reads them (by `at`, then by
    /// recording): (customer id, channel, subscribed, at).
    fn scan_subscription_history(
        &self,
        app: AppId,
        visit: &mut dyn FnMut(i64, &Channel, bool, i64),
    ) -> Result<(), StoreError>;
    /// Every standing subscription of the application: (customer id, channel, subscribed).
    fn scan_subscriptions(
        &self,
        app: AppId,
        visit: &mut dyn FnMut(i64, Channel, bool),
    ) -> Result<(), StoreError>;

    // --- identities, aliases and merges ---
    /// Links an identity to a customer (`NotFound` if there is none). Already held by it:
    /// nothing written. Held by an anonymous customer: that customer is merged into this
    /// one in the same write. Held by another known customer: `Conflict` naming it.
    /// `Limit` past [`unico_core::identity::MAX_IDENTITIES_PER_CUSTOMER`].
    fn link_identity(
        &self,
        app: AppId,
        customer_id: &CustomerId,
        identity: &Identity,
        now: i64,
    ) -> Result<LinkOutcome, StoreError>;
    /// Removes an identity from a customer; `NotFound` if the customer does not hold it.
    fn unlink_identity(
        &self,
        app: AppId,
        customer_id: &CustomerId,
        identity: &Identity,
    ) -> Result<(), StoreError>;
    /// The identities a customer holds, by kind and value.
    fn identities(
        &self,
        app: AppId,
        customer_id: &CustomerId,
    ) -> Result<Vec<HeldIdentity>, StoreError>;
    /// The customer holding an identity, if any.
    fn find_identity(
        &self,
        app: AppId,
        identity: &Identity,
    ) -> Result<Option<Customer>, StoreError>;
    /// Whether the customer was created anonymously (by an event naming an identity
    /// nobody held) and not merged into a known customer since.
    fn is_anonymous(&self, app: AppId, customer_id: &CustomerId) -> Result<bool, StoreError>;
    /// Merges `from` into `into` in one durable write: `from`'s events, identities,
    /// subscriptions (the latest statement per channel wins) and aliases move to `into`;
    /// its values fill the fields `into` lacks ([`crate::identities::merge_fields`]); it is
    /// deleted and its customerId becomes an alias of `into`, with the values that lost.
    /// Both ids may be aliases. `Invalid` when they name the same customer.
    fn merge_customers(
        &self,
        app: AppId,
        into: &CustomerId,
        from: &CustomerId,
        now: i64,
    ) -> Result<MergeOutcome, StoreError>;
    /// The customers merged into this one, newest first: their customerIds (aliases that
    /// still find it) and what lost.
    fn merges(&self, app: AppId, customer_id: &CustomerId) -> Result<Vec<MergeRecord>, StoreError>;

    // --- customers ---
    /// Creates a customer; `Conflict` if the customerId exists.
    fn create_customer(
        &self,
        app: AppId,
        customer_id: &CustomerId,
        changes: &[FieldChange],
        now: i64,
    ) -> Result<Customer, StoreError>;
    fn get_customer(&self, app: AppId, customer_id: &CustomerId) -> Result<Customer, StoreError>;
    /// Sets and removes values; `updated_at` moves only if a value changed.
    fn update_customer(
        &self,
        app: AppId,
        customer_id: &CustomerId,
        changes: &[FieldChange],
        now: i64,
    ) -> Result<Customer, StoreError>;
    /// Deletes a customer; answers the id it had.
    fn delete_customer(&self, app: AppId, customer_id: &CustomerId) -> Result<i64, StoreError>;
    /// Creates or updates each item, in order, in one durable write. An item that fails
    /// (say, a field deleted meanwhile) is reported and the others are written.
    fn upsert_batch(
        &self,
        app: AppId,
        items: Vec<UpsertItem>,
        now: i64,
    ) -> Result<Vec<Result<UpsertOutcome, StoreError>>, StoreError>;
    fn list_customers(&self, app: AppId, query: &ListQuery) -> Result<Page, StoreError>;
    /// The customers with these ids, in the order given (ids not found are skipped).
    fn get_customers(&self, app: AppId, ids: &[i64]) -> Result<Vec<Customer>, StoreError>;
    fn count_customers(&self, app: AppId) -> Result<u64, StoreError>;
    /// Visits every customer of the application in id order until `visit` answers false,
    /// all as of one point of the change log, whose sequence number it answers: the scan
    /// holds every change up to it and none after.
    fn scan_customers(
        &self,
        app: AppId,
        visit: &mut dyn FnMut(Customer) -> bool,
    ) -> Result<u64, StoreError>;

    // --- segments ---
    /// Saves a segment; `filter` is the canonical JSON text of its filter.
    fn create_segment(
        &self,
        app: AppId,
        name: &str,
        filter: &str,
        now: i64,
    ) -> Result<SegmentRecord, StoreError>;
    fn list_segments(&self, app: AppId) -> Result<Vec<SegmentRecord>, StoreError>;
    fn get_segment(&self, app: AppId, id: i64) -> Result<SegmentRecord, StoreError>;
    fn update_segment(
        &self,
        app: AppId,
        id: i64,
        name: &str,
        filter: &str,
        now: i64,
    ) -> Result<SegmentRecord, StoreError>;
    fn delete_segment(&self, app: AppId, id: i64) -> Result<(), StoreError>;

    // --- imports ---
    /// Records a new running import.
    fn create_import(
        &self,
        app: AppId,
        mode: ImportMode,
        now: i64,
    ) -> Result<ImportRecord, StoreError>;
    /// Writes an import's batches as one all-or-nothing unit: nothing of it is visible
    /// until the end, and it is rolled back if the feed ends with `keep: false`, fails, or
    /// the process dies. `written` counts customers written so far, for progress.
    ///
    /// With `finish`, the import's final record is made from the outcome and stored **in
    /// the same transaction** as the writes, so the record and the data are never out of
    /// step, even across `kill -9`: a record still `running` after a restart means nothing
    /// was written. A failure of the writes is then part of the outcome (the record says
    /// it, and the answer is `Ok` with `kept: false`); `Err` means neither the writes nor
    /// the record were stored.
    fn run_import(
        &self,
        app: AppId,
        batches: Box<dyn Iterator<Item = ImportBatch> + Send>,
        now: i64,
        written: std::sync::Arc<std::sync::atomic::AtomicU64>,
        finish: Option<ImportFinish>,
    ) -> Result<ImportCounts, StoreError>;
    /// Records a new running import of events (NDJSON).
    fn create_event_import(
        &self,
        app: AppId,
        mode: ImportMode,
        now: i64,
    ) -> Result<ImportRecord, StoreError>;
    /// Writes an events import's batches as one all-or-nothing unit, like
    /// [`Store::run_import`]: the counts say how many customers the events created
    /// (`created`) and how many events were duplicates of stored ones (`updated`).
    /// `written` counts events handed to the store so far; `sink`, if the store supports
    /// it, is told of every batch written ([`EventSink`]).
    fn run_event_import(
        &self,
        app: AppId,
        batches: Box<dyn Iterator<Item = EventBatch> + Send>,
        now: i64,
        written: std::sync::Arc<std::sync::atomic::AtomicU64>,
        finish: Option<ImportFinish>,
        sink: Option<Box<dyn EventSink>>,
    ) -> Result<ImportCounts, StoreError>;
    /// Stores an import's final record and its reported row errors.
    fn finish_import(
        &self,
        record: &ImportRecord,
        errors: &[ImportRowError],
    ) -> Result<(), StoreError>;
    fn get_import(
        &self,
        app: AppId,
        id: i64,
    ) -> Result<(ImportRecord, Vec<ImportRowError>), StoreError>;
    /// The application's imports, newest first.
    fn list_imports(&self, app: AppId, limit: usize) -> Result<Vec<ImportRecord>, StoreError>;
    /// Marks imports still `running` (their process died) as failed; answers how many.
    fn fail_interrupted_imports(&self, now: i64) -> Result<u64, StoreError>;
}

/// How an import treats invalid rows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ImportMode {
    /// Any invalid row means nothing is written.
    Atomic,
    /// Valid rows are written; invalid ones are reported.
    SkipInvalid,
}

impl ImportMode {
    pub fn as_str(self) -> &'static str {
        match self {
            ImportMode::Atomic => "atomic",
            ImportMode::SkipInvalid => "skip_invalid",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "atomic" => Some(ImportMode::Atomic),
            "skip_invalid" => Some(ImportMode::SkipInvalid),
            _ => None,
        }
    }
}

/// Where an import stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ImportState {
    Running,
    Succeeded,
    Failed,
}

impl ImportState {
    pub fn as_str(self) -> &'static str {
        match self {
            ImportState::Running => "running",
            ImportState::Succeeded => "succeeded",
            ImportState::Failed => "failed",
        }
    }

    pub(crate) fn parse(text: &str) -> Self {
        match text {
            "running" => ImportState::Running,
            "succeeded" => ImportState::Succeeded,
            _ => ImportState::Failed,
        }
    }
}

/// The record of one import: its history entry and final summary.
#[derive(Debug, Clone, PartialEq)]
pub struct ImportRecord {
    pub id: i64,
    pub app: AppId,
    pub kind: ImportKind,
    pub mode: ImportMode,
    pub state: ImportState,
    pub created_at: i64,
    pub finished_at: Option<i64>,
    pub rows_read: u64,
    pub rows_written: u64,
    pub created: u64,
    pub updated: u64,
    pub values_written: u64,
    pub rows_rejected: u64,
    /// Why the import failed as a whole (a broken file, a storage failure), if it did.
    pub message: Option<String>,
}

/// One rejected row, as reported.
#[derive(Debug, Clone, PartialEq)]
pub struct ImportRowError {
    pub line: u64,
    pub column: String,
    pub value: String,
    pub message: String,
}

/// One batch of an import's writes, or its end with the verdict.
pub enum ImportBatch {
    Items(Vec<UpsertItem>),
    /// No more items; `keep` false rolls back everything the import wrote.
    End {
        keep: bool,
    },
}

/// One batch of an events import's writes, or its end with the verdict.
pub enum EventBatch {
    Items(Vec<crate::events::NewEvent>),
    End { keep: bool },
}

/// An event of an import's batch as stored: its place in the batch, its id and its
/// customer's internal id.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StoredEvent {
    pub index: u32,
    pub id: i64,
    pub customer: i64,
}

/// Told of an events import's batches as they are written, to prepare what the log's
/// followers will need (the segment engine's tables) while the import runs. A store
/// that supports it calls [`EventSink::written`] for every batch, in order, inside the
/// import's transaction, and [`EventSink::finish`] once the import is to be kept; what
/// `finish` answers is held for [`Store::take_prepared_events`] if and when the import
/// commits, and dropped otherwise. A store may also ignore the sink.
pub trait EventSink: Send {
    /// A batch written: its events and, in ascending id order, those stored (a
    /// duplicate or an invalid item is not among them).
    fn written(&mut self, events: Vec<crate::events::NewEvent>, stored: Vec<StoredEvent>);
    /// The import is to be kept: what was prepared, if anything.
    fn finish(self: Box<Self>) -> Option<Box<dyn std::any::Any + Send>>;
}

/// What an import brings in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ImportKind {
    /// Customers and their values, from CSV.
    Customers,
    /// Events, from NDJSON.
    Events,
}

impl ImportKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ImportKind::Customers => "customers",
            ImportKind::Events => "events",
        }
    }

    pub(crate) fn parse(text: &str) -> Self {
        if text == "events" {
            ImportKind::Events
        } else {
            ImportKind::Customers
        }
    }
}

/// Makes an import's final record (and its reported row errors) from what its writes
/// came to: the counts, or the error that rolled them back. Called once, inside the
/// import's transaction.
pub type ImportFinish = Box<
    dyn FnOnce(Result<ImportCounts, &StoreError>) -> (ImportRecord, Vec<ImportRowError>) + Send,
>;

/// What an import wrote.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ImportCounts {
    pub created: u64,
    pub updated: u64,
    /// Whether the writes were kept (committed).
    pub kept: bool,
}

/// A saved segment: a named filter (its canonical JSON text, opaque to the store).
#[derive(Debug, Clone, PartialEq)]
pub struct SegmentRecord {
    pub id: i64,
    pub app: AppId,
    pub name: String,
    pub filter: String,
    pub created_at: i64,
    pub updated_at: i64,
}
