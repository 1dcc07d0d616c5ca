//! The read routes' work (status snapshots rendered, audit-log pages read and rendered) runs on a few
//! threads of their own at a lower CPU priority (nice `READ_NICE`): on a busy host, filters' telemetry
//! (which times out at 500 ms and is what the judgment runs on) keeps the CPU, and 50 clients paging
//! through events get what is left instead of taking turns with ingest. Blocking work, never on the
//! async threads.

use crate::api::HttpError;
use axum::http::StatusCode;
use std::sync::mpsc;
use std::sync::{Arc, Mutex};

/// Threads of the pool (reads beyond that queue; the API's concurrency limit bounds the queue).
pub const READ_THREADS: usize = 2;
/// The pool's nice value (Linux: per thread; 0 is the default of every other thread).
pub const READ_NICE: i32 = 10;

type Job = Box<dyn FnOnce() + Send>;

pub struct ReadPool {
    tx: Mutex<mpsc::Sender<Job>>,
}

impl ReadPool {
    pub fn start(threads: usize, nice: i32) -> Self {
        let (tx, rx) = mpsc::channel::<Job>();
        let rx = Arc::new(Mutex::new(rx));
        for i in 0..threads.max(1) {
            let rx = rx.clone();
            let spawned = std::thread::Builder::new()
                .name(format!("dwcp-read-{i}"))
                .spawn(move || {
                    lower_priority(nice);
                    loop {
                        let job = rx.lock().unwrap_or_else(|p| p.into_inner()).recv();
                        match job {
                            Ok(job) => job(),
                            Err(_) => break,
                        }
                    }
                });
            if let Err(e) = spawned {
                tracing::error!(error = %e, "read thread not started");
            }
        }
        Self { tx: Mutex::new(tx) }
    }

    /// Runs `f` on the pool and waits for it (without blocking the async thread).
    pub async fn run<T: Send + 'static>(
        &self,
        f: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, HttpError> {
        let (done, answer) = tokio::sync::oneshot::channel();
        let job: Job = Box::new(move || {
            let _ = done.send(f());
        });
        let sent = self.tx.lock().unwrap_or_else(|p| p.into_inner()).send(job);
        if sent.is_err() {
            return Err(HttpError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "no read thread",
            ));
        }
        answer
            .await
            .map_err(|_| HttpError::new(StatusCode::INTERNAL_SERVER_ERROR, "the read failed"))
    }
}

/// `[api] max_reads_per_s`: the read routes' budget. A read beyond it waits for its slot (paced, in
/// arrival order); one that would wait over `MAX_READ_WAIT` gets 503 at once. What ingest needs of
/// the CPU is then not taken by clients reading in a closed loop. 0: no budget.
pub struct ReadBudget {
    interval: Option<std::time::Duration>,
    next: Mutex<tokio::time::Instant>,
}

/// The longest a read waits for its slot.
pub const MAX_READ_WAIT: std::time::Duration = std::time::Duration::from_secs(2);

impl ReadBudget {
    pub fn new(per_s: u32) -> Self {
        Self {
            interval: (per_s > 0).then(|| std::time::Duration::from_secs(1) / per_s),
            next: Mutex::new(tokio::time::Instant::now()),
        }
    }

    /// Waits for this read's slot (none: no budget).
    pub async fn admit(&self) -> Result<(), HttpError> {
        let Some(interval) = self.interval else {
            return Ok(());
        };
        let now = tokio::time::Instant::now();
        let slot = {
            let mut next = self.next.lock().unwrap_or_else(|p| p.into_inner());
            let slot = (*next).max(now);
            if slot.duration_since(now) > MAX_READ_WAIT {
                return Err(HttpError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "read budget exceeded ([api] max_reads_per_s)",
                ));
            }
            *next = slot + interval;
            slot
        };
        tokio::time::sleep_until(slot).await;
        Ok(())
    }
}

#[cfg(target_os = "linux")]
fn lower_priority(nice: i32) {
    // SAFETY: plain syscalls on this thread's own id, no memory passed.
    // Relative to the thread's own (a companion started under `nice` keeps its offset).
    let r = unsafe {
        let tid = libc::gettid() as libc::id_t;
        let own = libc::getpriority(libc::PRIO_PROCESS, tid);
        libc::setpriority(libc::PRIO_PROCESS, tid, (own + nice).min(19))
    };
    if r != 0 {
        tracing::warn!(error = %std::io::Error::last_os_error(), "read thread keeps the default priority");
    }
}

#[cfg(not(target_os = "linux"))]
fn lower_priority(_nice: i32) {}

#[cfg(test)]
mod tests {
    #[cfg(target_os = "linux")]
    #[tokio::test]
    async fn reads_run_on_lower_priority_threads() {
        let pool = super::ReadPool::start(1, super::READ_NICE);
        // SAFETY: a plain syscall reading this thread's priority.
        let own = pool
            .run(|| unsafe { libc::getpriority(libc::PRIO_PROCESS, libc::gettid() as libc::id_t) })
            .await
            .ok();
        let base = unsafe { libc::getpriority(libc::PRIO_PROCESS, 0) };
        assert_eq!(own, Some(base + super::READ_NICE).map(|n| n.min(19)));
    }
}
