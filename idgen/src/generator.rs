//! The lock-free generator: last (tick, sequence) in one `AtomicU64`, advanced by compare-exchange.
use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use crate::clock::{Clock, SystemClock};
use crate::fence::Fence;
use crate::mark::Mark;
use crate::persist::HighWaterMark;
use crate::sync::{AtomicU64, Ordering};
use crate::worker::{self, WorkerIdSource};
use crate::{Error, Id, Layout};

/// Default for [`GeneratorBuilder::backwards_tolerance`].
pub const DEFAULT_BACKWARDS_TOLERANCE: Duration = Duration::from_secs(1);
/// Default for [`GeneratorBuilder::reserve_ahead`].
pub const DEFAULT_RESERVE_AHEAD: Duration = Duration::from_secs(2);

/// Issues unique, time-ordered IDs for one worker id; lock-free, `Send + Sync`.
///
/// The state is one `AtomicU64` holding the next free `(tick, sequence)` pair packed as
/// `tick << sequence_bits | sequence`. `next_id` reads the state, then the clock, proposes
/// `max(state, now << sequence_bits)` and installs `proposal + 1` with a compare-exchange;
/// the winner owns the proposal. So IDs from one generator are strictly increasing in the
/// order the exchanges succeed, and per thread. No lock is taken on the way, not even with
/// a high-water mark (see below).
///
/// - Sequence exhausted within a tick: waits for the next tick through [`Clock::sleep`], or,
///   with [`max_borrow`](GeneratorBuilder::max_borrow) `> 0`, first issues from up to that
///   many future ticks.
/// - Clock moved backwards: keeps issuing from the last tick while the clock is behind by at
///   most [`backwards_tolerance`](GeneratorBuilder::backwards_tolerance) (waiting for it to
///   catch up once that tick's sequence is used), beyond it returns
///   [`Error::ClockMovedBackwards`]. Never panics, never resets.
/// - With a [`high_water_mark`](GeneratorBuilder::high_water_mark) file, it never issues a
///   timestamp past the durably stored mark, and resumes after the mark on start. A
///   background thread renews the mark when half of the reservation is used, so callers
///   do not wait for the disk; one waits only if it catches up with the durable mark (a
///   disk slower than half of `reserve_ahead`, or a burst of borrowing). The file is
///   locked while the generator lives; dropping the generator lowers the mark to the last
///   tick it issued, so the next start does not wait out the reservation.
///
/// [`next_id`](Generator::next_id) blocks the thread for the waits above (up to a tick,
/// or up to the tolerance after a clock step); async callers use
/// [`try_next_id`](Generator::try_next_id), which never blocks and says how long to wait.
///
/// ```
/// use ringleader_idgen::{Generator, Layout};
/// use std::sync::LazyLock;
///
/// static IDS: LazyLock<Generator> =
///     LazyLock::new(|| Generator::new(Layout::TWITTER, 1).expect("worker 1 fits TWITTER"));
///
/// let a = IDS.next_id()?;
/// let b = IDS.next_id()?;
/// assert!(a < b);
/// assert_eq!(Layout::TWITTER.decode(b)?.worker, 1);
/// # Ok::<(), ringleader_idgen::Error>(())
/// ```
pub struct Generator<C: Clock = SystemClock> {
    /// Next free `tick << seq_bits | sequence`. Only ever increases.
    state: AtomicU64,
    /// Ticks up to here are issued without looking at the mark: the durable mark less half
    /// the reservation (`u64::MAX` without a file). Only increases, never past the durable
    /// mark; past it, the slow path asks the renewer for a new mark.
    renew_at: AtomicU64,
    clock: C,
    layout: Layout,
    worker: u32,
    /// `worker << seq_bits`, or-ed into every ID.
    worker_field: u64,
    worker_bits: u32,
    seq_bits: u32,
    seq_mask: u64,
    tick_nanos: u64,
    epoch_nanos: u64,
    max_timestamp: u64,
    max_borrow: u64,
    tolerance: Duration,
    reserve_ticks: u64,
    mark: Option<Mark>,
    /// Tick of the last "clock moved backwards" warning (`u64::MAX`: none yet); the
    /// warning is logged at most once per second, not once per failed call.
    last_warned: AtomicU64,
    /// Timestamps at or past its limit are never issued ([`Fence::open`] without a lease).
    fence: Fence,
    /// The state [`seal`](Generator::seal) replaced (`state` then holds [`SEALED`]).
    sealed_from: AtomicU64,
}

/// The state of a sealed generator: no compare-exchange from a real state can succeed on
/// it, and every path that reads it returns [`Error::Fenced`].
const SEALED: u64 = u64::MAX;

