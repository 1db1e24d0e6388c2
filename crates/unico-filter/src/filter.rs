//! The checked filter: fields resolved to ids and types, values parsed to the field's
//! type, each operator known to fit. It prints back to the canonical text form
//! ([`Filter::to_text`], also `Display`) and the canonical JSON form ([`Filter::to_json`]);
//! both parse back to an equal `Filter`.

use std::fmt::{self, Write as _};

use serde_json::{Value as Json, json};
use unico_core::time::{format_date, format_datetime};
use unico_core::{
    Channel, Computed, EventCode, FieldId, FieldName, FieldType, PropertyType, Schema, Value,
};

use crate::ast::{Direction, Duration, Op, Relative};
use crate::error::FilterError;

/// A filter checked against a schema. The only way to make one is [`crate::check()`] (or
/// [`Filter::parse`]), so one that exists is well typed and at most
/// [`crate::limits::MAX_DEPTH`] levels deep.
#[derive(Debug, Clone, PartialEq)]
pub struct Filter {
    root: Node,
}

/// What a filter was written as.
#[derive(Debug, Clone, Copy)]
pub enum FilterInput<'a> {
    /// The text form (`age > 30 and country = "ES"`).
    Text(&'a str),
    /// The JSON form. A JSON *string* here holds the text form, so a body such as
    /// `{"filter": "age > 30"}` and `{"filter": {"field": "age", ...}}` both work.
    Json(&'a Json),
}

impl Filter {
    pub(crate) fn new(root: Node) -> Self {
        Self { root }
    }

    /// Parses either form and checks it against `schema`.
    pub fn parse(input: FilterInput<'_>, schema: &Schema) -> Result<Filter, FilterError> {
        let ast = match input {
            FilterInput::Text(text) => crate::text::parse_text(text)?,
            FilterInput::Json(Json::String(text)) => crate::text::parse_text(text)?,
            FilterInput::Json(value) => crate::json::parse_json(value)?,
        };
        crate::check::check(&ast, schema)
    }

    pub fn root(&self) -> &Node {
        &self.root
    }

    /// The canonical text form.
    pub fn to_text(&self) -> String {
        self.to_string()
    }

    /// The canonical JSON form. Field names are kept in the filter, so no schema is needed.
    pub fn to_json(&self) -> Json {
        node_json(&self.root)
    }
}

/// One node of a checked filter. `And`/`Or` hold at least two children (a one-child
/// group is replaced by its child when checking).
#[derive(Debug, Clone, PartialEq)]
pub enum Node {
    And(Vec<Node>),
    Or(Vec<Node>),
    Not(Box<Node>),
    Condition(Condition),
    /// A condition on the customer's events.
    Event(EventCondition),
    /// `subscribed email`: the customer's current subscription to the channel (one the
    /// application takes subscriptions for) is "subscribed". A customer who never said
    /// anything for the channel is not subscribed.
    Subscribed(Channel),
}

/// A condition on the customer's events (SPEC §7): which events count (type, channel,
/// window, property conditions), then what is measured over them.
#[derive(Debug, Clone, PartialEq)]
pub struct EventCondition {
    /// A type registered in the application (checked when the filter is checked).
    pub event: EventCode,
    /// Only events on this channel count.
    pub channel: Option<Channel>,
    /// Only events whose time lies in the window count.
    pub window: Window,
    /// Only events for which every one of these holds count.
    pub wheres: Vec<PropertyCondition>,
    pub measure: Measure,
}

/// The time window of an event condition.
#[derive(Debug, Clone, PartialEq)]
pub enum Window {
    /// Every stored event.
    Ever,
    /// `within_last 90d`: now − d ≤ time ≤ now (future events excluded, as for fields).
    Last(Duration),
    /// `between a and b`, inclusive; each bound a datetime or a relative time.
    Between(Bound, Bound),
}

/// A test on one top-level property of an event. The property's type is the type its
/// event type declares, else the type of the value written in the filter; an event whose
/// property holds another type, or nothing, fails every test but `not_exists`.
#[derive(Debug, Clone, PartialEq)]
pub struct PropertyCondition {
    pub property: String,
    pub property_type: PropertyType,
    /// A string or number predicate (the operators of a string or number field).
    pub predicate: Predicate,
}

/// How a count is bounded in `did … at_least 3 times`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CountOp {
    AtLeast,
    AtMost,
    Exactly,
}

