//! Console sessions on PostgreSQL (see [`crate::sessions`]): one table every server of the
//! database reads, so a browser signed in through one server is signed in on all.
//!
//! Sessions start one at a time (a transaction-level advisory lock, [`SESSION_LOCK`]), so
//! two servers starting sessions of one key at once keep its bound. Sign-ins are
//! rate-limited, so one lock for all of them costs nothing noticeable.

use postgres::GenericClient;
use unico_core::AppId;

use super::conn::{Db, Res};
use super::writes::Wx;
use crate::error::StoreError;
use crate::sessions::{ConsoleSession, SessionLimits};

/// First key of the advisory lock that session starts take turns on.
const SESSION_LOCK: i32 = 0x756e_7373; // "unss"

fn bound(n: usize) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// See [`crate::Store::start_session`].
pub fn start(
    w: &mut Wx<'_, '_>,
    token_hash: &[u8; 32],
    session: &ConsoleSession,
    now: i64,
    limits: &SessionLimits,
) -> Res<()> {
    let db = &mut w.db;
    db.execute("SELECT pg_advisory_xact_lock($1, 0)", &[&SESSION_LOCK])?;
    db.execute(
        "DELETE FROM console_sessions WHERE last_used <= $1 OR started <= $2",
        &[
            &now.saturating_sub(limits.idle_ms),
            &now.saturating_sub(limits.max_age_ms),
        ],
    )?;
    let app = session.app.map(|a| a.0);
    // Each owner's oldest sessions, as many as keep one place free under its bound.
    db.execute(
        "DELETE FROM console_sessions WHERE id IN (
             SELECT id FROM console_sessions WHERE key_hash = $1 ORDER BY id
             LIMIT greatest(0, (SELECT count(*) FROM console_sessions WHERE key_hash = $1) - $2 + 1))",
        &[&&session.key_hash[..], &bound(limits.per_key)],
    )?;
    db.execute(
        "DELETE FROM console_sessions WHERE id IN (
             SELECT id FROM console_sessions WHERE app_id IS NOT DISTINCT FROM $1 ORDER BY id
             LIMIT greatest(0, (SELECT count(*) FROM console_sessions
                                WHERE app_id IS NOT DISTINCT FROM $1) - $2 + 1))",
        &[&app, &bound(limits.per_app)],
    )?;
    let held: i64 = db
        .query_one("SELECT count(*) FROM console_sessions", &[])?
        .try_get(0)?;
    if held >= bound(limits.total) {
        return Err(StoreError::Limit(
            "every console session place is taken by a live session".into(),
        )
        .into());
    }
    db.execute(
        "INSERT INTO console_sessions (token_hash, key_hash, app_id, csrf, started, last_used)
         VALUES ($1, $2, $3, $4, $5, $5)",
        &[
            &&token_hash[..],
            &&session.key_hash[..],
            &app,
            &session.csrf,
            &now,
        ],
    )?;
    Ok(())
}

/// A stored session and its two instants.
pub struct Stored {
    pub session: ConsoleSession,
    pub started: i64,
    pub last_used: i64,
}

/// The session stored under `token_hash`, expired or not.
pub fn find<C: GenericClient>(db: &mut Db<'_, C>, token_hash: &[u8; 32]) -> Res<Option<Stored>> {
    let Some(row) = db.query_opt(
        "SELECT key_hash, app_id, csrf, started, last_used FROM console_sessions
         WHERE token_hash = $1",
        &[&&token_hash[..]],
    )?
    else {
        return Ok(None);
    };
    let key_hash: &[u8] = row.try_get(0)?;
    let key_hash: [u8; 32] = key_hash.try_into().map_err(|_| {
        StoreError::Internal(format!(
            "a stored console session's key hash has {} bytes, not 32",
            key_hash.len()
        ))
    })?;
    Ok(Some(Stored {
        session: ConsoleSession {
            key_hash,
            app: row.try_get::<_, Option<i64>>(1)?.map(AppId),
            csrf: row.try_get(2)?,
        },
        started: row.try_get(3)?,
        last_used: row.try_get(4)?,
    }))
}

/// Records a use at `now`, or drops the session if it has expired by then; answers whether
/// it is live. Decided on the row as this transaction locks it, so a concurrent start
/// that dropped it, or another server's use, is seen.
pub fn touch(
    w: &mut Wx<'_, '_>,
    token_hash: &[u8; 32],
    now: i64,
    limits: &SessionLimits,
) -> Res<bool> {
    let db = &mut w.db;
    let Some(row) = db.query_opt(
        "SELECT started, last_used FROM console_sessions WHERE token_hash = $1 FOR UPDATE",
        &[&&token_hash[..]],
    )?
    else {
        return Ok(false);
    };
    let (started, last_used): (i64, i64) = (row.try_get(0)?, row.try_get(1)?);
    if limits.expired(started, last_used, now) {
        db.execute(
            "DELETE FROM console_sessions WHERE token_hash = $1",
            &[&&token_hash[..]],
        )?;
        return Ok(false);
    }
    db.execute(
        "UPDATE console_sessions SET last_used = greatest(last_used, $2) WHERE token_hash = $1",
        &[&&token_hash[..], &now],
    )?;
    Ok(true)
}
