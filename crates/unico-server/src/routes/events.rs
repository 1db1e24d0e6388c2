//! Interactions: the event type registry, events in (batches with per-item results) and a
//! customer's timeline out.

use std::borrow::Cow;
use std::collections::HashMap;

use axum::Json;
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use serde_json::{Map, Value as Json_};
use unico_core::event::{DEFAULT_RETENTION_DAYS, check_event_key, check_event_time};
use unico_core::limits::MAX_EVENTS_PER_REQUEST;
use unico_core::{Channel, CustomerId, EventCode, EventNames, EventType, Properties, PropertyType};
use unico_store::{EventQuery, EventTypePatch, NewEvent};

use super::params::{PathParams, QueryParams};
use super::system::answers;
use crate::auth::Principal;
use crate::dto::{
    CreateEventType, EventList, EventOut, EventResult, EventTypeDeleted, EventTypeList,
    EventTypeOut, EventsIn, EventsOut, UpdateEventType,
};
use crate::error::{ApiError, ErrorBody, ErrorDetail, ErrorObject};
use crate::extract::{JsonBody, JsonBytes, parse_json};
use crate::state::{AppState, now_ms};

type PathResult = Result<Path<HashMap<String, String>>, PathRejection>;

/// Default and largest page of a timeline.
pub const DEFAULT_EVENT_PAGE: usize = 50;
pub const MAX_EVENT_PAGE: usize = 1000;

fn code_param(params: &PathParams) -> Result<EventCode, ApiError> {
    params.event_code()
}

fn declared(properties: &Map<String, Json_>) -> Result<Vec<(String, PropertyType)>, ApiError> {
    let mut out = Vec::with_capacity(properties.len());
    for (name, ty) in properties {
        EventType::check_property_name(name)
            .map_err(|e| ApiError::invalid(format!("properties.{name}"), e.to_string()))?;
        let ty = ty
            .as_str()
            .ok_or_else(|| {
                ApiError::invalid(
                    format!("properties.{name}"),
                    "a property's type is the string \"number\" or \"string\"",
                )
            })
            .and_then(|t| {
                PropertyType::parse(t)
                    .map_err(|e| ApiError::invalid(format!("properties.{name}"), e.to_string()))
            })?;
        out.push((name.clone(), ty));
    }
    Ok(out)
}

fn retention(days: i64) -> Result<u32, ApiError> {
    EventType::check_retention(days).map_err(|e| ApiError::invalid("retention_days", e.to_string()))
}

fn check_name(name: &str) -> Result<(), ApiError> {
    EventType::check_name(name).map_err(|e| ApiError::invalid("name", e.to_string()))
}

/// List the application's event types.
#[utoipa::path(get, path = "/v1/apps/{app}/event-types", tag = "events", params(("app" = i64, Path)),
    responses(
        (status = 200, description = "the registered event types, by code", body = EventTypeList),
        (status = 400, description = answers::BAD_PATH, body = ErrorBody),
        (status = 403, description = answers::OTHER_APP, body = ErrorBody),
        (status = 404, description = answers::NO_APP, body = ErrorBody),
    ))]
pub async fn list_event_types(
    State(state): State<AppState>,
    principal: Principal,
    path: PathResult,
) -> Result<Json<EventTypeList>, ApiError> {
    let app = PathParams::from(path)?.app()?;
    principal.require_app(app)?;
    let schema = state.blocking(move |s| s.schema(app)).await?;
    Ok(Json(EventTypeList {
        event_types: schema
            .event_types()
            .all()
            .iter()
            .map(EventTypeOut::from)
            .collect(),
    }))
}

/// Register an event type: `{"code": "purchase", "name": "Purchase", "retention_days": 730,
/// "properties": {"amount": "number"}}`.
#[utoipa::path(post, path = "/v1/apps/{app}/event-types", tag = "events", params(("app" = i64, Path)),
    request_body = CreateEventType,
    responses(
        (status = 201, description = "the event type", body = EventTypeOut),
        (status = 400, description = "the body is not JSON (`invalid_content_type`, `invalid_json`), a value is invalid (`invalid_input`), the application holds the most event types it may (`limit_exceeded`), or a path parameter is not UTF-8", body = ErrorBody),
        (status = 403, description = answers::OTHER_APP, body = ErrorBody),
        (status = 404, description = answers::NO_APP, body = ErrorBody),
        (status = 409, description = "an event type with that code exists (`conflict`)", body = ErrorBody),
        (status = 413, description = answers::TOO_LARGE, body = ErrorBody),
    ))]
