//! Events (interactions) held beside the customers, as columns per event type.
//!
//! Layout: one [`Table`] per event type (by code), its rows in arrival order, append-only:
//! - `slots` (`u32`): the slot of the customer the event belongs to;
//! - `ts` (`i64` epoch ms) and `ids` (the store's event ids, for idempotence: per zone
//!   the first id and per row an `i32` offset from it, see [`Ids`]);
//! - `channels`: a code per row into the table's own small channel list, as narrow as the
//!   list allows (one byte for up to 256 channels);
//! - per top-level property name ([`Prop`]), a number column ([`Nums`]: fixed-point
//!   integers while every value is one, else `f64`) for the rows holding a number, and a
//!   string column (dictionary codes) for the rows holding a string, each with a presence
//!   bitmap. A property of another kind (object, array, boolean, null) is not kept: no
//!   filter compares it. A property column may be shorter than the table (rows past its
//!   end hold nothing), so a property seen late costs nothing for the rows before it.
//! - zone maps: per [`ZONE_ROWS`] rows the smallest and largest time and id, so that a
//!   time window skips whole zones and a duplicate id is looked up in one or two zones.
//!
//! Removing a customer does not touch the tables at once: its slot is *retired* (kept out
//! of the free list, so no new customer can inherit the events) and its events become
//! stale; when stale events or retired slots pile up, [`Events::purge`] drops them all in
//! one pass and hands the slots back. Evaluation ignores stale events since it only ever
//! answers alive slots.
//!
//! *Invariants*: every column of a table but the property columns holds exactly `len`
//! rows; a property column holds at most `len` rows and its presence only rows below its
//! length; `per_slot[s]` is the number of stored rows whose slot is `s`; a slot with
//! stored rows is alive or retired; `stale` is the number of rows of retired slots;
//! `total` the number of rows; the zone maps, `prefix_max` and (when `suffix_ok`)
//! `suffix_min` describe the rows exactly.

use std::collections::HashMap;

use unico_core::{Channel, Event, EventCode, PropRef, Properties};

use crate::bits::Bits;
use crate::column::Codes;
use crate::dict::Dict;
use crate::num::{Ints, Nums};

/// Rows per zone of the zone maps (a multiple of 64, so zones start on bitmap words).
pub(crate) const ZONE_ROWS: usize = 4096;

/// One event as the tables take it in: an [`Event`] read back from the store, or an event
/// an import is writing (see [`crate::prepared`]).
pub trait EventRow {
    fn id(&self) -> i64;
    /// The internal id of its customer.
    fn customer(&self) -> i64;
    fn code(&self) -> &EventCode;
    fn channel(&self) -> &Channel;
    /// Epoch milliseconds.
    fn timestamp(&self) -> i64;
    fn properties(&self) -> &Properties;
}

impl EventRow for Event {
    fn id(&self) -> i64 {
        self.id
    }
    fn customer(&self) -> i64 {
        self.customer
    }
    fn code(&self) -> &EventCode {
        &self.event_type
    }
    fn channel(&self) -> &Channel {
        &self.channel
    }
    fn timestamp(&self) -> i64 {
        self.timestamp
    }
    fn properties(&self) -> &Properties {
        &self.properties
    }
}

/// The extremes of the times and ids of one zone's rows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Zone {
    pub(crate) min_ts: i64,
    pub(crate) max_ts: i64,
    pub(crate) min_id: i64,
    pub(crate) max_id: i64,
}

/// Marks a row whose id is too far from its zone's first id for an `i32` offset.
const FAR: i32 = i32::MIN;

/// Event ids, one per row: ids arrive in nearly increasing order, so within a zone they
/// lie close to the zone's first id and are kept as `i32` offsets from it (4 bytes a row
/// instead of 8); an id farther away (never seen in practice) is kept whole aside.
#[derive(Debug, Clone, Default)]
pub(crate) struct Ids {
    /// The first id of every zone.
    bases: Vec<i64>,
    offsets: Vec<i32>,
    far: HashMap<u32, i64>,
}

impl Ids {
    pub(crate) fn len(&self) -> usize {
        self.offsets.len()
    }

    fn reserve(&mut self, additional: usize) {
        reserve_for(&mut self.offsets, additional);
    }

    fn push(&mut self, id: i64) {
        let row = self.offsets.len();
        if row.is_multiple_of(ZONE_ROWS) {
            self.bases.push(id);
        }
        let base = self.bases.last().copied().unwrap_or(id);
        reserve_for(&mut self.offsets, 1);
        match id.checked_sub(base).and_then(|d| i32::try_from(d).ok()) {
            Some(o) if o != FAR => self.offsets.push(o),
            _ => {
                self.offsets.push(FAR);
                self.far.insert(row as u32, id);
            }
        }
    }

    /// The id of row `row` (0 past the end).
    pub(crate) fn get(&self, row: usize) -> i64 {
        match self.offsets.get(row) {
            None => 0,
            Some(&FAR) => self.far.get(&(row as u32)).copied().unwrap_or(0),
            Some(&o) => self.bases.get(row / ZONE_ROWS).copied().unwrap_or(0) + i64::from(o),
        }
    }

