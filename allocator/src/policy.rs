//! # The trained policy at inference time, and the guard around it
//!
//! Inference is plain `f32` arithmetic over the exported actor weights: no NN library is linked by
//! the companion, and one forward pass of a 54→64→64→9 actor (8 nodes) is a few thousand multiply-adds.
//!
//! [`Model::decide`] is the guarded path. The actor's scores are masked with the observation's
//! `fits` flags and the best-scoring action is taken; then the guard checks it, independently of
//! the float view, against the cluster's integer capacity. A non-finite score, an action index
//! outside the action space, or a placement that would over-commit is replaced by the best-fit
//! placement (or a defer when nothing fits) and reported with its [`FallbackReason`], so the
//! caller can count it and feed its circuit breaker.

use serde::{Deserialize, Serialize};

use crate::baselines::best_fit;
use crate::cluster::{Cluster, Head};
use crate::env::Action;
use crate::observe::{fits_offset, observation_into, Scale};

/// One dense layer, weights row-major `[output][input]`.
#[derive(Debug, Clone, PartialEq)]
pub struct Dense {
    pub input: usize,
    pub output: usize,
    pub w: Vec<f32>,
    pub b: Vec<f32>,
}

/// A ReLU multilayer perceptron (no activation after the last layer).
#[derive(Debug, Clone, PartialEq)]
pub struct Mlp {
    pub layers: Vec<Dense>,
}

impl Mlp {
    pub fn input(&self) -> usize {
        self.layers.first().map_or(0, |l| l.input)
    }
    pub fn output(&self) -> usize {
        self.layers.last().map_or(0, |l| l.output)
    }

    /// Forward pass; `a` and `b` are scratch buffers, the result is left in `out`.
    pub fn forward_into(&self, x: &[f32], a: &mut Vec<f32>, out: &mut Vec<f32>) {
        out.clear();
        out.extend_from_slice(x);
        let last = self.layers.len().saturating_sub(1);
        for (li, l) in self.layers.iter().enumerate() {
            std::mem::swap(a, out);
            out.clear();
            for (o, row) in l.w.chunks_exact(l.input.max(1)).enumerate().take(l.output) {
                let mut s = l.b.get(o).copied().unwrap_or(0.0);
                for (w, v) in row.iter().zip(a.iter()) {
                    s += w * v;
                }
                // `if s < 0` rather than `s.max(0.0)`: a NaN must propagate to the guard, not become 0.
                out.push(if li < last && s < 0.0 { 0.0 } else { s });
            }
        }
    }

    pub fn forward(&self, x: &[f32]) -> Vec<f32> {
        let (mut a, mut out) = (Vec::new(), Vec::new());
        self.forward_into(x, &mut a, &mut out);
        out
    }
}

/// Why the guard replaced the policy's action.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FallbackReason {
    /// A score was NaN or infinite (corrupt or diverged weights).
    NonFinite,
    /// The action index is outside the action space.
    InvalidAction,
    /// The chosen node lacks the free capacity for the demand.
    WouldOverCommit,
}

impl FallbackReason {
    pub fn name(self) -> &'static str {
        match self {
            Self::NonFinite => "non_finite",
            Self::InvalidAction => "invalid_action",
            Self::WouldOverCommit => "would_over_commit",
        }
    }
}

/// One agent's decision.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Decision {
    pub action: Action,
    /// The actor's raw scores, one per node then defer (empty when there was no head).
    pub scores: Vec<f32>,
    /// `None` when the policy's own action was used.
    pub fallback: Option<FallbackReason>,
}

/// Scratch buffers for allocation-free decisions.
#[derive(Debug, Default, Clone)]
pub struct Scratch {
    obs: Vec<f32>,
    a: Vec<f32>,
    out: Vec<f32>,
}

/// The masked argmax: the best score among nodes whose `fits` flag is set, and defer.
pub fn masked_argmax(scores: &[f32], obs: &[f32], nodes: usize) -> usize {
    let off = fits_offset(nodes);
    let mut best = nodes;
    let mut best_s = scores.get(nodes).copied().unwrap_or(f32::NEG_INFINITY);
    for n in 0..nodes {
        let fits = obs.get(off + n).is_some_and(|f| *f > 0.5);
        let s = scores.get(n).copied().unwrap_or(f32::NEG_INFINITY);
        if fits && s > best_s {
            best = n;
            best_s = s;
        }
    }
    best
}

/// The guard's check of a proposed action index against the real capacity.
pub fn validate(
    cluster: &Cluster,
    head: &Head,
    scores: &[f32],
    index: usize,
) -> Result<Action, FallbackReason> {
    if scores.iter().any(|s| !s.is_finite()) {
        return Err(FallbackReason::NonFinite);
    }
    let action = Action::from_index(index, cluster.len()).ok_or(FallbackReason::InvalidAction)?;
    match action {
        Action::Place(n) if !cluster.fits(n, head.demand) => Err(FallbackReason::WouldOverCommit),
        a => Ok(a),
    }
}

/// The safe placement used on a fallback: best-fit, or defer when nothing fits.
pub fn safe_action(cluster: &Cluster, head: &Head) -> Action {
    best_fit(cluster, head.demand).map_or(Action::Defer, Action::Place)
}

/// The per-agent actors of a trained MADDPG policy.
#[derive(Debug, Clone, PartialEq)]
pub struct Model {
    pub nodes: usize,
    pub actors: Vec<Mlp>,
}

impl Model {
    pub fn agents(&self) -> usize {
        self.actors.len()
    }

    /// The guarded decision of `agent` for `head` on `cluster` (nothing is applied).
    pub fn decide(
        &self,
        agent: usize,
        cluster: &Cluster,
        head: Option<&Head>,
        scale: &Scale,
        s: &mut Scratch,
    ) -> Decision {
        let Some(head) = head else {
            return Decision {
                action: Action::Defer,
                scores: Vec::new(),
                fallback: None,
            };
        };
        observation_into(cluster, Some(head), scale, &mut s.obs);
        let Some(actor) = self.actors.get(agent) else {
            return Decision {
                action: safe_action(cluster, head),
                scores: Vec::new(),
                fallback: Some(FallbackReason::InvalidAction),
            };
        };
        actor.forward_into(&s.obs, &mut s.a, &mut s.out);
        let index = masked_argmax(&s.out, &s.obs, self.nodes);
        match validate(cluster, head, &s.out, index) {
            Ok(action) => Decision {
                action,
                scores: s.out.clone(),
                fallback: None,
            },
            Err(reason) => Decision {
                action: safe_action(cluster, head),
                scores: s.out.clone(),
                fallback: Some(reason),
            },
        }
    }

    /// Decide for every agent in order, applying each placement to `cluster` before the next agent
    /// observes it (the order training used). Placements have no end tick here (`u32::MAX`).
    pub fn place_all(
        &self,
        cluster: &mut Cluster,
        heads: &[Option<Head>],
        scale: &Scale,
        s: &mut Scratch,
    ) -> Vec<Decision> {
        let mut out = Vec::with_capacity(heads.len());
        for (agent, head) in heads.iter().enumerate() {
            let mut d = self.decide(agent, cluster, head.as_ref(), scale, s);
            if let (Action::Place(n), Some(h)) = (d.action, head) {
                // The guard checked the fit; should the cluster still refuse, report it, never apply.
                if cluster.place(n, h.demand, u32::MAX).is_err() {
                    d.action = Action::Defer;
                    d.fallback = Some(FallbackReason::WouldOverCommit);
                }
            }
            out.push(d);
        }
        out
    }
}
