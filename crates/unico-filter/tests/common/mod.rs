//! Shared fixtures of the filter tests: a schema with every type, awkward names and
//! registered event types, and helpers to build customers, events and render trees.
#![allow(dead_code)] // Each test binary uses a different part of this module.

use unico_core::{
    Channel, Customer, CustomerId, Event, EventCode, EventType, EventTypes, FieldDef, FieldId,
    FieldName, FieldType, Properties, PropertyType, Schema, Value,
};
use unico_filter::ast::{
    Ast, EventWindow, Expr, ExprKind, Loc, MeasureExpr, Operand, Scalar, ScalarKind,
};

pub const AGE: u32 = 1;
pub const COUNTRY: u32 = 2;
pub const GENDER: u32 = 3;
pub const TIER: u32 = 4;
pub const LAST_PURCHASE_AT: u32 = 5;
pub const BIRTHDATE: u32 = 6;
pub const LAST_PURCHASE_SPACED: u32 = 7;
pub const ON_FIELD: u32 = 8;
pub const TICKS: u32 = 9;
pub const PAIS: u32 = 10;
pub const SIGNUP_DATE: u32 = 11;
// Fields named like the words that start event conditions: they stay usable as fields.
pub const LAST: u32 = 12;
pub const COUNT: u32 = 13;
pub const DID: u32 = 14;
pub const SUM: u32 = 15;
pub const FIRST: u32 = 16;
// Named like the word that starts a subscription condition: it stays usable as a field.
pub const SUBSCRIBED: u32 = 17;

/// Field ids, names and types of the test schema.
pub const FIELDS: [(u32, &str, FieldType); 17] = [
    (AGE, "age", FieldType::Number),
    (COUNTRY, "country", FieldType::String),
    (GENDER, "gender", FieldType::String),
    (TIER, "tier", FieldType::String),
    (LAST_PURCHASE_AT, "last_purchase_at", FieldType::Datetime),
    (BIRTHDATE, "birthdate", FieldType::Date),
    (LAST_PURCHASE_SPACED, "last purchase", FieldType::String),
    (ON_FIELD, "on", FieldType::String),
    (TICKS, "a`b", FieldType::Number),
    (PAIS, "país", FieldType::String),
    (SIGNUP_DATE, "signup_date", FieldType::Date),
    (LAST, "last", FieldType::Datetime),
    (COUNT, "count", FieldType::Number),
    (DID, "did", FieldType::String),
    (SUM, "sum", FieldType::Number),
    (FIRST, "first", FieldType::String),
    (SUBSCRIBED, "subscribed", FieldType::String),
];

/// Channels the test application declares for subscriptions, beyond the default ones
/// (`email`, `sms`, `push`, `whatsapp`): `in-app` and `on` need backticks in the text form.
pub const DECLARED_CHANNELS: [&str; 2] = ["in-app", "on"];

/// The registered event types of the test schema and their declared properties. `on`
/// and `order.completed-v2` need backticks in the text form; `did` is named like the
/// word that starts an event condition.
pub const EVENT_TYPES: [(&str, &[(&str, PropertyType)]); 7] = [
    (
        "purchase",
        &[
            ("amount", PropertyType::Number),
            ("currency", PropertyType::String),
            ("store", PropertyType::String),
        ],
    ),
    ("email_open", &[]),
    ("app_open", &[]),
    ("add_to_cart", &[("sku", PropertyType::String)]),
    ("on", &[("x", PropertyType::Number)]),
    ("order.completed-v2", &[]),
    ("did", &[]),
];

pub fn event_types() -> EventTypes {
    EventTypes::new(
        EVENT_TYPES
            .iter()
            .map(|(code, props)| EventType {
                code: EventCode::parse(code).expect("valid test event type"),
                name: (*code).to_owned(),
                retention_days: 1095,
                enabled: true,
                properties: props.iter().map(|(n, t)| ((*n).to_owned(), *t)).collect(),
                created_at: 0,
            })
            .collect(),
    )
}

/// An event of the test customer.
pub fn event(code: &str, channel: &str, timestamp: i64, properties: serde_json::Value) -> Event {
    Event {
        id: 0,
        customer: 1,
        event_id: None,
        event_type: EventCode::parse(code).expect("valid event type"),
        channel: Channel::parse(channel).expect("valid channel"),
        device_id: None,
        timestamp,
        properties: Properties::from_json(properties).expect("valid properties"),
    }
}

pub fn schema() -> Schema {
    Schema::new(
        FIELDS
            .iter()
            .map(|&(id, name, field_type)| FieldDef {
                id: FieldId(id),
                name: FieldName::parse(name).expect("valid test field name"),
                field_type,
                created_at: 0,
                computed: None,
            })
            .collect(),
    )
    .with_event_types(event_types())
    .with_declared_channels(
        DECLARED_CHANNELS
            .iter()
            .map(|c| Channel::parse(c).expect("valid test channel"))
            .collect(),
    )
}

/// A customer with the given values (any order).
pub fn customer(values: Vec<(u32, Value)>) -> Customer {
    let mut fields: Vec<(FieldId, Value)> =
        values.into_iter().map(|(id, v)| (FieldId(id), v)).collect();
    fields.sort_by_key(|(id, _)| *id);
    fields.dedup_by_key(|(id, _)| *id);
    Customer {
        id: 1,
        customer_id: CustomerId::parse("ana@example.com").expect("valid customerId"),
        created_at: ms("2024-01-15T10:00:00Z"),
        updated_at: ms("2024-05-01T08:30:00Z"),
        fields,
    }
}

