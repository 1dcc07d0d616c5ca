use super::*;

fn err(json: &str) -> String {
    FilterConfig::from_slice(json.as_bytes())
        .unwrap_err()
        .to_string()
}

#[test]
fn empty_config_is_all_defaults() {
    let c = FilterConfig::from_slice(b"").unwrap();
    assert_eq!(c.track_header, "x-dwcp-track");
    assert_eq!(
        c.segments,
        ["beta", "enterprise", "internal", "premium", "standard"]
    );
    assert_eq!(c.companion.sync_period_ms, 1000);
}

#[test]
fn errors_name_the_field() {
    let cases = [
        (r#"{"rolouts": []}"#, "rolouts"),
        (
            r#"{"companion": {"sync_period_ms": 5}}"#,
            "companion.sync_period_ms",
        ),
        (
            r#"{"companion": {"staleness_ms": 1000}}"#,
            "companion.staleness_ms",
        ),
        (r#"{"companion": {"clustr": "x"}}"#, "clustr"),
        (r#"{"headers": {"track": "X Track"}}"#, "headers.track"),
        (r#"{"rollouts": [{"name": ""}]}"#, "rollouts[0].name"),
        (
            r#"{"rollouts": [{"name": "a"}, {"name": "a"}]}"#,
            "rollouts[1].name",
        ),
        (
            r#"{"rollouts": [{"name": "a", "path_prefix": "api"}]}"#,
            "rollouts[0].path_prefix",
        ),
        (
            r#"{"rollouts": [{"name": "a", "colour": "red"}]}"#,
            "colour",
        ),
        (r#"{"max_header_bytes": 0}"#, "max_header_bytes"),
    ];
    for (json, field) in cases {
        let e = err(json);
        assert!(
            e.contains(field),
            "{json}: error {e:?} does not name {field}"
        );
    }
}

#[test]
fn rollout_matching_ignores_port_and_case() {
    let c = FilterConfig::from_slice(
        br#"{"rollouts": [{"name": "a", "hosts": ["shop.example"], "path_prefix": "/api"}]}"#,
    )
    .unwrap();
    let r = &c.rollouts[0];
    assert!(r.matches("shop.example:10000", "/api/x"));
    assert!(r.matches("SHOP.example", "/api"));
    assert!(!r.matches("other", "/api"));
    assert!(!r.matches("shop.example", "/web"));
}

#[test]
fn shadow_settings_are_optional_validated_and_named() {
    let c = FilterConfig::from_slice(b"{}").unwrap();
    assert_eq!(c.shadow, crate::shadow::ShadowSettings::default());
    assert_eq!(c.shadow.methods, vec!["GET", "HEAD"]);
    assert_eq!(
        (
            c.shadow.max_body_bytes,
            c.shadow.latency_tolerance_ms,
            c.shadow.timeout_ms,
            c.shadow.max_in_flight
        ),
        (65536, 50, 2000, 64)
    );
    let c = FilterConfig::from_slice(
        br#"{"shadow": {"methods": ["GET", "POST"], "max_in_flight": 8}}"#,
    )
    .unwrap();
    assert_eq!(c.shadow.methods, vec!["GET", "POST"]);
    assert_eq!(c.shadow.max_in_flight, 8);
    let e = FilterConfig::from_slice(br#"{"shadow": {"max_in_flight": 0}}"#).unwrap_err();
    assert!(e.to_string().starts_with("shadow.max_in_flight"), "{e}");
    let e = FilterConfig::from_slice(br#"{"shadow": {"typo": 1}}"#).unwrap_err();
    assert!(e.to_string().contains("typo"), "{e}");
}

#[test]
fn noise_copy_needs_a_stable_noise_cluster() {
    let e = err(
        r#"{"shadow": {"noise_copy": true}, "rollouts": [{"name": "a", "shadow_cluster": "shadow"}]}"#,
    );
    assert!(e.starts_with("rollouts[0].noise_cluster"), "{e}");
    let e = err(
        r#"{"shadow": {"noise_copy": true}, "rollouts": [{"name": "a", "shadow_cluster": "s", "noise_cluster": "s"}]}"#,
    );
    assert!(e.contains("not the shadow cluster"), "{e}");
    let e = err(r#"{"rollouts": [{"name": "a", "shadow_cluster": ""}]}"#);
    assert!(e.starts_with("rollouts[0].shadow_cluster"), "{e}");
    let c = FilterConfig::from_slice(
        br#"{"shadow": {"noise_copy": true}, "rollouts": [{"name": "a", "shadow_cluster": "shadow", "noise_cluster": "stable"}]}"#,
    )
    .unwrap();
    assert_eq!(c.rollouts[0].noise_cluster.as_deref(), Some("stable"));
    // Without noise_copy the noise cluster is not used.
    let c = FilterConfig::from_slice(
        br#"{"rollouts": [{"name": "a", "shadow_cluster": "shadow", "noise_cluster": "stable"}]}"#,
    )
    .unwrap();
    assert_eq!(c.rollouts[0].noise_cluster, None);
}
