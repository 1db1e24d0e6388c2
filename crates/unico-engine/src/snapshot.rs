//! Snapshots: an [`AppIndex`] written to bytes and read back, so that a restarted server
//! answers from the columns it had instead of rebuilding them from a store scan.
//!
//! The engine knows nothing of where the bytes go or whether they are current: the caller
//! gives a *stamp* (its identity of the data the index reflects, e.g. application, data
//! version and time zone) that is written first and must match exactly on reading, and the
//! schema the columns must follow. A snapshot is a cache, never a source of truth.
//!
//! Layout (little-endian): magic, format version, stamp, the index's vectors one after the
//! other (each as its length then its elements), then a checksum of every byte before it.
//! Reading checks the magic, format and stamp first, bounds every length by the bytes
//! left, checks the shapes (every column as long as the capacity, dictionary offsets in
//! order, codes inside their dictionary, the order listing each live slot once) and the
//! checksum; any failure is an error, and the caller rebuilds from its store. The hash
//! tables (dictionary lookups, id to slot, the customerId order) are rebuilt, not stored.
//!
//! The events follow the columns: per event type its code, then its columns (slots,
//! times, ids, channel list and codes, each property's number and string columns), then
//! the retired slots. Reading checks that every event belongs to an alive or retired slot
//! and that codes lie inside their lists; the zone maps and per-slot counts are rebuilt.
//!
//! The subscriptions follow the events: per channel (in ascending order) its name and its
//! bitset of subscribed slots, as long as the capacity; reading checks that every bit is
//! an alive slot.

use std::collections::{BTreeMap, HashMap};
use std::io::{self, Read, Write};

use jiff::tz::TimeZone;
use unico_core::{Channel, EventCode, FieldId, FieldType, Schema};

use crate::bits::Bits;
use crate::column::{Codes, Column, Data};
use crate::dict::{Dict, IntHash};
use crate::events::{Events, NumProp, Prop, StrProp, Table};
use crate::index::AppIndex;
use crate::local::LocalDays;
use crate::num::{Ints, Nums};

const MAGIC: &[u8; 12] = b"UNICO-ENGINE";
/// Bumped whenever the layout changes, or older snapshots may hold wrong contents; older
/// snapshots are then ignored and the engine is rebuilt from the store. 3: snapshots
/// written before string codes stopped narrowing on an update (format 2) may carry
/// truncated codes. 4: the customers' events follow the columns. 5: the customers'
/// subscriptions follow the events.
const FORMAT: u32 = 5;
/// Elements converted per buffered chunk.
const CHUNK: usize = 8192;

/// Why a snapshot was not used.
#[derive(Debug)]
pub enum SnapshotError {
    Io(io::Error),
    /// Not a snapshot of this format, or of other data (stamp, schema).
    Mismatch(&'static str),
    /// Damaged: bad checksum, impossible lengths or shapes.
    Corrupt(&'static str),
}

impl std::fmt::Display for SnapshotError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SnapshotError::Io(e) => write!(f, "cannot read the snapshot: {e}"),
            SnapshotError::Mismatch(why) => write!(f, "snapshot of other data: {why}"),
            SnapshotError::Corrupt(why) => write!(f, "damaged snapshot: {why}"),
        }
    }
}

impl std::error::Error for SnapshotError {}

impl From<io::Error> for SnapshotError {
    fn from(e: io::Error) -> Self {
        if e.kind() == io::ErrorKind::UnexpectedEof {
            SnapshotError::Corrupt("truncated")
        } else {
            SnapshotError::Io(e)
        }
    }
}

/// A streaming 64-bit checksum: four lanes of folded multiplications over 8-byte words.
#[derive(Debug, Clone)]
struct Checksum {
    lanes: [u64; 4],
    lane: usize,
    pending: [u8; 8],
    pending_len: usize,
    total: u64,
}

impl Checksum {
    fn new() -> Self {
        Self {
            lanes: [
                0x243F_6A88_85A3_08D3,
                0x1319_8A2E_0370_7344,
                0xA409_3822_299F_31D0,
                0x082E_FA98_EC4E_6C89,
            ],
            lane: 0,
            pending: [0; 8],
            pending_len: 0,
            total: 0,
        }
    }

    fn word(&mut self, w: u64) {
        const K: u64 = 0x9E37_79B9_7F4A_7C15;
        let l = &mut self.lanes[self.lane];
        let p = u128::from(*l ^ w) * u128::from(K);
        *l = (p as u64) ^ ((p >> 64) as u64);
        self.lane = (self.lane + 1) % 4;
    }

