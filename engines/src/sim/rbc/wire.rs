//! Length-prefixed encodings of the broadcast's messages, inputs and outputs, with decoders.

use std::sync::Arc;

use super::super::crypto::Certificate;
use super::super::wire::{put_bytes, put_u32, put_u64, put_u8, Decode, DecodeError, Reader, Wire};
use super::{Broadcast, Delivery, RbcMsg};

/// Most signatures a certificate may carry on the wire (bounds hostile input).
const MAX_SIGS: u32 = 1 << 16;

fn put_cert(c: &Certificate, buf: &mut Vec<u8>) {
    put_bytes(buf, &c.statement);
    put_u32(buf, c.sigs.len() as u32);
    for (id, sig) in &c.sigs {
        put_u32(buf, *id);
        buf.extend_from_slice(sig);
    }
}

fn get_cert(r: &mut Reader<'_>) -> Result<Certificate, DecodeError> {
    let statement = r.bytes()?.to_vec();
    let k = r.u32()?;
    if k > MAX_SIGS {
        return Err(DecodeError::TooLong(k));
    }
    let mut sigs = Vec::with_capacity(k as usize);
    for _ in 0..k {
        sigs.push((r.u32()?, r.array()?));
    }
    Ok(Certificate { statement, sigs })
}

impl Wire for RbcMsg {
    fn wire(&self, buf: &mut Vec<u8>) {
        match self {
            Self::Send {
                origin,
                seq,
                value,
                sig,
            } => {
                put_u8(buf, 0);
                put_u32(buf, *origin);
                put_u64(buf, *seq);
                put_bytes(buf, value);
                buf.extend_from_slice(sig);
            }
            Self::Echo {
                origin,
                seq,
                digest,
                signer,
                sig,
            } => {
                put_u8(buf, 1);
                put_u32(buf, *origin);
                put_u64(buf, *seq);
                buf.extend_from_slice(digest);
                put_u32(buf, *signer);
                buf.extend_from_slice(sig);
            }
            Self::Final {
                origin,
                seq,
                value,
                cert,
            } => {
                put_u8(buf, 2);
                put_u32(buf, *origin);
                put_u64(buf, *seq);
                put_bytes(buf, value);
                put_cert(cert, buf);
            }
        }
    }

    fn kind(&self) -> &'static str {
        match self {
            Self::Send { .. } => "send",
            Self::Echo { .. } => "echo",
            Self::Final { .. } => "final",
        }
    }
}

impl Decode for RbcMsg {
    fn decode_from(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        match r.u8()? {
            0 => Ok(Self::Send {
                origin: r.u32()?,
                seq: r.u64()?,
                value: Arc::from(r.bytes()?),
                sig: r.array()?,
            }),
            1 => Ok(Self::Echo {
                origin: r.u32()?,
                seq: r.u64()?,
                digest: r.array()?,
                signer: r.u32()?,
                sig: r.array()?,
            }),
            2 => Ok(Self::Final {
                origin: r.u32()?,
                seq: r.u64()?,
                value: Arc::from(r.bytes()?),
                cert: Arc::new(get_cert(r)?),
            }),
            t => Err(DecodeError::BadTag(t)),
        }
    }
}

impl Wire for Broadcast {
    fn wire(&self, buf: &mut Vec<u8>) {
        put_bytes(buf, &self.0);
    }
}

impl Decode for Broadcast {
    fn decode_from(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(Self(r.bytes()?.to_vec()))
    }
}

impl Wire for Delivery {
    fn wire(&self, buf: &mut Vec<u8>) {
        put_u32(buf, self.origin);
        put_u64(buf, self.seq);
        put_bytes(buf, &self.value);
        put_cert(&self.cert, buf);
    }
}

impl Decode for Delivery {
    fn decode_from(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(Self {
            origin: r.u32()?,
            seq: r.u64()?,
            value: Arc::from(r.bytes()?),
            cert: Arc::new(get_cert(r)?),
        })
    }
}
