//! The operator CLI over the HTTP API. Exit codes: 0 ok, 1 refused by the service (4xx), 69 service
//! unreachable or failing (EX_UNAVAILABLE), 77 wrong token (EX_NOPERM), 2 usage (clap).

use serde_json::Value;
use std::io::Write;
use std::process::ExitCode;

#[derive(Debug, thiserror::Error)]
pub enum CliError {
    #[error("{0}")]
    Refused(String),
    #[error("{0}")]
    Unauthorized(String),
    #[error("{0}")]
    Unavailable(String),
    #[error("{0}")]
    Other(String),
}

#[derive(Clone, Copy, Debug, clap::ValueEnum)]
pub enum OnOff {
    On,
    Off,
}

pub fn exit(r: Result<(), CliError>) -> ExitCode {
    match r {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("dwcp-analyzer: {e}");
            ExitCode::from(match e {
                CliError::Refused(_) | CliError::Other(_) => 1,
                CliError::Unauthorized(_) => 77,
                CliError::Unavailable(_) => 69,
            })
        }
    }
}

pub struct Client {
    url: String,
    token: String,
    agent: ureq::Agent,
}

impl Client {
    pub fn new(url: &str, token: &str) -> Self {
        let agent = ureq::AgentBuilder::new()
            .timeout(std::time::Duration::from_secs(10))
            .build();
        Self {
            url: url.trim_end_matches('/').to_string(),
            token: token.to_string(),
            agent,
        }
    }

    fn handle(&self, r: Result<ureq::Response, ureq::Error>) -> Result<Value, CliError> {
        match r {
            Ok(resp) => resp
                .into_json::<Value>()
                .map_err(|e| CliError::Unavailable(format!("bad response: {e}"))),
            Err(ureq::Error::Status(code, resp)) => {
                let msg = resp
                    .into_json::<Value>()
                    .ok()
                    .and_then(|v| v.get("error").and_then(Value::as_str).map(str::to_string))
                    .unwrap_or_default();
                match code {
                    401 | 403 => Err(CliError::Unauthorized(format!(
                        "{code}: {msg} (set DWCP_TOKEN or --token to a credential with that role)"
                    ))),
                    400..=499 => Err(CliError::Refused(format!("{code}: {msg}"))),
                    _ => Err(CliError::Unavailable(format!("{code}: {msg}"))),
                }
            }
            Err(e) => Err(CliError::Unavailable(format!(
                "cannot reach {}: {e}",
                self.url
            ))),
        }
    }

    /// Adds the bearer token, when there is one (reads may be public; writes need the operator role).
    fn authed(&self, req: ureq::Request) -> ureq::Request {
        if self.token.is_empty() {
            req
        } else {
            req.set("authorization", &format!("Bearer {}", self.token))
        }
    }

    pub fn get(&self, path: &str) -> Result<Value, CliError> {
        let req = self.authed(self.agent.get(&format!("{}{path}", self.url)));
        self.handle(req.call())
    }

    pub fn post(&self, path: &str, body: Value) -> Result<Value, CliError> {
        let req = self.authed(self.agent.post(&format!("{}{path}", self.url)));
        self.handle(req.send_json(body))
    }

    pub fn status(&self) -> Result<(), CliError> {
        let v = self.get("/v1/rollouts")?;
        print!("{}", render_table(&v));
        Ok(())
    }

    pub fn watch(&self, interval: f64) -> Result<(), CliError> {
        let period = std::time::Duration::from_secs_f64(interval.max(0.2));
        loop {
            let table = match self.get("/v1/rollouts") {
                Ok(v) => render_table(&v),
                Err(e) => format!("{e}\n"),
            };
            print!("\x1b[2J\x1b[H{table}");
            let _ = std::io::stdout().flush();
            std::thread::sleep(period);
        }
    }

    pub fn command(&self, name: &str, action: &str) -> Result<(), CliError> {
        let v = self.post(
            &format!("/v1/rollouts/{name}/{action}"),
            serde_json::json!({}),
        )?;
        for e in v
            .get("events")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            println!("{}", e.get("message").and_then(Value::as_str).unwrap_or(""));
        }
        Ok(())
    }

    pub fn events(&self, name: &str, json: bool) -> Result<(), CliError> {
        let v = self.get(&format!("/v1/rollouts/{name}/events"))?;
        if json {
            println!("{}", serde_json::to_string_pretty(&v).unwrap_or_default());
            return Ok(());
        }
        for e in v
            .get("events")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let at = e.get("at_ms").and_then(Value::as_u64).unwrap_or(0);
            let kind = e.get("kind").and_then(Value::as_str).unwrap_or("");
            let actor = e.get("actor").and_then(Value::as_str).unwrap_or("-");
            let msg = e.get("message").and_then(Value::as_str).unwrap_or("");
            println!("{at:>14}  {kind:<16} {actor:<10} {msg}");
            if let Some(v) = e.get("verdict").filter(|v| !v.is_null()) {
                println!(
                    "{:>14}  evidence: trigger={} statistic={} threshold={} canary_n={} stable_n={}",
                    "",
                    v["trigger"].as_str().unwrap_or(""),
                    v["statistic"],
                    v["threshold"],
                    v["canary_n"],
                    v["stable_n"]
                );
            }
        }
        Ok(())
    }

    pub fn kill(&self, s: OnOff) -> Result<(), CliError> {
        let on = matches!(s, OnOff::On);
        let v = self.post("/v1/kill", serde_json::json!({ "kill_all": on }))?;
        println!("kill_all={} version={}", v["kill_all"], v["version"]);
        Ok(())
    }
}

