//! Channel subscriptions in PostgreSQL: the standing one per customer and channel, and
//! every change in the history. A write locks the customer's row, so concurrent writers
//! (on any server) apply their changes to one customer one after the other.

use postgres::GenericClient;
use unico_core::{AppId, Channel, CustomerId, Schema, Source, Subscription, SubscriptionChange};

use super::conn::{Db, Res};
use super::rows;
use super::writes::{self, CountDeltas, Mode, Wx};
use crate::changes::{Before, Change};
use crate::error::StoreError;
use crate::subscriptions::{
    HistoryEntry, SubscriptionsOutcome, check_channels, declared_channels_key, parse_declared,
    supersedes,
};

/// The channels the application declared (beyond the default ones).
pub fn declared<C: GenericClient>(db: &mut Db<'_, C>, app: AppId) -> Res<Vec<Channel>> {
    let row = db.query_opt(
        "SELECT value FROM meta WHERE key = $1",
        &[&declared_channels_key(app)],
    )?;
    let text: Option<String> = row.map(|r| r.try_get(0)).transpose()?;
    Ok(text.as_deref().map(parse_declared).unwrap_or_default())
}

/// Replaces the declared channels; logs the new schema.
pub fn set_declared(w: &mut Wx<'_, '_>, app: AppId, channels: &[Channel]) -> Res<Schema> {
    w.own_app(app)?;
    let text: Vec<&str> = channels.iter().map(Channel::as_str).collect();
    w.db.execute(
        "INSERT INTO meta (key, value) VALUES ($1, $2) ON CONFLICT (key) DO UPDATE SET value = excluded.value",
        &[&declared_channels_key(app), &text.join(",")],
    )?;
    let schema = w.schema(app)?;
    w.emit(Change::Schema {
        app,
        schema: schema.clone(),
    });
    Ok(schema)
}

fn stored_source(text: &str) -> Result<Source, StoreError> {
    Source::parse(text).map_err(|e| StoreError::Internal(format!("a stored source: {e}")))
}

fn stored_channel(text: &str) -> Result<Channel, StoreError> {
    Channel::parse(text).map_err(|e| StoreError::Internal(format!("a stored channel: {e}")))
}

pub fn standing_of<C: GenericClient>(db: &mut Db<'_, C>, customer: i64) -> Res<Vec<Subscription>> {
    let mut out = Vec::new();
    for r in db.query(
        "SELECT channel, subscribed, changed_at, source FROM subscriptions WHERE customer = $1 ORDER BY channel",
        &[&customer],
    )? {
        out.push(Subscription {
            channel: stored_channel(r.try_get(0)?)?,
            subscribed: r.try_get(1)?,
            changed_at: r.try_get(2)?,
            source: stored_source(r.try_get(3)?)?,
        });
    }
    Ok(out)
}

/// Applies `changes` in order (see [`crate::Store::set_subscriptions`]).
pub fn apply(
    w: &mut Wx<'_, '_>,
    app: AppId,
    customer_id: &CustomerId,
    changes: &[SubscriptionChange],
    create: bool,
    now: i64,
) -> Res<SubscriptionsOutcome> {
    w.share_app_lock(app)?;
    let schema = w.schema(app)?;
    check_channels(&schema, changes)?;
    let mut customer_created = false;
    if create {
        let mut deltas = CountDeltas::default();
        let (outcome, _) = writes::write(
            &mut w.db,
            app,
            customer_id,
            &[],
            now,
            Mode::Upsert,
            &mut deltas,
        )?;
        if outcome.created {
            customer_created = true;
            w.emit(Change::Customer {
                app,
                customer: outcome.customer.clone(),
                before: Before::Created,
            });
        }
    }
    // Locked as a writer of its values locks it (an alias leads to the survivor).
    let id = rows::find_customer(&mut w.db, app, customer_id, true)?
        .ok_or_else(|| rows::not_found(customer_id))?
        .id;
    let mut moved: Vec<Channel> = Vec::new();
    for change in changes {
        w.db.execute(
            "INSERT INTO subscription_history (customer, channel, subscribed, at, source, recorded_at) VALUES ($1, $2, $3, $4, $5, $6)",
            &[&id, &change.channel.as_str(), &change.subscribed, &change.at, &change.source.as_str(), &now],
        )?;
        let held = w.db.query_opt(
            "SELECT subscribed, changed_at FROM subscriptions WHERE customer = $1 AND channel = $2",
            &[&id, &change.channel.as_str()],
        )?;
        let held: Option<(bool, i64)> = match held {
            Some(r) => Some((r.try_get(0)?, r.try_get(1)?)),
            None => None,
        };
        if !supersedes(held.map(|(_, at)| at), change) {
            continue;
        }
        w.db.execute(
            "INSERT INTO subscriptions (customer, channel, subscribed, changed_at, source) VALUES ($1, $2, $3, $4, $5)
             ON CONFLICT (customer, channel) DO UPDATE SET subscribed = excluded.subscribed,
                 changed_at = excluded.changed_at, source = excluded.source",
            &[&id, &change.channel.as_str(), &change.subscribed, &change.at, &change.source.as_str()],
        )?;
        if held.map(|(s, _)| s) != Some(change.subscribed) && !moved.contains(&change.channel) {
            moved.push(change.channel.clone());
        }
    }
    let subscriptions = standing_of(&mut w.db, id)?;
    for change in crate::subscriptions::moved_changes(app, id, moved, &subscriptions) {
        w.emit(change);
    }
    Ok(SubscriptionsOutcome {
        customer_created,
        subscriptions,
    })
}

