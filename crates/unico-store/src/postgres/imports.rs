//! Imports on PostgreSQL: one import's rows written in one transaction, and the import
//! history.
//!
//! The rows are prepared by the shared [`crate::prepare`] thread (checked, reduced and
//! encoded exactly as for the embedded backend), then each prepared batch (up to
//! [`crate::prepare::ROWS_PER_BATCH`] rows) costs a few set-based statements:
//! 1. one `INSERT … SELECT FROM unnest(customerIds, values) … ON CONFLICT DO NOTHING
//!    RETURNING id, customer_id`, in file order: it creates the first row of every customerId
//!    that does not exist yet;
//! 2. if some rows were not inserted (their customer existed, or appeared earlier in the
//!    batch), one `SELECT … FOR NO KEY UPDATE` of those customers; each such row is then
//!    applied, in file order, to its customer's state in memory, exactly as an update would;
//! 3. one `UPDATE … FROM unnest(…)` writing back the customers those rows changed.
//!
//! Everything runs under a savepoint released only if the feed ends with `keep: true`,
//! so an import is all-or-nothing, and the record made by `finish` can join the same
//! transaction whatever happened to the rows.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use postgres::{GenericClient, Transaction};
use unico_core::customer::apply_changes;
use unico_core::{AppId, Customer, CustomerId, FieldChange};

use super::conn::{Db, Res};
use super::rows;
use super::writes::{self, CountDeltas, Mode, Wx};
use crate::changes::Change;
use crate::codec;
use crate::error::StoreError;
use crate::prepare::{self, Encoded, IdSet, Prepared, Presence};
use crate::store::{ImportBatch, ImportCounts, ImportRecord, ImportRowError};

/// Ids of the customers an import created. They come from one sequence that only grows,
/// so they are all at or above the first one: a bit each from there (other writers' ids
/// in between cost a bit too), whatever the size of the ids before.
#[derive(Default)]
struct CreatedIds {
    base: Option<i64>,
    bits: IdSet,
}

impl CreatedIds {
    fn insert(&mut self, id: i64) {
        let base = *self.base.get_or_insert(id);
        self.bits.insert(id - base);
    }

    fn contains(&self, id: i64) -> bool {
        match self.base {
            Some(base) if id >= base => self.bits.contains(id - base),
            _ => false,
        }
    }

    fn ids(&self) -> Vec<i64> {
        let base = self.base.unwrap_or(0);
        self.bits.ids().into_iter().map(|i| i + base).collect()
    }

    /// The ids as ascending, disjoint, inclusive ranges.
    fn ranges(&self) -> Vec<(i64, i64)> {
        let base = self.base.unwrap_or(0);
        self.bits
            .ranges_with(&[])
            .into_iter()
            .map(|(lo, hi)| (lo + base, hi + base))
            .collect()
    }
}

/// One import's writes; see the module docs.
struct ImportWriter {
    app: AppId,
    now: i64,
    /// Values of every row, counted as if each row created its customer.
    presence: Presence,
    /// Corrections for rows applied to existing customers.
    deltas: CountDeltas,
    created_ids: CreatedIds,
    /// Customers that existed before the import and that it updated.
    updated_ids: IdSet,
    /// The values before the import of the first customers it updated (for the log).
    previous: HashMap<i64, crate::writing::FieldValues>,
    created: u64,
    updated: u64,
}

/// Existing customers whose values before an import are kept for its log entries; past
/// this many the import is logged as one bulk change anyway.
const PREVIOUS_KEPT: usize = crate::changes::INCREMENTAL_IMPORT_CUSTOMERS as usize;

