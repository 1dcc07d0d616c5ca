//! # Oracle and evaluation
//!
//! The oracle compresses and decompresses an item with *every* codec (verifying the round trip)
//! and records output size and CPU time, timed by a caller-supplied [`Stopwatch`] (this crate
//! reads no clock). The best codec for an item on a link is the one with the smallest measured
//! transfer time. [`evaluate`] reports, on held-out items × a grid of links: mean regret of the
//! model's choice vs the oracle's (`(T_model − T_oracle) / T_oracle`), agreement with the
//! oracle, the same for fixed-codec baselines, and the model's decision latency measured with the
//! same stopwatch (features + prediction, probe ≤ 4 KiB). All figures are measured per run.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::codec::{Codec, CodecError};
use super::corpus::{Class, Item};
use super::features::{extract, Features, PROBE_BYTES};
use super::model::{transfer_ns, Link, Model, Sample};

/// A monotonic nanosecond clock supplied by the caller.
pub trait Stopwatch {
    fn now_ns(&mut self) -> u64;
}

/// One codec's measured run on one item.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Measured {
    pub codec: Codec,
    pub out_len: u64,
    pub cpu_ns: u64,
}

/// Everything the oracle knows about one item.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OracleEntry {
    pub class: Class,
    pub features: Features,
    pub measured: Vec<Measured>,
}

impl OracleEntry {
    pub fn time(&self, codec: Codec, link: Link) -> Option<f64> {
        self.measured
            .iter()
            .find(|m| m.codec == codec)
            .map(|m| transfer_ns(m.cpu_ns as f64, m.out_len as f64, link))
    }

    pub fn best(&self, link: Link) -> Option<(Codec, f64)> {
        self.measured
            .iter()
            .map(|m| {
                (
                    m.codec,
                    transfer_ns(m.cpu_ns as f64, m.out_len as f64, link),
                )
            })
            .min_by(|a, b| a.1.total_cmp(&b.1))
    }

    pub fn samples(&self) -> impl Iterator<Item = Sample> + '_ {
        self.measured.iter().map(|m| Sample {
            features: self.features,
            codec: m.codec,
            out_len: m.out_len,
            cpu_ns: m.cpu_ns,
        })
    }
}

/// Run every codec on `item` `reps` times (minimum time kept), verifying each round trip.
pub fn measure(
    item: &Item,
    clock: &mut dyn Stopwatch,
    reps: u32,
) -> Result<OracleEntry, CodecError> {
    let mut measured = Vec::new();
    for codec in Codec::ALL {
        let mut best = u64::MAX;
        let mut out_len = 0;
        for _ in 0..reps.max(1) {
            let t0 = clock.now_ns();
            let packed = codec.compress(&item.data)?;
            let unpacked = codec.decompress(&packed, item.data.len())?;
            let t1 = clock.now_ns();
            if unpacked != item.data {
                return Err(CodecError {
                    codec,
                    message: "round trip changed the data".into(),
                });
            }
            best = best.min(t1.saturating_sub(t0));
            out_len = packed.len() as u64;
        }
        measured.push(Measured {
            codec,
            out_len,
            cpu_ns: best,
        });
    }
    Ok(OracleEntry {
        class: item.class,
        features: extract(&item.data),
        measured,
    })
}

/// The evaluation grid: 8 Mbit/s, 100 Mbit/s, 1 Gbit/s and 10 Gbit/s. RTT is 0 here because it
/// is the same for every codec: including it would only dilute the regret.
pub fn link_grid() -> Vec<Link> {
    [1_000_000, 12_500_000, 125_000_000, 1_250_000_000]
        .into_iter()
        .map(|b| Link {
            bandwidth_bytes_per_s: b,
            rtt_us: 0,
        })
        .collect()
}

/// Regret and agreement of one policy.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Score {
    pub policy: String,
    pub mean_regret: f64,
    pub agreement: f64,
}

/// The published figures of one evaluation run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Evaluation {
    pub trained_on: usize,
    pub held_out_items: usize,
    pub cases: usize,
    pub model: Score,
    pub baselines: Vec<Score>,
    pub per_class: BTreeMap<String, Score>,
    pub probe_bytes: usize,
    pub decision_ns_mean: f64,
    pub decision_ns_p99: u64,
    pub oracle_choices: BTreeMap<String, usize>,
}

#[derive(Default)]
struct Acc {
    regret: f64,
    agree: usize,
    n: usize,
}

impl Acc {
    fn add(&mut self, t: f64, best: f64, agree: bool) {
        self.regret += (t - best) / best.max(1.0);
        self.agree += usize::from(agree);
        self.n += 1;
    }
    fn score(&self, policy: &str) -> Score {
        let n = self.n.max(1) as f64;
        Score {
            policy: policy.to_owned(),
            mean_regret: self.regret / n,
            agreement: self.agree as f64 / n,
        }
    }
}

/// Evaluate `model` on held-out `items` (with their oracle entries, same order) over `links`.
pub fn evaluate(
    model: &Model,
    items: &[Item],
    oracle: &[OracleEntry],
    links: &[Link],
    clock: &mut dyn Stopwatch,
) -> Evaluation {
    let mut overall = Acc::default();
    let fixed = [Codec::None, Codec::Lz4, Codec::Zstd3];
    let mut base: Vec<Acc> = fixed.iter().map(|_| Acc::default()).collect();
    let mut linear = Acc::default();
    let mut per_class: BTreeMap<String, Acc> = BTreeMap::new();
    let mut choices: BTreeMap<String, usize> = BTreeMap::new();
    let mut latencies = Vec::new();
    for (item, entry) in items.iter().zip(oracle) {
        for &link in links {
            let Some((best_codec, best)) = entry.best(link) else {
                continue;
            };
            let t0 = clock.now_ns();
            let features = extract(&item.data);
            let pick = model.select(&features, link);
            let t1 = clock.now_ns();
            latencies.push(t1.saturating_sub(t0));
            let t = entry.time(pick, link).unwrap_or(best);
            overall.add(t, best, pick == best_codec);
            per_class
                .entry(format!("{:?}", item.class))
                .or_default()
                .add(t, best, pick == best_codec);
            let lin = model.select_linear(&features, link);
            linear.add(
                entry.time(lin, link).unwrap_or(best),
                best,
                lin == best_codec,
            );
            for (acc, codec) in base.iter_mut().zip(fixed) {
                acc.add(
                    entry.time(codec, link).unwrap_or(best),
                    best,
                    codec == best_codec,
                );
            }
            *choices.entry(best_codec.name().to_owned()).or_default() += 1;
        }
    }
    latencies.sort_unstable();
    let p99 = latencies
        .get(latencies.len().saturating_sub(1) * 99 / 100)
        .copied()
        .unwrap_or(0);
    Evaluation {
        trained_on: model.trained_on,
        held_out_items: items.len(),
        cases: overall.n,
        model: overall.score("model"),
        baselines: std::iter::once(linear.score("linear-model"))
            .chain(
                base.iter()
                    .zip(fixed)
                    .map(|(a, c)| a.score(&format!("always-{}", c.name()))),
            )
            .collect(),
        per_class: per_class
            .iter()
            .map(|(k, a)| (k.clone(), a.score("model")))
            .collect(),
        probe_bytes: PROBE_BYTES,
        decision_ns_mean: latencies.iter().sum::<u64>() as f64 / latencies.len().max(1) as f64,
        decision_ns_p99: p99,
        oracle_choices: choices,
    }
}
