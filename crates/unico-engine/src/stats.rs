//! Summaries of a set of members for charts: how many hold a value, the most frequent
//! strings, and the range and equal-width histogram of numbers and instants. Every
//! function is one pass over the members' rows: a word whose 64 rows are all members
//! holding a value is read as a contiguous slice of the column, in the column's own type,
//! so the compiler vectorises it; other words go bit by bit.

use unico_core::{FieldId, FieldType};

use crate::bits::WORD_BITS;
use crate::column::{Codes, Column, Data};
use crate::index::AppIndex;
use crate::members::Members;
use crate::num::{Ints, Nums, decode};

const DAY_MS: f64 = 86_400_000.0;

/// What a summary looks at: a field of the schema or a built-in instant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Attribute {
    Field(FieldId),
    CreatedAt,
    UpdatedAt,
}

/// The most frequent strings among some members.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TopValues {
    /// Most frequent first; ties in byte order of the value. At the cut, among values
    /// with the same count as the last one listed, those first in byte order are listed
    /// (so the list is the first `k` values in that order, whatever the dictionary's).
    pub values: Vec<(String, u64)>,
    /// Members holding a value not listed.
    pub others: u64,
    /// Distinct values among the members.
    pub distinct: u64,
}

impl AppIndex {
    fn attribute(&self, attr: Attribute) -> Option<&Column> {
        match attr {
            Attribute::Field(id) => self.field_column(id),
            Attribute::CreatedAt => Some(self.created_at_column()),
            Attribute::UpdatedAt => Some(self.updated_at_column()),
        }
    }

    /// How many of `members` hold a value for `attr`.
    pub fn holding(&self, members: &Members, attr: Attribute) -> u64 {
        self.attribute(attr)
            .map_or(0, |column| holding_in(members, column))
    }

    /// The smallest and largest value of a number, date or datetime attribute among
    /// `members`, as numbers (dates and instants as epoch milliseconds). `None` when no
    /// member holds a value, or for strings.
    pub fn range(&self, members: &Members, attr: Attribute) -> Option<(f64, f64)> {
        range_in(members, self.attribute(attr)?)
    }

    /// Counts the members' values of a number, date or datetime attribute into `buckets`
    /// buckets of `width` from `start` (bucket `i` holds `start + i·width ≤ x <
    /// start + (i+1)·width`; values below fall in the first, values past in the last).
    pub fn histogram(
        &self,
        members: &Members,
        attr: Attribute,
        start: f64,
        width: f64,
        buckets: usize,
    ) -> Vec<u64> {
        match self.attribute(attr) {
            Some(column) => histogram_in(members, column, start, width, buckets),
            None => vec![0; buckets],
        }
    }
}

/// [`AppIndex::holding`] of a column.
pub(crate) fn holding_in(members: &Members, column: &Column) -> u64 {
    members
        .words()
        .iter()
        .zip(column.present.words())
        .map(|(m, p)| u64::from((m & p).count_ones()))
        .sum()
}

