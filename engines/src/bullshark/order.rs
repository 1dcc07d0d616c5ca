//! Bullshark's commit rule and ordering: a pure function of the local DAG and of what this
//! orderer already ordered (no messages, no clock), so it is tested on hand-built DAGs.
//!
//! [`Orderer::try_order`] is called after each insertion with the inserted certificate's round
//! `r`. If `r − 1` is an even round whose leader `L` is in the DAG and not yet committed, and at
//! least `support` certificates of round `r` have `L` as a strong parent, `L` commits. Then,
//! walking down the even rounds above the last committed leader, each leader with a strong path
//! from the most recently chosen one is chosen too; the chosen leaders are ordered oldest first.
//! Each leader's causal history (strong and weak edges), without what is already ordered and
//! without rounds below the horizon, is sorted by `(round, author)`.
//!
//! Why two validators agree: `f + 1` supporters of `L` and the `2f + 1` strong parents of any
//! later leader's round-`r` ancestors intersect, so every later committed leader has a path to
//! `L` and orders it first. The horizon (`last committed round − gc_depth`) is a function of the
//! committed sequence, so both skip the same old vertices.

use std::collections::BTreeSet;
use std::sync::Arc;

use crate::sim::protocol::NodeId;

use super::dag::Dag;
use super::{leader_of, BullsharkConfig, Certificate, PlantedBug};

/// A committed leader and the certificates it orders, in order (the leader last).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommittedLeader {
    pub leader: Arc<Certificate>,
    pub certs: Vec<Arc<Certificate>>,
}

#[derive(Debug, Clone)]
pub struct Orderer {
    n: u32,
    support: usize,
    gc_depth: u64,
    linked: bool,
    last_committed: Option<u64>,
    /// `(round, author)` of every ordered certificate at or above the horizon.
    ordered: BTreeSet<(u64, NodeId)>,
    /// Certificates ordered so far (all time).
    pub ordered_count: u64,
    /// `(round, author)` of the committed leaders, in order (all time).
    pub leaders: Vec<(u64, NodeId)>,
}

impl Orderer {
    pub fn new(cfg: &BullsharkConfig) -> Self {
        Self {
            n: cfg.n,
            support: cfg.support(),
            gc_depth: cfg.gc_depth,
            linked: cfg.bug != Some(PlantedBug::NoLinkedLeaders),
            last_committed: None,
            ordered: BTreeSet::new(),
            ordered_count: 0,
            leaders: Vec::new(),
        }
    }

    pub fn last_committed_round(&self) -> Option<u64> {
        self.last_committed
    }

    /// Vertices below this round are never ordered (and may be collected).
    pub fn horizon(&self) -> u64 {
        self.last_committed
            .map_or(0, |r| r.saturating_sub(self.gc_depth))
    }

    /// Try the commit rule for the leader of `round − 1`.
    pub fn try_order(&mut self, dag: &Dag, round: u64) -> Vec<CommittedLeader> {
        let Some(lr) = round.checked_sub(1) else {
            return Vec::new();
        };
        if self.last_committed.is_some_and(|c| lr <= c) {
            return Vec::new();
        }
        let Some(leader) = leader_of(lr, self.n).and_then(|a| dag.at(lr, a)) else {
            return Vec::new();
        };
        let votes = dag
            .round(round)
            .filter(|c| c.header.parents.contains(&leader.digest))
            .count();
        if votes < self.support.max(1) {
            return Vec::new();
        }
        let mut chain = vec![Arc::clone(leader)];
        let floor = self.last_committed.map_or(0, |c| c + 2).max(self.horizon());
        let mut pr = lr;
        while self.linked && pr >= floor + 2 {
            pr -= 2;
            let prev = leader_of(pr, self.n).and_then(|a| dag.at(pr, a));
            if let (Some(prev), Some(last)) = (prev, chain.last()) {
                if dag.strong_path(last, &prev.digest) {
                    chain.push(Arc::clone(prev));
                }
            }
        }
        let mut out = Vec::with_capacity(chain.len());
        for l in chain.into_iter().rev() {
            let certs = self.flatten(dag, &l);
            self.last_committed = Some(l.round());
            self.leaders.push((l.round(), l.author()));
            self.prune();
            out.push(CommittedLeader { leader: l, certs });
        }
        out
    }

    /// `leader`'s causal history minus what is ordered or below the horizon, by (round, author).
    fn flatten(&mut self, dag: &Dag, leader: &Arc<Certificate>) -> Vec<Arc<Certificate>> {
        let horizon = self.horizon();
        let mut stack = vec![Arc::clone(leader)];
        let mut seen: BTreeSet<(u64, NodeId)> = BTreeSet::new();
        let mut found = Vec::new();
        while let Some(c) = stack.pop() {
            let key = (c.round(), c.author());
            if c.round() < horizon || self.ordered.contains(&key) || !seen.insert(key) {
                continue;
            }
            for p in c.header.all_parents() {
                if let Some(pc) = dag.get(p) {
                    stack.push(Arc::clone(pc));
                }
            }
            found.push(c);
        }
        found.sort_by_key(|c| (c.round(), c.author()));
        self.ordered.extend(seen);
        self.ordered_count += found.len() as u64;
        found
    }

    fn prune(&mut self) {
        let h = self.horizon();
        self.ordered = self.ordered.split_off(&(h, 0));
    }
}
