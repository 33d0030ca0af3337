//! Randomized strategies: power of two choices and weighted random, on a seeded lock-free generator.
use super::{first_from, reduce, AtomicRng, Filter, Strategy};
use crate::backend::LnTable;
use crate::{Backend, LoadMetric, RequestCtx, StrategyKind};
use std::sync::Arc;

/// Two distinct backends at random; the less loaded one wins (Mitzenmacher's "power of
/// two choices"; Envoy's least-request and Linkerd's P2C balancers).
#[derive(Debug)]
pub struct PowerOfTwo {
    rng: AtomicRng,
    metric: LoadMetric,
}

impl PowerOfTwo {
    /// P2C comparing `metric`, seeded with `seed`.
    pub fn new(metric: LoadMetric, seed: u64) -> Self {
        Self {
            rng: AtomicRng::new(seed),
            metric,
        }
    }

    /// Is `a` strictly more loaded than `b`?
    #[inline]
    fn heavier(&self, a: &Backend, b: &Backend) -> bool {
        match self.metric {
            LoadMetric::InFlight => {
                u128::from(a.in_flight()) * u128::from(b.weight())
                    > u128::from(b.in_flight()) * u128::from(a.weight())
            }
            LoadMetric::PeakEwma => {
                let ln = LnTable::get();
                a.latency_cost(ln) > b.latency_cost(ln)
            }
        }
    }
}

impl Strategy for PowerOfTwo {
    fn kind(&self) -> StrategyKind {
        StrategyKind::PowerOfTwo
    }

    #[inline]
    fn pick(&self, backends: &[Arc<Backend>], _: &RequestCtx<'_>, filter: Filter) -> Option<usize> {
        let n = backends.len();
        if n == 1 {
            return first_from(backends, 0, filter);
        }
        let r = self.rng.next_u64();
        let a = reduce(r as u32, n);
        let mut b = reduce((r >> 32) as u32, n - 1);
        if b >= a {
            b += 1;
        }
        match (filter.admits(&backends[a]), filter.admits(&backends[b])) {
            (true, true) => Some(if self.heavier(&backends[a], &backends[b]) {
                b
            } else {
                a
            }),
            (true, false) => Some(a),
            (false, true) => Some(b),
            (false, false) => first_from(backends, a + 1, filter),
        }
    }
}

/// Weighted random choice (cumulative weights, binary search; a plain draw when all
/// weights are equal). An unavailable draw moves on to the next available backend.
#[derive(Debug)]
pub struct Random {
    rng: AtomicRng,
    cumulative: Box<[u64]>,
    uniform: bool,
}

impl Random {
    /// Weighted random over `backends`' current weights, seeded with `seed`.
    pub fn new(backends: &[Arc<Backend>], seed: u64) -> Self {
        let mut acc = 0u64;
        let cumulative = backends
            .iter()
            .map(|b| {
                acc += u64::from(b.weight());
                acc
            })
            .collect();
        let uniform = backends.windows(2).all(|w| w[0].weight() == w[1].weight());
        Self {
            rng: AtomicRng::new(seed),
            cumulative,
            uniform,
        }
    }
}

impl Strategy for Random {
    fn kind(&self) -> StrategyKind {
        StrategyKind::Random
    }

    #[inline]
    fn pick(&self, backends: &[Arc<Backend>], _: &RequestCtx<'_>, filter: Filter) -> Option<usize> {
        let r = self.rng.next_u64();
        let i = if self.uniform {
            reduce(r as u32, backends.len())
        } else {
            let total = *self.cumulative.last()?;
            let x = ((u128::from(r) * u128::from(total)) >> 64) as u64;
            self.cumulative.partition_point(|&c| c <= x)
        };
        if backends.get(i).is_some_and(|b| filter.admits(b)) {
            return Some(i);
        }
        first_from(backends, i + 1, filter)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::strategy::testing::{backends, sample, set_in_flight};

    fn counts(s: &dyn Strategy, bs: &[Arc<Backend>], n: usize) -> Vec<usize> {
        let mut c = vec![0; bs.len()];
        for _ in 0..n {
            c[s.pick(bs, &RequestCtx::new(), Filter::Available).unwrap()] += 1;
        }
        c
    }

    #[test]
    fn weighted_random_follows_weights() {
        let (bs, _c) = backends(&[1, 3, 6]);
        let c = counts(&Random::new(&bs, 42), &bs, 100_000);
        for (got, share) in c.iter().zip([0.1, 0.3, 0.6]) {
            let frac = *got as f64 / 100_000.0;
            assert!((frac - share).abs() < 0.01, "{c:?}");
        }
    }

    #[test]
    fn p2c_never_picks_the_most_loaded_of_three() {
        let (bs, _c) = backends(&[1, 1, 1]);
        set_in_flight(&bs[0], 9);
        set_in_flight(&bs[1], 1);
        let p2c = PowerOfTwo::new(LoadMetric::InFlight, 1);
        let c = counts(&p2c, &bs, 3_000);
        assert_eq!(c[0], 0, "{c:?}");
        // The least loaded wins both of its pairs: about two thirds of the picks.
        assert!(c[2] > 1_800 && c[2] < 2_200, "{c:?}");
    }

    #[test]
    fn p2c_peak_ewma_avoids_the_slow_one() {
        let (bs, _c) = backends(&[1, 1, 1]);
        sample(&bs[0], 500);
        sample(&bs[1], 10);
        sample(&bs[2], 10);
        let c = counts(&PowerOfTwo::new(LoadMetric::PeakEwma, 9), &bs, 3_000);
        assert_eq!(c[0], 0, "{c:?}");
    }

    #[test]
    fn same_seed_same_sequence() {
        let (bs, _c) = backends(&[2, 1, 1, 5]);
        let a = Random::new(&bs, 7);
        let b = Random::new(&bs, 7);
        let ctx = RequestCtx::new();
        for _ in 0..100 {
            assert_eq!(
                a.pick(&bs, &ctx, Filter::Available),
                b.pick(&bs, &ctx, Filter::Available)
            );
        }
    }
}
