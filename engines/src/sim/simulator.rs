//! # The discrete-event simulator
//!
//! Single-threaded; the event queue ([`super::queue`]) is ordered by time, ties in insertion
//! order; randomness comes from one `ChaCha8Rng` for the network, consumed in
//! event order, plus one stream per node handed to it through its outbox. Hence: same seed, same
//! nodes, same fault model ⇒ same trace hash.
//!
//! Semantics (see [`super::faults`]): partitions and cuts are decided at send time on the real
//! sender; a crash drops the node's memory, its timers and the deliveries addressed to it; a
//! recovery rebuilds the node from its durable store with the restart function (no restart
//! function, or one that returns `None`: the node stays down). Self-sends are immediate and
//! fault-free. Invariants are fed each new commit and alarm of an honest node; the first
//! violation of each invariant is recorded with the seed and, if `stop_on_violation`, ends the
//! run. A run that reaches `max_steps` stops with `truncated` set in its report. A panic inside a
//! node is reported with the seed on stderr and re-raised.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::Serialize;

use super::digests::Digests;
use super::durable::Durable;
use super::faults::FaultModel;
use super::invariants::{Ctx, Invariant, Violation};
use super::protocol::{Alarm, NodeId, Outbox, Protocol, TimerId, Wire};
use super::queue::EventQueue;
use super::scheduler::{Random, Scheduler};
use super::trace::{Trace, TraceEvent};

/// A node as the simulator holds it.
pub type Node<M, I, O> = Box<dyn Protocol<Msg = M, Input = I, Output = O>>;
/// Rebuilds a crashed node from its durable store.
pub type Restart<M, I, O> = Box<dyn FnMut(NodeId, &Durable) -> Option<Node<M, I, O>>>;

pub(super) enum Event<M, I> {
    Start {
        node: NodeId,
    },
    Deliver {
        from: NodeId,
        claimed: NodeId,
        to: NodeId,
        msg: Arc<M>,
        digest: u64,
        sent_at: u64,
        link_seq: u64,
    },
    Timer {
        node: NodeId,
        id: TimerId,
        gen: u64,
    },
    Input {
        node: NodeId,
        input: I,
    },
    Crash {
        node: NodeId,
        lose_unsynced: bool,
    },
    Recover {
        node: NodeId,
    },
    Gst,
}

/// Messages and bytes sent (to other nodes) of one kind.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct MsgStats {
    pub count: u64,
    pub bytes: u64,
}

/// The outcome of a run.
#[derive(Debug, Clone)]
pub struct SimReport<O> {
    pub seed: u64,
    pub trace_hash: String,
    pub end_ms: u64,
    pub steps: u64,
    /// The run hit `max_steps` before `end_ms`: its liveness verdict is void.
    pub truncated: bool,
    pub violations: Vec<Violation>,
    pub alarms: Vec<(u64, NodeId, Alarm)>,
    /// Committed outputs of every node (honest and not), in commit order (empty when logs are
    /// not kept).
    pub logs: BTreeMap<NodeId, Vec<O>>,
    /// Outputs committed per node (always kept).
    pub committed: BTreeMap<NodeId, u64>,
    /// Per message kind, what was sent to other nodes.
    pub messages: BTreeMap<&'static str, MsgStats>,
    /// Nodes whose recovery failed (no restart function, or it returned `None`).
    pub unrecovered: Vec<NodeId>,
}