    fn update(&mut self, mut bytes: &[u8]) {
        self.total += bytes.len() as u64;
        if self.pending_len > 0 {
            let take = (8 - self.pending_len).min(bytes.len());
            self.pending[self.pending_len..self.pending_len + take].copy_from_slice(&bytes[..take]);
            self.pending_len += take;
            bytes = &bytes[take..];
            if self.pending_len < 8 {
                return;
            }
            self.word(u64::from_le_bytes(self.pending));
            self.pending_len = 0;
        }
        let mut chunks = bytes.chunks_exact(8);
        for c in &mut chunks {
            let mut w = [0u8; 8];
            w.copy_from_slice(c);
            self.word(u64::from_le_bytes(w));
        }
        let rest = chunks.remainder();
        self.pending[..rest.len()].copy_from_slice(rest);
        self.pending_len = rest.len();
    }

    fn finish(&self) -> u64 {
        let mut c = self.clone();
        let mut last = [0u8; 8];
        last[..c.pending_len].copy_from_slice(&c.pending[..c.pending_len]);
        c.word(u64::from_le_bytes(last));
        c.word(c.total);
        c.lanes
            .iter()
            .fold(0u64, |acc, &l| acc.rotate_left(17) ^ l)
            .wrapping_mul(0xD6E8_FEB8_6659_FD93)
    }
}

/// Fixed-width little-endian elements.
trait Le: Copy + Default {
    const SIZE: usize;
    fn put(self, out: &mut Vec<u8>);
    fn take(b: &[u8]) -> Self;
}

macro_rules! le {
    ($($t:ty),*) => {$(
        impl Le for $t {
            const SIZE: usize = std::mem::size_of::<$t>();
            fn put(self, out: &mut Vec<u8>) {
                out.extend_from_slice(&self.to_le_bytes());
            }
            fn take(b: &[u8]) -> Self {
                let mut a = [0u8; std::mem::size_of::<$t>()];
                a.copy_from_slice(b);
                <$t>::from_le_bytes(a)
            }
        }
    )*};
}
le!(u8, u16, u32, u64, i8, i16, i32, i64);

impl Le for f64 {
    const SIZE: usize = 8;
    fn put(self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.to_bits().to_le_bytes());
    }
    fn take(b: &[u8]) -> Self {
        f64::from_bits(u64::take(b))
    }
}

struct Out<'w, W: Write> {
    w: &'w mut W,
    sum: Checksum,
    buf: Vec<u8>,
}

