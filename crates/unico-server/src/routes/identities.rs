//! Identities (link, list, unlink, look up) and merges of customers.

use std::collections::HashMap;

use axum::Json;
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use serde::Serialize;
use serde_json::{Map, Value as Json_};
use unico_core::time::format_datetime;
use unico_core::{AppId, Customer, CustomerId, Identity, Schema};
use unico_store::{HeldIdentity, MergeOutcome, MergeRecord, Store, StoreError};
use utoipa::ToSchema;

use super::params::{PathParams, QueryParams};
use super::system::answers;
use crate::audit;
use crate::auth::Principal;
use crate::dto::{CustomerOut, customer_out, value_json};
use crate::error::{ApiError, ErrorBody};
use crate::extract::JsonBody;
use crate::identity::IdentityRules;
use crate::state::{AppState, now_ms};

type PathResult = Result<Path<HashMap<String, String>>, PathRejection>;

/// An identity a customer holds.
#[derive(Serialize, ToSchema)]
pub struct IdentityOut {
    pub kind: String,
    /// The value as normalised (emails lower-cased, phones in E.164).
    pub value: String,
    /// When it was linked (RFC 3339 UTC).
    pub linked_at: String,
}

impl From<&HeldIdentity> for IdentityOut {
    fn from(h: &HeldIdentity) -> Self {
        IdentityOut {
            kind: h.identity.kind.as_str().to_owned(),
            value: h.identity.value().to_owned(),
            linked_at: format_datetime(h.linked_at),
        }
    }
}

/// A customer merged into this one.
#[derive(Serialize, ToSchema)]
pub struct AliasOut {
    /// The merged customer's customerId: an alias that still finds this customer.
    #[serde(rename = "customerId")]
    pub customer_id: String,
    pub merged_at: String,
    /// The merged customer's values that lost to this customer's, by field.
    #[schema(value_type = Object)]
    pub lost: Map<String, Json_>,
}

fn values_by_name(
    values: &[(unico_core::FieldId, unico_core::Value)],
    schema: &Schema,
) -> Map<String, Json_> {
    values
        .iter()
        .filter_map(|(id, v)| {
            schema
                .by_id(*id)
                .map(|f| (f.name.as_str().to_owned(), value_json(v)))
        })
        .collect()
}

fn alias_out(m: &MergeRecord, schema: &Schema) -> AliasOut {
    AliasOut {
        customer_id: m.alias.as_str().to_owned(),
        merged_at: format_datetime(m.merged_at),
        lost: values_by_name(&m.lost, schema),
    }
}

/// A customer's identities and aliases.
#[derive(Serialize, ToSchema)]
pub struct IdentityList {
    pub identities: Vec<IdentityOut>,
    /// The customers merged into this one, newest first.
    pub aliases: Vec<AliasOut>,
    /// The customer was created for an identity nobody held and has not been merged into
    /// a known customer.
    pub anonymous: bool,
    /// The kinds the application takes.
    pub kinds: Vec<String>,
}

/// What a merge moved.
#[derive(Serialize, ToSchema)]
pub struct MergeOut {
    /// The merged customer's customerId, now an alias of the survivor.
    pub from: String,
    pub events_moved: u64,
    pub identities_moved: u64,
    /// Channels whose standing subscription the survivor took (the later statement wins).
    pub subscriptions_moved: u64,
    /// Fields the survivor lacked and took from the merged customer.
    pub fields_filled: Vec<String>,
    /// The merged customer's values that lost to the survivor's, by field.
    #[schema(value_type = Object)]
    pub lost: Map<String, Json_>,
}

fn merge_out(m: &MergeOutcome, schema: &Schema) -> MergeOut {
    MergeOut {
        from: m.from.as_str().to_owned(),
        events_moved: m.events_moved,
        identities_moved: m.identities_moved,
        subscriptions_moved: m.subscriptions_moved,
        fields_filled: m
            .fields_filled
            .iter()
            .filter_map(|id| schema.by_id(*id).map(|f| f.name.as_str().to_owned()))
            .collect(),
        lost: values_by_name(&m.lost, schema),
    }
}

/// The survivor of a merge (or a link), and what moved.
#[derive(Serialize, ToSchema)]
pub struct MergedCustomer {
    #[serde(flatten)]
    pub customer: CustomerOut,
    /// What the merge moved (absent when a link merged nobody).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub merge: Option<MergeOut>,
}

/// The answer to a link.
#[derive(Serialize, ToSchema)]
pub struct Linked {
    pub identity: IdentityOut,
    /// The customer after the link (and any merge).
    pub customer: CustomerOut,
    /// The identity belonged to an anonymous customer, which was merged into this one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub merged: Option<MergeOut>,
}

