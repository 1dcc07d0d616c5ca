//! # Length-prefixed canonical encodings
//!
//! [`Wire`] is the one byte encoding of a message, input or output: it feeds trace hashes, the
//! message-size accounting of the network model, and (with [`Decode`]) the TCP transport, which
//! must parse what a peer sent. Every variable-length field is prefixed with its `u32` length and
//! integers are little-endian, so an encoding is unambiguous and [`Decode`] can reject truncated
//! or trailing bytes instead of guessing.

use thiserror::Error;

/// Canonical byte encoding.
pub trait Wire {
    fn wire(&self, buf: &mut Vec<u8>);
    /// A short stable name for per-kind message counts ("echo", "prepare", …).
    fn kind(&self) -> &'static str {
        "msg"
    }
}

/// Why bytes did not decode.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum DecodeError {
    #[error("input ended early")]
    Truncated,
    #[error("unknown tag {0}")]
    BadTag(u8),
    #[error("{0} trailing bytes")]
    Trailing(usize),
    #[error("length {0} exceeds the limit")]
    TooLong(u32),
}

/// The inverse of [`Wire`].
pub trait Decode: Sized {
    fn decode_from(r: &mut Reader<'_>) -> Result<Self, DecodeError>;

    /// Decode exactly `bytes` (no trailing garbage).
    fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        let mut r = Reader::new(bytes);
        let v = Self::decode_from(&mut r)?;
        match r.remaining() {
            0 => Ok(v),
            k => Err(DecodeError::Trailing(k)),
        }
    }
}

/// Longest variable-length field a decoder accepts (bounds allocation on hostile input).
pub const MAX_FIELD: u32 = 16 << 20;

pub fn put_u8(buf: &mut Vec<u8>, v: u8) {
    buf.push(v);
}
pub fn put_u32(buf: &mut Vec<u8>, v: u32) {
    buf.extend_from_slice(&v.to_le_bytes());
}
pub fn put_u64(buf: &mut Vec<u8>, v: u64) {
    buf.extend_from_slice(&v.to_le_bytes());
}
/// A length-prefixed byte string.
pub fn put_bytes(buf: &mut Vec<u8>, v: &[u8]) {
    put_u32(buf, v.len() as u32);
    buf.extend_from_slice(v);
}

/// A cursor over bytes being decoded.
#[derive(Debug)]
pub struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    pub fn new(bytes: &'a [u8]) -> Self {
        Self { bytes, pos: 0 }
    }

    pub fn remaining(&self) -> usize {
        self.bytes.len() - self.pos
    }

    pub fn take(&mut self, k: usize) -> Result<&'a [u8], DecodeError> {
        if self.remaining() < k {
            return Err(DecodeError::Truncated);
        }
        let s = &self.bytes[self.pos..self.pos + k];
        self.pos += k;
        Ok(s)
    }

    pub fn array<const K: usize>(&mut self) -> Result<[u8; K], DecodeError> {
        let mut a = [0u8; K];
        a.copy_from_slice(self.take(K)?);
        Ok(a)
    }

    pub fn u8(&mut self) -> Result<u8, DecodeError> {
        Ok(self.array::<1>()?[0])
    }
    pub fn u32(&mut self) -> Result<u32, DecodeError> {
        Ok(u32::from_le_bytes(self.array()?))
    }
    pub fn u64(&mut self) -> Result<u64, DecodeError> {
        Ok(u64::from_le_bytes(self.array()?))
    }
    /// A length-prefixed byte string.
    pub fn bytes(&mut self) -> Result<&'a [u8], DecodeError> {
        let len = self.u32()?;
        if len > MAX_FIELD {
            return Err(DecodeError::TooLong(len));
        }
        self.take(len as usize)
    }
}

/// Encode `v` into a fresh buffer.
pub fn encode<W: Wire + ?Sized>(v: &W) -> Vec<u8> {
    let mut buf = Vec::new();
    v.wire(&mut buf);
    buf
}
