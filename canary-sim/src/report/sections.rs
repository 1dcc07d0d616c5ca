//! The report: header, A/A table with verdicts against α, regression table, aims with their verdicts.
//! Each case is run when its row is printed, so a long simulation shows its progress.

use super::{pct, percentile, row, secs, times_to_abort, triggers, wilson, Tally};
use crate::config::Config;
use crate::runner::{run_many, sim_spec, RunResult};
use crate::traffic::cases::{self, Case, Runs};
use crate::traffic::SEGMENTS;
use std::io::{self, Write};

const REGRESSION_HEADER: &str = "| case | runs | detected [95% CI] | median | p95 | max | min | aborts before onset | phase of abort | trigger |\n|---|---|---|---|---|---|---|---|---|---|";

/// Runs the selected cases of `cfg` and writes the markdown report to `out` (ends with a blank line).
pub fn write(cfg: &Config, out: &mut impl Write) -> io::Result<()> {
    header(cfg, out)?;
    let run = |c: &Case| {
        let n = match c.runs {
            Runs::AA => cfg.runs,
            Runs::PerRegression => cfg.reg_runs,
        };
        run_many(&c.scenario, cfg.seed, c.id, n, cfg.threads)
    };
    let selected = |cs: Vec<Case>| {
        cs.into_iter()
            .filter(|c| cfg.wants(c.id))
            .collect::<Vec<_>>()
    };
    let alpha = sim_spec(600).guardrails.alpha;

    // (a) A/A: 1 000 healthy rollouts at 200 req/s; plus a low-traffic batch (5 canary req/s).
    let mut verdicts = Vec::new();
    writeln!(out, "## (a) healthy A/A rollouts")?;
    writeln!(out)?;
    writeln!(out, "| case | runs | false aborts | rate [95% Wilson CI] | reached 100% | median rollout time | aborts by trigger |")?;
    writeln!(out, "|---|---|---|---|---|---|---|")?;
    for c in selected(cases::aa()) {
        let aa = run(&c);
        writeln!(out, "{}", aa_row(c.label, &aa))?;
        verdicts.push(aa_verdict(c.label, &aa, alpha));
    }
    writeln!(out)?;
    for v in &verdicts {
        writeln!(out, "{v}")?;
    }
    writeln!(out)?;

    writeln!(
        out,
        "## Regressions (time to abort measured from the regression's onset)"
    )?;
    writeln!(out)?;
    writeln!(out, "{REGRESSION_HEADER}")?;
    for c in selected(cases::regressions()) {
        writeln!(out, "{}", row(c.label, &run(&c)))?;
    }
    writeln!(out)?;

    // Production traffic through the ledger (sidecars → batches → time slices → judge).
    writeln!(
        out,
        "## (p) production traffic through the companion's ingest path (healthy: every abort is false)"
    )?;
    writeln!(out)?;
    writeln!(out, "| case | runs | false aborts | rate [95% Wilson CI] | reached 100% | median rollout time | aborts by trigger |")?;
    writeln!(out, "|---|---|---|---|---|---|---|")?;
    let mut verdicts = Vec::new();
    for c in selected(cases::production()) {
        let rs = run(&c);
        writeln!(out, "{}", aa_row(c.label, &rs))?;
        verdicts.push(aa_verdict(c.label, &rs, alpha));
        verdicts.extend(refused(c.label, &rs));
    }
    writeln!(out)?;
    for v in &verdicts {
        writeln!(out, "{v}")?;
    }
    writeln!(out)?;
    writeln!(out, "## (p) power on production traffic")?;
    writeln!(out)?;
    writeln!(out, "{REGRESSION_HEADER}")?;
    let mut aims = Vec::new();
    for c in selected(cases::production_power()) {
        let rs = run(&c);
        writeln!(out, "{}", row(c.label, &rs))?;
        aims.push(production_verdict(c.id, c.label, &rs));
        aims.extend(refused(c.label, &rs));
    }
    writeln!(out)?;
    for l in &aims {
        writeln!(out, "{l}")?;
    }
    writeln!(out)?;

    writeln!(out, "## Aims")?;
    writeln!(out)?;
    writeln!(out, "{REGRESSION_HEADER}")?;
    let mut aims = Vec::new();
    for c in selected(cases::aim1()) {
        let rs = run(&c);
        writeln!(out, "{}", row(c.label, &rs))?;
        aims.push(aim1_verdict(c.label, &rs));
    }
    for c in selected(cases::aim2()) {
        let rs = run(&c);
        writeln!(out, "{}", row(c.label, &rs))?;
        aims.push(aim2_verdict(c.label, &rs));
    }
    writeln!(out)?;
    for l in &aims {
        writeln!(out, "{l}")?;
    }
    writeln!(out)
}