impl<W: Write> Out<'_, W> {
    fn raw(&mut self, b: &[u8]) -> io::Result<()> {
        self.sum.update(b);
        self.w.write_all(b)
    }

    fn u64(&mut self, v: u64) -> io::Result<()> {
        self.raw(&v.to_le_bytes())
    }

    fn slice<T: Le>(&mut self, v: &[T]) -> io::Result<()> {
        self.u64(v.len() as u64)?;
        for chunk in v.chunks(CHUNK) {
            self.buf.clear();
            for &x in chunk {
                x.put(&mut self.buf);
            }
            let buf = std::mem::take(&mut self.buf);
            self.raw(&buf)?;
            self.buf = buf;
        }
        Ok(())
    }

    fn column(&mut self, c: &Column) -> io::Result<()> {
        self.u64(type_tag(c.ty))?;
        self.u64(c.count)?;
        self.slice(c.present.words())?;
        match &c.data {
            Data::Str { codes, dict } => {
                self.codes(codes)?;
                self.dict(dict)
            }
            Data::Num(nums) => self.nums(nums),
            Data::Datetime { ms, md } => {
                self.slice(ms)?;
                self.slice(md)
            }
            Data::Date { days, md } => {
                self.slice(days)?;
                self.slice(md)
            }
        }
    }

    /// The width in bytes, then the codes.
    fn codes(&mut self, codes: &Codes) -> io::Result<()> {
        match codes {
            Codes::U8(v) => {
                self.u64(1)?;
                self.slice(v)
            }
            Codes::U16(v) => {
                self.u64(2)?;
                self.slice(v)
            }
            Codes::U32(v) => {
                self.u64(4)?;
                self.slice(v)
            }
        }
    }

    fn dict(&mut self, dict: &Dict) -> io::Result<()> {
        let (bytes, offsets, lower, lower_offsets, refs) = dict.parts();
        self.slice(bytes)?;
        self.offsets(offsets)?;
        self.slice(lower)?;
        self.offsets(lower_offsets)?;
        self.slice(refs)
    }

    /// 0 then the f64s, or the width in bytes, the scale, then the integers.
    fn nums(&mut self, nums: &Nums) -> io::Result<()> {
        match nums {
            Nums::F64(v) => {
                self.u64(0)?;
                self.slice(v)
            }
            Nums::Int { ints, scale } => {
                self.u64(ints.width() as u64)?;
                self.u64(u64::from(*scale))?;
                match ints {
                    Ints::I8(v) => self.slice(v),
                    Ints::I16(v) => self.slice(v),
                    Ints::I32(v) => self.slice(v),
                }
            }
        }
    }

    fn events(&mut self, events: &Events) -> io::Result<()> {
        self.slice(&events.retired)?;
        self.u64(events.tables.len() as u64)?;
        for t in &events.tables {
            self.slice(t.code.as_str().as_bytes())?;
            self.slice(&t.slots)?;
            self.slice(&t.ts)?;
            self.iter(t.ids.len(), t.ids.iter())?;
            self.u64(t.channel_names.len() as u64)?;
            for c in &t.channel_names {
                self.slice(c.as_str().as_bytes())?;
            }
            self.codes(&t.channels)?;
            self.u64(t.props.len() as u64)?;
            for p in &t.props {
                self.slice(p.name.as_bytes())?;
                self.u64(u64::from(p.num.is_some()) | (u64::from(p.text.is_some()) << 1))?;
                if let Some(c) = &p.num {
                    self.slice(c.present.words())?;
                    self.nums(&c.nums)?;
                }
                if let Some(c) = &p.text {
                    self.slice(c.present.words())?;
                    self.codes(&c.codes)?;
                    self.dict(&c.dict)?;
                }
            }
        }
        Ok(())
    }

    /// `len` elements, as [`Out::slice`] writes a slice of them.
    fn iter<T: Le>(&mut self, len: usize, items: impl Iterator<Item = T>) -> io::Result<()> {
        self.u64(len as u64)?;
        let mut items = items.fuse();
        let mut written = 0;
        while written < len {
            self.buf.clear();
            for x in items.by_ref().take(CHUNK.min(len - written)) {
                x.put(&mut self.buf);
                written += 1;
            }
            if self.buf.is_empty() {
                // Fewer items than announced: a bug of the caller; pad rather than lie.
                for _ in written..len {
                    T::default().put(&mut self.buf);
                }
                written = len;
            }
            let buf = std::mem::take(&mut self.buf);
            self.raw(&buf)?;
            self.buf = buf;
        }
        Ok(())
    }

    fn offsets(&mut self, v: &[usize]) -> io::Result<()> {
        self.u64(v.len() as u64)?;
        for chunk in v.chunks(CHUNK) {
            self.buf.clear();
            for &x in chunk {
                (x as u64).put(&mut self.buf);
            }
            let buf = std::mem::take(&mut self.buf);
            self.raw(&buf)?;
            self.buf = buf;
        }
        Ok(())
    }
}

fn type_tag(ty: FieldType) -> u64 {
    match ty {
        FieldType::String => 1,
        FieldType::Number => 2,
        FieldType::Datetime => 3,
        FieldType::Date => 4,
    }
}

struct In<'r, R: Read> {
    r: &'r mut R,
    sum: Checksum,
    left: u64,
    buf: Vec<u8>,
}

