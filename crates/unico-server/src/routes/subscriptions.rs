//! Channel subscriptions (consent): a customer's standing subscription per channel, the
//! changes to it, and their history.

use std::collections::HashMap;

use axum::Json;
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, RawQuery, State};
use serde::Serialize;
use serde_json::Value as Json_;
use unico_core::time::format_datetime;
use unico_core::{Channel, Source, Subscription, SubscriptionChange};
use unico_store::subscriptions::{HistoryEntry, MAX_HISTORY};
use utoipa::ToSchema;

use super::params::{PathParams, QueryParams};
use super::system::answers;
use crate::auth::Principal;
use crate::error::{ApiError, ErrorBody, ErrorDetail};
use crate::extract::JsonBody;
use crate::state::{AppState, now_ms};

type PathResult = Result<Path<HashMap<String, String>>, PathRejection>;

/// A customer's subscription to one channel.
#[derive(Serialize, ToSchema)]
pub struct SubscriptionOut {
    pub channel: String,
    pub subscribed: bool,
    /// When the customer last gave or withdrew consent (RFC 3339 UTC).
    pub changed_at: String,
    /// Where that change came from (`api`, `csv`, `console`, or the sender's own name).
    pub source: String,
}

impl From<&Subscription> for SubscriptionOut {
    fn from(s: &Subscription) -> Self {
        SubscriptionOut {
            channel: s.channel.as_str().to_owned(),
            subscribed: s.subscribed,
            changed_at: format_datetime(s.changed_at),
            source: s.source.as_str().to_owned(),
        }
    }
}

/// A customer's subscriptions, and the channels the application takes.
#[derive(Serialize, ToSchema)]
pub struct SubscriptionList {
    /// The channels with a recorded statement; any other channel is "not subscribed".
    pub subscriptions: Vec<SubscriptionOut>,
    /// Every channel the application takes subscriptions for.
    pub channels: Vec<String>,
}

/// One recorded change.
#[derive(Serialize, ToSchema)]
pub struct HistoryOut {
    pub channel: String,
    pub subscribed: bool,
    /// When the customer gave or withdrew consent, as the change said.
    pub at: String,
    pub source: String,
    /// When Unico recorded it.
    pub recorded_at: String,
}

impl From<&HistoryEntry> for HistoryOut {
    fn from(h: &HistoryEntry) -> Self {
        HistoryOut {
            channel: h.channel.as_str().to_owned(),
            subscribed: h.subscribed,
            at: format_datetime(h.at),
            source: h.source.as_str().to_owned(),
            recorded_at: format_datetime(h.recorded_at),
        }
    }
}

/// A customer's history of subscription changes, newest recorded first.
#[derive(Serialize, ToSchema)]
pub struct HistoryList {
    pub history: Vec<HistoryOut>,
}

/// Request body of `PUT …/subscriptions/{channel}`.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct SubscriptionIn {
    /// true: subscribed; false: unsubscribed.
    pub subscribed: bool,
    /// When the customer said so (RFC 3339 or epoch milliseconds; default now). A change
    /// older than the standing one is recorded in the history but does not replace it.
    pub at: Option<String>,
    /// Where the change comes from (1–64 characters; default `api`).
    pub source: Option<String>,
}

