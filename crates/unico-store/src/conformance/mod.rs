//! The behaviour every [`Store`] backend must show, as test cases.
//!
//! Each case takes a fresh, empty store. A backend proves itself with
//! `unico_store::conformance_suite!(make_store())`, which expands to one `#[test]` per case;
//! `make_store()` must evaluate to `(store, guard)`, the guard keeping temporary resources
//! alive for the test's duration.

// This module is a test suite shipped as library code so every backend can run it: a
// failed unwrap is a failed test, exactly like in a #[test] function.
#![allow(clippy::unwrap_used)]

use unico_core::{
    AppId, AppName, Customer, CustomerId, FieldChange, FieldDef, FieldName, FieldType,
    TimeZoneName, Value,
};

use crate::cursor::Cursor;
use crate::error::StoreError;
use crate::store::{
    ImportBatch, ImportMode, ImportRowError, ImportState, ListQuery, Sort, SortBy, Store,
    UpsertItem,
};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

mod events;
mod identities;
mod imports;
mod sessions;
pub use events::*;
pub use identities::*;
pub use imports::*;
pub use sessions::*;

/// Expands to one `#[test]` per conformance case for the backend made by `$make`.
#[macro_export]
macro_rules! conformance_suite {
    ($make:expr) => {
        $crate::conformance_suite!(@cases $make;
            meta_round_trips, apps_lifecycle, keys_are_found_by_hash_until_revoked,
            fields_are_unique_per_app_and_bounded, field_type_changes_only_while_empty,
            deleting_a_field_removes_its_values_for_good, customers_lifecycle,
            updated_at_moves_only_when_a_value_changes, value_counts_follow_every_write,
            batch_upserts_in_order_and_isolates_failures, customer_id_order_is_byte_order,
            pagination_visits_every_customer_once, field_sort_puts_missing_values_last,
            created_and_updated_sorts, applications_are_isolated, every_type_round_trips,
            deleting_an_app_deletes_its_data, scan_visits_every_customer,
            a_kept_import_writes_everything, an_import_not_kept_writes_nothing,
            an_import_whose_feed_dies_writes_nothing, import_history_round_trips,
            an_imports_record_commits_with_its_writes,
            committed_changes_are_logged_in_order, segments_lifecycle,
            logged_customer_changes_say_what_they_changed,
            segment_names_are_unique_per_application_without_case,
            customers_by_ids_keep_the_order_asked, the_log_is_ordered_and_followed_from_any_point,
            imports_announce_their_customers_or_their_ids,
            a_large_import_applies_every_row_in_file_order,
            concurrent_writers_of_one_customer_take_turns,
            an_import_racing_patches_keeps_both, an_import_not_kept_racing_patches_keeps_only_them,
            a_follower_sees_every_commit_once_in_commit_order,
            event_types_lifecycle, events_are_stored_once_per_key_and_create_customers,
            unregistered_and_disabled_types_are_item_errors, the_timeline_pages_newest_first,
            events_follow_their_customer_and_application, retention_removes_old_events,
            events_read_back_whole_however_they_were_written,
            a_changed_retention_applies_to_stored_events,
            retention_reaches_each_event_of_a_write_as_it_comes_due,
            events_are_logged_and_read_back_by_id, a_scan_holds_customers_and_events,
            concurrent_event_writers_store_each_key_once, an_events_import_is_all_or_nothing,
            an_events_import_record_commits_with_its_writes,
            imports_keep_each_key_once_whoever_held_it_before,
            an_application_may_register_types_on_first_sight,
            computed_fields_are_defined_logged_and_never_written,
            subscriptions_keep_the_latest_statement_and_every_change,
            an_imports_consent_commits_with_its_rows,
            an_erased_customer_leaves_nothing_in_the_store_or_its_log,
            the_audit_log_answers_newest_first_per_application_or_all,
            identities_are_unique_per_application_and_found_by_value,
            concurrent_links_of_one_identity_have_one_winner,
            a_merge_moves_everything_and_leaves_an_alias,
            anonymous_customers_are_merged_when_their_identity_is_linked,
            a_merge_racing_event_writes_loses_nothing,
            erasing_a_survivor_removes_its_identities_and_aliases,
            console_sessions_are_found_until_ended,
            console_sessions_end_when_idle_and_at_their_maximum_age,
            console_sessions_are_bounded_per_key_application_and_in_all
        );
    };
    (@cases $make:expr; $($case:ident),* $(,)?) => {
        $(
            #[test]
            fn $case() {
                let (store, _guard) = $make;
                $crate::conformance::$case(&store);
            }
        )*
    };
}

fn app(store: &dyn Store, name: &str) -> AppId {
    store
        .create_app(&AppName::parse(name).unwrap(), &TimeZoneName::utc(), 1_000)
        .unwrap()
        .id
}

fn field(store: &dyn Store, app: AppId, name: &str, ty: FieldType) -> FieldDef {
    store
        .create_field(app, &FieldName::parse(name).unwrap(), ty, 1_000)
        .unwrap()
}

fn cid(text: &str) -> CustomerId {
    CustomerId::parse(text).unwrap()
}

fn set(field: &FieldDef, value: Value) -> FieldChange {
    FieldChange {
        field: field.id,
        value: Some(value),
    }
}

fn unset(field: &FieldDef) -> FieldChange {
    FieldChange {
        field: field.id,
        value: None,
    }
}

fn all_ids(store: &dyn Store, app: AppId, sort: Sort, limit: usize) -> Vec<String> {
    let mut ids = Vec::new();
    let mut after = None;
    loop {
        let page = store
            .list_customers(
                app,
                &ListQuery {
                    sort: sort.clone(),
                    after,
                    limit,
                },
            )
            .unwrap();
        assert!(page.customers.len() <= limit);
        ids.extend(
            page.customers
                .iter()
                .map(|c| c.customer_id.as_str().to_owned()),
        );
        match page.next {
            // The cursor survives its text form, as clients hand it back.
            Some(next) => after = Some(Cursor::decode(&next.encode(), &sort).unwrap()),
            None => return ids,
        }
    }
}

pub fn meta_round_trips(store: &dyn Store) {
    assert_eq!(store.get_meta("k").unwrap(), None);
    store.set_meta("k", "v1").unwrap();
    store.set_meta("k", "v2").unwrap();
    assert_eq!(store.get_meta("k").unwrap().as_deref(), Some("v2"));
}

pub fn apps_lifecycle(store: &dyn Store) {
    let tz = TimeZoneName::parse("Europe/Madrid").unwrap();
    let created = store
        .create_app(&AppName::parse("Shop").unwrap(), &tz, 42)
        .unwrap();
    assert_eq!(created.name.as_str(), "Shop");
    assert_eq!(created.timezone, tz);
    assert_eq!(created.created_at, 42);
    assert_eq!(store.get_app(created.id).unwrap(), created);
    let renamed = store
        .update_app(created.id, Some(&AppName::parse("Shop 2").unwrap()), None)
        .unwrap();
    assert_eq!(renamed.name.as_str(), "Shop 2");
    assert_eq!(renamed.timezone, tz);
    assert_eq!(store.list_apps().unwrap(), vec![renamed]);
    store.delete_app(created.id).unwrap();
    assert!(matches!(
        store.get_app(created.id),
        Err(StoreError::NotFound(_))
    ));
    assert!(matches!(
        store.delete_app(created.id),
        Err(StoreError::NotFound(_))
    ));
}