impl<R: Read> In<'_, R> {
    fn raw(&mut self, n: usize) -> Result<&[u8], SnapshotError> {
        if n as u64 > self.left {
            return Err(SnapshotError::Corrupt("a length past the end"));
        }
        self.buf.resize(n, 0);
        self.r.read_exact(&mut self.buf)?;
        self.left -= n as u64;
        self.sum.update(&self.buf);
        Ok(&self.buf)
    }

    fn u64(&mut self) -> Result<u64, SnapshotError> {
        Ok(u64::take(self.raw(8)?))
    }

    fn len(&mut self, size: usize) -> Result<usize, SnapshotError> {
        let n = self.u64()?;
        if n.saturating_mul(size as u64) > self.left {
            return Err(SnapshotError::Corrupt("a length past the end"));
        }
        Ok(n as usize)
    }

    fn vec<T: Le>(&mut self) -> Result<Vec<T>, SnapshotError> {
        let n = self.len(T::SIZE)?;
        let mut v = Vec::with_capacity(n);
        let mut left = n;
        while left > 0 {
            let k = left.min(CHUNK);
            let bytes = self.raw(k * T::SIZE)?;
            v.extend(bytes.chunks_exact(T::SIZE).map(T::take));
            left -= k;
        }
        Ok(v)
    }

    /// A byte vector (as [`In::vec`], copied a chunk at a time).
    fn bytes(&mut self) -> Result<Vec<u8>, SnapshotError> {
        let n = self.len(1)?;
        let mut v = Vec::with_capacity(n);
        let mut left = n;
        while left > 0 {
            let k = left.min(CHUNK * 8);
            v.extend_from_slice(self.raw(k)?);
            left -= k;
        }
        Ok(v)
    }

    fn offsets(&mut self) -> Result<Vec<usize>, SnapshotError> {
        let v: Vec<u64> = self.vec()?;
        v.into_iter()
            .map(|x| usize::try_from(x).map_err(|_| SnapshotError::Corrupt("offset")))
            .collect()
    }

    fn codes(&mut self) -> Result<Codes, SnapshotError> {
        Ok(match self.u64()? {
            1 => Codes::U8(self.bytes()?),
            2 => Codes::U16(self.vec()?),
            4 => Codes::U32(self.vec()?),
            _ => return Err(SnapshotError::Corrupt("code width")),
        })
    }

    fn dict(&mut self) -> Result<Dict, SnapshotError> {
        let bytes = self.bytes()?;
        let offsets = self.offsets()?;
        let lower = self.bytes()?;
        let lower_offsets = self.offsets()?;
        let refs = self.vec()?;
        Dict::from_parts(bytes, offsets, lower, lower_offsets, refs)
            .ok_or(SnapshotError::Corrupt("dictionary"))
    }

    fn nums(&mut self) -> Result<Nums, SnapshotError> {
        let corrupt = SnapshotError::Corrupt;
        Ok(match self.u64()? {
            0 => Nums::F64(self.vec()?),
            width => {
                let scale = u8::try_from(self.u64()?).map_err(|_| corrupt("scale"))?;
                let ints = match width {
                    1 => Ints::I8(self.vec()?),
                    2 => Ints::I16(self.vec()?),
                    4 => Ints::I32(self.vec()?),
                    _ => return Err(corrupt("number width")),
                };
                Nums::int_from_parts(ints, scale).ok_or(corrupt("scale"))?
            }
        })
    }

    fn text(&mut self) -> Result<String, SnapshotError> {
        String::from_utf8(self.bytes()?).map_err(|_| SnapshotError::Corrupt("events"))
    }

    /// The events, checked against the slots: a retired slot is below `high`, neither
    /// alive nor free; an event's slot is alive or retired.
    fn events(&mut self, alive: &Bits, free: &[u32], high: usize) -> Result<Events, SnapshotError> {
        let bad = SnapshotError::Corrupt("events");
        let retired: Vec<u32> = self.vec()?;
        let mut free_bits = Bits::default();
        for &s in free {
            free_bits.assign(s as usize, true);
        }
        if retired
            .iter()
            .any(|&s| s as usize >= high || alive.get(s as usize) || free_bits.get(s as usize))
            || has_duplicates(&retired)
        {
            return Err(SnapshotError::Corrupt("retired slots"));
        }
        let mut retired_bits = Bits::default();
        for &s in &retired {
            retired_bits.assign(s as usize, true);
        }
        let holds = |s: u32| alive.get(s as usize) || retired_bits.get(s as usize);
        let n = self.len(8)?;
        let mut parts = Vec::with_capacity(n.min(1024));
        for _ in 0..n {
            let code = self.text()?;
            let code = EventCode::parse(&code)
                .ok()
                .filter(|c| c.as_str() == code)
                .ok_or(SnapshotError::Corrupt("events"))?;
            let slots: Vec<u32> = self.vec()?;
            if !slots.iter().all(|&s| holds(s)) {
                return Err(SnapshotError::Corrupt(
                    "an event of a slot that is not alive",
                ));
            }
            let ts: Vec<i64> = self.vec()?;
            let ids: Vec<i64> = self.vec()?;
            let rows = slots.len();
            let channels = self.len(8)?;
            let mut channel_names: Vec<Channel> = Vec::with_capacity(channels.min(1024));
            for _ in 0..channels {
                let text = self.text()?;
                let c = Channel::parse(&text)
                    .ok()
                    .filter(|c| c.as_str() == text && !channel_names.contains(c))
                    .ok_or(SnapshotError::Corrupt("events"))?;
                channel_names.push(c);
            }
            let codes = self.codes()?;
            if ts.len() != rows
                || ids.len() != rows
                || codes.len() != rows
                || (0..rows).any(|r| codes.get(r).is_none_or(|c| c as usize >= channels))
            {
                return Err(SnapshotError::Corrupt("events"));
            }
            let props = self.len(8)?;
            let mut list: Vec<Prop> = Vec::with_capacity(props.min(1024));
            for _ in 0..props {
                let name: Box<str> = self.text()?.into();
                if list.iter().any(|p| p.name == name) {
                    return Err(SnapshotError::Corrupt("events"));
                }
                let flags = self.u64()?;
                if flags > 3 {
                    return Err(SnapshotError::Corrupt("events"));
                }
                let num = if flags & 1 == 1 {
                    let present = Bits::from_words(self.vec()?);
                    let nums = self.nums()?;
                    if nums.len() > rows || present.iter().any(|r| r >= nums.len()) {
                        return Err(SnapshotError::Corrupt("events"));
                    }
                    Some(NumProp { present, nums })
                } else {
                    None
                };
                let text = if flags & 2 == 2 {
                    let present = Bits::from_words(self.vec()?);
                    let codes = self.codes()?;
                    let dict = self.dict()?;
                    let mut refs = vec![0u32; dict.codes()];
                    for r in present.iter() {
                        match codes.get(r).and_then(|c| refs.get_mut(c as usize)) {
                            Some(n) if r < rows => *n += 1,
                            _ => return Err(SnapshotError::Corrupt("events")),
                        }
                    }
                    if refs.as_slice() != dict.parts().4
                        || Codes::zeros(0, dict.codes()).width() > codes.width()
                        || codes.len() > rows
                    {
                        return Err(SnapshotError::Corrupt("events"));
                    }
                    Some(StrProp {
                        present,
                        codes,
                        dict,
                    })
                } else {
                    None
                };
                list.push(Prop { name, num, text });
            }
            parts.push(Table::from_parts(
                code,
                slots,
                ts,
                ids,
                channel_names,
                codes,
                list,
            ));
        }
        Events::from_parts(parts, retired).ok_or(bad)
    }

    /// The subscriptions: channels in ascending order, each once, named canonically, with
    /// a bitset as long as the capacity holding alive slots only.
    fn subscribed(
        &mut self,
        alive: &Bits,
        rows: usize,
    ) -> Result<BTreeMap<Channel, Bits>, SnapshotError> {
        let n = self.len(16)?;
        let mut out = BTreeMap::new();
        let mut last: Option<Channel> = None;
        for _ in 0..n {
            let text = String::from_utf8(self.bytes()?).map_err(|_| bad_subscriptions())?;
            let channel = Channel::parse(&text)
                .ok()
                .filter(|c| c.as_str() == text && last.as_ref().is_none_or(|l| l < c))
                .ok_or(bad_subscriptions())?;
            let words: Vec<u64> = self.vec()?;
            if words.len() != rows.div_ceil(64)
                || words.iter().zip(alive.words()).any(|(b, a)| b & !a != 0)
            {
                return Err(bad_subscriptions());
            }
            last = Some(channel.clone());
            out.insert(channel, Bits::from_words(words));
        }
        Ok(out)
    }

    fn column(&mut self, rows: usize) -> Result<Column, SnapshotError> {
        let corrupt = SnapshotError::Corrupt;
        let ty = match self.u64()? {
            1 => FieldType::String,
            2 => FieldType::Number,
            3 => FieldType::Datetime,
            4 => FieldType::Date,
            _ => return Err(corrupt("column type")),
        };
        let count = self.u64()?;
        let present = self.vec::<u64>()?;
        if present.len() != rows.div_ceil(64) {
            return Err(corrupt("presence length"));
        }
        let present = Bits::from_words(present);
        if present.count_ones() != count {
            return Err(corrupt("value count"));
        }
        let data = match ty {
            FieldType::String => {
                let codes = self.codes()?;
                let dict = self.dict()?;
                if codes.len() != rows || Codes::zeros(0, dict.codes()).width() > codes.width() {
                    return Err(corrupt("codes"));
                }
                let n = dict.codes() as u32;
                if present
                    .iter()
                    .any(|row| codes.get(row).is_none_or(|c| c >= n))
                {
                    return Err(corrupt("a code outside its dictionary"));
                }
                Data::Str { codes, dict }
            }
            FieldType::Number => Data::Num(self.nums()?),
            FieldType::Datetime => Data::Datetime {
                ms: self.vec()?,
                md: self.vec()?,
            },
            FieldType::Date => Data::Date {
                days: self.vec()?,
                md: self.vec()?,
            },
        };
        let lengths_ok = match &data {
            Data::Str { .. } => true,
            Data::Num(v) => v.len() == rows,
            Data::Datetime { ms, md } => ms.len() == rows && md.len() == rows,
            Data::Date { days, md } => days.len() == rows && md.len() == rows,
        };
        if !lengths_ok {
            return Err(corrupt("column length"));
        }
        Ok(Column {
            ty,
            present,
            count,
            data,
        })
    }
}

