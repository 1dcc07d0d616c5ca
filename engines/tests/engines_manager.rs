//! DWCP Manager tests: breaker transition table, single-flight recovery, registry order and
//! clean-up, degradation levels, and the property that a breaker never stays shut without failures.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::{Arc, Mutex};

use dwcp_core::signals::{EngineEvent, Trigger, TriggerWindow};
use dwcp_engines::manager::*;
use proptest::prelude::*;

#[derive(Clone, Copy, Debug)]
enum Op {
    Ok,
    Fail,
    /// Acquire; `Some(ok)` records the outcome, `None` loses the permit.
    Call(Option<bool>),
    Wait(u64),
}

/// Run `ops` on a default breaker from t = 0; returns (state, rejected calls).
fn drive(b: &mut CircuitBreaker, now: &mut u64, ops: &[Op]) -> usize {
    let mut rejected = 0;
    for op in ops {
        match *op {
            Op::Wait(ms) => *now += ms,
            Op::Ok | Op::Fail | Op::Call(_) => {
                let outcome = match op {
                    Op::Ok => Some(true),
                    Op::Fail => Some(false),
                    Op::Call(o) => *o,
                    Op::Wait(_) => None,
                };
                match b.acquire(*now) {
                    Ok(p) => {
                        if let Some(ok) = outcome {
                            b.record(*now, p, ok);
                        }
                    }
                    Err(_) => rejected += 1,
                }
            }
        }
    }
    rejected
}

#[test]
fn breaker_transition_table() {
    use BreakerState::*;
    use Op::*;
    let alternating: Vec<Op> = (0..20)
        .map(|i| if i % 2 == 1 { Fail } else { Ok })
        .collect();
    let cases: Vec<(&str, Vec<Op>, BreakerState, usize)> = vec![
        (
            "4 consecutive failures stay closed",
            vec![Fail; 4],
            Closed,
            0,
        ),
        ("5 consecutive failures open", vec![Fail; 5], Open, 0),
        (
            "a success resets the streak",
            [vec![Fail; 4], vec![Ok], vec![Fail; 4]].concat(),
            Closed,
            0,
        ),
        (
            "50 % of a full window of 20 opens",
            alternating.clone(),
            Open,
            0,
        ),
        (
            "49 % never trips the ratio",
            [vec![Ok; 11], [Fail, Ok].repeat(4), vec![Fail]].concat(),
            Closed,
            0,
        ),
        (
            "open rejects before 30 s",
            [vec![Fail; 5], vec![Wait(29_999), Ok]].concat(),
            Open,
            1,
        ),
        (
            "after 30 s a probe half-opens",
            [vec![Fail; 5], vec![Wait(30_000), Ok]].concat(),
            HalfOpen,
            0,
        ),
        (
            "two probe successes close",
            [vec![Fail; 5], vec![Wait(30_000), Ok, Ok]].concat(),
            Closed,
            0,
        ),
        (
            "a probe failure re-opens",
            [vec![Fail; 5], vec![Wait(30_000), Ok, Fail]].concat(),
            Open,
            0,
        ),
        (
            "at most 3 probes in flight",
            [
                vec![Fail; 5],
                vec![Wait(30_000), Call(None), Call(None), Call(None), Call(None)],
            ]
            .concat(),
            HalfOpen,
            1,
        ),
        (
            "lost probes expire after the open time",
            [
                vec![Fail; 5],
                vec![
                    Wait(30_000),
                    Call(None),
                    Call(None),
                    Call(None),
                    Wait(30_000),
                    Ok,
                    Ok,
                ],
            ]
            .concat(),
            Closed,
            0,
        ),
    ];
    for (desc, ops, want, want_rejected) in cases {
        let mut b = CircuitBreaker::new(BreakerConfig::default());
        let mut now = 0;
        let rejected = drive(&mut b, &mut now, &ops);
        assert_eq!((b.state(), rejected), (want, want_rejected), "{desc}");
    }
}

#[test]
fn stale_permits_do_not_count_as_probes_and_reset_closes() {
    let mut b = CircuitBreaker::new(BreakerConfig::default());
    let old = b.acquire(0).unwrap();
    let mut now = 0;
    drive(&mut b, &mut now, &[Op::Fail; 5]);
    let probe = b.acquire(30_000).unwrap();
    b.record(30_000, old, true);
    b.record(30_000, old, true);
    assert_eq!(
        b.state(),
        BreakerState::HalfOpen,
        "a pre-open permit is not a probe"
    );
    b.record(30_001, probe, false);
    assert_eq!(b.state(), BreakerState::Open);
    b.reset(30_002);
    assert_eq!(b.state(), BreakerState::Closed);
    let kinds: Vec<(BreakerState, BreakerState)> = b
        .drain_transitions()
        .iter()
        .map(|t| (t.from, t.to))
        .collect();
    use BreakerState::*;
    assert_eq!(
        kinds,
        vec![
            (Closed, Open),
            (Open, HalfOpen),
            (HalfOpen, Open),
            (Open, Closed)
        ]
    );
}

