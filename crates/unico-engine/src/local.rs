//! Calendar dates in the application's time zone: the (month, day) code that every
//! datetime and date row keeps for `anniversary`, computed with the same arithmetic as
//! the reference evaluator ([`unico_filter::calendar::local_day`]).
//!
//! A month-day code is `month * 32 + day` (33 ..= 415), so a set of them fits in a
//! 448-bit mask and a row's test is one shift.

use jiff::tz::TimeZone;
use unico_filter::calendar::{MS_PER_DAY, local_day, month_day};

/// A set of month-day codes.
pub(crate) type MonthDayMask = [u64; 7];

/// The month-day code of a date.
pub(crate) fn md_code(day: i32) -> u16 {
    let (m, d) = month_day(day);
    (m * 32 + d) as u16
}

/// The mask of (month, day) pairs.
pub(crate) fn md_mask(pairs: &[(u32, u32)]) -> MonthDayMask {
    let mut mask = [0u64; 7];
    for &(m, d) in pairs {
        let code = (m * 32 + d) as usize;
        if let Some(w) = mask.get_mut(code / 64) {
            *w |= 1 << (code % 64);
        }
    }
    mask
}

/// Whether `code` is in `mask`.
#[inline]
pub(crate) fn md_in(mask: &MonthDayMask, code: u16) -> bool {
    let code = usize::from(code);
    mask.get(code / 64)
        .is_some_and(|w| (w >> (code % 64)) & 1 == 1)
}

/// The local calendar date of instants in one zone, with a shortcut for fixed-offset
/// zones (UTC above all), where no transition lookup is needed.
#[derive(Debug, Clone)]
pub(crate) struct LocalDays {
    tz: TimeZone,
    fixed_offset_ms: Option<i64>,
}

impl LocalDays {
    pub(crate) fn new(tz: TimeZone) -> Self {
        let fixed_offset_ms = tz
            .to_fixed_offset()
            .ok()
            .map(|o| i64::from(o.seconds()) * 1000);
        Self {
            tz,
            fixed_offset_ms,
        }
    }

    pub(crate) fn tz(&self) -> &TimeZone {
        &self.tz
    }

    /// Exactly [`local_day`]`(ms, tz)`.
    pub(crate) fn day(&self, ms: i64) -> i32 {
        match self.fixed_offset_ms {
            Some(offset) => {
                let days = ms.saturating_add(offset).div_euclid(MS_PER_DAY);
                i32::try_from(days).unwrap_or(if days < 0 { i32::MIN } else { i32::MAX })
            }
            None => local_day(ms, &self.tz),
        }
    }

    /// The month-day code of instant `ms`'s local date.
    pub(crate) fn md(&self, ms: i64) -> u16 {
        md_code(self.day(ms))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fixed_offsets_agree_with_the_reference() {
        for zone in ["UTC", "Etc/GMT+5", "Europe/Madrid", "Asia/Kathmandu"] {
            let tz = TimeZone::get(zone).unwrap();
            let days = LocalDays::new(tz.clone());
            for ms in [
                -62_135_596_800_000,
                -1,
                0,
                1_709_164_800_000,
                253_402_300_799_999,
            ] {
                assert_eq!(days.day(ms), local_day(ms, &tz), "{zone} {ms}");
            }
        }
    }

    #[test]
    fn month_day_masks_hold_their_pairs() {
        let mask = md_mask(&[(2, 29), (12, 31)]);
        assert!(md_in(&mask, (2 * 32 + 29) as u16));
        assert!(md_in(&mask, (12 * 32 + 31) as u16));
        assert!(!md_in(&mask, (2 * 32 + 28) as u16));
        assert!(!md_in(&mask, u16::MAX));
    }
}