impl AppIndex {
    /// Writes this index as a snapshot stamped with `stamp` (see the module docs).
    pub fn write_snapshot(&self, stamp: &[u8], w: &mut impl Write) -> io::Result<()> {
        let mut out = Out {
            w,
            sum: Checksum::new(),
            buf: Vec::with_capacity(CHUNK * 8),
        };
        out.raw(MAGIC)?;
        out.u64(u64::from(FORMAT))?;
        out.slice(stamp)?;
        let p = self;
        out.u64(p.rows as u64)?;
        out.u64(p.high as u64)?;
        out.u64(p.live as u64)?;
        out.slice(p.alive.words())?;
        out.slice(&p.free)?;
        out.slice(&p.ids)?;
        let order: Vec<u32> = p.order().values().copied().collect();
        out.slice(&order)?;
        drop(order);
        out.column(&p.customer_id)?;
        out.column(&p.created_at)?;
        out.column(&p.updated_at)?;
        let mut fields: Vec<(&FieldId, &Column)> = p.fields.iter().collect();
        fields.sort_by_key(|(id, _)| **id);
        out.u64(fields.len() as u64)?;
        for (id, column) in fields {
            out.u64(u64::from(id.0))?;
            out.column(column)?;
        }
        out.events(&p.events)?;
        out.u64(p.subscribed.len() as u64)?;
        for (channel, bits) in &p.subscribed {
            out.slice(channel.as_str().as_bytes())?;
            out.slice(bits.words())?;
        }
        let sum = out.sum.finish();
        out.w.write_all(&sum.to_le_bytes())?;
        out.w.flush()
    }

