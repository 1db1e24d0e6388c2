//! The string dictionary of one string column: every distinct value once, numbered by a
//! `u32` code, with its Unicode-lowercased form beside it.
//!
//! Layout: the values and their lowercased forms live in two byte arenas with offsets
//! (`value(code) = bytes[offsets[code]..offsets[code + 1]]`), so that a text test
//! (`contains`, `starts_with`, `ends_with`) is one sequential pass over the lowercased
//! arena, evaluated once per distinct value whatever the number of rows holding it.
//! Lookups by value go through a table from a 64-bit hash to the first code of that hash,
//! chained through `next` on the (astronomically rare) collisions, so no value is stored
//! twice and a lookup always compares the bytes (exact, whatever the hash does).
//!
//! *Invariants*: `refs[code]` is the number of rows holding `code`; a code whose count
//! falls to zero stays in the dictionary (it simply matches no row) until
//! [`Dict::compacted`] rebuilds the dictionary without the dead codes.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::OnceLock;

use unico_filter::resolve::TextOp;

use crate::bits::{Bits, WORD_BITS};

/// No code: ends a collision chain.
const NONE: u32 = u32::MAX;

/// A hasher that passes an already mixed `u64` through.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct PassThrough(u64);

impl Hasher for PassThrough {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        self.0 = hash_bytes(bytes);
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

/// A hasher for integer keys (customer ids): one multiply, high bits folded down.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct IntMix(u64);

impl Hasher for IntMix {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        self.0 = hash_bytes(bytes);
    }

    fn write_i64(&mut self, n: i64) {
        let h = (n as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        self.0 = h ^ (h >> 29);
    }
}

/// The build hasher of maps keyed by customer id.
pub(crate) type IntHash = BuildHasherDefault<IntMix>;

/// The folded multiply: the 128-bit product's halves xored, so every input bit moves
/// both up and down.
fn fold(a: u64, b: u64) -> u64 {
    let p = u128::from(a) * u128::from(b);
    (p as u64) ^ ((p >> 64) as u64)
}

/// A fast, non-cryptographic hash of a byte string (a folded multiply per 8 bytes).
/// Collisions only cost a comparison: lookups always compare the bytes.
pub(crate) fn hash_bytes(bytes: &[u8]) -> u64 {
    const K1: u64 = 0x9E37_79B9_7F4A_7C15;
    const K2: u64 = 0xD6E8_FEB8_6659_FD93;
    let mut h = (bytes.len() as u64) ^ K2;
    let mut chunks = bytes.chunks_exact(8);
    for chunk in &mut chunks {
        let mut word = [0u8; 8];
        word.copy_from_slice(chunk);
        h = fold(h ^ u64::from_le_bytes(word), K1);
    }
    let rest = chunks.remainder();
    if !rest.is_empty() {
        let mut word = [0u8; 8];
        word[..rest.len()].copy_from_slice(rest);
        h = fold(h ^ u64::from_le_bytes(word), K1);
    }
    fold(h, K2)
}

/// Two arenas would hold more than this many codes only past `u32` codes.
const MAX_CODES: usize = (u32::MAX - 1) as usize;

/// Lookup by value: a table from a value's hash to the last code with that hash, and
/// per code the previous code with the same hash (`NONE` ends the chain).
#[derive(Debug, Clone, Default)]
struct Lookup {
    table: HashMap<u64, u32, BuildHasherDefault<PassThrough>>,
    next: Vec<u32>,
}

impl Lookup {
    /// The lookup of the live codes (`refs > 0`). Dead codes are left out: a scrubbed one
    /// (see [`Dict::scrub_if_dead`]) holds zeros that could equal another code's value,
    /// and a lookup must find the code rows hold. A value whose code died is interned
    /// again under a new code.
    fn build(bytes: &[u8], offsets: &[usize], refs: &[u32]) -> Lookup {
        let n = offsets.len().saturating_sub(1);
        let mut table: HashMap<u64, u32, BuildHasherDefault<PassThrough>> = HashMap::default();
        table.reserve(n);
        let mut next = Vec::with_capacity(n);
        for (code, w) in offsets.windows(2).enumerate() {
            if refs.get(code).is_none_or(|&r| r == 0) {
                next.push(NONE);
                continue;
            }
            let hash = hash_bytes(bytes.get(w[0]..w[1]).unwrap_or_default());
            match table.entry(hash) {
                std::collections::hash_map::Entry::Occupied(mut e) => {
                    next.push(*e.get());
                    *e.get_mut() = code as u32;
                }
                std::collections::hash_map::Entry::Vacant(e) => {
                    next.push(NONE);
                    e.insert(code as u32);
                }
            }
        }
        Lookup { table, next }
    }
}

/// The stored parts of a dictionary (see [`Dict::parts`]).
pub(crate) type DictParts<'a> = (&'a [u8], &'a [usize], &'a [u8], &'a [usize], &'a [u32]);

