//! The write path of an import: customers in file order, inside the import's savepoint.
//!
//! Two threads share the work, so the writer thread (which every other write waits for)
//! does little but SQLite's:
//! - **The preparing thread** ([`start`]) pulls the import's batches (so the items are
//!   allocated and freed on one thread, which glibc's allocator serves from its per-thread
//!   cache), checks each item against the live fields, reduces its changes to one per
//!   field (the last, which is what applying them in order leaves), moves the values into
//!   the encoded row and hands rows over in [`Encoded`] batches: customerIds and encoded
//!   values back to back in reused buffers.
//! - **The writer** ([`ImportWriter`]) writes each run of [`ROWS_PER_INSERT`] rows with one
//!   multi-row `INSERT OR IGNORE`: one statement step and one `AUTOINCREMENT` bookkeeping
//!   update instead of one each per row. (`OR IGNORE` rather than `ON CONFLICT DO NOTHING`:
//!   the same for the one constraint a bound row can break, the customerId's uniqueness,
//!   and a statement that cannot abort midway needs no statement journal: 10 % faster.)
//!   When it inserts them all (nearly always), that is all. Otherwise some customers of the
//!   run existed (earlier in the file, or before the import) or a customerId is in the run
//!   twice: the statement inserted the first row of each customerId that did not exist,
//!   giving the new rows ids above every earlier one; every other row of the run is then
//!   decoded and applied to its existing customer, in file order, as an update.

use std::sync::Arc;
use std::sync::mpsc;

use rusqlite::{CachedStatement, Connection};
use unico_core::{AppId, CustomerId, FieldChange, FieldId, Value};

use super::rows::LiveFields;
use super::writes::{self, CountDeltas, CustomerWriter};
use crate::codec;
use crate::error::StoreError;
use crate::store::{ImportBatch, UpsertItem};

/// Rows written by one multi-row `INSERT`.
pub const ROWS_PER_INSERT: usize = 64;
/// Rows per [`Encoded`] batch, at most.
const ROWS_PER_BATCH: usize = 16 * ROWS_PER_INSERT;
/// Encoded bytes per [`Encoded`] batch past which it is handed over before
/// [`ROWS_PER_BATCH`] rows (wide rows of long strings), so memory stays bounded.
const BATCH_BYTES: usize = 4 << 20;
/// [`Encoded`] batches prepared ahead of the writer (and buffers in use).
const BATCHES_IN_FLIGHT: usize = 4;

/// A set of customer ids below a bound, one bit each.
#[derive(Default)]
struct IdSet(Vec<u64>);

impl IdSet {
    /// Adds `id` (≥ 0); answers whether it was new.
    fn insert(&mut self, id: i64) -> bool {
        let id = id.max(0) as usize;
        let (word, mask) = (id / 64, 1u64 << (id % 64));
        if word >= self.0.len() {
            self.0.resize(word + 1, 0);
        }
        let new = self.0[word] & mask == 0;
        self.0[word] |= mask;
        new
    }

    /// The ids in the set, ascending.
    fn ids(&self) -> Vec<i64> {
        let mut out = Vec::new();
        for (w, &word) in self.0.iter().enumerate() {
            let mut rest = word;
            while rest != 0 {
                out.push((w * 64) as i64 + i64::from(rest.trailing_zeros()));
                rest &= rest - 1;
            }
        }
        out
    }
}

/// Reduces `changes` to what applying them in order leaves: the last change of each
/// field, in field order.
fn reduce(changes: &mut Vec<FieldChange>) {
    if changes.windows(2).all(|w| w[0].field < w[1].field) {
        return;
    }
    changes.sort_by_key(|c| c.field); // stable: a field's changes keep their order
    let mut kept = 0;
    for i in 0..changes.len() {
        if changes
            .get(i + 1)
            .is_some_and(|next| next.field == changes[i].field)
        {
            continue;
        }
        changes.swap(kept, i);
        kept += 1;
    }
    changes.truncate(kept);
}

/// How many values each field gained, kept sorted by field.
#[derive(Default)]
struct Presence(Vec<(FieldId, i64)>);

impl Presence {
    fn add(&mut self, field: FieldId, n: i64) {
        match self.0.binary_search_by_key(&field, |(f, _)| *f) {
            Ok(i) => self.0[i].1 += n,
            Err(i) => self.0.insert(i, (field, n)),
        }
    }
}

