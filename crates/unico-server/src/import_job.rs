//! Running one CSV import: a parser thread turns the spooled file into packed batches; the
//! store pulls them (on its import thread, which unpacks them into customer upserts and
//! encodes them) and writes them as one all-or-nothing unit; the outcome becomes the
//! import's record, stored in the same transaction as the rows (so after a crash the record
//! and the data always agree).
//!
//! Progress is shared through [`ImportProgress`] so `GET …/imports/{id}` can answer while
//! the import runs. Memory stays flat: the file is read as a stream and at most
//! [`BATCHES_IN_FLIGHT`] batches of at most [`BATCH_ITEMS`] customers and about
//! [`BATCH_BYTES`] of text exist at once.

use std::collections::HashMap;
use std::fs::File;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::time::Instant;

use unico_core::{AppId, CustomerId, FieldChange, FieldId, Schema, Value};
use unico_csv::{ErrorReport, FileError, ImportReader, RowMut};
use unico_store::{
    ImportBatch, ImportCounts, ImportMode, ImportRecord, ImportRowError, ImportState, Store,
    StoreError, UpsertItem,
};

use crate::state::now_ms;

/// Customers per batch the parser packs.
pub const BATCH_ITEMS: usize = 1024;
/// Text (customerIds and string values) per batch the parser packs, past which it starts a
/// new batch at the next customer: wide rows of long strings fill a batch long before
/// [`BATCH_ITEMS`] customers.
pub const BATCH_BYTES: usize = 4 << 20;
/// Batches parsed ahead of the writer (each a reused [`Packed`] buffer).
pub const BATCHES_IN_FLIGHT: usize = 16;

/// Live progress of one running import.
#[derive(Default)]
pub struct ImportProgress {
    pub rows_read: AtomicU64,
    /// Customers handed to the store and written in the import's transaction so far.
    pub customers_processed: Arc<AtomicU64>,
    pub rows_rejected: AtomicU64,
    pub done: AtomicBool,
    /// The first rejected rows, for the live report.
    pub errors: Mutex<Vec<ImportRowError>>,
}

/// The imports running in this process.
#[derive(Default)]
pub struct ImportJobs {
    running: Mutex<HashMap<(AppId, i64), Arc<ImportProgress>>>,
}

impl ImportJobs {
    pub fn get(&self, app: AppId, id: i64) -> Option<Arc<ImportProgress>> {
        self.running.lock().ok()?.get(&(app, id)).cloned()
    }

    pub(crate) fn insert(&self, app: AppId, id: i64, progress: Arc<ImportProgress>) {
        if let Ok(mut map) = self.running.lock() {
            map.insert((app, id), progress);
        }
    }

    pub(crate) fn remove(&self, app: AppId, id: i64) {
        if let Ok(mut map) = self.running.lock() {
            map.remove(&(app, id));
        }
    }
}

fn row_error(e: unico_csv::RowError) -> ImportRowError {
    ImportRowError {
        line: e.line,
        column: e.column,
        value: e.value,
        message: e.message,
    }
}

/// What the parser thread found.
struct Parsed {
    rows_read: u64,
    values: u64,
    report: ErrorReport,
    file_error: Option<FileError>,
}

/// A value as packed by the parser: strings are ranges of [`Packed::text`].
#[derive(Clone, Copy)]
enum PackedValue {
    Absent,
    Text(usize, usize),
    Number(f64),
    Datetime(i64),
    Date(i32),
}

