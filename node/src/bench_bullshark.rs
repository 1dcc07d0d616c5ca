//! The Bullshark benchmark (`make bench-bullshark`, `dwcp-bench-bullshark`): ordering only
//! (the pure commit rule over an in-memory DAG: certificates/s), and end to end — 4 validators
//! with ed25519 signatures and 512-byte transactions over loopback TCP, in one process and as 4
//! processes — with a timing breakdown of the state machine's work by message kind and the cost
//! of its cryptographic primitives. Every figure is measured in the run that prints it.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use dwcp_engines::bullshark::dag::Dag;
use dwcp_engines::bullshark::order::Orderer;
use dwcp_engines::bullshark::{BullsharkConfig, Certificate, Header, Ordered, Submit, Validator};
use dwcp_engines::sim::protocol::{NodeId, Outbox, Protocol, TimerId, Wire};

use crate::engine::TxEngine;

impl TxEngine for Validator {
    fn tx(id: u64, payload: Vec<u8>) -> Submit {
        Submit { id, payload }
    }
    /// A decision is a committed leader (its round).
    fn committed(o: &Ordered) -> Option<((NodeId, u64), (u64, u64))> {
        match o {
            Ordered::Tx {
                origin,
                id,
                leader_round,
                ..
            } => Some(((*origin, *id), (*leader_round, 0))),
            Ordered::Cert { .. } => None,
        }
    }
}

/// Validator parameters for a loopback network under load.
pub fn bench_config(n: u32) -> BullsharkConfig {
    let mut c = BullsharkConfig::new(n, (n - 1) / 3);
    c.batch_bytes = 256 * 1024;
    c.batch_delay_ms = 10;
    c.max_header_delay_ms = 20;
    c.min_header_delay_ms = std::env::var("BULL_MIN_HEADER_MS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10);
    c.leader_timeout_ms = 200;
    c.retransmit_ms = 500;
    c.gc_depth = 50;
    c
}

/// Ordering only: `rounds` rounds of `n` vertices, each referencing every vertex of the round
/// before (no signatures, no network, no batches), inserted into a [`Dag`] with the commit rule
/// and flattening after every insertion and garbage collection on. Returns (ordered, seconds).
pub fn ordering_only(n: u32, rounds: u64) -> (u64, f64) {
    let cfg = BullsharkConfig::new(n, (n - 1) / 3);
    let mut certs = Vec::with_capacity((rounds * u64::from(n)) as usize);
    let mut prev: Vec<[u8; 32]> = Vec::new();
    for r in 0..rounds {
        let mut this = Vec::new();
        for a in 0..n {
            let h = Header {
                author: a,
                round: r,
                batches: vec![[a as u8; 32]],
                parents: prev.clone(),
                weak: Vec::new(),
                sig: [0; 64],
            };
            let c = Arc::new(Certificate::new(h, Vec::new()));
            this.push(c.digest);
            certs.push(c);
        }
        prev = this;
    }
    let start = Instant::now();
    let (mut dag, mut o) = (Dag::new(), Orderer::new(&cfg));
    let mut ordered = 0u64;
    for c in certs {
        let r = c.round();
        if dag.insert(c).is_err() {
            break;
        }
        for l in o.try_order(&dag, r) {
            ordered += l.certs.len() as u64;
        }
        dag.gc(o.horizon());
    }
    (ordered, start.elapsed().as_secs_f64())
}

/// Time spent inside the state machine, by what it was handling.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct Breakdown {
    /// kind → (calls, seconds)
    pub by_kind: BTreeMap<String, (u64, f64)>,
    /// The validators' last status snapshots.
    pub statuses: Vec<serde_json::Value>,
}

impl Breakdown {
    pub fn total_s(&self) -> f64 {
        self.by_kind.values().map(|(_, s)| s).sum()
    }
    pub fn merge(&mut self, o: &Breakdown) {
        for (k, (c, s)) in &o.by_kind {
            let e = self.by_kind.entry(k.clone()).or_default();
            e.0 += c;
            e.1 += s;
        }
        self.statuses.extend(o.statuses.iter().cloned());
    }
}

/// CPU seconds (user + system) this process used so far, from `/proc/self/stat` (Linux; the
/// clock tick is taken as 100 Hz). `None` elsewhere.
pub fn cpu_seconds() -> Option<f64> {
    let s = std::fs::read_to_string("/proc/self/stat").ok()?;
    let rest = s.rsplit_once(')')?.1;
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks: u64 = f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?;
    Some(ticks as f64 / 100.0)
}

/// A protocol wrapped with a stopwatch around every step (the host's view of where the event
/// loop's time goes; the rest is transport, codec and the load driver).
pub struct Timed<P> {
    pub inner: P,
    pub times: Arc<Mutex<Breakdown>>,
    /// A status snapshot of the inner protocol, taken every 64 steps.
    pub status: fn(&P) -> serde_json::Value,
    steps: u64,
}

impl<P> Timed<P> {
    pub fn new(
        inner: P,
        times: Arc<Mutex<Breakdown>>,
        status: fn(&P) -> serde_json::Value,
    ) -> Self {
        Self {
            inner,
            times,
            status,
            steps: 0,
        }
    }

