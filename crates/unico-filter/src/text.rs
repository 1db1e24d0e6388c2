//! The text form: a hand-written lexer and a recursive-descent parser into [`Ast`].
//!
//! The grammar is in the crate docs. Recursion happens only on parentheses and `not`, and
//! both are counted before the parser goes one level deeper, so hostile input such as a
//! million `(` ends in an error, never in a stack overflow.

use crate::ast::{
    Ast, Condition, Direction, Duration, EventExpr, EventWindow, Expr, ExprKind, Loc, MeasureExpr,
    Op, Operand, Relative, Scalar, ScalarKind, Span, TestExpr, Unit, text_location,
};
use crate::error::{ErrorKind, FilterError, Location};
use crate::filter::{Agg, CountOp, Which};
use crate::limits::{MAX_DEPTH, MAX_EVENT_COUNT, MAX_FILTER_BYTES, MAX_IN_VALUES};

/// Words with a meaning in the text form. They are matched ignoring ASCII case; a field
/// named like one of them is written in backticks.
pub const KEYWORDS: [&str; 22] = [
    "and",
    "or",
    "not",
    "exists",
    "not_exists",
    "in",
    "not_in",
    "contains",
    "not_contains",
    "starts_with",
    "ends_with",
    "between",
    "before",
    "after",
    "within_last",
    "not_within_last",
    "on",
    "anniversary",
    "within",
    "ago",
    "from",
    "now",
];

/// Words that start an event condition when a name follows them (`did purchase`,
/// `sum amount of purchase`, `last app_open`). They are not keywords: followed by an
/// operator they are field names (`last = "x"`), so no field name becomes reserved.
pub const MEASURE_WORDS: [&str; 9] = [
    "did", "did_not", "count", "sum", "avg", "min", "max", "first", "last",
];

/// The word that starts a subscription condition when a channel name follows it
/// (`subscribed email`). Not a keyword: followed by an operator it is a field name
/// (`subscribed = "yes"`).
pub const SUBSCRIBED_WORD: &str = "subscribed";

/// Whether `word` is a keyword of the text form (ignoring ASCII case).
pub fn is_keyword(word: &str) -> bool {
    KEYWORDS.iter().any(|k| k.eq_ignore_ascii_case(word))
}

/// Whether `name` can be written bare: an identifier that is not a keyword.
pub fn is_plain_identifier(name: &str) -> bool {
    let mut chars = name.chars();
    match chars.next() {
        Some(c) if is_ident_start(c) => {}
        _ => return false,
    }
    chars.all(is_ident_continue) && !is_keyword(name)
}

fn is_ident_start(c: char) -> bool {
    c.is_alphabetic() || c == '_'
}

fn is_ident_continue(c: char) -> bool {
    c.is_alphanumeric() || c == '_'
}

/// Parses the text form into an untyped tree.
pub fn parse_text(input: &str) -> Result<Ast, FilterError> {
    if input.len() > MAX_FILTER_BYTES {
        return Err(FilterError::new(
            ErrorKind::TooLarge { bytes: input.len() },
            Location::Whole,
        ));
    }
    let tokens = Lexer::new(input).run()?;
    let mut parser = Parser {
        src: input,
        tokens,
        pos: 0,
        nesting: 0,
    };
    if parser.peek().tok == Tok::Eof {
        return Err(FilterError::new(ErrorKind::Empty, Location::Whole));
    }
    let (root, _) = parser.or_expr()?;
    let next = parser.peek();
    if next.tok != Tok::Eof {
        let found = next.tok.describe();
        let hint = match &next.tok {
            Tok::RParen => "; this ) closes nothing",
            _ => "",
        };
        return Err(parser.error_at(
            next.span,
            format!("expected and, or or the end of the filter, found {found}{hint}"),
        ));
    }
    Ok(Ast::from_text(root, input))
}

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    /// A bare identifier or keyword.
    Word(String),
    /// A backtick-quoted field name.
    Name(String),
    Str(String),
    Number(String),
    Duration(Duration),
    LParen,
    RParen,
    Comma,
    /// `=`, `!=`, `<`, `<=`, `>`, `>=`.
    Cmp(Op),
    Eof,
}

impl Tok {
    fn describe(&self) -> String {
        match self {
            Tok::Word(w) => format!("\"{}\"", unico_core::value::excerpt(w)),
            Tok::Name(n) => format!("`{}`", unico_core::value::excerpt(n)),
            Tok::Str(_) => "a string".to_owned(),
            Tok::Number(n) => format!("the number {}", unico_core::value::excerpt(n)),
            Tok::Duration(d) => format!("the duration {d}"),
            Tok::LParen => "\"(\"".to_owned(),
            Tok::RParen => "\")\"".to_owned(),
            Tok::Comma => "\",\"".to_owned(),
            Tok::Cmp(op) => format!("\"{}\"", op.text()),
            Tok::Eof => "the end of the filter".to_owned(),
        }
    }

    fn is_word(&self, keyword: &str) -> bool {
        matches!(self, Tok::Word(w) if w.eq_ignore_ascii_case(keyword))
    }
}

#[derive(Debug, Clone)]
struct Token {
    tok: Tok,
    span: Span,
}

struct Lexer<'a> {
    src: &'a str,
    pos: usize,
    tokens: Vec<Token>,
}

