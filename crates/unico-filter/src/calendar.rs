//! The time arithmetic of filters, in one place: "now" and "today" in the application's
//! time zone, relative times, the calendar date of an instant, `on` day ranges and
//! anniversary windows.
//!
//! Both the reference evaluator ([`crate::eval`]) and the resolved form
//! ([`mod@crate::resolve`], what a columnar engine consumes) call these functions, so they
//! cannot disagree on an edge (a DST change at midnight, a 29 February).
//!
//! Conventions: instants are epoch milliseconds (UTC), dates are days since 1970-01-01,
//! durations are exact (`1d` = 86 400 000 ms for datetimes), except on `date` values where
//! `d` and `w` count calendar days from today.

use jiff::Timestamp;
use jiff::tz::TimeZone;
use unico_core::Value;
use unico_core::time::{civil_from_days, days_in_month};

use crate::ast::{Direction, Duration, Relative, Unit};
use crate::filter::Bound;

pub const MS_PER_MINUTE: i64 = 60_000;
pub const MS_PER_HOUR: i64 = 60 * MS_PER_MINUTE;
pub const MS_PER_DAY: i64 = 24 * MS_PER_HOUR;
pub const MS_PER_WEEK: i64 = 7 * MS_PER_DAY;

/// What a filter is evaluated against: the current instant and the application's time
/// zone ("today", and the calendar date of a datetime, are read in it).
#[derive(Debug, Clone)]
pub struct EvalContext {
    pub now_ms: i64,
    pub tz: TimeZone,
}

impl EvalContext {
    pub fn new(now_ms: i64, tz: TimeZone) -> Self {
        Self { now_ms, tz }
    }

    /// Today's date in the application's time zone.
    pub fn today(&self) -> i32 {
        local_day(self.now_ms, &self.tz)
    }
}

/// The length of a duration in milliseconds.
pub fn duration_ms(d: Duration) -> i64 {
    let unit = match d.unit {
        Unit::Minute => MS_PER_MINUTE,
        Unit::Hour => MS_PER_HOUR,
        Unit::Day => MS_PER_DAY,
        Unit::Week => MS_PER_WEEK,
    };
    i64::from(d.amount) * unit
}

/// The length of a duration in whole calendar days; `None` for minutes and hours.
pub fn duration_days(d: Duration) -> Option<i32> {
    // Amounts are at most MAX_TIME_AMOUNT (10^6), so weeks fit an i32 comfortably.
    let amount = i32::try_from(d.amount).ok()?;
    match d.unit {
        Unit::Day => Some(amount),
        Unit::Week => amount.checked_mul(7),
        Unit::Minute | Unit::Hour => None,
    }
}

fn timestamp(ms: i64) -> Timestamp {
    Timestamp::from_millisecond(ms).unwrap_or(if ms < 0 {
        Timestamp::MIN
    } else {
        Timestamp::MAX
    })
}

/// The UTC offset of `tz` at instant `ms`, in milliseconds. Instants outside jiff's range
/// take the offset at the nearest end of it.
pub fn offset_ms(ms: i64, tz: &TimeZone) -> i64 {
    i64::from(tz.to_offset(timestamp(ms)).seconds()) * 1000
}

/// The calendar date (days since 1970-01-01) of instant `ms` on a wall clock in `tz`.
pub fn local_day(ms: i64, tz: &TimeZone) -> i32 {
    let local = ms.saturating_add(offset_ms(ms, tz));
    clamp_day(local.div_euclid(MS_PER_DAY))
}

fn clamp_day(days: i64) -> i32 {
    i32::try_from(days).unwrap_or(if days < 0 { i32::MIN } else { i32::MAX })
}

/// The instant of a relative time: now minus (`ago`) or plus (`from now`) the duration.
pub fn relative_ms(r: Relative, now_ms: i64) -> i64 {
    let d = duration_ms(r.duration);
    match r.direction {
        Direction::Ago => now_ms.saturating_sub(d),
        Direction::FromNow => now_ms.saturating_add(d),
    }
}

