//! The φ accrual failure detector (Hayashibara et al., 2004) over the arrival times of passing checks, with confirmation probes before a backend is marked down.
//!
//! φ is `-log10(1 - F(silence))`, where `F` is the cumulative distribution of a
//! normal distribution whose mean and standard deviation are estimated from the
//! recent intervals between passing checks ("The φ Accrual Failure Detector",
//! Hayashibara, Défago, Yared, Katayama, JAIST IS-RR-2004-010). As Akka's
//! `PhiAccrualFailureDetector` (akka-remote) does, `F` is the logistic
//! approximation `1 / (1 + exp(-y (1.5976 + 0.070566 y²)))` with
//! `y = (silence - mean) / std_dev` (Bowling et al., "A logistic approximation to
//! the cumulative normal distribution", 2009; error below 0.00014), the standard
//! deviation is at least `min_std_dev`, `acceptable_pause` is added to the mean,
//! the history starts from two samples `estimate ± estimate / 4`, and an interval
//! is only recorded when the heartbeat arrived with φ under the threshold (a long
//! pause must not skew the statistics). The code here is written from those
//! formulas, not copied.
use super::{Action, Detector, DetectorStats, Jitter};
use crate::Error;
use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// Settings of an [`Accrual`] detector. Defaults marked "Akka" are
/// `akka.cluster.failure-detector`'s in Akka's `reference.conf`.
///
/// ```
/// use ringleader_balancer::detector::AccrualConfig;
/// use std::time::Duration;
/// let c = AccrualConfig::default();
/// assert_eq!(c.threshold, 8.0);
/// assert_eq!(c.min_std_dev, Duration::from_millis(100));
/// assert_eq!(c.window, 1000);
/// assert!(c.validate().is_ok());
/// ```
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AccrualConfig {
    /// Time between the end of one regular check and the start of the next (plus
    /// jitter): the heartbeat period. Default 2 s, as rise/fall's.
    pub interval: Duration,
    /// Extra random delay of each regular check, uniform in `[0, jitter]`. Default 200 ms.
    pub jitter: Duration,
    /// How long a regular check may take before it counts as failed. Default 1 s,
    /// as rise/fall's.
    pub timeout: Duration,
    /// Shortest timeout of a confirmation probe. A probe waits for the latency that
    /// φ would find as improbable as the threshold, judged on the latencies of
    /// passing checks (their mean plus the threshold's standardised distance times
    /// their standard deviation), but at least this long and at most `timeout`.
    /// Default 250 ms.
    pub probe_timeout: Duration,
    /// Suspect the backend once φ reaches this. Default 8.0 (Akka; Cassandra's
    /// `phi_convict_threshold` is 8 too): a silence that long would happen about
    /// once in 10⁸ intervals if the history's distribution held.
    pub threshold: f64,
    /// Floor of the standard deviation, so a perfectly regular history does not make
    /// φ shoot up at the first late millisecond. Default 100 ms (Akka).
    pub min_std_dev: Duration,
    /// Added to the mean interval: silence accepted before φ starts to grow. Akka's
    /// default is 3 s for its 1 s heartbeats; here the confirmation probes absorb
    /// pauses instead, so the default is 0.
    pub acceptable_pause: Duration,
    /// Intervals kept in the history. Default 1000 (Akka's `max-sample-size`).
    pub window: usize,
    /// Quick probes that must all fail, once suspected, before the backend is marked
    /// down; 0 marks it down as soon as φ reaches the threshold. Default 3.
    pub confirm: u32,
    /// Time between the end of a failed probe and the next one. Default 250 ms.
    pub confirm_interval: Duration,
    /// The interval the history starts from, as two samples `estimate ± estimate / 4`
    /// (Akka's `heartbeat-interval` bootstrap); set it near `interval`. Default 2 s.
    pub first_heartbeat_estimate: Duration,
    /// Consecutive passing checks that bring a down backend up. Default 2 (as rise/fall).
    pub rise: u32,
}

impl Default for AccrualConfig {
    fn default() -> Self {
        Self {
            interval: Duration::from_secs(2),
            jitter: Duration::from_millis(200),
            timeout: Duration::from_secs(1),
            probe_timeout: Duration::from_millis(250),
            threshold: 8.0,
            min_std_dev: Duration::from_millis(100),
            acceptable_pause: Duration::ZERO,
            window: 1000,
            confirm: 3,
            confirm_interval: Duration::from_millis(250),
            first_heartbeat_estimate: Duration::from_secs(2),
            rise: 2,
        }
    }
}

