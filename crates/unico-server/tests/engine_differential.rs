//! The segment engines against the store they follow: random sequences of single writes,
//! deletes, imports (small ones announced customer by customer, large ones as a bulk
//! change that makes the engine rebuild), imports that run while other threads write and
//! delete, events (batches with repeated keys that create customers, NDJSON-style imports
//! kept or not, retention, a type deleted and registered again, events racing with
//! deletes), channel subscriptions (statements arriving in and out of time order, alone or
//! in batch items, creating customers, racing with deletes and erasures), restarts (from a snapshot caught up from the change log, or from a scan) and
//! the log pruned under the engines. The application lives in an odd time zone (+13:45),
//! so event conditions on calendar dates are checked in its days. After every step, every count and
//! member list the engine gives equals the reference evaluator run over the store's own
//! scan of its customers.
//!
//! `PROPTEST_CASES=500 cargo test -p unico-server --release --test engine_differential`
//! runs a longer campaign.

#![allow(clippy::unwrap_used)]

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;

use jiff::tz::TimeZone;
use proptest::prelude::*;
use unico_core::{
    AppId, AppName, CustomerId, FieldChange, FieldDef, FieldName, FieldType, TimeZoneName, Value,
};
use unico_filter::{EvalContext, Facts, Filter, FilterInput, matches_with};
use unico_server::engines::Engines;
use unico_store::postgres::testing::TestDatabase;
use unico_store::{
    EventBatch, ImportBatch, NewEvent, PostgresStore, SqliteStore, Store, UpsertItem,
};

const NOW: i64 = 1_800_000_000_000;
/// Imports of more customers than this reach the engine as one bulk change.
const INCREMENTAL: u64 = 3;
const CUSTOMERS: u8 = 24;

const DAY: i64 = 86_400_000;
/// The application's time zone.
const ZONE: &str = "Pacific/Chatham";

const FILTERS: [&str; 30] = [
    "subscribed email",
    "not subscribed sms and did buy",
    "subscribed sms or n > 2",
    "did buy",
    "did_not open within_last 7d",
    "did buy at_least 2 times within_last 30d",
    "did buy at_most 1 times",
    "did open exactly 2 times within_last 40d",
    "sum amount of buy > 10",
    "sum amount of buy within_last 14d <= 3",
    "did buy on pos where amount >= 5",
    "last open before 10d ago",
    "first buy within_last 20d",
    "avg amount of buy within_last 20d < 5 or n > 2",
    "max amount of buy = 9 or min amount of buy between -3 and 0",
    "count of open <= 1 and v exists",
    "not did buy where amount > 2 and did open on web",
    "last buy on \"2027-01-10\"",
    "first open on \"2026-12-20\" or last open after 3d ago",
    "did open between \"2027-01-01\" and \"2027-01-08\"",
    "v exists",
    "not v exists",
    "v = \"a1\"",
    "v starts_with \"a\"",
    "v in (\"a0\", \"b2\") or n = 3",
    "n > 0",
    "n <= -2 and v exists",
    "customerId starts_with \"c1\"",
    "customerId = \"c7\"",
    "not (customerId ends_with \"3\" or n < 1)",
];

/// One event: whose, which type (`buy` or `open`), channel, how many days and hours ago,
/// its `amount` (`None`: no such property), and its key (few, so duplicates happen).
#[derive(Debug, Clone)]
struct Ev {
    k: u8,
    buy: bool,
    pos: bool,
    days: u8,
    hours: u8,
    amount: Option<i8>,
    key: Option<u8>,
}

fn ev() -> impl Strategy<Value = Ev> {
    (
        0..CUSTOMERS,
        any::<bool>(),
        any::<bool>(),
        0u8..45,
        prop_oneof![3 => Just(0u8), 1 => 0u8..24],
        prop::option::weighted(0.8, -3i8..10),
        prop::option::weighted(0.4, 0u8..20),
    )
        .prop_map(|(k, buy, pos, days, hours, amount, key)| Ev {
            k,
            buy,
            pos,
            days,
            hours,
            amount,
            key,
        })
}

/// One customer's write: which customer, and its new `v` and `n` (`None` removes).
#[derive(Debug, Clone)]
struct Row {
    k: u8,
    v: Option<u8>,
    n: Option<i8>,
}

