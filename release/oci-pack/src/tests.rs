//! Reproducibility and verification, on a tiny valid module (the 8-byte empty module).

use crate::{layout, verify, WASM_HEADER};
use std::path::Path;

fn module(extra: &[u8]) -> Vec<u8> {
    let mut m = WASM_HEADER.to_vec();
    // A custom section (id 0) carrying `extra`, so different inputs are still valid modules.
    if !extra.is_empty() {
        m.push(0);
        m.push((extra.len() + 1) as u8);
        m.push(0); // empty section name
        m.extend_from_slice(extra);
    }
    m
}

fn tmp() -> tempfile::TempDir {
    match tempfile::tempdir() {
        Ok(d) => d,
        Err(e) => unreachable!("tempdir: {e}"),
    }
}

fn build(wasm: &[u8], dir: &Path) -> layout::Built {
    match layout::build(wasm, dir, "t") {
        Ok(b) => b,
        Err(e) => unreachable!("build: {e}"),
    }
}

#[test]
fn same_input_gives_the_same_digest_and_bytes() {
    let (a, b) = (tmp(), tmp());
    let (ba, bb) = (
        build(&module(b"x"), a.path()),
        build(&module(b"x"), b.path()),
    );
    assert_eq!(ba, bb);
    for f in ["index.json", "oci-layout"] {
        assert_eq!(
            std::fs::read(a.path().join(f)).ok(),
            std::fs::read(b.path().join(f)).ok()
        );
    }
}

#[test]
fn different_input_gives_a_different_digest() {
    let (a, b) = (tmp(), tmp());
    assert_ne!(
        build(&module(b"x"), a.path()).manifest_hex,
        build(&module(b"y"), b.path()).manifest_hex
    );
}

#[test]
fn a_built_layout_verifies_and_round_trips_the_module() {
    let d = tmp();
    let m = module(b"hello");
    let b = build(&m, d.path());
    let v = verify::verify(d.path()).unwrap_or_default();
    assert_eq!(v.len(), 1);
    assert_eq!(v[0].manifest_hex, b.manifest_hex);
    assert_eq!(v[0].wasm, m);
    assert_eq!(v[0].tag.as_deref(), Some("t"));
}

#[test]
fn rebuilding_into_the_same_dir_leaves_no_stale_blobs() {
    let d = tmp();
    build(&module(b"x"), d.path());
    build(&module(b"y"), d.path());
    let n = std::fs::read_dir(d.path().join("blobs/sha256"))
        .map(|r| r.count())
        .unwrap_or(0);
    assert_eq!(n, 3);
}

#[test]
fn not_a_module_is_refused() {
    let d = tmp();
    assert!(layout::build(b"#!/bin/sh\n", d.path(), "t").is_err());
}

#[test]
fn tampering_is_detected() {
    type Tamper = fn(&Path, &layout::Built);
    let cases: [(&str, Tamper); 4] = [
        ("layer bytes changed", |d, b| {
            let p = d.join("blobs/sha256").join(&b.layer_hex);
            let mut x = std::fs::read(&p).unwrap_or_default();
            let n = x.len() / 2;
            x[n] ^= 1;
            let _ = std::fs::write(p, x);
        }),
        ("manifest blob missing", |d, b| {
            let _ = std::fs::remove_file(d.join("blobs/sha256").join(&b.manifest_hex));
        }),
        ("config blob truncated", |d, b| {
            let p = d.join("blobs/sha256").join(&b.config_hex);
            let x = std::fs::read(&p).unwrap_or_default();
            let _ = std::fs::write(p, &x[..x.len() - 1]);
        }),
        ("index points at another digest", |d, b| {
            let p = d.join("index.json");
            let x = std::fs::read_to_string(&p).unwrap_or_default();
            let _ = std::fs::write(p, x.replace(&b.manifest_hex, &b.layer_hex));
        }),
    ];
    for (desc, tamper) in cases {
        let d = tmp();
        let b = build(&module(b"x"), d.path());
        tamper(d.path(), &b);
        assert!(verify::verify(d.path()).is_err(), "{desc}: verify passed");
    }
}
