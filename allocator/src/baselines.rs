//! # Baseline placements
//!
//! The heuristics the learned policy is measured against, and the safe fallback it uses:
//!
//! * `random` — a uniform choice among the nodes the demand fits on (seeded);
//! * `first_fit` — the lowest-numbered node it fits on;
//! * `best_fit` — the node left with the least normalised free capacity after placement (Σ over
//!   resources of free/capacity), ties to the lower number: packs tightly, keeps big holes open;
//! * `least_loaded` — the node with the lowest utilisation now, among those it fits on.
//!
//! Every baseline only ever returns a node the demand fits on, or `None` (defer).

use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::cluster::{Cluster, Demand, RESOURCES};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Baseline {
    Random,
    FirstFit,
    BestFit,
    LeastLoaded,
}

impl Baseline {
    pub const ALL: [Baseline; 4] = [
        Baseline::Random,
        Baseline::FirstFit,
        Baseline::BestFit,
        Baseline::LeastLoaded,
    ];
    pub fn name(self) -> &'static str {
        match self {
            Self::Random => "random",
            Self::FirstFit => "first_fit",
            Self::BestFit => "best_fit",
            Self::LeastLoaded => "least_loaded",
        }
    }

    /// The node to place `demand` on, or `None` when it fits nowhere.
    pub fn choose(self, cluster: &Cluster, demand: Demand, rng: &mut ChaCha8Rng) -> Option<usize> {
        match self {
            Self::Random => crate::env::random_fit(cluster, demand, rng),
            Self::FirstFit => (0..cluster.len()).find(|&n| cluster.fits(n, demand)),
            Self::BestFit => best_fit(cluster, demand),
            Self::LeastLoaded => {
                let util = cluster.node_utilisation();
                argmin(
                    (0..cluster.len()).filter(|&n| cluster.fits(n, demand)),
                    |n| util.get(n).copied().unwrap_or(f64::INFINITY),
                )
            }
        }
    }
}

/// Best-fit: the fitting node with the least normalised free capacity left after placement.
pub fn best_fit(cluster: &Cluster, demand: Demand) -> Option<usize> {
    argmin(
        (0..cluster.len()).filter(|&n| cluster.fits(n, demand)),
        |n| best_fit_key(cluster, n, demand).unwrap_or(f64::INFINITY),
    )
}

/// Best-fit's key: Σ over resources of the free share of `node` left after placing `demand`
/// (in `0..=RESOURCES`); `None` when the demand does not fit there.
pub fn best_fit_key(cluster: &Cluster, node: usize, demand: Demand) -> Option<f64> {
    if !cluster.fits(node, demand) {
        return None;
    }
    let (f, c) = (cluster.free(node)?, cluster.capacity(node)?);
    Some(
        (0..RESOURCES)
            .map(|r| {
                if c[r] == 0 {
                    0.0
                } else {
                    f64::from(f[r] - demand[r]) / f64::from(c[r])
                }
            })
            .sum(),
    )
}

/// The first item with the smallest key (stable: ties go to the earlier item).
fn argmin(items: impl Iterator<Item = usize>, key: impl Fn(usize) -> f64) -> Option<usize> {
    let mut best: Option<(usize, f64)> = None;
    for i in items {
        let k = key(i);
        if best.is_none_or(|(_, b)| k < b) {
            best = Some((i, k));
        }
    }
    best.map(|(i, _)| i)
}

/// Two simple rules that do what best-fit cannot, measured next to it in the evaluation to show
/// how much room the environment leaves (they are diagnostics, not placements the companion uses).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Probe {
    /// Best-fit, but a memory-heavy head (≥ 12 units) that can still wait two ticks is deferred
    /// while less than 10 % of the cluster's memory is free, keeping room for smaller work.
    PressureDefer,
    /// Tetris-style alignment (Grandl et al. 2014): the fitting node maximising
    /// Σ demand/capacity × free/capacity over the three resources.
    Alignment,
}

impl Probe {
    pub const ALL: [Probe; 2] = [Probe::PressureDefer, Probe::Alignment];
    pub fn name(self) -> &'static str {
        match self {
            Self::PressureDefer => "best_fit+pressure_defer",
            Self::Alignment => "alignment",
        }
    }

    /// The node for the head (demand, slack), or `None` to defer.
    pub fn choose(self, cluster: &Cluster, demand: Demand, slack: u32) -> Option<usize> {
        match self {
            Self::PressureDefer => {
                let (free, cap) = (0..cluster.len()).fold((0u64, 0u64), |(f, c), n| {
                    let fr = cluster.free(n).map_or(0, |v| u64::from(v[1]));
                    let ca = cluster.capacity(n).map_or(0, |v| u64::from(v[1]));
                    (f + fr, c + ca)
                });
                if slack >= 2 && demand[1] >= 12 && free * 10 < cap {
                    None
                } else {
                    best_fit(cluster, demand)
                }
            }
            Self::Alignment => argmin(
                (0..cluster.len()).filter(|&n| cluster.fits(n, demand)),
                |n| match (cluster.free(n), cluster.capacity(n)) {
                    (Some(f), Some(c)) => -(0..RESOURCES)
                        .filter(|&r| c[r] > 0)
                        .map(|r| {
                            let c = f64::from(c[r]);
                            f64::from(demand[r]) / c * f64::from(f[r]) / c
                        })
                        .sum::<f64>(),
                    _ => f64::INFINITY,
                },
            ),
        }
    }
}
