//! The console's pages. Each reads through the same store and engines as the API, checks
//! the session's key against the application in the path, and renders escaped markup.

use std::collections::HashMap;

use axum::extract::{FromRequestParts, Path, Query, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use maud::{Markup, html};
use serde::Deserialize;
use unico_core::time::format_datetime;
use unico_core::{AppId, Application, FieldName, FieldType, Schema};

use super::layout::{self, Section};
use super::location::{ConsolePath, redirect, see_other};
use super::session::{self, CsrfToken, Https};
use super::timeline::{
    from_local_input, local_input, local_input_step, local_time, local_time_text, zone_note,
};
use crate::auth::{Principal, authenticate, authenticate_hash, hash_key};
use crate::error::ApiError;
use crate::extract::FormBody;
use crate::state::{AppState, now_ms};

/// Rows per page of the customer list.
pub const PAGE_ROWS: usize = 50;
/// Field columns shown in the customer list.
const LIST_FIELD_COLUMNS: usize = 3;

/// The signed-in principal and the session's form token, or a redirect to the sign-in page.
pub(super) async fn signed_in(
    state: &AppState,
    headers: &HeaderMap,
) -> Result<(Principal, CsrfToken), Response> {
    let to_sign_in = || redirect("/console");
    let token = session::token(headers).ok_or_else(to_sign_in)?;
    let live = match state.sessions.get(&token).await {
        Ok(live) => live.ok_or_else(to_sign_in)?,
        Err(e) => return Err(e.into_response()),
    };
    let principal = authenticate_hash(state, live.key_hash)
        .await
        .map_err(|_| to_sign_in())?;
    Ok((principal, live.csrf))
}

/// The application in the path, reachable with the signed-in session. Pages reject with a
/// redirect (to sign in, or to the applications) or a 404 page; JSON endpoints take
/// `Result<AppPage, Response>` and answer 401 instead ([`session_expired`]). Carries the
/// session's form token for the page's forms.
pub struct AppPage(pub Application, pub CsrfToken);

impl FromRequestParts<AppState> for AppPage {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Response> {
        let Path(params) = Path::<HashMap<String, String>>::from_request_parts(parts, state)
            .await
            .map_err(|_| not_found())?;
        let raw = params.get("app").ok_or_else(not_found)?;
        let (app, csrf) = app_in_path(state, &parts.headers, raw).await?;
        Ok(AppPage(app, csrf))
    }
}

/// What the console's JSON endpoints answer without a valid session.
pub(super) fn session_expired() -> Response {
    ApiError::Unauthorized("sign in again".into()).into_response()
}

/// The application of the path, if the session may see it.
async fn app_in_path(
    state: &AppState,
    headers: &HeaderMap,
    raw: &str,
) -> Result<(Application, CsrfToken), Response> {
    let (principal, csrf) = signed_in(state, headers).await?;
    let app = raw.parse::<i64>().map(AppId).map_err(|_| not_found())?;
    if principal.require_app(app).is_err() {
        return Err(redirect("/console/apps"));
    }
    let app = state
        .blocking(move |s| s.get_app(app))
        .await
        .map_err(|_| not_found())?;
    Ok((app, csrf))
}

pub(super) fn not_found() -> Response {
    (
        StatusCode::NOT_FOUND,
        Html(
            layout::page(
                "Not found",
                None,
                Section::Apps,
                None,
                html! {
                    h1 { "Not found" }
                    p class="sub" { "This page does not exist, or your key does not reach it." }
                    a href="/console/apps" { "Back to the applications" }
                },
            )
            .into_string(),
        ),
    )
        .into_response()
}

pub(super) fn failure(e: ApiError) -> Response {
    tracing::warn!(error = %e, "console page failed");
    (StatusCode::INTERNAL_SERVER_ERROR, Html(layout::page("Error", None, Section::Apps, None, html! {
        h1 { "Something went wrong" }
        p class="sub" { "The server could not show this page. Try again; the error is in the server's log." }
    }).into_string()))
        .into_response()
}

pub async fn root() -> Response {
    redirect("/console")
}

/// The sign-in page, or the user's place if already signed in.
pub async fn home(State(state): State<AppState>, headers: HeaderMap) -> Response {
    match signed_in(&state, &headers).await {
        Ok((Principal::App { app, .. }, _)) => redirect(&format!("/console/apps/{app}/customers")),
        Ok((Principal::Admin, _)) => redirect("/console/apps"),
        Err(_) => Html(layout::sign_in(None).into_string()).into_response(),
    }
}

#[derive(Deserialize)]
pub struct SignIn {
    key: String,
}

pub async fn sign_in(
    State(state): State<AppState>,
    client: session::Client,
    Https(https): Https,
    FormBody(form): FormBody<SignIn>,
) -> Response {
    let key = form.key.trim();
    let now = std::time::Instant::now();
    if let Err(wait) = state.sign_ins.may_try(client, now) {
        return too_many(
            wait,
            "Too many failed sign-ins from your address. Wait a little and try again.",
        );
    }
    let principal = match authenticate(&state, key).await {
        Ok(p) => p,
        Err(ApiError::Unauthorized(_)) => {
            state.sign_ins.failed(client, now);
            return (
                StatusCode::UNAUTHORIZED,
                Html(
                    layout::sign_in(Some("This key is not valid, or it was revoked."))
                        .into_string(),
                ),
            )
                .into_response();
        }
        Err(e) => return failure(e),
    };
    let hash = hash_key(key);
    if let Err(wait) = state.sign_ins.signing_in(hash, now) {
        return too_many(
            wait,
            "Too many sign-ins with this key. Wait a little and try again.",
        );
    }
    let app = match principal {
        Principal::App { app, .. } => Some(app),
        Principal::Admin => None,
    };
    let token = match state.sessions.start(hash, app).await {
        Ok(token) => token,
        Err(session::StartError::Full) => {
            tracing::warn!("console sign-in refused: every session place is taken");
            return (
                StatusCode::SERVICE_UNAVAILABLE,
                Html(
                    layout::sign_in(Some(
                        "Too many people are signed in right now. Try again later.",
                    ))
                    .into_string(),
                ),
            )
                .into_response();
        }
        Err(session::StartError::Internal(e)) => return failure(e),
    };
    let to = match principal {
        Principal::App { app, .. } => format!("/console/apps/{app}/customers"),
        Principal::Admin => "/console/apps".to_owned(),
    };
    (
        [(header::SET_COOKIE, session::set_cookie(Some(&token), https))],
        redirect(&to),
    )
        .into_response()
}

/// The sign-in page with `message`, as a 429 that says when to try again.
fn too_many(wait: std::time::Duration, message: &str) -> Response {
    // Whole seconds, rounded up: a client that waits that long may try again.
    let seconds = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
    tracing::warn!(retry_after_s = seconds, "console sign-in rate-limited");
    (
        StatusCode::TOO_MANY_REQUESTS,
        [(header::RETRY_AFTER, seconds.to_string())],
        Html(layout::sign_in(Some(message)).into_string()),
    )
        .into_response()
}

pub async fn sign_out(
    State(state): State<AppState>,
    Https(https): Https,
    headers: HeaderMap,
) -> Response {
    if let Some(token) = session::token(&headers)
        && let Err(e) = state.sessions.end(&token).await
    {
        return e.into_response();
    }
    (
        [(header::SET_COOKIE, session::set_cookie(None, https))],
        redirect("/console"),
    )
        .into_response()
}

pub async fn apps(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    let (principal, csrf) = match signed_in(&state, &headers).await {
        Ok(p) => p,
        Err(r) => return r,
    };
    // The admin sees every audited action; an application's key, its application's.
    let own = match &principal {
        Principal::Admin => None,
        Principal::App { app, .. } => Some(*app),
    };
    let reaches = principal;
    let (apps, audit, keys) = match state
        .blocking(move |s| {
            let apps = s.list_apps()?;
            let mut keys = HashMap::new();
            for a in apps.iter().filter(|a| reaches.require_app(a.id).is_ok()) {
                keys.insert(a.id, s.list_keys(a.id)?);
            }
            Ok((apps, s.audit_log(own, None, AUDIT_SHOWN)?, keys))
        })
        .await
    {
        Ok(found) => found,
        Err(e) => return failure(e),
    };
    let visible: Vec<&Application> = apps
        .iter()
        .filter(|a| principal.require_app(a.id).is_ok())
        .collect();
    // An application's key sees its own application's records, in its zone; the admin
    // sees every application's, in UTC (one column, one zone).
    let audit_zone = own.and_then(|id| visible.iter().copied().find(|a| a.id == id));
    Html(layout::page("Applications", None, Section::Apps, Some(&csrf), html! {
        h1 { "Applications" }
        p class="sub" { "Each application is one brand's customers, fields and audiences." }
        (super::admin::flash(&query))
        div class="card" {
            table {
                thead { tr { th { "Name" } th { "Time zone" } th class="hide-narrow" { "Created (in its time zone)" } } }
                tbody {
                    @for app in &visible {
                        tr {
                            td { a href=(format!("/console/apps/{}/customers", app.id)) { (app.name.as_str()) } }
                            td { (app.timezone.as_str()) }
                            td class="hide-narrow mono nowrap" { (local_time(app, app.created_at)) }
                        }
                    }
                }
            }
        }
        (super::admin::manage(&principal, &visible, &keys, &csrf))
        div class="card" id="audit" {
            h2 class="card-title" { "Audit log" }
            p class="hint" { "Application settings, keys, field and event type deletions, erasures and console imports: who, when, what (newest first; the API pages through all of it at /v1/audit)." }
            @if audit.is_empty() {
                p class="sub" { "Nothing audited yet." }
            } @else {
                table {
                    thead { tr { th { "When (" (audit_zone.map_or("UTC", |a| a.timezone.as_str())) ")" } th { "Application" } th { "Who" } th { "What" } th { "On" } } }
                    tbody {
                        @for r in &audit {
                            tr {
                                td class="mono nowrap" { (audit_zone.map_or_else(|| utc_time(r.at), |a| local_time(a, r.at))) }
                                td { @if let Some(a) = r.app { (a.0) } }
                                td class="mono" { (r.actor) }
                                td { (r.action) }
                                td class="mono" { (r.target) }
                            }
                        }
                    }
                }
            }
        }
    }).into_string())
    .into_response()
}

/// Audit records on the Applications page.
const AUDIT_SHOWN: usize = 50;

pub async fn customers(
    State(state): State<AppState>,
    AppPage(app, csrf): AppPage,
    headers: HeaderMap,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    let filter_text = query.get("filter").cloned().unwrap_or_default();
    let search = query
        .get("q")
        .map(|q| q.trim().to_owned())
        .unwrap_or_default();
    let schema = match state.blocking(move |s| s.schema(app.id)).await {
        Ok(s) => s,
        Err(e) => return failure(e),
    };
    let effective = with_search(&filter_text, &search, &schema);
    let view = ListView::from_query(&query, &schema);
    let mut params = Vec::new();
    if !effective.trim().is_empty() {
        params.push(("filter".to_owned(), effective));
    }
    if let Some(c) = &view.cursor {
        params.push(("cursor".to_owned(), c.clone()));
    }
    if let Some(sort) = &view.sort {
        params.push(("sort".to_owned(), sort.clone()));
    }
    params.push(("limit".to_owned(), view.size.to_string()));
    let query_params = crate::routes::params_from_pairs(params);
    let page = crate::routes::list_customers_page(state.clone(), app.id, query_params).await;
    // The search also finds customers by any identity (an email, a phone, a device…).
    let found_by_identity = if search.is_empty() {
        Vec::new()
    } else {
        let (text, id) = (search.clone(), app.id);
        state
            .blocking(move |s| super::identities::search(s, id, &text))
            .await
            .unwrap_or_default()
    };
    let mut shown = chosen_columns(&schema, &headers, app.id);
    // The fields the filter tests are shown too, after the chosen ones: a marketer who
    // filters on country sees each customer's country.
    for def in filter_fields(&filter_text, &schema) {
        if !shown.iter().any(|s| s.id == def.id) {
            shown.push(def);
        }
    }
    let count_url = format!("/console/apps/{}/count", app.id);
    // The builder offers the well-known channels and those the application's events use
    // (when its engine can say at once; typed channels are kept either way).
    let mut channels: Vec<String> = unico_core::Channel::WELL_KNOWN
        .iter()
        .map(|c| (*c).to_owned())
        .collect();
    if let Some(used) = state
        .engines
        .try_query(app.id, now_ms(), |index, _| index.event_channels())
    {
        for c in used {
            if !channels.iter().any(|k| k == c.as_str()) {
                channels.push(c.as_str().to_owned());
            }
        }
    }
    // The builder starts from the filter's JSON tree (the server parses the text form).
    let tree = if filter_text.trim().is_empty() {
        Some(serde_json::Value::Null)
    } else {
        crate::routes::parse_filter_text(&filter_text, &schema)
            .ok()
            .map(|f| f.to_json())
    };
    let editing = match query.get("segment").and_then(|s| s.parse::<i64>().ok()) {
        Some(id) => super::segments::segment_name(&state, app.id, id)
            .await
            .map(|name| (id, name)),
        None => None,
    };
    let body = html! {
        h1 { "Customers" }
        p class="sub" { "Every profile of " (app.name.as_str()) ". Cut an audience with conditions on any field; the count follows as you edit." }
        @for (identity, holder) in &found_by_identity {
            div class="flash ok identity-match" role="status" {
                "The identity " span class="mono" { (identity) } " belongs to "
                a class="mono" href=(format!("/console/apps/{}/customers/{}", app.id, encode(holder))) { (holder) } "."
            }
        }
        div class="card" id="audience" {
            form method="get" id="filter-form" {
                div class="row spaced" {
                    input class="grow" type="search" name="q" value=(search) placeholder="Search: the start of a customerId, a name, an email… or an identity" autocomplete="off";
                    @if let Some((id, _)) = &editing { input type="hidden" name="segment" value=(id); }
                }
                div class="tabs" id="filter-tabs" hidden {
                    button type="button" class="tab on" data-mode="builder" { "Builder" }
                    button type="button" class="tab" data-mode="text" { "Text" }
                }
                div id="builder" hidden data-fields=(fields_json(&schema)) data-events=(events_json(&schema))
                    data-channels=(serde_json::json!(channels).to_string())
                    data-subscription-channels=(serde_json::json!(schema.subscription_channels().iter().map(|c| c.as_str()).collect::<Vec<_>>()).to_string())
                    data-tree=(tree.map(|t| t.to_string()).unwrap_or_default()) data-count-url=(count_url)
                    data-values-url=(format!("/console/apps/{}/values", app.id)) {}
                div class="row" id="text-mode" {
                    input class="grow mono" type="text" id="filter" name="filter" value=(filter_text)
                        placeholder="country = \"ES\" and age between 25 and 34" data-count-url=(count_url) autocomplete="off" aria-label="Filter";
                }
                div class="err" id="filter-error" {
                    @if let Err(e) = &page { (e.to_string()) }
                }
                div class="row" {
                    div class="count grow" { span id="live-count" aria-live="polite" aria-busy="true" { "…" } small id="live-count-noun" { "customers match" } small id="count-incomplete" class="warn" hidden {} }
                    button type="submit" id="apply-filter" { "Show customers" }
                    a class="button secondary" id="export-link" data-base=(format!("/console/apps/{}/export?format=wide", app.id))
                        href=(format!("/console/apps/{}/export?format=wide&filter={}&q={}", app.id, encode(&filter_text), encode(&search))) { "Export CSV" }
                    a class="button secondary" id="export-excel" data-base=(format!("/console/apps/{}/export?format=wide&excel=true", app.id))
                        href=(format!("/console/apps/{}/export?format=wide&excel=true&filter={}&q={}", app.id, encode(&filter_text), encode(&search)))
                        title="UTF-8 with a byte order mark, cells separated by ;" { "Export for Excel" }
                }
            }
            @if let Some(e) = query.get("error") { div class="flash bad" { (e) } }
            @if let Some((id, name)) = &editing {
                form class="row save-row" id="update-segment" method="post" action=(format!("/console/apps/{}/segments/{}", app.id, id)) {
                    (csrf)
                    input type="hidden" name="filter" value=(filter_text);
                    input type="hidden" name="q" value=(search);
                    input type="text" name="name" value=(query.get("name").unwrap_or(name)) required maxlength="200" aria-label="Segment name";
                    button type="submit" { "Update segment" }
                    a href=(format!("/console/apps/{}/segments/{}", app.id, id)) { "Cancel" }
                }
            }
            form class="row save-row" id="save-segment" method="post" action=(format!("/console/apps/{}/segments", app.id)) {
                (csrf)
                input type="hidden" name="filter" value=(filter_text);
                input type="hidden" name="q" value=(search);
                input type="text" name="name" value=(query.get("name").map_or("", String::as_str)) placeholder="Name this audience" required maxlength="200" aria-label="Segment name";
                button type="submit" class="secondary" { "Save as new segment" }
            }
            p class="hint" id="text-hint" { "Text form: = != < <= > >= in not_in between contains starts_with ends_with exists not_exists before after within_last on anniversary; combine with and, or, not and parentheses. What customers did: did purchase at_least 2 times within_last 30d, sum amount of purchase within_last 365d > 500, last app_open before 30d ago." }
        }
        div class="card" {
            details class="columns" {
                summary { "Columns" }
                form method="post" action=(format!("/console/apps/{}/columns", app.id)) {
                    (csrf)
                    input type="hidden" name="back" value=(format!("/console/apps/{}/customers{}", app.id, list_query(&query)));
                    div class="column-choices" {
                        @for f in schema.fields() {
                            label { input type="checkbox" name="col" value=(f.id.0) checked[shown.iter().any(|s| s.id == f.id)]; " " span class="mono" { (f.name.as_str()) } }
                        }
                    }
                    button type="submit" class="secondary small" { "Show these columns" }
                }
            }
            // The rows of the audience above; the builder's script replaces this block
            // with the same page's block for each edit it counts.
            div id="customer-list" data-filter=(filter_text) data-q=(search) {
                @match &page {
                    Ok(list) => {
                        (customer_table(&app, list, &shown, &list_query(&query), Some(&view)))
                        (pager(&app, &view, list))
                    }
                    Err(_) => { p class="sub" { "Fix the filter to see its customers." } }
                }
            }
        }
    };
    Html(
        layout::page(
            "Customers",
            Some(&app),
            Section::Customers,
            Some(&csrf),
            body,
        )
        .into_string(),
    )
    .into_response()
}

/// Page sizes the customer list offers.
pub const PAGE_SIZES: [usize; 3] = [25, 50, 100];

/// Where the customer list is, as its URL says: the audience (filter, search, the segment
/// being edited), the order (`sort`, as the API takes it), the page size (`size`) and the
/// page: `cursor` of this page and `prev`, the cursors of the pages before it (the first
/// page has none), joined by `.` (cursors are hex). Back goes to exactly the page before.
pub(super) struct ListView {
    filter: String,
    q: String,
    segment: Option<String>,
    pub sort: Option<String>,
    pub size: usize,
    pub cursor: Option<String>,
    prev: Vec<String>,
}

impl ListView {
    /// The view of the query; an order the API could not take (an unknown or computed
    /// field) and a size not offered fall back to the defaults.
    fn from_query(query: &HashMap<String, String>, schema: &unico_core::Schema) -> ListView {
        let given = |k: &str| {
            query
                .get(k)
                .map(|v| v.trim().to_owned())
                .filter(|v| !v.is_empty())
        };
        let sort = given("sort").filter(|s| {
            let name = s.strip_prefix('-').unwrap_or(s);
            matches!(name, "customerId" | "created_at" | "updated_at")
                || schema.by_name(name).is_some_and(|d| !d.is_computed())
        });
        let size = given("size")
            .and_then(|s| s.parse().ok())
            .filter(|s| PAGE_SIZES.contains(s))
            .unwrap_or(PAGE_ROWS);
        let cursor = given("cursor");
        let prev = match (&cursor, given("prev")) {
            (Some(_), Some(p)) => p
                .split('.')
                .filter(|c| !c.is_empty())
                .map(str::to_owned)
                .collect(),
            _ => Vec::new(),
        };
        ListView {
            filter: query.get("filter").cloned().unwrap_or_default(),
            q: query
                .get("q")
                .map(|q| q.trim().to_owned())
                .unwrap_or_default(),
            segment: given("segment"),
            sort,
            size,
            cursor,
            prev,
        }
    }

    /// The order by `key`: `Some(descending)` when the list is sorted by it (no `sort` is
    /// by customerId, ascending).
    fn sort_of(&self, key: &str) -> Option<bool> {
        match self.sort.as_deref().unwrap_or("customerId") {
            s if s == key => Some(false),
            s if s.strip_prefix('-') == Some(key) => Some(true),
            _ => None,
        }
    }

    /// The pages before this one.
    fn page_index(&self) -> usize {
        self.prev.len() + usize::from(self.cursor.is_some())
    }

    /// This list (same audience and size) in `sort`, at the page of `cursor` after `prev`.
    fn href(&self, sort: Option<&str>, cursor: Option<&str>, prev: &[String]) -> String {
        let mut q = vec![
            format!("filter={}", encode(&self.filter)),
            format!("q={}", encode(&self.q)),
        ];
        if let Some(s) = &self.segment {
            q.push(format!("segment={}", encode(s)));
        }
        if let Some(s) = sort {
            q.push(format!("sort={}", encode(s)));
        }
        if self.size != PAGE_ROWS {
            q.push(format!("size={}", self.size));
        }
        if let Some(c) = cursor {
            q.push(format!("cursor={}", encode(c)));
            if !prev.is_empty() {
                q.push(format!("prev={}", encode(&prev.join("."))));
            }
        }
        format!("?{}", q.join("&"))
    }
}

/// Under the customer table: "1–50 of 5,000" (the total is the live count's, filled in
/// by the page's script), the page size, previous and next.
fn pager(app: &Application, view: &ListView, list: &crate::dto::CustomerList) -> Markup {
    let first = view.page_index() * view.size + 1;
    let last = first + list.customers.len() - 1;
    let sort = view.sort.as_deref();
    let previous = match (view.prev.split_last(), &view.cursor) {
        (Some((before, earlier)), _) => Some(view.href(sort, Some(before), earlier)),
        (None, Some(_)) => Some(view.href(sort, None, &[])),
        (None, None) => None,
    };
    let next = list.next_cursor.as_ref().map(|next| {
        let mut prev = view.prev.clone();
        prev.extend(view.cursor.iter().cloned());
        view.href(sort, Some(next), &prev)
    });
    html! {
        div class="pager row wrap" {
            @if !list.customers.is_empty() {
                span class="range" {
                    span id="list-range" { (first) "–" (last) }
                    span id="list-total-of" hidden { " of " span id="list-total" {} }
                }
            }
            span class="hint" { (zone_note(app)) }
            span class="grow" {}
            form method="get" class="page-size" {
                input type="hidden" name="filter" value=(view.filter);
                input type="hidden" name="q" value=(view.q);
                @if let Some(s) = &view.segment { input type="hidden" name="segment" value=(s); }
                @if let Some(s) = sort { input type="hidden" name="sort" value=(s); }
                label for="page-size" { "Rows per page" }
                select id="page-size" name="size" data-autosubmit {
                    @for n in PAGE_SIZES { option value=(n) selected[n == view.size] { (n) } }
                }
                noscript { button type="submit" class="secondary small" { "Apply" } }
            }
            @if let Some(href) = previous {
                a class="button secondary" id="page-prev" rel="prev" href=(href) { "← Previous" }
            }
            @if let Some(href) = next {
                a class="button secondary" id="page-next" rel="next" href=(href) { "Next →" }
            }
        }
    }
}

/// The fields a filter tests (field conditions, not the properties of behaviours), in
/// schema order; none when it does not parse.
fn filter_fields<'a>(
    filter_text: &str,
    schema: &'a unico_core::Schema,
) -> Vec<&'a unico_core::FieldDef> {
    fn walk(node: &serde_json::Value, names: &mut Vec<String>) {
        let Some(map) = node.as_object() else {
            return;
        };
        for key in ["and", "or"] {
            if let Some(items) = map.get(key).and_then(|v| v.as_array()) {
                items.iter().for_each(|i| walk(i, names));
            }
        }
        if let Some(inner) = map.get("not") {
            walk(inner, names);
        }
        if map.contains_key("event") {
            return;
        }
        if let Some(name) = map.get("field").and_then(|f| f.as_str()) {
            names.push(name.to_owned());
        }
    }
    if filter_text.trim().is_empty() {
        return Vec::new();
    }
    let Ok(filter) = crate::routes::parse_filter_text(filter_text, schema) else {
        return Vec::new();
    };
    let mut names = Vec::new();
    walk(&filter.to_json(), &mut names);
    schema
        .fields()
        .iter()
        .filter(|f| names.iter().any(|n| n == f.name.as_str()))
        .collect()
}