/// Request body of `POST …/identities`.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct IdentityIn {
    /// `device_id`, `email`, `phone`, `external_code`, or a kind the application declared.
    pub kind: String,
    pub value: String,
}

/// Request body of `POST …/merge`.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct MergeIn {
    /// The customer merged into the one in the path (its customerId stays as an alias).
    pub from: String,
}

/// Reads `{"kind", "value"}` against the application's rules.
fn identity_from_json(body: &Json_, rules: &IdentityRules) -> Result<Identity, ApiError> {
    let Json_::Object(obj) = body else {
        return Err(ApiError::invalid(
            "body",
            "expected {\"kind\": \"email\", \"value\": \"…\"}",
        ));
    };
    if let Some(key) = obj.keys().find(|k| !matches!(k.as_str(), "kind" | "value")) {
        return Err(ApiError::invalid(
            unico_core::value::excerpt(key),
            "unknown key; an identity is {\"kind\", \"value\"}",
        ));
    }
    let text = |key: &str| match obj.get(key) {
        Some(Json_::String(s)) => Ok(s.as_str()),
        None | Some(Json_::Null) => Err(ApiError::invalid(key, format!("{key} is required"))),
        Some(_) => Err(ApiError::invalid(key, format!("{key} must be a string"))),
    };
    let (kind, value) = (text("kind")?, text("value")?);
    rules
        .identity(kind, value)
        .map_err(|(part, message)| ApiError::invalid(part, message))
}

/// An identity from the path's `kind` and `value`: one the application cannot hold is
/// simply not found.
fn identity_from_path(params: &PathParams, rules: &IdentityRules) -> Result<Identity, ApiError> {
    rules
        .identity(params.raw("kind")?, params.raw("value")?)
        .map_err(|(_, message)| ApiError::NotFound(format!("identity not found: {message}")))
}

async fn rules(state: &AppState, app: AppId) -> Result<IdentityRules, ApiError> {
    state
        .blocking(move |s| {
            s.get_app(app)?;
            IdentityRules::of(s, app)
        })
        .await
}

/// The customer with its computed fields filled, as the API shows it.
async fn complete(
    state: &AppState,
    app: AppId,
    schema: &Schema,
    customer: Customer,
) -> Result<CustomerOut, ApiError> {
    let customer = super::customers::with_computed(state, app, schema, customer).await?;
    Ok(customer_out(&customer, schema))
}

/// The audit text of a merge: internal ids, counts and field names (no values: those are
/// kept with the survivor, where an erasure removes them).
pub(crate) fn merge_audit(survivor: i64, m: &MergeOutcome, schema: &Schema) -> String {
    let names = |ids: &[unico_core::FieldId]| -> String {
        ids.iter()
            .filter_map(|id| schema.by_id(*id).map(|f| f.name.as_str().to_owned()))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let lost: Vec<unico_core::FieldId> = m.lost.iter().map(|(id, _)| *id).collect();
    format!(
        "customer #{} into #{survivor}: {} events, {} identities, {} subscriptions moved; fields filled: [{}]; values lost: [{}]",
        m.from_id,
        m.events_moved,
        m.identities_moved,
        m.subscriptions_moved,
        names(&m.fields_filled),
        names(&lost)
    )
}

/// Link an identity to a customer: `{"kind": "email", "value": "Ana@Example.com"}` (stored
/// normalised). An identity held by an anonymous customer merges that customer into this
/// one (the sign-in); held by another known customer it is a 409 naming the owner.
#[utoipa::path(post, path = "/v1/apps/{app}/customers/{customerId}/identities", tag = "identities",
    params(("app" = i64, Path), ("customerId" = String, Path)),
    request_body = IdentityIn,
    responses(
        (status = 201, description = "linked (and any anonymous holder merged in)", body = Linked),
        (status = 200, description = "the customer already held it; nothing changed", body = Linked),
        (status = 400, description = "the body is not JSON (`invalid_content_type`, `invalid_json`), or the kind is not one of the application's or the value breaks its kind's rule (`invalid_input`)", body = ErrorBody),
        (status = 403, description = answers::OTHER_APP, body = ErrorBody),
        (status = 404, description = "no such application or customer (`not_found`)", body = ErrorBody),
        (status = 409, description = "another known customer holds the identity (`conflict`, the message names it)", body = ErrorBody),
        (status = 413, description = answers::TOO_LARGE, body = ErrorBody),
    ))]
