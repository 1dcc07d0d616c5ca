use super::*;
use crate::rollout::{RolloutSpec, Status};
use crate::telemetry::{Accumulator, Cell};
use proptest::prelude::*;

const V0_BATCH: &str = include_str!("../../testdata/wire/batch-v0.json");

fn spec(name: &str) -> RolloutSpec {
    let mut s = RolloutSpec::default_for(name);
    for p in &mut s.phases {
        p.min_duration_ms = p.min_duration_ms.min(10_000);
        p.min_requests = p.min_requests.min(300);
    }
    s
}

/// A ledger with `checkout` started (at version `version`), skew limit 60 s.
fn ledger(version: u64) -> Ledger {
    let defs = [Definition {
        spec: spec("checkout"),
        autostart: true,
    }];
    let (rollouts, events) = reconcile(BTreeMap::new(), &defs, 0);
    assert_eq!(events.len(), 1, "autostart records the start");
    Ledger::new(rollouts, version, false, 60_000)
}

fn batch(vm: &str, seq: u64, version: u64, cells: &[(&str, Track, &str, u64, u64)]) -> Batch {
    let rollouts: Vec<String> = cells.iter().map(|c| c.0.to_string()).collect();
    let segments: Vec<String> = cells.iter().map(|c| c.2.to_string()).collect();
    let mut a = Accumulator::new(rollouts.clone(), segments.clone());
    for (i, (_, track, _, requests, errors)) in cells.iter().enumerate() {
        for k in 0..*requests {
            a.record(i, *track, i, Some(k as u32), k < *errors, 1_000 + k);
        }
    }
    a.take_batch(vm, seq, version, 1_000)
}

fn total(l: &Ledger, rollout: &str, seg: &str) -> Totals {
    l.totals
        .get(&(rollout.to_string(), seg.to_string()))
        .cloned()
        .unwrap_or_default()
}

#[test]
fn a_first_release_batch_is_taken_whole() {
    let b: Batch = serde_json::from_str(V0_BATCH).unwrap();
    assert_eq!(b.protocol, 0, "the fixture predates the protocol field");
    let mut l = ledger(3);
    let want: u64 = b.cells.iter().map(|c| c.requests).sum();
    // The fixture was cut at 1_700_000_000_000 ms (its `sent_at_ms`).
    assert!(matches!(
        l.ingest(b, 1_700_000_001_000),
        Ok(Ingested::Accepted { .. })
    ));
    let got: u64 = l
        .totals
        .values()
        .map(|t| t.requests[0] + t.requests[1])
        .sum();
    assert_eq!(got, want, "every request of the old batch is counted");
    assert_eq!(total(&l, "checkout", "standard").errors, [1, 1]);
    assert_eq!(l.counters.by_protocol.get(&0), Some(&1));
    l.tick(1_700_000_001_000);
    let r = &l.rollouts["checkout"];
    assert_eq!(r.phase_stable.requests + r.phase_canary.requests, want);
}

#[test]
fn unknown_fields_are_ignored_on_the_wire() {
    let mut v: serde_json::Value = serde_json::from_str(V0_BATCH).unwrap();
    v["added_by_a_later_release"] = serde_json::json!({"x": 1});
    v["cells"][0]["new_cell_field"] = serde_json::json!([1, 2]);
    let with: Batch = serde_json::from_value(v).unwrap();
    let without: Batch = serde_json::from_str(V0_BATCH).unwrap();
    assert_eq!(with, without);
}

#[test]
fn cells_of_an_unknown_rollout_are_counted_not_a_reason_to_refuse() {
    let mut l = ledger(1);
    let b = batch(
        "vm",
        1,
        1,
        &[
            ("checkout", Track::Stable, "standard", 5, 1),
            ("newer", Track::Canary, "standard", 3, 0),
        ],
    );
    assert!(matches!(l.ingest(b, 2_000), Ok(Ingested::Accepted { .. })));
    assert_eq!(total(&l, "checkout", "standard").requests, [5, 0]);
    assert_eq!(total(&l, "newer", "standard"), Totals::default());
    assert_eq!(
        l.counters.unknown.get(&("newer".to_string(), Part::Cells)),
        Some(&1)
    );
    assert_eq!(l.counters.batches_accepted, 1);
}

