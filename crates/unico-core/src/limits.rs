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
