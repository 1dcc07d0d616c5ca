use super::*;
use serde_json::json;

/// (name, primary, shadow, expected kinds, expected diff paths, slower)
type Case = (
    &'static str,
    Answer,
    Answer,
    Vec<MismatchKind>,
    Vec<&'static str>,
    bool,
);

fn ans(status: u16, body: &str, latency_ms: u64) -> Answer {
    Answer {
        status,
        headers: vec![],
        body: body.as_bytes().to_vec(),
        latency_us: latency_ms * 1000,
    }
}

fn settings() -> ShadowSettings {
    ShadowSettings::default()
}

#[test]
#[allow(clippy::type_complexity)] // a table of cases
fn comparison_table() {
    // (name, primary, shadow, expected kinds, expected diff paths, slower)
    let s = settings();
    let cases: Vec<Case> = vec![
        (
            "identical bytes",
            ans(200, "hello", 5),
            ans(200, "hello", 6),
            vec![],
            vec![],
            false,
        ),
        (
            "same class",
            ans(201, "", 5),
            ans(204, "", 5),
            vec![],
            vec![],
            false,
        ),
        (
            "status class",
            ans(200, "", 5),
            ans(500, "", 5),
            vec![MismatchKind::Status],
            vec![":status"],
            false,
        ),
        (
            "text body",
            ans(200, "a", 5),
            ans(200, "b", 5),
            vec![MismatchKind::Body],
            vec!["<body>"],
            false,
        ),
        (
            "json key order and ignored ids/timestamps",
            ans(
                200,
                r#"{"a":1,"b":{"c":2},"timestamp":1,"request_id":"x","created_at":3,"userId":4,"ts":5}"#,
                5,
            ),
            ans(
                200,
                r#"{"b":{"c":2},"a":1,"timestamp":2,"request_id":"y","created_at":9,"userId":8,"ts":6}"#,
                5,
            ),
            vec![],
            vec![],
            false,
        ),
        (
            "nested json field",
            ans(200, r#"{"item":{"price":10,"name":"x"},"timestamp":1}"#, 5),
            ans(200, r#"{"item":{"price":11,"name":"x"},"timestamp":2}"#, 5),
            vec![MismatchKind::Body],
            vec!["item.price"],
            false,
        ),
        (
            "array element and missing key",
            ans(200, r#"{"items":[{"p":1},{"p":2}],"k":1}"#, 5),
            ans(200, r#"{"items":[{"p":1},{"p":3},{"p":4}]}"#, 5),
            vec![MismatchKind::Body],
            vec!["items[1].p", "items[2]", "k"],
            false,
        ),
        (
            "json root scalar vs object",
            ans(200, "[1]", 5),
            ans(200, "{}", 5),
            vec![MismatchKind::Body],
            vec!["$"],
            false,
        ),
        (
            "numbers 1 vs 1.0 equal",
            ans(200, r#"{"a":1}"#, 5),
            ans(200, r#"{"a":1.0}"#, 5),
            vec![],
            vec![],
            false,
        ),
        (
            "invalid json compared as bytes",
            ans(200, "{x", 5),
            ans(200, "{y", 5),
            vec![MismatchKind::Body],
            vec!["<body>"],
            false,
        ),
        (
            "slower than tolerance",
            ans(200, "", 5),
            ans(200, "", 56),
            vec![],
            vec![],
            true,
        ),
        (
            "at tolerance",
            ans(200, "", 5),
            ans(200, "", 55),
            vec![],
            vec![],
            false,
        ),
    ];
    for (name, p, sh, kinds, paths, slower) in cases {
        let o = compare(&s, &p, &sh);
        assert_eq!(o.kinds.iter().copied().collect::<Vec<_>>(), kinds, "{name}");
        assert_eq!(
            o.diffs.iter().map(|d| d.path.as_str()).collect::<Vec<_>>(),
            paths,
            "{name}"
        );
        assert_eq!(o.slower, slower, "{name}");
    }
}

#[test]
fn diff_values_are_reported_and_truncated() {
    let s = settings();
    let long = "x".repeat(1000);
    let p = ans(
        200,
        &json!({"item": {"price": 10, "d": long}}).to_string(),
        1,
    );
    let sh = ans(
        200,
        &json!({"item": {"price": 12.5, "d": "short"}}).to_string(),
        1,
    );
    let o = compare(&s, &p, &sh);
    let d = o.diffs.iter().find(|d| d.path == "item.price").unwrap();
    assert_eq!((d.primary.as_str(), d.shadow.as_str()), ("10", "12.5"));
    let d = o.diffs.iter().find(|d| d.path == "item.d").unwrap();
    assert!(d.primary.chars().count() <= MAX_VALUE_CHARS + 1 && d.primary.ends_with('…'));
    // Bounded number of diffs.
    let a: Vec<u32> = (0..100).collect();
    let b: Vec<u32> = (1..101).collect();
    let o = compare(
        &s,
        &ans(200, &json!(a).to_string(), 1),
        &ans(200, &json!(b).to_string(), 1),
    );
    assert_eq!(o.diffs.len(), MAX_DIFFS);
}

#[test]
fn configured_headers_are_compared() {
    let mut s = settings();
    s.compare_headers = vec!["content-type".into()];
    let mut p = ans(200, "", 1);
    let mut sh = ans(200, "", 1);
    p.headers = vec![("content-type".into(), "application/json".into())];
    sh.headers = vec![("content-type".into(), "text/plain".into())];
    let o = compare(&s, &p, &sh);
    assert_eq!(
        o.kinds.iter().copied().collect::<Vec<_>>(),
        vec![MismatchKind::Header]
    );
    sh.headers = p.headers.clone();
    assert!(!compare(&s, &p, &sh).mismatch());
    sh.headers.clear();
    assert_eq!(compare(&s, &p, &sh).diffs[0].shadow, "<absent>");
}

#[test]
fn ignore_patterns() {
    let table = [
        ("timestamp", "timestamp", true),
        ("timestamp", "Timestamp", true),
        ("timestamp", "timestamps", false),
        ("*_at", "updated_at", true),
        ("*_at", "format", false),
        ("*id", "user_id", true),
        ("req*", "request", true),
        ("*rce*", "price", false),
        ("*ric*", "pricing", true),
    ];
    for (p, k, want) in table {
        assert_eq!(FieldPattern::parse(p).unwrap().matches(k), want, "{p} {k}");
    }
    for bad in ["", "*", "**", "a*b"] {
        assert!(FieldPattern::parse(bad).is_none(), "{bad:?}");
    }
}

#[test]
fn eligibility_table() {
    let mut s = settings();
    let t = |s: &ShadowSettings, m, p, len| s.eligible(m, p, len);
    assert_eq!(t(&s, "GET", "/a", None), Ok(()));
    assert_eq!(t(&s, "HEAD", "/a", Some(0)), Ok(()));
    assert_eq!(t(&s, "POST", "/a", None), Err(Skip::NotEligible));
    // A small body is copied with the request; a big one is skipped (and counted by the filter).
    assert_eq!(t(&s, "GET", "/a", Some(10)), Ok(()));
    assert_eq!(t(&s, "GET", "/a", Some(1 << 20)), Err(Skip::BodyTooBig));
    s.methods.push("PUT".into());
    assert_eq!(t(&s, "put", "/a", Some(100)), Ok(()));
    s.path_prefixes = vec!["/api".into()];
    assert_eq!(t(&s, "GET", "/api/x", None), Ok(()));
    assert_eq!(t(&s, "GET", "/other", None), Err(Skip::NotEligible));
}

#[test]
fn settings_validation_names_the_field() {
    let cases = [
        (json!({"methods": ["G ET"]}), "shadow.methods[0]"),
        (json!({"path_prefixes": ["api"]}), "shadow.path_prefixes[0]"),
        (json!({"max_body_bytes": 0}), "shadow.max_body_bytes"),
        (
            json!({"compare_headers": ["a b"]}),
            "shadow.compare_headers[0]",
        ),
        (json!({"ignore_fields": ["a*b"]}), "shadow.ignore_fields[0]"),
        (json!({"timeout_ms": 0}), "shadow.timeout_ms"),
        (json!({"max_in_flight": 0}), "shadow.max_in_flight"),
        (json!({"noise_min_rate": 0.0}), "shadow.noise_min_rate"),
        (json!({"noise_min_rate": 1.5}), "shadow.noise_min_rate"),
        (
            json!({"latency_tolerance_ms": 100000}),
            "shadow.latency_tolerance_ms",
        ),
    ];
    for (v, field) in cases {
        let raw: RawShadow = serde_json::from_value(v.clone()).unwrap();
        let e = raw.validate().unwrap_err().to_string();
        assert!(e.starts_with(field), "{v}: {e}");
    }
    assert!(serde_json::from_value::<RawShadow>(json!({"nope": 1})).is_err());
    let s: ShadowSettings = serde_json::from_value::<RawShadow>(json!({"methods": ["get"]}))
        .unwrap()
        .validate()
        .unwrap();
    assert_eq!(s.methods, vec!["GET"]);
    assert_eq!(ShadowSettings::default().ignore_fields.len(), 7);
}

#[test]
fn stats_accumulate_merge_and_convert() {
    let s = settings();
    let mut st = ShadowStats {
        requests: 3,
        ..Default::default()
    };
    st.record(&compare(&s, &ans(200, "a", 10), &ans(200, "a", 5)));
    st.record(&compare(&s, &ans(200, "a", 10), &ans(503, "b", 300)));
    assert_eq!(
        (
            st.compared,
            st.mismatches,
            st.mismatch_status,
            st.mismatch_body
        ),
        (2, 1, 1, 1)
    );
    assert_eq!((st.shadow_errors, st.primary_errors, st.slower), (1, 0, 1));
    assert_eq!(st.latency_delta_us.count, 2);
    assert_eq!(st.latency_delta_us.zero, 1);
    let mut m = st.clone();
    m.merge(&st);
    assert_eq!(
        (m.compared, m.requests, m.latency_delta_us.count),
        (4, 6, 4)
    );
    let agg = m.to_agg();
    assert_eq!(
        (agg.compared, agg.mismatches, agg.shadow_errors, agg.slower),
        (4, 2, 2, 2)
    );
    // Round trip; unknown fields ignored (a wire type: a newer filter may add counters); missing
    // fields default.
    let txt = serde_json::to_string(&st).unwrap();
    assert_eq!(serde_json::from_str::<ShadowStats>(&txt).unwrap(), st);
    assert_eq!(
        serde_json::from_str::<ShadowStats>(r#"{"bogus":1}"#).unwrap(),
        ShadowStats::default()
    );
    assert_eq!(
        serde_json::from_str::<ShadowStats>(r#"{"compared":2}"#)
            .unwrap()
            .compared,
        2
    );
}

#[test]
fn sample_names_the_path() {
    let s = settings();
    let p = ans(200, r#"{"item":{"price":1}}"#, 1);
    let sh = ans(200, r#"{"item":{"price":2}}"#, 3);
    let o = compare(&s, &p, &sh);
    let smp = MismatchSample::new("demo", "GET", "/x", &p, &sh, &o);
    assert_eq!(smp.request, "GET /x");
    assert_eq!(smp.kinds, vec![MismatchKind::Body]);
    assert_eq!(smp.diffs[0].path, "item.price");
    assert!((smp.latency_delta_ms - 2.0).abs() < 1e-9);
}

#[test]
fn default_id_patterns_do_not_swallow_ordinary_keys() {
    let pats: Vec<FieldPattern> = default_ignore_fields()
        .iter()
        .filter_map(|p| FieldPattern::parse(p))
        .collect();
    let ignored = |k: &str| pats.iter().any(|p| p.matches(k));
    for k in [
        "id",
        "user_id",
        "orderId",
        "request_id",
        "created_at",
        "timestamp",
    ] {
        assert!(ignored(k), "{k} should be ignored");
    }
    for k in ["paid", "valid", "price", "guide"] {
        assert!(!ignored(k), "{k} must be compared");
    }
}

/// Noise (Diffy-style): a path differing between two stable answers of the same request is noise; so is
/// a path that differed between stable answers in at least `noise_min_rate` of earlier comparisons,
/// even when this request's two stable answers happened to agree (a millisecond timestamp).
#[test]
fn noise_model_classifies_by_request_and_by_rate() {
    let mut s = settings();
    s.ignore_fields.clear();
    s.noise_min_rate = 0.05;
    let mut m = NoiseModel::default();
    let primary = ans(200, r#"{"ts":1,"price":10,"nonce":"a"}"#, 1);
    // 1. The nonce differs between the two stable answers: a nonce-only mismatch is noise.
    let stable = compare(
        &s,
        &primary,
        &ans(200, r#"{"ts":1,"price":10,"nonce":"b"}"#, 1),
    );
    let mut o = compare(
        &s,
        &primary,
        &ans(200, r#"{"ts":1,"price":10,"nonce":"c"}"#, 1),
    );
    m.classify(&s, &mut o, Some(&stable));
    assert!(o.mismatch() && o.noise && o.stable_compared && o.stable_differs);
    assert_eq!(o.noise_paths, vec!["nonce"]);
    assert!(o.diffs.is_empty());
    // 2. The price also differs: a regression; the nonce is listed as noise, the price as a diff.
    let mut o = compare(
        &s,
        &primary,
        &ans(200, r#"{"ts":1,"price":11,"nonce":"c"}"#, 1),
    );
    m.classify(&s, &mut o, Some(&stable));
    assert!(o.mismatch() && !o.noise);
    assert_eq!(o.diffs.len(), 1);
    assert_eq!(o.diffs[0].path, "price");
    // 3. `ts` differed between stable answers once in 2 comparisons (rate 1/3 after this one ≥ 5 %):
    //    later a ts-only mismatch is noise even though this request's stable answers agree on ts.
    let stable_ts = compare(
        &s,
        &primary,
        &ans(200, r#"{"ts":2,"price":10,"nonce":"a"}"#, 1),
    );
    let mut o = compare(&s, &primary, &primary.clone());
    m.classify(&s, &mut o, Some(&stable_ts));
    assert!(!o.mismatch() && !o.noise && o.stable_differs);
    let agree = compare(&s, &primary, &primary.clone());
    let mut o = compare(
        &s,
        &primary,
        &ans(200, r#"{"ts":3,"price":10,"nonce":"a"}"#, 1),
    );
    m.classify(&s, &mut o, Some(&agree));
    assert!(o.noise, "{o:?}");
    assert!((m.rate("ts") - 0.25).abs() < 1e-9);
    assert_eq!(m.compared, 4);
    // 4. A path that stable rarely disagrees on, but the shadow changes far more often, is a regression
    //    (raw rate minus noise rate above `noise_min_rate`), even though stable has differed there.
    let mut last = Outcome::default();
    for _ in 0..100 {
        let mut o = compare(
            &s,
            &primary,
            &ans(200, r#"{"ts":3,"price":10,"nonce":"a"}"#, 1),
        );
        m.classify(&s, &mut o, Some(&agree));
        last = o;
    }
    assert!(m.rate("ts") < s.noise_min_rate && m.raw_rate("ts") > 0.9);
    assert!(!last.noise && last.diffs[0].path == "ts", "{last:?}");
    // A path that never differed between stable answers is never noise.
    let mut o = compare(
        &s,
        &primary,
        &ans(200, r#"{"ts":1,"price":12,"nonce":"a"}"#, 1),
    );
    m.classify(&s, &mut o, None);
    assert!(!o.noise && o.diffs[0].path == "price");
    // 5. A diff list cut at MAX_DIFFS is never called noise (unseen differences may be real).
    let wide = |v: u32| {
        let fields: Vec<String> = (0..MAX_DIFFS + 4)
            .map(|i| format!(r#""f{i}":{v}"#))
            .collect();
        ans(200, &format!("{{{}}}", fields.join(",")), 1)
    };
    let (p, x, y) = (wide(1), wide(2), wide(3));
    let st = compare(&s, &p, &x);
    let mut o = compare(&s, &p, &y);
    m.classify(&s, &mut o, Some(&st));
    assert!(o.mismatch() && !o.noise);
    // Memory is bounded.
    let many: Vec<Diff> = (0..2 * MAX_NOISE_PATHS)
        .map(|i| Diff {
            path: format!("p{i}"),
            primary: String::new(),
            shadow: String::new(),
        })
        .collect();
    m.observe(&many);
    assert_eq!(m.paths.len(), MAX_NOISE_PATHS);
}
