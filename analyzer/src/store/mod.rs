//! Durable state in SQLite (WAL, synchronous=FULL for decisions): rollout snapshots, the audit log of
//! events with their evidence, and the dynamic-state version. Everything a decision used is written in
//! the same transaction as the decision, so a kill -9 loses at most telemetry not yet judged.
//! `events` (audit-log pages, retention), `backup` (online backup and restore).

pub mod backup;
pub mod events;

pub use events::{Page, Reader, RetentionConfig};

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
    #[error("database {path} failed its integrity check ({detail}); to recover: stop the companion, \
             `dwcp-analyzer restore --from BACKUP --db {path}` (a copy made by `dwcp-analyzer backup --db {path} --out BACKUP`), \
             or move the file and its -wal and -shm files away to start empty (see the README, \"Recovery\")")]
    Corrupt { path: String, detail: String },
    #[error("events archive {0}")]
    Archive(String),
    #[error("writer: {0}")]
    Writer(String),
}

pub struct Store {
    conn: Connection,
    path: std::path::PathBuf,
}

/// The scalar state saved with every commit: the dynamic-state version and the global kill switch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Durable {
    pub version: u64,
    pub kill_all: bool,
    /// The ledger's open telemetry time slices (JSON), when they changed.
    pub slices: Option<String>,
}

/// The VM table rows a commit saves with the rollouts their batches were credited to: the last taken
/// sequence number per VM (so a resent batch is recognised across restarts), and the VMs forgotten.
#[derive(Debug, Clone, Default)]
pub struct VmRows {
    pub taken: Vec<(String, dwcp_core::ledger::VmSeen)>,
    pub evicted: Vec<String>,
}

/// One commit's rows, serialized: built under the controller's lock, written ([`Store::write`])
/// without it, so batches go on being applied in memory while the transaction's fsync runs.
#[derive(Debug, Clone, Default)]
pub struct Prepared {
    pub vms: VmRows,
    /// (rollout name, snapshot JSON).
    pub rollouts: Vec<(String, String)>,
    /// (rollout name, at ms, event JSON).
    pub events: Vec<(String, u64, String)>,
    /// `meta` rows: the version, the kill switch, the open slices and any others (the epoch).
    pub meta: Vec<(String, String)>,
    pub now_ms: u64,
}

