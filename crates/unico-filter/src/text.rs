//! The text form: a hand-written lexer and a recursive-descent parser into [`Ast`].
//!
//! The grammar is in the crate docs. Recursion happens only on parentheses and `not`, and
//! both are counted before the parser goes one level deeper, so hostile input such as a
//! million `(` ends in an error, never in a stack overflow.

use crate::ast::{
    Ast, Condition, Direction, Duration, Expr, ExprKind, Loc, Op, Operand, Relative, Scalar,
    ScalarKind, Span, Unit, text_location,
};
use crate::error::{ErrorKind, FilterError, Location};
use crate::limits::{MAX_DEPTH, MAX_FILTER_BYTES, MAX_IN_VALUES};

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
                            "unknown operator \"{}\" after field \"{}\"; {}",
                            unico_core::value::excerpt(word),
                            unico_core::value::excerpt(&field),
                            OPERATORS_HINT
                        ),
                    ));
                }
            },
            other => {
                return Err(self.error_at(
                    token.span,
                    format!(
                        "expected an operator after field \"{}\", found {}; {}",
                        unico_core::value::excerpt(&field),
                        other.describe(),
                        OPERATORS_HINT
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
            Condition {
                field,
                field_loc: Loc::Text(field_span),
                op,
                op_loc: Loc::Text(token.span),
                operand,
            },
            field_span.to(end),
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
