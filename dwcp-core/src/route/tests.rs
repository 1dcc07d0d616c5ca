use super::*;
use crate::decision::Why;
use crate::state::RolloutState;
use proptest::prelude::*;

/// Rollout `checkout` owns shop.example/checkout and mirrors to `shadow`; `api` owns any host under /api.
fn cfg(explain: bool) -> FilterConfig {
    let json = format!(
        r#"{{"explain": {explain}, "rollouts": [
            {{"name": "checkout", "hosts": ["shop.example"], "path_prefix": "/checkout",
              "shadow_cluster": "shadow"}},
            {{"name": "api", "path_prefix": "/api"}}]}}"#
    );
    FilterConfig::from_slice(json.as_bytes()).unwrap()
}

fn state(canary_bp: u32, shadow_bp: u32, killed: bool, kill_all: bool) -> DynamicState {
    let mut s = DynamicState {
        version: 7,
        kill_all,
        ..Default::default()
    };
    for name in ["checkout", "api"] {
        let mut rs = RolloutState {
            phase: "p".into(),
            segments: [("standard".to_string(), canary_bp)].into(),
            ..Default::default()
        };
        (rs.shadow_bp, rs.killed) = (shadow_bp, killed);
        s.rollouts.insert(name.into(), rs);
    }
    s
}

fn hdrs(pairs: &[(&str, &str)]) -> Vec<(String, Vec<u8>)> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.as_bytes().to_vec()))
        .collect()
}

/// What the host does with a route: the request headers as the upstream sees them.
fn apply(
    route: &Route,
    mut h: Vec<(String, Vec<u8>)>,
    track_header: &str,
) -> Vec<(String, Vec<u8>)> {
    match route {
        Route::NotOurs { strip_track_header } => {
            if *strip_track_header {
                h.retain(|(k, _)| k != track_header);
            }
        }
        Route::Routed(r) => {
            h.retain(|(k, _)| k != r.track_header);
            h.push((r.track_header.to_string(), r.track().as_bytes().to_vec()));
            if let Some((name, value)) = &r.explain {
                h.retain(|(k, _)| k != name);
                h.push((name.to_string(), value.as_bytes().to_vec()));
            }
        }
    }
    h
}

/// (case, headers, state, freshness, expected: None = not ours with strip flag, Some = (track, why, shadowed))
type Case<'a> = (
    &'a str,
    Vec<(String, Vec<u8>)>,
    Option<DynamicState>,
    Freshness,
    Result<(Track, Why, bool), bool>,
);

