use super::*;
use crate::signals::Trigger;

fn spec() -> RolloutSpec {
    let mut s = RolloutSpec::default_for("checkout");
    for p in &mut s.phases {
        p.min_duration_ms = p.min_duration_ms.min(10_000);
        p.min_requests = p.min_requests.min(300);
    }
    s
}

fn agg(requests: u64, errors: u64, latency_us: u64) -> TrackAgg {
    let mut t = TrackAgg {
        requests,
        errors,
        ..Default::default()
    };
    t.latency_us.record_n(latency_us, requests);
    t
}

fn window(stable: (u64, u64, u64), canary: (u64, u64, u64)) -> Window {
    Window {
        stable: agg(stable.0, stable.1, stable.2),
        canary: agg(canary.0, canary.1, canary.2),
        expected_canary: canary.0 as f64,
        current_phase: true,
        shadow: ShadowAgg::default(),
        segments: Default::default(),
        unbucketed: Default::default(),
    }
}

fn cmd(c: Command) -> Input {
    Input::Command {
        command: c,
        actor: "alice".into(),
    }
}

fn started() -> Rollout {
    let mut r = Rollout::new(spec());
    r.step(cmd(Command::Start), 0);
    r
}

#[test]
fn command_table() {
    use Status::*;
    let cases = [
        ("start pending", Pending, Command::Start, Running, "started"),
        ("pause running", Running, Command::Pause, Paused, "paused"),
        ("resume paused", Paused, Command::Resume, Running, "resumed"),
        (
            "abort running",
            Running,
            Command::Abort,
            RolledBack,
            "rolled_back",
        ),
        (
            "resume rolled back restarts",
            RolledBack,
            Command::Resume,
            Running,
            "resumed",
        ),
        (
            "pause pending rejected",
            Pending,
            Command::Pause,
            Pending,
            "command_rejected",
        ),
        (
            "resume running rejected",
            Running,
            Command::Resume,
            Running,
            "command_rejected",
        ),
        (
            "abort rolled back rejected",
            RolledBack,
            Command::Abort,
            RolledBack,
            "command_rejected",
        ),
    ];
    for (desc, from, c, to, kind) in cases {
        let mut r = Rollout::new(spec());
        match from {
            Pending => {}
            Running => {
                r.step(cmd(Command::Start), 0);
            }
            Paused => {
                r.step(cmd(Command::Start), 0);
                r.step(cmd(Command::Pause), 0);
            }
            RolledBack => {
                r.step(cmd(Command::Start), 0);
                r.step(cmd(Command::Abort), 0);
            }
            _ => unreachable!(),
        }
        let ev = r.step(cmd(c), 1);
        assert_eq!(r.status, to, "{desc}");
        assert_eq!(ev[0].kind.as_str(), kind, "{desc}");
        assert_eq!(
            ev[0].actor.as_deref(),
            Some("alice"),
            "{desc}: who is recorded"
        );
    }
}

#[test]
fn shares_follow_segment_policy() {
    let mut r = started();
    assert_eq!(r.shares()["standard"], 0, "shadow phase routes nobody");
    assert_eq!(r.shadow_bp(), 10_000);
    r.step(cmd(Command::Promote), 0); // 1 %
    let s = r.shares();
    assert_eq!(
        (
            s["internal"],
            s["beta"],
            s["premium"],
            s["enterprise"],
            s["standard"]
        ),
        (10_000, 10_000, 1_000, 100, 100)
    );
    r.step(cmd(Command::Promote), 0); // 5 %
    r.step(cmd(Command::Promote), 0); // 10 %
    let s = r.shares();
    assert_eq!(
        (s["premium"], s["enterprise"], s["standard"]),
        (1_000, 500, 1_000)
    );
    r.step(cmd(Command::Promote), 0); // 25
    r.step(cmd(Command::Promote), 0); // 50
    assert_eq!(r.shares()["enterprise"], 5_000);
    r.step(cmd(Command::Abort), 0);
    assert!(
        r.shares().values().all(|v| *v == 0),
        "rolled back routes nobody"
    );
}

#[test]
fn healthy_canary_climbs_the_ladder_on_ticks() {
    let mut r = started();
    r.step(cmd(Command::Promote), 0); // skip shadow: no shadow telemetry in this test
    let mut now = 0;
    for _ in 0..2_000 {
        now += 1_000;
        r.step(
            Input::Window(window((400, 4, 20_000), (100, 1, 20_000))),
            now,
        );
        r.step(Input::Tick, now);
        if r.status == Status::Succeeded {
            break;
        }
    }
    assert_eq!(r.status, Status::Succeeded, "verdict {:?}", r.last_verdict);
    assert_eq!(r.phase_name(), "100%");
}

#[test]
fn phase_holds_below_minimum_sample_and_duration() {
    let mut r = started();
    r.step(cmd(Command::Promote), 0);
    r.step(Input::Window(window((100, 1, 1000), (10, 0, 1000))), 20_000);
    assert!(r.step(Input::Tick, 20_000).is_empty());
    assert_eq!(r.phase_name(), "1%");
    assert_eq!(
        r.last_verdict.as_ref().unwrap().outcome,
        Outcome::Inconclusive
    );
}

