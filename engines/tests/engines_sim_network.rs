//! The network model: delay bounds before and after GST, reordering, every fault kind in the
//! trace, one-way cuts, bandwidth, the adversarial scheduler, per-kind message counts, and the
//! step-cap flag. `SIM_SEED=<n>` replays one seed.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod sim_common;

use std::collections::BTreeSet;

use dwcp_engines::sim::crypto::Scheme;
use dwcp_engines::sim::rbc::{self, RbcConfig};
use dwcp_engines::sim::scheduler::Targeted;
use dwcp_engines::sim::{Crash, Cut, FaultModel, LinkFaults, Partition, TraceEvent};
use sim_common::{everyone, lossy, seeds, simulate, violated};

#[test]
fn delays_stay_within_the_link_bounds_before_and_after_gst() {
    let seed = seeds(&[12])[0];
    let mut faults = lossy(600);
    faults.link.min_delay_ms = 5;
    faults.link.max_delay_ms = 9;
    faults.link.reorder_ppm = 0;
    faults.post_gst_max_delay_ms = 3;
    let built = rbc::build(seed, RbcConfig::new(4, 1), Scheme::Mock, &[]);
    let mut inputs = everyone(4);
    inputs.push((700, 1, "late".into()));
    let (_, sim) = simulate(seed, built, faults, &inputs, true, true);
    let mut pre = 0;
    let mut post = 0;
    for e in sim.trace().events() {
        if let TraceEvent::Delivered {
            at,
            sent_at,
            from,
            to,
            ..
        } = e
        {
            if from == to {
                assert_eq!(at, sent_at, "self-delivery is immediate");
            } else if *sent_at < 600 {
                assert!(
                    (5..=9).contains(&(at - sent_at)),
                    "seed {seed}: pre-GST delay {}",
                    at - sent_at
                );
                pre += 1;
            } else {
                assert!(
                    at - sent_at <= 3,
                    "seed {seed}: post-GST delay {}",
                    at - sent_at
                );
                post += 1;
            }
        }
    }
    assert!(pre > 0 && post > 0, "seed {seed}: {pre} pre, {post} post");
}

#[test]
fn reordering_appears_only_when_switched_on() {
    let seed = seeds(&[13])[0];
    let count = |reorder_ppm| {
        let mut faults = lossy(10_000);
        faults.link = LinkFaults {
            reorder_ppm,
            reorder_extra_ms: 50,
            ..LinkFaults::reliable(5)
        };
        let built = rbc::build(seed, RbcConfig::new(4, 1), Scheme::Mock, &[]);
        simulate(seed, built, faults, &everyone(4), false, true)
            .1
            .trace()
            .count("reordered")
    };
    assert_eq!(
        count(0),
        0,
        "seed {seed}: fixed delay, no reordering, yet reordered"
    );
    assert!(
        count(300_000) > 0,
        "seed {seed}: reordering on, none observed"
    );
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
    faults.crashes.push(Crash::recover(2, 50, 900));
    faults.crashes.push(Crash::stop(3, 4_000));
    let (report, sim) = simulate(
        seed,
        rbc::build(seed, RbcConfig::new(4, 1), Scheme::Ed25519, &[]),
        faults,
        &everyone(4),
        false,
        true,
    );
    for kind in [
        "dropped_link",
        "duplicated",
        "dropped_partition",
        "crashed",
        "recovered",
        "dropped_crashed",
        "gst",
        "committed",
    ] {
        assert!(
            sim.trace().count(kind) > 0,
            "seed {seed}: no `{kind}` in {:?}",
            sim.trace().counts()
        );
    }
    assert!(
        report.violations.is_empty(),
        "seed {seed}: {:?}",
        report.violations
    );
    assert!(report.unrecovered.is_empty());
}

