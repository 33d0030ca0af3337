//! nginx's smooth weighted round robin: a precomputed schedule read through an atomic cursor,
//! and nginx's exact live algorithm (under a lock) while a failed peer's weight recovers.
//!
//! The smooth algorithm (nginx `ngx_http_upstream_get_peer`, 2012): on every pick each
//! peer's `current` grows by its `effective` weight, the largest `current` wins and
//! gives back the total. Weights {5, 1, 1} yield `a a b a c a a`. Its sequence is
//! periodic with period `sum(weights)` as long as the weights are constant, so we
//! precompute one period and index it with a shared cursor (relaxed load and store): lock-free.
//!
//! On a failure nginx lowers the peer's `effective` weight by `weight / max_fails`
//! and raises it by one on every pick until it is back to `weight`. While any peer is
//! below its weight the schedule is not periodic, so picks run nginx's algorithm on
//! the live state under a `parking_lot` mutex until every peer has recovered. The same
//! happens when the scheduled peer is down or ejected: nginx's algorithm over the
//! remaining peers keeps their proportions.
use super::{Cursor, Filter, Strategy};
use crate::{Backend, BalancerConfig, RequestCtx, StrategyKind};
use parking_lot::Mutex;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::Arc;

/// Longest precomputed schedule; larger weight sums are scaled down proportionally.
const MAX_SCHEDULE: u64 = 1 << 16;

/// Work budget (backends x schedule length) of building a schedule; beyond it the
/// weights are coarsened further (only with thousands of backends of unequal weight).
const MAX_BUILD_STEPS: u64 = 1 << 26;

/// nginx's per-peer state.
#[derive(Debug, Clone, Copy)]
struct Peer {
    weight: i64,
    effective: i64,
    current: i64,
}

/// nginx's smooth weighted round robin.
#[derive(Debug)]
pub struct WeightedRoundRobin {
    schedule: Box<[u32]>,
    cursor: Cursor,
    degraded: AtomicBool,
    live: Mutex<Vec<Peer>>,
    max_fails: i64,
}

/// One period of nginx's smooth sequence for `weights`.
fn smooth_schedule(weights: &[u64]) -> Vec<u32> {
    if weights.iter().all(|&w| w == 1) {
        // Equal weights: nginx's sequence is plain round robin (O(n) instead of O(n^2)).
        return (0..weights.len() as u32).collect();
    }
    let total: u64 = weights.iter().sum();
    let total_i = total as i64;
    let mut current = vec![0i64; weights.len()];
    let mut out = Vec::with_capacity(total as usize);
    for _ in 0..total {
        let mut best = 0;
        for (i, &w) in weights.iter().enumerate() {
            current[i] += w as i64;
            if current[i] > current[best] {
                best = i;
            }
        }
        current[best] -= total_i;
        out.push(best as u32);
    }
    out
}

fn gcd(a: u64, b: u64) -> u64 {
    if b == 0 {
        a
    } else {
        gcd(b, a % b)
    }
}

/// Weights reduced by their gcd and, if their sum exceeds [`MAX_SCHEDULE`], scaled down (each at least 1).
fn schedule_weights(weights: &[u32]) -> Vec<u64> {
    let g = weights
        .iter()
        .fold(0u64, |g, &w| gcd(g, u64::from(w)))
        .max(1);
    let mut w: Vec<u64> = weights.iter().map(|&w| u64::from(w) / g).collect();
    let total: u64 = w.iter().sum();
    let cap = MAX_SCHEDULE.min(MAX_BUILD_STEPS / w.len().max(1) as u64);
    if total > cap {
        for x in &mut w {
            *x = (*x * cap / total).max(1);
        }
    }
    w
}

impl WeightedRoundRobin {
    /// Precompute the schedule for `backends`' weights; `max_fails` for de-weighting is
    /// `config.ejection.consecutive_failures` (at least 1).
    pub fn new(backends: &[Arc<Backend>], config: &BalancerConfig) -> Self {
        let weights: Vec<u32> = backends.iter().map(|b| b.weight()).collect();
        let schedule = smooth_schedule(&schedule_weights(&weights)).into_boxed_slice();
        let cursor = Cursor::new(schedule.len());
        let live = weights
            .iter()
            .map(|&w| Peer {
                weight: i64::from(w),
                effective: i64::from(w),
                current: 0,
            })
            .collect();
        Self {
            schedule,
            cursor,
            degraded: AtomicBool::new(false),
            live: Mutex::new(live),
            max_fails: i64::from(config.ejection.consecutive_failures.max(1)),
        }
    }

    /// nginx's algorithm on the live state, raising de-weighted peers by one per pick.
    #[cold]
    fn pick_live(&self, backends: &[Arc<Backend>], filter: Filter) -> Option<usize> {
        let mut peers = self.live.lock();
        let mut total = 0i64;
        let mut best: Option<usize> = None;
        for (i, b) in backends.iter().enumerate().take(peers.len()) {
            if !filter.admits(b) {
                continue;
            }
            let p = &mut peers[i];
            p.current += p.effective;
            total += p.effective;
            if p.effective < p.weight {
                p.effective += 1;
            }
            let current = p.current;
            match best {
                Some(j) if peers[j].current >= current => {}
                _ => best = Some(i),
            }
        }
        if let Some(j) = best {
            peers[j].current -= total;
        }
        if peers.iter().all(|p| p.effective >= p.weight) {
            self.degraded.store(false, Relaxed);
        }
        best
    }
}

