//! Conformance cases for identities, anonymous customers, merges and aliases.

use std::sync::Arc;

use unico_core::{
    AppId, Channel, EventCode, EventType, FieldType, Identity, IdentityKind, Source,
    SubscriptionChange, Value,
};

use super::{app, cid, field, logged, set};
use crate::error::StoreError;
use crate::events::{EventQuery, NewEvent};
use crate::identities::ByIdentity;
use crate::store::{ImportBatch, Store, UpsertItem};

/// 2026-12-01T00:00:00Z.
const NOW: i64 = 1_796_083_200_000;

fn ident(kind: &str, value: &str) -> Identity {
    Identity::new(IdentityKind::parse(kind).unwrap(), value).unwrap()
}

fn register(store: &dyn Store, app: AppId) {
    store
        .create_event_type(
            app,
            &EventType {
                code: EventCode::parse("view").unwrap(),
                name: "View".into(),
                retention_days: 365,
                enabled: true,
                properties: vec![],
                created_at: NOW,
            },
        )
        .unwrap();
}

fn event(customer: &str, key: Option<String>, by: Option<ByIdentity>) -> NewEvent {
    NewEvent {
        event_id: key,
        customer_id: cid(customer),
        by_identity: by.map(Box::new),
        event_type: EventCode::parse("view").unwrap(),
        channel: Channel::parse("web").unwrap(),
        device_id: None,
        timestamp: NOW,
        properties: Default::default(),
    }
}

fn events_of(store: &dyn Store, app: AppId, customer: &str) -> u64 {
    store.customer_activity(app, &cid(customer)).unwrap().events
}

fn consent(channel: &str, subscribed: bool, at: i64) -> SubscriptionChange {
    SubscriptionChange {
        channel: Channel::parse(channel).unwrap(),
        subscribed,
        at,
        source: Source::api(),
    }
}

/// One identity value belongs to one customer of an application; linking is idempotent,
/// lookups find the holder, unlinking frees the value.
pub fn identities_are_unique_per_application_and_found_by_value(store: &dyn Store) {
    let a = app(store, "A");
    let b = app(store, "B");
    store.create_customer(a, &cid("ana"), &[], NOW).unwrap();
    store.create_customer(a, &cid("bob"), &[], NOW).unwrap();
    store.create_customer(b, &cid("bob"), &[], NOW).unwrap();
    let email = ident("email", " Ana@Example.com");
    let out = store.link_identity(a, &cid("ana"), &email, NOW).unwrap();
    assert!(out.linked && out.merged.is_none());
    let again = store
        .link_identity(a, &cid("ana"), &email, NOW + 1)
        .unwrap();
    assert!(
        !again.linked,
        "linking a held identity again writes nothing"
    );
    match store.link_identity(a, &cid("bob"), &email, NOW) {
        Err(StoreError::Conflict(m)) => assert!(m.contains("\"ana\""), "{m}"),
        other => panic!("{other:?}"),
    }
    // Another application is another world.
    store.link_identity(b, &cid("bob"), &email, NOW).unwrap();
    store
        .link_identity(a, &cid("ana"), &ident("phone", "+34 600 000 001"), NOW)
        .unwrap();
    let held: Vec<String> = store
        .identities(a, &cid("ana"))
        .unwrap()
        .iter()
        .map(|h| h.identity.to_string())
        .collect();
    assert_eq!(held, ["email ana@example.com", "phone +34600000001"]);
    let found = store
        .find_identity(a, &ident("email", "ANA@example.com"))
        .unwrap();
    assert_eq!(found.unwrap().customer_id.as_str(), "ana");
    assert_eq!(
        store
            .find_identity(b, &email)
            .unwrap()
            .unwrap()
            .customer_id
            .as_str(),
        "bob"
    );
    assert!(
        store
            .find_identity(a, &ident("email", "x@y.z"))
            .unwrap()
            .is_none()
    );
    assert!(matches!(
        store.link_identity(a, &cid("nobody"), &email, NOW),
        Err(StoreError::NotFound(_))
    ));
    assert!(matches!(
        store.unlink_identity(a, &cid("bob"), &email),
        Err(StoreError::NotFound(_))
    ));
    store.unlink_identity(a, &cid("ana"), &email).unwrap();
    store.link_identity(a, &cid("bob"), &email, NOW).unwrap();
    // A deleted customer's identities go with it.
    store.delete_customer(a, &cid("bob")).unwrap();
    assert!(store.find_identity(a, &email).unwrap().is_none());
}

