//! The guard and the weight files: NaN weights, invalid and over-committing actions fall back to
//! best-fit; a corrupted weight file is refused with a `DataIntegrityViolation`.
// Test helpers outside #[test] fns fail loudly too.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use dwcp_allocator::baselines::best_fit;
use dwcp_allocator::cluster::{Cluster, Head};
use dwcp_allocator::env::{stream, Action};
use dwcp_allocator::observe::{obs_dim, Scale};
use dwcp_allocator::policy::{validate, Dense, FallbackReason, Mlp, Model, Scratch};
use dwcp_allocator::weights::{self, LoadError, Manifest};
use dwcp_core::signals::{EngineEvent, IntegrityKind};
use proptest::prelude::*;
use rand::Rng;

fn random_model(agents: usize, nodes: usize, seed: u64) -> Model {
    let mut rng = stream(seed, 1);
    let sizes = [obs_dim(nodes), 16, 16, nodes + 1];
    let actors = (0..agents)
        .map(|_| Mlp {
            layers: sizes
                .windows(2)
                .map(|p| Dense {
                    input: p[0],
                    output: p[1],
                    w: (0..p[0] * p[1]).map(|_| rng.gen_range(-1.0..1.0)).collect(),
                    b: (0..p[1]).map(|_| rng.gen_range(-1.0..1.0)).collect(),
                })
                .collect(),
        })
        .collect();
    Model { nodes, actors }
}

fn cluster() -> Cluster {
    Cluster::from_used(
        vec![[16, 32, 10], [8, 16, 5], [8, 16, 5]],
        vec![[12, 10, 2], [2, 2, 2], [8, 0, 0]],
    )
    .unwrap()
}

fn head(d: [u32; 3]) -> Head {
    Head {
        demand: d,
        slack: 2,
        queue_len: 1,
    }
}

#[test]
fn nan_weights_fall_back_to_best_fit() {
    let mut m = random_model(2, 3, 1);
    m.actors[1].layers[0].w[0] = f32::NAN;
    let c = cluster();
    let scale = Scale::new(&c, 6, 8);
    let h = head([4, 4, 1]);
    let d = m.decide(1, &c, Some(&h), &scale, &mut Scratch::default());
    assert_eq!(d.fallback, Some(FallbackReason::NonFinite));
    assert_eq!(d.action, Action::Place(best_fit(&c, h.demand).unwrap()));
    // The healthy actor is untouched.
    let ok = m.decide(0, &c, Some(&h), &scale, &mut Scratch::default());
    assert_eq!(ok.fallback, None);
}

#[test]
fn over_committing_and_invalid_actions_are_refused_by_the_guard() {
    let c = cluster();
    let h = head([6, 1, 1]); // fits node 1 only (node 0 has 4 CPU free, node 2 none)
    let scores = [0.0f32; 4];
    assert_eq!(
        validate(&c, &h, &scores, 0),
        Err(FallbackReason::WouldOverCommit)
    );
    assert_eq!(
        validate(&c, &h, &scores, 2),
        Err(FallbackReason::WouldOverCommit)
    );
    assert_eq!(validate(&c, &h, &scores, 1), Ok(Action::Place(1)));
    assert_eq!(validate(&c, &h, &scores, 3), Ok(Action::Defer));
    assert_eq!(
        validate(&c, &h, &scores, 4),
        Err(FallbackReason::InvalidAction)
    );
    assert_eq!(
        validate(&c, &h, &[0.0, f32::INFINITY, 0.0, 0.0], 1),
        Err(FallbackReason::NonFinite)
    );
    assert_eq!(
        dwcp_allocator::policy::safe_action(&c, &h),
        Action::Place(1)
    );
    assert_eq!(
        dwcp_allocator::policy::safe_action(&c, &head([9, 1, 1])),
        Action::Defer
    );
}

#[test]
fn a_model_for_fewer_agents_falls_back_for_the_extra_agent() {
    let m = random_model(1, 3, 2);
    let mut c = cluster();
    let scale = Scale::new(&c, 6, 8);
    let d = m.place_all(
        &mut c,
        &[Some(head([1, 1, 1])), Some(head([1, 1, 1]))],
        &scale,
        &mut Scratch::default(),
    );
    assert_eq!(d[0].fallback, None);
    assert_eq!(d[1].fallback, Some(FallbackReason::InvalidAction));
    c.check().unwrap();
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]
    /// Whatever the (finite) weights and the cluster state, a placement round never over-commits.
    #[test]
    fn place_all_never_over_commits(seed in any::<u64>(), used in prop::collection::vec((0u32..=16, 0u32..=32, 0u32..=10), 3),
                                    demands in prop::collection::vec((1u32..12, 1u32..20, 1u32..6), 4)) {
        let m = random_model(4, 3, seed);
        let caps = vec![[16, 32, 10], [16, 32, 10], [16, 32, 10]];
        let used: Vec<[u32; 3]> = used.into_iter().map(|(a, b, c)| [a, b, c]).collect();
        let mut c = Cluster::from_used(caps, used).unwrap();
        let scale = Scale::new(&c, 6, 8);
        let heads: Vec<Option<Head>> = demands.into_iter().map(|(a, b, d)| Some(head([a, b, d]))).collect();
        let ds = m.place_all(&mut c, &heads, &scale, &mut Scratch::default());
        c.check().map_err(TestCaseError::fail)?;
        for d in ds {
            prop_assert_eq!(d.fallback, None, "a finite policy with masking needed no fallback");
            prop_assert_eq!(d.scores.len(), 4);
        }
    }
}

