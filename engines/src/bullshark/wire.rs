//! Canonical encodings of Bullshark messages, inputs and outputs, with decoders (the TCP
//! transport parses what a peer sent; counts are bounded before anything is allocated).

use std::sync::Arc;

use crate::sim::crypto::Digest32;
use crate::sim::wire::{put_bytes, put_u32, put_u64, put_u8, Decode, DecodeError, Reader, Wire};

use super::{Batch, BullsharkMsg, Certificate, Header, Ordered, Submit, Tx, Vote};

const MAX_ITEMS: u32 = 1 << 20;

fn count(r: &mut Reader<'_>) -> Result<usize, DecodeError> {
    let k = r.u32()?;
    if k > MAX_ITEMS || k as usize > r.remaining() {
        return Err(DecodeError::TooLong(k));
    }
    Ok(k as usize)
}

fn put_digests(buf: &mut Vec<u8>, ds: &[Digest32]) {
    put_u32(buf, ds.len() as u32);
    for d in ds {
        buf.extend_from_slice(d);
    }
}

fn get_digests(r: &mut Reader<'_>) -> Result<Vec<Digest32>, DecodeError> {
    let k = count(r)?;
    (0..k).map(|_| r.array()).collect()
}

fn put_batch(buf: &mut Vec<u8>, b: &Batch) {
    put_u32(buf, b.author);
    put_u32(buf, b.txs.len() as u32);
    for t in &b.txs {
        put_u64(buf, t.id);
        put_bytes(buf, &t.payload);
    }
}

fn get_batch(r: &mut Reader<'_>) -> Result<Batch, DecodeError> {
    let author = r.u32()?;
    let k = count(r)?;
    let mut txs = Vec::with_capacity(k);
    for _ in 0..k {
        txs.push(Tx {
            id: r.u64()?,
            payload: Arc::from(r.bytes()?),
        });
    }
    Ok(Batch { author, txs })
}

fn put_header(buf: &mut Vec<u8>, h: &Header) {
    put_u32(buf, h.author);
    put_u64(buf, h.round);
    put_digests(buf, &h.batches);
    put_digests(buf, &h.parents);
    put_u32(buf, h.weak.len() as u32);
    for (round, d) in &h.weak {
        put_u64(buf, *round);
        buf.extend_from_slice(d);
    }
    buf.extend_from_slice(&h.sig);
}

fn get_header(r: &mut Reader<'_>) -> Result<Header, DecodeError> {
    let author = r.u32()?;
    let round = r.u64()?;
    let batches = get_digests(r)?;
    let parents = get_digests(r)?;
    let k = count(r)?;
    let mut weak = Vec::with_capacity(k);
    for _ in 0..k {
        weak.push((r.u64()?, r.array()?));
    }
    Ok(Header {
        author,
        round,
        batches,
        parents,
        weak,
        sig: r.array()?,
    })
}

fn put_cert(buf: &mut Vec<u8>, c: &Certificate) {
    put_header(buf, &c.header);
    put_u32(buf, c.votes.len() as u32);
    for (v, s) in &c.votes {
        put_u32(buf, *v);
        buf.extend_from_slice(s);
    }
}

fn get_cert(r: &mut Reader<'_>) -> Result<Certificate, DecodeError> {
    let header = get_header(r)?;
    let k = count(r)?;
    let mut votes = Vec::with_capacity(k);
    for _ in 0..k {
        votes.push((r.u32()?, r.array()?));
    }
    Ok(Certificate::new(header, votes))
}

impl Wire for BullsharkMsg {
    fn wire(&self, buf: &mut Vec<u8>) {
        match self {
            Self::Batch(b) => {
                put_u8(buf, 0);
                put_batch(buf, b);
            }
            Self::Header(h) => {
                put_u8(buf, 1);
                put_header(buf, h);
            }
            Self::Vote(v) => {
                put_u8(buf, 2);
                buf.extend_from_slice(&v.header);
                put_u64(buf, v.round);
                put_u32(buf, v.voter);
                buf.extend_from_slice(&v.sig);
            }
            Self::Cert(c) => {
                put_u8(buf, 3);
                put_cert(buf, c);
            }
            Self::FetchCerts(ds) => {
                put_u8(buf, 4);
                put_digests(buf, ds);
            }
            Self::FetchBatches(ds) => {
                put_u8(buf, 5);
                put_digests(buf, ds);
            }
        }
    }
    fn kind(&self) -> &'static str {
        match self {
            Self::Batch(_) => "batch",
            Self::Header(_) => "header",
            Self::Vote(_) => "vote",
            Self::Cert(_) => "certificate",
            Self::FetchCerts(_) => "fetch_certs",
            Self::FetchBatches(_) => "fetch_batches",
        }
    }
}

impl Decode for BullsharkMsg {
    fn decode_from(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(match r.u8()? {
            0 => Self::Batch(Arc::new(get_batch(r)?)),
            1 => Self::Header(Arc::new(get_header(r)?)),
            2 => Self::Vote(Vote {
                header: r.array()?,
                round: r.u64()?,
                voter: r.u32()?,
                sig: r.array()?,
            }),
            3 => Self::Cert(Arc::new(get_cert(r)?)),
            4 => Self::FetchCerts(get_digests(r)?),
            5 => Self::FetchBatches(get_digests(r)?),
            t => return Err(DecodeError::BadTag(t)),
        })
    }
}

impl Wire for Submit {
    fn wire(&self, buf: &mut Vec<u8>) {
        put_u64(buf, self.id);
        put_bytes(buf, &self.payload);
    }
    fn kind(&self) -> &'static str {
        "submit"
    }
}

impl Decode for Submit {
    fn decode_from(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(Self {
            id: r.u64()?,
            payload: r.bytes()?.to_vec(),
        })
    }
}

impl Wire for Ordered {
    fn wire(&self, buf: &mut Vec<u8>) {
        match self {
            Self::Cert {
                leader_round,
                round,
                author,
                digest,
            } => {
                put_u8(buf, 0);
                put_u64(buf, *leader_round);
                put_u64(buf, *round);
                put_u32(buf, *author);
                buf.extend_from_slice(digest);
            }
            Self::Tx {
                leader_round,
                round,
                origin,
                id,
                payload,
            } => {
                put_u8(buf, 1);
                put_u64(buf, *leader_round);
                put_u64(buf, *round);
                put_u32(buf, *origin);
                put_u64(buf, *id);
                put_bytes(buf, payload);
            }
        }
    }
    fn kind(&self) -> &'static str {
        match self {
            Self::Cert { .. } => "ordered_cert",
            Self::Tx { .. } => "ordered_tx",
        }
    }
}

impl Decode for Ordered {
    fn decode_from(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(match r.u8()? {
            0 => Self::Cert {
                leader_round: r.u64()?,
                round: r.u64()?,
                author: r.u32()?,
                digest: r.array()?,
            },
            1 => Self::Tx {
                leader_round: r.u64()?,
                round: r.u64()?,
                origin: r.u32()?,
                id: r.u64()?,
                payload: Arc::from(r.bytes()?),
            },
            t => return Err(DecodeError::BadTag(t)),
        })
    }
}
