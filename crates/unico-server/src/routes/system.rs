//! Liveness and the OpenAPI document.

use axum::Json;
use serde::Serialize;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi, ToSchema};

#[derive(Serialize, ToSchema)]
pub struct Health {
    pub status: &'static str,
}

/// Liveness: answers 200 while the server runs. No key needed.
#[utoipa::path(get, path = "/health", tag = "system", security(()), responses((status = 200, body = Health)))]
pub async fn health() -> Json<Health> {
    Json(Health { status: "ok" })
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

/// The OpenAPI document, generated from the handlers' annotations.
#[derive(OpenApi)]
#[openapi(
    info(title = "Unico API", description = "Customer Data Platform: applications, customer fields and customers."),
    modifiers(&BearerAuth),
    security(("bearer" = [])),
    paths(
        health, openapi,
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
    )
)]
pub struct ApiDoc;
