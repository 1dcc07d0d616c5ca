//! # The engine signal contract (rollback triggers 5–8)
//!
//! Every DWCP engine reports safety and health through one typed enum, [`EngineEvent`], serialised
//! with a `kind` tag so the companion can store it as rollout evidence verbatim. Four variants are
//! the engines' safety signals (`ByzantineAttackDetected`, `DataIntegrityViolation`,
//! `CircuitBreakerStorm`, `MemoryExhaustion`); two are raw observations (`BreakerOpened`,
//! `MemorySample`) that [`TriggerWindow`] aggregates into the storm and memory signals.
//!
//! [`TriggerWindow`] is pure: timestamps are inputs (milliseconds on any monotonic origin, fed in
//! non-decreasing order per engine). Invariants (SPEC §4, triggers 5–8):
//! * trigger 5 (Byzantine) and 6 (integrity) fire on the event itself, every time;
//! * trigger 8 fires when strictly more than `storm_opens` breaker opens of one engine fall in a
//!   window of `storm_window_ms` ending at the latest open; it re-arms once the count drops back;
//! * trigger 7 fires when every memory sample of one engine for at least `memory_window_ms` was
//!   strictly above `memory_percent` % of its budget (integer math: `used * 100 > budget * pct`);
//!   one sample at or under the line resets the streak.

use std::collections::{BTreeMap, VecDeque};

use serde::{Deserialize, Serialize};

/// What kind of data-integrity failure was seen.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum IntegrityKind {
    /// A frame checksum did not match its contents.
    ChecksumMismatch,
    /// Decompression produced bytes that differ from what was compressed.
    RoundTripMismatch,
    /// Two honest replicas committed different values for one slot.
    ConflictingCommit,
    /// A committed certificate lacks a threshold of distinct valid member signatures.
    InvalidCertificate,
    /// Something was committed twice, or committed without being submitted.
    DuplicateOrUnsubmittedCommit,
    /// An allocator granted more than the capacity.
    OverCommit,
    /// Shipped model weights do not match their recorded hash.
    WeightHashMismatch,
}

/// A typed event emitted by an engine. Serialised as `{"kind": "...", ...fields}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind")]
pub enum EngineEvent {
    /// Trigger 5: a node was caught misbehaving (equivocation, forged signature, garbage, ...).
    ByzantineAttackDetected {
        engine: String,
        at_ms: u64,
        /// The suspected node, when the evidence names one.
        suspect: Option<u32>,
        /// Short behaviour name, e.g. `equivocation`, `bad_signature`.
        behaviour: String,
        detail: String,
    },
    /// Trigger 6: a checksum, round trip, commit or allocation invariant failed.
    DataIntegrityViolation {
        engine: String,
        at_ms: u64,
        violation: IntegrityKind,
        detail: String,
    },
    /// Trigger 8: more than the configured number of breaker opens inside the window.
    CircuitBreakerStorm {
        engine: String,
        at_ms: u64,
        opens: u32,
        window_ms: u64,
        /// Components whose breakers opened inside the window, sorted, deduplicated.
        components: Vec<String>,
    },
    /// Trigger 7: memory above the threshold of the budget for the whole window.
    MemoryExhaustion {
        engine: String,
        at_ms: u64,
        used_bytes: u64,
        budget_bytes: u64,
        /// How long the usage has been continuously above the threshold.
        above_for_ms: u64,
    },
    /// Observation: one circuit breaker went to `open` (feeds trigger 8).
    BreakerOpened {
        engine: String,
        at_ms: u64,
        component: String,
    },
    /// Observation: a memory reading against the configured budget (feeds trigger 7).
    MemorySample {
        engine: String,
        at_ms: u64,
        used_bytes: u64,
        budget_bytes: u64,
    },
}

