//! The companion's config file (TOML): listen address, token, database, tick, rollouts.
//! Parsed with `deny_unknown_fields`, then validated; errors name the field and the service refuses to
//! start (exit code 64).

use dwcp_core::rollout::{Guardrails, Phase, RolloutSpec, SegmentPolicy};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("{path}: {message}")]
    Parse { path: String, message: String },
    #[error("{path}: {field}: {message}")]
    Field {
        path: String,
        field: String,
        message: String,
    },
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    #[serde(default = "default_listen")]
    listen: String,
    #[serde(default = "default_db")]
    db: PathBuf,
    /// Legacy: one bearer token holding every role (loopback only). `token_env` names an env var.
    #[serde(default)]
    token: Option<String>,
    #[serde(default)]
    token_env: Option<String>,
    /// Credentials by role (`crate::auth`): `[[credential]]` with name, role and a token source.
    #[serde(default, rename = "credential")]
    credentials: Vec<crate::auth::RawCredential>,
    /// Open the `read` routes to anyone (loopback only; mismatch samples still need `read`).
    #[serde(default)]
    public_reads: bool,
    /// Mismatch samples kept per rollout (oldest dropped first), and how long (seconds, 0 = no limit).
    #[serde(default)]
    samples: crate::redact::SampleConfig,
    /// Largest decompressed output of `/v1/engines/compression/decompress`, bytes.
    #[serde(default = "default_decompress_budget")]
    decompress_budget_bytes: u64,
    #[serde(default = "default_tick")]
    tick_ms: u64,
    /// Largest accepted clock skew of a batch's `sent_at_ms` into the future.
    #[serde(default = "default_skew")]
    max_future_skew_ms: u64,
    #[serde(default, rename = "rollout")]
    rollouts: Vec<RawRollout>,
    /// The release train: a plan file driving these rollouts (`crate::train`).
    #[serde(default)]
    train: Option<TrainConfig>,
    /// flagd flag-definition JSON served to applications over OFREP (`crate::ofrep`), reloaded on change.
    #[serde(default)]
    flags: Option<PathBuf>,
    /// The in-process consensus clusters (`crate::consensus`): `[consensus.pbft]` etc.
    #[serde(default)]
    consensus: crate::consensus::ConsensusConfig,
    /// `[store]`: audit-log retention (`crate::store::RetentionConfig`).
    #[serde(default)]
    store: crate::store::RetentionConfig,
    /// `[api]`: request timeout and concurrency limit (`crate::serve::ApiLimits`).
    #[serde(default)]
    api: crate::serve::ApiLimits,
}

/// `[train]`: which plan to run and how fast its clock goes (1 = calendar time).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrainConfig {
    pub plan: PathBuf,
    #[serde(default = "default_speed")]
    pub speed: f64,
}

fn default_decompress_budget() -> u64 {
    8 << 20
}

fn default_speed() -> f64 {
    1.0
}

