//! The recursive-descent parser and type checker.
//!
//! Prometheus 2.42 uses a yacc grammar (`generated_parser.y`) plus a type
//! checking pass (`checkAST` in `parse.go`). This parser accepts the same
//! language with the same operator precedence, and reports the same first
//! error: syntax errors name the construct yacc's error recovery would have
//! named, semantic errors raised by grammar actions (unknown function, bad
//! offset, ...) win over later ones, and type errors are only reported when
//! the whole query parsed, in `checkAST`'s traversal order.
//!
//! It knows nothing of evaluation.

// Nodes stay boxed on purpose, also where clippy would unbox them: see
// `PResult`.
#![allow(clippy::boxed_local, clippy::vec_box)]

use crate::model::{METRIC_NAME, MatchOp, Matcher, MatcherError};

use super::ast::{
    AggOp, Aggregate, AtModifier, BinOp, Binary, Call, Cardinality, Expr, MatrixSelector, Subquery,
    ValueType, VectorMatching, VectorSelector,
};
use super::functions::get_function;
use super::lexer::{Kind, Lexer, Token, is_label};
use super::quote::{go_quote, parse_duration, unquote};

/// The deepest nesting accepted, counting both parser recursion and tree
/// depth. Deeper queries get an error instead of risking the stack of a
/// 2 MiB thread (the parser, printer and engine all recurse).
pub const MAX_DEPTH: usize = 256;

/// A parse or type error, positioned in the query.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{line}:{col}: parse error: {msg}")]
pub struct ParseError {
    /// Byte offset where the offending part starts.
    pub pos_start: usize,
    /// Byte offset where it ends.
    pub pos_end: usize,
    pub msg: String,
    /// 1-based line of `pos_start`.
    pub line: usize,
    /// 1-based column of `pos_start`, in bytes.
    pub col: usize,
}

impl ParseError {
    fn new_unboxed(pos_start: usize, pos_end: usize, msg: impl Into<String>) -> ParseError {
        ParseError {
            pos_start,
            pos_end: pos_end.max(pos_start),
            msg: msg.into(),
            line: 1,
            col: pos_start + 1,
        }
    }

    /// Fills in line and column as Prometheus's `ParseErr.Error()` does.
    fn locate(self: Box<Self>, input: &str) -> ParseError {
        let mut this = *self;
        let pos = this.pos_start.min(input.len());
        let before = &input.as_bytes()[..pos];
        this.line = 1 + before.iter().filter(|&&b| b == b'\n').count();
        this.col = match before.iter().rposition(|&b| b == b'\n') {
            Some(i) => pos - i,
            None => pos + 1,
        };
        this
    }
}

// Errors and nodes travel boxed: debug builds give every temporary its own
// stack slot, and small results keep deep recursion within a 2 MiB stack.
type PResult<T> = Result<T, Box<ParseError>>;

fn perr(pos_start: usize, pos_end: usize, msg: impl Into<String>) -> Box<ParseError> {
    Box::new(ParseError::new_unboxed(pos_start, pos_end, msg))
}

/// Parses a PromQL expression and type-checks it.
///
/// ```
/// use raymon::promql::parser::{parse_expr, Expr};
/// let e = parse_expr("sum by (job) (rate(http_requests_total[5m]))").unwrap();
/// assert!(matches!(e, Expr::Aggregate(_)));
/// assert_eq!(e.to_string(), "sum by (job) (rate(http_requests_total[5m]))");
/// let err = parse_expr("foo{").unwrap_err();
/// assert_eq!(err.to_string(), "1:5: parse error: unexpected end of input inside braces");
/// ```
pub fn parse_expr(input: &str) -> Result<Expr, ParseError> {
    let mut p = Parser::new(input);
    p.parse_top().map_err(|e| e.locate(input))
}

/// Parses a series selector such as `up{job="ray"}` (the `match[]` parameter
/// of the HTTP API) into its matchers. The `__name__` matcher for a metric
/// name comes last. No type checks are made, so `{}` is accepted.
pub fn parse_metric_selector(input: &str) -> Result<Vec<Matcher>, ParseError> {
    let mut p = Parser::new(input);
    p.parse_selector_top().map_err(|e| e.locate(input))
}

/// A parsed expression with what type checking needs.
struct Node {
    expr: Expr,
    start: usize,
    end: usize,
    depth: usize,
    /// The first type error in this subtree, in `checkAST` order.
    check: Option<Box<ParseError>>,
}

/// The modifiers between a binary operator and its right-hand side.
struct BinMods {
    return_bool: bool,
    on: bool,
    labels: Vec<String>,
    card: Cardinality,
    include: Vec<String>,
}

struct Parser<'a> {
    input: &'a str,
    lex: Lexer<'a>,
    /// Up to two tokens of lookahead.
    ahead: [Option<Token>; 2],
    /// How many aggregations are open; yacc's error recovery names the
    /// innermost open aggregation in otherwise generic syntax errors.
    agg_depth: usize,
    depth: usize,
}

