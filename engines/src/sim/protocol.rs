//! # The sans-IO protocol trait
//!
//! A protocol node is a state machine driven by three inputs — a message, a timer, a local input —
//! each with `now` in milliseconds. It never performs effects: it writes sends, timers and alarms
//! into an [`Outbox`] that the caller (the simulator, or a real transport) carries out, and it hands
//! committed outputs over through [`Protocol::drain_committed`].
//!
//! Invariant: the network-level `from` is *not* authenticated (Byzantine nodes may spoof it with
//! [`Outbox::send_spoofed`]); honest implementations must authenticate with signatures.

use serde::{Deserialize, Serialize};

/// A node index in `0..n`.
pub type NodeId = u32;
/// A protocol-chosen timer identifier.
pub type TimerId = u64;

/// Canonical byte encoding: feeds trace hashes and message-size accounting.
pub trait Wire {
    fn wire(&self, buf: &mut Vec<u8>);
}

/// What an honest node noticed about a peer (becomes `ByzantineAttackDetected`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AlarmKind {
    BadSignature,
    Equivocation,
    Garbage,
    NotMember,
}

impl AlarmKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::BadSignature => "bad_signature",
            Self::Equivocation => "equivocation",
            Self::Garbage => "garbage",
            Self::NotMember => "not_member",
        }
    }
}

/// An alarm raised by a node.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Alarm {
    pub kind: AlarmKind,
    pub suspect: Option<NodeId>,
    pub detail: String,
}

impl Alarm {
    /// The signal this alarm raises (trigger 5).
    pub fn to_event(&self, engine: &str, at_ms: u64) -> dwcp_core::signals::EngineEvent {
        dwcp_core::signals::EngineEvent::ByzantineAttackDetected {
            engine: engine.to_owned(),
            at_ms,
            suspect: self.suspect,
            behaviour: self.kind.as_str().to_owned(),
            detail: self.detail.clone(),
        }
    }
}

/// One requested send. `claimed_from` differs from the real sender only for spoofing nodes.
#[derive(Debug, Clone)]
pub struct Send<M> {
    pub claimed_from: NodeId,
    pub to: NodeId,
    pub msg: M,
}

/// Effects requested by one step of a node.
#[derive(Debug, Clone)]
pub struct Outbox<M> {
    me: NodeId,
    n: u32,
    pub(crate) sends: Vec<Send<M>>,
    pub(crate) timers: Vec<(TimerId, u64)>,
    pub(crate) alarms: Vec<Alarm>,
}

impl<M: Clone> Outbox<M> {
    pub fn new(me: NodeId, n: u32) -> Self {
        Self {
            me,
            n,
            sends: Vec::new(),
            timers: Vec::new(),
            alarms: Vec::new(),
        }
    }

    pub fn me(&self) -> NodeId {
        self.me
    }

    pub fn n(&self) -> u32 {
        self.n
    }

    pub fn send(&mut self, to: NodeId, msg: M) {
        self.sends.push(Send {
            claimed_from: self.me,
            to,
            msg,
        });
    }

    /// Send to every node, including this one (self-delivery is immediate and fault-free).
    pub fn broadcast(&mut self, msg: M) {
        for to in 0..self.n {
            self.send(to, msg.clone());
        }
    }

    /// Send with a forged network-level sender. Only Byzantine implementations call this.
    pub fn send_spoofed(&mut self, claimed_from: NodeId, to: NodeId, msg: M) {
        self.sends.push(Send {
            claimed_from,
            to,
            msg,
        });
    }

    /// Fire `on_timer(id)` at absolute time `at_ms`.
    pub fn set_timer(&mut self, id: TimerId, at_ms: u64) {
        self.timers.push((id, at_ms));
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

/// A sans-IO protocol node.
pub trait Protocol {
    type Msg: Clone + Wire;
    type Input: Clone + Wire;
    type Output: Clone + Wire + PartialEq + std::fmt::Debug;

    fn on_message(&mut self, now: u64, from: NodeId, msg: Self::Msg, out: &mut Outbox<Self::Msg>);
    fn on_timer(&mut self, now: u64, id: TimerId, out: &mut Outbox<Self::Msg>);
    fn on_input(&mut self, now: u64, input: Self::Input, out: &mut Outbox<Self::Msg>);
    /// Called when a crashed node comes back (its state survives; its timers did not).
    fn on_recover(&mut self, _now: u64, _out: &mut Outbox<Self::Msg>) {}
    /// Take the outputs committed since the last drain, in commit order.
    fn drain_committed(&mut self) -> Vec<Self::Output>;
    /// Byzantine implementations return false; invariants only constrain honest nodes.
    fn is_honest(&self) -> bool {
        true
    }
}
