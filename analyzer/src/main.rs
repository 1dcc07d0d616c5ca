//! `dwcp-analyzer`: the companion service (`serve`) and the operator CLI over its HTTP API.

use clap::{Parser, Subcommand};
use dwcp_analyzer::{cli, config::Config, serve, traffic, train};
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
    /// Bearer token for the CLI commands: an operator credential for promote/pause/resume/abort/kill
    /// and plan commands, a read (or operator) one for status/events unless reads are public.
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
    /// Check a config file, a plan file and/or a flag file and exit (0 valid, 64 invalid). With both a
    /// config and a plan, the plan's rollouts and phases are checked against the config's. With
    /// `--plugin-config` (the filter's plugin config: JSON, an Istio WasmPlugin or an Envoy config) also
    /// report rollouts defined in only one of the config and the plugin config (exit 65 with `--strict`).
    Check {
        #[arg(long, short)]
        config: Option<PathBuf>,
        #[arg(long)]
        plan: Option<PathBuf>,
        /// A flagd flag file for OFREP.
        #[arg(long)]
        flags: Option<PathBuf>,
        #[arg(long)]
        plugin_config: Vec<PathBuf>,
        #[arg(long)]
        strict: bool,
    },
    /// The release train: status, why a rollout waits, and a person's hold / release / skip / approve.
    Plan {
        #[command(subcommand)]
        cmd: PlanCmd,
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
    /// Copy the database to a new file with SQLite's online backup API (safe while the companion
    /// runs: one consistent snapshot, WAL content included); the copy is integrity-checked.
    Backup {
        #[arg(long)]
        db: PathBuf,
        #[arg(long)]
        out: PathBuf,
    },
    /// Replace the database with a copy made by `backup` (checked first). Stop the companion first;
    /// at its next start running filters adopt the restored state within one sync (a new epoch).
    Restore {
        #[arg(long)]
        from: PathBuf,
        #[arg(long)]
        db: PathBuf,
    },
}

#[derive(Subcommand)]
enum PlanCmd {
    /// Table of the plan's rollouts: state, phase, started, planned start and end, why it waits.
    Status {
        /// Redraw every second.
        #[arg(long)]
        watch: bool,
    },
    /// Why a rollout is waiting: each gate, `not_before`, freezes.
    Explain { rollout: String },
    /// Approve the promotion the rollout is waiting for.
    Approve { rollout: String },
    /// Stop the train for this rollout (nothing starts or moves) until released.
    Hold {
        rollout: String,
        #[arg(long)]
        reason: Option<String>,
    },
    /// Undo a hold, or a pause the train made after an upstream rollback.
    Release { rollout: String },
    /// Take the rollout out of the train; what waits on it no longer does.
    Skip { rollout: String },
}

/// Validates the config and, when it names them or they are given, the plan (against the config) and
/// the flag file.
fn check(
    config: Option<&std::path::Path>,
    plan: Option<&std::path::Path>,
    flags: Option<&std::path::Path>,
) -> Result<String, String> {
    let cfg = match config {
        Some(p) => Some(Config::load(p).map_err(|e| e.to_string())?),
        None => None,
    };
    let plan_path = plan.map(std::path::Path::to_path_buf).or_else(|| {
        cfg.as_ref()
            .and_then(|c| c.train.as_ref())
            .map(|t| t.plan.clone())
    });
    let mut out = Vec::new();
    if let (Some(p), Some(c)) = (config, &cfg) {
        out.push(format!(
            "{}: ok ({} rollouts)",
            p.display(),
            c.rollouts.len()
        ));
    }
    if let Some(pp) = plan_path {
        let plan = train::load_plan(&pp).map_err(|e| e.to_string())?;
        if let Some(c) = &cfg {
            let specs: Vec<_> = c.rollouts.iter().map(|d| &d.spec).collect();
            train::check_against(&plan, &pp.display().to_string(), &specs)
                .map_err(|e| e.to_string())?;
        }
        out.push(format!(
            "{}: ok (plan {}, {} rollouts)",
            pp.display(),
            plan.name,
            plan.rollouts.len()
        ));
    }
    let flags_path = flags
        .map(std::path::Path::to_path_buf)
        .or_else(|| cfg.as_ref().and_then(|c| c.flags.clone()));
    if let Some(fp) = flags_path {
        let text = std::fs::read_to_string(&fp)
            .map_err(|e| format!("cannot read {}: {e}", fp.display()))?;
        let f = dwcp_analyzer::ofrep::parse(&text).map_err(|e| format!("{}: {e}", fp.display()))?;
        out.push(format!("{}: ok ({} flags)", fp.display(), f.set.len()));
    }
    if out.is_empty() {
        return Err("give --config FILE, --plan FILE and/or --flags FILE".into());
    }
    Ok(out.join("\n"))
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
            if cfg.train.is_some() || cfg.flags.is_some() {
                let plan = cfg.train.as_ref().map(|t| t.plan.as_path());
                if let Err(e) = check(None, plan, cfg.flags.as_deref()) {
                    eprintln!("dwcp-analyzer: {e}");
                    return ExitCode::from(64);
                }
            }
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
            plan,
            flags,
            plugin_config,
            strict,
        } => {
            match check(config.as_deref(), plan.as_deref(), flags.as_deref()) {
                Ok(m) => println!("{m}"),
                Err(e) => {
                    eprintln!("{e}");
                    return ExitCode::from(64);
                }
            }
            match (config, plugin_config.is_empty()) {
                (_, true) => ExitCode::SUCCESS,
                (Some(c), false) => check_plugin_configs(&c, &plugin_config, strict),
                (None, false) => {
                    eprintln!(
                        "--plugin-config needs --config (the companion config to compare with)"
                    );
                    ExitCode::from(64)
                }
            }
        }
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
        Cmd::Plan { cmd } => cli::exit(match cmd {
            PlanCmd::Status { watch } => train::cli::status(&client, watch.then_some(1.0)),
            PlanCmd::Explain { rollout } => train::cli::explain(&client, &rollout),
            PlanCmd::Approve { rollout } => train::cli::command(&client, &rollout, "approve", None),
            PlanCmd::Hold { rollout, reason } => {
                train::cli::command(&client, &rollout, "hold", reason.as_deref())
            }
            PlanCmd::Release { rollout } => train::cli::command(&client, &rollout, "release", None),
            PlanCmd::Skip { rollout } => train::cli::command(&client, &rollout, "skip", None),
        }),
        Cmd::Backup { db, out } => cli::exit(cli::backup(&db, &out)),
        Cmd::Restore { from, db } => cli::exit(cli::restore(&from, &db)),
        Cmd::Traffic(a) => cli::exit(traffic::run(&a).map_err(cli::CliError::Other)),
    }
}

/// `check`: the companion's config, then each plugin config against it.
/// Reports rollouts that are in only one of the companion config and each plugin config.
fn check_plugin_configs(
    config: &std::path::Path,
    plugin_configs: &[PathBuf],
    strict: bool,
) -> ExitCode {
    let c = match Config::load(config) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(64);
        }
    };
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