fn binop(kind: Kind) -> Option<BinOp> {
    Some(match kind {
        Kind::Add => BinOp::Add,
        Kind::Sub => BinOp::Sub,
        Kind::Mul => BinOp::Mul,
        Kind::Div => BinOp::Div,
        Kind::Mod => BinOp::Mod,
        Kind::Pow => BinOp::Pow,
        Kind::Atan2 => BinOp::Atan2,
        Kind::Eqlc => BinOp::Eql,
        Kind::Neq => BinOp::Neq,
        Kind::Gtr => BinOp::Gtr,
        Kind::Lss => BinOp::Lss,
        Kind::Gte => BinOp::Gte,
        Kind::Lte => BinOp::Lte,
        Kind::Land => BinOp::And,
        Kind::Lor => BinOp::Or,
        Kind::Lunless => BinOp::Unless,
        _ => return None,
    })
}

fn aggop(kind: Kind) -> Option<AggOp> {
    Some(match kind {
        Kind::Sum => AggOp::Sum,
        Kind::Avg => AggOp::Avg,
        Kind::Count => AggOp::Count,
        Kind::Min => AggOp::Min,
        Kind::Max => AggOp::Max,
        Kind::Group => AggOp::Group,
        Kind::Stddev => AggOp::Stddev,
        Kind::Stdvar => AggOp::Stdvar,
        Kind::Topk => AggOp::Topk,
        Kind::Bottomk => AggOp::Bottomk,
        Kind::CountValues => AggOp::CountValues,
        Kind::Quantile => AggOp::Quantile,
        _ => return None,
    })
}

/// Tokens that may name a metric (`metric_identifier` in the grammar).
fn is_metric_identifier(kind: Kind) -> bool {
    kind.is_aggregator()
        || matches!(
            kind,
            Kind::Identifier
                | Kind::MetricIdentifier
                | Kind::By
                | Kind::Land
                | Kind::Lor
                | Kind::Lunless
                | Kind::Offset
                | Kind::Without
                | Kind::Start
                | Kind::End
        )
}

/// Tokens that may name a label in grouping clauses (`maybe_label`).
fn is_maybe_label(kind: Kind) -> bool {
    is_metric_identifier(kind)
        || matches!(
            kind,
            Kind::Bool
                | Kind::GroupLeft
                | Kind::GroupRight
                | Kind::Ignoring
                | Kind::On
                | Kind::Atan2
        )
}

/// Tokens that can start an expression.
fn starts_expr(kind: Kind) -> bool {
    is_metric_identifier(kind)
        || matches!(
            kind,
            Kind::Number | Kind::String | Kind::LeftParen | Kind::LeftBrace | Kind::Add | Kind::Sub
        )
}

/// Go's `%f` for the `@` bounds error.
fn go_fixed(v: f64) -> String {
    if v.is_nan() {
        "NaN".into()
    } else if v.is_infinite() {
        if v > 0.0 {
            "+Inf".into()
        } else {
            "-Inf".into()
        }
    } else {
        format!("{v:.6}")
    }
}

/// Go's `strconv.ParseInt(s, 0, 64)` for the unsigned forms the lexer emits.
fn go_parse_int(s: &str) -> Option<i64> {
    if let Some(hex) = s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
        return i64::from_str_radix(hex, 16)
            .ok()
            .filter(|_| !hex.is_empty());
    }
    if s.len() > 1 && s.starts_with('0') {
        return i64::from_str_radix(&s[1..], 8).ok();
    }
    if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) {
        return s.parse().ok();
    }
    None
}

/// Go's `strconv.ParseFloat(s, 64)`, with its error text.
fn go_parse_float(s: &str) -> Result<f64, String> {
    let syntax = || {
        format!(
            "strconv.ParseFloat: parsing {}: invalid syntax",
            go_quote(s)
        )
    };
    let lower = s.to_ascii_lowercase();
    let body = lower.trim_start_matches(['+', '-']);
    if matches!(body, "inf" | "infinity" | "nan") {
        return s.parse::<f64>().map_err(|_| syntax());
    }
    let plain = !body.is_empty()
        && body
            .bytes()
            .all(|b| b.is_ascii_digit() || matches!(b, b'.' | b'e' | b'+' | b'-'));
    if !plain {
        return Err(syntax());
    }
    match s.parse::<f64>() {
        Ok(v) if v.is_infinite() => Err(format!(
            "strconv.ParseFloat: parsing {}: value out of range",
            go_quote(s)
        )),
        Ok(v) => Ok(v),
        Err(_) => Err(syntax()),
    }
}

/// Describes a regex compile error the way Go's `regexp` words the common
/// cases (`missing closing )`, ...), quoting the anchored pattern as
/// Prometheus compiles it.
fn regex_error(err: &MatcherError) -> String {
    let MatcherError::Regex { pattern, source } = err;
    let anchored = format!("^(?:{pattern})$");
    let text = source.to_string();
    let lines: Vec<&str> = text.lines().collect();
    let reason = lines
        .iter()
        .rev()
        .find_map(|l| l.trim().strip_prefix("error: "))
        .unwrap_or("invalid regular expression");
    // The crate prints the pattern on one line and a caret under the error.
    let caret = lines
        .iter()
        .position(|l| !l.trim().is_empty() && l.trim().chars().all(|c| c == '^'))
        .and_then(|i| {
            let pat_line = lines.get(i.checked_sub(1)?)?;
            let pat = pat_line.trim_start();
            let col = lines[i]
                .find('^')?
                .checked_sub(pat_line.len() - pat.len())?;
            pat.char_indices().nth(col).map(|(b, _)| &pat[b..])
        });
    let go = match reason {
        "unclosed group" => format!("missing closing ): `{anchored}`"),
        "unopened group" => format!("unexpected ): `{anchored}`"),
        "unclosed character class" => {
            format!("missing closing ]: `{}`", caret.unwrap_or(&anchored))
        }
        "repetition operator missing expression" => format!(
            "missing argument to repetition operator: `{}`",
            caret.and_then(|c| c.chars().next()).unwrap_or('*')
        ),
        other => format!("{other}: `{anchored}`"),
    };
    format!("error parsing regexp: {go}")
}

