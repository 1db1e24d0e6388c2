//! Interactions on PostgreSQL: the event type registry, event writes, the timeline,
//! retention and scans. The behaviour is the embedded backend's (`sqlite/events.rs`); what
//! differs is how it holds with several writers committing at once.
//!
//! **A batch of events** is one transaction of a few set-based statements, whatever its
//! size:
//! 1. the application's shared lock (as every customer write takes it) and its types: an
//!    item of an unregistered or disabled type is refused alone. If the application
//!    registers types on first sight, the batch's unknown types are registered first (see
//!    [`Types::resolve`]), and the schema is logged before anything else of the batch;
//! 2. one lookup of the batch's keys: an item whose key is stored answers that event's id,
//!    a key repeated in the batch answers the first item's;
//! 3. one `SELECT … FOR KEY SHARE` of the customers the other items name, so none can be
//!    deleted or merged before this commits (writers of their values are not held back);
//!    for those not found, one such lookup through the aliases of merged customers (a
//!    customer merged while this waited for it is found there, as its survivor); and one
//!    multi-row insert, in customerId order, of those that do not exist, followed by a check
//!    that none of them was merged away meanwhile (see [`unmake_merged`]). Items addressed
//!    by an identity name its holder, or the anonymous customer to create (see
//!    `event_identities.rs`);
//! 4. the items' ids, taken from `event_ids` in the batch's order, then one
//!    `INSERT … SELECT FROM unnest(…) ORDER BY event_key ON CONFLICT DO NOTHING`. Rows go in
//!    in key order, so two batches sharing keys wait for each other's keys in one order and
//!    cannot deadlock. A key another batch inserted meanwhile makes the insert wait for that
//!    batch's end: once it committed, the row is skipped and answered as a duplicate; a
//!    customer created only for such rows is removed again, so a duplicate writes nothing;
//! 5. the customers created are logged (`Before::Created`), then one `Events` entry with
//!    the ids this transaction stored, as ranges (other batches' ids may interleave).
//!
//! Imports write their batches the same way ([`write_batch`]), see `event_imports.rs`.
//!
//! **Type changes, retention and deletions** take the application's exclusive lock: they
//! wait for the event writes in flight and hold new ones back, so what they remove and log
//! is exactly what a follower of the log holds at that point. Retention runs one
//! transaction per application that has events to remove.

use std::collections::{HashMap, HashSet};

use postgres::types::ToSql;
use postgres::{GenericClient, Row, Transaction};
use unico_core::limits::MAX_EVENT_TYPES_PER_APP;
use unico_core::{
    AppId, Channel, Customer, CustomerId, Event, EventCode, EventType, EventTypes, Properties,
};

use super::conn::{Db, Res};
use super::event_identities::Addressed;
use super::rows;
use super::writes::Wx;
use crate::changes::{Before, Change};
use crate::codec;
use crate::error::StoreError;
use crate::events::{
    Activity, EventOutcome, EventPage, EventQuery, EventTypePatch, NewEvent, id_ranges,
    parse_properties_text, properties_text,
};

const DAY_MS: i64 = 86_400_000;
/// How many times a batch inserts again what met a row that was deleted meanwhile (a
/// customer, or an event whose key it shared).
const INSERT_ROUNDS: usize = 3;
/// Events fetched per round trip by a scan.
const SCAN_BATCH: i32 = 1000;

const TYPE_COLUMNS: &str = "id, code, name, retention_days, enabled, properties, created_at";

fn stored_code(code: &str) -> StoreError {
    StoreError::Internal(format!("stored event type {code}"))
}

fn type_from_row(row: &Row) -> Res<(i64, EventType)> {
    let code: &str = row.try_get(1)?;
    let retention: i64 = row.try_get(3)?;
    let props: &str = row.try_get(5)?;
    Ok((
        row.try_get(0)?,
        EventType {
            code: EventCode::parse(code).map_err(|_| stored_code(code))?,
            name: row.try_get(2)?,
            retention_days: retention.clamp(1, i64::from(u32::MAX)) as u32,
            enabled: row.try_get(4)?,
            properties: parse_properties_text(props),
            created_at: row.try_get(6)?,
        },
    ))
}

/// The registered types of `app`, with their row ids, by code.
pub fn event_types<C: GenericClient>(db: &mut Db<'_, C>, app: AppId) -> Res<Vec<(i64, EventType)>> {
    db.query(
        &format!("SELECT {TYPE_COLUMNS} FROM event_types WHERE app_id = $1 ORDER BY code"),
        &[&app.0],
    )?
    .iter()
    .map(type_from_row)
    .collect()
}

pub fn registry<C: GenericClient>(db: &mut Db<'_, C>, app: AppId) -> Res<EventTypes> {
    Ok(EventTypes::new(
        event_types(db, app)?.into_iter().map(|(_, t)| t).collect(),
    ))
}

fn type_row(w: &mut Wx<'_, '_>, app: AppId, code: &EventCode) -> Res<(i64, EventType)> {
    w.db.query_opt(
        &format!("SELECT {TYPE_COLUMNS} FROM event_types WHERE app_id = $1 AND code = $2"),
        &[&app.0, &code.as_str()],
    )?
    .map(|row| type_from_row(&row))
    .transpose()?
    .ok_or_else(|| StoreError::NotFound(format!("event type \"{code}\"")).into())
}

