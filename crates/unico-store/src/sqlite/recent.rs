//! The events the writer just committed through `insert_events`, kept in memory for the
//! change log's followers: a follower applying a logged batch asks for exactly those ids
//! a moment after the commit, and taking them from here spares it reading the blocks
//! back, decoding them and parsing every event's properties again (over half of what the
//! segment engines spent under `POST …/events`).
//!
//! What is held is always what the store holds: a commit's events are published after it
//! is durable and before the log's head moves (so before any follower can ask), each with
//! the whole id interval its job was given (an interval holds no other job's events), and
//! a commit that removes or moves any event (a customer deleted, erased or merged away,
//! retention, a type deleted, an application deleted, a bulk change) empties the cache
//! instead. A read the cache cannot answer whole is read from the database, so a miss
//! costs nothing but the lookup. Bounded: past [`MAX_HELD`] events the oldest go.

use std::collections::VecDeque;
use std::sync::Mutex;

use unico_core::{AppId, Event};

use crate::changes::Change;

/// Most events held; a follower takes them within milliseconds, so this is only reached
/// when nobody follows an application (no segment engine loaded for it).
pub const MAX_HELD: usize = 65_536;

/// One job's events: every event of any application with an id in `lo..=hi`, ascending.
pub struct Staged {
    pub app: AppId,
    pub lo: i64,
    pub hi: i64,
    pub events: VecDeque<Event>,
}

/// What an import's sink prepared from its events: those of `app` with ids in
/// `lo..=hi` (every event of the store in that interval is the import's).
pub struct Prepared {
    pub app: AppId,
    pub lo: i64,
    pub hi: i64,
    pub payload: Box<dyn std::any::Any + Send>,
}

#[derive(Default)]
pub struct RecentEvents {
    held: Mutex<Held>,
    /// The last import's prepared payload, until a follower takes it. One at most: a
    /// follower takes it a moment after the commit, and a payload is as large as the
    /// import (only kept when the follower's index is loaded).
    prepared: Mutex<Option<Prepared>>,
}

#[derive(Default)]
struct Held {
    runs: VecDeque<Staged>,
    count: usize,
}

/// Whether a committed change removes or moves stored events (or may: a bulk change).
fn touches_stored_events(change: &Change) -> bool {
    matches!(
        change,
        Change::EventsRemoved { .. }
            | Change::CustomerDeleted { .. }
            | Change::CustomerErased { .. }
            | Change::AppDeleted { .. }
            | Change::Bulk { .. }
    )
}

impl RecentEvents {
    /// Publishes the events a committed group stored, given the group's changes.
    pub fn publish(&self, staged: Vec<Staged>, changes: &[Change]) {
        let Ok(mut held) = self.held.lock() else {
            return;
        };
        if changes.iter().any(touches_stored_events) {
            held.runs.clear();
            held.count = 0;
            return;
        }
        for run in staged {
            if run.events.is_empty() || run.events.len() > MAX_HELD {
                continue;
            }
            held.count += run.events.len();
            held.runs.push_back(run);
        }
        while held.count > MAX_HELD {
            match held.runs.pop_front() {
                Some(run) => held.count -= run.events.len(),
                None => held.count = 0,
            }
        }
    }

    /// Publishes what a committed group's imports prepared, given the group's changes:
    /// like events, nothing is held past a change that removes or moves stored events.
    pub fn publish_prepared(&self, prepared: Vec<Prepared>, changes: &[Change]) {
        let Ok(mut held) = self.prepared.lock() else {
            return;
        };
        if changes.iter().any(touches_stored_events) {
            *held = None;
            return;
        }
        if let Some(newest) = prepared.into_iter().last() {
            *held = Some(newest);
        }
    }

    /// What was prepared for exactly the events of `app` with ids in `lo..=hi`, handed
    /// over once.
    pub fn take_prepared(
        &self,
        app: AppId,
        lo: i64,
        hi: i64,
    ) -> Option<Box<dyn std::any::Any + Send>> {
        let mut held = self.prepared.lock().ok()?;
        if held
            .as_ref()
            .is_some_and(|p| p.app == app && p.lo == lo && p.hi == hi)
        {
            return held.take().map(|p| p.payload);
        }
        None
    }

    /// The events of `app` with ids in `from..=to`, ascending, at most `limit`, if one
    /// held run covers that interval; they are handed over (a follower reads each once).
    pub fn take(&self, app: AppId, from: i64, to: i64, limit: usize) -> Option<Vec<Event>> {
        let mut held = self.held.lock().ok()?;
        let at = held
            .runs
            .iter()
            .position(|r| r.app == app && r.lo <= from && to <= r.hi)?;
        let run = &mut held.runs[at];
        let mut out = Vec::new();
        let mut dropped = 0;
        while let Some(first) = run.events.front() {
            if first.id < from {
                // Before the interval asked: never asked for again from here.
                run.events.pop_front();
                dropped += 1;
                continue;
            }
            if first.id > to || out.len() == limit {
                break;
            }
            out.extend(run.events.pop_front());
        }
        // What is left starts past what was handed over.
        run.lo = match out.last() {
            Some(last) if out.len() == limit => last.id + 1,
            _ => to.saturating_add(1),
        };
        let emptied = run.events.is_empty();
        held.count -= out.len() + dropped;
        if emptied {
            held.runs.remove(at);
        }
        Some(out)
    }

