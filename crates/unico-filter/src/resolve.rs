//! The resolved form: a checked filter with every relative time turned into absolute
//! bounds for one [`EvalContext`], and every time test lowered to "the value lies in these
//! ranges". It is what a columnar engine evaluates (ranges map to sorted-column scans),
//! and it is built from the same [`crate::calendar`] arithmetic as the reference
//! evaluator, which the tests check it agrees with.

use jiff::tz::TimeZone;
use unico_core::{Channel, Customer, Event, EventCode, FieldType, PropRef, PropertyType, Value};

use crate::aggregate::{average, from_micros, to_micros};
use crate::calendar::{
    EvalContext, anniversary_month_days, bound_day, bound_ms, local_day, local_day_ranges,
    month_day, within_last_days, within_last_ms,
};
use crate::check::computed_node;
use crate::eval::{Facts, Val, target_value};
use crate::filter::{
    Agg, Bound, Condition, CountOp, EventCondition, Filter, Measure, Node, Predicate, Target,
    Which, Window,
};

/// A filter resolved for one instant and time zone.
#[derive(Debug, Clone)]
pub struct ResolvedFilter {
    root: Resolved,
    tz: TimeZone,
}

/// A node of the resolved tree.
#[derive(Debug, Clone, PartialEq)]
pub enum Resolved {
    And(Vec<Resolved>),
    Or(Vec<Resolved>),
    Not(Box<Resolved>),
    Test(Test),
    /// A condition on the customer's events.
    Event(EventTest),
    /// The customer is subscribed to this channel now.
    Subscribed(Channel),
}

/// An event condition with its window and times made absolute.
#[derive(Debug, Clone, PartialEq)]
pub struct EventTest {
    pub event: EventCode,
    pub channel: Option<Channel>,
    /// Inclusive range of event times that count; `(i64::MIN, i64::MAX)` for ever; empty
    /// (no event counts) when `lo > hi`.
    pub window: (i64, i64),
    /// Property tests every counted event passes. A property holding another type than
    /// the test's counts as absent. Only `Exists`, `NotExists`, `StrIn`, `StrText`,
    /// `NumIn` and `NumRange` occur.
    pub wheres: Vec<PropertyTest>,
    pub measure: EventMeasure,
}

impl EventTest {
    /// Whether `event` counts for this test (type, channel, window, properties).
    pub fn counts(&self, event: &Event) -> bool {
        event.event_type == self.event
            && self.channel.as_ref().is_none_or(|c| *c == event.channel)
            && self.window.0 <= event.timestamp
            && event.timestamp <= self.window.1
            && self
                .wheres
                .iter()
                .all(|w| w.matches(event.property(&w.property)))
    }
}

/// A test on one property of an event.
#[derive(Debug, Clone, PartialEq)]
pub struct PropertyTest {
    pub property: String,
    pub property_type: PropertyType,
    pub kind: TestKind,
}

impl PropertyTest {
    /// Whether a property value passes (`None`: absent).
    pub fn matches(&self, value: Option<PropRef<'_>>) -> bool {
        let value = match (value, self.property_type) {
            (Some(PropRef::Num(n)), PropertyType::Number) => Some(Val::Num(n)),
            (Some(PropRef::Str(s)), PropertyType::String) => Some(Val::Str(s)),
            _ => None,
        };
        match value {
            None => self.kind == TestKind::NotExists,
            Some(v) => test_value(&self.kind, v, None),
        }
    }
}

/// What is measured over the events that count, and the test it must pass.
#[derive(Debug, Clone, PartialEq)]
pub enum EventMeasure {
    /// The number of events that count lies in `lo ..= hi`; `negated` (`did_not`) takes
    /// the exact complement.
    Count { lo: u64, hi: u64, negated: bool },
    /// An aggregate passes `test` (`NumIn` or `NumRange`). `Count` and `Sum` of no events
    /// are 0; `Avg`, `Min`, `Max` of no events holding a number for `property` are absent,
    /// which fails every test. Sums follow [`crate::aggregate`].
    Agg {
        agg: Agg,
        property: Option<String>,
        test: TestKind,
    },
    /// The time of the first or last event that counts passes `test` (`MsRanges`); false
    /// when none counts.
    Time { which: Which, test: TestKind },
}