fn pct(v: &Value) -> String {
    v.as_f64()
        .map_or_else(|| "-".into(), |f| format!("{:.2}%", f * 100.0))
}

fn ms(v: &Value) -> String {
    v.as_f64().map_or_else(|| "-".into(), |f| format!("{f:.1}"))
}

/// The status table.
pub fn render_table(v: &Value) -> String {
    let mut s = format!(
        "state v{}{}\n{:<16} {:<12} {:<8} {:>8} {:>9} {:>9} {:>9} {:>9} {:>9}  {}\n",
        v["version"],
        if v["kill_all"].as_bool() == Some(true) {
            "  KILL SWITCH ON"
        } else {
            ""
        },
        "ROLLOUT",
        "STATUS",
        "PHASE",
        "SHARE",
        "REQ S/C",
        "ERR S",
        "ERR C",
        "P99 S ms",
        "P99 C ms",
        "VERDICT"
    );
    for r in v["rollouts"].as_array().into_iter().flatten() {
        let share = r["shares_bp"]["standard"]
            .as_u64()
            .map_or_else(|| "-".into(), |b| format!("{:.1}%", b as f64 / 100.0));
        let verdict = r["verdict"]["reason"].as_str().unwrap_or("-");
        let outcome = r["verdict"]["outcome"].as_str().unwrap_or("");
        s.push_str(&format!(
            "{:<16} {:<12} {:<8} {:>8} {:>9} {:>9} {:>9} {:>9} {:>9}  {} {}\n",
            r["name"].as_str().unwrap_or(""),
            r["status"].as_str().unwrap_or(""),
            r["phase"].as_str().unwrap_or(""),
            share,
            format!("{}/{}", r["stable"]["requests"], r["canary"]["requests"]),
            pct(&r["stable"]["error_rate"]),
            pct(&r["canary"]["error_rate"]),
            ms(&r["stable"]["p99_ms"]),
            ms(&r["canary"]["p99_ms"]),
            outcome,
            verdict
        ));
        if let Some(line) = shadow_line(r) {
            s.push_str(&line);
        }
    }
    s
}

/// `  shadow: …` under a rollout that mirrors in its current phase (or has comparisons in it).
fn shadow_line(r: &Value) -> Option<String> {
    let sh = &r["shadow"];
    let n = sh["compared"].as_u64().unwrap_or(0);
    if n == 0 && r["shadow_bp"].as_u64().unwrap_or(0) == 0 {
        return None;
    }
    let get = |k: &str| sh[k].as_u64().unwrap_or(0);
    let rate = |x: u64| {
        if n == 0 {
            "-".to_string()
        } else {
            format!("{:.2}%", x as f64 * 100.0 / n as f64)
        }
    };
    Some(format!(
        "  shadow: {n} compared, mismatches {} ({} over noise), shadow errors {} vs primary {}, slower than tolerance {}\n",
        rate(get("mismatches")),
        rate(get("mismatches").saturating_sub(get("noise"))),
        get("shadow_errors"),
        get("primary_errors"),
        rate(get("slower")),
    ))
}

/// `dwcp-analyzer backup --db X --out Y` (`crate::store::backup`).
pub fn backup(db: &std::path::Path, out: &std::path::Path) -> Result<(), CliError> {
    let c = crate::store::backup::backup(db, out).map_err(|e| CliError::Other(format!("{e:#}")))?;
    println!(
        "backed up {} to {} ({} pages, {} bytes, integrity ok)",
        db.display(),
        out.display(),
        c.pages,
        c.bytes
    );
    Ok(())
}

/// `dwcp-analyzer restore --from Y --db X` (`crate::store::backup`).
pub fn restore(from: &std::path::Path, db: &std::path::Path) -> Result<(), CliError> {
    let c =
        crate::store::backup::restore(from, db).map_err(|e| CliError::Other(format!("{e:#}")))?;
    println!(
        "restored {} from {} ({} pages, integrity ok); start the companion: filters adopt it within one sync",
        db.display(),
        from.display(),
        c.pages
    );
    Ok(())
}

#[cfg(test)]
mod table_tests {
    use super::*;

    #[test]
    fn shadow_line_shows_rates_over_noise() {
        let v = serde_json::json!({"version": 3, "kill_all": false, "rollouts": [
            {"name": "a", "status": "running", "phase": "shadow", "shares_bp": {"standard": 0},
             "shadow_bp": 10000, "stable": {}, "canary": {}, "verdict": null,
             "shadow": {"compared": 200, "mismatches": 30, "noise": 10, "shadow_errors": 1,
                        "primary_errors": 0, "slower": 4}},
            {"name": "b", "status": "running", "phase": "5%", "shares_bp": {"standard": 500},
             "shadow_bp": 0, "stable": {}, "canary": {}, "verdict": null, "shadow": {"compared": 0}}
        ]});
        let t = render_table(&v);
        assert!(
            t.contains("shadow: 200 compared, mismatches 15.00% (10.00% over noise), shadow errors 1 vs primary 0, slower than tolerance 2.00%"),
            "{t}"
        );
        assert_eq!(t.matches("shadow:").count(), 1, "{t}");
    }
}