pub fn keys_are_found_by_hash_until_revoked(store: &dyn Store) {
    let a = app(store, "A");
    let b = app(store, "B");
    let key = store.create_key(a, &[7; 32], "uk_abc", 5).unwrap();
    assert_eq!(key.app, a);
    assert_eq!(store.find_key(&[7; 32]).unwrap(), Some(key.clone()));
    assert_eq!(store.find_key(&[8; 32]).unwrap(), None);
    assert!(
        matches!(store.revoke_key(b, key.id, 6), Err(StoreError::NotFound(_))),
        "another app cannot revoke it"
    );
    store.revoke_key(a, key.id, 6).unwrap();
    assert_eq!(store.find_key(&[7; 32]).unwrap(), None);
    assert_eq!(store.list_keys(a).unwrap()[0].revoked_at, Some(6));
    assert!(matches!(
        store.revoke_key(a, key.id, 7),
        Err(StoreError::NotFound(_))
    ));
}

pub fn fields_are_unique_per_app_and_bounded(store: &dyn Store) {
    let a = app(store, "A");
    let b = app(store, "B");
    field(store, a, "age", FieldType::Number);
    field(store, b, "age", FieldType::String);
    let again = store.create_field(a, &FieldName::parse("age").unwrap(), FieldType::Number, 1);
    assert!(matches!(again, Err(StoreError::Conflict(_))));
    field(store, a, "Age", FieldType::Number);
    for i in 2..unico_core::limits::MAX_FIELDS_PER_APP {
        field(store, a, &format!("f{i}"), FieldType::String);
    }
    let past = store.create_field(
        a,
        &FieldName::parse("one_too_many").unwrap(),
        FieldType::String,
        1,
    );
    assert!(matches!(past, Err(StoreError::Limit(_))));
    assert_eq!(
        store.schema(a).unwrap().len(),
        unico_core::limits::MAX_FIELDS_PER_APP
    );
    assert_eq!(
        store.schema(b).unwrap().by_name("age").unwrap().field_type,
        FieldType::String
    );
}

pub fn field_type_changes_only_while_empty(store: &dyn Store) {
    let a = app(store, "A");
    let age = field(store, a, "age", FieldType::String);
    let name = FieldName::parse("age").unwrap();
    store
        .create_customer(a, &cid("x"), &[set(&age, Value::String("31".into()))], 1)
        .unwrap();
    assert!(matches!(
        store.set_field_type(a, &name, FieldType::Number),
        Err(StoreError::Conflict(_))
    ));
    store
        .update_customer(a, &cid("x"), &[unset(&age)], 2)
        .unwrap();
    let retyped = store.set_field_type(a, &name, FieldType::Number).unwrap();
    assert_eq!(retyped.field_type, FieldType::Number);
    assert_eq!(
        store.schema(a).unwrap().by_name("age").unwrap().field_type,
        FieldType::Number
    );
    let stale = store.update_customer(a, &cid("x"), &[set(&age, Value::String("31".into()))], 3);
    assert!(
        matches!(stale, Err(StoreError::Conflict(_))),
        "a value of the old type is refused"
    );
}

pub fn deleting_a_field_removes_its_values_for_good(store: &dyn Store) {
    let a = app(store, "A");
    let city = field(store, a, "city", FieldType::String);
    let age = field(store, a, "age", FieldType::Number);
    for i in 0..5 {
        let mut changes = vec![set(&age, Value::Number(f64::from(i)))];
        if i % 2 == 0 {
            changes.push(set(&city, Value::String("Madrid".into())));
        }
        store
            .create_customer(a, &cid(&format!("c{i}")), &changes, 1)
            .unwrap();
    }
    assert_eq!(
        store
            .delete_field(a, &FieldName::parse("city").unwrap())
            .unwrap(),
        3
    );
    assert!(store.schema(a).unwrap().by_name("city").is_none());
    let c0 = store.get_customer(a, &cid("c0")).unwrap();
    assert_eq!(c0.fields, vec![(age.id, Value::Number(0.0))]);
    let city2 = field(store, a, "city", FieldType::String);
    assert_ne!(city2.id, city.id, "field ids are never reused");
    assert_eq!(
        store.get_customer(a, &cid("c0")).unwrap().get(city2.id),
        None
    );
    assert_eq!(
        store
            .field_stats(a)
            .unwrap()
            .iter()
            .find(|s| s.field.id == city2.id)
            .unwrap()
            .value_count,
        0
    );
    let stale = store.update_customer(a, &cid("c0"), &[set(&city, Value::String("x".into()))], 2);
    assert!(
        matches!(stale, Err(StoreError::Conflict(_))),
        "a deleted field takes no values"
    );
}

pub fn customers_lifecycle(store: &dyn Store) {
    let a = app(store, "A");
    let age = field(store, a, "age", FieldType::Number);
    let created = store
        .create_customer(
            a,
            &cid("ana@example.com"),
            &[set(&age, Value::Number(31.0))],
            10,
        )
        .unwrap();
    assert_eq!((created.created_at, created.updated_at), (10, 10));
    assert_eq!(created.fields, vec![(age.id, Value::Number(31.0))]);
    assert_eq!(
        store.get_customer(a, &cid("ana@example.com")).unwrap(),
        created
    );
    let dup = store.create_customer(a, &cid("ana@example.com"), &[], 11);
    assert!(matches!(dup, Err(StoreError::Conflict(_))));
    let updated = store
        .update_customer(a, &cid("ana@example.com"), &[unset(&age)], 12)
        .unwrap();
    assert_eq!(updated.id, created.id);
    assert!(updated.fields.is_empty());
    assert!(matches!(
        store.update_customer(a, &cid("nobody"), &[], 12),
        Err(StoreError::NotFound(_))
    ));
    store.delete_customer(a, &cid("ana@example.com")).unwrap();
    assert!(matches!(
        store.get_customer(a, &cid("ana@example.com")),
        Err(StoreError::NotFound(_))
    ));
    assert!(matches!(
        store.delete_customer(a, &cid("ana@example.com")),
        Err(StoreError::NotFound(_))
    ));
    let again = store
        .create_customer(a, &cid("ana@example.com"), &[], 13)
        .unwrap();
    assert!(again.id > created.id, "ids are never reused");
}

pub fn updated_at_moves_only_when_a_value_changes(store: &dyn Store) {
    let a = app(store, "A");
    let age = field(store, a, "age", FieldType::Number);
    store
        .create_customer(a, &cid("x"), &[set(&age, Value::Number(1.0))], 10)
        .unwrap();
    let same = store
        .update_customer(a, &cid("x"), &[set(&age, Value::Number(1.0))], 20)
        .unwrap();
    assert_eq!(same.updated_at, 10);
    let changed = store
        .update_customer(a, &cid("x"), &[set(&age, Value::Number(2.0))], 30)
        .unwrap();
    assert_eq!(changed.updated_at, 30);
    assert_eq!(changed.created_at, 10);
}

