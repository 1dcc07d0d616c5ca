//! The tokio transport: one event loop per replica that owns the sans-IO protocol, one writer
//! task per peer (dial, authenticate, reconnect with backoff), one reader task per accepted
//! connection.
//!
//! * **Frames.** Length-prefixed (`tokio_util::codec::LengthDelimitedCodec`, 4-byte big-endian
//!   length, at most [`MAX_FRAME`]); a frame is one message in its canonical [`Wire`] encoding.
//! * **Authentication.** Each direction of a pair has its own connection, opened by the sender.
//!   The acceptor sends a fresh 32-byte challenge; the dialer answers with its id and an ed25519
//!   signature over `("dwcp-node-hs", challenge, acceptor id, dialer id)`, checked against the
//!   configured key of that id. Every later frame on that connection is attributed to the
//!   authenticated id (the network `from` a protocol sees), whatever it claims. No encryption:
//!   protocol messages carry their own signatures.
//! * **Back-pressure.** Readers push into a bounded inbound queue and wait when it is full, so a
//!   slow replica slows its senders through TCP flow control. Inputs (`Handle::submit`) wait on a
//!   bounded queue too. A peer's outbound queue is bounded; when it is full (a dead or slow peer)
//!   the frame is dropped and counted — the replica never blocks on one peer, and the protocols
//!   retransmit.
//! * **Timers.** `Outbox::set_timer` / `cancel_timer` on a map of deadlines, in milliseconds
//!   since the runtime started (the protocol's `now`).
//!
//! Not durable: `Outbox::persist` writes are not kept (a restarted process starts fresh).

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use dwcp_engines::sim::protocol::{Alarm, Decode, NodeId, Outbox, Protocol, TimerCmd, Wire};
use ed25519_dalek::{Signature, Signer, SigningKey, Verifier, VerifyingKey};
use futures_util::{SinkExt, StreamExt};
use rand::{RngCore, SeedableRng};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;
use tokio_util::codec::{Framed, LengthDelimitedCodec};

/// Largest frame accepted (bounds allocation on hostile input).
pub const MAX_FRAME: usize = 32 << 20;

/// A peer as configured: id, address, ed25519 public key.
#[derive(Debug, Clone)]
pub struct Peer {
    pub id: NodeId,
    pub addr: SocketAddr,
    pub public_key: [u8; 32],
}

/// Transport parameters of one replica.
#[derive(Debug, Clone)]
pub struct TransportConfig {
    pub id: NodeId,
    /// Every node (this one included), by id.
    pub peers: Vec<Peer>,
    /// This node's ed25519 secret key (the handshake key; the protocol may use the same).
    pub secret: [u8; 32],
    /// Frames queued per peer before new ones are dropped.
    pub peer_queue: usize,
    /// Inbound messages queued before readers wait.
    pub inbound_queue: usize,
    /// Inputs queued before `submit` waits.
    pub input_queue: usize,
    pub backoff_min: Duration,
    pub backoff_max: Duration,
}

impl TransportConfig {
    pub fn new(id: NodeId, peers: Vec<Peer>, secret: [u8; 32]) -> Self {
        Self {
            id,
            peers,
            secret,
            peer_queue: 4096,
            inbound_queue: 4096,
            input_queue: 4096,
            backoff_min: Duration::from_millis(20),
            backoff_max: Duration::from_secs(2),
        }
    }
}

/// Counters of one replica's transport.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct Stats {
    /// Messages and bytes (frame payloads) sent to other nodes, by kind.
    pub sent: BTreeMap<&'static str, (u64, u64)>,
    pub received: u64,
    /// Frames dropped because a peer's queue was full.
    pub dropped_full: u64,
    /// Frames that did not decode (the connection is closed).
    pub decode_errors: u64,
    /// Handshakes refused (unknown id or bad signature).
    pub handshake_failures: u64,
    /// Successful (re)connections made by the writers.
    pub connects: u64,
}

impl Stats {
    pub fn messages(&self) -> u64 {
        self.sent.values().map(|(c, _)| c).sum()
    }
    pub fn bytes(&self) -> u64 {
        self.sent.values().map(|(_, b)| b).sum()
    }
}

/// The running replica, as its host sees it.
pub struct Handle<P: Protocol> {
    inputs: mpsc::Sender<P::Input>,
    /// Committed outputs, in commit order.
    pub outputs: mpsc::UnboundedReceiver<P::Output>,
    /// What the replica noticed about its peers.
    pub alarms: mpsc::UnboundedReceiver<Alarm>,
    pub stats: Arc<Mutex<Stats>>,
    stop: watch::Sender<bool>,
    pub local_addr: SocketAddr,
}

