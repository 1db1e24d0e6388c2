//! Typed columns: one value slot per row, and a presence bitmap saying which rows hold a
//! value.
//!
//! | type | per row | beside it |
//! | --- | --- | --- |
//! | string | dictionary code, `u8`/`u16`/`u32` as narrow as the dictionary allows | the [`Dict`] of distinct values |
//! | number | fixed-point `i8`/`i16`/`i32` while every value is one exactly, else `f64` ([`Nums`]) | |
//! | datetime | `i64` epoch ms | `u16` month-day code of the local date (app time zone) |
//! | date | `i32` days since 1970-01-01 | `u16` month-day code |
//!
//! *Invariants*: every vector holds exactly the index's row capacity (a multiple of
//! [`crate::eval::BLOCK_ROWS`]), so a scan reads whole 64-row chunks; a row's slot is
//! meaningful only where `present` is set (a cleared row keeps stale bytes); `count` is
//! the number of set bits of `present`; a string row holds one reference to its code.

use unico_core::{FieldType, Value};

use crate::bits::Bits;
use crate::dict::Dict;
use crate::local::LocalDays;
use crate::num::Nums;

/// The dictionary codes of a string column, one per row, in the narrowest width that
/// holds every code of the dictionary (a column of 30 countries scans 1 byte per row).
/// *Invariant*: every code of the dictionary fits the width.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Codes {
    U8(Vec<u8>),
    U16(Vec<u16>),
    U32(Vec<u32>),
}

impl Codes {
    /// `rows` zero codes in the width that fits `codes` distinct codes.
    pub(crate) fn zeros(rows: usize, codes: usize) -> Self {
        if codes <= 1 << 8 {
            Codes::U8(vec![0; rows])
        } else if codes <= 1 << 16 {
            Codes::U16(vec![0; rows])
        } else {
            Codes::U32(vec![0; rows])
        }
    }

    /// The code of row `row`, if it is below the capacity.
    #[inline]
    pub(crate) fn get(&self, row: usize) -> Option<u32> {
        match self {
            Codes::U8(v) => v.get(row).map(|&c| u32::from(c)),
            Codes::U16(v) => v.get(row).map(|&c| u32::from(c)),
            Codes::U32(v) => v.get(row).copied(),
        }
    }

    /// Bytes per code.
    pub(crate) fn width(&self) -> usize {
        match self {
            Codes::U8(_) => 1,
            Codes::U16(_) => 2,
            Codes::U32(_) => 4,
        }
    }

    /// Rows of capacity.
    pub(crate) fn len(&self) -> usize {
        match self {
            Codes::U8(v) => v.len(),
            Codes::U16(v) => v.len(),
            Codes::U32(v) => v.len(),
        }
    }

    /// Sets row `row` (below the capacity) to `code`, widening every row first if the
    /// code does not fit. Never narrows: a small code written into a wide column keeps
    /// every other row's code whole.
    pub(crate) fn set(&mut self, row: usize, code: u32) {
        let fits = match self {
            Codes::U8(_) => code <= u32::from(u8::MAX),
            Codes::U16(_) => code <= u32::from(u16::MAX),
            Codes::U32(_) => true,
        };
        if !fits {
            self.widen(code as usize + 1);
        }
        match self {
            Codes::U8(v) => v.get_mut(row).map(|s| *s = code as u8),
            Codes::U16(v) => v.get_mut(row).map(|s| *s = code as u16),
            Codes::U32(v) => v.get_mut(row).map(|s| *s = code),
        };
    }

    /// Re-encodes every row in the width that fits `codes` codes, if that is wider than
    /// the current one; never narrower (narrowing is compaction's job, which knows every
    /// code fits).
    pub(crate) fn widen(&mut self, codes: usize) {
        if Codes::zeros(0, codes).width() <= self.width() {
            return;
        }
        let n = self.len();
        let mut fresh = Codes::zeros(n, codes);
        for row in 0..n {
            let c = self.get(row).unwrap_or(0);
            match &mut fresh {
                Codes::U8(v) => v[row] = c as u8,
                Codes::U16(v) => v[row] = c as u16,
                Codes::U32(v) => v[row] = c,
            }
        }
        *self = fresh;
    }

