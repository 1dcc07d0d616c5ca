//! Planted bugs are caught: for each checker, a deliberately broken variant of the reference
//! protocol ([`PlantedBug`]) is caught on the same seeds the honest variant passes. Each failure
//! carries its seed (`SIM_SEED=<n>` replays it).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod sim_common;

use std::collections::BTreeSet;
use std::sync::Arc;

use dwcp_engines::sim::crypto::Scheme;
use dwcp_engines::sim::rbc::{
    self, echo_statement, send_statement, value_digest, Behaviour, PlantedBug, RbcConfig, RbcMsg,
    RbcNode,
};
use dwcp_engines::sim::{
    Adversary, Crash, Cut, Fault, FaultModel, LinkFaults, Partition, Scripted,
};
use sim_common::{everyone, lossy, seeds, simulate};

/// Run the honest variant and the bugged one on the same seeds: the honest one must pass all
/// checkers, the bugged one must break `invariant`, and the violation must carry the seed.
fn honest_passes_bug_caught(
    name: &str,
    seed_list: &[u64],
    bug: PlantedBug,
    invariant: &str,
    run: impl Fn(u64, RbcConfig) -> dwcp_engines::sim::SimReport<rbc::Delivery>,
    cfg: RbcConfig,
) {
    for seed in seeds(seed_list) {
        let ok = run(seed, cfg);
        assert!(
            ok.violations.is_empty(),
            "{name}: seed {seed}: honest variant failed: {:?}",
            ok.violations
        );
        let bad = run(seed, cfg.with_bug(bug));
        let v = bad.violations.iter().find(|v| v.invariant == invariant);
        let v = v.unwrap_or_else(|| {
            panic!(
                "{name}: seed {seed}: {bug:?} not caught by {invariant}: {:?}",
                bad.violations
            )
        });
        assert_eq!(v.seed, seed, "{name}: the violation must name its seed");
        eprintln!(
            "{name}: seed {seed}: {bug:?} caught by {invariant}: {}",
            v.detail
        );
    }
}

