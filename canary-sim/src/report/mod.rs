//! Aggregation of run results — false-abort rate with a Wilson interval, detection rate, time to abort
//! (percentiles), aborts by trigger and phase — and the markdown report ([`write`]).

mod sections;

use crate::runner::RunResult;
use std::collections::BTreeMap;

pub use sections::write;

/// Wilson score interval (95 %) for `k` successes in `n` trials.
pub fn wilson(k: u64, n: u64) -> (f64, f64) {
    if n == 0 {
        return (0.0, 1.0);
    }
    let z = 1.959_964;
    let (n, p) = (n as f64, k as f64 / n as f64);
    let d = 1.0 + z * z / n;
    let c = (p + z * z / (2.0 * n)) / d;
    let h = z * (p * (1.0 - p) / n + z * z / (4.0 * n * n)).sqrt() / d;
    ((c - h).max(0.0), (c + h).min(1.0))
}

/// Nearest-rank percentile of sorted values.
pub fn percentile(sorted: &[u64], q: f64) -> Option<u64> {
    if sorted.is_empty() {
        return None;
    }
    let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    Some(sorted[rank - 1])
}

/// Sorted times to abort (ms) of the detected runs.
pub fn times_to_abort(rs: &[RunResult]) -> Vec<u64> {
    let mut t: Vec<u64> = rs.iter().filter_map(RunResult::time_to_abort_ms).collect();
    t.sort_unstable();
    t
}

const PHASE_NAMES: [&str; 6] = ["1%", "5%", "10%", "25%", "50%", "100%"];

fn secs(ms: Option<u64>) -> String {
    ms.map_or_else(
        || "—".into(),
        |v| {
            if v < 100_000 {
                format!("{:.1} s", v as f64 / 1000.0)
            } else {
                format!("{:.0} s", v as f64 / 1000.0)
            }
        },
    )
}

fn pct(k: u64, n: u64) -> String {
    let (lo, hi) = wilson(k, n);
    format!(
        "{:>5.1}% [{:.1}, {:.1}]",
        100.0 * k as f64 / n.max(1) as f64,
        lo * 100.0,
        hi * 100.0
    )
}

/// "trigger×count" of the aborts, by trigger.
fn triggers(rs: &[RunResult], pred: impl Fn(&RunResult) -> bool) -> String {
    let mut m: BTreeMap<&str, u64> = BTreeMap::new();
    for r in rs.iter().filter(|r| pred(r)) {
        *m.entry(r.trigger.as_str()).or_insert(0) += 1;
    }
    if m.is_empty() {
        return "—".into();
    }
    m.iter()
        .map(|(k, v)| format!("{k}×{v}"))
        .collect::<Vec<_>>()
        .join(" ")
}

/// "phase:count" of the detections, by phase of the abort.
fn phases(rs: &[RunResult]) -> String {
    let mut m: BTreeMap<usize, u64> = BTreeMap::new();
    for r in rs.iter().filter(|r| r.detected()) {
        *m.entry(r.phase).or_insert(0) += 1;
    }
    if m.is_empty() {
        return "—".into();
    }
    m.iter()
        .map(|(k, v)| format!("{}:{v}", PHASE_NAMES.get(*k).copied().unwrap_or("?")))
        .collect::<Vec<_>>()
        .join(" ")
}

/// Counts over a batch of runs of one case.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tally {
    pub runs: u64,
    /// Rolled back, for whatever reason.
    pub aborted: u64,
    /// Reached 100 %.
    pub succeeded: u64,
    /// Aborted before the regression's onset (every abort of an A/A run).
    pub false_aborts: u64,
    /// Aborted after the onset.
    pub detected: u64,
    /// Times from the onset to the rollback decision of the detected runs, sorted, ms.
    pub times_to_abort_ms: Vec<u64>,
}

impl Tally {
    pub fn of(rs: &[RunResult]) -> Self {
        let count = |pred: fn(&RunResult) -> bool| rs.iter().filter(|r| pred(r)).count() as u64;
        Self {
            runs: rs.len() as u64,
            aborted: count(|r| r.aborted),
            succeeded: count(|r| r.succeeded),
            false_aborts: count(RunResult::false_abort),
            detected: count(RunResult::detected),
            times_to_abort_ms: times_to_abort(rs),
        }
    }

    /// False-abort rate and its 95 % Wilson interval.
    pub fn false_abort_rate(&self) -> (f64, (f64, f64)) {
        rate(self.false_aborts, self.runs)
    }

    /// Detection rate and its 95 % Wilson interval.
    pub fn detection_rate(&self) -> (f64, (f64, f64)) {
        rate(self.detected, self.runs)
    }

    /// Nearest-rank percentile of the time to abort, ms.
    pub fn time_to_abort_ms(&self, q: f64) -> Option<u64> {
        percentile(&self.times_to_abort_ms, q)
    }
}

fn rate(k: u64, n: u64) -> (f64, (f64, f64)) {
    (k as f64 / n.max(1) as f64, wilson(k, n))
}

/// One markdown row of a regression case: detection with its CI, time to abort (median, p95, max,
/// min), aborts before the onset, phase of the abort and trigger.
pub fn row(label: &str, rs: &[RunResult]) -> String {
    let Tally {
        runs: n,
        detected: det,
        false_aborts: fa,
        times_to_abort_ms: t,
        ..
    } = Tally::of(rs);
    format!(
        "| {label} | {n} | {} | {} | {} | {} | {} | {fa}{} | {} | {} |",
        pct(det, n),
        secs(percentile(&t, 0.5)),
        secs(percentile(&t, 0.95)),
        secs(t.last().copied()),
        secs(t.first().copied()),
        if fa > 0 {
            format!(" ({})", triggers(rs, RunResult::false_abort))
        } else {
            String::new()
        },
        phases(rs),
        triggers(rs, RunResult::detected),
    )
}
