//! The change log of the embedded store: the `change_log` table, appended by the writer in
//! each group's transaction, and the in-memory head that readers wait on.
//!
//! A row per change. Customers carry their whole state after the change (the customerId,
//! times and the same value blob as the `customers` table), so applying an entry twice is
//! harmless; a schema carries its fields as text lines, a time zone its name.

use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use rusqlite::{Connection, OptionalExtension, params};
use unico_core::{
    AppId, Customer, CustomerId, FieldDef, FieldId, FieldName, FieldType, Schema, TimeZoneName,
};

use crate::changes::{Change, LogBounds, LogEntry};
use crate::codec;
use crate::error::StoreError;

const CUSTOMER: i64 = 1;
const DELETED: i64 = 2;
const SCHEMA: i64 = 3;
const TIME_ZONE: i64 = 4;
const APP_DELETED: i64 = 5;
const BULK: i64 = 6;

/// The sequence number of the last committed change, shared by the writer (which moves it
/// after each commit) and the readers that wait for it.
#[derive(Default)]
pub struct Head {
    seq: Mutex<u64>,
    moved: Condvar,
}

impl Head {
    pub fn new(seq: u64) -> Arc<Head> {
        Arc::new(Head {
            seq: Mutex::new(seq),
            moved: Condvar::new(),
        })
    }

    pub fn get(&self) -> u64 {
        self.seq.lock().map_or(0, |s| *s)
    }

    /// Called by the writer after a commit that logged up to `seq`.
    pub fn advance(&self, seq: u64) {
        if let Ok(mut head) = self.seq.lock() {
            if seq > *head {
                *head = seq;
            }
            self.moved.notify_all();
        }
    }

    /// Waits until the head passes `after` or `timeout` passes; answers the head.
    pub fn wait_past(&self, after: u64, timeout: Duration) -> u64 {
        let deadline = Instant::now() + timeout;
        let Ok(mut head) = self.seq.lock() else {
            return 0;
        };
        while *head <= after {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            match self.moved.wait_timeout(head, left) {
                Ok((h, _)) => head = h,
                Err(_) => return 0,
            }
        }
        *head
    }
}

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

fn schema_text(schema: &Schema) -> String {
    let mut out = String::new();
    for f in schema.fields() {
        out.push_str(&format!(
            "{}\t{}\t{}\t{}\n",
            f.id.0,
            f.field_type.as_str(),
            f.created_at,
            f.name.as_str()
        ));
    }
    out
}

fn parse_schema(text: &str) -> Result<Schema, StoreError> {
    let bad = || StoreError::Internal("a logged schema is unreadable".into());
    let mut fields = Vec::new();
    for line in text.lines() {
        let mut parts = line.splitn(4, '\t');
        let (Some(id), Some(ty), Some(created), Some(name)) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(bad());
        };
        fields.push(FieldDef {
            id: FieldId(id.parse().map_err(|_| bad())?),
            field_type: FieldType::parse(ty).map_err(|_| bad())?,
            created_at: created.parse().map_err(|_| bad())?,
            name: FieldName::parse(name).map_err(|_| bad())?,
        });
    }
    Ok(Schema::new(fields))
}

/// Appends `changes` in order, committed at `at`; answers the sequence number of the last
/// one (`None` if there were none).
pub fn append(conn: &Connection, changes: &[Change], at: i64) -> Result<Option<u64>, StoreError> {
    if changes.is_empty() {
        return Ok(None);
    }
    let mut insert = conn.prepare_cached(
        "INSERT INTO change_log (at, app_id, kind, customer, customer_id, created_at, updated_at, data, text)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
    )?;
    let mut buf = Vec::new();
    for change in changes {
        let app = change.app().0;
        match change {
            Change::Customer { customer, .. } => {
                codec::encode_into(&customer.fields, &mut buf);
                insert.execute(params![
                    at,
                    app,
                    CUSTOMER,
                    customer.id,
                    customer.customer_id.as_str(),
                    customer.created_at,
                    customer.updated_at,
                    &buf[..],
                    None::<String>
                ])?
            }
            Change::CustomerDeleted { id, .. } => insert.execute(params![
                at,
                app,
                DELETED,
                id,
                None::<String>,
                None::<i64>,
                None::<i64>,
                None::<Vec<u8>>,
                None::<String>
            ])?,
            Change::Schema { schema, .. } => insert.execute(params![
                at,
                app,
                SCHEMA,
                None::<i64>,
                None::<String>,
                None::<i64>,
                None::<i64>,
                None::<Vec<u8>>,
                schema_text(schema)
            ])?,
            Change::TimeZone { timezone, .. } => insert.execute(params![
                at,
                app,
                TIME_ZONE,
                None::<i64>,
                None::<String>,
                None::<i64>,
                None::<i64>,
                None::<Vec<u8>>,
                timezone.as_str()
            ])?,
            Change::AppDeleted { .. } | Change::Bulk { .. } => insert.execute(params![
                at,
                app,
                if matches!(change, Change::Bulk { .. }) {
                    BULK
                } else {
                    APP_DELETED
                },
                None::<i64>,
                None::<String>,
                None::<i64>,
                None::<i64>,
                None::<Vec<u8>>,
                None::<String>
            ])?,
        };
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
        "SELECT seq, at, app_id, kind, customer, customer_id, created_at, updated_at, data, text
         FROM change_log WHERE seq > ?1 ORDER BY seq LIMIT ?2",
    )?;
    let mut rows = stmt.query(params![after as i64, limit as i64])?;
    let mut out = Vec::new();
    while let Some(row) = rows.next()? {
        let seq = row.get::<_, i64>(0)? as u64;
        let at: i64 = row.get(1)?;
        let app = AppId(row.get(2)?);
        let kind: i64 = row.get(3)?;
        let bad = |what: &str| StoreError::Internal(format!("log entry {seq}: {what}"));
        let change = match kind {
            CUSTOMER => {
                let cid: String = row.get(5)?;
                let data: Vec<u8> = row.get(8)?;
                Change::Customer {
                    app,
                    customer: Customer {
                        id: row.get(4)?,
                        customer_id: CustomerId::parse(&cid).map_err(|_| bad("customerId"))?,
                        created_at: row.get(6)?,
                        updated_at: row.get(7)?,
                        fields: codec::decode(&data)?,
                    },
                }
            }
            DELETED => Change::CustomerDeleted {
                app,
                id: row.get(4)?,
            },
            SCHEMA => Change::Schema {
                app,
                schema: parse_schema(&row.get::<_, String>(9)?)?,
            },
            TIME_ZONE => Change::TimeZone {
                app,
                timezone: TimeZoneName::parse(&row.get::<_, String>(9)?)
                    .map_err(|_| bad("time zone"))?,
            },
            APP_DELETED => Change::AppDeleted { app },
            BULK => Change::Bulk { app },
            _ => return Err(bad("unknown kind")),
        };
        out.push(LogEntry { seq, at, change });
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
