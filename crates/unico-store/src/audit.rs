//! The audit log: who did what to an application, when. Append-only (the backends refuse
//! to change or remove a record) and kept after its application is deleted. Records hold
//! no personal data: a customer is named by its internal id only.

use unico_core::AppId;

/// Most records one read answers.
pub const MAX_AUDIT_PAGE: usize = 1000;

/// A record to append.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewAudit {
    /// The application concerned (`None`: the whole installation).
    pub app: Option<AppId>,
    /// Epoch milliseconds.
    pub at: i64,
    /// Who: `admin`, `key:12` (an application's API key), or the same prefixed with
    /// `console ` for an action taken in the console.
    pub actor: String,
    /// What, as `noun.verb`: `customer.erased`, `key.revoked`, `field.deleted`…
    pub action: String,
    /// On what: an id or a name (never a customer's customerId or values).
    pub target: String,
}

/// A record as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditRecord {
    pub id: i64,
    pub app: Option<AppId>,
    pub at: i64,
    pub actor: String,
    pub action: String,
    pub target: String,
}
