use super::*;
use crate::state::RolloutState;

/// A request's headers as the host hands them over.
type Headers<'a> = &'a [(&'a str, &'a [u8])];

/// (name, state, freshness, headers, expected track, expected reason)
type FailSafeCase<'a> = (
    &'static str,
    Option<&'a DynamicState>,
    Freshness,
    Vec<(String, Vec<u8>)>,
    Track,
    Why,
);

fn cfg() -> FilterConfig {
    FilterConfig::from_slice(br#"{"rollouts": [{"name": "checkout"}]}"#).unwrap()
}

fn state(pct: &[(&str, u32)]) -> DynamicState {
    let mut s = DynamicState {
        version: 1,
        ..Default::default()
    };
    s.rollouts.insert(
        "checkout".into(),
        RolloutState {
            phase: "5%".into(),
            segments: pct.iter().map(|(k, v)| (k.to_string(), *v)).collect(),
            ..Default::default()
        },
    );
    s
}

fn hdrs(pairs: &[(&str, &[u8])]) -> Vec<(String, Vec<u8>)> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_vec()))
        .collect()
}

fn seg(c: &FilterConfig, d: &Decision) -> String {
    c.segments[d.segment].clone()
}

#[test]
#[allow(clippy::type_complexity)] // a table of cases
fn segments_first_match_wins() {
    let c = cfg();
    let s = state(&[]);
    let cases: &[(Headers, &str)] = &[
        (
            &[
                ("x-user-id", b"u1"),
                ("x-user-email", b"a@company.com"),
                ("x-user-tier", b"premium"),
            ],
            "internal",
        ),
        (
            &[
                ("x-user-id", b"u1"),
                ("x-beta-opt-in", b"true"),
                ("x-user-tier", b"premium"),
            ],
            "beta",
        ),
        (
            &[("x-user-id", b"u1"), ("x-user-tier", b"premium")],
            "premium",
        ),
        (
            &[("x-user-id", b"u1"), ("x-user-tier", b"enterprise")],
            "enterprise",
        ),
        (&[("x-user-id", b"u1")], "standard"),
        (
            &[("x-user-id", b"u1"), ("x-beta-opt-in", b"false")],
            "standard",
        ),
    ];
    for (h, want) in cases {
        let d = decide(&c, Some(&s), Freshness::Fresh, 0, hdrs(h).as_slice());
        assert_eq!(seg(&c, &d), *want, "{h:?}");
    }
}

#[test]
#[allow(clippy::type_complexity)] // a table of cases
fn table_of_reasons() {
    let c = cfg();
    let full = state(&[("standard", 10_000)]);
    let mut killed = full.clone();
    killed.rollouts.get_mut("checkout").unwrap().killed = true;
    let mut all = full.clone();
    all.kill_all = true;
    let user: &[(&str, &[u8])] = &[("x-user-id", b"u1")];
    let long = vec![b'a'; 8192];
    let cases: Vec<FailSafeCase> = vec![
        (
            "fresh full",
            Some(&full),
            Freshness::Fresh,
            hdrs(user),
            Track::Canary,
            Why::Bucketed,
        ),
        (
            "never synced",
            None,
            Freshness::Never,
            hdrs(user),
            Track::Stable,
            Why::NoState,
        ),
        (
            "stale",
            Some(&full),
            Freshness::Stale,
            hdrs(user),
            Track::Stable,
            Why::Stale,
        ),
        (
            "kill all",
            Some(&all),
            Freshness::Fresh,
            hdrs(user),
            Track::Stable,
            Why::KillAll,
        ),
        (
            "rollout killed",
            Some(&killed),
            Freshness::Fresh,
            hdrs(user),
            Track::Stable,
            Why::RolloutOff,
        ),
        (
            "no key",
            Some(&full),
            Freshness::Fresh,
            hdrs(&[]),
            Track::Stable,
            Why::NoKey,
        ),
        (
            "empty key",
            Some(&full),
            Freshness::Fresh,
            hdrs(&[("x-user-id", b"  ")]),
            Track::Stable,
            Why::NoKey,
        ),
        (
            "8 KiB key",
            Some(&full),
            Freshness::Fresh,
            hdrs(&[("x-user-id", &long)]),
            Track::Stable,
            Why::BadHeader,
        ),
        (
            "non-UTF-8",
            Some(&full),
            Freshness::Fresh,
            hdrs(&[("x-user-id", b"\xff\xfe")]),
            Track::Stable,
            Why::BadHeader,
        ),
        (
            "conflicting duplicate",
            Some(&full),
            Freshness::Fresh,
            hdrs(&[("x-user-id", b"a"), ("x-user-id", b"b")]),
            Track::Stable,
            Why::BadHeader,
        ),
        (
            "equal duplicate",
            Some(&full),
            Freshness::Fresh,
            hdrs(&[("x-user-id", b"a"), ("x-user-id", b"a")]),
            Track::Canary,
            Why::Bucketed,
        ),
        (
            "bad email header",
            Some(&full),
            Freshness::Fresh,
            hdrs(&[("x-user-id", b"a"), ("x-user-email", b"\xff")]),
            Track::Stable,
            Why::BadHeader,
        ),
    ];
    for (desc, s, f, h, track, why) in cases {
        let d = decide(&c, s, f, 0, h.as_slice());
        assert_eq!((d.track, d.why), (track, why), "{desc}");
    }
}

#[test]
fn sticky_and_monotone_over_users() {
    let c = cfg();
    let at5 = state(&[("standard", 500)]);
    let at25 = state(&[("standard", 2500)]);
    let mut canary5 = 0;
    for i in 0..20_000 {
        let id = format!("user-{i}");
        let h = hdrs(&[("x-user-id", id.as_bytes())]);
        let a = decide(&c, Some(&at5), Freshness::Fresh, 0, h.as_slice());
        let again = decide(&c, Some(&at5), Freshness::Fresh, 0, h.as_slice());
        assert_eq!(a, again);
        let b = decide(&c, Some(&at25), Freshness::Fresh, 0, h.as_slice());
        if a.track == Track::Canary {
            canary5 += 1;
            assert_eq!(
                b.track,
                Track::Canary,
                "{id} left the canary when the share rose"
            );
        }
    }
    let share = canary5 as f64 / 20_000.0;
    assert!((share - 0.05).abs() < 0.015, "{share}");
}

#[test]
fn explanation_header() {
    let c = cfg();
    let s = state(&[("standard", 10_000)]);
    let h = hdrs(&[("x-user-id", b"u1")]);
    let d = decide(&c, Some(&s), Freshness::Fresh, 0, h.as_slice());
    let e = explain(&c, Some(&s), &d);
    assert!(
        e.starts_with("rollout=checkout;segment=standard;bucket="),
        "{e}"
    );
    assert!(e.ends_with(";phase=5%;rule=bucketed;track=canary"), "{e}");
}
