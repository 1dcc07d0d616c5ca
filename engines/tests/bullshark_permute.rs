//! Property: randomised DAGs (missing vertices, sparse leader support, weak links) delivered to
//! validators in many causal orders — whole, or cut at a random causally closed prefix, with
//! garbage collection running — give committed sequences that are identical (whole) or
//! prefixes of each other. Seeds are the cases; `BS_SEED=<n>` replays one, `BS_SEEDS=<k>` runs
//! a longer sweep. The planted bugs (commit with f support; no linked leaders) must break it on
//! the same seeds.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeMap;
use std::sync::Arc;

use dwcp_engines::bullshark::dag::{Dag, InsertError};
use dwcp_engines::bullshark::order::Orderer;
use dwcp_engines::bullshark::{leader_of, BullsharkConfig, Certificate, Header, PlantedBug};
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

fn seeds(default: u64) -> Vec<u64> {
    if let Some(s) = std::env::var("BS_SEED").ok().and_then(|s| s.parse().ok()) {
        return vec![s];
    }
    let k = std::env::var("BS_SEEDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(default);
    (0..k).collect()
}

/// A random DAG: each round has between 2f + 1 and n vertices, each with a random set of at
/// least 2f + 1 parents; the previous round's leader is referenced with probability
/// `leader_p` only (so leaders are often weakly supported); now and then a weak link to a
/// vertex nobody references.
fn random_dag(
    rng: &mut ChaCha8Rng,
    n: u32,
    f: u32,
    rounds: u64,
    leader_p: f64,
) -> Vec<Arc<Certificate>> {
    let q = (2 * f + 1) as usize;
    let mut all: Vec<Arc<Certificate>> = Vec::new();
    let mut prev: Vec<Arc<Certificate>> = Vec::new();
    let mut unreferenced: BTreeMap<[u8; 32], u64> = BTreeMap::new();
    for r in 0..rounds {
        let mut authors: Vec<u32> = (0..n).collect();
        authors.shuffle(rng);
        authors.truncate(rng.gen_range(q..=n as usize));
        authors.sort_unstable();
        let mut this = Vec::new();
        // Now and then most of the round shuns one vertex of the previous round (it becomes a
        // leader's lone supporter, or an orphan for the weak links).
        // Half the time it is a supporter of the leader two rounds back (a leader whose lone
        // supporter nobody builds on is where the commit rule is tested hardest).
        let shun = (r > 0 && rng.gen_bool(0.35)).then(|| {
            let older = r
                .checked_sub(2)
                .and_then(|lr| leader_of(lr, n))
                .and_then(|a| {
                    let l = all
                        .iter()
                        .rev()
                        .find(|c| c.round() + 2 == r && c.author() == a)?;
                    let sup: Vec<_> = prev
                        .iter()
                        .filter(|c| c.header.parents.contains(&l.digest))
                        .collect();
                    (!sup.is_empty()).then(|| sup[rng.gen_range(0..sup.len())].digest)
                });
            match older {
                Some(d) if rng.gen_bool(0.5) => d,
                _ => prev[rng.gen_range(0..prev.len())].digest,
            }
        });
        for a in authors {
            let mut parents = Vec::new();
            if r > 0 {
                let leader = leader_of(r - 1, n);
                let mut pool: Vec<&Arc<Certificate>> = prev.iter().collect();
                pool.shuffle(rng);
                let k = rng.gen_range(q..=pool.len());
                let skip_leader = rng.gen_bool(1.0 - leader_p);
                let skip_shun = rng.gen_bool(0.9);
                let mut chosen: Vec<&Arc<Certificate>> = pool
                    .iter()
                    .filter(|c| !(skip_leader && Some(c.author()) == leader && pool.len() > q))
                    .filter(|c| !(skip_shun && Some(c.digest) == shun && pool.len() > q))
                    .take(k)
                    .copied()
                    .collect();
                if chosen.len() < q {
                    chosen = pool[..q].to_vec();
                }
                parents = chosen.iter().map(|c| c.digest).collect();
            }
            let mut weak = Vec::new();
            if r >= 2 && rng.gen_bool(0.2) {
                if let Some((d, wr)) = unreferenced.iter().find(|(_, wr)| **wr + 1 < r) {
                    weak.push((*wr, *d));
                }
            }
            for d in parents.iter().chain(weak.iter().map(|(_, d)| d)) {
                unreferenced.remove(d);
            }
            let h = Header {
                author: a,
                round: r,
                batches: Vec::new(),
                parents,
                weak,
                sig: [0; 64],
            };
            this.push(Arc::new(Certificate::new(h, Vec::new())));
        }
        for c in &this {
            unreferenced.insert(c.digest, r);
        }
        all.extend(this.iter().cloned());
        prev = this;
    }
    all
}

/// A random causal order of `dag`, as a network with random delays delivers it: each vertex
/// gets `round + lag` (a quarter of them lag up to 5 rounds), and is delivered at the latest of
/// that and its parents' delivery (so after them).
fn causal_order(rng: &mut ChaCha8Rng, dag: &[Arc<Certificate>]) -> Vec<Arc<Certificate>> {
    let mut at: BTreeMap<[u8; 32], f64> = BTreeMap::new();
    let mut keyed = Vec::with_capacity(dag.len());
    for c in dag {
        // `dag` lists parents before children (round order).
        let lag = if rng.gen_bool(0.25) {
            rng.gen_range(0.0..5.0)
        } else {
            rng.gen_range(0.0..1.0)
        };
        let t = c
            .header
            .all_parents()
            .filter_map(|p| at.get(p))
            .fold(c.round() as f64 + lag, |m, x| m.max(*x));
        at.insert(c.digest, t);
        keyed.push((t, c.round(), rng.gen::<u32>(), Arc::clone(c)));
    }
    keyed.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)).then(a.2.cmp(&b.2)));
    keyed.into_iter().map(|k| k.3).collect()
}