    fn resize(&mut self, rows: usize) {
        match self {
            Codes::U8(v) => v.resize(rows.max(v.len()), 0),
            Codes::U16(v) => v.resize(rows.max(v.len()), 0),
            Codes::U32(v) => v.resize(rows.max(v.len()), 0),
        }
    }

    pub(crate) fn heap_bytes(&self) -> usize {
        match self {
            Codes::U8(v) => v.capacity(),
            Codes::U16(v) => v.capacity() * 2,
            Codes::U32(v) => v.capacity() * 4,
        }
    }
}

/// The typed storage of a column.
#[derive(Debug, Clone)]
pub(crate) enum Data {
    Str { codes: Codes, dict: Dict },
    Num(Nums),
    Datetime { ms: Vec<i64>, md: Vec<u16> },
    Date { days: Vec<i32>, md: Vec<u16> },
}

/// One column: a field of the schema, or a built-in attribute.
#[derive(Debug, Clone)]
pub(crate) struct Column {
    pub(crate) ty: FieldType,
    pub(crate) present: Bits,
    pub(crate) count: u64,
    pub(crate) data: Data,
}

impl Column {
    /// An empty column of `ty` with room for `rows` rows.
    pub(crate) fn new(ty: FieldType, rows: usize) -> Self {
        let data = match ty {
            FieldType::String => Data::Str {
                codes: Codes::zeros(rows, 0),
                dict: Dict::default(),
            },
            FieldType::Number => Data::Num(Nums::new(rows)),
            FieldType::Datetime => Data::Datetime {
                ms: vec![0; rows],
                md: vec![0; rows],
            },
            FieldType::Date => Data::Date {
                days: vec![0; rows],
                md: vec![0; rows],
            },
        };
        Self {
            ty,
            present: Bits::with_rows(rows),
            count: 0,
            data,
        }
    }

    /// Grows to `rows` rows of capacity.
    pub(crate) fn grow(&mut self, rows: usize) {
        self.present.grow(rows);
        match &mut self.data {
            Data::Str { codes, .. } => codes.resize(rows),
            Data::Num(v) => v.resize(rows),
            Data::Datetime { ms, md } => {
                ms.resize(rows.max(ms.len()), 0);
                md.resize(rows.max(md.len()), 0);
            }
            Data::Date { days, md } => {
                days.resize(rows.max(days.len()), 0);
                md.resize(rows.max(md.len()), 0);
            }
        }
    }

    fn mark(&mut self, row: usize, on: bool) {
        let was = self.present.get(row);
        if was != on {
            self.present.assign(row, on);
            if on {
                self.count += 1;
            } else {
                self.count -= 1;
            }
        }
    }

    /// Sets a string column's row `row` to `text` (nothing happens on another type).
    pub(crate) fn set_text(&mut self, row: usize, text: &str) {
        let was = self.present.get(row);
        if let Data::Str { codes, dict } = &mut self.data {
            let Some(code) = dict.intern(text) else {
                return;
            };
            if was && let Some(old) = codes.get(row) {
                dict.release(old);
            }
            codes.set(row, code);
            self.mark(row, true);
        }
    }

    /// Sets row `row` to `value`, or clears it on `None` or on a value of another type
    /// (which the reference evaluator also reads as absent). `row` is below capacity.
    pub(crate) fn set(&mut self, row: usize, value: Option<&Value>, local: &LocalDays) {
        let was = self.present.get(row);
        let on = match (&mut self.data, value) {
            (Data::Str { .. }, Some(Value::String(s))) => {
                // A full dictionary (4 billion values) keeps the old value rather than
                // corrupting a code; unreachable in practice.
                self.set_text(row, s);
                return;
            }
            (Data::Num(v), Some(Value::Number(n))) => {
                v.set(row, *n, &self.present);
                true
            }
            (Data::Datetime { ms, md }, Some(Value::Datetime(t))) => {
                ms[row] = *t;
                md[row] = local.md(*t);
                true
            }
            (Data::Date { days, md }, Some(Value::Date(d))) => {
                days[row] = *d;
                md[row] = crate::local::md_code(*d);
                true
            }
            (Data::Str { codes, dict }, _) => {
                if was && let Some(old) = codes.get(row) {
                    dict.release(old);
                }
                false
            }
            _ => false,
        };
        self.mark(row, on);
    }