pub fn create_type(w: &mut Wx<'_, '_>, app: AppId, t: &EventType) -> Res<EventType> {
    w.own_app(app)?;
    let existing = event_types(&mut w.db, app)?;
    if existing.iter().any(|(_, e)| e.code == t.code) {
        return Err(
            StoreError::Conflict(format!("event type \"{}\" exists already", t.code)).into(),
        );
    }
    if existing.len() >= MAX_EVENT_TYPES_PER_APP {
        return Err(StoreError::Limit(format!(
            "an application registers at most {MAX_EVENT_TYPES_PER_APP} event types"
        ))
        .into());
    }
    w.db.execute(
        "INSERT INTO event_types (app_id, code, name, retention_days, enabled, properties, created_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
        &[
            &app.0,
            &t.code.as_str(),
            &t.name,
            &i64::from(t.retention_days),
            &t.enabled,
            &properties_text(&t.properties),
            &t.created_at,
        ],
    )?;
    let schema = w.schema(app)?;
    w.emit(Change::Schema { app, schema });
    Ok(t.clone())
}

pub fn update_type(
    w: &mut Wx<'_, '_>,
    app: AppId,
    code: &EventCode,
    patch: &EventTypePatch,
) -> Res<EventType> {
    w.own_app(app)?;
    let (id, mut t) = type_row(w, app, code)?;
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
    w.db.execute(
        "UPDATE event_types SET name = $2, retention_days = $3, enabled = $4, properties = $5
         WHERE id = $1",
        &[
            &id,
            &t.name,
            &i64::from(t.retention_days),
            &t.enabled,
            &properties_text(&t.properties),
        ],
    )?;
    let schema = w.schema(app)?;
    w.emit(Change::Schema { app, schema });
    Ok(t)
}

pub fn delete_type(w: &mut Wx<'_, '_>, app: AppId, code: &EventCode) -> Res<u64> {
    w.own_app(app)?;
    let (id, t) = type_row(w, app, code)?;
    let fields: Vec<_> = super::rows::field_stats(&mut w.db, app)?
        .into_iter()
        .map(|s| s.field)
        .collect();
    crate::live::refuse_type_in_use(&fields, code)?;
    let removed =
        w.db.execute("DELETE FROM events WHERE type_id = $1", &[&id])?;
    w.db.execute("DELETE FROM event_types WHERE id = $1", &[&id])?;
    w.emit(Change::EventsRemoved {
        app,
        event: t.code,
        before: i64::MAX,
    });
    let schema = w.schema(app)?;
    w.emit(Change::Schema { app, schema });
    Ok(removed)
}

fn duplicate(id: i64) -> Result<EventOutcome, StoreError> {
    Ok(EventOutcome {
        id,
        duplicate: true,
        customer_created: false,
    })
}

/// The ids of the application's events holding these keys.
///
/// Lookups of a batch's keys and customers run a `LATERAL` subquery per item of the
/// `unnest`ed list (a subquery with `LIMIT` or a locking clause is never flattened into a
/// join): one index probe per item, whatever the table's statistics say. Both `= ANY($n)`
/// and a plain join were seen to read every row of the application instead (comparing each
/// with every item, or hashing them all) on a table grown since its last analysis.
fn stored_keys(
    db: &mut Db<'_, Transaction<'_>>,
    app: AppId,
    keys: &[&str],
) -> Res<HashMap<String, i64>> {
    let mut found = HashMap::new();
    for row in db.query(
        "SELECT k.event_key, e.id FROM unnest($2::text[]) AS k(event_key)
         CROSS JOIN LATERAL (SELECT id FROM events
             WHERE app_id = $1 AND event_key = k.event_key AND event_key IS NOT NULL LIMIT 1) e",
        &[&app.0, &keys],
    )? {
        found.insert(row.try_get(0)?, row.try_get(1)?);
    }
    Ok(found)
}

fn kept_changing() -> StoreError {
    StoreError::Conflict(
        "the customers or event keys of this batch kept being written and deleted by other writes; retry".into(),
    )
}

/// The application's event types as one write sees them (row id and whether each is
/// enabled, by code), and whether it registers unknown ones on first sight.
pub struct Types {
    app: AppId,
    by_code: HashMap<EventCode, (i64, bool)>,
    /// The application's setting ([`crate::events::auto_register_key`]), read in the
    /// write's transaction the first time an unknown type needs it.
    auto_register: Option<bool>,
    /// This write registered types: the schema changed.
    registered: bool,
}

impl Types {
    /// The types, read in the write's transaction (under the application's shared lock, so
    /// no type change, and no registration by a write this one did not see, can commit
    /// before it).
    pub fn load(w: &mut Wx<'_, '_>, app: AppId) -> Res<Types> {
        let mut types = Types {
            app,
            by_code: HashMap::new(),
            auto_register: None,
            registered: false,
        };
        types.reload(w)?;
        Ok(types)
    }

    /// Whether the application registers unknown types on first sight.
    pub fn auto_register(&mut self, w: &mut Wx<'_, '_>) -> Res<bool> {
        if let Some(on) = self.auto_register {
            return Ok(on);
        }
        let on = match w.db.query_opt(
            "SELECT value FROM meta WHERE key = $1",
            &[&crate::events::auto_register_key(self.app)],
        )? {
            Some(row) => row.try_get::<_, &str>(0)? == "true",
            None => false,
        };
        self.auto_register = Some(on);
        Ok(on)
    }

