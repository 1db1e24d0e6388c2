//! Console sessions: a random token in an HttpOnly, SameSite=Strict cookie (Secure over
//! HTTPS), stored through the [`Store`] under the token's hash with the hash of the key
//! that signed in and the session's form token (see `guard`). Every server sharing the
//! store knows every session, so a request landing on another server stays signed in, and
//! a restart signs nobody out. The key is checked again on every request, so revoking it
//! ends its sessions at once.
//!
//! Sessions and sign-ins are bounded so that no key can take another key's place: each
//! key, and each application's keys together, hold a bounded number of sessions (their own
//! oldest ends past it), the store never drops a live session of another key or
//! application to make room, sessions end when idle and at a fixed age, and sign-ins are
//! rate-limited per key and failed sign-ins per client. The bounds are the constants below,
//! each with its reason; the store applies them ([`SESSION_LIMITS`]).

use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::HeaderMap;
use axum::http::header::COOKIE;
use axum::http::request::Parts;

use unico_core::AppId;
use unico_store::{ConsoleSession, SessionLimits, Store, StoreError};

use super::throttle::{Buckets, Rate};
use crate::auth::hash_key;
use crate::error::ApiError;

/// Name of the session cookie.
pub const COOKIE_NAME: &str = "unico_session";

/// Most sessions held in all: a bound on memory (a few hundred bytes each). When every
/// place holds a live session, a new sign-in is refused rather than ending someone else's
/// session; expired sessions are swept first.
pub const MAX_SESSIONS: usize = 10_000;
/// Most sessions of one key. More than the people who share one key in practice; past it
/// that key's own oldest session ends, so a key can only churn its own sessions.
pub const MAX_SESSIONS_PER_KEY: usize = 32;
/// Most sessions of one application's keys together (the admin key counts apart). An API
/// key may create more keys for its application, so the bound per key alone would let one
/// application fill the table; past this one that application's oldest session ends.
/// Filling [`MAX_SESSIONS`] then takes 40 applications, and only the admin creates them.
pub const MAX_SESSIONS_PER_APP: usize = 256;
/// A session unused this long ends: a console left open on an unattended machine does not
/// stay signed in (the admin key reaches every application).
pub const SESSION_IDLE: Duration = Duration::from_secs(2 * 60 * 60);
/// A session ends this long after it started, however busy: a working day. A stolen
/// cookie is not usable for ever; the cookie's `Max-Age` says the same to the browser.
pub const SESSION_MAX_AGE: Duration = Duration::from_secs(12 * 60 * 60);
/// A session's last use is written to the store at most this often, not on every request
/// (a write on every page view would cost a durable commit each): a session may end up to
/// this much before [`SESSION_IDLE`] has passed since its true last use.
pub const SESSION_TOUCH: Duration = Duration::from_secs(60);
// A session's recorded last use is never so stale that it ends much before it idled.
const _: () = assert!(SESSION_TOUCH.as_secs() * 10 <= SESSION_IDLE.as_secs());
/// The bounds above, as the store applies them.
pub const SESSION_LIMITS: SessionLimits = SessionLimits {
    idle_ms: SESSION_IDLE.as_millis() as i64,
    max_age_ms: SESSION_MAX_AGE.as_millis() as i64,
    touch_ms: SESSION_TOUCH.as_millis() as i64,
    per_key: MAX_SESSIONS_PER_KEY,
    per_app: MAX_SESSIONS_PER_APP,
    total: MAX_SESSIONS,
};
/// Sign-ins with one valid key: a burst (a team sharing a key signs in the same morning),
/// then one every 6 s. A script signing in over and over is slowed to 10 sessions a minute,
/// and each key's sessions are bounded anyway ([`MAX_SESSIONS_PER_KEY`]).
pub const SIGN_INS_PER_KEY: Rate = Rate {
    burst: 10,
    refill: Duration::from_secs(6),
};
/// Failed sign-ins from one client: a burst (typos), then one every 30 s; a client past it
/// is refused every sign-in until it may try again. Keys are random 192-bit secrets, so this
/// is not what keeps them from being guessed: it keeps a scanner from hammering the key
/// store, and makes one visible (429s in the log).
pub const FAILED_SIGN_INS_PER_CLIENT: Rate = Rate {
    burst: 10,
    refill: Duration::from_secs(30),
};
/// Clients (or keys) whose recent sign-ins each limit remembers: a bound on memory when
/// addresses are many. Past it the limits forget the least recent first.
pub const MAX_TRACKED_SUBJECTS: usize = 10_000;

