//! A JSON value read strictly and written back compactly in the same pass: an object
//! that repeats a key is refused (JSON leaves it undefined, and the API never lets the
//! last one win silently), and the values are counted against a budget shared by the
//! caller, so a hostile text is refused before it costs more than that bound. The text
//! written is the one serde_json writes for the value it would read (the same numbers,
//! escapes and key order), and no tree is built.
//!
//! `POST …/events` and the NDJSON backfill read an event's properties this way: the text
//! is what the store keeps, and a batch needs no check of its own first
//! ([`crate::extract::JsonBytes::check`]), which still runs for any body this cannot read,
//! to say what is wrong.

use std::cell::{Cell, RefCell};

use serde::de::{DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};

/// Why a text was refused. The precise message (line, column) is for the full check to
/// give; this only says the text cannot be read strictly.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Refused;

/// Reads `text` as one JSON value, taking one from `budget` per value (every object,
/// array, string, number, boolean and null); answers it written compactly, and how many
/// levels it nests (a scalar 0, an object or array one more than its deepest member).
pub fn compact(text: &str, budget: &Cell<usize>) -> Result<(String, usize), Refused> {
    if let Some(written) = unico_core::flat_json::read(text).and_then(|o| flat(&o, budget)) {
        return Ok(written);
    }
    by_serde(text, budget)
}

/// A flat object (most events' properties) written compactly without serde's reader:
/// keys and strings as they are (they hold nothing serde_json would escape), numbers as
/// serde_json writes what it reads; `None` (nothing taken from `budget`) to leave it to
/// serde, for a number it refuses or a budget too small.
fn flat(
    object: &unico_core::flat_json::FlatObject<'_>,
    budget: &Cell<usize>,
) -> Option<(String, usize)> {
    use unico_core::flat_json::{Scalar, plain_integer};
    let members = object.members();
    // The object and each value, as the serde reader counts them.
    let left = budget.get().checked_sub(1 + members.len())?;
    let mut out = Vec::with_capacity(2 + members.iter().map(|(k, _)| k.len() + 24).sum::<usize>());
    out.push(b'{');
    for (k, (key, value)) in members.iter().enumerate() {
        if k > 0 {
            out.push(b',');
        }
        out.push(b'"');
        out.extend_from_slice(key.as_bytes());
        out.extend_from_slice(b"\":");
        match value {
            Scalar::Str(s) => {
                out.push(b'"');
                out.extend_from_slice(s.as_bytes());
                out.push(b'"');
            }
            Scalar::Num(t) if plain_integer(t).is_some() => out.extend_from_slice(t.as_bytes()),
            Scalar::Num(t) => {
                let n: serde_json::Number = serde_json::from_str(t).ok()?;
                serde_json::to_writer(&mut out, &n).ok()?;
            }
            Scalar::True => out.extend_from_slice(b"true"),
            Scalar::False => out.extend_from_slice(b"false"),
            Scalar::Null => out.extend_from_slice(b"null"),
        }
    }
    out.push(b'}');
    budget.set(left);
    Some((String::from_utf8(out).ok()?, 1))
}

/// [`compact`] through serde's reader, for any JSON value.
fn by_serde(text: &str, budget: &Cell<usize>) -> Result<(String, usize), Refused> {
    let out = RefCell::new(Vec::with_capacity(text.len()));
    let mut de = serde_json::Deserializer::from_str(text);
    let depth = Compact { out: &out, budget }
        .deserialize(&mut de)
        .map_err(|_| Refused)?;
    de.end().map_err(|_| Refused)?;
    let text = String::from_utf8(out.into_inner()).map_err(|_| Refused)?;
    Ok((text, depth))
}

#[derive(Clone, Copy)]
struct Compact<'b> {
    out: &'b RefCell<Vec<u8>>,
    budget: &'b Cell<usize>,
}

impl Compact<'_> {
    fn take<E: serde::de::Error>(self) -> Result<(), E> {
        match self.budget.get().checked_sub(1) {
            Some(left) => {
                self.budget.set(left);
                Ok(())
            }
            None => Err(E::custom("past the budget of values")),
        }
    }

    fn raw(self, bytes: &[u8]) {
        self.out.borrow_mut().extend_from_slice(bytes);
    }

    /// Writes a scalar as serde_json writes it.
    fn scalar<E: serde::de::Error>(self, value: &impl serde::Serialize) -> Result<usize, E> {
        self.take()?;
        serde_json::to_writer(&mut *self.out.borrow_mut(), value).map_err(E::custom)?;
        Ok(0)
    }
}

