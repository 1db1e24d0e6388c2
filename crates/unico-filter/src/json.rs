//! The JSON form (canonical: the API and saved segments): a `serde_json::Value` parsed into
//! the same [`Ast`] as the text form, with errors located by a path such as
//! `and[2].value`.
//!
//! Recursion follows `and`/`or`/`not` only, and the level is checked before each step
//! down, so a hostile document cannot overflow the stack.

use serde_json::{Map, Value};

use crate::ast::{
    Ast, Condition, Direction, Duration, EventExpr, EventWindow, Expr, ExprKind, Loc, MeasureExpr,
    Op, Operand, Relative, Scalar, ScalarKind, TestExpr, Unit, parse_duration,
};
use crate::error::{ErrorKind, FilterError, Location};
use crate::filter::{Agg, CountOp, Which};
use crate::limits::{MAX_DEPTH, MAX_EVENT_COUNT, MAX_FILTER_BYTES, MAX_IN_VALUES};

const NODE_SHAPES: &str = "a filter is {\"and\": [...]}, {\"or\": [...]}, {\"not\": {...}}, {\"field\": ..., \"op\": ..., \"value\": ...}, {\"event\": ..., ...} or {\"subscribed\": \"email\"}";

const SUBSCRIBED_SHAPE: &str = "a subscription condition is {\"subscribed\": \"email\"}, negated as {\"not\": {\"subscribed\": \"email\"}}";

const PROPERTY_SHAPE: &str =
    "a property condition is {\"field\": \"amount\", \"op\": \"gt\", \"value\": 50}";

/// The keys of an event condition, in the order they are checked.
const EVENT_KEYS: [&str; 10] = [
    "event",
    "op",
    "agg",
    "property",
    "value",
    "channel",
    "count",
    "within_last",
    "between",
    "where",
];

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
        if map.contains_key("event") {
            return event_condition(map, path);
        }
        if map.contains_key("subscribed") {
            return subscribed(map, path);
        }
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

/// `{"subscribed": "email"}`: the only key, holding the channel's name.
fn subscribed(map: &Map<String, Value>, path: &mut Path) -> Result<Expr, FilterError> {
    if let Some(other) = map.keys().find(|k| k.as_str() != "subscribed") {
        return Err(path.error(format!(
            "\"subscribed\" must be the only key of its object, found also \"{}\"; {SUBSCRIBED_SHAPE}",
            unico_core::value::excerpt(other)
        )));
    }
    let loc = path.loc();
    let (channel, channel_loc) = path.with(key("subscribed"), |p| match map.get("subscribed") {
        Some(Value::String(s)) if !s.is_empty() => Ok((s.clone(), p.loc())),
        Some(Value::String(_)) => Err(p.error(format!("empty channel name; {SUBSCRIBED_SHAPE}"))),
        Some(other) => Err(p.error(format!(
            "expected the channel's name as a string, got {}; {SUBSCRIBED_SHAPE}",
            kind_of(other)
        ))),
        None => Err(p.error(SUBSCRIBED_SHAPE)),
    })?;
    Ok(Expr {
        kind: ExprKind::Subscribed {
            channel,
            channel_loc,
        },
        loc,
    })
}

fn condition(map: &Map<String, Value>, path: &mut Path) -> Result<Expr, FilterError> {
    let loc = path.loc();
    let condition = field_condition(map, path, NODE_SHAPES)?;
    Ok(Expr {
        kind: ExprKind::Condition(condition),
        loc,
    })
}

/// `{"field": ..., "op": ..., "value": ...}`: a field condition, or a property condition
/// in an event's `where` (`shapes` says which, for messages).
fn field_condition(
    map: &Map<String, Value>,
    path: &mut Path,
    shapes: &str,
) -> Result<Condition, FilterError> {
    if let Some(unknown) = map
        .keys()
        .find(|k| !["field", "op", "value"].contains(&k.as_str()))
    {
        return Err(path.error(format!(
            "unknown key \"{}\"; {shapes}",
            unico_core::value::excerpt(unknown)
        )));
    }
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
            return Err(path.error(format!("missing \"field\"; {shapes}")));
        }
    };
    let field_loc = path.with(key("field"), |p| p.loc());
    let test = test(map, path, shapes)?;
    Ok(Condition {
        field,
        field_loc,
        op: test.op,
        op_loc: test.op_loc,
        operand: test.operand,
    })
}

/// `"op"` and `"value"` of a condition.
fn test(map: &Map<String, Value>, path: &mut Path, shapes: &str) -> Result<TestExpr, FilterError> {
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
            return Err(path.error(format!("missing \"op\"; {shapes}")));
        }
    };
    let value = map.get("value");
    let operand = path.with(key("value"), |p| operand(op, value, p))?;
    Ok(TestExpr {
        op,
        op_loc,
        operand,
    })
}

/// What an event condition's `"agg"` names.
enum AggName {
    Agg(Agg),
    Time(Which),
}

