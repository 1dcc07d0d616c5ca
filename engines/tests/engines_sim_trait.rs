//! The trait hooks PBFT and Bullshark need (start, timer replace/cancel, durable state, per-node
//! RNG), the wire decoders, and the mock signature scheme.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;

use dwcp_engines::sim::crypto::{Keyring, Scheme};
use dwcp_engines::sim::rbc::{Broadcast, Delivery, RbcMsg};
use dwcp_engines::sim::wire::{Decode, DecodeError};
use dwcp_engines::sim::{
    Crash, Durable, FaultModel, NodeId, Outbox, Protocol, Simulator, TimerId, Wire,
};
use proptest::prelude::*;
use rand::{RngCore, SeedableRng};

#[derive(Clone, Debug, PartialEq)]
struct Tick(u64);
impl Wire for Tick {
    fn wire(&self, buf: &mut Vec<u8>) {
        buf.extend_from_slice(&self.0.to_le_bytes());
    }
}

/// Commits `(now, timer id)` for every timer that fires and, on start, what it read back from
/// its durable store. Writes one synced and one buffered record at t = 0.
struct Probe {
    restored: Option<(bool, bool)>,
    out: Vec<Tick>,
}

impl Protocol for Probe {
    type Msg = Tick;
    type Input = Tick;
    type Output = Tick;
    fn on_start(&mut self, now: u64, out: &mut Outbox<Tick>) {
        out.set_timer(1, now + 10);
        out.set_timer(1, now + 20); // replaces the first
        out.set_timer(2, now + 5);
        out.cancel_timer(2);
        out.set_timer(3, now + 30);
        if self.restored.is_none() {
            out.persist(b"synced".to_vec(), vec![1]);
            out.persist_buffered(b"buffered".to_vec(), vec![1]);
        }
        self.out.push(Tick(out.rng().next_u64() % 1000));
    }
    fn on_message(&mut self, _: u64, _: NodeId, _: &Tick, _: &mut Outbox<Tick>) {}
    fn on_timer(&mut self, now: u64, id: TimerId, _: &mut Outbox<Tick>) {
        self.out.push(Tick(now * 10 + id));
    }
    fn on_input(&mut self, _: u64, _: Tick, _: &mut Outbox<Tick>) {}
    fn drain_committed(&mut self) -> Vec<Tick> {
        std::mem::take(&mut self.out)
    }
}

fn probe_run(crash: Option<Crash>) -> (Vec<Tick>, Option<(bool, bool)>) {
    let faults = FaultModel {
        crashes: crash.into_iter().collect(),
        ..FaultModel::reliable()
    };
    let nodes: Vec<Box<dyn Protocol<Msg = Tick, Input = Tick, Output = Tick>>> =
        vec![Box::new(Probe {
            restored: None,
            out: vec![],
        })];
    let seen = std::rc::Rc::new(std::cell::Cell::new(None));
    let seen2 = std::rc::Rc::clone(&seen);
    let mut sim = Simulator::new(3, faults, nodes, false).with_restart(move |_, d: &Durable| {
        let r = (d.get(b"synced").is_some(), d.get(b"buffered").is_some());
        seen2.set(Some(r));
        Some(Box::new(Probe {
            restored: Some(r),
            out: vec![],
        })
            as Box<dyn Protocol<Msg = Tick, Input = Tick, Output = Tick>>)
    });
    let r = sim.run_until(100);
    (r.logs[&0].clone(), seen.get())
}

#[test]
fn start_hook_runs_at_zero_and_timers_are_replaced_and_cancelled() {
    let (log, _) = probe_run(None);
    // [rng draw at start, timer 1 at 20, timer 3 at 30]: the replaced (10) and cancelled (2) never fire.
    let fired: Vec<u64> = log[1..].iter().map(|t| t.0).collect();
    assert_eq!(fired, vec![201, 303], "{log:?}");
}

#[test]
fn a_restart_keeps_synced_state_only_and_loses_timers_and_memory() {
    let (log, restored) = probe_run(Some(Crash {
        node: 0,
        at_ms: 25,
        recover_at_ms: Some(40),
        lose_unsynced: true,
    }));
    assert_eq!(
        restored,
        Some((true, false)),
        "buffered write survived a lose-unsynced crash"
    );
    // Timer 3 (due at 30) died with the crash; the rebuilt node re-armed 1 and 3 at 40.
    // Log: [rng draw, timer 1 at 20, rng draw after restart, timer 1 at 60, timer 3 at 70].
    assert_eq!(log.len(), 5, "{log:?}");
    assert_eq!([log[1].0, log[3].0, log[4].0], [201, 601, 703], "{log:?}");
    let (_, kept) = probe_run(Some(Crash {
        node: 0,
        at_ms: 25,
        recover_at_ms: Some(40),
        lose_unsynced: false,
    }));
    assert_eq!(
        kept,
        Some((true, true)),
        "a clean crash flushes buffered writes"
    );
}