/// Options for a [`Generator`]: clock, borrowing, clock-step tolerance, high-water mark.
///
/// ```
/// use ringleader_idgen::{Generator, Layout, ManualClock};
/// use std::time::Duration;
///
/// let clock = ManualClock::new();
/// let gen = Generator::builder(Layout::TWITTER)
///     .clock(clock.clone())
///     .max_borrow(2)                                  // may run up to 2 ticks ahead
///     .backwards_tolerance(Duration::from_millis(50)) // clock steps back up to 50 ms are ridden out
///     .build(7)?;
/// assert_eq!(gen.worker(), 7);
/// # Ok::<(), ringleader_idgen::Error>(())
/// ```
#[must_use]
pub struct GeneratorBuilder<C: Clock = SystemClock> {
    layout: Layout,
    clock: C,
    max_borrow: u64,
    tolerance: Duration,
    hwm: Option<PathBuf>,
    reserve_ahead: Duration,
    fence: Option<Fence>,
    start_after: Option<u64>,
}

impl Generator<SystemClock> {
    /// A generator on the system clock with default options; `worker` is anything that
    /// yields a worker id (an integer, a [`WorkerId`](crate::WorkerId), an
    /// [`EnvWorkerId`](crate::EnvWorkerId)) and is range-checked against `layout`.
    pub fn new(layout: Layout, worker: impl WorkerIdSource) -> Result<Generator, Error> {
        Generator::builder(layout).build(worker)
    }

    /// Options beyond the defaults.
    pub fn builder(layout: Layout) -> GeneratorBuilder<SystemClock> {
        GeneratorBuilder {
            layout,
            clock: SystemClock,
            max_borrow: 0,
            tolerance: DEFAULT_BACKWARDS_TOLERANCE,
            hwm: None,
            reserve_ahead: DEFAULT_RESERVE_AHEAD,
            fence: None,
            start_after: None,
        }
    }
}

impl<C: Clock> Generator<C> {
    /// A generator with default options on an injected clock.
    pub fn with_clock(
        layout: Layout,
        worker: impl WorkerIdSource,
        clock: C,
    ) -> Result<Generator<C>, Error> {
        Generator::builder(layout).clock(clock).build(worker)
    }
}

impl<C: Clock> GeneratorBuilder<C> {
    /// Use `clock` instead of the system clock.
    pub fn clock<C2: Clock>(self, clock: C2) -> GeneratorBuilder<C2> {
        GeneratorBuilder {
            layout: self.layout,
            clock,
            max_borrow: self.max_borrow,
            tolerance: self.tolerance,
            hwm: self.hwm,
            reserve_ahead: self.reserve_ahead,
            fence: self.fence,
            start_after: self.start_after,
        }
    }

    /// When a tick's sequence is used up, issue from up to `ticks` future ticks before
    /// waiting (default 0: always wait). Smooths bursts; IDs then carry timestamps up to
    /// `ticks` ahead of the clock.
    ///
    /// A restart could then reissue what the previous run borrowed, even with a perfect
    /// clock. With a [`high_water_mark`](Self::high_water_mark) it cannot (borrowed ticks
    /// are covered by the mark). Without one, a borrowing generator starts issuing at
    /// `now + ticks + 1`, past anything a predecessor with the same worker id and at most
    /// the same `max_borrow` could have issued (at most a one-tick wait for the first ID);
    /// a backwards clock step across the restart still reissues, as without borrowing.
    pub fn max_borrow(mut self, ticks: u64) -> Self {
        self.max_borrow = ticks;
        self
    }

    /// How far the clock may step backwards before `next_id` fails with
    /// [`Error::ClockMovedBackwards`] (default 1 s). Within it, the generator keeps issuing
    /// from its last tick and then waits for the clock to catch up, so a step back can stall
    /// callers for up to this long.
    pub fn backwards_tolerance(mut self, tolerance: Duration) -> Self {
        self.tolerance = tolerance;
        self
    }

    /// Persist a high-water mark in `path` (see [`Generator`]); the file is created if missing.
    ///
    /// `build` takes an advisory lock on `<path>.lock` (`flock`; `LockFileEx` on Windows),
    /// held until the generator is dropped, and writes its pid there: a second generator
    /// on the same file, in any process, fails with [`Error::HighWaterMarkLocked`] naming
    /// that pid. The lock is the kernel's, so a crashed holder releases it at once.
    pub fn high_water_mark(mut self, path: impl Into<PathBuf>) -> Self {
        self.hwm = Some(path.into());
        self
    }

    /// How far ahead of the clock each high-water-mark write reserves (default 2 s): about
    /// two writes per this much time (a renewal starts when half is used). A restart after
    /// a crash within this window waits until the clock passes the stored mark; after a
    /// clean drop, only until it passes the last issued ID.
    pub fn reserve_ahead(mut self, ahead: Duration) -> Self {
        self.reserve_ahead = ahead;
        self
    }

