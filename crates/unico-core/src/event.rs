//! Interactions: the events a customer had with the brand, and the registry of their types.
//!
//! An event is append-only: a type (`purchase`), a channel (`web`), an instant, optionally
//! the device it came from, and free properties (a JSON object). Filters look at the
//! top-level number and string properties ([`Event::property`]); anything else a property
//! holds (objects, arrays, booleans, null) is kept and shown, never compared.

use std::fmt;
use std::sync::Arc;

use crate::limits::{
    MAX_EVENT_PROPERTIES_BYTES, MAX_EVENT_PROPERTIES_DEPTH, MAX_RETENTION_DAYS, MIN_EVENT_TIME_MS,
};

/// Why an event type code, a channel, a property or an event was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct EventError(pub String);

fn check_code(text: &str, what: &str, max: usize) -> Result<(), EventError> {
    let ok_start = text.chars().next().is_some_and(|c| c.is_ascii_alphabetic());
    let ok_rest = text
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-' || c == '.');
    if text.is_empty() {
        return Err(EventError(format!("{what} must not be empty")));
    }
    if text.chars().count() > max {
        return Err(EventError(format!(
            "{what} \"{}\" is longer than {max} characters",
            crate::value::excerpt(text)
        )));
    }
    if !ok_start || !ok_rest {
        return Err(EventError(format!(
            "{what} \"{}\" is not valid: it must start with a letter and hold only ASCII letters, digits, '_', '-' and '.'",
            crate::value::excerpt(text)
        )));
    }
    Ok(())
}

/// An event type's code (`purchase`, `email_open`): 1–64 ASCII letters, digits, `_`, `-`
/// or `.`, starting with a letter. Case-sensitive. Shared, not copied: a clone is a
/// reference count (millions of events read back carry a handful of codes).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct EventCode(Arc<str>);

impl EventCode {
    pub const MAX_CHARS: usize = 64;

