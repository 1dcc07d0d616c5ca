//! # A generic adversary for any protocol
//!
//! Byzantine behaviour without writing a Byzantine implementation per protocol:
//! * [`Adversary`] wraps an honest node and rewrites what it sends — [`Fault::Silent`],
//!   [`Fault::Withhold`] from a subset (e.g. DAG vertices kept from some validators),
//!   [`Fault::Spoof`] the network sender, [`Fault::Delay`] everything, [`Fault::Replay`] what it
//!   received, and [`Fault::Mutate`], the hook for per-protocol mutators (garbage, bad VRF proofs,
//!   view-change spam).
//! * [`Twins`] runs two honest instances under one key (after the Twins method, Bano et al. 2020):
//!   each talks to its own half of the network, so equivocation and double-voting come for free
//!   from unmodified protocol code.
//! * [`Scripted`] sends hand-built messages at set times (exact attack schedules).
//! * [`pick_byzantine`] chooses the Byzantine ids from the seed, so leaders and low ids are hit too.
//!
//! All of these report `is_honest() == false`; the invariants ignore their commits and alarms.
//! Wrapper timers use ids with the top bit set ([`ADVERSARY_TIMER`]).

use std::collections::BTreeSet;
use std::sync::Arc;

use rand::seq::index::sample;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use super::protocol::{NodeId, Outbox, Protocol, Send, TimerId};

mod twins;
pub use twins::{InputMap, Twins};

/// Timer ids reserved for wrappers.
pub const ADVERSARY_TIMER: TimerId = 1 << 63;
const DELAY_TIMER: TimerId = ADVERSARY_TIMER | 1;
const REPLAY_TIMER: TimerId = ADVERSARY_TIMER | 2;

/// `count` distinct Byzantine ids out of `0..n`, chosen by `seed` (sorted).
pub fn pick_byzantine(seed: u64, n: u32, count: u32) -> Vec<NodeId> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0xb42a_0000_0000_0001);
    let mut ids: Vec<NodeId> = sample(&mut rng, n as usize, count.min(n) as usize)
        .into_iter()
        .map(|i| i as NodeId)
        .collect();
    ids.sort_unstable();
    ids
}

/// A send rewriter: maps one outgoing send to any number of sends.
pub type Mutator<M> = Box<dyn FnMut(u64, Send<M>, &mut ChaCha8Rng) -> Vec<Send<M>>>;

/// One thing the wrapped node does wrong.
pub enum Fault<M> {
    /// Sends nothing.
    Silent,
    /// Sends nothing to these nodes.
    Withhold(BTreeSet<NodeId>),
    /// Every send claims to come from this node.
    Spoof(NodeId),
    /// Every send leaves `ms` later (held by the wrapper, released in order).
    Delay(u64),
    /// Re-send every distinct message received (up to `cap`) to everyone, every `every_ms`, for
    /// `rounds` rounds after the last new one.
    Replay {
        every_ms: u64,
        rounds: u32,
        cap: usize,
    },
    Mutate(Mutator<M>),
}

/// An honest node made Byzantine by [`Fault`]s, applied in order to each send.
pub struct Adversary<P: Protocol> {
    inner: P,
    faults: Vec<Fault<P::Msg>>,
    held: Vec<(u64, Send<P::Msg>)>,
    received: Vec<Arc<P::Msg>>,
    replay_rounds: u32,
    /// The inner node's sends of one step (kept empty between steps, for its capacity).
    buf: Vec<Send<P::Msg>>,
    /// Sends the faults suppressed (tests check the inner node did try).
    pub suppressed: u64,
}

impl<P: Protocol> Adversary<P> {
    pub fn new(inner: P, faults: Vec<Fault<P::Msg>>) -> Self {
        Self {
            inner,
            faults,
            held: Vec::new(),
            received: Vec::new(),
            replay_rounds: 0,
            buf: Vec::new(),
            suppressed: 0,
        }
    }

    fn run(
        &mut self,
        now: u64,
        out: &mut Outbox<P::Msg>,
        f: impl FnOnce(&mut P, &mut Outbox<P::Msg>),
    ) {
        let mut child = out.child();
        child.sends = std::mem::take(&mut self.buf); // reuse the capacity of the last step
        f(&mut self.inner, &mut child);
        let mut sends = std::mem::take(&mut child.sends);
        child.alarms.clear(); // a Byzantine node's alarms mean nothing
        out.merge(child);
        for s in sends.drain(..) {
            self.emit(now, s, out);
        }
        self.buf = sends;
    }

    fn emit(&mut self, now: u64, s: Send<P::Msg>, out: &mut Outbox<P::Msg>) {
        // One send through the faults without allocating, until a mutator (which may fan out).
        let mut one = Some(s);
        let mut first_mutator = self.faults.len();
        for (k, fault) in self.faults.iter_mut().enumerate() {
            let Some(mut s) = one.take() else {
                break;
            };
            match fault {
                Fault::Silent => {}
                Fault::Withhold(set) if set.contains(&s.to) => {}
                Fault::Withhold(_) | Fault::Replay { .. } => one = Some(s),
                Fault::Spoof(as_node) => {
                    s.claimed_from = *as_node;
                    one = Some(s);
                }
                Fault::Delay(ms) => {
                    if self.held.is_empty() {
                        out.set_timer(DELAY_TIMER, now + *ms);
                    }
                    self.held.push((now + *ms, s));
                }
                Fault::Mutate(_) => {
                    first_mutator = k;
                    one = Some(s);
                    break;
                }
            }
        }
        let Some(s) = one else {
            self.suppressed += 1;
            return;
        };
        if first_mutator == self.faults.len() {
            out.sends.push(s);
            return;
        }
        let mut batch = vec![s];
        for fault in &mut self.faults[first_mutator..] {
            let mut next = Vec::with_capacity(batch.len());
            for mut s in batch {
                match fault {
                    Fault::Silent => {}
                    Fault::Withhold(set) if set.contains(&s.to) => {}
                    Fault::Withhold(_) | Fault::Replay { .. } => next.push(s),
                    Fault::Spoof(as_node) => {
                        s.claimed_from = *as_node;
                        next.push(s);
                    }
                    Fault::Delay(ms) => {
                        if self.held.is_empty() {
                            out.set_timer(DELAY_TIMER, now + *ms);
                        }
                        self.held.push((now + *ms, s));
                    }
                    Fault::Mutate(m) => next.extend(m(now, s, &mut out.rng)),
                }
            }
            batch = next;
        }
        if batch.is_empty() {
            self.suppressed += 1;
        }
        out.sends.extend(batch);
    }