    /// Issue only timestamps below `fence`'s limit (see [`Fence`]); past it, `next_id`
    /// returns [`Error::Fenced`]. For a worker id held by a lease: the lease's keeper moves
    /// the limit forward on each confirmed renewal and closes it when the lease is lost.
    /// The check is one relaxed load on the hot path.
    pub fn fence(mut self, fence: Fence) -> Self {
        self.fence = Some(fence);
        self
    }

    /// Issue only timestamps strictly after `timestamp` (ticks since the layout's epoch):
    /// a handover from a previous holder of this worker id, whose high-water timestamp this
    /// is. When the clock is behind it, the generator treats that as a backwards clock step
    /// (waits within [`backwards_tolerance`](Self::backwards_tolerance), beyond it
    /// [`Error::ClockMovedBackwards`] until the clock catches up): never an ID at or below it.
    ///
    /// ```
    /// use ringleader_idgen::{Clock, Generator, Layout, ManualClock};
    /// use std::time::Duration;
    ///
    /// let clock = ManualClock::new();
    /// let now = Layout::TWITTER.timestamp_at(clock.now())?;
    /// // The previous holder issued up to 300 ms ahead of this (slower) clock.
    /// let gen = Generator::builder(Layout::TWITTER)
    ///     .clock(clock.clone())
    ///     .start_after(now + 300)
    ///     .build(5)?;
    /// let first = Layout::TWITTER.decode(gen.next_id()?)?.timestamp;
    /// assert_eq!(first, now + 301);
    /// # Ok::<(), ringleader_idgen::Error>(())
    /// ```
    pub fn start_after(mut self, timestamp: u64) -> Self {
        self.start_after = Some(self.start_after.map_or(timestamp, |t| t.max(timestamp)));
        self
    }

    /// Build the generator for `worker`. With a high-water mark this locks and reads the
    /// file, waits (through the clock) until the clock is past the stored mark, writes a new
    /// mark and starts the renewer thread (`ringleader-idgen-mark`).
    pub fn build(self, worker: impl WorkerIdSource) -> Result<Generator<C>, Error> {
        let layout = self.layout;
        let worker = worker::checked(worker.acquire(&layout)?, &layout)?;
        let seq_bits = u32::from(layout.sequence_bits());
        let tick_nanos = layout.tick_nanos();
        let max_timestamp = layout.max_timestamp();
        let reserve_ticks = nanos(self.reserve_ahead).div_ceil(tick_nanos).max(1);
        let mark = match self.hwm {
            Some(path) => Some(Mark::new(HighWaterMark::open(path, layout, worker)?)),
            None => None,
        };
        let mut gen = Generator {
            state: AtomicU64::new(0),
            renew_at: AtomicU64::new(if mark.is_some() { 0 } else { u64::MAX }),
            clock: self.clock,
            layout,
            worker,
            worker_field: u64::from(worker) << seq_bits,
            worker_bits: u32::from(layout.worker_bits()),
            seq_bits,
            seq_mask: (1u64 << seq_bits) - 1,
            tick_nanos,
            epoch_nanos: layout.epoch_nanos(),
            max_timestamp,
            max_borrow: self.max_borrow.min(max_timestamp),
            tolerance: self.tolerance,
            reserve_ticks,
            // Set once resumed: a generator that failed to build must not touch the file
            // when dropped (it would overwrite the mark that made it fail).
            mark: None,
            last_warned: AtomicU64::new(u64::MAX),
            fence: self.fence.unwrap_or_else(Fence::open),
            sealed_from: AtomicU64::new(SEALED),
        };
        if let Some(mark) = mark {
            gen.resume(&mark)?;
            gen.mark = Some(mark);
        } else if gen.max_borrow > 0 {
            gen.skip_borrowable()?;
        }
        if let Some(after) = self.start_after {
            if after >= max_timestamp {
                return Err(gen.overflow());
            }
            let first = (after + 1) << seq_bits;
            if gen.state.load(Ordering::Relaxed) < first {
                gen.state.store(first, Ordering::Relaxed);
            }
        }
        Ok(gen)
    }
}

/// Why a pass over the compare-exchange loop did not issue.
enum Blocked {
    /// Wait until the clock reaches `tick` (it read `since` nanoseconds since the epoch).
    Until { tick: u64, since: u64 },
    /// The durable mark must cover `tick` first (the clock read `now_tick`).
    Persist { tick: u64, now_tick: u64 },
}

/// Outcome of [`Generator::try_next_id`].
///
/// ```
/// use ringleader_idgen::{Generator, Layout, ManualClock, NextId};
///
/// let clock = ManualClock::new();
/// let gen = Generator::with_clock(Layout::TWITTER, 1, clock.clone())?;
/// let ids: Vec<_> = gen.next_ids(4096)?.collect(); // this tick's sequence, used up
/// match gen.try_next_id()? {
///     NextId::Ready(id) => unreachable!("no ID left in this tick, got {id}"),
///     NextId::Wait(wait) => {
///         assert!(wait <= std::time::Duration::from_millis(1)); // until the next tick
///         clock.advance(wait); // an async caller sleeps instead
///     }
/// }
/// assert!(matches!(gen.try_next_id()?, NextId::Ready(id) if id > ids[4095]));
/// # Ok::<(), ringleader_idgen::Error>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[must_use]
pub enum NextId {
    /// The ID.
    Ready(Id),
    /// None issued: [`next_id`](Generator::next_id) would block here (sequence used up,
    /// clock behind within tolerance, or the high-water mark being renewed). Call again
    /// after this long.
    Wait(Duration),
}

