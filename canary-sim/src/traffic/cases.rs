//! The catalogue of cases the report runs. A case's `id` is part of every run's seed
//! (`run_seed(seed, id, run)`), so ids are stable: renumbering one changes its numbers.

use super::{Onset, Regression, Scenario, SEGMENTS};

/// Which run count a case uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Runs {
    /// The A/A run count (first argument / `SIM_RUNS`).
    AA,
    /// The runs per regression case (second argument / `SIM_REG_RUNS`).
    PerRegression,
}

#[derive(Debug, Clone)]
pub struct Case {
    pub id: u64,
    pub label: &'static str,
    pub scenario: Scenario,
    pub runs: Runs,
}

fn case(id: u64, label: &'static str, scenario: Scenario) -> Case {
    Case {
        id,
        label,
        scenario,
        runs: Runs::PerRegression,
    }
}

/// (a) Healthy rollouts: 200 req/s over the full ladder, and a low-traffic batch (5 canary req/s).
pub fn aa() -> Vec<Case> {
    vec![
        Case {
            runs: Runs::AA,
            ..case(
                1,
                "(a) A/A, 200 req/s, full ladder 1→100 %",
                Scenario::healthy(),
            )
        },
        case(
            13,
            "(a') A/A, low traffic: 5 canary req/s in every phase",
            Scenario {
                canary_rps: Some(5.0),
                ..Scenario::healthy()
            },
        ),
        case(
            14,
            "(a'') A/A, segment mix 5/5/20/10/60 % with base error rates internal 5 %, beta 3 %, premium 0.5 %, enterprise 1 %, standard 0.1 % (both versions)",
            Scenario::segment_base_rates(),
        ),
    ]
}

/// Production traffic through the product's own ingest path (sidecars → batches → ledger): keyless
/// requests, fleets of sidecars, latency that moves on both versions. Healthy canaries: every abort is a
/// false abort.
pub fn production() -> Vec<Case> {
    let fleet = |sidecars| Scenario {
        sidecars,
        ..Scenario::segment_base_rates()
    };
    let aa = |id, label, scenario| Case {
        runs: Runs::AA,
        ..case(id, label, scenario)
    };
    vec![
        aa(
            15,
            "(p1) segment mix with base rates, 20 % keyless (5 % errors), 10 sidecars",
            Scenario {
                keyless: 0.2,
                ..fleet(10)
            },
        ),
        aa(
            16,
            "(p2) segment mix with base rates, 50 % keyless (5 % errors), 10 sidecars",
            Scenario {
                keyless: 0.5,
                ..fleet(10)
            },
        ),
        aa(
            18,
            "(p4) shared 3× slowdown of both versions from mid-phase on, 10 sidecars",
            Scenario {
                regression: Regression::SharedSlowdown(3.0),
                onset: Onset::MidRandomPhase,
                ..fleet(10)
            },
        ),
        aa(
            19,
            "(p5) rare 10× slow mode (0.7 % of requests) on both versions, 10 sidecars",
            Scenario {
                slow_share: 0.007,
                slow_factor: 10.0,
                ..fleet(10)
            },
        ),
        aa(
            24,
            "(p3) one sticky client failing every request on both versions at 1 req/s (standard), 10 sidecars",
            Scenario {
                failing_clients: 1,
                ..fleet(10)
            },
        ),
        aa(
            20,
            "(p6) segment mix with base rates, 20 % keyless, 1 000 sidecars",
            Scenario {
                keyless: 0.2,
                ..fleet(1_000)
            },
        ),
    ]
}

/// What the keyless mark fixes: the p2 traffic from filters that counted keyless requests as ordinary
/// stable requests (before the mark). Expected to abort healthy canaries: shown, not a target.
pub fn before_the_mark() -> Vec<Case> {
    vec![Case {
        runs: Runs::PerRegression,
        ..case(
            17,
            "(p2, unmarked) 50 % keyless counted as bucketed stable requests (filters before the mark)",
            Scenario {
                keyless: 0.5,
                mark_keyless: false,
                sidecars: 10,
                ..Scenario::segment_base_rates()
            },
        )
    }]
}

