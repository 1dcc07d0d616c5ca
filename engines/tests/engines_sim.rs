//! Simulator and reference-protocol tests (ENGINES.md, shared foundation).
//!
//! Every failure message carries the seed; `SIM_SEED=<n> cargo test -p dwcp-engines --test
//! engines_sim` replays one seed in every randomised test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use dwcp_core::signals::{EngineEvent, IntegrityKind};
use dwcp_engines::sim::rbc::{self, Behaviour, Broadcast, Delivery, RbcConfig, RbcMsg};
use dwcp_engines::sim::{
    AlarmKind, Crash, FaultModel, LinkFaults, Partition, SimReport, Simulator,
};

type Sim = Simulator<RbcMsg, Broadcast, Delivery>;

/// Seeds to run: `SIM_SEED` alone when set, otherwise `defaults`.
fn seeds(defaults: &[u64]) -> Vec<u64> {
    match std::env::var("SIM_SEED").ok().and_then(|s| s.parse().ok()) {
        Some(s) => vec![s],
        None => defaults.to_vec(),
    }
}

fn lossy(gst_ms: u64) -> FaultModel {
    FaultModel {
        link: LinkFaults {
            min_delay_ms: 1,
            max_delay_ms: 40,
            drop_ppm: 150_000,
            duplicate_ppm: 100_000,
            reorder_ppm: 100_000,
            reorder_extra_ms: 60,
        },
        overrides: Vec::new(),
        partitions: Vec::new(),
        crashes: Vec::new(),
        gst_ms,
        post_gst_max_delay_ms: 20,
    }
}

/// A run of `cfg` with the listed Byzantine nodes; every node broadcasts once at t = 0..n.
fn run(
    seed: u64,
    cfg: RbcConfig,
    faults: FaultModel,
    byz: &[(u32, Behaviour)],
    live: bool,
    keep: bool,
) -> (SimReport<Delivery>, Sim) {
    let (nodes, keys) = rbc::build_nodes(seed, cfg, byz);
    let mut sim = Simulator::new(seed, faults, nodes, keep);
    for inv in rbc::safety_invariants(keys, cfg) {
        sim = sim.with_invariant(inv);
    }
    if live {
        sim = sim.with_invariant(rbc::liveness_invariant());
    }
    for node in 0..cfg.n {
        sim.input(
            u64::from(node),
            node,
            Broadcast(format!("value of {node}").into_bytes()),
        );
    }
    let report = sim.run_until(5_000);
    (report, sim)
}

#[test]
fn same_seed_same_trace_hash_and_different_seed_differs() {
    for seed in seeds(&[1, 2]) {
        let cfg = RbcConfig::new(4, 1);
        let (a, _) = run(seed, cfg, lossy(1_000), &[], true, false);
        let (b, _) = run(seed, cfg, lossy(1_000), &[], true, false);
        assert_eq!(a.trace_hash, b.trace_hash, "seed {seed}: replay diverged");
        assert_eq!(a.steps, b.steps, "seed {seed}");
        let (c, _) = run(seed + 1000, cfg, lossy(1_000), &[], true, false);
        assert_ne!(
            a.trace_hash, c.trace_hash,
            "seed {seed}: different seeds gave one trace"
        );
    }
}

#[test]
fn every_network_fault_kind_is_observable_in_the_trace() {
    let seed = seeds(&[11])[0];
    let mut faults = lossy(2_000);
    faults.partitions.push(Partition {
        from_ms: 0,
        until_ms: 300,
        groups: vec![vec![0, 1]],
    });
    faults.crashes.push(Crash {
        node: 2,
        at_ms: 50,
        recover_at_ms: Some(900),
    });
    faults.crashes.push(Crash {
        node: 3,
        at_ms: 4_000,
        recover_at_ms: None,
    });
    let (report, sim) = run(seed, RbcConfig::new(4, 1), faults, &[], false, true);
    let t = sim.trace();
    for kind in [
        "dropped_link",
        "duplicated",
        "reordered",
        "dropped_partition",
        "crashed",
        "recovered",
        "dropped_crashed",
        "gst",
        "committed",
    ] {
        assert!(
            t.count(kind) > 0,
            "seed {seed}: no `{kind}` in trace {:?}",
            t.counts()
        );
    }
    let delayed = t.events().iter().any(|e| matches!(e, dwcp_engines::sim::TraceEvent::Delivered { at, sent_at, from, to, .. } if at > sent_at && from != to));
    assert!(delayed, "seed {seed}: no delayed delivery");
    assert!(
        report.violations.is_empty(),
        "seed {seed}: {:?}",
        report.violations
    );
}

fn alarm_kinds(report: &SimReport<Delivery>) -> Vec<AlarmKind> {
    report.alarms.iter().map(|(_, _, a)| a.kind).collect()
}