#[derive(Debug, Clone)]
enum Op {
    Write(Row),
    Delete(u8),
    Import {
        rows: Vec<Row>,
        keep: bool,
    },
    /// An import while each of the other threads writes and deletes.
    Concurrent {
        import: Vec<Row>,
        threads: Vec<Vec<Option<Row>>>,
    },
    Restart {
        snapshot: bool,
    },
    /// The log pruned to its newest entry (older snapshots become unusable).
    PruneLog,
    /// A batch of events through the API path.
    Events(Vec<Ev>),
    /// Batches of events while one thread deletes customers and another imports customers
    /// (the import creating some of the customers the events name).
    EventsRacing {
        events: Vec<Ev>,
        deletes: Vec<u8>,
        import: Vec<Row>,
    },
    /// An events import, kept or not.
    EventsImport {
        events: Vec<Ev>,
        keep: bool,
    },
    /// An events import (its engine tables prepared as it writes) while one thread
    /// deletes or erases customers and another sends event batches and values for the
    /// same customers: the import's tables are taken in or, past a removal, read back.
    EventsImportRacing {
        import: Vec<Ev>,
        deletes: Vec<u8>,
        events: Vec<Ev>,
        rows: Vec<Row>,
    },
    /// Retention at now (`open` keeps 30 days).
    Expire,
    /// `open` deleted with its events, and registered again.
    ReregisterOpen,
    /// Subscription statements (customer, sms rather than email, subscribed, hours before
    /// now), some creating their customer, while another thread deletes customers.
    Consent {
        changes: Vec<(u8, bool, bool, u8)>,
        deletes: Vec<u8>,
    },
    /// `from` merged into `into` while another thread writes events (to both, some by the
    /// merged id after the merge: its alias) and values.
    Merge {
        into: u8,
        from: u8,
        events: Vec<Ev>,
        rows: Vec<Row>,
    },
    /// Events of a device nobody holds (an anonymous customer), then the device linked to
    /// customer `k` (the sign-in: the anonymous customer merged into it, when `k` exists).
    SignIn {
        device: u8,
        k: u8,
        events: Vec<Ev>,
    },
}

fn row() -> impl Strategy<Value = Row> {
    (
        0..CUSTOMERS,
        prop::option::weighted(0.8, 0u8..6),
        prop::option::weighted(0.7, -4i8..6),
    )
        .prop_map(|(k, v, n)| Row { k, v, n })
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => row().prop_map(Op::Write),
        2 => (0..CUSTOMERS).prop_map(Op::Delete),
        3 => (prop::collection::vec(row(), 1..12), prop::bool::weighted(0.85))
            .prop_map(|(rows, keep)| Op::Import { rows, keep }),
        3 => (
            prop::collection::vec(row(), 4..16),
            prop::collection::vec(
                prop::collection::vec(prop::option::weighted(0.8, row()), 1..12),
                1..4,
            ),
        )
            .prop_map(|(import, threads)| Op::Concurrent { import, threads }),
        2 => any::<bool>().prop_map(|snapshot| Op::Restart { snapshot }),
        1 => Just(Op::PruneLog),
        6 => prop::collection::vec(ev(), 1..16).prop_map(Op::Events),
        2 => (
            prop::collection::vec(ev(), 4..16),
            prop::collection::vec(0..CUSTOMERS, 1..4),
            prop::collection::vec(row(), 0..8),
        )
            .prop_map(|(events, deletes, import)| Op::EventsRacing { events, deletes, import }),
        2 => (prop::collection::vec(ev(), 1..16), prop::bool::weighted(0.8))
            .prop_map(|(events, keep)| Op::EventsImport { events, keep }),
        2 => (
            prop::collection::vec(ev(), 4..24),
            prop::collection::vec(0..CUSTOMERS, 0..4),
            prop::collection::vec(ev(), 0..12),
            prop::collection::vec(row(), 0..6),
        )
            .prop_map(|(import, deletes, events, rows)| Op::EventsImportRacing {
                import,
                deletes,
                events,
                rows,
            }),
        1 => Just(Op::Expire),
        1 => Just(Op::ReregisterOpen),
        4 => (
            prop::collection::vec((0..CUSTOMERS, any::<bool>(), any::<bool>(), 0u8..48), 1..12),
            prop::collection::vec(0..CUSTOMERS, 0..3),
        )
            .prop_map(|(changes, deletes)| Op::Consent { changes, deletes }),
        3 => (
            0..CUSTOMERS,
            0..CUSTOMERS,
            prop::collection::vec(ev(), 0..12),
            prop::collection::vec(row(), 0..6),
        )
            .prop_map(|(into, from, events, rows)| Op::Merge { into, from, events, rows }),
        3 => (0u8..3, 0..CUSTOMERS, prop::collection::vec(ev(), 1..8))
            .prop_map(|(device, k, events)| Op::SignIn { device, k, events }),
    ]
}