impl<'de> DeserializeSeed<'de> for Compact<'_> {
    type Value = usize;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<usize, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Compact<'_> {
    type Value = usize;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_bool<E: serde::de::Error>(self, v: bool) -> Result<usize, E> {
        self.scalar(&v)
    }

    fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<usize, E> {
        self.scalar(&v)
    }

    fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<usize, E> {
        self.scalar(&v)
    }

    fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<usize, E> {
        // JSON has no NaN or infinity, so `v` is finite and written as a `Value` holding
        // it would be.
        self.scalar(&v)
    }

    fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<usize, E> {
        self.scalar(&v)
    }

    fn visit_unit<E: serde::de::Error>(self) -> Result<usize, E> {
        self.take()?;
        self.raw(b"null");
        Ok(0)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<usize, A::Error> {
        self.take()?;
        self.raw(b"[");
        let mut deepest = 0;
        let mut first = true;
        loop {
            let at = self.out.borrow().len();
            if !first {
                self.raw(b",");
            }
            match seq.next_element_seed(self)? {
                Some(depth) => deepest = deepest.max(depth),
                None => {
                    self.out.borrow_mut().truncate(at);
                    break;
                }
            }
            first = false;
        }
        self.raw(b"]");
        Ok(1 + deepest)
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<usize, A::Error> {
        self.take()?;
        self.raw(b"{");
        let mut deepest = 0;
        // Where each key was written (escaped the one way serde_json escapes, so equal
        // keys are equal bytes).
        let mut keys: Vec<(usize, usize)> = Vec::new();
        while let Some(key) = map.next_key::<std::borrow::Cow<'de, str>>()? {
            if !keys.is_empty() {
                self.raw(b",");
            }
            let start = self.out.borrow().len();
            serde_json::to_writer(&mut *self.out.borrow_mut(), &key)
                .map_err(serde::de::Error::custom)?;
            let end = self.out.borrow().len();
            {
                let out = self.out.borrow();
                let written = &out[start..end];
                if keys.iter().any(|&(s, e)| &out[s..e] == written) {
                    return Err(serde::de::Error::custom(
                        "a key appears twice in one object",
                    ));
                }
            }
            keys.push((start, end));
            self.raw(b":");
            deepest = deepest.max(map.next_value_seed(self)?);
        }
        self.raw(b"}");
        Ok(1 + deepest)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use serde_json::Value;

    fn read(text: &str, budget: usize) -> Result<(String, usize), Refused> {
        compact(text, &Cell::new(budget))
    }

    fn depth(v: &Value) -> usize {
        match v {
            Value::Object(m) => 1 + m.values().map(depth).max().unwrap_or(0),
            Value::Array(a) => 1 + a.iter().map(depth).max().unwrap_or(0),
            _ => 0,
        }
    }

    #[test]
    fn writes_what_serde_json_writes_for_what_it_reads() {
        for text in [
            r#"{"amount":59.90,"currency":"EUR","items":2,"tags":["a",{"b":null}],"ok":true}"#,
            r#"{ "big" : 18446744073709551615, "neg":-9223372036854775808, "e":1e300, "f":1E2 }"#,
            r#"{"s":"\u00e9\n\"\\\/\u0001","\u0061":[[],{},[[1.5e-7]]],"z":-0.0,"x":0.1}"#,
            "[]",
            "{}",
            " 3 ",
            r#""text""#,
        ] {
            let value: Value = serde_json::from_str(text).unwrap();
            let (written, d) = read(text, 1000).unwrap();
            assert_eq!(written, serde_json::to_string(&value).unwrap(), "{text}");
            assert_eq!(d, depth(&value), "{text}");
        }
    }

    #[test]
    fn refuses_a_repeated_key_at_any_depth() {
        assert_eq!(read(r#"{"a":1,"a":2}"#, 100), Err(Refused));
        assert_eq!(read(r#"{"a":{"b":[{"c":1,"c":1}]}}"#, 100), Err(Refused));
        // The same key written with an escape is the same key.
        assert_eq!(read(r#"{"a":1,"\u0061":2}"#, 100), Err(Refused));
        // The same key in sibling objects is no repetition.
        assert!(read(r#"[{"a":1},{"a":2}]"#, 100).is_ok());
    }

    #[test]
    fn counts_every_value_against_the_budget() {
        let budget = Cell::new(6);
        // The object, the array and its three numbers, the string: six.
        assert!(compact(r#"{"a":[1,2,3],"b":"x"}"#, &budget).is_ok());
        assert_eq!(budget.get(), 0);
        assert_eq!(compact("null", &budget), Err(Refused));
        assert_eq!(read(r#"{"a":[1,2,3],"b":"x"}"#, 5), Err(Refused));
    }

    mod generated {
        use super::*;
        use proptest::prelude::*;
        use unico_core::{PropRef, Properties};

        /// A member's value as written: numbers in many spellings (some JSON refuses or
        /// reads as floats), strings with and without what the hand reader declines,
        /// literals, now and then a nested value.
        fn value() -> impl Strategy<Value = String> {
            prop_oneof![
                3 => "-?(0|[1-9][0-9]{0,20})(\\.[0-9]{1,18})?([eE][+-]?[0-9]{1,3})?",
                1 => prop_oneof![
                    Just("-0".to_owned()),
                    Just("01".to_owned()),
                    Just("1.".to_owned()),
                    Just("1e400".to_owned()),
                    Just("-".to_owned()),
                ],
                3 => "[a-zA-Z0-9 é€]{0,6}".prop_map(|t| format!("\"{t}\"")),
                1 => prop_oneof![
                    Just("\"a\\\"b\"".to_owned()),
                    Just("\"\\u0041\"".to_owned()),
                    Just("\"tab\there\"".to_owned()),
                ],
                1 => prop_oneof![Just("true".to_owned()), Just("false".to_owned()), Just("null".to_owned())],
                1 => prop_oneof![Just("{\"x\":1}".to_owned()), Just("[1,\"a\"]".to_owned())],
            ]
        }

        fn object() -> impl Strategy<Value = String> {
            (
                prop::collection::vec((value(), prop::bool::weighted(0.03)), 0..20),
                prop::bool::ANY,
            )
                .prop_map(|(members, spaced)| {
                    let sep = if spaced { " , " } else { "," };
                    // Distinct keys, now and then one repeated.
                    let inner: Vec<String> = members
                        .iter()
                        .enumerate()
                        .map(|(i, (v, again))| {
                            let k = if *again {
                                "k0".to_owned()
                            } else {
                                format!("k{i}")
                            };
                            if spaced {
                                format!(" \"{k}\" : {v} ")
                            } else {
                                format!("\"{k}\":{v}")
                            }
                        })
                        .collect();
                    format!("{{{}}}", inner.join(sep))
                })
        }

        fn comparable(p: &Properties) -> Vec<(usize, String, String)> {
            let mut seen = Vec::new();
            p.for_each_comparable(|k, name, value| {
                let value = match value {
                    PropRef::Num(x) => format!("num {:x}", x.to_bits()),
                    PropRef::Str(s) => format!("str {s}"),
                };
                seen.push((k, name.to_owned(), value));
            });
            seen
        }

        /// Text that is sometimes a flat object and often nearly one: JSON's punctuation,
        /// literals, digits, quotes, escapes, control characters and spaces in any order.
        fn nearly_json() -> impl Strategy<Value = String> {
            prop::collection::vec(
                prop_oneof![
                    Just("{"),
                    Just("}"),
                    Just("["),
                    Just("]"),
                    Just(":"),
                    Just(","),
                    Just("\""),
                    Just("\\"),
                    Just("\"k\""),
                    Just("\"v\""),
                    Just("-"),
                    Just("0"),
                    Just("7"),
                    Just("."),
                    Just("e"),
                    Just("true"),
                    Just("nul"),
                    Just(" "),
                    Just("\t"),
                    Just("\u{1}"),
                    Just("é"),
                ],
                0..24,
            )
            .prop_map(|parts| parts.concat())
        }

        proptest! {
            /// Whatever text the hand reader is given it answers without panicking, and
            /// what it accepts a JSON parser reads as the same object: the same keys in
            /// the same order, the same strings and literals, numbers of the same value
            /// (or one past f64's range, which both refuse to value).
            #[test]
            fn what_the_hand_reader_accepts_reads_as_json_does(
                text in prop_oneof![nearly_json(), object(), any::<String>()]
            ) {
                use unico_core::flat_json::{Scalar, number, read};
                if let Some(flat) = read(&text) {
                    let members = flat.members();
                    let tree = match serde_json::from_str::<serde_json::Map<String, Value>>(&text) {
                        Ok(tree) => tree,
                        // Only a number past f64's range (which the reader delimits and
                        // does not value) may make it a text the parser refuses.
                        Err(e) => {
                            prop_assert!(e.to_string().starts_with("number out of range"), "{}: {}", text, e);
                            return Ok(());
                        }
                    };
                    prop_assert_eq!(members.len(), tree.len());
                    for ((key, scalar), (name, value)) in members.iter().zip(&tree) {
                        prop_assert_eq!(*key, name.as_str());
                        match scalar {
                            Scalar::Str(s) => prop_assert_eq!(Some(*s), value.as_str()),
                            Scalar::Num(t) => prop_assert_eq!(
                                number(t).map(f64::to_bits),
                                value.as_f64().map(f64::to_bits)
                            ),
                            Scalar::True => prop_assert_eq!(value, &Value::Bool(true)),
                            Scalar::False => prop_assert_eq!(value, &Value::Bool(false)),
                            Scalar::Null => prop_assert_eq!(value, &Value::Null),
                        }
                    }
                }
            }

            /// Whatever the hand reader takes, the text written, its depth, what is left
            /// of the budget and the values the engine reads from it are serde's.
            #[test]
            fn the_hand_reader_writes_and_reads_what_serde_does(text in object(), budget in 0usize..30) {
                let (mine, theirs) = (Cell::new(budget), Cell::new(budget));
                let written = compact(&text, &mine);
                prop_assert_eq!(&written, &by_serde(&text, &theirs));
                prop_assert_eq!(mine.get(), theirs.get());
                if let Ok((compact_text, _)) = written {
                    let tree = Properties::from_stored(&compact_text).unwrap();
                    let from_text = Properties::from_stored_text(compact_text);
                    prop_assert_eq!(comparable(&from_text), comparable(&tree));
                }
            }
        }
    }

    #[test]
    fn refuses_what_is_not_one_json_value() {
        for text in ["", "{", r#"{"a":1} x"#, "[1,]", "nul", r#"{"a" 1}"#] {
            assert_eq!(read(text, 100), Err(Refused), "{text}");
        }
    }
}
