//! CSV imports: upload (streamed to disk, never held in memory), progress, history.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use axum::Json;
use axum::body::Body;
use axum::extract::rejection::PathRejection;
use axum::extract::{FromRequest, Multipart, Path, RawQuery, Request, State};
use axum::http::StatusCode;
use futures_util::StreamExt;
use serde::Serialize;
use tokio::io::AsyncWriteExt;
use unico_core::time::format_datetime;
use unico_store::{ImportKind, ImportMode, ImportRecord, ImportRowError, ImportState};
use utoipa::ToSchema;

use super::params::{PathParams, QueryParams};
use super::system::answers;
use crate::auth::Principal;
use crate::error::{ApiError, ErrorBody};
use crate::import_job::{ImportJob, ImportProgress};
use crate::state::{AppState, now_ms};

type PathResult = Result<Path<HashMap<String, String>>, PathRejection>;

/// Largest CSV upload accepted: the file is spooled to disk, so this bounds disk, not memory.
pub const MAX_IMPORT_BYTES: u64 = 16 * 1024 * 1024 * 1024;
/// Imports listed by `GET …/imports`.
pub const IMPORT_HISTORY_LIMIT: usize = 100;

#[derive(Serialize, ToSchema)]
pub struct ImportStarted {
    pub id: i64,
    /// Always `running` when answered.
    pub state: &'static str,
}

#[derive(Serialize, ToSchema)]
pub struct RowErrorOut {
    /// Line of the file where the rejected record starts (1 is the header).
    pub line: u64,
    pub column: String,
    pub value: String,
    pub message: String,
}

impl From<&ImportRowError> for RowErrorOut {
    fn from(e: &ImportRowError) -> Self {
        RowErrorOut {
            line: e.line,
            column: e.column.clone(),
            value: e.value.clone(),
            message: e.message.clone(),
        }
    }
}

/// An import's progress while it runs and its summary once it ended.
#[derive(Serialize, ToSchema)]
pub struct ImportOut {
    pub id: i64,
    /// `running`, `succeeded` or `failed`.
    pub state: &'static str,
    /// `atomic` or `skip_invalid`.
    pub mode: &'static str,
    pub created_at: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<String>,
    /// Upload and import, in milliseconds, once finished.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub duration_ms: Option<i64>,
    pub rows_read: u64,
    /// Rows whose values were committed (0 until the import commits).
    pub rows_written: u64,
    /// Customers written so far in the import's (uncommitted) transaction.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub customers_processed: Option<u64>,
    pub created: u64,
    pub updated: u64,
    pub values_written: u64,
    pub rows_rejected: u64,
    /// The first 1 000 rejected rows; `errors_omitted` counts the rest.
    pub errors: Vec<RowErrorOut>,
    pub errors_omitted: u64,
    /// Why the import failed, when it did.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

fn finished_out(r: &ImportRecord, errors: &[ImportRowError]) -> ImportOut {
    ImportOut {
        id: r.id,
        state: r.state.as_str(),
        mode: r.mode.as_str(),
        created_at: format_datetime(r.created_at),
        finished_at: r.finished_at.map(format_datetime),
        duration_ms: r.finished_at.map(|f| f - r.created_at),
        rows_read: r.rows_read,
        rows_written: r.rows_written,
        customers_processed: None,
        created: r.created,
        updated: r.updated,
        values_written: r.values_written,
        rows_rejected: r.rows_rejected,
        errors: errors.iter().map(RowErrorOut::from).collect(),
        errors_omitted: r.rows_rejected.saturating_sub(errors.len() as u64),
        message: r.message.clone(),
    }
}

fn running_out(r: &ImportRecord, p: &ImportProgress) -> ImportOut {
    let errors: Vec<RowErrorOut> = p
        .errors
        .lock()
        .map(|e| e.iter().map(RowErrorOut::from).collect())
        .unwrap_or_default();
    let rejected = p.rows_rejected.load(Ordering::Relaxed);
    ImportOut {
        id: r.id,
        state: ImportState::Running.as_str(),
        mode: r.mode.as_str(),
        created_at: format_datetime(r.created_at),
        finished_at: None,
        duration_ms: None,
        rows_read: p.rows_read.load(Ordering::Relaxed),
        rows_written: 0,
        customers_processed: Some(p.customers_processed.load(Ordering::Relaxed)),
        created: 0,
        updated: 0,
        values_written: 0,
        rows_rejected: rejected,
        errors_omitted: rejected.saturating_sub(errors.len() as u64),
        errors,
        message: None,
    }
}

/// Upload a CSV file (`Content-Type: text/csv`, the file as the body) and import it in the
/// background. `mode=atomic` (default) writes nothing if any row is invalid;
/// `mode=skip_invalid` writes the valid rows. Answers 202 at once; follow progress with
/// `GET …/imports/{id}`.
#[utoipa::path(post, path = "/v1/apps/{app}/imports", tag = "imports",
    params(("app" = i64, Path), ("mode" = Option<String>, Query, description = "atomic (default) | skip_invalid")),
    request_body(content = String, content_type = "text/csv", description = "the CSV file; a multipart/form-data file part is accepted too"),
    responses(
        (status = 202, description = "the import started; follow it at `GET …/imports/{id}`", body = ImportStarted),
        (status = 400, description = "a query parameter is unknown, repeated, not UTF-8 or invalid (`invalid_parameter`), the body is not CSV or a multipart file (`invalid_content_type`, `invalid_input`), or a path parameter is not UTF-8", body = ErrorBody),
        (status = 403, description = answers::OTHER_APP, body = ErrorBody),
        (status = 404, description = answers::NO_APP, body = ErrorBody),
        (status = 413, description = "the file is larger than an upload may be (`body_too_large`)", body = ErrorBody),
        (status = 429, description = "the application already has its most imports running at once (`too_many_requests`, with `Retry-After`); the server's own bound across applications answers 503", body = ErrorBody),
        (status = 507, description = "the server's disk is nearly full: the upload would leave less free space than the database needs (`insufficient_storage`); nothing was written", body = ErrorBody),
    ))]
