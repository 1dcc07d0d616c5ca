//! flagd flag definitions with the JsonLogic targeting subset — the segment rules of SPEC §2.2.
//!
//! Implements the OpenFeature flagd flag-definition format (`state`, `variants`, `defaultVariant`,
//! `targeting`, `metadata`; files with `flags` and shared `$evaluators`) so users can reuse their
//! flagd files and every OpenFeature SDK buckets the same user the same way. Operators: `if`/`?:`,
//! `==`, `!=`, `===`, `!==`, `!`, `!!`, `and`, `or`, `<`, `<=`, `>`, `>=`, `in`, `cat`, `var`
//! (dotted paths, defaults, `targetingKey`, `$flagd.flagKey`, `$flagd.timestamp`), `starts_with`,
//! `ends_with`, `sem_ver`, `fractional` (v2, integer math via [`crate::bucket`]) and `$ref`.
//! Conformance: the flagd-testbed evaluator suites (`tests/flagd_conformance.rs`).
//!
//! Invariants:
//! * Targeting is compiled once into an AST ([`parse`]); evaluation never re-reads JSON.
//! * Anything we cannot evaluate as intended is a config error at parse time, naming its path
//!   (`segments.targeting.if[2]: unknown operator "foo"`) — never a silent `false`. Shapes that
//!   flagd itself defines as "yields null" load, behave like flagd, and are listed in
//!   [`Flag::warnings`].
//! * Evaluation is total and pure: no panic, no clock read (`$flagd.timestamp` is an argument of
//!   [`Flag::evaluate_at`]), and it allocates only in rare coercions.
//! * Resolution follows flagd: disabled → `Disabled`; no targeting → `Static`; targeting `null` →
//!   the default variant with `Default`; a value naming a variant (strings; `true`/`false`/numbers
//!   by their text) → `TargetingMatch`; anything else → `Error` (caller's fallback). Without a
//!   default variant, `Default`/`Static` resolutions carry no value: the caller's fallback applies.

mod ast;
mod attrs;
mod eval;
mod parse;
mod semver;
mod set;

use serde_json::{Map, Value};

use self::ast::Node;
use self::eval::{eval, num_text, Attrs, Env, Val};
use self::parse::{err, join, Compiler, Refs};

pub use self::set::FlagSet;

/// A config error in a flag definition; `path` names the field, e.g. `segments.targeting.if[2]`.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{path}: {message}")]
pub struct TargetingError {
    pub path: String,
    pub message: String,
}

/// Evaluation context: the targeting key and the attributes.
pub struct Context<'a> {
    pub targeting_key: Option<&'a str>,
    pub attrs: &'a Map<String, Value>,
}

impl<'a> Context<'a> {
    pub fn new(targeting_key: Option<&'a str>, attrs: &'a Map<String, Value>) -> Self {
        Context {
            targeting_key,
            attrs,
        }
    }
}

/// One attribute as a [`AttrView`] hands it out: borrowed text or a boolean.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Attr<'a> {
    Str(&'a str),
    Bool(bool),
}

/// Attributes read in place (the filter reads them from the request headers on demand), so that an
/// evaluation builds no JSON map. A view holds top-level scalars only: a dotted path finds nothing.
pub trait AttrView {
    /// The attribute `name`, or `None` when absent.
    fn attr(&self, name: &str) -> Option<Attr<'_>>;
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    Static,
    TargetingMatch,
    Default,
    Disabled,
    Error,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Resolution<'f> {
    pub variant: Option<&'f str>,
    pub value: Option<&'f Value>,
    pub reason: Reason,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FlagState {
    Enabled,
    Disabled,
}

#[derive(Debug, Clone)]
pub struct Flag {
    pub key: String,
    state: FlagState,
    variants: Vec<(String, Value)>,
    /// Index into `variants`.
    default_variant: Option<usize>,
    targeting: Option<Node>,
    metadata: Map<String, Value>,
    warnings: Vec<TargetingError>,
}

const FLAG_FIELDS: [&str; 5] = [
    "state",
    "variants",
    "defaultVariant",
    "targeting",
    "metadata",
];

impl Flag {
    /// Parses one flag definition; `path` prefixes every error (e.g. `segments`). A `$ref` is an
    /// error here: use [`FlagSet`] for files with `$evaluators`.
    pub fn parse(key: &str, def: &Value, path: &str) -> Result<Flag, TargetingError> {
        Flag::parse_with(key, def, path, Refs::NONE)
    }

