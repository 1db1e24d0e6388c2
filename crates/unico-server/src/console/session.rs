//! Console sessions: a random token in an HttpOnly, SameSite=Strict cookie (Secure over
//! HTTPS), mapped in memory to the hash of the key that signed in and to the session's form
//! token (see `guard`). The key is checked again on every request, so revoking it ends its
//! sessions at once; a restart signs everyone out.
//!
//! Sessions and sign-ins are bounded so that no key can take another key's place: each
//! key, and each application's keys together, hold a bounded number of sessions (their own
//! oldest ends past it), the table never drops a live session of another key or application
//! to make room, sessions end when idle and at a fixed age, and sign-ins are rate-limited
//! per key and failed sign-ins per client. The bounds are the constants below, each with
//! its reason.

use std::collections::hash_map::Entry;
use std::collections::{HashMap, VecDeque};
use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::HeaderMap;
use axum::http::header::COOKIE;
use axum::http::request::Parts;

use unico_core::AppId;

use super::throttle::{Buckets, Rate};
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

/// What a session counts against: its key, and its key's application (`None` for the
/// admin key).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Owner {
    Key([u8; 32]),
    App(Option<AppId>),
}

impl Owner {
    fn bound(self) -> usize {
        match self {
            Owner::Key(_) => MAX_SESSIONS_PER_KEY,
            Owner::App(_) => MAX_SESSIONS_PER_APP,
        }
    }
}

/// One signed-in browser.
#[derive(Debug)]
struct Session {
    key_hash: [u8; 32],
    app: Option<AppId>,
    csrf: CsrfToken,
    started: Instant,
    last_used: Instant,
}

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

impl Session {
    fn owners(&self) -> [Owner; 2] {
        [Owner::Key(self.key_hash), Owner::App(self.app)]
    }

    fn expired(&self, now: Instant) -> bool {
        now.saturating_duration_since(self.last_used) >= SESSION_IDLE
            || now.saturating_duration_since(self.started) >= SESSION_MAX_AGE
    }
}

#[derive(Debug, Default)]
struct Table {
    by_token: HashMap<String, Session>,
    /// Each owner's session tokens, oldest first: every session is listed under its key and
    /// under its application, and nothing else is.
    by_owner: HashMap<Owner, VecDeque<String>>,
}

impl Table {
    fn remove(&mut self, token: &str) {
        let Some(session) = self.by_token.remove(token) else {
            return;
        };
        for owner in session.owners() {
            if let Entry::Occupied(mut own) = self.by_owner.entry(owner) {
                own.get_mut().retain(|t| t != token);
                if own.get().is_empty() {
                    own.remove();
                }
            }
        }
    }

    /// Ends `owner`'s oldest session if it holds as many as its bound, so a new one fits.
    fn make_room_in(&mut self, owner: Owner) {
        let own = self.by_owner.get(&owner);
        if own.map_or(0, VecDeque::len) >= owner.bound()
            && let Some(oldest) = own.and_then(|v| v.front().cloned())
        {
            self.remove(&oldest);
        }
    }

    fn sweep(&mut self, now: Instant) {
        let expired: Vec<String> = self
            .by_token
            .iter()
            .filter(|(_, s)| s.expired(now))
            .map(|(t, _)| t.clone())
            .collect();
        for token in &expired {
            self.remove(token);
        }
    }

    fn check(&self) {
        debug_assert_eq!(
            2 * self.by_token.len(),
            self.by_owner.values().map(VecDeque::len).sum::<usize>(),
            "each session is listed under its two owners, and nothing else is"
        );
        debug_assert!(self.by_owner.iter().all(|(o, v)| v.len() <= o.bound()));
        debug_assert!(self.by_token.len() <= MAX_SESSIONS);
    }
}

/// Why a session could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("too many open sessions; try again later")]
    Full,
    #[error(transparent)]
    Internal(#[from] ApiError),
}

/// The sessions of this process.
#[derive(Debug, Default)]
pub struct Sessions {
    table: Mutex<Table>,
}

