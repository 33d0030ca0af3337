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

/// The built strategy of one snapshot. The [`Strategy`] trait is the axis of
/// variation; this closed enum dispatches to it statically on the hot path, so a
/// pick inlines the strategy instead of making an indirect call.
#[derive(Debug)]
pub(crate) enum Built {
    RoundRobin(RoundRobin),
    WeightedRoundRobin(WeightedRoundRobin),
    LeastConnections(LeastConnections),
    LeastResponseTime(LeastResponseTime),
    PowerOfTwo(PowerOfTwo),
    Random(Random),
    ConsistentHash(ConsistentHash),
}

impl Built {
    /// Count a pick of `backends[index]` (already started) in the load table.
    #[inline]
    pub(crate) fn account(&self, index: usize, backend: &Backend) -> Acct {
        match self {
            Built::LeastConnections(s) => s.account(index, backend),
            Built::LeastResponseTime(s) => s.account(backend),
            _ => Acct::NONE,
        }
    }

    /// The strategy as a trait object (the cold paths).
    pub(crate) fn as_dyn(&self) -> &dyn Strategy {
        match self {
            Built::RoundRobin(s) => s,
            Built::WeightedRoundRobin(s) => s,
            Built::LeastConnections(s) => s,
            Built::LeastResponseTime(s) => s,
            Built::PowerOfTwo(s) => s,
            Built::Random(s) => s,
            Built::ConsistentHash(s) => s,
        }
    }

    /// [`Strategy::pick`], statically dispatched.
    #[inline]
    pub(crate) fn pick(
        &self,
        backends: &[Arc<Backend>],
        ctx: &RequestCtx<'_>,
        filter: Filter,
    ) -> Option<usize> {
        match self {
            Built::RoundRobin(s) => s.pick(backends, ctx, filter),
            Built::WeightedRoundRobin(s) => s.pick(backends, ctx, filter),
            Built::LeastConnections(s) => s.pick(backends, ctx, filter),
            Built::LeastResponseTime(s) => s.pick(backends, ctx, filter),
            // The randomized and hashed strategies are larger: an out-of-line call
            // keeps `pick` small (inlined, power of two and random measured slower).
            // Least response time's table scan is out of line itself; inlining the
            // rest measured faster.
            other => other.as_dyn().pick(backends, ctx, filter),
        }
    }
}

/// What a pick added to the balancer's load table (`table.rs`), settled when it ends,
/// and whether it was a panic pick.
///
/// One `u32` so that a [`Pick`](crate::Pick) keeps it in the word of its index: the
/// low 31 bits are 0 (nothing), `0x7fff_ffff` (least response time) or the
/// least-connections amount (at most 2^24); the top bit marks a pick made in panic
/// mode (every backend unavailable).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Acct(u32);

impl Acct {
    /// Nothing (the strategy does not use the table).
    pub(crate) const NONE: Acct = Acct(0);
    /// Least response time: the backend's word follows its in-flight count.
    pub(crate) const LRT: Acct = Acct(u32::MAX >> 1);
    /// The flag bit of a panic pick.
    const PANIC: u32 = 1 << 31;

    /// Least connections: `amount` (at least 1, below `u32::MAX`) was added to the word.
    #[inline]
    pub(crate) const fn lc(amount: u32) -> Acct {
        Acct(amount)
    }

    #[inline]
    pub(crate) const fn bits(self) -> u32 {
        self.0
    }

    #[inline]
    pub(crate) const fn from_bits(bits: u32) -> Acct {
        Acct(bits)
    }

    /// The same accounting, marked as a panic pick.
    #[inline]
    pub(crate) const fn panic(self) -> Acct {
        Acct(self.0 | Self::PANIC)
    }

    /// Was the pick made in panic mode?
    #[inline]
    pub(crate) const fn is_panic(self) -> bool {
        self.0 & Self::PANIC != 0
    }

    /// The pick of `backend` ended (after its in-flight count was decremented).
    #[inline]
    pub(crate) fn settle(self, backend: &Backend) {
        if self.0 != 0 {
            settle_table(self.0, backend);
        }
    }
}

/// Out of line: keeps every guard's drop small (inlined, the strategies that do not
/// use the table measured slower per pick; least response time pays for the call).
#[inline(never)]
fn settle_table(bits: u32, backend: &Backend) {
    match bits & !Acct::PANIC {
        0 => {}
        b if b == Acct::LRT.0 => backend.refresh_lrt(),
        amount => backend.lc_sub(amount),
    }
}

/// Build the strategy `config.strategy` for `backends` (non-empty, validated).
pub(crate) fn build(backends: &[Arc<Backend>], config: &BalancerConfig) -> Result<Built, Error> {
    let seed = config.seed.unwrap_or_else(rand::random);
    Ok(match config.strategy {
        StrategyKind::RoundRobin => Built::RoundRobin(RoundRobin::new(backends.len())),
        StrategyKind::WeightedRoundRobin => {
            Built::WeightedRoundRobin(WeightedRoundRobin::new(backends, config))
        }
        StrategyKind::LeastConnections => {
            Built::LeastConnections(LeastConnections::with_table(backends))
        }
        StrategyKind::LeastResponseTime => {
            Built::LeastResponseTime(LeastResponseTime::with_table(backends))
        }
        StrategyKind::PowerOfTwo => Built::PowerOfTwo(PowerOfTwo::new(config.p2c_load, seed)),
        StrategyKind::Random => Built::Random(Random::new(backends, seed)),
        StrategyKind::ConsistentHash => {
            Built::ConsistentHash(ConsistentHash::new(backends, config)?)
        }
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

/// A shared cursor: each call returns the next position modulo `n`.
///
/// It advances with a relaxed load and a plain store, not a read-modify-write, so a
/// pick pays no locked instruction for it. On one thread the sequence is exact. Two
/// threads that read the same position in the same instant both take it (one turn is
/// served twice, the cycle goes on from there): evenness over a handful of requests,
/// never the range, is what contention costs. The same trade as [`AtomicRng`].
#[derive(Debug)]
pub(crate) struct Cursor {
    next: std::sync::atomic::AtomicU32,
    /// `n - 1`, the last position.
    last: u32,
}

impl Cursor {
    pub(crate) fn new(n: usize) -> Self {
        Self {
            next: std::sync::atomic::AtomicU32::new(0),
            last: u32::try_from(n.max(1) - 1).unwrap_or(u32::MAX),
        }
    }

    #[inline]
    pub(crate) fn next(&self) -> usize {
        // Every stored value is at most `last`, so the position is always in range.
        let i = self.next.load(Relaxed).min(self.last);
        self.next
            .store(if i == self.last { 0 } else { i + 1 }, Relaxed);
        i as usize
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
                Arc::new(Backend::new(&spec, &config, clock.clone(), epoch, 0, None))
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
    fn cursor_cycles_in_range() {
        let c = Cursor::new(3);
        let v: Vec<_> = (0..7).map(|_| c.next()).collect();
        assert_eq!(v, vec![0, 1, 2, 0, 1, 2, 0]);
        let one = Cursor::new(1);
        assert!((0..3).all(|_| one.next() == 0));
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