/// One batch of customers as the parser hands it over: every customerId and string value
/// back to back in two buffers, so the parser allocates nothing per value. The buffers
/// are reused: the store's side unpacks a batch into [`UpsertItem`]s and sends it back.
///
/// Why not build the items on the parser thread: whatever the parser allocates, the
/// store's side frees, and glibc's allocator serves one thread allocating while another
/// frees badly (no per-thread cache reuse, locked frees into the other thread's arena,
/// consolidations): that was a third of the parser's time. Built on the thread that
/// consumes them, the items are allocated and freed by one thread, from its cache.
#[derive(Default)]
struct Packed {
    /// customerIds, back to back.
    ids: String,
    /// String values, back to back.
    text: String,
    changes: Vec<(FieldId, PackedValue)>,
    /// Per customer: where its customerId ends in `ids` and its changes end in `changes`.
    customers: Vec<(usize, usize)>,
    /// Subscription statements (consent columns): the customer's index in `customers`,
    /// the channel, subscribed. Rare, so kept as they come.
    consents: Vec<(usize, unico_core::Channel, bool)>,
    /// Where the last customer's string values start in `text`.
    last_text: usize,
    /// The last customer's changes and text bytes after its last fold (see
    /// [`Packed::fold_last`]).
    folded: (usize, usize),
}

/// A customer's changes past which its rows are folded (last value per field), beyond
/// twice what the last fold left.
const FOLD_CHANGES: usize = 64;
/// The same for the bytes of a customer's string values.
const FOLD_TEXT: usize = 64 << 10;

impl Packed {
    /// The customerIds' and string values' bytes.
    fn text_bytes(&self) -> usize {
        self.ids.len() + self.text.len()
    }

    fn start_customer(&mut self, id: &CustomerId) {
        self.ids.push_str(id.as_str());
        self.customers.push((self.ids.len(), self.changes.len()));
        self.last_text = self.text.len();
        self.folded = (0, 0);
    }

    /// Where the last customer's changes start in `changes`.
    fn last_changes_start(&self) -> usize {
        match self.customers.len() {
            0 | 1 => 0,
            n => self.customers[n - 2].1,
        }
    }

    /// Keeps only the last change of each field of the last customer (what the store
    /// would apply anyway), and only their string values, so that a file repeating one
    /// customer's rows millions of times takes the memory of one row per field.
    fn fold_last(&mut self) {
        let start = self.last_changes_start();
        let mut last: HashMap<FieldId, usize> = HashMap::new();
        for (i, (field, _)) in self.changes[start..].iter().enumerate() {
            last.insert(*field, i);
        }
        let mut kept: Vec<(FieldId, PackedValue)> = Vec::with_capacity(last.len());
        let mut text = String::new();
        for (i, &(field, value)) in self.changes[start..].iter().enumerate() {
            if last.get(&field) != Some(&i) {
                continue;
            }
            let value = match value {
                PackedValue::Text(a, b) => {
                    let from = self.last_text + text.len();
                    text.push_str(&self.text[a..b]);
                    PackedValue::Text(from, self.last_text + text.len())
                }
                other => other,
            };
            kept.push((field, value));
        }
        self.text.truncate(self.last_text);
        self.text.push_str(&text);
        self.changes.truncate(start);
        self.changes.extend_from_slice(&kept);
        self.folded = (kept.len(), text.len());
        if let Some(customer) = self.customers.last_mut() {
            customer.1 = self.changes.len();
        }
    }

    /// Adds a row's subscription statements to the last customer.
    fn push_consents(&mut self, consents: &[(unico_core::Channel, bool)]) {
        let Some(customer) = self.customers.len().checked_sub(1) else {
            return;
        };
        self.consents.extend(
            consents
                .iter()
                .map(|(channel, subscribed)| (customer, channel.clone(), *subscribed)),
        );
    }

    /// Moves a row's changes into the last customer.
    fn push_changes(&mut self, changes: &mut Vec<FieldChange>) {
        for change in changes.drain(..) {
            let value = match change.value {
                None => PackedValue::Absent,
                Some(Value::String(s)) => {
                    let start = self.text.len();
                    self.text.push_str(&s);
                    PackedValue::Text(start, self.text.len())
                }
                Some(Value::Number(n)) => PackedValue::Number(n),
                Some(Value::Datetime(ms)) => PackedValue::Datetime(ms),
                Some(Value::Date(days)) => PackedValue::Date(days),
            };
            self.changes.push((change.field, value));
        }
        if let Some(last) = self.customers.last_mut() {
            last.1 = self.changes.len();
        }
        let changes = self.changes.len() - self.last_changes_start();
        let text = self.text.len() - self.last_text;
        if changes > 2 * self.folded.0 + FOLD_CHANGES || text > 2 * self.folded.1 + FOLD_TEXT {
            self.fold_last();
        }
    }

