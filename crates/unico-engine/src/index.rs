//! [`AppIndex`]: one application's customers as columns, kept in step with upserts and
//! removals, answering counts, member sets and pages.
//!
//! Layout:
//! - **slots**: every customer lives in a row ("slot"); `ids[slot]` is its `id`,
//!   `by_id` maps back, `alive` marks the occupied slots. A removed customer's slot is
//!   cleared in every column, unmarked, and put on the `free` list for the next insert
//!   (once its events are gone, see below), so slots stay dense without ever moving a
//!   live row.
//! - **columns**: one [`Column`] per schema field (by [`FieldId`]), and three built-in
//!   ones: `customerId` (a string column, one code per customer), `created_at` and
//!   `updated_at` (datetime columns).
//! - **customerId order**: a `BTreeMap` keyed by `(customerId, id)` → slot, so a page in
//!   byte order is a walk from the cursor that stops after `limit` members.
//! - **events**: the customers' events, per type, as columns keyed by slot
//!   ([`crate::events`]). A removed customer with events leaves its slot *retired* (neither
//!   alive nor free) until its events are purged, so no later customer inherits them.
//! - **subscriptions**: per channel, a bitset of the slots whose customer is subscribed to
//!   it now (consent, SPEC §1); a channel nobody is subscribed to may have none.
//!
//! *Invariants*: `rows` (the capacity) is a multiple of [`BLOCK_ROWS`] and every column,
//! bitset and `ids` holds exactly `rows` rows; `high <= rows` and no slot at or past
//! `high` was ever used; a slot is in `alive` iff it is in `by_id` and in `order`; a
//! column holds values only for alive slots, only of its own type, and only for fields of
//! the current schema; a subscription bit is set only for alive slots (a removed
//! customer's are cleared, so a slot's next customer inherits none); the month-day codes
//! of datetime rows are those of the index's time zone; a slot below `high` is alive, free or retired, exactly one of them, and
//! only alive and retired slots hold events.

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use jiff::tz::TimeZone;
use unico_core::{Channel, Customer, Event, EventCode, FieldId, FieldType, Schema, Value};
use unico_filter::resolve::Resolved;
use unico_filter::{EvalContext, Filter, resolve};

use crate::bits::{Bits, WORD_BITS};
use crate::column::{Column, Data};
use crate::dict::IntHash;
use crate::eval::{BLOCK_ROWS, BLOCK_WORDS, Plan, eval};
use crate::events::Events;
use crate::local::LocalDays;
use crate::members::Members;
use crate::parallel::{split_words, sum_ranges};
use crate::prepared::PreparedEvents;

/// Below this many rows per thread a scan stays on the caller's thread. Large: on shared
/// cores a helper thread may wait for a core for a whole scheduler slice (milliseconds),
/// and the scan waits for it, so a split pays only where one thread's share takes
/// milliseconds itself (measured on 2 busy cores: 1M rows are as fast on one thread, and
/// never stall).
const DEFAULT_PARALLEL_MIN_ROWS: usize = 1 << 19;
/// At most this many threads per scan.
const MAX_THREADS: usize = 8;
/// Rows any filter's count reads in tens of microseconds (see [`AppIndex::count_if_cheap`]).
const CHEAP_ROWS: usize = 1 << 16;
/// Rows a page walk tests one at a time before evaluating the whole filter instead.
const DEFAULT_PAGE_WALK_ROWS: usize = 16_384;
/// New customers in one [`AppIndex::upsert_many`] call from which they are appended as a
/// parallel bulk load rather than one by one.
const BULK_MIN: usize = 1024;

