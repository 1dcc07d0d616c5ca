//! The verdict of every check on a rollout, each with its reason, statistic, threshold and sample sizes.
//!
//! Every abort on statistics is inside one α budget, split by a union bound over the sequential tests:
//!
//! | test (field of `Rollout`)        | share of α | what can abort on it                          |
//! |----------------------------------|-----------:|-----------------------------------------------|
//! | `error_test` (errors)            | 0.55       | 1 `error_rate`, 3 `success` (both gates)      |
//! | `latency_test` (slow requests)   | 0.25       | 2 `latency_seq`, 2 `p99` (both gates)         |
//! | `throughput_test` (requests)     | 0          | nothing: 4 `throughput` is shown, not judged  |
//! | `shadow_error_test`              | 0.10       | `shadow:errors`                               |
//! | `shadow_mismatch_test`           | 0.05       | `shadow:mismatch`                             |
//! | `shadow_latency_test`            | 0.05       | `shadow:latency` (gate)                       |
//!
//! The fixed thresholds of the guardrails (error ratio > 1.5×, p99 ratio > 2×, success < 95 % and worse
//! than stable, shadow median delta > tolerance) are *gates*: a guardrail
//! fails only when its threshold is crossed **and** its sequential test rejects at its share. A gate
//! can only remove aborts from its test's rejection event, so P(any false abort) ≤ Σ shares · α = α,
//! however often the checks run. Errors get the largest share because crashes show there first
//! (ln(1/α) is the evidence every detection must collect). Triggers 5–8 (engine safety events) are
//! facts, not statistics, and abort at once. Throughput below 80 % of the assigned share is shown and
//! never aborts: the filters randomise users, not requests, so a canary whose buckets hold no heavy
//! user serves well under its request share on a healthy version, and no test on request counts can
//! tell that from a shortfall. Below its minimum sample a guardrail says
//! "inconclusive", which holds the phase and never aborts.

use super::{Rollout, Status};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    Pass,
    Fail,
    Inconclusive,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Verdict {
    pub outcome: Outcome,
    /// Which test or trigger.
    pub trigger: String,
    pub reason: String,
    pub statistic: f64,
    pub threshold: f64,
    pub canary_n: u64,
    pub stable_n: u64,
}

pub const ALPHA_ERRORS: f64 = 0.55;
pub const ALPHA_LATENCY: f64 = 0.25;
/// Throughput spends nothing: it is shown, never an abort (see check 4).
pub const ALPHA_THROUGHPUT: f64 = 0.0;
pub const ALPHA_SHADOW_ERRORS: f64 = 0.1;
pub const ALPHA_SHADOW_MISMATCH: f64 = 0.05;
pub const ALPHA_SHADOW_LATENCY: f64 = 0.05;

/// The segments whose canary errors exceed their null most (z ≥ 2, worst first; else the worst one), as
/// a clause of the error verdict's reason: "; segments hit: premium (31 canary errors vs 10.2 expected,
/// z 6.6)".
fn segments_hit(r: &Rollout) -> String {
    let mut by_z: Vec<(&String, &super::SegmentErrors, f64)> = r
        .segment_errors
        .iter()
        .map(|(n, e)| (n, e, e.z()))
        .filter(|(_, _, z)| z.is_finite() && *z > 0.0)
        .collect();
    by_z.sort_by(|a, b| b.2.total_cmp(&a.2).then_with(|| a.0.cmp(b.0)));
    let strong = by_z.iter().filter(|x| x.2 >= 2.0).count().max(1);
    let named: Vec<String> = by_z
        .iter()
        .take(strong)
        .map(|(n, e, z)| {
            format!(
                "{n} ({} canary errors vs {:.1} expected, z {z:.1})",
                e.canary_errors, e.expected_canary_errors
            )
        })
        .collect();
    if named.is_empty() {
        String::new()
    } else {
        format!("; segments hit: {}", named.join(", "))
    }
}

fn v(
    outcome: Outcome,
    trigger: &str,
    reason: String,
    statistic: f64,
    threshold: f64,
    c: u64,
    s: u64,
) -> Verdict {
    Verdict {
        outcome,
        trigger: trigger.to_string(),
        reason,
        statistic: if statistic.is_finite() {
            statistic
        } else {
            f64::MAX
        },
        threshold,
        canary_n: c,
        stable_n: s,
    }
}