    /// The items of customers `from..to`. Every customerId and value was validated by the
    /// reader; they are copied back out of the buffers unchanged.
    fn unpack(&self, from: usize, to: usize) -> Option<Vec<UpsertItem>> {
        let mut items = Vec::with_capacity(to - from);
        let (mut id_start, mut change_start) = match from {
            0 => (0, 0),
            _ => self.customers[from - 1],
        };
        for &(id_end, change_end) in &self.customers[from..to] {
            let customer_id = CustomerId::parse(&self.ids[id_start..id_end]).ok()?;
            let changes = self.changes[change_start..change_end]
                .iter()
                .map(|&(field, value)| FieldChange {
                    field,
                    value: match value {
                        PackedValue::Absent => None,
                        PackedValue::Text(start, end) => {
                            Some(Value::String(self.text[start..end].to_owned()))
                        }
                        PackedValue::Number(n) => Some(Value::Number(n)),
                        PackedValue::Datetime(ms) => Some(Value::Datetime(ms)),
                        PackedValue::Date(days) => Some(Value::Date(days)),
                    },
                })
                .collect();
            items.push(UpsertItem {
                customer_id,
                changes,
                subscriptions: Vec::new(),
            });
            (id_start, change_start) = (id_end, change_end);
        }
        // Statements made by the file: now, with the source `csv`. They were pushed in
        // customer order: the slice of these customers is found by bisection.
        let start = self.consents.partition_point(|c| c.0 < from);
        let end = self.consents.partition_point(|c| c.0 < to);
        if start < end {
            let (now, source) = (
                crate::state::now_ms(),
                unico_core::Source::parse("csv").ok()?,
            );
            for (customer, channel, subscribed) in &self.consents[start..end] {
                if let Some(item) = items.get_mut(customer - from) {
                    item.subscriptions.push(unico_core::SubscriptionChange {
                        channel: channel.clone(),
                        subscribed: *subscribed,
                        at: now,
                        source: source.clone(),
                    });
                }
            }
        }
        Some(items)
    }

    /// Empties the buffers for reuse; one that a very large row grew is given back.
    fn clear(&mut self) {
        self.last_text = 0;
        self.folded = (0, 0);
        self.ids.clear();
        self.text.clear();
        self.changes.clear();
        self.customers.clear();
        self.consents.clear();
        if self.text.capacity() > 2 * BATCH_BYTES {
            self.text.shrink_to(BATCH_BYTES);
        }
        if self.changes.capacity() > 2 * BATCH_ITEMS * 64 {
            self.changes.shrink_to(BATCH_ITEMS * 16);
        }
    }
}

/// What the parser sends to the writer's side.
enum Packet {
    Batch(Packed),
    /// The end of the file and the verdict: keep the import or not.
    End(bool),
}

/// The parser's end of the two channels: full batches out, emptied ones back.
struct Feed {
    tx: mpsc::SyncSender<Packet>,
    empty: mpsc::Receiver<Packed>,
}

/// The store's end: runs on the thread the store consumes the batches on, turning packed
/// batches into [`ImportBatch`]es of at most [`UNPACKED_ITEMS`] customers and sending the
/// emptied buffers back to the parser.
struct Unpack {
    rx: mpsc::Receiver<Packet>,
    back: mpsc::SyncSender<Packed>,
    /// The batch being unpacked and its next customer.
    current: Option<(Packed, usize)>,
}

/// Customers unpacked at a time: the store encodes them while their values are still in
/// the core's cache, and the items' vector is small enough for the allocator's fast path.
const UNPACKED_ITEMS: usize = 16;

impl Iterator for Unpack {
    type Item = ImportBatch;