/// A seeded network of sans-IO nodes.
pub struct Simulator<M, I, O> {
    pub(super) seed: u64,
    pub(super) rng: ChaCha8Rng,
    pub(super) now: u64,
    pub(super) steps: u64,
    pub(super) max_steps: u64,
    pub(super) truncated: bool,
    pub(super) stop_on_violation: bool,
    pub(super) keep_logs: bool,
    pub(super) n: usize,
    pub(super) nodes: Vec<Option<Node<M, I, O>>>,
    pub(super) honest: BTreeSet<NodeId>,
    pub(super) correct: BTreeSet<NodeId>,
    pub(super) crashed: Vec<bool>,
    pub(super) timers: Vec<BTreeMap<TimerId, u64>>,
    pub(super) timer_gen: u64,
    pub(super) durable: Vec<Durable>,
    pub(super) faults: FaultModel,
    pub(super) scheduler: Box<dyn Scheduler>,
    pub(super) queue: EventQueue<Event<M, I>>,
    pub(super) link_sent: Vec<u64>,
    pub(super) link_delivered: Vec<u64>,
    pub(super) link_busy: Vec<u64>,
    pub(super) trace: Trace,
    pub(super) invariants: Vec<Box<dyn Invariant<I, O>>>,
    pub(super) violated: Vec<bool>,
    pub(super) logs: BTreeMap<NodeId, Vec<O>>,
    pub(super) log_len: Vec<u64>,
    pub(super) inputs: BTreeMap<NodeId, Vec<(u64, I)>>,
    pub(super) violations: Vec<Violation>,
    pub(super) alarms: Vec<(u64, NodeId, Alarm)>,
    pub(super) messages: BTreeMap<&'static str, MsgStats>,
    pub(super) restart: Option<Restart<M, I, O>>,
    pub(super) unrecovered: Vec<NodeId>,
    /// One outbox per node, holding that node's RNG stream between steps (no copying it in and
    /// out of a shared outbox on every step).
    pub(super) outs: Vec<Outbox<M>>,
    pub(super) scratch: Vec<u8>,
    pub(super) digests: Digests<M>,
}

/// Node `id`'s own RNG stream for run `seed`.
pub fn node_rng(seed: u64, id: NodeId) -> ChaCha8Rng {
    ChaCha8Rng::seed_from_u64(seed ^ 0x9e37_79b9_7f4a_7c15_u64.wrapping_mul(u64::from(id) + 1))
}

impl<M: Clone + Wire, I: Clone + Wire, O: Clone + Wire + std::fmt::Debug> Simulator<M, I, O> {
    /// Build a run. `keep_trace` retains every trace event (tests); the hash is always kept.
    pub fn new(seed: u64, faults: FaultModel, nodes: Vec<Node<M, I, O>>, keep_trace: bool) -> Self {
        let n = nodes.len();
        let honest: BTreeSet<NodeId> = (0..n as u32)
            .filter(|&i| nodes[i as usize].is_honest())
            .collect();
        let mut sim = Self {
            seed,
            rng: ChaCha8Rng::seed_from_u64(seed),
            now: 0,
            steps: 0,
            max_steps: 5_000_000,
            truncated: false,
            stop_on_violation: false,
            keep_logs: true,
            n,
            nodes: nodes.into_iter().map(Some).collect(),
            correct: honest.clone(),
            honest,
            crashed: vec![false; n],
            timers: vec![BTreeMap::new(); n],
            timer_gen: 0,
            durable: vec![Durable::default(); n],
            faults,
            scheduler: Box::new(Random),
            queue: EventQueue::default(),
            link_sent: vec![0; n * n],
            link_delivered: vec![0; n * n],
            link_busy: vec![0; n * n],
            trace: Trace::new(keep_trace),
            invariants: Vec::new(),
            violated: Vec::new(),
            logs: BTreeMap::new(),
            log_len: vec![0; n],
            inputs: BTreeMap::new(),
            violations: Vec::new(),
            alarms: Vec::new(),
            messages: BTreeMap::new(),
            restart: None,
            unrecovered: Vec::new(),
            outs: (0..n as u32)
                .map(|i| Outbox::new(i, n as u32, node_rng(seed, i)))
                .collect(),
            scratch: Vec::new(),
            digests: Digests::default(),
        };
        for node in 0..n as u32 {
            sim.schedule(0, Event::Start { node });
        }
        for c in sim.faults.crashes.clone() {
            sim.schedule(
                c.at_ms,
                Event::Crash {
                    node: c.node,
                    lose_unsynced: c.lose_unsynced,
                },
            );
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
        self.violated.push(false);
        self
    }

    pub fn with_boxed_invariant(mut self, inv: Box<dyn Invariant<I, O>>) -> Self {
        self.invariants.push(inv);
        self.violated.push(false);
        self
    }

    /// How a crashed node is rebuilt from its durable store on recovery.
    pub fn with_restart(
        mut self,
        restart: impl FnMut(NodeId, &Durable) -> Option<Node<M, I, O>> + 'static,
    ) -> Self {
        self.restart = Some(Box::new(restart));
        self
    }

    pub fn with_scheduler(mut self, s: impl Scheduler + 'static) -> Self {
        self.scheduler = Box::new(s);
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

    /// Keep every committed output in the report (default) or only counts (long sweeps).
    pub fn keep_logs(mut self, keep: bool) -> Self {
        self.keep_logs = keep;
        self
    }

    /// Submit `input` to `node` at `at_ms`.
    pub fn input(&mut self, at_ms: u64, node: NodeId, input: I) {
        self.schedule(at_ms, Event::Input { node, input });
    }

    pub fn trace(&self) -> &Trace {
        &self.trace
    }

    /// A node's durable store (tests inspect what was persisted).
    pub fn durable(&self, node: NodeId) -> Option<&Durable> {
        self.durable.get(node as usize)
    }

    pub(super) fn schedule(&mut self, at: u64, ev: Event<M, I>) {
        self.queue.push(at, ev);
    }

    /// Run until the queue is empty, `end_ms` is passed, the step cap is hit, or a violation
    /// stops the run.
    pub fn run_until(&mut self, end_ms: u64) -> SimReport<O> {
        let seed = self.seed;
        let run = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| self.run_loop(end_ms)));
        if let Err(panic) = run {
            eprintln!("simulation panicked at seed {seed}: replay with SIM_SEED={seed}");
            std::panic::resume_unwind(panic);
        }
        if !self.truncated && (self.violations.is_empty() || !self.stop_on_violation) {
            self.now = self.now.max(end_ms);
        }
        self.feed(|inv, ctx| inv.at_end(ctx));
        self.report()
    }

