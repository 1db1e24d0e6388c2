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

/// What was found for the event codes already met, remembered by the address of their
/// text: the events of a batch share a handful of codes, so one met before costs no text
/// comparison or hashing. Valid only while every code it met is alive (a freed address
/// given again would be taken for the old code): keep one for a batch of events that
/// holds its codes, and clear it for the next.
#[derive(Debug)]
pub struct SeenCodes<T>(Vec<(usize, T)>);

impl<T> Default for SeenCodes<T> {
    fn default() -> Self {
        Self(Vec::new())
    }
}

impl<T: Copy> SeenCodes<T> {
    /// Most codes remembered (past it, `find` is asked each time).
    const MAX: usize = 64;

    /// What `find` answers for `code`, asked once per code met (an answer of `None` is
    /// not remembered: the next call asks again).
    pub fn get_or(&mut self, code: &EventCode, find: impl FnOnce() -> Option<T>) -> Option<T> {
        let at = code.as_str().as_ptr() as usize;
        if let Some(&(_, found)) = self.0.iter().find(|&&(a, _)| a == at) {
            return Some(found);
        }
        let found = find()?;
        if self.0.len() < Self::MAX {
            self.0.push((at, found));
        }
        Some(found)
    }

    pub fn clear(&mut self) {
        self.0.clear();
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
    /// The tree, once built (always, unless `text` is set); boxed, since most properties
    /// never build it and an event is moved and held millions of times.
    map: std::sync::OnceLock<Box<serde_json::Map<String, serde_json::Value>>>,
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
            map: Box::new(map).into(),
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
                map: Box::new(map).into(),
                text: None,
            })
            .map_err(|_| EventError("stored properties are not a JSON object".into()))
    }

    /// Properties stored by [`Properties::to_json_text`], kept as their text until
    /// something asks for the tree (trusted: no limits; a text that is not a JSON object
    /// reads as no properties).
    pub fn from_stored_text(text: String) -> Self {
        Self {
            map: std::sync::OnceLock::new(),
            text: Some(text.into_boxed_str()),
        }
    }

    /// Calls `f` with each top-level property holding a number or a string, in order,
    /// with its place among all the top-level properties: from the tree if it was built,
    /// otherwise straight from the text, building nothing.
    pub fn for_each_comparable(&self, mut f: impl FnMut(usize, &str, PropRef<'_>)) {
        if let Some(map) = self.map.get() {
            for (k, (name, value)) in map.iter().enumerate() {
                if let Some(value) = comparable(value) {
                    f(k, name, value);
                }
            }
            return;
        }
        if let Some(text) = &self.text {
            if let Some(flat) = crate::flat_json::read(text) {
                let mut nums = [0.0; crate::flat_json::MAX_MEMBERS];
                let members = flat.members();
                // Every number read before anything is called: one serde_json refuses
                // sends the whole text its way instead.
                let all_read = members.iter().zip(&mut nums).all(|((_, v), x)| match v {
                    crate::flat_json::Scalar::Num(t) => {
                        crate::flat_json::number(t).map(|n| *x = n).is_some()
                    }
                    _ => true,
                });
                if all_read {
                    for (k, ((name, value), x)) in members.iter().zip(nums).enumerate() {
                        match value {
                            crate::flat_json::Scalar::Num(_) => f(k, name, PropRef::Num(x)),
                            crate::flat_json::Scalar::Str(s) => f(k, name, PropRef::Str(s)),
                            _ => {}
                        }
                    }
                    return;
                }
            }
            use serde::de::DeserializeSeed;
            let mut de = serde_json::Deserializer::from_str(text);
            // The text is ours (written from a tree): a failure leaves what was read.
            let _ = scan::TopLevel(&mut f).deserialize(&mut de);
        }
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
            Box::new(
                self.text
                    .as_deref()
                    .and_then(|text| serde_json::from_str(text).ok())
                    .unwrap_or_default(),
            )
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
        comparable(self.as_map().get(name)?)
    }
}

/// The comparable value of a property: a number or a string.
fn comparable(value: &serde_json::Value) -> Option<PropRef<'_>> {
    match value {
        serde_json::Value::Number(n) => n.as_f64().map(PropRef::Num),
        serde_json::Value::String(s) => Some(PropRef::Str(s)),
        _ => None,
    }
}

/// Reading the top-level properties of a text without building its tree
/// ([`Properties::for_each_comparable`]).
mod scan {
    use std::borrow::Cow;

    use serde::de::{DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};

    use super::PropRef;