    /// Whether a row of `rows` (one zone) for which `keep(row)` holds has id `id`.
    fn zone_holds(
        &self,
        rows: std::ops::Range<usize>,
        id: i64,
        keep: impl Fn(usize) -> bool,
    ) -> bool {
        let Some(&base) = self.bases.get(rows.start / ZONE_ROWS) else {
            return false;
        };
        let near = id
            .checked_sub(base)
            .and_then(|d| i32::try_from(d).ok())
            .filter(|&o| o != FAR);
        if let (Some(o), Some(offsets)) = (near, self.offsets.get(rows.clone()))
            && offsets.contains(&o)
            && offsets
                .iter()
                .enumerate()
                .any(|(i, &x)| x == o && keep(rows.start + i))
        {
            return true;
        }
        !self.far.is_empty()
            && self
                .far
                .iter()
                .any(|(&r, &v)| v == id && rows.contains(&(r as usize)) && keep(r as usize))
    }

    fn from_ids(ids: impl IntoIterator<Item = i64>) -> Ids {
        let mut out = Ids::default();
        for id in ids {
            out.push(id);
        }
        out.offsets.shrink_to_fit();
        out.bases.shrink_to_fit();
        out
    }

    pub(crate) fn iter(&self) -> impl Iterator<Item = i64> + '_ {
        (0..self.len()).map(|r| self.get(r))
    }

    fn heap_bytes(&self) -> usize {
        self.bases.capacity() * 8 + self.offsets.capacity() * 4 + self.far.capacity() * (4 + 8 + 1)
    }
}

/// The rows of a property holding a number.
#[derive(Debug, Clone)]
pub(crate) struct NumProp {
    pub(crate) present: Bits,
    pub(crate) nums: Nums,
}

/// The rows of a property holding a string.
#[derive(Debug, Clone)]
pub(crate) struct StrProp {
    pub(crate) present: Bits,
    pub(crate) codes: Codes,
    pub(crate) dict: Dict,
}

/// One top-level property name of an event type.
#[derive(Debug, Clone)]
pub(crate) struct Prop {
    pub(crate) name: Box<str>,
    pub(crate) num: Option<NumProp>,
    pub(crate) text: Option<StrProp>,
}

impl Prop {
    /// Row `row` (the table's newest) holds the number `x`.
    fn set_num(&mut self, row: usize, x: f64) {
        let col = self.num.get_or_insert_with(|| NumProp {
            present: Bits::default(),
            nums: Nums::new(0),
        });
        grow_nums(&mut col.nums, row + 1);
        col.nums.set(row, x, &col.present);
        col.present.assign(row, true);
    }

    /// The string column, created empty if the property had none.
    fn text_mut(&mut self) -> &mut StrProp {
        self.text.get_or_insert_with(|| StrProp {
            present: Bits::default(),
            codes: Codes::zeros(0, 0),
            dict: Dict::default(),
        })
    }
}

impl StrProp {
    /// Row `row` (the table's newest) holds dictionary code `code` (already counted).
    fn set_code(&mut self, row: usize, code: u32) {
        grow_codes(&mut self.codes, row + 1);
        self.codes.set(row, code);
        self.present.assign(row, true);
    }
}

/// The events of one type. See the module docs.
#[derive(Debug, Clone)]
pub(crate) struct Table {
    pub(crate) code: EventCode,
    pub(crate) slots: Vec<u32>,
    pub(crate) ts: Vec<i64>,
    pub(crate) ids: Ids,
    pub(crate) channel_names: Vec<Channel>,
    pub(crate) channels: Codes,
    pub(crate) props: Vec<Prop>,
    prop_index: HashMap<Box<str>, usize>,
    pub(crate) zones: Vec<Zone>,
    /// Per zone, the largest id of it and every zone before it (non-decreasing).
    prefix_max: Vec<i64>,
    /// Per zone, the smallest id of it and every zone after it (non-decreasing); only
    /// valid when `suffix_ok` (an id arriving out of order invalidates it).
    suffix_min: Vec<i64>,
    suffix_ok: bool,
}

/// Grows `v` to `rows` elements (default values), reserving half its length more when
/// it must reallocate: amortised appends without doubling the memory held.
fn grow_vec<T: Copy + Default>(v: &mut Vec<T>, rows: usize) {
    if v.len() >= rows {
        return;
    }
    reserve_for(v, rows - v.len());
    v.resize(rows, T::default());
}

/// Room for `additional` more elements, reserving at least half the length more. (An
/// eighth copied a column built by appends, as a backfill's are, some nine times over:
/// the thread preparing a backfill's tables spent a quarter of its time on fresh pages
/// and copies. Capacity not yet written to costs address space, not memory.)
fn reserve_for<T>(v: &mut Vec<T>, additional: usize) {
    if v.capacity() - v.len() < additional {
        v.reserve_exact(additional.max(v.len() / 2).max(64));
    }
}

