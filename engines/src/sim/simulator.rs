//! # The discrete-event simulator
//!
//! Single-threaded; the event queue is a `BTreeMap<(time, seq), Event>` so ties break by insertion
//! order; the only randomness is one `ChaCha8Rng` seeded from the run's seed and consumed in event
//! order. Hence: same seed, same nodes, same fault model ⇒ same trace hash.
//!
//! Fault semantics (see [`super::faults`]): partitions are decided at send time on the real
//! sender; crashes drop deliveries at delivery time and cancel the node's timers (an epoch counter);
//! a recovered node keeps its state. Self-sends are immediate and fault-free. Invariants run after
//! every step that committed output; the first violation of each invariant is recorded (with the
//! seed) and, if `stop_on_violation`, ends the run.

use std::collections::{BTreeMap, BTreeSet};

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::faults::FaultModel;
use super::invariants::{CommitView, Invariant, Violation};
use super::protocol::{Alarm, NodeId, Outbox, Protocol, TimerId, Wire};
use super::trace::{digest_of, DropReason, Trace, TraceEvent};

/// A node as the simulator holds it.
pub type Node<M, I, O> = Box<dyn Protocol<Msg = M, Input = I, Output = O>>;

enum Event<M, I> {
    Deliver {
        from: NodeId,
        claimed: NodeId,
        to: NodeId,
        msg: M,
        sent_at: u64,
        link_seq: u64,
    },
    Timer {
        node: NodeId,
        id: TimerId,
        epoch: u64,
    },
    Input {
        node: NodeId,
        input: I,
    },
    Crash {
        node: NodeId,
    },
    Recover {
        node: NodeId,
    },
    Gst,
}

/// The outcome of a run.
#[derive(Debug, Clone)]
pub struct SimReport<O> {
    pub seed: u64,
    pub trace_hash: String,
    pub end_ms: u64,
    pub steps: u64,
    pub violations: Vec<Violation>,
    pub alarms: Vec<(u64, NodeId, Alarm)>,
    /// Committed outputs of every node (honest and not), in commit order.
    pub logs: BTreeMap<NodeId, Vec<O>>,
}

/// A seeded network of sans-IO nodes.
pub struct Simulator<M, I, O> {
    seed: u64,
    rng: ChaCha8Rng,
    now: u64,
    seq: u64,
    steps: u64,
    max_steps: u64,
    stop_on_violation: bool,
    nodes: Vec<Node<M, I, O>>,
    honest: BTreeSet<NodeId>,
    crashed: Vec<bool>,
    epochs: Vec<u64>,
    faults: FaultModel,
    queue: BTreeMap<(u64, u64), Event<M, I>>,
    link_sent: BTreeMap<(NodeId, NodeId), u64>,
    link_delivered: BTreeMap<(NodeId, NodeId), u64>,
    trace: Trace,
    invariants: Vec<Box<dyn Invariant<I, O>>>,
    honest_logs: BTreeMap<NodeId, Vec<O>>,
    all_logs: BTreeMap<NodeId, Vec<O>>,
    inputs: BTreeMap<NodeId, Vec<I>>,
    violations: Vec<Violation>,
    alarms: Vec<(u64, NodeId, Alarm)>,
}

