//! Filter errors: what went wrong, where (line and column of the text form, or the path
//! inside the JSON form), and a stable code for the server's error table.
//!
//! Every message reads "what, where, why/hint", e.g.
//! `unknown field "agee" at column 1 — did you mean "age"?`.

use std::fmt;

use unico_core::{FieldType, ValueError};

use crate::ast::Op;
use crate::limits::{MAX_DEPTH, MAX_FILTER_BYTES, MAX_IN_VALUES};

/// Where in the user's input an error is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Location {
    /// In the text form: 1-based line and column, columns counted in characters.
    Text { line: usize, column: usize },
    /// In the JSON form: a path such as `and[2].value`; empty for the top-level value.
    Json { path: String },
    /// The input as a whole (e.g. its size).
    Whole,
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Location::Text { line: 1, column } => write!(f, "column {column}"),
            Location::Text { line, column } => write!(f, "line {line}, column {column}"),
            Location::Json { path } if path.is_empty() => f.write_str("the top level"),
            Location::Json { path } => f.write_str(path),
            Location::Whole => f.write_str("the filter"),
        }
    }
}

/// What went wrong. The variants carry the facts; [`FilterError`]'s message is built from
/// them and the location.
#[derive(Debug, Clone, PartialEq)]
pub enum ErrorKind {
    /// The input is longer than [`MAX_FILTER_BYTES`].
    TooLarge { bytes: usize },
    /// The filter nests deeper than [`MAX_DEPTH`] levels.
    TooDeep,
    /// An `in`/`not_in` list holds more than [`MAX_IN_VALUES`] values.
    ListTooLong,
    /// The text form is empty or blank.
    Empty,
    /// The text form is not well formed, or the JSON form has the wrong shape. The
    /// message says what is wrong; the hint, if any, how to write it.
    Syntax {
        message: String,
        hint: Option<String>,
    },
    /// The field is neither defined in the schema nor a built-in attribute.
    UnknownField {
        name: String,
        suggestion: Option<String>,
    },
    /// The operator does not apply to the field's type.
    OperatorMismatch {
        op: Op,
        field: String,
        field_type: FieldType,
        /// The operators that apply, spelled as in the form the user wrote.
        accepted: String,
    },
    /// The value is of the wrong kind for the field (a number for a string field, a
    /// relative time for a number field, ...).
    WrongValue {
        field: String,
        expected: String,
        got: String,
    },
    /// The value did not parse as the field's type.
    InvalidValue { field: String, reason: ValueError },
    /// An empty string: it never matches, since an empty value means "absent".
    EmptyString { field: String },
    /// The event type is not registered in the application.
    UnknownEventType {
        name: String,
        suggestion: Option<String>,
    },
    /// The operator does not apply to what a part of an event condition tests (a
    /// property of its type, an aggregate, a first or last time). `subject` says what, as
    /// a phrase (`number property "amount" of "purchase"`).
    EventOperatorMismatch {
        op: Op,
        subject: String,
        /// The operators that apply, spelled as in the form the user wrote.
        accepted: String,
    },
    /// A value in an event condition of the wrong kind or that did not parse, or a channel
    /// that is not one. `reason` says what was expected and what was found.
    EventInvalidValue { subject: String, reason: String },
    /// `exists` / `not_exists` on a property whose type its event type does not declare:
    /// without a type the test would depend on a guess.
    UndeclaredProperty { event: String, property: String },
    /// A subscription condition names a channel the application takes no subscriptions
    /// for (the default channels and those it declared).
    UnknownSubscriptionChannel {
        name: String,
        suggestion: Option<String>,
        /// The channels the application takes subscriptions for (boxed: errors stay
        /// small).
        accepted: Box<[String]>,
    },
}

impl ErrorKind {
    /// A stable snake_case code for the API's error table.
    pub fn code(&self) -> &'static str {
        match self {
            ErrorKind::TooLarge { .. } => "filter_too_large",
            ErrorKind::TooDeep => "filter_too_deep",
            ErrorKind::ListTooLong => "filter_list_too_long",
            ErrorKind::Empty | ErrorKind::Syntax { .. } => "filter_syntax",
            ErrorKind::UnknownField { .. } => "filter_unknown_field",
            ErrorKind::OperatorMismatch { .. } => "filter_operator_mismatch",
            ErrorKind::WrongValue { .. }
            | ErrorKind::InvalidValue { .. }
            | ErrorKind::EmptyString { .. }
            | ErrorKind::EventInvalidValue { .. } => "filter_invalid_value",
            ErrorKind::UnknownEventType { .. } => "filter_unknown_event_type",
            ErrorKind::EventOperatorMismatch { .. } => "filter_operator_mismatch",
            ErrorKind::UndeclaredProperty { .. } => "filter_undeclared_property",
            ErrorKind::UnknownSubscriptionChannel { .. } => "filter_unknown_channel",
        }
    }
}

/// A filter that was refused: the kind, where, and a message for people that says both.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{message}")]
pub struct FilterError {
    kind: ErrorKind,
    location: Location,
    message: String,
}

impl FilterError {
    pub(crate) fn new(kind: ErrorKind, location: Location) -> Self {
        let message = render(&kind, &location);
        Self {
            kind,
            location,
            message,
        }
    }

