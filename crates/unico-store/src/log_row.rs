//! What every backend shares of the change log: an entry's row form (a kind code and the
//! columns each kind fills) and the in-process head that readers wait on.
//!
//! A row per change. Customers carry their whole state after the change (the customerId,
//! times and the same value blob as the customers table), so applying an entry twice is
//! harmless; a schema carries its fields as text lines, a time zone its name.

use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use unico_core::{
    AppId, Channel, Computed, Customer, CustomerId, EventCode, EventType, EventTypes, FieldDef,
    FieldId, FieldName, FieldType, PropertyType, Schema, TimeZoneName,
};

use crate::changes::{Before, Change};
use crate::codec;
use crate::error::StoreError;

/// Turns a customer's earlier log entries into plain deletions of it (kind 2), without its
/// customerId or values: what erasing a customer leaves of them. A follower replaying them
/// removes the customer early, which the entry erasing it does anyway. Parameters: the
/// application and the customer's internal id (`$1`, `$2`: SQLite numbers them in order
/// of appearance too, so both backends run this text).
pub(crate) const SCRUB_CUSTOMER_ENTRIES: &str = "UPDATE change_log SET kind = 2, customer_id = NULL, created_at = NULL, updated_at = NULL, data = NULL, old = NULL, text = NULL WHERE app_id = $1 AND customer = $2 AND kind IN (1, 7, 8)";

const CUSTOMER: i64 = 1;
const DELETED: i64 = 2;
const SCHEMA: i64 = 3;
const TIME_ZONE: i64 = 4;
const APP_DELETED: i64 = 5;
const BULK: i64 = 6;
/// A customer created by the change (entries of kind [`CUSTOMER`] do not say).
const CUSTOMER_CREATED: i64 = 7;
/// A customer updated by the change, its previous values in `old`.
const CUSTOMER_UPDATED: i64 = 8;
/// Events stored: their id ranges in `text` (`lo-hi` lines).
const EVENTS: i64 = 9;
/// Events of one type removed: `text` is `before<TAB>code`.
const EVENTS_REMOVED: i64 = 10;
/// A standing subscription changed (`text`: 1 or 0, a tab, the channel).
const SUBSCRIPTION: i64 = 11;
/// A customer erased (`customer` only, like [`DELETED`]).
const ERASED: i64 = 12;
/// Customers written at once (an import): their id ranges in `text` (`lo-hi` lines).
const CUSTOMERS: i64 = 13;

/// One change as the columns of its log row (besides its sequence number and time).
#[derive(Debug, Default)]
pub(crate) struct EntryRow {
    pub app: i64,
    pub kind: i64,
    /// The customer's id (a customer or a deleted customer).
    pub customer: Option<i64>,
    pub customer_id: Option<String>,
    pub created_at: Option<i64>,
    pub updated_at: Option<i64>,
    /// The customer's values, in the [`codec`] format.
    pub data: Option<Vec<u8>>,
    /// A schema's fields or a time zone's name.
    pub text: Option<String>,
    /// An updated customer's values before the change, in the [`codec`] format.
    pub old: Option<Vec<u8>>,
}

impl EntryRow {
    pub(crate) fn of(change: &Change) -> EntryRow {
        let app = change.app().0;
        match change {
            Change::Customer {
                customer, before, ..
            } => EntryRow {
                app,
                kind: match before {
                    Before::Created => CUSTOMER_CREATED,
                    Before::Values(_) => CUSTOMER_UPDATED,
                    Before::Unknown => CUSTOMER,
                },
                customer: Some(customer.id),
                customer_id: Some(customer.customer_id.as_str().to_owned()),
                created_at: Some(customer.created_at),
                updated_at: Some(customer.updated_at),
                data: Some(codec::encode(&customer.fields)),
                text: None,
                old: match before {
                    Before::Values(values) => Some(codec::encode(values)),
                    _ => None,
                },
            },
            Change::CustomerDeleted { id, .. } => EntryRow {
                app,
                kind: DELETED,
                customer: Some(*id),
                ..EntryRow::default()
            },
            Change::CustomerErased { id, .. } => EntryRow {
                app,
                kind: ERASED,
                customer: Some(*id),
                ..EntryRow::default()
            },
            Change::Schema { schema, .. } => EntryRow {
                app,
                kind: SCHEMA,
                text: Some(schema_text(schema)),
                ..EntryRow::default()
            },
            Change::TimeZone { timezone, .. } => EntryRow {
                app,
                kind: TIME_ZONE,
                text: Some(timezone.as_str().to_owned()),
                ..EntryRow::default()
            },
            Change::AppDeleted { .. } => EntryRow {
                app,
                kind: APP_DELETED,
                ..EntryRow::default()
            },
            Change::Bulk { .. } => EntryRow {
                app,
                kind: BULK,
                ..EntryRow::default()
            },
            Change::Events { ranges, .. } => EntryRow {
                app,
                kind: EVENTS,
                text: Some(ranges_text(ranges)),
                ..EntryRow::default()
            },
            Change::Customers { ranges, .. } => EntryRow {
                app,
                kind: CUSTOMERS,
                text: Some(ranges_text(ranges)),
                ..EntryRow::default()
            },
            Change::EventsRemoved { event, before, .. } => EntryRow {
                app,
                kind: EVENTS_REMOVED,
                text: Some(format!("{before}\t{event}")),
                ..EntryRow::default()
            },
            Change::Subscription {
                customer,
                channel,
                subscribed,
                ..
            } => EntryRow {
                app,
                kind: SUBSCRIPTION,
                customer: Some(*customer),
                text: Some(format!("{}\t{channel}", u8::from(*subscribed))),
                ..EntryRow::default()
            },
        }
    }

