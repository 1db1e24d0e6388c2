//! Customer fields: the application's schema.

use std::collections::HashMap;

use axum::Json;
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use unico_core::{Computed, ComputedAgg, EventCode, FieldName, FieldType};

use super::params::PathParams;
use super::system::answers;
use crate::auth::Principal;
use crate::dto::{ComputedDef, CreateField, FieldDeleted, FieldList, FieldOut, UpdateField};
use crate::error::{ApiError, ErrorBody};
use crate::extract::JsonBody;
use crate::state::{AppState, now_ms};

type PathResult = Result<Path<HashMap<String, String>>, PathRejection>;

fn parse_type(text: &str) -> Result<FieldType, ApiError> {
    FieldType::parse(text).map_err(|e| ApiError::invalid("type", e.to_string()))
}

/// A computed field's definition as sent, checked for what does not depend on the
/// application (each problem named by its key).
pub(crate) fn parse_computed(def: &ComputedDef) -> Result<Computed, ApiError> {
    let invalid = |key: &str, reason: String| ApiError::invalid(format!("computed.{key}"), reason);
    let event = EventCode::parse(&def.event).map_err(|e| invalid("event", e.to_string()))?;
    let agg = ComputedAgg::parse(&def.agg).map_err(|e| invalid("agg", e.to_string()))?;
    let within_last = def
        .within_last
        .as_deref()
        .map(Computed::parse_window)
        .transpose()
        .map_err(|e| invalid("within_last", e.to_string()))?;
    Computed::new(event, agg, def.property.clone(), within_last)
        .map_err(|e| invalid("property", e.to_string()))
}

/// Creates a computed field once its definition fits the application (its type is its
/// aggregate's).
pub(crate) fn create_computed(
    store: &dyn unico_store::Store,
    app: unico_core::AppId,
    name: &FieldName,
    computed: &Computed,
) -> Result<unico_core::FieldDef, ApiError> {
    let schema = store.schema(app)?;
    unico_filter::check_computed(&schema, computed)
        .map_err(|(part, reason)| ApiError::invalid(format!("computed.{part}"), reason))?;
    Ok(store.create_computed_field(app, name, computed.agg.field_type(), computed, now_ms())?)
}

/// List the fields, each with how many customers hold a value.
#[utoipa::path(get, path = "/v1/apps/{app}/fields", tag = "fields", params(("app" = i64, Path)),
    responses(
        (status = 200, description = "the fields with their value counts", body = FieldList),
        (status = 400, description = answers::BAD_PATH, body = ErrorBody),
        (status = 403, description = answers::OTHER_APP, body = ErrorBody),
        (status = 404, description = answers::NO_APP, body = ErrorBody),
    ))]
pub async fn list_fields(
    State(state): State<AppState>,
    principal: Principal,
    path: PathResult,
) -> Result<Json<FieldList>, ApiError> {
    let app = PathParams::from(path)?.app()?;
    principal.require_app(app)?;
    let stats = state.blocking(move |s| s.field_stats(app)).await?;
    Ok(Json(FieldList {
        fields: stats.iter().map(FieldOut::from).collect(),
    }))
}

/// Create a field: `{"name": "age", "type": "number"}`.
#[utoipa::path(post, path = "/v1/apps/{app}/fields", tag = "fields", params(("app" = i64, Path)), request_body = CreateField,
    responses(
        (status = 201, description = "the field", body = FieldOut),
        (status = 400, description = "the body is not JSON (`invalid_content_type`, `invalid_json`), the name or type is invalid (`invalid_input`), the application holds the most fields it may (`limit_exceeded`), or a path parameter is not UTF-8", body = ErrorBody),
        (status = 403, description = answers::OTHER_APP, body = ErrorBody),
        (status = 404, description = answers::NO_APP, body = ErrorBody),
        (status = 409, description = "a field of that name exists (`conflict`)", body = ErrorBody),
        (status = 413, description = answers::TOO_LARGE, body = ErrorBody),
    ))]
