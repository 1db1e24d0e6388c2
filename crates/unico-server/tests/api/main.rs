//! HTTP integration tests of the foundation: applications, keys, fields and customers.
//!
//! Every test drives the real router over a real SQLite store in a fresh temporary
//! directory, with `tower::ServiceExt::oneshot` (no socket).

#![allow(clippy::unwrap_used)]

mod support;

mod apps;
mod audit;
mod auth;
mod batch;
mod computed;
mod concurrency;
mod console;
mod customers;
mod documented;
mod events;
mod export;
mod fields;
mod filters;
mod hostile;
mod identities;
mod imports;
mod list;
mod ops;
mod segments;
mod subscriptions;