/// One attribute against one test.
#[derive(Debug, Clone, PartialEq)]
pub struct Test {
    pub target: Target,
    pub kind: TestKind,
}

/// The case-insensitive text tests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TextOp {
    Contains,
    StartsWith,
    EndsWith,
}

/// What a present value must satisfy. Every test is false on a missing value except
/// `NotExists`. `negated: true` means "has a value, and the value is not in the set".
#[derive(Debug, Clone, PartialEq)]
pub enum TestKind {
    Exists,
    NotExists,
    /// `eq`, `neq`, `in`, `not_in` on strings; values sorted and deduplicated (byte order).
    StrIn {
        values: Vec<String>,
        negated: bool,
    },
    /// `contains` … `ends_with`; the needle is already lowercased, the value must be
    /// lowercased (`str::to_lowercase`) before testing.
    StrText {
        op: TextOp,
        needle_lower: String,
        negated: bool,
    },
    /// `eq`, `neq`, `in`, `not_in` on numbers; sorted by `total_cmp`, deduplicated, with
    /// −0 written as 0 (compare a value with −0 normalised the same way).
    NumIn {
        values: Vec<f64>,
        negated: bool,
    },
    /// `lt` … `gte` and `between` on numbers; open ends are infinite.
    NumRange {
        lo: f64,
        lo_inclusive: bool,
        hi: f64,
        hi_inclusive: bool,
    },
    /// Datetime tests: the instant lies in one of these sorted, disjoint, inclusive ranges
    /// of epoch milliseconds.
    MsRanges {
        ranges: Vec<(i64, i64)>,
        negated: bool,
    },
    /// Date tests: the date lies in one of these inclusive ranges of days.
    DayRanges {
        ranges: Vec<(i32, i32)>,
        negated: bool,
    },
    /// `anniversary`: the (month, day) of the value's calendar date, for a datetime read in
    /// the context's time zone ([`crate::calendar::local_day`]), is one of these (sorted).
    MonthDays(Vec<(u32, u32)>),
}

/// Resolves `filter` for `ctx`.
pub fn resolve(filter: &Filter, ctx: &EvalContext) -> ResolvedFilter {
    ResolvedFilter {
        root: node(filter.root(), ctx),
        tz: ctx.tz.clone(),
    }
}

fn node(n: &Node, ctx: &EvalContext) -> Resolved {
    match n {
        Node::And(children) => Resolved::And(children.iter().map(|c| node(c, ctx)).collect()),
        Node::Or(children) => Resolved::Or(children.iter().map(|c| node(c, ctx)).collect()),
        Node::Not(inner) => Resolved::Not(Box::new(node(inner, ctx))),
        Node::Condition(Condition {
            target: Target::Computed { computed, .. },
            predicate,
        }) => node(&computed_node(computed, predicate.clone()), ctx),
        Node::Condition(c) => Resolved::Test(Test {
            target: c.target.clone(),
            kind: lower(c.target.field_type(), &c.predicate, ctx),
        }),
        Node::Event(e) => Resolved::Event(event_test(e, ctx)),
        Node::Subscribed(channel) => Resolved::Subscribed(channel.clone()),
    }
}

fn event_test(e: &EventCondition, ctx: &EvalContext) -> EventTest {
    let window = match &e.window {
        Window::Ever => (i64::MIN, i64::MAX),
        Window::Last(d) => within_last_ms(*d, ctx),
        Window::Between(lo, hi) => match (bound_ms(lo, ctx), bound_ms(hi, ctx)) {
            (Some(lo), Some(hi)) => (lo, hi),
            _ => (1, 0),
        },
    };
    let wheres = e
        .wheres
        .iter()
        .map(|w| PropertyTest {
            property: w.property.clone(),
            property_type: w.property_type,
            kind: lower(
                match w.property_type {
                    PropertyType::Number => FieldType::Number,
                    PropertyType::String => FieldType::String,
                },
                &w.predicate,
                ctx,
            ),
        })
        .collect();
    let measure = match &e.measure {
        Measure::Occurred { negated, count } => {
            let (lo, hi) = match count {
                None => (1, u64::MAX),
                Some((CountOp::AtLeast, n)) => (u64::from(*n), u64::MAX),
                Some((CountOp::AtMost, n)) => (0, u64::from(*n)),
                Some((CountOp::Exactly, n)) => (u64::from(*n), u64::from(*n)),
            };
            EventMeasure::Count {
                lo,
                hi,
                negated: *negated,
            }
        }
        Measure::Aggregate {
            agg,
            property,
            predicate,
        } => EventMeasure::Agg {
            agg: *agg,
            property: property.clone(),
            test: lower(FieldType::Number, predicate, ctx),
        },
        Measure::Time { which, predicate } => EventMeasure::Time {
            which: *which,
            test: lower(FieldType::Datetime, predicate, ctx),
        },
    };
    EventTest {
        event: e.event.clone(),
        channel: e.channel.clone(),
        window,
        wheres,
        measure,
    }
}

