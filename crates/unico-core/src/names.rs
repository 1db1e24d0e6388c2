//! The two keys users choose themselves: customer field names and customerIds.
//!
//! Both are written by brands exactly as in their CRM, so both are case-sensitive and
//! stored as given; the rules below only reject what would break CSV files, URLs or
//! people reading them.

use std::fmt;

use crate::limits::{MAX_CUSTOMER_ID_CHARS, MAX_FIELD_NAME_CHARS};

/// Names that belong to every customer and so can never be customer fields.
pub const RESERVED_FIELD_NAMES: [&str; 4] = ["id", "customerId", "created_at", "updated_at"];

/// Why a field name or a customerId was refused. The message says what is accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    #[error("{what} must not be empty")]
    Empty { what: &'static str },
    #[error("{what} is {len} characters long; at most {max} are allowed")]
    TooLong {
        what: &'static str,
        len: usize,
        max: usize,
    },
    #[error(
        "{what} contains a control character (U+{code:04X}) at character {position}; control characters are not allowed"
    )]
    ControlCharacter {
        what: &'static str,
        code: u32,
        position: usize,
    },
    #[error(
        "{what} starts or ends with white space; remove it (names and ids are kept exactly as written)"
    )]
    SurroundingSpace { what: &'static str },
    #[error(
        "\"{name}\" is reserved for a built-in attribute of every customer (reserved: id, customerId, created_at, updated_at)"
    )]
    Reserved { name: String },
}

fn check_text(text: &str, what: &'static str, max_chars: usize) -> Result<(), NameError> {
    if text.is_empty() {
        return Err(NameError::Empty { what });
    }
    let mut len = 0usize;
    for (position, ch) in text.chars().enumerate() {
        if ch.is_control() {
            return Err(NameError::ControlCharacter {
                what,
                code: ch as u32,
                position: position + 1,
            });
        }
        len += 1;
    }
    if len > max_chars {
        return Err(NameError::TooLong {
            what,
            len,
            max: max_chars,
        });
    }
    if text.starts_with(char::is_whitespace) || text.ends_with(char::is_whitespace) {
        return Err(NameError::SurroundingSpace { what });
    }
    Ok(())
}

/// A valid customer field name: 1–128 characters, no control characters, no surrounding
/// white space, not one of [`RESERVED_FIELD_NAMES`]. Case-sensitive.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct FieldName(String);

impl FieldName {
    pub fn parse(text: &str) -> Result<Self, NameError> {
        check_text(text, "a field name", MAX_FIELD_NAME_CHARS)?;
        if RESERVED_FIELD_NAMES.contains(&text) {
            return Err(NameError::Reserved {
                name: text.to_owned(),
            });
        }
        Ok(Self(text.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for FieldName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A valid customerId: the brand's unique key for a customer. 1–256 characters, no control
/// characters, no surrounding white space; anything else (`/`, `?`, `#`, `@`, any script)
/// is fine. Ordered by the bytes of its UTF-8 text, the order of every listing.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct CustomerId(String);

impl CustomerId {
    pub fn parse(text: &str) -> Result<Self, NameError> {
        check_text(text, "a customerId", MAX_CUSTOMER_ID_CHARS)?;
        Ok(Self(text.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn into_string(self) -> String {
        self.0
    }
}

impl fmt::Display for CustomerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn field_names_follow_the_rules() {
        assert!(FieldName::parse("age").is_ok());
        assert!(FieldName::parse("Last Purchase (€)").is_ok());
        assert!(FieldName::parse("ID").is_ok(), "names are case-sensitive");
        assert_eq!(
            FieldName::parse("customerId").unwrap_err().to_string(),
            "\"customerId\" is reserved for a built-in attribute of every customer (reserved: id, customerId, created_at, updated_at)"
        );
        assert!(matches!(FieldName::parse(""), Err(NameError::Empty { .. })));
        assert!(matches!(
            FieldName::parse(" age"),
            Err(NameError::SurroundingSpace { .. })
        ));
        assert!(matches!(
            FieldName::parse("a\tb"),
            Err(NameError::ControlCharacter {
                code: 9,
                position: 2,
                ..
            })
        ));
    }

    #[test]
    fn field_name_length_limit_counts_characters() {
        let at_limit = "é".repeat(MAX_FIELD_NAME_CHARS);
        assert!(FieldName::parse(&at_limit).is_ok());
        let past = "é".repeat(MAX_FIELD_NAME_CHARS + 1);
        assert_eq!(
            FieldName::parse(&past).unwrap_err(),
            NameError::TooLong {
                what: "a field name",
                len: 129,
                max: 128
            }
        );
    }

    #[test]
    fn customer_ids_accept_odd_characters() {
        for id in [
            "a/b",
            "a?b",
            "a#b",
            "ana@example.com",
            "日本語",
            "x y",
            "%2F",
        ] {
            assert_eq!(CustomerId::parse(id).unwrap().as_str(), id);
        }
        assert!(CustomerId::parse(&"x".repeat(MAX_CUSTOMER_ID_CHARS)).is_ok());
        assert!(CustomerId::parse(&"x".repeat(MAX_CUSTOMER_ID_CHARS + 1)).is_err());
        assert!(CustomerId::parse("a\0b").is_err());
        assert!(CustomerId::parse("").is_err());
    }
}
