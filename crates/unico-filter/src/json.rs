//! The JSON form (canonical: the API and saved segments): a `serde_json::Value` parsed into
//! the same [`Ast`] as the text form, with errors located by a path such as
//! `and[2].value`.
//!
//! Recursion follows `and`/`or`/`not` only, and the level is checked before each step
//! down, so a hostile document cannot overflow the stack.

use serde_json::{Map, Value};

use crate::ast::{
    Ast, Condition, Direction, Duration, Expr, ExprKind, Loc, Op, Operand, Relative, Scalar,
    ScalarKind, Unit, parse_duration,
};
use crate::error::{ErrorKind, FilterError, Location};
use crate::limits::{MAX_DEPTH, MAX_FILTER_BYTES, MAX_IN_VALUES};

const NODE_SHAPES: &str = "a filter is {\"and\": [...]}, {\"or\": [...]}, {\"not\": {...}} or {\"field\": ..., \"op\": ..., \"value\": ...}";

/// Parses the JSON form into an untyped tree.
pub fn parse_json(input: &Value) -> Result<Ast, FilterError> {
    let bytes = compact_len(input);
    if bytes > MAX_FILTER_BYTES {
        return Err(FilterError::new(
            ErrorKind::TooLarge { bytes },
            Location::Whole,
        ));
    }
    let mut path = Path::default();
    let root = node(input, &mut path, 1)?;
    Ok(Ast::from_json(root))
}

/// The length of `value` written as compact JSON, counted without writing it and without
/// recursion.
fn compact_len(value: &Value) -> usize {
    fn string_len(s: &str) -> usize {
        2 + s
            .chars()
            .map(|c| match c {
                '"' | '\\' | '\n' | '\r' | '\t' | '\u{8}' | '\u{c}' => 2,
                c if (c as u32) < 0x20 => 6,
                c => c.len_utf8(),
            })
            .sum::<usize>()
    }
    let mut total = 0usize;
    let mut stack = vec![value];
    while let Some(v) = stack.pop() {
        total = total.saturating_add(match v {
            Value::Null => 4,
            Value::Bool(true) => 4,
            Value::Bool(false) => 5,
            Value::Number(n) => n.to_string().len(),
            Value::String(s) => string_len(s),
            Value::Array(items) => {
                stack.extend(items);
                2 + items.len().saturating_sub(1)
            }
            Value::Object(map) => {
                let mut keys = 0usize;
                for (k, v) in map {
                    keys = keys.saturating_add(string_len(k) + 1);
                    stack.push(v);
                }
                2 + map.len().saturating_sub(1) + keys
            }
        });
    }
    total
}

/// The path to the value being read, rendered like `and[2].value`.
#[derive(Default)]
struct Path(Vec<Seg>);

enum Seg {
    Key(String),
    Index(usize),
}

impl Path {
    fn render(&self) -> String {
        let mut out = String::new();
        for seg in &self.0 {
            match seg {
                Seg::Key(k) => {
                    if !out.is_empty() {
                        out.push('.');
                    }
                    out.push_str(&unico_core::value::excerpt(k));
                }
                Seg::Index(i) => {
                    out.push('[');
                    out.push_str(&i.to_string());
                    out.push(']');
                }
            }
        }
        out
    }

    fn loc(&self) -> Loc {
        Loc::Json(self.render())
    }

    fn location(&self) -> Location {
        Location::Json {
            path: self.render(),
        }
    }

    fn error(&self, message: impl Into<String>) -> FilterError {
        FilterError::syntax(message, self.location())
    }

    /// Runs `f` with `seg` appended to the path.
    fn with<T>(&mut self, seg: Seg, f: impl FnOnce(&mut Self) -> T) -> T {
        self.0.push(seg);
        let out = f(self);
        self.0.pop();
        out
    }
}

fn key(k: &str) -> Seg {
    Seg::Key(k.to_owned())
}

