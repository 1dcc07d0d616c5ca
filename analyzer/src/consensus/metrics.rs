//! The consensus engines' part of `/metrics` (names from `dwcp_core::names`). Every HELP/TYPE
//! line is rendered even with no engine running, so a scrape always lists the names.

use std::fmt::Write as _;

use dwcp_core::names::*;

use super::handle::LATENCY_BOUNDS;
use super::ConsensusHost;
use crate::metrics::Out;

fn line(o: &mut Out, name: &str, labels: &[(&str, &str)], v: f64) {
    let l: Vec<String> = labels.iter().map(|(k, v)| format!("{k}=\"{v}\"")).collect();
    let _ = writeln!(o.0, "{name}{{{}}} {v}", l.join(","));
}

type Getter = fn(&super::handle::Stats) -> u64;

/// Render the metrics of every running cluster.
pub fn render(host: Option<&ConsensusHost>) -> String {
    let mut o = Out(String::new());
    let stats: Vec<(&str, super::handle::Stats)> = host
        .map(|h| h.clusters.iter().map(|(k, c)| (*k, c.stats())).collect())
        .unwrap_or_default();
    let simple: [(&Metric, Getter); 5] = [
        (&CONSENSUS_DECISIONS, |s| s.decisions),
        (&CONSENSUS_VIEW_CHANGES, |s| s.view_changes),
        (&CONSENSUS_HEIGHT, |s| s.committed_height),
        (&CONSENSUS_VIEW, |s| s.view),
        (&CONSENSUS_FAULTY, |s| s.faulty),
    ];
    for (m, get) in simple {
        o.head(m);
        for (e, s) in &stats {
            line(&mut o, m.name, &[("engine", e)], get(s) as f64);
        }
    }
    o.head(&CONSENSUS_MESSAGES);
    for (e, s) in &stats {
        for (kind, n) in &s.messages {
            line(
                &mut o,
                CONSENSUS_MESSAGES.name,
                &[("engine", e), ("kind", kind)],
                *n as f64,
            );
        }
    }
    o.head(&CONSENSUS_BYZANTINE);
    for (e, s) in &stats {
        for (b, n) in &s.byzantine {
            line(
                &mut o,
                CONSENSUS_BYZANTINE.name,
                &[("engine", e), ("behaviour", b)],
                *n as f64,
            );
        }
    }
    o.head(&CONSENSUS_COMMIT_LATENCY);
    let name = CONSENSUS_COMMIT_LATENCY.name;
    for (e, s) in &stats {
        let mut cum = 0u64;
        for (i, b) in LATENCY_BOUNDS.iter().enumerate() {
            cum += s.latency_buckets.get(i).copied().unwrap_or(0);
            let le = b.to_string();
            line(
                &mut o,
                &format!("{name}_bucket"),
                &[("engine", e), ("le", &le)],
                cum as f64,
            );
        }
        let all = s.latency_count as f64;
        line(
            &mut o,
            &format!("{name}_bucket"),
            &[("engine", e), ("le", "+Inf")],
            all,
        );
        line(
            &mut o,
            &format!("{name}_sum"),
            &[("engine", e)],
            s.latency_sum_s,
        );
        line(&mut o, &format!("{name}_count"), &[("engine", e)], all);
    }
    o.0
}
