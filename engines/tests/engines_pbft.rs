//! PBFT in the simulator: agreement, integrity, certificate validity after every delivery and
//! liveness after GST with f faults of each kind; the f + 1 family shows the quorum is tight; a
//! planted bug is caught on the same seeds the honest replicas pass. `SIM_SEED=<n>` replays one
//! seed.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod sim_common;
use sim_common::{consensus_lossy as lossy, seeds};
use std::collections::BTreeSet;

use dwcp_engines::pbft::{
    self, Built, Decided, PbftConfig, PbftNode, PlantedBug, ReplyCollector, Submit,
};
use dwcp_engines::sim::crypto::{Keyring, Scheme};
use dwcp_engines::sim::{
    Adversary, Crash, Fault, FaultModel, Partition, SimReport, Simulator, Twins,
};
use rand::SeedableRng;

/// `count` requests from the listed clients in turn, one every `every_ms`.
fn requests(clients: &[u32], count: u64, every_ms: u64) -> Vec<(u64, u32, Submit)> {
    (0..count)
        .map(|k| {
            let c = clients[(k % clients.len() as u64) as usize];
            (
                k * every_ms,
                c,
                Submit {
                    id: k,
                    payload: format!("tx {k} of {c}").into_bytes(),
                },
            )
        })
        .collect()
}

fn run(
    seed: u64,
    mut built: Built,
    faults: FaultModel,
    inputs: &[(u64, u32, Submit)],
    live: bool,
    end_ms: u64,
) -> SimReport<Decided> {
    let restart = built.restart();
    let nodes = std::mem::take(&mut built.nodes);
    let mut sim = Simulator::new(seed, faults, nodes, false)
        .with_restart(restart)
        .max_steps(3_000_000);
    for inv in pbft::safety_invariants(built.keys.clone(), built.cfg) {
        sim = sim.with_boxed_invariant(inv);
    }
    if live {
        sim = sim.with_boxed_invariant(pbft::liveness_invariant(4_000));
    }
    for (t, node, s) in inputs {
        sim.input(*t, *node, s.clone());
    }
    sim.run_until(end_ms)
}

/// Replace `id` with twins: twin a talks to `a_side`, twin b to the rest, and twin b gets a
/// different payload for every input (an equivocating primary, a double-voting backup).
fn twins(built: &mut Built, id: u32, a_side: &[u32]) {
    let a = built.honest(id).unwrap();
    let b = built.honest(id).unwrap();
    let side: BTreeSet<u32> = a_side.iter().copied().collect();
    let t = Twins::new(a, b, side, |s: &Submit| Submit {
        id: s.id,
        payload: [s.payload.as_slice(), b"-twin"].concat(),
    });
    built.nodes[id as usize] = Box::new(t) as PbftNode;
    built.byzantine.insert(id);
}

fn wrap(built: &mut Built, id: u32, faults: Vec<Fault<pbft::PbftMsg>>) {
    let inner = built.honest(id).unwrap();
    built.nodes[id as usize] = Box::new(Adversary::new(inner, faults)) as PbftNode;
    built.byzantine.insert(id);
}

fn assert_clean(name: &str, r: &SimReport<Decided>) {
    assert!(
        r.violations.is_empty(),
        "{name}: seed {}: {:?}",
        r.seed,
        r.violations
    );
    assert!(!r.truncated, "{name}: seed {} truncated", r.seed);
}

#[test]
fn happy_path_batches_and_everyone_executes_everything() {
    for seed in seeds(&[1, 2]) {
        let mut cfg = PbftConfig::new(4, 1);
        cfg.checkpoint_interval = 2;
        let built = build_n(seed, cfg);
        let inputs = requests(&[0, 1, 2, 3], 40, 1);
        let r = run(seed, built, FaultModel::reliable(), &inputs, true, 3_000);
        assert_clean("happy", &r);
        for (node, log) in &r.logs {
            assert_eq!(log.len(), 40, "node {node}");
        }
        let batches: BTreeSet<u64> = r.logs[&0].iter().map(|d| d.seq).collect();
        assert!(
            batches.len() < 40,
            "batching: {} batches for 40 requests",
            batches.len()
        );
        // Several batches with 2-seq checkpoints: checkpoints went out.
        assert!(batches.len() >= 2, "{} batches", batches.len());
        assert!(r.messages.get("checkpoint").is_some_and(|m| m.count > 0));
    }
}

fn build_n(seed: u64, cfg: PbftConfig) -> Built {
    pbft::build(seed, cfg, Scheme::Ed25519)
}

