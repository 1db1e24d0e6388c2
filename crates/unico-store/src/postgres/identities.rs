//! Identities, aliases and merges on PostgreSQL. The behaviour is the embedded backend's
//! (`sqlite/identities.rs`); what differs is how it holds with several writers committing
//! at once under `READ COMMITTED`:
//! - **Links.** The identity's primary key decides between concurrent links of one value:
//!   the insert (`ON CONFLICT DO NOTHING`) waits for a concurrent one to end, and a link
//!   that lost finds the winner and answers as if it had come second. A link locks its
//!   customer first, so links of one customer take turns and the identity limit holds.
//! - **Merges** take the application's merge turn (they take turns with each other and
//!   with imports, see [`Wx::merge_turn`]), then lock the two customers in id order: the
//!   merged one `FOR UPDATE`, which waits for every event write that holds it (`FOR KEY
//!   SHARE`) and every writer of its values, and holds new ones back until the merge
//!   commits; those then find it gone and follow the alias to the survivor. So the events,
//!   values and consent the merge moves are all that was ever committed for the merged
//!   customer, and nothing lands on it afterwards.
//! - **A link that merges** (the identity's holder is anonymous) needs the merge turn
//!   before any row lock; a link finding that out late answers `None` and is run again
//!   with the turn taken first.

use std::collections::HashMap;

use postgres::{GenericClient, Transaction};
use unico_core::identity::MAX_IDENTITIES_PER_CUSTOMER;
use unico_core::{AppId, Customer, CustomerId, Identity, IdentityKind};

use super::conn::{Db, Res};
use super::writes::{self, CountDeltas, Wx};
use super::{rows, subscriptions};
use crate::changes::{Before, Change};
use crate::codec;
use crate::error::StoreError;
use crate::identities::{
    HeldIdentity, LinkOutcome, MergeOutcome, MergeRecord, merge_fields, not_held, owned_by_other,
    self_merge, too_many_identities,
};

/// How many times a link or merge looks again when what it found changed meanwhile (an
/// identity taken by a concurrent link, a customer deleted).
const ROUNDS: usize = 3;

fn parse_customer_id(text: &str) -> Res<CustomerId> {
    CustomerId::parse(text).map_err(|e| rows::corrupt("customerId", e).into())
}

/// Whether the application has any alias (when not, an import needs no alias map).
pub fn has_aliases<C: GenericClient>(db: &mut Db<'_, C>, app: AppId) -> Res<bool> {
    Ok(db
        .query_one(
            "SELECT EXISTS (SELECT 1 FROM customer_aliases WHERE app_id = $1)",
            &[&app.0],
        )?
        .try_get(0)?)
}

/// Every alias of the application and the customerId it leads to.
pub fn alias_map<C: GenericClient>(
    db: &mut Db<'_, C>,
    app: AppId,
) -> Res<HashMap<String, CustomerId>> {
    let mut out = HashMap::new();
    for row in db.query(
        "SELECT a.alias, c.customer_id FROM customer_aliases a JOIN customers c ON c.id = a.customer
         WHERE a.app_id = $1",
        &[&app.0],
    )? {
        out.insert(row.try_get(0)?, parse_customer_id(row.try_get(1)?)?);
    }
    Ok(out)
}

/// The row id of the customer holding an identity, if any.
fn holder<C: GenericClient>(
    db: &mut Db<'_, C>,
    app: AppId,
    identity: &Identity,
) -> Res<Option<i64>> {
    Ok(db
        .query_opt(
            "SELECT customer FROM identities WHERE app_id = $1 AND kind = $2 AND value = $3",
            &[&app.0, &identity.kind.as_str(), &identity.value()],
        )?
        .map(|r| r.try_get(0))
        .transpose()?)
}

const BY_ID: &str =
    "SELECT id, customer_id, created_at, updated_at, data FROM customers WHERE id = $1";

fn customer_by_id<C: GenericClient>(db: &mut Db<'_, C>, id: i64) -> Res<Option<Customer>> {
    db.query_opt(BY_ID, &[&id])?
        .map(|r| rows::customer(&r))
        .transpose()
}

fn anonymous<C: GenericClient>(db: &mut Db<'_, C>, id: i64) -> Res<bool> {
    Ok(db
        .query_one(
            "SELECT EXISTS (SELECT 1 FROM anonymous_customers WHERE customer = $1)",
            &[&id],
        )?
        .try_get(0)?)
}

