//! # Checksummed frames
//!
//! Layout (little endian): `"DWCF"` · version `1` · codec id · original length `u32` · CRC-32 of
//! the original bytes · CRC-32 of the preceding 14 header bytes and the body · body.
//! Verification on every decompress, in order: structure, frame CRC (catches corruption before
//! any decoder runs), bounded decode, length, content CRC (catches a codec that round-trips
//! wrongly). A failure of the last four is a data-integrity violation (trigger 6); malformed
//! headers are the sender's error, not an integrity signal.

use thiserror::Error;

use super::codec::{Codec, CodecError};
use dwcp_core::signals::{EngineEvent, IntegrityKind};

pub const MAGIC: &[u8; 4] = b"DWCF";
pub const VERSION: u8 = 1;
pub const HEADER_LEN: usize = 18;

/// Why a frame was refused.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum FrameError {
    #[error("frame shorter than its {HEADER_LEN}-byte header")]
    TooShort,
    #[error("bad magic")]
    BadMagic,
    #[error("unsupported frame version {0}")]
    UnsupportedVersion(u8),
    #[error("unknown codec id {0}")]
    UnknownCodec(u8),
    #[error("original length {len} exceeds the limit {max}")]
    TooLarge { len: u64, max: u64 },
    #[error("frame checksum mismatch: header says {expected:#010x}, computed {actual:#010x}")]
    ChecksumMismatch { expected: u32, actual: u32 },
    #[error(
        "content checksum mismatch after decode: expected {expected:#010x}, got {actual:#010x}"
    )]
    ContentChecksumMismatch { expected: u32, actual: u32 },
    #[error("decode failed: {0}")]
    Codec(#[from] CodecError),
}

impl FrameError {
    /// The integrity kind, when this failure is one.
    pub fn integrity(&self) -> Option<IntegrityKind> {
        match self {
            Self::ChecksumMismatch { .. } => Some(IntegrityKind::ChecksumMismatch),
            Self::ContentChecksumMismatch { .. } | Self::Codec(_) => {
                Some(IntegrityKind::RoundTripMismatch)
            }
            _ => None,
        }
    }

    /// The `DataIntegrityViolation` this failure raises, if it is an integrity failure.
    pub fn to_event(&self, engine: &str, at_ms: u64) -> Option<EngineEvent> {
        self.integrity()
            .map(|violation| EngineEvent::DataIntegrityViolation {
                engine: engine.to_owned(),
                at_ms,
                violation,
                detail: self.to_string(),
            })
    }
}

fn frame_crc(header: &[u8], body: &[u8]) -> u32 {
    let mut h = crc32fast::Hasher::new();
    h.update(header);
    h.update(body);
    h.finalize()
}

/// Compress `payload` with `codec` into a frame.
pub fn encode(codec: Codec, payload: &[u8]) -> Result<Vec<u8>, CodecError> {
    let len = u32::try_from(payload.len()).map_err(|_| CodecError {
        codec,
        message: "payload over 4 GiB".into(),
    })?;
    let body = codec.compress(payload)?;
    let mut out = Vec::with_capacity(HEADER_LEN + body.len());
    out.extend_from_slice(MAGIC);
    out.push(VERSION);
    out.push(codec.id());
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(&crc32fast::hash(payload).to_le_bytes());
    let crc = frame_crc(&out, &body);
    out.extend_from_slice(&crc.to_le_bytes());
    out.extend_from_slice(&body);
    Ok(out)
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    let mut w = [0u8; 4];
    w.copy_from_slice(&b[at..at + 4]);
    u32::from_le_bytes(w)
}

/// The codec a frame claims, after structural checks only.
pub fn peek_codec(frame: &[u8]) -> Result<Codec, FrameError> {
    if frame.len() < HEADER_LEN {
        return Err(FrameError::TooShort);
    }
    if &frame[..4] != MAGIC {
        return Err(FrameError::BadMagic);
    }
    if frame[4] != VERSION {
        return Err(FrameError::UnsupportedVersion(frame[4]));
    }
    Codec::from_id(frame[5]).ok_or(FrameError::UnknownCodec(frame[5]))
}

/// Checks a frame before any decoder runs: structure, frame CRC, declared length ≤ `max_len`.
/// Returns the codec and the declared original length.
pub fn verify(frame: &[u8], max_len: u64) -> Result<(Codec, usize), FrameError> {
    let codec = peek_codec(frame)?;
    let expected = u32_at(frame, 14);
    let actual = frame_crc(&frame[..14], &frame[HEADER_LEN..]);
    if expected != actual {
        return Err(FrameError::ChecksumMismatch { expected, actual });
    }
    let len = u32_at(frame, 6);
    if u64::from(len) > max_len {
        return Err(FrameError::TooLarge {
            len: u64::from(len),
            max: max_len,
        });
    }
    Ok((codec, len as usize))
}

/// Decodes the body of a frame [`verify`] accepted (bounded by its declared length) and checks the
/// content CRC.
pub fn decode_verified(frame: &[u8], codec: Codec, len: usize) -> Result<Vec<u8>, FrameError> {
    let out = codec.decompress(&frame[HEADER_LEN..], len)?;
    let (expected, actual) = (u32_at(frame, 10), crc32fast::hash(&out));
    if expected != actual {
        return Err(FrameError::ContentChecksumMismatch { expected, actual });
    }
    Ok(out)
}

/// Verify and decode a frame whose original length may not exceed `max_len`.
pub fn decode(frame: &[u8], max_len: u64) -> Result<Vec<u8>, FrameError> {
    let (codec, len) = verify(frame, max_len)?;
    decode_verified(frame, codec, len)
}
