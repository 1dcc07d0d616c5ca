//! Batch validation: what a telemetry batch must satisfy before any of it is counted. A batch is taken
//! whole or refused whole (nothing of a refused batch changes any count); a rollout the companion does
//! not know is *not* a reason to refuse (filters and companion are upgraded at different times), its
//! parts are skipped and counted by the ledger instead.

use crate::telemetry::Batch;

/// Cells per batch at most.
pub const MAX_CELLS: usize = 10_000;
/// Mismatch samples per batch at most.
pub const MAX_SAMPLES: usize = 1_000;
/// Requests (or shadow comparisons) of one cell of one batch at most.
pub const MAX_PLAUSIBLE: u64 = 100_000_000;

/// The largest histogram bucket index a real latency (a `u64` of µs) produces; keys outside
/// `0..=MAX_BUCKET_INDEX` cannot come from a filter and are refused.
pub const MAX_BUCKET_INDEX: i32 = 2241;

/// Why a batch was refused. Each message names the field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BatchError {
    #[error("vm: must be 1-128 characters")]
    Vm,
    #[error("seq: must be >= 1")]
    Seq,
    #[error("sent_at_ms: {sent_at_ms} is in the future (now {now_ms})")]
    FromTheFuture { sent_at_ms: u64, now_ms: u64 },
    #[error("state_version: {got} is newer than the current {current}")]
    StateFromTheFuture { got: u64, current: u64 },
    #[error("{what}: more than {max}")]
    TooMany { what: &'static str, max: usize },
    #[error("cells[{index}].{message}")]
    Cell { index: usize, message: String },
    #[error("shadow.{rollout}{message}")]
    Shadow { rollout: String, message: String },
}

/// Checks `b` against the companion's current state `version` at `now_ms`. A batch routed under
/// another epoch (`foreign_epoch`) is not compared with this epoch's version.
pub fn validate(
    b: &Batch,
    version: u64,
    foreign_epoch: bool,
    now_ms: u64,
    max_future_skew_ms: u64,
) -> Result<(), BatchError> {
    if b.vm.is_empty() || b.vm.len() > 128 {
        return Err(BatchError::Vm);
    }
    if b.seq == 0 {
        return Err(BatchError::Seq);
    }
    if b.sent_at_ms > now_ms.saturating_add(max_future_skew_ms) {
        return Err(BatchError::FromTheFuture {
            sent_at_ms: b.sent_at_ms,
            now_ms,
        });
    }
    if b.state_version > version && !foreign_epoch {
        return Err(BatchError::StateFromTheFuture {
            got: b.state_version,
            current: version,
        });
    }
    if b.cells.len() > MAX_CELLS {
        return Err(BatchError::TooMany {
            what: "cells",
            max: MAX_CELLS,
        });
    }
    for (index, c) in b.cells.iter().enumerate() {
        let bad = |message: String| Err(BatchError::Cell { index, message });
        if c.errors > c.requests {
            return bad(format!(
                "errors: {} exceeds requests {}",
                c.errors, c.requests
            ));
        }
        if c.requests > MAX_PLAUSIBLE {
            return bad(format!(
                "requests: {} is not plausible for one batch",
                c.requests
            ));
        }
        if c.latency_us.count != c.requests {
            return bad(format!(
                "latency_us.count: {} != requests {}",
                c.latency_us.count, c.requests
            ));
        }
        if let Some((k, _)) = c
            .latency_us
            .buckets
            .iter()
            .find(|(k, _)| !(0..=MAX_BUCKET_INDEX).contains(k))
        {
            return bad(format!(
                "latency_us.buckets: key {k} is outside 0..={MAX_BUCKET_INDEX} (1 µs to u64::MAX µs)"
            ));
        }
        let Some(sum) = c
            .latency_us
            .buckets
            .values()
            .try_fold(c.latency_us.zero, |a, n| a.checked_add(n))
        else {
            return bad("latency_us: bucket counts overflow".into());
        };
        if sum != c.latency_us.count {
            return bad(format!(
                "latency_us: bucket counts sum to {sum}, not count {}",
                c.latency_us.count
            ));
        }
        if c.segment.is_empty() || c.segment.len() > 64 {
            return bad("segment: must be 1-64 characters".into());
        }
        if c.rollout.is_empty() || c.rollout.len() > 128 {
            return bad("rollout: must be 1-128 characters".into());
        }
    }
    for (name, st) in &b.shadow {
        let bad = |message: String| {
            Err(BatchError::Shadow {
                rollout: name.clone(),
                message,
            })
        };
        for (what, v) in [
            ("mismatches", st.mismatches),
            ("mismatch_status", st.mismatch_status),
            ("mismatch_headers", st.mismatch_headers),
            ("mismatch_body", st.mismatch_body),
            ("noise", st.noise),
            ("noise_compared", st.noise_compared),
            ("stable_differs", st.stable_differs),
            ("shadow_errors", st.shadow_errors),
            ("primary_errors", st.primary_errors),
            ("slower", st.slower),
        ] {
            if v > st.compared {
                return bad(format!(".{what}: {v} exceeds compared {}", st.compared));
            }
        }
        if st.noise > st.mismatches || st.stable_differs > st.noise_compared {
            return bad(
                ": noise exceeds mismatches, or stable_differs exceeds noise_compared".into(),
            );
        }
        if st.latency_delta_us.count != st.compared {
            return bad(format!(
                ".latency_delta_us.count: {} != compared {}",
                st.latency_delta_us.count, st.compared
            ));
        }
        if st.compared > MAX_PLAUSIBLE {
            return bad(".compared: not plausible for one batch".into());
        }
    }
    if b.samples.len() > MAX_SAMPLES {
        return Err(BatchError::TooMany {
            what: "samples",
            max: MAX_SAMPLES,
        });
    }
    Ok(())
}

#[cfg(test)]
mod bounds {
    use super::*;
    use crate::histogram::index_of;

    #[test]
    fn the_bucket_bound_is_what_u64_latencies_produce() {
        assert_eq!(index_of(1), 0);
        assert_eq!(index_of(u64::MAX), MAX_BUCKET_INDEX);
    }
}
