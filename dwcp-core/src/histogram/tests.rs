use super::*;
use proptest::prelude::*;

fn exact_quantile(sorted: &[u64], q: f64) -> u64 {
    let rank = ((q * sorted.len() as f64).ceil() as usize).max(1);
    sorted[rank - 1]
}

#[test]
fn empty_has_no_quantile() {
    assert_eq!(Histogram::new().quantile(0.99), None);
}

#[test]
fn single_value_within_one_percent() {
    let mut h = Histogram::new();
    h.record(12_345);
    let p = h.quantile(0.5).unwrap();
    assert!((p - 12_345.0).abs() / 12_345.0 <= 0.01, "{p}");
}

#[test]
fn zeros_are_counted() {
    let mut h = Histogram::new();
    h.record(0);
    h.record(0);
    h.record(100);
    assert_eq!(h.quantile(0.5), Some(0.0));
    assert_eq!(h.count, 3);
}

proptest! {
    /// Every quantile is within 2 % of the exact sample quantile.
    #[test]
    fn quantiles_within_two_percent(values in prop::collection::vec(1u64..10_000_000, 1..400), q in 0.0f64..=1.0) {
        let mut h = Histogram::new();
        for v in &values { h.record(*v); }
        let mut sorted = values.clone();
        sorted.sort_unstable();
        let exact = exact_quantile(&sorted, q) as f64;
        let got = h.quantile(q).unwrap();
        prop_assert!((got - exact).abs() / exact <= 0.02, "q={q} exact={exact} got={got}");
    }

    /// merge is commutative and associative, and equals recording everything into one histogram.
    #[test]
    fn merge_is_associative_and_commutative(
        a in prop::collection::vec(0u64..1_000_000, 0..100),
        b in prop::collection::vec(0u64..1_000_000, 0..100),
        c in prop::collection::vec(0u64..1_000_000, 0..100),
    ) {
        let mk = |vs: &[u64]| { let mut h = Histogram::new(); for v in vs { h.record(*v); } h };
        let (ha, hb, hc) = (mk(&a), mk(&b), mk(&c));
        let mut ab_c = ha.clone(); ab_c.merge(&hb); ab_c.merge(&hc);
        let mut bc = hb.clone(); bc.merge(&hc);
        let mut a_bc = ha.clone(); a_bc.merge(&bc);
        let mut ba = hb.clone(); ba.merge(&ha);
        let mut ab = ha.clone(); ab.merge(&hb);
        prop_assert_eq!(&ab_c, &a_bc);
        prop_assert_eq!(&ab, &ba);
        let all: Vec<u64> = a.iter().chain(&b).chain(&c).copied().collect();
        prop_assert_eq!(ab_c, mk(&all));
    }

    /// The JSON wire form round-trips.
    #[test]
    fn serde_round_trip(values in prop::collection::vec(0u64..1_000_000, 0..50)) {
        let mut h = Histogram::new();
        for v in &values { h.record(*v); }
        let s = serde_json::to_string(&h).unwrap();
        let back: Histogram = serde_json::from_str(&s).unwrap();
        prop_assert_eq!(h, back);
    }
}
