//! The filter language's limits, named once. Each is enforced where input enters and each
//! has a test at the limit and one past it (see `tests/snapshots.rs`).

/// Most levels a filter may nest. A lone condition is one level; every `and`, `or` and
/// `not` around it adds one. In the text form, parentheses are bounded by the same number
/// even when they are redundant, because they are what the parser recurses on.
pub const MAX_DEPTH: usize = 64;

/// Largest filter, in bytes: the text form as given, or the JSON form written compactly.
pub const MAX_FILTER_BYTES: usize = 64 * 1024;

/// Most values in one `in` / `not_in` list.
pub const MAX_IN_VALUES: usize = 10_000;

pub use unico_core::limits::MAX_TIME_AMOUNT;

/// Largest `anniversary within N days` window. A year or more would match every date.
pub const MAX_ANNIVERSARY_DAYS: u32 = 366;

/// Largest count bound of an event condition (`did purchase at_least N times`, JSON
/// `"count": {"gte": N}`).
pub const MAX_EVENT_COUNT: u32 = 1_000_000;