    /// The change this row holds; `seq` names the entry in errors.
    pub(crate) fn into_change(self, seq: u64) -> Result<Change, StoreError> {
        let bad = |what: &str| StoreError::Internal(format!("log entry {seq}: {what}"));
        let app = AppId(self.app);
        Ok(match self.kind {
            CUSTOMER | CUSTOMER_CREATED | CUSTOMER_UPDATED => {
                let before = match (self.kind, &self.old) {
                    (CUSTOMER_CREATED, _) => Before::Created,
                    (CUSTOMER_UPDATED, Some(old)) => Before::Values(codec::decode(old)?),
                    (CUSTOMER_UPDATED, None) => return Err(bad("the previous values are missing")),
                    _ => Before::Unknown,
                };
                let (Some(id), Some(cid), Some(created_at), Some(updated_at), Some(data)) = (
                    self.customer,
                    self.customer_id,
                    self.created_at,
                    self.updated_at,
                    self.data,
                ) else {
                    return Err(bad("a customer's column is missing"));
                };
                Change::Customer {
                    app,
                    customer: Customer {
                        id,
                        customer_id: CustomerId::parse(&cid).map_err(|_| bad("customerId"))?,
                        created_at,
                        updated_at,
                        fields: codec::decode(&data)?,
                    },
                    before,
                }
            }
            DELETED => Change::CustomerDeleted {
                app,
                id: self
                    .customer
                    .ok_or_else(|| bad("the customer is missing"))?,
            },
            ERASED => Change::CustomerErased {
                app,
                id: self
                    .customer
                    .ok_or_else(|| bad("the customer is missing"))?,
            },
            SCHEMA => Change::Schema {
                app,
                schema: parse_schema(&self.text.ok_or_else(|| bad("the schema is missing"))?)?,
            },
            TIME_ZONE => Change::TimeZone {
                app,
                timezone: TimeZoneName::parse(
                    &self.text.ok_or_else(|| bad("the time zone is missing"))?,
                )
                .map_err(|_| bad("time zone"))?,
            },
            APP_DELETED => Change::AppDeleted { app },
            BULK => Change::Bulk { app },
            EVENTS => {
                let text = self.text.ok_or_else(|| bad("the event ids are missing"))?;
                let ranges = parse_ranges(&text).ok_or_else(|| bad("event ids"))?;
                Change::Events { app, ranges }
            }
            CUSTOMERS => {
                let text = self
                    .text
                    .ok_or_else(|| bad("the customer ids are missing"))?;
                let ranges = parse_ranges(&text).ok_or_else(|| bad("customer ids"))?;
                Change::Customers { app, ranges }
            }
            EVENTS_REMOVED => {
                let text = self.text.ok_or_else(|| bad("the removal is missing"))?;
                let (before, code) = text.split_once('\t').ok_or_else(|| bad("removal"))?;
                Change::EventsRemoved {
                    app,
                    event: EventCode::parse(code).map_err(|_| bad("event type"))?,
                    before: before.parse().map_err(|_| bad("removal time"))?,
                }
            }
            SUBSCRIPTION => {
                let text = self
                    .text
                    .ok_or_else(|| bad("the subscription is missing"))?;
                let (flag, channel) = text.split_once('\t').ok_or_else(|| bad("subscription"))?;
                Change::Subscription {
                    app,
                    customer: self
                        .customer
                        .ok_or_else(|| bad("the customer is missing"))?,
                    channel: Channel::parse(channel).map_err(|_| bad("channel"))?,
                    subscribed: flag == "1",
                }
            }
            _ => return Err(bad("unknown kind")),
        })
    }
}

