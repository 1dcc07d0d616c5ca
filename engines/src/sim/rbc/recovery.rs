//! # What the honest node persists, and how it is rebuilt from it
//!
//! Durable records (all written with [`Outbox::persist`](super::super::Outbox::persist), i.e.
//! before the message they justify leaves):
//! * `seq` — the next own sequence number, so a restarted origin never signs two values for one
//!   seq;
//! * `s‖seq` — the value of each own broadcast, to keep retransmitting it;
//! * `e‖origin‖seq` — the digest this node echoed, so it never echoes a second value;
//! * `d‖origin‖seq` — the digest it delivered, so a replayed `Final` is not delivered twice.
//!
//! Everything else (echo sets, relays, alarms) is volatile and rebuilt from the network.

use std::sync::Arc;

use super::super::crypto::{Digest32, NodeSigner, PublicKeys};
use super::super::durable::Durable;
use super::honest::HonestNode;
use super::{echo_statement, send_statement, InstanceId, RbcConfig, RbcMsg};

pub(super) const SEQ_KEY: &[u8] = b"seq";

pub(super) fn send_key(seq: u64) -> Vec<u8> {
    [b"s".as_slice(), &seq.to_be_bytes()].concat()
}

pub(super) fn echo_key(id: InstanceId) -> Vec<u8> {
    [b"e".as_slice(), &id.0.to_be_bytes(), &id.1.to_be_bytes()].concat()
}

pub(super) fn delivery_key(id: InstanceId) -> Vec<u8> {
    [b"d".as_slice(), &id.0.to_be_bytes(), &id.1.to_be_bytes()].concat()
}

fn parse_id(key: &[u8]) -> Option<InstanceId> {
    let o: [u8; 4] = key.get(1..5)?.try_into().ok()?;
    let s: [u8; 8] = key.get(5..13)?.try_into().ok()?;
    Some((u32::from_be_bytes(o), u64::from_be_bytes(s)))
}

fn digest(v: &[u8]) -> Option<Digest32> {
    v.try_into().ok()
}

impl HonestNode {
    /// Rebuild a node from its durable store alone (a restart after a crash).
    pub fn restore(cfg: RbcConfig, signer: NodeSigner, keys: PublicKeys, store: &Durable) -> Self {
        let mut node = Self::new(cfg, signer, keys);
        if let Some(v) = store.get(SEQ_KEY).and_then(|v| <[u8; 8]>::try_from(v).ok()) {
            node.next_seq = u64::from_le_bytes(v);
        }
        let me = node.signer.id();
        for (k, v) in store.with_prefix(b"s") {
            let Some(seq) = k
                .get(1..9)
                .and_then(|s| <[u8; 8]>::try_from(s).ok())
                .map(u64::from_be_bytes)
            else {
                continue;
            };
            let sig = node.signer.sign(&send_statement(me, seq, v));
            let msg = RbcMsg::Send {
                origin: me,
                seq,
                value: Arc::from(v),
                sig,
            };
            node.instances.entry((me, seq)).or_default().own_send = Some(Arc::new(msg));
            node.pending.insert((me, seq));
        }
        for (k, v) in store.with_prefix(b"e") {
            let (Some(id), Some(d)) = (parse_id(k), digest(v)) else {
                continue;
            };
            let sig = node.signer.sign(&echo_statement(id.0, id.1, &d));
            let echo = RbcMsg::Echo {
                origin: id.0,
                seq: id.1,
                digest: d,
                signer: me,
                sig,
            };
            let inst = node.instances.entry(id).or_default();
            inst.send_digest = Some(d);
            inst.my_echo = Some(Arc::new(echo));
            node.pending.insert(id);
        }
        for (k, v) in store.with_prefix(b"d") {
            let (Some(id), Some(d)) = (parse_id(k), digest(v)) else {
                continue;
            };
            let inst = node.instances.entry(id).or_default();
            inst.delivered = Some(d);
            inst.my_echo = None;
            inst.own_send = None;
            let upto = node.delivered_upto.entry(id.0).or_insert(0);
            *upto = (*upto).max(id.1 + 1);
        }
        node
    }
}