pub fn value_counts_follow_every_write(store: &dyn Store) {
    let a = app(store, "A");
    let age = field(store, a, "age", FieldType::Number);
    let city = field(store, a, "city", FieldType::String);
    let count = |f: &FieldDef| {
        store
            .field_stats(a)
            .unwrap()
            .into_iter()
            .find(|s| s.field.id == f.id)
            .unwrap()
            .value_count
    };
    store
        .create_customer(
            a,
            &cid("1"),
            &[
                set(&age, Value::Number(1.0)),
                set(&city, Value::String("M".into())),
            ],
            1,
        )
        .unwrap();
    store
        .create_customer(a, &cid("2"), &[set(&age, Value::Number(2.0))], 1)
        .unwrap();
    assert_eq!((count(&age), count(&city)), (2, 1));
    store
        .update_customer(
            a,
            &cid("2"),
            &[
                set(&age, Value::Number(5.0)),
                set(&city, Value::String("B".into())),
            ],
            2,
        )
        .unwrap();
    assert_eq!((count(&age), count(&city)), (2, 2));
    store
        .update_customer(a, &cid("1"), &[unset(&city), unset(&city)], 3)
        .unwrap();
    assert_eq!((count(&age), count(&city)), (2, 1));
    store.delete_customer(a, &cid("2")).unwrap();
    assert_eq!((count(&age), count(&city)), (1, 0));
    store
        .upsert_batch(
            a,
            vec![
                UpsertItem {
                    customer_id: cid("1"),
                    changes: vec![unset(&age)],
                    subscriptions: Vec::new(),
                },
                UpsertItem {
                    customer_id: cid("3"),
                    changes: vec![set(&city, Value::String("x".into()))],
                    subscriptions: Vec::new(),
                },
            ],
            4,
        )
        .unwrap();
    assert_eq!((count(&age), count(&city)), (0, 1));
}

pub fn batch_upserts_in_order_and_isolates_failures(store: &dyn Store) {
    let a = app(store, "A");
    let age = field(store, a, "age", FieldType::Number);
    store.create_customer(a, &cid("old"), &[], 1).unwrap();
    let bogus = FieldDef {
        id: unico_core::FieldId(999_999),
        ..age.clone()
    };
    let results = store
        .upsert_batch(
            a,
            vec![
                UpsertItem {
                    customer_id: cid("new"),
                    changes: vec![set(&age, Value::Number(1.0))],
                    subscriptions: Vec::new(),
                },
                UpsertItem {
                    customer_id: cid("old"),
                    changes: vec![set(&age, Value::Number(2.0))],
                    subscriptions: Vec::new(),
                },
                UpsertItem {
                    customer_id: cid("bad"),
                    changes: vec![set(&bogus, Value::Number(3.0))],
                    subscriptions: Vec::new(),
                },
                UpsertItem {
                    customer_id: cid("new"),
                    changes: vec![set(&age, Value::Number(4.0))],
                    subscriptions: Vec::new(),
                },
            ],
            5,
        )
        .unwrap();
    assert!(results[0].as_ref().unwrap().created);
    assert!(!results[1].as_ref().unwrap().created);
    assert!(results[2].is_err());
    assert!(
        !results[3].as_ref().unwrap().created,
        "the second item of one id updates the first"
    );
    assert_eq!(
        store.get_customer(a, &cid("new")).unwrap().get(age.id),
        Some(&Value::Number(4.0))
    );
    assert!(matches!(
        store.get_customer(a, &cid("bad")),
        Err(StoreError::NotFound(_))
    ));
    assert_eq!(store.count_customers(a).unwrap(), 2);
}

pub fn customer_id_order_is_byte_order(store: &dyn Store) {
    let a = app(store, "A");
    let mut ids = vec![
        "b", "B", "a", "ä", "Z", "_", "1", "10", "9", "a/b", "a?b", "a#b", "日本", "éclair", "e",
    ];
    for id in &ids {
        store.create_customer(a, &cid(id), &[], 1).unwrap();
    }
    ids.sort_by(|x, y| x.as_bytes().cmp(y.as_bytes()));
    assert_eq!(all_ids(store, a, Sort::default_order(), 1000), ids);
    let mut desc = ids.clone();
    desc.reverse();
    assert_eq!(
        all_ids(
            store,
            a,
            Sort {
                by: SortBy::CustomerId,
                descending: true
            },
            4
        ),
        desc
    );
}

pub fn pagination_visits_every_customer_once(store: &dyn Store) {
    let a = app(store, "A");
    let items: Vec<UpsertItem> = (0..97)
        .map(|i| UpsertItem {
            customer_id: cid(&format!("c{:03}", (i * 37) % 97)),
            changes: vec![],
            subscriptions: Vec::new(),
        })
        .collect();
    store.upsert_batch(a, items, 1).unwrap();
    for limit in [1, 7, 96, 97, 1000] {
        let ids = all_ids(store, a, Sort::default_order(), limit);
        let expected: Vec<String> = (0..97).map(|i| format!("c{i:03}")).collect();
        assert_eq!(ids, expected, "limit {limit}");
    }
}

pub fn field_sort_puts_missing_values_last(store: &dyn Store) {
    let a = app(store, "A");
    let ltv = field(store, a, "ltv", FieldType::Number);
    let values = [
        ("a", Some(5.0)),
        ("b", None),
        ("c", Some(-1.5)),
        ("d", Some(5.0)),
        ("e", None),
        ("f", Some(100.0)),
    ];
    for (id, v) in values {
        let changes: Vec<FieldChange> =
            v.map(|n| set(&ltv, Value::Number(n))).into_iter().collect();
        store.create_customer(a, &cid(id), &changes, 1).unwrap();
    }
    let by = SortBy::Field(ltv.clone());
    assert_eq!(
        all_ids(
            store,
            a,
            Sort {
                by: by.clone(),
                descending: false
            },
            2
        ),
        ["c", "a", "d", "f", "b", "e"]
    );
    assert_eq!(
        all_ids(
            store,
            a,
            Sort {
                by,
                descending: true
            },
            4
        ),
        ["f", "d", "a", "c", "e", "b"]
    );
}

pub fn created_and_updated_sorts(store: &dyn Store) {
    let a = app(store, "A");
    let n = field(store, a, "n", FieldType::Number);
    for (i, id) in ["z", "y", "x", "w"].iter().enumerate() {
        store
            .create_customer(a, &cid(id), &[], 100 + i as i64)
            .unwrap();
    }
    store
        .update_customer(a, &cid("y"), &[set(&n, Value::Number(1.0))], 500)
        .unwrap();
    let created = Sort {
        by: SortBy::CreatedAt,
        descending: false,
    };
    assert_eq!(all_ids(store, a, created, 3), ["z", "y", "x", "w"]);
    let updated = Sort {
        by: SortBy::UpdatedAt,
        descending: true,
    };
    assert_eq!(all_ids(store, a, updated, 1), ["y", "w", "x", "z"]);
}

pub fn applications_are_isolated(store: &dyn Store) {
    let a = app(store, "A");
    let b = app(store, "B");
    let fa = field(store, a, "f", FieldType::String);
    store
        .create_customer(
            a,
            &cid("same"),
            &[set(&fa, Value::String("in A".into()))],
            1,
        )
        .unwrap();
    assert!(matches!(
        store.get_customer(b, &cid("same")),
        Err(StoreError::NotFound(_))
    ));
    store.create_customer(b, &cid("same"), &[], 1).unwrap();
    assert!(
        store
            .get_customer(b, &cid("same"))
            .unwrap()
            .fields
            .is_empty()
    );
    assert!(
        matches!(
            store.create_customer(b, &cid("x"), &[set(&fa, Value::String("x".into()))], 1),
            Err(StoreError::Conflict(_))
        ),
        "A's field is not B's"
    );
    assert_eq!(all_ids(store, b, Sort::default_order(), 10), ["same"]);
    assert_eq!(store.count_customers(a).unwrap(), 1);
    store.delete_customer(b, &cid("same")).unwrap();
    assert!(store.get_customer(a, &cid("same")).is_ok());
}

