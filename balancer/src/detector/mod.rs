//! Failure detectors for active health checks: a small, synchronous state machine per backend that decides when to check, when to probe, and when a backend is down or up again.
//!
//! Two detectors implement [`Detector`]:
//!
//! - [`RiseFall`]: today's semantics (HAProxy's `rise`/`fall`): a check every
//!   `interval`, down after `fall` consecutive failures, up after `rise` passes.
//! - [`Accrual`]: a φ accrual detector (Hayashibara et al., 2004, as Akka and
//!   Cassandra use it) over the arrival times of passing checks. It raises
//!   suspicion when the silence since the last pass is improbable given their
//!   history (φ above a threshold), then sends up to `confirm` quick probes,
//!   `confirm_interval` apart: a probe that passes clears the suspicion, and only
//!   when they all fail is the backend down. Back up after `rise` passes.
//!
//! # Driving a detector
//!
//! The caller owns the I/O and the clock; the detector only decides. A check task
//! loops on [`Detector::next_action`]:
//!
//! - [`Action::Wait`]`(until)`: sleep until then (or until a passive signal:
//!   report it with [`Detector::on_passive_failure`], then ask again);
//! - [`Action::Check`]: run one check now with the timeout it gives and report
//!   its result with [`Detector::on_check`] at the instant it completed (a
//!   timed-out check failed);
//! - [`Action::MarkDown`] / [`Action::MarkUp`]: apply the transition (each is
//!   returned once), then ask again.
//!
//! Everything takes `now` as an argument, so tests and the simulator
//! (`ringleader sim detect`) drive detectors through traces on a
//! [`ManualClock`](crate::ManualClock) or plain instants.
//!
//! ```
//! use ringleader_balancer::detector::{Accrual, AccrualConfig, Action, Detector};
//! use std::time::{Duration, Instant};
//!
//! let config = AccrualConfig { jitter: Duration::ZERO, ..AccrualConfig::default() };
//! let t0 = Instant::now();
//! let mut d = Accrual::new(config, t0, 7);
//! let mut now = t0;
//! let mut marked_down = None;
//! // The backend answers every check for a minute, then stops answering (a crash).
//! let crash = t0 + Duration::from_secs(60);
//! while marked_down.is_none() {
//!     match d.next_action(now) {
//!         Action::Wait(until) => now = until,
//!         Action::Check { timeout, .. } => {
//!             // Alive, it answers in 2 ms; crashed, it never answers (a silent host).
//!             let ok = now < crash;
//!             let took = if ok { Duration::from_millis(2) } else { timeout };
//!             now += took;
//!             d.on_check(ok, took, now);
//!         }
//!         Action::MarkDown => marked_down = Some(now),
//!         Action::MarkUp => unreachable!("it never went down before"),
//!     }
//! }
//! // Rise/fall with its defaults (2 s interval, 1 s timeout, fall 3) takes 7-9 s
//! // to see a silent host; accrual suspects it about 2.6 s after the last answer
//! // and confirms with three 250 ms probes.
//! assert!(marked_down.unwrap() - crash < Duration::from_millis(5_500));
//! assert!(!d.is_up());
//! ```

mod accrual;
mod rise_fall;
pub mod sim;

pub use accrual::{phi, Accrual, AccrualConfig};
pub use rise_fall::{RiseFall, RiseFallConfig};

use std::fmt;
use std::time::{Duration, Instant};

/// What a detector wants its caller to do next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Nothing before this instant: sleep until then, then ask again (earlier
    /// after reporting a passive signal).
    Wait(Instant),
    /// Run one check now, giving up after `timeout`, and report it with [`Detector::on_check`].
    Check {
        /// A quick confirmation probe of a suspected backend (else a regular check).
        confirm: bool,
        /// How long to wait for the answer: the configured timeout for regular
        /// checks; for [`Accrual`]'s probes, shorter when the latency history allows.
        timeout: Duration,
    },
    /// The backend is down: stop sending it traffic (returned once per transition).
    MarkDown,
    /// The backend is up again after `rise` passing checks (returned once per transition).
    MarkUp,
}