impl<M: Clone + Wire, I: Clone + Wire, O: Clone + Wire + PartialEq + std::fmt::Debug>
    Simulator<M, I, O>
{
    /// Build a run. `keep_trace` retains every trace event (tests); the hash is always kept.
    pub fn new(seed: u64, faults: FaultModel, nodes: Vec<Node<M, I, O>>, keep_trace: bool) -> Self {
        let n = nodes.len();
        let honest = (0..n as u32)
            .filter(|&i| nodes[i as usize].is_honest())
            .collect::<BTreeSet<_>>();
        let mut sim = Self {
            seed,
            rng: ChaCha8Rng::seed_from_u64(seed),
            now: 0,
            seq: 0,
            steps: 0,
            max_steps: 5_000_000,
            stop_on_violation: false,
            nodes,
            honest_logs: honest.iter().map(|&i| (i, Vec::new())).collect(),
            all_logs: (0..n as u32).map(|i| (i, Vec::new())).collect(),
            honest,
            crashed: vec![false; n],
            epochs: vec![0; n],
            faults,
            queue: BTreeMap::new(),
            link_sent: BTreeMap::new(),
            link_delivered: BTreeMap::new(),
            trace: Trace::new(keep_trace),
            invariants: Vec::new(),
            inputs: BTreeMap::new(),
            violations: Vec::new(),
            alarms: Vec::new(),
        };
        let crashes = sim.faults.crashes.clone();
        for c in crashes {
            sim.schedule(c.at_ms, Event::Crash { node: c.node });
            if let Some(r) = c.recover_at_ms {
                sim.schedule(r, Event::Recover { node: c.node });
            }
        }
        let gst = sim.faults.gst_ms;
        sim.schedule(gst, Event::Gst);
        sim
    }

    pub fn with_invariant(mut self, inv: impl Invariant<I, O> + 'static) -> Self {
        self.invariants.push(Box::new(inv));
        self
    }

    pub fn stop_on_violation(mut self, stop: bool) -> Self {
        self.stop_on_violation = stop;
        self
    }

    pub fn max_steps(mut self, max: u64) -> Self {
        self.max_steps = max;
        self
    }

    /// Submit `input` to `node` at `at_ms`.
    pub fn input(&mut self, at_ms: u64, node: NodeId, input: I) {
        self.schedule(at_ms, Event::Input { node, input });
    }

    pub fn trace(&self) -> &Trace {
        &self.trace
    }

    fn schedule(&mut self, at: u64, ev: Event<M, I>) {
        self.seq += 1;
        self.queue.insert((at, self.seq), ev);
    }

    fn roll(&mut self, ppm: u32) -> bool {
        ppm > 0 && self.rng.gen_range(0..1_000_000u32) < ppm
    }

    fn delay(&mut self, from: NodeId, to: NodeId) -> u64 {
        let link = self.faults.link(from, to);
        if self.now >= self.faults.gst_ms {
            let hi = self.faults.post_gst_max_delay_ms;
            return self.rng.gen_range(link.min_delay_ms.min(hi)..=hi);
        }
        let hi = link.max_delay_ms.max(link.min_delay_ms);
        let mut d = self.rng.gen_range(link.min_delay_ms..=hi);
        if self.roll(link.reorder_ppm) {
            d += link.reorder_extra_ms;
        }
        d
    }

    fn send(&mut self, from: NodeId, claimed: NodeId, to: NodeId, msg: M) {
        let now = self.now;
        if to as usize >= self.nodes.len() {
            return;
        }
        let link_seq = {
            let s = self.link_sent.entry((from, to)).or_insert(0);
            *s += 1;
            *s
        };
        if from == to {
            self.schedule(
                now,
                Event::Deliver {
                    from,
                    claimed,
                    to,
                    msg,
                    sent_at: now,
                    link_seq,
                },
            );
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
        if pre_gst && self.roll(link.duplicate_ppm) {
            self.trace
                .push(TraceEvent::Duplicated { at: now, from, to });
            let d = self.delay(from, to);
            let copy = msg.clone();
            self.schedule(
                now + d,
                Event::Deliver {
                    from,
                    claimed,
                    to,
                    msg: copy,
                    sent_at: now,
                    link_seq,
                },
            );
        }
        let d = self.delay(from, to);
        self.schedule(
            now + d,
            Event::Deliver {
                from,
                claimed,
                to,
                msg,
                sent_at: now,
                link_seq,
            },
        );
    }

    /// Run until the queue is empty, `end_ms` is passed, or a violation stops the run.
    pub fn run_until(&mut self, end_ms: u64) -> SimReport<O> {
        while let Some(entry) = self.queue.first_entry() {
            if entry.key().0 > end_ms || self.steps >= self.max_steps {
                break;
            }
            let ((at, _), ev) = entry.remove_entry();
            self.now = at;
            self.steps += 1;
            self.step(ev);
            if self.stop_on_violation && !self.violations.is_empty() {
                break;
            }
        }
        self.now = self.now.max(end_ms);
        self.check(true);
        self.report()
    }

    fn step(&mut self, ev: Event<M, I>) {
        let now = self.now;
        match ev {
            Event::Deliver {
                from,
                claimed,
                to,
                msg,
                sent_at,
                link_seq,
            } => {
                if self.crashed[to as usize] {
                    self.trace.push(TraceEvent::Dropped {
                        at: now,
                        from,
                        to,
                        reason: DropReason::Crashed,
                    });
                    return;
                }
                let max = self.link_delivered.entry((from, to)).or_insert(0);
                if link_seq < *max {
                    self.trace.push(TraceEvent::Reordered { at: now, from, to });
                }
                *max = (*max).max(link_seq);
                self.trace.push(TraceEvent::Delivered {
                    at: now,
                    from,
                    to,
                    sent_at,
                    digest: digest_of(&msg),
                });
                self.with_node(to, |node, out| node.on_message(now, claimed, msg, out));
            }
            Event::Timer { node, id, epoch } => {
                if self.crashed[node as usize] || self.epochs[node as usize] != epoch {
                    return;
                }
                self.trace.push(TraceEvent::Timer { at: now, node, id });
                self.with_node(node, |n, out| n.on_timer(now, id, out));
            }
            Event::Input { node, input } => {
                if node as usize >= self.nodes.len() || self.crashed[node as usize] {
                    return;
                }
                self.trace.push(TraceEvent::Input {
                    at: now,
                    node,
                    digest: digest_of(&input),
                });
                self.inputs.entry(node).or_default().push(input.clone());
                self.with_node(node, |n, out| n.on_input(now, input, out));
            }
            Event::Crash { node } => {
                if let Some(c) = self.crashed.get_mut(node as usize) {
                    *c = true;
                    self.epochs[node as usize] += 1;
                    self.trace.push(TraceEvent::Crashed { at: now, node });
                }
            }
            Event::Recover { node } => {
                if let Some(c) = self.crashed.get_mut(node as usize) {
                    *c = false;
                    self.trace.push(TraceEvent::Recovered { at: now, node });
                    self.with_node(node, |n, out| n.on_recover(now, out));
                }
            }
            Event::Gst => self.trace.push(TraceEvent::Gst { at: now }),
        }
    }

    /// Run one node step and carry out its effects.
    fn with_node(&mut self, id: NodeId, f: impl FnOnce(&mut Node<M, I, O>, &mut Outbox<M>)) {
        let n = self.nodes.len() as u32;
        let mut out = Outbox::new(id, n);
        let committed = match self.nodes.get_mut(id as usize) {
            Some(node) => {
                f(node, &mut out);
                node.drain_committed()
            }
            None => return,
        };
        let now = self.now;
        for alarm in out.alarms {
            self.trace.push(TraceEvent::Alarm {
                at: now,
                node: id,
                kind: alarm.kind,
                suspect: alarm.suspect,
            });
            self.alarms.push((now, id, alarm));
        }
        let epoch = self.epochs[id as usize];
        for (tid, at) in out.timers {
            self.schedule(
                at.max(now),
                Event::Timer {
                    node: id,
                    id: tid,
                    epoch,
                },
            );
        }
        for s in out.sends {
            self.send(id, s.claimed_from, s.to, s.msg);
        }
        if committed.is_empty() {
            return;
        }
        for o in &committed {
            self.trace.push(TraceEvent::Committed {
                at: now,
                node: id,
                digest: digest_of(o),
            });
        }
        if self.honest.contains(&id) {
            self.honest_logs
                .entry(id)
                .or_default()
                .extend(committed.iter().cloned());
        }
        self.all_logs.entry(id).or_default().extend(committed);
        self.check(false);
    }

    fn check(&mut self, at_end: bool) {
        let view = CommitView {
            now: self.now,
            honest: &self.honest,
            logs: &self.honest_logs,
            inputs: &self.inputs,
        };
        let mut found = Vec::new();
        for inv in &self.invariants {
            if self.violations.iter().any(|v| v.invariant == inv.name()) {
                continue;
            }
            let res = if at_end {
                inv.check(&view).and_then(|()| inv.check_final(&view))
            } else {
                inv.check(&view)
            };
            if let Err(detail) = res {
                found.push(Violation {
                    invariant: inv.name().to_owned(),
                    at_ms: self.now,
                    seed: self.seed,
                    detail,
                });
            }
        }
        for v in found {
            self.trace.push(TraceEvent::Violation {
                at: v.at_ms,
                invariant: v.invariant.clone(),
            });
            self.violations.push(v);
        }
    }

    fn report(&self) -> SimReport<O> {
        SimReport {
            seed: self.seed,
            trace_hash: self.trace.hash_hex(),
            end_ms: self.now,
            steps: self.steps,
            violations: self.violations.clone(),
            alarms: self.alarms.clone(),
            logs: self.all_logs.clone(),
        }
    }
}