impl EngineEvent {
    /// The engine that emitted this event.
    pub fn engine(&self) -> &str {
        match self {
            Self::ByzantineAttackDetected { engine, .. }
            | Self::DataIntegrityViolation { engine, .. }
            | Self::CircuitBreakerStorm { engine, .. }
            | Self::MemoryExhaustion { engine, .. }
            | Self::BreakerOpened { engine, .. }
            | Self::MemorySample { engine, .. } => engine,
        }
    }

    /// When it happened (milliseconds, caller's monotonic origin).
    pub fn at_ms(&self) -> u64 {
        match self {
            Self::ByzantineAttackDetected { at_ms, .. }
            | Self::DataIntegrityViolation { at_ms, .. }
            | Self::CircuitBreakerStorm { at_ms, .. }
            | Self::MemoryExhaustion { at_ms, .. }
            | Self::BreakerOpened { at_ms, .. }
            | Self::MemorySample { at_ms, .. } => *at_ms,
        }
    }

    /// The `kind` label of `dwcp_engine_events_total` this event counts under (one of
    /// [`crate::names::ENGINE_EVENT_KINDS`]).
    pub fn kind_label(&self) -> &'static str {
        match self {
            Self::ByzantineAttackDetected { .. } => "byzantine",
            Self::DataIntegrityViolation { .. } => "integrity_violation",
            Self::CircuitBreakerStorm { .. } => "breaker_storm",
            Self::MemoryExhaustion { .. } => "memory_exhaustion",
            Self::BreakerOpened { .. } => "breaker_open",
            Self::MemorySample { .. } => "memory_sample",
        }
    }
}

/// The rollback triggers of SPEC §4 that engine events can fire. This typed value travels from
/// [`TriggerWindow`] to [`crate::rollout::Input::EngineTrigger`]; the SPEC number is derived only
/// for display and labels. Serialised as its snake_case name (`"data_integrity"`), as stored in
/// rollout evidence.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Trigger {
    ByzantineAttack,
    DataIntegrity,
    MemoryExhaustion,
    CircuitBreakerStorm,
}

impl Trigger {
    /// Every engine trigger, in SPEC order (5–8).
    pub const ALL: [Self; 4] = [
        Self::ByzantineAttack,
        Self::DataIntegrity,
        Self::MemoryExhaustion,
        Self::CircuitBreakerStorm,
    ];

    /// The trigger's number in SPEC §4 (5–8), for display and metric labels.
    pub fn number(self) -> u8 {
        match self {
            Self::ByzantineAttack => 5,
            Self::DataIntegrity => 6,
            Self::MemoryExhaustion => 7,
            Self::CircuitBreakerStorm => 8,
        }
    }

    /// The trigger's name as it appears in verdict labels (`DataIntegrity`).
    pub fn name(self) -> &'static str {
        match self {
            Self::ByzantineAttack => "ByzantineAttack",
            Self::DataIntegrity => "DataIntegrity",
            Self::MemoryExhaustion => "MemoryExhaustion",
            Self::CircuitBreakerStorm => "CircuitBreakerStorm",
        }
    }
}

/// The verdict label of a trigger: `number:name`, e.g. `6:DataIntegrity` (stored in verdicts).
impl std::fmt::Display for Trigger {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.number(), self.name())
    }
}

/// A fired trigger with the signal that is its evidence.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TriggerFired {
    pub trigger: Trigger,
    pub at_ms: u64,
    /// Always one of the four signal variants (never a raw observation).
    pub evidence: EngineEvent,
}

/// Thresholds for triggers 7 and 8 (defaults from SPEC §4; all configurable).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct TriggerConfig {
    /// Trigger 8 fires at strictly more than this many opens in the window (default 10).
    pub storm_opens: u32,
    pub storm_window_ms: u64,
    /// Trigger 7 threshold in whole percent of the budget (default 95).
    pub memory_percent: u64,
    pub memory_window_ms: u64,
}

impl Default for TriggerConfig {
    fn default() -> Self {
        Self {
            storm_opens: 10,
            storm_window_ms: 300_000,
            memory_percent: 95,
            memory_window_ms: 300_000,
        }
    }
}

