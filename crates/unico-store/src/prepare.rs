//! The first half of an import, the same for every backend: a thread of its own pulls the
//! import's batches (so the items are allocated and freed on one thread, which glibc's
//! allocator serves from its per-thread cache), checks each item against the live fields,
//! reduces its changes to one per field (the last, which is what applying them in order
//! leaves), moves the values into the encoded row and hands rows over in [`Encoded`]
//! batches: customerIds and encoded values back to back in reused buffers. The backend's
//! writer then writes them in file order; sharing this half keeps the per-row semantics of
//! imports identical across backends.

use std::sync::Arc;
use std::sync::mpsc;

use unico_core::{FieldChange, FieldId, Value};

use crate::codec;
use crate::error::StoreError;
use crate::live::{LiveFields, check_changes};
use crate::store::{ImportBatch, UpsertItem};

/// Rows per [`Encoded`] batch, at most.
pub(crate) const ROWS_PER_BATCH: usize = 1024;
/// Encoded bytes per [`Encoded`] batch past which it is handed over before
/// [`ROWS_PER_BATCH`] rows (wide rows of long strings), so memory stays bounded.
const BATCH_BYTES: usize = 4 << 20;
/// [`Encoded`] batches prepared ahead of the writer (and buffers in use).
const BATCHES_IN_FLIGHT: usize = 4;

/// A set of customer ids below a bound, one bit each.
#[derive(Default)]
pub(crate) struct IdSet(Vec<u64>);

impl IdSet {
    /// Adds `id` (≥ 0); answers whether it was new.
    pub(crate) fn insert(&mut self, id: i64) -> bool {
        let id = id.max(0) as usize;
        let (word, mask) = (id / 64, 1u64 << (id % 64));
        if word >= self.0.len() {
            self.0.resize(word + 1, 0);
        }
        let new = self.0[word] & mask == 0;
        self.0[word] |= mask;
        new
    }

    pub(crate) fn contains(&self, id: i64) -> bool {
        let Ok(id) = usize::try_from(id) else {
            return false;
        };
        self.0
            .get(id / 64)
            .is_some_and(|word| word & (1u64 << (id % 64)) != 0)
    }

    /// The ids in the set, ascending.
    pub(crate) fn ids(&self) -> Vec<i64> {
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

    /// The ids in the set as ascending, disjoint, inclusive ranges, merged with
    /// `extra` (ascending, disjoint ranges of ids outside the set or not).
    pub(crate) fn ranges_with(&self, extra: &[(i64, i64)]) -> Vec<(i64, i64)> {
        let mut all: Vec<(i64, i64)> = extra.to_vec();
        let mut run: Option<(i64, i64)> = None;
        for id in self.ids() {
            run = match run {
                Some((lo, hi)) if hi + 1 == id => Some((lo, id)),
                Some(done) => {
                    all.push(done);
                    Some((id, id))
                }
                None => Some((id, id)),
            };
        }
        all.extend(run);
        crate::events::merge_ranges(all)
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
pub(crate) struct Presence(Vec<(FieldId, i64)>);

impl Presence {
    pub(crate) fn add(&mut self, field: FieldId, n: i64) {
        match self.0.binary_search_by_key(&field, |(f, _)| *f) {
            Ok(i) => self.0[i].1 += n,
            Err(i) => self.0.insert(i, (field, n)),
        }
    }

    /// Each field and how many values it gained, by field id.
    pub(crate) fn counts(&self) -> &[(FieldId, i64)] {
        &self.0
    }
}

/// Rows prepared for the writer, in file order: each customer's values encoded as a new
/// customer's, and the fields its changes remove (which matter only if it exists).
#[derive(Default)]
pub(crate) struct Encoded {
    /// customerIds, back to back.
    ids: String,
    /// Encoded values, back to back.
    data: Vec<u8>,
    removed: Vec<FieldId>,
    /// Per row: where its customerId, its encoded values and its removed fields end.
    rows: Vec<(usize, usize, usize)>,
    /// The values of all rows, counted as if every row created its customer.
    pub(crate) presence: Presence,
}

impl Encoded {
    pub(crate) fn len(&self) -> usize {
        self.rows.len()
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    /// Row `i`: its customerId, encoded values and removed fields.
    pub(crate) fn row(&self, i: usize) -> (&str, &[u8], &[FieldId]) {
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
pub(crate) enum Prepared {
    Rows(Encoded),
    /// The feed's verdict: keep the import or not.
    End {
        keep: bool,
    },
    /// An item was refused (a field deleted or retyped meanwhile): the import fails.
    Failed(StoreError),
}

/// The writer's end of the preparing thread: prepared batches in, emptied buffers back.
pub(crate) struct PreparedFeed {
    rx: mpsc::Receiver<Prepared>,
    back: mpsc::SyncSender<Encoded>,
}

impl PreparedFeed {
    /// The next prepared batch; `None` if the preparing thread stopped without a verdict.
    pub(crate) fn next(&self) -> Option<Prepared> {
        self.rx.recv().ok()
    }

    /// Hands an emptied buffer back for reuse.
    pub(crate) fn recycle(&self, mut rows: Encoded) {
        rows.clear();
        let _ = self.back.try_send(rows);
    }
}

/// Starts the preparing thread over `batches`. It stops at the feed's end, at a refused
/// item, or as soon as the writer drops its end.
pub(crate) fn start(
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
            // Imports carry values only (the batch API carries subscriptions).
            let UpsertItem {
                customer_id,
                mut changes,
                ..
            } = item;
            if let Err(e) = check_changes(live, &changes) {
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
        assert!(set.contains(700) && set.contains(0) && !set.contains(6));
        assert!(!set.contains(1 << 40) && !set.contains(-1));
    }
}
