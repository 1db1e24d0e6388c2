//! Typed columns: one value slot per row, and a presence bitmap saying which rows hold a
//! value.
//!
//! | type | per row | beside it |
//! | --- | --- | --- |
//! | string | `u32` dictionary code | the [`Dict`] of distinct values |
//! | number | `f64` | |
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

/// The typed storage of a column.
#[derive(Debug, Clone)]
pub(crate) enum Data {
    Str { codes: Vec<u32>, dict: Dict },
    Num(Vec<f64>),
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
                codes: vec![0; rows],
                dict: Dict::default(),
            },
            FieldType::Number => Data::Num(vec![0.0; rows]),
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
            Data::Str { codes, .. } => codes.resize(rows.max(codes.len()), 0),
            Data::Num(v) => v.resize(rows.max(v.len()), 0.0),
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
            if was {
                dict.release(codes[row]);
            }
            codes[row] = code;
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
                v[row] = *n;
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
                if was {
                    dict.release(codes[row]);
                }
                false
            }
            _ => false,
        };
        self.mark(row, on);
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
            for row in self.present.iter() {
                if let Some(c) = codes.get_mut(row) {
                    *c = map.get(*c as usize).copied().unwrap_or(u32::MAX);
                }
            }
            *dict = fresh;
        }
    }

    pub(crate) fn heap_bytes(&self) -> usize {
        self.present.heap_bytes()
            + match &self.data {
                Data::Str { codes, dict } => codes.capacity() * 4 + dict.heap_bytes(),
                Data::Num(v) => v.capacity() * 8,
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
        for (row, &code) in codes.iter().enumerate().take(3000).skip(2990) {
            assert_eq!(dict.value(code), format!("v{row}").as_bytes());
        }
    }
}
