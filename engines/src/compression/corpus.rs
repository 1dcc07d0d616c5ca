//! # A seeded evaluation corpus with a held-out split
//!
//! Six classes that matter to a VM-migration link: English-like text, JSON records, service logs,
//! VM-page-like memory (zero pages, near-copies of a few template pages, some random pages),
//! random bytes, and already-compressed data. Sizes are log-uniform in `[min_len, max_len]`.
//! Everything derives from the seed; the split is a pure function of `(seed, index)`.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

/// Payload classes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Class {
    Text,
    Json,
    Logs,
    VmPages,
    Random,
    Compressed,
}

impl Class {
    pub const ALL: [Class; 6] = [
        Class::Text,
        Class::Json,
        Class::Logs,
        Class::VmPages,
        Class::Random,
        Class::Compressed,
    ];
}

/// One corpus payload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Item {
    pub class: Class,
    pub data: Vec<u8>,
}

fn vocabulary(rng: &mut ChaCha8Rng) -> Vec<String> {
    const SYL: [&str; 16] = [
        "ka", "lo", "mi", "ne", "ter", "ra", "so", "vin", "de", "al", "po", "qu", "es", "tan",
        "ri", "mor",
    ];
    (0..300)
        .map(|_| {
            (0..rng.gen_range(1..4))
                .map(|_| SYL[rng.gen_range(0..SYL.len())])
                .collect()
        })
        .collect()
}

fn word<'a>(rng: &mut ChaCha8Rng, vocab: &'a [String]) -> &'a str {
    let r: f64 = rng.gen();
    &vocab[((r * r * r) * vocab.len() as f64) as usize % vocab.len()]
}

fn fill(class: Class, len: usize, rng: &mut ChaCha8Rng, vocab: &[String]) -> Vec<u8> {
    let mut s = String::new();
    let mut out = Vec::with_capacity(len + 256);
    match class {
        Class::Text => {
            while s.len() < len {
                for _ in 0..rng.gen_range(5..15) {
                    s.push_str(word(rng, vocab));
                    s.push(' ');
                }
                s.push_str(". ");
            }
        }
        Class::Json => {
            s.push('[');
            while s.len() < len {
                let (id, score, w1, w2) = (
                    rng.gen_range(0..1_000_000),
                    rng.gen_range(0.0..100.0f64),
                    word(rng, vocab),
                    word(rng, vocab),
                );
                s.push_str(&format!(
                    "{{\"id\":{id},\"user\":\"{w1}\",\"score\":{score:.3},\"tags\":[\"{w2}\"],\"active\":{}}},",
                    rng.gen::<bool>()
                ));
            }
            s.push(']');
        }
        Class::Logs => {
            let mut t = rng.gen_range(0..86_400_000u64);
            while s.len() < len {
                t += rng.gen_range(0..500);
                let lvl = ["INFO", "INFO", "INFO", "WARN", "ERROR"][rng.gen_range(0..5)];
                s.push_str(&format!(
                    "2024-05-01T{:02}:{:02}:{:02}.{:03}Z {lvl} service={} req={:08x} latency_ms={} msg=\"{} {}\"\n",
                    t / 3_600_000 % 24,
                    t / 60_000 % 60,
                    t / 1000 % 60,
                    t % 1000,
                    word(rng, vocab),
                    rng.gen::<u32>(),
                    rng.gen_range(1..900),
                    word(rng, vocab),
                    word(rng, vocab)
                ));
            }
        }
        Class::VmPages => {
            let templates: Vec<Vec<u8>> = (0..3)
                .map(|_| fill(Class::Text, 4096, rng, vocab))
                .collect();
            while out.len() < len {
                match rng.gen_range(0..10) {
                    0..=3 => out.extend_from_slice(&[0u8; 4096]),
                    4..=7 => {
                        let mut page = templates[rng.gen_range(0..3)][..4096].to_vec();
                        for _ in 0..8 {
                            let at = rng.gen_range(0..4096);
                            page[at] = rng.gen();
                        }
                        out.extend_from_slice(&page);
                    }
                    _ => out.extend((0..4096).map(|_| rng.gen::<u8>())),
                }
            }
        }
        Class::Random => out.extend((0..len).map(|_| rng.gen::<u8>())),
        Class::Compressed => {
            let text = fill(Class::Text, len * 3, rng, vocab);
            out = zstd::bulk::compress(&text, 3).unwrap_or(text);
        }
    }
    out.extend_from_slice(s.as_bytes());
    out.truncate(len);
    out
}

/// `count` items, classes in rotation, sizes log-uniform in `[min_len, max_len]`.
pub fn generate(seed: u64, count: usize, min_len: usize, max_len: usize) -> Vec<Item> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let vocab = vocabulary(&mut rng);
    let (lo, hi) = (
        (min_len.max(1) as f64).ln(),
        (max_len.max(min_len.max(1)) as f64).ln(),
    );
    (0..count)
        .map(|i| {
            let class = Class::ALL[i % Class::ALL.len()];
            let len = rng.gen_range(lo..=hi).exp() as usize;
            Item {
                class,
                data: fill(class, len, &mut rng, &vocab),
            }
        })
        .collect()
}

/// Whether item `index` belongs to the held-out set (`holdout_percent` of items).
pub fn is_held_out(seed: u64, index: usize, holdout_percent: u64) -> bool {
    let h = (seed ^ (index as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15))
        .wrapping_mul(0xBF58_476D_1CE4_E5B9);
    (h >> 32) % 100 < holdout_percent
}

/// Split into (train, held out).
pub fn split(seed: u64, items: Vec<Item>, holdout_percent: u64) -> (Vec<Item>, Vec<Item>) {
    let (mut train, mut test) = (Vec::new(), Vec::new());
    for (i, item) in items.into_iter().enumerate() {
        if is_held_out(seed, i, holdout_percent) {
            test.push(item)
        } else {
            train.push(item)
        }
    }
    (train, test)
}
