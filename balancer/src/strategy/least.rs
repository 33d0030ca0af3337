//! Least connections (in-flight per weight) and least response time (peak EWMA x (in-flight + 1) per weight).
//!
//! Both scan every backend, like nginx: the scan starts at a rotating offset and only a
//! strictly lower load replaces the best, so ties are broken round robin. The loops
//! visit two plain sub-slices (no chained iterator), read only the backend's hot
//! cache line, and do no division: loads per weight compare by cross-multiplication,
//! latency costs in log space (one `ln` table fetched per pick).
use super::{Cursor, Filter, Strategy};
use crate::backend::LnTable;
use crate::{Backend, RequestCtx, StrategyKind};
use std::sync::Arc;

/// Visit `backends[start..]` then `backends[..start]` with their indices; stop when
/// `visit` returns true.
#[inline(always)]
fn rotated(
    backends: &[Arc<Backend>],
    start: usize,
    mut visit: impl FnMut(usize, &Backend) -> bool,
) {
    let start = if start < backends.len() { start } else { 0 };
    let (head, tail) = backends.split_at(start);
    for (k, b) in tail.iter().enumerate() {
        if visit(start + k, b) {
            return;
        }
    }
    for (i, b) in head.iter().enumerate() {
        if visit(i, b) {
            return;
        }
    }
}

/// Fewest in-flight requests per unit of weight (nginx `least_conn`, HAProxy `leastconn`).
///
/// The scan starts at a rotating offset and only a strictly lower load replaces the
/// best, so ties are broken round robin. An idle backend (nothing in flight) ends the
/// scan at once: nothing after it can be strictly lower, so the result is the full
/// scan's.
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

/// Lowest `in_flight / weight` by cross-multiplication (exact, no division: in-flight
/// is capped at `u32::MAX`, so `u32 x u32` products fit in a `u64`).
#[inline(always)]
fn least_in_flight(
    backends: &[Arc<Backend>],
    start: usize,
    filter: Filter,
    skip: impl Fn(usize) -> bool,
) -> Option<usize> {
    let any = filter == Filter::Any;
    let mut best = None;
    let (mut bf, mut bw) = (0u64, 1u64);
    rotated(backends, start, |i, b| {
        if skip(i) || !(any || b.is_available()) {
            return false;
        }
        let f = b.in_flight().min(u64::from(u32::MAX));
        let w = u64::from(b.weight());
        if best.is_none() || f * bw < bf * w {
            best = Some(i);
            (bf, bw) = (f, w);
            return f == 0;
        }
        false
    });
    best
}

impl Strategy for LeastConnections {
    fn kind(&self) -> StrategyKind {
        StrategyKind::LeastConnections
    }

    #[inline]
    fn pick(&self, backends: &[Arc<Backend>], _: &RequestCtx<'_>, filter: Filter) -> Option<usize> {
        least_in_flight(backends, self.cursor.next(), filter, |_| false)
    }

    fn next_candidate(
        &self,
        backends: &[Arc<Backend>],
        _: &RequestCtx<'_>,
        filter: Filter,
        tried: &[usize],
    ) -> Option<usize> {
        let start = tried.last().map_or(0, |&i| i + 1);
        least_in_flight(backends, start, filter, |i| tried.contains(&i))
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

#[inline(always)]
fn least_cost(
    backends: &[Arc<Backend>],
    start: usize,
    filter: Filter,
    skip: impl Fn(usize) -> bool,
) -> Option<usize> {
    // Log-space costs of one balancer compare directly: no clock read, no `exp`.
    let any = filter == Filter::Any;
    let ln = LnTable::get();
    let mut best = None;
    let mut bc = f64::INFINITY;
    rotated(backends, start, |i, b| {
        if skip(i) || !(any || b.is_available()) {
            return false;
        }
        let cost = b.latency_cost(ln);
        if best.is_none() || cost < bc {
            best = Some(i);
            bc = cost;
        }
        false
    });
    best
}

impl Strategy for LeastResponseTime {
    fn kind(&self) -> StrategyKind {
        StrategyKind::LeastResponseTime
    }

    #[inline]
    fn pick(&self, backends: &[Arc<Backend>], _: &RequestCtx<'_>, filter: Filter) -> Option<usize> {
        least_cost(backends, self.cursor.next(), filter, |_| false)
    }

    fn next_candidate(
        &self,
        backends: &[Arc<Backend>],
        _: &RequestCtx<'_>,
        filter: Filter,
        tried: &[usize],
    ) -> Option<usize> {
        let start = tried.last().map_or(0, |&i| i + 1);
        least_cost(backends, start, filter, |i| tried.contains(&i))
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