    /// Events held (for tests).
    #[cfg(test)]
    pub fn held(&self) -> usize {
        self.held.lock().map(|h| h.count).unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use unico_core::{Channel, EventCode, Properties};

    fn event(id: i64) -> Event {
        Event {
            id,
            customer: 1,
            event_id: None,
            event_type: EventCode::parse("view").unwrap(),
            channel: Channel::parse("web").unwrap(),
            device_id: None,
            timestamp: 0,
            properties: Properties::default(),
        }
    }

    fn staged(app: i64, lo: i64, hi: i64, ids: &[i64]) -> Staged {
        Staged {
            app: AppId(app),
            lo,
            hi,
            events: ids.iter().map(|&id| event(id)).collect(),
        }
    }

    fn ids(events: &[Event]) -> Vec<i64> {
        events.iter().map(|e| e.id).collect()
    }

    #[test]
    fn answers_only_an_interval_it_holds_whole_and_hands_it_over_once() {
        let recent = RecentEvents::default();
        // Ids 10..=20 given to one job, 13 and 14 unused (duplicates).
        recent.publish(
            vec![staged(1, 10, 20, &[10, 11, 12, 15, 16, 17, 18, 19, 20])],
            &[],
        );
        // Another application, or an interval reaching past the run: not from here.
        assert!(recent.take(AppId(2), 10, 12, 100).is_none());
        assert!(recent.take(AppId(1), 9, 12, 100).is_none());
        assert!(recent.take(AppId(1), 15, 21, 100).is_none());
        assert_eq!(
            ids(&recent.take(AppId(1), 10, 12, 100).unwrap()),
            [10, 11, 12]
        );
        // Handed over: asked again, the database answers.
        assert!(recent.take(AppId(1), 10, 12, 100).is_none());
        // A limit hands over the first ones; the rest is still held.
        assert_eq!(ids(&recent.take(AppId(1), 13, 20, 2).unwrap()), [15, 16]);
        assert_eq!(
            ids(&recent.take(AppId(1), 17, 20, 100).unwrap()),
            [17, 18, 19, 20]
        );
        assert_eq!(recent.held(), 0);
        assert!(recent.take(AppId(1), 17, 20, 100).is_none());
    }

    #[test]
    fn a_commit_that_removes_events_empties_it_and_the_bound_drops_the_oldest() {
        let recent = RecentEvents::default();
        recent.publish(vec![staged(1, 1, 3, &[1, 2, 3])], &[]);
        recent.publish(
            vec![staged(1, 4, 5, &[4, 5])],
            &[Change::CustomerDeleted {
                app: AppId(1),
                id: 7,
            }],
        );
        assert_eq!(recent.held(), 0);
        assert!(recent.take(AppId(1), 1, 3, 10).is_none());
        assert!(recent.take(AppId(1), 4, 5, 10).is_none());

        let big: Vec<i64> = (1..=MAX_HELD as i64).collect();
        recent.publish(vec![staged(1, 1, MAX_HELD as i64, &big)], &[]);
        let next = MAX_HELD as i64 + 1;
        recent.publish(vec![staged(1, next, next, &[next])], &[]);
        assert_eq!(recent.held(), 1);
        assert!(recent.take(AppId(1), 1, 1, 10).is_none());
        assert_eq!(ids(&recent.take(AppId(1), next, next, 10).unwrap()), [next]);
    }

    fn prepared(app: i64, lo: i64, hi: i64, tag: u32) -> Prepared {
        Prepared {
            app: AppId(app),
            lo,
            hi,
            payload: Box::new(tag),
        }
    }

    fn tag(payload: Option<Box<dyn std::any::Any + Send>>) -> Option<u32> {
        payload.and_then(|p| p.downcast::<u32>().ok()).map(|t| *t)
    }

    #[test]
    fn a_prepared_payload_is_handed_over_once_for_its_exact_interval_and_no_later_than_a_removal() {
        let recent = RecentEvents::default();
        recent.publish_prepared(vec![prepared(1, 10, 20, 7)], &[]);
        // Another application or another interval (even one inside it): not this payload.
        assert_eq!(tag(recent.take_prepared(AppId(2), 10, 20)), None);
        assert_eq!(tag(recent.take_prepared(AppId(1), 10, 19)), None);
        assert_eq!(tag(recent.take_prepared(AppId(1), 11, 20)), None);
        assert_eq!(tag(recent.take_prepared(AppId(1), 10, 20)), Some(7));
        assert_eq!(tag(recent.take_prepared(AppId(1), 10, 20)), None);
        // A newer one replaces an older one nobody took.
        recent.publish_prepared(vec![prepared(1, 21, 30, 8)], &[]);
        recent.publish_prepared(vec![prepared(1, 31, 40, 9)], &[]);
        assert_eq!(tag(recent.take_prepared(AppId(1), 21, 30)), None);
        // A later commit removing events (here with nothing prepared) drops it.
        recent.publish_prepared(
            Vec::new(),
            &[Change::CustomerDeleted {
                app: AppId(1),
                id: 3,
            }],
        );
        assert_eq!(tag(recent.take_prepared(AppId(1), 31, 40)), None);
        // So does one in the same commit.
        recent.publish_prepared(
            vec![prepared(1, 41, 50, 10)],
            &[Change::AppDeleted { app: AppId(1) }],
        );
        assert_eq!(tag(recent.take_prepared(AppId(1), 41, 50)), None);
    }
}
