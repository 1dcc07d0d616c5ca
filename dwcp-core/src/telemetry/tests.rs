use super::*;

fn acc() -> Accumulator {
    Accumulator::new(
        vec!["a".into(), "b".into()],
        vec!["beta".into(), "standard".into()],
    )
}

#[test]
fn batch_holds_exactly_what_was_recorded() {
    let mut a = acc();
    a.record(0, Track::Canary, 1, Some(7), true, 1000);
    a.record(0, Track::Canary, 1, Some(7), false, 2000);
    a.record(1, Track::Stable, 0, Some(7), false, 10);
    a.count("no_key");
    let b = a.take_batch("vm1", 7, 3, 99);
    assert_eq!(b.cells.len(), 2);
    let c = b.cells.iter().find(|c| c.rollout == "a").unwrap();
    assert_eq!(
        (c.track, c.segment.as_str(), c.requests, c.errors),
        (Track::Canary, "standard", 2, 1)
    );
    assert_eq!(c.latency_us.count, 2);
    assert_eq!(b.counters.get("no_key"), Some(&1));
    assert!(a.take_batch("vm1", 8, 3, 100).is_empty(), "cut resets");
}

#[test]
fn out_of_range_is_ignored_not_panicking() {
    let mut a = acc();
    a.record(9, Track::Stable, 9, Some(7), false, 1);
    assert!(a.take_batch("vm", 1, 1, 0).is_empty());
}

#[test]
fn batch_json_round_trip() {
    let mut a = acc();
    a.record(0, Track::Stable, 0, Some(7), false, 42);
    let b = a.take_batch("vm", 1, 2, 3);
    let back: Batch = serde_json::from_str(&serde_json::to_string(&b).unwrap()).unwrap();
    assert_eq!(b, back);
}

#[test]
fn shadow_stats_and_samples_travel_in_batches() {
    use crate::shadow::{compare, Answer, MismatchSample, ShadowSettings, MAX_SAMPLES_PER_BATCH};
    // Old batches (no shadow fields) still parse; unknown fields are ignored (rolling upgrades).
    let old = r#"{"vm":"a","seq":1,"state_version":0,"cells":[],"counters":{}}"#;
    let b: Batch = serde_json::from_str(old).unwrap();
    assert!(b.shadow.is_empty() && b.samples.is_empty() && b.is_empty());
    assert_eq!(
        serde_json::from_str::<Batch>(r#"{"vm":"a","seq":1,"state_version":0,"x":1}"#).unwrap(),
        serde_json::from_str::<Batch>(r#"{"vm":"a","seq":1,"state_version":0}"#).unwrap()
    );
    // A batch without shadow data serialises as before (no new keys).
    let txt = serde_json::to_string(&b).unwrap();
    assert!(!txt.contains("shadow") && !txt.contains("samples"));

    let mut acc = Accumulator::new(vec!["demo".into()], vec!["standard".into()]);
    let s = ShadowSettings::default();
    let p = Answer {
        status: 200,
        body: br#"{"item":{"price":1}}"#.to_vec(),
        ..Default::default()
    };
    let sh = Answer {
        status: 200,
        body: br#"{"item":{"price":2}}"#.to_vec(),
        ..Default::default()
    };
    let o = compare(&s, &p, &sh);
    for _ in 0..20 {
        acc.shadow_mut("demo").requests += 1;
        acc.shadow_mut("demo").record(&o);
        acc.sample(MismatchSample::new("demo", "GET", "/", &p, &sh, &o));
    }
    acc.shadow_mut("demo").skipped_not_eligible += 1;
    let b = acc.take_batch("vm", 1, 3, 0);
    assert!(!b.is_empty());
    assert_eq!(b.shadow["demo"].compared, 20);
    assert_eq!(b.samples.len(), MAX_SAMPLES_PER_BATCH);
    let back: Batch = serde_json::from_str(&serde_json::to_string(&b).unwrap()).unwrap();
    assert_eq!(back, b);
    // Cut resets.
    let next = acc.take_batch("vm", 2, 3, 0);
    assert!(next.shadow.is_empty() && next.samples.is_empty());
}

/// Keyless (not bucketed) requests travel in cells of their own, marked `"bucketed": false`; bucketed
/// cells serialise exactly as before the field existed, and a cell without it reads as bucketed.
#[test]
fn unbucketed_requests_get_their_own_cells_and_the_wire_stays_compatible() {
    let mut a = acc();
    a.record(0, Track::Stable, 1, Some(7), false, 10);
    a.record(0, Track::Stable, 1, None, true, 20);
    a.record(0, Track::Stable, 1, None, false, 30);
    let b = a.take_batch("vm", 1, 3, 0);
    assert_eq!(b.cells.len(), 2);
    let keyless = b.cells.iter().find(|c| !c.bucketed).unwrap();
    assert_eq!((keyless.requests, keyless.errors), (2, 1));
    let bucketed = b.cells.iter().find(|c| c.bucketed).unwrap();
    assert_eq!((bucketed.requests, bucketed.errors), (1, 0));
    let json = serde_json::to_value(&b).unwrap();
    let cells = json["cells"].as_array().unwrap();
    assert_eq!(
        cells.iter().filter(|c| c.get("bucketed").is_some()).count(),
        1,
        "{json}"
    );
    assert!(cells.iter().any(|c| c["bucketed"] == false));
    let mut old = json["cells"][0].clone();
    old.as_object_mut().unwrap().remove("bucketed");
    let c: Cell = serde_json::from_value(old).unwrap();
    assert!(c.bucketed);
}