    /// A syntax error. By convention the text up to the first "; " outside parentheses
    /// and quotes says what is wrong and the rest is a hint; the location goes between.
    pub(crate) fn syntax(message: impl Into<String>, location: Location) -> Self {
        let message = message.into();
        let (message, hint) = match split_hint(&message) {
            Some(i) => (message[..i].to_owned(), Some(message[i + 2..].to_owned())),
            None => (message, None),
        };
        Self::new(ErrorKind::Syntax { message, hint }, location)
    }

    pub fn kind(&self) -> &ErrorKind {
        &self.kind
    }

    pub fn location(&self) -> &Location {
        &self.location
    }

    /// A stable snake_case code for the API's error table (`filter_unknown_field`, ...).
    pub fn code(&self) -> &'static str {
        self.kind.code()
    }
}

fn render(kind: &ErrorKind, at: &Location) -> String {
    match kind {
        ErrorKind::TooLarge { bytes } => format!(
            "the filter is {bytes} bytes long; a filter holds at most {MAX_FILTER_BYTES} bytes (64 KiB)"
        ),
        ErrorKind::TooDeep => format!(
            "the filter nests more than {MAX_DEPTH} levels at {at}; a filter nests at most {MAX_DEPTH} levels"
        ),
        ErrorKind::ListTooLong => format!(
            "the list has more than {MAX_IN_VALUES} values at {at}; an in list holds at most {MAX_IN_VALUES} values"
        ),
        ErrorKind::Empty => {
            "the filter is empty; write at least one condition, such as country = \"ES\"".to_owned()
        }
        ErrorKind::Syntax {
            message,
            hint: None,
        } => format!("{message} at {at}"),
        ErrorKind::Syntax {
            message,
            hint: Some(hint),
        } => format!("{message} at {at}; {hint}"),
        ErrorKind::UnknownField { name, suggestion } => {
            let name = quote(name);
            match suggestion {
                Some(s) => format!("unknown field {name} at {at} — did you mean {}?", quote(s)),
                None => format!("unknown field {name} at {at}"),
            }
        }
        ErrorKind::OperatorMismatch {
            op,
            field,
            field_type,
            accepted,
        } => {
            // Name the operator as the user wrote it: a symbol in the text form.
            let spelled = match at {
                Location::Text { .. } => op.text(),
                _ => op.name(),
            };
            format!(
                "operator \"{spelled}\" does not apply to {field_type} field {} at {at}; {field_type} fields take: {accepted}",
                quote(field),
            )
        }
        ErrorKind::WrongValue {
            field,
            expected,
            got,
        } => format!(
            "expected {expected} for field {} at {at}, got {got}",
            quote(field)
        ),
        ErrorKind::InvalidValue { field, reason } => {
            format!("invalid value for field {} at {at}: {reason}", quote(field))
        }
        ErrorKind::EmptyString { field } => format!(
            "empty string for field {} at {at}; an empty value means \"absent\" and never matches: use exists or not_exists",
            quote(field)
        ),
        ErrorKind::UnknownEventType { name, suggestion } => {
            let name = quote(name);
            match suggestion {
                Some(s) => format!(
                    "unknown event type {name} at {at} — did you mean {}?",
                    quote(s)
                ),
                None => format!(
                    "unknown event type {name} at {at}; event types are registered per application"
                ),
            }
        }
        ErrorKind::EventOperatorMismatch {
            op,
            subject,
            accepted,
        } => {
            let spelled = match at {
                Location::Text { .. } => op.text(),
                _ => op.name(),
            };
            format!(
                "operator \"{spelled}\" does not apply to {subject} at {at}; accepted: {accepted}"
            )
        }
        ErrorKind::EventInvalidValue { subject, reason } => {
            format!("invalid value for {subject} at {at}: {reason}")
        }
        ErrorKind::UndeclaredProperty { event, property } => format!(
            "cannot test whether property {} of event type {} exists at {at}, as its type is not declared; declare the property (number or string) on the event type, or compare it with a value",
            quote(property),
            quote(event)
        ),
        ErrorKind::UnknownSubscriptionChannel {
            name,
            suggestion,
            accepted,
        } => {
            let name = quote(name);
            let accepted = accepted.join(", ");
            match suggestion {
                Some(s) => format!(
                    "unknown subscription channel {name} at {at} — did you mean {}? (the application takes subscriptions on: {accepted})",
                    quote(s)
                ),
                None => format!(
                    "unknown subscription channel {name} at {at}; the application takes subscriptions on: {accepted}"
                ),
            }
        }
    }
}

/// Quotes a user-given name for a message, shortened so hostile input cannot make a huge
/// message.
pub(crate) fn quote(name: &str) -> String {
    format!("\"{}\"", unico_core::value::excerpt(name))
}

/// The byte index of the first "; " outside parentheses, brackets and quotes.
fn split_hint(message: &str) -> Option<usize> {
    let mut depth = 0i32;
    let mut quoted = false;
    let bytes = message.as_bytes();
    for (i, &b) in bytes.iter().enumerate() {
        match b {
            b'"' => quoted = !quoted,
            b'(' | b'[' | b'{' if !quoted => depth += 1,
            b')' | b']' | b'}' if !quoted => depth -= 1,
            b';' if !quoted && depth == 0 && bytes.get(i + 1) == Some(&b' ') => return Some(i),
            _ => {}
        }
    }
    None
}