#[test]
fn unknown_rollouts_beyond_the_cap_are_counted_together() {
    let mut l = ledger(1);
    for i in 0..MAX_UNKNOWN_ROLLOUTS + 5 {
        let name = format!("r{i}");
        let b = batch("vm", i as u64 + 1, 1, &[(&name, Track::Stable, "s", 1, 0)]);
        l.ingest(b, 2_000).unwrap();
    }
    assert_eq!(l.counters.unknown.len(), MAX_UNKNOWN_ROLLOUTS + 1);
    assert_eq!(
        l.counters
            .unknown
            .get(&(OTHER_ROLLOUTS.to_string(), Part::Cells)),
        Some(&5)
    );
}

#[test]
fn a_refused_batch_changes_nothing() {
    let mut l = ledger(1);
    let mut b = batch("vm", 1, 1, &[("checkout", Track::Stable, "standard", 5, 1)]);
    b.cells.push(Cell {
        errors: 9,
        ..b.cells[0].clone()
    });
    let err = l.ingest(b, 2_000).unwrap_err();
    assert!(err.to_string().starts_with("cells[1].errors"), "{err}");
    assert!(l.totals.is_empty());
    assert_eq!(l.counters.batches_rejected, 1);
    assert_eq!(l.rollouts["checkout"].phase_stable.requests, 0);
}

#[test]
fn replays_are_acknowledged_and_ignored() {
    let mut l = ledger(1);
    let b = batch("vm", 3, 1, &[("checkout", Track::Stable, "standard", 5, 0)]);
    l.ingest(b.clone(), 2_000).unwrap();
    assert_eq!(l.ingest(b.clone(), 2_001), Ok(Ingested::Duplicate));
    let mut older = b;
    older.seq = 2;
    assert_eq!(l.ingest(older, 2_002), Ok(Ingested::Duplicate));
    assert_eq!(total(&l, "checkout", "standard").requests, [5, 0]);
    assert_eq!(l.counters.batches_duplicate, 2);
}

#[test]
fn requests_routed_under_an_older_phase_are_not_credited_to_the_new_one() {
    let mut l = ledger(1);
    let s = l
        .command("checkout", Command::Promote, "alice", 1_000)
        .unwrap();
    assert!(s.routing_changed);
    assert_eq!(l.version, 2, "a phase change is a new state version");
    let old = batch("a", 1, 1, &[("checkout", Track::Stable, "standard", 7, 0)]);
    l.ingest(old, 2_000).unwrap();
    l.tick(2_000);
    let r = &l.rollouts["checkout"];
    assert_eq!(r.phase_stable.requests, 0, "routed under version 1");
    assert_eq!(total(&l, "checkout", "standard").requests, [7, 0]);
    let new = batch("b", 1, 2, &[("checkout", Track::Stable, "standard", 4, 0)]);
    l.ingest(new, 2_000).unwrap();
    l.tick(2_000);
    assert_eq!(l.rollouts["checkout"].phase_stable.requests, 4);
}

#[test]
fn expected_canary_uses_the_shares_the_batch_was_routed_with() {
    let mut l = ledger(1);
    let before = l.rollouts["checkout"].shares();
    l.command("checkout", Command::Promote, "alice", 1_000)
        .unwrap();
    l.command("checkout", Command::Promote, "alice", 1_000)
        .unwrap();
    let after = l.rollouts["checkout"].shares();
    let seg = "standard";
    assert_ne!(
        before.get(seg),
        after.get(seg),
        "the ladder moved the share"
    );
    let b = batch("a", 1, 3, &[("checkout", Track::Stable, seg, 1_000, 0)]);
    l.ingest(b, 2_000).unwrap();
    l.tick(2_000);
    let want = 1_000.0 * f64::from(after.get(seg).copied().unwrap_or(0)) / 10_000.0;
    assert!((l.rollouts["checkout"].phase_expected_canary - want).abs() < 1e-9);
}