struct World {
    backend: Backend,
    store: Arc<dyn Store>,
    engines: Arc<Engines>,
    app: AppId,
    v: FieldDef,
    n: FieldDef,
}

/// Where the store lives: the embedded file in the case's directory, or a PostgreSQL
/// database made for the case.
#[derive(Clone)]
enum Backend {
    Sqlite,
    Postgres(String),
}

fn open(dir: &Path, backend: &Backend) -> (Arc<dyn Store>, Arc<Engines>) {
    let store: Arc<dyn Store> = match backend {
        Backend::Sqlite => Arc::new(
            SqliteStore::open(&dir.join("db"))
                .unwrap()
                .with_incremental_import_limit(INCREMENTAL),
        ),
        Backend::Postgres(url) => Arc::new(
            PostgresStore::connect(url)
                .unwrap()
                .with_incremental_import_limit(INCREMENTAL),
        ),
    };
    let engines = Engines::attach(&store);
    engines.enable_snapshots(dir.join("engines")).unwrap();
    (store, engines)
}

fn register(store: &dyn Store, app: AppId, code: &str, retention_days: u32) {
    store
        .create_event_type(
            app,
            &unico_core::EventType {
                code: unico_core::EventCode::parse(code).unwrap(),
                name: code.to_owned(),
                retention_days,
                enabled: true,
                properties: vec![("amount".into(), unico_core::PropertyType::Number)],
                created_at: NOW,
            },
        )
        .unwrap();
}

fn new_event(e: &Ev) -> NewEvent {
    let mut props = serde_json::Map::new();
    if let Some(a) = e.amount {
        props.insert("amount".into(), serde_json::json!(a));
    }
    NewEvent {
        by_identity: None,
        event_id: e.key.map(|k| format!("k{k}")),
        customer_id: cid(e.k),
        event_type: unico_core::EventCode::parse(if e.buy { "buy" } else { "open" }).unwrap(),
        channel: unico_core::Channel::parse(if e.pos { "pos" } else { "web" }).unwrap(),
        device_id: None,
        timestamp: NOW - i64::from(e.days) * DAY - i64::from(e.hours) * 3_600_000,
        properties: unico_core::Properties::from_json(serde_json::Value::Object(props)).unwrap(),
    }
}

fn cid(k: u8) -> CustomerId {
    CustomerId::parse(&format!("c{k}")).unwrap()
}

impl World {
    fn new(dir: &Path, backend: Backend) -> World {
        let (store, engines) = open(dir, &backend);
        let app = store
            // An odd offset (+13:45 in January): calendar dates of events are its own.
            .create_app(
                &AppName::parse("a").unwrap(),
                &TimeZoneName::parse(ZONE).unwrap(),
                NOW,
            )
            .unwrap()
            .id;
        let field = |name: &str, ty| {
            store
                .create_field(app, &FieldName::parse(name).unwrap(), ty, NOW)
                .unwrap()
        };
        let v = field("v", FieldType::String);
        let n = field("n", FieldType::Number);
        register(&*store, app, "buy", 3650);
        register(&*store, app, "open", 30);
        // The engine exists before any data, as after `unico serve` starts.
        engines.index(app).unwrap();
        World {
            backend,
            store,
            engines,
            app,
            v,
            n,
        }
    }

    fn item(&self, row: &Row) -> UpsertItem {
        UpsertItem {
            customer_id: cid(row.k),
            changes: vec![
                FieldChange {
                    field: self.v.id,
                    value: row
                        .v
                        .map(|v| Value::String(format!("{}{v}", ["a", "b"][v as usize % 2]))),
                },
                FieldChange {
                    field: self.n.id,
                    value: row.n.map(|n| Value::Number(f64::from(n))),
                },
            ],
            subscriptions: Vec::new(),
        }
    }

