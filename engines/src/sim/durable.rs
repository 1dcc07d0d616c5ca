//! # Durable state: what survives a crash
//!
//! A node declares what it must not forget by writing to its [`Durable`] store through the
//! outbox ([`super::Outbox::persist`]). On crash-recover the simulator throws the node's memory
//! away and rebuilds it from this store alone (see [`super::Simulator::with_restart`]), so a
//! protocol that forgets to persist its vote *does* vote twice after a restart — the classic bug
//! the old pause-style recovery could never show.
//!
//! Two write modes: [`Write::Put`] is synced before the step's messages leave (write-ahead: the
//! model of an fsync before replying); [`Write::Buffered`] stays in a page-cache-like buffer until
//! a later [`Write::Sync`] and is lost when the crash says `lose_unsynced`.

use std::collections::BTreeMap;

/// One requested storage effect.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Write {
    /// Durable before the step's sends leave.
    Put {
        key: Vec<u8>,
        value: Vec<u8>,
    },
    /// Buffered; durable after the next `Sync` (or lost on a `lose_unsynced` crash).
    Buffered {
        key: Vec<u8>,
        value: Vec<u8>,
    },
    Delete {
        key: Vec<u8>,
    },
    Sync,
}

/// A node's stable storage.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Durable {
    synced: BTreeMap<Vec<u8>, Vec<u8>>,
    buffered: BTreeMap<Vec<u8>, Vec<u8>>,
}

impl Durable {
    /// What a restarted node reads (synced data only).
    pub fn get(&self, key: &[u8]) -> Option<&[u8]> {
        self.synced.get(key).map(Vec::as_slice)
    }

    /// Synced entries whose key starts with `prefix`, in key order.
    pub fn with_prefix<'a>(
        &'a self,
        prefix: &'a [u8],
    ) -> impl Iterator<Item = (&'a [u8], &'a [u8])> + 'a {
        self.synced
            .range(prefix.to_vec()..)
            .take_while(move |(k, _)| k.starts_with(prefix))
            .map(|(k, v)| (k.as_slice(), v.as_slice()))
    }

    pub fn len(&self) -> usize {
        self.synced.len()
    }

    pub fn is_empty(&self) -> bool {
        self.synced.is_empty()
    }

    pub fn apply(&mut self, w: Write) {
        match w {
            Write::Put { key, value } => {
                self.buffered.remove(&key);
                self.synced.insert(key, value);
            }
            Write::Buffered { key, value } => {
                self.buffered.insert(key, value);
            }
            Write::Delete { key } => {
                self.buffered.remove(&key);
                self.synced.remove(&key);
            }
            Write::Sync => {
                let b = std::mem::take(&mut self.buffered);
                self.synced.extend(b);
            }
        }
    }

    /// A crash: buffered writes reach the disk, or are lost.
    pub fn crash(&mut self, lose_unsynced: bool) {
        if lose_unsynced {
            self.buffered.clear();
        } else {
            self.apply(Write::Sync);
        }
    }
}
