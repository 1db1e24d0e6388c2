//! The change log of the embedded store: the `change_log` table, appended by the writer in
//! each group's transaction (rows in the shared [`crate::log_row`] form).

use rusqlite::{Connection, OptionalExtension, params};

use crate::changes::{Change, LogBounds, LogEntry};
use crate::error::StoreError;
use crate::log_row::EntryRow;

pub(crate) use crate::log_row::Head;

/// The last sequence number ever given (pruned entries included).
pub fn last_seq(conn: &Connection) -> Result<u64, StoreError> {
    let seq: Option<i64> = conn
        .query_row(
            "SELECT seq FROM sqlite_sequence WHERE name = 'change_log'",
            [],
            |r| r.get(0),
        )
        .optional()?;
    Ok(seq.unwrap_or(0).max(0) as u64)
}

/// Appends `changes` in order, committed at `at`; answers the sequence number of the last
/// one (`None` if there were none).
pub fn append(conn: &Connection, changes: &[Change], at: i64) -> Result<Option<u64>, StoreError> {
    if changes.is_empty() {
        return Ok(None);
    }
    let mut insert = conn.prepare_cached(
        "INSERT INTO change_log (at, app_id, kind, customer, customer_id, created_at, updated_at, data, text, old)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
    )?;
    for change in changes {
        let r = EntryRow::of(change);
        insert.execute(params![
            at,
            r.app,
            r.kind,
            r.customer,
            r.customer_id,
            r.created_at,
            r.updated_at,
            r.data,
            r.text,
            r.old
        ])?;
    }
    Ok(Some(conn.last_insert_rowid() as u64))
}

/// Which entries are held: `floor` is the last sequence number pruned (or never written).
pub fn bounds(conn: &Connection) -> Result<LogBounds, StoreError> {
    let head = last_seq(conn)?;
    let oldest: Option<i64> =
        conn.query_row("SELECT min(seq) FROM change_log", [], |r| r.get(0))?;
    let floor = oldest.map_or(head, |s| (s as u64).saturating_sub(1));
    Ok(LogBounds { floor, head })
}

/// Up to `limit` entries after `after`.
pub fn read(conn: &Connection, after: u64, limit: usize) -> Result<Vec<LogEntry>, StoreError> {
    // Entries right after `after` must all be there; pruning only ever removes the oldest.
    if after < bounds(conn)?.floor {
        return Err(StoreError::LogPruned(after));
    }
    let mut stmt = conn.prepare_cached(
        "SELECT seq, at, app_id, kind, customer, customer_id, created_at, updated_at, data, text, old
         FROM change_log WHERE seq > ?1 ORDER BY seq LIMIT ?2",
    )?;
    let mut rows = stmt.query(params![after as i64, limit as i64])?;
    let mut out = Vec::new();
    while let Some(row) = rows.next()? {
        let seq = row.get::<_, i64>(0)? as u64;
        let entry = EntryRow {
            app: row.get(2)?,
            kind: row.get(3)?,
            customer: row.get(4)?,
            customer_id: row.get(5)?,
            created_at: row.get(6)?,
            updated_at: row.get(7)?,
            data: row.get(8)?,
            text: row.get(9)?,
            old: row.get(10)?,
        };
        out.push(LogEntry {
            seq,
            at: row.get(1)?,
            change: entry.into_change(seq)?,
        });
    }
    Ok(out)
}

/// Deletes entries committed before `before`, always keeping the newest one (so the floor
/// stays readable); answers how many went.
pub fn prune(conn: &Connection, before: i64) -> Result<u64, StoreError> {
    let n = conn.execute(
        "DELETE FROM change_log WHERE at < ?1 AND seq < (SELECT max(seq) FROM change_log)",
        [before],
    )?;
    Ok(n as u64)
}
