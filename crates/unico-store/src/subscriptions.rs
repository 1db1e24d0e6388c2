//! What the store takes and gives for channel subscriptions, and the rules every backend
//! applies the same way.

use unico_core::{AppId, Channel, Schema, Source, Subscription, SubscriptionChange};

use crate::changes::Change;

use crate::error::StoreError;

/// Most history entries one read answers.
pub const MAX_HISTORY: usize = 1000;

/// One recorded change of a customer's subscription, newest first in a history.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HistoryEntry {
    pub channel: Channel,
    pub subscribed: bool,
    /// When the customer gave or withdrew consent, as the change said.
    pub at: i64,
    pub source: Source,
    /// When the store recorded it.
    pub recorded_at: i64,
}

/// What a subscription write did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubscriptionsOutcome {
    /// The customer did not exist and was created (only when the write may create).
    pub customer_created: bool,
    /// Every standing subscription of the customer after the write, by channel.
    pub subscriptions: Vec<Subscription>,
}

/// The meta key holding the channels an application declared, comma-separated.
pub fn declared_channels_key(app: AppId) -> String {
    format!("app.{}.subscription_channels", app.0)
}

/// Reads [`declared_channels_key`]'s value (unreadable names are skipped).
pub fn parse_declared(text: &str) -> Vec<Channel> {
    text.split(',')
        .filter(|c| !c.is_empty())
        .filter_map(|c| Channel::parse(c).ok())
        .collect()
}

/// Refuses a change to a channel the application does not take subscriptions for.
pub(crate) fn check_channels(
    schema: &Schema,
    changes: &[SubscriptionChange],
) -> Result<(), StoreError> {
    let channels = schema.subscription_channels();
    for c in changes {
        if !channels.contains(&c.channel) {
            let names: Vec<&str> = channels.iter().map(Channel::as_str).collect();
            return Err(StoreError::Invalid(format!(
                "\"{}\" is not a subscription channel of this application; it takes {} (declare more with PATCH /v1/apps/{{app}} {{\"subscription_channels\": [...]}})",
                c.channel,
                names.join(", ")
            )));
        }
    }
    Ok(())
}

/// Whether `change` becomes the standing subscription over the one held (changed at
/// `held_at`): the latest statement of the customer wins, whatever order they arrive in.
pub(crate) fn supersedes(held_at: Option<i64>, change: &SubscriptionChange) -> bool {
    held_at.is_none_or(|at| change.at >= at)
}

/// The log entries of a write whose standing subscriptions moved on `moved` channels: one
/// per channel, with the state that stands after the whole write.
pub(crate) fn moved_changes(
    app: AppId,
    customer: i64,
    moved: Vec<Channel>,
    standing: &[Subscription],
) -> Vec<Change> {
    moved
        .into_iter()
        .map(|channel| {
            let subscribed = standing
                .iter()
                .any(|s| s.channel == channel && s.subscribed);
            Change::Subscription {
                app,
                customer,
                channel,
                subscribed,
            }
        })
        .collect()
}

/// Collects the subscription statements of an import's items as the batches pass (they are
/// applied after the rows, in the same transaction).
#[derive(Default, Clone)]
pub(crate) struct ConsentTee(std::sync::Arc<std::sync::Mutex<Vec<Statements>>>);

/// One customer's statements in an import.
type Statements = (unico_core::CustomerId, Vec<SubscriptionChange>);

impl ConsentTee {
    /// The batches, unchanged, with their statements collected on the way.
    pub(crate) fn tee(
        &self,
        batches: Box<dyn Iterator<Item = crate::ImportBatch> + Send>,
    ) -> Box<dyn Iterator<Item = crate::ImportBatch> + Send> {
        let held = self.0.clone();
        Box::new(batches.inspect(move |batch| {
            if let crate::ImportBatch::Items(items) = batch {
                let found: Vec<_> = items
                    .iter()
                    .filter(|i| !i.subscriptions.is_empty())
                    .map(|i| (i.customer_id.clone(), i.subscriptions.clone()))
                    .collect();
                if !found.is_empty()
                    && let Ok(mut held) = held.lock()
                {
                    held.extend(found);
                }
            }
        }))
    }

    /// The statements collected, in file order.
    pub(crate) fn take(&self) -> Vec<Statements> {
        self.0
            .lock()
            .map(|mut v| std::mem::take(&mut *v))
            .unwrap_or_default()
    }
}
