//! Running one events import (NDJSON backfill): a parser thread reads the spooled file line
//! by line, checks each line as `POST …/events` checks an item (and its type against the
//! registry), and hands batches to the store, which writes them as one all-or-nothing unit
//! with the import's record in the same transaction.
//!
//! An invalid line is reported with its line number, the key at fault and the reason. In
//! `atomic` mode (the default) any invalid line means nothing is written; in `skip_invalid`
//! the valid lines are. Memory stays flat: the file is streamed, and at most
//! [`BATCHES_IN_FLIGHT`] batches of [`BATCH_EVENTS`] events exist at once.

use std::fs::File;
use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, mpsc};
use std::time::Instant;

use unico_core::Schema;
use unico_store::{
    EventBatch, ImportCounts, ImportMode, ImportRecord, ImportRowError, ImportState, NewEvent,
    Store, StoreError,
};

use crate::import_job::{ImportJobs, ImportProgress};
use crate::state::now_ms;

/// Events per batch handed to the store.
pub const BATCH_EVENTS: usize = 4096;
/// Batches parsed ahead of the writer.
pub const BATCHES_IN_FLIGHT: usize = 8;
/// Longest line accepted, in bytes (an event's properties are at most 8 KiB).
pub const MAX_LINE_BYTES: usize = 1 << 20;
/// Rejected lines reported in full (the rest are counted).
pub const MAX_REPORTED_ERRORS: usize = 1000;

/// What the parser found.
struct Parsed {
    lines_read: u64,
    rejected: u64,
    errors: Vec<ImportRowError>,
    /// The file could not be read to its end.
    file_error: Option<String>,
}

fn excerpt_value(v: Option<&serde_json::Value>) -> String {
    match v {
        None => String::new(),
        Some(serde_json::Value::String(s)) => unico_core::value::excerpt(s),
        Some(other) => unico_core::value::excerpt(&other.to_string()),
    }
}

/// Checks one line; the error's column is the key at fault (or `line`).
fn check_line(
    text: &[u8],
    line: u64,
    schema: &Schema,
    auto_register: bool,
    identity: &crate::identity::IdentityRules,
    now: i64,
) -> Result<Option<NewEvent>, ImportRowError> {
    let row_error = |column: &str, value: String, message: String| ImportRowError {
        line,
        column: column.to_owned(),
        value,
        message,
    };
    if text.len() > MAX_LINE_BYTES {
        return Err(row_error(
            "line",
            String::new(),
            format!("the line is longer than {MAX_LINE_BYTES} bytes"),
        ));
    }
    let text = match std::str::from_utf8(text) {
        Ok(t) => t.trim(),
        Err(e) => {
            return Err(row_error(
                "line",
                String::new(),
                format!(
                    "the line is not UTF-8 (invalid byte at position {})",
                    e.valid_up_to() + 1
                ),
            ));
        }
    };
    if text.is_empty() {
        return Ok(None);
    }
    let item: serde_json::Value = serde_json::from_str(text).map_err(|e| {
        row_error(
            "line",
            unico_core::value::excerpt(text),
            format!("not a JSON object: {e}"),
        )
    })?;
    let event =
        crate::routes::events::event_input(&item, now, "", identity).map_err(|details| {
            let first = details.into_iter().next();
            let column = first
                .as_ref()
                .and_then(|d| d.field.clone())
                .filter(|f| !f.is_empty())
                .unwrap_or_else(|| "line".into());
            let message = first.map(|d| d.message).unwrap_or_default();
            row_error(&column, excerpt_value(item.get(&column)), message)
        })?;
    match schema.event_types().get(event.event_type.as_str()) {
        Some(t) if t.enabled => Ok(Some(event)),
        // The store registers it with the first event.
        None if auto_register => Ok(Some(event)),
        Some(_) => Err(row_error(
            "type",
            event.event_type.as_str().to_owned(),
            format!(
                "the event type \"{}\" is disabled; enable it to import its events",
                event.event_type
            ),
        )),
        None => Err(row_error(
            "type",
            event.event_type.as_str().to_owned(),
            match schema.event_types().suggest(event.event_type.as_str()) {
                Some(s) => format!(
                    "the event type \"{}\" is not registered in this application (did you mean \"{s}\"?)",
                    event.event_type
                ),
                None => format!(
                    "the event type \"{}\" is not registered in this application; register it first (POST …/event-types)",
                    event.event_type
                ),
            },
        )),
    }
}

/// Reads the file and sends its batches, then the verdict.
fn parse(
    file: File,
    schema: &Schema,
    auto_register: bool,
    identity: &crate::identity::IdentityRules,
    mode: ImportMode,
    tx: mpsc::SyncSender<EventBatch>,
    progress: &ImportProgress,
) -> Parsed {
    let now = now_ms();
    let mut reader = BufReader::with_capacity(1 << 20, file);
    let mut parsed = Parsed {
        lines_read: 0,
        rejected: 0,
        errors: Vec::new(),
        file_error: None,
    };
    let mut batch = Vec::with_capacity(BATCH_EVENTS);
    let mut buf = Vec::new();
    let mut line = 0u64;
    let mut sending = true;
    loop {
        buf.clear();
        match reader.read_until(b'\n', &mut buf) {
            Ok(0) => break,
            Ok(_) => {}
            Err(e) => {
                parsed.file_error = Some(format!("the file could not be read: {e}"));
                break;
            }
        }
        line += 1;
        match check_line(&buf, line, schema, auto_register, identity, now) {
            Ok(None) => continue,
            Ok(Some(event)) => {
                parsed.lines_read += 1;
                if sending {
                    batch.push(event);
                }
            }
            Err(e) => {
                parsed.lines_read += 1;
                parsed.rejected += 1;
                progress.rows_rejected.fetch_add(1, Ordering::Relaxed);
                if parsed.errors.len() < MAX_REPORTED_ERRORS {
                    if let Ok(mut live) = progress.errors.lock()
                        && live.len() < 100
                    {
                        live.push(e.clone());
                    }
                    parsed.errors.push(e);
                }
                // Atomic: nothing will be written; read on only to report every error.
                if mode == ImportMode::Atomic {
                    sending = false;
                    batch.clear();
                }
            }
        }
        progress
            .rows_read
            .store(parsed.lines_read, Ordering::Relaxed);
        if batch.len() >= BATCH_EVENTS
            && tx
                .send(EventBatch::Items(std::mem::replace(
                    &mut batch,
                    Vec::with_capacity(BATCH_EVENTS),
                )))
                .is_err()
        {
            // The writer gave up (a storage failure): nothing more to do.
            return parsed;
        }
    }
    let keep =
        parsed.file_error.is_none() && (mode == ImportMode::SkipInvalid || parsed.rejected == 0);
    if keep && !batch.is_empty() {
        let _ = tx.send(EventBatch::Items(batch));
    }
    let _ = tx.send(EventBatch::End { keep });
    parsed
}