fn normalise_zero(n: f64) -> f64 {
    // −0 + 0 = +0; every other number is unchanged.
    n + 0.0
}

fn strings(values: &[Value]) -> Vec<String> {
    let mut out: Vec<String> = values
        .iter()
        .filter_map(|v| match v {
            Value::String(s) => Some(s.clone()),
            _ => None,
        })
        .collect();
    out.sort_unstable();
    out.dedup();
    out
}

fn numbers(values: &[Value]) -> Vec<f64> {
    let mut out: Vec<f64> = values
        .iter()
        .filter_map(|v| match v {
            Value::Number(n) => Some(normalise_zero(*n)),
            _ => None,
        })
        .collect();
    out.sort_unstable_by(f64::total_cmp);
    out.dedup();
    out
}

fn set(values: &[Value], ty: FieldType, negated: bool) -> TestKind {
    if ty == FieldType::Number {
        TestKind::NumIn {
            values: numbers(values),
            negated,
        }
    } else {
        TestKind::StrIn {
            values: strings(values),
            negated,
        }
    }
}

fn num_range(lo: f64, lo_inclusive: bool, hi: f64, hi_inclusive: bool) -> TestKind {
    TestKind::NumRange {
        lo,
        lo_inclusive,
        hi,
        hi_inclusive,
    }
}

/// The inclusive range of a strict `before`/`after` or an inclusive `between`.
fn ms_range(p: &Predicate, ctx: &EvalContext) -> Vec<(i64, i64)> {
    let (lo, hi) = match p {
        Predicate::Before(b) => match bound_ms(b, ctx).and_then(|b| b.checked_sub(1)) {
            Some(hi) => (i64::MIN, hi),
            None => return Vec::new(),
        },
        Predicate::After(b) => match bound_ms(b, ctx).and_then(|b| b.checked_add(1)) {
            Some(lo) => (lo, i64::MAX),
            None => return Vec::new(),
        },
        Predicate::Between(lo, hi) => match (bound_ms(lo, ctx), bound_ms(hi, ctx)) {
            (Some(lo), Some(hi)) => (lo, hi),
            _ => return Vec::new(),
        },
        _ => return Vec::new(),
    };
    if lo <= hi { vec![(lo, hi)] } else { Vec::new() }
}

fn day_range(p: &Predicate, ctx: &EvalContext) -> Vec<(i32, i32)> {
    let (lo, hi) = match p {
        Predicate::Before(b) => match bound_day(b, ctx).and_then(|b| b.checked_sub(1)) {
            Some(hi) => (i32::MIN, hi),
            None => return Vec::new(),
        },
        Predicate::After(b) => match bound_day(b, ctx).and_then(|b| b.checked_add(1)) {
            Some(lo) => (lo, i32::MAX),
            None => return Vec::new(),
        },
        Predicate::Between(lo, hi) => match (bound_day(lo, ctx), bound_day(hi, ctx)) {
            (Some(lo), Some(hi)) => (lo, hi),
            _ => return Vec::new(),
        },
        _ => return Vec::new(),
    };
    if lo <= hi { vec![(lo, hi)] } else { Vec::new() }
}