impl AppIndex {
    /// The `k` most frequent values of a string attribute among `members` (empty for other
    /// types). One pass counts the members' codes; a second walks the counts in code order
    /// keeping the best `k` so far (a value's bytes are read only when its count ties the
    /// worst kept one), so a column of a million distinct values costs two linear passes.
    pub fn top_values(&self, members: &Members, attr: Attribute, k: usize) -> TopValues {
        let Some(column) = self.attribute(attr) else {
            return TopValues::default();
        };
        let Data::Str { codes, dict } = &column.data else {
            return TopValues::default();
        };
        let mut counts = vec![0u32; dict.codes()];
        // A code outside the dictionary is a broken index, never a value to leave out.
        let tally = |counts: &mut [u32], code: usize| match counts.get_mut(code) {
            Some(c) => *c += 1,
            None => broken(format_args!(
                "a string code {code} outside its dictionary of {}",
                counts.len()
            )),
        };
        match codes {
            Codes::U8(v) => visit(members, column, v, |_, c| {
                tally(&mut counts, usize::from(c))
            }),
            Codes::U16(v) => visit(members, column, v, |_, c| {
                tally(&mut counts, usize::from(c))
            }),
            Codes::U32(v) => visit(members, column, v, |_, c| tally(&mut counts, c as usize)),
        }
        let total: u64 = counts.iter().map(|&n| u64::from(n)).sum();
        // `a` ranks before `b`: more frequent, then first in byte order.
        let before = |a: (u32, u32), b: (u32, u32)| {
            a.1 > b.1 || (a.1 == b.1 && dict.value(a.0) < dict.value(b.0))
        };
        let mut best: Vec<(u32, u32)> = Vec::with_capacity(k.min(1024));
        // Index in `best` of the entry ranked last, once `best` is full.
        let mut worst = 0usize;
        let mut distinct = 0u64;
        for (code, &n) in counts.iter().enumerate() {
            if n == 0 {
                continue;
            }
            distinct += 1;
            let entry = (code as u32, n);
            if best.len() < k {
                best.push(entry);
                if best.len() == k {
                    worst = last_ranked(&best, before);
                }
            } else if k > 0 && n >= best[worst].1 && before(entry, best[worst]) {
                best[worst] = entry;
                worst = last_ranked(&best, before);
            }
        }
        best.sort_unstable_by(|&a, &b| {
            if before(a, b) {
                std::cmp::Ordering::Less
            } else {
                std::cmp::Ordering::Greater
            }
        });
        let values: Vec<(String, u64)> = best
            .iter()
            .map(|&(code, n)| {
                (
                    String::from_utf8_lossy(dict.value(code)).into_owned(),
                    u64::from(n),
                )
            })
            .collect();
        let listed: u64 = values.iter().map(|(_, n)| n).sum();
        TopValues {
            values,
            others: total - listed,
            distinct,
        }
    }
}

/// [`AppIndex::range`] of a column.
pub(crate) fn range_in(members: &Members, column: &Column) -> Option<(f64, f64)> {
    match (&column.data, column.ty) {
        (Data::Num(Nums::F64(v)), FieldType::Number) => min_max(members, column, v),
        (Data::Num(Nums::Int { ints, scale }), FieldType::Number) => {
            let s = *scale;
            let (lo, hi) = match ints {
                Ints::I8(v) => min_max(members, column, v).map(|(a, b)| (a.into(), b.into())),
                Ints::I16(v) => min_max(members, column, v).map(|(a, b)| (a.into(), b.into())),
                Ints::I32(v) => min_max(members, column, v).map(|(a, b)| (a.into(), b.into())),
            }?;
            // Decoding is monotone: the extremes decode to the extremes.
            Some((decode(lo, s), decode(hi, s)))
        }
        (Data::Datetime { ms, .. }, _) => {
            min_max(members, column, ms).map(|(a, b)| (a as f64, b as f64))
        }
        (Data::Date { days, .. }, _) => min_max(members, column, days)
            .map(|(a, b)| (f64::from(a) * DAY_MS, f64::from(b) * DAY_MS)),
        _ => None,
    }
}

/// [`AppIndex::histogram`] of a column.
/// Where bucket `i` of a histogram starting at `start`, `width` wide, begins: bucket `i`
/// holds the values from its edge (included) to the next one (excluded), the last one
/// everything from its edge up. Callers that restate a bucket as a filter use these edges.
pub fn bucket_edge(start: f64, width: f64, i: usize) -> f64 {
    start + width * i as f64
}

