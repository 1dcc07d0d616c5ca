//! Helpers shared by the simulator test files.
#![allow(dead_code)]

use dwcp_engines::sim::rbc::{self, Broadcast, Built, Delivery, RbcMsg};
use dwcp_engines::sim::{FaultModel, LinkFaults, SimReport, Simulator};

pub type Sim = Simulator<RbcMsg, Broadcast, Delivery>;

/// Seeds to run: `SIM_SEED` alone when set, otherwise `defaults`.
pub fn seeds(defaults: &[u64]) -> Vec<u64> {
    match std::env::var("SIM_SEED").ok().and_then(|s| s.parse().ok()) {
        Some(s) => vec![s],
        None => defaults.to_vec(),
    }
}

pub fn lossy(gst_ms: u64) -> FaultModel {
    FaultModel {
        link: LinkFaults {
            min_delay_ms: 1,
            max_delay_ms: 40,
            drop_ppm: 150_000,
            duplicate_ppm: 100_000,
            reorder_ppm: 100_000,
            reorder_extra_ms: 60,
            bandwidth_bytes_per_ms: 0,
        },
        gst_ms,
        post_gst_max_delay_ms: 20,
        ..FaultModel::reliable()
    }
}

/// Every node `0..n` broadcasts once, node `i` at t = i.
pub fn everyone(n: u32) -> Vec<(u64, u32, String)> {
    (0..n)
        .map(|i| (u64::from(i), i, format!("value of {i}")))
        .collect()
}

/// Run `built` with the broadcast's safety invariants (and liveness, 2 s after GST, if `live`).
pub fn simulate(
    seed: u64,
    mut built: Built,
    faults: FaultModel,
    inputs: &[(u64, u32, String)],
    live: bool,
    keep: bool,
) -> (SimReport<Delivery>, Sim) {
    let restart = built.restart();
    let nodes = std::mem::take(&mut built.nodes);
    let mut sim = Simulator::new(seed, faults, nodes, keep).with_restart(restart);
    for inv in rbc::safety_invariants(built.keys.clone(), built.cfg) {
        sim = sim.with_boxed_invariant(inv);
    }
    if live {
        sim = sim.with_boxed_invariant(rbc::liveness_invariant(2_000));
    }
    for (t, node, v) in inputs {
        sim.input(*t, *node, Broadcast(v.clone().into_bytes()));
    }
    let report = sim.run_until(5_000);
    (report, sim)
}

pub fn violated(r: &SimReport<Delivery>, invariant: &str) -> bool {
    r.violations.iter().any(|v| v.invariant == invariant)
}

/// The lossy network of the consensus suites (PBFT, ProBFT, Bullshark): 1–30 ms, 10 % dropped, 5 %
/// duplicated, 10 % reordered by up to 40 ms until `gst_ms`, then at most 10 ms.
pub fn consensus_lossy(gst_ms: u64) -> FaultModel {
    FaultModel {
        link: LinkFaults {
            min_delay_ms: 1,
            max_delay_ms: 30,
            drop_ppm: 100_000,
            duplicate_ppm: 50_000,
            reorder_ppm: 100_000,
            reorder_extra_ms: 40,
            bandwidth_bytes_per_ms: 0,
        },
        gst_ms,
        post_gst_max_delay_ms: 10,
        ..FaultModel::reliable()
    }
}