#[derive(Debug, Default, Clone)]
struct StormState {
    opens: VecDeque<(u64, String)>,
    fired: bool,
}

#[derive(Debug, Default, Clone)]
struct MemoryState {
    high_since: Option<u64>,
    fired: bool,
}

/// Pure evaluator of triggers 5–8 over a stream of [`EngineEvent`]s, per engine.
#[derive(Debug, Clone, Default)]
pub struct TriggerWindow {
    config: TriggerConfig,
    storms: BTreeMap<String, StormState>,
    memory: BTreeMap<String, MemoryState>,
}

impl TriggerWindow {
    pub fn new(config: TriggerConfig) -> Self {
        Self {
            config,
            storms: BTreeMap::new(),
            memory: BTreeMap::new(),
        }
    }

    pub fn config(&self) -> TriggerConfig {
        self.config
    }

    /// Feed one event; returns the trigger it fires, if any. Signal variants fed directly (an
    /// engine that aggregates itself) fire their trigger immediately.
    pub fn observe(&mut self, event: &EngineEvent) -> Option<TriggerFired> {
        let at_ms = event.at_ms();
        let fired = |trigger| {
            Some(TriggerFired {
                trigger,
                at_ms,
                evidence: event.clone(),
            })
        };
        match event {
            EngineEvent::ByzantineAttackDetected { .. } => fired(Trigger::ByzantineAttack),
            EngineEvent::DataIntegrityViolation { .. } => fired(Trigger::DataIntegrity),
            EngineEvent::CircuitBreakerStorm { .. } => fired(Trigger::CircuitBreakerStorm),
            EngineEvent::MemoryExhaustion { .. } => fired(Trigger::MemoryExhaustion),
            EngineEvent::BreakerOpened {
                engine, component, ..
            } => self.on_open(engine, component, at_ms),
            EngineEvent::MemorySample {
                engine,
                used_bytes,
                budget_bytes,
                ..
            } => self.on_memory(engine, *used_bytes, *budget_bytes, at_ms),
        }
    }

    fn on_open(&mut self, engine: &str, component: &str, at_ms: u64) -> Option<TriggerFired> {
        let cfg = self.config;
        let state = self.storms.entry(engine.to_owned()).or_default();
        state.opens.push_back((at_ms, component.to_owned()));
        while let Some((t, _)) = state.opens.front() {
            if at_ms.saturating_sub(*t) >= cfg.storm_window_ms {
                state.opens.pop_front();
            } else {
                break;
            }
        }
        let count = u32::try_from(state.opens.len()).unwrap_or(u32::MAX);
        if count <= cfg.storm_opens {
            state.fired = false;
            return None;
        }
        if state.fired {
            return None;
        }
        state.fired = true;
        let mut components: Vec<String> = state.opens.iter().map(|(_, c)| c.clone()).collect();
        components.sort();
        components.dedup();
        let evidence = EngineEvent::CircuitBreakerStorm {
            engine: engine.to_owned(),
            at_ms,
            opens: count,
            window_ms: cfg.storm_window_ms,
            components,
        };
        Some(TriggerFired {
            trigger: Trigger::CircuitBreakerStorm,
            at_ms,
            evidence,
        })
    }

