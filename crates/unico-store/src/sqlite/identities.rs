//! Identities, aliases and merges, run inside the writer's transaction (writes) or on a
//! reader connection.

use rusqlite::{Connection, OptionalExtension, params};
use unico_core::identity::MAX_IDENTITIES_PER_CUSTOMER;
use unico_core::{AppId, Customer, CustomerId, Identity, IdentityKind};

use super::writer::WriteCtx;
use super::{rows, subscriptions, writes};
use crate::changes::{Before, Change};
use crate::codec;
use crate::error::StoreError;
use crate::identities::{
    HeldIdentity, LinkOutcome, MergeOutcome, MergeRecord, merge_fields, not_held, owned_by_other,
    self_merge, too_many_identities,
};
use crate::writing::CountDeltas;

/// The survivor an alias leads to: its customerId, if `customer_id` is an alias.
pub fn resolve_alias(
    c: &Connection,
    app: AppId,
    customer_id: &CustomerId,
) -> Result<Option<CustomerId>, StoreError> {
    let found: Option<String> = c
        .prepare_cached(
            "SELECT c.customer_id FROM customer_aliases a JOIN customers c ON c.id = a.customer
             WHERE a.app_id = ?1 AND a.alias = ?2",
        )?
        .query_row(params![app.0, customer_id.as_str()], |r| r.get(0))
        .optional()?;
    found
        .map(|s| CustomerId::parse(&s).map_err(|e| rows::corrupt("customerId", e)))
        .transpose()
}

/// Whether the application has any alias (when not, no lookup needs to resolve one).
pub fn has_aliases(c: &Connection, app: AppId) -> Result<bool, StoreError> {
    Ok(
        c.prepare_cached("SELECT EXISTS (SELECT 1 FROM customer_aliases WHERE app_id = ?1)")?
            .query_row([app.0], |r| r.get(0))?,
    )
}

/// Every alias of the application and the customerId it leads to.
pub fn alias_map(
    c: &Connection,
    app: AppId,
) -> Result<std::collections::HashMap<String, CustomerId>, StoreError> {
    let mut stmt = c.prepare_cached(
        "SELECT a.alias, c.customer_id FROM customer_aliases a JOIN customers c ON c.id = a.customer
         WHERE a.app_id = ?1",
    )?;
    let rows = stmt.query_map([app.0], |r| {
        Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?))
    })?;
    let mut out = std::collections::HashMap::new();
    for row in rows {
        let (alias, survivor) = row?;
        out.insert(
            alias,
            CustomerId::parse(&survivor).map_err(|e| rows::corrupt("customerId", e))?,
        );
    }
    Ok(out)
}

fn holder(c: &Connection, app: AppId, identity: &Identity) -> Result<Option<i64>, StoreError> {
    Ok(c.prepare_cached(
        "SELECT customer FROM identities WHERE app_id = ?1 AND kind = ?2 AND value = ?3",
    )?
    .query_row(
        params![app.0, identity.kind.as_str(), identity.value()],
        |r| r.get(0),
    )
    .optional()?)
}

fn customer_by_id(c: &Connection, id: i64) -> Result<Customer, StoreError> {
    let row = c
        .prepare_cached(&format!(
            "SELECT {} FROM customers WHERE id = ?1",
            rows::CUSTOMER_COLUMNS
        ))?
        .query_row([id], rows::customer_from_row)?;
    rows::to_customer(row)
}

fn anonymous(c: &Connection, id: i64) -> Result<bool, StoreError> {
    Ok(
        c.prepare_cached("SELECT EXISTS (SELECT 1 FROM anonymous_customers WHERE customer = ?1)")?
            .query_row([id], |r| r.get(0))?,
    )
}

fn held_count(c: &Connection, id: i64) -> Result<usize, StoreError> {
    let n: i64 = c
        .prepare_cached("SELECT count(*) FROM identities WHERE customer = ?1")?
        .query_row([id], |r| r.get(0))?;
    Ok(n as usize)
}

/// Gives an identity nobody holds to a customer.
pub fn attach(
    c: &Connection,
    app: AppId,
    customer: i64,
    identity: &Identity,
    now: i64,
) -> Result<(), StoreError> {
    c.prepare_cached(
        "INSERT INTO identities (app_id, kind, value, customer, linked_at) VALUES (?1, ?2, ?3, ?4, ?5)",
    )?
    .execute(params![
        app.0,
        identity.kind.as_str(),
        identity.value(),
        customer,
        now
    ])?;
    Ok(())
}

