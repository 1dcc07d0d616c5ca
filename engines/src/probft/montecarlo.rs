//! # The safety Monte-Carlo: one view of ProBFT under the strongest attack, sample-only
//!
//! What it models, exactly (the fast path behind `make sim-probft`; the full simulator is too
//! slow for 10 000 views at n = 256):
//!
//! * `n` replicas with real RFC 9381 key pairs; `f` of them Byzantine, the leader among them.
//!   Every replica's Prepare and Commit samples in a view are the ones the protocol uses: the
//!   real ECVRF output on `(slot 0, view, phase)` mapped by [`super::sample_from_beta`] (or, in
//!   the `ideal` mode, a uniform sample from a seeded ChaCha stream — what a perfect VRF gives).
//! * **Attack.** The leader equivocates: honest replicas are split into halves A and B
//!   (alternating ids), each accepting its half's value. Byzantine replicas vote for *both*
//!   values in both phases, but only to their own VRF samples (receivers refuse the rest). The
//!   adversary controls delivery: an honest replica may decide a value as soon as `q` commits
//!   for it reach it, in any order. An honest replica prepares value X iff the Prepares for X
//!   addressed to it (from honest X-side replicas and all Byzantine ones) reach `q`; it then
//!   commits X to its commit sample. A **conflict** is two distinct honest replicas of which one
//!   can decide A and the other B.
//! * **Liveness in the same view without attack** (Byzantine replicas silent, one value): the
//!   share of views in which at least one honest replica decides (the others then catch up via
//!   the decision certificate) and in which all of them do.
//!
//! Not modelled: view changes (a conflict inside one view is what the prepared-certificate
//! mechanism cannot undo), message loss, crash faults.

use rand::{RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::vrf::VrfSecret;
use super::{quorum, sample_from_beta, sample_size, vrf_alpha, Phase};

/// Where the samples come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SampleSource {
    /// The real ECVRF output of each replica.
    Vrf,
    /// A uniform sample from a ChaCha stream (an ideal VRF), for fast large runs.
    Ideal,
}

/// Counts over a number of views.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Tally {
    pub views: u64,
    pub conflicts: u64,
    pub live_one: u64,
    pub live_all: u64,
}

impl Tally {
    pub fn add(&mut self, o: &Tally) {
        self.views += o.views;
        self.conflicts += o.conflicts;
        self.live_one += o.live_one;
        self.live_all += o.live_all;
    }
}

/// One Monte-Carlo configuration.
#[derive(Debug)]
pub struct Model {
    pub n: u32,
    /// The Byzantine counts evaluated on the same samples (one [`Tally`] each).
    pub fs: Vec<u32>,
    pub o: f64,
    pub l: f64,
    pub source: SampleSource,
    keys: Vec<VrfSecret>,
}

impl Model {
    pub fn new(n: u32, fs: Vec<u32>, o: f64, l: f64, source: SampleSource, seed: u64) -> Self {
        let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0x5afe_7ee5);
        let keys = (0..n)
            .filter_map(|_| {
                let mut s = [0u8; 32];
                rng.fill_bytes(&mut s);
                VrfSecret::from_seed(s).ok()
            })
            .collect();
        Self {
            n,
            fs,
            o,
            l,
            source,
            keys,
        }
    }

    pub fn sample_size(&self) -> usize {
        sample_size(self.n, self.o)
    }

    pub fn quorum(&self) -> usize {
        quorum(self.n, self.o, self.l)
    }

    fn sample(&self, i: usize, view: u64, phase: Phase) -> Vec<u32> {
        let s = self.sample_size();
        let beta = match self.source {
            SampleSource::Vrf => match self
                .keys
                .get(i)
                .map(|k| k.prove(&vrf_alpha(0, view, phase)))
            {
                Some(Ok((_, beta))) => beta,
                _ => return Vec::new(),
            },
            SampleSource::Ideal => {
                let mut rng = ChaCha8Rng::seed_from_u64(
                    view.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ ((i as u64) << 8) ^ phase as u64,
                );
                let mut b = [0u8; 64];
                rng.fill_bytes(&mut b);
                b
            }
        };
        sample_from_beta(&beta, self.n, s)
    }

    /// One view (`view` seeds the samples), one tally per Byzantine count.
    pub fn view(&self, view: u64) -> Vec<Tally> {
        let n = self.n as usize;
        let prep: Vec<Vec<u32>> = (0..n)
            .map(|i| self.sample(i, view, Phase::Prepare))
            .collect();
        let comm: Vec<Vec<u32>> = (0..n)
            .map(|i| self.sample(i, view, Phase::Commit))
            .collect();
        self.fs
            .iter()
            .map(|f| self.judge(*f as usize, &prep, &comm))
            .collect()
    }

    fn judge(&self, f: usize, prep: &[Vec<u32>], comm: &[Vec<u32>]) -> Tally {
        let n = self.n as usize;
        let q = self.quorum();
        // Byzantine ids 0..f (the leader of view 0 of slot 0 included); samples do not depend
        // on identities, so which ids are Byzantine does not matter.
        let byz = |i: usize| i < f;
        let side_a = |i: usize| (i - f).is_multiple_of(2);

        // Attack.
        let (mut pa, mut pb) = (vec![0usize; n], vec![0usize; n]);
        for (j, s) in prep.iter().enumerate() {
            for r in s {
                let r = *r as usize;
                if byz(j) {
                    pa[r] += 1;
                    pb[r] += 1;
                } else if side_a(j) {
                    pa[r] += 1;
                } else {
                    pb[r] += 1;
                }
            }
        }
        let prepared_a = |j: usize| !byz(j) && side_a(j) && pa[j] >= q;
        let prepared_b = |j: usize| !byz(j) && !side_a(j) && pb[j] >= q;
        let (mut ca, mut cb) = (vec![0usize; n], vec![0usize; n]);
        for (j, s) in comm.iter().enumerate() {
            let (va, vb) = (byz(j) || prepared_a(j), byz(j) || prepared_b(j));
            for r in s {
                let r = *r as usize;
                ca[r] += usize::from(va);
                cb[r] += usize::from(vb);
            }
        }
        let can_a: Vec<usize> = (f..n).filter(|r| ca[*r] >= q).collect();
        let can_b: Vec<usize> = (f..n).filter(|r| cb[*r] >= q).collect();
        let conflict = can_a.iter().any(|a| can_b.iter().any(|b| b != a));

        // No attack: Byzantine silent, every honest replica accepted the one value.
        let mut p = vec![0usize; n];
        for s in prep.iter().skip(f) {
            for r in s {
                p[*r as usize] += 1;
            }
        }
        let mut c = vec![0usize; n];
        for (j, s) in comm.iter().enumerate().skip(f) {
            if p[j] >= q {
                for r in s {
                    c[*r as usize] += 1;
                }
            }
        }
        let decided = (f..n).filter(|r| c[*r] >= q).count();
        Tally {
            views: 1,
            conflicts: u64::from(conflict),
            live_one: u64::from(decided > 0),
            live_all: u64::from(decided == n - f),
        }
    }

    /// Views `first..first + count`, one tally per Byzantine count.
    pub fn run(&self, first: u64, count: u64) -> Vec<Tally> {
        let mut t = vec![Tally::default(); self.fs.len()];
        for v in first..first + count {
            for (a, b) in t.iter_mut().zip(self.view(v)) {
                a.add(&b);
            }
        }
        t
    }
}

