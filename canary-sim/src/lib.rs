//! Seeded simulation of canary judgment over the pure core (issue 3, "Must show 1").
//!
//! * [`traffic`] — the traffic model ([`traffic::Scenario`], regressions, onsets) and the case catalogue;
//! * [`runner`] — one rollout of `dwcp_core::rollout` driven by simulated 1 s windows ([`runner::run`]),
//!   or, for production cases, through users (Zipf request counts), sidecars at their own report cadence
//!   and a real `dwcp_core::ledger::Ledger` ([`runner::run_fleet`]); batches of runs on threads
//!   ([`runner::run_many`]), seeds per case and run ([`runner::run_seed`]);
//! * [`report`] — aggregation (false-abort rate with a Wilson interval, detection rate, time to abort)
//!   and the markdown report the `dwcp-canary-sim` binary prints;
//! * [`config`] — the binary's options (arguments and `SIM_*` variables).
//!
//! ```text
//! cargo run --release -p dwcp-canary-sim            # 1 000 A/A runs per scenario, 500 per other case
//! cargo run --release -p dwcp-canary-sim -- 200     # fewer runs
//! SIM_SEED=7 SIM_THREADS=2 SIM_CASES=1,5 cargo run --release -p dwcp-canary-sim
//! ```

pub mod config;
pub mod report;
pub mod runner;
pub mod traffic;

pub use config::Config;
pub use runner::{run, run_many, run_seed, sim_spec, RunResult};
pub use traffic::{Onset, Regression, Scenario};