/// Counters of what a detector did, for metrics and the simulator.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct DetectorStats {
    /// Checks reported (regular checks and probes).
    pub checks: u64,
    /// Confirmation probes among them.
    pub probes: u64,
    /// Times the detector started suspecting an up backend: for [`Accrual`], φ over
    /// the threshold or a passive failure; for [`RiseFall`], a failed check that
    /// starts a streak.
    pub suspicions: u64,
    /// Up -> down transitions.
    pub downs: u64,
    /// Down -> up transitions.
    pub ups: u64,
}

/// One failure detector for one backend: a synchronous state machine the check task drives.
///
/// All methods take the current instant; instants passed in must not go backwards.
pub trait Detector: fmt::Debug + Send {
    /// What to do at `now`.
    fn next_action(&mut self, now: Instant) -> Action;

    /// Report a completed check (regular or probe): whether it passed, how long it
    /// took, and `now`, the instant it completed.
    fn on_check(&mut self, ok: bool, latency: Duration, now: Instant);

    /// Report a failure seen on live traffic (a refused connection, a timeout).
    /// It is never a heartbeat; it may raise suspicion (then ask [`Self::next_action`] again).
    fn on_passive_failure(&mut self, now: Instant);

    /// Whether the detector holds the backend up (it starts up).
    fn is_up(&self) -> bool;

    /// How suspicious the detector is at `now`: φ for [`Accrual`]; for [`RiseFall`],
    /// the failure streak over `fall` (1.0 = down). 0 when all is well.
    fn suspicion(&self, now: Instant) -> f64;

    /// What the detector did so far.
    fn stats(&self) -> DetectorStats;
}

impl<D: Detector + ?Sized> Detector for Box<D> {
    fn next_action(&mut self, now: Instant) -> Action {
        (**self).next_action(now)
    }
    fn on_check(&mut self, ok: bool, latency: Duration, now: Instant) {
        (**self).on_check(ok, latency, now);
    }
    fn on_passive_failure(&mut self, now: Instant) {
        (**self).on_passive_failure(now);
    }
    fn is_up(&self) -> bool {
        (**self).is_up()
    }
    fn suspicion(&self, now: Instant) -> f64 {
        (**self).suspicion(now)
    }
    fn stats(&self) -> DetectorStats {
        (**self).stats()
    }
}

/// A uniformly random extra delay in `[0, max]` from a small seeded generator
/// (checks of many backends should not align).
#[derive(Debug, Clone)]
pub(crate) struct Jitter {
    max: Duration,
    state: u64,
}

impl Jitter {
    pub(crate) fn new(max: Duration, seed: u64) -> Self {
        // splitmix64 of the seed, so nearby seeds start far apart; never 0 (xorshift's fixed point).
        let mut z = seed.wrapping_add(0x9E37_79B9_7F4A_7C15);
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        Self {
            max,
            state: (z ^ (z >> 31)) | 1,
        }
    }

    pub(crate) fn next(&mut self) -> Duration {
        if self.max.is_zero() {
            return Duration::ZERO;
        }
        // xorshift64* (Vigna, 2016): plenty for spreading checks.
        self.state ^= self.state >> 12;
        self.state ^= self.state << 25;
        self.state ^= self.state >> 27;
        let r = self.state.wrapping_mul(0x2545_F491_4F6C_DD1D);
        let unit = (r >> 11) as f64 / (1u64 << 53) as f64;
        self.max.mul_f64(unit)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jitter_stays_in_range_and_varies() {
        let mut j = Jitter::new(Duration::from_millis(200), 1);
        let draws: Vec<Duration> = (0..1000).map(|_| j.next()).collect();
        assert!(draws.iter().all(|d| *d <= Duration::from_millis(200)));
        let mean = draws.iter().sum::<Duration>() / 1000;
        assert!(
            mean > Duration::from_millis(80) && mean < Duration::from_millis(120),
            "{mean:?}"
        );
        assert_eq!(Jitter::new(Duration::ZERO, 3).next(), Duration::ZERO);
    }
}
