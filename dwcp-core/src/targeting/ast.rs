//! The compiled targeting tree. Built once by [`super::parse`], walked by [`super::eval`].
//!
//! Invariants: operator names are resolved to [`Op`] at parse time (an unknown name never reaches
//! this type), `$ref`s are inlined, `var` paths are pre-split, `sem_ver` literals are pre-parsed and
//! `fractional` entries are pre-shaped. A [`Node::Lit`] never contains an operation.

use serde_json::Value;

use super::semver::SemOp;

/// One node of a compiled JsonLogic expression.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Node {
    /// A JSON literal (scalar, or an array/object without operations inside).
    Lit(Value),
    /// An array literal with at least one operation inside.
    List(Vec<Node>),
    /// `{"var": ...}`.
    Var(Var),
    /// A generic operator over evaluated-on-demand arguments.
    Op(Op, Vec<Node>),
    /// `{"sem_ver": [version, op, target]}`.
    SemVer(Box<SemVerNode>),
    /// `{"fractional": [bucketBy?, [variant, weight?]...]}`.
    Fractional(Box<FractionalNode>),
}

impl Node {
    /// The node that always evaluates to `null` (what flagd yields for a malformed operation).
    pub(crate) const NULL: Node = Node::Lit(Value::Null);
}

/// Operators whose arguments are plain nodes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Op {
    If,
    Eq,
    Ne,
    StrictEq,
    StrictNe,
    Not,
    NotNot,
    And,
    Or,
    Lt,
    Le,
    Gt,
    Ge,
    In,
    Cat,
    StartsWith,
    EndsWith,
}

impl Op {
    /// Resolves a JsonLogic operator name (`var`, `sem_ver`, `fractional` and `$ref` are handled
    /// separately by the parser).
    pub(crate) fn from_name(name: &str) -> Option<Op> {
        Some(match name {
            "if" | "?:" => Op::If,
            "==" => Op::Eq,
            "!=" => Op::Ne,
            "===" => Op::StrictEq,
            "!==" => Op::StrictNe,
            "!" => Op::Not,
            "!!" => Op::NotNot,
            "and" => Op::And,
            "or" => Op::Or,
            "<" => Op::Lt,
            "<=" => Op::Le,
            ">" => Op::Gt,
            ">=" => Op::Ge,
            "in" => Op::In,
            "cat" => Op::Cat,
            "starts_with" => Op::StartsWith,
            "ends_with" => Op::EndsWith,
            _ => return None,
        })
    }

    /// Accepted argument counts as `(min, max)`; `None` means unbounded.
    pub(crate) fn arity(self) -> (usize, Option<usize>) {
        match self {
            Op::If | Op::Cat => (0, None),
            Op::And | Op::Or => (1, None),
            Op::Not | Op::NotNot => (1, Some(1)),
            Op::Lt | Op::Le => (2, Some(3)),
            Op::Eq | Op::Ne | Op::StrictEq | Op::StrictNe => (2, Some(2)),
            Op::Gt | Op::Ge | Op::In | Op::StartsWith | Op::EndsWith => (2, Some(2)),
        }
    }
}

/// Where a `var` path starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum VarRoot {
    /// A path into the context attributes.
    Attrs,
    /// `targetingKey`: the context's targeting key (falls back to an attribute of that name).
    TargetingKey,
    /// `$flagd.flagKey`.
    FlagKey,
    /// `$flagd.timestamp` (an input of the evaluation, seconds since the epoch).
    Timestamp,
    /// Any other `$flagd.*` path: always null.
    FlagdOther,
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Var {
    pub(crate) root: VarRoot,
    /// Path segments below the root (only used for [`VarRoot::Attrs`]).
    pub(crate) path: Vec<String>,
    /// Returned when the lookup yields nothing (missing or null).
    pub(crate) default: Option<Box<Node>>,
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum SemOpArg {
    Fixed(SemOp),
    Dynamic(Node),
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum SemTarget {
    Fixed(::semver::Version),
    Dynamic(Node),
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) struct SemVerNode {
    pub(crate) version: Node,
    pub(crate) op: SemOpArg,
    pub(crate) target: SemTarget,
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) struct FractionalNode {
    /// Explicit bucketing value; `None` means `$flagd.flagKey ++ targetingKey`.
    pub(crate) bucket_by: Option<Node>,
    /// `(variant, weight)`; a missing weight was compiled to the literal `1`.
    pub(crate) buckets: Vec<(Node, Node)>,
}
