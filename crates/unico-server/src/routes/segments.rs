//! Audiences: counting a filter's members, filtered lists, and saved segments.

use std::collections::HashMap;
use std::time::Instant;

use axum::Json;
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use serde_json::Value as Json_;
use unico_core::{AppId, FieldId, Schema};
use unico_engine::{SortKey, SortPosition};
use unico_filter::{Filter, FilterInput};
use unico_store::{SegmentRecord, Sort, SortBy, Store, codec, cursor};
use utoipa::ToSchema;

use super::params::PathParams;
use super::system::answers;
use crate::auth::Principal;
use crate::dto::{CustomerList, customer_out};
use crate::error::{ApiError, ErrorBody};
use crate::extract::JsonBody;
use crate::state::{AppState, now_ms};

type PathResult = Result<Path<HashMap<String, String>>, PathRejection>;

/// Parses a filter given as JSON: an object (the JSON form) or a string (the text form).
pub fn parse_filter(json: &Json_, schema: &Schema) -> Result<Filter, ApiError> {
    Filter::parse(FilterInput::Json(json), schema).map_err(|e| ApiError::InvalidFilter {
        code: e.code(),
        message: e.to_string(),
    })
}

/// Parses a filter in the text form (query parameters).
pub fn parse_filter_text(text: &str, schema: &Schema) -> Result<Filter, ApiError> {
    Filter::parse(FilterInput::Text(text), schema).map_err(|e| ApiError::InvalidFilter {
        code: e.code(),
        message: e.to_string(),
    })
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CountRequest {
    /// The filter: its JSON form, or its text form as a string.
    #[schema(value_type = Object)]
    pub filter: Json_,
}

#[derive(Serialize, ToSchema)]
pub struct CountOut {
    pub count: u64,
    /// Time spent counting on the server, in milliseconds.
    pub took_ms: f64,
}

/// Counts the customers matching a filter, exactly, now (relative dates move with time).
#[utoipa::path(post, path = "/v1/apps/{app}/count", tag = "segments", params(("app" = i64, Path)), request_body = CountRequest,
    responses(
        (status = 200, description = "the count", body = CountOut),
        (status = 400, description = "the body is not JSON (`invalid_content_type`, `invalid_json`), the filter does not parse or fit the fields (`filter_…`), or a path parameter is not UTF-8", body = ErrorBody),
        (status = 403, description = answers::OTHER_APP, body = ErrorBody),
        (status = 404, description = answers::NO_APP, body = ErrorBody),
        (status = 413, description = answers::TOO_LARGE, body = ErrorBody),
    ))]
pub async fn count(
    State(state): State<AppState>,
    principal: Principal,
    path: PathResult,
    JsonBody(body): JsonBody<CountRequest>,
) -> Result<Json<CountOut>, ApiError> {
    let app = PathParams::from(path)?.app()?;
    principal.require_app(app)?;
    let (_, count, took_ms) = count_members(&state, app, body.filter).await?;
    Ok(Json(CountOut { count, took_ms }))
}

