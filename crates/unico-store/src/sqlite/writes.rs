//! Customer writes, run inside the writer's transaction.

use std::collections::HashMap;

use rusqlite::{Connection, params};
use unico_core::customer::apply_changes;
use unico_core::{AppId, Customer, CustomerId, FieldChange, FieldId, FieldType};

use super::rows;
use crate::codec;
use crate::error::StoreError;
use crate::store::UpsertOutcome;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Create,
    Update,
    Upsert,
}

/// Changes in per-field value counts, flushed once per job.
#[derive(Default)]
pub struct CountDeltas(HashMap<FieldId, i64>);

impl CountDeltas {
    pub fn add(&mut self, field: FieldId, delta: i64) {
        *self.0.entry(field).or_default() += delta;
    }

    pub fn flush(self, conn: &Connection) -> Result<(), StoreError> {
        let mut stmt =
            conn.prepare_cached("UPDATE fields SET value_count = value_count + ?2 WHERE id = ?1")?;
        for (field, delta) in self.0 {
            if delta != 0 {
                stmt.execute(params![i64::from(field.0), delta])?;
            }
        }
        Ok(())
    }
}

/// Re-checks changes against the fields as they are now, inside the transaction: a field
/// deleted or retyped since the caller validated the request must not receive a value.
pub fn check_changes(
    live: &HashMap<FieldId, FieldType>,
    changes: &[FieldChange],
) -> Result<(), StoreError> {
    for change in changes {
        match (live.get(&change.field), &change.value) {
            (None, _) => {
                return Err(StoreError::Conflict(
                    "a field of this write was deleted meanwhile; retry with the current fields"
                        .into(),
                ));
            }
            (Some(ty), Some(v)) if v.field_type() != *ty => {
                return Err(StoreError::Conflict(
                    "a field of this write changed type meanwhile; retry with the current fields"
                        .into(),
                ));
            }
            _ => {}
        }
    }
    Ok(())
}

/// Writes one customer and records the value-count changes. New customers (most of an
/// import) cost one insert: the lookup happens only when the insert meets an existing one.
#[allow(clippy::too_many_arguments)]
pub fn write_customer(
    conn: &Connection,
    app: AppId,
    customer_id: &CustomerId,
    changes: &[FieldChange],
    now: i64,
    mode: Mode,
    deltas: &mut CountDeltas,
    buf: &mut Vec<u8>,
) -> Result<UpsertOutcome, StoreError> {
    if mode != Mode::Update {
        let mut fields = Vec::with_capacity(changes.len());
        let applied = apply_changes(&mut fields, changes);
        codec::encode_into(&fields, buf);
        let inserted = conn
            .prepare_cached(
                "INSERT INTO customers (app_id, customer_id, created_at, updated_at, data) VALUES (?1, ?2, ?3, ?3, ?4)
                 ON CONFLICT (app_id, customer_id) DO NOTHING",
            )?
            .execute(params![app.0, customer_id.as_str(), now, &buf[..]])?;
        if inserted == 1 {
            for (field, d) in applied.presence {
                deltas.add(field, d);
            }
            return Ok(UpsertOutcome {
                created: true,
                customer: Customer {
                    id: conn.last_insert_rowid(),
                    customer_id: customer_id.clone(),
                    created_at: now,
                    updated_at: now,
                    fields,
                },
            });
        }
        if mode == Mode::Create {
            return Err(StoreError::Conflict(format!(
                "customer \"{}\" exists already",
                unico_core::value::excerpt(customer_id.as_str())
            )));
        }
    }
    let mut customer =
        rows::find_customer(conn, app, customer_id)?.ok_or_else(|| rows::not_found(customer_id))?;
    let applied = apply_changes(&mut customer.fields, changes);
    if applied.changed {
        customer.updated_at = now.max(customer.updated_at);
        codec::encode_into(&customer.fields, buf);
        conn.prepare_cached("UPDATE customers SET updated_at = ?2, data = ?3 WHERE id = ?1")?
            .execute(params![customer.id, customer.updated_at, &buf[..]])?;
        for (field, d) in applied.presence {
            deltas.add(field, d);
        }
    }
    Ok(UpsertOutcome {
        created: false,
        customer,
    })
}

/// Deletes one customer and its values.
pub fn delete_customer(
    conn: &Connection,
    app: AppId,
    customer_id: &CustomerId,
) -> Result<(), StoreError> {
    let customer =
        rows::find_customer(conn, app, customer_id)?.ok_or_else(|| rows::not_found(customer_id))?;
    conn.prepare_cached("DELETE FROM customers WHERE id = ?1")?
        .execute([customer.id])?;
    let mut deltas = CountDeltas::default();
    for (field, _) in &customer.fields {
        deltas.add(*field, -1);
    }
    deltas.flush(conn)
}

/// Removes a field's values from every customer of the application that holds one.
pub fn purge_field(conn: &Connection, app: AppId, field: FieldId) -> Result<u64, StoreError> {
    let mut affected = Vec::new();
    {
        let mut stmt = conn.prepare("SELECT id, data FROM customers WHERE app_id = ?1")?;
        let mut rows = stmt.query([app.0])?;
        while let Some(row) = rows.next()? {
            let data: &[u8] = row.get_ref(1)?.as_blob().map_err(rusqlite::Error::from)?;
            if codec::decode_one(data, field)?.is_some() {
                let mut fields = codec::decode(data)?;
                fields.retain(|(id, _)| *id != field);
                affected.push((row.get::<_, i64>(0)?, codec::encode(&fields)));
            }
        }
    }
    let mut update = conn.prepare_cached("UPDATE customers SET data = ?2 WHERE id = ?1")?;
    for (id, data) in &affected {
        update.execute(params![id, data])?;
    }
    Ok(affected.len() as u64)
}
