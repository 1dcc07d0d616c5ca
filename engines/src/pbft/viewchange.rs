//! View change and new view, carrying prepare certificates across views.

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::sim::protocol::{AlarmKind, Outbox};

use super::replica::Replica;
use super::{
    batch_digest, checkpoint_statement, prepare_statement, view_change_statement, Batch, NewView,
    PbftMsg, Stable, ViewChange,
};

impl Replica {
    pub(super) fn on_view_timeout(&mut self, now: u64, out: &mut Outbox<PbftMsg>) {
        if self.pending.is_empty() && !self.in_vc {
            return;
        }
        self.vc_attempts += 1;
        self.start_view_change(now, self.view + 1, out);
    }

    pub(super) fn start_view_change(&mut self, now: u64, view: u64, out: &mut Outbox<PbftMsg>) {
        if view <= self.view && self.in_vc {
            return;
        }
        self.view = view;
        self.in_vc = true;
        self.persist_view(out);
        let mut vc = ViewChange {
            view,
            signer: self.id(),
            executed: self.executed,
            stable: self.stable.clone(),
            prepared: self
                .proofs
                .range(self.stable.seq + 1..)
                .map(|(_, p)| p.clone())
                .collect(),
            sig: [0; 64],
        };
        vc.sig = self.signer.sign(&view_change_statement(&vc));
        let vc = Arc::new(vc);
        self.my_vc = Some(Arc::clone(&vc));
        let me = self.id();
        self.vcs
            .entry(view)
            .or_default()
            .insert(me, Arc::clone(&vc));
        self.vcs.retain(|v, _| *v >= view);
        out.broadcast(PbftMsg::ViewChange(vc));
        self.arm_view_timer(now, out);
        self.wake(now, out);
        self.maybe_new_view(now, out);
    }

    /// Signature, stable certificate and every prepare certificate of a view change.
    fn valid_vc(&self, vc: &ViewChange) -> bool {
        if !self
            .keys
            .verify(vc.signer, &view_change_statement(vc), &vc.sig)
        {
            return false;
        }
        let q = self.cfg.quorum();
        let stable_ok = match &vc.stable.cert {
            None => vc.stable.seq == 0,
            Some(c) => {
                c.statement == checkpoint_statement(vc.stable.seq, &vc.stable.state)
                    && c.verify(&self.keys, q).is_ok()
            }
        };
        stable_ok
            && vc.prepared.iter().all(|p| {
                p.view < vc.view
                    && p.seq > vc.stable.seq
                    && p.cert.statement == prepare_statement(p.view, p.seq, &batch_digest(&p.batch))
                    && p.cert.verify(&self.keys, q).is_ok()
                    && self.valid_batch(p.batch.iter())
            })
    }

    pub(super) fn on_view_change(
        &mut self,
        now: u64,
        vc: &Arc<ViewChange>,
        out: &mut Outbox<PbftMsg>,
    ) {
        if vc.executed < self.executed {
            self.serve(now, vc.signer, vc.executed + 1, out);
        }
        if vc.view == self.view && !self.in_vc {
            // Already in that view: a late replica missed the new view.
            if let Some(nv) = self.new_view.as_ref().filter(|nv| nv.view == vc.view) {
                out.send(vc.signer, PbftMsg::NewView(Arc::clone(nv)));
            }
            return;
        }
        if vc.view < self.view {
            return;
        }
        if self
            .vcs
            .get(&vc.view)
            .is_some_and(|m| m.get(&vc.signer) == Some(vc))
        {
            return;
        }
        if !self.valid_vc(vc) {
            out.alarm(AlarmKind::BadSignature, None, "invalid view change");
            return;
        }
        self.vcs
            .entry(vc.view)
            .or_default()
            .insert(vc.signer, Arc::clone(vc));
        // Join the smallest higher view that f + 1 replicas ask for.
        let mut askers = std::collections::BTreeSet::new();
        let mut smallest = None;
        for (v, m) in self.vcs.range(self.view + 1..) {
            askers.extend(m.keys().copied());
            smallest = smallest.or(Some(*v));
        }
        if let Some(v) = smallest {
            if askers.len() > self.cfg.f as usize {
                self.start_view_change(now, v, out);
            }
        }
        self.maybe_new_view(now, out);
    }

