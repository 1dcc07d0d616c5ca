//! A closed-loop load driver: keep `window` own transactions outstanding, record each one's
//! commit latency at this node, count every committed transaction and decision. With a group
//! size above one, the transactions that fit the window at that moment go in as one input of
//! at most `group` transactions ([`crate::txgroup`]: signed once by the engine's client); commits
//! that arrive together are taken together before the window is refilled, so groups grow with
//! the load instead of shrinking to one transaction per freed slot.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use dwcp_engines::sim::protocol::{Decode, NodeId};
use serde::Serialize;

use crate::engine::TxEngine;
use crate::transport::Handle;
use crate::txgroup;

/// What one node measured.
#[derive(Debug, Clone, Default, Serialize)]
pub struct LoadResult {
    pub node: NodeId,
    pub own_submitted: u64,
    pub own_committed: u64,
    /// Distinct transactions committed at this node (every origin).
    pub committed: u64,
    /// Distinct decisions (batches) those belonged to.
    pub decisions: u64,
    /// From the first submission to the last expected commit.
    pub elapsed_s: f64,
    /// Own transactions' submit → commit at this node, milliseconds.
    #[serde(skip)]
    pub latencies_ms: Vec<f64>,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub timed_out: bool,
}

/// A `size`-byte payload for transaction `id` of `node`.
pub fn payload(node: NodeId, id: u64, size: usize) -> Vec<u8> {
    let mut p = Vec::with_capacity(size);
    p.extend_from_slice(&node.to_le_bytes());
    p.extend_from_slice(&id.to_le_bytes());
    let mut x = id.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ u64::from(node);
    while p.len() < size {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        p.push(x as u8);
    }
    p.truncate(size.max(12));
    p
}

/// The `q`-quantile of sorted values (nearest rank).
pub fn quantile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let k = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[k - 1]
}

/// Submit `txs` own transactions (`window` outstanding at most) and wait until they and
/// `expect_total` transactions in all are committed here, or `timeout`.
pub async fn drive<P>(
    h: &mut Handle<P>,
    me: NodeId,
    txs: u64,
    size: usize,
    window: usize,
    expect_total: u64,
    timeout: Duration,
) -> anyhow::Result<LoadResult>
where
    P: TxEngine,
    P::Msg: Decode + Send + Sync + 'static,
    P::Input: Send + 'static,
    P::Output: Send + 'static,
{
    let spec = Drive {
        txs,
        size,
        window,
        group: 1,
        expect_total,
        timeout,
    };
    drive_grouped(h, me, spec).await
}

/// What [`drive_grouped`] submits and waits for.
#[derive(Debug, Clone, Copy)]
pub struct Drive {
    /// Own transactions to submit.
    pub txs: u64,
    /// Bytes per transaction.
    pub size: usize,
    /// Own transactions outstanding at most.
    pub window: usize,
    /// Most transactions per input (1: each transaction is an input of its own).
    pub group: usize,
    /// Transactions committed here in all (every origin) before the run ends.
    pub expect_total: u64,
    pub timeout: Duration,
}

/// [`drive`] with client-side groups of up to `d.group` transactions.
pub async fn drive_grouped<P>(h: &mut Handle<P>, me: NodeId, d: Drive) -> anyhow::Result<LoadResult>
where
    P: TxEngine,
    P::Msg: Decode + Send + Sync + 'static,
    P::Input: Send + 'static,
    P::Output: Send + 'static,
{
    let Drive {
        txs,
        size,
        window,
        group,
        expect_total,
        timeout,
    } = d;
    let start = Instant::now();
    let mut sent_at: BTreeMap<u64, Instant> = BTreeMap::new();
    let mut next = 0u64;
    let mut seen: BTreeSet<(NodeId, u64)> = BTreeSet::new();
    let mut decisions: BTreeSet<(u64, u64)> = BTreeSet::new();
    let mut r = LoadResult {
        node: me,
        ..LoadResult::default()
    };
    let mut last_commit = start;
    loop {
        while next < txs && sent_at.len() < window {
            let k = (window - sent_at.len())
                .min(group.max(1))
                .min((txs - next) as usize);
            let now = Instant::now();
            if group <= 1 {
                sent_at.insert(next, now);
                h.submit(P::tx(next, payload(me, next, size))).await?;
            } else {
                let batch: Vec<(u64, Vec<u8>)> = (next..next + k as u64)
                    .map(|id| (id, payload(me, id, size)))
                    .collect();
                for (id, _) in &batch {
                    sent_at.insert(*id, now);
                }
                h.submit(P::tx(next, txgroup::encode(&batch))).await?;
            }
            next += k as u64;
            r.own_submitted += k as u64;
        }
        if r.own_committed >= txs && seen.len() as u64 >= expect_total {
            break;
        }
        let left = timeout.saturating_sub(start.elapsed());
        if left.is_zero() {
            r.timed_out = true;
            break;
        }
        let first = match tokio::time::timeout(left, h.outputs.recv()).await {
            Ok(Some(o)) => o,
            Ok(None) => anyhow::bail!("replica stopped"),
            Err(_) => continue,
        };
        let mut batch = vec![first];
        while let Ok(o) = h.outputs.try_recv() {
            batch.push(o);
        }
        for o in &batch {
            let Some(((origin, id), decision)) = P::committed(o) else {
                continue;
            };
            let ids: Vec<u64> = match (group > 1).then(|| P::payload(o)).flatten() {
                Some(p) => match txgroup::decode(p) {
                    Some(g) => g.into_iter().map(|(i, _)| i).collect(),
                    None => vec![id],
                },
                None => vec![id],
            };
            for id in ids {
                if !seen.insert((origin, id)) {
                    continue;
                }
                decisions.insert(decision);
                last_commit = Instant::now();
                if origin == me {
                    if let Some(t) = sent_at.remove(&id) {
                        r.latencies_ms.push(t.elapsed().as_secs_f64() * 1e3);
                        r.own_committed += 1;
                    }
                }
            }
        }
    }
    r.committed = seen.len() as u64;
    r.decisions = decisions.len() as u64;
    r.elapsed_s = (last_commit - start).as_secs_f64();
    r.latencies_ms.sort_by(f64::total_cmp);
    r.p50_ms = quantile(&r.latencies_ms, 0.5);
    r.p99_ms = quantile(&r.latencies_ms, 0.99);
    Ok(r)
}
