//! The write path of an import: customers in file order, inside the import's savepoint.
//!
//! An import is mostly new customers, so the hot path is built for them:
//! - **No copies of values.** The batches are owned: each item's changes are reduced in
//!   place to one per field (the last, which is what applying them in order leaves) and
//!   their values moved, not cloned, into the row that is encoded.
//! - **Many rows per statement.** Rows are queued and written by one `INSERT OR IGNORE` of
//!   [`ROWS_PER_INSERT`] rows: one statement step and one `AUTOINCREMENT` bookkeeping
//!   update instead of one each per row. (`OR IGNORE` rather than `ON CONFLICT DO NOTHING`:
//!   the same for the one constraint a bound row can break, the customerId's uniqueness,
//!   and a statement that cannot abort midway needs no statement journal: 10 % faster.) When it inserts
//!   them all (nearly always), that is all. Otherwise some customers of the queue existed
//!   (earlier in the file, or before the import) or a customerId is queued twice: the
//!   statement inserted the first row of each customerId that did not exist, and gave the
//!   new rows consecutive ids; every other queued row is then applied to its existing
//!   customer, in queue order, as an update.

use std::sync::Arc;

use rusqlite::{CachedStatement, Connection};
use unico_core::{AppId, CustomerId, FieldChange, FieldId, Value};

use super::rows::LiveFields;
use super::writes::{self, CountDeltas, CustomerWriter};
use crate::codec;
use crate::error::StoreError;
use crate::store::UpsertItem;

/// Rows written by one multi-row `INSERT`.
pub const ROWS_PER_INSERT: usize = 64;

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
    fn add(&mut self, field: FieldId) {
        match self.0.binary_search_by_key(&field, |(f, _)| *f) {
            Ok(i) => self.0[i].1 += 1,
            Err(i) => self.0.insert(i, (field, 1)),
        }
    }
}

/// What an import wrote.
pub struct Written {
    pub created: u64,
    pub updated: u64,
    pub deltas: CountDeltas,
}

/// A row waiting for the multi-row insert.
struct Queued {
    customer_id: CustomerId,
    /// Its changes, reduced (one per field, in field order).
    changes: Vec<FieldChange>,
    /// Where its encoded values end in [`ImportWriter::queued_data`].
    end: usize,
}