impl ImportWriter {
    fn write(&mut self, db: &mut Db<'_, Transaction<'_>>, rows: &Encoded) -> Res<()> {
        for &(field, n) in rows.presence.counts() {
            self.presence.add(field, n);
        }
        let mut ids: Vec<&str> = Vec::with_capacity(rows.len());
        let mut datas: Vec<&[u8]> = Vec::with_capacity(rows.len());
        for i in 0..rows.len() {
            let (id, data, _) = rows.row(i);
            ids.push(id);
            datas.push(data);
        }
        let inserted = db.query(
            "INSERT INTO customers (app_id, customer_id, created_at, updated_at, data)
             SELECT $1, r.customer_id, $2, $2, r.data
             FROM unnest($3::text[], $4::bytea[]) WITH ORDINALITY AS r(customer_id, data, ord)
             ORDER BY r.ord
             ON CONFLICT (app_id, customer_id) DO NOTHING
             RETURNING id, customer_id",
            &[&self.app.0, &self.now, &ids, &datas],
        )?;
        if inserted.len() == rows.len() {
            for row in &inserted {
                self.created_ids.insert(row.try_get(0)?);
            }
            self.created += inserted.len() as u64;
            return Ok(());
        }
        // The first row of each customerId that was inserted created it; every other row
        // is applied, in order, to its existing customer.
        let mut new: HashMap<&str, i64> = HashMap::with_capacity(inserted.len());
        for row in &inserted {
            new.insert(row.try_get(1)?, row.try_get(0)?);
        }
        let mut pending: Vec<usize> = Vec::new();
        for (i, id) in ids.iter().enumerate() {
            match new.remove(id) {
                Some(created) => {
                    self.created_ids.insert(created);
                    self.created += 1;
                }
                None => pending.push(i),
            }
        }
        let wanted: Vec<&str> = pending.iter().map(|&i| ids[i]).collect();
        let mut current: HashMap<String, (Customer, bool)> = HashMap::new();
        for row in db.query(
            "SELECT id, customer_id, created_at, updated_at, data FROM customers
             WHERE app_id = $1 AND customer_id = ANY($2) FOR NO KEY UPDATE",
            &[&self.app.0, &wanted],
        )? {
            let customer = rows::customer(&row)?;
            self.keep_previous(customer.id, &customer.fields);
            current.insert(customer.customer_id.as_str().to_owned(), (customer, false));
        }
        for i in pending {
            let (id, data, removed) = rows.row(i);
            let mut changes: Vec<FieldChange> = codec::decode(data)?
                .into_iter()
                .map(|(field, value)| {
                    // Counted as a new customer's value; applying it counts it again.
                    self.presence.add(field, -1);
                    FieldChange {
                        field,
                        value: Some(value),
                    }
                })
                .collect();
            changes.extend(
                removed
                    .iter()
                    .map(|&field| FieldChange { field, value: None }),
            );
            let Some((customer, dirty)) = current.get_mut(id) else {
                // It existed when the insert met it but was deleted since: write the row
                // on its own, as any upsert would.
                let (outcome, before) = writes::write(
                    db,
                    self.app,
                    &customer_id(id)?,
                    &changes,
                    self.now,
                    Mode::Upsert,
                    &mut self.deltas,
                )?;
                if let crate::changes::Before::Values(values) = &before {
                    self.keep_previous(outcome.customer.id, values);
                }
                self.count_outcome(outcome.created, outcome.customer.id);
                continue;
            };
            let applied = apply_changes(&mut customer.fields, &changes);
            if applied.changed {
                customer.updated_at = self.now.max(customer.updated_at);
                *dirty = true;
                for (field, d) in applied.presence {
                    self.deltas.add(field, d);
                }
            }
            let id = customer.id;
            self.count_outcome(false, id);
        }
        let (mut ids, mut times, mut datas) = (Vec::new(), Vec::new(), Vec::new());
        for (customer, dirty) in current.values() {
            if *dirty {
                ids.push(customer.id);
                times.push(customer.updated_at);
                datas.push(codec::encode(&customer.fields));
            }
        }
        if !ids.is_empty() {
            db.execute(
                "UPDATE customers c SET updated_at = u.updated_at, data = u.data
                 FROM unnest($1::bigint[], $2::bigint[], $3::bytea[]) AS u(id, updated_at, data)
                 WHERE c.id = u.id",
                &[&ids, &times, &datas],
            )?;
        }
        Ok(())
    }

