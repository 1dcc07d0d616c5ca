//! # One simulator step: events, node effects, and the network model
//!
//! Split from [`super::simulator`] for size. A node's effects are applied in a fixed order —
//! durable writes (so a write is on disk before the messages that depend on it leave), alarms,
//! timer commands, sends, then commits — and every effect is traced. A payload is encoded and
//! digested once ([`super::digests`]), not once per recipient or retransmission.

use std::sync::Arc;

use rand::Rng;

use super::protocol::{NodeId, Outbox, TimerCmd, Wire};
use super::simulator::{Event, MsgStats, Node, Simulator};
use super::trace::{fnv1a, DropReason, TraceEvent};

impl<M: Clone + Wire, I: Clone + Wire, O: Clone + Wire + std::fmt::Debug> Simulator<M, I, O> {
    pub(super) fn step(&mut self, ev: Event<M, I>) {
        let now = self.now;
        match ev {
            Event::Start { node } => self.with_node(node, |n, out| n.on_start(now, out)),
            Event::Deliver {
                from,
                claimed,
                to,
                msg,
                digest,
                sent_at,
                link_seq,
            } => {
                let t = to as usize;
                if self.crashed[t] || self.nodes[t].is_none() {
                    self.trace.push(TraceEvent::Dropped {
                        at: now,
                        from,
                        to,
                        reason: DropReason::Crashed,
                    });
                    return;
                }
                let li = from as usize * self.n + t;
                if link_seq < self.link_delivered[li] {
                    self.trace.push(TraceEvent::Reordered { at: now, from, to });
                }
                self.link_delivered[li] = self.link_delivered[li].max(link_seq);
                self.trace.push(TraceEvent::Delivered {
                    at: now,
                    from,
                    to,
                    sent_at,
                    digest,
                });
                self.with_node(to, |node, out| node.on_message(now, claimed, &msg, out));
            }
            Event::Timer { node, id, gen } => {
                let live = self.timers.get(node as usize).and_then(|t| t.get(&id)) == Some(&gen);
                if !live || self.crashed[node as usize] {
                    return;
                }
                self.timers[node as usize].remove(&id);
                self.trace.push(TraceEvent::Timer { at: now, node, id });
                self.with_node(node, |n, out| n.on_timer(now, id, out));
            }
            Event::Input { node, input } => {
                if node as usize >= self.n || self.crashed[node as usize] {
                    return;
                }
                self.scratch.clear();
                input.wire(&mut self.scratch);
                self.trace.push(TraceEvent::Input {
                    at: now,
                    node,
                    digest: fnv1a(&self.scratch),
                });
                self.inputs
                    .entry(node)
                    .or_default()
                    .push((now, input.clone()));
                self.with_node(node, |n, out| n.on_input(now, input, out));
            }
            Event::Crash {
                node,
                lose_unsynced,
            } => {
                let i = node as usize;
                if i >= self.n || self.crashed[i] {
                    return;
                }
                self.crashed[i] = true;
                self.correct.remove(&node);
                self.nodes[i] = None; // volatile memory is gone
                self.timers[i].clear();
                self.durable[i].crash(lose_unsynced);
                self.trace.push(TraceEvent::Crashed { at: now, node });
            }
            Event::Recover { node } => {
                let i = node as usize;
                if i >= self.n || !self.crashed[i] {
                    return;
                }
                let rebuilt = match self.restart.as_mut() {
                    Some(f) => f(node, &self.durable[i]),
                    None => None,
                };
                let Some(rebuilt) = rebuilt else {
                    self.unrecovered.push(node);
                    return;
                };
                self.nodes[i] = Some(rebuilt);
                self.crashed[i] = false;
                if self.honest.contains(&node) {
                    self.correct.insert(node);
                }
                self.trace.push(TraceEvent::Recovered { at: now, node });
                self.with_node(node, |n, out| n.on_recover(now, out));
            }
            Event::Gst => self.trace.push(TraceEvent::Gst { at: now }),
        }
    }

