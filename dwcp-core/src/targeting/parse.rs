//! Compiles targeting JSON into the [`Node`] tree, once, at config load.
//!
//! Errors (the flag is rejected): an unknown operator, a `$ref` to a missing or cyclic evaluator,
//! an unsupported `var` form, an operation object with other than one key, nesting deeper than
//! [`MAX_DEPTH`]. Each names its place: `<path>.targeting.if[2]: unknown operator "foo"`.
//!
//! Warnings (the flag loads, the node yields `null` like in flagd, and the warning is kept on the
//! flag so a strict caller may refuse it): wrong argument counts, an invalid `sem_ver` operator or
//! version literal, a malformed `fractional` entry.

use serde_json::{Map, Value};

use super::ast::{FractionalNode, Node, Op, SemOpArg, SemTarget, SemVerNode, Var, VarRoot};
use super::semver::{parse_version, SemOp};
use super::TargetingError;

/// Maximum nesting of operations, `$ref`s included (keeps the evaluator's recursion bounded).
pub(crate) const MAX_DEPTH: usize = 128;

/// Shared `$evaluators` of a flag file and where they live (for error paths).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Refs<'j> {
    pub(crate) defs: Option<&'j Map<String, Value>>,
    pub(crate) path: &'j str,
}

impl Refs<'_> {
    pub(crate) const NONE: Refs<'static> = Refs {
        defs: None,
        path: "",
    };
}

pub(crate) fn err(path: &str, message: impl Into<String>) -> TargetingError {
    TargetingError {
        path: path.to_string(),
        message: message.into(),
    }
}

/// `parent.child`, or `child` at the root.
pub(crate) fn join(parent: &str, child: &str) -> String {
    if parent.is_empty() {
        child.to_string()
    } else {
        format!("{parent}.{child}")
    }
}

pub(crate) struct Compiler<'j, 'w> {
    refs: Refs<'j>,
    /// Names of the `$ref`s being expanded (cycle detection).
    stack: Vec<&'j str>,
    depth: usize,
    warnings: &'w mut Vec<TargetingError>,
}

impl<'j, 'w> Compiler<'j, 'w> {
    pub(crate) fn new(refs: Refs<'j>, warnings: &'w mut Vec<TargetingError>) -> Self {
        Compiler {
            refs,
            stack: Vec::new(),
            depth: 0,
            warnings,
        }
    }

    /// Compiles the `$evaluators` entry `name` on its own (validation of unused evaluators).
    pub(crate) fn compile_evaluator(
        &mut self,
        name: &'j str,
        def: &'j Value,
    ) -> Result<Node, TargetingError> {
        self.stack.push(name);
        let out = self.compile(def, &join(self.refs.path, name));
        self.stack.pop();
        out
    }

    fn warn(&mut self, path: &str, message: String) -> Node {
        let w = err(path, message);
        if !self.warnings.contains(&w) {
            self.warnings.push(w);
        }
        Node::NULL
    }

    pub(crate) fn compile(&mut self, v: &Value, path: &str) -> Result<Node, TargetingError> {
        match v {
            Value::Object(m) => {
                let mut it = m.iter();
                match (it.next(), it.next()) {
                    (Some((name, arg)), None) => {
                        if self.depth >= MAX_DEPTH {
                            return Err(err(
                                path,
                                format!("targeting nested deeper than {MAX_DEPTH}"),
                            ));
                        }
                        self.depth += 1;
                        let out = self.operation(name, arg, path);
                        self.depth -= 1;
                        out
                    }
                    _ => Err(err(
                        path,
                        format!(
                            "an operation must be an object with exactly one key, found {}",
                            m.len()
                        ),
                    )),
                }
            }
            Value::Array(items) => {
                let nodes = items
                    .iter()
                    .enumerate()
                    .map(|(i, item)| self.compile(item, &format!("{path}[{i}]")))
                    .collect::<Result<Vec<_>, _>>()?;
                if nodes.iter().all(|n| matches!(n, Node::Lit(_))) {
                    Ok(Node::Lit(v.clone()))
                } else {
                    Ok(Node::List(nodes))
                }
            }
            scalar => Ok(Node::Lit(scalar.clone())),
        }
    }

