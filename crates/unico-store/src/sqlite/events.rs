//! Interactions on the embedded backend: the event type registry, event writes (one job
//! on the writer, deduplicated by key), the timeline and retention.
//!
//! Events are stored in *blocks*: the events of one customer written by one flush of the
//! writer are one row of `event_blocks` ([`super::event_block`] spells the blob), keyed by
//! its *base*, the smallest id it was written with. Ids are given in order from a counter
//! in `meta` and never given twice. Since one flush gives consecutive ids, every event of
//! a block has an id below `base + BLOCK_SPAN`, so the blocks holding a range of ids are a
//! range of bases. The timeline reads a customer's blocks newest first by the
//! `(customer, max_ts)` index; retention finds blocks by *reminders* (`event_expiry`):
//! each write of blocks leaves one, the run of block ids it wrote and the earliest time an
//! event among them expires (every block is covered by a reminder due no later than its
//! own `expires_at`; see [`Reminder`]);
//! `event_keys` maps each idempotency key to its event (a key left behind by a deleted
//! customer's events is told apart by looking for its event).

use std::collections::HashMap;

use rusqlite::{Connection, OptionalExtension, Row, params};
use unico_core::limits::MAX_EVENT_TYPES_PER_APP;
use unico_core::{AppId, Channel, CustomerId, Event, EventCode, EventType, EventTypes, Properties};

use super::event_block;
use super::recent;
use super::rows;
use super::writer::WriteCtx;
use super::writes::{CountDeltas, CustomerWriter, Mode};
use crate::changes::{Before, Change};
use crate::error::StoreError;
use crate::events::{
    Activity, EventOutcome, EventPage, EventQuery, EventTypePatch, IdRanges, NewEvent,
    parse_properties_text, properties_text,
};
use crate::store::{EventBatch, EventSink, ImportCounts, StoredEvent};

/// The writer's maps of its own numbers (row ids, places in a flush: a lookup or more per
/// event written) hash with foldhash. Maps keyed by what a sender chooses (customerIds,
/// identities) keep the standard hasher, which resists keys picked to collide.
type FastMap<K, V> = HashMap<K, V, foldhash::fast::FixedState>;

/// The registered types of `app`, with their row ids.
pub fn event_types(conn: &Connection, app: AppId) -> Result<Vec<(i64, EventType)>, StoreError> {
    let mut stmt = conn.prepare_cached(
        "SELECT id, code, name, retention_days, enabled, properties, created_at
         FROM event_types WHERE app_id = ?1 ORDER BY code",
    )?;
    let rows = stmt.query_map([app.0], |r| {
        Ok((
            r.get::<_, i64>(0)?,
            r.get::<_, String>(1)?,
            r.get::<_, String>(2)?,
            r.get::<_, i64>(3)?,
            r.get::<_, bool>(4)?,
            r.get::<_, String>(5)?,
            r.get::<_, i64>(6)?,
        ))
    })?;
    let mut out = Vec::new();
    for row in rows {
        let (id, code, name, retention, enabled, props, created_at) = row?;
        out.push((
            id,
            EventType {
                code: EventCode::parse(&code)
                    .map_err(|_| StoreError::Internal(format!("stored event type {code}")))?,
                name,
                retention_days: retention.clamp(1, i64::from(u32::MAX)) as u32,
                enabled,
                properties: parse_properties_text(&props),
                created_at,
            },
        ));
    }
    Ok(out)
}

pub fn registry(conn: &Connection, app: AppId) -> Result<EventTypes, StoreError> {
    Ok(EventTypes::new(
        event_types(conn, app)?
            .into_iter()
            .map(|(_, t)| t)
            .collect(),
    ))
}

fn type_row(
    conn: &Connection,
    app: AppId,
    code: &EventCode,
) -> Result<(i64, EventType), StoreError> {
    event_types(conn, app)?
        .into_iter()
        .find(|(_, t)| t.code == *code)
        .ok_or_else(|| StoreError::NotFound(format!("event type \"{code}\"")))
}

pub fn create_type(w: &mut WriteCtx, app: AppId, t: &EventType) -> Result<EventType, StoreError> {
    let c = &w.conn;
    rows::get_app(c, app)?;
    let existing = event_types(c, app)?;
    if existing.iter().any(|(_, e)| e.code == t.code) {
        return Err(StoreError::Conflict(format!(
            "event type \"{}\" exists already",
            t.code
        )));
    }
    if existing.len() >= MAX_EVENT_TYPES_PER_APP {
        return Err(StoreError::Limit(format!(
            "an application registers at most {MAX_EVENT_TYPES_PER_APP} event types"
        )));
    }
    c.execute(
        "INSERT INTO event_types (app_id, code, name, retention_days, enabled, properties, created_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        params![
            app.0,
            t.code.as_str(),
            t.name,
            i64::from(t.retention_days),
            t.enabled,
            properties_text(&t.properties),
            t.created_at
        ],
    )?;
    let schema = w.schema(app)?;
    w.emit(Change::Schema { app, schema });
    Ok(t.clone())
}

pub fn update_type(
    w: &mut WriteCtx,
    app: AppId,
    code: &EventCode,
    patch: &EventTypePatch,
) -> Result<EventType, StoreError> {
    let c = &w.conn;
    rows::get_app(c, app)?;
    let (id, mut t) = type_row(c, app, code)?;
    if let Some(name) = &patch.name {
        t.name = name.clone();
    }
    let shorter = patch
        .retention_days
        .is_some_and(|days| days < t.retention_days);
    if let Some(days) = patch.retention_days {
        t.retention_days = days;
    }
    if let Some(enabled) = patch.enabled {
        t.enabled = enabled;
    }
    if let Some(props) = &patch.properties {
        t.properties = props.clone();
    }
    c.execute(
        "UPDATE event_types SET name = ?2, retention_days = ?3, enabled = ?4, properties = ?5 WHERE id = ?1",
        params![
            id,
            t.name,
            i64::from(t.retention_days),
            t.enabled,
            properties_text(&t.properties)
        ],
    )?;
    if shorter {
        // Blocks holding its events may now expire sooner than they say. (A longer
        // retention needs nothing: a block looked at too early is put right then.)
        refresh_expiry(c, app, id)?;
    }
    let schema = w.schema(app)?;
    w.emit(Change::Schema { app, schema });
    Ok(t)
}

pub fn delete_type(w: &mut WriteCtx, app: AppId, code: &EventCode) -> Result<u64, StoreError> {
    let c = &w.conn;
    rows::get_app(c, app)?;
    let (id, t) = type_row(c, app, code)?;
    let fields: Vec<_> = rows::field_stats(c, app)?
        .into_iter()
        .map(|s| s.field)
        .collect();
    crate::live::refuse_type_in_use(&fields, code)?;
    let removed = delete_events_of_type(c, app, id)?;
    c.execute("DELETE FROM event_types WHERE id = ?1", [id])?;
    w.emit(Change::EventsRemoved {
        app,
        event: t.code,
        before: i64::MAX,
    });
    let schema = w.schema(app)?;
    w.emit(Change::Schema { app, schema });
    Ok(removed)
}

/// Customers an events writer remembers by customerId (about 100 bytes each).
const CUSTOMER_CACHE: usize = 200_000;

/// Writes events in the writer's transaction, remembering the customers they created and
/// the ids they stored, for the change log.
pub struct EventWriter {
    app: AppId,
    /// The application's types: row id and whether enabled (a handful, searched in order).
    types: Vec<(EventCode, i64, bool)>,
    /// Retention by type row id.
    retention: Retention,
    customers: HashMap<CustomerId, i64>,
    /// Holders of identities, by identity (bounded like `customers`).
    holders: HashMap<unico_core::Identity, i64>,
    /// Whether the application has aliases, once asked.
    aliases: Option<bool>,
    /// Events resolved and not stored yet (see [`EventWriter::flush`]).
    pending: Vec<Pending>,
    /// The hashes of the pending events' keys (a key not among them is not pending),
    /// gathered when first asked after a flush: a feed whose customers all exist never
    /// asks, and hashed no key.
    pending_keys: Option<std::collections::HashSet<u64, foldhash::fast::FixedState>>,
    /// Types found for the events being written (their index in `types`); cleared for
    /// each call, whose events keep their codes alive.
    seen_types: unico_core::SeenCodes<usize>,
    /// The id the next event stored gets.
    next_id: i64,
    /// A block being encoded.
    block: Vec<u8>,
    /// The customer of the last event written by customerId, and its row id.
    last: Option<(CustomerId, i64)>,
    /// Customers created, in order (kept only while `keep_created`).
    created: Vec<unico_core::Customer>,
    created_count: u64,
    /// Every customer created, as ascending id ranges (for the log past the kept ones).
    created_ranges: IdRanges,
    keep_created: bool,
    /// The ids stored, as ranges (the ids of one writer's inserts grow, so a large import
    /// is a handful of ranges, not millions of ids).
    stored: IdRanges,
    /// Each event stored (its place in the events written, id and customer), kept when
    /// the events are offered to the log's followers (`insert`, not an import).
    kept: Option<Vec<(usize, i64, i64)>>,
    deltas: CountDeltas,
    /// Unknown types are registered on first sight (the application's setting).
    auto_register: bool,
    /// A type was registered by this writer: the schema changed.
    registered: bool,
}

