//! Conformance cases for interactions: the type registry, event writes, the timeline,
//! retention and how events reach the change log.

use std::collections::HashSet;

use unico_core::{Channel, EventCode, EventType, Properties, PropertyType};

use super::{app, cid, logged};
use crate::changes::Change;
use crate::error::StoreError;
use crate::events::{EventQuery, EventTypePatch, NewEvent};
use crate::store::Store;
use unico_core::AppId;

const DAY: i64 = 86_400_000;
/// 2026-12-01T00:00:00Z.
const NOW: i64 = 1_796_083_200_000;

fn code(text: &str) -> EventCode {
    EventCode::parse(text).unwrap()
}

fn channel(text: &str) -> Channel {
    Channel::parse(text).unwrap()
}

fn register(store: &dyn Store, app: AppId, c: &str, retention_days: u32) -> EventType {
    store
        .create_event_type(
            app,
            &EventType {
                code: code(c),
                name: format!("The {c}"),
                retention_days,
                enabled: true,
                properties: vec![("amount".into(), PropertyType::Number)],
                created_at: NOW,
            },
        )
        .unwrap()
}

fn event(key: Option<&str>, customer: &str, c: &str, ch: &str, ts: i64) -> NewEvent {
    NewEvent {
        by_identity: None,
        event_id: key.map(str::to_owned),
        customer_id: cid(customer),
        event_type: code(c),
        channel: channel(ch),
        device_id: None,
        timestamp: ts,
        properties: Properties::default(),
    }
}

fn timeline(store: &dyn Store, app: AppId, customer: &str, q: EventQuery) -> Vec<i64> {
    let mut out = Vec::new();
    let mut q = q;
    loop {
        let page = store.customer_events(app, &cid(customer), &q).unwrap();
        out.extend(page.events.iter().map(|e| e.timestamp));
        match page.next {
            Some(next) => q.after = Some(next),
            None => return out,
        }
    }
}

pub fn event_types_lifecycle(store: &dyn Store) {
    let a = app(store, "A");
    let t = register(store, a, "purchase", 30);
    assert_eq!(t.code.as_str(), "purchase");
    let again = store.create_event_type(a, &t);
    assert!(matches!(again, Err(StoreError::Conflict(_))), "{again:?}");
    let schema = store.schema(a).unwrap();
    assert_eq!(schema.event_types().get("purchase"), Some(&t));
    let patched = store
        .update_event_type(
            a,
            &code("purchase"),
            &EventTypePatch {
                name: Some("Purchase".into()),
                retention_days: Some(90),
                enabled: Some(false),
                properties: Some(vec![("currency".into(), PropertyType::String)]),
            },
        )
        .unwrap();
    assert_eq!(
        (
            patched.name.as_str(),
            patched.retention_days,
            patched.enabled
        ),
        ("Purchase", 90, false)
    );
    assert_eq!(
        store.schema(a).unwrap().event_types().get("purchase"),
        Some(&patched)
    );
    let missing = store.update_event_type(a, &code("nope"), &EventTypePatch::default());
    assert!(
        matches!(missing, Err(StoreError::NotFound(_))),
        "{missing:?}"
    );
    // Another application does not see it.
    let b = app(store, "B");
    assert!(store.schema(b).unwrap().event_types().all().is_empty());
    assert_eq!(store.delete_event_type(a, &code("purchase")).unwrap(), 0);
    assert!(store.schema(a).unwrap().event_types().all().is_empty());
    let gone = store.delete_event_type(a, &code("purchase"));
    assert!(matches!(gone, Err(StoreError::NotFound(_))), "{gone:?}");
}

pub fn events_are_stored_once_per_key_and_create_customers(store: &dyn Store) {
    let a = app(store, "A");
    register(store, a, "purchase", 365);
    store.create_customer(a, &cid("known"), &[], NOW).unwrap();
    let results = store
        .insert_events(
            a,
            vec![
                event(Some("k1"), "known", "purchase", "web", NOW - DAY),
                event(Some("k1"), "known", "purchase", "pos", NOW),
                event(None, "new", "purchase", "web", NOW - 2 * DAY),
                event(None, "new", "purchase", "web", NOW - 3 * DAY),
            ],
            NOW,
        )
        .unwrap();
    let outcomes: Vec<_> = results.into_iter().map(Result::unwrap).collect();
    assert!(!outcomes[0].duplicate && !outcomes[0].customer_created);
    assert!(
        outcomes[1].duplicate,
        "the same key twice in one batch is stored once"
    );
    assert_eq!(outcomes[1].id, outcomes[0].id);
    assert!(outcomes[2].customer_created && !outcomes[3].customer_created);
    let created = store.get_customer(a, &cid("new")).unwrap();
    assert!(created.fields.is_empty());
    // Across batches too, and the first event's content stays.
    let again = store
        .insert_events(
            a,
            vec![event(Some("k1"), "new", "purchase", "app", NOW)],
            NOW,
        )
        .unwrap();
    let again = again.into_iter().next().unwrap().unwrap();
    assert!(again.duplicate && again.id == outcomes[0].id);
    let known = store
        .customer_events(
            a,
            &cid("known"),
            &EventQuery {
                limit: 10,
                ..Default::default()
            },
        )
        .unwrap();
    assert_eq!(known.events.len(), 1);
    assert_eq!(known.events[0].channel.as_str(), "web");
    assert_eq!(known.events[0].event_id.as_deref(), Some("k1"));
    assert_eq!(store.customer_activity(a, &cid("new")).unwrap().events, 2);
    // An event naming a customer nobody holds yet creates it, unless its key is already
    // taken: by an event stored, or by one earlier in the same batch (written or not).
    let mixed = store
        .insert_events(
            a,
            vec![
                event(Some("k2"), "known", "purchase", "web", NOW),
                event(Some("k2"), "ghost", "purchase", "web", NOW),
                event(Some("k3"), "fresh", "purchase", "web", NOW),
                event(Some("k3"), "ghost2", "purchase", "web", NOW),
                event(Some("k1"), "ghost3", "purchase", "web", NOW),
            ],
            NOW,
        )
        .unwrap();
    let mixed: Vec<_> = mixed.into_iter().map(Result::unwrap).collect();
    assert!(!mixed[0].duplicate);
    assert!(mixed[1].duplicate && mixed[1].id == mixed[0].id && !mixed[1].customer_created);
    assert!(!mixed[2].duplicate && mixed[2].customer_created);
    assert!(mixed[3].duplicate && mixed[3].id == mixed[2].id && !mixed[3].customer_created);
    assert!(mixed[4].duplicate && mixed[4].id == outcomes[0].id);
    for ghost in ["ghost", "ghost2", "ghost3"] {
        assert!(
            store.get_customer(a, &cid(ghost)).is_err(),
            "{ghost} was created"
        );
    }
    assert_eq!(store.customer_activity(a, &cid("fresh")).unwrap().events, 1);
    // A key is per application.
    let b = app(store, "B");
    register(store, b, "purchase", 365);
    let other = store
        .insert_events(
            b,
            vec![event(Some("k1"), "known", "purchase", "web", NOW)],
            NOW,
        )
        .unwrap();
    assert!(!other[0].as_ref().unwrap().duplicate);
}

