//! Shared fixtures of the filter tests: a schema with every type and awkward names, and
//! helpers to build customers and render trees.
#![allow(dead_code)] // Each test binary uses a different part of this module.

use unico_core::{Customer, CustomerId, FieldDef, FieldId, FieldName, FieldType, Schema, Value};
use unico_filter::ast::{Ast, Expr, ExprKind, Loc, Operand, Scalar, ScalarKind};

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

/// Field ids, names and types of the test schema.
pub const FIELDS: [(u32, &str, FieldType); 11] = [
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
];

pub fn schema() -> Schema {
    Schema::new(
        FIELDS
            .iter()
            .map(|&(id, name, field_type)| FieldDef {
                id: FieldId(id),
                name: FieldName::parse(name).expect("valid test field name"),
                field_type,
                created_at: 0,
            })
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
    }
}