/// The customers page's audience: the filter narrowed by the search, one more condition
/// of the filter language: the customerId or any stored string field (a name, an email, a
/// city…) starts with the typed text, without regard to case. The count, the rows, the
/// export and a saved segment all go through here, so they describe the same customers.
pub(super) fn with_search(filter_text: &str, search: &str, schema: &Schema) -> String {
    let search = search.trim();
    if search.is_empty() {
        return filter_text.to_owned();
    }
    let text = unico_filter::string_literal(search);
    let mut alternatives = vec![format!("customerId starts_with {text}")];
    alternatives.extend(
        schema
            .fields()
            .iter()
            .filter(|f| f.field_type == FieldType::String && !f.is_computed())
            .map(|f| {
                format!(
                    "{} starts_with {text}",
                    unico_filter::name_literal(f.name.as_str())
                )
            }),
    );
    let condition = format!("({})", alternatives.join(" or "));
    if filter_text.trim().is_empty() {
        condition
    } else {
        format!("({filter_text}) and {condition}")
    }
}

/// The customer list's place (filter, search, order, page size, page) as a query string (`?…`, or empty),
/// carried by a customer's link so that "← Customers" goes back to the same list.
pub(super) fn list_query(query: &HashMap<String, String>) -> String {
    let parts: Vec<String> = ["filter", "q", "sort", "size", "cursor", "prev"]
        .iter()
        .filter_map(|k| {
            let v = query.get(*k).map(|v| v.trim()).unwrap_or_default();
            (!v.is_empty()).then(|| format!("{k}={}", encode(v)))
        })
        .collect();
    if parts.is_empty() {
        String::new()
    } else {
        format!("?{}", parts.join("&"))
    }
}

