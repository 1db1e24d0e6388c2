//! Number columns stored exactly in the narrowest form that holds every value: fixed-point
//! integers (`i8`, `i16` or `i32` counts of `10^-scale`, scale 0–4) while every value is
//! one, `f64` otherwise.
//!
//! A value `x` is stored as the integer `n` only if `n as f64 / 10^scale == x` (the
//! correctly rounded quotient, bit for bit; −0 is stored as 0, which every filter treats
//! alike), so decoding gives back exactly the parsed `f64`. Since that quotient is
//! monotone in `n`, a range of `f64` bounds is exactly a range of integers
//! ([`int_bounds`]), and an equality with `x` is an equality with the one integer that
//! decodes to `x` ([`encode`]): scans compare integers, 1, 2 or 4 bytes per row instead of
//! 8. The form only widens — a wider integer, a larger scale, then `f64` — re-encoding the
//! rows that hold a value, a bounded number of times in a column's life (like the string
//! codes in [`crate::column::Codes`]).

use crate::bits::Bits;

/// Largest scale: values with up to 4 decimals (cents, basis points) stay integers.
pub(crate) const MAX_SCALE: u8 = 4;
const POW10: [f64; MAX_SCALE as usize + 1] = [1.0, 10.0, 100.0, 1000.0, 10000.0];
const POW10_INT: [i64; MAX_SCALE as usize + 1] = [1, 10, 100, 1000, 10000];

/// Fixed-point integers in one width.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Ints {
    I8(Vec<i8>),
    I16(Vec<i16>),
    I32(Vec<i32>),
}

impl Ints {
    /// `rows` zeros in the narrowest width holding every integer of `lo..=hi` (which lies
    /// within `i32`).
    fn zeros(rows: usize, lo: i64, hi: i64) -> Self {
        if lo >= i64::from(i8::MIN) && hi <= i64::from(i8::MAX) {
            Ints::I8(vec![0; rows])
        } else if lo >= i64::from(i16::MIN) && hi <= i64::from(i16::MAX) {
            Ints::I16(vec![0; rows])
        } else {
            Ints::I32(vec![0; rows])
        }
    }

    /// The smallest and largest integer of the width.
    pub(crate) fn limits(&self) -> (i64, i64) {
        match self {
            Ints::I8(_) => (i64::from(i8::MIN), i64::from(i8::MAX)),
            Ints::I16(_) => (i64::from(i16::MIN), i64::from(i16::MAX)),
            Ints::I32(_) => (i64::from(i32::MIN), i64::from(i32::MAX)),
        }
    }

    #[inline]
    pub(crate) fn get(&self, row: usize) -> Option<i64> {
        match self {
            Ints::I8(v) => v.get(row).map(|&x| i64::from(x)),
            Ints::I16(v) => v.get(row).map(|&x| i64::from(x)),
            Ints::I32(v) => v.get(row).map(|&x| i64::from(x)),
        }
    }

    /// Sets row `row` to `n`, if `n` fits the width (the caller checked).
    fn put(&mut self, row: usize, n: i64) {
        match self {
            Ints::I8(v) => {
                if let (Some(s), Ok(n)) = (v.get_mut(row), i8::try_from(n)) {
                    *s = n;
                }
            }
            Ints::I16(v) => {
                if let (Some(s), Ok(n)) = (v.get_mut(row), i16::try_from(n)) {
                    *s = n;
                }
            }
            Ints::I32(v) => {
                if let (Some(s), Ok(n)) = (v.get_mut(row), i32::try_from(n)) {
                    *s = n;
                }
            }
        }
    }

    pub(crate) fn len(&self) -> usize {
        match self {
            Ints::I8(v) => v.len(),
            Ints::I16(v) => v.len(),
            Ints::I32(v) => v.len(),
        }
    }

    /// Bytes per row.
    pub(crate) fn width(&self) -> usize {
        match self {
            Ints::I8(_) => 1,
            Ints::I16(_) => 2,
            Ints::I32(_) => 4,
        }
    }

    fn resize(&mut self, rows: usize) {
        match self {
            Ints::I8(v) => v.resize(rows.max(v.len()), 0),
            Ints::I16(v) => v.resize(rows.max(v.len()), 0),
            Ints::I32(v) => v.resize(rows.max(v.len()), 0),
        }
    }
}

/// A number column's values, one per row (meaningful where the column's presence is set).
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Nums {
    /// Row `r` holds `ints[r] / 10^scale`.
    Int {
        ints: Ints,
        scale: u8,
    },
    F64(Vec<f64>),
}

/// `n / 10^scale`, correctly rounded: the value an integer stands for.
#[inline]
pub(crate) fn decode(n: i64, scale: u8) -> f64 {
    n as f64 / POW10[usize::from(scale.min(MAX_SCALE))]
}

/// The integer within `i32` that stands for `x` at `scale`, if there is one.
pub(crate) fn encode(x: f64, scale: u8) -> Option<i64> {
    if x == 0.0 {
        return Some(0);
    }
    let scaled = (x * POW10[usize::from(scale.min(MAX_SCALE))]).round();
    if !(f64::from(i32::MIN)..=f64::from(i32::MAX)).contains(&scaled) {
        return None;
    }
    let n = scaled as i64;
    (decode(n, scale) == x).then_some(n)
}