pub async fn create_event_type(
    State(state): State<AppState>,
    principal: Principal,
    path: PathResult,
    JsonBody(body): JsonBody<CreateEventType>,
) -> Result<(StatusCode, Json<EventTypeOut>), ApiError> {
    let app = PathParams::from(path)?.app()?;
    principal.require_app(app)?;
    let code =
        EventCode::parse(&body.code).map_err(|e| ApiError::invalid("code", e.to_string()))?;
    let name = body.name.unwrap_or_else(|| code.as_str().to_owned());
    check_name(&name)?;
    let t = EventType {
        code,
        name,
        retention_days: match body.retention_days {
            Some(days) => retention(days)?,
            None => DEFAULT_RETENTION_DAYS,
        },
        enabled: body.enabled.unwrap_or(true),
        properties: declared(&body.properties.unwrap_or_default())?,
        created_at: now_ms(),
    };
    let t = state
        .blocking(move |s| s.create_event_type(app, &t))
        .await?;
    Ok((StatusCode::CREATED, Json(EventTypeOut::from(&t))))
}

/// Get one event type.
#[utoipa::path(get, path = "/v1/apps/{app}/event-types/{code}", tag = "events",
    params(("app" = i64, Path), ("code" = String, Path)),
    responses(
        (status = 200, description = "the event type", body = EventTypeOut),
        (status = 400, description = answers::BAD_PATH, body = ErrorBody),
        (status = 403, description = answers::OTHER_APP, body = ErrorBody),
        (status = 404, description = "no such application or event type (`not_found`)", body = ErrorBody),
    ))]
pub async fn get_event_type(
    State(state): State<AppState>,
    principal: Principal,
    path: PathResult,
) -> Result<Json<EventTypeOut>, ApiError> {
    let params = PathParams::from(path)?;
    let (app, code) = (params.app()?, code_param(&params)?);
    principal.require_app(app)?;
    let schema = state.blocking(move |s| s.schema(app)).await?;
    schema
        .event_types()
        .get(code.as_str())
        .map(|t| Json(EventTypeOut::from(t)))
        .ok_or_else(|| ApiError::NotFound(format!("event type \"{code}\" not found")))
}

/// Change an event type's name, retention, state or declared properties.
#[utoipa::path(patch, path = "/v1/apps/{app}/event-types/{code}", tag = "events",
    params(("app" = i64, Path), ("code" = String, Path)), request_body = UpdateEventType,
    responses(
        (status = 200, description = "the event type as changed", body = EventTypeOut),
        (status = 400, description = "the body is not JSON (`invalid_content_type`, `invalid_json`), a value is invalid (`invalid_input`), or a path parameter is not UTF-8", body = ErrorBody),
        (status = 403, description = answers::OTHER_APP, body = ErrorBody),
        (status = 404, description = "no such application or event type (`not_found`)", body = ErrorBody),
        (status = 413, description = answers::TOO_LARGE, body = ErrorBody),
    ))]
pub async fn update_event_type(
    State(state): State<AppState>,
    principal: Principal,
    path: PathResult,
    JsonBody(body): JsonBody<UpdateEventType>,
) -> Result<Json<EventTypeOut>, ApiError> {
    let params = PathParams::from(path)?;
    let (app, code) = (params.app()?, code_param(&params)?);
    principal.require_app(app)?;
    if let Some(name) = &body.name {
        check_name(name)?;
    }
    let patch = EventTypePatch {
        name: body.name,
        retention_days: body.retention_days.map(retention).transpose()?,
        enabled: body.enabled,
        properties: body.properties.as_ref().map(declared).transpose()?,
    };
    let t = state
        .blocking(move |s| s.update_event_type(app, &code, &patch))
        .await?;
    Ok(Json(EventTypeOut::from(&t)))
}