/// Reads a change's body: `subscribed` (required), `at`, `source`; every problem listed.
pub fn change_from_json(
    channel: Channel,
    body: &Json_,
    now: i64,
    path: &str,
) -> Result<SubscriptionChange, Vec<ErrorDetail>> {
    let mut problems = Vec::new();
    let mut problem = |key: &str, message: String| {
        problems.push(ErrorDetail {
            field: Some(format!("{path}{key}")),
            message,
        })
    };
    let Json_::Object(obj) = body else {
        problem(
            "",
            "expected an object {\"subscribed\": true|false, \"at\": …, \"source\": …}".into(),
        );
        return Err(problems);
    };
    for key in obj.keys() {
        if !matches!(key.as_str(), "subscribed" | "at" | "source") {
            problem(
                &unico_core::value::excerpt(key),
                "not a known key; send subscribed, and optionally at and source".into(),
            );
        }
    }
    let subscribed = match obj.get("subscribed") {
        Some(Json_::Bool(b)) => Some(*b),
        None | Some(Json_::Null) => {
            problem("subscribed", "subscribed is required: true or false".into());
            None
        }
        Some(_) => {
            problem("subscribed", "expected true or false".into());
            None
        }
    };
    let at = super::events::instant(obj.get("at"), now, "time")
        .map_err(|reason| problem("at", reason))
        .ok();
    let source = match obj.get("source") {
        None | Some(Json_::Null) => Some(Source::api()),
        Some(Json_::String(s)) => match Source::parse(s) {
            Ok(src) => Some(src),
            Err(e) => {
                problem("source", e.to_string());
                None
            }
        },
        Some(_) => {
            problem("source", "expected a string".into());
            None
        }
    };
    match (subscribed, at, source) {
        (Some(subscribed), Some(at), Some(source)) if problems.is_empty() => {
            Ok(SubscriptionChange {
                channel,
                subscribed,
                at,
                source,
            })
        }
        _ => Err(problems),
    }
}

fn parse_channel(raw: &str) -> Result<Channel, ApiError> {
    Channel::parse(raw).map_err(|e| ApiError::NotFound(format!("channel not found: {e}")))
}

/// Subscribe or unsubscribe a customer on one channel: `{"subscribed": false, "source":
/// "unsubscribe_link"}`. Every change is kept in the history; the standing subscription is
/// the customer's latest statement (by `at`).
#[utoipa::path(put, path = "/v1/apps/{app}/customers/{customerId}/subscriptions/{channel}", tag = "subscriptions",
    params(("app" = i64, Path), ("customerId" = String, Path), ("channel" = String, Path)),
    request_body = SubscriptionIn,
    responses(
        (status = 200, description = "the customer's subscriptions after the change", body = SubscriptionList),
        (status = 400, description = "the body is not JSON (`invalid_content_type`, `invalid_json`), or a value is invalid (`invalid_input`), or the application does not take subscriptions on that channel (`invalid_parameter`)", body = ErrorBody),
        (status = 403, description = answers::OTHER_APP, body = ErrorBody),
        (status = 404, description = "no such application or customer (`not_found`)", body = ErrorBody),
        (status = 413, description = answers::TOO_LARGE, body = ErrorBody),
    ))]
pub async fn put_subscription(
    State(state): State<AppState>,
    principal: Principal,
    path: PathResult,
    JsonBody(body): JsonBody<Json_>,
) -> Result<Json<SubscriptionList>, ApiError> {
    let params = PathParams::from(path)?;
    let app = params.app()?;
    principal.require_app(app)?;
    let customer_id = params.customer_id()?;
    let channel = parse_channel(params.raw("channel")?)?;
    let now = now_ms();
    let change = change_from_json(channel, &body, now, "").map_err(ApiError::invalid_many)?;
    state
        .blocking(move |s| {
            let out = s.set_subscriptions(app, &customer_id, &[change], false, now)?;
            let schema = s.schema(app)?;
            Ok(list(&out.subscriptions, &schema))
        })
        .await
        .map(Json)
}

fn list(subscriptions: &[Subscription], schema: &unico_core::Schema) -> SubscriptionList {
    SubscriptionList {
        subscriptions: subscriptions.iter().map(SubscriptionOut::from).collect(),
        channels: schema
            .subscription_channels()
            .iter()
            .map(|c| c.as_str().to_owned())
            .collect(),
    }
}

/// A customer's standing subscriptions, and the channels the application takes.
#[utoipa::path(get, path = "/v1/apps/{app}/customers/{customerId}/subscriptions", tag = "subscriptions",
    params(("app" = i64, Path), ("customerId" = String, Path)),
    responses(
        (status = 200, description = "the subscriptions", body = SubscriptionList),
        (status = 400, description = answers::BAD_PATH, body = ErrorBody),
        (status = 403, description = answers::OTHER_APP, body = ErrorBody),
        (status = 404, description = "no such application or customer (`not_found`)", body = ErrorBody),
    ))]