fn grow_codes(codes: &mut Codes, rows: usize) {
    match codes {
        Codes::U8(v) => grow_vec(v, rows),
        Codes::U16(v) => grow_vec(v, rows),
        Codes::U32(v) => grow_vec(v, rows),
    }
}

fn grow_nums(nums: &mut Nums, rows: usize) {
    match nums {
        Nums::Int { ints, .. } => match ints {
            Ints::I8(v) => grow_vec(v, rows),
            Ints::I16(v) => grow_vec(v, rows),
            Ints::I32(v) => grow_vec(v, rows),
        },
        Nums::F64(v) => grow_vec(v, rows),
    }
}

/// Keeps the elements whose index is in `keep` (indexes past `keep`'s end are dropped),
/// in order.
fn retain_rows<T: Copy>(v: &mut Vec<T>, keep: &Bits) {
    let mut w = 0;
    for r in 0..v.len() {
        if keep.get(r) {
            v[w] = v[r];
            w += 1;
        }
    }
    v.truncate(w);
    shrink_slack(v);
}

/// Gives back memory a compaction freed, when it is more than a quarter.
fn shrink_slack<T>(v: &mut Vec<T>) {
    if v.capacity() > v.len() + v.len() / 4 + 64 {
        v.shrink_to_fit();
    }
}

fn retain_codes(codes: &mut Codes, keep: &Bits) {
    match codes {
        Codes::U8(v) => retain_rows(v, keep),
        Codes::U16(v) => retain_rows(v, keep),
        Codes::U32(v) => retain_rows(v, keep),
    }
}

fn retain_nums(nums: &mut Nums, keep: &Bits) {
    match nums {
        Nums::Int { ints, .. } => match ints {
            Ints::I8(v) => retain_rows(v, keep),
            Ints::I16(v) => retain_rows(v, keep),
            Ints::I32(v) => retain_rows(v, keep),
        },
        Nums::F64(v) => retain_rows(v, keep),
    }
}

/// The presence bits of the kept rows, renumbered.
fn retain_bits(present: &Bits, keep: &Bits, rows: usize) -> Bits {
    let mut out = Bits::default();
    let mut w = 0;
    for r in 0..rows {
        if keep.get(r) {
            if present.get(r) {
                out.assign(w, true);
            }
            w += 1;
        }
    }
    out
}

/// Appends `code` to `codes`, widening every row first if it does not fit.
fn push_code(codes: &mut Codes, code: u32) {
    let fits = match codes {
        Codes::U8(_) => code <= u32::from(u8::MAX),
        Codes::U16(_) => code <= u32::from(u16::MAX),
        Codes::U32(_) => true,
    };
    if !fits {
        codes.widen(code as usize + 1);
    }
    match codes {
        Codes::U8(v) => {
            reserve_for(v, 1);
            v.push(code as u8);
        }
        Codes::U16(v) => {
            reserve_for(v, 1);
            v.push(code as u16);
        }
        Codes::U32(v) => {
            reserve_for(v, 1);
            v.push(code);
        }
    }
}

impl Table {
    pub(crate) fn new(code: EventCode) -> Self {
        Self {
            code,
            slots: Vec::new(),
            ts: Vec::new(),
            ids: Ids::default(),
            channel_names: Vec::new(),
            channels: Codes::zeros(0, 0),
            props: Vec::new(),
            prop_index: HashMap::new(),
            zones: Vec::new(),
            prefix_max: Vec::new(),
            suffix_min: Vec::new(),
            suffix_ok: true,
        }
    }

    /// A table from stored parts (the derived maps are rebuilt).
    pub(crate) fn from_parts(
        code: EventCode,
        slots: Vec<u32>,
        ts: Vec<i64>,
        ids: Vec<i64>,
        channel_names: Vec<Channel>,
        channels: Codes,
        props: Vec<Prop>,
    ) -> Self {
        let mut t = Self::new(code);
        t.slots = slots;
        t.ts = ts;
        t.ids = Ids::from_ids(ids);
        t.channel_names = channel_names;
        t.channels = channels;
        t.prop_index = props
            .iter()
            .enumerate()
            .map(|(i, p)| (p.name.clone(), i))
            .collect();
        t.props = props;
        t.rebuild_zones();
        t
    }

    pub(crate) fn len(&self) -> usize {
        self.ts.len()
    }

    /// The code of a channel in this table, if any row ever had it.
    pub(crate) fn channel_code(&self, channel: &Channel) -> Option<u32> {
        self.channel_names
            .iter()
            .position(|c| c == channel)
            .map(|i| i as u32)
    }

    pub(crate) fn prop(&self, name: &str) -> Option<&Prop> {
        self.prop_index.get(name).and_then(|&i| self.props.get(i))
    }

