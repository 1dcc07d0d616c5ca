//! `GET /v1/rollouts/{name}/events?limit=N&before=ID`: the audit log in pages, newest page first
//! (events oldest first within a page), `next_before` the cursor of the next older page. Read on the
//! reader connections (`crate::store::Reader`) in a blocking task, rendered on the read threads
//! (`crate::readpool`): a page never takes the controller's lock or waits for a commit's fsync, so
//! readers do not stall ingest.

use crate::api::{HttpError, Shared};
use crate::auth::{Caller, Role};
use crate::store::events::{DEFAULT_PAGE, MAX_PAGE};
use crate::store::{Page, Reader};
use axum::extract::{Extension, Path, RawQuery, State};
use axum::http::StatusCode;
use axum::response::Response;
use serde_json::json;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

/// Read-only connections shared by the read handlers (a request takes the next free one).
pub struct Readers {
    conns: Vec<Mutex<Reader>>,
    next: AtomicUsize,
}

impl Readers {
    pub fn new(conns: Vec<Reader>) -> Self {
        Self {
            conns: conns.into_iter().map(Mutex::new).collect(),
            next: AtomicUsize::new(0),
        }
    }

    /// Runs `f` on a free reader (blocking: call from a blocking task). `None` if there is none.
    pub fn with<T>(&self, f: impl FnOnce(&Reader) -> T) -> Option<T> {
        let n = self.conns.len();
        if n == 0 {
            return None;
        }
        let start = self.next.fetch_add(1, Ordering::Relaxed);
        for i in 0..n {
            if let Ok(r) = self.conns[(start + i) % n].try_lock() {
                return Some(f(&r));
            }
        }
        let r = self.conns[start % n]
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        Some(f(&r))
    }
}

/// The query: `limit` 1..=500 (default 200), `before` a positive event id. Anything else is a 400.
pub fn parse_query(raw: Option<&str>) -> Result<(usize, Option<i64>), String> {
    let mut limit = DEFAULT_PAGE;
    let mut before = None;
    for pair in raw.unwrap_or("").split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        match k {
            "limit" => {
                limit = match v.parse::<usize>() {
                    Ok(n) if (1..=MAX_PAGE).contains(&n) => n,
                    _ => return Err(format!("limit must be an integer from 1 to {MAX_PAGE}")),
                }
            }
            "before" => {
                before = match v.parse::<i64>() {
                    Ok(n) if n > 0 => Some(n),
                    _ => {
                        return Err(
                            "before must be a positive event id (a page's next_before)".into()
                        )
                    }
                }
            }
            other => return Err(format!("unknown parameter {other:?}: use limit and before")),
        }
    }
    Ok((limit, before))
}

pub async fn get_events(
    State(app): State<Shared>,
    Extension(caller): Extension<Caller>,
    Path(name): Path<String>,
    RawQuery(raw): RawQuery,
) -> Result<Response, HttpError> {
    let (limit, before) =
        parse_query(raw.as_deref()).map_err(|m| HttpError::new(StatusCode::BAD_REQUEST, m))?;
    app.admit_read().await?;
    let known = name == "*" || app.status.get().rollouts.contains_key(&name);
    let worker = app.clone();
    let read_role = caller.has(Role::Read);
    // Read at the default priority (SQLite's page cache and allocator take process-wide mutexes: a
    // low-priority thread preempted holding one would stall the writer), rendered on the
    // low-priority read threads (`crate::readpool`).
    let n = name.clone();
    let page = tokio::task::spawn_blocking(move || -> Result<Page, HttpError> {
        let read = worker.readers.with(|r| {
            if !known && !r.knows(&n)? {
                return Ok(None);
            }
            r.page(&n, before, limit).map(Some)
        });
        let page = match read {
            Some(p) => p.map_err(|e| HttpError::from(crate::controller::ApiError::Store(e)))?,
            // No reader connection (it could not be opened): the writer's, under the lock.
            None if known => Some(worker.lock().events_page(&n, before, limit)?),
            None => None,
        };
        page.ok_or_else(|| HttpError::from(crate::controller::ApiError::UnknownRollout(n.clone())))
    })
    .await
    .map_err(|e| HttpError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))??;
    app.reads
        .run(move || {
            let mut events = page.events;
            if !read_role {
                for e in &mut events {
                    crate::redact::strip_samples(&mut e.event.evidence);
                }
            }
            crate::api::json_bytes(&json!({
                "rollout": name,
                "events": events,
                "next_before": page.next_before,
                "limit": limit,
            }))
        })
        .await
}

#[cfg(test)]
mod tests {
    use super::parse_query;

    #[test]
    fn bad_paging_parameters_are_refused() {
        assert_eq!(parse_query(None), Ok((200, None)));
        assert_eq!(parse_query(Some("limit=500&before=7")), Ok((500, Some(7))));
        for bad in [
            "limit=0",
            "limit=501",
            "limit=-1",
            "limit=abc",
            "before=0",
            "before=x",
            "limit",
            "offset=3",
        ] {
            assert!(parse_query(Some(bad)).is_err(), "{bad}");
        }
    }
}
