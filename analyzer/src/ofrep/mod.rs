//! Flags for the applications, decided like the mesh: the companion serves the OpenFeature Remote
//! Evaluation Protocol (OFREP, `api.rs`) over a flagd flag-definition file, evaluated with the same
//! flagd evaluator and the same bucketing as the filter.
//!
//! A flag whose `metadata` has `"dwcp.rollout": "<rollout>"` is *bound to the mesh*: for a user it is
//! `metadata["dwcp.canaryVariant"]` (default `"on"`) exactly when the filter routes that user to the
//! rollout's canary — same segment rule, same `bucket = murmur3(rollout ++ user)`, same current share —
//! and its `defaultVariant` (the baseline) otherwise. Two more conventions, all inside a valid flagd
//! file (flagd itself ignores metadata):
//! * the kill switch `dwcp-canary-enabled` (boolean): off → every bound flag answers the baseline, and
//!   on the change the companion sets its global kill switch, so every filter routes stable at its next
//!   sync;
//! * `"dwcp.prerequisites": ["flag", …]` on a bound flag: each must evaluate to `true` / `"on"` for the
//!   user, else the baseline (applications only: the filter does not see these flags).
//!
//! The segment rule is the flag `dwcp-segments` of the file when present (it must be the filter's
//! `segments`), else the filter's default rule. The file is re-read when it changes (flagd's file
//! source); an invalid file is refused with the line and field, and the previous flags stay in force.

pub mod api;

use dwcp_core::bucket::{bucket_bp, in_canary};
use dwcp_core::state::DynamicState;
use dwcp_core::targeting::{Context, Flag, FlagSet, Reason};
use serde_json::{json, Map, Value};
use std::path::{Path, PathBuf};
use std::time::SystemTime;

pub const KILL_SWITCH: &str = "dwcp-canary-enabled";
pub const SEGMENTS: &str = "dwcp-segments";

/// A validated flag file.
pub struct Flags {
    pub set: FlagSet,
    segments: Flag,
}

/// Parses a flagd file; errors name the line and the field.
pub fn parse(text: &str) -> Result<Flags, String> {
    let doc: Value = serde_json::from_str(text)
        .map_err(|e| format!("line {}: column {}: {e}", e.line(), e.column()))?;
    let set = FlagSet::parse(&doc, "")
        .map_err(|e| format!("line {}: {e}", line_of_path(text, &e.path)))?;
    for f in set.iter() {
        let Some(r) = f.metadata().get("dwcp.rollout") else {
            continue;
        };
        let at = |field: &str| line_of_meta(text, &f.key, field);
        if !r.is_string() {
            return Err(format!(
                "line {}: flags.{}.metadata.dwcp.rollout: must be a rollout name",
                at("dwcp.rollout"),
                f.key
            ));
        }
        let canary = f
            .metadata()
            .get("dwcp.canaryVariant")
            .and_then(Value::as_str)
            .unwrap_or("on");
        if f.variant(canary).is_none() {
            let field = if f.metadata().contains_key("dwcp.canaryVariant") {
                "dwcp.canaryVariant"
            } else {
                "dwcp.rollout"
            };
            return Err(format!(
                "line {}: flags.{}.metadata.{field}: the canary variant {canary:?} is not one of the flag's variants",
                at(field), f.key
            ));
        }
        if f.default_variant().is_none() {
            return Err(format!(
                "line {}: flags.{}.defaultVariant: a flag bound to a rollout needs one (the baseline)",
                at("dwcp.rollout"), f.key
            ));
        }
        if let Some(p) = f.metadata().get("dwcp.prerequisites") {
            let ok = p.as_array().is_some_and(|a| {
                a.iter()
                    .all(|k| k.as_str().is_some_and(|k| set.get(k).is_some()))
            });
            if !ok {
                return Err(format!(
                    "line {}: flags.{}.metadata.dwcp.prerequisites: must list flags of this file",
                    at("dwcp.prerequisites"),
                    f.key
                ));
            }
        }
    }
    let segments = match set.get(SEGMENTS) {
        Some(f) => f.clone(),
        None => Flag::parse(
            "segments",
            &dwcp_core::config::default_segments(),
            "segments",
        )
        .map_err(|e| e.to_string())?,
    };
    Ok(Flags { set, segments })
}

