//! Unico's HTTP layer: the only crate that knows HTTP and JSON.
//!
//! - [`console`]: the web console (server-rendered pages).
//! - [`routes`]: the router and the handlers, one module per resource.
//! - [`dto`]: the JSON shapes clients see and their conversions from the domain.
//! - [`error`]: the error table (status, code, message) and the error body.
//! - [`auth`]: keys, their hashes, and who may reach which application.
//! - [`extract`]: body and parameter extractors that reject in our error shape.
//! - [`state`]: what handlers share, and how they call the blocking store.
//! - [`engines`]: the segment engines of queried applications, fed by the store's changes.
//! - [`identity`]: an application's identity settings and the anonymous customerId rule.
//! - [`import_job`]: one CSV import from spooled file to committed write.
//! - [`limits`]: the server's resource bounds with their reasons, and the request layer.

pub mod audit;
pub mod auth;
pub mod computed;
pub mod console;
pub mod dto;
pub mod engines;
pub mod error;
pub mod event_import;
pub mod extract;
pub mod identity;
pub mod import_job;
pub mod limits;
pub mod metrics;
pub mod plain_line;
pub mod prepare;
pub mod routes;
pub mod state;
pub mod strict_json;

pub use routes::{ApiDoc, router};
pub use state::AppState;
