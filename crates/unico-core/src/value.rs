//! Typed values and the one parser that turns user input into them.
//!
//! The API, the CSV importer, the console and the filter language all call these
//! functions, so a value is accepted or refused the same way wherever it enters.

use crate::field::FieldType;
use crate::limits::MAX_STRING_VALUE_BYTES;
use crate::time::{self, TimeError};

/// A customer field's value. `Datetime` is epoch milliseconds (UTC); `Date` is days since
/// 1970-01-01. Numbers are always finite.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    String(String),
    Number(f64),
    Datetime(i64),
    Date(i32),
}

impl Value {
    pub fn field_type(&self) -> FieldType {
        match self {
            Value::String(_) => FieldType::String,
            Value::Number(_) => FieldType::Number,
            Value::Datetime(_) => FieldType::Datetime,
            Value::Date(_) => FieldType::Date,
        }
    }

    /// The value as text in its canonical form: what CSV exports write and what parses
    /// back to the same value.
    pub fn to_text(&self) -> String {
        match self {
            Value::String(s) => s.clone(),
            Value::Number(n) => format_number(*n),
            Value::Datetime(ms) => time::format_datetime(*ms),
            Value::Date(days) => time::format_date(*days),
        }
    }
}

/// Formats a number the shortest way that parses back to the same `f64` (`42`, `-3.5`).
pub fn format_number(n: f64) -> String {
    if n == n.trunc() && n.abs() < 1e15 {
        format!("{}", n as i64)
    } else {
        format!("{n}")
    }
}

/// Why a value was refused. Each message names what was wrong and what is accepted; the
/// caller adds where (field, line, column).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ValueError {
    #[error("expected {}, got {got}", expected.described())]
    WrongJsonType {
        expected: FieldType,
        got: &'static str,
    },
    #[error(
        "the string is {bytes} bytes long; a string value holds at most {MAX_STRING_VALUE_BYTES} bytes"
    )]
    StringTooLong { bytes: usize },
    #[error("\"{text}\" uses a decimal comma; numbers use '.' as the decimal separator (3.5)")]
    DecimalComma { text: String },
    #[error("expected a number such as 42, -3.5 or 1e3, got \"{text}\"")]
    NotANumber { text: String },
    #[error(
        "NaN and infinite numbers are not accepted; expected a finite number such as 42 or -3.5"
    )]
    NotFinite,
    #[error("\"{text}\" {reason}")]
    Time { text: String, reason: TimeError },
    #[error("epoch milliseconds must be an integer, got {text}")]
    EpochNotInteger { text: String },
}

/// Where a text value came from: JSON accepts epoch milliseconds for datetimes, CSV does
/// not (a bare `2024` would silently become 1970).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    Json,
    Csv,
}

/// Shortens a value quoted in an error message so a 1 MB cell cannot make a 1 MB message.
pub fn excerpt(text: &str) -> String {
    const MAX_CHARS: usize = 64;
    if text.chars().count() <= MAX_CHARS {
        text.to_owned()
    } else {
        let mut short: String = text.chars().take(MAX_CHARS).collect();
        short.push('…');
        short
    }
}

/// Parses text as a value of `ty`. Empty text means "absent" and gives `Ok(None)`.
pub fn parse_text(ty: FieldType, text: &str) -> Result<Option<Value>, ValueError> {
    if text.is_empty() {
        return Ok(None);
    }
    let value =
        match ty {
            FieldType::String => {
                if text.len() > MAX_STRING_VALUE_BYTES {
                    return Err(ValueError::StringTooLong { bytes: text.len() });
                }
                Value::String(text.to_owned())
            }
            FieldType::Number => Value::Number(parse_number(text)?),
            FieldType::Datetime => Value::Datetime(time::parse_datetime(text).map_err(
                |reason| ValueError::Time {
                    text: excerpt(text),
                    reason,
                },
            )?),
            FieldType::Date => {
                Value::Date(time::parse_date(text).map_err(|reason| ValueError::Time {
                    text: excerpt(text),
                    reason,
                })?)
            }
        };
    Ok(Some(value))
}

/// Parses a finite decimal number (`42`, `-3.5`, `1e3`; surrounding spaces ignored).
pub fn parse_number(text: &str) -> Result<f64, ValueError> {
    let trimmed = text.trim();
    let word = trimmed.trim_start_matches(['+', '-']).as_bytes();
    let starts = |prefix: &[u8]| word.len() >= 3 && word[..3].eq_ignore_ascii_case(prefix);
    if starts(b"inf") || starts(b"nan") {
        return Err(ValueError::NotFinite);
    }
    match trimmed.parse::<f64>() {
        Ok(n) if n.is_finite() => Ok(n),
        Ok(_) => Err(ValueError::NotFinite),
        Err(_) => {
            let comma = trimmed.replacen(',', ".", 1);
            if trimmed.matches(',').count() == 1 && comma.parse::<f64>().is_ok() {
                Err(ValueError::DecimalComma {
                    text: excerpt(trimmed),
                })
            } else {
                Err(ValueError::NotANumber {
                    text: excerpt(text),
                })
            }
        }
    }
}

