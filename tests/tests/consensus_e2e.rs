//! The consensus engines hosted by the companion, through the real companion binary and a real
//! Envoy: transactions commit on the in-process T-PBFT and ProBFT clusters; an equivocating T-PBFT
//! replica (issue 13), a ProBFT replica forging its VRF proofs (issue 14) and a Bullshark validator
//! signing two headers for one round (issue 15), injected through the
//! operator's fault route during rollouts, abort the rollout that delivers that engine with
//! `ByzantineAttackDetected` in its evidence, while the other rollouts keep running.
// Test helpers stop the test with a message when the stack misbehaves.
#![allow(clippy::panic, clippy::unwrap_used, clippy::expect_used)]

use dwcp_e2e::*;
use serde_json::{json, Value};
use std::time::Duration;

fn post(s: &Stack, path: &str, body: Value, auth: bool) -> (u16, Value) {
    let mut r = ureq::post(&format!("{}{path}", s.analyzer_url()));
    if auth {
        r = r.set("authorization", &format!("Bearer {TOKEN}"));
    }
    match r.send_json(body) {
        Ok(r) => (r.status(), r.into_json().unwrap_or(Value::Null)),
        Err(ureq::Error::Status(code, r)) => (code, r.into_json().unwrap_or(Value::Null)),
        Err(e) => panic!("{path}: no answer: {e}"),
    }
}

fn status(s: &Stack, engine: &str) -> Value {
    s.get_json(&format!("{}/v1/engines/{engine}/status", s.analyzer_url()))
}

/// Submits `k` transactions to `engine`; every one must commit.
fn commit_txs(s: &Stack, engine: &str, k: usize, tag: &str) {
    for i in 0..k {
        let (code, v) = post(
            s,
            &format!("/v1/engines/{engine}/tx"),
            json!({"payload": format!("{tag}-{i}")}),
            true,
        );
        assert_eq!(code, 200, "{engine} tx {i}: {v}");
        assert_eq!(v["committed"], true, "{v}");
    }
}

fn stack(rollouts: &str, consensus: &str) -> Stack {
    Stack::start(StackOpts {
        plugin_config: shipped_plugin_config(),
        analyzer_toml: format!("{rollouts}{consensus}"),
        concurrency: 1,
    })
}

const ROLLOUT: &str = "[[rollout]]\nname = \"{name}\"\nautostart = true\nskip_shadow = true\n";

fn rollout(name: &str, engine: Option<&str>) -> String {
    let mut r = ROLLOUT.replace("{name}", name);
    if let Some(e) = engine {
        r.push_str(&format!("engine = \"{e}\"\n"));
    }
    r
}

/// Waits for `name` to be rolled back and returns the engine event in its evidence (after checking
/// it is a `ByzantineAttackDetected` of `engine` for `behaviour` naming `suspect`).
fn aborted_by(s: &Stack, name: &str, engine: &str, behaviour: &str, suspect: u64) -> Value {
    let rb = aborted(s, name);
    let ev = &rb["evidence"]["engine_event"]["evidence"];
    assert_eq!(ev["kind"], "ByzantineAttackDetected", "{rb}");
    assert_eq!(ev["engine"], engine, "{rb}");
    assert_eq!(ev["behaviour"], behaviour, "{rb}");
    assert_eq!(ev["suspect"], suspect, "{rb}");
    assert_eq!(
        rb["evidence"]["engine_event"]["trigger"], "byzantine_attack",
        "{rb}"
    );
    ev.clone()
}

/// Waits for `name` to be rolled back and returns its `rolled_back` event.
fn aborted(s: &Stack, name: &str) -> Value {
    let t = eventually(Duration::from_secs(20), || {
        s.rollout(name)["status"] == "rolled_back"
    });
    assert!(
        t.is_some(),
        "{name} was not rolled back: {}",
        s.rollout(name)
    );
    s.rolled_back_event(name)
}

