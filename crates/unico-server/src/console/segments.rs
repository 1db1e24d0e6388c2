//! Saved audiences in the console: the list with sizes, a segment's page (its filter,
//! members, export and charts), saving, updating and deleting; and the insights page, the
//! same charts over every customer of the application.

use std::collections::HashMap;

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};
use maud::html;
use serde::Deserialize;
use unico_core::AppId;

use super::insights::{self, Summary};
use super::layout::{self, Section};
use super::location::redirect;
use super::pages::{
    AppPage, PAGE_ROWS, customer_table, encode, failure, list_field_columns, not_found,
};
use super::timeline::{local_time, local_time_text, zone_note};
use crate::error::ApiError;
use crate::extract::FormBody;
use crate::state::{AppState, now_ms};

pub async fn segments(State(state): State<AppState>, AppPage(app, csrf): AppPage) -> Response {
    let id = app.id;
    let st = state.clone();
    let rows = state
        .blocking_api(move |s| {
            let schema = s.schema(id)?;
            s.list_segments(id)?
                .iter()
                .map(|record| crate::routes::segment_out(&st, record, &schema))
                .collect::<Result<Vec<_>, _>>()
        })
        .await;
    let rows = match rows {
        Ok(r) => r,
        Err(e) => return failure(e),
    };
    Html(layout::page("Segments", Some(&app), Section::Segments, Some(&csrf), html! {
        div class="row" {
            h1 class="grow" { "Segments" }
            a class="button" id="new-segment" href=(format!("/console/apps/{id}/customers")) title="Build the audience with the filter, then save it as a segment" { "New segment" }
        }
        p class="sub" { "Saved audiences. Their members are computed when asked, so they are always current. A new one starts from the customers' filter: build it there, then save it as a segment." }
        div class="card" {
            table {
                thead { tr { th { "Name" } th { "Customers" } th class="hide-narrow" { "Filter" } th class="hide-narrow" { "Created (" (app.timezone.as_str()) ")" } th class="hide-narrow" { "Updated (" (app.timezone.as_str()) ")" } } }
                tbody {
                    @for segment in &rows {
                        tr {
                            td { a href=(format!("/console/apps/{}/segments/{}", id, segment.id)) { (segment.name) } }
                            td class="nowrap" { @if let Some(c) = segment.count { (super::charts::compact(c)) } @else { "—" } }
                            td class="hide-narrow mono" { (segment.filter_text) }
                            td class="hide-narrow mono nowrap" { (local_time_text(&app, &segment.created_at)) }
                            td class="hide-narrow mono nowrap" { (local_time_text(&app, &segment.updated_at)) }
                        }
                    }
                }
            }
            @if rows.is_empty() {
                p class="sub" { "No segment yet. Filter the " a href=(format!("/console/apps/{id}/customers")) { "customers" } " and save the filter as a segment." }
            }
        }
    }).into_string())
    .into_response()
}

