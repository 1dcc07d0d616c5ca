//! The ProBFT replica: normal case, view change, catch-up, and every receive-side check.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use dwcp_core::signals::{EngineEvent, IntegrityKind};

use crate::sim::crypto::{Digest32, NodeSigner, PublicKeys};
use crate::sim::protocol::{AlarmKind, NodeId, Outbox, Protocol, TimerId};

use super::vrf::{VrfOutput, VrfProof, VrfPublic, VrfSecret};
use super::{
    choose_value, proposal_statement, sample_from_beta, value_digest, view_change_statement,
    vote_statement, vrf_alpha, Decision, Phase, ProbftConfig, ProbftMsg, Proposal, QuorumCert,
    Submit, ViewChange, Vote,
};

/// Slots further than this above the highest slot a replica was given are ignored (bounds the
/// state a Byzantine sender can make it allocate).
const SLOT_WINDOW: u64 = 64;

const TIMER_VIEW: u64 = 0;
const TIMER_RETRANSMIT: u64 = 1;

fn timer_id(slot: u64, kind: u64) -> TimerId {
    (slot << 2) | kind
}

/// `(signer, slot, view, phase)`.
type SampleKey = (NodeId, u64, u64, Phase);

/// A memo of verified VRF proofs: `(signer, slot, view, phase)` → the proof that verified and
/// the sample it selects. Verification is a pure function of public data, so the replicas of
/// one process (the simulator, a bench) may share one memo; an entry is used only for the exact
/// proof bytes that verified.
pub type SampleCache = Arc<std::sync::Mutex<BTreeMap<SampleKey, (VrfProof, Arc<Vec<NodeId>>)>>>;

/// A proposal as accepted: digest, value, leader signature.
type Accepted = (Digest32, Arc<[u8]>, [u8; 64]);
/// A replica's own VRF proof and sample.
type OwnSample = (VrfProof, Arc<Vec<NodeId>>);

#[derive(Default)]
struct Inst {
    view: u64,
    input: Option<Arc<[u8]>>,
    /// The proposal accepted in each view: digest, value, leader signature.
    accepted: BTreeMap<u64, Accepted>,
    /// Proposals seen from each view's leader (signature-checked), for equivocation evidence.
    leader_seen: BTreeMap<u64, Digest32>,
    voted: BTreeSet<(u64, Phase)>,
    /// First vote digest seen per (phase, view, signer): a second one is equivocation.
    seen: BTreeMap<(Phase, u64, NodeId), Digest32>,
    votes: BTreeMap<(Phase, u64, Digest32), BTreeMap<NodeId, Arc<Vote>>>,
    prepared: Option<Arc<QuorumCert>>,
    decided: Option<Decision>,
    vcs: BTreeMap<u64, BTreeMap<NodeId, Arc<ViewChange>>>,
    my_vc: Option<Arc<ViewChange>>,
    /// What this replica sent in its current view (re-sent until the slot is decided).
    my_sends: Vec<(NodeId, Arc<ProbftMsg>)>,
    proposed: BTreeSet<u64>,
    answered: BTreeSet<(NodeId, u64)>,
    timers_armed: bool,
    /// Retransmissions in the current view (the interval doubles with each).
    retx: u32,
    accused: BTreeSet<(NodeId, u64, u8)>,
}

/// A ProBFT replica.
pub struct Replica {
    cfg: ProbftConfig,
    signer: NodeSigner,
    keys: PublicKeys,
    vrf: Arc<VrfSecret>,
    vrf_keys: Arc<Vec<VrfPublic>>,
    insts: BTreeMap<u64, Inst>,
    max_slot: u64,
    my_samples: BTreeMap<(u64, u64, Phase), OwnSample>,
    samples: SampleCache,
    committed: Vec<Decision>,
    integrity: Vec<EngineEvent>,
    now: u64,
    /// Messages refused because this replica was not in the sender's sample.
    pub out_of_sample: u64,
}