/// The first field columns shown in customer tables.
pub(super) fn list_field_columns(schema: &unico_core::Schema) -> Vec<&unico_core::FieldDef> {
    schema.fields().iter().take(LIST_FIELD_COLUMNS).collect()
}

/// At most this many chosen field columns.
const MAX_CHOSEN_COLUMNS: usize = 8;

fn columns_cookie(app: AppId) -> String {
    format!("unico_cols_{app}")
}

/// The field columns the user chose for this application's customer list (a cookie of
/// field ids, so a renamed or deleted field simply drops out), or the first fields.
fn chosen_columns<'a>(
    schema: &'a unico_core::Schema,
    headers: &HeaderMap,
    app: AppId,
) -> Vec<&'a unico_core::FieldDef> {
    let chosen = session::cookie(headers, &columns_cookie(app)).map(|ids| {
        ids.split('.')
            .filter_map(|id| id.parse::<u32>().ok())
            .filter_map(|id| schema.fields().iter().find(|f| f.id.0 == id))
            .take(MAX_CHOSEN_COLUMNS)
            .collect::<Vec<_>>()
    });
    chosen.unwrap_or_else(|| list_field_columns(schema))
}

/// Remembers the customer list's columns (a cookie per application) and goes back.
pub async fn choose_columns(
    State(state): State<AppState>,
    AppPage(app, _): AppPage,
    Https(https): Https,
    FormBody(form): FormBody<Vec<(String, String)>>,
) -> Response {
    let id = app.id;
    let Ok(schema) = state.blocking(move |s| s.schema(id)).await else {
        return not_found();
    };
    // In schema order (the order of the checkboxes), known fields only.
    let mut ids: Vec<u32> = form
        .iter()
        .filter(|(k, _)| k == "col")
        .filter_map(|(_, v)| v.parse::<u32>().ok())
        .filter(|id| schema.fields().iter().any(|f| f.id.0 == *id))
        .collect();
    ids.sort_unstable();
    ids.dedup();
    ids.truncate(MAX_CHOSEN_COLUMNS);
    let ids: Vec<String> = ids.iter().map(u32::to_string).collect();
    // Back to this application's customer list as it was (the form's `back`), and only
    // there: any other address, or one that could not be a header, goes to the plain list.
    let Some(list) = ConsolePath::parse(&format!("/console/apps/{}/customers", app.id)) else {
        return redirect("/console/apps");
    };
    let back = form
        .iter()
        .find(|(k, _)| k == "back")
        .and_then(|(_, v)| ConsolePath::within(v, &list))
        .unwrap_or(list);
    (
        [(
            header::SET_COOKIE,
            format!(
                "{}={}; Path=/console; Max-Age=31536000; {}",
                columns_cookie(app.id),
                ids.join("."),
                session::cookie_attributes(https)
            ),
        )],
        see_other(&back),
    )
        .into_response()
}

