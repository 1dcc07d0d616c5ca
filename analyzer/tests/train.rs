//! The shipped 12-week plan run through the companion on the accelerated plan clock (a wall second is a
//! plan hour; synthetic wall time, so 15 plan weeks take a few seconds), against simulated telemetry
//! from a filter: healthy everywhere, then with ProBFT failing at 5 %. Real controller, real judgment,
//! real SQLite; the train acts only through the controller's commands. Also: a restart in the middle
//! continues the plan where it was.
#![allow(clippy::unwrap_used)]

use dwcp_analyzer::config::Config;
use dwcp_analyzer::controller::Controller;
use dwcp_analyzer::train::{load_plan, TrainHost};
use dwcp_core::decision::Track;
use dwcp_core::histogram::Histogram;
use dwcp_core::shadow::ShadowStats;
use dwcp_core::telemetry::{Batch, Cell};
use dwcp_plan::schedule::planned;
use dwcp_plan::time::WEEK;
use dwcp_plan::train::TrackState;
use dwcp_plan::{Person, Plan};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

const SPEED: f64 = 3600.0; // a wall second is a plan hour
const T0: u64 = 1_800_000_000_000;

fn plan_path() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../plans/dwcp-12-weeks.toml")
}

fn config(db: &Path) -> Config {
    let std = "phase_seconds = 1\nmin_requests = 20\n";
    let mut t = format!("token = \"test-token-1\"\ndb = \"{}\"\n", db.display());
    t.push_str("[[rollout]]\nname = \"manager\"\nphases = [\n");
    for (name, bp, shadow) in [
        ("shadow", 0, true),
        ("1%", 100, false),
        ("5%", 500, false),
        ("10%", 1000, false),
        ("25%", 2500, false),
        ("50%", 5000, false),
        ("75%", 7500, false),
        ("90%", 9000, false),
        ("100%", 10000, false),
    ] {
        t.push_str(&format!("  {{ name = \"{name}\", canary_bp = {bp}, shadow = {shadow}, min_duration_ms = 1000, min_requests = 20 }},\n"));
    }
    t.push_str("]\n");
    for n in ["compression", "probft", "bullshark", "tpbft", "maddpg"] {
        t.push_str(&format!("[[rollout]]\nname = \"{n}\"\n{std}"));
    }
    Config::parse(&t, "train-test.toml").unwrap()
}

/// One filter batch for every live rollout: 4 000 standard-segment requests split by the share the
/// companion serves; ProBFT's canary errs 10 % of the time at 5 % when `fail_probft`.
fn batch(c: &Controller, seq: u64, now: u64, fail_probft: bool) -> Batch {
    let state = c.state();
    let mut b = Batch {
        vm: "vm-1".into(),
        seq,
        state_version: c.version(),
        routing_version: c.version(),
        sent_at_ms: now,
        ..Default::default()
    };
    for (name, rs) in &state.rollouts {
        let share = rs.segments.get("standard").copied().unwrap_or(0) as u64;
        let total = 4_000u64;
        let canary = total * share / 10_000;
        let mut cell = |track, n: u64, errors: u64| {
            if n == 0 {
                return;
            }
            let mut h = Histogram::new();
            h.record_n(1_000, n - n / 10);
            h.record_n(1_500, n / 10);
            b.cells.push(Cell {
                rollout: name.clone(),
                track,
                segment: "standard".into(),
                requests: n,
                errors,
                latency_us: h,
                bucketed: true,
                error_units: Vec::new(),
            });
        };
        let errs = if fail_probft && name == "probft" && rs.phase == "5%" {
            canary / 10
        } else {
            0
        };
        cell(Track::Canary, canary, errs);
        cell(Track::Stable, total - canary, 0);
        if rs.shadow_bp > 0 {
            let mut h = Histogram::new();
            h.record_n(100, 500);
            b.shadow.insert(
                name.clone(),
                ShadowStats {
                    requests: 500,
                    compared: 500,
                    latency_delta_us: h,
                    ..Default::default()
                },
            );
        }
    }
    b
}

struct Run {
    plan: Plan,
    train: BTreeMap<String, dwcp_plan::train::Track>,
    events: Vec<(String, String, u64, String)>, // rollout, kind, plan ms, message
    approvals: usize,
}