/// The colluding attack: origin `n-1` equivocates, `colluders` more nodes echo each value to one side.
pub fn collusion(n: u32, colluders: u32) -> Vec<(u32, Behaviour)> {
    let honest_end = n - 1 - colluders;
    let side_a: Vec<u32> = (0..honest_end / 2).collect();
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
fn agreement_catches_a_quorum_of_q_minus_one() {
    for (n, f) in [(4u32, 1u32), (7, 2)] {
        let run = |seed, cfg: RbcConfig| {
            let built = rbc::build(seed, cfg, Scheme::Ed25519, &collusion(cfg.n, cfg.f - 1));
            simulate(
                seed,
                built,
                FaultModel::reliable(),
                &everyone(cfg.n),
                false,
                false,
            )
            .0
        };
        honest_passes_bug_caught(
            "q-1",
            &[41, 42, 43],
            PlantedBug::QuorumMinusOne,
            "agreement",
            run,
            RbcConfig::new(n, f),
        );
    }
}

#[test]
fn integrity_catches_a_skipped_send_signature_check() {
    // Node 3 forges origin 0's Send (signed with its own key); origin 0 never broadcasts.
    let run = |seed, cfg: RbcConfig| {
        let built = rbc::build(
            seed,
            cfg,
            Scheme::Ed25519,
            &[(3, Behaviour::ForgeSender { victim: 0 })],
        );
        let inputs: Vec<_> = everyone(4)
            .into_iter()
            .filter(|(_, i, _)| *i != 0)
            .collect();
        simulate(seed, built, FaultModel::reliable(), &inputs, false, false).0
    };
    honest_passes_bug_caught(
        "forged send",
        &[1, 2],
        PlantedBug::SkipSendSignature,
        "integrity/submitted",
        run,
        RbcConfig::new(4, 1),
    );
}

#[test]
fn no_duplicates_catches_a_delivery_forgotten_across_a_restart() {
    // Node 3 replays everything it saw; node 0 crashes after delivering and comes back.
    let run = |seed, cfg: RbcConfig| {
        let mut built = rbc::build(seed, cfg, Scheme::Ed25519, &[]);
        let replay = vec![Fault::Replay {
            every_ms: 100,
            rounds: 20,
            cap: 1024,
        }];
        built.nodes[3] = Box::new(Adversary::new(built.honest(3).unwrap(), replay)) as RbcNode;
        built.byzantine = BTreeSet::from([3]);
        let faults = FaultModel {
            crashes: vec![Crash::recover(0, 200, 400)],
            ..FaultModel::reliable()
        };
        simulate(seed, built, faults, &everyone(4), false, false).0
    };
    honest_passes_bug_caught(
        "replayed final",
        &[5, 6],
        PlantedBug::ForgetDeliveryOnRecover,
        "integrity/no-duplicates",
        run,
        RbcConfig::new(4, 1),
    );
}

#[test]
fn certificate_validity_catches_an_unchecked_final() {
    // Garbage: a Final whose certificate carries invalid signatures.
    let run = |seed, cfg: RbcConfig| {
        // Honest-to-honest links are slow: the garbage Final arrives before any echo quorum.
        let built = rbc::build(seed, cfg, Scheme::Ed25519, &[(3, Behaviour::Garbage)]);
        let slow = LinkFaults::reliable(30);
        let overrides = (0..3)
            .flat_map(|a| (0..3).filter(move |b| *b != a).map(move |b| (a, b, slow)))
            .collect();
        let faults = FaultModel {
            overrides,
            gst_ms: 10_000,
            ..FaultModel::reliable()
        }; // delays hold before GST
        simulate(seed, built, faults, &everyone(3), false, false).0
    };
    honest_passes_bug_caught(
        "garbage final",
        &[7, 8],
        PlantedBug::SkipFinalCheck,
        "certificate-validity",
        run,
        RbcConfig::new(4, 1),
    );
}

#[test]
fn certificate_validity_ties_the_certificate_to_the_delivered_value() {
    // Node 3 relays real Finals with the value swapped: valid signatures, but over another
    // statement. Node 0 hears node 3 first (its other links are slow), so a node that skips the
    // check delivers "swapped" under the certificate of the real value.
    let run = |seed, cfg: RbcConfig| {
        let mut built = rbc::build(seed, cfg, Scheme::Ed25519, &[]);
        let swap = Fault::Mutate(Box::new(
            |_, mut s: dwcp_engines::sim::protocol::Send<RbcMsg>, _| {
                if let RbcMsg::Final {
                    origin, seq, cert, ..
                } = &*s.msg
                {
                    let value: rbc::Value = Arc::from(b"swapped".as_slice());
                    s.msg = Arc::new(RbcMsg::Final {
                        origin: *origin,
                        seq: *seq,
                        value,
                        cert: Arc::clone(cert),
                    });
                }
                vec![s]
            },
        ));
        built.nodes[3] = Box::new(Adversary::new(built.honest(3).unwrap(), vec![swap])) as RbcNode;
        built.byzantine = BTreeSet::from([3]);
        let slow = LinkFaults::reliable(30);
        let faults = FaultModel {
            overrides: vec![(1, 0, slow), (2, 0, slow)],
            gst_ms: 10_000,
            ..FaultModel::reliable()
        };
        let (r, _) = simulate(seed, built, faults, &[(0, 1, "real".into())], false, false);
        r
    };
    honest_passes_bug_caught(
        "swapped value",
        &[9],
        PlantedBug::SkipFinalCheck,
        "certificate-validity",
        run,
        RbcConfig::new(4, 1),
    );
    let bad = run(9, RbcConfig::new(4, 1).with_bug(PlantedBug::SkipFinalCheck));
    let v = bad
        .violations
        .iter()
        .find(|v| v.invariant == "certificate-validity")
        .unwrap();
    assert!(v.detail.contains("another statement"), "{v:?}");
}

#[test]
fn liveness_catches_a_node_that_never_retransmits() {
    // Node 0 is cut off until GST: only retransmission gets its broadcast out and the others' in.
    let run = |seed, cfg: RbcConfig| {
        let mut faults = lossy(1_000);
        faults.partitions.push(Partition {
            from_ms: 0,
            until_ms: 1_000,
            groups: vec![vec![0]],
        });
        let built = rbc::build(seed, cfg, Scheme::Ed25519, &[]);
        simulate(seed, built, faults, &everyone(4), true, false).0
    };
    honest_passes_bug_caught(
        "no retransmit",
        &[51, 52, 53],
        PlantedBug::NoRetransmit,
        "liveness",
        run,
        RbcConfig::new(4, 1),
    );
}

#[test]
fn no_false_accusation_catches_blaming_the_network_sender() {
    // Node 3 spoofs node 0 as the network sender of a forged Send for a seq 0 has not used.
    let run = |seed, cfg: RbcConfig| {
        let built = rbc::build(
            seed,
            cfg,
            Scheme::Ed25519,
            &[(3, Behaviour::ForgeSender { victim: 0 })],
        );
        let inputs: Vec<_> = everyone(4)
            .into_iter()
            .filter(|(_, i, _)| *i != 0)
            .collect();
        simulate(seed, built, FaultModel::reliable(), &inputs, false, false).0
    };
    honest_passes_bug_caught(
        "spoofed sender",
        &[3, 4],
        PlantedBug::AccuseNetworkSender,
        "no-false-accusation",
        run,
        RbcConfig::new(4, 1),
    );
}

/// Origin 3 sends `a` to {0, 2} and, after node 2 restarted, `b` to {1, 2}; one-way cuts and
/// partitions keep node 2 from delivering `a` before its crash and node 1 from hearing `a`.
fn forgotten_vote_run(seed: u64, cfg: RbcConfig) -> dwcp_engines::sim::SimReport<rbc::Delivery> {
    let mut built = rbc::build(seed, cfg, Scheme::Ed25519, &[]);
    let s3 = built.ring.signer(3).unwrap();
    let send = |v: &[u8]| RbcMsg::Send {
        origin: 3,
        seq: 0,
        value: Arc::from(v),
        sig: s3.sign(&send_statement(3, 0, v)),
    };
    let echo = |v: &[u8]| {
        let digest = value_digest(v);
        RbcMsg::Echo {
            origin: 3,
            seq: 0,
            digest,
            signer: 3,
            sig: s3.sign(&echo_statement(3, 0, &digest)),
        }
    };
    let script = vec![
        (0, 0, send(b"a")),
        (0, 2, send(b"a")),
        (0, 0, echo(b"a")),
        (300, 1, send(b"b")),
        (300, 2, send(b"b")),
        (300, 1, echo(b"b")),
    ];
    built.nodes[3] = Box::new(Scripted::new(script)) as RbcNode;
    built.byzantine = BTreeSet::from([3]);
    let faults = FaultModel {
        partitions: vec![
            Partition {
                from_ms: 0,
                until_ms: 150,
                groups: vec![vec![1]],
            },
            Partition {
                from_ms: 150,
                until_ms: 1_000,
                groups: vec![vec![0]],
            },
        ],
        cuts: vec![Cut {
            from_ms: 0,
            until_ms: 1_000,
            from: vec![0],
            to: vec![2],
        }],
        crashes: vec![Crash::recover(2, 100, 200)],
        ..FaultModel::reliable()
    };
    simulate(seed, built, faults, &[], false, false).0
}

#[test]
fn agreement_catches_a_vote_forgotten_across_a_restart() {
    honest_passes_bug_caught(
        "forgotten vote",
        &[1, 2],
        PlantedBug::ForgetVoteOnRecover,
        "agreement",
        forgotten_vote_run,
        RbcConfig::new(4, 1),
    );
}