/// Parses `filter` (the JSON form, or the text form as a JSON string) against the
/// application's schema and counts its members now: the filter, the count and the time
/// spent counting, in milliseconds. The one counting path of the API and the console.
pub(crate) async fn count_members(
    state: &AppState,
    app: AppId,
    filter: Json_,
) -> Result<(Filter, u64, f64), ApiError> {
    let took_ms = |started: Instant| started.elapsed().as_secs_f64() * 1000.0;
    // A loaded engine and a cheap count (a presence test, a small application) answer on
    // this thread: the hop to a blocking thread would cost more than the count. The filter
    // is checked against the engine's schema, which the change feed keeps in step with
    // the store's.
    let fast = state.engines.try_query(app, now_ms(), |index, ctx| {
        let parsed = parse_filter(&filter, index.schema())?;
        let started = Instant::now();
        Ok::<_, ApiError>(match index.count_if_cheap(&parsed, ctx) {
            Some(count) => Ok((count, took_ms(started), parsed)),
            None => Err(parsed),
        })
    });
    let mut parsed = match fast {
        Some(Ok(Ok((count, took, parsed)))) => return Ok((parsed, count, took)),
        Some(Ok(Err(parsed))) => Some(parsed),
        Some(Err(e)) => return Err(e),
        None => None,
    };
    // A loaded engine and a longer count (a millisecond or so): run it on this thread too,
    // handing the worker's other tasks to another thread meanwhile (`block_in_place`), which
    // saves the two thread wake-ups of a hop to the blocking pool. Needs the multi-thread
    // runtime; otherwise (tests), and while the engine builds, take the hop.
    let multi_thread = tokio::runtime::Handle::current().runtime_flavor()
        == tokio::runtime::RuntimeFlavor::MultiThread;
    if multi_thread && let Some(ready) = parsed.take() {
        let counted = tokio::task::block_in_place(|| {
            state.engines.try_query(app, now_ms(), |index, ctx| {
                let started = Instant::now();
                (index.count(&ready, ctx), took_ms(started))
            })
        });
        if let Some((count, took)) = counted {
            return Ok((ready, count, took));
        }
        parsed = Some(ready);
    }
    let engines = state.engines.clone();
    state
        .blocking_api(move |s| {
            let parsed = match parsed {
                Some(parsed) => parsed,
                None => parse_filter(&filter, &s.schema(app)?)?,
            };
            let started = Instant::now();
            let count = engines.query(app, now_ms(), |index, ctx| index.count(&parsed, ctx))?;
            Ok((parsed, count, took_ms(started)))
        })
        .await
}

/// The engine's sort key for a list order.
fn sort_key(sort: &Sort) -> SortKey {
    match &sort.by {
        SortBy::CustomerId => SortKey::CustomerId,
        SortBy::CreatedAt => SortKey::CreatedAt,
        SortBy::UpdatedAt => SortKey::UpdatedAt,
        SortBy::Field(def) => SortKey::Field(def.id),
    }
}

/// Cursor of a filtered list: (order, encoded value, customerId), packed like the store's.
fn encode_cursor(sort: &Sort, position: &SortPosition) -> String {
    let value = match &position.value {
        Some(v) => codec::encode(&[(FieldId(0), v.clone())]),
        None => Vec::new(),
    };
    cursor::pack(
        "f1",
        &[
            cursor::order_tag(sort).as_bytes(),
            &value,
            position.customer_id.as_bytes(),
        ],
    )
}

fn decode_cursor(text: &str, sort: &Sort) -> Result<SortPosition, ApiError> {
    let bad = || {
        ApiError::InvalidParameter(
            "the cursor is not one this server issued for this filter and sort; pass next_cursor from the previous page unchanged"
                .into(),
        )
    };
    let parts = cursor::unpack("f1", text).ok_or_else(bad)?;
    let [order, value, customer_id]: [Vec<u8>; 3] = parts.try_into().map_err(|_| bad())?;
    if order != cursor::order_tag(sort).as_bytes() {
        return Err(bad());
    }
    let value = if value.is_empty() {
        None
    } else {
        Some(
            codec::decode(&value)
                .map_err(|_| bad())?
                .into_iter()
                .next()
                .ok_or_else(bad)?
                .1,
        )
    };
    Ok(SortPosition {
        value,
        customer_id: String::from_utf8(customer_id).map_err(|_| bad())?,
    })
}

/// Every member id of a filter, in customerId order (blocking).
pub fn all_members(state: &AppState, app: AppId, filter: &Filter) -> Result<Vec<i64>, ApiError> {
    Ok(state.engines.query(app, now_ms(), |index, ctx| {
        index.page_by_customer_id(&index.members(filter, ctx), None, false, usize::MAX)
    })?)
}

/// Which page of a list: its order, where the previous page ended, and its size.
pub struct PageRequest<'a> {
    pub sort: &'a Sort,
    pub cursor: Option<&'a str>,
    pub limit: usize,
}