impl<'a> Lexer<'a> {
    fn new(src: &'a str) -> Self {
        Self {
            src,
            pos: 0,
            tokens: Vec::new(),
        }
    }

    fn peek(&self) -> Option<char> {
        self.src[self.pos..].chars().next()
    }

    fn peek_second(&self) -> Option<char> {
        let mut chars = self.src[self.pos..].chars();
        chars.next();
        chars.next()
    }

    fn bump(&mut self) -> Option<char> {
        let c = self.peek()?;
        self.pos += c.len_utf8();
        Some(c)
    }

    fn error(&self, at: usize, message: impl Into<String>) -> FilterError {
        FilterError::syntax(message, text_location(self.src, at))
    }

    fn push(&mut self, tok: Tok, start: usize) {
        self.tokens.push(Token {
            tok,
            span: Span::new(start, self.pos),
        });
    }

    fn run(mut self) -> Result<Vec<Token>, FilterError> {
        while let Some(c) = self.peek() {
            let start = self.pos;
            match c {
                c if c.is_whitespace() => {
                    self.bump();
                }
                '(' | ')' | ',' => {
                    self.bump();
                    let tok = match c {
                        '(' => Tok::LParen,
                        ')' => Tok::RParen,
                        _ => Tok::Comma,
                    };
                    self.push(tok, start);
                }
                '=' => {
                    self.bump();
                    if self.peek() == Some('=') {
                        return Err(
                            self.error(start, "\"==\" is not an operator; equality is written =")
                        );
                    }
                    self.push(Tok::Cmp(Op::Eq), start);
                }
                '!' => {
                    self.bump();
                    if self.bump() != Some('=') {
                        return Err(self.error(start, "unexpected \"!\"; not-equal is written !="));
                    }
                    self.push(Tok::Cmp(Op::Neq), start);
                }
                '<' | '>' => {
                    self.bump();
                    let op = match (c, self.peek()) {
                        ('<', Some('>')) => {
                            return Err(self.error(
                                start,
                                "\"<>\" is not an operator; not-equal is written !=",
                            ));
                        }
                        ('<', Some('=')) => Op::Lte,
                        ('>', Some('=')) => Op::Gte,
                        ('<', _) => Op::Lt,
                        _ => Op::Gt,
                    };
                    if matches!(op, Op::Lte | Op::Gte) {
                        self.bump();
                    }
                    self.push(Tok::Cmp(op), start);
                }
                '"' => {
                    let s = self.string()?;
                    self.push(Tok::Str(s), start);
                }
                '`' => {
                    let n = self.backticked()?;
                    self.push(Tok::Name(n), start);
                }
                '-' | '0'..='9' => {
                    let tok = self.number()?;
                    self.push(tok, start);
                }
                c if is_ident_start(c) => {
                    while self.peek().is_some_and(is_ident_continue) {
                        self.bump();
                    }
                    let word = self.src[start..self.pos].to_owned();
                    self.push(Tok::Word(word), start);
                }
                '\'' => {
                    return Err(self.error(start, "unexpected \"'\"; strings are written in double quotes (\"ES\") and field names that are not plain words in backticks (`last purchase`)"));
                }
                c => {
                    let shown = if c.is_control() {
                        format!("U+{:04X}", c as u32)
                    } else {
                        format!("\"{c}\"")
                    };
                    return Err(self.error(start, format!("unexpected character {shown}")));
                }
            }
        }
        let end = self.src.len();
        self.tokens.push(Token {
            tok: Tok::Eof,
            span: Span::new(end, end),
        });
        Ok(self.tokens)
    }

    /// A double-quoted string with JSON's backslash escapes.
    fn string(&mut self) -> Result<String, FilterError> {
        let start = self.pos;
        self.bump();
        let mut out = String::new();
        loop {
            let at = self.pos;
            match self.bump() {
                None => {
                    return Err(
                        self.error(start, "unterminated string (the closing \" is missing)")
                    );
                }
                Some('"') => return Ok(out),
                Some('\\') => {
                    let c = match self.bump() {
                        Some('"') => '"',
                        Some('\\') => '\\',
                        Some('/') => '/',
                        Some('n') => '\n',
                        Some('r') => '\r',
                        Some('t') => '\t',
                        Some('b') => '\u{8}',
                        Some('f') => '\u{c}',
                        Some('u') => self.unicode_escape(at)?,
                        _ => {
                            return Err(self.error(
                                at,
                                "unknown escape in a string; accepted: \\\" \\\\ \\/ \\n \\r \\t \\b \\f \\uXXXX",
                            ));
                        }
                    };
                    out.push(c);
                }
                Some(c) => out.push(c),
            }
        }
    }

    fn hex4(&mut self, at: usize) -> Result<u32, FilterError> {
        let mut n = 0u32;
        for _ in 0..4 {
            let digit = self.bump().and_then(|c| c.to_digit(16)).ok_or_else(|| {
                self.error(
                    at,
                    "\\u must be followed by four hexadecimal digits (\\u00e9)",
                )
            })?;
            n = n * 16 + digit;
        }
        Ok(n)
    }

