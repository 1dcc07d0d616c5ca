//! Flags for the apps, decided like the mesh: a real OpenFeature client (the Python SDK with its OFREP
//! provider, from PyPI) asks the companion for `dwcp-demo-v2` for 10 000 users while the same users go
//! through a real Envoy with the filter; the app-side variant must equal the track Envoy routed each
//! one to. Then the flag file's kill switch is turned off: the app side and the filter must both flip
//! to the baseline, the filter at its next sync.
//!
//! Needs `make build` and the OFREP client venv (`make ofrep-venv`, or `$OFREP_PYTHON`).
#![allow(clippy::panic, clippy::unwrap_used, clippy::expect_used)]

use dwcp_e2e::*;
use serde_json::{json, Value};
use std::io::BufRead;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

fn python() -> String {
    std::env::var("OFREP_PYTHON")
        .unwrap_or_else(|_| root().join(".venv-ofrep/bin/python").display().to_string())
}

fn wall_s() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

/// User `i`: id and attributes (as the app knows them) spread over every segment, and the same as
/// request headers (as the sidecar sees them).
fn user(i: usize) -> (String, Value, Vec<(&'static str, String)>) {
    let id = format!("app-user-{i}");
    let (attrs, headers) = match i % 6 {
        0 => (
            json!({"email": format!("u{i}@company.com")}),
            vec![("x-user-email", format!("u{i}@company.com"))],
        ),
        1 => (
            json!({"beta_opt_in": true}),
            vec![("x-beta-opt-in", "true".to_string())],
        ),
        2 => (
            json!({"tier": "premium"}),
            vec![("x-user-tier", "premium".to_string())],
        ),
        3 => (
            json!({"tier": "enterprise"}),
            vec![("x-user-tier", "enterprise".to_string())],
        ),
        _ => (json!({}), vec![]),
    };
    let mut h = vec![("x-user-id", id.clone())];
    h.extend(headers);
    (id, attrs, h)
}

#[test]
fn ofrep_client_gets_the_sidecars_track_and_the_kill_switch_flips_both() {
    let py = python();
    assert!(
        std::path::Path::new(&py).exists(),
        "{py} missing: run `make ofrep-venv` (PyPI openfeature-sdk + openfeature-provider-ofrep)"
    );
    let dir = tempfile::tempdir().unwrap();
    let flags_path = dir.path().join("flags.json");
    let shipped = std::fs::read_to_string(root().join("envoy/flags.json")).unwrap();
    std::fs::write(&flags_path, &shipped).unwrap();
    let toml = format!(
        "tick_ms = 200\nflags = \"{}\"\n[[rollout]]\nname = \"demo\"\nautostart = true\nphases = [{{ name = \"25%\", canary_bp = 2500, min_duration_ms = 3600000, min_requests = 1000000 }}, {{ name = \"100%\", canary_bp = 10000, min_duration_ms = 0, min_requests = 0 }}]\n",
        flags_path.display()
    );
    let s = Stack::start(StackOpts {
        plugin_config: shipped_plugin_config(),
        analyzer_toml: toml,
        concurrency: 2,
    });
    s.wait_all_vms_current(2, Duration::from_secs(20));

    // 10 000 users through Envoy.
    let n = 10_000;
    let mut routed = Vec::with_capacity(n);
    let mut users = Vec::with_capacity(n);
    for i in 0..n {
        let (id, attrs, headers) = user(i);
        let h: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let (code, by) = s.get("/", &h);
        assert!(
            code < 500 && (by == "canary" || by == "stable"),
            "user {i}: {code} {by:?}"
        );
        routed.push(by == "canary");
        users.push(json!({"id": id, "attrs": attrs}));
    }
    // The same users asked by the app through OFREP.
    let users_path = dir.path().join("users.json");
    std::fs::write(&users_path, serde_json::to_string(&users).unwrap()).unwrap();
    let out = Command::new(&py)
        .args([
            root().join("tests/ofrep_client.py").to_str().unwrap(),
            &s.analyzer_url(),
            "dwcp-demo-v2",
            "eval",
            users_path.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "client failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let app: Vec<bool> = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(app.len(), n);
    let differ: Vec<usize> = (0..n).filter(|&i| app[i] != routed[i]).collect();
    let canaries = routed.iter().filter(|c| **c).count();
    println!(
        "{n} users: {canaries} on canary by Envoy, {} by OFREP, {} differ",
        app.iter().filter(|c| **c).count(),
        differ.len()
    );
    assert!(
        differ.is_empty(),
        "{} users differ, first {:?}",
        differ.len(),
        &differ[..differ.len().min(5)]
    );
    assert!(
        canaries > 2_000 && canaries < n,
        "the comparison is not vacuous: {canaries} canaries"
    );

    // Kill switch off in the flag file: both sides flip to the baseline.
    let watched = (0..n)
        .find(|&i| routed[i] && i % 6 >= 4)
        .map(|i| user(i))
        .unwrap();
    let mut watch = Command::new(&py)
        .args([
            root().join("tests/ofrep_client.py").to_str().unwrap(),
            &s.analyzer_url(),
            "dwcp-demo-v2",
            "watch",
            &watched.0,
        ])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = std::io::BufReader::new(watch.stdout.take().unwrap()).lines();
    assert_eq!(lines.next().unwrap().unwrap(), "ready");
    let killed = shipped.replacen(
        "\"defaultVariant\": \"on\"",
        "\"defaultVariant\": \"off\"",
        1,
    );
    assert_ne!(killed, shipped);
    let t0 = wall_s();
    std::fs::write(&flags_path, killed).unwrap();
    let h: Vec<(&str, &str)> = watched.2.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let start = Instant::now();
    let mut filter_flip = None;
    while start.elapsed() < Duration::from_secs(10) {
        if s.get("/", &h).1 == "stable" {
            filter_flip = Some(wall_s() - t0);
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let app_flip: f64 = lines.next().unwrap().unwrap().parse::<f64>().unwrap() - t0;
    let _ = watch.wait();
    let filter_flip = filter_flip.expect("Envoy never routed the watched user to stable");
    println!("kill switch: app side flipped after {app_flip:.3} s, filter after {filter_flip:.3} s (tick 0.2 s, sync period 1 s)");
    // The companion sees the file at its next tick (0.2 s); the filter adopts at its next sync (1 s).
    assert!(app_flip <= 0.2 + 0.3, "app side after {app_flip:.3} s");
    assert!(
        filter_flip <= 0.2 + 1.0 + 0.3,
        "filter after {filter_flip:.3} s"
    );
    let kill = s.get_json(&format!("{}/v1/config", s.analyzer_url()));
    assert_eq!(kill["state"]["kill_all"], true, "{kill}");
    // Everyone is on the baseline now, app side and sidecar.
    let flags = ureq::post(&format!("{}/ofrep/v1/evaluate/flags", s.analyzer_url()))
        .send_json(json!({"context": {"targetingKey": watched.0}}))
        .unwrap()
        .into_json::<Value>()
        .unwrap();
    let v = flags["flags"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["key"] == "dwcp-demo-v2")
        .unwrap()
        .clone();
    assert_eq!(
        (v["value"].clone(), v["reason"].clone()),
        (json!(false), json!("DISABLED")),
        "{v}"
    );
}
