//! Channel subscriptions (consent): per customer and channel, subscribed or unsubscribed,
//! with the time and source of the last change; every change is kept in the customer's
//! history.

use crate::event::Channel;

/// The channels every application takes subscriptions for; an application declares more.
pub const DEFAULT_SUBSCRIPTION_CHANNELS: [&str; 4] = ["email", "sms", "push", "whatsapp"];

/// Longest source of a change (`api`, `csv`, `console`, `double_opt_in`…), in characters.
pub const MAX_SOURCE_CHARS: usize = 64;

/// Most channels an application may declare beyond the default ones.
pub const MAX_DECLARED_CHANNELS: usize = 32;

/// Where a change came from: 1–64 printable characters, no surrounding space.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Source(String);

/// A source that breaks the rule above.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "a source is 1–{MAX_SOURCE_CHARS} characters with no control character or surrounding space (got \"{0}\")"
)]
pub struct SourceError(pub String);

impl Source {
    pub fn parse(text: &str) -> Result<Self, SourceError> {
        let ok = !text.is_empty()
            && text.chars().count() <= MAX_SOURCE_CHARS
            && !text.chars().any(char::is_control)
            && text.trim() == text;
        if ok {
            Ok(Self(text.to_owned()))
        } else {
            Err(SourceError(crate::value::excerpt(text)))
        }
    }

    /// The source of changes made through the API when the caller names none.
    pub fn api() -> Self {
        Self("api".to_owned())
    }

    /// The source of changes made in the console.
    pub fn console() -> Self {
        Self("console".to_owned())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// One change of a customer's subscription to a channel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubscriptionChange {
    pub channel: Channel,
    pub subscribed: bool,
    /// When the customer gave or withdrew consent (epoch milliseconds).
    pub at: i64,
    pub source: Source,
}

/// A customer's subscription to one channel as it stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subscription {
    pub channel: Channel,
    pub subscribed: bool,
    /// The time of the last change.
    pub changed_at: i64,
    pub source: Source,
}

/// The channels an application takes subscriptions for: the default ones, then those it
/// declared, each once.
pub fn subscription_channels(declared: &[Channel]) -> Vec<Channel> {
    let mut out: Vec<Channel> = DEFAULT_SUBSCRIPTION_CHANNELS
        .iter()
        .filter_map(|c| Channel::parse(c).ok())
        .collect();
    for c in declared {
        if !out.contains(c) {
            out.push(c.clone());
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sources_are_short_printable_and_trimmed() {
        assert!(Source::parse("double_opt_in").is_ok());
        assert!(Source::parse("Shop checkout form").is_ok());
        for bad in ["", " api", "api ", "a\u{7}b", &"x".repeat(65)] {
            assert!(Source::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn declared_channels_follow_the_default_ones_once() {
        let declared = [
            Channel::parse("wallet").unwrap(),
            Channel::parse("email").unwrap(),
        ];
        let names: Vec<String> = subscription_channels(&declared)
            .iter()
            .map(|c| c.as_str().to_owned())
            .collect();
        assert_eq!(names, ["email", "sms", "push", "whatsapp", "wallet"]);
    }
}
