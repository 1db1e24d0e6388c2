//! The persisted encoding of a block of events: the events of one customer written by one
//! flush of the events writer, as one compact blob.
//!
//! Storing a customer's events of one write as one row (instead of one row per event)
//! makes a backfill one B-tree insert per customer instead of three per event, and reading
//! events back (the engines absorbing an import, the timeline) one row per block.
//!
//! Format v1: `0x01`, `varint count`, then per event, in ascending id order: `u8 flags`,
//! `varint` id delta (from the block's base id for the first event, from the event before
//! otherwise), `varint` zigzag time delta (from 0 for the first event, from the event before
//! otherwise), then the parts its flags announce:
//! - [`NEW_TYPE`]: `varint type_id` (otherwise the type of the event before);
//! - [`NEW_CHANNEL`]: `varint len`, the channel's bytes (otherwise the channel before);
//! - [`DEVICE`]: `varint len`, the device id's bytes;
//! - [`KEY`]: `varint` bytes shared with the key of the event before (0 for the first
//!   event or after one without a key), `varint len` and the bytes of the rest;
//! - [`PROPERTIES`]: `varint len`, the properties' JSON text.
//!
//! A decoder meeting an unknown version or a truncated blob answers an error, never
//! panics.

use crate::codec::{CodecError, get_varint, put_varint, take};

/// The only format version this build writes.
const FORMAT_V1: u8 = 1;

const NEW_TYPE: u8 = 1;
const NEW_CHANNEL: u8 = 2;
const DEVICE: u8 = 4;
const KEY: u8 = 8;
const PROPERTIES: u8 = 16;
const KNOWN_FLAGS: u8 = NEW_TYPE | NEW_CHANNEL | DEVICE | KEY | PROPERTIES;

/// One event of a block, as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stored<'a> {
    pub id: i64,
    pub ts: i64,
    pub type_id: i64,
    pub channel: &'a str,
    pub device_id: Option<&'a str>,
    pub key: Option<&'a str>,
    /// The properties' JSON text (an object), if the event has any.
    pub properties: Option<&'a str>,
}

/// What a block's row records beside its blob.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Summary {
    pub count: usize,
    pub last_id: i64,
    pub min_ts: i64,
    pub max_ts: i64,
}

fn zigzag(n: i64) -> u64 {
    ((n << 1) ^ (n >> 63)) as u64
}

fn unzigzag(n: u64) -> i64 {
    ((n >> 1) as i64) ^ -((n & 1) as i64)
}

fn put_bytes(out: &mut Vec<u8>, bytes: &[u8]) {
    put_varint(out, bytes.len() as u64);
    out.extend_from_slice(bytes);
}

fn shared_prefix(a: &str, b: &str) -> usize {
    let n = a.bytes().zip(b.bytes()).take_while(|(x, y)| x == y).count();
    // Cut on a character boundary so that both parts stay text.
    (0..=n).rev().find(|&i| b.is_char_boundary(i)).unwrap_or(0)
}

/// Encodes `events` (ascending ids, all at least `base`) into `out` (cleared first) and
/// answers the row's summary. `None` for no events.
pub fn encode(base: i64, events: &[Stored<'_>], out: &mut Vec<u8>) -> Option<Summary> {
    out.clear();
    let last = events.last()?;
    out.push(FORMAT_V1);
    put_varint(out, events.len() as u64);
    let (mut id, mut ts, mut type_id, mut channel, mut key) = (base, 0i64, None, None, None);
    let (mut min_ts, mut max_ts) = (i64::MAX, i64::MIN);
    for e in events {
        debug_assert!(e.id >= id, "events of a block in ascending id order");
        let mut flags = 0;
        if type_id != Some(e.type_id) {
            flags |= NEW_TYPE;
        }
        if channel != Some(e.channel) {
            flags |= NEW_CHANNEL;
        }
        if e.device_id.is_some() {
            flags |= DEVICE;
        }
        if e.key.is_some() {
            flags |= KEY;
        }
        if e.properties.is_some() {
            flags |= PROPERTIES;
        }
        out.push(flags);
        put_varint(out, e.id.wrapping_sub(id) as u64);
        put_varint(out, zigzag(e.ts.wrapping_sub(ts)));
        if flags & NEW_TYPE != 0 {
            put_varint(out, e.type_id as u64);
        }
        if flags & NEW_CHANNEL != 0 {
            put_bytes(out, e.channel.as_bytes());
        }
        if let Some(d) = e.device_id {
            put_bytes(out, d.as_bytes());
        }
        if let Some(k) = e.key {
            let shared = key.map_or(0, |before| shared_prefix(before, k));
            put_varint(out, shared as u64);
            put_bytes(out, &k.as_bytes()[shared..]);
        }
        if let Some(p) = e.properties {
            put_bytes(out, p.as_bytes());
        }
        (id, ts, type_id, channel, key) = (e.id, e.ts, Some(e.type_id), Some(e.channel), e.key);
        min_ts = min_ts.min(e.ts);
        max_ts = max_ts.max(e.ts);
    }
    Some(Summary {
        count: events.len(),
        last_id: last.id,
        min_ts,
        max_ts,
    })
}

/// Reads a block back. Keys are shared with the event before, so they are rebuilt into
/// `keys` (one string per event with a key, in order); a [`Stored::key`] borrows from it.
pub struct Decoder<'a> {
    bytes: &'a [u8],
    pos: usize,
    left: u64,
    id: i64,
    ts: i64,
    type_id: i64,
    channel: &'a str,
    key: String,
}

