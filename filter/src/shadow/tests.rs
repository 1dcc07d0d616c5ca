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
        has_body: false,
    }
}

#[test]
fn capture_copies_headers_marks_and_skips() {
    let s = settings();
    let mut a = acc();
    let mut m = Mirror::default();
    let h = hdrs("GET", &[]);
    let id = m.capture(&s, &mut a, &info(&h, 10_000)).unwrap();
    let c = m.request(id).unwrap().clone();
    assert_eq!(
        m.take_queue(),
        vec![id],
        "queued for the root context at once"
    );
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
    assert!(m.take_queue().is_empty());
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
    let id = m.capture(&s, &mut a, &info(&h, 10_000)).unwrap();
    let c = m.request(id).unwrap();
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
    let mut n = 0;
    for _ in 0..10_000 {
        if let Some(id) = m.capture(&s, &mut a, &info(&h, 2_500)) {
            n += 1;
            m.abandon(id);
        }
    }
    assert_eq!(n, 2_500);
}

fn primary(body: &[&[u8]], max: usize) -> Primary {
    let mut p = Primary::default();
    for b in body {
        p.body_chunk(b, max);
    }
    p
}

fn ok(body: &str) -> SideAnswer {
    SideAnswer {
        status: Some(200),
        body: body.as_bytes().to_vec(),
        ..Default::default()
    }
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
        let id = m.capture(&s, &mut a, &info(&h, 10_000)).unwrap();
        // The copy leaves while the primary is still running.
        assert_eq!(m.take_queue(), vec![id]);
        let token = i as u32 + 1;
        m.sent(&mut a, id, token, None, 1_000_000);
        let p = primary(
            &[br#"{"item":{"price""#, br#":1},"timestamp":4}"#],
            s.max_body_bytes,
        );
        if i == 0 {
            // Shadow first, then the primary finishes.
            assert!(m.on_answer(&s, &mut a, token, ok(shadow_body), 1_003_000));
            assert_eq!(m.pending(), 1, "compared before the primary finished");
            m.primary_done(&s, &mut a, id, p, 200, 2_000);
        } else {
            m.primary_done(&s, &mut a, id, p, 200, 2_000);
            assert_eq!(m.pending(), 1, "compared before the shadow answered");
            assert!(m.on_answer(&s, &mut a, token, ok(shadow_body), 1_003_000));
        }
        assert_eq!(m.pending(), 0);
    }
    assert!(!m.on_answer(&s, &mut a, 99, SideAnswer::default(), 0));
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
    // Primary body over the bound: the copy is dropped, its late answer discarded.
    let id = m.capture(&s, &mut a, &info(&h, 10_000)).unwrap();
    m.take_queue();
    m.sent(&mut a, id, 3, None, 0);
    let p = primary(&[&vec![b'x'; s.max_body_bytes + 1]], s.max_body_bytes);
    assert!(p.too_big && p.answer.body.is_empty());
    m.primary_done(&s, &mut a, id, p, 200, 1);
    assert_eq!(m.pending(), 0);
    assert!(m.on_answer(&s, &mut a, 3, ok("{}"), 5));
    // Not dispatched at all (unknown cluster).
    let id = m.capture(&s, &mut a, &info(&h, 10_000)).unwrap();
    m.take_queue();
    m.send_failed(&mut a, id);
    m.primary_done(&s, &mut a, id, Primary::default(), 200, 1);
    assert_eq!(m.pending(), 0);
    // Side call refused (Envoy's local 503).
    let id = m.capture(&s, &mut a, &info(&h, 10_000)).unwrap();
    m.take_queue();
    m.sent(&mut a, id, 7, None, 0);
    let refused = SideAnswer {
        status: Some(503),
        body: b"upstream connect error or disconnect/reset before headers".to_vec(),
        ..Default::default()
    };
    m.on_answer(&s, &mut a, 7, refused, 10);
    m.primary_done(&s, &mut a, id, Primary::default(), 200, 1);
    // The client went away before the primary answered (status 0): not compared.
    let id = m.capture(&s, &mut a, &info(&h, 10_000)).unwrap();
    m.take_queue();
    m.sent(&mut a, id, 8, None, 0);
    m.primary_done(&s, &mut a, id, Primary::default(), 0, 1);
    assert!(m.on_answer(&s, &mut a, 8, ok("{}"), 5));
    assert_eq!(a.shadow["demo"].skipped_primary_incomplete, 1);
    // A context that never reached on_log frees its slot.
    let id = m.capture(&s, &mut a, &info(&h, 10_000)).unwrap();
    m.abandon(id);
    assert_eq!((m.pending(), m.take_queue().len()), (0, 0));
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

/// Live copies are bounded by `max_in_flight`; their memory is at most
/// max_in_flight × (primary body + shadow body + headers) and is measured here.
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
    let mut token = 0;
    for _ in 0..200u32 {
        if let Some(id) = m.capture(&s, &mut a, &info(&h, 10_000)) {
            m.take_queue();
            token += 1;
            m.sent(&mut a, id, token, None, 0);
            // Worst case: the shadow answered in full, the primary is still running.
            m.on_answer(&s, &mut a, token, ok(&"x".repeat(4096)), 1);
        }
    }
    assert_eq!(m.pending(), 64);
    assert_eq!(a.shadow["demo"].skipped_in_flight, 136);
    let bytes = m.bytes();
    let per_copy = bytes / 64;
    eprintln!(
        "in-flight shadow state: {bytes} bytes for 64 copies ({per_copy} B each, body 4096 B)"
    );
    // Body plus ~1 KiB of headers and bookkeeping.
    assert!((4096..4096 + 1536).contains(&per_copy), "{per_copy}");
    // Finishing the primaries frees everything.
    let ids: Vec<u64> = m.copies.keys().copied().collect();
    for id in ids {
        let p = primary(&[&vec![b'x'; 4096]], s.max_body_bytes);
        m.primary_done(&s, &mut a, id, p, 200, 1);
    }
    assert_eq!((m.pending(), m.bytes()), (0, 0));
    assert_eq!(a.shadow["demo"].compared, 64);
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
        let id = m.capture(&s, &mut a, &inf).unwrap();
        assert_eq!(
            m.request(id).unwrap().noise_cluster.as_deref(),
            Some("stable")
        );
        m.take_queue();
        token += 2;
        m.sent(&mut a, id, token, Some(token + 1), 0);
        let p = primary(&[body(10, 3 * i).as_bytes()], s.max_body_bytes);
        m.primary_done(&s, &mut a, id, p, 200, 1_000);
        let shadow_price = if i % 10 == 0 { 11 } else { 10 };
        // The noise answer arrives first for odd i: order does not matter.
        if i % 2 == 1 {
            assert!(m.on_answer(&s, &mut a, token + 1, ok(&body(10, 3 * i + 2)), 500));
            assert_eq!(m.pending(), 1, "compared before the shadow answered");
            assert!(m.on_answer(&s, &mut a, token, ok(&body(shadow_price, 3 * i + 1)), 500));
        } else {
            assert!(m.on_answer(&s, &mut a, token, ok(&body(shadow_price, 3 * i + 1)), 500));
            assert_eq!(m.pending(), 1, "compared before the noise copy answered");
            assert!(m.on_answer(&s, &mut a, token + 1, ok(&body(10, 3 * i + 2)), 500));
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
    let id = m.capture(&s, &mut a, &inf).unwrap();
    m.take_queue();
    m.sent(&mut a, id, 1, Some(2), 0);
    m.primary_done(&s, &mut a, id, primary(&[b"{\"a\":1}"], 100), 200, 1_000);
    m.on_answer(&s, &mut a, 2, SideAnswer::default(), 10);
    m.on_answer(&s, &mut a, 1, ok("{\"a\":2}"), 10);
    let st = &a.shadow["demo"];
    assert_eq!((st.compared, st.mismatches, st.noise), (1, 1, 0));
    assert_eq!(
        (st.noise_call_failed, st.noise_compared, st.side_call_failed),
        (1, 0, 0)
    );
    assert_eq!(m.pending(), 0);
}

/// A request with a body (a configured method, e.g. PUT): the copy waits for the body, carries it, and
/// leaves when the body is complete; a body over the bound drops the copy (counted).
#[test]
fn request_bodies_are_copied_bounded() {
    let mut s = settings();
    s.methods.push("PUT".into());
    s.max_body_bytes = 10;
    let mut a = acc();
    let mut m = Mirror::default();
    let h = hdrs(
        "PUT",
        &[("content-length", "8"), ("transfer-encoding", "chunked")],
    );
    let mut i = info(&h, 10_000);
    i.has_body = true;
    let id = m.capture(&s, &mut a, &i).unwrap();
    assert!(m.awaiting_body(id));
    assert!(
        m.take_queue().is_empty(),
        "not dispatched before the body is in"
    );
    assert!(!m.request_body(&s, &mut a, id, b"{\"a\":", false));
    assert!(m.request_body(&s, &mut a, id, b"1}", true));
    assert_eq!(m.take_queue(), vec![id]);
    let r = m.request(id).unwrap();
    assert_eq!(r.body, b"{\"a\":1}");
    assert!(!r
        .headers
        .iter()
        .any(|(k, _)| k == "content-length" || k == "transfer-encoding"));
    // Over the bound while streaming: dropped, counted, nothing queued.
    let id2 = m.capture(&s, &mut a, &i).unwrap();
    assert!(!m.request_body(&s, &mut a, id2, b"0123456789abc", true));
    assert!(m.request(id2).is_none() && m.take_queue().is_empty());
    assert_eq!(a.shadow["demo"].skipped_body_too_big, 1);
    // Announced too big: not captured at all.
    let big = hdrs("PUT", &[("content-length", "11")]);
    assert!(m.capture(&s, &mut a, &info(&big, 10_000)).is_none());
    assert_eq!(a.shadow["demo"].skipped_body_too_big, 2);
    // The primary finished while the body was still streaming (client gone): dropped.
    let id3 = m.capture(&s, &mut a, &i).unwrap();
    m.primary_done(&s, &mut a, id3, Primary::default(), 200, 1);
    assert!(m.request(id3).is_none());
    assert_eq!(a.shadow["demo"].skipped_primary_incomplete, 1);
}

#[test]
fn copies_drop_credentials_and_forged_marks_and_carry_a_verifiable_mac() {
    let mut raw = RawShadow::default();
    raw.strip_headers.push("x-shop-key".into());
    raw.mark_key = Some("deployment-key-0123456789".into());
    let s = raw.validate().unwrap();
    let mut a = acc();
    let mut m = Mirror::default();
    let h = hdrs(
        "GET",
        &[
            ("authorization", "Bearer user-secret"),
            ("cookie", "session=abc"),
            ("x-api-key", "k1"),
            ("x-shop-key", "k2"),
            ("x-dwcp-shadow", "forged"),
            ("x-dwcp-shadow-mac", "forged"),
            ("x-request-id", "rid-42"),
        ],
    );
    let id = m.capture(&s, &mut a, &info(&h, 10_000)).unwrap();
    let c = m.request(id).unwrap().clone();
    for gone in ["authorization", "cookie", "x-api-key", "x-shop-key"] {
        assert!(!c.headers.iter().any(|(k, _)| k == gone), "{gone} copied");
    }
    let marks: Vec<&(String, String)> = c
        .headers
        .iter()
        .filter(|(k, _)| k.starts_with("x-dwcp-shadow"))
        .collect();
    assert_eq!(
        marks.len(),
        2,
        "one mark, one mac, no forged copy: {marks:?}"
    );
    let mac = &c
        .headers
        .iter()
        .find(|(k, _)| k == SHADOW_MAC_HEADER)
        .unwrap()
        .1;
    assert_eq!(mac, &shadow_mac("deployment-key-0123456789", "rid-42"));
    assert_ne!(mac, &shadow_mac("another-deployment-key", "rid-42"));
    assert_ne!(mac, &shadow_mac("deployment-key-0123456789", "rid-43"));
    // RFC 4231 test case 2: HMAC-SHA256(key "Jefe", "what do ya want for nothing?").
    assert_eq!(
        shadow_mac("Jefe", "what do ya want for nothing?"),
        "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
    );
    // The user's own request headers still carry them (only the copy is stripped).
    assert!(h.iter().any(|(k, _)| k == "authorization"));
}