/// One application's customers, in memory, as columns. Pure: no I/O, never writes to a
/// store. See the module docs for the layout and its invariants.
#[derive(Debug, Clone)]
pub struct AppIndex {
    schema: Schema,
    local: LocalDays,
    pub(crate) rows: usize,
    pub(crate) high: usize,
    pub(crate) alive: Bits,
    pub(crate) live: usize,
    pub(crate) free: Vec<u32>,
    pub(crate) ids: Vec<i64>,
    by_id: HashMap<i64, u32, IntHash>,
    order: BTreeMap<(Box<str>, i64), u32>,
    pub(crate) customer_id: Column,
    pub(crate) created_at: Column,
    pub(crate) updated_at: Column,
    pub(crate) fields: HashMap<FieldId, Column>,
    pub(crate) events: Events,
    /// Per channel, the slots subscribed to it (each `rows` rows long, alive slots only).
    pub(crate) subscribed: BTreeMap<Channel, Bits>,
    threads: usize,
    parallel_min_rows: usize,
    page_walk_rows: usize,
}

/// Everything an index holds but its tuning, to assemble one (from a snapshot).
pub(crate) struct Parts {
    pub(crate) schema: Schema,
    pub(crate) local: LocalDays,
    pub(crate) rows: usize,
    pub(crate) high: usize,
    pub(crate) alive: Bits,
    pub(crate) live: usize,
    pub(crate) free: Vec<u32>,
    pub(crate) ids: Vec<i64>,
    pub(crate) by_id: HashMap<i64, u32, IntHash>,
    pub(crate) order: BTreeMap<(Box<str>, i64), u32>,
    pub(crate) customer_id: Column,
    pub(crate) created_at: Column,
    pub(crate) updated_at: Column,
    pub(crate) fields: HashMap<FieldId, Column>,
    pub(crate) events: Events,
    pub(crate) subscribed: BTreeMap<Channel, Bits>,
}

fn default_threads() -> usize {
    std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .clamp(1, MAX_THREADS)
}

fn round_rows(n: usize) -> usize {
    n.div_ceil(BLOCK_ROWS).max(1) * BLOCK_ROWS
}

impl AppIndex {
    /// An empty index for `schema`, in UTC until [`AppIndex::set_timezone`].
    pub fn new(schema: &Schema) -> Self {
        Self::with_capacity(schema, 0)
    }

    /// An empty index with room for `customers` customers before any column grows.
    pub fn with_capacity(schema: &Schema, customers: usize) -> Self {
        let rows = round_rows(customers);
        let threads = default_threads();
        let mut index = Self {
            schema: Schema::default(),
            local: LocalDays::new(TimeZone::UTC),
            rows,
            high: 0,
            alive: Bits::with_rows(rows),
            live: 0,
            free: Vec::new(),
            ids: vec![0; rows],
            by_id: HashMap::with_capacity_and_hasher(customers, IntHash::default()),
            order: BTreeMap::new(),
            customer_id: Column::new(FieldType::String, rows),
            created_at: Column::new(FieldType::Datetime, rows),
            updated_at: Column::new(FieldType::Datetime, rows),
            fields: HashMap::new(),
            events: Events::default(),
            subscribed: BTreeMap::new(),
            threads,
            parallel_min_rows: DEFAULT_PARALLEL_MIN_ROWS,
            page_walk_rows: DEFAULT_PAGE_WALK_ROWS,
        };
        index.set_schema(schema);
        index
    }

    /// An index from its parts, with the default tuning.
    pub(crate) fn from_parts(p: Parts) -> Self {
        Self {
            schema: p.schema,
            local: p.local,
            rows: p.rows,
            high: p.high,
            alive: p.alive,
            live: p.live,
            free: p.free,
            ids: p.ids,
            by_id: p.by_id,
            order: p.order,
            customer_id: p.customer_id,
            created_at: p.created_at,
            updated_at: p.updated_at,
            fields: p.fields,
            events: p.events,
            subscribed: p.subscribed,
            threads: default_threads(),
            parallel_min_rows: DEFAULT_PARALLEL_MIN_ROWS,
            page_walk_rows: DEFAULT_PAGE_WALK_ROWS,
        }
    }

    /// Number of customers.
    pub fn len(&self) -> usize {
        self.live
    }

    pub fn is_empty(&self) -> bool {
        self.live == 0
    }