fn default_listen() -> String {
    "127.0.0.1:8080".into()
}
fn default_db() -> PathBuf {
    "dwcp-analyzer.db".into()
}
fn default_tick() -> u64 {
    1000
}
fn default_skew() -> u64 {
    60_000
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRollout {
    name: String,
    /// Start the rollout when it is first defined (otherwise `start`/`promote` by hand).
    #[serde(default)]
    autostart: bool,
    /// Skip the shadow phase (no shadow cluster for this service).
    #[serde(default)]
    skip_shadow: bool,
    /// Shorthand: minimum duration of every phase, seconds (default 600).
    #[serde(default)]
    phase_seconds: Option<u64>,
    /// Shorthand: minimum requests per track of every phase (default: the spec's ladder).
    #[serde(default)]
    min_requests: Option<u64>,
    /// Keep mirroring this percentage of stable's eligible requests in the live phases (after shadow).
    #[serde(default)]
    shadow_sample_percent: Option<f64>,
    #[serde(default)]
    phases: Option<Vec<Phase>>,
    #[serde(default)]
    segments: Option<BTreeMap<String, SegmentPolicy>>,
    #[serde(default)]
    guardrails: Option<Guardrails>,
    /// The DWCP engine this rollout delivers (`manager`, `compression`, …): its safety signals
    /// (triggers 5–8) abort this rollout.
    #[serde(default)]
    engine: Option<String>,
}

#[derive(Debug, Clone)]
pub struct RolloutDef {
    pub spec: RolloutSpec,
    pub autostart: bool,
    pub engine: Option<String>,
}

#[derive(Debug, Clone)]
pub struct Config {
    pub listen: String,
    pub db: PathBuf,
    pub auth: crate::auth::Auth,
    pub samples: crate::redact::SampleConfig,
    pub decompress_budget_bytes: u64,
    pub tick_ms: u64,
    pub max_future_skew_ms: u64,
    pub rollouts: Vec<RolloutDef>,
    pub train: Option<TrainConfig>,
    pub flags: Option<PathBuf>,
    pub consensus: crate::consensus::ConsensusConfig,
    pub store: crate::store::RetentionConfig,
    pub api: crate::serve::ApiLimits,
}

impl Config {
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let p = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: p.clone(),
            source,
        })?;
        Self::parse(&text, &p)
    }

    pub fn parse(text: &str, p: &str) -> Result<Config, ConfigError> {
        let raw: RawConfig = toml::from_str(text).map_err(|e| ConfigError::Parse {
            path: p.to_string(),
            message: e.to_string(),
        })?;
        let field = |f: &str, m: &str| ConfigError::Field {
            path: p.to_string(),
            field: f.to_string(),
            message: m.to_string(),
        };
        if raw.listen.parse::<std::net::SocketAddr>().is_err() {
            return Err(field("listen", "must be an address like 127.0.0.1:8080"));
        }
        let loopback = raw
            .listen
            .parse::<std::net::SocketAddr>()
            .is_ok_and(|a| a.ip().is_loopback());
        let auth = load_auth(&raw, loopback).map_err(|(f, m)| field(&f, &m))?;
        if !(1024..=(1 << 30)).contains(&raw.decompress_budget_bytes) {
            return Err(field(
                "decompress_budget_bytes",
                "must be between 1024 and 1073741824",
            ));
        }
        raw.samples
            .validate()
            .map_err(|(f, m)| field(&format!("samples.{f}"), &m))?;
        raw.consensus.validate().map_err(|(f, m)| field(&f, &m))?;
        raw.store
            .validate()
            .map_err(|(f, m)| field(&format!("store.{f}"), &m))?;
        raw.api
            .validate()
            .map_err(|(f, m)| field(&format!("api.{f}"), &m))?;
        if !(50..=60_000).contains(&raw.tick_ms) {
            return Err(field("tick_ms", "must be between 50 and 60000"));
        }
        let mut rollouts: Vec<RolloutDef> = Vec::new();
        for (i, r) in raw.rollouts.into_iter().enumerate() {
            let f = format!("rollout[{i}]");
            let name_ok = !r.name.is_empty()
                && r.name.len() <= 64
                && r.name
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
            if !name_ok {
                return Err(field(
                    &format!("{f}.name"),
                    "must be 1-64 characters of [A-Za-z0-9_-]",
                ));
            }
            if rollouts.iter().any(|d| d.spec.name == r.name) {
                return Err(field(
                    &format!("{f}.name"),
                    &format!("duplicate rollout {:?}", r.name),
                ));
            }
            let mut spec = RolloutSpec::default_for(&r.name);
            if let Some(secs) = r.phase_seconds {
                spec.phases = RolloutSpec::default_phases(secs.saturating_mul(1000));
            }
            if let Some(n) = r.min_requests {
                for ph in spec.phases.iter_mut().filter(|ph| ph.canary_bp < 10_000) {
                    ph.min_requests = n;
                }
            }
            if let Some(ph) = r.phases {
                spec.phases = ph;
            }
            if let Some(pct) = r.shadow_sample_percent {
                if !(0.0..=100.0).contains(&pct) {
                    return Err(field(
                        &format!("{f}.shadow_sample_percent"),
                        "must be between 0 and 100",
                    ));
                }
                for ph in spec.phases.iter_mut().filter(|ph| !ph.shadow) {
                    ph.shadow_sample_bp = (pct * 100.0).round() as u32;
                }
            }
            if r.skip_shadow {
                spec.phases.retain(|ph| !ph.shadow);
            }
            if let Some(s) = r.segments {
                spec.segments = s;
            }
            if let Some(g) = r.guardrails {
                spec.guardrails = g;
            }
            spec.validate()
                .map_err(|(sub, m)| field(&format!("{f}.{sub}"), &m))?;
            rollouts.push(RolloutDef {
                spec,
                autostart: r.autostart,
                engine: r.engine,
            });
        }
        Ok(Config {
            listen: raw.listen,
            db: raw.db,
            auth,
            samples: raw.samples,
            decompress_budget_bytes: raw.decompress_budget_bytes,
            tick_ms: raw.tick_ms,
            max_future_skew_ms: raw.max_future_skew_ms,
            rollouts,
            train: match raw.train {
                Some(t) if !(t.speed.is_finite() && t.speed > 0.0 && t.speed <= 1e7) => {
                    return Err(field(
                        "train.speed",
                        "must be above 0 and at most 10 000 000",
                    ))
                }
                t => t,
            },
            flags: raw.flags,
            consensus: raw.consensus,
            store: raw.store,
            api: raw.api,
        })
    }
}

