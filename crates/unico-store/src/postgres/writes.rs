//! Writes inside one transaction: the write context, the per-application locks, customer
//! writes and the value counts they keep.
//!
//! **Locks, always taken in this order** (so writers never wait on each other in a cycle):
//! 1. the application's advisory lock ([`APP_LOCK`]): shared by customer writes, exclusive
//!    for schema changes and deleting the application, so a write checks its values against
//!    fields that cannot change or vanish before it commits. Then, for imports and merges
//!    only, the application's import turn ([`IMPORT_LOCK`], see [`Wx::merge_turn`]);
//!    then, for writes that register event types on first sight, the application's
//!    registration turn ([`REGISTER_LOCK`]; an import that may register takes it at its
//!    start, before any row);
//! 2. customer rows (`FOR NO KEY UPDATE`, or the insert's own lock): writers of one
//!    customer take turns, each reading the state the previous one committed. Event writes
//!    only share them (`FOR KEY SHARE`: the customer must not be deleted meanwhile), which
//!    does not hold back writers of its values; deleting a customer waits for both. A merge
//!    locks its two customers in id order, the merged one `FOR UPDATE` (it is deleted),
//!    the survivor `FOR NO KEY UPDATE`; a writer that waited for a merged customer finds
//!    it gone and follows its alias to the survivor (see `identities.rs`);
//! 3. event keys (the unique index entries of `events`), in ascending key order (see
//!    `events.rs`);
//! 4. `fields` rows, when value counts move, in ascending field id;
//! 5. the `log_head` row, last of all (see `log.rs`).
//!
//! Only a batch or an import that touches several existing customers in an order another
//! one reverses can still meet a deadlock; PostgreSQL then aborts one of them, and a batch
//! is run again from the start ([`Fail::retryable`](super::conn::Fail::retryable)).

use postgres::Transaction;
use unico_core::customer::apply_changes;
use unico_core::{AppId, Customer, CustomerId, FieldChange, FieldId};

use super::conn::{Db, Res};
use super::rows;
use crate::changes::{Before, Change};
use crate::codec;
use crate::error::StoreError;
use crate::live::LiveFields;
use crate::store::UpsertOutcome;

/// First key of the per-application advisory locks (two 32-bit keys: this, the app id).
pub const APP_LOCK: i32 = 0x756e_6170; // "unap"
/// First key of the per-application import lock: imports of one application take turns.
const IMPORT_LOCK: i32 = 0x756e_696d; // "unim"
/// First key of the per-application lock of event types registered on first sight:
/// registering writes of one application take turns, so the type limit holds.
const REGISTER_LOCK: i32 = 0x756e_7267; // "unrg"

/// What a write sees: its transaction, the changes to log when it commits, the value-count
/// changes to apply just before, and the applications whose shared lock it holds.
pub struct Wx<'a, 't> {
    pub db: Db<'a, Transaction<'t>>,
    pub changes: Vec<Change>,
    /// Applied by whoever commits the transaction, after every write in it and just before
    /// the log append (so count rows are the last rows locked, see the module docs).
    pub deltas: CountDeltas,
    /// The applications [`Wx::share_app`] locked in this transaction, with their live
    /// fields: they cannot change until it ends, so a second write of the same application
    /// in the transaction (a group commit, see `group.rs`) neither locks nor reads again.
    shared: Vec<(AppId, LiveFields)>,
}

/// The second key of an application's locks. Ids past 2^31 share keys with smaller ones,
/// which only makes those applications take turns more than needed.
pub fn lock_key(app: AppId) -> i32 {
    app.0 as i32
}

impl<'a, 't> Wx<'a, 't> {
    pub fn new(db: Db<'a, Transaction<'t>>) -> Self {
        Wx {
            db,
            changes: Vec::new(),
            deltas: CountDeltas::default(),
            shared: Vec::new(),
        }
    }

