//! Evaluating an event condition ([`EventTest`]) into the set of alive slots that pass it,
//! with the semantics of the reference evaluator (`ResolvedFilter::matches_with_events`).
//!
//! One pass over the type's table, zone by zone: a zone whose times miss the window is
//! skipped, a zone inside the window skips the time test; within a zone every 64 rows
//! are tested at once into a `u64` (time, channel, then each property test, each only
//! while some row is left), and the rows left are accumulated per slot into dense arrays
//! indexed by slot: a bit ("some event counts"), a count, an exact sum in millionths
//! (`i64`, redone in `i128` if it would overflow), a minimum, maximum, first or last
//! time — only what the measure needs — and into a bitset of the slots some event counted
//! for. A last pass, a word per 64 slots, gives every alive slot no event counted for the
//! answer of the measure on no events (count and sum 0, everything else absent: so
//! `did_not` and `at_most` are exact complements within the customers), and tests the
//! measure one by one only on the slots some event counted for.
//!
//! Property tests run on dictionary codes (a set over codes, computed once per distinct
//! value, as for customer columns) and on fixed-point integers where the number column
//! is one (exact bounds from [`crate::num::int_bounds`]).

use unico_filter::aggregate::{average, from_micros, to_micros};
use unico_filter::filter::{Agg, Which};
use unico_filter::resolve::{EventMeasure, EventTest, PropertyTest, Resolved, TestKind};

use unico_core::{ComputedAgg, PropertyType, Value};

use crate::bits::{Bits, WORD_BITS};
use crate::column::{Codes, Column};
use crate::eval::{Plan, bits64};
use crate::events::{NumProp, StrProp, Table};
use crate::index::AppIndex;
use crate::num::{Ints, Nums, int_bounds};

