//! Channel subscriptions in the embedded store: the standing one per customer and channel,
//! and every change in the history, written by the writer thread in one transaction.

use rusqlite::{Connection, OptionalExtension, params};
use unico_core::{AppId, Channel, CustomerId, Schema, Source, Subscription, SubscriptionChange};

use super::writer::WriteCtx;
use super::{rows, writes};
use crate::changes::{Before, Change};
use crate::error::StoreError;
use crate::subscriptions::{
    HistoryEntry, SubscriptionsOutcome, check_channels, declared_channels_key, parse_declared,
    supersedes,
};
use crate::writing::{CountDeltas, Mode};

/// The channels the application declared (beyond the default ones).
pub fn declared(c: &Connection, app: AppId) -> Result<Vec<Channel>, StoreError> {
    let text: Option<String> = c
        .query_row(
            "SELECT value FROM meta WHERE key = ?1",
            [declared_channels_key(app)],
            |r| r.get(0),
        )
        .optional()?;
    Ok(text.as_deref().map(parse_declared).unwrap_or_default())
}

/// Replaces the declared channels; logs the new schema.
pub fn set_declared(
    w: &mut WriteCtx,
    app: AppId,
    channels: &[Channel],
) -> Result<Schema, StoreError> {
    w.forget(app);
    rows::get_app(&w.conn, app)?;
    let text: Vec<&str> = channels.iter().map(Channel::as_str).collect();
    w.conn.execute(
        "INSERT INTO meta (key, value) VALUES (?1, ?2) ON CONFLICT (key) DO UPDATE SET value = excluded.value",
        [declared_channels_key(app), text.join(",")],
    )?;
    let schema = w.schema(app)?;
    w.emit(Change::Schema {
        app,
        schema: schema.clone(),
    });
    Ok(schema)
}

fn source(text: String) -> Result<Source, StoreError> {
    Source::parse(&text).map_err(|e| StoreError::Internal(format!("a stored source: {e}")))
}

fn channel(text: &str) -> Result<Channel, StoreError> {
    Channel::parse(text).map_err(|e| StoreError::Internal(format!("a stored channel: {e}")))
}

pub(crate) fn standing_of(c: &Connection, customer: i64) -> Result<Vec<Subscription>, StoreError> {
    let mut stmt = c.prepare_cached(
        "SELECT channel, subscribed, changed_at, source FROM subscriptions WHERE customer = ?1 ORDER BY channel",
    )?;
    let rows = stmt.query_map([customer], |r| {
        Ok((
            r.get::<_, String>(0)?,
            r.get::<_, bool>(1)?,
            r.get::<_, i64>(2)?,
            r.get::<_, String>(3)?,
        ))
    })?;
    let mut out = Vec::new();
    for row in rows {
        let (ch, subscribed, changed_at, src) = row?;
        out.push(Subscription {
            channel: channel(&ch)?,
            subscribed,
            changed_at,
            source: source(src)?,
        });
    }
    Ok(out)
}

