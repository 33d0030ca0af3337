//! Least connections (in-flight per weight) and least response time (peak EWMA x (in-flight + 1) per weight).
//!
//! Both scan every backend, like nginx: the scan starts at a rotating offset and only a
//! strictly lower load replaces the best, so ties are broken round robin.
//!
//! Two scans give the same answer. The table scan (`table.rs`) reads one precomputed
//! word per backend from the balancer's load table; it serves `pick` when the
//! snapshot's backends sit in consecutive slots and none may be unavailable. The
//! per-backend scan serves everything else (failover candidates, panic mode, other
//! layouts): it visits two plain sub-slices, reads only each backend's hot cache
//! line, and does no division (loads per weight compare by cross-multiplication,
//! latency costs in log space with one `ln` table fetched per pick).
use super::{Acct, Cursor, Filter, Strategy};
use crate::backend::LnTable;
use crate::table::{argmin, argmin_ties, FlagRange, LoadTable};
use crate::{Backend, RequestCtx, StrategyKind};
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;

/// Least-connections table words count `L / weight` per pick. `L` is this number
/// (lcm of 1..=16) when every weight divides it, so it stays the same across updates
/// and the words of picks made before an update compare exactly after it; otherwise
/// the lcm of the weights, if at most [`MAX_LCM`]; otherwise the strategy keeps to the
/// per-backend scan.
const COMMON_LCM: u64 = 720_720;
/// See [`COMMON_LCM`]: words stay below 2^64 up to 2^40 picks in flight per backend.
const MAX_LCM: u64 = 1 << 24;

/// A snapshot's backends in consecutive slots `lo..lo + n` of one table.
#[derive(Debug)]
struct Slots {
    table: Arc<LoadTable>,
    lo: usize,
    n: usize,
    flags: FlagRange,
}

impl Slots {
    fn of(backends: &[Arc<Backend>]) -> Option<Self> {
        let (table, lo) = backends.first()?.slot()?;
        let consecutive = backends.iter().enumerate().all(|(i, b)| {
            b.slot()
                .is_some_and(|(t, s)| Arc::ptr_eq(t, table) && s == lo + i)
        });
        consecutive.then(|| Slots {
            table: Arc::clone(table),
            lo,
            n: backends.len(),
            flags: table.flags_of(lo, backends.len()),
        })
    }

    /// May a backend of the range be unavailable? Then the table cannot answer.
    #[inline]
    fn flagged(&self) -> bool {
        self.flags.any(&self.table)
    }
}

/// The per-backend scan's answer `r`, taken because a backend was flagged: also clear
/// the flags of backends that are available again, so scans go back to the table.
#[cold]
fn after_flagged(backends: &[Arc<Backend>], r: Option<usize>) -> Option<usize> {
    for b in backends {
        b.sync_flag();
    }
    r
}

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
    /// `L / weight` per backend (see [`COMMON_LCM`]): what a pick adds to its table word.
    /// Counted whenever the weights allow, so the words stay exact across updates.
    mul: Option<Box<[u32]>>,
    /// The table scan, when the backends sit in consecutive slots.
    slots: Option<Slots>,
}

impl LeastConnections {
    /// Least connections over `n` backends (always the per-backend scan).
    pub fn new(n: usize) -> Self {
        Self {
            cursor: Cursor::new(n),
            mul: None,
            slots: None,
        }
    }

    /// Least connections over `backends`, on their load table when they sit in
    /// consecutive slots and the lcm of their weights is small enough.
    pub(crate) fn with_table(backends: &[Arc<Backend>]) -> Self {
        let weight = |b: &Arc<Backend>| u64::from(b.weight().max(1));
        let lcm = if backends.iter().all(|b| COMMON_LCM % weight(b) == 0) {
            Some(COMMON_LCM)
        } else {
            backends.iter().try_fold(1u64, |l, b| {
                let l = l / gcd(l, weight(b)) * weight(b);
                (l <= MAX_LCM).then_some(l)
            })
        };
        let mul: Option<Box<[u32]>> =
            lcm.map(|l| backends.iter().map(|b| (l / weight(b)) as u32).collect());
        Self {
            cursor: Cursor::new(backends.len()),
            slots: mul.as_ref().and_then(|_| Slots::of(backends)),
            mul,
        }
    }

    /// Count a pick of `backends[index]` in the table (undone by [`Acct::settle`]).
    #[inline]
    pub(crate) fn account(&self, index: usize, backend: &Backend) -> Acct {
        match &self.mul {
            Some(mul) if backend.slot().is_some() => {
                let amount = mul[index];
                backend.lc_add(amount);
                Acct::lc(amount)
            }
            _ => Acct::NONE,
        }
    }
}