impl<P: Protocol> Handle<P> {
    /// Submit an input; waits while the input queue is full.
    pub async fn submit(&self, input: P::Input) -> anyhow::Result<()> {
        self.inputs
            .send(input)
            .await
            .map_err(|_| anyhow::anyhow!("replica stopped"))
    }

    pub fn stats(&self) -> Stats {
        self.stats.lock().map(|s| s.clone()).unwrap_or_default()
    }

    /// Stop the event loop, the writers and the listener.
    pub fn stop(&self) {
        let _ = self.stop.send(true);
    }
}

impl<P: Protocol> Drop for Handle<P> {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
    }
}

fn handshake_statement(challenge: &[u8; 32], acceptor: NodeId, dialer: NodeId) -> Vec<u8> {
    let mut v = b"dwcp-node-hs".to_vec();
    v.extend_from_slice(challenge);
    v.extend_from_slice(&acceptor.to_le_bytes());
    v.extend_from_slice(&dialer.to_le_bytes());
    v
}

fn codec() -> LengthDelimitedCodec {
    LengthDelimitedCodec::builder()
        .max_frame_length(MAX_FRAME)
        .new_codec()
}

/// Start a replica on an already bound listener.
pub fn spawn<P>(cfg: TransportConfig, listener: TcpListener, proto: P) -> anyhow::Result<Handle<P>>
where
    P: Protocol + Send + 'static,
    P::Msg: Decode + Send + Sync + 'static,
    P::Input: Send + 'static,
    P::Output: Send + 'static,
{
    let local_addr = listener.local_addr()?;
    let keys: BTreeMap<NodeId, VerifyingKey> = cfg
        .peers
        .iter()
        .map(|p| VerifyingKey::from_bytes(&p.public_key).map(|k| (p.id, k)))
        .collect::<Result<_, _>>()?;
    let signing = SigningKey::from_bytes(&cfg.secret);
    let stats = Arc::new(Mutex::new(Stats::default()));
    let (stop_tx, stop_rx) = watch::channel(false);
    let (in_tx, in_rx) = mpsc::channel::<(NodeId, P::Msg)>(cfg.inbound_queue);
    let (input_tx, input_rx) = mpsc::channel::<P::Input>(cfg.input_queue);
    let (out_tx, out_rx) = mpsc::unbounded_channel();
    let (alarm_tx, alarm_rx) = mpsc::unbounded_channel();

    // Acceptor.
    tokio::spawn(accept_loop::<P::Msg>(
        listener,
        cfg.id,
        keys,
        in_tx,
        Arc::clone(&stats),
        stop_rx.clone(),
    ));
    // Writers.
    let mut peer_tx = BTreeMap::new();
    for p in cfg.peers.iter().filter(|p| p.id != cfg.id) {
        let (tx, rx) = mpsc::channel::<Bytes>(cfg.peer_queue);
        peer_tx.insert(p.id, tx);
        tokio::spawn(writer(
            p.clone(),
            cfg.id,
            signing.clone(),
            rx,
            cfg.backoff_min,
            cfg.backoff_max,
            Arc::clone(&stats),
            stop_rx.clone(),
        ));
    }
    let n = cfg.peers.len() as u32;
    tokio::spawn(event_loop(
        proto,
        cfg.id,
        n,
        peer_tx,
        in_rx,
        input_rx,
        out_tx,
        alarm_tx,
        Arc::clone(&stats),
        stop_rx,
    ));
    Ok(Handle {
        inputs: input_tx,
        outputs: out_rx,
        alarms: alarm_rx,
        stats,
        stop: stop_tx,
        local_addr,
    })
}

async fn accept_loop<M: Decode + Send + 'static>(
    listener: TcpListener,
    me: NodeId,
    keys: BTreeMap<NodeId, VerifyingKey>,
    inbound: mpsc::Sender<(NodeId, M)>,
    stats: Arc<Mutex<Stats>>,
    mut stop: watch::Receiver<bool>,
) {
    let keys = Arc::new(keys);
    loop {
        let accepted = tokio::select! {
            a = listener.accept() => a,
            _ = stop.changed() => return,
        };
        let Ok((stream, _)) = accepted else {
            continue;
        };
        let _ = stream.set_nodelay(true);
        tokio::spawn(reader(
            stream,
            me,
            Arc::clone(&keys),
            inbound.clone(),
            Arc::clone(&stats),
            stop.clone(),
        ));
    }
}

fn bump(stats: &Mutex<Stats>, f: impl FnOnce(&mut Stats)) {
    if let Ok(mut s) = stats.lock() {
        f(&mut s);
    }
}

