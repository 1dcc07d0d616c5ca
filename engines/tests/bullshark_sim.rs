//! Bullshark validators in the simulator: agreement and integrity after every delivery, liveness
//! after GST, with crashes, lossy links and partitions until GST, and an equivocating header
//! author (alarm naming it, no false accusation); f + 1 crashes stop progress (the quorum is
//! tight). `SIM_SEED=<n>` replays one seed.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod sim_common;
use sim_common::{consensus_lossy as lossy, seeds};
use std::sync::Arc;

use dwcp_engines::bullshark::{
    self, Built, BullsharkConfig, BullsharkMsg, BullsharkNode, Header, Ordered, Submit,
};
use dwcp_engines::sim::crypto::Scheme;
use dwcp_engines::sim::outbox::Send;
use dwcp_engines::sim::{
    Adversary, AlarmKind, Crash, Fault, FaultModel, Partition, SimReport, Simulator,
};

/// `count` transactions per listed validator, one every `every_ms`.
fn txs(nodes: &[u32], count: u64, every_ms: u64) -> Vec<(u64, u32, Submit)> {
    let mut v = Vec::new();
    for k in 0..count {
        for n in nodes {
            v.push((
                k * every_ms,
                *n,
                Submit {
                    id: k,
                    payload: format!("tx {k} of {n}").into_bytes(),
                },
            ));
        }
    }
    v
}

fn run(
    seed: u64,
    mut built: Built,
    faults: FaultModel,
    inputs: &[(u64, u32, Submit)],
    live: bool,
    end_ms: u64,
) -> SimReport<Ordered> {
    let nodes = std::mem::take(&mut built.nodes);
    let mut sim = Simulator::new(seed, faults, nodes, false).max_steps(2_000_000);
    for inv in bullshark::safety_invariants() {
        sim = sim.with_boxed_invariant(inv);
    }
    if live {
        sim = sim.with_boxed_invariant(bullshark::liveness_invariant(3_000));
    }
    for (t, node, s) in inputs {
        sim.input(*t, *node, s.clone());
    }
    sim.run_until(end_ms)
}

fn assert_clean(name: &str, r: &SimReport<Ordered>) {
    assert!(
        r.violations.is_empty(),
        "{name}: seed {}: {:?}",
        r.seed,
        r.violations
    );
    assert!(!r.truncated, "{name}: seed {} truncated", r.seed);
}

fn tx_count(log: &[Ordered]) -> usize {
    log.iter().filter(|o| o.tx_key().is_some()).count()
}

#[test]
fn happy_path_every_validator_commits_everything_in_one_order() {
    for seed in seeds(&[1, 2]) {
        let built = bullshark::build(seed, BullsharkConfig::new(4, 1), Scheme::Ed25519);
        let r = run(
            seed,
            built,
            FaultModel::reliable(),
            &txs(&[0, 1, 2, 3], 25, 4),
            true,
            3_000,
        );
        assert_clean("happy", &r);
        let reference = &r.logs[&0];
        for (node, log) in &r.logs {
            assert_eq!(tx_count(log), 100, "node {node}");
            let k = log.len().min(reference.len());
            assert_eq!(log[..k], reference[..k], "node {node}");
        }
        assert!(r.messages.get("certificate").is_some_and(|m| m.count > 0));
        assert!(r.alarms.is_empty(), "{:?}", r.alarms);
        let built = bullshark::build(seed, BullsharkConfig::new(4, 1), Scheme::Ed25519);
        let again = run(
            seed,
            built,
            FaultModel::reliable(),
            &txs(&[0, 1, 2, 3], 25, 4),
            true,
            3_000,
        );
        assert_eq!(again.trace_hash, r.trace_hash, "same seed, same trace");
    }
}

/// Lossy links and a partition until GST, one validator crashed for good (n = 4 and 7 with f
/// crashes): safety throughout, every correct validator's transactions committed after GST.
#[test]
fn crashes_and_partitions_until_gst_keep_safety_and_liveness() {
    for (n, f) in [(4u32, 1u32), (7, 2)] {
        for seed in seeds(&[11, 12, 13]) {
            let mut faults = lossy(800);
            faults.partitions = vec![Partition {
                from_ms: 0,
                until_ms: 800,
                groups: vec![(0..n / 2).collect()],
            }];
            faults.crashes = (0..f)
                .map(|i| Crash::stop(n - 1 - i, 150 + 100 * u64::from(i)))
                .collect();
            let correct: Vec<u32> = (0..n - f).collect();
            let scheme = if n == 4 {
                Scheme::Ed25519
            } else {
                Scheme::Mock
            };
            let built = bullshark::build(seed, BullsharkConfig::new(n, f), scheme);
            let r = run(seed, built, faults, &txs(&correct, 12, 40), true, 5_000);
            assert_clean(&format!("n={n}"), &r);
            let fetched = ["fetch_certs", "fetch_batches"]
                .iter()
                .filter_map(|k| r.messages.get(k))
                .map(|m| m.count)
                .sum::<u64>();
            assert!(fetched > 0, "n={n}: lost messages were never fetched");
            for c in &correct {
                assert_eq!(tx_count(&r.logs[c]), 12 * correct.len(), "n={n} node {c}");
            }
        }
    }
}