pub fn unregistered_and_disabled_types_are_item_errors(store: &dyn Store) {
    let a = app(store, "A");
    register(store, a, "purchase", 365);
    register(store, a, "old", 365);
    store
        .update_event_type(
            a,
            &code("old"),
            &EventTypePatch {
                enabled: Some(false),
                ..Default::default()
            },
        )
        .unwrap();
    let head = store.log_head();
    let results = store
        .insert_events(
            a,
            vec![
                event(None, "c1", "nope", "web", NOW),
                event(None, "c2", "old", "web", NOW),
                event(None, "c3", "purchase", "web", NOW),
            ],
            NOW,
        )
        .unwrap();
    assert!(matches!(&results[0], Err(StoreError::Invalid(m)) if m.contains("nope")));
    assert!(matches!(&results[1], Err(StoreError::Invalid(m)) if m.contains("disabled")));
    assert!(results[2].is_ok());
    // The refused items created nobody.
    assert!(store.get_customer(a, &cid("c1")).is_err());
    assert!(store.get_customer(a, &cid("c2")).is_err());
    assert_eq!(logged(store, head), vec!["customer c3", "events 1"]);
    // An unknown application is an error of the whole call.
    assert!(store.insert_events(AppId(999_999), vec![], NOW).is_err());
}

pub fn the_timeline_pages_newest_first(store: &dyn Store) {
    let a = app(store, "A");
    register(store, a, "purchase", 3650);
    register(store, a, "email_open", 3650);
    let mut batch = Vec::new();
    for i in 0..25i64 {
        let (t, ch) = if i % 3 == 0 {
            ("email_open", "email")
        } else {
            ("purchase", "web")
        };
        // Two events share each instant, so ties are ordered by id.
        batch.push(event(None, "ana", t, ch, NOW - (i / 2) * DAY));
    }
    batch.push(event(None, "bob", "purchase", "web", NOW));
    store.insert_events(a, batch, NOW).unwrap();
    let all = timeline(
        store,
        a,
        "ana",
        EventQuery {
            limit: 4,
            ..Default::default()
        },
    );
    assert_eq!(all.len(), 25);
    assert!(
        all.windows(2).all(|w| w[0] >= w[1]),
        "newest first: {all:?}"
    );
    let first = store
        .customer_events(
            a,
            &cid("ana"),
            &EventQuery {
                limit: 2,
                ..Default::default()
            },
        )
        .unwrap();
    assert_eq!(first.events[0].timestamp, first.events[1].timestamp);
    assert!(first.events[0].id > first.events[1].id);
    let opens = timeline(
        store,
        a,
        "ana",
        EventQuery {
            types: vec![code("email_open")],
            limit: 3,
            ..Default::default()
        },
    );
    assert_eq!(opens.len(), 9);
    let email = timeline(
        store,
        a,
        "ana",
        EventQuery {
            channels: vec![channel("email")],
            limit: 100,
            ..Default::default()
        },
    );
    assert_eq!(email, opens);
    let window = timeline(
        store,
        a,
        "ana",
        EventQuery {
            from: Some(NOW - 3 * DAY),
            to: Some(NOW),
            limit: 100,
            ..Default::default()
        },
    );
    assert_eq!(window.len(), 6, "days −3 … −1, two events each: {window:?}");
    let activity = store.customer_activity(a, &cid("ana")).unwrap();
    assert_eq!(activity.events, 25);
    assert_eq!(activity.first_seen, Some(NOW - 12 * DAY));
    assert_eq!(activity.last_seen, Some(NOW));
    assert_eq!(activity.channels, vec![channel("email"), channel("web")]);
    let missing = store.customer_events(a, &cid("nobody"), &EventQuery::default());
    assert!(
        matches!(missing, Err(StoreError::NotFound(_))),
        "{missing:?}"
    );
}

pub fn events_follow_their_customer_and_application(store: &dyn Store) {
    let a = app(store, "A");
    register(store, a, "purchase", 3650);
    store
        .insert_events(
            a,
            vec![
                event(Some("x"), "ana", "purchase", "web", NOW),
                event(None, "bob", "purchase", "web", NOW),
            ],
            NOW,
        )
        .unwrap();
    store.delete_customer(a, &cid("ana")).unwrap();
    // The key went with the event: the same key is new again.
    let again = store
        .insert_events(
            a,
            vec![event(Some("x"), "ana", "purchase", "web", NOW)],
            NOW,
        )
        .unwrap();
    let again = again[0].as_ref().unwrap();
    assert!(!again.duplicate && again.customer_created);
    assert_eq!(store.customer_activity(a, &cid("ana")).unwrap().events, 1);
    assert_eq!(store.delete_event_type(a, &code("purchase")).unwrap(), 2);
    assert_eq!(store.customer_activity(a, &cid("bob")).unwrap().events, 0);
    let b = app(store, "B");
    register(store, b, "purchase", 3650);
    store
        .insert_events(b, vec![event(None, "ana", "purchase", "web", NOW)], NOW)
        .unwrap();
    store.delete_app(b).unwrap();
    let mut seen = 0;
    store
        .scan_app(a, &mut |_| {}, &mut |_| true, &mut |_| {
            seen += 1;
            true
        })
        .unwrap();
    assert_eq!(seen, 0);
}

