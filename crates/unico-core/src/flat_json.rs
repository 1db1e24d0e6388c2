//! JSON objects of plain scalars, read by hand.
//!
//! Nearly every event's properties are one small flat object: a few keys, each holding a
//! string without escapes, a number, `true`, `false` or `null`. Reading such an object
//! through serde's generic machinery was a fifth of a backfill's parser and again of the
//! thread preparing the engine's tables. [`read`] finds its members in one pass and
//! declines anything else (an escape or a control character in a string, a nested object
//! or array, a key twice, more than [`MAX_MEMBERS`] members, anything after the object),
//! which the caller then reads with serde as before. Numbers are only delimited here:
//! their values come from [`number`], which answers what serde_json reads for the same
//! text, so both ways of reading agree to the bit. [`walk_object`], the walk over an
//! object's members, also serves the server's reader of whole NDJSON lines.

/// Most members an object read by hand may have (past it, serde reads it).
pub const MAX_MEMBERS: usize = 16;

/// A member's value, as a slice of the text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scalar<'a> {
    /// A string's contents (between its quotes; no escape, no control character).
    Str(&'a str),
    /// A number's text, valid by JSON's grammar.
    Num(&'a str),
    True,
    False,
    Null,
}

/// The members of a flat object, in the order written.
#[derive(Debug, Clone, Copy)]
pub struct FlatObject<'a> {
    members: [(&'a str, Scalar<'a>); MAX_MEMBERS],
    len: usize,
}

impl<'a> FlatObject<'a> {
    pub fn members(&self) -> &[(&'a str, Scalar<'a>)] {
        &self.members[..self.len]
    }
}

/// The members of `text` if it is one JSON object (whitespace around its tokens allowed)
/// of at most [`MAX_MEMBERS`] distinct keys whose values are strings without escapes or
/// control characters, numbers, `true`, `false` or `null`; `None` for any other text.
pub fn read(text: &str) -> Option<FlatObject<'_>> {
    let b = text.as_bytes();
    let mut out = FlatObject {
        members: [("", Scalar::Null); MAX_MEMBERS],
        len: 0,
    };
    walk_object(text, |key, i| {
        if out.len == MAX_MEMBERS || out.members().iter().any(|(k, _)| *k == key) {
            return None;
        }
        let (value, next) = match *b.get(i)? {
            b'"' => {
                let (s, next) = string(text, i)?;
                (Scalar::Str(s), next)
            }
            b't' => literal(b, i, b"true", Scalar::True)?,
            b'f' => literal(b, i, b"false", Scalar::False)?,
            b'n' => literal(b, i, b"null", Scalar::Null)?,
            _ => {
                let end = number_end(b, i)?;
                (Scalar::Num(text.get(i..end)?), end)
            }
        };
        out.members[out.len] = (key, value);
        out.len += 1;
        Some(next)
    })?;
    Some(out)
}

/// Walks the JSON object that is the whole of `text` (whitespace around its tokens
/// allowed), whose keys are strings without escapes or control characters: `member` is
/// given each key and the index of its value's first byte, and answers the index past
/// the value, or `None` to decline the text. `None` for any other text.
pub fn walk_object<'a>(
    text: &'a str,
    mut member: impl FnMut(&'a str, usize) -> Option<usize>,
) -> Option<()> {
    let b = text.as_bytes();
    let mut i = skip_space(b, 0);
    if b.get(i) != Some(&b'{') {
        return None;
    }
    i = skip_space(b, i + 1);
    if b.get(i) != Some(&b'}') {
        loop {
            let (key, next) = string(text, i)?;
            i = skip_space(b, next);
            if b.get(i) != Some(&b':') {
                return None;
            }
            i = skip_space(b, member(key, skip_space(b, i + 1))?);
            match b.get(i) {
                Some(b',') => i = skip_space(b, i + 1),
                Some(b'}') => break,
                _ => return None,
            }
        }
    }
    (skip_space(b, i + 1) == b.len()).then_some(())
}

/// The value serde_json reads for the number written `token` (as `Number::as_f64`
/// answers it): an integer of at most 18 digits exactly, any other through serde_json
/// itself (its rounding of decimals, `-0` as negative zero, integers past 64 bits as
/// floats). `None` if `token` is not a number serde_json reads.
pub fn number(token: &str) -> Option<f64> {
    match plain_integer(token) {
        Some(n) => Some(n as f64),
        None => serde_json::from_str::<f64>(token).ok(),
    }
}

