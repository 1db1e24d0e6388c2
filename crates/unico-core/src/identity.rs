//! Identities: the identifiers besides the customerId by which a customer is known (a
//! device, an email address, a phone number, a code of another system). Each value is
//! normalised by its kind's rule before it is stored or looked up, so `Ana@Example.com `
//! and `ana@example.com` are one identity; one identity belongs to at most one customer.

use std::fmt;

/// The kinds every application takes; an application declares more.
pub const DEFAULT_IDENTITY_KINDS: [&str; 4] = ["device_id", "email", "phone", "external_code"];

/// Most kinds an application may declare beyond the default ones.
pub const MAX_DECLARED_IDENTITY_KINDS: usize = 32;

/// Longest identity value, in characters (after normalisation).
pub const MAX_IDENTITY_VALUE_CHARS: usize = 256;

/// Longest kind name, in characters.
pub const MAX_IDENTITY_KIND_CHARS: usize = 64;

/// Most identities one customer may hold.
pub const MAX_IDENTITIES_PER_CUSTOMER: usize = 100;

/// Why an identity kind or value was refused. The message says what is accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdentityError {
    #[error(
        "an identity kind is 1–{MAX_IDENTITY_KIND_CHARS} characters: lower-case letters, digits and _, starting with a letter (got \"{0}\")"
    )]
    BadKind(String),
    #[error("an identity value must not be empty")]
    Empty,
    #[error(
        "an identity value is {0} characters long; at most {MAX_IDENTITY_VALUE_CHARS} are allowed"
    )]
    TooLong(usize),
    #[error(
        "an identity value contains a control character (U+{code:04X}) at character {position}"
    )]
    ControlCharacter { code: u32, position: usize },
    #[error(
        "\"{0}\" is not an email address (expected one @ with text on both sides and a dot in the domain)"
    )]
    BadEmail(String),
    #[error(
        "\"{0}\" is not a phone number in international form (expected + and the country code, then 7–15 digits in all; spaces, dots, dashes and parentheses are ignored; 00 may stand for +)"
    )]
    BadPhone(String),
}

/// The kind of an identity: `device_id`, `email`, `phone`, `external_code`, or a kind the
/// application declared (same spelling rule).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct IdentityKind(String);

impl IdentityKind {
    pub fn parse(text: &str) -> Result<Self, IdentityError> {
        let mut chars = text.chars();
        let ok = chars.next().is_some_and(|c| c.is_ascii_lowercase())
            && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
            && text.len() <= MAX_IDENTITY_KIND_CHARS;
        if ok {
            Ok(Self(text.to_owned()))
        } else {
            Err(IdentityError::BadKind(crate::value::excerpt(text)))
        }
    }

    pub fn device_id() -> Self {
        Self("device_id".to_owned())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether this is one of [`DEFAULT_IDENTITY_KINDS`].
    pub fn is_default(&self) -> bool {
        DEFAULT_IDENTITY_KINDS.contains(&self.0.as_str())
    }
}

impl fmt::Display for IdentityKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// An identity with its value normalised by its kind's rule:
/// - `email`: trimmed and lower-cased; one `@`, text on both sides, a dot inside the domain;
/// - `phone`: E.164: `+`, then digits only (spaces, dots, dashes and parentheses dropped,
///   a leading `00` read as `+`), 8–16 characters in all;
/// - every other kind: kept exactly as given.
///
/// Every value: 1–256 characters, no control character.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Identity {
    pub kind: IdentityKind,
    value: String,
}

impl Identity {
    pub fn new(kind: IdentityKind, raw: &str) -> Result<Self, IdentityError> {
        if let Some((position, ch)) = raw.chars().enumerate().find(|(_, c)| c.is_control()) {
            return Err(IdentityError::ControlCharacter {
                code: ch as u32,
                position: position + 1,
            });
        }
        let value = match kind.as_str() {
            "email" => normalise_email(raw)?,
            "phone" => normalise_phone(raw)?,
            _ => raw.to_owned(),
        };
        if value.is_empty() {
            return Err(IdentityError::Empty);
        }
        let len = value.chars().count();
        if len > MAX_IDENTITY_VALUE_CHARS {
            return Err(IdentityError::TooLong(len));
        }
        Ok(Self { kind, value })
    }

    pub fn value(&self) -> &str {
        &self.value
    }
}

impl fmt::Display for Identity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.kind, self.value)
    }
}

