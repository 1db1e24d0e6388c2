//! Customers: create, read, change, delete, batch upsert and list.

use std::collections::HashMap;

use axum::Json;
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use serde_json::Value as Json_;
use unico_core::limits::{DEFAULT_PAGE_LIMIT, MAX_BATCH_ITEMS, MAX_PAGE_LIMIT};
use unico_core::{CustomerId, Schema};

use unico_store::{Cursor, ListQuery, Sort, SortBy, UpsertItem};

use super::params::{PathParams, QueryParams};
use super::system::answers;
use crate::auth::Principal;
use crate::dto::{
    BatchOut, BatchResult, CreateCustomer, CustomerList, CustomerOut, PatchCustomer,
    customer_input, customer_out, fields_to_changes,
};
use crate::error::{ApiError, ErrorBody, ErrorObject};
use crate::extract::{JsonArrayBody, JsonBody};
use crate::state::{AppState, now_ms};

type PathResult = Result<Path<HashMap<String, String>>, PathRejection>;

/// Create one customer. 409 if the customerId exists.
#[utoipa::path(post, path = "/v1/apps/{app}/customers", tag = "customers", params(("app" = i64, Path)),
    request_body = CreateCustomer,
    responses(
        (status = 201, description = "the customer", body = CustomerOut),
        (status = 400, description = "the body is not JSON (`invalid_content_type`, `invalid_json`), the customerId or a value is invalid (`invalid_input`, a detail per problem), or a path parameter is not UTF-8", body = ErrorBody),
        (status = 403, description = answers::OTHER_APP, body = ErrorBody),
        (status = 404, description = answers::NO_APP, body = ErrorBody),
        (status = 409, description = "the customerId exists (`conflict`), or one of the fields was deleted or retyped meanwhile", body = ErrorBody),
        (status = 413, description = answers::TOO_LARGE, body = ErrorBody),
    ))]
pub async fn create_customer(
    State(state): State<AppState>,
    principal: Principal,
    path: PathResult,
    JsonBody(body): JsonBody<Json_>,
) -> Result<(StatusCode, Json<CustomerOut>), ApiError> {
    let app = PathParams::from(path)?.app()?;
    principal.require_app(app)?;
    let (schema, (customer_id, changes)) = state
        .read_with_schema(app, |schema| {
            customer_input(&body, schema, "").map_err(ApiError::invalid_many)
        })
        .await?;
    let customer = state
        .blocking(move |s| s.create_customer(app, &customer_id, &changes, now_ms()))
        .await?;
    let customer = with_computed(&state, app, &schema, customer).await?;
    Ok((StatusCode::CREATED, Json(customer_out(&customer, &schema))))
}

/// Get one customer by customerId (percent-encode `/`, `?`, `#` in the path).
#[utoipa::path(get, path = "/v1/apps/{app}/customers/{customerId}", tag = "customers",
    params(("app" = i64, Path), ("customerId" = String, Path)),
    responses(
        (status = 200, description = "the customer", body = CustomerOut),
        (status = 400, description = answers::BAD_PATH, body = ErrorBody),
        (status = 403, description = answers::OTHER_APP, body = ErrorBody),
        (status = 404, description = "no such application or customer (`not_found`)", body = ErrorBody),
    ))]
pub async fn get_customer(
    State(state): State<AppState>,
    principal: Principal,
    path: PathResult,
) -> Result<Json<CustomerOut>, ApiError> {
    let params = PathParams::from(path)?;
    let app = params.app()?;
    principal.require_app(app)?;
    let customer_id = params.customer_id()?;
    let mut schema = state.schema(app).await?;
    let customer = state
        .blocking(move |s| s.get_customer(app, &customer_id))
        .await?;
    if customer
        .fields
        .iter()
        .any(|(id, _)| schema.by_id(*id).is_none())
    {
        schema = state.store_schema(app).await?;
    }
    let customer = with_computed(&state, app, &schema, customer).await?;
    Ok(Json(customer_out(&customer, &schema)))
}