/// Wilson score interval for `k` successes in `n` trials at `z` (1.96 for 95 %).
pub fn wilson(k: u64, n: u64, z: f64) -> (f64, f64) {
    if n == 0 {
        return (0.0, 1.0);
    }
    let (k, n) = (k as f64, n as f64);
    let p = k / n;
    let d = 1.0 + z * z / n;
    let c = (p + z * z / (2.0 * n)) / d;
    let h = z * (p * (1.0 - p) / n + z * z / (4.0 * n * n)).sqrt() / d;
    ((c - h).max(0.0), (c + h).min(1.0))
}

/// `P(Bin(m, p) ≥ k)`, exactly (sums the pmf in log space).
pub fn binom_tail(m: u64, p: f64, k: u64) -> f64 {
    if k == 0 {
        return 1.0;
    }
    if k > m || p <= 0.0 {
        return 0.0;
    }
    let lp = p.ln();
    let lq = (1.0 - p).ln();
    let mut lc = 0.0f64; // ln C(m, i), built up from i = 0
    let mut sum = 0.0f64;
    for i in 0..=m {
        if i > 0 {
            lc += ((m - i + 1) as f64).ln() - (i as f64).ln();
        }
        if i >= k {
            sum += (lc + i as f64 * lp + (m - i) as f64 * lq).exp();
        }
    }
    sum.min(1.0)
}

/// An analytic upper bound on the conflict probability *in this model* (union and Markov bounds,
/// no independence assumed). A conflict needs an honest replica that can decide the B side's
/// value (the smaller side, `h = ⌊(n − f)/2⌋` honest replicas). A B-side replica prepares only
/// with `q` Prepares from at most `h + f` senders, each reaching it with probability `s/n`:
/// `π = P(Bin(h + f, s/n) ≥ q)`, so `E|P_B| ≤ h·π` and `P(|P_B| ≥ k) ≤ h·π/k` (Markov). With
/// fewer than `k` prepared, a given honest replica gets `q` B-commits with probability at most
/// `P(Bin(k − 1 + f, s/n) ≥ q)`; a union over the `n − f` honest replicas gives
/// `P(conflict) ≤ min_k [h·π/k + (n − f)·P(Bin(k − 1 + f, s/n) ≥ q)]`.
pub fn union_bound(n: u32, f: u32, o: f64, l: f64) -> f64 {
    let p = sample_size(n, o) as f64 / f64::from(n);
    let q = quorum(n, o, l) as u64;
    let h = u64::from((n - f) / 2);
    let fu = u64::from(f);
    let pi = binom_tail(h + fu, p, q);
    let mut best = 1.0f64;
    for k in 1..=h + 1 {
        let b = h as f64 * pi / k as f64 + f64::from(n - f) * binom_tail(k - 1 + fu, p, q);
        best = best.min(b);
    }
    best.min(1.0)
}
