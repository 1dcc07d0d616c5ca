//! # Twins: two honest instances under one key
//!
//! Split from [`super`] for size.

use std::collections::BTreeSet;

use super::super::protocol::{NodeId, Outbox, Protocol, TimerCmd, TimerId};

/// Maps twin `a`'s input to twin `b`'s.
pub type InputMap<I> = Box<dyn FnMut(&I) -> I>;

/// Two honest instances under one identity. Twin `a` talks to `a_side`, twin `b` to everyone
/// else; messages from `a_side` reach `a`, the others reach `b`. A twin's messages to itself stay
/// with it. `b` gets its own variant of each input (`b_input`), so an origin's twins sign two
/// values and voters' twins vote twice.
pub struct Twins<P: Protocol> {
    a: P,
    b: P,
    a_side: BTreeSet<NodeId>,
    b_input: InputMap<P::Input>,
}

impl<P: Protocol> Twins<P> {
    pub fn new(
        a: P,
        b: P,
        a_side: BTreeSet<NodeId>,
        b_input: impl FnMut(&P::Input) -> P::Input + 'static,
    ) -> Self {
        Self {
            a,
            b,
            a_side,
            b_input: Box::new(b_input),
        }
    }

    /// Run `f` on one twin, loop its self-sends back into it (bounded), keep the sends to its side.
    fn drive(
        twin: &mut P,
        side: &dyn Fn(NodeId) -> bool,
        now: u64,
        out: &mut Outbox<P::Msg>,
        f: impl FnOnce(&mut P, &mut Outbox<P::Msg>),
    ) {
        let me = out.me;
        let mut child = out.child();
        f(twin, &mut child);
        for _ in 0..64 {
            let (own, rest): (Vec<_>, Vec<_>) = std::mem::take(&mut child.sends)
                .into_iter()
                .partition(|s| s.to == me);
            out.sends.extend(rest.into_iter().filter(|s| side(s.to)));
            if own.is_empty() {
                break;
            }
            for s in own {
                twin.on_message(now, me, &s.msg, &mut child);
            }
        }
        child.sends.clear();
        child.alarms.clear();
        // Both twins share one timer namespace: tag twin b's timers.
        out.merge(child);
    }
}

const TWIN_B: TimerId = 1 << 62;

impl<P: Protocol> Protocol for Twins<P> {
    type Msg = P::Msg;
    type Input = P::Input;
    type Output = P::Output;

    fn on_start(&mut self, now: u64, out: &mut Outbox<P::Msg>) {
        let a_side = self.a_side.clone();
        Self::drive(&mut self.a, &|t| a_side.contains(&t), now, out, |p, o| {
            p.on_start(now, o)
        });
        let mark = out.timers.len();
        Self::drive(&mut self.b, &|t| !a_side.contains(&t), now, out, |p, o| {
            p.on_start(now, o)
        });
        tag_b(&mut out.timers[mark..]);
    }

    fn on_message(&mut self, now: u64, from: NodeId, msg: &P::Msg, out: &mut Outbox<P::Msg>) {
        let a_side = self.a_side.clone();
        if a_side.contains(&from) {
            Self::drive(&mut self.a, &|t| a_side.contains(&t), now, out, |p, o| {
                p.on_message(now, from, msg, o)
            });
        } else {
            let mark = out.timers.len();
            Self::drive(&mut self.b, &|t| !a_side.contains(&t), now, out, |p, o| {
                p.on_message(now, from, msg, o)
            });
            tag_b(&mut out.timers[mark..]);
        }
    }

    fn on_timer(&mut self, now: u64, id: TimerId, out: &mut Outbox<P::Msg>) {
        let a_side = self.a_side.clone();
        if id & TWIN_B == 0 {
            Self::drive(&mut self.a, &|t| a_side.contains(&t), now, out, |p, o| {
                p.on_timer(now, id, o)
            });
        } else {
            let mark = out.timers.len();
            Self::drive(&mut self.b, &|t| !a_side.contains(&t), now, out, |p, o| {
                p.on_timer(now, id & !TWIN_B, o)
            });
            tag_b(&mut out.timers[mark..]);
        }
    }

    fn on_input(&mut self, now: u64, input: P::Input, out: &mut Outbox<P::Msg>) {
        let a_side = self.a_side.clone();
        let other = (self.b_input)(&input);
        Self::drive(&mut self.a, &|t| a_side.contains(&t), now, out, |p, o| {
            p.on_input(now, input, o)
        });
        let mark = out.timers.len();
        Self::drive(&mut self.b, &|t| !a_side.contains(&t), now, out, |p, o| {
            p.on_input(now, other, o)
        });
        tag_b(&mut out.timers[mark..]);
    }

    fn drain_committed(&mut self) -> Vec<P::Output> {
        let mut v = self.a.drain_committed();
        v.extend(self.b.drain_committed());
        v
    }

    fn is_honest(&self) -> bool {
        false
    }
}

fn tag_b(cmds: &mut [TimerCmd]) {
    for c in cmds {
        match c {
            TimerCmd::Set { id, .. } | TimerCmd::Cancel { id } => *id |= TWIN_B,
        }
    }
}