/// Set and remove values: `{"fields": {"age": 31, "city": null}}`. `id`, `customerId`,
/// `created_at` and `updated_at` cannot change (409).
#[utoipa::path(patch, path = "/v1/apps/{app}/customers/{customerId}", tag = "customers",
    params(("app" = i64, Path), ("customerId" = String, Path)), request_body = PatchCustomer,
    responses(
        (status = 200, description = "the customer as changed", body = CustomerOut),
        (status = 400, description = "the body is not JSON (`invalid_content_type`, `invalid_json`), holds a key other than `fields` or an invalid value (`invalid_input`, a detail per problem), or a path parameter is not UTF-8", body = ErrorBody),
        (status = 403, description = answers::OTHER_APP, body = ErrorBody),
        (status = 404, description = "no such application or customer (`not_found`)", body = ErrorBody),
        (status = 409, description = "the body names `id`, `customerId`, `created_at` or `updated_at` (`immutable`), or one of the fields was deleted or retyped meanwhile (`conflict`)", body = ErrorBody),
        (status = 413, description = answers::TOO_LARGE, body = ErrorBody),
    ))]
pub async fn patch_customer(
    State(state): State<AppState>,
    principal: Principal,
    path: PathResult,
    JsonBody(body): JsonBody<Json_>,
) -> Result<Json<CustomerOut>, ApiError> {
    let params = PathParams::from(path)?;
    let app = params.app()?;
    principal.require_app(app)?;
    let customer_id = params.customer_id()?;
    let Json_::Object(obj) = body else {
        return Err(ApiError::invalid(
            "body",
            "expected an object {\"fields\": {…}}",
        ));
    };
    for key in obj.keys() {
        match key.as_str() {
            "fields" => {}
            "id" | "customerId" | "created_at" | "updated_at" => {
                return Err(ApiError::Immutable(format!(
                    "\"{key}\" cannot be changed: it is assigned once and immutable"
                )));
            }
            other => {
                return Err(ApiError::invalid(
                    unico_core::value::excerpt(other),
                    format!(
                        "\"{}\" is not a known key; send {{\"fields\": {{…}}}}",
                        unico_core::value::excerpt(other)
                    ),
                ));
            }
        }
    }
    let Some(Json_::Object(fields)) = obj.get("fields") else {
        return Err(ApiError::invalid(
            "fields",
            "fields is required and must be an object of field name to value",
        ));
    };
    let (schema, changes) = state
        .read_with_schema(app, |schema| {
            fields_to_changes(fields, schema, "fields.").map_err(ApiError::invalid_many)
        })
        .await?;
    let customer = state
        .blocking(move |s| s.update_customer(app, &customer_id, &changes, now_ms()))
        .await?;
    let customer = with_computed(&state, app, &schema, customer).await?;
    Ok(Json(customer_out(&customer, &schema)))
}

/// Delete one customer with their values, events and subscriptions. `erase=true` (the
/// right to erasure) also removes them from the change log and has the segment engines
/// rebuilt without them, so no copy is left in the store, the engines or their snapshots.
#[utoipa::path(delete, path = "/v1/apps/{app}/customers/{customerId}", tag = "customers",
    params(("app" = i64, Path), ("customerId" = String, Path),
        ("erase" = Option<bool>, Query, description = "true: leave no trace (change log, engines, snapshots)")),
    responses(
        (status = 204, description = "deleted"),
        (status = 400, description = "a bad path, or `erase` is not true or false (`invalid_parameter`)", body = ErrorBody),
        (status = 403, description = answers::OTHER_APP, body = ErrorBody),
        (status = 404, description = "no such application or customer (`not_found`)", body = ErrorBody),
    ))]
