//! Nothing lost, nothing counted twice, nothing stuck: a batch whose acknowledgement is lost is counted
//! once (also across a restart), a restored older database is adopted by filters (new epoch), and a
//! failed commit (a full disk) serves no unstored state and fails readiness.

#![allow(clippy::panic, clippy::unwrap_used, clippy::expect_used)]

use dwcp_analyzer::config::Config;
use dwcp_analyzer::controller::{ApiError, Controller};
use dwcp_core::decision::Track;
use dwcp_core::rollout::Command;
use dwcp_core::telemetry::{Accumulator, Batch};

fn cfg(dir: &std::path::Path) -> Config {
    let toml = format!(
        "token = \"test-token-1\"\ndb = \"{}\"\n[[rollout]]\nname = \"checkout\"\nautostart = true\nskip_shadow = true\n",
        dir.join("a.db").display()
    );
    Config::parse(&toml, "test.toml").unwrap()
}

fn batch(c: &Controller, vm: &str, seq: u64, requests: u64) -> Batch {
    let mut a = Accumulator::new(vec!["checkout".into()], vec!["standard".into()]);
    for _ in 0..requests {
        a.record(0, Track::Stable, 0, Some(1), false, 1_000);
    }
    let s = c.state();
    let mut b = a.take_batch(vm, seq, s.version, 1_000);
    b.epoch = s.epoch;
    b
}

/// Requests the judgment has counted in the phase. Telemetry is judged in time slices: `counted` first
/// closes the open slice by ticking (the slices are stored with every commit, so a restart between
/// the acknowledgement and the tick loses nothing either).
fn counted(c: &mut Controller, now_ms: u64) -> u64 {
    c.ledger.tick(now_ms);
    let r = &c.ledger.rollouts["checkout"];
    r.phase_stable.requests + r.phase_canary.requests
}

#[test]
fn a_batch_whose_answer_was_lost_is_counted_once_also_across_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = Controller::open(&cfg(dir.path()), 1_000).unwrap();
    let b = batch(&c, "vm-1", 1, 40);
    assert!(c.ingest(b.clone(), 2_000).unwrap());
    // The answer is lost; the filter resends the same batch.
    assert!(!c.ingest(b.clone(), 3_000).unwrap(), "a replay");
    assert_eq!(counted(&mut c, 3_000), 40);
    drop(c);
    // The companion restarts (kill -9 after the answer was written): it still knows the batch.
    let mut c = Controller::open(&cfg(dir.path()), 4_000).unwrap();
    assert_eq!(
        counted(&mut c, 4_000),
        40,
        "the batch was stored before it was acknowledged"
    );
    assert!(
        !c.ingest(b, 5_000).unwrap(),
        "still a replay after the restart"
    );
    assert_eq!(counted(&mut c, 5_000), 40);
    let next = batch(&c, "vm-1", 2, 5);
    assert!(c.ingest(next, 6_000).unwrap());
    assert_eq!(counted(&mut c, 6_000), 45);
}

#[test]
fn a_restored_older_database_gets_a_new_epoch_and_filters_ahead_of_it_are_taken() {
    let dir = tempfile::tempdir().unwrap();
    let backup = dir.path().join("backup.db");
    let mut c = Controller::open(&cfg(dir.path()), 1_000).unwrap();
    let old_epoch = c.state().epoch;
    c.tick(1_500).unwrap();
    std::fs::copy(dir.path().join("a.db"), &backup).unwrap();
    // Routing moves on: the filters hold a newer version of this epoch.
    c.command("checkout", Command::Pause, "op", 2_000).unwrap();
    c.command("checkout", Command::Resume, "op", 2_100).unwrap();
    let ahead = batch(&c, "vm-1", 1, 3);
    let held = c.state();
    drop(c);
    // The database is replaced by the older copy (WAL files of the newer one removed with it).
    for f in ["a.db-wal", "a.db-shm"] {
        let _ = std::fs::remove_file(dir.path().join(f));
    }
    std::fs::copy(&backup, dir.path().join("a.db")).unwrap();
    let mut c = Controller::open(&cfg(dir.path()), 3_000).unwrap();
    assert!(
        c.state().version < held.version,
        "the restored version is older"
    );
    // The filter's batch is not refused (it was with 422 before epochs): the companion starts a new
    // epoch, and its answer is a state the filter adopts whatever version it holds.
    assert!(c.ingest(ahead, 3_100).unwrap());
    let answer = c.state_for(dwcp_core::telemetry::PROTOCOL_VERSION);
    assert_ne!(answer.epoch, old_epoch);
    assert!(answer.supersedes(Some(&held)));
    let total: u64 = c.ledger.totals.values().map(|t| t.requests[0]).sum();
    assert_eq!(total, 3, "counted");
    assert_eq!(
        counted(&mut c, 3_100),
        0,
        "but not credited to a phase it was not routed under"
    );
}

#[test]
fn a_failed_commit_serves_no_unstored_state_and_fails_readiness() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = Controller::open(&cfg(dir.path()), 1_000).unwrap();
    let stored = c.state();
    assert!(c.ready().is_ok());
    c.limit_store_growth(0).unwrap();
    // Many new VMs: their rows do not fit on the full disk.
    let mut failed = 0;
    for i in 0..200 {
        let b = batch(&c, &format!("vm-{i}-{}", "x".repeat(100)), 1, 1);
        match c.ingest(b, 2_000 + i) {
            Err(ApiError::Unavailable(_)) => failed += 1,
            Ok(_) => {}
            Err(e) => panic!("unexpected {e}"),
        }
    }
    assert!(failed > 0, "the full disk refused a commit");
    let why = c.ready().unwrap_err();
    assert!(why.contains("commit failed"), "{why}");
    let served = c.state();
    assert!(
        served.kill_all,
        "everyone on stable while the state cannot be stored"
    );
    assert!(served.version > stored.version, "filters adopt it");
    assert_eq!(served.rollouts, stored.rollouts, "no unstored phase served");
    assert!(c.commit_failures > 0);
    // An operator's abort cannot be stored either: refused, not served.
    assert!(c.command("checkout", Command::Abort, "op", 3_000).is_err());
    assert!(!c.state().rollouts["checkout"].killed);
    let text = dwcp_analyzer::metrics::render(&c, 3_000);
    assert!(text.contains("dwcp_companion_ready 0"), "{text}");
    // A restart finds only what was stored: the rollout still running, as it was served.
    drop(c);
    let c = Controller::open(&cfg(dir.path()), 4_000).unwrap();
    assert_eq!(
        c.ledger.rollouts["checkout"].status,
        dwcp_core::rollout::Status::Running
    );
}
