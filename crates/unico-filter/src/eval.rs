//! The reference evaluator: one customer at a time, straight from SPEC §2, written to be
//! obviously correct rather than fast. Faster engines are tested against it.
//!
//! Semantics are two-valued: a condition on a value the customer lacks is false (except
//! `not_exists`), so `neq`, `not_in`, `not_contains` and `not_within_last` need a value,
//! and `not X` is the exact complement of `X`.
//!
//! Event conditions (SPEC §7) look at the customer's events: first which of them count
//! (type, channel, window, property conditions), then what is measured over those.

use unico_core::{Channel, Computed, ComputedAgg, Customer, Event, PropRef, PropertyType, Value};

use crate::aggregate::{average, from_micros, to_micros};
use crate::calendar::{
    EvalContext, anniversary_matches, bound_day, bound_ms, duration_days, duration_ms, local_day,
    within_last_days,
};
use crate::check::computed_node;
use crate::filter::{
    Agg, Condition, CountOp, EventCondition, Filter, Measure, Node, Predicate, PropertyCondition,
    Target, Which, Window,
};

/// What the reference evaluator knows of one customer beyond their fields: their events
/// (all of them, in any order) and the channels they are subscribed to now (a channel
/// absent from the list is not subscribed, whether the customer unsubscribed or never
/// said anything).
#[derive(Debug, Clone, Copy, Default)]
pub struct Facts<'a> {
    pub events: &'a [Event],
    pub subscribed: &'a [Channel],
}

impl<'a> Facts<'a> {
    /// Events only (subscribed to nothing).
    pub fn events(events: &'a [Event]) -> Self {
        Self {
            events,
            subscribed: &[],
        }
    }

    /// Whether the customer is subscribed to `channel`.
    pub fn is_subscribed(&self, channel: &Channel) -> bool {
        self.subscribed.contains(channel)
    }
}

/// Whether `customer` is in `filter`'s audience at `ctx.now_ms`, for a customer with no
/// events and no subscription (every event condition sees none, every subscription
/// condition is false).
pub fn matches(filter: &Filter, customer: &Customer, ctx: &EvalContext) -> bool {
    matches_with(filter, customer, &Facts::default(), ctx)
}

/// Whether `customer`, holding `events` (all of theirs, in any order) and subscribed to
/// nothing, is in `filter`'s audience at `ctx.now_ms`.
pub fn matches_with_events(
    filter: &Filter,
    customer: &Customer,
    events: &[Event],
    ctx: &EvalContext,
) -> bool {
    matches_with(filter, customer, &Facts::events(events), ctx)
}

/// Whether `customer`, with these `facts` (events and subscriptions), is in `filter`'s
/// audience at `ctx.now_ms`.
pub fn matches_with(
    filter: &Filter,
    customer: &Customer,
    facts: &Facts<'_>,
    ctx: &EvalContext,
) -> bool {
    node(filter.root(), customer, facts, ctx)
}

fn node(node: &Node, customer: &Customer, facts: &Facts<'_>, ctx: &EvalContext) -> bool {
    match node {
        Node::And(children) => children.iter().all(|c| self::node(c, customer, facts, ctx)),
        Node::Or(children) => children.iter().any(|c| self::node(c, customer, facts, ctx)),
        Node::Not(inner) => !self::node(inner, customer, facts, ctx),
        Node::Condition(Condition {
            target: Target::Computed { computed, .. },
            predicate,
        }) => self::node(
            &computed_node(computed, predicate.clone()),
            customer,
            facts,
            ctx,
        ),
        Node::Condition(c) => condition(c, customer, ctx),
        Node::Event(e) => event_condition(e, facts.events, ctx),
        Node::Subscribed(channel) => facts.is_subscribed(channel),
    }
}

fn event_condition(e: &EventCondition, events: &[Event], ctx: &EvalContext) -> bool {
    let counted: Vec<&Event> = events.iter().filter(|ev| counts(e, ev, ctx)).collect();
    match &e.measure {
        Measure::Occurred { negated, count } => {
            let n = counted.len() as u64;
            let holds = match count {
                None => n >= 1,
                Some((CountOp::AtLeast, k)) => n >= u64::from(*k),
                Some((CountOp::AtMost, k)) => n <= u64::from(*k),
                Some((CountOp::Exactly, k)) => n == u64::from(*k),
            };
            holds != *negated
        }
        Measure::Aggregate {
            agg,
            property,
            predicate,
        } => {
            // The numbers the property holds on the counted events (others hold none).
            let numbers: Vec<f64> = match property {
                None => Vec::new(),
                Some(p) => counted
                    .iter()
                    .filter_map(|ev| match ev.property(p) {
                        Some(PropRef::Num(n)) => Some(n),
                        _ => None,
                    })
                    .collect(),
            };
            let sum_micros: i128 = numbers.iter().map(|n| to_micros(*n)).sum();
            let value = match agg {
                Agg::Count => Some(counted.len() as f64),
                Agg::Sum => Some(from_micros(sum_micros)),
                Agg::Avg => average(sum_micros, numbers.len() as u64),
                Agg::Min => numbers.iter().copied().reduce(f64::min),
                Agg::Max => numbers.iter().copied().reduce(f64::max),
            };
            // An absent aggregate fails every test, as a missing field value does.
            value.is_some_and(|v| test(predicate, Val::Num(v), ctx))
        }
        Measure::Time { which, predicate } => {
            let times = counted.iter().map(|ev| ev.timestamp);
            let time = match which {
                Which::First => times.min(),
                Which::Last => times.max(),
            };
            time.is_some_and(|ms| test(predicate, Val::Datetime(ms), ctx))
        }
    }
}