/// Applies `changes` in order: each is kept in the history, and becomes the standing
/// subscription unless a later statement is held. A customer that does not exist is
/// `NotFound`, or created when `create`.
pub fn apply(
    w: &mut WriteCtx,
    app: AppId,
    customer_id: &CustomerId,
    changes: &[SubscriptionChange],
    create: bool,
    now: i64,
) -> Result<SubscriptionsOutcome, StoreError> {
    let schema = w.schema(app)?;
    check_channels(&schema, changes)?;
    let c = &w.conn;
    let mut customer_created = false;
    let id = match rows::find_customer(c, app, customer_id)? {
        Some(found) => found.id,
        None if create => {
            let mut deltas = CountDeltas::default();
            let (outcome, _) = writes::CustomerWriter::new(c)?.write(
                c,
                app,
                customer_id,
                &[],
                now,
                Mode::Upsert,
                &mut deltas,
            )?;
            customer_created = outcome.created;
            if outcome.created {
                w.emit(Change::Customer {
                    app,
                    customer: outcome.customer.clone(),
                    before: Before::Created,
                });
            }
            outcome.customer.id
        }
        None => return Err(rows::not_found(customer_id)),
    };
    let c = &w.conn;
    let mut moved = Vec::new();
    for change in changes {
        c.prepare_cached(
            "INSERT INTO subscription_history (customer, channel, subscribed, at, source, recorded_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        )?
        .execute(params![
            id,
            change.channel.as_str(),
            change.subscribed,
            change.at,
            change.source.as_str(),
            now
        ])?;
        let held: Option<(bool, i64)> = c
            .prepare_cached(
                "SELECT subscribed, changed_at FROM subscriptions WHERE customer = ?1 AND channel = ?2",
            )?
            .query_row(params![id, change.channel.as_str()], |r| {
                Ok((r.get(0)?, r.get(1)?))
            })
            .optional()?;
        if !supersedes(held.map(|(_, at)| at), change) {
            continue;
        }
        c.prepare_cached(
            "INSERT INTO subscriptions (customer, channel, subscribed, changed_at, source) VALUES (?1, ?2, ?3, ?4, ?5)
             ON CONFLICT (customer, channel) DO UPDATE SET subscribed = excluded.subscribed,
                 changed_at = excluded.changed_at, source = excluded.source",
        )?
        .execute(params![
            id,
            change.channel.as_str(),
            change.subscribed,
            change.at,
            change.source.as_str()
        ])?;
        if held.map(|(s, _)| s) != Some(change.subscribed) && !moved.contains(&change.channel) {
            moved.push(change.channel.clone());
        }
    }
    let subscriptions = standing_of(c, id)?;
    for change in crate::subscriptions::moved_changes(app, id, moved, &subscriptions) {
        w.emit(change);
    }
    Ok(SubscriptionsOutcome {
        customer_created,
        subscriptions,
    })
}

/// A customer's standing subscriptions, by channel.
pub fn standing(
    c: &Connection,
    app: AppId,
    customer_id: &CustomerId,
) -> Result<Vec<Subscription>, StoreError> {
    let customer =
        rows::find_customer(c, app, customer_id)?.ok_or_else(|| rows::not_found(customer_id))?;
    standing_of(c, customer.id)
}

/// A customer's history of changes, newest recorded first.
pub fn history(
    c: &Connection,
    app: AppId,
    customer_id: &CustomerId,
    limit: usize,
) -> Result<Vec<HistoryEntry>, StoreError> {
    let customer =
        rows::find_customer(c, app, customer_id)?.ok_or_else(|| rows::not_found(customer_id))?;
    let mut stmt = c.prepare_cached(
        "SELECT channel, subscribed, at, source, recorded_at FROM subscription_history
         WHERE customer = ?1 ORDER BY id DESC LIMIT ?2",
    )?;
    let rows = stmt.query_map(
        params![customer.id, i64::try_from(limit).unwrap_or(i64::MAX)],
        |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, bool>(1)?,
                r.get::<_, i64>(2)?,
                r.get::<_, String>(3)?,
                r.get::<_, i64>(4)?,
            ))
        },
    )?;
    let mut out = Vec::new();
    for row in rows {
        let (ch, subscribed, at, src, recorded_at) = row?;
        out.push(HistoryEntry {
            channel: channel(&ch)?,
            subscribed,
            at,
            source: source(src)?,
            recorded_at,
        });
    }
    Ok(out)
}

/// Every standing subscription of the application's customers: (customer id, channel,
/// subscribed).
pub fn scan(
    c: &Connection,
    app: AppId,
    visit: &mut dyn FnMut(i64, Channel, bool),
) -> Result<(), StoreError> {
    let mut stmt = c.prepare_cached(
        "SELECT s.customer, s.channel, s.subscribed FROM subscriptions s
         JOIN customers c ON c.id = s.customer WHERE c.app_id = ?1",
    )?;
    let mut rows = stmt.query([app.0])?;
    while let Some(r) = rows.next()? {
        visit(r.get(0)?, channel(&r.get::<_, String>(1)?)?, r.get(2)?);
    }
    Ok(())
}

/// Every statement of the application's customers, by customer, channel, time, recording.
pub fn scan_history(
    c: &Connection,
    app: AppId,
    visit: &mut dyn FnMut(i64, &Channel, bool, i64),
) -> Result<(), StoreError> {
    let mut stmt = c.prepare_cached(
        "SELECT h.customer, h.channel, h.subscribed, h.at FROM subscription_history h
         JOIN customers c ON c.id = h.customer WHERE c.app_id = ?1
         ORDER BY h.customer, h.channel, h.at, h.id",
    )?;
    let mut rows = stmt.query([app.0])?;
    while let Some(r) = rows.next()? {
        let ch = channel(&r.get::<_, String>(1)?)?;
        visit(r.get(0)?, &ch, r.get(2)?, r.get(3)?);
    }
    Ok(())
}
