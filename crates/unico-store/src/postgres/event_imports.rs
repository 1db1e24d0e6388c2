//! Imports of events on PostgreSQL: a backfill of millions of events as one transaction.
//!
//! The import runs like a customers import ([`super::imports::run`]): one transaction,
//! under a savepoint released only if the feed ends with `keep: true`, its final record
//! joining the same transaction. Each batch of the feed (4 096 events from the NDJSON
//! parser) is written exactly as [`Store::insert_events`](crate::Store::insert_events)
//! writes one ([`events::write_batch`]): one lookup of its keys, one locking lookup of its
//! customers and one insert of the new ones, its ids, one multi-row insert of its events —
//! a few statements per batch, none per event. What differs:
//! - the locks are taken once, for the whole import: the application's shared lock (types
//!   cannot change or vanish until the import ends), the application's import turn (one
//!   import at a time, so two imports never wait on each other's keys or customers), and,
//!   if the application registers types on first sight, its registration turn, before any
//!   row (see below);
//! - the types are read once; an item of a type not registered (or disabled) fails the
//!   whole import (`Invalid`): the parser checks types first, so only a type changed since
//!   gets here;
//! - keys repeated across batches are found by the next batch's lookup (the import's own
//!   rows are visible to it) and counted as duplicates, as are keys stored before;
//! - customers an earlier batch created or locked are remembered ([`HeldCustomers`], up to
//!   [`HELD_CUSTOMERS`]): a backfill names each customer many times, and only the first
//!   time costs a lookup (a quarter of the import's time without this, measured);
//! - nothing is logged until the end, then: the schema if the import registered types,
//!   the customers it created one by one (up to the store's incremental import limit, past
//!   it one [`Change::Customers`] with their ids), and one [`Change::Events`] with the ids it stored, as ranges.
//!
//! **Registration turn.** A write registering a type holds its application's registration
//! turn until it commits, so the type limit holds. An import that may register takes the
//! turn at its start, before it holds any row: taken later, it could wait for a batch that
//! registers a type while that batch waits for a customer or key the import wrote, and the
//! server would break the deadlock by aborting one of them (maybe the import). The price:
//! while such an import runs, batches of its application that must register a new type
//! wait for it to end (batches of known types do not).

use std::sync::atomic::{AtomicU64, Ordering};

use unico_core::{AppId, Customer};

use super::conn::Res;
use super::events::{self, HeldCustomers, Types};
use super::writes::Wx;
use crate::changes::{Before, Change};
use crate::events::IdRanges;
use crate::store::{EventBatch, ImportCounts};

/// Customers an import remembers the row ids of (those it created or locked), so that
/// their later events need no lookup: about 60–100 MB at most. Past it, customers are
/// looked up batch by batch, as a batch of `insert_events` does.
const HELD_CUSTOMERS: usize = 1 << 20;

/// An events import's writes; `None` if the feed said not to keep them (or died).
pub fn write_all(
    w: &mut Wx<'_, '_>,
    app: AppId,
    batches: Box<dyn Iterator<Item = EventBatch> + Send>,
    now: i64,
    written: &AtomicU64,
    incremental: u64,
) -> Res<Option<ImportCounts>> {
    w.share_app_lock(app)?;
    w.import_turn(app)?;
    let mut types = Types::load(w, app)?;
    if types.auto_register(w)? {
        w.registration_turn(app)?;
    }
    // Customers created, kept for the log while there are at most `incremental`.
    let mut created: Vec<Customer> = Vec::new();
    let mut created_count = 0u64;
    // Every customer created, for the log past `incremental`.
    let mut created_ids = IdRanges::default();
    let mut duplicates = 0u64;
    let mut stored = IdRanges::default();
    let mut kept = false;
    let mut held = HeldCustomers::new(HELD_CUSTOMERS);
    for batch in batches {
        let items = match batch {
            EventBatch::Items(items) => items,
            EventBatch::End { keep } => {
                kept = keep;
                break;
            }
        };
        let type_ids = types.resolve(w, &items, now)?;
        if let Some(refused) = type_ids.iter().find_map(|t| t.as_ref().err()) {
            return Err(refused.clone().into());
        }
        let batch = events::write_batch(w, app, &items, type_ids, now, &mut held)?;
        for answer in &batch.answers {
            if matches!(answer, Ok(outcome) if outcome.duplicate) {
                duplicates += 1;
            }
        }
        created_count += batch.created.len() as u64;
        created_ids.extend(&batch.created.iter().map(|c| c.id).collect::<Vec<_>>());
        if created_count <= incremental {
            created.extend(batch.created);
        } else if !created.is_empty() {
            created = Vec::new();
        }
        stored.extend(&batch.stored);
        written.fetch_add(items.len() as u64, Ordering::Relaxed);
    }
    if !kept {
        return Ok(None);
    }
    types.announce(w)?;
    if created_count <= incremental {
        for customer in created {
            w.emit(Change::Customer {
                app,
                customer,
                before: Before::Created,
            });
        }
    }
    let ranges = stored.into_ranges();
    if created_count > incremental {
        w.emit(Change::Customers {
            app,
            ranges: created_ids.into_ranges(),
        });
    }
    if !ranges.is_empty() {
        w.emit(Change::Events { app, ranges });
    }
    Ok(Some(ImportCounts {
        created: created_count,
        updated: duplicates,
        kept: true,
    }))
}