pub async fn start_import(
    State(state): State<AppState>,
    principal: Principal,
    path: PathResult,
    query: RawQuery,
    request: Request,
) -> Result<(StatusCode, Json<ImportStarted>), ApiError> {
    let app = PathParams::from(path)?.app()?;
    principal.require_app(app)?;
    let query = QueryParams::from(query, &["mode"])?;
    let started = begin(state, app, &query, request).await?;
    Ok((StatusCode::ACCEPTED, Json(started)))
}

/// Starts an import of the request's file into `app` (callers have checked access).
pub async fn begin(
    state: AppState,
    app: unico_core::AppId,
    query: &QueryParams,
    request: Request,
) -> Result<ImportStarted, ApiError> {
    let mode = parse_mode(query)?;
    // The place is held from the upload's first byte to the import's end.
    let slot = state.import_slots.reserve(app)?;
    let upload = accept_upload(
        request,
        &[
            "text/csv",
            "text/plain",
            "application/csv",
            "application/octet-stream",
        ],
        "the CSV file as the body with Content-Type: text/csv",
    )
    .await?;
    let (schema, mut record) = state
        .blocking(move |s| {
            let schema = s.schema(app)?;
            Ok((schema, s.create_import(app, mode, now_ms())?))
        })
        .await?;
    let path = state
        .spool_dir
        .join(format!("unico-import-{}-{}.csv", record.app, record.id));
    spool_or_record(&state, upload, &path, &mut record).await?;
    let id = record.id;
    ImportJob {
        store: state.store.clone(),
        jobs: state.imports.clone(),
        schema,
        record,
        path,
        progress: Arc::new(ImportProgress::default()),
        slot,
    }
    .spawn()
    .map_err(|e| ApiError::Internal(format!("cannot start the import: {e}")))?;
    Ok(ImportStarted {
        id,
        state: "running",
    })
}