impl<C: Clock> Generator<C> {
    /// The next ID. Lock-free: one clock read and (uncontended) one compare-exchange.
    ///
    /// Errors: [`Error::ClockMovedBackwards`] beyond the tolerance,
    /// [`Error::ClockBeforeEpoch`], [`Error::TimestampOverflow`] once the layout's time
    /// range is used up, and high-water-mark I/O errors when the mark cannot be advanced.
    #[inline]
    pub fn next_id(&self) -> Result<Id, Error> {
        // Fast path: the common case (clock in range, sequence left, no wait, no mark to
        // write) inlined; anything else goes through `reserve`. The clock is read BEFORE the
        // state here, unlike in `reserve`: that keeps the window between load and exchange
        // to a few instructions (a clock read can take ~50-100 ns, and a state loaded before
        // it would be stale under contention). Issuing at `tick <= now + max_borrow` is safe
        // in either order; only the "ahead of the clock" decisions (wait or error) need the
        // state-then-clock order, and those are all made in `reserve`.
        let now = self.clock.now();
        let cur = self.state.load(Ordering::Acquire);
        if let Some(since) = self.since_epoch(now) {
            let now_tick = self.tick_at(since, cur >> self.seq_bits);
            let start = cur.max(now_tick << self.seq_bits);
            let tick = start >> self.seq_bits;
            if now_tick <= self.max_timestamp
                && tick <= now_tick + self.max_borrow
                && tick <= self.max_timestamp
                && tick <= self.renew_at.load(Ordering::Acquire)
                && tick < self.fence.limit()
            {
                match self.state.compare_exchange_weak(
                    cur,
                    start + 1,
                    Ordering::Release,
                    Ordering::Relaxed,
                ) {
                    Ok(_) => return Ok(self.id_at(start)),
                    // Lost a race: retry with the newer state but this clock reading (saves a
                    // second clock read per contended call).
                    Err(actual) => return self.next_id_slow(Some((actual, since))),
                }
            }
        }
        self.next_id_slow(None)
    }

    #[cold]
    #[inline(never)]
    fn next_id_slow(&self, carried: Option<(u64, u64)>) -> Result<Id, Error> {
        let counter = self.reserve_blocking(1, carried)?;
        Ok(self.id_at(counter))
    }

    /// The next ID, or how long to wait for it: never blocks, never sleeps, never touches
    /// the disk. For async code, which must not block its worker thread:
    ///
    /// ```
    /// use ringleader_idgen::{Error, Generator, Id, NextId};
    /// # async fn sleep(_: std::time::Duration) {}
    ///
    /// async fn request_id(gen: &Generator) -> Result<Id, Error> {
    ///     loop {
    ///         match gen.try_next_id()? {
    ///             NextId::Ready(id) => return Ok(id),
    ///             NextId::Wait(d) => sleep(d).await, // tokio::time::sleep, or your runtime's
    ///         }
    ///     }
    /// }
    /// ```
    ///
    /// Same IDs and errors as [`next_id`](Generator::next_id) (which it can be mixed with);
    /// where that would wait, this returns [`NextId::Wait`]. With a high-water mark, where
    /// `next_id` would write the mark itself, this leaves the write to the renewer thread
    /// and returns a wait of one tick (a failed background write is returned as the error).
    pub fn try_next_id(&self) -> Result<NextId, Error> {
        match self.attempt(1, None)? {
            Ok(counter) => Ok(NextId::Ready(self.id_at(counter))),
            Err(Blocked::Until { tick, since }) => Ok(NextId::Wait(self.wait_until(tick, since))),
            Err(Blocked::Persist { tick, now_tick }) => {
                let Some(mark) = &self.mark else {
                    return Ok(NextId::Wait(Duration::from_nanos(self.tick_nanos)));
                };
                if let Some(e) = mark.take_failure() {
                    return Err(e);
                }
                if !mark.has_renewer() {
                    // No background thread could be started: write in the foreground.
                    self.persist(tick, now_tick)?;
                }
                Ok(NextId::Wait(Duration::from_nanos(self.tick_nanos)))
            }
        }
    }