/// Rows prepared for the writer, in file order: each customer's values encoded as a new
/// customer's, and the fields its changes remove (which matter only if it exists).
#[derive(Default)]
pub struct Encoded {
    /// customerIds, back to back.
    ids: String,
    /// Encoded values, back to back.
    data: Vec<u8>,
    removed: Vec<FieldId>,
    /// Per row: where its customerId, its encoded values and its removed fields end.
    rows: Vec<(usize, usize, usize)>,
    /// The values of all rows, counted as if every row created its customer.
    presence: Presence,
}

impl Encoded {
    pub fn len(&self) -> usize {
        self.rows.len()
    }

    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    /// Row `i`: its customerId, encoded values and removed fields.
    fn row(&self, i: usize) -> (&str, &[u8], &[FieldId]) {
        let (id_start, data_start, removed_start) = match i {
            0 => (0, 0, 0),
            _ => self.rows[i - 1],
        };
        let (id_end, data_end, removed_end) = self.rows[i];
        (
            &self.ids[id_start..id_end],
            &self.data[data_start..data_end],
            &self.removed[removed_start..removed_end],
        )
    }

    /// Empties the buffers for reuse; one that a very large row grew is given back.
    fn clear(&mut self) {
        self.ids.clear();
        self.data.clear();
        self.removed.clear();
        self.rows.clear();
        self.presence.0.clear();
        if self.data.capacity() > 2 * BATCH_BYTES {
            self.data.shrink_to(BATCH_BYTES);
        }
    }
}

/// What the preparing thread hands the writer.
pub enum Prepared {
    Rows(Encoded),
    /// The feed's verdict: keep the import or not.
    End {
        keep: bool,
    },
    /// An item was refused (a field deleted or retyped meanwhile): the import fails.
    Failed(StoreError),
}

/// The writer's end of the preparing thread: prepared batches in, emptied buffers back.
pub struct PreparedFeed {
    rx: mpsc::Receiver<Prepared>,
    back: mpsc::SyncSender<Encoded>,
}

impl PreparedFeed {
    /// The next prepared batch; `None` if the preparing thread stopped without a verdict.
    pub fn next(&self) -> Option<Prepared> {
        self.rx.recv().ok()
    }

    /// Hands an emptied buffer back for reuse.
    pub fn recycle(&self, mut rows: Encoded) {
        rows.clear();
        let _ = self.back.try_send(rows);
    }
}

/// Starts the preparing thread over `batches`. It stops at the feed's end, at a refused
/// item, or as soon as the writer drops its end.
pub fn start(
    batches: Box<dyn Iterator<Item = ImportBatch> + Send>,
    live: Arc<LiveFields>,
) -> Result<PreparedFeed, StoreError> {
    let (tx, rx) = mpsc::sync_channel(BATCHES_IN_FLIGHT);
    let (back, empty) = mpsc::sync_channel(BATCHES_IN_FLIGHT);
    for _ in 0..BATCHES_IN_FLIGHT {
        let _ = back.try_send(Encoded::default());
    }
    std::thread::Builder::new()
        .name("unico-import-prepare".into())
        .spawn(move || prepare(batches, &live, &tx, &empty))
        .map_err(|e| StoreError::Internal(format!("cannot start an import thread: {e}")))?;
    Ok(PreparedFeed { rx, back })
}

/// The preparing thread's work; see the module docs.
fn prepare(
    batches: Box<dyn Iterator<Item = ImportBatch> + Send>,
    live: &LiveFields,
    tx: &mpsc::SyncSender<Prepared>,
    empty: &mpsc::Receiver<Encoded>,
) {
    let Ok(mut rows) = empty.recv() else {
        return;
    };
    let mut fields: Vec<(FieldId, Value)> = Vec::with_capacity(32);
    let mut buf = Vec::with_capacity(512);
    for batch in batches {
        let items = match batch {
            ImportBatch::Items(items) => items,
            ImportBatch::End { keep } => {
                if keep && !rows.is_empty() && tx.send(Prepared::Rows(rows)).is_err() {
                    return;
                }
                let _ = tx.send(Prepared::End { keep });
                return;
            }
        };
        for item in items {
            let UpsertItem {
                customer_id,
                mut changes,
            } = item;
            if let Err(e) = writes::check_changes(live, &changes) {
                let _ = tx.send(Prepared::Failed(e));
                return;
            }
            reduce(&mut changes);
            fields.clear();
            for change in changes.drain(..) {
                match change.value {
                    Some(value) => {
                        rows.presence.add(change.field, 1);
                        fields.push((change.field, value));
                    }
                    None => rows.removed.push(change.field),
                }
            }
            codec::encode_into(&fields, &mut buf);
            rows.data.extend_from_slice(&buf);
            rows.ids.push_str(customer_id.as_str());
            rows.rows
                .push((rows.ids.len(), rows.data.len(), rows.removed.len()));
            if rows.len() == ROWS_PER_BATCH || rows.ids.len() + rows.data.len() >= BATCH_BYTES {
                if tx.send(Prepared::Rows(rows)).is_err() {
                    return;
                }
                rows = match empty.recv() {
                    Ok(rows) => rows,
                    Err(_) => return,
                };
            }
        }
    }
    // The feed stopped without a verdict (its producer died): send none, keep nothing.
}

