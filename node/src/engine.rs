//! Transaction-ordering engines as the host drives them.

use dwcp_engines::pbft::{Decided, PbftConfig, Replica, Submit};
use dwcp_engines::sim::crypto::{NodeSigner, PublicKeys};
use dwcp_engines::sim::protocol::{Decode, NodeId, Protocol};
use dwcp_engines::tpbft::{TpbftConfig, TpbftNode, TpbftOut, TxSubmit};
use serde::{Deserialize, Serialize};

/// A protocol that orders transactions submitted at any node.
pub trait TxEngine: Protocol + Send + 'static
where
    Self::Msg: Decode + Send + Sync + 'static,
    Self::Input: Send + 'static,
    Self::Output: Send + 'static,
{
    fn tx(id: u64, payload: Vec<u8>) -> Self::Input;
    /// `(origin, id)` of a committed transaction and the decision (batch) it belongs to.
    fn committed(o: &Self::Output) -> Option<((NodeId, u64), (u64, u64))>;
    /// The committed payload, when the output carries it (a [`crate::txgroup`] group is
    /// counted as its transactions).
    fn payload(_o: &Self::Output) -> Option<&[u8]> {
        None
    }
}

impl TxEngine for Replica {
    fn tx(id: u64, payload: Vec<u8>) -> Submit {
        Submit { id, payload }
    }
    fn committed(d: &Decided) -> Option<((NodeId, u64), (u64, u64))> {
        d.request().map(|r| ((r.client, r.id), (0, d.seq)))
    }
    fn payload(d: &Decided) -> Option<&[u8]> {
        d.request().map(|r| &*r.payload)
    }
}

impl TxEngine for TpbftNode {
    fn tx(id: u64, payload: Vec<u8>) -> TxSubmit {
        TxSubmit { id, payload }
    }
    fn committed(o: &TpbftOut) -> Option<((NodeId, u64), (u64, u64))> {
        match o {
            TpbftOut::Tx {
                epoch,
                seq,
                origin,
                id,
                ..
            } => Some(((*origin, *id), (*epoch, *seq))),
            TpbftOut::Epoch { .. } => None,
        }
    }
    fn payload(o: &TpbftOut) -> Option<&[u8]> {
        match o {
            TpbftOut::Tx { payload, .. } => Some(payload),
            TpbftOut::Epoch { .. } => None,
        }
    }
}

/// Which engine a node runs, with its parameters.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum EngineSpec {
    Pbft {
        f: u32,
        #[serde(default = "default_batch")]
        batch_max: usize,
        #[serde(default = "default_retransmit")]
        retransmit_ms: u64,
    },
    Tpbft {
        committee: u32,
        #[serde(default = "default_batch")]
        batch_max: usize,
        #[serde(default = "default_retransmit")]
        retransmit_ms: u64,
        #[serde(default = "default_epoch")]
        epoch_len: u64,
    },
}

fn default_batch() -> usize {
    512
}
fn default_retransmit() -> u64 {
    500
}
fn default_epoch() -> u64 {
    64
}

/// PBFT parameters for a real network: larger batches, retransmission and view timers than the
/// simulator's defaults (a loaded loopback node must not time out on its own queue).
pub fn pbft_config(n: u32, f: u32, batch_max: usize, retransmit_ms: u64) -> PbftConfig {
    let mut c = PbftConfig::new(n, f);
    c.batch_max = batch_max;
    c.batch_delay_ms = 2;
    c.retransmit_ms = retransmit_ms;
    c.view_timeout_ms = retransmit_ms * 6;
    c.checkpoint_interval = 16;
    c.window = 256;
    c
}

pub fn tpbft_config(
    n: u32,
    committee: u32,
    batch_max: usize,
    retransmit_ms: u64,
    epoch_len: u64,
) -> TpbftConfig {
    let mut c = TpbftConfig::new(n, committee);
    c.inner = pbft_config(committee, c.inner.f, batch_max, retransmit_ms);
    c.epoch_len = epoch_len;
    c.retry_ms = retransmit_ms;
    c
}

pub fn pbft(n: u32, spec: EngineSpec, signer: NodeSigner, keys: PublicKeys) -> Option<Replica> {
    match spec {
        EngineSpec::Pbft {
            f,
            batch_max,
            retransmit_ms,
        } => Some(Replica::new(
            pbft_config(n, f, batch_max, retransmit_ms),
            signer,
            keys,
        )),
        EngineSpec::Tpbft { .. } => None,
    }
}

pub fn tpbft(n: u32, spec: EngineSpec, signer: NodeSigner, keys: PublicKeys) -> Option<TpbftNode> {
    match spec {
        EngineSpec::Tpbft {
            committee,
            batch_max,
            retransmit_ms,
            epoch_len,
        } => Some(TpbftNode::new(
            tpbft_config(n, committee, batch_max, retransmit_ms, epoch_len),
            signer,
            keys,
        )),
        EngineSpec::Pbft { .. } => None,
    }
}
