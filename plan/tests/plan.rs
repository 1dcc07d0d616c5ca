//! The plan format, the shipped 12-week plan's planned timeline, the train's rules, and a property:
//! in any plan, nothing starts before its gates open and nothing starts or is promoted in a freeze.

#![allow(clippy::unwrap_used, clippy::panic)] // test helpers: a failed unwrap is a failed test
use dwcp_plan::schedule::planned;
use dwcp_plan::time::{DAY, WEEK};
use dwcp_plan::train::{ObservedStatus, TrackState};
use dwcp_plan::{parse, Observed, Person, Plan, Train};
use proptest::prelude::*;
use std::collections::BTreeMap;

fn shipped() -> (String, Plan) {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../plans/dwcp-12-weeks.toml");
    let text = std::fs::read_to_string(path).unwrap();
    let plan = parse(&text).unwrap();
    (text, plan)
}

/// Week number (1-based) of a plan instant.
fn week(plan: &Plan, ms: u64) -> u64 {
    (ms - plan.start_ms) / WEEK + 1
}

#[test]
fn shipped_plan_weeks_match_the_table() {
    let (_, plan) = shipped();
    let p = planned(&plan);
    let start = |n: &str| week(&plan, p[n].phases[0].1.unwrap());
    let done = |n: &str| week(&plan, p[n].done_ms.unwrap());
    assert_eq!(
        [
            start("manager"),
            start("compression"),
            start("probft"),
            start("bullshark"),
            start("tpbft"),
            start("maddpg")
        ],
        [1, 6, 7, 9, 11, 11],
        "every system joins in the week of the table"
    );
    let at = |n: &str, ph: &str| {
        week(
            &plan,
            p[n].phases
                .iter()
                .find(|(x, _)| x == ph)
                .unwrap()
                .1
                .unwrap(),
        )
    };
    assert_eq!(
        [
            at("manager", "5%"),
            at("manager", "25%"),
            at("manager", "50%"),
            at("manager", "75%"),
            at("manager", "90%")
        ],
        [3, 5, 7, 9, 11]
    );
    assert_eq!(done("manager"), 13, "full production in week 13");
    assert!(
        done("tpbft") <= 15 && done("maddpg") <= 15,
        "everything by week 15"
    );
    // Nothing reached inside the freeze.
    let f = &plan.freezes[0];
    for (name, pl) in &p {
        for (ph, at) in &pl.phases {
            let at = at.unwrap();
            assert!(
                !(f.from_ms..f.until_ms).contains(&at),
                "{name} {ph} planned inside the freeze"
            );
        }
    }
    // The Manager's 90 % → 100 % falls on the freeze's first day: it waits for the freeze to end.
    assert_eq!(p["manager"].done_ms, Some(f.until_ms));
}

#[test]
fn malformed_plans_name_line_and_field() {
    let (text, _) = shipped();
    let cases: Vec<(String, usize, &str)> = vec![
        (
            text.replacen("hold = \"14d\"", "hold = \"14 days\"", 1),
            0,
            "rollout \"manager\".phases[0].hold",
        ),
        (
            text.replacen(
                "phase = \"25%\", held = \"7d\"",
                "phase = \"30%\", held = \"7d\"",
                1,
            ),
            0,
            "rollout \"compression\".depends_on[0].phase",
        ),
        (
            text.replacen(
                "rollout = \"manager\", phase = \"25%\"",
                "rollout = \"nobody\", phase = \"25%\"",
                1,
            ),
            0,
            "depends_on[0].rollout",
        ),
        (
            text.replacen(
                "until = 2027-04-01T00:00:00Z",
                "until = 2027-03-01T00:00:00Z",
                1,
            ),
            0,
            "freeze[0].until",
        ),
        (
            text.replacen(
                "start = 2027-01-04T00:00:00Z",
                "start = 2027-01-04T00:00:00",
                1,
            ),
            0,
            "plan.start",
        ),
        (
            text.replacen(
                "rollback_target = \"2m\"\nphases",
                "rollback_target = \"2m\"\nflavour = 1\nphases",
                1,
            ),
            0,
            "flavour",
        ),
        (
            text.replacen(
                "title = \"DWCP Manager\"",
                "title = \"DWCP Manager\"\ndepends_on = [{ rollout = \"maddpg\", phase = \"5%\" }]",
                1,
            ),
            0,
            "dependency cycle",
        ),
    ];
    for (bad, _, field) in cases {
        let e = parse(&bad).unwrap_err();
        let msg = e.to_string();
        assert!(msg.contains(field), "{msg:?} does not name {field:?}");
        // The line named holds the offending text (or starts the table it is in).
        let line = bad.lines().nth(e.line() - 1).unwrap_or("");
        assert!(
            e.line() > 1 && !line.trim().is_empty(),
            "{msg}: line {} is {line:?}",
            e.line()
        );
    }
    let e = parse(&text.replacen("hold = \"14d\"", "hold = \"14 days\"", 1)).unwrap_err();
    assert!(
        text.lines()
            .nth(e.line() - 1)
            .unwrap()
            .contains("name = \"shadow\", hold"),
        "{e}"
    );
}

