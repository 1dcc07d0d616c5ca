//! Compression Selector tests: frames verified on every decompress, integrity failures become
//! trigger-6 events, and the learned model meets its regret/agreement targets on held-out data
//! (timing targets are printed by `--example compression_eval`, not asserted here).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
#![allow(clippy::disallowed_methods)] // tests time codec runs with the real clock

use std::time::Instant;

use dwcp_core::signals::{EngineEvent, IntegrityKind, Trigger, TriggerWindow};
use dwcp_engines::compression::{corpus, frame, Codec, FrameError, Link, Selector, Stopwatch};

struct Clock(Instant);

impl Stopwatch for Clock {
    fn now_ns(&mut self) -> u64 {
        self.0.elapsed().as_nanos() as u64
    }
}

fn seed() -> u64 {
    std::env::var("SIM_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(7)
}

#[test]
fn every_codec_round_trips_through_a_verified_frame() {
    for item in corpus::generate(seed(), 12, 100, 20_000) {
        for codec in Codec::ALL {
            let f = frame::encode(codec, &item.data).unwrap();
            assert_eq!(frame::peek_codec(&f).unwrap(), codec);
            assert_eq!(
                frame::decode(&f, 1 << 20).unwrap(),
                item.data,
                "{codec:?} {:?}",
                item.class
            );
        }
    }
    let empty = frame::encode(Codec::Zstd3, b"").unwrap();
    assert_eq!(frame::decode(&empty, 10).unwrap(), b"");
}

#[test]
fn a_corrupted_frame_fails_its_checksum_and_raises_data_integrity_violation() {
    let data = corpus::generate(seed(), 1, 10_000, 10_000).remove(0).data;
    let mut window = TriggerWindow::default();
    for codec in Codec::ALL {
        for at in [frame::HEADER_LEN, frame::HEADER_LEN + 7, 8] {
            let mut f = frame::encode(codec, &data).unwrap();
            if at >= f.len() {
                continue;
            }
            f[at] ^= 0x40;
            let err = frame::decode(&f, 1 << 20).unwrap_err();
            assert!(
                matches!(err, FrameError::ChecksumMismatch { .. }),
                "{codec:?} byte {at}: {err}"
            );
            let event = err.to_event("compression", 42).unwrap();
            assert!(matches!(
                event,
                EngineEvent::DataIntegrityViolation {
                    violation: IntegrityKind::ChecksumMismatch,
                    ..
                }
            ));
            assert_eq!(
                window.observe(&event).map(|f| f.trigger),
                Some(Trigger::DataIntegrity)
            );
        }
    }
}

#[test]
fn malformed_and_oversized_frames_are_refused_without_an_integrity_signal() {
    let f = frame::encode(Codec::Lz4, &[1u8; 5000]).unwrap();
    assert_eq!(
        frame::decode(&f, 4999).unwrap_err(),
        FrameError::TooLarge {
            len: 5000,
            max: 4999
        }
    );
    assert_eq!(
        frame::decode(b"short", 10).unwrap_err(),
        FrameError::TooShort
    );
    let mut bad = f.clone();
    bad[0] = b'X';
    assert_eq!(
        frame::decode(&bad, 1 << 20).unwrap_err(),
        FrameError::BadMagic
    );
    let mut bad = f;
    bad[5] = 99;
    let err = frame::decode(&bad, 1 << 20).unwrap_err();
    assert_eq!(err, FrameError::UnknownCodec(99));
    assert_eq!(err.to_event("compression", 0), None);
}

#[test]
fn learned_model_meets_regret_and_agreement_targets_on_held_out_data() {
    let seed = seed();
    let items = corpus::generate(seed, 150, 4 << 10, 64 << 10);
    let (train, test) = corpus::split(seed, items, 30);
    let mut clock = Clock(Instant::now());
    let sel = Selector::train_and_evaluate(&train, &test, 3, &mut clock, 1 << 24).unwrap();
    let ev = sel.evaluation().unwrap();
    println!("seed {seed}: {ev:#?}");
    assert!(
        ev.held_out_items > 20 && ev.trained_on > 80,
        "seed {seed}: split {} / {}",
        ev.trained_on,
        ev.held_out_items
    );
    assert!(
        ev.model.mean_regret <= 0.10,
        "seed {seed}: regret {:.3}",
        ev.model.mean_regret
    );
    assert!(
        ev.model.agreement >= 0.80,
        "seed {seed}: agreement {:.3}",
        ev.model.agreement
    );
    let worst_fixed = ev
        .baselines
        .iter()
        .map(|b| b.mean_regret)
        .fold(0.0, f64::max);
    assert!(
        ev.model.mean_regret < worst_fixed,
        "seed {seed}: the model beats fixed codecs"
    );
    // The selector frames with its choice and the frame verifies.
    let payload = &test[0].data;
    let link = Link {
        bandwidth_bytes_per_s: 1_000_000,
        rtt_us: 1_000,
    };
    let (codec, f) = sel.compress(payload, link, None).unwrap();
    assert_eq!(codec, sel.select(payload, link).codec);
    assert_eq!(&sel.decompress(&f).unwrap(), payload);
}