/// One page of a filter's members in the requested order (blocking).
pub fn filtered_page(
    state: &AppState,
    store: &dyn Store,
    app: AppId,
    schema: &Schema,
    filter: &Filter,
    page: PageRequest<'_>,
) -> Result<CustomerList, ApiError> {
    let PageRequest {
        sort,
        cursor,
        limit,
    } = page;
    let after = cursor.map(|c| decode_cursor(c, sort)).transpose()?;
    let key = sort_key(sort);
    let (ids, next) = state.engines.query(app, now_ms(), |index, ctx| {
        let mut ids = match key {
            // A walk of the customerId order that tests rows until the page is full.
            SortKey::CustomerId => index.page_matching_by_customer_id(
                filter,
                ctx,
                after.as_ref().map(|p| p.customer_id.as_str()),
                sort.descending,
                limit + 1,
            ),
            _ => {
                let members = index.members(filter, ctx);
                index.page_by_field(&members, key, after.as_ref(), sort.descending, limit + 1)
            }
        };
        let next = if ids.len() > limit {
            ids.truncate(limit);
            ids.last()
                .and_then(|id| index.sort_position(*id, key))
                .map(|p| encode_cursor(sort, &p))
        } else {
            None
        };
        (ids, next)
    })?;
    let mut customers = store.get_customers(app, &ids)?;
    crate::computed::fill(&state.engines, app, schema, &mut customers)?;
    Ok(CustomerList {
        customers: customers.iter().map(|c| customer_out(c, schema)).collect(),
        next_cursor: next,
    })
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SegmentIn {
    pub name: String,
    /// The filter: its JSON form, or its text form as a string.
    #[schema(value_type = Object)]
    pub filter: Json_,
}

#[derive(Serialize, ToSchema)]
pub struct SegmentOut {
    pub id: i64,
    pub name: String,
    /// The canonical JSON form.
    #[schema(value_type = Object)]
    pub filter: Json_,
    /// The canonical text form.
    pub filter_text: String,
    /// Members right now.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub count: Option<u64>,
    pub created_at: String,
    pub updated_at: String,
}

#[derive(Serialize, ToSchema)]
pub struct SegmentList {
    pub segments: Vec<SegmentOut>,
}

/// Longest segment name, in characters.
pub const MAX_SEGMENT_NAME_CHARS: usize = 200;

/// A segment name, trimmed, or why it is refused (shared by the API and the console).
pub(crate) fn check_name(name: &str) -> Result<String, ApiError> {
    let name = name.trim();
    let len = name.chars().count();
    if len == 0 || len > MAX_SEGMENT_NAME_CHARS || name.chars().any(char::is_control) {
        return Err(ApiError::invalid(
            "name",
            format!(
                "a segment name is 1–{MAX_SEGMENT_NAME_CHARS} characters with no control characters"
            ),
        ));
    }
    Ok(name.to_owned())
}

/// A saved segment's filter (stored in the JSON form) checked against today's schema: a
/// field it used may have been deleted since.
pub(crate) fn stored_filter(record: &SegmentRecord, schema: &Schema) -> Result<Filter, ApiError> {
    let stored: Json_ = serde_json::from_str(&record.filter).unwrap_or(Json_::Null);
    parse_filter(&stored, schema)
}

/// A stored segment with its filter re-checked against today's schema and its current
/// count (none when the filter no longer fits the schema).
pub(crate) fn segment_out(
    state: &AppState,
    record: &SegmentRecord,
    schema: &Schema,
) -> Result<SegmentOut, ApiError> {
    let stored: Json_ = serde_json::from_str(&record.filter).unwrap_or(Json_::Null);
    let (filter_text, count) = match parse_filter(&stored, schema) {
        Ok(filter) => {
            let count = state
                .engines
                .query(record.app, now_ms(), |index, ctx| index.count(&filter, ctx))?;
            (filter.to_text(), Some(count))
        }
        Err(e) => (format!("(invalid now: {e})"), None),
    };
    Ok(SegmentOut {
        id: record.id,
        name: record.name.clone(),
        filter: stored,
        filter_text,
        count,
        created_at: unico_core::time::format_datetime(record.created_at),
        updated_at: unico_core::time::format_datetime(record.updated_at),
    })
}

/// Save a filter as a named segment.
#[utoipa::path(post, path = "/v1/apps/{app}/segments", tag = "segments", params(("app" = i64, Path)), request_body = SegmentIn,
    responses(
        (status = 201, description = "the segment with its current count", body = SegmentOut),
        (status = 400, description = "the body is not JSON (`invalid_content_type`, `invalid_json`), the name is invalid (`invalid_input`), the filter does not parse or fit the fields (`filter_…`), or a path parameter is not UTF-8", body = ErrorBody),
        (status = 403, description = answers::OTHER_APP, body = ErrorBody),
        (status = 404, description = answers::NO_APP, body = ErrorBody),
        (status = 409, description = "another segment of the application has this name, compared without case (`conflict`)", body = ErrorBody),
        (status = 413, description = answers::TOO_LARGE, body = ErrorBody),
    ))]
