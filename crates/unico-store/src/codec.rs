//! The persisted encoding of a customer's values, and the sort keys derived from values.
//!
//! A customer's values are one compact blob, so a customer is one row: bulk imports write
//! one row per customer and start-up reads the whole table sequentially. The format is
//! versioned by its first byte; a decoder meeting an unknown version refuses it rather
//! than guessing.
//!
//! Format v1: `0x01`, then for each value in ascending field-id order:
//! `varint field_id`, `u8 tag`, payload — tag 1 string (`varint len`, UTF-8 bytes),
//! tag 2 number (`f64` little-endian), tag 3 datetime (`i64` LE epoch ms),
//! tag 4 date (`i32` LE days since 1970-01-01).

use unico_core::{FieldId, Value};

/// The only format version this build writes.
pub const FORMAT_V1: u8 = 1;

const TAG_STRING: u8 = 1;
const TAG_NUMBER: u8 = 2;
const TAG_DATETIME: u8 = 3;
const TAG_DATE: u8 = 4;

/// A stored blob that cannot be decoded: corruption or a newer format.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("stored customer values are unreadable: {0}")]
pub struct CodecError(pub &'static str);

pub(crate) fn put_varint(out: &mut Vec<u8>, mut n: u64) {
    while n >= 0x80 {
        out.push((n as u8) | 0x80);
        n >>= 7;
    }
    out.push(n as u8);
}

pub(crate) fn get_varint(bytes: &[u8], pos: &mut usize) -> Result<u64, CodecError> {
    let mut n = 0u64;
    for shift in (0..64).step_by(7) {
        let b = *bytes.get(*pos).ok_or(CodecError("truncated varint"))?;
        *pos += 1;
        n |= u64::from(b & 0x7f) << shift;
        if b < 0x80 {
            return Ok(n);
        }
    }
    Err(CodecError("varint too long"))
}

pub(crate) fn take<'a>(
    bytes: &'a [u8],
    pos: &mut usize,
    len: usize,
) -> Result<&'a [u8], CodecError> {
    let end = pos.checked_add(len).ok_or(CodecError("length overflow"))?;
    let slice = bytes.get(*pos..end).ok_or(CodecError("truncated value"))?;
    *pos = end;
    Ok(slice)
}

/// Encodes sorted values into `out` (cleared first).
pub fn encode_into(fields: &[(FieldId, Value)], out: &mut Vec<u8>) {
    out.clear();
    out.push(FORMAT_V1);
    for (id, value) in fields {
        put_varint(out, u64::from(id.0));
        match value {
            Value::String(s) => {
                out.push(TAG_STRING);
                put_varint(out, s.len() as u64);
                out.extend_from_slice(s.as_bytes());
            }
            Value::Number(n) => {
                out.push(TAG_NUMBER);
                out.extend_from_slice(&n.to_le_bytes());
            }
            Value::Datetime(ms) => {
                out.push(TAG_DATETIME);
                out.extend_from_slice(&ms.to_le_bytes());
            }
            Value::Date(days) => {
                out.push(TAG_DATE);
                out.extend_from_slice(&days.to_le_bytes());
            }
        }
    }
}

pub fn encode(fields: &[(FieldId, Value)]) -> Vec<u8> {
    let mut out = Vec::with_capacity(16 + fields.len() * 16);
    encode_into(fields, &mut out);
    out
}

/// Calls `visit` for each encoded value without allocating for the ones it skips.
fn walk(
    bytes: &[u8],
    mut visit: impl FnMut(FieldId, u8, &[u8]) -> Result<bool, CodecError>,
) -> Result<(), CodecError> {
    match bytes.first() {
        Some(&FORMAT_V1) => {}
        Some(_) => return Err(CodecError("unknown format version")),
        None => return Err(CodecError("empty blob")),
    }
    let mut pos = 1;
    while pos < bytes.len() {
        let id = u32::try_from(get_varint(bytes, &mut pos)?)
            .map_err(|_| CodecError("field id too large"))?;
        let tag = *bytes.get(pos).ok_or(CodecError("truncated tag"))?;
        pos += 1;
        let payload = match tag {
            TAG_STRING => {
                let len = usize::try_from(get_varint(bytes, &mut pos)?)
                    .map_err(|_| CodecError("length overflow"))?;
                take(bytes, &mut pos, len)?
            }
            TAG_NUMBER | TAG_DATETIME => take(bytes, &mut pos, 8)?,
            TAG_DATE => take(bytes, &mut pos, 4)?,
            _ => return Err(CodecError("unknown value tag")),
        };
        if !visit(FieldId(id), tag, payload)? {
            break;
        }
    }
    Ok(())
}

