//! Computed fields: read-only customer fields whose value is an aggregate of the
//! customer's events of one type (`purchases_90d`: the count of `purchase` in the last
//! 90 days). Nothing stores their values: every reader computes them from the events, so
//! they are current as events arrive, as retention removes them and as windows slide.

use std::fmt;

use crate::event::EventCode;
use crate::field::FieldType;
use crate::span::{Duration, parse_duration};

/// What a computed field measures over the events that count.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ComputedAgg {
    /// How many events (0 when none).
    Count,
    /// The exact sum of a number property (0 when none holds one).
    Sum,
    /// The mean of a number property (no value when none holds one).
    Avg,
    Min,
    Max,
    /// The time of the earliest event (no value when none).
    First,
    /// The time of the latest event (no value when none).
    Last,
}

impl ComputedAgg {
    pub const ALL: [ComputedAgg; 7] = [
        ComputedAgg::Count,
        ComputedAgg::Sum,
        ComputedAgg::Avg,
        ComputedAgg::Min,
        ComputedAgg::Max,
        ComputedAgg::First,
        ComputedAgg::Last,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ComputedAgg::Count => "count",
            ComputedAgg::Sum => "sum",
            ComputedAgg::Avg => "avg",
            ComputedAgg::Min => "min",
            ComputedAgg::Max => "max",
            ComputedAgg::First => "first",
            ComputedAgg::Last => "last",
        }
    }

    pub fn parse(text: &str) -> Result<Self, ComputedError> {
        Self::ALL
            .into_iter()
            .find(|a| a.as_str() == text)
            .ok_or_else(|| ComputedError::Agg(crate::value::excerpt(text)))
    }

    /// The type of the values: numbers for the aggregates, instants for first and last.
    pub fn field_type(self) -> FieldType {
        match self {
            ComputedAgg::First | ComputedAgg::Last => FieldType::Datetime,
            _ => FieldType::Number,
        }
    }

    /// Whether the aggregate reads a number property (`sum`, `avg`, `min`, `max`).
    pub fn needs_property(self) -> bool {
        matches!(
            self,
            ComputedAgg::Sum | ComputedAgg::Avg | ComputedAgg::Min | ComputedAgg::Max
        )
    }

    /// Whether every customer has a value (0 when no event counts).
    pub fn always_defined(self) -> bool {
        matches!(self, ComputedAgg::Count | ComputedAgg::Sum)
    }
}

/// A computed field's definition that breaks a rule.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ComputedError {
    #[error("unknown aggregate \"{0}\"; accepted: count, sum, avg, min, max, first, last")]
    Agg(String),
    #[error("\"{0}\" needs the number property it aggregates (\"property\": \"amount\")")]
    PropertyMissing(&'static str),
    #[error("\"{0}\" takes no property: it measures the events themselves")]
    PropertyRefused(&'static str),
    #[error("the property name is empty or longer than {max} characters")]
    PropertyName { max: usize },
    #[error("{0}")]
    Window(String),
    #[error(
        "a computed field with \"agg\": \"{agg}\" holds {expected} values; its type must be {expected} (got {got})"
    )]
    Type {
        agg: &'static str,
        expected: FieldType,
        got: FieldType,
    },
}

/// A computed field's definition: `{"event": "purchase", "agg": "sum", "property":
/// "amount", "within_last": "90d"}`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Computed {
    pub event: EventCode,
    pub agg: ComputedAgg,
    /// The number property, exactly for [`ComputedAgg::needs_property`].
    pub property: Option<String>,
    /// Only events in the last span count (now − span ≤ time ≤ now); none: every
    /// retained event.
    pub within_last: Option<Duration>,
}

/// Longest property name a computed field may aggregate, in characters.
pub const MAX_PROPERTY_CHARS: usize = 128;

impl Computed {
    /// Checks the rules that do not depend on the application (the event type's
    /// existence and the property's type are checked against its schema elsewhere).
    pub fn new(
        event: EventCode,
        agg: ComputedAgg,
        property: Option<String>,
        within_last: Option<Duration>,
    ) -> Result<Self, ComputedError> {
        match (&property, agg.needs_property()) {
            (None, true) => return Err(ComputedError::PropertyMissing(agg.as_str())),
            (Some(_), false) => return Err(ComputedError::PropertyRefused(agg.as_str())),
            (Some(p), true) if p.is_empty() || p.chars().count() > MAX_PROPERTY_CHARS => {
                return Err(ComputedError::PropertyName {
                    max: MAX_PROPERTY_CHARS,
                });
            }
            _ => {}
        }
        Ok(Self {
            event,
            agg,
            property,
            within_last,
        })
    }

