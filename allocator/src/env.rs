//! # The placement environment: nodes, queued workloads, deadlines
//!
//! Pure and seeded: the only randomness is the arrival stream, drawn from a ChaCha generator seeded
//! by `(seed, pattern)`, so the same seed gives the same workloads whatever policy places them. That
//! is what lets the evaluation compare policies on identical streams (paired differences).
//!
//! Time runs in ticks. Each tick has `rounds_per_tick` decision rounds; in a round every agent (a
//! scheduler shard with its own FIFO queue) looks at the head of its queue and places it on a node
//! or defers it. Agents act in a fixed order and each observes the cluster left by the ones before
//! it, so a well-formed action never conflicts. At the end of a tick: utilisation is recorded,
//! finished workloads release their capacity, new workloads arrive, and queued workloads whose
//! deadline (latest start tick) has passed are dropped and counted as SLA misses.
//!
//! Over-commit is impossible by construction: [`Cluster::place`] refuses a demand that does not fit
//! and is the only way capacity is taken. [`Env::check_invariants`] re-derives the used capacity from
//! the running workloads and checks conservation and the accounting of every workload.

use std::collections::VecDeque;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::arrivals::{Arrivals, Pattern};
use crate::cluster::{Cluster, Demand, Head, Workload};

/// What an agent does with the head of its queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind", content = "node")]
pub enum Action {
    Place(usize),
    Defer,
}

impl Action {
    /// Index in the policy's action vector: nodes `0..k`, then defer at `k`.
    pub fn index(self, nodes: usize) -> usize {
        match self {
            Self::Place(n) => n,
            Self::Defer => nodes,
        }
    }
    pub fn from_index(i: usize, nodes: usize) -> Option<Self> {
        match i.cmp(&nodes) {
            std::cmp::Ordering::Less => Some(Self::Place(i)),
            std::cmp::Ordering::Equal => Some(Self::Defer),
            std::cmp::Ordering::Greater => None,
        }
    }
}

/// Shape of one environment: the cluster, the agents and the load.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EnvConfig {
    /// Capacity of each node: CPU, memory, bandwidth (integer units).
    pub nodes: Vec<Demand>,
    /// Number of agents (scheduler shards, one queue and one actor each).
    pub agents: usize,
    pub ticks: u32,
    pub rounds_per_tick: u32,
    /// Mean arrivals per tick (over the whole cluster) of the steady pattern.
    pub base_rate: f64,
    /// Longest queue per shard; an arrival to a full queue is dropped and counted as an SLA miss.
    pub max_queue: usize,
    /// Largest deadline slack (ticks a workload may wait before it must start).
    pub max_slack: u32,
}

impl Default for EnvConfig {
    /// Eight nodes of two sizes, ten shards, about 85 % CPU load on average.
    fn default() -> Self {
        let big = [32, 64, 20];
        let small = [16, 32, 10];
        Self {
            nodes: vec![big, big, big, big, small, small, small, small],
            agents: 10,
            ticks: 150,
            rounds_per_tick: 2,
            base_rate: 4.0,
            max_queue: 8,
            max_slack: 6,
        }
    }
}

impl EnvConfig {
    /// Length of one agent's observation vector (see [`crate::observe::observation`]).
    pub fn obs_dim(&self) -> usize {
        crate::observe::obs_dim(self.nodes.len())
    }
    /// Number of discrete actions (one per node, plus defer).
    pub fn actions(&self) -> usize {
        self.nodes.len() + 1
    }
}

/// Counters of one episode.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct EpisodeStats {
    pub arrived: u64,
    pub placed: u64,
    pub completed: u64,
    /// Dropped from a queue past the deadline, or on arrival to a full queue.
    pub sla_missed: u64,
    /// Actions refused by the cluster because they did not fit (treated as a defer).
    pub refused: u64,
    /// Sum over ticks of each node's mean utilisation across the three resources.
    pub node_util_sum: Vec<f64>,
    pub ticks: u64,
}

