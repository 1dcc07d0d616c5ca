//! # The DWCP Manager
//!
//! A coordinator over caller-provided [`Component`]s: a [`Registry`] started in dependency order,
//! a health loop and a metrics loop driven by [`Manager::tick`] on an injected clock (`now_ms`),
//! one single-flight [`Recovery`] and one [`CircuitBreaker`] per component, and a
//! [`DegradationLevel`] derived from all of it. Effects leave as [`ManagerEvent`]s; safety-relevant
//! ones carry [`EngineEvent`]s (`BreakerOpened` → storm trigger 8, `MemorySample` → trigger 7).
//!
//! Invariants: a loop runs at most once per `tick` however late the tick is (no catch-up bursts);
//! components are checked in start order; jitter comes from the Manager's seeded ChaCha RNG.

mod breaker;
mod recovery;
mod registry;

pub use breaker::{
    BreakerConfig, BreakerSnapshot, BreakerState, CircuitBreaker, Permit, Rejected, Transition,
};
pub use recovery::{Recovery, RecoveryConfig, RecoveryState, RecoveryStep};
pub use registry::{Component, ComponentSpec, Health, Registry, RegistryError};

use std::collections::BTreeMap;

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use thiserror::Error;

use dwcp_core::signals::EngineEvent;

/// Manager settings (all configuration, defaults as documented on each field).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ManagerConfig {
    pub engine: String,
    pub health_interval_ms: u64,
    pub metrics_interval_ms: u64,
    pub memory_budget_bytes: u64,
    pub breaker: BreakerConfig,
    pub recovery: RecoveryConfig,
}

impl Default for ManagerConfig {
    fn default() -> Self {
        Self {
            engine: "manager".into(),
            health_interval_ms: 1_000,
            metrics_interval_ms: 5_000,
            memory_budget_bytes: 512 << 20,
            breaker: BreakerConfig::default(),
            recovery: RecoveryConfig::default(),
        }
    }
}

/// How degraded the whole engine is, worst wins.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DegradationLevel {
    Normal,
    /// A non-critical component is unhealthy or recovering, or a breaker is not closed.
    Degraded,
    /// A critical component is unhealthy, or any component has failed recovery.
    Severe,
    /// Memory over budget, or every component down.
    Emergency,
}

/// One component's view, as the health loop last saw it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ComponentStatus {
    pub critical: bool,
    pub healthy: bool,
    pub recovery: RecoveryState,
    pub breaker: BreakerState,
}

/// Pure: the degradation level of a set of component statuses and the memory reading.
pub fn degradation_level(
    components: &[ComponentStatus],
    memory_used: u64,
    memory_budget: u64,
) -> DegradationLevel {
    let down = |c: &&ComponentStatus| !c.healthy;
    if memory_used > memory_budget
        || (!components.is_empty() && components.iter().all(|c| !c.healthy))
    {
        return DegradationLevel::Emergency;
    }
    if components.iter().filter(down).any(|c| c.critical)
        || components
            .iter()
            .any(|c| c.recovery == RecoveryState::Failed)
    {
        return DegradationLevel::Severe;
    }
    if components
        .iter()
        .any(|c| !c.healthy || c.breaker != BreakerState::Closed)
    {
        return DegradationLevel::Degraded;
    }
    DegradationLevel::Normal
}

/// What happened during a tick or a guarded call.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum ManagerEvent {
    RecoveryStarted {
        component: String,
        at_ms: u64,
    },
    RecoveryAttempt {
        component: String,
        attempt: u32,
        ok: bool,
        at_ms: u64,
    },
    Recovered {
        component: String,
        at_ms: u64,
    },
    RecoveryFailed {
        component: String,
        at_ms: u64,
    },
    Breaker {
        component: String,
        transition: Transition,
    },
    Signal {
        signal: EngineEvent,
    },
}

/// Manager errors at the API edge.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ManagerError {
    #[error("no component `{0}`")]
    UnknownComponent(String),
    #[error("component `{component}`: {rejected}")]
    Rejected {
        component: String,
        rejected: Rejected,
    },
    #[error(transparent)]
    Registry(#[from] RegistryError),
}

/// `GET /health` body.
#[derive(Debug, Clone, Serialize)]
pub struct HealthReport {
    pub status: DegradationLevel,
    pub at_ms: u64,
    pub memory_used_bytes: u64,
    pub memory_budget_bytes: u64,
    pub components: Vec<ComponentReport>,
}

