//! CSV export: every customer of an application, streamed as it is read.

use std::collections::HashMap;
use std::io::Write;

use axum::body::{Body, Bytes};
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, RawQuery, State};
use axum::http::header::{CONTENT_DISPOSITION, CONTENT_TYPE};
use axum::response::{IntoResponse, Response};
use tokio::sync::mpsc;
use unico_csv::{ExportOptions, ExportShape, Exporter};

use super::params::{PathParams, QueryParams};
use super::system::answers;
use crate::auth::Principal;
use crate::error::{ApiError, ErrorBody};
use crate::state::AppState;

type PathResult = Result<Path<HashMap<String, String>>, PathRejection>;

/// Bytes sent to the client at a time.
const CHUNK_BYTES: usize = 64 * 1024;
/// Customers fetched per store call when exporting a filter's members.
const EXPORT_FETCH_IDS: usize = 1000;
/// Chunks buffered between the store scan and the socket.
const CHUNKS_IN_FLIGHT: usize = 8;

/// A `Write` that hands full chunks to the response stream, blocking when the client is
/// slower than the scan (so memory stays bounded).
struct ChannelWriter {
    buf: Vec<u8>,
    tx: mpsc::Sender<Result<Bytes, std::io::Error>>,
}

impl ChannelWriter {
    fn send(&mut self) -> std::io::Result<()> {
        let chunk = std::mem::replace(&mut self.buf, Vec::with_capacity(CHUNK_BYTES));
        self.tx.blocking_send(Ok(Bytes::from(chunk))).map_err(|_| {
            std::io::Error::new(std::io::ErrorKind::BrokenPipe, "the client went away")
        })
    }
}

impl Write for ChannelWriter {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        self.buf.extend_from_slice(data);
        if self.buf.len() >= CHUNK_BYTES {
            self.send()?;
        }
        Ok(data.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        if !self.buf.is_empty() {
            self.send()?;
        }
        Ok(())
    }
}

fn parse_bool(name: &str, value: Option<&str>) -> Result<bool, ApiError> {
    match value {
        None | Some("false") | Some("0") => Ok(false),
        Some("true") | Some("1") => Ok(true),
        Some(other) => Err(ApiError::InvalidParameter(format!(
            "{name} must be true or false, got \"{}\"",
            unico_core::value::excerpt(other)
        ))),
    }
}

/// Export customers (all, a filter's or a segment's members, in customerId order for
/// members) as CSV: `format=long` (default; `customerId,fieldName,fieldValue`) or
/// `wide` (one column per field). Text cells a spreadsheet would run as a formula are
/// prefixed with `'` unless `raw=true`. Computed fields are exported with their values
/// now, unless `computed=false`; a raw export without them imports back unchanged.
#[utoipa::path(get, path = "/v1/apps/{app}/export", tag = "imports",
    params(("app" = i64, Path), ("format" = Option<String>, Query, description = "long (default) | wide"),
        ("raw" = Option<bool>, Query, description = "true: no formula neutralisation"),
        ("computed" = Option<bool>, Query, description = "false: leave computed fields out (default true)"),
        ("excel" = Option<bool>, Query, description = "true: for spreadsheets set to a European locale (a UTF-8 byte order mark, `;` between cells)"),
        ("filter" = Option<String>, Query, description = "export only this filter's members (text form)"),
        ("segment" = Option<i64>, Query, description = "export only this saved segment's members")),
    responses(
        (status = 200, description = "the CSV file, streamed", content_type = "text/csv", body = String),
        (status = 400, description = "a query parameter is unknown, repeated, not UTF-8 or invalid (`invalid_parameter`), the filter does not parse or fit the fields (`filter_…`), or a path parameter is not UTF-8", body = ErrorBody),
        (status = 403, description = answers::OTHER_APP, body = ErrorBody),
        (status = 404, description = "no such application, or no such segment in `segment` (`not_found`)", body = ErrorBody),
    ))]
pub async fn export(
    State(state): State<AppState>,
    principal: Principal,
    path: PathResult,
    query: RawQuery,
) -> Result<Response, ApiError> {
    let app = PathParams::from(path)?.app()?;
    principal.require_app(app)?;
    let query = QueryParams::from(
        query,
        &["format", "raw", "computed", "excel", "filter", "segment"],
    )?;
    stream(state, app, &query).await
}

