//! # Codecs: real implementations from well-kept crates
//!
//! `none`, `lz4` (lz4_flex block format), `snappy` (snap raw format), and zstd at levels 1, 3
//! and 9. Block formats carry no length; the frame ([`super::frame`]) records the original length
//! and every decoder is bounded by it (no decompression bombs).

use serde::{Deserialize, Serialize};
use thiserror::Error;

/// The codecs the selector chooses between. The discriminant is the frame's codec byte.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Codec {
    None = 0,
    Lz4 = 1,
    Snappy = 2,
    Zstd1 = 3,
    Zstd3 = 4,
    Zstd9 = 5,
}

/// A codec failed.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("{codec:?}: {message}")]
pub struct CodecError {
    pub codec: Codec,
    pub message: String,
}

impl Codec {
    pub const ALL: [Codec; 6] = [
        Codec::None,
        Codec::Lz4,
        Codec::Snappy,
        Codec::Zstd1,
        Codec::Zstd3,
        Codec::Zstd9,
    ];

    pub fn from_id(id: u8) -> Option<Codec> {
        Self::ALL.get(usize::from(id)).copied()
    }

    pub fn id(self) -> u8 {
        self as u8
    }

    pub fn name(self) -> &'static str {
        match self {
            Self::None => "none",
            Self::Lz4 => "lz4",
            Self::Snappy => "snappy",
            Self::Zstd1 => "zstd1",
            Self::Zstd3 => "zstd3",
            Self::Zstd9 => "zstd9",
        }
    }

    pub fn from_name(name: &str) -> Option<Codec> {
        Self::ALL.into_iter().find(|c| c.name() == name)
    }

    fn err(self, e: impl std::fmt::Display) -> CodecError {
        CodecError {
            codec: self,
            message: e.to_string(),
        }
    }

    pub fn compress(self, input: &[u8]) -> Result<Vec<u8>, CodecError> {
        match self {
            Self::None => Ok(input.to_vec()),
            Self::Lz4 => Ok(lz4_flex::block::compress(input)),
            Self::Snappy => snap::raw::Encoder::new()
                .compress_vec(input)
                .map_err(|e| self.err(e)),
            Self::Zstd1 => zstd::bulk::compress(input, 1).map_err(|e| self.err(e)),
            Self::Zstd3 => zstd::bulk::compress(input, 3).map_err(|e| self.err(e)),
            Self::Zstd9 => zstd::bulk::compress(input, 9).map_err(|e| self.err(e)),
        }
    }

    /// Decode `input`, which must expand to exactly `original_len` bytes.
    pub fn decompress(self, input: &[u8], original_len: usize) -> Result<Vec<u8>, CodecError> {
        let out = match self {
            Self::None => input.to_vec(),
            Self::Lz4 => {
                lz4_flex::block::decompress(input, original_len).map_err(|e| self.err(e))?
            }
            Self::Snappy => {
                let len = snap::raw::decompress_len(input).map_err(|e| self.err(e))?;
                if len != original_len {
                    return Err(self.err(format!(
                        "snappy header says {len} bytes, frame says {original_len}"
                    )));
                }
                snap::raw::Decoder::new()
                    .decompress_vec(input)
                    .map_err(|e| self.err(e))?
            }
            Self::Zstd1 | Self::Zstd3 | Self::Zstd9 => {
                bounded_zstd(input, original_len).map_err(|e| self.err(e))?
            }
        };
        if out.len() != original_len {
            return Err(self.err(format!(
                "decoded {} bytes, expected {original_len}",
                out.len()
            )));
        }
        Ok(out)
    }
}

/// Streams a zstd frame through a reader that stops one byte past `limit`: a frame that expands
/// further (a decompression bomb, or a frame whose header lies about its length) is refused after at
/// most `limit + 1` bytes of output, whatever its content says.
pub fn bounded_zstd(input: &[u8], limit: usize) -> Result<Vec<u8>, String> {
    use std::io::Read;
    let decoder = zstd::stream::read::Decoder::with_buffer(input).map_err(|e| e.to_string())?;
    let mut out = Vec::with_capacity(limit.min(1 << 20));
    decoder
        .take(limit as u64 + 1)
        .read_to_end(&mut out)
        .map_err(|e| e.to_string())?;
    if out.len() > limit {
        return Err(format!("expands past {limit} bytes"));
    }
    Ok(out)
}