/// Every check of the rollout at `now_ms`.
pub fn checks(r: &Rollout, now_ms: u64) -> Vec<Verdict> {
    let g = r.guardrails();
    let (cn, sn) = (r.phase_canary.requests, r.phase_stable.requests);
    let mut out = Vec::new();
    let Some(phase) = r.spec.phases.get(r.phase) else {
        return out;
    };
    use Outcome::*;

    // 1. Errors: sequential test (whole life, mixed over start times) and the error-rate ratio. The
    // ratio is the larger of the phase's and the last windows' (`recent`): a regression that starts
    // mid-phase is diluted in the phase's totals for minutes. The ratio only gates the sequential test
    // (both must agree), so it cannot add false aborts beyond the test's α.
    let (cr, sr) = (r.phase_canary.error_rate(), r.phase_stable.error_rate());
    let rate_ratio = |cr: f64, sr: f64| {
        if sr > 0.0 {
            cr / sr
        } else if cr > 0.0 {
            f64::INFINITY
        } else {
            0.0
        }
    };
    let (mut rc, mut rce, mut rs, mut rse) = (0u64, 0u64, 0u64, 0u64);
    for w in &r.recent {
        rc += w.canary_requests;
        rce += w.canary_errors;
        rs += w.stable_requests;
        rse += w.stable_errors;
    }
    let recent_rate = |e: u64, n: u64| if n > 0 { e as f64 / n as f64 } else { 0.0 };
    let recent_ratio = rate_ratio(recent_rate(rce, rc), recent_rate(rse, rs));
    let ratio = rate_ratio(cr, sr).max(recent_ratio);
    let a_err = g.alpha * ALPHA_ERRORS;
    let e_log = r.error_test.log_e_value();
    let rejects = r.error_test.rejects(a_err);
    out.push(if rejects && ratio > g.error_ratio {
        v(Fail, "1:error_rate", format!(
            "canary error rate {:.2}% vs stable's {:.2}% in the phase ({} of {} vs {} of {} in the last {} windows): {ratio:.2}x (> {}x) and the sequential test rejects (e-value {:.1} >= {:.0})",
            cr * 100.0, sr * 100.0, rce, rc, rse, rs, r.recent.len(), g.error_ratio, e_log.exp(), 1.0 / a_err) + &segments_hit(r), ratio, g.error_ratio,
            // The samples behind the ratio that decided: the phase's or the last windows', whichever is larger.
            cn.max(rc), sn.max(rs))
    } else {
        v(Pass, "1:error_rate", format!("error ratio {ratio:.2}, e-value {:.2} < {:.0}", e_log.exp(), 1.0 / a_err),
          ratio, g.error_ratio, cn, sn)
    });

    // 2. Latency: sequential exceedance test over stable's p99, and the p99 ratio guardrail.
    let sp99 = r
        .phase_stable
        .latency_us
        .quantile(0.99)
        .or(r.stable_reference.quantile(0.99));
    let cp99 = r.phase_canary.latency_us.quantile(0.99);
    let a_lat = g.alpha * ALPHA_LATENCY;
    let p99_ratio = match (cp99, sp99) {
        (Some(c), Some(s)) if s > 0.0 => c / s,
        _ => 0.0,
    };
    let lat_rejects = r.latency_test.rejects(a_lat);
    if lat_rejects && p99_ratio > g.latency_tolerance {
        out.push(v(Fail, "2:latency_seq", format!(
            "slow requests (above past stable p99 x {}): {} canary vs {} stable, the sequential test rejects; canary p99 is {p99_ratio:.2}x stable's",
            g.latency_tolerance, r.latency_test.canary_errors, r.latency_test.stable_errors),
            r.latency_test.log_e_value().exp(), 1.0 / a_lat, cn, sn));
    }
    let min_p99 = g.min_canary_requests.max(500);
    // Shadow phases route no live canary traffic: guardrails 2–4 do not apply.
    if !phase.shadow {
        out.push(
            if cn < min_p99 || r.stable_reference.count < g.min_stable_for_p99 {
                v(
                    Inconclusive,
                    "2:p99",
                    format!(
                        "need {min_p99} canary and {} stable requests for p99",
                        g.min_stable_for_p99
                    ),
                    p99_ratio,
                    g.p99_ratio,
                    cn,
                    sn,
                )
            } else if p99_ratio > g.p99_ratio && lat_rejects {
                v(
                    Fail,
                    "2:p99",
                    format!(
                        "canary p99 {:.1} ms is {p99_ratio:.2}x stable's {:.1} ms (> {}x) and the slow-request test rejects (e-value {:.1} >= {:.0})",
                        cp99.unwrap_or(0.0) / 1000.0,
                        sp99.unwrap_or(0.0) / 1000.0,
                        g.p99_ratio,
                        r.latency_test.log_e_value().exp(),
                        1.0 / a_lat
                    ),
                    p99_ratio,
                    g.p99_ratio,
                    cn,
                    sn,
                )
            } else {
                v(
                    Pass,
                    "2:p99",
                    format!(
                        "p99 ratio {p99_ratio:.2} (gate {}x), slow-request e-value {:.2} < {:.0}",
                        g.p99_ratio,
                        r.latency_test.log_e_value().exp(),
                        1.0 / a_lat
                    ),
                    p99_ratio,
                    g.p99_ratio,
                    cn,
                    sn,
                )
            },
        );

        // 3. Success rate (only when worse than stable: a global outage is not the canary's fault).
        let succ = 1.0 - cr;
        out.push(if cn < g.min_canary_requests {
            v(
                Inconclusive,
                "3:success",
                format!("need {} canary requests", g.min_canary_requests),
                succ,
                g.min_success,
                cn,
                sn,
            )
        } else if succ < g.min_success && cr > sr && rejects {
            v(
                Fail,
                "3:success",
                format!(
                    "canary success {:.2}% < {:.2}% and the error test rejects (e-value {:.1} >= {:.0}){}",
                    succ * 100.0,
                    g.min_success * 100.0,
                    e_log.exp(),
                    1.0 / a_err,
                    segments_hit(r)
                ),
                succ,
                g.min_success,
                cn,
                sn,
            )
        } else {
            v(
                Pass,
                "3:success",
                format!("canary success {:.2}%", succ * 100.0),
                succ,
                g.min_success,
                cn,
                sn,
            )
        });

        // 4. Throughput against the expected share: the 80 % floor over the phase is a gate, the abort
        // needs the shortfall test (canary requests vs the assigned share, every window) to reject at
        // its α share. Minimum sample: 500 expected canary requests (or the configured minimum).
        let exp = r.phase_expected_canary;
        let tp = if exp > 0.0 { cn as f64 / exp } else { 1.0 };
        let min_tp = g.min_canary_requests.max(500);
        out.push(if exp < min_tp as f64 {
            v(
                Inconclusive,
                "4:throughput",
                format!("expected canary requests {exp:.0} below {min_tp}"),
                tp,
                g.min_throughput_ratio,
                cn,
                sn,
            )
        } else if tp < g.min_throughput_ratio {
            // Shown, never an abort: users, not requests, are randomised, so the canary's request
            // share moves with which heavy users its buckets hold (a Zipf population puts ~8 % of all
            // requests on one user) and no request-count test of the share is valid.
            v(
                Pass,
                "4:throughput",
                format!(
                    "canary served {cn} requests, {:.0}% of the {exp:.0} its share implies (below {:.0}%; shown, not judged: users are randomised, not requests; shortfall e-value {:.1})",
                    tp * 100.0,
                    g.min_throughput_ratio * 100.0,
                    r.throughput_test.log_e_value().exp(),
                ),
                tp,
                g.min_throughput_ratio,
                cn,
                sn,
            )
        } else {
            v(
                Pass,
                "4:throughput",
                format!("canary throughput {:.0}% of expected", tp * 100.0),
                tp,
                g.min_throughput_ratio,
                cn,
                sn,
            )
        });
    }

    // Shadow phase (and live phases that keep a sampled shadow): shadow errors, mismatches over noise;
    // the latency delta only in the shadow phase (live phases judge real latency).
    if phase.shadow || phase.shadow_sample_bp > 0 {
        let sh = &r.phase_shadow;
        let a_se = g.alpha * ALPHA_SHADOW_ERRORS;
        if r.shadow_error_test.rejects(a_se) && sh.shadow_errors > sh.primary_errors {
            out.push(v(
                Fail,
                "shadow:errors",
                format!(
                    "shadow errors {} vs primary {} over {} copies (sequential test rejects)",
                    sh.shadow_errors, sh.primary_errors, sh.compared
                ),
                r.shadow_error_test.log_e_value().exp(),
                1.0 / a_se,
                sh.compared,
                sh.compared,
            ));
        }
        let a_mm = g.alpha * ALPHA_SHADOW_MISMATCH;
        if r.shadow_mismatch_test.rejects(a_mm) {
            out.push(v(
                Fail,
                "shadow:mismatch",
                format!(
                    "mismatch rate over noise {:.2}% > {:.2}% ({} of {} compared)",
                    r.shadow_mismatch_test.rate() * 100.0,
                    g.max_mismatch_rate * 100.0,
                    r.shadow_mismatch_test.hits,
                    r.shadow_mismatch_test.trials
                ),
                r.shadow_mismatch_test.rate(),
                g.max_mismatch_rate,
                sh.compared,
                sh.compared,
            ));
        }
        let a_sl = g.alpha * ALPHA_SHADOW_LATENCY;
        let d99 = sh.latency_delta_us.quantile(0.99).unwrap_or(0.0) / 1000.0;
        if phase.shadow
            && sh.compared >= g.min_canary_requests
            && sh.latency_delta_us.quantile(0.5).unwrap_or(0.0) / 1000.0
                > g.max_shadow_latency_delta_ms
            && r.shadow_latency_test.rejects(a_sl)
        {
            out.push(v(
                Fail,
                "shadow:latency",
                format!(
                    "shadow slower than primary: median delta above {} ms (p99 delta {d99:.1} ms); {} of {} copies slower by more, the sequential test rejects",
                    g.max_shadow_latency_delta_ms,
                    r.shadow_latency_test.hits,
                    r.shadow_latency_test.trials
                ),
                d99,
                g.max_shadow_latency_delta_ms,
                sh.compared,
                sh.compared,
            ));
        }
    }

    // Promotion readiness.
    let elapsed = now_ms.saturating_sub(r.phase_started_ms);
    let last = r.phase + 1 >= r.spec.phases.len();
    let sample = if phase.shadow {
        r.phase_shadow.compared.min(sn)
    } else {
        cn.min(sn)
    };
    out.push(if last || r.status == Status::Succeeded {
        v(
            Inconclusive,
            "ready",
            "final phase".into(),
            0.0,
            0.0,
            cn,
            sn,
        )
    } else if elapsed < phase.min_duration_ms {
        v(
            Inconclusive,
            "ready",
            format!(
                "phase {} for {}s of {}s",
                phase.name,
                elapsed / 1000,
                phase.min_duration_ms / 1000
            ),
            elapsed as f64,
            phase.min_duration_ms as f64,
            cn,
            sn,
        )
    } else if sample < phase.min_requests {
        v(
            Inconclusive,
            "ready",
            format!("{sample} of {} requests per track", phase.min_requests),
            sample as f64,
            phase.min_requests as f64,
            cn,
            sn,
        )
    } else {
        v(
            Pass,
            "ready",
            format!(
                "phase {} met {}s and {} requests per track",
                phase.name,
                phase.min_duration_ms / 1000,
                phase.min_requests
            ),
            sample as f64,
            phase.min_requests as f64,
            cn,
            sn,
        )
    });
    out
}

/// Fail if any check fails; pass if ready and no guardrail is inconclusive; else inconclusive (hold).
pub fn overall(checks: &[Verdict]) -> Verdict {
    if let Some(f) = checks.iter().find(|c| c.outcome == Outcome::Fail) {
        return f.clone();
    }
    let ready = checks.iter().find(|c| c.trigger == "ready");
    match ready {
        Some(r) if r.outcome == Outcome::Pass => {
            // Guardrails still short of their minimum sample hold the phase.
            if let Some(i) = checks.iter().find(|c| {
                c.outcome == Outcome::Inconclusive
                    && c.trigger != "ready"
                    && !c.trigger.starts_with("2:p99")
            }) {
                return Verdict {
                    reason: format!("holding: {}", i.reason),
                    ..i.clone()
                };
            }
            r.clone()
        }
        Some(r) => r.clone(),
        None => Verdict {
            outcome: Outcome::Inconclusive,
            trigger: "none".into(),
            reason: "no checks".into(),
            statistic: 0.0,
            threshold: 0.0,
            canary_n: 0,
            stable_n: 0,
        },
    }
}