/// The credentials of the config: `[[credential]]` entries, or the legacy single `token` (every role,
/// loopback only). Weak tokens are refused unless the companion listens on loopback.
fn load_auth(raw: &RawConfig, loopback: bool) -> Result<crate::auth::Auth, (String, String)> {
    use crate::auth::{resolve_token, weakness, Credential, RawCredential, Role};
    let mut creds = Vec::new();
    let legacy = match (&raw.token, &raw.token_env) {
        (None, None) => None,
        (Some(_), Some(_)) => {
            return Err((
                "token".into(),
                "set either token or token_env, not both".into(),
            ))
        }
        (t, e) => Some(RawCredential {
            name: "token".into(),
            role: Role::Operator,
            token: t.clone(),
            token_env: e.clone(),
            token_file: None,
        }),
    };
    if let Some(l) = &legacy {
        if !loopback {
            return Err((
                "token".into(),
                "one token for every role is accepted only on a loopback listen address; \
                 use [[credential]] entries (telemetry, operator, read)"
                    .into(),
            ));
        }
        let t = resolve_token(l).map_err(|m| {
            let f = if raw.token_env.is_some() {
                "token_env"
            } else {
                "token"
            };
            (f.to_string(), m)
        })?;
        creds.push(Credential::new(
            "token",
            &[Role::Telemetry, Role::Operator, Role::Read],
            &t,
        ));
    }
    for (i, c) in raw.credentials.iter().enumerate() {
        let f = format!("credential[{i}]");
        let name_ok = !c.name.is_empty()
            && c.name.len() <= 64
            && c.name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-_.@".contains(&b));
        if !name_ok {
            return Err((
                format!("{f}.name"),
                "must be 1-64 characters of [A-Za-z0-9_.@-]".into(),
            ));
        }
        if creds.iter().any(|x: &Credential| x.name == c.name) {
            return Err((
                format!("{f}.name"),
                format!("duplicate credential {:?}", c.name),
            ));
        }
        let t = resolve_token(c).map_err(|m| (format!("{f}.token"), m))?;
        if !loopback {
            if let Some(w) = weakness(&t) {
                return Err((
                    format!("{f}.token"),
                    format!("{w}: refused unless the companion listens on loopback"),
                ));
            }
        }
        if creds.iter().any(|x| x.identifies(&t)) {
            return Err((
                format!("{f}.token"),
                "the same token as another credential".into(),
            ));
        }
        creds.push(Credential::new(&c.name, &[c.role], &t));
    }
    if creds.is_empty() {
        return Err((
            "credential".into(),
            "at least one credential is required ([[credential]] with name, role, token)".into(),
        ));
    }
    if raw.public_reads && !loopback {
        return Err((
            "public_reads".into(),
            "accepted only on a loopback listen address".into(),
        ));
    }
    Ok(crate::auth::Auth::new(creds, raw.public_reads))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_name_the_field() {
        let cases = [
            ("token = 'dev-token-1'\nlisten = 'nope'", "listen"),
            ("listen = '127.0.0.1:1'", "token"),
            ("token = 'short'", "token"),
            ("token = 'dev-token-1'\ntick_ms = 1", "tick_ms"),
            ("token = 'dev-token-1'\ncolour = 1", "colour"),
            (
                "token = 'dev-token-1'\n[[rollout]]\nname = 'a b'",
                "rollout[0].name",
            ),
            (
                "token = 'dev-token-1'\n[[rollout]]\nname = 'a'\n[[rollout]]\nname = 'a'",
                "rollout[1].name",
            ),
            (
                "token = 'dev-token-1'\n[[rollout]]\nname = 'a'\nguardrails = { alpha = 2.0 }",
                "rollout[0].guardrails.alpha",
            ),
            (
                "token = 'dev-token-1'\n[[rollout]]\nname = 'a'\nspeed = 3",
                "speed",
            ),
            (
                "token = 'dev-token-1'\n[[rollout]]\nname = 'a'\nshadow_sample_percent = 150",
                "rollout[0].shadow_sample_percent",
            ),
        ];
        for (text, f) in cases {
            let e = Config::parse(text, "x.toml").unwrap_err().to_string();
            assert!(e.contains(f), "{text:?} -> {e}");
        }
    }

    #[test]
    fn shadow_sample_applies_to_live_phases() {
        let c = Config::parse(
            "token = 'dev-token-1'\n[[rollout]]\nname = 'a'\nshadow_sample_percent = 5",
            "x.toml",
        )
        .unwrap();
        let phases = &c.rollouts[0].spec.phases;
        assert!(phases[0].shadow && phases[0].shadow_sample_bp == 0);
        assert!(phases[1..].iter().all(|p| p.shadow_sample_bp == 500));
    }

    #[test]
    fn shorthands_apply() {
        let c = Config::parse(
            "token = 'dev-token-1'\n[[rollout]]\nname = 'a'\nphase_seconds = 3\nmin_requests = 50\nskip_shadow = true",
            "x",
        )
        .unwrap();
        let s = &c.rollouts[0].spec;
        assert_eq!(s.phases[0].name, "1%");
        assert_eq!(s.phases[0].min_duration_ms, 3000);
        assert_eq!(s.phases[0].min_requests, 50);
    }
}