/// The segment's page: name, filter, size, members (paged), export and charts.
pub async fn segment(
    State(state): State<AppState>,
    AppPage(app, csrf): AppPage,
    Path((_, segment_id)): Path<(String, i64)>,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    let id = app.id;
    let engines = state.engines.clone();
    let loaded = state
        .blocking_api(move |s| {
            let record = s.get_segment(id, segment_id)?;
            let schema = s.schema(id)?;
            let filter = crate::routes::stored_filter(&record, &schema);
            let application = s.get_app(id)?;
            let summary = match &filter {
                Ok(f) => Some(engines.query(id, now_ms(), |index, ctx| {
                    let members = index.members(f, ctx);
                    (
                        insights::summarize(
                            index,
                            ctx,
                            &members,
                            &schema,
                            insights::Zone::of(&application, ctx.now_ms),
                        ),
                        super::behaviour::summarize(&application, index, &members, ctx.now_ms),
                    )
                })?),
                Err(_) => None,
            };
            Ok((record, schema, filter.map(|f| f.to_text()), summary))
        })
        .await;
    let (record, schema, text, summary) = match loaded {
        Ok(l) => l,
        Err(ApiError::NotFound(_)) => return not_found(),
        Err(e) => return failure(e),
    };
    let base = format!("/console/apps/{id}/segments/{}", record.id);
    let members = match &text {
        Ok(t) => {
            let mut params = vec![
                ("filter".to_owned(), t.clone()),
                ("limit".to_owned(), PAGE_ROWS.to_string()),
            ];
            if let Some(c) = query.get("cursor") {
                params.push(("cursor".to_owned(), c.clone()));
            }
            Some(
                crate::routes::list_customers_page(
                    state.clone(),
                    id,
                    crate::routes::params_from_pairs(params),
                )
                .await,
            )
        }
        Err(_) => None,
    };
    let shown = list_field_columns(&schema);
    let body = html! {
        p { a href=(format!("/console/apps/{id}/segments")) { "← Segments" } }
        h1 { (record.name) }
        p class="sub" { "Created " (local_time(&app, record.created_at)) " · updated " (local_time(&app, record.updated_at)) " · " (zone_note(&app)) }
        @if query.contains_key("saved") { div class="flash ok" { "Segment saved." } }
        div class="card" {
            @match &text {
                Ok(t) => {
                    div class="row" {
                        div class="count grow" {
                            @let total = summary.as_ref().map_or(0, |s| s.0.total);
                            span id="segment-count" { (total) }
                            small { (if total == 1 { "customer matches now" } else { "customers match now" }) }
                        }
                        a class="button secondary" href=(format!("/console/apps/{id}/customers?filter={}&segment={}", encode(t), record.id)) { "Edit filter" }
                        a class="button" href=(format!("/console/apps/{id}/export?format=wide&segment={}", record.id)) { "Export CSV" }
                        a class="button secondary" href=(format!("/console/apps/{id}/export?format=wide&segment={}&excel=true", record.id)) title="UTF-8 with a byte order mark, cells separated by ;" { "Excel" }
                    }
                    p class="mono filter-text" { (t) }
                }
                Err(e) => { div class="flash bad" { "This segment's filter no longer fits the fields: " (e) } }
            }
            div class="row" {
                form method="post" action=(format!("{base}/duplicate")) {
                    (csrf)
                    button type="submit" class="secondary" { "Duplicate" }
                }
                form method="post" action=(format!("{base}/delete")) data-confirm="Delete this segment? Its customers are not deleted." {
                    (csrf)
                    button type="submit" class="danger" { "Delete segment" }
                }
            }
        }
        @if let Some((summary, behaviour)) = &summary {
            (members_card(&app, members, &shown, &base))
            h2 class="section" { "What these customers did" }
            (super::behaviour::render(behaviour))
            (render_summary(summary, &insights::Drill { app: id, within: text.as_deref().ok() }))
        }
    };
    Html(
        layout::page(
            &record.name,
            Some(&app),
            Section::Segments,
            Some(&csrf),
            body,
        )
        .into_string(),
    )
    .into_response()
}

fn members_card(
    app: &unico_core::Application,
    members: Option<Result<crate::dto::CustomerList, ApiError>>,
    shown: &[&unico_core::FieldDef],
    base: &str,
) -> maud::Markup {
    html! {
        div class="card" {
            h2 { "Members" }
            @match &members {
                Some(Ok(list)) => {
                    (customer_table(app, list, shown, "", None))
                    p class="hint" { (zone_note(app)) }
                    @if let Some(next) = &list.next_cursor {
                        div class="pager" { a class="button" href=(format!("{base}?cursor={}", encode(next))) { "Next page →" } }
                    }
                }
                Some(Err(e)) => { div class="flash bad" { (e.to_string()) } }
                None => {}
            }
        }
    }
}

fn render_summary(summary: &Summary, drill: &insights::Drill<'_>) -> maud::Markup {
    html! {
        h2 class="section" { "What these customers look like" }
        (insights::render(summary, drill))
    }
}

#[derive(Deserialize)]
pub struct SegmentForm {
    name: String,
    filter: String,
    /// The customers page's customerId search, part of the audience (see `with_search`).
    #[serde(default)]
    q: String,
}

/// Saves the customers page's filter as a new segment and opens it.
pub async fn create_segment(
    State(state): State<AppState>,
    AppPage(app, _): AppPage,
    FormBody(form): FormBody<SegmentForm>,
) -> Response {
    save(state, app.id, None, form).await
}

