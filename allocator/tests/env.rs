//! Environment: invariants (no over-commit, conservation, deadlines accounted), seeded
//! determinism, and property tests over random arrival streams and random (often invalid) actions.
// Test helpers outside #[test] fns fail loudly too.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use dwcp_allocator::arrivals::Pattern;
use dwcp_allocator::baselines::Baseline;
use dwcp_allocator::cluster::{Cluster, PlaceError};
use dwcp_allocator::env::{stream, Action, Env, EnvConfig};
use dwcp_allocator::eval::{run_episode, Placer};
use proptest::prelude::*;
use rand::Rng;

fn small() -> EnvConfig {
    EnvConfig {
        nodes: vec![[16, 32, 10], [8, 16, 5], [8, 16, 5]],
        agents: 3,
        ticks: 60,
        rounds_per_tick: 2,
        base_rate: 2.0,
        max_queue: 4,
        max_slack: 4,
    }
}

/// Play an episode with arbitrary actions (any node index, including ones that do not fit or do
/// not exist), checking every invariant after every round.
fn random_play(cfg: &EnvConfig, pattern: Pattern, seed: u64, act_seed: u64) -> Env {
    let mut env = Env::new(cfg.clone(), pattern, seed);
    let mut rng = stream(act_seed, 9);
    loop {
        for a in 0..cfg.agents {
            let action = if rng.gen_bool(0.2) {
                Action::Defer
            } else {
                Action::Place(rng.gen_range(0..cfg.nodes.len() + 2))
            };
            env.act(a, action);
            env.check_invariants().unwrap();
        }
        let (_, done) = env.end_round();
        env.check_invariants().unwrap();
        if done {
            return env;
        }
    }
}

#[test]
fn place_refuses_over_commit_and_release_restores_capacity() {
    let mut c = Cluster::new(vec![[4, 4, 4]]);
    c.place(0, [3, 1, 1], 5).unwrap();
    let err = c.place(0, [2, 1, 1], 5).unwrap_err();
    assert!(
        matches!(err, PlaceError::WouldOverCommit { node: 0, .. }),
        "{err}"
    );
    assert_eq!(c.free(0), Some([1, 3, 3]));
    assert!(matches!(
        c.place(7, [1, 1, 1], 5),
        Err(PlaceError::NoSuchNode(7))
    ));
    assert_eq!(c.release_until(4), 0);
    assert_eq!(c.release_until(5), 1);
    assert_eq!(c.free(0), Some([4, 4, 4]));
    c.check().unwrap();
}

#[test]
fn snapshot_rejects_an_already_over_committed_node() {
    assert!(Cluster::from_used(vec![[4, 4, 4]], vec![[5, 0, 0]]).is_err());
    assert!(Cluster::from_used(vec![[4, 4, 4]], vec![[4, 4, 4], [0, 0, 0]]).is_err());
    let c = Cluster::from_used(vec![[4, 4, 4]], vec![[4, 0, 1]]).unwrap();
    assert!(!c.fits(0, [1, 1, 1]));
    c.check().unwrap();
}

#[test]
fn same_seed_same_episode_different_seed_different_stream() {
    let cfg = small();
    for p in Pattern::ALL {
        let a = run_episode(&cfg, p, 11, Placer::Baseline(Baseline::Random)).unwrap();
        let b = run_episode(&cfg, p, 11, Placer::Baseline(Baseline::Random)).unwrap();
        assert_eq!(a.stats, b.stats, "{p:?}");
        let c = run_episode(&cfg, p, 12, Placer::Baseline(Baseline::Random)).unwrap();
        assert_ne!(
            a.stats, c.stats,
            "{p:?}: seeds 11 and 12 gave the same episode"
        );
    }
}

#[test]
fn the_arrival_stream_does_not_depend_on_the_policy() {
    let cfg = small();
    for p in Pattern::ALL {
        let arrived: Vec<u64> = Baseline::ALL
            .iter()
            .map(|b| {
                run_episode(&cfg, p, 5, Placer::Baseline(*b))
                    .unwrap()
                    .stats
                    .arrived
            })
            .collect();
        assert!(
            arrived.iter().all(|a| *a == arrived[0] && *a > 0),
            "{p:?}: {arrived:?}"
        );
    }
}