pub fn ms(text: &str) -> i64 {
    unico_core::time::parse_datetime(text).expect("valid test datetime")
}

pub fn day(text: &str) -> i32 {
    unico_core::time::parse_date(text).expect("valid test date")
}

/// The tree as indented lines: one node per line with its location, values as parsed.
pub fn render_ast(ast: &Ast) -> String {
    let mut out = String::new();
    render_expr(&ast.root, 0, &mut out);
    out
}

fn loc(l: &Loc) -> String {
    match l {
        Loc::Text(span) => format!("@{}..{}", span.start, span.end),
        Loc::Json(path) if path.is_empty() => "@$".to_owned(),
        Loc::Json(path) => format!("@{path}"),
    }
}

fn scalar(s: &Scalar) -> String {
    let value = match &s.kind {
        ScalarKind::String(v) => format!("{v:?}"),
        ScalarKind::Number(n) => format!("num {n}"),
        ScalarKind::JsonNumber(n) => format!("json {n}"),
        ScalarKind::Relative(r) => format!("rel {r}"),
    };
    format!("{value} {}", loc(&s.loc))
}

fn render_expr(e: &Expr, indent: usize, out: &mut String) {
    let pad = "  ".repeat(indent);
    match &e.kind {
        ExprKind::And(children) | ExprKind::Or(children) => {
            let word = if matches!(e.kind, ExprKind::And(_)) {
                "and"
            } else {
                "or"
            };
            out.push_str(&format!("{pad}{word} {}\n", loc(&e.loc)));
            for c in children {
                render_expr(c, indent + 1, out);
            }
        }
        ExprKind::Not(inner) => {
            out.push_str(&format!("{pad}not {}\n", loc(&e.loc)));
            render_expr(inner, indent + 1, out);
        }
        ExprKind::Condition(c) => {
            let operand = match &c.operand {
                Operand::None => String::new(),
                Operand::Scalar(s) => scalar(s),
                Operand::List(items) => format!(
                    "[{}]",
                    items.iter().map(scalar).collect::<Vec<_>>().join(", ")
                ),
                Operand::Range(lo, hi) => format!("{} .. {}", scalar(lo), scalar(hi)),
                Operand::Duration(d, l) => format!("{d} {}", loc(l)),
                Operand::Anniversary(None) => String::new(),
                Operand::Anniversary(Some((d, l))) => format!("within {d} {}", loc(l)),
            };
            out.push_str(&format!(
                "{pad}{:?} {} {} {operand} {}\n",
                c.field,
                loc(&c.field_loc),
                c.op,
                loc(&e.loc)
            ));
        }
        ExprKind::Subscribed {
            channel,
            channel_loc,
        } => {
            out.push_str(&format!(
                "{pad}subscribed {channel:?} {} {}\n",
                loc(channel_loc),
                loc(&e.loc)
            ));
        }
        ExprKind::Event(ev) => {
            let measure = match &ev.measure {
                MeasureExpr::Occurred { negated, count } => {
                    let count = count
                        .as_ref()
                        .map(|(op, n, l)| format!(" count {op:?} {n} {}", loc(l)))
                        .unwrap_or_default();
                    format!("{}{count}", if *negated { "did_not" } else { "did" })
                }
                MeasureExpr::Aggregate {
                    agg,
                    agg_loc,
                    property,
                    test,
                } => format!(
                    "{} {}{} test {} {} {}",
                    agg.name(),
                    loc(agg_loc),
                    property
                        .as_ref()
                        .map(|(p, l)| format!(" {p:?} {}", loc(l)))
                        .unwrap_or_default(),
                    test.op,
                    loc(&test.op_loc),
                    operand(&test.operand)
                ),
                MeasureExpr::Time { which, test } => format!(
                    "{} test {} {} {}",
                    which.name(),
                    test.op,
                    loc(&test.op_loc),
                    operand(&test.operand)
                ),
            };
            out.push_str(&format!(
                "{pad}event {:?} {} {measure} {}\n",
                ev.event,
                loc(&ev.event_loc),
                loc(&e.loc)
            ));
            if let Some((c, l)) = &ev.channel {
                out.push_str(&format!("{pad}  on {c:?} {}\n", loc(l)));
            }
            if let Some((w, l)) = &ev.window {
                let w = match w {
                    EventWindow::Ever => "ever".to_owned(),
                    EventWindow::Last(d) => format!("within_last {d}"),
                    EventWindow::Between(lo, hi) => {
                        format!("between {} .. {}", scalar(lo), scalar(hi))
                    }
                };
                out.push_str(&format!("{pad}  window {w} {}\n", loc(l)));
            }
            for w in &ev.wheres {
                out.push_str(&format!(
                    "{pad}  where {:?} {} {} {} {}\n",
                    w.field,
                    loc(&w.field_loc),
                    w.op,
                    loc(&w.op_loc),
                    operand(&w.operand)
                ));
            }
        }
    }
}

fn operand(o: &Operand) -> String {
    match o {
        Operand::None => String::new(),
        Operand::Scalar(s) => scalar(s),
        Operand::List(items) => format!(
            "[{}]",
            items.iter().map(scalar).collect::<Vec<_>>().join(", ")
        ),
        Operand::Range(lo, hi) => format!("{} .. {}", scalar(lo), scalar(hi)),
        Operand::Duration(d, l) => format!("{d} {}", loc(l)),
        Operand::Anniversary(None) => String::new(),
        Operand::Anniversary(Some((d, l))) => format!("within {d} {}", loc(l)),
    }
}