    /// The schema the columns follow.
    pub fn schema(&self) -> &Schema {
        &self.schema
    }

    /// The time zone whose calendar dates the datetime rows precompute.
    pub fn timezone(&self) -> &TimeZone {
        self.local.tz()
    }

    /// Threads a large scan may use (default: the machine's cores, at most 8), and the
    /// fewest rows worth a thread (default 524 288). Tuning and tests only.
    pub fn set_parallelism(&mut self, threads: usize, min_rows_per_thread: usize) {
        self.threads = threads.clamp(1, MAX_THREADS);
        self.parallel_min_rows = min_rows_per_thread.max(1);
    }

    /// Rows a page walk ([`AppIndex::page_matching_by_customer_id`]) tests one at a time
    /// before evaluating the whole filter (default 16 384). Tuning and tests only.
    pub fn set_page_walk(&mut self, rows: usize) {
        self.page_walk_rows = rows;
    }

    pub(crate) fn page_walk_rows(&self) -> usize {
        self.page_walk_rows
    }

    pub(crate) fn threads(&self) -> usize {
        self.threads
    }

    pub(crate) fn local(&self) -> &LocalDays {
        &self.local
    }

    pub(crate) fn customer_id_column(&self) -> &Column {
        &self.customer_id
    }

    pub(crate) fn created_at_column(&self) -> &Column {
        &self.created_at
    }

    pub(crate) fn updated_at_column(&self) -> &Column {
        &self.updated_at
    }

    pub(crate) fn field_column(&self, id: FieldId) -> Option<&Column> {
        self.fields.get(&id)
    }

    pub(crate) fn id_of(&self, slot: usize) -> Option<i64> {
        self.alive.get(slot).then(|| self.ids.get(slot).copied())?
    }

    pub(crate) fn slot_of(&self, id: i64) -> Option<usize> {
        self.by_id.get(&id).map(|&s| s as usize)
    }

    pub(crate) fn order(&self) -> &BTreeMap<(Box<str>, i64), u32> {
        &self.order
    }

    /// The customerId bytes of an occupied slot.
    pub(crate) fn customer_id_of(&self, slot: usize) -> &[u8] {
        match &self.customer_id.data {
            Data::Str { codes, dict } => codes.get(slot).map_or(&[], |c| dict.value(c)),
            _ => &[],
        }
    }

    /// Follows a new schema: a new field gets an empty column, a dropped field's column is
    /// freed, and a field whose type changed starts empty (the store only retypes fields
    /// that hold no value; values of the old type would read as absent anyway).
    pub fn set_schema(&mut self, schema: &Schema) {
        self.fields.retain(|id, column| {
            schema
                .by_id(*id)
                .is_some_and(|def| def.field_type == column.ty && !def.is_computed())
        });
        // A computed field has no column: its values are computed from the events.
        for def in schema.fields().iter().filter(|f| !f.is_computed()) {
            self.fields
                .entry(def.id)
                .or_insert_with(|| Column::new(def.field_type, self.rows));
        }
        self.schema = schema.clone();
    }

    /// Sets the time zone that `anniversary` reads datetimes in, recomputing the
    /// month-day codes of every datetime row. Filters evaluated in another zone stay
    /// exact (they compute local dates per row instead).
    pub fn set_timezone(&mut self, tz: TimeZone) {
        if &tz == self.local.tz() {
            return;
        }
        self.local = LocalDays::new(tz);
        let local = &self.local;
        let columns: Vec<&mut Column> = self
            .fields
            .values_mut()
            .chain([&mut self.created_at, &mut self.updated_at])
            .filter(|c| c.ty == FieldType::Datetime)
            .collect();
        run_jobs(columns, self.threads, |c| c.recompute_local(local));
    }

