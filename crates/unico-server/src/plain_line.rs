//! The parts of an events line in the plain shape, found in one pass over its bytes.
//!
//! A backfill's lines are nearly all alike: one object of a few keys, string values
//! without escapes, perhaps a `properties` object. Reading them through serde's derived
//! reader cost about a third of the import's parser. [`parts`] finds the parts of such a
//! line directly and declines anything else (an escape, a `null`, a number where a string
//! is due, a key twice or unknown, anything after the object), which the full reader then
//! reads and, if it is wrong, explains. What it accepts it reads exactly as the full
//! reader would: the same strings, and `properties` as the same slice of the line, which
//! is then read strictly like any other.

use unico_core::flat_json::{string, walk_object};

/// The values of a line's keys, as slices of the line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Parts<'a> {
    pub event_id: Option<&'a str>,
    pub customer_id: &'a str,
    pub event_type: &'a str,
    pub channel: &'a str,
    pub device_id: Option<&'a str>,
    pub timestamp: Option<&'a str>,
    /// The text of the `properties` object, from its `{` to its `}`.
    pub properties: Option<&'a str>,
}

/// The keys of an item in the plain shape, in the order of [`Parts`]' fields.
pub const KEYS: [&str; 7] = [
    "event_id",
    "customerId",
    "type",
    "channel",
    "device_id",
    "timestamp",
    "properties",
];
const PROPERTIES: usize = 6;

/// The parts of `line` if it is an object of [`KEYS`] (each at most once; `customerId`,
/// `type` and `channel` present) whose values are strings without escapes or control
/// characters, `properties` an object; `None` for any other line.
pub fn parts(line: &str) -> Option<Parts<'_>> {
    let b = line.as_bytes();
    let mut values: [Option<&str>; 7] = [None; 7];
    walk_object(line, |key, i| {
        let slot = KEYS.iter().position(|k| *k == key)?;
        if values[slot].is_some() {
            return None;
        }
        let (value, next) = if slot == PROPERTIES {
            let end = object_end(b, i)?;
            (line.get(i..end)?, end)
        } else {
            string(line, i)?
        };
        values[slot] = Some(value);
        Some(next)
    })?;
    let [
        event_id,
        customer_id,
        event_type,
        channel,
        device_id,
        timestamp,
        properties,
    ] = values;
    Some(Parts {
        event_id,
        customer_id: customer_id?,
        event_type: event_type?,
        channel: channel?,
        device_id,
        timestamp,
        properties,
    })
}