/// The integers `n` within `i32` whose value `n / 10^scale` lies in `lo..=hi`, as an
/// inclusive range (`None` if there is none). Exact: the decoded value is monotone in `n`,
/// so the bounds are found from a rounded guess and corrected by testing its neighbours.
pub(crate) fn int_bounds(lo: f64, hi: f64, scale: u8) -> Option<(i64, i64)> {
    if lo.is_nan() || hi.is_nan() {
        return None;
    }
    let (min, max) = (i64::from(i32::MIN), i64::from(i32::MAX));
    let s = POW10[usize::from(scale.min(MAX_SCALE))];
    let clamp = |g: f64, a: i64, b: i64| -> i64 {
        if g.is_nan() {
            a
        } else {
            (g.clamp(a as f64, b as f64)) as i64
        }
    };
    // The first n with decode(n) >= lo (max + 1 if none).
    let mut first = clamp((lo * s).ceil(), min, max + 1);
    while first > min && decode(first - 1, scale) >= lo {
        first -= 1;
    }
    while first <= max && decode(first, scale) < lo {
        first += 1;
    }
    // The last n with decode(n) <= hi (min - 1 if none).
    let mut last = clamp((hi * s).floor(), min - 1, max);
    while last < max && decode(last + 1, scale) <= hi {
        last += 1;
    }
    while last >= min && decode(last, scale) > hi {
        last -= 1;
    }
    (first <= last).then_some((first, last))
}

impl Nums {
    /// `rows` rows of one-byte integers.
    pub(crate) fn new(rows: usize) -> Self {
        Nums::Int {
            ints: Ints::I8(vec![0; rows]),
            scale: 0,
        }
    }

    /// The value of row `row`, if below the capacity.
    #[inline]
    pub(crate) fn get(&self, row: usize) -> Option<f64> {
        match self {
            Nums::Int { ints, scale } => ints.get(row).map(|n| decode(n, *scale)),
            Nums::F64(v) => v.get(row).copied(),
        }
    }

    pub(crate) fn len(&self) -> usize {
        match self {
            Nums::Int { ints, .. } => ints.len(),
            Nums::F64(v) => v.len(),
        }
    }

    pub(crate) fn resize(&mut self, rows: usize) {
        match self {
            Nums::Int { ints, .. } => ints.resize(rows),
            Nums::F64(v) => v.resize(rows.max(v.len()), 0.0),
        }
    }

    pub(crate) fn heap_bytes(&self) -> usize {
        match self {
            Nums::Int { ints, .. } => ints.len() * ints.width(),
            Nums::F64(v) => v.capacity() * 8,
        }
    }

    /// Sets row `row` (below the capacity) to `x`, first widening the form if `x` does not
    /// fit it; `present` says which rows hold values to keep.
    pub(crate) fn set(&mut self, row: usize, x: f64, present: &Bits) {
        if let Nums::Int { ints, scale } = self
            && let Some(n) = encode(x, *scale)
        {
            let (lo, hi) = ints.limits();
            if (lo..=hi).contains(&n) {
                ints.put(row, n);
                return;
            }
        }
        if let Nums::F64(v) = self {
            if let Some(slot) = v.get_mut(row) {
                *slot = x;
            }
            return;
        }
        self.widen(x, present);
        match self {
            Nums::Int { ints, scale } => {
                if let Some(n) = encode(x, *scale) {
                    ints.put(row, n);
                }
            }
            Nums::F64(v) => {
                if let Some(slot) = v.get_mut(row) {
                    *slot = x;
                }
            }
        }
    }

    /// Re-encodes the rows in `present` in the narrowest form at least as wide as the
    /// current one that also holds `x`.
    fn widen(&mut self, x: f64, present: &Bits) {
        let Nums::Int { ints, scale } = self else {
            return;
        };
        let scale = *scale;
        let Some((k, n)) = (scale..=MAX_SCALE).find_map(|k| encode(x, k).map(|n| (k, n))) else {
            *self = self.to_f64(present);
            return;
        };
        let mul = POW10_INT[usize::from(k - scale)];
        let (mut lo, mut hi) = (n, n);
        for row in present.iter() {
            if let Some(v) = ints.get(row) {
                lo = lo.min(v * mul);
                hi = hi.max(v * mul);
            }
        }
        if lo < i64::from(i32::MIN) || hi > i64::from(i32::MAX) {
            *self = self.to_f64(present);
            return;
        }
        let (old_lo, old_hi) = ints.limits();
        let mut fresh = Ints::zeros(ints.len(), lo.min(old_lo), hi.max(old_hi));
        for row in present.iter() {
            if let Some(v) = ints.get(row) {
                fresh.put(row, v * mul);
            }
        }
        *self = Nums::Int {
            ints: fresh,
            scale: k,
        };
    }

    fn to_f64(&self, present: &Bits) -> Nums {
        let mut v = vec![0.0; self.len()];
        for row in present.iter() {
            if let (Some(slot), Some(x)) = (v.get_mut(row), self.get(row)) {
                *slot = x;
            }
        }
        Nums::F64(v)
    }