    fn run_loop(&mut self, end_ms: u64) {
        while let Some(at) = self.queue.peek_time() {
            if at > end_ms {
                break;
            }
            if self.steps >= self.max_steps {
                self.truncated = true;
                break;
            }
            let Some((at, ev)) = self.queue.pop() else {
                break;
            };
            self.now = at;
            self.steps += 1;
            self.step(ev);
            if self.stop_on_violation && !self.violations.is_empty() {
                break;
            }
        }
    }

    /// Feed every not-yet-violated invariant; record the first violation of each.
    pub(super) fn feed(
        &mut self,
        mut f: impl FnMut(&mut dyn Invariant<I, O>, &Ctx<'_, I>) -> Result<(), String>,
    ) {
        let ctx = Ctx {
            now: self.now,
            gst_ms: self.faults.gst_ms,
            honest: &self.honest,
            correct: &self.correct,
            inputs: &self.inputs,
            truncated: self.truncated,
        };
        for (i, inv) in self.invariants.iter_mut().enumerate() {
            if self.violated[i] {
                continue;
            }
            if let Err(detail) = f(inv.as_mut(), &ctx) {
                self.violated[i] = true;
                let invariant = inv.name().to_owned();
                self.trace.push(TraceEvent::Violation {
                    at: self.now,
                    invariant: invariant.clone(),
                });
                self.violations.push(Violation {
                    invariant,
                    at_ms: self.now,
                    seed: self.seed,
                    detail,
                });
            }
        }
    }

    fn report(&self) -> SimReport<O> {
        SimReport {
            seed: self.seed,
            trace_hash: self.trace.hash_hex(),
            end_ms: self.now,
            steps: self.steps,
            truncated: self.truncated,
            violations: self.violations.clone(),
            alarms: self.alarms.clone(),
            logs: self.logs.clone(),
            committed: (0..self.n as u32)
                .map(|i| (i, self.log_len[i as usize]))
                .collect(),
            messages: self.messages.clone(),
            unrecovered: self.unrecovered.clone(),
        }
    }
}
