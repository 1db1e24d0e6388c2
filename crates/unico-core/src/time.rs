//! Instants and calendar dates: how they are parsed, formatted and counted.
//!
//! An instant (`datetime`) is kept as milliseconds since 1970-01-01T00:00:00Z; a calendar
//! date (`date`) as days since 1970-01-01. The common shapes (`YYYY-MM-DD`,
//! `YYYY-MM-DDTHH:MM:SSZ`) are parsed by hand because imports parse millions of them;
//! everything else RFC 3339 allows goes through `jiff`, after a check of the UTC offset
//! (jiff reads offsets up to ±25:59:59; RFC 3339 allows ±23:59).

/// Earliest and latest accepted years: four-digit years only, so every value formats back
/// to the same text.
pub const MIN_YEAR: i32 = 1;
pub const MAX_YEAR: i32 = 9999;

const MS_PER_DAY: i64 = 86_400_000;

/// Why a datetime or date text was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TimeError {
    #[error("has no time zone; add Z or an offset such as +01:00 (2024-03-05T14:22:10Z)")]
    MissingOffset,
    #[error(
        "is not a valid date-time; accepted: an RFC 3339 date-time with Z or an offset (2024-03-05T14:22:10Z, 2024-03-05T15:22:10+01:00) or a date (1987-06-21)"
    )]
    BadDatetime,
    #[error("is not a valid calendar date; accepted: YYYY-MM-DD (1987-06-21)")]
    BadDate,
    #[error("is outside the supported years {MIN_YEAR}–{MAX_YEAR}")]
    OutOfRange,
    #[error(
        "has a UTC offset out of range; an offset runs from -23:59 to +23:59, minutes 00–59 (+01:00, -05:30)"
    )]
    BadOffset,
}

/// Days since 1970-01-01 of a proleptic Gregorian date (month 1–12, day 1–31, unchecked).
pub fn days_from_civil(year: i32, month: u32, day: u32) -> i32 {
    let y = i64::from(if month <= 2 { year - 1 } else { year });
    let era = if y >= 0 { y } else { y - 399 } / 400;
    let year_of_era = y - era * 400;
    let m = i64::from(month);
    let day_of_year = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(day) - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    (era * 146_097 + day_of_era - 719_468) as i32
}

/// The (year, month, day) of a day count since 1970-01-01.
pub fn civil_from_days(days: i32) -> (i32, u32, u32) {
    let z = i64::from(days) + 719_468;
    let era = if z >= 0 { z } else { z - 146_096 } / 146_097;
    let day_of_era = z - era * 146_097;
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let mp = (5 * day_of_year + 2) / 153;
    let day = (day_of_year - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = (year_of_era + era * 400 + i64::from(month <= 2)) as i32;
    (year, month, day)
}

fn is_leap(year: i32) -> bool {
    (year % 4 == 0 && year % 100 != 0) || year % 400 == 0
}

/// Number of days in a month of a year.
pub fn days_in_month(year: i32, month: u32) -> u32 {
    match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if is_leap(year) => 29,
        _ => 28,
    }
}

fn digits(bytes: &[u8]) -> Option<u32> {
    let mut n = 0u32;
    for &b in bytes {
        if !b.is_ascii_digit() {
            return None;
        }
        n = n * 10 + u32::from(b - b'0');
    }
    Some(n)
}

/// Parses exactly `YYYY-MM-DD`, checking the day exists.
fn parse_ymd(bytes: &[u8]) -> Option<Result<i32, TimeError>> {
    if bytes.len() != 10 || bytes[4] != b'-' || bytes[7] != b'-' {
        return None;
    }
    let year = digits(&bytes[0..4])? as i32;
    let month = digits(&bytes[5..7])?;
    let day = digits(&bytes[8..10])?;
    if !(1..=12).contains(&month) || day == 0 || day > days_in_month(year, month) {
        return Some(Err(TimeError::BadDate));
    }
    if year < MIN_YEAR {
        return Some(Err(TimeError::OutOfRange));
    }
    Some(Ok(days_from_civil(year, month, day)))
}

/// Parses a calendar date `YYYY-MM-DD` into days since 1970-01-01.
pub fn parse_date(text: &str) -> Result<i32, TimeError> {
    parse_ymd(text.trim().as_bytes()).unwrap_or(Err(TimeError::BadDate))
}