pub async fn link_identity(
    State(state): State<AppState>,
    principal: Principal,
    path: PathResult,
    JsonBody(body): JsonBody<Json_>,
) -> Result<(StatusCode, Json<Linked>), ApiError> {
    let params = PathParams::from(path)?;
    let app = params.app()?;
    principal.require_app(app)?;
    let customer_id = params.customer_id()?;
    let rules = rules(&state, app).await?;
    let identity = identity_from_json(&body, &rules)?;
    let actor = audit::actor(&principal);
    let (out, schema, identity) = link(&state, app, customer_id, identity, actor).await?;
    let status = if out.linked {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    let merged = out.merged.as_ref().map(|m| merge_out(m, &schema));
    let customer = complete(&state, app, &schema, out.customer).await?;
    Ok((
        status,
        Json(Linked {
            identity: IdentityOut {
                kind: identity.kind.as_str().to_owned(),
                value: identity.value().to_owned(),
                linked_at: format_datetime(now_ms()),
            },
            customer,
            merged,
        }),
    ))
}

/// Links an identity (for the API and the console); a merge it causes is audited.
pub(crate) async fn link(
    state: &AppState,
    app: AppId,
    customer_id: CustomerId,
    identity: Identity,
    actor: String,
) -> Result<(unico_store::LinkOutcome, Schema, Identity), ApiError> {
    state
        .blocking(move |s| {
            let out = s.link_identity(app, &customer_id, &identity, now_ms())?;
            let schema = s.schema(app)?;
            if let Some(m) = &out.merged {
                audit::record(
                    s,
                    Some(app),
                    &actor,
                    "customer.merged",
                    format!("{} (on sign-in)", merge_audit(out.customer.id, m, &schema)),
                )?;
            }
            Ok((out, schema, identity))
        })
        .await
}

/// A customer's identities, the customers merged into it (aliases), and whether it is
/// anonymous.
#[utoipa::path(get, path = "/v1/apps/{app}/customers/{customerId}/identities", tag = "identities",
    params(("app" = i64, Path), ("customerId" = String, Path)),
    responses(
        (status = 200, description = "the identities and aliases", body = IdentityList),
        (status = 400, description = answers::BAD_PATH, body = ErrorBody),
        (status = 403, description = answers::OTHER_APP, body = ErrorBody),
        (status = 404, description = "no such application or customer (`not_found`)", body = ErrorBody),
    ))]
pub async fn list_identities(
    State(state): State<AppState>,
    principal: Principal,
    path: PathResult,
) -> Result<Json<IdentityList>, ApiError> {
    let params = PathParams::from(path)?;
    let app = params.app()?;
    principal.require_app(app)?;
    let customer_id = params.customer_id()?;
    state
        .blocking(move |s| identity_list(s, app, &customer_id))
        .await
        .map(Json)
}

/// A customer's identities and aliases (for the API, the console and the subject export).
pub(crate) fn identity_list(
    s: &dyn Store,
    app: AppId,
    customer_id: &CustomerId,
) -> Result<IdentityList, StoreError> {
    let schema = s.schema(app)?;
    let rules = IdentityRules::of(s, app)?;
    Ok(IdentityList {
        identities: s
            .identities(app, customer_id)?
            .iter()
            .map(IdentityOut::from)
            .collect(),
        aliases: s
            .merges(app, customer_id)?
            .iter()
            .map(|m| alias_out(m, &schema))
            .collect(),
        anonymous: s.is_anonymous(app, customer_id)?,
        kinds: rules.kinds.iter().map(|k| k.as_str().to_owned()).collect(),
    })
}

/// Remove an identity from a customer.
#[utoipa::path(delete, path = "/v1/apps/{app}/customers/{customerId}/identities/{kind}/{value}", tag = "identities",
    params(("app" = i64, Path), ("customerId" = String, Path), ("kind" = String, Path), ("value" = String, Path)),
    responses(
        (status = 204, description = "unlinked"),
        (status = 400, description = answers::BAD_PATH, body = ErrorBody),
        (status = 403, description = answers::OTHER_APP, body = ErrorBody),
        (status = 404, description = "no such application or customer, or the customer does not hold that identity (`not_found`)", body = ErrorBody),
    ))]
