//! # dwcp-node — the consensus engines as processes
//!
//! * [`transport`] — the tokio transport for any sans-IO [`Protocol`] of `dwcp-engines`:
//!   length-prefixed frames over TCP, an ed25519 challenge–response handshake per connection,
//!   reconnect with exponential backoff, bounded queues with back-pressure, timers.
//! * [`engine`] — what a transaction-ordering engine offers the host ([`engine::TxEngine`]),
//!   implemented for PBFT and T-PBFT, and the engine choice of a config file.
//! * [`cluster`] — `n` replicas in one process over loopback TCP.
//! * [`config`] — the TOML file a `dwcp-node` process runs from (id, key file, peers, engine).
//! * [`load`] — a closed-loop load driver (submit, wait for commits, latency per transaction),
//!   shared by the binary and `dwcp-bench-consensus`.
//! * [`bench_bullshark`] — Bullshark as a [`engine::TxEngine`], ordering-only and end-to-end
//!   measurements with a timing breakdown (`dwcp-bench-bullshark`).
//!
//! The same state machines run in the simulator (tests in `dwcp-engines`) and here.

pub mod bench;
pub mod bench_bullshark;
pub mod cluster;
pub mod config;
pub mod engine;
pub mod load;
pub mod transport;
pub mod txgroup;

pub use dwcp_engines::sim::protocol::Protocol;
