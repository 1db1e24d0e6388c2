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
use std::io::{BufRead, BufReader, Read};
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
    names: &mut unico_core::EventNames,
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
    let event = match crate::routes::events::plain_event(text, now, names) {
        Some(event) => event,
        None => read_item(text, line, now, identity)?,
    };
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

/// Reads a line that is not in the plain shape: through a JSON tree, with positioned
/// errors.
fn read_item(
    text: &str,
    line: u64,
    now: i64,
    identity: &crate::identity::IdentityRules,
) -> Result<NewEvent, ImportRowError> {
    let row_error = |column: &str, value: String, message: String| ImportRowError {
        line,
        column: column.to_owned(),
        value,
        message,
    };
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
    Ok(event)
}

/// Reads one line (through its `\n`, or to the end of the input) into `buf`, keeping at
/// most `MAX_LINE_BYTES + 1` bytes of it: a longer line is read through and dropped
/// beyond that, so one endless line costs a bounded buffer, not its own size. `Ok(false)`
/// at the end of the input.
fn read_line(reader: &mut impl BufRead, buf: &mut Vec<u8>) -> std::io::Result<bool> {
    buf.clear();
    let mut any = false;
    loop {
        let available = match reader.fill_buf() {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        if available.is_empty() {
            return Ok(any);
        }
        any = true;
        let (taken, ended) = match memchr::memchr(b'\n', available) {
            Some(i) => (i + 1, true),
            None => (available.len(), false),
        };
        let room = (MAX_LINE_BYTES + 1).saturating_sub(buf.len());
        buf.extend_from_slice(&available[..taken.min(room)]);
        reader.consume(taken);
        if ended {
            return Ok(true);
        }
    }
}

/// Reads the file and sends its batches, then the verdict.
fn parse(
    file: impl Read,
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
    let mut names = unico_core::EventNames::default();
    // Checks one line and sends the batch once full; false once the writer gave up.
    let mut take = |text: &[u8], parsed: &mut Parsed| -> bool {
        line += 1;
        match check_line(text, line, schema, auto_register, identity, now, &mut names) {
            Ok(None) => return true,
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
        if batch.len() < BATCH_EVENTS {
            return true;
        }
        // Each batch shares codes and channels of its own: the threads that drop a batch
        // long after it was read never touch the counts this thread is raising.
        names = unico_core::EventNames::default();
        // The writer gone (a storage failure): nothing more to do.
        tx.send(EventBatch::Items(std::mem::replace(
            &mut batch,
            Vec::with_capacity(BATCH_EVENTS),
        )))
        .is_ok()
    };
    loop {
        // A line wholly in the reader's buffer is read where it lies; one that runs past
        // it (or is longer than the buffer) is gathered into `buf`.
        let whole = match reader.fill_buf() {
            Ok([]) => break,
            Ok(available) => memchr::memchr(b'\n', available).map(|i| {
                let go_on = take(&available[..=i], &mut parsed);
                (i + 1, go_on)
            }),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => {
                parsed.file_error = Some(format!("the file could not be read: {e}"));
                break;
            }
        };
        let go_on = match whole {
            Some((used, go_on)) => {
                reader.consume(used);
                go_on
            }
            None => match read_line(&mut reader, &mut buf) {
                Ok(false) => break,
                Ok(true) => take(&buf, &mut parsed),
                Err(e) => {
                    parsed.file_error = Some(format!("the file could not be read: {e}"));
                    break;
                }
            },
        };
        if !go_on {
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
    /// Prepare the segment engine's tables while writing ([`crate::prepare`]).
    pub prepare: bool,
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
            prepare,
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
                        prepare
                            .then(|| crate::prepare::Preparer::start(id))
                            .flatten()
                            .map(|p| Box::new(p) as Box<dyn unico_store::EventSink>),
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

/// Fuzzing on stable: the NDJSON reader fed arbitrary bytes and lines built from the
/// format's hard parts. `UNICO_FUZZ_CASES=N` sets the cases (default 2 000).
#[cfg(test)]
mod fuzz {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use proptest::prelude::*;
    use unico_core::{EventCode, EventType, EventTypes, PropertyType};

    fn config() -> ProptestConfig {
        let cases = std::env::var("UNICO_FUZZ_CASES")
            .ok()
            .map(|v| v.parse().expect("UNICO_FUZZ_CASES must be a number"))
            .unwrap_or(2_000);
        ProptestConfig {
            cases,
            max_shrink_iters: 10_000,
            ..ProptestConfig::default()
        }
    }

    fn schema() -> Schema {
        let types = [("purchase", true), ("view", true), ("old", false)]
            .iter()
            .map(|(code, enabled)| EventType {
                code: EventCode::parse(code).unwrap(),
                name: (*code).to_owned(),
                retention_days: 365,
                enabled: *enabled,
                properties: [("amount".to_owned(), PropertyType::Number)]
                    .into_iter()
                    .collect(),
                created_at: 0,
            })
            .collect();
        Schema::new(Vec::new()).with_event_types(EventTypes::new(types))
    }

    fn rules() -> crate::identity::IdentityRules {
        crate::identity::IdentityRules {
            kinds: unico_core::identity::identity_kinds(&[]),
            anonymous_profiles: true,
        }
    }

    /// Hands out one byte per read, to cross every buffer boundary.
    struct OneByte<'a>(&'a [u8]);

    impl Read for OneByte<'_> {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            match (self.0.split_first(), buf.first_mut()) {
                (Some((&b, rest)), Some(slot)) => {
                    *slot = b;
                    self.0 = rest;
                    Ok(1)
                }
                _ => Ok(0),
            }
        }
    }

    /// What a parse gave: lines read, rejected, the errors, the events sent and whether
    /// the end said to keep them.
    type Outcome = (u64, u64, Vec<ImportRowError>, usize, bool);

    fn run(input: impl Read, mode: ImportMode) -> Outcome {
        let (tx, rx) = mpsc::sync_channel(1024);
        let progress = ImportProgress::default();
        let parsed = parse(input, &schema(), false, &rules(), mode, tx, &progress);
        let mut events = 0;
        let mut end = None;
        for batch in rx {
            assert!(end.is_none(), "a batch after the end");
            match batch {
                EventBatch::Items(items) => events += items.len(),
                EventBatch::End { keep } => end = Some(keep),
            }
        }
        let keep = end.expect("the parser always ends with End");
        assert!(parsed.file_error.is_none());
        (
            parsed.lines_read,
            parsed.rejected,
            parsed.errors,
            events,
            keep,
        )
    }

    fn check(bytes: &[u8]) {
        same_reading(bytes);
        let (lines, rejected, errors, events, keep) = run(bytes, ImportMode::SkipInvalid);
        assert_eq!(
            events as u64 + rejected,
            lines,
            "every line is an event or an error"
        );
        assert!(keep);
        assert_eq!(
            errors.len() as u64,
            rejected.min(MAX_REPORTED_ERRORS as u64)
        );
        let physical = bytes.split(|&b| b == b'\n').count() as u64;
        assert!(lines <= physical);
        assert!(errors.windows(2).all(|w| w[0].line < w[1].line));
        assert!(errors.iter().all(|e| (1..=physical).contains(&e.line)));
        // Read a byte at a time, the same lines and errors.
        let slow = run(OneByte(bytes), ImportMode::SkipInvalid);
        assert_eq!(
            (slow.0, slow.1, &slow.2, slow.3),
            (lines, rejected, &errors, events)
        );
        // Atomic: the same verdicts, and nothing kept after an invalid line.
        let atomic = run(bytes, ImportMode::Atomic);
        assert_eq!((atomic.0, atomic.1), (lines, rejected));
        assert_eq!(atomic.4, rejected == 0);
    }

    /// A line the plain reader accepts reads as the JSON tree's reader reads it.
    fn same_reading(bytes: &[u8]) {
        let now = 1_800_000_000_000;
        let mut names = unico_core::EventNames::default();
        for line in bytes.split(|&b| b == b'\n') {
            let Ok(text) = std::str::from_utf8(line) else {
                continue;
            };
            let text = text.trim();
            if let Some(plain) = crate::routes::events::plain_event(text, now, &mut names) {
                let tree: serde_json::Value = serde_json::from_str(text).unwrap();
                let read = crate::routes::events::event_input(&tree, now, "", &rules()).unwrap();
                assert_eq!(plain, read, "{text}");
                assert_eq!(
                    plain.properties.to_json_text(),
                    read.properties.to_json_text()
                );
            }
        }
    }

    #[test]
    fn the_plain_reader_reads_the_usual_lines_as_the_tree_does() {
        let mut names = unico_core::EventNames::default();
        for line in PLAIN {
            assert!(
                crate::routes::events::plain_event(line, 1_800_000_000_000, &mut names).is_some(),
                "{line}"
            );
        }
        same_reading(PLAIN.join("\n").as_bytes());
        same_reading(LINES.join("\n").as_bytes());
    }

    /// Lines in the shape the plain reader takes.
    const PLAIN: &[&str] = &[
        r#"{"event_id":"e\u0031","customerId":"c\"q","type":"purchase","channel":"WEB","device_id":"d1","timestamp":"2026-11-30T18:02:00Z","properties":{"amount":59.90,"b":[1,{"c":null}],"a":1}}"#,
        r#"{"event_id":null,"customerId":"ana","type":"view","channel":"web","timestamp":null,"properties":null,"device_id":null}"#,
        r#"{"customerId":"ana","type":"view","channel":"web","timestamp":"2026-11-30"}"#,
        r#"{"customerId":"ana","type":"view","channel":"Web","timestamp":"2026-11-30T18:02:00.5+01:00"}"#,
        r#"{"customerId":"ana","type":"unknown","channel":"web","properties":{}}"#,
    ];

    const LINES: &[&str] = &[
        // A repeated property key is left to the tree.
        r#"{"customerId":"ana","type":"view","channel":"web","properties":{"a":1,"a":2}}"#,
        r#"{"customerId": "ana", "type": "purchase", "channel": "pos", "properties": {"amount": 3}}"#,
        r#"{"customerId": "ana", "type": "view", "channel": "web", "event_id": "e1"}"#,
        r#"{"customerId": "bob", "type": "purchase", "channel": "web", "timestamp": "2026-11-30T18:02:00+01:00"}"#,
        r#"{"customerId": "bob", "type": "purchase", "channel": "app", "timestamp": 1764000000000}"#,
        r#"{"identity": {"kind": "email", "value": "A@B.com"}, "type": "view", "channel": "web"}"#,
        r#"{"identity": {"kind": "passport", "value": "x"}, "type": "view"}"#,
        r#"{"customerId": "ana", "type": "old", "channel": "web"}"#,
        r#"{"customerId": "ana", "type": "unknown"}"#,
        r#"{"customerId": "", "type": "view"}"#,
        r#"{"customerId": "ana", "type": "purchase", "channel": "web", "properties": {"amount": "x"}}"#,
        r#"{"customerId": "ana", "type": "view", "properties": {"a": {"b": {"c": {"d": {"e": {"f": 1}}}}}}}"#,
        r#"{"customerId": "ana", "type": "view", "timestamp": "1999-01-01T00:00:00Z"}"#,
        r#"{"customerId": "ana", "type": "view", "timestamp": 1e300}"#,
        r#"{"customerId": "ana", "customerId": "bob", "type": "view"}"#,
        r#"{"customerId": "ana", "type": "view", "channel": "web", "identity": null}"#,
        r#"{"customerId": "ana", "type": "view", "channel": "web", "timestamp": "2099-01-01T00:00:00Z"}"#,
        r#"{"customerId": "ana", "type": "view", "channel": "web", "properties": [1]}"#,
        r#"{"customerId": "ana", "type": "view", "channel": "web", "device_id": ""}"#,
        r#"{"customerId": "ana", "type": "View", "channel": "w b"}"#,
        r#"["not", "an", "object"]"#,
        r#"{"customerId": "ana""#,
        "null",
        "",
        "   ",
        "\u{feff}",
        "\u{a0}",
        "{\"customerId\": \"\u{0}\", \"type\": \"view\"}",
    ];

    fn ndjson_like() -> impl Strategy<Value = Vec<u8>> {
        (
            prop::collection::vec(
                (
                    prop::sample::select(LINES),
                    prop::sample::select(&["\n", "\r\n", "", "\n\n"][..]),
                ),
                0..12,
            ),
            prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 0..3),
        )
            .prop_map(|(lines, flips)| {
                let mut bytes: Vec<u8> = lines
                    .into_iter()
                    .flat_map(|(l, end)| format!("{l}{end}").into_bytes())
                    .collect();
                for (at, byte) in flips {
                    if !bytes.is_empty() {
                        let i = at.index(bytes.len());
                        bytes[i] = byte;
                    }
                }
                bytes
            })
    }

    proptest! {
        #![proptest_config(config())]

        #[test]
        fn the_reader_never_panics_on_arbitrary_bytes(bytes in prop::collection::vec(any::<u8>(), 0..800)) {
            check(&bytes);
        }

        #[test]
        fn the_reader_never_panics_on_ndjson_like_files(bytes in ndjson_like()) {
            check(&bytes);
        }
    }

    /// A line longer than the limit was read whole into memory before it was refused, so
    /// a file of one endless line held all of itself (up to the 16 GiB upload bound); it
    /// is now read through with at most `MAX_LINE_BYTES + 1` bytes kept.
    #[test]
    fn an_endless_line_is_refused_without_being_held_in_memory() {
        let mut bytes = vec![b'x'; 3 * MAX_LINE_BYTES];
        bytes.extend_from_slice(b"\n");
        bytes.extend_from_slice(LINES[0].as_bytes());
        let mut reader = BufReader::with_capacity(1 << 16, &bytes[..]);
        let mut buf = Vec::new();
        assert!(read_line(&mut reader, &mut buf).unwrap());
        assert_eq!(buf.len(), MAX_LINE_BYTES + 1);
        assert!(
            buf.capacity() <= 2 * (MAX_LINE_BYTES + 1),
            "{}",
            buf.capacity()
        );
        assert!(read_line(&mut reader, &mut buf).unwrap());
        assert_eq!(buf, LINES[0].as_bytes());
        assert!(!read_line(&mut reader, &mut buf).unwrap());

        let (lines, rejected, errors, events, _) = run(&bytes[..], ImportMode::SkipInvalid);
        assert_eq!((lines, rejected, events), (2, 1, 1), "{errors:?}");
        assert_eq!(errors[0].line, 1);
        assert!(errors[0].message.contains("longer than"), "{:?}", errors[0]);
    }
}