    fn reload(&mut self, w: &mut Wx<'_, '_>) -> Res<()> {
        self.by_code = event_types(&mut w.db, self.app)?
            .into_iter()
            .map(|(id, t)| (t.code, (id, t.enabled)))
            .collect();
        Ok(())
    }

    /// Each item's type row id, or why the item is refused (`Invalid`: its type is not
    /// registered, or disabled). With auto-registration on, the unknown types of the batch
    /// are registered first, in the order the batch names them, as far as the limit of
    /// [`MAX_EVENT_TYPES_PER_APP`] allows.
    ///
    /// Registrations of one application take turns ([`Wx::registration_turn`], held until
    /// commit), so the limit holds whatever runs at once, and two writes registering the
    /// same type do not collide: the second finds the type the first committed.
    pub fn resolve(
        &mut self,
        w: &mut Wx<'_, '_>,
        events: &[NewEvent],
        now: i64,
    ) -> Res<Vec<Result<i64, StoreError>>> {
        let mut seen: HashSet<&EventCode> = HashSet::new();
        let unknown: Vec<&EventCode> = events
            .iter()
            .map(|e| &e.event_type)
            .filter(|c| !self.by_code.contains_key(*c) && seen.insert(*c))
            .collect();
        let auto_register = !unknown.is_empty() && self.auto_register(w)?;
        if auto_register {
            self.register(w, &unknown, now)?;
        }
        Ok(events
            .iter()
            .map(|e| match self.by_code.get(&e.event_type) {
                Some(&(id, true)) => Ok(id),
                Some(&(_, false)) => Err(StoreError::Invalid(format!(
                    "the event type \"{}\" is disabled; enable it to store its events",
                    e.event_type
                ))),
                None if auto_register => Err(StoreError::Invalid(format!(
                    "the event type \"{}\" would be registered automatically, but the application holds the most event types it may ({MAX_EVENT_TYPES_PER_APP})",
                    e.event_type
                ))),
                None => Err(StoreError::Invalid(format!(
                    "the event type \"{}\" is not registered in this application; register it first (POST …/event-types)",
                    e.event_type
                ))),
            })
            .collect())
    }

    /// Registers `codes` (name = code, the default retention, enabled, no declared
    /// properties), those that still fit under the limit.
    fn register(&mut self, w: &mut Wx<'_, '_>, codes: &[&EventCode], now: i64) -> Res<()> {
        w.registration_turn(self.app)?;
        // What committed before the turn came to this write (another write's registrations
        // of the same codes, say).
        self.reload(w)?;
        let room = MAX_EVENT_TYPES_PER_APP.saturating_sub(self.by_code.len());
        let wanted: Vec<&str> = codes
            .iter()
            .filter(|c| !self.by_code.contains_key(**c))
            .take(room)
            .map(|c| c.as_str())
            .collect();
        if wanted.is_empty() {
            return Ok(());
        }
        w.db.execute(
            "INSERT INTO event_types (app_id, code, name, retention_days, enabled, properties, created_at)
             SELECT $1, r.code, r.code, $3, true, '', $4
             FROM unnest($2::text[]) WITH ORDINALITY AS r(code, ord) ORDER BY r.ord
             ON CONFLICT (app_id, code) DO NOTHING",
            &[
                &self.app.0,
                &wanted,
                &i64::from(unico_core::event::DEFAULT_RETENTION_DAYS),
                &now,
            ],
        )?;
        self.registered = true;
        self.reload(w)
    }

    /// Logs the schema if this write registered types: before anything else the write
    /// logs, so a follower knows the types before it meets their events.
    pub fn announce(&self, w: &mut Wx<'_, '_>) -> Res<()> {
        if self.registered {
            let schema = w.schema(self.app)?;
            w.emit(Change::Schema {
                app: self.app,
                schema,
            });
        }
        Ok(())
    }
}

/// Writes a batch of events in the caller's transaction (see the module docs); answers per
/// item, in order.
pub fn insert(
    w: &mut Wx<'_, '_>,
    app: AppId,
    events: &[NewEvent],
    now: i64,
) -> Res<Vec<Result<EventOutcome, StoreError>>> {
    w.share_app_lock(app)?;
    let mut types = Types::load(w, app)?;
    let type_ids = types.resolve(w, events, now)?;
    let written = write_batch(w, app, events, type_ids, now, &mut HeldCustomers::none())?;
    types.announce(w)?;
    for customer in written.created {
        w.emit(Change::Customer {
            app,
            customer,
            before: Before::Created,
        });
    }
    if !written.stored.is_empty() {
        let mut ids = written.stored;
        w.emit(Change::Events {
            app,
            ranges: id_ranges(&mut ids),
        });
    }
    Ok(written.answers)
}

/// What one batch wrote.
pub struct BatchWritten {
    /// Per item, in order.
    pub answers: Vec<Result<EventOutcome, StoreError>>,
    /// The customers it created, in the order of their first stored event.
    pub created: Vec<Customer>,
    /// The ids of the events it stored, ascending.
    pub stored: Vec<i64>,
}

