//! The untyped filter tree that both the text and the JSON forms parse into, with the
//! location of every node and value so that [`crate::check()`] can say where a problem is.
//!
//! Nothing here knows the schema: a field is a name, a value is what the user wrote.

use std::fmt;

use crate::error::Location;
use crate::filter::{Agg, CountOp, Which};

/// A byte range in the text form.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Span {
    pub start: usize,
    pub end: usize,
}

impl Span {
    pub fn new(start: usize, end: usize) -> Self {
        Self { start, end }
    }

    /// The smallest span covering both.
    pub fn to(self, other: Span) -> Span {
        Span::new(self.start.min(other.start), self.end.max(other.end))
    }
}

/// Where a node came from: a byte span of the text form or a path in the JSON form.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Loc {
    Text(Span),
    /// Rendered path, e.g. `and[2].value`; empty for the top-level value.
    Json(String),
}

/// A parsed, not yet checked filter.
#[derive(Debug, Clone, PartialEq)]
pub struct Ast {
    pub root: Expr,
    /// The text the tree was parsed from (to turn spans into lines and columns), or `None`
    /// for the JSON form.
    source: Option<String>,
}

impl Ast {
    pub(crate) fn from_text(root: Expr, source: &str) -> Self {
        Self {
            root,
            source: Some(source.to_owned()),
        }
    }

    pub(crate) fn from_json(root: Expr) -> Self {
        Self { root, source: None }
    }

    /// Whether this tree came from the text form (so messages use its spelling).
    pub fn is_text(&self) -> bool {
        self.source.is_some()
    }

    /// The user-facing location of `loc`.
    pub fn locate(&self, loc: &Loc) -> Location {
        match (loc, &self.source) {
            (Loc::Text(span), Some(text)) => text_location(text, span.start),
            (Loc::Text(_), None) => Location::Whole,
            (Loc::Json(path), _) => Location::Json { path: path.clone() },
        }
    }
}

/// The 1-based line and character column of byte `offset` in `text`.
pub(crate) fn text_location(text: &str, offset: usize) -> Location {
    let mut offset = offset.min(text.len());
    while !text.is_char_boundary(offset) {
        offset -= 1;
    }
    let before = &text[..offset];
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let column = text[line_start..offset].chars().count() + 1;
    Location::Text { line, column }
}

/// One node of the tree.
#[derive(Debug, Clone, PartialEq)]
pub struct Expr {
    pub kind: ExprKind,
    pub loc: Loc,
}

#[derive(Debug, Clone, PartialEq)]
pub enum ExprKind {
    /// All must match; never empty.
    And(Vec<Expr>),
    /// At least one must match; never empty.
    Or(Vec<Expr>),
    Not(Box<Expr>),
    Condition(Condition),
    /// A condition on the customer's events (SPEC §7).
    Event(EventExpr),
    /// `subscribed email` / `{"subscribed": "email"}`: the customer's current subscription
    /// to the channel is "subscribed". `channel` is the name as written.
    Subscribed {
        channel: String,
        channel_loc: Loc,
    },
}

/// An event condition as written: which events count, then what is measured over them.
/// The parsers already refuse what no form can spell (a count bound outside `did`, a
/// window on `first`/`last`, a missing or extra property); the checker refuses it again
/// on trees built by hand.
#[derive(Debug, Clone, PartialEq)]
pub struct EventExpr {
    /// The event type's code as written.
    pub event: String,
    pub event_loc: Loc,
    /// `on web` / `"channel": "web"`.
    pub channel: Option<(String, Loc)>,
    /// The window as written, with the location of its keyword; `None` when none is
    /// written (which means ever).
    pub window: Option<(EventWindow, Loc)>,
    /// Property conditions (`field` holds the property's name); all must hold.
    pub wheres: Vec<Condition>,
    pub measure: MeasureExpr,
}

/// The time window of an event condition as written.
#[derive(Debug, Clone, PartialEq)]
pub enum EventWindow {
    /// `ever` (the same as writing no window).
    Ever,
    /// `within_last 90d`.
    Last(Duration),
    /// `between a and b`: two times, as for a datetime field.
    Between(Box<Scalar>, Box<Scalar>),
}

/// What an event condition measures, as written.
#[derive(Debug, Clone, PartialEq)]
pub enum MeasureExpr {
    /// `did` / `did_not`, with an optional count bound (`at_least 3 times`).
    Occurred {
        negated: bool,
        count: Option<(CountOp, u32, Loc)>,
    },
    /// `sum amount of purchase … > 500`, `count of purchase … >= 3`.
    Aggregate {
        agg: Agg,
        agg_loc: Loc,
        /// The number property (`None` for `count`).
        property: Option<(String, Loc)>,
        test: TestExpr,
    },
    /// `last app_open before 30d ago`.
    Time { which: Which, test: TestExpr },
}