/// Upload an NDJSON file of events (one `POST …/events` item per line, the shape of an
/// export from another system) and import it in the background. `mode=atomic` (default)
/// writes nothing if any line is invalid; `mode=skip_invalid` writes the valid lines.
/// Answers 202 at once; follow progress with `GET …/events/imports/{id}`.
#[utoipa::path(post, path = "/v1/apps/{app}/events/imports", tag = "events",
    params(("app" = i64, Path), ("mode" = Option<String>, Query, description = "atomic (default) | skip_invalid")),
    request_body(content = String, content_type = "application/x-ndjson", description = "the NDJSON file; a multipart/form-data file part is accepted too"),
    responses(
        (status = 202, description = "the import started; follow it at `GET …/events/imports/{id}`", body = ImportStarted),
        (status = 400, description = "a query parameter is unknown, repeated, not UTF-8 or invalid (`invalid_parameter`), the body is not NDJSON or a multipart file (`invalid_content_type`, `invalid_input`), or a path parameter is not UTF-8", body = ErrorBody),
        (status = 403, description = answers::OTHER_APP, body = ErrorBody),
        (status = 404, description = answers::NO_APP, body = ErrorBody),
        (status = 413, description = "the file is larger than an upload may be (`body_too_large`)", body = ErrorBody),
        (status = 429, description = "the application already has its most imports running at once (`too_many_requests`, with `Retry-After`); the server's own bound across applications answers 503", body = ErrorBody),
        (status = 507, description = "the server's disk is nearly full: the upload would leave less free space than the database needs (`insufficient_storage`); nothing was written", body = ErrorBody),
    ))]
pub async fn start_event_import(
    State(state): State<AppState>,
    principal: Principal,
    path: PathResult,
    query: RawQuery,
    request: Request,
) -> Result<(StatusCode, Json<ImportStarted>), ApiError> {
    let app = PathParams::from(path)?.app()?;
    principal.require_app(app)?;
    let query = QueryParams::from(query, &["mode"])?;
    let mode = parse_mode(&query)?;
    let slot = state.import_slots.reserve(app)?;
    let upload = accept_upload(
        request,
        &[
            "application/x-ndjson",
            "application/jsonl",
            "application/json",
            "text/plain",
            "application/octet-stream",
        ],
        "the NDJSON file as the body with Content-Type: application/x-ndjson",
    )
    .await?;
    let (schema, auto_register, identity, mut record) = state
        .blocking(move |s| {
            let schema = s.schema(app)?;
            let auto = s.get_meta(&unico_store::events::auto_register_key(app))?;
            Ok((
                schema,
                auto.as_deref() == Some("true"),
                crate::identity::IdentityRules::of(s, app)?,
                s.create_event_import(app, mode, now_ms())?,
            ))
        })
        .await?;
    let path = state.spool_dir.join(format!(
        "unico-events-import-{}-{}.ndjson",
        record.app, record.id
    ));
    spool_or_record(&state, upload, &path, &mut record).await?;
    let id = record.id;
    crate::event_import::EventImportJob {
        store: state.store.clone(),
        jobs: state.imports.clone(),
        schema,
        auto_register,
        identity,
        record,
        path,
        progress: Arc::new(ImportProgress::default()),
        slot,
        prepare: state.store.takes_event_sinks() && state.engines.wants_prepared_events(app),
    }
    .spawn()
    .map_err(|e| ApiError::Internal(format!("cannot start the import: {e}")))?;
    Ok((
        StatusCode::ACCEPTED,
        Json(ImportStarted {
            id,
            state: "running",
        }),
    ))
}

/// An events import's progress or summary.
#[derive(Serialize, ToSchema)]
pub struct EventImportOut {
    pub id: i64,
    /// `running`, `succeeded` or `failed`.
    pub state: &'static str,
    /// `atomic` or `skip_invalid`.
    pub mode: &'static str,
    pub created_at: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub duration_ms: Option<i64>,
    /// Lines holding an event (blank lines are skipped).
    pub lines_read: u64,
    /// Events handed to the store so far, in the import's uncommitted transaction.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub events_processed: Option<u64>,
    /// Events stored (0 until the import commits).
    pub events_stored: u64,
    /// Events whose `event_id` was already stored: not stored again.
    pub duplicates: u64,
    /// Customers the events created.
    pub customers_created: u64,
    pub lines_rejected: u64,
    /// The first 1 000 rejected lines (`line`, the key at fault as `column`, its value and
    /// why); `errors_omitted` counts the rest.
    pub errors: Vec<RowErrorOut>,
    pub errors_omitted: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

/// An events import's progress (while `running`) or summary, with the rejected lines.
#[utoipa::path(get, path = "/v1/apps/{app}/events/imports/{id}", tag = "events", params(("app" = i64, Path), ("id" = i64, Path)),
    responses(
        (status = 200, description = "the import's progress or summary", body = EventImportOut),
        (status = 400, description = answers::BAD_PATH, body = ErrorBody),
        (status = 403, description = answers::OTHER_APP, body = ErrorBody),
        (status = 404, description = "no such application or events import (`not_found`)", body = ErrorBody),
    ))]