fn text(bytes: &[u8]) -> Result<&str, CodecError> {
    std::str::from_utf8(bytes).map_err(|_| CodecError("stored event text is not UTF-8"))
}

impl<'a> Decoder<'a> {
    pub fn new(base: i64, bytes: &'a [u8]) -> Result<Self, CodecError> {
        let mut pos = 0;
        match bytes.first() {
            Some(&FORMAT_V1) => pos += 1,
            Some(_) => return Err(CodecError("unknown event block format")),
            None => return Err(CodecError("empty event block")),
        }
        let left = get_varint(bytes, &mut pos)?;
        Ok(Self {
            bytes,
            pos,
            left,
            id: base,
            ts: 0,
            type_id: -1,
            channel: "",
            key: String::new(),
        })
    }

    /// How many events are left to read.
    pub fn remaining(&self) -> usize {
        self.left as usize
    }

    /// The next event; its key is the decoder's until the next call.
    #[allow(clippy::should_implement_trait)]
    pub fn next(&mut self) -> Result<Option<(Stored<'a>, Option<&str>)>, CodecError> {
        if self.left == 0 {
            return Ok(None);
        }
        self.left -= 1;
        let (bytes, pos) = (self.bytes, &mut self.pos);
        let flags = *take(bytes, pos, 1)?
            .first()
            .ok_or(CodecError("truncated event"))?;
        if flags & !KNOWN_FLAGS != 0 {
            return Err(CodecError("unknown event flags"));
        }
        let delta = i64::try_from(get_varint(bytes, pos)?)
            .map_err(|_| CodecError("event id delta too large"))?;
        self.id = self
            .id
            .checked_add(delta)
            .ok_or(CodecError("event id overflow"))?;
        self.ts = self.ts.wrapping_add(unzigzag(get_varint(bytes, pos)?));
        if flags & NEW_TYPE != 0 {
            self.type_id =
                i64::try_from(get_varint(bytes, pos)?).map_err(|_| CodecError("event type id"))?;
        } else if self.type_id < 0 {
            return Err(CodecError("an event without a type"));
        }
        let string = |pos: &mut usize| -> Result<&'a str, CodecError> {
            let len = get_varint(bytes, pos)? as usize;
            text(take(bytes, pos, len)?)
        };
        if flags & NEW_CHANNEL != 0 {
            self.channel = string(pos)?;
        }
        let device_id = if flags & DEVICE != 0 {
            Some(string(pos)?)
        } else {
            None
        };
        let has_key = flags & KEY != 0;
        if has_key {
            let shared = get_varint(bytes, pos)? as usize;
            if shared > self.key.len() || !self.key.is_char_boundary(shared) {
                return Err(CodecError("event key prefix out of range"));
            }
            self.key.truncate(shared);
            let rest = string(pos)?;
            self.key.push_str(rest);
        } else {
            self.key.clear();
        }
        let properties = if flags & PROPERTIES != 0 {
            Some(string(pos)?)
        } else {
            None
        };
        let stored = Stored {
            id: self.id,
            ts: self.ts,
            type_id: self.type_id,
            channel: self.channel,
            device_id,
            key: None,
            properties,
        };
        Ok(Some((stored, has_key.then_some(self.key.as_str()))))
    }
}