    /// Clears row `row` and leaves nothing of its value behind: the stale bytes a cleared
    /// row usually keeps are zeroed, and every string no row holds is overwritten in the
    /// dictionary (see [`Dict::scrub_dead`]): the row's value if no other row holds it,
    /// and values the row held before an update, still kept as dead codes. For erasing a
    /// customer.
    pub(crate) fn erase(&mut self, row: usize, local: &LocalDays) {
        self.set(row, None, local);
        match &mut self.data {
            Data::Str { codes, dict } => {
                dict.scrub_dead();
                if row < codes.len() {
                    codes.set(row, 0);
                }
            }
            Data::Num(v) => {
                if row < v.len() {
                    v.set(row, 0.0, &self.present);
                }
            }
            Data::Datetime { ms, md } => {
                if let (Some(t), Some(m)) = (ms.get_mut(row), md.get_mut(row)) {
                    (*t, *m) = (0, 0);
                }
            }
            Data::Date { days, md } => {
                if let (Some(d), Some(m)) = (days.get_mut(row), md.get_mut(row)) {
                    (*d, *m) = (0, 0);
                }
            }
        }
    }

    /// Recomputes the local month-day codes of a datetime column for a new time zone.
    pub(crate) fn recompute_local(&mut self, local: &LocalDays) {
        if let Data::Datetime { ms, md } = &mut self.data {
            for row in self.present.iter() {
                if let (Some(t), Some(m)) = (ms.get(row), md.get_mut(row)) {
                    *m = local.md(*t);
                }
            }
        }
    }

    /// Rebuilds a string column's dictionary when most of its codes are dead.
    pub(crate) fn maybe_compact(&mut self) {
        if let Data::Str { codes, dict } = &mut self.data
            && dict.wants_compaction()
        {
            let (fresh, map) = dict.compacted();
            let mut narrowed = Codes::zeros(codes.len(), fresh.codes());
            for row in self.present.iter() {
                if let Some(old) = codes.get(row) {
                    let new = map.get(old as usize).copied().unwrap_or(0);
                    narrowed.set(row, new);
                }
            }
            *codes = narrowed;
            *dict = fresh;
        }
    }

