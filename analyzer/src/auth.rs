//! Who may call what: credentials by role, and one policy for every route (an axum middleware).
//!
//! * **Roles**: `telemetry` (the filters' batches), `operator` (every mutating route: rollout commands,
//!   kill switch, train commands, engine writes, breaker resets, allocator placement) and `read` (status,
//!   events, filters, plan, engine reads, mismatch samples). An operator may also read.
//! * **Credentials**: `[[credential]]` entries in the companion's config, each with a `name` (the audit
//!   actor of everything done with it), a `role` and a token (`token`, `token_env` or `token_file`).
//!   Several credentials may hold one role, so a token can be rotated without downtime. The legacy
//!   top-level `token` / `token_env` is one credential named `token` holding every role: accepted only
//!   when the companion listens on loopback.
//! * **Weak tokens** (`dev-token`, the shipped placeholders, fewer than 16 characters) are refused unless
//!   the companion listens on loopback.
//! * **Policy** ([`required`]): by method and path, default-deny. Every non-GET route needs `operator`
//!   except `POST /v1/telemetry` (`telemetry`) and the OFREP evaluation routes (public: applications
//!   evaluate flags, nothing changes); every GET needs `read` except the liveness, metrics, status-page
//!   and filter-state routes ([`PUBLIC_GETS`]). A route added later is covered without touching this file.
//!   `public_reads = true` (loopback only) opens the `read` GETs for a local demo; mismatch samples are
//!   still served only to a `read` credential.
//!
//! The middleware puts the [`Caller`] into the request's extensions; handlers take the audit actor from
//! it, never from the body.

use axum::extract::{Request, State};
use axum::http::{Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use serde_json::json;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::api::Shared;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    Telemetry,
    Operator,
    Read,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Telemetry => "telemetry",
            Role::Operator => "operator",
            Role::Read => "read",
        }
    }
}

/// One credential as written in the config file (`[[credential]]`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawCredential {
    pub name: String,
    pub role: Role,
    #[serde(default)]
    pub token: Option<String>,
    #[serde(default)]
    pub token_env: Option<String>,
    #[serde(default)]
    pub token_file: Option<std::path::PathBuf>,
}

/// A loaded credential: the token is kept only as its SHA-256 digest.
#[derive(Clone)]
pub struct Credential {
    pub name: String,
    pub roles: Vec<Role>,
    digest: [u8; 32],
}

impl std::fmt::Debug for Credential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credential")
            .field("name", &self.name)
            .field("roles", &self.roles)
            .finish_non_exhaustive()
    }
}

fn digest(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

impl Credential {
    pub fn new(name: &str, roles: &[Role], token: &str) -> Self {
        Self {
            name: name.to_string(),
            roles: roles.to_vec(),
            digest: digest(token),
        }
    }

    pub fn has(&self, role: Role) -> bool {
        self.roles.contains(&role) || (role == Role::Read && self.roles.contains(&Role::Operator))
    }

    /// Whether `token` is this credential's (constant time).
    pub fn identifies(&self, token: &str) -> bool {
        bool::from(self.digest.ct_eq(&digest(token)))
    }
}

/// Tokens that are public knowledge: the demo's, the shipped placeholders.
pub const KNOWN_WEAK: &[&str] = &[
    "dev-token",
    "dev-telemetry-token",
    "REPLACE-WITH-DWCP-TOKEN",
    "REPLACE-WITH-TELEMETRY-TOKEN",
    "changeme",
    "token",
];
/// Shortest token accepted when the companion listens beyond loopback.
pub const MIN_TOKEN_LEN: usize = 16;

/// Why a token is weak, if it is.
pub fn weakness(token: &str) -> Option<String> {
    if KNOWN_WEAK.iter().any(|w| w.eq_ignore_ascii_case(token)) {
        Some("is a published demo or placeholder token".into())
    } else if token.len() < MIN_TOKEN_LEN {
        Some(format!("is shorter than {MIN_TOKEN_LEN} characters"))
    } else {
        None
    }
}

/// Read a credential's token from exactly one of `token`, `token_env`, `token_file`.
pub fn resolve_token(c: &RawCredential) -> Result<String, String> {
    let t = match (&c.token, &c.token_env, &c.token_file) {
        (Some(t), None, None) => t.clone(),
        (None, Some(var), None) => {
            std::env::var(var).map_err(|_| format!("environment variable {var} is not set"))?
        }
        (None, None, Some(path)) => std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read {}: {e}", path.display()))?
            .trim()
            .to_string(),
        _ => return Err("set exactly one of token, token_env, token_file".into()),
    };
    if t.len() < 8 {
        return Err("must be at least 8 characters".into());
    }
    Ok(t)
}

/// The caller of one request, as the middleware found it.
#[derive(Debug, Clone, Default)]
pub struct Caller {
    /// The credential's name (the audit actor), when a valid credential was presented.
    pub name: Option<String>,
    roles: Vec<Role>,
}

impl Caller {
    pub fn has(&self, role: Role) -> bool {
        self.roles.contains(&role) || (role == Role::Read && self.roles.contains(&Role::Operator))
    }
    /// The audit actor: the credential's name.
    pub fn actor(&self) -> String {
        self.name.clone().unwrap_or_else(|| "anonymous".into())
    }
}

/// What a route needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Need {
    Public,
    Role(Role),
}

/// GET routes anyone may call: liveness, Prometheus scrape, the status page, the filters' state.
pub const PUBLIC_GETS: &[&str] = &["/healthz", "/metrics", "/", "/plan", "/v1/config"];
/// Non-GET routes anyone may call: OFREP flag evaluation (evaluates, changes nothing).
pub const PUBLIC_POST_PREFIXES: &[&str] = &["/ofrep/v1/evaluate/"];