/// `{"event": ..., "op": "did" | "did_not", ...}` or `{"event": ..., "agg": ..., ...}`.
fn event_condition(map: &Map<String, Value>, path: &mut Path) -> Result<Expr, FilterError> {
    if let Some(unknown) = map.keys().find(|k| !EVENT_KEYS.contains(&k.as_str())) {
        return Err(path.error(format!(
            "unknown key \"{}\" in an event condition; its keys are {}",
            unico_core::value::excerpt(unknown),
            EVENT_KEYS.join(", ")
        )));
    }
    let loc = path.loc();
    let (event, event_loc) = name_key(map, "event", "the event type", path)?
        .ok_or_else(|| path.error("missing \"event\""))?;
    let agg = match map.get("agg") {
        None => None,
        Some(Value::String(name)) => Some(
            Agg::from_name(name)
                .map(AggName::Agg)
                .or_else(|| Which::from_name(name).map(AggName::Time))
                .ok_or_else(|| {
                    path.with(key("agg"), |p| {
                        p.error(format!(
                            "unknown aggregate \"{}\"; agg is count, sum, avg, min, max, first or last",
                            unico_core::value::excerpt(name)
                        ))
                    })
                })?,
        ),
        Some(other) => {
            return Err(path.with(key("agg"), |p| {
                p.error(format!(
                    "expected the aggregate as a string (\"sum\"), got {}",
                    kind_of(other)
                ))
            }));
        }
    };
    let refuse = |path: &mut Path, k: &str, why: &str| -> Result<(), FilterError> {
        if map.contains_key(k) {
            return Err(path.with(key(k), |p| p.error(why.to_owned())));
        }
        Ok(())
    };
    const EVENT_TEST_SHAPE: &str = "an aggregate takes \"op\" and \"value\", as in {\"event\": \"purchase\", \"agg\": \"sum\", \"property\": \"amount\", \"op\": \"gt\", \"value\": 500}";
    let measure = match agg {
        None => {
            let negated = match map.get("op") {
                Some(Value::String(op)) if op.eq_ignore_ascii_case("did") => false,
                Some(Value::String(op)) if op.eq_ignore_ascii_case("did_not") => true,
                Some(Value::String(op)) => {
                    return Err(path.with(key("op"), |p| {
                        p.error(format!(
                            "unknown op \"{}\" of an event condition without \"agg\"; it is \"did\" or \"did_not\" (to compare an aggregate or a time, give \"agg\")",
                            unico_core::value::excerpt(op)
                        ))
                    }));
                }
                Some(other) => {
                    return Err(path.with(key("op"), |p| {
                        p.error(format!(
                            "expected the op as a string (\"did\" or \"did_not\"), got {}",
                            kind_of(other)
                        ))
                    }));
                }
                None => {
                    return Err(path.error(
                        "missing \"op\": an event condition takes \"op\": \"did\" or \"did_not\", or \"agg\" with \"op\" and \"value\"",
                    ));
                }
            };
            refuse(
                path,
                "property",
                "\"property\" goes with \"agg\" (sum, avg, min, max); did and did_not take none",
            )?;
            refuse(
                path,
                "value",
                "\"value\" goes with \"agg\"; did and did_not take none (to bound how often, give \"count\": {\"gte\": 3})",
            )?;
            let count = match map.get("count") {
                None => None,
                Some(v) => Some(path.with(key("count"), |p| count(v, p))?),
            };
            MeasureExpr::Occurred { negated, count }
        }
        Some(AggName::Agg(agg)) => {
            refuse(
                path,
                "count",
                "\"count\" bounds did and did_not; an aggregate compares with \"op\" and \"value\" ({\"agg\": \"count\", \"op\": \"gte\", \"value\": 3})",
            )?;
            let property = if agg == Agg::Count {
                refuse(
                    path,
                    "property",
                    "\"count\" counts events and takes no \"property\"; to add a property up, use \"agg\": \"sum\"",
                )?;
                None
            } else {
                let property = name_key(map, "property", "the property", path)?;
                Some(property.ok_or_else(|| {
                    path.error(format!(
                        "missing \"property\": \"{}\" needs the number property to aggregate (\"property\": \"amount\")",
                        agg.name()
                    ))
                })?)
            };
            MeasureExpr::Aggregate {
                agg,
                agg_loc: path.with(key("agg"), |p| p.loc()),
                property,
                test: test(map, path, EVENT_TEST_SHAPE)?,
            }
        }
        Some(AggName::Time(which)) => {
            for k in ["within_last", "between"] {
                refuse(
                    path,
                    k,
                    &format!(
                        "\"{}\" takes no window: its op compares the time itself ({{\"agg\": \"last\", \"op\": \"before\", \"value\": {{\"ago\": \"30d\"}}}})",
                        which.name()
                    ),
                )?;
            }
            refuse(
                path,
                "count",
                "\"count\" bounds did and did_not; first and last compare a time",
            )?;
            refuse(
                path,
                "property",
                "first and last compare the time of an event and take no \"property\"",
            )?;
            MeasureExpr::Time {
                which,
                test: test(map, path, EVENT_TEST_SHAPE)?,
            }
        }
    };
    let channel = name_key(map, "channel", "the channel", path)?;
    let window = match (map.get("within_last"), map.get("between")) {
        (Some(_), Some(_)) => {
            return Err(path.with(key("between"), |p| {
                p.error("\"within_last\" and \"between\" are two windows; give one")
            }));
        }
        (Some(v), None) => Some(path.with(key("within_last"), |p| {
            match v {
                Value::String(text) => parse_duration(text)
                    .map(|d| (EventWindow::Last(d), p.loc()))
                    .map_err(|message| p.error(message)),
                other => Err(p.error(format!(
                    "expected a duration string such as \"90d\", got {}",
                    kind_of(other)
                ))),
            }
        })?),
        (None, Some(v)) => Some(path.with(key("between"), |p| match v {
            Value::Array(items) if items.len() == 2 => {
                let lo = p.with(Seg::Index(0), |p| scalar(&items[0], p))?;
                let hi = p.with(Seg::Index(1), |p| scalar(&items[1], p))?;
                Ok((EventWindow::Between(Box::new(lo), Box::new(hi)), p.loc()))
            }
            Value::Array(items) => Err(p.error(format!(
                "\"between\" takes an array of two times [from, to], got {} values",
                items.len()
            ))),
            other => Err(p.error(format!(
                "\"between\" takes an array of two times [from, to], got {}",
                kind_of(other)
            ))),
        })?),
        (None, None) => None,
    };
    let wheres = match map.get("where") {
        None => Vec::new(),
        Some(v) => path.with(key("where"), |p| wheres(v, p))?,
    };
    Ok(Expr {
        kind: ExprKind::Event(EventExpr {
            event,
            event_loc,
            channel,
            window,
            wheres,
            measure,
        }),
        loc,
    })
}

