//! Peak-sensitive EWMA of response time in two atomics (Finagle's / Linkerd's "peak EWMA").
//!
//! A slower sample replaces the estimate at once; a faster one pulls it down with
//! weight `1 - exp(-elapsed / decay)`, so the estimate forgets a slow period over the
//! decay window, measured in time rather than samples. Reading applies the same decay
//! toward zero for the time since the last sample, which is what makes an idle slow
//! backend look attractive again and get re-probed (tower's `PeakEwma::update_estimate`).
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

/// Bit pattern meaning "no sample yet" (a NaN no arithmetic produces).
const NONE: u64 = u64::MAX;

/// Lock-free peak EWMA; time is nanoseconds since the balancer's epoch.
#[derive(Debug)]
pub(crate) struct PeakEwma {
    /// `f64` estimate in nanoseconds, or [`NONE`].
    bits: AtomicU64,
    /// When the estimate was last updated.
    at_ns: AtomicU64,
}

/// `exp(-x)` for `x >= 0`, with the first-order form where it is accurate to 1e-4
/// (skips the libm call for the common case of frequent samples).
#[inline]
fn decay_factor(elapsed_ns: u64, decay_ns: f64) -> f64 {
    let x = elapsed_ns as f64 / decay_ns;
    if x < 0.0125 {
        1.0 - x
    } else {
        (-x).exp()
    }
}

impl PeakEwma {
    pub(crate) fn new() -> Self {
        Self {
            bits: AtomicU64::new(NONE),
            at_ns: AtomicU64::new(0),
        }
    }

    /// Fold in a response-time sample observed at `now_ns`.
    pub(crate) fn observe(&self, rtt_ns: f64, now_ns: u64, decay_ns: f64) {
        let mut cur = self.bits.load(Relaxed);
        loop {
            let at = self.at_ns.load(Relaxed);
            let next = if cur == NONE {
                rtt_ns
            } else {
                let est = f64::from_bits(cur);
                if rtt_ns >= est {
                    rtt_ns
                } else {
                    let w = decay_factor(now_ns.saturating_sub(at), decay_ns);
                    est * w + rtt_ns * (1.0 - w)
                }
            };
            // Relaxed is enough: the estimate is a heuristic and the two words need not
            // be read together exactly (a racing reader sees a slightly stale pair).
            match self
                .bits
                .compare_exchange_weak(cur, next.to_bits(), Relaxed, Relaxed)
            {
                Ok(_) => {
                    self.at_ns.fetch_max(now_ns, Relaxed);
                    return;
                }
                Err(actual) => cur = actual,
            }
        }
    }

    /// The estimate at `now_ns`, decayed toward zero since the last sample; `None` before any sample.
    #[inline]
    pub(crate) fn estimate(&self, now_ns: u64, decay_ns: f64) -> Option<f64> {
        let cur = self.bits.load(Relaxed);
        if cur == NONE {
            return None;
        }
        let at = self.at_ns.load(Relaxed);
        Some(f64::from_bits(cur) * decay_factor(now_ns.saturating_sub(at), decay_ns))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: f64 = 1e6;
    const DECAY: f64 = 10_000.0 * MS; // 10 s

    #[test]
    fn peaks_at_once_and_decays_slowly() {
        let e = PeakEwma::new();
        assert_eq!(e.estimate(0, DECAY), None);
        e.observe(10.0 * MS, 0, DECAY);
        assert_eq!(e.estimate(0, DECAY), Some(10.0 * MS));
        // A slower sample is taken at once.
        e.observe(200.0 * MS, 1_000_000, DECAY);
        assert!((e.estimate(1_000_000, DECAY).unwrap() - 200.0 * MS).abs() < 1.0);
        // A faster sample 1 s later moves it by 1 - e^-0.1 ~ 9.5 % of the gap.
        let t = 1_000_000 + 1_000 * 1_000_000;
        e.observe(10.0 * MS, t, DECAY);
        let est = e.estimate(t, DECAY).unwrap();
        let expect = 200.0 * MS * (-0.1f64).exp() + 10.0 * MS * (1.0 - (-0.1f64).exp());
        assert!((est - expect).abs() / expect < 1e-9, "{est} vs {expect}");
    }

    #[test]
    fn idle_estimate_decays_toward_zero() {
        let e = PeakEwma::new();
        e.observe(100.0 * MS, 0, DECAY);
        let later = e.estimate(30_000_000_000, DECAY).unwrap();
        assert!((later - 100.0 * MS * (-3.0f64).exp()).abs() < 1.0);
    }

    #[test]
    fn small_step_approximation_is_close() {
        for ns in [0u64, 1_000, 100_000_000, 124_000_000, 126_000_000] {
            let exact = (-(ns as f64) / DECAY).exp();
            assert!((decay_factor(ns, DECAY) - exact).abs() < 1e-4);
        }
    }
}