    /// The re-proposals a new primary must make from `vcs`: for every seq between the highest
    /// stable checkpoint and the highest prepared seq, the batch prepared in the highest view, or
    /// a null batch.
    fn reproposals(vcs: &[Arc<ViewChange>]) -> (Stable, Vec<(u64, Batch)>) {
        let mut stable = Stable {
            seq: 0,
            state: [0; 32],
            cert: None,
        };
        for vc in vcs {
            if vc.stable.seq > stable.seq {
                stable = vc.stable.clone();
            }
        }
        let mut best: BTreeMap<u64, (u64, Batch)> = BTreeMap::new();
        for vc in vcs {
            for p in &vc.prepared {
                if p.seq <= stable.seq {
                    continue;
                }
                match best.get(&p.seq) {
                    Some((v, _)) if *v >= p.view => {}
                    _ => {
                        best.insert(p.seq, (p.view, Arc::clone(&p.batch)));
                    }
                }
            }
        }
        let max = best.keys().next_back().copied().unwrap_or(stable.seq);
        let pre = (stable.seq + 1..=max)
            .map(|s| {
                (
                    s,
                    best.get(&s)
                        .map_or_else(|| Arc::new(Vec::new()), |(_, b)| Arc::clone(b)),
                )
            })
            .collect();
        (stable, pre)
    }

    fn maybe_new_view(&mut self, now: u64, out: &mut Outbox<PbftMsg>) {
        let v = self.view;
        if !self.in_vc || self.cfg.primary(v) != self.id() {
            return;
        }
        let Some(m) = self.vcs.get(&v) else {
            return;
        };
        if m.len() < self.cfg.quorum() {
            return;
        }
        let vcs: Vec<Arc<ViewChange>> = m.values().take(self.cfg.quorum()).cloned().collect();
        let (_, pre) = Self::reproposals(&vcs);
        let mut signed = Vec::with_capacity(pre.len());
        for (s, b) in pre {
            let d = batch_digest(&b);
            self.persist_vote(v, s, &d, out);
            let sig = self.signer.sign(&prepare_statement(v, s, &d));
            signed.push((s, b, sig));
        }
        let pre = signed;
        let nv = Arc::new(NewView { view: v, vcs, pre });
        out.broadcast(PbftMsg::NewView(Arc::clone(&nv)));
        self.new_view = Some(Arc::clone(&nv));
        self.on_new_view(now, &nv, out);
    }

    pub(super) fn on_new_view(&mut self, now: u64, nv: &Arc<NewView>, out: &mut Outbox<PbftMsg>) {
        if nv.view < self.view || (nv.view == self.view && !self.in_vc) {
            return;
        }
        let primary = self.cfg.primary(nv.view);
        let mut signers = std::collections::BTreeSet::new();
        for vc in &nv.vcs {
            if vc.view != nv.view || !signers.insert(vc.signer) || !self.valid_vc(vc) {
                out.alarm(
                    AlarmKind::Garbage,
                    None,
                    "new view with an invalid view change",
                );
                return;
            }
        }
        if signers.len() < self.cfg.quorum() {
            return;
        }
        let (stable, pre) = Self::reproposals(&nv.vcs);
        let matches = pre.len() == nv.pre.len()
            && pre.iter().zip(&nv.pre).all(|((s, b), (s2, b2, sig))| {
                s == s2
                    && batch_digest(b) == batch_digest(b2)
                    && self.keys.verify(
                        primary,
                        &prepare_statement(nv.view, *s, &batch_digest(b)),
                        sig,
                    )
            });
        if !matches {
            out.alarm(
                AlarmKind::Garbage,
                None,
                "new view whose re-proposals do not follow from its view changes",
            );
            return;
        }
        self.view = nv.view;
        self.in_vc = false;
        self.persist_view(out);
        self.vcs.retain(|v, _| *v > nv.view);
        if primary == self.id() {
            self.new_view = Some(Arc::clone(nv));
        }
        if stable.seq > self.stable.seq && stable.seq <= self.executed {
            self.adopt_stable(now, stable.clone(), out);
        }
        if stable.seq > self.executed {
            for vc in &nv.vcs {
                if vc.executed > self.executed {
                    out.send(
                        vc.signer,
                        PbftMsg::Fetch {
                            from_seq: self.executed + 1,
                        },
                    );
                }
            }
        }
        let mut max = stable.seq.max(self.stable.seq);
        for (s, b, sig) in &nv.pre {
            max = max.max(*s);
            if *s > self.executed && self.in_window(*s) {
                let d = super::batch_digest(b);
                self.accept_pre_prepare(now, nv.view, *s, Arc::clone(b), d, *sig, out);
            }
        }
        self.next_seq = max + 1;
        self.persist_next_seq(out);
        self.arm_view_timer(now, out);
        self.propose(now, out, false);
        self.wake(now, out);
    }
}