    /// Reads a snapshot of `len` bytes written by [`AppIndex::write_snapshot`], if it
    /// carries exactly `stamp`, its columns follow `schema` (same field ids and types),
    /// and it is intact. `tz` is the time zone its month-day codes were computed in (the
    /// caller's stamp must pin it).
    pub fn read_snapshot(
        r: &mut impl Read,
        len: u64,
        stamp: &[u8],
        schema: &Schema,
        tz: TimeZone,
    ) -> Result<AppIndex, SnapshotError> {
        Self::read_snapshot_if(r, len, |s| s == stamp, schema, tz)
    }

    /// [`AppIndex::read_snapshot`] for a caller that learns what the snapshot reflects
    /// from its stamp: `accept` sees the stamp before anything else is read, and the
    /// snapshot is refused unless it answers true.
    pub fn read_snapshot_if(
        r: &mut impl Read,
        len: u64,
        accept: impl FnOnce(&[u8]) -> bool,
        schema: &Schema,
        tz: TimeZone,
    ) -> Result<AppIndex, SnapshotError> {
        let corrupt = SnapshotError::Corrupt;
        let mut input = In {
            r,
            sum: Checksum::new(),
            left: len.saturating_sub(8),
            buf: Vec::new(),
        };
        if input.raw(MAGIC.len())? != MAGIC {
            return Err(SnapshotError::Mismatch("not a snapshot"));
        }
        if input.u64()? != u64::from(FORMAT) {
            return Err(SnapshotError::Mismatch("another format"));
        }
        if !accept(&input.vec::<u8>()?) {
            return Err(SnapshotError::Mismatch("another stamp"));
        }
        let rows = usize::try_from(input.u64()?).map_err(|_| corrupt("rows"))?;
        let high = usize::try_from(input.u64()?).map_err(|_| corrupt("high"))?;
        let live = usize::try_from(input.u64()?).map_err(|_| corrupt("live"))?;
        if !rows.is_multiple_of(crate::eval::BLOCK_ROWS) || high > rows {
            return Err(corrupt("capacity"));
        }
        let alive = Bits::from_words(input.vec()?);
        let free: Vec<u32> = input.vec()?;
        let ids: Vec<i64> = input.vec()?;
        let order: Vec<u32> = input.vec()?;
        if alive.words().len() != rows / 64
            || ids.len() != rows
            || alive.count_ones() != live as u64
            || order.len() != live
            || alive.iter().any(|s| s >= high)
            || free
                .iter()
                .any(|&s| s as usize >= high || alive.get(s as usize))
            || has_duplicates(&free)
        {
            return Err(corrupt("slots"));
        }
        let customer_id = input.column(rows)?;
        let created_at = input.column(rows)?;
        let updated_at = input.column(rows)?;
        if customer_id.ty != FieldType::String
            || created_at.ty != FieldType::Datetime
            || updated_at.ty != FieldType::Datetime
            || customer_id.count != live as u64
        {
            return Err(corrupt("built-in columns"));
        }
        // The lookups (ids to slots, the customerId order) are rebuilt by two helper
        // threads while the rest of the file is read: a restart's first answer waits for
        // the slower of the two, not their sum. Built from bytes the checksum has not
        // vouched for yet, they are dropped with the rest if it fails.
        let cid_of = |slot: usize| match &customer_id.data {
            Data::Str { codes, dict } => codes
                .get(slot)
                .and_then(|c| std::str::from_utf8(dict.value(c)).ok()),
            _ => None,
        };
        type OrderMap = BTreeMap<(Box<str>, i64), u32>;
        let (read, by_id, sorted) = std::thread::scope(|scope| {
            let (ids, alive, order) = (&ids, &alive, &order);
            let by_id = scope.spawn(move || {
                let mut map: HashMap<i64, u32, IntHash> = HashMap::default();
                map.reserve(live);
                map.extend(alive.iter().filter_map(|s| Some((*ids.get(s)?, s as u32))));
                map
            });
            let sorted = scope.spawn(move || -> Option<OrderMap> {
                let mut keys = Vec::with_capacity(order.len());
                for &slot in order {
                    let s = slot as usize;
                    let (Some(cid), Some(&id), true) = (cid_of(s), ids.get(s), alive.get(s)) else {
                        return None;
                    };
                    keys.push(((Box::<str>::from(cid), id), slot));
                }
                keys.windows(2)
                    .all(|w| w[0].0 < w[1].0)
                    .then(|| keys.into_iter().collect())
            });
            let read = (|| {
                let n = input.u64()?;
                // Computed fields have no column (their values are computed from the events).
                let stored = schema.fields().iter().filter(|f| !f.is_computed()).count();
                if n != stored as u64 {
                    return Err(SnapshotError::Mismatch("another schema"));
                }
                let mut fields = HashMap::new();
                for _ in 0..n {
                    let id = u32::try_from(input.u64()?).map_err(|_| corrupt("field id"))?;
                    let column = input.column(rows)?;
                    let def = schema
                        .by_id(FieldId(id))
                        .ok_or(SnapshotError::Mismatch("another schema"))?;
                    if def.field_type != column.ty || def.is_computed() {
                        return Err(SnapshotError::Mismatch("another schema"));
                    }
                    fields.insert(FieldId(id), column);
                }
                if fields.len() != stored {
                    return Err(SnapshotError::Mismatch("another schema"));
                }
                let events = input.events(alive, &free, high)?;
                let subscribed = input.subscribed(alive, rows)?;
                // A column holds values only for alive rows (counts of presence tests rely on it).
                let within_alive = |c: &Column| {
                    c.present
                        .words()
                        .iter()
                        .zip(alive.words())
                        .all(|(p, a)| p & !a == 0)
                };
                if !fields
                    .values()
                    .chain([&customer_id, &created_at, &updated_at])
                    .all(within_alive)
                {
                    return Err(corrupt("a value of a row that is not alive"));
                }
                let want = input.sum.finish();
                let mut tail = [0u8; 8];
                input.r.read_exact(&mut tail)?;
                if u64::from_le_bytes(tail) != want || input.left != 0 {
                    return Err(corrupt("checksum"));
                }
                Ok((fields, events, subscribed))
            })();
            (read, joined(by_id), joined(sorted))
        });
        let (fields, events, subscribed) = read?;
        let order = sorted.ok_or(corrupt("customerId order"))?;
        if by_id.len() != live || order.len() != live {
            return Err(corrupt("ids"));
        }
        Ok(AppIndex::from_parts(crate::index::Parts {
            schema: schema.clone(),
            local: LocalDays::new(tz),
            rows,
            high,
            alive,
            live,
            free,
            ids,
            by_id,
            order,
            customer_id,
            created_at,
            updated_at,
            fields,
            events,
            subscribed,
        }))
    }
}

