//! T-PBFT catch-up without new traffic (the root cause of the 7-node TCP stall): a node that
//! misses the last forwarded batches of a run, or a member left behind when the rest of its
//! committee ends the epoch, must still apply every transaction once its links heal, although
//! nothing new is ever sent after that. Reproduced deterministically with a one-way cut into
//! the node that lasts past the last commit and heals at GST; liveness (every correct node
//! applies every transaction within 5 s of GST) and the safety invariants are checked.
//! `SIM_SEED=<n>` replays one seed.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod sim_common;
use dwcp_engines::sim::crypto::Scheme;
use dwcp_engines::sim::{Cut, FaultModel, SimReport, Simulator};
use dwcp_engines::tpbft::{self, TpbftConfig, TpbftOut, TxSubmit};
use sim_common::seeds;

const TXS: u64 = 24;
const GST: u64 = 3_000;

fn cfg() -> TpbftConfig {
    let mut c = TpbftConfig::new(7, 4);
    c.epoch_len = 4;
    c.inner.batch_max = 4;
    c
}

/// Transactions from the nodes other than `victim`, then silence; everything to `victim` is
/// cut from 0 until GST (long after the last commit).
fn run(seed: u64, victim: u32) -> SimReport<TpbftOut> {
    let mut built = tpbft::build(seed, cfg(), Scheme::Ed25519);
    assert_eq!(built.honest(0).unwrap().committee(), &[0, 1, 2, 3]);
    let nodes = std::mem::take(&mut built.nodes);
    let others: Vec<u32> = (0..7).filter(|i| *i != victim).collect();
    let faults = FaultModel {
        cuts: vec![Cut {
            from_ms: 0,
            until_ms: GST,
            from: others.clone(),
            to: vec![victim],
        }],
        gst_ms: GST,
        ..FaultModel::reliable()
    };
    let mut sim = Simulator::new(seed, faults, nodes, false)
        .max_steps(2_000_000)
        .keep_logs(true);
    for inv in tpbft::safety_invariants() {
        sim = sim.with_boxed_invariant(inv);
    }
    sim = sim.with_boxed_invariant(tpbft::liveness_invariant(5_000));
    for k in 0..TXS {
        let origin = others[(k % others.len() as u64) as usize];
        sim.input(
            5 + k * 10,
            origin,
            TxSubmit {
                id: k,
                payload: format!("tx {k}").into_bytes(),
            },
        );
    }
    sim.run_until(GST + 6_000)
}

fn check(name: &str, victim: u32, r: &SimReport<TpbftOut>) {
    assert!(!r.truncated, "{name}: seed {} truncated", r.seed);
    assert!(
        r.violations.is_empty(),
        "{name}: seed {}: {:?}",
        r.seed,
        r.violations
    );
    assert_eq!(
        r.committed.get(&victim).copied().unwrap_or(0),
        r.committed.get(&((victim + 1) % 7)).copied().unwrap_or(0),
        "{name}: seed {}: node {victim} applied less than its peers",
        r.seed
    );
}

#[test]
fn a_non_member_that_missed_the_last_forwarded_batches_catches_up_after_the_cut_heals() {
    for seed in seeds(&[1, 2, 3]) {
        let r = run(seed, 6); // the first committee is 0..4: node 6 only gets forwards
        check("non-member", 6, &r);
    }
}

#[test]
fn a_member_left_behind_when_its_committee_ended_the_epoch_catches_up() {
    for seed in seeds(&[4, 5, 6]) {
        // Node 3 sits in the first committee; the other three are a quorum, finish the epoch
        // (node 3 loses its seat: it signed nothing) and move on without it.
        let r = run(seed, 3);
        check("member", 3, &r);
        // The scenario is the epoch boundary: the others did end epoch 0 while node 3 was cut.
        let switched = r.logs[&0]
            .iter()
            .any(|o| matches!(o, TpbftOut::Epoch { epoch: 1, .. }));
        assert!(switched, "seed {seed}: epoch 0 never ended");
    }
}