    fn grow_to(&mut self, needed: usize) {
        if needed <= self.rows {
            return;
        }
        let rows = round_rows(needed.max(self.rows + self.rows / 2));
        self.rows = rows;
        self.alive.grow(rows);
        self.ids.resize(rows, 0);
        for c in self.fields.values_mut().chain([
            &mut self.customer_id,
            &mut self.created_at,
            &mut self.updated_at,
        ]) {
            c.grow(rows);
        }
        for bits in self.subscribed.values_mut() {
            bits.grow(rows);
        }
    }

    fn allocate_slot(&mut self) -> usize {
        if let Some(slot) = self.free.pop() {
            return slot as usize;
        }
        let slot = self.high;
        self.grow_to(slot + 1);
        self.high += 1;
        slot
    }

    /// Inserts `customer`, or replaces the customer with the same `id`. Values of fields
    /// outside the schema, or of another type than their field's, are not kept (they read
    /// as absent, as in the reference evaluator).
    pub fn upsert(&mut self, customer: &Customer) {
        let cid = customer.customer_id.as_str();
        let slot = match self.by_id.get(&customer.id) {
            Some(&slot) => {
                let slot = slot as usize;
                if self.customer_id_of(slot) != cid.as_bytes() {
                    let old = String::from_utf8_lossy(self.customer_id_of(slot)).into();
                    self.order.remove(&(old, customer.id));
                    self.order.insert((cid.into(), customer.id), slot as u32);
                }
                slot
            }
            None => {
                let slot = self.allocate_slot();
                self.alive.assign(slot, true);
                self.live += 1;
                self.ids[slot] = customer.id;
                self.by_id.insert(customer.id, slot as u32);
                self.order.insert((cid.into(), customer.id), slot as u32);
                slot
            }
        };
        self.write_row(slot, customer);
    }

    fn write_row(&mut self, slot: usize, customer: &Customer) {
        let local = &self.local;
        self.customer_id
            .set_text(slot, customer.customer_id.as_str());
        self.customer_id.maybe_compact();
        self.created_at
            .set(slot, Some(&Value::Datetime(customer.created_at)), local);
        self.updated_at
            .set(slot, Some(&Value::Datetime(customer.updated_at)), local);
        for (id, column) in &mut self.fields {
            column.set(slot, customer.get(*id), local);
            column.maybe_compact();
        }
    }

    /// Upserts many customers. Customers the index does not hold yet are appended as one
    /// parallel bulk load (each column filled by one thread, the customerId order from a
    /// sorted run) when there are enough of them; the others are upserted one by one. A
    /// later customer with the same `id` wins.
    pub fn upsert_many(&mut self, customers: &[Customer]) {
        if customers.len() < BULK_MIN {
            for c in customers {
                self.upsert(c);
            }
            return;
        }
        let mut last: HashMap<i64, usize, IntHash> =
            HashMap::with_capacity_and_hasher(customers.len(), IntHash::default());
        for (i, c) in customers.iter().enumerate() {
            last.insert(c.id, i);
        }
        // Whole states: applying only the last of an id's states is applying them all.
        let mut fresh: Vec<&Customer> = Vec::with_capacity(customers.len());
        for (i, c) in customers.iter().enumerate() {
            if last.get(&c.id) != Some(&i) {
                continue;
            }
            if self.by_id.contains_key(&c.id) {
                self.upsert(c);
            } else {
                fresh.push(c);
            }
        }
        drop(last);
        if fresh.len() < BULK_MIN {
            for c in fresh {
                self.upsert(c);
            }
            return;
        }
        self.append_new(&fresh);
    }