pub(crate) fn histogram_in(
    members: &Members,
    column: &Column,
    start: f64,
    width: f64,
    buckets: usize,
) -> Vec<u64> {
    let mut counts = vec![0u64; buckets];
    if buckets == 0 || width.is_nan() || width <= 0.0 {
        return counts;
    }
    let last = buckets - 1;
    // The bucket of `x`: `floor((x - start) / width)` clamped to the buckets. Below 0
    // it is the first; from 0 up, truncating is flooring (and saturates far past the
    // last): one conversion instruction, where `floor` is a libm call per value on the
    // baseline x86-64 target. The quotient can round across an edge (0.5 over edges
    // 0.2 + 0.1·i gives 2.9999…): the bucket is then moved to the one whose edges, as
    // [`bucket_edge`] computes them, hold `x`, so that a filter on those edges selects
    // exactly the customers the bucket counts.
    let bucket = |x: f64| {
        let q = (x - start) / width;
        if q < 0.0 {
            return 0;
        }
        let i = (q as usize).min(last);
        if i > 0 && x < bucket_edge(start, width, i) {
            i - 1
        } else if i < last && x >= bucket_edge(start, width, i + 1) {
            i + 1
        } else {
            i
        }
    };
    let mut add = |_, i: usize| {
        if let Some(c) = counts.get_mut(i) {
            *c += 1;
        }
    };
    match (&column.data, column.ty) {
        (Data::Num(Nums::F64(v)), FieldType::Number) => {
            visit_mapped(members, column, v, bucket, &mut add)
        }
        (Data::Num(Nums::Int { ints, scale }), FieldType::Number) => {
            let s = *scale;
            match ints {
                Ints::I8(v) => visit_mapped(
                    members,
                    column,
                    v,
                    |n| bucket(decode(n.into(), s)),
                    &mut add,
                ),
                Ints::I16(v) => visit_mapped(
                    members,
                    column,
                    v,
                    |n| bucket(decode(n.into(), s)),
                    &mut add,
                ),
                Ints::I32(v) => visit_mapped(
                    members,
                    column,
                    v,
                    |n| bucket(decode(n.into(), s)),
                    &mut add,
                ),
            }
        }
        (Data::Datetime { ms, .. }, _) => {
            visit_mapped(members, column, ms, |t| bucket(t as f64), &mut add)
        }
        (Data::Date { days, .. }, _) => visit_mapped(
            members,
            column,
            days,
            |d| bucket(f64::from(d) * DAY_MS),
            &mut add,
        ),
        _ => {}
    }
    counts
}

/// The index in `best` (not empty) of the entry ranked last by `before`.
fn last_ranked(best: &[(u32, u32)], before: impl Fn((u32, u32), (u32, u32)) -> bool) -> usize {
    let mut worst = 0;
    for (i, &e) in best.iter().enumerate().skip(1) {
        if before(best[worst], e) {
            worst = i;
        }
    }
    worst
}

/// Calls `f(slot, value)` for every member holding a value in `column`, ascending.
#[inline(always)]
fn visit<T: Copy + Default>(
    members: &Members,
    column: &Column,
    values: &[T],
    mut f: impl FnMut(usize, T),
) {
    visit_mapped(members, column, values, |x| x, &mut f);
}

/// Like [`visit`], mapping each value first: a full word's 64 values are mapped in one
/// loop the compiler vectorises, then handed over. (Mapping a partial word whole, stale
/// rows included, measured slower: without packed float-to-integer conversions on the
/// baseline x86-64 target the mapping is scalar anyway.)
#[inline(always)]
fn visit_mapped<T: Copy, U: Copy + Default>(
    members: &Members,
    column: &Column,
    values: &[T],
    map: impl Fn(T) -> U,
    f: &mut impl FnMut(usize, U),
) {
    let mut mapped = [U::default(); WORD_BITS];
    for (wi, (m, p)) in members
        .words()
        .iter()
        .zip(column.present.words())
        .enumerate()
    {
        let mut rest = m & p;
        let base = wi * WORD_BITS;
        if rest == u64::MAX
            && let Some(chunk) = values.get(base..base + WORD_BITS)
        {
            for (out, &x) in mapped.iter_mut().zip(chunk) {
                *out = map(x);
            }
            for (i, &u) in mapped.iter().enumerate() {
                f(base + i, u);
            }
            continue;
        }
        while rest != 0 {
            let slot = base + rest.trailing_zeros() as usize;
            rest &= rest - 1;
            f(slot, map(value_at(values, slot)));
        }
    }
}

/// The value of a present slot. A present slot always has one (a column's values are as
/// long as the index's capacity): one missing means the index is broken, and a chart
/// quietly leaving the member out would be a wrong answer, so it panics like a scan does
/// (`eval::scan`), and the caller's request fails.
#[inline(always)]
fn value_at<T: Copy>(values: &[T], slot: usize) -> T {
    match values.get(slot) {
        Some(&x) => x,
        None => broken(format_args!(
            "slot {slot} is present but its column holds {} values",
            values.len()
        )),
    }
}

#[cold]
#[inline(never)]
fn broken(what: std::fmt::Arguments<'_>) -> ! {
    panic!("engine invariant broken in a member summary: {what}")
}

