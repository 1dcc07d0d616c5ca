//! # MADDPG training (Lowe et al. 2017), offline, on candle (CPU)
//!
//! One actor per agent maps the agent's own observation to scores over {nodes…, defer}; one
//! centralised critic per agent scores the joint observation and the joint action of all agents.
//! Both have target copies updated softly (`τ`). Transitions go to a replay buffer; updates sample
//! minibatches from it. The actor gradient flows through a straight-through Gumbel-softmax (hard
//! one-hot forward, soft gradient) of its masked scores into its critic, other agents' actions
//! taken from the buffer.
//!
//! Training has two phases. The warm start (`bc_fraction` of the episodes) lets best-fit act, with
//! probability `bc_eps` a random feasible action instead; the critics learn from those transitions
//! and the actors are behaviour-cloned to best-fit (cross-entropy of the masked scores to the
//! best-fit one-hot in the observation). Then MADDPG takes over: the actors act (with probability
//! ε, decaying from `eps_start` to `eps_end`, a uniformly random feasible action, otherwise a
//! Gumbel-max sample of the masked scores) and follow their critics, the Q term normalised as in
//! TD3+BC and the imitation kept as a regulariser (`bc_weight`).
//!
//! Everything random comes from ChaCha streams of the seed (network initialisation, exploration,
//! Gumbel noise, minibatches, arrival streams); with the same seed, configuration and CPU the
//! weights are bit-identical.

pub mod nets;
mod update;

use candle_core::{Device, Result};
use rand::Rng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::arrivals::Pattern;
use crate::env::{stream, Action, Env, EnvConfig};
use crate::observe::{best_fit_offset, fits_offset, observation, Scale};
use crate::policy::{masked_argmax, Mlp, Model};
use nets::Net;
pub use update::Learner;

/// Training hyper-parameters (a JSON object of some of them overrides the defaults).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TrainConfig {
    pub gamma: f64,
    pub tau: f64,
    pub lr_actor: f64,
    pub lr_critic: f64,
    pub batch: usize,
    pub buffer: usize,
    pub warmup: usize,
    /// Rounds between updates.
    pub update_every: usize,
    pub actor_hidden: usize,
    pub critic_hidden: usize,
    pub eps_start: f64,
    pub eps_end: f64,
    /// Fraction of the episodes over which ε decays.
    pub eps_decay_fraction: f64,
    pub gumbel_temperature: f64,
    /// Weight of the squared-logit regulariser on the actor loss.
    pub logit_reg: f64,
    /// Fraction of the episodes spent on the warm start: best-fit acts (with ε-random feasible
    /// actions), the critics learn its returns and the actors imitate it; no policy gradient yet.
    pub bc_fraction: f64,
    /// ε of the warm start's behaviour (random feasible actions around best-fit).
    pub bc_eps: f64,
    /// Weight of the imitation (cross-entropy to best-fit) term once MADDPG takes over.
    pub bc_weight: f64,
    /// α of the Q term, which is normalised by the batch's mean |Q| (TD3+BC, Fujimoto & Gu 2021).
    pub q_weight: f64,
}

impl Default for TrainConfig {
    fn default() -> Self {
        Self {
            gamma: 0.95,
            tau: 0.01,
            lr_actor: 1e-3,
            lr_critic: 1e-3,
            batch: 128,
            buffer: 50_000,
            warmup: 1_000,
            update_every: 4,
            actor_hidden: 64,
            critic_hidden: 128,
            eps_start: 0.3,
            eps_end: 0.02,
            eps_decay_fraction: 0.6,
            gumbel_temperature: 1.0,
            logit_reg: 1e-3,
            bc_fraction: 0.3,
            bc_eps: 0.3,
            bc_weight: 1.0,
            q_weight: 2.5,
        }
    }
}

/// One stored round: every agent's observation and action, the team reward, the next observations.
#[derive(Debug, Clone)]
pub struct Transition {
    pub obs: Vec<f32>,
    pub actions: Vec<usize>,
    pub reward: f32,
    pub next_obs: Vec<f32>,
    pub done: bool,
}