/// What an import wrote.
pub struct Written {
    pub created: u64,
    pub updated: u64,
    pub deltas: CountDeltas,
    /// Customers this import created have ids above this one.
    pub last_id_before: i64,
    /// The existing customers this import updated (only when at most
    /// `listed_updates_up_to` of them were: the caller's bound).
    pub updated_ids: Vec<i64>,
}

/// Writes one import's prepared rows; see the module docs.
pub struct ImportWriter<'c> {
    conn: &'c Connection,
    app: AppId,
    now: i64,
    single: CustomerWriter<'c>,
    insert: CachedStatement<'c>,
    presence: Presence,
    deltas: CountDeltas,
    /// Ids only grow, so a customer with a larger id than this was created by this import:
    /// a later row for it is not an update of an existing customer.
    last_id_before: i64,
    /// The largest customer id so far: rows an insert adds get larger ones.
    last_id: i64,
    updated_ids: IdSet,
    created: u64,
    updated: u64,
}

impl<'c> ImportWriter<'c> {
    pub fn new(conn: &'c Connection, app: AppId, now: i64) -> Result<Self, StoreError> {
        let last_id_before: i64 =
            conn.query_row("SELECT coalesce(max(id), 0) FROM customers", [], |r| {
                r.get(0)
            })?;
        let rows: Vec<String> = (0..ROWS_PER_INSERT)
            .map(|i| format!("(?1, ?{}, ?2, ?2, ?{})", 3 + 2 * i, 4 + 2 * i))
            .collect();
        let insert = conn.prepare_cached(&format!(
            "INSERT OR IGNORE INTO customers (app_id, customer_id, created_at, updated_at, data) VALUES {}",
            rows.join(", ")
        ))?;
        Ok(Self {
            conn,
            app,
            now,
            single: CustomerWriter::new(conn)?,
            insert,
            presence: Presence::default(),
            deltas: CountDeltas::default(),
            last_id_before,
            last_id: last_id_before,
            updated_ids: IdSet::default(),
            created: 0,
            updated: 0,
        })
    }

    /// Writes a batch of prepared rows, in order: creates each customer or applies its
    /// changes to the existing one.
    pub fn write(&mut self, rows: &Encoded) -> Result<(), StoreError> {
        for &(field, n) in &rows.presence.0 {
            self.presence.add(field, n);
        }
        let mut from = 0;
        while from + ROWS_PER_INSERT <= rows.len() {
            self.insert_run(rows, from)?;
            from += ROWS_PER_INSERT;
        }
        for i in from..rows.len() {
            self.insert_one(rows, i)?;
        }
        Ok(())
    }

    /// Answers what the import wrote, listing the updated customers when there are at most
    /// `listed_updates_up_to` of them.
    pub fn finish(mut self, listed_updates_up_to: u64) -> Written {
        let mut deltas = std::mem::take(&mut self.deltas);
        for &(field, n) in &self.presence.0 {
            deltas.add(field, n);
        }
        Written {
            created: self.created,
            updated: self.updated,
            deltas,
            last_id_before: self.last_id_before,
            updated_ids: if self.updated <= listed_updates_up_to {
                self.updated_ids.ids()
            } else {
                Vec::new()
            },
        }
    }