    fn next(&mut self) -> Option<ImportBatch> {
        loop {
            if let Some((packed, next)) = &mut self.current {
                let from = *next;
                if from < packed.customers.len() {
                    let to = (from + UNPACKED_ITEMS).min(packed.customers.len());
                    *next = to;
                    let Some(items) = packed.unpack(from, to) else {
                        // Cannot happen (the reader validated every customerId); end the
                        // feed without a verdict, which keeps nothing.
                        tracing::error!("an import batch held an invalid customerId");
                        return None;
                    };
                    return Some(ImportBatch::Items(items));
                }
                if let Some((mut packed, _)) = self.current.take() {
                    packed.clear();
                    let _ = self.back.try_send(packed);
                }
            }
            match self.rx.recv().ok()? {
                Packet::End(keep) => return Some(ImportBatch::End { keep }),
                Packet::Batch(packed) => self.current = Some((packed, 0)),
            }
        }
    }
}

/// The two ends of an import's batch channels, with [`BATCHES_IN_FLIGHT`] buffers.
fn channels() -> (Feed, Unpack) {
    let (tx, rx) = mpsc::sync_channel(BATCHES_IN_FLIGHT);
    let (back, empty) = mpsc::sync_channel(BATCHES_IN_FLIGHT);
    for _ in 0..BATCHES_IN_FLIGHT {
        let _ = back.try_send(Packed::default());
    }
    (
        Feed { tx, empty },
        Unpack {
            rx,
            back,
            current: None,
        },
    )
}

/// Reads the file and feeds batches; in atomic mode it stops feeding at the first invalid
/// row (nothing will be kept) but reads on to report every invalid row.
fn parse(
    file: File,
    schema: &Schema,
    mode: ImportMode,
    feed: Feed,
    progress: &ImportProgress,
) -> Parsed {
    let progress_started = Instant::now();
    let mut parsed = Parsed {
        rows_read: 0,
        values: 0,
        report: ErrorReport::new(),
        file_error: None,
    };
    let mut reader =
        match ImportReader::new(std::io::BufReader::with_capacity(1 << 20, file), schema) {
            Ok(r) => r,
            Err(e) => {
                parsed.file_error = Some(e);
                let _ = feed.tx.send(Packet::End(false));
                return parsed;
            }
        };
    // The batch being filled; `None` once the writer's side is gone.
    let mut batch = feed.empty.recv().ok();
    let mut feeding = batch.is_some();
    loop {
        match reader.next_row_mut() {
            Ok(Some(RowMut::Op(op))) => {
                parsed.rows_read += 1;
                parsed.values += op.changes.len() as u64;
                if !feeding {
                    continue;
                }
                let Some(packed) = &mut batch else {
                    continue;
                };
                if !op.same_customer || packed.customers.is_empty() {
                    if packed.customers.len() == BATCH_ITEMS || packed.text_bytes() >= BATCH_BYTES {
                        let full = std::mem::take(packed);
                        // Progress never shows customers written from rows not yet read.
                        progress
                            .rows_read
                            .store(parsed.rows_read - 1, Ordering::Relaxed);
                        match feed.tx.send(Packet::Batch(full)) {
                            Ok(()) => batch = feed.empty.recv().ok(),
                            Err(_) => batch = None,
                        }
                        let Some(packed) = &mut batch else {
                            feeding = false;
                            continue;
                        };
                        packed.start_customer(op.customer_id);
                        packed.push_changes(op.changes);
                        packed.push_consents(op.consents);
                        continue;
                    }
                    packed.start_customer(op.customer_id);
                }
                packed.push_changes(op.changes);
                packed.push_consents(op.consents);
            }
            Ok(Some(RowMut::Invalid(error))) => {
                parsed.rows_read += 1;
                progress.rows_rejected.fetch_add(1, Ordering::Relaxed);
                // Past the reported ones, an error only counts: no copy for the live report.
                if let Ok(mut live) = progress.errors.lock()
                    && live.len() < unico_csv::MAX_REPORTED_ERRORS
                {
                    live.push(row_error(error.clone()));
                }
                parsed.report.push(error);
                if mode == ImportMode::Atomic {
                    feeding = false;
                }
            }
            Ok(None) => break,
            Err(e) => {
                parsed.file_error = Some(e);
                break;
            }
        }
        if parsed.rows_read.is_multiple_of(4096) {
            progress
                .rows_read
                .store(parsed.rows_read, Ordering::Relaxed);
        }
    }
    progress
        .rows_read
        .store(parsed.rows_read, Ordering::Relaxed);
    tracing::debug!(
        rows = parsed.rows_read,
        parse_ms = progress_started.elapsed().as_millis() as u64,
        "import file parsed"
    );
    let keep = parsed.file_error.is_none()
        && (mode == ImportMode::SkipInvalid || parsed.report.is_empty());
    if keep
        && feeding
        && let Some(packed) = batch.filter(|b| !b.customers.is_empty())
    {
        let _ = feed.tx.send(Packet::Batch(packed));
    }
    let _ = feed.tx.send(Packet::End(keep));
    parsed
}