/// Replaces a segment's name and filter (from the customers page opened with
/// `?segment=`).
pub async fn update_segment(
    State(state): State<AppState>,
    AppPage(app, _): AppPage,
    Path((_, segment_id)): Path<(String, i64)>,
    FormBody(form): FormBody<SegmentForm>,
) -> Response {
    save(state, app.id, Some(segment_id), form).await
}

/// Creates (`segment` is `None`) or updates a segment, then opens its page; a refused name
/// or filter goes back to the builder with the message.
async fn save(state: AppState, app: AppId, segment: Option<i64>, form: SegmentForm) -> Response {
    let (name, filter, q) = (form.name.clone(), form.filter.clone(), form.q.clone());
    let saved = state
        .blocking_api(move |s| {
            let name = crate::routes::check_segment_name(&name)?;
            let schema = s.schema(app)?;
            let filter_text = super::pages::with_search(&filter, &q, &schema);
            let filter = crate::routes::parse_filter_text(&filter_text, &schema)?;
            let json = filter.to_json().to_string();
            Ok(match segment {
                None => s.create_segment(app, &name, &json, now_ms())?,
                Some(id) => s.update_segment(app, id, &name, &json, now_ms())?,
            })
        })
        .await;
    match saved {
        Ok(record) => redirect(&format!(
            "/console/apps/{app}/segments/{}?saved=1",
            record.id
        )),
        Err(ApiError::NotFound(_)) => not_found(),
        Err(e) => {
            let segment = segment.map(|s| format!("&segment={s}")).unwrap_or_default();
            // Back to the builder as it was, with what was typed.
            redirect(&format!(
                "/console/apps/{app}/customers?filter={}&q={}{segment}&name={}&error={}",
                encode(&form.filter),
                encode(&form.q),
                encode(&form.name),
                encode(&e.to_string())
            ))
        }
    }
}

pub async fn delete_segment(
    State(state): State<AppState>,
    AppPage(app, _): AppPage,
    Path((_, segment_id)): Path<(String, i64)>,
) -> Response {
    let id = app.id;
    match state
        .blocking(move |s| s.delete_segment(id, segment_id))
        .await
    {
        Ok(()) | Err(ApiError::NotFound(_)) => redirect(&format!("/console/apps/{id}/segments")),
        Err(e) => failure(e),
    }
}

/// Saves a copy of the segment under the first free name "NAME (copy)", "NAME (copy 2)"…,
/// and opens it.
pub async fn duplicate_segment(
    State(state): State<AppState>,
    AppPage(app, _): AppPage,
    Path((_, segment_id)): Path<(String, i64)>,
) -> Response {
    let id = app.id;
    let copied = state
        .blocking(move |s| {
            let original = s.get_segment(id, segment_id)?;
            let taken: Vec<String> = s
                .list_segments(id)?
                .into_iter()
                .map(|r| r.name.to_lowercase())
                .collect();
            let base: String = original.name.chars().take(180).collect();
            let name = (1..)
                .map(|n| {
                    if n == 1 {
                        format!("{base} (copy)")
                    } else {
                        format!("{base} (copy {n})")
                    }
                })
                .find(|candidate| !taken.contains(&candidate.to_lowercase()))
                .unwrap_or_else(|| format!("{base} (copy)"));
            s.create_segment(id, &name, &original.filter, now_ms())
        })
        .await;
    match copied {
        Ok(record) => redirect(&format!("/console/apps/{id}/segments/{}", record.id)),
        Err(ApiError::NotFound(_)) => not_found(),
        Err(e) => failure(e),
    }
}

/// A segment's name, for the customers page opened to edit it.
pub async fn segment_name(state: &AppState, app: AppId, segment: i64) -> Option<String> {
    state
        .blocking(move |s| s.get_segment(app, segment))
        .await
        .ok()
        .map(|r| r.name)
}

