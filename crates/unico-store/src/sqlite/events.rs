//! Interactions on the embedded backend: the event type registry, event writes (one
//! multi-row job on the writer, deduplicated by key), the timeline and retention.
//!
//! Events are rows of `events`, in id order (ids never reused); the timeline reads the
//! `(customer, ts, id)` index backwards; the key index makes a repeated key a no-op.

use std::collections::HashMap;

use rusqlite::{Connection, OptionalExtension, Row, params};
use unico_core::limits::MAX_EVENT_TYPES_PER_APP;
use unico_core::{AppId, Channel, CustomerId, Event, EventCode, EventType, EventTypes, Properties};

use super::rows;
use super::writer::WriteCtx;
use super::writes::{CountDeltas, CustomerWriter, Mode};
use crate::changes::{Before, Change};
use crate::error::StoreError;
use crate::events::{
    Activity, EventOutcome, EventPage, EventQuery, EventTypePatch, IdRanges, NewEvent,
    parse_properties_text, properties_text,
};
use crate::store::{EventBatch, ImportCounts};

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
    let removed = c.execute("DELETE FROM events WHERE type_id = ?1", [id])? as u64;
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
    customers: HashMap<CustomerId, i64>,
    /// Holders of identities, by identity (bounded like `customers`).
    holders: HashMap<unico_core::Identity, i64>,
    /// Whether the application has aliases, once asked.
    aliases: Option<bool>,
    /// Events resolved and not inserted yet (see [`EventWriter::flush`]).
    pending: Vec<Pending>,
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
        let types = event_types(c, app)?
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
            auto_register: auto_register.as_deref() == Some("true"),
            registered: false,
            customers: HashMap::new(),
            holders: HashMap::new(),
            pending: Vec::with_capacity(MAX_ROWS_PER_INSERT),
            last: None,
            aliases: None,
            created: Vec::new(),
            created_count: 0,
            created_ranges: IdRanges::default(),
            keep_created,
            stored: IdRanges::default(),
            deltas: CountDeltas::default(),
        })
    }

    /// Writes `events` in order: each item's outcome into `out` (as long as `events`), an
    /// unregistered or disabled type (`Invalid`) or an identity nobody holds (`NotFound`)
    /// as that item's error (nothing written for it); any other error from the database
    /// is returned. Events are inserted [`MAX_ROWS_PER_INSERT`] at a time.
    pub fn write_all(
        &mut self,
        c: &Connection,
        events: &[NewEvent],
        now: i64,
        out: &mut [Option<Result<EventOutcome, StoreError>>],
    ) -> Result<(), StoreError> {
        for (i, e) in events.iter().enumerate() {
            match self.resolve(c, events, e, now, out) {
                Ok(Resolved::Done(outcome)) => out[i] = Some(Ok(outcome)),
                Ok(Resolved::Row {
                    customer,
                    type_id,
                    customer_created,
                }) => self.pending.push(Pending {
                    index: i,
                    customer,
                    type_id,
                    customer_created,
                }),
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
            self.types
                .push((e.event_type.clone(), c.last_insert_rowid(), true));
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
        let duplicate_of = |key: &str| -> Result<Option<i64>, StoreError> {
            Ok(
                c.prepare_cached("SELECT id FROM events WHERE app_id = ?1 AND event_key = ?2")?
                    .query_row(params![app.0, key], |r| r.get(0))
                    .optional()?,
            )
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
                    // The events waiting are written first: a key among them is a
                    // duplicate, and a duplicate creates nobody.
                    self.flush(c, events, out)?;
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
                            // customer, once the events waiting are written.
                            self.flush(c, events, out)?;
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

    /// Inserts the events waiting, in order, and gives each its outcome.
    fn flush(
        &mut self,
        c: &Connection,
        events: &[NewEvent],
        out: &mut [Option<Result<EventOutcome, StoreError>>],
    ) -> Result<(), StoreError> {
        let pending = std::mem::take(&mut self.pending);
        let mut rest = &pending[..];
        while !rest.is_empty() {
            // Statements of 32, 16, …, 1 rows: a few prepared ones cover any count.
            let rows = MAX_ROWS_PER_INSERT.min(1 << rest.len().ilog2());
            let (chunk, tail) = rest.split_at(rows);
            self.insert_rows(c, events, chunk, out)?;
            rest = tail;
        }
        self.pending = pending;
        self.pending.clear();
        Ok(())
    }

    /// One multi-row insert. A key stored before makes its row a no-op (the key's unique
    /// index); when every row went in, their ids are the last ones given, in order.
    /// Otherwise the rows that went in are told apart by their keys: each row's key
    /// leads to its event, one given by this insert (the first of its key in the chunk)
    /// or an earlier one (a duplicate).
    fn insert_rows(
        &mut self,
        c: &Connection,
        events: &[NewEvent],
        chunk: &[Pending],
        out: &mut [Option<Result<EventOutcome, StoreError>>],
    ) -> Result<(), StoreError> {
        let mut stmt = c.prepare_cached(insert_sql(chunk.len()))?;
        for (j, p) in chunk.iter().enumerate() {
            let e = &events[p.index];
            let at = j * 8;
            stmt.raw_bind_parameter(at + 1, self.app.0)?;
            stmt.raw_bind_parameter(at + 2, p.customer)?;
            stmt.raw_bind_parameter(at + 3, p.type_id)?;
            stmt.raw_bind_parameter(at + 4, e.channel.as_str())?;
            stmt.raw_bind_parameter(at + 5, e.device_id.as_deref())?;
            stmt.raw_bind_parameter(at + 6, e.timestamp)?;
            stmt.raw_bind_parameter(at + 7, e.event_id.as_deref())?;
            let props = (!e.properties.is_empty()).then(|| e.properties.json_text());
            stmt.raw_bind_parameter(at + 8, props.as_deref())?;
        }
        let inserted = stmt.raw_execute()?;
        drop(stmt);
        let stored = |p: &Pending, id| EventOutcome {
            id,
            duplicate: false,
            customer_created: p.customer_created,
        };
        if inserted == chunk.len() {
            let first = c.last_insert_rowid() - chunk.len() as i64 + 1;
            for (p, id) in chunk.iter().zip(first..) {
                out[p.index] = Some(Ok(stored(p, id)));
                self.stored.push(id);
            }
            return Ok(());
        }
        let mut given: Vec<i64> = c
            .prepare_cached("SELECT id FROM events ORDER BY id DESC LIMIT ?1")?
            .query_map([inserted as i64], |r| r.get(0))?
            .collect::<Result<_, _>>()?;
        given.reverse();
        let floor = given.first().copied().unwrap_or(i64::MAX);
        let mut given = given.into_iter();
        let mut keys = std::collections::HashSet::new();
        let bad = |what: &str| StoreError::Internal(format!("an events insert: {what}"));
        for p in chunk {
            let e = &events[p.index];
            let existing = match &e.event_id {
                Some(key) => Some(
                    self.key_id(c, key)?
                        .ok_or_else(|| bad("a key not stored"))?,
                ),
                None => None,
            };
            let first_of_key = e.event_id.as_deref().is_none_or(|k| keys.insert(k));
            match existing {
                Some(id) if id < floor || !first_of_key => {
                    out[p.index] = Some(Ok(EventOutcome {
                        id,
                        duplicate: true,
                        customer_created: false,
                    }));
                }
                _ => {
                    let id = given.next().ok_or_else(|| bad("fewer rows than counted"))?;
                    if existing.is_some_and(|key_id| key_id != id) {
                        return Err(bad("a key's event is not the row given"));
                    }
                    out[p.index] = Some(Ok(stored(p, id)));
                    self.stored.push(id);
                }
            }
        }
        if given.next().is_some() {
            return Err(bad("more rows than counted"));
        }
        Ok(())
    }

    /// The event stored under `key`, if any.
    fn key_id(&self, c: &Connection, key: &str) -> Result<Option<i64>, StoreError> {
        Ok(
            c.prepare_cached("SELECT id FROM events WHERE app_id = ?1 AND event_key = ?2")?
                .query_row(params![self.app.0, key], |r| r.get(0))
                .optional()?,
        )
    }

    /// The row id of type `code` and whether it is enabled.
    fn type_of(&self, code: &EventCode) -> Option<(i64, bool)> {
        self.types
            .iter()
            .find(|(c, _, _)| c == code)
            .map(|&(_, id, enabled)| (id, enabled))
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

/// Most events in one `INSERT` statement. A statement's own work (opening the table and
/// its indexes, reading and writing the id sequence of `AUTOINCREMENT`) is paid once for
/// all its rows: about 40% of SQLite's time per event with one row per statement
/// (measured on the backfill's insert pattern). Batches of the API use them too since the
/// events' customer key is checked at commit (migration 16): before, each many-row
/// statement opened a statement journal and one row per statement was faster there.
const MAX_ROWS_PER_INSERT: usize = 32;

/// The insert of `rows` events (a power of two up to [`MAX_ROWS_PER_INSERT`]).
fn insert_sql(rows: usize) -> &'static str {
    static SQL: std::sync::OnceLock<Vec<String>> = std::sync::OnceLock::new();
    let all = SQL.get_or_init(|| {
        (0..=MAX_ROWS_PER_INSERT.ilog2())
            .map(|power| {
                let row = "(?, ?, ?, ?, ?, ?, ?, ?)";
                format!(
                    "INSERT OR IGNORE INTO events (app_id, customer, type_id, channel, device_id, ts, event_key, properties) VALUES {}",
                    vec![row; 1 << power].join(", ")
                )
            })
            .collect()
    });
    debug_assert!(rows.is_power_of_two() && rows <= MAX_ROWS_PER_INSERT);
    &all[rows.ilog2() as usize]
}

/// An event resolved to its row, waiting for the next insert.
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
    let mut out: Vec<Option<Result<EventOutcome, StoreError>>> = Vec::new();
    out.resize_with(events.len(), || None);
    // An item's own problem (its type, its identity) fails the item, not the write.
    writer.write_all(&w.conn, &events, now, &mut out)?;
    writer.finish(w)?;
    out.into_iter()
        .map(|o| o.ok_or_else(|| StoreError::Internal("an event got no outcome".into())))
        .collect()
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
) -> Result<ImportCounts, StoreError> {
    use std::sync::atomic::Ordering;
    w.conn.execute_batch("SAVEPOINT event_import")?;
    // Created customers are kept for the log up to `incremental`; past it one bulk change.
    let mut writer = EventWriter::new(&w.conn, app, true)?;
    let mut duplicates = 0u64;
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
                }
                EventBatch::End { keep } => return Ok(keep),
            }
        }
        Ok(false)
    })();
    match run {
        Ok(true) => {
            let created = writer.created_count();
            writer.finish(w)?;
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

const EVENT_COLUMNS: &str =
    "e.id, e.customer, t.code, e.channel, e.device_id, e.ts, e.event_key, e.properties";

/// Reads event rows; the few distinct type codes and channels are parsed once and shared
/// (reading millions of events back should not allocate two strings per event for them).
#[derive(Default)]
struct EventRows {
    names: unico_core::EventNames,
}

impl EventRows {
    fn event(&mut self, row: &Row<'_>) -> Result<Event, StoreError> {
        let bad =
            |what: &str| StoreError::Internal(format!("a stored event's {what} is unreadable"));
        let text = |i: usize| -> Result<&str, StoreError> {
            row.get_ref(i)?.as_str().map_err(|_| bad("text"))
        };
        let event_type = self.names.code(text(2)?).ok_or_else(|| bad("type"))?;
        let channel = self.names.channel(text(3)?).ok_or_else(|| bad("channel"))?;
        let props = row
            .get_ref(7)?
            .as_str_or_null()
            .map_err(|_| bad("properties"))?;
        Ok(Event {
            id: row.get(0)?,
            customer: row.get(1)?,
            event_type,
            channel,
            device_id: row.get(4)?,
            timestamp: row.get(5)?,
            event_id: row.get(6)?,
            properties: match props {
                Some(text) => Properties::from_stored(text).map_err(|_| bad("properties"))?,
                None => Properties::default(),
            },
        })
    }
}

pub fn timeline(
    conn: &Connection,
    app: AppId,
    customer_id: &CustomerId,
    q: &EventQuery,
) -> Result<EventPage, StoreError> {
    let customer =
        rows::find_customer(conn, app, customer_id)?.ok_or_else(|| rows::not_found(customer_id))?;
    let mut sql = format!(
        "SELECT {EVENT_COLUMNS} FROM events e JOIN event_types t ON t.id = e.type_id WHERE e.customer = ?1"
    );
    let mut args: Vec<rusqlite::types::Value> = vec![customer.id.into()];
    let mut arg = |sql: &mut String, text: &str, v: rusqlite::types::Value| {
        args.push(v);
        sql.push_str(&text.replace('?', &format!("?{}", args.len())));
    };
    if !q.types.is_empty() {
        let list: Vec<String> = q
            .types
            .iter()
            .map(|t| format!("'{}'", t.as_str()))
            .collect();
        // Codes are ASCII letters, digits, '_', '-', '.': safe inside quotes.
        sql.push_str(&format!(" AND t.code IN ({})", list.join(",")));
    }
    if !q.channels.is_empty() {
        let list: Vec<String> = q
            .channels
            .iter()
            .map(|c| format!("'{}'", c.as_str()))
            .collect();
        sql.push_str(&format!(" AND e.channel IN ({})", list.join(",")));
    }
    if let Some(from) = q.from {
        arg(&mut sql, " AND e.ts >= ?", from.into());
    }
    if let Some(to) = q.to {
        arg(&mut sql, " AND e.ts < ?", to.into());
    }
    if let Some((ts, id)) = q.after {
        args.push(ts.into());
        args.push(id.into());
        let (a, b) = (args.len() - 1, args.len());
        sql.push_str(&format!(
            " AND (e.ts < ?{a} OR (e.ts = ?{a} AND e.id < ?{b}))"
        ));
    }
    sql.push_str(&format!(
        " ORDER BY e.ts DESC, e.id DESC LIMIT {}",
        q.limit.saturating_add(1)
    ));
    let mut stmt = conn.prepare_cached(&sql)?;
    let mut rows_iter = stmt.query(rusqlite::params_from_iter(args))?;
    let mut events = Vec::new();
    let mut decode = EventRows::default();
    while let Some(row) = rows_iter.next()? {
        events.push(decode.event(row)?);
    }
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
        .prepare_cached("SELECT count(*), min(ts), max(ts) FROM events WHERE customer = ?1")?
        .query_row([customer.id], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?;
    let mut stmt = conn.prepare_cached(
        "SELECT DISTINCT channel FROM events WHERE customer = ?1 ORDER BY channel",
    )?;
    let channels = stmt
        .query_map([customer.id], |r| r.get::<_, String>(0))?
        .filter_map(|c| c.ok().and_then(|c| Channel::parse(&c).ok()))
        .collect();
    Ok(Activity {
        events: events.max(0) as u64,
        first_seen: first,
        last_seen: last,
        channels,
    })
}

pub fn read_range(
    conn: &Connection,
    app: AppId,
    from: i64,
    to: i64,
    limit: usize,
) -> Result<Vec<Event>, StoreError> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {EVENT_COLUMNS} FROM events e JOIN event_types t ON t.id = e.type_id
         WHERE e.id BETWEEN ?1 AND ?2 AND e.app_id = ?3 ORDER BY e.id LIMIT ?4"
    ))?;
    let mut rows_iter = stmt.query(params![from, to, app.0, limit as i64])?;
    let mut out = Vec::new();
    let mut decode = EventRows::default();
    while let Some(row) = rows_iter.next()? {
        out.push(decode.event(row)?);
    }
    Ok(out)
}

