//! Dense bitsets over slots (or dictionary codes), one bit per row in `u64` words.
//!
//! A set of slots is a `Vec<u64>`: bit `i % 64` of word `i / 64` is row `i`. Reads past
//! the end are `false`, so a bitset never has to be longer than its highest set bit; the
//! columns still keep theirs as long as the index's capacity so that scans need no bounds
//! juggling.

/// Rows per word.
pub(crate) const WORD_BITS: usize = 64;

/// A growable dense bitset.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Bits {
    words: Vec<u64>,
}

impl Bits {
    /// An empty set able to hold `rows` rows without growing.
    pub(crate) fn with_rows(rows: usize) -> Self {
        Self {
            words: vec![0; rows.div_ceil(WORD_BITS)],
        }
    }

    /// A set over exactly these words.
    pub(crate) fn from_words(words: Vec<u64>) -> Self {
        Self { words }
    }

    /// Grows (never shrinks) to hold `rows` rows.
    pub(crate) fn grow(&mut self, rows: usize) {
        let words = rows.div_ceil(WORD_BITS);
        if words > self.words.len() {
            self.words.resize(words, 0);
        }
    }

    pub(crate) fn words(&self) -> &[u64] {
        &self.words
    }

    pub(crate) fn get(&self, i: usize) -> bool {
        self.words
            .get(i / WORD_BITS)
            .is_some_and(|w| (w >> (i % WORD_BITS)) & 1 == 1)
    }

    /// Sets or clears bit `i`, growing if needed.
    pub(crate) fn assign(&mut self, i: usize, on: bool) {
        let w = i / WORD_BITS;
        if w >= self.words.len() {
            if !on {
                return;
            }
            self.words.resize(w + 1, 0);
        }
        let bit = 1u64 << (i % WORD_BITS);
        if on {
            self.words[w] |= bit;
        } else {
            self.words[w] &= !bit;
        }
    }

    pub(crate) fn count_ones(&self) -> u64 {
        self.words.iter().map(|w| u64::from(w.count_ones())).sum()
    }

    /// The set bits, ascending.
    pub(crate) fn iter(&self) -> impl Iterator<Item = usize> + '_ {
        self.words.iter().enumerate().flat_map(|(wi, &w)| {
            let mut rest = w;
            std::iter::from_fn(move || {
                if rest == 0 {
                    return None;
                }
                let bit = rest.trailing_zeros() as usize;
                rest &= rest - 1;
                Some(wi * WORD_BITS + bit)
            })
        })
    }

    pub(crate) fn heap_bytes(&self) -> usize {
        self.words.capacity() * std::mem::size_of::<u64>()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bits_grow_on_demand_and_read_false_past_the_end() {
        let mut b = Bits::default();
        assert!(!b.get(1000));
        b.assign(1000, false);
        assert!(b.words().is_empty(), "clearing past the end does not grow");
        b.assign(130, true);
        b.assign(0, true);
        assert!(b.get(130) && b.get(0) && !b.get(129));
        assert_eq!(b.count_ones(), 2);
        assert_eq!(b.iter().collect::<Vec<_>>(), vec![0, 130]);
        b.assign(130, false);
        assert_eq!(b.iter().collect::<Vec<_>>(), vec![0]);
    }
}
