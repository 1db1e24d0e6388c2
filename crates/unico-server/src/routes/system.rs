//! Liveness, readiness and the OpenAPI document.
//!
//! The document is generated from the handlers' `#[utoipa::path]` annotations, which list
//! the answers particular to each operation. The answers that depend on no handler are
//! added here, once, from the facts that cause them: 401 on every operation that needs a
//! key (its security requirement), 414 (the URI bound is a layer in front of every route),
//! 503 on every operation that needs a key (it reaches the store, which may be unable to
//! answer for a moment) and 500 on every operation. `tests/api/documented.rs` drives the router to check that
//! every status it answers is documented.

use axum::Json;
use serde::Serialize;
use utoipa::openapi::path::{Operation, PathItem};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityRequirement, SecurityScheme};
use utoipa::openapi::{Content, Ref, RefOr, ResponseBuilder};
use utoipa::{Modify, OpenApi, ToSchema};

/// Descriptions of error answers that many operations give, for their annotations.
pub(super) mod answers {
    pub const BAD_PATH: &str =
        "a path parameter is not UTF-8 once percent-decoded (`invalid_parameter`)";
    pub const OTHER_APP: &str = "the key belongs to another application (`forbidden`)";
    pub const ADMIN_ONLY: &str = "an API key: only the admin key may do this (`forbidden`)";
    pub const NO_APP: &str = "no such application (`not_found`)";
    pub const TOO_LARGE: &str = "the body is larger than this operation accepts (`body_too_large`)";
}

#[derive(Serialize, ToSchema)]
pub struct Health {
    /// `ok`, or `degraded` when the engines are behind or the disk is nearly full (the
    /// server still answers; see `/ready`).
    pub status: &'static str,
    pub writer: WriterHealth,
    pub engines: EnginesHealth,
    pub disk: DiskHealth,
}

/// The store's writer.
#[derive(Serialize, ToSchema)]
pub struct WriterHealth {
    /// The writer takes writes (the embedded store's writer thread runs).
    pub alive: bool,
    /// Write jobs waiting for the writer.
    pub queued: usize,
    /// Most write jobs that may wait before writes are refused with 503 (0: no queue of
    /// the server's own, as on PostgreSQL).
    pub queue_bound: usize,
}

/// The segment engines.
#[derive(Serialize, ToSchema)]
pub struct EnginesHealth {
    /// Committed changes the engines have not applied yet (the log's head minus `applied`).
    pub behind: u64,
    /// The change log's head.
    pub head: u64,
    /// Every change up to here is in every loaded engine.
    pub applied: u64,
    /// Applications whose engine is loaded.
    pub loaded: usize,
    /// Applications whose engine is being built.
    pub building: usize,
    /// Engines dropped and rebuilt since the start because a failure made them suspect.
    pub failures: u64,
}

/// The disk of the data directory.
#[derive(Serialize, ToSchema)]
pub struct DiskHealth {
    /// Bytes the server may still write there (what an unprivileged process may use).
    #[schema(nullable)]
    pub free_bytes: Option<u64>,
    /// The file system's size in bytes.
    #[schema(nullable)]
    pub total_bytes: Option<u64>,
}

/// Free space under which `/health` says `degraded`: an import spools its whole file and
/// then writes about as much again into the database, and SQLite needs room for its
/// write-ahead log, so below 1 GiB the next import may fail half-way.
pub const HEALTH_MIN_FREE_BYTES: u64 = crate::limits::SPOOL_MIN_FREE_BYTES;

/// The disk holding `dir`: (free, total) bytes.
pub(crate) fn disk_space(dir: &std::path::Path) -> Option<(u64, u64)> {
    let stat = rustix::fs::statvfs(dir).ok()?;
    let unit = stat.f_frsize;
    Some((
        stat.f_bavail.saturating_mul(unit),
        stat.f_blocks.saturating_mul(unit),
    ))
}

