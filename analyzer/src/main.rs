//! `dwcp-analyzer`: the companion service (`serve`) and the operator CLI over its HTTP API.

use clap::{Parser, Subcommand};
use dwcp_analyzer::{cli, config::Config, serve, traffic};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Parser)]
#[command(
    name = "dwcp-analyzer",
    version,
    about = "Progressive delivery companion: judge canaries, promote or abort them"
)]
struct Args {
    /// Companion URL for the CLI commands.
    #[arg(
        long,
        global = true,
        env = "DWCP_URL",
        default_value = "http://127.0.0.1:8080"
    )]
    url: String,
    /// Bearer token for mutating CLI commands.
    #[arg(long, global = true, env = "DWCP_TOKEN", default_value = "")]
    token: String,
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Run the service.
    Serve {
        #[arg(long, short)]
        config: PathBuf,
    },
    /// Check a config file and exit (0 valid, 64 invalid). With `--plugin-config` (the filter's
    /// plugin config: JSON, an Istio WasmPlugin or an Envoy config) also report rollouts defined in only
    /// one of the two (exit 65 with `--strict`).
    Check {
        #[arg(long, short)]
        config: PathBuf,
        #[arg(long)]
        plugin_config: Vec<PathBuf>,
        #[arg(long)]
        strict: bool,
    },
    /// Print every metric and event name the filter and the companion emit (JSON; the copy in
    /// `monitoring/names.json` is what the dashboards generator and the alert cross-check read).
    Names,
    /// Table of every rollout: phase, shares, error rates, p99s, verdict.
    Status,
    /// Redraw the status table every interval.
    Watch {
        #[arg(long, default_value_t = 1.0)]
        interval: f64,
    },
    Start {
        name: String,
    },
    Promote {
        name: String,
    },
    Pause {
        name: String,
    },
    Resume {
        name: String,
    },
    Abort {
        name: String,
    },
    /// Audit log and evidence of a rollout.
    Events {
        name: String,
        #[arg(long)]
        json: bool,
    },
    /// Global kill switch: `on` sends every user of every rollout to stable.
    Kill {
        state: cli::OnOff,
    },
    /// Send demo traffic through Envoy and print the split per segment.
    Traffic(traffic::Args),
}

fn main() -> ExitCode {
    let args = Args::parse();
    let client = cli::Client::new(&args.url, &args.token);
    match args.cmd {
        Cmd::Serve { config } => {
            tracing_subscriber::fmt()
                .json()
                .with_env_filter(
                    tracing_subscriber::EnvFilter::try_from_default_env()
                        .unwrap_or_else(|_| "info".into()),
                )
                .init();
            let cfg = match Config::load(&config) {
                Ok(c) => c,
                Err(e) => {
                    eprintln!("dwcp-analyzer: bad config: {e}");
                    return ExitCode::from(64);
                }
            };
            let rt = match tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()
            {
                Ok(rt) => rt,
                Err(e) => {
                    eprintln!("dwcp-analyzer: cannot start runtime: {e}");
                    return ExitCode::from(71);
                }
            };
            match rt.block_on(serve::run(cfg)) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("dwcp-analyzer: {e}");
                    ExitCode::from(69)
                }
            }
        }
        Cmd::Check {
            config,
            plugin_config,
            strict,
        } => check(&config, &plugin_config, strict),
        Cmd::Names => match serde_json::to_string_pretty(&dwcp_core::names::to_json()) {
            Ok(text) => {
                println!("{text}");
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("dwcp-analyzer: {e}");
                ExitCode::from(70)
            }
        },
        Cmd::Status => cli::exit(client.status()),
        Cmd::Watch { interval } => cli::exit(client.watch(interval)),
        Cmd::Start { name } => cli::exit(client.command(&name, "start")),
        Cmd::Promote { name } => cli::exit(client.command(&name, "promote")),
        Cmd::Pause { name } => cli::exit(client.command(&name, "pause")),
        Cmd::Resume { name } => cli::exit(client.command(&name, "resume")),
        Cmd::Abort { name } => cli::exit(client.command(&name, "abort")),
        Cmd::Events { name, json } => cli::exit(client.events(&name, json)),
        Cmd::Kill { state } => cli::exit(client.kill(state)),
        Cmd::Traffic(a) => cli::exit(traffic::run(&a).map_err(cli::CliError::Other)),
    }
}

/// `check`: the companion's config, then each plugin config against it.
fn check(config: &std::path::Path, plugin_configs: &[PathBuf], strict: bool) -> ExitCode {
    let c = match Config::load(config) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(64);
        }
    };
    println!("{}: ok ({} rollouts)", config.display(), c.rollouts.len());
    let mut mismatched = false;
    for p in plugin_configs {
        let shown = p.display().to_string();
        let text = match std::fs::read_to_string(p) {
            Ok(t) => t,
            Err(e) => {
                eprintln!("cannot read {shown}: {e}");
                return ExitCode::from(64);
            }
        };
        let f = match dwcp_analyzer::check::load_plugin_config(&shown, &text) {
            Ok(f) => f,
            Err(e) => {
                eprintln!("{e}");
                return ExitCode::from(64);
            }
        };
        let m = dwcp_analyzer::check::compare(&c, &f);
        for r in &m.only_companion {
            println!(
                "{shown}: rollout {r:?} is judged by the companion but the filter never routes it"
            );
        }
        for r in &m.only_filter {
            println!("{shown}: rollout {r:?} is routed by the filter but unknown to the companion (its cells are skipped and counted)");
        }
        if m.is_empty() {
            println!(
                "{shown}: ok ({} rollouts, the same as the companion's)",
                f.rollouts.len()
            );
        }
        mismatched |= !m.is_empty();
    }
    if mismatched && strict {
        ExitCode::from(65)
    } else {
        ExitCode::SUCCESS
    }
}