    /// Keeps what an existing customer held before this import, the first time the import
    /// meets it (not for customers the import itself created).
    fn keep_previous(&mut self, id: i64, fields: &crate::writing::FieldValues) {
        if !self.created_ids.contains(id)
            && self.previous.len() < PREVIOUS_KEPT
            && !self.previous.contains_key(&id)
        {
            self.previous.insert(id, fields.clone());
        }
    }

    fn count_outcome(&mut self, created: bool, id: i64) {
        if created {
            self.created_ids.insert(id);
            self.created += 1;
        } else if !self.created_ids.contains(id) && self.updated_ids.insert(id) {
            self.updated += 1;
        }
    }
}

/// A customerId the preparing thread copied from a valid one.
fn customer_id(text: &str) -> Res<CustomerId> {
    CustomerId::parse(text)
        .map_err(|e| StoreError::Internal(format!("a prepared customerId is invalid: {e}")).into())
}

/// The customers an import updated, then those it created, each ascending by id, as they
/// are now.
fn imported_customers(
    db: &mut Db<'_, Transaction<'_>>,
    app: AppId,
    updated: &[i64],
    created: &[i64],
) -> Res<Vec<Customer>> {
    let mut out = Vec::with_capacity(updated.len() + created.len());
    for ids in [updated, created] {
        for row in db.query(
            "SELECT id, customer_id, created_at, updated_at, data FROM customers
             WHERE app_id = $1 AND id = ANY($2) ORDER BY id",
            &[&app.0, &ids],
        )? {
            out.push(rows::customer(&row)?);
        }
    }
    Ok(out)
}

/// Runs one import's writes (`write_all`: customers or events) in the transaction of `w`,
/// under a savepoint released only if they end with the feed's `keep: true` (`Some`); on
/// failure or `keep: false` the transaction and the changes to log are left as they were
/// before, still usable (for the import's record).
pub fn run(
    w: &mut Wx<'_, '_>,
    written: &AtomicU64,
    write_all: impl FnOnce(&mut Wx<'_, '_>) -> Res<Option<ImportCounts>>,
) -> Res<ImportCounts> {
    w.db.batch("SAVEPOINT import")?;
    let logged = w.changes.len();
    let outcome = write_all(w);
    if let Ok(Some(counts)) = outcome {
        w.db.batch("RELEASE SAVEPOINT import")?;
        return Ok(counts);
    }
    w.db.batch("ROLLBACK TO SAVEPOINT import; RELEASE SAVEPOINT import")?;
    w.changes.truncate(logged);
    written.store(0, Ordering::Relaxed);
    outcome.map(|_| ImportCounts::default())
}

