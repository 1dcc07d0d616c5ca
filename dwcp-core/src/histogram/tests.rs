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

/// The map the buckets replaced, kept as the reference the sorted vector must agree with.
type Reference = std::collections::BTreeMap<i32, u64>;

fn reference_of(pairs: &[(i32, u64)]) -> Reference {
    let mut m = Reference::new();
    for (i, c) in pairs {
        *m.entry(*i).or_insert(0) += c;
    }
    m
}

fn buckets_of(pairs: &[(i32, u64)]) -> Buckets {
    let mut b = Buckets::new();
    for (i, c) in pairs {
        b.add(*i, *c);
    }
    b
}

proptest! {
    /// Adding, merging (both the in-place and the two-run path) and iterating give what the map
    /// gave, and the JSON is byte for byte the map's, both ways.
    #[test]
    fn buckets_behave_as_the_map_they_replaced(
        a in proptest::collection::vec((-3i32..40, 0u64..1_000), 0..30),
        b in proptest::collection::vec((-3i32..40, 0u64..1_000), 0..30),
        subset in any::<bool>(),
    ) {
        // With `subset`, b's indices are drawn from a's, so the merge takes the in-place path.
        let b: Vec<(i32, u64)> = if subset && !a.is_empty() {
            b.iter().map(|(i, c)| (a[i.unsigned_abs() as usize % a.len()].0, *c)).collect()
        } else {
            b
        };
        let (mut bv, bo) = (buckets_of(&a), buckets_of(&b));
        let (mut rv, ro) = (reference_of(&a), reference_of(&b));
        bv.merge(&bo);
        for (i, c) in &ro {
            *rv.entry(*i).or_insert(0) += c;
        }
        let got: Vec<(i32, u64)> = bv.iter().collect();
        let want: Vec<(i32, u64)> = rv.iter().map(|(i, c)| (*i, *c)).collect();
        prop_assert_eq!(&got, &want);
        prop_assert_eq!(bv.len(), rv.len());
        let json = serde_json::to_string(&bv).unwrap();
        prop_assert_eq!(&json, &serde_json::to_string(&rv).unwrap());
        let back: Buckets = serde_json::from_str(&json).unwrap();
        prop_assert_eq!(back, bv);
    }
}

#[test]
fn buckets_decode_what_the_map_decoded() {
    // Keys are JSON strings; a repeated key keeps the last value, as serde's map did.
    let b: Buckets = serde_json::from_str(r#"{"10": 1, "-2": 3, "10": 5}"#).unwrap();
    assert_eq!(b.iter().collect::<Vec<_>>(), vec![(-2, 3), (10, 5)]);
    assert!(serde_json::from_str::<Buckets>(r#"{"x": 1}"#).is_err());
    assert!(serde_json::from_str::<Buckets>(r#"{"1": -1}"#).is_err());
    let mut b = Buckets::new();
    b.insert(4, 2);
    b.insert(4, 7);
    assert_eq!((b.get(4), b.get(5)), (Some(7), None));
}
