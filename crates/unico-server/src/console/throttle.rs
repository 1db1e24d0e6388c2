//! Token buckets per subject (a client address, a key), for rate limits. Pure: the caller
//! passes the time, so tests need no clock and no sleep.

use std::collections::HashMap;
use std::hash::Hash;
use std::time::{Duration, Instant};

/// How a [`Buckets`] limits each subject: `burst` at once, then one more every `refill`.
#[derive(Debug, Clone, Copy)]
pub struct Rate {
    pub burst: u32,
    pub refill: Duration,
}

#[derive(Debug, Clone, Copy)]
struct Bucket {
    /// Tokens left as of `updated`, at most `burst`.
    tokens: f64,
    updated: Instant,
}

/// One token bucket per subject, for at most `max_subjects` subjects at a time (the map
/// itself must not grow without bound when subjects are many, such as client addresses).
#[derive(Debug)]
pub struct Buckets<K> {
    rate: Rate,
    max_subjects: usize,
    by_subject: HashMap<K, Bucket>,
}

impl<K: Hash + Eq + Clone> Buckets<K> {
    pub fn new(rate: Rate, max_subjects: usize) -> Self {
        assert!(rate.burst > 0 && !rate.refill.is_zero() && max_subjects > 0);
        Self {
            rate,
            max_subjects,
            by_subject: HashMap::new(),
        }
    }

    /// The bucket's tokens at `now`, refilled since its last update.
    fn level(&self, bucket: &Bucket, now: Instant) -> f64 {
        let elapsed = now.saturating_duration_since(bucket.updated);
        let refilled = elapsed.as_secs_f64() / self.rate.refill.as_secs_f64();
        (bucket.tokens + refilled).min(f64::from(self.rate.burst))
    }

    /// `Ok` if `subject` has a token left at `now` (without taking it), else how long until
    /// it has one.
    pub fn check(&self, subject: &K, now: Instant) -> Result<(), Duration> {
        let Some(bucket) = self.by_subject.get(subject) else {
            return Ok(());
        };
        let level = self.level(bucket, now);
        if level >= 1.0 {
            Ok(())
        } else {
            Err(self.rate.refill.mul_f64(1.0 - level))
        }
    }

    /// Takes a token from `subject` at `now`: `Ok` if it had one, else how long until it
    /// has one (and nothing is taken).
    pub fn take(&mut self, subject: &K, now: Instant) -> Result<(), Duration> {
        self.check(subject, now)?;
        let tokens = match self.by_subject.get(subject) {
            Some(bucket) => self.level(bucket, now),
            None => {
                self.make_room(now);
                f64::from(self.rate.burst)
            }
        };
        self.by_subject.insert(
            subject.clone(),
            Bucket {
                tokens: tokens - 1.0,
                updated: now,
            },
        );
        Ok(())
    }

    /// Frees a place for a new subject when all are taken: first the buckets that are full
    /// again (forgetting them changes nothing), else the least recently used one (which
    /// forgives that subject: a limit may be lenient under pressure, never unbounded).
    fn make_room(&mut self, now: Instant) {
        if self.by_subject.len() < self.max_subjects {
            return;
        }
        let burst = f64::from(self.rate.burst);
        let full: Vec<K> = self
            .by_subject
            .iter()
            .filter(|(_, b)| self.level(b, now) >= burst)
            .map(|(k, _)| k.clone())
            .collect();
        for k in &full {
            self.by_subject.remove(k);
        }
        if self.by_subject.len() >= self.max_subjects
            && let Some(oldest) = self
                .by_subject
                .iter()
                .min_by_key(|(_, b)| b.updated)
                .map(|(k, _)| k.clone())
        {
            self.by_subject.remove(&oldest);
        }
        assert!(self.by_subject.len() < self.max_subjects);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const RATE: Rate = Rate {
        burst: 3,
        refill: Duration::from_secs(10),
    };

    #[test]
    fn a_burst_then_one_token_per_refill() {
        let t0 = Instant::now();
        let mut b = Buckets::new(RATE, 100);
        for _ in 0..3 {
            assert_eq!(b.take(&"a", t0), Ok(()));
        }
        assert_eq!(b.take(&"a", t0), Err(Duration::from_secs(10)));
        assert_eq!(
            b.check(&"a", t0 + Duration::from_secs(4)),
            Err(Duration::from_secs(6))
        );
        assert_eq!(
            b.take(&"b", t0),
            Ok(()),
            "another subject has its own bucket"
        );
        assert_eq!(b.take(&"a", t0 + Duration::from_secs(10)), Ok(()));
        assert!(b.take(&"a", t0 + Duration::from_secs(10)).is_err());
        // Refills stop at the burst.
        let later = t0 + Duration::from_secs(3600);
        for _ in 0..3 {
            assert_eq!(b.take(&"a", later), Ok(()));
        }
        assert!(b.take(&"a", later).is_err());
    }

    #[test]
    fn checking_takes_nothing() {
        let t0 = Instant::now();
        let mut b = Buckets::new(RATE, 100);
        for _ in 0..10 {
            assert_eq!(b.check(&"a", t0), Ok(()));
        }
        for _ in 0..3 {
            assert_eq!(b.take(&"a", t0), Ok(()));
        }
    }

    #[test]
    fn subjects_are_bounded_forgetting_full_buckets_first() {
        let t0 = Instant::now();
        let at = |s: u64| t0 + Duration::from_secs(s);
        let mut b = Buckets::new(RATE, 4);
        for s in 0..4 {
            b.take(&s, at(s)).unwrap();
        }
        b.take(&0, at(5)).unwrap();
        b.take(&0, at(5)).unwrap();
        assert!(b.take(&0, at(6)).is_err());
        // At the bound, no bucket full again: the least recently used one (1) goes.
        b.take(&10, at(6)).unwrap();
        assert_eq!(b.by_subject.len(), 4);
        assert!(b.take(&0, at(6)).is_err(), "0 is still held back");
        // Buckets full again are the first forgotten; the others are kept.
        b.take(&0, at(60)).unwrap();
        b.take(&11, at(60)).unwrap();
        assert_eq!(b.by_subject.len(), 2, "0 and 11");
        b.take(&0, at(60)).unwrap();
        b.take(&0, at(60)).unwrap();
        assert!(b.take(&0, at(60)).is_err());
    }
}