/// A property test compiled against a table.
enum Where<'a> {
    /// The property holds a value of the test's type.
    Present(&'a Bits),
    /// It does not.
    Absent(&'a Bits),
    /// A number in `lo..=hi` (exclusive bounds moved to the next float).
    NumRange(&'a NumProp, f64, f64),
    /// A fixed-point number in `lo..=hi` (bounds within the width).
    IntRange(&'a Bits, &'a Ints, i64, i64),
    /// A number equal to one of `values` (sorted by `total_cmp`, −0 as 0), or, negated,
    /// to none.
    NumIn(&'a NumProp, &'a [f64], bool),
    /// A string whose code is in the set.
    Codes(&'a StrProp, Bits),
}

/// What compiling a property test found.
enum Compiled<'a> {
    /// No row passes.
    Never,
    /// Every row passes.
    Always,
    Test(Where<'a>),
}

/// The 64 (or, at a column's end, fewer) rows from `r0` tested into a word.
#[inline(always)]
fn word<T: Copy>(v: &[T], r0: usize, test: impl Fn(T) -> bool) -> u64 {
    if let Some(chunk) = v
        .get(r0..r0 + WORD_BITS)
        .and_then(|s| <&[T; WORD_BITS]>::try_from(s).ok())
    {
        return bits64(chunk, test);
    }
    let mut bits = 0u64;
    for (i, &x) in v
        .get(r0..)
        .unwrap_or_default()
        .iter()
        .take(WORD_BITS)
        .enumerate()
    {
        bits |= u64::from(test(x)) << i;
    }
    bits
}

#[inline(always)]
fn present_word(bits: &Bits, r0: usize) -> u64 {
    bits.words().get(r0 / WORD_BITS).copied().unwrap_or(0)
}

#[inline(always)]
fn nums_word(nums: &Nums, r0: usize, test: impl Fn(f64) -> bool) -> u64 {
    use crate::num::decode;
    match nums {
        Nums::Int { ints, scale } => {
            let s = *scale;
            match ints {
                Ints::I8(v) => word(v, r0, |n| test(decode(i64::from(n), s))),
                Ints::I16(v) => word(v, r0, |n| test(decode(i64::from(n), s))),
                Ints::I32(v) => word(v, r0, |n| test(decode(i64::from(n), s))),
            }
        }
        Nums::F64(v) => word(v, r0, test),
    }
}

#[inline(always)]
fn codes_word(codes: &Codes, r0: usize, test: impl Fn(u32) -> bool) -> u64 {
    match codes {
        Codes::U8(v) => word(v, r0, |c| test(u32::from(c))),
        Codes::U16(v) => word(v, r0, |c| test(u32::from(c))),
        Codes::U32(v) => word(v, r0, test),
    }
}

/// Whether a number in a set sorted by `total_cmp` (−0 as 0).
#[inline(always)]
fn in_set(values: &[f64], x: f64) -> bool {
    let x = x + 0.0;
    values.binary_search_by(|v| v.total_cmp(&x)).is_ok()
}

impl Where<'_> {
    /// The rows of `m` (the word of rows from `r0`) that pass.
    #[inline(always)]
    fn word(&self, r0: usize, m: u64) -> u64 {
        match self {
            Where::Present(p) => m & present_word(p, r0),
            Where::Absent(p) => m & !present_word(p, r0),
            Where::NumRange(col, lo, hi) => {
                let m = m & present_word(&col.present, r0);
                if m == 0 {
                    return 0;
                }
                m & nums_word(&col.nums, r0, |x| *lo <= x && x <= *hi)
            }
            Where::IntRange(present, ints, lo, hi) => {
                let m = m & present_word(present, r0);
                if m == 0 {
                    return 0;
                }
                let (lo, hi) = (*lo, *hi);
                m & match ints {
                    Ints::I8(v) => word(v, r0, |n| lo <= i64::from(n) && i64::from(n) <= hi),
                    Ints::I16(v) => word(v, r0, |n| lo <= i64::from(n) && i64::from(n) <= hi),
                    Ints::I32(v) => word(v, r0, |n| lo <= i64::from(n) && i64::from(n) <= hi),
                }
            }
            Where::NumIn(col, values, negated) => {
                let m = m & present_word(&col.present, r0);
                if m == 0 {
                    return 0;
                }
                m & nums_word(&col.nums, r0, |x| in_set(values, x) != *negated)
            }
            Where::Codes(col, set) => {
                let m = m & present_word(&col.present, r0);
                if m == 0 {
                    return 0;
                }
                m & codes_word(&col.codes, r0, |c| set.get(c as usize))
            }
        }
    }
}

/// Compiles a property test against a table.
fn compile_where<'a>(table: &'a Table, w: &'a PropertyTest) -> Compiled<'a> {
    let prop = table.prop(&w.property);
    match w.property_type {
        PropertyType::Number => {
            let col = prop.and_then(|p| p.num.as_ref());
            match (&w.kind, col) {
                (TestKind::Exists, Some(c)) => Compiled::Test(Where::Present(&c.present)),
                (TestKind::NotExists, Some(c)) => Compiled::Test(Where::Absent(&c.present)),
                (TestKind::NotExists, None) => Compiled::Always,
                (TestKind::NumIn { values, negated }, Some(c)) => {
                    if values.is_empty() {
                        if *negated {
                            Compiled::Test(Where::Present(&c.present))
                        } else {
                            Compiled::Never
                        }
                    } else {
                        Compiled::Test(Where::NumIn(c, values, *negated))
                    }
                }
                (
                    TestKind::NumRange {
                        lo,
                        lo_inclusive,
                        hi,
                        hi_inclusive,
                    },
                    Some(c),
                ) => {
                    // Values are finite, so `v > lo` is `v >= next_up(lo)`.
                    let lo = if *lo_inclusive { *lo } else { lo.next_up() };
                    let hi = if *hi_inclusive { *hi } else { hi.next_down() };
                    if lo.is_nan() || hi.is_nan() || lo > hi {
                        return Compiled::Never;
                    }
                    match &c.nums {
                        Nums::F64(_) => Compiled::Test(Where::NumRange(c, lo, hi)),
                        Nums::Int { ints, scale } => {
                            let (min, max) = ints.limits();
                            match int_bounds(lo, hi, *scale) {
                                Some((a, b)) if a <= max && b >= min => {
                                    let (a, b) = (a.max(min), b.min(max));
                                    if (a, b) == (min, max) {
                                        Compiled::Test(Where::Present(&c.present))
                                    } else {
                                        Compiled::Test(Where::IntRange(&c.present, ints, a, b))
                                    }
                                }
                                _ => Compiled::Never,
                            }
                        }
                    }
                }
                _ => Compiled::Never,
            }
        }
        PropertyType::String => {
            let col = prop.and_then(|p| p.text.as_ref());
            match (&w.kind, col) {
                (TestKind::Exists, Some(c)) => Compiled::Test(Where::Present(&c.present)),
                (TestKind::NotExists, Some(c)) => Compiled::Test(Where::Absent(&c.present)),
                (TestKind::NotExists, None) => Compiled::Always,
                (TestKind::StrIn { values, negated }, Some(c)) => {
                    let n = c.dict.codes();
                    let mut set = Bits::with_rows(n);
                    if *negated {
                        for code in 0..n {
                            set.assign(code, true);
                        }
                    }
                    for v in values {
                        if let Some(code) = c.dict.get(v) {
                            set.assign(code as usize, !*negated);
                        }
                    }
                    code_set(c, set)
                }
                (
                    TestKind::StrText {
                        op,
                        needle_lower,
                        negated,
                    },
                    Some(c),
                ) => code_set(c, c.dict.text_matches(*op, needle_lower, *negated, 1)),
                _ => Compiled::Never,
            }
        }
    }
}

fn code_set(col: &StrProp, set: Bits) -> Compiled<'_> {
    match set.count_ones() {
        0 => Compiled::Never,
        n if n == col.dict.codes() as u64 => Compiled::Test(Where::Present(&col.present)),
        _ => Compiled::Test(Where::Codes(col, set)),
    }
}

/// Which events of a table count.
struct RowFilter<'a> {
    table: &'a Table,
    lo: i64,
    hi: i64,
    channel: Option<u32>,
    wheres: Vec<Where<'a>>,
    /// Rows must also hold a number here (aggregates of a property).
    number: Option<&'a NumProp>,
}