/// Concurrent links of one value to different customers: exactly one wins.
pub fn concurrent_links_of_one_identity_have_one_winner(store: &dyn Store) {
    let a = app(store, "A");
    let store: Arc<&dyn Store> = Arc::new(store);
    for i in 0..8 {
        store
            .create_customer(a, &cid(&format!("c{i}")), &[], NOW)
            .unwrap();
    }
    let email = ident("email", "shared@example.com");
    let wins = std::thread::scope(|s| {
        let handles: Vec<_> = (0..8)
            .map(|i| {
                let store = Arc::clone(&store);
                let email = email.clone();
                s.spawn(
                    move || match store.link_identity(a, &cid(&format!("c{i}")), &email, NOW) {
                        Ok(out) => {
                            assert!(out.linked);
                            1
                        }
                        Err(StoreError::Conflict(_)) => 0,
                        Err(e) => panic!("{e}"),
                    },
                )
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).sum::<u32>()
    });
    assert_eq!(wins, 1);
    assert!(store.find_identity(a, &email).unwrap().is_some());
}

/// A merge moves events, identities, consent and aliases to the survivor, fills the
/// fields it lacks, keeps its own values (recording those that lost), and leaves the
/// merged customerId as an alias every later read and write resolves.
pub fn a_merge_moves_everything_and_leaves_an_alias(store: &dyn Store) {
    let a = app(store, "A");
    register(store, a);
    let age = field(store, a, "age", FieldType::Number);
    let city = field(store, a, "city", FieldType::String);
    let tier = field(store, a, "tier", FieldType::String);
    let text = |t: &str| Value::String(t.into());
    store
        .create_customer(
            a,
            &cid("ana"),
            &[set(&age, Value::Number(30.0)), set(&city, text("Madrid"))],
            NOW,
        )
        .unwrap();
    store
        .create_customer(
            a,
            &cid("bob"),
            &[set(&city, text("Sevilla")), set(&tier, text("gold"))],
            NOW,
        )
        .unwrap();
    let evs: Vec<NewEvent> = (0..3)
        .map(|i| event("ana", Some(format!("a{i}")), None))
        .chain((0..2).map(|i| event("bob", Some(format!("b{i}")), None)))
        .collect();
    store.insert_events(a, evs, NOW).unwrap();
    store
        .link_identity(a, &cid("ana"), &ident("email", "ana@x.com"), NOW)
        .unwrap();
    store
        .link_identity(a, &cid("bob"), &ident("device_id", "d-1"), NOW)
        .unwrap();
    store
        .set_subscriptions(a, &cid("ana"), &[consent("email", true, NOW)], false, NOW)
        .unwrap();
    store
        .set_subscriptions(
            a,
            &cid("bob"),
            &[consent("email", false, NOW + 5), consent("sms", true, NOW)],
            false,
            NOW,
        )
        .unwrap();

    let head = store.log_head();
    let out = store
        .merge_customers(a, &cid("ana"), &cid("bob"), NOW + 10)
        .unwrap();
    assert_eq!(out.customer.customer_id.as_str(), "ana");
    assert_eq!(out.from.as_str(), "bob");
    assert_eq!(
        (
            out.events_moved,
            out.identities_moved,
            out.subscriptions_moved
        ),
        (2, 1, 2)
    );
    assert_eq!(out.fields_filled, vec![tier.id]);
    assert_eq!(out.lost, vec![(city.id, text("Sevilla"))]);
    assert_eq!(
        logged(store, head),
        [
            "customer ana",
            "subscription email false",
            "subscription sms true",
            "deleted",
            "events 2"
        ]
    );
    let ana = store.get_customer(a, &cid("ana")).unwrap();
    assert_eq!(
        ana.fields,
        vec![
            (age.id, Value::Number(30.0)),
            (city.id, text("Madrid")),
            (tier.id, text("gold"))
        ]
    );
    assert_eq!(events_of(store, a, "ana"), 5);
    let page = store
        .customer_events(
            a,
            &cid("ana"),
            &EventQuery {
                limit: 10,
                ..Default::default()
            },
        )
        .unwrap();
    assert!(page.events.iter().all(|e| e.customer == ana.id));
    assert_eq!(store.identities(a, &cid("ana")).unwrap().len(), 2);
    let standing: Vec<(String, bool)> = store
        .subscriptions(a, &cid("ana"))
        .unwrap()
        .iter()
        .map(|s| (s.channel.to_string(), s.subscribed))
        .collect();
    assert_eq!(
        standing,
        [("email".to_owned(), false), ("sms".to_owned(), true)],
        "the latest statement per channel stands"
    );
    assert_eq!(
        store
            .subscription_history(a, &cid("ana"), 100)
            .unwrap()
            .len(),
        3
    );
    let value_counts: Vec<u64> = store
        .field_stats(a)
        .unwrap()
        .iter()
        .map(|s| s.value_count)
        .collect();
    assert_eq!(value_counts, [1, 1, 1]);
    assert_eq!(store.count_customers(a).unwrap(), 1);

    // The merged id finds the survivor for reads and writes, events and imports.
    assert_eq!(store.get_customer(a, &cid("bob")).unwrap().id, ana.id);
    store
        .update_customer(a, &cid("bob"), &[set(&age, Value::Number(31.0))], NOW + 20)
        .unwrap();
    store
        .insert_events(a, vec![event("bob", None, None)], NOW)
        .unwrap();
    assert_eq!(events_of(store, a, "ana"), 6);
    let counts = store
        .run_import(
            a,
            Box::new(
                vec![
                    ImportBatch::Items(vec![UpsertItem {
                        customer_id: cid("bob"),
                        changes: vec![set(&city, text("Bilbao"))],
                        subscriptions: vec![],
                    }]),
                    ImportBatch::End { keep: true },
                ]
                .into_iter(),
            ),
            NOW + 30,
            Default::default(),
            None,
        )
        .unwrap();
    assert_eq!((counts.created, counts.updated), (0, 1));
    let ana = store.get_customer(a, &cid("ana")).unwrap();
    assert_eq!(
        ana.fields[..2],
        [(age.id, Value::Number(31.0)), (city.id, text("Bilbao"))]
    );
    assert!(matches!(
        store.create_customer(a, &cid("bob"), &[], NOW),
        Err(StoreError::Conflict(_))
    ));
    assert_eq!(store.count_customers(a).unwrap(), 1);
    let merges = store.merges(a, &cid("ana")).unwrap();
    assert_eq!(merges.len(), 1);
    assert_eq!(merges[0].alias.as_str(), "bob");
    assert_eq!(merges[0].lost, vec![(city.id, text("Sevilla"))]);

    // A customer cannot be merged into itself, not even through its alias.
    for (into, from) in [("ana", "ana"), ("ana", "bob"), ("bob", "ana")] {
        assert!(
            matches!(
                store.merge_customers(a, &cid(into), &cid(from), NOW),
                Err(StoreError::Invalid(_))
            ),
            "{into} <- {from}"
        );
    }
    assert!(matches!(
        store.merge_customers(a, &cid("ana"), &cid("nobody"), NOW),
        Err(StoreError::NotFound(_))
    ));
    // Merging the survivor on: its aliases follow, no chain or cycle is left.
    store.create_customer(a, &cid("carl"), &[], NOW).unwrap();
    store
        .merge_customers(a, &cid("carl"), &cid("bob"), NOW + 40)
        .unwrap();
    for alias in ["ana", "bob", "carl"] {
        assert_eq!(
            store
                .get_customer(a, &cid(alias))
                .unwrap()
                .customer_id
                .as_str(),
            "carl"
        );
    }
    assert_eq!(events_of(store, a, "carl"), 6);
    assert_eq!(store.merges(a, &cid("carl")).unwrap().len(), 2);
}

/// An event naming an identity nobody holds creates an anonymous customer holding it
/// (when allowed) or is refused; linking that identity to a known customer merges the
/// anonymous one into it; two known customers are never merged by a link.
pub fn anonymous_customers_are_merged_when_their_identity_is_linked(store: &dyn Store) {
    let a = app(store, "A");
    register(store, a);
    let device = ident("device_id", "phone-7");
    let by = |anonymous: Option<&str>| {
        Some(ByIdentity {
            identity: device.clone(),
            anonymous: anonymous.map(cid),
        })
    };
    let refused = store
        .insert_events(a, vec![event("ignored", None, by(None))], NOW)
        .unwrap();
    assert!(matches!(refused[0], Err(StoreError::NotFound(_))));
    assert_eq!(store.count_customers(a).unwrap(), 0);
    let out = store
        .insert_events(
            a,
            vec![
                event("ignored", Some("e1".into()), by(Some("anon-1"))),
                event("ignored", Some("e2".into()), by(Some("anon-1"))),
                event("ignored", Some("e1".into()), by(Some("anon-1"))),
            ],
            NOW,
        )
        .unwrap();
    assert!(out[0].as_ref().unwrap().customer_created);
    assert!(!out[1].as_ref().unwrap().customer_created);
    assert!(out[2].as_ref().unwrap().duplicate);
    assert!(store.is_anonymous(a, &cid("anon-1")).unwrap());
    assert_eq!(events_of(store, a, "anon-1"), 2);
    assert_eq!(
        store
            .find_identity(a, &device)
            .unwrap()
            .unwrap()
            .customer_id
            .as_str(),
        "anon-1"
    );
    let age = field(store, a, "age", FieldType::Number);
    store
        .update_customer(a, &cid("anon-1"), &[set(&age, Value::Number(20.0))], NOW)
        .unwrap();

    // The sign-in: the device is linked to a known customer.
    store
        .create_customer(a, &cid("ana"), &[set(&age, Value::Number(30.0))], NOW)
        .unwrap();
    let linked = store
        .link_identity(a, &cid("ana"), &device, NOW + 1)
        .unwrap();
    let merged = linked.merged.expect("the anonymous customer is merged");
    assert_eq!(merged.from.as_str(), "anon-1");
    assert_eq!(merged.events_moved, 2);
    assert_eq!(merged.lost, vec![(age.id, Value::Number(20.0))]);
    assert_eq!(events_of(store, a, "ana"), 2);
    assert!(!store.is_anonymous(a, &cid("ana")).unwrap());
    assert_eq!(store.count_customers(a).unwrap(), 1);
    // Later events of the device land on the known customer.
    store
        .insert_events(a, vec![event("ignored", None, by(Some("anon-1")))], NOW)
        .unwrap();
    assert_eq!(events_of(store, a, "ana"), 3);

    // A known customer holding an identity is never merged by a link.
    store.create_customer(a, &cid("bob"), &[], NOW).unwrap();
    assert!(matches!(
        store.link_identity(a, &cid("bob"), &device, NOW),
        Err(StoreError::Conflict(_))
    ));
    assert_eq!(store.count_customers(a).unwrap(), 2);
}

/// Events written concurrently to both sides of a merge all end on the survivor.
pub fn a_merge_racing_event_writes_loses_nothing(store: &dyn Store) {
    let a = app(store, "A");
    register(store, a);
    store.create_customer(a, &cid("ana"), &[], NOW).unwrap();
    store.create_customer(a, &cid("bob"), &[], NOW).unwrap();
    let store: Arc<&dyn Store> = Arc::new(store);
    let per_writer = 200u64;
    std::thread::scope(|s| {
        for who in ["ana", "bob"] {
            let store = Arc::clone(&store);
            s.spawn(move || {
                for i in 0..per_writer {
                    let out = store
                        .insert_events(a, vec![event(who, Some(format!("{who}{i}")), None)], NOW)
                        .unwrap();
                    assert!(out[0].is_ok(), "{out:?}");
                }
            });
        }
        let store = Arc::clone(&store);
        s.spawn(move || {
            std::thread::sleep(std::time::Duration::from_millis(5));
            store
                .merge_customers(a, &cid("ana"), &cid("bob"), NOW)
                .unwrap();
        });
    });
    assert_eq!(store.count_customers(a).unwrap(), 1);
    assert_eq!(events_of(*store, a, "ana"), 2 * per_writer);
}

/// Erasing a survivor removes its identities and aliases: nothing finds it any more.
pub fn erasing_a_survivor_removes_its_identities_and_aliases(store: &dyn Store) {
    let a = app(store, "A");
    let ana = store.create_customer(a, &cid("ana"), &[], NOW).unwrap().id;
    let bob = store.create_customer(a, &cid("bob"), &[], NOW).unwrap().id;
    store
        .link_identity(a, &cid("bob"), &ident("email", "bob@x.com"), NOW)
        .unwrap();
    store
        .merge_customers(a, &cid("ana"), &cid("bob"), NOW)
        .unwrap();
    store.erase_customer(a, &cid("bob")).unwrap();
    assert!(matches!(
        store.get_customer(a, &cid("ana")),
        Err(StoreError::NotFound(_))
    ));
    assert!(matches!(
        store.get_customer(a, &cid("bob")),
        Err(StoreError::NotFound(_))
    ));
    assert!(
        store
            .find_identity(a, &ident("email", "bob@x.com"))
            .unwrap()
            .is_none()
    );
    // The old ids are free again.
    store.create_customer(a, &cid("bob"), &[], NOW).unwrap();
    let log = store.read_log(0, 10_000).unwrap();
    assert!(
        !log.iter().any(|e| matches!(&e.change,
            crate::Change::Customer { customer, .. } if customer.id == ana || customer.id == bob)),
        "the entries of the erased survivor and of the customer merged into it were scrubbed"
    );
}