impl AccrualConfig {
    /// Check the ranges: threshold in (0, 300], positive interval, standard deviation,
    /// estimate and window, `rise` at least 1.
    pub fn validate(&self) -> Result<(), Error> {
        let bad = |field, reason: &str| {
            Err(Error::InvalidConfig {
                field,
                reason: reason.to_owned(),
            })
        };
        if !(self.threshold > 0.0 && self.threshold <= 300.0) {
            return bad("threshold", "must be more than 0 and at most 300");
        }
        if self.interval.is_zero() {
            return bad("interval", "must be more than 0");
        }
        if self.timeout.is_zero() {
            return bad("timeout", "must be more than 0");
        }
        if self.probe_timeout.is_zero() || self.probe_timeout > self.timeout {
            return bad("probe_timeout", "must be more than 0 and at most timeout");
        }
        if self.min_std_dev.is_zero() {
            return bad("min_std_dev", "must be more than 0");
        }
        if self.first_heartbeat_estimate.is_zero() {
            return bad("first_heartbeat_estimate", "must be more than 0");
        }
        if self.window == 0 {
            return bad("window", "must be at least 1");
        }
        if self.rise == 0 {
            return bad("rise", "must be at least 1");
        }
        Ok(())
    }
}

/// φ of a silence given the mean and standard deviation of the intervals:
/// `-log10(1 - F(silence))` with `F` the logistic approximation of the normal
/// distribution (see the module's sources). Monotone: it grows with `silence`.
///
/// ```
/// use ringleader_balancer::detector::phi;
/// use std::time::Duration;
/// let (mean, sd) = (Duration::from_secs(2), Duration::from_millis(100));
/// assert!(phi(Duration::from_secs(2), mean, sd) < 0.5);
/// assert!(phi(Duration::from_millis(2600), mean, sd) > 8.0);
/// ```
pub fn phi(silence: Duration, mean: Duration, std_dev: Duration) -> f64 {
    let sd = std_dev.as_secs_f64().max(1e-9);
    phi_of_y((silence.as_secs_f64() - mean.as_secs_f64()) / sd)
}

/// φ as a function of the standardised silence `y`.
///
/// `1 - F = e / (1 + e)` with `e = exp(-z)`, `z = y (1.5976 + 0.070566 y²)`, so
/// `φ = log10(1 + exp(z)) = softplus(z) / ln 10`, computed without overflow for
/// any `z` (Akka evaluates the same quantity in two branches for the same reason).
fn phi_of_y(y: f64) -> f64 {
    let z = y * (1.5976 + 0.070566 * y * y);
    (z.max(0.0) + (-z.abs()).exp().ln_1p()) / std::f64::consts::LN_10
}