fn gcd(mut a: u64, mut b: u64) -> u64 {
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a
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
        let start = self.cursor.next();
        if let (Some(slots), Filter::Available) = (&self.slots, filter) {
            if slots.flagged() {
                return after_flagged(
                    backends,
                    least_in_flight(backends, start, filter, |_| false),
                );
            }
            let words = slots.table.lc_words(slots.lo, slots.n);
            // An idle backend at the start is the answer (nothing is lower, and it is
            // first in rotated order).
            if words.get(start).is_some_and(|w| w.load(Relaxed) == 0) {
                return Some(start);
            }
            // `None`: the words changed under the scan.
            if let Some(i) = argmin_ties(words, start) {
                return Some(i);
            }
        }
        least_in_flight(backends, start, filter, |_| false)
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
    /// The table scan, when the backends sit in consecutive slots.
    slots: Option<Slots>,
}

impl LeastResponseTime {
    /// Least response time over `n` backends (always the per-backend scan).
    pub fn new(n: usize) -> Self {
        Self {
            cursor: Cursor::new(n),
            slots: None,
        }
    }

    /// Least response time over `backends`, on their load table when they sit in
    /// consecutive slots. (Their words are current: building a snapshot reconfigures
    /// every backend, which rewrites its word, so picks made under another strategy
    /// leave nothing stale.)
    pub(crate) fn with_table(backends: &[Arc<Backend>]) -> Self {
        Self {
            cursor: Cursor::new(backends.len()),
            slots: Slots::of(backends),
        }
    }

    /// Keep the table word of a picked backend current (undone by [`Acct::settle`]),
    /// whether or not this snapshot scans the table: a later one may.
    #[inline]
    pub(crate) fn account(&self, backend: &Backend) -> Acct {
        if backend.slot().is_some() {
            backend.refresh_lrt();
            Acct::LRT
        } else {
            Acct::NONE
        }
    }
}

