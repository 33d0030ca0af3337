//! Health of one backend: active `Up`/`Down` with rise/fall, passive ejection with a capped, decaying doubling back-off.
use crate::clock::saturating_ns;
use crate::{EjectionPolicy, HealthPolicy};
use parking_lot::Mutex;
use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering::Relaxed};
use std::time::{Duration, Instant};

/// Health of a backend as seen by the balancer.
///
/// ```
/// use ringleader_balancer::Health;
/// assert_eq!(Health::Up.to_string(), "up");
/// assert_eq!(Health::Down.to_string(), "down");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Health {
    /// Taking traffic.
    Up,
    /// Failed `fall` consecutive active checks; back after `rise` passes.
    Down,
    /// Ejected by passive outlier detection until the given instant.
    Ejected {
        /// When the ejection ends.
        until: Instant,
    },
}

impl Health {
    /// `"up"`, `"down"` or `"ejected"`.
    pub const fn as_str(&self) -> &'static str {
        match self {
            Health::Up => "up",
            Health::Down => "down",
            Health::Ejected { .. } => "ejected",
        }
    }
}

impl fmt::Display for Health {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Counters of the slow (locked) paths: active checks and ejection back-off.
#[derive(Debug, Default)]
struct Slow {
    passes: u32,
    fails: u32,
    /// The back-off exponent: the next ejection lasts `base * 2^level` (capped). It
    /// grows by one per ejection and shrinks by one per `base` of healthy time since
    /// the previous ejection ended (see [`HealthCell::eject`]).
    level: u32,
    /// End of the previous ejection (ns since epoch): when it was scheduled to end,
    /// or earlier if it was lifted ([`HealthCell::uneject`]); 0 if none.
    last_until_ns: u64,
}

/// Lock-free readable health state; transitions take a small per-backend lock.
#[derive(Debug)]
#[repr(C)] // the atomic head (24 bytes) ends the backend's hot cache line
pub(crate) struct HealthCell {
    /// End of the current ejection in ns since epoch; 0 = not ejected.
    ejected_until_ns: AtomicU64,
    active_up: AtomicBool,
    consecutive_failures: AtomicU32,
    ejections: AtomicU64,
    slow: Mutex<Slow>,
}

/// What an ejection attempt did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Ejected {
    /// Now ejected for this long.
    For(Duration),
    /// Was already ejected.
    Already,
}

impl HealthCell {
    pub(crate) fn new() -> Self {
        Self {
            active_up: AtomicBool::new(true),
            ejected_until_ns: AtomicU64::new(0),
            consecutive_failures: AtomicU32::new(0),
            ejections: AtomicU64::new(0),
            slow: Mutex::new(Slow::default()),
        }
    }

    #[inline]
    pub(crate) fn active_up(&self) -> bool {
        self.active_up.load(Relaxed)
    }

    /// Raw end of ejection (0 = none); an expired value may linger until [`Self::expire`].
    #[inline]
    pub(crate) fn ejected_until_ns(&self) -> u64 {
        self.ejected_until_ns.load(Relaxed)
    }

    pub(crate) fn ejections(&self) -> u64 {
        self.ejections.load(Relaxed)
    }

    /// Clear an ejection that ended at or before `now_ns`; true if this call cleared it.
    pub(crate) fn expire(&self, until_ns: u64, now_ns: u64) -> bool {
        if until_ns == 0 || now_ns < until_ns {
            return false;
        }
        let cleared = self
            .ejected_until_ns
            .compare_exchange(until_ns, 0, Relaxed, Relaxed)
            .is_ok();
        if cleared {
            self.consecutive_failures.store(0, Relaxed);
        }
        cleared
    }

    /// Is the backend ejected at `now_ns`?
    pub(crate) fn is_ejected(&self, now_ns: u64) -> bool {
        let until = self.ejected_until_ns();
        until != 0 && now_ns < until
    }

    /// A request succeeded: reset the failure streak (without writing when already 0).
    #[inline]
    pub(crate) fn record_success(&self) {
        if self.consecutive_failures.load(Relaxed) != 0 {
            self.consecutive_failures.store(0, Relaxed);
        }
    }

