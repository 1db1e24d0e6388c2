//! Customer writes, run inside the writer's transaction.

use rusqlite::CachedStatement;
use rusqlite::{Connection, OptionalExtension, params};
use unico_core::customer::apply_changes;
use unico_core::{AppId, Customer, CustomerId, FieldChange, FieldId};

use super::rows;
use crate::changes::Before;
use crate::codec;
use crate::error::StoreError;
use crate::store::UpsertOutcome;

pub use crate::writing::{CountDeltas, Mode};

/// Applies gathered value-count changes.
pub fn flush_counts(deltas: CountDeltas, conn: &Connection) -> Result<(), StoreError> {
    let mut stmt =
        conn.prepare_cached("UPDATE fields SET value_count = value_count + ?2 WHERE id = ?1")?;
    for (field, delta) in deltas.into_sorted() {
        stmt.execute(params![i64::from(field.0), delta])?;
    }
    Ok(())
}

/// Writes customers with its statements prepared once, for runs of many writes.
pub struct CustomerWriter<'c> {
    insert: CachedStatement<'c>,
    update: CachedStatement<'c>,
    find: CachedStatement<'c>,
    find_id: CachedStatement<'c>,
    buf: Vec<u8>,
    fields: Vec<(FieldId, unico_core::Value)>,
    /// Whether the application has aliases (merged customerIds), once asked.
    aliases: Option<(AppId, bool)>,
}

impl<'c> CustomerWriter<'c> {
    pub fn new(conn: &'c Connection) -> Result<Self, StoreError> {
        Ok(Self {
            insert: conn.prepare_cached(
                "INSERT INTO customers (app_id, customer_id, created_at, updated_at, data) VALUES (?1, ?2, ?3, ?3, ?4)
                 ON CONFLICT (app_id, customer_id) DO NOTHING",
            )?,
            update: conn.prepare_cached("UPDATE customers SET updated_at = ?2, data = ?3 WHERE id = ?1")?,
            find: conn.prepare_cached(&format!(
                "SELECT {} FROM customers WHERE app_id = ?1 AND customer_id = ?2",
                rows::CUSTOMER_COLUMNS
            ))?,
            find_id: conn.prepare_cached(
                "SELECT id FROM customers WHERE app_id = ?1 AND customer_id = ?2",
            )?,
            buf: Vec::with_capacity(512),
            fields: Vec::with_capacity(32),
            aliases: None,
        })
    }

    /// Writes one customer and records the value-count changes. New customers cost one
    /// insert: the lookup happens only when the insert meets an existing one.
    #[allow(clippy::too_many_arguments)]
    pub fn write(
        &mut self,
        conn: &Connection,
        app: AppId,
        customer_id: &CustomerId,
        changes: &[FieldChange],
        now: i64,
        mode: Mode,
        deltas: &mut CountDeltas,
    ) -> Result<(UpsertOutcome, Before), StoreError> {
        let survivor = self.resolve(conn, app, customer_id)?;
        let customer_id = survivor.as_ref().unwrap_or(customer_id);
        if mode != Mode::Update {
            self.fields.clear();
            let applied = apply_changes(&mut self.fields, changes);
            codec::encode_into(&self.fields, &mut self.buf);
            let data = std::mem::take(&mut self.buf);
            let inserted = self.try_insert(conn, app, customer_id, now, &data);
            self.buf = data;
            if let Some(id) = inserted? {
                for (field, d) in applied.presence {
                    deltas.add(field, d);
                }
                let customer = Customer {
                    id,
                    customer_id: customer_id.clone(),
                    created_at: now,
                    updated_at: now,
                    fields: std::mem::take(&mut self.fields),
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
                )));
            }
        }
        let (customer, before) = self.update_existing(app, customer_id, changes, now, deltas)?;
        Ok((
            UpsertOutcome {
                created: false,
                customer,
            },
            Before::Values(before),
        ))
    }

    /// The survivor `customer_id` leads to, if it is the customerId of a merged customer
    /// (one lookup per writer to know whether the application has any alias at all).
    pub fn resolve(
        &mut self,
        conn: &Connection,
        app: AppId,
        customer_id: &CustomerId,
    ) -> Result<Option<CustomerId>, StoreError> {
        let any = match self.aliases {
            Some((a, any)) if a == app => any,
            _ => {
                let any = super::identities::has_aliases(conn, app)?;
                self.aliases = Some((app, any));
                any
            }
        };
        if !any {
            return Ok(None);
        }
        super::identities::resolve_alias(conn, app, customer_id)
    }

    /// Inserts a new customer with its values already encoded; answers its id, or `None`
    /// if the customer exists (nothing written).
    pub fn try_insert(
        &mut self,
        conn: &Connection,
        app: AppId,
        customer_id: &CustomerId,
        now: i64,
        data: &[u8],
    ) -> Result<Option<i64>, StoreError> {
        let inserted = self
            .insert
            .execute(params![app.0, customer_id.as_str(), now, data])?;
        Ok((inserted == 1).then(|| conn.last_insert_rowid()))
    }

    /// The id of a customer, if it exists.
    pub fn find_id(
        &mut self,
        app: AppId,
        customer_id: &CustomerId,
    ) -> Result<Option<i64>, StoreError> {
        Ok(self
            .find_id
            .query_row(params![app.0, customer_id.as_str()], |r| r.get(0))
            .optional()?)
    }

    /// Applies `changes` to an existing customer (`NotFound` if there is none), moving
    /// `updated_at` only if a value changed; answers the customer as it now is, and its
    /// values before.
    pub fn update_existing(
        &mut self,
        app: AppId,
        customer_id: &CustomerId,
        changes: &[FieldChange],
        now: i64,
        deltas: &mut CountDeltas,
    ) -> Result<(Customer, crate::writing::FieldValues), StoreError> {
        let row = self
            .find
            .query_row(
                params![app.0, customer_id.as_str()],
                rows::customer_from_row,
            )
            .optional()?
            .ok_or_else(|| rows::not_found(customer_id))?;
        let mut customer = rows::to_customer(row)?;
        let before = customer.fields.clone();
        let applied = apply_changes(&mut customer.fields, changes);
        if applied.changed {
            customer.updated_at = now.max(customer.updated_at);
            codec::encode_into(&customer.fields, &mut self.buf);
            self.update
                .execute(params![customer.id, customer.updated_at, &self.buf[..]])?;
            for (field, d) in applied.presence {
                deltas.add(field, d);
            }
        }
        Ok((customer, before))
    }
}

/// Deletes one customer and its values.
pub fn delete_customer(
    conn: &Connection,
    app: AppId,
    customer_id: &CustomerId,
) -> Result<i64, StoreError> {
    let customer =
        rows::find_customer(conn, app, customer_id)?.ok_or_else(|| rows::not_found(customer_id))?;
    super::events::forget_customer_keys(conn, app, customer.id)?;
    conn.prepare_cached("DELETE FROM customers WHERE id = ?1")?
        .execute([customer.id])?;
    let mut deltas = CountDeltas::default();
    for (field, _) in &customer.fields {
        deltas.add(*field, -1);
    }
    flush_counts(deltas, conn)?;
    Ok(customer.id)
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