/// Validator 3 signs a second header for every round ≥ 1 (its parents reordered) and sends it
/// to validator 2 only. Validator 2 sees the certified original too and raises an alarm naming
/// 3; nobody else is accused; safety and liveness hold for the honest validators.
#[test]
fn equivocating_headers_raise_an_alarm_and_change_nothing_else() {
    for seed in seeds(&[21, 22, 23]) {
        let mut built = bullshark::build(seed, BullsharkConfig::new(4, 1), Scheme::Ed25519);
        let signer = built.ring.signer(3).unwrap();
        let inner = built.honest(3).unwrap();
        let mutate = move |_: u64, mut s: Send<BullsharkMsg>, _: &mut rand_chacha::ChaCha8Rng| {
            if let (BullsharkMsg::Header(h), 2) = (&*s.msg, s.to) {
                if h.round >= 1 {
                    let mut v: Header = (**h).clone();
                    v.parents.reverse();
                    v.sig = signer.sign(&v.digest());
                    s.msg = Arc::new(BullsharkMsg::Header(Arc::new(v)));
                }
            }
            vec![s]
        };
        built.nodes[3] =
            Box::new(Adversary::new(inner, vec![Fault::Mutate(Box::new(mutate))])) as BullsharkNode;
        let r = run(
            seed,
            built,
            lossy(300),
            &txs(&[0, 1, 2], 12, 20),
            true,
            4_000,
        );
        assert_clean("equivocation", &r);
        let named: Vec<_> = r
            .alarms
            .iter()
            .filter(|(_, _, a)| a.kind == AlarmKind::Equivocation)
            .collect();
        assert!(!named.is_empty(), "seed {seed}: no equivocation alarm");
        assert!(named.iter().all(|(_, _, a)| a.suspect == Some(3)));
        assert!(named.iter().any(|(_, node, _)| *node == 2));
        let ev = named[0].2.to_event("bullshark", named[0].0);
        assert!(matches!(
            ev,
            dwcp_core::signals::EngineEvent::ByzantineAttackDetected { .. }
        ));
    }
}

/// f + 1 = 2 of 4 validators crashed from the start: no certificate can form, nothing commits,
/// and the liveness checker reports it (so it is not vacuous).
#[test]
fn f_plus_one_crashes_stop_progress_and_liveness_says_so() {
    let seed = seeds(&[31])[0];
    let mut faults = FaultModel::reliable();
    faults.crashes = vec![Crash::stop(2, 0), Crash::stop(3, 0)];
    let built = bullshark::build(seed, BullsharkConfig::new(4, 1), Scheme::Mock);
    let r = run(seed, built, faults, &txs(&[0, 1], 5, 10), true, 4_000);
    assert!(r.logs.values().all(|l| l.is_empty()));
    assert!(
        r.violations.iter().any(|v| v.invariant == "liveness"),
        "{:?}",
        r.violations
    );
    assert!(r.violations.iter().all(|v| v.invariant == "liveness"));
}

/// One vote per (author, round): validator 1 gets two signed round-0 headers of validator 0;
/// it votes for the first only (and again for the same one when it is re-sent), and raises one
/// alarm naming 0.
#[test]
fn one_vote_per_author_and_round() {
    use dwcp_engines::bullshark::{Batch, Tx, Validator};
    use dwcp_engines::sim::crypto::Keyring;
    use dwcp_engines::sim::{Outbox, Protocol};
    use rand::SeedableRng;
    let cfg = BullsharkConfig::new(4, 1);
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(5);
    let ring = Keyring::generate(4, Scheme::Ed25519, &mut rng);
    let mut v1 = Validator::new(cfg, ring.signer(1).unwrap(), ring.public());
    let s0 = ring.signer(0).unwrap();
    let batch = Arc::new(Batch {
        author: 0,
        txs: vec![Tx {
            id: 1,
            payload: Arc::from(&b"x"[..]),
        }],
    });
    let header = |batches: Vec<[u8; 32]>| {
        let mut h = Header {
            author: 0,
            round: 0,
            batches,
            parents: Vec::new(),
            weak: Vec::new(),
            sig: [0; 64],
        };
        h.sig = s0.sign(&h.digest());
        Arc::new(h)
    };
    let (a, b) = (header(Vec::new()), header(vec![batch.digest()]));
    let mut out = Outbox::new(1, 4, rand_chacha::ChaCha8Rng::seed_from_u64(1));
    v1.on_message(0, 0, &BullsharkMsg::Batch(batch), &mut out);
    for h in [&a, &b, &a, &b] {
        v1.on_message(1, 0, &BullsharkMsg::Header(Arc::clone(h)), &mut out);
    }
    let votes: Vec<_> = out
        .sends
        .iter()
        .filter_map(|s| match &*s.msg {
            BullsharkMsg::Vote(v) => Some((s.to, v.header)),
            _ => None,
        })
        .collect();
    assert_eq!(
        votes,
        vec![(0, a.digest()), (0, a.digest())],
        "one vote, re-sent"
    );
    let alarms: Vec<_> = out.alarms.iter().map(|x| (x.kind, x.suspect)).collect();
    assert_eq!(alarms, vec![(AlarmKind::Equivocation, Some(0))]);
}