#[test]
fn state_for_a_first_release_filter_has_only_the_fields_it_knows() {
    let l = ledger(5);
    let old = serde_json::to_value(l.state_for(0)).unwrap();
    assert!(old.get("protocol").is_none(), "{old}");
    let new = serde_json::to_value(l.state_for(99)).unwrap();
    assert_eq!(new["protocol"], PROTOCOL_VERSION, "capped at ours");
    assert_eq!(old["rollouts"], new["rollouts"]);
}

#[test]
fn kill_all_is_applied_only_when_asked_and_bumps_the_version() {
    let mut l = ledger(1);
    assert!(l.kill_all_event(false, "x").is_none());
    let (e, next) = l.kill_all_event(true, "x").unwrap();
    assert_eq!(e.kind, EventKind::KillAll);
    assert_eq!((l.version, l.kill_all), (1, false), "not applied yet");
    l.set_kill_all(true);
    assert_eq!((l.version, l.kill_all), (next, true));
    // Routed while killed: no canary is expected.
    let b = batch(
        "a",
        1,
        next,
        &[("checkout", Track::Stable, "standard", 100, 0)],
    );
    l.ingest(b, 2_000).unwrap();
    assert_eq!(l.rollouts["checkout"].phase_expected_canary, 0.0);
}

#[test]
fn a_rollback_carries_the_shadow_samples_as_evidence() {
    let mut l = ledger(1);
    let mut b = batch("a", 1, 1, &[("checkout", Track::Stable, "standard", 1, 0)]);
    b.samples.push(crate::shadow::MismatchSample {
        rollout: "checkout".into(),
        request: "GET /x".into(),
        kinds: vec![],
        primary_status: 200,
        shadow_status: 500,
        latency_delta_ms: 1.0,
        diffs: vec![],
        noise_paths: vec![],
    });
    let Ok(Ingested::Accepted { shadow_touched, .. }) = l.ingest(b, 2_000) else {
        panic!("accepted");
    };
    assert_eq!(shadow_touched, vec!["checkout".to_string()]);
    let s = l
        .command("checkout", Command::Abort, "alice", 3_000)
        .unwrap();
    assert_eq!(l.rollouts["checkout"].status, Status::RolledBack);
    assert_eq!(
        s.events[0].evidence["shadow_samples"][0]["request"],
        "GET /x"
    );
    assert_eq!(l.counters.rollbacks.get("checkout"), Some(&1));
}

#[test]
fn reconcile_keeps_stored_progress_and_history() {
    let (mut stored, _) = reconcile(
        BTreeMap::new(),
        &[Definition {
            spec: spec("checkout"),
            autostart: true,
        }],
        0,
    );
    stored.get_mut("checkout").unwrap().phase = 3;
    let mut gone = Rollout::new(spec("gone"));
    gone.status = Status::Succeeded;
    stored.insert("gone".into(), gone);
    let (out, events) = reconcile(
        stored,
        &[Definition {
            spec: spec("checkout"),
            autostart: true,
        }],
        5,
    );
    assert!(events.is_empty(), "already started");
    assert_eq!(out["checkout"].phase, 3);
    assert_eq!(out["gone"].status, Status::Succeeded);
}

fn cells() -> impl Strategy<Value = Vec<(bool, bool, u64, u64)>> {
    // (known rollout?, canary?, requests, errors ≤ requests)
    prop::collection::vec(
        (any::<bool>(), any::<bool>(), 0u64..50)
            .prop_flat_map(|(k, c, n)| (Just(k), Just(c), Just(n), 0..=n)),
        1..12,
    )
}

fn to_batch(vm: &str, seq: u64, cells: &[(bool, bool, u64, u64)]) -> Batch {
    let spec: Vec<(&str, Track, &str, u64, u64)> = cells
        .iter()
        .map(|(known, canary, n, e)| {
            let r = if *known { "checkout" } else { "unknown" };
            let t = if *canary {
                Track::Canary
            } else {
                Track::Stable
            };
            (r, t, "standard", *n, *e)
        })
        .collect();
    batch(vm, seq, 1, &spec)
}