pub async fn get_subscriptions(
    State(state): State<AppState>,
    principal: Principal,
    path: PathResult,
) -> Result<Json<SubscriptionList>, ApiError> {
    let params = PathParams::from(path)?;
    let app = params.app()?;
    principal.require_app(app)?;
    let customer_id = params.customer_id()?;
    state
        .blocking(move |s| {
            let subscriptions = s.subscriptions(app, &customer_id)?;
            Ok(list(&subscriptions, &s.schema(app)?))
        })
        .await
        .map(Json)
}

/// Every recorded change of a customer's subscriptions, newest recorded first (`limit`,
/// default and most 1 000).
#[utoipa::path(get, path = "/v1/apps/{app}/customers/{customerId}/subscriptions/history", tag = "subscriptions",
    params(("app" = i64, Path), ("customerId" = String, Path),
        ("limit" = Option<usize>, Query, minimum = 1, maximum = 1000, description = "1–1000, default 1000")),
    responses(
        (status = 200, description = "the history", body = HistoryList),
        (status = 400, description = "a bad path or limit (`invalid_parameter`)", body = ErrorBody),
        (status = 403, description = answers::OTHER_APP, body = ErrorBody),
        (status = 404, description = "no such application or customer (`not_found`)", body = ErrorBody),
    ))]
pub async fn get_history(
    State(state): State<AppState>,
    principal: Principal,
    path: PathResult,
    query: RawQuery,
) -> Result<Json<HistoryList>, ApiError> {
    let params = PathParams::from(path)?;
    let app = params.app()?;
    principal.require_app(app)?;
    let customer_id = params.customer_id()?;
    let query = QueryParams::from(query, &["limit"])?;
    let limit = match query.get("limit") {
        None => MAX_HISTORY,
        Some(text) => text
            .parse::<usize>()
            .ok()
            .filter(|n| (1..=MAX_HISTORY).contains(n))
            .ok_or_else(|| {
                ApiError::InvalidParameter(format!(
                    "limit must be a whole number from 1 to {MAX_HISTORY}, got \"{}\"",
                    unico_core::value::excerpt(text)
                ))
            })?,
    };
    state
        .blocking(move |s| {
            let history = s.subscription_history(app, &customer_id, limit)?;
            Ok(HistoryList {
                history: history.iter().map(HistoryOut::from).collect(),
            })
        })
        .await
        .map(Json)
}

/// A batch item's `subscriptions`: an object of channel to `true`/`false` (now, source
/// `api`) or to a change's body (`{"subscribed": …, "at": …, "source": …}`). Whether the
/// application takes each channel is checked when the item is written.
pub fn batch_changes(
    value: &Json_,
    now: i64,
    path: &str,
) -> Result<Vec<SubscriptionChange>, Vec<ErrorDetail>> {
    let Json_::Object(obj) = value else {
        return Err(vec![ErrorDetail {
            field: Some(path.to_owned()),
            message: "subscriptions must be an object of channel to true, false or {\"subscribed\": …, \"at\": …, \"source\": …}".into(),
        }]);
    };
    let mut changes = Vec::with_capacity(obj.len());
    let mut problems = Vec::new();
    for (name, v) in obj {
        let at = format!("{path}.{}", unico_core::value::excerpt(name));
        let channel = match Channel::parse(name) {
            Ok(c) => c,
            Err(e) => {
                problems.push(ErrorDetail {
                    field: Some(at),
                    message: e.to_string(),
                });
                continue;
            }
        };
        match v {
            Json_::Bool(subscribed) => changes.push(SubscriptionChange {
                channel,
                subscribed: *subscribed,
                at: now,
                source: Source::api(),
            }),
            Json_::Object(_) => match change_from_json(channel, v, now, &format!("{at}.")) {
                Ok(c) => changes.push(c),
                Err(more) => problems.extend(more),
            },
            _ => problems.push(ErrorDetail {
                field: Some(at),
                message: "expected true, false or {\"subscribed\": …, \"at\": …, \"source\": …}"
                    .into(),
            }),
        }
    }
    if problems.is_empty() {
        Ok(changes)
    } else {
        Err(problems)
    }
}
