//! Mismatch samples are user data: redacted when they arrive, kept a bounded time, served only to the
//! `read` role (`crate::auth`).
//!
//! * **Query values**: `GET /p?user=alice&token=x` is stored as `GET /p?user=_&token=_` (names kept:
//!   they say which request it was; values dropped).
//! * **Body fields**: a difference whose JSON path (`a.b.c`, `items[3].email`) or last segment matches
//!   one of `samples.redact_fields` keeps its path and loses both values (`[redacted]`).
//! * **Retention**: at most `samples.max_per_rollout` samples per rollout (≤ the ledger's ring) and none
//!   older than `samples.max_age_seconds` (0: no age limit).

use dwcp_core::shadow::MismatchSample;
use serde::Deserialize;

pub const REDACTED: &str = "[redacted]";

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SampleConfig {
    /// JSON field names or paths whose values are never stored.
    #[serde(default = "default_fields")]
    pub redact_fields: Vec<String>,
    /// Replace every query value by `_` (default true).
    #[serde(default = "yes")]
    pub redact_query: bool,
    #[serde(default = "default_max")]
    pub max_per_rollout: usize,
    #[serde(default = "default_age")]
    pub max_age_seconds: u64,
}

fn yes() -> bool {
    true
}
fn default_max() -> usize {
    dwcp_core::ledger::SHADOW_SAMPLES_KEPT
}
fn default_age() -> u64 {
    7 * 24 * 3600
}
fn default_fields() -> Vec<String> {
    [
        "password", "token", "secret", "email", "phone", "ssn", "card", "iban", "address",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

impl Default for SampleConfig {
    fn default() -> Self {
        Self {
            redact_fields: default_fields(),
            redact_query: true,
            max_per_rollout: default_max(),
            max_age_seconds: default_age(),
        }
    }
}

impl SampleConfig {
    pub fn validate(&self) -> Result<(), (String, String)> {
        if self.max_per_rollout > dwcp_core::ledger::SHADOW_SAMPLES_KEPT {
            return Err((
                "max_per_rollout".into(),
                format!("must be at most {}", dwcp_core::ledger::SHADOW_SAMPLES_KEPT),
            ));
        }
        if self.redact_fields.iter().any(|f| f.is_empty()) {
            return Err(("redact_fields".into(), "empty field name".into()));
        }
        Ok(())
    }

    fn field_redacted(&self, path: &str) -> bool {
        // `items[3].email` → segments `items`, `email`; a configured `a.b` matches the path itself.
        let plain: String = strip_indices(path);
        let last = plain.rsplit('.').next().unwrap_or(&plain);
        self.redact_fields
            .iter()
            .any(|f| f.eq_ignore_ascii_case(last) || f.eq_ignore_ascii_case(&plain))
    }

    /// Redacts one sample in place.
    pub fn redact(&self, s: &mut MismatchSample) {
        if self.redact_query {
            s.request = redact_query(&s.request);
        }
        for d in &mut s.diffs {
            if self.field_redacted(&d.path) {
                d.primary = REDACTED.into();
                d.shadow = REDACTED.into();
            }
        }
    }
}

fn strip_indices(path: &str) -> String {
    let mut out = String::with_capacity(path.len());
    let mut depth = 0;
    for ch in path.chars() {
        match ch {
            '[' => depth += 1,
            ']' => depth -= 1,
            c if depth == 0 => out.push(c),
            _ => {}
        }
    }
    out
}

/// `METHOD /path?a=1&b=2#f` → `METHOD /path?a=_&b=_`.
pub fn redact_query(request: &str) -> String {
    let Some((head, query)) = request.split_once('?') else {
        return request.to_string();
    };
    let query = query.split('#').next().unwrap_or("");
    let parts: Vec<String> = query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| match p.split_once('=') {
            Some((k, _)) => format!("{k}=_"),
            None => p.to_string(),
        })
        .collect();
    format!("{head}?{}", parts.join("&"))
}

/// Removes `shadow_samples` from an event's evidence (for a caller without the `read` role).
pub fn strip_samples(v: &mut serde_json::Value) {
    if let Some(m) = v.as_object_mut() {
        if m.remove("shadow_samples").is_some() {
            m.insert("shadow_samples_withheld".into(), true.into());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use dwcp_core::shadow::Diff;

    #[test]
    fn query_values_and_fields_are_redacted() {
        assert_eq!(
            redact_query("GET /a/b?user=alice&t=s3cr3t&flag#frag"),
            "GET /a/b?user=_&t=_&flag"
        );
        assert_eq!(redact_query("GET /a"), "GET /a");
        let cfg = SampleConfig::default();
        let mut s = MismatchSample {
            rollout: "r".into(),
            request: "GET /x?email=a@b.c".into(),
            kinds: vec![],
            primary_status: 200,
            shadow_status: 200,
            latency_delta_ms: 0.0,
            diffs: vec![
                Diff {
                    path: "users[2].email".into(),
                    primary: "\"a@b.c\"".into(),
                    shadow: "\"x@y.z\"".into(),
                },
                Diff {
                    path: "item.price".into(),
                    primary: "10".into(),
                    shadow: "11".into(),
                },
            ],
            noise_paths: vec![],
        };
        cfg.redact(&mut s);
        assert_eq!(s.request, "GET /x?email=_");
        assert_eq!(s.diffs[0].primary, REDACTED);
        assert_eq!(s.diffs[0].shadow, REDACTED);
        assert_eq!(s.diffs[1].shadow, "11", "other fields are kept");
    }
}