/// Gives an identity to a customer unless somebody holds it; answers whether it did (a
/// concurrent holder's insert is waited for).
pub fn attach(
    db: &mut Db<'_, Transaction<'_>>,
    app: AppId,
    customer: i64,
    identity: &Identity,
    now: i64,
) -> Res<bool> {
    Ok(db
        .query_opt(
            "INSERT INTO identities (app_id, kind, value, customer, linked_at) VALUES ($1, $2, $3, $4, $5)
             ON CONFLICT (app_id, kind, value) DO NOTHING RETURNING customer",
            &[&app.0, &identity.kind.as_str(), &identity.value(), &customer, &now],
        )?
        .is_some())
}

/// Marks a customer as anonymous (created for an identity nobody held).
pub fn mark_anonymous(db: &mut Db<'_, Transaction<'_>>, customer: i64) -> Res<()> {
    db.execute(
        "INSERT INTO anonymous_customers (customer) VALUES ($1) ON CONFLICT DO NOTHING",
        &[&customer],
    )?;
    Ok(())
}

/// The customer holding an identity, if any.
pub fn find<C: GenericClient>(
    db: &mut Db<'_, C>,
    app: AppId,
    identity: &Identity,
) -> Res<Option<Customer>> {
    rows::get_app(db, app)?;
    db.query_opt(
        "SELECT c.id, c.customer_id, c.created_at, c.updated_at, c.data
         FROM identities i JOIN customers c ON c.id = i.customer
         WHERE i.app_id = $1 AND i.kind = $2 AND i.value = $3",
        &[&app.0, &identity.kind.as_str(), &identity.value()],
    )?
    .map(|r| rows::customer(&r))
    .transpose()
}

fn existing<C: GenericClient>(
    db: &mut Db<'_, C>,
    app: AppId,
    customer_id: &CustomerId,
) -> Res<i64> {
    Ok(rows::customer_row(db, app, customer_id)?.ok_or_else(|| rows::not_found(customer_id))?)
}

pub fn is_anonymous<C: GenericClient>(
    db: &mut Db<'_, C>,
    app: AppId,
    customer_id: &CustomerId,
) -> Res<bool> {
    let id = existing(db, app, customer_id)?;
    anonymous(db, id)
}

pub fn list<C: GenericClient>(
    db: &mut Db<'_, C>,
    app: AppId,
    customer_id: &CustomerId,
) -> Res<Vec<HeldIdentity>> {
    let id = existing(db, app, customer_id)?;
    let mut out = Vec::new();
    for row in db.query(
        "SELECT kind, value, linked_at FROM identities WHERE customer = $1 ORDER BY kind, value",
        &[&id],
    )? {
        let kind: &str = row.try_get(0)?;
        let value: &str = row.try_get(1)?;
        let kind = IdentityKind::parse(kind).map_err(|e| rows::corrupt("identity kind", e))?;
        let identity = Identity::new(kind, value).map_err(|e| rows::corrupt("identity", e))?;
        out.push(HeldIdentity {
            identity,
            linked_at: row.try_get(2)?,
        });
    }
    Ok(out)
}

pub fn merges<C: GenericClient>(
    db: &mut Db<'_, C>,
    app: AppId,
    customer_id: &CustomerId,
) -> Res<Vec<MergeRecord>> {
    let id = existing(db, app, customer_id)?;
    let mut out = Vec::new();
    for row in db.query(
        "SELECT alias, merged_at, lost FROM customer_aliases WHERE customer = $1
         ORDER BY merged_at DESC, alias",
        &[&id],
    )? {
        out.push(MergeRecord {
            alias: parse_customer_id(row.try_get(0)?)?,
            merged_at: row.try_get(1)?,
            lost: codec::decode(row.try_get(2)?)?,
        });
    }
    Ok(out)
}

/// The internal ids of the customers merged into `customer` (their log entries hold their
/// values, which an erasure of the survivor scrubs too).
pub fn merged_ids(db: &mut Db<'_, Transaction<'_>>, customer: i64) -> Res<Vec<i64>> {
    db.query(
        "SELECT merged_id FROM customer_aliases WHERE customer = $1",
        &[&customer],
    )?
    .iter()
    .map(|r| Ok(r.try_get(0)?))
    .collect()
}