    pub fn parse(text: &str) -> Result<Self, EventError> {
        check_code(text, "an event type", Self::MAX_CHARS)?;
        Ok(Self(Arc::from(text)))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for EventCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Type codes and channels read before, shared instead of checked and allocated again for
/// every event (a feed or a table names a handful of each, read millions of times).
#[derive(Debug, Default)]
pub struct EventNames {
    codes: Vec<EventCode>,
    channels: Vec<Channel>,
}

impl EventNames {
    /// Most distinct codes and channels remembered (past it they are parsed each time).
    const MAX: usize = 64;

    /// `text` as a type code, if it is one.
    pub fn code(&mut self, text: &str) -> Option<EventCode> {
        if let Some(c) = self.codes.iter().find(|c| c.as_str() == text) {
            return Some(c.clone());
        }
        let c = EventCode::parse(text).ok()?;
        if self.codes.len() < Self::MAX {
            self.codes.push(c.clone());
        }
        Some(c)
    }

    /// `text` as a channel, if it is one.
    pub fn channel(&mut self, text: &str) -> Option<Channel> {
        if let Some(c) = self.channels.iter().find(|c| c.as_str() == text) {
            return Some(c.clone());
        }
        let c = Channel::parse(text).ok()?;
        // Only a channel spelled as kept (lower-case) is the same text next time.
        if c.as_str() == text && self.channels.len() < Self::MAX {
            self.channels.push(c.clone());
        }
        Some(c)
    }
}

/// A channel (`email`, `sms`, `push`, `whatsapp`, `web`, `app`, `wallet`, `pos`, or one the
/// brand uses): 1–32 ASCII letters, digits, `_`, `-` or `.`, starting with a letter; kept
/// lower-case (`Email` is `email`). Shared like [`EventCode`].
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Channel(Arc<str>);

impl Channel {
    pub const MAX_CHARS: usize = 32;
    /// The channels every application knows.
    pub const WELL_KNOWN: [&'static str; 8] = [
        "email", "sms", "push", "whatsapp", "web", "app", "wallet", "pos",
    ];

    pub fn parse(text: &str) -> Result<Self, EventError> {
        check_code(text, "a channel", Self::MAX_CHARS)?;
        Ok(Self(Arc::from(text.to_ascii_lowercase())))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Channel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The type of a declared event property.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PropertyType {
    Number,
    String,
}

impl PropertyType {
    pub fn parse(text: &str) -> Result<Self, EventError> {
        match text {
            "number" => Ok(Self::Number),
            "string" => Ok(Self::String),
            other => Err(EventError(format!(
                "\"{}\" is not a property type; use number or string",
                crate::value::excerpt(other)
            ))),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Number => "number",
            Self::String => "string",
        }
    }
}

/// Default retention of an event type, in days, when none is given.
pub const DEFAULT_RETENTION_DAYS: u32 = 1095;

/// A registered event type of an application.
#[derive(Debug, Clone, PartialEq)]
pub struct EventType {
    pub code: EventCode,
    /// Display name.
    pub name: String,
    /// Events older than this many days are removed (1 ..= [`MAX_RETENTION_DAYS`]).
    pub retention_days: u32,
    /// A disabled type refuses new events; those stored stay, and filters still see them.
    pub enabled: bool,
    /// Declared properties and their types (optional; undeclared properties are allowed).
    pub properties: Vec<(String, PropertyType)>,
    pub created_at: i64,
}

impl EventType {
    pub fn property_type(&self, name: &str) -> Option<PropertyType> {
        self.properties
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, t)| *t)
    }

    /// Checks a display name: 1–200 characters, no control characters, no surrounding
    /// white space.
    pub fn check_name(name: &str) -> Result<(), EventError> {
        if name.trim().is_empty() {
            return Err(EventError("the name must not be empty".into()));
        }
        if name.chars().count() > 200 {
            return Err(EventError("the name is longer than 200 characters".into()));
        }
        if name.chars().any(char::is_control) {
            return Err(EventError("the name contains a control character".into()));
        }
        if name.trim() != name {
            return Err(EventError(
                "the name starts or ends with white space".into(),
            ));
        }
        Ok(())
    }

    /// Checks a declared property's name: the rule of event type codes.
    pub fn check_property_name(name: &str) -> Result<(), EventError> {
        check_code(name, "a property name", EventCode::MAX_CHARS)
    }

    /// Checks a retention given by a user.
    pub fn check_retention(days: i64) -> Result<u32, EventError> {
        if (1..=i64::from(MAX_RETENTION_DAYS)).contains(&days) {
            Ok(days as u32)
        } else {
            Err(EventError(format!(
                "retention_days must be a whole number of days from 1 to {MAX_RETENTION_DAYS}"
            )))
        }
    }
}

/// An application's event types, by code. Cheap to clone.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct EventTypes(std::sync::Arc<Vec<EventType>>);

impl EventTypes {
    pub fn new(mut types: Vec<EventType>) -> Self {
        types.sort_by(|a, b| a.code.cmp(&b.code));
        Self(std::sync::Arc::new(types))
    }

    /// The types, sorted by code.
    pub fn all(&self) -> &[EventType] {
        &self.0
    }

    pub fn get(&self, code: &str) -> Option<&EventType> {
        self.0
            .binary_search_by(|t| t.code.as_str().cmp(code))
            .ok()
            .map(|i| &self.0[i])
    }

    /// The registered code closest to `code`, to suggest when `code` is unknown.
    pub fn suggest(&self, code: &str) -> Option<&str> {
        let lower = code.to_lowercase();
        self.0
            .iter()
            .map(|t| {
                let c = t.code.as_str();
                (crate::field::edit_distance(&lower, &c.to_lowercase()), c)
            })
            .filter(|(d, c)| *d <= 2.max(c.len() / 3))
            .min_by_key(|(d, _)| *d)
            .map(|(_, c)| c)
    }
}

/// A top-level property value a filter can compare.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum PropRef<'a> {
    Num(f64),
    Str(&'a str),
}

/// An event's properties: a JSON object, checked for size and depth.
///
/// Properties checked from input keep the compact JSON text their size was measured on,
/// so that storing them does not write the same JSON a second time. Properties read
/// from the input's text alone ([`Properties::from_compact`]) build their tree only when
/// something asks for it: an import stores the text and never does.
#[derive(Debug, Clone, Default)]
pub struct Properties {
    /// The tree, once built (always, unless `text` is set).
    map: std::sync::OnceLock<serde_json::Map<String, serde_json::Value>>,
    /// The tree as [`Properties::to_json_text`] writes it, when it was already written.
    text: Option<Box<str>>,
}

impl PartialEq for Properties {
    fn eq(&self, other: &Self) -> bool {
        self.as_map() == other.as_map()
    }
}

impl Properties {
    fn checked(depth: usize, len: usize) -> Result<(), EventError> {
        if depth > MAX_EVENT_PROPERTIES_DEPTH {
            return Err(EventError(format!(
                "properties nest {depth} levels deep; at most {MAX_EVENT_PROPERTIES_DEPTH} are allowed"
            )));
        }
        if len > MAX_EVENT_PROPERTIES_BYTES {
            return Err(EventError(format!(
                "properties take {len} bytes as JSON; at most {MAX_EVENT_PROPERTIES_BYTES} are allowed"
            )));
        }
        Ok(())
    }

    /// Checks `value` is an object within [`MAX_EVENT_PROPERTIES_BYTES`] (as compact JSON)
    /// and [`MAX_EVENT_PROPERTIES_DEPTH`] levels of nesting.
    pub fn from_json(value: serde_json::Value) -> Result<Self, EventError> {
        let serde_json::Value::Object(map) = value else {
            return Err(EventError("properties must be a JSON object".into()));
        };
        let depth = depth_of_map(&map);
        let text = serde_json::to_string(&map).unwrap_or_else(|_| "{}".into());
        Self::checked(depth, text.len())?;
        Ok(Self {
            map: map.into(),
            text: Some(text.into_boxed_str()),
        })
    }

    /// Properties from `text`, which must be a JSON value exactly as serde_json writes it
    /// compactly (what [`Properties::to_json_text`] would write for its tree), nesting
    /// `depth` levels as [`Properties::from_json`] counts them; checked like it.
    pub fn from_compact(text: String, depth: usize) -> Result<Self, EventError> {
        if !text.starts_with('{') {
            return Err(EventError("properties must be a JSON object".into()));
        }
        Self::checked(depth, text.len())?;
        Ok(Self {
            map: std::sync::OnceLock::new(),
            text: Some(text.into_boxed_str()),
        })
    }

    /// Reads properties stored by [`Properties::to_json_text`] (trusted: no limits).
    pub fn from_stored(text: &str) -> Result<Self, EventError> {
        serde_json::from_str::<serde_json::Map<String, serde_json::Value>>(text)
            .map(|map| Self {
                map: map.into(),
                text: None,
            })
            .map_err(|_| EventError("stored properties are not a JSON object".into()))
    }

    pub fn is_empty(&self) -> bool {
        match (self.map.get(), &self.text) {
            (Some(map), _) => map.is_empty(),
            (None, Some(text)) => &**text == "{}",
            (None, None) => true,
        }
    }

    pub fn as_map(&self) -> &serde_json::Map<String, serde_json::Value> {
        self.map.get_or_init(|| {
            self.text
                .as_deref()
                .and_then(|text| serde_json::from_str(text).ok())
                .unwrap_or_default()
        })
    }

    pub fn to_json_text(&self) -> String {
        self.json_text().into_owned()
    }

    /// The compact JSON text, written only if it was not kept from the input.
    pub fn json_text(&self) -> std::borrow::Cow<'_, str> {
        match &self.text {
            Some(text) => std::borrow::Cow::Borrowed(text),
            None => serde_json::to_string(self.as_map())
                .unwrap_or_else(|_| "{}".into())
                .into(),
        }
    }

    /// A top-level number or string property.
    pub fn get(&self, name: &str) -> Option<PropRef<'_>> {
        match self.as_map().get(name)? {
            serde_json::Value::Number(n) => n.as_f64().map(PropRef::Num),
            serde_json::Value::String(s) => Some(PropRef::Str(s)),
            _ => None,
        }
    }
}

