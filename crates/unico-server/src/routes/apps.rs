//! Applications and their API keys.

use std::collections::HashMap;

use axum::Json;
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use unico_core::{AppId, AppName, TimeZoneName};

use super::params::PathParams;
use super::system::answers;
use crate::audit;
use crate::auth::{KEY_PREFIX_CHARS, Principal, generate_key, hash_key};
use crate::dto::{AppCreated, AppList, AppOut, CreateApp, KeyCreated, KeyList, KeyOut, UpdateApp};
use crate::error::{ApiError, ErrorBody};
use crate::extract::JsonBody;
use crate::identity::IdentityRules;
use crate::state::{AppState, now_ms};

type PathResult = Result<Path<HashMap<String, String>>, PathRejection>;

fn parse_name(name: &str) -> Result<AppName, ApiError> {
    AppName::parse(name).map_err(|e| ApiError::invalid("name", e.to_string()))
}

fn parse_tz(tz: &str) -> Result<TimeZoneName, ApiError> {
    TimeZoneName::parse(tz).map_err(|e| ApiError::invalid("timezone", e.to_string()))
}

/// Creates an API key for `app`, remembers it, and answers it with its one-time secret
/// (the creation audited as done by `actor`).
pub(crate) async fn new_key(
    state: &AppState,
    app: unico_core::AppId,
    actor: String,
) -> Result<KeyCreated, ApiError> {
    let key = generate_key("unico_")?;
    let hash = hash_key(&key);
    let prefix: String = key.chars().take(KEY_PREFIX_CHARS).collect();
    let info = state
        .blocking(move |s| {
            let info = s.create_key(app, &hash, &prefix, now_ms())?;
            audit::record(s, Some(app), &actor, "key.created", info.id)?;
            Ok(info)
        })
        .await?;
    state.keys.remember(hash, app, info.id);
    Ok(KeyCreated {
        info: KeyOut::from(&info),
        key,
    })
}

/// Create an application (admin key). Answers its first API key, shown once.
#[utoipa::path(post, path = "/v1/apps", tag = "applications", request_body = CreateApp,
    responses(
        (status = 201, description = "the application, with its first API key in `api_key` (shown once)", body = AppCreated),
        (status = 400, description = "the body is not JSON (`invalid_content_type`, `invalid_json`), or the name or time zone is invalid (`invalid_input`)", body = ErrorBody),
        (status = 403, description = answers::ADMIN_ONLY, body = ErrorBody),
        (status = 413, description = answers::TOO_LARGE, body = ErrorBody),
    ))]
pub async fn create_app(
    State(state): State<AppState>,
    principal: Principal,
    JsonBody(body): JsonBody<CreateApp>,
) -> Result<(StatusCode, Json<AppCreated>), ApiError> {
    principal.require_admin()?;
    let name = parse_name(&body.name)?;
    let tz = match &body.timezone {
        Some(tz) => parse_tz(tz)?,
        None => TimeZoneName::utc(),
    };
    let (app, key) = create_with_key(&state, name, tz, audit::actor(&principal)).await?;
    Ok((
        StatusCode::CREATED,
        Json(AppCreated {
            app: AppOut::new(&app, false),
            api_key: key.key,
        }),
    ))
}

/// List applications: all of them with the admin key, its own with an API key.
#[utoipa::path(get, path = "/v1/apps", tag = "applications",
    responses(
        (status = 200, description = "every application with the admin key; its own with an API key", body = AppList),
    ))]
pub async fn list_apps(
    State(state): State<AppState>,
    principal: Principal,
) -> Result<Json<AppList>, ApiError> {
    let apps = state
        .blocking(move |s| {
            s.list_apps()?
                .into_iter()
                .filter(|a| principal.require_app(a.id).is_ok())
                .map(|a| {
                    Ok(AppOut::new(&a, auto_register(s, a.id)?)
                        .with_channels(&s.schema(a.id)?)
                        .with_identity(&IdentityRules::of(s, a.id)?))
                })
                .collect::<Result<Vec<_>, _>>()
        })
        .await?;
    Ok(Json(AppList { apps }))
}

/// Get one application.
#[utoipa::path(get, path = "/v1/apps/{app}", tag = "applications", params(("app" = i64, Path)),
    responses(
        (status = 200, description = "the application", body = AppOut),
        (status = 400, description = answers::BAD_PATH, body = ErrorBody),
        (status = 403, description = answers::OTHER_APP, body = ErrorBody),
        (status = 404, description = answers::NO_APP, body = ErrorBody),
    ))]
