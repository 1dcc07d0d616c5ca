//! Fuzz targets: every parser that takes outside input, each a `fn(&[u8])` that must never panic
//! (a panic is a crash), and the mutation engine `make fuzz` drives them with.
//!
//! Coverage guidance needs either nightly (`cargo fuzz`, `-Zsanitizer`) or AFL++'s compiler plugins
//! (`cargo afl`), neither available on this stable toolchain; the engine is therefore mutation-based
//! and *outcome*-guided: an input whose result (accepted, or the refusal's message with digits
//! removed) was not seen before joins the in-memory corpus, so mutations go on from inputs that reach
//! new parser paths. Seeds are the files under `fuzz/corpus/<target>/`.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::collections::HashSet;

/// A target: a name (its corpus folder) and the function under test. It returns a short outcome
/// label (guidance); it must not panic on any input.
pub struct Target {
    pub name: &'static str,
    pub run: fn(&[u8]) -> String,
}

fn label<T, E: std::fmt::Display>(r: Result<T, E>) -> String {
    match r {
        Ok(_) => "ok".into(),
        // Digits removed: positions and values do not make a path new.
        Err(e) => e
            .to_string()
            .chars()
            .filter(|c| !c.is_ascii_digit())
            .take(80)
            .collect(),
    }
}

fn plugin_config(data: &[u8]) -> String {
    let a = label(dwcp_core::config::FilterConfig::from_slice(data));
    let b = label(dwcp_filter::vm::accept_config(data));
    format!("{a}|{b}")
}

fn flag_definitions(data: &[u8]) -> String {
    label(dwcp_analyzer::ofrep::parse(&String::from_utf8_lossy(data)))
}

/// A ledger with one rollout, what the companion runs a batch through after parsing it.
fn ledger() -> dwcp_core::ledger::Ledger {
    use dwcp_core::ledger::{Definition, Ledger};
    let defs = vec![Definition {
        spec: dwcp_core::rollout::RolloutSpec::default_for("checkout"),
        autostart: true,
    }];
    let (rollouts, _) = dwcp_core::ledger::reconcile(Default::default(), &defs, 1_000);
    Ledger::new(rollouts, 1, false, 60_000)
}

fn telemetry_batch(data: &[u8]) -> String {
    match serde_json::from_slice::<dwcp_core::telemetry::Batch>(data) {
        Err(e) => label::<(), _>(Err(e)),
        Ok(b) => {
            let mut l = ledger();
            let r = label(l.ingest(b, 1_700_000_000_000));
            l.tick(1_700_000_001_000);
            r
        }
    }
}

fn filter_vm() -> dwcp_filter::vm::Vm {
    // The shipped plugin config's rollout (`fuzz/corpus/plugin_config/shipped.json`).
    let cfg = dwcp_core::config::FilterConfig::from_slice(include_bytes!(
        "../corpus/plugin_config/shipped.json"
    ))
    .or_else(|_| dwcp_core::config::FilterConfig::from_slice(b""));
    #[allow(clippy::expect_used)]
    let cfg = cfg.expect("an empty plugin config is valid");
    dwcp_filter::vm::Vm::new(cfg, "fuzz-vm".into())
}

fn dynamic_state(data: &[u8]) -> String {
    let mut vm = filter_vm();
    // From shared data (another VM's copy) and as the companion's answer to a batch.
    let shared = vm.adopt_shared(data);
    let (b, _) = vm.next_batch(1_000);
    vm.in_flight = Some((7, b));
    let published = vm.on_sync_response(7, Some(200), data, 2_000).is_some();
    vm.refresh(2_500);
    format!("{shared}|{published}")
}

fn shadow_normaliser(data: &[u8]) -> String {
    use dwcp_core::shadow::{compare, Answer, ShadowSettings};
    // Two answers from one input: split at the first 0xff (or the middle).
    let at = data
        .iter()
        .position(|b| *b == 0xff)
        .unwrap_or(data.len() / 2);
    let (a, b) = data.split_at(at);
    let b = b.get(1..).unwrap_or_default();
    let answer = |body: &[u8]| Answer {
        status: 200,
        headers: vec![("content-type".into(), "application/json".into())],
        body: body.to_vec(),
        latency_us: 1_000,
    };
    let o = compare(&ShadowSettings::default(), &answer(a), &answer(b));
    format!("{}:{}", o.kinds.len(), o.diffs.len().min(8))
}

fn engine_frames(data: &[u8]) -> String {
    label(dwcp_engines::compression::frame::decode(data, 1 << 20))
}

pub const TARGETS: [Target; 6] = [
    Target {
        name: "plugin_config",
        run: plugin_config,
    },
    Target {
        name: "flag_definitions",
        run: flag_definitions,
    },
    Target {
        name: "telemetry_batch",
        run: telemetry_batch,
    },
    Target {
        name: "dynamic_state",
        run: dynamic_state,
    },
    Target {
        name: "shadow_normaliser",
        run: shadow_normaliser,
    },
    Target {
        name: "engine_frames",
        run: engine_frames,
    },
];

