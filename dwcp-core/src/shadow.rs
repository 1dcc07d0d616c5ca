//! Shadow comparison (SPEC.md 2.6): settings, eligibility, the pure comparison of a primary and a shadow
//! answer, the per-rollout [`ShadowStats`] accumulator shipped in telemetry batches, and the bounded
//! [`MismatchSample`]s sent as evidence.
//!
//! Comparison: status class, configured headers, body — byte-equal, or for JSON bodies equal after
//! dropping ignored fields (name patterns, default timestamps and ids) with key order normalised — and the
//! latency delta against a tolerance. No I/O, no clock: latencies are inputs.

use crate::config::ConfigError;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::BTreeSet;

mod noise;
mod stats;
pub use noise::{NoiseModel, MAX_NOISE_PATHS};
pub use stats::{MismatchSample, ShadowStats};

/// Longest value kept in a diff (characters); longer values are cut and end with `…`.
pub const MAX_VALUE_CHARS: usize = 128;
/// Most differing paths kept per comparison.
pub const MAX_DIFFS: usize = 16;
/// Most mismatch samples a VM ships per rollout per batch.
pub const MAX_SAMPLES_PER_BATCH: usize = 8;

fn field_err(field: &str, message: impl Into<String>) -> ConfigError {
    ConfigError::Field {
        field: format!("shadow.{field}"),
        message: message.into(),
    }
}

/// Shadow settings as written in the plugin config (`shadow: {…}`); every field optional.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawShadow {
    pub methods: Vec<String>,
    pub path_prefixes: Vec<String>,
    pub max_body_bytes: usize,
    pub compare_headers: Vec<String>,
    pub ignore_fields: Vec<String>,
    pub latency_tolerance_ms: u64,
    pub noise_copy: bool,
    pub noise_min_rate: f64,
    pub timeout_ms: u64,
    pub max_in_flight: usize,
}

pub fn default_ignore_fields() -> Vec<String> {
    ["timestamp", "ts", "*_at", "id", "*_id", "*Id", "request_id"]
        .iter()
        .map(|s| s.to_string())
        .collect()
}

impl Default for RawShadow {
    fn default() -> Self {
        Self {
            methods: vec!["GET".into(), "HEAD".into()],
            path_prefixes: vec![],
            max_body_bytes: 65_536,
            compare_headers: vec![],
            ignore_fields: default_ignore_fields(),
            latency_tolerance_ms: 50,
            noise_copy: false,
            noise_min_rate: 0.01,
            timeout_ms: 2000,
            max_in_flight: 64,
        }
    }
}

/// Validated shadow settings.
#[derive(Debug, Clone, PartialEq)]
pub struct ShadowSettings {
    /// Upper-case method names.
    pub methods: Vec<String>,
    /// Empty: every path.
    pub path_prefixes: Vec<String>,
    pub max_body_bytes: usize,
    /// Lower-case header names.
    pub compare_headers: Vec<String>,
    pub ignore_fields: Vec<FieldPattern>,
    pub latency_tolerance_ms: u64,
    /// Send a second copy to the rollout's `noise_cluster` (stable) and discount what two stable
    /// answers also disagree on (Diffy-style noise).
    pub noise_copy: bool,
    /// A path that differed between two stable answers in at least this share of a worker's noise
    /// comparisons is noise for every comparison.
    pub noise_min_rate: f64,
    pub timeout_ms: u64,
    pub max_in_flight: usize,
}

impl Default for ShadowSettings {
    fn default() -> Self {
        // The defaults are valid by construction.
        RawShadow::default().validate().unwrap_or(ShadowSettings {
            methods: vec!["GET".into(), "HEAD".into()],
            path_prefixes: vec![],
            max_body_bytes: 65_536,
            compare_headers: vec![],
            ignore_fields: vec![],
            latency_tolerance_ms: 50,
            noise_copy: false,
            noise_min_rate: 0.01,
            timeout_ms: 2000,
            max_in_flight: 64,
        })
    }
}

