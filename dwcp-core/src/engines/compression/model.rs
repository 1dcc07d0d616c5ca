//! # The selection model, learned from measurements
//!
//! For each codec, two ridge regressions on the probe features ([`Features::vector`]):
//! `ln(compressed/original)` and `ln(cpu ns per input byte)` (compress + decompress), fitted to
//! measurements of real codec runs ([`super::oracle`]). A decision predicts, for every codec,
//! the modelled transfer time `cpu + size·ratio / bandwidth + rtt` and takes the minimum. Nothing
//! is a hand-written label rule: change the machine or the corpus and the weights change.

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

/// The learned model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Model {
    pub weights: Vec<CodecWeights>,
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
                for c in col..=DIM {
                    a[r][c] -= factor * a[col][c];
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
            let mine: Vec<&Sample> = samples.iter().filter(|s| s.codec == codec && s.features.len > 0).collect();
            if mine.is_empty() {
                return Err(ModelError::NoSamples(codec));
            }
            let xs: Vec<[f64; DIM]> = mine.iter().map(|s| s.features.vector()).collect();
            let ratio: Vec<f64> = mine.iter().map(|s| (s.out_len.max(1) as f64 / s.features.len as f64).ln()).collect();
            let cost: Vec<f64> = mine.iter().map(|s| (s.cpu_ns.max(1) as f64 / s.features.len as f64).ln()).collect();
            let ln_ratio = ridge(&xs, &ratio, lambda).ok_or(ModelError::Singular(codec))?;
            let ln_ns_per_byte = ridge(&xs, &cost, lambda).ok_or(ModelError::Singular(codec))?;
            weights.push(CodecWeights { codec, ln_ratio, ln_ns_per_byte });
        }
        let trained_on = samples.len() / Codec::ALL.len();
        Ok(Model { weights, trained_on })
    }

    /// Predicted transfer time per codec.
    pub fn predict(&self, f: &Features, link: Link) -> impl Iterator<Item = (Codec, f64)> + '_ {
        let x = f.vector();
        let len = f.len as f64;
        self.weights.iter().map(move |w| {
            let out = len * dot(&w.ln_ratio, &x).exp();
            let cpu = len * dot(&w.ln_ns_per_byte, &x).exp();
            (w.codec, transfer_ns(cpu, out, link))
        })
    }

    /// The codec with the smallest predicted transfer time.
    pub fn select(&self, f: &Features, link: Link) -> Codec {
        self.predict(f, link).min_by(|a, b| a.1.total_cmp(&b.1)).map_or(Codec::None, |(c, _)| c)
    }
}