pub async fn create_segment(
    State(state): State<AppState>,
    principal: Principal,
    path: PathResult,
    JsonBody(body): JsonBody<SegmentIn>,
) -> Result<(StatusCode, Json<SegmentOut>), ApiError> {
    let app = PathParams::from(path)?.app()?;
    principal.require_app(app)?;
    let st = state.clone();
    let out = state
        .blocking_api(move |s| {
            let name = check_name(&body.name)?;
            let schema = s.schema(app)?;
            let filter = parse_filter(&body.filter, &schema)?;
            let record = s.create_segment(app, &name, &filter.to_json().to_string(), now_ms())?;
            segment_out(&st, &record, &schema)
        })
        .await?;
    Ok((StatusCode::CREATED, Json(out)))
}

/// The saved segments, each with its current size.
#[utoipa::path(get, path = "/v1/apps/{app}/segments", tag = "segments", params(("app" = i64, Path)),
    responses(
        (status = 200, description = "the segments with their current counts", body = SegmentList),
        (status = 400, description = answers::BAD_PATH, body = ErrorBody),
        (status = 403, description = answers::OTHER_APP, body = ErrorBody),
        (status = 404, description = answers::NO_APP, body = ErrorBody),
    ))]
pub async fn list_segments(
    State(state): State<AppState>,
    principal: Principal,
    path: PathResult,
) -> Result<Json<SegmentList>, ApiError> {
    let app = PathParams::from(path)?.app()?;
    principal.require_app(app)?;
    let st = state.clone();
    let out = state
        .blocking_api(move |s| {
            let schema = s.schema(app)?;
            let segments = s
                .list_segments(app)?
                .iter()
                .map(|r| segment_out(&st, r, &schema))
                .collect::<Result<_, _>>()?;
            Ok(SegmentList { segments })
        })
        .await?;
    Ok(Json(out))
}

/// One segment with its current count.
#[utoipa::path(get, path = "/v1/apps/{app}/segments/{id}", tag = "segments", params(("app" = i64, Path), ("id" = i64, Path)),
    responses(
        (status = 200, description = "the segment with its current count", body = SegmentOut),
        (status = 400, description = answers::BAD_PATH, body = ErrorBody),
        (status = 403, description = answers::OTHER_APP, body = ErrorBody),
        (status = 404, description = "no such application or segment (`not_found`)", body = ErrorBody),
    ))]
pub async fn get_segment(
    State(state): State<AppState>,
    principal: Principal,
    path: PathResult,
) -> Result<Json<SegmentOut>, ApiError> {
    let params = PathParams::from(path)?;
    let (app, id) = (params.app()?, params.segment_id()?);
    principal.require_app(app)?;
    let st = state.clone();
    let out = state
        .blocking_api(move |s| {
            let schema = s.schema(app)?;
            segment_out(&st, &s.get_segment(app, id)?, &schema)
        })
        .await?;
    Ok(Json(out))
}