/// Rewrites the checksum at the end of a snapshot's bytes to match the bytes before it, so
/// that a fuzzer's damaged contents reach the checks that come after the checksum's (the
/// rebuilt lookups). Only for tests: a real snapshot is never resealed.
#[doc(hidden)]
pub fn reseal_for_fuzzing(bytes: &mut [u8]) {
    let Some(n) = bytes.len().checked_sub(8) else {
        return;
    };
    let mut sum = Checksum::new();
    sum.update(&bytes[..n]);
    bytes[n..].copy_from_slice(&sum.finish().to_le_bytes());
}

/// A helper thread's result; its panic (a bug) goes on in the caller.
fn joined<T>(handle: std::thread::ScopedJoinHandle<'_, T>) -> T {
    handle
        .join()
        .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
}

fn bad_subscriptions() -> SnapshotError {
    SnapshotError::Corrupt("subscriptions")
}

/// Whether a slot list names a slot twice (two later customers would share it).
fn has_duplicates(slots: &[u32]) -> bool {
    let mut seen = Bits::default();
    slots.iter().any(|&s| {
        let dup = seen.get(s as usize);
        seen.assign(s as usize, true);
        dup
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use unico_core::{
        Channel, Customer, CustomerId, Event, EventCode, FieldDef, FieldName, Properties, Value,
    };

    fn schema() -> Schema {
        Schema::new(vec![FieldDef {
            id: FieldId(1),
            name: FieldName::parse("age").unwrap(),
            field_type: FieldType::Number,
            created_at: 0,
            computed: None,
        }])
    }

    /// An index with a free slot: three customers, the second removed.
    fn index() -> AppIndex {
        let mut index = AppIndex::new(&schema());
        for id in 1..=3 {
            index.upsert(&Customer {
                id,
                customer_id: CustomerId::parse(&format!("c{id}")).unwrap(),
                created_at: id,
                updated_at: id,
                fields: vec![(FieldId(1), Value::Number(id as f64))],
            });
        }
        let events: Vec<Event> = [1, 2, 3, 2]
            .iter()
            .enumerate()
            .map(|(k, &customer)| Event {
                id: k as i64,
                customer,
                event_id: None,
                event_type: EventCode::parse("purchase").unwrap(),
                channel: Channel::parse("web").unwrap(),
                device_id: None,
                timestamp: 1000 + k as i64,
                properties: Properties::from_json(serde_json::json!({"amount": 2.5, "sku": "a"}))
                    .unwrap(),
            })
            .collect();
        index.add_events(&events);
        index.remove(2);
        index
    }

    fn reread(index: &AppIndex) -> Result<AppIndex, SnapshotError> {
        let mut bytes = Vec::new();
        index.write_snapshot(b"stamp", &mut bytes).unwrap();
        AppIndex::read_snapshot(
            &mut bytes.as_slice(),
            bytes.len() as u64,
            b"stamp",
            &schema(),
            TimeZone::UTC,
        )
    }

    /// Snapshots whose checksum is right but whose contents contradict themselves (a bug
    /// that wrote them, or a forged file) are refused, each with its reason.
    #[test]
    fn inconsistent_contents_are_refused_with_their_reason() {
        let good = index();
        assert_eq!(reread(&good).unwrap().len(), 2);
        assert_eq!(reread(&good).unwrap().event_count(), 2);
        let alive_slot = good.alive.iter().next().unwrap() as u32;
        let dead_slot = (0..good.high as u32)
            .find(|&s| !good.alive.get(s as usize))
            .unwrap();
        type Damage = Box<dyn Fn(&mut AppIndex)>;
        let cases: Vec<(&str, Damage)> = vec![
            ("capacity", Box::new(|i| i.rows += 1)),
            ("slots", Box::new(move |i| i.free.push(alive_slot))),
            (
                "slots",
                Box::new(|i| {
                    let f = i.free[0];
                    i.free.push(f);
                }),
            ),
            ("slots", Box::new(|i| i.live += 1)),
            ("value count", Box::new(|i| i.customer_id.count += 1)),
            (
                "built-in columns",
                Box::new(move |i| {
                    i.customer_id.present.assign(alive_slot as usize, false);
                    i.customer_id.count -= 1;
                }),
            ),
            (
                "a value of a row that is not alive",
                Box::new(|i| {
                    let dead = i.free[0] as usize;
                    let age = i.fields.get_mut(&FieldId(1)).unwrap();
                    age.present.assign(dead, true);
                    age.count += 1;
                }),
            ),
            (
                "retired slots",
                Box::new(move |i| i.events.retired.push(alive_slot)),
            ),
            (
                "an event of a slot that is not alive",
                Box::new(move |i| {
                    // Removed without retiring (as if the slot were free).
                    i.events.retired.clear();
                    i.events.tables[0].slots[0] = dead_slot;
                }),
            ),
        ];
        for (why, damage) in cases {
            let mut bad = good.clone();
            damage(&mut bad);
            match reread(&bad) {
                Err(SnapshotError::Corrupt(got)) => assert_eq!(got, why),
                other => panic!("{why}: {:?}", other.map(|i| i.len())),
            }
        }
    }

    #[test]
    fn the_checksum_does_not_depend_on_how_bytes_are_cut() {
        let bytes: Vec<u8> = (0..1000u32).map(|i| (i * 7 + i / 13) as u8).collect();
        let mut whole = Checksum::new();
        whole.update(&bytes);
        for cut in [1, 3, 7, 8, 9, 500] {
            let mut parts = Checksum::new();
            for c in bytes.chunks(cut) {
                parts.update(c);
            }
            assert_eq!(parts.finish(), whole.finish(), "cut {cut}");
        }
        let mut other = bytes.clone();
        other[500] ^= 1;
        let mut changed = Checksum::new();
        changed.update(&other);
        assert_ne!(changed.finish(), whole.finish());
    }
}