fn op_strategy() -> impl Strategy<Value = Op> {
    prop_oneof![
        Just(Op::Ok),
        Just(Op::Fail),
        Just(Op::Call(None)),
        (0u64..40_000).prop_map(Op::Wait),
    ]
}

proptest! {
    /// Whatever happened before, once failures stop the breaker is closed again after the open
    /// time plus at most `half_open_probes` successful calls.
    #[test]
    fn breaker_never_stays_shut_without_failures(ops in proptest::collection::vec(op_strategy(), 0..200)) {
        let cfg = BreakerConfig::default();
        let mut b = CircuitBreaker::new(cfg);
        let mut now = 0;
        drive(&mut b, &mut now, &ops);
        now += cfg.open_ms;
        for _ in 0..cfg.half_open_probes {
            drive(&mut b, &mut now, &[Op::Ok]);
        }
        prop_assert_eq!(b.state(), BreakerState::Closed);
    }
}

/// A component whose health and start results are scripted.
#[derive(Clone, Default)]
struct Fake {
    log: Arc<Mutex<Vec<String>>>,
    name: String,
    healthy: Arc<Mutex<bool>>,
    fail_start: bool,
    memory: u64,
}

impl Component for Fake {
    fn start(&mut self, _now: u64) -> Result<(), String> {
        self.log
            .lock()
            .unwrap()
            .push(format!("start {}", self.name));
        if self.fail_start {
            Err("boom".into())
        } else {
            Ok(())
        }
    }
    fn stop(&mut self, _now: u64) {
        self.log.lock().unwrap().push(format!("stop {}", self.name));
    }
    fn health(&mut self, _now: u64) -> Health {
        Health {
            healthy: *self.healthy.lock().unwrap(),
            detail: String::new(),
            memory_bytes: self.memory,
        }
    }
}

fn fake(log: &Arc<Mutex<Vec<String>>>, name: &str, fail_start: bool) -> Fake {
    Fake {
        log: log.clone(),
        name: name.into(),
        healthy: Arc::new(Mutex::new(true)),
        fail_start,
        memory: 10,
    }
}

fn spec(name: &str, deps: &[&str]) -> ComponentSpec {
    ComponentSpec {
        name: name.into(),
        deps: deps.iter().map(|d| d.to_string()).collect(),
        critical: false,
    }
}

#[test]
fn registry_starts_in_dependency_order_and_cleans_up_a_failed_start() {
    let log = Arc::new(Mutex::new(Vec::new()));
    let mut m = Manager::new(ManagerConfig::default(), 1);
    m.register(
        spec("api", &["store", "codec"]),
        Box::new(fake(&log, "api", true)),
    )
    .unwrap();
    m.register(spec("store", &[]), Box::new(fake(&log, "store", false)))
        .unwrap();
    m.register(
        spec("codec", &["store"]),
        Box::new(fake(&log, "codec", false)),
    )
    .unwrap();
    let err = m.start(0).unwrap_err();
    assert!(
        matches!(err, ManagerError::Registry(RegistryError::StartFailed { ref component, .. }) if component == "api"),
        "{err}"
    );
    let got = log.lock().unwrap().clone();
    assert_eq!(
        got,
        [
            "start store",
            "start codec",
            "start api",
            "stop codec",
            "stop store"
        ]
    );

    let mut r = Registry::default();
    r.register(spec("a", &["b"]), Box::new(fake(&log, "a", false)))
        .unwrap();
    r.register(spec("b", &["a"]), Box::new(fake(&log, "b", false)))
        .unwrap();
    assert!(matches!(r.start_order(), Err(RegistryError::Cycle(_))));
    let mut r = Registry::default();
    r.register(spec("a", &["zz"]), Box::new(fake(&log, "a", false)))
        .unwrap();
    assert!(matches!(
        r.start_order(),
        Err(RegistryError::MissingDependency { .. })
    ));
}