proptest! {
    /// Splitting a VM's telemetry into batches changes nothing: the totals and the phase counts are the
    /// sums of the known cells, unknown cells are all counted, and replays add nothing.
    #[test]
    fn counts_are_additive_and_replays_add_nothing(parts in prop::collection::vec(cells(), 1..6)) {
        let mut l = ledger(1);
        let (mut want_known, mut want_unknown) = (0u64, 0u64);
        for (i, cs) in parts.iter().enumerate() {
            let b = to_batch("vm", i as u64 + 1, cs);
            for c in &b.cells {
                if c.rollout == "checkout" { want_known += c.requests } else { want_unknown += 1 }
            }
            l.ingest(b.clone(), 2_000).unwrap();
            prop_assert_eq!(l.ingest(b, 2_000), Ok(Ingested::Duplicate));
        }
        l.tick(2_000);
        let t = total(&l, "checkout", "standard");
        prop_assert_eq!(t.requests[0] + t.requests[1], want_known);
        let r = &l.rollouts["checkout"];
        if r.status == Status::Running {
            prop_assert_eq!(r.phase_stable.requests + r.phase_canary.requests, want_known);
        }
        let unknown: u64 = l.counters.unknown.values().sum();
        prop_assert_eq!(unknown, want_unknown);
        prop_assert_eq!(l.counters.batches_accepted, parts.len() as u64);
    }

    /// The served version never goes back, and every routing change is a new version.
    #[test]
    fn versions_only_grow(cmds in prop::collection::vec(0u8..6, 1..20)) {
        let mut l = ledger(1);
        let mut last = l.version;
        for c in cmds {
            let before = l.state();
            let changed = match c {
                0..=4 => {
                    let cmd = [Command::Start, Command::Promote, Command::Pause, Command::Resume, Command::Abort][c as usize];
                    l.command("checkout", cmd, "p", 1_000).is_some_and(|s| s.routing_changed)
                }
                _ => { let on = !l.kill_all; l.set_kill_all(on); true }
            };
            prop_assert!(l.version >= last);
            if changed { prop_assert!(l.version > last) } else { prop_assert_eq!(l.state(), before) }
            last = l.version;
        }
    }
}

/// Windows reach the rollout split by segment with the share each was routed with: the forced segment
/// (internal, always canary once live) is counted as untested, only the randomised one is tested.
#[test]
fn windows_are_split_by_segment_and_forced_segments_are_not_tested() {
    let mut l = ledger(1);
    l.command("checkout", Command::Promote, "alice", 1_000)
        .unwrap();
    l.command("checkout", Command::Promote, "alice", 1_000)
        .unwrap();
    let v = l.version;
    let b = batch(
        "a",
        1,
        v,
        &[
            ("checkout", Track::Canary, "internal", 50, 3),
            ("checkout", Track::Stable, "standard", 990, 2),
            ("checkout", Track::Canary, "standard", 10, 1),
        ],
    );
    l.ingest(b, 2_000).unwrap();
    l.tick(2_000);
    let r = &l.rollouts["checkout"];
    assert_eq!(r.untested.by_segment.get("internal"), Some(&50));
    assert_eq!(r.untested.errors, 3);
    assert_eq!(
        (r.error_test.canary_errors, r.error_test.stable_errors),
        (1, 2)
    );
}