    fn record(&mut self, kind: &str, t: Instant) {
        let dt = t.elapsed().as_secs_f64();
        self.steps += 1;
        let snap = self
            .steps
            .is_multiple_of(64)
            .then(|| (self.status)(&self.inner));
        if let Ok(mut b) = self.times.lock() {
            let e = b.by_kind.entry(kind.to_owned()).or_default();
            e.0 += 1;
            e.1 += dt;
            if let Some(v) = snap {
                b.statuses = vec![v];
            }
        }
    }
}

/// A validator's status as JSON (for [`Timed`]).
pub fn validator_status(v: &Validator) -> serde_json::Value {
    serde_json::to_value(v.status()).unwrap_or_default()
}

impl<P: Protocol> Protocol for Timed<P> {
    type Msg = P::Msg;
    type Input = P::Input;
    type Output = P::Output;
    fn on_start(&mut self, now: u64, out: &mut Outbox<P::Msg>) {
        self.inner.on_start(now, out)
    }
    fn on_message(&mut self, now: u64, from: NodeId, msg: &P::Msg, out: &mut Outbox<P::Msg>) {
        let t = Instant::now();
        self.inner.on_message(now, from, msg, out);
        self.record(msg.kind(), t);
    }
    fn on_timer(&mut self, now: u64, id: TimerId, out: &mut Outbox<P::Msg>) {
        let t = Instant::now();
        self.inner.on_timer(now, id, out);
        self.record("timer", t);
    }
    fn on_input(&mut self, now: u64, input: P::Input, out: &mut Outbox<P::Msg>) {
        let t = Instant::now();
        self.inner.on_input(now, input, out);
        self.record("input (tx)", t);
    }
    fn drain_committed(&mut self) -> Vec<P::Output> {
        self.inner.drain_committed()
    }
}

impl<P> TxEngine for Timed<P>
where
    P: TxEngine,
    P::Msg: dwcp_engines::sim::protocol::Decode + Send + Sync + 'static,
    P::Input: Send + 'static,
    P::Output: Send + 'static,
{
    fn tx(id: u64, payload: Vec<u8>) -> P::Input {
        P::tx(id, payload)
    }
    fn committed(o: &P::Output) -> Option<((NodeId, u64), (u64, u64))> {
        P::committed(o)
    }
}

/// Per-operation cost of the primitives the validator uses, measured here (µs).
pub fn primitive_costs() -> Vec<(&'static str, f64)> {
    use dwcp_engines::sim::crypto::{Keyring, Scheme};
    use rand::SeedableRng;
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(7);
    let ring = Keyring::generate(4, Scheme::Ed25519, &mut rng);
    let keys = ring.public();
    let signers: Vec<_> = (0..4).filter_map(|i| ring.signer(i)).collect();
    let msg = [7u8; 32];
    let sigs: Vec<[u8; 64]> = signers.iter().map(|s| s.sign(&msg)).collect();
    let time = |k: u32, f: &mut dyn FnMut()| {
        let t = Instant::now();
        for _ in 0..k {
            f();
        }
        t.elapsed().as_secs_f64() * 1e6 / f64::from(k)
    };
    let mut ok = true;
    let sign = time(300, &mut || {
        std::hint::black_box(signers[0].sign(&msg));
    });
    let verify = time(300, &mut || ok &= keys.verify(0, &msg, &sigs[0]));
    let items: Vec<(NodeId, &[u8], &[u8; 64])> = (0..3)
        .map(|i| (i as NodeId, msg.as_slice(), &sigs[i]))
        .collect();
    let batch3 = time(300, &mut || ok &= keys.verify_all(&items));
    let batch = dwcp_engines::bullshark::Batch {
        author: 0,
        txs: (0..512)
            .map(|i| dwcp_engines::bullshark::Tx {
                id: i,
                payload: Arc::from(crate::load::payload(0, i, 512)),
            })
            .collect(),
    };
    let hash = time(50, &mut || {
        std::hint::black_box(batch.digest());
    }) / 512.0;
    let msg = dwcp_engines::bullshark::BullsharkMsg::Batch(Arc::new(batch));
    let enc = time(50, &mut || {
        std::hint::black_box(dwcp_engines::sim::wire::encode(&msg));
    }) / 512.0;
    let bytes = dwcp_engines::sim::wire::encode(&msg);
    let dec = time(50, &mut || {
        use dwcp_engines::sim::protocol::Decode;
        let m = dwcp_engines::bullshark::BullsharkMsg::decode(&bytes);
        ok &= m.is_ok();
    }) / 512.0;
    if !ok {
        return Vec::new();
    }
    vec![
        ("ed25519 sign (header, vote)", sign),
        ("ed25519 verify (header, vote)", verify),
        ("ed25519 batch verify of 3 (certificate)", batch3),
        ("SHA-256 batch digest, per 512 B tx", hash),
        ("encode batch message, per tx", enc),
        ("decode batch message, per tx", dec),
    ]
}

/// How long to wait for a run.
pub const TIMEOUT: Duration = Duration::from_secs(120);