pub fn retention_removes_old_events(store: &dyn Store) {
    let a = app(store, "A");
    register(store, a, "page_view", 7);
    register(store, a, "purchase", 365);
    store
        .insert_events(
            a,
            vec![
                event(None, "ana", "page_view", "web", NOW - 7 * DAY - 1),
                event(None, "ana", "page_view", "web", NOW - 7 * DAY),
                event(None, "ana", "purchase", "web", NOW - 100 * DAY),
            ],
            NOW,
        )
        .unwrap();
    let head = store.log_head();
    assert_eq!(store.expire_events(NOW).unwrap(), 1);
    let left = timeline(
        store,
        a,
        "ana",
        EventQuery {
            limit: 10,
            ..Default::default()
        },
    );
    assert_eq!(left, vec![NOW - 7 * DAY, NOW - 100 * DAY]);
    let entries = store.read_log(head, 10).unwrap();
    assert_eq!(entries.len(), 1);
    match &entries[0].change {
        Change::EventsRemoved { event, before, .. } => {
            assert_eq!((event.as_str(), *before), ("page_view", NOW - 7 * DAY));
        }
        other => panic!("unexpected {other:?}"),
    }
    // Nothing more to remove: nothing logged.
    assert_eq!(store.expire_events(NOW).unwrap(), 0);
    assert_eq!(store.log_head(), entries[0].seq);
}

pub fn events_are_logged_and_read_back_by_id(store: &dyn Store) {
    let a = app(store, "A");
    register(store, a, "purchase", 3650);
    let head = store.log_head();
    let mut props = serde_json::Map::new();
    props.insert("amount".into(), serde_json::json!(59.9));
    props.insert("tags".into(), serde_json::json!(["a", {"b": 1}]));
    let mut e = event(Some("k"), "ana", "purchase", "pos", NOW);
    e.device_id = Some("d-1".into());
    e.properties = Properties::from_json(serde_json::Value::Object(props)).unwrap();
    let sent = e.clone();
    let results = store
        .insert_events(
            a,
            vec![e, event(None, "ana", "purchase", "web", NOW - DAY)],
            NOW,
        )
        .unwrap();
    let ids: Vec<i64> = results.iter().map(|r| r.as_ref().unwrap().id).collect();
    let entries = store.read_log(head, 10).unwrap();
    let ranges = entries
        .iter()
        .find_map(|e| match &e.change {
            Change::Events { ranges, .. } => Some(ranges.clone()),
            _ => None,
        })
        .unwrap();
    let mut logged_ids: Vec<i64> = ranges.iter().flat_map(|(lo, hi)| *lo..=*hi).collect();
    logged_ids.sort_unstable();
    let mut sorted = ids.clone();
    sorted.sort_unstable();
    assert_eq!(logged_ids, sorted);
    let (lo, hi) = (sorted[0], sorted[1]);
    let read = store.read_events(a, lo, hi, 10).unwrap();
    assert_eq!(read.len(), 2);
    let first = read.iter().find(|e| e.id == ids[0]).unwrap();
    assert_eq!(first.event_id.as_deref(), Some("k"));
    assert_eq!(first.device_id.as_deref(), Some("d-1"));
    assert_eq!(first.channel.as_str(), "pos");
    assert_eq!(first.properties, sent.properties);
    assert_eq!(first.timestamp, NOW);
    assert_eq!(
        first.customer,
        store.get_customer(a, &cid("ana")).unwrap().id
    );
    assert_eq!(store.read_events(a, lo, hi, 1).unwrap().len(), 1);
    // Another application's ids read nothing.
    let b = app(store, "B");
    assert!(store.read_events(b, lo, hi, 10).unwrap().is_empty());
}

pub fn a_scan_holds_customers_and_events(store: &dyn Store) {
    let a = app(store, "A");
    register(store, a, "purchase", 3650);
    let batch: Vec<NewEvent> = (0..50)
        .map(|i| {
            event(
                None,
                &format!("c{}", i % 7),
                "purchase",
                "web",
                NOW - i * 1000,
            )
        })
        .collect();
    store.insert_events(a, batch, NOW).unwrap();
    let (mut customers, mut events) = (Vec::new(), Vec::new());
    let seq = store
        .scan_app(
            a,
            &mut |schema| assert!(schema.event_types().get("purchase").is_some()),
            &mut |c| {
                customers.push(c.id);
                true
            },
            &mut |e| {
                events.push(e.id);
                true
            },
        )
        .unwrap();
    assert_eq!(seq, store.log_head());
    assert_eq!(customers.len(), 7);
    assert_eq!(events.len(), 50);
    assert!(events.windows(2).all(|w| w[0] < w[1]));
}

