//! The consensus benchmark (`make bench-consensus`, `dwcp-bench-consensus`): PBFT and T-PBFT over
//! real loopback TCP with real ed25519 signatures and 512-byte transactions, in one process
//! (`n` runtimes) and as `n` `dwcp-node` processes. Every figure is measured in the run that
//! prints it.

use std::collections::BTreeMap;
use std::time::Duration;

use dwcp_engines::pbft::Replica;
use dwcp_engines::tpbft::TpbftNode;
use serde::Serialize;

use crate::cluster;
use crate::engine::{pbft_config, tpbft_config, TxEngine};
use crate::load::{self, quantile, LoadResult};
use crate::transport::Stats;

/// One engine configuration to measure.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Setup {
    Pbft { n: u32 },
    Tpbft { n: u32, c: u32 },
}

impl Setup {
    pub fn n(&self) -> u32 {
        match self {
            Self::Pbft { n } | Self::Tpbft { n, .. } => *n,
        }
    }
    pub fn label(&self) -> String {
        match self {
            Self::Pbft { n } => format!("PBFT n={n}"),
            Self::Tpbft { n, c } => format!("T-PBFT n={n} c={c}"),
        }
    }
}

/// Load parameters.
#[derive(Debug, Clone, Copy)]
pub struct Load {
    pub total_txs: u64,
    pub tx_size: usize,
    /// Outstanding own transactions per node.
    pub window: usize,
    pub batch_max: usize,
    /// Most own transactions per engine input ([`crate::txgroup`]; 1 = one input per
    /// transaction, each signed alone).
    pub group: usize,
    pub retransmit_ms: u64,
    pub epoch_len: u64,
    pub timeout: Duration,
}

/// What one configuration measured.
#[derive(Debug, Clone, Serialize)]
pub struct Measured {
    pub setup: String,
    pub mode: String,
    pub committed: u64,
    pub expected: u64,
    pub elapsed_s: f64,
    pub tx_per_s: f64,
    pub decisions: u64,
    pub decisions_per_s: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub messages_per_decision: f64,
    pub bytes_per_decision: f64,
    pub dropped_full: u64,
    pub timed_out: bool,
    /// Messages and bytes sent per decision, by message kind.
    pub by_kind: BTreeMap<String, (f64, f64)>,
    /// The tx/s range over repeated runs (empty for one run).
    pub spread: String,
}

/// Combine the nodes' results: throughput over the slowest node's time (every node has applied
/// everything by then), latencies pooled, messages and bytes summed over all senders, decisions
/// as node 0 counted them.
pub fn combine(
    setup: &str,
    mode: &str,
    expected: u64,
    results: &[LoadResult],
    messages: u64,
    bytes: u64,
    dropped: u64,
) -> Measured {
    let mut sent = BTreeMap::new();
    sent.insert("all".to_owned(), (messages, bytes));
    combine_by_kind(setup, mode, expected, results, &sent, dropped)
}

/// [`combine`] with the messages and bytes sent by kind (summed over nodes).
pub fn combine_by_kind(
    setup: &str,
    mode: &str,
    expected: u64,
    results: &[LoadResult],
    sent: &BTreeMap<String, (u64, u64)>,
    dropped: u64,
) -> Measured {
    let messages: u64 = sent.values().map(|(c, _)| c).sum();
    let bytes: u64 = sent.values().map(|(_, b)| b).sum();
    let elapsed = results.iter().map(|r| r.elapsed_s).fold(0.0, f64::max);
    let committed = results.iter().map(|r| r.committed).min().unwrap_or(0);
    let decisions = results.first().map_or(0, |r| r.decisions);
    let mut lat: Vec<f64> = results
        .iter()
        .flat_map(|r| r.latencies_ms.iter().copied())
        .collect();
    lat.sort_by(f64::total_cmp);
    let per = |x: u64| {
        if decisions == 0 {
            f64::NAN
        } else {
            x as f64 / decisions as f64
        }
    };
    Measured {
        setup: setup.to_owned(),
        mode: mode.to_owned(),
        committed,
        expected,
        elapsed_s: elapsed,
        tx_per_s: committed as f64 / elapsed.max(1e-9),
        decisions,
        decisions_per_s: decisions as f64 / elapsed.max(1e-9),
        p50_ms: quantile(&lat, 0.5),
        p99_ms: quantile(&lat, 0.99),
        messages_per_decision: per(messages),
        bytes_per_decision: per(bytes),
        dropped_full: dropped,
        timed_out: results.iter().any(|r| r.timed_out),
        by_kind: sent
            .iter()
            .map(|(k, (c, b))| (k.clone(), (per(*c), per(*b))))
            .collect(),
        spread: String::new(),
    }
}

