//! The audit log is paged and bounded (pruned rows archived), a store outage leaves an event, the
//! database can be backed up while it is written and restored, and the API sheds load and times out.

#![allow(clippy::panic, clippy::unwrap_used, clippy::expect_used)]

use axum::body::Body;
use axum::http::{Request, StatusCode};
use dwcp_analyzer::config::Config;
use dwcp_analyzer::controller::Controller;
use dwcp_core::decision::Track;
use dwcp_core::rollout::Command;
use dwcp_core::telemetry::Accumulator;
use std::path::Path;
use tower::ServiceExt;

fn cfg(dir: &Path, extra: &str) -> Config {
    let toml = format!(
        "token = \"test-token-1\"\ndb = \"{}\"\n{extra}\n[[rollout]]\nname = \"checkout\"\nautostart = true\nskip_shadow = true\n",
        dir.join("a.db").display()
    );
    Config::parse(&toml, "test.toml").unwrap()
}

/// `2 * n` events (pause, resume) at 1 ms apart from `at`.
fn churn(c: &mut Controller, n: u64, at: u64) {
    for i in 0..n {
        c.command("checkout", Command::Pause, "op", at + 2 * i)
            .unwrap();
        c.command("checkout", Command::Resume, "op", at + 2 * i + 1)
            .unwrap();
    }
}

#[test]
fn events_are_paged_newest_first_and_every_event_is_on_exactly_one_page() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = Controller::open(&cfg(dir.path(), ""), 1_000).unwrap();
    churn(&mut c, 40, 2_000);
    let reader = c.reader().unwrap();
    let all = c.events_page("checkout", None, 500).unwrap();
    assert_eq!(all.events.len(), 81, "started + 80 commands");
    assert_eq!(all.next_before, None);
    let mut seen = Vec::new();
    let mut before = None;
    let mut pages = 0;
    loop {
        let p = reader.page("checkout", before, 25).unwrap();
        assert!(p.events.len() <= 25);
        assert!(
            p.events.windows(2).all(|w| w[0].id < w[1].id),
            "oldest first"
        );
        pages += 1;
        // Pages go back in time: everything on this page is older than the previous one.
        if let (Some(first), Some(last)) = (seen.first(), p.events.last()) {
            assert!(last.id < *first);
        }
        let mut ids: Vec<i64> = p.events.iter().map(|e| e.id).collect();
        ids.extend(seen);
        seen = ids;
        match p.next_before {
            Some(b) => before = Some(b),
            None => break,
        }
    }
    assert_eq!(pages, 4, "81 events in pages of 25");
    let expected: Vec<i64> = all.events.iter().map(|e| e.id).collect();
    assert_eq!(seen, expected, "no event lost or repeated across pages");
}

#[test]
fn the_audit_log_is_bounded_and_pruned_rows_are_archived_first() {
    let dir = tempfile::tempdir().unwrap();
    let archive = dir.path().join("events.jsonl");
    let extra = format!(
        "[store]\nmax_events = 100\nevents_archive = \"{}\"",
        archive.display()
    );
    let mut c = Controller::open(&cfg(dir.path(), &extra), 1_000).unwrap();
    churn(&mut c, 150, 2_000);
    let before = c.events_page("checkout", None, 500).unwrap().events;
    assert_eq!(before.len(), 301);
    assert_eq!(c.prune_events(3_000).unwrap(), 201);
    let kept = c.events_page("checkout", None, 500).unwrap().events;
    assert_eq!(kept.len(), 100, "bounded");
    let kept_ids: Vec<i64> = kept.iter().map(|e| e.id).collect();
    let newest: Vec<i64> = before[201..].iter().map(|e| e.id).collect();
    assert_eq!(kept_ids, newest, "the newest rows are kept");
    let text = std::fs::read_to_string(&archive).unwrap();
    let archived: Vec<i64> = text
        .lines()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap()["id"]
                .as_i64()
                .unwrap()
        })
        .collect();
    let oldest: Vec<i64> = before[..201].iter().map(|e| e.id).collect();
    assert_eq!(archived, oldest, "every pruned row is in the archive, once");
    assert_eq!(c.prune_events(4_000).unwrap(), 0, "nothing more to prune");
    assert!(Config::parse("[store]\nmax_events = 5\n", "x.toml").is_err());
}

