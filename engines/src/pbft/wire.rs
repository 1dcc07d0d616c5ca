//! Canonical encodings of PBFT messages, inputs and outputs, and the decoders the durable store
//! (and a transport) need for requests, batches, certificates and ledger entries.

use std::sync::Arc;

use crate::sim::crypto::Certificate;
use crate::sim::wire::{put_bytes, put_u32, put_u64, put_u8, DecodeError, Reader, Wire};

use super::{
    Batch, Decided, LedgerEntry, PbftMsg, PreparedProof, Request, Stable, Submit, ViewChange,
};

const MAX_ITEMS: u32 = 1 << 20;

pub(super) fn put_request(buf: &mut Vec<u8>, r: &Request) {
    put_u32(buf, r.client);
    put_u64(buf, r.id);
    put_bytes(buf, &r.payload);
    buf.extend_from_slice(&r.sig);
}

pub(super) fn get_request(r: &mut Reader<'_>) -> Result<Request, DecodeError> {
    Ok(Request {
        client: r.u32()?,
        id: r.u64()?,
        payload: Arc::from(r.bytes()?),
        sig: r.array()?,
    })
}

fn count(r: &mut Reader<'_>) -> Result<u32, DecodeError> {
    let k = r.u32()?;
    if k > MAX_ITEMS {
        return Err(DecodeError::TooLong(k));
    }
    Ok(k)
}

pub(super) fn put_batch(buf: &mut Vec<u8>, b: &[Request]) {
    put_u32(buf, b.len() as u32);
    for r in b {
        put_request(buf, r);
    }
}

pub(super) fn get_batch(r: &mut Reader<'_>) -> Result<Batch, DecodeError> {
    let k = count(r)?;
    let mut v = Vec::new();
    for _ in 0..k {
        v.push(get_request(r)?);
    }
    Ok(Arc::new(v))
}

pub(super) fn put_cert(buf: &mut Vec<u8>, c: &Certificate) {
    put_bytes(buf, &c.statement);
    put_u32(buf, c.sigs.len() as u32);
    for (id, sig) in &c.sigs {
        put_u32(buf, *id);
        buf.extend_from_slice(sig);
    }
}

pub(super) fn get_cert(r: &mut Reader<'_>) -> Result<Certificate, DecodeError> {
    let statement = r.bytes()?.to_vec();
    let k = count(r)?;
    let mut sigs = Vec::new();
    for _ in 0..k {
        sigs.push((r.u32()?, r.array()?));
    }
    Ok(Certificate { statement, sigs })
}

/// `(view, seq, batch, cert)`: a ledger entry or a prepared proof.
pub(crate) fn put_entry(
    buf: &mut Vec<u8>,
    view: u64,
    seq: u64,
    batch: &[Request],
    cert: &Certificate,
) {
    put_u64(buf, view);
    put_u64(buf, seq);
    put_batch(buf, batch);
    put_cert(buf, cert);
}

pub(crate) fn get_entry(r: &mut Reader<'_>) -> Result<LedgerEntry, DecodeError> {
    Ok(LedgerEntry {
        view: r.u64()?,
        seq: r.u64()?,
        batch: get_batch(r)?,
        cert: Arc::new(get_cert(r)?),
    })
}

pub(super) fn get_proof(r: &mut Reader<'_>) -> Result<PreparedProof, DecodeError> {
    let e = get_entry(r)?;
    Ok(PreparedProof {
        view: e.view,
        seq: e.seq,
        batch: e.batch,
        cert: e.cert,
    })
}

pub(super) fn put_stable(buf: &mut Vec<u8>, s: &Stable) {
    put_u64(buf, s.seq);
    buf.extend_from_slice(&s.state);
    match &s.cert {
        Some(c) => {
            put_u8(buf, 1);
            put_cert(buf, c);
        }
        None => put_u8(buf, 0),
    }
}

pub(super) fn get_stable(r: &mut Reader<'_>) -> Result<Stable, DecodeError> {
    let seq = r.u64()?;
    let state = r.array()?;
    let cert = match r.u8()? {
        0 => None,
        1 => Some(Arc::new(get_cert(r)?)),
        t => return Err(DecodeError::BadTag(t)),
    };
    Ok(Stable { seq, state, cert })
}

fn put_vc(buf: &mut Vec<u8>, vc: &ViewChange) {
    put_u64(buf, vc.view);
    put_u32(buf, vc.signer);
    put_u64(buf, vc.executed);
    put_stable(buf, &vc.stable);
    put_u32(buf, vc.prepared.len() as u32);
    for p in &vc.prepared {
        put_entry(buf, p.view, p.seq, &p.batch, &p.cert);
    }
    buf.extend_from_slice(&vc.sig);
}