fn run(dir: &Path, fail_probft: bool, restart_at_week: Option<u64>) -> Run {
    let db = dir.join("a.db");
    let cfg = config(&db);
    let plan = load_plan(&plan_path()).unwrap();
    let specs: Vec<_> = cfg.rollouts.iter().map(|d| &d.spec).collect();
    dwcp_analyzer::train::check_against(&plan, "plan", &specs).unwrap();
    let mut c = Controller::open(&cfg, T0).unwrap();
    let mut host = TrainHost::open(plan.clone(), &db, SPEED, T0).unwrap();
    let mut now = T0;
    let (mut seq, mut approvals) = (0u64, 0usize);
    let mut restarted = false;
    let end = plan.start_ms + 16 * WEEK;
    while host.now_plan_ms < end {
        now += 1_000;
        seq += 1;
        c.ingest(batch(&c, seq, now, fail_probft), now).unwrap();
        c.tick(now).unwrap();
        host.tick(&mut c, now).unwrap();
        // A person approves what waits for approval (after the train said so).
        let waiting: Vec<String> = host
            .train
            .tracks
            .iter()
            .filter(|(_, t)| t.waiting.contains("plan approve"))
            .map(|(n, _)| n.clone())
            .collect();
        for n in waiting {
            host.command(&mut c, &n, &Person::Approve, "alice", now)
                .unwrap();
            approvals += 1;
        }
        if let Some(w) = restart_at_week {
            if !restarted && host.now_plan_ms >= plan.start_ms + w * WEEK {
                restarted = true;
                let before = host.train.clone();
                let plan_now = host.now_plan_ms;
                drop(host);
                drop(c);
                c = Controller::open(&cfg, now).unwrap();
                host = TrainHost::open(plan.clone(), &db, SPEED, now).unwrap();
                assert_eq!(host.train, before, "the train survives a restart");
                assert_eq!(host.now_plan_ms, plan_now, "the plan clock continues");
            }
        }
        if host
            .train
            .tracks
            .values()
            .all(|t| !matches!(t.state, TrackState::Waiting | TrackState::Running))
        {
            break;
        }
    }
    assert!(restart_at_week.is_none() || restarted);
    let mut events = Vec::new();
    for r in &plan.rollouts {
        for e in c.events(&r.name, 10_000).unwrap() {
            if let Some(pm) = e.event.evidence.get("plan_ms").and_then(|v| v.as_u64()) {
                events.push((
                    r.name.clone(),
                    e.event.kind.as_str().to_string(),
                    pm,
                    e.event.message.clone(),
                ));
            }
        }
    }
    Run {
        plan,
        train: host.train.tracks.clone(),
        events,
        approvals,
    }
}

fn week(plan: &Plan, ms: u64) -> u64 {
    (ms - plan.start_ms) / WEEK + 1
}

#[test]
fn twelve_week_plan_healthy_on_the_accelerated_clock() {
    let d = tempfile::tempdir().unwrap();
    let r = run(d.path(), false, Some(6));
    let plan = &r.plan;
    let p = planned(plan);
    for (name, t) in &r.train {
        assert_eq!(
            t.state,
            TrackState::Done,
            "{name}: {:?} ({})",
            t.state,
            t.waiting
        );
    }
    // Order and weeks: every system starts in its planned week, in the plan's order.
    let started: Vec<(String, u64)> = plan
        .rollouts
        .iter()
        .map(|x| (x.name.clone(), r.train[&x.name].started_ms.unwrap()))
        .collect();
    for (name, at) in &started {
        assert_eq!(
            week(plan, *at),
            week(plan, p[name].phases[0].1.unwrap()),
            "{name} started in another week than planned"
        );
    }
    let weeks: Vec<u64> = started.iter().map(|(_, at)| week(plan, *at)).collect();
    assert_eq!(
        weeks,
        vec![1, 6, 7, 9, 11, 11],
        "Manager → Compression → ProBFT → Bullshark → T-PBFT + MADDPG"
    );
    // Every system starts only after its gates opened.
    for x in &plan.rollouts {
        let at = r.train[&x.name].started_ms.unwrap();
        if let Some(nb) = x.not_before_ms {
            assert!(at >= nb, "{} before its not_before", x.name);
        }
        for g in &x.depends_on {
            let up = &r.train[&g.rollout];
            let idx = plan
                .rollout(&g.rollout)
                .unwrap()
                .phase_index(&g.phase)
                .unwrap();
            let reached = up.reached_ms[idx].unwrap();
            assert!(
                at >= reached + g.held_ms,
                "{} started before {} held {} for {} ms",
                x.name,
                g.rollout,
                g.phase,
                g.held_ms
            );
        }
    }
    // Freezes hold: nothing started or promoted inside one; and the freeze did delay something.
    let f = &plan.freezes[0];
    for (name, kind, at, msg) in &r.events {
        if kind == "train_started" || kind == "train_promoted" {
            assert!(
                !(f.from_ms..f.until_ms).contains(at),
                "{name}: {msg} inside the freeze"
            );
        }
    }
    assert!(
        r.events.iter().any(|(_, k, at, _)| k == "train_promoted"
            && *at >= f.until_ms
            && *at < f.until_ms + 2 * 3_600_000),
        "a promotion waited for the end of the freeze"
    );
    // Approvals: the companion waited and said so before a person approved.
    assert!(r.approvals >= 6, "{} approvals", r.approvals);
    let asked = r
        .events
        .iter()
        .filter(|(_, k, _, _)| k == "train_approval_needed")
        .count();
    assert_eq!(asked, r.approvals, "every approval was asked for first");
    assert_eq!(week(plan, r.train["manager"].finished_ms.unwrap()), 13);
}

