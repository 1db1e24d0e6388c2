//! The customer page's Identities card: the identities the customer holds (with a form to
//! link one and a button to remove each), the customers merged into it (its aliases, with
//! the values that lost), and a merge that shows what will move before it is done.

use std::collections::HashMap;

use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::response::Response;
use maud::{Markup, html};
use serde::Deserialize;
use unico_core::{AppId, Application, CustomerId};

use super::location::redirect;
use super::pages::{AppPage, encode, failure, not_found};
use super::session::CsrfToken;
use super::timeline::local_time;
use crate::error::ApiError;
use crate::extract::FormBody;
use crate::identity::IdentityRules;
use crate::routes::identities::{IdentityList, MergePreview, identity_list, preview};
use crate::state::AppState;

/// What the card shows.
pub struct Identities {
    pub list: IdentityList,
    /// The merge asked to be previewed (`?merge_from=…`): what it would do, or why not.
    pub preview: Option<Result<MergePreview, String>>,
}

/// Reads the card's data (on a blocking thread's store).
pub fn load(
    s: &dyn unico_store::Store,
    app: AppId,
    customer_id: &CustomerId,
    merge_from: Option<&str>,
) -> Result<Identities, unico_store::StoreError> {
    let preview = merge_from.map(|from| {
        CustomerId::parse(from)
            .map_err(|e| e.to_string())
            .and_then(|from| preview(s, app, customer_id, &from).map_err(|e| e.to_string()))
    });
    Ok(Identities {
        list: identity_list(s, app, customer_id)?,
        preview,
    })
}

fn values_line(values: &serde_json::Map<String, serde_json::Value>) -> String {
    values
        .iter()
        .map(|(k, v)| match v {
            serde_json::Value::String(s) => format!("{k} = {s}"),
            other => format!("{k} = {other}"),
        })
        .collect::<Vec<_>>()
        .join(" · ")
}