    /// The rows of zone `z`.
    pub(crate) fn zone_rows(&self, z: usize) -> std::ops::Range<usize> {
        let start = z * ZONE_ROWS;
        start..(start + ZONE_ROWS).min(self.len())
    }

    /// The smallest time of any row (`None` when empty).
    pub(crate) fn min_ts(&self) -> Option<i64> {
        self.zones.iter().map(|z| z.min_ts).min()
    }

    /// Whether a row of a slot not `retired` holds event id `id`.
    fn holds_id(&mut self, id: i64, retired: &Bits) -> bool {
        let Some(&max) = self.prefix_max.last() else {
            return false;
        };
        if id > max {
            return false;
        }
        if !self.suffix_ok {
            self.rebuild_suffix();
        }
        // Zones before `first` hold only smaller ids, zones from `end` on only larger.
        let first = self.prefix_max.partition_point(|&m| m < id);
        let end = self.suffix_min.partition_point(|&m| m <= id);
        (first..end).any(|z| {
            let zone = &self.zones[z];
            zone.min_id <= id
                && id <= zone.max_id
                && self.ids.zone_holds(self.zone_rows(z), id, |r| {
                    self.slots.get(r).is_some_and(|&s| !retired.get(s as usize))
                })
        })
    }

    fn rebuild_suffix(&mut self) {
        self.suffix_min = vec![0; self.zones.len()];
        let mut min = i64::MAX;
        for (z, zone) in self.zones.iter().enumerate().rev() {
            min = min.min(zone.min_id);
            self.suffix_min[z] = min;
        }
        self.suffix_ok = true;
    }

    /// Recomputes the zone maps from the rows.
    fn rebuild_zones(&mut self) {
        self.zones.clear();
        self.prefix_max.clear();
        let mut max = i64::MIN;
        for start in (0..self.len()).step_by(ZONE_ROWS) {
            let end = (start + ZONE_ROWS).min(self.len());
            let ts = &self.ts[start..end];
            let ids = (start..end).map(|r| self.ids.get(r));
            let zone = Zone {
                min_ts: ts.iter().copied().min().unwrap_or(0),
                max_ts: ts.iter().copied().max().unwrap_or(0),
                min_id: ids.clone().min().unwrap_or(0),
                max_id: ids.max().unwrap_or(0),
            };
            max = max.max(zone.max_id);
            self.zones.push(zone);
            self.prefix_max.push(max);
        }
        self.zones.shrink_to_fit();
        self.prefix_max.shrink_to_fit();
        self.rebuild_suffix();
    }

    /// Room for `additional` more rows in the fixed columns.
    fn reserve(&mut self, additional: usize) {
        reserve_for(&mut self.slots, additional);
        reserve_for(&mut self.ts, additional);
        self.ids.reserve(additional);
        match &mut self.channels {
            Codes::U8(v) => reserve_for(v, additional),
            Codes::U16(v) => reserve_for(v, additional),
            Codes::U32(v) => reserve_for(v, additional),
        }
    }

    fn intern_channel(&mut self, channel: &Channel, last: &mut u32) -> u32 {
        if self.channel_names.get(*last as usize) == Some(channel) {
            return *last;
        }
        let code = match self.channel_code(channel) {
            Some(c) => c,
            None => {
                self.channel_names.push(channel.clone());
                (self.channel_names.len() - 1) as u32
            }
        };
        *last = code;
        code
    }

    /// The index of property `name`, added if new; `guess` is tried first (events of a
    /// type tend to list their properties in the same order).
    fn prop_of(&mut self, name: &str, guess: usize) -> usize {
        if self.props.get(guess).is_some_and(|p| &*p.name == name) {
            return guess;
        }
        if let Some(&i) = self.prop_index.get(name) {
            return i;
        }
        let i = self.props.len();
        self.props.push(Prop {
            name: name.into(),
            num: None,
            text: None,
        });
        self.prop_index.insert(name.into(), i);
        i
    }

    /// Appends the events of this table's type at `picked` (index into `events`, slot),
    /// skipping any whose id a row of a slot not `retired` already holds; the slots of
    /// the appended rows go to `accepted`.
    fn append<R: EventRow>(
        &mut self,
        events: &[R],
        picked: &[(u32, u32)],
        retired: &Bits,
        accepted: &mut Vec<u32>,
    ) {
        self.reserve(picked.len());
        let mut last_channel = 0u32;
        for &(i, slot) in picked {
            let Some(e) = events.get(i as usize) else {
                continue;
            };
            let (id, ts) = (e.id(), e.timestamp());
            if self.holds_id(id, retired) {
                continue;
            }
            let row = self.len();
            let channel = self.intern_channel(e.channel(), &mut last_channel);
            push_code(&mut self.channels, channel);
            self.slots.push(slot);
            self.ts.push(ts);
            self.ids.push(id);
            e.properties().for_each_comparable(|k, name, value| {
                let p = self.prop_of(name, k);
                let prop = &mut self.props[p];
                match value {
                    PropRef::Num(x) => prop.set_num(row, x),
                    PropRef::Str(s) => {
                        let col = prop.text_mut();
                        // A full dictionary (4 billion values) leaves the row without one.
                        if let Some(code) = col.dict.intern(s) {
                            col.set_code(row, code);
                        }
                    }
                }
            });
            self.note_zone(row, ts, id);
            accepted.push(slot);
        }
    }

