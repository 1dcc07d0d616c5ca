use super::*;
use dwcp_core::decision::{decide, Track};
use dwcp_core::state::{RolloutState, SyncResponse};

fn vm() -> Vm {
    let cfg = FilterConfig::from_slice(br#"{"rollouts":[{"name":"checkout"}]}"#).unwrap();
    Vm::new(cfg, "vm-1".into())
}

fn state(version: u64, pct: u32) -> DynamicState {
    let mut s = DynamicState {
        version,
        ..Default::default()
    };
    s.rollouts.insert(
        "checkout".into(),
        RolloutState {
            phase: "x".into(),
            segments: [("standard".to_string(), pct)].into(),
            ..Default::default()
        },
    );
    s
}

fn body(s: &DynamicState) -> Vec<u8> {
    serde_json::to_vec(&SyncResponse { state: s.clone() }).unwrap()
}

#[test]
fn freshness_follows_contact() {
    let mut v = vm();
    v.refresh(0);
    assert_eq!(v.freshness, Freshness::Never);
    v.in_flight = Some((1, Batch::default()));
    assert!(v
        .on_sync_response(1, Some(200), &body(&state(1, 100)), 1_000)
        .is_some());
    v.refresh(5_000);
    assert_eq!(v.freshness, Freshness::Fresh);
    v.refresh(11_001);
    assert_eq!(v.freshness, Freshness::Stale);
}

#[test]
fn older_state_is_ignored_and_shared_data_propagates() {
    let mut v = vm();
    assert!(v.adopt(state(5, 100), 10));
    assert!(!v.adopt(state(4, 200), 20));
    assert_eq!(v.state_version(), 5);
    let mut other = vm();
    let shared = serde_json::to_vec(&SharedState {
        received_at_ms: 30,
        state: state(6, 300),
    })
    .unwrap();
    assert!(other.adopt_shared(&shared));
    assert_eq!(other.state_version(), 6);
    assert!(!other.adopt_shared(b"not json"));
}

#[test]
fn a_failed_or_unacknowledged_batch_is_resent_unchanged_and_new_counts_wait() {
    let mut v = vm();
    let st = state(1, 10_000);
    v.adopt(st.clone(), 0);
    v.refresh(0);
    let h: Vec<(String, Vec<u8>)> = vec![("x-user-id".into(), b"u".to_vec())];
    let d = decide(&v.cfg, v.state.as_ref(), v.freshness, 0, h.as_slice());
    assert_eq!(d.track, Track::Canary);
    v.record(&d, 503, 1000, false);
    v.record(&d, 200, 1000, false);
    let (b, new) = v.next_batch(0);
    assert!(new);
    v.in_flight = Some((7, b.clone()));
    // A 5xx or a timeout: the companion may have taken it (its answer was lost).
    assert!(v.on_sync_response(7, Some(503), b"", 0).is_none());
    v.record(&d, 200, 1000, false);
    let (again, new) = v.next_batch(0);
    assert!(!new, "a resent batch is not exported to Envoy again");
    assert_eq!(
        again, b,
        "same identity (vm, seq) and content: nothing lost, nothing merged"
    );
    v.in_flight = Some((8, again));
    assert!(v.on_sync_response(8, None, b"", 0).is_none(), "timeout");
    let (third, _) = v.next_batch(0);
    assert_eq!((third.vm.as_str(), third.seq), (b.vm.as_str(), b.seq));
    v.in_flight = Some((9, third));
    let _ = v.on_sync_response(9, Some(200), &body(&state(1, 10_000)), 0);
    // Acknowledged: the next batch is new, with the request recorded meanwhile and the failure counts.
    let (next, new) = v.next_batch(0);
    assert!(new);
    assert_eq!(next.seq, b.seq + 1);
    assert_eq!(next.cells[0].requests, 1);
    assert_eq!(next.counters.get("sync_failed"), Some(&2));
}

#[test]
fn a_state_of_another_epoch_is_adopted_whatever_its_version() {
    let mut v = vm();
    let mut old = state(40, 10_000);
    old.epoch = 7;
    assert!(v.adopt(old, 0));
    let mut same_epoch_older = state(3, 0);
    same_epoch_older.epoch = 7;
    assert!(
        !v.adopt(same_epoch_older.clone(), 10),
        "same epoch, older: refused"
    );
    let mut restored = same_epoch_older;
    restored.epoch = 8;
    assert!(
        v.adopt(restored, 20),
        "a restored database's state (new epoch) is adopted"
    );
    assert_eq!((v.state_epoch(), v.state_version()), (8, 3));
    // The batch window that straddled the change is labelled with the epoch it started in.
    let b = v.cut_batch(30);
    assert_eq!(
        b.epoch, 0,
        "nothing was routed under a state before the first cut"
    );
    let b = v.cut_batch(40);
    assert_eq!((b.epoch, b.state_version), (8, 3));
}

#[test]
fn response_for_another_token_is_ignored() {
    let mut v = vm();
    v.in_flight = Some((2, Batch::default()));
    assert!(v
        .on_sync_response(1, Some(200), &body(&state(1, 1)), 0)
        .is_none());
    assert!(v.in_flight.is_some());
}

#[test]
fn adopting_a_state_makes_it_fresh_at_once() {
    let mut v = vm();
    v.in_flight = Some((1, Batch::default()));
    v.on_sync_response(1, Some(200), &body(&state(1, 100)), 1_000);
    assert_eq!(v.freshness, Freshness::Fresh);
}

#[test]
fn a_batch_straddling_a_state_change_carries_the_older_version() {
    let mut v = vm();
    v.adopt(state(3, 100), 0);
    v.refresh(0);
    assert_eq!(
        v.cut_batch(0).state_version,
        0,
        "window began before any state"
    );
    assert_eq!(v.cut_batch(1).state_version, 3);
    v.adopt(state(4, 200), 2);
    assert_eq!(v.cut_batch(3).state_version, 3, "straddles 3 -> 4");
    assert_eq!(v.cut_batch(4).state_version, 4);
}

/// The answer of a first-release companion, committed verbatim.
const V0_SYNC: &str = include_str!("../../../dwcp-core/testdata/wire/sync-response-v0.json");

#[test]
fn states_of_older_and_newer_companions_route_alike() {
    // Older: the first release's answer (no protocol field) is adopted as it is.
    let mut old = vm();
    old.in_flight = Some((1, Batch::default()));
    assert!(old
        .on_sync_response(1, Some(200), V0_SYNC.as_bytes(), 1_000)
        .is_some());
    let held = old.state.clone().unwrap();
    assert_eq!(held.protocol, 0);
    assert_eq!(
        (
            held.version,
            held.rollouts["checkout"].canary_bp("standard")
        ),
        (4, 500)
    );
    assert_eq!(held.rollouts["checkout"].canary_bp("beta"), 10_000);
    // Newer: fields and a rollout this filter does not know are ignored; what it knows is the same.
    let mut v: serde_json::Value = serde_json::from_str(V0_SYNC).unwrap();
    v["state"]["protocol"] = serde_json::json!(9);
    v["state"]["region_overrides"] = serde_json::json!({"eu": {"kill_all": true}});
    v["state"]["rollouts"]["checkout"]["ramp"] = serde_json::json!({"next_bp": 1000});
    v["state"]["rollouts"]["not-in-this-filter"] =
        serde_json::json!({"phase": "50%", "segments": {"standard": 5000}, "colour": "red"});
    v["added_later"] = serde_json::json!(true);
    let mut new = vm();
    new.in_flight = Some((1, Batch::default()));
    assert!(new
        .on_sync_response(1, Some(200), &serde_json::to_vec(&v).unwrap(), 1_000)
        .is_some());
    let got = new.state.clone().unwrap();
    assert_eq!(got.version, held.version);
    assert_eq!(got.kill_all, held.kill_all);
    assert_eq!(got.rollouts["checkout"], held.rollouts["checkout"]);
    assert!(
        new.cfg
            .rollouts
            .iter()
            .all(|r| r.name != "not-in-this-filter"),
        "a rollout absent from the plugin config is never routed"
    );
    // And the batch this filter sends says which protocol it speaks.
    assert_eq!(
        new.cut_batch(2_000).protocol,
        dwcp_core::telemetry::PROTOCOL_VERSION
    );
}

#[test]
fn a_client_reset_is_a_request_but_not_an_error() {
    let mut v = vm();
    v.adopt(state(1, 10_000), 0);
    v.refresh(0);
    let h: Vec<(String, Vec<u8>)> = vec![("x-user-id".into(), b"u".to_vec())];
    let d = decide(&v.cfg, v.state.as_ref(), v.freshness, 0, h.as_slice());
    v.record(&d, 0, 9_000, true); // the client gave up
    v.record(&d, 0, 9_000, false); // the upstream reset: an error
    let b = v.cut_batch(0);
    assert_eq!(b.cells[0].requests, 2, "{:?}", b.cells);
    assert_eq!(
        b.cells[0].errors, 1,
        "only the upstream's reset is an error"
    );
}

#[test]
fn test_panic_header_needs_a_test_build() {
    let cfg = br#"{"test_panic_header": "x-test-crash"}"#;
    let r = crate::vm::accept_config(cfg);
    if cfg!(feature = "test-hooks") {
        assert!(r.is_ok(), "{r:?}");
    } else {
        let e = r.unwrap_err();
        assert!(e.contains("test_panic_header"), "{e}");
    }
    assert!(crate::vm::accept_config(b"{}").is_ok());
}
