//! # Single-flight recovery with backoff and a retry limit
//!
//! One [`Recovery`] per component, driven by the health loop. Invariants: at most one recovery is
//! in flight per component — failing ticks while one is in flight never start another; attempt
//! `k` (1-based) runs `backoff_ms · 2^(k-1)` ± `jitter_percent` % after the previous step (1 s,
//! 2 s, 4 s by default); after `max_attempts` attempts a still-unhealthy component is `Failed`
//! and stays failed until it reports healthy again or an operator resets it. Jitter comes from
//! the caller's seeded RNG.

use rand::Rng;
use serde::{Deserialize, Serialize};

/// Defaults: backoff 1 s / 2 s / 4 s with jitter, 3 tries, then the component is `failed`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecoveryConfig {
    pub backoff_ms: u64,
    pub max_attempts: u32,
    pub jitter_percent: u64,
}

impl Default for RecoveryConfig {
    fn default() -> Self {
        Self {
            backoff_ms: 1_000,
            max_attempts: 3,
            jitter_percent: 10,
        }
    }
}

/// Where a component's recovery stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum RecoveryState {
    Idle,
    /// Attempt `attempt` is due at `at_ms`.
    Waiting {
        attempt: u32,
        at_ms: u64,
    },
    /// All attempts made; the next unhealthy check marks it failed.
    Exhausted,
    Failed,
}

/// What the health loop must do or report for one check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecoveryStep {
    Nothing,
    Started,
    /// Restart the component now (attempt number, 1-based).
    Attempt(u32),
    Recovered,
    Failed,
}

/// One component's recovery state machine.
#[derive(Debug, Clone)]
pub struct Recovery {
    cfg: RecoveryConfig,
    state: RecoveryState,
    started_total: u64,
}

impl Recovery {
    pub fn new(cfg: RecoveryConfig) -> Self {
        Self {
            cfg,
            state: RecoveryState::Idle,
            started_total: 0,
        }
    }

    pub fn state(&self) -> RecoveryState {
        self.state
    }

    pub fn started_total(&self) -> u64 {
        self.started_total
    }

    fn delay(&self, attempt: u32, rng: &mut impl Rng) -> u64 {
        let base = self
            .cfg
            .backoff_ms
            .saturating_mul(1u64 << attempt.saturating_sub(1).min(20));
        let spread = base * self.cfg.jitter_percent / 100;
        if spread == 0 {
            return base;
        }
        base - spread + rng.gen_range(0..=2 * spread)
    }

    /// Feed one health check.
    pub fn on_check(&mut self, now_ms: u64, healthy: bool, rng: &mut impl Rng) -> RecoveryStep {
        if healthy {
            let was_idle = self.state == RecoveryState::Idle;
            self.state = RecoveryState::Idle;
            return if was_idle {
                RecoveryStep::Nothing
            } else {
                RecoveryStep::Recovered
            };
        }
        match self.state {
            RecoveryState::Idle => {
                self.started_total += 1;
                self.state = RecoveryState::Waiting {
                    attempt: 1,
                    at_ms: now_ms + self.delay(1, rng),
                };
                RecoveryStep::Started
            }
            RecoveryState::Waiting { attempt, at_ms } if now_ms >= at_ms => {
                self.state = if attempt >= self.cfg.max_attempts {
                    RecoveryState::Exhausted
                } else {
                    RecoveryState::Waiting {
                        attempt: attempt + 1,
                        at_ms: now_ms + self.delay(attempt + 1, rng),
                    }
                };
                RecoveryStep::Attempt(attempt)
            }
            RecoveryState::Exhausted => {
                self.state = RecoveryState::Failed;
                RecoveryStep::Failed
            }
            RecoveryState::Waiting { .. } | RecoveryState::Failed => RecoveryStep::Nothing,
        }
    }

    /// Operator reset: forget the failure and allow a new recovery.
    pub fn reset(&mut self) {
        self.state = RecoveryState::Idle;
    }
}