    /// How much of the transaction's bookkeeping exists now, to go back to with
    /// [`Wx::rewind`] when the statements since are rolled back to a savepoint.
    pub fn mark(&self) -> Mark {
        Mark {
            changes: self.changes.len(),
            deltas: self.deltas.clone(),
            shared: self.shared.len(),
        }
    }

    /// Forgets the changes, count changes and application locks recorded since `mark`
    /// (the locks went with the savepoint's rollback).
    pub fn rewind(&mut self, mark: Mark) {
        self.changes.truncate(mark.changes);
        self.deltas = mark.deltas;
        self.shared.truncate(mark.shared);
    }

    /// Records a change, logged if and when the transaction commits.
    pub fn emit(&mut self, change: Change) {
        self.changes.push(change);
    }

    /// For customer writes: the application's schema cannot change until this transaction
    /// ends. Answers the live fields; `NotFound` if the application does not exist.
    pub fn share_app(&mut self, app: AppId) -> Res<LiveFields> {
        if let Some((_, live)) = self.shared.iter().find(|(a, _)| *a == app) {
            return Ok(live.clone());
        }
        self.db.execute(
            "SELECT pg_advisory_xact_lock_shared($1, $2)",
            &[&APP_LOCK, &lock_key(app)],
        )?;
        self.share_app_locked(app)
    }

    /// [`Wx::share_app`] once the application's shared lock is held (taken without waiting
    /// by a group commit, see `group.rs`).
    pub fn share_app_locked(&mut self, app: AppId) -> Res<LiveFields> {
        rows::get_app(&mut self.db, app)?;
        let live = rows::live_fields(&mut self.db, app)?;
        self.shared.push((app, live.clone()));
        Ok(live)
    }

    /// [`Wx::share_app`] for writes that do not need the fields (events): the application's
    /// fields and event types cannot change until this transaction ends. `NotFound` if the
    /// application does not exist.
    pub fn share_app_lock(&mut self, app: AppId) -> Res<()> {
        self.db.execute(
            "SELECT pg_advisory_xact_lock_shared($1, $2)",
            &[&APP_LOCK, &lock_key(app)],
        )?;
        rows::get_app(&mut self.db, app)?;
        Ok(())
    }

    /// For schema changes and deleting the application: waits for its writes in flight and
    /// holds new ones back until this transaction ends. `NotFound` if it does not exist.
    pub fn own_app(&mut self, app: AppId) -> Res<()> {
        self.db.execute(
            "SELECT pg_advisory_xact_lock($1, $2)",
            &[&APP_LOCK, &lock_key(app)],
        )?;
        rows::get_app(&mut self.db, app)?;
        Ok(())
    }

    /// For imports: one import of an application at a time.
    pub fn import_turn(&mut self, app: AppId) -> Res<()> {
        self.db.execute(
            "SELECT pg_advisory_xact_lock($1, $2)",
            &[&IMPORT_LOCK, &lock_key(app)],
        )?;
        Ok(())
    }

    /// For merges: they take turns with each other and with imports (an import maps the
    /// customerIds of its rows through the application's aliases once, at its start, and
    /// remembers the customers it met, so no merge may make them stale before it ends).
    pub fn merge_turn(&mut self, app: AppId) -> Res<()> {
        self.import_turn(app)
    }

    /// For writes that register event types on first sight (under the application's shared
    /// lock): one such write of an application at a time, until it commits. Taking it
    /// again in the same transaction does not wait.
    pub fn registration_turn(&mut self, app: AppId) -> Res<()> {
        self.db.execute(
            "SELECT pg_advisory_xact_lock($1, $2)",
            &[&REGISTER_LOCK, &lock_key(app)],
        )?;
        Ok(())
    }

    /// The application's schema (fields and event types) as this transaction sees it.
    pub fn schema(&mut self, app: AppId) -> Res<unico_core::Schema> {
        rows::schema(&mut self.db, app)
    }
}

pub use crate::writing::{CountDeltas, Mode};

/// See [`Wx::mark`].
pub struct Mark {
    changes: usize,
    deltas: CountDeltas,
    shared: usize,
}