    /// Appends the rows of `other` (a table of the same type, prepared apart) whose slot
    /// `slots` maps to a slot (its own slots number customers: `slots[s]` is the slot of
    /// number `s`, `None` for a customer not held), skipping any whose id a row of a slot
    /// not `retired` already holds, as [`Table::append`] would for the same events; the
    /// slots of the appended rows go to `accepted`. Channels, property names and strings
    /// are translated once per distinct value, not per row.
    fn append_table(
        &mut self,
        other: &Table,
        slots: &[Option<u32>],
        retired: &Bits,
        accepted: &mut Vec<u32>,
    ) {
        self.reserve(other.len());
        let mut last_channel = 0u32;
        let channels: Vec<u32> = other
            .channel_names
            .iter()
            .map(|c| self.intern_channel(c, &mut last_channel))
            .collect();
        let props: Vec<usize> = other
            .props
            .iter()
            .enumerate()
            .map(|(k, p)| self.prop_of(&p.name, k))
            .collect();
        // Per string property, the code here of each of `other`'s codes, once met.
        let mut codes: Vec<Vec<Option<u32>>> = other
            .props
            .iter()
            .map(|p| {
                p.text
                    .as_ref()
                    .map_or_else(Vec::new, |t| vec![None; t.dict.codes()])
            })
            .collect();
        for r in 0..other.len() {
            let Some(slot) = other
                .slots
                .get(r)
                .and_then(|&s| slots.get(s as usize).copied().flatten())
            else {
                continue;
            };
            let (id, ts) = (other.ids.get(r), other.ts[r]);
            if self.holds_id(id, retired) {
                continue;
            }
            let row = self.len();
            let channel = other
                .channels
                .get(r)
                .and_then(|c| channels.get(c as usize).copied())
                .unwrap_or(0);
            push_code(&mut self.channels, channel);
            self.slots.push(slot);
            self.ts.push(ts);
            self.ids.push(id);
            for (k, from) in other.props.iter().enumerate() {
                let prop = &mut self.props[props[k]];
                if let Some(num) = &from.num
                    && num.present.get(r)
                    && let Some(x) = num.nums.get(r)
                {
                    prop.set_num(row, x);
                }
                if let Some(text) = &from.text
                    && text.present.get(r)
                    && let Some(code) = text.codes.get(r)
                {
                    let col = prop.text_mut();
                    let known = codes[k].get(code as usize).copied().flatten();
                    let here = match known {
                        Some(c) => {
                            col.dict.retain(c);
                            Some(c)
                        }
                        None => std::str::from_utf8(text.dict.value(code))
                            .ok()
                            .and_then(|v| col.dict.intern(v)),
                    };
                    // A full dictionary (4 billion values) leaves the row without one.
                    if let Some(c) = here {
                        if let Some(slot) = codes[k].get_mut(code as usize) {
                            *slot = Some(c);
                        }
                        col.set_code(row, c);
                    }
                }
            }
            self.note_zone(row, ts, id);
            accepted.push(slot);
        }
    }

    /// Extends the zone maps with row `row`.
    fn note_zone(&mut self, row: usize, ts: i64, id: i64) {
        let before = self.prefix_max.last().copied();
        let in_order = before.is_none_or(|m| id > m);
        let max = before.map_or(id, |m| m.max(id));
        if row.is_multiple_of(ZONE_ROWS) {
            self.zones.push(Zone {
                min_ts: ts,
                max_ts: ts,
                min_id: id,
                max_id: id,
            });
            self.prefix_max.push(max);
            if in_order && self.suffix_ok {
                self.suffix_min.push(id);
            } else {
                self.suffix_ok = false;
            }
        } else {
            if let Some(z) = self.zones.last_mut() {
                z.min_ts = z.min_ts.min(ts);
                z.max_ts = z.max_ts.max(ts);
                z.min_id = z.min_id.min(id);
                z.max_id = z.max_id.max(id);
            }
            if let Some(m) = self.prefix_max.last_mut() {
                *m = max;
            }
            if !in_order {
                self.suffix_ok = false;
            }
        }
    }