#[test]
fn table_of_routes() {
    let c = cfg(false);
    let fresh = Freshness::Fresh;
    let ours = |extra: &[(&str, &str)]| {
        let mut v = vec![
            (":authority", "shop.example:8080"),
            (":path", "/checkout/pay"),
        ];
        v.extend_from_slice(extra);
        hdrs(&v)
    };
    let cases: Vec<Case> = vec![
        (
            "other host",
            hdrs(&[(":authority", "blog.example"), (":path", "/checkout")]),
            Some(state(10_000, 0, false, false)),
            fresh,
            Err(false),
        ),
        (
            "other host, forged track",
            hdrs(&[
                (":authority", "blog.example"),
                (":path", "/"),
                ("x-dwcp-track", "canary"),
            ]),
            Some(state(10_000, 0, false, false)),
            fresh,
            Err(true),
        ),
        (
            "other path, forged track",
            hdrs(&[
                (":authority", "shop.example"),
                (":path", "/cart"),
                ("x-dwcp-track", "canary"),
            ]),
            None,
            Freshness::Never,
            Err(true),
        ),
        (
            "second rollout, any host",
            hdrs(&[
                (":authority", "x"),
                (":path", "/api/v1"),
                ("x-user-id", "u1"),
            ]),
            Some(state(10_000, 0, false, false)),
            fresh,
            Ok((Track::Canary, Why::Bucketed, false)),
        ),
        (
            "canary at 100%",
            ours(&[("x-user-id", "u1")]),
            Some(state(10_000, 0, false, false)),
            fresh,
            Ok((Track::Canary, Why::Bucketed, false)),
        ),
        (
            "forged track on a routed request",
            ours(&[("x-user-id", "u1"), ("x-dwcp-track", "canary")]),
            Some(state(0, 0, false, false)),
            fresh,
            Ok((Track::Stable, Why::Bucketed, false)),
        ),
        (
            "stable at 0% with shadow",
            ours(&[("x-user-id", "u1")]),
            Some(state(0, 10_000, false, false)),
            fresh,
            Ok((Track::Stable, Why::Bucketed, true)),
        ),
        (
            "no key: stable, still shadowed",
            ours(&[]),
            Some(state(10_000, 10_000, false, false)),
            fresh,
            Ok((Track::Stable, Why::NoKey, true)),
        ),
        (
            "stale: stable, no shadow",
            ours(&[("x-user-id", "u1")]),
            Some(state(10_000, 10_000, false, false)),
            Freshness::Stale,
            Ok((Track::Stable, Why::Stale, false)),
        ),
        (
            "never synced",
            ours(&[("x-user-id", "u1")]),
            None,
            Freshness::Never,
            Ok((Track::Stable, Why::NoState, false)),
        ),
        (
            "killed rollout: no shadow",
            ours(&[("x-user-id", "u1")]),
            Some(state(10_000, 10_000, true, false)),
            fresh,
            Ok((Track::Stable, Why::RolloutOff, false)),
        ),
        (
            "kill all: no shadow",
            ours(&[("x-user-id", "u1")]),
            Some(state(10_000, 10_000, false, true)),
            fresh,
            Ok((Track::Stable, Why::KillAll, false)),
        ),
        (
            "shadow share 0",
            ours(&[("x-user-id", "u1")]),
            Some(state(0, 0, false, false)),
            fresh,
            Ok((Track::Stable, Why::Bucketed, false)),
        ),
        (
            "canary is never shadowed",
            ours(&[("x-user-id", "u1")]),
            Some(state(10_000, 10_000, false, false)),
            fresh,
            Ok((Track::Canary, Why::Bucketed, false)),
        ),
        (
            "duplicated key header",
            ours(&[("x-user-id", "a"), ("x-user-id", "b")]),
            Some(state(10_000, 0, false, false)),
            fresh,
            Ok((Track::Stable, Why::BadHeader, false)),
        ),
    ];
    for (name, h, st, fr, want) in cases {
        let got = route(&c, st.as_ref(), fr, h.as_slice());
        match (&got, want) {
            (Route::NotOurs { strip_track_header }, Err(strip)) => {
                assert_eq!(*strip_track_header, strip, "{name}")
            }
            (Route::Routed(r), Ok((track, why, shadowed))) => {
                assert_eq!((r.decision.track, r.decision.why), (track, why), "{name}");
                assert_eq!(r.track(), track.as_str(), "{name}");
                assert_eq!(r.count(), why.as_str(), "{name}");
                assert_eq!(r.track_header, "x-dwcp-track", "{name}");
                assert_eq!(r.shadow.is_some(), shadowed, "{name}");
                assert!(r.explain.is_none(), "{name}: explain is off");
            }
            _ => panic!("{name}: got {got:?}, want {want:?}"),
        }
    }
}

#[test]
fn shadow_plan_names_the_clusters_and_share() {
    let c = cfg(false);
    let h = hdrs(&[
        (":authority", "shop.example"),
        (":path", "/checkout"),
        ("x-user-id", "u"),
    ]);
    let st = state(0, 2_500, false, false);
    let Route::Routed(r) = route(&c, Some(&st), Freshness::Fresh, h.as_slice()) else {
        panic!("not routed")
    };
    assert_eq!(
        r.shadow,
        Some(ShadowPlan {
            rollout: "checkout",
            cluster: "shadow",
            noise_cluster: None,
            bp: 2_500
        })
    );
}

