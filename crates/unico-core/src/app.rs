//! Applications (tenants) and their time zones.

use std::fmt;

use crate::limits::MAX_APP_NAME_CHARS;

/// An application's id, assigned by the store.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct AppId(pub i64);

impl fmt::Display for AppId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// A brand's project; everything else belongs to exactly one.
#[derive(Debug, Clone, PartialEq)]
pub struct Application {
    pub id: AppId,
    pub name: AppName,
    pub timezone: TimeZoneName,
    /// Epoch milliseconds.
    pub created_at: i64,
}

/// Why an application's name or time zone was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AppError {
    #[error(
        "the application name must be 1–{MAX_APP_NAME_CHARS} characters with no control characters, got {len} characters"
    )]
    BadName { len: usize },
    #[error(
        "unknown time zone \"{0}\"; use an IANA name such as UTC, Europe/Madrid or America/New_York"
    )]
    UnknownTimeZone(String),
}

/// An application's display name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppName(String);

impl AppName {
    pub fn parse(text: &str) -> Result<Self, AppError> {
        let trimmed = text.trim();
        let len = trimmed.chars().count();
        if len == 0 || len > MAX_APP_NAME_CHARS || trimmed.chars().any(char::is_control) {
            return Err(AppError::BadName { len });
        }
        Ok(Self(trimmed.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A valid IANA time zone name; "today" in filters is taken in it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TimeZoneName(String);

impl TimeZoneName {
    pub fn utc() -> Self {
        Self("UTC".to_owned())
    }

    pub fn parse(text: &str) -> Result<Self, AppError> {
        match jiff::tz::TimeZone::get(text) {
            Ok(_) if !text.is_empty() && text.len() <= 64 => Ok(Self(text.to_owned())),
            _ => Err(AppError::UnknownTimeZone(crate::value::excerpt(text))),
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The zone itself. Names are validated at construction, so this only fails if the
    /// zone database changed underneath a stored name; it then falls back to UTC.
    pub fn zone(&self) -> jiff::tz::TimeZone {
        jiff::tz::TimeZone::get(&self.0).unwrap_or(jiff::tz::TimeZone::UTC)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn time_zones_are_iana_names() {
        assert!(TimeZoneName::parse("Europe/Madrid").is_ok());
        assert!(TimeZoneName::parse("UTC").is_ok());
        assert_eq!(
            TimeZoneName::parse("Mars/Olympus").unwrap_err().to_string(),
            "unknown time zone \"Mars/Olympus\"; use an IANA name such as UTC, Europe/Madrid or America/New_York"
        );
        assert!(TimeZoneName::parse("").is_err());
    }

    #[test]
    fn app_names_are_trimmed_and_bounded() {
        assert_eq!(AppName::parse("  Shop ").unwrap().as_str(), "Shop");
        assert!(AppName::parse("   ").is_err());
        assert!(AppName::parse(&"x".repeat(MAX_APP_NAME_CHARS + 1)).is_err());
    }
}
