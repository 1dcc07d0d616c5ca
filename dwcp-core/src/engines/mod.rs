//! # The DWCP engines (native only, feature `engines`)
//!
//! * [`sim`] — the shared foundation: the sans-IO [`sim::Protocol`] trait, a deterministic seeded
//!   discrete-event network simulator with the ENGINES.md fault model, invariant checkers, and a
//!   signed reliable broadcast as the reference protocol that tests the simulator itself.
//! * [`manager`] — the DWCP Manager: component registry, health/metrics loops on an injected clock,
//!   single-flight recovery, circuit breakers, degradation levels (ENGINES.md §1).
//! * [`compression`] — the Compression Selector: real codecs, checksummed frames, sampled features,
//!   a selection model learned from measurements, corpus, oracle and evaluation (ENGINES.md §2).
//!
//! Everything here is a state machine or a pure function: time is a `now_ms` argument, randomness
//! is a seeded ChaCha RNG passed in, and nothing performs I/O. Safety findings leave as
//! [`crate::signals::EngineEvent`]s for the companion's rollback triggers 5–8.

pub mod compression;
pub mod manager;
pub mod sim;
