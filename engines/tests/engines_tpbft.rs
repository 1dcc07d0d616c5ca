//! T-PBFT: EigenTrust against the analytic stationary vector, a colluding clique bounded by its
//! pre-trust, and in the simulator: agreement on the log (epoch changes with committee and trust
//! included), integrity, liveness after GST, and an equivocating or silent member demoted at
//! the next epoch boundary on every honest node. `SIM_SEED=<n>` replays one seed.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod sim_common;
use sim_common::seeds;
use std::collections::BTreeSet;

use dwcp_engines::pbft::{prepare_statement, PbftMsg};
use dwcp_engines::sim::crypto::{hash_parts, Scheme};
use dwcp_engines::sim::{Adversary, Fault, FaultModel, LinkFaults, SimReport, Simulator};
use dwcp_engines::tpbft::trust::{eigentrust, local_trust, pre_trust};
use dwcp_engines::tpbft::{
    self, epoch_context, TpbftBuilt, TpbftConfig, TpbftMsg, TpbftOut, TpbftSimNode, TxSubmit,
};
use rand::{Rng, SeedableRng};

/// Solve `(I − (1 − a)·Cᵀ)·t = a·p` by Gaussian elimination with partial pivoting (the analytic
/// stationary vector, computed independently of the power iteration).
#[allow(clippy::needless_range_loop)] // textbook elimination reads best with indices
fn solve_stationary(c: &[Vec<f64>], p: &[f64], a: f64) -> Vec<f64> {
    let n = p.len();
    let mut m: Vec<Vec<f64>> = (0..n)
        .map(|i| {
            let mut row: Vec<f64> = (0..n)
                .map(|j| f64::from(u8::from(i == j)) - (1.0 - a) * c[j][i])
                .collect();
            row.push(a * p[i]);
            row
        })
        .collect();
    for col in 0..n {
        let piv = (col..n)
            .max_by(|x, y| m[*x][col].abs().total_cmp(&m[*y][col].abs()))
            .unwrap();
        m.swap(col, piv);
        for r in 0..n {
            if r != col {
                let k = m[r][col] / m[col][col];
                for j in col..=n {
                    m[r][j] -= k * m[col][j];
                }
            }
        }
    }
    (0..n).map(|i| m[i][n] / m[i][i]).collect()
}

#[test]
fn eigentrust_equals_the_closed_form_on_two_nodes() {
    // C = [[0, 1], [1, 0]], p = (1, 0): t1 = (1 − a)·t2 + a, t2 = (1 − a)·t1, so
    // t1 = 1 / (2 − a), t2 = (1 − a) / (2 − a).
    for a in [0.1, 0.15, 0.5] {
        let c = vec![vec![0.0, 1.0], vec![1.0, 0.0]];
        let (t, iters) = eigentrust(&c, &[1.0, 0.0], a);
        assert!((t[0] - 1.0 / (2.0 - a)).abs() < 1e-10, "a={a}: {t:?}");
        assert!((t[1] - (1.0 - a) / (2.0 - a)).abs() < 1e-10, "a={a}: {t:?}");
        assert!(iters > 1);
    }
}

#[test]
fn eigentrust_equals_the_analytic_stationary_vector_on_random_small_graphs() {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(7);
    for case in 0..50 {
        let n = rng.gen_range(2..=6);
        let s: Vec<Vec<f64>> = (0..n)
            .map(|i| {
                (0..n)
                    .map(|j| {
                        if i != j && rng.gen_bool(0.6) {
                            f64::from(rng.gen_range(1u32..10))
                        } else {
                            0.0
                        }
                    })
                    .collect()
            })
            .collect();
        let faulty = BTreeSet::new();
        let p = pre_trust(n, &faulty);
        let c = local_trust(&s, &p);
        let a = 0.15;
        let (t, _) = eigentrust(&c, &p, a);
        let exact = solve_stationary(&c, &p, a);
        for (x, y) in t.iter().zip(&exact) {
            assert!((x - y).abs() < 1e-9, "case {case}: {t:?} vs {exact:?}");
        }
        let sum: f64 = t.iter().sum();
        assert!((sum - 1.0).abs() < 1e-9, "case {case}: sums to {sum}");
    }
}