impl EventWriter {
    /// A writer for `app`; `keep_created` false forgets created customers beyond counting
    /// them (a large import is logged as one bulk change).
    pub fn new(c: &Connection, app: AppId, keep_created: bool) -> Result<Self, StoreError> {
        rows::get_app(c, app)?;
        let registered = event_types(c, app)?;
        let retention = Retention::of(&registered);
        let types = registered
            .into_iter()
            .map(|(id, t)| (t.code, id, t.enabled))
            .collect();
        let auto_register: Option<String> = c
            .query_row(
                "SELECT value FROM meta WHERE key = ?1",
                [crate::events::auto_register_key(app)],
                |r| r.get(0),
            )
            .optional()?;
        Ok(Self {
            app,
            types,
            retention,
            auto_register: auto_register.as_deref() == Some("true"),
            registered: false,
            customers: HashMap::new(),
            holders: HashMap::new(),
            pending: Vec::new(),
            pending_keys: None,
            seen_types: unico_core::SeenCodes::default(),
            next_id: next_id(c)?,
            block: Vec::new(),
            last: None,
            aliases: None,
            created: Vec::new(),
            created_count: 0,
            created_ranges: IdRanges::default(),
            keep_created,
            stored: IdRanges::default(),
            kept: None,
            deltas: CountDeltas::default(),
        })
    }

    /// Writes `events` in order: each item's outcome into `out` (as long as `events`), an
    /// unregistered or disabled type (`Invalid`) or an identity nobody holds (`NotFound`)
    /// as that item's error (nothing written for it); any other error from the database
    /// is returned. Events are stored [`FLUSH_EVENTS`] at a time at most.
    pub fn write_all(
        &mut self,
        c: &Connection,
        events: &[NewEvent],
        now: i64,
        out: &mut [Option<Result<EventOutcome, StoreError>>],
    ) -> Result<(), StoreError> {
        self.seen_types.clear();
        for (i, e) in events.iter().enumerate() {
            match self.resolve(c, events, e, now, out) {
                Ok(Resolved::Done(outcome)) => out[i] = Some(Ok(outcome)),
                Ok(Resolved::Row {
                    customer,
                    type_id,
                    customer_created,
                }) => {
                    if let (Some(keys), Some(key)) = (&mut self.pending_keys, &e.event_id) {
                        keys.insert(key_hash(key));
                    }
                    self.pending.push(Pending {
                        index: i,
                        customer,
                        type_id,
                        customer_created,
                    });
                    if self.pending.len() >= FLUSH_EVENTS {
                        self.flush(c, events, out)?;
                    }
                }
                Err(e @ (StoreError::Invalid(_) | StoreError::NotFound(_))) => {
                    out[i] = Some(Err(e));
                }
                Err(e) => return Err(e),
            }
        }
        self.flush(c, events, out)
    }

    /// Finds (or creates) the customer and the type of event `e` of `events`; a duplicate
    /// found before its customer would be created is done already.
    fn resolve(
        &mut self,
        c: &Connection,
        events: &[NewEvent],
        e: &NewEvent,
        now: i64,
        out: &mut [Option<Result<EventOutcome, StoreError>>],
    ) -> Result<Resolved, StoreError> {
        let app = self.app;
        if self.auto_register && self.type_of(&e.event_type).is_none() {
            let count: i64 = c
                .prepare_cached("SELECT count(*) FROM event_types WHERE app_id = ?1")?
                .query_row([app.0], |r| r.get(0))?;
            if count as usize >= MAX_EVENT_TYPES_PER_APP {
                return Err(StoreError::Invalid(format!(
                    "the event type \"{}\" would be registered automatically, but the application holds the most event types it may ({MAX_EVENT_TYPES_PER_APP})",
                    e.event_type
                )));
            }
            c.prepare_cached(
                "INSERT INTO event_types (app_id, code, name, retention_days, enabled, properties, created_at)
                 VALUES (?1, ?2, ?2, ?3, 1, '', ?4)",
            )?
            .execute(params![
                app.0,
                e.event_type.as_str(),
                i64::from(unico_core::event::DEFAULT_RETENTION_DAYS),
                now
            ])?;
            let id = c.last_insert_rowid();
            self.types.push((e.event_type.clone(), id, true));
            self.retention
                .set(id, unico_core::event::DEFAULT_RETENTION_DAYS);
            self.registered = true;
        }
        let Some((type_id, enabled)) = self.type_of(&e.event_type) else {
            return Err(StoreError::Invalid(format!(
                "the event type \"{}\" is not registered in this application; register it first (POST …/event-types)",
                e.event_type
            )));
        };
        if !enabled {
            return Err(StoreError::Invalid(format!(
                "the event type \"{}\" is disabled; enable it to store its events",
                e.event_type
            )));
        }
        // The events waiting are flushed before this is asked: a key held is either an
        // event stored or one whose event is gone.
        let duplicate_of = |key: &str| -> Result<Option<i64>, StoreError> {
            match key_holder(c, app, key)? {
                Some(id) if event_exists(c, id)? => Ok(Some(id)),
                _ => Ok(None),
            }
        };
        let duplicate = |id| EventOutcome {
            id,
            duplicate: true,
            customer_created: false,
        };
        let mut customer_created = false;
        let customer = if let Some(by) = &e.by_identity {
            match self.holder(c, &by.identity)? {
                Some(id) => id,
                None => {
                    let Some(anonymous) = &by.anonymous else {
                        return Err(StoreError::NotFound(format!(
                            "a customer holding the identity {} {} (link it to a customer first, or turn on anonymous profiles for the application)",
                            by.identity.kind,
                            unico_core::value::excerpt(by.identity.value())
                        )));
                    };
                    // A duplicate creates nobody: a key among the events waiting is
                    // looked for once they are written.
                    self.flush_if_pending(c, events, e, out)?;
                    if let Some(key) = &e.event_id
                        && let Some(id) = duplicate_of(key)?
                    {
                        return Ok(Resolved::Done(duplicate(id)));
                    }
                    let (outcome, _) = CustomerWriter::new(c)?.write(
                        c,
                        app,
                        anonymous,
                        &[],
                        now,
                        Mode::Upsert,
                        &mut self.deltas,
                    )?;
                    let id = outcome.customer.id;
                    if outcome.created {
                        customer_created = true;
                        self.created_count += 1;
                        self.created_ranges.push(id);
                        super::identities::mark_anonymous(c, id)?;
                        if self.keep_created {
                            self.created.push(outcome.customer);
                        }
                    }
                    super::identities::attach(c, app, id, &by.identity, now)?;
                    self.holders.insert(by.identity.clone(), id);
                    id
                }
            }
        } else {
            // A feed groups a customer's events (a backfill exported customer by customer,
            // a client's batch): the customer of the event before costs no lookup.
            let last = self
                .last
                .as_ref()
                .filter(|(cid, _)| *cid == e.customer_id)
                .map(|&(_, id)| id);
            let id = match last.or_else(|| self.customers.get(&e.customer_id).copied()) {
                Some(id) => id,
                None => {
                    let mut found: Option<i64> = c
                        .prepare_cached(
                            "SELECT id FROM customers WHERE app_id = ?1 AND customer_id = ?2",
                        )?
                        .query_row(params![app.0, e.customer_id.as_str()], |r| r.get(0))
                        .optional()?;
                    if found.is_none() && self.has_aliases(c)? {
                        found = rows::find_customer(c, app, &e.customer_id)?.map(|s| s.id);
                    }
                    let id = match found {
                        Some(id) => id,
                        None => {
                            // A duplicate creates nobody: look for its key before the
                            // customer (once the events waiting are written, if it
                            // may be among them).
                            self.flush_if_pending(c, events, e, out)?;
                            if let Some(key) = &e.event_id
                                && let Some(id) = duplicate_of(key)?
                            {
                                return Ok(Resolved::Done(duplicate(id)));
                            }
                            let (outcome, _) = CustomerWriter::new(c)?.write(
                                c,
                                app,
                                &e.customer_id,
                                &[],
                                now,
                                Mode::Create,
                                &mut self.deltas,
                            )?;
                            customer_created = true;
                            self.created_count += 1;
                            let id = outcome.customer.id;
                            self.created_ranges.push(id);
                            if self.keep_created {
                                self.created.push(outcome.customer);
                            }
                            id
                        }
                    };
                    // Bounded: past it, a customer is looked up again (one index probe).
                    if self.customers.len() >= CUSTOMER_CACHE {
                        self.customers.clear();
                    }
                    self.customers.insert(e.customer_id.clone(), id);
                    id
                }
            };
            if last.is_none() {
                self.last = Some((e.customer_id.clone(), id));
            }
            id
        };
        Ok(Resolved::Row {
            customer,
            type_id,
            customer_created,
        })
    }

    /// Stores the events waiting if `e`'s key may be among theirs (a new customer's first
    /// event used to flush them always: one small flush per customer when a feed creates
    /// its customers).
    fn flush_if_pending(
        &mut self,
        c: &Connection,
        events: &[NewEvent],
        e: &NewEvent,
        out: &mut [Option<Result<EventOutcome, StoreError>>],
    ) -> Result<(), StoreError> {
        let Some(key) = &e.event_id else {
            return Ok(());
        };
        let pending = &self.pending;
        let keys = self.pending_keys.get_or_insert_with(|| {
            pending
                .iter()
                .filter_map(|p| events[p.index].event_id.as_deref())
                .map(key_hash)
                .collect()
        });
        if keys.contains(&key_hash(key)) {
            self.flush(c, events, out)
        } else {
            Ok(())
        }
    }