/// Applies gathered value-count changes: one statement per field, in ascending id, so that
/// writers lock the count rows in one order.
pub fn flush_counts(deltas: CountDeltas, db: &mut Db<'_, Transaction<'_>>) -> Res<()> {
    for (field, delta) in deltas.into_sorted() {
        db.execute(
            "UPDATE fields SET value_count = value_count + $2 WHERE id = $1",
            &[&i64::from(field.0), &delta],
        )?;
    }
    Ok(())
}

/// Inserts a new customer with its values encoded; answers its id, or `None` if the
/// customerId exists, or is the alias of a merged customer (then nothing is written). A
/// concurrent insert of the same customerId is waited for: if it commits, this one finds it
/// exists.
pub fn try_insert(
    db: &mut Db<'_, Transaction<'_>>,
    app: AppId,
    customer_id: &CustomerId,
    now: i64,
    data: &[u8],
) -> Res<Option<i64>> {
    let row = db.query_opt(
        "INSERT INTO customers (app_id, customer_id, created_at, updated_at, data)
         SELECT $1, $2, $3, $3, $4
         WHERE NOT EXISTS (SELECT 1 FROM customer_aliases WHERE app_id = $1 AND alias = $2)
         ON CONFLICT (app_id, customer_id) DO NOTHING RETURNING id",
        &[&app.0, &customer_id.as_str(), &now, &data],
    )?;
    Ok(row.map(|r| r.try_get(0)).transpose()?)
}

/// Whether `customer_id` is the alias of a merged customer. Asked after inserting a
/// customer: an insert that waited for a merge deleting the same customerId goes in once
/// that merge commits, and only a statement after it sees the merge's alias.
pub fn is_alias(db: &mut Db<'_, Transaction<'_>>, app: AppId, customer_id: &str) -> Res<bool> {
    Ok(db
        .query_one(
            "SELECT EXISTS (SELECT 1 FROM customer_aliases WHERE app_id = $1 AND alias = $2)",
            &[&app.0, &customer_id],
        )?
        .try_get(0)?)
}

/// How many times an upsert goes round when the customer it met is deleted meanwhile.
const UPSERT_ROUNDS: usize = 3;

/// Writes one customer and records the value-count changes. New customers cost one
/// insert: the lookup happens only when the insert meets an existing one.
pub fn write(
    db: &mut Db<'_, Transaction<'_>>,
    app: AppId,
    customer_id: &CustomerId,
    changes: &[FieldChange],
    now: i64,
    mode: Mode,
    deltas: &mut CountDeltas,
) -> Res<(UpsertOutcome, Before)> {
    for _ in 0..UPSERT_ROUNDS {
        if mode != Mode::Update {
            let mut fields = Vec::new();
            let applied = apply_changes(&mut fields, changes);
            let data = codec::encode(&fields);
            if let Some(id) = try_insert(db, app, customer_id, now, &data)? {
                if is_alias(db, app, customer_id.as_str())? {
                    // Merged away while the insert waited: the next round finds the survivor.
                    db.execute("DELETE FROM customers WHERE id = $1", &[&id])?;
                    continue;
                }
                for (field, d) in applied.presence {
                    deltas.add(field, d);
                }
                let customer = Customer {
                    id,
                    customer_id: customer_id.clone(),
                    created_at: now,
                    updated_at: now,
                    fields,
                };
                return Ok((
                    UpsertOutcome {
                        created: true,
                        customer,
                    },
                    Before::Created,
                ));
            }
            if mode == Mode::Create {
                return Err(StoreError::Conflict(format!(
                    "customer \"{}\" exists already",
                    unico_core::value::excerpt(customer_id.as_str())
                ))
                .into());
            }
        }
        match update_existing(db, app, customer_id, changes, now, deltas)? {
            Some((customer, before)) => {
                return Ok((
                    UpsertOutcome {
                        created: false,
                        customer,
                    },
                    Before::Values(before),
                ));
            }
            None if mode == Mode::Update => return Err(rows::not_found(customer_id).into()),
            // Deleted between the insert that met it and the lookup: insert again.
            None => continue,
        }
    }
    Err(StoreError::Conflict(format!(
        "customer \"{}\" kept being created and deleted by other writes; retry",
        unico_core::value::excerpt(customer_id.as_str())
    ))
    .into())
}