    fn on_memory(
        &mut self,
        engine: &str,
        used: u64,
        budget: u64,
        at_ms: u64,
    ) -> Option<TriggerFired> {
        let cfg = self.config;
        let state = self.memory.entry(engine.to_owned()).or_default();
        let high = u128::from(used) * 100 > u128::from(budget) * u128::from(cfg.memory_percent);
        if !high {
            *state = MemoryState::default();
            return None;
        }
        let since = *state.high_since.get_or_insert(at_ms);
        let above_for_ms = at_ms.saturating_sub(since);
        if state.fired || above_for_ms < cfg.memory_window_ms {
            return None;
        }
        state.fired = true;
        let evidence = EngineEvent::MemoryExhaustion {
            engine: engine.to_owned(),
            at_ms,
            used_bytes: used,
            budget_bytes: budget,
            above_for_ms,
        };
        Some(TriggerFired {
            trigger: Trigger::MemoryExhaustion,
            at_ms,
            evidence,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn open(at_ms: u64) -> EngineEvent {
        EngineEvent::BreakerOpened {
            engine: "manager".into(),
            at_ms,
            component: format!("c{}", at_ms % 3),
        }
    }

    fn mem(at_ms: u64, used: u64) -> EngineEvent {
        EngineEvent::MemorySample {
            engine: "manager".into(),
            at_ms,
            used_bytes: used,
            budget_bytes: 100,
        }
    }

    #[test]
    fn storm_needs_more_than_ten_opens_in_five_minutes() {
        let mut w = TriggerWindow::default();
        for i in 0..10 {
            assert_eq!(w.observe(&open(i * 1000)), None);
        }
        let fired = w.observe(&open(10_000)).map(|f| f.trigger);
        assert_eq!(fired, Some(Trigger::CircuitBreakerStorm));
        // Spread over more than five minutes: never fires.
        let mut w = TriggerWindow::default();
        for i in 0..30 {
            assert_eq!(w.observe(&open(i * 31_000)), None);
        }
    }

    #[test]
    fn memory_fires_only_after_a_continuous_window() {
        let mut w = TriggerWindow::default();
        assert_eq!(w.observe(&mem(0, 96)), None);
        assert_eq!(w.observe(&mem(200_000, 99)), None);
        assert_eq!(w.observe(&mem(250_000, 95)), None, "95 % is not above 95 %");
        assert_eq!(w.observe(&mem(260_000, 96)), None);
        assert_eq!(w.observe(&mem(559_999, 96)), None);
        let fired = w.observe(&mem(560_000, 96)).map(|f| f.trigger);
        assert_eq!(fired, Some(Trigger::MemoryExhaustion));
        assert_eq!(w.observe(&mem(600_000, 96)), None, "fires once per streak");
    }

    #[test]
    fn byzantine_and_integrity_fire_immediately_and_serialise_with_kind() {
        let mut w = TriggerWindow::default();
        let ev = EngineEvent::DataIntegrityViolation {
            engine: "compression".into(),
            at_ms: 7,
            violation: IntegrityKind::ChecksumMismatch,
            detail: "crc".into(),
        };
        assert_eq!(w.observe(&ev).map(|f| f.trigger.number()), Some(6));
        let json = serde_json::to_value(&ev).unwrap();
        assert_eq!(json["kind"], "DataIntegrityViolation");
        assert_eq!(json["violation"], "checksum_mismatch");
        let back: EngineEvent = serde_json::from_value(json).unwrap();
        assert_eq!(back, ev);
    }

    #[test]
    fn trigger_labels_and_stored_form_are_stable() {
        let labels: Vec<String> = Trigger::ALL.iter().map(ToString::to_string).collect();
        assert_eq!(
            labels,
            [
                "5:ByzantineAttack",
                "6:DataIntegrity",
                "7:MemoryExhaustion",
                "8:CircuitBreakerStorm"
            ]
        );
        for t in Trigger::ALL {
            assert_eq!(t.name(), format!("{t:?}"));
        }
        // The stored evidence form (a `TriggerFired` inside rollout events) is unchanged.
        let stored = r#"{"trigger":"data_integrity","at_ms":7,"evidence":{"kind":"DataIntegrityViolation","engine":"compression","at_ms":7,"violation":"checksum_mismatch","detail":"crc"}}"#;
        let fired: TriggerFired = serde_json::from_str(stored).unwrap();
        assert_eq!(fired.trigger, Trigger::DataIntegrity);
        assert_eq!(serde_json::to_string(&fired).unwrap(), stored);
    }
}