/// The smallest and largest of the members' values, in the column's own type.
fn min_max<T: Copy + PartialOrd>(
    members: &Members,
    column: &Column,
    values: &[T],
) -> Option<(T, T)> {
    let mut range: Option<(T, T)> = None;
    for (wi, (m, p)) in members
        .words()
        .iter()
        .zip(column.present.words())
        .enumerate()
    {
        let mut rest = m & p;
        if rest == 0 {
            continue;
        }
        let base = wi * WORD_BITS;
        let (mut lo, mut hi) = match range {
            Some(r) => r,
            None => {
                let x = value_at(values, base + rest.trailing_zeros() as usize);
                (x, x)
            }
        };
        if rest == u64::MAX
            && let Some(chunk) = values.get(base..base + WORD_BITS)
        {
            for &x in chunk {
                lo = if x < lo { x } else { lo };
                hi = if x > hi { x } else { hi };
            }
        } else {
            while rest != 0 {
                let slot = base + rest.trailing_zeros() as usize;
                rest &= rest - 1;
                let x = value_at(values, slot);
                lo = if x < lo { x } else { lo };
                hi = if x > hi { x } else { hi };
            }
        }
        range = Some((lo, hi));
    }
    range
}

#[cfg(test)]
mod tests {
    use super::*;
    use unico_core::{Customer, CustomerId, FieldDef, FieldName, Schema, Value};

    fn schema() -> Schema {
        let def = |id: u32, name: &str, ty| FieldDef {
            id: FieldId(id),
            name: FieldName::parse(name).unwrap(),
            field_type: ty,
            created_at: 0,
            computed: None,
        };
        Schema::new(vec![
            def(1, "country", FieldType::String),
            def(2, "age", FieldType::Number),
            def(3, "birthdate", FieldType::Date),
        ])
    }

    fn customer(id: i64, country: Option<&str>, age: Option<f64>) -> Customer {
        let mut values = Vec::new();
        if let Some(c) = country {
            values.push((FieldId(1), Value::String(c.to_owned())));
        }
        if let Some(a) = age {
            values.push((FieldId(2), Value::Number(a)));
        }
        values.push((FieldId(3), Value::Date(id as i32)));
        Customer {
            id,
            customer_id: CustomerId::parse(&format!("c{id}")).unwrap(),
            created_at: id * 1000,
            updated_at: id * 1000,
            fields: values,
        }
    }

    fn index() -> AppIndex {
        let mut index = AppIndex::new(&schema());
        let rows = [
            (Some("ES"), Some(20.0)),
            (Some("FR"), Some(31.0)),
            (Some("ES"), None),
            (None, Some(45.0)),
            (Some("DE"), Some(39.5)),
            (Some("ES"), Some(60.0)),
            (Some("FR"), None),
        ];
        for (i, (c, a)) in rows.into_iter().enumerate() {
            index.upsert(&customer(i as i64 + 1, c, a));
        }
        index
    }

    /// A member whose value is present but missing from its column (a broken index) was
    /// left out of ranges and histograms, so a chart came out short without a word; now
    /// the summary panics, as a scan does, and the request fails.
    #[test]
    fn a_present_value_missing_from_its_column_fails_the_summary() {
        let index = index();
        let members = index.all();
        let column = index.attribute(Attribute::Field(FieldId(2))).unwrap();
        let short = [1.0f64; 2]; // the age of slots 3 and later is missing
        let ranged = std::panic::catch_unwind(|| min_max(&members, column, &short));
        assert!(ranged.is_err());
        let visited = std::panic::catch_unwind(|| {
            let mut n = 0;
            visit(&members, column, &short, |_, _| n += 1);
            n
        });
        assert!(visited.is_err());
        // With every value there, both see every member holding one.
        let whole = [1.0f64; 7];
        assert_eq!(min_max(&members, column, &whole), Some((1.0, 1.0)));
        let mut n = 0;
        visit(&members, column, &whole, |_, _| n += 1);
        assert_eq!(n, 5);
    }

    #[test]
    fn top_values_rank_by_count_then_value_and_count_the_rest() {
        let index = index();
        let top = index.top_values(&index.all(), Attribute::Field(FieldId(1)), 2);
        assert_eq!(top.values, vec![("ES".to_owned(), 3), ("FR".to_owned(), 2)],);
        assert_eq!((top.others, top.distinct), (1, 3));
        assert_eq!(index.holding(&index.all(), Attribute::Field(FieldId(1))), 6);
        assert_eq!(
            index.top_values(&index.all(), Attribute::Field(FieldId(2)), 3),
            TopValues::default(),
            "numbers have no top values"
        );
    }

