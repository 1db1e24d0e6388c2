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
//! - [`limits`]: the named limits (depth, size, list length).
//! - [`ast`]: the untyped tree with the location of every node.
//! - [`text`]: lexer and recursive-descent parser of the text form.
//! - [`json`]: reader of the JSON form.
//! - [`mod@check`]: type checking against a [`unico_core::Schema`] into a [`Filter`].
//! - [`filter`]: the checked tree and its canonical text and JSON forms.
//! - [`calendar`]: the time arithmetic (now, today, relative times, dates in a zone).
//! - [`eval`]: the reference evaluator, customer by customer.
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
//! primary    ::= "(" or_expr ")" | condition
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
//! ```
//!
//! Keywords (`and`, `or`, `not`, the operator names, `within`, `ago`, `from`, `now`) are
//! matched ignoring ASCII case (`AND` works; output is lowercase). Field names are
//! case-sensitive; one that is not an identifier, or is a keyword, is written in backticks.
//! White space separates tokens and is otherwise ignored. Columns in errors count
//! characters, from 1.
//!
//! # JSON form
//!
//! `{"and": [f, ...]}`, `{"or": [f, ...]}`, `{"not": f}`, or
//! `{"field": name, "op": op, "value": v}` where `v` is absent for `exists`/`not_exists`,
//! an array for `in`/`not_in`, `[low, high]` for `between`, `"30d"` for `within_last`,
//! `{"within_days": N}` or absent for `anniversary`, and a string, number, or relative time
//! (`{"ago": "90d"}`, `{"from_now": "7d"}`) otherwise. Errors carry a path such as
//! `and[2].value`.
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
pub use check::check;
pub use error::{ErrorKind, FilterError, Location};
pub use eval::matches;
pub use filter::{Filter, FilterInput, string_literal};
pub use json::parse_json;
pub use resolve::{ResolvedFilter, resolve};
pub use text::parse_text;
