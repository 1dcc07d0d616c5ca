//! # The selection model, learned from measurements
//!
//! For every codec the model predicts `ln(compressed/original)` and `ln(cpu ns per input byte)`
//! (compress + decompress) from the probe features ([`Features::vector`]), then the modelled
//! transfer time `cpu + size·ratio / bandwidth + rtt`, and picks the minimum. Two learners, both
//! fitted to measurements of real codec runs ([`super::oracle`]): the primary is an
//! inverse-distance-weighted k-nearest-neighbour regression over standardised features (it
//! captures the per-class non-linearity that decides near-ties); a per-codec ridge regression is
//! kept as a baseline and as the fallback when there are fewer than `k` training items. Nothing
//! is a hand-written label rule: change the machine or the corpus and the predictions change.

use serde::{Deserialize, Serialize};
use thiserror::Error;

use super::codec::Codec;
use super::features::{Features, DIM};

/// The link a payload is about to cross.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Link {
    pub bandwidth_bytes_per_s: u64,
    pub rtt_us: u64,
}

/// Modelled (or, with measured inputs, actual) transfer time in nanoseconds.
pub fn transfer_ns(cpu_ns: f64, out_len: f64, link: Link) -> f64 {
    cpu_ns + out_len * 1e9 / (link.bandwidth_bytes_per_s.max(1) as f64) + link.rtt_us as f64 * 1e3
}

/// One training observation: a payload's features and one codec's measured run.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Sample {
    pub features: Features,
    pub codec: Codec,
    pub out_len: u64,
    pub cpu_ns: u64,
}

/// Training failures.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ModelError {
    #[error("no training samples for codec {0:?}")]
    NoSamples(Codec),
    #[error("singular system for codec {0:?}")]
    Singular(Codec),
}

/// Per-codec weights.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CodecWeights {
    pub codec: Codec,
    pub ln_ratio: [f64; DIM],
    pub ln_ns_per_byte: [f64; DIM],
}

/// One training item for the neighbour regression: standardised features and, per codec in
/// [`Codec::ALL`] order, the measured `ln ratio` and `ln ns/byte`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Neighbour {
    pub x: [f64; DIM],
    pub ln_ratio: [f64; 6],
    pub ln_cost: [f64; 6],
}

/// The learned model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Model {
    pub weights: Vec<CodecWeights>,
    pub neighbours: Vec<Neighbour>,
    pub mean: [f64; DIM],
    pub scale: [f64; DIM],
    pub k: usize,
    pub trained_on: usize,
}

fn dot(a: &[f64; DIM], b: &[f64; DIM]) -> f64 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

/// Solve `(XᵀX + λI) w = Xᵀy` by Gaussian elimination with partial pivoting.
fn ridge(xs: &[[f64; DIM]], ys: &[f64], lambda: f64) -> Option<[f64; DIM]> {
    let mut a = [[0.0; DIM + 1]; DIM];
    for (x, y) in xs.iter().zip(ys) {
        for i in 0..DIM {
            for j in 0..DIM {
                a[i][j] += x[i] * x[j];
            }
            a[i][DIM] += x[i] * y;
        }
    }
    for (i, row) in a.iter_mut().enumerate() {
        row[i] += lambda;
    }
    for col in 0..DIM {
        let pivot = (col..DIM).max_by(|&r, &s| a[r][col].abs().total_cmp(&a[s][col].abs()))?;
        if a[pivot][col].abs() < 1e-12 {
            return None;
        }
        a.swap(col, pivot);
        for r in 0..DIM {
            if r != col {
                let factor = a[r][col] / a[col][col];
                let pivot_row = a[col];
                for (c, v) in a[r].iter_mut().enumerate().skip(col) {
                    *v -= factor * pivot_row[c];
                }
            }
        }
    }
    let mut w = [0.0; DIM];
    for i in 0..DIM {
        w[i] = a[i][DIM] / a[i][i];
    }
    Some(w)
}

impl Model {
    /// Fit every codec's regressions with ridge penalty `lambda`.
    pub fn train(samples: &[Sample], lambda: f64) -> Result<Model, ModelError> {
        let mut weights = Vec::new();
        for codec in Codec::ALL {
            let mine: Vec<&Sample> = samples
                .iter()
                .filter(|s| s.codec == codec && s.features.len > 0)
                .collect();
            if mine.is_empty() {
                return Err(ModelError::NoSamples(codec));
            }
            let xs: Vec<[f64; DIM]> = mine.iter().map(|s| s.features.vector()).collect();
            let ratio: Vec<f64> = mine
                .iter()
                .map(|s| (s.out_len.max(1) as f64 / s.features.len as f64).ln())
                .collect();
            let cost: Vec<f64> = mine
                .iter()
                .map(|s| (s.cpu_ns.max(1) as f64 / s.features.len as f64).ln())
                .collect();
            let ln_ratio = ridge(&xs, &ratio, lambda).ok_or(ModelError::Singular(codec))?;
            let ln_ns_per_byte = ridge(&xs, &cost, lambda).ok_or(ModelError::Singular(codec))?;
            weights.push(CodecWeights {
                codec,
                ln_ratio,
                ln_ns_per_byte,
            });
        }
        let (neighbours, mean, scale) = neighbours(samples);
        let trained_on = neighbours.len();
        Ok(Model {
            weights,
            neighbours,
            mean,
            scale,
            k: 4,
            trained_on,
        })
    }

