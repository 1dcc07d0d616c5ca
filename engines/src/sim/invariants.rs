//! # Incremental invariant checkers
//!
//! The simulator feeds each [`Invariant`] only what is new — one committed output of one honest
//! node ([`Invariant::on_commit`]), one alarm raised by an honest node ([`Invariant::on_alarm`]) —
//! and calls [`Invariant::at_end`] once (liveness). Checkers keep their own compact state, so the
//! cost of a check does not grow with history: agreement keeps one agreed log (one entry per
//! position), keyed agreement one value per key, certificate validity verifies each distinct
//! certificate once. Byzantine nodes are unconstrained and never fed.
//!
//! Agreement compares a *projection* of the output (a digest of what was decided), not the whole
//! output: two honest nodes legitimately hold different certificates for one decision.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use super::crypto::{CertError, Certificate, Digest32, PublicKeys};
use super::protocol::{Alarm, NodeId};

/// What a checker may look at besides the new item.
#[derive(Debug)]
pub struct Ctx<'a, I> {
    pub now: u64,
    pub gst_ms: u64,
    pub honest: &'a BTreeSet<NodeId>,
    /// Honest nodes that are up and not crashed for good (meaningful at the end of a run).
    pub correct: &'a BTreeSet<NodeId>,
    /// Inputs submitted to each node, with their submission time, in order.
    pub inputs: &'a BTreeMap<NodeId, Vec<(u64, I)>>,
    /// The run stopped at its step cap before its end time.
    pub truncated: bool,
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
    /// The signal a broken safety invariant raises (trigger 6). Liveness and false accusations
    /// are not integrity issues.
    pub fn to_event(&self, engine: &str) -> Option<dwcp_core::signals::EngineEvent> {
        use dwcp_core::signals::IntegrityKind;
        let violation = match self.invariant.as_str() {
            "agreement" => IntegrityKind::ConflictingCommit,
            "certificate-validity" => IntegrityKind::InvalidCertificate,
            "liveness" | "no-false-accusation" => return None,
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

/// A property of a run, checked incrementally.
pub trait Invariant<I, O> {
    fn name(&self) -> &str;
    /// `index` is the output's position in `node`'s log.
    fn on_commit(
        &mut self,
        _ctx: &Ctx<'_, I>,
        _node: NodeId,
        _index: u64,
        _out: &O,
    ) -> Result<(), String> {
        Ok(())
    }
    fn on_alarm(&mut self, _ctx: &Ctx<'_, I>, _node: NodeId, _alarm: &Alarm) -> Result<(), String> {
        Ok(())
    }
    fn at_end(&mut self, _ctx: &Ctx<'_, I>) -> Result<(), String> {
        Ok(())
    }
}

type CommitFn<I, O> = Box<dyn FnMut(&Ctx<'_, I>, NodeId, &O) -> Result<(), String>>;

/// A protocol-specific per-commit check made of a closure (e.g. "committed only what an honest
/// origin submitted").
pub struct OnCommit<I, O> {
    name: String,
    f: CommitFn<I, O>,
}

impl<I, O> OnCommit<I, O> {
    pub fn new(
        name: &str,
        f: impl FnMut(&Ctx<'_, I>, NodeId, &O) -> Result<(), String> + 'static,
    ) -> Self {
        Self {
            name: name.to_owned(),
            f: Box::new(f),
        }
    }
}

impl<I, O> Invariant<I, O> for OnCommit<I, O> {
    fn name(&self) -> &str {
        &self.name
    }
    fn on_commit(&mut self, ctx: &Ctx<'_, I>, node: NodeId, _: u64, out: &O) -> Result<(), String> {
        (self.f)(ctx, node, out)
    }
}

/// Agreement for logs: honest logs are prefixes of one agreed log (compared by projection).
pub struct PrefixAgreement<O, K> {
    project: fn(&O) -> K,
    agreed: Vec<(NodeId, K)>,
}

impl<O, K> PrefixAgreement<O, K> {
    pub fn new(project: fn(&O) -> K) -> Self {
        Self {
            project,
            agreed: Vec::new(),
        }
    }
}

impl<I, O, K: PartialEq> Invariant<I, O> for PrefixAgreement<O, K> {
    fn name(&self) -> &str {
        "agreement"
    }
    fn on_commit(
        &mut self,
        _: &Ctx<'_, I>,
        node: NodeId,
        index: u64,
        out: &O,
    ) -> Result<(), String> {
        let k = (self.project)(out);
        match self.agreed.get(index as usize) {
            Some((first, agreed)) if *agreed != k => Err(format!(
                "nodes {first} and {node} committed different entries at position {index}"
            )),
            Some(_) => Ok(()),
            None if index as usize == self.agreed.len() => {
                self.agreed.push((node, k));
                Ok(())
            }
            None => Err(format!(
                "node {node} committed position {index} out of order"
            )),
        }
    }
}

/// Agreement for keyed instances (broadcasts, DAG vertices): one value per key.
pub struct KeyedAgreement<O, K, V> {
    key_value: fn(&O) -> (K, V),
    seen: BTreeMap<K, (NodeId, V)>,
}

impl<O, K, V> KeyedAgreement<O, K, V> {
    pub fn new(key_value: fn(&O) -> (K, V)) -> Self {
        Self {
            key_value,
            seen: BTreeMap::new(),
        }
    }
}

impl<I, O, K: Ord + std::fmt::Debug, V: PartialEq> Invariant<I, O> for KeyedAgreement<O, K, V> {
    fn name(&self) -> &str {
        "agreement"
    }
    fn on_commit(&mut self, _: &Ctx<'_, I>, node: NodeId, _: u64, out: &O) -> Result<(), String> {
        let (k, v) = (self.key_value)(out);
        match self.seen.get(&k) {
            Some((other, prev)) if *prev != v => Err(format!(
                "nodes {other} and {node} committed different values for {k:?}"
            )),
            Some(_) => Ok(()),
            None => {
                self.seen.insert(k, (node, v));
                Ok(())
            }
        }
    }
}

/// Integrity, first half: no honest node commits one key twice.
pub struct NoDuplicates<O, K> {
    key: fn(&O) -> K,
    seen: BTreeSet<(NodeId, K)>,
}

impl<O, K> NoDuplicates<O, K> {
    pub fn new(key: fn(&O) -> K) -> Self {
        Self {
            key,
            seen: BTreeSet::new(),
        }
    }
}

impl<I, O, K: Ord + std::fmt::Debug> Invariant<I, O> for NoDuplicates<O, K> {
    fn name(&self) -> &str {
        "integrity/no-duplicates"
    }
    fn on_commit(&mut self, _: &Ctx<'_, I>, node: NodeId, _: u64, out: &O) -> Result<(), String> {
        let k = (self.key)(out);
        let msg = format!("node {node} committed {k:?} twice");
        if self.seen.insert((node, k)) {
            Ok(())
        } else {
            Err(msg)
        }
    }
}

/// Certificate validity: the certificate carries `threshold` distinct valid member signatures
/// *over the statement the output implies* (a delivery of X with a valid certificate for Y
/// fails). Each distinct certificate is verified once; the cache is cleared when it reaches
/// `cache_cap` entries to bound memory in long sweeps.
pub struct CertificateValidity<O> {
    keys: PublicKeys,
    threshold: usize,
    extract: fn(&O) -> (Vec<u8>, &Certificate),
    verified: BTreeSet<Digest32>,
    cache_cap: usize,
    /// Full verifications performed (a cache hit costs one hash).
    pub verifications: u64,
}

impl<O> CertificateValidity<O> {
    pub fn new(
        keys: PublicKeys,
        threshold: usize,
        extract: fn(&O) -> (Vec<u8>, &Certificate),
    ) -> Self {
        Self {
            keys,
            threshold,
            extract,
            verified: BTreeSet::new(),
            cache_cap: 1 << 16,
            verifications: 0,
        }
    }
}

impl<I, O> Invariant<I, O> for CertificateValidity<O> {
    fn name(&self) -> &str {
        "certificate-validity"
    }
    fn on_commit(&mut self, _: &Ctx<'_, I>, node: NodeId, _: u64, out: &O) -> Result<(), String> {
        let (expected, cert) = (self.extract)(out);
        if cert.statement != expected {
            return Err(format!("node {node}: {}", CertError::WrongStatement));
        }
        let d = cert.digest();
        if self.verified.contains(&d) {
            return Ok(());
        }
        self.verifications += 1;
        cert.verify(&self.keys, self.threshold)
            .map_err(|e| format!("node {node}: {e}"))?;
        if self.verified.len() >= self.cache_cap {
            self.verified.clear();
        }
        self.verified.insert(d);
        Ok(())
    }
}

/// No false accusation: an alarm raised by an honest node never names an honest node.
#[derive(Debug, Default)]
pub struct NoFalseAccusation;

impl<I, O> Invariant<I, O> for NoFalseAccusation {
    fn name(&self) -> &str {
        "no-false-accusation"
    }
    fn on_alarm(&mut self, ctx: &Ctx<'_, I>, node: NodeId, alarm: &Alarm) -> Result<(), String> {
        match alarm.suspect {
            Some(s) if ctx.honest.contains(&s) => Err(format!(
                "node {node} accused honest node {s} of {} ({})",
                alarm.kind.as_str(),
                alarm.detail
            )),
            _ => Ok(()),
        }
    }
}

/// Liveness after GST: every input of a correct node that `expect` maps to a key is committed by
/// every correct node within `deadline_ms` of `max(GST, submission)`. Nodes crashed for good are
/// not correct. A run that ended before a deadline, or was truncated, fails (inconclusive is not
/// a pass).
pub struct Liveness<I, O, K> {
    expect: fn(NodeId, usize, &I) -> Option<K>,
    key: fn(&O) -> K,
    deadline_ms: u64,
    committed: BTreeMap<(NodeId, K), u64>,
}

impl<I, O, K> Liveness<I, O, K> {
    pub fn new(
        expect: fn(NodeId, usize, &I) -> Option<K>,
        key: fn(&O) -> K,
        deadline_ms: u64,
    ) -> Self {
        Self {
            expect,
            key,
            deadline_ms,
            committed: BTreeMap::new(),
        }
    }
}

impl<I, O, K: Ord + Clone + std::fmt::Debug> Invariant<I, O> for Liveness<I, O, K> {
    fn name(&self) -> &str {
        "liveness"
    }
    fn on_commit(&mut self, ctx: &Ctx<'_, I>, node: NodeId, _: u64, out: &O) -> Result<(), String> {
        self.committed
            .entry((node, (self.key)(out)))
            .or_insert(ctx.now);
        Ok(())
    }
    fn at_end(&mut self, ctx: &Ctx<'_, I>) -> Result<(), String> {
        if ctx.truncated {
            return Err("run truncated at its step cap: liveness not established".into());
        }
        for origin in ctx.correct {
            for (idx, (at, input)) in ctx.inputs.get(origin).into_iter().flatten().enumerate() {
                let Some(k) = (self.expect)(*origin, idx, input) else {
                    continue;
                };
                let deadline = (*at).max(ctx.gst_ms) + self.deadline_ms;
                for node in ctx.correct {
                    match self.committed.get(&(*node, k.clone())) {
                        Some(t) if *t <= deadline => {}
                        Some(t) => {
                            return Err(format!(
                                "node {node} committed {k:?} at {t}, deadline {deadline}"
                            ))
                        }
                        None if ctx.now < deadline => {
                            return Err(format!(
                                "run ended at {} before the deadline {deadline} of {k:?}",
                                ctx.now
                            ))
                        }
                        None => {
                            return Err(format!(
                                "node {node} never committed {k:?} (deadline {deadline})"
                            ))
                        }
                    }
                }
            }
        }
        Ok(())
    }
}
