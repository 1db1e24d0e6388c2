//! Recording audited actions: who (the admin key, an application's key, or either through
//! the console), what and on what, appended once the action has committed.

use unico_core::AppId;
use unico_store::audit::NewAudit;
use unico_store::{Store, StoreError};

use crate::auth::Principal;
use crate::state::now_ms;

/// How a principal is named in the audit log: `admin` or `key:ID`.
pub fn actor(principal: &Principal) -> String {
    match principal {
        Principal::Admin => "admin".to_owned(),
        Principal::App { key_id, .. } => format!("key:{key_id}"),
    }
}

/// The same, for an action taken in the console.
pub fn console_actor(principal: &Principal) -> String {
    format!("console {}", actor(principal))
}

/// Appends a record of an action that has committed.
pub fn record(
    store: &dyn Store,
    app: Option<AppId>,
    actor: &str,
    action: &str,
    target: impl std::fmt::Display,
) -> Result<(), StoreError> {
    store.record_audit(&NewAudit {
        app,
        at: now_ms(),
        actor: actor.to_owned(),
        action: action.to_owned(),
        target: target.to_string(),
    })?;
    Ok(())
}