    /// Stores the events waiting: each keyed one first claims its key (a key held by a
    /// stored event makes it a duplicate of that event), then each customer's events
    /// become one block. Ids are given in the events' order.
    fn flush(
        &mut self,
        c: &Connection,
        events: &[NewEvent],
        out: &mut [Option<Result<EventOutcome, StoreError>>],
    ) -> Result<(), StoreError> {
        if self.pending.is_empty() {
            return Ok(());
        }
        let pending = std::mem::take(&mut self.pending);
        self.pending_keys = None;
        let app = self.app.0;
        // Event `j` of the flush gets id `first + j` (a duplicate leaves its id unused).
        let first = self.next_id;
        let id_of = |j: usize| first + j as i64;
        // Keys are claimed many to a statement; only when a statement claims fewer than
        // it was given are its keys looked at one by one.
        let keyed: Vec<usize> = (0..pending.len())
            .filter(|&j| events[pending[j].index].event_id.is_some())
            .collect();
        let mut duplicate_of: FastMap<usize, i64> = FastMap::default();
        let mut rest = &keyed[..];
        // The claim of the most keys, taken from the cache once for the whole flush.
        let mut full: Option<rusqlite::CachedStatement<'_>> = None;
        while !rest.is_empty() {
            let rows = MAX_KEYS_PER_INSERT.min(1 << rest.len().ilog2());
            let (chunk, tail) = rest.split_at(rows);
            rest = tail;
            let mut fewer;
            let claim = if rows == MAX_KEYS_PER_INSERT {
                match &mut full {
                    Some(statement) => statement,
                    None => full.insert(c.prepare_cached(claim_sql(rows))?),
                }
            } else {
                fewer = c.prepare_cached(claim_sql(rows))?;
                &mut fewer
            };
            for (k, &j) in chunk.iter().enumerate() {
                let key = events[pending[j].index].event_id.as_deref();
                claim.raw_bind_parameter(k * 3 + 1, app)?;
                claim.raw_bind_parameter(k * 3 + 2, key)?;
                claim.raw_bind_parameter(k * 3 + 3, id_of(j))?;
            }
            if claim.raw_execute()? == chunk.len() {
                continue;
            }
            for &j in chunk {
                let key = events[pending[j].index]
                    .event_id
                    .as_deref()
                    .unwrap_or_default();
                let held = key_holder(c, self.app, key)?
                    .ok_or_else(|| StoreError::Internal("an event key vanished".into()))?;
                if held == id_of(j) {
                    continue;
                }
                // Given in this flush, or an event still stored: a duplicate. A key
                // whose event is gone (its customer deleted) is given to this one.
                if held >= first || event_exists(c, held)? {
                    duplicate_of.insert(j, held);
                } else {
                    c.prepare_cached(
                        "UPDATE event_keys SET id = ?3 WHERE app_id = ?1 AND key = ?2",
                    )?
                    .execute(params![app, key, id_of(j)])?;
                }
            }
        }
        // Per customer, in order of first appearance: the pending events stored.
        let mut groups: Vec<(i64, Vec<(usize, i64)>)> = Vec::new();
        let mut group_of: FastMap<i64, usize> = FastMap::default();
        for (j, p) in pending.iter().enumerate() {
            if let Some(&held) = duplicate_of.get(&j) {
                out[p.index] = Some(Ok(EventOutcome {
                    id: held,
                    duplicate: true,
                    customer_created: false,
                }));
                continue;
            }
            let id = id_of(j);
            out[p.index] = Some(Ok(EventOutcome {
                id,
                duplicate: false,
                customer_created: p.customer_created,
            }));
            self.stored.push(id);
            if let Some(kept) = &mut self.kept {
                kept.push((p.index, id, p.customer));
            }
            let g = match group_of.get(&p.customer) {
                Some(&g) => g,
                None => {
                    groups.push((p.customer, Vec::new()));
                    group_of.insert(p.customer, groups.len() - 1);
                    groups.len() - 1
                }
            };
            groups[g].1.push((j, id));
        }
        self.next_id = id_of(pending.len());
        let mut reminder = Reminder::default();
        let mut insert = c.prepare_cached(INSERT_BLOCK)?;
        for (customer, members) in &groups {
            let texts: Vec<Option<std::borrow::Cow<'_, str>>> = members
                .iter()
                .map(|&(j, _)| {
                    let props = &events[pending[j].index].properties;
                    (!props.is_empty()).then(|| props.json_text())
                })
                .collect();
            let stored: Vec<_> = members
                .iter()
                .zip(&texts)
                .map(|(&(j, id), text)| {
                    let p = &pending[j];
                    let e = &events[p.index];
                    event_block::Stored {
                        id,
                        ts: e.timestamp,
                        type_id: p.type_id,
                        channel: e.channel.as_str(),
                        device_id: e.device_id.as_deref(),
                        key: e.event_id.as_deref(),
                        properties: text.as_deref(),
                    }
                })
                .collect();
            insert_block(
                &mut insert,
                app,
                *customer,
                &stored,
                &self.retention,
                &mut self.block,
                &mut reminder,
            )?;
        }
        reminder.write(c, app)?;
        save_next_id(c, self.next_id)?;
        self.pending = pending;
        self.pending.clear();
        Ok(())
    }

    /// The row id of type `code` and whether it is enabled.
    fn type_of(&mut self, code: &EventCode) -> Option<(i64, bool)> {
        let types = &self.types;
        let t = self
            .seen_types
            .get_or(code, || types.iter().position(|(c, _, _)| c == code))?;
        let (_, id, enabled) = &types[t];
        Some((*id, *enabled))
    }

    /// The customer holding `identity`, remembered once found.
    fn holder(
        &mut self,
        c: &Connection,
        identity: &unico_core::Identity,
    ) -> Result<Option<i64>, StoreError> {
        if let Some(&id) = self.holders.get(identity) {
            return Ok(Some(id));
        }
        let found: Option<i64> = c
            .prepare_cached(
                "SELECT customer FROM identities WHERE app_id = ?1 AND kind = ?2 AND value = ?3",
            )?
            .query_row(
                params![self.app.0, identity.kind.as_str(), identity.value()],
                |r| r.get(0),
            )
            .optional()?;
        if let Some(id) = found {
            if self.holders.len() >= CUSTOMER_CACHE {
                self.holders.clear();
            }
            self.holders.insert(identity.clone(), id);
        }
        Ok(found)
    }

    fn has_aliases(&mut self, c: &Connection) -> Result<bool, StoreError> {
        if let Some(any) = self.aliases {
            return Ok(any);
        }
        let any = super::identities::has_aliases(c, self.app)?;
        self.aliases = Some(any);
        Ok(any)
    }

    pub fn created_count(&self) -> u64 {
        self.created_count
    }

    /// Flushes the value counts and announces what was written: each created customer
    /// (or one bulk change when they were too many to keep), then the events stored, as
    /// id ranges however many they are: followers read them from the store in batches
    /// instead of rebuilding the application from a scan.
    pub fn finish(mut self, w: &mut WriteCtx) -> Result<(), StoreError> {
        super::writes::flush_counts(std::mem::take(&mut self.deltas), &w.conn)?;
        let app = self.app;
        if self.registered {
            let schema = w.schema(app)?;
            w.emit(Change::Schema { app, schema });
        }
        if self.keep_created {
            for customer in self.created {
                w.emit(Change::Customer {
                    app,
                    customer,
                    before: Before::Created,
                });
            }
        }
        if !self.keep_created && self.created_count > 0 {
            w.emit(Change::Customers {
                app,
                ranges: std::mem::take(&mut self.created_ranges).into_ranges(),
            });
        }
        if !self.stored.is_empty() {
            w.emit(Change::Events {
                app,
                ranges: std::mem::take(&mut self.stored).into_ranges(),
            });
        }
        Ok(())
    }
}

/// Most events a writer holds before storing them: every block's ids lie within
/// [`BLOCK_SPAN`] of its base (the smallest), since one flush gives consecutive ids.
const FLUSH_EVENTS: usize = 8192;
/// Every event of a block has an id in `base..base + BLOCK_SPAN`: the blocks holding ids
/// from `from` on start at `from - BLOCK_SPAN + 1` or later.
pub(super) const BLOCK_SPAN: i64 = FLUSH_EVENTS as i64;

/// Most keys claimed by one `INSERT` statement (its own work is paid once for all).
const MAX_KEYS_PER_INSERT: usize = 32;

/// The claim of `rows` keys (a power of two up to [`MAX_KEYS_PER_INSERT`]).
fn claim_sql(rows: usize) -> &'static str {
    static SQL: std::sync::OnceLock<Vec<String>> = std::sync::OnceLock::new();
    let all = SQL.get_or_init(|| {
        (0..=MAX_KEYS_PER_INSERT.ilog2())
            .map(|power| {
                format!(
                    "INSERT OR IGNORE INTO event_keys (app_id, key, id) VALUES {}",
                    vec!["(?, ?, ?)"; 1 << power].join(", ")
                )
            })
            .collect()
    });
    debug_assert!(rows.is_power_of_two() && rows <= MAX_KEYS_PER_INSERT);
    &all[rows.ilog2() as usize]
}

/// The id the next event stored gets (ids are never given twice, even once deleted).
fn next_id(c: &Connection) -> Result<i64, StoreError> {
    let id: Option<i64> = c
        .query_row(
            "SELECT CAST(value AS INTEGER) FROM meta WHERE key = 'next_event_id'",
            [],
            |r| r.get(0),
        )
        .optional()?;
    Ok(id.unwrap_or(1).max(1))
}

fn save_next_id(c: &Connection, id: i64) -> Result<(), StoreError> {
    c.prepare_cached("INSERT OR REPLACE INTO meta (key, value) VALUES ('next_event_id', ?1)")?
        .execute([id.to_string()])?;
    Ok(())
}

/// The id of the event that holds `key` in the application (possibly one since removed
/// with its customer: see [`event_exists`]).
fn key_holder(c: &Connection, app: AppId, key: &str) -> Result<Option<i64>, StoreError> {
    Ok(
        c.prepare_cached("SELECT id FROM event_keys WHERE app_id = ?1 AND key = ?2")?
            .query_row(params![app.0, key], |r| r.get(0))
            .optional()?,
    )
}