fn depth_of_map(map: &serde_json::Map<String, serde_json::Value>) -> usize {
    1 + map.values().map(depth_of).max().unwrap_or(0)
}

fn depth_of(value: &serde_json::Value) -> usize {
    match value {
        serde_json::Value::Object(m) => depth_of_map(m),
        serde_json::Value::Array(a) => 1 + a.iter().map(depth_of).max().unwrap_or(0),
        _ => 0,
    }
}

/// One stored interaction.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    /// Server-assigned, unique across the store, grows with insertion order.
    pub id: i64,
    /// The internal id of the customer it belongs to.
    pub customer: i64,
    /// The idempotency key given by the sender, if any.
    pub event_id: Option<String>,
    pub event_type: EventCode,
    pub channel: Channel,
    pub device_id: Option<String>,
    /// When it happened (epoch milliseconds).
    pub timestamp: i64,
    pub properties: Properties,
}

impl Event {
    pub fn property(&self, name: &str) -> Option<PropRef<'_>> {
        self.properties.get(name)
    }
}

/// Longest idempotency key and device id, in characters.
pub const MAX_EVENT_KEY_CHARS: usize = 128;

/// Checks an idempotency key or a device id: 1–128 characters, no control characters.
pub fn check_event_key(text: &str, what: &str) -> Result<(), EventError> {
    if text.is_empty() {
        return Err(EventError(format!("{what} must not be empty")));
    }
    if text.chars().count() > MAX_EVENT_KEY_CHARS {
        return Err(EventError(format!(
            "{what} is longer than {MAX_EVENT_KEY_CHARS} characters"
        )));
    }
    if text.chars().any(char::is_control) {
        return Err(EventError(format!("{what} contains a control character")));
    }
    Ok(())
}