/// The policy: what a request with this method and path needs (default: operator for writes, read
/// for reads).
pub fn required(method: &Method, path: &str) -> Need {
    let path = if path.len() > 1 {
        path.trim_end_matches('/')
    } else {
        path
    };
    if method == Method::GET || method == Method::HEAD {
        if PUBLIC_GETS.contains(&path) {
            Need::Public
        } else {
            Need::Role(Role::Read)
        }
    } else if path == "/v1/telemetry" && method == Method::POST {
        Need::Role(Role::Telemetry)
    } else if method == Method::POST && PUBLIC_POST_PREFIXES.iter().any(|p| path.starts_with(p)) {
        Need::Public
    } else {
        Need::Role(Role::Operator)
    }
}

/// The loaded credentials.
#[derive(Debug, Default, Clone)]
pub struct Auth {
    pub credentials: Vec<Credential>,
    /// GETs needing `read` are open (loopback only, checked at config load).
    pub public_reads: bool,
}

impl Auth {
    pub fn new(credentials: Vec<Credential>, public_reads: bool) -> Self {
        Self {
            credentials,
            public_reads,
        }
    }

    /// The credential a bearer token belongs to (every digest is compared, in constant time).
    pub fn identify(&self, token: &str) -> Option<&Credential> {
        let mut found = None;
        for c in &self.credentials {
            if c.identifies(token) {
                found = Some(c);
            }
        }
        found
    }

    fn caller(&self, header: Option<&str>) -> Result<Caller, ()> {
        let Some(h) = header else {
            return Ok(Caller::default());
        };
        let token = h.strip_prefix("Bearer ").ok_or(())?;
        let c = self.identify(token.trim()).ok_or(())?;
        Ok(Caller {
            name: Some(c.name.clone()),
            roles: c.roles.clone(),
        })
    }
}

fn refuse(code: StatusCode, msg: String) -> Response {
    (code, Json(json!({ "error": msg }))).into_response()
}

/// The middleware: identify the caller, apply [`required`], put the [`Caller`] in the extensions.
/// Refusals (401 no or unknown credential, 403 wrong role) are counted in `dwcp_auth_failures_total`.
pub async fn layer(State(app): State<Shared>, mut req: Request, next: Next) -> Response {
    let header = req
        .headers()
        .get("authorization")
        .and_then(|v| v.to_str().ok());
    let present = header.is_some();
    let identified = app.auth.caller(header);
    let need = required(req.method(), req.uri().path());
    let refusal = match (need, &identified) {
        (Need::Public, _) => None,
        (Need::Role(_), Err(())) => Some((StatusCode::UNAUTHORIZED, "unknown bearer token".into())),
        (Need::Role(Role::Read), Ok(_)) if app.auth.public_reads => None,
        (Need::Role(role), Ok(c)) if c.has(role) => None,
        (Need::Role(role), Ok(_)) if !present => Some((
            StatusCode::UNAUTHORIZED,
            format!(
                "missing bearer token: this route needs the {} role",
                role.as_str()
            ),
        )),
        (Need::Role(role), Ok(c)) => Some((
            StatusCode::FORBIDDEN,
            format!(
                "credential {:?} lacks the {} role this route needs",
                c.actor(),
                role.as_str()
            ),
        )),
    };
    if let Some((code, msg)) = refusal {
        app.memory().counters.auth_failures += 1;
        return refuse(code, msg);
    }
    req.extensions_mut().insert(identified.unwrap_or_default());
    next.run(req).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn policy_is_default_deny() {
        let post = Method::POST;
        assert_eq!(
            required(&post, "/v1/telemetry"),
            Need::Role(Role::Telemetry)
        );
        for p in [
            "/v1/rollouts/a/promote",
            "/v1/kill",
            "/v1/engines/pbft/anything",
            "/v1/engines/compression/decompress",
            "/v1/something-new",
            "/v1/telemetry/extra",
        ] {
            assert_eq!(required(&post, p), Need::Role(Role::Operator), "{p}");
        }
        assert_eq!(
            required(&Method::DELETE, "/v1/rollouts/a"),
            Need::Role(Role::Operator)
        );
        assert_eq!(
            required(&Method::GET, "/v1/rollouts"),
            Need::Role(Role::Read)
        );
        assert_eq!(required(&Method::GET, "/metrics"), Need::Public);
        assert_eq!(required(&Method::GET, "/metrics/"), Need::Public);
        assert_eq!(required(&post, "/ofrep/v1/evaluate/flags/x"), Need::Public);
    }

    #[test]
    fn weak_tokens() {
        assert!(weakness("dev-token").is_some());
        assert!(weakness("REPLACE-WITH-DWCP-TOKEN").is_some());
        assert!(weakness("abcdefgh12345").is_some());
        assert!(weakness("0123456789abcdef0123").is_none());
    }

    #[test]
    fn identify_by_token() {
        let a = Auth::new(
            vec![
                Credential::new("old", &[Role::Operator], "operator-token-one-1"),
                Credential::new("new", &[Role::Operator], "operator-token-two-2"),
                Credential::new("sidecars", &[Role::Telemetry], "telemetry-token-3"),
            ],
            false,
        );
        assert_eq!(a.identify("operator-token-two-2").unwrap().name, "new");
        assert_eq!(a.identify("operator-token-one-1").unwrap().name, "old");
        assert!(a.identify("operator-token-one").is_none());
        assert!(a
            .identify("telemetry-token-3")
            .unwrap()
            .has(Role::Telemetry));
        assert!(!a.identify("telemetry-token-3").unwrap().has(Role::Operator));
        assert!(a.identify("operator-token-one-1").unwrap().has(Role::Read));
    }
}