    /// The character of `\uXXXX` (after the `u`), joining a UTF-16 surrogate pair.
    fn unicode_escape(&mut self, at: usize) -> Result<char, FilterError> {
        let first = self.hex4(at)?;
        let code = if (0xD800..0xDC00).contains(&first) {
            if self.bump() != Some('\\') || self.bump() != Some('u') {
                return Err(self.error(at, "a \\u escape of a high surrogate must be followed by a low surrogate (\\ud83d\\ude00)"));
            }
            let second = self.hex4(at)?;
            if !(0xDC00..0xE000).contains(&second) {
                return Err(self.error(at, "a \\u escape of a high surrogate must be followed by a low surrogate (\\ud83d\\ude00)"));
            }
            0x10000 + ((first - 0xD800) << 10) + (second - 0xDC00)
        } else {
            first
        };
        char::from_u32(code)
            .ok_or_else(|| self.error(at, "the \\u escape is not a valid character"))
    }

    /// A backtick-quoted field name; a doubled backtick stands for one.
    fn backticked(&mut self) -> Result<String, FilterError> {
        let start = self.pos;
        self.bump();
        let mut out = String::new();
        loop {
            match self.bump() {
                None => {
                    return Err(
                        self.error(start, "unterminated field name (the closing ` is missing)")
                    );
                }
                Some('`') if self.peek() == Some('`') => {
                    self.bump();
                    out.push('`');
                }
                Some('`') => break,
                Some(c) => out.push(c),
            }
        }
        if out.is_empty() {
            return Err(self.error(start, "empty field name"));
        }
        Ok(out)
    }

    fn digits(&mut self) -> usize {
        let start = self.pos;
        while self.peek().is_some_and(|c| c.is_ascii_digit()) {
            self.bump();
        }
        self.pos - start
    }

    /// A number (`42`, `-3.5`, `1e3`, `2.5E-3`) or a duration (`90d`).
    fn number(&mut self) -> Result<Tok, FilterError> {
        let start = self.pos;
        let negative = self.peek() == Some('-');
        if negative {
            self.bump();
            if !self.peek().is_some_and(|c| c.is_ascii_digit()) {
                return Err(
                    self.error(start, "unexpected \"-\"; a negative number is written -3.5")
                );
            }
        }
        self.digits();
        let mut whole = !negative;
        if self.peek() == Some('.') && self.peek_second().is_some_and(|c| c.is_ascii_digit()) {
            self.bump();
            self.digits();
            whole = false;
        }
        if matches!(self.peek(), Some('e' | 'E')) {
            let save = self.pos;
            self.bump();
            if matches!(self.peek(), Some('+' | '-')) {
                self.bump();
            }
            if self.digits() == 0 {
                self.pos = save;
            } else {
                whole = false;
            }
        }
        let number_end = self.pos;
        if !self.peek().is_some_and(is_ident_continue) {
            return Ok(Tok::Number(self.src[start..number_end].to_owned()));
        }
        while self.peek().is_some_and(is_ident_continue) {
            self.bump();
        }
        let suffix = &self.src[number_end..self.pos];
        let is_unit =
            suffix.chars().count() == 1 && suffix.chars().all(|c| Unit::from_letter(c).is_some());
        if is_unit && whole {
            return crate::ast::parse_duration(&self.src[start..self.pos])
                .map(Tok::Duration)
                .map_err(|message| self.error(start, message));
        }
        if is_unit && negative {
            return Err(self.error(
                start,
                "a duration has no sign; write the past as 90d ago and the future as 7d from now",
            ));
        }
        if is_unit {
            return Err(self.error(
                start,
                "a duration is a whole number and a unit: m (minutes), h (hours), d (days) or w (weeks), such as 90d",
            ));
        }
        Err(self.error(
            start,
            format!(
                "unexpected \"{}\" after the number {}; a field name that starts with a digit is written in backticks",
                unico_core::value::excerpt(suffix),
                &self.src[start..number_end]
            ),
        ))
    }
}

struct Parser<'a> {
    src: &'a str,
    tokens: Vec<Token>,
    pos: usize,
    /// Parentheses and `not`s currently open: what the parser recurses on.
    nesting: usize,
}