#[test]
fn deadlines_are_accounted_as_sla_misses() {
    // Nothing ever fits on a zero-capacity node: every workload must end as an SLA miss.
    let cfg = EnvConfig {
        nodes: vec![[0, 0, 0]],
        ..small()
    };
    let env = random_play(&cfg, Pattern::Steady, 3, 4);
    let s = env.stats();
    assert!(s.arrived > 20, "{s:?}");
    assert_eq!(s.placed, 0);
    // Whatever is still queued at the end has not missed yet; everything else has.
    let queued: u64 = (0..cfg.agents).map(|a| env.queue_len(a) as u64).sum();
    assert_eq!(s.sla_missed + queued, s.arrived);
    assert!(s.refused > 0);
}

#[test]
fn patterns_have_their_shape() {
    // Bursty: a higher variance of per-tick arrivals than steady at a similar mean.
    let counts = |p: Pattern| -> Vec<f64> {
        let mut a = dwcp_allocator::arrivals::Arrivals::new(p, 4.0, 4000, 6, 1);
        (0..4000).map(|t| a.draw(t).len() as f64).collect()
    };
    let mv = |x: &[f64]| {
        let m = x.iter().sum::<f64>() / x.len() as f64;
        (
            m,
            x.iter().map(|v| (v - m).powi(2)).sum::<f64>() / x.len() as f64,
        )
    };
    let (ms, vs) = mv(&counts(Pattern::Steady));
    let (mb, vb) = mv(&counts(Pattern::Bursty));
    assert!(
        (ms - 4.0).abs() < 0.3 && (mb - 4.0).abs() < 0.6,
        "means {ms} {mb}"
    );
    assert!(vb > 2.0 * vs, "bursty variance {vb} vs steady {vs}");
    let d = counts(Pattern::Diurnal);
    let first_quarter: f64 = d[..500].iter().sum();
    let third_quarter: f64 = d[1000..1500].iter().sum();
    assert!(
        first_quarter > 2.0 * third_quarter,
        "{first_quarter} {third_quarter}"
    );
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn invariants_hold_for_random_streams_and_random_actions(
        seed in any::<u64>(), act_seed in any::<u64>(), pattern in 0usize..4,
        rate in 0.5f64..8.0, slack in 1u32..8,
    ) {
        let cfg = EnvConfig { base_rate: rate, max_slack: slack, ..small() };
        let env = random_play(&cfg, Pattern::ALL[pattern], seed, act_seed);
        let s = env.stats();
        for u in s.node_utilisation() {
            prop_assert!((0.0..=1.0).contains(&u), "utilisation {}", u);
        }
        prop_assert!(s.placed <= s.arrived);
    }

    #[test]
    fn baselines_never_over_commit_and_are_deterministic(seed in any::<u64>(), pattern in 0usize..4) {
        let cfg = small();
        for b in Baseline::ALL {
            let r1 = run_episode(&cfg, Pattern::ALL[pattern], seed, Placer::Baseline(b)).unwrap();
            let r2 = run_episode(&cfg, Pattern::ALL[pattern], seed, Placer::Baseline(b)).unwrap();
            prop_assert_eq!(&r1.stats, &r2.stats);
            prop_assert_eq!(r1.stats.refused, 0, "{:?} proposed a node that does not fit", b);
        }
    }

    #[test]
    fn cluster_ops_conserve_capacity(ops in prop::collection::vec((0usize..3, 0u32..10, 0u32..10, 0u32..10, 0u32..20), 1..200)) {
        let mut c = Cluster::new(vec![[16, 16, 16], [8, 8, 8], [4, 4, 4]]);
        for (i, (node, a, b, d, end)) in ops.into_iter().enumerate() {
            let fits = c.fits(node, [a, b, d]);
            let placed = c.place(node, [a, b, d], end).is_ok();
            prop_assert_eq!(fits, placed);
            if i % 7 == 0 { c.release_until(i as u32 % 20); }
            c.check().map_err(TestCaseError::fail)?;
        }
    }
}
