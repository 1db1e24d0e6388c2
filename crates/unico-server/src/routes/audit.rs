//! The audit log over HTTP: an application's records (its key or the admin key) and every
//! record of the installation (the admin key), newest first, in pages.

use std::collections::HashMap;

use axum::Json;
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, RawQuery, State};
use serde::Serialize;
use unico_core::AppId;
use unico_core::time::format_datetime;
use unico_store::audit::{AuditRecord, MAX_AUDIT_PAGE};
use utoipa::ToSchema;

use super::params::{PathParams, QueryParams};
use super::system::answers;
use crate::auth::Principal;
use crate::error::{ApiError, ErrorBody};
use crate::state::AppState;

type PathResult = Result<Path<HashMap<String, String>>, PathRejection>;

/// Records per page unless `limit` says otherwise.
const DEFAULT_PAGE: usize = 100;

/// One audited action.
#[derive(Serialize, ToSchema)]
pub struct AuditOut {
    pub id: i64,
    /// The application concerned.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub app: Option<i64>,
    /// When (RFC 3339 UTC).
    pub at: String,
    /// Who: `admin`, `key:ID`, or either prefixed with `console `.
    pub actor: String,
    /// What: `app.created`, `app.updated`, `app.deleted`, `key.created`, `key.revoked`,
    /// `field.deleted`, `event_type.deleted`, `customer.erased`.
    pub action: String,
    /// On what: an id or a name (a customer by its internal id only).
    pub target: String,
}

impl From<&AuditRecord> for AuditOut {
    fn from(r: &AuditRecord) -> Self {
        AuditOut {
            id: r.id,
            app: r.app.map(|a| a.0),
            at: format_datetime(r.at),
            actor: r.actor.clone(),
            action: r.action.clone(),
            target: r.target.clone(),
        }
    }
}

/// A page of the audit log.
#[derive(Serialize, ToSchema)]
pub struct AuditList {
    pub records: Vec<AuditOut>,
    /// Pass as `before` for the next (older) page; absent on the last one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_before: Option<i64>,
}

fn page(query: RawQuery) -> Result<(Option<i64>, usize), ApiError> {
    let query = QueryParams::from(query, &["before", "limit"])?;
    let before = query
        .get("before")
        .map(|t| {
            t.parse::<i64>().map_err(|_| {
                ApiError::InvalidParameter(format!(
                    "before must be a record id, got \"{}\"",
                    unico_core::value::excerpt(t)
                ))
            })
        })
        .transpose()?;
    let limit = match query.get("limit") {
        None => DEFAULT_PAGE,
        Some(t) => t
            .parse::<usize>()
            .ok()
            .filter(|n| (1..=MAX_AUDIT_PAGE).contains(n))
            .ok_or_else(|| {
                ApiError::InvalidParameter(format!(
                    "limit must be a whole number from 1 to {MAX_AUDIT_PAGE}, got \"{}\"",
                    unico_core::value::excerpt(t)
                ))
            })?,
    };
    Ok((before, limit))
}

async fn list(
    state: &AppState,
    app: Option<AppId>,
    before: Option<i64>,
    limit: usize,
) -> Result<AuditList, ApiError> {
    let records = state
        .blocking(move |s| s.audit_log(app, before, limit + 1))
        .await?;
    let more = records.len() > limit;
    let shown: Vec<AuditOut> = records.iter().take(limit).map(AuditOut::from).collect();
    Ok(AuditList {
        next_before: more.then(|| shown.last().map(|r| r.id)).flatten(),
        records: shown,
    })
}

/// The application's audit log, newest first.
#[utoipa::path(get, path = "/v1/apps/{app}/audit", tag = "applications",
    params(("app" = i64, Path), ("before" = Option<i64>, Query, description = "older than this record"),
        ("limit" = Option<usize>, Query, minimum = 1, maximum = 1000, description = "1–1000, default 100")),
    responses(
        (status = 200, description = "a page of records", body = AuditList),
        (status = 400, description = "a bad path, `before` or `limit` (`invalid_parameter`)", body = ErrorBody),
        (status = 403, description = answers::OTHER_APP, body = ErrorBody),
        (status = 404, description = "the path names no application id (`not_found`); the records of a deleted application are kept and answered", body = ErrorBody),
    ))]
pub async fn app_audit(
    State(state): State<AppState>,
    principal: Principal,
    path: PathResult,
    query: RawQuery,
) -> Result<Json<AuditList>, ApiError> {
    let app = PathParams::from(path)?.app()?;
    principal.require_app(app)?;
    let (before, limit) = page(query)?;
    list(&state, Some(app), before, limit).await.map(Json)
}

/// Every audited action of the installation, newest first (admin key).
#[utoipa::path(get, path = "/v1/audit", tag = "applications",
    params(("before" = Option<i64>, Query, description = "older than this record"),
        ("limit" = Option<usize>, Query, minimum = 1, maximum = 1000, description = "1–1000, default 100")),
    responses(
        (status = 200, description = "a page of records", body = AuditList),
        (status = 400, description = "a bad `before` or `limit` (`invalid_parameter`)", body = ErrorBody),
        (status = 403, description = answers::ADMIN_ONLY, body = ErrorBody),
    ))]
pub async fn all_audit(
    State(state): State<AppState>,
    principal: Principal,
    query: RawQuery,
) -> Result<Json<AuditList>, ApiError> {
    principal.require_admin()?;
    let (before, limit) = page(query)?;
    list(&state, None, before, limit).await.map(Json)
}