fn customer_of<C: GenericClient>(
    db: &mut Db<'_, C>,
    app: AppId,
    customer_id: &CustomerId,
) -> Res<i64> {
    Ok(rows::customer_row(db, app, customer_id)?.ok_or_else(|| rows::not_found(customer_id))?)
}

/// A customer's standing subscriptions, by channel.
pub fn standing<C: GenericClient>(
    db: &mut Db<'_, C>,
    app: AppId,
    customer_id: &CustomerId,
) -> Res<Vec<Subscription>> {
    let id = customer_of(db, app, customer_id)?;
    standing_of(db, id)
}

/// A customer's history of changes, newest recorded first.
pub fn history<C: GenericClient>(
    db: &mut Db<'_, C>,
    app: AppId,
    customer_id: &CustomerId,
    limit: usize,
) -> Res<Vec<HistoryEntry>> {
    let id = customer_of(db, app, customer_id)?;
    let mut out = Vec::new();
    for r in db.query(
        "SELECT channel, subscribed, at, source, recorded_at FROM subscription_history
         WHERE customer = $1 ORDER BY id DESC LIMIT $2",
        &[&id, &i64::try_from(limit).unwrap_or(i64::MAX)],
    )? {
        out.push(HistoryEntry {
            channel: stored_channel(r.try_get(0)?)?,
            subscribed: r.try_get(1)?,
            at: r.try_get(2)?,
            source: stored_source(r.try_get(3)?)?,
            recorded_at: r.try_get(4)?,
        });
    }
    Ok(out)
}

/// Every standing subscription of the application's customers.
pub fn scan<C: GenericClient>(
    db: &mut Db<'_, C>,
    app: AppId,
    visit: &mut dyn FnMut(i64, Channel, bool),
) -> Res<()> {
    for r in db.query(
        "SELECT s.customer, s.channel, s.subscribed FROM subscriptions s
         JOIN customers c ON c.id = s.customer WHERE c.app_id = $1",
        &[&app.0],
    )? {
        visit(r.try_get(0)?, stored_channel(r.try_get(1)?)?, r.try_get(2)?);
    }
    Ok(())
}

/// Every statement of the application's customers, by customer, channel, time, recording.
pub fn scan_history<C: GenericClient>(
    db: &mut Db<'_, C>,
    app: AppId,
    visit: &mut dyn FnMut(i64, &Channel, bool, i64),
) -> Res<()> {
    for r in db.query(
        "SELECT h.customer, h.channel, h.subscribed, h.at FROM subscription_history h
         JOIN customers c ON c.id = h.customer WHERE c.app_id = $1
         ORDER BY h.customer, h.channel, h.at, h.id",
        &[&app.0],
    )? {
        let ch = stored_channel(r.try_get(1)?)?;
        visit(r.try_get(0)?, &ch, r.try_get(2)?, r.try_get(3)?);
    }
    Ok(())
}
