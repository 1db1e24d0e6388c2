//! Type checking: an untyped [`Ast`] and a [`Schema`] make a [`Filter`], or an error that
//! says where and why. Fields and event types are resolved (with "did you mean"),
//! operators checked against the field's (or property's, or measure's) type, and values
//! parsed by `unico_core::value` exactly as the API parses them.

use unico_core::limits::MAX_FIELD_NAME_CHARS;
use unico_core::value::{from_json_number, parse_text};
use unico_core::{
    Channel, Computed, ComputedAgg, EventCode, EventType, FieldDef, FieldType, PropertyType,
    Schema, Value, ValueError,
};

use crate::ast::{
    Ast, Condition as AstCondition, EventExpr, EventWindow, Expr, ExprKind, Loc, MeasureExpr, Op,
    Operand, Scalar, ScalarKind, TestExpr, Unit,
};
use crate::error::{ErrorKind, FilterError, quote};
use crate::filter::{
    AGGREGATE_OPERATORS, Agg, Bound, Condition, EventCondition, Filter, Measure, Node, Predicate,
    PropertyCondition, TIME_OPERATORS, Target, Which, Window, operators_for,
};
use crate::limits::{MAX_ANNIVERSARY_DAYS, MAX_DEPTH, MAX_EVENT_COUNT, MAX_IN_VALUES};

/// The built-in attributes every customer has, filterable like fields.
pub const BUILT_INS: [&str; 3] = ["customerId", "created_at", "updated_at"];

/// The event condition a computed field's definition stands for, testing `predicate`:
/// `purchases_90d >= 3` is `count of purchase within_last 90d >= 3`, so every evaluator
/// (the reference, the engine) answers it as it answers that one. `not_exists` is the
/// complement of `exists` (an absent measure fails every test).
pub fn computed_node(computed: &Computed, predicate: Predicate) -> Node {
    let (negated, predicate) = match predicate {
        Predicate::NotExists => (true, Predicate::Exists),
        other => (false, other),
    };
    let agg = |agg| Measure::Aggregate {
        agg,
        property: computed.property.clone(),
        predicate: predicate.clone(),
    };
    let measure = match computed.agg {
        ComputedAgg::Count => agg(Agg::Count),
        ComputedAgg::Sum => agg(Agg::Sum),
        ComputedAgg::Avg => agg(Agg::Avg),
        ComputedAgg::Min => agg(Agg::Min),
        ComputedAgg::Max => agg(Agg::Max),
        ComputedAgg::First => Measure::Time {
            which: Which::First,
            predicate: predicate.clone(),
        },
        ComputedAgg::Last => Measure::Time {
            which: Which::Last,
            predicate: predicate.clone(),
        },
    };
    let node = Node::Event(EventCondition {
        event: computed.event.clone(),
        channel: None,
        window: computed.within_last.map_or(Window::Ever, Window::Last),
        wheres: Vec::new(),
        measure,
    });
    if negated {
        Node::Not(Box::new(node))
    } else {
        node
    }
}

/// Checks a computed field's definition against the application: its event type is
/// registered and the property it aggregates, if the type declares it, is a number.
/// The error is the reason, for the definition's `event` or `property`.
pub fn check_computed(schema: &Schema, computed: &Computed) -> Result<(), (&'static str, String)> {
    let types = schema.event_types();
    let Some(ty) = types.get(computed.event.as_str()) else {
        let known: Vec<&str> = types.all().iter().map(|t| t.code.as_str()).collect();
        return Err((
            "event",
            format!(
                "event type \"{}\" is not registered{}",
                computed.event,
                if known.is_empty() {
                    " (register it with POST …/event-types)".to_owned()
                } else {
                    format!("; registered: {}", known.join(", "))
                }
            ),
        ));
    };
    if let Some(p) = &computed.property
        && ty.property_type(p) == Some(PropertyType::String)
    {
        return Err((
            "property",
            format!(
                "{p} is declared as a string on {}; {} takes a number property",
                ty.code,
                computed.agg.as_str()
            ),
        ));
    }
    Ok(())
}

/// The filter "the computed field has a value": what the readers of computed values
/// resolve to find the events that count.
pub fn computed_filter(computed: &Computed) -> Filter {
    Filter::new(computed_node(computed, Predicate::Exists))
}

/// Checks `ast` against `schema`.
pub fn check(ast: &Ast, schema: &Schema) -> Result<Filter, FilterError> {
    let checker = Checker { ast, schema };
    checker.expr(&ast.root, 1).map(Filter::new)
}