impl RowFilter<'_> {
    /// Calls `visit(row, slot)` on every row that counts, in row order.
    fn scan(&self, mut visit: impl FnMut(usize, usize)) {
        let t = self.table;
        let (lo, hi) = (self.lo, self.hi);
        for (z, zone) in t.zones.iter().enumerate() {
            if zone.max_ts < lo || zone.min_ts > hi {
                continue;
            }
            let whole = lo <= zone.min_ts && zone.max_ts <= hi;
            let rows = t.zone_rows(z);
            for r0 in rows.clone().step_by(WORD_BITS) {
                let n = (rows.end - r0).min(WORD_BITS);
                let mut m = if n == WORD_BITS {
                    u64::MAX
                } else {
                    (1u64 << n) - 1
                };
                if !whole {
                    m &= word(&t.ts, r0, |x| lo <= x && x <= hi);
                }
                if let Some(c) = self.channel {
                    m &= codes_word(&t.channels, r0, |x| x == c);
                }
                for w in &self.wheres {
                    if m == 0 {
                        break;
                    }
                    m = w.word(r0, m);
                }
                if let Some(col) = self.number {
                    m &= present_word(&col.present, r0);
                }
                while m != 0 {
                    let row = r0 + m.trailing_zeros() as usize;
                    m &= m - 1;
                    if let Some(&slot) = t.slots.get(row) {
                        visit(row, slot as usize);
                    }
                }
            }
        }
    }
}

/// Exact sums in millionths, per slot.
enum Sums {
    Narrow(Vec<i64>),
    Wide(Vec<i128>),
}