/// Marks a customer as anonymous (created for an identity nobody held).
pub fn mark_anonymous(c: &Connection, customer: i64) -> Result<(), StoreError> {
    c.prepare_cached("INSERT OR IGNORE INTO anonymous_customers (customer) VALUES (?1)")?
        .execute([customer])?;
    Ok(())
}

/// The customer holding an identity, if any.
pub fn find(
    c: &Connection,
    app: AppId,
    identity: &Identity,
) -> Result<Option<Customer>, StoreError> {
    holder(c, app, identity)?
        .map(|id| customer_by_id(c, id))
        .transpose()
}

pub fn is_anonymous(
    c: &Connection,
    app: AppId,
    customer_id: &CustomerId,
) -> Result<bool, StoreError> {
    let customer =
        rows::find_customer(c, app, customer_id)?.ok_or_else(|| rows::not_found(customer_id))?;
    anonymous(c, customer.id)
}

pub fn list(
    c: &Connection,
    app: AppId,
    customer_id: &CustomerId,
) -> Result<Vec<HeldIdentity>, StoreError> {
    let customer =
        rows::find_customer(c, app, customer_id)?.ok_or_else(|| rows::not_found(customer_id))?;
    let mut stmt = c.prepare_cached(
        "SELECT kind, value, linked_at FROM identities WHERE customer = ?1 ORDER BY kind, value",
    )?;
    let rows = stmt.query_map([customer.id], |r| {
        Ok((
            r.get::<_, String>(0)?,
            r.get::<_, String>(1)?,
            r.get::<_, i64>(2)?,
        ))
    })?;
    let mut out = Vec::new();
    for row in rows {
        let (kind, value, linked_at) = row?;
        let kind = IdentityKind::parse(&kind).map_err(|e| rows::corrupt("identity kind", e))?;
        let identity = Identity::new(kind, &value).map_err(|e| rows::corrupt("identity", e))?;
        out.push(HeldIdentity {
            identity,
            linked_at,
        });
    }
    Ok(out)
}

pub fn merges(
    c: &Connection,
    app: AppId,
    customer_id: &CustomerId,
) -> Result<Vec<MergeRecord>, StoreError> {
    let customer =
        rows::find_customer(c, app, customer_id)?.ok_or_else(|| rows::not_found(customer_id))?;
    let mut stmt = c.prepare_cached(
        "SELECT alias, merged_at, lost FROM customer_aliases WHERE customer = ?1
         ORDER BY merged_at DESC, alias",
    )?;
    let rows = stmt.query_map([customer.id], |r| {
        Ok((
            r.get::<_, String>(0)?,
            r.get::<_, i64>(1)?,
            r.get::<_, Vec<u8>>(2)?,
        ))
    })?;
    let mut out = Vec::new();
    for row in rows {
        let (alias, merged_at, lost) = row?;
        out.push(MergeRecord {
            alias: CustomerId::parse(&alias).map_err(|e| rows::corrupt("customerId", e))?,
            merged_at,
            lost: codec::decode(&lost)?,
        });
    }
    Ok(out)
}

/// The internal ids of the customers merged into `customer` (their log entries hold
/// their values, which an erasure of the survivor scrubs too).
pub fn merged_ids(c: &Connection, customer: i64) -> Result<Vec<i64>, StoreError> {
    let mut stmt =
        c.prepare_cached("SELECT merged_id FROM customer_aliases WHERE customer = ?1")?;
    let rows = stmt.query_map([customer], |r| r.get(0))?;
    Ok(rows.collect::<Result<Vec<i64>, _>>()?)
}

pub fn link(
    w: &mut WriteCtx,
    app: AppId,
    customer_id: &CustomerId,
    identity: &Identity,
    now: i64,
) -> Result<LinkOutcome, StoreError> {
    let c = &w.conn;
    let customer =
        rows::find_customer(c, app, customer_id)?.ok_or_else(|| rows::not_found(customer_id))?;
    match holder(c, app, identity)? {
        Some(id) if id == customer.id => Ok(LinkOutcome {
            linked: false,
            merged: None,
            customer,
        }),
        Some(other) if anonymous(c, other)? => {
            let from = customer_by_id(c, other)?;
            let merged = merge(w, app, customer, from, now)?;
            Ok(LinkOutcome {
                linked: true,
                customer: merged.customer.clone(),
                merged: Some(merged),
            })
        }
        Some(other) => Err(owned_by_other(
            identity,
            &customer_by_id(c, other)?.customer_id,
        )),
        None => {
            if held_count(c, customer.id)? >= MAX_IDENTITIES_PER_CUSTOMER {
                return Err(too_many_identities());
            }
            attach(c, app, customer.id, identity, now)?;
            Ok(LinkOutcome {
                linked: true,
                merged: None,
                customer,
            })
        }
    }
}