impl CountOp {
    /// The text form's keyword (`at_least`).
    pub fn text(self) -> &'static str {
        match self {
            CountOp::AtLeast => "at_least",
            CountOp::AtMost => "at_most",
            CountOp::Exactly => "exactly",
        }
    }

    /// The JSON form's key in `"count": {"gte": 3}`.
    pub fn json(self) -> &'static str {
        match self {
            CountOp::AtLeast => "gte",
            CountOp::AtMost => "lte",
            CountOp::Exactly => "eq",
        }
    }

    pub const ALL: [CountOp; 3] = [CountOp::AtLeast, CountOp::AtMost, CountOp::Exactly];
}

/// A numeric aggregate over the events that count.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Agg {
    /// How many events count (0 when none).
    Count,
    /// The sum of a number property (0 when none holds one). Each value is taken to the
    /// millionth and summed exactly, so the answer does not depend on the events' order.
    Sum,
    /// Sum / number of events holding a number; absent (every test false) when none.
    Avg,
    Min,
    Max,
}

impl Agg {
    pub const ALL: [Agg; 5] = [Agg::Count, Agg::Sum, Agg::Avg, Agg::Min, Agg::Max];

    /// The keyword, the same in both forms (`sum`).
    pub fn name(self) -> &'static str {
        match self {
            Agg::Count => "count",
            Agg::Sum => "sum",
            Agg::Avg => "avg",
            Agg::Min => "min",
            Agg::Max => "max",
        }
    }

    /// Looks up an aggregate by its keyword, ignoring ASCII case.
    pub fn from_name(name: &str) -> Option<Agg> {
        Agg::ALL
            .into_iter()
            .find(|a| a.name().eq_ignore_ascii_case(name))
    }
}

/// `first` or `last` occurrence.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Which {
    First,
    Last,
}

impl Which {
    /// The keyword, the same in both forms.
    pub fn name(self) -> &'static str {
        match self {
            Which::First => "first",
            Which::Last => "last",
        }
    }

    /// Looks up `first` or `last`, ignoring ASCII case.
    pub fn from_name(name: &str) -> Option<Which> {
        [Which::First, Which::Last]
            .into_iter()
            .find(|w| w.name().eq_ignore_ascii_case(name))
    }
}

/// The operators a number aggregate (`sum amount of purchase > 500`) takes.
pub const AGGREGATE_OPERATORS: [Op; 9] = [
    Op::Eq,
    Op::Neq,
    Op::Lt,
    Op::Lte,
    Op::Gt,
    Op::Gte,
    Op::Between,
    Op::In,
    Op::NotIn,
];

/// The operators the first or last time of an event (`last app_open before 30d ago`) takes.
pub const TIME_OPERATORS: [Op; 6] = [
    Op::Before,
    Op::After,
    Op::Between,
    Op::WithinLast,
    Op::NotWithinLast,
    Op::On,
];

/// What an event condition measures over the events that count.
#[derive(Debug, Clone, PartialEq)]
pub enum Measure {
    /// `did` / `did_not`: at least one event counts (or the count is bounded);
    /// `negated` is `did_not`, the exact complement.
    Occurred {
        negated: bool,
        count: Option<(CountOp, u32)>,
    },
    /// `sum amount of purchase … > 500`: a number predicate on an aggregate.
    /// `property` is `None` exactly for [`Agg::Count`].
    Aggregate {
        agg: Agg,
        property: Option<String>,
        predicate: Predicate,
    },
    /// `last app_open before 30d ago`: a datetime predicate on the first or last time an
    /// event counts; false when none does. The filter language gives it no window (a
    /// computed field's `within_last` does).
    Time { which: Which, predicate: Predicate },
}

/// A condition on one attribute of a customer.
#[derive(Debug, Clone, PartialEq)]
pub struct Condition {
    pub target: Target,
    pub predicate: Predicate,
}

/// What a condition looks at: a field of the schema or a built-in attribute.
#[derive(Debug, Clone, PartialEq)]
pub enum Target {
    Field {
        id: FieldId,
        name: FieldName,
        field_type: FieldType,
    },
    /// A computed field: the aggregate of the customer's events its definition names
    /// (evaluated as [`crate::check::computed_node`]).
    Computed {
        id: FieldId,
        name: FieldName,
        field_type: FieldType,
        computed: Computed,
    },
    /// The brand's key (string operators).
    CustomerId,
    /// Creation time (datetime operators).
    CreatedAt,
    /// Last change (datetime operators).
    UpdatedAt,
}