    /// Writes a row through the batch for even customers, and through the single-customer
    /// writes (a PATCH, or a create when the customer is missing) for odd ones: on
    /// PostgreSQL those go through group commit, which the concurrent steps race with
    /// imports and deletions.
    fn write(&self, row: &Row) {
        let item = self.item(row);
        if row.k.is_multiple_of(2) {
            let outcomes = self.store.upsert_batch(self.app, vec![item], NOW).unwrap();
            assert!(outcomes.iter().all(Result::is_ok), "{outcomes:?}");
            return;
        }
        let cid = item.customer_id;
        // A customer deleted or created by another thread in between: try the other way.
        for _ in 0..3 {
            match self
                .store
                .update_customer(self.app, &cid, &item.changes, NOW)
            {
                Ok(_) => return,
                Err(unico_store::StoreError::NotFound(_)) => {}
                Err(e) => panic!("{e}"),
            }
            match self
                .store
                .create_customer(self.app, &cid, &item.changes, NOW)
            {
                Ok(_) => return,
                Err(unico_store::StoreError::Conflict(_)) => {}
                Err(e) => panic!("{e}"),
            }
        }
        panic!("neither update nor create took {cid}");
    }

    fn delete(&self, k: u8) {
        // A customer that does not exist is simply not there to delete.
        let _ = self.store.delete_customer(self.app, &cid(k));
    }

    fn import(&self, rows: &[Row], keep: bool) {
        let items: Vec<UpsertItem> = rows.iter().map(|r| self.item(r)).collect();
        let batches = items
            .chunks(5)
            .map(|c| ImportBatch::Items(c.to_vec()))
            .chain([ImportBatch::End { keep }])
            .collect::<Vec<_>>();
        let counts = self
            .store
            .run_import(
                self.app,
                Box::new(batches.into_iter()),
                NOW,
                Arc::new(AtomicU64::new(0)),
                None,
            )
            .unwrap();
        assert_eq!(counts.kept, keep);
    }

    /// An events import as the import route runs it: the engine's tables prepared while
    /// it writes when the store takes a sink and the engine is loaded (`prepare`).
    fn events_import(&self, events: &[Ev], keep: bool) {
        let batches: Vec<EventBatch> = events
            .chunks(4)
            .map(|c| EventBatch::Items(c.iter().map(new_event).collect()))
            .chain([EventBatch::End { keep }])
            .collect();
        let sink = (self.store.takes_event_sinks() && self.engines.wants_prepared_events(self.app))
            .then(|| unico_server::prepare::Preparer::start(1))
            .flatten()
            .map(|p| Box::new(p) as Box<dyn unico_store::EventSink>);
        let counts = self
            .store
            .run_event_import(
                self.app,
                Box::new(batches.into_iter()),
                NOW,
                Arc::new(AtomicU64::new(0)),
                None,
                sink,
            )
            .unwrap();
        assert_eq!(counts.kept, keep);
    }

    /// Removes customers `ks`, every other one by erasure (which the engine applies in
    /// place, scrubbing the customer's values and events).
    fn remove(&self, ks: &[u8]) {
        for (i, k) in ks.iter().enumerate() {
            if i % 2 == 0 {
                self.delete(*k);
            } else {
                let _ = self.store.erase_customer(self.app, &cid(*k));
            }
        }
    }

    fn events(&self, events: &[Ev]) {
        let results = self
            .store
            .insert_events(self.app, events.iter().map(new_event).collect(), NOW)
            .unwrap();
        assert!(results.iter().all(Result::is_ok), "{results:?}");
    }

    fn consent(&self, changes: &[(u8, bool, bool, u8)], deletes: &[u8]) {
        std::thread::scope(|scope| {
            scope.spawn(|| {
                // Erasures too: the customer and its consent leave the log, and the engine
                // removes it in place.
                for (i, k) in deletes.iter().enumerate() {
                    let _ = if i % 2 == 0 {
                        self.store.delete_customer(self.app, &cid(*k))
                    } else {
                        self.store.erase_customer(self.app, &cid(*k))
                    };
                }
            });
            for (i, &(k, sms, subscribed, hours)) in changes.iter().enumerate() {
                let change = unico_core::SubscriptionChange {
                    channel: unico_core::Channel::parse(if sms { "sms" } else { "email" }).unwrap(),
                    subscribed,
                    at: NOW - i64::from(hours) * 3_600_000,
                    source: unico_core::Source::api(),
                };
                // Some statements go through the batch (creating their customer with the
                // consent, in one write); of the others, every other one may create its
                // customer and the rest need one.
                if i % 3 == 2 {
                    let item = UpsertItem {
                        customer_id: cid(k),
                        changes: Vec::new(),
                        subscriptions: vec![change],
                    };
                    let results = self.store.upsert_batch(self.app, vec![item], NOW).unwrap();
                    assert!(results.iter().all(Result::is_ok), "{results:?}");
                    continue;
                }
                match self
                    .store
                    .set_subscriptions(self.app, &cid(k), &[change], i % 2 == 0, NOW)
                {
                    Ok(_) | Err(unico_store::StoreError::NotFound(_)) => {}
                    Err(e) => panic!("{e}"),
                }
            }
        });
    }