/// The date of a relative time: today minus or plus the days (`d`, `w`). Minutes and hours
/// (which the checker refuses on date fields) give the local date of [`relative_ms`].
pub fn relative_day(r: Relative, ctx: &EvalContext) -> i32 {
    match duration_days(r.duration) {
        Some(days) => {
            let today = ctx.today();
            match r.direction {
                Direction::Ago => today.saturating_sub(days),
                Direction::FromNow => today.saturating_add(days),
            }
        }
        None => local_day(relative_ms(r, ctx.now_ms), &ctx.tz),
    }
}

/// A bound as an instant, for datetime targets. `None` if the bound is not a time.
pub fn bound_ms(b: &Bound, ctx: &EvalContext) -> Option<i64> {
    match b {
        Bound::Value(Value::Datetime(ms)) => Some(*ms),
        Bound::Relative(r) => Some(relative_ms(*r, ctx.now_ms)),
        Bound::Value(_) => None,
    }
}

/// A bound as a date, for date targets. `None` if the bound is not a time.
pub fn bound_day(b: &Bound, ctx: &EvalContext) -> Option<i32> {
    match b {
        Bound::Value(Value::Date(day)) => Some(*day),
        Bound::Relative(r) => Some(relative_day(*r, ctx)),
        Bound::Value(_) => None,
    }
}

/// `within_last d` on instants: the inclusive range `[now − d, now]`.
pub fn within_last_ms(d: Duration, ctx: &EvalContext) -> (i64, i64) {
    (ctx.now_ms.saturating_sub(duration_ms(d)), ctx.now_ms)
}

/// `within_last d` on dates: the inclusive range `[today − d, today]` (minutes and hours,
/// refused by the checker, count as the local date of `now − d`).
pub fn within_last_days(d: Duration, ctx: &EvalContext) -> (i32, i32) {
    let from = relative_day(
        Relative {
            duration: d,
            direction: Direction::Ago,
        },
        ctx,
    );
    (from, ctx.today())
}

fn is_leap(year: i32) -> bool {
    days_in_month(year, 2) == 29
}

/// Whether a date's anniversary falls in today … today + `within_days`: its month and day
/// equal one of those days', where 29 February counts as 28 February in years without one.
/// Obviously correct, day by day; [`anniversary_month_days`] is the set form.
pub fn anniversary_matches(value_day: i32, today: i32, within_days: u32) -> bool {
    let (_, vm, vd) = civil_from_days(value_day);
    (0..=i64::from(within_days)).any(|k| {
        let day = clamp_day(i64::from(today) + k);
        let (y, m, d) = civil_from_days(day);
        (vm, vd) == (m, d) || ((vm, vd) == (2, 29) && (m, d) == (2, 28) && !is_leap(y))
    })
}

/// The (month, day) pairs whose anniversary falls in today … today + `within_days`,
/// sorted: every day of the window, plus 29 February when the window holds 28 February of
/// a year without a 29th.
pub fn anniversary_month_days(today: i32, within_days: u32) -> Vec<(u32, u32)> {
    let mut out = Vec::new();
    for k in 0..=i64::from(within_days) {
        let (y, m, d) = civil_from_days(clamp_day(i64::from(today) + k));
        out.push((m, d));
        if (m, d) == (2, 28) && !is_leap(y) {
            out.push((2, 29));
        }
    }
    out.sort_unstable();
    out.dedup();
    out
}

/// The month and day of a date.
pub fn month_day(day: i32) -> (u32, u32) {
    let (_, m, d) = civil_from_days(day);
    (m, d)
}

