//! The web console: server-rendered pages (maud, auto-escaped) with a little hand-written
//! CSS and JavaScript served from the binary, so it works offline.
//!
//! - [`admin`]: applications, their time zone and API keys, managed from the console.
//! - [`guard`]: what every console request and answer goes through: cross-site requests
//!   refused, the session's form token, the security headers (content security policy).
//! - [`session`]: sign-in sessions (cookie → key hash, re-checked on every request), their
//!   bounds and expiry, and the sign-in rate limits.
//! - [`throttle`]: token buckets per subject, for those rate limits.
//! - [`layout`]: the page shell, navigation and sign-in page.
//! - [`location`]: every redirect's `Location`, a checked same-site console path.
//! - [`pages`]: customers (list, filter builder with live count, detail with editing and
//!   deletion), customer fields, applications.
//! - [`segments`]: saved audiences (list, page with members and charts, save, update,
//!   delete) and the insights page.
//! - [`imports`]: CSV uploads, the import history and an import's report.
//! - [`insights`]: summaries of a set of customers for charts, from the segment engine.
//! - [`charts`]: SVG charts rendered on the server.
//! - [`suggest`]: a string field's most frequent values, suggested in the filter builder.

mod admin;
mod behaviour;
mod charts;
mod consent;
mod guard;
mod identities;
mod imports;
mod insights;
mod layout;
mod location;
mod pages;
mod segments;
pub mod session;
mod suggest;
mod throttle;
mod timeline;

use axum::Router;
use axum::http::header::{CACHE_CONTROL, CONTENT_TYPE};
use axum::response::IntoResponse;
use axum::routing::{get, post};

use crate::state::AppState;

const CSS: &str = include_str!("static/app.css");
const JS: &str = concat!(
    include_str!("static/audience.js"),
    include_str!("static/app.js")
);

async fn css() -> impl IntoResponse {
    (
        [
            (CONTENT_TYPE, "text/css; charset=utf-8"),
            (CACHE_CONTROL, "max-age=300"),
        ],
        CSS,
    )
}

async fn js() -> impl IntoResponse {
    (
        [
            (CONTENT_TYPE, "text/javascript; charset=utf-8"),
            (CACHE_CONTROL, "max-age=300"),
        ],
        JS,
    )
}

/// The console's routes, merged into the main router. Every request goes through
/// [`guard::cross_site`], every answer through [`guard::security_headers`].
pub fn router(state: AppState) -> Router<AppState> {
    Router::new()
        .route("/", get(pages::root))
        .route("/console", get(pages::home))
        .route("/console/sign-in", post(pages::sign_in))
        .route("/console/sign-out", post(pages::sign_out))
        .route("/console/assets/app.css", get(css))
        .route("/console/assets/app.js", get(js))
        .route("/console/apps", get(pages::apps).post(admin::create_app))
        .route("/console/apps/{app}/timezone", post(admin::set_timezone))
        .route("/console/apps/{app}/keys", post(admin::create_key))
        .route(
            "/console/apps/{app}/keys/{key_id}/revoke",
            post(admin::revoke_key),
        )
        .route("/console/apps/{app}/customers", get(pages::customers))
        .route(
            "/console/apps/{app}/customers/{customer_id}",
            get(pages::customer).post(pages::save_customer),
        )
        .route(
            "/console/apps/{app}/customers/{customer_id}/delete",
            post(pages::delete_customer),
        )
        .route(
            "/console/apps/{app}/customers/{customer_id}/subscriptions",
            post(consent::change),
        )
        .route(
            "/console/apps/{app}/customers/{customer_id}/identities",
            post(identities::link),
        )
        .route(
            "/console/apps/{app}/customers/{customer_id}/identities/unlink",
            post(identities::unlink),
        )
        .route(
            "/console/apps/{app}/customers/{customer_id}/merge",
            post(identities::merge),
        )
        .route(
            "/console/apps/{app}/customers/{customer_id}/erase",
            post(pages::erase_customer),
        )
        .route(
            "/console/apps/{app}/customers/{customer_id}/export.json",
            get(pages::customer_export),
        )
        .route(
            "/console/apps/{app}/count",
            get(pages::count)
                .post(pages::count_json)
                .layer(axum::Extension(crate::extract::BodyLimits::FILTER)),
        )
        .route(
            "/console/apps/{app}/imports",
            post(imports::start_import).layer(axum::extract::DefaultBodyLimit::disable()),
        )
        .route(
            "/console/apps/{app}/imports/{id}",
            get(imports::import_report),
        )
        .route(
            "/console/apps/{app}/fields",
            get(pages::fields).post(pages::create_field),
        )
        .route(
            "/console/apps/{app}/fields/{name}/delete",
            post(pages::delete_field),
        )
        .route(
            "/console/apps/{app}/segments",
            get(segments::segments).post(segments::create_segment),
        )
        .route(
            "/console/apps/{app}/segments/{id}",
            get(segments::segment).post(segments::update_segment),
        )
        .route(
            "/console/apps/{app}/segments/{id}/delete",
            post(segments::delete_segment),
        )
        .route(
            "/console/apps/{app}/segments/{id}/duplicate",
            post(segments::duplicate_segment),
        )
        .route("/console/apps/{app}/insights", get(segments::insights))
        .route(
            "/console/apps/{app}/interactions",
            get(segments::interactions),
        )
        .route("/console/apps/{app}/values", get(suggest::values))
        .route("/console/apps/{app}/columns", post(pages::choose_columns))
        .route("/console/apps/{app}/export", get(pages::export))
        .route_layer(axum::middleware::from_fn_with_state(
            state,
            guard::cross_site,
        ))
        .layer(axum::middleware::map_response(guard::security_headers))
}
