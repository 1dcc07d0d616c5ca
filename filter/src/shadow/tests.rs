use super::*;
use dwcp_core::shadow::RawShadow;

fn settings() -> ShadowSettings {
    RawShadow::default().validate().unwrap()
}

fn acc() -> Accumulator {
    Accumulator::new(vec!["demo".into()], vec!["standard".into()])
}

fn hdrs(method: &str, extra: &[(&str, &str)]) -> Vec<(String, Vec<u8>)> {
    let mut h = vec![
        (":method".to_string(), method.as_bytes().to_vec()),
        (":path".to_string(), b"/items/1".to_vec()),
        (":authority".to_string(), b"shop.local".to_vec()),
        ("x-user-id".to_string(), b"u1".to_vec()),
        ("connection".to_string(), b"keep-alive".to_vec()),
    ];
    for (k, v) in extra {
        h.push((k.to_string(), v.as_bytes().to_vec()));
    }
    h
}

fn info<'a>(h: &'a [(String, Vec<u8>)], bp: u32) -> RequestInfo<'a> {
    RequestInfo {
        rollout: "demo",
        shadow_cluster: Some("shadow"),
        noise_cluster: None,
        shadow_bp: bp,
        headers: h,
    }
}

#[test]
fn capture_copies_headers_marks_and_skips() {
    let s = settings();
    let mut a = acc();
    let mut m = Mirror::default();
    let h = hdrs("GET", &[]);
    let c = m.capture(&s, &mut a, &info(&h, 10_000)).unwrap();
    assert_eq!(
        (c.method.as_str(), c.path.as_str(), c.cluster.as_str()),
        ("GET", "/items/1", "shadow")
    );
    assert!(c
        .headers
        .iter()
        .any(|(k, v)| k == SHADOW_HEADER && v == "1"));
    assert!(c
        .headers
        .iter()
        .any(|(k, v)| k == ":authority" && v == "shop.local"));
    assert!(!c.headers.iter().any(|(k, _)| k == "connection"));
    // No shadow cluster or bp 0: nothing, nothing counted.
    assert!(m.capture(&s, &mut a, &info(&h, 0)).is_none());
    let mut i = info(&h, 10_000);
    i.shadow_cluster = None;
    assert!(m.capture(&s, &mut a, &i).is_none());
    assert!(a.shadow.is_empty());
    // POST not mirrored by default; big body counted apart.
    let p = hdrs("POST", &[]);
    assert!(m.capture(&s, &mut a, &info(&p, 10_000)).is_none());
    let big = hdrs("GET", &[("content-length", "1000000")]);
    assert!(m.capture(&s, &mut a, &info(&big, 10_000)).is_none());
    let st = &a.shadow["demo"];
    assert_eq!((st.skipped_not_eligible, st.skipped_body_too_big), (1, 1));
}

#[test]
fn missing_authority_is_fixed() {
    let s = settings();
    let mut a = acc();
    let mut m = Mirror::default();
    let h: Vec<(String, Vec<u8>)> = hdrs("GET", &[])
        .into_iter()
        .filter(|(k, _)| k != ":authority")
        .collect();
    let c = m.capture(&s, &mut a, &info(&h, 10_000)).unwrap();
    assert!(c
        .headers
        .iter()
        .any(|(k, v)| k == ":authority" && v == "shadow"));
}

#[test]
fn sampling_follows_shadow_bp() {
    let s = settings();
    let mut a = acc();
    let mut m = Mirror::default();
    let h = hdrs("GET", &[]);
    let n = (0..10_000)
        .filter(|_| m.capture(&s, &mut a, &info(&h, 2_500)).is_some())
        .count();
    assert_eq!(n, 2_500);
}

