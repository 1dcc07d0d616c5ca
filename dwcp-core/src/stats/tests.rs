use super::*;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

fn binomial(rng: &mut ChaCha8Rng, n: u64, p: f64) -> u64 {
    (0..n).filter(|_| rng.gen::<f64>() < p).count() as u64
}

/// Under the null the false-alarm rate over a long, continuously monitored run stays below α.
#[test]
fn error_test_null_is_valid() {
    let runs = 200;
    let mut alarms = 0;
    for seed in 0..runs {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let mut t = ErrorTest::new();
        for w in 0..300 {
            let s = if w < 150 { 0.05 } else { 0.25 };
            let (nc, ns) = ((200.0 * s) as u64, (200.0 * (1.0 - s)) as u64);
            t.observe(
                binomial(&mut rng, nc, 0.01),
                binomial(&mut rng, ns, 0.01),
                nc as f64 / (nc + ns) as f64,
            );
            if t.rejects(0.05) {
                alarms += 1;
                break;
            }
        }
    }
    assert!(
        alarms as f64 / runs as f64 <= 0.05 + 0.02,
        "alarms {alarms}/{runs}"
    );
}

#[test]
fn error_test_catches_a_crash_fast() {
    let mut rng = ChaCha8Rng::seed_from_u64(1);
    let mut t = ErrorTest::new();
    let mut windows = 0;
    while !t.rejects(0.004) && windows < 100 {
        t.observe(
            binomial(&mut rng, 5, 0.5),
            binomial(&mut rng, 95, 0.01),
            0.05,
        );
        windows += 1;
    }
    assert!(windows <= 5, "took {windows} windows");
}

#[test]
fn uninformative_windows_change_nothing() {
    let mut t = ErrorTest::new();
    t.observe(0, 0, 0.5);
    t.observe(3, 0, 0.0);
    t.observe(3, 0, 1.0);
    assert_eq!(t.log_e_value(), 0.0);
    assert_eq!(t.p_value(), 1.0);
}

#[test]
fn exceedance_test_detects_and_holds() {
    let mut rng = ChaCha8Rng::seed_from_u64(2);
    let mut null = ExceedanceTest::new(0.01);
    for _ in 0..2_000 {
        null.observe(binomial(&mut rng, 50, 0.01), 50);
    }
    assert!(!null.rejects(0.004), "null e-value {}", null.log_e_value());
    let mut alt = ExceedanceTest::new(0.01);
    let mut n = 0;
    while !alt.rejects(0.004) {
        alt.observe(binomial(&mut rng, 10, 0.1), 10);
        n += 1;
        assert!(n < 1_000);
    }
}