/// Applies `changes` to an existing customer, locked until the transaction ends, moving
/// `updated_at` only if a value changed; answers the customer as it now is and its values
/// before (`None` if there is none).
pub fn update_existing(
    db: &mut Db<'_, Transaction<'_>>,
    app: AppId,
    customer_id: &CustomerId,
    changes: &[FieldChange],
    now: i64,
    deltas: &mut CountDeltas,
) -> Res<Option<(Customer, crate::writing::FieldValues)>> {
    let Some(mut customer) = rows::find_customer(db, app, customer_id, true)? else {
        return Ok(None);
    };
    let before = customer.fields.clone();
    let applied = apply_changes(&mut customer.fields, changes);
    if applied.changed {
        customer.updated_at = now.max(customer.updated_at);
        db.execute(
            "UPDATE customers SET updated_at = $2, data = $3 WHERE id = $1",
            &[
                &customer.id,
                &customer.updated_at,
                &codec::encode(&customer.fields),
            ],
        )?;
        for (field, d) in applied.presence {
            deltas.add(field, d);
        }
    }
    Ok(Some((customer, before)))
}

/// Deletes one customer (found by its customerId or an alias of it), its values and its
/// events; answers the id it had.
pub fn delete_customer(
    db: &mut Db<'_, Transaction<'_>>,
    app: AppId,
    customer_id: &CustomerId,
) -> Res<i64> {
    let customer = rows::find_customer(db, app, customer_id, true)?
        .ok_or_else(|| rows::not_found(customer_id))?;
    delete_row(db, &customer)?;
    Ok(customer.id)
}

/// Deletes a customer the transaction found and locked, with its events; its identities,
/// aliases and consent go by cascade.
pub fn delete_row(db: &mut Db<'_, Transaction<'_>>, customer: &Customer) -> Res<()> {
    db.execute("DELETE FROM customers WHERE id = $1", &[&customer.id])?;
    // The row's lock (taken by the delete) waited for event writes that share it, so this
    // statement's snapshot holds every event committed for the customer.
    db.execute("DELETE FROM events WHERE customer = $1", &[&customer.id])?;
    let mut deltas = CountDeltas::default();
    for (field, _) in &customer.fields {
        deltas.add(*field, -1);
    }
    flush_counts(deltas, db)
}

/// Customers rewritten by one statement when a field's values are removed.
const PURGE_BATCH: usize = 1000;

/// Removes a field's values from every customer of the application that holds one;
/// answers how many did. The caller owns the application (no concurrent writes).
pub fn purge_field(db: &mut Db<'_, Transaction<'_>>, app: AppId, field: FieldId) -> Res<u64> {
    // The sort-key function finds the holders in the database, so only they travel.
    let rows = db.query(
        "SELECT id, data FROM customers
         WHERE app_id = $1 AND unico_sort_key(data, $2, false) <> '\\x02'::bytea",
        &[&app.0, &i64::from(field.0)],
    )?;
    let mut ids = Vec::with_capacity(PURGE_BATCH);
    let mut datas = Vec::with_capacity(PURGE_BATCH);
    let mut removed = 0u64;
    for chunk in rows.chunks(PURGE_BATCH) {
        ids.clear();
        datas.clear();
        for row in chunk {
            let mut fields = codec::decode(row.try_get::<_, &[u8]>(1)?)?;
            fields.retain(|(id, _)| *id != field);
            ids.push(row.try_get::<_, i64>(0)?);
            datas.push(codec::encode(&fields));
        }
        removed += db.execute(
            "UPDATE customers c SET data = u.data
             FROM unnest($1::bigint[], $2::bytea[]) AS u(id, data) WHERE c.id = u.id",
            &[&ids, &datas],
        )?;
    }
    Ok(removed)
}
