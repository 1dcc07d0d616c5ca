//! Options of a simulation: positional arguments and `SIM_*` environment variables.
//!
//! ```text
//! dwcp-canary-sim [RUNS [REG_RUNS]]
//!   RUNS      A/A runs (or SIM_RUNS; default 1 000)
//!   REG_RUNS  runs per regression / aim case (or SIM_REG_RUNS; default half of RUNS)
//!   SIM_SEED=7       master seed (default 1)
//!   SIM_CASES=1,5,8  only these case numbers (1 = A/A)
//!   SIM_THREADS=2    worker threads (default min(2, available parallelism))
//! ```

/// What to run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    pub seed: u64,
    /// A/A runs of case 1.
    pub runs: u64,
    /// Runs of every other case.
    pub reg_runs: u64,
    /// Only these case ids (None: all).
    pub cases: Option<Vec<u64>>,
    pub threads: usize,
}

impl Config {
    /// From positional arguments (without the program name) and an environment lookup. Unparsable
    /// values fall back to the defaults, as the example did.
    pub fn from_args_env(args: &[String], env: impl Fn(&str) -> Option<String>) -> Self {
        let num = |pos: usize, var: &str| -> Option<u64> {
            args.get(pos)
                .and_then(|s| s.parse().ok())
                .or_else(|| env(var).and_then(|s| s.parse().ok()))
        };
        let runs = num(0, "SIM_RUNS").unwrap_or(1_000);
        // Runs per regression / aim case: second argument or SIM_REG_RUNS, default half the A/A runs.
        let reg_runs = num(1, "SIM_REG_RUNS").unwrap_or(runs.div_ceil(2));
        Self {
            seed: env("SIM_SEED").and_then(|s| s.parse().ok()).unwrap_or(1),
            runs,
            reg_runs,
            // SIM_CASES=1,5,8 runs only those case numbers (1 = A/A).
            cases: env("SIM_CASES")
                .map(|s| s.split(',').filter_map(|x| x.trim().parse().ok()).collect()),
            threads: env("SIM_THREADS")
                .and_then(|s| s.parse().ok())
                .unwrap_or_else(|| {
                    std::thread::available_parallelism().map_or(2, |n| n.get().min(2))
                }),
        }
    }

    /// From the process's arguments and environment.
    pub fn from_process() -> Self {
        let args: Vec<String> = std::env::args().skip(1).collect();
        Self::from_args_env(&args, |k| std::env::var(k).ok())
    }

    /// Whether case `id` is selected.
    pub fn wants(&self, id: u64) -> bool {
        self.cases.as_ref().is_none_or(|o| o.contains(&id))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arguments_win_over_the_environment() {
        let env = |k: &str| match k {
            "SIM_RUNS" => Some("50".to_string()),
            "SIM_SEED" => Some("7".to_string()),
            "SIM_CASES" => Some("1, 5,x".to_string()),
            "SIM_THREADS" => Some("3".to_string()),
            _ => None,
        };
        let c = Config::from_args_env(&["200".into()], env);
        assert_eq!((c.seed, c.runs, c.reg_runs, c.threads), (7, 200, 100, 3));
        assert_eq!(c.cases, Some(vec![1, 5]));
        assert!(c.wants(5) && !c.wants(2));
        let c = Config::from_args_env(&[], env);
        assert_eq!((c.runs, c.reg_runs), (50, 25));
        let c = Config::from_args_env(&["9".into(), "4".into()], |_| None);
        assert_eq!((c.seed, c.runs, c.reg_runs, &c.cases), (1, 9, 4, &None));
        assert!(c.wants(13));
    }
}