    pub(crate) fn parse_with(
        key: &str,
        def: &Value,
        path: &str,
        refs: Refs<'_>,
    ) -> Result<Flag, TargetingError> {
        let obj = def
            .as_object()
            .ok_or_else(|| err(path, "a flag must be an object"))?;
        if let Some(unknown) = obj.keys().find(|k| !FLAG_FIELDS.contains(&k.as_str())) {
            return Err(err(
                &join(path, unknown),
                format!("unknown field (expected one of {FLAG_FIELDS:?})"),
            ));
        }
        let state = match obj.get("state") {
            None => FlagState::Enabled,
            Some(Value::String(s)) if s == "ENABLED" => FlagState::Enabled,
            Some(Value::String(s)) if s == "DISABLED" => FlagState::Disabled,
            Some(other) => {
                return Err(err(
                    &join(path, "state"),
                    format!("expected \"ENABLED\" or \"DISABLED\", got {other}"),
                ))
            }
        };
        let variants: Vec<(String, Value)> = match obj.get("variants") {
            Some(Value::Object(m)) if !m.is_empty() => {
                m.iter().map(|(k, v)| (k.clone(), v.clone())).collect()
            }
            Some(Value::Object(_)) => {
                return Err(err(
                    &join(path, "variants"),
                    "must name at least one variant",
                ))
            }
            Some(_) => {
                return Err(err(
                    &join(path, "variants"),
                    "expected an object of variant name to value",
                ))
            }
            None => return Err(err(path, "missing field \"variants\"")),
        };
        let default_variant = match obj.get("defaultVariant") {
            None | Some(Value::Null) => None,
            Some(Value::String(name)) => match variants.iter().position(|(k, _)| k == name) {
                Some(i) => Some(i),
                None => {
                    return Err(err(
                        &join(path, "defaultVariant"),
                        format!("{name:?} is not a variant"),
                    ))
                }
            },
            Some(other) => {
                return Err(err(
                    &join(path, "defaultVariant"),
                    format!("expected a variant name, got {other}"),
                ))
            }
        };
        let mut warnings = Vec::new();
        let targeting = match obj.get("targeting") {
            None | Some(Value::Null) => None,
            Some(Value::Object(m)) if m.is_empty() => None,
            Some(t @ Value::Object(_)) => {
                Some(Compiler::new(refs, &mut warnings).compile(t, &join(path, "targeting"))?)
            }
            Some(other) => {
                return Err(err(
                    &join(path, "targeting"),
                    format!("expected a JsonLogic object, got {other}"),
                ))
            }
        };
        let metadata = match obj.get("metadata") {
            None => Map::new(),
            Some(Value::Object(m)) => m.clone(),
            Some(_) => return Err(err(&join(path, "metadata"), "expected an object")),
        };
        Ok(Flag {
            key: key.to_string(),
            state,
            variants,
            default_variant,
            targeting,
            metadata,
            warnings,
        })
    }

    pub fn variant_names(&self) -> impl Iterator<Item = &str> {
        self.variants.iter().map(|(k, _)| k.as_str())
    }

    /// The value of a variant by name.
    pub fn variant(&self, name: &str) -> Option<&Value> {
        self.variants
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v)
    }

    pub fn default_variant(&self) -> Option<&str> {
        self.default_variant
            .and_then(|i| self.variants.get(i))
            .map(|(k, _)| k.as_str())
    }

    pub fn state(&self) -> FlagState {
        self.state
    }

    pub fn has_targeting(&self) -> bool {
        self.targeting.is_some()
    }

    /// The flag's `metadata` object (empty when absent).
    pub fn metadata(&self) -> &Map<String, Value> {
        &self.metadata
    }

    /// Shapes flagd evaluates to `null` (wrong arity, invalid `sem_ver` literal, bad `fractional`
    /// entry). The flag still loads; a strict caller may refuse flags with warnings.
    pub fn warnings(&self) -> &[TargetingError] {
        &self.warnings
    }

    /// Resolves the flag; `$flagd.timestamp` evaluates to `null`.
    pub fn evaluate(&self, ctx: &Context) -> Resolution<'_> {
        self.resolve(ctx.targeting_key, Attrs::Json(ctx.attrs), None)
    }

    /// Resolves the flag with `$flagd.timestamp` = `timestamp` (seconds since the Unix epoch).
    pub fn evaluate_at(&self, ctx: &Context, timestamp: u64) -> Resolution<'_> {
        self.resolve(ctx.targeting_key, Attrs::Json(ctx.attrs), Some(timestamp))
    }

    /// Resolves the flag against attributes read in place (`$flagd.timestamp` is `null`); same
    /// result as [`Flag::evaluate`] with the same attributes in a JSON object.
    pub fn evaluate_view(
        &self,
        targeting_key: Option<&str>,
        attrs: &dyn AttrView,
    ) -> Resolution<'_> {
        self.resolve(targeting_key, Attrs::View(attrs), None)
    }

    fn resolve(
        &self,
        targeting_key: Option<&str>,
        attrs: Attrs<'_>,
        timestamp: Option<u64>,
    ) -> Resolution<'_> {
        if self.state == FlagState::Disabled {
            return Resolution {
                variant: None,
                value: None,
                reason: Reason::Disabled,
            };
        }
        let Some(targeting) = &self.targeting else {
            return self.default_resolution(Reason::Static);
        };
        let env = Env {
            attrs,
            targeting_key,
            flag_key: &self.key,
            timestamp,
        };
        let out = eval(targeting, &env);
        if out == Val::Null {
            return self.default_resolution(Reason::Default);
        }
        match self.variant_index(&out).and_then(|i| self.variants.get(i)) {
            Some((name, value)) => Resolution {
                variant: Some(name),
                value: Some(value),
                reason: Reason::TargetingMatch,
            },
            None => Resolution {
                variant: None,
                value: None,
                reason: Reason::Error,
            },
        }
    }

    /// The default variant with `reason`; without one, no value and `Default` (caller's fallback).
    fn default_resolution(&self, reason: Reason) -> Resolution<'_> {
        match self.default_variant.and_then(|i| self.variants.get(i)) {
            Some((name, value)) => Resolution {
                variant: Some(name),
                value: Some(value),
                reason,
            },
            None => Resolution {
                variant: None,
                value: None,
                reason: Reason::Default,
            },
        }
    }

    /// The variant a targeting result names: a string by itself, a boolean or number by its text.
    fn variant_index(&self, out: &Val) -> Option<usize> {
        let owned;
        let name: &str = match out {
            Val::Str(s) => s,
            Val::Bool(true) => "true",
            Val::Bool(false) => "false",
            Val::Num(n) => {
                owned = num_text(*n);
                &owned
            }
            _ => return None,
        };
        self.variants.iter().position(|(k, _)| k == name)
    }
}

#[cfg(test)]
mod flag_tests;
#[cfg(test)]
mod tests;