impl EpisodeStats {
    pub fn success_rate(&self) -> f64 {
        ratio(self.placed, self.arrived)
    }
    pub fn sla_miss_rate(&self) -> f64 {
        ratio(self.sla_missed, self.arrived)
    }
    /// Mean over ticks and nodes of the node's utilisation (mean of the three resources).
    pub fn utilisation(&self) -> f64 {
        let per_node = self.node_utilisation();
        if per_node.is_empty() {
            return 0.0;
        }
        per_node.iter().sum::<f64>() / per_node.len() as f64
    }
    pub fn node_utilisation(&self) -> Vec<f64> {
        let t = self.ticks.max(1) as f64;
        self.node_util_sum.iter().map(|s| s / t).collect()
    }
    /// Jain's fairness index of the nodes' mean utilisations: 1 when load is spread evenly,
    /// `1/n` when one node carries everything.
    pub fn jain_fairness(&self) -> f64 {
        jain(&self.node_utilisation())
    }
}

fn ratio(a: u64, b: u64) -> f64 {
    if b == 0 {
        0.0
    } else {
        a as f64 / b as f64
    }
}

/// Jain's index `(Σx)² / (n Σx²)`; 1 for an all-zero vector (nothing to be unfair about).
pub fn jain(x: &[f64]) -> f64 {
    let s: f64 = x.iter().sum();
    let s2: f64 = x.iter().map(|v| v * v).sum();
    if x.is_empty() || s2 <= 0.0 {
        1.0
    } else {
        s * s / (x.len() as f64 * s2)
    }
}

/// One seeded episode.
#[derive(Debug, Clone)]
pub struct Env {
    cfg: EnvConfig,
    cluster: Cluster,
    queues: Vec<VecDeque<Workload>>,
    arrivals: Arrivals,
    tick: u32,
    round: u32,
    next_id: u64,
    stats: EpisodeStats,
    /// Reward accumulated in the current round (shared by all agents).
    round_reward: f64,
}

/// Reward weights (cooperative: every agent receives the same team reward, divided by the agents).
pub const REWARD_PLACED: f64 = 1.0;
pub const REWARD_REFUSED: f64 = -0.5;
pub const REWARD_SLA_MISS: f64 = -2.0;

impl Env {
    pub fn new(cfg: EnvConfig, pattern: Pattern, seed: u64) -> Self {
        let cluster = Cluster::new(cfg.nodes.clone());
        let arrivals = Arrivals::new(pattern, cfg.base_rate, cfg.ticks, cfg.max_slack, seed);
        let stats = EpisodeStats {
            node_util_sum: vec![0.0; cfg.nodes.len()],
            ..EpisodeStats::default()
        };
        let mut env = Self {
            queues: vec![VecDeque::new(); cfg.agents],
            cfg,
            cluster,
            arrivals,
            tick: 0,
            round: 0,
            next_id: 0,
            stats,
            round_reward: 0.0,
        };
        env.arrive();
        env
    }

    pub fn config(&self) -> &EnvConfig {
        &self.cfg
    }
    pub fn cluster(&self) -> &Cluster {
        &self.cluster
    }
    pub fn stats(&self) -> &EpisodeStats {
        &self.stats
    }
    pub fn tick(&self) -> u32 {
        self.tick
    }
    pub fn done(&self) -> bool {
        self.tick >= self.cfg.ticks
    }
    pub fn queue_len(&self, agent: usize) -> usize {
        self.queues.get(agent).map_or(0, VecDeque::len)
    }

    /// What agent `agent` sees of its queue head: demand, slack before its deadline, queue length.
    pub fn head(&self, agent: usize) -> Option<Head> {
        let q = self.queues.get(agent)?;
        q.front().map(|w| Head {
            demand: w.demand,
            slack: w.deadline.saturating_sub(self.tick),
            queue_len: u32::try_from(q.len()).unwrap_or(u32::MAX),
        })
    }

