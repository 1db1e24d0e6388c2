//! The arithmetic of event aggregates, shared by every evaluator so they agree exactly.
//!
//! A sum of floating-point numbers depends on the order it is taken in; events reach
//! evaluators in different orders. So a number property is first taken to the millionth
//! ([`to_micros`], magnitudes beyond 10^20 saturate) and the millionths are summed exactly
//! in an `i128`; the sum is the same in any order and turns back into one `f64`.

/// Largest magnitude an aggregated value keeps; beyond it the value saturates.
pub const MAX_AGGREGATED_MAGNITUDE: f64 = 1e20;

/// `v` in millionths, rounded to nearest (ties away from zero); NaN is 0.
pub fn to_micros(v: f64) -> i128 {
    if v.is_nan() {
        return 0;
    }
    let v = v.clamp(-MAX_AGGREGATED_MAGNITUDE, MAX_AGGREGATED_MAGNITUDE);
    (v * 1e6).round() as i128
}

/// Millionths back to a number.
pub fn from_micros(micros: i128) -> f64 {
    micros as f64 / 1e6
}

/// The average of `count` values summing to `sum_micros`; `None` when `count` is 0.
pub fn average(sum_micros: i128, count: u64) -> Option<f64> {
    (count > 0).then(|| from_micros(sum_micros) / count as f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sums_do_not_depend_on_order() {
        let values = [0.1, 0.2, 0.3, 1e15, -1e15, 59.99, 1e-9];
        let forward: i128 = values.iter().map(|v| to_micros(*v)).sum();
        let backward: i128 = values.iter().rev().map(|v| to_micros(*v)).sum();
        assert_eq!(forward, backward);
        assert_eq!(from_micros(forward), 60.59);
        assert_eq!(to_micros(f64::INFINITY), to_micros(1e20));
        assert_eq!(to_micros(f64::NAN), 0);
        assert_eq!(average(to_micros(3.0), 2), Some(1.5));
        assert_eq!(average(0, 0), None);
    }
}
