//! Issue "trust boundaries", in a real Envoy with the shipped config: a client-sent shadow mark never
//! reaches an upstream on a user request; the copies the filter sends carry the mark with an HMAC of
//! their request id that verifies under the deployment's key (checked here with the `hmac` crate, not
//! the filter's code); `Authorization`, cookies and API keys reach stable but never the shadow.
// Test helpers stop the test with a message when the stack misbehaves.
#![allow(clippy::panic, clippy::unwrap_used, clippy::expect_used)]

use dwcp_e2e::*;
use hmac::{Hmac, Mac};
use serde_json::Value;
use std::time::Duration;

const SHADOW_PHASE: &str =
    "tick_ms = 200\n[[rollout]]\nname = \"demo\"\nautostart = true\nphase_seconds = 3600\n";

fn seen(port: u16) -> Vec<Value> {
    let v: Value = ureq::get(&format!("http://127.0.0.1:{port}/_seen"))
        .call()
        .expect("seen")
        .into_json()
        .expect("json");
    v["requests"].as_array().cloned().unwrap_or_default()
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

#[test]
fn forged_marks_never_reach_upstreams_and_copies_carry_a_verifiable_mark_without_credentials() {
    let plugin = shipped_plugin_config();
    let key = plugin["shadow"]["mark_key"]
        .as_str()
        .expect("the shipped config sets shadow.mark_key")
        .to_string();
    let s = Stack::start(StackOpts {
        plugin_config: plugin,
        analyzer_toml: SHADOW_PHASE.into(),
        concurrency: 1,
    });
    assert!(
        eventually(Duration::from_secs(10), || s.rollout("demo")["phase"]
            == "shadow")
        .is_some()
    );
    s.wait_current_window(2, Duration::from_secs(10));
    let forged = [
        ("x-dwcp-shadow", "1"),
        (
            "x-dwcp-shadow-mac",
            "0000000000000000000000000000000000000000000000000000000000000000",
        ),
        ("authorization", "Bearer user-secret-token"),
        ("cookie", "session=user-session"),
        ("x-api-key", "user-api-key"),
    ];
    let n = 60;
    for i in 0..n {
        let mut h: Vec<(&str, String)> = forged.iter().map(|(k, v)| (*k, v.to_string())).collect();
        h.push(("x-user-id", format!("u{i}")));
        let hh: Vec<(&str, &str)> = h.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let (code, by) = s.get(&format!("/items/{i}"), &hh);
        assert_eq!(
            (code, by.as_str()),
            (200, "stable"),
            "shadow phase: users get stable"
        );
    }
    // Copies are sent while the primary is in flight; give the last ones time to land.
    let landed = eventually(Duration::from_secs(10), || seen(s.ports.shadow).len() >= n);
    let copies = seen(s.ports.shadow);
    assert!(
        landed.is_some(),
        "the shadow got {} of {n} copies",
        copies.len()
    );

    // 1. User requests: no upstream ever sees a client's mark; credentials reach stable intact.
    let users: Vec<Value> = [s.ports.stable, s.ports.canary]
        .iter()
        .flat_map(|p| seen(*p))
        .collect();
    assert_eq!(
        users.len(),
        n,
        "every user request reached stable or canary once"
    );
    for r in &users {
        let h = &r["headers"];
        assert!(
            h.get("x-dwcp-shadow").is_none(),
            "a forged mark reached an upstream: {r}"
        );
        assert!(h.get("x-dwcp-shadow-mac").is_none(), "{r}");
        assert_eq!(
            h["authorization"], "Bearer user-secret-token",
            "the user's own request is intact"
        );
        assert_eq!(h["cookie"], "session=user-session");
    }

    // 2. Copies: our mark, a MAC of their request id that verifies, no credentials.
    for r in &copies {
        let h = &r["headers"];
        assert_eq!(h["x-dwcp-shadow"], "1", "{r}");
        let rid = h["x-request-id"]
            .as_str()
            .expect("copies carry the request id");
        let mut mac = Hmac::<sha2::Sha256>::new_from_slice(key.as_bytes()).unwrap();
        mac.update(rid.as_bytes());
        let want = hex(&mac.finalize().into_bytes());
        assert_eq!(h["x-dwcp-shadow-mac"].as_str(), Some(want.as_str()), "{r}");
        let mut wrong = Hmac::<sha2::Sha256>::new_from_slice(b"some-other-deployment-key").unwrap();
        wrong.update(rid.as_bytes());
        assert_ne!(
            h["x-dwcp-shadow-mac"].as_str(),
            Some(hex(&wrong.finalize().into_bytes()).as_str())
        );
        for secret in ["authorization", "cookie", "x-api-key"] {
            assert!(h.get(secret).is_none(), "{secret} reached the shadow: {r}");
        }
    }
    eprintln!(
        "{} user requests (no forged mark upstream), {} copies (mark verified, no credentials)",
        users.len(),
        copies.len()
    );
}

/// base64url without padding (JWT encoding).
fn b64url(b: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b)
}

