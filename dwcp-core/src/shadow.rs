//! Shadow comparison: settings, eligibility, the pure comparison of a primary and a shadow
//! answer, the per-rollout [`ShadowStats`] accumulator shipped in telemetry batches, and the bounded
//! [`MismatchSample`]s sent as evidence.
//!
//! Comparison: status class, configured headers, body — byte-equal, or for JSON bodies equal after
//! dropping ignored fields (name patterns, default timestamps and ids) with key order normalised — and the
//! latency delta against a tolerance. No I/O, no clock: latencies are inputs.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::BTreeSet;

mod noise;
mod settings;
mod stats;
pub use noise::{NoiseModel, MAX_NOISE_PATHS};
pub use settings::{default_ignore_fields, FieldPattern, RawShadow, ShadowSettings, Skip};
pub use stats::{MismatchSample, ShadowStats};

/// Longest value kept in a diff (characters); longer values are cut and end with `…`.
pub const MAX_VALUE_CHARS: usize = 128;
/// Most differing paths kept per comparison.
pub const MAX_DIFFS: usize = 16;
/// Most mismatch samples a VM ships per rollout per batch.
pub const MAX_SAMPLES_PER_BATCH: usize = 8;

/// One side of a comparison.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Answer {
    /// 0: no answer.
    pub status: u16,
    /// Only the configured headers, lower-case names.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    pub latency_us: u64,
}

impl Answer {
    /// An error answer as [`crate::route::is_error`] defines it (4xx never counts in a comparison).
    pub fn is_error(&self) -> bool {
        crate::route::is_error(self.status, false)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, PartialOrd, Ord)]
#[serde(rename_all = "snake_case")]
pub enum MismatchKind {
    Status,
    Header,
    Body,
}

/// One differing place: a JSON path (`item.price`, `items[2]`), `:status`, a header name, or `<body>`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Diff {
    pub path: String,
    pub primary: String,
    pub shadow: String,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct Outcome {
    pub kinds: BTreeSet<MismatchKind>,
    pub diffs: Vec<Diff>,
    /// shadow − primary, µs (negative: shadow faster).
    pub latency_delta_us: i64,
    pub slower: bool,
    pub primary_error: bool,
    pub shadow_error: bool,
    /// Set by [`NoiseModel::classify`]: a second stable answer was compared with the primary.
    pub stable_compared: bool,
    /// ... and the two stable answers differed.
    pub stable_differs: bool,
    /// Every difference is at a path that is noise (see [`NoiseModel`]): not a regression.
    pub noise: bool,
    /// Paths of `diffs` moved here because they are noise.
    pub noise_paths: Vec<String>,
}

impl Outcome {
    pub fn mismatch(&self) -> bool {
        !self.kinds.is_empty()
    }
}

pub(crate) fn truncate(s: &str) -> String {
    if s.chars().count() <= MAX_VALUE_CHARS {
        s.to_string()
    } else {
        let mut t: String = s.chars().take(MAX_VALUE_CHARS).collect();
        t.push('…');
        t
    }
}

fn show(v: Option<&Value>) -> String {
    match v {
        None => "<absent>".into(),
        Some(v) => truncate(&v.to_string()),
    }
}

fn push_diff(out: &mut Vec<Diff>, path: String, primary: String, shadow: String) {
    if out.len() < MAX_DIFFS {
        out.push(Diff {
            path,
            primary,
            shadow,
        });
    }
}

fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_string()
    } else {
        format!("{path}.{key}")
    }
}

/// Whether two JSON values are equal once object keys that match `ignored` (at any depth) are dropped and
/// key order is ignored. Allocation-free: the common case (no difference) costs no path strings.
pub fn json_equal(s: &ShadowSettings, a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => {
            let kept =
                |m: &serde_json::Map<String, Value>| m.keys().filter(|k| !s.ignored(k)).count();
            x.iter()
                .filter(|(k, _)| !s.ignored(k))
                .all(|(k, v)| y.get(k).is_some_and(|w| json_equal(s, v, w)))
                && kept(x) == kept(y)
        }
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(v, w)| json_equal(s, v, w))
        }
        (Value::Number(x), Value::Number(y)) => {
            x == y || (x.as_f64().is_some() && x.as_f64() == y.as_f64())
        }
        _ => a == b,
    }
}

