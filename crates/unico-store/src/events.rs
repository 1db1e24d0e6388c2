//! What the store takes and gives for interactions: new events, the outcome of each, the
//! timeline's query and page, and changes to event types. Backend-independent.

use unico_core::{Channel, CustomerId, Event, EventCode, Properties, PropertyType};

/// One event to store.
#[derive(Debug, Clone, PartialEq)]
pub struct NewEvent {
    /// The sender's idempotency key: an event whose key the application already holds is
    /// not stored again (answered as a duplicate), whatever else it says.
    pub event_id: Option<String>,
    /// The customer; one that does not exist is created (with no fields). An alias
    /// (a merged customerId) stands for its survivor.
    pub customer_id: CustomerId,
    /// When set, the event belongs to whoever holds this identity instead, and
    /// `customer_id` is not read ([`crate::ByIdentity`]).
    pub by_identity: Option<Box<crate::identities::ByIdentity>>,
    pub event_type: EventCode,
    pub channel: Channel,
    pub device_id: Option<String>,
    pub timestamp: i64,
    pub properties: Properties,
}

/// What happened to one stored event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EventOutcome {
    /// The stored event's id (for a duplicate, the id of the event stored first).
    pub id: i64,
    /// The key was seen before: nothing was written.
    pub duplicate: bool,
    /// The event created its customer.
    pub customer_created: bool,
}

/// A page request of one customer's timeline: newest first (time, then id, descending).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct EventQuery {
    /// Only these types (all when empty).
    pub types: Vec<EventCode>,
    /// Only these channels (all when empty).
    pub channels: Vec<Channel>,
    /// Only events at or after this instant.
    pub from: Option<i64>,
    /// Only events before this instant (exclusive).
    pub to: Option<i64>,
    /// Start after this position (the `next` of the previous page): (timestamp, id).
    pub after: Option<(i64, i64)>,
    pub limit: usize,
}

/// One page of a timeline and where the next starts (`None` on the last page).
#[derive(Debug, Clone, PartialEq)]
pub struct EventPage {
    pub events: Vec<Event>,
    pub next: Option<(i64, i64)>,
}

/// What a customer's events add to the profile: when the customer was first and last
/// seen, on which channels, and how many events are held.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Activity {
    pub events: u64,
    pub first_seen: Option<i64>,
    pub last_seen: Option<i64>,
    /// Sorted.
    pub channels: Vec<Channel>,
}

/// A change to an event type; `None` leaves that part as it is.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct EventTypePatch {
    pub name: Option<String>,
    pub retention_days: Option<u32>,
    pub enabled: Option<bool>,
    pub properties: Option<Vec<(String, PropertyType)>>,
}

/// The instance metadata key holding whether `app` registers unknown event types on first
/// sight ("true") instead of refusing their events (the default).
pub fn auto_register_key(app: unico_core::AppId) -> String {
    format!("app.{}.auto_register_event_types", app.0)
}

/// The ids of events, as sorted, disjoint inclusive ranges (a batch's ids are usually one).
pub fn id_ranges(ids: &mut [i64]) -> Vec<(i64, i64)> {
    ids.sort_unstable();
    let mut out: Vec<(i64, i64)> = Vec::new();
    for &id in ids.iter() {
        match out.last_mut() {
            Some((_, hi)) if *hi + 1 >= id => *hi = (*hi).max(id),
            _ => out.push((id, id)),
        }
    }
    out
}

/// Ranges of ids (inclusive) as sorted, disjoint ranges, adjacent ones joined.
pub fn merge_ranges(mut ranges: Vec<(i64, i64)>) -> Vec<(i64, i64)> {
    ranges.sort_unstable();
    let mut out: Vec<(i64, i64)> = Vec::with_capacity(ranges.len());
    for (lo, hi) in ranges {
        match out.last_mut() {
            Some((_, last)) if *last + 1 >= lo => *last = (*last).max(hi),
            _ => out.push((lo, hi)),
        }
    }
    out
}

/// Ids gathered one by one (or a batch at a time) into ranges for the change log: an id
/// next to the last range's end extends it, so ids a writer hands out in order make one
/// range however many there are.
#[derive(Default)]
pub(crate) struct IdRanges {
    ranges: Vec<(i64, i64)>,
}

impl IdRanges {
    pub(crate) fn push(&mut self, id: i64) {
        match self.ranges.last_mut() {
            Some((lo, hi)) if *lo <= id && id <= *hi + 1 => *hi = (*hi).max(id),
            _ => self.ranges.push((id, id)),
        }
    }

    pub(crate) fn extend(&mut self, ids: &[i64]) {
        for &id in ids {
            self.push(id);
        }
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.ranges.is_empty()
    }

    /// The smallest and the largest id gathered.
    pub(crate) fn span(&self) -> Option<(i64, i64)> {
        let lo = self.ranges.iter().map(|r| r.0).min()?;
        let hi = self.ranges.iter().map(|r| r.1).max()?;
        Some((lo, hi))
    }

    /// Sorted and disjoint, whatever order the ids came in.
    pub(crate) fn into_ranges(self) -> Vec<(i64, i64)> {
        merge_ranges(self.ranges)
    }
}

/// Declared properties as stored: `name:type` lines.
pub(crate) fn properties_text(properties: &[(String, PropertyType)]) -> String {
    properties
        .iter()
        .map(|(n, t)| format!("{n}:{}\n", t.as_str()))
        .collect()
}

pub(crate) fn parse_properties_text(text: &str) -> Vec<(String, PropertyType)> {
    text.lines()
        .filter_map(|line| {
            let (name, ty) = line.rsplit_once(':')?;
            Some((name.to_owned(), PropertyType::parse(ty).ok()?))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_gather_into_sorted_disjoint_ranges() {
        let mut r = IdRanges::default();
        r.extend(&[1, 2, 3, 5]);
        r.extend(&[6, 7, 10]);
        r.extend(&[4, 8]);
        assert_eq!(r.into_ranges(), vec![(1, 8), (10, 10)]);
        assert!(IdRanges::default().into_ranges().is_empty());
    }

    #[test]
    fn ids_fold_into_ranges() {
        assert_eq!(
            id_ranges(&mut [5, 3, 4, 9, 10, 1]),
            vec![(1, 1), (3, 5), (9, 10)]
        );
        assert_eq!(id_ranges(&mut []), Vec::<(i64, i64)>::new());
        assert_eq!(id_ranges(&mut [2, 2]), vec![(2, 2)]);
        assert_eq!(
            merge_ranges(vec![(9, 10), (1, 3), (4, 5), (2, 2), (12, 12)]),
            vec![(1, 5), (9, 10), (12, 12)]
        );
    }
}
