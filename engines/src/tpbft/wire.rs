//! Canonical encodings (and decoders, for the transport) of T-PBFT messages and payloads.

use std::sync::Arc;

use crate::pbft::wire::{get_entry, put_entry};
use crate::pbft::PbftMsg;
use crate::sim::wire::{put_bytes, put_u32, put_u64, put_u8, Decode, DecodeError, Reader, Wire};

use super::{
    EquivocationProof, Evidence, EvidenceEntry, Payload, TpbftMsg, TpbftOut, Tx, TxSubmit,
};

const MAX_ITEMS: u32 = 1 << 20;

fn count(r: &mut Reader<'_>) -> Result<u32, DecodeError> {
    let k = r.u32()?;
    if k > MAX_ITEMS {
        return Err(DecodeError::TooLong(k));
    }
    Ok(k)
}

fn put_tx(buf: &mut Vec<u8>, t: &Tx) {
    put_u32(buf, t.origin);
    put_u64(buf, t.id);
    put_bytes(buf, &t.payload);
    buf.extend_from_slice(&t.sig);
}

fn get_tx(r: &mut Reader<'_>) -> Result<Tx, DecodeError> {
    Ok(Tx {
        origin: r.u32()?,
        id: r.u64()?,
        payload: Arc::from(r.bytes()?),
        sig: r.array()?,
    })
}

impl Wire for Payload {
    fn wire(&self, buf: &mut Vec<u8>) {
        match self {
            Self::Tx(t) => {
                put_u8(buf, 0);
                put_tx(buf, t);
            }
            Self::Evidence(e) => {
                put_u8(buf, 1);
                put_u64(buf, e.epoch);
                put_u32(buf, e.entries.len() as u32);
                for en in &e.entries {
                    put_u64(buf, en.seq);
                    put_u64(buf, en.view);
                    buf.extend_from_slice(&en.digest);
                    put_u32(buf, en.sigs.len() as u32);
                    for (id, sig) in &en.sigs {
                        put_u32(buf, *id);
                        buf.extend_from_slice(sig);
                    }
                }
                put_u32(buf, e.proofs.len() as u32);
                for p in &e.proofs {
                    put_u32(buf, p.signer);
                    put_u64(buf, p.view);
                    put_u64(buf, p.seq);
                    for (d, s) in [&p.a, &p.b] {
                        buf.extend_from_slice(d);
                        buf.extend_from_slice(s);
                    }
                }
            }
        }
    }
}

impl Decode for Payload {
    fn decode_from(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        match r.u8()? {
            0 => Ok(Self::Tx(get_tx(r)?)),
            1 => {
                let epoch = r.u64()?;
                let k = count(r)?;
                let mut entries = Vec::new();
                for _ in 0..k {
                    let (seq, view, digest) = (r.u64()?, r.u64()?, r.array()?);
                    let m = count(r)?;
                    let mut sigs = Vec::new();
                    for _ in 0..m {
                        sigs.push((r.u32()?, r.array()?));
                    }
                    entries.push(EvidenceEntry {
                        seq,
                        view,
                        digest,
                        sigs,
                    });
                }
                let k = count(r)?;
                let mut proofs = Vec::new();
                for _ in 0..k {
                    proofs.push(EquivocationProof {
                        signer: r.u32()?,
                        view: r.u64()?,
                        seq: r.u64()?,
                        a: (r.array()?, r.array()?),
                        b: (r.array()?, r.array()?),
                    });
                }
                Ok(Self::Evidence(Evidence {
                    epoch,
                    entries,
                    proofs,
                }))
            }
            t => Err(DecodeError::BadTag(t)),
        }
    }
}

impl Wire for TpbftMsg {
    fn wire(&self, buf: &mut Vec<u8>) {
        match self {
            Self::Inner { epoch, msg } => {
                put_u8(buf, 0);
                put_u64(buf, *epoch);
                msg.wire(buf);
            }
            Self::Tx(t) => {
                put_u8(buf, 1);
                put_tx(buf, t);
            }
            Self::Committed(es) => {
                put_u8(buf, 2);
                put_u32(buf, es.len() as u32);
                for (epoch, e) in es.iter() {
                    put_u64(buf, *epoch);
                    put_entry(buf, e.view, e.seq, &e.batch, &e.cert);
                }
            }
            Self::Pull { epoch, seq } => {
                put_u8(buf, 3);
                put_u64(buf, *epoch);
                put_u64(buf, *seq);
            }
        }
    }

    fn kind(&self) -> &'static str {
        match self {
            Self::Inner { msg, .. } => msg.kind(),
            Self::Tx(_) => "tx",
            Self::Committed(_) => "committed",
            Self::Pull { .. } => "pull",
        }
    }
}

impl Decode for TpbftMsg {
    fn decode_from(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        match r.u8()? {
            0 => Ok(Self::Inner {
                epoch: r.u64()?,
                msg: PbftMsg::decode_from(r)?,
            }),
            1 => Ok(Self::Tx(Arc::new(get_tx(r)?))),
            2 => {
                let k = count(r)?;
                let mut es = Vec::new();
                for _ in 0..k {
                    es.push((r.u64()?, get_entry(r)?));
                }
                Ok(Self::Committed(Arc::new(es)))
            }
            3 => Ok(Self::Pull {
                epoch: r.u64()?,
                seq: r.u64()?,
            }),
            t => Err(DecodeError::BadTag(t)),
        }
    }
}

impl Wire for TxSubmit {
    fn wire(&self, buf: &mut Vec<u8>) {
        put_u64(buf, self.id);
        put_bytes(buf, &self.payload);
    }
}

impl Decode for TxSubmit {
    fn decode_from(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(Self {
            id: r.u64()?,
            payload: r.bytes()?.to_vec(),
        })
    }
}

impl Wire for TpbftOut {
    fn wire(&self, buf: &mut Vec<u8>) {
        match self {
            Self::Tx {
                epoch,
                seq,
                pos,
                origin,
                id,
                digest,
                ..
            } => {
                put_u8(buf, 0);
                put_u64(buf, *epoch);
                put_u64(buf, *seq);
                put_u32(buf, *pos);
                put_u32(buf, *origin);
                put_u64(buf, *id);
                buf.extend_from_slice(digest);
            }
            Self::Epoch {
                epoch,
                committee,
                trust_ppb,
                faulty,
            } => {
                put_u8(buf, 1);
                put_u64(buf, *epoch);
                put_u32(buf, committee.len() as u32);
                committee.iter().for_each(|c| put_u32(buf, *c));
                put_u32(buf, trust_ppb.len() as u32);
                trust_ppb.iter().for_each(|t| put_u64(buf, *t));
                put_u32(buf, faulty.len() as u32);
                faulty.iter().for_each(|f| put_u32(buf, *f));
            }
        }
    }
}