pub async fn delete_customer(
    State(state): State<AppState>,
    principal: Principal,
    path: PathResult,
    query: RawQuery,
) -> Result<StatusCode, ApiError> {
    let params = PathParams::from(path)?;
    let app = params.app()?;
    principal.require_app(app)?;
    let customer_id = params.customer_id()?;
    let query = QueryParams::from(query, &["erase"])?;
    let erase = match query.get("erase") {
        None | Some("false") => false,
        Some("true") => true,
        Some(other) => {
            return Err(ApiError::InvalidParameter(format!(
                "erase must be true or false, got \"{}\"",
                unico_core::value::excerpt(other)
            )));
        }
    };
    let actor = crate::audit::actor(&principal);
    state
        .blocking(move |s| {
            if erase {
                // Named by its internal id only: the record holds no personal data.
                let id = s.erase_customer(app, &customer_id)?;
                crate::audit::record(s, Some(app), &actor, "customer.erased", id)
            } else {
                s.delete_customer(app, &customer_id).map(|_| ())
            }
        })
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Create or update up to 10 000 customers: `[{"customerId", "fields"}]`. Answers each
/// item in request order; valid items are written even when others fail.
#[utoipa::path(post, path = "/v1/apps/{app}/customers/batch", tag = "customers", params(("app" = i64, Path)),
    request_body = Vec<CreateCustomer>,
    responses(
        (status = 200, description = "one result per item, in request order; invalid items are reported there", body = BatchOut),
        (status = 400, description = "the body is not a JSON array (`invalid_content_type`, `invalid_json`, `invalid_input`), holds more than 10 000 items (`limit_exceeded`), or a path parameter is not UTF-8", body = ErrorBody),
        (status = 403, description = answers::OTHER_APP, body = ErrorBody),
        (status = 404, description = answers::NO_APP, body = ErrorBody),
        (status = 413, description = answers::TOO_LARGE, body = ErrorBody),
    ))]
pub async fn batch_upsert(
    State(state): State<AppState>,
    principal: Principal,
    path: PathResult,
    JsonArrayBody(body): JsonArrayBody<Json_>,
) -> Result<Json<BatchOut>, ApiError> {
    let app = PathParams::from(path)?.app()?;
    principal.require_app(app)?;
    let Json_::Array(items) = body else {
        return Err(ApiError::invalid(
            "body",
            "expected a JSON array of {\"customerId\", \"fields\"} items",
        ));
    };
    if items.len() > MAX_BATCH_ITEMS {
        return Err(ApiError::LimitExceeded(format!(
            "a batch holds at most {MAX_BATCH_ITEMS} items, got {}",
            items.len()
        )));
    }
    // The store's schema: a batch amortises the read, and its items are read once.
    let schema = state.store_schema(app).await?;
    let mut results: Vec<Option<BatchResult>> = Vec::with_capacity(items.len());
    let mut valid = Vec::new();
    let now = now_ms();
    for (i, item) in items.iter().enumerate() {
        // An item may carry consent beside its values: {"subscriptions": {"email": true}}.
        let (item, subscriptions) = match item {
            Json_::Object(obj) if obj.contains_key("subscriptions") => {
                let mut rest = obj.clone();
                let value = rest.remove("subscriptions").unwrap_or_default();
                (
                    std::borrow::Cow::Owned(Json_::Object(rest)),
                    super::subscriptions::batch_changes(
                        &value,
                        now,
                        &format!("[{i}].subscriptions"),
                    ),
                )
            }
            other => (std::borrow::Cow::Borrowed(other), Ok(Vec::new())),
        };
        let item = item.as_ref();
        let parsed = match (
            customer_input(item, &schema, &format!("[{i}].")),
            subscriptions,
        ) {
            (Ok((id, changes)), Ok(subs)) => Ok((id, changes, subs)),
            (Ok(_), Err(more)) => Err(more),
            (Err(details), Ok(_)) => Err(details),
            (Err(mut details), Err(more)) => {
                details.extend(more);
                Err(details)
            }
        };
        match parsed {
            Ok((customer_id, changes, subscriptions)) => {
                valid.push((
                    i,
                    UpsertItem {
                        customer_id,
                        changes,
                        subscriptions,
                    },
                ));
                results.push(None);
            }
            Err(details) => {
                let id = item
                    .get("customerId")
                    .and_then(Json_::as_str)
                    .map(str::to_owned);
                results.push(Some(error_result(id, ApiError::invalid_many(details))));
            }
        }
    }
    let (positions, upserts): (Vec<usize>, Vec<UpsertItem>) = valid.into_iter().unzip();
    let ids: Vec<CustomerId> = upserts.iter().map(|u| u.customer_id.clone()).collect();
    let outcomes = if upserts.is_empty() {
        Vec::new()
    } else {
        state
            .blocking(move |s| s.upsert_batch(app, upserts, now))
            .await?
    };
    for ((pos, id), outcome) in positions.into_iter().zip(ids).zip(outcomes) {
        results[pos] = Some(match outcome {
            Ok(o) => BatchResult {
                customer_id: Some(id.into_string()),
                status: if o.created { "created" } else { "updated" },
                customer: Some(customer_out(&o.customer, &schema)),
                error: None,
            },
            Err(e) => error_result(Some(id.into_string()), ApiError::from(e)),
        });
    }
    let results = results
        .into_iter()
        .map(|r| r.ok_or_else(|| ApiError::Internal("a batch item got no result".into())))
        .collect::<Result<_, _>>()?;
    Ok(Json(BatchOut { results }))
}