fn value_of(tag: u8, payload: &[u8]) -> Result<Value, CodecError> {
    let arr8 = |p: &[u8]| <[u8; 8]>::try_from(p).map_err(|_| CodecError("bad payload"));
    Ok(match tag {
        TAG_STRING => Value::String(
            std::str::from_utf8(payload)
                .map_err(|_| CodecError("invalid UTF-8"))?
                .to_owned(),
        ),
        TAG_NUMBER => Value::Number(f64::from_le_bytes(arr8(payload)?)),
        TAG_DATETIME => Value::Datetime(i64::from_le_bytes(arr8(payload)?)),
        _ => Value::Date(i32::from_le_bytes(
            <[u8; 4]>::try_from(payload).map_err(|_| CodecError("bad payload"))?,
        )),
    })
}

/// Decodes every value.
pub fn decode(bytes: &[u8]) -> Result<Vec<(FieldId, Value)>, CodecError> {
    let mut fields = Vec::new();
    walk(bytes, |id, tag, payload| {
        fields.push((id, value_of(tag, payload)?));
        Ok(true)
    })?;
    Ok(fields)
}

/// Decodes one field's value, if present.
pub fn decode_one(bytes: &[u8], field: FieldId) -> Result<Option<Value>, CodecError> {
    let mut found = None;
    walk(bytes, |id, tag, payload| {
        if id == field {
            found = Some(value_of(tag, payload)?);
        }
        Ok(id < field)
    })?;
    Ok(found)
}

/// A byte string whose `memcmp` order is the value's natural order (numbers numerically,
/// strings by UTF-8 bytes, instants and dates chronologically). Only compares values of
/// one type.
pub fn sort_key(value: &Value) -> Vec<u8> {
    match value {
        Value::String(s) => s.as_bytes().to_vec(),
        Value::Number(n) => {
            let bits = n.to_bits();
            let ordered = if bits >> 63 == 1 {
                !bits
            } else {
                bits | (1 << 63)
            };
            ordered.to_be_bytes().to_vec()
        }
        Value::Datetime(ms) => ((*ms as u64) ^ (1 << 63)).to_be_bytes().to_vec(),
        Value::Date(days) => ((*days as u32) ^ (1 << 31)).to_be_bytes().to_vec(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_every_type() {
        let fields = vec![
            (FieldId(1), Value::String("Málaga".into())),
            (FieldId(2), Value::Number(-3.5)),
            (FieldId(300), Value::Datetime(-1)),
            (FieldId(70_000), Value::Date(19_000)),
            (FieldId(70_001), Value::String(String::new())),
        ];
        let blob = encode(&fields);
        assert_eq!(decode(&blob).unwrap(), fields);
        assert_eq!(
            decode_one(&blob, FieldId(300)).unwrap(),
            Some(Value::Datetime(-1))
        );
        assert_eq!(decode_one(&blob, FieldId(299)).unwrap(), None);
        assert_eq!(decode(&encode(&[])).unwrap(), vec![]);
    }

    #[test]
    fn corrupt_blobs_are_errors_not_panics() {
        let blob = encode(&[(FieldId(1), Value::String("hello".into()))]);
        for cut in 0..blob.len() - 1 {
            let _ = decode(&blob[..cut]);
        }
        assert!(decode(&blob[..blob.len() - 1]).is_err());
        assert!(decode(&[9, 1, 1]).is_err());
        assert!(decode(&[1, 1, 77]).is_err());
    }

    /// Guards the persisted format: changing it must bump the version.
    #[test]
    fn format_v1_golden_bytes() {
        let blob = encode(&[
            (FieldId(1), Value::String("ab".into())),
            (FieldId(2), Value::Number(1.0)),
            (FieldId(3), Value::Datetime(1)),
            (FieldId(4), Value::Date(1)),
        ]);
        assert_eq!(
            blob,
            [
                1, 1, 1, 2, b'a', b'b', 2, 2, 0, 0, 0, 0, 0, 0, 0xf0, 0x3f, 3, 3, 1, 0, 0, 0, 0, 0,
                0, 0, 4, 4, 1, 0, 0, 0
            ]
        );
    }

    #[test]
    fn sort_keys_order_like_values() {
        let nums = [-1e300, -2.5, -0.0, 0.0, 1e-9, 3.0, 1e300];
        for w in nums.windows(2) {
            assert!(
                sort_key(&Value::Number(w[0])) <= sort_key(&Value::Number(w[1])),
                "{w:?}"
            );
        }
        assert!(sort_key(&Value::Datetime(-5)) < sort_key(&Value::Datetime(3)));
        assert!(sort_key(&Value::Date(-5)) < sort_key(&Value::Date(3)));
        assert!(sort_key(&Value::String("Z".into())) < sort_key(&Value::String("a".into())));
    }
}
