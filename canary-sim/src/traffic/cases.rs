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

/// The production traffic model every heterogeneous case builds on: the segment mix with base rates,
/// 50 000 users with Zipf(1) request counts (the heaviest sends ~9 % of all requests), sidecars
/// reporting every second at their own offsets, 10 % of them only every 5 s.
pub fn production_base(sidecars: u32) -> Scenario {
    Scenario {
        sidecars,
        users: 50_000,
        zipf_exponent: 1.0,
        slow_sidecars: 0.1,
        ..Scenario::segment_base_rates()
    }
}

/// Production traffic through the product's own ingest path (users → sidecars → batches → ledger):
/// healthy canaries, so every abort is a false abort. 1 000 rollouts each by default.
pub fn production() -> Vec<Case> {
    let aa = |id, label, scenario| Case {
        runs: Runs::AA,
        ..case(id, label, scenario)
    };
    vec![
        aa(
            30,
            "(h1) segment mix 5/5/20/10/60 %, base errors 5/3/0.5/1/0.1 %, Zipf users, 100 sidecars",
            production_base(100),
        ),
        aa(
            31,
            "(h2) h1 + 20 % keyless (5 % errors)",
            Scenario {
                keyless: 0.2,
                ..production_base(100)
            },
        ),
        aa(
            32,
            "(h3) h1 + 50 % keyless (5 % errors)",
            Scenario {
                keyless: 0.5,
                ..production_base(100)
            },
        ),
        aa(
            33,
            "(h4) h1 + 3 of the 50 heaviest users fail every request on both versions",
            Scenario {
                failing_clients: 3,
                ..production_base(100)
            },
        ),
        aa(
            34,
            "(h5) h1 + shared 3× slowdown of both versions from mid-phase on",
            Scenario {
                regression: Regression::SharedSlowdown(3.0),
                onset: Onset::MidRandomPhase,
                ..production_base(100)
            },
        ),
        aa(
            35,
            "(h6) h1 + rare 10× slow mode (0.7 % of requests) on both versions",
            Scenario {
                slow_share: 0.007,
                slow_factor: 10.0,
                ..production_base(100)
            },
        ),
        aa(
            36,
            "(h7) everything at once, 1 000 sidecars: h1 + 20 % keyless + 3 failing heavy users + 10× slow mode",
            Scenario {
                keyless: 0.2,
                failing_clients: 3,
                slow_share: 0.007,
                slow_factor: 10.0,
                ..production_base(1_000)
            },
        ),
    ]
}

/// Power on the same production traffic (users, sidecars, ledger).
pub fn production_power() -> Vec<Case> {
    vec![
        case(
            21,
            "crash 50 %, 5 canary req/s, mid-phase (random 1–50 %), 1 000 sidecars, 20 % keyless",
            Scenario {
                canary_rps: Some(5.0),
                max_after_onset_s: Some(600),
                keyless: 0.2,
                ..production_base(1_000).with(Regression::ErrorRate(0.5), Onset::MidRandomPhase)
            },
        ),
        case(
            25,
            "2× errors from the 5 % phase start, segment mix with base rates, 1 000 sidecars",
            Scenario {
                stop_after_phase: Some(1),
                ..production_base(1_000).with(Regression::ErrorMult(2.0), Onset::PhaseStart(1))
            },
        ),
        case(
            26,
            "2× errors from the 5 % phase start, every segment at 1 % errors, 1 000 sidecars",
            Scenario {
                stop_after_phase: Some(1),
                segment_error_rates: Vec::new(),
                ..production_base(1_000).with(Regression::ErrorMult(2.0), Onset::PhaseStart(1))
            },
        ),
        case(
            22,
            "premium only 3× errors from the 5 % phase start, 1 000 sidecars",
            Scenario {
                regression_segment: Some("premium"),
                max_after_onset_s: Some(3_000),
                ..production_base(1_000).with(Regression::ErrorMult(3.0), Onset::PhaseStart(1))
            },
        ),
        case(
            23,
            "2× p99 from mid 25 % phase, 1 000 sidecars",
            Scenario {
                max_after_onset_s: Some(600),
                ..production_base(1_000).with(Regression::TailP99(2.0), Onset::MidPhase(3))
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
