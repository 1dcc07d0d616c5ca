//! Sticky bucketing, bit-for-bit the OpenFeature flagd `fractional` operator (v2, integer math).
//!
//! `bucket = (murmur3_32(flag_key ++ targeting_key) as u64 * total_weight) >> 32`; a user falls into the
//! first variant whose cumulative weight exceeds the bucket. Because the canary is always the *first*
//! variant in our two-way split, raising the canary weight only ever moves users from stable to canary
//! (monotonicity), and OpenFeature SDKs that evaluate the same flag key bucket the same user the same way.
//! Conformance: the flagd-testbed `fractional` v2 vectors (`tests.rs`, and the whole suite in
//! `tests/flagd_conformance.rs`), reproduced independently by the Python reference in
//! `scripts/bucketing_vectors.py`.

use std::io::Read;

/// Basis points: the unit of every rollout percentage (10 000 = 100 %). Integer, so no float ever decides
/// who gets what.
pub const FULL_BP: u32 = 10_000;

/// murmur3 x86_32 with seed 0 of `a ++ b`, without allocating the concatenation.
pub fn murmur3_concat(a: &[u8], b: &[u8]) -> u32 {
    let mut reader = a.chain(b);
    // Reading from in-memory slices cannot fail; 0 is an unreachable fallback, never a panic.
    murmur3::murmur3_32(&mut reader, 0).unwrap_or(0)
}

/// murmur3 x86_32 with seed 0.
pub fn murmur3_32(data: &[u8]) -> u32 {
    murmur3_concat(data, &[])
}

/// Position of a hash in `[0, total)`: `(hash * total) >> 32`.
pub fn scale(hash: u32, total: u64) -> u64 {
    ((hash as u64) * total) >> 32
}

/// The user's bucket in basis points `[0, 10 000)` for a rollout (the flag key).
pub fn bucket_bp(flag_key: &str, targeting_key: &str) -> u32 {
    scale(
        murmur3_concat(flag_key.as_bytes(), targeting_key.as_bytes()),
        FULL_BP as u64,
    ) as u32
}

/// flagd `fractional` v2 over weighted variants: the index of the chosen variant, or `None` when the
/// weights sum to zero.
pub fn fractional_index(bucket_key: &[u8], weights: &[u64]) -> Option<usize> {
    let total: u64 = weights.iter().sum();
    if total == 0 {
        return None;
    }
    let bucket = scale(murmur3_concat(bucket_key, &[]), total);
    let mut end = 0u64;
    for (i, w) in weights.iter().enumerate() {
        end += w;
        if bucket < end {
            return Some(i);
        }
    }
    None
}

/// Canary iff the user's bucket is below the canary share (basis points). Monotone in `canary_bp`.
pub fn in_canary(bucket: u32, canary_bp: u32) -> bool {
    bucket < canary_bp.min(FULL_BP)
}

#[cfg(test)]
mod tests;