impl<'a> Parser<'a> {
    fn new(input: &'a str) -> Parser<'a> {
        Parser {
            input,
            lex: Lexer::new(input),
            ahead: [None, None],
            agg_depth: 0,
            depth: 0,
        }
    }

    fn lex_one(&mut self) -> PResult<Token> {
        let t = self.lex.next_token();
        if t.kind == Kind::Error {
            return Err(perr(t.start, self.input.len(), self.lex.error.clone()));
        }
        Ok(t)
    }

    fn peek(&mut self) -> PResult<Token> {
        if let Some(t) = self.ahead[0] {
            return Ok(t);
        }
        let t = self.lex_one()?;
        self.ahead[0] = Some(t);
        Ok(t)
    }

    fn peek2(&mut self) -> PResult<Token> {
        self.peek()?;
        if let Some(t) = self.ahead[1] {
            return Ok(t);
        }
        let t = self.lex_one()?;
        self.ahead[1] = Some(t);
        Ok(t)
    }

    fn next(&mut self) -> PResult<Token> {
        let t = self.peek()?;
        self.ahead = [self.ahead[1], None];
        Ok(t)
    }

    fn text(&self, t: Token) -> &'a str {
        t.text(self.input)
    }

    fn unexpected(&self, t: Token, context: &str, expected: &str) -> Box<ParseError> {
        let mut msg = format!("unexpected {}", t.describe(self.input));
        if !context.is_empty() {
            msg.push_str(" in ");
            msg.push_str(context);
        }
        if !expected.is_empty() {
            msg.push_str(", expected ");
            msg.push_str(expected);
        }
        perr(t.start, t.end, msg)
    }

    /// A syntax error with no rule of its own: yacc falls back to the
    /// innermost open aggregation, or to a bare "unexpected ...".
    fn generic(&self, t: Token) -> Box<ParseError> {
        if self.agg_depth > 0 {
            self.unexpected(t, "aggregation", "")
        } else {
            self.unexpected(t, "", "")
        }
    }