/// One second of a healthy 1 % phase for `standard` (share 100 bp): 1 000 bucketed requests, 10 of them
/// on canary, 1 % errors on both tracks; plus `keyless` requests that no key could bucket, all on
/// stable, failing 5 % (bots and health checkers without a user). `mark`: whether the filter marks them
/// as not bucketed (this release) or counts them like any other stable request (before it).
fn keyless_second(vm: &str, seq: u64, version: u64, keyless: u64, mark: bool) -> Batch {
    let mut a = Accumulator::new(vec!["checkout".into()], vec!["standard".into()]);
    for k in 0..990u64 {
        a.record(
            0,
            Track::Stable,
            0,
            Some(k as u32 + 100),
            k % 100 == 0,
            20_000 + k,
        );
    }
    for k in 0..10u64 {
        a.record(0, Track::Canary, 0, Some(k as u32), false, 20_000 + k);
    }
    for k in 0..keyless {
        a.record(
            0,
            Track::Stable,
            0,
            (!mark).then_some(k as u32 + 5_000),
            k % 20 == 0,
            20_000 + k,
        );
    }
    a.take_batch(vm, seq, version, 1_000 + seq * 1_000)
}

/// Runs `secs` seconds of [`keyless_second`] against the rollout in its 1 % phase; the rollout's status
/// and phase at the end.
fn run_keyless(secs: u64, keyless: u64, mark: bool) -> (Status, usize, Ledger) {
    let mut l = ledger(1);
    l.command("checkout", Command::Promote, "alice", 1_000)
        .unwrap();
    let phase = l.rollouts["checkout"].phase;
    for s in 1..=secs {
        let now = 1_000 + s * 1_000;
        l.ingest(keyless_second("vm", s, l.version, keyless, mark), now)
            .unwrap();
        l.tick(now);
        let r = &l.rollouts["checkout"];
        if r.status == Status::RolledBack || r.phase != phase {
            break;
        }
    }
    let r = &l.rollouts["checkout"];
    (r.status, r.phase - phase, l)
}

/// 33 % keyless traffic on a healthy canary: marked as not bucketed it is shown (totals, untested) and
/// never judged, and the phase completes. The same traffic counted as bucketed stable requests — what
/// the filter did before — inflates the expected canary count by half: the throughput shown falls
/// below the floor.
#[test]
fn keyless_traffic_is_counted_but_never_judged() {
    let (status, advanced, l) = run_keyless(120, 500, true);
    assert_eq!(
        status,
        Status::Running,
        "{:?}",
        l.rollouts["checkout"].last_verdict
    );
    assert_eq!(advanced, 1, "the healthy 1 % phase completes");
    let t = total(&l, "checkout", "standard");
    assert!(
        t.requests[0] > 0 && t.requests[0].is_multiple_of(1_490),
        "shown: {t:?}"
    );
    let u = &l.rollouts["checkout"].untested;
    assert!(
        u.unbucketed > 0 && u.unbucketed.is_multiple_of(500),
        "{u:?}"
    );

    // Unmarked, the keyless requests inflate the expected canary count: the throughput shown falls
    // below the floor (shown, never an abort since users, not requests, are randomised).
    let (marked_tp, unmarked_tp) = (throughput_ratio(true), throughput_ratio(false));
    assert!(marked_tp > 0.9, "{marked_tp}");
    assert!(unmarked_tp < 0.8, "{unmarked_tp}");
}

/// Canary requests ÷ expected in the 1 % phase after 60 s of [`keyless_second`] (no tick: no promotion).
fn throughput_ratio(mark: bool) -> f64 {
    let mut l = ledger(1);
    l.command("checkout", Command::Promote, "alice", 1_000)
        .unwrap();
    for s in 1..=60 {
        let now = 1_000 + s * 1_000;
        l.ingest(keyless_second("vm", s, l.version, 500, mark), now)
            .unwrap();
    }
    let r = &l.rollouts["checkout"];
    r.phase_canary.requests as f64 / r.phase_expected_canary
}