/// Line of the metadata key `field` (which may contain dots) of flag `flag`.
fn line_of_meta(text: &str, flag: &str, field: &str) -> usize {
    let mut at = 0usize;
    for key in [flag, "metadata", field] {
        if let Some(i) = text[at..].find(&format!("\"{key}\"")) {
            at += i;
        }
    }
    text[..at].matches('\n').count() + 1
}

/// Line of the deepest key of a dotted `path` (`flags.x.targeting.if[2]`) found in order in `text`.
fn line_of_path(text: &str, path: &str) -> usize {
    let mut at = 0usize;
    for part in path.split('.').filter(|p| !p.is_empty()) {
        let key = part.split('[').next().unwrap_or(part);
        if let Some(i) = text[at..].find(&format!("\"{key}\"")) {
            at += i;
        }
    }
    text[..at].matches('\n').count() + 1
}

/// One OFREP evaluation result (success or error), as JSON.
pub fn evaluate(flags: &Flags, key: &str, ctx: &Map<String, Value>, state: &DynamicState) -> Value {
    let Some(flag) = flags.set.get(key) else {
        return json!({"key": key, "errorCode": "FLAG_NOT_FOUND", "errorDetails": format!("no flag {key:?}")});
    };
    let tk = ctx.get("targetingKey").and_then(Value::as_str);
    let attrs: Map<String, Value> = ctx
        .iter()
        .filter(|(k, _)| *k != "targetingKey")
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    let c = Context::new(tk, &attrs);
    let Some(rollout) = flag.metadata().get("dwcp.rollout").and_then(Value::as_str) else {
        let r = flag.evaluate(&c);
        return match (r.variant, r.value) {
            (Some(v), Some(val)) => {
                json!({"key": key, "value": val, "variant": v, "reason": reason(r.reason), "metadata": flag.metadata()})
            }
            _ => {
                json!({"key": key, "errorCode": "GENERAL", "errorDetails": "the flag resolved to no variant"})
            }
        };
    };
    let baseline = |why: &str| {
        let v = flag.default_variant().unwrap_or("off");
        json!({"key": key, "value": flag.variant(v), "variant": v, "reason": if why == "disabled" { "DISABLED" } else { "DEFAULT" },
               "metadata": {"dwcp.rollout": rollout, "dwcp.track": "stable", "dwcp.why": why}})
    };
    let on = |k: &str| {
        flags.set.get(k).is_some_and(|f| {
            let r = f.evaluate(&c);
            matches!(r.value, Some(Value::Bool(true))) || r.variant == Some("on")
        })
    };
    if flags.set.get(KILL_SWITCH).is_some() && !on(KILL_SWITCH) {
        return baseline("disabled");
    }
    let prereqs = flag
        .metadata()
        .get("dwcp.prerequisites")
        .and_then(Value::as_array);
    if let Some(p) = prereqs
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .find(|p| !on(p))
    {
        return baseline(&format!("prerequisite {p} is off"));
    }
    if state.kill_all {
        return baseline("kill_all");
    }
    let Some(rs) = state.rollouts.get(rollout).filter(|r| !r.killed) else {
        return baseline("rollout_off");
    };
    let Some(user) = tk.filter(|k| !k.trim().is_empty()) else {
        return baseline("no_key");
    };
    let seg = flags
        .segments
        .evaluate(&c)
        .variant
        .unwrap_or("standard")
        .to_string();
    let bucket = bucket_bp(rollout, user.trim());
    let canary = in_canary(bucket, rs.canary_bp(&seg));
    let variant = if canary {
        flag.metadata()
            .get("dwcp.canaryVariant")
            .and_then(Value::as_str)
            .unwrap_or("on")
    } else {
        flag.default_variant().unwrap_or("off")
    };
    json!({"key": key, "value": flag.variant(variant), "variant": variant, "reason": "SPLIT",
           "metadata": {"dwcp.rollout": rollout, "dwcp.track": if canary { "canary" } else { "stable" },
                        "dwcp.segment": seg, "dwcp.bucket": bucket, "dwcp.phase": rs.phase}})
}