/// Everything one events import needs.
pub struct EventImportJob {
    pub store: Arc<dyn Store>,
    pub jobs: Arc<ImportJobs>,
    pub schema: Schema,
    /// The application registers unknown event types on first sight.
    pub auto_register: bool,
    /// How lines naming an identity find their customer.
    pub identity: crate::identity::IdentityRules,
    pub record: ImportRecord,
    pub path: PathBuf,
    pub progress: Arc<ImportProgress>,
    /// The import's place (`limits::ImportSlots`), freed when the job ends.
    pub slot: crate::limits::ImportSlot,
}

impl EventImportJob {
    /// Registers the job as running and starts it on its own thread.
    pub fn spawn(self) -> std::io::Result<()> {
        self.jobs
            .insert(self.record.app, self.record.id, self.progress.clone());
        std::thread::Builder::new()
            .name(format!("unico-events-import-{}", self.record.id))
            .spawn(move || self.run())?;
        Ok(())
    }

    fn run(self) {
        let started = Instant::now();
        let EventImportJob {
            store,
            jobs,
            schema,
            auto_register,
            identity,
            record,
            path,
            progress,
            slot: _slot,
        } = self;
        let (app, id) = (record.app, record.id);
        let concluded = Arc::new(Mutex::new(None::<ImportRecord>));
        let written = File::open(&path)
            .map_err(|e| format!("cannot read the uploaded file: {e}"))
            .and_then(|file| {
                let (tx, rx) = mpsc::sync_channel(BATCHES_IN_FLIGHT);
                let mode = record.mode;
                let parser_progress = progress.clone();
                let parser = std::thread::Builder::new()
                    .name(format!("unico-events-import-{id}-parse"))
                    .spawn(move || {
                        parse(file, &schema, auto_register, &identity, mode, tx, &parser_progress)
                    })
                    .map_err(|e| format!("cannot start the parser: {e}"))?;
                let (record, seen) = (record.clone(), concluded.clone());
                let finish: unico_store::ImportFinish = Box::new(move |outcome| {
                    let parsed = match outcome {
                        Ok(_) => parser
                            .join()
                            .map_err(|_| "the NDJSON parser failed unexpectedly".to_owned()),
                        Err(_) => Err(String::new()),
                    };
                    let concluded = conclude(record, outcome, parsed);
                    if let Ok(mut seen) = seen.lock() {
                        *seen = Some(concluded.0.clone());
                    }
                    concluded
                });
                store
                    .run_event_import(
                        app,
                        Box::new(rx.into_iter()),
                        now_ms(),
                        progress.customers_processed.clone(),
                        Some(finish),
                    )
                    .map_err(|e| {
                        tracing::error!(import = id, error = %e, "events import failed in the store");
                        "the import could not be written; nothing was written".to_owned()
                    })
            });
        crate::import_job::end_job(
            store.as_ref(),
            &jobs,
            &progress,
            record,
            &path,
            written.map(|_| ()),
            &concluded,
            started,
            "events",
        );
    }
}

/// The final record: `rows_read` lines, `rows_written` events stored, `created` customers
/// created, `updated` duplicate events, `rows_rejected` invalid lines.
fn conclude(
    mut record: ImportRecord,
    outcome: Result<ImportCounts, &StoreError>,
    parsed: Result<Parsed, String>,
) -> (ImportRecord, Vec<ImportRowError>) {
    record.finished_at = Some(now_ms());
    let counts = match outcome {
        Ok(counts) => counts,
        Err(e) => {
            tracing::error!(import = record.id, error = %e, "events import failed in the store");
            record.state = ImportState::Failed;
            record.message = Some(format!(
                "the import could not be written ({e}); nothing was written"
            ));
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
    record.rows_read = parsed.lines_read;
    record.rows_rejected = parsed.rejected;
    match (counts, parsed.file_error) {
        (_, Some(file_error)) => {
            record.state = ImportState::Failed;
            record.message = Some(format!("{file_error}; nothing was written"));
        }
        (c, None) if c.kept => {
            record.state = ImportState::Succeeded;
            record.created = c.created;
            record.updated = c.updated;
            record.rows_written = parsed.lines_read - parsed.rejected - c.updated;
        }
        (_, None) => {
            record.state = ImportState::Failed;
            record.message = Some(format!(
                "{} invalid line{}; nothing was written (the import is atomic: fix the lines, or import again with mode=skip_invalid to write the valid ones)",
                parsed.rejected,
                if parsed.rejected == 1 { "" } else { "s" }
            ));
        }
    }
    (record, parsed.errors)
}