#[test]
fn explain_header_only_when_configured() {
    let h = hdrs(&[(":authority", "x"), (":path", "/api"), ("x-user-id", "u")]);
    let st = state(10_000, 0, false, false);
    let c = cfg(true);
    let Route::Routed(r) = route(&c, Some(&st), Freshness::Fresh, h.as_slice()) else {
        panic!("not routed")
    };
    let (name, value) = r.explain.clone().unwrap();
    assert_eq!(name, "x-dwcp-decision");
    assert_eq!(value, explain(&c, Some(&st), &r.decision));
    assert!(
        value.contains("rollout=api") && value.ends_with("track=canary"),
        "{value}"
    );
}

#[test]
fn errors_are_defined_once() {
    for (status, count_4xx, want) in [
        (0, false, true),
        (200, false, false),
        (302, true, false),
        (404, false, false),
        (404, true, true),
        (499, true, true),
        (500, false, true),
        (503, true, true),
    ] {
        assert_eq!(is_error(status, count_4xx), want, "{status} {count_4xx}");
    }
}

fn arb_headers() -> impl Strategy<Value = Vec<(String, Vec<u8>)>> {
    let name = prop::sample::select(vec![
        ":authority",
        ":path",
        "x-user-id",
        "x-user-tier",
        "x-dwcp-track",
        "x-dwcp-decision",
        "x-other",
    ]);
    let value = prop::sample::select(vec![
        "shop.example",
        "blog.example",
        "/checkout/a",
        "/api/x",
        "/",
        "canary",
        "stable",
        "premium",
        "u1",
        "u2",
        "",
        "TRUE",
    ]);
    prop::collection::vec((name, value), 0..8).prop_map(|v| {
        v.into_iter()
            .map(|(k, v)| (k.to_string(), v.as_bytes().to_vec()))
            .collect()
    })
}

proptest! {
    /// Whatever the client sends, the upstream sees no track header it chose: on a request that is
    /// not ours none at all, on a routed one exactly ours; and a route's decision is `decide`'s.
    #[test]
    fn client_track_header_never_survives(
        h in arb_headers(),
        canary_bp in 0u32..=10_000,
        shadow_bp in 0u32..=10_000,
        killed: bool,
        explain_on: bool,
        fr in prop::sample::select(vec![Freshness::Fresh, Freshness::Stale, Freshness::Never]),
    ) {
        let c = cfg(explain_on);
        let st = state(canary_bp, shadow_bp, killed, false);
        let r = route(&c, Some(&st), fr, h.as_slice());
        let out = apply(&r, h.clone(), &c.track_header);
        let tracks: Vec<&[u8]> = out.iter().filter(|(k, _)| k == "x-dwcp-track").map(|(_, v)| v.as_slice()).collect();
        let authority = h.as_slice().first_str(":authority");
        let path = h.as_slice().first_str(":path");
        match &r {
            Route::NotOurs { .. } => {
                prop_assert!(tracks.is_empty(), "{tracks:?}");
                prop_assert_eq!(match_rollout(&c, authority, path), None);
            }
            Route::Routed(routed) => {
                prop_assert_eq!(tracks, vec![routed.track().as_bytes()]);
                let rollout = match_rollout(&c, authority, path);
                prop_assert_eq!(Some(routed.decision.rollout), rollout);
                let d = decide(&c, Some(&st), fr, routed.decision.rollout, h.as_slice());
                prop_assert_eq!(&routed.decision, &d);
                prop_assert_eq!(routed.explain.is_some(), explain_on);
                if routed.shadow.is_some() {
                    prop_assert!(d.track == Track::Stable && fr == Freshness::Fresh && !killed && shadow_bp > 0);
                }
            }
        }
    }
}
