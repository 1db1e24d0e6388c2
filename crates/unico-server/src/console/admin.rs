//! Running applications from the console: the admin creates applications and sets their
//! time zone; whoever may reach an application creates and revokes its API keys. A key is
//! shown once, on the page that answers its creation (never in an address), with a copy
//! button. Each action goes through the same store calls as the API and is audited as a
//! console action.

use std::collections::HashMap;

use axum::extract::{Path, State};
use axum::http::{HeaderMap, header};
use axum::response::{Html, IntoResponse, Response};
use maud::{Markup, html};
use serde::Deserialize;
use unico_core::{AppId, AppName, Application, TimeZoneName};
use unico_store::ApiKeyInfo;

use super::layout::{self, Section};
use super::location::redirect;
use super::pages::{encode, failure, not_found, signed_in};
use super::session::CsrfToken;
use super::timeline::local_time;
use crate::auth::Principal;
use crate::error::ApiError;
use crate::extract::FormBody;
use crate::state::AppState;

/// The Applications page's answer to an action: a message on the page.
fn back(kind: &str, message: &str) -> Response {
    redirect(&format!("/console/apps?{kind}={}", encode(message)))
}

/// The zones a time zone box suggests: every name of the time zone database.
fn zone_names() -> Markup {
    html! {
        datalist id="time-zones" {
            @for name in jiff::tz::db().available() { option value=(name.as_str()) {} }
        }
    }
}

