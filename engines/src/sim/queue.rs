//! # The event queue: one FIFO per millisecond
//!
//! Simulated time is whole milliseconds and events are ordered by `(time, insertion order)`, so
//! a map from time to a FIFO of events pops exactly the order a binary heap over
//! `(time, insertion seq)` would — without the heap's `O(log n)` sift through a queue of
//! millions of in-flight messages (a push or pop here costs a lookup among the few distinct
//! times in flight, then an `O(1)` deque operation). Emptied FIFOs are kept for reuse, so a long
//! run does not allocate one per millisecond.

use std::collections::{BTreeMap, VecDeque};

/// Events ordered by time, ties in insertion order.
pub(super) struct EventQueue<E> {
    buckets: BTreeMap<u64, VecDeque<E>>,
    spare: Vec<VecDeque<E>>,
}

impl<E> Default for EventQueue<E> {
    fn default() -> Self {
        Self {
            buckets: BTreeMap::new(),
            spare: Vec::new(),
        }
    }
}

impl<E> EventQueue<E> {
    /// Add `ev` at time `at`, after every event already queued at `at`.
    pub(super) fn push(&mut self, at: u64, ev: E) {
        let spare = &mut self.spare;
        self.buckets
            .entry(at)
            .or_insert_with(|| spare.pop().unwrap_or_default())
            .push_back(ev);
    }

    /// The time of the next event.
    pub(super) fn peek_time(&self) -> Option<u64> {
        self.buckets.first_key_value().map(|(at, _)| *at)
    }

    /// Remove the next event: the earliest time, first queued.
    pub(super) fn pop(&mut self) -> Option<(u64, E)> {
        let mut first = self.buckets.first_entry()?;
        let at = *first.key();
        let ev = first.get_mut().pop_front();
        if first.get().is_empty() {
            let fifo = first.remove();
            if self.spare.len() < 64 {
                self.spare.push(fifo);
            }
        }
        ev.map(|e| (at, e))
    }
}

#[cfg(test)]
mod tests {
    use std::cmp::Reverse;
    use std::collections::BinaryHeap;

    use rand::{Rng, SeedableRng};

    use super::EventQueue;

    /// Same order as the binary heap over `(time, seq)` it replaced, with pushes interleaved with
    /// pops (including pushes at the current time and into the past).
    #[test]
    fn pops_in_time_then_insertion_order_like_a_heap() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(3);
        let mut q = EventQueue::default();
        let mut heap = BinaryHeap::new();
        let mut seq = 0u64;
        let mut now = 0u64;
        let mut popped = 0;
        for _ in 0..20_000 {
            if rng.gen_bool(0.55) {
                let at = match rng.gen_range(0..10) {
                    0 => now,
                    1 => now.saturating_sub(rng.gen_range(0..5)),
                    _ => now + rng.gen_range(0..40),
                };
                seq += 1;
                q.push(at, seq);
                heap.push(Reverse((at, seq)));
            } else {
                let a = q.pop();
                let b = heap.pop().map(|Reverse(x)| x);
                assert_eq!(a, b);
                if let Some((at, _)) = a {
                    now = at;
                    popped += 1;
                }
            }
            assert_eq!(q.peek_time(), heap.peek().map(|Reverse((at, _))| *at));
        }
        assert!(popped > 5_000, "the test exercised pops: {popped}");
        while let Some(b) = heap.pop() {
            assert_eq!(q.pop(), Some(b.0));
        }
        assert_eq!(q.pop(), None);
    }
}
