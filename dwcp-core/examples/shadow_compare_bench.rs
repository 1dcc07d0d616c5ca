//! Cost of one shadow comparison (the work the filter does per mirrored answer), natively.
//! `cargo run --release -p dwcp-core --example shadow_compare_bench`
//! Cases: identical bytes; JSON equal after ignoring ids and timestamps; one changed field.
#![allow(clippy::disallowed_methods, clippy::expect_used)] // an example: it reads the clock to measure
use dwcp_core::shadow::{compare, Answer, RawShadow};
use std::time::Instant;

fn answer(body: &str) -> Answer {
    Answer {
        status: 200,
        headers: vec![],
        body: body.as_bytes().to_vec(),
        latency_us: 1000,
    }
}

fn main() {
    let mut raw = RawShadow::default();
    raw.ignore_fields.push("served_by".into());
    let s = raw.validate().expect("settings");
    let body = |who: &str, price: f64, id: u64, ts: u64| {
        format!(
            r#"{{"served_by":"{who}","path":"/items/1","user":"user-42","item":{{"sku":"A-1","price":{price}}},"request_id":{id},"timestamp":{ts}}}"#
        )
    };
    let p = answer(&body("stable", 10.0, 17, 1_764_300_000_000));
    let cases = [
        ("identical bytes", p.clone()),
        (
            "equal after ignored fields",
            answer(&body("shadow", 10.0, 99, 1_764_300_000_003)),
        ),
        (
            "one field differs",
            answer(&body("shadow", 10.5, 99, 1_764_300_000_003)),
        ),
    ];
    {
        let n = 200_000;
        let t = Instant::now();
        for _ in 0..n {
            let v: serde_json::Value =
                serde_json::from_slice(std::hint::black_box(&p.body)).unwrap_or_default();
            std::hint::black_box(v);
        }
        println!(
            "{:<28} {:8.0} ns per body",
            "parse only (serde_json)",
            t.elapsed().as_nanos() as f64 / n as f64
        );
    }
    for (name, shadow) in cases {
        let n = 200_000;
        let mut mism = 0u64;
        // Warm up, then time.
        for _ in 0..10_000 {
            mism += u64::from(compare(&s, &p, &shadow).mismatch());
        }
        let t = Instant::now();
        for _ in 0..n {
            mism += u64::from(std::hint::black_box(compare(&s, &p, &shadow)).mismatch());
        }
        let ns = t.elapsed().as_nanos() as f64 / n as f64;
        println!(
            "{name:<28} {:8.0} ns per comparison ({} mismatches)",
            ns, mism
        );
    }
}
