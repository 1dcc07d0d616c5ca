//! Anytime-valid sequential tests for judging a canary continuously.
//!
//! A fixed-sample test checked after every batch "finds" a regression in almost every healthy canary
//! sooner or later. These tests do not: their false-abort probability stays below α however often they are
//! looked at. The method: every error (or slow request) is a Bernoulli draw of "is this error the
//! canary's?". With the canary at request share `s` and no regression, it is the canary's with
//! probability exactly `s`; a mixture over the regression size of the likelihood ratios of these draws is
//! a nonnegative martingale with mean 1 under the null, so by Ville's inequality `P(ever Λ ≥ 1/α) ≤ α`.
//! Both tests are such mixture likelihood ratios over a discrete grid prior, kept in log space. Onsets
//! in the middle of a rollout are covered by also mixing over restart times, with prior weights that sum
//! to one (the mixture is still a martingale). α is split across the tests a rollout runs (errors,
//! latency, shadow errors, shadow mismatches) by a union bound, so every abort stays within the one α
//! budget (the split is in `rollout::judge`). The null holds only for randomised requests at their
//! assigned share, so only those are fed in.
//!
//! References: Lindon, Sanden & Shirikian, *Rapid Regression Detection in Software Deployments through
//! Sequential Testing* (KDD 2022); Lindon & Malek, *Anytime-Valid Inference for Multinomial Count Data*
//! (NeurIPS 2022); Howard & Ramdas, *Sequential estimation of quantiles with applications to A/B testing*
//! (2022).
//!
//! * [`ErrorTest`] — "whose error is it?" (Lindon, Sanden & Shirikian, KDD 2022): conditional on an error,
//!   it came from the canary with probability `q(θ) = θs / (θs + 1 − s)`, `s` the canary's request share at
//!   that moment, `θ` the canary/stable error-rate ratio. Null `θ = 1`; prior on `θ > 1`.
//! * [`ExceedanceTest`] — a one-sample Bernoulli stream with a known null rate `p0` (the latency test marks
//!   a canary request "slow" when it exceeds stable's p99; the shadow test marks mismatches). Prior on
//!   `p > p0`.

use serde::{Deserialize, Serialize};

/// log-sum-exp of `terms` with equal prior weights.
fn log_mean_exp(terms: &[f64]) -> f64 {
    let m = terms.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    if !m.is_finite() {
        return m;
    }
    let s: f64 = terms.iter().map(|t| (t - m).exp()).sum();
    m + (s / terms.len() as f64).ln()
}

/// A geometric grid from `lo` to `hi` with `n` points.
fn geometric_grid(lo: f64, hi: f64, n: usize) -> Vec<f64> {
    let n = n.max(2);
    (0..n)
        .map(|i| lo * (hi / lo).powf(i as f64 / (n - 1) as f64))
        .collect()
}

/// Prior weight of the whole-life test in [`ErrorTest`]'s mixture over start times; the rest is spread
/// over later restarts.
pub const LIFE_WEIGHT: f64 = 0.5;
/// Scale `T` (informative observations) of the restart prior: the restart before the `(k+2)`-th
/// informative observation gets `T / ((k+T)(k+T+1))` of the restart mass (these sum to 1 over k ≥ 0;
/// ≈ 1/T for k ≪ T, decaying as T/k² after).
pub const RESTART_SCALE: f64 = 200.0;

/// "No restart started yet" in log space: finite so the state serializes to JSON (which has no −∞).
const NOT_STARTED: f64 = -1e300;

/// `ln(e^a + e^b)`.
fn log_add_exp(a: f64, b: f64) -> f64 {
    let m = a.max(b);
    if m == f64::NEG_INFINITY {
        return m;
    }
    m + ((a - m).exp() + (b - m).exp()).ln()
}

/// Sequential test that the canary's error rate is not higher than stable's.
///
/// The e-value is a mixture over θ (the grid prior) *and over the start time*: with weight
/// [`LIFE_WEIGHT`] the likelihood ratio of every observation since the first (the whole-life test), and
/// with the remaining weight a prior over restarts before each later informative observation. A
/// mixture of nonnegative martingales that each start at 1 (a restart's ratio is 1 until it starts)
/// is again one, so Ville's inequality still gives `P(ever Λ ≥ 1/α) ≤ α`. Why: a regression that starts
/// mid-rollout is otherwise judged with the whole healthy history against it — each healthy error
/// lowers the ratio of every θ > 1, so after an hour of healthy traffic a crash needed many seconds
/// to overcome it; a restart near the onset pays only `ln(1/w)` (≈ ln T) once instead.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ErrorTest {
    thetas: Vec<f64>,
    log_lr: Vec<f64>,
    /// Per θ: `ln Σ_{started restarts j} w_j Λ_{j..n}(θ)` ([`NOT_STARTED`] before the first restart).
    #[serde(default)]
    restart_log_lr: Vec<f64>,
    /// Informative observations so far (the restart clock).
    #[serde(default)]
    observations: u64,
    pub canary_errors: u64,
    pub stable_errors: u64,
}