/// Everything one import needs; [`run`] consumes it on a dedicated thread.
pub struct ImportJob {
    pub store: Arc<dyn Store>,
    pub jobs: Arc<ImportJobs>,
    pub schema: Schema,
    pub record: ImportRecord,
    pub path: PathBuf,
    pub progress: Arc<ImportProgress>,
    /// The import's place (`limits::ImportSlots`), freed when the job ends.
    pub slot: crate::limits::ImportSlot,
}

impl ImportJob {
    /// Registers the job as running and starts it on its own thread.
    pub fn spawn(self) -> std::io::Result<()> {
        self.jobs
            .insert(self.record.app, self.record.id, self.progress.clone());
        std::thread::Builder::new()
            .name(format!("unico-import-{}", self.record.id))
            .spawn(move || self.run())?;
        Ok(())
    }

    fn run(self) {
        let started = Instant::now();
        let ImportJob {
            store,
            jobs,
            schema,
            record,
            path,
            progress,
            slot: _slot,
        } = self;
        let (app, id) = (record.app, record.id);
        // What the import came to, for the log line (the store owns the record meanwhile).
        let concluded = Arc::new(Mutex::new(None::<ImportRecord>));
        let written = File::open(&path)
            .map_err(|e| format!("cannot read the uploaded file: {e}"))
            .and_then(|file| {
                let (feed, unpack) = channels();
                let mode = record.mode;
                let parser_progress = progress.clone();
                let parser = std::thread::Builder::new()
                    .name(format!("unico-import-{id}-parse"))
                    .spawn(move || parse(file, &schema, mode, feed, &parser_progress))
                    .map_err(|e| format!("cannot start the parser: {e}"))?;
                let (record, seen) = (record.clone(), concluded.clone());
                // Runs inside the import's transaction once its writes are decided (the
                // parser has then sent its verdict), so the record commits with the rows.
                let finish: unico_store::ImportFinish = Box::new(move |outcome| {
                    // After a verdict the parser has finished reading; after a store error
                    // it may still be reading on, and the writer does not wait for it.
                    let parsed = match outcome {
                        Ok(_) => parser
                            .join()
                            .map_err(|_| "the CSV parser failed unexpectedly".to_owned()),
                        Err(_) => Err(String::new()),
                    };
                    let concluded = conclude(record, outcome, parsed);
                    if let Ok(mut seen) = seen.lock() {
                        *seen = Some(concluded.0.clone());
                    }
                    concluded
                });
                store
                    .run_import(
                        app,
                        Box::new(unpack),
                        now_ms(),
                        progress.customers_processed.clone(),
                        Some(finish),
                    )
                    .map_err(|e| {
                        tracing::error!(import = id, error = %e, "import failed in the store");
                        "the import could not be written; nothing was written".to_owned()
                    })
            });
        end_job(
            store.as_ref(),
            &jobs,
            &progress,
            record,
            &path,
            written.map(|_| ()),
            &concluded,
            started,
            "customers",
        );
    }
}