impl Sums {
    fn get(&self, slot: usize) -> i128 {
        match self {
            Sums::Narrow(v) => v.get(slot).map_or(0, |&s| i128::from(s)),
            Sums::Wide(v) => v.get(slot).copied().unwrap_or(0),
        }
    }
}

/// Millionths per unit of a fixed-point integer at scales 0–4: for every `i32` `n`,
/// `to_micros(n / 10^s)` is exactly `n · 10^(6−s)` (the quotient and the product are each
/// correctly rounded, so the computed product is within `|n · 10^(6−s)| · 2^-52 < 0.48` of
/// that integer, below 2^51, and rounds to it).
const MICROS_PER_UNIT: [i64; 5] = [1_000_000, 100_000, 10_000, 1_000, 100];

/// [`to_micros`] as an `i64`, if it fits: computed directly below 9·10¹² (where the
/// rounded product is an integer below 2⁶³, so the narrower cast gives the same value
/// without the slow conversion to `i128`).
#[inline(always)]
fn micros_i64(v: f64) -> Option<i64> {
    if v.abs() < 9e12 {
        Some((v * 1e6).round() as i64)
    } else {
        i64::try_from(to_micros(v)).ok()
    }
}

/// Whether an aggregate passes its test (as the reference tests a present number).
fn num_passes(kind: &TestKind, v: f64) -> bool {
    match kind {
        TestKind::Exists => true,
        TestKind::NumIn { values, negated } => in_set(values, v) != *negated,
        TestKind::NumRange {
            lo,
            lo_inclusive,
            hi,
            hi_inclusive,
        } => {
            let above = if *lo_inclusive { v >= *lo } else { v > *lo };
            let below = if *hi_inclusive { v <= *hi } else { v < *hi };
            above && below
        }
        _ => false,
    }
}

/// Whether a first or last time passes its test (as the reference tests a present
/// datetime without a time zone).
fn ms_passes(kind: &TestKind, ms: i64) -> bool {
    match kind {
        TestKind::Exists => true,
        TestKind::MsRanges { ranges, negated } => {
            ranges.iter().any(|&(a, b)| a <= ms && ms <= b) != *negated
        }
        _ => false,
    }
}

/// Whether the measure passes for a customer no event counts for.
fn passes_on_none(measure: &EventMeasure) -> bool {
    match measure {
        EventMeasure::Count { lo, negated, .. } => (*lo == 0) != *negated,
        EventMeasure::Agg { agg, test, .. } => {
            matches!(agg, Agg::Count | Agg::Sum) && num_passes(test, from_micros(0))
        }
        EventMeasure::Time { .. } => false,
    }
}

/// The answer of an event condition: every alive slot, none, or these.
pub(crate) enum Answer {
    All,
    Nothing,
    Rows(Bits),
}

