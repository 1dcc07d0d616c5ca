//! # Deterministic network simulation for sans-IO protocols
//!
//! * [`protocol`] — the [`Protocol`] trait every distributed engine implements and its [`Outbox`].
//! * [`faults`] — the fault model: per-link delay/drop/duplicate/reorder, partitions over time
//!   windows, crash-stop and crash-recover, and a GST after which delays are bounded and links
//!   between live nodes are reliable.
//! * [`simulator`] — the single-threaded discrete-event loop. Same seed ⇒ same event order ⇒ same
//!   [`trace::Trace`] hash. Invariants are checked after every delivery.
//! * [`invariants`] — agreement, integrity, certificate validity and liveness checkers.
//! * [`crypto`] — ed25519 keyrings derived from the seed, and quorum certificates.
//! * [`rbc`] — signed echo (reliable) broadcast, honest and Byzantine node implementations.
//!
//! Determinism rules: all state is in `BTreeMap`/`Vec`, the only randomness is the simulator's
//! `ChaCha8Rng`, and ties in the event queue break by insertion sequence number.

pub mod crypto;
pub mod faults;
pub mod invariants;
pub mod protocol;
pub mod rbc;
pub mod simulator;
pub mod trace;

pub use faults::{Crash, FaultModel, LinkFaults, Partition};
pub use invariants::{CommitView, Invariant, Violation};
pub use protocol::{Alarm, AlarmKind, NodeId, Outbox, Protocol, TimerId, Wire};
pub use simulator::{SimReport, Simulator};
pub use trace::{Trace, TraceEvent};