pub fn concurrent_event_writers_store_each_key_once(store: &dyn Store) {
    let a = app(store, "A");
    register(store, a, "purchase", 3650);
    let keys: Vec<String> = (0..200).map(|i| format!("k{i}")).collect();
    let stored: Vec<Vec<i64>> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..4)
            .map(|w| {
                let keys = &keys;
                s.spawn(move || {
                    let mut mine = Vec::new();
                    for chunk in keys.chunks(20) {
                        let batch: Vec<NewEvent> = chunk
                            .iter()
                            .map(|k| event(Some(k), &format!("c{w}-{k}"), "purchase", "web", NOW))
                            .collect();
                        for r in store.insert_events(a, batch, NOW).unwrap() {
                            let r = r.unwrap();
                            if !r.duplicate {
                                mine.push(r.id);
                            }
                        }
                    }
                    mine
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let all: Vec<i64> = stored.into_iter().flatten().collect();
    assert_eq!(all.len(), 200, "each key stored exactly once");
    assert_eq!(all.iter().collect::<HashSet<_>>().len(), 200);
    let mut total = 0;
    store
        .scan_app(a, &mut |_| {}, &mut |_| true, &mut |_| {
            total += 1;
            true
        })
        .unwrap();
    assert_eq!(total, 200);
}

fn run_events_import(
    store: &dyn Store,
    app: AppId,
    batches: Vec<Vec<NewEvent>>,
    keep: bool,
) -> Result<crate::store::ImportCounts, StoreError> {
    let mut feed: Vec<crate::store::EventBatch> = batches
        .into_iter()
        .map(crate::store::EventBatch::Items)
        .collect();
    feed.push(crate::store::EventBatch::End { keep });
    store.run_event_import(
        app,
        Box::new(feed.into_iter()),
        NOW,
        std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0)),
        None,
        None,
    )
}

pub fn an_events_import_is_all_or_nothing(store: &dyn Store) {
    let a = app(store, "A");
    register(store, a, "purchase", 3650);
    store
        .insert_events(
            a,
            vec![event(Some("old"), "ana", "purchase", "web", NOW)],
            NOW,
        )
        .unwrap();
    let head = store.log_head();
    let batches = vec![
        vec![
            event(Some("old"), "ana", "purchase", "web", NOW),
            event(Some("n1"), "bob", "purchase", "web", NOW - DAY),
        ],
        vec![
            event(Some("n1"), "bob", "purchase", "web", NOW - DAY),
            event(None, "cy", "purchase", "pos", NOW - 2 * DAY),
        ],
    ];
    // Not kept: nothing written, nothing logged.
    let counts = run_events_import(store, a, batches.clone(), false).unwrap();
    assert!(!counts.kept);
    assert_eq!(store.log_head(), head);
    assert!(store.get_customer(a, &cid("bob")).is_err());
    // Kept: every event once, customers created, logged as customers then events.
    let counts = run_events_import(store, a, batches, true).unwrap();
    assert!(counts.kept);
    assert_eq!((counts.created, counts.updated), (2, 2));
    assert_eq!(store.customer_activity(a, &cid("bob")).unwrap().events, 1);
    assert_eq!(store.customer_activity(a, &cid("cy")).unwrap().events, 1);
    assert_eq!(store.customer_activity(a, &cid("ana")).unwrap().events, 1);
    assert_eq!(
        logged(store, head),
        vec!["customer bob", "customer cy", "events 2"]
    );
    // A type unregistered meanwhile fails the whole import.
    let failed = run_events_import(
        store,
        a,
        vec![vec![
            event(None, "dee", "purchase", "web", NOW),
            event(None, "dee", "gone", "web", NOW),
        ]],
        true,
    );
    assert!(matches!(failed, Err(StoreError::Invalid(_))), "{failed:?}");
    assert!(store.get_customer(a, &cid("dee")).is_err());
}

pub fn an_events_import_record_commits_with_its_writes(store: &dyn Store) {
    let a = app(store, "A");
    register(store, a, "purchase", 3650);
    let record = store
        .create_event_import(a, crate::store::ImportMode::Atomic, NOW)
        .unwrap();
    assert_eq!(record.kind, crate::store::ImportKind::Events);
    let mut done = record.clone();
    let finish: crate::store::ImportFinish = Box::new(move |outcome| {
        let counts = outcome.unwrap();
        done.state = crate::store::ImportState::Succeeded;
        done.rows_read = 1;
        done.rows_written = 1;
        done.created = counts.created;
        (done, Vec::new())
    });
    store
        .run_event_import(
            a,
            Box::new(
                vec![
                    crate::store::EventBatch::Items(vec![event(
                        None, "ana", "purchase", "web", NOW,
                    )]),
                    crate::store::EventBatch::End { keep: true },
                ]
                .into_iter(),
            ),
            NOW,
            std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0)),
            Some(finish),
            None,
        )
        .unwrap();
    let (stored, _) = store.get_import(a, record.id).unwrap();
    assert_eq!(stored.state, crate::store::ImportState::Succeeded);
    assert_eq!(
        (stored.created, stored.kind),
        (1, crate::store::ImportKind::Events)
    );
    // Customer imports keep their kind.
    let csv = store
        .create_import(a, crate::store::ImportMode::Atomic, NOW)
        .unwrap();
    assert_eq!(csv.kind, crate::store::ImportKind::Customers);
}

pub fn an_application_may_register_types_on_first_sight(store: &dyn Store) {
    let a = app(store, "A");
    let b = app(store, "B");
    store
        .set_meta(&crate::events::auto_register_key(a), "true")
        .unwrap();
    let head = store.log_head();
    let results = store
        .insert_events(
            a,
            vec![
                event(None, "ana", "signup", "web", NOW),
                event(None, "ana", "signup", "app", NOW),
            ],
            NOW,
        )
        .unwrap();
    assert!(results.iter().all(Result::is_ok), "{results:?}");
    let registered = store.schema(a).unwrap();
    let t = registered.event_types().get("signup").unwrap();
    assert!(t.enabled);
    assert_eq!(t.retention_days, unico_core::event::DEFAULT_RETENTION_DAYS);
    // The schema change and the customer come before the events in the log.
    assert_eq!(
        logged(store, head),
        vec!["schema 0", "customer ana", "events 2"]
    );
    // Only that application: the other still refuses unknown types.
    let refused = store
        .insert_events(b, vec![event(None, "ana", "signup", "web", NOW)], NOW)
        .unwrap();
    assert!(matches!(&refused[0], Err(StoreError::Invalid(_))));
    // An import registers them too.
    run_events_import(
        store,
        a,
        vec![vec![event(None, "bob", "refund", "pos", NOW)]],
        true,
    )
    .unwrap();
    assert!(
        store
            .schema(a)
            .unwrap()
            .event_types()
            .get("refund")
            .is_some()
    );
}

pub fn computed_fields_are_defined_logged_and_never_written(store: &dyn Store) {
    use unico_core::{Computed, ComputedAgg, FieldName, FieldType};
    let a = app(store, "A");
    register(store, a, "purchase", 30);
    let def = Computed::new(
        code("purchase"),
        ComputedAgg::Sum,
        Some("amount".into()),
        Some(Computed::parse_window("90d").unwrap()),
    )
    .unwrap();
    let head = store.log_head();
    let name = FieldName::parse("spent_90d").unwrap();
    let field = store
        .create_computed_field(a, &name, FieldType::Number, &def, NOW)
        .unwrap();
    assert_eq!(field.computed.as_ref(), Some(&def));
    // The definition is read back, and logged with the schema a follower applies.
    let schema = store.schema(a).unwrap();
    assert_eq!(
        schema.by_name("spent_90d").unwrap().computed,
        Some(def.clone())
    );
    let logged_schema = store
        .read_log(head, 10)
        .unwrap()
        .into_iter()
        .find_map(|e| match e.change {
            Change::Schema { schema, .. } => Some(schema),
            _ => None,
        })
        .expect("the new field is logged");
    assert_eq!(
        logged_schema.by_name("spent_90d").unwrap().computed,
        Some(def.clone())
    );
    // A name is taken once, computed or not.
    assert!(matches!(
        store.create_computed_field(a, &name, FieldType::Number, &def, NOW),
        Err(StoreError::Conflict(_))
    ));
    // An unregistered type is refused in the transaction.
    let other = Computed::new(code("refund"), ComputedAgg::Count, None, None).unwrap();
    assert!(matches!(
        store.create_computed_field(
            a,
            &FieldName::parse("refunds").unwrap(),
            FieldType::Number,
            &other,
            NOW
        ),
        Err(StoreError::Conflict(_))
    ));
    // No write stores a value for it, and its type never changes.
    let write = store.create_customer(
        a,
        &cid("x"),
        &[unico_core::FieldChange {
            field: field.id,
            value: Some(unico_core::Value::Number(3.0)),
        }],
        NOW,
    );
    assert!(matches!(write, Err(StoreError::Conflict(_))), "{write:?}");
    assert!(matches!(
        store.set_field_type(a, &name, FieldType::String),
        Err(StoreError::Conflict(_))
    ));
    // Its event type cannot go while it aggregates it; once it is deleted, the type can.
    assert!(matches!(
        store.delete_event_type(a, &code("purchase")),
        Err(StoreError::Conflict(_))
    ));
    assert_eq!(store.delete_field(a, &name).unwrap(), 0);
    store.delete_event_type(a, &code("purchase")).unwrap();
}

