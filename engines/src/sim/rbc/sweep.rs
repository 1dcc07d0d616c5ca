//! # Ready-made runs: the Monte-Carlo sweep and the pinned-trace scenario
//!
//! Shared by the `sim-consensus` command and the tests, so the trace hash a test pins is the one
//! a second process recomputes.

use std::collections::BTreeSet;

use super::super::adversary::{pick_byzantine, Adversary, Fault};
use super::super::crypto::Scheme;
use super::super::faults::{Crash, FaultModel, LinkFaults};
use super::super::simulator::{SimReport, Simulator};
use super::checks::RbcNode;
use super::{build, liveness_invariant, safety_invariants, Broadcast, Delivery, RbcConfig};

/// One Monte-Carlo run: `n` nodes, `f = ⌊(n−1)/3⌋` of them (chosen by the seed) Byzantine —
/// alternately silent and withholding from half the network — and `views` broadcasts, one every
/// `spacing_ms` from origins in turn, on a jittery lossy link until GST at half time. Safety and
/// liveness (deadline 2 s after GST) are checked. Logs are not kept.
pub fn sweep_run(seed: u64, n: u32, views: u64, scheme: Scheme) -> SimReport<Delivery> {
    let f = (n - 1) / 3;
    let cfg = RbcConfig::new(n, f);
    let spacing_ms = 20;
    let mut built = build(seed, cfg, scheme, &[]);
    let byz = pick_byzantine(seed, n, f);
    for (k, id) in byz.iter().enumerate() {
        let Some(inner) = built.honest(*id) else {
            continue;
        };
        let fault = if k % 2 == 0 {
            Fault::Silent
        } else {
            Fault::Withhold((0..n / 2).collect::<BTreeSet<_>>())
        };
        built.nodes[*id as usize] = Box::new(Adversary::new(inner, vec![fault])) as RbcNode;
    }
    built.byzantine = byz.iter().copied().collect();
    let horizon = views * spacing_ms;
    let faults = FaultModel {
        link: LinkFaults {
            min_delay_ms: 1,
            max_delay_ms: 20,
            drop_ppm: 20_000,
            duplicate_ppm: 10_000,
            reorder_ppm: 10_000,
            reorder_extra_ms: 30,
            bandwidth_bytes_per_ms: 0,
        },
        gst_ms: horizon / 2,
        post_gst_max_delay_ms: 20,
        ..FaultModel::reliable()
    };
    let restart = built.restart();
    let keys = built.keys.clone();
    let mut sim = Simulator::new(seed, faults, std::mem::take(&mut built.nodes), false)
        .keep_logs(false)
        .max_steps(u64::MAX)
        .with_restart(restart);
    for inv in safety_invariants(keys, cfg) {
        sim = sim.with_boxed_invariant(inv);
    }
    sim = sim.with_boxed_invariant(liveness_invariant(2_000));
    let honest: Vec<u32> = (0..n).filter(|i| !built.byzantine.contains(i)).collect();
    for v in 0..views {
        let origin = honest[(v % honest.len() as u64) as usize];
        sim.input(
            v * spacing_ms,
            origin,
            Broadcast(format!("view {v}").into_bytes()),
        );
    }
    sim.run_until(horizon + 3_000)
}

/// The fixed scenario whose trace hash is pinned: n = 4 with ed25519, a lossy network, one
/// crash-recover, one Byzantine node chosen by the seed.
pub fn pinned_run(seed: u64) -> SimReport<Delivery> {
    let cfg = RbcConfig::new(4, 1);
    let mut built = build(seed, cfg, Scheme::Ed25519, &[]);
    let byz = pick_byzantine(seed, 4, 1);
    for id in &byz {
        if let Some(inner) = built.honest(*id) {
            let faults = vec![Fault::Replay {
                every_ms: 150,
                rounds: 3,
                cap: 64,
            }];
            built.nodes[*id as usize] = Box::new(Adversary::new(inner, faults)) as RbcNode;
        }
    }
    built.byzantine = byz.iter().copied().collect();
    let victim = (0..4).find(|i| !built.byzantine.contains(i)).unwrap_or(0);
    let faults = FaultModel {
        link: LinkFaults {
            min_delay_ms: 1,
            max_delay_ms: 40,
            drop_ppm: 150_000,
            duplicate_ppm: 100_000,
            reorder_ppm: 100_000,
            reorder_extra_ms: 60,
            bandwidth_bytes_per_ms: 0,
        },
        crashes: vec![Crash::recover(victim, 30, 600)],
        gst_ms: 1_000,
        post_gst_max_delay_ms: 20,
        ..FaultModel::reliable()
    };
    let restart = built.restart();
    let keys = built.keys.clone();
    let mut sim =
        Simulator::new(seed, faults, std::mem::take(&mut built.nodes), false).with_restart(restart);
    for inv in safety_invariants(keys, cfg) {
        sim = sim.with_boxed_invariant(inv);
    }
    sim = sim.with_boxed_invariant(liveness_invariant(2_000));
    for node in 0..4 {
        sim.input(
            u64::from(node) * 5,
            node,
            Broadcast(format!("value of {node}").into_bytes()),
        );
    }
    sim.run_until(5_000)
}
