//! # The outbox: effects requested by one step of a node
//!
//! Fields are public so that another crate can wrap a protocol (an adversary, a transport, a
//! tracer): run the inner node into a [`Outbox::child`], inspect or rewrite what it asked for,
//! and [`Outbox::merge`] the result. Messages are held as `Arc<M>`: a broadcast shares one
//! payload among all recipients instead of copying it `n` times.

use std::sync::Arc;

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use super::durable::Write;
use super::protocol::{Alarm, AlarmKind, NodeId, TimerId};

/// One requested send. `claimed_from` differs from the real sender only for spoofing nodes.
#[derive(Debug)]
pub struct Send<M> {
    pub claimed_from: NodeId,
    pub to: NodeId,
    pub msg: Arc<M>,
}

impl<M> Clone for Send<M> {
    fn clone(&self) -> Self {
        Self {
            claimed_from: self.claimed_from,
            to: self.to,
            msg: Arc::clone(&self.msg),
        }
    }
}

/// A timer request: `Set` replaces a pending timer with the same id.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimerCmd {
    Set { id: TimerId, at_ms: u64 },
    Cancel { id: TimerId },
}

/// Effects requested by one step of a node.
#[derive(Debug)]
pub struct Outbox<M> {
    pub me: NodeId,
    pub n: u32,
    pub sends: Vec<Send<M>>,
    pub timers: Vec<TimerCmd>,
    pub alarms: Vec<Alarm>,
    pub writes: Vec<Write>,
    /// This node's own seeded RNG stream (kept by the simulator between steps).
    pub rng: ChaCha8Rng,
}

impl<M> Outbox<M> {
    pub fn new(me: NodeId, n: u32, rng: ChaCha8Rng) -> Self {
        Self {
            me,
            n,
            sends: Vec::new(),
            timers: Vec::new(),
            alarms: Vec::new(),
            writes: Vec::new(),
            rng,
        }
    }

    /// An empty outbox for the same node that borrows this one's RNG stream (give it back with
    /// [`Outbox::merge`] or [`Outbox::return_rng`]).
    pub fn child(&mut self) -> Self {
        let rng = std::mem::replace(&mut self.rng, ChaCha8Rng::from_seed([0; 32]));
        Self::new(self.me, self.n, rng)
    }

    /// Append everything `child` requested (after the caller filtered it) and take the RNG back.
    pub fn merge(&mut self, mut child: Self) {
        self.sends.append(&mut child.sends);
        self.timers.append(&mut child.timers);
        self.alarms.append(&mut child.alarms);
        self.writes.append(&mut child.writes);
        self.rng = child.rng;
    }

    pub fn return_rng(&mut self, child: Self) {
        self.rng = child.rng;
    }

    pub fn me(&self) -> NodeId {
        self.me
    }

    pub fn n(&self) -> u32 {
        self.n
    }

    pub fn send(&mut self, to: NodeId, msg: M) {
        self.send_shared(to, Arc::new(msg));
    }

    pub fn send_shared(&mut self, to: NodeId, msg: Arc<M>) {
        self.sends.push(Send {
            claimed_from: self.me,
            to,
            msg,
        });
    }

    /// Send to every node, including this one (self-delivery is immediate and fault-free). One
    /// shared payload.
    pub fn broadcast(&mut self, msg: M) {
        let msg = Arc::new(msg);
        for to in 0..self.n {
            self.send_shared(to, Arc::clone(&msg));
        }
    }

    /// Send with a forged network-level sender. Only Byzantine implementations call this.
    pub fn send_spoofed(&mut self, claimed_from: NodeId, to: NodeId, msg: M) {
        self.sends.push(Send {
            claimed_from,
            to,
            msg: Arc::new(msg),
        });
    }

    /// Fire `on_timer(id)` at absolute time `at_ms`, replacing a pending timer with this id.
    pub fn set_timer(&mut self, id: TimerId, at_ms: u64) {
        self.timers.push(TimerCmd::Set { id, at_ms });
    }

    pub fn cancel_timer(&mut self, id: TimerId) {
        self.timers.push(TimerCmd::Cancel { id });
    }

    /// Write `value` under `key`, durable before this step's messages leave.
    pub fn persist(&mut self, key: impl Into<Vec<u8>>, value: impl Into<Vec<u8>>) {
        self.writes.push(Write::Put {
            key: key.into(),
            value: value.into(),
        });
    }

    /// Write without syncing: lost on a `lose_unsynced` crash unless [`Outbox::sync`] ran since.
    pub fn persist_buffered(&mut self, key: impl Into<Vec<u8>>, value: impl Into<Vec<u8>>) {
        self.writes.push(Write::Buffered {
            key: key.into(),
            value: value.into(),
        });
    }

    pub fn unpersist(&mut self, key: impl Into<Vec<u8>>) {
        self.writes.push(Write::Delete { key: key.into() });
    }

    pub fn sync(&mut self) {
        self.writes.push(Write::Sync);
    }

    pub fn rng(&mut self) -> &mut ChaCha8Rng {
        &mut self.rng
    }

    pub fn alarm(&mut self, kind: AlarmKind, suspect: Option<NodeId>, detail: impl Into<String>) {
        self.alarms.push(Alarm {
            kind,
            suspect,
            detail: detail.into(),
        });
    }

    pub fn alarms(&self) -> &[Alarm] {
        &self.alarms
    }

    pub fn sends(&self) -> &[Send<M>] {
        &self.sends
    }
}