#[test]
fn probft_failing_at_5_percent_holds_its_dependents() {
    let d = tempfile::tempdir().unwrap();
    let r = run(d.path(), true, None);
    let TrackState::RolledBack { reason } = &r.train["probft"].state else {
        panic!("probft is {:?}", r.train["probft"].state)
    };
    assert!(!reason.is_empty());
    let rb = r
        .events
        .iter()
        .find(|(n, k, _, _)| n == "probft" && k == "train_rolled_back")
        .unwrap();
    assert!(rb.3.contains("probft rolled back"), "{}", rb.3);
    for d in ["bullshark", "tpbft", "maddpg"] {
        let TrackState::Paused { reason: why } = &r.train[d].state else {
            panic!("{d} is {:?}", r.train[d].state)
        };
        assert!(
            why.starts_with("probft rolled back: ") && why.len() > 20,
            "{d}: {why}"
        );
        assert!(r.train[d].started_ms.is_none(), "{d} never started");
        assert!(r
            .events
            .iter()
            .any(|(n, k, _, m)| n == d && k == "train_paused" && m.contains("probft rolled back")));
    }
    assert_eq!(
        r.train["manager"].state,
        TrackState::Done,
        "{}",
        r.train["manager"].waiting
    );
    assert_eq!(r.train["compression"].state, TrackState::Done);
}

/// Nobody approves the Manager out of shadow: Compression's gate (Manager held 25 % for a week) never
/// opens, so once its planned start has passed `/metrics` says by how much, and the train-state series
/// say who waits and who runs.
#[test]
fn a_gate_past_its_planned_start_shows_in_metrics() {
    let d = tempfile::tempdir().unwrap();
    let db = d.path().join("a.db");
    let cfg = config(&db);
    let plan = load_plan(&plan_path()).unwrap();
    let planned_start = planned(&plan)["compression"].phases[0].1.unwrap();
    let mut c = Controller::open(&cfg, T0).unwrap();
    let mut host = TrainHost::open(plan.clone(), &db, SPEED, T0).unwrap();
    let mut now = T0;
    let overdue = |host: &TrainHost| -> f64 {
        let text = dwcp_analyzer::metrics::render_train(Some(host));
        let line = text
            .lines()
            .find(|l| l.starts_with("dwcp_train_gate_overdue_seconds{rollout=\"compression\"}"))
            .unwrap_or_else(|| panic!("no compression line in\n{text}"));
        line.rsplit(' ').next().unwrap().parse().unwrap()
    };
    let mut seq = 0;
    loop {
        now += 60_000; // 60 plan hours
        seq += 1;
        c.ingest(batch(&c, seq, now, false), now).unwrap();
        c.tick(now).unwrap();
        host.tick(&mut c, now).unwrap();
        if host.now_plan_ms > planned_start {
            break;
        }
        assert_eq!(overdue(&host), 0.0, "not overdue before its planned start");
    }
    let late_s = (host.now_plan_ms - planned_start) as f64 / 1000.0;
    assert!(late_s > 0.0);
    assert_eq!(overdue(&host), late_s);
    let text = dwcp_analyzer::metrics::render_train(Some(&host));
    assert!(text.contains("dwcp_train_rollout_state{rollout=\"compression\",state=\"waiting\"} 1"));
    assert!(text.contains("dwcp_train_rollout_state{rollout=\"manager\",state=\"running\"} 1"));
    assert!(text.contains("dwcp_train_freeze_active 0"));
    // Without a plan: the HELP/TYPE lines only (the names list and the scrape agree on every stack).
    let none = dwcp_analyzer::metrics::render_train(None);
    assert!(none.contains("# TYPE dwcp_train_gate_overdue_seconds gauge"));
    assert!(!none.lines().any(|l| l.starts_with("dwcp_train")));
}