    /// The top-level object: each member's value read by [`Value`].
    pub struct TopLevel<'f, F>(pub &'f mut F);

    impl<'de, F: FnMut(usize, &str, PropRef<'_>)> DeserializeSeed<'de> for TopLevel<'_, F> {
        type Value = ();

        fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
            d.deserialize_map(self)
        }
    }

    impl<'de, F: FnMut(usize, &str, PropRef<'_>)> Visitor<'de> for TopLevel<'_, F> {
        type Value = ();

        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str("a JSON object")
        }

        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
            let mut k = 0;
            while let Some(name) = map.next_key_seed(Text)? {
                match map.next_value_seed(Value)? {
                    Some(Comparable::Num(x)) => (self.0)(k, &name, PropRef::Num(x)),
                    Some(Comparable::Str(s)) => (self.0)(k, &name, PropRef::Str(&s)),
                    None => {}
                }
                k += 1;
            }
            Ok(())
        }
    }

    pub enum Comparable<'de> {
        Num(f64),
        Str(Cow<'de, str>),
    }

    /// A string, borrowed from the text when it has no escape.
    struct Text;

    impl<'de> DeserializeSeed<'de> for Text {
        type Value = Cow<'de, str>;

        fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
            d.deserialize_str(self)
        }
    }

    impl<'de> Visitor<'de> for Text {
        type Value = Cow<'de, str>;

        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str("a string")
        }

        fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Self::Value, E> {
            Ok(Cow::Borrowed(v))
        }

        fn visit_str<E>(self, v: &str) -> Result<Self::Value, E> {
            Ok(Cow::Owned(v.to_owned()))
        }

        fn visit_string<E>(self, v: String) -> Result<Self::Value, E> {
            Ok(Cow::Owned(v))
        }
    }

    /// A member's value: a number or a string as `serde_json::Value` would hold it
    /// (`Number::as_f64`), anything else passed over.
    struct Value;

    impl<'de> DeserializeSeed<'de> for Value {
        type Value = Option<Comparable<'de>>;

        fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
            d.deserialize_any(self)
        }
    }

    impl<'de> Visitor<'de> for Value {
        type Value = Option<Comparable<'de>>;

        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str("any JSON value")
        }

        fn visit_bool<E>(self, _: bool) -> Result<Self::Value, E> {
            Ok(None)
        }

        fn visit_unit<E>(self) -> Result<Self::Value, E> {
            Ok(None)
        }

        fn visit_i64<E>(self, v: i64) -> Result<Self::Value, E> {
            Ok(Some(Comparable::Num(v as f64)))
        }

        fn visit_u64<E>(self, v: u64) -> Result<Self::Value, E> {
            Ok(Some(Comparable::Num(v as f64)))
        }

        fn visit_f64<E>(self, v: f64) -> Result<Self::Value, E> {
            Ok(Some(Comparable::Num(v)))
        }

        fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Self::Value, E> {
            Ok(Some(Comparable::Str(Cow::Borrowed(v))))
        }

        fn visit_str<E>(self, v: &str) -> Result<Self::Value, E> {
            Ok(Some(Comparable::Str(Cow::Owned(v.to_owned()))))
        }

        fn visit_string<E>(self, v: String) -> Result<Self::Value, E> {
            Ok(Some(Comparable::Str(Cow::Owned(v))))
        }

        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
            while seq.next_element::<IgnoredAny>()?.is_some() {}
            Ok(None)
        }

        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
            while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
            Ok(None)
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

    /// A code met before answers what was found for it without asking again; a code of
    /// the same text elsewhere in memory is asked for once itself; a miss is not kept.
    #[test]
    fn seen_codes_ask_once_per_code_met_and_forget_misses() {
        let buy = EventCode::parse("buy").unwrap();
        let same_text = EventCode::parse("buy").unwrap();
        let mut seen = SeenCodes::default();
        let mut asked = 0;
        let mut find = |answer: Option<u8>| {
            asked += 1;
            answer
        };
        assert_eq!(seen.get_or(&buy, || find(Some(1))), Some(1));
        assert_eq!(seen.get_or(&buy.clone(), || find(Some(9))), Some(1));
        assert_eq!(seen.get_or(&same_text, || find(Some(2))), Some(2));
        let view = EventCode::parse("view").unwrap();
        assert_eq!(seen.get_or(&view, || find(None)), None);
        assert_eq!(seen.get_or(&view, || find(Some(3))), Some(3));
        seen.clear();
        assert_eq!(seen.get_or(&buy, || find(Some(4))), Some(4));
        assert_eq!(asked, 5);
    }

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

    /// The engine reads stored properties straight from their text: the same members, in
    /// the same places, with the same values as the tree holds.
    #[test]
    fn comparable_properties_read_from_the_text_are_those_of_the_tree() {
        let collect = |p: &Properties| {
            let mut seen = Vec::new();
            p.for_each_comparable(|k, name, value| {
                let value = match value {
                    PropRef::Num(x) => format!("num {x:?}"),
                    PropRef::Str(s) => format!("str {s}"),
                };
                seen.push((k, name.to_owned(), value));
            });
            seen
        };
        for text in [
            r#"{"amount":59.9,"currency":"EUR","tags":["a",{"b":1}],"ok":true,"n":null,"items":2}"#,
            r#"{"big":18446744073709551615,"neg":-9223372036854775808,"e":1e300,"x":-0.0}"#,
            r#"{"esc\u00e9\"":"line\nbreak","nested":{"amount":3},"amount":[1],"last":"z"}"#,
            "{}",
        ] {
            let lazy = Properties::from_stored_text(text.to_owned());
            let from_text = collect(&lazy);
            let tree = Properties::from_stored(text).unwrap();
            assert_eq!(from_text, collect(&tree), "{text}");
            // Once the tree is built, it is what is read.
            assert_eq!(lazy.as_map(), tree.as_map());
            assert_eq!(collect(&lazy), from_text);
        }
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