impl Target {
    pub fn field_type(&self) -> FieldType {
        match self {
            Target::Field { field_type, .. } | Target::Computed { field_type, .. } => *field_type,
            Target::CustomerId => FieldType::String,
            Target::CreatedAt | Target::UpdatedAt => FieldType::Datetime,
        }
    }

    pub fn name(&self) -> &str {
        match self {
            Target::Field { name, .. } | Target::Computed { name, .. } => name.as_str(),
            Target::CustomerId => "customerId",
            Target::CreatedAt => "created_at",
            Target::UpdatedAt => "updated_at",
        }
    }
}

/// A point in time for `before`, `after` and `between`: absolute (a `Value::Datetime`
/// for datetime targets, a `Value::Date` for date targets) or relative to now. Number
/// `between` uses `Value::Number`.
#[derive(Debug, Clone, PartialEq)]
pub enum Bound {
    Value(Value),
    Relative(Relative),
}

/// The test a condition applies. Which variants occur for which field type is fixed by
/// [`crate::check()`]: see [`operators_for`].
#[derive(Debug, Clone, PartialEq)]
pub enum Predicate {
    Exists,
    NotExists,
    /// String or number equality (strings exact, case-sensitive).
    Eq(Value),
    Neq(Value),
    In(Vec<Value>),
    NotIn(Vec<Value>),
    /// Case-insensitive (Unicode lowercase) text tests; the needle is kept as written.
    Contains(String),
    NotContains(String),
    StartsWith(String),
    EndsWith(String),
    Lt(f64),
    Lte(f64),
    Gt(f64),
    Gte(f64),
    /// Inclusive at both ends.
    Between(Bound, Bound),
    /// Strict.
    Before(Bound),
    /// Strict.
    After(Bound),
    WithinLast(Duration),
    NotWithinLast(Duration),
    /// A calendar date, days since 1970-01-01.
    On(i32),
    /// Month and day equal today's, or fall within today … today + `within_days`.
    Anniversary {
        within_days: u32,
    },
}

impl Predicate {
    pub fn op(&self) -> Op {
        match self {
            Predicate::Exists => Op::Exists,
            Predicate::NotExists => Op::NotExists,
            Predicate::Eq(_) => Op::Eq,
            Predicate::Neq(_) => Op::Neq,
            Predicate::In(_) => Op::In,
            Predicate::NotIn(_) => Op::NotIn,
            Predicate::Contains(_) => Op::Contains,
            Predicate::NotContains(_) => Op::NotContains,
            Predicate::StartsWith(_) => Op::StartsWith,
            Predicate::EndsWith(_) => Op::EndsWith,
            Predicate::Lt(_) => Op::Lt,
            Predicate::Lte(_) => Op::Lte,
            Predicate::Gt(_) => Op::Gt,
            Predicate::Gte(_) => Op::Gte,
            Predicate::Between(..) => Op::Between,
            Predicate::Before(_) => Op::Before,
            Predicate::After(_) => Op::After,
            Predicate::WithinLast(_) => Op::WithinLast,
            Predicate::NotWithinLast(_) => Op::NotWithinLast,
            Predicate::On(_) => Op::On,
            Predicate::Anniversary { .. } => Op::Anniversary,
        }
    }
}

/// The operators that apply to a field type (SPEC §2).
pub fn operators_for(field_type: FieldType) -> &'static [Op] {
    match field_type {
        FieldType::String => &[
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
        ],
        FieldType::Number => &[
            Op::Exists,
            Op::NotExists,
            Op::Eq,
            Op::Neq,
            Op::Lt,
            Op::Lte,
            Op::Gt,
            Op::Gte,
            Op::Between,
            Op::In,
            Op::NotIn,
        ],
        FieldType::Datetime | FieldType::Date => &[
            Op::Exists,
            Op::NotExists,
            Op::Before,
            Op::After,
            Op::Between,
            Op::WithinLast,
            Op::NotWithinLast,
            Op::On,
            Op::Anniversary,
        ],
    }
}

// ---- canonical text form ----

impl fmt::Display for Filter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_node(&self.root, f)
    }
}

fn write_grouped(node: &Node, f: &mut fmt::Formatter<'_>, group: bool) -> fmt::Result {
    if group {
        f.write_char('(')?;
        write_node(node, f)?;
        f.write_char(')')
    } else {
        write_node(node, f)
    }
}

