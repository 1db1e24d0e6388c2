//! Imports: the bulk write of one import inside the writer, and the import history.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use rusqlite::{Connection, OptionalExtension, Row, params};
use unico_core::AppId;

use super::bulk::ImportWriter;
use super::writer::WriteCtx;
use crate::error::StoreError;
use crate::prepare::{self, Prepared};
use crate::store::{
    ImportBatch, ImportCounts, ImportKind, ImportMode, ImportRecord, ImportRowError, ImportState,
};

pub const IMPORT_COLUMNS: &str = "id, app_id, mode, state, created_at, finished_at, rows_read, rows_written, created, updated, values_written, rows_rejected, message, kind";

pub fn import_from_row(row: &Row<'_>) -> rusqlite::Result<ImportRecord> {
    let mode: String = row.get(2)?;
    let state: String = row.get(3)?;
    let n = |i: usize| -> rusqlite::Result<u64> { Ok(row.get::<_, i64>(i)?.max(0) as u64) };
    Ok(ImportRecord {
        id: row.get(0)?,
        app: AppId(row.get(1)?),
        mode: ImportMode::parse(&mode).unwrap_or(ImportMode::Atomic),
        state: ImportState::parse(&state),
        created_at: row.get(4)?,
        finished_at: row.get(5)?,
        rows_read: n(6)?,
        rows_written: n(7)?,
        created: n(8)?,
        updated: n(9)?,
        values_written: n(10)?,
        rows_rejected: n(11)?,
        message: row.get(12)?,
        kind: crate::store::ImportKind::parse(&row.get::<_, String>(13)?),
    })
}

pub fn get_import(conn: &Connection, app: AppId, id: i64) -> Result<ImportRecord, StoreError> {
    conn.prepare_cached(&format!(
        "SELECT {IMPORT_COLUMNS} FROM imports WHERE app_id = ?1 AND id = ?2"
    ))?
    .query_row(params![app.0, id], import_from_row)
    .optional()?
    .ok_or_else(|| StoreError::NotFound(format!("import {id}")))
}

/// The customers an import created (ids above the largest before it) and updated, as they
/// are now, ascending by id.
fn imported_customers(
    conn: &Connection,
    app: AppId,
    last_id_before: i64,
    updated_ids: &[i64],
) -> Result<Vec<unico_core::Customer>, StoreError> {
    let mut out = Vec::new();
    let mut by_id = conn.prepare_cached(&format!(
        "SELECT {} FROM customers WHERE id = ?1 AND app_id = ?2",
        super::rows::CUSTOMER_COLUMNS
    ))?;
    for id in updated_ids {
        if let Some(row) = by_id
            .query_row(params![id, app.0], super::rows::customer_from_row)
            .optional()?
        {
            out.push(super::rows::to_customer(row)?);
        }
    }
    let mut created = conn.prepare_cached(&format!(
        "SELECT {} FROM customers WHERE app_id = ?1 AND id > ?2 ORDER BY id",
        super::rows::CUSTOMER_COLUMNS
    ))?;
    let rows = created.query_map(
        params![app.0, last_id_before],
        super::rows::customer_from_row,
    )?;
    for row in rows {
        out.push(super::rows::to_customer(row?)?);
    }
    Ok(out)
}