pub async fn get_event_import(
    State(state): State<AppState>,
    principal: Principal,
    path: PathResult,
) -> Result<Json<EventImportOut>, ApiError> {
    let params = PathParams::from(path)?;
    let (app, id) = (params.app()?, params.import_id()?);
    principal.require_app(app)?;
    event_report(&state, app, id).await.map(Json)
}

/// An events import's progress or summary (callers have checked access).
pub async fn event_report(
    state: &AppState,
    app: unico_core::AppId,
    id: i64,
) -> Result<EventImportOut, ApiError> {
    let progress = state.imports.get(app, id);
    let (r, errors) = state.blocking(move |s| s.get_import(app, id)).await?;
    if r.kind != ImportKind::Events {
        return Err(ApiError::NotFound(format!("events import {id} not found")));
    }
    Ok(match progress {
        Some(p) if r.state == ImportState::Running => {
            let errors: Vec<RowErrorOut> = p
                .errors
                .lock()
                .map(|e| e.iter().map(RowErrorOut::from).collect())
                .unwrap_or_default();
            let rejected = p.rows_rejected.load(Ordering::Relaxed);
            EventImportOut {
                id: r.id,
                state: ImportState::Running.as_str(),
                mode: r.mode.as_str(),
                created_at: format_datetime(r.created_at),
                finished_at: None,
                duration_ms: None,
                lines_read: p.rows_read.load(Ordering::Relaxed),
                events_processed: Some(p.customers_processed.load(Ordering::Relaxed)),
                events_stored: 0,
                duplicates: 0,
                customers_created: 0,
                lines_rejected: rejected,
                errors_omitted: rejected.saturating_sub(errors.len() as u64),
                errors,
                message: None,
            }
        }
        _ => EventImportOut {
            id: r.id,
            state: r.state.as_str(),
            mode: r.mode.as_str(),
            created_at: format_datetime(r.created_at),
            finished_at: r.finished_at.map(format_datetime),
            duration_ms: r.finished_at.map(|f| f - r.created_at),
            lines_read: r.rows_read,
            events_processed: None,
            events_stored: r.rows_written,
            duplicates: r.updated,
            customers_created: r.created,
            lines_rejected: r.rows_rejected,
            errors: errors.iter().map(RowErrorOut::from).collect(),
            errors_omitted: r.rows_rejected.saturating_sub(errors.len() as u64),
            message: r.message.clone(),
        },
    })
}

fn parse_mode(query: &QueryParams) -> Result<ImportMode, ApiError> {
    match query.get("mode") {
        None => Ok(ImportMode::Atomic),
        Some(m) => ImportMode::parse(m).ok_or_else(|| {
            ApiError::InvalidParameter(format!(
                "mode must be atomic or skip_invalid, got \"{}\"",
                unico_core::value::excerpt(m)
            ))
        }),
    }
}

/// The request's file: its body when its media type is one of `raw`, or the file part of a
/// multipart form; any other type is refused with `expected` said.
async fn accept_upload(request: Request, raw: &[&str], expected: &str) -> Result<Upload, ApiError> {
    let content_type = crate::extract::ContentType::of(request.headers());
    let mime = content_type.mime.as_str();
    if raw.contains(&mime) {
        return Ok(Upload::Raw(request.into_body()));
    }
    if mime == "multipart/form-data" {
        return Ok(Upload::Multipart(
            Multipart::from_request(request, &())
                .await
                .map_err(|e| ApiError::InvalidInput {
                    message: format!("invalid multipart body: {}", e.body_text()),
                    details: Vec::new(),
                })?,
        ));
    }
    Err(ApiError::InvalidContentType(format!(
        "send {expected} (or as a multipart/form-data file), got {}",
        content_type.described()
    )))
}

