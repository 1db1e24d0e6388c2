//! A JSON value read strictly: an object that repeats a key is refused (JSON leaves it
//! undefined, and the API never lets the last one win silently), and the values are
//! counted against a budget shared by the caller, so a hostile text is refused before it
//! is built past that bound. Otherwise the value is the one `serde_json::Value` reads.
//!
//! `POST …/events` reads an event's properties this way in the same pass that builds
//! them, instead of checking the whole body in a pass of its own first
//! ([`crate::extract::JsonBytes::check`]), which it still does for any body it cannot read
//! this way, to say what is wrong.

use std::cell::Cell;

use serde::de::{DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Number, Value};

/// Why a text was refused. The precise message (line, column) is for the full check to
/// give; this only says the text cannot be read strictly.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Refused;

/// Reads `text` as one JSON value, taking one from `budget` per value (every object,
/// array, string, number, boolean and null).
pub fn parse(text: &str, budget: &Cell<usize>) -> Result<Value, Refused> {
    let mut de = serde_json::Deserializer::from_str(text);
    let value = Strict { budget }
        .deserialize(&mut de)
        .map_err(|_| Refused)?;
    de.end().map_err(|_| Refused)?;
    Ok(value)
}

#[derive(Clone, Copy)]
struct Strict<'b> {
    budget: &'b Cell<usize>,
}

impl Strict<'_> {
    fn take<E: serde::de::Error>(self) -> Result<(), E> {
        match self.budget.get().checked_sub(1) {
            Some(left) => {
                self.budget.set(left);
                Ok(())
            }
            None => Err(E::custom("past the budget of values")),
        }
    }
}

impl<'de> DeserializeSeed<'de> for Strict<'_> {
    type Value = Value;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Strict<'_> {
    type Value = Value;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_bool<E: serde::de::Error>(self, v: bool) -> Result<Value, E> {
        self.take()?;
        Ok(Value::Bool(v))
    }

    fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<Value, E> {
        self.take()?;
        Ok(Value::Number(v.into()))
    }

    fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<Value, E> {
        self.take()?;
        Ok(Value::Number(v.into()))
    }

    fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<Value, E> {
        self.take()?;
        // JSON has no NaN or infinity: a finite number always converts.
        Number::from_f64(v)
            .map(Value::Number)
            .ok_or_else(|| E::custom("not a finite number"))
    }

    fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Value, E> {
        self.take()?;
        Ok(Value::String(v.to_owned()))
    }

    fn visit_string<E: serde::de::Error>(self, v: String) -> Result<Value, E> {
        self.take()?;
        Ok(Value::String(v))
    }

    fn visit_unit<E: serde::de::Error>(self) -> Result<Value, E> {
        self.take()?;
        Ok(Value::Null)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        self.take()?;
        let mut items = Vec::new();
        while let Some(item) = seq.next_element_seed(self)? {
            items.push(item);
        }
        Ok(Value::Array(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        self.take()?;
        let mut object = Map::new();
        while let Some(key) = map.next_key::<String>()? {
            if object.contains_key(&key) {
                return Err(serde::de::Error::custom(
                    "a key appears twice in one object",
                ));
            }
            let value = map.next_value_seed(self)?;
            object.insert(key, value);
        }
        Ok(Value::Object(object))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn read(text: &str, budget: usize) -> Result<Value, Refused> {
        parse(text, &Cell::new(budget))
    }

    #[test]
    fn reads_what_serde_json_reads() {
        for text in [
            r#"{"amount":59.90,"currency":"EUR","items":2,"tags":["a",{"b":null}],"ok":true}"#,
            r#"{"big":18446744073709551615,"neg":-9223372036854775808,"e":1e300,"s":"\u00e9\n"}"#,
            "[]",
            "{}",
            " 3 ",
        ] {
            let expected: Value = serde_json::from_str(text).unwrap();
            assert_eq!(read(text, 1000).unwrap(), expected, "{text}");
            assert_eq!(
                serde_json::to_string(&read(text, 1000).unwrap()).unwrap(),
                serde_json::to_string(&expected).unwrap()
            );
        }
    }

    #[test]
    fn refuses_a_repeated_key_at_any_depth() {
        assert_eq!(read(r#"{"a":1,"a":2}"#, 100), Err(Refused));
        assert_eq!(read(r#"{"a":{"b":[{"c":1,"c":1}]}}"#, 100), Err(Refused));
        // The same key in sibling objects is no repetition.
        assert!(read(r#"[{"a":1},{"a":2}]"#, 100).is_ok());
    }

    #[test]
    fn counts_every_value_against_the_budget() {
        let budget = Cell::new(6);
        // The object, the array and its three numbers, the string: six.
        assert!(parse(r#"{"a":[1,2,3],"b":"x"}"#, &budget).is_ok());
        assert_eq!(budget.get(), 0);
        assert_eq!(parse("null", &budget), Err(Refused));
        assert_eq!(read(r#"{"a":[1,2,3],"b":"x"}"#, 5), Err(Refused));
    }

    #[test]
    fn refuses_what_is_not_one_json_value() {
        for text in ["", "{", r#"{"a":1} x"#, "[1,]", "nul"] {
            assert_eq!(read(text, 100), Err(Refused), "{text}");
        }
    }
}
