//! [`Members`]: the customers a filter selected, as a bitset of slots.

use crate::bits::Bits;

/// The customers a filter selected at one moment: an opaque set of the index's slots.
/// Valid for the [`crate::AppIndex`] that made it until that index's next write (a
/// removed customer's slot may be reused by a new one).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Members {
    slots: Bits,
    len: u64,
}

impl Members {
    pub(crate) fn new(slots: Bits) -> Self {
        let len = slots.count_ones();
        Self { slots, len }
    }

    /// How many customers.
    pub fn len(&self) -> u64 {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub(crate) fn contains(&self, slot: usize) -> bool {
        self.slots.get(slot)
    }

    pub(crate) fn words(&self) -> &[u64] {
        self.slots.words()
    }

    pub(crate) fn slots(&self) -> impl Iterator<Item = usize> + '_ {
        self.slots.iter()
    }

    /// Heap held, in bytes.
    pub fn memory_bytes(&self) -> usize {
        self.slots.heap_bytes()
    }
}
