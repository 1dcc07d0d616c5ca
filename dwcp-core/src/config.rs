//! The filter's static plugin config (Envoy `configuration` / Istio `pluginConfig`).
//!
//! Parse (serde, `deny_unknown_fields`), then validate into [`FilterConfig`] with `TryFrom`; every error
//! names the field, so a bad config is refused at load with a log line a person can act on.

use crate::targeting::{Flag, TargetingError};
use serde::Deserialize;
use serde_json::{json, Value};
use std::collections::BTreeMap;

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ConfigError {
    #[error("invalid plugin config JSON: {0}")]
    Json(String),
    #[error("{field}: {message}")]
    Field { field: String, message: String },
    #[error(transparent)]
    Targeting(#[from] TargetingError),
}

fn field_err(field: impl Into<String>, message: impl Into<String>) -> ConfigError {
    ConfigError::Field {
        field: field.into(),
        message: message.into(),
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    #[serde(default)]
    pub companion: RawCompanion,
    #[serde(default)]
    pub headers: RawHeaders,
    /// A flagd flag definition whose variants are the segment names.
    #[serde(default)]
    pub segments: Option<Value>,
    #[serde(default)]
    pub rollouts: Vec<RawRollout>,
    /// Add `x-dwcp-decision` to the upstream request.
    #[serde(default)]
    pub explain: bool,
    /// Count 4xx answers as errors.
    #[serde(default)]
    pub count_4xx_as_errors: bool,
    /// Longest accepted targeting header value; longer values are treated as missing (and counted).
    #[serde(default = "default_max_header_bytes")]
    pub max_header_bytes: usize,
    /// TEST ONLY: a request carrying this header makes the filter panic (to prove fail-safety). Only a
    /// module built with the filter's `test-hooks` feature accepts it; the shipped module refuses it.
    #[serde(default)]
    pub test_panic_header: Option<String>,
    /// Shadow comparison settings.
    #[serde(default)]
    pub shadow: crate::shadow::RawShadow,
}

/// The track header's name unless `headers.track` says otherwise.
pub const DEFAULT_TRACK_HEADER: &str = "x-dwcp-track";

fn default_max_header_bytes() -> usize {
    1024
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawCompanion {
    pub cluster: String,
    pub authority: String,
    pub token: String,
    pub sync_period_ms: u64,
    pub staleness_ms: u64,
    pub timeout_ms: u64,
}

impl Default for RawCompanion {
    fn default() -> Self {
        Self {
            cluster: "dwcp_companion".into(),
            authority: "dwcp-companion".into(),
            token: String::new(),
            sync_period_ms: 1000,
            staleness_ms: 10_000,
            timeout_ms: 500,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawHeaders {
    pub track: String,
    pub decision: String,
    pub targeting_key: String,
    /// attribute name → header (string value) or `{header, type}` with type `string` or `bool`.
    pub attributes: BTreeMap<String, RawAttribute>,
}

impl Default for RawHeaders {
    fn default() -> Self {
        let mut attributes = BTreeMap::new();
        for (a, h) in [
            ("email", "x-user-email"),
            ("tier", "x-user-tier"),
            ("country", "x-user-country"),
        ] {
            attributes.insert(a.to_string(), RawAttribute::Header(h.to_string()));
        }
        attributes.insert(
            "beta_opt_in".into(),
            RawAttribute::Typed {
                header: "x-beta-opt-in".into(),
                r#type: AttrType::Bool,
            },
        );
        Self {
            track: DEFAULT_TRACK_HEADER.into(),
            decision: "x-dwcp-decision".into(),
            targeting_key: "x-user-id".into(),
            attributes,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum RawAttribute {
    Header(String),
    Typed { header: String, r#type: AttrType },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase", deny_unknown_fields)]
pub enum AttrType {
    String,
    Bool,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRollout {
    pub name: String,
    /// Authorities this rollout owns (`*` = any); port suffixes are ignored.
    #[serde(default = "any_host")]
    pub hosts: Vec<String>,
    #[serde(default = "root_path")]
    pub path_prefix: String,
    /// Cluster receiving shadow copies (shadow phase).
    #[serde(default)]
    pub shadow_cluster: Option<String>,
    /// A stable cluster receiving the second copy used to estimate noise (`shadow.noise_copy`).
    #[serde(default)]
    pub noise_cluster: Option<String>,
}

fn any_host() -> Vec<String> {
    vec!["*".into()]
}
fn root_path() -> String {
    "/".into()
}

/// The default segment rule (internal by e-mail domain, beta opt-in, premium, enterprise, standard; first match wins), as a flagd flag definition.
pub fn default_segments() -> Value {
    json!({
        "state": "ENABLED",
        "variants": {"internal": "internal", "beta": "beta", "premium": "premium",
                     "enterprise": "enterprise", "standard": "standard"},
        "defaultVariant": "standard",
        "targeting": {"if": [
            {"ends_with": [{"var": "email"}, "@company.com"]}, "internal",
            {"==": [{"var": "beta_opt_in"}, true]}, "beta",
            {"==": [{"var": "tier"}, "premium"]}, "premium",
            {"==": [{"var": "tier"}, "enterprise"]}, "enterprise",
            "standard"
        ]}
    })
}

/// Validated filter config.
#[derive(Debug, Clone)]
pub struct FilterConfig {
    pub companion: Companion,
    pub track_header: String,
    pub decision_header: String,
    pub targeting_key_header: String,
    pub attributes: Vec<(String, String, AttrType)>,
    pub segment_flag: Flag,
    /// Segment names, sorted; telemetry indexes segments by position here.
    pub segments: Vec<String>,
    pub rollouts: Vec<Rollout>,
    pub explain: bool,
    pub count_4xx_as_errors: bool,
    pub max_header_bytes: usize,
    pub test_panic_header: Option<String>,
    pub shadow: crate::shadow::ShadowSettings,
}

#[derive(Debug, Clone)]
pub struct Companion {
    pub cluster: String,
    pub authority: String,
    pub token: String,
    pub sync_period_ms: u64,
    pub staleness_ms: u64,
    pub timeout_ms: u64,
}

#[derive(Debug, Clone)]
pub struct Rollout {
    pub name: String,
    pub hosts: Vec<String>,
    pub path_prefix: String,
    pub shadow_cluster: Option<String>,
    /// Set only when `shadow.noise_copy` is on.
    pub noise_cluster: Option<String>,
}

impl Rollout {
    pub fn matches(&self, authority: &str, path: &str) -> bool {
        let host = authority.rsplit_once(':').map_or(authority, |(h, p)| {
            if p.bytes().all(|b| b.is_ascii_digit()) {
                h
            } else {
                authority
            }
        });
        path.starts_with(self.path_prefix.as_str())
            && self
                .hosts
                .iter()
                .any(|h| h == "*" || h.eq_ignore_ascii_case(host))
    }
}

fn valid_header_name(field: &str, name: &str) -> Result<String, ConfigError> {
    let ok = !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_');
    if ok {
        Ok(name.to_string())
    } else {
        Err(field_err(
            field,
            format!("{name:?} is not a lowercase HTTP header name"),
        ))
    }
}

impl FilterConfig {
    /// Parses and validates plugin config bytes. Empty config means all defaults (no rollouts).
    pub fn from_slice(bytes: &[u8]) -> Result<Self, ConfigError> {
        let raw: RawConfig = if bytes.iter().all(u8::is_ascii_whitespace) {
            serde_json::from_str("{}").map_err(|e| ConfigError::Json(e.to_string()))?
        } else {
            serde_json::from_slice(bytes).map_err(|e| ConfigError::Json(e.to_string()))?
        };
        Self::try_from(raw)
    }
}

impl TryFrom<RawConfig> for FilterConfig {
    type Error = ConfigError;

    fn try_from(raw: RawConfig) -> Result<Self, ConfigError> {
        let c = raw.companion;
        if c.cluster.is_empty() {
            return Err(field_err("companion.cluster", "must not be empty"));
        }
        if !(100..=60_000).contains(&c.sync_period_ms) {
            return Err(field_err(
                "companion.sync_period_ms",
                "must be between 100 and 60000",
            ));
        }
        if c.staleness_ms < 2 * c.sync_period_ms {
            return Err(field_err(
                "companion.staleness_ms",
                "must be at least twice companion.sync_period_ms",
            ));
        }
        if c.timeout_ms == 0 || c.timeout_ms > c.sync_period_ms * 10 {
            return Err(field_err(
                "companion.timeout_ms",
                "must be > 0 and at most 10 sync periods",
            ));
        }
        let h = raw.headers;
        let track_header = valid_header_name("headers.track", &h.track)?;
        let decision_header = valid_header_name("headers.decision", &h.decision)?;
        let targeting_key_header = valid_header_name("headers.targeting_key", &h.targeting_key)?;
        let mut attributes = Vec::new();
        for (name, a) in h.attributes {
            let (header, ty) = match a {
                RawAttribute::Header(hd) => (hd, AttrType::String),
                RawAttribute::Typed { header, r#type } => (header, r#type),
            };
            let header = valid_header_name(&format!("headers.attributes.{name}"), &header)?;
            attributes.push((name, header, ty));
        }
        let seg_def = raw.segments.unwrap_or_else(default_segments);
        let segment_flag = Flag::parse("segments", &seg_def, "segments")?;
        let mut segments: Vec<String> = segment_flag.variant_names().map(str::to_string).collect();
        segments.sort();
        if segments.is_empty() {
            return Err(field_err(
                "segments.variants",
                "at least one segment is required",
            ));
        }
        if segments.len() > 64 {
            return Err(field_err("segments.variants", "at most 64 segments"));
        }
        let mut rollouts: Vec<Rollout> = Vec::new();
        for (i, r) in raw.rollouts.into_iter().enumerate() {
            let f = format!("rollouts[{i}]");
            let name_ok = !r.name.is_empty()
                && r.name.len() <= 64
                && r.name
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
            if !name_ok {
                return Err(field_err(
                    format!("{f}.name"),
                    "must be 1-64 characters of [A-Za-z0-9_-]",
                ));
            }
            if rollouts.iter().any(|o| o.name == r.name) {
                return Err(field_err(
                    format!("{f}.name"),
                    format!("duplicate rollout {:?}", r.name),
                ));
            }
            if !r.path_prefix.starts_with('/') {
                return Err(field_err(format!("{f}.path_prefix"), "must start with '/'"));
            }
            if r.hosts.is_empty() {
                return Err(field_err(
                    format!("{f}.hosts"),
                    "must list at least one host or \"*\"",
                ));
            }
            for (field, c) in [
                ("shadow_cluster", &r.shadow_cluster),
                ("noise_cluster", &r.noise_cluster),
            ] {
                if c.as_ref().is_some_and(|c| c.is_empty()) {
                    return Err(field_err(format!("{f}.{field}"), "must not be empty"));
                }
            }
            let noise_cluster = if raw.shadow.noise_copy && r.shadow_cluster.is_some() {
                if r.noise_cluster.is_none() {
                    return Err(field_err(
                        format!("{f}.noise_cluster"),
                        "required when shadow.noise_copy is true: the stable cluster that gets the second copy",
                    ));
                }
                if r.noise_cluster == r.shadow_cluster {
                    return Err(field_err(
                        format!("{f}.noise_cluster"),
                        "must be a stable cluster, not the shadow cluster",
                    ));
                }
                r.noise_cluster
            } else {
                None
            };
            rollouts.push(Rollout {
                name: r.name,
                hosts: r.hosts,
                path_prefix: r.path_prefix,
                shadow_cluster: r.shadow_cluster,
                noise_cluster,
            });
        }
        if raw.max_header_bytes == 0 || raw.max_header_bytes > 64 * 1024 {
            return Err(field_err("max_header_bytes", "must be between 1 and 65536"));
        }
        let test_panic_header = match raw.test_panic_header {
            Some(hd) => Some(valid_header_name("test_panic_header", &hd)?),
            None => None,
        };
        let shadow = raw.shadow.validate()?;
        Ok(FilterConfig {
            shadow,
            companion: Companion {
                cluster: c.cluster,
                authority: c.authority,
                token: c.token,
                sync_period_ms: c.sync_period_ms,
                staleness_ms: c.staleness_ms,
                timeout_ms: c.timeout_ms,
            },
            track_header,
            decision_header,
            targeting_key_header,
            attributes,
            segment_flag,
            segments,
            rollouts,
            explain: raw.explain,
            count_4xx_as_errors: raw.count_4xx_as_errors,
            max_header_bytes: raw.max_header_bytes,
            test_panic_header,
        })
    }
}

impl FilterConfig {
    pub fn segment_index(&self, name: &str) -> Option<usize> {
        self.segments
            .binary_search_by(|s| s.as_str().cmp(name))
            .ok()
    }
}

#[cfg(test)]
mod tests;
