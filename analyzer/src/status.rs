//! The status the read routes serve (`GET /v1/rollouts`, `/v1/rollouts/{name}`): a snapshot of what
//! the last successful commit stored, published by the commit (`Controller::finish`). Readers take
//! the snapshot without the controller's lock, so status pages never wait for ingest or a commit's
//! fsync, and never show state that is not stored. The rendered rollout list is cached per snapshot.

use dwcp_core::ledger::SavedShadow;
use dwcp_core::rollout::Rollout;
use serde_json::Value;
use std::collections::BTreeMap;
use std::sync::{Arc, OnceLock, RwLock};

/// The stored state of the rollouts as of one commit.
#[derive(Debug, Default)]
pub struct Status {
    /// The state version and kill switch the commit stored.
    pub version: u64,
    pub kill_all: bool,
    pub rollouts: BTreeMap<String, Arc<Rollout>>,
    /// Each rollout's shadow totals and mismatch samples as of its last commit.
    pub shadow: BTreeMap<String, Arc<SavedShadow>>,
    /// `GET /v1/rollouts`, rendered by the first reader of this snapshot.
    list: OnceLock<Value>,
}

impl Status {
    pub fn new(
        version: u64,
        kill_all: bool,
        rollouts: BTreeMap<String, Arc<Rollout>>,
        shadow: BTreeMap<String, Arc<SavedShadow>>,
    ) -> Self {
        Self {
            version,
            kill_all,
            rollouts,
            shadow,
            list: OnceLock::new(),
        }
    }

    /// The rollout list with each rollout's summary (rendered once per snapshot).
    pub fn list(&self) -> &Value {
        self.list.get_or_init(|| {
            serde_json::json!({
                "version": self.version,
                "kill_all": self.kill_all,
                "rollouts": self.rollouts.values().map(|r| crate::api::summary(r)).collect::<Vec<_>>(),
            })
        })
    }
}

/// The published snapshot (replaced whole by each commit; readers clone the `Arc`).
#[derive(Debug, Clone, Default)]
pub struct StatusCell(Arc<RwLock<Arc<Status>>>);

impl StatusCell {
    pub fn get(&self) -> Arc<Status> {
        self.0.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    pub fn publish(&self, s: Status) {
        *self.0.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(s);
    }
}
