//! Conformance cases for console sessions: bounds per key, per application and in all,
//! idle and absolute expiry, and that a session ended or expired is gone.

use unico_core::AppId;

use super::app;
use crate::error::StoreError;
use crate::sessions::{ConsoleSession, SessionLimits};
use crate::store::Store;

/// Small bounds, so the cases reach them.
const LIMITS: SessionLimits = SessionLimits {
    idle_ms: 1_000,
    max_age_ms: 5_000,
    touch_ms: 100,
    per_key: 3,
    per_app: 5,
    total: 8,
};

fn session(key: u8, app: Option<AppId>) -> ConsoleSession {
    ConsoleSession {
        key_hash: [key; 32],
        app,
        csrf: format!("csrf-{key}"),
    }
}

/// A token's hash from a number.
fn token(n: u32) -> [u8; 32] {
    let mut t = [0xA5; 32];
    t[..4].copy_from_slice(&n.to_le_bytes());
    t
}

fn live(store: &dyn Store, n: u32, now: i64) -> Option<ConsoleSession> {
    store.use_session(&token(n), now, &LIMITS).unwrap()
}

pub fn console_sessions_are_found_until_ended(store: &dyn Store) {
    let a = app(store, "A");
    store
        .start_session(&token(1), &session(1, Some(a)), 10, &LIMITS)
        .unwrap();
    store
        .start_session(&token(2), &session(0, None), 10, &LIMITS)
        .unwrap();
    assert_eq!(live(store, 1, 20), Some(session(1, Some(a))));
    assert_eq!(live(store, 2, 20), Some(session(0, None)));
    assert_eq!(live(store, 3, 20), None, "no such token");
    store.end_session(&token(1)).unwrap();
    store.end_session(&token(3)).unwrap();
    assert_eq!(live(store, 1, 30), None);
    assert_eq!(live(store, 2, 30), Some(session(0, None)));
    // A session goes with its application.
    store
        .start_session(&token(4), &session(1, Some(a)), 40, &LIMITS)
        .unwrap();
    store.delete_app(a).unwrap();
    assert_eq!(live(store, 4, 50), None);
}

pub fn console_sessions_end_when_idle_and_at_their_maximum_age(store: &dyn Store) {
    store
        .start_session(&token(1), &session(0, None), 0, &LIMITS)
        .unwrap();
    store
        .start_session(&token(2), &session(0, None), 0, &LIMITS)
        .unwrap();
    // "busy" is used every half idle period; "idle" never.
    let mut now = 0;
    while now + 500 < LIMITS.max_age_ms {
        now += 500;
        assert!(live(store, 2, now).is_some(), "used, so not idle at {now}");
    }
    assert_eq!(live(store, 1, LIMITS.idle_ms), None, "idle too long");
    assert_eq!(live(store, 2, LIMITS.max_age_ms), None, "too old");
    // A use within `touch_ms` of the last recorded one is not recorded.
    store
        .start_session(&token(3), &session(0, None), 10_000, &LIMITS)
        .unwrap();
    assert!(live(store, 3, 10_050).is_some());
    assert_eq!(
        live(store, 3, 10_000 + LIMITS.idle_ms),
        None,
        "the use at 10 050 was within touch_ms of the start"
    );
    // An ended session stays ended, even used again earlier than it expired.
    assert_eq!(live(store, 1, 0), None);
}

pub fn console_sessions_are_bounded_per_key_application_and_in_all(store: &dyn Store) {
    let a = app(store, "A");
    let b = app(store, "B");
    store
        .start_session(&token(100), &session(0, None), 0, &LIMITS)
        .unwrap();
    store
        .start_session(&token(101), &session(9, Some(b)), 0, &LIMITS)
        .unwrap();
    // Past its bound, a key ends its own oldest sessions only.
    for n in 0..7 {
        store
            .start_session(&token(n), &session(1, Some(a)), 0, &LIMITS)
            .unwrap();
    }
    let held: Vec<u32> = (0..7).filter(|&n| live(store, n, 0).is_some()).collect();
    assert_eq!(held, vec![4, 5, 6], "the key's newest sessions");
    // Past its bound, an application ends its own oldest sessions only, whatever the key.
    for n in 10..14 {
        store
            .start_session(&token(n), &session(n as u8, Some(a)), 0, &LIMITS)
            .unwrap();
    }
    let held: Vec<u32> = (0..14).filter(|&n| live(store, n, 0).is_some()).collect();
    assert_eq!(
        held,
        vec![6, 10, 11, 12, 13],
        "the application's newest sessions"
    );
    assert!(
        live(store, 100, 0).is_some(),
        "the admin key's session stays"
    );
    assert!(live(store, 101, 0).is_some(), "another application's stays");
    // In all: 7 live sessions; one more fits, the next is refused and ends nobody's.
    store
        .start_session(&token(102), &session(8, Some(b)), 0, &LIMITS)
        .unwrap();
    let refused = store.start_session(&token(103), &session(7, None), 0, &LIMITS);
    assert!(matches!(refused, Err(StoreError::Limit(_))), "{refused:?}");
    assert_eq!(live(store, 103, 0), None);
    let held = [6, 10, 11, 12, 13, 100, 101, 102];
    assert!(held.iter().all(|&n| live(store, n, 0).is_some()));
    // Once sessions have expired, their places are taken again.
    store
        .start_session(&token(103), &session(7, None), LIMITS.idle_ms, &LIMITS)
        .unwrap();
    assert_eq!(live(store, 103, LIMITS.idle_ms), Some(session(7, None)));
}
