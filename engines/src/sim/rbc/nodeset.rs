//! A set of node ids as a bitmap: the relay bookkeeping touches it on every `Final` received and
//! scans it on every retransmission round, where a `BTreeSet` cost a tree walk per id.

use super::super::protocol::NodeId;

#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(super) struct NodeSet {
    words: Vec<u64>,
    len: usize,
}

impl NodeSet {
    /// Add `id`; whether it was new.
    pub(super) fn insert(&mut self, id: NodeId) -> bool {
        let (w, bit) = (id as usize / 64, 1u64 << (id % 64));
        if self.words.len() <= w {
            self.words.resize(w + 1, 0);
        }
        let new = self.words[w] & bit == 0;
        self.words[w] |= bit;
        self.len += usize::from(new);
        new
    }

    pub(super) fn remove(&mut self, id: NodeId) {
        let (w, bit) = (id as usize / 64, 1u64 << (id % 64));
        if let Some(word) = self.words.get_mut(w) {
            if *word & bit != 0 {
                *word &= !bit;
                self.len -= 1;
            }
        }
    }

    pub(super) fn contains(&self, id: NodeId) -> bool {
        self.words
            .get(id as usize / 64)
            .is_some_and(|w| w & (1u64 << (id % 64)) != 0)
    }

    pub(super) fn len(&self) -> usize {
        self.len
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::NodeSet;

    #[test]
    fn behaves_like_a_btreeset() {
        let mut a = NodeSet::default();
        let mut b = BTreeSet::new();
        for k in 0..2_000u32 {
            let id = (k * 37 + k / 7) % 300;
            if k % 3 == 2 {
                a.remove(id);
                b.remove(&id);
            } else {
                assert_eq!(a.insert(id), b.insert(id));
            }
            assert_eq!(a.len(), b.len());
        }
        for id in 0..320 {
            assert_eq!(a.contains(id), b.contains(&id), "{id}");
        }
        assert!(a.len() > 10 && a.len() < 300, "{}", a.len());
    }
}