#[test]
fn a_colluding_clique_stays_bounded_by_its_pre_trust_share() {
    // 10 nodes; 0..6 honest rate each other; the clique 6..10 rates only itself, as highly as
    // it likes. Honest nodes never rate the clique.
    let n = 10;
    let clique: Vec<usize> = (6..10).collect();
    let mut s = vec![vec![0.0; n]; n];
    for (i, row) in s.iter_mut().enumerate() {
        for (j, v) in row.iter_mut().enumerate() {
            if i == j {
                continue;
            }
            match (clique.contains(&i), clique.contains(&j)) {
                (false, false) => *v = 1.0 + ((i * 7 + j) % 3) as f64,
                (true, true) => *v = 1000.0,
                _ => {}
            }
        }
    }
    let faulty = BTreeSet::new();
    let p = pre_trust(n, &faulty);
    let share: f64 = clique.iter().map(|j| p[*j]).sum();
    for a in [0.05, 0.15, 0.5] {
        let c = local_trust(&s, &p);
        let (t, _) = eigentrust(&c, &p, a);
        let total: f64 = clique.iter().map(|j| t[*j]).sum();
        assert!(
            total <= share + 1e-9,
            "a={a}: clique trust {total} above its pre-trust share {share}"
        );
        // However hard the clique rates itself: scaling its self-ratings changes nothing.
        let mut s2 = s.clone();
        for i in &clique {
            for j in &clique {
                s2[*i][*j] *= 1000.0;
            }
        }
        let (t2, _) = eigentrust(&local_trust(&s2, &p), &p, a);
        let total2: f64 = clique.iter().map(|j| t2[*j]).sum();
        assert!((total2 - total).abs() < 1e-9, "a={a}: {total} vs {total2}");
        // A clique member the honest nodes do rate gains from them: the bound is about collusion.
        let mut s3 = s.clone();
        s3[0][6] = 5.0;
        let (t3, _) = eigentrust(&local_trust(&s3, &p), &p, a);
        let total3: f64 = clique.iter().map(|j| t3[*j]).sum();
        assert!(total3 > share + 1e-6, "a={a}: {total3}");
    }
}

fn lossy(gst_ms: u64) -> FaultModel {
    FaultModel {
        link: LinkFaults {
            min_delay_ms: 1,
            max_delay_ms: 20,
            drop_ppm: 50_000,
            duplicate_ppm: 20_000,
            reorder_ppm: 50_000,
            reorder_extra_ms: 20,
            bandwidth_bytes_per_ms: 0,
        },
        gst_ms,
        post_gst_max_delay_ms: 10,
        ..FaultModel::reliable()
    }
}

fn cfg(n: u32, c: u32) -> TpbftConfig {
    let mut cfg = TpbftConfig::new(n, c);
    cfg.epoch_len = 4;
    cfg.inner.batch_max = 8;
    cfg
}

fn run(
    seed: u64,
    mut built: TpbftBuilt,
    byz: &BTreeSet<u32>,
    faults: FaultModel,
    txs: u64,
    end_ms: u64,
) -> SimReport<TpbftOut> {
    let nodes = std::mem::take(&mut built.nodes);
    let mut sim = Simulator::new(seed, faults, nodes, false).max_steps(3_000_000);
    for inv in tpbft::safety_invariants() {
        sim = sim.with_boxed_invariant(inv);
    }
    sim = sim.with_boxed_invariant(tpbft::liveness_invariant(5_000));
    let honest: Vec<u32> = (0..built.cfg.n).filter(|i| !byz.contains(i)).collect();
    for k in 0..txs {
        let origin = honest[(k % honest.len() as u64) as usize];
        sim.input(
            k * 15,
            origin,
            TxSubmit {
                id: k,
                payload: format!("tx {k} of {origin}").into_bytes(),
            },
        );
    }
    sim.run_until(end_ms)
}

fn assert_clean(name: &str, r: &SimReport<TpbftOut>) {
    assert!(
        r.violations.is_empty(),
        "{name}: seed {}: {:?}",
        r.seed,
        r.violations
    );
    assert!(!r.truncated, "{name}: seed {} truncated", r.seed);
}

/// The committee each honest node switched to at `epoch`.
fn committees_at(r: &SimReport<TpbftOut>, byz: &BTreeSet<u32>, epoch: u64) -> Vec<Vec<u32>> {
    r.logs
        .iter()
        .filter(|(id, _)| !byz.contains(id))
        .map(|(id, log)| {
            log.iter()
                .find_map(|o| match o {
                    TpbftOut::Epoch {
                        epoch: e,
                        committee,
                        ..
                    } if *e == epoch => Some(committee.clone()),
                    _ => None,
                })
                .unwrap_or_else(|| panic!("node {id} never reached epoch {epoch}"))
        })
        .collect()
}

#[test]
fn honest_run_commits_everything_and_changes_epochs_in_agreement() {
    for seed in seeds(&[1, 2, 3]) {
        let built = tpbft::build(seed, cfg(7, 4), Scheme::Ed25519);
        let none = BTreeSet::new();
        let sim_r = run(seed, built, &none, lossy(500), 60, 8_000);
        assert_clean("honest", &sim_r);
        let cs = committees_at(&sim_r, &none, 1);
        assert!(cs.windows(2).all(|w| w[0] == w[1]), "seed {seed}: {cs:?}");
        for (id, log) in &sim_r.logs {
            let txs = log.iter().filter(|o| o.tx_key().is_some()).count();
            assert_eq!(txs, 60, "seed {seed}: node {id}");
        }
    }
}