/// Delete an event type and every stored event of it.
#[utoipa::path(delete, path = "/v1/apps/{app}/event-types/{code}", tag = "events",
    params(("app" = i64, Path), ("code" = String, Path)),
    responses(
        (status = 200, description = "deleted, with how many events went with it", body = EventTypeDeleted),
        (status = 400, description = answers::BAD_PATH, body = ErrorBody),
        (status = 403, description = answers::OTHER_APP, body = ErrorBody),
        (status = 404, description = "no such application or event type (`not_found`)", body = ErrorBody),
    ))]
pub async fn delete_event_type(
    State(state): State<AppState>,
    principal: Principal,
    path: PathResult,
) -> Result<Json<EventTypeDeleted>, ApiError> {
    let params = PathParams::from(path)?;
    let (app, code) = (params.app()?, code_param(&params)?);
    principal.require_app(app)?;
    let actor = crate::audit::actor(&principal);
    let events_deleted = state
        .blocking(move |s| {
            let n = s.delete_event_type(app, &code)?;
            crate::audit::record(s, Some(app), &actor, "event_type.deleted", &code)?;
            Ok(n)
        })
        .await?;
    Ok(Json(EventTypeDeleted { events_deleted }))
}

/// An instant as an event or a statement gives it: an RFC 3339 string (or a date), whole
/// epoch milliseconds, or nothing for `now`; refused before 2000 and more than a day
/// ahead. The error names the value as `noun`.
pub(crate) fn instant(value: Option<&Json_>, now: i64, noun: &str) -> Result<i64, String> {
    let ms = match value {
        None | Some(Json_::Null) => now,
        Some(Json_::String(s)) => unico_core::time::parse_datetime(s).map_err(|e| {
            format!(
                "the {noun} \"{}\" is not a time: {e}",
                unico_core::value::excerpt(s)
            )
        })?,
        Some(Json_::Number(n)) => n
            .as_i64()
            .ok_or_else(|| format!("a numeric {noun} is whole epoch milliseconds"))?,
        Some(_) => {
            return Err(format!(
                "the {noun} is an RFC 3339 string or epoch milliseconds"
            ));
        }
    };
    check_event_time(ms, now).map_err(|e| e.to_string())?;
    Ok(ms)
}

/// Whether an event item may hold `key`: the plain shape's keys, or `identity` (which
/// stands for `customerId`).
fn is_event_key(key: &str) -> bool {
    key == "identity" || crate::plain_line::KEYS.contains(&key)
}

/// An event item in the shape nearly every sender uses (a customerId, string times),
/// read straight from its text without building a JSON tree first. Anything else, and
/// anything invalid, is left to [`event_input`], which says what is wrong: both read an
/// item the same way (a test holds them to it).
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct PlainItem<'a> {
    #[serde(borrow, default)]
    event_id: Option<Cow<'a, str>>,
    #[serde(rename = "customerId", borrow)]
    customer_id: Cow<'a, str>,
    #[serde(rename = "type", borrow)]
    event_type: Cow<'a, str>,
    #[serde(borrow)]
    channel: Cow<'a, str>,
    #[serde(borrow, default)]
    device_id: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    timestamp: Option<Cow<'a, str>>,
    /// Read strictly (`strict_json`) once the item is read.
    #[serde(borrow, default)]
    properties: Option<&'a serde_json::value::RawValue>,
}

/// The event of a valid item in the plain shape ([`PlainItem`]); `None` for any other
/// item, valid or not, which [`event_input`] reads instead.
pub fn plain_event(text: &str, now: i64, names: &mut EventNames) -> Option<NewEvent> {
    // Most lines are read by hand (`plain_line`); one it declines may still be plain
    // (an escape, say), and is read by serde.
    if let Some(parts) = crate::plain_line::parts(text) {
        let properties = parts
            .properties
            .map(|raw| crate::strict_json::compact(raw, &std::cell::Cell::new(usize::MAX)))
            .transpose()
            .ok()?;
        let item = PlainItem {
            event_id: parts.event_id.map(Cow::Borrowed),
            customer_id: Cow::Borrowed(parts.customer_id),
            event_type: Cow::Borrowed(parts.event_type),
            channel: Cow::Borrowed(parts.channel),
            device_id: parts.device_id.map(Cow::Borrowed),
            timestamp: parts.timestamp.map(Cow::Borrowed),
            properties: None,
        };
        return plain_checked(item, properties, now, names);
    }
    let item: PlainItem<'_> = serde_json::from_str(text).ok()?;
    let properties = plain_properties(&item, &std::cell::Cell::new(usize::MAX)).ok()?;
    plain_checked(item, properties, now, names)
}