    #[test]
    fn range_and_histogram_follow_the_members() {
        let mut index = index();
        let age = Attribute::Field(FieldId(2));
        assert_eq!(index.range(&index.all(), age), Some((20.0, 60.0)));
        assert_eq!(
            index.histogram(&index.all(), age, 20.0, 10.0, 4),
            vec![1, 2, 1, 1],
            "60 lands in the last bucket"
        );
        let created = index.range(&index.all(), Attribute::CreatedAt);
        assert_eq!(created, Some((1000.0, 7000.0)));
        let dates = index.range(&index.all(), Attribute::Field(FieldId(3)));
        assert_eq!(dates, Some((DAY_MS, 7.0 * DAY_MS)));
        index.remove(6);
        assert_eq!(index.range(&index.all(), age), Some((20.0, 45.0)));
        assert_eq!(
            index.range(&index.all(), Attribute::Field(FieldId(1))),
            None,
            "strings have no range"
        );
    }

    #[test]
    fn ties_at_the_cut_go_to_the_first_values_in_byte_order_not_code_order() {
        let mut index = AppIndex::new(&schema());
        for (i, c) in ["d", "b", "c", "a", "c", "b"].into_iter().enumerate() {
            index.upsert(&customer(i as i64 + 1, Some(c), None));
        }
        let top = index.top_values(&index.all(), Attribute::Field(FieldId(1)), 2);
        assert_eq!(top.values, vec![("b".to_owned(), 2), ("c".to_owned(), 2)]);
        let top = index.top_values(&index.all(), Attribute::Field(FieldId(1)), 3);
        assert_eq!(
            top.values,
            vec![
                ("b".to_owned(), 2),
                ("c".to_owned(), 2),
                ("a".to_owned(), 1)
            ],
            "\"a\" (code 3) is listed before \"d\" (code 0)"
        );
        assert_eq!((top.others, top.distinct), (1, 4));
        let none = index.top_values(&index.all(), Attribute::Field(FieldId(1)), 0);
        assert_eq!((none.values.len(), none.others, none.distinct), (0, 6, 4));
    }

    /// Many rows (whole words of members, partial words, removed customers) in every
    /// number form, against the summaries computed plainly from the values.
    #[test]
    fn whole_words_and_partial_words_agree_with_a_plain_count() {
        let forms: [fn(i64) -> f64; 4] = [
            |i| (i % 90) as f64,
            |i| (i * 37 % 1000) as f64 - 300.0,
            |i| (i * 7919 % 100_000) as f64 / 100.0,
            |i| (i * 7919 % 1000) as f64 * 1e12 + 0.5,
        ];
        for form in forms {
            let mut index = AppIndex::new(&schema());
            let mut kept = std::collections::BTreeMap::new();
            for id in 1..=1000i64 {
                let country = ["ES", "FR", "DE", "PT", "IT"][(id * id % 5) as usize];
                let age = (id % 150 != 7).then(|| form(id));
                index.upsert(&customer(id, Some(country), age));
                kept.insert(id, (country, age));
            }
            for id in (1..=1000).filter(|id| id % 97 == 3) {
                index.remove(id);
                kept.remove(&id);
            }
            let all = index.all();
            let ages: Vec<f64> = kept.values().filter_map(|(_, a)| *a).collect();
            let lo = ages.iter().copied().fold(f64::INFINITY, f64::min);
            let hi = ages.iter().copied().fold(f64::NEG_INFINITY, f64::max);
            let age = Attribute::Field(FieldId(2));
            assert_eq!(index.range(&all, age), Some((lo, hi)));
            let width = (hi - lo) / 7.0;
            let mut want = vec![0u64; 7];
            for &x in &ages {
                let i = ((x - lo) / width).floor();
                want[if i < 0.0 { 0 } else { (i as usize).min(6) }] += 1;
            }
            assert_eq!(index.histogram(&all, age, lo, width, 7), want);
            let mut counts = std::collections::BTreeMap::new();
            for (c, _) in kept.values() {
                *counts.entry(*c).or_insert(0u64) += 1;
            }
            let mut ranked: Vec<(String, u64)> =
                counts.iter().map(|(c, n)| ((*c).to_owned(), *n)).collect();
            ranked.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
            ranked.truncate(3);
            let top = index.top_values(&all, Attribute::Field(FieldId(1)), 3);
            assert_eq!(top.values, ranked);
            assert_eq!(top.distinct, counts.len() as u64);
        }
    }
}