pub fn every_type_round_trips(store: &dyn Store) {
    let a = app(store, "A");
    let s = field(store, a, "s", FieldType::String);
    let n = field(store, a, "n", FieldType::Number);
    let t = field(store, a, "t", FieldType::Datetime);
    let d = field(store, a, "d", FieldType::Date);
    let values = vec![
        set(&s, Value::String("Málaga \"quoted\", 日本\n".into())),
        set(&n, Value::Number(-1.0e-7)),
        set(&t, Value::Datetime(-62_135_596_800_000)),
        set(&d, Value::Date(2_932_896)),
    ];
    store.create_customer(a, &cid("x"), &values, 1).unwrap();
    let got = store.get_customer(a, &cid("x")).unwrap();
    let expected: Vec<_> = values
        .into_iter()
        .map(|c| (c.field, c.value.unwrap()))
        .collect();
    assert_eq!(got.fields, expected);
}

pub fn deleting_an_app_deletes_its_data(store: &dyn Store) {
    let a = app(store, "A");
    let b = app(store, "B");
    field(store, a, "f", FieldType::String);
    store.create_key(a, &[1; 32], "p", 1).unwrap();
    store.create_customer(a, &cid("x"), &[], 1).unwrap();
    store.create_customer(b, &cid("x"), &[], 1).unwrap();
    store.delete_app(a).unwrap();
    assert_eq!(store.find_key(&[1; 32]).unwrap(), None);
    assert!(store.schema(a).is_err());
    assert_eq!(store.count_customers(a).unwrap(), 0);
    assert_eq!(store.count_customers(b).unwrap(), 1);
}

pub fn scan_visits_every_customer(store: &dyn Store) {
    let a = app(store, "A");
    for i in 0..10 {
        store
            .create_customer(a, &cid(&format!("{}", 9 - i)), &[], 1)
            .unwrap();
    }
    let mut seen = Vec::new();
    store
        .scan_customers(a, &mut |c| {
            seen.push(c.customer_id.into_string());
            true
        })
        .unwrap();
    assert_eq!(seen, ["9", "8", "7", "6", "5", "4", "3", "2", "1", "0"]);
    let mut first_three = 0;
    store
        .scan_customers(a, &mut |_| {
            first_three += 1;
            first_three < 3
        })
        .unwrap();
    assert_eq!(first_three, 3);
}

fn import_items(age: &FieldDef, ids: &[&str]) -> Vec<UpsertItem> {
    ids.iter()
        .enumerate()
        .map(|(i, id)| UpsertItem {
            customer_id: cid(id),
            changes: vec![set(age, Value::Number(i as f64))],
            subscriptions: Vec::new(),
        })
        .collect()
}

pub fn a_kept_import_writes_everything(store: &dyn Store) {
    let a = app(store, "A");
    let age = field(store, a, "age", FieldType::Number);
    store.create_customer(a, &cid("old"), &[], 1).unwrap();
    let written = Arc::new(AtomicU64::new(0));
    let batches = vec![
        ImportBatch::Items(import_items(&age, &["x", "old"])),
        ImportBatch::Items(import_items(&age, &["y", "x"])),
        ImportBatch::End { keep: true },
    ];
    let counts = store
        .run_import(a, Box::new(batches.into_iter()), 9, written.clone(), None)
        .unwrap();
    assert!(counts.kept);
    // x is created by the import and then changed again: still one created customer;
    // only "old" existed before.
    assert_eq!((counts.created, counts.updated), (2, 1));
    assert_eq!(written.load(Ordering::Relaxed), 4);
    assert_eq!(store.count_customers(a).unwrap(), 3);
    assert_eq!(
        store.get_customer(a, &cid("x")).unwrap().get(age.id),
        Some(&Value::Number(1.0)),
        "the last row wins"
    );
    let stat = store.field_stats(a).unwrap();
    assert_eq!(stat[0].value_count, 3);
}

pub fn an_import_not_kept_writes_nothing(store: &dyn Store) {
    let a = app(store, "A");
    let age = field(store, a, "age", FieldType::Number);
    store.create_customer(a, &cid("old"), &[], 1).unwrap();
    let batches = vec![
        ImportBatch::Items(import_items(&age, &["x", "old"])),
        ImportBatch::End { keep: false },
    ];
    let counts = store
        .run_import(
            a,
            Box::new(batches.into_iter()),
            9,
            Arc::new(AtomicU64::new(0)),
            None,
        )
        .unwrap();
    assert!(!counts.kept);
    assert_eq!(store.count_customers(a).unwrap(), 1);
    assert!(
        store
            .get_customer(a, &cid("old"))
            .unwrap()
            .fields
            .is_empty()
    );
    assert_eq!(store.field_stats(a).unwrap()[0].value_count, 0);
}

pub fn an_import_whose_feed_dies_writes_nothing(store: &dyn Store) {
    let a = app(store, "A");
    let age = field(store, a, "age", FieldType::Number);
    let batches = vec![ImportBatch::Items(import_items(&age, &["x", "y"]))];
    let counts = store
        .run_import(
            a,
            Box::new(batches.into_iter()),
            9,
            Arc::new(AtomicU64::new(0)),
            None,
        )
        .unwrap();
    assert!(!counts.kept);
    assert_eq!(store.count_customers(a).unwrap(), 0);
}

/// An import given a `finish` stores its final record in the writes' transaction: the
/// record says succeeded exactly when the rows are there, failed exactly when they are
/// not, and a record that cannot be stored takes the writes down with it.
pub fn an_imports_record_commits_with_its_writes(store: &dyn Store) {
    let a = app(store, "A");
    let age = field(store, a, "age", FieldType::Number);
    let run = |names: &[&str], keep: bool, record: crate::store::ImportRecord| {
        let batches = vec![
            ImportBatch::Items(import_items(&age, names)),
            ImportBatch::End { keep },
        ];
        let finish: crate::store::ImportFinish = Box::new(move |outcome| {
            let mut record = record;
            record.finished_at = Some(50);
            match outcome {
                Ok(c) if c.kept => {
                    record.state = ImportState::Succeeded;
                    record.created = c.created;
                    record.updated = c.updated;
                }
                Ok(_) => {
                    record.state = ImportState::Failed;
                    record.message = Some("not kept".into());
                }
                Err(e) => {
                    record.state = ImportState::Failed;
                    record.message = Some(e.to_string());
                }
            }
            (record, vec![])
        });
        store.run_import(
            a,
            Box::new(batches.into_iter()),
            9,
            Arc::new(AtomicU64::new(0)),
            Some(finish),
        )
    };
    let kept = store.create_import(a, ImportMode::Atomic, 10).unwrap();
    let counts = run(&["x", "y"], true, kept.clone()).unwrap();
    assert!(counts.kept);
    let (record, _) = store.get_import(a, kept.id).unwrap();
    assert_eq!(record.state, ImportState::Succeeded);
    assert_eq!((record.created, record.updated), (2, 0));
    assert_eq!(store.count_customers(a).unwrap(), 2);

    let dropped = store.create_import(a, ImportMode::Atomic, 11).unwrap();
    let counts = run(&["z"], false, dropped.clone()).unwrap();
    assert!(!counts.kept);
    let (record, _) = store.get_import(a, dropped.id).unwrap();
    assert_eq!(record.state, ImportState::Failed);
    assert_eq!(store.count_customers(a).unwrap(), 2);

    // A record of an import that does not exist cannot be stored: nothing is kept.
    let mut ghost = dropped.clone();
    ghost.id = dropped.id + 1000;
    assert!(run(&["w"], true, ghost).is_err());
    assert_eq!(
        store.count_customers(a).unwrap(),
        2,
        "the writes went with the record"
    );
    assert!(matches!(
        store.get_customer(a, &cid("w")),
        Err(StoreError::NotFound(_))
    ));
    // Nothing is left running: a restart has nothing to mark.
    assert_eq!(store.fail_interrupted_imports(60).unwrap(), 0);
}