impl Default for ErrorTest {
    fn default() -> Self {
        Self::new()
    }
}

impl ErrorTest {
    /// Prior: 12 points geometric on θ ∈ [1.2, 64] (ratio 1.44 between points). A finer grid costs
    /// `ln K` of evidence on every detection (32 points: 3.5 nats) and gains almost nothing: the
    /// likelihood is smooth in ln θ, so half a step off the best θ loses < 0.1 nat on a crash and
    /// ~0.5 nat after hundreds of errors at 2×; θ < 1.2 is below what the ratio guardrail (1.5×) acts on.
    pub fn new() -> Self {
        Self::with_thetas(geometric_grid(1.2, 64.0, 12))
    }

    /// The error test's prior: 16 points geometric on θ ∈ [1.2, 512]. A crash (50 % errors) at a base
    /// rate of 0.1–1 % is θ ≈ 50–500: with the grid stopping at 64, a canary error at a 1 % share was
    /// worth ln 39 ≈ 3.7 nats instead of ln 84 ≈ 4.4; the 4 extra points cost ln(16/12) ≈ 0.3 nat.
    pub fn errors() -> Self {
        Self::with_thetas(geometric_grid(1.2, 512.0, 16))
    }

    /// The same test with `θ < 1` alternatives (12 points geometric on [0.02, 0.8]): used on *requests*
    /// rather than errors, it tests "the canary serves fewer requests than its assigned share" (the
    /// throughput guardrail). Valid also when the window's share `s` is the mean of per-request shares
    /// that differ (segments at 0 %, at 100 %, in between): the per-request factor of the likelihood
    /// ratio is linear in the request's share, so by AM–GM its expectation over a Poisson-binomial
    /// count is at most that over a binomial at the mean share, which is 1.
    pub fn shortfall() -> Self {
        Self::with_thetas(geometric_grid(0.02, 0.8, 12))
    }

    fn with_thetas(thetas: Vec<f64>) -> Self {
        let log_lr = vec![0.0; thetas.len()];
        let restart_log_lr = vec![NOT_STARTED; thetas.len()];
        Self {
            thetas,
            log_lr,
            restart_log_lr,
            observations: 0,
            canary_errors: 0,
            stable_errors: 0,
        }
    }

    /// Observes a window: `canary_errors` and `stable_errors` errors, with the canary receiving a share
    /// `s ∈ (0, 1)` of the window's requests. Windows without errors or with `s` at 0 or 1 carry no
    /// information and leave the statistic unchanged.
    pub fn observe(&mut self, canary_errors: u64, stable_errors: u64, s: f64) {
        self.observe_strata(&[(canary_errors, stable_errors, s)]);
    }

    /// Observes one time slice made of strata (segments) `(canary_errors, stable_errors, s)`, each with
    /// its own assigned share `s`, under one shared θ: the slice's likelihood ratio is the product of
    /// the strata's, so the mixture stays a test martingale while segments with different base error
    /// rates or shares never mix their nulls. Strata with `s` at 0 or 1 or without errors carry no
    /// information and are skipped; the slice counts as one observation of the restart clock.
    pub fn observe_strata(&mut self, strata: &[(u64, u64, f64)]) {
        let strata: Vec<(u64, u64, f64)> = strata
            .iter()
            .copied()
            .filter(|(c, st, s)| c + st > 0 && *s > 0.0 && *s < 1.0)
            .collect();
        if strata.is_empty() {
            return;
        }
        let canary_errors: u64 = strata.iter().map(|t| t.0).sum();
        let stable_errors: u64 = strata.iter().map(|t| t.1).sum();
        // A state saved before restarts existed (no restart ratios, errors already seen) keeps the
        // whole-life test alone: switching its mixture midway would not be a martingale.
        let legacy = self.restart_log_lr.len() != self.thetas.len();
        if legacy && self.canary_errors + self.stable_errors == 0 {
            self.restart_log_lr = vec![NOT_STARTED; self.thetas.len()];
        }
        let legacy = self.restart_log_lr.len() != self.thetas.len();
        self.canary_errors += canary_errors;
        self.stable_errors += stable_errors;
        if !legacy {
            self.observations += 1;
        }
        // Restart k = observations − 2 starts just before this observation (the first observation
        // starts the whole-life ratio).
        let start_w = (!legacy && self.observations >= 2).then(|| {
            let (k, t) = ((self.observations - 2) as f64, RESTART_SCALE);
            t.ln() - (k + t).ln() - (k + t + 1.0).ln()
        });
        for (i, theta) in self.thetas.iter().enumerate() {
            let inc: f64 = strata
                .iter()
                .map(|&(c, st, s)| {
                    let q = theta * s / (theta * s + 1.0 - s);
                    c as f64 * (q / s).ln() + st as f64 * ((1.0 - q) / (1.0 - s)).ln()
                })
                .sum();
            self.log_lr[i] += inc;
            if let Some(r) = self.restart_log_lr.get_mut(i) {
                if let Some(w) = start_w {
                    *r = log_add_exp(*r, w);
                }
                *r += inc;
            }
        }
    }

