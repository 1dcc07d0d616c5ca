//! Evaluates a compiled [`Node`] against a context, with JsonLogic semantics.
//!
//! Invariants: total (every input yields a [`Val`], `null` on error, never a panic), pure (no
//! clock, no RNG: `$flagd.timestamp` comes from [`Env`]), and allocation-light: context strings and
//! literals are borrowed; only `cat`, number-to-string coercions and `sem_ver` short forms allocate.
//! Truthiness and `==` follow JsonLogic (JavaScript) rules; `in` on arrays uses strict equality.

use std::borrow::Cow;
use std::fmt::Write as _;

use serde_json::Value;

use super::ast::{FractionalNode, Node, Op, SemOpArg, SemTarget, SemVerNode, Var, VarRoot};
pub(crate) use super::attrs::Attrs;
use super::semver::{parse_version, SemOp};
use super::Attr;
use crate::bucket::{murmur3_concat, scale};

/// Everything an evaluation reads.
pub(crate) struct Env<'a> {
    pub(crate) attrs: Attrs<'a>,
    pub(crate) targeting_key: Option<&'a str>,
    pub(crate) flag_key: &'a str,
    pub(crate) timestamp: Option<u64>,
}

/// A JsonLogic value during evaluation; borrows from the flag or the context where it can.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Val<'a> {
    Null,
    Bool(bool),
    Num(f64),
    Str(Cow<'a, str>),
    /// A borrowed JSON array or object.
    Json(&'a Value),
    /// An array built from evaluated elements.
    List(Vec<Val<'a>>),
}

impl<'a> Val<'a> {
    pub(crate) fn from_json(v: &'a Value) -> Val<'a> {
        match v {
            Value::Null => Val::Null,
            Value::Bool(b) => Val::Bool(*b),
            Value::Number(n) => n.as_f64().map_or(Val::Null, Val::Num),
            Value::String(s) => Val::Str(Cow::Borrowed(s)),
            other => Val::Json(other),
        }
    }

    pub(super) fn from_attr(a: Attr<'a>) -> Val<'a> {
        match a {
            Attr::Str(s) => Val::Str(Cow::Borrowed(s)),
            Attr::Bool(b) => Val::Bool(b),
        }
    }

    /// JsonLogic truthiness: `null`, `false`, `0`, `NaN`, `""` and `[]` are false.
    pub(crate) fn truthy(&self) -> bool {
        match self {
            Val::Null => false,
            Val::Bool(b) => *b,
            Val::Num(n) => *n != 0.0 && !n.is_nan(),
            Val::Str(s) => !s.is_empty(),
            Val::Json(Value::Array(a)) => !a.is_empty(),
            Val::Json(_) => true,
            Val::List(l) => !l.is_empty(),
        }
    }

    fn as_str(&self) -> Option<&str> {
        match self {
            Val::Str(s) => Some(s),
            _ => None,
        }
    }

    /// JavaScript `Number(x)` for scalars; `NaN` for arrays and objects.
    fn to_num(&self) -> f64 {
        match self {
            Val::Null => 0.0,
            Val::Bool(b) => f64::from(u8::from(*b)),
            Val::Num(n) => *n,
            Val::Str(s) => {
                let t = s.trim();
                if t.is_empty() {
                    0.0
                } else {
                    t.parse().unwrap_or(f64::NAN)
                }
            }
            Val::Json(_) | Val::List(_) => f64::NAN,
        }
    }

    /// The value as text (JavaScript `String(x)` for scalars; `null` is empty).
    pub(crate) fn to_text(&self) -> Cow<'_, str> {
        match self {
            Val::Str(s) => Cow::Borrowed(s),
            Val::Null => Cow::Borrowed(""),
            Val::Bool(true) => Cow::Borrowed("true"),
            Val::Bool(false) => Cow::Borrowed("false"),
            Val::Num(n) => Cow::Owned(num_text(*n)),
            Val::Json(v) => Cow::Owned(v.to_string()),
            Val::List(items) => {
                let mut out = String::new();
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    out.push_str(&item.to_text());
                }
                Cow::Owned(out)
            }
        }
    }
}

/// Shortest decimal text of a number, integers without a fraction (`2`, `1.5`), like JavaScript.
pub(crate) fn num_text(n: f64) -> String {
    let mut s = String::new();
    // Writing into a String cannot fail.
    let _ = if n == 0.0 {
        write!(s, "0")
    } else {
        write!(s, "{n}")
    };
    s
}

/// JsonLogic `==` (JavaScript loose equality, with deep equality for JSON arrays/objects).
pub(crate) fn loose_eq(a: &Val, b: &Val) -> bool {
    match (a, b) {
        (Val::Null, Val::Null) => true,
        (Val::Null, _) | (_, Val::Null) => false,
        (Val::Str(x), Val::Str(y)) => x == y,
        (Val::Json(_) | Val::List(_), _) | (_, Val::Json(_) | Val::List(_)) => strict_eq(a, b),
        _ => a.to_num() == b.to_num(),
    }
}

/// JsonLogic `===`: same type and value.
pub(crate) fn strict_eq(a: &Val, b: &Val) -> bool {
    match (a, b) {
        (Val::Null, Val::Null) => true,
        (Val::Bool(x), Val::Bool(y)) => x == y,
        (Val::Num(x), Val::Num(y)) => x == y,
        (Val::Str(x), Val::Str(y)) => x == y,
        (Val::Json(x), Val::Json(y)) => x == y,
        (Val::List(x), Val::List(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(p, q)| strict_eq(p, q))
        }
        (Val::List(l), Val::Json(Value::Array(j))) | (Val::Json(Value::Array(j)), Val::List(l)) => {
            l.len() == j.len()
                && l.iter()
                    .zip(j)
                    .all(|(p, q)| strict_eq(p, &Val::from_json(q)))
        }
        _ => false,
    }
}

/// JsonLogic `<` / `<=`: strings compare as strings, anything else as numbers (`NaN` is never less).
fn less(a: &Val, b: &Val, or_equal: bool) -> bool {
    if let (Some(x), Some(y)) = (a.as_str(), b.as_str()) {
        return if or_equal { x <= y } else { x < y };
    }
    let (x, y) = (a.to_num(), b.to_num());
    if or_equal {
        x <= y
    } else {
        x < y
    }
}

pub(crate) fn eval<'a>(node: &'a Node, env: &Env<'a>) -> Val<'a> {
    match node {
        Node::Lit(v) => Val::from_json(v),
        Node::List(items) => Val::List(items.iter().map(|n| eval(n, env)).collect()),
        Node::Var(var) => lookup(var, env),
        Node::Op(op, args) => operate(*op, args, env),
        Node::SemVer(sv) => sem_ver(sv, env),
        Node::Fractional(f) => fractional(f, env),
    }
}

fn operate<'a>(op: Op, args: &'a [Node], env: &Env<'a>) -> Val<'a> {
    let two = |f: fn(&Val, &Val) -> bool| match args {
        [a, b] => Val::Bool(f(&eval(a, env), &eval(b, env))),
        _ => Val::Null,
    };
    match op {
        Op::If => {
            for pair in args.chunks(2) {
                match pair {
                    [cond, then] if eval(cond, env).truthy() => return eval(then, env),
                    [otherwise] => return eval(otherwise, env),
                    _ => {}
                }
            }
            Val::Null
        }
        Op::Eq => two(loose_eq),
        Op::Ne => two(|a, b| !loose_eq(a, b)),
        Op::StrictEq => two(strict_eq),
        Op::StrictNe => two(|a, b| !strict_eq(a, b)),
        Op::Not => args
            .first()
            .map_or(Val::Null, |a| Val::Bool(!eval(a, env).truthy())),
        Op::NotNot => args
            .first()
            .map_or(Val::Null, |a| Val::Bool(eval(a, env).truthy())),
        Op::And | Op::Or => {
            let mut last = Val::Null;
            for arg in args {
                last = eval(arg, env);
                if last.truthy() == (op == Op::Or) {
                    return last;
                }
            }
            last
        }
        Op::Lt | Op::Le => {
            let or_equal = op == Op::Le;
            match args {
                [a, b] => Val::Bool(less(&eval(a, env), &eval(b, env), or_equal)),
                [a, b, c] => {
                    let mid = eval(b, env);
                    Val::Bool(
                        less(&eval(a, env), &mid, or_equal) && less(&mid, &eval(c, env), or_equal),
                    )
                }
                _ => Val::Null,
            }
        }
        Op::Gt => two(|a, b| less(b, a, false)),
        Op::Ge => two(|a, b| less(b, a, true)),
        Op::In => two(contains),
        Op::Cat => {
            let mut out = String::new();
            for arg in args {
                out.push_str(&eval(arg, env).to_text());
            }
            Val::Str(Cow::Owned(out))
        }
        Op::StartsWith | Op::EndsWith => match args {
            [a, b] => match (eval(a, env), eval(b, env)) {
                (Val::Str(s), Val::Str(affix)) => Val::Bool(if op == Op::StartsWith {
                    s.starts_with(&*affix)
                } else {
                    s.ends_with(&*affix)
                }),
                // flagd: null (not false) on non-string input, so the default variant is chosen.
                _ => Val::Null,
            },
            _ => Val::Null,
        },
    }
}

/// JsonLogic `in`: substring of a string, or strict membership in an array.
fn contains(needle: &Val, haystack: &Val) -> bool {
    match haystack {
        // A missing attribute (null) is never "in" a string, though its text is empty.
        Val::Str(h) => match needle {
            Val::Null | Val::Json(_) | Val::List(_) => false,
            scalar => h.contains(&*scalar.to_text()),
        },
        Val::Json(Value::Array(items)) => {
            items.iter().any(|e| strict_eq(needle, &Val::from_json(e)))
        }
        Val::List(items) => items.iter().any(|e| strict_eq(needle, e)),
        _ => false,
    }
}

fn lookup<'a>(var: &'a Var, env: &Env<'a>) -> Val<'a> {
    let found = match var.root {
        VarRoot::TargetingKey => match env.targeting_key {
            Some(k) => Val::Str(Cow::Borrowed(k)),
            None => env.attrs.top("targetingKey"),
        },
        VarRoot::FlagKey => Val::Str(Cow::Borrowed(env.flag_key)),
        // Seconds since the epoch fit an f64 exactly.
        VarRoot::Timestamp => env.timestamp.map_or(Val::Null, |t| Val::Num(t as f64)),
        VarRoot::FlagdOther => Val::Null,
        VarRoot::Attrs => env.attrs.get(&var.path),
    };
    match (&found, &var.default) {
        (Val::Null, Some(default)) => eval(default, env),
        _ => found,
    }
}

fn version_of(v: &Val) -> Option<::semver::Version> {
    match v {
        Val::Str(s) => parse_version(s),
        Val::Num(n) => parse_version(&num_text(*n)),
        _ => None,
    }
}

fn sem_ver<'a>(node: &'a SemVerNode, env: &Env<'a>) -> Val<'a> {
    let Some(version) = version_of(&eval(&node.version, env)) else {
        return Val::Null;
    };
    let op = match &node.op {
        SemOpArg::Fixed(op) => *op,
        SemOpArg::Dynamic(n) => match eval(n, env).as_str().and_then(SemOp::parse) {
            Some(op) => op,
            None => return Val::Null,
        },
    };
    let holds = match &node.target {
        SemTarget::Fixed(target) => op.holds(&version, target),
        SemTarget::Dynamic(n) => match version_of(&eval(n, env)) {
            Some(target) => op.holds(&version, &target),
            None => return Val::Null,
        },
    };
    Val::Bool(holds)
}

/// Largest total weight flagd accepts (`i32::MAX`); keeps `hash * total` inside a u64.
const MAX_TOTAL_WEIGHT: u64 = i32::MAX as u64;

/// A bucket weight: an integer, negatives clamped to 0; anything else is an error (`None`).
fn weight(node: &Node, env: &Env) -> Option<u64> {
    match eval(node, env) {
        Val::Num(w) if w.is_finite() && w.fract() == 0.0 => Some(if w <= 0.0 {
            0
        } else {
            w.min(MAX_TOTAL_WEIGHT as f64) as u64
        }),
        _ => None,
    }
}

/// flagd `fractional` v2: `bucket = (murmur3_32(key) * total) >> 32`, first bucket whose
/// cumulative weight exceeds it. Weights are evaluated twice (sum, then walk) to avoid allocating;
/// they are pure, so both passes agree.
fn fractional<'a>(node: &'a FractionalNode, env: &Env<'a>) -> Val<'a> {
    let by_targeting_key = || match env.targeting_key {
        Some(k) if !k.is_empty() => Some(murmur3_concat(env.flag_key.as_bytes(), k.as_bytes())),
        _ => None,
    };
    let hash = match &node.bucket_by {
        None => by_targeting_key(),
        Some(by) => match eval(by, env) {
            Val::Str(s) => Some(murmur3_concat(s.as_bytes(), &[])),
            Val::Null => by_targeting_key(),
            _ => None,
        },
    };
    let Some(hash) = hash else {
        return Val::Null;
    };
    let mut total = 0u64;
    for (_, w) in &node.buckets {
        match weight(w, env) {
            Some(w) => total = total.saturating_add(w),
            None => return Val::Null,
        }
    }
    if total == 0 || total > MAX_TOTAL_WEIGHT {
        return Val::Null;
    }
    let bucket = scale(hash, total);
    let mut end = 0u64;
    for (variant, w) in &node.buckets {
        end = end.saturating_add(weight(w, env).unwrap_or(0));
        if bucket < end {
            return eval(variant, env);
        }
    }
    Val::Null
}