    /// `n` consecutive IDs reserved with one compare-exchange, as an iterator.
    ///
    /// `n` may be at most `2^sequence_bits * (max_borrow + 1)` (what the generator may
    /// issue without running past its borrowing bound); more is [`Error::BatchTooLarge`].
    ///
    /// ```
    /// use ringleader_idgen::{Generator, Layout};
    ///
    /// let gen = Generator::new(Layout::TWITTER, 3)?;
    /// let ids: Vec<_> = gen.next_ids(1000)?.collect();
    /// assert_eq!(ids.len(), 1000);
    /// assert!(ids.windows(2).all(|w| w[0] < w[1]));
    /// assert!(gen.next_id()? > ids[999]);
    /// # Ok::<(), ringleader_idgen::Error>(())
    /// ```
    pub fn next_ids(&self, n: u64) -> Result<IdBatch, Error> {
        let max = self.max_batch();
        if n > max {
            return Err(Error::BatchTooLarge { requested: n, max });
        }
        let start = if n == 0 {
            0
        } else {
            self.reserve_blocking(n, None)?
        };
        Ok(IdBatch {
            next: start,
            end: start + n,
            worker_field: self.worker_field,
            worker_bits: self.worker_bits,
            seq_mask: self.seq_mask,
        })
    }

    /// The most IDs one [`next_ids`](Generator::next_ids) call may reserve.
    pub fn max_batch(&self) -> u64 {
        (1u64 << self.seq_bits).saturating_mul(self.max_borrow.saturating_add(1))
    }

    /// The layout IDs are generated in.
    pub fn layout(&self) -> Layout {
        self.layout
    }

    /// The worker id stamped into every ID.
    pub fn worker(&self) -> u32 {
        self.worker
    }

    /// The clock.
    pub fn clock(&self) -> &C {
        &self.clock
    }

    /// The fence this generator checks ([`Fence::open`] unless one was given).
    pub fn fence(&self) -> &Fence {
        &self.fence
    }

    /// Stop this generator for good and return the timestamp of the last ID it issued
    /// (`None` if it issued none and had no [`start_after`](GeneratorBuilder::start_after)
    /// floor; else an upper bound: the floor when nothing was issued). Closes its fence,
    /// then swaps its state for a sealed one, so a call racing in another thread either
    /// issued before the swap (and is counted) or fails with [`Error::Fenced`]. For a lease
    /// released cleanly: the next holder of the worker id starts after the returned value.
    ///
    /// ```
    /// use ringleader_idgen::{Error, Generator, Layout};
    ///
    /// let gen = Generator::new(Layout::TWITTER, 1)?;
    /// let id = gen.next_id()?;
    /// let last = gen.seal().expect("an ID was issued");
    /// assert_eq!(last, Layout::TWITTER.decode(id)?.timestamp);
    /// assert!(matches!(gen.next_id(), Err(Error::Fenced)));
    /// # Ok::<(), Error>(())
    /// ```
    pub fn seal(&self) -> Option<u64> {
        self.fence.close();
        // AcqRel: the swap is ordered with every winning exchange on this one location
        // (as any RMW is), so the value it returns counts every ID issued before it.
        let prev = self.state.swap(SEALED, Ordering::AcqRel);
        let prev = if prev == SEALED {
            self.sealed_from.load(Ordering::Acquire)
        } else {
            self.sealed_from.store(prev, Ordering::Release);
            prev
        };
        if prev == SEALED {
            return None;
        }
        prev.checked_sub(1).map(|issued| issued >> self.seq_bits)
    }

    #[inline]
    fn id_at(&self, counter: u64) -> Id {
        Id::from_raw_unchecked(compose(
            counter,
            self.worker_field,
            self.worker_bits,
            self.seq_mask,
        ))
    }

    /// Current tick and nanoseconds since the epoch.
    fn now(&self) -> Result<(u64, u64), Error> {
        self.now_near(u64::MAX)
    }

    /// Current tick and nanoseconds since the epoch, given a guess of the tick (the state's).
    #[inline]
    fn now_near(&self, guess: u64) -> Result<(u64, u64), Error> {
        // (A `let else`, not `ok_or`: that would build and drop an `Error` on every call.)
        let Some(since) = self.since_epoch(self.clock.now()) else {
            return Err(Error::ClockBeforeEpoch);
        };
        let tick = self.tick_at(since, guess);
        if tick > self.max_timestamp {
            return Err(self.overflow());
        }
        Ok((tick, since))
    }

    /// Nanoseconds from the layout's epoch to `now` (`None` before the epoch).
    #[inline]
    fn since_epoch(&self, now: Duration) -> Option<u64> {
        now.as_secs()
            .saturating_mul(1_000_000_000)
            .saturating_add(u64::from(now.subsec_nanos()))
            .checked_sub(self.epoch_nanos)
    }

    /// The tick `since` falls in. When it is the `guess` (the state's tick: the clock is
    /// still inside it), a multiply replaces the 64-bit division, which would otherwise be
    /// a third of an uncontended `next_id`.
    #[inline]
    fn tick_at(&self, since: u64, guess: u64) -> u64 {
        let guess_start = guess.saturating_mul(self.tick_nanos);
        if since >= guess_start && since - guess_start < self.tick_nanos {
            guess
        } else {
            since / self.tick_nanos
        }
    }

