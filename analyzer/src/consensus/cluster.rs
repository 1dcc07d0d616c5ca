//! The in-process cluster driver: one tokio task owns the `n` replicas of a [`HostedEngine`], the
//! in-memory network (a FIFO of sends, delivered in order) and the timer table, and serves the
//! HTTP handlers through a command channel. Metrics are published into a shared [`Stats`] after
//! every step, so `/metrics` never waits on the task.
//!
//! Over 400 lines: the task's loop, its step (the one place effects are carried out) and the
//! commands it serves share one private state and read best together.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use dwcp_core::signals::{EngineEvent, IntegrityKind};
use dwcp_engines::sim::protocol::{NodeId, Outbox, Protocol, TimerCmd, TimerId};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde_json::{json, Value};
use tokio::sync::{broadcast, mpsc, oneshot};

use super::handle::{ClusterHandle, Cmd, Committed, Stats, LATENCY_BOUNDS, MAX_PENDING};
use super::{Behaviour, HostedEngine, Mutator};

/// Log positions remembered for the cross-replica conflict check.
const CONFLICT_WINDOW: usize = 8_192;
/// Deliveries between two yields to the runtime.
const DELIVERIES_PER_TURN: usize = 256;
/// One forwarded signal per (kind, suspect) per this many ms.
const SIGNAL_EVERY_MS: u64 = 1_000;

struct Node<E: HostedEngine> {
    p: E::P,
    rng: ChaCha8Rng,
    behaviour: Behaviour,
    mutator: Option<Mutator<<E::P as Protocol>::Msg>>,
    timers: BTreeMap<TimerId, u64>,
    decided: u64,
}

type Delivery<M> = (NodeId, NodeId, Arc<M>);

