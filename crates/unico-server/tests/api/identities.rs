//! Identities and merges over HTTP: normalised values found by any spelling, one holder per
//! value, anonymous customers from device events merged at sign-in, explicit merges that
//! lose nothing and leave an alias the API and CSV imports resolve, counts that follow at
//! once, audit records, and hostile input refused with nothing written.

use axum::http::StatusCode;
use serde_json::{Value, json};

use crate::support::*;

async fn link(
    api: &Api,
    app: &App,
    customer: &str,
    kind: &str,
    value: &str,
) -> (StatusCode, Value) {
    api.send(
        "POST",
        &app.path(&format!("/customers/{}/identities", enc(customer))),
        Some(&app.key),
        Some(json!({"kind": kind, "value": value})),
    )
    .await
}

async fn count(api: &Api, app: &App, filter: &str) -> u64 {
    let (status, body) = api
        .send(
            "POST",
            &app.path("/count"),
            Some(&app.key),
            Some(json!({"filter": filter})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body["count"].as_u64().unwrap()
}

async fn send_events(api: &Api, app: &App, events: Value) -> Value {
    let (status, body) = api
        .send(
            "POST",
            &app.path("/events"),
            Some(&app.key),
            Some(json!({ "events": events })),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body
}

async fn register(api: &Api, app: &App, code: &str) {
    let (status, body) = api
        .send(
            "POST",
            &app.path("/event-types"),
            Some(&app.key),
            Some(json!({"code": code})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
}

#[tokio::test]
async fn identities_are_normalised_unique_and_find_their_customer() {
    let api = Api::new();
    let a = api.create_app("Shop").await;
    let b = api.create_app("Other").await;
    api.create_customer(&a, "ana", json!({})).await;
    api.create_customer(&a, "bob", json!({})).await;
    api.create_customer(&b, "eve", json!({})).await;

    let (status, body) = link(&api, &a, "ana", "email", "  Ana.Perez@Example.COM ").await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(body["identity"]["value"], "ana.perez@example.com");
    assert_eq!(body["customer"]["customerId"], "ana");
    let (status, _) = link(&api, &a, "ana", "email", "ana.perez@example.com").await;
    assert_eq!(status, StatusCode::OK, "linking again changes nothing");
    let (status, body) = link(&api, &a, "ana", "phone", "+34 600-12.34.56").await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(body["identity"]["value"], "+34600123456");

    // Any spelling finds her; another application does not.
    for path in [
        "/identities/email/ANA.PEREZ%40example.com",
        "/identities/phone/0034600123456",
    ] {
        let (status, body) = api.send("GET", &a.path(path), Some(&a.key), None).await;
        assert_eq!(status, StatusCode::OK, "{path}: {body}");
        assert_eq!(body["customerId"], "ana");
    }
    let (status, body) = api
        .send(
            "GET",
            &b.path("/identities/email/ana.perez%40example.com"),
            Some(&b.key),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    let (status, _) = api
        .send(
            "GET",
            &a.path("/identities/email/ana.perez%40example.com"),
            Some(&b.key),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);

    // Another known customer may not take it: 409 naming the owner, nothing merged.
    let (status, body) = link(&api, &a, "bob", "email", "ana.perez@example.com").await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert_error(&body, "conflict", &["\"ana\"", "merge"]);
    assert_eq!(api.customer_ids(&a).await, ["ana", "bob"]);

    let (status, body) = api
        .send(
            "GET",
            &a.path("/customers/ana/identities"),
            Some(&a.key),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let held: Vec<String> = body["identities"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| {
            format!(
                "{} {}",
                i["kind"].as_str().unwrap(),
                i["value"].as_str().unwrap()
            )
        })
        .collect();
    assert_eq!(held, ["email ana.perez@example.com", "phone +34600123456"]);
    assert_eq!(body["anonymous"], false);

    let (status, _) = api
        .send(
            "DELETE",
            &a.path("/customers/ana/identities/email/ana.perez%40example.com"),
            Some(&a.key),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, body) = link(&api, &a, "bob", "email", "ana.perez@example.com").await;
    assert_eq!(status, StatusCode::CREATED, "freed by the unlink: {body}");
}

#[tokio::test]
async fn hostile_identities_are_refused_precisely_with_nothing_written() {
    let api = Api::new();
    let a = api.create_app("Shop").await;
    api.create_customer(&a, "ana", json!({})).await;
    let cases = [
        (
            json!({"kind": "email", "value": "not-an-email"}),
            "value",
            "not an email",
        ),
        (
            json!({"kind": "phone", "value": "600 12 34 56"}),
            "value",
            "international",
        ),
        (
            json!({"kind": "device_id", "value": "a\u{0}b"}),
            "value",
            "control character",
        ),
        (
            json!({"kind": "device_id", "value": "x".repeat(257)}),
            "value",
            "at most 256",
        ),
        (json!({"kind": "device_id", "value": ""}), "value", "empty"),
        (
            json!({"kind": "passport", "value": "X1"}),
            "kind",
            "not an identity kind",
        ),
        (
            json!({"kind": "Email", "value": "a@b.co"}),
            "kind",
            "lower-case",
        ),
        (json!({"kind": "email"}), "value", "required"),
        (json!({"kind": "email", "value": 7}), "value", "string"),
        (
            json!({"kind": "email", "value": "a@b.co", "extra": 1}),
            "extra",
            "unknown key",
        ),
        (json!(["email", "a@b.co"]), "body", "expected"),
    ];
    for (body, field, needle) in cases {
        let (status, reply) = api
            .send(
                "POST",
                &a.path("/customers/ana/identities"),
                Some(&a.key),
                Some(body.clone()),
            )
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}: {reply}");
        let d = details(&reply);
        assert!(
            d.iter().any(|(f, m)| f == field && m.contains(needle)),
            "{body}: {reply}"
        );
    }
    let (status, body) = api
        .send(
            "GET",
            &a.path("/customers/ana/identities"),
            Some(&a.key),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["identities"], json!([]));
    // Declared kinds extend what is taken.
    let (status, body) = api
        .admin(
            "PATCH",
            &a.path(""),
            Some(json!({"identity_kinds": ["loyalty_card"]})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        body["identity_kinds"],
        json!([
            "device_id",
            "email",
            "phone",
            "external_code",
            "loyalty_card"
        ])
    );
    let (status, body) = link(&api, &a, "ana", "loyalty_card", "LC-001").await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    // Merging into itself, directly or through an alias, and missing customers.
    for (from, status_wanted) in [
        ("ana", StatusCode::BAD_REQUEST),
        ("nobody", StatusCode::NOT_FOUND),
    ] {
        let (status, body) = api
            .send(
                "POST",
                &a.path("/customers/ana/merge"),
                Some(&a.key),
                Some(json!({ "from": from })),
            )
            .await;
        assert_eq!(status, status_wanted, "{body}");
    }
    let (status, body) = api
        .send(
            "POST",
            &a.path("/customers/ana/merge"),
            Some(&a.key),
            Some(json!({"from": 12})),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(api.customer_ids(&a).await, ["ana"]);
}

#[tokio::test]
async fn a_device_is_anonymous_until_sign_in_then_one_customer_with_everything() {
    let api = Api::new();
    let a = api.create_app("Shop").await;
    api.create_field(&a, "city", "string").await;
    register(&api, &a, "app_open").await;
    register(&api, &a, "purchase").await;
    let device = json!({"kind": "device_id", "value": "iphone-42"});
    let out = send_events(
        &api,
        &a,
        json!([
            {"event_id": "e1", "identity": device, "type": "app_open", "channel": "app"},
            {"event_id": "e2", "identity": device, "type": "app_open", "channel": "app"},
            {"identity": {"kind": "device_id"}, "type": "app_open", "channel": "app"},
            {"customerId": "x", "identity": device, "type": "app_open", "channel": "app"},
        ]),
    )
    .await;
    assert_eq!(out["results"][0]["status"], "stored", "{out}");
    assert_eq!(out["results"][0]["customer_created"], true);
    assert_ne!(out["results"][1]["customer_created"], true);
    assert_eq!(out["results"][2]["status"], "error");
    assert_eq!(out["results"][3]["status"], "error");
    let (_, anon) = api
        .send(
            "GET",
            &a.path("/identities/device_id/iphone-42"),
            Some(&a.key),
            None,
        )
        .await;
    let anon_id = anon["customerId"].as_str().unwrap().to_owned();
    assert!(anon_id.starts_with("anon-"), "{anon}");
    assert_eq!(count(&api, &a, "did app_open at_least 2 times").await, 1);
    api.patch_customer(&a, &anon_id, json!({"fields": {"city": "Lyon"}}))
        .await;

    // The sign-in: a known customer gets the device.
    api.create_customer(&a, "ana", json!({"city": "Madrid"}))
        .await;
    send_events(
        &api,
        &a,
        json!([{"customerId": "ana", "type": "purchase", "channel": "web"}]),
    )
    .await;
    let (status, body) = link(&api, &a, "ana", "device_id", "iphone-42").await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(body["merged"]["from"], anon_id.as_str());
    assert_eq!(body["merged"]["events_moved"], 2);
    assert_eq!(body["merged"]["lost"], json!({"city": "Lyon"}));
    assert_eq!(
        body["customer"]["fields"]["city"], "Madrid",
        "known values win"
    );
    assert_eq!(api.customer_ids(&a).await, ["ana"]);
    // At once: the audience that needs both behaviours is one person.
    assert_eq!(
        count(&api, &a, "did app_open at_least 2 times and did purchase").await,
        1
    );
    // Later events of the device are hers; the anonymous id is an alias of her.
    send_events(
        &api,
        &a,
        json!([{"identity": device, "type": "app_open", "channel": "app"}]),
    )
    .await;
    assert_eq!(count(&api, &a, "did app_open at_least 3 times").await, 1);
    let found = api.get_customer(&a, &anon_id).await.unwrap();
    assert_eq!(found["customerId"], "ana");

    // With anonymous profiles off, an unknown device is refused, not invented.
    let (status, body) = api
        .admin(
            "PATCH",
            &a.path(""),
            Some(json!({"anonymous_profiles": false})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["anonymous_profiles"], false);
    let out = send_events(
        &api,
        &a,
        json!([{"identity": {"kind": "device_id", "value": "android-1"}, "type": "app_open", "channel": "app"}]),
    )
    .await;
    assert_eq!(out["results"][0]["status"], "error", "{out}");
    assert_error(&out["results"][0], "not_found", &["android-1"]);
    assert_eq!(api.customer_ids(&a).await, ["ana"]);
}

#[tokio::test]
async fn an_explicit_merge_moves_everything_keeps_an_alias_and_is_audited() {
    let api = Api::new();
    let a = api.create_app("Shop").await;
    api.create_field(&a, "city", "string").await;
    api.create_field(&a, "tier", "string").await;
    register(&api, &a, "purchase").await;
    api.create_customer(&a, "crm-1", json!({"city": "Madrid"}))
        .await;
    api.create_customer(&a, "shop-77", json!({"city": "Sevilla", "tier": "gold"}))
        .await;
    let events: Vec<Value> = (0..3)
        .map(|_| json!({"customerId": "shop-77", "type": "purchase", "channel": "web"}))
        .collect();
    send_events(&api, &a, Value::Array(events)).await;
    link(&api, &a, "shop-77", "email", "ana@x.com").await;
    let (status, _) = api
        .send(
            "PUT",
            &a.path("/customers/shop-77/subscriptions/email"),
            Some(&a.key),
            Some(json!({"subscribed": true})),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(count(&api, &a, "did purchase at_least 3 times").await, 1);

    // The preview says what will move, and moves nothing.
    let (status, preview) = api
        .send(
            "GET",
            &a.path("/customers/crm-1/merge?from=shop-77"),
            Some(&a.key),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{preview}");
    assert_eq!(preview["events"], 3);
    assert_eq!(preview["fields_filled"], json!({"tier": "gold"}));
    assert_eq!(preview["lost"], json!({"city": "Sevilla"}));
    assert_eq!(preview["subscriptions"], json!(["email"]));
    assert_eq!(api.customer_ids(&a).await, ["crm-1", "shop-77"]);

    let (status, body) = api
        .send(
            "POST",
            &a.path("/customers/crm-1/merge"),
            Some(&a.key),
            Some(json!({"from": "shop-77"})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["customerId"], "crm-1");
    assert_eq!(body["fields"], json!({"city": "Madrid", "tier": "gold"}));
    assert_eq!(body["merge"]["events_moved"], 3);
    assert_eq!(body["merge"]["identities_moved"], 1);
    assert_eq!(body["merge"]["subscriptions_moved"], 1);
    assert_eq!(body["merge"]["lost"], json!({"city": "Sevilla"}));
    // Counts follow at once.
    assert_eq!(count(&api, &a, "did purchase at_least 3 times").await, 1);
    assert_eq!(count(&api, &a, "subscribed email").await, 1);
    assert_eq!(count(&api, &a, "tier = \"gold\"").await, 1);
    assert_eq!(api.customer_ids(&a).await, ["crm-1"]);

    // The old id is an alias: reads, writes and imports land on the survivor.
    let found = api.get_customer(&a, "shop-77").await.unwrap();
    assert_eq!(found["customerId"], "crm-1");
    api.patch_customer(&a, "shop-77", json!({"fields": {"tier": "platinum"}}))
        .await;
    let import = api
        .import_csv(
            &a,
            "",
            "customerId,fieldName,fieldValue\nshop-77,city,Bilbao\n",
        )
        .await;
    assert_eq!(import["state"], "succeeded", "{import}");
    let survivor = api.get_customer(&a, "crm-1").await.unwrap();
    assert_eq!(
        survivor["fields"],
        json!({"city": "Bilbao", "tier": "platinum"})
    );
    assert_eq!(api.customer_ids(&a).await, ["crm-1"]);
    let (status, ids) = api
        .send(
            "GET",
            &a.path("/customers/crm-1/identities"),
            Some(&a.key),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(ids["aliases"][0]["customerId"], "shop-77");
    assert_eq!(ids["aliases"][0]["lost"], json!({"city": "Sevilla"}));

    // The audit says who merged what, with no personal values.
    let (status, audit) = api.admin("GET", &a.path("/audit"), None).await;
    assert_eq!(status, StatusCode::OK);
    let merged = audit["records"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["action"] == "customer.merged")
        .unwrap_or_else(|| panic!("{audit}"));
    let target = merged["target"].as_str().unwrap();
    assert!(
        target.contains("3 events") && target.contains("city"),
        "{target}"
    );
    assert!(
        !target.contains("Sevilla") && !target.contains("shop-77"),
        "{target}"
    );
    assert!(merged["actor"].as_str().unwrap().starts_with("key:"));

    // The subject export holds the identities and the aliases.
    let (status, doc) = api
        .send(
            "GET",
            &a.path("/customers/crm-1/export"),
            Some(&a.key),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(doc["identities"]["identities"][0]["value"], "ana@x.com");
    assert_eq!(doc["events"].as_array().unwrap().len(), 3);
}