impl Replica {
    pub fn new(
        cfg: ProbftConfig,
        signer: NodeSigner,
        keys: PublicKeys,
        vrf: Arc<VrfSecret>,
        vrf_keys: Arc<Vec<VrfPublic>>,
        samples: SampleCache,
    ) -> Self {
        Self {
            cfg,
            signer,
            keys,
            vrf,
            vrf_keys,
            insts: BTreeMap::new(),
            max_slot: 0,
            my_samples: BTreeMap::new(),
            samples,
            committed: Vec::new(),
            integrity: Vec::new(),
            now: 0,
            out_of_sample: 0,
        }
    }

    fn me(&self) -> NodeId {
        self.signer.id()
    }

    /// `DataIntegrityViolation`s seen since the last call (a valid decision certificate for
    /// another value than this replica decided).
    pub fn take_integrity_events(&mut self) -> Vec<EngineEvent> {
        std::mem::take(&mut self.integrity)
    }

    /// The decision of `slot`, if any.
    pub fn decision(&self, slot: u64) -> Option<&Decision> {
        self.insts.get(&slot).and_then(|i| i.decided.as_ref())
    }

    /// The view `slot` is in.
    pub fn view(&self, slot: u64) -> u64 {
        self.insts.get(&slot).map_or(0, |i| i.view)
    }

    fn timeout(&self, view: u64) -> u64 {
        let shift = view.min(16) as u32;
        self.cfg
            .view_timeout_ms
            .saturating_mul(1u64 << shift)
            .min(self.cfg.max_timeout_ms)
    }

    fn inst(&mut self, slot: u64) -> &mut Inst {
        self.insts.entry(slot).or_default()
    }

    fn slot_ok(&self, slot: u64) -> bool {
        slot <= self.max_slot.saturating_add(SLOT_WINDOW)
    }

    fn arm(&mut self, slot: u64, out: &mut Outbox<ProbftMsg>) {
        let now = self.now;
        let view = self.inst(slot).view;
        let t = self.timeout(view);
        let inst = self.inst(slot);
        if inst.decided.is_some() {
            return;
        }
        inst.timers_armed = true;
        inst.retx = 0;
        out.set_timer(timer_id(slot, TIMER_VIEW), now + t);
        out.set_timer(
            timer_id(slot, TIMER_RETRANSMIT),
            now + self.cfg.retransmit_ms,
        );
    }

    /// This replica's own VRF sample for `(slot, view, phase)`.
    fn my_sample(
        &mut self,
        slot: u64,
        view: u64,
        phase: Phase,
    ) -> Option<(VrfProof, Arc<Vec<NodeId>>)> {
        if !self.cfg.sampled() {
            return Some(([0u8; 80], Arc::new((0..self.cfg.n).collect())));
        }
        if let Some(v) = self.my_samples.get(&(slot, view, phase)) {
            return Some(v.clone());
        }
        let (pi, beta) = self.vrf.prove(&vrf_alpha(slot, view, phase)).ok()?;
        let s = Arc::new(sample_from_beta(&beta, self.cfg.n, self.cfg.sample_size()));
        self.my_samples.insert((slot, view, phase), (pi, s.clone()));
        Some((pi, s))
    }

    /// The verified sample of `signer` for `(slot, view, phase)` given its `proof`, or `None`
    /// if the proof does not verify.
    pub(crate) fn sample_of(
        &mut self,
        signer: NodeId,
        slot: u64,
        view: u64,
        phase: Phase,
        proof: &VrfProof,
    ) -> Option<Arc<Vec<NodeId>>> {
        sample_cached(
            &self.cfg,
            &self.vrf_keys,
            &self.samples,
            signer,
            slot,
            view,
            phase,
            proof,
        )
    }

    fn send_to(&mut self, slot: u64, to: NodeId, msg: Arc<ProbftMsg>, out: &mut Outbox<ProbftMsg>) {
        self.inst(slot).my_sends.push((to, msg.clone()));
        if to == self.me() {
            let m = (*msg).clone();
            let me = self.me();
            self.on_msg(me, &m, out);
        } else {
            out.send_shared(to, msg);
        }
    }