/// Event type lines of a logged schema start with this (field lines with a number).
const EVENT_TYPE_LINE: &str = "E\t";
/// A computed field's definition follows its field's line, on a line starting with this,
/// then the field's id.
const COMPUTED_LINE: &str = "C\t";

/// The channels an application declared for subscriptions, on one line starting with this.
const CHANNELS_LINE: &str = "S\t";

fn schema_text(schema: &Schema) -> String {
    let mut out = String::new();
    if !schema.declared_channels().is_empty() {
        let names: Vec<&str> = schema
            .declared_channels()
            .iter()
            .map(Channel::as_str)
            .collect();
        out.push_str(&format!("{CHANNELS_LINE}{}\n", names.join(",")));
    }
    for t in schema.event_types().all() {
        let props: Vec<String> = t
            .properties
            .iter()
            .map(|(n, ty)| format!("{n}:{}", ty.as_str()))
            .collect();
        out.push_str(&format!(
            "{EVENT_TYPE_LINE}{}\t{}\t{}\t{}\t{}\t{}\n",
            t.code,
            t.retention_days,
            u8::from(t.enabled),
            t.created_at,
            props.join(","),
            t.name
        ));
    }
    for f in schema.fields() {
        out.push_str(&format!(
            "{}\t{}\t{}\t{}\n",
            f.id.0,
            f.field_type.as_str(),
            f.created_at,
            f.name.as_str()
        ));
        if let Some(c) = &f.computed {
            out.push_str(&format!("{COMPUTED_LINE}{}\t{}\n", f.id.0, c.to_storage()));
        }
    }
    out
}

fn parse_schema(text: &str) -> Result<Schema, StoreError> {
    let bad = || StoreError::Internal("a logged schema is unreadable".into());
    let mut fields = Vec::new();
    let mut events = Vec::new();
    let mut channels = Vec::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix(CHANNELS_LINE) {
            for c in rest.split(',').filter(|c| !c.is_empty()) {
                channels.push(Channel::parse(c).map_err(|_| bad())?);
            }
            continue;
        }
        if let Some(rest) = line.strip_prefix(EVENT_TYPE_LINE) {
            let parts: Vec<&str> = rest.splitn(6, '\t').collect();
            let [code, retention, enabled, created, props, name] = parts[..] else {
                return Err(bad());
            };
            events.push(EventType {
                code: EventCode::parse(code).map_err(|_| bad())?,
                name: name.to_owned(),
                retention_days: retention.parse().map_err(|_| bad())?,
                enabled: enabled == "1",
                properties: props
                    .split(',')
                    .filter(|p| !p.is_empty())
                    .map(|p| {
                        let (n, t) = p.rsplit_once(':').ok_or_else(bad)?;
                        Ok((n.to_owned(), PropertyType::parse(t).map_err(|_| bad())?))
                    })
                    .collect::<Result<_, StoreError>>()?,
                created_at: created.parse().map_err(|_| bad())?,
            });
            continue;
        }
        if let Some(rest) = line.strip_prefix(COMPUTED_LINE) {
            let (id, def) = rest.split_once('\t').ok_or_else(bad)?;
            let id = FieldId(id.parse().map_err(|_| bad())?);
            let field = fields
                .iter_mut()
                .find(|f: &&mut FieldDef| f.id == id)
                .ok_or_else(bad)?;
            field.computed = Some(Computed::from_storage(def).ok_or_else(bad)?);
            continue;
        }
        let mut parts = line.splitn(4, '\t');
        let (Some(id), Some(ty), Some(created), Some(name)) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(bad());
        };
        fields.push(FieldDef {
            id: FieldId(id.parse().map_err(|_| bad())?),
            field_type: FieldType::parse(ty).map_err(|_| bad())?,
            created_at: created.parse().map_err(|_| bad())?,
            name: FieldName::parse(name).map_err(|_| bad())?,
            computed: None,
        });
    }
    Ok(Schema::new(fields)
        .with_event_types(EventTypes::new(events))
        .with_declared_channels(channels))
}

/// The sequence number of the last committed change this process knows of, shared by the
/// code that moves it after each commit and the readers that wait for it; and the one a
/// commit in progress will reach (see [`Head::promise`]).
#[derive(Default)]
pub(crate) struct Head {
    seq: Mutex<u64>,
    moved: Condvar,
    promised: std::sync::atomic::AtomicU64,
}

impl Head {
    pub(crate) fn new(seq: u64) -> Arc<Head> {
        Arc::new(Head {
            seq: Mutex::new(seq),
            moved: Condvar::new(),
            promised: std::sync::atomic::AtomicU64::new(seq),
        })
    }