/// The properties of a plain item read strictly (no key twice in an object, each value
/// taken from `budget`): written compactly, and how deep they nest.
fn plain_properties(
    item: &PlainItem<'_>,
    budget: &std::cell::Cell<usize>,
) -> Result<Option<(String, usize)>, crate::strict_json::Refused> {
    item.properties
        .map(|raw| crate::strict_json::compact(raw.get(), budget))
        .transpose()
}

/// The event of a plain item with its `properties` (read by [`plain_properties`]), if it
/// is valid.
fn plain_checked(
    item: PlainItem<'_>,
    properties: Option<(String, usize)>,
    now: i64,
    names: &mut EventNames,
) -> Option<NewEvent> {
    for key in [&item.event_id, &item.device_id].into_iter().flatten() {
        check_event_key(key, "").ok()?;
    }
    let timestamp = match &item.timestamp {
        None => now,
        Some(t) => unico_core::time::parse_datetime(t).ok()?,
    };
    check_event_time(timestamp, now).ok()?;
    let properties = match properties {
        None => Properties::default(),
        Some((text, depth)) => Properties::from_compact(text, depth).ok()?,
    };
    Some(NewEvent {
        customer_id: CustomerId::parse(&item.customer_id).ok()?,
        event_type: names.code(&item.event_type)?,
        channel: names.channel(&item.channel)?,
        event_id: item.event_id.map(Cow::into_owned),
        device_id: item.device_id.map(Cow::into_owned),
        by_identity: None,
        timestamp,
        properties,
    })
}

