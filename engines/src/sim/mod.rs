//! # Deterministic network simulation for sans-IO protocols
//!
//! * [`protocol`] / [`outbox`] — the [`Protocol`] trait every distributed engine implements (start
//!   hook, messages, replaceable and cancellable timers, inputs, restart from durable state) and
//!   the [`Outbox`] of effects, public so other crates can wrap a protocol.
//! * [`wire`] — length-prefixed canonical encodings with decoders.
//! * [`faults`] / [`scheduler`] — the fault model (per-link delay, drop, duplicate, reorder,
//!   bandwidth; symmetric partitions and one-way cuts; crash-stop and crash-recover with or
//!   without unsynced writes; GST) and pluggable adversarial delivery schedulers.
//! * [`durable`] — the stable storage a crashed node is rebuilt from.
//! * [`simulator`] — the single-threaded discrete-event loop. Same seed ⇒ same event order ⇒ same
//!   [`trace::Trace`] hash.
//!   Its event queue is one FIFO per millisecond (`queue`); each shared payload is encoded and
//!   digested once (`digests`).
//! * [`invariants`] — incremental checkers: agreement, integrity, certificate validity, liveness
//!   after GST, no false accusation.
//! * [`adversary`] — protocol-independent Byzantine wrappers, twins, scripted attackers.
//! * [`crypto`] — ed25519 and mock keyrings derived from the seed, and quorum certificates.
//! * [`rbc`] — signed echo (reliable) broadcast, the reference protocol.
//!
//! Determinism rules: all state is in `BTreeMap`/`Vec`, randomness is seeded `ChaCha8Rng` only,
//! and ties in the event queue break by insertion order.

pub mod adversary;
pub mod crypto;
mod digests;
pub mod durable;
pub mod faults;
pub mod invariants;
pub mod outbox;
pub mod protocol;
mod queue;
pub mod rbc;
pub mod scheduler;
pub mod simulator;
mod siphash;
mod step;
pub mod trace;
pub mod wire;

pub use adversary::{pick_byzantine, Adversary, Fault, Scripted, Twins};
pub use durable::Durable;
pub use faults::{Crash, Cut, FaultModel, LinkFaults, Partition};
pub use invariants::{Ctx, Invariant, Violation};
pub use protocol::{Alarm, AlarmKind, Decode, NodeId, Outbox, Protocol, TimerId, Wire};
pub use simulator::{MsgStats, SimReport, Simulator};
pub use trace::{Trace, TraceEvent};