pub fn subscriptions_keep_the_latest_statement_and_every_change(store: &dyn Store) {
    use unico_core::{Source, SubscriptionChange};
    let a = app(store, "A");
    let change = |ch: &str, subscribed: bool, at: i64, source: &str| SubscriptionChange {
        channel: channel(ch),
        subscribed,
        at,
        source: Source::parse(source).unwrap(),
    };
    // A customer that does not exist: NotFound, unless the write may create it.
    assert!(matches!(
        store.set_subscriptions(
            a,
            &cid("ana"),
            &[change("email", true, NOW, "api")],
            false,
            NOW
        ),
        Err(StoreError::NotFound(_))
    ));
    let head = store.log_head();
    let out = store
        .set_subscriptions(
            a,
            &cid("ana"),
            &[
                change("email", true, NOW, "form"),
                change("sms", false, NOW, "form"),
            ],
            true,
            NOW,
        )
        .unwrap();
    assert!(out.customer_created);
    let standing: Vec<(String, bool)> = out
        .subscriptions
        .iter()
        .map(|s| (s.channel.as_str().to_owned(), s.subscribed))
        .collect();
    assert_eq!(
        standing,
        [("email".to_owned(), true), ("sms".to_owned(), false)]
    );
    assert_eq!(
        logged(store, head),
        [
            "customer ana",
            "subscription email true",
            "subscription sms false"
        ]
    );
    // An older statement arriving late is kept in the history but does not win.
    let head = store.log_head();
    store
        .set_subscriptions(
            a,
            &cid("ana"),
            &[change("email", false, NOW - DAY, "csv")],
            false,
            NOW,
        )
        .unwrap();
    assert!(logged(store, head).is_empty(), "nothing standing moved");
    let email = |store: &dyn Store| {
        store
            .subscriptions(a, &cid("ana"))
            .unwrap()
            .into_iter()
            .find(|s| s.channel.as_str() == "email")
            .unwrap()
    };
    assert!(email(store).subscribed);
    assert_eq!(email(store).source.as_str(), "form");
    // A newer one wins, and is logged.
    store
        .set_subscriptions(
            a,
            &cid("ana"),
            &[change("email", false, NOW + 1, "unsubscribe_link")],
            false,
            NOW + 1,
        )
        .unwrap();
    assert!(!email(store).subscribed);
    assert_eq!(logged(store, head), ["subscription email false"]);
    let history: Vec<(String, bool, String)> = store
        .subscription_history(a, &cid("ana"), 10)
        .unwrap()
        .into_iter()
        .map(|h| {
            (
                h.channel.as_str().to_owned(),
                h.subscribed,
                h.source.as_str().to_owned(),
            )
        })
        .collect();
    assert_eq!(
        history,
        [
            ("email".to_owned(), false, "unsubscribe_link".to_owned()),
            ("email".to_owned(), false, "csv".to_owned()),
            ("sms".to_owned(), false, "form".to_owned()),
            ("email".to_owned(), true, "form".to_owned()),
        ]
    );
    // A channel the application does not take is refused, and nothing is written.
    assert!(matches!(
        store.set_subscriptions(
            a,
            &cid("ana"),
            &[
                change("sms", true, NOW + 2, "api"),
                change("wallet", true, NOW + 2, "api")
            ],
            false,
            NOW + 2
        ),
        Err(StoreError::Invalid(_))
    ));
    assert_eq!(
        store
            .subscription_history(a, &cid("ana"), 10)
            .unwrap()
            .len(),
        4
    );
    // Declared, it is taken; the declaration is logged with the schema.
    let schema = store
        .set_declared_channels(a, &[channel("wallet")])
        .unwrap();
    assert_eq!(schema.declared_channels(), [channel("wallet")]);
    assert_eq!(
        store.schema(a).unwrap().declared_channels(),
        [channel("wallet")]
    );
    store
        .set_subscriptions(
            a,
            &cid("ana"),
            &[change("wallet", true, NOW + 2, "api")],
            false,
            NOW + 2,
        )
        .unwrap();
    let mut scanned = Vec::new();
    store
        .scan_subscriptions(a, &mut |_, ch, s| scanned.push((ch.as_str().to_owned(), s)))
        .unwrap();
    scanned.sort();
    assert_eq!(
        scanned,
        [
            ("email".to_owned(), false),
            ("sms".to_owned(), false),
            ("wallet".to_owned(), true)
        ]
    );
    // The history in the order the latest-statement rule reads it: by time, per channel.
    let mut email = Vec::new();
    store
        .scan_subscription_history(a, &mut |_, ch, subscribed, at| {
            if ch.as_str() == "email" {
                email.push((subscribed, at - NOW));
            }
        })
        .unwrap();
    assert_eq!(email, [(false, -DAY), (true, 0), (false, 1)]);
    // They go with their customer.
    store.delete_customer(a, &cid("ana")).unwrap();
    let mut left = 0;
    store
        .scan_subscriptions(a, &mut |_, _, _| left += 1)
        .unwrap();
    assert_eq!(left, 0);
}