fn obs_for(plan: &Plan, train: &Train, fail: &[&str]) -> BTreeMap<String, Observed> {
    plan.rollouts
        .iter()
        .map(|r| {
            let t = &train.tracks[&r.name];
            let status = match &t.state {
                _ if fail.contains(&r.name.as_str()) && t.phase.is_some() => {
                    ObservedStatus::RolledBack
                }
                TrackState::RolledBack { .. } => ObservedStatus::RolledBack,
                _ if t.phase.is_some() => ObservedStatus::Paused,
                _ => ObservedStatus::Pending,
            };
            let phase = t
                .phase
                .map_or("pending".into(), |p| r.phases[p].name.clone());
            (
                r.name.clone(),
                Observed {
                    status,
                    phase,
                    judge_pass: true,
                    reason: if fail.contains(&r.name.as_str()) {
                        "error rate 4.0× stable".into()
                    } else {
                        String::new()
                    },
                    canary_requests: 5000,
                    canary_errors: 0,
                    p99_ratio: Some(1.1),
                },
            )
        })
        .collect()
}

#[test]
fn rollback_pauses_dependents_with_the_reason_and_others_carry_on() {
    let (_, plan) = shipped();
    let mut train = Train::new(&plan);
    let mut now = plan.start_ms;
    let mut probft_failed = false;
    while now < plan.start_ms + 20 * WEEK {
        let at5 = train.tracks["probft"].phase == Some(2);
        let fail: Vec<&str> = if at5 || probft_failed {
            vec!["probft"]
        } else {
            vec![]
        };
        probft_failed |= at5;
        train.step(&plan, &obs_for(&plan, &train, &fail), now);
        let names: Vec<String> = train.tracks.keys().cloned().collect();
        for n in names {
            let _ = train.command(&plan, &n, &Person::Approve, "alice", now);
        }
        if probft_failed {
            break;
        }
        now += DAY / 4;
    }
    assert!(probft_failed, "ProBFT reached 5 %");
    for _ in 0..(60 * 4) {
        now += DAY / 4;
        let out = train.step(&plan, &obs_for(&plan, &train, &["probft"]), now);
        assert!(out.events.iter().all(|e| !["bullshark", "tpbft", "maddpg"]
            .contains(&e.rollout.as_str())
            || e.kind == "train_paused"));
        let names: Vec<String> = train.tracks.keys().cloned().collect();
        for n in names {
            let _ = train.command(&plan, &n, &Person::Approve, "alice", now);
        }
    }
    assert!(
        matches!(&train.tracks["probft"].state, TrackState::RolledBack { reason } if reason.contains("4.0×"))
    );
    for d in ["bullshark", "tpbft", "maddpg"] {
        let TrackState::Paused { reason } = &train.tracks[d].state else {
            panic!("{d} is {:?}", train.tracks[d].state)
        };
        assert!(
            reason.contains("probft rolled back") && reason.contains("4.0×"),
            "{d}: {reason}"
        );
        assert_eq!(train.tracks[d].phase, None, "{d} never started");
    }
    assert_eq!(train.tracks["manager"].state, TrackState::Done);
    assert_eq!(train.tracks["compression"].state, TrackState::Done);
}

