//! Shadow settings from the plugin config (`shadow: {…}`): parse, validate with field-named errors,
//! request eligibility, and the ignored-field patterns.

use crate::config::ConfigError;
use serde::Deserialize;

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
    /// Request headers never copied to the shadow (credentials by default; add API-key headers).
    pub strip_headers: Vec<String>,
    /// Per-deployment key of the shadow mark: copies carry `x-dwcp-shadow-mac`, the HMAC-SHA256 of
    /// their `x-request-id` under this key (hex), so a service can verify the mark (at least 16 bytes).
    pub mark_key: Option<String>,
}

/// Credentials a shadow copy never carries unless `shadow.strip_headers` says otherwise.
pub fn default_strip_headers() -> Vec<String> {
    [
        "authorization",
        "proxy-authorization",
        "cookie",
        "x-api-key",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
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
            strip_headers: default_strip_headers(),
            mark_key: None,
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
    /// Lower-case names of request headers dropped from copies.
    pub strip_headers: Vec<String>,
    /// Key of the shadow mark's HMAC (`x-dwcp-shadow-mac`).
    pub mark_key: Option<String>,
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
            strip_headers: default_strip_headers(),
            mark_key: None,
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
        let mut strip_headers = Vec::new();
        for (i, h) in self.strip_headers.iter().enumerate() {
            if h.is_empty()
                || !h
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
            {
                return Err(field_err(
                    &format!("strip_headers[{i}]"),
                    format!("{h:?} is not an HTTP header name"),
                ));
            }
            strip_headers.push(h.to_ascii_lowercase());
        }
        if let Some(k) = &self.mark_key {
            if k.len() < 16 {
                return Err(field_err("mark_key", "must be at least 16 bytes"));
            }
        }
        Ok(ShadowSettings {
            strip_headers,
            mark_key: self.mark_key,
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
    /// Whether a request may be mirrored: method and path prefix, and a request body (announced by
    /// `content-length`) within `max_body_bytes`. A body of unknown length (chunked) is eligible; the
    /// filter drops the copy if it grows past the bound while being copied.
    pub fn eligible(&self, method: &str, path: &str, body_len: Option<u64>) -> Result<(), Skip> {
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
        match body_len {
            Some(n) if n > self.max_body_bytes as u64 => Err(Skip::BodyTooBig),
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