    /// `ln Λ`, the log of the mixture likelihood ratio (an e-value's log): over θ and start times, with
    /// the restarts not yet started counted at their prior mass (their ratio is still 1), so the
    /// statistic is exactly the mixture martingale.
    pub fn log_e_value(&self) -> f64 {
        if self.observations == 0 || self.restart_log_lr.len() != self.log_lr.len() {
            return log_mean_exp(&self.log_lr);
        }
        let (lw, rw) = (LIFE_WEIGHT.ln(), (1.0 - LIFE_WEIGHT).ln());
        let per_theta: Vec<f64> = self
            .log_lr
            .iter()
            .zip(&self.restart_log_lr)
            .map(|(l, r)| log_add_exp(lw + l, rw + r))
            .collect();
        // Mass of restarts not started yet: Σ_{k ≥ m} T/((k+T)(k+T+1)) = T/(m+T), m = started.
        let started = self.observations.saturating_sub(1) as f64;
        let unspent = rw + RESTART_SCALE.ln() - (started + RESTART_SCALE).ln();
        log_add_exp(log_mean_exp(&per_theta), unspent)
    }

    /// Always-valid p-value `min(1, 1/Λ)` (not made monotone here; the caller keeps the running min).
    pub fn p_value(&self) -> f64 {
        (-self.log_e_value()).exp().min(1.0)
    }

    pub fn rejects(&self, alpha: f64) -> bool {
        self.log_e_value() >= -alpha.ln()
    }
}

/// Sequential test of a Bernoulli rate against a known null rate `p0`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ExceedanceTest {
    pub p0: f64,
    ps: Vec<f64>,
    log_lr: Vec<f64>,
    pub hits: u64,
    pub trials: u64,
}

impl ExceedanceTest {
    /// Prior: 24 points geometric on `p ∈ [1.5·p0, max(0.9, 1.5·p0)]`.
    pub fn new(p0: f64) -> Self {
        let p0 = p0.clamp(1e-6, 0.5);
        let hi = (0.95f64).max(p0 * 1.5);
        let ps = geometric_grid(p0 * 1.5, hi, 24);
        let log_lr = vec![0.0; ps.len()];
        Self {
            p0,
            ps,
            log_lr,
            hits: 0,
            trials: 0,
        }
    }

    pub fn observe(&mut self, hits: u64, trials: u64) {
        let hits = hits.min(trials);
        if trials == 0 {
            return;
        }
        self.hits += hits;
        self.trials += trials;
        let (k, m) = (hits as f64, (trials - hits) as f64);
        for (p, l) in self.ps.iter().zip(self.log_lr.iter_mut()) {
            *l += k * (p / self.p0).ln() + m * ((1.0 - p) / (1.0 - self.p0)).ln();
        }
    }

    pub fn log_e_value(&self) -> f64 {
        log_mean_exp(&self.log_lr)
    }

    pub fn p_value(&self) -> f64 {
        (-self.log_e_value()).exp().min(1.0)
    }

    pub fn rejects(&self, alpha: f64) -> bool {
        self.log_e_value() >= -alpha.ln()
    }

    pub fn rate(&self) -> f64 {
        if self.trials == 0 {
            0.0
        } else {
            self.hits as f64 / self.trials as f64
        }
    }
}

#[cfg(test)]
mod tests;