    fn operation(&mut self, name: &str, arg: &Value, path: &str) -> Result<Node, TargetingError> {
        match name {
            "$ref" => self.reference(arg, path),
            "var" => self.var(arg, path),
            "sem_ver" => self.sem_ver(arg, path),
            "fractional" => self.fractional(arg, path),
            _ => {
                let op = Op::from_name(name)
                    .ok_or_else(|| err(path, format!("unknown operator {name:?}")))?;
                let args = self.args(name, arg, path)?;
                let (min, max) = op.arity();
                if args.len() < min || max.is_some_and(|max| args.len() > max) {
                    let want = match max {
                        Some(max) if max == min => format!("{min}"),
                        Some(max) => format!("{min} to {max}"),
                        None => format!("at least {min}"),
                    };
                    return Ok(self.warn(
                        path,
                        format!(
                            "{name:?} takes {want} arguments, got {}; it always yields null",
                            args.len()
                        ),
                    ));
                }
                Ok(Node::Op(op, args))
            }
        }
    }

    /// Compiles the arguments of `name`: an array, or a single non-array value (JsonLogic sugar).
    fn args(&mut self, name: &str, arg: &Value, path: &str) -> Result<Vec<Node>, TargetingError> {
        match arg {
            Value::Array(items) => items
                .iter()
                .enumerate()
                .map(|(i, item)| self.compile(item, &format!("{path}.{name}[{i}]")))
                .collect(),
            single => Ok(vec![self.compile(single, &format!("{path}.{name}"))?]),
        }
    }

    fn reference(&mut self, arg: &Value, path: &str) -> Result<Node, TargetingError> {
        let Value::String(name) = arg else {
            return Err(err(path, "$ref must name an evaluator (a string)"));
        };
        let Some((name, def)) = self.refs.defs.and_then(|d| d.get_key_value(name.as_str())) else {
            return Err(err(path, format!("$ref to unknown evaluator {name:?}")));
        };
        if self.stack.contains(&name.as_str()) {
            let cycle = self.stack.join(" -> ");
            return Err(err(
                path,
                format!("$ref {name:?} is cyclic ({cycle} -> {name})"),
            ));
        }
        self.stack.push(name);
        let out = self.compile(def, &join(self.refs.path, name));
        self.stack.pop();
        out.map_err(|e| err(path, format!("in $ref {name:?}: {e}")))
    }

    fn var(&mut self, arg: &Value, path: &str) -> Result<Node, TargetingError> {
        let (target, default) = match arg {
            Value::Array(items) => match items.as_slice() {
                [target] => (target, None),
                [target, default, rest @ ..] => {
                    if !rest.is_empty() {
                        self.warn(
                            path,
                            "var takes a path and an optional default; extra arguments ignored"
                                .into(),
                        );
                    }
                    (
                        target,
                        Some(Box::new(self.compile(default, &format!("{path}.var[1]"))?)),
                    )
                }
                [] => return Err(err(path, "var of the whole context is not supported")),
            },
            single => (single, None),
        };
        let text = match target {
            Value::String(s) => s.clone(),
            Value::Number(n) => n.to_string(),
            Value::Null => return Err(err(path, "var of the whole context is not supported")),
            _ => return Err(err(path, "var path must be a literal string or number")),
        };
        if text.is_empty() {
            return Err(err(path, "var of the whole context is not supported"));
        }
        let (root, rest) = match text.split_once('.') {
            Some(("$flagd", "flagKey")) => (VarRoot::FlagKey, None),
            Some(("$flagd", "timestamp")) => (VarRoot::Timestamp, None),
            Some(("$flagd", _)) => (VarRoot::FlagdOther, None),
            None if text == "$flagd" => (VarRoot::FlagdOther, None),
            None if text == "targetingKey" => (VarRoot::TargetingKey, None),
            _ => (VarRoot::Attrs, Some(text.as_str())),
        };
        let path_segs = rest
            .map(|r| r.split('.').map(str::to_string).collect())
            .unwrap_or_default();
        Ok(Node::Var(Var {
            root,
            path: path_segs,
            default,
        }))
    }