/// Parses an instant into epoch milliseconds: an RFC 3339 date-time with `Z` or an offset
/// (normalised to UTC, sub-millisecond digits truncated; the offset at most ±23:59), or a
/// date alone (midnight UTC).
pub fn parse_datetime(text: &str) -> Result<i64, TimeError> {
    let text = text.trim();
    let bytes = text.as_bytes();
    if let Some(days) = parse_ymd(bytes) {
        return days.map(|d| i64::from(d) * MS_PER_DAY);
    }
    // Fast path: YYYY-MM-DDTHH:MM:SSZ.
    if bytes.len() == 20
        && bytes[10] == b'T'
        && bytes[13] == b':'
        && bytes[16] == b':'
        && bytes[19] == b'Z'
        && let (Some(Ok(days)), Some(h), Some(m), Some(s)) = (
            parse_ymd(&bytes[..10]),
            digits(&bytes[11..13]),
            digits(&bytes[14..16]),
            digits(&bytes[17..19]),
        )
        && h < 24
        && m < 60
        && s < 60
    {
        return Ok(i64::from(days) * MS_PER_DAY + i64::from(h * 3600 + m * 60 + s) * 1000);
    }
    let offset = numeric_offset(text);
    match text.parse::<jiff::Timestamp>() {
        Ok(ts) => {
            if offset.is_some_and(|(_, offset)| !offset.is_valid()) {
                return Err(TimeError::BadOffset);
            }
            let ms = ts.as_millisecond();
            check_ms_range(ms)?;
            Ok(ms)
        }
        Err(_) => match offset {
            // A valid date-time followed by an offset out of range (`+05:60`, `+26:00`):
            // say that the offset is what is wrong.
            Some((date_time, offset))
                if !offset.is_valid() && date_time.parse::<jiff::civil::DateTime>().is_ok() =>
            {
                Err(TimeError::BadOffset)
            }
            _ if text.parse::<jiff::civil::DateTime>().is_ok() => Err(TimeError::MissingOffset),
            _ => Err(TimeError::BadDatetime),
        },
    }
}

/// The largest UTC offset RFC 3339 allows, ±23:59, in seconds.
const MAX_OFFSET_SECONDS: u32 = 23 * 3600 + 59 * 60;

/// The digits of a numeric UTC offset as written (`+05:30` is 5 h 30 min), before any range
/// check: jiff refuses some out-of-range offsets and accepts others, so they are read here.
#[derive(Debug, Clone, Copy)]
struct OffsetParts {
    hours: u32,
    minutes: u32,
    seconds: u32,
}

impl OffsetParts {
    fn is_valid(self) -> bool {
        self.minutes <= 59
            && self.seconds <= 59
            && self.hours * 3600 + self.minutes * 60 + self.seconds <= MAX_OFFSET_SECONDS
    }
}

/// Finds the numeric offset of a date-time text (`±HH`, `±HHMM`, `±HH:MM`, `±HH:MM:SS`,
/// optionally followed by an `[annotation]`) and returns the text before its sign with the
/// offset's parts. `None` when there is no time separator or no sign after it, or the sign is
/// not followed by two digits; the caller decides whether the rest is a date-time at all.
fn numeric_offset(text: &str) -> Option<(&str, OffsetParts)> {
    let bytes = text.as_bytes();
    let end = bytes.iter().position(|&b| b == b'[').unwrap_or(bytes.len());
    // The date holds no T, t or space, and the time holds no sign: the first sign after the
    // separator starts the offset.
    let separator = bytes[..end]
        .iter()
        .position(|&b| matches!(b, b'T' | b't' | b' '))?;
    let sign = separator
        + bytes[separator..end]
            .iter()
            .position(|&b| matches!(b, b'+' | b'-'))?;
    let mut rest = &bytes[sign + 1..end];
    let mut two_digits = |optional_colon: bool| -> Option<u32> {
        if optional_colon && rest.first() == Some(&b':') {
            rest = &rest[1..];
        }
        let value = digits(rest.get(..2)?)?;
        rest = &rest[2..];
        Some(value)
    };
    let hours = two_digits(false)?;
    let minutes = two_digits(true);
    let seconds = minutes.and_then(|_| two_digits(true));
    Some((
        &text[..sign],
        OffsetParts {
            hours,
            minutes: minutes.unwrap_or(0),
            seconds: seconds.unwrap_or(0),
        },
    ))
}

/// Checks epoch milliseconds fall in the supported years.
pub fn check_ms_range(ms: i64) -> Result<(), TimeError> {
    let min = i64::from(days_from_civil(MIN_YEAR, 1, 1)) * MS_PER_DAY;
    // jiff's last instant (9999-12-30T22:00Z) ends the range so every accepted value
    // also parses back from its text.
    let max = jiff::Timestamp::MAX.as_millisecond();
    if (min..=max).contains(&ms) {
        Ok(())
    } else {
        Err(TimeError::OutOfRange)
    }
}

/// Formats epoch milliseconds as RFC 3339 UTC with milliseconds: `2024-03-05T14:22:10.000Z`.
pub fn format_datetime(ms: i64) -> String {
    let days = ms.div_euclid(MS_PER_DAY) as i32;
    let in_day = ms.rem_euclid(MS_PER_DAY);
    let (y, mo, d) = civil_from_days(days);
    let (h, rest) = (in_day / 3_600_000, in_day % 3_600_000);
    let (mi, rest) = (rest / 60_000, rest % 60_000);
    let (s, milli) = (rest / 1000, rest % 1000);
    format!("{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{s:02}.{milli:03}Z")
}