/// Ends an import job: its spooled file removed, its record logged (the one committed with
/// its writes, or, when nothing was written, a failed one stored now with why), and the
/// job no longer running.
#[allow(clippy::too_many_arguments)]
pub(crate) fn end_job(
    store: &dyn Store,
    jobs: &ImportJobs,
    progress: &ImportProgress,
    record: ImportRecord,
    path: &std::path::Path,
    written: Result<(), String>,
    concluded: &Mutex<Option<ImportRecord>>,
    started: Instant,
    kind: &'static str,
) {
    let (app, id) = (record.app, record.id);
    let _ = std::fs::remove_file(path);
    let record = match written {
        Ok(()) => concluded.lock().ok().and_then(|mut r| r.take()),
        Err(message) => {
            let mut failed = record;
            failed.state = ImportState::Failed;
            failed.finished_at = Some(now_ms());
            failed.message = Some(message);
            if let Err(e) = store.finish_import(&failed, &[]) {
                tracing::error!(import = id, error = %e, "cannot record the import's outcome");
            }
            Some(failed)
        }
    };
    if let Some(record) = record {
        tracing::info!(
            import = id,
            kind,
            state = record.state.as_str(),
            rows = record.rows_read,
            written = record.rows_written,
            rejected = record.rows_rejected,
            took_ms = started.elapsed().as_millis() as u64,
            "import finished"
        );
    }
    progress.done.store(true, Ordering::Relaxed);
    jobs.remove(app, id);
}