/// Builds a value of `ty` from a JSON number (given as its text and whether it was
/// written as an integer). Numbers are numbers; for datetimes an integer is epoch
/// milliseconds; other types refuse numbers.
pub fn from_json_number(
    ty: FieldType,
    as_f64: f64,
    as_i64: Option<i64>,
) -> Result<Value, ValueError> {
    match ty {
        FieldType::Number if as_f64.is_finite() => Ok(Value::Number(as_f64)),
        FieldType::Number => Err(ValueError::NotFinite),
        FieldType::Datetime => match as_i64 {
            Some(ms) => {
                time::check_ms_range(ms).map_err(|reason| ValueError::Time {
                    text: ms.to_string(),
                    reason,
                })?;
                Ok(Value::Datetime(ms))
            }
            None => Err(ValueError::EpochNotInteger {
                text: format_number(as_f64),
            }),
        },
        FieldType::String | FieldType::Date => Err(ValueError::WrongJsonType {
            expected: ty,
            got: "a number",
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(ty: FieldType, text: &str) -> Result<Option<Value>, String> {
        parse_text(ty, text).map_err(|e| e.to_string())
    }

    #[test]
    fn empty_text_is_absent_for_every_type() {
        for ty in FieldType::ALL {
            assert_eq!(parse(ty, ""), Ok(None));
        }
    }

    #[test]
    fn strings_are_kept_as_given_up_to_the_limit() {
        assert_eq!(
            parse(FieldType::String, " Málaga "),
            Ok(Some(Value::String(" Málaga ".into())))
        );
        let at_limit = "x".repeat(MAX_STRING_VALUE_BYTES);
        assert!(parse(FieldType::String, &at_limit).is_ok());
        let past = "é".repeat(MAX_STRING_VALUE_BYTES / 2 + 1);
        assert_eq!(
            parse(FieldType::String, &past),
            Err("the string is 4098 bytes long; a string value holds at most 4096 bytes".into())
        );
    }

    #[test]
    fn numbers_are_finite_decimals() {
        assert_eq!(
            parse(FieldType::Number, "42"),
            Ok(Some(Value::Number(42.0)))
        );
        assert_eq!(
            parse(FieldType::Number, "-3.5"),
            Ok(Some(Value::Number(-3.5)))
        );
        assert_eq!(
            parse(FieldType::Number, "1e3"),
            Ok(Some(Value::Number(1000.0)))
        );
        assert_eq!(
            parse(FieldType::Number, "3,5"),
            Err(
                "\"3,5\" uses a decimal comma; numbers use '.' as the decimal separator (3.5)"
                    .into()
            )
        );
        for bad in ["NaN", "inf", "-Infinity", "1e999"] {
            assert_eq!(
                parse(FieldType::Number, bad),
                Err("NaN and infinite numbers are not accepted; expected a finite number such as 42 or -3.5".into()),
                "{bad}"
            );
        }
        assert_eq!(
            parse(FieldType::Number, "forty"),
            Err("expected a number such as 42, -3.5 or 1e3, got \"forty\"".into())
        );
    }

    #[test]
    fn datetimes_in_text_never_take_epoch_numbers() {
        let err = parse(FieldType::Datetime, "2024").unwrap_err();
        assert!(
            err.starts_with("\"2024\" is not a valid date-time; accepted:"),
            "{err}"
        );
        assert_eq!(
            parse(FieldType::Datetime, "2024-03-05T14:22:10"),
            Err("\"2024-03-05T14:22:10\" has no time zone; add Z or an offset such as +01:00 (2024-03-05T14:22:10Z)".into())
        );
    }

    #[test]
    fn datetime_offsets_past_23_59_are_refused_with_the_range() {
        assert_eq!(
            parse(FieldType::Datetime, "2024-03-05T14:22:10+25:00"),
            Err("\"2024-03-05T14:22:10+25:00\" has a UTC offset out of range; an offset runs from -23:59 to +23:59, minutes 00–59 (+01:00, -05:30)".into())
        );
        assert!(parse(FieldType::Datetime, "2024-03-05T14:22:10-23:59").is_ok());
    }

    #[test]
    fn json_numbers_by_type() {
        assert_eq!(
            from_json_number(FieldType::Datetime, 0.0, Some(0)),
            Ok(Value::Datetime(0))
        );
        assert!(from_json_number(FieldType::Datetime, 1.5, None).is_err());
        assert_eq!(
            from_json_number(FieldType::String, 1.0, Some(1))
                .unwrap_err()
                .to_string(),
            "expected a string, got a number"
        );
    }

    #[test]
    fn canonical_text_parses_back() {
        for v in [
            Value::Number(42.0),
            Value::Number(-3.25),
            Value::Number(0.1),
            Value::Number(1e300),
            Value::Datetime(1_709_648_530_123),
            Value::Date(-3000),
            Value::String("=1+1".into()),
        ] {
            assert_eq!(parse_text(v.field_type(), &v.to_text()).unwrap(), Some(v));
        }
    }
}