pub fn unlink(
    c: &Connection,
    app: AppId,
    customer_id: &CustomerId,
    identity: &Identity,
) -> Result<(), StoreError> {
    let customer =
        rows::find_customer(c, app, customer_id)?.ok_or_else(|| rows::not_found(customer_id))?;
    let n = c
        .prepare_cached(
            "DELETE FROM identities WHERE app_id = ?1 AND kind = ?2 AND value = ?3 AND customer = ?4",
        )?
        .execute(params![
            app.0,
            identity.kind.as_str(),
            identity.value(),
            customer.id
        ])?;
    if n == 0 {
        return Err(not_held(identity));
    }
    Ok(())
}

/// Merges by customerId (either may be an alias).
pub fn merge_by_id(
    w: &mut WriteCtx,
    app: AppId,
    into: &CustomerId,
    from: &CustomerId,
    now: i64,
) -> Result<MergeOutcome, StoreError> {
    let c = &w.conn;
    let survivor = rows::find_customer(c, app, into)?.ok_or_else(|| rows::not_found(into))?;
    let merged = rows::find_customer(c, app, from)?.ok_or_else(|| rows::not_found(from))?;
    if survivor.id == merged.id {
        return Err(self_merge(from));
    }
    merge(w, app, survivor, merged, now)
}

/// Moves everything of `from` to `into` and deletes `from` (see
/// [`crate::Store::merge_customers`]). Logs the survivor, its moved subscriptions, the
/// deletion and the moved events, in that order: a follower removes the merged customer
/// with its events, then reads the events back from the store under the survivor.
fn merge(
    w: &mut WriteCtx,
    app: AppId,
    into: Customer,
    from: Customer,
    now: i64,
) -> Result<MergeOutcome, StoreError> {
    let c = &w.conn;
    let (changes, fields_filled, lost) = merge_fields(&into.fields, &from.fields);
    let mut deltas = CountDeltas::default();
    let (survivor, before) = writes::CustomerWriter::new(c)?.update_existing(
        app,
        &into.customer_id,
        &changes,
        now,
        &mut deltas,
    )?;
    for (field, _) in &from.fields {
        deltas.add(*field, -1);
    }

    let mut moved_ids = super::events::move_events(c, from.id, into.id)?;
    let identities_moved = c
        .prepare_cached("UPDATE identities SET customer = ?1 WHERE customer = ?2")?
        .execute(params![into.id, from.id])? as u64;

    // Subscriptions: the latest statement per channel stands; the history moves whole.
    let held = subscriptions::standing_of(c, into.id)?;
    let mut moved_channels = Vec::new();
    for theirs in subscriptions::standing_of(c, from.id)? {
        let ours = held.iter().find(|s| s.channel == theirs.channel);
        if ours.is_some_and(|o| o.changed_at >= theirs.changed_at) {
            continue;
        }
        c.prepare_cached(
            "INSERT INTO subscriptions (customer, channel, subscribed, changed_at, source) VALUES (?1, ?2, ?3, ?4, ?5)
             ON CONFLICT (customer, channel) DO UPDATE SET subscribed = excluded.subscribed,
                 changed_at = excluded.changed_at, source = excluded.source",
        )?
        .execute(params![
            into.id,
            theirs.channel.as_str(),
            theirs.subscribed,
            theirs.changed_at,
            theirs.source.as_str()
        ])?;
        moved_channels.push((
            theirs.channel,
            ours.map(|o| o.subscribed) != Some(theirs.subscribed),
        ));
    }
    c.prepare_cached("UPDATE subscription_history SET customer = ?1 WHERE customer = ?2")?
        .execute(params![into.id, from.id])?;

    let mut aliases_moved = c
        .prepare_cached("UPDATE customer_aliases SET customer = ?1 WHERE customer = ?2")?
        .execute(params![into.id, from.id])? as u64;
    c.prepare_cached(
        "INSERT INTO customer_aliases (app_id, alias, customer, merged_id, merged_at, lost) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    )?
    .execute(params![
        app.0,
        from.customer_id.as_str(),
        into.id,
        from.id,
        now,
        codec::encode(&lost)
    ])?;
    aliases_moved += 1;
    // A known customer merged into an anonymous one makes the survivor known.
    if !anonymous(c, from.id)? {
        c.prepare_cached("DELETE FROM anonymous_customers WHERE customer = ?1")?
            .execute([into.id])?;
    }
    c.prepare_cached("DELETE FROM customers WHERE id = ?1")?
        .execute([from.id])?;
    writes::flush_counts(deltas, c)?;
    let standing = subscriptions::standing_of(c, into.id)?;

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