/// A session's form token: a random secret the console's forms and scripts send back, so a
/// request that carries it came from a page the console served to that session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CsrfToken(String);

impl CsrfToken {
    /// Name of the form field, and of the header the scripts send.
    pub const FIELD: &str = "csrf";
    pub const HEADER: &str = "x-unico-csrf";

    fn generate() -> Result<Self, ApiError> {
        crate::auth::generate_key("").map(CsrfToken)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether `sent` is this token, compared in time independent of where they differ.
    pub fn matches(&self, sent: &str) -> bool {
        let (a, b) = (self.0.as_bytes(), sent.as_bytes());
        a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
    }
}

/// In a form: the hidden field that sends the token back.
impl maud::Render for CsrfToken {
    fn render(&self) -> maud::Markup {
        maud::html! { input type="hidden" name=(Self::FIELD) value=(self.0); }
    }
}

/// A live session, as a request sees it.
#[derive(Debug, Clone)]
pub struct Live {
    pub key_hash: [u8; 32],
    pub csrf: CsrfToken,
}

/// Why a session could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("too many open sessions; try again later")]
    Full,
    #[error(transparent)]
    Internal(#[from] ApiError),
}

/// The console sessions, as every server sharing the store sees them.
pub struct Sessions {
    store: Arc<dyn Store>,
}

impl std::fmt::Debug for Sessions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sessions").finish_non_exhaustive()
    }
}

impl Sessions {
    pub fn new(store: Arc<dyn Store>) -> Self {
        Sessions { store }
    }

    /// Runs a store call on a blocking thread.
    async fn call<R: Send + 'static>(
        &self,
        op: impl FnOnce(&dyn Store) -> Result<R, StoreError> + Send + 'static,
    ) -> Result<R, ApiError> {
        crate::state::on_blocking_thread(self.store.clone(), op).await
    }

    /// Starts a session for the key with this hash, a key of `app` (`None`: the admin key);
    /// answers its token. Past a bound, the key's oldest session ends, then its
    /// application's; a session of another key or application never does: when every
    /// place holds a live session, this one is refused.
    pub async fn start(
        &self,
        key_hash: [u8; 32],
        app: Option<AppId>,
    ) -> Result<String, StartError> {
        let token = crate::auth::generate_key("s_")?;
        let session = ConsoleSession {
            key_hash,
            app,
            csrf: CsrfToken::generate()?.0,
        };
        let token_hash = hash_key(&token);
        let now = crate::state::now_ms();
        let started = self
            .call(
                move |s| match s.start_session(&token_hash, &session, now, &SESSION_LIMITS) {
                    Ok(()) => Ok(true),
                    Err(StoreError::Limit(_)) => Ok(false),
                    Err(e) => Err(e),
                },
            )
            .await?;
        if started {
            Ok(token)
        } else {
            Err(StartError::Full)
        }
    }

    /// The session with this token, if it is live; using it keeps it from going idle.
    pub async fn get(&self, token: &str) -> Result<Option<Live>, ApiError> {
        let token_hash = hash_key(token);
        let now = crate::state::now_ms();
        let session = self
            .call(move |s| s.use_session(&token_hash, now, &SESSION_LIMITS))
            .await?;
        Ok(session.map(|s| Live {
            key_hash: s.key_hash,
            csrf: CsrfToken(s.csrf),
        }))
    }

    pub async fn end(&self, token: &str) -> Result<(), ApiError> {
        let token_hash = hash_key(token);
        self.call(move |s| s.end_session(&token_hash)).await
    }
}

/// Who is signing in, as far as the server can tell: the peer's address, or for a peer on
/// this machine (a reverse proxy) the last address of `X-Forwarded-For`, which that proxy
/// wrote. An IPv6 address counts by its /64, what one host usually holds. `None` when the
/// server was not given addresses (then every client shares one limit).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Client(Option<IpAddr>);