/// Links an identity (see [`crate::Store::link_identity`]). With `turn` false, a link that
/// turns out to need a merge answers `None`, having written nothing: run it again with
/// `turn` true, which takes the merge turn before any row lock.
pub fn link(
    w: &mut Wx<'_, '_>,
    app: AppId,
    customer_id: &CustomerId,
    identity: &Identity,
    now: i64,
    turn: bool,
) -> Res<Option<LinkOutcome>> {
    w.share_app_lock(app)?;
    if turn {
        w.merge_turn(app)?;
    }
    for _ in 0..ROUNDS {
        let customer = rows::find_customer(&mut w.db, app, customer_id, true)?
            .ok_or_else(|| rows::not_found(customer_id))?;
        match holder(&mut w.db, app, identity)? {
            Some(id) if id == customer.id => {
                return Ok(Some(LinkOutcome {
                    linked: false,
                    merged: None,
                    customer,
                }));
            }
            Some(other) if anonymous(&mut w.db, other)? => {
                if !turn {
                    return Ok(None);
                }
                let Some(from) = lock_pair(&mut w.db, customer.id, other)? else {
                    continue; // deleted meanwhile: the identity went with it
                };
                let merged = merge(w, app, customer, from, now)?;
                return Ok(Some(LinkOutcome {
                    linked: true,
                    customer: merged.customer.clone(),
                    merged: Some(merged),
                }));
            }
            Some(other) => match customer_by_id(&mut w.db, other)? {
                Some(owner) => return Err(owned_by_other(identity, &owner.customer_id).into()),
                None => continue, // deleted meanwhile, with the identity
            },
            None => {
                let held: i64 =
                    w.db.query_one(
                        "SELECT count(*) FROM identities WHERE customer = $1",
                        &[&customer.id],
                    )?
                    .try_get(0)?;
                if held.max(0) as usize >= MAX_IDENTITIES_PER_CUSTOMER {
                    return Err(too_many_identities().into());
                }
                if attach(&mut w.db, app, customer.id, identity, now)? {
                    return Ok(Some(LinkOutcome {
                        linked: true,
                        merged: None,
                        customer,
                    }));
                }
                // A concurrent link took it and committed: the next round finds its holder.
            }
        }
    }
    Err(StoreError::Conflict(
        "the identity kept being linked and unlinked by other writes; retry".into(),
    )
    .into())
}

pub fn unlink(
    w: &mut Wx<'_, '_>,
    app: AppId,
    customer_id: &CustomerId,
    identity: &Identity,
) -> Res<()> {
    w.share_app_lock(app)?;
    let customer = rows::find_customer(&mut w.db, app, customer_id, true)?
        .ok_or_else(|| rows::not_found(customer_id))?;
    let n = w.db.execute(
        "DELETE FROM identities WHERE app_id = $1 AND kind = $2 AND value = $3 AND customer = $4",
        &[
            &app.0,
            &identity.kind.as_str(),
            &identity.value(),
            &customer.id,
        ],
    )?;
    if n == 0 {
        return Err(not_held(identity).into());
    }
    Ok(())
}

/// Locks the survivor (`FOR NO KEY UPDATE`, as a writer of its values) and the customer to
/// merge into it (`FOR UPDATE`: it is deleted), in id order; answers the merged customer
/// as it now is, `None` if it is gone. The survivor may be locked already.
fn lock_pair(db: &mut Db<'_, Transaction<'_>>, into: i64, from: i64) -> Res<Option<Customer>> {
    const SURVIVOR: &str = "SELECT id FROM customers WHERE id = $1 FOR NO KEY UPDATE";
    const MERGED: &str = "SELECT id, customer_id, created_at, updated_at, data FROM customers WHERE id = $1 FOR UPDATE";
    if into < from {
        db.query_opt(SURVIVOR, &[&into])?;
    }
    let merged = db.query_opt(MERGED, &[&from])?;
    if into > from {
        db.query_opt(SURVIVOR, &[&into])?;
    }
    merged.map(|r| rows::customer(&r)).transpose()
}

/// Merges by customerId (either may be an alias).
pub fn merge_by_id(
    w: &mut Wx<'_, '_>,
    app: AppId,
    into: &CustomerId,
    from: &CustomerId,
    now: i64,
) -> Res<MergeOutcome> {
    w.share_app_lock(app)?;
    w.merge_turn(app)?;
    for _ in 0..ROUNDS {
        let survivor = existing(&mut w.db, app, into)?;
        let merged = existing(&mut w.db, app, from)?;
        if survivor == merged {
            return Err(self_merge(from).into());
        }
        let Some(merged) = lock_pair(&mut w.db, survivor, merged)? else {
            continue;
        };
        // Read under its lock: the values the merge writes over are the latest committed.
        let Some(survivor) = customer_by_id(&mut w.db, survivor)? else {
            continue;
        };
        return merge(w, app, survivor, merged, now);
    }
    Err(StoreError::Conflict(
        "the customers to merge kept being deleted and created by other writes; retry".into(),
    )
    .into())
}

