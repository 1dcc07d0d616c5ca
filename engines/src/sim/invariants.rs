//! # Invariant checkers
//!
//! An [`Invariant`] sees a [`CommitView`]: the committed logs and the submitted inputs of every
//! *honest* node (Byzantine nodes are unconstrained). The simulator calls [`Invariant::check`]
//! after every step that committed something — the only steps that can change the view — and
//! [`Invariant::check_final`] once at the end (liveness). The generic checkers here are:
//! agreement as prefixes (consensus logs), agreement per key (broadcast instances), no duplicate
//! commits, and certificate validity; protocols add their own integrity checks with [`FnInvariant`].

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use super::crypto::{Certificate, PublicKeys};
use super::protocol::NodeId;

/// What the invariants may look at.
#[derive(Debug)]
pub struct CommitView<'a, I, O> {
    pub now: u64,
    pub honest: &'a BTreeSet<NodeId>,
    /// Committed outputs of honest nodes, in commit order.
    pub logs: &'a BTreeMap<NodeId, Vec<O>>,
    /// Inputs submitted to each node (honest or not), in order.
    pub inputs: &'a BTreeMap<NodeId, Vec<I>>,
}

/// A broken invariant, with everything needed to replay it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Violation {
    pub invariant: String,
    pub at_ms: u64,
    pub seed: u64,
    pub detail: String,
}

impl Violation {
    /// The signal a broken safety invariant raises (trigger 6). Liveness is not an integrity issue.
    pub fn to_event(&self, engine: &str) -> Option<dwcp_core::signals::EngineEvent> {
        use dwcp_core::signals::IntegrityKind;
        let violation = match self.invariant.as_str() {
            "agreement" => IntegrityKind::ConflictingCommit,
            "certificate-validity" => IntegrityKind::InvalidCertificate,
            "liveness" => return None,
            _ => IntegrityKind::DuplicateOrUnsubmittedCommit,
        };
        let detail = format!("{}: {} (seed {})", self.invariant, self.detail, self.seed);
        Some(dwcp_core::signals::EngineEvent::DataIntegrityViolation {
            engine: engine.to_owned(),
            at_ms: self.at_ms,
            violation,
            detail,
        })
    }
}

/// A safety (and optionally liveness) property of a run.
pub trait Invariant<I, O> {
    fn name(&self) -> &str;
    fn check(&self, view: &CommitView<'_, I, O>) -> Result<(), String>;
    fn check_final(&self, _view: &CommitView<'_, I, O>) -> Result<(), String> {
        Ok(())
    }
}

type CheckFn<I, O> = Box<dyn Fn(&CommitView<'_, I, O>) -> Result<(), String>>;

/// An invariant made of closures.
pub struct FnInvariant<I, O> {
    name: String,
    check: CheckFn<I, O>,
    check_final: Option<CheckFn<I, O>>,
}

impl<I, O> FnInvariant<I, O> {
    pub fn safety(
        name: &str,
        check: impl Fn(&CommitView<'_, I, O>) -> Result<(), String> + 'static,
    ) -> Self {
        Self {
            name: name.to_owned(),
            check: Box::new(check),
            check_final: None,
        }
    }

    /// A property checked only at the end of the run (e.g. liveness after GST).
    pub fn at_end(
        name: &str,
        check: impl Fn(&CommitView<'_, I, O>) -> Result<(), String> + 'static,
    ) -> Self {
        Self {
            name: name.to_owned(),
            check: Box::new(|_| Ok(())),
            check_final: Some(Box::new(check)),
        }
    }
}

impl<I, O> Invariant<I, O> for FnInvariant<I, O> {
    fn name(&self) -> &str {
        &self.name
    }
    fn check(&self, view: &CommitView<'_, I, O>) -> Result<(), String> {
        (self.check)(view)
    }
    fn check_final(&self, view: &CommitView<'_, I, O>) -> Result<(), String> {
        self.check_final.as_ref().map_or(Ok(()), |f| f(view))
    }
}

/// Agreement for logs: every two honest logs are prefixes of each other.
pub fn prefix_agreement<I, O: PartialEq + 'static>() -> FnInvariant<I, O> {
    FnInvariant::safety("agreement", |v| {
        let logs: Vec<(&NodeId, &Vec<O>)> = v.logs.iter().collect();
        for (i, (a, la)) in logs.iter().enumerate() {
            for (b, lb) in logs.iter().skip(i + 1) {
                let common = la.len().min(lb.len());
                if let Some(pos) = (0..common).find(|&k| la[k] != lb[k]) {
                    return Err(format!("nodes {a} and {b} differ at position {pos}"));
                }
            }
        }
        Ok(())
    })
}

/// Agreement for keyed instances: honest nodes that commit the same key commit the same value.
pub fn keyed_agreement<I, O: 'static>(
    key_value: fn(&O) -> (Vec<u8>, Vec<u8>),
) -> FnInvariant<I, O> {
    FnInvariant::safety("agreement", move |v| {
        let mut seen: BTreeMap<Vec<u8>, (NodeId, Vec<u8>)> = BTreeMap::new();
        for (node, log) in v.logs {
            for out in log {
                let (k, val) = key_value(out);
                match seen.get(&k) {
                    Some((other, prev)) if *prev != val => {
                        return Err(format!(
                            "nodes {other} and {node} committed different values for one key"
                        ));
                    }
                    Some(_) => {}
                    None => {
                        seen.insert(k, (*node, val));
                    }
                }
            }
        }
        Ok(())
    })
}

/// Integrity, first half: no honest node commits the same key twice.
pub fn no_duplicates<I, O: 'static>(key: fn(&O) -> Vec<u8>) -> FnInvariant<I, O> {
    FnInvariant::safety("integrity/no-duplicates", move |v| {
        for (node, log) in v.logs {
            let mut keys = BTreeSet::new();
            if log.iter().any(|o| !keys.insert(key(o))) {
                return Err(format!("node {node} committed one key twice"));
            }
        }
        Ok(())
    })
}

/// Certificate validity: every committed certificate has `threshold` distinct valid member sigs.
pub fn certificate_validity<I, O: 'static>(
    keys: PublicKeys,
    threshold: usize,
    cert: fn(&O) -> &Certificate,
) -> FnInvariant<I, O> {
    FnInvariant::safety("certificate-validity", move |v| {
        for (node, log) in v.logs {
            for out in log {
                cert(out)
                    .verify(&keys, threshold)
                    .map_err(|e| format!("node {node}: {e}"))?;
            }
        }
        Ok(())
    })
}