impl Parser<'_> {
    fn peek(&self) -> &Token {
        // The lexer always ends the list with Eof and the parser never moves past it.
        &self.tokens[self.pos.min(self.tokens.len() - 1)]
    }

    fn advance(&mut self) -> Token {
        let token = self.peek().clone();
        if token.tok != Tok::Eof {
            self.pos += 1;
        }
        token
    }

    fn eat_word(&mut self, keyword: &str) -> bool {
        if self.peek().tok.is_word(keyword) {
            self.pos += 1;
            true
        } else {
            false
        }
    }

    fn error_at(&self, span: Span, message: impl Into<String>) -> FilterError {
        FilterError::syntax(message, text_location(self.src, span.start))
    }

    fn too_deep(&self, span: Span) -> FilterError {
        FilterError::new(ErrorKind::TooDeep, text_location(self.src, span.start))
    }

    /// Goes one level deeper (a parenthesis or a `not`), refusing past [`MAX_DEPTH`].
    fn enter(&mut self, span: Span) -> Result<(), FilterError> {
        self.nesting += 1;
        if self.nesting > MAX_DEPTH {
            return Err(self.too_deep(span));
        }
        Ok(())
    }

    fn leave(&mut self) {
        self.nesting -= 1;
    }

    /// Checks the depth of a node just built (children depth + 1).
    fn node(&self, kind: ExprKind, span: Span, depth: usize) -> Result<(Expr, usize), FilterError> {
        if depth > MAX_DEPTH {
            return Err(self.too_deep(span));
        }
        Ok((
            Expr {
                kind,
                loc: Loc::Text(span),
            },
            depth,
        ))
    }

    fn or_expr(&mut self) -> Result<(Expr, usize), FilterError> {
        self.list_expr("or", ExprKind::Or, Self::and_expr)
    }

    fn and_expr(&mut self) -> Result<(Expr, usize), FilterError> {
        self.list_expr("and", ExprKind::And, Self::not_expr)
    }

    fn list_expr(
        &mut self,
        keyword: &str,
        make: fn(Vec<Expr>) -> ExprKind,
        operand: fn(&mut Self) -> Result<(Expr, usize), FilterError>,
    ) -> Result<(Expr, usize), FilterError> {
        let (first, mut depth) = operand(self)?;
        if !self.peek().tok.is_word(keyword) {
            return Ok((first, depth));
        }
        let mut span = span_of(&first);
        let mut children = vec![first];
        while self.eat_word(keyword) {
            let (next, d) = operand(self)?;
            depth = depth.max(d);
            span = span.to(span_of(&next));
            children.push(next);
        }
        self.node(make(children), span, depth + 1)
    }

    fn not_expr(&mut self) -> Result<(Expr, usize), FilterError> {
        let token = self.peek().clone();
        if token.tok.is_word("not") {
            self.enter(token.span)?;
            self.advance();
            let (inner, depth) = self.not_expr()?;
            self.leave();
            let span = token.span.to(span_of(&inner));
            return self.node(ExprKind::Not(Box::new(inner)), span, depth + 1);
        }
        self.primary()
    }

    fn primary(&mut self) -> Result<(Expr, usize), FilterError> {
        let token = self.advance();
        match token.tok {
            Tok::LParen => {
                self.enter(token.span)?;
                let inner = self.or_expr()?;
                let close = self.advance();
                if close.tok != Tok::RParen {
                    let opened = text_location(self.src, token.span.start);
                    return Err(self.error_at(
                        close.span,
                        format!(
                            "expected \")\" to close the \"(\" at {opened}, found {}",
                            close.tok.describe()
                        ),
                    ));
                }
                self.leave();
                Ok(inner)
            }
            Tok::Word(word) if is_keyword(&word) => {
                let message = if ["and", "or"].iter().any(|k| k.eq_ignore_ascii_case(&word)) {
                    format!("expected a condition, found \"{word}\"")
                } else {
                    format!(
                        "expected a field name, found the keyword \"{word}\"; a field named like a keyword is written in backticks (`{word}`)"
                    )
                };
                Err(self.error_at(token.span, message))
            }
            Tok::Word(word)
                if word.eq_ignore_ascii_case("did") && self.peek().tok.is_word("not") =>
            {
                Err(self.error_at(
                    token.span,
                    "\"did not\" is one word; write did_not, as in did_not purchase within_last 30d",
                ))
            }
            Tok::Word(word)
                if MEASURE_WORDS.iter().any(|m| m.eq_ignore_ascii_case(&word))
                    && self.name_follows() =>
            {
                let (event, span) = self.event(&word, token.span)?;
                self.node(ExprKind::Event(event), span, 1)
            }
            Tok::Word(word)
                if word.eq_ignore_ascii_case(SUBSCRIBED_WORD)
                    && matches!(self.peek().tok, Tok::Str(_)) =>
            {
                Err(self.error_at(
                    self.peek().span,
                    "expected a channel after \"subscribed\", found a string; a channel is written as a name, without quotes (subscribed email), or in backticks (subscribed `in-app`)",
                ))
            }
            Tok::Word(word) if word.eq_ignore_ascii_case(SUBSCRIBED_WORD) && self.name_follows() => {
                let (channel, channel_span) =
                    self.name("a channel", "subscribed email")?;
                self.node(
                    ExprKind::Subscribed {
                        channel,
                        channel_loc: Loc::Text(channel_span),
                    },
                    token.span.to(channel_span),
                    1,
                )
            }
            Tok::Word(name) | Tok::Name(name) => {
                let (condition, span) = self.condition(name, token.span)?;
                self.node(ExprKind::Condition(condition), span, 1)
            }
            other => Err(self.error_at(
                token.span,
                format!(
                    "expected a condition (a field name), found {}",
                    other.describe()
                ),
            )),
        }
    }

    fn condition(
        &mut self,
        field: String,
        field_span: Span,
    ) -> Result<(Condition, Span), FilterError> {
        let after = format!("field \"{}\"", unico_core::value::excerpt(&field));
        let (test, end) = self.test(&after, OPERATORS_HINT)?;
        Ok((
            Condition {
                field,
                field_loc: Loc::Text(field_span),
                op: test.op,
                op_loc: test.op_loc,
                operand: test.operand,
            },
            field_span.to(end),
        ))
    }

    /// An operator and its operand, as after a field name. `after` names what precedes
    /// it for messages (`field "age"`), `hint` lists the operators. Returns the test and
    /// the span of its last token.
    fn test(&mut self, after: &str, hint: &str) -> Result<(TestExpr, Span), FilterError> {
        let token = self.advance();
        let op = match &token.tok {
            Tok::Cmp(op) => *op,
            Tok::Word(word) => match Op::from_name(word) {
                Some(Op::Eq | Op::Neq | Op::Lt | Op::Lte | Op::Gt | Op::Gte) => {
                    return Err(self.error_at(
                        token.span,
                        format!("unknown operator \"{word}\"; in the text form comparisons are written = != < <= > >="),
                    ));
                }
                Some(op) => op,
                None if word.eq_ignore_ascii_case("not") => {
                    return Err(self.error_at(
                        token.span,
                        "\"not\" goes before a condition (not gender = \"F\"); the negated operators are written not_in, not_contains, not_exists, not_within_last",
                    ));
                }
                None => {
                    return Err(self.error_at(
                        token.span,
                        format!(
                            "unknown operator \"{}\" after {after}; {hint}",
                            unico_core::value::excerpt(word),
                        ),
                    ));
                }
            },
            other => {
                return Err(self.error_at(
                    token.span,
                    format!(
                        "expected an operator after {after}, found {}; {hint}",
                        other.describe(),
                    ),
                ));
            }
        };
        let mut end = token.span;
        let operand = match op {
            Op::Exists | Op::NotExists => Operand::None,
            Op::In | Op::NotIn => {
                let (values, close) = self.list(op)?;
                end = close;
                Operand::List(values)
            }
            Op::Between => {
                let (lo, hi) = self.range()?;
                end = scalar_span(&hi);
                Operand::Range(Box::new(lo), Box::new(hi))
            }
            Op::WithinLast | Op::NotWithinLast => {
                let (duration, span) = self.duration(op)?;
                end = span;
                Operand::Duration(duration, Loc::Text(span))
            }
            Op::Anniversary => {
                if self.eat_word("within") {
                    let (duration, span) = self.duration(op)?;
                    end = span;
                    Operand::Anniversary(Some((duration, Loc::Text(span))))
                } else {
                    Operand::Anniversary(None)
                }
            }
            _ => {
                let value = self.value()?;
                end = scalar_span(&value);
                Operand::Scalar(value)
            }
        };
        Ok((
            TestExpr {
                op,
                op_loc: Loc::Text(token.span),
                operand,
            },
            end,
        ))
    }

    /// `A and B` after `between`.
    fn range(&mut self) -> Result<(Scalar, Scalar), FilterError> {
        let lo = self.value()?;
        let and = self.advance();
        if !and.tok.is_word("and") {
            return Err(self.error_at(
                and.span,
                format!(
                    "expected \"and\" in \"between A and B\", found {}",
                    and.tok.describe()
                ),
            ));
        }
        let hi = self.value()?;
        Ok((lo, hi))
    }

    fn peek_at(&self, ahead: usize) -> &Token {
        &self.tokens[(self.pos + ahead).min(self.tokens.len() - 1)]
    }

    /// Whether the next token is a name: an identifier that is no keyword, or a backticked
    /// name. After a measure word it makes an event condition.
    fn name_follows(&self) -> bool {
        match &self.peek().tok {
            Tok::Word(w) => !is_keyword(w),
            Tok::Name(_) => true,
            _ => false,
        }
    }

    /// A name (event type, property, channel): an identifier that is no keyword, or
    /// backticked. `what` and `example` are for the message.
    fn name(&mut self, what: &str, example: &str) -> Result<(String, Span), FilterError> {
        let token = self.advance();
        match token.tok {
            Tok::Word(w) if !is_keyword(&w) => Ok((w, token.span)),
            Tok::Name(n) => Ok((n, token.span)),
            Tok::Word(w) => Err(self.error_at(
                token.span,
                format!(
                    "expected {what}, found the keyword \"{w}\"; a name like a keyword is written in backticks (`{w}`)"
                ),
            )),
            other => Err(self.error_at(
                token.span,
                format!("expected {what} ({example}), found {}", other.describe()),
            )),
        }
    }

    /// Expects the word `of` after `count` or `sum PROPERTY`.
    fn expect_of(&mut self, after: &str, example: &str) -> Result<(), FilterError> {
        let token = self.advance();
        if token.tok.is_word("of") {
            return Ok(());
        }
        Err(self.error_at(
            token.span,
            format!(
                "expected \"of\" after {after} ({example}), found {}",
                token.tok.describe()
            ),
        ))
    }

    /// An event condition, after its first word (one of [`MEASURE_WORDS`]).
    fn event(&mut self, word: &str, start: Span) -> Result<(EventExpr, Span), FilterError> {
        let lower = word.to_ascii_lowercase();
        let head = if let Some(which) = Which::from_name(&lower) {
            Head::Time(which)
        } else if let Some(agg) = Agg::from_name(&lower) {
            let property = self.aggregate_property(agg)?;
            Head::Aggregate { agg, property }
        } else {
            Head::Occurred {
                negated: lower == "did_not",
            }
        };
        let kind = match head {
            Head::Occurred { .. } => EventKind::Occurred,
            Head::Aggregate { .. } => EventKind::Aggregate,
            Head::Time(_) => EventKind::Time,
        };
        let (event, event_span) = self.name("an event type", "did purchase")?;
        let mut end = event_span;
        let mut options = EventOptions::default();
        self.event_options(kind, &mut options, &mut end)?;
        // What the test follows, for messages: `sum amount of purchase`.
        let event_text = unico_core::value::excerpt(&event);
        let measure = match head {
            Head::Occurred { negated } => MeasureExpr::Occurred {
                negated,
                count: options.count.take(),
            },
            Head::Aggregate { agg, property } => {
                let after = match &property {
                    Some((p, _)) => {
                        format!("{lower} {} of {event_text}", unico_core::value::excerpt(p))
                    }
                    None => format!("{lower} of {event_text}"),
                };
                let (test, test_end) = self.test(&after, AGGREGATE_HINT)?;
                if let Operand::Range(lo, hi) = &test.operand {
                    self.refuse_mixed_bounds(lo, hi, true)?;
                }
                end = test_end;
                MeasureExpr::Aggregate {
                    agg,
                    agg_loc: Loc::Text(start),
                    property,
                    test,
                }
            }
            Head::Time(which) => {
                let (test, test_end) = self.test(&format!("{lower} {event_text}"), TIME_HINT)?;
                end = test_end;
                MeasureExpr::Time { which, test }
            }
        };
        self.refuse_late_options(kind)?;
        Ok((
            EventExpr {
                event,
                event_loc: Loc::Text(event_span),
                channel: options.channel,
                window: options.window,
                wheres: options.wheres.unwrap_or_default(),
                measure,
            },
            start.to(end),
        ))
    }

    /// What follows an aggregate's word up to the event type: `of` for `count`,
    /// `PROPERTY of` for the others. Returns the property.
    fn aggregate_property(&mut self, agg: Agg) -> Result<Option<(String, Loc)>, FilterError> {
        let word = agg.name();
        if agg == Agg::Count {
            // `count amount of purchase`: a property where none goes.
            if self.peek_at(1).tok.is_word("of") && !self.peek().tok.is_word("of") {
                let token = self.peek().clone();
                return Err(self.error_at(
                    token.span,
                    "count counts events and takes no property; write count of purchase >= 3, or sum amount of purchase to add a property up",
                ));
            }
            self.expect_of("count", "count of purchase >= 3")?;
            return Ok(None);
        }
        let example = format!("{word} amount of purchase > 500");
        // `sum of purchase`: the property is missing (a property named `of` is still
        // written `sum of of purchase`).
        if self.peek().tok.is_word("of") && !self.peek_at(1).tok.is_word("of") {
            let token = self.peek().clone();
            return Err(self.error_at(
                token.span,
                format!(
                    "{word} needs the number property to aggregate; write it before of: {example}"
                ),
            ));
        }
        let (property, span) = self.name("a property name", &example)?;
        self.expect_of(
            &format!("{word} {}", unico_core::value::excerpt(&property)),
            &example,
        )?;
        Ok(Some((property, Loc::Text(span))))
    }

    /// The options (`on`, `where`, a count, a window), each at most once, in any order.
    /// Stops before the first token that is none (the test, or what follows the
    /// condition).
    fn event_options(
        &mut self,
        kind: EventKind,
        options: &mut EventOptions,
        end: &mut Span,
    ) -> Result<(), FilterError> {
        loop {
            let token = self.peek().clone();
            let Tok::Word(word) = &token.tok else {
                return Ok(());
            };
            let word = word.to_ascii_lowercase();
            match word.as_str() {
                "on" => {
                    // `last app_open on "2024-05-01"` is the test of a time.
                    if kind == EventKind::Time && matches!(self.peek_at(1).tok, Tok::Str(_)) {
                        return Ok(());
                    }
                    if options.channel.is_some() {
                        return Err(self.repeated(token.span, "on (the channel)"));
                    }
                    self.advance();
                    let (channel, span) = self.name("a channel name", "on web")?;
                    options.channel = Some((channel, Loc::Text(span)));
                    *end = span;
                }
                "where" => {
                    if options.wheres.is_some() {
                        return Err(self.error_at(
                            token.span,
                            "where is given twice in one event condition; join its property conditions with and in parentheses: where (amount > 100 and currency = \"EUR\")",
                        ));
                    }
                    self.advance();
                    let (wheres, span) = self.where_clause()?;
                    options.wheres = Some(wheres);
                    *end = span;
                }
                "at_least" | "at_most" | "exactly" => {
                    if kind != EventKind::Occurred {
                        return Err(self.error_at(
                            token.span,
                            format!("a count bound ({word}) goes with did and did_not (did purchase at_least 3 times); an aggregate compares the count itself: count of purchase >= 3"),
                        ));
                    }
                    if options.count.is_some() {
                        return Err(self.repeated(token.span, "a count bound"));
                    }
                    self.advance();
                    let op = match word.as_str() {
                        "at_least" => CountOp::AtLeast,
                        "at_most" => CountOp::AtMost,
                        _ => CountOp::Exactly,
                    };
                    let (n, span) = self.count(&word)?;
                    options.count = Some((op, n, Loc::Text(token.span)));
                    *end = span;
                }
                "within_last" | "between" | "ever" => {
                    if kind == EventKind::Time {
                        if word == "ever" {
                            return Err(self.error_at(token.span, WINDOW_ON_TIME));
                        }
                        // The time's own test.
                        return Ok(());
                    }
                    // In an aggregate, `between` and a number is the test.
                    if kind == EventKind::Aggregate
                        && word == "between"
                        && matches!(self.peek_at(1).tok, Tok::Number(_))
                    {
                        return Ok(());
                    }
                    if options.window.is_some() {
                        return Err(self.repeated(token.span, "a window"));
                    }
                    self.advance();
                    let window = match word.as_str() {
                        "ever" => {
                            *end = token.span;
                            EventWindow::Ever
                        }
                        "within_last" => {
                            let (d, span) = self.duration(Op::WithinLast)?;
                            *end = span;
                            EventWindow::Last(d)
                        }
                        _ => {
                            let (lo, hi) = self.range()?;
                            self.refuse_mixed_bounds(&lo, &hi, false)?;
                            *end = scalar_span(&hi);
                            EventWindow::Between(Box::new(lo), Box::new(hi))
                        }
                    };
                    options.window = Some((window, Loc::Text(token.span)));
                }
                _ => return Ok(()),
            }
        }
    }

    fn repeated(&self, span: Span, what: &str) -> FilterError {
        self.error_at(
            span,
            format!("{what} is given twice in one event condition; each option (on, where, a count bound, a window) is given at most once"),
        )
    }

    /// `between` in an event condition is a window (two times) or, in an aggregate, a test
    /// of the number (two numbers); a bound of one kind next to one of the other is refused
    /// here, where the message can say why.
    fn refuse_mixed_bounds(&self, lo: &Scalar, hi: &Scalar, test: bool) -> Result<(), FilterError> {
        let number = |s: &Scalar| matches!(s.kind, ScalarKind::Number(_));
        let relative = |s: &Scalar| matches!(s.kind, ScalarKind::Relative(_));
        let at = if test {
            // A number test: a string may hold a number, a relative time never does.
            [lo, hi].into_iter().find(|s| relative(s))
        } else {
            [lo, hi].into_iter().find(|s| number(s))
        };
        let Some(at) = at else {
            return Ok(());
        };
        let message = if test {
            "mixed bounds in between; a test of an aggregate is between two numbers (sum amount of purchase between 100 and 500), a window between two times, before the test (between \"2024-01-01\" and 7d ago)"
        } else {
            "mixed bounds in between; a window is between two times, each a date-time in double quotes or a relative time (between \"2024-01-01\" and 7d ago), and a bare number is not a time in the text form"
        };
        Err(self.error_at(scalar_span(at), message))
    }

    /// After the test of an aggregate or a time: an option here came too late.
    fn refuse_late_options(&self, kind: EventKind) -> Result<(), FilterError> {
        let token = self.peek();
        let Tok::Word(word) = &token.tok else {
            return Ok(());
        };
        let word = word.to_ascii_lowercase();
        let window_or_test = [
            "within_last",
            "not_within_last",
            "between",
            "ever",
            "before",
            "after",
            "on",
        ];
        if kind == EventKind::Time && window_or_test.contains(&word.as_str()) {
            return Err(self.error_at(token.span, WINDOW_ON_TIME));
        }
        let options = [
            "on",
            "where",
            "within_last",
            "between",
            "ever",
            "at_least",
            "at_most",
            "exactly",
        ];
        if options.contains(&word.as_str()) {
            return Err(self.error_at(
                token.span,
                format!("\"{word}\" after the test; the options of an event condition go before its test: sum amount of purchase on web within_last 365d > 500"),
            ));
        }
        Ok(())
    }

    /// The number of `at_least N times` (and the optional `time`/`times`).
    fn count(&mut self, word: &str) -> Result<(u32, Span), FilterError> {
        let token = self.advance();
        let n = match &token.tok {
            Tok::Number(text) if text.bytes().all(|b| b.is_ascii_digit()) => {
                text.parse::<u32>().ok().filter(|n| *n <= MAX_EVENT_COUNT)
            }
            _ => None,
        };
        let Some(n) = n else {
            return Err(self.error_at(
                token.span,
                format!(
                    "expected a whole number of times from 0 to {MAX_EVENT_COUNT} after {word} ({word} 3 times), found {}",
                    token.tok.describe()
                ),
            ));
        };
        let mut end = token.span;
        if self.peek().tok.is_word("time") || self.peek().tok.is_word("times") {
            end = self.advance().span;
        }
        Ok((n, end))
    }

    /// `where amount > 100` or `where (amount > 100 and currency = "EUR")`.
    fn where_clause(&mut self) -> Result<(Vec<Condition>, Span), FilterError> {
        if self.peek().tok != Tok::LParen {
            let (condition, span) = self.property_test()?;
            return Ok((vec![condition], span));
        }
        let open = self.advance();
        let mut wheres = Vec::new();
        loop {
            let (condition, _) = self.property_test()?;
            wheres.push(condition);
            let next = self.advance();
            match &next.tok {
                Tok::RParen => return Ok((wheres, next.span)),
                t if t.is_word("and") => {}
                t if t.is_word("or") => {
                    return Err(self.error_at(
                        next.span,
                        "only and joins the property conditions of a where; for one or another, write two event conditions joined by or",
                    ));
                }
                other => {
                    let opened = text_location(self.src, open.span.start);
                    return Err(self.error_at(
                        next.span,
                        format!(
                            "expected and or \")\" to close the where's \"(\" at {opened}, found {}",
                            other.describe()
                        ),
                    ));
                }
            }
        }
    }

    /// A property and a test, as a field condition.
    fn property_test(&mut self) -> Result<(Condition, Span), FilterError> {
        let (property, span) = self.name("a property name", "where amount > 100")?;
        let after = format!("property \"{}\"", unico_core::value::excerpt(&property));
        let (test, end) = self.test(&after, PROPERTY_HINT)?;
        Ok((
            Condition {
                field: property,
                field_loc: Loc::Text(span),
                op: test.op,
                op_loc: test.op_loc,
                operand: test.operand,
            },
            span.to(end),
        ))
    }

    fn list(&mut self, op: Op) -> Result<(Vec<Scalar>, Span), FilterError> {
        let open = self.advance();
        if open.tok != Tok::LParen {
            return Err(self.error_at(
                open.span,
                format!(
                    "expected \"(\" after {}, as in {} (\"gold\", \"platinum\")",
                    op.name(),
                    op.name()
                ),
            ));
        }
        let mut values = Vec::new();
        loop {
            if values.len() == MAX_IN_VALUES {
                let at = self.peek().span;
                return Err(FilterError::new(
                    ErrorKind::ListTooLong,
                    text_location(self.src, at.start),
                ));
            }
            values.push(self.value()?);
            let next = self.advance();
            match next.tok {
                Tok::Comma => {}
                Tok::RParen => return Ok((values, next.span)),
                other => {
                    return Err(self.error_at(
                        next.span,
                        format!(
                            "expected \",\" or \")\" in the {} list, found {}",
                            op.name(),
                            other.describe()
                        ),
                    ));
                }
            }
        }
    }

    fn duration(&mut self, op: Op) -> Result<(Duration, Span), FilterError> {
        let token = self.advance();
        match token.tok {
            Tok::Duration(d) => Ok((d, token.span)),
            other => Err(self.error_at(
                token.span,
                format!(
                    "expected a duration after {} (such as 30d, with a unit m, h, d or w), found {}",
                    if op == Op::Anniversary {
                        "anniversary within"
                    } else {
                        op.name()
                    },
                    other.describe()
                ),
            )),
        }
    }

    fn value(&mut self) -> Result<Scalar, FilterError> {
        let token = self.advance();
        let kind = match token.tok {
            Tok::Str(s) => ScalarKind::String(s),
            Tok::Number(n) => ScalarKind::Number(n),
            Tok::Duration(duration) => {
                let direction = if self.eat_word("ago") {
                    Direction::Ago
                } else if self.peek().tok.is_word("from") {
                    self.advance();
                    let now = self.advance();
                    if !now.tok.is_word("now") {
                        return Err(self.error_at(
                            now.span,
                            format!(
                                "expected \"now\" after \"{duration} from\", found {}",
                                now.tok.describe()
                            ),
                        ));
                    }
                    Direction::FromNow
                } else {
                    let next = self.peek();
                    return Err(self.error_at(
                        next.span,
                        format!(
                            "expected \"ago\" or \"from now\" after {duration} (such as {duration} ago or {duration} from now), found {}",
                            next.tok.describe()
                        ),
                    ));
                };
                let end = self.tokens[self.pos.saturating_sub(1)].span;
                return Ok(Scalar {
                    kind: ScalarKind::Relative(Relative {
                        duration,
                        direction,
                    }),
                    loc: Loc::Text(token.span.to(end)),
                });
            }
            Tok::Word(word) => {
                return Err(self.error_at(
                    token.span,
                    format!(
                        "expected a value, found \"{0}\"; strings are written in double quotes (\"{0}\")",
                        unico_core::value::excerpt(&word)
                    ),
                ));
            }
            other => {
                return Err(self.error_at(
                    token.span,
                    format!(
                        "expected a value (a string in double quotes, a number, or a relative time such as 90d ago), found {}",
                        other.describe()
                    ),
                ));
            }
        };
        Ok(Scalar {
            kind,
            loc: Loc::Text(token.span),
        })
    }
}