/// The per-backend scan as `pick`'s fallback: out of line, so that `pick` (inlined into
/// the balancer's) stays small.
#[cold]
#[inline(never)]
fn least_cost_cold(backends: &[Arc<Backend>], start: usize, filter: Filter) -> Option<usize> {
    least_cost(backends, start, filter, |_| false)
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
        let start = self.cursor.next();
        if let (Some(slots), Filter::Available) = (&self.slots, filter) {
            if slots.flagged() {
                return after_flagged(backends, least_cost_cold(backends, start, filter));
            }
            if let Some(i) = argmin(slots.table.lrt_words(slots.lo, slots.n), start) {
                return Some(i);
            }
        }
        least_cost_cold(backends, start, filter)
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

    /// A seeded LCG: the test's random choices are reproducible.
    struct Lcg(u64);

    impl Lcg {
        fn below(&mut self, n: usize) -> usize {
            self.0 = self
                .0
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((self.0 >> 33) % n as u64) as usize
        }
    }

    /// Through the balancer (table scans, accounting on every path, updates, health
    /// changes), every pick is a least-loaded available backend by the per-backend
    /// definition, read from the backends' statistics just before the pick.
    #[test]
    fn table_scans_pick_a_least_loaded_available_backend() {
        use crate::{BackendSpec, Balancer, BalancerConfig, HealthPolicy, ManualClock, Pick};
        let ln = LnTable::get();
        for kind in [
            StrategyKind::LeastConnections,
            StrategyKind::LeastResponseTime,
        ] {
            for seed in 0..30u64 {
                let mut rng = Lcg(seed);
                let n = 1 + rng.below(12);
                let spec = |i: usize, rng: &mut Lcg| {
                    BackendSpec::new(format!("b{i}"), 1 + rng.below(16) as u32)
                };
                let mut specs: Vec<_> = (0..n).map(|i| spec(i, &mut rng)).collect();
                let config = BalancerConfig {
                    strategy: kind,
                    health: HealthPolicy { rise: 1, fall: 1 },
                    seed: Some(seed),
                    ..BalancerConfig::default()
                };
                let clock = Arc::new(ManualClock::new());
                let lb =
                    Balancer::with_clock(specs.clone(), config.clone(), clock.clone()).unwrap();
                assert!(lb.backends().iter().all(|b| b.slot().is_some()));
                let mut held: Vec<Pick> = Vec::new();
                let mut next_id = n;
                for _ in 0..400 {
                    match rng.below(10) {
                        0..=3 => {
                            let bs = lb.backends();
                            let avail: Vec<usize> =
                                (0..bs.len()).filter(|&i| bs[i].is_available()).collect();
                            let load = |i: usize| -> (f64, u64, u64) {
                                let b = &bs[i];
                                (b.latency_cost(ln), b.in_flight(), u64::from(b.weight()))
                            };
                            let loads: Vec<_> = (0..bs.len()).map(load).collect();
                            let Some(p) = lb.pick(&RequestCtx::new()) else {
                                panic!("{kind} seed {seed}: no pick (panic mode is on)");
                            };
                            if avail.is_empty() {
                                // Panic mode: every backend is a candidate.
                                assert!(p.is_panic(), "{kind} seed {seed}");
                                held.push(p);
                                continue;
                            }
                            assert!(!p.is_panic(), "{kind} seed {seed}");
                            let i = p.index();
                            assert!(avail.contains(&i), "{kind} seed {seed}: {i} unavailable");
                            let (ci, fi, wi) = loads[i];
                            for &j in &avail {
                                let (cj, fj, wj) = loads[j];
                                match kind {
                                    StrategyKind::LeastConnections => assert!(
                                        fi * wj <= fj * wi,
                                        "{kind} seed {seed}: {i} ({fi}/{wi}) over {j} ({fj}/{wj})"
                                    ),
                                    _ => assert!(
                                        ci <= cj + 1e-9,
                                        "{kind} seed {seed}: {i} ({ci}) over {j} ({cj})"
                                    ),
                                }
                            }
                            held.push(p);
                        }
                        4 | 5 if !held.is_empty() => {
                            let p = held.swap_remove(rng.below(held.len()));
                            match rng.below(4) {
                                0 => drop(p),
                                1 => p.failure(),
                                2 if rng.below(8) == 0 => p.connect_refused(),
                                _ => p.success(Duration::from_millis(1 + rng.below(300) as u64)),
                            }
                        }
                        6 => {
                            let id = format!("b{}", rng.below(next_id));
                            lb.report_check(&id, rng.below(3) != 0);
                        }
                        7 => clock.advance(Duration::from_millis(rng.below(20_000) as u64)),
                        8 if rng.below(8) == 0 => {
                            // Replace, append or reorder backends (slots may stop being
                            // consecutive: the per-backend scan takes over).
                            match rng.below(3) {
                                0 if specs.len() > 1 => {
                                    let k = rng.below(specs.len());
                                    specs[k] = spec(next_id, &mut rng);
                                    next_id += 1;
                                }
                                1 => {
                                    specs.push(spec(next_id, &mut rng));
                                    next_id += 1;
                                }
                                _ => specs.rotate_left(1),
                            }
                            lb.update(specs.clone(), config.clone()).unwrap();
                        }
                        _ => {}
                    }
                }
                drop(held);
                assert!(lb.backends().iter().all(|b| b.in_flight() == 0));
            }
        }
    }

    /// Threads picking, finishing and failing over concurrently leave every table word
    /// exact once they stop: least-connections words at zero, least-response-time words
    /// equal to a fresh computation.
    #[test]
    fn table_words_settle_exactly_after_concurrent_use() {
        use crate::{BackendSpec, Balancer, BalancerConfig};
        for kind in [
            StrategyKind::LeastConnections,
            StrategyKind::LeastResponseTime,
        ] {
            let specs = (0..6)
                .map(|i| BackendSpec::new(format!("b{i}"), 1 + i % 3))
                .collect();
            let config = BalancerConfig {
                strategy: kind,
                ..BalancerConfig::default()
            };
            let lb = Arc::new(Balancer::new(specs, config).unwrap());
            let threads: Vec<_> = (0..4)
                .map(|t| {
                    let lb = lb.clone();
                    std::thread::spawn(move || {
                        let mut held = Vec::new();
                        for i in 0..3_000u32 {
                            match (i + t) % 5 {
                                0 | 1 => held.extend(lb.pick(&RequestCtx::new())),
                                2 => held.extend(lb.candidates(&RequestCtx::new()).take(2)),
                                3 => {
                                    if let Some(p) = held.pop() {
                                        p.success(Duration::from_micros(u64::from(i % 700)));
                                    }
                                }
                                _ => drop(held.pop()),
                            }
                        }
                    })
                })
                .collect();
            for t in threads {
                t.join().unwrap();
            }
            let ln = LnTable::get();
            for b in lb.backends() {
                assert_eq!(b.in_flight(), 0);
                let (table, slot) = b.slot().unwrap();
                assert_eq!(table.lc_words(slot, 1)[0].load(Relaxed), 0, "{kind}");
                if kind == StrategyKind::LeastResponseTime {
                    let word = f64::from_bits(table.lrt_words(slot, 1)[0].load(Relaxed));
                    let fresh = b.latency_cost(ln) + crate::backend::LRT_BIAS;
                    assert!((word - fresh).abs() < 1e-9, "{word} {fresh}");
                }
            }
        }
    }
}