/// Visits the application's events in id order.
pub fn scan(
    conn: &Connection,
    app: AppId,
    visit: &mut dyn FnMut(Event) -> bool,
) -> Result<(), StoreError> {
    let mut stmt = conn.prepare(&format!(
        "SELECT {EVENT_COLUMNS} FROM events e JOIN event_types t ON t.id = e.type_id
         WHERE e.app_id = ?1 ORDER BY e.id"
    ))?;
    let mut rows_iter = stmt.query([app.0])?;
    let mut decode = EventRows::default();
    while let Some(row) = rows_iter.next()? {
        if !visit(decode.event(row)?) {
            break;
        }
    }
    Ok(())
}

/// The span of one period of the `events_by_type_period` index (30 days).
const PERIOD_MS: i64 = 2_592_000_000;
/// An event's period as the `events_by_type_period` index spells it (times are after 2000,
/// so the division truncates like a floor and `ts < t` implies `period <= t / PERIOD_MS`).
const EVENT_PERIOD: &str = "ts / 2592000000";

/// Removes every event past its type's retention at `now`.
pub fn expire(w: &mut WriteCtx, now: i64) -> Result<u64, StoreError> {
    let c = &w.conn;
    let mut types = Vec::new();
    {
        let mut stmt =
            c.prepare("SELECT id, app_id, code, retention_days FROM event_types ORDER BY id")?;
        let rows = stmt.query_map([], |r| {
            Ok((
                r.get::<_, i64>(0)?,
                r.get::<_, i64>(1)?,
                r.get::<_, String>(2)?,
                r.get::<_, i64>(3)?,
            ))
        })?;
        for row in rows {
            types.push(row?);
        }
    }
    let mut total = 0;
    let mut removed = Vec::new();
    for (id, app, code, days) in types {
        let before = now.saturating_sub(days.saturating_mul(86_400_000));
        // The period's term lets the `(type_id, period)` index bound the scan: the
        // expired periods and the one `before` falls in, whose events' times are checked.
        let n = c
            .prepare_cached(&format!(
                "DELETE FROM events WHERE type_id = ?1 AND {EVENT_PERIOD} <= ?3 AND ts < ?2"
            ))?
            .execute(params![id, before, before / PERIOD_MS])? as u64;
        if n > 0 {
            total += n;
            removed.push(Change::EventsRemoved {
                app: AppId(app),
                event: EventCode::parse(&code)
                    .map_err(|_| StoreError::Internal(format!("stored event type {code}")))?,
                before,
            });
        }
    }
    for change in removed {
        w.emit(change);
    }
    Ok(total)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    /// Many rows per insert (an import) or one (the API): duplicates of earlier events,
    /// keys repeated inside one statement, events without a key and new customers mixed
    /// in one batch each get the
    /// outcome one insert per event gave them, with ids growing in the batch's order.
    #[test]
    fn a_batch_inserted_many_rows_at_a_time_answers_each_event() {
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
        let now = 1_796_083_200_000;
        let event = |key: Option<String>, customer: &str| NewEvent {
            by_identity: None,
            event_id: key,
            customer_id: CustomerId::parse(customer).unwrap(),
            event_type: code.clone(),
            channel: Channel::parse("web").unwrap(),
            device_id: None,
            timestamp: now - 1000,
            properties: Properties::default(),
        };
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

    /// Retention reads only the expiring periods of one type: its `DELETE` is bounded by
    /// the `(type_id, period)` index, not a scan of every event.
    #[test]
    fn retention_is_bounded_by_the_type_and_period_index() {
        let dir = tempfile::tempdir().unwrap();
        drop(super::super::SqliteStore::open(dir.path()).unwrap());
        let conn = Connection::open(dir.path().join(super::super::DB_FILE)).unwrap();
        let sql = format!(
            "EXPLAIN QUERY PLAN DELETE FROM events WHERE type_id = ?1 AND {EVENT_PERIOD} <= ?3 AND ts < ?2"
        );
        let mut stmt = conn.prepare(&sql).unwrap();
        let plan: Vec<String> = stmt
            .query_map(params![1, 2, 3], |r| r.get::<_, String>(3))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert!(
            plan.iter().any(|p| p
                .contains("USING INDEX events_by_type_period (type_id=? AND <expr><?)")
                || p.contains("USING INDEX events_by_type_period (type_id=? AND <expr><=?)")),
            "{plan:?}"
        );
        // Events at the edges of a period: its term never drops one that `ts` keeps.
        let p = PERIOD_MS;
        for ts in [p * 400, p * 400 + 1, p * 401 - 1] {
            for before in [ts, ts + 1, ts + p, ts + 86_400_000] {
                assert_eq!(ts < before, ts < before && ts / p <= before / p);
            }
        }
    }
}