fn write_node(node: &Node, f: &mut fmt::Formatter<'_>) -> fmt::Result {
    match node {
        Node::And(children) => {
            for (i, child) in children.iter().enumerate() {
                if i > 0 {
                    f.write_str(" and ")?;
                }
                write_grouped(child, f, matches!(child, Node::And(_) | Node::Or(_)))?;
            }
            Ok(())
        }
        Node::Or(children) => {
            for (i, child) in children.iter().enumerate() {
                if i > 0 {
                    f.write_str(" or ")?;
                }
                write_grouped(child, f, matches!(child, Node::Or(_)))?;
            }
            Ok(())
        }
        Node::Not(inner) => {
            f.write_str("not ")?;
            write_grouped(inner, f, matches!(**inner, Node::And(_) | Node::Or(_)))
        }
        Node::Condition(c) => write_condition(c, f),
        Node::Event(e) => write_event(e, f),
        Node::Subscribed(channel) => {
            f.write_str("subscribed ")?;
            write_field_name(channel.as_str(), f)
        }
    }
}

fn write_condition(c: &Condition, f: &mut fmt::Formatter<'_>) -> fmt::Result {
    write_field_name(c.target.name(), f)?;
    f.write_char(' ')?;
    write_predicate(&c.predicate, f)
}

/// `did purchase on pos where amount > 100 at_least 2 times within_last 180d`: the measure,
/// then the options in a fixed order (channel, where, count, window), then the test.
fn write_event(e: &EventCondition, f: &mut fmt::Formatter<'_>) -> fmt::Result {
    match &e.measure {
        Measure::Occurred { negated, .. } => {
            f.write_str(if *negated { "did_not " } else { "did " })?;
        }
        Measure::Aggregate { agg, property, .. } => {
            f.write_str(agg.name())?;
            if let Some(p) = property {
                f.write_char(' ')?;
                write_field_name(p, f)?;
            }
            f.write_str(" of ")?;
        }
        Measure::Time { which, .. } => {
            f.write_str(which.name())?;
            f.write_char(' ')?;
        }
    }
    write_field_name(e.event.as_str(), f)?;
    if let Some(channel) = &e.channel {
        f.write_str(" on ")?;
        write_field_name(channel.as_str(), f)?;
    }
    match e.wheres.as_slice() {
        [] => {}
        [one] => {
            f.write_str(" where ")?;
            write_property_condition(one, f)?;
        }
        many => {
            f.write_str(" where (")?;
            for (i, w) in many.iter().enumerate() {
                if i > 0 {
                    f.write_str(" and ")?;
                }
                write_property_condition(w, f)?;
            }
            f.write_char(')')?;
        }
    }
    if let Measure::Occurred {
        count: Some((op, n)),
        ..
    } = &e.measure
    {
        let times = if *n == 1 { "time" } else { "times" };
        write!(f, " {} {n} {times}", op.text())?;
    }
    match &e.window {
        Window::Ever => {}
        Window::Last(d) => write!(f, " within_last {d}")?,
        Window::Between(lo, hi) => write!(f, " between {} and {}", BoundText(lo), BoundText(hi))?,
    }
    match &e.measure {
        Measure::Occurred { .. } => Ok(()),
        Measure::Aggregate { predicate, .. } | Measure::Time { predicate, .. } => {
            f.write_char(' ')?;
            write_predicate(predicate, f)
        }
    }
}

fn write_property_condition(c: &PropertyCondition, f: &mut fmt::Formatter<'_>) -> fmt::Result {
    write_field_name(&c.property, f)?;
    f.write_char(' ')?;
    write_predicate(&c.predicate, f)
}

/// The operator and its operand (`> 30`, `in ("a", "b")`), without a leading space.
fn write_predicate(p: &Predicate, f: &mut fmt::Formatter<'_>) -> fmt::Result {
    f.write_str(p.op().text())?;
    match p {
        Predicate::Exists | Predicate::NotExists => Ok(()),
        Predicate::Eq(v) | Predicate::Neq(v) => write!(f, " {}", ValueText(v)),
        Predicate::In(values) | Predicate::NotIn(values) => {
            f.write_str(" (")?;
            for (i, v) in values.iter().enumerate() {
                if i > 0 {
                    f.write_str(", ")?;
                }
                write!(f, "{}", ValueText(v))?;
            }
            f.write_char(')')
        }
        Predicate::Contains(s)
        | Predicate::NotContains(s)
        | Predicate::StartsWith(s)
        | Predicate::EndsWith(s) => {
            f.write_char(' ')?;
            write_string(s, f)
        }
        Predicate::Lt(n) | Predicate::Lte(n) | Predicate::Gt(n) | Predicate::Gte(n) => {
            write!(f, " {}", number_text(*n))
        }
        Predicate::Between(lo, hi) => write!(f, " {} and {}", BoundText(lo), BoundText(hi)),
        Predicate::Before(b) | Predicate::After(b) => write!(f, " {}", BoundText(b)),
        Predicate::WithinLast(d) | Predicate::NotWithinLast(d) => write!(f, " {d}"),
        Predicate::On(day) => write!(f, " \"{}\"", format_date(*day)),
        Predicate::Anniversary { within_days: 0 } => Ok(()),
        Predicate::Anniversary { within_days } => write!(f, " within {within_days}d"),
    }
}