    fn enter(&mut self) -> PResult<()> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            let t = self.peek()?;
            return Err(perr(
                t.start,
                t.end,
                format!("expression nesting exceeds the maximum depth of {MAX_DEPTH}"),
            ));
        }
        Ok(())
    }

    fn node(
        &self,
        expr: Expr,
        start: usize,
        end: usize,
        depth: usize,
        check: Option<Box<ParseError>>,
    ) -> PResult<Box<Node>> {
        if depth > MAX_DEPTH {
            return Err(perr(
                start,
                end,
                format!("expression nesting exceeds the maximum depth of {MAX_DEPTH}"),
            ));
        }
        Ok(Box::new(Node {
            expr,
            start,
            end,
            depth,
            check,
        }))
    }

    fn parse_top(&mut self) -> PResult<Expr> {
        let t = self.peek()?;
        if t.kind == Kind::Eof {
            return Err(perr(0, 0, "no expression found in input"));
        }
        let node = self.parse_binary(0)?;
        let t = self.peek()?;
        if t.kind != Kind::Eof {
            return Err(self.generic(t));
        }
        match node.check {
            Some(e) => Err(e),
            None => Ok(node.expr),
        }
    }

    fn parse_selector_top(&mut self) -> PResult<Vec<Matcher>> {
        let t = self.peek()?;
        let node = if t.kind == Kind::LeftBrace {
            self.parse_selector(None)?
        } else if is_metric_identifier(t.kind) {
            self.next()?;
            self.parse_selector(Some(t))?
        } else {
            return Err(self.generic(t));
        };
        let t = self.peek()?;
        if t.kind != Kind::Eof {
            return Err(self.generic(t));
        }
        match node.expr {
            Expr::VectorSelector(vs) => Ok(vs.matchers),
            _ => Err(perr(0, 0, "expected a vector selector")),
        }
    }

    /// Precedence climbing over binary operators.
    fn parse_binary(&mut self, min_prec: u8) -> PResult<Box<Node>> {
        self.enter()?;
        let mut lhs = self.parse_unary()?;
        loop {
            let t = self.peek()?;
            let Some(op) = binop(t.kind) else { break };
            let prec = op.precedence();
            if prec < min_prec {
                break;
            }
            self.next()?;
            let mods = self.parse_bin_modifiers()?;
            let next_min = if op.is_right_assoc() { prec } else { prec + 1 };
            let rhs = self.parse_binary(next_min)?;
            lhs = self.make_binary(lhs, op, mods, rhs)?;
        }
        self.depth -= 1;
        Ok(lhs)
    }

    fn parse_unary(&mut self) -> PResult<Box<Node>> {
        let t = self.peek()?;
        if !matches!(t.kind, Kind::Add | Kind::Sub) {
            return self.parse_postfix();
        }
        self.next()?;
        let neg = t.kind == Kind::Sub;
        // Unary operators bind like `*`: only `^` and postfix modifiers bind
        // tighter, so `-x^2` is `-(x^2)`.
        let operand = self.parse_binary(BinOp::Pow.precedence())?;
        self.finish_unary(t, neg, operand)
    }

    #[inline(never)]
    fn finish_unary(&mut self, t: Token, neg: bool, operand: Box<Node>) -> PResult<Box<Node>> {
        if let Expr::NumberLiteral(v) = operand.expr {
            let v = if neg { -v } else { v };
            return self.node(Expr::NumberLiteral(v), t.start, operand.end, 1, None);
        }
        let ty = operand.expr.value_type();
        let check = operand.check.or_else(|| {
            (!matches!(ty, ValueType::Scalar | ValueType::Vector)).then(|| {
                perr(
                    t.start,
                    operand.end,
                    format!(
                        "unary expression only allowed on expressions of type scalar or instant vector, got {}",
                        go_quote(ty.documented())
                    ),
                )
            })
        });
        self.node(
            Expr::Unary {
                neg,
                expr: Box::new(operand.expr),
            },
            t.start,
            operand.end,
            operand.depth + 1,
            check,
        )
    }

    fn parse_postfix(&mut self) -> PResult<Box<Node>> {
        let mut node = self.parse_primary()?;
        loop {
            let t = self.peek()?;
            node = match t.kind {
                Kind::LeftBracket => {
                    self.next()?;
                    self.parse_range_or_subquery(node, t)?
                }
                Kind::Offset => {
                    self.next()?;
                    self.parse_offset(node)?
                }
                Kind::At => {
                    self.next()?;
                    self.parse_at(node)?
                }
                _ => return Ok(node),
            };
        }
    }

    fn parse_primary(&mut self) -> PResult<Box<Node>> {
        let t = self.peek()?;
        match t.kind {
            Kind::Number | Kind::String => self.parse_literal(t),
            Kind::LeftParen => {
                self.next()?;
                let inner = self.parse_binary(0)?;
                self.finish_paren(t, inner)
            }
            Kind::LeftBrace => self.parse_selector(None),
            Kind::Identifier if self.peek2()?.kind == Kind::LeftParen => {
                self.next()?;
                self.parse_call(t)
            }
            k if k.is_aggregator()
                && matches!(
                    self.peek2()?.kind,
                    Kind::LeftParen | Kind::By | Kind::Without
                ) =>
            {
                self.next()?;
                self.agg_depth += 1;
                let r = self.parse_aggregate(t);
                self.agg_depth -= 1;
                r
            }
            k if is_metric_identifier(k) => {
                self.next()?;
                self.parse_selector(Some(t))
            }
            _ => Err(self.generic(t)),
        }
    }

    #[inline(never)]
    fn parse_literal(&mut self, t: Token) -> PResult<Box<Node>> {
        self.next()?;
        let expr = if t.kind == Kind::Number {
            Expr::NumberLiteral(self.number(t)?)
        } else {
            Expr::StringLiteral(self.unquote(t)?)
        };
        self.node(expr, t.start, t.end, 1, None)
    }

    #[inline(never)]
    fn finish_paren(&mut self, open: Token, inner: Box<Node>) -> PResult<Box<Node>> {
        let close = self.next()?;
        if close.kind != Kind::RightParen {
            return Err(self.generic(close));
        }
        let Node {
            expr, depth, check, ..
        } = *inner;
        self.node(
            Expr::Paren(Box::new(expr)),
            open.start,
            close.end,
            depth + 1,
            check,
        )
    }

    fn number(&self, t: Token) -> PResult<f64> {
        let s = self.text(t);
        if let Some(v) = go_parse_int(s) {
            return Ok(v as f64);
        }
        go_parse_float(s).map_err(|e| perr(t.start, t.end, format!("error parsing number: {e}")))
    }

    fn unquote(&self, t: Token) -> PResult<String> {
        let s = self.text(t);
        unquote(s).map_err(|e| {
            perr(
                t.start,
                t.end,
                format!("error unquoting string {}: {e}", go_quote(s)),
            )
        })
    }

    fn duration(&self, t: Token) -> PResult<i64> {
        match parse_duration(self.text(t)) {
            Ok(0) => Err(perr(t.start, t.end, "duration must be greater than 0")),
            Ok(d) => Ok(d),
            Err(e) => Err(perr(t.start, t.end, e)),
        }
    }

    /// A vector selector; `name` is the already consumed metric name token.
    #[inline(never)]
    fn parse_selector(&mut self, name: Option<Token>) -> PResult<Box<Node>> {
        let (start, mut end) = match name {
            Some(n) => (n.start, n.end),
            None => {
                let t = self.peek()?;
                (t.start, t.end)
            }
        };
        let mut matchers = Vec::new();
        if self.peek()?.kind == Kind::LeftBrace {
            self.next()?;
            let (m, close) = self.parse_label_matchers()?;
            matchers = m;
            end = close;
        }
        let name = name.map(|n| self.text(n).to_string());
        let mut check = None;
        if let Some(name) = &name {
            if let Some(m) = matchers.iter().find(|m| m.name == METRIC_NAME) {
                check = Some(perr(
                    start,
                    end,
                    format!(
                        "metric name must not be set twice: {} or {}",
                        go_quote(name),
                        go_quote(&m.value)
                    ),
                ));
            }
            matchers.push(Matcher::equal(METRIC_NAME, name.clone()));
        } else if matchers.iter().all(|m| m.matches_empty()) {
            check = Some(perr(
                start,
                end,
                "vector selector must contain at least one non-empty matcher",
            ));
        }
        let vs = VectorSelector {
            name,
            matchers,
            offset: 0,
            at: None,
        };
        self.node(Expr::VectorSelector(vs), start, end, 1, check)
    }

    /// Label matchers after `{`; returns them and the end of `}`.
    fn parse_label_matchers(&mut self) -> PResult<(Vec<Matcher>, usize)> {
        let mut out = Vec::new();
        loop {
            let t = self.next()?;
            if t.kind == Kind::RightBrace {
                return Ok((out, t.end));
            }
            if t.kind != Kind::Identifier {
                return Err(self.unexpected(t, "label matching", "identifier or \"}\""));
            }
            let op = self.next()?;
            let mop = match op.kind {
                Kind::Eql => MatchOp::Equal,
                Kind::Neq => MatchOp::NotEqual,
                Kind::EqlRegex => MatchOp::Regex,
                Kind::NeqRegex => MatchOp::NotRegex,
                _ => return Err(self.unexpected(op, "label matching", "label matching operator")),
            };
            let v = self.next()?;
            if v.kind != Kind::String {
                return Err(self.unexpected(v, "label matching", "string"));
            }
            let value = self.unquote(v)?;
            let m = super::matcher_cache::matcher(mop, self.text(t), value)
                .map_err(|e| perr(t.start, v.end, regex_error(&e)))?;
            out.push(m);
            let sep = self.next()?;
            match sep.kind {
                Kind::Comma => {}
                Kind::RightBrace => return Ok((out, sep.end)),
                _ => return Err(self.unexpected(sep, "label matching", "\",\" or \"}\"")),
            }
        }
    }

    /// `(label, ...)` after `by`, `without`, `on`, `ignoring` or `group_x`.
    fn parse_grouping_labels(&mut self) -> PResult<(Vec<String>, usize)> {
        let open = self.next()?;
        if open.kind != Kind::LeftParen {
            return Err(self.unexpected(open, "grouping opts", "\"(\""));
        }
        let mut labels = Vec::new();
        loop {
            let t = self.next()?;
            if t.kind == Kind::RightParen {
                return Ok((labels, t.end));
            }
            if !is_maybe_label(t.kind) || !is_label(self.text(t)) {
                return Err(self.unexpected(t, "grouping opts", "label"));
            }
            labels.push(self.text(t).to_string());
            let sep = self.next()?;
            match sep.kind {
                Kind::Comma => {}
                Kind::RightParen => return Ok((labels, sep.end)),
                _ => return Err(self.unexpected(sep, "grouping opts", "\",\" or \")\"")),
            }
        }
    }

    /// Function call arguments after `(`; returns them and the closing `)`.
    fn parse_call_args(&mut self) -> PResult<(Vec<Box<Node>>, Token)> {
        let t = self.peek()?;
        if t.kind == Kind::RightParen {
            self.next()?;
            return Ok((Vec::new(), t));
        }
        let mut args = Vec::new();
        loop {
            args.push(self.parse_binary(0)?);
            let t = self.next()?;
            match t.kind {
                Kind::RightParen => return Ok((args, t)),
                Kind::Comma => {
                    if !starts_expr(self.peek()?.kind) {
                        return Err(perr(
                            t.start,
                            t.end,
                            "trailing commas not allowed in function call args",
                        ));
                    }
                }
                _ => return Err(self.generic(t)),
            }
        }
    }

    fn parse_call(&mut self, name: Token) -> PResult<Box<Node>> {
        // The `(` was checked by the caller.
        self.next()?;
        let (args, close) = self.parse_call_args()?;
        self.finish_call(name, args, close)
    }

    #[inline(never)]
    fn finish_call(
        &mut self,
        name: Token,
        args: Vec<Box<Node>>,
        close: Token,
    ) -> PResult<Box<Node>> {
        let fname = self.text(name);
        let Some(func) = get_function(fname) else {
            return Err(perr(
                name.start,
                name.end,
                format!("unknown function with name {}", go_quote(fname)),
            ));
        };
        let (start, end) = (name.start, close.end);
        let nargs = func.arg_types.len();
        let count_err = if func.variadic == 0 {
            (nargs != args.len()).then(|| {
                format!(
                    "expected {} argument(s) in call to {}, got {}",
                    nargs,
                    go_quote(func.name),
                    args.len()
                )
            })
        } else {
            let na = nargs.saturating_sub(1);
            if na > args.len() {
                Some(format!(
                    "expected at least {} argument(s) in call to {}, got {}",
                    na,
                    go_quote(func.name),
                    args.len()
                ))
            } else {
                let max = na + func.variadic.max(0) as usize;
                (func.variadic > 0 && max < args.len()).then(|| {
                    format!(
                        "expected at most {} argument(s) in call to {}, got {}",
                        max,
                        go_quote(func.name),
                        args.len()
                    )
                })
            }
        };
        let mut check = count_err.map(|m| perr(start, end, m));
        let context = format!("call to function {}", go_quote(func.name));
        for (i, arg) in args.iter().enumerate() {
            if check.is_some() {
                break;
            }
            let want = match func.arg_types.get(i) {
                Some(t) => *t,
                None if func.variadic == 0 || nargs == 0 => break,
                None => func.arg_types[nargs - 1],
            };
            check = arg
                .check
                .clone()
                .or_else(|| expect_type(arg, want, &context));
        }
        let depth = 1 + args.iter().map(|a| a.depth).max().unwrap_or(0);
        let call = Call {
            func,
            args: args.into_iter().map(|a| a.expr).collect(),
        };
        self.node(Expr::Call(call), start, end, depth, check)
    }

    fn parse_aggregate(&mut self, op_tok: Token) -> PResult<Box<Node>> {
        let op = aggop(op_tok.kind).ok_or_else(|| self.generic(op_tok))?;
        let mut grouping = Vec::new();
        let mut without = false;
        let modifier_first = matches!(self.peek()?.kind, Kind::By | Kind::Without);
        if modifier_first {
            without = self.next()?.kind == Kind::Without;
            grouping = self.parse_grouping_labels()?.0;
        }
        let open = self.next()?;
        if open.kind != Kind::LeftParen {
            return Err(self.generic(open));
        }
        let (args, close) = self.parse_call_args()?;
        self.finish_aggregate(op_tok, op, grouping, without, modifier_first, args, close)
    }

    #[allow(clippy::too_many_arguments)]
    #[inline(never)]
    fn finish_aggregate(
        &mut self,
        op_tok: Token,
        op: AggOp,
        mut grouping: Vec<String>,
        mut without: bool,
        modifier_first: bool,
        mut args: Vec<Box<Node>>,
        close: Token,
    ) -> PResult<Box<Node>> {
        let mut end = close.end;
        if !modifier_first && matches!(self.peek()?.kind, Kind::By | Kind::Without) {
            without = self.next()?.kind == Kind::Without;
            let (g, gend) = self.parse_grouping_labels()?;
            grouping = g;
            end = gend;
        }
        let start = op_tok.start;
        if args.is_empty() {
            return Err(perr(
                start,
                end,
                "no arguments for aggregate expression provided",
            ));
        }
        let desired = if op.has_param() { 2 } else { 1 };
        if args.len() != desired {
            return Err(perr(
                start,
                end,
                format!(
                    "wrong number of arguments for aggregate expression provided, expected {desired}, got {}",
                    args.len()
                ),
            ));
        }
        let expr = args.pop().ok_or_else(|| self.generic(op_tok))?;
        let param = args.pop();
        let mut check = expr
            .check
            .clone()
            .or_else(|| expect_type(&expr, ValueType::Vector, "aggregation expression"));
        if let Some(p) = &param {
            let want = match op {
                AggOp::CountValues => Some(ValueType::String),
                AggOp::Topk | AggOp::Bottomk | AggOp::Quantile => Some(ValueType::Scalar),
                _ => None,
            };
            if check.is_none() {
                check = p
                    .check
                    .clone()
                    .or_else(|| want.and_then(|w| expect_type(p, w, "aggregation parameter")));
            }
        }
        let depth = 1 + expr.depth.max(param.as_ref().map_or(0, |p| p.depth));
        let agg = Aggregate {
            op,
            expr: Box::new(expr.expr),
            param: param.map(|p| Box::new(p.expr)),
            grouping,
            without,
        };
        self.node(Expr::Aggregate(agg), start, end, depth, check)
    }

    #[inline(never)]
    fn parse_bin_modifiers(&mut self) -> PResult<BinMods> {
        let mut mods = BinMods {
            return_bool: false,
            on: false,
            labels: Vec::new(),
            card: Cardinality::OneToOne,
            include: Vec::new(),
        };
        if self.peek()?.kind == Kind::Bool {
            self.next()?;
            mods.return_bool = true;
        }
        let t = self.peek()?;
        if matches!(t.kind, Kind::On | Kind::Ignoring) {
            self.next()?;
            mods.on = t.kind == Kind::On;
            mods.labels = self.parse_grouping_labels()?.0;
            let g = self.peek()?;
            if matches!(g.kind, Kind::GroupLeft | Kind::GroupRight) {
                self.next()?;
                mods.card = if g.kind == Kind::GroupLeft {
                    Cardinality::ManyToOne
                } else {
                    Cardinality::OneToMany
                };
                if self.peek()?.kind == Kind::LeftParen {
                    mods.include = self.parse_grouping_labels()?.0;
                }
            }
        }
        Ok(mods)
    }

    #[inline(never)]
    fn make_binary(
        &self,
        lhs: Box<Node>,
        op: BinOp,
        mods: BinMods,
        rhs: Box<Node>,
    ) -> PResult<Box<Node>> {
        let lt = lhs.expr.value_type();
        let rt = rhs.expr.value_type();
        let start = lhs.start;
        let end = rhs.end;
        // Prometheus points operator errors at the operator: the text between
        // the operands, with surrounding whitespace removed.
        let op_start = {
            let bytes = self.input.as_bytes();
            let mut i = lhs.end;
            while i < rhs.start && matches!(bytes.get(i), Some(b' ' | b'\t' | b'\n' | b'\r')) {
                i += 1;
            }
            i
        };
        let at_op = |msg: String| perr(op_start, rhs.start, msg);
        let mut card = mods.card;
        if op.is_set() && card == Cardinality::OneToOne {
            card = Cardinality::ManyToMany;
        }
        let own = || -> Option<Box<ParseError>> {
            if mods.return_bool && !op.is_comparison() {
                return Some(at_op(
                    "bool modifier can only be used on comparison operators".into(),
                ));
            }
            if op.is_comparison()
                && !mods.return_bool
                && lt == ValueType::Scalar
                && rt == ValueType::Scalar
            {
                return Some(at_op(
                    "comparisons between scalars must use BOOL modifier".into(),
                ));
            }
            if mods.on {
                for l1 in &mods.labels {
                    if mods.include.contains(l1) {
                        return Some(at_op(format!(
                            "label {} must not occur in ON and GROUP clause at once",
                            go_quote(l1)
                        )));
                    }
                }
            }
            let only = "binary expression must contain only scalar and instant vector types";
            if !matches!(lt, ValueType::Scalar | ValueType::Vector) {
                return Some(perr(lhs.start, lhs.end, only));
            }
            if !matches!(rt, ValueType::Scalar | ValueType::Vector) {
                return Some(perr(rhs.start, rhs.end, only));
            }
            if lt != ValueType::Vector || rt != ValueType::Vector {
                if !mods.labels.is_empty() {
                    return Some(perr(
                        start,
                        end,
                        "vector matching only allowed between instant vectors",
                    ));
                }
            } else if op.is_set() {
                if matches!(card, Cardinality::OneToMany | Cardinality::ManyToOne) {
                    return Some(perr(
                        start,
                        end,
                        format!(
                            "no grouping allowed for {} operation",
                            go_quote(op.as_str())
                        ),
                    ));
                }
                if card != Cardinality::ManyToMany {
                    return Some(perr(
                        start,
                        end,
                        "set operations must always be many-to-many",
                    ));
                }
            }
            if (lt == ValueType::Scalar || rt == ValueType::Scalar) && op.is_set() {
                return Some(perr(
                    start,
                    end,
                    format!(
                        "set operator {} not allowed in binary scalar expression",
                        go_quote(op.as_str())
                    ),
                ));
            }
            None
        };
        let check = lhs.check.clone().or_else(|| rhs.check.clone()).or_else(own);
        let matching =
            (lt == ValueType::Vector && rt == ValueType::Vector).then(|| VectorMatching {
                card,
                on: mods.on,
                labels: mods.labels.clone(),
                include: mods.include.clone(),
            });
        let depth = 1 + lhs.depth.max(rhs.depth);
        let bin = Binary {
            op,
            lhs: Box::new(lhs.expr),
            rhs: Box::new(rhs.expr),
            matching,
            return_bool: mods.return_bool,
        };
        self.node(Expr::Binary(bin), start, end, depth, check)
    }

    #[inline(never)]
    fn parse_range_or_subquery(&mut self, node: Box<Node>, open: Token) -> PResult<Box<Node>> {
        let t = self.next()?;
        if t.kind != Kind::Duration {
            return Err(self.unexpected(t, "subquery selector", "duration"));
        }
        let range_ms = self.duration(t)?;
        let t = self.next()?;
        match t.kind {
            Kind::RightBracket => {
                let err = |msg: &str| perr(open.start, t.end, msg);
                let vs = match node.expr {
                    Expr::VectorSelector(vs) => vs,
                    _ => return Err(err("ranges only allowed for vector selectors")),
                };
                if vs.offset != 0 {
                    return Err(err("no offset modifiers allowed before range"));
                }
                if vs.at.is_some() {
                    return Err(err("no @ modifiers allowed before range"));
                }
                let ms = MatrixSelector { vs, range_ms };
                self.node(
                    Expr::MatrixSelector(ms),
                    node.start,
                    t.end,
                    node.depth,
                    node.check,
                )
            }
            Kind::Colon => {
                let t2 = self.next()?;
                let (step_ms, close) = match t2.kind {
                    Kind::RightBracket => (0, t2),
                    Kind::Duration => {
                        let step = self.duration(t2)?;
                        let t3 = self.next()?;
                        if t3.kind != Kind::RightBracket {
                            return Err(self.unexpected(t3, "subquery selector", "\"]\""));
                        }
                        (step, t3)
                    }
                    _ => {
                        return Err(self.unexpected(t2, "subquery selector", "duration or \"]\""));
                    }
                };
                let ty = node.expr.value_type();
                let check = node.check.or_else(|| {
                    (ty != ValueType::Vector).then(|| {
                        perr(
                            node.start,
                            close.end,
                            format!(
                                "subquery is only allowed on instant vector, got {} instead",
                                ty.as_str()
                            ),
                        )
                    })
                });
                let sq = Subquery {
                    expr: Box::new(node.expr),
                    range_ms,
                    step_ms,
                    offset: 0,
                    at: None,
                };
                self.node(
                    Expr::Subquery(sq),
                    node.start,
                    close.end,
                    node.depth + 1,
                    check,
                )
            }
            _ => Err(self.unexpected(t, "subquery or range", "\":\" or \"]\"")),
        }
    }

    #[inline(never)]
    fn parse_offset(&mut self, mut node: Box<Node>) -> PResult<Box<Node>> {
        let t = self.next()?;
        let (neg, dt) = match t.kind {
            Kind::Duration => (false, t),
            Kind::Sub => {
                let t2 = self.next()?;
                if t2.kind != Kind::Duration {
                    return Err(self.unexpected(t2, "offset", "duration"));
                }
                (true, t2)
            }
            _ => return Err(self.unexpected(t, "offset", "duration")),
        };
        let d = self.duration(dt)?;
        let offset = if neg { -d } else { d };
        let err = |msg: &str| perr(node.start, node.end, msg);
        let slot = match &mut node.expr {
            Expr::VectorSelector(vs) => &mut vs.offset,
            Expr::MatrixSelector(ms) => &mut ms.vs.offset,
            Expr::Subquery(sq) => &mut sq.offset,
            _ => {
                return Err(err(
                    "offset modifier must be preceded by an instant vector selector or range vector selector or a subquery",
                ));
            }
        };
        if *slot != 0 {
            return Err(err("offset may not be set multiple times"));
        }
        *slot = offset;
        node.end = dt.end;
        Ok(node)
    }

    #[inline(never)]
    fn parse_at(&mut self, mut node: Box<Node>) -> PResult<Box<Node>> {
        let t = self.next()?;
        let (at, end) = match t.kind {
            Kind::Number => {
                let v = self.number(t)?;
                (self.at_timestamp(&node, v)?, t.end)
            }
            Kind::Add | Kind::Sub => {
                let t2 = self.next()?;
                if t2.kind != Kind::Number {
                    return Err(self.unexpected(t2, "@", "timestamp"));
                }
                let v = self.number(t2)?;
                let v = if t.kind == Kind::Sub { -v } else { v };
                (self.at_timestamp(&node, v)?, t2.end)
            }
            Kind::Start | Kind::End => {
                let open = self.next()?;
                if open.kind != Kind::LeftParen {
                    return Err(self.unexpected(open, "@", "timestamp"));
                }
                let close = self.next()?;
                if close.kind != Kind::RightParen {
                    return Err(self.unexpected(close, "@", "timestamp"));
                }
                let at = if t.kind == Kind::Start {
                    AtModifier::Start
                } else {
                    AtModifier::End
                };
                (at, close.end)
            }
            _ => return Err(self.unexpected(t, "@", "timestamp")),
        };
        let err = |msg: &str| perr(node.start, node.end, msg);
        let slot = match &mut node.expr {
            Expr::VectorSelector(vs) => &mut vs.at,
            Expr::MatrixSelector(ms) => &mut ms.vs.at,
            Expr::Subquery(sq) => &mut sq.at,
            _ => {
                return Err(err(
                    "@ modifier must be preceded by an instant vector selector or range vector selector or a subquery",
                ));
            }
        };
        if slot.is_some() {
            return Err(err("@ <timestamp> may not be set multiple times"));
        }
        *slot = Some(at);
        node.end = end;
        Ok(node)
    }

    /// Checks the bounds of an `@` timestamp in seconds and converts it.
    fn at_timestamp(&self, node: &Node, v: f64) -> PResult<AtModifier> {
        if !v.is_finite() || v >= i64::MAX as f64 || v <= i64::MIN as f64 {
            return Err(perr(
                node.start,
                node.end,
                format!("timestamp out of bounds for @ modifier: {}", go_fixed(v)),
            ));
        }
        Ok(AtModifier::Timestamp((v * 1000.0).round() as i64))
    }
}