    fn propose_if_leader(&mut self, slot: u64, out: &mut Outbox<ProbftMsg>) {
        let view = self.inst(slot).view;
        if self.cfg.leader(slot, view) != self.me() || self.inst(slot).proposed.contains(&view) {
            return;
        }
        let (value, justify) = if view == 0 {
            match self.inst(slot).input.clone() {
                Some(v) => (v, Vec::new()),
                None => return,
            }
        } else {
            let need = self.cfg.vc_quorum();
            let Some(vcs) = self.inst(slot).vcs.get(&view) else {
                return;
            };
            if vcs.len() < need {
                return;
            }
            let justify: Vec<Arc<ViewChange>> = vcs.values().take(need).cloned().collect();
            let value = match choose_value(&justify) {
                Some(v) => v,
                None => match self.inst(slot).input.clone() {
                    Some(v) => v,
                    None => return,
                },
            };
            (value, justify)
        };
        let digest = value_digest(&value);
        let sig = self.signer.sign(&proposal_statement(slot, view, &digest));
        let p = Arc::new(ProbftMsg::Propose(Arc::new(Proposal {
            slot,
            view,
            value,
            sig,
            justify,
        })));
        self.inst(slot).proposed.insert(view);
        for to in 0..self.cfg.n {
            self.send_to(slot, to, p.clone(), out);
        }
    }

    fn accept(
        &mut self,
        slot: u64,
        view: u64,
        value: Arc<[u8]>,
        leader_sig: [u8; 64],
        out: &mut Outbox<ProbftMsg>,
    ) {
        let digest = value_digest(&value);
        {
            let inst = self.inst(slot);
            if inst.view != view || inst.accepted.contains_key(&view) || inst.decided.is_some() {
                return;
            }
            inst.accepted.insert(view, (digest, value, leader_sig));
        }
        self.vote(Phase::Prepare, slot, view, out);
        // Votes that arrived before the proposal count now.
        self.check_progress(slot, view, out);
    }

    fn vote(&mut self, phase: Phase, slot: u64, view: u64, out: &mut Outbox<ProbftMsg>) {
        let Some((digest, value, leader_sig)) = self.inst(slot).accepted.get(&view).cloned() else {
            return;
        };
        if !self.inst(slot).voted.insert((view, phase)) {
            return;
        }
        let Some((proof, sample)) = self.my_sample(slot, view, phase) else {
            return;
        };
        let sig = self
            .signer
            .sign(&vote_statement(phase, slot, view, &digest, &proof));
        let v = Arc::new(ProbftMsg::Vote(Arc::new(Vote {
            phase,
            slot,
            view,
            value,
            signer: self.me(),
            proof,
            sig,
            leader_sig,
        })));
        for to in sample.iter() {
            self.send_to(slot, *to, v.clone(), out);
        }
    }

    fn check_progress(&mut self, slot: u64, view: u64, out: &mut Outbox<ProbftMsg>) {
        let q = self.cfg.quorum();
        let me = self.me();
        let Some((digest, value, _)) = self.inst(slot).accepted.get(&view).cloned() else {
            return;
        };
        let prep = self
            .inst(slot)
            .votes
            .get(&(Phase::Prepare, view, digest))
            .map_or(0, BTreeMap::len);
        if prep >= q && !self.inst(slot).voted.contains(&(view, Phase::Commit)) {
            let votes: Vec<Arc<Vote>> = self.inst(slot).votes[&(Phase::Prepare, view, digest)]
                .values()
                .cloned()
                .collect();
            let cert = Arc::new(QuorumCert {
                phase: Phase::Prepare,
                slot,
                view,
                value: value.clone(),
                holder: me,
                votes,
            });
            let inst = self.inst(slot);
            if inst.prepared.as_ref().is_none_or(|p| p.view < view) {
                inst.prepared = Some(cert);
            }
            self.vote(Phase::Commit, slot, view, out);
        }
    }

    /// Commits of any view decide (the value travels with them).
    fn check_decide(
        &mut self,
        slot: u64,
        view: u64,
        digest: Digest32,
        out: &mut Outbox<ProbftMsg>,
    ) {
        let q = self.cfg.quorum();
        let me = self.me();
        if self.inst(slot).decided.is_some() {
            return;
        }
        let Some(votes) = self.inst(slot).votes.get(&(Phase::Commit, view, digest)) else {
            return;
        };
        if votes.len() < q {
            return;
        }
        let votes: Vec<Arc<Vote>> = votes.values().cloned().collect();
        let value = votes[0].value.clone();
        let cert = Arc::new(QuorumCert {
            phase: Phase::Commit,
            slot,
            view,
            value,
            holder: me,
            votes,
        });
        self.decide(slot, cert, out);
    }

