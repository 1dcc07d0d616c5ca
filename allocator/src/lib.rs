//! # dwcp-allocator: the MADDPG workload allocator
//!
//! Places workloads (CPU, memory and bandwidth demands with deadlines) on nodes with one learned
//! actor per scheduler shard, trained offline with MADDPG (Lowe et al. 2017): centralised critics
//! over all agents' observations and actions, target networks with soft updates, a replay buffer,
//! decaying exploration and a straight-through Gumbel-softmax for the discrete placement.
//!
//! * [`env`], [`cluster`], [`arrivals`], [`observe`] — the pure, seeded environment. Over-commit
//!   cannot be constructed, and invariants re-derive capacity and workload accounting.
//! * [`baselines`] — random, first-fit, best-fit, least-loaded, and two diagnostic rules (`Probe`)
//!   that measure how much room the environment leaves above best-fit.
//! * [`policy`] — inference in plain `f32` and the guard: NaN, invalid or over-committing actions
//!   fall back to best-fit and are reported.
//! * [`weights`] — weight files with a SHA-256 manifest checked at load; a mismatch becomes a
//!   `DataIntegrityViolation` signal.
//! * [`eval`] — every policy on identical streams, 95 % intervals, paired differences to best-fit.
//! * `train` (feature `train`, candle on CPU) — the offline trainer behind `dwcp-allocator train`:
//!   a behaviour-cloning warm start from best-fit, then MADDPG fine-tuning.
//!
//! The companion links this crate without the `train` feature: no NN library at run time.

pub mod arrivals;
pub mod baselines;
pub mod cluster;
pub mod env;
pub mod eval;
pub mod observe;
pub mod policy;
#[cfg(feature = "train")]
pub mod train;
pub mod weights;
