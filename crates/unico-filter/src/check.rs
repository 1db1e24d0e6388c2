//! Type checking: an untyped [`Ast`] and a [`Schema`] make a [`Filter`], or an error that
//! says where and why. Fields are resolved (with "did you mean"), operators checked
//! against the field's type, and values parsed by `unico_core::value` exactly as the API
//! parses them.

use unico_core::limits::MAX_FIELD_NAME_CHARS;
use unico_core::value::{from_json_number, parse_text};
use unico_core::{FieldType, Schema, Value};

use crate::ast::{
    Ast, Condition as AstCondition, Expr, ExprKind, Loc, Op, Operand, Scalar, ScalarKind, Unit,
};
use crate::error::{ErrorKind, FilterError};
use crate::filter::{Bound, Condition, Filter, Node, Predicate, Target, operators_for};
use crate::limits::{MAX_ANNIVERSARY_DAYS, MAX_DEPTH, MAX_IN_VALUES};

/// The built-in attributes every customer has, filterable like fields.
pub const BUILT_INS: [&str; 3] = ["customerId", "created_at", "updated_at"];

/// Checks `ast` against `schema`.
pub fn check(ast: &Ast, schema: &Schema) -> Result<Filter, FilterError> {
    let checker = Checker { ast, schema };
    checker.expr(&ast.root, 1).map(Filter::new)
}

struct Checker<'a> {
    ast: &'a Ast,
    schema: &'a Schema,
}

