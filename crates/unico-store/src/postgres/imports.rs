//! Imports on PostgreSQL: one import's rows written in one transaction, and the import
//! history.
//!
//! The rows are prepared by the shared [`crate::prepare`] thread (checked, reduced and
//! encoded exactly as for the embedded backend); then, under the import's savepoint:
//! 1. **staging**: an unlogged table of the import's own (`import_staging_<app>`, made and
//!    dropped inside the savepoint, so never seen by another session nor left behind) is
//!    filled by one `COPY … FROM STDIN (FORMAT binary)` streamed while the file is still
//!    being read: each row's place in the file, customerId, encoded values and removed
//!    fields. The database stores rows while the parser and the preparing thread make the
//!    next ones, no statement waits for another, and an import whose file turns out invalid
//!    (atomic mode) or whose feed dies abandons the COPY: nothing reached `customers`. An
//!    unlogged table in the store's own schema rather than a temporary one: the
//!    least-privilege role of `docs/scale-out.md` has no `TEMPORARY` right on the database,
//!    and unlogged rows cost no WAL either;
//! 2. **creating**: one `INSERT … SELECT … ORDER BY ord ON CONFLICT DO NOTHING`: the first
//!    row of every customerId the application does not hold creates it, in file order (so
//!    ids follow the file), answering the ids it created (into an application without
//!    customers, a plain `INSERT` first, see [`create`]). When that is every row (a new
//!    application's file without repeated customerIds), the rows are written;
//! 3. **updating**, only otherwise: one query joins the staging rows to their customers,
//!    locked (`FOR NO KEY UPDATE`) in customerId order, as group commits lock them, and read
//!    through a portal in chunks, so memory stays bounded. Every row but those that created
//!    their customer is applied in file order to its customer's state in memory, exactly as
//!    an update would (a customer's rows come together, in file order), and the customers
//!    that changed are written back by one `UPDATE … FROM unnest(…)` per chunk;
//! 4. rows whose customer was deleted between the two statements (the join no longer
//!    meets it) are written one by one as upserts, as any write of a missing customer.
//!
//! The savepoint is released only if the feed ends with `keep: true`, so an import is
//! all-or-nothing, and the record made by `finish` can join the same transaction whatever
//! happened to the rows.

use std::io::Write;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use postgres::error::SqlState;
use postgres::{GenericClient, Row, Transaction};
use unico_core::customer::apply_changes;
use unico_core::{AppId, Customer, CustomerId, FieldChange, FieldId};

use super::conn::{Db, Fail, Res};
use super::rows;
use super::writes::{self, CountDeltas, Mode, Wx};
use crate::changes::Change;
use crate::codec;
use crate::error::StoreError;
use crate::prepare::{self, IdSet, Prepared, PreparedFeed, Presence};
use crate::store::{ImportBatch, ImportCounts, ImportRecord, ImportRowError};
use crate::writing::FieldValues;

/// Staged rows read back per round trip while updating (step 3).
const UPDATE_CHUNK_ROWS: i32 = 2048;
/// Changed customers written back per `UPDATE` (step 3).
const UPDATES_PER_STATEMENT: usize = 1024;
/// What the staging table's COPY buffer holds before it is handed to the connection.
const COPY_BUFFER_BYTES: usize = 256 << 10;

/// The header of PostgreSQL's binary COPY format: signature, flags, no extension.
const COPY_HEADER: &[u8] = b"PGCOPY\n\xff\r\n\0\0\0\0\0\0\0\0\0";

/// Ids of the customers an import created. They come from one sequence that only grows,
/// so they are all at or above the first one: a bit each from there (other writers' ids
/// in between cost a bit too), whatever the size of the ids before.
#[derive(Default)]
struct CreatedIds {
    base: Option<i64>,
    bits: IdSet,
}

impl CreatedIds {
    /// The ids the creating statement answered (any order).
    fn of(ids: &[i64]) -> CreatedIds {
        let mut created = CreatedIds {
            base: ids.iter().copied().min(),
            bits: IdSet::default(),
        };
        for &id in ids {
            created.insert(id);
        }
        created
    }