/// Whether event `id` is stored. Keys of events removed with their customer (a cascade
/// from `customers`) stay behind until their key comes again; this tells them apart.
fn event_exists(c: &Connection, id: i64) -> Result<bool, StoreError> {
    let mut found = false;
    each_block(
        c,
        "SELECT id, data FROM event_blocks WHERE id BETWEEN ?1 AND ?2 AND last_id >= ?2",
        params![id.saturating_sub(BLOCK_SPAN - 1), id],
        &mut |_, d| {
            while let Some((e, _)) = d.next()? {
                found |= e.id == id;
            }
            Ok(())
        },
    )?;
    Ok(found)
}

/// Hands each block `sql` selects (its columns `id, data`) to `visit`: its base and a
/// decoder over its events.
fn each_block(
    c: &Connection,
    sql: &str,
    args: impl rusqlite::Params,
    visit: &mut dyn FnMut(i64, &mut event_block::Decoder<'_>) -> Result<(), StoreError>,
) -> Result<(), StoreError> {
    let mut stmt = c.prepare_cached(sql)?;
    let mut rows_iter = stmt.query(args)?;
    while let Some(row) = rows_iter.next()? {
        let base: i64 = row.get(0)?;
        visit(base, &mut event_block::Decoder::new(base, blob(row, 1)?)?)?;
    }
    Ok(())
}

/// Inserts a block: its base, application, customer, last id, earliest and latest time,
/// number of events, expiry and blob.
const INSERT_BLOCK: &str = "INSERT INTO event_blocks (id, app_id, customer, last_id, min_ts, max_ts, events, expires_at, data)
     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)";

