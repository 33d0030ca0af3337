//! A revocable permit to issue IDs up to a timestamp: what a worker-id lease (etcd) uses
//! to stop a generator before the lease can have expired.
use std::fmt;

use crate::sync::{AtomicU64, Ordering};

/// A shared limit on the timestamps a [`Generator`](crate::Generator) may issue.
///
/// The generator checks it on its hot path with one relaxed load: an ID whose timestamp
/// (in the layout's ticks) is `>= limit` is never issued; [`Error::Fenced`](crate::Error::Fenced)
/// is returned instead. The holder of a worker-id lease moves the limit forward each time
/// the lease is confirmed ([`allow_until`](Fence::allow_until)) and closes it at once when
/// the lease is lost ([`close`](Fence::close)). Because the limit bounds the timestamps of
/// issued IDs (not the time of day the check ran), a clock step cannot let a fenced
/// generator issue past it.
///
/// A new fence is closed: nothing is issued until the first `allow_until`.
///
/// ```
/// use ringleader_idgen::{Clock, Error, Fence, Generator, Layout, ManualClock};
/// use std::time::Duration;
///
/// let clock = ManualClock::new();
/// let fence = Fence::new();
/// let gen = Generator::builder(Layout::TWITTER)
///     .clock(clock.clone())
///     .fence(fence.clone())
///     .build(1)?;
/// assert!(matches!(gen.next_id(), Err(Error::Fenced)), "closed until allowed");
///
/// // The lease was confirmed: allow timestamps until 8 s from now.
/// let until = Layout::TWITTER.timestamp_at(clock.now() + Duration::from_secs(8))?;
/// fence.allow_until(until);
/// let id = gen.next_id()?;
///
/// clock.advance(Duration::from_secs(9)); // no renewal came: past the limit
/// assert!(matches!(gen.next_id(), Err(Error::Fenced)));
/// # let _ = id;
/// # Ok::<(), ringleader_idgen::Error>(())
/// ```
#[derive(Clone)]
pub struct Fence {
    /// First timestamp (tick) that may NOT be issued.
    limit: std::sync::Arc<AtomicU64>,
}

impl Fence {
    /// A closed fence (limit 0).
    pub fn new() -> Fence {
        Fence {
            limit: std::sync::Arc::new(AtomicU64::new(0)),
        }
    }

    /// A fence that never stops anything (limit `u64::MAX`): what a generator without a
    /// lease uses.
    pub fn open() -> Fence {
        Fence {
            limit: std::sync::Arc::new(AtomicU64::new(u64::MAX)),
        }
    }

    /// Allow timestamps strictly below `limit` (a tick of the generator's layout, see
    /// [`Layout::timestamp_at`](crate::Layout::timestamp_at)). Replaces the previous limit.
    pub fn allow_until(&self, limit: u64) {
        // Relaxed: a lone value; nothing else is published through it. A generator that
        // reads a stale, lower limit only refuses an ID it could have issued.
        self.limit.store(limit, Ordering::Relaxed);
    }

    /// Stop issuing at once (limit 0). A call racing with `next_id` in another thread may
    /// still issue below the old limit; [`Generator::seal`](crate::Generator::seal) gives
    /// the exact last ID after a close.
    pub fn close(&self) {
        self.limit.store(0, Ordering::Relaxed);
    }

    /// The current limit: timestamps below it may be issued.
    #[inline]
    pub fn limit(&self) -> u64 {
        self.limit.load(Ordering::Relaxed)
    }
}

impl Default for Fence {
    fn default() -> Fence {
        Fence::new()
    }
}

impl fmt::Debug for Fence {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Fence")
            .field("limit", &self.limit())
            .finish()
    }
}