    fn decide(&mut self, slot: u64, cert: Decision, out: &mut Outbox<ProbftMsg>) {
        let inst = self.inst(slot);
        inst.decided = Some(cert.clone());
        inst.my_sends.clear();
        out.cancel_timer(timer_id(slot, TIMER_VIEW));
        out.cancel_timer(timer_id(slot, TIMER_RETRANSMIT));
        self.committed.push(cert);
    }

    fn move_to_view(&mut self, slot: u64, view: u64, out: &mut Outbox<ProbftMsg>) {
        if self.inst(slot).view >= view || self.inst(slot).decided.is_some() {
            return;
        }
        let me = self.me();
        let prepared = self.inst(slot).prepared.clone();
        let mut vc = ViewChange {
            slot,
            view,
            signer: me,
            prepared,
            sig: [0u8; 64],
        };
        vc.sig = self.signer.sign(&view_change_statement(&vc));
        let vc = Arc::new(vc);
        {
            let inst = self.inst(slot);
            inst.view = view;
            inst.my_sends.clear();
            inst.my_vc = Some(vc.clone());
        }
        self.arm(slot, out);
        let msg = Arc::new(ProbftMsg::ViewChange(vc));
        for to in 0..self.cfg.n {
            if to == me {
                let m = (*msg).clone();
                self.on_msg(me, &m, out);
            } else {
                out.send_shared(to, msg.clone());
            }
        }
        // Votes and a proposal for the new view may already be here.
        self.propose_if_leader(slot, out);
    }

    fn alarm_once(
        &mut self,
        slot: u64,
        suspect: NodeId,
        kind: AlarmKind,
        detail: String,
        out: &mut Outbox<ProbftMsg>,
    ) {
        let tag = match kind {
            AlarmKind::Equivocation => 1,
            AlarmKind::BadVrfProof => 2,
            _ => 3,
        };
        if self.inst(slot).accused.insert((suspect, slot, tag)) {
            out.alarm(kind, Some(suspect), detail);
        }
    }

    fn on_propose(&mut self, p: &Proposal, out: &mut Outbox<ProbftMsg>) {
        let leader = self.cfg.leader(p.slot, p.view);
        let digest = value_digest(&p.value);
        if !self
            .keys
            .verify(leader, &proposal_statement(p.slot, p.view, &digest), &p.sig)
        {
            out.alarm(
                AlarmKind::BadSignature,
                None,
                format!("proposal for slot {} view {}", p.slot, p.view),
            );
            return;
        }
        self.note_leader(p.slot, p.view, digest, out);
        if p.view > 0 && !self.justified(p) {
            out.alarm(
                AlarmKind::Garbage,
                None,
                format!("unjustified proposal for slot {} view {}", p.slot, p.view),
            );
            return;
        }
        let cur = self.inst(p.slot).view;
        if p.view > cur {
            // Justified by n − f view changes: join the view.
            for vc in &p.justify {
                self.inst(p.slot)
                    .vcs
                    .entry(p.view)
                    .or_default()
                    .insert(vc.signer, vc.clone());
            }
            self.move_to_view(p.slot, p.view, out);
        }
        self.accept(p.slot, p.view, p.value.clone(), p.sig, out);
    }

    /// Leader evidence: two signed proposals for one view with different values.
    fn note_leader(&mut self, slot: u64, view: u64, digest: Digest32, out: &mut Outbox<ProbftMsg>) {
        let leader = self.cfg.leader(slot, view);
        let prev = *self.inst(slot).leader_seen.entry(view).or_insert(digest);
        if prev != digest {
            self.alarm_once(
                slot,
                leader,
                AlarmKind::Equivocation,
                format!("leader {leader} proposed two values for slot {slot} view {view}"),
                out,
            );
        }
    }

