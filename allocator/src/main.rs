//! `dwcp-allocator`: offline training, evaluation against the baselines, and the inference latency
//! benchmark. Training is deterministic for a seed on a given CPU; the manifest records the command.

use std::path::{Path, PathBuf};

use clap::{Parser, Subcommand};
use dwcp_allocator::env::EnvConfig;
use dwcp_allocator::train::{train, TrainConfig};
use dwcp_allocator::weights::{self, Manifest};

mod report;

#[derive(Parser)]
#[command(
    name = "dwcp-allocator",
    about = "MADDPG allocator: train, evaluate, benchmark"
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Train MADDPG and write actors.bin + manifest.json into --out.
    Train {
        #[arg(long)]
        seed: u64,
        #[arg(long)]
        episodes: u32,
        #[arg(long, default_value = "allocator/model")]
        out: PathBuf,
        /// JSON object overriding training hyper-parameters (e.g. `{"bc_fraction": 0.5}`).
        #[arg(long)]
        config: Option<String>,
    },
    /// Evaluate the weights in --model against the baselines; writes a Markdown table.
    Eval {
        #[arg(long, default_value = "allocator/model")]
        model: PathBuf,
        #[arg(long, default_value_t = 20)]
        seeds: u64,
        #[arg(long, default_value_t = 50)]
        episodes: u32,
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Inference latency of one placement round (all agents), p50/p99 over --iters rounds.
    Bench {
        #[arg(long, default_value = "allocator/model")]
        model: PathBuf,
        #[arg(long, default_value_t = 20_000)]
        iters: usize,
    },
}

fn main() {
    if let Err(e) = run(Cli::parse()) {
        eprintln!("dwcp-allocator: {e}");
        std::process::exit(1);
    }
}

fn run(cli: Cli) -> Result<(), String> {
    match cli.cmd {
        Cmd::Train {
            seed,
            episodes,
            out,
            config,
        } => {
            let cfg = match config {
                Some(j) => serde_json::from_str(&j).map_err(|e| format!("--config: {e}"))?,
                None => TrainConfig::default(),
            };
            train_cmd(seed, episodes, &out, cfg)
        }
        Cmd::Eval {
            model,
            seeds,
            episodes,
            out,
        } => {
            let (manifest, m) = weights::load_dir(&model).map_err(|e| e.to_string())?;
            let text = report::eval_table(&manifest, &m, seeds, episodes)?;
            println!("{text}");
            if let Some(p) = out {
                std::fs::write(&p, text).map_err(|e| format!("{}: {e}", p.display()))?;
            }
            Ok(())
        }
        Cmd::Bench { model, iters } => {
            let (manifest, m) = weights::load_dir(&model).map_err(|e| e.to_string())?;
            println!("{}", report::bench(&manifest.env, &m, iters));
            Ok(())
        }
    }
}

fn train_cmd(seed: u64, episodes: u32, out: &Path, cfg: TrainConfig) -> Result<(), String> {
    let env = EnvConfig::default();
    let overrides = if cfg == TrainConfig::default() {
        String::new()
    } else {
        let j = serde_json::to_string(&cfg).map_err(|e| e.to_string())?;
        format!(" --config '{j}'")
    };
    let rep = train(&env, &cfg, seed, episodes).map_err(|e| e.to_string())?;
    let bytes = weights::encode(&rep.model);
    std::fs::create_dir_all(out).map_err(|e| format!("{}: {e}", out.display()))?;
    let manifest = Manifest {
        format: "dwcp-maddpg-actors-v1".into(),
        seed,
        episodes,
        env,
        train: serde_json::to_value(&cfg).map_err(|e| e.to_string())?,
        command: format!(
            "RAYON_NUM_THREADS=1 cargo run --release -p dwcp-allocator --features train -- train --seed {seed} --episodes {episodes} --out {}{overrides}",
            out.display()
        ),
        weights_file: weights::WEIGHTS_FILE.into(),
        weights_sha256: weights::sha256_hex(&bytes),
    };
    let wpath = out.join(weights::WEIGHTS_FILE);
    std::fs::write(&wpath, &bytes).map_err(|e| format!("{}: {e}", wpath.display()))?;
    let json = serde_json::to_string_pretty(&manifest).map_err(|e| e.to_string())?;
    let mpath = out.join(weights::MANIFEST_FILE);
    std::fs::write(&mpath, json + "\n").map_err(|e| format!("{}: {e}", mpath.display()))?;
    let k = rep.critic_loss.len().clamp(1, 10);
    let first: Vec<f64> = rep
        .critic_loss
        .iter()
        .copied()
        .filter(|v| v.is_finite())
        .take(k)
        .collect();
    let last: Vec<f64> = rep
        .critic_loss
        .iter()
        .rev()
        .copied()
        .filter(|v| v.is_finite())
        .take(k)
        .collect();
    let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len().max(1) as f64;
    println!(
        "trained seed {seed}, {episodes} episodes, {} updates; critic loss first/last {k} episodes: {:.4} -> {:.4}; return first/last: {:.2} -> {:.2}; sha256 {}",
        rep.updates,
        mean(&first),
        mean(&last),
        mean(&rep.returns[..k.min(rep.returns.len())]),
        mean(&rep.returns[rep.returns.len().saturating_sub(k)..]),
        manifest.weights_sha256
    );
    Ok(())
}