    /// Keeps the rows in `keep`, releasing the dictionary codes of the others.
    fn retain(&mut self, keep: &Bits) {
        let rows = self.len();
        for prop in &mut self.props {
            if let Some(col) = &mut prop.num {
                let n = col.nums.len().min(rows);
                col.present = retain_bits(&col.present, keep, n);
                retain_nums(&mut col.nums, keep);
            }
            if let Some(col) = &mut prop.text {
                let n = col.codes.len().min(rows);
                for r in col.present.iter().take_while(|&r| r < n) {
                    if !keep.get(r)
                        && let Some(c) = col.codes.get(r)
                    {
                        col.dict.release(c);
                    }
                }
                col.present = retain_bits(&col.present, keep, n);
                retain_codes(&mut col.codes, keep);
                if col.dict.wants_compaction() {
                    let (fresh, map) = col.dict.compacted();
                    let mut codes = Codes::zeros(col.codes.len(), fresh.codes());
                    for r in col.present.iter() {
                        if let Some(old) = col.codes.get(r) {
                            codes.set(r, map.get(old as usize).copied().unwrap_or(0));
                        }
                    }
                    col.codes = codes;
                    col.dict = fresh;
                }
            }
        }
        retain_rows(&mut self.slots, keep);
        retain_rows(&mut self.ts, keep);
        self.ids = Ids::from_ids(
            self.ids
                .iter()
                .enumerate()
                .filter(|(r, _)| keep.get(*r))
                .map(|(_, id)| id),
        );
        retain_codes(&mut self.channels, keep);
        self.rebuild_zones();
    }

    fn heap_bytes(&self) -> usize {
        let props: usize = self
            .props
            .iter()
            .map(|p| {
                p.name.len()
                    + std::mem::size_of::<Prop>()
                    + p.num
                        .as_ref()
                        .map_or(0, |c| c.present.heap_bytes() + c.nums.heap_bytes())
                    + p.text.as_ref().map_or(0, |c| {
                        c.present.heap_bytes() + c.codes.heap_bytes() + c.dict.heap_bytes()
                    })
            })
            .sum();
        self.slots.capacity() * 4
            + self.ts.capacity() * 8
            + self.ids.heap_bytes()
            + self.channels.heap_bytes()
            + self
                .channel_names
                .iter()
                .map(|c| c.as_str().len() + 24)
                .sum::<usize>()
            + props
            + self.prop_index.capacity() * (16 + 8 + 1)
            + self.zones.capacity() * std::mem::size_of::<Zone>()
            + (self.prefix_max.capacity() + self.suffix_min.capacity()) * 8
    }
}

/// One table's share of a batch: the table, its events (index into the batch, slot), and
/// where the slots of the rows it appends go.
type Append<'a> = (&'a mut Table, &'a [(u32, u32)], &'a mut Vec<u32>);

/// Every event type's table, and the bookkeeping of slots. See the module docs.
#[derive(Debug, Clone, Default)]
pub(crate) struct Events {
    pub(crate) tables: Vec<Table>,
    by_code: HashMap<EventCode, usize>,
    /// Rows per slot (possibly shorter than the index: missing slots have none).
    per_slot: Vec<u32>,
    /// Slots of removed customers whose rows are still stored.
    pub(crate) retired: Vec<u32>,
    retired_bits: Bits,
    /// Rows of retired slots.
    stale: u64,
    /// Rows.
    total: u64,
}

impl Events {
    /// Events from stored tables and retired slots; `None` if a table's type repeats.
    pub(crate) fn from_parts(tables: Vec<Table>, retired: Vec<u32>) -> Option<Self> {
        let mut e = Events::default();
        for (i, t) in tables.iter().enumerate() {
            if e.by_code.insert(t.code.clone(), i).is_some() {
                return None;
            }
            for &s in &t.slots {
                let s = s as usize;
                if s >= e.per_slot.len() {
                    e.per_slot.resize(s + 1, 0);
                }
                e.per_slot[s] = e.per_slot[s].saturating_add(1);
            }
            e.total += t.len() as u64;
        }
        for &s in &retired {
            e.retired_bits.assign(s as usize, true);
            e.stale += u64::from(e.of_slot(s as usize));
        }
        e.retired = retired;
        e.tables = tables;
        Some(e)
    }

    pub(crate) fn table(&self, code: &EventCode) -> Option<&Table> {
        self.by_code.get(code).and_then(|&i| self.tables.get(i))
    }

    /// Rows of customers the index holds.
    pub(crate) fn count(&self) -> u64 {
        self.total - self.stale
    }

    /// Rows of slot `slot`.
    pub(crate) fn of_slot(&self, slot: usize) -> u32 {
        self.per_slot.get(slot).copied().unwrap_or(0)
    }

    fn table_index(&mut self, code: &EventCode) -> usize {
        if let Some(&i) = self.by_code.get(code) {
            return i;
        }
        let i = self.tables.len();
        self.tables.push(Table::new(code.clone()));
        self.by_code.insert(code.clone(), i);
        i
    }