pub fn an_erased_customer_leaves_nothing_in_the_store_or_its_log(store: &dyn Store) {
    use unico_core::{FieldChange, FieldName, FieldType, Source, SubscriptionChange, Value};
    let a = app(store, "A");
    register(store, a, "purchase", 30);
    let note = store
        .create_field(
            a,
            &FieldName::parse("note").unwrap(),
            FieldType::String,
            NOW,
        )
        .unwrap();
    let set = |v: &str| FieldChange {
        field: note.id,
        value: Some(Value::String(v.into())),
    };
    let head = store.log_head();
    store
        .create_customer(a, &cid("gone"), &[set("secret-1")], NOW)
        .unwrap();
    store
        .update_customer(a, &cid("gone"), &[set("secret-2")], NOW + 1)
        .unwrap();
    store
        .create_customer(a, &cid("kept"), &[set("kept-1")], NOW)
        .unwrap();
    store
        .insert_events(
            a,
            vec![
                event(Some("k1"), "gone", "purchase", "web", NOW),
                event(Some("k2"), "kept", "purchase", "web", NOW),
            ],
            NOW,
        )
        .unwrap();
    store
        .set_subscriptions(
            a,
            &cid("gone"),
            &[SubscriptionChange {
                channel: channel("email"),
                subscribed: true,
                at: NOW,
                source: Source::api(),
            }],
            false,
            NOW,
        )
        .unwrap();
    let id = store.erase_customer(a, &cid("gone")).unwrap();
    assert!(matches!(
        store.get_customer(a, &cid("gone")),
        Err(StoreError::NotFound(_))
    ));
    assert!(matches!(
        store.erase_customer(a, &cid("gone")),
        Err(StoreError::NotFound(_))
    ));
    // Its events and consent went with it; the other customer's stayed.
    let mut left = Vec::new();
    store
        .scan_app(a, &mut |_| {}, &mut |_| true, &mut |e| {
            left.push(e.customer);
            true
        })
        .unwrap();
    assert!(!left.contains(&id) && left.len() == 1, "{left:?}");
    let mut consent = 0;
    store
        .scan_subscriptions(a, &mut |_, _, _| consent += 1)
        .unwrap();
    assert_eq!(consent, 0);
    // Every log entry about it is now a plain deletion, without its customerId or values;
    // the erasure is logged last, as an erasure (views drop the customer and rewrite their
    // snapshots), never as a plain deletion.
    let entries = store.read_log(head, 1000).unwrap();
    for e in &entries {
        match &e.change {
            Change::Customer { customer, .. } => {
                assert_ne!(customer.id, id, "an entry still holds the erased customer");
                assert_ne!(customer.customer_id.as_str(), "gone");
            }
            Change::Subscription { customer, .. } if *customer == id => {}
            _ => {}
        }
    }
    let tail: Vec<String> = logged(store, head).into_iter().rev().take(1).collect();
    assert_eq!(tail, ["erased"]);
    assert_eq!(store.get_customer(a, &cid("kept")).unwrap().fields.len(), 1);
}

pub fn the_audit_log_answers_newest_first_per_application_or_all(store: &dyn Store) {
    use crate::audit::NewAudit;
    let (a, b) = (app(store, "A"), app(store, "B"));
    let record = |app: Option<AppId>, action: &str, target: &str| {
        store
            .record_audit(&NewAudit {
                app,
                at: NOW,
                actor: "admin".into(),
                action: action.into(),
                target: target.into(),
            })
            .unwrap()
    };
    let first = record(Some(a), "key.created", "1");
    record(Some(b), "field.deleted", "city");
    let third = record(Some(a), "customer.erased", "42");
    record(None, "app.deleted", "9");
    let of_a: Vec<String> = store
        .audit_log(Some(a), None, 10)
        .unwrap()
        .into_iter()
        .map(|r| format!("{} {}", r.action, r.target))
        .collect();
    assert_eq!(of_a, ["customer.erased 42", "key.created 1"]);
    let all = store.audit_log(None, None, 10).unwrap();
    assert_eq!(all.len(), 4);
    assert_eq!(all[0].app, None);
    assert_eq!(all[0].action, "app.deleted");
    let page = store.audit_log(None, Some(third), 2).unwrap();
    assert_eq!(page.len(), 2);
    assert_eq!(page[1].id, first);
    // Records outlive their application.
    store.delete_app(b).unwrap();
    assert_eq!(store.audit_log(Some(b), None, 10).unwrap().len(), 1);
}

/// An import's subscription statements are applied with its rows, in its transaction:
/// kept with them, dropped with them, logged after the customers they belong to.
pub fn an_imports_consent_commits_with_its_rows(store: &dyn Store) {
    use crate::store::{ImportBatch, UpsertItem};
    use unico_core::{Source, SubscriptionChange};
    let a = app(store, "A");
    let item = |id: &str, subscribed: bool| UpsertItem {
        customer_id: cid(id),
        changes: vec![],
        subscriptions: vec![SubscriptionChange {
            channel: channel("email"),
            subscribed,
            at: NOW,
            source: Source::parse("csv").unwrap(),
        }],
    };
    let import = |items: Vec<UpsertItem>, keep: bool| {
        store
            .run_import(
                a,
                Box::new(vec![ImportBatch::Items(items), ImportBatch::End { keep }].into_iter()),
                NOW,
                Default::default(),
                None,
            )
            .unwrap()
    };
    let head = store.log_head();
    import(vec![item("ana", true), item("bob", false)], false);
    assert_eq!(store.count_customers(a).unwrap(), 0);
    assert!(logged(store, head).is_empty());
    let counts = import(vec![item("ana", true), item("bob", false)], true);
    assert_eq!((counts.created, counts.updated), (2, 0));
    assert_eq!(
        logged(store, head),
        [
            "customer ana",
            "customer bob",
            "subscription email true",
            "subscription email false"
        ]
    );
    let ana = store.subscriptions(a, &cid("ana")).unwrap();
    assert!(ana[0].subscribed);
    assert_eq!(ana[0].source.as_str(), "csv");
    assert_eq!(
        store
            .subscription_history(a, &cid("bob"), 10)
            .unwrap()
            .len(),
        1
    );
}