/// The Applications page's management cards: per application, its time zone (the admin
/// may change it) and its API keys (create, revoke); for the admin, a new application.
pub fn manage(
    principal: &Principal,
    apps: &[&Application],
    keys: &HashMap<AppId, Vec<ApiKeyInfo>>,
    csrf: &CsrfToken,
) -> Markup {
    let admin = matches!(principal, Principal::Admin);
    html! {
        // Only the admin's forms take a time zone.
        @if admin { (zone_names()) }
        @for app in apps {
            div class="card" id=(format!("app-{}", app.id)) {
                h2 class="card-title" { (app.name.as_str()) }
                @if admin {
                    form class="row" method="post" action=(format!("/console/apps/{}/timezone", app.id)) {
                        (csrf)
                        label for=(format!("tz-{}", app.id)) { "Time zone" }
                        input id=(format!("tz-{}", app.id)) type="text" name="timezone" value=(app.timezone.as_str())
                            list="time-zones" required autocomplete="off" spellcheck="false";
                        button type="submit" class="secondary small" { "Set time zone" }
                    }
                    p class="hint" { "Days, \"today\" and every time in the console follow this zone." }
                } @else {
                    p class="sub" { "Time zone: " (app.timezone.as_str()) }
                }
                h3 class="keys-title" { "API keys" }
                @let listed = keys.get(&app.id).map(Vec::as_slice).unwrap_or_default();
                table class="keys" {
                    thead { tr { th { "Key" } th class="hide-narrow" { "Created (" (app.timezone.as_str()) ")" } th { "State" } th {} } }
                    tbody {
                        @for k in listed {
                            tr {
                                td class="mono" { (k.prefix) "…" }
                                td class="mono nowrap hide-narrow" { (local_time(app, k.created_at)) }
                                td {
                                    @match k.revoked_at {
                                        Some(at) => span class="pill off" title=(format!("revoked {}", local_time(app, at))) { "revoked" },
                                        None => span class="pill ok" { "active" },
                                    }
                                }
                                td class="num" {
                                    @if k.revoked_at.is_none() {
                                        form method="post" action=(format!("/console/apps/{}/keys/{}/revoke", app.id, k.id))
                                            data-confirm=(format!("Revoke the key {}…? Every program using it stops working at once.", k.prefix)) {
                                            (csrf)
                                            button type="submit" class="danger" aria-label=(format!("Revoke key {}…", k.prefix)) { "Revoke" }
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
                form method="post" action=(format!("/console/apps/{}/keys", app.id)) {
                    (csrf)
                    button type="submit" class="secondary small" { "Create API key" }
                }
            }
        }
        @if admin {
            div class="card" id="new-app" {
                h2 class="card-title" { "New application" }
                form class="row" method="post" action="/console/apps" {
                    (csrf)
                    input class="grow" type="text" name="name" required maxlength="200" placeholder="Name (e.g. My Shop)" aria-label="Application name";
                    input type="text" name="timezone" list="time-zones" placeholder="Time zone (e.g. Europe/Madrid)" aria-label="Time zone" autocomplete="off" spellcheck="false";
                    button type="submit" { "Create application" }
                }
                p class="hint" { "Its first API key is shown once, on the next page. Without a time zone, UTC." }
            }
        }
    }
}

/// The page showing a key once.
fn key_page(csrf: &CsrfToken, app: &Application, key: &str, first: bool) -> Response {
    let body = html! {
        p { a href="/console/apps" { "← Applications" } }
        h1 { @if first { "Application created" } @else { "New API key" } }
        p class="sub" {
            @if first { (app.name.as_str()) " (" (app.timezone.as_str()) ") is ready. Its first API key:" }
            @else { "A new API key for " (app.name.as_str()) ":" }
        }
        div class="card" {
            div class="row" {
                input id="new-key" class="grow mono" type="text" readonly value=(key) aria-label="The new API key";
                button type="button" data-copy="new-key" { "Copy" }
            }
            p class="flash inline" role="status" id="copy-status" hidden {}
            p class="hint" { "Shown once: Unico keeps only a hash of it. Copy it now into the program that will use it; if it is lost, create another and revoke this one." }
            p { a class="button secondary" href=(format!("/console/apps/{}/customers", app.id)) { "Open " (app.name.as_str()) } }
        }
    };
    (
        // The page holds a secret: never kept by the browser or a proxy.
        [(header::CACHE_CONTROL, "no-store")],
        Html(layout::page("API key", None, Section::Apps, Some(csrf), body).into_string()),
    )
        .into_response()
}

#[derive(Deserialize)]
pub struct NewApp {
    name: String,
    #[serde(default)]
    timezone: String,
}

/// Creates an application (admin) and shows its first key.
pub async fn create_app(
    State(state): State<AppState>,
    headers: HeaderMap,
    FormBody(form): FormBody<NewApp>,
) -> Response {
    let (principal, csrf) = match signed_in(&state, &headers).await {
        Ok(p) => p,
        Err(r) => return r,
    };
    if principal.require_admin().is_err() {
        return back("error", "Only the admin key creates applications.");
    }
    let name = match AppName::parse(&form.name) {
        Ok(n) => n,
        Err(e) => return back("error", &format!("Name: {e}")),
    };
    let tz = if form.timezone.trim().is_empty() {
        TimeZoneName::utc()
    } else {
        match TimeZoneName::parse(form.timezone.trim()) {
            Ok(tz) => tz,
            Err(e) => return back("error", &format!("Time zone: {e}")),
        }
    };
    let actor = crate::audit::console_actor(&principal);
    match crate::routes::create_app_with_key(&state, name, tz, actor).await {
        Ok((app, key)) => key_page(&csrf, &app, &key.key, true),
        Err(e) => failure(e),
    }
}

#[derive(Deserialize)]
pub struct NewZone {
    timezone: String,
}

/// Sets an application's time zone (admin).
pub async fn set_timezone(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(app): Path<String>,
    FormBody(form): FormBody<NewZone>,
) -> Response {
    let Some(app) = app_id(&app) else {
        return not_found();
    };
    let principal = match signed_in(&state, &headers).await {
        Ok((p, _)) => p,
        Err(r) => return r,
    };
    if principal.require_admin().is_err() {
        return back(
            "error",
            "Only the admin key changes an application's time zone.",
        );
    }
    let tz = match TimeZoneName::parse(form.timezone.trim()) {
        Ok(tz) => tz,
        Err(e) => return back("error", &format!("Time zone: {e}")),
    };
    let actor = crate::audit::console_actor(&principal);
    match state
        .blocking(move |s| {
            let updated = s.update_app(app, None, Some(&tz))?;
            crate::audit::record(s, Some(app), &actor, "app.updated", "timezone")?;
            Ok(updated)
        })
        .await
    {
        Ok(updated) => back(
            "done",
            &format!(
                "{} is now on {} time.",
                updated.name.as_str(),
                updated.timezone.as_str()
            ),
        ),
        Err(ApiError::NotFound(_)) => back("error", "No such application."),
        Err(e) => failure(e),
    }
}

/// The application id of a path.
fn app_id(text: &str) -> Option<AppId> {
    text.parse().ok().map(AppId)
}

/// The signed-in principal, if it may reach `app`.
async fn reaching(
    state: &AppState,
    headers: &HeaderMap,
    app: AppId,
) -> Result<(Principal, CsrfToken), Response> {
    let (principal, csrf) = signed_in(state, headers).await?;
    if principal.require_app(app).is_err() {
        return Err(back("error", "This key does not reach that application."));
    }
    Ok((principal, csrf))
}

/// Creates an API key of an application and shows it once.
pub async fn create_key(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(app): Path<String>,
) -> Response {
    let Some(app) = app_id(&app) else {
        return not_found();
    };
    let (principal, csrf) = match reaching(&state, &headers, app).await {
        Ok(p) => p,
        Err(r) => return r,
    };
    let found = match state.blocking(move |s| s.get_app(app)).await {
        Ok(a) => a,
        Err(ApiError::NotFound(_)) => return back("error", "No such application."),
        Err(e) => return failure(e),
    };
    let actor = crate::audit::console_actor(&principal);
    match crate::routes::new_key(&state, app, actor).await {
        Ok(key) => key_page(&csrf, &found, &key.key, false),
        Err(e) => failure(e),
    }
}

/// Revokes an API key: it stops working at once (a console session signed in with it
/// too, at its next request).
pub async fn revoke_key(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path((app, key_id)): Path<(String, String)>,
) -> Response {
    let (Some(app), Ok(key_id)) = (app_id(&app), key_id.parse::<i64>()) else {
        return not_found();
    };
    let principal = match reaching(&state, &headers, app).await {
        Ok((p, _)) => p,
        Err(r) => return r,
    };
    let actor = crate::audit::console_actor(&principal);
    match crate::routes::revoke_key(&state, app, key_id, actor).await {
        Ok(()) => back("done", "The key is revoked."),
        Err(ApiError::NotFound(_)) => back("error", "No such key."),
        Err(e) => failure(e),
    }
}

/// The Applications page's message of the last action, from its query.
pub fn flash(query: &HashMap<String, String>) -> Markup {
    html! {
        @if let Some(done) = query.get("done") { div class="flash ok" role="status" { (done) } }
        @if let Some(error) = query.get("error") { div class="flash bad" role="alert" { (error) } }
    }
}