    /// Appends `events`, each with the slot of its customer (`None`: not held, ignored);
    /// an event whose id its type's table already holds is ignored. Tables fill in
    /// parallel for a large batch.
    pub(crate) fn add<R: EventRow + Sync>(
        &mut self,
        events: &[R],
        slot_of: impl Fn(i64) -> Option<u32>,
        threads: usize,
    ) {
        let mut picked: Vec<Vec<(u32, u32)>> = vec![Vec::new(); self.tables.len()];
        // Events read back share one code per type: a code seen before is known by its
        // address, without hashing it (a customer's events alternate between types).
        let mut seen = unico_core::SeenCodes::default();
        // A customer's events come together (a block read back, a client's batch): the
        // slot of the event before costs no lookup.
        let mut last: Option<(i64, Option<u32>)> = None;
        for (i, e) in events.iter().enumerate() {
            let slot = match last {
                Some((customer, slot)) if customer == e.customer() => slot,
                _ => {
                    let slot = slot_of(e.customer());
                    last = Some((e.customer(), slot));
                    slot
                }
            };
            let Some(slot) = slot else {
                continue;
            };
            let Some(t) = seen.get_or(e.code(), || Some(self.table_index(e.code()))) else {
                continue;
            };
            if t >= picked.len() {
                picked.resize(t + 1, Vec::new());
            }
            picked[t].push((i as u32, slot));
        }
        let mut accepted: Vec<Vec<u32>> = vec![Vec::new(); picked.len()];
        let jobs: Vec<Append<'_>> = self
            .tables
            .iter_mut()
            .zip(&picked)
            .zip(&mut accepted)
            .filter(|((_, p), _)| !p.is_empty())
            .map(|((t, p), a)| (t, p.as_slice(), a))
            .collect();
        let threads = if events.len() >= 1 << 16 { threads } else { 1 };
        let retired = &self.retired_bits;
        crate::index::run_jobs(jobs, threads, |(table, picked, accepted)| {
            table.append(events, picked, retired, accepted);
        });
        for slot in accepted.iter().flatten() {
            let s = *slot as usize;
            if s >= self.per_slot.len() {
                grow_vec(&mut self.per_slot, s + 1);
            }
            self.per_slot[s] = self.per_slot[s].saturating_add(1);
            self.total += 1;
        }
    }

    /// Replaces every row's slot `s` by `slots[s]` (every slot of a row must be below
    /// `slots.len()`), dropping the rows whose new slot is `None`, and counts the rows
    /// per slot again. Only for tables no slot has retired (prepared ones).
    pub(crate) fn renumber_slots(&mut self, slots: &[Option<u32>]) {
        debug_assert!(self.retired.is_empty());
        let new_slot = |s: u32| slots.get(s as usize).copied().flatten();
        self.per_slot.clear();
        self.total = 0;
        for t in &mut self.tables {
            if t.slots.iter().any(|&s| new_slot(s).is_none()) {
                let mut keep = Bits::with_rows(t.len());
                for (r, &s) in t.slots.iter().enumerate() {
                    if new_slot(s).is_some() {
                        keep.assign(r, true);
                    }
                }
                t.retain(&keep);
            }
            for s in &mut t.slots {
                // Every row left has a slot.
                let slot = new_slot(*s).unwrap_or(*s);
                *s = slot;
                let at = slot as usize;
                if at >= self.per_slot.len() {
                    grow_vec(&mut self.per_slot, at + 1);
                }
                self.per_slot[at] += 1;
            }
            self.total += t.len() as u64;
        }
    }

    /// Takes in prepared tables (`other`, whose slots number customers: `slots[s]` is the
    /// slot of number `s`, `None` for a customer not held): the rows of held customers
    /// whose ids are not held already, as [`Events::add`] would have taken the same
    /// events. Holding no rows, this index takes `other`'s tables over whole.
    pub(crate) fn take_prepared(&mut self, mut other: Events, slots: &[Option<u32>]) {
        if self.is_empty() {
            other.renumber_slots(slots);
            *self = other;
            return;
        }
        let mut accepted = Vec::new();
        for table in &other.tables {
            let i = self.table_index(&table.code);
            self.tables[i].append_table(table, slots, &self.retired_bits, &mut accepted);
        }
        for slot in accepted {
            let s = slot as usize;
            if s >= self.per_slot.len() {
                grow_vec(&mut self.per_slot, s + 1);
            }
            self.per_slot[s] = self.per_slot[s].saturating_add(1);
            self.total += 1;
        }
    }

    /// Whether no row and no retired slot is held.
    pub(crate) fn is_empty(&self) -> bool {
        self.total == 0 && self.retired.is_empty()
    }

    /// Clears every property value of `slot`'s rows (numbers zeroed, strings released and,
    /// when no other row holds them, overwritten in their dictionary): what erasing its
    /// customer leaves of its events until the rows are purged is their types, channels and
    /// times. Reads each table's slots once.
    pub(crate) fn scrub(&mut self, slot: usize) {
        if self.of_slot(slot) == 0 {
            return;
        }
        for t in &mut self.tables {
            let rows: Vec<usize> = t
                .slots
                .iter()
                .enumerate()
                .filter(|&(_, &s)| s as usize == slot)
                .map(|(r, _)| r)
                .collect();
            if rows.is_empty() {
                continue;
            }
            for prop in &mut t.props {
                if let Some(col) = &mut prop.num {
                    for &r in &rows {
                        if col.present.get(r) {
                            col.present.assign(r, false);
                        }
                        if r < col.nums.len() {
                            col.nums.set(r, 0.0, &col.present);
                        }
                    }
                }
                if let Some(col) = &mut prop.text {
                    for &r in &rows {
                        if !col.present.get(r) {
                            continue;
                        }
                        col.present.assign(r, false);
                        if let Some(code) = col.codes.get(r) {
                            col.dict.release(code);
                            col.dict.scrub_if_dead(code);
                            col.codes.set(r, 0);
                        }
                    }
                }
            }
        }
    }