/// Differences between two JSON values, ignoring object keys that match `ignored` (at any depth) and key
/// order. Paths are dotted with `[i]` for array elements; the root is `$`.
pub fn json_diff(
    s: &ShadowSettings,
    path: &str,
    a: Option<&Value>,
    b: Option<&Value>,
    out: &mut Vec<Diff>,
) -> bool {
    let label = || {
        if path.is_empty() {
            "$".to_string()
        } else {
            path.to_string()
        }
    };
    match (a, b) {
        (Some(Value::Object(x)), Some(Value::Object(y))) => {
            let keys: BTreeSet<&String> =
                x.keys().chain(y.keys()).filter(|k| !s.ignored(k)).collect();
            let mut differs = false;
            for k in keys {
                differs |= json_diff(s, &join(path, k), x.get(k), y.get(k), out);
            }
            differs
        }
        (Some(Value::Array(x)), Some(Value::Array(y))) => {
            let mut differs = false;
            for i in 0..x.len().max(y.len()) {
                differs |= json_diff(s, &format!("{path}[{i}]"), x.get(i), y.get(i), out);
            }
            differs
        }
        (Some(x), Some(y)) if x == y => false,
        (Some(Value::Number(x)), Some(Value::Number(y)))
            if x.as_f64().is_some() && x.as_f64() == y.as_f64() =>
        {
            false
        }
        (None, None) => false,
        _ => {
            push_diff(out, label(), show(a), show(b));
            true
        }
    }
}

fn looks_json(b: &[u8]) -> bool {
    matches!(
        b.iter().find(|c| !c.is_ascii_whitespace()),
        Some(b'{') | Some(b'[')
    )
}

/// Compares a primary and a shadow answer.
pub fn compare(s: &ShadowSettings, primary: &Answer, shadow: &Answer) -> Outcome {
    let mut o = Outcome {
        primary_error: primary.is_error(),
        shadow_error: shadow.is_error(),
        latency_delta_us: shadow.latency_us as i64 - primary.latency_us as i64,
        ..Default::default()
    };
    o.slower = o.latency_delta_us > (s.latency_tolerance_ms as i64) * 1000;
    if primary.status / 100 != shadow.status / 100 {
        o.kinds.insert(MismatchKind::Status);
        push_diff(
            &mut o.diffs,
            ":status".into(),
            primary.status.to_string(),
            shadow.status.to_string(),
        );
    }
    for h in &s.compare_headers {
        let get = |a: &Answer| {
            a.headers
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(h))
                .map(|(_, v)| v.clone())
        };
        let (x, y) = (get(primary), get(shadow));
        if x != y {
            o.kinds.insert(MismatchKind::Header);
            let f = |v: Option<String>| v.map_or("<absent>".to_string(), |v| truncate(&v));
            push_diff(&mut o.diffs, h.clone(), f(x), f(y));
        }
    }
    if primary.body != shadow.body {
        let parsed = if looks_json(&primary.body) && looks_json(&shadow.body) {
            match (
                serde_json::from_slice::<Value>(&primary.body),
                serde_json::from_slice::<Value>(&shadow.body),
            ) {
                (Ok(a), Ok(b)) => Some((a, b)),
                _ => None,
            }
        } else {
            None
        };
        let differs = match parsed {
            Some((a, b)) => {
                !json_equal(s, &a, &b) && json_diff(s, "", Some(&a), Some(&b), &mut o.diffs)
            }
            None => {
                let f = |b: &[u8]| truncate(&String::from_utf8_lossy(b));
                push_diff(
                    &mut o.diffs,
                    "<body>".into(),
                    f(&primary.body),
                    f(&shadow.body),
                );
                true
            }
        };
        if differs {
            o.kinds.insert(MismatchKind::Body);
        }
    }
    o
}

#[cfg(test)]
mod tests;
