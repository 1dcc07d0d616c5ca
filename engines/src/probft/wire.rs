//! Canonical encodings of ProBFT messages, inputs and outputs (trace hashes, byte accounting).

use crate::sim::wire::{put_bytes, put_u32, put_u64, put_u8, Wire};

use super::{ProbftMsg, Proposal, QuorumCert, Submit, ViewChange, Vote};

fn put_vote(buf: &mut Vec<u8>, v: &Vote) {
    put_u8(buf, v.phase as u8);
    put_u64(buf, v.slot);
    put_u64(buf, v.view);
    put_bytes(buf, &v.value);
    put_u32(buf, v.signer);
    buf.extend_from_slice(&v.proof);
    buf.extend_from_slice(&v.sig);
    buf.extend_from_slice(&v.leader_sig);
}

fn put_cert(buf: &mut Vec<u8>, c: &QuorumCert) {
    put_u8(buf, c.phase as u8);
    put_u64(buf, c.slot);
    put_u64(buf, c.view);
    put_bytes(buf, &c.value);
    put_u32(buf, c.holder);
    put_u32(buf, c.votes.len() as u32);
    for v in &c.votes {
        put_vote(buf, v);
    }
}

fn put_vc(buf: &mut Vec<u8>, vc: &ViewChange) {
    put_u64(buf, vc.slot);
    put_u64(buf, vc.view);
    put_u32(buf, vc.signer);
    match &vc.prepared {
        None => put_u8(buf, 0),
        Some(c) => {
            put_u8(buf, 1);
            put_cert(buf, c);
        }
    }
    buf.extend_from_slice(&vc.sig);
}

fn put_proposal(buf: &mut Vec<u8>, p: &Proposal) {
    put_u64(buf, p.slot);
    put_u64(buf, p.view);
    put_bytes(buf, &p.value);
    buf.extend_from_slice(&p.sig);
    put_u32(buf, p.justify.len() as u32);
    for vc in &p.justify {
        put_vc(buf, vc);
    }
}

impl Wire for ProbftMsg {
    fn wire(&self, buf: &mut Vec<u8>) {
        match self {
            Self::Propose(p) => {
                put_u8(buf, 1);
                put_proposal(buf, p);
            }
            Self::Vote(v) => {
                put_u8(buf, 2);
                put_vote(buf, v);
            }
            Self::ViewChange(vc) => {
                put_u8(buf, 3);
                put_vc(buf, vc);
            }
            Self::Decided(c) => {
                put_u8(buf, 4);
                put_cert(buf, c);
            }
        }
    }

    fn kind(&self) -> &'static str {
        match self {
            Self::Propose(_) => "propose",
            Self::Vote(v) if v.phase == super::Phase::Prepare => "prepare",
            Self::Vote(_) => "commit",
            Self::ViewChange(_) => "view-change",
            Self::Decided(_) => "decided",
        }
    }
}

impl Wire for Submit {
    fn wire(&self, buf: &mut Vec<u8>) {
        put_u64(buf, self.slot);
        put_bytes(buf, &self.value);
    }
}

impl Wire for std::sync::Arc<QuorumCert> {
    fn wire(&self, buf: &mut Vec<u8>) {
        put_cert(buf, self);
    }
}