/// The standardised silence at which φ reaches `threshold` (φ is increasing in `y`).
fn y_at(threshold: f64) -> f64 {
    let (mut lo, mut hi) = (-60.0f64, 60.0f64);
    for _ in 0..100 {
        let mid = 0.5 * (lo + hi);
        if phi_of_y(mid) < threshold {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    hi
}

/// The last `window` intervals (seconds), with running sums for the mean and variance.
#[derive(Debug, Clone)]
struct History {
    window: usize,
    intervals: VecDeque<f64>,
    sum: f64,
    sum_sq: f64,
}

impl History {
    fn new(window: usize) -> Self {
        Self {
            window: window.max(1),
            intervals: VecDeque::with_capacity(window.clamp(1, 1024)),
            sum: 0.0,
            sum_sq: 0.0,
        }
    }

    /// A history bootstrapped with two samples `estimate ± estimate / 4` (Akka's `firstHeartbeat`).
    fn bootstrapped(window: usize, estimate: Duration) -> Self {
        let mut h = Self::new(window);
        let mean = estimate.as_secs_f64();
        h.push(mean - mean / 4.0);
        h.push(mean + mean / 4.0);
        h
    }

    fn push(&mut self, x: f64) {
        if self.intervals.len() >= self.window {
            if let Some(old) = self.intervals.pop_front() {
                self.sum -= old;
                self.sum_sq -= old * old;
            }
        }
        self.intervals.push_back(x);
        self.sum += x;
        self.sum_sq += x * x;
    }

    fn mean(&self) -> f64 {
        self.sum / self.intervals.len().max(1) as f64
    }

    fn std_dev(&self) -> f64 {
        let m = self.mean();
        (self.sum_sq / self.intervals.len().max(1) as f64 - m * m)
            .max(0.0)
            .sqrt()
    }
}

/// What the caller is running: a regular check or a confirmation probe (and, as
/// the reference point of the silence before any check passed, the start).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Regular,
    Probe,
    Start,
}

/// The confirmation phase of a suspected backend.
#[derive(Debug, Clone, Copy)]
struct Confirming {
    failed: u32,
    next_probe: Instant,
}

/// A φ accrual detector with confirmation probes (see the [module](super) docs for the loop).
///
/// Heartbeats are passing checks (regular or probe); a failed check is not one, so
/// φ keeps growing through it. When φ reaches the threshold, or a passive failure
/// is reported, the detector asks for up to `confirm` probes; one pass clears the
/// suspicion, all failing marks the backend down. Down, it checks every `interval`
/// and comes back after `rise` passes; its history survives, so it does not start
/// cold.
///
/// ```
/// use ringleader_balancer::detector::{Accrual, AccrualConfig, Action, Detector};
/// use std::time::{Duration, Instant};
/// let t0 = Instant::now();
/// let mut d = Accrual::new(AccrualConfig::default(), t0, 1);
/// d.on_passive_failure(t0);
/// assert!(matches!(d.next_action(t0), Action::Check { confirm: true, .. }));
/// ```
#[derive(Debug, Clone)]
pub struct Accrual {
    config: AccrualConfig,
    /// Standardised silence at which φ reaches the threshold.
    y_threshold: f64,
    jitter: Jitter,
    history: History,
    /// Latencies of passing checks (seconds), for the probes' timeout.
    latencies: History,
    up: bool,
    /// Arrival of the last passing check, and whether it was a regular one; at
    /// first, the detector's creation (no interval is taken from it).
    last_heartbeat: Option<(Instant, Kind)>,
    next_check: Instant,
    confirming: Option<Confirming>,
    /// What the caller was last told to run.
    in_flight: Option<Kind>,
    passes: u32,
    pending: Option<Action>,
    stats: DetectorStats,
}

impl Accrual {
    /// A detector holding the backend up, whose first check comes within `jitter` of
    /// `now`; `seed` drives the jitter. Until a first check passes, the silence counts
    /// from `now`, judged on the first-heartbeat estimate, so a backend that never
    /// answers is suspected too (Akka's detector stays at φ = 0 before a first
    /// heartbeat; a health checker must not).
    pub fn new(config: AccrualConfig, now: Instant, seed: u64) -> Self {
        let mut jitter = Jitter::new(config.jitter, seed);
        let first = now + jitter.next();
        Self {
            y_threshold: y_at(config.threshold),
            history: History::bootstrapped(config.window, config.first_heartbeat_estimate),
            latencies: History::new(config.window),
            config,
            jitter,
            up: true,
            last_heartbeat: Some((now, Kind::Start)),
            next_check: first,
            confirming: None,
            in_flight: None,
            passes: 0,
            pending: None,
            stats: DetectorStats::default(),
        }
    }

    /// [`Accrual::new`] for a backend already held down (by the balancer, or by an
    /// earlier detector of this backend) with `passes` of the `rise` it needs counted:
    /// it stays down until they pass, as a detector that marked it down would.
    ///
    /// ```
    /// use ringleader_balancer::detector::{Accrual, AccrualConfig, Detector};
    /// let d = Accrual::resume_down(AccrualConfig::default(), std::time::Instant::now(), 1, 0);
    /// assert!(!d.is_up());
    /// ```
    pub fn resume_down(config: AccrualConfig, now: Instant, seed: u64, passes: u32) -> Self {
        let mut d = Self::new(config, now, seed);
        d.up = false;
        d.passes = passes.min(config.rise.saturating_sub(1));
        d
    }

    /// The settings.
    pub fn config(&self) -> &AccrualConfig {
        &self.config
    }

    /// φ at `now`: how improbable the silence since the last passing check is.
    pub fn phi(&self, now: Instant) -> f64 {
        match self.last_heartbeat {
            None => 0.0,
            Some((last, _)) => {
                let (mean, sd) = self.stats_secs();
                phi_of_y((now.saturating_duration_since(last).as_secs_f64() - mean) / sd)
            }
        }
    }

    /// Mean (plus the acceptable pause) and standard deviation (at least the floor), in seconds.
    fn stats_secs(&self) -> (f64, f64) {
        (
            self.history.mean() + self.config.acceptable_pause.as_secs_f64(),
            self.history
                .std_dev()
                .max(self.config.min_std_dev.as_secs_f64()),
        )
    }

    /// When φ reaches the threshold if no check passes before; None while the
    /// backend is down (it is not suspected then, it is down).
    pub fn suspect_at(&self) -> Option<Instant> {
        if !self.up {
            return None;
        }
        let (last, _) = self.last_heartbeat?;
        let (mean, sd) = self.stats_secs();
        let after = (mean + self.y_threshold * sd).clamp(0.0, 1e9);
        Some(last + Duration::from_secs_f64(after))
    }

    /// Timeout of a confirmation probe (see [`AccrualConfig::probe_timeout`]).
    pub fn probe_timeout(&self) -> Duration {
        let c = &self.config;
        if self.latencies.intervals.is_empty() {
            return c.probe_timeout;
        }
        let secs = self.latencies.mean() + self.y_threshold.max(0.0) * self.latencies.std_dev();
        Duration::from_secs_f64(secs.clamp(0.0, 1e9)).clamp(c.probe_timeout, c.timeout)
    }

    fn start_confirming(&mut self, now: Instant) {
        self.stats.suspicions += 1;
        if self.config.confirm == 0 {
            self.mark_down();
        } else {
            self.confirming = Some(Confirming {
                failed: 0,
                next_probe: now,
            });
        }
    }

    fn mark_down(&mut self) {
        self.up = false;
        self.passes = 0;
        self.confirming = None;
        self.stats.downs += 1;
        self.pending = Some(Action::MarkDown);
    }

    fn heartbeat(&mut self, now: Instant, kind: Kind) {
        if let Some((last, Kind::Regular)) = self.last_heartbeat {
            // Only regular-to-regular intervals describe the heartbeat period, and
            // (as Akka) only those that arrived unsuspected.
            if kind == Kind::Regular && self.suspect_at().is_some_and(|at| now < at) {
                self.history
                    .push(now.saturating_duration_since(last).as_secs_f64());
            }
        }
        self.last_heartbeat = Some((now, kind));
    }
}

impl Detector for Accrual {
    fn next_action(&mut self, now: Instant) -> Action {
        if let Some(a) = self.pending.take() {
            return a;
        }
        if self.up && self.confirming.is_none() {
            if let Some(at) = self.suspect_at() {
                if now >= at {
                    self.start_confirming(now);
                    if let Some(a) = self.pending.take() {
                        return a;
                    }
                }
            }
        }
        if let Some(c) = self.confirming {
            return if now >= c.next_probe {
                self.in_flight = Some(Kind::Probe);
                Action::Check {
                    confirm: true,
                    timeout: self.probe_timeout(),
                }
            } else {
                Action::Wait(c.next_probe)
            };
        }
        if now >= self.next_check {
            self.in_flight = Some(Kind::Regular);
            return Action::Check {
                confirm: false,
                timeout: self.config.timeout,
            };
        }
        match self.suspect_at() {
            Some(at) if self.up => Action::Wait(at.min(self.next_check)),
            _ => Action::Wait(self.next_check),
        }
    }

    fn on_check(&mut self, ok: bool, latency: Duration, now: Instant) {
        let kind = self.in_flight.take().unwrap_or(Kind::Regular);
        self.stats.checks += 1;
        if kind == Kind::Probe {
            self.stats.probes += 1;
        }
        self.next_check = now + self.config.interval + self.jitter.next();
        if !self.up {
            if ok {
                self.passes += 1;
                self.last_heartbeat = Some((now, Kind::Regular));
                if self.passes >= self.config.rise {
                    self.up = true;
                    self.passes = 0;
                    self.stats.ups += 1;
                    self.pending = Some(Action::MarkUp);
                }
            } else {
                self.passes = 0;
            }
            return;
        }
        if ok {
            self.latencies.push(latency.as_secs_f64());
            self.heartbeat(now, kind);
            self.confirming = None;
            return;
        }
        if let (Kind::Probe, Some(c)) = (kind, self.confirming.as_mut()) {
            c.failed += 1;
            c.next_probe = now + self.config.confirm_interval;
            if c.failed >= self.config.confirm {
                self.mark_down();
            }
        }
    }

    fn on_passive_failure(&mut self, now: Instant) {
        if !self.up || self.confirming.is_some() {
            return;
        }
        // A check that passed just now outweighs one failed request.
        if let Some((last, Kind::Regular | Kind::Probe)) = self.last_heartbeat {
            if now.saturating_duration_since(last) < self.config.confirm_interval {
                return;
            }
        }
        self.start_confirming(now);
    }

    fn is_up(&self) -> bool {
        self.up
    }

    fn suspicion(&self, now: Instant) -> f64 {
        self.phi(now)
    }

    fn stats(&self) -> DetectorStats {
        self.stats
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    fn quiet() -> AccrualConfig {
        AccrualConfig {
            jitter: Duration::ZERO,
            ..AccrualConfig::default()
        }
    }

    /// Run `d` against a backend that answers while `alive(t)` holds, in `latency`,
    /// from `from` until `until`; returns when it was marked down, if it was.
    fn drive(
        d: &mut Accrual,
        from: Instant,
        until: Instant,
        alive: impl Fn(Instant) -> bool,
    ) -> Option<Instant> {
        let mut now = from;
        let mut down = None;
        while now < until {
            match d.next_action(now) {
                Action::Wait(t) => now = t.max(now),
                Action::Check { timeout, .. } => {
                    let ok = alive(now);
                    let took = if ok { MS } else { timeout };
                    now += took;
                    d.on_check(ok, took, now);
                }
                Action::MarkDown => {
                    down.get_or_insert(now);
                }
                Action::MarkUp => {}
            }
        }
        down
    }

    #[test]
    fn phi_matches_the_normal_tail() {
        // -log10(1 - Phi(y)) for the normal distribution: y = 0 -> 0.301, y = 2 -> 1.64,
        // y = 3 -> 2.87 (tables); the logistic approximation stays within a few percent.
        for (y, want) in [
            (0.0, std::f64::consts::LOG10_2),
            (1.0, 0.79955),
            (2.0, 1.64302),
            (3.0, 2.86966),
        ] {
            let got = phi_of_y(y);
            assert!((got - want).abs() / want < 0.03, "y={y}: {got} vs {want}");
        }
        assert!(phi_of_y(-50.0) >= 0.0 && phi_of_y(-50.0) < 1e-12);
        assert!(phi_of_y(100.0).is_finite());
        let y = y_at(8.0);
        assert!((phi_of_y(y) - 8.0).abs() < 1e-9, "{y}");
    }

    #[test]
    fn history_mean_and_std_dev_follow_the_window() {
        let mut h = History::bootstrapped(3, Duration::from_secs(2));
        assert!((h.mean() - 2.0).abs() < 1e-12);
        assert!((h.std_dev() - 0.5).abs() < 1e-12);
        for _ in 0..3 {
            h.push(1.0);
        }
        assert!((h.mean() - 1.0).abs() < 1e-12);
        assert!(h.std_dev() < 1e-6);
    }

    #[test]
    fn a_regular_history_does_not_hair_trigger() {
        let t0 = Instant::now();
        let mut d = Accrual::new(quiet(), t0, 1);
        let end = t0 + Duration::from_secs(3600);
        assert_eq!(drive(&mut d, t0, end, |_| true), None);
        assert_eq!(d.stats().suspicions, 0);
        // A perfectly regular history: the standard deviation is the floor, 100 ms,
        // so a check 200 ms late keeps phi low.
        let (last, _) = d.last_heartbeat.unwrap();
        let late = last + Duration::from_millis(2001 + 200);
        assert!(d.phi(late) < 3.0, "{}", d.phi(late));
    }

    #[test]
    fn a_crash_is_marked_down_and_recovery_needs_rise() {
        let t0 = Instant::now();
        let mut d = Accrual::new(quiet(), t0, 1);
        let crash = t0 + Duration::from_secs(600);
        let back = crash + Duration::from_secs(60);
        let down = drive(&mut d, t0, back, |t| t < crash).expect("marked down");
        let took = down - crash;
        // Suspected about mean + 5.6 sd after the last pass, then three probes fail.
        assert!(took > Duration::from_millis(500), "{took:?}");
        assert!(took < Duration::from_secs(4), "{took:?}");
        assert!(!d.is_up());
        // Back: one pass is not enough, two are.
        let mut now = back;
        let mut ups = Vec::new();
        while ups.is_empty() {
            match d.next_action(now) {
                Action::Wait(t) => now = t,
                Action::Check { confirm, .. } => {
                    assert!(!confirm);
                    now += MS;
                    d.on_check(true, MS, now);
                    ups.push(d.stats().checks);
                    if d.next_action(now) != Action::MarkUp {
                        ups.clear();
                    }
                }
                a => panic!("{a:?}"),
            }
        }
        assert!(d.is_up());
        assert_eq!(d.stats().ups, 1);
    }

    #[test]
    fn a_passing_probe_cancels_a_false_suspicion() {
        let t0 = Instant::now();
        let mut d = Accrual::new(quiet(), t0, 1);
        let t1 = t0 + Duration::from_secs(300);
        drive(&mut d, t0, t1, |_| true);
        // One regular check fails (a lost packet); the backend is fine.
        let (last, _) = d.last_heartbeat.unwrap();
        let mut now = t1;
        let mut fail_next = true;
        let stop = now + Duration::from_secs(60);
        while now < stop {
            match d.next_action(now) {
                Action::Wait(t) => now = t,
                Action::Check { confirm, timeout } => {
                    let ok = !std::mem::take(&mut fail_next);
                    now += if ok { MS } else { timeout };
                    if confirm {
                        assert!(ok, "the first probe passes");
                    }
                    d.on_check(ok, MS, now);
                }
                a => panic!("{a:?}"),
            }
        }
        assert!(last < t1);
        let s = d.stats();
        assert_eq!((s.suspicions, s.probes, s.downs), (1, 1, 0), "{s:?}");
        assert!(d.is_up());
    }

    #[test]
    fn passive_failures_raise_suspicion_and_confirmed_ones_mark_down() {
        let t0 = Instant::now();
        let mut d = Accrual::new(quiet(), t0, 1);
        let t1 = t0 + Duration::from_secs(60);
        drive(&mut d, t0, t1, |_| true);
        let (last, _) = d.last_heartbeat.unwrap();
        // Right after a pass, a failed request is outweighed.
        d.on_passive_failure(last + MS);
        assert_eq!(d.stats().suspicions, 0);
        let now = last + Duration::from_millis(500);
        assert!(d.phi(now) < 1.0);
        d.on_passive_failure(now);
        assert_eq!(d.stats().suspicions, 1);
        // The backend died: the probes fail and it is down before phi alone would say.
        let phi_alone = d.suspect_at().unwrap();
        let down = drive(&mut d, now, now + Duration::from_secs(10), |t| t < now);
        let down = down.expect("marked down");
        assert!(down < phi_alone, "{down:?} vs {phi_alone:?}");
        assert_eq!(d.suspect_at(), None, "down, not suspected");
        assert_eq!(d.stats().probes, 3);
    }

    #[test]
    fn a_backend_that_never_answers_is_marked_down() {
        let t0 = Instant::now();
        let mut d = Accrual::new(quiet(), t0, 1);
        let down = drive(&mut d, t0, t0 + Duration::from_secs(60), |_| false);
        let down = down.expect("marked down without ever passing");
        // Judged on the first-heartbeat estimate (2 s, deviation 0.5 s) from the start.
        assert!(down - t0 < Duration::from_secs(8), "{:?}", down - t0);
        assert!(d.phi(t0 + Duration::from_secs(1)) < 1.0);
    }

    #[test]
    fn confirm_zero_marks_down_when_phi_crosses() {
        let t0 = Instant::now();
        let mut d = Accrual::new(
            AccrualConfig {
                confirm: 0,
                ..quiet()
            },
            t0,
            1,
        );
        d.on_check(true, MS, t0);
        let at = d.suspect_at().unwrap();
        assert!(matches!(d.next_action(t0), Action::Wait(t) if t == at.min(d.next_check)));
        assert_eq!(d.next_action(at), Action::MarkDown);
        assert!(d.phi(at) >= 8.0 - 1e-6);
    }

    #[test]
    fn validate_rejects_out_of_range_settings() {
        let ok = AccrualConfig::default();
        for bad in [
            AccrualConfig {
                threshold: 0.0,
                ..ok
            },
            AccrualConfig {
                threshold: f64::NAN,
                ..ok
            },
            AccrualConfig {
                min_std_dev: Duration::ZERO,
                ..ok
            },
            AccrualConfig { window: 0, ..ok },
            AccrualConfig { rise: 0, ..ok },
            AccrualConfig {
                interval: Duration::ZERO,
                ..ok
            },
        ] {
            assert!(bad.validate().is_err(), "{bad:?}");
        }
    }
}