fn reason(r: Reason) -> &'static str {
    match r {
        Reason::Static => "STATIC",
        Reason::TargetingMatch => "TARGETING_MATCH",
        Reason::Default => "DEFAULT",
        Reason::Disabled => "DISABLED",
        Reason::Error => "ERROR",
    }
}

/// The flag file on disk, re-read when its modification time or size changes.
pub struct FlagSource {
    pub path: PathBuf,
    stamp: Option<(SystemTime, u64)>,
    pub flags: Option<std::sync::Arc<Flags>>,
    /// Bumped on every successful load (the OFREP ETag).
    pub generation: u64,
    pub last_error: Option<String>,
    pub reloads: u64,
    pub refused: u64,
    /// The kill switch's value at the last load (None: no kill switch in the file).
    pub kill_switch_on: Option<bool>,
}

/// What a reload changed, for the caller to act on.
#[derive(Debug, PartialEq, Eq)]
pub enum Reload {
    Unchanged,
    /// The kill switch's value now and at the previous load.
    Loaded {
        kill_switch: Option<bool>,
        previous: Option<bool>,
    },
    Refused(String),
}

impl FlagSource {
    pub fn new(path: &Path) -> Self {
        Self {
            path: path.to_path_buf(),
            stamp: None,
            flags: None,
            generation: 0,
            last_error: None,
            reloads: 0,
            refused: 0,
            kill_switch_on: None,
        }
    }

    /// Re-reads the file if it changed. A refused file keeps the previous flags.
    pub fn poll(&mut self) -> Reload {
        let stamp = std::fs::metadata(&self.path)
            .ok()
            .and_then(|m| Some((m.modified().ok()?, m.len())));
        if stamp.is_some() && stamp == self.stamp {
            return Reload::Unchanged;
        }
        let text = match std::fs::read_to_string(&self.path) {
            Ok(t) => t,
            Err(e) => {
                return self.refuse(format!("cannot read {}: {e}", self.path.display()), stamp)
            }
        };
        match parse(&text) {
            Ok(f) => {
                self.stamp = stamp;
                let empty = Map::new();
                let ks = f.set.get(KILL_SWITCH).map(|k| {
                    let r = k.evaluate(&Context::new(None, &empty));
                    matches!(r.value, Some(Value::Bool(true))) || r.variant == Some("on")
                });
                let previous = std::mem::replace(&mut self.kill_switch_on, ks);
                self.flags = Some(std::sync::Arc::new(f));
                self.generation += 1;
                self.reloads += 1;
                self.last_error = None;
                Reload::Loaded {
                    kill_switch: ks,
                    previous,
                }
            }
            Err(e) => self.refuse(format!("{}: {e}", self.path.display()), stamp),
        }
    }

    /// Polls the file and applies a kill-switch change to the companion: off sets the global kill
    /// switch (filters route stable at their next sync), back on clears it. Only changes act, so an
    /// operator's own `kill on` is not undone by an unchanged file.
    pub fn poll_and_apply(&mut self, c: &mut crate::controller::Controller, now_ms: u64) {
        match self.poll() {
            Reload::Unchanged => {}
            Reload::Refused(e) => {
                tracing::error!(error = %e, "flag file refused; previous flags kept")
            }
            Reload::Loaded {
                kill_switch,
                previous,
            } => {
                tracing::info!(path = %self.path.display(), generation = self.generation, "flag file loaded");
                let set = match (kill_switch, previous) {
                    (Some(false), p) if p != Some(false) => Some(true),
                    (Some(true), Some(false)) => Some(false),
                    _ => None,
                };
                if let Some(kill) = set {
                    if let Err(e) = c.set_kill_all(kill, "flags-file", now_ms) {
                        tracing::error!(error = %e, "kill switch from the flag file");
                    }
                }
            }
        }
    }

    fn refuse(&mut self, e: String, stamp: Option<(SystemTime, u64)>) -> Reload {
        self.stamp = stamp;
        self.refused += 1;
        self.last_error = Some(e.clone());
        Reload::Refused(e)
    }
}

#[cfg(test)]
mod tests;