/// Moves everything of `from` to `into` and deletes `from`; both are locked (see
/// [`lock_pair`]). Logs the survivor, its moved subscriptions, the deletion and the moved
/// events, in that order: a follower removes the merged customer with its events, then
/// reads the events back from the store under the survivor.
fn merge(
    w: &mut Wx<'_, '_>,
    app: AppId,
    into: Customer,
    from: Customer,
    now: i64,
) -> Res<MergeOutcome> {
    let (changes, fields_filled, lost) = merge_fields(&into.fields, &from.fields);
    let mut deltas = CountDeltas::default();
    let (survivor, before) = writes::update_existing(
        &mut w.db,
        app,
        &into.customer_id,
        &changes,
        now,
        &mut deltas,
    )?
    .ok_or_else(|| rows::not_found(&into.customer_id))?;
    for (field, _) in &from.fields {
        deltas.add(*field, -1);
    }
    let db = &mut w.db;

    // Every event committed for `from`: its lock waited for the writes holding it.
    let mut moved_ids: Vec<i64> = db
        .query(
            "UPDATE events SET customer = $1 WHERE customer = $2 RETURNING id",
            &[&into.id, &from.id],
        )?
        .iter()
        .map(|r| r.try_get(0))
        .collect::<Result<_, _>>()?;
    let identities_moved = db.execute(
        "UPDATE identities SET customer = $1 WHERE customer = $2",
        &[&into.id, &from.id],
    )?;

    // Subscriptions: the latest statement per channel stands; the history moves whole.
    let held = subscriptions::standing_of(db, into.id)?;
    let mut moved_channels = Vec::new();
    for theirs in subscriptions::standing_of(db, from.id)? {
        let ours = held.iter().find(|s| s.channel == theirs.channel);
        if ours.is_some_and(|o| o.changed_at >= theirs.changed_at) {
            continue;
        }
        db.execute(
            "INSERT INTO subscriptions (customer, channel, subscribed, changed_at, source) VALUES ($1, $2, $3, $4, $5)
             ON CONFLICT (customer, channel) DO UPDATE SET subscribed = excluded.subscribed,
                 changed_at = excluded.changed_at, source = excluded.source",
            &[
                &into.id,
                &theirs.channel.as_str(),
                &theirs.subscribed,
                &theirs.changed_at,
                &theirs.source.as_str(),
            ],
        )?;
        moved_channels.push((
            theirs.channel,
            ours.map(|o| o.subscribed) != Some(theirs.subscribed),
        ));
    }
    db.execute(
        "UPDATE subscription_history SET customer = $1 WHERE customer = $2",
        &[&into.id, &from.id],
    )?;

    let mut aliases_moved = db.execute(
        "UPDATE customer_aliases SET customer = $1 WHERE customer = $2",
        &[&into.id, &from.id],
    )?;
    // An alias of the same name can only be left by a customer created under a merged
    // customerId in a race; the latest merge is the one it names.
    db.execute(
        "INSERT INTO customer_aliases (app_id, alias, customer, merged_id, merged_at, lost) VALUES ($1, $2, $3, $4, $5, $6)
         ON CONFLICT (app_id, alias) DO UPDATE SET customer = excluded.customer,
             merged_id = excluded.merged_id, merged_at = excluded.merged_at, lost = excluded.lost",
        &[
            &app.0,
            &from.customer_id.as_str(),
            &into.id,
            &from.id,
            &now,
            &codec::encode(&lost),
        ],
    )?;
    aliases_moved += 1;
    // A known customer merged into an anonymous one makes the survivor known.
    if !anonymous(db, from.id)? {
        db.execute(
            "DELETE FROM anonymous_customers WHERE customer = $1",
            &[&into.id],
        )?;
    }
    db.execute("DELETE FROM customers WHERE id = $1", &[&from.id])?;
    writes::flush_counts(deltas, db)?;
    let standing = subscriptions::standing_of(db, into.id)?;

    w.emit(Change::Customer {
        app,
        customer: survivor.clone(),
        before: Before::Values(before),
    });
    let flipped: Vec<_> = moved_channels
        .iter()
        .filter(|(_, flipped)| *flipped)
        .map(|(ch, _)| ch.clone())
        .collect();
    for change in crate::subscriptions::moved_changes(app, into.id, flipped, &standing) {
        w.emit(change);
    }
    w.emit(Change::CustomerDeleted { app, id: from.id });
    let events_moved = moved_ids.len() as u64;
    if !moved_ids.is_empty() {
        w.emit(Change::Events {
            app,
            ranges: crate::events::id_ranges(&mut moved_ids),
        });
    }
    Ok(MergeOutcome {
        customer: survivor,
        from: from.customer_id,
        from_id: from.id,
        events_moved,
        identities_moved,
        subscriptions_moved: moved_channels.len() as u64,
        fields_filled,
        lost,
        aliases_moved,
    })
}