    /// Adds `id`, which is at or above every id added before (a later creation).
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

/// What an import did, counted as it goes.
struct Tally {
    app: AppId,
    now: i64,
    /// Values of every row, counted as if each row created its customer.
    presence: Presence,
    /// Corrections for rows applied to existing customers.
    deltas: CountDeltas,
    created_ids: CreatedIds,
    /// Customers that existed before the import and that it updated (every one, however
    /// many: a follower is told which customers a large import touched).
    updated_ids: IdSet,
    /// The values before the import of the first customers it updated (for the log).
    previous: std::collections::HashMap<i64, FieldValues>,
    created: u64,
    updated: u64,
}

/// Existing customers whose values before an import are kept for its log entries; past
/// this many the import is logged as one bulk change anyway.
const PREVIOUS_KEPT: usize = crate::changes::INCREMENTAL_IMPORT_CUSTOMERS as usize;

impl Tally {
    /// Keeps what an existing customer held before this import, the first time the import
    /// meets it (not for customers the import itself created).
    fn keep_previous(&mut self, id: i64, fields: &FieldValues) {
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

    /// A staged row as the changes it makes to an existing customer. Its values were
    /// counted as a new customer's; applying them counts them again, so they are taken
    /// back here.
    fn changes_of(&mut self, data: &[u8], removed: Option<&[u8]>) -> Res<Vec<FieldChange>> {
        let mut changes: Vec<FieldChange> = codec::decode(data)?
            .into_iter()
            .map(|(field, value)| {
                self.presence.add(field, -1);
                FieldChange {
                    field,
                    value: Some(value),
                }
            })
            .collect();
        changes.extend(
            removed_fields(removed.unwrap_or_default())
                .map(|field| FieldChange { field, value: None }),
        );
        Ok(changes)
    }
}

/// The staging table of an application's import. One import of an application runs at a
/// time (the import turn), so the name is its own; the table exists only inside the
/// import's transaction.
fn staging_table(app: AppId) -> String {
    format!("import_staging_{}", app.0)
}

/// Appends one row of the staging table (`ord`, `customer_id`, `data`, `removed`) in
/// PostgreSQL's binary COPY format: a field count, then each field's length and bytes
/// (big-endian integers; −1 for NULL).
fn copy_row(
    buf: &mut Vec<u8>,
    ord: i64,
    customer_id: &str,
    data: &[u8],
    removed: &[FieldId],
) -> Res<()> {
    buf.extend_from_slice(&4i16.to_be_bytes());
    buf.extend_from_slice(&8i32.to_be_bytes());
    buf.extend_from_slice(&ord.to_be_bytes());
    for bytes in [customer_id.as_bytes(), data] {
        buf.extend_from_slice(&copy_len(bytes.len())?.to_be_bytes());
        buf.extend_from_slice(bytes);
    }
    if removed.is_empty() {
        buf.extend_from_slice(&(-1i32).to_be_bytes());
    } else {
        buf.extend_from_slice(&copy_len(removed.len() * 4)?.to_be_bytes());
        for field in removed {
            buf.extend_from_slice(&field.0.to_le_bytes());
        }
    }
    Ok(())
}

/// A field's length in the COPY format. Prepared rows are bounded far below its 1 GB
/// (customerIds and values have limits), so a longer one is a broken invariant.
fn copy_len(len: usize) -> Res<i32> {
    i32::try_from(len).map_err(|_| {
        StoreError::Internal(format!(
            "a prepared import row of {len} bytes cannot be staged"
        ))
        .into()
    })
}

/// The removed fields of a staged row, as [`copy_row`] wrote them.
fn removed_fields(bytes: &[u8]) -> impl Iterator<Item = FieldId> + '_ {
    bytes
        .chunks_exact(4)
        .map(|b| FieldId(u32::from_le_bytes([b[0], b[1], b[2], b[3]])))
}

/// A failed write to the COPY stream: the connection's error when it is one.
fn copy_failed(e: std::io::Error) -> Fail {
    let message = e.to_string();
    match e
        .into_inner()
        .map(|inner| inner.downcast::<postgres::Error>())
    {
        Some(Ok(db)) => Fail::Db(*db),
        _ => StoreError::Internal(format!("writing an import's rows failed: {message}")).into(),
    }
}

/// Step 1: streams the feed's rows into the staging table. Answers how many, or `None` if
/// the feed said not to keep them (or died): the COPY is then abandoned, which fails the
/// transaction until the import's savepoint is rolled back.
fn stage(
    db: &mut Db<'_, Transaction<'_>>,
    table: &str,
    feed: &PreparedFeed,
    written: &AtomicU64,
    presence: &mut Presence,
) -> Res<Option<i64>> {
    let mut copy = db.c.copy_in(&format!(
        "COPY {table} (ord, customer_id, data, removed) FROM STDIN (FORMAT binary)"
    ))?;
    let mut buf = Vec::with_capacity(COPY_BUFFER_BYTES + (64 << 10));
    buf.extend_from_slice(COPY_HEADER);
    let mut ord: i64 = 0;
    loop {
        match feed.next() {
            Some(Prepared::Rows(rows)) => {
                for &(field, n) in rows.presence.counts() {
                    presence.add(field, n);
                }
                for i in 0..rows.len() {
                    let (id, data, removed) = rows.row(i);
                    copy_row(&mut buf, ord, id, data, removed)?;
                    ord += 1;
                    if buf.len() >= COPY_BUFFER_BYTES {
                        copy.write_all(&buf).map_err(copy_failed)?;
                        buf.clear();
                    }
                }
                written.fetch_add(rows.len() as u64, Ordering::Relaxed);
                feed.recycle(rows);
            }
            Some(Prepared::End { keep: true }) => break,
            Some(Prepared::End { keep: false }) | None => return Ok(None),
            Some(Prepared::Failed(e)) => return Err(e.into()),
        }
    }
    buf.extend_from_slice(&(-1i16).to_be_bytes());
    copy.write_all(&buf).map_err(copy_failed)?;
    copy.finish()?;
    Ok(Some(ord))
}

/// Step 2: creates the customers the application does not hold yet from the first row of
/// each customerId, in file order; answers the ids created.
///
/// An application without customers (a first load, the common large import) is written by
/// a plain `INSERT`, which costs the database about a fifth less than one with
/// `ON CONFLICT` (no speculative insertion). It runs under a savepoint: if a customerId
/// comes twice in the file, or another write created one of them meanwhile, it fails on
/// the unique index and the rows go again through the insert that skips what exists.
fn create(db: &mut Db<'_, Transaction<'_>>, table: &str, app: AppId, now: i64) -> Res<Vec<i64>> {
    let insert = |on_conflict: &str| {
        format!(
            "WITH created AS (
                 INSERT INTO customers (app_id, customer_id, created_at, updated_at, data)
                 SELECT $1, customer_id, $2, $2, data FROM {table} ORDER BY ord
                 {on_conflict}
                 RETURNING id)
             SELECT array_agg(id) FROM created"
        )
    };
    let ids = |row: Row| -> Res<Vec<i64>> {
        Ok(row.try_get::<_, Option<Vec<i64>>>(0)?.unwrap_or_default())
    };
    let empty: bool = db
        .query_one(
            "SELECT NOT EXISTS (SELECT 1 FROM customers WHERE app_id = $1)",
            &[&app.0],
        )?
        .try_get(0)?;
    if empty {
        db.batch("SAVEPOINT import_create")?;
        match db.c.query_one(&insert(""), &[&app.0, &now]) {
            Ok(row) => {
                db.batch("RELEASE SAVEPOINT import_create")?;
                return ids(row);
            }
            Err(e) if e.code() == Some(&SqlState::UNIQUE_VIOLATION) => {
                db.batch("ROLLBACK TO SAVEPOINT import_create; RELEASE SAVEPOINT import_create")?;
            }
            Err(e) => return Err(e.into()),
        }
    }
    ids(db.c.query_one(
        &insert("ON CONFLICT (app_id, customer_id) DO NOTHING"),
        &[&app.0, &now],
    )?)
}