pub async fn get_app(
    State(state): State<AppState>,
    principal: Principal,
    path: PathResult,
) -> Result<Json<AppOut>, ApiError> {
    let app = PathParams::from(path)?.app()?;
    principal.require_app(app)?;
    let out = state
        .blocking(move |s| {
            Ok(AppOut::new(&s.get_app(app)?, auto_register(s, app)?)
                .with_channels(&s.schema(app)?)
                .with_identity(&IdentityRules::of(s, app)?))
        })
        .await?;
    Ok(Json(out))
}

/// The channels an application declares for subscriptions: valid channel names, at most
/// [`unico_core::subscription::MAX_DECLARED_CHANNELS`], each once.
fn parse_declared_channels(names: &[String]) -> Result<Vec<unico_core::Channel>, ApiError> {
    use unico_core::subscription::MAX_DECLARED_CHANNELS;
    if names.len() > MAX_DECLARED_CHANNELS {
        return Err(ApiError::invalid(
            "subscription_channels",
            format!("an application declares at most {MAX_DECLARED_CHANNELS} channels"),
        ));
    }
    let mut out: Vec<unico_core::Channel> = Vec::with_capacity(names.len());
    for (i, name) in names.iter().enumerate() {
        let c = unico_core::Channel::parse(name)
            .map_err(|e| ApiError::invalid(format!("subscription_channels[{i}]"), e.to_string()))?;
        if !out.contains(&c) {
            out.push(c);
        }
    }
    Ok(out)
}

/// The application's setting for event types met for the first time.
fn auto_register(s: &dyn unico_store::Store, app: AppId) -> Result<bool, unico_store::StoreError> {
    Ok(s.get_meta(&unico_store::events::auto_register_key(app))?
        .as_deref()
        == Some("true"))
}

/// Rename an application, change its time zone, or whether events of unregistered types
/// register them (admin key).
#[utoipa::path(patch, path = "/v1/apps/{app}", tag = "applications", params(("app" = i64, Path)), request_body = UpdateApp,
    responses(
        (status = 200, description = "the application as changed", body = AppOut),
        (status = 400, description = "the body is not JSON (`invalid_content_type`, `invalid_json`), the name or time zone is invalid (`invalid_input`), or a path parameter is not UTF-8", body = ErrorBody),
        (status = 403, description = answers::ADMIN_ONLY, body = ErrorBody),
        (status = 404, description = answers::NO_APP, body = ErrorBody),
        (status = 413, description = answers::TOO_LARGE, body = ErrorBody),
    ))]
pub async fn update_app(
    State(state): State<AppState>,
    principal: Principal,
    path: PathResult,
    JsonBody(body): JsonBody<UpdateApp>,
) -> Result<Json<AppOut>, ApiError> {
    let app = PathParams::from(path)?.app()?;
    principal.require_admin()?;
    let name = body.name.as_deref().map(parse_name).transpose()?;
    let tz = body.timezone.as_deref().map(parse_tz).transpose()?;
    let auto = body.auto_register_event_types;
    let channels = body
        .subscription_channels
        .as_deref()
        .map(parse_declared_channels)
        .transpose()?;
    let kinds = body
        .identity_kinds
        .as_deref()
        .map(crate::identity::parse_declared)
        .transpose()?;
    let anonymous = body.anonymous_profiles;
    let mut changed: Vec<&str> = Vec::new();
    for (set, what) in [
        (name.is_some(), "name"),
        (tz.is_some(), "timezone"),
        (auto.is_some(), "auto_register_event_types"),
        (channels.is_some(), "subscription_channels"),
        (kinds.is_some(), "identity_kinds"),
        (anonymous.is_some(), "anonymous_profiles"),
    ] {
        if set {
            changed.push(what);
        }
    }
    let changed = changed.join(",");
    let actor = audit::actor(&principal);
    let out = state
        .blocking(move |s| {
            let updated = s.update_app(app, name.as_ref(), tz.as_ref())?;
            if let Some(channels) = &channels {
                s.set_declared_channels(app, channels)?;
            }
            if let Some(kinds) = &kinds {
                crate::identity::store_declared(s, app, kinds)?;
            }
            if let Some(on) = anonymous {
                crate::identity::store_anonymous(s, app, on)?;
            }
            if let Some(auto) = auto {
                s.set_meta(
                    &unico_store::events::auto_register_key(app),
                    if auto { "true" } else { "false" },
                )?;
            }
            audit::record(s, Some(app), &actor, "app.updated", &changed)?;
            Ok(AppOut::new(&updated, auto_register(s, app)?)
                .with_channels(&s.schema(app)?)
                .with_identity(&IdentityRules::of(s, app)?))
        })
        .await?;
    Ok(Json(out))
}