/// The attributes the filter builder offers: the built-ins, then the schema's fields.
fn fields_json(schema: &unico_core::Schema) -> String {
    let mut out = vec![
        serde_json::json!({ "name": "customerId", "type": "string" }),
        serde_json::json!({ "name": "created_at", "type": "datetime" }),
        serde_json::json!({ "name": "updated_at", "type": "datetime" }),
    ];
    out.extend(
        schema
            .fields()
            .iter()
            .map(|f| match &f.computed {
                Some(c) => serde_json::json!({ "name": f.name.as_str(), "type": f.field_type.as_str(), "computed": c.to_string() }),
                None => serde_json::json!({ "name": f.name.as_str(), "type": f.field_type.as_str() }),
            }),
    );
    serde_json::Value::Array(out).to_string()
}

/// The event types the filter builder offers for behaviour conditions: code, display name
/// and declared properties with their types.
fn events_json(schema: &unico_core::Schema) -> String {
    let types = schema.event_types().all().iter().map(|t| {
        let properties = t
            .properties
            .iter()
            .map(|(name, ty)| serde_json::json!({ "name": name, "type": ty.as_str() }));
        serde_json::json!({
            "code": t.code.as_str(),
            "name": t.name,
            "properties": properties.collect::<Vec<_>>(),
        })
    });
    serde_json::Value::Array(types.collect()).to_string()
}

/// A table of customers: customerId (linking to the detail page), dates and the first
/// field columns. Times are in the application's zone, which the note below says.
pub(super) fn customer_table(
    app: &Application,
    list: &crate::dto::CustomerList,
    shown: &[&unico_core::FieldDef],
    from: &str,
    view: Option<&ListView>,
) -> Markup {
    // A header sorts by its column when the list can be sorted (the customers page) and the
    // API can sort by it (computed fields cannot be).
    let header = |label: &str, key: &str, sortable: bool, class: &str| {
        let current = view.and_then(|v| v.sort_of(key));
        html! {
            th class=[(!class.is_empty()).then_some(class)] aria-sort=[current.map(|d| if d { "descending" } else { "ascending" })] {
                @match (view, sortable) {
                    (Some(v), true) => {
                        @let next = if current == Some(false) { format!("-{key}") } else { key.to_owned() };
                        a class="sort" href=(v.href(Some(&next), None, &[]))
                            title=(format!("Sort by {label}{}", if current == Some(false) { ", descending" } else { "" })) {
                            (label)
                            span class="arrow" aria-hidden="true" { @match current { Some(false) => "▲", Some(true) => "▼", None => "↕" } }
                        }
                    }
                    _ => (label),
                }
            }
        }
    };
    html! {
        table class="customers" {
            thead { tr {
                (header("customerId", "customerId", true, ""))
                (header("Created", "created_at", true, "hide-narrow"))
                (header("Last modified", "updated_at", true, "hide-narrow"))
                @for f in shown { (header(f.name.as_str(), f.name.as_str(), !f.is_computed(), "hide-narrow")) }
            } }
            tbody {
                @for c in &list.customers {
                    tr {
                        td class="mono" { a href=(format!("/console/apps/{}/customers/{}{from}", app.id, encode(&c.customer_id))) { (c.customer_id) } }
                        td class="hide-narrow mono nowrap" { (local_time_text(app, &c.created_at)) }
                        td class="hide-narrow mono nowrap" { (local_time_text(app, &c.updated_at)) }
                        @for f in shown {
                            @let shown = cell_text(app, f, c.fields.get(f.name.as_str()));
                            td class="hide-narrow cell" title=(shown) { (shown) }
                        }
                    }
                }
            }
        }
        @if list.customers.is_empty() { p class="sub" { "No customer matches." } }
    }
}