/// n ∈ {4, 7}, f Byzantine of one behaviour each, lossy links until GST: safety throughout,
/// liveness after GST.
#[test]
fn f_faults_of_each_kind_keep_safety_and_liveness() {
    for (n, f) in [(4u32, 1u32), (7, 2)] {
        for seed in seeds(&[11, 12, 13]) {
            for kind in [
                "silent",
                "twins-primary",
                "crash-primary",
                "spoof",
                "partition",
            ] {
                let cfg = PbftConfig::new(n, f);
                let mut built = build_n(seed, cfg);
                let mut faults = lossy(800);
                let byz: Vec<u32> = (0..f).collect(); // primary of view 0 included
                match kind {
                    "silent" => byz
                        .iter()
                        .for_each(|b| wrap(&mut built, *b, vec![Fault::Silent])),
                    "spoof" => byz
                        .iter()
                        .for_each(|b| wrap(&mut built, *b, vec![Fault::Spoof(n - 1)])),
                    "twins-primary" => byz.iter().for_each(|b| twins(&mut built, *b, &[n - 1])),
                    "crash-primary" => faults.crashes = vec![Crash::stop(0, 100)],
                    _ => {
                        faults.partitions = vec![Partition {
                            from_ms: 0,
                            until_ms: 800,
                            groups: vec![(0..n / 2).collect()],
                        }];
                    }
                }
                let honest: Vec<u32> = (0..n)
                    .filter(|i| {
                        !built.byzantine.contains(i) && (kind != "crash-primary" || *i != 0)
                    })
                    .collect();
                let inputs = requests(&honest, 24, 20);
                let r = run(seed, built, faults, &inputs, true, 6_000);
                assert_clean(&format!("n={n} {kind}"), &r);
            }
        }
    }
}

/// The equivocation attack, scripted with the Byzantine replicas' own keys: primary 0 sends
/// batch A to replica 1 and batch B to replica 2 for (view 0, seq 1), and every replica in
/// `voters` (Byzantine too) prepares and commits A towards 1 and B towards 2.
fn equivocation_script(built: &Built, voters: &[u32]) -> Vec<(u64, u32, pbft::PbftMsg)> {
    use dwcp_engines::pbft::{
        batch_digest, commit_statement, prepare_statement, request_statement, PbftMsg, Request,
    };
    use std::sync::Arc;
    let s0 = built.ring.signer(0).unwrap();
    let req = |p: &[u8]| Request {
        client: 0,
        id: 0,
        payload: Arc::from(p),
        sig: s0.sign(&request_statement(0, 0, p)),
    };
    let mut script = Vec::new();
    for (to, payload) in [(1u32, b"A".as_slice()), (2, b"B")] {
        let batch = Arc::new(vec![req(payload)]);
        let d = batch_digest(&batch);
        let sig = s0.sign(&prepare_statement(0, 1, &d));
        script.push((
            5,
            to,
            PbftMsg::PrePrepare {
                view: 0,
                seq: 1,
                batch,
                sig,
            },
        ));
        for v in voters {
            let s = built.ring.signer(*v).unwrap();
            if *v != 0 {
                script.push((
                    6,
                    to,
                    PbftMsg::Prepare {
                        view: 0,
                        seq: 1,
                        digest: d,
                        signer: *v,
                        sig: s.sign(&prepare_statement(0, 1, &d)),
                    },
                ));
            }
            script.push((
                7,
                to,
                PbftMsg::Commit {
                    view: 0,
                    seq: 1,
                    digest: d,
                    signer: *v,
                    sig: s.sign(&commit_statement(0, 1, &d)),
                },
            ));
        }
    }
    script
}

/// With f + 1 = 2 Byzantine replicas (the primary and one backup) each victim sees a quorum of
/// 2f + 1 for its own batch, and honest logs diverge: the threshold is tight. With f = 1 (the
/// same script, the backup honest) nothing conflicting commits.
#[test]
fn f_plus_one_byzantine_break_agreement_f_do_not() {
    use dwcp_engines::sim::Scripted;
    for seed in seeds(&[21, 22, 23]) {
        for (byz, expect_break) in [(vec![0u32, 3], true), (vec![0], false)] {
            let cfg = PbftConfig::new(4, 1);
            let mut built = build_n(seed, cfg);
            let script = equivocation_script(&built, &byz);
            for b in &byz {
                let mine: Vec<_> = script
                    .iter()
                    .filter(|(_, _, m)| sender(m) == *b)
                    .cloned()
                    .collect();
                built.nodes[*b as usize] =
                    Box::new(Scripted::<_, Submit, Decided>::new(mine)) as PbftNode;
                built.byzantine.insert(*b);
            }
            let r = run(seed, built, FaultModel::reliable(), &[], false, 2_000);
            let v = r.violations.iter().find(|v| v.invariant == "agreement");
            if expect_break {
                assert!(
                    v.is_some(),
                    "seed {seed}: no agreement violation with f+1: {:?}",
                    r.violations
                );
                assert_eq!(v.unwrap().seed, seed);
            } else {
                assert_clean("f scripted equivocation", &r);
            }
        }
    }
}