/// The card. `notice` is the outcome of the last action (from the redirect's query).
pub fn card(
    app: &Application,
    base: &str,
    ids: &Identities,
    csrf: &CsrfToken,
    notice: Option<&str>,
) -> Markup {
    let list = &ids.list;
    html! {
        div class="card" id="identities" {
            h2 class="card-title" {
                "Identities"
                @if list.anonymous { " " span class="pill" title="Created for a device or identity nobody held; merged into a known customer when that identity is linked to one" { "anonymous" } }
            }
            @if let Some(n) = notice { div class="flash" role="status" { (n) } }
            @if list.identities.is_empty() {
                p class="hint" { "No identity yet: link an email, a phone, a device or a code of another system, and any of them finds this customer." }
            } @else {
                table {
                    thead { tr { th { "Kind" } th { "Value" } th class="hide-narrow" { "Linked" } th {} } }
                    tbody {
                        @for i in &list.identities {
                            tr {
                                td { span class="pill" { (i.kind) } }
                                td class="mono" { (i.value) }
                                td class="hide-narrow mono nowrap" { (short(app, &i.linked_at)) }
                                td class="nowrap" {
                                    form method="post" action=(format!("{base}/identities/unlink")) data-confirm=(format!("Remove {} {} from this customer?", i.kind, i.value)) {
                                        (csrf)
                                        input type="hidden" name="kind" value=(i.kind);
                                        input type="hidden" name="value" value=(i.value);
                                        button type="submit" class="secondary" aria-label=(format!("Remove {} {}", i.kind, i.value)) { "Remove" }
                                    }
                                }
                            }
                        }
                    }
                }
            }
            form method="post" action=(format!("{base}/identities")) class="row spaced" {
                (csrf)
                label class="visually-hidden" for="identity-kind" { "Kind" }
                select id="identity-kind" name="kind" {
                    @for k in &list.kinds { option value=(k) { (k) } }
                }
                label class="visually-hidden" for="identity-value" { "Value" }
                input id="identity-value" class="grow" type="text" name="value" required maxlength="256" placeholder="ana@example.com, +34 600 123 456, a device id…" autocomplete="off";
                button type="submit" { "Link identity" }
            }
            p class="hint" { "Emails are lower-cased and phones written in international form (+34…) before they are stored. An identity held by an anonymous customer merges that customer into this one." }
            @if !list.aliases.is_empty() {
                h3 { "Merged into this customer" }
                table {
                    thead { tr { th { "customerId (alias)" } th class="hide-narrow" { "Merged" } th { "Values that lost" } } }
                    tbody {
                        @for a in &list.aliases {
                            tr {
                                td class="mono" { (a.customer_id) }
                                td class="hide-narrow mono nowrap" { (short(app, &a.merged_at)) }
                                td class="mono" { @if a.lost.is_empty() { span class="hint" { "none" } } @else { (values_line(&a.lost)) } }
                            }
                        }
                    }
                }
            }
            details open[ids.preview.is_some()] {
                summary { "Merge another customer into this one" }
                form method="get" action=(base) class="row spaced" {
                    label class="visually-hidden" for="merge-from" { "customerId to merge" }
                    input id="merge-from" class="grow mono" type="text" name="merge_from" required maxlength="256" placeholder="the other customer's customerId" autocomplete="off";
                    button type="submit" class="secondary" { "Preview merge" }
                }
                @match &ids.preview {
                    Some(Ok(p)) => {
                        div class="merge-preview" id="merge-preview" {
                            p { "Merging " strong class="mono" { (p.from) } " into " strong class="mono" { (p.customer_id) } " moves:" }
                            ul {
                                li { (p.events) " events" }
                                li { (p.identities.len()) " identities" @if !p.identities.is_empty() { ": " span class="mono" { (p.identities.iter().map(|i| format!("{} {}", i.kind, i.value)).collect::<Vec<_>>().join(", ")) } } }
                                li { "consent on " @if p.subscriptions.is_empty() { "no channel" } @else { (p.subscriptions.join(", ")) } " (the later statement per channel wins)" }
                                li { "values this customer lacks: " @if p.fields_filled.is_empty() { "none" } @else { span class="mono" { (values_line(&p.fields_filled)) } } }
                            }
                            p { "Values that lose to this customer's: " @if p.lost.is_empty() { "none" } @else { span class="mono" { (values_line(&p.lost)) } } }
                            p class="hint" { (p.aliases.join(", ")) " will find this customer from now on." }
                            form method="post" action=(format!("{base}/merge")) data-confirm=(format!("Merge {} into {}? It is deleted and its customerId becomes an alias of this customer.", p.from, p.customer_id)) {
                                (csrf)
                                input type="hidden" name="from" value=(p.from);
                                button type="submit" class="destructive" { "Merge " (p.from) " into this customer" }
                            }
                        }
                    }
                    Some(Err(why)) => div class="flash bad" role="alert" { "Cannot merge: " (why) },
                    None => {}
                }
            }
        }
    }
}

fn short(app: &Application, rfc3339: &str) -> String {
    unico_core::time::parse_datetime(rfc3339)
        .map(|ms| local_time(app, ms))
        .unwrap_or_else(|_| rfc3339.to_owned())
}

#[derive(Deserialize)]
pub struct IdentityForm {
    kind: String,
    value: String,
}

#[derive(Deserialize)]
pub struct MergeForm {
    from: String,
}

fn back(app: AppId, customer_id: &CustomerId, notice: &str) -> Response {
    redirect(&format!(
        "/console/apps/{}/customers/{}?notice={}#identities",
        app,
        encode(customer_id.as_str()),
        encode(notice)
    ))
}

async fn actor(state: &AppState, headers: &HeaderMap) -> String {
    super::pages::console_actor(state, headers).await
}