impl RawShadow {
    pub fn validate(self) -> Result<ShadowSettings, ConfigError> {
        let mut methods = Vec::new();
        for (i, m) in self.methods.iter().enumerate() {
            if m.is_empty() || m.len() > 16 || !m.bytes().all(|b| b.is_ascii_alphabetic()) {
                return Err(field_err(
                    &format!("methods[{i}]"),
                    format!("{m:?} is not an HTTP method"),
                ));
            }
            methods.push(m.to_ascii_uppercase());
        }
        for (i, p) in self.path_prefixes.iter().enumerate() {
            if !p.starts_with('/') {
                return Err(field_err(
                    &format!("path_prefixes[{i}]"),
                    "must start with '/'",
                ));
            }
        }
        if self.max_body_bytes == 0 || self.max_body_bytes > 16 * 1024 * 1024 {
            return Err(field_err(
                "max_body_bytes",
                "must be between 1 and 16777216",
            ));
        }
        let mut compare_headers = Vec::new();
        for (i, h) in self.compare_headers.iter().enumerate() {
            let ok = !h.is_empty()
                && h.bytes().all(|b| {
                    b.is_ascii_alphanumeric()
                        || b == b'-'
                        || b == b'_'
                        || (b == b':' && h.starts_with(':'))
                });
            if !ok {
                return Err(field_err(
                    &format!("compare_headers[{i}]"),
                    format!("{h:?} is not an HTTP header name"),
                ));
            }
            compare_headers.push(h.to_ascii_lowercase());
        }
        let mut ignore_fields = Vec::new();
        for (i, f) in self.ignore_fields.iter().enumerate() {
            ignore_fields.push(FieldPattern::parse(f).ok_or_else(|| {
                field_err(
                    &format!("ignore_fields[{i}]"),
                    format!("{f:?}: empty, or '*' not only at the start or end"),
                )
            })?);
        }
        if self.latency_tolerance_ms > 60_000 {
            return Err(field_err("latency_tolerance_ms", "must be at most 60000"));
        }
        if self.timeout_ms == 0 || self.timeout_ms > 60_000 {
            return Err(field_err("timeout_ms", "must be between 1 and 60000"));
        }
        if !(self.noise_min_rate > 0.0 && self.noise_min_rate <= 1.0) {
            return Err(field_err("noise_min_rate", "must be in (0, 1]"));
        }
        if self.max_in_flight == 0 || self.max_in_flight > 10_000 {
            return Err(field_err("max_in_flight", "must be between 1 and 10000"));
        }
        Ok(ShadowSettings {
            methods,
            path_prefixes: self.path_prefixes,
            max_body_bytes: self.max_body_bytes,
            compare_headers,
            ignore_fields,
            latency_tolerance_ms: self.latency_tolerance_ms,
            noise_copy: self.noise_copy,
            noise_min_rate: self.noise_min_rate,
            timeout_ms: self.timeout_ms,
            max_in_flight: self.max_in_flight,
        })
    }
}

/// Why a request of a shadowed rollout is not mirrored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Skip {
    NotEligible,
    BodyTooBig,
}

impl ShadowSettings {
    /// Whether a request may be mirrored: method and path prefix; a request body (announced by
    /// `content-length`, or chunked) must be empty or small — bodies are not copied, so any request body
    /// makes it not eligible unless it is empty.
    pub fn eligible(
        &self,
        method: &str,
        path: &str,
        body_len: Option<u64>,
        chunked: bool,
    ) -> Result<(), Skip> {
        if !self.methods.iter().any(|m| m.eq_ignore_ascii_case(method)) {
            return Err(Skip::NotEligible);
        }
        if !self.path_prefixes.is_empty()
            && !self
                .path_prefixes
                .iter()
                .any(|p| path.starts_with(p.as_str()))
        {
            return Err(Skip::NotEligible);
        }
        if chunked {
            return Err(Skip::NotEligible);
        }
        match body_len {
            Some(n) if n as usize > self.max_body_bytes => Err(Skip::BodyTooBig),
            Some(n) if n > 0 => Err(Skip::NotEligible),
            _ => Ok(()),
        }
    }

    pub fn ignored(&self, key: &str) -> bool {
        self.ignore_fields.iter().any(|p| p.matches(key))
    }
}

/// A field-name pattern: `name`, `*suffix`, `prefix*` or `*infix*`; case-insensitive.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldPattern {
    text: String,
    star_start: bool,
    star_end: bool,
    /// A pattern with an upper-case letter (`*Id`) matches case-sensitively, so camelCase ids are
    /// ignored without swallowing words like `paid`.
    case_sensitive: bool,
}

impl FieldPattern {
    pub fn parse(p: &str) -> Option<Self> {
        let star_start = p.starts_with('*');
        let star_end = p.len() > 1 && p.ends_with('*');
        let text = p.strip_prefix('*').unwrap_or(p);
        let text = if star_end {
            text.strip_suffix('*').unwrap_or(text)
        } else {
            text
        };
        if text.is_empty() || text.contains('*') {
            return None;
        }
        let case_sensitive = text.bytes().any(|b| b.is_ascii_uppercase());
        Some(Self {
            text: if case_sensitive {
                text.to_string()
            } else {
                text.to_ascii_lowercase()
            },
            star_start,
            star_end,
            case_sensitive,
        })
    }

    pub fn matches(&self, key: &str) -> bool {
        // No allocation: this runs for every key of every compared answer.
        let (k, t) = (key.as_bytes(), self.text.as_bytes());
        let eq = |a: &[u8]| {
            if self.case_sensitive {
                a == t
            } else {
                a.eq_ignore_ascii_case(t)
            }
        };
        if k.len() < t.len() {
            return false;
        }
        match (self.star_start, self.star_end) {
            (false, false) => eq(k),
            (true, false) => eq(&k[k.len() - t.len()..]),
            (false, true) => eq(&k[..t.len()]),
            (true, true) => k.windows(t.len()).any(eq),
        }
    }
}

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
    pub fn is_error(&self) -> bool {
        self.status == 0 || self.status >= 500
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
#[serde(deny_unknown_fields)]
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
