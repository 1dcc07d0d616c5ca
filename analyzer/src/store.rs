//! Durable state in SQLite (WAL, synchronous=FULL for decisions): rollout snapshots, the audit log of
//! events with their evidence, and the dynamic-state version. Everything a decision used is written in
//! the same transaction as the decision, so a kill -9 loses at most telemetry not yet judged.

use dwcp_core::rollout::{Event, Rollout};
use rusqlite::{params, Connection, OptionalExtension};
use serde::Serialize;
use std::path::Path;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database: {0}")]
    Sql(#[from] rusqlite::Error),
    #[error("corrupt record: {0}")]
    Json(#[from] serde_json::Error),
}

pub struct Store {
    conn: Connection,
}

/// The scalar state saved with every commit: the dynamic-state version and the global kill switch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Durable {
    pub version: u64,
    pub kill_all: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct StoredEvent {
    pub id: i64,
    pub rollout: String,
    pub at_ms: u64,
    #[serde(flatten)]
    pub event: Event,
}

impl Store {
    pub fn open(path: &Path) -> Result<Store, StoreError> {
        let conn = Connection::open(path)?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "FULL")?;
        conn.execute_batch(
            "CREATE TABLE IF NOT EXISTS rollouts (name TEXT PRIMARY KEY, json TEXT NOT NULL, updated_ms INTEGER NOT NULL);
             CREATE TABLE IF NOT EXISTS events (id INTEGER PRIMARY KEY AUTOINCREMENT, rollout TEXT NOT NULL,
                 at_ms INTEGER NOT NULL, json TEXT NOT NULL);
             CREATE INDEX IF NOT EXISTS events_rollout ON events (rollout, id);
             CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);",
        )?;
        Ok(Store { conn })
    }

    pub fn load_rollouts(&self) -> Result<Vec<Rollout>, StoreError> {
        let mut st = self
            .conn
            .prepare("SELECT json FROM rollouts ORDER BY name")?;
        let rows = st.query_map([], |r| r.get::<_, String>(0))?;
        let mut out = Vec::new();
        for j in rows {
            out.push(serde_json::from_str(&j?)?);
        }
        Ok(out)
    }

    pub fn meta(&self, key: &str) -> Result<Option<String>, StoreError> {
        Ok(self
            .conn
            .query_row("SELECT value FROM meta WHERE key = ?1", [key], |r| r.get(0))
            .optional()?)
    }

    /// Sets `meta` values (e.g. rollouts' shadow totals and samples) in one transaction.
    pub fn put_meta(&mut self, entries: &[(String, String)]) -> Result<(), StoreError> {
        let tx = self.conn.transaction()?;
        for (key, value) in entries {
            tx.execute(
                "INSERT INTO meta (key, value) VALUES (?1, ?2)
                 ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                [key, value],
            )?;
        }
        tx.commit()?;
        Ok(())
    }

    /// Saves rollout snapshots, their new events, the state version and the global kill switch
    /// atomically: everything the dynamic state served to filters is derived from is durable together.
    pub fn commit(
        &mut self,
        rollouts: &[&Rollout],
        events: &[(String, u64, Event)],
        durable: Durable,
        now_ms: u64,
    ) -> Result<(), StoreError> {
        let tx = self.conn.transaction()?;
        for r in rollouts {
            tx.execute(
                "INSERT INTO rollouts (name, json, updated_ms) VALUES (?1, ?2, ?3)
                 ON CONFLICT(name) DO UPDATE SET json = excluded.json, updated_ms = excluded.updated_ms",
                params![r.name(), serde_json::to_string(r)?, now_ms as i64],
            )?;
        }
        for (name, at, e) in events {
            tx.execute(
                "INSERT INTO events (rollout, at_ms, json) VALUES (?1, ?2, ?3)",
                params![name, *at as i64, serde_json::to_string(e)?],
            )?;
        }
        for (key, value) in [
            ("version", durable.version.to_string()),
            ("kill_all", durable.kill_all.to_string()),
        ] {
            tx.execute(
                "INSERT INTO meta (key, value) VALUES (?1, ?2)
                 ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                [key, value.as_str()],
            )?;
        }
        tx.commit()?;
        Ok(())
    }

    /// Appends audit-log events on their own (the train's decisions, recorded under the rollout they
    /// concern so `events ROLLOUT` shows them with the rollout's own).
    pub fn append_events(&mut self, events: &[(String, u64, Event)]) -> Result<(), StoreError> {
        let tx = self.conn.transaction()?;
        for (name, at, e) in events {
            tx.execute(
                "INSERT INTO events (rollout, at_ms, json) VALUES (?1, ?2, ?3)",
                params![name, *at as i64, serde_json::to_string(e)?],
            )?;
        }
        tx.commit()?;
        Ok(())
    }

    pub fn events(&self, rollout: &str, limit: usize) -> Result<Vec<StoredEvent>, StoreError> {
        let mut st = self.conn.prepare(
            "SELECT id, at_ms, json FROM (SELECT id, at_ms, json FROM events WHERE rollout = ?1 ORDER BY id DESC LIMIT ?2) ORDER BY id",
        )?;
        let rows = st.query_map(params![rollout, limit as i64], |r| {
            Ok((
                r.get::<_, i64>(0)?,
                r.get::<_, i64>(1)?,
                r.get::<_, String>(2)?,
            ))
        })?;
        let mut out = Vec::new();
        for row in rows {
            let (id, at, j) = row?;
            out.push(StoredEvent {
                id,
                rollout: rollout.to_string(),
                at_ms: at as u64,
                event: serde_json::from_str(&j)?,
            });
        }
        Ok(out)
    }
}