impl Prepared {
    pub fn new(
        rollouts: &[&Rollout],
        events: &[(String, u64, Event)],
        durable: Durable,
        vms: VmRows,
        now_ms: u64,
    ) -> Result<Prepared, StoreError> {
        let mut meta = vec![
            ("version".to_string(), durable.version.to_string()),
            ("kill_all".to_string(), durable.kill_all.to_string()),
        ];
        meta.extend(durable.slices.map(|j| ("slices".to_string(), j)));
        Ok(Prepared {
            vms,
            rollouts: rollouts
                .iter()
                .map(|r| Ok((r.name().to_string(), serde_json::to_string(r)?)))
                .collect::<Result<_, StoreError>>()?,
            events: events
                .iter()
                .map(|(n, at, e)| Ok((n.clone(), *at, serde_json::to_string(e)?)))
                .collect::<Result<_, StoreError>>()?,
            meta,
            now_ms,
        })
    }
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
        // A corrupt file is refused at start with the restore path, not crash-looped on.
        let check: String = conn
            .query_row("PRAGMA quick_check", [], |r| r.get(0))
            .map_err(|e| StoreError::Corrupt {
                path: path.display().to_string(),
                detail: e.to_string(),
            })?;
        if check != "ok" {
            return Err(StoreError::Corrupt {
                path: path.display().to_string(),
                detail: check,
            });
        }
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "FULL")?;
        conn.execute_batch(
            "CREATE TABLE IF NOT EXISTS rollouts (name TEXT PRIMARY KEY, json TEXT NOT NULL, updated_ms INTEGER NOT NULL);
             CREATE TABLE IF NOT EXISTS events (id INTEGER PRIMARY KEY AUTOINCREMENT, rollout TEXT NOT NULL,
                 at_ms INTEGER NOT NULL, json TEXT NOT NULL);
             CREATE INDEX IF NOT EXISTS events_rollout ON events (rollout, id);
             CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
             CREATE TABLE IF NOT EXISTS vms (vm TEXT PRIMARY KEY, seq INTEGER NOT NULL, at_ms INTEGER NOT NULL,
                 routing_version INTEGER NOT NULL);",
        )?;
        Ok(Store {
            conn,
            path: path.to_path_buf(),
        })
    }

    /// A read-only connection of its own to this database (`events::Reader`).
    pub fn reader(&self) -> Result<Reader, StoreError> {
        Reader::open(&self.path)
    }

    /// Applies the audit log's row bound (`events::prune`); returns the rows pruned.
    pub fn prune_events(&mut self, cfg: &RetentionConfig) -> Result<u64, StoreError> {
        events::prune(&mut self.conn, cfg)
    }

    /// One page of a rollout's events (`events::page`) on the writer's connection.
    pub fn events_page(
        &self,
        rollout: &str,
        before: Option<i64>,
        limit: usize,
    ) -> Result<Page, StoreError> {
        events::page(&self.conn, rollout, before, limit)
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
        self.commit_with(rollouts, events, durable, &VmRows::default(), now_ms)
    }

    /// [`Store::commit`] with the VM rows of the batches the rollouts were credited with, in the same
    /// transaction: a batch is durable together with its identity, so it is counted once.
    pub fn commit_with(
        &mut self,
        rollouts: &[&Rollout],
        events: &[(String, u64, Event)],
        durable: Durable,
        vms: &VmRows,
        now_ms: u64,
    ) -> Result<(), StoreError> {
        let p = Prepared::new(rollouts, events, durable, vms.clone(), now_ms)?;
        self.write(&p)
    }

    /// Writes a [`Prepared`] commit in one transaction (one fsync).
    pub fn write(&mut self, p: &Prepared) -> Result<(), StoreError> {
        let tx = self.conn.transaction()?;
        {
            let mut vm = tx.prepare_cached(
                "INSERT INTO vms (vm, seq, at_ms, routing_version) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT(vm) DO UPDATE SET seq = excluded.seq, at_ms = excluded.at_ms,
                     routing_version = excluded.routing_version",
            )?;
            for (name, s) in &p.vms.taken {
                vm.execute(params![
                    name,
                    s.seq as i64,
                    s.at_ms as i64,
                    s.routing_version as i64
                ])?;
            }
            for name in &p.vms.evicted {
                tx.execute("DELETE FROM vms WHERE vm = ?1", [name])?;
            }
            let mut ro = tx.prepare_cached(
                "INSERT INTO rollouts (name, json, updated_ms) VALUES (?1, ?2, ?3)
                 ON CONFLICT(name) DO UPDATE SET json = excluded.json, updated_ms = excluded.updated_ms",
            )?;
            for (name, json) in &p.rollouts {
                ro.execute(params![name, json, p.now_ms as i64])?;
            }
            let mut ev =
                tx.prepare_cached("INSERT INTO events (rollout, at_ms, json) VALUES (?1, ?2, ?3)")?;
            for (name, at, json) in &p.events {
                ev.execute(params![name, *at as i64, json])?;
            }
            let mut meta = tx.prepare_cached(
                "INSERT INTO meta (key, value) VALUES (?1, ?2)
                 ON CONFLICT(key) DO UPDATE SET value = excluded.value",
            )?;
            for (key, value) in &p.meta {
                meta.execute([key, value])?;
            }
        }
        tx.commit()?;
        Ok(())
    }

    /// The VM table saved by earlier runs.
    pub fn load_vms(&self) -> Result<Vec<(String, dwcp_core::ledger::VmSeen)>, StoreError> {
        let mut st = self
            .conn
            .prepare("SELECT vm, seq, at_ms, routing_version FROM vms ORDER BY at_ms")?;
        let rows = st.query_map([], |r| {
            Ok((
                r.get::<_, String>(0)?,
                dwcp_core::ledger::VmSeen {
                    seq: r.get::<_, i64>(1)? as u64,
                    at_ms: r.get::<_, i64>(2)? as u64,
                    routing_version: r.get::<_, i64>(3)? as u64,
                },
            ))
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Caps the database at its current size plus `extra_pages` (SQLite `max_page_count`): a disk
    /// that fills up, for the fail-safe tests.
    pub fn limit_growth(&self, extra_pages: u64) -> Result<(), StoreError> {
        let pages: i64 = self.conn.query_row("PRAGMA page_count", [], |r| r.get(0))?;
        let cap = pages as u64 + extra_pages;
        self.conn
            .query_row(&format!("PRAGMA max_page_count = {cap}"), [], |_| Ok(()))?;
        Ok(())
    }

    /// Moves WAL checkpoints off the writer (the serving companion): no commit copies WAL pages into
    /// the database and fsyncs it any more (SQLite's auto-checkpoint runs in the committing thread);
    /// a thread of its own, on its own connection, checkpoints `PASSIVE` every `every` (never waiting
    /// for the writer or the readers).
    pub fn checkpoint_elsewhere(&self, every: std::time::Duration) -> Result<(), StoreError> {
        let conn = Connection::open(&self.path)?;
        self.conn.pragma_update(None, "wal_autocheckpoint", 0)?;
        let spawned = std::thread::Builder::new()
            .name("dwcp-checkpoint".into())
            .spawn(move || loop {
                std::thread::sleep(every);
                if let Err(e) = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(())) {
                    tracing::warn!(error = %e, "WAL checkpoint failed");
                }
            });
        if spawned.is_err() {
            // No checkpointer: the writer checkpoints itself again.
            self.conn.pragma_update(None, "wal_autocheckpoint", 1000)?;
        }
        Ok(())
    }

    /// Makes every write fail (`PRAGMA query_only`) or work again: a store that refuses writes, for the
    /// fail-safe tests.
    pub fn fail_writes(&self, fail: bool) -> Result<(), StoreError> {
        self.conn.pragma_update(None, "query_only", fail)?;
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

    /// The newest `limit` (≤ `events::MAX_PAGE`) events of a rollout, oldest first.
    pub fn events(&self, rollout: &str, limit: usize) -> Result<Vec<StoredEvent>, StoreError> {
        Ok(self.events_page(rollout, None, limit)?.events)
    }
}