impl Strategy for WeightedRoundRobin {
    fn kind(&self) -> StrategyKind {
        StrategyKind::WeightedRoundRobin
    }

    #[inline]
    fn pick(&self, backends: &[Arc<Backend>], _: &RequestCtx<'_>, filter: Filter) -> Option<usize> {
        if self.degraded.load(Relaxed) {
            return self.pick_live(backends, filter);
        }
        let i = self.schedule[self.cursor.next()] as usize;
        if backends.get(i).is_some_and(|b| filter.admits(b)) {
            return Some(i);
        }
        // The scheduled peer is down or ejected: nginx would run its algorithm over the
        // remaining peers, so do exactly that (on the locked live state).
        self.pick_live(backends, filter)
    }

    fn on_failure(&self, index: usize) {
        let mut peers = self.live.lock();
        if let Some(p) = peers.get_mut(index) {
            p.effective = (p.effective - p.weight / self.max_fails).max(0);
            if p.effective < p.weight {
                self.degraded.store(true, Relaxed);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::strategy::testing::backends;

    fn names(seq: &[u32]) -> String {
        seq.iter().map(|&i| (b'a' + i as u8) as char).collect()
    }

    fn picks(w: &WeightedRoundRobin, bs: &[Arc<Backend>], n: usize) -> Vec<u32> {
        let ctx = RequestCtx::new();
        (0..n)
            .map(|_| w.pick(bs, &ctx, Filter::Available).unwrap() as u32)
            .collect()
    }

    #[test]
    fn nginx_sequences() {
        assert_eq!(names(&smooth_schedule(&[5, 1, 1])), "aabacaa");
        assert_eq!(names(&smooth_schedule(&[1, 1, 1])), "abc");
        assert_eq!(names(&smooth_schedule(&[2, 1])), "aba");
        assert_eq!(names(&smooth_schedule(&[3, 2])), "ababa");
        assert_eq!(names(&smooth_schedule(&[4, 2, 1])), "abacaba");
    }

    #[test]
    fn exact_shares_over_a_cycle() {
        for weights in [
            vec![5u32, 1, 1],
            vec![3, 7, 2, 9],
            vec![1; 10],
            vec![100, 1],
            vec![6, 4],
        ] {
            let (bs, _c) = backends(&weights);
            let cfg = BalancerConfig::default();
            let w = WeightedRoundRobin::new(&bs, &cfg);
            let reduced = schedule_weights(&weights);
            let total: u64 = reduced.iter().sum();
            let mut counts = vec![0u64; weights.len()];
            for i in picks(&w, &bs, 3 * total as usize) {
                counts[i as usize] += 1;
            }
            let expect: Vec<u64> = reduced.iter().map(|w| 3 * w).collect();
            assert_eq!(counts, expect, "weights {weights:?}");
        }
    }

    #[test]
    fn strategy_follows_the_schedule() {
        let (bs, _c) = backends(&[5, 1, 1]);
        let w = WeightedRoundRobin::new(&bs, &BalancerConfig::default());
        assert_eq!(names(&picks(&w, &bs, 14)), "aabacaaaabacaa");
    }

    #[test]
    fn large_weights_are_scaled_into_the_cap() {
        let w = schedule_weights(&[1_000_000, 500_000, 3]);
        assert!(w.iter().sum::<u64>() <= MAX_SCHEDULE + 3);
        assert_eq!(w[2], 1);
        assert_eq!(schedule_weights(&[10, 20, 30]), vec![1, 2, 3]);
        // Many backends of unequal weight: the build stays within its work budget.
        let many: Vec<u32> = (0..20_000).map(|i| 1 + i % 7).collect();
        let w = schedule_weights(&many);
        assert_eq!(smooth_schedule(&w).len() as u64, w.iter().sum::<u64>());
        assert_eq!(smooth_schedule(&[1; 5]), vec![0, 1, 2, 3, 4]);
    }

    #[test]
    fn failed_peer_is_deweighted_then_recovers() {
        // max_fails 1 (as nginx's default): a failure drops the effective weight to 0.
        let (bs, _c) = backends(&[5, 1, 1]);
        let mut cfg = BalancerConfig::default();
        cfg.ejection.consecutive_failures = 1;
        let w = WeightedRoundRobin::new(&bs, &cfg);
        w.on_failure(0);
        let seq = picks(&w, &bs, 40);
        // Right after the failure, `a` is avoided ...
        assert_ne!(seq[0], 0);
        let early_a = seq[..7].iter().filter(|&&i| i == 0).count();
        assert!(early_a < 5, "{}", names(&seq));
        // ... and it is back to its full share once recovered (lock-free path again).
        assert!(!w.degraded.load(Relaxed));
        let late = picks(&w, &bs, 70);
        assert_eq!(late.iter().filter(|&&i| i == 0).count(), 50);
    }

    #[test]
    fn unavailable_peer_is_skipped() {
        let (bs, _c) = backends(&[5, 1, 1]);
        let w = WeightedRoundRobin::new(&bs, &BalancerConfig::default());
        let p = crate::HealthPolicy { rise: 1, fall: 1 };
        bs[0].report_check(false, &p);
        let seq = picks(&w, &bs, 70);
        assert!(seq.iter().all(|&i| i != 0));
        let b = seq.iter().filter(|&&i| i == 1).count();
        assert!((25..=45).contains(&b), "b got {b} of 70");
    }
}
