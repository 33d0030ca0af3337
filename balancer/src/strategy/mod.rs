//! The [`Strategy`] trait, the helpers the strategies share, and the constructor that maps a [`StrategyKind`] to one.
use crate::{Backend, BalancerConfig, Error, RequestCtx, StrategyKind};
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;

mod consistent_hash;
mod least;
mod random;
mod round_robin;
mod smooth_wrr;

pub use consistent_hash::ConsistentHash;
pub use least::{LeastConnections, LeastResponseTime};
pub use random::{PowerOfTwo, Random};
pub use round_robin::RoundRobin;
pub use smooth_wrr::WeightedRoundRobin;

/// Which backends a strategy may choose.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Filter {
    /// Only backends that are up and not ejected.
    Available,
    /// Every backend (panic mode: all are unavailable).
    Any,
}

impl Filter {
    /// Does this filter admit `backend`?
    #[inline]
    pub fn admits(self, backend: &Backend) -> bool {
        match self {
            Filter::Available => backend.is_available(),
            Filter::Any => true,
        }
    }
}

/// A load-balancing algorithm over a fixed, non-empty backend slice (one snapshot).
///
/// A strategy is built for one snapshot and rebuilt when the backend set changes;
/// it keeps only its own cursors and tables, while the load it reads lives in the
/// shared [`Backend`]s.
pub trait Strategy: Send + Sync + fmt::Debug {
    /// Which kind this is.
    fn kind(&self) -> StrategyKind;

    /// Index of the backend for this request, among those `filter` admits.
    fn pick(
        &self,
        backends: &[Arc<Backend>],
        ctx: &RequestCtx<'_>,
        filter: Filter,
    ) -> Option<usize>;

    /// Next failover candidate, not in `tried` (non-empty: the earlier choices, in order).
    /// The default continues around the backend list after the last choice.
    fn next_candidate(
        &self,
        backends: &[Arc<Backend>],
        _ctx: &RequestCtx<'_>,
        filter: Filter,
        tried: &[usize],
    ) -> Option<usize> {
        let start = tried.last().map_or(0, |&i| i + 1);
        rotate(backends.len(), start).find(|&i| !tried.contains(&i) && filter.admits(&backends[i]))
    }

    /// A request to `backends[index]` failed (hook for strategies that de-weight).
    fn on_failure(&self, _index: usize) {}
}

/// Build the strategy `config.strategy` for `backends` (non-empty, validated).
pub(crate) fn build(
    backends: &[Arc<Backend>],
    config: &BalancerConfig,
) -> Result<Box<dyn Strategy>, Error> {
    let seed = config.seed.unwrap_or_else(rand::random);
    Ok(match config.strategy {
        StrategyKind::RoundRobin => Box::new(RoundRobin::new(backends.len())),
        StrategyKind::WeightedRoundRobin => Box::new(WeightedRoundRobin::new(backends, config)),
        StrategyKind::LeastConnections => Box::new(LeastConnections::new(backends.len())),
        StrategyKind::LeastResponseTime => Box::new(LeastResponseTime::new(backends.len())),
        StrategyKind::PowerOfTwo => Box::new(PowerOfTwo::new(config.p2c_load, seed)),
        StrategyKind::Random => Box::new(Random::new(backends, seed)),
        StrategyKind::ConsistentHash => Box::new(ConsistentHash::new(backends, config)?),
    })
}

/// Indices `start, start+1, .., n-1, 0, .., start-1` (`start` taken modulo `n`).
#[inline]
pub(crate) fn rotate(n: usize, start: usize) -> impl Iterator<Item = usize> {
    let start = if start < n {
        start
    } else if n == 0 {
        0
    } else {
        start % n
    };
    (start..n).chain(0..start)
}

/// First admitted backend at or after `start`, wrapping.
#[inline]
pub(crate) fn first_from(backends: &[Arc<Backend>], start: usize, filter: Filter) -> Option<usize> {
    rotate(backends.len(), start).find(|&i| filter.admits(&backends[i]))
}

/// `a % d` by multiplication (Lemire, Kaser, Kurz, "Faster remainder by direct
/// computation", 2019): a hardware division costs 20-90 cycles, this about 4.
#[derive(Debug, Clone, Copy)]
pub(crate) struct FastMod {
    m: u64,
    d: u32,
}

impl FastMod {
    /// Remainders modulo `d` (`d >= 1`).
    pub(crate) fn new(d: usize) -> Self {
        let d = u32::try_from(d.max(1)).unwrap_or(u32::MAX);
        Self {
            m: (u64::MAX / u64::from(d)).wrapping_add(1),
            d,
        }
    }

