//! Filter evaluation into bitsets: a [`ResolvedFilter`] is compiled against the columns
//! into a [`Plan`], then evaluated block by block.
//!
//! A block is [`BLOCK_WORDS`] words (4 096 rows). Every node is evaluated under a *mask*
//! of the rows whose answer still matters, and writes `answer ∧ mask`:
//! - the top mask is the block's alive rows, so every answer is within the customers;
//! - `and` narrows the mask child by child and stops once it is empty;
//! - `or` gives each child only the rows not yet accepted and stops once none are left;
//! - `not x` is `mask ∧ ¬x` — the exact complement within the mask;
//! - a leaf skips every word whose mask (∧ presence) is zero, and otherwise tests the 64
//!   rows of the word branch-free into one `u64`.
//! - an event condition is evaluated while compiling, by [`crate::event_eval`] (one scan
//!   of its type's events), into a leaf of precomputed alive rows ([`Plan::Rows`]) that
//!   the blocks then read like a presence bitmap.
//! - a subscription condition is a leaf over its channel's bitset of subscribed slots,
//!   read like a presence bitmap (one AND per word).
//!
//! Temporaries are a few `[u64; 64]` on the stack per level, so a whole block stays in
//! L1 while the tree is walked; the blocks are split over threads by
//! [`crate::parallel`]. Strings are tested on dictionary codes: the predicate is applied
//! once per distinct value (for text tests, to the lowercased dictionary) into a bitset
//! over codes, and rows look their code up.

use jiff::tz::TimeZone;
use unico_filter::ResolvedFilter;
use unico_filter::resolve::{Resolved, TestKind};

use crate::bits::{Bits, WORD_BITS};
use crate::column::{Codes, Column, Data};
use crate::dict::Dict;
use crate::index::AppIndex;
use crate::local::{LocalDays, MonthDayMask, md_in, md_mask};
use crate::num::{Ints, Nums, encode, int_bounds};

/// Words per evaluation block.
pub(crate) const BLOCK_WORDS: usize = 64;
/// Rows per evaluation block; column capacities are multiples of it.
pub(crate) const BLOCK_ROWS: usize = BLOCK_WORDS * WORD_BITS;

/// Most codes a [`Kernel::CodeIn`] compares with.
const CODE_IN: usize = 4;