impl Sessions {
    /// The table. No code panics while holding it, so a poisoned lock still guards a
    /// consistent table (and [`Table::check`] says so in debug builds).
    fn lock(&self) -> MutexGuard<'_, Table> {
        self.table.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Starts a session for the key with this hash, a key of `app` (`None`: the admin key);
    /// answers its token.
    pub fn start(&self, key_hash: [u8; 32], app: Option<AppId>) -> Result<String, StartError> {
        let token = crate::auth::generate_key("s_")?;
        let csrf = CsrfToken::generate()?;
        let session = Session {
            key_hash,
            app,
            csrf,
            started: Instant::now(),
            last_used: Instant::now(),
        };
        self.insert(token.clone(), session)?;
        Ok(token)
    }

    /// Adds a session, started at `session.started`. Past a bound, the key's oldest session
    /// ends, then its application's; a session of another key or application never does:
    /// when the table is full of live sessions, this one is refused.
    fn insert(&self, token: String, session: Session) -> Result<(), StartError> {
        let mut table = self.lock();
        if table.by_token.len() >= MAX_SESSIONS {
            table.sweep(session.started);
        }
        for owner in session.owners() {
            table.make_room_in(owner);
        }
        if table.by_token.len() >= MAX_SESSIONS {
            return Err(StartError::Full);
        }
        for owner in session.owners() {
            table
                .by_owner
                .entry(owner)
                .or_default()
                .push_back(token.clone());
        }
        table.by_token.insert(token, session);
        table.check();
        Ok(())
    }

    /// The session with this token, if it is live; using it keeps it from going idle.
    pub fn get(&self, token: &str) -> Option<Live> {
        self.use_at(token, Instant::now())
    }

    fn use_at(&self, token: &str, now: Instant) -> Option<Live> {
        let mut table = self.lock();
        let session = table.by_token.get_mut(token)?;
        if session.expired(now) {
            table.remove(token);
            table.check();
            return None;
        }
        session.last_used = now;
        Some(Live {
            key_hash: session.key_hash,
            csrf: session.csrf.clone(),
        })
    }