/// The instants whose calendar date in `tz` is `day`, as sorted, disjoint, inclusive
/// millisecond ranges. Usually one range of 24 hours (23 or 25 on a DST change); empty for
/// a day a zone skipped (Pacific/Apia, 2011-12-30); two ranges when a zone turned its
/// clocks back across midnight. Exactly `{ms | local_day(ms, tz) == day}`.
pub fn local_day_ranges(day: i32, tz: &TimeZone) -> Vec<(i64, i64)> {
    let day_start = i64::from(day) * MS_PER_DAY;
    // Offsets stay within ±26 hours, so every instant of the day lies in this window.
    let window_start = day_start - 2 * MS_PER_DAY;
    let window_end = day_start + 3 * MS_PER_DAY;
    let mut starts = vec![window_start];
    for transition in tz.following(timestamp(window_start)) {
        let at = transition.timestamp().as_millisecond();
        if at >= window_end {
            break;
        }
        if at > window_start {
            starts.push(at);
        }
    }
    let mut ranges: Vec<(i64, i64)> = Vec::new();
    for (i, &start) in starts.iter().enumerate() {
        let end = starts.get(i + 1).copied().unwrap_or(window_end);
        let offset = offset_ms(start, tz);
        // Within this stretch the offset is constant, so the local date is `day` exactly
        // on [day_start − offset, day_start + 1 day − offset).
        let from = (day_start - offset).max(start);
        let until = (day_start + MS_PER_DAY - offset).min(end);
        if from < until {
            match ranges.last_mut() {
                Some(last) if last.1 == from => last.1 = until,
                _ => ranges.push((from, until)),
            }
        }
    }
    ranges.into_iter().map(|(a, b)| (a, b - 1)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use unico_core::time::days_from_civil;

    fn day(y: i32, m: u32, d: u32) -> i32 {
        days_from_civil(y, m, d)
    }

    fn tz(name: &str) -> TimeZone {
        TimeZone::get(name).expect("zone in the bundled database")
    }

    /// Checks `local_day_ranges` against `local_day` on every quarter hour of a window and
    /// one millisecond either side of every range end.
    fn assert_ranges_exact(zone: &str, y: i32, m: u32, d: u32) {
        let tz = tz(zone);
        let target = day(y, m, d);
        let ranges = local_day_ranges(target, &tz);
        let inside = |ms: i64| ranges.iter().any(|&(a, b)| a <= ms && ms <= b);
        let start = i64::from(target) * MS_PER_DAY - 2 * MS_PER_DAY;
        let mut probes: Vec<i64> = (0..5 * 96)
            .map(|i| start + i * 15 * MS_PER_MINUTE)
            .collect();
        for &(a, b) in &ranges {
            probes.extend([a - 1, a, a + 1, b - 1, b, b + 1]);
        }
        for ms in probes {
            assert_eq!(
                local_day(ms, &tz) == target,
                inside(ms),
                "{zone} {y}-{m}-{d} at {ms} ({})",
                unico_core::time::format_datetime(ms)
            );
        }
    }

    #[test]
    fn local_day_ranges_match_local_day_across_dst_and_skipped_days() {
        assert_ranges_exact("UTC", 2024, 5, 1);
        assert_ranges_exact("Europe/Madrid", 2024, 3, 31); // 23-hour day
        assert_ranges_exact("Europe/Madrid", 2024, 10, 27); // 25-hour day
        assert_ranges_exact("America/Sao_Paulo", 2018, 11, 4); // DST began at midnight
        assert_ranges_exact("America/Sao_Paulo", 2019, 2, 16); // clocks back at midnight
        assert_ranges_exact("America/Sao_Paulo", 2019, 2, 17);
        assert_ranges_exact("Asia/Kathmandu", 2024, 1, 1); // +05:45
        assert_ranges_exact("Australia/Lord_Howe", 2024, 4, 7); // 30-minute DST
        assert_ranges_exact("Pacific/Apia", 2011, 12, 29);
        assert_ranges_exact("Pacific/Apia", 2011, 12, 31);
        assert_ranges_exact("Pacific/Kiritimati", 2024, 6, 1); // +14:00
        assert_ranges_exact("Pacific/Pago_Pago", 2024, 6, 1); // −11:00
        assert_ranges_exact("Europe/Madrid", 9999, 12, 31);
        assert_ranges_exact("Europe/Madrid", 1, 1, 1);
    }

    #[test]
    fn a_skipped_day_has_no_instants_and_long_days_are_25_hours() {
        assert!(local_day_ranges(day(2011, 12, 30), &tz("Pacific/Apia")).is_empty());
        let fall = local_day_ranges(day(2024, 10, 27), &tz("Europe/Madrid"));
        assert_eq!(fall.len(), 1);
        assert_eq!(fall[0].1 - fall[0].0 + 1, 25 * MS_PER_HOUR);
        let spring = local_day_ranges(day(2018, 11, 4), &tz("America/Sao_Paulo"));
        assert_eq!(spring[0].1 - spring[0].0 + 1, 23 * MS_PER_HOUR);
    }

    #[test]
    fn today_is_read_in_the_application_time_zone() {
        // 2024-05-01T23:30:00Z is already 2 May in Madrid (+02:00) and still 1 May in New York.
        let now = unico_core::time::parse_datetime("2024-05-01T23:30:00Z").unwrap_or(0);
        assert_eq!(
            EvalContext::new(now, tz("Europe/Madrid")).today(),
            day(2024, 5, 2)
        );
        assert_eq!(
            EvalContext::new(now, tz("America/New_York")).today(),
            day(2024, 5, 1)
        );
        assert_eq!(
            EvalContext::new(now, TimeZone::UTC).today(),
            day(2024, 5, 1)
        );
    }

    #[test]
    fn relative_days_on_dates_count_calendar_days_from_local_today() {
        let now = unico_core::time::parse_datetime("2024-03-01T00:30:00Z").unwrap_or(0);
        let ctx = EvalContext::new(now, tz("America/New_York")); // still 29 February there
        let ago = |amount, unit| Relative {
            duration: Duration { amount, unit },
            direction: Direction::Ago,
        };
        assert_eq!(relative_day(ago(1, Unit::Day), &ctx), day(2024, 2, 28));
        assert_eq!(relative_day(ago(1, Unit::Week), &ctx), day(2024, 2, 22));
        assert_eq!(relative_ms(ago(1, Unit::Hour), now), now - MS_PER_HOUR);
    }

    #[test]
    fn leap_day_anniversaries_fall_on_28_february_in_common_years() {
        let born = day(2000, 2, 29);
        assert!(anniversary_matches(born, day(2023, 2, 28), 0));
        assert!(!anniversary_matches(born, day(2023, 3, 1), 0));
        assert!(anniversary_matches(born, day(2024, 2, 29), 0));
        assert!(
            !anniversary_matches(born, day(2024, 2, 28), 0),
            "2024 has its own 29th"
        );
        assert!(anniversary_matches(born, day(2024, 2, 27), 2));
        assert!(!anniversary_matches(day(2000, 2, 28), day(2024, 2, 29), 0));
        assert_eq!(
            anniversary_month_days(day(2023, 2, 28), 0),
            vec![(2, 28), (2, 29)]
        );
        assert_eq!(
            anniversary_month_days(day(2024, 2, 28), 1),
            vec![(2, 28), (2, 29)]
        );
        assert_eq!(
            anniversary_month_days(day(2024, 12, 30), 3),
            vec![(1, 1), (1, 2), (12, 30), (12, 31)]
        );
    }

    const ZONES: [&str; 8] = [
        "UTC",
        "Europe/Madrid",
        "America/Sao_Paulo",
        "America/New_York",
        "Asia/Kathmandu",
        "Australia/Lord_Howe",
        "Pacific/Apia",
        "America/Havana",
    ];

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig { cases: 1000, ..Default::default() })]

        /// `local_day_ranges` is exactly the set where `local_day` gives the day: probed at
        /// every range end and every zone transition near the day, ±1 ms, and at random.
        #[test]
        fn local_day_ranges_are_exact(
            zone in proptest::sample::select(&ZONES[..]),
            target in day(2008, 1, 1)..day(2026, 1, 1),
            random in proptest::collection::vec(0..5 * MS_PER_DAY, 8),
        ) {
            let tz = tz(zone);
            let ranges = local_day_ranges(target, &tz);
            let start = i64::from(target) * MS_PER_DAY - 2 * MS_PER_DAY;
            let mut probes: Vec<i64> = random.iter().map(|r| start + r).collect();
            for &(a, b) in &ranges {
                probes.extend([a - 1, a, b, b + 1]);
            }
            for t in tz.following(timestamp(start)).take(4) {
                let at = t.timestamp().as_millisecond();
                probes.extend([at - 1, at, at + 1]);
            }
            for ms in probes {
                let inside = ranges.iter().any(|&(a, b)| a <= ms && ms <= b);
                proptest::prop_assert_eq!(local_day(ms, &tz) == target, inside, "{} at {}", zone, ms);
            }
        }
    }
}
