use super::*;
use proptest::prelude::*;

/// flagd-testbed `fractional` v2 vectors (`fractional.feature`, Examples v2), also reproduced by the
/// independent Python reference `scripts/bucketing_vectors.py` (run it: it prints the buckets).
#[test]
fn flagd_testbed_v2_vectors() {
    let cards = [25u64, 25, 25, 25];
    let names = ["clubs", "diamonds", "hearts", "spades"];
    for (user, want) in [
        ("jack", "hearts"),
        ("queen", "spades"),
        ("ten", "clubs"),
        ("nine", "diamonds"),
        ("3", "clubs"),
    ] {
        let key = format!("fractional-flag{user}");
        let got = fractional_index(key.as_bytes(), &cards).map(|i| names[i]);
        assert_eq!(got, Some(want), "user {user}");
    }
    for (tk, want) in [("jon@company.com", "heads"), ("jane@company.com", "tails")] {
        let key = format!("fractional-flag-shorthand{tk}");
        let got = fractional_index(key.as_bytes(), &[1, 1]).map(|i| ["heads", "tails"][i]);
        assert_eq!(got, Some(want), "targeting key {tk}");
    }
}

#[test]
fn murmur3_known_values() {
    // Reference values of murmur3 x86_32, seed 0.
    assert_eq!(murmur3_32(b""), 0);
    assert_eq!(murmur3_32(b"hello"), 0x248b_fa47);
    assert_eq!(murmur3_concat(b"hel", b"lo"), murmur3_32(b"hello"));
}

#[test]
fn zero_total_has_no_variant() {
    assert_eq!(fractional_index(b"x", &[0, 0]), None);
}

proptest! {
    /// Raising the canary percentage never moves a canary user back to stable.
    #[test]
    fn raising_percentage_is_monotone(user in "[a-z0-9]{1,24}", lo in 0u32..=10_000, extra in 0u32..=10_000) {
        let b = bucket_bp("checkout", &user);
        let hi = (lo + extra).min(FULL_BP);
        if in_canary(b, lo) { prop_assert!(in_canary(b, hi)); }
    }

    /// The bucket is always in range.
    #[test]
    fn bucket_in_range(flag in "[a-z]{1,8}", user in ".{0,40}") {
        prop_assert!(bucket_bp(&flag, &user) < FULL_BP);
    }

    /// Shares converge to the configured weight: over 20 000 users the canary share is within 1.5 points.
    #[test]
    fn shares_converge(pct_bp in 0u32..=10_000, salt in "[a-z]{4}") {
        let n = 20_000u32;
        let hits = (0..n).filter(|i| in_canary(bucket_bp(&salt, &format!("user-{i}")), pct_bp)).count() as f64;
        let share = hits / n as f64;
        prop_assert!((share - pct_bp as f64 / 10_000.0).abs() < 0.015, "share {share} vs {pct_bp}bp");
    }
}
