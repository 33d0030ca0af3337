//! The simulator's key set: distinct keys with request weights, a seeded RNG.
use rand::RngCore;
use rand_distr::{Distribution, Zipf};

use super::KeyDistribution;
use crate::error::Error;
use crate::hash::mix64;

/// SplitMix64 as a `rand` RNG: tiny, seedable and stable across `rand`
/// versions, so a seed always gives the same simulation.
#[derive(Debug, Clone)]
pub(crate) struct SplitMix64(u64);

impl SplitMix64 {
    pub(crate) fn new(seed: u64) -> Self {
        Self(seed)
    }

    /// Uniform in `0..n` (Lemire's multiply-shift; bias below 2^-32 for our sizes).
    pub(crate) fn below(&mut self, n: usize) -> usize {
        ((u128::from(self.next_u64()) * n as u128) >> 64) as usize
    }
}

impl RngCore for SplitMix64 {
    fn next_u32(&mut self) -> u32 {
        (self.next_u64() >> 32) as u32
    }
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        mix64(self.0)
    }
    fn fill_bytes(&mut self, dst: &mut [u8]) {
        for chunk in dst.chunks_mut(8) {
            let v = self.next_u64().to_le_bytes();
            chunk.copy_from_slice(&v[..chunk.len()]);
        }
    }
}

/// Distinct keys (flat buffer + offsets), their weights, and a sorted view
/// with prefix sums for range statistics.
#[derive(Debug)]
pub(crate) struct Workload {
    buf: Vec<u8>,
    offs: Vec<u32>,
    /// Requests per distinct key.
    pub(crate) weights: Vec<u64>,
    /// Sum of `weights`.
    pub(crate) total: u64,
    /// Key indices sorted by key bytes.
    pub(crate) sorted: Vec<u32>,
    /// Prefix sums over `sorted`: load and bytes (length n + 1).
    pub(crate) prefix_load: Vec<u64>,
    pub(crate) prefix_bytes: Vec<u64>,
}

impl Workload {
    /// `requests` draws from `dist` over a universe of `requests` keys named
    /// `key-<rank>`; uniform means each key exactly once.
    pub(crate) fn generate(
        requests: usize,
        dist: KeyDistribution,
        rng: &mut SplitMix64,
    ) -> Result<Self, Error> {
        let counts: Vec<u64> = match dist {
            KeyDistribution::Uniform => vec![1; requests],
            KeyDistribution::Zipf { exponent } => {
                let zipf =
                    Zipf::new(requests as f64, exponent).map_err(|e| Error::InvalidParameter {
                        what: "distribution",
                        reason: format!("zipf:{exponent}: {e}"),
                    })?;
                let mut counts = vec![0u64; requests];
                for _ in 0..requests {
                    let rank = zipf.sample(rng) as usize; // 1..=requests
                    counts[rank.clamp(1, requests) - 1] += 1;
                }
                counts
            }
        };
        let mut buf = Vec::with_capacity(requests * 11);
        let mut offs = Vec::with_capacity(requests + 1);
        let mut weights = Vec::with_capacity(requests);
        offs.push(0);
        for (rank, &c) in counts.iter().enumerate() {
            if c == 0 {
                continue;
            }
            use std::io::Write;
            let _ = write!(buf, "key-{rank}");
            offs.push(buf.len() as u32);
            weights.push(c);
        }
        let mut w = Self {
            total: weights.iter().sum(),
            buf,
            offs,
            weights,
            sorted: Vec::new(),
            prefix_load: Vec::new(),
            prefix_bytes: Vec::new(),
        };
        let mut sorted: Vec<u32> = (0..w.len() as u32).collect();
        sorted.sort_unstable_by(|&a, &b| w.key(a as usize).cmp(w.key(b as usize)));
        let mut pl = Vec::with_capacity(sorted.len() + 1);
        let mut pb = Vec::with_capacity(sorted.len() + 1);
        let (mut l, mut b) = (0u64, 0u64);
        pl.push(0);
        pb.push(0);
        for &i in &sorted {
            l += w.weights[i as usize];
            b += w.key(i as usize).len() as u64;
            pl.push(l);
            pb.push(b);
        }
        w.sorted = sorted;
        w.prefix_load = pl;
        w.prefix_bytes = pb;
        Ok(w)
    }

    /// Number of distinct keys.
    pub(crate) fn len(&self) -> usize {
        self.weights.len()
    }

    /// Bytes of key `i`.
    #[inline]
    pub(crate) fn key(&self, i: usize) -> &[u8] {
        &self.buf[self.offs[i] as usize..self.offs[i + 1] as usize]
    }

    /// Bytes of the key at sorted position `p`.
    pub(crate) fn sorted_key(&self, p: usize) -> &[u8] {
        self.key(self.sorted[p] as usize)
    }

    /// First sorted position whose key is `>= bound`.
    pub(crate) fn lower_bound(&self, bound: &[u8]) -> usize {
        self.sorted
            .partition_point(|&i| self.key(i as usize) < bound)
    }
}