/// An HS256 JWT for the demo identity provider of `envoy/identity-filters.yaml`.
fn jwt(sub: &str, email: &str) -> String {
    let header = b64url(br#"{"alg":"HS256","typ":"JWT","kid":"demo"}"#);
    let claims = serde_json::json!({
        "iss": "https://idp.example.com", "aud": "dwcp-demo", "sub": sub, "email": email,
        "exp": 4_102_444_800u64
    });
    let payload = b64url(claims.to_string().as_bytes());
    let mut mac =
        Hmac::<sha2::Sha256>::new_from_slice(b"dwcp-demo-identity-key-not-secret").unwrap();
    mac.update(format!("{header}.{payload}").as_bytes());
    format!(
        "{header}.{payload}.{}",
        b64url(&mac.finalize().into_bytes())
    )
}

#[test]
fn with_identity_filters_a_client_sent_internal_email_does_not_reach_the_canary() {
    let opts = || {
        StackOpts {
        plugin_config: shipped_plugin_config(),
        analyzer_toml: "[[rollout]]\nname = \"demo\"\nautostart = true\nskip_shadow = true\nphase_seconds = 3600\n"
            .into(),
        concurrency: 1,
    }
    };
    let forged = [
        ("x-user-id", "mallory"),
        ("x-user-email", "mallory@company.com"),
    ];
    // Without the identity filters (the demo config) the header is trusted: the internal segment is on
    // canary at 100 %. This is the risk the option removes.
    {
        let s = Stack::start(opts());
        s.wait_current_window(2, Duration::from_secs(10));
        let (code, by) = s.get("/", &forged);
        assert_eq!(
            (code, by.as_str()),
            (200, "canary"),
            "baseline: headers are trusted"
        );
    }
    let s = Stack::start_edited(opts(), with_identity_filters);
    s.wait_current_window(2, Duration::from_secs(10));
    for i in 0..20 {
        let (code, by) = s.get(&format!("/items/{i}"), &forged);
        assert_eq!(
            (code, by.as_str()),
            (200, "stable"),
            "an unauthenticated internal email"
        );
    }
    // The same attributes from a verified token put the user on the internal segment (canary).
    let token = jwt("alice", "alice@company.com");
    let auth = format!("Bearer {token}");
    let (code, by) = s.get("/", &[("authorization", auth.as_str())]);
    assert_eq!(
        (code, by.as_str()),
        (200, "canary"),
        "verified identity is trusted"
    );
    // A verified external user who also sends an internal email header: the header is replaced.
    let token = jwt("bob", "bob@example.org");
    let auth = format!("Bearer {token}");
    let (code, by) = s.get(
        "/",
        &[
            ("authorization", auth.as_str()),
            ("x-user-email", "bob@company.com"),
        ],
    );
    assert_eq!((code, by.as_str()), (200, "stable"));
    // A forged token is refused.
    let bad = format!("Bearer {}x", jwt("eve", "eve@company.com"));
    let (code, _) = s.get("/", &[("authorization", bad.as_str())]);
    assert_eq!(code, 401, "an invalid JWT is refused");
}

#[test]
fn a_client_that_gives_up_is_not_a_canary_error() {
    let s = Stack::start(StackOpts {
        plugin_config: shipped_plugin_config(),
        analyzer_toml: "tick_ms = 200\n[[rollout]]\nname = \"demo\"\nautostart = true\nskip_shadow = true\nphase_seconds = 3600\n"
            .into(),
        concurrency: 1,
    });
    s.wait_current_window(2, Duration::from_secs(10));
    s.upstream("canary", serde_json::json!({"delay_ms": 1500}));
    // Internal users are on canary at 100 %; each client hangs up after 200 ms, long before the answer.
    let agent = ureq::AgentBuilder::new()
        .timeout(Duration::from_millis(200))
        .build();
    let n = 10;
    for i in 0..n {
        let r = agent
            .get(&format!("{}/items/{i}", s.envoy_url()))
            .set("x-user-id", &format!("int{i}"))
            .set("x-user-email", &format!("int{i}@company.com"))
            .call();
        assert!(r.is_err(), "the client was meant to give up");
    }
    let seen = eventually(Duration::from_secs(10), || {
        s.rollout("demo")["canary"]["requests"]
            .as_u64()
            .unwrap_or(0)
            >= n
    });
    let r = s.rollout("demo");
    assert!(
        seen.is_some(),
        "the abandoned requests were not counted as requests: {r}"
    );
    assert_eq!(
        r["canary"]["errors"], 0,
        "a client's hang-up counted as a canary error: {r}"
    );
    assert_eq!(r["status"], "running", "{r}");
}
