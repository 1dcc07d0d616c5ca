//! `dwcp-canary-sim [RUNS [REG_RUNS]]`: runs the simulation and prints its markdown report.
//! Options: see `dwcp_canary_sim::config` (`SIM_SEED`, `SIM_RUNS`, `SIM_REG_RUNS`, `SIM_CASES`,
//! `SIM_THREADS`).
#![allow(clippy::disallowed_methods)] // reads the clock only to print the wall time

use dwcp_canary_sim::{report, Config};
use std::io::Write;

fn main() -> std::io::Result<()> {
    let wall = std::time::Instant::now();
    let cfg = Config::from_process();
    let mut out = std::io::stdout().lock();
    report::write(&cfg, &mut out)?;
    writeln!(out, "wall time {:.1} s", wall.elapsed().as_secs_f64())
}