pub fn import_history_round_trips(store: &dyn Store) {
    let a = app(store, "A");
    let b = app(store, "B");
    let first = store.create_import(a, ImportMode::Atomic, 10).unwrap();
    assert_eq!(first.state, ImportState::Running);
    let second = store.create_import(a, ImportMode::SkipInvalid, 11).unwrap();
    let mut done = second.clone();
    done.state = ImportState::Succeeded;
    done.finished_at = Some(20);
    done.rows_read = 5;
    done.rows_written = 4;
    done.created = 3;
    done.updated = 1;
    done.values_written = 8;
    done.rows_rejected = 1;
    let errors = vec![ImportRowError {
        line: 3,
        column: "fieldValue".into(),
        value: "x".into(),
        message: "bad".into(),
    }];
    store.finish_import(&done, &errors).unwrap();
    assert_eq!(
        store.get_import(a, second.id).unwrap(),
        (done.clone(), errors)
    );
    assert!(
        matches!(store.get_import(b, second.id), Err(StoreError::NotFound(_))),
        "imports are per application"
    );
    let listed = store.list_imports(a, 10).unwrap();
    assert_eq!(
        listed.iter().map(|r| r.id).collect::<Vec<_>>(),
        vec![second.id, first.id]
    );
    assert_eq!(store.fail_interrupted_imports(30).unwrap(), 1);
    let (failed, _) = store.get_import(a, first.id).unwrap();
    assert_eq!(failed.state, ImportState::Failed);
    assert!(failed.message.unwrap().contains("interrupted"));
    assert_eq!(
        store.get_import(a, second.id).unwrap().0.state,
        ImportState::Succeeded
    );
}

/// The log's entries after `after`, described shortly.
fn logged(store: &dyn Store, after: u64) -> Vec<String> {
    use crate::changes::Change;
    store
        .read_log(after, 10_000)
        .unwrap()
        .into_iter()
        .map(|e| match e.change {
            Change::Customer { customer, .. } => format!("customer {}", customer.customer_id),
            Change::CustomerDeleted { .. } => "deleted".to_owned(),
            Change::CustomerErased { .. } => "erased".to_owned(),
            Change::Schema { schema, .. } => format!("schema {}", schema.len()),
            Change::TimeZone { timezone, .. } => format!("tz {}", timezone.as_str()),
            Change::AppDeleted { .. } => "app deleted".to_owned(),
            Change::Bulk { .. } => "bulk".to_owned(),
            Change::Customers { ranges, .. } => format!(
                "customers {}",
                ranges.iter().map(|(lo, hi)| hi - lo + 1).sum::<i64>()
            ),
            Change::Events { ranges, .. } => format!(
                "events {}",
                ranges.iter().map(|(lo, hi)| hi - lo + 1).sum::<i64>()
            ),
            Change::EventsRemoved { event, .. } => format!("events removed {event}"),
            Change::Subscription {
                channel,
                subscribed,
                ..
            } => format!("subscription {channel} {subscribed}"),
        })
        .collect()
}

/// Committed changes are logged in commit order with consecutive sequence numbers, failed
/// writes log nothing, and a small import is logged customer by customer.
pub fn committed_changes_are_logged_in_order(store: &dyn Store) {
    let start = store.log_head();
    let a = app(store, "A");
    let age = field(store, a, "age", FieldType::Number);
    store
        .create_customer(a, &cid("x"), &[set(&age, Value::Number(1.0))], 1)
        .unwrap();
    assert!(
        store.create_customer(a, &cid("x"), &[], 1).is_err(),
        "a failed write announces nothing"
    );
    store
        .update_app(
            a,
            None,
            Some(&TimeZoneName::parse("Europe/Madrid").unwrap()),
        )
        .unwrap();
    store.delete_customer(a, &cid("x")).unwrap();
    let items = vec![
        ImportBatch::Items(import_items(&age, &["y"])),
        ImportBatch::End { keep: false },
    ];
    store
        .run_import(
            a,
            Box::new(items.into_iter()),
            2,
            Arc::new(AtomicU64::new(0)),
            None,
        )
        .unwrap();
    let items = vec![
        ImportBatch::Items(import_items(&age, &["z"])),
        ImportBatch::End { keep: true },
    ];
    store
        .run_import(
            a,
            Box::new(items.into_iter()),
            2,
            Arc::new(AtomicU64::new(0)),
            None,
        )
        .unwrap();
    store.delete_app(a).unwrap();
    assert_eq!(
        logged(store, start),
        [
            "schema 1",
            "customer x",
            "tz Europe/Madrid",
            "deleted",
            "customer z",
            "app deleted"
        ]
    );
}

/// The head moves with every committed change and only then; entries are numbered one
/// by one across applications; a scan says which point of the log it saw; the log is read
/// from any point it still holds, waited on, and pruned from its oldest end.
pub fn the_log_is_ordered_and_followed_from_any_point(store: &dyn Store) {
    let h0 = store.log_head();
    let a = app(store, "A");
    let b = app(store, "B");
    assert_eq!(store.log_head(), h0, "creating applications logs nothing");
    let age = field(store, a, "age", FieldType::Number);
    let h1 = store.log_head();
    assert_eq!(h1, h0 + 1, "a new field is one change");
    store
        .create_customer(a, &cid("x"), &[set(&age, Value::Number(1.0))], 1)
        .unwrap();
    assert!(store.create_customer(a, &cid("x"), &[], 1).is_err());
    let h2 = store.log_head();
    assert_eq!(h2, h1 + 1, "a failed write logs nothing");
    store.create_customer(b, &cid("y"), &[], 1).unwrap();
    let entries = store.read_log(h0, 100).unwrap();
    assert_eq!(
        entries.iter().map(|e| e.seq).collect::<Vec<_>>(),
        vec![h0 + 1, h0 + 2, h0 + 3]
    );
    assert_eq!(entries[2].change.app(), b);
    assert_eq!(store.read_log(h0, 2).unwrap().len(), 2, "at most the limit");
    assert!(store.read_log(store.log_head(), 10).unwrap().is_empty());
    // A scan answers the point of the log it reflects.
    let mut seen = Vec::new();
    let at = store
        .scan_customers(a, &mut |c| {
            seen.push(c.customer_id.as_str().to_owned());
            true
        })
        .unwrap();
    assert_eq!((at, seen), (store.log_head(), vec!["x".to_owned()]));
    // Waiting: answers at once when the head is past, after the timeout when not.
    let head = store.log_head();
    assert_eq!(
        store.wait_log(head - 1, std::time::Duration::from_secs(5)),
        head
    );
    let started = std::time::Instant::now();
    assert_eq!(
        store.wait_log(head, std::time::Duration::from_millis(50)),
        head
    );
    assert!(started.elapsed() >= std::time::Duration::from_millis(50));
    // A writer on another thread wakes a waiter.
    std::thread::scope(|s| {
        let waiter = s.spawn(|| store.wait_log(head, std::time::Duration::from_secs(30)));
        std::thread::sleep(std::time::Duration::from_millis(20));
        store.delete_customer(a, &cid("x")).unwrap();
        assert_eq!(waiter.join().unwrap(), head + 1);
    });
    // Pruning removes the oldest entries (keeping the newest); reading from before them
    // is refused, from after them works.
    let bounds = store.log_bounds().unwrap();
    assert_eq!(bounds.head, head + 1);
    let pruned = store.prune_log(i64::MAX).unwrap();
    assert_eq!(pruned, 3, "every entry but the newest");
    let bounds = store.log_bounds().unwrap();
    assert_eq!(
        bounds,
        crate::LogBounds {
            floor: head,
            head: head + 1
        }
    );
    assert!(matches!(
        store.read_log(h0, 10),
        Err(StoreError::LogPruned(_))
    ));
    assert_eq!(store.read_log(head, 10).unwrap().len(), 1);
    store.create_customer(a, &cid("z"), &[], 1).unwrap();
    assert_eq!(store.log_head(), head + 2, "numbers go on after a prune");
}