/// Customers a transaction already holds: found and locked, or created, by its earlier
/// batches (an import's), by customerId. Their row ids cannot change or vanish before the
/// transaction ends: a found customer stays locked against deletion until then, and one it
/// created is invisible to every other write. A later batch naming them needs no lookup.
pub struct HeldCustomers {
    rows: HashMap<Box<str>, i64>,
    /// How many it holds at most; past it, customers are looked up again.
    limit: usize,
}

impl HeldCustomers {
    /// Remembers up to `limit` customers (about 60–100 bytes each).
    pub fn new(limit: usize) -> Self {
        HeldCustomers {
            rows: HashMap::new(),
            limit,
        }
    }

    /// For one batch alone: remembers none.
    fn none() -> Self {
        Self::new(0)
    }

    fn get(&self, customer_id: &str) -> Option<i64> {
        self.rows.get(customer_id).copied()
    }

    fn remember(&mut self, customer_id: &str, id: i64) {
        if self.rows.len() < self.limit && !self.rows.contains_key(customer_id) {
            self.rows.insert(customer_id.into(), id);
        }
    }
}

/// Writes a batch in the caller's transaction (steps 2 to 4 of the module docs), its types
/// resolved: an item whose type is an error is answered with it and writes nothing. The
/// caller holds the application's shared lock, and logs what was written; `held` are the
/// customers its transaction holds already, and learns those of this batch.
pub fn write_batch(
    w: &mut Wx<'_, '_>,
    app: AppId,
    events: &[NewEvent],
    types: Vec<Result<i64, StoreError>>,
    now: i64,
    held: &mut HeldCustomers,
) -> Res<BatchWritten> {
    let mut answers: Vec<Option<Result<EventOutcome, StoreError>>> = vec![None; events.len()];
    let mut type_ids = vec![0i64; events.len()];
    // The first item of each key, and the later items answered as it is.
    let mut first_with_key: HashMap<&str, usize> = HashMap::new();
    let mut repeats: Vec<(usize, usize)> = Vec::new();
    // The items still to store, in batch order.
    let mut pending: Vec<usize> = Vec::with_capacity(events.len());
    // Items addressed by an identity: whose it is, or which are refused for naming nobody.
    let addressed = Addressed::resolve(w, app, events, &types, &mut answers)?;
    for (i, (e, t)) in events.iter().zip(types).enumerate() {
        match t {
            Ok(id) => type_ids[i] = id,
            Err(refused) => {
                answers[i] = Some(Err(refused));
                continue;
            }
        }
        if answers[i].is_some() {
            continue;
        }
        if let Some(key) = e.event_id.as_deref() {
            if let Some(&first) = first_with_key.get(key) {
                repeats.push((i, first));
                continue;
            }
            first_with_key.insert(key, i);
        }
        pending.push(i);
    }
    if !first_with_key.is_empty() {
        let keys: Vec<&str> = first_with_key.keys().copied().collect();
        for (key, id) in stored_keys(&mut w.db, app, &keys)? {
            if let Some(&i) = first_with_key.get(key.as_str()) {
                answers[i] = Some(duplicate(id));
            }
        }
        pending.retain(|&i| answers[i].is_none());
    }

    // The customer each item lands on.
    let names: Vec<&CustomerId> = events
        .iter()
        .enumerate()
        .map(|(i, e)| addressed.name(i).unwrap_or(&e.customer_id))
        .collect();
    let (customer_rows, created) = customers(w, app, events, &names, &pending, now, held)?;
    // Each item's customer row (for the items to store).
    let mut item_customers = vec![0i64; events.len()];
    for &i in &pending {
        item_customers[i] = customer_rows
            .get(names[i].as_str())
            .copied()
            .ok_or_else(|| StoreError::Internal("an event's customer was lost".into()))?;
    }
    let mut stored = store_rows(
        w,
        app,
        events,
        &type_ids,
        &item_customers,
        &pending,
        &mut answers,
    )?;

    // A created customer belongs to its first stored event; one left without any (its
    // events were stored by another batch meanwhile) is removed, unlogged.
    stored.sort_unstable();
    let mut first_stored: HashMap<&str, usize> = HashMap::new();
    for &(i, _) in &stored {
        first_stored.entry(names[i].as_str()).or_insert(i);
    }
    let mut kept: Vec<(usize, Customer)> = Vec::with_capacity(created.len());
    let mut unused: Vec<i64> = Vec::new();
    for mut customer in created {
        let Some(&i) = first_stored.get(customer.customer_id.as_str()) else {
            unused.push(customer.id);
            continue;
        };
        if let Some(Ok(outcome)) = &mut answers[i] {
            outcome.customer_created = true;
        }
        let at = events[i].timestamp.min(now);
        if at != customer.created_at {
            w.db.execute(
                "UPDATE customers SET created_at = $2, updated_at = $2 WHERE id = $1",
                &[&customer.id, &at],
            )?;
            customer.created_at = at;
            customer.updated_at = at;
        }
        kept.push((i, customer));
    }
    if !unused.is_empty() {
        w.db.execute("DELETE FROM customers WHERE id = ANY($1)", &[&unused])?;
    }
    addressed.attach(w, app, &customer_rows, &kept, &answers, now)?;
    if held.limit > 0 {
        for (customer_id, &id) in &customer_rows {
            if !unused.contains(&id) {
                held.remember(customer_id, id);
            }
        }
    }
    for (i, first) in repeats {
        answers[i] = Some(match &answers[first] {
            Some(Ok(outcome)) => duplicate(outcome.id),
            // Refused for its identity: so is the repeat.
            Some(Err(refused)) => Err(refused.clone()),
            None => return Err(StoreError::Internal("a repeated key lost its event".into()).into()),
        });
    }

    kept.sort_unstable_by_key(|(i, _)| *i);
    let answers = answers
        .into_iter()
        .map(|a| a.ok_or_else(|| StoreError::Internal("an event was left unanswered".into())))
        .collect::<Result<_, _>>()?;
    let mut ids: Vec<i64> = stored.iter().map(|&(_, id)| id).collect();
    ids.sort_unstable();
    Ok(BatchWritten {
        answers,
        created: kept.into_iter().map(|(_, c)| c).collect(),
        stored: ids,
    })
}