impl Client {
    pub fn of(peer: Option<SocketAddr>, headers: &HeaderMap) -> Self {
        let peer = peer.map(|p| p.ip());
        let forwarded = || {
            headers
                .get_all("x-forwarded-for")
                .iter()
                .next_back()?
                .to_str()
                .ok()?
                .rsplit(',')
                .next()?
                .trim()
                .parse::<IpAddr>()
                .ok()
        };
        let ip = match peer {
            Some(p) if p.is_loopback() => forwarded().or(Some(p)),
            other => other,
        };
        Client(ip.map(|ip| match ip {
            IpAddr::V6(v6) => {
                let [a, b, c, d, ..] = v6.segments();
                IpAddr::V6(Ipv6Addr::new(a, b, c, d, 0, 0, 0, 0))
            }
            v4 => v4,
        }))
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Client {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        let peer = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|c| c.0);
        Ok(Client::of(peer, &parts.headers))
    }
}

/// The sign-in rate limits: failed sign-ins per client, sign-ins per key.
#[derive(Debug)]
pub struct SignInLimits {
    failed_by_client: Mutex<Buckets<Client>>,
    by_key: Mutex<Buckets<[u8; 32]>>,
}

impl Default for SignInLimits {
    fn default() -> Self {
        Self {
            failed_by_client: Mutex::new(Buckets::new(
                FAILED_SIGN_INS_PER_CLIENT,
                MAX_TRACKED_SUBJECTS,
            )),
            by_key: Mutex::new(Buckets::new(SIGN_INS_PER_KEY, MAX_TRACKED_SUBJECTS)),
        }
    }
}

/// Locks a limit. Bucket updates do not panic half-way, so a poisoned lock still guards
/// consistent buckets.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl SignInLimits {
    /// `Ok` if `client` may try to sign in, else how long until it may.
    pub fn may_try(&self, client: Client, now: Instant) -> Result<(), Duration> {
        lock(&self.failed_by_client).check(&client, now)
    }

    /// Counts a failed sign-in of `client`.
    pub fn failed(&self, client: Client, now: Instant) {
        // Over its limit already: the next `may_try` refuses it anyway.
        let _ = lock(&self.failed_by_client).take(&client, now);
    }

    /// Counts a sign-in with the key of this hash: `Ok` if it may start a session, else how
    /// long until it may.
    pub fn signing_in(&self, key_hash: [u8; 32], now: Instant) -> Result<(), Duration> {
        lock(&self.by_key).take(&key_hash, now)
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

/// Whether the browser reached the console over HTTPS: the request's own scheme (TLS in
/// front of the router), or a proxy's `X-Forwarded-Proto: https` or `Forwarded: proto=https`
/// (its first hop, the one the browser used). A client that lies about it over plain HTTP
/// only loses its own cookie.
pub fn over_https(parts: &Parts) -> bool {
    let first = |name: &str| {
        parts
            .headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(',').next())
            .map(|v| v.trim().to_ascii_lowercase())
    };
    parts.uri.scheme_str() == Some("https")
        || first("x-forwarded-proto").as_deref() == Some("https")
        || first("forwarded").is_some_and(|hop| {
            hop.split(';')
                .any(|pair| pair.trim().trim_matches('"') == "proto=https")
        })
}

/// The attributes every console cookie carries: HttpOnly (no script reads it), SameSite=Strict
/// (no other site sends it), Secure over HTTPS (never sent in clear).
pub fn cookie_attributes(secure: bool) -> &'static str {
    if secure {
        "HttpOnly; SameSite=Strict; Secure"
    } else {
        "HttpOnly; SameSite=Strict"
    }
}

/// The `Set-Cookie` value that stores `token` (or clears it, for `None`).
pub fn set_cookie(token: Option<&str>, secure: bool) -> String {
    let attributes = cookie_attributes(secure);
    match token {
        Some(t) => format!(
            "{COOKIE_NAME}={t}; Path=/; Max-Age={}; {attributes}",
            SESSION_MAX_AGE.as_secs()
        ),
        None => format!("{COOKIE_NAME}=; Path=/; Max-Age=0; {attributes}"),
    }
}

/// Whether the request came over HTTPS, for the cookies of its answer.
#[derive(Debug, Clone, Copy)]
pub struct Https(pub bool);