/// Health: the writer, the segment engines and the disk, for people and monitoring. 200
/// while the server can take writes (`status` says `degraded` when the engines are behind
/// or the disk nearly full); 503 when the store's writer stopped, which only a restart
/// mends. Load balancers should use `/ready`. No key needed.
#[utoipa::path(get, path = "/health", tag = "system", security(()), responses(
    (status = 200, description = "the server runs and its writer takes writes", body = Health),
    (status = 503, description = "the store's writer stopped: restart the server; `details` name the writer, the engines and the disk (`unavailable`)", body = crate::error::ErrorBody),
))]
pub async fn health(
    axum::extract::State(state): axum::extract::State<crate::state::AppState>,
) -> Result<Json<Health>, crate::error::ApiError> {
    let writer = state.store.writer_stats();
    let engines = state.engines.health();
    let dir = state.data_dir.as_ref().unwrap_or(&state.spool_dir);
    let space = disk_space(dir);
    let behind = engines.behind();
    let disk = DiskHealth {
        free_bytes: space.map(|(free, _)| free),
        total_bytes: space.map(|(_, total)| total),
    };
    if !writer.alive {
        let detail = |field: &str, message: String| crate::error::ErrorDetail {
            field: Some(field.to_owned()),
            message,
        };
        tracing::error!("health: the store's writer stopped");
        return Err(crate::error::ApiError::Failing {
            message: "unhealthy: the store's writer stopped; restart the server".into(),
            details: vec![
                detail("writer", "stopped: writes are refused".into()),
                detail(
                    "engines",
                    format!("{behind} changes behind, {} failures", engines.failures),
                ),
                detail(
                    "disk",
                    disk.free_bytes
                        .map_or("free space unknown".into(), |b| format!("{b} bytes free")),
                ),
            ],
        });
    }
    let low_disk = disk.free_bytes.is_some_and(|b| b < HEALTH_MIN_FREE_BYTES);
    let degraded = behind > READY_MAX_BEHIND || low_disk;
    Ok(Json(Health {
        status: if degraded { "degraded" } else { "ok" },
        writer: WriterHealth {
            alive: writer.alive,
            queued: writer.queued,
            queue_bound: writer.queue_bound,
        },
        engines: EnginesHealth {
            behind,
            head: engines.head,
            applied: engines.applied,
            loaded: engines.loaded,
            building: engines.building,
            failures: engines.failures,
        },
        disk,
    }))
}

/// Changes the engines may lag behind the store and still be called ready: they apply
/// tens of thousands of changes a second, so a larger backlog means they are stuck or
/// rebuilding.
pub const READY_MAX_BEHIND: u64 = 100_000;

#[derive(Serialize, ToSchema)]
pub struct Ready {
    pub status: &'static str,
    /// Committed changes the segment engines have not applied yet.
    pub engines_behind: u64,
}

/// Readiness, for load balancers: 200 while the store can take a write and the segment
/// engines follow its change log; 503 otherwise, saying why. No key needed.
#[utoipa::path(get, path = "/ready", tag = "system", security(()), responses(
    (status = 200, description = "the server can take requests", body = Ready),
    (status = 503, description = "the store cannot take a write now, or the segment engines are stuck behind it (`unavailable`)", body = crate::error::ErrorBody),
))]
pub async fn ready(
    axum::extract::State(state): axum::extract::State<crate::state::AppState>,
) -> Result<Json<Ready>, crate::error::ApiError> {
    // Without a key, the answer says what is wrong but not the store's own words (they may
    // name hosts): those are logged.
    if let Err(e) = state.blocking(|s| s.check_ready()).await {
        tracing::warn!(error = ?e, "not ready: the store cannot take a write");
        return Err(crate::error::ApiError::Unavailable(
            "not ready: the store cannot take a write now".into(),
        ));
    }
    let behind = state.engines.behind();
    if behind > READY_MAX_BEHIND {
        return Err(crate::error::ApiError::Unavailable(format!(
            "not ready: the segment engines are {behind} changes behind the store"
        )));
    }
    Ok(Json(Ready {
        status: "ready",
        engines_behind: behind,
    }))
}

/// Metrics in the Prometheus text format: requests by route template and status, their
/// latencies, the writer's queue and commit latencies, imports, and each segment engine's
/// size and build time. Needs the admin key, like every operation across applications
/// (give Prometheus the key as a bearer token: `authorization: {credentials_file: …}`).
#[utoipa::path(get, path = "/metrics", tag = "system", responses(
    (status = 200, description = "the metrics, `text/plain; version=0.0.4`", content_type = "text/plain", body = String),
    (status = 403, description = answers::ADMIN_ONLY, body = crate::error::ErrorBody),
))]
pub async fn metrics(
    axum::extract::State(state): axum::extract::State<crate::state::AppState>,
    principal: crate::auth::Principal,
) -> Result<axum::response::Response, crate::error::ApiError> {
    use axum::response::IntoResponse;
    principal.require_admin()?;
    let text = tokio::task::spawn_blocking(move || crate::metrics::render(&state))
        .await
        .map_err(|e| crate::error::ApiError::Internal(format!("metrics failed: {e}")))?;
    Ok((
        [(
            axum::http::header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        text,
    )
        .into_response())
}

/// This document. No key needed.
#[utoipa::path(get, path = "/openapi.json", tag = "system", security(()), responses((status = 200, description = "OpenAPI 3 document")))]
pub async fn openapi() -> Json<utoipa::openapi::OpenApi> {
    Json(ApiDoc::openapi())
}

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        if let Some(components) = openapi.components.as_mut() {
            components.add_security_scheme(
                "bearer",
                SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
            );
        }
    }
}