/// A customers import's writes; `None` if the feed said not to keep them (or died). An
/// import of at most `incremental` customers is announced customer by customer, a larger
/// one as one bulk change.
pub fn write_all(
    w: &mut Wx<'_, '_>,
    app: AppId,
    batches: Box<dyn Iterator<Item = ImportBatch> + Send>,
    now: i64,
    written: &Arc<AtomicU64>,
    incremental: u64,
) -> Res<Option<ImportCounts>> {
    let live = w.share_app(app)?;
    w.import_turn(app)?;
    // Rows naming a merged customer's id land on its survivor. Merges take the import turn
    // too, so the aliases cannot change before the import ends.
    let batches = if super::identities::has_aliases(&mut w.db, app)? {
        crate::identities::resolve_batches(batches, super::identities::alias_map(&mut w.db, app)?)
    } else {
        batches
    };
    // Subscription statements (consent columns) are applied once the rows are written.
    let consents = crate::subscriptions::ConsentTee::default();
    let batches = consents.tee(batches);
    let feed = prepare::start(batches, Arc::new(live))?;
    let mut writer = ImportWriter {
        app,
        now,
        presence: Presence::default(),
        deltas: CountDeltas::default(),
        created_ids: CreatedIds::default(),
        updated_ids: IdSet::default(),
        previous: HashMap::new(),
        created: 0,
        updated: 0,
    };
    loop {
        match feed.next() {
            Some(Prepared::Rows(rows)) => {
                writer.write(&mut w.db, &rows)?;
                written.fetch_add(rows.len() as u64, Ordering::Relaxed);
                feed.recycle(rows);
            }
            Some(Prepared::End { keep: true }) => break,
            Some(Prepared::End { keep: false }) | None => return Ok(None),
            Some(Prepared::Failed(e)) => return Err(e.into()),
        }
    }
    let ImportWriter {
        presence,
        mut deltas,
        created_ids,
        updated_ids,
        mut previous,
        created,
        updated,
        ..
    } = writer;
    for &(field, n) in presence.counts() {
        deltas.add(field, n);
    }
    super::writes::flush_counts(deltas, &mut w.db)?;
    if created + updated <= incremental {
        // A small import reaches the log customer by customer, so views follow it in
        // place instead of reloading the whole application.
        for customer in imported_customers(&mut w.db, app, &updated_ids.ids(), &created_ids.ids())?
        {
            let before = if created_ids.contains(customer.id) {
                crate::changes::Before::Created
            } else {
                previous.remove(&customer.id).map_or(
                    crate::changes::Before::Unknown,
                    crate::changes::Before::Values,
                )
            };
            w.emit(Change::Customer {
                app,
                customer,
                before,
            });
        }
    } else {
        // A large one as the ids it wrote: views read those customers back.
        let created = created_ids.ranges();
        w.emit(Change::Customers {
            app,
            ranges: updated_ids.ranges_with(&created),
        });
    }
    // After the customers, so a follower holds each one before its consent.
    for (customer_id, changes) in consents.take() {
        super::subscriptions::apply(w, app, &customer_id, &changes, true, now)?;
    }
    Ok(Some(ImportCounts {
        created,
        updated,
        kept: true,
    }))
}

/// Stores an import's final record and its reported row errors.
pub fn finish<C: GenericClient>(
    db: &mut Db<'_, C>,
    r: &ImportRecord,
    errors: &[ImportRowError],
) -> Res<()> {
    let n = db.execute(
        "UPDATE imports SET state = $3, finished_at = $4, rows_read = $5, rows_written = $6, created = $7,
             updated = $8, values_written = $9, rows_rejected = $10, message = $11
         WHERE app_id = $1 AND id = $2",
        &[
            &r.app.0,
            &r.id,
            &r.state.as_str(),
            &r.finished_at,
            &(r.rows_read as i64),
            &(r.rows_written as i64),
            &(r.created as i64),
            &(r.updated as i64),
            &(r.values_written as i64),
            &(r.rows_rejected as i64),
            &r.message,
        ],
    )?;
    if n == 0 {
        return Err(StoreError::NotFound(format!("import {}", r.id)).into());
    }
    db.execute("DELETE FROM import_errors WHERE import_id = $1", &[&r.id])?;
    let (mut ord, mut line, mut col, mut value, mut message) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for (i, e) in errors.iter().enumerate() {
        ord.push(i as i64);
        line.push(e.line as i64);
        col.push(e.column.as_str());
        value.push(e.value.as_str());
        message.push(e.message.as_str());
    }
    if !errors.is_empty() {
        db.execute(
            "INSERT INTO import_errors (import_id, ord, line, col, value, message)
             SELECT $1, o, l, c, v, m FROM unnest($2::bigint[], $3::bigint[], $4::text[], $5::text[], $6::text[])
                 AS e(o, l, c, v, m)",
            &[&r.id, &ord, &line, &col, &value, &message],
        )?;
    }
    Ok(())
}

pub fn errors<C: GenericClient>(db: &mut Db<'_, C>, id: i64) -> Res<Vec<ImportRowError>> {
    let rows = db.query(
        "SELECT line, col, value, message FROM import_errors WHERE import_id = $1 ORDER BY ord",
        &[&id],
    )?;
    let mut out = Vec::with_capacity(rows.len());
    for r in rows {
        out.push(ImportRowError {
            line: r.try_get::<_, i64>(0)?.max(0) as u64,
            column: r.try_get(1)?,
            value: r.try_get(2)?,
            message: r.try_get(3)?,
        });
    }
    Ok(out)
}