/// Reads one event item; every problem is a detail at `prefix` + the key.
pub fn event_input(
    item: &Json_,
    now: i64,
    prefix: &str,
    rules: &crate::identity::IdentityRules,
) -> Result<NewEvent, Vec<ErrorDetail>> {
    let mut problems = Vec::new();
    let mut problem = |key: &str, message: String| {
        problems.push(ErrorDetail {
            field: Some(format!("{prefix}{key}")),
            message,
        });
    };
    let Some(obj) = item.as_object() else {
        return Err(vec![ErrorDetail {
            field: Some(prefix.trim_end_matches('.').to_owned()),
            message: "an event is a JSON object: {\"customerId\", \"type\", \"channel\", \"timestamp\", \"properties\"}".into(),
        }]);
    };
    for key in obj.keys() {
        if !is_event_key(key) {
            problem(
                key,
                format!(
                    "unknown key \"{}\"; an event holds event_id, customerId (or identity), type, channel, device_id, timestamp and properties",
                    unico_core::value::excerpt(key)
                ),
            );
        }
    }
    let text = |key: &str, problem: &mut dyn FnMut(&str, String)| -> Option<String> {
        match obj.get(key) {
            None | Some(Json_::Null) => None,
            Some(Json_::String(s)) => Some(s.clone()),
            Some(_) => {
                problem(key, format!("{key} must be a string"));
                None
            }
        }
    };
    let event_id = text("event_id", &mut problem);
    if let Some(key) = &event_id
        && let Err(e) = check_event_key(key, "event_id")
    {
        problem("event_id", e.to_string());
    }
    let device_id = text("device_id", &mut problem);
    if let Some(d) = &device_id
        && let Err(e) = check_event_key(d, "device_id")
    {
        problem("device_id", e.to_string());
    }
    let identity = match obj.get("identity") {
        None | Some(Json_::Null) => None,
        Some(Json_::Object(id)) => {
            let part = |key: &str| id.get(key).and_then(Json_::as_str);
            match (part("kind"), part("value")) {
                (Some(kind), Some(value)) if id.len() == 2 => rules
                    .identity(kind, value)
                    .map_err(|(which, message)| problem(&format!("identity.{which}"), message))
                    .ok(),
                _ => {
                    problem(
                        "identity",
                        "expected {\"kind\": \"device_id\", \"value\": \"…\"} (two strings)".into(),
                    );
                    None
                }
            }
        }
        Some(_) => {
            problem(
                "identity",
                "expected {\"kind\": \"device_id\", \"value\": \"…\"}".into(),
            );
            None
        }
    };
    let names_identity = obj.get("identity").is_some_and(|v| !v.is_null());
    let customer_id = match text("customerId", &mut problem) {
        Some(_) if names_identity => {
            problem(
                "customerId",
                "send either customerId or identity, not both".into(),
            );
            None
        }
        Some(c) => CustomerId::parse(&c)
            .map_err(|e| problem("customerId", e.to_string()))
            .ok(),
        None => {
            if !names_identity && obj.get("customerId").is_none_or(Json_::is_null) {
                problem(
                    "customerId",
                    "customerId (or identity: {\"kind\", \"value\"}) is required".into(),
                );
            }
            // Addressed by identity: the customerId is the anonymous one it may create
            // (filled in below, computed once).
            None
        }
    };
    let event_type = match text("type", &mut problem) {
        Some(t) => EventCode::parse(&t)
            .map_err(|e| problem("type", e.to_string()))
            .ok(),
        None => {
            if obj.get("type").is_none_or(Json_::is_null) {
                problem("type", "type is required (the event type's code)".into());
            }
            None
        }
    };
    let channel = match text("channel", &mut problem) {
        Some(c) => Channel::parse(&c)
            .map_err(|e| problem("channel", e.to_string()))
            .ok(),
        None => {
            if obj.get("channel").is_none_or(Json_::is_null) {
                problem(
                    "channel",
                    "channel is required (email, sms, push, whatsapp, web, app, wallet, pos, or your own)".into(),
                );
            }
            None
        }
    };
    let timestamp = instant(obj.get("timestamp"), now, "timestamp")
        .map_err(|reason| problem("timestamp", reason))
        .ok();
    let properties = match obj.get("properties") {
        None | Some(Json_::Null) => Some(Properties::default()),
        Some(p) => Properties::from_json(p.clone())
            .map_err(|e| problem("properties", e.to_string()))
            .ok(),
    };
    let by_identity = identity.map(|i| rules.by_identity(i));
    let customer_id = customer_id.or_else(|| {
        by_identity.as_ref().map(|b| {
            b.anonymous
                .clone()
                .unwrap_or_else(|| crate::identity::anonymous_id(&b.identity))
        })
    });
    match (customer_id, event_type, channel, timestamp, properties) {
        (Some(customer_id), Some(event_type), Some(channel), Some(timestamp), Some(properties))
            if problems.is_empty() =>
        {
            Ok(NewEvent {
                by_identity: by_identity.map(Box::new),
                event_id,
                customer_id,
                event_type,
                channel,
                device_id,
                timestamp,
                properties,
            })
        }
        _ => Err(problems),
    }
}

fn error_result(item: &Json_, error: ApiError) -> EventResult {
    let (_, code) = error.status_and_code();
    let details = match &error {
        ApiError::InvalidInput { details, .. } => details.clone(),
        _ => Vec::new(),
    };
    let text = |k: &str| item.get(k).and_then(Json_::as_str).map(str::to_owned);
    EventResult {
        status: "error",
        id: None,
        event_id: text("event_id"),
        customer_id: text("customerId"),
        customer_created: false,
        error: Some(ErrorObject {
            code: code.to_owned(),
            message: error.to_string(),
            details,
        }),
    }
}

/// Store up to 10 000 events: `{"events": [{"event_id", "customerId", "type", "channel",
/// "device_id", "timestamp", "properties"}]}`. Answers each item in request order; valid
/// items are stored (durably) even when others fail; an event whose `event_id` was seen
/// before is a `duplicate` and stored once; an unknown customerId is created.
#[utoipa::path(post, path = "/v1/apps/{app}/events", tag = "events", params(("app" = i64, Path)),
    request_body = EventsIn,
    responses(
        (status = 200, description = "one result per item, in request order", body = EventsOut),
        (status = 400, description = "the body is not a JSON object with an `events` array (`invalid_content_type`, `invalid_json`, `invalid_input`), holds more than 10 000 events (`limit_exceeded`), or a path parameter is not UTF-8", body = ErrorBody),
        (status = 403, description = answers::OTHER_APP, body = ErrorBody),
        (status = 404, description = answers::NO_APP, body = ErrorBody),
        (status = 413, description = answers::TOO_LARGE, body = ErrorBody),
    ))]