#[test]
fn one_way_cut_bandwidth_and_a_targeted_scheduler_shape_delivery() {
    let seed = seeds(&[14])[0];
    let mut faults = FaultModel {
        gst_ms: 10_000,
        ..FaultModel::reliable()
    };
    faults.cuts.push(Cut {
        from_ms: 0,
        until_ms: 10_000,
        from: vec![0],
        to: vec![1],
    });
    faults.overrides.push((
        2,
        3,
        LinkFaults {
            bandwidth_bytes_per_ms: 10,
            ..LinkFaults::reliable(1)
        },
    ));
    let built = rbc::build(seed, RbcConfig::new(4, 1), Scheme::Mock, &[]);
    let restart = built.restart();
    let mut sim = dwcp_engines::sim::Simulator::new(seed, faults, built.nodes, true)
        .with_restart(restart)
        .with_scheduler(Targeted {
            nodes: BTreeSet::from([3]),
            kinds: BTreeSet::from(["echo"]),
            extra_ms: 300,
        });
    sim.input(0, 2, rbc::Broadcast(vec![7; 200]));
    sim.input(0, 0, rbc::Broadcast(b"zero".to_vec()));
    let report = sim.run_until(2_000);
    let ev = sim.trace().events();
    let del = |f: u32, t: u32| {
        ev.iter().filter(
            move |e| matches!(e, TraceEvent::Delivered { from, to, .. } if *from == f && *to == t),
        )
    };
    assert_eq!(del(0, 1).count(), 0, "seed {seed}: the cut 0→1 leaked");
    assert!(del(1, 0).count() > 0, "seed {seed}: the cut is one-way");
    // A 200-byte value at 10 B/ms takes ≥ 20 ms on 2→3 (plus 1 ms propagation).
    let first = del(2, 3)
        .map(|e| match e {
            TraceEvent::Delivered { at, sent_at, .. } => at - sent_at,
            _ => 0,
        })
        .next()
        .unwrap();
    assert!(first >= 21, "seed {seed}: bandwidth ignored ({first} ms)");
    // Echoes to or from node 3 are held back 300 ms by the scheduler.
    assert!(report.messages["echo"].count > 0);
    let echo_delay = ev
        .iter()
        .filter_map(|e| match e {
            TraceEvent::Delivered {
                at,
                sent_at,
                to: 3,
                from,
                ..
            } if *from != 3 => Some(at - sent_at),
            _ => None,
        })
        .max()
        .unwrap();
    assert!(
        echo_delay >= 300,
        "seed {seed}: scheduler ignored ({echo_delay} ms)"
    );
}

#[test]
fn per_kind_message_counts_match_the_protocol() {
    // n = 4, one broadcast, reliable: 3 sends, 4×3 echoes, 4×3 finals to other nodes.
    let seed = seeds(&[15])[0];
    let built = rbc::build(seed, RbcConfig::new(4, 1), Scheme::Mock, &[]);
    let (r, _) = simulate(
        seed,
        built,
        FaultModel::reliable(),
        &[(0, 0, "x".into())],
        true,
        false,
    );
    let counts: Vec<(&str, u64)> = r.messages.iter().map(|(k, m)| (*k, m.count)).collect();
    assert_eq!(
        counts,
        vec![("echo", 12), ("final", 12), ("send", 3)],
        "seed {seed}"
    );
    assert!(
        r.messages.values().all(|m| m.bytes > m.count),
        "seed {seed}: {:?}",
        r.messages
    );
}

#[test]
fn the_step_cap_is_reported_and_voids_liveness() {
    let seed = seeds(&[16])[0];
    let built = rbc::build(seed, RbcConfig::new(4, 1), Scheme::Mock, &[]);
    let restart = built.restart();
    let keys = built.keys.clone();
    let mut sim =
        dwcp_engines::sim::Simulator::new(seed, FaultModel::reliable(), built.nodes, false)
            .with_restart(restart)
            .max_steps(20);
    for inv in rbc::safety_invariants(keys, built.cfg) {
        sim = sim.with_boxed_invariant(inv);
    }
    sim = sim.with_boxed_invariant(rbc::liveness_invariant(2_000));
    sim.input(0, 0, rbc::Broadcast(b"x".to_vec()));
    let r = sim.run_until(5_000);
    assert!(
        r.truncated && r.steps == 20,
        "seed {seed}: {} steps, truncated {}",
        r.steps,
        r.truncated
    );
    assert!(
        violated(&r, "liveness"),
        "seed {seed}: a truncated run passed liveness"
    );
}