    /// Checks that a field of `field_type` may hold this definition's values.
    pub fn check_type(&self, field_type: FieldType) -> Result<(), ComputedError> {
        let expected = self.agg.field_type();
        if expected == field_type {
            Ok(())
        } else {
            Err(ComputedError::Type {
                agg: self.agg.as_str(),
                expected,
                got: field_type,
            })
        }
    }

    /// The storage form, one line of tab-separated parts: agg, event, property (or
    /// empty), window (or empty). [`Computed::from_storage`] reads it back.
    pub fn to_storage(&self) -> String {
        format!(
            "{}\t{}\t{}\t{}",
            self.agg.as_str(),
            self.event,
            self.property.as_deref().unwrap_or(""),
            self.within_last.map(|d| d.to_string()).unwrap_or_default()
        )
    }

    /// Reads [`Computed::to_storage`]'s form; `None` if it is not one.
    pub fn from_storage(text: &str) -> Option<Self> {
        let mut parts = text.splitn(4, '\t');
        let agg = ComputedAgg::parse(parts.next()?).ok()?;
        let event = EventCode::parse(parts.next()?).ok()?;
        let property = Some(parts.next()?).filter(|p| !p.is_empty());
        let window = parts.next()?;
        let within_last = if window.is_empty() {
            None
        } else {
            Some(parse_duration(window).ok()?)
        };
        Self::new(event, agg, property.map(str::to_owned), within_last).ok()
    }

    /// Parses a window as written in a definition (`90d`).
    pub fn parse_window(text: &str) -> Result<Duration, ComputedError> {
        parse_duration(text).map_err(ComputedError::Window)
    }
}

/// Reads as the filter language would say it: `count of purchase within_last 90d`,
/// `sum amount of purchase`, `last app_open`.
impl fmt::Display for Computed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (&self.property, self.agg) {
            (Some(p), agg) => write!(f, "{} {p} of {}", agg.as_str(), self.event)?,
            (None, ComputedAgg::Count) => write!(f, "count of {}", self.event)?,
            (None, agg) => write!(f, "{} {}", agg.as_str(), self.event)?,
        }
        if let Some(d) = self.within_last {
            write!(f, " within_last {d}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn code(s: &str) -> EventCode {
        EventCode::parse(s).unwrap()
    }

    #[test]
    fn property_rules_follow_the_aggregate() {
        assert_eq!(
            Computed::new(code("purchase"), ComputedAgg::Sum, None, None).unwrap_err(),
            ComputedError::PropertyMissing("sum")
        );
        assert_eq!(
            Computed::new(
                code("purchase"),
                ComputedAgg::Count,
                Some("amount".into()),
                None
            )
            .unwrap_err(),
            ComputedError::PropertyRefused("count")
        );
        assert!(Computed::new(code("purchase"), ComputedAgg::Last, None, None).is_ok());
    }

    #[test]
    fn the_type_must_fit_the_aggregate() {
        let c = Computed::new(code("app_open"), ComputedAgg::Last, None, None).unwrap();
        assert!(c.check_type(FieldType::Datetime).is_ok());
        assert_eq!(
            c.check_type(FieldType::Number).unwrap_err().to_string(),
            "a computed field with \"agg\": \"last\" holds datetime values; its type must be datetime (got number)"
        );
    }

    #[test]
    fn storage_form_round_trips() {
        let cases = [
            Computed::new(
                code("purchase"),
                ComputedAgg::Sum,
                Some("amount".into()),
                Some(Computed::parse_window("90d").unwrap()),
            )
            .unwrap(),
            Computed::new(code("app_open"), ComputedAgg::First, None, None).unwrap(),
        ];
        for c in cases {
            assert_eq!(Computed::from_storage(&c.to_storage()), Some(c));
        }
        assert_eq!(Computed::from_storage("sum\tpurchase\t\t"), None);
        assert_eq!(Computed::from_storage("garbage"), None);
    }

    #[test]
    fn reads_like_the_filter_language() {
        let c = Computed::new(
            code("purchase"),
            ComputedAgg::Count,
            None,
            Some(Computed::parse_window("90d").unwrap()),
        )
        .unwrap();
        assert_eq!(c.to_string(), "count of purchase within_last 90d");
    }
}
