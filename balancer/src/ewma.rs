//! Peak-sensitive EWMA of response time (Finagle's / Linkerd's "peak EWMA"), kept in log space.
//!
//! A slower sample replaces the estimate at once; a faster one pulls it down with
//! weight `1 - exp(-elapsed / decay)`, so the estimate forgets a slow period over the
//! decay window, measured in time rather than samples. Between samples the estimate
//! decays toward zero (tower's `PeakEwma`), which is what makes an idle slow backend
//! look attractive again and get re-probed. Before the first sample the estimate is
//! the configured default RTT, decaying the same way (as tower does).
//!
//! Storage: instead of the estimate `e` at time `t` we keep `key = ln(e) + t / decay`,
//! the log of the estimate projected back to the epoch. The estimate now is
//! `exp(key - now / decay)`, and since `now / decay` is the same for every backend,
//! comparing decayed estimates is comparing keys: the hot path needs neither the
//! clock nor `exp`.
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};

/// Lock-free peak EWMA; time is nanoseconds since the balancer's epoch.
#[derive(Debug)]
#[repr(C)] // `key` first: part of the backend's hot cache line
pub(crate) struct PeakEwma {
    /// `ln(estimate_ns) + at_ns / decay_ns` as `f64` bits.
    key: AtomicU64,
    /// When the estimate was last updated.
    at_ns: AtomicU64,
    sampled: AtomicBool,
}

#[inline]
fn key_of(estimate_ns: f64, at_ns: u64, decay_ns: f64) -> f64 {
    estimate_ns.max(1.0).ln() + at_ns as f64 / decay_ns
}

impl PeakEwma {
    /// An estimate of `default_ns` at `at_ns`.
    pub(crate) fn new(default_ns: f64, at_ns: u64, decay_ns: f64) -> Self {
        Self {
            key: AtomicU64::new(key_of(default_ns, at_ns, decay_ns).to_bits()),
            at_ns: AtomicU64::new(at_ns),
            sampled: AtomicBool::new(false),
        }
    }

    /// The comparison key (larger = slower), valid across backends sharing an epoch and decay.
    #[inline]
    pub(crate) fn key(&self) -> f64 {
        f64::from_bits(self.key.load(Relaxed))
    }

    /// Has any sample been recorded?
    pub(crate) fn sampled(&self) -> bool {
        self.sampled.load(Relaxed)
    }

    /// The estimate at `now_ns` in nanoseconds (the decayed default before any sample).
    pub(crate) fn estimate(&self, now_ns: u64, decay_ns: f64) -> f64 {
        (self.key() - now_ns as f64 / decay_ns).exp()
    }

    /// Fold in a response-time sample observed at `now_ns`.
    pub(crate) fn observe(&self, rtt_ns: f64, now_ns: u64, decay_ns: f64) {
        let rtt = rtt_ns.max(1.0);
        let first = !self.sampled.load(Relaxed);
        let mut cur = self.key.load(Relaxed);
        loop {
            let decayed = (f64::from_bits(cur) - now_ns as f64 / decay_ns).exp();
            let next = if first || rtt >= decayed {
                rtt
            } else {
                let elapsed = now_ns.saturating_sub(self.at_ns.load(Relaxed)) as f64;
                let w = (-elapsed / decay_ns).exp();
                decayed + rtt * (1.0 - w)
            };
            // Relaxed is enough: the estimate is a heuristic and the words need not be
            // read together exactly (a racing reader sees a slightly stale pair).
            match self.key.compare_exchange_weak(
                cur,
                key_of(next, now_ns, decay_ns).to_bits(),
                Relaxed,
                Relaxed,
            ) {
                Ok(_) => break,
                Err(actual) => cur = actual,
            }
        }
        self.at_ns.fetch_max(now_ns, Relaxed);
        if first {
            self.sampled.store(true, Relaxed);
        }
    }