/// Checks an event's instant: not before [`MIN_EVENT_TIME_MS`] and not more than
/// [`crate::limits::MAX_EVENT_FUTURE_MS`] after `now`.
pub fn check_event_time(timestamp: i64, now: i64) -> Result<(), EventError> {
    if timestamp < MIN_EVENT_TIME_MS {
        return Err(EventError(
            "the timestamp is before 2000-01-01T00:00:00Z, the earliest accepted".into(),
        ));
    }
    if timestamp > now.saturating_add(crate::limits::MAX_EVENT_FUTURE_MS) {
        return Err(EventError(
            "the timestamp is more than 1 day in the future (clocks of senders may be off by minutes, not days)".into(),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_and_channels_follow_their_rules() {
        assert!(EventCode::parse("purchase").is_ok());
        assert!(EventCode::parse("Order.Completed-2").is_ok());
        assert!(EventCode::parse("").is_err());
        assert!(EventCode::parse("9lives").is_err());
        assert!(EventCode::parse("has space").is_err());
        assert!(EventCode::parse(&"a".repeat(65)).is_err());
        assert_eq!(Channel::parse("Email").unwrap().as_str(), "email");
        assert!(Channel::parse("e mail").is_err());
    }

    #[test]
    fn properties_are_bounded_and_readable() {
        let p = Properties::from_json(
            serde_json::json!({"amount": 59.9, "currency": "EUR", "tags": ["a"], "ok": true}),
        )
        .unwrap();
        assert_eq!(p.get("amount"), Some(PropRef::Num(59.9)));
        assert_eq!(p.get("currency"), Some(PropRef::Str("EUR")));
        assert_eq!(p.get("tags"), None);
        assert_eq!(p.get("ok"), None);
        assert_eq!(p.get("missing"), None);
        assert_eq!(Properties::from_stored(&p.to_json_text()).unwrap(), p);
        assert!(Properties::from_json(serde_json::json!([1])).is_err());
        let mut deep = serde_json::json!(1);
        for _ in 0..MAX_EVENT_PROPERTIES_DEPTH {
            deep = serde_json::json!({ "a": deep });
        }
        assert!(Properties::from_json(deep.clone()).is_ok());
        assert!(Properties::from_json(serde_json::json!({ "a": deep })).is_err());
        let big = "x".repeat(MAX_EVENT_PROPERTIES_BYTES);
        assert!(Properties::from_json(serde_json::json!({ "a": big })).is_err());
    }

    /// Properties kept as their compact text read and compare as the tree they stand for,
    /// and are bounded the same way.
    #[test]
    fn properties_from_their_compact_text_are_the_same_properties() {
        let value = serde_json::json!({"amount": 59.9, "currency": "EUR", "tags": ["a"]});
        let text = serde_json::to_string(&value).unwrap();
        let from_text = Properties::from_compact(text.clone(), 2).unwrap();
        assert_eq!(from_text.json_text(), text);
        assert!(!from_text.is_empty());
        assert_eq!(from_text.get("amount"), Some(PropRef::Num(59.9)));
        assert_eq!(from_text.get("currency"), Some(PropRef::Str("EUR")));
        assert_eq!(from_text, Properties::from_json(value).unwrap());
        assert!(Properties::from_compact("{}".into(), 1).unwrap().is_empty());
        assert!(Properties::from_compact("[1]".into(), 1).is_err());
        assert!(Properties::from_compact("{}".into(), MAX_EVENT_PROPERTIES_DEPTH + 1).is_err());
        let big = format!("{{\"a\":\"{}\"}}", "x".repeat(MAX_EVENT_PROPERTIES_BYTES));
        assert!(Properties::from_compact(big, 1).is_err());
    }

    #[test]
    fn times_are_bounded() {
        let now = 1_800_000_000_000;
        assert!(check_event_time(now, now).is_ok());
        assert!(check_event_time(MIN_EVENT_TIME_MS, now).is_ok());
        assert!(check_event_time(MIN_EVENT_TIME_MS - 1, now).is_err());
        assert!(check_event_time(now + crate::limits::MAX_EVENT_FUTURE_MS, now).is_ok());
        assert!(check_event_time(now + crate::limits::MAX_EVENT_FUTURE_MS + 1, now).is_err());
    }
}
