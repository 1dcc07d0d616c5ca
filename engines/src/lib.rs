//! # dwcp-engines — the DWCP engines hosted by the companion
//!
//! Native only: the proxy-wasm filter never links this crate (nor its codecs and signatures). It
//! depends on `dwcp-core` for the signal contract only; the core knows nothing of the engines.
//!
//! * [`sim`] — the shared foundation: the sans-IO [`sim::Protocol`] trait, a deterministic seeded
//!   discrete-event network simulator with a fault model (delay, drop, duplicate, reorder, partitions, crashes, GST, Byzantine nodes), invariant checkers, crypto
//!   helpers (ed25519 signatures, certificates, SHA-256 digests), and a signed reliable broadcast
//!   as the reference protocol that tests the simulator itself.
//! * [`pbft`] — the PBFT consensus core: a sans-IO replica on [`sim::Protocol`].
//! * [`probft`] — ProBFT: VRF-sampled (RFC 9381 ECVRF) O(√n) quorums on [`sim::Protocol`], and
//!   the sample-only safety Monte-Carlo.
//! * [`bullshark`] — Bullshark: a Narwhal-style certified DAG (sans-IO validator) and its
//!   ordering as a pure function of the local DAG.
//! * [`tpbft`] — T-PBFT: PBFT inside a committee chosen by EigenTrust from committed evidence.
//! * [`manager`] — the DWCP Manager: component registry, health/metrics loops on an injected clock,
//!   single-flight recovery, circuit breakers, degradation levels.
//! * [`compression`] — the Compression Selector: real codecs, checksummed frames, sampled features,
//!   a selection model learned from measurements, corpus, oracle and evaluation.
//!
//! Everything here is a state machine or a pure function: time is a `now_ms` argument, randomness
//! is a seeded ChaCha RNG passed in, and nothing performs I/O (`clippy.toml` bans clock reads and
//! the global RNG). Safety findings leave as [`dwcp_core::signals::EngineEvent`]s for the
//! companion's rollback triggers 5–8 ([`dwcp_core::signals::Trigger`]).

pub mod bullshark;
pub mod compression;
pub mod manager;
pub mod pbft;
pub mod probft;
pub mod sim;
pub mod tpbft;