/// Stores `events` (ascending ids, their base the first) as one block of `customer`
/// with `insert` ([`INSERT_BLOCK`], prepared once for many blocks), encoded in
/// `scratch`; nothing for no events.
fn insert_block(
    insert: &mut rusqlite::Statement<'_>,
    app: i64,
    customer: i64,
    events: &[event_block::Stored<'_>],
    retention: &Retention,
    scratch: &mut Vec<u8>,
    reminder: &mut Reminder,
) -> Result<(), StoreError> {
    let Some(base) = events.first().map(|e| e.id) else {
        return Ok(());
    };
    let Some(summary) = event_block::encode(base, events, scratch) else {
        return Ok(());
    };
    let expires_at = retention.expiry(events);
    reminder.note(base, expires_at);
    insert.execute(params![
        base,
        app,
        customer,
        summary.last_id,
        summary.min_ts,
        summary.max_ts,
        summary.count as i64,
        expires_at,
        &scratch[..]
    ])?;
    Ok(())
}

/// Retention's reminder of a run of blocks just written or changed: the earliest time an
/// event among them expires and the bounds of their ids, one `event_expiry` row for the
/// run ([`Reminder::write`]). Every block with an event that can expire is covered by a
/// reminder due no later than the block's own `expires_at`: a write of blocks leaves one,
/// a change that can bring a block's expiry forward (a retention shortened) leaves one,
/// and retention, having looked through a run that came due, leaves one for what stays
/// of it. Removing events from a block needs none: its stamp can only move later. A
/// reminder may outlive its blocks (deleted with their customer), or be due before any of
/// them is: looking through its run then finds nothing to remove.
#[derive(Debug)]
struct Reminder {
    at: i64,
    lo: i64,
    hi: i64,
}

impl Default for Reminder {
    fn default() -> Self {
        Self {
            at: i64::MAX,
            lo: i64::MAX,
            hi: i64::MIN,
        }
    }
}

impl Reminder {
    /// Takes in block `base`, whose first event expires at `expires_at`.
    fn note(&mut self, base: i64, expires_at: i64) {
        if expires_at == i64::MAX {
            return;
        }
        self.at = self.at.min(expires_at);
        self.lo = self.lo.min(base);
        self.hi = self.hi.max(base);
    }

    /// Writes the reminder (nothing if no block noted can expire).
    fn write(self, c: &Connection, app: i64) -> Result<(), StoreError> {
        if self.at == i64::MAX {
            return Ok(());
        }
        c.prepare_cached(
            "INSERT INTO event_expiry (app_id, expires_at, lo, hi) VALUES (?1, ?2, ?3, ?4)
             ON CONFLICT (app_id, expires_at, lo) DO UPDATE SET hi = max(hi, excluded.hi)",
        )?
        .execute(params![app, self.at, self.lo, self.hi])?;
        Ok(())
    }
}

fn blob<'r>(row: &'r Row<'_>, i: usize) -> Result<&'r [u8], StoreError> {
    Ok(row.get_ref(i)?.as_blob().map_err(rusqlite::Error::from)?)
}

/// An event resolved to its row, waiting for the next insert.
/// A key's hash, for [`EventWriter::pending_keys`] (a collision costs only a flush).
fn key_hash(key: &str) -> u64 {
    use std::hash::BuildHasher;
    // Fixed seed: only this process compares these hashes, and a collision costs a flush.
    foldhash::fast::FixedState::with_seed(0x0075_6e69_636f).hash_one(key)
}

struct Pending {
    /// Its place in the events being written.
    index: usize,
    customer: i64,
    type_id: i64,
    customer_created: bool,
}

/// What resolving an event gave.
enum Resolved {
    /// Its outcome already: a duplicate found before creating its customer.
    Done(EventOutcome),
    /// Its row, to insert.
    Row {
        customer: i64,
        type_id: i64,
        customer_created: bool,
    },
}

/// Writes `events` in the writer's transaction; logs the customers they created and then
/// one [`Change::Events`] with the ids stored.
pub fn insert(
    w: &mut WriteCtx,
    app: AppId,
    events: Vec<NewEvent>,
    now: i64,
) -> Result<Vec<Result<EventOutcome, StoreError>>, StoreError> {
    let mut writer = EventWriter::new(&w.conn, app, true)?;
    writer.kept = Some(Vec::with_capacity(events.len()));
    let mut out: Vec<Option<Result<EventOutcome, StoreError>>> = Vec::new();
    out.resize_with(events.len(), || None);
    // An item's own problem (its type, its identity) fails the item, not the write.
    writer.write_all(&w.conn, &events, now, &mut out)?;
    let kept = writer.kept.take().unwrap_or_default();
    writer.finish(w)?;
    if let Some(staged) = stage(app, events, kept) {
        w.stage_recent(staged);
    }
    out.into_iter()
        .map(|o| o.ok_or_else(|| StoreError::Internal("an event got no outcome".into())))
        .collect()
}

/// The events an `insert` stored, as the log's followers would read them back: `kept`
/// holds each stored event's place in `events`, id and customer, places ascending (the
/// writer stores events in order).
fn stage(
    app: AppId,
    events: Vec<NewEvent>,
    kept: Vec<(usize, i64, i64)>,
) -> Option<recent::Staged> {
    let lo = kept.iter().map(|k| k.1).min()?;
    let hi = kept.iter().map(|k| k.1).max()?;
    let mut kept = kept.into_iter().peekable();
    let mut staged: Vec<Event> = Vec::with_capacity(kept.len());
    for (i, e) in events.into_iter().enumerate() {
        let Some(&(index, id, customer)) = kept.peek() else {
            break;
        };
        if index != i {
            continue;
        }
        kept.next();
        staged.push(Event {
            id,
            customer,
            event_id: e.event_id,
            event_type: e.event_type,
            channel: e.channel,
            device_id: e.device_id,
            timestamp: e.timestamp,
            properties: e.properties,
        });
    }
    staged.sort_unstable_by_key(|e| e.id);
    Some(recent::Staged {
        app,
        lo,
        hi,
        events: staged.into(),
    })
}

/// Runs an import of events inside the writer under one savepoint, released only if the
/// feed ends with `keep: true`. An event of a type not registered (or disabled) fails the
/// import: the feed checks types before, so only a type changed meanwhile gets here.
pub fn import(
    w: &mut WriteCtx,
    app: AppId,
    batches: Box<dyn Iterator<Item = EventBatch> + Send>,
    now: i64,
    written: &std::sync::atomic::AtomicU64,
    incremental: u64,
    mut sink: Option<Box<dyn EventSink>>,
) -> Result<ImportCounts, StoreError> {
    use std::sync::atomic::Ordering;
    w.conn.execute_batch("SAVEPOINT event_import")?;
    // Created customers are kept for the log up to `incremental`; past it one bulk change.
    let mut writer = EventWriter::new(&w.conn, app, true)?;
    if sink.is_some() {
        writer.kept = Some(Vec::new());
    }
    let mut duplicates = 0u64;
    // Batches written go to the sink, or are freed on a thread of their own: freeing a
    // batch's strings is about a twentieth of the writer's time, and the writer holds up
    // every other write. Should the thread not start, its receiver is dropped with it,
    // every send fails and the batch comes back in the error, freed here.
    let (free_tx, free_rx) = std::sync::mpsc::channel::<Vec<NewEvent>>();
    if sink.is_none() {
        let _ = std::thread::Builder::new()
            .name("unico-events-free".into())
            .spawn(move || free_rx.iter().for_each(drop));
    }
    let run = (|| -> Result<bool, StoreError> {
        let mut out = Vec::new();
        for batch in batches {
            match batch {
                EventBatch::Items(items) => {
                    out.clear();
                    out.resize_with(items.len(), || None);
                    writer.write_all(&w.conn, &items, now, &mut out)?;
                    for outcome in out.drain(..) {
                        match outcome {
                            Some(Ok(o)) => duplicates += u64::from(o.duplicate),
                            Some(Err(e)) => return Err(e),
                            None => {
                                return Err(StoreError::Internal(
                                    "an imported event got no outcome".into(),
                                ));
                            }
                        }
                    }
                    if writer.keep_created && writer.created_count > incremental {
                        writer.keep_created = false;
                        writer.created = Vec::new();
                    }
                    written.fetch_add(items.len() as u64, Ordering::Relaxed);
                    match (&mut sink, &mut writer.kept) {
                        (Some(sink), Some(kept)) => {
                            let stored: Vec<StoredEvent> = kept
                                .drain(..)
                                .map(|(index, id, customer)| StoredEvent {
                                    index: index as u32,
                                    id,
                                    customer,
                                })
                                .collect();
                            sink.written(items, stored);
                        }
                        _ => {
                            let _ = free_tx.send(items);
                        }
                    }
                }
                EventBatch::End { keep } => return Ok(keep),
            }
        }
        Ok(false)
    })();
    match run {
        Ok(true) => {
            let created = writer.created_count();
            // The interval of the ids stored: the `Events` change's, first to last.
            let span = writer.stored.span();
            writer.finish(w)?;
            if let Some((lo, hi)) = span
                && let Some(payload) = sink.and_then(|sink| sink.finish())
            {
                w.stage_prepared(super::recent::Prepared {
                    app,
                    lo,
                    hi,
                    payload,
                });
            }
            w.conn.execute_batch("RELEASE event_import")?;
            Ok(ImportCounts {
                created,
                updated: duplicates,
                kept: true,
            })
        }
        other => {
            w.conn
                .execute_batch("ROLLBACK TO event_import; RELEASE event_import")?;
            written.store(0, Ordering::Relaxed);
            other.map(|_| ImportCounts::default())
        }
    }
}

/// Turns stored events back into [`Event`]s: the application's types by row id, and the
/// few distinct type codes and channels parsed once and shared (reading millions of
/// events back should not allocate two strings per event for them).
struct Reader {
    types: HashMap<i64, EventCode>,
    names: unico_core::EventNames,
}

fn unreadable(what: &str) -> StoreError {
    StoreError::Internal(format!("a stored event's {what} is unreadable"))
}

impl Reader {
    fn new(conn: &Connection, app: AppId) -> Result<Self, StoreError> {
        Ok(Self {
            types: event_types(conn, app)?
                .into_iter()
                .map(|(id, t)| (id, t.code))
                .collect(),
            names: unico_core::EventNames::default(),
        })
    }

    fn type_id(&self, code: &EventCode) -> Option<i64> {
        self.types
            .iter()
            .find(|(_, c)| *c == code)
            .map(|(&id, _)| id)
    }

    fn event(
        &mut self,
        customer: i64,
        e: &event_block::Stored<'_>,
        key: Option<&str>,
    ) -> Result<Event, StoreError> {
        let event_type = self
            .types
            .get(&e.type_id)
            .cloned()
            .ok_or_else(|| unreadable("type"))?;
        let channel = self
            .names
            .channel(e.channel)
            .ok_or_else(|| unreadable("channel"))?;
        Ok(Event {
            id: e.id,
            customer,
            event_id: key.map(str::to_owned),
            event_type,
            channel,
            device_id: e.device_id.map(str::to_owned),
            timestamp: e.ts,
            properties: match e.properties {
                // Kept as text: the engine reads its members straight from it, and a tree
                // is built only if asked for (a timeline page).
                Some(text) if text.starts_with('{') && text.ends_with('}') => {
                    Properties::from_stored_text(text.to_owned())
                }
                Some(_) => return Err(unreadable("properties")),
                None => Properties::default(),
            },
        })
    }

    /// Appends the events of a block row (`id, customer, data`) for which `keep` holds.
    fn block(
        &mut self,
        row: &Row<'_>,
        out: &mut Vec<Event>,
        keep: &dyn Fn(&event_block::Stored<'_>) -> bool,
    ) -> Result<(), StoreError> {
        let customer: i64 = row.get(1)?;
        let mut d = event_block::Decoder::new(row.get(0)?, blob(row, 2)?)?;
        out.reserve(d.remaining().min(BLOCK_SPAN as usize));
        while let Some((e, key)) = d.next()? {
            if keep(&e) {
                out.push(self.event(customer, &e, key)?);
            }
        }
        Ok(())
    }
}

/// Newest first: time descending, then id descending.
fn newest_first(a: &Event, b: &Event) -> std::cmp::Ordering {
    (b.timestamp, b.id).cmp(&(a.timestamp, a.id))
}

pub fn timeline(
    conn: &Connection,
    app: AppId,
    customer_id: &CustomerId,
    q: &EventQuery,
) -> Result<EventPage, StoreError> {
    let customer =
        rows::find_customer(conn, app, customer_id)?.ok_or_else(|| rows::not_found(customer_id))?;
    let mut reader = Reader::new(conn, app)?;
    let types: Vec<i64> = q.types.iter().filter_map(|t| reader.type_id(t)).collect();
    if !q.types.is_empty() && types.is_empty() {
        return Ok(EventPage {
            events: Vec::new(),
            next: None,
        });
    }
    let keep = |e: &event_block::Stored<'_>| {
        (types.is_empty() || types.contains(&e.type_id))
            && (q.channels.is_empty() || q.channels.iter().any(|c| c.as_str() == e.channel))
            && q.from.is_none_or(|from| e.ts >= from)
            && q.to.is_none_or(|to| e.ts < to)
            && q.after.is_none_or(|after| (e.ts, e.id) < after)
    };
    // Blocks newest first by their newest event: once a page and one more are found, a
    // block whose newest event is older than the last of them holds nothing for it.
    let mut stmt = conn.prepare_cached(
        "SELECT id, customer, data, max_ts FROM event_blocks
         WHERE customer = ?1 AND max_ts >= ?2 AND min_ts <= ?3 ORDER BY max_ts DESC",
    )?;
    let newest = match (q.to, q.after) {
        (Some(to), Some((ts, _))) => to.min(ts),
        (Some(to), None) => to,
        (None, Some((ts, _))) => ts,
        (None, None) => i64::MAX,
    };
    let mut rows_iter = stmt.query(params![customer.id, q.from.unwrap_or(i64::MIN), newest])?;
    let want = q.limit.saturating_add(1);
    // The page is chosen on (time, id, block) alone; only its events are then built (a
    // busy customer's block holds thousands, each with properties to parse).
    let mut blocks: Vec<(i64, Vec<u8>)> = Vec::new();
    let mut chosen: Vec<(i64, i64, usize)> = Vec::new();
    let newest_first_key = |c: &(i64, i64, usize)| std::cmp::Reverse((c.0, c.1));
    while let Some(row) = rows_iter.next()? {
        let max_ts: i64 = row.get(3)?;
        if chosen.len() >= want && chosen[want - 1].0 > max_ts {
            break;
        }
        let (base, data): (i64, Vec<u8>) = (row.get(0)?, row.get(2)?);
        let mut d = event_block::Decoder::new(base, &data)?;
        while let Some((e, _)) = d.next()? {
            if keep(&e) {
                chosen.push((e.ts, e.id, blocks.len()));
            }
        }
        blocks.push((base, data));
        chosen.sort_unstable_by_key(newest_first_key);
        chosen.truncate(want);
    }
    drop(rows_iter);
    let mut events: Vec<Event> = Vec::with_capacity(chosen.len());
    let ids: std::collections::HashSet<i64> = chosen.iter().map(|c| c.1).collect();
    let mut used: Vec<usize> = chosen.iter().map(|c| c.2).collect();
    used.sort_unstable();
    used.dedup();
    for b in used {
        let (base, data) = &blocks[b];
        let mut d = event_block::Decoder::new(*base, data)?;
        while let Some((e, key)) = d.next()? {
            if ids.contains(&e.id) {
                events.push(reader.event(customer.id, &e, key)?);
            }
        }
    }
    events.sort_unstable_by(newest_first);
    let next = if events.len() > q.limit {
        events.truncate(q.limit);
        events.last().map(|e| (e.timestamp, e.id))
    } else {
        None
    };
    Ok(EventPage { events, next })
}

pub fn activity(
    conn: &Connection,
    app: AppId,
    customer_id: &CustomerId,
) -> Result<Activity, StoreError> {
    let customer =
        rows::find_customer(conn, app, customer_id)?.ok_or_else(|| rows::not_found(customer_id))?;
    let (events, first, last): (i64, Option<i64>, Option<i64>) = conn
        .prepare_cached(
            "SELECT coalesce(sum(events), 0), min(min_ts), max(max_ts) FROM event_blocks WHERE customer = ?1",
        )?
        .query_row([customer.id], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?;
    let mut channels: Vec<String> = Vec::new();
    each_block(
        conn,
        "SELECT id, data FROM event_blocks WHERE customer = ?1",
        [customer.id],
        &mut |_, d| {
            while let Some((e, _)) = d.next()? {
                if !channels.iter().any(|c| c == e.channel) {
                    channels.push(e.channel.to_owned());
                }
            }
            Ok(())
        },
    )?;
    channels.sort();
    Ok(Activity {
        events: events.max(0) as u64,
        first_seen: first,
        last_seen: last,
        channels: channels
            .iter()
            .filter_map(|c| Channel::parse(c).ok())
            .collect(),
    })
}

/// Events gathered from blocks read in order of their base ids, handed on in id order:
/// every event of a later block has an id at least its base, so the events gathered
/// with smaller ids than the next base are final.
struct InIdOrder {
    held: Vec<Event>,
}

impl InIdOrder {
    /// Hands on (through `emit`, smallest first) every event held with an id below
    /// `below`, until `emit` answers false; answers whether it may go on.
    fn release(&mut self, below: i64, emit: &mut dyn FnMut(Event) -> bool) -> bool {
        if self.held.iter().all(|e| e.id >= below) {
            return true;
        }
        // Newest last: the events to release are popped from the end.
        self.held.sort_unstable_by_key(|e| std::cmp::Reverse(e.id));
        while self.held.last().is_some_and(|e| e.id < below) {
            let Some(e) = self.held.pop() else { break };
            if !emit(e) {
                return false;
            }
        }
        true
    }
}

/// Visits the application's stored events with ids in `from..=to` in id order until
/// `visit` answers false.
fn visit_range(
    conn: &Connection,
    app: AppId,
    from: i64,
    to: i64,
    visit: &mut dyn FnMut(Event) -> bool,
) -> Result<(), StoreError> {
    let mut reader = Reader::new(conn, app)?;
    let mut stmt = conn.prepare_cached(
        "SELECT id, customer, data FROM event_blocks
         WHERE id BETWEEN ?1 AND ?2 AND +app_id = ?3 AND last_id >= ?4 ORDER BY id",
    )?;
    let mut rows_iter = stmt.query(params![
        from.saturating_sub(BLOCK_SPAN - 1),
        to,
        app.0,
        from
    ])?;
    let mut order = InIdOrder { held: Vec::new() };
    let keep = |e: &event_block::Stored<'_>| e.id >= from && e.id <= to;
    while let Some(row) = rows_iter.next()? {
        if !order.release(row.get(0)?, visit) {
            return Ok(());
        }
        reader.block(row, &mut order.held, &keep)?;
    }
    order.release(i64::MAX, visit);
    Ok(())
}

pub fn read_range(
    conn: &Connection,
    app: AppId,
    from: i64,
    to: i64,
    limit: usize,
) -> Result<Vec<Event>, StoreError> {
    // Sized at once: a follower reads tens of thousands at a time, and growing the vector
    // copied them over and over.
    let span = usize::try_from(to.saturating_sub(from).saturating_add(1)).unwrap_or(usize::MAX);
    let mut out = Vec::with_capacity(limit.min(span).min(1 << 16));
    if limit == 0 {
        return Ok(out);
    }
    visit_range(conn, app, from, to, &mut |e| {
        out.push(e);
        out.len() < limit
    })?;
    Ok(out)
}

/// Visits the application's events in id order.
pub fn scan(
    conn: &Connection,
    app: AppId,
    visit: &mut dyn FnMut(Event) -> bool,
) -> Result<(), StoreError> {
    visit_range(conn, app, i64::MIN + BLOCK_SPAN, i64::MAX, visit)
}

/// Each type's retention (by type row id), for stamping a block with the time its first
/// event expires (`expires_at`), which retention looks blocks up by.
#[derive(Debug, Default)]
struct Retention(HashMap<i64, i64>);

const DAY_MS: i64 = 86_400_000;

impl Retention {
    fn of(types: &[(i64, EventType)]) -> Self {
        let mut r = Self::default();
        for (id, t) in types {
            r.set(*id, t.retention_days);
        }
        r
    }

    fn load(c: &Connection, app: AppId) -> Result<Self, StoreError> {
        Ok(Self::of(&event_types(c, app)?))
    }

    fn set(&mut self, type_id: i64, days: u32) {
        self.0
            .insert(type_id, i64::from(days).saturating_mul(DAY_MS));
    }

    /// When the first of `events` expires: retention removes an event once
    /// `ts < now - retention`, that is once `now > ts + retention`.
    fn expiry(&self, events: &[event_block::Stored<'_>]) -> i64 {
        events
            .iter()
            .map(|e| match self.0.get(&e.type_id) {
                Some(&ms) => e.ts.saturating_add(ms),
                None => i64::MAX,
            })
            .min()
            .unwrap_or(i64::MAX)
    }
}

/// Rewrites block `base` with the events of it that remain (deletes it when none does)
/// and frees the keys of those removed. Its stamp can only move later (fewer events
/// expire no sooner), so the reminder covering it still does.
fn rewrite_block(
    c: &Connection,
    app: AppId,
    base: i64,
    kept: &[event_block::Owned],
    removed: &[event_block::Owned],
    retention: &Retention,
    scratch: &mut Vec<u8>,
) -> Result<(), StoreError> {
    let stored: Vec<_> = kept.iter().map(event_block::Owned::stored).collect();
    match event_block::encode(base, &stored, scratch) {
        None => {
            c.prepare_cached("DELETE FROM event_blocks WHERE id = ?1")?
                .execute([base])?;
        }
        Some(s) => {
            c.prepare_cached(
                "UPDATE event_blocks SET last_id = ?2, min_ts = ?3, max_ts = ?4, events = ?5,
                 expires_at = ?6, data = ?7 WHERE id = ?1",
            )?
            .execute(params![
                base,
                s.last_id,
                s.min_ts,
                s.max_ts,
                s.count as i64,
                retention.expiry(&stored),
                &scratch[..]
            ])?;
        }
    }
    forget_keys(
        c,
        app,
        removed
            .iter()
            .filter_map(|e| e.key.as_deref().map(|k| (k, e.id))),
    )
}

/// Frees the keys of events removed: each `(key, event id)`, if the key still leads to
/// that event.
fn forget_keys<'k>(
    c: &Connection,
    app: AppId,
    keys: impl IntoIterator<Item = (&'k str, i64)>,
) -> Result<(), StoreError> {
    let mut stmt =
        c.prepare_cached("DELETE FROM event_keys WHERE app_id = ?1 AND key = ?2 AND id = ?3")?;
    for (key, id) in keys {
        stmt.execute(params![app.0, key, id])?;
    }
    Ok(())
}

/// Removes the events of the application's blocks (those `which` selects, with `args`)
/// for which `remove` holds, counting them per type; answers the counts. A block that
/// loses nothing is left alone, or only has its expiry put right (`restamp`).
fn remove_events(
    c: &Connection,
    app: AppId,
    which: &str,
    args: &[&dyn rusqlite::ToSql],
    remove: &dyn Fn(&event_block::Stored<'_>) -> bool,
    restamp: bool,
) -> Result<HashMap<i64, u64>, StoreError> {
    let retention = Retention::load(c, app)?;
    let bases: Vec<i64> = c
        .prepare(&format!("SELECT id FROM event_blocks WHERE {which}"))?
        .query_map(args, |r| r.get(0))?
        .collect::<Result<_, _>>()?;
    let mut removed_by_type: HashMap<i64, u64> = HashMap::new();
    let mut scratch = Vec::new();
    for base in bases {
        let data: Vec<u8> = c
            .prepare_cached("SELECT data FROM event_blocks WHERE id = ?1")?
            .query_row([base], |r| r.get(0))?;
        // Most blocks lose nothing: looked through without copying anything first.
        let mut d = event_block::Decoder::new(base, &data)?;
        let mut any = false;
        let mut all = Vec::new();
        while let Some((e, _)) = d.next()? {
            if remove(&e) {
                any = true;
                break;
            }
            if restamp {
                all.push(e);
            }
        }
        if !any {
            if restamp {
                c.prepare_cached("UPDATE event_blocks SET expires_at = ?2 WHERE id = ?1")?
                    .execute(params![base, retention.expiry(&all)])?;
            }
            continue;
        }
        let (removed, kept): (Vec<_>, Vec<_>) = event_block::decode_all(base, &data)?
            .into_iter()
            .partition(|e| remove(&e.stored()));
        for e in &removed {
            *removed_by_type.entry(e.type_id).or_default() += 1;
        }
        rewrite_block(c, app, base, &kept, &removed, &retention, &mut scratch)?;
    }
    Ok(removed_by_type)
}

/// The blocks of application `?1`, found through its customers (no index leads from an
/// application to its blocks: an entry per block cost every write).
const APP_BLOCKS: &str = "customer IN (SELECT id FROM customers WHERE app_id = ?1) AND app_id = ?1";

/// Deletes every event of type `type_id` of the application; answers how many went.
fn delete_events_of_type(c: &Connection, app: AppId, type_id: i64) -> Result<u64, StoreError> {
    let removed = remove_events(
        c,
        app,
        APP_BLOCKS,
        &[&app.0],
        &|e| e.type_id == type_id,
        false,
    )?;
    Ok(removed.values().sum())
}

/// Stamps again the expiry of the application's blocks holding events of `type_id`
/// (its retention changed).
fn refresh_expiry(c: &Connection, app: AppId, type_id: i64) -> Result<(), StoreError> {
    let retention = Retention::load(c, app)?;
    let mut stamps = Vec::new();
    each_block(
        c,
        &format!("SELECT id, data FROM event_blocks WHERE {APP_BLOCKS}"),
        [app.0],
        &mut |base, d| {
            let mut all = Vec::with_capacity(d.remaining().min(BLOCK_SPAN as usize));
            while let Some((e, _)) = d.next()? {
                all.push(e);
            }
            if all.iter().any(|e| e.type_id == type_id) {
                stamps.push((base, retention.expiry(&all)));
            }
            Ok(())
        },
    )?;
    let mut update = c.prepare_cached("UPDATE event_blocks SET expires_at = ?2 WHERE id = ?1")?;
    // A shorter retention brings expiries forward: the blocks restamped are reminded of.
    let mut reminder = Reminder::default();
    for (base, at) in stamps {
        update.execute(params![base, at])?;
        reminder.note(base, at);
    }
    reminder.write(c, app.0)
}

/// The customer's events as `(event id, key)`, in block order.
fn customer_event_keys(
    c: &Connection,
    customer: i64,
) -> Result<Vec<(i64, Option<String>)>, StoreError> {
    let mut events = Vec::new();
    each_block(
        c,
        "SELECT id, data FROM event_blocks WHERE customer = ?1",
        [customer],
        &mut |_, d| {
            while let Some((e, key)) = d.next()? {
                events.push((e.id, key.map(str::to_owned)));
            }
            Ok(())
        },
    )?;
    Ok(events)
}

/// Frees the keys of a customer's events before the customer is deleted (its blocks go
/// with it, by the foreign key).
pub fn forget_customer_keys(c: &Connection, app: AppId, customer: i64) -> Result<(), StoreError> {
    let events = customer_event_keys(c, customer)?;
    forget_keys(
        c,
        app,
        events
            .iter()
            .filter_map(|(id, key)| key.as_deref().map(|k| (k, *id))),
    )
}

/// Gives the events of customer `from` to customer `into`; answers their ids.
pub fn move_events(c: &Connection, from: i64, into: i64) -> Result<Vec<i64>, StoreError> {
    let ids = customer_event_keys(c, from)?
        .into_iter()
        .map(|(id, _)| id)
        .collect();
    c.prepare_cached("UPDATE event_blocks SET customer = ?1 WHERE customer = ?2")?
        .execute(params![into, from])?;
    Ok(ids)
}

/// Deletes every event of an application, with their keys.
pub fn delete_app_events(c: &Connection, app: AppId) -> Result<(), StoreError> {
    c.execute("DELETE FROM event_blocks WHERE app_id = ?1", [app.0])?;
    c.execute("DELETE FROM event_keys WHERE app_id = ?1", [app.0])?;
    c.execute("DELETE FROM event_expiry WHERE app_id = ?1", [app.0])?;
    Ok(())
}

/// A type's row id, code, and the time before which its events expire.
type TypeBound = (i64, String, i64);

/// Removes every event past its type's retention at `now`.
pub fn expire(w: &mut WriteCtx, now: i64) -> Result<u64, StoreError> {
    let c = &w.conn;
    // Per application, its types' bounds: (type row id, code, events before it expire).
    let mut apps: Vec<(i64, Vec<TypeBound>)> = Vec::new();
    {
        let mut stmt = c.prepare(
            "SELECT id, app_id, code, retention_days FROM event_types ORDER BY app_id, id",
        )?;
        let mut rows_iter = stmt.query([])?;
        while let Some(r) = rows_iter.next()? {
            let (id, app, code, days): (i64, i64, String, i64) =
                (r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?);
            let before = now.saturating_sub(days.saturating_mul(DAY_MS));
            match apps.last_mut() {
                Some((a, types)) if *a == app => types.push((id, code, before)),
                _ => apps.push((app, vec![(id, code, before)])),
            }
        }
    }
    let mut total = 0;
    let mut changes = Vec::new();
    for (app, types) in apps {
        let app = AppId(app);
        let bound: HashMap<i64, i64> = types.iter().map(|t| (t.0, t.2)).collect();
        let removed = expire_app(c, app, now, &|e| {
            bound.get(&e.type_id).is_some_and(|&before| e.ts < before)
        })?;
        for (id, code, before) in types {
            let Some(&n) = removed.get(&id).filter(|n| **n > 0) else {
                continue;
            };
            total += n;
            changes.push(Change::EventsRemoved {
                app,
                event: EventCode::parse(&code)
                    .map_err(|_| StoreError::Internal(format!("stored event type {code}")))?,
                before,
            });
        }
    }
    for change in changes {
        w.emit(change);
    }
    Ok(total)
}

/// Removes the events of `app` for which `expired` holds from the blocks whose first
/// event to expire has expired, counting them per type. Those blocks are in the runs of
/// the reminders due: each run is looked through, its reminder dropped, and what stays of
/// it reminded of again (at its new earliest expiry, later than `now`).
fn expire_app(
    c: &Connection,
    app: AppId,
    now: i64,
    expired: &dyn Fn(&event_block::Stored<'_>) -> bool,
) -> Result<HashMap<i64, u64>, StoreError> {
    let mut runs: Vec<(i64, i64)> = c
        .prepare_cached("SELECT lo, hi FROM event_expiry WHERE app_id = ?1 AND expires_at < ?2")?
        .query_map(params![app.0, now], |r| Ok((r.get(0)?, r.get(1)?)))?
        .collect::<Result<_, _>>()?;
    if runs.is_empty() {
        return Ok(HashMap::new());
    }
    c.prepare_cached("DELETE FROM event_expiry WHERE app_id = ?1 AND expires_at < ?2")?
        .execute(params![app.0, now])?;
    // Runs that overlap (a retention change reminds of a wide one) are looked through once.
    runs.sort_unstable();
    let mut merged: Vec<(i64, i64)> = Vec::with_capacity(runs.len());
    for (lo, hi) in runs {
        match merged.last_mut() {
            Some(last) if lo <= last.1 => last.1 = last.1.max(hi),
            _ => merged.push((lo, hi)),
        }
    }
    let mut removed: HashMap<i64, u64> = HashMap::new();
    for (lo, hi) in merged {
        let from_run = remove_events(
            c,
            app,
            "id BETWEEN ?2 AND ?3 AND app_id = ?1 AND expires_at < ?4",
            &[&app.0, &lo, &hi, &now],
            expired,
            true,
        )?;
        for (type_id, n) in from_run {
            *removed.entry(type_id).or_default() += n;
        }
        let next: Option<i64> = c
            .prepare_cached(
                "SELECT min(expires_at) FROM event_blocks
                 WHERE id BETWEEN ?2 AND ?3 AND app_id = ?1 AND expires_at < ?4",
            )?
            .query_row(params![app.0, lo, hi, i64::MAX], |r| r.get(0))?;
        if let Some(at) = next {
            Reminder { at, lo, hi }.write(c, app.0)?;
        }
    }
    Ok(removed)
}

/// Converts the events of the one-row-per-event table into blocks (migration 17): per
/// customer, its events in id order, as many to a block as [`BLOCK_SPAN`] allows.
pub fn convert_rows_to_blocks(c: &Connection) -> Result<(), StoreError> {
    let mut read = c.prepare(
        "SELECT id, app_id, customer, type_id, channel, device_id, ts, event_key, properties
         FROM events ORDER BY customer, id",
    )?;
    // Type row ids are unique across applications: one map serves them all.
    let mut retention = Retention::default();
    {
        let mut stmt = c.prepare("SELECT id, retention_days FROM event_types")?;
        let mut rows_iter = stmt.query([])?;
        while let Some(r) = rows_iter.next()? {
            let days: i64 = r.get(1)?;
            retention.set(r.get(0)?, days.clamp(1, i64::from(u32::MAX)) as u32);
        }
    }
    let mut block: Vec<event_block::Owned> = Vec::new();
    let mut owner = (0i64, 0i64);
    let mut scratch = Vec::new();
    let mut insert = c.prepare(INSERT_BLOCK)?;
    let mut write = |owner: (i64, i64), block: &mut Vec<event_block::Owned>| {
        let stored: Vec<_> = block.iter().map(event_block::Owned::stored).collect();
        // Migration 19 reminds retention of every block converted here.
        insert_block(
            &mut insert,
            owner.0,
            owner.1,
            &stored,
            &retention,
            &mut scratch,
            &mut Reminder::default(),
        )?;
        block.clear();
        Ok::<(), StoreError>(())
    };
    let mut rows_iter = read.query([])?;
    while let Some(r) = rows_iter.next()? {
        let e = event_block::Owned {
            id: r.get(0)?,
            ts: r.get(6)?,
            type_id: r.get(3)?,
            channel: r.get(4)?,
            device_id: r.get(5)?,
            key: r.get(7)?,
            properties: r.get(8)?,
        };
        let this = (r.get::<_, i64>(1)?, r.get::<_, i64>(2)?);
        if let Some(first) = block.first()
            && (this != owner || e.id - first.id >= BLOCK_SPAN)
        {
            write(owner, &mut block)?;
        }
        owner = this;
        block.push(e);
    }
    if !block.is_empty() {
        write(owner, &mut block)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    /// A store in a temporary directory with one application and its type `view`.
    fn store_with_a_type() -> (
        tempfile::TempDir,
        super::super::SqliteStore,
        AppId,
        EventCode,
    ) {
        use crate::store::Store;
        use unico_core::{AppName, TimeZoneName};
        let dir = tempfile::tempdir().unwrap();
        let store = super::super::SqliteStore::open(dir.path()).unwrap();
        let app = store
            .create_app(&AppName::parse("A").unwrap(), &TimeZoneName::utc(), 1)
            .unwrap()
            .id;
        let code = EventCode::parse("view").unwrap();
        store
            .create_event_type(
                app,
                &EventType {
                    code: code.clone(),
                    name: "View".into(),
                    retention_days: 30,
                    enabled: true,
                    properties: Vec::new(),
                    created_at: 1,
                },
            )
            .unwrap();
        (dir, store, app, code)
    }

    /// An event of type `code` on the web, with no device and no properties.
    fn web_event(code: &EventCode, key: Option<String>, customer: &str, ts: i64) -> NewEvent {
        NewEvent {
            by_identity: None,
            event_id: key,
            customer_id: CustomerId::parse(customer).unwrap(),
            event_type: code.clone(),
            channel: Channel::parse("web").unwrap(),
            device_id: None,
            timestamp: ts,
            properties: Properties::default(),
        }
    }

    /// Events just written are handed to a follower from memory; a later write that moves
    /// or removes them (a merge, a deletion) must leave a follower reading what the store
    /// holds, not what was written first.
    #[test]
    fn events_read_after_a_merge_or_a_deletion_are_what_the_store_holds() {
        use crate::store::Store;
        let (_dir, store, app, code) = store_with_a_type();
        let now = 1_796_083_200_000;
        let ids = |out: Vec<Result<EventOutcome, StoreError>>| -> Vec<i64> {
            out.into_iter().map(|r| r.unwrap().id).collect()
        };
        let ana = ids(store
            .insert_events(
                app,
                vec![
                    web_event(&code, None, "ana", now - 2000),
                    web_event(&code, None, "ana", now - 1000),
                ],
                now,
            )
            .unwrap());
        let bob = ids(store
            .insert_events(app, vec![web_event(&code, None, "bob", now - 500)], now)
            .unwrap());
        // Nobody read them yet: both writes are still held in memory.
        store
            .merge_customers(
                app,
                &CustomerId::parse("bob").unwrap(),
                &CustomerId::parse("ana").unwrap(),
                now,
            )
            .unwrap();
        let bob_id = store
            .get_customer(app, &CustomerId::parse("bob").unwrap())
            .unwrap()
            .id;
        let read = store.read_events(app, ana[0], ana[1], 10).unwrap();
        assert_eq!(read.iter().map(|e| e.id).collect::<Vec<_>>(), ana);
        assert!(
            read.iter().all(|e| e.customer == bob_id),
            "merged events read under the survivor: {read:?}"
        );
        let more = ids(store
            .insert_events(app, vec![web_event(&code, None, "bob", now - 100)], now)
            .unwrap());
        store
            .delete_customer(app, &CustomerId::parse("bob").unwrap())
            .unwrap();
        for (from, to) in [(bob[0], bob[0]), (more[0], more[0])] {
            assert!(
                store.read_events(app, from, to, 10).unwrap().is_empty(),
                "a deleted customer's events are gone"
            );
        }
    }

    /// Many rows per insert (an import) or one (the API): duplicates of earlier events,
    /// keys repeated inside one statement, events without a key and new customers mixed
    /// in one batch each get the
    /// outcome one insert per event gave them, with ids growing in the batch's order.
    #[test]
    fn a_batch_inserted_many_rows_at_a_time_answers_each_event() {
        use crate::store::Store;
        let (dir, store, app, code) = store_with_a_type();
        let now = 1_796_083_200_000;
        let event =
            |key: Option<String>, customer: &str| web_event(&code, key, customer, now - 1000);
        // Keys k0..k39 first, then a batch that repeats some of them, repeats its own
        // keys, has events without keys, and names a new customer halfway.
        let first: Vec<_> = (0..40)
            .map(|i| event(Some(format!("k{i}")), "ana"))
            .collect();
        let stored: Vec<i64> = store
            .insert_events(app, first, now)
            .unwrap()
            .into_iter()
            .map(|r| r.unwrap().id)
            .collect();
        assert!(stored.windows(2).all(|w| w[1] == w[0] + 1));
        let mut batch = Vec::new();
        let mut expected = Vec::new(); // (duplicate of, or None for stored)
        for i in 0..70 {
            let (e, dup) = match i % 5 {
                0 => (
                    event(Some(format!("k{}", i / 2)), "ana"),
                    (i / 2 < 40).then(|| stored[i / 2]),
                ),
                1 => (event(None, "ana"), None),
                2 => (
                    event(Some(format!("n{i}")), if i > 35 { "bob" } else { "ana" }),
                    None,
                ),
                3 => (event(Some(format!("n{}", i - 1)), "ana"), Some(-1)),
                _ => (event(Some(format!("m{i}")), "ana"), None),
            };
            batch.push(NewEvent {
                device_id: Some(format!("d{i}")),
                ..e
            });
            expected.push(dup);
        }
        let check = |out: &[Result<EventOutcome, StoreError>], read: &[Event]| {
            let mut last = *stored.last().unwrap();
            for (i, (r, dup)) in out.iter().zip(&expected).enumerate() {
                let r = r.as_ref().unwrap();
                match dup {
                    None => {
                        // Ids grow in the batch's order (a row left out may leave a gap).
                        assert!(!r.duplicate, "{i}: {r:?}");
                        assert!(r.id > last, "{i}: {r:?} after {last}");
                        last = r.id;
                    }
                    Some(-1) => {
                        assert!(r.duplicate, "{i}: {r:?}");
                        assert_eq!(r.id, out[i - 1].as_ref().unwrap().id, "{i}");
                    }
                    Some(id) => {
                        assert!(r.duplicate, "{i}: {r:?}");
                        assert_eq!(r.id, *id, "{i}");
                    }
                }
            }
            // Each id stored holds its own event.
            for (r, e) in out.iter().zip(&batch) {
                let r = r.as_ref().unwrap();
                if !r.duplicate {
                    let held = read.iter().find(|x| x.id == r.id).unwrap();
                    assert_eq!(held.device_id, e.device_id);
                }
            }
            let bob: Vec<_> = out
                .iter()
                .zip(&batch)
                .filter(|(_, e)| e.customer_id.as_str() == "bob")
                .map(|(r, _)| r.as_ref().unwrap().customer_created)
                .collect();
            assert_eq!(bob.iter().filter(|c| **c).count(), 1, "{bob:?}");
        };
        // As an import writes them (many rows per statement), then as the API does.
        let conn = Connection::open(dir.path().join(super::super::DB_FILE)).unwrap();
        conn.execute_batch("BEGIN").unwrap();
        let mut writer = EventWriter::new(&conn, app, true).unwrap();
        let mut imported = Vec::new();
        imported.resize_with(batch.len(), || None);
        writer.write_all(&conn, &batch, now, &mut imported).unwrap();
        let imported: Vec<_> = imported.into_iter().map(|o| o.unwrap()).collect();
        check(
            &imported,
            &read_range(&conn, app, 0, i64::MAX, 1000).unwrap(),
        );
        conn.execute_batch("ROLLBACK").unwrap();
        drop(conn);
        let out = store.insert_events(app, batch.clone(), now).unwrap();
        check(&out, &store.read_events(app, 0, i64::MAX, 1000).unwrap());
        // The same batch again: every keyed event a duplicate, the others stored.
        let again = store.insert_events(app, batch.clone(), now).unwrap();
        for (r, e) in again.iter().zip(&batch) {
            assert_eq!(r.as_ref().unwrap().duplicate, e.event_id.is_some());
        }
    }

    /// A key left behind by events removed without it (their customer deleted by a
    /// cascade, not through the store) is given to the next event with that key: it is
    /// stored, not answered as a duplicate of an event that is gone.
    #[test]
    fn a_key_whose_event_is_gone_is_given_again() {
        use crate::store::Store;
        let (dir, store, app, code) = store_with_a_type();
        let now = 1_796_083_200_000;
        let event = |customer: &str| web_event(&code, Some("x".into()), customer, now - 1000);
        let first = store.insert_events(app, vec![event("ana")], now).unwrap()[0]
            .as_ref()
            .unwrap()
            .id;
        let conn = Connection::open(dir.path().join(super::super::DB_FILE)).unwrap();
        conn.execute_batch(
            "PRAGMA foreign_keys = ON; DELETE FROM customers WHERE customer_id = 'ana';",
        )
        .unwrap();
        let left: i64 = conn
            .query_row("SELECT count(*) FROM event_keys", [], |r| r.get(0))
            .unwrap();
        assert_eq!(left, 1, "the key stays behind its event");
        drop(conn);
        let again = store.insert_events(app, vec![event("bob")], now).unwrap();
        let again = again[0].as_ref().unwrap();
        assert!(!again.duplicate, "{again:?}");
        assert!(again.id > first);
        let stored = store.read_events(app, 0, i64::MAX, 10).unwrap();
        assert_eq!(stored.len(), 1);
        assert_eq!(stored[0].id, again.id);
        // And the key now leads to it.
        let third = store.insert_events(app, vec![event("cyd")], now).unwrap();
        let third = third[0].as_ref().unwrap();
        assert!(third.duplicate && third.id == again.id, "{third:?}");
    }

    /// The plans of the block queries that must not scan every block: retention's
    /// reminders due and the runs they name, a timeline by its customer, a range of ids
    /// by base.
    #[test]
    fn block_queries_use_their_indexes() {
        let dir = tempfile::tempdir().unwrap();
        drop(super::super::SqliteStore::open(dir.path()).unwrap());
        let conn = Connection::open(dir.path().join(super::super::DB_FILE)).unwrap();
        let plan = |sql: &str, args: &[&dyn rusqlite::ToSql]| -> String {
            let mut stmt = conn.prepare(&format!("EXPLAIN QUERY PLAN {sql}")).unwrap();
            let rows: Vec<String> = stmt
                .query_map(args, |r| r.get::<_, String>(3))
                .unwrap()
                .collect::<Result<_, _>>()
                .unwrap();
            rows.join("; ")
        };
        let due = plan(
            "SELECT lo, hi FROM event_expiry WHERE app_id = ?1 AND expires_at < ?2",
            &[&1, &2],
        );
        assert!(
            due.contains("USING PRIMARY KEY (app_id=? AND expires_at<?)"),
            "{due}"
        );
        let app_pass = plan(
            &format!("SELECT id, data FROM event_blocks WHERE {APP_BLOCKS}"),
            &[&1],
        );
        assert!(
            app_pass.contains("USING INDEX event_blocks_by_customer (customer=?)")
                && app_pass.contains("customers_by_customer_id (app_id=?)"),
            "{app_pass}"
        );
        let run = plan(
            "SELECT min(expires_at) FROM event_blocks
             WHERE id BETWEEN ?2 AND ?3 AND app_id = ?1 AND expires_at < ?4",
            &[&1, &2, &3, &4],
        );
        assert!(
            run.contains("USING INTEGER PRIMARY KEY (rowid>? AND rowid<?)"),
            "{run}"
        );
        let timeline = plan(
            "SELECT id, customer, data, max_ts FROM event_blocks
             WHERE customer = ?1 AND max_ts >= ?2 AND min_ts <= ?3 ORDER BY max_ts DESC",
            &[&1, &2, &3],
        );
        assert!(
            timeline.contains("USING INDEX event_blocks_by_customer (customer=? AND max_ts>?)"),
            "{timeline}"
        );
        assert!(!timeline.contains("TEMP B-TREE"), "{timeline}");
        let range = plan(
            "SELECT id, customer, data FROM event_blocks
             WHERE id BETWEEN ?1 AND ?2 AND +app_id = ?3 AND last_id >= ?4 ORDER BY id",
            &[&1, &2, &3, &4],
        );
        assert!(
            range.contains("USING INTEGER PRIMARY KEY (rowid>? AND rowid<?)"),
            "{range}"
        );
    }
}
