//! Samplers of the traffic model: standard normals, Poisson arrivals, the burst factor, latency buckets.
//! Each draws from the run's ChaCha8 stream in a fixed order, so a seed fixes a run.

use dwcp_core::histogram::GAMMA;
use rand::Rng;
use rand_chacha::ChaCha8Rng;

/// Bucket indices of the per-window scratch histograms (the core's log buckets); latencies clamp below it.
pub(crate) const MAX_BUCKET: usize = 2048;

/// Standard normals by Box–Muller, one spare kept.
pub(crate) struct Normal {
    spare: Option<f64>,
}

impl Normal {
    pub(crate) fn new() -> Self {
        Self { spare: None }
    }

    pub(crate) fn sample(&mut self, rng: &mut ChaCha8Rng) -> f64 {
        if let Some(z) = self.spare.take() {
            return z;
        }
        let u1: f64 = 1.0 - rng.gen::<f64>(); // (0, 1]
        let u2: f64 = rng.gen();
        let r = (-2.0 * u1.ln()).sqrt();
        let (s, c) = (std::f64::consts::TAU * u2).sin_cos();
        self.spare = Some(r * s);
        r * c
    }
}

/// Φ⁻¹(p), Acklam's rational approximation (relative error < 1.2e-9).
fn inv_norm(p: f64) -> f64 {
    const A: [f64; 6] = [
        -3.969_683_028_665_376e1,
        2.209_460_984_245_205e2,
        -2.759_285_104_469_687e2,
        1.383_577_518_672_69e2,
        -3.066_479_806_614_716e1,
        2.506_628_277_459_239,
    ];
    const B: [f64; 5] = [
        -5.447_609_879_822_406e1,
        1.615_858_368_580_409e2,
        -1.556_989_798_598_866e2,
        6.680_131_188_771_972e1,
        -1.328_068_155_288_572e1,
    ];
    const C: [f64; 6] = [
        -7.784_894_002_430_293e-3,
        -3.223_964_580_411_365e-1,
        -2.400_758_277_161_838,
        -2.549_732_539_343_734,
        4.374_664_141_464_968,
        2.938_163_982_698_783,
    ];
    const D: [f64; 4] = [
        7.784_695_709_041_462e-3,
        3.224_671_290_700_398e-1,
        2.445_134_137_142_996,
        3.754_408_661_907_416,
    ];
    let tail = |q: f64| {
        (((((C[0] * q + C[1]) * q + C[2]) * q + C[3]) * q + C[4]) * q + C[5])
            / ((((D[0] * q + D[1]) * q + D[2]) * q + D[3]) * q + 1.0)
    };
    if p < 0.024_25 {
        tail((-2.0 * p.ln()).sqrt())
    } else if p > 1.0 - 0.024_25 {
        -tail((-2.0 * (1.0 - p).ln()).sqrt())
    } else {
        let q = p - 0.5;
        let r = q * q;
        (((((A[0] * r + A[1]) * r + A[2]) * r + A[3]) * r + A[4]) * r + A[5]) * q
            / (((((B[0] * r + B[1]) * r + B[2]) * r + B[3]) * r + B[4]) * r + 1.0)
    }
}

/// Latency sampling by inverse CDF: 2^16 equiprobable slices of log-normal(ln median, σ), each mapped
/// to the core histogram's bucket of its midpoint quantile (p ∈ [7.6e-6, 1 − 7.6e-6], |z| ≤ 4.3).
pub(crate) struct LatencyTable {
    bucket: Vec<u16>,
}

impl LatencyTable {
    const BITS: u32 = 16;

    pub(crate) fn new(median_ms: f64, sigma: f64) -> Self {
        let n = 1usize << Self::BITS;
        let mu = (median_ms * 1000.0).ln();
        let ln_g = GAMMA.ln();
        let bucket = (0..n)
            .map(|i| {
                let z = inv_norm((i as f64 + 0.5) / n as f64);
                ((mu + sigma * z) / ln_g)
                    .ceil()
                    .clamp(1.0, (MAX_BUCKET - 1) as f64) as u16
            })
            .collect();
        Self { bucket }
    }

    #[inline]
    pub(crate) fn sample(&self, bits: u64) -> usize {
        usize::from(self.bucket[(bits >> (64 - Self::BITS)) as usize])
    }
}

/// ln Γ(x) for x ≥ 1 (Stirling series after shifting to x ≥ 10).
fn ln_gamma(mut x: f64) -> f64 {
    let mut acc = 0.0;
    while x < 10.0 {
        acc -= x.ln();
        x += 1.0;
    }
    let x2 = x * x;
    acc + (x - 0.5) * x.ln() - x + 0.5 * (std::f64::consts::TAU).ln() + 1.0 / (12.0 * x)
        - 1.0 / (360.0 * x * x2)
        + 1.0 / (1260.0 * x2 * x2 * x)
}

/// Poisson(λ): Knuth below 10, Hörmann's PTRS above.
pub(crate) fn poisson(rng: &mut ChaCha8Rng, lam: f64) -> u64 {
    if lam <= 0.0 {
        return 0;
    }
    if lam < 10.0 {
        let l = (-lam).exp();
        let mut k = 0u64;
        let mut p = rng.gen::<f64>();
        while p > l {
            k += 1;
            p *= rng.gen::<f64>();
        }
        return k;
    }
    let slam = lam.sqrt();
    let loglam = lam.ln();
    let b = 0.931 + 2.53 * slam;
    let a = -0.059 + 0.02483 * b;
    let inv_alpha = 1.1239 + 1.1328 / (b - 3.4);
    let vr = 0.9277 - 3.6224 / (b - 2.0);
    loop {
        let u = rng.gen::<f64>() - 0.5;
        let v: f64 = rng.gen();
        let us = 0.5 - u.abs();
        let k = ((2.0 * a / us + b) * u + lam + 0.43).floor();
        if us >= 0.07 && v <= vr {
            return k as u64;
        }
        if k < 0.0 || (us < 0.013 && v > us) {
            continue;
        }
        if v.ln() + inv_alpha.ln() - (a / (us * us) + b).ln()
            <= -lam + k * loglam - ln_gamma(k + 1.0)
        {
            return k as u64;
        }
    }
}

/// Burst modulation of the arrival rate: an AR(1) log-normal factor with mean ≈ 1 and rare spikes.
pub(crate) struct Burst {
    x: f64,
    spike_left: u32,
}

impl Burst {
    const SIGMA: f64 = 0.3;
    const RHO: f64 = 0.8;

    pub(crate) fn new(rng: &mut ChaCha8Rng, n: &mut Normal) -> Self {
        Self {
            x: Self::SIGMA * n.sample(rng),
            spike_left: 0,
        }
    }

    pub(crate) fn next(&mut self, rng: &mut ChaCha8Rng, n: &mut Normal) -> f64 {
        self.x =
            Self::RHO * self.x + (1.0 - Self::RHO * Self::RHO).sqrt() * Self::SIGMA * n.sample(rng);
        if self.spike_left > 0 {
            self.spike_left -= 1;
        } else if rng.gen::<f64>() < 0.005 {
            // Geometric duration, mean 10 s.
            self.spike_left = 1;
            while rng.gen::<f64>() < 0.9 {
                self.spike_left += 1;
            }
        }
        let spike = if self.spike_left > 0 { 3.0 } else { 1.0 };
        (self.x - Self::SIGMA * Self::SIGMA / 2.0).exp() * spike
    }
}