/// The index past the object whose `{` is at `i`: where its brackets balance, strings
/// (and their escapes) skipped. Brackets that balance without matching (`{]`) end it
/// too; the strict reader of the slice then refuses it.
fn object_end(b: &[u8], i: usize) -> Option<usize> {
    if b.get(i) != Some(&b'{') {
        return None;
    }
    let mut depth = 0usize;
    let mut j = i;
    while let Some(&c) = b.get(j) {
        match c {
            b'"' => {
                j += 1;
                loop {
                    j += memchr::memchr2(b'"', b'\\', b.get(j..)?)?;
                    if b[j] == b'\\' {
                        j += 2;
                    } else {
                        break;
                    }
                }
            }
            b'{' | b'[' => depth += 1,
            b'}' | b']' => {
                depth -= 1;
                if depth == 0 {
                    return Some(j + 1);
                }
            }
            _ => {}
        }
        j += 1;
    }
    None
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use proptest::prelude::*;

    /// A string value: plain text, or text with what the reader must decline or skip
    /// (quotes, escapes, control characters, brackets, non-ASCII).
    fn text() -> impl Strategy<Value = String> {
        prop::collection::vec(
            prop_oneof![
                6 => "[a-z0-9]{1,6}",
                1 => Just("\\\"".to_owned()),
                1 => Just("\\u0041".to_owned()),
                1 => Just("{[]}".to_owned()),
                1 => Just("é€".to_owned()),
                1 => Just("\t".to_owned()),
            ],
            0..4,
        )
        .prop_map(|parts| parts.concat())
    }

    fn value() -> impl Strategy<Value = String> {
        prop_oneof![
            6 => text().prop_map(|t| format!("\"{t}\"")),
            1 => Just("null".to_owned()),
            1 => Just("12".to_owned()),
        ]
    }

    fn properties() -> impl Strategy<Value = String> {
        prop::collection::vec((text(), value()), 0..4).prop_map(|members| {
            let inner: Vec<String> = members
                .iter()
                .map(|(k, v)| format!("\"{k}\": {{\"n\": [{v}, 1.5]}}"))
                .collect();
            format!("{{{}}}", inner.join(","))
        })
    }

    fn line() -> impl Strategy<Value = String> {
        let key = prop_oneof![
            Just("event_id"),
            Just("customerId"),
            Just("type"),
            Just("channel"),
            Just("device_id"),
            Just("timestamp"),
            Just("properties"),
            Just("other"),
        ];
        let space = prop_oneof![Just(""), Just(" "), Just("\n\t ")];
        prop::collection::vec((key, space, value(), properties()), 0..9).prop_map(|members| {
            let inner: Vec<String> = members
                .iter()
                .map(|(k, sp, v, p)| {
                    let v = if *k == "properties" { p } else { v };
                    format!("{sp}\"{k}\"{sp}:{sp}{v}{sp}")
                })
                .collect();
            format!("{{{}}}", inner.join(","))
        })
    }

    proptest! {
        /// What the reader accepts, it reads as a JSON parser does: every key once, each
        /// string the same, `properties` the same object. The inside of `properties` is
        /// only delimited here: a line that is not JSON only there (a control character
        /// in one of its strings, say) is accepted, and its `properties` then refused by
        /// the strict reader every properties text goes through.
        #[test]
        fn what_it_accepts_reads_as_json_does(line in line()) {
            if let Some(p) = parts(&line) {
                let Ok(tree) = serde_json::from_str::<serde_json::Value>(&line) else {
                    prop_assert!(p.properties.is_some(), "{}", line);
                    let raw = p.properties.unwrap_or_default();
                    let budget = std::cell::Cell::new(usize::MAX);
                    prop_assert!(crate::strict_json::compact(raw, &budget).is_err(), "{}", line);
                    return Ok(());
                };
                let object = tree.as_object().unwrap();
                let text = |key: &str| object.get(key).map(|v| v.as_str().unwrap());
                prop_assert_eq!(p.event_id, text("event_id"));
                prop_assert_eq!(Some(p.customer_id), text("customerId"));
                prop_assert_eq!(Some(p.event_type), text("type"));
                prop_assert_eq!(Some(p.channel), text("channel"));
                prop_assert_eq!(p.device_id, text("device_id"));
                prop_assert_eq!(p.timestamp, text("timestamp"));
                let props = p.properties.map(|raw| serde_json::from_str::<serde_json::Value>(raw).unwrap());
                prop_assert_eq!(props.as_ref(), object.get("properties"));
                prop_assert!(object.keys().all(|k| KEYS.contains(&k.as_str())));
            }
        }
    }

    #[test]
    fn reads_the_plain_shape_and_declines_the_rest() {
        let line = r#"{"event_id":"e1","customerId":"c1","type":"purchase","channel":"web","device_id":"d","timestamp":"2026-10-01T12:03:44Z","properties":{"amount":59.9,"tags":["a","}"],"x":{"y":"\"{"}}}"#;
        assert_eq!(
            parts(line),
            Some(Parts {
                event_id: Some("e1"),
                customer_id: "c1",
                event_type: "purchase",
                channel: "web",
                device_id: Some("d"),
                timestamp: Some("2026-10-01T12:03:44Z"),
                properties: Some(r#"{"amount":59.9,"tags":["a","}"],"x":{"y":"\"{"}}"#),
            })
        );
        let spaced = " { \"customerId\" : \"c1\" ,\t\"type\":\"t\",\"channel\":\"web\" } \r\n";
        assert_eq!(parts(spaced).map(|p| p.customer_id), Some("c1"));
        for declined in [
            r#"{"customerId":"c\u0031","type":"t","channel":"web"}"#,
            r#"{"customerId":"c1","type":"t","channel":"web","event_id":null}"#,
            r#"{"customerId":1,"type":"t","channel":"web"}"#,
            r#"{"customerId":"c1","customerId":"c2","type":"t","channel":"web"}"#,
            r#"{"customerId":"c1","type":"t","channel":"web","extra":"x"}"#,
            r#"{"customerId":"c1","type":"t","channel":"web"} x"#,
            r#"{"customerId":"c1","type":"t","channel":"web",}"#,
            r#"{"customerId":"c1","type":"t"}"#,
            r#"{"customerId":"c1","type":"t","channel":"web","properties":[1]}"#,
            r#"{"customerId":"c1","type":"t","channel":"web","properties":{"a":"#,
            "{\"customerId\":\"c\t1\",\"type\":\"t\",\"channel\":\"web\"}",
            "{}",
            "",
            "[]",
        ] {
            assert_eq!(parts(declined), None, "{declined}");
        }
    }
}