pub fn segments_lifecycle(store: &dyn Store) {
    let a = app(store, "A");
    let b = app(store, "B");
    let s1 = store
        .create_segment(
            a,
            "Spain",
            r#"{"field":"country","op":"eq","value":"ES"}"#,
            5,
        )
        .unwrap();
    let s2 = store.create_segment(a, "All", "{}", 6).unwrap();
    assert_eq!(store.get_segment(a, s1.id).unwrap(), s1);
    assert!(
        matches!(store.get_segment(b, s1.id), Err(StoreError::NotFound(_))),
        "segments are per application"
    );
    let renamed = store.update_segment(a, s1.id, "España", "{}", 9).unwrap();
    assert_eq!(
        (
            renamed.name.as_str(),
            renamed.created_at,
            renamed.updated_at
        ),
        ("España", 5, 9)
    );
    assert_eq!(store.list_segments(a).unwrap(), vec![renamed, s2.clone()]);
    store.delete_segment(a, s1.id).unwrap();
    assert!(matches!(
        store.delete_segment(a, s1.id),
        Err(StoreError::NotFound(_))
    ));
    assert_eq!(store.list_segments(a).unwrap(), vec![s2]);
}

/// A logged customer change says whether it created the customer or what the customer
/// held before, so a follower can tell each field's old and new value: through the API, a
/// batch and an import alike.
pub fn logged_customer_changes_say_what_they_changed(store: &dyn Store) {
    use crate::changes::{Before, Change, FieldDelta};
    let a = app(store, "A");
    let age = field(store, a, "age", FieldType::Number);
    let city = field(store, a, "city", FieldType::String);
    let num = |n: f64| Some(Value::Number(n));
    let text = |t: &str| Some(Value::String(t.into()));
    let delta = |field: &FieldDef, old: Option<Value>, new: Option<Value>| FieldDelta {
        field: field.id,
        old,
        new,
    };
    let since = |after: u64| -> Vec<Change> {
        store
            .read_log(after, 100)
            .unwrap()
            .into_iter()
            .map(|e| e.change)
            .collect()
    };
    let h = store.log_head();
    store
        .create_customer(a, &cid("x"), &[set(&age, Value::Number(1.0))], 1)
        .unwrap();
    let logged = since(h);
    assert!(
        matches!(
            &logged[..],
            [Change::Customer {
                before: Before::Created,
                ..
            }]
        ),
        "{logged:?}"
    );
    assert_eq!(
        logged[0].field_deltas(),
        Some(vec![delta(&age, None, num(1.0))])
    );

    let h = store.log_head();
    store
        .update_customer(
            a,
            &cid("x"),
            &[
                set(&age, Value::Number(2.0)),
                set(&city, Value::String("M".into())),
            ],
            2,
        )
        .unwrap();
    let logged = since(h);
    assert!(
        matches!(&logged[..], [Change::Customer { before: Before::Values(v), .. }] if *v == vec![(age.id, Value::Number(1.0))]),
        "{logged:?}"
    );
    assert_eq!(
        logged[0].field_deltas(),
        Some(vec![
            delta(&age, num(1.0), num(2.0)),
            delta(&city, None, text("M"))
        ])
    );

    // A batch: a new customer, and a value removed from an existing one.
    let h = store.log_head();
    store
        .upsert_batch(
            a,
            vec![
                UpsertItem {
                    customer_id: cid("y"),
                    changes: vec![set(&city, Value::String("P".into()))],
                    subscriptions: Vec::new(),
                },
                UpsertItem {
                    customer_id: cid("x"),
                    changes: vec![FieldChange {
                        field: city.id,
                        value: None,
                    }],
                    subscriptions: Vec::new(),
                },
            ],
            3,
        )
        .unwrap();
    let deltas: Vec<Option<Vec<FieldDelta>>> = since(h).iter().map(Change::field_deltas).collect();
    assert_eq!(
        deltas,
        vec![
            Some(vec![delta(&city, None, text("P"))]),
            Some(vec![delta(&city, text("M"), None)]),
        ]
    );

    // An import small enough to be logged customer by customer: x existed, z is new.
    let h = store.log_head();
    store
        .run_import(
            a,
            Box::new(
                vec![
                    ImportBatch::Items(import_items(&age, &["x", "z"])),
                    ImportBatch::End { keep: true },
                ]
                .into_iter(),
            ),
            4,
            Arc::new(AtomicU64::new(0)),
            None,
        )
        .unwrap();
    let deltas: Vec<Option<Vec<FieldDelta>>> = since(h).iter().map(Change::field_deltas).collect();
    assert_eq!(
        deltas,
        vec![
            Some(vec![delta(&age, num(2.0), num(0.0))]),
            Some(vec![delta(&age, None, num(1.0))]),
        ],
        "the updated customer, then the created one"
    );
}

/// A segment name is taken once per application, whatever its case; another application
/// may use it, and a segment may be renamed to its own name in another case.
pub fn segment_names_are_unique_per_application_without_case(store: &dyn Store) {
    let a = app(store, "A");
    let b = app(store, "B");
    let vips = store.create_segment(a, "VIPs", "{}", 1).unwrap();
    for taken in ["VIPs", "vips", "VIPS"] {
        assert!(
            matches!(store.create_segment(a, taken, "{}", 2), Err(StoreError::Conflict(m)) if m.contains("VIPs")),
            "{taken}"
        );
    }
    store.create_segment(b, "vips", "{}", 2).unwrap();
    let other = store.create_segment(a, "Lapsed", "{}", 3).unwrap();
    assert!(matches!(
        store.update_segment(a, other.id, "vIPs", "{}", 4),
        Err(StoreError::Conflict(_))
    ));
    assert_eq!(
        store.get_segment(a, other.id).unwrap().name,
        "Lapsed",
        "nothing changed"
    );
    let renamed = store.update_segment(a, vips.id, "VIPS", "{}", 5).unwrap();
    assert_eq!(renamed.name, "VIPS");
    store.delete_segment(a, vips.id).unwrap();
    store.create_segment(a, "vips", "{}", 6).unwrap();
}

pub fn customers_by_ids_keep_the_order_asked(store: &dyn Store) {
    let a = app(store, "A");
    let b = app(store, "B");
    let x = store.create_customer(a, &cid("x"), &[], 1).unwrap();
    let y = store.create_customer(a, &cid("y"), &[], 1).unwrap();
    let other = store.create_customer(b, &cid("z"), &[], 1).unwrap();
    let got: Vec<i64> = store
        .get_customers(a, &[y.id, 999_999, x.id, other.id])
        .unwrap()
        .iter()
        .map(|c| c.id)
        .collect();
    assert_eq!(
        got,
        vec![y.id, x.id],
        "missing ids and other applications' customers are skipped"
    );
}