pub async fn create_field(
    State(state): State<AppState>,
    principal: Principal,
    path: PathResult,
    JsonBody(body): JsonBody<CreateField>,
) -> Result<(StatusCode, Json<FieldOut>), ApiError> {
    let app = PathParams::from(path)?.app()?;
    principal.require_app(app)?;
    let name =
        FieldName::parse(&body.name).map_err(|e| ApiError::invalid("name", e.to_string()))?;
    let ty = parse_type(&body.field_type)?;
    let def = match body.computed {
        None => {
            state
                .blocking(move |s| s.create_field(app, &name, ty, now_ms()))
                .await?
        }
        Some(def) => {
            let computed = parse_computed(&def)?;
            computed
                .check_type(ty)
                .map_err(|e| ApiError::invalid("type", e.to_string()))?;
            state
                .blocking_api(move |s| create_computed(s, app, &name, &computed))
                .await?
        }
    };
    Ok((StatusCode::CREATED, Json(FieldOut::new(&def, Some(0)))))
}

/// Get one field with its value count.
#[utoipa::path(get, path = "/v1/apps/{app}/fields/{name}", tag = "fields", params(("app" = i64, Path), ("name" = String, Path)),
    responses(
        (status = 200, description = "the field with its value count", body = FieldOut),
        (status = 400, description = answers::BAD_PATH, body = ErrorBody),
        (status = 403, description = answers::OTHER_APP, body = ErrorBody),
        (status = 404, description = "no such application or field (`not_found`)", body = ErrorBody),
    ))]
pub async fn get_field(
    State(state): State<AppState>,
    principal: Principal,
    path: PathResult,
) -> Result<Json<FieldOut>, ApiError> {
    let params = PathParams::from(path)?;
    let (app, name) = (params.app()?, params.field_name()?);
    principal.require_app(app)?;
    let stats = state.blocking(move |s| s.field_stats(app)).await?;
    stats
        .iter()
        .find(|s| s.field.name == name)
        .map(|s| Json(FieldOut::from(s)))
        .ok_or_else(|| ApiError::NotFound(format!("field \"{name}\" not found")))
}

/// Change a field's type, allowed while no customer holds a value for it.
#[utoipa::path(patch, path = "/v1/apps/{app}/fields/{name}", tag = "fields", params(("app" = i64, Path), ("name" = String, Path)),
    request_body = UpdateField,
    responses(
        (status = 200, description = "the field as changed", body = FieldOut),
        (status = 400, description = "the body is not JSON (`invalid_content_type`, `invalid_json`), the type is unknown (`invalid_input`), or a path parameter is not UTF-8", body = ErrorBody),
        (status = 403, description = answers::OTHER_APP, body = ErrorBody),
        (status = 404, description = "no such application or field (`not_found`)", body = ErrorBody),
        (status = 409, description = "customers hold values for the field (`conflict`)", body = ErrorBody),
        (status = 413, description = answers::TOO_LARGE, body = ErrorBody),
    ))]
pub async fn update_field(
    State(state): State<AppState>,
    principal: Principal,
    path: PathResult,
    JsonBody(body): JsonBody<UpdateField>,
) -> Result<Json<FieldOut>, ApiError> {
    let params = PathParams::from(path)?;
    let (app, name) = (params.app()?, params.field_name()?);
    principal.require_app(app)?;
    let ty = parse_type(&body.field_type)?;
    let def = state
        .blocking(move |s| s.set_field_type(app, &name, ty))
        .await?;
    Ok(Json(FieldOut::new(&def, Some(0))))
}

/// Delete a field and its value from every customer.
#[utoipa::path(delete, path = "/v1/apps/{app}/fields/{name}", tag = "fields", params(("app" = i64, Path), ("name" = String, Path)),
    responses(
        (status = 200, description = "deleted, with how many values went with it", body = FieldDeleted),
        (status = 400, description = answers::BAD_PATH, body = ErrorBody),
        (status = 403, description = answers::OTHER_APP, body = ErrorBody),
        (status = 404, description = "no such application or field (`not_found`)", body = ErrorBody),
    ))]
pub async fn delete_field(
    State(state): State<AppState>,
    principal: Principal,
    path: PathResult,
) -> Result<Json<FieldDeleted>, ApiError> {
    let params = PathParams::from(path)?;
    let (app, name) = (params.app()?, params.field_name()?);
    principal.require_app(app)?;
    let actor = crate::audit::actor(&principal);
    let values_deleted = state
        .blocking(move |s| {
            let n = s.delete_field(app, &name)?;
            crate::audit::record(s, Some(app), &actor, "field.deleted", &name)?;
            Ok(n)
        })
        .await?;
    Ok(Json(FieldDeleted { values_deleted }))
}
