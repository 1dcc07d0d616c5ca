//! Candle networks for training: seeded initialisation (no library RNG), hard and soft target
//! updates, and export to the plain-`f32` [`Mlp`] used at inference.

use candle_core::{DType, Device, Result, Tensor, Var};
use rand::Rng;
use rand_chacha::ChaCha8Rng;

use crate::policy::{Dense, Mlp};

/// One dense layer with trainable weight `[out, in]` and bias `[out]`.
pub struct Linear {
    pub w: Var,
    pub b: Var,
}

/// A ReLU MLP (linear last layer).
pub struct Net {
    pub layers: Vec<Linear>,
}

impl Net {
    /// Uniform(±1/√fan_in) initialisation drawn from `rng` (PyTorch's default for linear layers).
    pub fn new(sizes: &[usize], rng: &mut ChaCha8Rng, dev: &Device) -> Result<Self> {
        let mut layers = Vec::new();
        for pair in sizes.windows(2) {
            let (i, o) = (pair[0], pair[1]);
            let k = 1.0 / (i.max(1) as f32).sqrt();
            let w: Vec<f32> = (0..i * o).map(|_| rng.gen_range(-k..k)).collect();
            let b: Vec<f32> = (0..o).map(|_| rng.gen_range(-k..k)).collect();
            layers.push(Linear {
                w: Var::from_tensor(&Tensor::from_vec(w, (o, i), dev)?)?,
                b: Var::from_tensor(&Tensor::from_vec(b, o, dev)?)?,
            });
        }
        Ok(Self { layers })
    }

    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let mut h = x.clone();
        let last = self.layers.len().saturating_sub(1);
        for (i, l) in self.layers.iter().enumerate() {
            h = h
                .matmul(&l.w.as_tensor().t()?)?
                .broadcast_add(l.b.as_tensor())?;
            if i < last {
                h = h.relu()?;
            }
        }
        Ok(h)
    }

    pub fn vars(&self) -> Vec<Var> {
        self.layers
            .iter()
            .flat_map(|l| [l.w.clone(), l.b.clone()])
            .collect()
    }

    /// A copy with fresh variables (a target network starts equal to its source).
    pub fn duplicate(&self) -> Result<Self> {
        let mut layers = Vec::new();
        for l in &self.layers {
            layers.push(Linear {
                w: Var::from_tensor(&l.w.as_tensor().copy()?)?,
                b: Var::from_tensor(&l.b.as_tensor().copy()?)?,
            });
        }
        Ok(Self { layers })
    }

    /// `self ← (1 − τ) self + τ src`.
    pub fn soft_update(&self, src: &Net, tau: f64) -> Result<()> {
        for (t, s) in self.vars().iter().zip(src.vars()) {
            let mixed = ((t.as_tensor() * (1.0 - tau))? + (s.as_tensor() * tau)?)?;
            t.set(&mixed.detach())?;
        }
        Ok(())
    }

    /// Export to the inference MLP.
    pub fn to_mlp(&self) -> Result<Mlp> {
        let mut layers = Vec::new();
        for l in &self.layers {
            let (output, input) = l.w.as_tensor().dims2()?;
            let w =
                l.w.as_tensor()
                    .to_dtype(DType::F32)?
                    .flatten_all()?
                    .to_vec1::<f32>()?;
            let b = l.b.as_tensor().to_vec1::<f32>()?;
            layers.push(Dense {
                input,
                output,
                w,
                b,
            });
        }
        Ok(Mlp { layers })
    }
}