pub async fn unlink_identity(
    State(state): State<AppState>,
    principal: Principal,
    path: PathResult,
) -> Result<StatusCode, ApiError> {
    let params = PathParams::from(path)?;
    let app = params.app()?;
    principal.require_app(app)?;
    let customer_id = params.customer_id()?;
    let identity = identity_from_path(&params, &rules(&state, app).await?)?;
    state
        .blocking(move |s| s.unlink_identity(app, &customer_id, &identity))
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The customer holding an identity (the value is normalised by its kind's rule first, so
/// `GET …/identities/email/Ana@Example.com` finds `ana@example.com`).
#[utoipa::path(get, path = "/v1/apps/{app}/identities/{kind}/{value}", tag = "identities",
    params(("app" = i64, Path), ("kind" = String, Path), ("value" = String, Path)),
    responses(
        (status = 200, description = "the customer holding it", body = CustomerOut),
        (status = 400, description = answers::BAD_PATH, body = ErrorBody),
        (status = 403, description = answers::OTHER_APP, body = ErrorBody),
        (status = 404, description = "no such application, or nobody holds the identity (`not_found`)", body = ErrorBody),
    ))]
pub async fn find_identity(
    State(state): State<AppState>,
    principal: Principal,
    path: PathResult,
) -> Result<Json<CustomerOut>, ApiError> {
    let params = PathParams::from(path)?;
    let app = params.app()?;
    principal.require_app(app)?;
    let (kind, value) = (
        params.raw("kind")?.to_owned(),
        params.raw("value")?.to_owned(),
    );
    // One trip to the store: the application's rules, the lookup and the schema.
    let (found, schema) = state
        .blocking(move |s| {
            s.get_app(app)?;
            let rules = IdentityRules::of(s, app)?;
            let found = match rules.identity(&kind, &value) {
                Ok(identity) => Ok((s.find_identity(app, &identity)?, identity)),
                Err((_, message)) => Err(message),
            };
            Ok((found, s.schema(app)?))
        })
        .await?;
    let (customer, identity) =
        found.map_err(|message| ApiError::NotFound(format!("identity not found: {message}")))?;
    let customer = customer.ok_or_else(|| {
        ApiError::NotFound(format!(
            "no customer holds the identity {}",
            unico_core::value::excerpt(&identity.to_string())
        ))
    })?;
    complete(&state, app, &schema, customer).await.map(Json)
}

fn from_of(body: &Json_) -> Result<CustomerId, ApiError> {
    let Json_::Object(obj) = body else {
        return Err(ApiError::invalid(
            "body",
            "expected {\"from\": \"otherCustomerId\"}",
        ));
    };
    if let Some(key) = obj.keys().find(|k| k.as_str() != "from") {
        return Err(ApiError::invalid(
            unico_core::value::excerpt(key),
            "unknown key; the body is {\"from\": \"otherCustomerId\"}",
        ));
    }
    match obj.get("from") {
        Some(Json_::String(s)) => {
            CustomerId::parse(s).map_err(|e| ApiError::invalid("from", e.to_string()))
        }
        None | Some(Json_::Null) => Err(ApiError::invalid(
            "from",
            "from is required: the customerId of the customer to merge into this one",
        )),
        Some(_) => Err(ApiError::invalid(
            "from",
            "from must be a string (a customerId)",
        )),
    }
}

/// Merge another customer into this one: `{"from": "otherCustomerId"}`. Its events,
/// identities, subscriptions (the later statement per channel wins) and aliases move here;
/// its values fill the fields this customer lacks (this customer's values win; the losing
/// ones are kept in the alias record); it is deleted and its customerId becomes an alias
/// that still finds this customer. Audited. Answers the surviving customer.
#[utoipa::path(post, path = "/v1/apps/{app}/customers/{customerId}/merge", tag = "identities",
    params(("app" = i64, Path), ("customerId" = String, Path)),
    request_body = MergeIn,
    responses(
        (status = 200, description = "the surviving customer and what moved", body = MergedCustomer),
        (status = 400, description = "the body is not JSON or has no valid `from` (`invalid_input`), or both ids name the same customer (`invalid_parameter`)", body = ErrorBody),
        (status = 403, description = answers::OTHER_APP, body = ErrorBody),
        (status = 404, description = "no such application, customer or `from` customer (`not_found`)", body = ErrorBody),
        (status = 413, description = answers::TOO_LARGE, body = ErrorBody),
    ))]
pub async fn merge(
    State(state): State<AppState>,
    principal: Principal,
    path: PathResult,
    JsonBody(body): JsonBody<Json_>,
) -> Result<Json<MergedCustomer>, ApiError> {
    let params = PathParams::from(path)?;
    let app = params.app()?;
    principal.require_app(app)?;
    let into = params.customer_id()?;
    let from = from_of(&body)?;
    let actor = audit::actor(&principal);
    merge_customers(&state, app, into, from, actor)
        .await
        .map(Json)
}