    pub fn end(&self, token: &str) {
        let mut table = self.lock();
        table.remove(token);
        table.check();
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

    fn key(n: u8) -> [u8; 32] {
        [n; 32]
    }

    fn csrf() -> CsrfToken {
        CsrfToken::generate().unwrap()
    }

    fn session(key_hash: [u8; 32], app: Option<i64>, now: Instant) -> Session {
        Session {
            key_hash,
            app: app.map(AppId),
            csrf: csrf(),
            started: now,
            last_used: now,
        }
    }

    /// A session of key `k`: the admin key for 0, else a key of application `k`.
    fn start(s: &Sessions, k: u8, token: &str, now: Instant) -> Result<(), StartError> {
        let app = (k != 0).then_some(i64::from(k));
        s.insert(token.to_owned(), session(key(k), app, now))
    }

    fn hash_of(s: &Sessions, token: &str, now: Instant) -> Option<[u8; 32]> {
        s.use_at(token, now).map(|l| l.key_hash)
    }

    #[test]
    fn past_its_bound_a_key_ends_its_own_oldest_session_only() {
        let s = Sessions::default();
        let t0 = Instant::now();
        start(&s, 0, "admin", t0).unwrap();
        for i in 0..MAX_SESSIONS_PER_KEY * 3 {
            start(&s, 1, &format!("app-{i}"), t0).unwrap();
        }
        assert_eq!(hash_of(&s, "admin", t0), Some(key(0)));
        let live: Vec<usize> = (0..MAX_SESSIONS_PER_KEY * 3)
            .filter(|i| hash_of(&s, &format!("app-{i}"), t0).is_some())
            .collect();
        assert_eq!(
            live,
            (MAX_SESSIONS_PER_KEY * 2..MAX_SESSIONS_PER_KEY * 3).collect::<Vec<_>>(),
            "the key's newest sessions"
        );
    }

    #[test]
    fn past_its_bound_an_application_ends_its_own_oldest_session_only() {
        let s = Sessions::default();
        let t0 = Instant::now();
        start(&s, 0, "admin", t0).unwrap();
        start(&s, 2, "other-app", t0).unwrap();
        // Application 1 signs in with many keys (an API key may create keys), none past
        // its own bound.
        let keys = 2 * MAX_SESSIONS_PER_APP / MAX_SESSIONS_PER_KEY;
        let mut n = 0;
        for _ in 0..MAX_SESSIONS_PER_KEY {
            for k in 0..keys {
                let mut hash = key(100);
                hash[0] = u8::try_from(k).unwrap();
                let token = format!("app1-{n}");
                s.insert(token, session(hash, Some(1), t0)).unwrap();
                n += 1;
            }
        }
        assert_eq!(hash_of(&s, "admin", t0), Some(key(0)));
        assert_eq!(hash_of(&s, "other-app", t0), Some(key(2)));
        let live: Vec<usize> = (0..n)
            .filter(|i| hash_of(&s, &format!("app1-{i}"), t0).is_some())
            .collect();
        assert_eq!(
            live,
            (n - MAX_SESSIONS_PER_APP..n).collect::<Vec<_>>(),
            "the application's newest sessions"
        );
    }

    #[test]
    fn a_full_table_refuses_a_new_session_and_ends_none() {
        let s = Sessions::default();
        let t0 = Instant::now();
        for n in 0..MAX_SESSIONS {
            let mut hash = [0; 32];
            hash[..8].copy_from_slice(&(n / MAX_SESSIONS_PER_KEY).to_le_bytes());
            let app = i64::try_from(n / MAX_SESSIONS_PER_APP).unwrap() + 1000;
            s.insert(format!("t{n}"), session(hash, Some(app), t0))
                .unwrap();
        }
        assert!(matches!(start(&s, 255, "late", t0), Err(StartError::Full)));
        assert!((0..MAX_SESSIONS).all(|n| hash_of(&s, &format!("t{n}"), t0).is_some()));
        // Once sessions expired, their places are taken again.
        let later = t0 + SESSION_IDLE;
        start(&s, 255, "late", later).unwrap();
        assert_eq!(hash_of(&s, "late", later), Some(key(255)));
    }

    #[test]
    fn a_session_ends_when_idle_and_at_its_maximum_age() {
        let s = Sessions::default();
        let t0 = Instant::now();
        start(&s, 0, "idle", t0).unwrap();
        start(&s, 0, "busy", t0).unwrap();
        let step = SESSION_IDLE / 2;
        let mut now = t0;
        while now + step < t0 + SESSION_MAX_AGE {
            now += step;
            assert_eq!(hash_of(&s, "busy", now), Some(key(0)), "used, so not idle");
        }
        assert_eq!(
            hash_of(&s, "idle", t0 + SESSION_IDLE),
            None,
            "idle too long"
        );
        assert_eq!(hash_of(&s, "busy", t0 + SESSION_MAX_AGE), None, "too old");
        assert_eq!(s.lock().by_token.len(), 0, "ended sessions are dropped");
        assert!(s.lock().by_owner.is_empty());
    }

    #[test]
    fn a_session_ended_is_gone() {
        let s = Sessions::default();
        let t0 = Instant::now();
        start(&s, 0, "a", t0).unwrap();
        start(&s, 0, "b", t0).unwrap();
        s.end("a");
        s.end("unknown");
        assert_eq!(hash_of(&s, "a", t0), None);
        assert_eq!(hash_of(&s, "b", t0), Some(key(0)));
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
    fn each_session_has_its_own_form_token() {
        let s = Sessions::default();
        let t0 = Instant::now();
        s.insert(
            "a".into(),
            Session {
                csrf: CsrfToken("x".repeat(48)),
                ..session(key(0), None, t0)
            },
        )
        .unwrap();
        s.insert(
            "b".into(),
            Session {
                csrf: CsrfToken("y".repeat(48)),
                ..session(key(0), None, t0)
            },
        )
        .unwrap();
        let a = s.use_at("a", t0).unwrap().csrf;
        assert!(a.matches(&"x".repeat(48)));
        assert!(!a.matches(&"y".repeat(48)));
        assert!(!a.matches(&"x".repeat(47)));
        assert!(!a.matches(""));
        assert_ne!(csrf(), csrf());
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