/// A name (field, event type, property, channel) bare when it is a plain identifier and
/// no keyword, else in backticks.
fn write_field_name(name: &str, f: &mut fmt::Formatter<'_>) -> fmt::Result {
    if crate::text::is_plain_identifier(name) {
        f.write_str(name)
    } else {
        f.write_char('`')?;
        f.write_str(&name.replace('`', "``"))?;
        f.write_char('`')
    }
}

/// `name` (a field's) as the text form writes it: bare when it is a plain identifier,
/// else in backticks, for callers that compose filters as text.
pub fn name_literal(name: &str) -> String {
    struct Name<'a>(&'a str);
    impl fmt::Display for Name<'_> {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            write_field_name(self.0, f)
        }
    }
    Name(name).to_string()
}

/// `text` as a string literal of the text form (quoted, with backslash escapes), for
/// callers that compose filters as text.
pub fn string_literal(text: &str) -> String {
    struct Literal<'a>(&'a str);
    impl fmt::Display for Literal<'_> {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            write_string(self.0, f)
        }
    }
    Literal(text).to_string()
}

fn write_string(s: &str, f: &mut fmt::Formatter<'_>) -> fmt::Result {
    f.write_char('"')?;
    for c in s.chars() {
        match c {
            '"' => f.write_str("\\\"")?,
            '\\' => f.write_str("\\\\")?,
            '\n' => f.write_str("\\n")?,
            '\r' => f.write_str("\\r")?,
            '\t' => f.write_str("\\t")?,
            c if c.is_control() => write!(f, "\\u{:04x}", c as u32)?,
            c => f.write_char(c)?,
        }
    }
    f.write_char('"')
}

/// The shortest text that parses back to the same number; exponent form for very large
/// or very small magnitudes (`1e300` rather than 301 digits).
pub(crate) fn number_text(n: f64) -> String {
    let plain = unico_core::value::format_number(n);
    if plain.len() > 21 {
        format!("{n:e}")
    } else {
        plain
    }
}

struct ValueText<'a>(&'a Value);

impl fmt::Display for ValueText<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Value::String(s) => write_string(s, f),
            Value::Number(n) => f.write_str(&number_text(*n)),
            Value::Datetime(ms) => write!(f, "\"{}\"", format_datetime(*ms)),
            Value::Date(days) => write!(f, "\"{}\"", format_date(*days)),
        }
    }
}

struct BoundText<'a>(&'a Bound);

impl fmt::Display for BoundText<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Bound::Value(v) => write!(f, "{}", ValueText(v)),
            Bound::Relative(r) => write!(f, "{r}"),
        }
    }
}

// ---- canonical JSON form ----

fn node_json(node: &Node) -> Json {
    match node {
        Node::And(children) => json!({ "and": children.iter().map(node_json).collect::<Vec<_>>() }),
        Node::Or(children) => json!({ "or": children.iter().map(node_json).collect::<Vec<_>>() }),
        Node::Not(inner) => json!({ "not": node_json(inner) }),
        Node::Condition(c) => condition_json(c.target.name(), &c.predicate),
        Node::Event(e) => event_json(e),
        Node::Subscribed(channel) => json!({ "subscribed": channel.as_str() }),
    }
}

fn condition_json(name: &str, predicate: &Predicate) -> Json {
    let mut out = serde_json::Map::new();
    out.insert("field".into(), Json::String(name.to_owned()));
    insert_test(&mut out, predicate);
    Json::Object(out)
}

/// `"op"` and, when the operator takes one, `"value"`.
fn insert_test(out: &mut serde_json::Map<String, Json>, predicate: &Predicate) {
    out.insert("op".into(), Json::String(predicate.op().name().to_owned()));
    if let Some(value) = predicate_value_json(predicate) {
        out.insert("value".into(), value);
    }
}