    pub(crate) fn get(&self) -> u64 {
        self.seq.lock().map_or(0, |s| *s)
    }

    /// Called just before a commit that logs up to `seq`. Other connections may see the
    /// commit's effects before [`Head::advance`] runs after it (a reader polling an
    /// import's record saw it succeeded, and a count right after did not wait for the
    /// import): the horizon covers the commit from before it becomes visible.
    pub(crate) fn promise(&self, seq: u64) {
        self.promised
            .fetch_max(seq, std::sync::atomic::Ordering::SeqCst);
    }

    /// Called when the commit promised with [`Head::promise`]`(seq)` failed: the horizon
    /// goes back to the head, unless another commit promised more meanwhile (it withdraws
    /// or advances for itself).
    pub(crate) fn withdraw(&self, seq: u64) {
        let head = self.get();
        let _ = self.promised.compare_exchange(
            seq,
            head,
            std::sync::atomic::Ordering::SeqCst,
            std::sync::atomic::Ordering::SeqCst,
        );
    }

    /// Commits through `commit` a transaction that logged up to `seq`, promising the
    /// horizon before and withdrawing it if the commit fails (the head itself is moved by
    /// the caller once the commit returned).
    pub(crate) fn committing<E>(
        &self,
        seq: Option<u64>,
        commit: impl FnOnce() -> Result<(), E>,
    ) -> Result<(), E> {
        if let Some(seq) = seq {
            self.promise(seq);
        }
        let done = commit();
        if let (Err(_), Some(seq)) = (&done, seq) {
            self.withdraw(seq);
        }
        done
    }

    /// At or past every change a reader of the database may already see: the head, or
    /// the sequence number of a commit in progress.
    pub(crate) fn horizon(&self) -> u64 {
        let promised = self.promised.load(std::sync::atomic::Ordering::SeqCst);
        promised.max(self.get())
    }

    /// Called after a commit that logged up to `seq` (or on news of one); the head never
    /// moves back.
    pub(crate) fn advance(&self, seq: u64) {
        if let Ok(mut head) = self.seq.lock() {
            if seq > *head {
                *head = seq;
            }
            self.moved.notify_all();
        }
    }

    /// Waits until the head passes `after` or `timeout` passes; answers the head.
    pub(crate) fn wait_past(&self, after: u64, timeout: Duration) -> u64 {
        let deadline = Instant::now() + timeout;
        let Ok(mut head) = self.seq.lock() else {
            return 0;
        };
        while *head <= after {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            match self.moved.wait_timeout(head, left) {
                Ok((h, _)) => head = h,
                Err(_) => return 0,
            }
        }
        *head
    }
}

/// Id ranges as stored in an entry's `text`: one `lo-hi` line each.
fn ranges_text(ranges: &[(i64, i64)]) -> String {
    ranges
        .iter()
        .map(|(lo, hi)| format!("{lo}-{hi}\n"))
        .collect()
}

/// The ranges of [`ranges_text`]; `None` if a line is not one.
fn parse_ranges(text: &str) -> Option<Vec<(i64, i64)>> {
    text.lines()
        .map(|line| {
            let (lo, hi) = line.split_once('-')?;
            Some((lo.parse().ok()?, hi.parse().ok()?))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A commit is within the horizon from before it can be seen until after the head
    /// moves; a failed one gives its promise back, without undoing a later promise.
    #[test]
    fn the_horizon_covers_a_commit_from_before_it_is_visible() {
        let head = Head::new(4);
        assert_eq!(head.horizon(), 4);
        let mut seen_during = 0;
        head.committing(Some(5), || {
            seen_during = head.horizon();
            Ok::<_, ()>(())
        })
        .unwrap();
        assert_eq!(seen_during, 5);
        assert_eq!(head.get(), 4, "the head moves only when the caller says so");
        head.advance(5);
        assert_eq!((head.get(), head.horizon()), (5, 5));

        let failed = head.committing(Some(6), || Err::<(), _>("disk full"));
        assert_eq!(failed, Err("disk full"));
        assert_eq!(head.horizon(), 5, "a failed commit is not waited for");

        head.promise(8);
        head.promise(7);
        head.withdraw(7);
        assert_eq!(head.horizon(), 8, "another commit's promise stays");
        head.withdraw(8);
        assert_eq!(head.horizon(), 5);
        head.committing(None, || Ok::<_, ()>(())).unwrap();
        assert_eq!(
            head.horizon(),
            5,
            "a commit that logged nothing promises nothing"
        );
    }
}