fn header(cfg: &Config, out: &mut impl Write) -> io::Result<()> {
    let Config {
        seed,
        runs,
        reg_runs,
        threads,
        ..
    } = cfg;
    let spec = sim_spec(600);
    let alpha = spec.guardrails.alpha;
    writeln!(
        out,
        "canary_sim — seeded simulation of the rollout judgment (dwcp-core::rollout)"
    )?;
    writeln!(
        out,
        "SIM_SEED={seed}  A/A runs={runs}  runs per regression case={reg_runs}  threads={threads}  (run i of case c: ChaCha8Rng::seed_from_u64(run_seed({seed}, c, i)))"
    )?;
    writeln!(
        out,
        "traffic: Poisson, base 200 req/s × bursty factor (AR(1) log-normal σ 0.3 + ×3 spikes); segments internal 5 / beta 5 / premium 10 / enterprise 10 / standard 70 %;"
    )?;
    writeln!(
        out,
        "         errors 1 %; latency log-normal median 20 ms σ 0.5 (p99 ≈ 64 ms); 1 s windows (Window then Tick)."
    )?;
    let ladder: Vec<String> = spec
        .phases
        .iter()
        .enumerate()
        .map(|(i, p)| {
            let sh = spec.shares(i);
            let mix: f64 = SEGMENTS
                .iter()
                .map(|(s, w)| w * f64::from(sh.get(*s).copied().unwrap_or(0)) / 10_000.0)
                .sum();
            format!("{} (canary gets {:.1} % of requests)", p.name, mix * 100.0)
        })
        .collect();
    writeln!(out, "ladder: {} ; 10 min per phase, min requests per track 1000/1000/2000/5000/10000; α = {alpha}", ladder.join(" → "))?;
    writeln!(
        out,
        "production cases (h, power): segment mix 5/5/20/10/60 % with base errors 5/3/0.5/1/0.1 %; 50 000 users, Zipf(1) request counts, sticky segment and bucket;"
    )?;
    writeln!(
        out,
        "         sidecars report every 1 s at their own offset (250 ms grid), 10 % only every 5 s, adopting the new state when they report; real Accumulator → Batch → Ledger (500 ms slices, 1 s tick)."
    )?;
    writeln!(out)
}

fn aa_row(label: &str, aa: &[RunResult]) -> String {
    let t = Tally::of(aa);
    let (n, fa, ok) = (t.runs, t.aborted, t.succeeded);
    let mut durations: Vec<u64> = aa
        .iter()
        .filter(|r| r.succeeded)
        .map(|r| r.end_ms)
        .collect();
    durations.sort_unstable();
    format!(
        "| {label} | {n} | {fa} | {} | {ok} | {} | {} |",
        pct(fa, n),
        percentile(&durations, 0.5)
            .map_or("—".into(), |v| format!("{:.1} min", v as f64 / 60_000.0)),
        triggers(aa, |r| r.aborted)
    )
}

fn aa_verdict(label: &str, aa: &[RunResult], alpha: f64) -> String {
    let t = Tally::of(aa);
    let (n, fa) = (t.runs, t.aborted);
    let (_, hi) = wilson(fa, n);
    format!(
        "{label}: false-abort rate {:.2} % (95 % Wilson CI upper bound {:.2} %) vs α = {:.0} %: {}",
        100.0 * fa as f64 / n.max(1) as f64,
        hi * 100.0,
        alpha * 100.0,
        met(fa as f64 <= alpha * n as f64)
    )
}

