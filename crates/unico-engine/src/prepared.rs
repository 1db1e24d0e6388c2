//! Events prepared for an index while an import writes them.
//!
//! A backfill of millions of events used to reach the segment engine only after its
//! commit: the engine then read every block back, decoded it and built its columns, and
//! the first count after the import waited for all of it (seconds). An import can instead
//! hand each batch it writes to a [`PreparedEvents`], which builds the very tables the
//! index would, with its own numbering of the customers. Once the import is committed and
//! its change reaches the index, [`crate::AppIndex::add_prepared`] takes the tables over
//! in one step: each customer's number becomes the slot the index gives that customer.
//!
//! An index holding no events takes prepared tables over as they are (they become its
//! tables); any other appends their rows, column by column, translating channels,
//! property names and strings once per distinct value instead of reading and parsing
//! every event again. Either way the index ends as [`crate::AppIndex::add_events`] would
//! have left it for the same events (those of a customer it does not hold left out).
//! Until taken, prepared tables are invisible: nothing evaluates them.

use std::collections::HashMap;

use crate::dict::IntHash;
use crate::events::{EventRow, Events};

/// The tables of an import's events, built as it writes them.
#[derive(Debug, Default)]
pub struct PreparedEvents {
    /// The tables, whose slots number the customers in order of first appearance.
    events: Events,
    /// Internal customer id by number.
    customers: Vec<i64>,
    /// Number by internal customer id.
    numbers: HashMap<i64, u32, IntHash>,
}

impl PreparedEvents {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds events just written. Each event's id must be new to these tables, as the
    /// ids a store gives are (an id seen twice is kept once, whatever its customer).
    pub fn add<R: EventRow + Sync>(&mut self, rows: &[R]) {
        let mut last = None;
        for r in rows {
            let customer = r.customer();
            if last == Some(customer) {
                continue;
            }
            last = Some(customer);
            let customers = &mut self.customers;
            self.numbers.entry(customer).or_insert_with(|| {
                customers.push(customer);
                (customers.len() - 1) as u32
            });
        }
        let numbers = &self.numbers;
        self.events.add(rows, |c| numbers.get(&c).copied(), 1);
    }

    /// Gives `events` these tables' rows, each customer's number replaced by `slot_of` its
    /// internal id (the rows of a customer without a slot, not held, are left out, as
    /// [`crate::AppIndex::add_events`] leaves them out).
    pub(crate) fn give_to(self, events: &mut Events, slot_of: impl Fn(i64) -> Option<u32>) {
        let slots: Vec<Option<u32>> = self.customers.iter().map(|&c| slot_of(c)).collect();
        events.take_prepared(self.events, &slots);
    }
}