fn normalise_email(raw: &str) -> Result<String, IdentityError> {
    let email = raw.trim().to_lowercase();
    if email.is_empty() {
        return Err(IdentityError::Empty);
    }
    let bad = || IdentityError::BadEmail(crate::value::excerpt(raw));
    let (local, domain) = email.split_once('@').ok_or_else(bad)?;
    let domain_ok = !domain.contains('@')
        && domain
            .split_once('.')
            .is_some_and(|(a, b)| !a.is_empty() && !b.is_empty())
        && !domain.ends_with('.');
    if local.is_empty() || !domain_ok || email.chars().any(char::is_whitespace) {
        return Err(bad());
    }
    Ok(email)
}

fn normalise_phone(raw: &str) -> Result<String, IdentityError> {
    let trimmed = raw.trim();
    if trimmed.is_empty() {
        return Err(IdentityError::Empty);
    }
    let bad = || IdentityError::BadPhone(crate::value::excerpt(raw));
    let rest = if let Some(rest) = trimmed.strip_prefix('+') {
        rest
    } else if let Some(rest) = trimmed.strip_prefix("00") {
        rest
    } else {
        return Err(bad());
    };
    let mut digits = String::with_capacity(16);
    digits.push('+');
    for c in rest.chars() {
        match c {
            '0'..='9' => digits.push(c),
            ' ' | '.' | '-' | '(' | ')' => {}
            _ => return Err(bad()),
        }
    }
    let n = digits.len() - 1;
    if !(7..=15).contains(&n) || digits.as_bytes()[1] == b'0' {
        return Err(bad());
    }
    Ok(digits)
}

/// The kinds an application takes: the default ones, then those it declared, each once.
pub fn identity_kinds(declared: &[IdentityKind]) -> Vec<IdentityKind> {
    let mut out: Vec<IdentityKind> = DEFAULT_IDENTITY_KINDS
        .iter()
        .map(|k| IdentityKind(k.to_string()))
        .collect();
    for kind in declared {
        if !out.contains(kind) {
            out.push(kind.clone());
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(kind: &str, raw: &str) -> Result<String, IdentityError> {
        Identity::new(IdentityKind::parse(kind).unwrap(), raw).map(|i| i.value().to_owned())
    }

    #[test]
    fn emails_are_trimmed_and_lower_cased() {
        assert_eq!(
            id("email", "  Ana.Pérez@Example.COM ").unwrap(),
            "ana.pérez@example.com"
        );
        for bad in [
            "ana",
            "ana@",
            "@x.com",
            "ana@x",
            "a@b@c.com",
            "ana @x.com",
            "ana@x.",
        ] {
            assert!(
                matches!(id("email", bad), Err(IdentityError::BadEmail(_))),
                "{bad}"
            );
        }
        assert_eq!(id("email", "   "), Err(IdentityError::Empty));
    }

    #[test]
    fn phones_become_e164() {
        assert_eq!(id("phone", "+34 600-12.34 (56)").unwrap(), "+34600123456");
        assert_eq!(id("phone", "0034600123456").unwrap(), "+34600123456");
        for bad in [
            "600123456",
            "+34 600 abc",
            "+123",
            "+0123456789",
            "+1234567890123456",
        ] {
            assert!(
                matches!(id("phone", bad), Err(IdentityError::BadPhone(_))),
                "{bad}"
            );
        }
    }

    #[test]
    fn other_kinds_are_exact() {
        assert_eq!(id("device_id", " Dev-1 ").unwrap(), " Dev-1 ");
        assert_eq!(id("loyalty_card", "X").unwrap(), "X");
        assert_eq!(
            id("device_id", "a\u{0}b"),
            Err(IdentityError::ControlCharacter {
                code: 0,
                position: 2
            })
        );
        assert_eq!(
            id("device_id", &"x".repeat(257)),
            Err(IdentityError::TooLong(257))
        );
        assert_eq!(id("device_id", ""), Err(IdentityError::Empty));
    }

    #[test]
    fn kinds_follow_the_spelling_rule() {
        assert!(IdentityKind::parse("loyalty_card2").is_ok());
        for bad in ["", "Email", "2fa", "a-b", "a b"] {
            assert!(IdentityKind::parse(bad).is_err(), "{bad}");
        }
        assert!(IdentityKind::parse(&"a".repeat(65)).is_err());
        let kinds = identity_kinds(&[
            IdentityKind::parse("email").unwrap(),
            IdentityKind::parse("card").unwrap(),
        ]);
        let names: Vec<&str> = kinds.iter().map(IdentityKind::as_str).collect();
        assert_eq!(
            names,
            ["device_id", "email", "phone", "external_code", "card"]
        );
    }
}