/// Adds the answers every operation can give whatever its handler (see the module doc).
struct CommonAnswers;

impl CommonAnswers {
    fn error(description: &str) -> RefOr<utoipa::openapi::Response> {
        ResponseBuilder::new()
            .description(description)
            .content(
                "application/json",
                Content::new(Some(Ref::from_schema_name("ErrorBody"))),
            )
            .into()
    }

    fn operations(item: &mut PathItem) -> impl Iterator<Item = &mut Operation> {
        [
            &mut item.get,
            &mut item.put,
            &mut item.post,
            &mut item.delete,
            &mut item.options,
            &mut item.head,
            &mut item.patch,
            &mut item.trace,
        ]
        .into_iter()
        .flatten()
    }
}

impl Modify for CommonAnswers {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        // An operation needs a key unless one of its requirements (its own, or else the
        // document's) is the empty one, `security(())`.
        let no_key = SecurityRequirement::default();
        let global_needs_key = openapi
            .security
            .as_ref()
            .is_some_and(|reqs| !reqs.is_empty() && !reqs.contains(&no_key));
        for item in openapi.paths.paths.values_mut() {
            for op in Self::operations(item) {
                let needs_key = op.security.as_ref().map_or(global_needs_key, |reqs| {
                    !reqs.is_empty() && !reqs.contains(&no_key)
                });
                let responses = &mut op.responses.responses;
                if needs_key {
                    responses.insert(
                        "401".into(),
                        Self::error(
                            "no key, a malformed Authorization header, or a key that is unknown or revoked (`unauthorized`)",
                        ),
                    );
                    responses.insert(
                        "503".into(),
                        Self::error(
                            "the store cannot answer now (the database unreachable or out of connections, its write queue full, or the segment engines too far behind for an exact answer), the server is handling its most requests at once, or the request took longer than its time-out; retry after the `Retry-After` seconds (`unavailable`)",
                        ),
                    );
                }
                responses.insert(
                    "414".into(),
                    Self::error(&format!(
                        "the request target is longer than {} bytes (`uri_too_long`)",
                        super::MAX_URI_BYTES
                    )),
                );
                responses.insert(
                    "500".into(),
                    Self::error("an internal error; its cause is logged, not sent (`internal`)"),
                );
            }
        }
    }
}

/// The OpenAPI document, generated from the handlers' annotations.
#[derive(OpenApi)]
#[openapi(
    info(title = "Unico API", description = "Customer Data Platform: applications, customer fields, customers and their interactions."),
    modifiers(&BearerAuth, &CommonAnswers),
    security(("bearer" = [])),
    paths(
        health, ready, openapi, metrics,
        super::apps::create_app, super::apps::list_apps, super::apps::get_app, super::apps::update_app,
        super::apps::delete_app, super::apps::create_key, super::apps::list_keys, super::apps::revoke_key,
        super::fields::list_fields, super::fields::create_field, super::fields::get_field,
        super::fields::update_field, super::fields::delete_field,
        super::customers::create_customer, super::customers::list_customers, super::customers::batch_upsert,
        super::customers::get_customer, super::customers::patch_customer, super::customers::delete_customer,
        super::imports::start_import, super::imports::get_import, super::imports::list_imports,
        super::export::export,
        super::segments::count, super::segments::create_segment, super::segments::list_segments,
        super::segments::get_segment, super::segments::update_segment, super::segments::delete_segment,
        super::segments::segment_members,
        super::events::list_event_types, super::events::create_event_type,
        super::events::get_event_type, super::events::update_event_type,
        super::events::delete_event_type, super::events::ingest, super::events::timeline,
        super::imports::start_event_import, super::imports::get_event_import,
        super::subscriptions::put_subscription, super::subscriptions::get_subscriptions,
        super::subscriptions::get_history, super::privacy::subject_export,
        super::identities::link_identity, super::identities::list_identities,
        super::identities::unlink_identity, super::identities::find_identity,
        super::identities::merge, super::identities::merge_preview,
        super::audit::app_audit, super::audit::all_audit,
    )
)]
pub struct ApiDoc;