/// The value of a computed field for a customer with these events (every event of the
/// customer, or at least every one of the field's type): the reference every other
/// reader of computed values agrees with. `None` when the aggregate is absent (an `avg`,
/// `min`, `max`, `first` or `last` over no event).
pub fn computed_value(computed: &Computed, events: &[Event], ctx: &EvalContext) -> Option<Value> {
    let Node::Event(e) = computed_node(computed, Predicate::Exists) else {
        return None;
    };
    let counted: Vec<&Event> = events.iter().filter(|ev| counts(&e, ev, ctx)).collect();
    let numbers = || -> Vec<f64> {
        let Some(p) = computed.property.as_deref() else {
            return Vec::new();
        };
        counted
            .iter()
            .filter_map(|ev| match ev.property(p) {
                Some(PropRef::Num(n)) => Some(n),
                _ => None,
            })
            .collect()
    };
    let times = || counted.iter().map(|ev| ev.timestamp);
    match computed.agg {
        ComputedAgg::Count => Some(Value::Number(counted.len() as f64)),
        ComputedAgg::Sum => Some(Value::Number(from_micros(
            numbers().iter().map(|n| to_micros(*n)).sum(),
        ))),
        ComputedAgg::Avg => {
            let n = numbers();
            average(n.iter().map(|x| to_micros(*x)).sum(), n.len() as u64).map(Value::Number)
        }
        ComputedAgg::Min => numbers().into_iter().reduce(f64::min).map(Value::Number),
        ComputedAgg::Max => numbers().into_iter().reduce(f64::max).map(Value::Number),
        ComputedAgg::First => times().min().map(Value::Datetime),
        ComputedAgg::Last => times().max().map(Value::Datetime),
    }
}

/// Whether `ev` counts for `e`: its type, channel, time and properties.
fn counts(e: &EventCondition, ev: &Event, ctx: &EvalContext) -> bool {
    let in_window = match &e.window {
        Window::Ever => true,
        Window::Last(d) => within_last(*d, Val::Datetime(ev.timestamp), ctx),
        Window::Between(lo, hi) => match (bound_ms(lo, ctx), bound_ms(hi, ctx)) {
            (Some(lo), Some(hi)) => lo <= ev.timestamp && ev.timestamp <= hi,
            _ => false,
        },
    };
    ev.event_type == e.event
        && e.channel.as_ref().is_none_or(|c| *c == ev.channel)
        && in_window
        && e.wheres.iter().all(|w| property_holds(w, ev, ctx))
}

/// A property condition on one event, as a field condition on a customer: a property
/// holding another type than the condition's counts as absent.
fn property_holds(w: &PropertyCondition, ev: &Event, ctx: &EvalContext) -> bool {
    let value = match (ev.property(&w.property), w.property_type) {
        (Some(PropRef::Num(n)), PropertyType::Number) => Some(Val::Num(n)),
        (Some(PropRef::Str(s)), PropertyType::String) => Some(Val::Str(s)),
        _ => None,
    };
    match (&w.predicate, value) {
        (Predicate::Exists, v) => v.is_some(),
        (Predicate::NotExists, v) => v.is_none(),
        (_, None) => false,
        (p, Some(v)) => test(p, v, ctx),
    }
}

/// A customer's value of one target, borrowed.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Val<'a> {
    Str(&'a str),
    Num(f64),
    Datetime(i64),
    Date(i32),
}

/// The value a condition looks at, if the customer has one of the target's type. A value
/// of another type (a schema out of step with the data) counts as absent.
pub(crate) fn target_value<'c>(target: &Target, customer: &'c Customer) -> Option<Val<'c>> {
    let value = match target {
        Target::CustomerId => return Some(Val::Str(customer.customer_id.as_str())),
        Target::CreatedAt => return Some(Val::Datetime(customer.created_at)),
        Target::UpdatedAt => return Some(Val::Datetime(customer.updated_at)),
        Target::Field { id, .. } => customer.get(*id)?,
        // Never stored: evaluated over the customer's events.
        Target::Computed { .. } => return None,
    };
    if value.field_type() != target.field_type() {
        return None;
    }
    Some(match value {
        Value::String(s) => Val::Str(s),
        Value::Number(n) => Val::Num(*n),
        Value::Datetime(ms) => Val::Datetime(*ms),
        Value::Date(d) => Val::Date(*d),
    })
}