/// Spools the upload to `path`; if that fails, the import's record says why (nothing was
/// written) and the error is answered.
async fn spool_or_record(
    state: &AppState,
    upload: Upload,
    path: &std::path::Path,
    record: &mut ImportRecord,
) -> Result<(), ApiError> {
    let disk = DiskGuard {
        dir: state.spool_dir.clone(),
        reserve: state.spool_reserve_bytes,
    };
    let Err(e) = spool(upload, path, disk).await else {
        return Ok(());
    };
    let _ = tokio::fs::remove_file(path).await;
    record.state = ImportState::Failed;
    record.finished_at = Some(now_ms());
    record.message = Some(format!("{e}; nothing was written"));
    let failed = record.clone();
    state
        .blocking(move |s| s.finish_import(&failed, &[]))
        .await?;
    Err(e)
}

/// The uploaded file: the raw body, or the file part of a multipart form.
enum Upload {
    Raw(Body),
    Multipart(Multipart),
}

/// Refuses to spool past the disk's reserve of free space
/// ([`crate::limits::SPOOL_MIN_FREE_BYTES`]).
struct DiskGuard {
    dir: std::path::PathBuf,
    reserve: u64,
}

impl DiskGuard {
    /// Whether `coming` more bytes still leave the reserve free. A disk whose space
    /// cannot be read is not refused (the write itself then says what is wrong).
    fn check(&self, coming: u64) -> Result<(), ApiError> {
        let Some((free, _)) = super::system::disk_space(&self.dir) else {
            return Ok(());
        };
        if free >= self.reserve.saturating_add(coming) {
            return Ok(());
        }
        Err(ApiError::InsufficientStorage(format!(
            "the server's disk has {} MiB free, and an upload must leave {} MiB for the database; nothing was written: free disk space (or move the data directory to a larger disk) and upload again",
            free >> 20,
            self.reserve >> 20
        )))
    }
}

/// Appends chunks to the spool file, bounded by [`MAX_IMPORT_BYTES`] and by the disk's
/// reserve, looked at every [`crate::limits::SPOOL_DISK_CHECK_BYTES`].
struct Spool {
    /// Buffered: each write to a `tokio::fs::File` is a hop to a blocking thread, and the
    /// body arrives in chunks of a few KiB.
    file: tokio::io::BufWriter<tokio::fs::File>,
    total: u64,
    disk: DiskGuard,
    /// `total` at which the disk is looked at next.
    next_check: u64,
}

impl Spool {
    async fn write(&mut self, chunk: &[u8]) -> Result<(), ApiError> {
        self.total += chunk.len() as u64;
        if self.total > MAX_IMPORT_BYTES {
            return Err(ApiError::BodyTooLarge(format!(
                "a CSV upload holds at most {MAX_IMPORT_BYTES} bytes"
            )));
        }
        if self.total >= self.next_check {
            // Room for what was written and is still buffered, and the next stretch.
            self.disk.check(crate::limits::SPOOL_DISK_CHECK_BYTES)?;
            self.next_check = self.total + crate::limits::SPOOL_DISK_CHECK_BYTES;
        }
        self.file
            .write_all(chunk)
            .await
            .map_err(|e| ApiError::Internal(format!("cannot spool the upload: {e}")))
    }
}

fn interrupted(e: impl std::fmt::Display) -> ApiError {
    ApiError::InvalidInput {
        message: format!("the upload was interrupted: {e}"),
        details: Vec::new(),
    }
}

/// Bytes of an upload gathered before each write to the spool file.
const SPOOL_BUFFER_BYTES: usize = 1 << 20;