/// The final record of an import from what its writes came to and what the parser read.
fn conclude(
    mut record: ImportRecord,
    outcome: Result<ImportCounts, &StoreError>,
    parsed: Result<Parsed, String>,
) -> (ImportRecord, Vec<ImportRowError>) {
    record.finished_at = Some(now_ms());
    let counts = match outcome {
        Ok(counts) => counts,
        Err(e) => {
            tracing::error!(import = record.id, error = %e, "import failed in the store");
            record.state = ImportState::Failed;
            record.message = Some("the import could not be written; nothing was written".into());
            return (record, Vec::new());
        }
    };
    let parsed = match parsed {
        Ok(parsed) => parsed,
        Err(message) => {
            record.state = ImportState::Failed;
            record.message = Some(message);
            return (record, Vec::new());
        }
    };
    record.rows_read = parsed.rows_read;
    record.rows_rejected = parsed.report.total();
    let errors = parsed
        .report
        .errors()
        .iter()
        .cloned()
        .map(row_error)
        .collect();
    match (counts, parsed.file_error) {
        (_, Some(file_error)) => {
            record.state = ImportState::Failed;
            record.message = Some(format!("{file_error}; nothing was written"));
        }
        (c, None) if c.kept => {
            record.state = ImportState::Succeeded;
            record.created = c.created;
            record.updated = c.updated;
            record.rows_written = parsed.rows_read - record.rows_rejected;
            record.values_written = parsed.values;
        }
        (_, None) => {
            record.state = ImportState::Failed;
            record.message = Some(format!(
                "{} invalid row{}; nothing was written (the import is atomic: fix the rows, or import again with mode=skip_invalid to write the valid rows)",
                record.rows_rejected,
                if record.rows_rejected == 1 { "" } else { "s" }
            ));
        }
    }
    (record, errors)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::io::Write as _;

    use unico_core::{FieldDef, FieldName, FieldType};

    use super::*;

    fn schema() -> Schema {
        Schema::new(
            [("age", FieldType::Number), ("city", FieldType::String)]
                .iter()
                .enumerate()
                .map(|(i, (name, field_type))| FieldDef {
                    id: FieldId(i as u32 + 1),
                    name: FieldName::parse(name).unwrap(),
                    field_type: *field_type,
                    created_at: 0,
                    computed: None,
                })
                .collect(),
        )
    }

    /// The batches the store's side sees are the file's rows grouped by consecutive
    /// customerId, whole customers per batch (batches ended by count and by size), values
    /// unchanged, and then the verdict.
    #[test]
    fn packed_batches_carry_the_rows_grouped_by_customer() {
        let mut csv = String::from("customerId,fieldName,fieldValue\n");
        let mut expected: Vec<(String, Vec<FieldChange>)> = Vec::new();
        for i in 0..(3 * BATCH_ITEMS + 17) {
            // Some customers come back later in the file; some rows remove a value.
            let id = if i % 7 == 3 {
                format!("c{}", i / 2)
            } else {
                format!("c{i}")
            };
            let mut changes = vec![FieldChange {
                field: FieldId(1),
                value: Some(Value::Number(i as f64)),
            }];
            csv.push_str(&format!("{id},age,{i}\n"));
            if i % 3 == 0 {
                // Long enough that the text, not the customer count, ends some batches.
                let city = format!("Málaga {i} {}", "x".repeat(4000));
                csv.push_str(&format!("{id},city,{city}\n"));
                changes.push(FieldChange {
                    field: FieldId(2),
                    value: Some(Value::String(city)),
                });
            } else if i % 5 == 0 {
                csv.push_str(&format!("{id},city,\n"));
                changes.push(FieldChange {
                    field: FieldId(2),
                    value: None,
                });
            }
            match expected.last_mut() {
                Some((last, more)) if *last == id => more.extend(changes),
                _ => expected.push((id, changes)),
            }
        }
        let mut file = tempfile::tempfile().unwrap();
        file.write_all(csv.as_bytes()).unwrap();
        std::io::Seek::rewind(&mut file).unwrap();
        let (feed, unpack) = channels();
        let progress = ImportProgress::default();
        let parser = std::thread::spawn(move || {
            parse(file, &schema(), ImportMode::Atomic, feed, &progress).rows_read
        });
        let mut seen: Vec<(String, Vec<FieldChange>)> = Vec::new();
        let mut verdict = None;
        for batch in unpack {
            match batch {
                ImportBatch::Items(items) => {
                    assert!(!items.is_empty() && items.len() <= UNPACKED_ITEMS);
                    seen.extend(
                        items
                            .into_iter()
                            .map(|item| (item.customer_id.as_str().to_owned(), item.changes)),
                    );
                }
                ImportBatch::End { keep } => {
                    verdict = Some(keep);
                    break;
                }
            }
        }
        let rows = parser.join().unwrap();
        assert_eq!(verdict, Some(true));
        assert_eq!(rows as usize, csv.lines().count() - 1);
        assert_eq!(seen.len(), expected.len());
        assert!(seen == expected, "the unpacked items differ from the file");
    }

    /// One customer's rows repeated many times take the memory of one row per field, and
    /// the last value of each field is what reaches the store.
    #[test]
    fn rows_of_one_customer_fold_as_they_are_read() {
        let mut packed = Packed::default();
        packed.start_customer(&CustomerId::parse("before").unwrap());
        packed.push_changes(&mut vec![FieldChange {
            field: FieldId(2),
            value: Some(Value::String("kept apart".into())),
        }]);
        packed.start_customer(&CustomerId::parse("same").unwrap());
        let mut peak = (0, 0);
        for i in 0..200_000u32 {
            let mut changes = vec![
                FieldChange {
                    field: FieldId(1),
                    value: Some(Value::Number(f64::from(i))),
                },
                FieldChange {
                    field: FieldId(2),
                    value: (i % 5 != 4).then(|| {
                        Value::String(format!("city {i} {}", "y".repeat(i as usize % 300)))
                    }),
                },
            ];
            packed.push_changes(&mut changes);
            peak = (
                peak.0.max(packed.changes.len()),
                peak.1.max(packed.text.len()),
            );
        }
        assert!(peak.0 < 4 * FOLD_CHANGES, "changes grew to {}", peak.0);
        assert!(peak.1 < 4 * FOLD_TEXT, "text grew to {}", peak.1);
        let items = packed.unpack(0, 2).unwrap();
        assert_eq!(
            items[0].changes[0].value,
            Some(Value::String("kept apart".into()))
        );
        // What the store makes of the folded changes is what it makes of every row.
        let want = |field: u32| {
            items[1]
                .changes
                .iter()
                .rev()
                .find(|c| c.field == FieldId(field))
                .and_then(|c| c.value.clone())
        };
        assert_eq!(want(1), Some(Value::Number(199_999.0)));
        assert_eq!(want(2), None, "row 199 999 removed the city");
    }
}
