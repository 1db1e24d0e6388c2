//! Customer fields: their types, their definitions and an application's schema.

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

use crate::names::FieldName;

/// The type of a customer field. New types are added here; everything that matches on it
/// (value parsing, storage codec, filter operators) then fails to compile until handled.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FieldType {
    String,
    Number,
    Datetime,
    Date,
}

/// An unknown field type name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown field type \"{0}\"; accepted: string, number, datetime, date")]
pub struct UnknownFieldType(pub String);

impl FieldType {
    pub const ALL: [FieldType; 4] = [
        FieldType::String,
        FieldType::Number,
        FieldType::Datetime,
        FieldType::Date,
    ];

    /// Parses a type name, case-insensitively.
    pub fn parse(text: &str) -> Result<Self, UnknownFieldType> {
        Self::ALL
            .into_iter()
            .find(|t| t.as_str().eq_ignore_ascii_case(text))
            .ok_or_else(|| UnknownFieldType(crate::value::excerpt(text)))
    }

    pub fn as_str(self) -> &'static str {
        match self {
            FieldType::String => "string",
            FieldType::Number => "number",
            FieldType::Datetime => "datetime",
            FieldType::Date => "date",
        }
    }

    /// What a value of this type looks like, for error messages.
    pub fn described(self) -> &'static str {
        match self {
            FieldType::String => "a string",
            FieldType::Number => "a number (42, -3.5, 1e3) or a string holding one",
            FieldType::Datetime => {
                "a date-time string with Z or an offset (2024-03-05T14:22:10Z), a date (1987-06-21) or epoch milliseconds"
            }
            FieldType::Date => "a calendar date string YYYY-MM-DD (1987-06-21)",
        }
    }
}

impl fmt::Display for FieldType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A field's storage id: assigned by the store, never reused, so values of a deleted field
/// can never reappear under a new field of the same name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct FieldId(pub u32);

/// One customer field of an application.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldDef {
    pub id: FieldId,
    pub name: FieldName,
    pub field_type: FieldType,
    /// Creation time, epoch milliseconds.
    pub created_at: i64,
    /// For a computed field, what it aggregates; its values are never stored.
    pub computed: Option<crate::computed::Computed>,
}

impl FieldDef {
    /// Whether the field is computed from events (read-only).
    pub fn is_computed(&self) -> bool {
        self.computed.is_some()
    }
}

/// An application's fields, looked up by name or by id. Cheap to clone.
#[derive(Debug, Clone, Default)]
pub struct Schema {
    fields: Arc<Vec<FieldDef>>,
    by_name: Arc<HashMap<String, usize>>,
    by_id: Arc<HashMap<FieldId, usize>>,
    /// The application's registered event types (what event conditions may name).
    events: crate::event::EventTypes,
    /// The channels the application declared for subscriptions beyond the default ones.
    declared_channels: Arc<Vec<crate::event::Channel>>,
}

impl Schema {
    pub fn new(mut fields: Vec<FieldDef>) -> Self {
        fields.sort_by_key(|f| f.id);
        let by_name = fields
            .iter()
            .enumerate()
            .map(|(i, f)| (f.name.as_str().to_owned(), i))
            .collect();
        let by_id = fields.iter().enumerate().map(|(i, f)| (f.id, i)).collect();
        Self {
            fields: Arc::new(fields),
            by_name: Arc::new(by_name),
            by_id: Arc::new(by_id),
            events: crate::event::EventTypes::default(),
            declared_channels: Arc::default(),
        }
    }

    /// This schema with these channels declared for subscriptions.
    pub fn with_declared_channels(mut self, channels: Vec<crate::event::Channel>) -> Self {
        self.declared_channels = Arc::new(channels);
        self
    }

    /// The channels the application declared for subscriptions (beyond the default ones).
    pub fn declared_channels(&self) -> &[crate::event::Channel] {
        &self.declared_channels
    }

    /// Every channel the application takes subscriptions for: the default ones, then the
    /// declared ones.
    pub fn subscription_channels(&self) -> Vec<crate::event::Channel> {
        crate::subscription::subscription_channels(&self.declared_channels)
    }

    /// This schema with these registered event types.
    pub fn with_event_types(mut self, events: crate::event::EventTypes) -> Self {
        self.events = events;
        self
    }

    /// The computed fields, in creation order.
    pub fn computed_fields(&self) -> impl Iterator<Item = &FieldDef> {
        self.fields.iter().filter(|f| f.is_computed())
    }

    /// The registered event types.
    pub fn event_types(&self) -> &crate::event::EventTypes {
        &self.events
    }

    /// The fields, in creation order.
    pub fn fields(&self) -> &[FieldDef] {
        &self.fields
    }

    pub fn by_name(&self, name: &str) -> Option<&FieldDef> {
        self.by_name.get(name).map(|&i| &self.fields[i])
    }

    pub fn by_id(&self, id: FieldId) -> Option<&FieldDef> {
        self.by_id.get(&id).map(|&i| &self.fields[i])
    }

    pub fn len(&self) -> usize {
        self.fields.len()
    }

    pub fn is_empty(&self) -> bool {
        self.fields.is_empty()
    }

    /// The defined name closest to `name`, to suggest when `name` is unknown.
    pub fn suggest(&self, name: &str) -> Option<&str> {
        let lower = name.to_lowercase();
        self.fields
            .iter()
            .map(|f| {
                (
                    edit_distance(&lower, &f.name.as_str().to_lowercase()),
                    f.name.as_str(),
                )
            })
            .filter(|(d, candidate)| *d <= 2.max(candidate.chars().count() / 3))
            .min_by_key(|(d, _)| *d)
            .map(|(_, n)| n)
    }
}

/// Levenshtein distance over characters, for "did you mean" suggestions everywhere.
pub fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, &cb) in b.iter().enumerate() {
            let cost = usize::from(ca != cb);
            cur[j + 1] = (prev[j] + cost).min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn schema() -> Schema {
        Schema::new(
            ["age", "country", "last_purchase_at"]
                .iter()
                .enumerate()
                .map(|(i, n)| FieldDef {
                    id: FieldId(i as u32 + 1),
                    name: FieldName::parse(n).unwrap(),
                    field_type: FieldType::String,
                    created_at: 0,
                    computed: None,
                })
                .collect(),
        )
    }

    #[test]
    fn types_parse_case_insensitively() {
        assert_eq!(FieldType::parse("DateTime"), Ok(FieldType::Datetime));
        assert_eq!(
            FieldType::parse("bool").unwrap_err().to_string(),
            "unknown field type \"bool\"; accepted: string, number, datetime, date"
        );
    }

    #[test]
    fn suggestions_find_typos_only() {
        let s = schema();
        assert_eq!(s.suggest("agee"), Some("age"));
        assert_eq!(s.suggest("Country"), Some("country"));
        assert_eq!(s.suggest("last_purchase"), Some("last_purchase_at"));
        assert_eq!(s.suggest("zzzzzz"), None);
    }
}