#[test]
fn an_equivocating_tpbft_replica_aborts_the_tpbft_rollout_only() {
    let s = stack(
        &[
            rollout("ledger-tpbft", Some("tpbft")),
            rollout("ledger-pbft", Some("pbft")),
            rollout("demo", None),
        ]
        .concat(),
        "[consensus.tpbft]\nn = 16\ncommittee = 4\n[consensus.probft]\nenabled = false\n[consensus.bullshark]\nenabled = false\n",
    );
    // Writes need the operator role; bad input is the client's 4xx.
    let (code, _) = post(&s, "/v1/engines/tpbft/tx", json!({"payload": "x"}), false);
    assert_eq!(code, 401);
    let (code, v) = post(
        &s,
        "/v1/engines/tpbft/tx",
        json!({"payload_b64": "%%"}),
        true,
    );
    assert_eq!(code, 400, "{v}");
    let (code, v) = post(
        &s,
        "/v1/engines/tpbft/faults",
        json!({"replica": 16, "behaviour": "equivocate"}),
        true,
    );
    assert_eq!(code, 400, "{v}");
    let (code, v) = post(
        &s,
        "/v1/engines/tpbft/faults",
        json!({"replica": 1, "behaviour": "forge_vrf"}),
        true,
    );
    assert_eq!(code, 422, "{v}");

    commit_txs(&s, "tpbft", 4, "before");
    commit_txs(&s, "pbft", 2, "before");
    let st = status(&s, "tpbft");
    assert!(st["committed_height"].as_u64().unwrap() >= 1, "{st}");
    assert_eq!(st["members"].as_array().unwrap().len(), 16, "{st}");
    assert_eq!(
        st["engine_state"]["trust"].as_array().unwrap().len(),
        16,
        "{st}"
    );
    let committee: Vec<u64> = st["engine_state"]["committee"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_u64().unwrap())
        .collect();
    assert_eq!(committee.len(), 4, "{st}");
    for r in ["ledger-tpbft", "ledger-pbft", "demo"] {
        assert_eq!(s.rollout(r)["status"], "running", "{r} before the fault");
    }

    // A committee member that is not the primary starts double-voting.
    let bad = committee[1];
    let (code, v) = post(
        &s,
        "/v1/engines/tpbft/faults",
        json!({"replica": bad, "behaviour": "equivocate"}),
        true,
    );
    assert_eq!(code, 200, "{v}");
    for i in 0..4 {
        // Commits may now take a view change or an epoch: do not insist on 200 here.
        let (code, v) = post(
            &s,
            "/v1/engines/tpbft/tx",
            json!({"payload": format!("after-{i}")}),
            true,
        );
        assert!(code == 200 || code == 202, "{code} {v}");
    }
    let ev = aborted_by(&s, "ledger-tpbft", "tpbft", "equivocation", bad);
    eprintln!("tpbft rollout evidence: {ev}");

    // Nothing else is touched.
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(s.rollout("ledger-pbft")["status"], "running");
    assert_eq!(s.rollout("demo")["status"], "running");
    let m = s.analyzer_metrics();
    let byz = metric_sum(
        &m,
        "dwcp_consensus_byzantine_detections_total",
        &[("engine", "tpbft"), ("behaviour", "equivocation")],
    );
    assert!(byz >= 1.0, "no equivocation counted:\n{m}");
    assert!(
        m.contains("dwcp_engine_events_total{engine=\"pbft\",kind=\"byzantine\"} 0"),
        "{m}"
    );
    assert!(metric_sum(&m, "dwcp_consensus_decisions_total", &[("engine", "tpbft")]) >= 4.0);
    assert!(
        metric_sum(
            &m,
            "dwcp_consensus_commit_latency_seconds_count",
            &[("engine", "tpbft")]
        ) >= 4.0
    );
    eprintln!(
        "tpbft: equivocator {bad}, {byz} equivocation alarms; status {}",
        status(&s, "tpbft")
    );
}

