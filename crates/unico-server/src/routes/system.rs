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
    pub status: &'static str,
}

/// Liveness: answers 200 while the server runs. No key needed.
#[utoipa::path(get, path = "/health", tag = "system", security(()), responses((status = 200, description = "the server runs", body = Health)))]
pub async fn health() -> Json<Health> {
    Json(Health { status: "ok" })
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
                            "the store cannot answer now (the database unreachable or out of connections, or the segment engines too far behind for an exact answer); retry after the `Retry-After` seconds (`unavailable`)",
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
        health, ready, openapi,
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
