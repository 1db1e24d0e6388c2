//! CSV imports in the console: starting one from the upload box (the file's name and who
//! started it kept in the audit log), its progress for the box's script, the import
//! history under the box and one import's summary with its rejected rows.

use std::collections::HashMap;

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use maud::{Markup, html};
use unico_core::Application;

use super::pages::{AppPage, console_actor, session_expired};
use super::timeline::{local_time, local_time_text};
use crate::state::AppState;

/// Imports listed under the upload box.
pub(super) const IMPORTS_SHOWN: usize = 20;
/// Audit records read to find who started the imports listed (newest first; other
/// actions are few beside imports).
pub(super) const IMPORT_AUDIT_READ: usize = 500;

/// "1 row", "2 rows" (nouns with a plain plural).
pub(super) fn plural(n: u64, noun: &str) -> String {
    if n == 1 {
        format!("1 {noun}")
    } else {
        format!("{n} {noun}s")
    }
}

/// Who started an import and from which file, by import id, from the audit log.
pub(super) struct Started {
    who: String,
    file: String,
}

pub(super) fn imports_started(audit: &[unico_store::audit::AuditRecord]) -> HashMap<i64, Started> {
    audit
        .iter()
        .filter(|r| r.action == "import.started")
        .filter_map(|r| {
            let (id, file) = r.target.split_once(' ').unwrap_or((&r.target, ""));
            Some((
                id.parse().ok()?,
                Started {
                    who: r.actor.clone(),
                    file: file.to_owned(),
                },
            ))
        })
        .collect()
}

/// One import's summary and its rejected rows (the first thousand), as the upload box
/// shows them once it ends, kept on the page after the list reloads.
pub(super) fn import_report_card(
    app: &Application,
    report: &crate::routes::imports::ImportOut,
    started: Option<&Started>,
) -> Markup {
    let ok = report.state == "succeeded";
    html! {
        div class="card" id="last-import" {
            h2 class="card-title" {
                "Import " (report.id)
                @if let Some(s) = started { @if !s.file.is_empty() { " · " span class="mono" { (s.file) } } }
            }
            p class="hint" {
                "Started " (local_time_text(app, &report.created_at))
                @if let Some(s) = started { " by " span class="mono" { (s.who) } }
                " (" (app.timezone.as_str()) ")"
            }
            div class=(if ok { "flash ok" } else if report.state == "running" { "flash" } else { "flash bad" }) role="status" {
                @match report.state {
                    "succeeded" => {
                        "Imported: " (plural(report.rows_written, "row")) ", " (plural(report.created, "customer")) " created, " (report.updated) " updated"
                        @if report.rows_rejected > 0 { ", " (plural(report.rows_rejected, "row")) " rejected (below)." } @else { "." }
                    }
                    "running" => { "Importing… " (report.rows_read) " rows read." }
                    _ => {
                        @if let Some(m) = &report.message { (m) }
                        @else { "Nothing was imported: " (plural(report.rows_rejected, "row")) " invalid (below)." }
                    }
                }
            }
            @if !report.errors.is_empty() {
                table class="import-errors" {
                    thead { tr { th class="num" { "Line" } th { "Column" } th { "Value" } th { "Reason" } } }
                    tbody {
                        @for e in &report.errors {
                            tr { td class="num" { (e.line) } td class="mono" { (e.column) } td class="mono cell" title=(e.value) { (e.value) } td { (e.message) } }
                        }
                    }
                }
                @if report.errors_omitted > 0 { p class="hint" { "And " (report.errors_omitted) " more rejected rows (the API lists the first thousand too)." } }
            }
        }
    }
}

