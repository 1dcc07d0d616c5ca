//! The short version of `make sim-probft`: the sample-only safety model of one ProBFT view
//! (equivocating leader plus colluders, adversarial delivery) on a few hundred seeded views,
//! with the real ECVRF samples at n = 16 and ideal ones above; and the statistics helpers.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use dwcp_engines::probft::montecarlo::{binom_tail, union_bound, wilson, Model, SampleSource};
use dwcp_engines::probft::{DEFAULT_L, DEFAULT_O};

#[test]
fn wilson_and_binomial_tail_match_known_values() {
    let (lo, hi) = wilson(5, 10, 1.96);
    assert!(
        (lo - 0.2366).abs() < 1e-3 && (hi - 0.7634).abs() < 1e-3,
        "{lo} {hi}"
    );
    let (lo, hi) = wilson(0, 10_000, 1.96);
    assert_eq!(lo, 0.0);
    assert!((hi - 3.84e-4).abs() < 1e-5, "{hi}");
    // P(Bin(4, 1/2) ≥ 3) = 5/16; P(Bin(10, 0.3) ≥ 0) = 1; k > m gives 0.
    assert!((binom_tail(4, 0.5, 3) - 5.0 / 16.0).abs() < 1e-12);
    assert_eq!(binom_tail(10, 0.3, 0), 1.0);
    assert_eq!(binom_tail(3, 0.3, 4), 0.0);
}

#[test]
fn conflict_rate_falls_with_n_at_a_fifth_byzantine() {
    let views = 400;
    let mut rates = Vec::new();
    for n in [16u32, 64, 100] {
        let m = Model::new(
            n,
            vec![n / 5],
            DEFAULT_O,
            DEFAULT_L,
            SampleSource::Ideal,
            0x5eed,
        );
        let t = m.run(0, views)[0];
        let rate = t.conflicts as f64 / t.views as f64;
        let (_, hi) = wilson(t.conflicts, t.views, 1.96);
        let bound = union_bound(n, n / 5, DEFAULT_O, DEFAULT_L);
        println!(
            "n={n} f={} conflicts {}/{} rate {rate:.4} (95% ≤ {hi:.4}) bound {bound:.3e} live≥1 {:.3}",
            n / 5,
            t.conflicts,
            t.views,
            t.live_one as f64 / t.views as f64
        );
        // The measured rate's interval must not lie above the analytic bound of the model.
        assert!(
            wilson(t.conflicts, t.views, 1.96).0 <= bound,
            "n={n}: above the bound"
        );
        // Views decide without attack (the rest of the replicas catch up).
        assert!(t.live_one as f64 / t.views as f64 > 0.9, "n={n}: not live");
        rates.push(rate);
    }
    assert!(
        rates[0] > 0.0,
        "n=16 shows conflicts at this share: {rates:?}"
    );
    assert!(
        rates[2] <= rates[0],
        "the rate does not fall with n: {rates:?}"
    );
}

#[test]
fn at_a_third_byzantine_the_attack_succeeds_often() {
    // The knife edge: with f = ⌊(n − 1)/3⌋ the honest majority in a half plus f colluders
    // expects as many votes as all honest replicas do, so the model finds conflicts in a large
    // share of views (the reason the sweeps use ⌊n/5⌋).
    let m = Model::new(64, vec![21], DEFAULT_O, DEFAULT_L, SampleSource::Ideal, 7);
    let t = m.run(0, 200)[0];
    println!("n=64 f=21: {} conflicts in {} views", t.conflicts, t.views);
    assert!(t.conflicts * 10 > t.views, "{t:?}");
}

#[test]
fn real_vrf_samples_behave_like_ideal_ones() {
    // Same model, samples from the real ECVRF vs a uniform stream: the conflict rates at
    // n = 16, f = 5 (high, so a few hundred views separate them well) agree within their 95 %
    // intervals.
    let views = 300;
    let real = Model::new(16, vec![5], DEFAULT_O, DEFAULT_L, SampleSource::Vrf, 3).run(0, views)[0];
    let ideal =
        Model::new(16, vec![5], DEFAULT_O, DEFAULT_L, SampleSource::Ideal, 3).run(0, views)[0];
    let (rl, rh) = wilson(real.conflicts, real.views, 1.96);
    let (il, ih) = wilson(ideal.conflicts, ideal.views, 1.96);
    println!(
        "vrf {:?} [{rl:.3}, {rh:.3}], ideal {:?} [{il:.3}, {ih:.3}]",
        real, ideal
    );
    assert!(real.conflicts > 0 && ideal.conflicts > 0);
    assert!(rl <= ih && il <= rh, "intervals disjoint");
}