    pub(crate) fn heap_bytes(&self) -> usize {
        self.present.heap_bytes()
            + match &self.data {
                Data::Str { codes, dict } => codes.heap_bytes() + dict.heap_bytes(),
                Data::Num(v) => v.heap_bytes(),
                Data::Datetime { ms, md } => ms.capacity() * 8 + md.capacity() * 2,
                Data::Date { days, md } => days.capacity() * 4 + md.capacity() * 2,
            }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use jiff::tz::TimeZone;

    #[test]
    fn presence_and_dictionary_references_follow_the_values() {
        let local = LocalDays::new(TimeZone::UTC);
        let mut c = Column::new(FieldType::String, 64);
        c.set(1, Some(&Value::String("a".into())), &local);
        c.set(2, Some(&Value::String("a".into())), &local);
        c.set(2, Some(&Value::String("b".into())), &local);
        c.set(3, Some(&Value::Number(1.0)), &local);
        assert_eq!(c.count, 2);
        assert!(!c.present.get(3), "a value of another type is absent");
        let Data::Str { dict, .. } = &c.data else {
            unreachable!()
        };
        assert_eq!(dict.live(), 2);
        c.set(1, None, &local);
        let Data::Str { dict, .. } = &c.data else {
            unreachable!()
        };
        assert_eq!(dict.live(), 1);
        assert_eq!(c.count, 1);
    }

    #[test]
    fn a_small_code_written_into_a_wide_column_keeps_every_row() {
        // Rewriting an early row (small code) of a column past 65 536 codes once narrowed
        // every code to one byte: counts after any update of an early customer were wrong.
        let local = LocalDays::new(TimeZone::UTC);
        let rows = 70_000 + 4096;
        let mut c = Column::new(FieldType::String, rows);
        for row in 0..70_000 {
            c.set(row, Some(&Value::String(format!("v{row}"))), &local);
        }
        c.set(3, Some(&Value::String("v3".into())), &local);
        c.set(5, Some(&Value::String("v1".into())), &local);
        let Data::Str { codes, dict } = &c.data else {
            unreachable!()
        };
        assert_eq!(codes.width(), 4);
        for row in (0..70_000).filter(|&r| r != 5) {
            let code = codes.get(row).unwrap();
            assert_eq!(dict.value(code), format!("v{row}").as_bytes(), "row {row}");
        }
        assert_eq!(dict.value(codes.get(5).unwrap()), b"v1");
    }

    proptest::proptest! {
        /// Codes read back exactly what was written, whatever the order of widths: the
        /// width only grows with the largest code written.
        #[test]
        fn codes_read_back_what_was_written(
            writes in proptest::collection::vec(
                (0usize..64, proptest::prop_oneof![
                    0u32..=255,
                    256u32..=65_535,
                    65_536u32..=u32::MAX - 1,
                ]),
                1..200,
            )
        ) {
            let mut codes = Codes::zeros(64, 1);
            let mut model = vec![0u32; 64];
            let mut widest = 1;
            for (row, code) in writes {
                codes.set(row, code);
                model[row] = code;
                widest = widest.max(Codes::zeros(0, code as usize + 1).width());
                proptest::prop_assert_eq!(codes.width(), widest);
                for (r, want) in model.iter().enumerate() {
                    proptest::prop_assert_eq!(codes.get(r), Some(*want), "row {}", r);
                }
            }
        }
    }

    #[test]
    fn codes_widen_as_the_dictionary_grows_and_keep_every_row() {
        let local = LocalDays::new(TimeZone::UTC);
        let rows = 70_000 + 4096;
        let mut c = Column::new(FieldType::String, rows);
        for row in 0..70_000 {
            c.set(row, Some(&Value::String(format!("v{row}"))), &local);
            if row == 255 || row == 256 || row == 65_536 {
                let Data::Str { codes, .. } = &c.data else {
                    unreachable!()
                };
                let width = match codes {
                    Codes::U8(_) => 8,
                    Codes::U16(_) => 16,
                    Codes::U32(_) => 32,
                };
                assert_eq!(
                    width,
                    [8, 16, 32][usize::from(row > 255) + usize::from(row > 65_535)]
                );
            }
        }
        let Data::Str { codes, dict } = &c.data else {
            unreachable!()
        };
        for row in (0..70_000).step_by(997) {
            assert_eq!(
                dict.value(codes.get(row).unwrap()),
                format!("v{row}").as_bytes()
            );
        }
    }

    #[test]
    fn compaction_keeps_every_row_value() {
        let local = LocalDays::new(TimeZone::UTC);
        let mut c = Column::new(FieldType::String, 4096);
        for row in 0..3000 {
            c.set(row, Some(&Value::String(format!("v{row}"))), &local);
        }
        for row in 0..2990 {
            c.set(row, None, &local);
        }
        c.maybe_compact();
        let Data::Str { dict, codes } = &c.data else {
            unreachable!()
        };
        assert_eq!(dict.codes(), 10);
        assert!(
            matches!(codes, Codes::U8(_)),
            "codes narrow again: {codes:?}"
        );
        for row in 2990..3000 {
            let code = codes.get(row).unwrap();
            assert_eq!(dict.value(code), format!("v{row}").as_bytes());
        }
    }
}