/// Delete an application with all its keys, fields and customers (admin key).
#[utoipa::path(delete, path = "/v1/apps/{app}", tag = "applications", params(("app" = i64, Path)),
    responses(
        (status = 204, description = "deleted, with its keys, fields and customers"),
        (status = 400, description = answers::BAD_PATH, body = ErrorBody),
        (status = 403, description = answers::ADMIN_ONLY, body = ErrorBody),
        (status = 404, description = answers::NO_APP, body = ErrorBody),
    ))]
pub async fn delete_app(
    State(state): State<AppState>,
    principal: Principal,
    path: PathResult,
) -> Result<StatusCode, ApiError> {
    let app = PathParams::from(path)?.app()?;
    principal.require_admin()?;
    let actor = audit::actor(&principal);
    state
        .blocking(move |s| {
            s.delete_app(app)?;
            audit::record(s, Some(app), &actor, "app.deleted", app.0)
        })
        .await?;
    state.keys.forget(|a, _| a == app);
    Ok(StatusCode::NO_CONTENT)
}

/// Create another API key for an application. The key is shown once.
#[utoipa::path(post, path = "/v1/apps/{app}/keys", tag = "applications", params(("app" = i64, Path)),
    responses(
        (status = 201, description = "the key, shown once", body = KeyCreated),
        (status = 400, description = answers::BAD_PATH, body = ErrorBody),
        (status = 403, description = answers::OTHER_APP, body = ErrorBody),
        (status = 404, description = answers::NO_APP, body = ErrorBody),
    ))]
pub async fn create_key(
    State(state): State<AppState>,
    principal: Principal,
    path: PathResult,
) -> Result<(StatusCode, Json<KeyCreated>), ApiError> {
    let app = PathParams::from(path)?.app()?;
    principal.require_app(app)?;
    let actor = audit::actor(&principal);
    Ok((
        StatusCode::CREATED,
        Json(new_key(&state, app, actor).await?),
    ))
}

/// List an application's keys (prefixes only; secrets are never kept).
#[utoipa::path(get, path = "/v1/apps/{app}/keys", tag = "applications", params(("app" = i64, Path)),
    responses(
        (status = 200, description = "the keys, by prefix", body = KeyList),
        (status = 400, description = answers::BAD_PATH, body = ErrorBody),
        (status = 403, description = answers::OTHER_APP, body = ErrorBody),
        (status = 404, description = answers::NO_APP, body = ErrorBody),
    ))]
pub async fn list_keys(
    State(state): State<AppState>,
    principal: Principal,
    path: PathResult,
) -> Result<Json<KeyList>, ApiError> {
    let app = PathParams::from(path)?.app()?;
    principal.require_app(app)?;
    let keys = state.blocking(move |s| s.list_keys(app)).await?;
    Ok(Json(KeyList {
        keys: keys.iter().map(KeyOut::from).collect(),
    }))
}

/// Revoke a key: it stops working at once.
#[utoipa::path(delete, path = "/v1/apps/{app}/keys/{key_id}", tag = "applications",
    params(("app" = i64, Path), ("key_id" = i64, Path)),
    responses(
        (status = 204, description = "revoked"),
        (status = 400, description = answers::BAD_PATH, body = ErrorBody),
        (status = 403, description = answers::OTHER_APP, body = ErrorBody),
        (status = 404, description = "no such application or key (`not_found`)", body = ErrorBody),
    ))]
pub async fn revoke_key(
    State(state): State<AppState>,
    principal: Principal,
    path: PathResult,
) -> Result<StatusCode, ApiError> {
    let params = PathParams::from(path)?;
    let (app, key_id) = (params.app()?, params.key_id()?);
    principal.require_app(app)?;
    revoke(&state, app, key_id, audit::actor(&principal)).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Creates an application and its first key, and records who did (the API's route and the
/// console's form).
pub(crate) async fn create_with_key(
    state: &AppState,
    name: AppName,
    tz: TimeZoneName,
    actor: String,
) -> Result<(unico_core::Application, KeyCreated), ApiError> {
    let who = actor.clone();
    let app = state
        .blocking(move |s| {
            let app = s.create_app(&name, &tz, now_ms())?;
            audit::record(s, Some(app.id), &who, "app.created", app.id.0)?;
            Ok(app)
        })
        .await?;
    let key = new_key(state, app.id, actor).await?;
    Ok((app, key))
}

/// Revokes an application's key, records who did, and drops it from the key cache so it
/// stops working at once on this server (the API's route and the console's form).
pub(crate) async fn revoke(
    state: &AppState,
    app: AppId,
    key_id: i64,
    actor: String,
) -> Result<(), ApiError> {
    state
        .blocking(move |s| {
            s.revoke_key(app, key_id, now_ms())?;
            audit::record(s, Some(app), &actor, "key.revoked", key_id)
        })
        .await?;
    state.keys.forget(|a, id| a == app && id == key_id);
    Ok(())
}
