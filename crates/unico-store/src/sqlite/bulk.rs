//! The write path of an import: customers in file order, inside the import's savepoint.
//!
//! Two threads share the work, so the writer thread (which every other write waits for)
//! does little but SQLite's:
//! - **The preparing thread** ([`crate::prepare`], shared with the other backends) checks,
//!   reduces and encodes the items into [`Encoded`] batches.
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

use rusqlite::{CachedStatement, Connection};
use unico_core::{AppId, CustomerId, FieldChange};

use super::writes::{CountDeltas, CustomerWriter};
use crate::codec;
use crate::error::StoreError;
use crate::prepare::{Encoded, IdSet, Presence};

/// Rows written by one multi-row `INSERT`.
pub const ROWS_PER_INSERT: usize = 64;

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
    /// Their values before the import, by id (listed under the same bound).
    pub previous: std::collections::HashMap<i64, crate::writing::FieldValues>,
    /// Every customer the import created or updated, as ascending id ranges.
    pub touched: Vec<(i64, i64)>,
}

/// Existing customers whose values before an import are kept for its log entries; past
/// this many the import is logged as one bulk change anyway.
const PREVIOUS_KEPT: usize = crate::changes::INCREMENTAL_IMPORT_CUSTOMERS as usize;

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
    /// The values before the import of the first [`PREVIOUS_KEPT`] customers it updated.
    previous: std::collections::HashMap<i64, crate::writing::FieldValues>,
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
            previous: std::collections::HashMap::new(),
            created: 0,
            updated: 0,
        })
    }

    /// Writes a batch of prepared rows, in order: creates each customer or applies its
    /// changes to the existing one.
    pub fn write(&mut self, rows: &Encoded) -> Result<(), StoreError> {
        for &(field, n) in rows.presence.counts() {
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
        for &(field, n) in self.presence.counts() {
            deltas.add(field, n);
        }
        let created = if self.last_id > self.last_id_before {
            vec![(self.last_id_before + 1, self.last_id)]
        } else {
            Vec::new()
        };
        Written {
            touched: self.updated_ids.ranges_with(&created),
            created: self.created,
            updated: self.updated,
            deltas,
            last_id_before: self.last_id_before,
            updated_ids: if self.updated <= listed_updates_up_to {
                self.updated_ids.ids()
            } else {
                Vec::new()
            },
            previous: if self.updated <= listed_updates_up_to {
                std::mem::take(&mut self.previous)
            } else {
                std::collections::HashMap::new()
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
        let (customer, before) = self.single.update_existing(
            self.app,
            customer_id,
            &changes,
            self.now,
            &mut self.deltas,
        )?;
        if customer.id <= self.last_id_before && self.updated_ids.insert(customer.id) {
            self.updated += 1;
            // The first update of it in this import: what it held before the import.
            if self.previous.len() < PREVIOUS_KEPT {
                self.previous.insert(customer.id, before);
            }
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
    use std::sync::Arc;

    use unico_core::Value;

    use super::*;

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
                        subscriptions: Vec::new(),
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
                        subscriptions: Vec::new(),
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