fn error_result(customer_id: Option<String>, error: ApiError) -> BatchResult {
    let (_, code) = error.status_and_code();
    let details = match &error {
        ApiError::InvalidInput { details, .. } => details.clone(),
        _ => Vec::new(),
    };
    BatchResult {
        customer_id,
        status: "error",
        customer: None,
        error: Some(ErrorObject {
            code: code.to_owned(),
            message: error.to_string(),
            details,
        }),
    }
}

fn parse_sort(text: Option<&str>, schema: &Schema) -> Result<Sort, ApiError> {
    let Some(text) = text else {
        return Ok(Sort::default_order());
    };
    let (descending, name) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text),
    };
    let by = match name {
        "customerId" => SortBy::CustomerId,
        "created_at" => SortBy::CreatedAt,
        "updated_at" => SortBy::UpdatedAt,
        other => match schema.by_name(other) {
            Some(def) if def.is_computed() => {
                return Err(ApiError::InvalidParameter(format!(
                    "cannot sort by \"{}\": it is a computed field; filter on it instead (for example {} > 0)",
                    def.name, def.name
                )));
            }
            Some(def) => SortBy::Field(def.clone()),
            None => {
                let hint = schema
                    .suggest(other)
                    .map(|s| format!(" — did you mean \"{s}\"?"))
                    .unwrap_or_default();
                return Err(ApiError::InvalidParameter(format!(
                    "cannot sort by \"{}\": not customerId, created_at, updated_at or a field of this application{hint} (prefix - for descending)",
                    unico_core::value::excerpt(other)
                )));
            }
        },
    };
    Ok(Sort { by, descending })
}

fn parse_limit(text: Option<&str>) -> Result<usize, ApiError> {
    let Some(text) = text else {
        return Ok(DEFAULT_PAGE_LIMIT);
    };
    let limit: usize = text.parse().map_err(|_| {
        ApiError::InvalidParameter(format!(
            "limit must be a whole number from 1 to {MAX_PAGE_LIMIT}, got \"{}\"",
            unico_core::value::excerpt(text)
        ))
    })?;
    match limit {
        0 => Err(ApiError::InvalidParameter(format!(
            "limit must be from 1 to {MAX_PAGE_LIMIT}, got 0"
        ))),
        l if l > MAX_PAGE_LIMIT => Err(ApiError::LimitExceeded(format!(
            "limit is at most {MAX_PAGE_LIMIT}, got {l}"
        ))),
        l => Ok(l),
    }
}

/// List customers, a page at a time (keyset pagination). `sort` is `customerId` (default,
/// byte order), `created_at`, `updated_at` or a field name, `-` in front for descending;
/// customers without a value of the sort field come last. `filter` (text form) keeps the
/// members of a filter only.
#[utoipa::path(get, path = "/v1/apps/{app}/customers", tag = "customers",
    params(("app" = i64, Path), ("limit" = Option<usize>, Query, minimum = 1, maximum = 1000, description = "1–1000, default 50"),
        ("cursor" = Option<String>, Query, description = "next_cursor of the previous page"),
        ("sort" = Option<String>, Query, description = "customerId | created_at | updated_at | <field>, - prefix for descending"),
        ("filter" = Option<String>, Query, description = "a filter in the text form, e.g. country = \"ES\" and age >= 30")),
    responses(
        (status = 200, description = "a page of customers", body = CustomerList),
        (status = 400, description = "a query parameter is unknown, repeated, not UTF-8 or out of range (`invalid_parameter`, `limit_exceeded`), the filter does not parse or fit the fields (`filter_…`), or a path parameter is not UTF-8", body = ErrorBody),
        (status = 403, description = answers::OTHER_APP, body = ErrorBody),
        (status = 404, description = answers::NO_APP, body = ErrorBody),
    ))]