/// A string dictionary. See the module docs for the layout.
#[derive(Debug, Clone)]
pub(crate) struct Dict {
    bytes: Vec<u8>,
    offsets: Vec<usize>,
    lower: Vec<u8>,
    lower_offsets: Vec<usize>,
    refs: Vec<u32>,
    /// The lookup by value; built on first use after [`Dict::from_parts`] (a restart
    /// answers most filters without ever looking a value of a big dictionary up).
    lookup: OnceLock<Lookup>,
    /// Codes with `refs > 0`.
    live: usize,
}

impl Default for Dict {
    fn default() -> Self {
        Self {
            bytes: Vec::new(),
            offsets: vec![0],
            lower: Vec::new(),
            lower_offsets: vec![0],
            refs: Vec::new(),
            lookup: OnceLock::from(Lookup::default()),
            live: 0,
        }
    }
}

impl Dict {
    /// Number of codes, dead ones included.
    pub(crate) fn codes(&self) -> usize {
        self.refs.len()
    }

    #[cfg(test)]
    pub(crate) fn live(&self) -> usize {
        self.live
    }

    /// The bytes of a value (valid UTF-8: it was a `&str`).
    pub(crate) fn value(&self, code: u32) -> &[u8] {
        let c = code as usize;
        match (self.offsets.get(c), self.offsets.get(c + 1)) {
            (Some(&a), Some(&b)) => &self.bytes[a..b],
            _ => &[],
        }
    }