/// A small import announces each customer it created or updated in its new state (values
/// removed included); one larger than [`crate::INCREMENTAL_IMPORT_CUSTOMERS`] announces the
/// ids of every customer it created or updated instead, and reading those ids back gives
/// each of them in its state after the import.
pub fn imports_announce_their_customers_or_their_ids(store: &dyn Store) {
    use crate::changes::Change;
    let a = app(store, "A");
    let age = field(store, a, "age", FieldType::Number);
    let city = field(store, a, "city", FieldType::String);
    store
        .create_customer(
            a,
            &cid("w"),
            &[
                set(&age, Value::Number(1.0)),
                set(&city, Value::String("Madrid".into())),
            ],
            1,
        )
        .unwrap();
    let before = store.log_head();
    let import = |items: Vec<UpsertItem>| {
        store
            .run_import(
                a,
                Box::new(
                    vec![ImportBatch::Items(items), ImportBatch::End { keep: true }].into_iter(),
                ),
                2,
                Arc::new(AtomicU64::new(0)),
                None,
            )
            .unwrap()
    };
    import(vec![
        UpsertItem {
            customer_id: cid("w"),
            changes: vec![
                set(&age, Value::Number(5.0)),
                FieldChange {
                    field: city.id,
                    value: None,
                },
            ],
            subscriptions: Vec::new(),
        },
        UpsertItem {
            customer_id: cid("q"),
            changes: vec![set(&city, Value::String("Paris".into()))],
            subscriptions: Vec::new(),
        },
    ]);
    let seen: Vec<(String, Vec<(unico_core::FieldId, Value)>)> = store
        .read_log(before, 100)
        .unwrap()
        .into_iter()
        .map(|entry| match entry.change {
            Change::Customer { customer, .. } => {
                (customer.customer_id.as_str().to_owned(), customer.fields)
            }
            other => panic!("a small import announced {other:?}"),
        })
        .collect();
    assert_eq!(
        seen,
        [
            ("w".to_owned(), vec![(age.id, Value::Number(5.0))]),
            (
                "q".to_owned(),
                vec![(city.id, Value::String("Paris".into()))]
            ),
        ],
        "the updated customer (its city removed), then the created one"
    );

    let large = crate::INCREMENTAL_IMPORT_CUSTOMERS as usize + 1;
    // Another application's customer created between the two imports: its id must not be
    // named by this application's entry.
    let b = app(store, "B");
    store.create_customer(b, &cid("other"), &[], 1).unwrap();
    // The large import updates "w" (created before) and "n7" (created in the middle of it,
    // by a row naming it twice) and creates the rest.
    let mut names: Vec<String> = (0..large).map(|i| format!("n{i}")).collect();
    names.push("w".to_owned());
    names.push("n7".to_owned());
    let refs: Vec<&str> = names.iter().map(String::as_str).collect();
    let before = store.log_head();
    import(import_items(&age, &refs));
    let seen: Vec<Change> = store
        .read_log(before, 100)
        .unwrap()
        .into_iter()
        .map(|e| e.change)
        .collect();
    let ranges = match seen.as_slice() {
        [Change::Customers { app, ranges }] if *app == a => ranges.clone(),
        other => panic!("a large import is one entry of customer ids, got {other:?}"),
    };
    assert!(
        ranges.windows(2).all(|w| w[0].1 + 1 < w[1].0) && ranges.iter().all(|(lo, hi)| lo <= hi),
        "ranges ascend and are disjoint and merged: {ranges:?}"
    );
    // Read back in small pages, as a follower does.
    let mut read: Vec<Customer> = Vec::new();
    for &(lo, hi) in &ranges {
        let mut from = lo;
        loop {
            let page = store.read_customers(a, from, hi, 997).unwrap();
            let Some(last) = page.last().map(|c| c.id) else {
                break;
            };
            assert!(page.windows(2).all(|w| w[0].id < w[1].id), "ascending ids");
            from = last + 1;
            read.extend(page);
        }
    }
    assert_eq!(
        read.len(),
        large + 1,
        "every customer the import created, and the one it updated, once each"
    );
    let mut expected: std::collections::HashMap<String, f64> = refs
        .iter()
        .enumerate()
        .map(|(i, id)| ((*id).to_owned(), i as f64))
        .collect();
    for customer in &read {
        let want = expected
            .remove(customer.customer_id.as_str())
            .unwrap_or_else(|| panic!("{} was not imported", customer.customer_id));
        assert_eq!(
            customer.get(age.id),
            Some(&Value::Number(want)),
            "{} as the import left it (its last row)",
            customer.customer_id
        );
    }
    assert!(expected.is_empty(), "not read back: {:?}", expected.keys());
    assert!(
        store.read_customers(a, 0, i64::MAX, 10).unwrap().len() == 10,
        "a limit caps a read"
    );
    assert!(
        store
            .read_customers(b, 0, i64::MAX, usize::MAX)
            .unwrap()
            .iter()
            .all(|c| c.customer_id.as_str() == "other"),
        "another application's customers are not read"
    );
}

/// Every field's value count equals the number of the application's customers holding a
/// value for it.
fn assert_counts_exact(store: &dyn Store, app: AppId) {
    let mut held: std::collections::HashMap<unico_core::FieldId, u64> =
        std::collections::HashMap::new();
    store
        .scan_customers(app, &mut |c| {
            for (field, _) in &c.fields {
                *held.entry(*field).or_default() += 1;
            }
            true
        })
        .unwrap();
    for stat in store.field_stats(app).unwrap() {
        assert_eq!(
            stat.value_count,
            held.get(&stat.field.id).copied().unwrap_or(0),
            "value count of field {}",
            stat.field.name
        );
    }
}

/// Applies the log's customer entries after `after`, in order, and checks that the state
/// they leave is the store's: what a follower of the log would end up with. If entries were
/// numbered out of commit order, a customer's older state would win.
fn assert_log_replays_to_store(store: &dyn Store, app: AppId, after: u64) {
    use crate::changes::Change;
    let mut replayed: std::collections::BTreeMap<i64, Option<unico_core::Customer>> =
        std::collections::BTreeMap::new();
    for entry in store.read_log(after, 1_000_000).unwrap() {
        match entry.change {
            Change::Customer {
                app: a, customer, ..
            } if a == app => {
                replayed.insert(customer.id, Some(customer));
            }
            Change::CustomerDeleted { app: a, id } | Change::CustomerErased { app: a, id }
                if a == app =>
            {
                replayed.insert(id, None);
            }
            _ => {}
        }
    }
    let ids: Vec<i64> = replayed.keys().copied().collect();
    let stored: std::collections::HashMap<i64, unico_core::Customer> = store
        .get_customers(app, &ids)
        .unwrap()
        .into_iter()
        .map(|c| (c.id, c))
        .collect();
    for (id, state) in replayed {
        assert_eq!(
            state.as_ref(),
            stored.get(&id),
            "customer {id} replayed from the log"
        );
    }
}

