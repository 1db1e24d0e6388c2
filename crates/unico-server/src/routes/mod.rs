//! The router: every route, its middleware, and the fallbacks that keep even unknown
//! routes in our error shape.

mod apps;
mod audit;
mod customers;
pub mod events;
pub mod export;
pub(crate) mod fields;
pub(crate) mod identities;
pub mod imports;
pub mod params;
pub(crate) mod privacy;
pub mod request_id;
mod segments;
pub(crate) mod subscriptions;
mod system;
mod uri;

use axum::Extension;
use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::response::IntoResponse;
use axum::routing::{delete, get, patch, post, put};
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::trace::TraceLayer;

use crate::error::ApiError;
use crate::extract::BodyLimits;
use crate::state::AppState;

pub(crate) use apps::{create_with_key as create_app_with_key, new_key, revoke as revoke_key};
pub(crate) use segments::{
    check_name as check_segment_name, count_members, segment_out, stored_filter,
};
pub use segments::{parse_filter, parse_filter_text};
pub use system::ApiDoc;
pub use uri::MAX_URI_BYTES;

/// Largest body of a console form (a segment's filter of 64 KiB, percent-encoded).
pub const MAX_FORM_BODY_BYTES: usize = 1024 * 1024;

/// Query parameters built by the server itself (the console).
pub fn params_from_pairs(pairs: Vec<(String, String)>) -> params::QueryParams {
    params::QueryParams::from_pairs(pairs)
}

/// A page of customers exactly as `GET …/customers` answers it.
pub async fn list_customers_page(
    state: AppState,
    app: unico_core::AppId,
    query: params::QueryParams,
) -> Result<crate::dto::CustomerList, ApiError> {
    customers::list(state, app, query, None).await
}