impl Checker<'_> {
    fn error(&self, kind: ErrorKind, loc: &Loc) -> FilterError {
        FilterError::new(kind, self.ast.locate(loc))
    }

    fn syntax(&self, message: impl Into<String>, loc: &Loc) -> FilterError {
        FilterError::syntax(message, self.ast.locate(loc))
    }

    fn expr(&self, expr: &Expr, level: usize) -> Result<Node, FilterError> {
        // The parsers already bound the depth; this guards trees built by hand.
        if level > MAX_DEPTH {
            return Err(self.error(ErrorKind::TooDeep, &expr.loc));
        }
        match &expr.kind {
            ExprKind::And(children) | ExprKind::Or(children) => {
                let mut nodes = children
                    .iter()
                    .map(|c| self.expr(c, level + 1))
                    .collect::<Result<Vec<_>, _>>()?;
                match nodes.len() {
                    0 => Err(self.syntax(
                        "an empty group; \"and\" and \"or\" need at least one filter",
                        &expr.loc,
                    )),
                    1 => Ok(nodes.remove(0)),
                    _ if matches!(expr.kind, ExprKind::And(_)) => Ok(Node::And(nodes)),
                    _ => Ok(Node::Or(nodes)),
                }
            }
            ExprKind::Not(inner) => Ok(Node::Not(Box::new(self.expr(inner, level + 1)?))),
            ExprKind::Condition(c) => self.condition(c).map(Node::Condition),
        }
    }

    fn target(&self, name: &str, loc: &Loc) -> Result<Target, FilterError> {
        match name {
            "customerId" => return Ok(Target::CustomerId),
            "created_at" => return Ok(Target::CreatedAt),
            "updated_at" => return Ok(Target::UpdatedAt),
            _ => {}
        }
        if let Some(def) = self.schema.by_name(name) {
            return Ok(Target::Field {
                id: def.id,
                name: def.name.clone(),
                field_type: def.field_type,
            });
        }
        // A name far longer than any field name cannot be a typo of one; skipping it also
        // keeps the edit distance cheap on hostile input.
        let suggestion = if name.eq_ignore_ascii_case("id") {
            // The internal id is not filterable; the brand's key is.
            Some("customerId")
        } else if name.chars().count() <= MAX_FIELD_NAME_CHARS + 2 {
            self.schema.suggest(name).or_else(|| suggest_built_in(name))
        } else {
            None
        }
        .map(str::to_owned);
        Err(self.error(
            ErrorKind::UnknownField {
                name: name.to_owned(),
                suggestion,
            },
            loc,
        ))
    }

    fn condition(&self, c: &AstCondition) -> Result<Condition, FilterError> {
        let target = self.target(&c.field, &c.field_loc)?;
        let ty = target.field_type();
        let fitting = operators_for(ty);
        if !fitting.contains(&c.op) {
            let spell = if self.ast.is_text() {
                Op::text
            } else {
                Op::name
            };
            let accepted = fitting
                .iter()
                .map(|op| spell(*op))
                .collect::<Vec<_>>()
                .join(", ");
            return Err(self.error(
                ErrorKind::OperatorMismatch {
                    op: c.op,
                    field: target.name().to_owned(),
                    field_type: ty,
                    accepted,
                },
                &c.op_loc,
            ));
        }
        let shape_error = || {
            self.syntax(
                format!("the operator \"{}\" does not take this kind of value", c.op),
                &c.op_loc,
            )
        };
        let scalar = || match &c.operand {
            Operand::Scalar(s) => Ok(s),
            _ => Err(shape_error()),
        };
        let predicate = match c.op {
            Op::Exists | Op::NotExists => {
                if c.operand != Operand::None {
                    return Err(shape_error());
                }
                if c.op == Op::Exists {
                    Predicate::Exists
                } else {
                    Predicate::NotExists
                }
            }
            Op::Eq => Predicate::Eq(self.value(&target, scalar()?)?),
            Op::Neq => Predicate::Neq(self.value(&target, scalar()?)?),
            Op::In | Op::NotIn => {
                let Operand::List(items) = &c.operand else {
                    return Err(shape_error());
                };
                if items.is_empty() {
                    return Err(
                        self.syntax(format!("\"{}\" needs at least one value", c.op), &c.op_loc)
                    );
                }
                if items.len() > MAX_IN_VALUES {
                    return Err(self.error(ErrorKind::ListTooLong, &c.op_loc));
                }
                let values = items
                    .iter()
                    .map(|s| self.value(&target, s))
                    .collect::<Result<Vec<_>, _>>()?;
                if c.op == Op::In {
                    Predicate::In(values)
                } else {
                    Predicate::NotIn(values)
                }
            }
            Op::Contains | Op::NotContains | Op::StartsWith | Op::EndsWith => {
                let needle = match self.value(&target, scalar()?)? {
                    Value::String(s) => s,
                    _ => return Err(shape_error()),
                };
                match c.op {
                    Op::Contains => Predicate::Contains(needle),
                    Op::NotContains => Predicate::NotContains(needle),
                    Op::StartsWith => Predicate::StartsWith(needle),
                    _ => Predicate::EndsWith(needle),
                }
            }
            Op::Lt | Op::Lte | Op::Gt | Op::Gte => {
                let n = match self.value(&target, scalar()?)? {
                    Value::Number(n) => n,
                    _ => return Err(shape_error()),
                };
                match c.op {
                    Op::Lt => Predicate::Lt(n),
                    Op::Lte => Predicate::Lte(n),
                    Op::Gt => Predicate::Gt(n),
                    _ => Predicate::Gte(n),
                }
            }
            Op::Between => {
                let Operand::Range(lo, hi) = &c.operand else {
                    return Err(shape_error());
                };
                Predicate::Between(self.bound(&target, lo)?, self.bound(&target, hi)?)
            }
            Op::Before => Predicate::Before(self.bound(&target, scalar()?)?),
            Op::After => Predicate::After(self.bound(&target, scalar()?)?),
            Op::WithinLast | Op::NotWithinLast => {
                let Operand::Duration(d, loc) = &c.operand else {
                    return Err(shape_error());
                };
                if ty == FieldType::Date && matches!(d.unit, Unit::Minute | Unit::Hour) {
                    return Err(self.error(
                        ErrorKind::WrongValue {
                            field: target.name().to_owned(),
                            expected: "a duration in days or weeks (30d, 2w)".to_owned(),
                            got: format!("{d} (a date has no time of day)"),
                        },
                        loc,
                    ));
                }
                if c.op == Op::WithinLast {
                    Predicate::WithinLast(*d)
                } else {
                    Predicate::NotWithinLast(*d)
                }
            }
            Op::On => {
                let s = scalar()?;
                match &s.kind {
                    ScalarKind::String(text) if !text.is_empty() => {
                        match parse_text(FieldType::Date, text) {
                            Ok(Some(Value::Date(day))) => Predicate::On(day),
                            Ok(_) => return Err(shape_error()),
                            Err(reason) => {
                                return Err(self.error(
                                    ErrorKind::InvalidValue {
                                        field: target.name().to_owned(),
                                        reason,
                                    },
                                    &s.loc,
                                ));
                            }
                        }
                    }
                    other => {
                        return Err(self.error(
                            ErrorKind::WrongValue {
                                field: target.name().to_owned(),
                                expected: if self.ast.is_text() {
                                    "a calendar date in double quotes (\"2024-05-01\")".to_owned()
                                } else {
                                    "a calendar date string (\"2024-05-01\")".to_owned()
                                },
                                got: self.describe(other),
                            },
                            &s.loc,
                        ));
                    }
                }
            }
            Op::Anniversary => {
                let Operand::Anniversary(window) = &c.operand else {
                    return Err(shape_error());
                };
                let within_days = match window {
                    None => 0,
                    Some((d, loc)) => {
                        let days = match d.unit {
                            Unit::Day => Some(d.amount),
                            Unit::Week => d.amount.checked_mul(7),
                            Unit::Minute | Unit::Hour => {
                                return Err(self.error(
                                    ErrorKind::WrongValue {
                                        field: target.name().to_owned(),
                                        expected: "an anniversary window in days or weeks (7d, 2w)"
                                            .to_owned(),
                                        got: format!("{d}"),
                                    },
                                    loc,
                                ));
                            }
                        };
                        match days.filter(|n| *n <= MAX_ANNIVERSARY_DAYS) {
                            Some(n) => n,
                            None => {
                                return Err(self.error(
                                    ErrorKind::WrongValue {
                                        field: target.name().to_owned(),
                                        expected: format!(
                                            "an anniversary window of at most {MAX_ANNIVERSARY_DAYS} days"
                                        ),
                                        got: format!("{d}"),
                                    },
                                    loc,
                                ));
                            }
                        }
                    }
                };
                Predicate::Anniversary { within_days }
            }
        };
        Ok(Condition { target, predicate })
    }

    fn describe(&self, kind: &ScalarKind) -> String {
        match kind {
            ScalarKind::String(s) if s.is_empty() => "an empty string".to_owned(),
            ScalarKind::String(s) => format!("the string \"{}\"", unico_core::value::excerpt(s)),
            ScalarKind::Number(n) => format!("the number {}", unico_core::value::excerpt(n)),
            ScalarKind::JsonNumber(n) => format!("the number {n}"),
            ScalarKind::Relative(r) => format!("the relative time {r}"),
        }
    }

    /// What a value of `ty` looks like, in the form the user wrote.
    fn expected(&self, ty: FieldType) -> String {
        let text = self.ast.is_text();
        match ty {
            FieldType::String if text => "a string in double quotes".to_owned(),
            FieldType::String => "a string".to_owned(),
            FieldType::Number => "a number".to_owned(),
            FieldType::Datetime if text => {
                "a date-time in double quotes (\"2024-03-05T14:22:10Z\" or \"2024-03-05\") or a relative time (90d ago)".to_owned()
            }
            FieldType::Datetime => {
                "a date-time string (\"2024-03-05T14:22:10Z\" or \"2024-03-05\"), epoch milliseconds or a relative time ({\"ago\": \"90d\"})".to_owned()
            }
            FieldType::Date if text => {
                "a date in double quotes (\"1987-06-21\") or a relative time in days (90d ago)".to_owned()
            }
            FieldType::Date => {
                "a date string (\"1987-06-21\") or a relative time in days ({\"ago\": \"90d\"})".to_owned()
            }
        }
    }

    fn wrong(&self, target: &Target, scalar: &Scalar) -> FilterError {
        self.error(
            ErrorKind::WrongValue {
                field: target.name().to_owned(),
                expected: self.expected(target.field_type()),
                got: self.describe(&scalar.kind),
            },
            &scalar.loc,
        )
    }

    /// An absolute value of the target's type.
    fn value(&self, target: &Target, scalar: &Scalar) -> Result<Value, FilterError> {
        let ty = target.field_type();
        let invalid = |reason| {
            self.error(
                ErrorKind::InvalidValue {
                    field: target.name().to_owned(),
                    reason,
                },
                &scalar.loc,
            )
        };
        match &scalar.kind {
            ScalarKind::String(text) => match parse_text(ty, text) {
                Ok(Some(value)) => Ok(value),
                Ok(None) => Err(self.error(
                    ErrorKind::EmptyString {
                        field: target.name().to_owned(),
                    },
                    &scalar.loc,
                )),
                Err(reason) => Err(invalid(reason)),
            },
            ScalarKind::Number(text) if ty == FieldType::Number => match parse_text(ty, text) {
                Ok(Some(value)) => Ok(value),
                Ok(None) => Err(self.wrong(target, scalar)),
                Err(reason) => Err(invalid(reason)),
            },
            ScalarKind::JsonNumber(n) if matches!(ty, FieldType::Number | FieldType::Datetime) => {
                from_json_number(ty, n.as_f64().unwrap_or(f64::NAN), n.as_i64()).map_err(invalid)
            }
            _ => Err(self.wrong(target, scalar)),
        }
    }

    /// A bound for `before`/`after`/`between`: a value, or for time types a relative time.
    fn bound(&self, target: &Target, scalar: &Scalar) -> Result<Bound, FilterError> {
        match (&scalar.kind, target.field_type()) {
            (ScalarKind::Relative(r), FieldType::Datetime) => Ok(Bound::Relative(*r)),
            (ScalarKind::Relative(r), FieldType::Date) => {
                if matches!(r.duration.unit, Unit::Minute | Unit::Hour) {
                    return Err(self.error(
                        ErrorKind::WrongValue {
                            field: target.name().to_owned(),
                            expected: "a relative time in days or weeks (90d ago, 2w from now)"
                                .to_owned(),
                            got: format!(
                                "{} (a date has no time of day)",
                                self.describe(&scalar.kind)
                            ),
                        },
                        &scalar.loc,
                    ));
                }
                Ok(Bound::Relative(*r))
            }
            _ => self.value(target, scalar).map(Bound::Value),
        }
    }
}

/// A built-in attribute close to `name` (case or a typo or two), to suggest.
fn suggest_built_in(name: &str) -> Option<&'static str> {
    let lower = name.to_lowercase();
    BUILT_INS
        .into_iter()
        .map(|b| {
            (
                unico_core::field::edit_distance(&lower, &b.to_lowercase()),
                b,
            )
        })
        .filter(|(d, _)| *d <= 2)
        .min_by_key(|(d, _)| *d)
        .map(|(_, b)| b)
}