fn condition(c: &Condition, customer: &Customer, ctx: &EvalContext) -> bool {
    let value = target_value(&c.target, customer);
    match (&c.predicate, value) {
        (Predicate::Exists, v) => v.is_some(),
        (Predicate::NotExists, v) => v.is_none(),
        (_, None) => false,
        (p, Some(v)) => test(p, v, ctx),
    }
}

fn equals(v: Val<'_>, x: &Value) -> bool {
    match (v, x) {
        (Val::Str(a), Value::String(b)) => a == b,
        (Val::Num(a), Value::Number(b)) => a == *b,
        _ => false,
    }
}

fn lower(s: &str) -> String {
    s.to_lowercase()
}

/// A present value against a predicate.
fn test(p: &Predicate, v: Val<'_>, ctx: &EvalContext) -> bool {
    match (p, v) {
        (Predicate::Exists, _) => true,
        (Predicate::NotExists, _) => false,
        (Predicate::Eq(x), v) => equals(v, x),
        (Predicate::Neq(x), v) => !equals(v, x),
        (Predicate::In(xs), v) => xs.iter().any(|x| equals(v, x)),
        (Predicate::NotIn(xs), v) => !xs.iter().any(|x| equals(v, x)),
        (Predicate::Contains(n), Val::Str(s)) => lower(s).contains(&lower(n)),
        (Predicate::NotContains(n), Val::Str(s)) => !lower(s).contains(&lower(n)),
        (Predicate::StartsWith(n), Val::Str(s)) => lower(s).starts_with(&lower(n)),
        (Predicate::EndsWith(n), Val::Str(s)) => lower(s).ends_with(&lower(n)),
        (Predicate::Lt(x), Val::Num(n)) => n < *x,
        (Predicate::Lte(x), Val::Num(n)) => n <= *x,
        (Predicate::Gt(x), Val::Num(n)) => n > *x,
        (Predicate::Gte(x), Val::Num(n)) => n >= *x,
        (Predicate::Between(lo, hi), Val::Num(n)) => match (lo, hi) {
            (
                crate::filter::Bound::Value(Value::Number(lo)),
                crate::filter::Bound::Value(Value::Number(hi)),
            ) => *lo <= n && n <= *hi,
            _ => false,
        },
        (Predicate::Between(lo, hi), Val::Datetime(ms)) => {
            match (bound_ms(lo, ctx), bound_ms(hi, ctx)) {
                (Some(lo), Some(hi)) => lo <= ms && ms <= hi,
                _ => false,
            }
        }
        (Predicate::Between(lo, hi), Val::Date(d)) => {
            match (bound_day(lo, ctx), bound_day(hi, ctx)) {
                (Some(lo), Some(hi)) => lo <= d && d <= hi,
                _ => false,
            }
        }
        (Predicate::Before(b), Val::Datetime(ms)) => bound_ms(b, ctx).is_some_and(|b| ms < b),
        (Predicate::Before(b), Val::Date(d)) => bound_day(b, ctx).is_some_and(|b| d < b),
        (Predicate::After(b), Val::Datetime(ms)) => bound_ms(b, ctx).is_some_and(|b| ms > b),
        (Predicate::After(b), Val::Date(d)) => bound_day(b, ctx).is_some_and(|b| d > b),
        (Predicate::WithinLast(d), v) => within_last(*d, v, ctx),
        (Predicate::NotWithinLast(d), v @ (Val::Datetime(_) | Val::Date(_))) => {
            !within_last(*d, v, ctx)
        }
        (Predicate::On(day), Val::Datetime(ms)) => local_day(ms, &ctx.tz) == *day,
        (Predicate::On(day), Val::Date(d)) => d == *day,
        (Predicate::Anniversary { within_days }, Val::Datetime(ms)) => {
            anniversary_matches(local_day(ms, &ctx.tz), ctx.today(), *within_days)
        }
        (Predicate::Anniversary { within_days }, Val::Date(d)) => {
            anniversary_matches(d, ctx.today(), *within_days)
        }
        _ => false,
    }
}

/// now − d ≤ value ≤ now (future values excluded).
fn within_last(d: crate::ast::Duration, v: Val<'_>, ctx: &EvalContext) -> bool {
    match v {
        Val::Datetime(ms) => ctx.now_ms.saturating_sub(duration_ms(d)) <= ms && ms <= ctx.now_ms,
        Val::Date(day) => {
            debug_assert!(
                duration_days(d).is_some(),
                "checked filters use d or w on dates"
            );
            let (from, to) = within_last_days(d, ctx);
            from <= day && day <= to
        }
        _ => false,
    }
}