    fn replay_cfg(&self) -> Option<(u64, u32, usize)> {
        self.faults.iter().find_map(|f| match f {
            Fault::Replay {
                every_ms,
                rounds,
                cap,
            } => Some((*every_ms, *rounds, *cap)),
            _ => None,
        })
    }
}

impl<P: Protocol> Protocol for Adversary<P> {
    type Msg = P::Msg;
    type Input = P::Input;
    type Output = P::Output;

    fn on_start(&mut self, now: u64, out: &mut Outbox<P::Msg>) {
        self.run(now, out, |p, o| p.on_start(now, o));
    }

    fn on_message(&mut self, now: u64, from: NodeId, msg: &P::Msg, out: &mut Outbox<P::Msg>) {
        if let Some((every, rounds, cap)) = self.replay_cfg() {
            if self.received.len() < cap {
                if self.replay_rounds == 0 {
                    out.set_timer(REPLAY_TIMER, now + every);
                }
                self.replay_rounds = rounds;
                self.received.push(Arc::new(msg.clone()));
            }
        }
        self.run(now, out, |p, o| p.on_message(now, from, msg, o));
    }

    fn on_timer(&mut self, now: u64, id: TimerId, out: &mut Outbox<P::Msg>) {
        match id {
            DELAY_TIMER => {
                let (due, later): (Vec<_>, Vec<_>) = std::mem::take(&mut self.held)
                    .into_iter()
                    .partition(|(t, _)| *t <= now);
                self.held = later;
                out.sends.extend(due.into_iter().map(|(_, s)| s));
                if let Some((t, _)) = self.held.first() {
                    out.set_timer(DELAY_TIMER, *t);
                }
            }
            REPLAY_TIMER => {
                for m in &self.received {
                    let me = out.me;
                    for to in (0..out.n).filter(|t| *t != me) {
                        out.send_shared(to, Arc::clone(m));
                    }
                }
                self.replay_rounds = self.replay_rounds.saturating_sub(1);
                if let (Some((every, _, _)), true) = (self.replay_cfg(), self.replay_rounds > 0) {
                    out.set_timer(REPLAY_TIMER, now + every);
                }
            }
            _ => self.run(now, out, |p, o| p.on_timer(now, id, o)),
        }
    }

    fn on_input(&mut self, now: u64, input: P::Input, out: &mut Outbox<P::Msg>) {
        self.run(now, out, |p, o| p.on_input(now, input, o));
    }

    fn on_recover(&mut self, now: u64, out: &mut Outbox<P::Msg>) {
        self.run(now, out, |p, o| p.on_recover(now, o));
    }

    fn drain_committed(&mut self) -> Vec<P::Output> {
        self.inner.drain_committed()
    }

    fn is_honest(&self) -> bool {
        false
    }
}

/// Sends `script` entries `(at_ms, to, msg)` at their times, claiming to be `claimed_from` (its
/// own id unless it spoofs). Receives and commits nothing.
pub struct Scripted<M, I, O> {
    script: Vec<(u64, NodeId, Arc<M>)>,
    _io: std::marker::PhantomData<fn(I) -> O>,
}

impl<M, I, O> Scripted<M, I, O> {
    pub fn new(script: Vec<(u64, NodeId, M)>) -> Self {
        Self {
            script: script
                .into_iter()
                .map(|(t, to, m)| (t, to, Arc::new(m)))
                .collect(),
            _io: std::marker::PhantomData,
        }
    }
}

impl<M: Clone + super::Wire, I: Clone + super::Wire, O: Clone + super::Wire + std::fmt::Debug>
    Protocol for Scripted<M, I, O>
{
    type Msg = M;
    type Input = I;
    type Output = O;

    fn on_start(&mut self, _now: u64, out: &mut Outbox<M>) {
        for (k, (at, ..)) in self.script.iter().enumerate() {
            out.set_timer(ADVERSARY_TIMER | k as u64, *at);
        }
    }
    fn on_message(&mut self, _: u64, _: NodeId, _: &M, _: &mut Outbox<M>) {}
    fn on_timer(&mut self, _now: u64, id: TimerId, out: &mut Outbox<M>) {
        if let Some((_, to, m)) = self.script.get((id & !ADVERSARY_TIMER) as usize) {
            out.send_shared(*to, Arc::clone(m));
        }
    }
    fn on_input(&mut self, _: u64, _: I, _: &mut Outbox<M>) {}
    fn on_recover(&mut self, _: u64, _: &mut Outbox<M>) {}
    fn drain_committed(&mut self) -> Vec<O> {
        Vec::new()
    }
    fn is_honest(&self) -> bool {
        false
    }
}