    fn justified(&mut self, p: &Proposal) -> bool {
        let mut signers = BTreeSet::new();
        for vc in &p.justify {
            if vc.slot != p.slot || vc.view != p.view || !self.valid_vc(vc) {
                return false;
            }
            signers.insert(vc.signer);
        }
        if signers.len() < self.cfg.vc_quorum() {
            return false;
        }
        match choose_value(&p.justify) {
            Some(v) => *v == *p.value,
            None => true,
        }
    }

    fn valid_vc(&mut self, vc: &ViewChange) -> bool {
        if !self.keys.is_member(vc.signer)
            || !self
                .keys
                .verify(vc.signer, &view_change_statement(vc), &vc.sig)
        {
            return false;
        }
        match &vc.prepared {
            None => true,
            Some(c) => {
                c.phase == Phase::Prepare
                    && c.slot == vc.slot
                    && c.view < vc.view
                    && verify_cert_with(&self.cfg, &self.keys, &self.vrf_keys, &self.samples, c)
                        .is_ok()
            }
        }
    }

    fn on_vote(&mut self, v: &Arc<Vote>, out: &mut Outbox<ProbftMsg>) {
        let me = self.me();
        if !self.keys.is_member(v.signer) {
            out.alarm(
                AlarmKind::NotMember,
                None,
                format!("vote from non-member {}", v.signer),
            );
            return;
        }
        let digest = value_digest(&v.value);
        // A retransmission of a vote already counted changes nothing.
        let known = self
            .inst(v.slot)
            .votes
            .get(&(v.phase, v.view, digest))
            .and_then(|m| m.get(&v.signer))
            .is_some_and(|k| **k == **v);
        if known {
            return;
        }
        if !self.keys.verify(
            v.signer,
            &vote_statement(v.phase, v.slot, v.view, &digest, &v.proof),
            &v.sig,
        ) {
            out.alarm(
                AlarmKind::BadSignature,
                None,
                format!("vote claiming signer {}", v.signer),
            );
            return;
        }
        let leader = self.cfg.leader(v.slot, v.view);
        if !self.keys.verify(
            leader,
            &proposal_statement(v.slot, v.view, &digest),
            &v.leader_sig,
        ) {
            // The voter signed a digest the leader never proposed: not evidence against the
            // leader, and the voter's own signature does not cover the leader's.
            out.alarm(
                AlarmKind::Garbage,
                None,
                format!("vote of {} without a leader proposal", v.signer),
            );
            return;
        }
        let Some(sample) = self.sample_of(v.signer, v.slot, v.view, v.phase, &v.proof) else {
            // The signer signed this proof: a forged VRF proof is evidence against it.
            self.alarm_once(
                v.slot,
                v.signer,
                AlarmKind::BadVrfProof,
                format!(
                    "replica {} sent a VRF proof that does not verify (slot {} view {})",
                    v.signer, v.slot, v.view
                ),
                out,
            );
            return;
        };
        self.note_leader(v.slot, v.view, digest, out);
        let key = (v.phase, v.view, v.signer);
        let prev = *self.inst(v.slot).seen.entry(key).or_insert(digest);
        if prev != digest {
            self.alarm_once(
                v.slot,
                v.signer,
                AlarmKind::Equivocation,
                format!(
                    "replica {} voted for two values in slot {} view {}",
                    v.signer, v.slot, v.view
                ),
                out,
            );
            return;
        }
        if sample.binary_search(&me).is_err() {
            self.out_of_sample += 1;
            return;
        }
        let inst = self.inst(v.slot);
        if inst.decided.is_some() {
            return;
        }
        inst.votes
            .entry((v.phase, v.view, digest))
            .or_default()
            .insert(v.signer, v.clone());
        let cur = inst.view;
        match v.phase {
            Phase::Prepare => {
                if v.view == cur && !self.inst(v.slot).accepted.contains_key(&cur) {
                    self.accept(v.slot, v.view, v.value.clone(), v.leader_sig, out);
                } else if v.view == cur {
                    self.check_progress(v.slot, cur, out);
                }
            }
            Phase::Commit => self.check_decide(v.slot, v.view, digest, out),
        }
    }