#[test]
fn a_store_outage_is_recorded_as_an_event_by_the_commit_that_ends_it() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = Controller::open(&cfg(dir.path(), ""), 1_000).unwrap();
    c.limit_store_growth(0).unwrap();
    let mut failed = 0;
    for i in 0..200u64 {
        let mut a = Accumulator::new(vec!["checkout".into()], vec!["standard".into()]);
        a.record(0, Track::Stable, 0, Some(1), false, 1_000);
        let s = c.state();
        let mut b = a.take_batch(&format!("vm-{i}-{}", "x".repeat(100)), 1, s.version, 1_000);
        b.epoch = s.epoch;
        if c.ingest(b, 2_000 + i).is_err() {
            failed += 1;
        }
    }
    assert!(failed > 0);
    assert!(c.ready().is_err());
    // The disk has room again: the tick's commit stores everything and the outage's event.
    c.limit_store_growth(100_000).unwrap();
    c.tick(9_000).unwrap();
    assert!(c.ready().is_ok());
    let ev = c.events("*", 500).unwrap();
    let outage = ev
        .iter()
        .find(|e| e.event.kind == dwcp_core::rollout::EventKind::StoreCommitFailed)
        .expect("a store_commit_failed event");
    assert_eq!(outage.event.evidence["failed_commits"], failed);
    assert_eq!(outage.event.evidence["since_ms"], 2_000 + 200 - failed);
    assert_eq!(outage.at_ms, 9_000);
}

#[test]
fn a_backup_taken_while_commits_go_on_restores_to_a_consistent_database() {
    let dir = tempfile::tempdir().unwrap();
    let config = cfg(dir.path(), "");
    let mut c = Controller::open(&config, 1_000).unwrap();
    churn(&mut c, 100, 2_000);
    let db = dir.path().join("a.db");
    let out = dir.path().join("backup.db");
    // The companion keeps committing while the backup copies.
    let writer = std::thread::spawn(move || {
        churn(&mut c, 100, 10_000);
        c
    });
    let copied = dwcp_analyzer::store::backup::backup(&db, &out).unwrap();
    assert!(copied.pages > 0);
    let c = writer.join().unwrap();
    let live = c.events("checkout", 500).unwrap();
    assert!(
        dwcp_analyzer::store::backup::backup(&db, &out).is_err(),
        "never overwrites"
    );
    drop(c);
    // Restore over the live database (companion stopped) and open it.
    dwcp_analyzer::store::backup::restore(&out, &db).unwrap();
    let c = Controller::open(&config, 50_000).unwrap();
    let restored = c.events_page("checkout", None, 500).unwrap().events;
    assert_eq!(live.len(), 401);
    // One consistent snapshot: everything committed before the backup began, then a prefix of what
    // was committed while it ran (each command is its own commit).
    assert!(restored.len() >= 201, "{}", restored.len());
    let ids = |v: &[dwcp_analyzer::store::StoredEvent]| v.iter().map(|e| e.id).collect::<Vec<_>>();
    assert_eq!(ids(&restored), ids(&live[..restored.len()]));
    // A damaged copy is refused before anything is written.
    let bad = dir.path().join("bad.db");
    std::fs::write(&bad, b"SQLite format 3\0 this is not a database").unwrap();
    assert!(dwcp_analyzer::store::backup::restore(&bad, &db).is_err());
}

async fn status(r: &axum::Router, path: &str) -> StatusCode {
    r.clone()
        .oneshot(Request::get(path).body(Body::empty()).unwrap())
        .await
        .unwrap()
        .status()
}

#[tokio::test]
async fn the_api_times_out_slow_requests_and_sheds_beyond_its_limit() {
    use dwcp_analyzer::serve::{limit, ApiLimits};
    let slow = axum::Router::new().route(
        "/slow",
        axum::routing::get(|| async {
            tokio::time::sleep(std::time::Duration::from_millis(400)).await;
            "done"
        }),
    );
    let r = limit(
        slow.clone(),
        &ApiLimits {
            request_timeout_ms: 100,
            max_in_flight: 10,
            ..Default::default()
        },
    );
    assert_eq!(status(&r, "/slow").await, StatusCode::GATEWAY_TIMEOUT);
    let r = limit(
        slow,
        &ApiLimits {
            request_timeout_ms: 5_000,
            max_in_flight: 1,
            ..Default::default()
        },
    );
    let (a, b) = tokio::join!(status(&r, "/slow"), async {
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        status(&r, "/slow").await
    });
    assert_eq!(a, StatusCode::OK);
    assert_eq!(b, StatusCode::SERVICE_UNAVAILABLE, "shed, not queued");
    assert_eq!(status(&r, "/slow").await, StatusCode::OK, "free again");
}