async fn reader<M: Decode + Send + 'static>(
    stream: TcpStream,
    me: NodeId,
    keys: Arc<BTreeMap<NodeId, VerifyingKey>>,
    inbound: mpsc::Sender<(NodeId, M)>,
    stats: Arc<Mutex<Stats>>,
    mut stop: watch::Receiver<bool>,
) {
    let mut framed = Framed::new(stream, codec());
    let mut challenge = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut challenge);
    if framed
        .send(Bytes::copy_from_slice(&challenge))
        .await
        .is_err()
    {
        return;
    }
    let hello = tokio::time::timeout(Duration::from_secs(5), framed.next()).await;
    let Ok(Some(Ok(hello))) = hello else {
        return;
    };
    let peer = (hello.len() == 4 + 64)
        .then(|| {
            let mut id = [0u8; 4];
            id.copy_from_slice(&hello[..4]);
            let id = u32::from_le_bytes(id);
            let mut sig = [0u8; 64];
            sig.copy_from_slice(&hello[4..]);
            let ok = keys.get(&id).is_some_and(|k| {
                k.verify(
                    &handshake_statement(&challenge, me, id),
                    &Signature::from_bytes(&sig),
                )
                .is_ok()
            });
            (ok && id != me).then_some(id)
        })
        .flatten();
    let Some(peer) = peer else {
        bump(&stats, |s| s.handshake_failures += 1);
        return;
    };
    loop {
        let frame = tokio::select! {
            f = framed.next() => f,
            _ = stop.changed() => return,
        };
        let Some(Ok(frame)) = frame else {
            return;
        };
        match M::decode(&frame) {
            Ok(m) => {
                if inbound.send((peer, m)).await.is_err() {
                    return;
                }
            }
            Err(_) => {
                bump(&stats, |s| s.decode_errors += 1);
                return;
            }
        }
    }
}

#[allow(clippy::too_many_arguments)]
async fn writer(
    peer: Peer,
    me: NodeId,
    key: SigningKey,
    mut rx: mpsc::Receiver<Bytes>,
    backoff_min: Duration,
    backoff_max: Duration,
    stats: Arc<Mutex<Stats>>,
    mut stop: watch::Receiver<bool>,
) {
    let mut backoff = backoff_min;
    // Frames taken from the queue and not yet known written (kept across a reconnect: a write
    // that fails mid-batch resends the whole batch; the protocols ignore duplicates).
    let mut carry: Vec<Bytes> = Vec::new();
    loop {
        if *stop.borrow() {
            return;
        }
        let conn = async {
            let stream = TcpStream::connect(peer.addr).await?;
            stream.set_nodelay(true)?;
            let mut framed = Framed::new(stream, codec());
            let challenge = match framed.next().await {
                Some(Ok(c)) if c.len() == 32 => c,
                _ => anyhow::bail!("no challenge"),
            };
            let mut ch = [0u8; 32];
            ch.copy_from_slice(&challenge);
            let sig = key.sign(&handshake_statement(&ch, peer.id, me));
            let mut hello = me.to_le_bytes().to_vec();
            hello.extend_from_slice(&sig.to_bytes());
            framed.send(Bytes::from(hello)).await?;
            anyhow::Ok(framed)
        };
        let framed = tokio::select! {
            c = tokio::time::timeout(Duration::from_secs(5), conn) => c,
            _ = stop.changed() => return,
        };
        let mut framed = match framed {
            Ok(Ok(f)) => f,
            _ => {
                tokio::select! {
                    _ = tokio::time::sleep(backoff) => {}
                    _ = stop.changed() => return,
                }
                backoff = (backoff * 2).min(backoff_max);
                continue;
            }
        };
        backoff = backoff_min;
        bump(&stats, |s| s.connects += 1);
        loop {
            if carry.is_empty() {
                let next = tokio::select! {
                    f = rx.recv() => f,
                    _ = stop.changed() => return,
                };
                let Some(f) = next else {
                    return;
                };
                carry.push(f);
            }
            // Feed what is queued, then flush once: many frames per write.
            while carry.len() < 256 {
                match rx.try_recv() {
                    Ok(f) => carry.push(f),
                    Err(_) => break,
                }
            }
            let mut ok = true;
            for f in &carry {
                if framed.feed(f.clone()).await.is_err() {
                    ok = false;
                    break;
                }
            }
            if !ok || SinkExt::<Bytes>::flush(&mut framed).await.is_err() {
                break; // reconnect, `carry` is sent again
            }
            carry.clear();
        }
    }
}

/// Pending timers: id → deadline, and the deadlines in order.
#[derive(Default)]
struct Timers {
    by_id: BTreeMap<u64, u64>,
    order: BTreeSet<(u64, u64)>,
}

impl Timers {
    fn apply(&mut self, cmd: TimerCmd) {
        match cmd {
            TimerCmd::Set { id, at_ms } => {
                if let Some(old) = self.by_id.insert(id, at_ms) {
                    self.order.remove(&(old, id));
                }
                self.order.insert((at_ms, id));
            }
            TimerCmd::Cancel { id } => {
                if let Some(old) = self.by_id.remove(&id) {
                    self.order.remove(&(old, id));
                }
            }
        }
    }

