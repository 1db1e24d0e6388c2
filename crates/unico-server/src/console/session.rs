//! Console sessions: a random token in an HttpOnly, SameSite=Strict cookie, mapped in
//! memory to the hash of the key that signed in. The key is checked again on every request,
//! so revoking it ends its sessions at once; a restart signs everyone out.

use std::collections::HashMap;
use std::sync::Mutex;

use axum::http::HeaderMap;
use axum::http::header::COOKIE;

/// Name of the session cookie.
pub const COOKIE_NAME: &str = "unico_session";
/// Most sessions kept; the oldest are dropped past it.
pub const MAX_SESSIONS: usize = 10_000;

#[derive(Default)]
pub struct Sessions {
    by_token: Mutex<HashMap<String, ([u8; 32], u64)>>,
    counter: Mutex<u64>,
}

impl Sessions {
    /// Starts a session for the key with this hash; answers its token.
    pub fn start(&self, key_hash: [u8; 32]) -> Option<String> {
        let token = crate::auth::generate_key("s_").ok()?;
        let order = {
            let mut c = self.counter.lock().ok()?;
            *c += 1;
            *c
        };
        let mut map = self.by_token.lock().ok()?;
        if map.len() >= MAX_SESSIONS
            && let Some(oldest) = map
                .iter()
                .min_by_key(|(_, (_, n))| *n)
                .map(|(t, _)| t.clone())
        {
            map.remove(&oldest);
        }
        map.insert(token.clone(), (key_hash, order));
        Some(token)
    }

    pub fn key_hash(&self, token: &str) -> Option<[u8; 32]> {
        self.by_token.lock().ok()?.get(token).map(|(h, _)| *h)
    }

    pub fn end(&self, token: &str) {
        if let Ok(mut map) = self.by_token.lock() {
            map.remove(token);
        }
    }
}

/// The session token sent by the browser, if any.
pub fn token(headers: &HeaderMap) -> Option<String> {
    cookie(headers, COOKIE_NAME)
}

/// The value of the request's cookie `name`, if it sent one.
pub fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(n, _)| *n == name)
        .map(|(_, value)| value.to_owned())
}

/// The `Set-Cookie` value that stores `token` (or clears it, for `None`).
pub fn set_cookie(token: Option<&str>) -> String {
    match token {
        Some(t) => format!("{COOKIE_NAME}={t}; Path=/; HttpOnly; SameSite=Strict"),
        None => format!("{COOKIE_NAME}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0"),
    }
}
