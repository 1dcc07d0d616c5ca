//! Fast, deterministic smoke test of the canary simulation (fixed seeds, a few runs).
//! The full simulation: `cargo run --release -p dwcp-core --example canary_sim`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[allow(dead_code)]
#[path = "../examples/canary_sim.rs"]
mod sim;

use sim::{run, run_seed, wilson, Onset, Regression, Scenario};

const SEED: u64 = 20_240_601;

/// The ladder compressed to 60 s per phase (min requests per track unchanged).
fn compressed() -> Scenario {
    Scenario {
        phase_s: 60,
        ..Scenario::healthy()
    }
}

#[test]
fn crash_from_deploy_is_rolled_back_within_5_s() {
    let sc = Scenario {
        regression: Regression::ErrorRate(0.5),
        onset: Onset::Start,
        max_after_onset_s: Some(60),
        ..compressed()
    };
    for i in 0..10 {
        let r = run(&sc, run_seed(SEED, 100, i));
        let t = r.time_to_abort_ms();
        assert!(
            t.is_some_and(|t| t < 5_000),
            "run {i}: {r:?} (time to abort {t:?})"
        );
        assert_eq!(r.trigger, "1:error_rate", "run {i}");
    }
}

#[test]
fn crash_mid_phase_is_rolled_back_within_5_s() {
    // 200 req/s: the canary gets ~30 req/s in the 5 % phase; the crash starts after minutes of
    // healthy history, which the restart mixture of the error test must not be slowed by.
    let sc = Scenario {
        regression: Regression::ErrorRate(0.5),
        onset: Onset::MidPhase(1),
        max_after_onset_s: Some(60),
        ..compressed()
    };
    for i in 0..10 {
        let r = run(&sc, run_seed(SEED, 101, i));
        let t = r.time_to_abort_ms();
        assert!(
            t.is_some_and(|t| t < 5_000),
            "run {i}: {r:?} (time to abort {t:?})"
        );
    }
}

#[test]
fn short_aa_batch_is_promoted_without_aborts() {
    let sc = compressed();
    let runs = 20;
    let rs: Vec<_> = (0..runs)
        .map(|i| run(&sc, run_seed(SEED, 102, i)))
        .collect();
    let aborts = rs.iter().filter(|r| r.aborted).count() as u64;
    let done = rs.iter().filter(|r| r.succeeded).count() as u64;
    // α = 1 %: more than 2 aborts in 20 healthy rollouts would have probability < 0.1 %.
    assert!(aborts <= 2, "{aborts} false aborts in {runs}: {rs:?}");
    assert_eq!(aborts + done, runs, "every run ends promoted or aborted");
}

#[test]
fn runs_are_deterministic_per_seed() {
    let sc = Scenario {
        regression: Regression::ErrorMult(2.0),
        onset: Onset::Start,
        max_after_onset_s: Some(120),
        ..compressed()
    };
    let a = run(&sc, run_seed(SEED, 103, 0));
    let b = run(&sc, run_seed(SEED, 103, 0));
    assert_eq!(a, b);
}

#[test]
fn wilson_interval_brackets_the_estimate() {
    let (lo, hi) = wilson(3, 1_000);
    assert!(lo < 0.003 && 0.003 < hi && hi < 0.01, "({lo}, {hi})");
    let (lo, hi) = wilson(0, 1_000);
    assert!(lo < 1e-12 && hi > 0.003 && hi < 0.004, "({lo}, {hi})");
}