impl<S: Send + Sync> FromRequestParts<S> for Https {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(Https(over_https(parts)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sessions() -> (Sessions, tempfile::TempDir) {
        let dir = tempfile::tempdir().unwrap();
        let store = unico_store::SqliteStore::open(dir.path()).unwrap();
        (Sessions::new(Arc::new(store)), dir)
    }

    /// The sessions live in the store: another `Sessions` over it (another server) knows
    /// them, each has a token and a form token of its own, and one ended is gone for both.
    #[tokio::test]
    async fn sessions_live_in_the_store_each_with_its_own_tokens() {
        let (one, _dir) = sessions();
        let two = Sessions::new(one.store.clone());
        let a = one.start([1; 32], None).await.unwrap();
        let b = one.start([1; 32], None).await.unwrap();
        assert_ne!(a, b);
        let (live_a, live_b) = (
            two.get(&a).await.unwrap().unwrap(),
            two.get(&b).await.unwrap().unwrap(),
        );
        assert_eq!(live_a.key_hash, [1; 32]);
        assert_ne!(live_a.csrf, live_b.csrf);
        assert!(live_a.csrf.matches(live_a.csrf.as_str()));
        assert!(!live_a.csrf.matches(live_b.csrf.as_str()));
        assert!(!live_a.csrf.matches(""));
        two.end(&a).await.unwrap();
        assert!(one.get(&a).await.unwrap().is_none());
        assert!(one.get(&b).await.unwrap().is_some());
        assert!(one.get("s_unknown").await.unwrap().is_none());
    }

    #[test]
    fn clients_are_told_apart_by_address_and_a_local_proxy_forwards_theirs() {
        let peer = |s: &str| Some(s.parse::<SocketAddr>().unwrap());
        let forwarded = |v: &str| {
            let mut h = HeaderMap::new();
            h.insert("x-forwarded-for", v.parse().unwrap());
            h
        };
        let ip = |s: &str| Client(Some(s.parse().unwrap()));
        let none = HeaderMap::new();
        assert_eq!(Client::of(None, &none), Client(None));
        assert_eq!(Client::of(peer("203.0.113.7:1"), &none), ip("203.0.113.7"));
        assert_eq!(
            Client::of(peer("203.0.113.7:1"), &forwarded("198.51.100.1")),
            ip("203.0.113.7"),
            "only a proxy on this machine is believed"
        );
        assert_eq!(
            Client::of(peer("127.0.0.1:1"), &forwarded("10.0.0.1, 198.51.100.1")),
            ip("198.51.100.1"),
            "the address the proxy added, not one the client sent"
        );
        assert_eq!(
            Client::of(peer("127.0.0.1:1"), &forwarded("garbage")),
            ip("127.0.0.1")
        );
        assert_eq!(
            Client::of(peer("[2001:db8:1:2:3:4:5:6]:1"), &none),
            Client::of(peer("[2001:db8:1:2:ffff::1]:1"), &none),
            "one IPv6 /64 is one client"
        );
    }

    #[test]
    fn the_session_cookie_expires_with_the_session() {
        assert!(
            set_cookie(Some("t"), false)
                .contains(&format!("Max-Age={}", SESSION_MAX_AGE.as_secs()))
        );
        assert!(set_cookie(None, true).contains("Max-Age=0"));
    }

    #[test]
    fn https_is_the_scheme_or_what_the_proxy_says() {
        let parts = |uri: &str, headers: &[(&str, &str)]| {
            let mut req = axum::http::Request::builder().uri(uri);
            for (n, v) in headers {
                req = req.header(*n, *v);
            }
            req.body(()).unwrap().into_parts().0
        };
        assert!(!over_https(&parts("/console", &[])));
        assert!(over_https(&parts("https://unico.test/console", &[])));
        assert!(over_https(&parts("/", &[("x-forwarded-proto", "HTTPS")])));
        assert!(over_https(&parts(
            "/",
            &[("x-forwarded-proto", "https, http")]
        )));
        assert!(!over_https(&parts(
            "/",
            &[("x-forwarded-proto", "http, https")]
        )));
        assert!(over_https(&parts(
            "/",
            &[("forwarded", "for=1.2.3.4;proto=https")]
        )));
        assert!(!over_https(&parts("/", &[("forwarded", "proto=http")])));
    }
}