#[test]
fn every_byzantine_behaviour_is_observable() {
    let seed = seeds(&[21])[0];
    let cfg = RbcConfig::new(7, 2);
    let equivocate = Behaviour::Equivocate {
        a: b"a".to_vec(),
        b: b"b".to_vec(),
        to_a: vec![0, 1, 2],
    };
    type Case = (&'static str, Vec<(u32, Behaviour)>, AlarmKind);
    let cases: Vec<Case> = vec![
        (
            "equivocate + double vote",
            vec![(6, equivocate), (5, Behaviour::DoubleVote { plan: vec![] })],
            AlarmKind::Equivocation,
        ),
        (
            "garbage",
            vec![(6, Behaviour::Garbage)],
            AlarmKind::BadSignature,
        ),
        (
            "forge sender",
            vec![(6, Behaviour::ForgeSender { victim: 0 })],
            AlarmKind::BadSignature,
        ),
        (
            "spam",
            vec![(6, Behaviour::Spam { per_message: 20 })],
            AlarmKind::Garbage,
        ),
    ];
    for (desc, byz, expected) in cases {
        let (report, _) = run(seed, cfg, FaultModel::reliable(), &byz, true, false);
        assert!(
            alarm_kinds(&report).contains(&expected),
            "seed {seed} {desc}: alarms {:?}",
            report.alarms
        );
        assert!(
            report.violations.is_empty(),
            "seed {seed} {desc}: {:?}",
            report.violations
        );
        let (at, _, alarm) = &report.alarms[0];
        let event = alarm.to_event("rbc", *at);
        assert!(
            matches!(event, EngineEvent::ByzantineAttackDetected { .. }),
            "{desc}"
        );
    }
    // Silent and replaying nodes raise no alarm, but leave traces: nothing from the silent node,
    // many re-deliveries from the replayer, and still exactly one delivery per instance.
    let (report, sim) = run(
        seed,
        cfg,
        FaultModel::reliable(),
        &[(6, Behaviour::Silent)],
        true,
        true,
    );
    let from_silent = sim
        .trace()
        .events()
        .iter()
        .filter(|e| matches!(e, dwcp_engines::sim::TraceEvent::Delivered { from: 6, to, .. } if *to != 6))
        .count();
    assert_eq!(from_silent, 0, "seed {seed}");
    assert!(
        report.violations.is_empty(),
        "seed {seed}: {:?}",
        report.violations
    );
    let (quiet, _) = run(seed, cfg, FaultModel::reliable(), &[], true, false);
    let (replay, _) = run(
        seed,
        cfg,
        FaultModel::reliable(),
        &[(6, Behaviour::Replay)],
        true,
        false,
    );
    assert!(
        replay.steps > quiet.steps,
        "seed {seed}: replay left no trace"
    );
    assert!(
        replay.violations.is_empty(),
        "seed {seed}: {:?}",
        replay.violations
    );
}

fn all_behaviours(n: u32) -> Vec<Behaviour> {
    vec![
        Behaviour::Silent,
        Behaviour::Equivocate {
            a: b"a".to_vec(),
            b: b"b".to_vec(),
            to_a: (0..n / 2).collect(),
        },
        Behaviour::DoubleVote { plan: vec![] },
        Behaviour::Garbage,
        Behaviour::ForgeSender { victim: 0 },
        Behaviour::Replay,
        Behaviour::Spam { per_message: 5 },
    ]
}

#[test]
fn invariants_hold_with_f_byzantine_under_a_lossy_network_then_gst() {
    for seed in seeds(&[31, 32]) {
        for (n, f) in [(4u32, 1u32), (7, 2)] {
            let cfg = RbcConfig::new(n, f);
            for behaviour in all_behaviours(n) {
                let byz: Vec<(u32, Behaviour)> =
                    (n - f..n).map(|id| (id, behaviour.clone())).collect();
                let mut faults = lossy(1_500);
                faults.crashes.push(Crash {
                    node: 0,
                    at_ms: 10,
                    recover_at_ms: Some(700),
                });
                let (report, _) = run(seed, cfg, faults, &byz, true, false);
                assert!(
                    report.violations.is_empty(),
                    "seed {seed} n={n} {behaviour:?}: {:?}",
                    report.violations
                );
            }
        }
    }
}

/// The colluding attack: origin `n-1` equivocates, `f` more nodes echo each value to one side.
fn collusion(n: u32, colluders: u32) -> Vec<(u32, Behaviour)> {
    let side_a: Vec<u32> = (0..(n - 1 - colluders) / 2).collect();
    let honest_end = n - 1 - colluders;
    let side_b: Vec<u32> = (side_a.len() as u32..honest_end).collect();
    let byz: Vec<u32> = (honest_end..n).collect();
    let to_a: Vec<u32> = side_a.iter().chain(byz.iter()).copied().collect();
    let plan = vec![
        (b"a".to_vec(), side_a.clone()),
        (b"b".to_vec(), side_b.clone()),
    ];
    let mut out = vec![(
        n - 1,
        Behaviour::Equivocate {
            a: b"a".to_vec(),
            b: b"b".to_vec(),
            to_a,
        },
    )];
    out.extend((honest_end..n - 1).map(|id| (id, Behaviour::DoubleVote { plan: plan.clone() })));
    out
}

#[test]
fn consistency_is_tight_f_colluders_fail_and_f_plus_one_break_agreement() {
    for seed in seeds(&[41, 42, 43]) {
        for (n, f) in [(4u32, 1u32), (7, 2)] {
            let cfg = RbcConfig::new(n, f);
            // f Byzantine in total (the origin plus f-1 colluders): agreement holds.
            let (ok, _) = run(
                seed,
                cfg,
                FaultModel::reliable(),
                &collusion(n, f - 1),
                false,
                false,
            );
            assert!(
                ok.violations.is_empty(),
                "seed {seed} n={n} with f: {:?}",
                ok.violations
            );
            // f+1 Byzantine (the origin plus f colluders): two honest nodes deliver different values.
            let (bad, _) = run(
                seed,
                cfg,
                FaultModel::reliable(),
                &collusion(n, f),
                false,
                false,
            );
            let v = bad.violations.iter().find(|v| v.invariant == "agreement");
            let v = v.unwrap_or_else(|| panic!("seed {seed} n={n}: f+1 did not break agreement"));
            assert_eq!(v.seed, seed);
            let ev = v.to_event("rbc");
            assert!(matches!(
                ev,
                Some(EngineEvent::DataIntegrityViolation {
                    violation: IntegrityKind::ConflictingCommit,
                    ..
                })
            ));
            assert!(
                alarm_kinds(&bad).contains(&AlarmKind::Equivocation),
                "conflicting certificates are evidence"
            );
        }
    }
}
