//! The PromQL syntax tree, as Prometheus 2.42's `promql/parser/ast.go` shapes
//! it after type checking.
//!
//! The tree knows value types but nothing of evaluation or storage.

use crate::model::Matcher;

use super::functions::Function;

/// The type a PromQL expression evaluates to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ValueType {
    Scalar,
    Vector,
    Matrix,
    String,
}

impl ValueType {
    /// The internal name (`"vector"`, `"matrix"`, ...), as in the API's
    /// `resultType`.
    pub fn as_str(self) -> &'static str {
        match self {
            ValueType::Scalar => "scalar",
            ValueType::Vector => "vector",
            ValueType::Matrix => "matrix",
            ValueType::String => "string",
        }
    }

    /// The name the documentation uses (`"instant vector"`, `"range vector"`).
    pub fn documented(self) -> &'static str {
        match self {
            ValueType::Vector => "instant vector",
            ValueType::Matrix => "range vector",
            other => other.as_str(),
        }
    }
}

/// An `@` modifier.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AtModifier {
    /// `@ <unix seconds>`, stored in milliseconds.
    Timestamp(i64),
    /// `@ start()`.
    Start,
    /// `@ end()`.
    End,
}

/// An instant vector selector such as `foo{bar="baz"} offset 5m @ 100`.
#[derive(Debug, Clone, PartialEq)]
pub struct VectorSelector {
    /// The metric name written before the braces, if any.
    pub name: Option<String>,
    /// All matchers, ready for selection. When `name` is set, the last one is
    /// the `__name__` equality matcher for it, as in Prometheus.
    pub matchers: Vec<Matcher>,
    /// Offset in milliseconds; negative looks into the future.
    pub offset: i64,
    pub at: Option<AtModifier>,
}

/// A range vector selector: `foo[5m]`. Offset and `@` live on `vs`.
#[derive(Debug, Clone, PartialEq)]
pub struct MatrixSelector {
    pub vs: VectorSelector,
    pub range_ms: i64,
}

/// A subquery: `expr[range:step]`.
#[derive(Debug, Clone, PartialEq)]
pub struct Subquery {
    pub expr: Box<Expr>,
    pub range_ms: i64,
    /// The resolution step; 0 means the engine's default.
    pub step_ms: i64,
    pub offset: i64,
    pub at: Option<AtModifier>,
}

/// A function call.
#[derive(Debug, Clone, PartialEq)]
pub struct Call {
    pub func: &'static Function,
    pub args: Vec<Expr>,
}

/// An aggregation operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AggOp {
    Sum,
    Avg,
    Count,
    Min,
    Max,
    Group,
    Stddev,
    Stdvar,
    Topk,
    Bottomk,
    CountValues,
    Quantile,
}

impl AggOp {
    pub fn as_str(self) -> &'static str {
        match self {
            AggOp::Sum => "sum",
            AggOp::Avg => "avg",
            AggOp::Count => "count",
            AggOp::Min => "min",
            AggOp::Max => "max",
            AggOp::Group => "group",
            AggOp::Stddev => "stddev",
            AggOp::Stdvar => "stdvar",
            AggOp::Topk => "topk",
            AggOp::Bottomk => "bottomk",
            AggOp::CountValues => "count_values",
            AggOp::Quantile => "quantile",
        }
    }

    /// Whether the operator takes a parameter before the expression.
    pub fn has_param(self) -> bool {
        matches!(
            self,
            AggOp::Topk | AggOp::Bottomk | AggOp::CountValues | AggOp::Quantile
        )
    }
}

/// An aggregation: `sum by (job) (rate(x[5m]))`.
#[derive(Debug, Clone, PartialEq)]
pub struct Aggregate {
    pub op: AggOp,
    pub expr: Box<Expr>,
    /// The parameter of `topk`, `bottomk`, `quantile` and `count_values`.
    pub param: Option<Box<Expr>>,
    pub grouping: Vec<String>,
    pub without: bool,
}

/// A binary operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BinOp {
    Add,
    Sub,
    Mul,
    Div,
    Mod,
    Pow,
    Atan2,
    Eql,
    Neq,
    Gtr,
    Lss,
    Gte,
    Lte,
    And,
    Or,
    Unless,
}