/// The CSV export of `app` as a streamed response (callers have checked access).
pub async fn stream(
    state: AppState,
    app: unico_core::AppId,
    query: &QueryParams,
) -> Result<Response, ApiError> {
    let shape = match query.get("format") {
        None | Some("long") => ExportShape::Long,
        Some("wide") => ExportShape::Wide,
        Some(other) => {
            return Err(ApiError::InvalidParameter(format!(
                "format must be long or wide, got \"{}\"",
                unico_core::value::excerpt(other)
            )));
        }
    };
    let raw = parse_bool("raw", query.get("raw"))?;
    let excel = parse_bool("excel", query.get("excel"))?;
    let with_computed = match query.get("computed") {
        None => true,
        value => parse_bool("computed", value)?,
    };
    let filter_text = query.get("filter").map(str::to_owned);
    let segment = query
        .get("segment")
        .map(|s| {
            s.parse::<i64>().map_err(|_| {
                ApiError::NotFound(format!(
                    "segment \"{}\" not found",
                    unico_core::value::excerpt(s)
                ))
            })
        })
        .transpose()?;
    let st = state.clone();
    let filtered = filter_text.is_some();
    // Members are decided (and a bad filter refused) before the first byte is sent.
    let ((schema, members, computed), file_name) = state
        .blocking_api(move |s| {
            let name = file_name(
                s.get_app(app)?.name.as_str(),
                match segment {
                    Some(id) if !filtered => Some(s.get_segment(app, id)?.name),
                    _ => None,
                },
                filtered,
                crate::state::now_ms(),
            );
            let schema = s.schema(app)?;
            let filter = match (&filter_text, segment) {
                (Some(text), _) => Some(super::segments::parse_filter_text(text, &schema)?),
                (None, Some(id)) => Some(super::segments::segment_filter(s, app, id, &schema)?),
                (None, None) => None,
            };
            let members = match filter {
                Some(filter) => Some(super::segments::all_members(&st, app, &filter)?),
                None => None,
            };
            if !with_computed {
                let stored = schema.fields().iter().filter(|f| !f.is_computed()).cloned();
                let schema = unico_core::Schema::new(stored.collect())
                    .with_event_types(schema.event_types().clone());
                return Ok(((schema, members, None), name));
            }
            let computed = crate::computed::Values::now(&st.engines, app, &schema)?;
            Ok(((schema, members, computed), name))
        })
        .await?;
    let (tx, mut rx) = mpsc::channel(CHUNKS_IN_FLIGHT);
    let store = state.store.clone();
    tokio::task::spawn_blocking(move || {
        let err_tx = tx.clone();
        let mut writer = ChannelWriter {
            buf: Vec::with_capacity(CHUNK_BYTES),
            tx,
        };
        let result = (|| -> std::io::Result<()> {
            let options = ExportOptions {
                shape,
                raw,
                separator: if excel {
                    unico_csv::Separator::Semicolon
                } else {
                    unico_csv::Separator::Comma
                },
            };
            if excel {
                // The byte order mark tells a spreadsheet the file is UTF-8.
                writer.write_all(b"\xEF\xBB\xBF")?;
            }
            let mut exporter = Exporter::new(&mut writer, &schema, options)?;
            match members {
                Some(ids) => {
                    for chunk in ids.chunks(EXPORT_FETCH_IDS) {
                        for mut customer in store
                            .get_customers(app, chunk)
                            .map_err(|e| std::io::Error::other(e.to_string()))?
                        {
                            if let Some(values) = &computed {
                                values.fill(&mut customer);
                            }
                            exporter.write(&customer)?;
                        }
                    }
                }
                None => {
                    let mut failure = None;
                    store
                        .scan_customers(app, &mut |mut c| {
                            if let Some(values) = &computed {
                                values.fill(&mut c);
                            }
                            match exporter.write(&c) {
                                Ok(()) => true,
                                Err(e) => {
                                    failure = Some(e);
                                    false
                                }
                            }
                        })
                        .map_err(|e| std::io::Error::other(e.to_string()))?;
                    if let Some(e) = failure {
                        return Err(e);
                    }
                }
            }
            exporter.finish()?;
            writer.flush()
        })();
        if let Err(e) = result {
            // The status line is gone already: end the body with an error so the client
            // sees a broken transfer, never a silently truncated file.
            tracing::warn!(error = %e, "export stopped");
            let _ = err_tx.blocking_send(Err(e));
        }
    });
    let stream = futures_util::stream::poll_fn(move |cx| rx.poll_recv(cx));
    Ok((
        [
            (CONTENT_TYPE, "text/csv; charset=utf-8".to_owned()),
            (
                CONTENT_DISPOSITION,
                format!("attachment; filename=\"{file_name}\""),
            ),
        ],
        Body::from_stream(stream),
    )
        .into_response())
}

/// A name that says what the file holds: the application, the segment (or "filtered", or
/// "customers"), the day (UTC): `demo-shop-segment-lapsed-vips-2026-12-02.csv`.
fn file_name(app: &str, segment: Option<String>, filtered: bool, now: i64) -> String {
    let slug = |text: &str| {
        let mut out = String::new();
        for c in text.chars().flat_map(char::to_lowercase) {
            if c.is_ascii_alphanumeric() {
                out.push(c);
            } else if !out.ends_with('-') && !out.is_empty() {
                out.push('-');
            }
        }
        let out = out.trim_end_matches('-');
        out.chars().take(60).collect::<String>()
    };
    let what = match (segment, filtered) {
        (Some(name), _) => format!("segment-{}", slug(&name)),
        (None, true) => "filtered".to_owned(),
        (None, false) => "customers".to_owned(),
    };
    let day = unico_core::time::format_datetime(now);
    let app = match slug(app) {
        s if s.is_empty() => "unico".to_owned(),
        s => s,
    };
    format!("{app}-{what}-{}.csv", day.get(..10).unwrap_or("today"))
}

#[cfg(test)]
mod tests {
    use super::file_name;

    #[test]
    fn file_names_say_what_they_hold() {
        // 2026-12-02T10:00:00Z.
        let now = 1_796_205_600_000;
        assert_eq!(
            file_name("Demo Shop", Some("Lapsed VIPs!".into()), false, now),
            "demo-shop-segment-lapsed-vips-2026-12-02.csv"
        );
        assert_eq!(
            file_name("Café ☕", None, true, now),
            "caf-filtered-2026-12-02.csv"
        );
        assert_eq!(
            file_name("☕", None, false, now),
            "unico-customers-2026-12-02.csv"
        );
    }
}