/// Runs one import's batches inside the writer: a thread of its own prepares the rows
/// ([`prepare::start`]), the writer writes them ([`ImportWriter`]). Everything happens under
/// one savepoint, released only if the feed ends with `keep: true`. An import of at most
/// `incremental` customers is announced customer by customer, a larger one as one
/// [`crate::Change::Customers`] listing the ids it wrote.
pub fn run(
    w: &mut WriteCtx,
    app: AppId,
    batches: Box<dyn Iterator<Item = ImportBatch> + Send>,
    now: i64,
    written: Arc<AtomicU64>,
    incremental: u64,
) -> Result<ImportCounts, StoreError> {
    let live = w.live_fields(app)?;
    let conn = &w.conn;
    // Rows naming a merged customer's id land on its survivor.
    let batches = if super::identities::has_aliases(conn, app)? {
        crate::identities::resolve_batches(batches, super::identities::alias_map(conn, app)?)
    } else {
        batches
    };
    // Subscription statements (consent columns) are applied once the rows are written.
    let consents = crate::subscriptions::ConsentTee::default();
    let batches = consents.tee(batches);
    conn.execute_batch("SAVEPOINT import")?;
    let mut writer = ImportWriter::new(conn, app, now)?;
    let apply = || -> Result<bool, StoreError> {
        let feed = prepare::start(batches, live)?;
        loop {
            match feed.next() {
                Some(Prepared::Rows(rows)) => {
                    writer.write(&rows)?;
                    written.fetch_add(rows.len() as u64, Ordering::Relaxed);
                    feed.recycle(rows);
                }
                Some(Prepared::End { keep }) => return Ok(keep),
                Some(Prepared::Failed(e)) => return Err(e),
                // The feed stopped without a verdict (its producer died): keep nothing.
                None => return Ok(false),
            }
        }
    };
    let verdict = apply().map(|keep| keep.then(|| writer.finish(incremental)));
    match verdict {
        Ok(Some(done)) => {
            super::writes::flush_counts(done.deltas, conn)?;
            if done.created + done.updated <= incremental {
                // A small import reaches the change feed customer by customer, so views
                // follow it in place instead of reloading the whole application.
                let mut previous = done.previous;
                for customer in
                    imported_customers(conn, app, done.last_id_before, &done.updated_ids)?
                {
                    let before = if customer.id > done.last_id_before {
                        crate::changes::Before::Created
                    } else {
                        previous.remove(&customer.id).map_or(
                            crate::changes::Before::Unknown,
                            crate::changes::Before::Values,
                        )
                    };
                    w.emit(crate::changes::Change::Customer {
                        app,
                        customer,
                        before,
                    });
                }
            } else {
                // A large one as the ids it wrote: views read those customers back.
                w.emit(crate::changes::Change::Customers {
                    app,
                    ranges: done.touched,
                });
            }
            // After the customers, so a follower holds each one before its consent.
            for (customer_id, changes) in consents.take() {
                if let Err(e) =
                    super::subscriptions::apply(w, app, &customer_id, &changes, true, now)
                {
                    w.conn.execute_batch("ROLLBACK TO import; RELEASE import")?;
                    written.store(0, Ordering::Relaxed);
                    return Err(e);
                }
            }
            w.conn.execute_batch("RELEASE import")?;
            Ok(ImportCounts {
                created: done.created,
                updated: done.updated,
                kept: true,
            })
        }
        Ok(None) => {
            conn.execute_batch("ROLLBACK TO import; RELEASE import")?;
            written.store(0, Ordering::Relaxed);
            Ok(ImportCounts::default())
        }
        Err(e) => {
            conn.execute_batch("ROLLBACK TO import; RELEASE import")?;
            written.store(0, Ordering::Relaxed);
            Err(e)
        }
    }
}

/// Records a new running import of `kind`.
pub fn create(
    conn: &Connection,
    app: AppId,
    mode: ImportMode,
    kind: ImportKind,
    now: i64,
) -> Result<ImportRecord, StoreError> {
    super::rows::get_app(conn, app)?;
    conn.execute(
        "INSERT INTO imports (app_id, mode, state, created_at, kind) VALUES (?1, ?2, 'running', ?3, ?4)",
        params![app.0, mode.as_str(), now, kind.as_str()],
    )?;
    get_import(conn, app, conn.last_insert_rowid())
}

/// An import's answer once its writes are decided: with `finish`, its final record made
/// from the outcome joins the writes' transaction (both commit, or neither), and a failure
/// of the writes is part of the record rather than an error.
pub fn conclude(
    conn: &Connection,
    outcome: Result<ImportCounts, StoreError>,
    finish: Option<crate::store::ImportFinish>,
) -> Result<ImportCounts, StoreError> {
    let Some(finish) = finish else {
        return outcome;
    };
    let (record, errors) = finish(outcome.as_ref().copied());
    self::finish(conn, &record, &errors)?;
    Ok(outcome.unwrap_or_default())
}

pub fn finish(
    conn: &Connection,
    r: &ImportRecord,
    errors: &[ImportRowError],
) -> Result<(), StoreError> {
    let n = conn.execute(
        "UPDATE imports SET state = ?3, finished_at = ?4, rows_read = ?5, rows_written = ?6, created = ?7,
             updated = ?8, values_written = ?9, rows_rejected = ?10, message = ?11
         WHERE app_id = ?1 AND id = ?2",
        params![
            r.app.0,
            r.id,
            r.state.as_str(),
            r.finished_at,
            r.rows_read as i64,
            r.rows_written as i64,
            r.created as i64,
            r.updated as i64,
            r.values_written as i64,
            r.rows_rejected as i64,
            r.message
        ],
    )?;
    if n == 0 {
        return Err(StoreError::NotFound(format!("import {}", r.id)));
    }
    conn.execute("DELETE FROM import_errors WHERE import_id = ?1", [r.id])?;
    let mut insert = conn.prepare_cached(
        "INSERT INTO import_errors (import_id, ord, line, col, value, message) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    )?;
    for (i, e) in errors.iter().enumerate() {
        insert.execute(params![
            r.id,
            i as i64,
            e.line as i64,
            e.column,
            e.value,
            e.message
        ])?;
    }
    Ok(())
}

pub fn errors(conn: &Connection, id: i64) -> Result<Vec<ImportRowError>, StoreError> {
    let mut stmt = conn.prepare_cached(
        "SELECT line, col, value, message FROM import_errors WHERE import_id = ?1 ORDER BY ord",
    )?;
    let rows = stmt.query_map([id], |r| {
        Ok(ImportRowError {
            line: r.get::<_, i64>(0)? as u64,
            column: r.get(1)?,
            value: r.get(2)?,
            message: r.get(3)?,
        })
    })?;
    Ok(rows.collect::<Result<Vec<_>, _>>()?)
}
