//! T-PBFT origin retries: a transaction goes first to the committee's primary, and is re-sent (to
//! the next member) only after it waited a whole retry period since it was last sent, the period
//! doubling per try. (Re-sending everything outstanding on every tick was the retransmission
//! storm that made T-PBFT(16, c = 7) time out in `make bench-consensus`.)
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use dwcp_engines::sim::crypto::Scheme;
use dwcp_engines::sim::protocol::{NodeId, Outbox, Protocol, TimerCmd};
use dwcp_engines::tpbft::{self, TpbftConfig, TpbftMsg, TxSubmit};
use rand::SeedableRng;

fn outbox(me: NodeId) -> Outbox<TpbftMsg> {
    Outbox::new(me, 16, rand_chacha::ChaCha8Rng::seed_from_u64(7))
}

/// Destinations of the `Tx` messages sent, and the timers set.
fn drain(out: &mut Outbox<TpbftMsg>) -> (Vec<NodeId>, Vec<(u64, u64)>) {
    let to = out
        .sends
        .drain(..)
        .filter(|s| matches!(*s.msg, TpbftMsg::Tx(_)))
        .map(|s| s.to)
        .collect();
    let timers = out
        .timers
        .drain(..)
        .filter_map(|t| match t {
            TimerCmd::Set { id, at_ms } => Some((id, at_ms)),
            TimerCmd::Cancel { .. } => None,
        })
        .collect();
    (to, timers)
}

#[test]
fn an_origin_resends_only_what_waited_a_retry_period_with_backoff() {
    let cfg = TpbftConfig::new(16, 4);
    let p = cfg.retry_ms;
    let built = tpbft::build(3, cfg, Scheme::Mock);
    let me: NodeId = 15;
    let mut node = built.honest(me).unwrap();
    let committee = node.committee().to_vec();
    assert!(!committee.contains(&me), "{committee:?}");
    let mut out = outbox(me);
    node.on_start(0, &mut out);
    let (_, timers) = drain(&mut out);
    let &(tick, first_tick) = timers.last().expect("the retry tick is armed");
    assert_eq!(first_tick, p);

    // Submitted at 10: sent to the primary of view 0 (local member 0) only.
    node.on_input(
        10,
        TxSubmit {
            id: 1,
            payload: vec![7; 512],
        },
        &mut out,
    );
    assert_eq!(drain(&mut out).0, vec![committee[0]]);

    // The tick at p comes before the transaction waited a whole period: nothing re-sent.
    node.on_timer(p, tick, &mut out);
    assert_eq!(drain(&mut out).0, Vec::<NodeId>::new());
    // At 10 + p it is due: re-sent once, to the next member.
    node.on_timer(10 + p, tick, &mut out);
    assert_eq!(drain(&mut out).0, vec![committee[1]]);
    // The second retry waits twice the period.
    node.on_timer(10 + p + p, tick, &mut out);
    assert_eq!(drain(&mut out).0, Vec::<NodeId>::new());
    node.on_timer(10 + 3 * p, tick, &mut out);
    assert_eq!(drain(&mut out).0, vec![committee[2]]);
}