/// What one validator commits from `order`: (round, author) of every ordered vertex.
fn commit(cfg: &BullsharkConfig, order: &[Arc<Certificate>]) -> Vec<(u64, u32)> {
    let (mut dag, mut o) = (Dag::new(), Orderer::new(cfg));
    let mut seq = Vec::new();
    for c in order {
        match dag.insert(Arc::clone(c)) {
            Ok(()) => {}
            Err(InsertError::Collected) => continue,
            Err(e) => panic!("{e:?}"),
        }
        for l in o.try_order(&dag, c.round()) {
            seq.extend(l.certs.iter().map(|c| (c.round(), c.author())));
        }
        dag.gc(o.horizon());
    }
    seq
}

/// `None` when every view agrees, else a description of the first disagreement.
fn check_seed(seed: u64, bug: Option<PlantedBug>) -> Option<String> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let (n, f) = if seed % 3 == 2 { (7, 2) } else { (4, 1) };
    let mut cfg = BullsharkConfig::new(n, f);
    cfg.gc_depth = if seed.is_multiple_of(2) { 4 } else { 50 };
    cfg.bug = bug;
    let dag = random_dag(&mut rng, n, f, 24, 0.45);
    let mut reference: Option<Vec<(u64, u32)>> = None;
    for view in 0..24 {
        let order = causal_order(&mut rng, &dag);
        let whole = view < 16;
        let cut = if whole {
            order.len()
        } else {
            rng.gen_range(0..order.len())
        };
        let seq = commit(&cfg, &order[..cut]);
        let Some(r) = &reference else {
            reference = Some(seq);
            continue;
        };
        let agrees = if whole {
            seq == *r
        } else {
            r.starts_with(&seq) || seq.starts_with(r)
        };
        if !agrees {
            let at = seq.iter().zip(r.iter()).position(|(a, b)| a != b);
            return Some(format!(
                "seed {seed} view {view}: diverges at {at:?} (n={n}, gc {})",
                cfg.gc_depth
            ));
        }
        if seq.is_empty() && whole {
            return Some(format!("seed {seed}: nothing committed"));
        }
    }
    None
}

#[test]
fn permuted_deliveries_commit_identical_sequences() {
    let mut committed = 0;
    for s in seeds(120) {
        if let Some(e) = check_seed(s, None) {
            panic!("{e} (replay: BS_SEED={s})");
        }
        committed += 1;
    }
    assert!(committed > 0);
}

#[test]
fn planted_bugs_break_agreement_on_the_same_seeds() {
    for bug in [PlantedBug::SupportF, PlantedBug::NoLinkedLeaders] {
        let caught: Vec<u64> = seeds(120)
            .into_iter()
            .filter(|s| check_seed(*s, Some(bug)).is_some())
            .collect();
        assert!(!caught.is_empty(), "{bug:?} never caught");
        eprintln!(
            "{bug:?}: caught on {} of the seeds, first {}",
            caught.len(),
            caught[0]
        );
    }
}
