//! The audit log's reads and its retention: pages of a rollout's events (newest first, by id cursor),
//! read on a connection of their own (WAL: a reader never waits for the writer's fsync), and the bound
//! on the table's rows, with the pruned rows appended to an archive file (JSON lines) first.

use super::{StoreError, StoredEvent};
use rusqlite::{params, Connection, OpenFlags};
use serde::Deserialize;
use std::io::Write;
use std::path::{Path, PathBuf};

/// Largest page of `GET /v1/rollouts/{name}/events`.
pub const MAX_PAGE: usize = 500;
/// A page when the client names no `limit`.
pub const DEFAULT_PAGE: usize = 200;

/// `[store]` in the companion's config: how many audit-log rows are kept and where pruned ones go.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RetentionConfig {
    /// Rows kept in the `events` table (oldest pruned first, on the tick). 0 = no bound.
    #[serde(default = "default_max_events")]
    pub max_events: u64,
    /// Pruned rows are appended here (JSON lines, fsynced before the rows are deleted); none: dropped.
    #[serde(default)]
    pub events_archive: Option<PathBuf>,
}

fn default_max_events() -> u64 {
    100_000
}

impl Default for RetentionConfig {
    fn default() -> Self {
        Self {
            max_events: default_max_events(),
            events_archive: None,
        }
    }
}

impl RetentionConfig {
    pub fn validate(&self) -> Result<(), (String, String)> {
        if self.max_events != 0 && self.max_events < 100 {
            return Err((
                "max_events".into(),
                "must be 0 (no bound) or at least 100".into(),
            ));
        }
        Ok(())
    }
}

/// One page of events, oldest first; `next_before` is the cursor of the next (older) page, if any.
#[derive(Debug, Clone)]
pub struct Page {
    pub events: Vec<StoredEvent>,
    pub next_before: Option<i64>,
}

/// A read-only connection to the companion's database (its own, so reads do not take the
/// controller's lock or wait for a commit).
pub struct Reader {
    conn: Connection,
}

impl Reader {
    pub fn open(path: &Path) -> Result<Reader, StoreError> {
        let conn = Connection::open_with_flags(
            path,
            OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )?;
        conn.busy_timeout(std::time::Duration::from_secs(5))?;
        Ok(Reader { conn })
    }

    /// Up to `limit` events of `rollout` with an id below `before` (all when none), newest page first.
    pub fn page(
        &self,
        rollout: &str,
        before: Option<i64>,
        limit: usize,
    ) -> Result<Page, StoreError> {
        page(&self.conn, rollout, before, limit)
    }

    /// Whether a rollout of this name was ever stored (its events outlive its definition).
    pub fn knows(&self, rollout: &str) -> Result<bool, StoreError> {
        let n: i64 = self.conn.query_row(
            "SELECT EXISTS(SELECT 1 FROM rollouts WHERE name = ?1) OR EXISTS(SELECT 1 FROM events WHERE rollout = ?1)",
            [rollout],
            |r| r.get(0),
        )?;
        Ok(n != 0)
    }
}

pub(super) fn page(
    conn: &Connection,
    rollout: &str,
    before: Option<i64>,
    limit: usize,
) -> Result<Page, StoreError> {
    let limit = limit.clamp(1, MAX_PAGE);
    let before = before.unwrap_or(i64::MAX);
    let mut st = conn.prepare_cached(
        "SELECT id, at_ms, json FROM events WHERE rollout = ?1 AND id < ?2 ORDER BY id DESC LIMIT ?3",
    )?;
    // One row more than the page: whether an older page exists.
    let rows = st.query_map(params![rollout, before, limit as i64 + 1], |r| {
        Ok((
            r.get::<_, i64>(0)?,
            r.get::<_, i64>(1)?,
            r.get::<_, String>(2)?,
        ))
    })?;
    let mut events = Vec::with_capacity(limit + 1);
    for row in rows {
        let (id, at, j) = row?;
        events.push(StoredEvent {
            id,
            rollout: rollout.to_string(),
            at_ms: at as u64,
            event: serde_json::from_str(&j)?,
        });
    }
    let more = events.len() > limit;
    events.truncate(limit);
    events.reverse();
    let next_before = if more {
        events.first().map(|e| e.id)
    } else {
        None
    };
    Ok(Page {
        events,
        next_before,
    })
}

/// Keeps the newest `cfg.max_events` rows of `events`; the older ones are appended to the archive
/// (when configured) before they are deleted, in one transaction. Returns how many were pruned.
pub(super) fn prune(conn: &mut Connection, cfg: &RetentionConfig) -> Result<u64, StoreError> {
    if cfg.max_events == 0 {
        return Ok(0);
    }
    let tx = conn.transaction()?;
    // The id of the newest row to prune (rows are only appended, so ids order them).
    let cut: Option<i64> = tx
        .query_row(
            "SELECT id FROM events ORDER BY id DESC LIMIT 1 OFFSET ?1",
            [cfg.max_events as i64],
            |r| r.get(0),
        )
        .map(Some)
        .or_else(|e| match e {
            rusqlite::Error::QueryReturnedNoRows => Ok(None),
            e => Err(e),
        })?;
    let Some(cut) = cut else {
        return Ok(0);
    };
    if let Some(path) = &cfg.events_archive {
        let mut out = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .map_err(|e| StoreError::Archive(format!("{}: {e}", path.display())))?;
        let mut st =
            tx.prepare("SELECT id, rollout, at_ms, json FROM events WHERE id <= ?1 ORDER BY id")?;
        let mut rows = st.query([cut])?;
        let mut text = String::new();
        while let Some(r) = rows.next()? {
            let line = serde_json::json!({
                "id": r.get::<_, i64>(0)?,
                "rollout": r.get::<_, String>(1)?,
                "at_ms": r.get::<_, i64>(2)?,
                "event": serde_json::from_str::<serde_json::Value>(&r.get::<_, String>(3)?)?,
            });
            text.push_str(&line.to_string());
            text.push('\n');
        }
        out.write_all(text.as_bytes())
            .and_then(|()| out.sync_all())
            .map_err(|e| StoreError::Archive(format!("{}: {e}", path.display())))?;
    }
    let n = tx.execute("DELETE FROM events WHERE id <= ?1", [cut])?;
    tx.commit()?;
    Ok(n as u64)
}