    fn next(&self) -> Option<u64> {
        self.order.first().map(|(t, _)| *t)
    }

    fn pop_due(&mut self, now: u64) -> Option<u64> {
        let (t, id) = *self.order.first()?;
        if t > now {
            return None;
        }
        self.order.remove(&(t, id));
        self.by_id.remove(&id);
        Some(id)
    }
}

#[allow(clippy::too_many_arguments)]
async fn event_loop<P>(
    mut proto: P,
    me: NodeId,
    n: u32,
    peers: BTreeMap<NodeId, mpsc::Sender<Bytes>>,
    mut inbound: mpsc::Receiver<(NodeId, P::Msg)>,
    mut inputs: mpsc::Receiver<P::Input>,
    outputs: mpsc::UnboundedSender<P::Output>,
    alarms: mpsc::UnboundedSender<Alarm>,
    stats: Arc<Mutex<Stats>>,
    mut stop: watch::Receiver<bool>,
) where
    P: Protocol,
{
    let start = Instant::now();
    let now_ms = || start.elapsed().as_millis() as u64;
    let mut rng = rand_chacha_seed(me);
    let mut timers = Timers::default();
    let mut local: std::collections::VecDeque<Arc<P::Msg>> = Default::default();
    let mut out = Outbox::new(me, n, std::mem::replace(&mut rng, rand_chacha_seed(me)));
    proto.on_start(now_ms(), &mut out);
    let mut inputs_open = true;
    loop {
        // Carry out the last step's effects.
        effects(
            &mut out,
            me,
            &peers,
            &mut timers,
            &mut local,
            &alarms,
            &stats,
        );
        for o in proto.drain_committed() {
            let _ = outputs.send(o);
        }
        if let Some(m) = local.pop_front() {
            proto.on_message(now_ms(), me, &m, &mut out);
            continue;
        }
        let now = now_ms();
        if let Some(id) = timers.pop_due(now) {
            proto.on_timer(now, id, &mut out);
            continue;
        }
        let deadline = timers
            .next()
            .map(|t| start + Duration::from_millis(t))
            .unwrap_or_else(|| Instant::now() + Duration::from_secs(3600));
        tokio::select! {
            biased;
            _ = stop.changed() => return,
            m = inbound.recv() => {
                let Some((from, m)) = m else { return };
                bump(&stats, |s| s.received += 1);
                proto.on_message(now_ms(), from, &m, &mut out);
            }
            i = inputs.recv(), if inputs_open => {
                match i {
                    Some(i) => proto.on_input(now_ms(), i, &mut out),
                    None => inputs_open = false,
                }
            }
            _ = tokio::time::sleep_until(deadline) => {}
        }
    }
}

fn rand_chacha_seed(me: NodeId) -> rand_chacha::ChaCha8Rng {
    rand_chacha::ChaCha8Rng::seed_from_u64(0x0d0e_0000 ^ u64::from(me))
}

fn effects<M: Wire>(
    out: &mut Outbox<M>,
    me: NodeId,
    peers: &BTreeMap<NodeId, mpsc::Sender<Bytes>>,
    timers: &mut Timers,
    local: &mut std::collections::VecDeque<Arc<M>>,
    alarms: &mpsc::UnboundedSender<Alarm>,
    stats: &Mutex<Stats>,
) {
    let mut last: Option<(*const M, Bytes)> = None;
    let mut sent: Vec<(&'static str, u64)> = Vec::new();
    let mut dropped = 0;
    for s in out.sends.drain(..) {
        if s.to == me {
            local.push_back(s.msg);
            continue;
        }
        let Some(tx) = peers.get(&s.to) else {
            continue;
        };
        let ptr = Arc::as_ptr(&s.msg);
        let bytes = match &last {
            Some((p, b)) if *p == ptr => b.clone(),
            _ => {
                let b = Bytes::from(dwcp_engines::sim::wire::encode(&*s.msg));
                last = Some((ptr, b.clone()));
                b
            }
        };
        sent.push((s.msg.kind(), bytes.len() as u64));
        if tx.try_send(bytes).is_err() {
            dropped += 1;
        }
    }
    for t in out.timers.drain(..) {
        timers.apply(t);
    }
    for a in out.alarms.drain(..) {
        let _ = alarms.send(a);
    }
    out.writes.clear();
    if !sent.is_empty() || dropped > 0 {
        bump(stats, |st| {
            for (k, b) in sent {
                let e = st.sent.entry(k).or_default();
                e.0 += 1;
                e.1 += b;
            }
            st.dropped_full += dropped;
        });
    }
}
