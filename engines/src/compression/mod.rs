//! # Compression Selector
//!
//! * [`codec`] — zstd (levels 1, 3, 9), lz4, snappy, none.
//! * [`frame`] — checksummed frames, verified on every decompress.
//! * [`features`] — features from a ≤ 4 KiB probe.
//! * [`model`] — per-codec regressions learned from measurements; pick the least transfer time.
//! * [`corpus`] / [`oracle`] — seeded corpus with held-out split, every-codec oracle, evaluation.
//!
//! [`Selector`] ties them together: `select`, `compress` (frame with the chosen codec) and
//! `decompress` (verified). Invariant: bytes leave `decompress` only after both checksums and the
//! length matched; every integrity failure maps to a `DataIntegrityViolation` event.

pub mod codec;
pub mod corpus;
pub mod features;
pub mod frame;
pub mod model;
pub mod oracle;

pub use codec::{Codec, CodecError};
pub use features::Features;
pub use frame::FrameError;
pub use model::{Link, Model};
pub use oracle::{Evaluation, Stopwatch};

use serde::Serialize;

/// A decision and its reasons.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Decision {
    pub codec: Codec,
    pub features: Features,
    /// Predicted transfer time per codec, nanoseconds.
    pub predicted_ns: Vec<(Codec, f64)>,
}

/// The selector: a trained model, the evaluation it earned, and the frame limits.
#[derive(Debug, Clone)]
pub struct Selector {
    model: Model,
    evaluation: Option<Evaluation>,
    max_frame_len: u64,
}

impl Selector {
    pub fn new(model: Model, max_frame_len: u64) -> Self {
        Self {
            model,
            evaluation: None,
            max_frame_len,
        }
    }

    /// Train on `train` items and evaluate on `held_out`, timing with `clock`.
    pub fn train_and_evaluate(
        train: &[corpus::Item],
        held_out: &[corpus::Item],
        reps: u32,
        clock: &mut dyn Stopwatch,
        max_frame_len: u64,
    ) -> Result<Selector, SelectorError> {
        let mut samples = Vec::new();
        for item in train {
            samples.extend(oracle::measure(item, clock, reps)?.samples());
        }
        let model = Model::train(&samples, 1e-3)?;
        let entries = held_out
            .iter()
            .map(|i| oracle::measure(i, clock, reps))
            .collect::<Result<Vec<_>, _>>()?;
        let evaluation = oracle::evaluate(&model, held_out, &entries, &oracle::link_grid(), clock);
        Ok(Selector {
            model,
            evaluation: Some(evaluation),
            max_frame_len,
        })
    }

    pub fn model(&self) -> &Model {
        &self.model
    }

    pub fn evaluation(&self) -> Option<&Evaluation> {
        self.evaluation.as_ref()
    }

    pub fn select(&self, payload: &[u8], link: Link) -> Decision {
        let features = features::extract(payload);
        let predicted_ns: Vec<(Codec, f64)> = self.model.predict(&features, link);
        let codec = predicted_ns
            .iter()
            .min_by(|a, b| a.1.total_cmp(&b.1))
            .map_or(Codec::None, |p| p.0);
        Decision {
            codec,
            features,
            predicted_ns,
        }
    }

    /// Select a codec (or use `force`) and frame the payload.
    pub fn compress(
        &self,
        payload: &[u8],
        link: Link,
        force: Option<Codec>,
    ) -> Result<(Codec, Vec<u8>), SelectorError> {
        let codec = force.unwrap_or_else(|| self.select(payload, link).codec);
        if payload.len() as u64 > self.max_frame_len {
            return Err(SelectorError::Frame(FrameError::TooLarge {
                len: payload.len() as u64,
                max: self.max_frame_len,
            }));
        }
        Ok((codec, frame::encode(codec, payload)?))
    }

    /// Verify and decode a frame.
    pub fn decompress(&self, frame_bytes: &[u8]) -> Result<Vec<u8>, FrameError> {
        frame::decode(frame_bytes, self.max_frame_len)
    }
}

/// Selector failures.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SelectorError {
    #[error(transparent)]
    Codec(#[from] CodecError),
    #[error(transparent)]
    Frame(#[from] FrameError),
    #[error(transparent)]
    Model(#[from] model::ModelError),
}