/// The row ids of the customers the items to store name: held already, found and locked
/// against deletion (`FOR KEY SHARE`), or created (in customerId order); answers them and
/// the customers created, each made at its first item's time.
fn customers<'e>(
    w: &mut Wx<'_, '_>,
    app: AppId,
    events: &[NewEvent],
    names: &[&'e CustomerId],
    pending: &[usize],
    now: i64,
    held: &HeldCustomers,
) -> Res<(HashMap<&'e str, i64>, Vec<Customer>)> {
    let mut customer_rows: HashMap<&str, i64> = HashMap::new();
    let mut missing: Vec<&str> = Vec::new();
    // Each customer's first item: when it is made, and its customerId.
    let mut first: HashMap<&str, (i64, &CustomerId)> = HashMap::new();
    for &i in pending {
        let name = names[i];
        if let Some(id) = held.get(name.as_str()) {
            customer_rows.insert(name.as_str(), id);
            continue;
        }
        if let std::collections::hash_map::Entry::Vacant(v) = first.entry(name.as_str()) {
            v.insert((events[i].timestamp.min(now), name));
            missing.push(name.as_str());
        }
    }
    let mut created: Vec<Customer> = Vec::new();
    let empty = codec::encode(&[]);
    let mut round = 0;
    while !missing.is_empty() {
        if round == INSERT_ROUNDS {
            return Err(kept_changing().into());
        }
        round += 1;
        let wanted: HashSet<&str> = missing.iter().copied().collect();
        for row in w.db.query(
            "SELECT c.id, c.customer_id FROM unnest($2::text[]) AS r(customer_id)
             CROSS JOIN LATERAL (SELECT id, customer_id FROM customers
                 WHERE app_id = $1 AND customer_id = r.customer_id FOR KEY SHARE) c",
            &[&app.0, &missing],
        )? {
            let customer_id: &str = row.try_get(1)?;
            if let Some(&name) = wanted.get(customer_id) {
                customer_rows.insert(name, row.try_get(0)?);
            }
        }
        missing.retain(|c| !customer_rows.contains_key(c));
        if missing.is_empty() {
            break;
        }
        // The customerIds of merged customers lead to their survivors.
        for row in w.db.query(
            "SELECT r.customer_id, c.id FROM unnest($2::text[]) AS r(customer_id)
             CROSS JOIN LATERAL (SELECT c.id FROM customer_aliases a JOIN customers c ON c.id = a.customer
                 WHERE a.app_id = $1 AND a.alias = r.customer_id FOR KEY SHARE OF c) c",
            &[&app.0, &missing],
        )? {
            let alias: &str = row.try_get(0)?;
            if let Some(&name) = wanted.get(alias) {
                customer_rows.insert(name, row.try_get(1)?);
            }
        }
        missing.retain(|c| !customer_rows.contains_key(c));
        if missing.is_empty() {
            break;
        }
        let times: Vec<i64> = missing.iter().map(|c| first[c].0).collect();
        let created_before = created.len();
        for row in w.db.query(
            "INSERT INTO customers (app_id, customer_id, created_at, updated_at, data)
             SELECT $1, r.customer_id, r.at, r.at, $4
             FROM unnest($2::text[], $3::bigint[]) AS r(customer_id, at)
             ORDER BY r.customer_id COLLATE \"C\"
             ON CONFLICT (app_id, customer_id) DO NOTHING
             RETURNING id, customer_id, created_at",
            &[&app.0, &missing, &times, &empty],
        )? {
            let customer_id: &str = row.try_get(1)?;
            let Some(&name) = wanted.get(customer_id) else {
                continue;
            };
            let id: i64 = row.try_get(0)?;
            let at: i64 = row.try_get(2)?;
            customer_rows.insert(name, id);
            created.push(Customer {
                id,
                customer_id: first[name].1.clone(),
                created_at: at,
                updated_at: at,
                fields: Vec::new(),
            });
        }
        unmake_merged(w, app, &mut created, created_before, &mut customer_rows)?;
        // Any left were created (or merged) by another write meanwhile: the next round
        // finds them (or their survivor).
        missing.retain(|c| !customer_rows.contains_key(c));
    }

    Ok((customer_rows, created))
}

