//! `dwcp-node`: one replica of a DWCP consensus engine from a TOML file.
//!
//! * `dwcp-node keygen --n 4 --dir DIR --base-port 7100 --engine pbft` — fresh ed25519 keys and
//!   one config per node (`DIR/node<i>.toml`, `DIR/node<i>.key`).
//! * `dwcp-node run --config DIR/node0.toml` — serve until killed; with `--txs N` it also submits
//!   `N` transactions of `--tx-size` bytes, waits for `--expect-total` commits and prints what it
//!   measured (JSON) before exiting.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use clap::{Parser, Subcommand};
use dwcp_engines::sim::protocol::Decode;
use dwcp_node::config::{Loaded, NodeFile, PeerFile};
use dwcp_node::engine::{self, EngineSpec, TxEngine};
use dwcp_node::load;
use dwcp_node::transport::{self, Handle};
use rand::RngCore;

#[derive(Parser)]
#[command(
    name = "dwcp-node",
    about = "Run one replica of a DWCP consensus engine over TCP"
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Write keys and configs for an `n`-node loopback cluster.
    Keygen {
        #[arg(long)]
        n: u32,
        #[arg(long)]
        dir: PathBuf,
        #[arg(long, default_value_t = 7100)]
        base_port: u16,
        /// pbft or tpbft
        #[arg(long, default_value = "pbft")]
        engine: String,
        /// T-PBFT committee size
        #[arg(long, default_value_t = 4)]
        committee: u32,
        #[arg(long, default_value_t = 512)]
        batch_max: usize,
    },
    /// Run a replica.
    Run {
        #[arg(long)]
        config: PathBuf,
        /// Transactions to submit from this node (0: only serve).
        #[arg(long, default_value_t = 0)]
        txs: u64,
        #[arg(long, default_value_t = 512)]
        tx_size: usize,
        #[arg(long, default_value_t = 1024)]
        window: usize,
        /// Most own transactions per engine input (signed once by the engine's client; 1: one
        /// input and signature per transaction).
        #[arg(long, default_value_t = 1)]
        group: usize,
        /// Transactions (all origins) to see committed before exiting.
        #[arg(long, default_value_t = 0)]
        expect_total: u64,
        #[arg(long, default_value_t = 60)]
        timeout_s: u64,
        /// Keep serving this long after the measurement (peers may still need us).
        #[arg(long, default_value_t = 2)]
        linger_s: u64,
    },
}

fn keygen(n: u32, dir: &std::path::Path, base_port: u16, spec: EngineSpec) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir)?;
    let mut secrets = Vec::new();
    for _ in 0..n {
        let mut s = [0u8; 32];
        rand::rngs::OsRng.fill_bytes(&mut s);
        secrets.push(s);
    }
    let peers: Vec<PeerFile> = secrets
        .iter()
        .enumerate()
        .map(|(i, s)| PeerFile {
            id: i as u32,
            addr: std::net::SocketAddr::from(([127, 0, 0, 1], base_port + i as u16)),
            public_key: hex::encode(
                ed25519_dalek::SigningKey::from_bytes(s)
                    .verifying_key()
                    .to_bytes(),
            ),
        })
        .collect();
    for (i, s) in secrets.iter().enumerate() {
        std::fs::write(dir.join(format!("node{i}.key")), hex::encode(s))?;
        let file = NodeFile {
            id: i as u32,
            listen: peers[i].addr,
            key_file: PathBuf::from(format!("node{i}.key")),
            engine: spec,
            peers: peers.clone(),
        };
        std::fs::write(dir.join(format!("node{i}.toml")), toml::to_string(&file)?)?;
    }
    Ok(())
}

struct RunArgs {
    txs: u64,
    tx_size: usize,
    window: usize,
    group: usize,
    expect_total: u64,
    timeout: Duration,
    linger: Duration,
}

async fn serve<P>(cfg: &Loaded, proto: P, args: RunArgs) -> anyhow::Result<()>
where
    P: TxEngine,
    P::Msg: Decode + Send + Sync + 'static,
    P::Input: Send + 'static,
    P::Output: Send + 'static,
{
    let listener = tokio::net::TcpListener::bind(cfg.file.listen)
        .await
        .with_context(|| format!("bind {}", cfg.file.listen))?;
    let mut h: Handle<P> = transport::spawn(cfg.transport(), listener, proto)?;
    eprintln!(
        "dwcp-node {} listening on {} ({} peers)",
        cfg.file.id,
        h.local_addr,
        cfg.peers.len()
    );
    if args.txs == 0 && args.expect_total == 0 {
        loop {
            tokio::select! {
                o = h.outputs.recv() => if o.is_none() { return Ok(()) },
                a = h.alarms.recv() => if let Some(a) = a { eprintln!("alarm: {a:?}") },
            }
        }
    }
    let d = load::Drive {
        txs: args.txs,
        size: args.tx_size,
        window: args.window,
        group: args.group,
        expect_total: args.expect_total,
        timeout: args.timeout,
    };
    let r = load::drive_grouped(&mut h, cfg.file.id, d).await?;
    let stats = h.stats();
    println!(
        "{}",
        serde_json::json!({
            "result": r,
            "messages": stats.messages(),
            "bytes": stats.bytes(),
            "dropped_full": stats.dropped_full,
            "connects": stats.connects,
            "sent": stats.sent,
        })
    );
    tokio::time::sleep(args.linger).await;
    h.stop();
    Ok(())
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.cmd {
        Cmd::Keygen {
            n,
            dir,
            base_port,
            engine,
            committee,
            batch_max,
        } => {
            let spec = match engine.as_str() {
                "pbft" => EngineSpec::Pbft {
                    f: (n - 1) / 3,
                    batch_max,
                    retransmit_ms: 500,
                },
                "tpbft" => EngineSpec::Tpbft {
                    committee,
                    batch_max,
                    retransmit_ms: 500,
                    epoch_len: 64,
                },
                other => anyhow::bail!("unknown engine {other} (pbft, tpbft)"),
            };
            keygen(n, &dir, base_port, spec)
        }
        Cmd::Run {
            config,
            txs,
            tx_size,
            window,
            group,
            expect_total,
            timeout_s,
            linger_s,
        } => {
            let cfg = Loaded::read(&config)?;
            let args = RunArgs {
                txs,
                tx_size,
                window,
                group,
                expect_total,
                timeout: Duration::from_secs(timeout_s),
                linger: Duration::from_secs(linger_s),
            };
            let rt = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()?;
            let n = cfg.peers.len() as u32;
            let (signer, keys) = (cfg.signer(), cfg.keys()?);
            rt.block_on(async {
                match cfg.file.engine {
                    EngineSpec::Pbft { .. } => {
                        let p = engine::pbft(n, cfg.file.engine, signer, keys)
                            .context("engine spec")?;
                        serve(&cfg, p, args).await
                    }
                    EngineSpec::Tpbft { .. } => {
                        let p = engine::tpbft(n, cfg.file.engine, signer, keys)
                            .context("engine spec")?;
                        serve(&cfg, p, args).await
                    }
                }
            })
        }
    }
}