/// A field's value as a table cell shows it: text as is, instants in the application's
/// zone, numbers and dates as the API writes them.
fn cell_text(
    app: &Application,
    def: &unico_core::FieldDef,
    value: Option<&serde_json::Value>,
) -> String {
    match value {
        None | Some(serde_json::Value::Null) => String::new(),
        Some(serde_json::Value::String(s)) if def.field_type == FieldType::Datetime => {
            local_time_text(app, s)
        }
        Some(serde_json::Value::String(s)) => s.clone(),
        Some(other) => other.to_string(),
    }
}

/// A horizontal bar filled to `pct` percent, titled `title`. The fill is an SVG shape rather
/// than a styled element: the console's content security policy allows no inline style.
fn fill_bar(pct: f64, title: &str) -> Markup {
    html! {
        span class="bar" title=(title) {
            svg viewBox="0 0 100 1" preserveAspectRatio="none" aria-hidden="true" {
                rect width=(format!("{:.1}", pct.clamp(0.0, 100.0))) height="1" {}
            }
        }
    }
}

/// `2026-11-28 23:02` in UTC, where no one application's zone applies (the admin's
/// audit log, across applications).
fn utc_time(ms: i64) -> String {
    let text = format_datetime(ms);
    text.get(..16).map(|t| t.replace('T', " ")).unwrap_or(text)
}

