//! The rise/fall detector: a check every interval, down after `fall` consecutive failures, up after `rise` passes (HAProxy's semantics, as [`Balancer::report_check`](crate::Balancer::report_check) applies them).
use super::{Action, Detector, DetectorStats, Jitter};
use crate::{Error, HealthPolicy};
use std::time::{Duration, Instant};

/// Settings of a [`RiseFall`] detector.
///
/// ```
/// use ringleader_balancer::detector::RiseFallConfig;
/// use std::time::Duration;
/// let c = RiseFallConfig::default();
/// assert_eq!((c.interval, c.policy.rise, c.policy.fall), (Duration::from_secs(2), 2, 3));
/// assert!(c.validate().is_ok());
/// ```
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RiseFallConfig {
    /// Time between the end of one check and the start of the next (plus jitter).
    pub interval: Duration,
    /// Extra random delay of each check, uniform in `[0, jitter]`.
    pub jitter: Duration,
    /// How long a check may take before it counts as failed.
    pub timeout: Duration,
    /// Consecutive results needed to change state.
    pub policy: HealthPolicy,
}

impl Default for RiseFallConfig {
    /// HAProxy's `inter 2s`, `rise 2`, `fall 3`; a 1 s timeout (the proxy's
    /// `[health]` default); jitter a tenth of the interval, as the proxy's check loop adds.
    fn default() -> Self {
        Self {
            interval: Duration::from_secs(2),
            jitter: Duration::from_millis(200),
            timeout: Duration::from_secs(1),
            policy: HealthPolicy::default(),
        }
    }
}

impl RiseFallConfig {
    /// Check the ranges: a positive interval, `rise` and `fall` at least 1.
    pub fn validate(&self) -> Result<(), Error> {
        let bad = |field, reason: &str| {
            Err(Error::InvalidConfig {
                field,
                reason: reason.to_owned(),
            })
        };
        if self.interval.is_zero() {
            return bad("interval", "must be more than 0");
        }
        if self.timeout.is_zero() {
            return bad("timeout", "must be more than 0");
        }
        if self.policy.rise == 0 {
            return bad("rise", "must be at least 1");
        }
        if self.policy.fall == 0 {
            return bad("fall", "must be at least 1");
        }
        Ok(())
    }
}

/// Rise/fall over periodic checks; passive failures do not move it.
///
/// ```
/// use ringleader_balancer::detector::{Action, Detector, RiseFall, RiseFallConfig};
/// use std::time::{Duration, Instant};
/// let t0 = Instant::now();
/// let mut d = RiseFall::new(RiseFallConfig { jitter: Duration::ZERO, ..Default::default() }, t0, 1);
/// assert!(matches!(d.next_action(t0), Action::Check { confirm: false, .. }));
/// for _ in 0..3 {
///     d.on_check(false, Duration::from_secs(1), t0);
/// }
/// assert_eq!(d.next_action(t0), Action::MarkDown);
/// assert!(!d.is_up());
/// ```
#[derive(Debug, Clone)]
pub struct RiseFall {
    config: RiseFallConfig,
    jitter: Jitter,
    up: bool,
    passes: u32,
    fails: u32,
    next_check: Instant,
    pending: Option<Action>,
    stats: DetectorStats,
}

impl RiseFall {
    /// A detector holding the backend up, whose first check comes within `jitter` of
    /// `now`; `seed` drives the jitter.
    pub fn new(config: RiseFallConfig, now: Instant, seed: u64) -> Self {
        let mut jitter = Jitter::new(config.jitter, seed);
        let first = now + jitter.next();
        Self {
            config,
            jitter,
            up: true,
            passes: 0,
            fails: 0,
            next_check: first,
            pending: None,
            stats: DetectorStats::default(),
        }
    }

    /// [`RiseFall::new`], resuming from a state counted elsewhere (the balancer's
    /// [`Backend::health`](crate::Backend::health) and
    /// [`Backend::check_streak`](crate::Backend::check_streak)): `up`, and the
    /// `(passes, fails)` in a row towards the next change. A restarted check task so
    /// goes on where the balancer stands instead of from a fresh "up, 0 failures".
    ///
    /// ```
    /// use ringleader_balancer::detector::{Action, Detector, RiseFall, RiseFallConfig};
    /// use std::time::{Duration, Instant};
    /// let t0 = Instant::now();
    /// let c = RiseFallConfig { jitter: Duration::ZERO, ..Default::default() }; // fall = 3
    /// let mut d = RiseFall::resume(c, t0, 1, true, (0, 2));
    /// d.on_check(false, Duration::from_millis(1), t0);
    /// assert_eq!(d.next_action(t0), Action::MarkDown);
    /// ```
    pub fn resume(
        config: RiseFallConfig,
        now: Instant,
        seed: u64,
        up: bool,
        (passes, fails): (u32, u32),
    ) -> Self {
        let mut d = Self::new(config, now, seed);
        d.up = up;
        if up {
            d.fails = fails.min(config.policy.fall.saturating_sub(1));
        } else {
            d.passes = passes.min(config.policy.rise.saturating_sub(1));
        }
        d
    }
}