    /// A form read back from a snapshot, if its parts are consistent.
    pub(crate) fn int_from_parts(ints: Ints, scale: u8) -> Option<Nums> {
        (scale <= MAX_SCALE).then_some(Nums::Int { ints, scale })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn column(values: &[f64]) -> (Nums, Bits) {
        let rows = values.len();
        let mut nums = Nums::new(rows);
        let mut present = Bits::with_rows(rows);
        for (row, &x) in values.iter().enumerate() {
            nums.set(row, x, &present);
            present.assign(row, true);
        }
        (nums, present)
    }

    /// Bytes per row and the scale (`None`: `f64`).
    type Form = (usize, Option<u8>);

    fn form(n: &Nums) -> Form {
        match n {
            Nums::Int { ints, scale } => (ints.width(), Some(*scale)),
            Nums::F64(_) => (8, None),
        }
    }

    #[test]
    fn values_come_back_exactly_in_the_narrowest_form() {
        let cases: [(&[f64], Form); 8] = [
            (&[0.0, 90.0, -5.0], (1, Some(0))),
            (&[18.0, 500.0, 3.0], (2, Some(0))),
            (&[1.5, 2.25, 100.0], (2, Some(2))),
            (&[0.1, 49_999.99, 12.34], (4, Some(2))),
            (&[1.0, 3_000_000_000.0], (8, None)),
            (&[0.1 + 0.2], (8, None)),
            (&[1e-9, 2.0], (8, None)),
            (&[-2_147_483_648.0, 2_147_483_647.0], (4, Some(0))),
        ];
        for (values, want) in cases {
            let (nums, _) = column(values);
            assert_eq!(form(&nums), want, "{values:?}");
            for (row, &x) in values.iter().enumerate() {
                assert_eq!(nums.get(row).map(f64::to_bits), Some(x.to_bits()), "{x}");
            }
        }
        let (nums, _) = column(&[-0.0, 7.0]);
        assert_eq!(nums.get(0), Some(0.0), "−0 is kept as 0");
    }

    #[test]
    fn widening_keeps_only_present_rows_and_every_value() {
        let mut nums = Nums::new(4);
        let mut present = Bits::with_rows(4);
        nums.set(0, 7.0, &present);
        present.assign(0, true);
        nums.set(1, 100.0, &present);
        present.assign(1, true);
        nums.set(2, 0.25, &present);
        present.assign(2, true);
        nums.set(3, 1e6, &present);
        present.assign(3, true);
        assert_eq!(form(&nums), (4, Some(2)));
        let got: Vec<f64> = (0..4).filter_map(|r| nums.get(r)).collect();
        assert_eq!(got, vec![7.0, 100.0, 0.25, 1e6]);
        nums.set(1, 1e300, &present);
        assert_eq!(form(&nums), (8, None));
        let got: Vec<f64> = (0..4).filter_map(|r| nums.get(r)).collect();
        assert_eq!(got, vec![7.0, 1e300, 0.25, 1e6]);
    }

    #[test]
    fn bounds_are_exact_at_every_scale() {
        for scale in 0..=MAX_SCALE {
            for &(lo, hi) in &[
                (5000.0, f64::INFINITY),
                (5000.0f64.next_up(), 1e300),
                (-0.0, 0.0),
                (0.005, 0.015),
                (-1.25, 1.25),
                (f64::NEG_INFINITY, -1e300),
                (1e300, f64::INFINITY),
                (-2.0e9, 2.0e9),
                (2.5, 2.4),
            ] {
                let range = int_bounds(lo, hi, scale);
                // Check against a brute force around the found edges and a few points.
                let ok = |n: i64| {
                    let v = decode(n, scale);
                    lo <= v && v <= hi
                };
                match range {
                    None => {
                        for n in [-3, -1, 0, 1, 3, 500_000, 50_000_000] {
                            assert!(!ok(n), "{lo}..{hi} at {scale}: {n}");
                        }
                    }
                    Some((a, b)) => {
                        assert!(ok(a) && ok(b), "{lo}..{hi} at {scale}");
                        assert!(a == i64::from(i32::MIN) || !ok(a - 1));
                        assert!(b == i64::from(i32::MAX) || !ok(b + 1));
                    }
                }
            }
        }
        assert_eq!(
            int_bounds(5000.0f64.next_up(), f64::INFINITY, 0),
            Some((5001, i64::from(i32::MAX)))
        );
        assert_eq!(int_bounds(5000.5, 5000.5, 1), Some((50005, 50005)));
        assert_eq!(int_bounds(5000.55, 5000.55, 1), None);
    }

    #[test]
    fn encode_finds_the_one_integer_of_a_value() {
        assert_eq!(encode(12.34, 2), Some(1234));
        assert_eq!(encode(12.345, 2), None);
        assert_eq!(encode(-0.0, 3), Some(0));
        assert_eq!(encode(3e9, 0), None);
        assert_eq!(encode(f64::MAX, 4), None);
        assert_eq!(encode(0.1, 0), None);
    }
}