struct Cluster<E: HostedEngine> {
    e: E,
    nodes: Vec<Node<E>>,
    queue: VecDeque<Delivery<<E::P as Protocol>::Msg>>,
    deadlines: BTreeSet<(u64, NodeId, TimerId)>,
    start: Instant,
    next_tx: u64,
    rr: u32,
    pending: BTreeMap<u64, (Instant, oneshot::Sender<Committed>)>,
    positions: BTreeMap<(u64, u64, u64), ([u8; 32], NodeId)>,
    view_changes_seen: BTreeSet<(u64, u64)>,
    batches: BTreeSet<(u64, u64)>,
    last_signal: BTreeMap<(&'static str, Option<u32>), u64>,
    events: broadcast::Sender<EngineEvent>,
    stats: Stats,
    shared: Arc<Mutex<Stats>>,
}

/// Start `engine`'s cluster on the current runtime.
pub fn spawn<E: HostedEngine>(
    mut engine: E,
    events: broadcast::Sender<EngineEvent>,
    tx_wait_ms: u64,
) -> ClusterHandle
where
    <E::P as Protocol>::Msg: core::marker::Send + Sync,
    <E::P as Protocol>::Input: core::marker::Send,
    <E::P as Protocol>::Output: core::marker::Send,
{
    let (tx, rx) = mpsc::channel(1024);
    let shared = Arc::new(Mutex::new(Stats {
        latency_buckets: vec![0; LATENCY_BOUNDS.len() + 1],
        ..Stats::default()
    }));
    let name = engine.name();
    let n = engine.n();
    let nodes = engine
        .replicas()
        .into_iter()
        .enumerate()
        .map(|(i, p)| Node {
            p,
            rng: ChaCha8Rng::seed_from_u64(rand::random::<u64>() ^ i as u64),
            behaviour: Behaviour::Honest,
            mutator: None,
            timers: BTreeMap::new(),
            decided: 0,
        })
        .collect();
    let c = Cluster {
        e: engine,
        nodes,
        queue: VecDeque::new(),
        deadlines: BTreeSet::new(),
        start: Instant::now(),
        next_tx: 1,
        rr: 0,
        pending: BTreeMap::new(),
        positions: BTreeMap::new(),
        view_changes_seen: BTreeSet::new(),
        batches: BTreeSet::new(),
        last_signal: BTreeMap::new(),
        events,
        stats: shared
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone(),
        shared: shared.clone(),
    };
    tokio::spawn(c.run(rx));
    ClusterHandle {
        name,
        n,
        tx_wait: Duration::from_millis(tx_wait_ms),
        cmds: tx,
        stats: shared,
    }
}

impl<E: HostedEngine> Cluster<E>
where
    <E::P as Protocol>::Msg: core::marker::Send + Sync,
    <E::P as Protocol>::Input: core::marker::Send,
    <E::P as Protocol>::Output: core::marker::Send,
{
    fn now(&self) -> u64 {
        u64::try_from(self.start.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    async fn run(mut self, mut rx: mpsc::Receiver<Cmd>) {
        let now = self.now();
        for i in 0..self.nodes.len() {
            self.step(i as NodeId, |p, o| p.on_start(now, o));
        }
        loop {
            self.fire_timers();
            let mut budget = DELIVERIES_PER_TURN;
            while budget > 0 {
                let Some((claimed, to, msg)) = self.queue.pop_front() else {
                    break;
                };
                budget -= 1;
                let now = self.now();
                self.step(to, |p, o| p.on_message(now, claimed, &msg, o));
            }
            self.publish();
            if !self.queue.is_empty() {
                while let Ok(cmd) = rx.try_recv() {
                    self.command(cmd);
                }
                tokio::task::yield_now().await;
                continue;
            }
            let wake = self.deadlines.first().map(|(at, _, _)| *at);
            let sleep = async {
                match wake {
                    Some(at) => {
                        let due = self.start + Duration::from_millis(at);
                        tokio::time::sleep_until(due.into()).await
                    }
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                cmd = rx.recv() => match cmd {
                    Some(cmd) => self.command(cmd),
                    None => return,
                },
                () = sleep => {}
            }
        }
    }

    fn fire_timers(&mut self) {
        let now = self.now();
        while let Some(&(at, node, id)) = self.deadlines.first() {
            if at > now {
                break;
            }
            self.deadlines.pop_first();
            if let Some(n) = self.nodes.get_mut(node as usize) {
                if n.timers.get(&id) == Some(&at) {
                    n.timers.remove(&id);
                    self.step(node, |p, o| p.on_timer(now, id, o));
                }
            }
        }
    }

    /// Run one step of replica `id` and carry out what it asked for.
    fn step(
        &mut self,
        id: NodeId,
        f: impl FnOnce(&mut E::P, &mut Outbox<<E::P as Protocol>::Msg>),
    ) {
        let n = self.nodes.len() as u32;
        let now = self.now();
        let Some(node) = self.nodes.get_mut(id as usize) else {
            return;
        };
        let rng = std::mem::replace(&mut node.rng, ChaCha8Rng::from_seed([0; 32]));
        let mut out = Outbox::new(id, n, rng);
        f(&mut node.p, &mut out);
        let honest = node.behaviour == Behaviour::Honest;
        let mut sends = std::mem::take(&mut out.sends);
        if let Some(m) = node.mutator.as_mut() {
            sends = sends
                .into_iter()
                .flat_map(|s| m(now, s, &mut out.rng))
                .collect();
        }
        node.rng = out.rng;
        for t in out.timers {
            match t {
                TimerCmd::Set { id: tid, at_ms } => {
                    if let Some(old) = node.timers.insert(tid, at_ms) {
                        self.deadlines.remove(&(old, id, tid));
                    }
                    self.deadlines.insert((at_ms, id, tid));
                }
                TimerCmd::Cancel { id: tid } => {
                    if let Some(old) = node.timers.remove(&tid) {
                        self.deadlines.remove(&(old, id, tid));
                    }
                }
            }
        }
        let outputs = node.p.drain_committed();
        node.decided += outputs.len() as u64;
        let extra = if honest {
            self.e.take_events(&mut node.p)
        } else {
            Vec::new()
        };
        for s in sends {
            *self
                .stats
                .messages
                .entry(self.e.msg_kind(&s.msg))
                .or_insert(0) += 1;
            if honest {
                if let Some(vc) = self.e.view_change(&s.msg) {
                    if self.view_changes_seen.insert(vc) {
                        self.stats.view_changes += 1;
                        if self.view_changes_seen.len() > CONFLICT_WINDOW {
                            self.view_changes_seen.pop_first();
                        }
                    }
                }
            }
            if s.to < n {
                self.queue.push_back((s.claimed_from, s.to, s.msg));
            }
        }
        if !honest {
            return; // a Byzantine replica's alarms and commits mean nothing
        }
        for a in out.alarms {
            *self.stats.byzantine.entry(a.kind.as_str()).or_insert(0) += 1;
            let key = (a.kind.as_str(), a.suspect);
            let due = self
                .last_signal
                .get(&key)
                .is_none_or(|t| now >= t + SIGNAL_EVERY_MS);
            if due {
                self.last_signal.insert(key, now);
                let mut ev = a.to_event(self.e.name(), now);
                if let EngineEvent::ByzantineAttackDetected { detail, .. } = &mut ev {
                    *detail = format!("replica {id}: {detail}");
                }
                let _ = self.events.send(ev);
            }
        }
        for ev in extra {
            self.stats.integrity += 1;
            let _ = self.events.send(ev);
        }
        for o in outputs {
            self.on_commit(id, &o, now);
        }
    }

    fn on_commit(&mut self, id: NodeId, o: &<E::P as Protocol>::Output, now: u64) {
        let c = self.e.commit_ref(o);
        match self.positions.get(&c.position) {
            Some((d, by)) if *d != c.digest => {
                self.stats.integrity += 1;
                let _ = self.events.send(EngineEvent::DataIntegrityViolation {
                    engine: self.e.name().to_owned(),
                    at_ms: now,
                    violation: IntegrityKind::ConflictingCommit,
                    detail: format!(
                        "replicas {by} and {id} committed different outputs at {:?}",
                        c.position
                    ),
                });
            }
            Some(_) => {}
            None => {
                self.positions.insert(c.position, (c.digest, id));
                if self.positions.len() > CONFLICT_WINDOW {
                    self.positions.pop_first();
                }
                if self.batches.insert(c.batch) {
                    self.stats.decisions += 1;
                    if self.batches.len() > CONFLICT_WINDOW {
                        self.batches.pop_first();
                    }
                }
            }
        }
        let pending = c.tx.and_then(|t| self.pending.remove(&t).map(|p| (t, p)));
        if let Some((tx, (at, reply))) = pending {
            let secs = at.elapsed().as_secs_f64();
            let b = LATENCY_BOUNDS
                .iter()
                .position(|b| secs <= *b)
                .unwrap_or(LATENCY_BOUNDS.len());
            if let Some(slot) = self.stats.latency_buckets.get_mut(b) {
                *slot += 1;
            }
            self.stats.latency_sum_s += secs;
            self.stats.latency_count += 1;
            self.stats.txs_committed += 1;
            let (height, _) = self
                .e
                .replica_status(&self.nodes[id as usize].p, self.nodes[id as usize].decided);
            let _ = reply.send(Committed {
                id: tx,
                replica: id,
                height,
                latency_ms: secs * 1e3,
            });
        }
    }

    fn honest_ids(&self) -> Vec<NodeId> {
        (0..self.nodes.len() as u32)
            .filter(|i| self.nodes[*i as usize].behaviour == Behaviour::Honest)
            .collect()
    }

    fn command(&mut self, cmd: Cmd) {
        match cmd {
            Cmd::Tx {
                payload,
                accepted,
                committed,
            } => {
                if self.pending.len() >= MAX_PENDING {
                    let _ = accepted.send(Err(format!("{MAX_PENDING} transactions pending")));
                    return;
                }
                let honest = self.honest_ids();
                let to = honest
                    .get(self.rr as usize % honest.len().max(1))
                    .copied()
                    .unwrap_or(0);
                self.rr = self.rr.wrapping_add(1);
                let tx = self.next_tx;
                self.next_tx += 1;
                self.pending.insert(tx, (Instant::now(), committed));
                self.stats.txs_submitted += 1;
                let _ = accepted.send(Ok(tx));
                let now = self.now();
                for (node, input) in self.e.submit(tx, &payload, to) {
                    self.step(node, |p, o| p.on_input(now, input, o));
                }
            }
            Cmd::Status(reply) => {
                let _ = reply.send(self.status());
            }
            Cmd::Fault {
                replica,
                behaviour,
                reply,
            } => {
                let _ = reply.send(self.fault(replica, behaviour));
            }
        }
        self.publish();
    }

    fn fault(&mut self, replica: NodeId, b: Behaviour) -> Result<Value, (u16, String)> {
        let n = self.nodes.len() as u32;
        if replica >= n {
            return Err((400, format!("replica: must be below n = {n}")));
        }
        let faulty = (0..n)
            .filter(|i| *i != replica && self.nodes[*i as usize].behaviour != Behaviour::Honest)
            .count() as u32;
        if b != Behaviour::Honest && faulty + 1 > self.e.f() {
            return Err((
                409,
                format!("at most f = {} Byzantine replicas at once", self.e.f()),
            ));
        }
        let mutator = match b {
            Behaviour::Honest => None,
            b => Some(
                self.e
                    .mutator(replica, b)
                    .map_err(|e| (422, format!("behaviour: {e}")))?,
            ),
        };
        let node = &mut self.nodes[replica as usize];
        node.behaviour = b;
        node.mutator = mutator;
        self.stats.faulty = (n - self.honest_ids().len() as u32).into();
        tracing::warn!(
            engine = self.e.name(),
            replica,
            behaviour = b.as_str(),
            "consensus fault injected"
        );
        Ok(json!({"engine": self.e.name(), "replica": replica, "behaviour": b}))
    }

    fn status(&self) -> Value {
        let honest = self.honest_ids();
        let replicas: Vec<Value> = self
            .nodes
            .iter()
            .enumerate()
            .map(|(i, nd)| {
                let (height, view) = self.e.replica_status(&nd.p, nd.decided);
                json!({"id": i, "height": height, "view": view, "behaviour": nd.behaviour})
            })
            .collect();
        let extras = honest
            .first()
            .map(|i| self.e.extras(&self.nodes[*i as usize].p))
            .unwrap_or(Value::Null);
        let s = &self.stats;
        json!({
            "engine": self.e.name(),
            "n": self.nodes.len(),
            "f": self.e.f(),
            "members": (0..self.nodes.len()).collect::<Vec<_>>(),
            "view": s.view,
            "committed_height": s.committed_height,
            "decisions": s.decisions,
            "view_changes": s.view_changes,
            "messages": s.messages,
            "byzantine_detections": s.byzantine,
            "integrity_violations": s.integrity,
            "txs": {"submitted": s.txs_submitted, "committed": s.txs_committed, "pending": self.pending.len()},
            "commit_latency_ms_mean": if s.latency_count > 0 { s.latency_sum_s * 1e3 / s.latency_count as f64 } else { 0.0 },
            "replicas": replicas,
            "engine_state": extras,
        })
    }

    fn publish(&mut self) {
        let (mut h, mut v) = (0, 0);
        for nd in self
            .nodes
            .iter()
            .filter(|nd| nd.behaviour == Behaviour::Honest)
        {
            let (height, view) = self.e.replica_status(&nd.p, nd.decided);
            h = h.max(height);
            v = v.max(view);
        }
        self.stats.committed_height = h;
        self.stats.view = v;
        *self
            .shared
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = self.stats.clone();
    }
}