    fn on_view_change(&mut self, from: NodeId, vc: &Arc<ViewChange>, out: &mut Outbox<ProbftMsg>) {
        let _ = from;
        let known = self
            .inst(vc.slot)
            .vcs
            .get(&vc.view)
            .and_then(|m| m.get(&vc.signer))
            .is_some_and(|k| **k == **vc);
        if !known && !self.valid_vc(vc) {
            out.alarm(
                AlarmKind::BadSignature,
                None,
                format!("view change claiming signer {}", vc.signer),
            );
            return;
        }
        let slot = vc.slot;
        if let Some(d) = self.inst(slot).decided.clone() {
            if vc.signer != self.me() && self.inst(slot).answered.insert((vc.signer, vc.view)) {
                out.send(vc.signer, ProbftMsg::Decided(d));
            }
            return;
        }
        self.inst(slot)
            .vcs
            .entry(vc.view)
            .or_default()
            .insert(vc.signer, vc.clone());
        let cur = self.inst(slot).view;
        // Join a higher view that f + 1 replicas ask for (one of them is honest).
        let f = self.cfg.f as usize;
        let join = self
            .inst(slot)
            .vcs
            .range(cur + 1..)
            .filter(|(_, m)| m.len() > f)
            .map(|(v, _)| *v)
            .max();
        if let Some(v) = join {
            self.move_to_view(slot, v, out);
        }
        self.propose_if_leader(slot, out);
    }

    fn on_decided(&mut self, c: &Arc<QuorumCert>, out: &mut Outbox<ProbftMsg>) {
        if c.phase != Phase::Commit {
            return;
        }
        if verify_cert_with(&self.cfg, &self.keys, &self.vrf_keys, &self.samples, c).is_err() {
            out.alarm(
                AlarmKind::Garbage,
                None,
                format!("invalid decision certificate for slot {}", c.slot),
            );
            return;
        }
        match self.inst(c.slot).decided.clone() {
            Some(mine) => {
                if value_digest(&mine.value) != value_digest(&c.value) {
                    self.integrity.push(EngineEvent::DataIntegrityViolation {
                        engine: super::ENGINE.to_owned(),
                        at_ms: self.now,
                        violation: IntegrityKind::ConflictingCommit,
                        detail: format!(
                            "slot {}: decided in view {} by {} conflicts with this replica's decision in view {}",
                            c.slot, c.view, c.holder, mine.view
                        ),
                    });
                }
            }
            None => self.decide(c.slot, c.clone(), out),
        }
    }

    fn on_msg(&mut self, from: NodeId, msg: &ProbftMsg, out: &mut Outbox<ProbftMsg>) {
        let slot = match msg {
            ProbftMsg::Propose(p) => p.slot,
            ProbftMsg::Vote(v) => v.slot,
            ProbftMsg::ViewChange(vc) => vc.slot,
            ProbftMsg::Decided(c) => c.slot,
        };
        if !self.slot_ok(slot) {
            return;
        }
        let before = self.inst(slot).timers_armed;
        match msg {
            ProbftMsg::Propose(p) => self.on_propose(p, out),
            ProbftMsg::Vote(v) => self.on_vote(v, out),
            ProbftMsg::ViewChange(vc) => self.on_view_change(from, vc, out),
            ProbftMsg::Decided(c) => self.on_decided(c, out),
        }
        if !before && self.inst(slot).decided.is_none() {
            self.arm(slot, out);
        }
    }
}

/// Verify `signer`'s VRF proof for `(slot, view, phase)` and return its sample (cached).
#[allow(clippy::too_many_arguments)]
pub(crate) fn sample_cached(
    cfg: &ProbftConfig,
    vrf_keys: &[VrfPublic],
    cache: &SampleCache,
    signer: NodeId,
    slot: u64,
    view: u64,
    phase: Phase,
    proof: &VrfProof,
) -> Option<Arc<Vec<NodeId>>> {
    if !cfg.sampled() {
        return Some(Arc::new((0..cfg.n).collect()));
    }
    let key = (signer, slot, view, phase);
    if let Ok(c) = cache.lock() {
        if let Some((p, s)) = c.get(&key) {
            if p == proof {
                return Some(s.clone());
            }
        }
    }
    let pk = vrf_keys.get(signer as usize)?;
    let beta: VrfOutput = pk.verify(&vrf_alpha(slot, view, phase), proof).ok()?;
    let s = Arc::new(sample_from_beta(&beta, cfg.n, cfg.sample_size()));
    if let Ok(mut c) = cache.lock() {
        c.insert(key, (*proof, s.clone()));
    }
    Some(s)
}