    fn standardise(&self, x: &[f64; DIM]) -> [f64; DIM] {
        let mut z = [0.0; DIM];
        for i in 0..DIM {
            z[i] = (x[i] - self.mean[i]) / self.scale[i];
        }
        z
    }

    /// `(ln ratio, ln ns/byte)` per codec from the k nearest training items.
    fn knn(&self, x: &[f64; DIM]) -> Option<([f64; 6], [f64; 6])> {
        if self.neighbours.len() < self.k || self.k == 0 {
            return None;
        }
        let z = self.standardise(x);
        let mut best: Vec<(f64, usize)> = Vec::with_capacity(self.k + 1);
        for (i, nb) in self.neighbours.iter().enumerate() {
            let d: f64 = nb.x.iter().zip(&z).map(|(a, b)| (a - b) * (a - b)).sum();
            if best.len() < self.k || d < best[best.len() - 1].0 {
                let at = best.partition_point(|(bd, _)| *bd <= d);
                best.insert(at, (d, i));
                best.truncate(self.k);
            }
        }
        let (mut r, mut c, mut wsum) = ([0.0; 6], [0.0; 6], 0.0);
        for (d, i) in best {
            let w = 1.0 / (d.sqrt() + 1e-3);
            wsum += w;
            for j in 0..6 {
                r[j] += w * self.neighbours[i].ln_ratio[j];
                c[j] += w * self.neighbours[i].ln_cost[j];
            }
        }
        for j in 0..6 {
            r[j] /= wsum;
            c[j] /= wsum;
        }
        Some((r, c))
    }

    /// Predicted transfer time per codec from the ridge regressions only (baseline).
    pub fn predict_linear(
        &self,
        f: &Features,
        link: Link,
    ) -> impl Iterator<Item = (Codec, f64)> + '_ {
        let x = f.vector();
        let len = f.len as f64;
        self.weights.iter().map(move |w| {
            let out = len * dot(&w.ln_ratio, &x).exp();
            let cpu = len * dot(&w.ln_ns_per_byte, &x).exp();
            (w.codec, transfer_ns(cpu, out, link))
        })
    }

    pub fn select_linear(&self, f: &Features, link: Link) -> Codec {
        self.predict_linear(f, link)
            .min_by(|a, b| a.1.total_cmp(&b.1))
            .map_or(Codec::None, |(c, _)| c)
    }

    /// Predicted transfer time per codec.
    pub fn predict(&self, f: &Features, link: Link) -> Vec<(Codec, f64)> {
        let Some((r, c)) = self.knn(&f.vector()) else {
            return self.predict_linear(f, link).collect();
        };
        let len = f.len as f64;
        Codec::ALL
            .iter()
            .enumerate()
            .map(|(j, codec)| {
                (
                    *codec,
                    transfer_ns(len * c[j].exp(), len * r[j].exp(), link),
                )
            })
            .collect()
    }

    /// The codec with the smallest predicted transfer time.
    pub fn select(&self, f: &Features, link: Link) -> Codec {
        self.predict(f, link)
            .into_iter()
            .min_by(|a, b| a.1.total_cmp(&b.1))
            .map_or(Codec::None, |(c, _)| c)
    }
}

/// Group samples by item (consecutive runs of one feature vector), standardise the features.
fn neighbours(samples: &[Sample]) -> (Vec<Neighbour>, [f64; DIM], [f64; DIM]) {
    let mut items: Vec<Neighbour> = Vec::new();
    let mut last: Option<Features> = None;
    for s in samples {
        if last != Some(s.features) {
            items.push(Neighbour {
                x: s.features.vector(),
                ln_ratio: [0.0; 6],
                ln_cost: [0.0; 6],
            });
            last = Some(s.features);
        }
        let len = s.features.len.max(1) as f64;
        if let (Some(nb), Some(j)) = (
            items.last_mut(),
            Codec::ALL.iter().position(|c| *c == s.codec),
        ) {
            nb.ln_ratio[j] = (s.out_len.max(1) as f64 / len).ln();
            nb.ln_cost[j] = (s.cpu_ns.max(1) as f64 / len).ln();
        }
    }
    let n = items.len().max(1) as f64;
    let mut mean = [0.0; DIM];
    let mut scale = [1.0; DIM];
    for i in 0..DIM {
        mean[i] = items.iter().map(|nb| nb.x[i]).sum::<f64>() / n;
        let var = items
            .iter()
            .map(|nb| (nb.x[i] - mean[i]).powi(2))
            .sum::<f64>()
            / n;
        scale[i] = if var > 1e-12 { var.sqrt() } else { 1.0 };
    }
    for nb in &mut items {
        for i in 0..DIM {
            nb.x[i] = (nb.x[i] - mean[i]) / scale[i];
        }
    }
    (items, mean, scale)
}