pub(super) fn encode(text: &str) -> String {
    let mut out = String::new();
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The live count behind the filter box and the builder (JSON; the session's cookie
/// authenticates it): `GET ?filter=` with the text form, or `POST {"filter": …}` with the
/// JSON form (or text as a string). Answers the count with the filter's canonical text and
/// JSON tree, so the builder and the text box can follow each other.
pub async fn count(
    State(state): State<AppState>,
    page: Result<AppPage, Response>,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    let text = query.get("filter").cloned().unwrap_or_default();
    let search = query.get("q").cloned().unwrap_or_default();
    count_filter(state, page, serde_json::Value::String(text), &search).await
}

#[derive(Deserialize)]
pub struct CountBody {
    filter: serde_json::Value,
    /// The customerId search beside the filter (see [`with_search`]).
    #[serde(default)]
    q: String,
}

pub async fn count_json(
    State(state): State<AppState>,
    page: Result<AppPage, Response>,
    crate::extract::JsonBody(body): crate::extract::JsonBody<CountBody>,
) -> Response {
    count_filter(state, page, body.filter, &body.q).await
}

async fn count_filter(
    state: AppState,
    page: Result<AppPage, Response>,
    filter: serde_json::Value,
    search: &str,
) -> Response {
    let Ok(AppPage(app, _)) = page else {
        return session_expired();
    };
    let everyone = match &filter {
        serde_json::Value::Null => true,
        serde_json::Value::String(t) => t.trim().is_empty(),
        _ => false,
    };
    let body = if !search.trim().is_empty() {
        // The filter alone gives the text and tree the builder follows; the count is of
        // the filter and the search together, like the rows below it.
        let id = app.id;
        let parsed = state
            .blocking(move |s| s.schema(id))
            .await
            .and_then(|schema| {
                if everyone {
                    Ok((None, schema))
                } else {
                    crate::routes::parse_filter(&filter, &schema).map(|f| (Some(f), schema))
                }
            });
        match parsed {
            Ok((f, schema)) => {
                let text = f.as_ref().map(|f| f.to_text()).unwrap_or_default();
                let tree = f.map_or(serde_json::Value::Null, |f| f.to_json());
                let both = serde_json::Value::String(with_search(&text, search, &schema));
                crate::routes::count_members(&state, app.id, both)
                    .await
                    .map(|(_, count, _)| serde_json::json!({ "count": count, "text": text, "tree": tree }))
            }
            Err(e) => Err(e),
        }
    } else if everyone {
        let app = app.id;
        state
            .blocking(move |s| s.count_customers(app))
            .await
            .map(|count| serde_json::json!({ "count": count, "text": "", "tree": null }))
    } else {
        crate::routes::count_members(&state, app.id, filter)
            .await
            .map(|(f, count, _)| {
                serde_json::json!({ "count": count, "text": f.to_text(), "tree": f.to_json() })
            })
    };
    match body {
        Ok(body) => axum::Json(body).into_response(),
        Err(e) => e.into_response(),
    }
}

pub async fn fields(
    State(state): State<AppState>,
    AppPage(app, csrf): AppPage,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    let id = app.id;
    let data = state
        .blocking(move |s| {
            let types: Vec<String> = s
                .schema(id)?
                .event_types()
                .all()
                .iter()
                .map(|t| t.code.as_str().to_owned())
                .collect();
            Ok((
                s.field_stats(id)?,
                s.count_customers(id)?,
                types,
                s.list_imports(id, super::imports::IMPORTS_SHOWN)?,
                s.audit_log(Some(id), None, super::imports::IMPORT_AUDIT_READ)?,
            ))
        })
        .await;
    let (stats, total, types, imports, audit) = match data {
        Ok(d) => d,
        Err(e) => return failure(e),
    };
    let started = super::imports::imports_started(&audit);
    // The import just finished (or one opened from the history): its summary and its
    // rejected rows stay on the page.
    let shown = match query.get("import").and_then(|i| i.parse::<i64>().ok()) {
        Some(import) => crate::routes::imports::report(&state, app.id, import)
            .await
            .ok(),
        None => None,
    };
    Html(
        layout::page(
            "Customer fields",
            Some(&app),
            Section::Fields,
            Some(&csrf),
            html! {
                (fields_body(&app, &stats, total, &types, &query, &csrf))
                // Under the upload box, which it answers.
                @if let Some(report) = &shown { (super::imports::import_report_card(&app, report, started.get(&report.id))) }
                (super::imports::import_history(&app, &imports, &started))
            },
        )
        .into_string(),
    )
    .into_response()
}

/// The fields page. `flash` holds the query's messages: `error` (with `name`/`type`, what
/// the New field form had typed), `created`, `deleted`.
fn fields_body(
    app: &Application,
    stats: &[unico_store::FieldStat],
    total: u64,
    event_types: &[String],
    flash: &HashMap<String, String>,
    csrf: &CsrfToken,
) -> Markup {
    let typed_agg = flash.get("agg").map(String::as_str);
    let error = flash.get("error").map(String::as_str);
    let created = flash.get("created").map(String::as_str);
    let deleted = flash.get("deleted").map(String::as_str);
    let typed = flash.get("name").map(String::as_str);
    let typed_type = flash.get("type").map(String::as_str);
    html! {
        h1 { "Customer fields" }
        p class="sub" { "The typed attributes every customer of " (app.name.as_str()) " can hold. CSV files and API calls refer to them by name." }
        @if let (Some(e), None) = (error, typed) { div class="flash bad" role="alert" { (e) } }
        @if let Some(c) = created { div class="flash ok" { "Field " (c) " created." } }
        @if let Some(d) = deleted { div class="flash ok" { (d) } }
        div class="card" {
            table {
                thead { tr { th { "Name" } th { "Type" } th { "Filled" } th class="hide-narrow" { "Created (" (app.timezone.as_str()) ")" } th {} } }
                tbody {
                    @for s in stats {
                        @let pct = if total == 0 { 0.0 } else { s.value_count as f64 * 100.0 / total as f64 };
                        tr {
                            td class="mono" { (s.field.name.as_str()) }
                            td { span class="pill" { (s.field.field_type.as_str()) } }
                            @if let Some(c) = &s.field.computed {
                                td { span class="pill computed" { "computed" } " " span class="hint mono" { (c.to_string()) } }
                            } @else {
                            td {
                                (fill_bar(pct, &format!("{} of {} customers", s.value_count, total)))
                                " " (format!("{pct:.0}%"))
                            }
                            }
                            td class="hide-narrow mono nowrap" { (local_time(app, s.field.created_at)) }
                            td {
                                form method="post" action=(format!("/console/apps/{}/fields/{}/delete", app.id, encode(s.field.name.as_str())))
                                    data-confirm=(format!("Delete the field and the {} values customers hold for it? This cannot be undone.", s.value_count)) {
                                    (csrf)
                                    button type="submit" class="danger" { "Delete" }
                                }
                            }
                        }
                    }
                }
            }
            @if stats.is_empty() { p class="sub" { "No field yet: create the first one below." } }
        }
        div class="card" id="new-field" {
            h2 { "New field" }
            form method="post" action=(format!("/console/apps/{}/fields", app.id)) {
                (csrf)
                div class="row" {
                    input class="grow" type="text" name="name" value=(if typed_agg.is_none() { typed.unwrap_or("") } else { "" }) placeholder="Name, as in your CRM (e.g. last_purchase_at)" required maxlength="128" aria-label="Field name";
                    select name="type" aria-label="Field type" {
                        @for t in FieldType::ALL { option value=(t.as_str()) selected[typed_type == Some(t.as_str())] { (t.as_str()) } }
                    }
                    button type="submit" { "Create field" }
                }
                @if let (Some(e), Some(_), None) = (error, typed, typed_agg) { div class="flash bad inline" role="alert" { (e) } }
                p class="hint" { "1–128 characters, case-sensitive, no control characters or surrounding spaces; id, customerId, created_at and updated_at are reserved." }
            }
        }
        div class="card" id="new-computed" {
            h2 { "New computed field" }
            p class="sub" { "A read-only field whose value is worked out from each customer's events, always current: filter, chart and export it like any field." }
            @if event_types.is_empty() {
                p class="hint" { "Register an event type first (Interactions, or POST …/event-types): a computed field aggregates the events of one type." }
            } @else {
                form method="post" action=(format!("/console/apps/{}/fields", app.id)) {
                    (csrf)
                    input type="hidden" name="kind" value="computed";
                    div class="row wrap" {
                        input class="grow" type="text" name="name" value=(if typed_agg.is_some() { typed.unwrap_or("") } else { "" }) placeholder="Name (e.g. purchases_90d)" required maxlength="128" aria-label="Computed field name";
                        select name="agg" aria-label="Aggregate" {
                            @for a in unico_core::ComputedAgg::ALL {
                                option value=(a.as_str()) selected[typed_agg == Some(a.as_str())] { (computed_label(a)) }
                            }
                        }
                        select name="event" aria-label="Event type" {
                            @for t in event_types { option value=(t) selected[flash.get("event") == Some(t)] { (t) } }
                        }
                        input type="text" name="property" value=(flash.get("property").map_or("", String::as_str)) placeholder="property (sum, avg, min, max)" maxlength="128" aria-label="Number property";
                        input type="text" name="within_last" value=(flash.get("within_last").map_or("", String::as_str)) placeholder="in the last (90d)" size="10" aria-label="Window";
                        button type="submit" { "Create computed field" }
                    }
                    @if let (Some(e), Some(_)) = (error, typed_agg) { div class="flash bad inline" role="alert" { (e) } }
                    p class="hint" { "Count, sum, average, min and max give numbers (sum, average, min and max of a number property); first and last give the time of the first or last event. Leave the window empty to count every retained event." }
                }
            }
        }
        div class="card" id="upload" data-url=(format!("/console/apps/{}/imports", app.id)) {
            h2 class="card-title" { "Upload customers (CSV)" }
            div class="row" {
                input class="grow" type="file" id="csv-file" accept=".csv,text/csv" aria-label="CSV file to import";
                select id="csv-mode" aria-label="What to do with invalid rows" {
                    option value="atomic" { "all or nothing" }
                    option value="skip_invalid" { "skip invalid rows" }
                }
                button type="button" id="csv-go" { "Upload" }
            }
            p class="hint" { "customerId,fieldName,fieldValue (one row per value), or customerId plus one column per field; comma or semicolon; UTF-8." }
            div id="csv-progress" hidden {
                div class="bar full" { i id="csv-bar" {} }
                p class="hint" id="csv-status" {}
            }
            div id="csv-result" hidden {
                p id="csv-summary" {}
                button type="button" id="csv-retry" hidden { "Import the valid rows" }
                table id="csv-errors" hidden {
                    thead { tr { th { "Line" } th { "Column" } th { "Value" } th { "Reason" } } }
                    tbody {}
                }
            }
        }
    }
}

/// How the New computed field form names an aggregate.
fn computed_label(agg: unico_core::ComputedAgg) -> &'static str {
    use unico_core::ComputedAgg as A;
    match agg {
        A::Count => "count of",
        A::Sum => "sum of",
        A::Avg => "average of",
        A::Min => "minimum of",
        A::Max => "maximum of",
        A::First => "first time of",
        A::Last => "last time of",
    }
}

/// The New field form, or the New computed field form (`kind=computed`).
#[derive(Deserialize)]
pub struct NewField {
    name: String,
    /// Required for a stored field; a computed field's type is its aggregate's.
    r#type: Option<String>,
    #[serde(default)]
    kind: String,
    #[serde(default)]
    agg: String,
    #[serde(default)]
    event: String,
    #[serde(default)]
    property: String,
    #[serde(default)]
    within_last: String,
}

pub async fn create_field(
    State(state): State<AppState>,
    AppPage(app, _): AppPage,
    FormBody(form): FormBody<NewField>,
) -> Response {
    let back = |key: &str, value: &str| {
        redirect(&format!(
            "/console/apps/{}/fields?{key}={}",
            app.id,
            encode(value)
        ))
    };
    // An error keeps what was typed and scrolls back to the form.
    let refused = |message: &str| {
        redirect(&format!(
            "/console/apps/{}/fields?error={}&name={}&type={}#new-field",
            app.id,
            encode(message),
            encode(&form.name),
            encode(form.r#type.as_deref().unwrap_or(""))
        ))
    };
    if form.kind == "computed" {
        return create_computed_field(&state, app.id, &form).await;
    }
    let Some(typed_type) = form.r#type.as_deref() else {
        // As a form missing a key is answered everywhere (the form is not the page's).
        return ApiError::invalid("type", "the form has no type").into_response();
    };
    let name = match FieldName::parse(&form.name) {
        Ok(n) => n,
        Err(e) => return refused(&e.to_string()),
    };
    let ty = match FieldType::parse(typed_type) {
        Ok(t) => t,
        Err(e) => return refused(&e.to_string()),
    };
    let id = app.id;
    let shown = name.as_str().to_owned();
    match state
        .blocking(move |s| s.create_field(id, &name, ty, now_ms()))
        .await
    {
        Ok(_) => back("created", &shown),
        Err(e) => refused(&e.to_string()),
    }
}

/// The New computed field form's submission: back to the fields page, with the error and
/// what was typed when it is refused.
async fn create_computed_field(state: &AppState, app: AppId, form: &NewField) -> Response {
    let refused = |message: &str| {
        redirect(&format!(
            "/console/apps/{app}/fields?error={}&name={}&agg={}&event={}&property={}&within_last={}#new-computed",
            encode(message),
            encode(&form.name),
            encode(&form.agg),
            encode(&form.event),
            encode(&form.property),
            encode(&form.within_last),
        ))
    };
    let name = match FieldName::parse(&form.name) {
        Ok(n) => n,
        Err(e) => return refused(&e.to_string()),
    };
    let optional = |s: &str| Some(s.trim().to_owned()).filter(|s| !s.is_empty());
    let def = crate::dto::ComputedDef {
        event: form.event.clone(),
        agg: form.agg.clone(),
        property: optional(&form.property),
        within_last: optional(&form.within_last),
    };
    let computed = match crate::routes::fields::parse_computed(&def) {
        Ok(c) => c,
        Err(e) => return refused(&e.to_string()),
    };
    let shown = name.as_str().to_owned();
    match state
        .blocking_api(move |s| crate::routes::fields::create_computed(s, app, &name, &computed))
        .await
    {
        Ok(_) => redirect(&format!(
            "/console/apps/{app}/fields?created={}",
            encode(&shown)
        )),
        Err(e) => refused(&e.to_string()),
    }
}

/// The input of one field in the customer form: the value as text, or empty.
fn input_text(value: Option<&unico_core::Value>) -> String {
    value.map(unico_core::Value::to_text).unwrap_or_default()
}

/// The customer page's interactions: the summary, and the timeline when its tab is open.
pub(super) struct Interactions {
    activity: unico_store::Activity,
    /// The Subscriptions card (on the profile tab).
    consent: Option<super::consent::Consent>,
    /// The Identities card (on the profile tab), and the outcome of the last action on it.
    identities: Option<super::identities::Identities>,
    notice: Option<String>,
    /// The timeline's page, its type filter and the registered types, on the timeline tab.
    timeline: Option<(unico_store::EventPage, Option<String>, Vec<String>)>,
}

#[allow(clippy::too_many_arguments)]
fn customer_body(
    app: &Application,
    schema: &unico_core::Schema,
    customer: &unico_core::Customer,
    errors: &HashMap<String, String>,
    saved: bool,
    csrf: &CsrfToken,
    from: &str,
    interactions: &Interactions,
) -> Markup {
    let base = format!(
        "/console/apps/{}/customers/{}",
        app.id,
        encode(customer.customer_id.as_str())
    );
    html! {
        p { a id="back-to-list" href=(format!("/console/apps/{}/customers{from}", app.id)) { "← Customers" } }
        h1 class="mono" { (customer.customer_id.as_str()) }
        p class="sub" { "Created " (local_time(app, customer.created_at)) " · last modified " (local_time(app, customer.updated_at)) " · " span id="zone" { (zone_note(app)) } }
        (super::timeline::activity_line(app, &interactions.activity))
        @let on_timeline = interactions.timeline.is_some();
        @let tab_query = |tab: &str| if from.is_empty() { format!("?tab={tab}") } else { format!("{from}&tab={tab}") };
        nav class="tabs" aria-label="Customer sections" {
            a class=(if on_timeline { "tab" } else { "tab on" }) href=(format!("{base}{}", tab_query("profile"))) aria-current=[(!on_timeline).then_some("page")] { "Profile" }
            a class=(if on_timeline { "tab on" } else { "tab" }) href=(format!("{base}{}", tab_query("timeline"))) aria-current=[on_timeline.then_some("page")] { "Timeline" }
        }
        @if let Some((page, chosen, types)) = &interactions.timeline {
            (super::timeline::timeline_card(app, &base, page, types, chosen.as_deref(), from))
        } @else {
        @if saved { div class="flash ok" { "Saved." } }
        @if !errors.is_empty() { div class="flash bad" { "Nothing was saved: fix the values marked below." } }
        div class="card" {
            form method="post" action=(format!("{base}{from}")) id="customer-form" data-unsaved-guard {
                (csrf)
                table class="form" {
                    tbody {
                        tr { th { label for="field-id" { "ID" } } td { input id="field-id" class="locked" type="text" value=(customer.id) readonly disabled; } td class="hint hide-narrow" { "assigned by Unico, never changes" } td {} }
                        tr { th { label for="field-customer-id" { "customerId" } } td { input id="field-customer-id" class="locked" type="text" value=(customer.customer_id.as_str()) readonly disabled; } td class="hint hide-narrow" { "your key for this customer, never changes" } td {} }
                        @for def in schema.fields() {
                            @let name = def.name.as_str();
                            // Ids from the field's number: names may hold any character.
                            @let input_id = format!("field-{}", def.id.0);
                            @let error_id = format!("field-{}-error", def.id.0);
                            @let error = errors.get(name);
                            @let current = errors.get(&format!("value:{name}")).cloned().unwrap_or_else(|| input_text(customer.get(def.id)));
                            @if let Some(computed) = &def.computed {
                                tr class="computed" {
                                    th class="mono" { label for=(input_id) { (name) } }
                                    @let current = match customer.get(def.id) { Some(unico_core::Value::Datetime(ms)) => local_time(app, *ms), _ => current };
                                    td { input id=(input_id) class="locked mono" type="text" value=(current) placeholder="no value" readonly title=(format!("computed: {computed}")); }
                                    td class="hide-narrow" { span class="pill" title=(format!("{} values, computed from events", def.field_type.as_str())) { "computed" } }
                                    td class="hint hide-narrow" { (computed.to_string()) }
                                }
                            } @else {
                            tr {
                                th class="mono" { label for=(input_id) { (name) } }
                                td {
                                    @let invalid = error.map(|_| "true");
                                    @let described = error.map(|_| error_id.as_str());
                                    @match def.field_type {
                                        FieldType::Number => input id=(input_id) type="text" inputmode="decimal" name=(format!("f:{name}")) value=(current) placeholder="42, -3.5" aria-invalid=[invalid] aria-describedby=[described];,
                                        FieldType::Date => input id=(input_id) type="date" name=(format!("f:{name}")) value=(current) aria-invalid=[invalid] aria-describedby=[described];,
                                        FieldType::Datetime => {
                                            // In the application's zone (what was typed, after a refusal).
                                            @let local = if error.is_some() { current.clone() } else { customer.get(def.id).and_then(|v| match v { unico_core::Value::Datetime(ms) => Some(local_input(app, *ms)), _ => None }).unwrap_or_default() };
                                            input id=(input_id) type="datetime-local" name=(format!("f:{name}")) value=(local) step=[local_input_step(&local)] aria-invalid=[invalid] aria-describedby=[described];
                                        },
                                        FieldType::String => input id=(input_id) type="text" name=(format!("f:{name}")) value=(current) maxlength="4096" aria-invalid=[invalid] aria-describedby=[described];,
                                    }
                                    @if let Some(e) = error { div class="err" id=(error_id) { (e) } }
                                }
                                td class="hide-narrow" { span class="pill" { (def.field_type.as_str()) } }
                                td class="nowrap" {
                                    button type="button" class="icon" data-clear=(format!("f:{name}")) title="Remove this value (on save)" aria-label=(format!("Remove the value of {name}")) { "×" }
                                }
                            }
                            }
                        }
                    }
                }
                p class="hint" { "An empty box removes the value." }
                button type="submit" { "Save" }
            }
        }
        @if let Some(ids) = &interactions.identities {
            (super::identities::card(app, &base, ids, csrf, interactions.notice.as_deref()))
        }
        @if let Some(consent) = &interactions.consent {
            (super::consent::card(app, &base, consent, csrf))
        }
        div class="card" {
            form method="post" action=(format!("{base}/delete")) data-confirm="Delete this customer and all their values? This cannot be undone." {
                (csrf)
                div class="row" {
                    span class="grow" { "Delete this customer and all their values." }
                    button type="submit" class="destructive" { "Delete customer" }
                }
            }
            div class="row privacy" {
                span class="grow" { "Privacy: " a href=(format!("{base}/export.json")) download { "download everything held on this customer (JSON)" } ", or erase them for good." }
                form method="post" action=(format!("{base}/erase")) data-confirm="Erase this customer? Their values, events and consent are removed everywhere, the change log and the engines' snapshots included. This cannot be undone." {
                    (csrf)
                    button type="submit" class="destructive" { "Erase customer" }
                }
            }
        }
        }
    }
}

/// Loads what the customer page shows of the customer's events.
async fn load_interactions(
    state: &AppState,
    app: AppId,
    customer_id: &unico_core::CustomerId,
    query: &HashMap<String, String>,
) -> Result<Interactions, ApiError> {
    let on_timeline = query.get("tab").map(String::as_str) == Some("timeline");
    let chosen = query
        .get("type")
        .filter(|t| !t.is_empty())
        .and_then(|t| unico_core::EventCode::parse(t).ok());
    let before = query.get("before").and_then(|c| {
        let (ts, id) = c.split_once('_')?;
        Some((ts.parse().ok()?, id.parse().ok()?))
    });
    let customer_id = customer_id.clone();
    let merge_from = query
        .get("merge_from")
        .map(|f| f.trim().to_owned())
        .filter(|f| !f.is_empty());
    let notice = query.get("notice").cloned();
    state
        .blocking(move |s| {
            let activity = s.customer_activity(app, &customer_id)?;
            let timeline = if on_timeline {
                let page = s.customer_events(
                    app,
                    &customer_id,
                    &unico_store::EventQuery {
                        types: chosen.iter().cloned().collect(),
                        after: before,
                        limit: 50,
                        ..Default::default()
                    },
                )?;
                let types = s
                    .schema(app)?
                    .event_types()
                    .all()
                    .iter()
                    .map(|t| t.code.as_str().to_owned())
                    .collect();
                Some((page, chosen.map(|c| c.as_str().to_owned()), types))
            } else {
                None
            };
            let (consent, identities) = if on_timeline {
                (None, None)
            } else {
                (
                    Some(super::consent::load(s, app, &customer_id)?),
                    Some(super::identities::load(
                        s,
                        app,
                        &customer_id,
                        merge_from.as_deref(),
                    )?),
                )
            };
            Ok(Interactions {
                activity,
                timeline,
                consent,
                identities,
                notice,
            })
        })
        .await
}

async fn load_customer(
    state: &AppState,
    app: AppId,
    raw_id: &str,
) -> Result<(unico_core::Schema, unico_core::Customer), Response> {
    let customer_id = unico_core::CustomerId::parse(raw_id).map_err(|_| not_found())?;
    let engines = state.engines.clone();
    state
        .blocking(move |s| {
            let schema = s.schema(app)?;
            let mut one = [s.get_customer(app, &customer_id)?];
            crate::computed::fill(&engines, app, &schema, &mut one)?;
            let [customer] = one;
            Ok((schema, customer))
        })
        .await
        .map_err(|e| match e {
            ApiError::NotFound(_) => not_found(),
            other => failure(other),
        })
}

pub async fn customer(
    State(state): State<AppState>,
    AppPage(app, csrf): AppPage,
    Path((_, customer_id)): Path<(String, String)>,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    let (schema, customer) = match load_customer(&state, app.id, &customer_id).await {
        Ok(c) => c,
        Err(r) => return r,
    };
    let interactions = match load_interactions(&state, app.id, &customer.customer_id, &query).await
    {
        Ok(i) => i,
        Err(e) => return failure(e),
    };
    let body = customer_body(
        &app,
        &schema,
        &customer,
        &HashMap::new(),
        query.contains_key("saved"),
        &csrf,
        &list_query(&query),
        &interactions,
    );
    Html(
        layout::page(
            customer.customer_id.as_str(),
            Some(&app),
            Section::Customers,
            Some(&csrf),
            body,
        )
        .into_string(),
    )
    .into_response()
}

/// Saves the form: every field's box becomes a change (empty removes); any invalid value
/// re-shows the form with its message and nothing is written.
pub async fn save_customer(
    State(state): State<AppState>,
    AppPage(app, csrf): AppPage,
    Path((_, customer_id)): Path<(String, String)>,
    Query(query): Query<HashMap<String, String>>,
    FormBody(form): FormBody<Vec<(String, String)>>,
) -> Response {
    let from = list_query(&query);
    let (schema, customer) = match load_customer(&state, app.id, &customer_id).await {
        Ok(c) => c,
        Err(r) => return r,
    };
    let mut changes = Vec::new();
    let mut errors = HashMap::new();
    for (key, text) in &form {
        let Some(name) = key.strip_prefix("f:") else {
            continue;
        };
        let Some(def) = schema.by_name(name).filter(|d| !d.is_computed()) else {
            continue;
        };
        // A datetime-local box sends a wall-clock time without offset: it is the
        // application's; an instant with `Z` or an offset is taken as it is.
        let local = (def.field_type == FieldType::Datetime)
            .then(|| from_local_input(&app, text))
            .flatten();
        let text = local.as_ref().unwrap_or(text);
        match unico_core::value::parse_text(def.field_type, text) {
            Ok(value) => changes.push(unico_core::FieldChange {
                field: def.id,
                value,
            }),
            Err(e) => {
                errors.insert(name.to_owned(), e.to_string());
                errors.insert(format!("value:{name}"), text.clone());
            }
        }
    }
    if !errors.is_empty() {
        let interactions =
            match load_interactions(&state, app.id, &customer.customer_id, &HashMap::new()).await {
                Ok(i) => i,
                Err(e) => return failure(e),
            };
        let body = customer_body(
            &app,
            &schema,
            &customer,
            &errors,
            false,
            &csrf,
            &from,
            &interactions,
        );
        return (
            StatusCode::BAD_REQUEST,
            Html(
                layout::page(
                    customer.customer_id.as_str(),
                    Some(&app),
                    Section::Customers,
                    Some(&csrf),
                    body,
                )
                .into_string(),
            ),
        )
            .into_response();
    }
    let (id, cid) = (app.id, customer.customer_id.clone());
    match state
        .blocking(move |s| s.update_customer(id, &cid, &changes, now_ms()))
        .await
    {
        Ok(_) => redirect(&format!(
            "/console/apps/{}/customers/{}{}saved=1",
            app.id,
            encode(customer.customer_id.as_str()),
            if from.is_empty() {
                "?".to_owned()
            } else {
                format!("{from}&")
            }
        )),
        Err(e) => failure(e),
    }
}

/// The customer's subject export, downloaded from their page.
pub async fn customer_export(
    State(state): State<AppState>,
    AppPage(app, _): AppPage,
    Path((_, customer_id)): Path<(String, String)>,
) -> Response {
    let Ok(cid) = unico_core::CustomerId::parse(&customer_id) else {
        return not_found();
    };
    match crate::routes::privacy::document(&state, app.id, cid).await {
        Ok(doc) => (
            [(
                header::CONTENT_DISPOSITION,
                "attachment; filename=\"customer.json\"".to_owned(),
            )],
            axum::Json(doc),
        )
            .into_response(),
        Err(ApiError::NotFound(_)) => not_found(),
        Err(e) => failure(e),
    }
}

/// How the audit log names the signed-in user of a console request.
pub(super) async fn console_actor(state: &AppState, headers: &HeaderMap) -> String {
    match signed_in(state, headers).await {
        Ok((principal, _)) => crate::audit::console_actor(&principal),
        Err(_) => "console".to_owned(),
    }
}

/// Erases the customer (right to erasure) and goes back to the list.
pub async fn erase_customer(
    State(state): State<AppState>,
    page: AppPage,
    headers: HeaderMap,
    Path((_, customer_id)): Path<(String, String)>,
) -> Response {
    let actor = console_actor(&state, &headers).await;
    remove_customer(state, page, customer_id, Some(actor)).await
}

pub async fn delete_customer(
    State(state): State<AppState>,
    page: AppPage,
    Path((_, customer_id)): Path<(String, String)>,
) -> Response {
    remove_customer(state, page, customer_id, None).await
}

/// Deletes a customer, or erases it (audited as done by the actor given), then back to
/// the list (also when it was gone already).
async fn remove_customer(
    state: AppState,
    AppPage(app, _): AppPage,
    customer_id: String,
    erase: Option<String>,
) -> Response {
    let Ok(cid) = unico_core::CustomerId::parse(&customer_id) else {
        return not_found();
    };
    let id = app.id;
    let removed = state
        .blocking(move |s| match erase {
            Some(actor) => {
                let erased = s.erase_customer(id, &cid)?;
                crate::audit::record(s, Some(id), &actor, "customer.erased", erased)?;
                Ok(erased)
            }
            None => s.delete_customer(id, &cid),
        })
        .await;
    match removed {
        Ok(_) | Err(ApiError::NotFound(_)) => {
            redirect(&format!("/console/apps/{}/customers", app.id))
        }
        Err(e) => failure(e),
    }
}

/// Starts an import from the console's upload box (the file as the body, like the API).
/// Downloads the current filter's members (or everyone) as a wide CSV.
pub async fn export(
    State(state): State<AppState>,
    AppPage(app, _): AppPage,
    Query(query): Query<Vec<(String, String)>>,
) -> Response {
    let app = app.id;
    // The customers page's search and filter, as one filter (see `with_search`).
    let find = |key: &str| {
        query
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.clone())
            .unwrap_or_default()
    };
    // The schema names the searched fields; without a search it is not needed here.
    let (filter, search) = (find("filter"), find("q"));
    let filter = if search.trim().is_empty() {
        filter
    } else {
        match state.blocking(move |s| s.schema(app)).await {
            Ok(schema) => with_search(&filter, &search, &schema),
            Err(e) => return e.into_response(),
        }
    };
    let mut pairs: Vec<(String, String)> = query
        .iter()
        .filter(|(k, _)| k != "filter" && k != "q")
        .cloned()
        .collect();
    if !filter.trim().is_empty() {
        pairs.push(("filter".to_owned(), filter));
    }
    let query = crate::routes::params_from_pairs(pairs);
    match crate::routes::export::stream(state, app, &query).await {
        Ok(response) => response,
        Err(e) => e.into_response(),
    }
}

/// Deletes a field and its values (the page asked for confirmation with the count).
pub async fn delete_field(
    State(state): State<AppState>,
    AppPage(app, _): AppPage,
    headers: HeaderMap,
    Path((_, name)): Path<(String, String)>,
) -> Response {
    let actor = console_actor(&state, &headers).await;
    let id = app.id;
    let Ok(field) = FieldName::parse(&name) else {
        return not_found();
    };
    let shown = field.as_str().to_owned();
    let back = |key: &str, text: &str| {
        redirect(&format!("/console/apps/{id}/fields?{key}={}", encode(text)))
    };
    let deleted = state
        .blocking(move |s| {
            let n = s.delete_field(id, &field)?;
            crate::audit::record(s, Some(id), &actor, "field.deleted", &field)?;
            Ok(n)
        })
        .await;
    match deleted {
        Ok(n) => back(
            "deleted",
            &format!("Field {shown} deleted with its {n} values."),
        ),
        Err(e) => back("error", &e.to_string()),
    }
}