/// Removes again the customers just created (`created[from..]`) whose customerId turned out
/// to be an alias: an insert that waited for a merge deleting the same customerId goes in
/// once the merge commits, and only a statement after it sees the merge's alias.
fn unmake_merged(
    w: &mut Wx<'_, '_>,
    app: AppId,
    created: &mut Vec<Customer>,
    from: usize,
    customer_rows: &mut HashMap<&str, i64>,
) -> Res<()> {
    if created.len() == from {
        return Ok(());
    }
    let names: Vec<&str> = created[from..]
        .iter()
        .map(|c| c.customer_id.as_str())
        .collect();
    let merged: HashSet<String> =
        w.db.query(
            "SELECT a.alias FROM unnest($2::text[]) AS r(customer_id)
             CROSS JOIN LATERAL (SELECT alias FROM customer_aliases
                 WHERE app_id = $1 AND alias = r.customer_id LIMIT 1) a",
            &[&app.0, &names],
        )?
        .iter()
        .map(|r| r.try_get(0))
        .collect::<Result<_, _>>()?;
    if merged.is_empty() {
        return Ok(());
    }
    let mut ids = Vec::new();
    let mut i = from;
    while i < created.len() {
        if merged.contains(created[i].customer_id.as_str()) {
            let customer = created.remove(i);
            customer_rows.remove(customer.customer_id.as_str());
            ids.push(customer.id);
        } else {
            i += 1;
        }
    }
    w.db.execute("DELETE FROM customers WHERE id = ANY($1)", &[&ids])?;
    Ok(())
}

/// Inserts the items still to store (see the module docs, step 4), answering each as stored
/// or as a duplicate of the event another batch stored meanwhile; answers the stored items
/// and their ids.
fn store_rows(
    w: &mut Wx<'_, '_>,
    app: AppId,
    events: &[NewEvent],
    type_ids: &[i64],
    item_customers: &[i64],
    pending: &[usize],
    answers: &mut [Option<Result<EventOutcome, StoreError>>],
) -> Res<Vec<(usize, i64)>> {
    // Each item's id, taken in the batch's order.
    let mut to_insert: Vec<(usize, i64)> = Vec::with_capacity(pending.len());
    if !pending.is_empty() {
        let mut ids: Vec<i64> =
            w.db.query(
                "SELECT nextval('event_ids') FROM generate_series(1, $1::bigint)",
                &[&(pending.len() as i64)],
            )?
            .iter()
            .map(|r| r.try_get(0))
            .collect::<Result<_, _>>()?;
        ids.sort_unstable();
        to_insert.extend(pending.iter().copied().zip(ids));
    }
    let mut stored: Vec<(usize, i64)> = Vec::with_capacity(to_insert.len());
    let mut round = 0;
    while !to_insert.is_empty() {
        if round == INSERT_ROUNDS {
            return Err(kept_changing().into());
        }
        round += 1;
        let mut cols = EventColumns::with_capacity(to_insert.len());
        for &(i, id) in &to_insert {
            let e = &events[i];
            cols.push(id, item_customers[i], type_ids[i], e);
        }
        let inserted: HashSet<i64> = w
            .db
            .query(
                "INSERT INTO events (id, app_id, customer, type_id, channel, device_id, ts, event_key, properties)
                 SELECT r.id, $1, r.customer, r.type_id, r.channel, r.device_id, r.ts, r.event_key, r.properties
                 FROM unnest($2::bigint[], $3::bigint[], $4::bigint[], $5::text[], $6::text[], $7::bigint[],
                             $8::text[], $9::text[])
                     AS r(id, customer, type_id, channel, device_id, ts, event_key, properties)
                 ORDER BY r.event_key COLLATE \"C\"
                 ON CONFLICT (app_id, event_key) WHERE event_key IS NOT NULL DO NOTHING
                 RETURNING id",
                &[
                    &app.0,
                    &cols.id,
                    &cols.customer,
                    &cols.type_id,
                    &cols.channel,
                    &cols.device_id,
                    &cols.ts,
                    &cols.key,
                    &cols.properties,
                ],
            )?
            .iter()
            .map(|r| r.try_get(0))
            .collect::<Result<_, _>>()?;
        let mut lost = Vec::new();
        for (i, id) in to_insert.drain(..) {
            if inserted.contains(&id) {
                stored.push((i, id));
                answers[i] = Some(Ok(EventOutcome {
                    id,
                    duplicate: false,
                    customer_created: false,
                }));
            } else {
                lost.push((i, id));
            }
        }
        if lost.is_empty() {
            break;
        }
        // Their keys were stored by batches that committed while this one waited.
        let keys: Vec<&str> = lost
            .iter()
            .filter_map(|&(i, _)| events[i].event_id.as_deref())
            .collect();
        let found = stored_keys(&mut w.db, app, &keys)?;
        for (i, id) in lost {
            match events[i].event_id.as_deref().and_then(|k| found.get(k)) {
                Some(&first) => answers[i] = Some(duplicate(first)),
                // Stored, then deleted with its customer meanwhile: the key is free again.
                None => to_insert.push((i, id)),
            }
        }
    }

    Ok(stored)
}