    fn overflow(&self) -> Error {
        Error::TimestampOverflow {
            end: self.layout.end_since_unix(),
        }
    }

    /// Reserve `n >= 1` consecutive counter values, waiting (sleeping through the clock, or
    /// writing the mark) as needed; returns the first.
    fn reserve_blocking(&self, n: u64, mut carried: Option<(u64, u64)>) -> Result<u64, Error> {
        loop {
            match self.attempt(n, carried.take())? {
                Ok(start) => return Ok(start),
                Err(Blocked::Until { tick, since }) => {
                    self.clock.sleep(self.wait_until(tick, since));
                }
                Err(Blocked::Persist { tick, now_tick }) => self.persist(tick, now_tick)?,
            }
        }
    }

    /// Time from `since` (nanoseconds since the epoch) to the start of `tick`, at least 1 ns.
    fn wait_until(&self, tick: u64, since: u64) -> Duration {
        let target = tick.saturating_mul(self.tick_nanos);
        Duration::from_nanos(target.saturating_sub(since).max(1))
    }

    /// Try to reserve `n >= 1` consecutive counter values without waiting: the first one,
    /// or why it would have to wait. Optionally starts from a state returned by a failed
    /// exchange and the clock reading made before it (`(state, nanos since epoch)`); such a
    /// state is newer than the reading, so it only counts as "fresh" after a re-read.
    fn attempt(
        &self,
        n: u64,
        mut carried: Option<(u64, u64)>,
    ) -> Result<Result<u64, Blocked>, Error> {
        'fresh: loop {
            // Uniqueness needs only that compare-exchanges on this one location are atomic and
            // totally ordered, which holds at any ordering. Acquire here (with Release on the
            // winning exchange) adds one thing: the state is read BEFORE the clock, and the
            // clock reading below is never older than the readings the state was built from.
            // So "state ahead of the clock" means the clock really is behind (or the sequence
            // ran out), never that this thread was preempted between the two reads.
            let (mut cur, now_tick, since, mut cur_is_fresh) = match carried.take() {
                Some((cur, since)) => {
                    let now_tick = self.tick_at(since, cur >> self.seq_bits);
                    if now_tick > self.max_timestamp {
                        return Err(self.overflow());
                    }
                    (cur, now_tick, since, false)
                }
                None => {
                    let cur = self.state.load(Ordering::Acquire);
                    let (now_tick, since) = self.now_near(cur >> self.seq_bits)?;
                    (cur, now_tick, since, true)
                }
            };
            let floor = now_tick << self.seq_bits;
            let limit = now_tick + self.max_borrow;
            let blocked = loop {
                if cur == SEALED {
                    return Err(Error::Fenced);
                }
                let start = cur.max(floor);
                let last = start.checked_add(n - 1).ok_or_else(|| self.overflow())?;
                let last_tick = last >> self.seq_bits;
                if last_tick > limit {
                    if !cur_is_fresh {
                        // A failed exchange returned a state newer than our clock reading.
                        continue 'fresh;
                    }
                    // Ahead of the clock: sequence used up, or the clock stepped back.
                    if let Some(blocked) = self.ahead_of_clock(cur, last_tick, now_tick, since)? {
                        break blocked;
                    }
                }
                if last_tick > self.max_timestamp {
                    return Err(self.overflow());
                }
                if last_tick >= self.fence.limit() {
                    return Err(Error::Fenced);
                }
                // Acquire pairs with the Release in `mark_covers`: the threshold is below a
                // durably written mark.
                if last_tick > self.renew_at.load(Ordering::Acquire)
                    && !self.mark_covers(last_tick, now_tick)
                {
                    break Blocked::Persist {
                        tick: last_tick,
                        now_tick,
                    };
                }
                match self.state.compare_exchange_weak(
                    cur,
                    last + 1,
                    Ordering::Release,
                    Ordering::Relaxed,
                ) {
                    Ok(_) => return Ok(Ok(start)),
                    Err(actual) => {
                        cur = actual;
                        cur_is_fresh = false;
                    }
                }
            };
            return Ok(Err(blocked));
        }
    }

    /// The reservation ending at `last_tick` is past `now + max_borrow`. Returns `None` when it
    /// may still go ahead (continuing the last tick while the clock is behind), a wait,
    /// or an error when the clock is behind by more than the tolerance.
    #[cold]
    fn ahead_of_clock(
        &self,
        cur: u64,
        last_tick: u64,
        now_tick: u64,
        since: u64,
    ) -> Result<Option<Blocked>, Error> {
        let allowed = now_tick + self.max_borrow;
        if let Some(issued) = cur.checked_sub(1) {
            let issued_tick = issued >> self.seq_bits;
            if issued_tick > allowed {
                let behind_ticks = issued_tick - allowed;
                let behind = Duration::from_nanos(behind_ticks.saturating_mul(self.tick_nanos));
                if behind > self.tolerance {
                    self.warn_clock_behind(now_tick, behind);
                    return Err(Error::ClockMovedBackwards { behind });
                }
                if last_tick <= issued_tick {
                    // Keep issuing from the last tick (logical clock).
                    return Ok(None);
                }
            }
        }
        Ok(Some(Blocked::Until {
            tick: last_tick - self.max_borrow,
            since,
        }))
    }

    /// Log a backwards clock step beyond tolerance, at most once per second of clock.
    fn warn_clock_behind(&self, now_tick: u64, behind: Duration) {
        let per_second = (1_000_000_000 / self.tick_nanos).max(1);
        // Relaxed: a log rate limit; a rare duplicate warning is harmless.
        let last = self.last_warned.load(Ordering::Relaxed);
        if last == u64::MAX || now_tick.abs_diff(last) >= per_second {
            self.last_warned.store(now_tick, Ordering::Relaxed);
            tracing::warn!(?behind, tolerance = ?self.tolerance, "clock moved backwards beyond tolerance");
        }
    }

    /// Whether the durable mark covers `last_tick`; publishes the renewal threshold of the
    /// newest durable mark for the fast path, and asks the renewer for a new mark once
    /// `last_tick` is past that threshold (without waiting for it).
    #[cold]
    fn mark_covers(&self, last_tick: u64, now_tick: u64) -> bool {
        let Some(mark) = &self.mark else { return true };
        let durable = mark.durable();
        let renew_at = durable.saturating_sub(self.reserve_ticks / 2);
        // Release: pairs with the fast path's Acquire; `renew_at <= durable` always.
        if self.renew_at.load(Ordering::Relaxed) < renew_at {
            self.renew_at.fetch_max(renew_at, Ordering::Release);
        }
        if last_tick > renew_at {
            mark.request(self.next_mark(last_tick, now_tick), now_tick);
        }
        last_tick <= durable
    }

    /// The mark to write so that `tick` is covered with a full reservation to spare.
    fn next_mark(&self, tick: u64, now_tick: u64) -> u64 {
        tick.max(now_tick)
            .saturating_add(self.reserve_ticks)
            .min(self.max_timestamp)
    }

    /// Make the durable mark cover `tick` in this thread (one writer at a time; a caller
    /// arriving while the renewer writes waits for that write, then needs none).
    #[cold]
    fn persist(&self, tick: u64, now_tick: u64) -> Result<(), Error> {
        let Some(mark) = &self.mark else {
            return Ok(());
        };
        mark.persist(tick, self.next_mark(tick, now_tick), now_tick)
    }

    /// On build with a high-water mark: resume after the stored mark and write a new one.
    fn resume(&self, mark: &Mark) -> Result<(), Error> {
        if let Some(stored) = mark.load()? {
            let top = stored.tick;
            if top >= self.max_timestamp {
                return Err(self.overflow());
            }
            let ticks = |t: u64| Duration::from_nanos(t.saturating_mul(self.tick_nanos));
            // The longest wait that a clean previous run explains: its reservation (this
            // generator's, plus borrowing) and the tolerated clock step.
            let max_wait = self
                .tolerance
                .saturating_add(ticks(self.reserve_ticks + self.max_borrow + 1));
            loop {
                let (now_tick, since) = self.now()?;
                if now_tick > top {
                    break;
                }
                // The clock reads before the time the mark was written: a real step back.
                if let Some(written) = stored.written {
                    let behind = ticks(written.saturating_sub(now_tick));
                    if behind > self.tolerance {
                        tracing::warn!(
                            ?behind,
                            "clock is behind the time the high-water mark was written, beyond tolerance"
                        );
                        return Err(Error::ClockMovedBackwards { behind });
                    }
                }
                let ahead = ticks(top + 1 - now_tick);
                if ahead > max_wait {
                    return Err(Error::HighWaterMarkAhead {
                        path: mark.path(),
                        ahead,
                        max_wait,
                        clock_checked: stored.written.is_some(),
                    });
                }
                tracing::info!(wait = ?ahead, "waiting for the clock to pass the stored high-water mark");
                self.clock.sleep(self.wait_until(top + 1, since));
            }
            self.state
                .store((top + 1) << self.seq_bits, Ordering::Relaxed);
            tracing::debug!(mark = top, "resuming after the stored high-water mark");
        }
        let (now_tick, _) = self.now()?;
        let new = self.next_mark(now_tick, now_tick);
        mark.persist(new, new, now_tick)?;
        self.renew_at.store(
            new.saturating_sub(self.reserve_ticks / 2),
            Ordering::Release,
        );
        Ok(())
    }

    /// On build without a mark but with borrowing: start past every tick a predecessor with
    /// this worker id (and at most this `max_borrow`) could have issued (see `max_borrow`).
    fn skip_borrowable(&self) -> Result<(), Error> {
        let (now_tick, _) = self.now()?;
        let first = now_tick
            .saturating_add(self.max_borrow + 1)
            .min(self.max_timestamp + 1);
        self.state.store(first << self.seq_bits, Ordering::Relaxed);
        Ok(())
    }
}