fn kind_of(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

fn node(value: &Value, path: &mut Path, level: usize) -> Result<Expr, FilterError> {
    if level > MAX_DEPTH {
        return Err(FilterError::new(ErrorKind::TooDeep, path.location()));
    }
    let Value::Object(map) = value else {
        return Err(path.error(format!(
            "expected a filter object, got {}; {NODE_SHAPES}",
            kind_of(value)
        )));
    };
    let logical = ["and", "or", "not"]
        .into_iter()
        .find(|k| map.contains_key(*k));
    let Some(logical) = logical else {
        return condition(map, path);
    };
    if let Some(other) = map.keys().find(|k| k.as_str() != logical) {
        return Err(path.error(format!(
            "\"{logical}\" must be the only key of its object, found also \"{}\"; {NODE_SHAPES}",
            unico_core::value::excerpt(other)
        )));
    }
    let loc = path.loc();
    let child = map.get(logical).unwrap_or(&Value::Null);
    path.with(key(logical), |path| {
        let kind = if logical == "not" {
            ExprKind::Not(Box::new(node(child, path, level + 1)?))
        } else {
            let items = match child {
                Value::Array(items) if !items.is_empty() => items,
                Value::Array(_) => {
                    return Err(path.error(format!(
                        "\"{logical}\" holds an empty array; it needs at least one filter"
                    )));
                }
                other => {
                    return Err(path.error(format!(
                        "expected an array of filters, got {}",
                        kind_of(other)
                    )));
                }
            };
            let children = items
                .iter()
                .enumerate()
                .map(|(i, item)| path.with(Seg::Index(i), |path| node(item, path, level + 1)))
                .collect::<Result<Vec<_>, _>>()?;
            if logical == "and" {
                ExprKind::And(children)
            } else {
                ExprKind::Or(children)
            }
        };
        Ok(Expr { kind, loc })
    })
}

fn condition(map: &Map<String, Value>, path: &mut Path) -> Result<Expr, FilterError> {
    if let Some(unknown) = map
        .keys()
        .find(|k| !["field", "op", "value"].contains(&k.as_str()))
    {
        return Err(path.error(format!(
            "unknown key \"{}\"; {NODE_SHAPES}",
            unico_core::value::excerpt(unknown)
        )));
    }
    let loc = path.loc();
    let field = match map.get("field") {
        Some(Value::String(s)) if !s.is_empty() => s.clone(),
        Some(Value::String(_)) => {
            return Err(path.with(key("field"), |p| p.error("empty field name")));
        }
        Some(other) => {
            return Err(path.with(key("field"), |p| {
                p.error(format!(
                    "expected the field name as a string, got {}",
                    kind_of(other)
                ))
            }));
        }
        None => {
            return Err(path.error(format!("missing \"field\"; {NODE_SHAPES}")));
        }
    };
    let field_loc = path.with(key("field"), |p| p.loc());
    let op_loc = path.with(key("op"), |p| p.loc());
    let op = match map.get("op") {
        Some(Value::String(name)) => Op::from_name(name).ok_or_else(|| {
            path.with(key("op"), |p| {
                p.error(format!(
                    "unknown operator \"{}\"; operators: {}",
                    unico_core::value::excerpt(name),
                    Op::ALL.map(Op::name).join(", ")
                ))
            })
        })?,
        Some(other) => {
            return Err(path.with(key("op"), |p| {
                p.error(format!(
                    "expected the operator as a string, got {}",
                    kind_of(other)
                ))
            }));
        }
        None => {
            return Err(path.error(format!("missing \"op\"; {NODE_SHAPES}")));
        }
    };
    let value = map.get("value");
    let operand = path.with(key("value"), |p| operand(op, value, p))?;
    Ok(Expr {
        kind: ExprKind::Condition(Condition {
            field,
            field_loc,
            op,
            op_loc,
            operand,
        }),
        loc,
    })
}

fn operand(op: Op, value: Option<&Value>, path: &mut Path) -> Result<Operand, FilterError> {
    let present = value.filter(|v| !v.is_null());
    match op {
        Op::Exists | Op::NotExists => match present {
            None => Ok(Operand::None),
            Some(_) => Err(path.error(format!("\"{op}\" takes no value; remove \"value\""))),
        },
        Op::Anniversary => match present {
            None => Ok(Operand::Anniversary(None)),
            Some(Value::Object(map)) if map.len() == 1 && map.contains_key("within_days") => path
                .with(key("within_days"), |p| {
                    let days = map
                        .get("within_days")
                        .and_then(Value::as_u64)
                        .and_then(|n| u32::try_from(n).ok())
                        .filter(|n| *n <= crate::limits::MAX_TIME_AMOUNT)
                        .ok_or_else(|| {
                            p.error(format!(
                                "expected a whole number of days from 0 to {}",
                                crate::limits::MAX_ANNIVERSARY_DAYS
                            ))
                        })?;
                    Ok(Operand::Anniversary(Some((
                        Duration {
                            amount: days,
                            unit: Unit::Day,
                        },
                        p.loc(),
                    ))))
                }),
            Some(_) => Err(path.error("\"anniversary\" takes no value or {\"within_days\": N}")),
        },
        Op::WithinLast | Op::NotWithinLast => match present {
            Some(Value::String(text)) => parse_duration(text)
                .map(|d| Operand::Duration(d, path.loc()))
                .map_err(|message| path.error(message)),
            Some(other) => Err(path.error(format!(
                "expected a duration string such as \"30d\", got {}",
                kind_of(other)
            ))),
            None => Err(path.error(format!(
                "missing \"value\": \"{op}\" takes a duration such as \"30d\""
            ))),
        },
        Op::In | Op::NotIn => match present {
            Some(Value::Array(items)) if items.is_empty() => Err(path.error(format!(
                "\"{op}\" holds an empty array; it needs at least one value"
            ))),
            Some(Value::Array(items)) if items.len() > MAX_IN_VALUES => {
                Err(FilterError::new(ErrorKind::ListTooLong, path.location()))
            }
            Some(Value::Array(items)) => items
                .iter()
                .enumerate()
                .map(|(i, item)| path.with(Seg::Index(i), |p| scalar(item, p)))
                .collect::<Result<Vec<_>, _>>()
                .map(Operand::List),
            Some(other) => Err(path.error(format!(
                "expected an array of values for \"{op}\", got {}",
                kind_of(other)
            ))),
            None => Err(path.error(format!(
                "missing \"value\": \"{op}\" takes an array of values"
            ))),
        },
        Op::Between => match present {
            Some(Value::Array(items)) if items.len() == 2 => {
                let lo = path.with(Seg::Index(0), |p| scalar(&items[0], p))?;
                let hi = path.with(Seg::Index(1), |p| scalar(&items[1], p))?;
                Ok(Operand::Range(Box::new(lo), Box::new(hi)))
            }
            Some(Value::Array(items)) => Err(path.error(format!(
                "\"between\" takes an array of two values [low, high], got {} values",
                items.len()
            ))),
            Some(other) => Err(path.error(format!(
                "\"between\" takes an array of two values [low, high], got {}",
                kind_of(other)
            ))),
            None => Err(path
                .error("missing \"value\": \"between\" takes an array of two values [low, high]")),
        },
        _ => match present {
            Some(v) => scalar(v, path).map(Operand::Scalar),
            None => Err(path.error(format!("missing \"value\" for \"{op}\""))),
        },
    }
}

fn scalar(value: &Value, path: &mut Path) -> Result<Scalar, FilterError> {
    let kind = match value {
        Value::String(s) => ScalarKind::String(s.clone()),
        Value::Number(n) => ScalarKind::JsonNumber(n.clone()),
        Value::Object(map) if map.len() == 1 => {
            let (name, direction) = if map.contains_key("ago") {
                ("ago", Direction::Ago)
            } else if map.contains_key("from_now") {
                ("from_now", Direction::FromNow)
            } else {
                return Err(
                    path.error("a relative time is {\"ago\": \"90d\"} or {\"from_now\": \"7d\"}")
                );
            };
            let duration = path.with(key(name), |p| match map.get(name) {
                Some(Value::String(text)) => parse_duration(text).map_err(|m| p.error(m)),
                other => Err(p.error(format!(
                    "expected a duration string such as \"90d\", got {}",
                    other.map_or("nothing", kind_of)
                ))),
            })?;
            ScalarKind::Relative(Relative {
                duration,
                direction,
            })
        }
        Value::Object(_) => {
            return Err(
                path.error("a relative time is {\"ago\": \"90d\"} or {\"from_now\": \"7d\"}")
            );
        }
        other => {
            return Err(path.error(format!(
                "expected a string, a number or a relative time ({{\"ago\": \"90d\"}}), got {}",
                kind_of(other)
            )));
        }
    };
    Ok(Scalar {
        kind,
        loc: path.loc(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn json_value() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(Value::from),
            any::<f64>()
                .prop_filter("finite", |n| n.is_finite())
                .prop_map(Value::from),
            any::<String>().prop_map(Value::String),
            "[\"\\\\\u{0}-\u{1f}\u{7f}é😀/]{0,8}".prop_map(Value::String),
        ];
        leaf.prop_recursive(3, 24, 4, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
                prop::collection::vec((any::<String>(), inner), 0..4)
                    .prop_map(|pairs| Value::Object(pairs.into_iter().collect())),
            ]
        })
    }

    proptest! {
        /// The size limit counts exactly what `serde_json` writes.
        #[test]
        fn compact_len_is_the_length_serde_json_writes(value in json_value()) {
            let written = serde_json::to_string(&value).map_or(0, |s| s.len());
            prop_assert_eq!(compact_len(&value), written);
        }
    }
}