/// Replace a segment's name and filter.
#[utoipa::path(put, path = "/v1/apps/{app}/segments/{id}", tag = "segments", params(("app" = i64, Path), ("id" = i64, Path)),
    request_body = SegmentIn,
    responses(
        (status = 200, description = "the segment as changed, with its current count", body = SegmentOut),
        (status = 400, description = "the body is not JSON (`invalid_content_type`, `invalid_json`), the name is invalid (`invalid_input`), the filter does not parse or fit the fields (`filter_…`), or a path parameter is not UTF-8", body = ErrorBody),
        (status = 403, description = answers::OTHER_APP, body = ErrorBody),
        (status = 404, description = "no such application or segment (`not_found`)", body = ErrorBody),
        (status = 409, description = "another segment of the application has this name, compared without case (`conflict`)", body = ErrorBody),
        (status = 413, description = answers::TOO_LARGE, body = ErrorBody),
    ))]
pub async fn update_segment(
    State(state): State<AppState>,
    principal: Principal,
    path: PathResult,
    JsonBody(body): JsonBody<SegmentIn>,
) -> Result<Json<SegmentOut>, ApiError> {
    let params = PathParams::from(path)?;
    let (app, id) = (params.app()?, params.segment_id()?);
    principal.require_app(app)?;
    let st = state.clone();
    let out = state
        .blocking_api(move |s| {
            let name = check_name(&body.name)?;
            let schema = s.schema(app)?;
            let filter = parse_filter(&body.filter, &schema)?;
            let record =
                s.update_segment(app, id, &name, &filter.to_json().to_string(), now_ms())?;
            segment_out(&st, &record, &schema)
        })
        .await?;
    Ok(Json(out))
}

/// Delete a segment (its customers are untouched).
#[utoipa::path(delete, path = "/v1/apps/{app}/segments/{id}", tag = "segments", params(("app" = i64, Path), ("id" = i64, Path)),
    responses(
        (status = 204, description = "deleted; its customers are untouched"),
        (status = 400, description = answers::BAD_PATH, body = ErrorBody),
        (status = 403, description = answers::OTHER_APP, body = ErrorBody),
        (status = 404, description = "no such application or segment (`not_found`)", body = ErrorBody),
    ))]
pub async fn delete_segment(
    State(state): State<AppState>,
    principal: Principal,
    path: PathResult,
) -> Result<StatusCode, ApiError> {
    let params = PathParams::from(path)?;
    let (app, id) = (params.app()?, params.segment_id()?);
    principal.require_app(app)?;
    state.blocking(move |s| s.delete_segment(app, id)).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The segment's filter, checked against the current schema.
pub fn segment_filter(
    store: &dyn Store,
    app: AppId,
    id: i64,
    schema: &Schema,
) -> Result<Filter, ApiError> {
    stored_filter(&store.get_segment(app, id)?, schema)
}

/// A segment's members, paged and sorted like the customer list.
#[utoipa::path(get, path = "/v1/apps/{app}/segments/{id}/customers", tag = "segments",
    params(("app" = i64, Path), ("id" = i64, Path),
        ("limit" = Option<usize>, Query, minimum = 1, maximum = 1000, description = "1–1000, default 50"),
        ("cursor" = Option<String>, Query, description = "next_cursor of the previous page"),
        ("sort" = Option<String>, Query, description = "customerId | created_at | updated_at | <field>, - prefix for descending")),
    responses(
        (status = 200, description = "a page of the segment's members", body = CustomerList),
        (status = 400, description = "a query parameter is unknown, repeated, not UTF-8 or out of range (`invalid_parameter`, `limit_exceeded`), the segment's filter no longer fits the fields (`filter_…`), or a path parameter is not UTF-8", body = ErrorBody),
        (status = 403, description = answers::OTHER_APP, body = ErrorBody),
        (status = 404, description = "no such application or segment (`not_found`)", body = ErrorBody),
    ))]
pub async fn segment_members(
    State(state): State<AppState>,
    principal: Principal,
    path: PathResult,
    query: axum::extract::RawQuery,
) -> Result<Json<CustomerList>, ApiError> {
    let params = PathParams::from(path)?;
    let (app, id) = (params.app()?, params.segment_id()?);
    principal.require_app(app)?;
    let query = super::params::QueryParams::from(query, &["limit", "cursor", "sort"])?;
    super::customers::list(
        state,
        app,
        query,
        Some(super::customers::Members::Segment(id)),
    )
    .await
    .map(Json)
}
