//! Selectors and what follows them: `{...}` label matchers, `[range]` and
//! subqueries, `offset` and `@`. Part of the parser in `parse.rs`; nodes stay
//! boxed as there.

#![allow(clippy::boxed_local, clippy::vec_box)]

use crate::model::gofmt::go_quote;
use crate::model::{METRIC_NAME, MatchOp, Matcher};

use super::ast::{AtModifier, Expr, MatrixSelector, Subquery, ValueType, VectorSelector};
use super::lexer::{Kind, Token};
use super::parse::*;

impl<'a> Parser<'a> {
    /// A vector selector; `name` is the already consumed metric name token.
    #[inline(never)]
    pub(super) fn parse_selector(&mut self, name: Option<Token>) -> PResult<Box<Node>> {
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

    #[inline(never)]
    pub(super) fn parse_range_or_subquery(
        &mut self,
        node: Box<Node>,
        open: Token,
    ) -> PResult<Box<Node>> {
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
    pub(super) fn parse_offset(&mut self, mut node: Box<Node>) -> PResult<Box<Node>> {
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
    pub(super) fn parse_at(&mut self, mut node: Box<Node>) -> PResult<Box<Node>> {
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
