//! Computed fields' values on the customers a reader returns. They are never stored: the
//! segment engine computes them from the events, at the instant of the read (so a value
//! moves as events arrive, as retention removes them and as its window slides), after
//! it has applied every write acknowledged before the read.

use std::sync::Arc;

use unico_core::customer::apply_changes;
use unico_core::{AppId, Customer, FieldChange, FieldId, Schema, Value};
use unico_store::StoreError;

use crate::engines::Engines;
use crate::state::now_ms;

/// Adds every computed field's current value to `customers` (a customer with no value
/// gets none, as for a stored field). Does nothing when the schema has no computed field.
pub fn fill(
    engines: &Arc<Engines>,
    app: AppId,
    schema: &Schema,
    customers: &mut [Customer],
) -> Result<(), StoreError> {
    if customers.is_empty() || schema.computed_fields().next().is_none() {
        return Ok(());
    }
    let ids: Vec<i64> = customers.iter().map(|c| c.id).collect();
    engines.query(app, now_ms(), |index, ctx| {
        for def in schema.computed_fields() {
            let Some(computed) = &def.computed else {
                continue;
            };
            let column = index.computed_column_for(computed, ctx, &ids);
            for c in customers.iter_mut() {
                let value = column.value(index, c.id);
                apply_changes(
                    &mut c.fields,
                    &[FieldChange {
                        field: def.id,
                        value,
                    }],
                );
            }
        }
    })
}

/// Every customer's values of the computed fields at one instant, for an export that
/// streams customers from the store after the engine has answered.
pub struct Values {
    /// Per computed field, the customers holding a value, by internal id ascending.
    fields: Vec<(FieldId, Vec<(i64, Value)>)>,
}

impl Values {
    /// The values now; `None` when the schema has no computed field.
    pub fn now(
        engines: &Arc<Engines>,
        app: AppId,
        schema: &Schema,
    ) -> Result<Option<Values>, StoreError> {
        if schema.computed_fields().next().is_none() {
            return Ok(None);
        }
        engines
            .query(app, now_ms(), |index, ctx| {
                schema
                    .computed_fields()
                    .filter_map(|def| {
                        let computed = def.computed.as_ref()?;
                        Some((def.id, index.computed_column(computed, ctx).values(index)))
                    })
                    .collect()
            })
            .map(|fields| Some(Values { fields }))
    }

    /// Adds a customer's values (keeping its values sorted by field id).
    pub fn fill(&self, c: &mut Customer) {
        for (field, values) in &self.fields {
            let Ok(i) = values.binary_search_by_key(&c.id, |(id, _)| *id) else {
                continue;
            };
            let value = Some(values[i].1.clone());
            apply_changes(
                &mut c.fields,
                &[FieldChange {
                    field: *field,
                    value,
                }],
            );
        }
    }
}
