//! The customer profile and how changes apply to it.

use crate::field::FieldId;
use crate::names::CustomerId;
use crate::value::Value;

/// One customer of an application. `id` and `customer_id` never change once assigned.
#[derive(Debug, Clone, PartialEq)]
pub struct Customer {
    /// Server-assigned, immutable, unique across the store.
    pub id: i64,
    pub customer_id: CustomerId,
    /// Epoch milliseconds.
    pub created_at: i64,
    /// Epoch milliseconds; moves on every write that changes a value.
    pub updated_at: i64,
    /// Values by field id, sorted by id, each field at most once.
    pub fields: Vec<(FieldId, Value)>,
}

impl Customer {
    pub fn get(&self, field: FieldId) -> Option<&Value> {
        self.fields
            .binary_search_by_key(&field, |(id, _)| *id)
            .ok()
            .map(|i| &self.fields[i].1)
    }
}

/// One change to one field: set a value, or remove it (`None`).
#[derive(Debug, Clone, PartialEq)]
pub struct FieldChange {
    pub field: FieldId,
    pub value: Option<Value>,
}

/// What applying changes did to a customer's values.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Applied {
    /// Whether any value differs from before.
    pub changed: bool,
    /// Fields that gained a value (+1) or lost one (−1).
    pub presence: Vec<(FieldId, i64)>,
}

/// Applies `changes` in order (a later change of the same field wins) to sorted `fields`.
pub fn apply_changes(fields: &mut Vec<(FieldId, Value)>, changes: &[FieldChange]) -> Applied {
    let mut applied = Applied::default();
    for change in changes {
        let pos = fields.binary_search_by_key(&change.field, |(id, _)| *id);
        match (pos, &change.value) {
            (Ok(i), Some(v)) => {
                if fields[i].1 != *v {
                    fields[i].1 = v.clone();
                    applied.changed = true;
                }
            }
            (Ok(i), None) => {
                fields.remove(i);
                applied.changed = true;
                applied.presence.push((change.field, -1));
            }
            (Err(i), Some(v)) => {
                fields.insert(i, (change.field, v.clone()));
                applied.changed = true;
                applied.presence.push((change.field, 1));
            }
            (Err(_), None) => {}
        }
    }
    applied
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn changes_set_replace_and_remove() {
        let mut fields = vec![
            (FieldId(1), Value::Number(1.0)),
            (FieldId(3), Value::Number(3.0)),
        ];
        let applied = apply_changes(
            &mut fields,
            &[
                FieldChange {
                    field: FieldId(2),
                    value: Some(Value::Number(2.0)),
                },
                FieldChange {
                    field: FieldId(3),
                    value: None,
                },
                FieldChange {
                    field: FieldId(1),
                    value: Some(Value::Number(1.0)),
                },
                FieldChange {
                    field: FieldId(9),
                    value: None,
                },
            ],
        );
        assert_eq!(
            fields,
            vec![
                (FieldId(1), Value::Number(1.0)),
                (FieldId(2), Value::Number(2.0))
            ]
        );
        assert!(applied.changed);
        assert_eq!(applied.presence, vec![(FieldId(2), 1), (FieldId(3), -1)]);
        let again = apply_changes(
            &mut fields,
            &[FieldChange {
                field: FieldId(1),
                value: Some(Value::Number(1.0)),
            }],
        );
        assert!(!again.changed, "writing the same value changes nothing");
    }
}
