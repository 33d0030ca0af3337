//! Time sources for the generator: the `Clock` trait, the system clock and a manual test clock.
use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::sync::{AtomicU64, Ordering};

/// Where a [`Generator`](crate::Generator) gets the time from, and how it waits.
///
/// The generator only reads `now` and, when it must wait for the next tick (sequence
/// exhausted, or the clock behind within tolerance), calls `sleep`. A test clock can make
/// `sleep` advance itself, so waiting is deterministic and instant in tests.
///
/// ```
/// use ringleader_idgen::{Clock, ManualClock};
/// use std::time::Duration;
///
/// let clock = ManualClock::new();
/// let before = clock.now();
/// clock.sleep(Duration::from_millis(5)); // advances the manual clock, returns at once
/// assert_eq!(clock.now() - before, Duration::from_millis(5));
/// ```
pub trait Clock: Send + Sync {
    /// Wall-clock time since the Unix epoch.
    fn now(&self) -> Duration;

    /// Block for at least `duration`.
    fn sleep(&self, duration: Duration);
}

impl<C: Clock + ?Sized> Clock for Arc<C> {
    fn now(&self) -> Duration {
        (**self).now()
    }

    fn sleep(&self, duration: Duration) {
        (**self).sleep(duration)
    }
}

impl<C: Clock + ?Sized> Clock for &C {
    fn now(&self) -> Duration {
        (**self).now()
    }

    fn sleep(&self, duration: Duration) {
        (**self).sleep(duration)
    }
}

/// The operating system's wall clock (`SystemTime::now`).
///
/// `sleep` sleeps the thread for long waits but spins for the last
/// millisecond: the generator waits for a tick boundary, and `thread::sleep` overshoots
/// by tens of microseconds, which would cost several percent of a 1 ms tick's capacity.
///
/// ```
/// use ringleader_idgen::{Clock, SystemClock};
///
/// assert!(SystemClock.now().as_secs() > 1_600_000_000);
/// ```
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    #[inline]
    fn now(&self) -> Duration {
        // Before 1970 reads as the epoch itself; the generator then reports ClockBeforeEpoch.
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or(Duration::ZERO)
    }

    fn sleep(&self, duration: Duration) {
        const SPIN: Duration = Duration::from_millis(1);
        let start = Instant::now();
        if duration > SPIN {
            std::thread::sleep(duration - SPIN);
        }
        // Spin rather than yield: on a busy machine a yield can hand the core away for a
        // whole scheduler slice, and every lost tick is 4,096 IDs a TWITTER worker never issues.
        while start.elapsed() < duration {
            std::hint::spin_loop();
        }
    }
}

/// A clock that only moves when told to; `sleep` advances it. For tests and simulations.
///
/// Clones share the same time, so a test can keep a handle while the generator owns another.
///
/// ```
/// use ringleader_idgen::{Clock, ManualClock};
/// use std::time::Duration;
///
/// let clock = ManualClock::new();
/// let handle = clock.clone();
/// handle.advance(Duration::from_secs(1));
/// handle.set_back(Duration::from_millis(250)); // the clock stepped backwards
/// assert_eq!(clock.now(), ManualClock::DEFAULT_START + Duration::from_millis(750));
/// ```
#[derive(Clone)]
pub struct ManualClock {
    inner: Arc<ManualInner>,
}

struct ManualInner {
    /// Nanoseconds since the Unix epoch.
    now: AtomicU64,
    /// Total nanoseconds passed to `sleep`.
    slept: AtomicU64,
}

impl ManualClock {
    /// Where [`ManualClock::new`] starts: 2025-01-01T00:00:00Z, after every preset's epoch.
    pub const DEFAULT_START: Duration = Duration::from_secs(1_735_689_600);

    /// A manual clock at [`ManualClock::DEFAULT_START`].
    pub fn new() -> ManualClock {
        ManualClock::starting_at(ManualClock::DEFAULT_START)
    }

    /// A manual clock at `since_unix` after the Unix epoch (saturating at ~2554).
    pub fn starting_at(since_unix: Duration) -> ManualClock {
        ManualClock {
            inner: Arc::new(ManualInner {
                now: AtomicU64::new(saturating_nanos(since_unix)),
                slept: AtomicU64::new(0),
            }),
        }
    }

    /// Move the clock forward.
    pub fn advance(&self, by: Duration) {
        // Relaxed: a test clock; the generator's correctness never depends on its ordering.
        self.inner
            .now
            .fetch_add(saturating_nanos(by), Ordering::Relaxed);
    }

    /// Move the clock backwards (an NTP step, a VM restore...).
    pub fn set_back(&self, by: Duration) {
        let by = saturating_nanos(by);
        let _ = self
            .inner
            .now
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| {
                Some(n.saturating_sub(by))
            });
    }

    /// Set the clock to `since_unix` after the Unix epoch.
    pub fn set(&self, since_unix: Duration) {
        self.inner
            .now
            .store(saturating_nanos(since_unix), Ordering::Relaxed);
    }

    /// Total time passed to [`Clock::sleep`] so far (how long the generator waited).
    pub fn slept(&self) -> Duration {
        Duration::from_nanos(self.inner.slept.load(Ordering::Relaxed))
    }
}