fn sender(m: &pbft::PbftMsg) -> u32 {
    match m {
        pbft::PbftMsg::Prepare { signer, .. } | pbft::PbftMsg::Commit { signer, .. } => *signer,
        _ => 0,
    }
}

/// The same attack with f twins is harmless to honest replicas; with the planted 2f quorum it
/// is not.
#[test]
fn agreement_catches_a_quorum_of_2f() {
    for seed in seeds(&[31, 32, 33]) {
        for bug in [None, Some(PlantedBug::QuorumTwoF)] {
            let mut cfg = PbftConfig::new(4, 1);
            cfg.bug = bug;
            let mut built = build_n(seed, cfg);
            twins(&mut built, 0, &[1]);
            let inputs = vec![(
                0,
                0,
                Submit {
                    id: 0,
                    payload: b"x".to_vec(),
                },
            )];
            let r = run(seed, built, FaultModel::reliable(), &inputs, false, 2_000);
            let broken = r.violations.iter().any(|v| v.invariant == "agreement");
            match bug {
                None => assert_clean("honest vs twins", &r),
                Some(_) => assert!(
                    broken,
                    "seed {seed}: 2f quorum not caught: {:?}",
                    r.violations
                ),
            }
        }
    }
}

/// A crashed primary is replaced by a view change and requests keep committing.
#[test]
fn crashed_leader_is_replaced_and_progress_resumes() {
    for seed in seeds(&[41, 42]) {
        let cfg = PbftConfig::new(4, 1);
        let built = build_n(seed, cfg);
        let mut faults = FaultModel::reliable();
        faults.crashes = vec![Crash::stop(0, 200)];
        let inputs = requests(&[1, 2, 3], 30, 20);
        let r = run(seed, built, faults, &inputs, true, 5_000);
        assert_clean("crashed leader", &r);
        assert!(
            r.messages.get("new-view").is_some_and(|m| m.count > 0),
            "no new view"
        );
        let after: usize = r.logs[&1].iter().filter(|d| d.view > 0).count();
        assert!(after > 0, "nothing committed after the view change");
    }
}

/// A replica cut off while the others pass several stable checkpoints catches up by state
/// transfer (certified ledger entries) once the partition heals.
#[test]
fn lagging_replica_catches_up_from_a_stable_checkpoint() {
    for seed in seeds(&[51, 52]) {
        let cfg = PbftConfig::new(4, 1);
        let built = build_n(seed, cfg);
        let mut faults = FaultModel::reliable();
        faults.partitions = vec![Partition {
            from_ms: 0,
            until_ms: 1_500,
            groups: vec![vec![3]],
        }];
        faults.gst_ms = 1_500;
        let inputs = requests(&[0, 1, 2], 60, 10);
        let r = run(seed, built, faults, &inputs, true, 6_000);
        assert_clean("laggard", &r);
        assert_eq!(r.logs[&3].len(), 60);
        assert!(
            r.messages.get("entries").is_some_and(|m| m.count > 0),
            "no state transfer"
        );
    }
}

/// A restarted replica rebuilt from its durable store neither re-executes nor double-votes.
#[test]
fn crash_recover_replicas_stay_safe_and_live() {
    for seed in seeds(&[61, 62]) {
        let cfg = PbftConfig::new(4, 1);
        let built = build_n(seed, cfg);
        let mut faults = lossy(1_000);
        faults.crashes = vec![Crash::recover(0, 150, 700), Crash::recover(2, 400, 900)];
        let inputs = requests(&[1, 3], 30, 20);
        let r = run(seed, built, faults, &inputs, true, 7_000);
        assert_clean("crash-recover", &r);
    }
}

#[test]
fn client_accepts_on_f_plus_one_matching_signed_replies_only() {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(7);
    let ring = Keyring::generate(4, Scheme::Ed25519, &mut rng);
    let keys = ring.public();
    let mut c = ReplyCollector::new(0, 2, keys);
    let sign = |r: u32, seq: u64| ring.signer(r).unwrap().sign(&pbft_reply(0, 5, seq));
    assert_eq!(c.add(5, 9, 1, &sign(1, 9)), None);
    assert_eq!(
        c.add(5, 9, 1, &sign(1, 9)),
        None,
        "one replica twice is one reply"
    );
    assert_eq!(
        c.add(5, 8, 2, &sign(2, 8)),
        None,
        "a non-matching reply does not count"
    );
    assert_eq!(
        c.add(5, 9, 3, &sign(2, 9)),
        None,
        "a forged sender does not count"
    );
    assert_eq!(c.add(5, 9, 3, &sign(3, 9)), Some(9));
    assert_eq!(c.accepted(5), Some(9));
}

fn pbft_reply(client: u32, id: u64, seq: u64) -> Vec<u8> {
    dwcp_engines::pbft::reply_statement(client, id, seq)
}