    /// Run one node step and carry out its effects.
    fn with_node(&mut self, id: NodeId, f: impl FnOnce(&mut Node<M, I, O>, &mut Outbox<M>)) {
        let i = id as usize;
        let Some(node) = self.nodes.get_mut(i).and_then(Option::as_mut) else {
            return;
        };
        f(node, &mut self.outs[i]);
        let committed = node.drain_committed();
        let now = self.now;
        let honest = self.honest.contains(&id);

        let mut writes = std::mem::take(&mut self.outs[i].writes);
        for w in writes.drain(..) {
            self.durable[i].apply(w);
        }
        self.outs[i].writes = writes;

        let alarms = std::mem::take(&mut self.outs[i].alarms);
        for alarm in alarms {
            self.trace.push(TraceEvent::Alarm {
                at: now,
                node: id,
                kind: alarm.kind,
                suspect: alarm.suspect,
            });
            if honest {
                self.feed(|inv, ctx| inv.on_alarm(ctx, id, &alarm));
            }
            self.alarms.push((now, id, alarm));
        }

        let mut timers = std::mem::take(&mut self.outs[i].timers);
        for cmd in timers.drain(..) {
            match cmd {
                TimerCmd::Set { id: tid, at_ms } => {
                    self.timer_gen += 1;
                    let gen = self.timer_gen;
                    self.timers[i].insert(tid, gen);
                    self.schedule(
                        at_ms.max(now),
                        Event::Timer {
                            node: id,
                            id: tid,
                            gen,
                        },
                    );
                }
                TimerCmd::Cancel { id: tid } => {
                    self.timers[i].remove(&tid);
                }
            }
        }
        self.outs[i].timers = timers;

        let mut sends = std::mem::take(&mut self.outs[i].sends);
        // Per-kind counts of a run of sends of one payload, added to the report once per run.
        let mut tally: Option<(&'static str, MsgStats)> = None;
        for s in sends.drain(..) {
            let info = self.digests.get(&s.msg);
            let (digest, size, kind) = (info.digest, info.size, info.kind);
            if s.to != id && (s.to as usize) < self.n {
                match &mut tally {
                    Some((k, t)) if *k == kind => {
                        t.count += 1;
                        t.bytes += size;
                    }
                    _ => {
                        self.tally(tally.take());
                        let t = MsgStats {
                            count: 1,
                            bytes: size,
                        };
                        tally = Some((kind, t));
                    }
                }
            }
            self.send(id, s.claimed_from, s.to, s.msg, digest, size, kind);
        }
        self.tally(tally);
        self.outs[i].sends = sends;

        for o in committed {
            self.scratch.clear();
            o.wire(&mut self.scratch);
            self.trace.push(TraceEvent::Committed {
                at: now,
                node: id,
                digest: fnv1a(&self.scratch),
            });
            let index = self.log_len[i];
            self.log_len[i] += 1;
            if honest {
                self.feed(|inv, ctx| inv.on_commit(ctx, id, index, &o));
            }
            if self.keep_logs {
                self.logs.entry(id).or_default().push(o);
            }
        }
    }

    fn roll(&mut self, ppm: u32) -> bool {
        ppm > 0 && self.rng.gen_range(0..1_000_000u32) < ppm
    }

    fn delay(&mut self, from: NodeId, to: NodeId, kind: &'static str) -> u64 {
        let link = self.faults.link(from, to);
        let post_gst = self.now >= self.faults.gst_ms;
        let proposed = if post_gst {
            let hi = self.faults.post_gst_max_delay_ms;
            self.rng.gen_range(link.min_delay_ms.min(hi)..=hi)
        } else {
            let hi = link.max_delay_ms.max(link.min_delay_ms);
            let mut d = self.rng.gen_range(link.min_delay_ms..=hi);
            if self.roll(link.reorder_ppm) {
                d += link.reorder_extra_ms;
            }
            d
        };
        let d = self.scheduler.delay(self.now, from, to, kind, proposed);
        if post_gst {
            d.min(self.faults.post_gst_max_delay_ms)
        } else {
            d
        }
    }

    /// When a message of `size` bytes put on the link now starts propagating.
    fn transmit(&mut self, from: NodeId, to: NodeId, size: u64) -> u64 {
        let bw = self.faults.link(from, to).bandwidth_bytes_per_ms;
        if bw == 0 {
            return self.now;
        }
        let li = from as usize * self.n + to as usize;
        let start = self.link_busy[li].max(self.now);
        let done = start + size.div_ceil(bw);
        self.link_busy[li] = done;
        done
    }

    /// Add a run of sends of one kind to the report's per-kind counts.
    fn tally(&mut self, t: Option<(&'static str, MsgStats)>) {
        if let Some((kind, t)) = t {
            let stats = self.messages.entry(kind).or_default();
            stats.count += t.count;
            stats.bytes += t.bytes;
        }
    }

    /// Put one message on the network (`size`: its encoded length, for bandwidth).
    #[allow(clippy::too_many_arguments)]
    fn send(
        &mut self,
        from: NodeId,
        claimed: NodeId,
        to: NodeId,
        msg: Arc<M>,
        digest: u64,
        size: u64,
        kind: &'static str,
    ) {
        let now = self.now;
        if to as usize >= self.n {
            return;
        }
        let li = from as usize * self.n + to as usize;
        self.link_sent[li] += 1;
        let link_seq = self.link_sent[li];
        let deliver = |msg: Arc<M>| Event::Deliver {
            from,
            claimed,
            to,
            msg,
            digest,
            sent_at: now,
            link_seq,
        };
        if from == to {
            self.schedule(now, deliver(msg));
            return;
        }
        if self.faults.partitioned(now, from, to) {
            self.trace.push(TraceEvent::Dropped {
                at: now,
                from,
                to,
                reason: DropReason::Partition,
            });
            return;
        }
        let link = self.faults.link(from, to);
        let pre_gst = now < self.faults.gst_ms;
        if pre_gst && self.roll(link.drop_ppm) {
            self.trace.push(TraceEvent::Dropped {
                at: now,
                from,
                to,
                reason: DropReason::Link,
            });
            return;
        }
        let start = self.transmit(from, to, size);
        if pre_gst && self.roll(link.duplicate_ppm) {
            self.trace
                .push(TraceEvent::Duplicated { at: now, from, to });
            let d = self.delay(from, to, kind);
            self.schedule(start + d, deliver(Arc::clone(&msg)));
        }
        let d = self.delay(from, to, kind);
        self.schedule(start + d, deliver(msg));
    }
}
