//! The short version of `make bench-consensus`: each configuration measured in process with a
//! few hundred transactions; every submitted transaction committed, figures finite, and T-PBFT's
//! committee sends fewer messages per decision than PBFT over all 16 nodes (measured side by
//! side; the targets themselves are judged by the full benchmark).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::Duration;

use dwcp_node::bench::{in_process, row, Load, Setup, HEADER};

fn load(total: u64, window: usize) -> Load {
    Load {
        total_txs: total,
        tx_size: 512,
        window,
        batch_max: 512,
        group: 16,
        retransmit_ms: 1000,
        epoch_len: 16,
        timeout: Duration::from_secs(90),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn short_consensus_bench_measures_every_configuration() {
    println!("{HEADER}");
    let mut rows = Vec::new();
    for (setup, total, window) in [
        (Setup::Pbft { n: 4 }, 800, 64),
        (Setup::Pbft { n: 16 }, 320, 8),
        (Setup::Tpbft { n: 16, c: 4 }, 320, 8),
    ] {
        let m = in_process(setup, load(total, window)).await.unwrap();
        println!("{}", row(&m));
        assert_eq!(m.committed, m.expected, "{}", m.setup);
        assert!(!m.timed_out, "{}", m.setup);
        assert!(m.tx_per_s.is_finite() && m.tx_per_s > 0.0, "{m:?}");
        assert!(m.p99_ms >= m.p50_ms && m.p50_ms > 0.0, "{m:?}");
        assert!(m.messages_per_decision > 0.0 && m.bytes_per_decision > 0.0);
        rows.push(m);
    }
    let ratio = rows[2].messages_per_decision / rows[1].messages_per_decision;
    println!("T-PBFT(16,c=4)/PBFT(16) messages per decision: ×{ratio:.3}");
    assert!(ratio < 1.0, "×{ratio}");
}