/// A customer met by step 3, with what is applied to it.
struct Open {
    customer: Customer,
    /// The import created it (step 2): its first row is already written.
    created_here: bool,
    /// No row of it met yet.
    first: bool,
    dirty: bool,
}

/// Step 3: applies, in file order, every staged row that did not create its customer;
/// answers the places (`ord`) of the rows it met.
fn update(
    db: &mut Db<'_, Transaction<'_>>,
    table: &str,
    tally: &mut Tally,
    staged: i64,
) -> Res<IdSet> {
    let stmt = db.c.prepare(&format!(
        "SELECT c.id, c.customer_id, c.created_at, c.updated_at, c.data, s.ord, s.data, s.removed
         FROM {table} s JOIN customers c ON c.app_id = $1 AND c.customer_id = s.customer_id
         ORDER BY s.customer_id, s.ord
         FOR NO KEY UPDATE OF c"
    ))?;
    let portal = db.c.bind(&stmt, &[&tally.app.0])?;
    let mut met = IdSet::default();
    let mut open: Option<Open> = None;
    let mut changed: Vec<Customer> = Vec::new();
    loop {
        let rows = db.c.query_portal(&portal, UPDATE_CHUNK_ROWS)?;
        if rows.is_empty() {
            break;
        }
        for row in &rows {
            let ord: i64 = row.try_get(5)?;
            if ord < 0 || ord >= staged || !met.insert(ord) {
                return Err(StoreError::Internal(format!(
                    "an import's staged row {ord} was met twice or out of range"
                ))
                .into());
            }
            apply_row(row, tally, &mut open, &mut changed)?;
        }
        if changed.len() >= UPDATES_PER_STATEMENT {
            write_back(db, &mut changed)?;
        }
    }
    drop(portal);
    if let Some(done) = open.take() {
        close(done, &mut changed);
    }
    write_back(db, &mut changed)?;
    Ok(met)
}