    fn merge(&self, into: u8, from: u8, events: &[Ev], rows: &[Row]) {
        std::thread::scope(|s| {
            s.spawn(|| {
                for chunk in events.chunks(2) {
                    self.events(chunk);
                }
                for row in rows {
                    self.write(row);
                }
            });
            match self
                .store
                .merge_customers(self.app, &cid(into), &cid(from), NOW)
            {
                // Missing, or already one customer (the same, or merged before).
                Ok(_)
                | Err(unico_store::StoreError::NotFound(_))
                | Err(unico_store::StoreError::Invalid(_)) => {}
                Err(e) => panic!("{e}"),
            }
        });
    }

    fn sign_in(&self, device: u8, k: u8, events: &[Ev]) {
        let identity = unico_core::Identity::new(
            unico_core::IdentityKind::device_id(),
            &format!("device-{device}"),
        )
        .unwrap();
        let anonymous = CustomerId::parse(&format!("anon-{device}")).unwrap();
        let items: Vec<NewEvent> = events
            .iter()
            .map(|e| NewEvent {
                by_identity: Some(Box::new(unico_store::ByIdentity {
                    identity: identity.clone(),
                    anonymous: Some(anonymous.clone()),
                })),
                ..new_event(e)
            })
            .collect();
        let results = self.store.insert_events(self.app, items, NOW).unwrap();
        assert!(results.iter().all(Result::is_ok), "{results:?}");
        match self.store.link_identity(self.app, &cid(k), &identity, NOW) {
            // No such customer, or the device belongs to a known customer already.
            Ok(_)
            | Err(unico_store::StoreError::NotFound(_))
            | Err(unico_store::StoreError::Conflict(_)) => {}
            Err(e) => panic!("{e}"),
        }
    }

    fn apply(&mut self, op: &Op, dir: &Path) {
        match op {
            Op::Merge {
                into,
                from,
                events,
                rows,
            } => self.merge(*into, *from, events, rows),
            Op::SignIn { device, k, events } => self.sign_in(*device, *k, events),
            Op::Consent { changes, deletes } => self.consent(changes, deletes),
            Op::Events(events) => self.events(events),
            Op::EventsRacing {
                events,
                deletes,
                import,
            } => {
                let world = &*self;
                std::thread::scope(|s| {
                    // Every other removal is an erasure: the engine applies it in place
                    // (scrubbing the customer's values and events) while events and an
                    // import for the same customers race it.
                    s.spawn(move || world.remove(deletes));
                    s.spawn(move || world.import(import, true));
                    for chunk in events.chunks(3) {
                        world.events(chunk);
                    }
                });
            }
            Op::EventsImport { events, keep } => self.events_import(events, *keep),
            Op::EventsImportRacing {
                import,
                deletes,
                events,
                rows,
            } => {
                let world = &*self;
                std::thread::scope(|s| {
                    s.spawn(move || world.events_import(import, true));
                    s.spawn(move || world.remove(deletes));
                    for chunk in events.chunks(3) {
                        world.events(chunk);
                    }
                    for row in rows {
                        world.write(row);
                    }
                });
            }
            Op::Expire => {
                self.store.expire_events(NOW).unwrap();
            }
            Op::ReregisterOpen => {
                let open = unico_core::EventCode::parse("open").unwrap();
                self.store.delete_event_type(self.app, &open).unwrap();
                register(&*self.store, self.app, "open", 30);
            }
            Op::Write(row) => self.write(row),
            Op::Delete(k) => self.delete(*k),
            Op::Import { rows, keep } => self.import(rows, *keep),
            Op::Concurrent { import, threads } => {
                let world = &*self;
                std::thread::scope(|s| {
                    for ops in threads {
                        s.spawn(move || {
                            for op in ops {
                                match op {
                                    Some(row) => world.write(row),
                                    None => world.delete(row_k(ops)),
                                }
                            }
                        });
                    }
                    world.import(import, true);
                });
            }
            Op::PruneLog => {
                self.store.prune_log(i64::MAX).unwrap();
            }
            Op::Restart { snapshot } => {
                // Wait for any rebuild, so that nothing holds the store while it closes.
                self.engines.index(self.app).unwrap();
                if *snapshot {
                    self.engines.save_snapshots();
                }
                let (store, engines) = open(dir, &self.backend);
                // The old store closes (its writer finishes) before the new one is used.
                self.store = store;
                self.engines = engines;
                self.engines.index(self.app).unwrap();
            }
        }
    }