/// Power on production traffic through the ledger.
pub fn production_power() -> Vec<Case> {
    vec![
        case(
            21,
            "crash 50 %, 5 canary req/s, mid-phase (random 1–50 %), 1 000 sidecars, 20 % keyless",
            Scenario {
                canary_rps: Some(5.0),
                max_after_onset_s: Some(600),
                keyless: 0.2,
                sidecars: 1_000,
                ..Scenario::segment_base_rates()
                    .with(Regression::ErrorRate(0.5), Onset::MidRandomPhase)
            },
        ),
        case(
            22,
            "premium only 3× errors from the 5 % phase, segment mix, 10 sidecars",
            Scenario {
                regression_segment: Some("premium"),
                sidecars: 10,
                ..Scenario::segment_base_rates()
                    .with(Regression::ErrorMult(3.0), Onset::PhaseStart(1))
            },
        ),
        case(
            23,
            "2× p99 from mid 25 % phase, segment mix, 10 sidecars",
            Scenario {
                sidecars: 10,
                ..Scenario::segment_base_rates().with(Regression::TailP99(2.0), Onset::MidPhase(3))
            },
        ),
    ]
}

/// Regressions from the deploy or mid-phase, at 200 req/s.
pub fn regressions() -> Vec<Case> {
    let from_start = |reg| Scenario::healthy().with(reg, Onset::Start);
    let mid_random = |reg| Scenario::healthy().with(reg, Onset::MidRandomPhase);
    vec![
        case(
            2,
            "(b) 2× error rate, from deploy",
            from_start(Regression::ErrorMult(2.0)),
        ),
        case(
            3,
            "(c) 1.5× error rate, from deploy",
            from_start(Regression::ErrorMult(1.5)),
        ),
        case(
            4,
            "(d) 2× p99 (tail; median same), from deploy",
            from_start(Regression::TailP99(2.0)),
        ),
        case(
            5,
            "(e) 50 % errors crash, mid-phase (random phase 1–50 %)",
            mid_random(Regression::ErrorRate(0.5)),
        ),
        case(
            6,
            "(b') 2× error rate, mid-phase (random phase 1–50 %)",
            mid_random(Regression::ErrorMult(2.0)),
        ),
    ]
}

/// Aim 1: a 50 %-errors canary at 5 canary req/s, to be aborted in under 5 s.
pub fn aim1() -> Vec<Case> {
    let crash5 = |onset| Scenario {
        canary_rps: Some(5.0),
        max_after_onset_s: Some(600),
        ..Scenario::healthy().with(Regression::ErrorRate(0.5), onset)
    };
    vec![
        case(
            7,
            "crash 50 %, 5 canary req/s, from deploy",
            crash5(Onset::Start),
        ),
        case(
            11,
            "crash 50 %, 5 canary req/s, mid 1 % phase",
            crash5(Onset::MidPhase(0)),
        ),
        case(
            12,
            "crash 50 %, 5 canary req/s, mid 5 % phase",
            crash5(Onset::MidPhase(1)),
        ),
        case(
            8,
            "crash 50 %, 5 canary req/s, mid-phase (random phase 1–50 %)",
            crash5(Onset::MidRandomPhase),
        ),
    ]
}

/// Aim 2: 2× errors from the start of the 5 % phase, to be caught before that phase ends.
pub fn aim2() -> Vec<Case> {
    let two_x = |segments: Vec<(&'static str, f64)>| Scenario {
        stop_after_phase: Some(1),
        segments,
        ..Scenario::healthy().with(Regression::ErrorMult(2.0), Onset::PhaseStart(1))
    };
    vec![
        case(
            9,
            "2× errors at the 5 % phase start, segment mix (canary 15 %)",
            two_x(SEGMENTS.to_vec()),
        ),
        case(
            10,
            "2× errors at the 5 % phase start, standard only (canary 5 %)",
            two_x(vec![("standard", 1.0)]),
        ),
    ]
}