/// Two writers changing one customer at once are both acknowledged; the customer ends in
/// the state one of them left, counts stay exact, and the log replays to that state.
pub fn concurrent_writers_of_one_customer_take_turns(store: &dyn Store) {
    let a = app(store, "A");
    let age = field(store, a, "age", FieldType::Number);
    let city = field(store, a, "city", FieldType::String);
    let start = store.log_head();
    store.create_customer(a, &cid("x"), &[], 1).unwrap();
    const ROUNDS: u32 = 40;
    std::thread::scope(|s| {
        let (age, city) = (&age, &city);
        s.spawn(move || {
            for i in 0..ROUNDS {
                store
                    .update_customer(
                        a,
                        &cid("x"),
                        &[
                            set(age, Value::Number(f64::from(i))),
                            set(city, Value::String("Madrid".into())),
                        ],
                        10,
                    )
                    .unwrap();
            }
        });
        s.spawn(move || {
            for i in 0..ROUNDS {
                let results = store
                    .upsert_batch(
                        a,
                        vec![UpsertItem {
                            customer_id: cid("x"),
                            changes: vec![
                                set(age, Value::Number(f64::from(1000 + i))),
                                unset(city),
                            ],
                            subscriptions: Vec::new(),
                        }],
                        20,
                    )
                    .unwrap();
                assert!(!results[0].as_ref().unwrap().created);
            }
        });
    });
    let x = store.get_customer(a, &cid("x")).unwrap();
    let last = f64::from(ROUNDS - 1);
    assert!(
        x.fields
            == vec![
                (age.id, Value::Number(last)),
                (city.id, Value::String("Madrid".into()))
            ]
            || x.fields == vec![(age.id, Value::Number(1000.0 + last))],
        "the last write of one writer wins whole: {:?}",
        x.fields
    );
    assert_counts_exact(store, a);
    assert_log_replays_to_store(store, a, start);
}

/// Customers c0..c{n} with `age` 0, for an import to race with.
fn racing_customers(store: &dyn Store, a: AppId, age: &FieldDef, n: usize) {
    let items = (0..n)
        .map(|i| UpsertItem {
            customer_id: cid(&format!("c{i}")),
            changes: vec![set(age, Value::Number(0.0))],
            subscriptions: Vec::new(),
        })
        .collect();
    store.upsert_batch(a, items, 1).unwrap();
}

/// The import's batches: `city` for c0..c{2n}, in batches of 25.
fn racing_import(
    city: &FieldDef,
    n: usize,
    keep: bool,
) -> Box<dyn Iterator<Item = ImportBatch> + Send> {
    let items: Vec<UpsertItem> = (0..2 * n)
        .map(|i| UpsertItem {
            customer_id: cid(&format!("c{i}")),
            changes: vec![set(city, Value::String(format!("imported {i}")))],
            subscriptions: Vec::new(),
        })
        .collect();
    let batches: Vec<ImportBatch> = items
        .chunks(25)
        .map(|chunk| ImportBatch::Items(chunk.to_vec()))
        .chain([ImportBatch::End { keep }])
        .collect();
    Box::new(batches.into_iter())
}

/// Runs an import of `n` customers' cities (kept or not) on one thread while this one
/// PATCHes the ages of the same `n` customers; answers what the import wrote.
fn race_import_with_patches(
    store: &dyn Store,
    a: AppId,
    age: &FieldDef,
    city: &FieldDef,
    n: usize,
    keep: bool,
) -> crate::store::ImportCounts {
    std::thread::scope(|s| {
        let import = s.spawn(|| {
            store
                .run_import(
                    a,
                    racing_import(city, n, keep),
                    5,
                    Arc::new(AtomicU64::new(0)),
                    None,
                )
                .unwrap()
        });
        for i in 0..n {
            store
                .update_customer(
                    a,
                    &cid(&format!("c{i}")),
                    &[set(age, Value::Number((1000 + i) as f64))],
                    6,
                )
                .unwrap();
        }
        import.join().unwrap()
    })
}

/// Patches of the customers an import writes, sent while it runs, are all acknowledged and
/// all kept beside the import's values, whichever commits first.
pub fn an_import_racing_patches_keeps_both(store: &dyn Store) {
    const N: usize = 100;
    let a = app(store, "A");
    let age = field(store, a, "age", FieldType::Number);
    let city = field(store, a, "city", FieldType::String);
    racing_customers(store, a, &age, N);
    let start = store.log_head();
    let counts = race_import_with_patches(store, a, &age, &city, N, true);
    assert!(counts.kept);
    assert_eq!((counts.created, counts.updated), (N as u64, N as u64));
    assert_eq!(store.count_customers(a).unwrap(), 2 * N as u64);
    for i in [0, N / 2, N - 1] {
        let c = store.get_customer(a, &cid(&format!("c{i}"))).unwrap();
        assert_eq!(
            c.get(age.id),
            Some(&Value::Number((1000 + i) as f64)),
            "c{i}"
        );
        assert_eq!(
            c.get(city.id),
            Some(&Value::String(format!("imported {i}"))),
            "c{i}"
        );
    }
    assert_counts_exact(store, a);
    let stats = store.field_stats(a).unwrap();
    assert_eq!(
        (stats[0].value_count, stats[1].value_count),
        (N as u64, 2 * N as u64)
    );
    assert_log_replays_to_store(store, a, start);
}

/// An import that is not kept, racing with patches, leaves exactly the patches.
pub fn an_import_not_kept_racing_patches_keeps_only_them(store: &dyn Store) {
    const N: usize = 60;
    let a = app(store, "A");
    let age = field(store, a, "age", FieldType::Number);
    let city = field(store, a, "city", FieldType::String);
    racing_customers(store, a, &age, N);
    let start = store.log_head();
    assert!(!race_import_with_patches(store, a, &age, &city, N, false).kept);
    assert_eq!(store.count_customers(a).unwrap(), N as u64);
    let c = store.get_customer(a, &cid("c7")).unwrap();
    assert_eq!(c.fields, vec![(age.id, Value::Number(1007.0))]);
    assert_counts_exact(store, a);
    assert_eq!(store.field_stats(a).unwrap()[1].value_count, 0);
    assert_log_replays_to_store(store, a, start);
}

/// A follower reading the log while several writers commit sees every entry exactly once,
/// numbered one by one, and what it applies ends in the store's state.
pub fn a_follower_sees_every_commit_once_in_commit_order(store: &dyn Store) {
    const WRITERS: usize = 4;
    const WRITES: usize = 30;
    let a = app(store, "A");
    let n = field(store, a, "n", FieldType::Number);
    let start = store.log_head();
    let total = (WRITERS * WRITES) as u64;
    let followed = std::thread::scope(|s| {
        let follower = s.spawn(|| {
            let mut seen = Vec::new();
            let mut after = start;
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
            while (seen.len() as u64) < total && std::time::Instant::now() < deadline {
                store.wait_log(after, std::time::Duration::from_millis(200));
                for entry in store.read_log(after, 1000).unwrap() {
                    after = entry.seq;
                    seen.push(entry.seq);
                }
            }
            seen
        });
        let n = &n;
        for w in 0..WRITERS {
            s.spawn(move || {
                for i in 0..WRITES {
                    // Every writer also writes a customer all of them share.
                    let id = if i % 3 == 0 {
                        "shared".to_owned()
                    } else {
                        format!("w{w}-{i}")
                    };
                    store
                        .upsert_batch(
                            a,
                            vec![UpsertItem {
                                customer_id: cid(&id),
                                changes: vec![set(n, Value::Number((w * 1000 + i) as f64))],
                                subscriptions: Vec::new(),
                            }],
                            1,
                        )
                        .unwrap();
                }
            });
        }
        follower.join().unwrap()
    });
    let expected: Vec<u64> = (start + 1..=start + total).collect();
    assert_eq!(followed, expected, "every entry once, in sequence");
    assert_eq!(store.log_head(), start + total);
    assert_counts_exact(store, a);
    assert_log_replays_to_store(store, a, start);
}