    /// The stored parts: values, their offsets, lowercased values, their offsets, and the
    /// rows holding each code (the lookup table is derived).
    pub(crate) fn parts(&self) -> DictParts<'_> {
        (
            &self.bytes,
            &self.offsets,
            &self.lower,
            &self.lower_offsets,
            &self.refs,
        )
    }

    /// A dictionary from [`Dict::parts`], if they are consistent (offsets from 0, in
    /// order, ending at their arena's end, one per code plus one; values are UTF-8).
    pub(crate) fn from_parts(
        bytes: Vec<u8>,
        offsets: Vec<usize>,
        lower: Vec<u8>,
        lower_offsets: Vec<usize>,
        refs: Vec<u32>,
    ) -> Option<Dict> {
        let n = refs.len();
        let ok = |offsets: &[usize], arena: &[u8]| {
            offsets.len() == n + 1
                && offsets.first() == Some(&0)
                && offsets.last() == Some(&arena.len())
                && offsets.windows(2).all(|w| w[0] <= w[1])
        };
        if n > MAX_CODES
            || !ok(&offsets, &bytes)
            || !ok(&lower_offsets, &lower)
            || std::str::from_utf8(&bytes).is_err()
        {
            return None;
        }
        let live = refs.iter().filter(|&&r| r > 0).count();
        Some(Dict {
            bytes,
            offsets,
            lower,
            lower_offsets,
            refs,
            lookup: OnceLock::new(),
            live,
        })
    }

    fn lookup(&self) -> &Lookup {
        self.lookup
            .get_or_init(|| Lookup::build(&self.bytes, &self.offsets, &self.refs))
    }

    /// The code of `value`, if the dictionary holds it: always a live one; a dead code is
    /// found until the dictionary is read back from its parts, not after.
    pub(crate) fn get(&self, value: &str) -> Option<u32> {
        let lookup = self.lookup();
        let mut code = *lookup.table.get(&hash_bytes(value.as_bytes()))?;
        while code != NONE {
            if self.value(code) == value.as_bytes() {
                return Some(code);
            }
            code = lookup.next.get(code as usize).copied().unwrap_or(NONE);
        }
        None
    }

    /// The code of `value`, adding it if new, and counts one more row holding it. `None`
    /// only if the dictionary is full (4 billion distinct values).
    pub(crate) fn intern(&mut self, value: &str) -> Option<u32> {
        let hash = hash_bytes(value.as_bytes());
        let lookup = self.lookup();
        let head = lookup.table.get(&hash).copied().unwrap_or(NONE);
        let mut code = head;
        while code != NONE {
            if self.value(code) == value.as_bytes() {
                self.retain(code);
                return Some(code);
            }
            code = lookup.next.get(code as usize).copied().unwrap_or(NONE);
        }
        if self.refs.len() >= MAX_CODES {
            return None;
        }
        let code = self.refs.len() as u32;
        self.bytes.extend_from_slice(value.as_bytes());
        self.offsets.push(self.bytes.len());
        push_lowercase(&mut self.lower, value);
        self.lower_offsets.push(self.lower.len());
        self.refs.push(1);
        self.live += 1;
        if let Some(lookup) = self.lookup.get_mut() {
            lookup.next.push(head);
            lookup.table.insert(hash, code);
        }
        Some(code)
    }

    /// Counts one more row holding `code`.
    pub(crate) fn retain(&mut self, code: u32) {
        if let Some(r) = self.refs.get_mut(code as usize) {
            if *r == 0 {
                self.live += 1;
            }
            *r = r.saturating_add(1);
        }
    }

    /// Counts one row fewer holding `code`.
    pub(crate) fn release(&mut self, code: u32) {
        if let Some(r) = self.refs.get_mut(code as usize)
            && *r > 0
        {
            *r -= 1;
            if *r == 0 {
                self.live -= 1;
            }
        }
    }

    /// Overwrites the bytes of `code` (in both arenas) with zeros if no row holds it any
    /// more, so that an erased value is gone from memory and from the next snapshot. The
    /// code stays (dead) and its length too, so offsets and other codes are untouched; a
    /// lookup of the old value no longer finds it (its bytes differ), and interning the
    /// value again makes a new code.
    pub(crate) fn scrub_if_dead(&mut self, code: u32) {
        let c = code as usize;
        if self.refs.get(c) != Some(&0) {
            return;
        }
        for (arena, offsets) in [
            (&mut self.bytes, &self.offsets),
            (&mut self.lower, &self.lower_offsets),
        ] {
            if let (Some(&a), Some(&b)) = (offsets.get(c), offsets.get(c + 1))
                && let Some(range) = arena.get_mut(a..b)
            {
                range.fill(0);
            }
        }
    }

    /// Overwrites every dead code's value ([`Dict::scrub_if_dead`] for each): values no
    /// row holds any more, among them those an erased customer held before an update.
    pub(crate) fn scrub_dead(&mut self) {
        if self.live == self.codes() {
            return;
        }
        for code in 0..self.codes() as u32 {
            self.scrub_if_dead(code);
        }
    }

    /// Whether enough codes are dead that rebuilding pays: more dead than live, and not
    /// a handful.
    pub(crate) fn wants_compaction(&self) -> bool {
        let dead = self.codes() - self.live;
        dead > 1024 && dead > self.live
    }

    /// A dictionary of the live codes only, and the map from old codes to new ones
    /// (`u32::MAX` for dead codes).
    pub(crate) fn compacted(&self) -> (Dict, Vec<u32>) {
        let mut fresh = Dict::default();
        let mut map = vec![NONE; self.codes()];
        for (old, &refs) in self.refs.iter().enumerate() {
            if refs == 0 {
                continue;
            }
            let text = std::str::from_utf8(self.value(old as u32)).unwrap_or_default();
            if let Some(new) = fresh.intern(text) {
                fresh.refs[new as usize] = refs;
                map[old] = new;
            }
        }
        (fresh, map)
    }

    /// The codes whose lowercased value passes `op` with `needle_lower` (already
    /// lowercased), as a bitset over codes; `negated` flips the answer for every code.
    /// Splits the work over `threads` when the dictionary is large.
    pub(crate) fn text_matches(
        &self,
        op: TextOp,
        needle_lower: &str,
        negated: bool,
        threads: usize,
    ) -> Bits {
        let needle = needle_lower.as_bytes();
        let lower = &self.lower;
        let n = needle.len();
        match op {
            // Short suffixes and prefixes: one 16-byte load per value, compared under a
            // mask (the bytes of neighbouring values in the arena are masked out).
            TextOp::EndsWith if (1..=16).contains(&n) => {
                let mut word = [0u8; 16];
                word[16 - n..].copy_from_slice(needle);
                let want = u128::from_le_bytes(word);
                let keep = u128::MAX << (8 * (16 - n));
                self.codes_matching(negated, threads, |a, b| {
                    if b - a < n {
                        false
                    } else if let Some(tail) = b.checked_sub(16).and_then(|s| lower.get(s..b)) {
                        let mut w = [0u8; 16];
                        w.copy_from_slice(tail);
                        (u128::from_le_bytes(w) ^ want) & keep == 0
                    } else {
                        lower.get(a..b).is_some_and(|h| h.ends_with(needle))
                    }
                })
            }
            TextOp::StartsWith if (1..=16).contains(&n) => {
                let mut word = [0u8; 16];
                word[..n].copy_from_slice(needle);
                let want = u128::from_le_bytes(word);
                let keep = u128::MAX >> (8 * (16 - n));
                self.codes_matching(negated, threads, |a, b| {
                    if b - a < n {
                        false
                    } else if let Some(head) = lower.get(a..a + 16) {
                        let mut w = [0u8; 16];
                        w.copy_from_slice(head);
                        (u128::from_le_bytes(w) ^ want) & keep == 0
                    } else {
                        lower.get(a..b).is_some_and(|h| h.starts_with(needle))
                    }
                })
            }
            TextOp::EndsWith => self.codes_matching(negated, threads, |a, b| {
                lower.get(a..b).is_some_and(|h| h.ends_with(needle))
            }),
            TextOp::StartsWith => self.codes_matching(negated, threads, |a, b| {
                lower.get(a..b).is_some_and(|h| h.starts_with(needle))
            }),
            TextOp::Contains => self.codes_matching(negated, threads, |a, b| {
                lower.get(a..b).is_some_and(|h| contains(h, needle))
            }),
        }
    }

    /// The codes whose lowercased value, `lower[a..b]`, passes `test` (flipped by
    /// `negated`), as a bitset over codes; one sequential pass over the offsets, split
    /// over `threads` when the dictionary is large.
    fn codes_matching(
        &self,
        negated: bool,
        threads: usize,
        test: impl Fn(usize, usize) -> bool + Sync,
    ) -> Bits {
        let n = self.codes();
        let mut words = vec![0u64; n.div_ceil(WORD_BITS)];
        let offsets = &self.lower_offsets;
        let fill = |first_word: usize, out: &mut [u64]| {
            for (j, word) in out.iter_mut().enumerate() {
                let start = (first_word + j) * WORD_BITS;
                let end = (start + WORD_BITS).min(n);
                let Some(bounds) = offsets.get(start..=end) else {
                    continue;
                };
                let mut bits = 0u64;
                for (i, w) in bounds.windows(2).enumerate() {
                    bits |= u64::from(test(w[0], w[1]) != negated) << i;
                }
                *word = bits;
            }
        };
        // A part is at least a million codes (a few milliseconds): on shared cores a helper
        // thread may wait a scheduler slice for a core, and the caller waits for it.
        crate::parallel::split_words(&mut words, threads, 1 << 14, fill);
        Bits::from_words(words)
    }

    pub(crate) fn heap_bytes(&self) -> usize {
        self.bytes.capacity()
            + self.lower.capacity()
            + (self.offsets.capacity() + self.lower_offsets.capacity()) * 8
            + self.refs.capacity() * 4
            // hashbrown: key + value + one control byte per bucket.
            + self.lookup.get().map_or(0, |l| {
                l.next.capacity() * 4 + l.table.capacity() * (8 + 4 + 1)
            })
    }
}