#[test]
fn approve_hold_release_skip() {
    let (_, plan) = shipped();
    let mut train = Train::new(&plan);
    let now = plan.start_ms;
    train.step(&plan, &obs_for(&plan, &train, &[]), now);
    let later = now + 15 * DAY;
    let out = train.step(&plan, &obs_for(&plan, &train, &[]), later);
    assert!(out.actions.is_empty(), "shadow → 1 % waits for a person");
    assert!(out.events.iter().any(|e| e.kind == "train_approval_needed"));
    assert!(
        train.tracks["manager"]
            .waiting
            .contains("plan approve manager"),
        "{}",
        train.tracks["manager"].waiting
    );
    assert!(
        train
            .command(&plan, "compression", &Person::Approve, "alice", later)
            .is_err(),
        "nothing to approve"
    );
    train
        .command(
            &plan,
            "manager",
            &Person::Hold {
                reason: "incident".into(),
            },
            "bob",
            later,
        )
        .unwrap();
    train
        .command(&plan, "manager", &Person::Approve, "alice", later)
        .unwrap_err();
    train
        .command(&plan, "manager", &Person::Release, "bob", later)
        .unwrap();
    train
        .command(&plan, "manager", &Person::Approve, "alice", later)
        .unwrap();
    let out = train.step(&plan, &obs_for(&plan, &train, &[]), later + 1);
    assert_eq!(out.actions.len(), 1, "{out:?}");
    // Skipping opens the gates that wait on it.
    train
        .command(&plan, "manager", &Person::Skip, "carol", later + 2)
        .unwrap();
    let out = train.step(&plan, &obs_for(&plan, &train, &[]), later + 3);
    assert!(
        out.actions.iter().any(
            |a| matches!(a, dwcp_plan::Action::Start { rollout, .. } if rollout == "compression")
        ),
        "{out:?}"
    );
}

fn chain_plan(holds: &[u64], held: &[u64], freeze: (u64, u64)) -> String {
    let mut s = format!(
        "[plan]\nname = \"p\"\nstart = 2027-01-04T00:00:00Z\n[[freeze]]\nname = \"f\"\nfrom = 2027-01-{:02}T00:00:00Z\nuntil = 2027-01-{:02}T00:00:00Z\n",
        5 + freeze.0, 5 + freeze.0 + freeze.1
    );
    for (i, h) in holds.iter().enumerate() {
        s.push_str(&format!(
            "[[rollout]]\nname = \"r{i}\"\nrollback_target = \"2m\"\n"
        ));
        if i > 0 {
            s.push_str(&format!(
                "depends_on = [{{ rollout = \"r{}\", phase = \"b\", held = \"{}h\" }}]\n",
                i - 1,
                held[i]
            ));
        }
        s.push_str(&format!("phases = [{{ name = \"a\", hold = \"{h}h\" }}, {{ name = \"b\", hold = \"{h}h\" }}, {{ name = \"c\" }}]\n"));
    }
    s
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]
    #[test]
    fn gates_and_freezes_hold_in_any_plan(
        holds in prop::collection::vec(1u64..100, 1..5),
        held in prop::collection::vec(0u64..100, 5),
        freeze in (0u64..10, 1u64..5),
    ) {
        let plan = parse(&chain_plan(&holds, &held, freeze)).unwrap();
        let p = planned(&plan);
        let f = &plan.freezes[0];
        for (i, r) in plan.rollouts.iter().enumerate() {
            let pl = &p[&r.name];
            for (_, at) in &pl.phases {
                let at = at.unwrap();
                prop_assert!(!(f.from_ms..f.until_ms).contains(&at));
            }
            if i > 0 {
                let up = &p[&format!("r{}", i - 1)];
                let gate_open = up.phases[1].1.unwrap() + held[i] * 3_600_000;
                prop_assert!(pl.phases[0].1.unwrap() >= gate_open, "r{i} started before its gate opened");
            }
            for k in 1..pl.phases.len() {
                prop_assert!(pl.phases[k].1.unwrap() >= pl.phases[k - 1].1.unwrap() + holds[i] * 3_600_000);
            }
        }
    }
}
