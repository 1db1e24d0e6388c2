//! Running one CSV import: a parser thread turns the spooled file into batches, the store
//! writes them as one all-or-nothing unit, and the outcome becomes the import's record.
//!
//! Progress is shared through [`ImportProgress`] so `GET …/imports/{id}` can answer while
//! the import runs. Memory stays flat: the file is read as a stream and at most
//! [`BATCHES_IN_FLIGHT`] batches of [`BATCH_ITEMS`] customers exist at once.

use std::collections::HashMap;
use std::fs::File;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::time::Instant;

use unico_core::{AppId, Schema};
use unico_csv::{ErrorReport, FileError, ImportReader, RowMut};
use unico_store::{
    ImportBatch, ImportMode, ImportRecord, ImportRowError, ImportState, Store, UpsertItem,
};

use crate::state::now_ms;

/// Customers per batch handed to the store. Small enough that a batch's vector (48 bytes
/// per customer) stays under 64 KiB: the writer frees it, and glibc answers the free of a
/// larger block from another thread's arena by consolidating that arena's small free
/// blocks, which the parser would otherwise reuse for the next values (measured: a third
/// of the parser's time went to `malloc` with 8 192-customer batches).
pub const BATCH_ITEMS: usize = 1024;
/// Batches parsed ahead of the writer.
pub const BATCHES_IN_FLIGHT: usize = 32;

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

    fn insert(&self, app: AppId, id: i64, progress: Arc<ImportProgress>) {
        if let Ok(mut map) = self.running.lock() {
            map.insert((app, id), progress);
        }
    }

    fn remove(&self, app: AppId, id: i64) {
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

/// Reads the file and feeds batches; in atomic mode it stops feeding at the first invalid
/// row (nothing will be kept) but reads on to report every invalid row.
fn parse(
    file: File,
    schema: &Schema,
    mode: ImportMode,
    tx: mpsc::SyncSender<ImportBatch>,
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
                let _ = tx.send(ImportBatch::End { keep: false });
                return parsed;
            }
        };
    let mut batch: Vec<UpsertItem> = Vec::with_capacity(BATCH_ITEMS);
    let mut pending: Option<UpsertItem> = None;
    let mut feeding = true;
    // A long file has one row per value: size each customer's changes like the previous
    // customer's rather than growing them row by row.
    let mut changes_capacity = 0;
    loop {
        match reader.next_row_mut() {
            Ok(Some(RowMut::Op(op))) => {
                parsed.rows_read += 1;
                parsed.values += op.changes.len() as u64;
                if !feeding {
                    continue;
                }
                match &mut pending {
                    // Moved, not cloned: the reader's buffer keeps its capacity.
                    Some(item) if item.customer_id == *op.customer_id => {
                        item.changes.append(op.changes)
                    }
                    _ => {
                        let mut changes =
                            Vec::with_capacity(changes_capacity.max(op.changes.len()));
                        changes.append(op.changes);
                        let next = UpsertItem {
                            customer_id: op.customer_id.clone(),
                            changes,
                        };
                        if let Some(done) = pending.replace(next) {
                            changes_capacity = done.changes.len();
                            batch.push(done);
                            if batch.len() == BATCH_ITEMS {
                                let full =
                                    std::mem::replace(&mut batch, Vec::with_capacity(BATCH_ITEMS));
                                if tx.send(ImportBatch::Items(full)).is_err() {
                                    feeding = false;
                                }
                            }
                        }
                    }
                }
            }
            Ok(Some(RowMut::Invalid(error))) => {
                parsed.rows_read += 1;
                progress.rows_rejected.fetch_add(1, Ordering::Relaxed);
                let reported = row_error(error.clone());
                if let Ok(mut live) = progress.errors.lock()
                    && live.len() < unico_csv::MAX_REPORTED_ERRORS
                {
                    live.push(reported);
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
    if keep {
        if let Some(item) = pending.take() {
            batch.push(item);
        }
        if !batch.is_empty() {
            let _ = tx.send(ImportBatch::Items(batch));
        }
    }
    let _ = tx.send(ImportBatch::End { keep });
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
            mut record,
            path,
            progress,
        } = self;
        let outcome = File::open(&path)
            .map_err(|e| format!("cannot read the uploaded file: {e}"))
            .and_then(|file| {
                let (tx, rx) = mpsc::sync_channel(BATCHES_IN_FLIGHT);
                let mode = record.mode;
                let parser_progress = progress.clone();
                let parser = std::thread::Builder::new()
                    .name(format!("unico-import-{}-parse", record.id))
                    .spawn(move || parse(file, &schema, mode, tx, &parser_progress))
                    .map_err(|e| format!("cannot start the parser: {e}"))?;
                let counts = store.run_import(
                    record.app,
                    Box::new(rx.into_iter()),
                    now_ms(),
                    progress.customers_processed.clone(),
                );
                let parsed = parser
                    .join()
                    .map_err(|_| "the CSV parser failed unexpectedly".to_owned())?;
                Ok((counts, parsed))
            });
        let _ = std::fs::remove_file(&path);
        record.finished_at = Some(now_ms());
        let mut errors = Vec::new();
        match outcome {
            Err(message) => {
                record.state = ImportState::Failed;
                record.message = Some(message);
            }
            Ok((counts, parsed)) => {
                record.rows_read = parsed.rows_read;
                record.rows_rejected = parsed.report.total();
                errors = parsed
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
                    (Err(e), None) => {
                        tracing::error!(import = record.id, error = %e, "import failed in the store");
                        record.state = ImportState::Failed;
                        record.message =
                            Some("the import could not be written; nothing was written".into());
                    }
                    (Ok(c), None) if c.kept => {
                        record.state = ImportState::Succeeded;
                        record.created = c.created;
                        record.updated = c.updated;
                        record.rows_written = parsed.rows_read - record.rows_rejected;
                        record.values_written = parsed.values;
                    }
                    (Ok(_), None) => {
                        record.state = ImportState::Failed;
                        record.message = Some(format!(
                            "{} invalid row{}; nothing was written (the import is atomic: fix the rows, or import again with mode=skip_invalid to write the valid rows)",
                            record.rows_rejected,
                            if record.rows_rejected == 1 { "" } else { "s" }
                        ));
                    }
                }
            }
        }
        if let Err(e) = store.finish_import(&record, &errors) {
            tracing::error!(import = record.id, error = %e, "cannot record the import's outcome");
        }
        tracing::info!(
            import = record.id,
            state = record.state.as_str(),
            rows = record.rows_read,
            rejected = record.rows_rejected,
            took_ms = started.elapsed().as_millis() as u64,
            "import finished"
        );
        progress.done.store(true, Ordering::Relaxed);
        jobs.remove(record.app, record.id);
    }
}