/// A batch's rows as the arrays of one insert.
struct EventColumns<'a> {
    id: Vec<i64>,
    customer: Vec<i64>,
    type_id: Vec<i64>,
    channel: Vec<&'a str>,
    device_id: Vec<Option<&'a str>>,
    ts: Vec<i64>,
    key: Vec<Option<&'a str>>,
    properties: Vec<Option<String>>,
}

impl<'a> EventColumns<'a> {
    fn with_capacity(n: usize) -> Self {
        EventColumns {
            id: Vec::with_capacity(n),
            customer: Vec::with_capacity(n),
            type_id: Vec::with_capacity(n),
            channel: Vec::with_capacity(n),
            device_id: Vec::with_capacity(n),
            ts: Vec::with_capacity(n),
            key: Vec::with_capacity(n),
            properties: Vec::with_capacity(n),
        }
    }

    fn push(&mut self, id: i64, customer: i64, type_id: i64, e: &'a NewEvent) {
        self.id.push(id);
        self.customer.push(customer);
        self.type_id.push(type_id);
        self.channel.push(e.channel.as_str());
        self.device_id.push(e.device_id.as_deref());
        self.ts.push(e.timestamp);
        self.key.push(e.event_id.as_deref());
        self.properties
            .push((!e.properties.is_empty()).then(|| e.properties.to_json_text()));
    }
}

/// An event from a row of `id, customer, <type>, channel, device_id, ts, event_key,
/// properties`, its type given.
fn event_from_row(row: &Row, event_type: EventCode) -> Res<Event> {
    let channel: &str = row.try_get(3)?;
    let props: Option<&str> = row.try_get(7)?;
    let bad = |what: &str| StoreError::Internal(format!("a stored event's {what} is unreadable"));
    Ok(Event {
        id: row.try_get(0)?,
        customer: row.try_get(1)?,
        event_type,
        channel: Channel::parse(channel).map_err(|_| bad("channel"))?,
        device_id: row.try_get(4)?,
        timestamp: row.try_get(5)?,
        event_id: row.try_get(6)?,
        properties: match props {
            Some(text) => Properties::from_stored(text).map_err(|_| bad("properties"))?,
            None => Properties::default(),
        },
    })
}

/// Columns of an event with its type's code, for [`event_with_code`].
const EVENT_COLUMNS: &str =
    "e.id, e.customer, t.code, e.channel, e.device_id, e.ts, e.event_key, e.properties";

fn event_with_code(row: &Row) -> Res<Event> {
    let code: &str = row.try_get(2)?;
    event_from_row(row, EventCode::parse(code).map_err(|_| stored_code(code))?)
}

/// The row id of a customer (or of the survivor of an alias); `NotFound` if there is none.
fn customer_row<C: GenericClient>(
    db: &mut Db<'_, C>,
    app: AppId,
    customer_id: &CustomerId,
) -> Res<i64> {
    rows::customer_row(db, app, customer_id)?.ok_or_else(|| rows::not_found(customer_id).into())
}

/// One page of a customer's events, newest first: the `(customer, ts, id)` index read
/// backwards from the cursor, one row more than asked to know whether a page follows.
pub fn timeline<C: GenericClient>(
    db: &mut Db<'_, C>,
    app: AppId,
    customer_id: &CustomerId,
    q: &EventQuery,
) -> Res<EventPage> {
    let customer = customer_row(db, app, customer_id)?;
    let mut sql = format!(
        "SELECT {EVENT_COLUMNS} FROM events e JOIN event_types t ON t.id = e.type_id
         WHERE e.app_id = $1 AND e.customer = $2"
    );
    let mut args: Vec<Box<dyn ToSql + Sync>> = vec![Box::new(app.0), Box::new(customer)];
    let mut arg = |sql: &mut String, condition: &str, value: Box<dyn ToSql + Sync>| {
        args.push(value);
        sql.push_str(&condition.replace('?', &format!("${}", args.len())));
    };
    if !q.types.is_empty() {
        let codes: Vec<String> = q.types.iter().map(|t| t.as_str().to_owned()).collect();
        arg(&mut sql, " AND t.code = ANY(?)", Box::new(codes));
    }
    if !q.channels.is_empty() {
        let channels: Vec<String> = q.channels.iter().map(|c| c.as_str().to_owned()).collect();
        arg(&mut sql, " AND e.channel = ANY(?)", Box::new(channels));
    }
    if let Some(from) = q.from {
        arg(&mut sql, " AND e.ts >= ?", Box::new(from));
    }
    if let Some(to) = q.to {
        arg(&mut sql, " AND e.ts < ?", Box::new(to));
    }
    if let Some((ts, id)) = q.after {
        arg(&mut sql, " AND (e.ts, e.id) < (?", Box::new(ts));
        arg(&mut sql, ", ?)", Box::new(id));
    }
    let limit = i64::try_from(q.limit.saturating_add(1)).unwrap_or(i64::MAX);
    arg(
        &mut sql,
        " ORDER BY e.ts DESC, e.id DESC LIMIT ?",
        Box::new(limit),
    );
    let params: Vec<&(dyn ToSql + Sync)> = args.iter().map(|a| a.as_ref()).collect();
    let mut events = db
        .query(&sql, &params)?
        .iter()
        .map(event_with_code)
        .collect::<Res<Vec<Event>>>()?;
    let next = if events.len() > q.limit {
        events.truncate(q.limit);
        events.last().map(|e| (e.timestamp, e.id))
    } else {
        None
    };
    Ok(EventPage { events, next })
}