fn manifest_for(bytes: &[u8]) -> Manifest {
    Manifest {
        format: "dwcp-maddpg-actors-v1".into(),
        seed: 1,
        episodes: 0,
        env: dwcp_allocator::env::EnvConfig {
            nodes: vec![[16, 32, 10]; 3],
            agents: 2,
            ..Default::default()
        },
        train: serde_json::Value::Null,
        command: String::new(),
        weights_file: weights::WEIGHTS_FILE.into(),
        weights_sha256: weights::sha256_hex(bytes),
    }
}

#[test]
fn weights_round_trip_and_a_corrupted_file_is_an_integrity_violation() {
    let m = random_model(2, 3, 3);
    let bytes = weights::encode(&m);
    let manifest = manifest_for(&bytes);
    assert_eq!(weights::verify_and_decode(&manifest, &bytes).unwrap(), m);

    let dir = tempfile::tempdir().unwrap();
    let mut bad = bytes.clone();
    let mid = bad.len() / 2;
    bad[mid] ^= 0x40;
    std::fs::write(dir.path().join(weights::WEIGHTS_FILE), &bad).unwrap();
    std::fs::write(
        dir.path().join(weights::MANIFEST_FILE),
        serde_json::to_vec(&manifest).unwrap(),
    )
    .unwrap();
    let err = weights::load_dir(dir.path()).unwrap_err();
    assert!(matches!(err, LoadError::HashMismatch { .. }), "{err}");
    match err.to_event(77) {
        Some(EngineEvent::DataIntegrityViolation {
            engine,
            at_ms,
            violation,
            ..
        }) => {
            assert_eq!(
                (engine.as_str(), at_ms, violation),
                ("allocator", 77, IntegrityKind::WeightHashMismatch)
            );
        }
        other => panic!("no integrity event: {other:?}"),
    }
    // A truncated file whose hash matches (a bad manifest) is malformed, not accepted.
    let short = &bytes[..bytes.len() - 4];
    let err = weights::verify_and_decode(&manifest_for(short), short).unwrap_err();
    assert!(matches!(err, LoadError::Malformed(_)), "{err}");
    // A file for another shape is refused.
    let other = weights::encode(&random_model(3, 3, 3));
    assert!(matches!(
        weights::verify_and_decode(&manifest_for(&other), &other),
        Err(LoadError::Shape { .. })
    ));
}

#[test]
fn the_shipped_weights_match_their_manifest() {
    let (manifest, model) = weights::shipped().unwrap();
    assert_eq!(model.agents(), manifest.env.agents);
    assert_eq!(model.nodes, manifest.env.nodes.len());
    assert!(manifest
        .command
        .contains(&format!("--seed {}", manifest.seed)));
}

#[test]
fn weights_for_another_observation_are_refused() {
    // The previous observation layout (6 + 4k features): an actor trained on it would read the
    // new features with the wrong weights, so it must not load.
    let mut m = random_model(2, 3, 4);
    for a in &mut m.actors {
        let l = &mut a.layers[0];
        l.input = 6 + 4 * 3;
        l.w.truncate(l.input * l.output);
    }
    let bytes = weights::encode(&m);
    let err = weights::verify_and_decode(&manifest_for(&bytes), &bytes).unwrap_err();
    assert!(matches!(err, LoadError::Features { .. }), "{err}");
}

#[test]
fn the_observation_carries_best_fit_tightness_and_choice() {
    use dwcp_allocator::observe::{best_fit_offset, fits_offset, observation};
    let c = cluster();
    let scale = Scale::new(&c, 6, 8);
    let h = head([2, 2, 1]); // fits nodes 0 and 1 (node 2 has no CPU free)
    let o = observation(&c, Some(&h), &scale);
    assert_eq!(o.len(), obs_dim(3));
    let fits = &o[fits_offset(3)..fits_offset(3) + 3];
    assert_eq!(fits, &[1.0, 1.0, 0.0]);
    let tight = &o[fits_offset(3) + 3..best_fit_offset(3)];
    let choice = &o[best_fit_offset(3)..];
    let bf = best_fit(&c, h.demand).unwrap();
    assert_eq!(choice.iter().position(|v| *v == 1.0), Some(bf));
    assert_eq!(choice.iter().sum::<f32>(), 1.0);
    // The chosen node is the tightest one, and tightness is 1 − the mean free share left.
    let max = tight.iter().copied().fold(f32::MIN, f32::max);
    assert_eq!(tight[bf], max);
    // [6, 1, 1] fits node 1 only: tightness 0 on the others.
    let h2 = head([6, 1, 1]);
    let o2 = observation(&c, Some(&h2), &scale);
    let tight2 = &o2[fits_offset(3) + 3..best_fit_offset(3)];
    assert_eq!(tight2[0], 0.0);
    assert_eq!(tight2[2], 0.0);
    // Node 1: free [6, 14, 3] of [8, 16, 5]; after [6, 1, 1]: (0/8 + 13/16 + 2/5) / 3 left.
    let left = (0.0 + 13.0 / 16.0 + 2.0 / 5.0) / 3.0;
    assert!((tight2[1] - (1.0 - left)).abs() < 1e-6, "{}", tight2[1]);
    assert_eq!(&o2[best_fit_offset(3)..], &[0.0, 1.0, 0.0]);
}
