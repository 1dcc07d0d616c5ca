//! The local DAG: certified vertices by round and author, causally closed.
//!
//! A certificate is inserted only when each of its (strong and weak) parents is present or lies
//! below the garbage-collection horizon, so every vertex's causal history above the horizon is
//! in the DAG. One vertex per `(round, author)`: two certificates for one slot would need an
//! honest validator to vote twice.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use crate::sim::crypto::Digest32;
use crate::sim::protocol::NodeId;

use super::Certificate;

/// Why a certificate was not inserted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InsertError {
    /// Parents not (yet) in the DAG.
    Missing(Vec<Digest32>),
    /// Below the garbage-collection horizon.
    Collected,
    /// The slot holds another certificate.
    SlotTaken,
    /// A parent is in the wrong round.
    BadParent,
}

#[derive(Debug, Clone, Default)]
pub struct Dag {
    rounds: BTreeMap<u64, BTreeMap<NodeId, Arc<Certificate>>>,
    index: BTreeMap<Digest32, (u64, NodeId)>,
    /// Certificates referenced (strongly or weakly) by another certificate of the DAG.
    referenced: BTreeSet<Digest32>,
    gc_round: u64,
}

impl Dag {
    pub fn new() -> Self {
        Self::default()
    }

    /// Rounds below this are gone.
    pub fn gc_round(&self) -> u64 {
        self.gc_round
    }

    pub fn len(&self) -> usize {
        self.index.len()
    }

    pub fn is_empty(&self) -> bool {
        self.index.is_empty()
    }

    pub fn contains(&self, d: &Digest32) -> bool {
        self.index.contains_key(d)
    }

    pub fn get(&self, d: &Digest32) -> Option<&Arc<Certificate>> {
        let (r, a) = self.index.get(d)?;
        self.rounds.get(r)?.get(a)
    }

    pub fn at(&self, round: u64, author: NodeId) -> Option<&Arc<Certificate>> {
        self.rounds.get(&round)?.get(&author)
    }

    /// The certificates of `round`, by author.
    pub fn round(&self, round: u64) -> impl Iterator<Item = &Arc<Certificate>> {
        self.rounds.get(&round).into_iter().flat_map(|m| m.values())
    }

    pub fn round_len(&self, round: u64) -> usize {
        self.rounds.get(&round).map_or(0, BTreeMap::len)
    }

    /// The highest round holding at least `quorum` certificates.
    pub fn highest_quorum_round(&self, quorum: usize) -> Option<u64> {
        self.rounds
            .iter()
            .rev()
            .find(|(_, m)| m.len() >= quorum)
            .map(|(r, _)| *r)
    }

    pub fn highest_round(&self) -> Option<u64> {
        self.rounds.keys().next_back().copied()
    }

    /// Parents of `c` that are neither present nor below the horizon.
    pub fn missing(&self, c: &Certificate) -> Vec<Digest32> {
        let strong_live = c.round() > self.gc_round;
        let strong = c.header.parents.iter().filter(|_| strong_live);
        let weak = c.header.weak.iter().filter(|(r, _)| *r >= self.gc_round);
        strong
            .chain(weak.map(|(_, d)| d))
            .filter(|p| !self.index.contains_key(*p))
            .copied()
            .collect()
    }

    pub fn insert(&mut self, c: Arc<Certificate>) -> Result<(), InsertError> {
        let (r, a) = (c.round(), c.author());
        if r < self.gc_round {
            return Err(InsertError::Collected);
        }
        if self.at(r, a).is_some() {
            return Err(InsertError::SlotTaken);
        }
        let missing = self.missing(&c);
        if !missing.is_empty() {
            return Err(InsertError::Missing(missing));
        }
        for p in &c.header.parents {
            if self.index.get(p).is_some_and(|(pr, _)| *pr + 1 != r) {
                return Err(InsertError::BadParent);
            }
        }
        for (wr, p) in &c.header.weak {
            let wrong = self.index.get(p).is_some_and(|(pr, _)| pr != wr);
            if *wr + 1 >= r || wrong {
                return Err(InsertError::BadParent);
            }
        }
        self.referenced.extend(c.header.all_parents().copied());
        self.index.insert(c.digest, (r, a));
        self.rounds.entry(r).or_default().insert(a, c);
        Ok(())
    }

    /// Whether `to` is reachable from `from` by strong parent edges (`from` included).
    pub fn strong_path(&self, from: &Certificate, to: &Digest32) -> bool {
        let Some((to_round, _)) = self.index.get(to) else {
            return false;
        };
        let mut frontier: BTreeSet<Digest32> = BTreeSet::from([from.digest]);
        let mut round = from.round();
        while round > *to_round {
            let mut next = BTreeSet::new();
            for d in &frontier {
                if let Some(c) = self.get(d) {
                    next.extend(c.header.parents.iter().copied());
                }
            }
            frontier = next;
            round -= 1;
            if frontier.is_empty() {
                return false;
            }
        }
        frontier.contains(to)
    }

    /// Certificates of rounds `[gc_round, below)` no other certificate references yet.
    pub fn unreferenced_below(&self, below: u64) -> Vec<(u64, Digest32)> {
        if below <= self.gc_round {
            return Vec::new();
        }
        self.rounds
            .range(self.gc_round..below)
            .flat_map(|(_, m)| m.values())
            .filter(|c| !self.referenced.contains(&c.digest))
            .map(|c| (c.round(), c.digest))
            .collect()
    }

    /// Drop every round below `round`.
    pub fn gc(&mut self, round: u64) {
        if round <= self.gc_round {
            return;
        }
        let keep = self.rounds.split_off(&round);
        for m in std::mem::replace(&mut self.rounds, keep).into_values() {
            for c in m.values() {
                self.index.remove(&c.digest);
                self.referenced.remove(&c.digest);
            }
        }
        self.gc_round = round;
    }
}
