//! Function calls and aggregations: arguments, `by`/`without` grouping and
//! their type checks. Part of the parser in `parse.rs`; nodes stay boxed as
//! there.

#![allow(clippy::boxed_local, clippy::vec_box)]

use crate::model::gofmt::go_quote;

use super::ast::{AggOp, Aggregate, Call, Expr, ValueType};
use super::functions::get_function;
use super::lexer::{Kind, Token, is_label};
use super::parse::*;

impl<'a> Parser<'a> {
    /// `(label, ...)` after `by`, `without`, `on`, `ignoring` or `group_x`.
    pub(super) fn parse_grouping_labels(&mut self) -> PResult<(Vec<String>, usize)> {
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

    pub(super) fn parse_call(&mut self, name: Token) -> PResult<Box<Node>> {
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

    pub(super) fn parse_aggregate(&mut self, op_tok: Token) -> PResult<Box<Node>> {
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
}