fn lower(ty: FieldType, p: &Predicate, ctx: &EvalContext) -> TestKind {
    let text = |op, needle: &str, negated| TestKind::StrText {
        op,
        needle_lower: needle.to_lowercase(),
        negated,
    };
    match p {
        Predicate::Exists => TestKind::Exists,
        Predicate::NotExists => TestKind::NotExists,
        Predicate::Eq(v) => set(std::slice::from_ref(v), ty, false),
        Predicate::Neq(v) => set(std::slice::from_ref(v), ty, true),
        Predicate::In(vs) => set(vs, ty, false),
        Predicate::NotIn(vs) => set(vs, ty, true),
        Predicate::Contains(n) => text(TextOp::Contains, n, false),
        Predicate::NotContains(n) => text(TextOp::Contains, n, true),
        Predicate::StartsWith(n) => text(TextOp::StartsWith, n, false),
        Predicate::EndsWith(n) => text(TextOp::EndsWith, n, false),
        Predicate::Lt(x) => num_range(f64::NEG_INFINITY, false, *x, false),
        Predicate::Lte(x) => num_range(f64::NEG_INFINITY, false, *x, true),
        Predicate::Gt(x) => num_range(*x, false, f64::INFINITY, false),
        Predicate::Gte(x) => num_range(*x, true, f64::INFINITY, false),
        Predicate::Between(Bound::Value(Value::Number(lo)), Bound::Value(Value::Number(hi))) => {
            num_range(*lo, true, *hi, true)
        }
        Predicate::Between(..) | Predicate::Before(_) | Predicate::After(_) => match ty {
            FieldType::Date => TestKind::DayRanges {
                ranges: day_range(p, ctx),
                negated: false,
            },
            _ => TestKind::MsRanges {
                ranges: ms_range(p, ctx),
                negated: false,
            },
        },
        Predicate::WithinLast(d) | Predicate::NotWithinLast(d) => {
            let negated = matches!(p, Predicate::NotWithinLast(_));
            if ty == FieldType::Date {
                let (lo, hi) = within_last_days(*d, ctx);
                TestKind::DayRanges {
                    ranges: if lo <= hi { vec![(lo, hi)] } else { Vec::new() },
                    negated,
                }
            } else {
                let (lo, hi) = within_last_ms(*d, ctx);
                TestKind::MsRanges {
                    ranges: if lo <= hi { vec![(lo, hi)] } else { Vec::new() },
                    negated,
                }
            }
        }
        Predicate::On(day) => match ty {
            FieldType::Date => TestKind::DayRanges {
                ranges: vec![(*day, *day)],
                negated: false,
            },
            _ => TestKind::MsRanges {
                ranges: local_day_ranges(*day, &ctx.tz),
                negated: false,
            },
        },
        Predicate::Anniversary { within_days } => {
            TestKind::MonthDays(anniversary_month_days(ctx.today(), *within_days))
        }
    }
}

impl ResolvedFilter {
    pub fn root(&self) -> &Resolved {
        &self.root
    }

    /// The time zone that calendar dates of datetimes are read in (for `MonthDays`).
    pub fn tz(&self) -> &TimeZone {
        &self.tz
    }

    /// Evaluates the resolved filter on one customer (no events, no subscription); agrees
    /// with [`crate::eval::matches`] for the context it was resolved with.
    pub fn matches(&self, customer: &Customer) -> bool {
        self.matches_with(customer, &Facts::default())
    }

    /// [`ResolvedFilter::matches`] for a customer holding `events` (in any order; events of
    /// other customers must not be passed).
    pub fn matches_with_events(&self, customer: &Customer, events: &[Event]) -> bool {
        self.matches_with(customer, &Facts::events(events))
    }

    /// [`ResolvedFilter::matches`] for a customer with these facts (their events and the
    /// channels they are subscribed to); agrees with [`crate::eval::matches_with`].
    pub fn matches_with(&self, customer: &Customer, facts: &Facts<'_>) -> bool {
        self.node(&self.root, customer, facts)
    }

    fn node(&self, n: &Resolved, customer: &Customer, facts: &Facts<'_>) -> bool {
        match n {
            Resolved::And(children) => children.iter().all(|c| self.node(c, customer, facts)),
            Resolved::Or(children) => children.iter().any(|c| self.node(c, customer, facts)),
            Resolved::Not(inner) => !self.node(inner, customer, facts),
            Resolved::Test(t) => self.test(t, customer),
            Resolved::Event(t) => event_matches(t, facts.events),
            Resolved::Subscribed(channel) => facts.is_subscribed(channel),
        }
    }