/// `expectType` of `checkAST`: the subtree's own errors come first.
fn expect_type(node: &Node, want: ValueType, context: &str) -> Option<Box<ParseError>> {
    let got = node.expr.value_type();
    (got != want).then(|| {
        perr(
            node.start,
            node.end,
            format!(
                "expected type {} in {}, got {}",
                want.documented(),
                context,
                got.documented()
            ),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_parse_like_go() {
        assert_eq!(go_parse_int("0x1F"), Some(31));
        assert_eq!(go_parse_int("0755"), Some(493));
        assert_eq!(go_parse_int("08"), None);
        assert_eq!(go_parse_float("08"), Ok(8.0));
        assert_eq!(go_parse_int("0"), Some(0));
        assert!(go_parse_float("Inf").is_ok_and(|v| v.is_infinite()));
        assert!(go_parse_float("NaN").is_ok_and(f64::is_nan));
        assert_eq!(
            go_parse_float("1e400"),
            Err("strconv.ParseFloat: parsing \"1e400\": value out of range".into())
        );
        assert_eq!(
            go_parse_float("0x1.8"),
            Err("strconv.ParseFloat: parsing \"0x1.8\": invalid syntax".into())
        );
    }

    #[test]
    fn first_error_wins_over_later_ones() {
        // A grammar-action error beats a later syntax error.
        let e = parse_expr("foo(1) +").unwrap_err();
        assert_eq!(e.msg, "unknown function with name \"foo\"");
        // Type errors are only reported when the whole query parsed.
        let e = parse_expr("1 == 1 +").unwrap_err();
        assert_eq!(e.msg, "unexpected end of input");
        // Type errors come in checkAST order: the aggregated expression
        // before the parameter.
        let e = parse_expr(r#"topk("a", {})"#).unwrap_err();
        assert_eq!(
            e.msg,
            "vector selector must contain at least one non-empty matcher"
        );
        // Call argument counts are checked before argument types.
        let e = parse_expr("clamp({}, 1)").unwrap_err();
        assert_eq!(e.msg, "expected 3 argument(s) in call to \"clamp\", got 2");
    }
}