/// Formats a day count as `YYYY-MM-DD`.
pub fn format_date(days: i32) -> String {
    let (y, m, d) = civil_from_days(days);
    format!("{y:04}-{m:02}-{d:02}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn civil_round_trip_over_the_supported_range() {
        for days in (days_from_civil(1, 1, 1)..=days_from_civil(9999, 12, 31)).step_by(97) {
            let (y, m, d) = civil_from_days(days);
            assert_eq!(days_from_civil(y, m, d), days);
        }
        assert_eq!(days_from_civil(1970, 1, 1), 0);
        assert_eq!(days_from_civil(2000, 3, 1), 11_017);
    }

    #[test]
    fn datetimes_normalise_to_utc() {
        let z = parse_datetime("2024-03-05T14:22:10Z").unwrap();
        assert_eq!(parse_datetime("2024-03-05T15:22:10+01:00").unwrap(), z);
        assert_eq!(format_datetime(z), "2024-03-05T14:22:10.000Z");
        assert_eq!(
            format_datetime(parse_datetime("2024-03-05T14:22:10.123456Z").unwrap()),
            "2024-03-05T14:22:10.123Z"
        );
        assert_eq!(
            format_datetime(parse_datetime("1987-06-21").unwrap()),
            "1987-06-21T00:00:00.000Z"
        );
        assert_eq!(
            format_datetime(parse_datetime("1969-12-31T23:59:59.999Z").unwrap()),
            "1969-12-31T23:59:59.999Z"
        );
    }

    #[test]
    fn datetimes_without_offset_or_garbage_are_refused() {
        assert_eq!(
            parse_datetime("2024-03-05T14:22:10"),
            Err(TimeError::MissingOffset)
        );
        assert_eq!(parse_datetime("yesterday"), Err(TimeError::BadDatetime));
        assert_eq!(parse_datetime("2024-02-30"), Err(TimeError::BadDate));
        assert_eq!(
            parse_datetime("2024-03-05T25:00:00Z"),
            Err(TimeError::BadDatetime)
        );
        assert_eq!(parse_datetime("2024"), Err(TimeError::BadDatetime));
    }

    /// Regression: jiff reads offsets up to ±25:59:59, so `+25:00` was stored as 23:00Z the
    /// day before. A UTC offset is at most ±23:59 (RFC 3339), minutes at most 59.
    #[test]
    fn utc_offsets_beyond_23_59_are_refused() {
        let at = |offset: &str| parse_datetime(&format!("2024-03-05T14:22:10{offset}"));
        assert_eq!(
            format_datetime(at("+23:59").unwrap()),
            "2024-03-04T14:23:10.000Z"
        );
        assert_eq!(
            format_datetime(at("-23:59").unwrap()),
            "2024-03-06T14:21:10.000Z"
        );
        assert_eq!(
            format_datetime(at("+05:30").unwrap()),
            "2024-03-05T08:52:10.000Z"
        );
        assert_eq!(
            format_datetime(at("-00:00").unwrap()),
            "2024-03-05T14:22:10.000Z"
        );
        for bad in [
            "+24:00",
            "-24:00",
            "+25:00",
            "-25:59",
            "+05:60",
            "-05:99",
            "+2400",
            "+25",
            "+23:59:01",
            "+99:00",
        ] {
            assert_eq!(at(bad), Err(TimeError::BadOffset), "{bad}");
        }
        assert_eq!(
            TimeError::BadOffset.to_string(),
            "has a UTC offset out of range; an offset runs from -23:59 to +23:59, minutes 00–59 (+01:00, -05:30)"
        );
        // The date-only and fast paths carry no offset and are unaffected.
        assert!(parse_datetime("2024-03-05").is_ok());
        assert!(parse_datetime("2024-03-05T14:22:10Z").is_ok());
    }

    #[test]
    fn every_accepted_instant_parses_back_from_its_text() {
        let last = jiff::Timestamp::MAX.as_millisecond();
        assert_eq!(check_ms_range(last), Ok(()));
        assert_eq!(parse_datetime(&format_datetime(last)), Ok(last));
        assert_eq!(check_ms_range(last + 1), Err(TimeError::OutOfRange));
        let first = i64::from(days_from_civil(MIN_YEAR, 1, 1)) * MS_PER_DAY;
        assert_eq!(parse_datetime(&format_datetime(first)), Ok(first));
        assert_eq!(check_ms_range(first - 1), Err(TimeError::OutOfRange));
    }

    #[test]
    fn dates_are_strict() {
        assert_eq!(format_date(parse_date("2024-02-29").unwrap()), "2024-02-29");
        assert_eq!(parse_date("2023-02-29"), Err(TimeError::BadDate));
        assert_eq!(parse_date("2023-2-1"), Err(TimeError::BadDate));
        assert_eq!(parse_date("0000-01-01"), Err(TimeError::OutOfRange));
        assert_eq!(parse_date("2024-03-05T00:00:00Z"), Err(TimeError::BadDate));
    }
}