struct Checker<'a> {
    ast: &'a Ast,
    schema: &'a Schema,
}

/// What a predicate tests, for its messages: a field or built-in attribute (whose errors
/// name the field), or a part of an event condition, named by a phrase
/// (`number property "amount" of "purchase"`, `the sum of "amount" over "purchase"`).
enum Subject<'a> {
    Target(&'a Target),
    Event { phrase: String, ty: FieldType },
}

impl Subject<'_> {
    fn ty(&self) -> FieldType {
        match self {
            Subject::Target(t) => t.field_type(),
            Subject::Event { ty, .. } => *ty,
        }
    }
}

/// Why a window is refused on `first` / `last`.
const WINDOW_ON_TIME: &str = "first and last take no window; the operator compares the time itself (last app_open before 30d ago)";

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
            ExprKind::Condition(c) => match self.schema.by_name(&c.field) {
                Some(def) if def.is_computed() => self.computed_condition(def, c),
                _ => self.condition(c).map(Node::Condition),
            },
            ExprKind::Event(e) => self.event(e).map(Node::Event),
            ExprKind::Subscribed {
                channel,
                channel_loc,
            } => self.subscribed(channel, channel_loc).map(Node::Subscribed),
        }
    }

    /// The channel of a subscription condition: one the application takes subscriptions
    /// for (channels are matched ignoring ASCII case, as everywhere).
    fn subscribed(&self, name: &str, loc: &Loc) -> Result<Channel, FilterError> {
        let accepted = self.schema.subscription_channels();
        if let Ok(channel) = Channel::parse(name)
            && accepted.contains(&channel)
        {
            return Ok(channel);
        }
        // A name far longer than any channel cannot be a typo of one.
        let suggestion = if name.chars().count() <= Channel::MAX_CHARS + 2 {
            let lower = name.to_lowercase();
            accepted
                .iter()
                .map(|c| (unico_core::field::edit_distance(&lower, c.as_str()), c))
                .filter(|(d, c)| *d <= 2.max(c.as_str().len() / 3))
                .min_by_key(|(d, _)| *d)
                .map(|(_, c)| c.as_str().to_owned())
        } else {
            None
        };
        Err(self.error(
            ErrorKind::UnknownSubscriptionChannel {
                name: name.to_owned(),
                suggestion,
                accepted: accepted.iter().map(|c| c.as_str().to_owned()).collect(),
            },
            loc,
        ))
    }

    /// Operators as the user spells them in the form they wrote.
    fn spell(&self, ops: &[Op]) -> String {
        let spell = if self.ast.is_text() {
            Op::text
        } else {
            Op::name
        };
        ops.iter()
            .map(|op| spell(*op))
            .collect::<Vec<_>>()
            .join(", ")
    }

    fn wrong_value(
        &self,
        subject: &Subject<'_>,
        expected: String,
        got: String,
        loc: &Loc,
    ) -> FilterError {
        let kind = match subject {
            Subject::Target(t) => ErrorKind::WrongValue {
                field: t.name().to_owned(),
                expected,
                got,
            },
            Subject::Event { phrase, .. } => ErrorKind::EventInvalidValue {
                subject: phrase.clone(),
                reason: format!("expected {expected}, got {got}"),
            },
        };
        self.error(kind, loc)
    }

    fn invalid_value(&self, subject: &Subject<'_>, reason: ValueError, loc: &Loc) -> FilterError {
        let kind = match subject {
            Subject::Target(t) => ErrorKind::InvalidValue {
                field: t.name().to_owned(),
                reason,
            },
            Subject::Event { phrase, .. } => ErrorKind::EventInvalidValue {
                subject: phrase.clone(),
                reason: reason.to_string(),
            },
        };
        self.error(kind, loc)
    }

    fn empty_string(&self, subject: &Subject<'_>, loc: &Loc) -> FilterError {
        let kind = match subject {
            Subject::Target(t) => ErrorKind::EmptyString {
                field: t.name().to_owned(),
            },
            Subject::Event { phrase, .. } => ErrorKind::EventInvalidValue {
                subject: phrase.clone(),
                reason: "an empty string means \"absent\" and never matches".to_owned(),
            },
        };
        self.error(kind, loc)
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
            return Err(self.error(
                ErrorKind::OperatorMismatch {
                    op: c.op,
                    field: target.name().to_owned(),
                    field_type: ty,
                    accepted: self.spell(fitting),
                },
                &c.op_loc,
            ));
        }
        let predicate = self.predicate(&Subject::Target(&target), c.op, &c.op_loc, &c.operand)?;
        Ok(Condition { target, predicate })
    }

    /// A condition on a computed field: checked as one on a field of its type (it reads
    /// back as written), evaluated as the event condition it stands for
    /// ([`computed_node`]).
    fn computed_condition(&self, def: &FieldDef, c: &AstCondition) -> Result<Node, FilterError> {
        let Some(computed) = &def.computed else {
            return self.condition(c).map(Node::Condition);
        };
        let target = Target::Computed {
            id: def.id,
            name: def.name.clone(),
            field_type: def.field_type,
            computed: computed.clone(),
        };
        let measured: &[Op] = match computed.agg.field_type() {
            FieldType::Datetime => &TIME_OPERATORS,
            _ => &AGGREGATE_OPERATORS,
        };
        let fitting: Vec<Op> = [Op::Exists, Op::NotExists]
            .into_iter()
            .chain(measured.iter().copied())
            .collect();
        if !fitting.contains(&c.op) {
            return Err(self.error(
                ErrorKind::OperatorMismatch {
                    op: c.op,
                    field: def.name.as_str().to_owned(),
                    field_type: def.field_type,
                    accepted: self.spell(&fitting),
                },
                &c.op_loc,
            ));
        }
        let predicate = self.predicate(&Subject::Target(&target), c.op, &c.op_loc, &c.operand)?;
        Ok(Node::Condition(Condition { target, predicate }))
    }

    /// The predicate of `op` and `operand` on `subject`, once `op` is known to fit its type.
    fn predicate(
        &self,
        subject: &Subject<'_>,
        op: Op,
        op_loc: &Loc,
        operand: &Operand,
    ) -> Result<Predicate, FilterError> {
        let ty = subject.ty();
        let shape_error = || {
            self.syntax(
                format!("the operator \"{op}\" does not take this kind of value"),
                op_loc,
            )
        };
        let scalar = || match operand {
            Operand::Scalar(s) => Ok(s),
            _ => Err(shape_error()),
        };
        let predicate = match op {
            Op::Exists | Op::NotExists => {
                if *operand != Operand::None {
                    return Err(shape_error());
                }
                if op == Op::Exists {
                    Predicate::Exists
                } else {
                    Predicate::NotExists
                }
            }
            Op::Eq => Predicate::Eq(self.value(subject, scalar()?)?),
            Op::Neq => Predicate::Neq(self.value(subject, scalar()?)?),
            Op::In | Op::NotIn => {
                let Operand::List(items) = operand else {
                    return Err(shape_error());
                };
                if items.is_empty() {
                    return Err(self.syntax(format!("\"{op}\" needs at least one value"), op_loc));
                }
                if items.len() > MAX_IN_VALUES {
                    return Err(self.error(ErrorKind::ListTooLong, op_loc));
                }
                let values = items
                    .iter()
                    .map(|s| self.value(subject, s))
                    .collect::<Result<Vec<_>, _>>()?;
                if op == Op::In {
                    Predicate::In(values)
                } else {
                    Predicate::NotIn(values)
                }
            }
            Op::Contains | Op::NotContains | Op::StartsWith | Op::EndsWith => {
                let needle = match self.value(subject, scalar()?)? {
                    Value::String(s) => s,
                    _ => return Err(shape_error()),
                };
                match op {
                    Op::Contains => Predicate::Contains(needle),
                    Op::NotContains => Predicate::NotContains(needle),
                    Op::StartsWith => Predicate::StartsWith(needle),
                    _ => Predicate::EndsWith(needle),
                }
            }
            Op::Lt | Op::Lte | Op::Gt | Op::Gte => {
                let n = match self.value(subject, scalar()?)? {
                    Value::Number(n) => n,
                    _ => return Err(shape_error()),
                };
                match op {
                    Op::Lt => Predicate::Lt(n),
                    Op::Lte => Predicate::Lte(n),
                    Op::Gt => Predicate::Gt(n),
                    _ => Predicate::Gte(n),
                }
            }
            Op::Between => {
                let Operand::Range(lo, hi) = operand else {
                    return Err(shape_error());
                };
                Predicate::Between(self.bound(subject, lo)?, self.bound(subject, hi)?)
            }
            Op::Before => Predicate::Before(self.bound(subject, scalar()?)?),
            Op::After => Predicate::After(self.bound(subject, scalar()?)?),
            Op::WithinLast | Op::NotWithinLast => {
                let Operand::Duration(d, loc) = operand else {
                    return Err(shape_error());
                };
                if ty == FieldType::Date && matches!(d.unit, Unit::Minute | Unit::Hour) {
                    return Err(self.wrong_value(
                        subject,
                        "a duration in days or weeks (30d, 2w)".to_owned(),
                        format!("{d} (a date has no time of day)"),
                        loc,
                    ));
                }
                if op == Op::WithinLast {
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
                                return Err(self.invalid_value(subject, reason, &s.loc));
                            }
                        }
                    }
                    other => {
                        let expected = if self.ast.is_text() {
                            "a calendar date in double quotes (\"2024-05-01\")"
                        } else {
                            "a calendar date string (\"2024-05-01\")"
                        };
                        return Err(self.wrong_value(
                            subject,
                            expected.to_owned(),
                            self.describe(other),
                            &s.loc,
                        ));
                    }
                }
            }
            Op::Anniversary => {
                let Operand::Anniversary(window) = operand else {
                    return Err(shape_error());
                };
                let within_days = match window {
                    None => 0,
                    Some((d, loc)) => {
                        let days = match d.unit {
                            Unit::Day => Some(d.amount),
                            Unit::Week => d.amount.checked_mul(7),
                            Unit::Minute | Unit::Hour => {
                                return Err(self.wrong_value(
                                    subject,
                                    "an anniversary window in days or weeks (7d, 2w)".to_owned(),
                                    format!("{d}"),
                                    loc,
                                ));
                            }
                        };
                        match days.filter(|n| *n <= MAX_ANNIVERSARY_DAYS) {
                            Some(n) => n,
                            None => {
                                return Err(self.wrong_value(
                                    subject,
                                    format!(
                                        "an anniversary window of at most {MAX_ANNIVERSARY_DAYS} days"
                                    ),
                                    format!("{d}"),
                                    loc,
                                ));
                            }
                        }
                    }
                };
                Predicate::Anniversary { within_days }
            }
        };
        Ok(predicate)
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

    fn wrong(&self, subject: &Subject<'_>, scalar: &Scalar) -> FilterError {
        self.wrong_value(
            subject,
            self.expected(subject.ty()),
            self.describe(&scalar.kind),
            &scalar.loc,
        )
    }

    /// An absolute value of the subject's type.
    fn value(&self, subject: &Subject<'_>, scalar: &Scalar) -> Result<Value, FilterError> {
        let ty = subject.ty();
        let invalid = |reason| self.invalid_value(subject, reason, &scalar.loc);
        match &scalar.kind {
            ScalarKind::String(text) => match parse_text(ty, text) {
                Ok(Some(value)) => Ok(value),
                Ok(None) => Err(self.empty_string(subject, &scalar.loc)),
                Err(reason) => Err(invalid(reason)),
            },
            ScalarKind::Number(text) if ty == FieldType::Number => match parse_text(ty, text) {
                Ok(Some(value)) => Ok(value),
                Ok(None) => Err(self.wrong(subject, scalar)),
                Err(reason) => Err(invalid(reason)),
            },
            ScalarKind::JsonNumber(n) if matches!(ty, FieldType::Number | FieldType::Datetime) => {
                from_json_number(ty, n.as_f64().unwrap_or(f64::NAN), n.as_i64()).map_err(invalid)
            }
            _ => Err(self.wrong(subject, scalar)),
        }
    }

    /// A bound for `before`/`after`/`between`: a value, or for time types a relative time.
    fn bound(&self, subject: &Subject<'_>, scalar: &Scalar) -> Result<Bound, FilterError> {
        match (&scalar.kind, subject.ty()) {
            (ScalarKind::Relative(r), FieldType::Datetime) => Ok(Bound::Relative(*r)),
            (ScalarKind::Relative(r), FieldType::Date) => {
                if matches!(r.duration.unit, Unit::Minute | Unit::Hour) {
                    return Err(self.wrong_value(
                        subject,
                        "a relative time in days or weeks (90d ago, 2w from now)".to_owned(),
                        format!(
                            "{} (a date has no time of day)",
                            self.describe(&scalar.kind)
                        ),
                        &scalar.loc,
                    ));
                }
                Ok(Bound::Relative(*r))
            }
            _ => self.value(subject, scalar).map(Bound::Value),
        }
    }

    // ---- event conditions ----

    fn event(&self, e: &EventExpr) -> Result<EventCondition, FilterError> {
        let types = self.schema.event_types();
        let Some(ty) = types.get(&e.event) else {
            // A name far longer than any code cannot be a typo of one.
            let suggestion = if e.event.chars().count() <= EventCode::MAX_CHARS + 2 {
                types.suggest(&e.event).map(str::to_owned)
            } else {
                None
            };
            return Err(self.error(
                ErrorKind::UnknownEventType {
                    name: e.event.clone(),
                    suggestion,
                },
                &e.event_loc,
            ));
        };
        let code = quote(ty.code.as_str());
        let channel = match &e.channel {
            None => None,
            Some((text, loc)) => Some(Channel::parse(text).map_err(|err| {
                self.error(
                    ErrorKind::EventInvalidValue {
                        subject: "the channel".to_owned(),
                        reason: err.0,
                    },
                    loc,
                )
            })?),
        };
        let window = match &e.window {
            None => Window::Ever,
            Some((_, loc)) if matches!(e.measure, MeasureExpr::Time { .. }) => {
                return Err(self.syntax(WINDOW_ON_TIME, loc));
            }
            Some((EventWindow::Ever, _)) => Window::Ever,
            Some((EventWindow::Last(d), _)) => Window::Last(*d),
            Some((EventWindow::Between(lo, hi), _)) => {
                let subject = Subject::Event {
                    phrase: format!("the window of {code}"),
                    ty: FieldType::Datetime,
                };
                Window::Between(self.bound(&subject, lo)?, self.bound(&subject, hi)?)
            }
        };
        let wheres = e
            .wheres
            .iter()
            .map(|w| self.property_condition(ty, w))
            .collect::<Result<Vec<_>, _>>()?;
        let measure = match &e.measure {
            MeasureExpr::Occurred { negated, count } => {
                let count = match count {
                    None => None,
                    Some((_, n, loc)) if *n > MAX_EVENT_COUNT => {
                        return Err(self.syntax(
                            format!("the count bound {n} is too large; a count bound is at most {MAX_EVENT_COUNT}"),
                            loc,
                        ));
                    }
                    Some((op, n, _)) => Some((*op, *n)),
                };
                Measure::Occurred {
                    negated: *negated,
                    count,
                }
            }
            MeasureExpr::Aggregate {
                agg,
                agg_loc,
                property,
                test,
            } => {
                let property = match (agg, property) {
                    (Agg::Count, None) => None,
                    (Agg::Count, Some((_, loc))) => {
                        return Err(self.syntax(
                            "count counts events and takes no property; to add a property up, use sum",
                            loc,
                        ));
                    }
                    (agg, None) => {
                        return Err(self.syntax(
                            format!("{} needs the number property to aggregate", agg.name()),
                            agg_loc,
                        ));
                    }
                    (agg, Some((p, loc))) => {
                        if ty.property_type(p) == Some(PropertyType::String) {
                            return Err(self.error(
                                ErrorKind::EventInvalidValue {
                                    subject: format!("the property of {}", agg.name()),
                                    reason: format!(
                                        "{} is declared as a string on {code}; sum, avg, min and max take a number property",
                                        quote(p)
                                    ),
                                },
                                loc,
                            ));
                        }
                        Some(p.clone())
                    }
                };
                let phrase = match (agg, &property) {
                    (_, None) => format!("the count of {code}"),
                    (Agg::Sum, Some(p)) => format!("the sum of {} over {code}", quote(p)),
                    (Agg::Avg, Some(p)) => format!("the average of {} over {code}", quote(p)),
                    (Agg::Min, Some(p)) => format!("the minimum of {} over {code}", quote(p)),
                    (_, Some(p)) => format!("the maximum of {} over {code}", quote(p)),
                };
                let predicate =
                    self.measure_test(phrase, FieldType::Number, &AGGREGATE_OPERATORS, test)?;
                Measure::Aggregate {
                    agg: *agg,
                    property,
                    predicate,
                }
            }
            MeasureExpr::Time { which, test } => {
                let phrase = format!("the {} time of {code}", which.name());
                let predicate =
                    self.measure_test(phrase, FieldType::Datetime, &TIME_OPERATORS, test)?;
                Measure::Time {
                    which: *which,
                    predicate,
                }
            }
        };
        Ok(EventCondition {
            event: ty.code.clone(),
            channel,
            window,
            wheres,
            measure,
        })
    }

    /// The test of an aggregate (a number) or a first/last time (a datetime).
    fn measure_test(
        &self,
        phrase: String,
        ty: FieldType,
        fitting: &[Op],
        test: &TestExpr,
    ) -> Result<Predicate, FilterError> {
        if !fitting.contains(&test.op) {
            return Err(self.error(
                ErrorKind::EventOperatorMismatch {
                    op: test.op,
                    subject: phrase,
                    accepted: self.spell(fitting),
                },
                &test.op_loc,
            ));
        }
        let subject = Subject::Event { phrase, ty };
        self.predicate(&subject, test.op, &test.op_loc, &test.operand)
    }

    /// A condition on one property of `ty`'s events. Its type is the declared one, else
    /// the one the filter implies: the operator (`gt` a number, `contains` a string), else
    /// the (first) value written. `exists`/`not_exists` imply none, so they need a
    /// declared type.
    fn property_condition(
        &self,
        ty: &EventType,
        c: &AstCondition,
    ) -> Result<PropertyCondition, FilterError> {
        let name = quote(&c.field);
        let code = quote(ty.code.as_str());
        let declared = ty.property_type(&c.field);
        let property_type = match declared {
            Some(t) => t,
            None => {
                let of_value = |s: &Scalar| match &s.kind {
                    ScalarKind::String(_) => Ok(PropertyType::String),
                    ScalarKind::Number(_) | ScalarKind::JsonNumber(_) => Ok(PropertyType::Number),
                    ScalarKind::Relative(_) => Err(self.error(
                        ErrorKind::EventInvalidValue {
                            subject: format!("property {name} of {code}"),
                            reason: format!(
                                "expected a string or a number, got {}",
                                self.describe(&s.kind)
                            ),
                        },
                        &s.loc,
                    )),
                };
                match (c.op, &c.operand) {
                    (Op::Exists | Op::NotExists, _) => {
                        return Err(self.error(
                            ErrorKind::UndeclaredProperty {
                                event: ty.code.as_str().to_owned(),
                                property: c.field.clone(),
                            },
                            &c.op_loc,
                        ));
                    }
                    (Op::Contains | Op::NotContains | Op::StartsWith | Op::EndsWith, _) => {
                        PropertyType::String
                    }
                    (Op::Lt | Op::Lte | Op::Gt | Op::Gte | Op::Between, _) => PropertyType::Number,
                    (Op::Eq | Op::Neq, Operand::Scalar(s)) => of_value(s)?,
                    (Op::In | Op::NotIn, Operand::List(items)) if !items.is_empty() => {
                        of_value(&items[0])?
                    }
                    (op, _) => {
                        return Err(self.error(
                            ErrorKind::EventOperatorMismatch {
                                op,
                                subject: format!("property {name} of {code}"),
                                accepted: format!(
                                    "{} (properties are strings or numbers)",
                                    self.spell(&PROPERTY_OPERATORS)
                                ),
                            },
                            &c.op_loc,
                        ));
                    }
                }
            }
        };
        let field_type = match property_type {
            PropertyType::Number => FieldType::Number,
            PropertyType::String => FieldType::String,
        };
        let phrase = match declared {
            Some(t) => format!("{} property {name} of {code}", t.as_str()),
            None => format!(
                "property {name} of {code} (not declared, so read as a {} from the filter)",
                property_type.as_str()
            ),
        };
        let fitting = operators_for(field_type);
        if !fitting.contains(&c.op) {
            return Err(self.error(
                ErrorKind::EventOperatorMismatch {
                    op: c.op,
                    subject: phrase,
                    accepted: self.spell(fitting),
                },
                &c.op_loc,
            ));
        }
        let subject = Subject::Event {
            phrase,
            ty: field_type,
        };
        let predicate = self.predicate(&subject, c.op, &c.op_loc, &c.operand)?;
        Ok(PropertyCondition {
            property: c.field.clone(),
            property_type,
            predicate,
        })
    }
}

/// Every operator a property takes, of either type.
const PROPERTY_OPERATORS: [Op; 15] = [
    Op::Exists,
    Op::NotExists,
    Op::Eq,
    Op::Neq,
    Op::In,
    Op::NotIn,
    Op::Contains,
    Op::NotContains,
    Op::StartsWith,
    Op::EndsWith,
    Op::Lt,
    Op::Lte,
    Op::Gt,
    Op::Gte,
    Op::Between,
];

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