/// A bounded FIFO replay buffer.
#[derive(Debug, Default)]
pub struct Replay {
    items: Vec<Transition>,
    next: usize,
    cap: usize,
}

impl Replay {
    pub fn new(cap: usize) -> Self {
        Self {
            items: Vec::new(),
            next: 0,
            cap: cap.max(1),
        }
    }
    pub fn len(&self) -> usize {
        self.items.len()
    }
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }
    pub fn push(&mut self, t: Transition) {
        if self.items.len() < self.cap {
            self.items.push(t);
        } else if let Some(slot) = self.items.get_mut(self.next) {
            *slot = t;
        }
        self.next = (self.next + 1) % self.cap;
    }
    pub fn sample<'a>(&'a self, n: usize, rng: &mut ChaCha8Rng) -> Vec<&'a Transition> {
        (0..n)
            .filter_map(|_| self.items.get(rng.gen_range(0..self.items.len().max(1))))
            .collect()
    }
}

/// What a training run produced.
#[derive(Debug, Clone)]
pub struct TrainReport {
    pub model: Model,
    /// Mean critic TD loss per episode (NaN before the first update).
    pub critic_loss: Vec<f64>,
    /// Sum of team rewards per episode.
    pub returns: Vec<f64>,
    pub updates: u64,
}

/// The pattern of training episode `ep`: the four patterns in turn.
pub fn episode_pattern(ep: u32) -> Pattern {
    Pattern::ALL[ep as usize % Pattern::ALL.len()]
}

/// Seed of training episode `ep` (evaluation seeds are disjoint: see [`crate::eval`]).
pub fn episode_seed(seed: u64, ep: u32) -> u64 {
    seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ u64::from(ep)
}

/// The behaviour's action: with probability ε a uniformly random feasible action (defer
/// included); otherwise best-fit's choice during the warm start (`actor` `None`), else a Gumbel-max
/// sample of the actor's masked scores.
fn explore(
    actor: Option<&Mlp>,
    obs: &[f32],
    nodes: usize,
    eps: f64,
    temperature: f64,
    rng: &mut ChaCha8Rng,
) -> usize {
    let off = fits_offset(nodes);
    if rng.gen_bool(eps.clamp(0.0, 1.0)) {
        let feasible: Vec<usize> = (0..nodes)
            .filter(|&n| obs.get(off + n).is_some_and(|f| *f > 0.5))
            .chain([nodes])
            .collect();
        return feasible
            .get(rng.gen_range(0..feasible.len()))
            .copied()
            .unwrap_or(nodes);
    }
    let Some(actor) = actor else {
        let bf = best_fit_offset(nodes);
        return (0..nodes)
            .find(|&n| obs.get(bf + n).is_some_and(|f| *f > 0.5))
            .unwrap_or(nodes);
    };
    let noisy: Vec<f32> = actor
        .forward(obs)
        .iter()
        .map(|s| s + (temperature * gumbel(rng)) as f32)
        .collect();
    masked_argmax(&noisy, obs, nodes)
}

/// A standard Gumbel(0, 1) draw.
pub fn gumbel(rng: &mut ChaCha8Rng) -> f64 {
    let u: f64 = rng.gen_range(1e-12..1.0);
    -(-u.ln()).ln()
}