/// The latest imports, CSV and NDJSON, newest first (times in the application's zone).
pub(super) fn import_history(
    app: &Application,
    imports: &[unico_store::ImportRecord],
    started: &HashMap<i64, Started>,
) -> Markup {
    html! {
        div class="card" id="import-history" {
            h2 class="card-title" { "Import history" }
            @if imports.is_empty() {
                p class="sub" { "No import yet." }
            } @else {
                table {
                    thead { tr {
                        th { "Started (" (app.timezone.as_str()) ")" } th { "File" } th class="hide-narrow" { "Who" } th { "What" } th { "State" }
                        th class="num" { "Rows" } th class="num hide-narrow" { "Created" }
                        th class="num hide-narrow" { "Updated" } th class="num" { "Rejected" }
                    } }
                    tbody {
                        @for i in imports {
                            tr {
                                @let by = started.get(&i.id);
                                td class="mono nowrap" { (local_time(app, i.created_at)) }
                                td class="mono cell" { @match by.map(|s| s.file.as_str()).filter(|f| !f.is_empty()) { Some(f) => (f), None => span class="sub" { "—" } } }
                                td class="mono hide-narrow" { @match by { Some(s) => (s.who), None => span class="sub" { "API" } } }
                                td { (i.kind.as_str()) " · " (i.mode.as_str()) }
                                td {
                                    @match i.state {
                                        unico_store::ImportState::Succeeded => span class="pill ok" { "succeeded" },
                                        unico_store::ImportState::Failed => span class="pill bad" title=[i.message.as_deref()] { "failed" },
                                        unico_store::ImportState::Running => span class="pill" { "running" },
                                    }
                                }
                                td class="num" { (i.rows_read) }
                                td class="num hide-narrow" { (i.created) }
                                td class="num hide-narrow" { (i.updated) }
                                td class="num" {
                                    @if i.kind == unico_store::ImportKind::Customers {
                                        a href=(format!("/console/apps/{}/fields?import={}#last-import", app.id, i.id))
                                            title="This import's summary and rejected rows" { (i.rows_rejected) }
                                    } @else { (i.rows_rejected) }
                                }
                            }
                        }
                    }
                }
                p class="hint" { "A CSV import's rejected count opens its summary and rejected rows (line, column, value, reason); the API: GET …/imports/{id} (CSV) or …/events/imports/{id} (NDJSON). Imports started through the API name no file." }
            }
        }
    }
}

/// The console's `file` parameter of an upload: the name of the file chosen, kept for the
/// import history (the API's import takes no name: the console strips it).
const FILE_NAME_CHARS_MAX: usize = 200;

/// Starts an import from the console's upload box (the file as the body, like the API);
/// who started it and the file's name are kept in the audit log (`import.started`, on
/// "ID name"), where the import history finds them.
pub async fn start_import(
    State(state): State<AppState>,
    page: Result<AppPage, Response>,
    headers: HeaderMap,
    Query(query): Query<Vec<(String, String)>>,
    request: axum::extract::Request,
) -> Response {
    let Ok(AppPage(app, _)) = page else {
        return session_expired();
    };
    let app = app.id;
    let (files, rest): (Vec<_>, Vec<_>) = query.into_iter().partition(|(k, _)| k == "file");
    let file: String = files
        .into_iter()
        .next()
        .map(|(_, name)| name)
        .unwrap_or_default()
        .chars()
        .filter(|c| !c.is_control())
        .take(FILE_NAME_CHARS_MAX)
        .collect();
    let query = crate::routes::params_from_pairs(rest);
    let actor = console_actor(&state, &headers).await;
    match crate::routes::imports::begin(state.clone(), app, &query, request).await {
        Ok(started) => {
            let id = started.id;
            let target = format!("{id} {}", file.trim()).trim_end().to_owned();
            let recorded = state
                .blocking(move |s| {
                    crate::audit::record(s, Some(app), &actor, "import.started", target)?;
                    Ok(())
                })
                .await;
            // The import runs whatever happens to its audit record: answering an error here
            // would invite the user to upload the same file again. Its history then shows
            // no file or person for it.
            if let Err(e) = recorded {
                tracing::warn!(app = app.0, import = id, error = %e, "cannot record who started a console import");
            }
            (StatusCode::ACCEPTED, axum::Json(started)).into_response()
        }
        Err(e) => e.into_response(),
    }
}

/// An import's progress for the console's upload box.
pub async fn import_report(
    State(state): State<AppState>,
    page: Result<AppPage, Response>,
    Path((_, id)): Path<(String, i64)>,
) -> Response {
    let Ok(AppPage(app, _)) = page else {
        return session_expired();
    };
    let app = app.id;
    match crate::routes::imports::report(&state, app, id).await {
        Ok(report) => axum::Json(report).into_response(),
        Err(e) => e.into_response(),
    }
}
