//! Binary operators: `bool`, `on`/`ignoring`, `group_left`/`group_right`
//! modifiers, and the checks `checkAST` makes on a binary expression. Part of
//! the parser in `parse.rs`; nodes stay boxed as there.

#![allow(clippy::boxed_local, clippy::vec_box)]

use crate::model::gofmt::go_quote;

use super::ast::{BinOp, Binary, Cardinality, Expr, ValueType, VectorMatching};
use super::lexer::Kind;
use super::parse::*;

impl<'a> Parser<'a> {
    #[inline(never)]
    pub(super) fn parse_bin_modifiers(&mut self) -> PResult<BinMods> {
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
    pub(super) fn make_binary(
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
}
