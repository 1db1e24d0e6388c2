//! Value suggestions for the filter builder: a string field's most frequent values, from
//! the segment engine, so that a marketer picks `ES` from a list instead of guessing how
//! the country is spelt. The builder shows them under the value box as the user types.

use std::collections::HashMap;

use axum::extract::{Query, State};
use axum::response::{IntoResponse, Response};
use unico_core::FieldType;
use unico_engine::stats::Attribute;

use super::pages::{AppPage, session_expired};
use crate::error::ApiError;
use crate::state::{AppState, now_ms};

/// Values suggested for a field: enough to cover the usual spread of a categorical field
/// (countries, tiers, cities), few enough for a list under a text box.
pub const SUGGESTED_VALUES: usize = 30;

/// `GET /console/apps/{app}/values?field=NAME`: the field's most frequent values among
/// every customer, most frequent first, each with how many customers hold it (JSON:
/// `{"values": [{"value": "ES", "count": 1204}, …]}`). A field that is not a stored string
/// field answers no value; an unknown field is a 404.
pub async fn values(
    State(state): State<AppState>,
    page: Result<AppPage, Response>,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    let Ok(AppPage(app, _)) = page else {
        return session_expired();
    };
    let Some(name) = query.get("field").cloned() else {
        return ApiError::InvalidParameter("a field is needed: ?field=NAME".into()).into_response();
    };
    let id = app.id;
    let engines = state.engines.clone();
    let found = state
        .blocking_api(move |s| {
            let schema = s.schema(id)?;
            let Some(def) = schema.by_name(&name) else {
                return Err(ApiError::NotFound(format!("no field named {name:?}")));
            };
            if def.field_type != FieldType::String || def.is_computed() {
                return Ok(Vec::new());
            }
            let attr = Attribute::Field(def.id);
            let top = engines.query(id, now_ms(), |index, _| {
                let all = index.all();
                (
                    index.holding(&all, attr),
                    index.top_values(&all, attr, SUGGESTED_VALUES),
                )
            })?;
            let (holding, top) = top;
            // A field where nearly every customer holds their own value gets no suggestion
            // (the same rule as its chart).
            let unique = super::insights::nearly_unique(top.distinct, holding);
            Ok(if unique { Vec::new() } else { top.values })
        })
        .await;
    match found {
        Ok(values) => axum::Json(serde_json::json!({
            "values": values
                .into_iter()
                .map(|(value, count)| serde_json::json!({ "value": value, "count": count }))
                .collect::<Vec<_>>()
        }))
        .into_response(),
        Err(e) => e.into_response(),
    }
}