    /// Fold in a failed request: it counts as at least as slow as twice the current
    /// estimate (the failed attempt plus the retry it causes elsewhere), capped at
    /// `cap_ns` unless the estimate is already higher, and at least as slow as the time
    /// it took (`latency_ns`, when the caller knows it). A peak EWMA takes a slower
    /// sample at once, so a failure never makes a backend look faster.
    ///
    /// Before any sample, a failure of unknown duration leaves the estimate alone (the
    /// backend stays "unmeasured", which the cost functions penalize while it has a
    /// request in flight); one of known duration becomes its first sample.
    pub(crate) fn penalize(
        &self,
        latency_ns: Option<f64>,
        now_ns: u64,
        decay_ns: f64,
        cap_ns: f64,
    ) {
        let took = latency_ns.unwrap_or(0.0);
        if !self.sampled() {
            if latency_ns.is_some() {
                self.observe(took, now_ns, decay_ns);
            }
            return;
        }
        let now = self.estimate(now_ns, decay_ns);
        let penalty = (2.0 * now).min(cap_ns.max(now));
        self.observe(took.max(penalty), now_ns, decay_ns);
    }

    /// Re-express the key for a new decay window (or a new default RTT before any sample).
    pub(crate) fn reconfigure(&self, now_ns: u64, old_decay: f64, new_decay: f64, default_ns: f64) {
        let estimate = if self.sampled() {
            self.estimate(now_ns, old_decay)
        } else {
            default_ns
        };
        self.key
            .store(key_of(estimate, now_ns, new_decay).to_bits(), Relaxed);
        self.at_ns.fetch_max(now_ns, Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: f64 = 1e6;
    const DECAY: f64 = 10_000.0 * MS; // 10 s

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() <= b.abs() * 1e-9 + 1e-6
    }

    #[test]
    fn peaks_at_once_and_decays_slowly() {
        let e = PeakEwma::new(30.0 * MS, 0, DECAY);
        assert!(!e.sampled());
        assert!(close(e.estimate(0, DECAY), 30.0 * MS));
        // The first sample replaces the default, even when faster.
        e.observe(10.0 * MS, 0, DECAY);
        assert!(close(e.estimate(0, DECAY), 10.0 * MS));
        // A slower sample is taken at once.
        e.observe(200.0 * MS, 1_000_000, DECAY);
        assert!(close(e.estimate(1_000_000, DECAY), 200.0 * MS));
        // A faster sample 1 s later moves the decayed estimate by 1 - e^-0.1 of the rest.
        let t = 1_000_000 + 1_000 * 1_000_000;
        e.observe(10.0 * MS, t, DECAY);
        let d = (-0.1f64).exp();
        let expect = 200.0 * MS * d + 10.0 * MS * (1.0 - d);
        assert!(
            close(e.estimate(t, DECAY), expect),
            "{}",
            e.estimate(t, DECAY)
        );
    }

    #[test]
    fn idle_estimate_decays_toward_zero_and_keys_order_decayed_estimates() {
        let slow = PeakEwma::new(30.0 * MS, 0, DECAY);
        slow.observe(100.0 * MS, 0, DECAY);
        assert!(close(
            slow.estimate(30_000_000_000, DECAY),
            100.0 * MS * (-3.0f64).exp()
        ));
        // 30 s later a 10 ms sample elsewhere is slower than the idle 100 ms one (~5 ms).
        let fresh = PeakEwma::new(30.0 * MS, 0, DECAY);
        fresh.observe(10.0 * MS, 30_000_000_000, DECAY);
        assert!(fresh.key() > slow.key());
        fresh.observe(10.0 * MS, 30_000_000_000, DECAY);
        assert!(fresh.key() > slow.key());
    }

    #[test]
    fn reconfigure_keeps_the_current_estimate() {
        let e = PeakEwma::new(30.0 * MS, 0, DECAY);
        e.observe(50.0 * MS, 0, DECAY);
        let now = 5_000_000_000;
        let before = e.estimate(now, DECAY);
        e.reconfigure(now, DECAY, DECAY / 10.0, 30.0 * MS);
        assert!(close(e.estimate(now, DECAY / 10.0), before));
        let unsampled = PeakEwma::new(30.0 * MS, 0, DECAY);
        unsampled.reconfigure(now, DECAY, DECAY, 5.0 * MS);
        assert!(close(unsampled.estimate(now, DECAY), 5.0 * MS));
    }
}