#[test]
fn crash_rolls_back_with_evidence() {
    let mut r = started();
    r.step(cmd(Command::Promote), 0);
    let mut out = Vec::new();
    for i in 1..=10 {
        out = r.step(Input::Window(window((95, 1, 1000), (5, 3, 1000))), i * 1000);
        if !out.is_empty() {
            break;
        }
    }
    assert_eq!(r.status, Status::RolledBack);
    let e = &out[0];
    assert_eq!(e.kind, EventKind::RolledBack);
    let v = e.verdict.as_ref().unwrap();
    assert_eq!(v.trigger, "1:error_rate");
    assert!(v.statistic > 1.5);
    assert!(!e.evidence["last_windows"].as_array().unwrap().is_empty());
    assert!(
        r.decided_at_ms.unwrap() <= 5_000,
        "decided at {:?}",
        r.decided_at_ms
    );
}

#[test]
fn latency_regression_rolls_back() {
    let mut r = started();
    r.step(cmd(Command::Promote), 0);
    for i in 1..=200 {
        if !r
            .step(
                Input::Window(window((500, 0, 20_000), (50, 0, 60_000))),
                i * 1000,
            )
            .is_empty()
        {
            break;
        }
    }
    assert_eq!(r.status, Status::RolledBack);
    let t = &r.last_verdict.as_ref().unwrap().trigger;
    assert!(t.starts_with("2:"), "{t}");
}

#[test]
fn engine_trigger_rolls_back_immediately() {
    let mut r = started();
    let ev = r.step(
        Input::EngineTrigger {
            trigger: Trigger::ByzantineAttack,
            detail: serde_json::json!({"node": 3}),
        },
        5,
    );
    assert_eq!(r.status, Status::RolledBack);
    assert_eq!(ev[0].evidence["engine_event"]["node"], 3);
    let v = ev[0].verdict.as_ref().unwrap();
    assert_eq!(v.trigger, "5:ByzantineAttack");
    assert_eq!(v.reason, "engine trigger 5 (ByzantineAttack) fired");
}

#[test]
fn state_round_trips_through_json() {
    let mut r = started();
    r.step(Input::Window(window((100, 1, 1000), (10, 0, 1000))), 1);
    let back: Rollout = serde_json::from_str(&serde_json::to_string(&r).unwrap()).unwrap();
    assert_eq!(back, r);
}

#[test]
fn verdict_names_the_samples_behind_it_even_right_after_a_promotion() {
    let mut r = started();
    r.step(cmd(Command::Promote), 0);
    r.step(cmd(Command::Promote), 0);
    let mut out = Vec::new();
    for i in 1..=10 {
        // Windows still routed under the previous phase: not counted in the new phase's totals.
        let mut w = window((95, 1, 1000), (5, 3, 1000));
        w.current_phase = false;
        out = r.step(Input::Window(w), i * 1000);
        if !out.is_empty() {
            break;
        }
    }
    let v = out[0].verdict.as_ref().expect("rolled back");
    assert_eq!(r.phase_canary.requests, 0);
    assert!(v.canary_n > 0 && v.stable_n > 0, "{v:?}");
}

/// A live phase with a sampled shadow (`shadow_sample_bp`): the filters keep mirroring that share, and
/// mismatches over noise still fail the rollout; without the sample nothing is mirrored after shadow.
#[test]
fn sampled_shadow_in_live_phases_is_judged() {
    let mut s = spec();
    for p in s.phases.iter_mut().filter(|p| !p.shadow) {
        p.shadow_sample_bp = 1_000;
    }
    let mut r = Rollout::new(s);
    r.step(cmd(Command::Start), 0);
    r.step(cmd(Command::Promote), 0); // 1 %
    assert_eq!(r.shadow_bp(), 1_000);
    assert_eq!(started().shadow_bp(), 10_000);
    let mut plain = started();
    plain.step(cmd(Command::Promote), 0);
    assert_eq!(plain.shadow_bp(), 0);
    let mut now = 0;
    for _ in 0..200 {
        now += 1_000;
        let mut w = window((400, 4, 20_000), (4, 0, 20_000));
        // 30 % of the sampled comparisons differ, none of it noise.
        w.shadow = ShadowAgg {
            compared: 40,
            mismatches: 12,
            ..Default::default()
        };
        w.shadow.latency_delta_us.record_n(1, 40);
        r.step(Input::Window(w), now);
        r.step(Input::Tick, now);
        if r.status == Status::RolledBack {
            break;
        }
    }
    assert_eq!(r.status, Status::RolledBack, "{:?}", r.last_verdict);
    let why = format!("{:?}", r.last_verdict);
    assert!(why.contains("shadow:mismatch"), "{why}");
    assert_eq!(r.shadow_bp(), 0, "a rolled-back rollout mirrors nothing");
}
