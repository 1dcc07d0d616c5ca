//! Group commit of telemetry. A batch is validated and applied in memory under the controller's lock
//! and gets a ticket; the first waiting batch whose ticket is not yet stored becomes the leader: it
//! serializes everything applied so far (`Controller::stage`), writes it in ONE SQLite transaction (one
//! fsync) without the controller's lock, and wakes the others. Every batch is acknowledged only once a
//! commit covering its ticket succeeded; a batch whose group failed gets 503 (the filter resends it
//! under the same identity, deduplicated by (VM id, sequence)). Batches arriving during a write are
//! the next group. Ticks, commands and the kill switch take [`crate::api::App::lock`], which waits
//! until no group is being written: the store has one writer at a time and commits stay in order.

use crate::api::{now_ms, App};
use crate::controller::{ApiError, Controller};
use dwcp_core::state::DynamicState;
use dwcp_core::telemetry::Batch;
use std::sync::MutexGuard;

/// Where group commit stands (kept in the controller, under its lock).
#[derive(Debug, Default, Clone)]
pub struct Tickets {
    /// The ticket of the last change applied in memory that a commit has to store.
    pub applied: u64,
    /// Every ticket up to this one is stored.
    pub durable: u64,
    /// The last failed commit covered the tickets up to this one.
    pub failed: u64,
    /// A group is being written (without the controller's lock): the store is the leader's.
    pub writing: bool,
    /// Callers waiting for the store (ticks, commands): no new group starts before they had it.
    pub exclusive_waiting: usize,
    /// Commits made for telemetry (groups) and the batches they stored.
    pub groups: u64,
    pub grouped_batches: u64,
}

/// Ingests one batch by group commit and answers with the state for the filter's protocol, once the
/// batch and its identity are stored (a replay: once everything applied before it is stored).
pub fn ingest(
    app: &App,
    batch: Batch,
    start: std::time::Instant,
) -> Result<DynamicState, ApiError> {
    let protocol = batch.protocol;
    let empty = batch.cells.is_empty() && batch.shadow.is_empty() && batch.samples.is_empty();
    let mut c = app.memory();
    if empty {
        // Nothing to store: the VM is alive and routes with its version.
        c.note_vm(&batch, now_ms());
    } else {
        let ticket = c.apply(batch, now_ms())?;
        c = wait_stored(app, c, ticket)?;
    }
    c.counters
        .ingest_us
        .record(start.elapsed().as_micros() as u64);
    Ok(c.state_for(protocol))
}

/// Waits until `ticket` is stored (leading a group when no one writes), or its group failed.
fn wait_stored<'a>(
    app: &'a App,
    mut c: MutexGuard<'a, Controller>,
    ticket: u64,
) -> Result<MutexGuard<'a, Controller>, ApiError> {
    loop {
        let t = &c.group;
        if t.durable >= ticket {
            return Ok(c);
        }
        if t.failed >= ticket {
            let why = c.ready().err().unwrap_or_else(|| "commit failed".into());
            return Err(ApiError::Unavailable(why));
        }
        if !t.writing && t.exclusive_waiting == 0 {
            c = lead(app, c);
            continue;
        }
        c = app.commit_done.wait(c).unwrap_or_else(|p| p.into_inner());
    }
}

/// Stages everything applied so far, writes it without the lock, and settles it.
fn lead<'a>(app: &'a App, mut c: MutexGuard<'a, Controller>) -> MutexGuard<'a, Controller> {
    let now = now_ms();
    let staged = match c.stage(now) {
        Ok(s) => s,
        Err(e) => {
            c.stage_failed(e, now);
            app.commit_done.notify_all();
            return c;
        }
    };
    c.group.writing = true;
    let store = c.store_handle();
    drop(c);
    let written = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        store
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .write(staged.prepared())
    }))
    .unwrap_or_else(|_| {
        Err(crate::store::StoreError::Writer(
            "the write panicked".into(),
        ))
    });
    let mut c = app.memory();
    c.group.writing = false;
    c.group.groups += 1;
    if written.is_ok() {
        c.group.grouped_batches += staged.batches();
    }
    let _ = c.finish(staged, written, now);
    app.commit_done.notify_all();
    c
}