/// Tokens spliced into JSON-shaped inputs.
const DICT: &[&[u8]] = &[
    b"{",
    b"}",
    b"[",
    b"]",
    b"\"",
    b":",
    b",",
    b"null",
    b"true",
    b"-1",
    b"0",
    b"1e999",
    b"18446744073709551616",
    b"-9223372036854775809",
    b"\"\\u0000\"",
    b"\"\\ud800\"",
    b"{}",
    b"[]",
    b"\"version\":",
    b"\"rollouts\":",
    b"\"cells\":",
    b"\"state\":",
    b"\"epoch\":",
    b"\"hist\":",
    b"\"flags\":",
    b"\"targeting\":",
    b"\"fractional\":",
    b"\"if\":",
];

/// One run's result.
#[derive(Debug, Default)]
pub struct Report {
    pub execs: u64,
    pub crashes: Vec<Vec<u8>>,
    pub corpus: usize,
    pub outcomes: usize,
    pub slowest_us: u128,
}

fn mutate(rng: &mut ChaCha8Rng, corpus: &[Vec<u8>], input: &mut Vec<u8>) {
    for _ in 0..rng.gen_range(1..=4) {
        let len = input.len();
        match rng.gen_range(0..9) {
            0 if len > 0 => {
                let i = rng.gen_range(0..len);
                input[i] ^= 1 << rng.gen_range(0..8);
            }
            1 if len > 0 => {
                let i = rng.gen_range(0..len);
                input[i] = [0, 0x7f, 0x80, 0xff, b'"', b'\\', b'9', b'{'][rng.gen_range(0..8)];
            }
            2 => {
                let i = rng.gen_range(0..=len);
                input.insert(i, rng.gen());
            }
            3 if len > 0 => {
                let i = rng.gen_range(0..len);
                let n = rng.gen_range(1..=(len - i).min(16));
                input.drain(i..i + n);
            }
            4 if len > 0 => {
                let i = rng.gen_range(0..len);
                let n = rng.gen_range(1..=(len - i).min(64));
                let chunk = input[i..i + n].to_vec();
                let at = rng.gen_range(0..=input.len());
                input.splice(at..at, chunk);
            }
            5 => {
                let t = DICT[rng.gen_range(0..DICT.len())];
                let at = rng.gen_range(0..=len);
                input.splice(at..at, t.iter().copied());
            }
            6 if !corpus.is_empty() => {
                let other = &corpus[rng.gen_range(0..corpus.len())];
                let cut = rng.gen_range(0..=len);
                let from = rng.gen_range(0..=other.len());
                input.truncate(cut);
                input.extend_from_slice(&other[from..]);
            }
            7 if len > 0 => input.truncate(rng.gen_range(0..len)),
            _ => {
                // A run of digits (numbers at the edges of their types).
                let at = rng.gen_range(0..=len);
                let n = rng.gen_range(1..=24);
                let digits: Vec<u8> = (0..n).map(|_| b'0' + rng.gen_range(0..10)).collect();
                input.splice(at..at, digits);
            }
        }
    }
    input.truncate(64 << 10);
}

/// Runs `t` for `execs` inputs from `seeds` (seed `seed`). Panics are caught and kept as crashes.
pub fn fuzz(t: &Target, seeds: Vec<Vec<u8>>, execs: u64, seed: u64) -> Report {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut corpus = if seeds.is_empty() {
        vec![Vec::new()]
    } else {
        seeds
    };
    let mut seen = HashSet::new();
    let mut r = Report::default();
    let run = t.run;
    for i in 0..execs {
        let mut input = corpus[rng.gen_range(0..corpus.len())].clone();
        // The seeds themselves first, unchanged.
        if i >= corpus.len() as u64 {
            mutate(&mut rng, &corpus, &mut input);
        }
        let start = std::time::Instant::now();
        let out = std::panic::catch_unwind(|| run(&input));
        r.slowest_us = r.slowest_us.max(start.elapsed().as_micros());
        r.execs += 1;
        match out {
            Ok(label) => {
                if seen.insert(label) && corpus.len() < 4_096 {
                    corpus.push(input);
                }
            }
            Err(_) => r.crashes.push(input),
        }
    }
    r.corpus = corpus.len();
    r.outcomes = seen.len();
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A short smoke of every target (the full budget is `make fuzz`).
    #[test]
    fn every_target_survives_a_short_run() {
        for t in &TARGETS {
            let r = fuzz(t, vec![b"{}".to_vec()], 300, 1);
            assert!(r.crashes.is_empty(), "{} crashed", t.name);
            assert_eq!(r.execs, 300);
        }
    }

    /// The harness finds a planted crash two steps away from its seed, by keeping the input of a
    /// new outcome (a guard that the catch, the mutations and the guidance work).
    #[test]
    fn a_planted_crash_is_found() {
        fn planted(d: &[u8]) -> String {
            let v: Result<serde_json::Value, _> = serde_json::from_slice(d);
            match v {
                Ok(serde_json::Value::Array(a)) if a.len() > 2 => {
                    #[allow(clippy::panic)]
                    {
                        panic!("planted")
                    }
                }
                Ok(serde_json::Value::Array(a)) => format!("array {}", a.len()),
                _ => String::new(),
            }
        }
        let t = Target {
            name: "planted",
            run: planted,
        };
        let r = fuzz(&t, vec![b"[1]".to_vec()], 20_000, 3);
        assert!(!r.crashes.is_empty(), "the planted crash was not found");
    }
}
