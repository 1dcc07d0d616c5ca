//! The companion's status page, loaded in a real headless Chromium (Debian's `chromium-headless-shell`
//! or `chromium`), against a real stack with a release train running: the page must render the
//! rollouts (status, phase, per-segment shares, verdict, last decision with evidence) and the train's
//! planned vs actual timeline, with nothing but the companion serving it. The screenshot is kept in
//! `target/e2e-artifacts/status-page.png`.
#![allow(clippy::panic, clippy::unwrap_used, clippy::expect_used)]

use dwcp_e2e::*;
use std::process::Command;
use std::time::Duration;

fn chromium() -> String {
    std::env::var("CHROMIUM_BIN").unwrap_or_else(|_| {
        ["/usr/bin/chromium-headless-shell", "/usr/bin/chromium"]
            .into_iter()
            .find(|p| std::path::Path::new(p).exists())
            .unwrap_or("/usr/bin/chromium-headless-shell")
            .to_string()
    })
}

const PLAN: &str = r#"
[plan]
name = "e2e-train"
start = 2027-01-04T00:00:00Z
[[freeze]]
name = "e2e freeze"
from = 2027-01-20T00:00:00Z
until = 2027-01-21T00:00:00Z
[[rollout]]
name = "demo"
title = "Demo service"
rollback_target = "2m"
phases = [{ name = "1%", hold = "1d" }, { name = "5%", hold = "2d" }, { name = "10%", hold = "1d" }, { name = "25%", hold = "1d" }, { name = "50%", hold = "1d" }, { name = "100%" }]
[[rollout]]
name = "manager"
title = "DWCP Manager"
rollback_target = "2m"
depends_on = [{ rollout = "demo", phase = "50%", held = "1d" }]
phases = [{ name = "1%", hold = "1d" }, { name = "5%", hold = "1d" }, { name = "10%", hold = "1d" }, { name = "25%", hold = "1d" }, { name = "50%", hold = "1d" }, { name = "100%" }]
"#;

fn dom(url: &str) -> String {
    let out = Command::new(chromium())
        .args([
            "--no-sandbox",
            "--disable-gpu",
            "--headless",
            "--virtual-time-budget=2500",
            "--dump-dom",
            url,
        ])
        .output()
        .unwrap_or_else(|e| {
            panic!(
                "{}: {e} (apt-get install chromium-headless-shell)",
                chromium()
            )
        });
    assert!(
        out.status.success(),
        "chromium failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).to_string()
}

#[test]
fn status_page_renders_in_headless_chromium() {
    let dir = tempfile::tempdir().unwrap();
    let plan = dir.path().join("plan.toml");
    std::fs::write(&plan, PLAN).unwrap();
    let toml = format!(
        "tick_ms = 200\n[train]\nplan = \"{}\"\nspeed = 86400\n[[rollout]]\nname = \"demo\"\nskip_shadow = true\nphase_seconds = 1\nmin_requests = 20\n[[rollout]]\nname = \"manager\"\nskip_shadow = true\n",
        plan.display()
    );
    let s = Stack::start(StackOpts {
        plugin_config: shipped_plugin_config(),
        analyzer_toml: toml,
        concurrency: 1,
    });
    // Traffic until the train has started the demo and the companion has judged a few windows.
    let ok = eventually(Duration::from_secs(30), || {
        for i in 0..50 {
            let id = format!("page-{i}");
            s.get("/", &[("x-user-id", id.as_str())]);
        }
        let v = s.get_json(&format!("{}/v1/plan", s.analyzer_url()));
        v["rollouts"][0]["phases"][0]["actual"].is_object()
            && !s.rollout("demo")["verdict"].is_null()
    });
    assert!(
        ok.is_some(),
        "the train never started the demo: {}",
        s.get_json(&format!("{}/v1/plan", s.analyzer_url()))
    );
    let html = dom(&s.analyzer_url());
    // Rendered by the page's own script from the API: a row per rollout with status, phase, shares and
    // per-segment verdicts.
    assert!(
        html.contains("data-loaded=\"yes\""),
        "the script did not finish: {html}"
    );
    let row = html
        .split("<tr class=\"rollout\" data-rollout=\"demo\">")
        .nth(1)
        .expect("demo row")
        .split("</tr>")
        .next()
        .unwrap()
        .to_string();
    for want in [
        "class=\"status\">paused<",
        "class=\"shares\">",
        "standard ",
        "internal 100%",
        // The per-segment verdict: internal users are all on canary, so never tested.
        "internal 100% <span class=\"seg-untested\">(untested)</span>",
        "class=\"verdict\">",
        "<b>",
    ] {
        assert!(row.contains(want), "demo row lacks {want:?}: {row}");
    }
    assert!(
        html.contains("data-rollout=\"manager\""),
        "every rollout has a row"
    );
    // The train: timeline with planned and actual bars, the freeze, and the table.
    assert!(html.contains("<svg id=\"timeline\""));
    assert!(
        html.contains("class=\"planned\" data-rollout=\"manager\""),
        "planned bars for a system not started yet"
    );
    assert!(
        html.contains("class=\"actual\" data-rollout=\"demo\""),
        "actual bars for the running system"
    );
    assert!(
        !html.contains("class=\"actual\" data-rollout=\"manager\""),
        "no actual bar before it starts"
    );
    assert!(html.contains("class=\"freeze\""));
    assert!(
        html.contains("waiting for demo to reach 50%"),
        "why the manager waits"
    );
    assert!(
        html.contains("judgment holds it") || html.contains("holding 1%"),
        "why the demo waits"
    );
    // Screenshot kept as an artifact.
    let art = root().join("target/e2e-artifacts");
    std::fs::create_dir_all(&art).unwrap();
    let png = art.join("status-page.png");
    let _ = std::fs::remove_file(&png);
    let out = Command::new(chromium())
        .args([
            "--no-sandbox",
            "--disable-gpu",
            "--headless",
            "--virtual-time-budget=2500",
            "--window-size=1280,900",
        ])
        .arg(format!("--screenshot={}", png.display()))
        .arg(s.analyzer_url())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let bytes = std::fs::read(&png).unwrap();
    assert!(
        bytes.starts_with(b"\x89PNG") && bytes.len() > 20_000,
        "screenshot {} bytes",
        bytes.len()
    );
    println!("screenshot: {} ({} bytes)", png.display(), bytes.len());
}