/// An operator and its operand, as in a field condition, applied to a measure.
#[derive(Debug, Clone, PartialEq)]
pub struct TestExpr {
    pub op: Op,
    pub op_loc: Loc,
    pub operand: Operand,
}

/// `field op operand`.
#[derive(Debug, Clone, PartialEq)]
pub struct Condition {
    /// The field's name as written (a schema field or a built-in attribute).
    pub field: String,
    pub field_loc: Loc,
    pub op: Op,
    pub op_loc: Loc,
    pub operand: Operand,
}

/// The operators of SPEC §2, by their canonical (JSON) names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Op {
    Exists,
    NotExists,
    Eq,
    Neq,
    In,
    NotIn,
    Contains,
    NotContains,
    StartsWith,
    EndsWith,
    Lt,
    Lte,
    Gt,
    Gte,
    Between,
    Before,
    After,
    WithinLast,
    NotWithinLast,
    On,
    Anniversary,
}

impl Op {
    pub const ALL: [Op; 21] = [
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
        Op::Before,
        Op::After,
        Op::WithinLast,
        Op::NotWithinLast,
        Op::On,
        Op::Anniversary,
    ];

    /// The canonical name, as in the JSON form.
    pub fn name(self) -> &'static str {
        match self {
            Op::Exists => "exists",
            Op::NotExists => "not_exists",
            Op::Eq => "eq",
            Op::Neq => "neq",
            Op::In => "in",
            Op::NotIn => "not_in",
            Op::Contains => "contains",
            Op::NotContains => "not_contains",
            Op::StartsWith => "starts_with",
            Op::EndsWith => "ends_with",
            Op::Lt => "lt",
            Op::Lte => "lte",
            Op::Gt => "gt",
            Op::Gte => "gte",
            Op::Between => "between",
            Op::Before => "before",
            Op::After => "after",
            Op::WithinLast => "within_last",
            Op::NotWithinLast => "not_within_last",
            Op::On => "on",
            Op::Anniversary => "anniversary",
        }
    }

    /// The spelling in the text form: comparisons as symbols, the rest by name.
    pub fn text(self) -> &'static str {
        match self {
            Op::Eq => "=",
            Op::Neq => "!=",
            Op::Lt => "<",
            Op::Lte => "<=",
            Op::Gt => ">",
            Op::Gte => ">=",
            other => other.name(),
        }
    }

    /// Looks up an operator by its canonical name, ignoring ASCII case.
    pub fn from_name(name: &str) -> Option<Op> {
        Op::ALL
            .into_iter()
            .find(|op| op.name().eq_ignore_ascii_case(name))
    }
}

impl fmt::Display for Op {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// What follows the operator. Which shape an operator takes is fixed by the parsers.
#[derive(Debug, Clone, PartialEq)]
pub enum Operand {
    /// `exists`, `not_exists`.
    None,
    /// Comparisons, text matching, `before`, `after`, `on`.
    Scalar(Scalar),
    /// `in`, `not_in`; never empty.
    List(Vec<Scalar>),
    /// `between lo and hi`.
    Range(Box<Scalar>, Box<Scalar>),
    /// `within_last`, `not_within_last`.
    Duration(Duration, Loc),
    /// `anniversary` with an optional `within N days` window.
    Anniversary(Option<(Duration, Loc)>),
}

/// A value as written, with where it was written.
#[derive(Debug, Clone, PartialEq)]
pub struct Scalar {
    pub kind: ScalarKind,
    pub loc: Loc,
}

#[derive(Debug, Clone, PartialEq)]
pub enum ScalarKind {
    /// A string literal (text form: double-quoted; JSON: a string).
    String(String),
    /// A number literal of the text form, as written (`-3.5`, `1e3`).
    Number(String),
    /// A JSON number (for datetime fields, an integer is epoch milliseconds).
    JsonNumber(serde_json::Number),
    /// `90d ago`, `7d from now`.
    Relative(Relative),
}

pub use unico_core::span::{Duration, Unit, parse_duration};

/// Which way from now a relative time points.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Direction {
    Ago,
    FromNow,
}

/// A point in time relative to "now": `90d ago`, `7d from now`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Relative {
    pub duration: Duration,
    pub direction: Direction,
}

impl fmt::Display for Relative {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.direction {
            Direction::Ago => write!(f, "{} ago", self.duration),
            Direction::FromNow => write!(f, "{} from now", self.duration),
        }
    }
}
