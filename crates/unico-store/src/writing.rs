//! What every backend's customer writes share: how a write treats a customer that exists
//! or not, and the per-field value-count changes a transaction gathers before it applies
//! them (each backend applies them in its own SQL).

use unico_core::{FieldId, Value};

/// A customer's values by field, as they are held.
pub type FieldValues = Vec<(FieldId, Value)>;

/// How a write treats the customer's existence.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// `Conflict` if the customer exists.
    Create,
    /// `NotFound` if it does not.
    Update,
    Upsert,
}

/// Changes in per-field value counts, gathered per transaction and flushed once.
#[derive(Default, Clone)]
pub struct CountDeltas(Vec<(FieldId, i64)>);

impl CountDeltas {
    pub fn add(&mut self, field: FieldId, delta: i64) {
        match self.0.iter_mut().find(|(id, _)| *id == field) {
            Some((_, d)) => *d += delta,
            None => self.0.push((field, delta)),
        }
    }

    /// The non-zero changes in ascending field id (the order writers lock count rows in).
    pub fn into_sorted(mut self) -> Vec<(FieldId, i64)> {
        self.0.retain(|(_, d)| *d != 0);
        self.0.sort_by_key(|(id, _)| *id);
        self.0
    }
}