pub async fn ingest(
    State(state): State<AppState>,
    principal: Principal,
    path: PathResult,
    body: JsonBytes,
) -> Result<Json<EventsOut>, ApiError> {
    // Every item in the plain shape (the usual batch) is read without a JSON tree, its
    // properties strictly (a repeated key, or more values than the route's limit, and it
    // is not read this way), which checks the body as it goes; any other body is checked
    // whole and read as a tree, which also says what is wrong with it, in the order the
    // checks always ran: the body's JSON before the path.
    let bytes = &body.bytes;
    let plain = serde_json::from_slice::<PlainBatch<'_>>(bytes)
        .ok()
        .and_then(|batch| {
            // Each item's own keys are at most nine values.
            let budget =
                std::cell::Cell::new(body.limits.values.checked_sub(2 + 9 * batch.events.len())?);
            let properties = batch
                .events
                .iter()
                .map(|item| plain_properties(item, &budget))
                .collect::<Result<Vec<_>, _>>()
                .ok()?;
            Some((batch, properties))
        });
    let mut tree = match plain {
        Some(_) => None,
        None => {
            body.check()?;
            Some(parse_json::<Json_>(bytes)?)
        }
    };
    let app = PathParams::from(path)?.app()?;
    principal.require_app(app)?;
    let now = now_ms();
    let items = match (plain, &mut tree) {
        (Some((batch, properties)), _) => Items::Plain(batch.events, properties),
        (None, Some(body)) => Items::Tree(batch_items(body)?),
        (None, None) => return Err(ApiError::Internal("an events body went unread".into())),
    };
    if items.len() > MAX_EVENTS_PER_REQUEST {
        return Err(ApiError::LimitExceeded(format!(
            "a request holds at most {MAX_EVENTS_PER_REQUEST} events, got {}",
            items.len()
        )));
    }
    // The application's identity rules, read once an item needs them (a plain item names
    // its customerId: a batch of them costs no read).
    let mut rules: Option<crate::identity::IdentityRules> = None;
    let mut results: Vec<Option<EventResult>> = Vec::with_capacity(items.len());
    // What each stored item's result repeats: its event_id and customerId as sent.
    let mut echoes = Vec::with_capacity(items.len());
    let mut valid = Vec::new();
    let mut positions = Vec::new();
    let mut names = EventNames::default();
    // The JSON tree of an item, for the answer of an item in error (read once, if needed).
    let mut trees: Option<Vec<Json_>> = None;
    match items {
        Items::Plain(plain, properties) => {
            for (i, (item, properties)) in plain.into_iter().zip(properties).enumerate() {
                let echo = (
                    item.event_id.as_deref().map(str::to_owned),
                    Some(item.customer_id.clone().into_owned()),
                );
                if let Some(e) = plain_checked(item, properties, now, &mut names) {
                    positions.push(i);
                    valid.push(e);
                    echoes.push(echo);
                    results.push(None);
                    continue;
                }
                let rules = match rules {
                    Some(ref rules) => rules,
                    None => rules.insert(identity_rules(&state, app).await?),
                };
                let item = tree_item(&mut trees, bytes, i)?;
                match event_input(item, now, &format!("events[{i}]."), rules) {
                    Ok(e) => {
                        positions.push(i);
                        valid.push(e);
                        echoes.push(echo);
                        results.push(None);
                    }
                    Err(details) => {
                        results.push(Some(error_result(item, ApiError::invalid_many(details))));
                    }
                }
            }
        }
        Items::Tree(items) => {
            let rules = identity_rules(&state, app).await?;
            for (i, item) in items.iter().enumerate() {
                match event_input(item, now, &format!("events[{i}]."), &rules) {
                    Ok(e) => {
                        positions.push(i);
                        valid.push(e);
                        echoes.push(echo_of(item));
                        results.push(None);
                    }
                    Err(details) => {
                        results.push(Some(error_result(item, ApiError::invalid_many(details))));
                    }
                }
            }
            trees = Some(items);
        }
    }
    let outcomes = if valid.is_empty() {
        Vec::new()
    } else {
        state
            .blocking(move |s| s.insert_events(app, valid, now))
            .await?
    };
    for ((pos, outcome), (event_id, customer_id)) in positions.into_iter().zip(outcomes).zip(echoes)
    {
        results[pos] = Some(match outcome {
            Ok(o) => EventResult {
                status: if o.duplicate { "duplicate" } else { "stored" },
                id: Some(o.id),
                event_id,
                customer_id,
                customer_created: o.customer_created,
                error: None,
            },
            Err(e) => error_result(tree_item(&mut trees, bytes, pos)?, ApiError::from(e)),
        });
    }
    let results: Vec<EventResult> = results
        .into_iter()
        .map(|r| r.ok_or_else(|| ApiError::Internal("an event got no result".into())))
        .collect::<Result<_, _>>()?;
    let (mut stored, mut duplicates, mut errors) = (0, 0, 0);
    for r in &results {
        match r.status {
            "stored" => stored += 1,
            "duplicate" => duplicates += 1,
            _ => errors += 1,
        }
    }
    Ok(Json(EventsOut {
        results,
        stored,
        duplicates,
        errors,
    }))
}