/// Appends `value.to_lowercase()` without allocating for the common ASCII case.
fn push_lowercase(out: &mut Vec<u8>, value: &str) {
    if value.is_ascii() {
        out.extend(value.bytes().map(|b| b.to_ascii_lowercase()));
    } else {
        out.extend_from_slice(value.to_lowercase().as_bytes());
    }
}

/// Whether `needle` occurs in `hay`. On valid UTF-8 on both sides a byte match is a
/// character match (UTF-8 is self-synchronising), so this equals `str::contains`.
pub(crate) fn contains(hay: &[u8], needle: &[u8]) -> bool {
    let Some((&first, _)) = needle.split_first() else {
        return true;
    };
    if needle.len() > hay.len() {
        return false;
    }
    let last_start = hay.len() - needle.len();
    let mut i = 0;
    while i <= last_start {
        match hay[i..=last_start].iter().position(|&b| b == first) {
            None => return false,
            Some(p) => {
                i += p;
                if &hay[i..i + needle.len()] == needle {
                    return true;
                }
                i += 1;
            }
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interning_counts_rows_and_finds_values_exactly() {
        let mut d = Dict::default();
        let a = d.intern("Ángel").unwrap();
        let b = d.intern("ana").unwrap();
        assert_eq!(d.intern("Ángel"), Some(a));
        assert_eq!(d.get("ana"), Some(b));
        assert_eq!(d.get("ANA"), None);
        assert_eq!(d.value(a), "Ángel".as_bytes());
        assert_eq!(d.live(), 2);
        d.release(b);
        assert_eq!(d.live(), 1);
        assert_eq!(d.get("ana"), Some(b), "dead codes stay until compaction");
        let (fresh, map) = d.compacted();
        assert_eq!(fresh.codes(), 1);
        assert_eq!(map, vec![0, NONE]);
        assert_eq!(fresh.get("Ángel"), Some(0));
    }

    /// A scrubbed value is gone from both arenas; the dictionary read back from its parts
    /// (two scrubbed codes and a live value that are all zeros of one length) finds the
    /// live code, never a dead one, and interning the erased value again makes a new code.
    #[test]
    fn a_scrubbed_value_is_gone_and_never_found_in_place_of_a_live_one() {
        let mut d = Dict::default();
        // The live value first: a lookup chain walks the latest code first.
        let zeros = d.intern("\0\0\0").unwrap();
        let secret = d.intern("Sec").unwrap();
        let other = d.intern("Oth").unwrap();
        d.scrub_if_dead(secret);
        assert_eq!(d.value(secret), b"Sec", "a live code is never scrubbed");
        for code in [secret, other] {
            d.release(code);
            d.scrub_if_dead(code);
            assert_eq!(d.value(code), b"\0\0\0");
        }
        let (bytes, offsets, lower, lower_offsets, refs) = d.parts();
        assert!(!bytes.windows(3).any(|w| w == b"Sec" || w == b"Oth"));
        assert!(!lower.windows(3).any(|w| w == b"sec" || w == b"oth"));
        let mut back = Dict::from_parts(
            bytes.to_vec(),
            offsets.to_vec(),
            lower.to_vec(),
            lower_offsets.to_vec(),
            refs.to_vec(),
        )
        .unwrap();
        assert_eq!(back.get("\0\0\0"), Some(zeros));
        assert_eq!(back.get("Sec"), None);
        assert_eq!(back.intern("\0\0\0"), Some(zeros));
        let again = back.intern("Sec").unwrap();
        assert!(again > other);
        assert_eq!(back.value(again), b"Sec");
    }

    #[test]
    fn text_tests_run_on_the_unicode_lowercase() {
        let mut d = Dict::default();
        for v in ["ÁNGEL", "Straße", "bob@GMAIL.com", "x"] {
            d.intern(v);
        }
        let hits = |op, needle: &str, negated| {
            d.text_matches(op, needle, negated, 1)
                .iter()
                .collect::<Vec<_>>()
        };
        assert_eq!(hits(TextOp::Contains, "áng", false), vec![0]);
        assert_eq!(hits(TextOp::EndsWith, "@gmail.com", false), vec![2]);
        assert_eq!(
            hits(TextOp::EndsWith, "strasse", false),
            Vec::<usize>::new()
        );
        assert_eq!(hits(TextOp::StartsWith, "stra", false), vec![1]);
        // "ángel" holds "á", not "a".
        assert_eq!(hits(TextOp::Contains, "a", true), vec![0, 3]);
    }

    type StrTest = fn(&str, &str) -> bool;

    #[test]
    fn word_at_a_time_prefix_and_suffix_tests_agree_with_str() {
        let values = [
            "",
            "a",
            "@gmail.com",
            "x@gmail.com",
            "gmail.com",
            "Ñ@GMAIL.COM",
            "abcdefghijklmnopq",
            "bcdefghijklmnopq",
            "ab",
            "b",
            "ÁÉÍ",
            "short",
            "a@gmail.co",
            "aaaaaaaaaaaaaaaaaaaaa",
        ];
        let mut d = Dict::default();
        for v in values {
            d.intern(v);
        }
        let needles = [
            "a",
            "@gmail.com",
            "gmail.com",
            "ab",
            "q",
            "abcdefghijklmnop",
            "abcdefghijklmnopq",
            "bcdefghijklmnopq",
            "á",
            "é",
            "aaaaaaaaaaaaaaaaa",
            "",
        ];
        for needle in needles {
            for negated in [false, true] {
                let ops: [(TextOp, StrTest); 3] = [
                    (TextOp::EndsWith, |h, n| h.ends_with(n)),
                    (TextOp::StartsWith, |h, n| h.starts_with(n)),
                    (TextOp::Contains, |h, n| h.contains(n)),
                ];
                for (op, f) in ops {
                    let got: Vec<usize> = d.text_matches(op, needle, negated, 1).iter().collect();
                    let want: Vec<usize> = values
                        .iter()
                        .enumerate()
                        .filter(|(_, v)| f(&v.to_lowercase(), needle) != negated)
                        .map(|(i, _)| i)
                        .collect();
                    assert_eq!(got, want, "{op:?} {needle:?} negated {negated}");
                }
            }
        }
    }

    #[test]
    fn byte_search_agrees_with_str_contains() {
        for (h, n) in [
            ("aaab", "aab"),
            ("abc", ""),
            ("", "a"),
            ("éa", "a"),
            ("ab", "abc"),
        ] {
            assert_eq!(
                contains(h.as_bytes(), n.as_bytes()),
                h.contains(n),
                "{h} {n}"
            );
        }
    }
}
#[cfg(test)]
mod hash_tests {
    /// Regression: a multiply-rotate hash collided on 1.4 % of `c` + 9-digit ids.
    #[test]
    fn ids_with_a_common_prefix_do_not_collide() {
        let hashes: std::collections::HashSet<u64> = (0..200_000)
            .map(|i| super::hash_bytes(format!("c{:09}", i * 7).as_bytes()))
            .collect();
        assert_eq!(hashes.len(), 200_000);
    }
}