/// A compiled filter: a tree of nodes whose leaves borrow the columns they scan.
#[derive(Debug)]
pub(crate) enum Plan<'a> {
    /// Every row of the mask.
    All,
    /// No row.
    Nothing,
    And(Vec<Plan<'a>>),
    Or(Vec<Plan<'a>>),
    Not(Box<Plan<'a>>),
    /// Rows computed when compiling (an event condition), all of them alive.
    Rows {
        rows: Bits,
        /// How many (the set bits of `rows`).
        held: u64,
    },
    Leaf {
        present: &'a Bits,
        /// How many rows hold a value (the set bits of `present`, all alive rows).
        held: u64,
        kernel: Kernel<'a>,
    },
}

/// What a leaf tests on the rows that hold a value.
#[derive(Debug)]
pub(crate) enum Kernel<'a> {
    /// Has a value.
    Present,
    /// Has no value.
    Absent,
    CodeEq(&'a Codes, u32),
    CodeNe(&'a Codes, u32),
    /// The code is one of these (a few, padded by repeating one), or, negated, none.
    CodeIn(&'a Codes, [u32; CODE_IN], bool),
    /// The code is in this set (over codes).
    CodeSet(&'a Codes, Bits),
    /// One-byte codes: the code's entry in this table is 1.
    CodeTable(&'a [u8], Box<[u8; 256]>),
    /// `lo <= v <= hi` (exclusive bounds already moved to the next float).
    NumRange(&'a [f64], f64, f64),
    /// Equality with one of a few values (sorted, deduplicated, −0 as 0).
    NumSet(&'a [f64], Vec<f64>, bool),
    /// Fixed-point numbers: `lo <= n <= hi`, both bounds within the width.
    IntRange(&'a Ints, i64, i64),
    /// Fixed-point numbers equal to one of these integers (sorted, deduplicated, within
    /// the width), or, negated, to none.
    IntSet(&'a Ints, Vec<i64>, bool),
    MsRange(&'a [i64], i64, i64, bool),
    MsRanges(&'a [i64], Vec<(i64, i64)>, bool),
    DayRange(&'a [i32], i32, i32, bool),
    DayRanges(&'a [i32], Vec<(i32, i32)>, bool),
    /// The precomputed month-day code is in the mask.
    MonthDays(&'a [u16], MonthDayMask),
    /// Datetimes in a zone other than the index's: the local date is computed per row.
    MonthDaysOfMs(&'a [i64], LocalDays, MonthDayMask),
}

impl AppIndex {
    /// Compiles a resolved filter against this index's columns.
    pub(crate) fn compile<'a>(&'a self, resolved: &ResolvedFilter) -> Plan<'a> {
        self.compile_node(resolved.root(), resolved.tz())
    }

    /// Compiles a resolved tree whose calendar dates are read in `tz`. Event conditions
    /// are evaluated here, into rows.
    pub(crate) fn compile_node<'a>(&'a self, node: &Resolved, tz: &TimeZone) -> Plan<'a> {
        match node {
            Resolved::And(children) => {
                let mut kept = Vec::with_capacity(children.len());
                for c in children {
                    match self.compile_node(c, tz) {
                        Plan::Nothing => return Plan::Nothing,
                        Plan::All => {}
                        p => kept.push(p),
                    }
                }
                group(kept, Plan::All, Plan::And)
            }
            Resolved::Or(children) => {
                let mut kept = Vec::with_capacity(children.len());
                for c in children {
                    match self.compile_node(c, tz) {
                        Plan::All => return Plan::All,
                        Plan::Nothing => {}
                        p => kept.push(p),
                    }
                }
                group(kept, Plan::Nothing, Plan::Or)
            }
            Resolved::Not(inner) => match self.compile_node(inner, tz) {
                Plan::All => Plan::Nothing,
                Plan::Nothing => Plan::All,
                p => Plan::Not(Box::new(p)),
            },
            Resolved::Test(test) => {
                let Some(column) = self.column(&test.target) else {
                    // No column: nobody holds a value.
                    return if test.kind == TestKind::NotExists {
                        Plan::All
                    } else {
                        Plan::Nothing
                    };
                };
                self.compile_test(column, &test.kind, tz)
            }
            Resolved::Event(test) => self.compile_event(test),
            // The channel's bitset read like a presence bitmap (its bits are alive rows).
            Resolved::Subscribed(channel) => match self.subscribed.get(channel) {
                Some(bits) => Plan::Leaf {
                    present: bits,
                    held: bits.count_ones(),
                    kernel: Kernel::Present,
                },
                None => Plan::Nothing,
            },
        }
    }

    fn compile_test<'a>(&'a self, column: &'a Column, kind: &TestKind, tz: &TimeZone) -> Plan<'a> {
        let leaf = |kernel| Plan::Leaf {
            present: &column.present,
            held: column.count,
            kernel,
        };
        // An empty set of accepted values: nothing, or (negated) every value.
        let none_or_present = |negated: bool| {
            if negated {
                leaf(Kernel::Present)
            } else {
                Plan::Nothing
            }
        };
        match (kind, &column.data) {
            (TestKind::Exists, _) => leaf(Kernel::Present),
            (TestKind::NotExists, _) => leaf(Kernel::Absent),
            (TestKind::StrIn { values, negated }, Data::Str { codes, dict }) => {
                let mut found: Vec<u32> = values.iter().filter_map(|v| dict.get(v)).collect();
                found.sort_unstable();
                found.dedup();
                match (found.as_slice(), *negated) {
                    ([], n) => none_or_present(n),
                    ([c], false) => leaf(Kernel::CodeEq(codes, *c)),
                    ([c], true) => leaf(Kernel::CodeNe(codes, *c)),
                    (few, n) if few.len() <= CODE_IN => {
                        let mut set = [few[0]; CODE_IN];
                        set[..few.len()].copy_from_slice(few);
                        leaf(Kernel::CodeIn(codes, set, n))
                    }
                    (many, n) => leaf(code_set_kernel(codes, code_set(dict, many, n))),
                }
            }
            (
                TestKind::StrText {
                    op,
                    needle_lower,
                    negated,
                },
                Data::Str { codes, dict },
            ) => {
                let set = dict.text_matches(*op, needle_lower, *negated, self.threads());
                // No code, or every code: no row needs its code looked up.
                match set.count_ones() {
                    0 => Plan::Nothing,
                    n if n == dict.codes() as u64 => leaf(Kernel::Present),
                    _ => leaf(code_set_kernel(codes, set)),
                }
            }
            (TestKind::NumIn { values, negated }, Data::Num(Nums::F64(v))) => {
                if values.is_empty() {
                    none_or_present(*negated)
                } else {
                    leaf(Kernel::NumSet(v, values.clone(), *negated))
                }
            }
            (TestKind::NumIn { values, negated }, Data::Num(Nums::Int { ints, scale })) => {
                // A value with no integer of the width is held by no row.
                let (min, max) = ints.limits();
                let mut set: Vec<i64> = values
                    .iter()
                    .filter_map(|&x| encode(x, *scale))
                    .filter(|n| (min..=max).contains(n))
                    .collect();
                set.sort_unstable();
                set.dedup();
                if set.is_empty() {
                    none_or_present(*negated)
                } else {
                    leaf(Kernel::IntSet(ints, set, *negated))
                }
            }
            (
                TestKind::NumRange {
                    lo,
                    lo_inclusive,
                    hi,
                    hi_inclusive,
                },
                Data::Num(nums),
            ) => {
                // Values are finite, so `v > lo` is `v >= next_up(lo)` (also for −∞).
                let lo = if *lo_inclusive { *lo } else { lo.next_up() };
                let hi = if *hi_inclusive { *hi } else { hi.next_down() };
                if lo > hi {
                    return Plan::Nothing;
                }
                match nums {
                    Nums::F64(v) => leaf(Kernel::NumRange(v, lo, hi)),
                    Nums::Int { ints, scale } => {
                        let (min, max) = ints.limits();
                        match int_bounds(lo, hi, *scale) {
                            Some((a, b)) if a <= max && b >= min => {
                                let (a, b) = (a.max(min), b.min(max));
                                if (a, b) == (min, max) {
                                    // Every integer of the width: every value.
                                    leaf(Kernel::Present)
                                } else {
                                    leaf(Kernel::IntRange(ints, a, b))
                                }
                            }
                            _ => Plan::Nothing,
                        }
                    }
                }
            }
            (TestKind::MsRanges { ranges, negated }, Data::Datetime { ms, .. }) => {
                match ranges.as_slice() {
                    [] => none_or_present(*negated),
                    [(a, b)] => leaf(Kernel::MsRange(ms, *a, *b, *negated)),
                    _ => leaf(Kernel::MsRanges(ms, ranges.clone(), *negated)),
                }
            }
            (TestKind::DayRanges { ranges, negated }, Data::Date { days, .. }) => {
                match ranges.as_slice() {
                    [] => none_or_present(*negated),
                    [(a, b)] => leaf(Kernel::DayRange(days, *a, *b, *negated)),
                    _ => leaf(Kernel::DayRanges(days, ranges.clone(), *negated)),
                }
            }
            (TestKind::MonthDays(pairs), Data::Datetime { ms, md }) => {
                if pairs.is_empty() {
                    Plan::Nothing
                } else if tz == self.local().tz() {
                    leaf(Kernel::MonthDays(md, md_mask(pairs)))
                } else {
                    leaf(Kernel::MonthDaysOfMs(
                        ms,
                        LocalDays::new(tz.clone()),
                        md_mask(pairs),
                    ))
                }
            }
            (TestKind::MonthDays(pairs), Data::Date { md, .. }) => {
                if pairs.is_empty() {
                    Plan::Nothing
                } else {
                    leaf(Kernel::MonthDays(md, md_mask(pairs)))
                }
            }
            // A test that does not fit the column's type matches nothing, as in the
            // reference evaluator (the checker never produces one).
            _ => Plan::Nothing,
        }
    }

    /// The column a target reads, if it exists with the target's type.
    pub(crate) fn column(&self, target: &unico_filter::filter::Target) -> Option<&Column> {
        use unico_filter::filter::Target;
        let column = match target {
            Target::CustomerId => self.customer_id_column(),
            Target::CreatedAt => self.created_at_column(),
            Target::UpdatedAt => self.updated_at_column(),
            Target::Field { id, .. } => self.field_column(*id)?,
            // Lowered to event conditions when resolved: no column holds one.
            Target::Computed { .. } => return None,
        };
        (column.ty == target.field_type()).then_some(column)
    }
}

fn group<'a>(
    mut kept: Vec<Plan<'a>>,
    empty: Plan<'a>,
    make: fn(Vec<Plan<'a>>) -> Plan<'a>,
) -> Plan<'a> {
    match kept.len() {
        0 => empty,
        1 => kept.pop().unwrap_or(empty),
        _ => make(kept),
    }
}

/// The kernel testing codes against a set: a byte table for one-byte codes.
fn code_set_kernel(codes: &Codes, set: Bits) -> Kernel<'_> {
    match codes {
        Codes::U8(v) => {
            let mut table = Box::new([0u8; 256]);
            for (code, t) in table.iter_mut().enumerate() {
                *t = u8::from(set.get(code));
            }
            Kernel::CodeTable(v, table)
        }
        _ => Kernel::CodeSet(codes, set),
    }
}

/// The set of `codes` (or, negated, of every other code of the dictionary).
fn code_set(dict: &Dict, codes: &[u32], negated: bool) -> Bits {
    let n = dict.codes();
    let mut words = vec![if negated { u64::MAX } else { 0 }; n.div_ceil(WORD_BITS)];
    if negated
        && !n.is_multiple_of(WORD_BITS)
        && let Some(last) = words.last_mut()
    {
        *last = (1u64 << (n % WORD_BITS)) - 1;
    }
    for &c in codes {
        if let Some(w) = words.get_mut(c as usize / WORD_BITS) {
            let bit = 1u64 << (c as usize % WORD_BITS);
            if negated {
                *w &= !bit;
            } else {
                *w |= bit;
            }
        }
    }
    Bits::from_words(words)
}

impl Plan<'_> {
    /// Whether every leaf only tests presence (a scan of bitmaps, no column values).
    pub(crate) fn reads_presence_only(&self) -> bool {
        match self {
            Plan::All | Plan::Nothing => true,
            Plan::And(children) | Plan::Or(children) => {
                children.iter().all(Plan::reads_presence_only)
            }
            Plan::Not(inner) => inner.reads_presence_only(),
            // One bit per row, like a presence bitmap.
            Plan::Rows { .. } => true,
            Plan::Leaf { kernel, .. } => matches!(kernel, Kernel::Present | Kernel::Absent),
        }
    }

    /// The count of a plan that needs no scan: everyone, no one, or a lone presence test
    /// (a column holds values only for alive rows, and counts them), out of `live`.
    pub(crate) fn count_without_scan(&self, live: u64) -> Option<u64> {
        match self {
            Plan::All => Some(live),
            Plan::Nothing => Some(0),
            Plan::Rows { held, .. } => Some(*held),
            Plan::Leaf {
                held,
                kernel: Kernel::Present,
                ..
            } => Some(*held),
            Plan::Leaf {
                held,
                kernel: Kernel::Absent,
                ..
            } => Some(live.saturating_sub(*held)),
            _ => None,
        }
    }

    /// Whether the row in `slot` passes: the row-at-a-time twin of [`eval`], for walks
    /// that stop after a few hits (the first page of a listing). The caller checks that
    /// the slot is alive.
    pub(crate) fn test_row(&self, slot: usize) -> bool {
        match self {
            Plan::All => true,
            Plan::Nothing => false,
            Plan::And(children) => children.iter().all(|c| c.test_row(slot)),
            Plan::Or(children) => children.iter().any(|c| c.test_row(slot)),
            Plan::Not(inner) => !inner.test_row(slot),
            Plan::Rows { rows, .. } => rows.get(slot),
            Plan::Leaf {
                present, kernel, ..
            } => {
                let held = present.get(slot);
                match kernel {
                    Kernel::Absent => !held,
                    _ if !held => false,
                    k => k.test_row(slot),
                }
            }
        }
    }
}

impl Kernel<'_> {
    /// The kernel's test on one row that holds a value.
    fn test_row(&self, slot: usize) -> bool {
        let code = |codes: &Codes| codes.get(slot);
        match self {
            Kernel::Present => true,
            Kernel::Absent => false,
            Kernel::CodeEq(codes, c) => code(codes) == Some(*c),
            Kernel::CodeNe(codes, c) => code(codes).is_some_and(|x| x != *c),
            Kernel::CodeIn(codes, set, negated) => {
                code(codes).is_some_and(|x| set.contains(&x) != *negated)
            }
            Kernel::CodeSet(codes, set) => code(codes).is_some_and(|x| set.get(x as usize)),
            Kernel::CodeTable(v, table) => v.get(slot).is_some_and(|&x| table[usize::from(x)] != 0),
            Kernel::NumRange(v, lo, hi) => v.get(slot).is_some_and(|&x| *lo <= x && x <= *hi),
            Kernel::NumSet(v, set, negated) => {
                v.get(slot).is_some_and(|&x| num_in(set, x) != *negated)
            }
            Kernel::IntRange(v, lo, hi) => v.get(slot).is_some_and(|x| *lo <= x && x <= *hi),
            Kernel::IntSet(v, set, negated) => v
                .get(slot)
                .is_some_and(|x| set.binary_search(&x).is_ok() != *negated),
            Kernel::MsRange(v, a, b, negated) => v
                .get(slot)
                .is_some_and(|&x| (*a <= x && x <= *b) != *negated),
            Kernel::MsRanges(v, ranges, negated) => v
                .get(slot)
                .is_some_and(|&x| in_ranges(ranges, x) != *negated),
            Kernel::DayRange(v, a, b, negated) => v
                .get(slot)
                .is_some_and(|&x| (*a <= x && x <= *b) != *negated),
            Kernel::DayRanges(v, ranges, negated) => v
                .get(slot)
                .is_some_and(|&x| in_ranges(ranges, x) != *negated),
            Kernel::MonthDays(md, m) => md.get(slot).is_some_and(|&x| md_in(m, x)),
            Kernel::MonthDaysOfMs(ms, local, m) => {
                ms.get(slot).is_some_and(|&x| md_in(m, local.md(x)))
            }
        }
    }
}

/// Whether `x` equals one of `set` (sorted, deduplicated, −0 as 0).
#[inline(always)]
fn num_in(set: &[f64], x: f64) -> bool {
    if set.len() <= 8 {
        set.contains(&x)
    } else {
        let x = x + 0.0;
        set.binary_search_by(|s| s.total_cmp(&x)).is_ok()
    }
}

/// Evaluates `plan` on the words `w0 .. w0 + mask.len()` (at most one block), writing
/// `answer ∧ mask` into `out`.
pub(crate) fn eval(plan: &Plan<'_>, w0: usize, mask: &[u64], out: &mut [u64]) {
    let n = mask.len().min(out.len()).min(BLOCK_WORDS);
    let (mask, out) = (&mask[..n], &mut out[..n]);
    match plan {
        Plan::All => out.copy_from_slice(mask),
        Plan::Nothing => out.fill(0),
        Plan::Rows { rows, .. } => {
            let rows = rows.words();
            for (j, (o, &m)) in out.iter_mut().zip(mask).enumerate() {
                *o = m & rows.get(w0 + j).copied().unwrap_or(0);
            }
        }
        Plan::Leaf {
            present, kernel, ..
        } => leaf(present.words(), kernel, w0, mask, out),
        Plan::Not(inner) => {
            let mut tmp = [0u64; BLOCK_WORDS];
            eval(inner, w0, mask, &mut tmp[..n]);
            for ((o, &m), &t) in out.iter_mut().zip(mask).zip(&tmp[..n]) {
                *o = m & !t;
            }
        }
        Plan::And(children) => {
            let mut acc = [0u64; BLOCK_WORDS];
            acc[..n].copy_from_slice(mask);
            for child in children {
                if acc[..n].iter().all(|&w| w == 0) {
                    break;
                }
                let narrowed = acc;
                eval(child, w0, &narrowed[..n], &mut acc[..n]);
            }
            out.copy_from_slice(&acc[..n]);
        }
        Plan::Or(children) => {
            let mut acc = [0u64; BLOCK_WORDS];
            let mut rest = [0u64; BLOCK_WORDS];
            let mut tmp = [0u64; BLOCK_WORDS];
            for child in children {
                let mut any = 0u64;
                for ((r, &m), &a) in rest[..n].iter_mut().zip(mask).zip(&acc[..n]) {
                    *r = m & !a;
                    any |= *r;
                }
                if any == 0 {
                    break;
                }
                eval(child, w0, &rest[..n], &mut tmp[..n]);
                for (a, &t) in acc[..n].iter_mut().zip(&tmp[..n]) {
                    *a |= t;
                }
            }
            out.copy_from_slice(&acc[..n]);
        }
    }
}

/// The 64 values of word `w`, if the column has them (always, by the capacity invariant).
#[inline(always)]
fn chunk<T>(values: &[T], w: usize) -> Option<&[T; WORD_BITS]> {
    let base = w * WORD_BITS;
    values.get(base..base + WORD_BITS)?.try_into().ok()
}

/// A word holding present rows whose values the column does not have: the capacity
/// invariant is broken. Answering "no row matches" would be a wrong count, so the scan
/// stops here (the panic reaches the caller through [`crate::parallel`]).
#[cold]
#[inline(never)]
fn missing_chunk(word: usize, values: usize) -> u64 {
    panic!(
        "engine invariant broken: word {word} has present rows but the column holds {values} values"
    )
}

/// Tests 64 values into one word, branch-free: the tests go into 64 bytes (a loop the
/// compiler vectorises), then every 8 bytes of 0/1 are gathered into 8 bits by one
/// multiplication (byte `i` lands on bit `56 + i`; the partial products never overlap,
/// so nothing carries).
#[inline(always)]
pub(crate) fn bits64<T: Copy>(values: &[T; WORD_BITS], test: impl Fn(T) -> bool) -> u64 {
    let mut bytes = [0u8; WORD_BITS];
    for (b, &v) in bytes.iter_mut().zip(values) {
        *b = u8::from(test(v));
    }
    let mut bits = 0u64;
    for (k, chunk) in bytes.chunks_exact(8).enumerate() {
        let mut word = [0u8; 8];
        word.copy_from_slice(chunk);
        let packed = u64::from_le_bytes(word).wrapping_mul(0x0102_0408_1020_4080) >> 56;
        bits |= packed << (k * 8);
    }
    bits
}

/// Runs `test` on every word whose mask ∧ presence is not zero.
#[inline(always)]
fn scan<T: Copy>(
    present: &[u64],
    values: &[T],
    w0: usize,
    mask: &[u64],
    out: &mut [u64],
    test: impl Fn(T) -> bool,
) {
    for (j, (o, &m)) in out.iter_mut().zip(mask).enumerate() {
        let w = w0 + j;
        let m = m & present.get(w).copied().unwrap_or(0);
        *o = if m == 0 {
            0
        } else {
            match chunk(values, w) {
                Some(c) => m & bits64(c, &test),
                None => missing_chunk(w, values.len()),
            }
        };
    }
}

/// Codes equal to one of `set` (or, negated, to none of them), compared in the column's
/// own width; a code too wide for the column is held by no row.
#[inline(always)]
fn code_in<T: Copy + PartialEq + TryFrom<u32>, const N: usize>(
    present: &[u64],
    values: &[T],
    set: &[u32; N],
    negated: bool,
    w0: usize,
    mask: &[u64],
    out: &mut [u64],
) {
    let Some(first) = set.iter().find_map(|&c| T::try_from(c).ok()) else {
        let none = if negated { u64::MAX } else { 0 };
        for (j, (o, &m)) in out.iter_mut().zip(mask).enumerate() {
            *o = m & present.get(w0 + j).copied().unwrap_or(0) & none;
        }
        return;
    };
    let mut narrow = [first; N];
    for (n, &c) in narrow.iter_mut().zip(set) {
        *n = T::try_from(c).unwrap_or(first);
    }
    scan(present, values, w0, mask, out, |x| {
        narrow.iter().fold(false, |hit, &c| hit | (x == c)) != negated
    });
}

/// Integers in `lo..=hi`, compared in the column's own width (the bounds fit it).
#[inline(always)]
fn int_range<T: Copy + PartialOrd + TryFrom<i64>>(
    present: &[u64],
    values: &[T],
    lo: i64,
    hi: i64,
    w0: usize,
    mask: &[u64],
    out: &mut [u64],
) {
    let (Ok(lo), Ok(hi)) = (T::try_from(lo), T::try_from(hi)) else {
        out.fill(0);
        return;
    };
    scan(present, values, w0, mask, out, |x| lo <= x && x <= hi);
}

/// Integers equal to one of `set` (or, negated, to none), in the column's own width.
#[inline(always)]
fn int_set<T: Copy + PartialEq + TryFrom<i64> + Into<i64>>(
    present: &[u64],
    values: &[T],
    set: &[i64],
    negated: bool,
    w0: usize,
    mask: &[u64],
    out: &mut [u64],
) {
    let narrow: Vec<T> = set.iter().filter_map(|&n| T::try_from(n).ok()).collect();
    if narrow.len() <= 8 {
        scan(present, values, w0, mask, out, |x| {
            narrow.iter().fold(false, |hit, &c| hit | (x == c)) != negated
        });
    } else {
        scan(present, values, w0, mask, out, |x| {
            set.binary_search(&x.into()).is_ok() != negated
        });
    }
}

fn in_ranges<T: PartialOrd + Copy>(ranges: &[(T, T)], v: T) -> bool {
    ranges.iter().any(|&(a, b)| a <= v && v <= b)
}

fn leaf(present: &[u64], kernel: &Kernel<'_>, w0: usize, mask: &[u64], out: &mut [u64]) {
    match kernel {
        Kernel::Present => {
            for (j, (o, &m)) in out.iter_mut().zip(mask).enumerate() {
                *o = m & present.get(w0 + j).copied().unwrap_or(0);
            }
        }
        Kernel::Absent => {
            for (j, (o, &m)) in out.iter_mut().zip(mask).enumerate() {
                *o = m & !present.get(w0 + j).copied().unwrap_or(0);
            }
        }
        Kernel::CodeEq(codes, c) => match codes {
            Codes::U8(v) => code_in(present, v, &[*c], false, w0, mask, out),
            Codes::U16(v) => code_in(present, v, &[*c], false, w0, mask, out),
            Codes::U32(v) => code_in(present, v, &[*c], false, w0, mask, out),
        },
        Kernel::CodeNe(codes, c) => match codes {
            Codes::U8(v) => code_in(present, v, &[*c], true, w0, mask, out),
            Codes::U16(v) => code_in(present, v, &[*c], true, w0, mask, out),
            Codes::U32(v) => code_in(present, v, &[*c], true, w0, mask, out),
        },
        Kernel::CodeIn(codes, set, negated) => match codes {
            Codes::U8(v) => code_in(present, v, set, *negated, w0, mask, out),
            Codes::U16(v) => code_in(present, v, set, *negated, w0, mask, out),
            Codes::U32(v) => code_in(present, v, set, *negated, w0, mask, out),
        },
        Kernel::CodeSet(codes, set) => {
            let set = set.words();
            let test = |x: u32| {
                set.get(x as usize / WORD_BITS)
                    .is_some_and(|w| (w >> (x as usize % WORD_BITS)) & 1 == 1)
            };
            match codes {
                Codes::U8(v) => scan(present, v, w0, mask, out, |x| test(u32::from(x))),
                Codes::U16(v) => scan(present, v, w0, mask, out, |x| test(u32::from(x))),
                Codes::U32(v) => scan(present, v, w0, mask, out, test),
            }
        }
        Kernel::CodeTable(v, table) => {
            scan(present, v, w0, mask, out, |x| table[usize::from(x)] != 0)
        }
        Kernel::NumRange(v, lo, hi) => scan(present, v, w0, mask, out, |x| *lo <= x && x <= *hi),
        Kernel::NumSet(v, set, negated) => {
            if set.len() <= 8 {
                scan(present, v, w0, mask, out, |x| set.contains(&x) != *negated)
            } else {
                scan(present, v, w0, mask, out, |x| num_in(set, x) != *negated)
            }
        }
        Kernel::IntRange(ints, lo, hi) => match ints {
            Ints::I8(v) => int_range(present, v, *lo, *hi, w0, mask, out),
            Ints::I16(v) => int_range(present, v, *lo, *hi, w0, mask, out),
            Ints::I32(v) => int_range(present, v, *lo, *hi, w0, mask, out),
        },
        Kernel::IntSet(ints, set, negated) => match ints {
            Ints::I8(v) => int_set(present, v, set, *negated, w0, mask, out),
            Ints::I16(v) => int_set(present, v, set, *negated, w0, mask, out),
            Ints::I32(v) => int_set(present, v, set, *negated, w0, mask, out),
        },
        Kernel::MsRange(v, a, b, negated) => scan(present, v, w0, mask, out, |x| {
            (*a <= x && x <= *b) != *negated
        }),
        Kernel::MsRanges(v, ranges, negated) => scan(present, v, w0, mask, out, |x| {
            in_ranges(ranges, x) != *negated
        }),
        Kernel::DayRange(v, a, b, negated) => scan(present, v, w0, mask, out, |x| {
            (*a <= x && x <= *b) != *negated
        }),
        Kernel::DayRanges(v, ranges, negated) => scan(present, v, w0, mask, out, |x| {
            in_ranges(ranges, x) != *negated
        }),
        Kernel::MonthDays(md, m) => scan(present, md, w0, mask, out, |x| md_in(m, x)),
        Kernel::MonthDaysOfMs(ms, local, m) => {
            scan(present, ms, w0, mask, out, |x| md_in(m, local.md(x)))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn negated_code_sets_cover_exactly_the_other_codes() {
        let mut d = Dict::default();
        for v in ["a", "b", "c"] {
            d.intern(v);
        }
        let set = code_set(&d, &[1], true);
        assert_eq!(set.iter().collect::<Vec<_>>(), vec![0, 2]);
        let set = code_set(&d, &[0, 2], false);
        assert_eq!(set.iter().collect::<Vec<_>>(), vec![0, 2]);
    }

    #[test]
    fn bits64_puts_row_i_in_bit_i() {
        let mut values = [0u32; WORD_BITS];
        values[3] = 7;
        values[63] = 7;
        assert_eq!(bits64(&values, |x| x == 7), (1 << 3) | (1 << 63));
    }

    /// A present row without its value (the capacity invariant broken) is not "no match":
    /// the scan panics, so the count fails instead of coming out short.
    #[test]
    fn a_present_row_without_its_value_fails_the_scan() {
        let present = [u64::MAX, 1];
        let values = vec![7u8; WORD_BITS]; // the second word's values are missing
        let mask = [u64::MAX, u64::MAX];
        let mut out = [0u64; 2];
        let scanned = std::panic::catch_unwind(move || {
            scan(&present, &values, 0, &mask, &mut out, |x| x == 7);
            out
        });
        assert!(scanned.is_err());
        // A word with no present row needs no values: the end of a column is fine.
        let present = [u64::MAX, 0];
        let values = vec![7u8; WORD_BITS];
        let mut out = [0u64; 2];
        scan(&present, &values, 0, &mask, &mut out, |x| x == 7);
        assert_eq!(out, [u64::MAX, 0]);
    }
}