#[test]
fn full_cycle_compares_and_samples() {
    let s = settings();
    let mut a = acc();
    let mut m = Mirror::default();
    let h = hdrs("GET", &[]);
    for (i, shadow_body) in [
        r#"{"item":{"price":1},"timestamp":5}"#,
        r#"{"item":{"price":2},"timestamp":6}"#,
    ]
    .iter()
    .enumerate()
    {
        let mut c = m.capture(&s, &mut a, &info(&h, 10_000)).unwrap();
        c.body_chunk(br#"{"item":{"price""#, s.max_body_bytes);
        c.body_chunk(br#":1},"timestamp":4}"#, s.max_body_bytes);
        m.enqueue(&s, &mut a, c, 200, 2_000);
        for c in m.take_queue() {
            m.sent(&mut a, i as u32 + 1, None, c, 1_000_000);
        }
        let ans = SideAnswer {
            status: Some(200),
            body: shadow_body.as_bytes().to_vec(),
            ..Default::default()
        };
        assert!(m.on_answer(&s, &mut a, i as u32 + 1, ans, 1_003_000));
    }
    assert!(!m.on_answer(&s, &mut a, 99, SideAnswer::default(), 0));
    assert_eq!(m.pending(), 0);
    let b = a.take_batch("vm", 1, 1, 0);
    let st = &b.shadow["demo"];
    assert_eq!(
        (st.requests, st.compared, st.mismatches, st.mismatch_body),
        (2, 2, 1, 1)
    );
    assert_eq!(b.samples.len(), 1);
    assert_eq!(b.samples[0].request, "GET /items/1");
    assert_eq!(b.samples[0].diffs[0].path, "item.price");
    // Latency delta: shadow 3 ms vs primary 2 ms.
    assert!((b.samples[0].latency_delta_ms - 1.0).abs() < 1e-9);
}

#[test]
fn failures_and_big_bodies_are_counted() {
    let s = settings();
    let mut a = acc();
    let mut m = Mirror::default();
    let h = hdrs("GET", &[]);
    // Primary body over the bound.
    let mut c = m.capture(&s, &mut a, &info(&h, 10_000)).unwrap();
    c.body_chunk(&vec![b'x'; s.max_body_bytes + 1], s.max_body_bytes);
    assert!(c.too_big && c.primary.body.is_empty());
    m.enqueue(&s, &mut a, c, 200, 1);
    assert_eq!(m.pending(), 0);
    // Side call refused (Envoy's local 503) and not dispatched at all.
    let c = m.capture(&s, &mut a, &info(&h, 10_000)).unwrap();
    m.enqueue(&s, &mut a, c, 200, 1);
    let mut q = m.take_queue();
    let c = q.remove(0);
    m.send_failed(&mut a, &c);
    m.sent(&mut a, 7, None, c, 0);
    let refused = SideAnswer {
        status: Some(503),
        body: b"upstream connect error or disconnect/reset before headers".to_vec(),
        ..Default::default()
    };
    m.on_answer(&s, &mut a, 7, refused, 10);
    let st = a.shadow["demo"].clone();
    assert_eq!(st.skipped_body_too_big, 1);
    assert_eq!(st.side_call_failed, 2);
    assert_eq!(
        (st.compared, st.shadow_errors, st.mismatch_status),
        (1, 1, 1)
    );
    assert!(!SideAnswer {
        status: Some(503),
        body: b"{}".to_vec(),
        ..Default::default()
    }
    .is_local_failure());
    assert!(SideAnswer::default().is_local_failure());
}

/// In-flight state is bounded by `max_in_flight`; its memory is at most
/// max_in_flight × (max_body_bytes + headers) and is measured here.
#[test]
fn in_flight_state_is_bounded_and_measured() {
    let mut s = settings();
    s.max_in_flight = 64;
    s.max_body_bytes = 4096;
    let mut a = acc();
    let mut m = Mirror::default();
    let h = hdrs(
        "GET",
        &[("user-agent", "wrk"), ("accept", "application/json")],
    );
    for i in 0..200u32 {
        if let Some(mut c) = m.capture(&s, &mut a, &info(&h, 10_000)) {
            c.body_chunk(&vec![b'x'; 4096], s.max_body_bytes);
            m.enqueue(&s, &mut a, c, 200, 1);
        }
        if i % 2 == 0 {
            for c in m.take_queue() {
                m.sent(&mut a, i * 1000 + m.in_flight.len() as u32, None, c, 0);
            }
        }
    }
    assert_eq!(m.pending(), 64);
    assert_eq!(a.shadow["demo"].skipped_in_flight, 136);
    let bytes = m.bytes();
    let per_copy = bytes / 64;
    eprintln!(
        "in-flight shadow state: {bytes} bytes for 64 copies ({per_copy} B each, body 4096 B)"
    );
    // Body plus ~1 KiB of headers and bookkeeping (room for both side answers while they arrive).
    assert!(per_copy >= 4096 && per_copy < 4096 + 1536, "{per_copy}");
    // Draining frees everything.
    let tokens: Vec<u32> = m.tokens.keys().copied().collect();
    for t in tokens {
        m.on_answer(
            &s,
            &mut a,
            t,
            SideAnswer {
                status: Some(200),
                ..Default::default()
            },
            1,
        );
    }
    m.take_queue();
    assert_eq!((m.pending(), m.bytes()), (0, 0));
}

/// Noise copy: a field that two stable answers disagree on (a random id not covered by the ignore
/// patterns) is noise; a changed price is a regression, reported without the noisy path in its diffs.
#[test]
fn noise_copy_discounts_what_stable_disagrees_on() {
    let mut s = settings();
    s.noise_copy = true;
    s.ignore_fields.clear();
    let mut a = acc();
    let mut m = Mirror::default();
    let h = hdrs("GET", &[]);
    let body =
        |price: u32, nonce: u32| format!(r#"{{"item":{{"price":{price}}},"nonce":{nonce}}}"#);
    let mut token = 0;
    for i in 0..100u32 {
        let mut inf = info(&h, 10_000);
        inf.noise_cluster = Some("stable");
        let mut c = m.capture(&s, &mut a, &inf).unwrap();
        assert_eq!(c.noise_cluster.as_deref(), Some("stable"));
        c.body_chunk(body(10, 3 * i).as_bytes(), s.max_body_bytes);
        m.enqueue(&s, &mut a, c, 200, 1_000);
        let c = m.take_queue().remove(0);
        token += 2;
        m.sent(&mut a, token, Some(token + 1), c, 0);
        let shadow_price = if i % 10 == 0 { 11 } else { 10 };
        let ans = |b: String| SideAnswer {
            status: Some(200),
            body: b.into_bytes(),
            ..Default::default()
        };
        // The noise answer arrives first for odd i: order does not matter.
        if i % 2 == 1 {
            assert!(m.on_answer(&s, &mut a, token + 1, ans(body(10, 3 * i + 2)), 500));
            assert_eq!(m.pending(), 1, "compared before the shadow answered");
            assert!(m.on_answer(&s, &mut a, token, ans(body(shadow_price, 3 * i + 1)), 500));
        } else {
            assert!(m.on_answer(&s, &mut a, token, ans(body(shadow_price, 3 * i + 1)), 500));
            assert_eq!(m.pending(), 1, "compared before the noise copy answered");
            assert!(m.on_answer(&s, &mut a, token + 1, ans(body(10, 3 * i + 2)), 500));
        }
        assert_eq!(m.pending(), 0);
    }
    let b = a.take_batch("vm", 1, 1, 0);
    let st = &b.shadow["demo"];
    assert_eq!(
        (st.compared, st.mismatches),
        (100, 100),
        "nonce differs every time"
    );
    assert_eq!((st.noise_compared, st.stable_differs), (100, 100));
    assert_eq!(st.noise, 90, "only the nonce differs in 90 answers");
    // The 10 price changes are regressions, sampled (bounded) with the nonce listed as noise.
    assert!(!b.samples.is_empty());
    for smp in &b.samples {
        assert_eq!(smp.diffs.len(), 1);
        assert_eq!(smp.diffs[0].path, "item.price");
        assert_eq!(smp.noise_paths, vec!["nonce".to_string()]);
    }
    assert!(m.noise["demo"].rate("nonce") > 0.99);
}

/// A failed noise call loses only that request's noise estimate; the comparison still happens.
#[test]
fn failed_noise_call_still_compares() {
    let mut s = settings();
    s.noise_copy = true;
    let mut a = acc();
    let mut m = Mirror::default();
    let h = hdrs("GET", &[]);
    let mut inf = info(&h, 10_000);
    inf.noise_cluster = Some("stable");
    let mut c = m.capture(&s, &mut a, &inf).unwrap();
    c.body_chunk(b"{\"a\":1}", s.max_body_bytes);
    m.enqueue(&s, &mut a, c, 200, 1_000);
    let c = m.take_queue().remove(0);
    m.sent(&mut a, 1, Some(2), c, 0);
    m.on_answer(&s, &mut a, 2, SideAnswer::default(), 10);
    let ok = SideAnswer {
        status: Some(200),
        body: b"{\"a\":2}".to_vec(),
        ..Default::default()
    };
    m.on_answer(&s, &mut a, 1, ok, 10);
    let st = &a.shadow["demo"];
    assert_eq!((st.compared, st.mismatches, st.noise), (1, 1, 0));
    assert_eq!(
        (st.noise_call_failed, st.noise_compared, st.side_call_failed),
        (1, 0, 0)
    );
    assert_eq!(m.pending(), 0);
}
