//! Channel subscriptions over HTTP: the standing subscription per channel, the latest
//! statement winning whatever order changes arrive in, the full history, the channels an
//! application takes, and hostile bodies answered precisely with nothing written.

use axum::http::StatusCode;
use serde_json::{Value, json};

use crate::support::*;

async fn put(
    api: &Api,
    app: &App,
    customer: &str,
    channel: &str,
    body: Value,
) -> (StatusCode, Value) {
    api.send(
        "PUT",
        &app.path(&format!("/customers/{customer}/subscriptions/{channel}")),
        Some(&app.key),
        Some(body),
    )
    .await
}

async fn standing(api: &Api, app: &App, customer: &str) -> Vec<(String, bool, String)> {
    let (status, body) = api
        .send(
            "GET",
            &app.path(&format!("/customers/{customer}/subscriptions")),
            Some(&app.key),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body["subscriptions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["channel"].as_str().unwrap().to_owned(),
                s["subscribed"].as_bool().unwrap(),
                s["source"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

#[tokio::test]
async fn the_latest_statement_stands_and_every_change_is_kept() {
    let api = Api::new();
    let a = api.create_app("Shop").await;
    api.create_customer(&a, "ana", json!({})).await;
    let (status, body) = put(
        &api,
        &a,
        "ana",
        "email",
        json!({"subscribed": true, "at": "2026-11-01T10:00:00Z", "source": "checkout"}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        body["subscriptions"],
        json!([{"channel": "email", "subscribed": true,
                "changed_at": "2026-11-01T10:00:00.000Z", "source": "checkout"}])
    );
    assert_eq!(
        body["channels"],
        json!(["email", "sms", "push", "whatsapp"])
    );
    // Channels are case-insensitive names; the source defaults to "api".
    let (status, _) = put(&api, &a, "ana", "SMS", json!({"subscribed": false})).await;
    assert_eq!(status, StatusCode::OK);
    // An older statement arriving late is history, not the standing answer.
    let (status, _) = put(
        &api,
        &a,
        "ana",
        "email",
        json!({"subscribed": false, "at": "2026-10-01T00:00:00Z", "source": "old_crm"}),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        standing(&api, &a, "ana").await,
        [
            ("email".to_owned(), true, "checkout".to_owned()),
            ("sms".to_owned(), false, "api".to_owned())
        ]
    );
    let (status, _) = put(
        &api,
        &a,
        "ana",
        "email",
        json!({"subscribed": false, "source": "unsubscribe_link"}),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert!(!standing(&api, &a, "ana").await[0].1);
    let (status, body) = api
        .send(
            "GET",
            &a.path("/customers/ana/subscriptions/history?limit=3"),
            Some(&a.key),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let sources: Vec<&str> = body["history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["source"].as_str().unwrap())
        .collect();
    assert_eq!(sources, ["unsubscribe_link", "old_crm", "api"]);
    assert_eq!(body["history"][1]["at"], "2026-10-01T00:00:00.000Z");
}

#[tokio::test]
async fn an_application_declares_more_channels() {
    let api = Api::new();
    let a = api.create_app("Shop").await;
    api.create_customer(&a, "ana", json!({})).await;
    let (status, body) = put(&api, &a, "ana", "wallet", json!({"subscribed": true})).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_error(
        &body,
        "invalid_parameter",
        &[
            "\"wallet\" is not a subscription channel",
            "email, sms, push, whatsapp",
        ],
    );
    let (status, body) = api
        .admin(
            "PATCH",
            &format!("/v1/apps/{}", a.id),
            Some(json!({"subscription_channels": ["Wallet", "wallet", "line"]})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        body["subscription_channels"],
        json!(["email", "sms", "push", "whatsapp", "wallet", "line"])
    );
    let (status, body) = put(&api, &a, "ana", "wallet", json!({"subscribed": true})).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, body) = api
        .admin(
            "PATCH",
            &format!("/v1/apps/{}", a.id),
            Some(json!({"subscription_channels": ["ok", "not a channel"]})),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(details(&body)[0].0, "subscription_channels[1]");
}

#[tokio::test]
async fn hostile_changes_are_refused_precisely_and_write_nothing() {
    let api = Api::new();
    let a = api.create_app("Shop").await;
    api.create_customer(&a, "ana", json!({})).await;
    let cases = [
        (json!({}), vec!["subscribed"]),
        (json!({"subscribed": "yes"}), vec!["subscribed"]),
        (json!({"subscribed": true, "at": "yesterday"}), vec!["at"]),
        (json!({"subscribed": true, "at": 1.5}), vec!["at"]),
        (
            json!({"subscribed": true, "at": "1999-12-31T23:59:59Z"}),
            vec!["at"],
        ),
        (
            json!({"subscribed": true, "at": "2999-01-01T00:00:00Z"}),
            vec!["at"],
        ),
        (json!({"subscribed": true, "source": ""}), vec!["source"]),
        (
            json!({"subscribed": true, "source": "a\u{0}b"}),
            vec!["source"],
        ),
        (
            json!({"subscribed": true, "source": "x".repeat(65)}),
            vec!["source"],
        ),
        (json!({"subscribed": true, "extra": 1}), vec!["extra"]),
        (
            json!({"subscribed": 1, "source": 7}),
            vec!["subscribed", "source"],
        ),
        (json!([true]), vec!["body"]),
    ];
    for (body, fields) in cases {
        let (status, reply) = put(&api, &a, "ana", "email", body.clone()).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}: {reply}");
        let got: Vec<String> = details(&reply).into_iter().map(|(f, _)| f).collect();
        assert_eq!(got, fields, "{body}: {reply}");
    }
    let (status, _) = put(
        &api,
        &a,
        "ana",
        "not%20a%20channel",
        json!({"subscribed": true}),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, body) = put(&api, &a, "nobody", "email", json!({"subscribed": true})).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    assert!(api.get_customer(&a, "nobody").await.is_none());
    assert!(standing(&api, &a, "ana").await.is_empty());
    let (_, body) = api
        .send(
            "GET",
            &a.path("/customers/ana/subscriptions/history"),
            Some(&a.key),
            None,
        )
        .await;
    assert_eq!(body["history"], json!([]));
    let (status, _) = api
        .send(
            "GET",
            &a.path("/customers/ana/subscriptions/history?limit=0"),
            Some(&a.key),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn another_applications_key_sees_no_subscription() {
    let api = Api::new();
    let a = api.create_app("Shop").await;
    let b = api.create_app("Other").await;
    api.create_customer(&a, "ana", json!({})).await;
    put(&api, &a, "ana", "email", json!({"subscribed": true})).await;
    for (method, path, body) in [
        ("GET", a.path("/customers/ana/subscriptions"), None),
        ("GET", a.path("/customers/ana/subscriptions/history"), None),
        (
            "PUT",
            a.path("/customers/ana/subscriptions/email"),
            Some(json!({"subscribed": false})),
        ),
    ] {
        let (status, _) = api.send(method, &path, Some(&b.key), body).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{method} {path}");
    }
    assert!(standing(&api, &a, "ana").await[0].1);
}

#[tokio::test]
async fn a_batch_carries_consent_with_the_values_and_an_item_fails_whole() {
    let api = Api::new();
    let a = api.create_app("Shop").await;
    api.create_field(&a, "city", "string").await;
    let (status, body) = api
        .send(
            "POST",
            &a.path("/customers/batch"),
            Some(&a.key),
            Some(json!([
                {"customerId": "ana", "fields": {"city": "Vigo"},
                 "subscriptions": {"email": true, "sms": {"subscribed": false, "source": "crm"}}},
                {"customerId": "bob", "fields": {"city": "Lugo"}, "subscriptions": {"wallet": true}},
                {"customerId": "cy", "subscriptions": {"email": "yes", "Not A Channel": true}},
                {"customerId": "dee", "subscriptions": []}
            ])),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let statuses: Vec<&str> = body["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["status"].as_str().unwrap())
        .collect();
    assert_eq!(statuses, ["created", "error", "error", "error"], "{body}");
    assert!(
        body["results"][1]["error"]["message"]
            .as_str()
            .unwrap()
            .contains("\"wallet\" is not a subscription channel"),
        "{body}"
    );
    let fields: Vec<&str> = body["results"][2]["error"]["details"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["field"].as_str().unwrap())
        .collect();
    assert_eq!(
        fields,
        ["[2].subscriptions.email", "[2].subscriptions.Not A Channel"],
        "{body}"
    );
    assert_eq!(
        body["results"][3]["error"]["details"][0]["field"],
        "[3].subscriptions"
    );
    // Nothing of a failed item was written.
    assert!(api.get_customer(&a, "bob").await.is_none());
    assert_eq!(
        standing(&api, &a, "ana").await,
        [
            ("email".to_owned(), true, "api".to_owned()),
            ("sms".to_owned(), false, "crm".to_owned())
        ]
    );
}

#[tokio::test]
async fn audiences_count_subscribers_at_once() {
    let api = Api::new();
    let a = api.create_app("Shop").await;
    for id in ["ana", "bob", "cy"] {
        api.create_customer(&a, id, json!({})).await;
    }
    put(&api, &a, "ana", "email", json!({"subscribed": true})).await;
    put(&api, &a, "bob", "email", json!({"subscribed": false})).await;
    assert_eq!(
        crate::filters::count(&api, &a, json!("subscribed email")).await,
        1
    );
    assert_eq!(
        crate::filters::count(&api, &a, json!({"not": {"subscribed": "email"}})).await,
        2
    );
    // Each acknowledged change is counted by the next question.
    put(&api, &a, "bob", "email", json!({"subscribed": true})).await;
    assert_eq!(
        crate::filters::count(&api, &a, json!("subscribed email")).await,
        2
    );
    put(
        &api,
        &a,
        "ana",
        "email",
        json!({"subscribed": false, "source": "unsubscribe_link"}),
    )
    .await;
    assert_eq!(
        crate::filters::count(&api, &a, json!("subscribed email")).await,
        1
    );
    crate::filters::count_error(
        &api,
        &a,
        json!("subscribed emial"),
        "filter_unknown_channel",
        &["did you mean \"email\""],
    )
    .await;
}
