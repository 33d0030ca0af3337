//! Injectable time: the [`Clock`] trait, the real [`SystemClock`] and a [`ManualClock`] for tests and simulation.
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::{Duration, Instant};

/// A source of monotonic time. Health back-off, ejection expiry and EWMA decay read it.
///
/// ```
/// use ringleader_balancer::{Clock, SystemClock};
/// let a = SystemClock.now();
/// assert!(SystemClock.now() >= a);
/// ```
pub trait Clock: Send + Sync + std::fmt::Debug {
    /// The current instant.
    fn now(&self) -> Instant;
}

/// The real monotonic clock (`Instant::now`).
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    #[inline]
    fn now(&self) -> Instant {
        Instant::now()
    }
}

/// A clock that only moves when told to; shared between a test and a balancer through an `Arc`.
///
/// ```
/// use ringleader_balancer::{Clock, ManualClock};
/// use std::time::Duration;
/// let clock = ManualClock::new();
/// let t0 = clock.now();
/// clock.advance(Duration::from_secs(5));
/// assert_eq!(clock.now() - t0, Duration::from_secs(5));
/// ```
#[derive(Debug)]
pub struct ManualClock {
    base: Instant,
    offset_ns: AtomicU64,
}

impl ManualClock {
    /// A clock standing at the moment of its creation.
    pub fn new() -> Self {
        Self {
            base: Instant::now(),
            offset_ns: AtomicU64::new(0),
        }
    }

    /// Move the clock forward by `by`.
    pub fn advance(&self, by: Duration) {
        self.offset_ns.fetch_add(saturating_ns(by), Relaxed);
    }

    /// Set the clock to `elapsed` after its starting point (never moves it backwards).
    pub fn set_elapsed(&self, elapsed: Duration) {
        self.offset_ns.fetch_max(saturating_ns(elapsed), Relaxed);
    }

    /// Time elapsed since the clock's starting point.
    pub fn elapsed(&self) -> Duration {
        Duration::from_nanos(self.offset_ns.load(Relaxed))
    }
}

impl Default for ManualClock {
    fn default() -> Self {
        Self::new()
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Instant {
        self.base + Duration::from_nanos(self.offset_ns.load(Relaxed))
    }
}

/// Nanoseconds of a duration, saturating at `u64::MAX` (584 years).
#[inline]
pub(crate) fn saturating_ns(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}
