//! The reference protocol's retransmission: per-instance backoff and turns towards a node that
//! never answers (a silent Byzantine node), without giving up the liveness bound after GST.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod sim_common;

use std::collections::BTreeMap;

use dwcp_engines::sim::crypto::Scheme;
use dwcp_engines::sim::rbc::{self, RbcConfig, RbcNode};
use dwcp_engines::sim::{Adversary, Fault, FaultModel, TraceEvent};
use sim_common::{seeds, simulate};

#[test]
fn relays_to_a_silent_node_back_off_and_each_pair_keeps_its_turn() {
    for seed in seeds(&[3, 4]) {
        let (n, silent) = (4u32, 3u32);
        let cfg = RbcConfig::new(n, 1);
        let mut built = rbc::build(seed, cfg, Scheme::Mock, &[]);
        let inner = built.honest(silent).unwrap();
        built.nodes[silent as usize] =
            Box::new(Adversary::new(inner, vec![Fault::Silent])) as RbcNode;
        built.byzantine.insert(silent);
        let inputs = vec![(0, 0, "one value".to_owned())];
        let (report, sim) = simulate(seed, built, FaultModel::reliable(), &inputs, true, true);
        assert!(
            report.violations.is_empty(),
            "seed {seed}: {:?}",
            report.violations
        );

        // Send times of each payload the honest nodes sent the silent node. The one sent most
        // is the relay (sends and echoes go once on a reliable network): its first send is at
        // delivery, the rest are retransmissions.
        let mut by_payload: BTreeMap<(u32, u64), Vec<u64>> = BTreeMap::new();
        for e in sim.trace().events() {
            if let TraceEvent::Delivered {
                from,
                to,
                sent_at,
                digest,
                ..
            } = e
            {
                if *to == silent && *from != silent {
                    by_payload
                        .entry((*from, *digest))
                        .or_default()
                        .push(*sent_at);
                }
            }
        }
        let mut sent: BTreeMap<u32, Vec<u64>> = BTreeMap::new();
        for ((from, _), times) in by_payload {
            let e = sent.entry(from).or_default();
            if times.len() > e.len() {
                *e = times;
            }
        }
        assert_eq!(sent.len() as u32, n - 1, "seed {seed}: {sent:?}");
        // Without backoff every honest node resends every round while it is active
        // (`retransmit_rounds` rounds after the delivery).
        let every_round = u64::from(cfg.retransmit_rounds);
        let mut resent_total = 0;
        for (from, times) in &sent {
            let resends: Vec<u64> = times[1..].to_vec();
            assert!(
                !resends.is_empty(),
                "seed {seed}: node {from} never resent: {times:?}"
            );
            resent_total += resends.len() as u64;
            let gaps: Vec<u64> = resends.windows(2).map(|w| w[1] - w[0]).collect();
            assert!(
                gaps.windows(2).all(|g| g[1] >= g[0]),
                "seed {seed}: node {from} gaps shrink: {gaps:?}"
            );
            let bound = 2 * cfg.retransmit_max_ms + cfg.retransmit_ms;
            assert!(
                gaps.iter().all(|g| *g <= bound),
                "seed {seed}: node {from} left the silent node waiting longer than {bound} ms: {gaps:?}"
            );
        }
        let honest = u64::from(n - 1);
        assert!(
            resent_total < honest * every_round / 2,
            "seed {seed}: {resent_total} resends, {} without backoff: {sent:?}",
            honest * every_round
        );
    }
}
