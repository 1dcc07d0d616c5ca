//! # Nodes and their capacity
//!
//! Three resources per node (CPU, memory, bandwidth) in integer units, so capacity arithmetic is
//! exact. [`Cluster::place`] is the only way to take capacity and it refuses anything that does not
//! fit: over-commit cannot be constructed. A cluster built from a caller's snapshot
//! ([`Cluster::from_used`], the companion's endpoint) carries that load as `external` use.

use serde::{Deserialize, Serialize};
use thiserror::Error;

/// Number of resources: CPU, memory, bandwidth.
pub const RESOURCES: usize = 3;
/// A demand or capacity vector.
pub type Demand = [u32; RESOURCES];

/// A queued workload.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Workload {
    pub id: u64,
    pub demand: Demand,
    /// Ticks it runs once placed.
    pub duration: u32,
    /// Latest tick at which it may start.
    pub deadline: u32,
}

/// What an agent observes of its queue head.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Head {
    pub demand: Demand,
    /// Ticks left before the deadline (0: must start now).
    pub slack: u32,
    /// Length of the agent's queue, head included.
    pub queue_len: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Running {
    node: usize,
    demand: Demand,
    end: u32,
}

/// Why a placement was refused.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum PlaceError {
    #[error("no node {0}")]
    NoSuchNode(usize),
    #[error("demand {demand:?} does not fit on node {node} (free {free:?})")]
    WouldOverCommit {
        node: usize,
        demand: Demand,
        free: Demand,
    },
}

/// Invalid snapshot given to [`Cluster::from_used`].
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum SnapshotError {
    #[error("{capacity} capacities but {used} used vectors")]
    Shape { capacity: usize, used: usize },
    #[error("node {node}: used {used:?} exceeds capacity {capacity:?}")]
    AlreadyOverCommitted {
        node: usize,
        used: Demand,
        capacity: Demand,
    },
}

/// The nodes, what runs on them and what is free.
#[derive(Debug, Clone, PartialEq)]
pub struct Cluster {
    capacity: Vec<Demand>,
    used: Vec<Demand>,
    external: Vec<Demand>,
    running: Vec<Running>,
}

impl Cluster {
    pub fn new(capacity: Vec<Demand>) -> Self {
        let n = capacity.len();
        Self {
            capacity,
            used: vec![[0; RESOURCES]; n],
            external: vec![[0; RESOURCES]; n],
            running: Vec::new(),
        }
    }

    /// A cluster from a snapshot of capacity and current use (use not tracked as workloads here).
    pub fn from_used(capacity: Vec<Demand>, used: Vec<Demand>) -> Result<Self, SnapshotError> {
        if capacity.len() != used.len() {
            return Err(SnapshotError::Shape {
                capacity: capacity.len(),
                used: used.len(),
            });
        }
        for (node, (c, u)) in capacity.iter().zip(&used).enumerate() {
            if c.iter().zip(u).any(|(c, u)| u > c) {
                return Err(SnapshotError::AlreadyOverCommitted {
                    node,
                    used: *u,
                    capacity: *c,
                });
            }
        }
        Ok(Self {
            capacity,
            external: used.clone(),
            used,
            running: Vec::new(),
        })
    }

    pub fn len(&self) -> usize {
        self.capacity.len()
    }
    pub fn is_empty(&self) -> bool {
        self.capacity.is_empty()
    }
    pub fn capacity(&self, node: usize) -> Option<Demand> {
        self.capacity.get(node).copied()
    }
    pub fn used(&self, node: usize) -> Option<Demand> {
        self.used.get(node).copied()
    }
    pub fn free(&self, node: usize) -> Option<Demand> {
        let (c, u) = (self.capacity.get(node)?, self.used.get(node)?);
        Some([c[0] - u[0], c[1] - u[1], c[2] - u[2]])
    }
    pub fn running_count(&self) -> usize {
        self.running.len()
    }

    /// Whether `demand` fits in the free capacity of `node` (false for a node that does not exist).
    pub fn fits(&self, node: usize, demand: Demand) -> bool {
        self.free(node)
            .is_some_and(|f| f.iter().zip(&demand).all(|(f, d)| d <= f))
    }

    /// Take `demand` on `node` until tick `end`; refused if it does not fit.
    pub fn place(&mut self, node: usize, demand: Demand, end: u32) -> Result<(), PlaceError> {
        let free = self.free(node).ok_or(PlaceError::NoSuchNode(node))?;
        if !self.fits(node, demand) {
            return Err(PlaceError::WouldOverCommit { node, demand, free });
        }
        if let Some(u) = self.used.get_mut(node) {
            for (u, d) in u.iter_mut().zip(&demand) {
                *u += d;
            }
        }
        self.running.push(Running { node, demand, end });
        Ok(())
    }

    /// Release every workload whose end tick is `<= tick`; returns how many ended.
    pub fn release_until(&mut self, tick: u32) -> u64 {
        let mut ended = 0;
        let used = &mut self.used;
        self.running.retain(|r| {
            if r.end > tick {
                return true;
            }
            if let Some(u) = used.get_mut(r.node) {
                for (u, d) in u.iter_mut().zip(&r.demand) {
                    *u -= d;
                }
            }
            ended += 1;
            false
        });
        ended
    }

    /// Each node's utilisation: the mean over resources of used / capacity.
    pub fn node_utilisation(&self) -> Vec<f64> {
        self.capacity
            .iter()
            .zip(&self.used)
            .map(|(c, u)| {
                let s: f64 = c
                    .iter()
                    .zip(u)
                    .map(|(c, u)| {
                        if *c == 0 {
                            0.0
                        } else {
                            f64::from(*u) / f64::from(*c)
                        }
                    })
                    .sum();
                s / RESOURCES as f64
            })
            .collect()
    }

    /// Used = external + Σ running demands, used ≤ capacity, on every node and resource.
    pub fn check(&self) -> Result<(), String> {
        let mut derived = self.external.clone();
        for r in &self.running {
            let d = derived
                .get_mut(r.node)
                .ok_or_else(|| format!("workload on missing node {}", r.node))?;
            for (x, v) in d.iter_mut().zip(&r.demand) {
                *x += v;
            }
        }
        if derived != self.used {
            return Err(format!(
                "used {:?} != derived {derived:?}: capacity not conserved",
                self.used
            ));
        }
        for (node, (c, u)) in self.capacity.iter().zip(&self.used).enumerate() {
            if c.iter().zip(u).any(|(c, u)| u > c) {
                return Err(format!("node {node} over-committed: {u:?} > {c:?}"));
            }
        }
        Ok(())
    }
}