pub fn activity<C: GenericClient>(
    db: &mut Db<'_, C>,
    app: AppId,
    customer_id: &CustomerId,
) -> Res<Activity> {
    let customer = customer_row(db, app, customer_id)?;
    let row = db.query_one(
        "SELECT count(*), min(ts), max(ts), array_agg(DISTINCT channel) FROM events
         WHERE app_id = $1 AND customer = $2",
        &[&app.0, &customer],
    )?;
    let events: i64 = row.try_get(0)?;
    let channels: Option<Vec<String>> = row.try_get(3)?;
    let mut channels: Vec<Channel> = channels
        .unwrap_or_default()
        .iter()
        .filter_map(|c| Channel::parse(c).ok())
        .collect();
    // Byte order, whatever the database's collation.
    channels.sort_unstable();
    Ok(Activity {
        events: events.max(0) as u64,
        first_seen: row.try_get(1)?,
        last_seen: row.try_get(2)?,
        channels,
    })
}

pub fn read_range<C: GenericClient>(
    db: &mut Db<'_, C>,
    app: AppId,
    from: i64,
    to: i64,
    limit: usize,
) -> Res<Vec<Event>> {
    db.query(
        &format!(
            "SELECT {EVENT_COLUMNS} FROM events e JOIN event_types t ON t.id = e.type_id
             WHERE e.app_id = $1 AND e.id BETWEEN $2 AND $3 ORDER BY e.id LIMIT $4"
        ),
        &[
            &app.0,
            &from,
            &to,
            &i64::try_from(limit).unwrap_or(i64::MAX),
        ],
    )?
    .iter()
    .map(event_with_code)
    .collect()
}

/// Visits the application's events in id order, streamed in batches from one portal of
/// the caller's (snapshot) transaction, until `visit` answers false.
pub fn scan(
    db: &mut Db<'_, Transaction<'_>>,
    app: AppId,
    visit: &mut dyn FnMut(Event) -> bool,
) -> Res<()> {
    // The types once, rather than a join per event.
    let codes: HashMap<i64, EventCode> = event_types(db, app)?
        .into_iter()
        .map(|(id, t)| (id, t.code))
        .collect();
    let stmt = db.prepare(
        "SELECT id, customer, type_id, channel, device_id, ts, event_key, properties
         FROM events WHERE app_id = $1 ORDER BY id",
    )?;
    let portal = db.c.bind(&stmt, &[&app.0])?;
    loop {
        let batch = db.c.query_portal(&portal, SCAN_BATCH)?;
        if batch.is_empty() {
            return Ok(());
        }
        for row in &batch {
            let type_id: i64 = row.try_get(2)?;
            let code = codes
                .get(&type_id)
                .cloned()
                .ok_or_else(|| StoreError::Internal(format!("stored event type {type_id}")))?;
            if !visit(event_from_row(row, code)?) {
                return Ok(());
            }
        }
    }
}

/// The applications holding events past their type's retention at `now`, in id order
/// (read without locks: [`expire_app`] decides under the application's lock).
pub fn due<C: GenericClient>(db: &mut Db<'_, C>, now: i64) -> Res<Vec<AppId>> {
    let (mut ids, mut apps, mut befores) = (Vec::new(), Vec::new(), Vec::new());
    for row in db.query("SELECT id, app_id, retention_days FROM event_types", &[])? {
        ids.push(row.try_get::<_, i64>(0)?);
        apps.push(row.try_get::<_, i64>(1)?);
        befores.push(retention_start(now, row.try_get(2)?));
    }
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    db.query(
        "SELECT DISTINCT t.app_id FROM unnest($1::bigint[], $2::bigint[], $3::bigint[]) AS t(id, app_id, before)
         WHERE EXISTS (SELECT 1 FROM events e WHERE e.type_id = t.id AND e.ts < t.before)
         ORDER BY t.app_id",
        &[&ids, &apps, &befores],
    )?
    .iter()
    .map(|r| Ok(AppId(r.try_get(0)?)))
    .collect()
}

/// The first instant a type's retention keeps at `now`.
fn retention_start(now: i64, days: i64) -> i64 {
    now.saturating_sub(days.saturating_mul(DAY_MS))
}

/// Removes the application's events past their type's retention at `now`, logging one
/// [`Change::EventsRemoved`] per type that lost events; answers how many went. The
/// exclusive lock makes the removal and its entry agree: no event write commits between
/// the deletes' snapshot and the entry.
pub fn expire_app(w: &mut Wx<'_, '_>, app: AppId, now: i64) -> Res<u64> {
    w.own_app(app)?;
    let mut types = event_types(&mut w.db, app)?;
    types.sort_unstable_by_key(|(id, _)| *id);
    let mut total = 0;
    for (id, t) in types {
        let before = retention_start(now, i64::from(t.retention_days));
        let n = w.db.execute(
            "DELETE FROM events WHERE type_id = $1 AND ts < $2",
            &[&id, &before],
        )?;
        if n > 0 {
            total += n;
            w.emit(Change::EventsRemoved {
                app,
                event: t.code,
                before,
            });
        }
    }
    Ok(total)
}
