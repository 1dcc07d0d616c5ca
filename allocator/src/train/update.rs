//! The MADDPG update of every agent from one shared minibatch.

use candle_core::{Device, Result, Tensor};
use candle_nn::{AdamW, Optimizer, ParamsAdamW};
use rand_chacha::ChaCha8Rng;

use super::nets::Net;
use super::{actor_sizes, critic_sizes, gumbel, Replay, TrainConfig, Transition};
use crate::env::{stream, EnvConfig};
use crate::observe::{best_fit_offset, fits_offset};
use crate::policy::{masked_argmax, Model};

struct Agent {
    actor: Net,
    actor_target: Net,
    critic: Net,
    critic_target: Net,
    actor_opt: AdamW,
    critic_opt: AdamW,
}

/// Actors, centralised critics, their targets and optimisers.
pub struct Learner {
    agents: Vec<Agent>,
    cfg: TrainConfig,
    nodes: usize,
    obs_dim: usize,
    actions: usize,
    rng: ChaCha8Rng,
    dev: Device,
    updates: u64,
}

fn opt(net: &Net, lr: f64) -> Result<AdamW> {
    AdamW::new(
        net.vars(),
        ParamsAdamW {
            lr,
            weight_decay: 0.0,
            ..ParamsAdamW::default()
        },
    )
}

impl Learner {
    pub fn new(env: &EnvConfig, cfg: &TrainConfig, seed: u64, dev: &Device) -> Result<Self> {
        let mut init = stream(seed, 100);
        let mut agents = Vec::new();
        for _ in 0..env.agents {
            let actor = Net::new(&actor_sizes(env, cfg), &mut init, dev)?;
            let critic = Net::new(&critic_sizes(env, cfg), &mut init, dev)?;
            agents.push(Agent {
                actor_target: actor.duplicate()?,
                critic_target: critic.duplicate()?,
                actor_opt: opt(&actor, cfg.lr_actor)?,
                critic_opt: opt(&critic, cfg.lr_critic)?,
                actor,
                critic,
            });
        }
        Ok(Self {
            agents,
            cfg: cfg.clone(),
            nodes: env.nodes.len(),
            obs_dim: env.obs_dim(),
            actions: env.actions(),
            rng: stream(seed, 102),
            dev: dev.clone(),
            updates: 0,
        })
    }

    pub fn updates(&self) -> u64 {
        self.updates
    }

    /// The current actors as an inference model.
    pub fn export(&self) -> Result<Model> {
        let actors = self
            .agents
            .iter()
            .map(|a| a.actor.to_mlp())
            .collect::<Result<Vec<_>>>()?;
        Ok(Model {
            nodes: self.nodes,
            actors,
        })
    }

    fn one_hot(&self, rows: &[Vec<usize>]) -> Result<Tensor> {
        let (b, n, a) = (rows.len(), self.agents.len(), self.actions);
        let mut v = vec![0f32; b * n * a];
        for (r, acts) in rows.iter().enumerate() {
            for (j, &x) in acts.iter().enumerate() {
                if let Some(slot) = v.get_mut(r * n * a + j * a + x.min(a - 1)) {
                    *slot = 1.0;
                }
            }
        }
        Tensor::from_vec(v, (b, n * a), &self.dev)
    }

    /// Additive mask: 0 where the action is feasible per the observation's `fits` flags, −1e4 else.
    fn mask(&self, obs: &Tensor) -> Result<Tensor> {
        let b = obs.dims2()?.0;
        let fits = obs.narrow(1, fits_offset(self.nodes), self.nodes)?;
        let defer = Tensor::ones((b, 1), candle_core::DType::F32, &self.dev)?;
        Tensor::cat(&[&fits, &defer], 1)?.affine(1e4, -1e4)
    }

    /// Best-fit's action in each row of one agent's observations (the one-hot it carries, or defer
    /// when no node fits): the behaviour-cloning label.
    fn teacher(&self, obs: &Tensor) -> Result<Tensor> {
        let bf = obs.narrow(1, best_fit_offset(self.nodes), self.nodes)?;
        let none = bf.sum_keepdim(1)?.affine(-1.0, 1.0)?;
        Tensor::cat(&[&bf, &none], 1)?.argmax(1)
    }

