//! # Circuit breaker: closed / open / half-open
//!
//! Closed: calls pass; it opens on `consecutive_failures` failures in a row, or when the last
//! `window` outcomes (a full window) hold at least `failure_percent` % failures. Open: calls are
//! rejected until `open_ms` has passed, then the next `acquire` moves to half-open. Half-open: at
//! most `half_open_probes` probe calls pass; `success_threshold` successes close it, any failure
//! re-opens it. A half-open round whose probes never report back expires after `open_ms` and a
//! fresh round starts, so the breaker cannot stay shut without failures.
//!
//! Every state change bumps a generation; a [`Permit`] from an older generation is ignored when
//! it reports, so calls started while closed cannot count as probes. Time is an input (`now_ms`).
//! The hot path (`acquire` + `record` while closed) is a few integer operations, no allocation.

use serde::{Deserialize, Serialize};
use thiserror::Error;

/// Defaults: open on 5 consecutive failures or >= 50 % of the last 20 calls, open 30 s, half-open
/// lets 3 probes through and closes after 2 successes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct BreakerConfig {
    pub consecutive_failures: u32,
    /// Sliding window of outcomes, at most 64.
    pub window: u32,
    pub failure_percent: u32,
    pub open_ms: u64,
    pub half_open_probes: u32,
    pub success_threshold: u32,
}

impl Default for BreakerConfig {
    fn default() -> Self {
        Self {
            consecutive_failures: 5,
            window: 20,
            failure_percent: 50,
            open_ms: 30_000,
            half_open_probes: 3,
            success_threshold: 2,
        }
    }
}

/// The three states.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BreakerState {
    Closed,
    Open,
    HalfOpen,
}

/// A state change, for events and the storm trigger.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Transition {
    pub from: BreakerState,
    pub to: BreakerState,
    pub at_ms: u64,
}

/// Permission to make one call; hand it back to [`CircuitBreaker::record`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Permit {
    generation: u64,
}

/// A rejected call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error, Serialize)]
pub enum Rejected {
    #[error("breaker open until {retry_at_ms} ms")]
    Open { retry_at_ms: u64 },
    #[error("breaker half-open and all probes are in flight")]
    ProbesInFlight,
}

/// A snapshot for health reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct BreakerSnapshot {
    pub state: BreakerState,
    pub since_ms: u64,
    pub consecutive_failures: u32,
    pub window_failures: u32,
    pub window_calls: u32,
    pub opens_total: u64,
}

/// One breaker.
#[derive(Debug, Clone)]
pub struct CircuitBreaker {
    cfg: BreakerConfig,
    state: BreakerState,
    since_ms: u64,
    generation: u64,
    consecutive: u32,
    outcomes: u64,
    calls: u32,
    probes_issued: u32,
    probe_successes: u32,
    opens_total: u64,
    transitions: Vec<Transition>,
}

impl CircuitBreaker {
    pub fn new(cfg: BreakerConfig) -> Self {
        let cfg = BreakerConfig {
            window: cfg.window.clamp(1, 64),
            ..cfg
        };
        Self {
            cfg,
            state: BreakerState::Closed,
            since_ms: 0,
            generation: 0,
            consecutive: 0,
            outcomes: 0,
            calls: 0,
            probes_issued: 0,
            probe_successes: 0,
            opens_total: 0,
            transitions: Vec::new(),
        }
    }

    pub fn state(&self) -> BreakerState {
        self.state
    }

    pub fn config(&self) -> BreakerConfig {
        self.cfg
    }

    fn window_mask(&self) -> u64 {
        if self.cfg.window >= 64 {
            u64::MAX
        } else {
            (1u64 << self.cfg.window) - 1
        }
    }

    pub fn snapshot(&self) -> BreakerSnapshot {
        BreakerSnapshot {
            state: self.state,
            since_ms: self.since_ms,
            consecutive_failures: self.consecutive,
            window_failures: (self.outcomes & self.window_mask()).count_ones(),
            window_calls: self.calls,
            opens_total: self.opens_total,
        }
    }

    /// State changes since the last drain, oldest first.
    pub fn drain_transitions(&mut self) -> Vec<Transition> {
        std::mem::take(&mut self.transitions)
    }

    fn go(&mut self, to: BreakerState, now_ms: u64) {
        self.transitions.push(Transition {
            from: self.state,
            to,
            at_ms: now_ms,
        });
        self.state = to;
        self.since_ms = now_ms;
        self.generation += 1;
        self.consecutive = 0;
        self.outcomes = 0;
        self.calls = 0;
        self.probes_issued = 0;
        self.probe_successes = 0;
        if to == BreakerState::Open {
            self.opens_total += 1;
        }
    }

    /// Ask to make a call at `now_ms`.
    pub fn acquire(&mut self, now_ms: u64) -> Result<Permit, Rejected> {
        match self.state {
            BreakerState::Closed => {
                return Ok(Permit {
                    generation: self.generation,
                })
            }
            BreakerState::Open => {
                let retry_at_ms = self.since_ms.saturating_add(self.cfg.open_ms);
                if now_ms < retry_at_ms {
                    return Err(Rejected::Open { retry_at_ms });
                }
                self.go(BreakerState::HalfOpen, now_ms);
            }
            BreakerState::HalfOpen => {
                let expired = now_ms >= self.since_ms.saturating_add(self.cfg.open_ms);
                if self.probes_issued >= self.cfg.half_open_probes && expired {
                    // The probes never reported back: start a fresh round.
                    self.go(BreakerState::HalfOpen, now_ms);
                }
            }
        }
        if self.probes_issued >= self.cfg.half_open_probes {
            return Err(Rejected::ProbesInFlight);
        }
        self.probes_issued += 1;
        Ok(Permit {
            generation: self.generation,
        })
    }

    /// Report how the call of `permit` went. Stale permits are ignored.
    pub fn record(&mut self, now_ms: u64, permit: Permit, success: bool) {
        if permit.generation != self.generation {
            return;
        }
        match self.state {
            BreakerState::Closed => {
                self.outcomes = ((self.outcomes << 1) | u64::from(!success)) & self.window_mask();
                self.calls = (self.calls + 1).min(self.cfg.window);
                self.consecutive = if success { 0 } else { self.consecutive + 1 };
                let failures = self.outcomes.count_ones();
                let full = self.calls >= self.cfg.window;
                let ratio_trips =
                    full && failures * 100 >= self.cfg.window * self.cfg.failure_percent;
                if !success && (self.consecutive >= self.cfg.consecutive_failures || ratio_trips) {
                    self.go(BreakerState::Open, now_ms);
                }
            }
            BreakerState::HalfOpen if success => {
                self.probe_successes += 1;
                if self.probe_successes >= self.cfg.success_threshold {
                    self.go(BreakerState::Closed, now_ms);
                }
            }
            BreakerState::HalfOpen => self.go(BreakerState::Open, now_ms),
            BreakerState::Open => {}
        }
    }

    /// Operator reset: back to closed with a clean window.
    pub fn reset(&mut self, now_ms: u64) {
        if self.state != BreakerState::Closed || self.calls > 0 {
            let was = self.state;
            self.go(BreakerState::Closed, now_ms);
            if was == BreakerState::Closed {
                self.transitions.pop();
            }
        }
    }
}
