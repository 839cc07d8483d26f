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

use crate::model::duration::parse_duration_ms;
use crate::model::gofmt::go_quote;
use crate::model::goparse::parse_float;
use crate::model::{Matcher, MatcherError};

use super::ast::{AggOp, BinOp, Cardinality, Expr, ValueType};
use super::lexer::{Kind, Lexer, Token};
use super::quote::unquote;

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
pub(super) type PResult<T> = Result<T, Box<ParseError>>;

pub(super) fn perr(pos_start: usize, pos_end: usize, msg: impl Into<String>) -> Box<ParseError> {
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
pub(super) struct Node {
    pub(super) expr: Expr,
    pub(super) start: usize,
    pub(super) end: usize,
    pub(super) depth: usize,
    /// The first type error in this subtree, in `checkAST` order.
    pub(super) check: Option<Box<ParseError>>,
}

/// The modifiers between a binary operator and its right-hand side.
pub(super) struct BinMods {
    pub(super) return_bool: bool,
    pub(super) on: bool,
    pub(super) labels: Vec<String>,
    pub(super) card: Cardinality,
    pub(super) include: Vec<String>,
}

pub(super) struct Parser<'a> {
    pub(super) input: &'a str,
    pub(super) lex: Lexer<'a>,
    /// Up to two tokens of lookahead.
    pub(super) ahead: [Option<Token>; 2],
    /// How many aggregations are open; yacc's error recovery names the
    /// innermost open aggregation in otherwise generic syntax errors.
    pub(super) agg_depth: usize,
    pub(super) depth: usize,
}

pub(super) fn binop(kind: Kind) -> Option<BinOp> {
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

pub(super) fn aggop(kind: Kind) -> Option<AggOp> {
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
pub(super) fn is_metric_identifier(kind: Kind) -> bool {
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
pub(super) fn is_maybe_label(kind: Kind) -> bool {
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
pub(super) fn starts_expr(kind: Kind) -> bool {
    is_metric_identifier(kind)
        || matches!(
            kind,
            Kind::Number | Kind::String | Kind::LeftParen | Kind::LeftBrace | Kind::Add | Kind::Sub
        )
}

/// Go's `%f` for the `@` bounds error.
pub(super) fn go_fixed(v: f64) -> String {
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
pub(super) fn go_parse_int(s: &str) -> Option<i64> {
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

/// Describes a regex compile error the way Go's `regexp` words the common
/// cases (`missing closing )`, ...), quoting the anchored pattern as
/// Prometheus compiles it.
pub(super) fn regex_error(err: &MatcherError) -> String {
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

    pub(super) fn peek(&mut self) -> PResult<Token> {
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

    pub(super) fn next(&mut self) -> PResult<Token> {
        let t = self.peek()?;
        self.ahead = [self.ahead[1], None];
        Ok(t)
    }

    pub(super) fn text(&self, t: Token) -> &'a str {
        t.text(self.input)
    }

    pub(super) fn unexpected(&self, t: Token, context: &str, expected: &str) -> Box<ParseError> {
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
    pub(super) fn generic(&self, t: Token) -> Box<ParseError> {
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

    pub(super) fn node(
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
    pub(super) fn parse_binary(&mut self, min_prec: u8) -> PResult<Box<Node>> {
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

    pub(super) fn number(&self, t: Token) -> PResult<f64> {
        let s = self.text(t);
        if let Some(v) = go_parse_int(s) {
            return Ok(v as f64);
        }
        parse_float(s).map_err(|e| {
            perr(
                t.start,
                t.end,
                format!("error parsing number: {}", e.go_message(s)),
            )
        })
    }

    pub(super) fn unquote(&self, t: Token) -> PResult<String> {
        let s = self.text(t);
        unquote(s).map_err(|e| {
            perr(
                t.start,
                t.end,
                format!("error unquoting string {}: {e}", go_quote(s)),
            )
        })
    }

    pub(super) fn duration(&self, t: Token) -> PResult<i64> {
        match parse_duration_ms(self.text(t)) {
            Ok(0) => Err(perr(t.start, t.end, "duration must be greater than 0")),
            Ok(d) => Ok(d),
            Err(e) => Err(perr(t.start, t.end, e.to_string())),
        }
    }
}

/// `expectType` of `checkAST`: the subtree's own errors come first.
pub(super) fn expect_type(node: &Node, want: ValueType, context: &str) -> Option<Box<ParseError>> {
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
        assert_eq!(go_parse_int("0"), Some(0));
        for (q, msg) in [("1e400", "value out of range"), ("0x1.8", "invalid syntax")] {
            let e = parse_expr(q).unwrap_err();
            let want = format!("error parsing number: strconv.ParseFloat: parsing {q:?}: {msg}");
            assert_eq!(e.msg, want);
        }
        assert!(parse_expr("08").is_ok());
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