async fn identity_rules(
    state: &AppState,
    app: unico_core::AppId,
) -> Result<crate::identity::IdentityRules, ApiError> {
    state
        .blocking(move |s| crate::identity::IdentityRules::of(s, app))
        .await
}

/// The body of `POST …/events` when every item is in the plain shape ([`PlainItem`]).
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct PlainBatch<'a> {
    #[serde(borrow)]
    events: Vec<PlainItem<'a>>,
}

/// A batch's items, read plainly (with each one's properties) or as JSON trees.
enum Items<'a> {
    Plain(Vec<PlainItem<'a>>, Vec<Option<(String, usize)>>),
    Tree(Vec<Json_>),
}

impl Items<'_> {
    fn len(&self) -> usize {
        match self {
            Items::Plain(items, _) => items.len(),
            Items::Tree(items) => items.len(),
        }
    }
}

/// The items of a body read as a JSON tree: `{"events": [ … ]}` and nothing else.
fn batch_items(body: &mut Json_) -> Result<Vec<Json_>, ApiError> {
    let Json_::Object(body) = body else {
        return Err(ApiError::invalid("body", "expected {\"events\": [ … ]}"));
    };
    if let Some(key) = body.keys().find(|k| *k != "events") {
        return Err(ApiError::invalid(
            key.clone(),
            format!(
                "unknown key \"{}\"; the body is {{\"events\": [ … ]}}",
                unico_core::value::excerpt(key)
            ),
        ));
    }
    let Some(Json_::Array(items)) = body.remove("events") else {
        return Err(ApiError::invalid(
            "events",
            "expected {\"events\": [ … ]}: an array of events",
        ));
    };
    Ok(items)
}

/// The JSON tree of item `i` of the body, the body read as a tree once.
fn tree_item<'t>(
    trees: &'t mut Option<Vec<Json_>>,
    bytes: &[u8],
    i: usize,
) -> Result<&'t Json_, ApiError> {
    if trees.is_none() {
        let mut body = parse_json::<Json_>(bytes)?;
        *trees = Some(batch_items(&mut body)?);
    }
    trees
        .as_ref()
        .and_then(|items| items.get(i))
        .ok_or_else(|| ApiError::Internal("an event item went missing".into()))
}

/// An item's event_id and customerId as sent, repeated in its result.
fn echo_of(item: &Json_) -> (Option<String>, Option<String>) {
    let text = |k: &str| item.get(k).and_then(Json_::as_str).map(str::to_owned);
    (text("event_id"), text("customerId"))
}

fn parse_list<T>(
    text: Option<&str>,
    name: &str,
    parse: impl Fn(&str) -> Result<T, unico_core::EventError>,
) -> Result<Vec<T>, ApiError> {
    let Some(text) = text else {
        return Ok(Vec::new());
    };
    text.split(',')
        .filter(|s| !s.is_empty())
        .map(|s| parse(s).map_err(|e| ApiError::InvalidParameter(format!("{name}: {e}"))))
        .collect()
}

