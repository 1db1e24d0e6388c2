//! Console sessions in the embedded store (see [`crate::sessions`]). The writer runs one
//! write at a time, so a session's start sees every other start before or after it.

use rusqlite::{Connection, OptionalExtension, params};
use unico_core::AppId;

use crate::error::StoreError;
use crate::sessions::{ConsoleSession, SessionLimits};

/// Inside the writer: see [`crate::Store::start_session`].
pub fn start(
    c: &Connection,
    token_hash: &[u8; 32],
    session: &ConsoleSession,
    now: i64,
    limits: &SessionLimits,
) -> Result<(), StoreError> {
    c.execute(
        "DELETE FROM console_sessions WHERE last_used <= ?1 OR started <= ?2",
        params![
            now.saturating_sub(limits.idle_ms),
            now.saturating_sub(limits.max_age_ms)
        ],
    )?;
    let app = session.app.map(|a| a.0);
    // Each owner's oldest sessions, as many as keep one place free under its bound.
    c.execute(
        "DELETE FROM console_sessions WHERE id IN (
             SELECT id FROM console_sessions WHERE key_hash = ?1 ORDER BY id
             LIMIT max(0, (SELECT count(*) FROM console_sessions WHERE key_hash = ?1) - ?2 + 1))",
        params![&session.key_hash[..], bound(limits.per_key)],
    )?;
    c.execute(
        "DELETE FROM console_sessions WHERE id IN (
             SELECT id FROM console_sessions WHERE app_id IS ?1 ORDER BY id
             LIMIT max(0, (SELECT count(*) FROM console_sessions WHERE app_id IS ?1) - ?2 + 1))",
        params![app, bound(limits.per_app)],
    )?;
    let held: i64 = c.query_row("SELECT count(*) FROM console_sessions", [], |r| r.get(0))?;
    if held >= bound(limits.total) {
        return Err(full());
    }
    c.execute(
        "INSERT INTO console_sessions (token_hash, key_hash, app_id, csrf, started, last_used)
         VALUES (?1, ?2, ?3, ?4, ?5, ?5)",
        params![
            &token_hash[..],
            &session.key_hash[..],
            app,
            session.csrf,
            now
        ],
    )?;
    Ok(())
}

pub fn bound(n: usize) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

pub fn full() -> StoreError {
    StoreError::Limit("every console session place is taken by a live session".into())
}

/// A stored session and its two instants.
pub struct Stored {
    pub session: ConsoleSession,
    pub started: i64,
    pub last_used: i64,
}

/// The session stored under `token_hash`, expired or not.
pub fn find(c: &Connection, token_hash: &[u8; 32]) -> Result<Option<Stored>, StoreError> {
    let row = c
        .prepare_cached(
            "SELECT key_hash, app_id, csrf, started, last_used FROM console_sessions
             WHERE token_hash = ?1",
        )?
        .query_row([&token_hash[..]], |r| {
            Ok((
                r.get::<_, Vec<u8>>(0)?,
                r.get::<_, Option<i64>>(1)?,
                r.get::<_, String>(2)?,
                r.get::<_, i64>(3)?,
                r.get::<_, i64>(4)?,
            ))
        })
        .optional()?;
    let Some((key_hash, app, csrf, started, last_used)) = row else {
        return Ok(None);
    };
    Ok(Some(Stored {
        session: ConsoleSession {
            key_hash: key_hash_of(&key_hash)?,
            app: app.map(AppId),
            csrf,
        },
        started,
        last_used,
    }))
}

/// A stored key hash, which must be 32 bytes.
pub fn key_hash_of(bytes: &[u8]) -> Result<[u8; 32], StoreError> {
    bytes.try_into().map_err(|_| {
        StoreError::Internal(format!(
            "a stored console session's key hash has {} bytes, not 32",
            bytes.len()
        ))
    })
}

/// Inside the writer: records a use at `now`, or drops the session if it has expired by
/// then (answers whether it is live).
pub fn touch(
    c: &Connection,
    token_hash: &[u8; 32],
    now: i64,
    limits: &SessionLimits,
) -> Result<bool, StoreError> {
    let Some(stored) = find(c, token_hash)? else {
        return Ok(false);
    };
    if limits.expired(stored.started, stored.last_used, now) {
        c.execute(
            "DELETE FROM console_sessions WHERE token_hash = ?1",
            [&token_hash[..]],
        )?;
        return Ok(false);
    }
    c.execute(
        "UPDATE console_sessions SET last_used = max(last_used, ?2) WHERE token_hash = ?1",
        params![&token_hash[..], now],
    )?;
    Ok(true)
}
