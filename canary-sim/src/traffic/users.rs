//! A user population with heavy-tailed request counts: who sends each request.
//!
//! Production traffic is not one request per user. A few users (integrations, bots behind a login,
//! power users) send a large part of it, and they are sticky: a user's segment and bucket are fixed,
//! so a heavy user's requests all land on the same track. The model: `n` users, the `k`-th sending a
//! share of requests proportional to `1 / k^exponent` (Zipf), each with a segment drawn from the mix
//! and a uniform bucket in `0..10 000` (basis points, the filter's `bucket_bp`). Some clients fail every
//! request on both versions (a broken integration, a retry loop): they are drawn among the heaviest
//! users, so their errors are many and all on one track.

use rand::Rng;
use rand_chacha::ChaCha8Rng;

/// Entries of the search guide (a draw scans a few ranks from its entry instead of a binary search
/// over every user's cumulative share).
const GUIDE: usize = 1 << 16;

/// The users of one run.
pub(crate) struct Population {
    /// Cumulative request share by rank (last = 1).
    cum: Vec<f64>,
    /// `guide[j]`: the first rank whose cumulative share exceeds `j / GUIDE` (a search starts there).
    guide: Vec<u32>,
    /// Per user, packed in one word so a draw touches one cache line: bucket (bp) in bits 0–13,
    /// segment index in bits 16–23, bit 31 set when the user fails every request.
    user: Vec<u32>,
}

impl Population {
    /// `n` users with Zipf(`exponent`) request shares, segments by the cumulative mix `seg_cum`, and
    /// `failing` clients at distinct random ranks among the heaviest `failing_pool` users.
    pub(crate) fn new(
        rng: &mut ChaCha8Rng,
        n: usize,
        exponent: f64,
        seg_cum: &[f64],
        failing: usize,
        failing_pool: usize,
    ) -> Self {
        let n = n.max(1);
        let mut acc = 0.0;
        let mut cum: Vec<f64> = (1..=n)
            .map(|k| {
                acc += (k as f64).powf(-exponent);
                acc
            })
            .collect();
        for c in &mut cum {
            *c /= acc;
        }
        let segment: Vec<u8> = (0..n)
            .map(|_| {
                let u: f64 = rng.gen();
                seg_cum
                    .iter()
                    .position(|c| u < *c)
                    .unwrap_or(seg_cum.len() - 1) as u8
            })
            .collect();
        let bucket: Vec<u16> = (0..n).map(|_| rng.gen_range(0..10_000u16)).collect();
        let guide = (0..GUIDE)
            .map(|j| cum.partition_point(|c| *c <= j as f64 / GUIDE as f64) as u32)
            .collect();
        let mut fail = vec![false; n];
        let pool = failing_pool.clamp(1, n);
        let mut left = failing.min(pool);
        while left > 0 {
            let k = rng.gen_range(0..pool);
            if !fail[k] {
                fail[k] = true;
                left -= 1;
            }
        }
        let user = segment
            .iter()
            .zip(&bucket)
            .zip(&fail)
            .map(|((s, b), f): ((&u8, &u16), &bool)| {
                u32::from(*b) | u32::from(*s) << 16 | u32::from(*f) << 31
            })
            .collect();
        Self { cum, guide, user }
    }

    /// The user of a request, from a uniform draw in `[0, 1)`.
    #[inline]
    pub(crate) fn pick(&self, u: f64) -> usize {
        let j = ((u * GUIDE as f64) as usize).min(GUIDE - 1);
        let mut k = self.guide[j] as usize;
        while k + 1 < self.cum.len() && self.cum[k] <= u {
            k += 1;
        }
        k
    }

    /// A user's (segment, bucket, fails every request).
    #[inline]
    pub(crate) fn user(&self, k: usize) -> (usize, u32, bool) {
        let u = self.user[k];
        (((u >> 16) & 0xFF) as usize, u & 0x3FFF, u >> 31 == 1)
    }

    /// The request share of the heaviest user.
    #[cfg(test)]
    pub(crate) fn top_share(&self) -> f64 {
        self.cum.first().copied().unwrap_or(0.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn zipf_shares_and_failing_clients() {
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        let p = Population::new(&mut rng, 1_000, 1.0, &[0.5, 1.0], 3, 10);
        // H(1000) ≈ 7.485: the heaviest user sends 1/H of the requests.
        assert!(
            (p.top_share() - 1.0 / 7.485).abs() < 1e-3,
            "{}",
            p.top_share()
        );
        let fails = |k| p.user(k).2;
        assert_eq!((0..1_000).filter(|k| fails(*k)).count(), 3);
        assert!((10..1_000).all(|k| !fails(k)));
        assert!((0..1_000).all(|k| p.user(k).1 < 10_000 && p.user(k).0 < 2));
        assert_eq!(p.pick(0.0), 0);
        assert_eq!(p.pick(0.999_999_9), 999);
        // Draws follow the shares: user 0 gets ≈ 13.4 % of 100 000 draws.
        let hits = (0..100_000).filter(|_| p.pick(rng.gen()) == 0).count();
        assert!((12_800..14_000).contains(&hits), "{hits}");
    }
}