/// The words of an event condition before its event type.
enum Head {
    Occurred {
        negated: bool,
    },
    Aggregate {
        agg: Agg,
        property: Option<(String, Loc)>,
    },
    Time(Which),
}

/// What an event condition measures, which decides the options and test it takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum EventKind {
    Occurred,
    Aggregate,
    Time,
}

/// The options of an event condition read so far.
#[derive(Default)]
struct EventOptions {
    channel: Option<(String, Loc)>,
    wheres: Option<Vec<Condition>>,
    count: Option<(CountOp, u32, Loc)>,
    window: Option<(EventWindow, Loc)>,
}

const WINDOW_ON_TIME: &str = "first and last take no window and a single test; the operator compares the time itself, as in last app_open before 30d ago or first purchase within_last 7d";

const AGGREGATE_HINT: &str =
    "an aggregate is compared with = != < <= > >= in not_in between (sum amount of purchase > 500)";

const TIME_HINT: &str = "a first or last time is compared with before after between within_last not_within_last on (last app_open before 30d ago)";

const PROPERTY_HINT: &str = "property operators: = != < <= > >= in not_in between contains not_contains starts_with ends_with exists not_exists";

const OPERATORS_HINT: &str = "operators: = != < <= > >= in not_in between contains not_contains starts_with ends_with exists not_exists before after within_last not_within_last on anniversary";

fn span_of(expr: &Expr) -> Span {
    match &expr.loc {
        Loc::Text(span) => *span,
        Loc::Json(_) => Span::new(0, 0),
    }
}

fn scalar_span(scalar: &Scalar) -> Span {
    match &scalar.loc {
        Loc::Text(span) => *span,
        Loc::Json(_) => Span::new(0, 0),
    }
}