/// Streams the upload to `path`, chunk by chunk.
async fn spool(upload: Upload, path: &std::path::Path, disk: DiskGuard) -> Result<(), ApiError> {
    disk.check(0)?;
    let file = tokio::fs::File::create(path)
        .await
        .map_err(|e| ApiError::Internal(format!("cannot spool the upload: {e}")))?;
    let mut spool = Spool {
        file: tokio::io::BufWriter::with_capacity(SPOOL_BUFFER_BYTES, file),
        total: 0,
        disk,
        next_check: crate::limits::SPOOL_DISK_CHECK_BYTES,
    };
    match upload {
        Upload::Raw(body) => {
            let mut body = body.into_data_stream();
            while let Some(chunk) = body.next().await {
                spool.write(&chunk.map_err(interrupted)?).await?;
            }
        }
        Upload::Multipart(mut form) => {
            // The first part with a file name (or named "file") is the CSV file.
            let mut found = false;
            while let Some(mut field) = form.next_field().await.map_err(interrupted)? {
                if field.file_name().is_none() && field.name() != Some("file") {
                    continue;
                }
                while let Some(chunk) = field.chunk().await.map_err(interrupted)? {
                    spool.write(&chunk).await?;
                }
                found = true;
                break;
            }
            if !found {
                return Err(ApiError::invalid(
                    "file",
                    "the multipart form has no file part; send the CSV as a part named \"file\"",
                ));
            }
        }
    }
    spool
        .file
        .flush()
        .await
        .map_err(|e| ApiError::Internal(format!("cannot spool the upload: {e}")))?;
    Ok(())
}

/// An import's progress (while `running`) or summary, with the rejected rows.
#[utoipa::path(get, path = "/v1/apps/{app}/imports/{id}", tag = "imports", params(("app" = i64, Path), ("id" = i64, Path)),
    responses(
        (status = 200, description = "the import's progress or summary", body = ImportOut),
        (status = 400, description = answers::BAD_PATH, body = ErrorBody),
        (status = 403, description = answers::OTHER_APP, body = ErrorBody),
        (status = 404, description = "no such application or import (`not_found`)", body = ErrorBody),
    ))]
pub async fn get_import(
    State(state): State<AppState>,
    principal: Principal,
    path: PathResult,
) -> Result<Json<ImportOut>, ApiError> {
    let params = PathParams::from(path)?;
    let (app, id) = (params.app()?, params.import_id()?);
    principal.require_app(app)?;
    report(&state, app, id).await.map(Json)
}

/// An import's progress or summary (callers have checked access).
pub async fn report(
    state: &AppState,
    app: unico_core::AppId,
    id: i64,
) -> Result<ImportOut, ApiError> {
    let progress = state.imports.get(app, id);
    let (record, errors) = state.blocking(move |s| s.get_import(app, id)).await?;
    if record.kind != ImportKind::Customers {
        return Err(ApiError::NotFound(format!(
            "import {id} not found (it imports events: see GET …/events/imports/{id})"
        )));
    }
    match progress {
        Some(p) if record.state == ImportState::Running => Ok(running_out(&record, &p)),
        _ => Ok(finished_out(&record, &errors)),
    }
}

#[derive(Serialize, ToSchema)]
pub struct ImportList {
    pub imports: Vec<ImportOut>,
}

/// The application's imports, newest first (the last 100), without their error rows.
#[utoipa::path(get, path = "/v1/apps/{app}/imports", tag = "imports", params(("app" = i64, Path)),
    responses(
        (status = 200, description = "the latest imports, newest first", body = ImportList),
        (status = 400, description = answers::BAD_PATH, body = ErrorBody),
        (status = 403, description = answers::OTHER_APP, body = ErrorBody),
        (status = 404, description = answers::NO_APP, body = ErrorBody),
    ))]
pub async fn list_imports(
    State(state): State<AppState>,
    principal: Principal,
    path: PathResult,
) -> Result<Json<ImportList>, ApiError> {
    let app = PathParams::from(path)?.app()?;
    principal.require_app(app)?;
    let records = state
        .blocking(move |s| s.list_imports(app, IMPORT_HISTORY_LIMIT))
        .await?;
    let imports = records
        .iter()
        .filter(|r| r.kind == ImportKind::Customers)
        .map(|r| match state.imports.get(app, r.id) {
            Some(p) if r.state == ImportState::Running => running_out(r, &p),
            _ => finished_out(r, &[]),
        })
        .collect();
    Ok(Json(ImportList { imports }))
}
