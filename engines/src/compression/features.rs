//! # Features from a bounded sample
//!
//! At most [`PROBE_BYTES`] (4 KiB) of the payload are read, whatever its size: the whole payload
//! if it is smaller, otherwise four 1 KiB chunks spread evenly across it. From the probe: byte
//! entropy, the share of distinct byte values, an lz4 trial-compression ratio, and the share of
//! probe chunks that repeat another chunk (page-level redundancy). Cost is O(probe), independent
//! of the payload size — that bound is what keeps a decision under 20 µs.

use serde::{Deserialize, Serialize};

pub const PROBE_BYTES: usize = 4096;
const CHUNK: usize = 1024;

/// The model's inputs about the payload.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Features {
    pub len: u64,
    /// Shannon entropy of the probe, bits per byte (0..=8).
    pub entropy: f64,
    pub distinct: f64,
    /// lz4 output / input on the probe.
    pub trial_ratio: f64,
    pub repeated_chunks: f64,
}

impl Features {
    /// The regression vector (fixed order, leading bias term).
    pub fn vector(&self) -> [f64; DIM] {
        let e = self.entropy / 8.0;
        let t = self.trial_ratio.min(1.2);
        let size = ((self.len.max(1)) as f64).ln() / 16.0;
        [
            1.0,
            e,
            e * e,
            t,
            t * t,
            self.distinct,
            self.repeated_chunks,
            size,
        ]
    }
}

/// Length of [`Features::vector`].
pub const DIM: usize = 8;

fn probe(payload: &[u8], buf: &mut Vec<u8>) -> usize {
    buf.clear();
    if payload.len() <= PROBE_BYTES {
        buf.extend_from_slice(payload);
        return 1;
    }
    let last = payload.len() - CHUNK;
    for i in 0..4 {
        let at = last * i / 3;
        buf.extend_from_slice(&payload[at..at + CHUNK]);
    }
    4
}

/// Extract features reading at most [`PROBE_BYTES`] of `payload`.
pub fn extract(payload: &[u8]) -> Features {
    let mut sample = Vec::with_capacity(PROBE_BYTES);
    let chunks = probe(payload, &mut sample);
    let mut hist = [0u32; 256];
    for b in &sample {
        hist[usize::from(*b)] += 1;
    }
    let n = sample.len().max(1) as f64;
    let entropy = hist
        .iter()
        .filter(|c| **c > 0)
        .map(|c| {
            let p = f64::from(*c) / n;
            -p * p.log2()
        })
        .sum::<f64>();
    let distinct = hist.iter().filter(|c| **c > 0).count() as f64 / 256.0;
    let trial_ratio = if sample.is_empty() {
        1.0
    } else {
        lz4_flex::block::compress(&sample).len() as f64 / n
    };
    let repeated = if chunks == 4 {
        let parts: Vec<&[u8]> = sample.chunks(CHUNK).collect();
        (0..4)
            .filter(|&i| (0..4).any(|j| j != i && parts[i] == parts[j]))
            .count() as f64
            / 4.0
    } else {
        0.0
    };
    Features {
        len: payload.len() as u64,
        entropy,
        distinct,
        trial_ratio,
        repeated_chunks: repeated,
    }
}
