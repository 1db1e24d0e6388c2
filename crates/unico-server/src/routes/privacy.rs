//! Privacy operations on one person: everything held on them as one JSON document (the
//! subject access request of the GDPR, article 15).

use std::collections::HashMap;

use axum::Json;
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use serde::Serialize;
use unico_core::time::format_datetime;
use unico_store::EventQuery;
use utoipa::ToSchema;

use super::params::PathParams;
use super::subscriptions::{HistoryOut, SubscriptionOut};
use super::system::answers;
use crate::auth::Principal;
use crate::dto::{CustomerOut, EventOut, customer_out};
use crate::error::{ApiError, ErrorBody};
use crate::state::{AppState, now_ms};

type PathResult = Result<Path<HashMap<String, String>>, PathRejection>;

/// Events read per store call while gathering a person's events.
const EVENT_PAGE: usize = 1000;

/// Everything Unico holds on one customer.
#[derive(Serialize, ToSchema)]
pub struct SubjectExport {
    /// When the document was made (RFC 3339 UTC).
    pub exported_at: String,
    /// The profile: every stored value, and the computed fields' values now.
    pub customer: CustomerOut,
    /// Every event held, newest first.
    pub events: Vec<EventOut>,
    /// The standing subscription per channel.
    pub subscriptions: Vec<SubscriptionOut>,
    /// Every recorded subscription change, newest first.
    pub subscription_history: Vec<HistoryOut>,
    /// The identities held, and the customers merged into this one with their values that
    /// lost.
    pub identities: super::identities::IdentityList,
}

/// Everything held on one customer, as one JSON document: the profile (computed fields
/// included), every event, the subscriptions and their whole history.
#[utoipa::path(get, path = "/v1/apps/{app}/customers/{customerId}/export", tag = "customers",
    params(("app" = i64, Path), ("customerId" = String, Path)),
    responses(
        (status = 200, description = "everything held on the customer", body = SubjectExport),
        (status = 400, description = answers::BAD_PATH, body = ErrorBody),
        (status = 403, description = answers::OTHER_APP, body = ErrorBody),
        (status = 404, description = "no such application or customer (`not_found`)", body = ErrorBody),
    ))]
pub async fn subject_export(
    State(state): State<AppState>,
    principal: Principal,
    path: PathResult,
) -> Result<Json<SubjectExport>, ApiError> {
    let params = PathParams::from(path)?;
    let app = params.app()?;
    principal.require_app(app)?;
    let customer_id = params.customer_id()?;
    document(&state, app, customer_id).await.map(Json)
}

/// The subject export of one customer (for the API and the console).
pub(crate) async fn document(
    state: &AppState,
    app: unico_core::AppId,
    customer_id: unico_core::CustomerId,
) -> Result<SubjectExport, ApiError> {
    let engines = state.engines.clone();
    state
        .blocking(move |s| {
            let schema = s.schema(app)?;
            let mut one = [s.get_customer(app, &customer_id)?];
            crate::computed::fill(&engines, app, &schema, &mut one)?;
            let [customer] = one;
            let mut events = Vec::new();
            let mut after = None;
            loop {
                let page = s.customer_events(
                    app,
                    &customer_id,
                    &EventQuery {
                        after,
                        limit: EVENT_PAGE,
                        ..EventQuery::default()
                    },
                )?;
                events.extend(page.events.iter().map(|e| EventOut::new(e, &customer_id)));
                match page.next {
                    Some(next) => after = Some(next),
                    None => break,
                }
            }
            let subscriptions = s.subscriptions(app, &customer_id)?;
            // The history, whole.
            let history: Vec<HistoryOut> = s
                .subscription_history(app, &customer_id, usize::MAX)?
                .iter()
                .map(HistoryOut::from)
                .collect();
            Ok(SubjectExport {
                exported_at: format_datetime(now_ms()),
                customer: customer_out(&customer, &schema),
                events,
                subscriptions: subscriptions.iter().map(SubscriptionOut::from).collect(),
                subscription_history: history,
                identities: super::identities::identity_list(s, app, &customer_id)?,
            })
        })
        .await
}
