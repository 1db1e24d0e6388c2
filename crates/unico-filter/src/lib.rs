//! Unico's filter language: one tree, two spellings (text and JSON), checked against an
//! application's schema and evaluated on customers. Pure: no I/O, no async.
//!
//! ```text
//! text  ──parse_text──┐
//!                     ├─> Ast ──check(schema)──> Filter ──matches(customer, ctx)──> bool
//! JSON  ──parse_json──┘                            │  └──resolve(ctx)──> ResolvedFilter
//!                                                  └──to_text / to_json (canonical forms)
//! ```
//!
//! [`matches()`] sees a customer without events or subscriptions; [`matches_with_events`]
//! is given the customer's events too, for event conditions (SPEC §7), and
//! [`matches_with`] their [`Facts`]: events and the channels they are subscribed to, for
//! subscription conditions.
//!
//! - [`limits`]: the named limits (depth, size, list length).
//! - [`ast`]: the untyped tree with the location of every node.
//! - [`text`]: lexer and recursive-descent parser of the text form.
//! - [`json`]: reader of the JSON form.
//! - [`mod@check`]: type checking against a [`unico_core::Schema`] into a [`Filter`].
//! - [`filter`]: the checked tree and its canonical text and JSON forms.
//! - [`calendar`]: the time arithmetic (now, today, relative times, dates in a zone).
//! - [`eval`]: the reference evaluator, customer by customer (with their events).
//! - [`mod@resolve`]: relative times lowered to absolute ranges, for columnar engines.
//! - [`aggregate`]: the exact arithmetic of event aggregates (sums to the millionth).
//! - [`error`]: errors with a location and a stable code.
//!
//! **API boundary**: user input enters only through [`parse_text`], [`parse_json`] (or
//! [`Filter::parse`]); every failure is a [`FilterError`] carrying a [`Location`]; no
//! input panics or recurses without bound.
//!
//! # Text grammar
//!
//! ```text
//! filter     ::= or_expr EOF
//! or_expr    ::= and_expr ( "or" and_expr )*
//! and_expr   ::= not_expr ( "and" not_expr )*          -- "and" binds tighter than "or"
//! not_expr   ::= "not" not_expr | primary
//! primary    ::= "(" or_expr ")" | event_cond | sub_cond | condition
//! condition  ::= field ( "exists" | "not_exists"
//!                      | ( "=" | "!=" | "<" | "<=" | ">" | ">=" ) value
//!                      | ( "in" | "not_in" ) "(" value ( "," value )* ")"
//!                      | "between" value "and" value
//!                      | ( "contains" | "not_contains" | "starts_with" | "ends_with" ) value
//!                      | ( "before" | "after" ) value
//!                      | ( "within_last" | "not_within_last" ) DURATION
//!                      | "on" STRING
//!                      | "anniversary" ( "within" DURATION )? )
//! field      ::= IDENT | "`" ( any character except "`" | "``" )+ "`"
//! value      ::= STRING | NUMBER | DURATION "ago" | DURATION "from" "now"
//! IDENT      ::= ( letter | "_" ) ( letter | digit | "_" )*   -- Unicode letters; not a keyword
//! STRING     ::= '"' ( any character except '"' and '\' | escape )* '"'
//! escape     ::= '\' ( '"' | '\' | '/' | 'n' | 'r' | 't' | 'b' | 'f' | 'u' HEX HEX HEX HEX )
//! NUMBER     ::= "-"? digit+ ( "." digit+ )? ( ( "e" | "E" ) ( "+" | "-" )? digit+ )?
//! DURATION   ::= digit+ ( "m" | "h" | "d" | "w" )           -- no space: 90d
//!
//! event_cond ::= ( "did" | "did_not" ) name occ_opt*           -- did purchase at_least 3 times within_last 90d
//!              | ( "sum" | "avg" | "min" | "max" ) name "of" name agg_opt* num_test
//!              | "count" "of" name agg_opt* num_test             -- count of purchase within_last 90d >= 3
//!              | ( "first" | "last" ) name time_opt* time_test   -- last app_open before 30d ago
//! occ_opt    ::= "on" name | "where" where | count | window     -- each at most once, any order
//! agg_opt    ::= "on" name | "where" where | window
//! time_opt   ::= "on" name | "where" where
//! count      ::= ( "at_least" | "at_most" | "exactly" ) NUMBER ( "time" | "times" )?
//! window     ::= "within_last" DURATION | "between" value "and" value | "ever"
//! where      ::= prop_test | "(" prop_test ( "and" prop_test )* ")"
//! prop_test  ::= name <what follows the field of a condition>
//! num_test   ::= <what follows a number field: = != < <= > >= in not_in between>
//! time_test  ::= <what follows a datetime field: before after between within_last not_within_last on>
//! name       ::= IDENT | "`" ( any character except "`" | "``" )+ "`"   -- event type, property, channel
//!
//! sub_cond   ::= "subscribed" name                             -- subscribed email
//! ```
//!
//! `subscribed` is not a keyword either: it starts a subscription condition only when a
//! name (not an operator) follows it, so `subscribed = "yes"` is a condition on a field
//! named `subscribed`. The channel must be one the application takes subscriptions for
//! (`Schema::subscription_channels`); `not subscribed sms` negates it.
//!
//! The words of event conditions (`did`, `sum`, `count`, `last`, `of`, `where`,
//! `at_least`, `ever`, ...) are not keywords: a condition is an event condition only when
//! its first word is one of `did`, `did_not`, `count`, `sum`, `avg`, `min`, `max`,
//! `first`, `last` and a name (not an operator) follows it, so `last = "x"` is still a
//! condition on a field named `last`. In an aggregate, `between` followed by a NUMBER is
//! the test and otherwise the window; after `first`/`last`, `on` followed by a STRING is
//! the test and otherwise the channel.
//!
//! Keywords (`and`, `or`, `not`, the operator names, `within`, `ago`, `from`, `now`) and
//! the words of event conditions are matched ignoring ASCII case (`AND` works; output is
//! lowercase). Field names, event types and property names are case-sensitive (channels
//! are lowercased); one that is not an identifier, or is a keyword, is written in
//! backticks.
//! White space separates tokens and is otherwise ignored. Columns in errors count
//! characters, from 1.
//!
//! # JSON form
//!
//! `{"and": [f, ...]}`, `{"or": [f, ...]}`, `{"not": f}`, or
//! `{"field": name, "op": op, "value": v}` where `v` is absent for `exists`/`not_exists`,
//! an array for `in`/`not_in`, `[low, high]` for `between`, `"30d"` for `within_last`,
//! `{"within_days": N}` or absent for `anniversary`, and a string, number, or relative time
//! (`{"ago": "90d"}`, `{"from_now": "7d"}`) otherwise. Event conditions are
//! `{"event": "purchase", "op": "did" | "did_not", "channel"?, "count"?: {"gte" | "lte" |
//! "eq": N}, "within_last"?: "90d" | "between"?: [a, b], "where"?: condition | [condition,
//! ...]}`, or with `"agg"` (`count`, `sum`, `avg`, `min`, `max` with `"property"` but for
//! `count`; `first`, `last` without a window) and the `"op"`/`"value"` of a number or
//! datetime field. A subscription condition is `{"subscribed": "email"}` (negated with
//! `{"not": …}`). Errors carry a path such as `and[2].where.value`.
//!
//! The semantics, and the choices made where the spec is silent, are in `docs/filters.md`.

pub mod aggregate;
pub mod ast;
pub mod calendar;
pub mod check;
pub mod error;
pub mod eval;
pub mod filter;
pub mod json;
pub mod limits;
pub mod resolve;
pub mod text;

pub use ast::Ast;
pub use calendar::EvalContext;
pub use check::{check, check_computed};
pub use error::{ErrorKind, FilterError, Location};
pub use eval::{Facts, computed_value, matches, matches_with, matches_with_events};
pub use filter::{Filter, FilterInput, name_literal, string_literal};
pub use json::parse_json;
pub use resolve::{ResolvedFilter, resolve};
pub use text::parse_text;