impl Detector for RiseFall {
    fn next_action(&mut self, now: Instant) -> Action {
        if let Some(a) = self.pending.take() {
            return a;
        }
        if now >= self.next_check {
            Action::Check {
                confirm: false,
                timeout: self.config.timeout,
            }
        } else {
            Action::Wait(self.next_check)
        }
    }

    fn on_check(&mut self, ok: bool, _latency: Duration, now: Instant) {
        self.stats.checks += 1;
        let p = self.config.policy;
        if self.up {
            if ok {
                self.fails = 0;
            } else {
                if self.fails == 0 {
                    self.stats.suspicions += 1;
                }
                self.fails += 1;
                if self.fails >= p.fall {
                    (self.up, self.fails, self.passes) = (false, 0, 0);
                    self.stats.downs += 1;
                    self.pending = Some(Action::MarkDown);
                }
            }
        } else if ok {
            self.passes += 1;
            if self.passes >= p.rise {
                (self.up, self.fails, self.passes) = (true, 0, 0);
                self.stats.ups += 1;
                self.pending = Some(Action::MarkUp);
            }
        } else {
            self.passes = 0;
        }
        self.next_check = now + self.config.interval + self.jitter.next();
    }

    fn on_passive_failure(&mut self, _now: Instant) {}

    fn is_up(&self) -> bool {
        self.up
    }

    fn suspicion(&self, _now: Instant) -> f64 {
        if self.up {
            f64::from(self.fails) / f64::from(self.config.policy.fall.max(1))
        } else {
            1.0
        }
    }

    fn stats(&self) -> DetectorStats {
        self.stats
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(rise: u32, fall: u32) -> RiseFallConfig {
        RiseFallConfig {
            interval: Duration::from_secs(2),
            jitter: Duration::ZERO,
            timeout: Duration::from_secs(1),
            policy: HealthPolicy { rise, fall },
        }
    }

    #[test]
    fn matches_the_balancers_rise_fall() {
        let t0 = Instant::now();
        let mut d = RiseFall::new(cfg(2, 3), t0, 0);
        let mut now = t0;
        let mut step = |d: &mut RiseFall, ok: bool| {
            assert!(matches!(
                d.next_action(now),
                Action::Check { confirm: false, .. }
            ));
            d.on_check(ok, Duration::from_millis(1), now);
            let a = d.next_action(now);
            now += Duration::from_secs(2);
            a
        };
        let wait = |a: Action| matches!(a, Action::Wait(_));
        // Same sequence as health.rs's fall_then_rise.
        assert!(wait(step(&mut d, false)));
        assert!(wait(step(&mut d, false)));
        assert!(wait(step(&mut d, true)));
        assert!(wait(step(&mut d, false)));
        assert!(wait(step(&mut d, false)));
        assert_eq!(step(&mut d, false), Action::MarkDown);
        assert!(!d.is_up());
        assert!(wait(step(&mut d, true)));
        assert!(wait(step(&mut d, false)));
        assert!(wait(step(&mut d, true)));
        assert_eq!(step(&mut d, true), Action::MarkUp);
        assert!(d.is_up());
        let s = d.stats();
        assert_eq!((s.checks, s.suspicions, s.downs, s.ups), (10, 2, 1, 1));
    }

    #[test]
    fn checks_come_every_interval_after_the_last_one_ended() {
        let t0 = Instant::now();
        let mut d = RiseFall::new(cfg(2, 3), t0, 0);
        let done = t0 + Duration::from_millis(700);
        d.on_check(true, Duration::from_millis(700), done);
        assert_eq!(
            d.next_action(done),
            Action::Wait(done + Duration::from_secs(2))
        );
        assert!(RiseFallConfig {
            interval: Duration::ZERO,
            ..cfg(1, 1)
        }
        .validate()
        .is_err());
        assert!(cfg(0, 1).validate().is_err());
        assert!(cfg(1, 0).validate().is_err());
    }
}
