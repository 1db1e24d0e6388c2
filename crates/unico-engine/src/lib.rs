//! Unico's segment engine: one application's customers held in memory as typed columns,
//! answering filter counts, member sets and keyset pages in milliseconds over millions
//! of customers. Pure: no I/O, no async; it never writes to a store (the store feeds it
//! with [`AppIndex::upsert`] / [`AppIndex::remove`] after each durable write).
//!
//! ```text
//! Customer ──upsert──> AppIndex { slots, columns, customerId order }
//! Filter + EvalContext ──resolve──> ResolvedFilter ──compile──> Plan ──eval (blocks, threads)──> count | Members
//! Members ──page_by_customer_id / page_by_field──> ids
//! ```
//!
//! - [`index`]: [`AppIndex`]: slots, columns, schema and time zone changes, counts, and
//!   per channel the bitset of customers subscribed to it ([`AppIndex::set_subscribed`],
//!   [`AppIndex::subscribers`]).
//! - [`column`]: typed columns with presence bitmaps.
//! - [`dict`]: string dictionaries (codes, arenas, lowercased forms).
//! - [`eval`]: compiling a resolved filter and evaluating it block by block.
//! - [`events`]: customers' events as columns per event type (append, retention, purge).
//! - [`event_eval`]: event conditions evaluated over those columns into rows.
//! - [`parallel`]: splitting scans over threads.
//! - [`local`]: month-day codes of local dates, for `anniversary`.
//! - [`bits`]: dense bitsets.
//! - [`num`]: number columns as exact fixed-point integers where they can be.
//! - [`members`]: [`Members`], the result of a filter.
//! - [`page`]: keyset pages by customerId or by a field.
//! - [`snapshot`]: an index written to bytes and read back (fast restarts).
//! - [`stats`]: summaries of members for charts (top values, ranges, histograms).
//!
//! **Architecture invariant**: the engine agrees exactly with the reference evaluator
//! [`unico_filter::matches`]: it evaluates [`unico_filter::resolve()`]'s form, built from
//! the same calendar arithmetic, and the differential property tests
//! (`tests/differential.rs`) check counts, members and pages against the reference on
//! random schemas, customers, writes, filters, instants and zones; event conditions are
//! checked the same way against `ResolvedFilter::matches_with_events`'s semantics
//! (`tests/events_differential.rs`), subscription conditions against
//! `unico_filter::matches_with` (`tests/subscriptions_differential.rs`).
//!
//! **API boundary**: no input panics; a value of a type other than its field's, or of a
//! field outside the schema, reads as absent (as in the reference evaluator).

pub mod activity;
pub mod bits;
pub mod column;
pub mod computed;
pub mod dict;
pub mod eval;
pub mod event_eval;
pub mod events;
pub mod index;
pub mod local;
pub mod members;
pub mod num;
pub mod page;
pub mod parallel;
pub mod prepared;
pub mod snapshot;
pub mod stats;

pub use computed::ComputedColumn;
pub use index::AppIndex;
pub use members::Members;
pub use page::{SortKey, SortPosition};
pub use prepared::PreparedEvents;