impl<C: Clock> fmt::Debug for Generator<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Generator")
            .field("layout", &self.layout)
            .field("worker", &self.worker)
            .field("max_borrow", &self.max_borrow)
            .field("tolerance", &self.tolerance)
            .field("high_water_mark", &self.mark.as_ref().map(Mark::path))
            .finish_non_exhaustive()
    }
}

impl<C: Clock> Drop for Generator<C> {
    /// With a high-water mark: stop the renewer, lower the mark to the last tick issued
    /// (so the next start need not wait out `reserve_ahead`) and release the file's lock.
    /// A failure to lower it is logged; the stored mark is then just further ahead.
    fn drop(&mut self) {
        let now = self.since_epoch(self.clock.now());
        // Every ID issued so far is below the state; nothing can be issued any more.
        let mut state = self.state.load(Ordering::Acquire);
        if state == SEALED {
            state = self.sealed_from.load(Ordering::Acquire);
        }
        let issued = state.saturating_sub(1) >> self.seq_bits;
        let tick_nanos = self.tick_nanos;
        let Some(mark) = &mut self.mark else { return };
        mark.stop();
        let Some(now_tick) = now.map(|since| since / tick_nanos) else {
            return;
        };
        if let Err(e) = mark.shrink(issued, now_tick) {
            tracing::warn!(error = %e, "could not lower the high-water mark on drop; the next start may wait up to reserve_ahead");
        }
    }
}

