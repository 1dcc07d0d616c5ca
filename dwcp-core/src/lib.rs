//! # dwcp-core — the pure core of progressive delivery in the sidecar
//!
//! Everything that *decides* lives here; the proxy-wasm filter (`filter/`) and the companion
//! service (`analyzer/`) only translate between the outside world and these types.
//!
//! * [`bucket`] — flagd `fractional` v2 sticky bucketing (murmur3_32, integer math).
//! * [`targeting`] — flagd flag definitions with the JsonLogic targeting subset; segments.
//! * [`config`] — the filter's static plugin config, parsed then validated (errors name the field).
//! * [`state`] — the dynamic state the companion serves to filters (phase, per-segment percentages).
//! * [`decision`] — the per-request decision: rollout, segment, bucket, track.
//! * [`route`] — everything a request gets from the filter (headers to set, shadow plan, counter),
//!   and what counts as an error.
//! * [`histogram`] / [`telemetry`] — mergeable log-bucketed latency histograms and per-VM batches.
//! * [`stats`] / [`rollout`] — anytime-valid sequential tests and the rollout state machine.
//! * [`ledger`] — the companion's decisions about telemetry: batch validation, crediting requests to
//!   the state version they were routed under, the routing state served to filters, evidence.
//! * [`names`] — every metric and event name the filter and the companion emit, in one list.
//! * [`signals`] — the engine signal contract: typed [`signals::EngineEvent`]s and the
//!   [`signals::Trigger`]s 5–8 they fire (the engines themselves live in the `dwcp-engines` crate).
//!
//! No I/O, no clock reads, no global RNG: time and randomness are inputs (`clippy.toml` bans them).

pub mod bucket;
pub mod config;
pub mod decision;
pub mod histogram;
pub mod ledger;
pub mod names;
pub mod rollout;
pub mod route;
pub mod shadow;
pub mod signals;
pub mod state;
pub mod stats;
pub mod targeting;
pub mod telemetry;