    fn test(&self, t: &Test, customer: &Customer) -> bool {
        let value = target_value(&t.target, customer);
        let Some(v) = value else {
            return t.kind == TestKind::NotExists;
        };
        test_value(&t.kind, v, Some(&self.tz))
    }
}

/// Whether the events of one customer pass `t`.
fn event_matches(t: &EventTest, events: &[Event]) -> bool {
    let counted = events.iter().filter(|e| t.counts(e));
    match &t.measure {
        EventMeasure::Count { lo, hi, negated } => {
            let n = counted.count() as u64;
            (*lo <= n && n <= *hi) != *negated
        }
        EventMeasure::Agg {
            agg,
            property,
            test,
        } => {
            let numbers = || {
                counted
                    .clone()
                    .filter_map(|e| match e.property(property.as_deref()?) {
                        Some(PropRef::Num(n)) => Some(n),
                        _ => None,
                    })
            };
            let value = match agg {
                Agg::Count => Some(counted.clone().count() as f64),
                Agg::Sum => Some(from_micros(numbers().map(to_micros).sum())),
                Agg::Avg => {
                    let (sum, n) =
                        numbers().fold((0i128, 0u64), |(s, n), v| (s + to_micros(v), n + 1));
                    average(sum, n)
                }
                Agg::Min => numbers().min_by(f64::total_cmp),
                Agg::Max => numbers().max_by(f64::total_cmp),
            };
            value.is_some_and(|v| test_value(test, Val::Num(v), None))
        }
        EventMeasure::Time { which, test } => {
            let times = counted.map(|e| e.timestamp);
            let time = match which {
                Which::First => times.min(),
                Which::Last => times.max(),
            };
            time.is_some_and(|ms| test_value(test, Val::Datetime(ms), None))
        }
    }
}

/// Whether a present value passes a test; `tz` reads the calendar date of a datetime for
/// `MonthDays` (without one, `MonthDays` fails on datetimes).
fn test_value(kind: &TestKind, v: Val<'_>, tz: Option<&TimeZone>) -> bool {
    {
        let in_set = |found: bool, negated: bool| found != negated;
        match (kind, v) {
            (TestKind::Exists, _) => true,
            (TestKind::NotExists, _) => false,
            (TestKind::StrIn { values, negated }, Val::Str(s)) => in_set(
                values.binary_search_by(|x| x.as_str().cmp(s)).is_ok(),
                *negated,
            ),
            (
                TestKind::StrText {
                    op,
                    needle_lower,
                    negated,
                },
                Val::Str(s),
            ) => {
                let s = s.to_lowercase();
                let found = match op {
                    TextOp::Contains => s.contains(needle_lower.as_str()),
                    TextOp::StartsWith => s.starts_with(needle_lower.as_str()),
                    TextOp::EndsWith => s.ends_with(needle_lower.as_str()),
                };
                in_set(found, *negated)
            }
            (TestKind::NumIn { values, negated }, Val::Num(n)) => {
                let n = normalise_zero(n);
                in_set(
                    values.binary_search_by(|x| x.total_cmp(&n)).is_ok(),
                    *negated,
                )
            }
            (
                TestKind::NumRange {
                    lo,
                    lo_inclusive,
                    hi,
                    hi_inclusive,
                },
                Val::Num(n),
            ) => {
                let above = if *lo_inclusive { n >= *lo } else { n > *lo };
                let below = if *hi_inclusive { n <= *hi } else { n < *hi };
                above && below
            }
            (TestKind::MsRanges { ranges, negated }, Val::Datetime(ms)) => {
                in_set(ranges.iter().any(|&(a, b)| a <= ms && ms <= b), *negated)
            }
            (TestKind::DayRanges { ranges, negated }, Val::Date(d)) => {
                in_set(ranges.iter().any(|&(a, b)| a <= d && d <= b), *negated)
            }
            (TestKind::MonthDays(days), Val::Datetime(ms)) => {
                tz.is_some_and(|tz| days.binary_search(&month_day(local_day(ms, tz))).is_ok())
            }
            (TestKind::MonthDays(days), Val::Date(d)) => days.binary_search(&month_day(d)).is_ok(),
            _ => false,
        }
    }
}
