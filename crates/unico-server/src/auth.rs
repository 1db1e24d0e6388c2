//! Keys and who holds them.
//!
//! The admin key manages applications and reaches every application; an API key reaches
//! its own application alone. Keys are random 192-bit secrets; only their SHA-256 is
//! stored, so a leaked database leaks no usable key. A fast hash is right here: the
//! secrets are random, not passwords.

use std::collections::HashMap;
use std::sync::RwLock;

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use sha2::{Digest, Sha256};
use unico_core::AppId;

use crate::error::ApiError;
use crate::state::AppState;

/// Characters of a key kept in listings to recognise it.
pub const KEY_PREFIX_CHARS: usize = 14;

/// A new random key with the given prefix (`unico_` for API keys, `unico_admin_` for
/// the admin key).
pub fn generate_key(prefix: &str) -> Result<String, ApiError> {
    let mut bytes = [0u8; 24];
    getrandom::fill(&mut bytes).map_err(|e| ApiError::Internal(format!("no randomness: {e}")))?;
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    Ok(format!("{prefix}{hex}"))
}

pub fn hash_key(key: &str) -> [u8; 32] {
    Sha256::digest(key.as_bytes()).into()
}

/// Compares two hashes in time independent of where they differ.
fn same_hash(a: &[u8; 32], b: &[u8; 32]) -> bool {
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Who is calling.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Principal {
    Admin,
    App { app: AppId, key_id: i64 },
}

impl Principal {
    /// Allows the call if this principal may reach `app`'s data.
    pub fn require_app(&self, app: AppId) -> Result<(), ApiError> {
        match self {
            Principal::Admin => Ok(()),
            Principal::App { app: own, .. } if *own == app => Ok(()),
            Principal::App { .. } => Err(ApiError::Forbidden(
                "this API key belongs to another application".into(),
            )),
        }
    }

    pub fn require_admin(&self) -> Result<(), ApiError> {
        match self {
            Principal::Admin => Ok(()),
            Principal::App { .. } => Err(ApiError::Forbidden(
                "this operation needs the admin key; API keys reach their own application only"
                    .into(),
            )),
        }
    }
}

/// How long a verified API key is trusted without asking the store again. A key revoked
/// through this server is forgotten at once; through another server sharing the store, it
/// stops working here within this time.
pub const KEY_CACHE_TTL: std::time::Duration = std::time::Duration::from_secs(2);

/// Verifies keys: the admin key's hash, and a cache of API keys in front of the store.
pub struct KeyRing {
    admin_hash: [u8; 32],
    cache: RwLock<HashMap<[u8; 32], (AppId, i64, std::time::Instant)>>,
}

impl KeyRing {
    pub fn new(admin_key: &str) -> Self {
        Self {
            admin_hash: hash_key(admin_key),
            cache: RwLock::new(HashMap::new()),
        }
    }

    pub(crate) fn cached(&self, hash: &[u8; 32]) -> Option<(AppId, i64)> {
        let cache = self.cache.read().ok()?;
        let &(app, key_id, at) = cache.get(hash)?;
        (at.elapsed() < KEY_CACHE_TTL).then_some((app, key_id))
    }

    pub(crate) fn remember(&self, hash: [u8; 32], app: AppId, key_id: i64) {
        if let Ok(mut cache) = self.cache.write() {
            // Expired entries go as new ones come, so the cache holds recent keys only.
            if cache.len() >= 4096 {
                cache.retain(|_, (_, _, at)| at.elapsed() < KEY_CACHE_TTL);
            }
            cache.insert(hash, (app, key_id, std::time::Instant::now()));
        }
    }

    /// Forgets keys matching `pred` (revoked keys, keys of a deleted application).
    pub(crate) fn forget(&self, pred: impl Fn(AppId, i64) -> bool) {
        if let Ok(mut cache) = self.cache.write() {
            cache.retain(|_, (app, id, _)| !pred(*app, *id));
        }
    }

    pub(crate) fn is_admin(&self, hash: &[u8; 32]) -> bool {
        same_hash(hash, &self.admin_hash)
    }
}

impl FromRequestParts<AppState> for Principal {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let header = parts
            .headers
            .get(axum::http::header::AUTHORIZATION)
            .ok_or_else(|| {
                ApiError::Unauthorized(
                    "missing Authorization header; send Authorization: Bearer <key>".into(),
                )
            })?;
        let key = header
            .to_str()
            .ok()
            .and_then(|v| {
                v.strip_prefix("Bearer ")
                    .or_else(|| v.strip_prefix("bearer "))
            })
            .map(str::trim)
            .filter(|k| !k.is_empty())
            .ok_or_else(|| {
                ApiError::Unauthorized(
                    "malformed Authorization header; send Authorization: Bearer <key>".into(),
                )
            })?;
        authenticate(state, key).await
    }
}

/// Who holds `key`: the admin, an application's live key, or nobody (401).
pub async fn authenticate(state: &AppState, key: &str) -> Result<Principal, ApiError> {
    authenticate_hash(state, hash_key(key)).await
}

/// [`authenticate`] for a key known by its hash (console sessions keep only the hash, and
/// check it on every request, so a revoked key ends its sessions at once).
pub async fn authenticate_hash(state: &AppState, hash: [u8; 32]) -> Result<Principal, ApiError> {
    if state.keys.is_admin(&hash) {
        return Ok(Principal::Admin);
    }
    if let Some((app, key_id)) = state.keys.cached(&hash) {
        return Ok(Principal::App { app, key_id });
    }
    let found = state.blocking(move |s| s.find_key(&hash)).await?;
    match found {
        Some(info) => {
            state.keys.remember(hash, info.app, info.id);
            Ok(Principal::App {
                app: info.app,
                key_id: info.id,
            })
        }
        None => Err(ApiError::Unauthorized("invalid or revoked key".into())),
    }
}