/// The charts over every customer of the application.
/// The Interactions page: what the application's customers did, and its event types.
pub async fn interactions(State(state): State<AppState>, AppPage(app, csrf): AppPage) -> Response {
    let id = app.id;
    let engines = state.engines.clone();
    let shown = app.clone();
    let loaded = state
        .blocking_api(move |s| {
            let schema = s.schema(id)?;
            let behaviour = engines.query(id, now_ms(), |index, ctx| {
                (
                    super::behaviour::summarize(&shown, index, &index.all(), ctx.now_ms),
                    index.event_count(),
                )
            })?;
            Ok((schema, behaviour))
        })
        .await;
    let (schema, (behaviour, stored)) = match loaded {
        Ok(l) => l,
        Err(e) => return failure(e),
    };
    let types = schema.event_types().all();
    let body = html! {
        h1 { "Interactions" }
        p class="sub" { "What the customers of " (app.name.as_str()) " did, on every channel: " (super::charts::compact(stored)) " events stored. Days are " (app.timezone.as_str()) " days. A segment's page shows the same for its members." }
        (super::behaviour::render(&behaviour))
        div class="card" {
            h2 { "Event types" }
            @if types.is_empty() {
                p class="muted" { "No event type is registered yet: register them with " span class="mono" { "POST /v1/apps/" (id) "/event-types" } " or " span class="mono" { "unico events register" } "." }
            } @else {
                div class="table-wrap" {
                    table {
                        thead { tr { th { "Code" } th { "Name" } th { "Kept" } th { "State" } th class="hide-narrow" { "Declared properties" } } }
                        tbody {
                            @for t in types {
                                tr {
                                    td class="mono" { (t.code.as_str()) }
                                    td { (t.name) }
                                    td { (t.retention_days) " days" }
                                    td { @if t.enabled { span class="pill" { "enabled" } } @else { span class="pill off" { "disabled" } } }
                                    td class="hide-narrow mono" {
                                        @for (i, (name, ty)) in t.properties.iter().enumerate() {
                                            @if i > 0 { ", " }
                                            (name) " (" (ty.as_str()) ")"
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
    };
    (
        StatusCode::OK,
        Html(
            layout::page(
                "Interactions",
                Some(&app),
                Section::Interactions,
                Some(&csrf),
                body,
            )
            .into_string(),
        ),
    )
        .into_response()
}

pub async fn insights(State(state): State<AppState>, AppPage(app, csrf): AppPage) -> Response {
    let id = app.id;
    let engines = state.engines.clone();
    let application = app.clone();
    let summary = state
        .blocking_api(move |s| {
            let schema = s.schema(id)?;
            let summary = engines.query(id, now_ms(), |index, ctx| {
                let zone = insights::Zone::of(&application, ctx.now_ms);
                insights::summarize(index, ctx, &index.all(), &schema, zone)
            })?;
            let mut statements = Vec::new();
            s.scan_subscription_history(id, &mut |customer, channel, subscribed, at| {
                statements.push((customer, channel.clone(), subscribed, at));
            })?;
            Ok((summary, statements))
        })
        .await;
    let (summary, statements) = match summary {
        Ok(s) => s,
        Err(e) => return failure(e),
    };
    let (start, ends) = super::consent::week_ends(now_ms());
    let over_time = super::consent::subscribers_at(&statements, &ends);
    let body = html! {
        h1 { "Insights" }
        p class="sub" { "Every customer of " (app.name.as_str()) " at a glance: how complete each field is, who they are and when they arrived. A segment's page shows the same for its members." }
        (insights::render(&summary, &insights::Drill { app: id, within: None }))
        @if !over_time.is_empty() {
            h2 { "Subscribers over time" }
            div class="charts" {
                @for (channel, counts) in &over_time {
                    div class="card chart-card" {
                        h2 { (channel.as_str()) }
                        p class="hint" { "Customers subscribed at the end of each of the last 13 weeks (UTC), by their statements' times." }
                        (super::charts::columns(
                            &format!("{channel} subscribers"),
                            &super::charts::Buckets {
                                start: start as f64,
                                width: 7.0 * 86_400_000.0,
                                counts: counts.clone(),
                                scale: super::charts::Scale::Time,
                            },
                        ))
                    }
                }
            }
        }
    };
    (
        StatusCode::OK,
        Html(
            layout::page("Insights", Some(&app), Section::Insights, Some(&csrf), body)
                .into_string(),
        ),
    )
        .into_response()
}