/// The link form: links the identity, then back to the profile with what happened.
pub async fn link(
    State(state): State<AppState>,
    AppPage(app, _): AppPage,
    headers: HeaderMap,
    Path((_, customer_id)): Path<(String, String)>,
    FormBody(form): FormBody<IdentityForm>,
) -> Response {
    let Ok(cid) = CustomerId::parse(&customer_id) else {
        return not_found();
    };
    let id = app.id;
    let rules = match state.blocking(move |s| IdentityRules::of(s, id)).await {
        Ok(r) => r,
        Err(e) => return failure(e),
    };
    let identity = match rules.identity(&form.kind, &form.value) {
        Ok(i) => i,
        Err((_, message)) => return back(app.id, &cid, &format!("Not linked: {message}")),
    };
    let actor = actor(&state, &headers).await;
    match crate::routes::identities::link(&state, app.id, cid.clone(), identity, actor).await {
        Ok((out, _, identity)) => {
            let notice = match &out.merged {
                Some(m) => format!(
                    "Linked {identity}; the anonymous customer {} was merged into this one ({} events moved).",
                    m.from, m.events_moved
                ),
                None if out.linked => format!("Linked {identity}."),
                None => format!("This customer already holds {identity}."),
            };
            back(app.id, &out.customer.customer_id, &notice)
        }
        Err(ApiError::NotFound(_)) => not_found(),
        Err(ApiError::Conflict(m)) => back(app.id, &cid, &format!("Not linked: {m}")),
        Err(e) => failure(e),
    }
}

/// A Remove button: unlinks the identity.
pub async fn unlink(
    State(state): State<AppState>,
    AppPage(app, _): AppPage,
    Path((_, customer_id)): Path<(String, String)>,
    FormBody(form): FormBody<IdentityForm>,
) -> Response {
    let Ok(cid) = CustomerId::parse(&customer_id) else {
        return not_found();
    };
    let id = app.id;
    let c = cid.clone();
    let removed = state
        .blocking(move |s| {
            let rules = IdentityRules::of(s, id)?;
            let identity = rules
                .identity(&form.kind, &form.value)
                .map_err(|(_, m)| unico_store::StoreError::NotFound(m))?;
            s.unlink_identity(id, &c, &identity)?;
            Ok(identity)
        })
        .await;
    match removed {
        Ok(identity) => back(app.id, &cid, &format!("Removed {identity}.")),
        Err(ApiError::NotFound(m)) => back(app.id, &cid, &format!("Nothing removed: {m}")),
        Err(e) => failure(e),
    }
}

/// The merge confirmation: merges (audited) and shows the survivor.
pub async fn merge(
    State(state): State<AppState>,
    AppPage(app, _): AppPage,
    headers: HeaderMap,
    Path((_, customer_id)): Path<(String, String)>,
    FormBody(form): FormBody<MergeForm>,
) -> Response {
    let Ok(cid) = CustomerId::parse(&customer_id) else {
        return not_found();
    };
    let from = match CustomerId::parse(&form.from) {
        Ok(f) => f,
        Err(e) => return back(app.id, &cid, &format!("Not merged: {e}")),
    };
    let actor = actor(&state, &headers).await;
    match crate::routes::identities::merge_customers(&state, app.id, cid.clone(), from, actor).await
    {
        Ok(out) => {
            let notice = match &out.merge {
                Some(m) => format!(
                    "Merged {} into this customer: {} events, {} identities and {} subscriptions moved.",
                    m.from, m.events_moved, m.identities_moved, m.subscriptions_moved
                ),
                None => "Merged.".to_owned(),
            };
            back(app.id, &cid, &notice)
        }
        Err(ApiError::NotFound(m) | ApiError::InvalidParameter(m)) => {
            back(app.id, &cid, &format!("Not merged: {m}"))
        }
        Err(e) => failure(e),
    }
}

/// The customers whose identities match a search text, tried as each kind the
/// application takes (for the customer list's search box): `(identity, customerId)`.
pub fn search(
    s: &dyn unico_store::Store,
    app: AppId,
    text: &str,
) -> Result<Vec<(String, String)>, unico_store::StoreError> {
    let rules = IdentityRules::of(s, app)?;
    let mut out = Vec::new();
    let mut seen = HashMap::new();
    for kind in &rules.kinds {
        let Ok(identity) = rules.identity(kind.as_str(), text) else {
            continue;
        };
        if let Some(c) = s.find_identity(app, &identity)?
            && seen.insert(identity.to_string(), ()).is_none()
        {
            out.push((identity.to_string(), c.customer_id.into_string()));
        }
    }
    Ok(out)
}