/// A non-empty string under `k`, if present.
fn name_key(
    map: &Map<String, Value>,
    k: &str,
    what: &str,
    path: &mut Path,
) -> Result<Option<(String, Loc)>, FilterError> {
    path.with(key(k), |p| match map.get(k) {
        None => Ok(None),
        Some(Value::String(s)) if !s.is_empty() => Ok(Some((s.clone(), p.loc()))),
        Some(Value::String(_)) => Err(p.error(format!("empty string for {what}"))),
        Some(other) => Err(p.error(format!(
            "expected {what} as a string, got {}",
            kind_of(other)
        ))),
    })
}

/// `{"gte" | "lte" | "eq": N}`.
fn count(value: &Value, path: &mut Path) -> Result<(CountOp, u32, Loc), FilterError> {
    const SHAPE: &str = "a count is {\"gte\": N}, {\"lte\": N} or {\"eq\": N}";
    let Value::Object(map) = value else {
        return Err(path.error(format!(
            "expected an object, got {}; {SHAPE}",
            kind_of(value)
        )));
    };
    let mut entries = map.iter();
    let (Some((name, n)), None) = (entries.next(), entries.next()) else {
        return Err(path.error(format!("expected one bound, got {}; {SHAPE}", map.len())));
    };
    let Some(op) = CountOp::ALL.into_iter().find(|op| op.json() == name) else {
        return Err(path.error(format!(
            "unknown count bound \"{}\"; {SHAPE}",
            unico_core::value::excerpt(name)
        )));
    };
    path.with(key(name), |p| {
        let n = n
            .as_u64()
            .and_then(|n| u32::try_from(n).ok())
            .filter(|n| *n <= MAX_EVENT_COUNT)
            .ok_or_else(|| {
                p.error(format!(
                    "expected a whole number of times from 0 to {MAX_EVENT_COUNT}, got {}",
                    match n {
                        Value::Number(n) => format!("{n}"),
                        other => kind_of(other).to_owned(),
                    }
                ))
            })?;
        Ok((op, n, p.loc()))
    })
}

/// One property condition or a non-empty array of them.
fn wheres(value: &Value, path: &mut Path) -> Result<Vec<Condition>, FilterError> {
    match value {
        Value::Object(map) => Ok(vec![field_condition(map, path, PROPERTY_SHAPE)?]),
        Value::Array(items) if items.is_empty() => Err(path.error(
            "\"where\" holds an empty array; give one property condition or an array of them",
        )),
        Value::Array(items) => items
            .iter()
            .enumerate()
            .map(|(i, item)| {
                path.with(Seg::Index(i), |p| match item {
                    Value::Object(map) => field_condition(map, p, PROPERTY_SHAPE),
                    other => Err(p.error(format!(
                        "expected a property condition object, got {}; {PROPERTY_SHAPE}",
                        kind_of(other)
                    ))),
                })
            })
            .collect(),
        other => Err(path.error(format!(
            "expected a property condition or an array of them, got {}; {PROPERTY_SHAPE}",
            kind_of(other)
        ))),
    }
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
