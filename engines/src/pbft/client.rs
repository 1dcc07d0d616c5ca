//! The client side of replies: a result is accepted on `f + 1` matching replies from distinct
//! replicas with valid signatures — at least one of them is honest, so the result is the one
//! the honest replicas executed.

use std::collections::BTreeMap;

use crate::sim::crypto::PublicKeys;
use crate::sim::protocol::NodeId;

use super::reply_statement;

/// Collects signed replies for one client.
#[derive(Debug, Clone)]
pub struct ReplyCollector {
    client: NodeId,
    need: usize,
    keys: PublicKeys,
    /// request id → claimed seq → replicas that said so.
    votes: BTreeMap<u64, BTreeMap<u64, std::collections::BTreeSet<NodeId>>>,
    accepted: BTreeMap<u64, u64>,
}

impl ReplyCollector {
    pub fn new(client: NodeId, need: usize, keys: PublicKeys) -> Self {
        Self {
            client,
            need,
            keys,
            votes: BTreeMap::new(),
            accepted: BTreeMap::new(),
        }
    }

    /// Record a reply; returns the accepted seq once `need` distinct replicas agree on it.
    /// Replies with a bad signature (a forged sender) are ignored.
    pub fn add(&mut self, id: u64, seq: u64, replica: NodeId, sig: &[u8; 64]) -> Option<u64> {
        if let Some(s) = self.accepted.get(&id) {
            return Some(*s);
        }
        if !self
            .keys
            .verify(replica, &reply_statement(self.client, id, seq), sig)
        {
            return None;
        }
        let set = self.votes.entry(id).or_default().entry(seq).or_default();
        set.insert(replica);
        if set.len() >= self.need {
            self.accepted.insert(id, seq);
            self.votes.remove(&id);
            return Some(seq);
        }
        None
    }

    pub fn accepted(&self, id: u64) -> Option<u64> {
        self.accepted.get(&id).copied()
    }
}