/// IDs reserved by [`Generator::next_ids`], in increasing order.
///
/// ```
/// use ringleader_idgen::{Generator, Layout, ManualClock};
///
/// let gen = Generator::with_clock(Layout::TWITTER, 0, ManualClock::new())?;
/// let batch = gen.next_ids(3)?;
/// assert_eq!(batch.len(), 3);
/// let seqs: Vec<u32> = batch.map(|id| Layout::TWITTER.decode(id).unwrap().sequence).collect();
/// assert_eq!(seqs, [0, 1, 2]);
/// # Ok::<(), ringleader_idgen::Error>(())
/// ```
///
/// Not `Clone`: a copy would hand out the same IDs a second time.
#[derive(Debug)]
pub struct IdBatch {
    next: u64,
    end: u64,
    worker_field: u64,
    worker_bits: u32,
    seq_mask: u64,
}

impl Iterator for IdBatch {
    type Item = Id;

    #[inline]
    fn next(&mut self) -> Option<Id> {
        if self.next >= self.end {
            return None;
        }
        let counter = self.next;
        self.next += 1;
        Some(Id::from_raw_unchecked(compose(
            counter,
            self.worker_field,
            self.worker_bits,
            self.seq_mask,
        )))
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let n = usize::try_from(self.end - self.next).unwrap_or(usize::MAX);
        (n, Some(n))
    }
}

impl DoubleEndedIterator for IdBatch {
    fn next_back(&mut self) -> Option<Id> {
        if self.next >= self.end {
            return None;
        }
        self.end -= 1;
        Some(Id::from_raw_unchecked(compose(
            self.end,
            self.worker_field,
            self.worker_bits,
            self.seq_mask,
        )))
    }
}

impl ExactSizeIterator for IdBatch {}
impl std::iter::FusedIterator for IdBatch {}

/// `counter = tick << seq_bits | seq` to `tick << (worker_bits + seq_bits) | worker << seq_bits | seq`.
#[inline]
fn compose(counter: u64, worker_field: u64, worker_bits: u32, seq_mask: u64) -> u64 {
    ((counter & !seq_mask) << worker_bits) | worker_field | (counter & seq_mask)
}

fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `Probe::<T>::IS_CLONE` resolves to the inherent constant (true) when `T: Clone`,
    /// and otherwise falls back to the trait's (false).
    struct Probe<T>(std::marker::PhantomData<T>);
    trait NotClone {
        const IS_CLONE: bool = false;
    }
    impl<T> NotClone for Probe<T> {}
    impl<T: Clone> Probe<T> {
        const IS_CLONE: bool = true;
    }

    #[test]
    #[allow(clippy::assertions_on_constants)] // the constants are the test: they follow the impls
    fn id_batch_is_not_clone() {
        assert!(Probe::<Id>::IS_CLONE, "the probe detects Clone");
        assert!(
            !Probe::<IdBatch>::IS_CLONE,
            "a cloned batch would hand out its IDs a second time"
        );
    }
}
