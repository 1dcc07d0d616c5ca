//! Group commit (`dwcp_analyzer::group`): batches applied together are stored by one transaction, and
//! none is acknowledged before that transaction committed; a batch whose transaction failed is not
//! acknowledged at all, and its resend (same identity) is counted once after the store recovers.

#![allow(clippy::panic, clippy::unwrap_used, clippy::expect_used)]

use dwcp_analyzer::api::App;
use dwcp_analyzer::config::Config;
use dwcp_analyzer::controller::{ApiError, Controller};
use dwcp_core::decision::Track;
use dwcp_core::state::DynamicState;
use dwcp_core::telemetry::{Accumulator, Batch};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

const BATCHES: usize = 16;
const REQUESTS: u64 = 7;

fn cfg(dir: &std::path::Path) -> Config {
    let toml = format!(
        "token = \"test-token-1\"\ndb = \"{}\"\n[[rollout]]\nname = \"checkout\"\nautostart = true\nskip_shadow = true\n",
        dir.join("a.db").display()
    );
    Config::parse(&toml, "test.toml").unwrap()
}

fn batch(state: &DynamicState, vm: &str) -> Batch {
    let mut a = Accumulator::new(vec!["checkout".into()], vec!["standard".into()]);
    for _ in 0..REQUESTS {
        a.record(0, Track::Stable, 0, Some(1), false, 1_000);
    }
    let now = dwcp_analyzer::api::now_ms();
    let mut b = a.take_batch(vm, 1, state.version, now);
    b.epoch = state.epoch;
    b
}

fn counted(c: &mut Controller) -> u64 {
    c.ledger.tick(dwcp_analyzer::api::now_ms());
    let r = &c.ledger.rollouts["checkout"];
    r.phase_stable.requests + r.phase_canary.requests
}

type Answers = mpsc::Receiver<(usize, Result<DynamicState, ApiError>)>;

/// Posts `BATCHES` batches from as many threads while the test holds the writer connection (so the
/// first leader's write waits and the others queue behind it), with the store's writes failing or
/// not; returns the answers' channel once every batch is applied in memory, still holding the store.
fn post_while_writer_held(app: &Arc<App>, fail: bool) -> (Answers, Vec<Batch>) {
    let state = app.memory().state();
    let batches: Vec<Batch> = (0..BATCHES)
        .map(|i| batch(&state, &format!("vm-{i}")))
        .collect();
    let store = app.memory().store_handle();
    let held = store.lock().unwrap();
    held.fail_writes(fail).unwrap();
    let (tx, rx) = mpsc::channel();
    for (i, b) in batches.iter().cloned().enumerate() {
        let (app, tx) = (app.clone(), tx.clone());
        std::thread::spawn(move || {
            let r = dwcp_analyzer::group::ingest(&app, b, Instant::now());
            let _ = tx.send((i, r));
        });
    }
    let deadline = Instant::now() + Duration::from_secs(20);
    while app.memory().group.applied < BATCHES as u64 {
        assert!(Instant::now() < deadline, "batches not applied");
        std::thread::sleep(Duration::from_millis(5));
    }
    // Every batch is applied in memory, none is stored: none may be answered yet.
    std::thread::sleep(Duration::from_millis(50));
    assert!(
        rx.try_recv().is_err(),
        "a batch was answered before its commit"
    );
    drop(held);
    (rx, batches)
}

fn answers(rx: &Answers) -> Vec<Result<DynamicState, ApiError>> {
    let mut out: Vec<_> = (0..BATCHES)
        .map(|_| rx.recv_timeout(Duration::from_secs(20)).expect("an answer"))
        .collect();
    out.sort_by_key(|(i, _)| *i);
    out.into_iter().map(|(_, r)| r).collect()
}

#[test]
fn batches_applied_together_are_stored_by_one_commit_and_acknowledged_after_it() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = cfg(dir.path());
    let c = Controller::open(&cfg, dwcp_analyzer::api::now_ms()).unwrap();
    let app = Arc::new(App::new(c, cfg.auth.clone()));
    let (rx, batches) = post_while_writer_held(&app, false);
    for r in answers(&rx) {
        assert!(r.is_ok(), "{:?}", r.err());
    }
    let groups = app.memory().group.groups;
    // The first leader's group (its own batch, perhaps a few more) and one for the rest.
    assert!(
        (1..=2).contains(&groups),
        "{groups} commits for {BATCHES} batches"
    );
    assert_eq!(app.memory().group.grouped_batches, BATCHES as u64);
    drop(app);
    // Acknowledged means stored, with its identity: after a restart each is a replay, counted once.
    let mut c = Controller::open(&cfg, dwcp_analyzer::api::now_ms()).unwrap();
    assert_eq!(counted(&mut c), BATCHES as u64 * REQUESTS);
    for b in batches {
        assert!(!c.ingest(b, dwcp_analyzer::api::now_ms()).unwrap());
    }
    assert_eq!(counted(&mut c), BATCHES as u64 * REQUESTS);
}

#[test]
fn a_group_whose_transaction_failed_acknowledges_none_of_its_batches() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = cfg(dir.path());
    let c = Controller::open(&cfg, dwcp_analyzer::api::now_ms()).unwrap();
    let stored = c.state();
    let app = Arc::new(App::new(c, cfg.auth.clone()));
    let (rx, batches) = post_while_writer_held(&app, true);
    for r in answers(&rx) {
        assert!(
            matches!(r, Err(ApiError::Unavailable(_))),
            "a batch of a failed commit was answered: {r:?}"
        );
    }
    {
        let c = app.memory();
        assert!(c.group.groups < BATCHES as u64, "batches were grouped");
        assert_eq!(c.group.grouped_batches, 0, "nothing was stored");
        assert!(c.ready().is_err(), "a failed commit fails readiness");
        let served = c.state();
        assert!(served.kill_all, "everyone on stable meanwhile");
        assert_eq!(served.rollouts, stored.rollouts, "no unstored state served");
    }
    // The store recovers (the tick's commit); the filters resend the same batches: each is stored and
    // acknowledged now, counted once.
    let store = app.memory().store_handle();
    store.lock().unwrap().fail_writes(false).unwrap();
    app.lock().tick(dwcp_analyzer::api::now_ms()).unwrap();
    assert!(app.memory().ready().is_ok());
    for b in batches.iter().cloned() {
        dwcp_analyzer::group::ingest(&app, b, Instant::now()).unwrap();
    }
    drop(app);
    let mut c = Controller::open(&cfg, dwcp_analyzer::api::now_ms()).unwrap();
    assert_eq!(counted(&mut c), BATCHES as u64 * REQUESTS);
    for b in batches {
        assert!(!c.ingest(b, dwcp_analyzer::api::now_ms()).unwrap());
    }
}