/// Events written in many batches, customers interleaved (so a customer's events lie in
/// several writes), some duplicates, some removed by retention: reading by id in any
/// chunk size gives each event once, in id order, and a customer's timeline pages give
/// its events newest first, whatever the page size and filters.
pub fn events_read_back_whole_however_they_were_written(store: &dyn Store) {
    let a = app(store, "A");
    register(store, a, "view", 30);
    register(store, a, "buy", 3650);
    let customers = ["ana", "bob", "cyd", "dee", "eve"];
    let mut n = 0i64;
    for batch in 0..6 {
        let items: Vec<NewEvent> = (0..1500)
            .map(|i| {
                n += 1;
                // A customer every few events, in runs and alone; times out of order.
                let who = customers[((i / 7 + i % 3 + batch) % customers.len() as i64) as usize];
                let ts = NOW - ((n * 7919) % 60) * DAY - (n % 1000);
                let kind = if n % 4 == 0 { "buy" } else { "view" };
                let ch = ["web", "app", "pos"][(n % 3) as usize];
                let key = (n % 5 != 0).then(|| format!("k{}", n % 7000));
                NewEvent {
                    device_id: (n % 11 == 0).then(|| format!("d{n}")),
                    ..event(key.as_deref(), who, kind, ch, ts)
                }
            })
            .collect();
        store.insert_events(a, items, NOW).unwrap();
    }
    // Everything by id, in one read and in small chunks.
    let all = store.read_events(a, 0, i64::MAX, 100_000).unwrap();
    assert!(all.windows(2).all(|w| w[0].id < w[1].id));
    let distinct: HashSet<_> = all.iter().filter_map(|e| e.event_id.clone()).collect();
    assert_eq!(
        distinct.len(),
        all.iter().filter(|e| e.event_id.is_some()).count(),
        "a key is stored once"
    );
    let chunked = |limit: usize| {
        let mut out = Vec::new();
        let mut from = 0;
        loop {
            let part = store.read_events(a, from, i64::MAX, limit).unwrap();
            let Some(last) = part.last() else {
                return out;
            };
            from = last.id + 1;
            out.extend(part.into_iter().map(|e| e.id));
        }
    };
    let ids: Vec<i64> = all.iter().map(|e| e.id).collect();
    assert_eq!(chunked(7), ids);
    assert_eq!(chunked(1000), ids);
    // A range in the middle.
    let (lo, hi) = (ids[100], ids[2000]);
    let middle: Vec<i64> = store
        .read_events(a, lo, hi, 100_000)
        .unwrap()
        .iter()
        .map(|e| e.id)
        .collect();
    assert_eq!(middle, ids[100..=2000]);
    // Retention takes the old views, then the timelines hold exactly what is left.
    let removed = store.expire_events(NOW).unwrap();
    let left = store.read_events(a, 0, i64::MAX, 100_000).unwrap();
    let expired =
        |e: &unico_core::Event| e.event_type.as_str() == "view" && e.timestamp < NOW - 30 * DAY;
    assert!(removed > 0);
    assert_eq!(
        left.len() as u64 + removed,
        all.len() as u64,
        "each event removed once"
    );
    assert!(left.iter().all(|e| !expired(e)));
    assert_eq!(left.len(), all.iter().filter(|e| !expired(e)).count());
    for who in customers {
        let id = store.get_customer(a, &cid(who)).unwrap().id;
        let mut mine: Vec<&unico_core::Event> = left.iter().filter(|e| e.customer == id).collect();
        mine.sort_by_key(|e| std::cmp::Reverse((e.timestamp, e.id)));
        for limit in [1, 3, 50, 1000] {
            let mut q = EventQuery {
                limit,
                ..Default::default()
            };
            let mut paged = Vec::new();
            loop {
                let page = store.customer_events(a, &cid(who), &q).unwrap();
                assert!(page.events.len() <= limit);
                paged.extend(page.events.iter().map(|e| e.id));
                match page.next {
                    Some(next) => q.after = Some(next),
                    None => break,
                }
            }
            let expected: Vec<i64> = mine.iter().map(|e| e.id).collect();
            assert_eq!(paged, expected, "{who}, pages of {limit}");
        }
        // Filtered by type, channel and a time range.
        let q = EventQuery {
            types: vec![code("buy")],
            channels: vec![channel("pos"), channel("web")],
            from: Some(NOW - 20 * DAY),
            to: Some(NOW - 2 * DAY),
            limit: 10_000,
            after: None,
        };
        let page = store.customer_events(a, &cid(who), &q).unwrap();
        let expected: Vec<i64> = mine
            .iter()
            .filter(|e| {
                e.event_type.as_str() == "buy"
                    && ["pos", "web"].contains(&e.channel.as_str())
                    && e.timestamp >= NOW - 20 * DAY
                    && e.timestamp < NOW - 2 * DAY
            })
            .map(|e| e.id)
            .collect();
        assert_eq!(
            page.events.iter().map(|e| e.id).collect::<Vec<_>>(),
            expected
        );
        let activity = store.customer_activity(a, &cid(who)).unwrap();
        assert_eq!(activity.events, mine.len() as u64);
        assert_eq!(activity.last_seen, mine.first().map(|e| e.timestamp));
        assert_eq!(activity.first_seen, mine.iter().map(|e| e.timestamp).min());
    }
}

/// A shorter retention applies at the next removal; a longer one keeps what it covers.
/// Retention reaches every event of one write as each comes due, however the write spreads
/// its events over customers and times, and after one of its customers is gone.
pub fn retention_reaches_each_event_of_a_write_as_it_comes_due(store: &dyn Store) {
    let a = app(store, "A");
    register(store, a, "view", 30);
    register(store, a, "buy", 365);
    let mut events = Vec::new();
    for i in 0..40 {
        let who = format!("c{i}");
        events.push(event(None, &who, "view", "web", NOW - (20 + i) * DAY));
        events.push(event(None, &who, "buy", "pos", NOW - i * DAY));
    }
    store.insert_events(a, events, NOW).unwrap();
    store.delete_customer(a, &cid("c39")).unwrap();
    // Views older than 30 days: c11 to c38 (c39 is gone).
    assert_eq!(store.expire_events(NOW).unwrap(), 28);
    assert_eq!(store.expire_events(NOW).unwrap(), 0);
    // Five days on, the views of c6 to c10 are past it too.
    assert_eq!(store.expire_events(NOW + 5 * DAY).unwrap(), 5);
    assert_eq!(
        store.customer_activity(a, &cid("c6")).unwrap().events,
        1,
        "c6 keeps its purchase"
    );
    assert_eq!(store.customer_activity(a, &cid("c5")).unwrap().events, 2);
    // A year on, the last six views and every purchase.
    assert_eq!(store.expire_events(NOW + 366 * DAY).unwrap(), 6 + 39);
    for i in 0..39 {
        let left = store
            .customer_activity(a, &cid(&format!("c{i}")))
            .unwrap()
            .events;
        assert_eq!(left, 0, "c{i}");
    }
    assert_eq!(store.expire_events(NOW + 400 * DAY).unwrap(), 0);
}

pub fn a_changed_retention_applies_to_stored_events(store: &dyn Store) {
    let a = app(store, "A");
    register(store, a, "view", 30);
    store
        .insert_events(
            a,
            vec![
                event(None, "ana", "view", "web", NOW - 20 * DAY),
                event(None, "ana", "view", "web", NOW - 10 * DAY),
                event(None, "ana", "view", "web", NOW - DAY),
            ],
            NOW,
        )
        .unwrap();
    assert_eq!(store.expire_events(NOW).unwrap(), 0);
    let patch = |days| EventTypePatch {
        retention_days: Some(days),
        ..Default::default()
    };
    store
        .update_event_type(a, &code("view"), &patch(5))
        .unwrap();
    assert_eq!(store.expire_events(NOW).unwrap(), 2);
    store
        .update_event_type(a, &code("view"), &patch(400))
        .unwrap();
    // Two days later the last one is three days old: within 400 days.
    assert_eq!(store.expire_events(NOW + 2 * DAY).unwrap(), 0);
    store
        .update_event_type(a, &code("view"), &patch(2))
        .unwrap();
    assert_eq!(store.expire_events(NOW + 2 * DAY).unwrap(), 1);
    assert_eq!(store.customer_activity(a, &cid("ana")).unwrap().events, 0);
}