    fn sem_ver(&mut self, arg: &Value, path: &str) -> Result<Node, TargetingError> {
        let items = std::slice::from_ref(arg);
        let items = match arg {
            Value::Array(a) => a.as_slice(),
            _ => items,
        };
        let [version, op, target] = items else {
            return Ok(self.warn(
                path,
                format!("\"sem_ver\" takes 3 arguments [version, op, target], got {}; it always yields null", items.len()),
            ));
        };
        let version = self.compile(version, &format!("{path}.sem_ver[0]"))?;
        let op = match op {
            Value::String(s) => match SemOp::parse(s) {
                Some(op) => SemOpArg::Fixed(op),
                None => {
                    return Ok(self.warn(
                        path,
                        format!("sem_ver: unknown comparison {s:?}; it always yields null"),
                    ))
                }
            },
            other => SemOpArg::Dynamic(self.compile(other, &format!("{path}.sem_ver[1]"))?),
        };
        let target = match target {
            Value::String(_) | Value::Number(_) => {
                let text = match target {
                    Value::String(s) => s.clone(),
                    other => other.to_string(),
                };
                match parse_version(&text) {
                    Some(v) => SemTarget::Fixed(v),
                    None => {
                        return Ok(self.warn(
                            path,
                            format!("sem_ver: invalid version {text:?}; it always yields null"),
                        ))
                    }
                }
            }
            other => SemTarget::Dynamic(self.compile(other, &format!("{path}.sem_ver[2]"))?),
        };
        Ok(Node::SemVer(Box::new(SemVerNode {
            version,
            op,
            target,
        })))
    }

    fn fractional(&mut self, arg: &Value, path: &str) -> Result<Node, TargetingError> {
        let Value::Array(items) = arg else {
            return Ok(self.warn(
                path,
                "\"fractional\" takes an array; it always yields null".into(),
            ));
        };
        // The first element is the bucketing value unless it is already a bucket; a literal null
        // is dropped like in flagd (bucket by flagKey ++ targetingKey).
        let (bucket_by, first) = match items.first() {
            None | Some(Value::Array(_)) => (None, 0),
            Some(Value::Null) => (None, 1),
            Some(by) => (Some(self.compile(by, &format!("{path}.fractional[0]"))?), 1),
        };
        let mut buckets = Vec::with_capacity(items.len().saturating_sub(first));
        for (i, item) in items.iter().enumerate().skip(first) {
            let at = format!("{path}.fractional[{i}]");
            let (variant, weight) = match item {
                Value::Array(pair) => match pair.as_slice() {
                    [variant] => (variant, None),
                    [variant, weight] => (variant, Some(weight)),
                    _ => {
                        return Ok(self.warn(
                            &at,
                            "a bucket is [variant, weight?]; fractional always yields null".into(),
                        ))
                    }
                },
                _ => {
                    return Ok(self.warn(
                        &at,
                        "a bucket is [variant, weight?]; fractional always yields null".into(),
                    ))
                }
            };
            if let Some(w) = weight {
                let integral = w.as_f64().is_some_and(|f| f.fract() == 0.0);
                if !integral && !w.is_object() {
                    return Ok(self.warn(
                        &at,
                        format!("weight {w} is not an integer; fractional always yields null"),
                    ));
                }
            }
            let variant = self.compile(variant, &format!("{at}[0]"))?;
            let weight = match weight {
                Some(w) => self.compile(w, &format!("{at}[1]"))?,
                None => Node::Lit(Value::from(1)),
            };
            buckets.push((variant, weight));
        }
        if buckets.is_empty() {
            return Ok(self.warn(
                path,
                "\"fractional\" has no buckets; it always yields null".into(),
            ));
        }
        Ok(Node::Fractional(Box::new(FractionalNode {
            bucket_by,
            buckets,
        })))
    }
}