/// One component in the health report.
#[derive(Debug, Clone, Serialize)]
pub struct ComponentReport {
    pub name: String,
    pub critical: bool,
    pub running: bool,
    pub health: Option<Health>,
    pub recovery: RecoveryState,
    pub recoveries_started: u64,
    pub breaker: BreakerSnapshot,
}

struct Slot {
    spec: ComponentSpec,
    breaker: CircuitBreaker,
    recovery: Recovery,
    last: Option<Health>,
}

/// The Manager.
pub struct Manager {
    cfg: ManagerConfig,
    registry: Registry,
    slots: BTreeMap<String, Slot>,
    order: Vec<String>,
    next_health_ms: u64,
    next_metrics_ms: u64,
    now_ms: u64,
    rng: ChaCha8Rng,
    events: Vec<ManagerEvent>,
}

impl Manager {
    pub fn new(cfg: ManagerConfig, seed: u64) -> Self {
        Self {
            cfg,
            registry: Registry::default(),
            slots: BTreeMap::new(),
            order: Vec::new(),
            next_health_ms: 0,
            next_metrics_ms: 0,
            now_ms: 0,
            rng: ChaCha8Rng::seed_from_u64(seed),
            events: Vec::new(),
        }
    }

    pub fn config(&self) -> &ManagerConfig {
        &self.cfg
    }

    pub fn register(
        &mut self,
        spec: ComponentSpec,
        component: Box<dyn Component>,
    ) -> Result<(), ManagerError> {
        self.registry.register(spec.clone(), component)?;
        let slot = Slot {
            breaker: CircuitBreaker::new(self.cfg.breaker),
            recovery: Recovery::new(self.cfg.recovery),
            last: None,
            spec: spec.clone(),
        };
        self.slots.insert(spec.name, slot);
        Ok(())
    }

    /// Start every component in dependency order (cleaning up on failure); arm both loops.
    pub fn start(&mut self, now_ms: u64) -> Result<Vec<String>, ManagerError> {
        self.now_ms = now_ms;
        self.order = self.registry.start_order()?;
        let started = self.registry.start_all(now_ms)?;
        self.next_health_ms = now_ms;
        self.next_metrics_ms = now_ms;
        Ok(started)
    }

    pub fn stop(&mut self, now_ms: u64) -> Vec<String> {
        self.now_ms = now_ms;
        self.registry.stop_all(now_ms)
    }

    /// Advance the injected clock: run the health loop and the metrics loop when due.
    pub fn tick(&mut self, now_ms: u64) -> Vec<ManagerEvent> {
        self.now_ms = self.now_ms.max(now_ms);
        let now = self.now_ms;
        if now >= self.next_health_ms {
            self.next_health_ms = now + self.cfg.health_interval_ms;
            self.health_loop(now);
        }
        if now >= self.next_metrics_ms {
            self.next_metrics_ms = now + self.cfg.metrics_interval_ms;
            let used = self.memory_used();
            let signal = EngineEvent::MemorySample {
                engine: self.cfg.engine.clone(),
                at_ms: now,
                used_bytes: used,
                budget_bytes: self.cfg.memory_budget_bytes,
            };
            self.events.push(ManagerEvent::Signal { signal });
        }
        std::mem::take(&mut self.events)
    }

    fn health_loop(&mut self, now: u64) {
        for name in self.order.clone() {
            let health = match self.registry.health(&name, now) {
                Ok(h) => h,
                Err(_) => continue,
            };
            let Some(slot) = self.slots.get_mut(&name) else {
                continue;
            };
            let step = slot.recovery.on_check(now, health.healthy, &mut self.rng);
            slot.last = Some(health);
            let component = name.clone();
            match step {
                RecoveryStep::Nothing => {}
                RecoveryStep::Started => self.events.push(ManagerEvent::RecoveryStarted {
                    component,
                    at_ms: now,
                }),
                RecoveryStep::Recovered => self.events.push(ManagerEvent::Recovered {
                    component,
                    at_ms: now,
                }),
                RecoveryStep::Failed => self.events.push(ManagerEvent::RecoveryFailed {
                    component,
                    at_ms: now,
                }),
                RecoveryStep::Attempt(attempt) => {
                    let ok = self.registry.restart(&name, now).is_ok();
                    self.events.push(ManagerEvent::RecoveryAttempt {
                        component,
                        attempt,
                        ok,
                        at_ms: now,
                    });
                }
            }
        }
    }