    /// One update of every agent's critic and actor; returns the mean critic loss. With
    /// `policy_gradient` false (the warm start) the actor only imitates best-fit; with it true the
    /// actor follows its centralised critic (MADDPG), the imitation kept as a regulariser.
    pub fn update(&mut self, replay: &Replay, policy_gradient: bool) -> Result<f64> {
        let batch: Vec<&Transition> = replay.sample(self.cfg.batch, &mut self.rng);
        let b = batch.len();
        let (n, d, na) = (self.agents.len(), self.obs_dim, self.actions);
        let flat = |f: &dyn Fn(&Transition) -> &[f32]| -> Vec<f32> {
            batch.iter().flat_map(|t| f(t).iter().copied()).collect()
        };
        let x = Tensor::from_vec(flat(&|t| &t.obs), (b, n * d), &self.dev)?;
        let x2 = Tensor::from_vec(flat(&|t| &t.next_obs), (b, n * d), &self.dev)?;
        let acts: Vec<Vec<usize>> = batch.iter().map(|t| t.actions.clone()).collect();
        let a = self.one_hot(&acts)?;
        let r = Tensor::from_vec(batch.iter().map(|t| t.reward).collect(), (b, 1), &self.dev)?;
        let not_done = Tensor::from_vec(
            batch
                .iter()
                .map(|t| if t.done { 0f32 } else { 1.0 })
                .collect(),
            (b, 1),
            &self.dev,
        )?;
        // Target joint action: each target actor's masked argmax on its next observation.
        let next_obs: Vec<Vec<f32>> = batch.iter().map(|t| t.next_obs.clone()).collect();
        let mut next_acts = vec![Vec::with_capacity(n); b];
        for (j, ag) in self.agents.iter().enumerate() {
            let scores = ag
                .actor_target
                .forward(&x2.narrow(1, j * d, d)?)?
                .to_vec2::<f32>()?;
            for (row, (s, o)) in scores.iter().zip(&next_obs).enumerate() {
                let obs_j = o.get(j * d..(j + 1) * d).unwrap_or(&[]);
                if let Some(v) = next_acts.get_mut(row) {
                    v.push(masked_argmax(s, obs_j, self.nodes));
                }
            }
        }
        let a2 = self.one_hot(&next_acts)?;
        let xa2 = Tensor::cat(&[&x2, &a2], 1)?;
        let xa = Tensor::cat(&[&x, &a], 1)?;
        let mut total = 0.0;
        for i in 0..n {
            let (masked, logits, labels, gum) = {
                let ag = &self.agents[i];
                let o_i = x.narrow(1, i * d, d)?;
                let logits = ag.actor.forward(&o_i)?;
                let masked = (&logits + self.mask(&o_i)?)?;
                let labels = self.teacher(&o_i)?;
                let g: Vec<f32> = (0..b * na).map(|_| gumbel(&mut self.rng) as f32).collect();
                (
                    masked,
                    logits,
                    labels,
                    Tensor::from_vec(g, (b, na), &self.dev)?,
                )
            };
            let masked_bc = masked.clone();
            let ag = &mut self.agents[i];
            // Critic: TD target from the target critic and target actors.
            let q_next = ag.critic_target.forward(&xa2)?;
            let y = (&r + (q_next * not_done.clone())?.affine(self.cfg.gamma, 0.0)?)?.detach();
            let q = ag.critic.forward(&xa)?;
            let loss = candle_nn::loss::mse(&q, &y)?;
            ag.critic_opt.backward_step(&loss)?;
            total += f64::from(loss.to_scalar::<f32>()?);
            // Actor: straight-through Gumbel-softmax of agent i's masked scores into its critic.
            let z = ((masked + gum)? / self.cfg.gumbel_temperature)?;
            let soft = candle_nn::ops::softmax_last_dim(&z)?;
            let hard_idx = z.argmax_keepdim(1)?.flatten_all()?.to_vec1::<u32>()?;
            let mut hard = vec![0f32; b * na];
            for (row, &ix) in hard_idx.iter().enumerate() {
                if let Some(s) = hard.get_mut(row * na + ix as usize) {
                    *s = 1.0;
                }
            }
            let hard = Tensor::from_vec(hard, (b, na), &self.dev)?;
            let a_i = ((hard - soft.detach())? + soft)?;
            let mut blocks = Vec::with_capacity(n);
            for j in 0..n {
                blocks.push(if j == i {
                    a_i.clone()
                } else {
                    a.narrow(1, j * na, na)?
                });
            }
            let reg = (logits.sqr()?.mean_all()? * self.cfg.logit_reg)?;
            let bc = candle_nn::loss::cross_entropy(&masked_bc, &labels)?;
            let actor_loss = if policy_gradient {
                let joint = Tensor::cat(&[x.clone(), Tensor::cat(&blocks, 1)?], 1)?;
                let q_pi = ag.critic.forward(&joint)?;
                // TD3+BC's normalisation: the Q term is scaled by α / mean|Q| (no gradient through
                // the scale), so `bc_weight` means the same whatever the return's magnitude.
                let scale = q_pi.abs()?.mean_all()?.to_scalar::<f32>()?.max(1e-3);
                let q_term = (q_pi.mean_all()? * (self.cfg.q_weight / f64::from(scale)))?;
                ((reg + (bc * self.cfg.bc_weight)?)? - q_term)?
            } else {
                (reg + bc)?
            };
            ag.actor_opt.backward_step(&actor_loss)?;
        }
        for ag in &self.agents {
            ag.actor_target.soft_update(&ag.actor, self.cfg.tau)?;
            ag.critic_target.soft_update(&ag.critic, self.cfg.tau)?;
        }
        self.updates += 1;
        Ok(total / n.max(1) as f64)
    }
}