/// Keys in the order of SPEC §7: what, which events (channel, count, window, where), then
/// the test of an aggregate or a time.
fn event_json(e: &EventCondition) -> Json {
    let mut out = serde_json::Map::new();
    out.insert("event".into(), Json::String(e.event.as_str().to_owned()));
    let mut test = None;
    match &e.measure {
        Measure::Occurred { negated, .. } => {
            let op = if *negated { "did_not" } else { "did" };
            out.insert("op".into(), Json::String(op.to_owned()));
        }
        Measure::Aggregate {
            agg,
            property,
            predicate,
        } => {
            out.insert("agg".into(), Json::String(agg.name().to_owned()));
            if let Some(p) = property {
                out.insert("property".into(), Json::String(p.clone()));
            }
            test = Some(predicate);
        }
        Measure::Time { which, predicate } => {
            out.insert("agg".into(), Json::String(which.name().to_owned()));
            test = Some(predicate);
        }
    }
    if let Some(channel) = &e.channel {
        out.insert("channel".into(), Json::String(channel.as_str().to_owned()));
    }
    if let Measure::Occurred {
        count: Some((op, n)),
        ..
    } = &e.measure
    {
        out.insert("count".into(), json!({ op.json(): n }));
    }
    match &e.window {
        Window::Ever => {}
        Window::Last(d) => {
            out.insert("within_last".into(), Json::String(d.to_string()));
        }
        Window::Between(lo, hi) => {
            out.insert("between".into(), json!([bound_json(lo), bound_json(hi)]));
        }
    }
    let mut wheres: Vec<Json> = e
        .wheres
        .iter()
        .map(|w| condition_json(&w.property, &w.predicate))
        .collect();
    // One condition as an object, several as an array.
    match wheres.len() {
        0 => {}
        1 => {
            out.insert("where".into(), wheres.remove(0));
        }
        _ => {
            out.insert("where".into(), Json::Array(wheres));
        }
    }
    if let Some(predicate) = test {
        insert_test(&mut out, predicate);
    }
    Json::Object(out)
}

fn predicate_value_json(predicate: &Predicate) -> Option<Json> {
    match predicate {
        Predicate::Exists | Predicate::NotExists => None,
        Predicate::Eq(v) | Predicate::Neq(v) => Some(value_json(v)),
        Predicate::In(values) | Predicate::NotIn(values) => {
            Some(Json::Array(values.iter().map(value_json).collect()))
        }
        Predicate::Contains(s)
        | Predicate::NotContains(s)
        | Predicate::StartsWith(s)
        | Predicate::EndsWith(s) => Some(Json::String(s.clone())),
        Predicate::Lt(n) | Predicate::Lte(n) | Predicate::Gt(n) | Predicate::Gte(n) => {
            Some(number_json(*n))
        }
        Predicate::Between(lo, hi) => Some(json!([bound_json(lo), bound_json(hi)])),
        Predicate::Before(b) | Predicate::After(b) => Some(bound_json(b)),
        Predicate::WithinLast(d) | Predicate::NotWithinLast(d) => Some(Json::String(d.to_string())),
        Predicate::On(day) => Some(Json::String(format_date(*day))),
        Predicate::Anniversary { within_days: 0 } => None,
        Predicate::Anniversary { within_days } => Some(json!({ "within_days": within_days })),
    }
}

fn number_json(n: f64) -> Json {
    // Integers print without a fraction (25, not 25.0) while exactly representable.
    const EXACT: f64 = 9_007_199_254_740_992.0;
    if n == n.trunc() && n.abs() < EXACT {
        json!(n as i64)
    } else {
        serde_json::Number::from_f64(n).map_or(Json::Null, Json::Number)
    }
}

fn value_json(v: &Value) -> Json {
    match v {
        Value::String(s) => Json::String(s.clone()),
        Value::Number(n) => number_json(*n),
        Value::Datetime(ms) => Json::String(format_datetime(*ms)),
        Value::Date(days) => Json::String(format_date(*days)),
    }
}

fn bound_json(b: &Bound) -> Json {
    match b {
        Bound::Value(v) => value_json(v),
        Bound::Relative(r) => {
            let key = match r.direction {
                Direction::Ago => "ago",
                Direction::FromNow => "from_now",
            };
            json!({ key: r.duration.to_string() })
        }
    }
}
