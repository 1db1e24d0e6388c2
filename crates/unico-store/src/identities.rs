//! What the store takes and gives for identities and merges, and the rules every backend
//! applies the same way.

use unico_core::customer::apply_changes;
use unico_core::{
    AppId, Customer, CustomerId, FieldChange, FieldId, Identity, IdentityKind, Value,
};

/// An identity a customer holds, and since when.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeldIdentity {
    pub identity: Identity,
    pub linked_at: i64,
}

/// What linking an identity did.
#[derive(Debug, Clone, PartialEq)]
pub struct LinkOutcome {
    /// The customer did not hold it before (false: it already did; nothing written).
    pub linked: bool,
    /// The identity belonged to an anonymous customer, which was merged into this one.
    pub merged: Option<MergeOutcome>,
    /// The customer after the link (and the merge).
    pub customer: Customer,
}

/// What a merge moved to the surviving customer.
#[derive(Debug, Clone, PartialEq)]
pub struct MergeOutcome {
    /// The survivor as it now is.
    pub customer: Customer,
    /// The merged customer: its customerId (now an alias of the survivor) and internal id.
    pub from: CustomerId,
    pub from_id: i64,
    pub events_moved: u64,
    pub identities_moved: u64,
    /// Channels whose standing subscription the survivor took from the merged customer.
    pub subscriptions_moved: u64,
    /// Fields the survivor lacked and took from the merged customer.
    pub fields_filled: Vec<FieldId>,
    /// The merged customer's values that lost to the survivor's (same field, another value).
    pub lost: Vec<(FieldId, Value)>,
    /// Aliases that now lead to the survivor (the merged customerId and the aliases it had).
    pub aliases_moved: u64,
}

/// A customer merged into another: its old customerId (an alias of the survivor) and
/// what lost on the merge.
#[derive(Debug, Clone, PartialEq)]
pub struct MergeRecord {
    pub alias: CustomerId,
    pub merged_at: i64,
    /// The merged customer's values that lost to the survivor's.
    pub lost: Vec<(FieldId, Value)>,
}

/// How an event names its customer when it names an identity instead of a customerId.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ByIdentity {
    pub identity: Identity,
    /// The customer to create (anonymous, holding the identity) when nobody holds it;
    /// `None`: an event for an identity nobody holds is refused.
    pub anonymous: Option<CustomerId>,
}

/// The meta key holding the identity kinds an application declared, comma-separated.
pub fn declared_kinds_key(app: AppId) -> String {
    format!("app.{}.identity_kinds", app.0)
}

/// Reads [`declared_kinds_key`]'s value (unreadable names are skipped).
pub fn parse_declared_kinds(text: &str) -> Vec<IdentityKind> {
    text.split(',')
        .filter(|k| !k.is_empty())
        .filter_map(|k| IdentityKind::parse(k).ok())
        .collect()
}

/// The meta key holding whether an event for an unknown identity creates an anonymous
/// customer ("true") or is refused.
pub fn anonymous_profiles_key(app: AppId) -> String {
    format!("app.{}.anonymous_profiles", app.0)
}

/// The field rule of a merge: the survivor's values win; a field only the merged customer
/// holds moves to the survivor. Answers the changes to apply to the survivor, the fields
/// they fill and the merged customer's values that lost.
pub fn merge_fields(
    survivor: &[(FieldId, Value)],
    merged: &[(FieldId, Value)],
) -> (Vec<FieldChange>, Vec<FieldId>, Vec<(FieldId, Value)>) {
    let mut changes = Vec::new();
    let mut filled = Vec::new();
    let mut lost = Vec::new();
    for (field, value) in merged {
        match survivor.iter().find(|(f, _)| f == field) {
            None => {
                changes.push(FieldChange {
                    field: *field,
                    value: Some(value.clone()),
                });
                filled.push(*field);
            }
            Some((_, kept)) if kept != value => lost.push((*field, value.clone())),
            Some(_) => {}
        }
    }
    (changes, filled, lost)
}

/// The survivor's values after taking the merged customer's (see [`merge_fields`]).
pub fn merged_values(
    survivor: &[(FieldId, Value)],
    changes: &[FieldChange],
) -> Vec<(FieldId, Value)> {
    let mut fields = survivor.to_vec();
    apply_changes(&mut fields, changes);
    fields
}

/// An import's batches with every customerId that is an alias replaced by its survivor's.
pub(crate) fn resolve_batches(
    batches: Box<dyn Iterator<Item = crate::ImportBatch> + Send>,
    aliases: std::collections::HashMap<String, CustomerId>,
) -> Box<dyn Iterator<Item = crate::ImportBatch> + Send> {
    Box::new(batches.map(move |batch| match batch {
        crate::ImportBatch::Items(mut items) => {
            for item in &mut items {
                if let Some(survivor) = aliases.get(item.customer_id.as_str()) {
                    item.customer_id = survivor.clone();
                }
            }
            crate::ImportBatch::Items(items)
        }
        end => end,
    }))
}

pub(crate) fn self_merge(customer_id: &CustomerId) -> crate::StoreError {
    crate::StoreError::Invalid(format!(
        "a customer cannot be merged into itself (\"{}\" is the same customer, or an alias of it)",
        unico_core::value::excerpt(customer_id.as_str())
    ))
}

pub(crate) fn owned_by_other(identity: &Identity, owner: &CustomerId) -> crate::StoreError {
    crate::StoreError::Conflict(format!(
        "the identity {} {} belongs to customer \"{}\"; merge the two customers explicitly (POST …/customers/{{customerId}}/merge) to make them one",
        identity.kind,
        unico_core::value::excerpt(identity.value()),
        unico_core::value::excerpt(owner.as_str())
    ))
}

pub(crate) fn too_many_identities() -> crate::StoreError {
    crate::StoreError::Limit(format!(
        "a customer holds at most {} identities",
        unico_core::identity::MAX_IDENTITIES_PER_CUSTOMER
    ))
}

pub(crate) fn not_held(identity: &Identity) -> crate::StoreError {
    crate::StoreError::NotFound(format!(
        "identity {} {}",
        identity.kind,
        unico_core::value::excerpt(identity.value())
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_survivor_wins_and_gaps_are_filled() {
        let (a, b, c) = (FieldId(1), FieldId(2), FieldId(3));
        let survivor = vec![(a, Value::Number(1.0)), (b, Value::Number(2.0))];
        let merged = vec![
            (a, Value::Number(1.0)),
            (b, Value::Number(9.0)),
            (c, Value::Number(3.0)),
        ];
        let (changes, filled, lost) = merge_fields(&survivor, &merged);
        assert_eq!(filled, vec![c]);
        assert_eq!(lost, vec![(b, Value::Number(9.0))]);
        assert_eq!(
            merged_values(&survivor, &changes),
            vec![
                (a, Value::Number(1.0)),
                (b, Value::Number(2.0)),
                (c, Value::Number(3.0))
            ]
        );
    }
}