    /// The multi-row insert of rows `from..from + ROWS_PER_INSERT`, then the rows it did
    /// not insert.
    fn insert_run(&mut self, rows: &Encoded, from: usize) -> Result<(), StoreError> {
        self.insert.raw_bind_parameter(1, self.app.0)?;
        self.insert.raw_bind_parameter(2, self.now)?;
        for i in 0..ROWS_PER_INSERT {
            let (id, data, _) = rows.row(from + i);
            self.insert.raw_bind_parameter(3 + 2 * i, id)?;
            self.insert.raw_bind_parameter(4 + 2 * i, data)?;
        }
        let last_id = self.last_id;
        let inserted = self.insert.raw_execute()?;
        if inserted > 0 {
            self.last_id = self.conn.last_insert_rowid();
        }
        self.created += inserted as u64;
        if inserted < ROWS_PER_INSERT {
            self.write_conflicts(rows, from, inserted, last_id)?;
        }
        Ok(())
    }

    /// After a multi-row insert from row `from` that wrote only `inserted` rows: tells the
    /// rows it inserted (the first of each customerId with an id above `last_id`, the
    /// largest before the insert) from the others, and applies the others, in order, as
    /// updates. (Ids of one insert increase but may skip: a row not inserted may have used
    /// one up.)
    fn write_conflicts(
        &mut self,
        rows: &Encoded,
        from: usize,
        inserted: usize,
        last_id: i64,
    ) -> Result<(), StoreError> {
        let mut created_here: Vec<i64> = Vec::with_capacity(inserted);
        for i in from..from + ROWS_PER_INSERT {
            let customer_id = customer_id(rows.row(i).0)?;
            let id = if inserted == 0 {
                None
            } else {
                self.single.find_id(self.app, &customer_id)?
            };
            match id {
                Some(id) if id > last_id && !created_here.contains(&id) => created_here.push(id),
                _ => self.update(rows, i, &customer_id)?,
            }
        }
        Ok(())
    }

    /// Row `i` on its own.
    fn insert_one(&mut self, rows: &Encoded, i: usize) -> Result<(), StoreError> {
        let (id, data, _) = rows.row(i);
        let customer_id = customer_id(id)?;
        match self
            .single
            .try_insert(self.conn, self.app, &customer_id, self.now, data)?
        {
            Some(id) => {
                self.last_id = id;
                self.created += 1;
                Ok(())
            }
            None => self.update(rows, i, &customer_id),
        }
    }

    /// Applies row `i` to its existing customer; its values were counted as a new
    /// customer's, so that count is taken back.
    fn update(
        &mut self,
        rows: &Encoded,
        i: usize,
        customer_id: &CustomerId,
    ) -> Result<(), StoreError> {
        let (_, data, removed) = rows.row(i);
        let mut changes: Vec<FieldChange> = codec::decode(data)?
            .into_iter()
            .map(|(field, value)| {
                self.presence.add(field, -1);
                FieldChange {
                    field,
                    value: Some(value),
                }
            })
            .collect();
        changes.extend(
            removed
                .iter()
                .map(|&field| FieldChange { field, value: None }),
        );
        let customer = self.single.update_existing(
            self.app,
            customer_id,
            &changes,
            self.now,
            &mut self.deltas,
        )?;
        if customer.id <= self.last_id_before && self.updated_ids.insert(customer.id) {
            self.updated += 1;
        }
        Ok(())
    }
}

