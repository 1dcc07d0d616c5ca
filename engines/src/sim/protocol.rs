//! # The sans-IO protocol trait
//!
//! A protocol node is a state machine driven by a start hook, messages, timers and local inputs,
//! each with `now` in milliseconds. It never performs effects: it writes sends, timer sets and
//! cancels, durable writes and alarms into an [`Outbox`] that the caller (the simulator, or a real
//! transport) carries out, and it hands committed outputs over through
//! [`Protocol::drain_committed`].
//!
//! What PBFT and Bullshark need and the trait therefore offers: [`Protocol::on_start`] (arm the
//! view timer at t = 0, propose round 0), timers that can be replaced or cancelled
//! ([`Outbox::set_timer`] replaces a pending timer with the same id, [`Outbox::cancel_timer`]),
//! durable state ([`Outbox::persist`], rebuilt from on restart), and a per-node seeded RNG
//! ([`Outbox::rng`]).
//!
//! Invariant: the network-level `from` is *not* authenticated (Byzantine nodes may spoof it with
//! [`Outbox::send_spoofed`]); honest implementations must authenticate with signatures, and must
//! never name `from` as a suspect on the strength of a message alone.

use serde::{Deserialize, Serialize};

pub use super::outbox::{Outbox, Send, TimerCmd};
pub use super::wire::{Decode, DecodeError, Wire};

/// A node index in `0..n`.
pub type NodeId = u32;
/// A protocol-chosen timer identifier. Ids with the top bit set are reserved for adversary
/// wrappers ([`super::adversary`]).
pub type TimerId = u64;

/// What an honest node noticed about a peer (becomes `ByzantineAttackDetected`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AlarmKind {
    BadSignature,
    Equivocation,
    Garbage,
    NotMember,
    BadVrfProof,
    Spam,
}

impl AlarmKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::BadSignature => "bad_signature",
            Self::Equivocation => "equivocation",
            Self::Garbage => "garbage",
            Self::NotMember => "not_member",
            Self::BadVrfProof => "bad_vrf_proof",
            Self::Spam => "spam",
        }
    }
}

/// An alarm raised by a node. `suspect` must only name a node proven faulty by evidence it
/// signed (the no-false-accusation checker enforces this).
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

/// A sans-IO protocol node.
pub trait Protocol {
    type Msg: Clone + Wire;
    type Input: Clone + Wire;
    type Output: Clone + Wire + std::fmt::Debug;

    /// Called once at t = 0 (before any message or input).
    fn on_start(&mut self, _now: u64, _out: &mut Outbox<Self::Msg>) {}
    fn on_message(&mut self, now: u64, from: NodeId, msg: &Self::Msg, out: &mut Outbox<Self::Msg>);
    fn on_timer(&mut self, now: u64, id: TimerId, out: &mut Outbox<Self::Msg>);
    fn on_input(&mut self, now: u64, input: Self::Input, out: &mut Outbox<Self::Msg>);
    /// Called on a node rebuilt from its durable state after a crash (its timers are gone).
    fn on_recover(&mut self, now: u64, out: &mut Outbox<Self::Msg>) {
        self.on_start(now, out);
    }
    /// Take the outputs committed since the last drain, in commit order.
    fn drain_committed(&mut self) -> Vec<Self::Output>;
    /// Byzantine implementations return false; invariants only constrain honest nodes.
    fn is_honest(&self) -> bool {
        true
    }
}

impl<P: Protocol + ?Sized> Protocol for Box<P> {
    type Msg = P::Msg;
    type Input = P::Input;
    type Output = P::Output;
    fn on_start(&mut self, now: u64, out: &mut Outbox<Self::Msg>) {
        (**self).on_start(now, out)
    }
    fn on_message(&mut self, now: u64, from: NodeId, msg: &Self::Msg, out: &mut Outbox<Self::Msg>) {
        (**self).on_message(now, from, msg, out)
    }
    fn on_timer(&mut self, now: u64, id: TimerId, out: &mut Outbox<Self::Msg>) {
        (**self).on_timer(now, id, out)
    }
    fn on_input(&mut self, now: u64, input: Self::Input, out: &mut Outbox<Self::Msg>) {
        (**self).on_input(now, input, out)
    }
    fn on_recover(&mut self, now: u64, out: &mut Outbox<Self::Msg>) {
        (**self).on_recover(now, out)
    }
    fn drain_committed(&mut self) -> Vec<Self::Output> {
        (**self).drain_committed()
    }
    fn is_honest(&self) -> bool {
        (**self).is_honest()
    }
}