pub async fn list_customers(
    State(state): State<AppState>,
    principal: Principal,
    path: PathResult,
    query: RawQuery,
) -> Result<Json<CustomerList>, ApiError> {
    let app = PathParams::from(path)?.app()?;
    principal.require_app(app)?;
    let query = QueryParams::from(query, &["limit", "cursor", "sort", "filter"])?;
    list(state, app, query, None).await.map(Json)
}

/// Where a list's members come from: all customers, a filter, or a saved segment.
pub enum Members {
    Segment(i64),
}

/// One page of customers: from the store's indexes without a filter, from the segment
/// engine with one.
pub async fn list(
    state: AppState,
    app: unico_core::AppId,
    query: QueryParams,
    members: Option<Members>,
) -> Result<CustomerList, ApiError> {
    let limit = parse_limit(query.get("limit"))?;
    let sort_text = query.get("sort").map(str::to_owned);
    let cursor = query.get("cursor").map(str::to_owned);
    let filter_text = query.get("filter").map(str::to_owned);
    let st = state.clone();
    // The engine's copy of the schema when it has followed every write (no store round
    // trip); a filter, sort or page that does not work with it is tried once more with
    // the store's (a field another server created a moment ago).
    let engine_schema = state.schema(app).await?;
    state
        .blocking_api(move |s| {
            let page = |schema: &unico_core::Schema| -> Result<CustomerList, ApiError> {
                let sort = parse_sort(sort_text.as_deref(), schema)?;
                let filter = match (&filter_text, &members) {
                    (Some(text), _) => Some(super::segments::parse_filter_text(text, schema)?),
                    (None, Some(Members::Segment(id))) => {
                        Some(super::segments::segment_filter(s, app, *id, schema)?)
                    }
                    (None, None) => None,
                };
                if let Some(filter) = filter {
                    let page = super::segments::PageRequest {
                        sort: &sort,
                        cursor: cursor.as_deref(),
                        limit,
                    };
                    return super::segments::filtered_page(&st, s, app, schema, &filter, page);
                }
                let after = cursor
                    .as_deref()
                    .map(|c| Cursor::decode(c, &sort))
                    .transpose()?;
                let mut page = s.list_customers(app, &ListQuery { sort, after, limit })?;
                crate::computed::fill(&st.engines, app, schema, &mut page.customers)?;
                Ok(CustomerList {
                    customers: page
                        .customers
                        .iter()
                        .map(|c| customer_out(c, schema))
                        .collect(),
                    next_cursor: page.next.map(|c| c.encode()),
                })
            };
            match page(&engine_schema) {
                Err(e) if e.status_and_code().0 == axum::http::StatusCode::BAD_REQUEST => {
                    page(&s.schema(app)?)
                }
                answer => answer,
            }
        })
        .await
}

/// The customer with its computed fields' current values (read on a blocking thread: the
/// engine first applies the writes acknowledged before).
pub(crate) async fn with_computed(
    state: &AppState,
    app: unico_core::AppId,
    schema: &unico_core::Schema,
    customer: unico_core::Customer,
) -> Result<unico_core::Customer, ApiError> {
    if schema.computed_fields().next().is_none() {
        return Ok(customer);
    }
    let (engines, schema) = (state.engines.clone(), schema.clone());
    tokio::task::spawn_blocking(move || {
        let mut one = [customer];
        crate::computed::fill(&engines, app, &schema, &mut one)?;
        let [customer] = one;
        Ok(customer)
    })
    .await
    .map_err(|e| ApiError::Internal(format!("blocking task failed: {e}")))?
}