async fn run_cluster<P>(
    setup: Setup,
    load: Load,
    make: impl FnMut(dwcp_engines::sim::crypto::NodeSigner, dwcp_engines::sim::crypto::PublicKeys) -> P,
) -> anyhow::Result<Measured>
where
    P: TxEngine,
    P::Msg: dwcp_engines::sim::protocol::Decode + Send + Sync + 'static,
    P::Input: Send + 'static,
    P::Output: Send + 'static,
{
    let n = setup.n();
    let secrets = cluster::secrets(n, 0xbe7c);
    let hs = cluster::start(&secrets, make, |_| {}).await?;
    let per = load.total_txs / u64::from(n);
    let expected = per * u64::from(n);
    let mut tasks = Vec::new();
    for (i, mut h) in hs.into_iter().enumerate() {
        tasks.push(tokio::spawn(async move {
            let d = load::Drive {
                txs: per,
                size: load.tx_size,
                window: load.window,
                group: load.group,
                expect_total: expected,
                timeout: load.timeout,
            };
            let r = load::drive_grouped(&mut h, i as u32, d).await;
            (r, h)
        }));
    }
    let mut results = Vec::new();
    let mut handles = Vec::new();
    for t in tasks {
        let (r, h) = t.await?;
        results.push(r?);
        handles.push(h);
    }
    let stats: Vec<Stats> = handles.iter().map(|h| h.stats()).collect();
    for h in &handles {
        h.stop();
    }
    Ok(combine_by_kind(
        &setup.label(),
        "in-process",
        expected,
        &results,
        &sum_sent(stats.iter().map(|s| &s.sent)),
        stats.iter().map(|s| s.dropped_full).sum(),
    ))
}

/// Messages and bytes sent, by kind, summed over nodes.
pub fn sum_sent<'a>(
    each: impl Iterator<Item = &'a BTreeMap<&'static str, (u64, u64)>>,
) -> BTreeMap<String, (u64, u64)> {
    let mut all: BTreeMap<String, (u64, u64)> = BTreeMap::new();
    for sent in each {
        for (k, (c, b)) in sent {
            let e = all.entry((*k).to_owned()).or_default();
            e.0 += c;
            e.1 += b;
        }
    }
    all
}

/// Messages per decision by kind, one line (`kind count (bytes)`).
pub fn kinds(m: &Measured) -> String {
    m.by_kind
        .iter()
        .map(|(k, (c, b))| format!("{k} {c:.1} ({b:.0} B)"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// `n` replicas in this process over loopback TCP.
pub async fn in_process(setup: Setup, load: Load) -> anyhow::Result<Measured> {
    match setup {
        Setup::Pbft { n } => {
            let cfg = pbft_config(n, (n - 1) / 3, load.batch_max, load.retransmit_ms);
            run_cluster(setup, load, move |s, k| Replica::new(cfg, s, k)).await
        }
        Setup::Tpbft { n, c } => {
            let cfg = tpbft_config(n, c, load.batch_max, load.retransmit_ms, load.epoch_len);
            run_cluster(setup, load, move |s, k| TpbftNode::new(cfg, s, k)).await
        }
    }
}

/// Print one row.
pub fn row(m: &Measured) -> String {
    format!(
        "{:<20} {:<11} {:>9.0} {:>10.1} {:>8.1} {:>8.1} {:>10.1} {:>12.0} {:>8}/{:<8}{} {}",
        m.setup,
        m.mode,
        m.tx_per_s,
        m.decisions_per_s,
        m.p50_ms,
        m.p99_ms,
        m.messages_per_decision,
        m.bytes_per_decision,
        m.committed,
        m.expected,
        if m.timed_out { " TIMED OUT" } else { "" },
        m.spread
    )
}

pub const HEADER: &str = "setup                mode             tx/s  decisions/s  p50 ms   p99 ms   msgs/dec    bytes/dec  committed/expected  tx/s range";
