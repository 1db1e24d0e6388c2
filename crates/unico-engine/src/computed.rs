//! Computed fields' values: one pass over the field's event type computes the value of
//! every customer at once, as a column of the field's type, for lists, exports and
//! charts. A condition on a computed field never reads this: it is evaluated as the event
//! condition it stands for. Nothing is cached: the values are those of the events and the
//! clock at the call.

use unico_core::{Computed, FieldType, Value};
use unico_filter::EvalContext;
use unico_filter::check::computed_filter;
use unico_filter::resolve::{Resolved, resolve};

use crate::bits::Bits;
use crate::column::{Column, Data};
use crate::index::AppIndex;
use crate::members::Members;
use crate::stats::{histogram_in, holding_in, range_in};

/// One computed field's values for every customer of an index, at one instant.
#[derive(Debug, Clone)]
pub struct ComputedColumn {
    column: Column,
}

impl AppIndex {
    /// The values of `computed` for every customer, now (`ctx`'s instant and zone).
    pub fn computed_column(&self, computed: &Computed, ctx: &EvalContext) -> ComputedColumn {
        self.computed_of(computed, ctx, None)
    }

    /// The values of `computed` for the customers with these internal ids only (the others
    /// read as having none): what a page of customers needs, without writing a value for
    /// every customer of the application.
    pub fn computed_column_for(
        &self,
        computed: &Computed,
        ctx: &EvalContext,
        ids: &[i64],
    ) -> ComputedColumn {
        let mut only = Bits::with_rows(self.rows);
        for slot in ids.iter().filter_map(|id| self.slot_of(*id)) {
            only.assign(slot, true);
        }
        self.computed_of(computed, ctx, Some(&only))
    }

    fn computed_of(
        &self,
        computed: &Computed,
        ctx: &EvalContext,
        only: Option<&Bits>,
    ) -> ComputedColumn {
        let resolved = resolve(&computed_filter(computed), ctx);
        let column = match resolved.root() {
            Resolved::Event(t) => {
                self.measure_column(t, computed.agg, computed.property.as_deref(), only)
            }
            // `exists` is never negated: the root is the event condition itself.
            _ => Column::new(computed.agg.field_type(), self.rows),
        };
        ComputedColumn { column }
    }
}

impl ComputedColumn {
    /// The value of the customer with internal id `id`, if it has one.
    pub fn value(&self, index: &AppIndex, id: i64) -> Option<Value> {
        let slot = index.slot_of(id)?;
        if !self.column.present.get(slot) {
            return None;
        }
        match (&self.column.data, self.column.ty) {
            (Data::Num(nums), FieldType::Number) => nums.get(slot).map(Value::Number),
            (Data::Datetime { ms, .. }, _) => ms.get(slot).map(|&t| Value::Datetime(t)),
            _ => None,
        }
    }

    /// Every customer's value, by internal id, ascending (customers with none left out).
    pub fn values(&self, index: &AppIndex) -> Vec<(i64, Value)> {
        let mut out: Vec<(i64, Value)> = self
            .column
            .present
            .iter()
            .filter_map(|slot| {
                let id = index.id_of(slot)?;
                self.value(index, id).map(|v| (id, v))
            })
            .collect();
        out.sort_unstable_by_key(|(id, _)| *id);
        out
    }

    /// How many of `members` have a value.
    pub fn holding(&self, members: &Members) -> u64 {
        holding_in(members, &self.column)
    }

    /// The smallest and largest value among `members` (instants as epoch milliseconds).
    pub fn range(&self, members: &Members) -> Option<(f64, f64)> {
        range_in(members, &self.column)
    }

    /// The members' values counted into equal-width buckets, as [`AppIndex::histogram`].
    pub fn histogram(&self, members: &Members, start: f64, width: f64, buckets: usize) -> Vec<u64> {
        histogram_in(members, &self.column, start, width, buckets)
    }
}