    /// A request failed; returns the failure streak including this one.
    pub(crate) fn record_failure(&self) -> u32 {
        self.consecutive_failures
            .fetch_add(1, Relaxed)
            .saturating_add(1)
    }

    /// Progress of the active checks towards a change: `(passes, fails)` in a row
    /// counted so far. While up, `fails` counts towards `fall` (`passes` is 0);
    /// while down, `passes` counts towards `rise`. Both are 0 right after a change.
    pub(crate) fn streak(&self) -> (u32, u32) {
        let slow = self.slow.lock();
        (slow.passes, slow.fails)
    }

    /// Apply one active check result; returns the new active state if it changed.
    pub(crate) fn report_check(&self, ok: bool, policy: &HealthPolicy) -> Option<bool> {
        let mut slow = self.slow.lock();
        if self.active_up() {
            if ok {
                slow.fails = 0;
                return None;
            }
            slow.fails += 1;
            if slow.fails >= policy.fall {
                slow.fails = 0;
                slow.passes = 0;
                self.active_up.store(false, Relaxed);
                return Some(false);
            }
        } else {
            if !ok {
                slow.passes = 0;
                return None;
            }
            slow.passes += 1;
            if slow.passes >= policy.rise {
                slow.passes = 0;
                slow.fails = 0;
                self.active_up.store(true, Relaxed);
                return Some(true);
            }
        }
        None
    }

    /// Eject from `now_ns` on. The caller has checked the group's ejection allowance.
    ///
    /// The back-off multiplier decays while the backend stays healthy, as Envoy's
    /// outlier detection does: Envoy decrements a host's ejection-time multiplier at
    /// every `interval` sweep (10 s by default) that finds it healthy, so a host that
    /// stays healthy returns to `base_ejection_time` after about
    /// `max_ejection_time / base_ejection_time * interval` (Envoy docs, "Outlier
    /// detection", ejection algorithm step 3). Here the exponent drops by one for
    /// every `base_time` that passed since the previous ejection ended, so a backend
    /// that failed once long ago is not punished as a repeat offender, and one that
    /// fails again at once gets twice the time.
    pub(crate) fn eject(&self, now_ns: u64, policy: &EjectionPolicy) -> Ejected {
        let mut slow = self.slow.lock();
        if self.is_ejected(now_ns) {
            return Ejected::Already;
        }
        if slow.last_until_ns != 0 {
            let healthy = now_ns.saturating_sub(slow.last_until_ns);
            let periods = healthy / saturating_ns(policy.base_time).max(1);
            slow.level = slow
                .level
                .saturating_sub(u32::try_from(periods).unwrap_or(u32::MAX));
        }
        let time = policy.ejection_time(slow.level);
        slow.level = slow.level.saturating_add(1);
        let until = now_ns.saturating_add(saturating_ns(time)).max(1);
        slow.last_until_ns = until;
        self.ejected_until_ns.store(until, Relaxed);
        self.consecutive_failures.store(0, Relaxed);
        self.ejections.fetch_add(1, Relaxed);
        Ejected::For(time)
    }