#[test]
fn a_forged_vrf_proof_aborts_the_probft_rollout_only() {
    let s = stack(
        &[
            rollout("ledger-probft", Some("probft")),
            rollout("demo", None),
        ]
        .concat(),
        "[consensus.probft]\nn = 16\n[consensus.tpbft]\nenabled = false\n[consensus.bullshark]\nenabled = false\n",
    );
    commit_txs(&s, "probft", 3, "before");
    let st = status(&s, "probft");
    assert_eq!(st["engine_state"]["sample_size"], 8, "{st}");
    assert_eq!(st["engine_state"]["quorum"], 6, "{st}");
    assert_eq!(s.rollout("ledger-probft")["status"], "running");

    let (code, v) = post(
        &s,
        "/v1/engines/probft/faults",
        json!({"replica": 3, "behaviour": "forge_vrf"}),
        true,
    );
    assert_eq!(code, 200, "{v}");
    for i in 0..2 {
        let (code, v) = post(
            &s,
            "/v1/engines/probft/tx",
            json!({"payload": format!("after-{i}")}),
            true,
        );
        assert!(code == 200 || code == 202, "{code} {v}");
    }
    let ev = aborted_by(&s, "ledger-probft", "probft", "bad_vrf_proof", 3);
    eprintln!("probft rollout evidence: {ev}");
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(s.rollout("demo")["status"], "running");
    let m = s.analyzer_metrics();
    let byz = metric_sum(
        &m,
        "dwcp_consensus_byzantine_detections_total",
        &[("engine", "probft"), ("behaviour", "bad_vrf_proof")],
    );
    assert!(byz >= 1.0, "no forged proof counted:\n{m}");
    eprintln!(
        "probft: {byz} forged-proof alarms; status {}",
        status(&s, "probft")
    );
}

#[test]
fn an_equivocating_bullshark_validator_aborts_the_bullshark_rollout_only() {
    let s = stack(
        &[
            rollout("ledger-bullshark", Some("bullshark")),
            rollout("ledger-pbft", Some("pbft")),
        ]
        .concat(),
        "[consensus.bullshark]\nn = 4\n[consensus.tpbft]\nenabled = false\n[consensus.probft]\nenabled = false\n",
    );
    commit_txs(&s, "bullshark", 3, "before");
    commit_txs(&s, "pbft", 1, "before");
    let st = status(&s, "bullshark");
    assert!(st["committed_height"].as_u64().unwrap() >= 1, "{st}");
    assert!(st["engine_state"]["round"].as_u64().unwrap() >= 2, "{st}");
    assert_eq!(st["txs"]["committed"], 3, "{st}");
    for r in ["ledger-bullshark", "ledger-pbft"] {
        assert_eq!(s.rollout(r)["status"], "running", "{r} before the fault");
    }

    let bad = 2;
    let (code, v) = post(
        &s,
        "/v1/engines/bullshark/faults",
        json!({"replica": bad, "behaviour": "equivocate"}),
        true,
    );
    assert_eq!(code, 200, "{v}");
    commit_txs(&s, "bullshark", 2, "after");
    let ev = aborted_by(&s, "ledger-bullshark", "bullshark", "equivocation", bad);
    eprintln!("bullshark rollout evidence: {ev}");

    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(s.rollout("ledger-pbft")["status"], "running");
    let m = s.analyzer_metrics();
    let byz = metric_sum(
        &m,
        "dwcp_consensus_byzantine_detections_total",
        &[("engine", "bullshark"), ("behaviour", "equivocation")],
    );
    assert!(byz >= 1.0, "no equivocation counted:\n{m}");
    assert!(
        m.contains("dwcp_engine_events_total{engine=\"pbft\",kind=\"byzantine\"} 0"),
        "{m}"
    );
    assert!(
        metric_sum(
            &m,
            "dwcp_consensus_decisions_total",
            &[("engine", "bullshark")]
        ) >= 1.0
    );
    eprintln!(
        "bullshark: equivocator {bad}, {byz} equivocation alarms; status {}",
        status(&s, "bullshark")
    );
}
