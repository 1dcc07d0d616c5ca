//! # Delivery: the certificate from `q` echoes, persistence, and the relay
//!
//! Split from [`super::honest`] for size.

use std::sync::Arc;

use super::super::crypto::{Certificate, Digest32};
use super::super::protocol::{AlarmKind, Outbox};
use super::honest::HonestNode;
use super::{echo_statement, value_digest, Delivery, InstanceId, PlantedBug, RbcMsg};

impl HonestNode {
    pub(super) fn try_deliver(
        &mut self,
        now: u64,
        id: InstanceId,
        digest: Digest32,
        out: &mut Outbox<RbcMsg>,
    ) {
        let q = self.local_quorum();
        let Some(inst) = self.instances.get(&id) else {
            return;
        };
        if inst.delivered.is_some() {
            return;
        }
        let (Some(echoes), Some(value)) = (inst.echoes.get(&digest), inst.values.get(&digest))
        else {
            return;
        };
        if echoes.len() < q {
            return;
        }
        let cert = Certificate {
            statement: echo_statement(id.0, id.1, &digest),
            sigs: {
                let mut sigs = echoes.clone();
                sigs.sort_unstable_by_key(|(k, _)| *k); // by signer, as a certificate is encoded
                sigs
            },
        };
        let d = Delivery {
            origin: id.0,
            seq: id.1,
            value: Arc::clone(value),
            cert: Arc::new(cert),
        };
        self.deliver(now, d, out);
    }

    pub(super) fn deliver(&mut self, now: u64, d: Delivery, out: &mut Outbox<RbcMsg>) {
        let id = (d.origin, d.seq);
        let digest = value_digest(&d.value);
        let relay = Arc::new(RbcMsg::Final {
            origin: d.origin,
            seq: d.seq,
            value: Arc::clone(&d.value),
            cert: Arc::clone(&d.cert),
        });
        let inst = self.instances.entry(id).or_default();
        let signed_other = inst.send_digest.is_some_and(|s| s != digest);
        inst.delivered = Some(digest);
        inst.relay = Some(Arc::clone(&relay));
        (inst.retx_at, inst.retx_gap, inst.retx_round) = (0, 0, 0); // a new relay: resend it next round
        inst.echoes.clear();
        inst.echo_stmt = None;
        inst.echoed_by.clear();
        inst.values.clear();
        inst.my_echo = None;
        inst.own_send = None;
        if signed_other {
            // The origin's own signature is on a value other than the certified one.
            let detail = format!(
                "origin signed a value other than the certified one for seq {}",
                d.seq
            );
            self.alarm(out, AlarmKind::Equivocation, Some(d.origin), detail);
        }
        if !self.cfg.has(PlantedBug::ForgetDeliveryOnRecover) {
            out.persist(super::recovery::delivery_key(id), digest.to_vec());
        }
        let upto = self.delivered_upto.entry(d.origin).or_insert(0);
        *upto = (*upto).max(d.seq + 1);
        for to in 0..self.cfg.n {
            out.send_shared(to, Arc::clone(&relay));
        }
        self.pending.insert(id);
        self.committed.push(d);
        self.activity(now, out);
    }
}