#[test]
fn node_rng_streams_are_seeded_and_distinct_per_node() {
    let a = dwcp_engines::sim::simulator::node_rng(1, 0).next_u64();
    assert_eq!(a, dwcp_engines::sim::simulator::node_rng(1, 0).next_u64());
    assert_ne!(a, dwcp_engines::sim::simulator::node_rng(1, 1).next_u64());
    assert_ne!(a, dwcp_engines::sim::simulator::node_rng(2, 0).next_u64());
}

fn arb_msg() -> impl Strategy<Value = RbcMsg> {
    let bytes = proptest::collection::vec(any::<u8>(), 0..64);
    let sig =
        proptest::collection::vec(any::<u8>(), 64).prop_map(|v| <[u8; 64]>::try_from(v).unwrap());
    prop_oneof![
        (any::<u32>(), any::<u64>(), bytes.clone(), sig.clone()).prop_map(|(o, s, v, sig)| {
            RbcMsg::Send {
                origin: o,
                seq: s,
                value: Arc::from(v),
                sig,
            }
        }),
        (
            any::<u32>(),
            any::<u64>(),
            any::<[u8; 32]>(),
            any::<u32>(),
            sig.clone()
        )
            .prop_map(|(o, s, d, g, sig)| RbcMsg::Echo {
                origin: o,
                seq: s,
                digest: d,
                signer: g,
                sig
            }),
        (
            any::<u32>(),
            any::<u64>(),
            bytes.clone(),
            bytes,
            proptest::collection::vec((any::<u32>(), sig), 0..5)
        )
            .prop_map(|(o, s, v, st, sigs)| RbcMsg::Final {
                origin: o,
                seq: s,
                value: Arc::from(v),
                cert: Arc::new(dwcp_engines::sim::crypto::Certificate {
                    statement: st,
                    sigs
                }),
            }),
    ]
}

proptest! {
    #[test]
    fn messages_round_trip_and_truncations_are_rejected(m in arb_msg(), cut in 0usize..200) {
        let bytes = dwcp_engines::sim::wire::encode(&m);
        prop_assert_eq!(RbcMsg::decode(&bytes).unwrap(), m.clone());
        if cut < bytes.len() {
            prop_assert!(RbcMsg::decode(&bytes[..cut]).is_err());
        }
        let mut longer = bytes.clone();
        longer.push(0);
        prop_assert_eq!(RbcMsg::decode(&longer), Err(DecodeError::Trailing(1)));
    }
}

#[test]
fn inputs_and_outputs_round_trip() {
    let b = Broadcast(b"hello".to_vec());
    assert_eq!(
        Broadcast::decode(&dwcp_engines::sim::wire::encode(&b)).unwrap(),
        b
    );
    let d = Delivery {
        origin: 1,
        seq: 2,
        value: Arc::from(b"v".as_slice()),
        cert: Arc::new(dwcp_engines::sim::crypto::Certificate {
            statement: vec![1, 2],
            sigs: vec![(3, [4; 64])],
        }),
    };
    assert_eq!(
        Delivery::decode(&dwcp_engines::sim::wire::encode(&d)).unwrap(),
        d
    );
    assert_eq!(RbcMsg::decode(&[9]), Err(DecodeError::BadTag(9)));
}

#[test]
fn mock_signatures_verify_only_for_their_signer_and_message() {
    for scheme in [Scheme::Mock, Scheme::Ed25519] {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(1);
        let ring = Keyring::generate(3, scheme, &mut rng);
        let keys = ring.public();
        let sig = ring.signer(0).unwrap().sign(b"m");
        assert!(keys.verify(0, b"m", &sig), "{scheme:?}");
        assert!(!keys.verify(1, b"m", &sig), "{scheme:?}: another signer");
        assert!(!keys.verify(0, b"n", &sig), "{scheme:?}: another message");
        assert!(!keys.verify(7, b"m", &sig), "{scheme:?}: non-member");
        let mut bent = sig;
        bent[3] ^= 1;
        assert!(!keys.verify(0, b"m", &bent), "{scheme:?}: a flipped bit");
    }
}
