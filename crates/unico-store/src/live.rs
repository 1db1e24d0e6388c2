//! The rules a customer write is checked against inside its own transaction: the
//! application's live fields, shared by every backend so they refuse the same writes.

use unico_core::{FieldChange, FieldId, FieldType};

use crate::error::StoreError;

/// An application's live fields and their types, sorted by id for quick lookups on the
/// write path (a binary search in a few cache lines beats hashing per value).
#[derive(Debug, Default)]
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
