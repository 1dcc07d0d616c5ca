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
    /// Check a config file and exit (0 valid, 64 invalid).
    Check {
        #[arg(long, short)]
        config: PathBuf,
    },
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
        Cmd::Check { config } => match Config::load(&config) {
            Ok(c) => {
                println!("{}: ok ({} rollouts)", config.display(), c.rollouts.len());
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("{e}");
                ExitCode::from(64)
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
