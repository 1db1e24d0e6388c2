//! Console sessions as the store keeps them, so that every server sharing a database knows
//! every session: a browser signed in through one server stays signed in on the others.
//!
//! A session is stored under the hash of its token (the cookie's secret never reaches the
//! database), with the hash of the key that signed in, that key's application, its form
//! token and two instants. The bounds (per key, per application, in all) and the expiry
//! (idle, absolute) are the caller's policy, given with each call as [`SessionLimits`]; the
//! store applies them in one transaction, so servers starting sessions at once keep them.

use unico_core::AppId;

/// One signed-in browser, as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsoleSession {
    /// The hash of the key that signed in (checked again on every request).
    pub key_hash: [u8; 32],
    /// The key's application; `None` for the admin key.
    pub app: Option<AppId>,
    /// The form token of the session's pages.
    pub csrf: String,
}

/// How sessions are bounded and when they end, all in milliseconds and counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionLimits {
    /// A session unused this long ends.
    pub idle_ms: i64,
    /// A session ends this long after it started, however busy.
    pub max_age_ms: i64,
    /// A use less than this long after the last recorded one is not recorded: a session's
    /// last use is written at most once per interval, not on every request, so a session
    /// may end up to this much earlier than `idle_ms` after its true last use.
    pub touch_ms: i64,
    /// Most sessions of one key: past it, that key's oldest session ends.
    pub per_key: usize,
    /// Most sessions of one application's keys together (the admin key's count as one
    /// application of their own): past it, that application's oldest session ends.
    pub per_app: usize,
    /// Most sessions in all: when every place holds a live session, a new one is refused
    /// (`StoreError::Limit`) rather than ending someone else's.
    pub total: usize,
}

impl SessionLimits {
    /// Whether a session started at `started` and last used at `last_used` has ended by
    /// `now`.
    pub fn expired(&self, started: i64, last_used: i64, now: i64) -> bool {
        now.saturating_sub(last_used) >= self.idle_ms
            || now.saturating_sub(started) >= self.max_age_ms
    }
}