    /// End an ejection early (an active check passed, or the backend served a
    /// request while ejected): true if it was ejected at `now_ns`. The back-off
    /// decay counts healthy time from now.
    pub(crate) fn uneject(&self, now_ns: u64) -> bool {
        let mut slow = self.slow.lock();
        if !self.is_ejected(now_ns) {
            return false;
        }
        slow.last_until_ns = now_ns.max(1);
        self.ejected_until_ns.store(0, Relaxed);
        self.consecutive_failures.store(0, Relaxed);
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: u64 = 1_000_000_000;

    #[test]
    fn fall_then_rise() {
        let h = HealthCell::new();
        let p = HealthPolicy { rise: 2, fall: 3 };
        assert_eq!(h.report_check(false, &p), None);
        assert_eq!(h.report_check(false, &p), None);
        // A pass in between resets the fall count.
        assert_eq!(h.report_check(true, &p), None);
        assert_eq!(h.report_check(false, &p), None);
        assert_eq!(h.report_check(false, &p), None);
        assert_eq!(h.report_check(false, &p), Some(false));
        assert!(!h.active_up());
        assert_eq!(h.report_check(true, &p), None);
        // A failure in between resets the rise count.
        assert_eq!(h.report_check(false, &p), None);
        assert_eq!(h.report_check(true, &p), None);
        assert_eq!(h.report_check(true, &p), Some(true));
        assert!(h.active_up());
    }

    #[test]
    fn streak_shows_progress_towards_rise_and_fall() {
        let h = HealthCell::new();
        let p = HealthPolicy { rise: 2, fall: 3 };
        assert_eq!(h.streak(), (0, 0));
        h.report_check(true, &p);
        assert_eq!(h.streak(), (0, 0), "passes while up count towards nothing");
        h.report_check(false, &p);
        h.report_check(false, &p);
        assert_eq!(h.streak(), (0, 2), "going down 2/3");
        h.report_check(false, &p);
        assert!(!h.active_up());
        assert_eq!(h.streak(), (0, 0), "a change starts over");
        h.report_check(true, &p);
        assert_eq!(h.streak(), (1, 0), "going up 1/2");
        h.report_check(false, &p);
        assert_eq!(
            h.streak(),
            (0, 0),
            "failures while down count towards nothing"
        );
    }

    #[test]
    fn ejection_doubles_caps_and_resets() {
        let h = HealthCell::new();
        let p = EjectionPolicy {
            consecutive_failures: 5,
            base_time: Duration::from_secs(10),
            max_time: Duration::from_secs(35),
            max_percent: 100,
        };
        let mut now = 100 * S;
        let mut times = Vec::new();
        for _ in 0..4 {
            match h.eject(now, &p) {
                Ejected::For(t) => times.push(t.as_secs()),
                Ejected::Already => panic!("was not ejected"),
            }
            assert!(h.is_ejected(now));
            assert_eq!(h.eject(now + 1, &p), Ejected::Already);
            let until = h.ejected_until_ns();
            assert!(!h.expire(until, until - 1));
            now = until;
            assert!(h.expire(until, now));
            assert!(!h.is_ejected(now));
        }
        assert_eq!(times, vec![10, 20, 35, 35]);
        assert_eq!(h.ejections(), 4);
        // The exponent is 4 now (10 s x 2^4, capped). Each base time (10 s) of health
        // undoes one doubling: after 29 s, two of them: 10 s x 2^2 = 40, capped at 35.
        let now = now + 29 * S;
        assert_eq!(h.eject(now, &p), Ejected::For(Duration::from_secs(35)));
        // Exponent 3 now; 25 s after that ejection ended, two steps down: 10 x 2^1.
        let now = h.ejected_until_ns() + 25 * S;
        assert_eq!(h.eject(now, &p), Ejected::For(Duration::from_secs(20)));
        // Healthy for a long time: back to the base time.
        let now = h.ejected_until_ns() + 1000 * S;
        assert_eq!(h.eject(now, &p), Ejected::For(Duration::from_secs(10)));
    }

    #[test]
    fn uneject_ends_an_ejection_and_starts_the_healthy_period() {
        let h = HealthCell::new();
        let p = EjectionPolicy {
            consecutive_failures: 5,
            base_time: Duration::from_secs(10),
            max_time: Duration::from_secs(80),
            max_percent: 100,
        };
        assert!(!h.uneject(S));
        assert_eq!(h.eject(S, &p), Ejected::For(Duration::from_secs(10)));
        assert_eq!(h.record_failure(), 1);
        assert!(h.uneject(2 * S));
        assert!(!h.is_ejected(2 * S));
        assert_eq!(h.record_failure(), 1, "the failure streak starts over");
        assert!(!h.uneject(3 * S), "not ejected any more");
        // Ejected again 5 s after it was lifted: less than a base time of health, so
        // the time doubles.
        assert_eq!(h.eject(7 * S, &p), Ejected::For(Duration::from_secs(20)));
        assert!(h.uneject(8 * S));
        // 10 s after the lift: one step back.
        assert_eq!(h.eject(18 * S, &p), Ejected::For(Duration::from_secs(20)));
    }
}
