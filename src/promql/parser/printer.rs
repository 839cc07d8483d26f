//! `Display` for the syntax tree, matching the `String()` methods of
//! Prometheus 2.42's `promql/parser/printer.go`: what `/api/v1/format_query`
//! returns and what error messages quote.
//!
//! The printer adds no parentheses of its own: the tree keeps the ones the
//! user wrote as `Expr::Paren`.

use std::fmt::{self, Display, Formatter, Write as _};

use crate::model::{METRIC_NAME, Matcher};

use super::ast::{
    Aggregate, AtModifier, Binary, Call, Cardinality, Expr, MatrixSelector, Subquery,
    VectorSelector,
};
use crate::model::duration::format_duration_ms;
use crate::model::gofmt::{format_g, go_quote};

fn matcher_string(m: &Matcher) -> String {
    format!("{}{}{}", m.name, m.op, go_quote(&m.value))
}

/// ` @ 123.000`, ` @ start()` or nothing.
fn write_at(f: &mut Formatter<'_>, at: Option<AtModifier>) -> fmt::Result {
    match at {
        None => Ok(()),
        Some(AtModifier::Timestamp(ms)) => write!(f, " @ {:.3}", ms as f64 / 1000.0),
        Some(AtModifier::Start) => f.write_str(" @ start()"),
        Some(AtModifier::End) => f.write_str(" @ end()"),
    }
}

/// ` offset 5m`, ` offset -5m` or nothing.
fn write_offset(f: &mut Formatter<'_>, offset: i64) -> fmt::Result {
    match offset {
        0 => Ok(()),
        o if o > 0 => write!(f, " offset {}", format_duration_ms(o.unsigned_abs())),
        o => write!(f, " offset -{}", format_duration_ms(o.unsigned_abs())),
    }
}

impl VectorSelector {
    /// Name and matchers, without `@` and offset.
    fn write_selector(&self, f: &mut Formatter<'_>) -> fmt::Result {
        let name = self.name.as_deref().unwrap_or("");
        let mut labels: Vec<String> = self
            .matchers
            .iter()
            .filter(|m| {
                !(m.name == METRIC_NAME && m.op == crate::model::MatchOp::Equal && m.value == name)
            })
            .map(matcher_string)
            .collect();
        f.write_str(name)?;
        if labels.is_empty() {
            return Ok(());
        }
        labels.sort();
        write!(f, "{{{}}}", labels.join(","))
    }
}

impl Display for VectorSelector {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        self.write_selector(f)?;
        write_at(f, self.at)?;
        write_offset(f, self.offset)
    }
}

impl Display for MatrixSelector {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        self.vs.write_selector(f)?;
        write!(f, "[{}]", format_duration_ms(self.range_ms.unsigned_abs()))?;
        write_at(f, self.vs.at)?;
        write_offset(f, self.vs.offset)
    }
}

impl Display for Subquery {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}[{}:",
            self.expr,
            format_duration_ms(self.range_ms.unsigned_abs())
        )?;
        if self.step_ms != 0 {
            f.write_str(&format_duration_ms(self.step_ms.unsigned_abs()))?;
        }
        f.write_char(']')?;
        write_at(f, self.at)?;
        write_offset(f, self.offset)
    }
}

impl Display for Call {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        write!(f, "{}(", self.func.name)?;
        for (i, a) in self.args.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            write!(f, "{a}")?;
        }
        f.write_char(')')
    }
}

impl Display for Aggregate {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        f.write_str(self.op.as_str())?;
        if self.without {
            write!(f, " without ({}) ", self.grouping.join(", "))?;
        } else if !self.grouping.is_empty() {
            write!(f, " by ({}) ", self.grouping.join(", "))?;
        }
        f.write_char('(')?;
        if let Some(p) = &self.param {
            write!(f, "{p}, ")?;
        }
        write!(f, "{})", self.expr)
    }
}

impl Display for Binary {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.lhs, self.op.as_str())?;
        if self.return_bool {
            f.write_str(" bool")?;
        }
        if let Some(vm) = self
            .matching
            .as_ref()
            .filter(|vm| !vm.labels.is_empty() || vm.on)
        {
            let tag = if vm.on { "on" } else { "ignoring" };
            write!(f, " {tag} ({})", vm.labels.join(", "))?;
            match vm.card {
                Cardinality::ManyToOne => write!(f, " group_left ({})", vm.include.join(", "))?,
                Cardinality::OneToMany => write!(f, " group_right ({})", vm.include.join(", "))?,
                Cardinality::OneToOne | Cardinality::ManyToMany => {}
            }
        }
        write!(f, " {}", self.rhs)
    }
}

impl Display for Expr {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        match self {
            Expr::NumberLiteral(v) => f.write_str(&format_g(*v)),
            Expr::StringLiteral(s) => f.write_str(&go_quote(s)),
            Expr::VectorSelector(vs) => vs.fmt(f),
            Expr::MatrixSelector(ms) => ms.fmt(f),
            Expr::Subquery(sq) => sq.fmt(f),
            Expr::Call(c) => c.fmt(f),
            Expr::Aggregate(a) => a.fmt(f),
            Expr::Binary(b) => b.fmt(f),
            Expr::Unary { neg, expr } => write!(f, "{}{expr}", if *neg { "-" } else { "+" }),
            Expr::Paren(e) => write!(f, "({e})"),
        }
    }
}
