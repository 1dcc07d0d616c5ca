//! `dwcp-analyzer backup` and `restore`: SQLite's online backup API, so a copy can be taken while the
//! companion runs (pages are copied in steps; a commit in between restarts the copy of what changed,
//! and the result is one consistent snapshot, WAL content included). Restore checks the copy first,
//! then writes it over the database through the same API (the companion must be stopped: a running
//! one keeps its state in memory and would write it back).

use rusqlite::backup::{Backup, StepResult};
use rusqlite::{Connection, OpenFlags};
use std::path::Path;
use std::time::Duration;

/// Pages copied per step; between steps the source is unlocked so the companion's commits go on.
const PAGES_PER_STEP: std::os::raw::c_int = 256;

/// A summary of a finished copy.
#[derive(Debug, Clone)]
pub struct Copied {
    pub pages: i32,
    pub bytes: u64,
}

fn check(conn: &Connection, what: &Path) -> anyhow::Result<()> {
    let r: String = conn.query_row("PRAGMA integrity_check", [], |r| r.get(0))?;
    if r != "ok" {
        anyhow::bail!("{} failed its integrity check: {r}", what.display());
    }
    Ok(())
}

fn copy(src: &Connection, dst: &mut Connection) -> anyhow::Result<i32> {
    let b = Backup::new(src, dst)?;
    loop {
        match b.step(PAGES_PER_STEP)? {
            StepResult::Done => break,
            // The source is being written, or locked: wait a little and go on.
            StepResult::More | StepResult::Busy | StepResult::Locked => {
                std::thread::sleep(Duration::from_millis(5))
            }
            _ => std::thread::sleep(Duration::from_millis(5)),
        }
    }
    Ok(b.progress().pagecount)
}

/// Copies the database `db` (running companion or not) to `out`, which must not exist yet, and
/// checks the copy.
pub fn backup(db: &Path, out: &Path) -> anyhow::Result<Copied> {
    if out.exists() {
        anyhow::bail!("{} exists: give a new file", out.display());
    }
    if !db.exists() {
        anyhow::bail!("{} does not exist", db.display());
    }
    let src = Connection::open_with_flags(db, OpenFlags::SQLITE_OPEN_READ_ONLY)?;
    src.busy_timeout(Duration::from_secs(10))?;
    let mut dst = Connection::open(out)?;
    let pages = copy(&src, &mut dst)?;
    // The copy is a plain rollback-journal file: one file to move around.
    dst.pragma_update(None, "journal_mode", "DELETE")?;
    check(&dst, out)?;
    Ok(Copied {
        pages,
        bytes: std::fs::metadata(out).map(|m| m.len()).unwrap_or(0),
    })
}

/// Replaces the database `db` with the copy `from` (checked first). The companion must be stopped;
/// its next start adopts the restored state, and filters ahead of it adopt it through a new epoch.
pub fn restore(from: &Path, db: &Path) -> anyhow::Result<Copied> {
    let src = Connection::open_with_flags(from, OpenFlags::SQLITE_OPEN_READ_ONLY)?;
    check(&src, from).map_err(|e| anyhow::anyhow!("refusing to restore: {e}"))?;
    let mut dst = Connection::open(db)?;
    dst.busy_timeout(Duration::from_secs(10))?;
    // Not detected: a companion still running on `db` (it would write its in-memory state back).
    let pages = copy(&src, &mut dst)?;
    dst.pragma_update(None, "journal_mode", "WAL")?;
    check(&dst, db)?;
    Ok(Copied {
        pages,
        bytes: std::fs::metadata(db).map(|m| m.len()).unwrap_or(0),
    })
}