    /// Every filter's count and members, engine against the reference over the store.
    fn check(&self, after: &Op) -> Result<(), TestCaseError> {
        let schema = self.store.schema(self.app).unwrap();
        let mut stored = Vec::new();
        let mut events: std::collections::HashMap<i64, Vec<unico_core::Event>> =
            std::collections::HashMap::new();
        self.store
            .scan_app(
                self.app,
                &mut |_| {},
                &mut |c| {
                    stored.push(c);
                    true
                },
                &mut |e| {
                    events.entry(e.customer).or_default().push(e);
                    true
                },
            )
            .unwrap();
        let mut subscribed: std::collections::HashMap<i64, Vec<unico_core::Channel>> =
            std::collections::HashMap::new();
        self.store
            .scan_subscriptions(self.app, &mut |id, channel, on| {
                if on {
                    subscribed.entry(id).or_default().push(channel);
                }
            })
            .unwrap();
        let ctx = EvalContext::new(NOW, TimeZone::get(ZONE).unwrap());
        let none = Vec::new();
        let nothing = Vec::new();
        for text in FILTERS {
            let filter = Filter::parse(FilterInput::Text(text), &schema).unwrap();
            let mut want: Vec<i64> = stored
                .iter()
                .filter(|c| {
                    let facts = Facts {
                        events: events.get(&c.id).unwrap_or(&none),
                        subscribed: subscribed.get(&c.id).unwrap_or(&nothing),
                    };
                    matches_with(&filter, c, &facts, &ctx)
                })
                .map(|c| c.id)
                .collect();
            want.sort_unstable();
            let (count, mut got) = self
                .engines
                .query(self.app, NOW, |index, ctx| {
                    let members = index.members(&filter, ctx);
                    (
                        index.count(&filter, ctx),
                        index.page_by_customer_id(&members, None, false, usize::MAX),
                    )
                })
                .unwrap();
            got.sort_unstable();
            prop_assert_eq!(
                count,
                want.len() as u64,
                "count of {} after {:?}",
                text,
                after
            );
            prop_assert_eq!(&got, &want, "members of {} after {:?}", text, after);
        }
        Ok(())
    }
}

/// The customer a thread's delete step removes: the one its first write touched (a
/// thread's steps are its own customers' story).
fn row_k(ops: &[Option<Row>]) -> u8 {
    ops.iter().flatten().next().map_or(0, |r| r.k)
}

fn cases() -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(48)
}

fn run(ops: &[Op], backend: Backend) -> Result<(), TestCaseError> {
    let dir = tempfile::tempdir().unwrap();
    let mut world = World::new(dir.path(), backend);
    for op in ops {
        world.apply(op, dir.path());
        world.check(op)?;
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(), ..ProptestConfig::default() })]

    #[test]
    fn the_engine_equals_the_store_after_every_step(ops in prop::collection::vec(op(), 1..14)) {
        run(&ops, Backend::Sqlite)?;
    }
}

proptest! {
    // Each case makes a database of its own: fewer cases than on the embedded store.
    #![proptest_config(ProptestConfig { cases: cases() / 3 + 1, ..ProptestConfig::default() })]

    /// The same on PostgreSQL (the server `.ci/run` starts): the engines follow its log.
    #[test]
    fn on_postgres_the_engine_equals_the_store_after_every_step(ops in prop::collection::vec(op(), 1..14)) {
        let db = TestDatabase::create();
        run(&ops, Backend::Postgres(db.url()))?;
    }
}