/// The same traffic reported by 1 sidecar or split over 200 gives the rollout the same evidence: batches
/// are merged into time slices before the tests see them, so power and false-abort rate do not depend on
/// how many sidecars report. (Before slices, every batch was a window of its own.)
#[test]
fn evidence_does_not_depend_on_how_many_sidecars_report() {
    fn run(sidecars: u64) -> Ledger {
        let mut l = ledger(1);
        l.command("checkout", Command::Promote, "alice", 1_000)
            .unwrap();
        let v = l.version;
        let mut seq = vec![0u64; sidecars as usize];
        for s in 1..=30u64 {
            let now = 1_000 + s * 1_000;
            // 2 000 requests a second: canary 1 % share of standard, a crash-like 20 % canary errors.
            let mut accs: Vec<Accumulator> = (0..sidecars)
                .map(|_| Accumulator::new(vec!["checkout".into()], vec!["standard".into()]))
                .collect();
            for k in 0..2_000u64 {
                let a = &mut accs[(k * 7919 % sidecars) as usize];
                let canary = k % 100 == 0;
                let track = if canary { Track::Canary } else { Track::Stable };
                let error = if canary { k % 500 == 0 } else { k % 97 == 0 };
                a.record(
                    0,
                    track,
                    0,
                    Some((s * 2_000 + k) as u32),
                    error,
                    20_000 + k % 1_000,
                );
            }
            for (i, a) in accs.iter_mut().enumerate() {
                seq[i] += 1;
                let b = a.take_batch(&format!("vm{i}"), seq[i], v, now);
                if !b.cells.is_empty() {
                    l.ingest(b, now).unwrap();
                }
            }
            l.tick(now);
        }
        l
    }
    let (one, many) = (run(1), run(200));
    let (a, b) = (&one.rollouts["checkout"], &many.rollouts["checkout"]);
    assert_eq!(a.status, b.status);
    assert_eq!(a.phase_canary, b.phase_canary);
    assert_eq!(
        (a.error_test.canary_errors, a.error_test.stable_errors),
        (b.error_test.canary_errors, b.error_test.stable_errors)
    );
    let (ea, eb) = (a.error_test.log_e_value(), b.error_test.log_e_value());
    assert!((ea - eb).abs() < 1e-9, "log e-value {ea} vs {eb}");
}

/// A sticky client (one user bucket) failing every request on canary weighs as one randomised unit per
/// phase in the error test, however many requests it sends; other users' errors count one each. A
/// filter that lists no units (older release) has every error counted, as before.
#[test]
fn a_sticky_failing_client_counts_once_per_phase() {
    let mut l = ledger(1);
    l.command("checkout", Command::Promote, "alice", 1_000)
        .unwrap();
    let v = l.version;
    for s in 1..=20u64 {
        let mut a = Accumulator::new(vec!["checkout".into()], vec!["standard".into()]);
        for k in 0..5u32 {
            a.record(0, Track::Canary, 0, Some(42), true, 20_000 + u64::from(k));
        }
        a.record(0, Track::Stable, 0, Some(1_000 + s as u32), true, 20_000);
        let now = 1_000 + s * 1_000;
        l.ingest(a.take_batch("vm", s, v, now), now).unwrap();
        l.tick(now);
    }
    let r = &l.rollouts["checkout"];
    assert_eq!(r.phase_canary.errors, 100, "all errors are shown");
    assert_eq!(
        (r.error_test.canary_errors, r.error_test.stable_errors),
        (1, 20)
    );
    // The same traffic without units: every error is evidence.
    let mut l = ledger(1);
    l.command("checkout", Command::Promote, "alice", 1_000)
        .unwrap();
    let mut b = keyless_second("vm", 1, l.version, 0, true);
    for c in &mut b.cells {
        c.error_units.clear();
    }
    let errors: u64 = b.cells.iter().map(|c| c.errors).sum();
    l.ingest(b, 2_000).unwrap();
    l.tick(2_000);
    let e = &l.rollouts["checkout"].error_test;
    assert_eq!(e.canary_errors + e.stable_errors, errors);
}