/// Node `id` (a member of the first committee) double-votes: every prepare it sends goes out
/// twice, once as signed by the honest code and once for another digest, signed with its own
/// scoped key.
fn equivocator(built: &mut TpbftBuilt, id: u32) {
    let inner = built.honest(id).unwrap();
    let signer = built.ring.signer(id).unwrap();
    let mutate = Box::new(
        move |_now: u64,
              s: dwcp_engines::sim::outbox::Send<TpbftMsg>,
              _rng: &mut rand_chacha::ChaCha8Rng| {
            let TpbftMsg::Inner {
                epoch,
                msg:
                    PbftMsg::Prepare {
                        view,
                        seq,
                        digest,
                        signer: local,
                        ..
                    },
            } = &*s.msg
            else {
                return vec![s];
            };
            let fake = hash_parts(&[b"fake", digest]);
            let sig = signer
                .scoped(*local, epoch_context(*epoch))
                .sign(&prepare_statement(*view, *seq, &fake));
            let forged = TpbftMsg::Inner {
                epoch: *epoch,
                msg: PbftMsg::Prepare {
                    view: *view,
                    seq: *seq,
                    digest: fake,
                    signer: *local,
                    sig,
                },
            };
            let twin = dwcp_engines::sim::outbox::Send {
                claimed_from: s.claimed_from,
                to: s.to,
                msg: std::sync::Arc::new(forged),
            };
            vec![s, twin]
        },
    );
    built.nodes[id as usize] =
        Box::new(Adversary::new(inner, vec![Fault::Mutate(mutate)])) as TpbftSimNode;
}

#[test]
fn an_equivocating_member_leaves_the_committee_within_one_epoch_on_every_honest_node() {
    for seed in seeds(&[21, 22, 23]) {
        let mut built = tpbft::build(seed, cfg(7, 4), Scheme::Ed25519);
        let bad = 1u32;
        equivocator(&mut built, bad);
        let byz: BTreeSet<u32> = [bad].into();
        let r = run(seed, built, &byz, lossy(300), 40, 8_000);
        assert_clean("equivocator", &r);
        for c in committees_at(&r, &byz, 1) {
            assert!(!c.contains(&bad), "seed {seed}: epoch-1 committee {c:?}");
        }
        for (id, log) in r.logs.iter().filter(|(id, _)| !byz.contains(id)) {
            let faulty = log.iter().find_map(|o| match o {
                TpbftOut::Epoch { faulty, .. } => Some(faulty.clone()),
                _ => None,
            });
            assert_eq!(faulty, Some(vec![bad]), "seed {seed}: node {id}");
        }
        assert!(
            r.alarms
                .iter()
                .any(|(_, _, a)| a.suspect == Some(bad) && a.kind.as_str() == "equivocation"),
            "seed {seed}: no equivocation alarm naming {bad}"
        );
    }
}

#[test]
fn a_silent_member_is_demoted_at_the_next_boundary_on_every_honest_node() {
    for seed in seeds(&[31, 32]) {
        let mut built = tpbft::build(seed, cfg(7, 4), Scheme::Ed25519);
        let bad = 2u32;
        let inner = built.honest(bad).unwrap();
        built.nodes[bad as usize] =
            Box::new(Adversary::new(inner, vec![Fault::Silent])) as TpbftSimNode;
        let byz: BTreeSet<u32> = [bad].into();
        let r = run(seed, built, &byz, lossy(300), 40, 8_000);
        assert_clean("silent", &r);
        for c in committees_at(&r, &byz, 1) {
            assert!(!c.contains(&bad), "seed {seed}: epoch-1 committee {c:?}");
            assert_eq!(c.len(), 4);
        }
    }
}

#[test]
fn trust_vectors_are_bit_identical_across_honest_nodes() {
    let seed = 5;
    let built = tpbft::build(seed, cfg(7, 4), Scheme::Ed25519);
    let none = BTreeSet::new();
    let r = run(seed, built, &none, FaultModel::reliable(), 60, 6_000);
    assert_clean("identical", &r);
    let vecs: Vec<Vec<u64>> = r
        .logs
        .values()
        .map(|log| {
            log.iter()
                .filter_map(|o| match o {
                    TpbftOut::Epoch { trust_ppb, .. } => Some(trust_ppb.clone()),
                    _ => None,
                })
                .flatten()
                .collect()
        })
        .collect();
    assert!(!vecs[0].is_empty());
    assert!(vecs.windows(2).all(|w| w[0] == w[1]));
    // Members that signed earn more than the pre-trust floor of those who could not.
    let first = &vecs[0][..7];
    let max = first.iter().max().unwrap();
    let min = first.iter().min().unwrap();
    assert!(max > min, "{first:?}");
}