/// Builds the whole HTTP application over `state`.
pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/health", get(system::health))
        .route("/ready", get(system::ready))
        .route("/openapi.json", get(system::openapi))
        .route("/metrics", get(system::metrics))
        .route("/v1/apps", post(apps::create_app).get(apps::list_apps))
        .route(
            "/v1/apps/{app}",
            get(apps::get_app)
                .patch(apps::update_app)
                .delete(apps::delete_app),
        )
        .route(
            "/v1/apps/{app}/keys",
            post(apps::create_key).get(apps::list_keys),
        )
        .route("/v1/apps/{app}/keys/{key_id}", delete(apps::revoke_key))
        .route(
            "/v1/apps/{app}/fields",
            get(fields::list_fields).post(fields::create_field),
        )
        .route(
            "/v1/apps/{app}/fields/{name}",
            get(fields::get_field)
                .patch(fields::update_field)
                .delete(fields::delete_field),
        )
        .route(
            "/v1/apps/{app}/customers",
            post(customers::create_customer)
                .layer(Extension(BodyLimits::CUSTOMER))
                .get(customers::list_customers),
        )
        // `batch` is also a valid customerId: reads and writes of that customer still work.
        .route(
            "/v1/apps/{app}/customers/batch",
            post(customers::batch_upsert)
                .layer(Extension(BodyLimits::BATCH))
                .patch(customers::patch_customer)
                .layer(Extension(BodyLimits::CUSTOMER))
                .get(customers::get_customer)
                .delete(customers::delete_customer),
        )
        .route(
            "/v1/apps/{app}/customers/{customer_id}",
            patch(customers::patch_customer)
                .layer(Extension(BodyLimits::CUSTOMER))
                .get(customers::get_customer)
                .delete(customers::delete_customer),
        )
        .route(
            "/v1/apps/{app}/imports",
            // Uploads are bounded by the import's own limit while they stream to disk.
            post(imports::start_import)
                .layer(DefaultBodyLimit::disable())
                .get(imports::list_imports),
        )
        .route("/v1/apps/{app}/imports/{id}", get(imports::get_import))
        .route(
            "/v1/apps/{app}/event-types",
            get(events::list_event_types).post(events::create_event_type),
        )
        .route(
            "/v1/apps/{app}/event-types/{code}",
            get(events::get_event_type)
                .patch(events::update_event_type)
                .delete(events::delete_event_type),
        )
        .route(
            "/v1/apps/{app}/events",
            post(events::ingest).layer(Extension(BodyLimits::EVENTS)),
        )
        .route(
            "/v1/apps/{app}/events/imports",
            post(imports::start_event_import).layer(DefaultBodyLimit::disable()),
        )
        .route(
            "/v1/apps/{app}/events/imports/{id}",
            get(imports::get_event_import),
        )
        .route(
            "/v1/apps/{app}/customers/{customer_id}/events",
            get(events::timeline),
        )
        .route(
            "/v1/apps/{app}/customers/{customer_id}/export",
            get(privacy::subject_export),
        )
        .route(
            "/v1/apps/{app}/customers/{customer_id}/subscriptions",
            get(subscriptions::get_subscriptions),
        )
        .route(
            "/v1/apps/{app}/customers/{customer_id}/subscriptions/history",
            get(subscriptions::get_history),
        )
        .route(
            "/v1/apps/{app}/customers/{customer_id}/subscriptions/{channel}",
            put(subscriptions::put_subscription).layer(Extension(BodyLimits::CUSTOMER)),
        )
        .route(
            "/v1/apps/{app}/customers/{customer_id}/identities",
            post(identities::link_identity)
                .layer(Extension(BodyLimits::CUSTOMER))
                .get(identities::list_identities),
        )
        .route(
            "/v1/apps/{app}/customers/{customer_id}/identities/{kind}/{value}",
            delete(identities::unlink_identity),
        )
        .route(
            "/v1/apps/{app}/identities/{kind}/{value}",
            get(identities::find_identity),
        )
        .route(
            "/v1/apps/{app}/customers/{customer_id}/merge",
            post(identities::merge)
                .layer(Extension(BodyLimits::CUSTOMER))
                .get(identities::merge_preview),
        )
        .route("/v1/apps/{app}/export", get(export::export))
        .route("/v1/apps/{app}/audit", get(audit::app_audit))
        .route("/v1/audit", get(audit::all_audit))
        .route(
            "/v1/apps/{app}/count",
            post(segments::count).layer(Extension(BodyLimits::FILTER)),
        )
        .route(
            "/v1/apps/{app}/segments",
            post(segments::create_segment)
                .layer(Extension(BodyLimits::FILTER))
                .get(segments::list_segments),
        )
        .route(
            "/v1/apps/{app}/segments/{id}",
            put(segments::update_segment)
                .layer(Extension(BodyLimits::FILTER))
                .get(segments::get_segment)
                .delete(segments::delete_segment),
        )
        .route(
            "/v1/apps/{app}/segments/{id}/customers",
            get(segments::segment_members),
        )
        .merge(crate::console::router(state.clone()))
        // Places and time-outs by route (`limits`): a route layer, so it sees the matched
        // template and unknown routes are answered without taking a place.
        .route_layer(axum::middleware::from_fn_with_state(
            state.clone(),
            crate::limits::bound_request,
        ))
        .fallback(route_not_found)
        .method_not_allowed_fallback(method_not_allowed)
        // JSON bodies are bounded by their route's `BodyLimits`; this bounds the rest (the
        // console's forms).
        .layer(DefaultBodyLimit::max(MAX_FORM_BODY_BYTES))
        .layer(CatchPanicLayer::custom(|_| {
            ApiError::Internal("a request handler panicked".into()).into_response()
        }))
        .layer(axum::middleware::from_fn(uri::refuse_long_uri))
        .layer(axum::middleware::from_fn(request_id::tag))
        .layer(TraceLayer::new_for_http())
        .with_state(state)
}

async fn route_not_found(uri: axum::http::Uri) -> ApiError {
    ApiError::RouteNotFound(format!("{}; see /openapi.json for the routes", uri.path()))
}

async fn method_not_allowed(method: axum::http::Method, uri: axum::http::Uri) -> ApiError {
    ApiError::MethodNotAllowed(format!("{method} is not allowed on {}", uri.path()))
}