/// Train MADDPG for `episodes` episodes from `seed`. Pure: no clock, no thread RNG.
pub fn train(
    env_cfg: &EnvConfig,
    cfg: &TrainConfig,
    seed: u64,
    episodes: u32,
) -> Result<TrainReport> {
    let dev = Device::Cpu;
    let mut learner = Learner::new(env_cfg, cfg, seed, &dev)?;
    let mut replay = Replay::new(cfg.buffer);
    let mut explore_rng = stream(seed, 101);
    let (n, k) = (env_cfg.agents, env_cfg.nodes.len());
    let mut behaviour = learner.export()?;
    let (mut critic_loss, mut returns) = (Vec::new(), Vec::new());
    let mut rounds = 0usize;
    let warm = warm_episodes(cfg, episodes);
    let tuned = f64::from(episodes - warm);
    for ep in 0..episodes {
        let warming = ep < warm;
        let eps = if warming {
            cfg.bc_eps
        } else {
            let frac = f64::from(ep - warm) / (cfg.eps_decay_fraction * tuned).max(1.0);
            cfg.eps_start + (cfg.eps_end - cfg.eps_start) * frac.min(1.0)
        };
        let mut env = Env::new(env_cfg.clone(), episode_pattern(ep), episode_seed(seed, ep));
        let scale = Scale::new(env.cluster(), env_cfg.max_slack, env_cfg.max_queue);
        let (mut ep_return, mut losses) = (0.0, Vec::new());
        let mut pending: Option<Transition> = None;
        loop {
            let mut obs_all = Vec::with_capacity(n * env_cfg.obs_dim());
            let mut actions = Vec::with_capacity(n);
            for agent in 0..n {
                let head = env.head(agent);
                let obs = observation(env.cluster(), head.as_ref(), &scale);
                let a = match behaviour.actors.get(agent) {
                    Some(actor) if head.is_some() => explore(
                        (!warming).then_some(actor),
                        &obs,
                        k,
                        eps,
                        cfg.gumbel_temperature,
                        &mut explore_rng,
                    ),
                    _ => k,
                };
                let action = Action::from_index(a, k).unwrap_or(Action::Defer);
                env.act(agent, action);
                obs_all.extend_from_slice(&obs);
                actions.push(a);
            }
            if let Some(mut t) = pending.take() {
                t.next_obs = obs_all.clone();
                replay.push(t);
            }
            let (reward, done) = env.end_round();
            ep_return += reward;
            let t = Transition {
                obs: obs_all,
                actions,
                reward: reward as f32,
                next_obs: Vec::new(),
                done,
            };
            if done {
                let mut t = t;
                t.next_obs = t.obs.clone();
                replay.push(t);
            } else {
                pending = Some(t);
            }
            rounds += 1;
            if replay.len() >= cfg.warmup.max(cfg.batch)
                && rounds.is_multiple_of(cfg.update_every.max(1))
            {
                losses.push(learner.update(&replay, !warming)?);
                behaviour = learner.export()?;
            }
            if done {
                break;
            }
        }
        let mean = if losses.is_empty() {
            f64::NAN
        } else {
            losses.iter().sum::<f64>() / losses.len() as f64
        };
        critic_loss.push(mean);
        returns.push(ep_return);
    }
    let updates = learner.updates();
    Ok(TrainReport {
        model: learner.export()?,
        critic_loss,
        returns,
        updates,
    })
}

/// Episodes of the warm start (see [`TrainConfig::bc_fraction`]).
pub fn warm_episodes(cfg: &TrainConfig, episodes: u32) -> u32 {
    ((cfg.bc_fraction.clamp(0.0, 1.0) * f64::from(episodes)).round() as u32).min(episodes)
}

/// Build the actor sizes (`obs → h → h → actions`).
pub fn actor_sizes(env: &EnvConfig, cfg: &TrainConfig) -> Vec<usize> {
    vec![
        env.obs_dim(),
        cfg.actor_hidden,
        cfg.actor_hidden,
        env.actions(),
    ]
}

/// Build the critic sizes (`joint obs + joint one-hot actions → h → h → 1`).
pub fn critic_sizes(env: &EnvConfig, cfg: &TrainConfig) -> Vec<usize> {
    let n = env.agents;
    vec![
        n * env.obs_dim() + n * env.actions(),
        cfg.critic_hidden,
        cfg.critic_hidden,
        1,
    ]
}

/// Convenience for tests and the binary: a fresh network (e.g. for NaN-weight tests).
pub fn fresh_actor(env: &EnvConfig, cfg: &TrainConfig, seed: u64) -> Result<Mlp> {
    Net::new(&actor_sizes(env, cfg), &mut stream(seed, 7), &Device::Cpu)?.to_mlp()
}
