//! # dwcp-analyzer — the companion service
//!
//! Telemetry ingest from the filters, sequential canary judgment (via `dwcp_core::rollout`), rollout
//! control, the versioned dynamic state for filters, persistence in SQLite, `/metrics`, and the engine
//! host. `main.rs` is a thin binary: the service (`serve`) and a CLI for people over the HTTP API.

pub mod allocator_api;
pub mod api;
pub mod auth;
pub mod check;
pub mod cli;
pub mod config;
pub mod consensus;
pub mod controller;
pub mod engines_api;
pub mod events_api;
pub mod group;
pub mod metrics;
pub mod ofrep;
pub mod readpool;
pub mod redact;
pub mod serve;
pub mod status;
pub mod store;
pub mod traffic;
pub mod train;
