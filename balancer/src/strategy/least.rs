//! Least connections (in-flight per weight) and least response time (peak EWMA x (in-flight + 1) per weight).
use super::{rotate, Cursor, Filter, Strategy};
use crate::{Backend, RequestCtx, StrategyKind};
use std::sync::Arc;

/// Fewest in-flight requests per unit of weight (nginx `least_conn`, HAProxy `leastconn`).
///
/// The scan starts at a rotating offset and only a strictly lower load replaces the
/// best, so ties are broken round robin.
#[derive(Debug)]
pub struct LeastConnections {
    cursor: Cursor,
}

impl LeastConnections {
    /// Least connections over `n` backends.
    pub fn new(n: usize) -> Self {
        Self {
            cursor: Cursor::new(n),
        }
    }
}

/// Lowest `in_flight / weight` by cross-multiplication (exact, no division).
#[inline]
fn least_in_flight(
    backends: &[Arc<Backend>],
    order: impl Iterator<Item = usize>,
    mut admit: impl FnMut(usize) -> bool,
) -> Option<usize> {
    let mut best: Option<(usize, u64, u64)> = None;
    for i in order {
        if !admit(i) {
            continue;
        }
        let b = &backends[i];
        let (f, w) = (b.in_flight(), u64::from(b.weight()));
        match best {
            Some((_, bf, bw))
                if u128::from(f) * u128::from(bw) >= u128::from(bf) * u128::from(w) => {}
            _ => best = Some((i, f, w)),
        }
    }
    best.map(|(i, _, _)| i)
}

impl Strategy for LeastConnections {
    fn kind(&self) -> StrategyKind {
        StrategyKind::LeastConnections
    }

    #[inline]
    fn pick(&self, backends: &[Arc<Backend>], _: &RequestCtx<'_>, filter: Filter) -> Option<usize> {
        let start = self.cursor.next();
        least_in_flight(backends, rotate(backends.len(), start), |i| {
            filter.admits(&backends[i])
        })
    }

    fn next_candidate(
        &self,
        backends: &[Arc<Backend>],
        _: &RequestCtx<'_>,
        filter: Filter,
        tried: &[usize],
    ) -> Option<usize> {
        let start = tried.last().map_or(0, |&i| i + 1);
        least_in_flight(backends, rotate(backends.len(), start), |i| {
            !tried.contains(&i) && filter.admits(&backends[i])
        })
    }
}

/// Lowest peak-EWMA response time x (in-flight + 1) per unit of weight (Linkerd's peak
/// EWMA balancer; nginx Plus `least_time`). A backend without samples counts the
/// configured default RTT; an idle estimate decays toward zero, so a backend that was
/// slow is re-probed after a while instead of being starved forever.
#[derive(Debug)]
pub struct LeastResponseTime {
    cursor: Cursor,
}

impl LeastResponseTime {
    /// Least response time over `n` backends.
    pub fn new(n: usize) -> Self {
        Self {
            cursor: Cursor::new(n),
        }
    }
}

#[inline]
fn least_cost(
    backends: &[Arc<Backend>],
    order: impl Iterator<Item = usize>,
    mut admit: impl FnMut(usize) -> bool,
) -> Option<usize> {
    // Log-space costs of one balancer compare directly: no clock read, no `exp`.
    let mut best: Option<(usize, f64)> = None;
    for i in order {
        if !admit(i) {
            continue;
        }
        let cost = backends[i].latency_cost();
        match best {
            Some((_, bc)) if cost >= bc => {}
            _ => best = Some((i, cost)),
        }
    }
    best.map(|(i, _)| i)
}

impl Strategy for LeastResponseTime {
    fn kind(&self) -> StrategyKind {
        StrategyKind::LeastResponseTime
    }

    #[inline]
    fn pick(&self, backends: &[Arc<Backend>], _: &RequestCtx<'_>, filter: Filter) -> Option<usize> {
        let start = self.cursor.next();
        least_cost(backends, rotate(backends.len(), start), |i| {
            filter.admits(&backends[i])
        })
    }

    fn next_candidate(
        &self,
        backends: &[Arc<Backend>],
        _: &RequestCtx<'_>,
        filter: Filter,
        tried: &[usize],
    ) -> Option<usize> {
        let start = tried.last().map_or(0, |&i| i + 1);
        least_cost(backends, rotate(backends.len(), start), |i| {
            !tried.contains(&i) && filter.admits(&backends[i])
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::strategy::testing::{backends, sample, set_in_flight};
    use std::time::Duration;

    fn pick(s: &dyn Strategy, bs: &[Arc<Backend>]) -> usize {
        s.pick(bs, &RequestCtx::new(), Filter::Available).unwrap()
    }

    #[test]
    fn least_connections_per_weight() {
        let (bs, _c) = backends(&[1, 1, 2]);
        let lc = LeastConnections::new(bs.len());
        set_in_flight(&bs[0], 3);
        set_in_flight(&bs[1], 1);
        set_in_flight(&bs[2], 3); // 1.5 per weight unit
        for _ in 0..5 {
            assert_eq!(pick(&lc, &bs), 1);
        }
        set_in_flight(&bs[1], 2); // 2 > 1.5
        assert_eq!(pick(&lc, &bs), 2);
    }

    #[test]
    fn least_connections_breaks_ties_round_robin() {
        let (bs, _c) = backends(&[1, 1, 1, 1]);
        let lc = LeastConnections::new(bs.len());
        set_in_flight(&bs[3], 5);
        let seq: Vec<_> = (0..6).map(|_| pick(&lc, &bs)).collect();
        assert_eq!(seq, vec![0, 1, 2, 0, 0, 1]);
        // cursor 3 starts at index 3 (loaded) and wraps to 0; cursor 4 starts at 0.
    }

    #[test]
    fn least_response_time_weighs_latency_and_load() {
        let (bs, clock) = backends(&[1, 1, 1]);
        let lrt = LeastResponseTime::new(bs.len());
        sample(&bs[0], 10);
        sample(&bs[1], 50);
        sample(&bs[2], 20);
        assert_eq!(pick(&lrt, &bs), 0);
        set_in_flight(&bs[0], 2); // 10 * 3 = 30 > 20 * 1
        assert_eq!(pick(&lrt, &bs), 2);
        set_in_flight(&bs[2], 1); // 20 * 2 = 40 > 30
        assert_eq!(pick(&lrt, &bs), 0);
        // A backend without samples costs the default RTT (30 ms) x (in-flight + 1).
        let (fresh, _c2) = backends(&[1, 1]);
        sample(&fresh[0], 40);
        assert_eq!(pick(&lrt, &fresh), 1);
        // An idle slow backend decays and is re-probed.
        set_in_flight(&bs[0], 0);
        set_in_flight(&bs[2], 0);
        sample(&bs[0], 500);
        clock.advance(Duration::from_millis(10));
        sample(&bs[1], 20);
        sample(&bs[2], 20);
        assert_ne!(pick(&lrt, &bs), 0);
        // 40 s later, with live traffic keeping 1 and 2 at 20 ms, 0's idle estimate has
        // decayed to 500 ms x e^-4 ~ 9 ms: it gets probed again.
        clock.advance(Duration::from_secs(40));
        sample(&bs[1], 20);
        sample(&bs[2], 20);
        assert_eq!(pick(&lrt, &bs), 0);
    }
}
