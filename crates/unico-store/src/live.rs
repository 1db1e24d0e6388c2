//! The rules a customer write is checked against inside its own transaction: the
//! application's live fields, shared by every backend so they refuse the same writes.

use unico_core::{EventCode, FieldChange, FieldDef, FieldId, FieldType};

use crate::error::StoreError;

/// An application's live fields and their types, sorted by id for quick lookups on the
/// write path (a binary search in a few cache lines beats hashing per value).
#[derive(Debug, Default, Clone)]
pub(crate) struct LiveFields(Vec<(FieldId, FieldType)>);

impl LiveFields {
    /// The fields given, in any order.
    pub(crate) fn new(mut fields: Vec<(FieldId, FieldType)>) -> Self {
        fields.sort_by_key(|(id, _)| *id);
        LiveFields(fields)
    }

    pub(crate) fn get(&self, field: FieldId) -> Option<FieldType> {
        self.0
            .binary_search_by_key(&field, |(id, _)| *id)
            .ok()
            .map(|i| self.0[i].1)
    }
}

/// Re-checks changes against the fields as they are now, inside the transaction: a field
/// deleted or retyped since the caller validated the request must not receive a value.
pub(crate) fn check_changes(live: &LiveFields, changes: &[FieldChange]) -> Result<(), StoreError> {
    for change in changes {
        match (live.get(change.field), &change.value) {
            (None, _) => {
                return Err(StoreError::Conflict(
                    "a field of this write was deleted meanwhile; retry with the current fields"
                        .into(),
                ));
            }
            (Some(ty), Some(v)) if v.field_type() != ty => {
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

/// A computed field's type follows its aggregate: it never changes by itself.
pub(crate) fn refuse_computed_retype(field: &FieldDef, to: FieldType) -> Result<(), StoreError> {
    match &field.computed {
        Some(c) if field.field_type != to => Err(StoreError::Conflict(format!(
            "field \"{}\" is computed ({c}); its type follows its aggregate and cannot change: delete it and create it again",
            field.name
        ))),
        _ => Ok(()),
    }
}

/// An event type that computed fields aggregate cannot be deleted from under them.
pub(crate) fn refuse_type_in_use(fields: &[FieldDef], code: &EventCode) -> Result<(), StoreError> {
    let users: Vec<&str> = fields
        .iter()
        .filter(|f| f.computed.as_ref().is_some_and(|c| c.event == *code))
        .map(|f| f.name.as_str())
        .collect();
    if users.is_empty() {
        return Ok(());
    }
    Err(StoreError::Conflict(format!(
        "event type \"{code}\" is aggregated by the computed field{} {}; delete {} first",
        if users.len() == 1 { "" } else { "s" },
        users
            .iter()
            .map(|n| format!("\"{n}\""))
            .collect::<Vec<_>>()
            .join(", "),
        if users.len() == 1 { "it" } else { "them" }
    )))
}