/// A customerId the preparing thread copied from a valid one.
fn customer_id(text: &str) -> Result<CustomerId, StoreError> {
    CustomerId::parse(text)
        .map_err(|e| StoreError::Internal(format!("a prepared customerId is invalid: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn change(field: u32, value: Option<f64>) -> FieldChange {
        FieldChange {
            field: FieldId(field),
            value: value.map(Value::Number),
        }
    }

    #[test]
    fn reduce_keeps_the_last_change_of_each_field_in_field_order() {
        let mut changes = vec![
            change(3, Some(1.0)),
            change(1, Some(2.0)),
            change(3, None),
            change(2, Some(3.0)),
            change(1, Some(4.0)),
            change(3, Some(5.0)),
        ];
        reduce(&mut changes);
        assert_eq!(
            changes,
            vec![
                change(1, Some(4.0)),
                change(2, Some(3.0)),
                change(3, Some(5.0))
            ]
        );
        let mut removal_last = vec![change(2, Some(1.0)), change(2, None)];
        reduce(&mut removal_last);
        assert_eq!(removal_last, vec![change(2, None)]);
        let mut sorted = vec![change(1, Some(1.0)), change(2, None)];
        reduce(&mut sorted);
        assert_eq!(sorted, vec![change(1, Some(1.0)), change(2, None)]);
    }

    #[test]
    fn id_set_answers_whether_an_id_is_new() {
        let mut set = IdSet::default();
        assert!(set.insert(5));
        assert!(set.insert(700));
        assert!(!set.insert(5));
        assert!(set.insert(0));
        assert!(!set.insert(700));
    }

    /// Imports of items that repeat customerIds (within one multi-row insert and across
    /// them), touch customers that existed before, and remove values, leave exactly what
    /// writing the items one by one leaves, with new customers in file order.
    #[test]
    fn an_import_writes_what_one_by_one_upserts_write() {
        use std::sync::atomic::AtomicU64;

        use unico_core::{AppName, FieldName, FieldType, TimeZoneName};

        use crate::store::{ImportBatch, Store};
        use crate::{SqliteStore, UpsertItem};

        let mut state = 0x2545_f491_4f6c_dd1d_u64;
        let mut next = move |n: u64| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state % n
        };
        // Round 3 has long strings, so batches end by size at any row count.
        for (round, pool, pad) in [(0, 5000, 0), (1, 300, 0), (2, 40, 0), (3, 2000, 4000)] {
            let dirs = [tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap()];
            let stores = dirs
                .each_ref()
                .map(|d| SqliteStore::open(d.path()).unwrap());
            let mut fields = Vec::new();
            for store in &stores {
                let app = store
                    .create_app(&AppName::parse("A").unwrap(), &TimeZoneName::utc(), 1)
                    .unwrap()
                    .id;
                fields = [FieldType::Number, FieldType::String, FieldType::Number]
                    .iter()
                    .enumerate()
                    .map(|(i, ty)| {
                        store
                            .create_field(app, &FieldName::parse(&format!("f{i}")).unwrap(), *ty, 1)
                            .unwrap()
                    })
                    .collect();
                // Customers that exist before the import, some with values.
                let before: Vec<UpsertItem> = (0..pool / 4)
                    .map(|i| UpsertItem {
                        customer_id: CustomerId::parse(&format!("c{}", i * 3)).unwrap(),
                        changes: vec![FieldChange {
                            field: fields[0].id,
                            value: Some(Value::Number(i as f64)),
                        }],
                    })
                    .collect();
                store.upsert_batch(app, before, 1).unwrap();
            }
            let app = AppId(1);
            let items: Vec<UpsertItem> = (0..3000)
                .map(|_| {
                    let changes = (0..next(5))
                        .map(|_| {
                            let f = &fields[next(3) as usize];
                            let value = match (next(4), f.field_type) {
                                (0, _) => None,
                                (_, FieldType::String) => {
                                    Some(Value::String(format!("s{}{}", next(7), "x".repeat(pad))))
                                }
                                _ => Some(Value::Number(next(7) as f64)),
                            };
                            FieldChange { field: f.id, value }
                        })
                        .collect();
                    UpsertItem {
                        customer_id: CustomerId::parse(&format!("c{}", next(pool))).unwrap(),
                        changes,
                    }
                })
                .collect();
            let batches: Vec<ImportBatch> = items
                .chunks(700)
                .map(|chunk| ImportBatch::Items(chunk.to_vec()))
                .chain([ImportBatch::End { keep: true }])
                .collect();
            let counts = stores[0]
                .run_import(
                    app,
                    Box::new(batches.into_iter()),
                    5,
                    Arc::new(AtomicU64::new(0)),
                    None,
                )
                .unwrap();
            let outcomes = stores[1].upsert_batch(app, items.clone(), 5).unwrap();
            let created = outcomes
                .iter()
                .filter(|o| o.as_ref().unwrap().created)
                .count();
            let existing: std::collections::HashSet<i64> = outcomes
                .iter()
                .map(|o| o.as_ref().unwrap())
                .filter(|o| !o.created && o.customer.id <= (pool / 4) as i64)
                .map(|o| o.customer.id)
                .collect();
            assert_eq!(
                (counts.created, counts.updated),
                (created as u64, existing.len() as u64),
                "round {round}"
            );
            let contents = |store: &SqliteStore| {
                let mut all = Vec::new();
                store
                    .scan_customers(app, &mut |c| {
                        all.push((
                            c.id,
                            c.customer_id.as_str().to_owned(),
                            c.created_at,
                            c.fields,
                        ));
                        true
                    })
                    .unwrap();
                (all, store.field_stats(app).unwrap())
            };
            assert_eq!(contents(&stores[0]), contents(&stores[1]), "round {round}");
        }
    }
}