/// Every event of a block, with keys as owned strings (for rewriting a block).
pub fn decode_all(base: i64, bytes: &[u8]) -> Result<Vec<Owned>, CodecError> {
    let mut d = Decoder::new(base, bytes)?;
    let mut out = Vec::with_capacity(d.remaining().min(1 << 16));
    while let Some((e, key)) = d.next()? {
        out.push(Owned {
            id: e.id,
            ts: e.ts,
            type_id: e.type_id,
            channel: e.channel.to_owned(),
            device_id: e.device_id.map(str::to_owned),
            key: key.map(str::to_owned),
            properties: e.properties.map(str::to_owned),
        });
    }
    Ok(out)
}

/// An event of a block, owning its text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Owned {
    pub id: i64,
    pub ts: i64,
    pub type_id: i64,
    pub channel: String,
    pub device_id: Option<String>,
    pub key: Option<String>,
    pub properties: Option<String>,
}

impl Owned {
    pub fn stored(&self) -> Stored<'_> {
        Stored {
            id: self.id,
            ts: self.ts,
            type_id: self.type_id,
            channel: &self.channel,
            device_id: self.device_id.as_deref(),
            key: self.key.as_deref(),
            properties: self.properties.as_deref(),
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn owned(id: i64, ts: i64, type_id: i64, channel: &str, key: Option<&str>) -> Owned {
        Owned {
            id,
            ts,
            type_id,
            channel: channel.into(),
            device_id: None,
            key: key.map(Into::into),
            properties: None,
        }
    }

    #[test]
    fn a_block_reads_back_as_written() {
        let mut events = vec![
            owned(100, 1_700_000_000_000, 3, "web", Some("e0000000017")),
            owned(101, 1_600_000_000_000, 3, "web", Some("e0000000018")),
            owned(105, 1_800_000_000_000, 9, "app", None),
            owned(106, -5, 9, "app", Some("ключ-1")),
            owned(4000, 7, 2, "pos", Some("ключ-2")),
        ];
        events[2].device_id = Some("d-1".into());
        events[3].properties = Some(r#"{"amount":12.5,"currency":"EUR"}"#.into());
        let stored: Vec<_> = events.iter().map(Owned::stored).collect();
        let mut blob = Vec::new();
        let summary = encode(100, &stored, &mut blob).unwrap();
        assert_eq!(
            summary,
            Summary {
                count: 5,
                last_id: 4000,
                min_ts: -5,
                max_ts: 1_800_000_000_000
            }
        );
        assert_eq!(decode_all(100, &blob).unwrap(), events);
        // A base below the first id is kept as a delta.
        encode(90, &stored, &mut blob).unwrap();
        assert_eq!(decode_all(90, &blob).unwrap(), events);
    }

    #[test]
    fn shared_key_prefixes_make_sequential_keys_small() {
        let events: Vec<Owned> = (0..100)
            .map(|i| owned(i, i * 1000, 1, "web", Some(&format!("e{:010}", 5_000 + i))))
            .collect();
        let stored: Vec<_> = events.iter().map(Owned::stored).collect();
        let mut blob = Vec::new();
        encode(0, &stored, &mut blob).unwrap();
        assert!(blob.len() < 100 * 8, "{} bytes", blob.len());
        assert_eq!(decode_all(0, &blob).unwrap(), events);
    }

    #[test]
    fn corrupt_blocks_are_errors_not_panics() {
        let events = [
            owned(1, 10, 1, "web", Some("k1")),
            owned(2, 20, 1, "sms", Some("k2")),
        ];
        let stored: Vec<_> = events.iter().map(Owned::stored).collect();
        let mut blob = Vec::new();
        encode(1, &stored, &mut blob).unwrap();
        assert!(decode_all(1, &[]).is_err());
        assert!(decode_all(1, &[9, 1]).is_err());
        for cut in 1..blob.len() {
            assert!(decode_all(1, &blob[..cut]).is_err(), "cut at {cut}");
        }
        let mut flipped = blob.clone();
        flipped[2] |= 0x80;
        assert!(decode_all(1, &flipped).is_err());
        assert!(encode(1, &[], &mut blob).is_none());
    }
}