    /// Appends customers the index does not hold (distinct ids) in slots from `high` on,
    /// filling the columns in parallel.
    fn append_new(&mut self, picked: &[&Customer]) {
        let base = self.high;
        let n = picked.len();
        self.grow_to(base + n);
        self.high = base + n;
        self.live += n;
        for (i, c) in picked.iter().enumerate() {
            self.ids[base + i] = c.id;
            self.alive.assign(base + i, true);
        }
        let local = &self.local;
        let picked = &picked;
        enum Job<'j> {
            /// Some field columns, filled in one pass over the customers' values.
            Fields(Vec<(FieldId, &'j mut Column)>),
            CustomerId(&'j mut Column),
            Times(&'j mut Column, &'j mut Column),
            Order(&'j mut BTreeMap<(Box<str>, i64), u32>),
            ById(&'j mut HashMap<i64, u32, IntHash>),
        }
        // Field columns in one group per thread, strings spread first (they cost most),
        // so that each thread reads every customer once.
        let groups = self.threads.max(1);
        let mut fields: Vec<(FieldId, &mut Column)> =
            self.fields.iter_mut().map(|(id, c)| (*id, c)).collect();
        fields.sort_by_key(|(id, c)| (c.ty != FieldType::String, *id));
        let mut grouped: Vec<Vec<(FieldId, &mut Column)>> =
            (0..groups).map(|_| Vec::new()).collect();
        for (i, f) in fields.into_iter().enumerate() {
            grouped[i % groups].push(f);
        }
        let mut jobs: Vec<Job<'_>> = vec![
            Job::Order(&mut self.order),
            Job::CustomerId(&mut self.customer_id),
        ];
        jobs.extend(
            grouped
                .into_iter()
                .filter(|g| !g.is_empty())
                .map(Job::Fields),
        );
        jobs.push(Job::ById(&mut self.by_id));
        jobs.push(Job::Times(&mut self.created_at, &mut self.updated_at));
        run_jobs(jobs, self.threads, |job| match job {
            Job::Fields(mut columns) => {
                let lookup: HashMap<FieldId, usize> = columns
                    .iter()
                    .enumerate()
                    .map(|(i, (id, _))| (*id, i))
                    .collect();
                for (i, c) in picked.iter().enumerate() {
                    for (id, value) in &c.fields {
                        if let Some(&column) = lookup.get(id) {
                            columns[column].1.set(base + i, Some(value), local);
                        }
                    }
                }
            }
            Job::CustomerId(column) => {
                for (i, c) in picked.iter().enumerate() {
                    column.set_text(base + i, c.customer_id.as_str());
                }
            }
            Job::Times(created, updated) => {
                for (i, c) in picked.iter().enumerate() {
                    created.set(base + i, Some(&Value::Datetime(c.created_at)), local);
                    updated.set(base + i, Some(&Value::Datetime(c.updated_at)), local);
                }
            }
            Job::Order(order) => {
                // Sort by a 16-byte big-endian prefix first (no pointer chasing), the full
                // key only on ties; into an empty map, build it from the sorted run, else
                // insert in key order (each insert next to the one before).
                let prefix = |s: &str| {
                    let mut b = [0u8; 16];
                    let n = s.len().min(16);
                    b[..n].copy_from_slice(&s.as_bytes()[..n]);
                    u128::from_be_bytes(b)
                };
                let mut sorted: Vec<(u128, u32)> = picked
                    .iter()
                    .enumerate()
                    .map(|(i, c)| (prefix(c.customer_id.as_str()), i as u32))
                    .collect();
                let full = |i: u32| {
                    let c = picked[i as usize];
                    (c.customer_id.as_str(), c.id)
                };
                sorted
                    .sort_unstable_by(|a, b| a.0.cmp(&b.0).then_with(|| full(a.1).cmp(&full(b.1))));
                let entries = sorted.into_iter().map(|(_, i)| {
                    let (cid, id) = full(i);
                    ((Box::from(cid), id), (base + i as usize) as u32)
                });
                if order.is_empty() {
                    *order = entries.collect();
                } else {
                    for (key, slot) in entries {
                        order.insert(key, slot);
                    }
                }
            }
            Job::ById(by_id) => {
                by_id.extend(
                    picked
                        .iter()
                        .enumerate()
                        .map(|(i, c)| (c.id, (base + i) as u32)),
                );
            }
        });
    }

    /// Removes the customer with this `id`; nothing happens if there is none.
    pub fn remove(&mut self, id: i64) {
        self.remove_slot(id, false);
    }

    /// Removes the customer with this `id` and leaves nothing of it in memory (so nothing
    /// in the next snapshot either): its values are zeroed rather than left stale in their
    /// slot, the strings no other customer holds (its customerId among them) are
    /// overwritten in their dictionaries, and so are its events' property values. Counts
    /// are the same as after [`AppIndex::remove`].
    pub fn erase(&mut self, id: i64) {
        self.remove_slot(id, true);
    }

    fn remove_slot(&mut self, id: i64, erase: bool) {
        let Some(slot) = self.by_id.remove(&id) else {
            return;
        };
        let slot = slot as usize;
        let cid: Box<str> = String::from_utf8_lossy(self.customer_id_of(slot)).into();
        self.order.remove(&(cid, id));
        let local = &self.local;
        for column in self.fields.values_mut().chain([
            &mut self.customer_id,
            &mut self.created_at,
            &mut self.updated_at,
        ]) {
            if erase {
                column.erase(slot, local);
            } else {
                column.set(slot, None, local);
            }
            column.maybe_compact();
        }
        if erase {
            self.events.scrub(slot);
        }
        for bits in self.subscribed.values_mut() {
            bits.assign(slot, false);
        }
        self.alive.assign(slot, false);
        self.live -= 1;
        // A slot still holding events is retired, not freed: a customer taking it before
        // the events are purged would inherit them.
        if !self.events.retire(slot) {
            self.free.push(slot as u32);
        }
        if self.events.wants_purge(self.high) {
            let freed = self.events.purge();
            self.free.extend(freed);
        }
    }

    /// Adds `events` to their customers (by [`Event::customer`], the customer's `id`).
    /// An event of a customer the index does not hold is ignored (the caller applies a
    /// customer before its events); so is an event whose `id` the index already holds for
    /// its type (applying one twice is harmless). Properties other than top-level numbers
    /// and strings are not kept (no filter compares them). A large batch fills the
    /// tables of different types in parallel.
    pub fn add_events(&mut self, events: &[Event]) {
        let by_id = &self.by_id;
        self.events
            .add(events, |id| by_id.get(&id).copied(), self.threads);
    }

    /// Takes in the tables an import prepared while it wrote its events (see
    /// [`crate::prepared`]): the index ends as [`AppIndex::add_events`] would have left it
    /// for the same events (those of a customer it does not hold left out). An index
    /// holding no events takes the tables over whole.
    pub fn add_prepared(&mut self, prepared: PreparedEvents) {
        let by_id = &self.by_id;
        prepared.give_to(&mut self.events, |id| by_id.get(&id).copied());
    }

    /// Records that the customer with this `id` is now subscribed (or not) to `channel`.
    /// An `id` the index does not hold is ignored (the caller applies a customer before
    /// their subscriptions); applying the same change twice is harmless, so a change log
    /// can be replayed. The bit goes when the customer is removed.
    pub fn set_subscribed(&mut self, id: i64, channel: &Channel, subscribed: bool) {
        let Some(slot) = self.slot_of(id) else {
            return;
        };
        if subscribed {
            let rows = self.rows;
            self.subscribed
                .entry(channel.clone())
                .or_insert_with(|| Bits::with_rows(rows))
                .assign(slot, true);
        } else if let Some(bits) = self.subscribed.get_mut(channel) {
            bits.assign(slot, false);
        }
    }

    /// Whether the customer with this `id` is subscribed to `channel` (false for an `id`
    /// the index does not hold).
    pub fn is_subscribed(&self, id: i64, channel: &Channel) -> bool {
        self.slot_of(id).is_some_and(|slot| {
            self.subscribed
                .get(channel)
                .is_some_and(|bits| bits.get(slot))
        })
    }

    /// How many of `members` are subscribed to `channel` (for charts): one AND and a
    /// popcount per word.
    pub fn subscribers(&self, members: &Members, channel: &Channel) -> u64 {
        let Some(bits) = self.subscribed.get(channel) else {
            return 0;
        };
        members
            .words()
            .iter()
            .zip(bits.words())
            .map(|(m, b)| u64::from((m & b).count_ones()))
            .sum()
    }

    /// Retention: removes the events of type `event` whose time is before `before_ms`;
    /// answers how many (of customers the index holds).
    pub fn remove_events_before(&mut self, event: &EventCode, before_ms: i64) -> u64 {
        self.events.remove_before(event, before_ms)
    }

    /// How many events the index holds (of the customers it holds).
    pub fn event_count(&self) -> u64 {
        self.events.count()
    }

    /// How many events the customer with this `id` has (0 if the index does not hold it).
    pub fn customer_events(&self, id: i64) -> usize {
        self.slot_of(id)
            .map_or(0, |slot| self.events.of_slot(slot) as usize)
    }

    /// How many customers hold a value for `field` (0 for a field outside the schema).
    pub fn field_value_count(&self, field: FieldId) -> u64 {
        self.fields.get(&field).map_or(0, |c| c.count)
    }

    /// Words that can hold an alive row.
    fn scan_words(&self) -> usize {
        self.high.div_ceil(WORD_BITS).min(self.alive.words().len())
    }

    fn min_words(&self) -> usize {
        self.parallel_min_rows.div_ceil(WORD_BITS)
    }

    /// How many customers match `filter` at `ctx`.
    pub fn count(&self, filter: &Filter, ctx: &EvalContext) -> u64 {
        let resolved = resolve(filter, ctx);
        self.count_plan(&self.compile(&resolved))
    }

    /// [`AppIndex::count`] if it is cheap — tens of microseconds: a filter that only
    /// tests presence (one bit per row) and no events, or an index of at most 65 536 rows
    /// whose event conditions read at most 65 536 events — so that a caller on an event
    /// loop can answer at once; `None` otherwise.
    pub fn count_if_cheap(&self, filter: &Filter, ctx: &EvalContext) -> Option<u64> {
        let resolved = resolve(filter, ctx);
        // Decided before compiling: compiling a text test scans the dictionary, and an
        // event condition scans its type's events.
        let root = resolved.root();
        let small = self.high <= CHEAP_ROWS && self.event_rows_read(root) <= CHEAP_ROWS;
        (small || tests_presence_only(root)).then(|| self.count_plan(&self.compile(&resolved)))
    }

    /// How many customers match a resolved tree, its calendar dates read in `tz`: for
    /// callers that build resolved trees themselves (event conditions the text and JSON
    /// forms do not spell yet, tests). [`AppIndex::count`] is this on
    /// [`unico_filter::resolve()`]'s tree.
    pub fn count_resolved(&self, root: &Resolved, tz: &TimeZone) -> u64 {
        self.count_plan(&self.compile_node(root, tz))
    }

    /// The customers matching a resolved tree (see [`AppIndex::count_resolved`]).
    pub fn members_resolved(&self, root: &Resolved, tz: &TimeZone) -> Members {
        self.members_of(&self.compile_node(root, tz))
    }

    fn count_plan(&self, plan: &Plan<'_>) -> u64 {
        if let Some(n) = plan.count_without_scan(self.live as u64) {
            return n;
        }
        let alive = self.alive.words();
        // Presence tests read one bit per row: a thread costs more than it saves.
        let words_per_thread = if plan.reads_presence_only() {
            self.min_words().saturating_mul(16)
        } else {
            self.min_words()
        };
        sum_ranges(
            self.scan_words(),
            self.threads,
            words_per_thread,
            |start, end| {
                let mut out = [0u64; BLOCK_WORDS];
                let mut total = 0u64;
                for b in (start..end).step_by(BLOCK_WORDS) {
                    let e = (b + BLOCK_WORDS).min(end);
                    let out = &mut out[..e - b];
                    eval(plan, b, &alive[b..e], out);
                    total += out.iter().map(|w| u64::from(w.count_ones())).sum::<u64>();
                }
                total
            },
        )
    }

    /// The customers matching `filter` at `ctx`. Valid until the next write to the index.
    pub fn members(&self, filter: &Filter, ctx: &EvalContext) -> Members {
        let resolved = resolve(filter, ctx);
        self.members_of(&self.compile(&resolved))
    }

    /// The rows a compiled plan selects.
    pub(crate) fn members_of(&self, plan: &Plan<'_>) -> Members {
        let alive = self.alive.words();
        let mut words = vec![0u64; self.scan_words()];
        split_words(&mut words, self.threads, self.min_words(), |first, part| {
            for (i, out) in part.chunks_mut(BLOCK_WORDS).enumerate() {
                let b = first + i * BLOCK_WORDS;
                eval(plan, b, &alive[b..b + out.len()], out);
            }
        });
        Members::new(Bits::from_words(words))
    }

    /// Every customer, as members.
    pub fn all(&self) -> Members {
        Members::new(self.alive.clone())
    }

    /// An honest estimate of the heap this index holds, in bytes.
    pub fn memory_bytes(&self) -> usize {
        let columns: usize = self
            .fields
            .values()
            .chain([&self.customer_id, &self.created_at, &self.updated_at])
            .map(Column::heap_bytes)
            .sum();
        // BTreeMap: the key and value in a node (nodes are 2/3 full on average after
        // random inserts) plus the boxed customerId, rounded to the allocator's 16 bytes.
        let order: usize = self
            .order
            .keys()
            .map(|(cid, _)| (24 + 4) * 3 / 2 + cid.len().div_ceil(16) * 16)
            .sum();
        columns
            + order
            + self.alive.heap_bytes()
            + self.ids.capacity() * 8
            + self.free.capacity() * 4
            + self.by_id.capacity() * (8 + 4 + 1)
            + self.fields.capacity() * (4 + std::mem::size_of::<Column>() + 1)
            + self.events.heap_bytes()
            + self
                .subscribed
                .iter()
                .map(|(c, bits)| {
                    // A BTreeMap entry (key and value, nodes 2/3 full) and the channel's text.
                    (std::mem::size_of::<Channel>() + std::mem::size_of::<Bits>()) * 3 / 2
                        + c.as_str().len().div_ceil(16) * 16
                        + bits.heap_bytes()
                })
                .sum::<usize>()
    }
}

/// Whether every test of a resolved filter is `exists` or `not_exists` (and it has no
/// event condition).
fn tests_presence_only(node: &Resolved) -> bool {
    use unico_filter::resolve::TestKind;
    match node {
        Resolved::And(children) | Resolved::Or(children) => {
            children.iter().all(tests_presence_only)
        }
        Resolved::Not(inner) => tests_presence_only(inner),
        Resolved::Test(test) => matches!(test.kind, TestKind::Exists | TestKind::NotExists),
        // One bit per row, like a presence test.
        Resolved::Subscribed(_) => true,
        Resolved::Event(_) => false,
    }
}

/// Runs `work` on every job over up to `threads` threads, each taking the next job.
pub(crate) fn run_jobs<J: Send>(jobs: Vec<J>, threads: usize, work: impl Fn(J) + Sync) {
    if threads <= 1 || jobs.len() <= 1 {
        jobs.into_iter().for_each(work);
        return;
    }
    let queue: Vec<Mutex<Option<J>>> = jobs.into_iter().map(|j| Mutex::new(Some(j))).collect();
    let next = AtomicUsize::new(0);
    let worker = || {
        loop {
            let i = next.fetch_add(1, Ordering::Relaxed);
            let Some(slot) = queue.get(i) else { break };
            // A slot is locked only to take its job, so a poisoned one still holds it (or
            // it was taken): take it either way, never skip a job.
            let job = slot
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .take();
            if let Some(job) = job {
                work(job);
            }
        }
    };
    std::thread::scope(|scope| {
        for _ in 1..threads.min(queue.len()) {
            scope.spawn(worker);
        }
        worker();
    });
}
