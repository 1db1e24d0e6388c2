//! Every limit of the product, named once. Each is enforced where input enters and each
//! has a test at the limit and one past it.

/// Longest string value, in bytes of UTF-8.
pub const MAX_STRING_VALUE_BYTES: usize = 4096;
/// Longest field name, in characters.
pub const MAX_FIELD_NAME_CHARS: usize = 128;
/// Longest customerId, in characters.
pub const MAX_CUSTOMER_ID_CHARS: usize = 256;
/// Most customer fields one application may define.
pub const MAX_FIELDS_PER_APP: usize = 1000;
/// Longest application name, in characters.
pub const MAX_APP_NAME_CHARS: usize = 200;
/// Most items in one batch upsert.
pub const MAX_BATCH_ITEMS: usize = 10_000;
/// Default page size of customer lists.
pub const DEFAULT_PAGE_LIMIT: usize = 50;
/// Largest page size of customer lists.
pub const MAX_PAGE_LIMIT: usize = 1000;

/// Most events in one `POST …/events` request.
pub const MAX_EVENTS_PER_REQUEST: usize = 10_000;
/// Largest properties object of one event, in bytes of compact JSON.
pub const MAX_EVENT_PROPERTIES_BYTES: usize = 8 * 1024;
/// Deepest nesting of an event's properties (the object itself is level 1).
pub const MAX_EVENT_PROPERTIES_DEPTH: usize = 5;
/// Earliest accepted event time: 2000-01-01T00:00:00Z (older is a unit mistake, such as
/// seconds sent as milliseconds).
pub const MIN_EVENT_TIME_MS: i64 = 946_684_800_000;
/// How far in the future an event may be, against the server's clock: one day.
pub const MAX_EVENT_FUTURE_MS: i64 = 24 * 3_600_000;
/// Longest retention of an event type: 100 years.
pub const MAX_RETENTION_DAYS: u32 = 36_500;
/// Most event types one application may register.
pub const MAX_EVENT_TYPES_PER_APP: usize = 500;

/// Largest amount in a relative time or duration (`90d`, `2w`): a million weeks is about
/// 19 000 years, past every representable date, and keeps all arithmetic far from overflow.
pub const MAX_TIME_AMOUNT: u32 = 1_000_000;
