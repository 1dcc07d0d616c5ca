//! Runs freeze their guardrails; a resume after a rollback is a new run with its own α, recorded in the
//! event; per-segment verdicts.

use super::*;

fn cmd(c: Command) -> Input {
    Input::Command {
        command: c,
        actor: "alice".into(),
    }
}

#[test]
fn alpha_is_frozen_per_run_and_a_resume_is_a_new_run() {
    let mut r = Rollout::new(RolloutSpec::default_for("checkout"));
    let started = r.step(cmd(Command::Start), 5);
    assert_eq!(started[0].evidence["run"], 1);
    assert_eq!(started[0].evidence["alpha"], 0.01);
    assert!(
        started[0].message.contains("run 1"),
        "{}",
        started[0].message
    );
    // The config changes under the running rollout (the companion reconciles specs on restart).
    r.spec.guardrails.alpha = 0.2;
    assert_eq!(
        r.guardrails().alpha,
        0.01,
        "the run keeps the α it started with"
    );
    r.step(cmd(Command::Abort), 10);
    assert_eq!(r.status, Status::RolledBack);
    let resumed = r.step(cmd(Command::Resume), 20);
    assert_eq!(resumed[0].kind, EventKind::Resumed);
    assert_eq!(resumed[0].evidence["run"], 2);
    assert_eq!(
        resumed[0].evidence["alpha"], 0.2,
        "the new run froze the spec's α then"
    );
    assert_eq!(r.run.number, 2);
    assert_eq!(r.run.started_ms, 20);
    assert_eq!(r.guardrails().alpha, 0.2);
    // The error split of the audit record is the judge's.
    let split = resumed[0].evidence["alpha_split"]["errors"]
        .as_f64()
        .unwrap();
    assert!((split - 0.2 * judge::ALPHA_ERRORS).abs() < 1e-12);
}

#[test]
fn a_rollout_stored_before_runs_is_judged_with_its_spec() {
    let mut r = Rollout::new(RolloutSpec::default_for("checkout"));
    r.step(cmd(Command::Start), 0);
    let mut v = serde_json::to_value(&r).unwrap();
    v.as_object_mut().unwrap().remove("run");
    let mut back: Rollout = serde_json::from_value(v).unwrap();
    assert_eq!(back.run.number, 0);
    back.spec.guardrails.alpha = 0.03;
    assert_eq!(back.guardrails().alpha, 0.03);
}

#[test]
fn segment_verdicts_say_untested_ok_and_excess() {
    let mut r = Rollout::new(RolloutSpec::default_for("checkout"));
    r.step(cmd(Command::Start), 0);
    r.step(cmd(Command::Promote), 0); // 1 %: internal/beta at 100 %, premium 10 %, standard 1 %
    let seg = |share_bp, s_err, c_err| SegmentWindow {
        share_bp,
        stable: TrackAgg {
            requests: 1_000,
            errors: s_err,
            ..Default::default()
        },
        canary: TrackAgg {
            requests: 100,
            errors: c_err,
            ..Default::default()
        },
        error_units: None,
    };
    for i in 1..=5 {
        let mut w = Window {
            current_phase: true,
            ..Default::default()
        };
        w.segments.insert("internal".into(), seg(10_000, 0, 9));
        w.segments.insert("premium".into(), seg(1_000, 10, 8));
        w.segments.insert("standard".into(), seg(100, 10, 0));
        r.step(Input::Window(w), i * 1000);
    }
    let v = r.segment_verdicts();
    let get = |n: &str| v.iter().find(|s| s.segment == n).unwrap();
    assert_eq!(get("internal").state, "untested");
    assert_eq!(get("internal").untested_requests, 5 * 1_100);
    assert_eq!(get("beta").state, "untested");
    let p = get("premium");
    assert_eq!((p.state.as_str(), p.share_bp), ("excess", 1_000));
    assert_eq!((p.errors, p.canary_errors), (90, 40));
    assert!((p.expected_canary_errors - 9.0).abs() < 1e-9);
    assert_eq!(get("standard").state, "ok");
}