/// `token` as an integer if it is one serde_json reads as an integer and writes back
/// unchanged: `0`, or an optional `-` and 1–18 digits without a leading zero.
pub fn plain_integer(token: &str) -> Option<i64> {
    let digits = token.strip_prefix('-').unwrap_or(token);
    let ok = token == "0"
        || (!digits.is_empty()
            && digits.len() <= 18
            && !digits.starts_with('0')
            && digits.bytes().all(|c| c.is_ascii_digit()));
    if ok { token.parse().ok() } else { None }
}

/// The index of the first byte at or after `i` that is not JSON whitespace.
fn skip_space(b: &[u8], mut i: usize) -> usize {
    while matches!(b.get(i), Some(b' ' | b'\t' | b'\n' | b'\r')) {
        i += 1;
    }
    i
}

/// The string whose opening quote is at `i` if it holds no escape and no control
/// character, and the index past its closing quote.
pub fn string(text: &str, i: usize) -> Option<(&str, usize)> {
    let b = text.as_bytes();
    if b.get(i) != Some(&b'"') {
        return None;
    }
    let start = i + 1;
    let end = start + stop(b.get(start..)?)?;
    if b[end] != b'"' {
        return None;
    }
    Some((text.get(start..end)?, end + 1))
}

/// The index of the first quote, backslash or control character in `b`, looked for
/// eight bytes at a time: in a word, a byte below 0x20 or equal to one of the two gets its
/// high bit set by the usual borrow tricks, which may also flag bytes *after* a true one
/// (a borrow runs upwards) but never before it, so the lowest flag is the first such
/// byte. Bytes of 0x80 and above (UTF-8 past ASCII) are never flagged.
fn stop(b: &[u8]) -> Option<usize> {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGHS: u64 = 0x8080_8080_8080_8080;
    let zero_in = |x: u64| x.wrapping_sub(ONES) & !x;
    let mut at = 0;
    let mut words = b.chunks_exact(8);
    for word in &mut words {
        let mut bytes = [0u8; 8];
        bytes.copy_from_slice(word);
        let x = u64::from_le_bytes(bytes);
        let flags = (zero_in(x ^ (ONES * u64::from(b'"')))
            | zero_in(x ^ (ONES * u64::from(b'\\')))
            | (x.wrapping_sub(ONES * 0x20) & !x))
            & HIGHS;
        if flags != 0 {
            return Some(at + (flags.trailing_zeros() / 8) as usize);
        }
        at += 8;
    }
    words
        .remainder()
        .iter()
        .position(|&c| c == b'"' || c == b'\\' || c < 0x20)
        .map(|p| at + p)
}

fn literal<'a>(b: &[u8], i: usize, word: &[u8], value: Scalar<'a>) -> Option<(Scalar<'a>, usize)> {
    let end = i + word.len();
    (b.get(i..end)? == word).then_some((value, end))
}