fn time_param(q: &QueryParams, name: &str) -> Result<Option<i64>, ApiError> {
    q.get(name)
        .map(|t| {
            unico_core::time::parse_datetime(t).map_err(|e| {
                ApiError::InvalidParameter(format!(
                    "{name}: \"{}\" is not a time: {e}",
                    unico_core::value::excerpt(t)
                ))
            })
        })
        .transpose()
}

fn parse_cursor(text: &str) -> Result<(i64, i64), ApiError> {
    let bad = || ApiError::InvalidParameter("cursor: not a cursor this server gave".into());
    let (ts, id) = text.split_once('_').ok_or_else(bad)?;
    Ok((
        ts.parse().map_err(|_| bad())?,
        id.parse().map_err(|_| bad())?,
    ))
}

/// A customer's events, newest first: `?type=purchase,email_open&channel=web&from=&to=&limit=&cursor=`;
/// `summary=true` adds the customer's event count, first and last seen and channels.
#[utoipa::path(get, path = "/v1/apps/{app}/customers/{customerId}/events", tag = "events",
    params(("app" = i64, Path), ("customerId" = String, Path),
        ("type" = Option<String>, Query, description = "only these event types, comma-separated"),
        ("channel" = Option<String>, Query, description = "only these channels, comma-separated"),
        ("from" = Option<String>, Query, description = "only events at or after this time"),
        ("to" = Option<String>, Query, description = "only events before this time"),
        ("limit" = Option<usize>, Query, minimum = 1, maximum = 1000, description = "1–1000, default 50"),
        ("cursor" = Option<String>, Query, description = "the previous page's next_cursor"),
        ("summary" = Option<bool>, Query, description = "with `true`: also the customer's number of events, first and last seen, and channels")),
    responses(
        (status = 200, description = "one page of events, newest first", body = EventList),
        (status = 400, description = "a query parameter is invalid (`invalid_parameter`)", body = ErrorBody),
        (status = 403, description = answers::OTHER_APP, body = ErrorBody),
        (status = 404, description = "no such application or customer (`not_found`)", body = ErrorBody),
    ))]
pub async fn timeline(
    State(state): State<AppState>,
    principal: Principal,
    path: PathResult,
    query: RawQuery,
) -> Result<Json<EventList>, ApiError> {
    let params = PathParams::from(path)?;
    let app = params.app()?;
    principal.require_app(app)?;
    let customer_id = params.customer_id()?;
    let q = QueryParams::from(
        query,
        &[
            "type", "channel", "from", "to", "limit", "cursor", "summary",
        ],
    )?;
    let summary = match q.get("summary") {
        None | Some("false") => false,
        Some("true") => true,
        Some(_) => {
            return Err(ApiError::InvalidParameter("summary: true or false".into()));
        }
    };
    let limit = match q.get("limit") {
        None => DEFAULT_EVENT_PAGE,
        Some(t) => t
            .parse::<usize>()
            .ok()
            .filter(|n| (1..=MAX_EVENT_PAGE).contains(n))
            .ok_or_else(|| {
                ApiError::InvalidParameter(format!(
                    "limit: a whole number from 1 to {MAX_EVENT_PAGE}"
                ))
            })?,
    };
    let query = EventQuery {
        types: parse_list(q.get("type"), "type", EventCode::parse)?,
        channels: parse_list(q.get("channel"), "channel", Channel::parse)?,
        from: time_param(&q, "from")?,
        to: time_param(&q, "to")?,
        after: q.get("cursor").map(parse_cursor).transpose()?,
        limit,
    };
    let cid = customer_id.clone();
    let (page, summary) = state
        .blocking(move |s| {
            let page = s.customer_events(app, &cid, &query)?;
            let summary = if summary {
                Some(s.customer_activity(app, &cid)?)
            } else {
                None
            };
            Ok((page, summary))
        })
        .await?;
    Ok(Json(EventList {
        summary: summary.as_ref().map(crate::dto::ActivityOut::from),
        events: page
            .events
            .iter()
            .map(|e| EventOut::new(e, &customer_id))
            .collect(),
        next_cursor: page.next.map(|(ts, id)| format!("{ts}_{id}")),
    }))
}