/// One row of step 3's join, applied to its customer (opened on its first row).
fn apply_row(
    row: &Row,
    tally: &mut Tally,
    open: &mut Option<Open>,
    changed: &mut Vec<Customer>,
) -> Res<()> {
    let id: i64 = row.try_get(0)?;
    if open
        .as_ref()
        .is_none_or(|current| current.customer.id != id)
    {
        if let Some(done) = open.take() {
            close(done, changed);
        }
        let customer = rows::customer(row)?;
        let created_here = tally.created_ids.contains(id);
        tally.keep_previous(id, &customer.fields);
        *open = Some(Open {
            customer,
            created_here,
            first: true,
            dirty: false,
        });
    }
    let Some(current) = open.as_mut() else {
        return Err(
            StoreError::Internal("an import lost the customer it was updating".into()).into(),
        );
    };
    let first = std::mem::replace(&mut current.first, false);
    if current.created_here && first {
        // The row that created it in step 2.
        return Ok(());
    }
    let changes = tally.changes_of(row.try_get(6)?, row.try_get(7)?)?;
    let applied = apply_changes(&mut current.customer.fields, &changes);
    if applied.changed {
        current.customer.updated_at = tally.now.max(current.customer.updated_at);
        current.dirty = true;
        for (field, d) in applied.presence {
            tally.deltas.add(field, d);
        }
    }
    tally.count_outcome(false, id);
    Ok(())
}

fn close(done: Open, changed: &mut Vec<Customer>) {
    if done.dirty {
        changed.push(done.customer);
    }
}

