//! Anytime-valid sequential tests for judging a canary continuously (see `shared/STATS.md`).
//!
//! Both tests are mixture likelihood ratios over a discrete grid prior. Under the null each is a
//! nonnegative martingale with mean 1, so by Ville's inequality `P(ever Λ ≥ 1/α) ≤ α`: the canary can be
//! watched after every batch without inflating false aborts.
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

/// Sequential test that the canary's error rate is not higher than stable's.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ErrorTest {
    thetas: Vec<f64>,
    log_lr: Vec<f64>,
    pub canary_errors: u64,
    pub stable_errors: u64,
}

impl Default for ErrorTest {
    fn default() -> Self {
        Self::new()
    }
}

impl ErrorTest {
    /// Prior: 32 points geometric on θ ∈ [1.1, 64].
    pub fn new() -> Self {
        let thetas = geometric_grid(1.1, 64.0, 32);
        let log_lr = vec![0.0; thetas.len()];
        Self {
            thetas,
            log_lr,
            canary_errors: 0,
            stable_errors: 0,
        }
    }

    /// Observes a window: `canary_errors` and `stable_errors` errors, with the canary receiving a share
    /// `s ∈ (0, 1)` of the window's requests. Windows without errors or with `s` at 0 or 1 carry no
    /// information and leave the statistic unchanged.
    pub fn observe(&mut self, canary_errors: u64, stable_errors: u64, s: f64) {
        if canary_errors + stable_errors == 0 || !(s > 0.0 && s < 1.0) {
            return;
        }
        self.canary_errors += canary_errors;
        self.stable_errors += stable_errors;
        let (ec, es) = (canary_errors as f64, stable_errors as f64);
        for (theta, l) in self.thetas.iter().zip(self.log_lr.iter_mut()) {
            let q = theta * s / (theta * s + 1.0 - s);
            *l += ec * (q / s).ln() + es * ((1.0 - q) / (1.0 - s)).ln();
        }
    }

    /// `ln Λ`, the log of the mixture likelihood ratio (an e-value's log).
    pub fn log_e_value(&self) -> f64 {
        log_mean_exp(&self.log_lr)
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