impl BinOp {
    pub fn as_str(self) -> &'static str {
        match self {
            BinOp::Add => "+",
            BinOp::Sub => "-",
            BinOp::Mul => "*",
            BinOp::Div => "/",
            BinOp::Mod => "%",
            BinOp::Pow => "^",
            BinOp::Atan2 => "atan2",
            BinOp::Eql => "==",
            BinOp::Neq => "!=",
            BinOp::Gtr => ">",
            BinOp::Lss => "<",
            BinOp::Gte => ">=",
            BinOp::Lte => "<=",
            BinOp::And => "and",
            BinOp::Or => "or",
            BinOp::Unless => "unless",
        }
    }

    pub fn is_comparison(self) -> bool {
        matches!(
            self,
            BinOp::Eql | BinOp::Neq | BinOp::Gtr | BinOp::Lss | BinOp::Gte | BinOp::Lte
        )
    }

    pub fn is_set(self) -> bool {
        matches!(self, BinOp::And | BinOp::Or | BinOp::Unless)
    }

    /// Precedence, higher binds tighter (Prometheus's yacc table).
    pub fn precedence(self) -> u8 {
        match self {
            BinOp::Or => 1,
            BinOp::And | BinOp::Unless => 2,
            BinOp::Eql | BinOp::Neq | BinOp::Gtr | BinOp::Lss | BinOp::Gte | BinOp::Lte => 3,
            BinOp::Add | BinOp::Sub => 4,
            BinOp::Mul | BinOp::Div | BinOp::Mod | BinOp::Atan2 => 5,
            BinOp::Pow => 6,
        }
    }

    pub fn is_right_assoc(self) -> bool {
        self == BinOp::Pow
    }
}

/// How the two sides of a vector/vector binary operation are matched.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Cardinality {
    OneToOne,
    ManyToOne,
    OneToMany,
    ManyToMany,
}

/// Vector matching of a binary expression between two instant vectors.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VectorMatching {
    pub card: Cardinality,
    /// True for `on(...)`, false for `ignoring(...)` or no clause.
    pub on: bool,
    pub labels: Vec<String>,
    /// Extra labels from `group_left(...)`/`group_right(...)`.
    pub include: Vec<String>,
}

/// A binary expression.
#[derive(Debug, Clone, PartialEq)]
pub struct Binary {
    pub op: BinOp,
    pub lhs: Box<Expr>,
    pub rhs: Box<Expr>,
    /// Present only when both sides are instant vectors.
    pub matching: Option<VectorMatching>,
    pub return_bool: bool,
}

/// A PromQL expression.
#[derive(Debug, Clone, PartialEq)]
pub enum Expr {
    NumberLiteral(f64),
    StringLiteral(String),
    VectorSelector(VectorSelector),
    MatrixSelector(MatrixSelector),
    Subquery(Subquery),
    Call(Call),
    Aggregate(Aggregate),
    Binary(Binary),
    /// Unary minus (`neg`) or plus. Minus on a number literal is folded into
    /// the literal by the parser.
    Unary {
        neg: bool,
        expr: Box<Expr>,
    },
    Paren(Box<Expr>),
}

impl Expr {
    /// The type the expression evaluates to.
    pub fn value_type(&self) -> ValueType {
        match self {
            Expr::NumberLiteral(_) => ValueType::Scalar,
            Expr::StringLiteral(_) => ValueType::String,
            Expr::VectorSelector(_) | Expr::Aggregate(_) => ValueType::Vector,
            Expr::MatrixSelector(_) | Expr::Subquery(_) => ValueType::Matrix,
            Expr::Call(c) => c.func.return_type,
            Expr::Binary(b) => {
                if b.lhs.value_type() == ValueType::Scalar
                    && b.rhs.value_type() == ValueType::Scalar
                {
                    ValueType::Scalar
                } else {
                    ValueType::Vector
                }
            }
            Expr::Unary { expr, .. } | Expr::Paren(expr) => expr.value_type(),
        }
    }
}
