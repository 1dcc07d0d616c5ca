//! Demo traffic: simulated users of the five segments send requests through Envoy; the report shows,
//! per segment, the observed canary share (from the upstreams' `x-served-by`) and whether every user
//! stayed on one track. Used by `make demo` and by the end-to-end tests.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

#[derive(clap::Args, Debug, Clone)]
pub struct Args {
    /// Envoy listener.
    #[arg(long, default_value = "http://127.0.0.1:10000")]
    pub envoy: String,
    #[arg(long, default_value_t = 2000)]
    pub users: usize,
    #[arg(long, default_value_t = 2)]
    pub requests_per_user: usize,
    #[arg(long, default_value_t = 8)]
    pub concurrency: usize,
    /// Prefix of user ids (change it to get a fresh population).
    #[arg(long, default_value = "user")]
    pub prefix: String,
    #[arg(long, default_value = "/")]
    pub path: String,
}

/// The segment a generated user belongs to (5 % internal, 5 % beta, 10 % premium, 10 % enterprise, 70 %
/// standard) and the headers that make the filter resolve it.
pub fn user_headers(prefix: &str, i: usize) -> (String, &'static str, Vec<(&'static str, String)>) {
    let id = format!("{prefix}-{i}");
    let (seg, extra): (&str, Vec<(&str, String)>) = match i % 20 {
        0 => (
            "internal",
            vec![("x-user-email", format!("{id}@company.com"))],
        ),
        1 => ("beta", vec![("x-beta-opt-in", "true".into())]),
        2 | 3 => ("premium", vec![("x-user-tier", "premium".into())]),
        4 | 5 => ("enterprise", vec![("x-user-tier", "enterprise".into())]),
        _ => ("standard", vec![("x-user-tier", "free".into())]),
    };
    let mut h = vec![("x-user-id", id.clone())];
    h.extend(extra);
    (id, seg, h)
}

#[derive(Debug, Default, Clone)]
pub struct SegmentReport {
    pub users: u64,
    pub requests: u64,
    pub canary_requests: u64,
    pub canary_users: u64,
    /// Users who were served by both tracks.
    pub flapping_users: u64,
    pub failures: u64,
}

#[derive(Debug, Default, Clone)]
pub struct Report {
    pub segments: BTreeMap<String, SegmentReport>,
    /// user id → true when served by canary (on every request, if sticky).
    pub user_track: BTreeMap<String, bool>,
    pub status_5xx: u64,
}

/// Sends the traffic; `Err` only when Envoy cannot be reached at all.
pub fn send(a: &Args) -> Result<Report, String> {
    let agent = ureq::AgentBuilder::new()
        .timeout(std::time::Duration::from_secs(10))
        .build();
    let next = Arc::new(Mutex::new(0usize));
    let report = Arc::new(Mutex::new(Report::default()));
    let url = format!("{}{}", a.envoy.trim_end_matches('/'), a.path);
    let mut handles = Vec::new();
    for _ in 0..a.concurrency.max(1) {
        let (next, report, agent, url, a) = (
            next.clone(),
            report.clone(),
            agent.clone(),
            url.clone(),
            a.clone(),
        );
        handles.push(std::thread::spawn(move || loop {
            let i = {
                let mut n = next.lock().unwrap_or_else(|p| p.into_inner());
                if *n >= a.users {
                    return;
                }
                *n += 1;
                *n - 1
            };
            let (id, seg, headers) = user_headers(&a.prefix, i);
            let mut seen = (false, false);
            let (mut reqs, mut canary, mut fails, mut s5xx) = (0, 0, 0, 0);
            for _ in 0..a.requests_per_user {
                let mut req = agent.get(&url);
                for (k, v) in &headers {
                    req = req.set(k, v);
                }
                reqs += 1;
                match req.call() {
                    Ok(resp) => {
                        let by = resp.header("x-served-by").unwrap_or("");
                        if by == "canary" {
                            canary += 1;
                            seen.1 = true;
                        } else {
                            seen.0 = true;
                        }
                    }
                    Err(ureq::Error::Status(code, resp)) => {
                        if code >= 500 {
                            s5xx += 1;
                        }
                        let by = resp.header("x-served-by").unwrap_or("");
                        if by == "canary" {
                            canary += 1;
                            seen.1 = true;
                        } else if by == "stable" {
                            seen.0 = true;
                        } else {
                            fails += 1;
                        }
                    }
                    Err(_) => fails += 1,
                }
            }
            let mut r = report.lock().unwrap_or_else(|p| p.into_inner());
            r.status_5xx += s5xx;
            let s = r.segments.entry(seg.to_string()).or_default();
            s.users += 1;
            s.requests += reqs;
            s.canary_requests += canary;
            s.failures += fails;
            if seen.1 {
                s.canary_users += 1;
            }
            if seen.0 && seen.1 {
                s.flapping_users += 1;
            }
            r.user_track.insert(id, seen.1 && !seen.0);
        }));
    }
    for h in handles {
        let _ = h.join();
    }
    let r = report.lock().unwrap_or_else(|p| p.into_inner()).clone();
    let total: u64 = r.segments.values().map(|s| s.requests).sum();
    let failed: u64 = r.segments.values().map(|s| s.failures).sum();
    if total > 0 && failed == total {
        return Err(format!("no answer from {url}: is Envoy running?"));
    }
    Ok(r)
}

pub fn render(r: &Report, assigned: Option<&BTreeMap<String, u32>>) -> String {
    let mut s = format!(
        "{:<11} {:>6} {:>8} {:>14} {:>9} {:>9} {:>7}\n",
        "SEGMENT", "USERS", "REQUESTS", "CANARY SHARE", "ASSIGNED", "FLAPPING", "FAILED"
    );
    for (seg, x) in &r.segments {
        let share = if x.users > 0 {
            x.canary_users as f64 / x.users as f64 * 100.0
        } else {
            0.0
        };
        let assigned = assigned
            .and_then(|a| a.get(seg))
            .map_or_else(|| "-".into(), |bp| format!("{:.1}%", *bp as f64 / 100.0));
        s.push_str(&format!(
            "{seg:<11} {:>6} {:>8} {:>13.1}% {:>9} {:>9} {:>7}\n",
            x.users, x.requests, share, assigned, x.flapping_users, x.failures
        ));
    }
    s
}

pub fn run(a: &Args) -> Result<(), String> {
    let r = send(a)?;
    // The assigned shares, when the companion is reachable (optional).
    let assigned = ureq::get("http://127.0.0.1:8080/v1/config")
        .call()
        .ok()
        .and_then(|resp| resp.into_json::<serde_json::Value>().ok())
        .and_then(|v| {
            v["state"]["rollouts"]
                .as_object()
                .and_then(|m| m.values().next().cloned())
                .and_then(|r| {
                    serde_json::from_value::<BTreeMap<String, u32>>(r["segments"].clone()).ok()
                })
        });
    print!("{}", render(&r, assigned.as_ref()));
    println!("5xx responses: {}", r.status_5xx);
    Ok(())
}