    fn memory_used(&self) -> u64 {
        self.slots
            .values()
            .filter_map(|s| s.last.as_ref())
            .map(|h| h.memory_bytes)
            .sum()
    }

    /// Guarded call, step 1: may `component` be called now?
    pub fn acquire(&mut self, component: &str, now_ms: u64) -> Result<Permit, ManagerError> {
        let slot = self
            .slots
            .get_mut(component)
            .ok_or_else(|| ManagerError::UnknownComponent(component.to_owned()))?;
        let res = slot.breaker.acquire(now_ms);
        self.collect_transitions(component);
        res.map_err(|rejected| ManagerError::Rejected {
            component: component.to_owned(),
            rejected,
        })
    }

    /// Guarded call, step 2: how did it go? Returns the events this caused (breaker opens).
    pub fn record(
        &mut self,
        component: &str,
        now_ms: u64,
        permit: Permit,
        success: bool,
    ) -> Vec<ManagerEvent> {
        if let Some(slot) = self.slots.get_mut(component) {
            slot.breaker.record(now_ms, permit, success);
            self.collect_transitions(component);
        }
        std::mem::take(&mut self.events)
    }

    /// Operator reset of one component's breaker and recovery.
    pub fn reset(&mut self, component: &str, now_ms: u64) -> Result<BreakerSnapshot, ManagerError> {
        let slot = self
            .slots
            .get_mut(component)
            .ok_or_else(|| ManagerError::UnknownComponent(component.to_owned()))?;
        slot.breaker.reset(now_ms);
        slot.recovery.reset();
        let snap = slot.breaker.snapshot();
        self.collect_transitions(component);
        Ok(snap)
    }

    pub fn breaker(&self, component: &str) -> Option<BreakerSnapshot> {
        self.slots.get(component).map(|s| s.breaker.snapshot())
    }

    pub fn breakers(&self) -> BTreeMap<String, BreakerSnapshot> {
        self.slots
            .iter()
            .map(|(k, s)| (k.clone(), s.breaker.snapshot()))
            .collect()
    }

    /// Events produced outside `tick`/`record` (e.g. by `acquire` or `reset`).
    pub fn drain_events(&mut self) -> Vec<ManagerEvent> {
        std::mem::take(&mut self.events)
    }

    fn collect_transitions(&mut self, component: &str) {
        let Some(slot) = self.slots.get_mut(component) else {
            return;
        };
        for t in slot.breaker.drain_transitions() {
            if t.to == BreakerState::Open {
                let signal = EngineEvent::BreakerOpened {
                    engine: self.cfg.engine.clone(),
                    at_ms: t.at_ms,
                    component: component.to_owned(),
                };
                self.events.push(ManagerEvent::Signal { signal });
            }
            self.events.push(ManagerEvent::Breaker {
                component: component.to_owned(),
                transition: t,
            });
        }
    }

    pub fn degradation(&self) -> DegradationLevel {
        let statuses: Vec<ComponentStatus> = self
            .slots
            .values()
            .map(|s| ComponentStatus {
                critical: s.spec.critical,
                healthy: s.last.as_ref().is_none_or(|h| h.healthy),
                recovery: s.recovery.state(),
                breaker: s.breaker.state(),
            })
            .collect();
        degradation_level(&statuses, self.memory_used(), self.cfg.memory_budget_bytes)
    }

    pub fn health_report(&self) -> HealthReport {
        let components = self
            .order
            .iter()
            .chain(self.slots.keys().filter(|k| !self.order.contains(k)))
            .filter_map(|name| self.slots.get(name).map(|s| (name, s)))
            .map(|(name, s)| ComponentReport {
                name: name.clone(),
                critical: s.spec.critical,
                running: self.registry.running().contains(name),
                health: s.last.clone(),
                recovery: s.recovery.state(),
                recoveries_started: s.recovery.started_total(),
                breaker: s.breaker.snapshot(),
            })
            .collect();
        HealthReport {
            status: self.degradation(),
            at_ms: self.now_ms,
            memory_used_bytes: self.memory_used(),
            memory_budget_bytes: self.cfg.memory_budget_bytes,
            components,
        }
    }
}
