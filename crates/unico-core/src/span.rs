//! Amounts of time written as a whole number and a unit (`90d`, `2w`, `15m`), shared by
//! the filter language and computed fields.

use std::fmt;

use crate::limits::MAX_TIME_AMOUNT;

/// The unit of a duration.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Unit {
    Minute,
    Hour,
    Day,
    Week,
}

impl Unit {
    pub fn letter(self) -> char {
        match self {
            Unit::Minute => 'm',
            Unit::Hour => 'h',
            Unit::Day => 'd',
            Unit::Week => 'w',
        }
    }

    /// The unit of a letter, ignoring ASCII case.
    pub fn from_letter(c: char) -> Option<Unit> {
        match c.to_ascii_lowercase() {
            'm' => Some(Unit::Minute),
            'h' => Some(Unit::Hour),
            'd' => Some(Unit::Day),
            'w' => Some(Unit::Week),
            _ => None,
        }
    }
}

/// An amount of time: `30d`, `2w`, `90m`. The amount is at most
/// [`crate::limits::MAX_TIME_AMOUNT`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Duration {
    pub amount: u32,
    pub unit: Unit,
}

impl fmt::Display for Duration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}{}", self.amount, self.unit.letter())
    }
}

/// Parses a duration such as `90d` (amount then one unit letter, no sign, no fraction).
/// The error says what is wrong, without a location.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    const ACCEPTED: &str = "a duration is a whole number and a unit: m (minutes), h (hours), d (days) or w (weeks), such as 90d";
    let mut chars = text.chars();
    let Some(last) = chars.next_back() else {
        return Err(format!("empty duration; {ACCEPTED}"));
    };
    let digits = chars.as_str();
    let Some(unit) = Unit::from_letter(last) else {
        return Err(format!(
            "\"{}\" is not a duration; {ACCEPTED}",
            crate::value::excerpt(text)
        ));
    };
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!(
            "\"{}\" is not a duration; {ACCEPTED}",
            crate::value::excerpt(text)
        ));
    }
    let amount = digits
        .parse::<u64>()
        .ok()
        .and_then(|n| u32::try_from(n).ok())
        .filter(|n| *n <= MAX_TIME_AMOUNT)
        .ok_or_else(|| {
            format!(
                "the duration \"{}\" is too long; the amount is at most {}",
                crate::value::excerpt(text),
                MAX_TIME_AMOUNT
            )
        })?;
    Ok(Duration { amount, unit })
}