#[test]
fn a_resent_batch_is_counted_once() {
    let mut l = ledger(3);
    let b = batch(
        "vm",
        5,
        3,
        &[("checkout", Track::Stable, "standard", 40, 2)],
    );
    assert!(matches!(
        l.ingest(b.clone(), 2_000),
        Ok(Ingested::Accepted { .. })
    ));
    // Its acknowledgement was lost: the filter resends it unchanged.
    assert_eq!(l.ingest(b, 3_000), Ok(Ingested::Duplicate));
    assert_eq!(total(&l, "checkout", "standard").requests[0], 40);
    assert_eq!(l.counters.batches_duplicate, 1);
    let (dirty, _) = l.take_dirty_vms();
    assert_eq!(dirty.len(), 1);
    assert_eq!(dirty[0].1.seq, 5);
    // Across a restart: a new ledger told what the old one took recognises it too.
    let mut again = ledger(4);
    again.restore_vm(&dirty[0].0, dirty[0].1);
    let b = batch(
        "vm",
        5,
        3,
        &[("checkout", Track::Stable, "standard", 40, 2)],
    );
    assert_eq!(again.ingest(b, 4_000), Ok(Ingested::Duplicate));
}

#[test]
fn batches_of_another_epoch_are_counted_never_judged_and_never_refused() {
    let mut l = ledger(3);
    l.set_epoch(11);
    let v = l.version;
    let state = l.state();
    assert_eq!((state.epoch, state.version), (11, v));
    assert_eq!(l.state_for(1).epoch, 0, "protocol 1 filters get no epoch");
    // A filter still routing with an older database's state, at a version this one never reached.
    let mut b = batch(
        "vm",
        1,
        v + 50,
        &[("checkout", Track::Canary, "standard", 10, 0)],
    );
    b.epoch = 10;
    let before = l.rollouts["checkout"].phase_canary.requests;
    assert!(matches!(
        l.ingest(b.clone(), 2_000),
        Ok(Ingested::Accepted { .. })
    ));
    assert_eq!(total(&l, "checkout", "standard").requests[1], 10, "counted");
    assert_eq!(
        l.rollouts["checkout"].phase_canary.requests, before,
        "not credited to the current phase"
    );
    assert_eq!(l.vms(2_000, 1_000)["vm"].routing_version, 0);
    // The same batch in this epoch is from the future: refused (the companion then rotates epochs).
    b.epoch = 11;
    b.seq = 2;
    assert!(matches!(
        l.ingest(b, 2_000),
        Err(BatchError::StateFromTheFuture { .. })
    ));
}

#[test]
fn unknown_segments_are_mapped_and_counted() {
    let mut l = ledger(3);
    let mut cells = Vec::new();
    let names: Vec<String> = (0..50).map(|i| format!("seg-{i}")).collect();
    for n in &names {
        cells.push(("checkout", Track::Stable, n.as_str(), 1, 0));
    }
    let b = batch("vm", 1, 3, &cells);
    assert!(l.ingest(b, 2_000).is_ok());
    let segs: Vec<&String> = l.totals.keys().map(|(_, s)| s).collect();
    assert_eq!(segs, vec![OTHER_SEGMENT], "50 free-form names, one key");
    assert_eq!(total(&l, "checkout", OTHER_SEGMENT).requests[0], 50);
    assert_eq!(l.counters.unknown_segments["checkout"], 50);
}

#[test]
fn histogram_keys_outside_real_latencies_and_wrapping_sums_are_refused() {
    let mut l = ledger(3);
    let mut b = batch("vm", 1, 3, &[("checkout", Track::Stable, "standard", 2, 0)]);
    let h = &mut b.cells[0].latency_us;
    h.buckets.clear();
    h.buckets.insert(-5, 1);
    h.buckets.insert(10, 1);
    let err = l.ingest(b.clone(), 2_000).unwrap_err().to_string();
    assert!(err.contains("key -5"), "{err}");
    let h = &mut b.cells[0].latency_us;
    h.buckets.clear();
    // Two counts that wrap to 2 in u64 arithmetic.
    h.buckets.insert(1, u64::MAX);
    h.buckets.insert(2, 3);
    let err = l.ingest(b, 2_000).unwrap_err().to_string();
    assert!(err.contains("overflow"), "{err}");
    assert_eq!(l.counters.batches_rejected, 2);
    assert!(l.totals.is_empty());
}