    /// Apply one agent's action to the head of its queue. Returns whether something was placed.
    /// An action that does not fit is refused (nothing changes, counted, negative reward).
    pub fn act(&mut self, agent: usize, action: Action) -> bool {
        let Some(q) = self.queues.get_mut(agent) else {
            return false;
        };
        let Some(w) = q.front().copied() else {
            return false;
        };
        match action {
            Action::Defer => false,
            Action::Place(node) => {
                if self
                    .cluster
                    .place(node, w.demand, self.tick + w.duration)
                    .is_ok()
                {
                    q.pop_front();
                    self.stats.placed += 1;
                    self.round_reward += REWARD_PLACED;
                    true
                } else {
                    self.stats.refused += 1;
                    self.round_reward += REWARD_REFUSED;
                    false
                }
            }
        }
    }

    /// Close the round: after the last round of a tick, advance time. Returns the team reward of the
    /// round (per agent) and whether the episode is over.
    pub fn end_round(&mut self) -> (f64, bool) {
        self.round += 1;
        if self.round >= self.cfg.rounds_per_tick {
            self.round = 0;
            self.advance();
        }
        let r = self.round_reward / self.cfg.agents.max(1) as f64;
        self.round_reward = 0.0;
        (r, self.done())
    }

    fn advance(&mut self) {
        for (i, u) in self.cluster.node_utilisation().into_iter().enumerate() {
            if let Some(s) = self.stats.node_util_sum.get_mut(i) {
                *s += u;
            }
        }
        self.stats.ticks += 1;
        self.tick += 1;
        self.stats.completed += self.cluster.release_until(self.tick);
        if !self.done() {
            self.arrive();
        }
        let tick = self.tick;
        let mut missed = 0u64;
        for q in &mut self.queues {
            let before = q.len();
            q.retain(|w| w.deadline >= tick);
            missed += (before - q.len()) as u64;
        }
        self.stats.sla_missed += missed;
        self.round_reward += REWARD_SLA_MISS * missed as f64;
    }

    fn arrive(&mut self) {
        let agents = self.cfg.agents.max(1);
        for spec in self.arrivals.draw(self.tick) {
            self.stats.arrived += 1;
            let w = Workload {
                id: self.next_id,
                demand: spec.demand,
                duration: spec.duration,
                deadline: self.tick + spec.slack,
            };
            self.next_id += 1;
            let shard = spec.shard % agents;
            match self.queues.get_mut(shard) {
                Some(q) if q.len() < self.cfg.max_queue => q.push_back(w),
                _ => {
                    self.stats.sla_missed += 1;
                    self.round_reward += REWARD_SLA_MISS;
                }
            }
        }
    }

    /// Every workload is accounted for exactly once, used capacity equals the sum of running
    /// demands, nothing exceeds capacity, and free + used = capacity on every node and resource.
    pub fn check_invariants(&self) -> Result<(), String> {
        self.cluster.check()?;
        let queued: u64 = self.queues.iter().map(|q| q.len() as u64).sum();
        let running = self.cluster.running_count() as u64;
        let s = &self.stats;
        if s.placed != s.completed + running {
            return Err(format!(
                "placed {} != completed {} + running {running}",
                s.placed, s.completed
            ));
        }
        if s.arrived != s.placed + s.sla_missed + queued {
            return Err(format!(
                "arrived {} != placed {} + missed {} + queued {queued}",
                s.arrived, s.placed, s.sla_missed
            ));
        }
        for q in &self.queues {
            if let Some(w) = q.iter().find(|w| w.deadline < self.tick) {
                return Err(format!("workload {} queued past its deadline", w.id));
            }
        }
        Ok(())
    }
}

/// A seeded uniform choice among the nodes a demand fits on (the random baseline's rule).
pub fn random_fit(cluster: &Cluster, demand: Demand, rng: &mut ChaCha8Rng) -> Option<usize> {
    let fits: Vec<usize> = (0..cluster.len())
        .filter(|&n| cluster.fits(n, demand))
        .collect();
    if fits.is_empty() {
        None
    } else {
        fits.get(rng.gen_range(0..fits.len())).copied()
    }
}

/// A ChaCha generator for a named stream of a seed (so streams never share state by accident).
pub fn stream(seed: u64, stream: u64) -> ChaCha8Rng {
    let mut r = ChaCha8Rng::seed_from_u64(seed);
    r.set_stream(stream);
    r
}