fn met(ok: bool) -> &'static str {
    if ok {
        "MET"
    } else {
        "MISSED"
    }
}

/// Aim 1: a 50 %-errors canary at 5 canary req/s is aborted in under 5 s in ≥ 95 % of the runs.
fn aim1_verdict(label: &str, rs: &[RunResult]) -> String {
    let t = times_to_abort(rs);
    let under5 = rs
        .iter()
        .filter(|r| r.time_to_abort_ms().is_some_and(|t| t < 5_000))
        .count() as u64;
    let n = rs.len() as u64;
    format!(
        "AIM 1 ({label}): a 50 %-errors canary at 5 canary requests/s is aborted in under 5 s — {under5}/{n} = {} within 5 s, median {}, p95 {}: {}",
        pct(under5, n).trim(),
        secs(percentile(&t, 0.5)),
        secs(percentile(&t, 0.95)),
        met(under5 as f64 >= 0.95 * n as f64)
    )
}

/// Aim 2: a 2× error regression in the 5 % phase is caught before that phase ends in ≥ 95 % of the runs.
fn aim2_verdict(label: &str, rs: &[RunResult]) -> String {
    let n = rs.len() as u64;
    let caught = rs.iter().filter(|r| r.detected() && r.phase == 1).count() as u64;
    let (lo, _) = wilson(caught, n);
    format!(
        "AIM 2 ({label}): a 2× error regression (1 % → 2 %) in the 5 % phase is caught with ≥ 95 % probability before that phase ends — {caught}/{n} = {} (95 % CI lower bound {:.1} %): {}",
        pct(caught, n).trim(),
        lo * 100.0,
        met(caught as f64 >= 0.95 * n as f64)
    )
}

/// A line when the ledger refused any simulated batch (a bug of the simulation).
fn refused(label: &str, rs: &[RunResult]) -> Option<String> {
    let n: u64 = rs.iter().map(|r| r.batches_refused).sum();
    (n > 0).then(|| {
        format!("{label}: the ledger refused {n} simulated batches: MISSED (simulation bug)")
    })
}

/// The targets of the production power cases: 21 crash at 5 canary req/s with 1 000 sidecars (median
/// ≤ 2.5 s, p95 ≤ 5 s); 22 a premium-only regression caught with `premium` named in the evidence
/// (≥ 95 %); 23 2× p99 mid 25 % phase (median ≤ 30 s).
fn production_verdict(id: u64, label: &str, rs: &[RunResult]) -> String {
    let t = times_to_abort(rs);
    let n = rs.len() as u64;
    let (med, p95) = (percentile(&t, 0.5), percentile(&t, 0.95));
    let det = rs.iter().filter(|r| r.detected()).count() as u64;
    match id {
        21 => format!(
            "POWER ({label}): median {} (target ≤ 2.5 s), p95 {} (target ≤ 5 s), detected {det}/{n} = {}: {}",
            secs(med),
            secs(p95),
            pct(det, n).trim(),
            met(det == n && med.is_some_and(|m| m <= 2_500) && p95.is_some_and(|p| p <= 5_000))
        ),
        22 => {
            let named = rs
                .iter()
                .filter(|r| r.detected() && r.evidence.contains("premium"))
                .count() as u64;
            format!(
                "POWER ({label}): caught {det}/{n} = {}, evidence names premium in {named}/{n} (target: caught, named, ≥ 95 %): {}",
                pct(det, n).trim(),
                met(named as f64 >= 0.95 * n as f64)
            )
        }
        25 | 26 => {
            let caught = rs.iter().filter(|r| r.detected() && r.phase == 1).count() as u64;
            format!(
                "POWER ({label}): caught before the 5 % phase ends {caught}/{n} = {} (target ≥ 95 %), median {}: {}",
                pct(caught, n).trim(),
                secs(med),
                met(caught as f64 >= 0.95 * n as f64)
            )
        }
        _ => format!(
            "POWER ({label}): detected {det}/{n} = {}, median {} (target ≤ 30 s): {}",
            pct(det, n).trim(),
            secs(med),
            met(det as f64 >= 0.95 * n as f64 && med.is_some_and(|m| m <= 30_000))
        ),
    }
}