    /// `a % d`.
    #[inline]
    pub(crate) fn rem(self, a: u32) -> usize {
        let low = self.m.wrapping_mul(u64::from(a));
        ((u128::from(low) * u128::from(self.d)) >> 64) as usize
    }
}

/// A shared cursor: each call returns the next position modulo `n`. Wraps at 2^32
/// picks, where the cycle may skip once unless `n` divides 2^32.
#[derive(Debug)]
pub(crate) struct Cursor {
    next: std::sync::atomic::AtomicU32,
    modulo: FastMod,
}

impl Cursor {
    pub(crate) fn new(n: usize) -> Self {
        Self {
            next: std::sync::atomic::AtomicU32::new(0),
            modulo: FastMod::new(n),
        }
    }

    #[inline]
    pub(crate) fn next(&self) -> usize {
        self.modulo.rem(self.next.fetch_add(1, Relaxed))
    }
}

/// Map a uniform 32-bit value onto `0..n` without division (Lemire's multiply-shift).
#[inline]
pub(crate) fn reduce(x: u32, n: usize) -> usize {
    ((u64::from(x) * n as u64) >> 32) as usize
}

/// Lock-free seeded generator: SplitMix64 (Steele, Lea, Flood 2014) whose state is
/// advanced with a relaxed load and store, not a read-modify-write: no locked
/// instruction on the hot path. Deterministic for a given seed when used from one
/// thread (the simulator); threads racing on it may occasionally draw the same value,
/// which for choosing backends is harmless (never unsafe, never out of range).
#[derive(Debug)]
pub(crate) struct AtomicRng(AtomicU64);

impl AtomicRng {
    pub(crate) fn new(seed: u64) -> Self {
        Self(AtomicU64::new(seed))
    }

    #[inline]
    pub(crate) fn next_u64(&self) -> u64 {
        let state = self.0.load(Relaxed).wrapping_add(0x9E37_79B9_7F4A_7C15);
        self.0.store(state, Relaxed);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
}

#[cfg(test)]
pub(crate) mod testing {
    //! Backends with controlled statistics for strategy tests.
    use super::*;
    use crate::{BackendSpec, ManualClock};
    use std::time::Duration;

    pub(crate) fn backends(weights: &[u32]) -> (Vec<Arc<Backend>>, Arc<ManualClock>) {
        let clock = Arc::new(ManualClock::new());
        let epoch = crate::Clock::now(&*clock);
        let config = BalancerConfig::default();
        let v = weights
            .iter()
            .enumerate()
            .map(|(i, &w)| {
                let spec = BackendSpec::new(format!("b{i}"), w);
                Arc::new(Backend::new(&spec, &config, clock.clone(), epoch, 0))
            })
            .collect();
        (v, clock)
    }

    pub(crate) fn set_in_flight(b: &Backend, n: u64) {
        while b.in_flight() < n {
            b.start();
        }
        while b.in_flight() > n {
            b.finish();
        }
    }

    pub(crate) fn sample(b: &Backend, ms: u64) {
        b.record_success(Duration::from_millis(ms));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fast_mod_matches_the_remainder() {
        for d in [1usize, 2, 3, 7, 10, 100, 1000, 65_537, u32::MAX as usize] {
            let f = FastMod::new(d);
            for a in [0u32, 1, 2, 99, 100, 101, 12_345, u32::MAX - 1, u32::MAX] {
                assert_eq!(f.rem(a), a as usize % d, "{a} % {d}");
            }
        }
        let c = Cursor::new(3);
        let v: Vec<_> = (0..7).map(|_| c.next()).collect();
        assert_eq!(v, vec![0, 1, 2, 0, 1, 2, 0]);
    }

    #[test]
    fn rotate_covers_every_index_once() {
        let v: Vec<_> = rotate(5, 3).collect();
        assert_eq!(v, vec![3, 4, 0, 1, 2]);
        assert_eq!(rotate(0, 3).count(), 0);
        assert_eq!(rotate(3, 7).collect::<Vec<_>>(), vec![1, 2, 0]);
    }

    #[test]
    fn reduce_stays_in_range_and_rng_is_seeded() {
        // SplitMix64's reference output for seed 0 (the generator is the published one).
        assert_eq!(AtomicRng::new(0).next_u64(), 0xE220_A839_7B1D_CDAF);
        let a = AtomicRng::new(7);
        let b = AtomicRng::new(7);
        for _ in 0..1000 {
            let (x, y) = (a.next_u64(), b.next_u64());
            assert_eq!(x, y);
            assert!(reduce(x as u32, 10) < 10);
        }
        assert_eq!(reduce(u32::MAX, 10), 9);
        assert_eq!(reduce(0, 10), 0);
    }
}