impl AppIndex {
    /// The plan of an event condition: its rows computed now, a leaf of precomputed rows.
    pub(crate) fn compile_event(&self, t: &EventTest) -> Plan<'_> {
        match self.event_answer(t) {
            Answer::All => Plan::All,
            Answer::Nothing => Plan::Nothing,
            Answer::Rows(rows) => {
                let held = rows.count_ones();
                Plan::Rows { rows, held }
            }
        }
    }

    /// Stored rows of the event types a resolved tree reads (what its event conditions
    /// scan at most).
    pub(crate) fn event_rows_read(&self, node: &Resolved) -> usize {
        match node {
            Resolved::And(c) | Resolved::Or(c) => c.iter().map(|n| self.event_rows_read(n)).sum(),
            Resolved::Not(inner) => self.event_rows_read(inner),
            Resolved::Test(_) | Resolved::Subscribed(_) => 0,
            Resolved::Event(t) => self.events.table(&t.event).map_or(0, Table::len),
        }
    }

    /// The alive slots passing an event condition (every one, none, or these).
    pub(crate) fn event_answer(&self, t: &EventTest) -> Answer {
        let none = || {
            if passes_on_none(&t.measure) {
                Answer::All
            } else {
                Answer::Nothing
            }
        };
        let Some(mut filter) = self.row_filter(t) else {
            return none();
        };
        let table = filter.table;
        let on_none = passes_on_none(&t.measure);
        let mut touched = Bits::with_rows(self.high);
        match &t.measure {
            EventMeasure::Count { lo, hi, negated } => {
                let (lo, hi, negated) = (*lo, *hi, *negated);
                if lo > hi || (lo == 0 && hi == u64::MAX) {
                    // Nobody, or everybody, whatever the events.
                    return none();
                }
                if lo == 1 && hi == u64::MAX {
                    // `did` / `did_not`: a slot passes iff an event counts (or none does).
                    filter.scan(|_, slot| touched.assign(slot, true));
                    return self.answer(&touched, on_none, |_| !negated);
                }
                let counts = self.counts(&filter, &mut touched);
                self.answer(&touched, on_none, |slot| {
                    let n = u64::from(counts.get(slot).copied().unwrap_or(0));
                    (lo <= n && n <= hi) != negated
                })
            }
            EventMeasure::Agg {
                agg: Agg::Count,
                test,
                ..
            } => {
                let counts = self.counts(&filter, &mut touched);
                self.answer(&touched, on_none, |slot| {
                    num_passes(test, f64::from(counts.get(slot).copied().unwrap_or(0)))
                })
            }
            EventMeasure::Agg {
                agg,
                property,
                test,
            } => {
                // Only events holding a number for the property are aggregated.
                let col = property
                    .as_deref()
                    .and_then(|p| table.prop(p))
                    .and_then(|p| p.num.as_ref());
                let Some(col) = col else {
                    return none();
                };
                filter.number = Some(col);
                let value = |row: usize| col.nums.get(row).unwrap_or(0.0);
                match agg {
                    Agg::Sum => {
                        let (sums, _) = self.sums(&filter, &col.nums, false, &mut touched);
                        self.answer(&touched, on_none, |slot| {
                            num_passes(test, from_micros(sums.get(slot)))
                        })
                    }
                    Agg::Avg => {
                        let (sums, counts) = self.sums(&filter, &col.nums, true, &mut touched);
                        self.answer(&touched, on_none, |slot| {
                            let n = counts.get(slot).copied().unwrap_or(0);
                            average(sums.get(slot), u64::from(n))
                                .is_some_and(|v| num_passes(test, v))
                        })
                    }
                    // (`Count` was answered above.)
                    Agg::Min | Agg::Max | Agg::Count => {
                        // Values are finite: the infinities are neutral starts.
                        let min = *agg == Agg::Min;
                        let start = if min {
                            f64::INFINITY
                        } else {
                            f64::NEG_INFINITY
                        };
                        let mut best = vec![start; self.high];
                        filter.scan(|row, slot| {
                            let v = value(row);
                            if let Some(b) = best.get_mut(slot) {
                                touched.assign(slot, true);
                                if if min { v < *b } else { v > *b } {
                                    *b = v;
                                }
                            }
                        });
                        self.answer(&touched, on_none, |slot| {
                            best.get(slot).is_some_and(|&v| num_passes(test, v))
                        })
                    }
                }
            }
            EventMeasure::Time { which, test } => {
                let first = *which == Which::First;
                let mut times = vec![if first { i64::MAX } else { i64::MIN }; self.high];
                let ts = &table.ts;
                filter.scan(|row, slot| {
                    if let (Some(x), Some(&t)) = (times.get_mut(slot), ts.get(row)) {
                        touched.assign(slot, true);
                        *x = if first { (*x).min(t) } else { (*x).max(t) };
                    }
                });
                self.answer(&touched, on_none, |slot| {
                    times.get(slot).is_some_and(|&ms| ms_passes(test, ms))
                })
            }
        }
    }

    /// Which rows of the condition's table count; `None` when none can.
    fn row_filter<'a>(&'a self, t: &'a EventTest) -> Option<RowFilter<'a>> {
        let table = self.events.table(&t.event)?;
        let (lo, hi) = t.window;
        if lo > hi || table.len() == 0 {
            return None;
        }
        let channel = match &t.channel {
            None => None,
            Some(c) => Some(table.channel_code(c)?),
        };
        let mut wheres = Vec::with_capacity(t.wheres.len());
        for w in &t.wheres {
            match compile_where(table, w) {
                Compiled::Never => return None,
                Compiled::Always => {}
                Compiled::Test(w) => wheres.push(w),
            }
        }
        Some(RowFilter {
            table,
            lo,
            hi,
            channel,
            wheres,
            number: None,
        })
    }

    /// The value of a computed field's measure for every alive slot (or those of `only`),
    /// as a column of its type: over the events `t` counts (its measure is ignored), `agg` of them; count and
    /// sum are 0 for a slot none counts for, every other aggregate absent (as
    /// [`unico_filter::computed_value`] says).
    pub(crate) fn measure_column(
        &self,
        t: &EventTest,
        agg: ComputedAgg,
        property: Option<&str>,
        only: Option<&Bits>,
    ) -> Column {
        let mut column = Column::new(agg.field_type(), self.rows);
        let local = self.local();
        let mut touched = Bits::with_rows(self.high);
        let wanted = |slot: usize| self.alive.get(slot) && only.is_none_or(|o| o.get(slot));
        let put = |column: &mut Column, slot: usize, value: Value| {
            if wanted(slot) {
                column.set(slot, Some(&value), local);
            }
        };
        if let Some(mut filter) = self.row_filter(t) {
            let table = filter.table;
            match agg {
                ComputedAgg::Count => {
                    let counts = self.counts(&filter, &mut touched);
                    for slot in touched.iter() {
                        let n = counts.get(slot).copied().unwrap_or(0);
                        put(&mut column, slot, Value::Number(f64::from(n)));
                    }
                }
                ComputedAgg::Sum | ComputedAgg::Avg | ComputedAgg::Min | ComputedAgg::Max => {
                    let col = property
                        .and_then(|p| table.prop(p))
                        .and_then(|p| p.num.as_ref());
                    if let Some(col) = col {
                        filter.number = Some(col);
                        match agg {
                            ComputedAgg::Sum | ComputedAgg::Avg => {
                                let avg = agg == ComputedAgg::Avg;
                                let (sums, counts) =
                                    self.sums(&filter, &col.nums, avg, &mut touched);
                                for slot in touched.iter() {
                                    let value = if avg {
                                        let n = counts.get(slot).copied().unwrap_or(0);
                                        average(sums.get(slot), u64::from(n))
                                    } else {
                                        Some(from_micros(sums.get(slot)))
                                    };
                                    if let Some(v) = value {
                                        put(&mut column, slot, Value::Number(v));
                                    }
                                }
                            }
                            _ => {
                                let min = agg == ComputedAgg::Min;
                                let mut best = vec![
                                    if min {
                                        f64::INFINITY
                                    } else {
                                        f64::NEG_INFINITY
                                    };
                                    self.high
                                ];
                                filter.scan(|row, slot| {
                                    let v = col.nums.get(row).unwrap_or(0.0);
                                    if let Some(b) = best.get_mut(slot) {
                                        touched.assign(slot, true);
                                        if if min { v < *b } else { v > *b } {
                                            *b = v;
                                        }
                                    }
                                });
                                for slot in touched.iter() {
                                    if let Some(&v) = best.get(slot) {
                                        put(&mut column, slot, Value::Number(v));
                                    }
                                }
                            }
                        }
                    }
                }
                ComputedAgg::First | ComputedAgg::Last => {
                    let first = agg == ComputedAgg::First;
                    let mut times = vec![if first { i64::MAX } else { i64::MIN }; self.high];
                    let ts = &table.ts;
                    filter.scan(|row, slot| {
                        if let (Some(x), Some(&t)) = (times.get_mut(slot), ts.get(row)) {
                            touched.assign(slot, true);
                            *x = if first { (*x).min(t) } else { (*x).max(t) };
                        }
                    });
                    for slot in touched.iter() {
                        if let Some(&ms) = times.get(slot) {
                            put(&mut column, slot, Value::Datetime(ms));
                        }
                    }
                }
            }
        }
        if agg.always_defined() {
            // No event counted: the count and the sum of nothing are 0.
            let zero = |column: &mut Column, slot: usize| {
                if !touched.get(slot) {
                    put(column, slot, Value::Number(0.0));
                }
            };
            match only {
                Some(o) => o.iter().for_each(|slot| zero(&mut column, slot)),
                None => self.alive.iter().for_each(|slot| zero(&mut column, slot)),
            }
        }
        column
    }

    /// Events counting per slot (and the slots with one).
    fn counts(&self, filter: &RowFilter<'_>, touched: &mut Bits) -> Vec<u32> {
        let mut counts = vec![0u32; self.high];
        filter.scan(|_, slot| {
            if let Some(c) = counts.get_mut(slot) {
                *c = c.saturating_add(1);
                touched.assign(slot, true);
            }
        });
        counts
    }

    /// Exact sums in millionths of the numbers of `nums` per slot (and, if `count`, how
    /// many values each; and the slots with one).
    fn sums(
        &self,
        filter: &RowFilter<'_>,
        nums: &Nums,
        count: bool,
        touched: &mut Bits,
    ) -> (Sums, Vec<u32>) {
        match nums {
            Nums::Int { ints, scale } => {
                let k = MICROS_PER_UNIT[usize::from((*scale).min(4))];
                match ints {
                    Ints::I8(v) => self.sums_of(filter, nums, count, touched, |r| {
                        v.get(r).map(|&n| i64::from(n) * k)
                    }),
                    Ints::I16(v) => self.sums_of(filter, nums, count, touched, |r| {
                        v.get(r).map(|&n| i64::from(n) * k)
                    }),
                    Ints::I32(v) => self.sums_of(filter, nums, count, touched, |r| {
                        v.get(r).map(|&n| i64::from(n) * k)
                    }),
                }
            }
            Nums::F64(v) => self.sums_of(filter, nums, count, touched, |r| {
                v.get(r).and_then(|&x| micros_i64(x))
            }),
        }
    }

    /// [`AppIndex::sums`] with `micros(row)`: the row's millionths, `None` if they do
    /// not fit an `i64` (the sums are then redone in `i128`).
    fn sums_of(
        &self,
        filter: &RowFilter<'_>,
        nums: &Nums,
        count: bool,
        touched: &mut Bits,
        micros: impl Fn(usize) -> Option<i64>,
    ) -> (Sums, Vec<u32>) {
        let value = |row: usize| nums.get(row).unwrap_or(0.0);
        let mut counts = if count {
            vec![0u32; self.high]
        } else {
            Vec::new()
        };
        let mut narrow = vec![0i64; self.high];
        let mut overflow = false;
        filter.scan(|row, slot| {
            if let Some(s) = narrow.get_mut(slot) {
                touched.assign(slot, true);
                match micros(row).and_then(|m| s.checked_add(m)) {
                    Some(sum) => *s = sum,
                    None => overflow = true,
                }
            }
            if let Some(c) = counts.get_mut(slot) {
                *c = c.saturating_add(1);
            }
        });
        if !overflow {
            return (Sums::Narrow(narrow), counts);
        }
        drop(narrow);
        let mut wide = vec![0i128; self.high];
        filter.scan(|row, slot| {
            if let Some(s) = wide.get_mut(slot) {
                *s += to_micros(value(row));
            }
        });
        (Sums::Wide(wide), counts)
    }

    /// The alive slots passing: an untouched slot (no event counted for it) iff `on_none`,
    /// a touched one iff `pass(slot)`. Costs a word operation per 64 slots and a test per
    /// touched slot.
    fn answer(&self, touched: &Bits, on_none: bool, pass: impl Fn(usize) -> bool) -> Answer {
        let alive = self.alive.words();
        let n = self.high.div_ceil(WORD_BITS).min(alive.len());
        let touched = touched.words();
        let mut words = vec![0u64; n];
        for (i, (out, &a)) in words.iter_mut().zip(alive).enumerate() {
            let t = touched.get(i).copied().unwrap_or(0);
            if on_none {
                *out = a & !t;
            }
            let mut rest = a & t;
            while rest != 0 {
                let bit = rest.trailing_zeros() as usize;
                rest &= rest - 1;
                if pass(i * WORD_BITS + bit) {
                    *out |= 1 << bit;
                }
            }
        }
        Answer::Rows(Bits::from_words(words))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::num::decode;

    #[test]
    fn fixed_point_millionths_are_exact() {
        let mut x = 0x9E37_79B9_7F4A_7C15u64;
        let mut samples: Vec<i64> = vec![
            0,
            1,
            -1,
            i64::from(i32::MAX),
            i64::from(i32::MIN),
            i64::from(i32::MAX) - 1,
            i64::from(i32::MIN) + 1,
            5,
            -5,
            15,
            25,
            -25,
        ];
        for _ in 0..200_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            samples.push(i64::from(x as i32));
            samples.push(i64::from((x >> 40) as i32 - (1 << 23)));
        }
        for n in samples {
            for scale in 0..=4u8 {
                let k = MICROS_PER_UNIT[usize::from(scale)];
                assert_eq!(
                    i128::from(n * k),
                    to_micros(decode(n, scale)),
                    "{n} at scale {scale}"
                );
            }
        }
    }

    /// The row-at-a-time twin of an event plan (page walks) agrees with its blocks.
    #[test]
    fn rows_of_an_event_plan_test_like_its_members() {
        use unico_core::{Channel, Customer, CustomerId, Event, EventCode, Properties, Schema};
        let mut index = AppIndex::new(&Schema::default());
        for id in 0..5000 {
            index.upsert(&Customer {
                id,
                customer_id: CustomerId::parse(&format!("c{id}")).unwrap(),
                created_at: 0,
                updated_at: 0,
                fields: Vec::new(),
            });
        }
        let events: Vec<Event> = (0..20_000)
            .map(|k| Event {
                id: k,
                customer: k * 7 % 5000,
                event_id: None,
                event_type: EventCode::parse("open").unwrap(),
                channel: Channel::parse("app").unwrap(),
                device_id: None,
                timestamp: k,
                properties: Properties::default(),
            })
            .collect();
        index.add_events(&events);
        for id in (0..5000).step_by(3) {
            index.remove(id);
        }
        let tree = Resolved::Event(EventTest {
            event: EventCode::parse("open").unwrap(),
            channel: None,
            window: (0, 12_000),
            wheres: Vec::new(),
            measure: EventMeasure::Count {
                lo: 3,
                hi: 3,
                negated: false,
            },
        });
        let tz = jiff::tz::TimeZone::UTC;
        let plan = index.compile_node(&tree, &tz);
        let members = index.members_resolved(&tree, &tz);
        assert!(
            members.len() > 100 && members.len() < 3000,
            "{}",
            members.len()
        );
        for slot in index.alive.iter() {
            assert_eq!(plan.test_row(slot), members.contains(slot), "slot {slot}");
        }
    }

    #[test]
    fn narrow_millionths_agree_with_to_micros() {
        for v in [
            0.0,
            -0.0,
            0.5e-6,
            -0.5e-6,
            1.5e-6,
            2.5e-6,
            12.345_678_5,
            8.999e12,
            -8.999e12,
            9e12,
            1e15,
            -1e15,
            9.2e12,
            1e20,
            1e300,
            f64::NAN,
            0.1 + 0.2,
        ] {
            match micros_i64(v) {
                Some(m) => assert_eq!(i128::from(m), to_micros(v), "{v}"),
                None => assert!(i64::try_from(to_micros(v)).is_err(), "{v}"),
            }
        }
    }
}