/// Writes one import's customers; see the module docs.
pub struct ImportWriter<'c> {
    conn: &'c Connection,
    app: AppId,
    now: i64,
    live: Arc<LiveFields>,
    single: CustomerWriter<'c>,
    insert: CachedStatement<'c>,
    queued: Vec<Queued>,
    /// The queued rows' encoded values, back to back.
    queued_data: Vec<u8>,
    /// Scratch: the values being encoded, and their encoding.
    fields: Vec<(FieldId, Value)>,
    buf: Vec<u8>,
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
    pub fn new(
        conn: &'c Connection,
        app: AppId,
        live: Arc<LiveFields>,
        now: i64,
    ) -> Result<Self, StoreError> {
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
            live,
            single: CustomerWriter::new(conn)?,
            insert,
            queued: Vec::with_capacity(ROWS_PER_INSERT),
            queued_data: Vec::with_capacity(ROWS_PER_INSERT * 256),
            fields: Vec::with_capacity(32),
            buf: Vec::with_capacity(512),
            presence: Presence::default(),
            deltas: CountDeltas::default(),
            last_id_before,
            last_id: last_id_before,
            updated_ids: IdSet::default(),
            created: 0,
            updated: 0,
        })
    }

    /// Writes one item: creates the customer or applies its changes to the existing one.
    pub fn write(&mut self, item: UpsertItem) -> Result<(), StoreError> {
        let UpsertItem {
            customer_id,
            mut changes,
        } = item;
        writes::check_changes(&self.live, &changes)?;
        reduce(&mut changes);
        // Encode the values as a new customer's, moving them out and back.
        self.fields.clear();
        for change in &mut changes {
            if let Some(value) = change.value.take() {
                self.fields.push((change.field, value));
            }
        }
        codec::encode_into(&self.fields, &mut self.buf);
        self.queued_data.extend_from_slice(&self.buf);
        let mut values = self.fields.drain(..).peekable();
        for change in &mut changes {
            if let Some((_, value)) = values.next_if(|(field, _)| *field == change.field) {
                change.value = Some(value);
            }
        }
        drop(values);
        self.queued.push(Queued {
            customer_id,
            changes,
            end: self.queued_data.len(),
        });
        if self.queued.len() == ROWS_PER_INSERT {
            self.write_queued()?;
        }
        Ok(())
    }

    /// Writes what is queued and answers what the import wrote.
    pub fn finish(mut self) -> Result<Written, StoreError> {
        self.write_queued()?;
        let mut deltas = std::mem::take(&mut self.deltas);
        for &(field, n) in &self.presence.0 {
            deltas.add(field, n);
        }
        Ok(Written {
            created: self.created,
            updated: self.updated,
            deltas,
        })
    }

    /// Inserts the queued rows; then, if some were not inserted, applies those as updates.
    fn write_queued(&mut self) -> Result<(), StoreError> {
        let queued = std::mem::take(&mut self.queued);
        let outcome = if queued.len() == ROWS_PER_INSERT {
            self.insert_all(&queued)
        } else {
            self.write_one_by_one(&queued)
        };
        self.queued = queued;
        self.queued.clear();
        self.queued_data.clear();
        outcome
    }

    /// The multi-row insert of a full queue, then the rows it did not insert.
    fn insert_all(&mut self, queued: &[Queued]) -> Result<(), StoreError> {
        self.insert.raw_bind_parameter(1, self.app.0)?;
        self.insert.raw_bind_parameter(2, self.now)?;
        let mut start = 0;
        for (i, row) in queued.iter().enumerate() {
            self.insert
                .raw_bind_parameter(3 + 2 * i, row.customer_id.as_str())?;
            self.insert
                .raw_bind_parameter(4 + 2 * i, &self.queued_data[start..row.end])?;
            start = row.end;
        }
        let last_id = self.last_id;
        let inserted = self.insert.raw_execute()?;
        if inserted > 0 {
            self.last_id = self.conn.last_insert_rowid();
        }
        if inserted == queued.len() {
            for row in queued {
                self.count_created(&row.changes);
            }
            Ok(())
        } else {
            self.write_conflicts(queued, inserted, last_id)
        }
    }

    /// A queue shorter than a multi-row insert (the last one): each row on its own.
    fn write_one_by_one(&mut self, queued: &[Queued]) -> Result<(), StoreError> {
        let mut start = 0;
        for row in queued {
            let data = &self.queued_data[start..row.end];
            start = row.end;
            if let Some(id) =
                self.single
                    .try_insert(self.conn, self.app, &row.customer_id, self.now, data)?
            {
                self.last_id = id;
                self.count_created(&row.changes);
            } else {
                self.update(row)?;
            }
        }
        Ok(())
    }

    /// Applies a row to its existing customer.
    fn update(&mut self, row: &Queued) -> Result<(), StoreError> {
        let customer = self.single.update_existing(
            self.app,
            &row.customer_id,
            &row.changes,
            self.now,
            &mut self.deltas,
        )?;
        if customer.id <= self.last_id_before && self.updated_ids.insert(customer.id) {
            self.updated += 1;
        }
        Ok(())
    }

    /// After an insert of the queue that wrote only `inserted` rows: tells the rows it
    /// inserted (the first of each customerId with an id above `last_id`, the largest before
    /// the insert) from the others, and applies the others, in order, as updates. (Ids of
    /// one insert increase but may skip: a row not inserted may have used one up.)
    fn write_conflicts(
        &mut self,
        queued: &[Queued],
        inserted: usize,
        last_id: i64,
    ) -> Result<(), StoreError> {
        let mut created_here: Vec<i64> = Vec::with_capacity(inserted);
        for row in queued {
            let id = if inserted == 0 {
                None
            } else {
                self.single.find_id(self.app, &row.customer_id)?
            };
            match id {
                Some(id) if id > last_id && !created_here.contains(&id) => {
                    created_here.push(id);
                    self.count_created(&row.changes);
                }
                _ => self.update(row)?,
            }
        }
        Ok(())
    }

    /// Counts a new customer's values.
    fn count_created(&mut self, changes: &[FieldChange]) {
        self.created += 1;
        for change in changes {
            if change.value.is_some() {
                self.presence.add(change.field);
            }
        }
    }
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
        for (round, pool) in [(0, 5000), (1, 300), (2, 40)] {
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
                                    Some(Value::String(format!("s{}", next(7))))
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
