//! Subscription conditions (SPEC §1, §7): `subscribed email` / `{"subscribed": "email"}`.
//! Both forms give the same filter and print back canonically, `subscribed` stays usable
//! as a field name, the channel is checked against the application's (with the position
//! and a "did you mean"), and the semantics: subscribed now, and a customer who never
//! said anything is not subscribed. Every evaluation is done by the reference evaluator
//! and the resolved form, and `not (...)` must be the complement.

mod common;

use common::*;
use jiff::tz::TimeZone;
use serde_json::{Value as Json, json};
use unico_core::{Channel, Value};
use unico_filter::filter::Node;
use unico_filter::{
    ErrorKind, EvalContext, Facts, Filter, FilterInput, Location, check, matches, matches_with,
    parse_json, parse_text, resolve,
};

fn text(input: &str) -> Filter {
    Filter::parse(FilterInput::Text(input), &schema())
        .unwrap_or_else(|e| panic!("{input:?} should parse: {e}"))
}

fn channel(c: &str) -> Channel {
    Channel::parse(c).expect("valid channel")
}

/// Each text in canonical form with its canonical JSON.
const FORMS: &[(&str, &str)] = &[
    ("subscribed email", r#"{"subscribed": "email"}"#),
    ("not subscribed sms", r#"{"not": {"subscribed": "sms"}}"#),
    ("subscribed `in-app`", r#"{"subscribed": "in-app"}"#),
    ("subscribed `on`", r#"{"subscribed": "on"}"#),
    (
        "subscribed email and not subscribed sms",
        r#"{"and": [{"subscribed": "email"}, {"not": {"subscribed": "sms"}}]}"#,
    ),
    (
        "country = \"ES\" and (subscribed push or did purchase within_last 30d)",
        r#"{"and": [{"field": "country", "op": "eq", "value": "ES"}, {"or": [{"subscribed": "push"}, {"event": "purchase", "op": "did", "within_last": "30d"}]}]}"#,
    ),
    (
        "subscribed = \"yes\" and subscribed whatsapp",
        r#"{"and": [{"field": "subscribed", "op": "eq", "value": "yes"}, {"subscribed": "whatsapp"}]}"#,
    ),
];

#[test]
fn both_forms_give_the_same_filter_and_print_back_canonically() {
    let schema = schema();
    for (t, j) in FORMS {
        let j: Json = serde_json::from_str(j).expect("valid JSON");
        let from_text = text(t);
        let from_json = Filter::parse(FilterInput::Json(&j), &schema).expect("JSON parses");
        assert_eq!(from_text, from_json, "{t}");
        assert_eq!(from_text.to_text(), *t);
        assert_eq!(from_text.to_json(), j, "{t}");
    }
}

#[test]
fn subscribed_is_a_word_only_when_a_channel_follows() {
    // A channel follows: a subscription condition, any case, the channel lowercased.
    assert_eq!(
        *text("SUBSCRIBED Email").root(),
        Node::Subscribed(channel("email"))
    );
    // An operator follows: the field named `subscribed`.
    for input in [
        "subscribed = \"yes\"",
        "subscribed != \"no\"",
        "subscribed exists",
        "subscribed not_exists",
        "subscribed in (\"a\", \"b\")",
        "subscribed contains \"y\"",
        "`subscribed` = \"yes\"",
    ] {
        let filter = text(input);
        assert!(
            matches!(filter.root(), Node::Condition(c) if c.target.name() == "subscribed"),
            "{input} is a field condition: {:?}",
            filter.root()
        );
    }
    // Both at once, and the field prints bare since it is no keyword.
    let both = text("subscribed = \"yes\" and subscribed email");
    assert_eq!(both.to_text(), "subscribed = \"yes\" and subscribed email");
}

fn text_error(input: &str) -> unico_filter::FilterError {
    parse_text(input)
        .and_then(|ast| check(&ast, &schema()))
        .expect_err(input)
}

#[test]
fn an_unknown_channel_is_refused_where_it_is_written() {
    let e = text_error("age > 3 and\n  not subscribed emial");
    assert_eq!(e.code(), "filter_unknown_channel");
    assert_eq!(
        *e.location(),
        Location::Text {
            line: 2,
            column: 18
        }
    );
    match e.kind() {
        ErrorKind::UnknownSubscriptionChannel {
            name,
            suggestion,
            accepted,
        } => {
            assert_eq!(name, "emial");
            assert_eq!(suggestion.as_deref(), Some("email"));
            assert_eq!(
                &accepted[..],
                &["email", "sms", "push", "whatsapp", "in-app", "on"]
            );
        }
        other => panic!("unexpected {other:?}"),
    }
    // A channel the application does not take (an event channel), and one that is no
    // channel at all, are refused alike.
    for (input, column) in [("subscribed web", 12), ("subscribed `e mail`", 12)] {
        let e = text_error(input);
        assert_eq!(e.code(), "filter_unknown_channel", "{input}");
        assert_eq!(*e.location(), Location::Text { line: 1, column }, "{input}");
    }
    // In the JSON form the error carries the path.
    let e = parse_json(
        &json!({"or": [{"field": "age", "op": "exists"}, {"not": {"subscribed": "fax"}}]}),
    )
    .and_then(|ast| check(&ast, &schema()))
    .expect_err("fax is refused");
    assert_eq!(e.code(), "filter_unknown_channel");
    assert_eq!(
        *e.location(),
        Location::Json {
            path: "or[1].not.subscribed".to_owned()
        }
    );
    // A declared channel is accepted only where it is declared.
    let plain = unico_core::Schema::new(vec![]);
    let e = Filter::parse(FilterInput::Text("subscribed `in-app`"), &plain)
        .expect_err("not declared here");
    assert_eq!(e.code(), "filter_unknown_channel");
    assert!(Filter::parse(FilterInput::Text("subscribed email"), &plain).is_ok());
}

#[test]
fn a_malformed_subscription_condition_is_a_syntax_error() {
    for input in ["subscribed \"email\"", "subscribed email sms"] {
        assert_eq!(text_error(input).code(), "filter_syntax", "{input}");
    }
    for j in [
        json!({"subscribed": true}),
        json!({"subscribed": ""}),
        json!({"subscribed": "email", "op": "eq"}),
    ] {
        let e = parse_json(&j).expect_err("refused");
        assert_eq!(e.code(), "filter_syntax", "{j}");
    }
}

/// The filter's answer for a customer subscribed to `subscribed`, checked three ways.
fn answer(filter: &str, subscribed: &[&str]) -> bool {
    let filter = text(filter);
    let negated = text(&format!("not ({filter})"));
    let subscribed: Vec<Channel> = subscribed.iter().map(|c| channel(c)).collect();
    let ctx = EvalContext::new(ms("2024-05-10T12:00:00Z"), TimeZone::UTC);
    let c = customer(vec![(COUNTRY, Value::String("ES".into()))]);
    let facts = Facts {
        events: &[],
        subscribed: &subscribed,
    };
    let expected = matches_with(&filter, &c, &facts, &ctx);
    assert_eq!(resolve(&filter, &ctx).matches_with(&c, &facts), expected);
    assert_eq!(matches_with(&negated, &c, &facts, &ctx), !expected);
    expected
}

#[test]
fn subscribed_means_subscribed_now_and_silence_is_not_consent() {
    assert!(answer("subscribed email", &["email"]));
    assert!(answer("subscribed email", &["sms", "email"]));
    assert!(!answer("subscribed email", &["sms"]));
    // Never said anything (or unsubscribed: not in the list either).
    assert!(!answer("subscribed email", &[]));
    assert!(answer("not subscribed email", &[]));
    assert!(answer("subscribed `in-app`", &["in-app"]));
    assert!(answer(
        "country = \"ES\" and subscribed email and not subscribed sms",
        &["email"]
    ));
    assert!(!answer(
        "country = \"ES\" and subscribed email and not subscribed sms",
        &["email", "sms"]
    ));
    assert!(answer("subscribed push or did purchase", &["push"]));
    // The entry points without subscriptions see none.
    let ctx = EvalContext::new(0, TimeZone::UTC);
    let c = customer(vec![]);
    assert!(!matches(&text("subscribed email"), &c, &ctx));
    assert!(matches(&text("not subscribed email"), &c, &ctx));
    assert!(!resolve(&text("subscribed email"), &ctx).matches(&c));
}
