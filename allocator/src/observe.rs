//! # What an agent observes
//!
//! One vector per agent, built the same way in training, evaluation and the companion's endpoint:
//!
//! `[demand/max_capacity (3), has_head, slack/max_slack, queue_len/max_queue,
//!   free/capacity per node (3 × k), fits per node (k), tightness per node (k),
//!   best-fit choice per node (k)]`
//!
//! The `fits` flags double as the action mask: the policy only scores nodes the head fits on
//! (defer is always allowed). `tightness` is `1 −` best-fit's key (the mean over resources of the
//! free share left after placing the head; 0 where it does not fit), and `best-fit choice` is the
//! one-hot of the node [`best_fit`] would pick: the actor sees the baseline's view of the fit on
//! all three resources, and the trainer's behaviour-cloning warm start reads its labels from it. The guard in [`crate::policy`] re-checks the chosen action against
//! the cluster's integer capacity, independently of this float view.

use crate::baselines::{best_fit, best_fit_key};
use crate::cluster::{Cluster, Head, RESOURCES};

/// Observation length for `k` nodes.
pub fn obs_dim(k: usize) -> usize {
    6 + 6 * k
}

/// Offset of the `fits` flags.
pub fn fits_offset(k: usize) -> usize {
    6 + 3 * k
}

/// Offset of the best-fit choice one-hot (the behaviour-cloning label).
pub fn best_fit_offset(k: usize) -> usize {
    6 + 5 * k
}

/// Normalisers of one environment shape.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Scale {
    pub max_capacity: [f32; RESOURCES],
    pub max_slack: f32,
    pub max_queue: f32,
}

impl Scale {
    pub fn new(cluster: &Cluster, max_slack: u32, max_queue: usize) -> Self {
        let mut max_capacity = [1.0f32; RESOURCES];
        for n in 0..cluster.len() {
            if let Some(c) = cluster.capacity(n) {
                for (m, c) in max_capacity.iter_mut().zip(c) {
                    *m = m.max(c as f32);
                }
            }
        }
        Self {
            max_capacity,
            max_slack: (max_slack as f32).max(1.0),
            max_queue: (max_queue as f32).max(1.0),
        }
    }
}

/// Write the observation of `head` on `cluster` into `out` (cleared first; no allocation once sized).
pub fn observation_into(cluster: &Cluster, head: Option<&Head>, scale: &Scale, out: &mut Vec<f32>) {
    out.clear();
    match head {
        Some(h) => {
            for (d, m) in h.demand.iter().zip(&scale.max_capacity) {
                out.push(*d as f32 / m);
            }
            out.push(1.0);
            out.push((h.slack as f32 / scale.max_slack).min(1.0));
            out.push((h.queue_len as f32 / scale.max_queue).min(1.0));
        }
        None => out.extend_from_slice(&[0.0; 6]),
    }
    for n in 0..cluster.len() {
        let (c, f) = (cluster.capacity(n), cluster.free(n));
        for r in 0..RESOURCES {
            let v = match (c, f) {
                (Some(c), Some(f)) if c[r] > 0 => f[r] as f32 / c[r] as f32,
                _ => 0.0,
            };
            out.push(v);
        }
    }
    for n in 0..cluster.len() {
        let fits = head.is_some_and(|h| cluster.fits(n, h.demand));
        out.push(if fits { 1.0 } else { 0.0 });
    }
    for n in 0..cluster.len() {
        let key = head
            .filter(|h| cluster.fits(n, h.demand))
            .and_then(|h| best_fit_key(cluster, n, h.demand));
        out.push(key.map_or(0.0, |k| (1.0 - k / RESOURCES as f64) as f32));
    }
    let choice = head.and_then(|h| best_fit(cluster, h.demand));
    for n in 0..cluster.len() {
        out.push(if choice == Some(n) { 1.0 } else { 0.0 });
    }
}

/// Allocating convenience form of [`observation_into`].
pub fn observation(cluster: &Cluster, head: Option<&Head>, scale: &Scale) -> Vec<f32> {
    let mut v = Vec::with_capacity(obs_dim(cluster.len()));
    observation_into(cluster, head, scale, &mut v);
    v
}