/// The outcome of each event of `batch` sent through `insert_events`: its id (the one
/// stored, or the one it duplicates) and whether it was a duplicate.
fn sent(store: &dyn Store, app: AppId, batch: Vec<NewEvent>) -> Vec<(i64, bool)> {
    store
        .insert_events(app, batch, NOW)
        .unwrap()
        .into_iter()
        .map(|o| {
            let o = o.unwrap();
            (o.id, o.duplicate)
        })
        .collect()
}

/// Every event of the application, as (key, id), sorted by key.
fn keys_stored(store: &dyn Store, app: AppId) -> Vec<(String, i64)> {
    let mut keys: Vec<(String, i64)> = store
        .read_events(app, 0, i64::MAX, 1_000_000)
        .unwrap()
        .into_iter()
        .filter_map(|e| e.event_id.map(|k| (k, e.id)))
        .collect();
    keys.sort();
    keys
}

pub fn imports_keep_each_key_once_whoever_held_it_before(store: &dyn Store) {
    let a = app(store, "A");
    let b = app(store, "B");
    register(store, a, "purchase", 3650);
    register(store, b, "purchase", 3650);
    let ev = |key: &str, customer: &str| event(Some(key), customer, "purchase", "web", NOW - DAY);
    // Keys sent one by one before any import.
    let before = sent(store, a, vec![ev("k1", "ana"), ev("k2", "ana")]);
    // A first import: new keys (a key twice in one batch and across batches), a key held
    // by an earlier event, and a duplicate whose customer does not exist (it creates
    // nobody).
    let first: Vec<NewEvent> = (0..300)
        .map(|i| ev(&format!("n{i}"), &format!("c{}", i % 40)))
        .collect();
    let counts = run_events_import(
        store,
        a,
        vec![
            first[..150].to_vec(),
            vec![
                ev("n7", "c7"),
                ev("k1", "ana"),
                ev("dup-in-batch", "c1"),
                ev("dup-in-batch", "c1"),
            ],
            first[150..].to_vec(),
            vec![ev("n8", "nobody-yet"), ev("n299", "c3")],
        ],
        true,
    )
    .unwrap();
    assert!(counts.kept);
    assert_eq!(counts.updated, 5, "n7, k1, dup-in-batch, n8 and n299 again");
    assert!(store.get_customer(a, &cid("nobody-yet")).is_err());
    let after_first = keys_stored(store, a);
    assert_eq!(after_first.len(), 2 + 300 + 1);
    let id_of =
        |keys: &[(String, i64)], k: &str| keys.iter().find(|(key, _)| key == k).map(|(_, id)| *id);
    assert_eq!(id_of(&after_first, "k1"), Some(before[0].0));
    // An import not kept takes no key.
    let counts = run_events_import(
        store,
        a,
        vec![vec![ev("lost", "ana"), ev("n1", "ana")]],
        false,
    )
    .unwrap();
    assert!(!counts.kept);
    // Another application's keys are its own.
    let other = sent(store, b, vec![ev("n1", "ana"), ev("k1", "ana")]);
    assert!(other.iter().all(|&(_, dup)| !dup));
    // Sent one by one after the import: its keys are duplicates, the lost one is new.
    let later = sent(
        store,
        a,
        vec![
            ev("n3", "ana"),
            ev("n250", "bob"),
            ev("lost", "ana"),
            ev("k2", "ana"),
        ],
    );
    assert_eq!(later[0], (id_of(&after_first, "n3").unwrap(), true));
    assert_eq!(later[1], (id_of(&after_first, "n250").unwrap(), true));
    assert!(!later[2].1);
    assert_eq!(later[3], (before[1].0, true));
    // Keys whose events are gone are free again: the customer c5 deleted (n5, n45, ...).
    let freed: Vec<String> = (0..300)
        .filter(|i| i % 40 == 5)
        .map(|i| format!("n{i}"))
        .collect();
    store.delete_customer(a, &cid("c5")).unwrap();
    let resent = sent(store, a, vec![ev(&freed[0], "dan")]);
    assert!(
        !resent[0].1,
        "a key whose event is gone is taken by the new one"
    );
    // A second import: the first's keys (duplicates), freed keys (stored again: one sent
    // since is a duplicate of that one), keys sent one by one, and new keys.
    let mut second: Vec<NewEvent> = (0..200)
        .map(|i| ev(&format!("m{i}"), &format!("d{}", i % 30)))
        .collect();
    second.extend(freed.iter().map(|k| ev(k, "eve")));
    second.extend([
        ev("n10", "eve"),
        ev("lost", "eve"),
        ev("k1", "eve"),
        ev("m3", "eve"),
    ]);
    let counts = run_events_import(
        store,
        a,
        vec![second[..120].to_vec(), second[120..].to_vec()],
        true,
    )
    .unwrap();
    assert!(counts.kept);
    assert_eq!(
        counts.updated,
        1 + 4,
        "freed[0] (sent since), n10, lost, k1 and m3 again"
    );
    let after_second = keys_stored(store, a);
    let distinct: HashSet<&str> = after_second.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(distinct.len(), after_second.len(), "a key is stored once");
    assert_eq!(id_of(&after_second, &freed[0]), Some(resent[0].0));
    for k in &freed[1..] {
        assert!(id_of(&after_second, k).unwrap() > id_of(&after_first, k).unwrap());
    }
    // Everything is a duplicate now, whichever way it is sent.
    let all: Vec<NewEvent> = after_second.iter().map(|(k, _)| ev(k, "zed")).collect();
    let again = sent(store, a, all.clone());
    for ((k, id), (got, dup)) in after_second.iter().zip(&again) {
        assert!(*dup, "{k} is held");
        assert_eq!(got, id, "{k}");
    }
    let counts = run_events_import(store, a, vec![all], true).unwrap();
    assert_eq!(counts.updated as usize, after_second.len());
    assert_eq!(keys_stored(store, a), after_second);
    assert!(
        store.get_customer(a, &cid("zed")).is_err(),
        "duplicates create nobody"
    );
}
