//! # Component registry with dependency order
//!
//! Components start in a topological order of their declared dependencies (ties broken by name,
//! so the order is deterministic) and stop in the reverse order. A failed start stops, in reverse
//! order, everything this call had started, so a failed `start_all` leaves nothing running.
//! Unknown dependencies and cycles are rejected before anything starts.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};
use thiserror::Error;

/// A component's self-reported health.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Health {
    pub healthy: bool,
    pub detail: String,
    pub memory_bytes: u64,
}

/// Something the Manager runs. Implementations live with the caller (sans-IO: the Manager only
/// decides when to call these).
pub trait Component: Send {
    fn start(&mut self, now_ms: u64) -> Result<(), String>;
    fn stop(&mut self, now_ms: u64);
    fn health(&mut self, now_ms: u64) -> Health;
    fn restart(&mut self, now_ms: u64) -> Result<(), String> {
        self.stop(now_ms);
        self.start(now_ms)
    }
}

/// Registration data.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ComponentSpec {
    pub name: String,
    pub deps: Vec<String>,
    /// A critical component being down is `Severe`, not merely `Degraded`.
    pub critical: bool,
}

/// Registry failures; each names the component.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum RegistryError {
    #[error("component `{0}` registered twice")]
    Duplicate(String),
    #[error("component `{component}` depends on unknown `{missing}`")]
    MissingDependency { component: String, missing: String },
    #[error("dependency cycle among {0:?}")]
    Cycle(Vec<String>),
    #[error("component `{component}` failed to start: {reason}; stopped {stopped:?}")]
    StartFailed {
        component: String,
        reason: String,
        stopped: Vec<String>,
    },
    #[error("no component `{0}`")]
    Unknown(String),
}

/// The registry.
#[derive(Default)]
pub struct Registry {
    components: BTreeMap<String, (ComponentSpec, Box<dyn Component>)>,
    running: Vec<String>,
}

impl Registry {
    pub fn register(
        &mut self,
        spec: ComponentSpec,
        component: Box<dyn Component>,
    ) -> Result<(), RegistryError> {
        if self.components.contains_key(&spec.name) {
            return Err(RegistryError::Duplicate(spec.name));
        }
        self.components.insert(spec.name.clone(), (spec, component));
        Ok(())
    }

    pub fn specs(&self) -> impl Iterator<Item = &ComponentSpec> {
        self.components.values().map(|(s, _)| s)
    }

    pub fn running(&self) -> &[String] {
        &self.running
    }

    /// Kahn's algorithm over a sorted ready set.
    pub fn start_order(&self) -> Result<Vec<String>, RegistryError> {
        let mut indegree: BTreeMap<&str, usize> = BTreeMap::new();
        for (name, (spec, _)) in &self.components {
            for d in &spec.deps {
                if !self.components.contains_key(d) {
                    return Err(RegistryError::MissingDependency {
                        component: name.clone(),
                        missing: d.clone(),
                    });
                }
            }
            indegree.insert(name, spec.deps.len());
        }
        let mut ready: BTreeSet<&str> = indegree
            .iter()
            .filter(|(_, d)| **d == 0)
            .map(|(n, _)| *n)
            .collect();
        let mut order = Vec::new();
        while let Some(next) = ready.pop_first() {
            order.push(next.to_owned());
            for (name, (spec, _)) in &self.components {
                if spec.deps.iter().any(|d| d == next) {
                    if let Some(deg) = indegree.get_mut(name.as_str()) {
                        *deg -= 1;
                        if *deg == 0 {
                            ready.insert(name);
                        }
                    }
                }
            }
        }
        if order.len() < self.components.len() {
            let stuck = self
                .components
                .keys()
                .filter(|k| !order.contains(k))
                .cloned()
                .collect();
            return Err(RegistryError::Cycle(stuck));
        }
        Ok(order)
    }

    /// Start everything not yet running, in dependency order.
    pub fn start_all(&mut self, now_ms: u64) -> Result<Vec<String>, RegistryError> {
        let order = self.start_order()?;
        let mut started: Vec<String> = Vec::new();
        for name in order {
            if self.running.contains(&name) {
                continue;
            }
            let Some((_, c)) = self.components.get_mut(&name) else {
                continue;
            };
            if let Err(reason) = c.start(now_ms) {
                let mut stopped = Vec::new();
                for s in started.iter().rev() {
                    if let Some((_, c)) = self.components.get_mut(s) {
                        c.stop(now_ms);
                        stopped.push(s.clone());
                    }
                }
                self.running.retain(|r| !started.contains(r));
                return Err(RegistryError::StartFailed {
                    component: name,
                    reason,
                    stopped,
                });
            }
            self.running.push(name.clone());
            started.push(name);
        }
        Ok(started)
    }

    /// Stop everything running, in reverse start order; returns the order used.
    pub fn stop_all(&mut self, now_ms: u64) -> Vec<String> {
        let order: Vec<String> = self.running.drain(..).rev().collect();
        for name in &order {
            if let Some((_, c)) = self.components.get_mut(name) {
                c.stop(now_ms);
            }
        }
        order
    }

    pub fn health(&mut self, name: &str, now_ms: u64) -> Result<Health, RegistryError> {
        let (_, c) = self
            .components
            .get_mut(name)
            .ok_or_else(|| RegistryError::Unknown(name.to_owned()))?;
        Ok(c.health(now_ms))
    }

    pub fn restart(&mut self, name: &str, now_ms: u64) -> Result<(), String> {
        match self.components.get_mut(name) {
            Some((_, c)) => c.restart(now_ms),
            None => Err(format!("no component `{name}`")),
        }
    }
}
