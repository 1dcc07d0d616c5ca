//! EigenTrust (Kamvar, Schlosser, Garcia-Molina, WWW 2003) with pre-trust, and the committee
//! choice made from it.
//!
//! `s[i][j]` is what node `i` reported about node `j` (here: how many valid commit signatures of
//! `j` node `i` put into its committed evidence). Rows are normalised into the local-trust matrix
//! `C` (`c_ij = s_ij / Σ_k s_ik`; a row with no reports is the pre-trust vector `p`, as in the
//! paper), and the global trust is the fixed point of `t ← (1 − a)·Cᵀ·t + a·p`, iterated from
//! `t = p` until the L1 change is below [`EPSILON`]. With `0 < a ≤ 1` this is a contraction, so
//! the fixed point is unique.
//!
//! Determinism: every loop runs over indices in order and every float operation is the same on
//! every node (no parallel sums, no hash maps), so honest nodes that hold the same committed
//! evidence compute bit-identical vectors.

use std::collections::BTreeSet;

use crate::sim::protocol::NodeId;

/// Convergence threshold on `Σ |t' − t|`.
pub const EPSILON: f64 = 1e-12;
/// Iteration cap (the contraction factor is `1 − a`, so this is never reached for sane `a`).
pub const MAX_ITERATIONS: usize = 100_000;

/// The pre-trust vector: uniform over the nodes not proven faulty.
pub fn pre_trust(n: usize, faulty: &BTreeSet<NodeId>) -> Vec<f64> {
    let good = (0..n).filter(|i| !faulty.contains(&(*i as NodeId))).count();
    (0..n)
        .map(|i| {
            if faulty.contains(&(i as NodeId)) || good == 0 {
                0.0
            } else {
                1.0 / good as f64
            }
        })
        .collect()
}

/// Row-normalise the reports `s` into `C`; a row without reports becomes `p`.
pub fn local_trust(s: &[Vec<f64>], p: &[f64]) -> Vec<Vec<f64>> {
    s.iter()
        .map(|row| {
            let sum: f64 = row.iter().map(|v| v.max(0.0)).sum();
            if sum > 0.0 {
                row.iter().map(|v| v.max(0.0) / sum).collect()
            } else {
                p.to_vec()
            }
        })
        .collect()
}

/// The global trust vector: `t ← (1 − a)·Cᵀ·t + a·p` to convergence, and the iterations used.
pub fn eigentrust(c: &[Vec<f64>], p: &[f64], a: f64) -> (Vec<f64>, usize) {
    let n = p.len();
    let mut t = p.to_vec();
    for it in 1..=MAX_ITERATIONS {
        let mut next = vec![0.0; n];
        for (i, row) in c.iter().enumerate() {
            let ti = t[i];
            for (j, cij) in row.iter().enumerate().take(n) {
                next[j] += cij * ti;
            }
        }
        let mut delta = 0.0;
        for j in 0..n {
            next[j] = (1.0 - a) * next[j] + a * p[j];
            delta += (next[j] - t[j]).abs();
        }
        t = next;
        if delta < EPSILON {
            return (t, it);
        }
    }
    (t, MAX_ITERATIONS)
}

/// The top-`c` eligible nodes by trust, in rank order. Ties break by "was not in the previous
/// committee" first (so a member that earned nothing yields its seat to a fresh node), then by
/// id. Proven-faulty nodes are never eligible.
pub fn committee(
    trust: &[f64],
    c: usize,
    faulty: &BTreeSet<NodeId>,
    previous: &[NodeId],
) -> Vec<NodeId> {
    let mut ids: Vec<NodeId> = (0..trust.len() as NodeId)
        .filter(|i| !faulty.contains(i))
        .collect();
    ids.sort_by(|x, y| {
        trust[*y as usize]
            .total_cmp(&trust[*x as usize])
            .then_with(|| previous.contains(x).cmp(&previous.contains(y)))
            .then_with(|| x.cmp(y))
    });
    ids.truncate(c);
    ids
}

/// Trust as integers (parts per 10⁹), for outputs, hashes and the HTTP status.
pub fn to_ppb(t: &[f64]) -> Vec<u64> {
    t.iter()
        .map(|v| (v.clamp(0.0, 1.0) * 1e9).round() as u64)
        .collect()
}
