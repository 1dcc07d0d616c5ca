//! Report formatting for `eval` and `bench` (the binary's only clock read is in `bench`).

use dwcp_allocator::arrivals::Pattern;
use dwcp_allocator::baselines::Baseline;
use dwcp_allocator::cluster::{Cluster, Head};
use dwcp_allocator::env::{stream, EnvConfig};
use dwcp_allocator::eval::{self, paired_diff, Interval, Placer, SeedMetrics, METRICS};
use dwcp_allocator::observe::Scale;
use dwcp_allocator::policy::{Model, Scratch};
use dwcp_allocator::weights::Manifest;
use rand::Rng;

fn cell(i: Interval, pct: bool) -> String {
    if pct {
        format!("{:.2} ± {:.2} %", 100.0 * i.mean, 100.0 * i.half)
    } else {
        format!("{:.4} ± {:.4}", i.mean, i.half)
    }
}

/// The evaluation table: every policy × pattern, each metric with its 95 % interval, and the
/// paired difference of MADDPG to best-fit.
pub fn eval_table(
    m: &Manifest,
    model: &Model,
    seeds: u64,
    episodes: u32,
) -> Result<String, String> {
    let cfg = &m.env;
    let mut s = format!(
        "# Allocator evaluation\n\nWeights: seed {}, {} training episodes, sha256 {}.\n\
         {seeds} evaluation seeds × {episodes} episodes per pattern (seeds {}..{}), identical streams for every policy.\n\
         Each cell: mean over seeds of the per-seed episode mean ± 95 % Student-t half-width.\n\n",
        m.seed,
        m.episodes,
        m.weights_sha256,
        eval::EVAL_SEED_BASE,
        eval::EVAL_SEED_BASE + seeds.saturating_sub(1),
    );
    let placers: Vec<Placer<'_>> = std::iter::once(Placer::Maddpg(model))
        .chain(Baseline::ALL.iter().map(|b| Placer::Baseline(*b)))
        .collect();
    let mut diffs = String::from(
        "\n## MADDPG − best-fit (paired per seed, 95 % interval)\n\n| pattern | success | SLA misses | utilisation | Jain | verdict |\n|---|---|---|---|---|---|\n",
    );
    s.push_str("| pattern | policy | placement success | SLA misses | utilisation | Jain fairness (node load) | guard fallbacks |\n|---|---|---|---|---|---|---|\n");
    for pattern in Pattern::ALL {
        let mut results: Vec<(&str, Vec<SeedMetrics>)> = Vec::new();
        for p in &placers {
            results.push((p.name(), eval::evaluate(cfg, pattern, seeds, episodes, *p)?));
        }
        for (name, r) in &results {
            let iv = |k: &str| Interval::of(&r.iter().map(|x| x.get(k)).collect::<Vec<_>>());
            s.push_str(&format!(
                "| {} | {name} | {} | {} | {} | {} | {} |\n",
                pattern.name(),
                cell(iv("success"), true),
                cell(iv("sla_miss"), true),
                cell(iv("utilisation"), true),
                cell(iv("jain"), false),
                if *name == "maddpg" {
                    cell(iv("fallback"), true)
                } else {
                    "—".into()
                },
            ));
        }
        let get = |n: &str| {
            results
                .iter()
                .find(|(k, _)| *k == n)
                .map(|(_, v)| v.clone())
                .unwrap_or_default()
        };
        let (ma, bf) = (get("maddpg"), get("best_fit"));
        let d: Vec<Interval> = METRICS.iter().map(|k| paired_diff(&ma, &bf, k)).collect();
        // At least as good: success not significantly lower and SLA misses not significantly higher.
        let not_worse = d[0].hi() >= 0.0 && d[1].lo() <= 0.0;
        let better = d[0].lo() > 0.0 || d[1].hi() < 0.0;
        let verdict = match (not_worse, better) {
            (true, true) => "better than best-fit",
            (true, false) => "not distinguishable from best-fit",
            _ => "worse than best-fit",
        };
        diffs.push_str(&format!(
            "| {} | {} | {} | {} | {} | {verdict} |\n",
            pattern.name(),
            cell(d[0], true),
            cell(d[1], true),
            cell(d[2], true),
            cell(d[3], false)
        ));
    }
    s.push_str(&diffs);
    Ok(s)
}

/// p50/p99 of one full placement round (every agent decides in order) on random cluster states.
#[allow(clippy::disallowed_methods)] // a benchmark measures wall time: the binary reads the clock here
pub fn bench(cfg: &EnvConfig, model: &Model, iters: usize) -> String {
    let mut rng = stream(42, 300);
    let mut scratch = Scratch::default();
    let mut samples = Vec::with_capacity(iters);
    let base = Cluster::new(cfg.nodes.clone());
    let scale = Scale::new(&base, cfg.max_slack, cfg.max_queue);
    let mut sink = 0usize;
    for _ in 0..iters {
        let used: Vec<[u32; 3]> = cfg
            .nodes
            .iter()
            .map(|c| {
                [
                    rng.gen_range(0..=c[0]),
                    rng.gen_range(0..=c[1]),
                    rng.gen_range(0..=c[2]),
                ]
            })
            .collect();
        let Ok(mut cluster) = Cluster::from_used(cfg.nodes.clone(), used) else {
            continue;
        };
        let heads: Vec<Option<Head>> = (0..cfg.agents)
            .map(|_| {
                Some(Head {
                    demand: [
                        rng.gen_range(1..=8),
                        rng.gen_range(1..=16),
                        rng.gen_range(1..=5),
                    ],
                    slack: rng.gen_range(0..=cfg.max_slack),
                    queue_len: rng.gen_range(1..=8),
                })
            })
            .collect();
        let t = std::time::Instant::now();
        let d = model.place_all(&mut cluster, &heads, &scale, &mut scratch);
        samples.push(t.elapsed().as_nanos() as f64 / 1000.0);
        sink += d.len();
    }
    samples.sort_by(f64::total_cmp);
    let q = |p: f64| {
        samples
            .get(((samples.len() as f64 - 1.0) * p) as usize)
            .copied()
            .unwrap_or(f64::NAN)
    };
    format!(
        "placement round for {} agents × {} nodes: p50 {:.1} µs, p99 {:.1} µs, max {:.1} µs over {} rounds ({sink} decisions)",
        cfg.agents,
        cfg.nodes.len(),
        q(0.5),
        q(0.99),
        q(1.0),
        samples.len()
    )
}
