//! The [`Store`] trait: every durable operation of the product, backend-independent.
//!
//! Calls are blocking; async callers run them on a blocking thread. Every write is durable
//! when it returns `Ok`: it survives a crash of the process (and, on the embedded backend,
//! of the machine). Times are passed in by the caller (epoch milliseconds), so the store
//! never reads a clock and tests control time.

use unico_core::{
    AppId, AppName, Application, Customer, CustomerId, FieldChange, FieldDef, FieldName, FieldType,
    Schema, TimeZoneName,
};

use crate::cursor::Cursor;
use crate::error::StoreError;

/// A stored API key (the key itself is never stored, only its SHA-256).
#[derive(Debug, Clone, PartialEq)]
pub struct ApiKeyInfo {
    pub id: i64,
    pub app: AppId,
    /// The first characters of the key, to recognise it in lists.
    pub prefix: String,
    pub created_at: i64,
    pub revoked_at: Option<i64>,
}

/// A field with how many customers hold a value for it.
#[derive(Debug, Clone, PartialEq)]
pub struct FieldStat {
    pub field: FieldDef,
    pub value_count: u64,
}

/// What a list is ordered by. Ties are broken by customerId, so the order is total.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SortBy {
    CustomerId,
    /// Creation order (the order ids were assigned).
    CreatedAt,
    UpdatedAt,
    /// A customer field; customers without a value come last in either direction.
    Field(FieldDef),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sort {
    pub by: SortBy,
    pub descending: bool,
}

impl Sort {
    pub fn default_order() -> Self {
        Sort {
            by: SortBy::CustomerId,
            descending: false,
        }
    }
}

/// One page request.
#[derive(Debug, Clone)]
pub struct ListQuery {
    pub sort: Sort,
    /// Start after this position (from the previous page's `next`).
    pub after: Option<Cursor>,
    pub limit: usize,
}

/// One page of customers and where the next one starts (`None` on the last page).
#[derive(Debug, Clone)]
pub struct Page {
    pub customers: Vec<Customer>,
    pub next: Option<Cursor>,
}

/// One item of a batch upsert.
#[derive(Debug, Clone)]
pub struct UpsertItem {
    pub customer_id: CustomerId,
    pub changes: Vec<FieldChange>,
}

/// What happened to one upserted customer.
#[derive(Debug, Clone, PartialEq)]
pub struct UpsertOutcome {
    pub created: bool,
    pub customer: Customer,
}

/// Every durable operation of the product.
pub trait Store: Send + Sync + 'static {
    /// A short name of the backend, for logs.
    fn backend(&self) -> &'static str;

    // --- instance metadata ---
    fn get_meta(&self, key: &str) -> Result<Option<String>, StoreError>;
    fn set_meta(&self, key: &str, value: &str) -> Result<(), StoreError>;

    // --- applications ---
    fn create_app(
        &self,
        name: &AppName,
        timezone: &TimeZoneName,
        now: i64,
    ) -> Result<Application, StoreError>;
    fn list_apps(&self) -> Result<Vec<Application>, StoreError>;
    fn get_app(&self, app: AppId) -> Result<Application, StoreError>;
    fn update_app(
        &self,
        app: AppId,
        name: Option<&AppName>,
        timezone: Option<&TimeZoneName>,
    ) -> Result<Application, StoreError>;
    /// Deletes the application with its keys, fields and customers.
    fn delete_app(&self, app: AppId) -> Result<(), StoreError>;

    // --- API keys ---
    fn create_key(
        &self,
        app: AppId,
        hash: &[u8; 32],
        prefix: &str,
        now: i64,
    ) -> Result<ApiKeyInfo, StoreError>;
    fn list_keys(&self, app: AppId) -> Result<Vec<ApiKeyInfo>, StoreError>;
    fn revoke_key(&self, app: AppId, key_id: i64, now: i64) -> Result<(), StoreError>;
    /// The live (unrevoked) key with this hash.
    fn find_key(&self, hash: &[u8; 32]) -> Result<Option<ApiKeyInfo>, StoreError>;

    // --- customer fields ---
    fn schema(&self, app: AppId) -> Result<Schema, StoreError>;
    fn field_stats(&self, app: AppId) -> Result<Vec<FieldStat>, StoreError>;
    /// `Conflict` if the name exists, `Limit` past the field limit.
    fn create_field(
        &self,
        app: AppId,
        name: &FieldName,
        field_type: FieldType,
        now: i64,
    ) -> Result<FieldDef, StoreError>;
    /// Changes a field's type; `Conflict` while any customer holds a value for it.
    fn set_field_type(
        &self,
        app: AppId,
        name: &FieldName,
        field_type: FieldType,
    ) -> Result<FieldDef, StoreError>;
    /// Deletes a field and its value from every customer; answers how many values went.
    fn delete_field(&self, app: AppId, name: &FieldName) -> Result<u64, StoreError>;

    // --- customers ---
    /// Creates a customer; `Conflict` if the customerId exists.
    fn create_customer(
        &self,
        app: AppId,
        customer_id: &CustomerId,
        changes: &[FieldChange],
        now: i64,
    ) -> Result<Customer, StoreError>;
    fn get_customer(&self, app: AppId, customer_id: &CustomerId) -> Result<Customer, StoreError>;
    /// Sets and removes values; `updated_at` moves only if a value changed.
    fn update_customer(
        &self,
        app: AppId,
        customer_id: &CustomerId,
        changes: &[FieldChange],
        now: i64,
    ) -> Result<Customer, StoreError>;
    fn delete_customer(&self, app: AppId, customer_id: &CustomerId) -> Result<(), StoreError>;
    /// Creates or updates each item, in order, in one durable write. An item that fails
    /// (say, a field deleted meanwhile) is reported and the others are written.
    fn upsert_batch(
        &self,
        app: AppId,
        items: Vec<UpsertItem>,
        now: i64,
    ) -> Result<Vec<Result<UpsertOutcome, StoreError>>, StoreError>;
    fn list_customers(&self, app: AppId, query: &ListQuery) -> Result<Page, StoreError>;
    fn count_customers(&self, app: AppId) -> Result<u64, StoreError>;
    /// Visits every customer of the application in id order until `visit` answers false.
    fn scan_customers(
        &self,
        app: AppId,
        visit: &mut dyn FnMut(Customer) -> bool,
    ) -> Result<(), StoreError>;
}