/// Check a quorum certificate: `q` distinct members, every signature and VRF proof valid, every
/// vote of the certificate's phase, slot, view and value, the leader's proposal signature, and the
/// holder in every voter's sample.
pub(crate) fn verify_cert_with(
    cfg: &ProbftConfig,
    keys: &PublicKeys,
    vrf_keys: &[VrfPublic],
    cache: &SampleCache,
    c: &QuorumCert,
) -> Result<(), String> {
    let digest = value_digest(&c.value);
    let leader = cfg.leader(c.slot, c.view);
    let mut signers = BTreeSet::new();
    for v in &c.votes {
        if v.phase != c.phase || v.slot != c.slot || v.view != c.view || *v.value != *c.value {
            return Err(format!("vote of {} is for another statement", v.signer));
        }
        if !keys.is_member(v.signer) || !signers.insert(v.signer) {
            return Err(format!(
                "signer {} is not a member or appears twice",
                v.signer
            ));
        }
        if !keys.verify(
            v.signer,
            &vote_statement(v.phase, v.slot, v.view, &digest, &v.proof),
            &v.sig,
        ) {
            return Err(format!("signature of {} does not verify", v.signer));
        }
        if !keys.verify(
            leader,
            &proposal_statement(c.slot, c.view, &digest),
            &v.leader_sig,
        ) {
            return Err(format!("vote of {} lacks the leader's proposal", v.signer));
        }
        let sample = sample_cached(
            cfg, vrf_keys, cache, v.signer, v.slot, v.view, v.phase, &v.proof,
        )
        .ok_or_else(|| format!("VRF proof of {} does not verify", v.signer))?;
        if sample.binary_search(&c.holder).is_err() {
            return Err(format!(
                "holder {} is not in the sample of {}",
                c.holder, v.signer
            ));
        }
    }
    if signers.len() < cfg.quorum() {
        return Err(format!("{} votes, {} needed", signers.len(), cfg.quorum()));
    }
    Ok(())
}

impl Protocol for Replica {
    type Msg = ProbftMsg;
    type Input = Submit;
    type Output = Decision;

    fn on_message(&mut self, now: u64, from: NodeId, msg: &ProbftMsg, out: &mut Outbox<ProbftMsg>) {
        self.now = now;
        self.on_msg(from, msg, out);
    }

    fn on_timer(&mut self, now: u64, id: TimerId, out: &mut Outbox<ProbftMsg>) {
        self.now = now;
        let (slot, kind) = (id >> 2, id & 3);
        if self.insts.get(&slot).is_none_or(|i| i.decided.is_some()) {
            return;
        }
        match kind {
            TIMER_VIEW => {
                let next = self.inst(slot).view + 1;
                self.move_to_view(slot, next, out);
            }
            TIMER_RETRANSMIT => {
                let sends = self.inst(slot).my_sends.clone();
                for (to, m) in sends {
                    if to != self.me() {
                        out.send_shared(to, m);
                    }
                }
                if let Some(vc) = self.inst(slot).my_vc.clone() {
                    let me = self.me();
                    let msg = Arc::new(ProbftMsg::ViewChange(vc));
                    for to in (0..self.cfg.n).filter(|t| *t != me) {
                        out.send_shared(to, msg.clone());
                    }
                }
                out.set_timer(
                    timer_id(slot, TIMER_RETRANSMIT),
                    now + self.cfg.retransmit_ms,
                );
            }
            _ => {}
        }
    }

    fn on_input(&mut self, now: u64, input: Submit, out: &mut Outbox<ProbftMsg>) {
        self.now = now;
        self.max_slot = self.max_slot.max(input.slot);
        let slot = input.slot;
        self.inst(slot).input = Some(Arc::from(input.value));
        if self.inst(slot).decided.is_some() {
            return;
        }
        self.arm(slot, out);
        self.propose_if_leader(slot, out);
    }

    fn drain_committed(&mut self) -> Vec<Decision> {
        std::mem::take(&mut self.committed)
    }
}