/// Writes the customers step 3 changed back, in one statement.
fn write_back(db: &mut Db<'_, Transaction<'_>>, changed: &mut Vec<Customer>) -> Res<()> {
    if changed.is_empty() {
        return Ok(());
    }
    let (mut ids, mut times, mut datas) = (
        Vec::with_capacity(changed.len()),
        Vec::with_capacity(changed.len()),
        Vec::with_capacity(changed.len()),
    );
    for customer in changed.drain(..) {
        ids.push(customer.id);
        times.push(customer.updated_at);
        datas.push(codec::encode(&customer.fields));
    }
    db.execute(
        "UPDATE customers c SET updated_at = u.updated_at, data = u.data
         FROM unnest($1::bigint[], $2::bigint[], $3::bytea[]) AS u(id, updated_at, data)
         WHERE c.id = u.id",
        &[&ids, &times, &datas],
    )?;
    Ok(())
}

/// Step 4: the staged rows step 3 did not meet (their customer was deleted meanwhile),
/// each written in file order as an upsert, as any write of a missing customer.
fn upsert_missing(
    db: &mut Db<'_, Transaction<'_>>,
    table: &str,
    tally: &mut Tally,
    missing: &[i64],
) -> Res<()> {
    let rows = db.c.query(
        &format!("SELECT customer_id, data, removed FROM {table} WHERE ord = ANY($1) ORDER BY ord"),
        &[&missing],
    )?;
    for row in rows {
        let changes = tally.changes_of(row.try_get(1)?, row.try_get(2)?)?;
        let (outcome, before) = writes::write(
            db,
            tally.app,
            &customer_id(row.try_get(0)?)?,
            &changes,
            tally.now,
            Mode::Upsert,
            &mut tally.deltas,
        )?;
        if let crate::changes::Before::Values(values) = &before {
            tally.keep_previous(outcome.customer.id, values);
        }
        tally.count_outcome(outcome.created, outcome.customer.id);
    }
    Ok(())
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

/// A customers import's writes (see the module docs); `None` if the feed said not to keep
/// them (or died). An import of at most `incremental` customers is announced customer by
/// customer, a larger one as one bulk change.
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
    let table = staging_table(app);
    w.db.batch(&format!(
        "CREATE UNLOGGED TABLE {table} (
             ord bigint NOT NULL,
             customer_id text COLLATE \"C\" NOT NULL,
             data bytea NOT NULL,
             removed bytea)"
    ))?;
    let mut tally = Tally {
        app,
        now,
        presence: Presence::default(),
        deltas: CountDeltas::default(),
        created_ids: CreatedIds::default(),
        updated_ids: IdSet::default(),
        previous: std::collections::HashMap::new(),
        created: 0,
        updated: 0,
    };
    let started = Instant::now();
    let Some(staged) = stage(&mut w.db, &table, &feed, written, &mut tally.presence)? else {
        return Ok(None);
    };
    drop(feed);
    let staged_at = Instant::now();
    let created = create(&mut w.db, &table, app, now)?;
    tally.created_ids = CreatedIds::of(&created);
    tally.created = created.len() as u64;
    let created_at = Instant::now();
    let mut missing = Vec::new();
    if tally.created < staged as u64 {
        let met = update(&mut w.db, &table, &mut tally, staged)?;
        missing = (0..staged).filter(|&ord| !met.contains(ord)).collect();
        if !missing.is_empty() {
            upsert_missing(&mut w.db, &table, &mut tally, &missing)?;
        }
    }
    w.db.batch(&format!("DROP TABLE {table}"))?;
    tracing::debug!(
        app = app.0,
        rows = staged,
        created = tally.created,
        updated = tally.updated,
        upserted_alone = missing.len(),
        staging_ms = (staged_at - started).as_millis() as u64,
        creating_ms = (created_at - staged_at).as_millis() as u64,
        updating_ms = created_at.elapsed().as_millis() as u64,
        "customers import written"
    );
    let Tally {
        presence,
        mut deltas,
        created_ids,
        updated_ids,
        mut previous,
        created,
        updated,
        ..
    } = tally;
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
        // A large one as the ids it wrote (every customer it created, other writers'
        // creations in between not included, and every existing one it updated): views
        // read those customers back.
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