    /// Retires `slot` (its customer was removed) if it holds rows; `false` if it holds
    /// none (the slot is free at once).
    pub(crate) fn retire(&mut self, slot: usize) -> bool {
        let n = self.of_slot(slot);
        if n == 0 {
            return false;
        }
        self.retired.push(slot as u32);
        self.retired_bits.assign(slot, true);
        self.stale += u64::from(n);
        true
    }

    /// Whether enough is stale that a purge pays: a quarter of the rows, or retired slots
    /// an eighth of the index's `slots`.
    pub(crate) fn wants_purge(&self, slots: usize) -> bool {
        !self.retired.is_empty() && (self.stale * 4 > self.total || self.retired.len() * 8 > slots)
    }

    /// Drops every row of a retired slot; answers the slots, now free.
    pub(crate) fn purge(&mut self) -> Vec<u32> {
        if self.stale > 0 {
            let bits = &self.retired_bits;
            for t in &mut self.tables {
                if !t.slots.iter().any(|&s| bits.get(s as usize)) {
                    continue;
                }
                let mut keep = Bits::with_rows(t.len());
                for (r, &s) in t.slots.iter().enumerate() {
                    if !bits.get(s as usize) {
                        keep.assign(r, true);
                    }
                }
                t.retain(&keep);
            }
        }
        for &s in &self.retired {
            if let Some(n) = self.per_slot.get_mut(s as usize) {
                *n = 0;
            }
        }
        self.total -= self.stale;
        self.stale = 0;
        self.retired_bits = Bits::default();
        std::mem::take(&mut self.retired)
    }

    /// Drops the rows of type `code` older than `before_ms` (and, on the way, the stale
    /// rows of that type); answers how many rows of held customers went.
    pub(crate) fn remove_before(&mut self, code: &EventCode, before_ms: i64) -> u64 {
        let Some(&i) = self.by_code.get(code) else {
            return 0;
        };
        let t = &mut self.tables[i];
        if t.min_ts().is_none_or(|m| m >= before_ms) {
            return 0;
        }
        let mut keep = Bits::with_rows(t.len());
        let mut removed = 0u64;
        let mut stale = 0u64;
        for (r, (&s, &ts)) in t.slots.iter().zip(&t.ts).enumerate() {
            let retired = self.retired_bits.get(s as usize);
            if ts >= before_ms && !retired {
                keep.assign(r, true);
                continue;
            }
            if retired {
                stale += 1;
            } else {
                removed += 1;
            }
            if let Some(n) = self.per_slot.get_mut(s as usize) {
                *n -= 1;
            }
        }
        t.retain(&keep);
        self.total -= removed + stale;
        self.stale -= stale;
        removed
    }

    pub(crate) fn heap_bytes(&self) -> usize {
        self.tables.iter().map(Table::heap_bytes).sum::<usize>()
            + self.tables.capacity() * std::mem::size_of::<Table>()
            + self.by_code.capacity() * (std::mem::size_of::<EventCode>() + 8 + 1)
            + self.per_slot.capacity() * 4
            + self.retired.capacity() * 4
            + self.retired_bits.heap_bytes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_read_back_across_zones_near_and_far() {
        let mut want: Vec<i64> = (0..3 * ZONE_ROWS as i64 + 17)
            .map(|i| 1000 + i * 3)
            .collect();
        for (row, far) in [
            (5, i64::MAX),
            (6, i64::MIN),
            (ZONE_ROWS, -7),
            (ZONE_ROWS + 1, 1 << 40),
            (2 * ZONE_ROWS - 1, 1000 + i64::from(i32::MAX) + 1),
        ] {
            want[row] = far;
        }
        let ids = Ids::from_ids(want.iter().copied());
        assert_eq!(ids.iter().collect::<Vec<_>>(), want);
        assert_eq!(
            ids.far.len(),
            4,
            "the first id of a zone is its base, never far"
        );
        for (row, &id) in want.iter().enumerate() {
            let zone = row / ZONE_ROWS;
            let rows = zone * ZONE_ROWS..((zone + 1) * ZONE_ROWS).min(want.len());
            assert!(
                ids.zone_holds(rows.clone(), id, |_| true),
                "{id} in zone {zone}"
            );
            assert!(
                !ids.zone_holds(rows.clone(), id, |r| r != row),
                "{id} only at {row}"
            );
            assert!(!ids.zone_holds(rows, 1001, |_| true));
        }
    }
}
