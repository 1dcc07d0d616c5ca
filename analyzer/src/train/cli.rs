//! `dwcp-analyzer plan …`: the train for people, over the companion's HTTP API.

use crate::cli::{CliError, Client};
use serde_json::Value;
use std::io::Write;

/// The `plan status` table.
pub fn render(v: &Value) -> String {
    let mut out = format!(
        "plan {}  plan time {}  speed ×{}{}\n",
        v["plan"].as_str().unwrap_or("?"),
        v["now"]["time"].as_str().unwrap_or("?"),
        v["speed"],
        v["freeze"]["name"]
            .as_str()
            .map_or(String::new(), |f| format!("  FREEZE {f}"))
    );
    out.push_str(&format!(
        "{:<12} {:<12} {:<7} {:<18} {:<18} {:<18} {}\n",
        "ROLLOUT", "STATE", "PHASE", "STARTED", "PLANNED START", "PLANNED DONE", "WHY"
    ));
    let empty = Vec::new();
    for r in v["rollouts"].as_array().unwrap_or(&empty) {
        let s = |k: &str| r[k]["time"].as_str().unwrap_or("-").to_string();
        let planned_start = r["phases"][0]["planned"]["time"].as_str().unwrap_or("-");
        out.push_str(&format!(
            "{:<12} {:<12} {:<7} {:<18} {:<18} {:<18} {}\n",
            r["name"].as_str().unwrap_or(""),
            r["state"].as_str().unwrap_or(""),
            r["phase"].as_str().unwrap_or("-"),
            s("started"),
            planned_start,
            s("planned_done"),
            r["waiting"].as_str().unwrap_or("")
        ));
    }
    out
}

pub fn status(c: &Client, watch: Option<f64>) -> Result<(), CliError> {
    let Some(interval) = watch else {
        print!("{}", render(&c.get("/v1/plan")?));
        return Ok(());
    };
    let period = std::time::Duration::from_secs_f64(interval.max(0.2));
    loop {
        let table = match c.get("/v1/plan") {
            Ok(v) => render(&v),
            Err(e) => format!("{e}\n"),
        };
        print!("\x1b[2J\x1b[H{table}");
        let _ = std::io::stdout().flush();
        std::thread::sleep(period);
    }
}

pub fn explain(c: &Client, rollout: &str) -> Result<(), CliError> {
    let v = c.get(&format!("/v1/plan/{rollout}"))?;
    println!(
        "{rollout}: {} — {}",
        v["state"].as_str().unwrap_or("?"),
        v["waiting"]
            .as_str()
            .filter(|w| !w.is_empty())
            .unwrap_or("moving")
    );
    match v["not_before"]["time"].as_str() {
        Some(t) => println!(
            "  not before {t}: {}",
            if v["not_before_passed"] == true {
                "passed"
            } else {
                "not yet"
            }
        ),
        None => println!("  no not-before date"),
    }
    if let Some(f) = v["freeze"]["name"].as_str() {
        println!(
            "  freeze {f} until {}: nothing starts or is promoted",
            v["freeze"]["until"]["time"].as_str().unwrap_or("?")
        );
    }
    let empty = Vec::new();
    let gates = v["gates"].as_array().unwrap_or(&empty);
    if gates.is_empty() {
        println!("  no gates");
    }
    for g in gates {
        println!(
            "  gate {} at {} held {}: {}",
            g["rollout"].as_str().unwrap_or(""),
            g["phase"].as_str().unwrap_or(""),
            dwcp_plan::time::format_duration(g["held_ms"].as_u64().unwrap_or(0)),
            if g["open"] == true {
                "open".to_string()
            } else {
                g["why"].as_str().unwrap_or("").to_string()
            }
        );
    }
    Ok(())
}

pub fn command(
    c: &Client,
    rollout: &str,
    action: &str,
    reason: Option<&str>,
) -> Result<(), CliError> {
    // The audit actor is the token's credential name, not something the CLI says.
    let mut body = serde_json::json!({});
    if let Some(r) = reason {
        body["reason"] = Value::String(r.to_string());
    }
    let v = c.post(&format!("/v1/plan/{rollout}/{action}"), body)?;
    let empty = Vec::new();
    for e in v["events"].as_array().unwrap_or(&empty) {
        println!("{}", e["message"].as_str().unwrap_or(""));
    }
    Ok(())
}
