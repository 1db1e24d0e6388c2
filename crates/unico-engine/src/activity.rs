//! What a set of customers' events say, for charts: how many events of each type and on
//! each channel in a window, how many per day, and how many of the customers were active
//! since given instants. One pass over the event columns.

use unico_core::{Channel, EventCode};

use crate::index::AppIndex;
use crate::members::Members;

/// The events of a set of customers in a window `[starts[0], now]`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EventActivity {
    /// Events per type in the window, by code.
    pub by_type: Vec<(EventCode, u64)>,
    /// Events per channel in the window, by channel.
    pub by_channel: Vec<(Channel, u64)>,
    /// Events per bucket: bucket `i` holds times in `starts[i] .. starts[i + 1]` (the
    /// last one up to `now`).
    pub per_bucket: Vec<u64>,
    /// For each instant asked, how many of the customers have an event at or after it
    /// (and not after `now`).
    pub active_since: Vec<u64>,
}

impl AppIndex {
    /// Every channel the held events use, sorted.
    pub fn event_channels(&self) -> Vec<Channel> {
        let mut out: Vec<Channel> = self
            .events
            .tables
            .iter()
            .flat_map(|t| t.channel_names.iter().cloned())
            .collect();
        out.sort();
        out.dedup();
        out
    }

    /// The activity of `members` (see [`EventActivity`]): `starts` are the ascending
    /// bucket starts (epoch ms, at least one), `since` the instants to count active
    /// customers from, `now` the end of every window.
    pub fn event_activity(
        &self,
        members: &Members,
        starts: &[i64],
        since: &[i64],
        now: i64,
    ) -> EventActivity {
        let mut out = EventActivity {
            per_bucket: vec![0; starts.len()],
            ..EventActivity::default()
        };
        let from = starts.first().copied().unwrap_or(i64::MAX);
        let earliest_since = since.iter().copied().min().unwrap_or(i64::MAX);
        // Each member's latest event at or before now, when it is recent enough to count.
        let mut last: Vec<i64> = if since.is_empty() {
            Vec::new()
        } else {
            vec![i64::MIN; self.high]
        };
        let mut channels: Vec<(Channel, u64)> = Vec::new();
        for table in &self.events.tables {
            let mut in_window = 0u64;
            let mut per_channel = vec![0u64; table.channel_names.len()];
            for (row, (&slot, &ts)) in table.slots.iter().zip(&table.ts).enumerate() {
                let slot = slot as usize;
                if ts > now || !members.contains(slot) {
                    continue;
                }
                if ts >= earliest_since && ts > last[slot] {
                    last[slot] = ts;
                }
                if ts < from {
                    continue;
                }
                in_window += 1;
                let bucket = starts.partition_point(|&s| s <= ts) - 1;
                out.per_bucket[bucket] += 1;
                if let Some(n) = table
                    .channels
                    .get(row)
                    .and_then(|code| per_channel.get_mut(code as usize))
                {
                    *n += 1;
                }
            }
            if in_window > 0 {
                out.by_type.push((table.code.clone(), in_window));
            }
            for (name, n) in table.channel_names.iter().zip(per_channel) {
                if n == 0 {
                    continue;
                }
                match channels.iter_mut().find(|(c, _)| c == name) {
                    Some((_, total)) => *total += n,
                    None => channels.push((name.clone(), n)),
                }
            }
        }
        out.by_type.sort_by(|a, b| a.0.cmp(&b.0));
        channels.sort_by(|a, b| a.0.cmp(&b.0));
        out.by_channel = channels;
        out.active_since = since
            .iter()
            .map(|&s| last.iter().filter(|&&t| t >= s).count() as u64)
            .collect();
        out
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use unico_core::{Customer, CustomerId, Event, EventCode, Properties, Schema};

    use super::*;

    fn customer(id: i64) -> Customer {
        Customer {
            id,
            customer_id: CustomerId::parse(&format!("c{id}")).unwrap(),
            created_at: 0,
            updated_at: 0,
            fields: Vec::new(),
        }
    }

    fn event(id: i64, customer: i64, code: &str, channel: &str, ts: i64) -> Event {
        Event {
            id,
            customer,
            event_id: None,
            event_type: EventCode::parse(code).unwrap(),
            channel: Channel::parse(channel).unwrap(),
            device_id: None,
            timestamp: ts,
            properties: Properties::default(),
        }
    }

    #[test]
    fn activity_counts_members_events_by_type_channel_bucket_and_recency() {
        let mut index = AppIndex::new(&Schema::new(Vec::new()));
        for id in 1..=3 {
            index.upsert(&customer(id));
        }
        index.add_events(&[
            event(1, 1, "buy", "web", 100),
            event(2, 1, "buy", "pos", 250),
            event(3, 2, "open", "email", 120),
            event(4, 2, "open", "email", 50), // before the window: only recency
            event(5, 3, "buy", "web", 260),
            event(6, 1, "open", "email", 400), // after now: not counted
        ]);
        let all = index.all();
        let a = index.event_activity(&all, &[100, 200], &[110, 255], 300);
        assert_eq!(
            a.by_type,
            vec![
                (EventCode::parse("buy").unwrap(), 3),
                (EventCode::parse("open").unwrap(), 1)
            ]
        );
        assert_eq!(a.per_bucket, vec![2, 2]);
        let ch = |c: &str| Channel::parse(c).unwrap();
        assert_eq!(
            a.by_channel,
            vec![(ch("email"), 1), (ch("pos"), 1), (ch("web"), 2)]
        );
        // Active since 110: customers 1 (250), 2 (120), 3 (260); since 255: customer 3.
        assert_eq!(a.active_since, vec![3, 1]);
        assert_eq!(
            index.event_channels(),
            vec![ch("email"), ch("pos"), ch("web")]
        );
        // Only the members asked about.
        index.remove(3);
        let a = index.event_activity(&index.all(), &[100, 200], &[110], 300);
        assert_eq!(a.per_bucket, vec![2, 1]);
        assert_eq!(a.active_since, vec![2]);
    }
}