impl Default for ManualClock {
    fn default() -> ManualClock {
        ManualClock::new()
    }
}

impl fmt::Debug for ManualClock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ManualClock")
            .field("now", &self.now())
            .field("slept", &self.slept())
            .finish()
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Duration {
        Duration::from_nanos(self.inner.now.load(Ordering::Relaxed))
    }

    /// Advances the clock by `duration` instead of blocking.
    fn sleep(&self, duration: Duration) {
        let nanos = saturating_nanos(duration);
        self.inner.slept.fetch_add(nanos, Ordering::Relaxed);
        self.inner.now.fetch_add(nanos, Ordering::Relaxed);
    }
}

/// The system clock read from an atomic that a background thread refreshes every
/// `resolution`: a `now` of about a nanosecond instead of a `clock_gettime` call.
///
/// Opt-in, for hot paths that issue IDs at tens of millions per second. The price: readings
/// lag the system clock by up to `resolution` plus the refresher's scheduling delay, so
/// timestamps can be that much early (uniqueness and order are unaffected: the generator's
/// state, not the clock, guarantees them). Clones share one refresher thread, which exits
/// within one `resolution` after the last clone is dropped. `sleep` waits in real time.
///
/// ```
/// use ringleader_idgen::{CoarseClock, Generator, Layout};
/// use std::time::Duration;
///
/// let clock = CoarseClock::start(Duration::from_millis(1))?;
/// let gen = Generator::with_clock(Layout::TWITTER, 1, clock)?;
/// assert!(gen.next_id()? < gen.next_id()?);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone)]
pub struct CoarseClock {
    shared: Arc<CoarseShared>,
}

struct CoarseShared {
    /// Nanoseconds since the Unix epoch, as of the last refresh. Relaxed: a lone value,
    /// nothing else is published through it.
    nanos: std::sync::atomic::AtomicU64,
    resolution: Duration,
}

impl CoarseClock {
    /// Read the system clock now and start the refresher thread (named
    /// `ringleader-idgen-clock`). Fails only if the thread cannot be spawned.
    pub fn start(resolution: Duration) -> std::io::Result<CoarseClock> {
        let resolution = resolution.max(Duration::from_micros(10));
        let shared = Arc::new(CoarseShared {
            nanos: std::sync::atomic::AtomicU64::new(saturating_nanos(SystemClock.now())),
            resolution,
        });
        let weak = Arc::downgrade(&shared);
        std::thread::Builder::new()
            .name("ringleader-idgen-clock".into())
            .spawn(move || {
                while let Some(shared) = weak.upgrade() {
                    shared.nanos.store(
                        saturating_nanos(SystemClock.now()),
                        std::sync::atomic::Ordering::Relaxed,
                    );
                    drop(shared);
                    std::thread::sleep(resolution);
                }
            })?;
        Ok(CoarseClock { shared })
    }

    /// How often the refresher reads the system clock.
    pub fn resolution(&self) -> Duration {
        self.shared.resolution
    }
}

impl fmt::Debug for CoarseClock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CoarseClock")
            .field("now", &self.now())
            .field("resolution", &self.shared.resolution)
            .finish()
    }
}

impl Clock for CoarseClock {
    #[inline]
    fn now(&self) -> Duration {
        Duration::from_nanos(self.shared.nanos.load(std::sync::atomic::Ordering::Relaxed))
    }

    fn sleep(&self, duration: Duration) {
        SystemClock.sleep(duration)
    }
}

fn saturating_nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn coarse_clock_starts_at_the_system_time() {
        let before = SystemClock.now();
        let clock = CoarseClock::start(Duration::from_millis(1)).unwrap();
        let reading = clock.now();
        let after = SystemClock.now();
        // The first value is stored before start() returns; the refresher only moves it forward.
        assert!(
            before <= reading && reading <= after,
            "{before:?} {reading:?} {after:?}"
        );
        assert!(clock.clone().now() >= reading);
        assert_eq!(clock.resolution(), Duration::from_millis(1));
        assert_eq!(
            CoarseClock::start(Duration::ZERO).unwrap().resolution(),
            Duration::from_micros(10)
        );
    }

    #[test]
    fn manual_clock_sleep_advances_and_is_recorded() {
        let clock = ManualClock::starting_at(Duration::from_secs(10));
        clock.sleep(Duration::from_millis(3));
        clock.set_back(Duration::from_millis(1));
        assert_eq!(
            clock.now(),
            Duration::from_secs(10) + Duration::from_millis(2)
        );
        assert_eq!(clock.slept(), Duration::from_millis(3));
        clock.set_back(Duration::from_secs(100));
        assert_eq!(clock.now(), Duration::ZERO, "saturates at the epoch");
    }
}