#[test]
fn ten_failing_ticks_start_exactly_one_recovery_with_bounded_attempts() {
    let log = Arc::new(Mutex::new(Vec::new()));
    let c = fake(&log, "db", false);
    let healthy = c.healthy.clone();
    let mut m = Manager::new(ManagerConfig::default(), 7);
    m.register(
        ComponentSpec {
            critical: true,
            ..spec("db", &[])
        },
        Box::new(c),
    )
    .unwrap();
    m.start(0).unwrap();
    m.tick(0);
    *healthy.lock().unwrap() = false;
    let mut events = Vec::new();
    for t in 1..=10u64 {
        events.extend(m.tick(t * 1_000));
    }
    let started = events
        .iter()
        .filter(|e| matches!(e, ManagerEvent::RecoveryStarted { .. }))
        .count();
    let attempts: Vec<u64> = events
        .iter()
        .filter_map(|e| match e {
            ManagerEvent::RecoveryAttempt { at_ms, .. } => Some(*at_ms),
            _ => None,
        })
        .collect();
    assert_eq!(started, 1, "{events:?}");
    assert_eq!(
        attempts.len(),
        3,
        "1 s / 2 s / 4 s backoff, 3 tries: {attempts:?}"
    );
    assert!(
        attempts.windows(2).all(|w| w[1] - w[0] >= 2_000),
        "backoff grows: {attempts:?}"
    );
    assert!(events
        .iter()
        .any(|e| matches!(e, ManagerEvent::RecoveryFailed { .. })));
    assert_eq!(
        m.degradation(),
        DegradationLevel::Emergency,
        "the only component is down"
    );
    *healthy.lock().unwrap() = true;
    let ev = m.tick(11_000);
    assert!(ev
        .iter()
        .any(|e| matches!(e, ManagerEvent::Recovered { .. })));
    assert_eq!(m.degradation(), DegradationLevel::Normal);
}

#[test]
fn degradation_levels_table() {
    use BreakerState::*;
    let ok = ComponentStatus {
        critical: false,
        healthy: true,
        recovery: RecoveryState::Idle,
        breaker: Closed,
    };
    let crit = ComponentStatus {
        critical: true,
        ..ok
    };
    let cases = [
        ("all healthy", vec![ok, crit], 0, DegradationLevel::Normal),
        (
            "breaker open",
            vec![
                ok,
                ComponentStatus {
                    breaker: Open,
                    ..ok
                },
            ],
            0,
            DegradationLevel::Degraded,
        ),
        (
            "non-critical down",
            vec![
                crit,
                ComponentStatus {
                    healthy: false,
                    ..ok
                },
            ],
            0,
            DegradationLevel::Degraded,
        ),
        (
            "critical down",
            vec![
                ok,
                ComponentStatus {
                    healthy: false,
                    ..crit
                },
            ],
            0,
            DegradationLevel::Severe,
        ),
        (
            "recovery failed",
            vec![
                crit,
                ComponentStatus {
                    recovery: RecoveryState::Failed,
                    ..ok
                },
            ],
            0,
            DegradationLevel::Severe,
        ),
        (
            "over memory budget",
            vec![ok],
            101,
            DegradationLevel::Emergency,
        ),
    ];
    for (desc, comps, mem, want) in cases {
        assert_eq!(degradation_level(&comps, mem, 100), want, "{desc}");
    }
}

#[test]
fn a_breaker_storm_fires_trigger_8_and_memory_samples_feed_trigger_7() {
    let log = Arc::new(Mutex::new(Vec::new()));
    let cfg = ManagerConfig {
        memory_budget_bytes: 10,
        ..ManagerConfig::default()
    };
    let mut m = Manager::new(cfg, 3);
    let names = ["codec", "store", "api"];
    for n in names {
        m.register(spec(n, &[]), Box::new(fake(&log, n, false)))
            .unwrap();
    }
    m.start(0).unwrap();
    let mut window = TriggerWindow::default();
    let mut fired = None;
    let mut opens = 0;
    let mut now = 0;
    // Breaker opens across components: 3 components × 4 rounds 30 s apart = 12 opens in 90 s.
    for _round in 0..4 {
        for n in names {
            for _ in 0..5 {
                if let Ok(p) = m.acquire(n, now) {
                    for e in m.record(n, now, p, false) {
                        if let ManagerEvent::Signal { signal } = e {
                            opens += u32::from(matches!(signal, EngineEvent::BreakerOpened { .. }));
                            fired = fired.or(window.observe(&signal).map(|f| (opens, f)));
                        }
                    }
                }
            }
        }
        now += 30_000;
    }
    let (opens_at_fire, fired) = fired.expect("twelve opens in 90 s");
    assert_eq!(opens_at_fire, 11, "fires on the eleventh open, not before");
    assert_eq!(fired.trigger, Trigger::CircuitBreakerStorm);
    assert!(matches!(
        fired.evidence,
        EngineEvent::CircuitBreakerStorm { opens: 11, .. }
    ));
    // Memory at 100 % of the budget for 5 min (metrics every 5 s) fires trigger 7.
    let mut fired = None;
    for t in 0..=61u64 {
        for e in m.tick(now + t * 5_000) {
            if let ManagerEvent::Signal { signal } = e {
                fired = fired.or(window.observe(&signal));
            }
        }
    }
    assert_eq!(fired.map(|f| f.trigger), Some(Trigger::MemoryExhaustion));
}