/// The index past the number starting at `i`, if JSON's grammar reads one there:
/// `-? (0 | [1-9][0-9]*) (. [0-9]+)? ([eE] [+-]? [0-9]+)?`.
fn number_end(b: &[u8], mut i: usize) -> Option<usize> {
    let digits = |b: &[u8], i: usize| {
        let n = b
            .get(i..)
            .map_or(0, |s| s.iter().take_while(|c| c.is_ascii_digit()).count());
        (n > 0).then_some(i + n)
    };
    if b.get(i) == Some(&b'-') {
        i += 1;
    }
    i = match b.get(i)? {
        b'0' => i + 1,
        b'1'..=b'9' => digits(b, i)?,
        _ => return None,
    };
    if b.get(i) == Some(&b'.') {
        i = digits(b, i + 1)?;
    }
    if matches!(b.get(i), Some(b'e' | b'E')) {
        i += 1;
        if matches!(b.get(i), Some(b'+' | b'-')) {
            i += 1;
        }
        i = digits(b, i)?;
    }
    Some(i)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn members(text: &str) -> Option<Vec<(String, Scalar<'_>)>> {
        read(text).map(|o| {
            o.members()
                .iter()
                .map(|(k, v)| (k.to_string(), *v))
                .collect()
        })
    }

    #[test]
    fn reads_a_flat_object_of_scalars() {
        assert_eq!(
            members(
                r#" { "amount" : 59.90, "currency":"EUR","n":-3,"ok":true,"no":false,"x":null } "#
            ),
            Some(vec![
                ("amount".into(), Scalar::Num("59.90")),
                ("currency".into(), Scalar::Str("EUR")),
                ("n".into(), Scalar::Num("-3")),
                ("ok".into(), Scalar::True),
                ("no".into(), Scalar::False),
                ("x".into(), Scalar::Null),
            ])
        );
        assert_eq!(members("{}"), Some(vec![]));
        assert_eq!(
            members(r#"{"é":"ü ok"}"#),
            Some(vec![("é".into(), Scalar::Str("ü ok"))])
        );
    }

    #[test]
    fn declines_what_it_does_not_read_exactly() {
        for text in [
            r#"{"a":"x\"y"}"#,
            "{\"a\":\"tab\there\"}",
            r#"{"a":{"b":1}}"#,
            r#"{"a":[1]}"#,
            r#"{"a":1,"a":2}"#,
            r#"{"a":01}"#,
            r#"{"a":1.}"#,
            r#"{"a":.5}"#,
            r#"{"a":1e}"#,
            r#"{"a":+1}"#,
            r#"{"a":-}"#,
            r#"{"a":tru}"#,
            r#"{"a":1,}"#,
            r#"{"a":1} x"#,
            r#"{"a":1"#,
            r#"{"a" 1}"#,
            "[1]",
            "",
            "{",
            r#"{"a":NaN}"#,
        ] {
            assert!(read(text).is_none(), "{text}");
        }
        let many: Vec<String> = (0..=MAX_MEMBERS).map(|k| format!("\"k{k}\":1")).collect();
        assert!(read(&format!("{{{}}}", many.join(","))).is_none());
        assert!(read(&format!("{{{}}}", many[1..].join(","))).is_some());
    }

    /// The word-at-a-time search finds what a byte-by-byte one finds, wherever the byte
    /// sits and whatever surrounds it (control characters, quotes, backslashes, bytes
    /// past ASCII, ordinary text).
    #[test]
    fn the_stop_is_the_first_quote_backslash_or_control_character() {
        let naive = |b: &[u8]| b.iter().position(|&c| c == b'"' || c == b'\\' || c < 0x20);
        let alphabet: Vec<u8> = (0u8..=0x21)
            .chain([
                b'"', b'\\', b'a', b'z', b'0', b' ', 0x7f, 0x80, 0xa2, 0xdc, 0xff,
            ])
            .collect();
        let mut seed = 0x2545_f491_4f6c_dd1du64;
        for _ in 0..20_000 {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            let len = (seed % 40) as usize;
            let text: Vec<u8> = (0..len)
                .map(|k| {
                    let r = seed.rotate_left(k as u32 * 5);
                    // Mostly ordinary letters, now and then anything of the alphabet.
                    if r.is_multiple_of(7) {
                        alphabet[(r >> 8) as usize % alphabet.len()]
                    } else {
                        b'a' + (r % 26) as u8
                    }
                })
                .collect();
            assert_eq!(stop(&text), naive(&text), "{text:?}");
        }
        for special in [0u8, 0x1f, b'"', b'\\'] {
            for at in 0..24 {
                let mut text = vec![b'x'; 24];
                text[at] = special;
                assert_eq!(stop(&text), Some(at));
            }
        }
    }

    #[test]
    fn numbers_are_what_serde_json_reads() {
        for token in [
            "0",
            "-0",
            "7",
            "-12",
            "123456789012345678",
            "-123456789012345678",
            "1234567890123456789",
            "18446744073709551616",
            "59.90",
            "0.1",
            "1e2",
            "1E-7",
            "-0.0",
            "2.2250738585072014e-308",
            "1.7976931348623157e308",
            "3.141592653589793238462643383279",
        ] {
            let via_serde = serde_json::from_str::<serde_json::Value>(token)
                .unwrap()
                .as_f64()
                .unwrap();
            let mine = number(token).unwrap();
            assert_eq!(mine.to_bits(), via_serde.to_bits(), "{token}");
        }
        assert_eq!(number("1e400"), None);
        assert_eq!(plain_integer("-0"), None);
        assert_eq!(plain_integer("0"), Some(0));
        assert_eq!(plain_integer("1234567890123456789"), None);
    }
}