impl Wire for PbftMsg {
    fn wire(&self, buf: &mut Vec<u8>) {
        match self {
            Self::Request(r) => {
                put_u8(buf, 0);
                put_request(buf, r);
            }
            Self::PrePrepare {
                view,
                seq,
                batch,
                sig,
            } => {
                put_u8(buf, 1);
                put_u64(buf, *view);
                put_u64(buf, *seq);
                put_batch(buf, batch);
                buf.extend_from_slice(sig);
            }
            Self::Prepare {
                view,
                seq,
                digest,
                signer,
                sig,
            }
            | Self::Commit {
                view,
                seq,
                digest,
                signer,
                sig,
            } => {
                put_u8(
                    buf,
                    if matches!(self, Self::Prepare { .. }) {
                        2
                    } else {
                        3
                    },
                );
                put_u64(buf, *view);
                put_u64(buf, *seq);
                buf.extend_from_slice(digest);
                put_u32(buf, *signer);
                buf.extend_from_slice(sig);
            }
            Self::Checkpoint {
                seq,
                state,
                signer,
                sig,
            } => {
                put_u8(buf, 4);
                put_u64(buf, *seq);
                buf.extend_from_slice(state);
                put_u32(buf, *signer);
                buf.extend_from_slice(sig);
            }
            Self::ViewChange(vc) => {
                put_u8(buf, 5);
                put_vc(buf, vc);
            }
            Self::NewView(nv) => {
                put_u8(buf, 6);
                put_u64(buf, nv.view);
                put_u32(buf, nv.vcs.len() as u32);
                for vc in &nv.vcs {
                    put_vc(buf, vc);
                }
                put_u32(buf, nv.pre.len() as u32);
                for (seq, b, sig) in &nv.pre {
                    put_u64(buf, *seq);
                    put_batch(buf, b);
                    buf.extend_from_slice(sig);
                }
            }
            Self::Reply {
                client,
                id,
                seq,
                signer,
                sig,
            } => {
                put_u8(buf, 7);
                put_u32(buf, *client);
                put_u64(buf, *id);
                put_u64(buf, *seq);
                put_u32(buf, *signer);
                buf.extend_from_slice(sig);
            }
            Self::Fetch { from_seq } => {
                put_u8(buf, 8);
                put_u64(buf, *from_seq);
            }
            Self::Entries(es) => {
                put_u8(buf, 9);
                put_u32(buf, es.len() as u32);
                for e in es.iter() {
                    put_entry(buf, e.view, e.seq, &e.batch, &e.cert);
                }
            }
        }
    }

    fn kind(&self) -> &'static str {
        match self {
            Self::Request(_) => "request",
            Self::PrePrepare { .. } => "pre-prepare",
            Self::Prepare { .. } => "prepare",
            Self::Commit { .. } => "commit",
            Self::Checkpoint { .. } => "checkpoint",
            Self::ViewChange(_) => "view-change",
            Self::NewView(_) => "new-view",
            Self::Reply { .. } => "reply",
            Self::Fetch { .. } => "fetch",
            Self::Entries(_) => "entries",
        }
    }
}

impl Wire for Submit {
    fn wire(&self, buf: &mut Vec<u8>) {
        put_u64(buf, self.id);
        put_bytes(buf, &self.payload);
    }
}

impl Wire for Decided {
    fn wire(&self, buf: &mut Vec<u8>) {
        put_u64(buf, self.view);
        put_u64(buf, self.seq);
        put_u32(buf, self.pos);
        let (c, i) = self.key();
        put_u32(buf, c);
        put_u64(buf, i);
        buf.extend_from_slice(&self.cert.digest());
    }
}

fn get_vc(r: &mut Reader<'_>) -> Result<ViewChange, DecodeError> {
    let view = r.u64()?;
    let signer = r.u32()?;
    let executed = r.u64()?;
    let stable = get_stable(r)?;
    let k = count(r)?;
    let mut prepared = Vec::new();
    for _ in 0..k {
        prepared.push(get_proof(r)?);
    }
    Ok(ViewChange {
        view,
        signer,
        executed,
        stable,
        prepared,
        sig: r.array()?,
    })
}

/// The transport's decoder: the inverse of [`Wire`] for every message.
impl crate::sim::wire::Decode for PbftMsg {
    fn decode_from(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(match r.u8()? {
            0 => Self::Request(Arc::new(get_request(r)?)),
            1 => Self::PrePrepare {
                view: r.u64()?,
                seq: r.u64()?,
                batch: get_batch(r)?,
                sig: r.array()?,
            },
            t @ (2 | 3) => {
                let (view, seq, digest, signer, sig) =
                    (r.u64()?, r.u64()?, r.array()?, r.u32()?, r.array()?);
                if t == 2 {
                    Self::Prepare {
                        view,
                        seq,
                        digest,
                        signer,
                        sig,
                    }
                } else {
                    Self::Commit {
                        view,
                        seq,
                        digest,
                        signer,
                        sig,
                    }
                }
            }
            4 => Self::Checkpoint {
                seq: r.u64()?,
                state: r.array()?,
                signer: r.u32()?,
                sig: r.array()?,
            },
            5 => Self::ViewChange(Arc::new(get_vc(r)?)),
            6 => {
                let view = r.u64()?;
                let k = count(r)?;
                let mut vcs = Vec::new();
                for _ in 0..k {
                    vcs.push(Arc::new(get_vc(r)?));
                }
                let k = count(r)?;
                let mut pre = Vec::new();
                for _ in 0..k {
                    pre.push((r.u64()?, get_batch(r)?, r.array()?));
                }
                Self::NewView(Arc::new(super::NewView { view, vcs, pre }))
            }
            7 => Self::Reply {
                client: r.u32()?,
                id: r.u64()?,
                seq: r.u64()?,
                signer: r.u32()?,
                sig: r.array()?,
            },
            8 => Self::Fetch { from_seq: r.u64()? },
            9 => {
                let k = count(r)?;
                let mut es = Vec::new();
                for _ in 0..k {
                    es.push(get_entry(r)?);
                }
                Self::Entries(Arc::new(es))
            }
            t => return Err(DecodeError::BadTag(t)),
        })
    }
}

impl crate::sim::wire::Decode for Submit {
    fn decode_from(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(Self {
            id: r.u64()?,
            payload: r.bytes()?.to_vec(),
        })
    }
}