/// Merges and audits (for the API and the console).
pub(crate) async fn merge_customers(
    state: &AppState,
    app: AppId,
    into: CustomerId,
    from: CustomerId,
    actor: String,
) -> Result<MergedCustomer, ApiError> {
    let (out, schema) = state
        .blocking(move |s| {
            let out = s.merge_customers(app, &into, &from, now_ms())?;
            let schema = s.schema(app)?;
            audit::record(
                s,
                Some(app),
                &actor,
                "customer.merged",
                merge_audit(out.customer.id, &out, &schema),
            )?;
            Ok((out, schema))
        })
        .await?;
    let merge = merge_out(&out, &schema);
    let customer = complete(state, app, &schema, out.customer).await?;
    Ok(MergedCustomer {
        customer,
        merge: Some(merge),
    })
}

/// What merging `from` into a customer would move, without merging.
#[derive(Serialize, ToSchema)]
pub struct MergePreview {
    /// The customer that would survive.
    #[serde(rename = "customerId")]
    pub customer_id: String,
    pub from: String,
    pub events: u64,
    pub identities: Vec<IdentityOut>,
    /// Channels on which `from` holds a statement.
    pub subscriptions: Vec<String>,
    /// Fields the survivor lacks and would take.
    #[schema(value_type = Object)]
    pub fields_filled: Map<String, Json_>,
    /// `from`'s values that would lose to the survivor's.
    #[schema(value_type = Object)]
    pub lost: Map<String, Json_>,
    /// Aliases of `from` that would lead to the survivor, `from` itself included.
    pub aliases: Vec<String>,
}

/// Preview a merge (`?from=otherCustomerId`): what would move, what would lose. Nothing
/// is written.
#[utoipa::path(get, path = "/v1/apps/{app}/customers/{customerId}/merge", tag = "identities",
    params(("app" = i64, Path), ("customerId" = String, Path),
        ("from" = String, Query, description = "the customer that would be merged into this one")),
    responses(
        (status = 200, description = "what the merge would do", body = MergePreview),
        (status = 400, description = "no valid `from`, or both ids name the same customer (`invalid_parameter`)", body = ErrorBody),
        (status = 403, description = answers::OTHER_APP, body = ErrorBody),
        (status = 404, description = "no such application, customer or `from` customer (`not_found`)", body = ErrorBody),
    ))]
pub async fn merge_preview(
    State(state): State<AppState>,
    principal: Principal,
    path: PathResult,
    query: RawQuery,
) -> Result<Json<MergePreview>, ApiError> {
    let params = PathParams::from(path)?;
    let app = params.app()?;
    principal.require_app(app)?;
    let into = params.customer_id()?;
    let query = QueryParams::from(query, &["from"])?;
    let from = query
        .get("from")
        .ok_or_else(|| ApiError::InvalidParameter("from is required: ?from=otherCustomerId".into()))
        .and_then(|t| {
            CustomerId::parse(t).map_err(|e| ApiError::InvalidParameter(format!("from: {e}")))
        })?;
    state
        .blocking(move |s| preview(s, app, &into, &from))
        .await
        .map(Json)
}

/// What merging `from` into `into` would do (for the API and the console).
pub(crate) fn preview(
    s: &dyn Store,
    app: AppId,
    into: &CustomerId,
    from: &CustomerId,
) -> Result<MergePreview, StoreError> {
    let survivor = s.get_customer(app, into)?;
    let merged = s.get_customer(app, from)?;
    if survivor.id == merged.id {
        return Err(StoreError::Invalid(format!(
            "\"{}\" and \"{}\" are the same customer",
            unico_core::value::excerpt(into.as_str()),
            unico_core::value::excerpt(from.as_str())
        )));
    }
    let schema = s.schema(app)?;
    let (changes, _, lost) =
        unico_store::identities::merge_fields(&survivor.fields, &merged.fields);
    let filled: Vec<(unico_core::FieldId, unico_core::Value)> = changes
        .into_iter()
        .filter_map(|c| c.value.map(|v| (c.field, v)))
        .collect();
    let mut aliases = vec![merged.customer_id.as_str().to_owned()];
    aliases.extend(
        s.merges(app, &merged.customer_id)?
            .into_iter()
            .map(|m| m.alias.into_string()),
    );
    Ok(MergePreview {
        customer_id: survivor.customer_id.as_str().to_owned(),
        from: merged.customer_id.as_str().to_owned(),
        events: s.customer_activity(app, &merged.customer_id)?.events,
        identities: s
            .identities(app, &merged.customer_id)?
            .iter()
            .map(IdentityOut::from)
            .collect(),
        subscriptions: s
            .subscriptions(app, &merged.customer_id)?
            .iter()
            .map(|x| x.channel.as_str().to_owned())
            .collect(),
        fields_filled: values_by_name(&filled, &schema),
        lost: values_by_name(&lost, &schema),
        aliases,
    })
}
