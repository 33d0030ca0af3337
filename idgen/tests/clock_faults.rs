//! Deterministic ManualClock tests: sequence exhaustion (wait and borrow), clock steps
//! within and beyond tolerance, layout end and epoch, batches.
use std::time::{Duration, UNIX_EPOCH};

use ringleader_idgen::{Clock, Error, Generator, Id, Layout, ManualClock, NextId, Parts};

const MS: Duration = Duration::from_millis(1);

fn parts(id: Id) -> Parts {
    Layout::TWITTER.decode(id).unwrap()
}

/// The clock's current TWITTER tick.
fn tick_of(clock: &ManualClock) -> u64 {
    let since = clock.now() - Layout::TWITTER.epoch().duration_since(UNIX_EPOCH).unwrap();
    (since.as_nanos() / MS.as_nanos()) as u64
}

#[test]
fn first_id_carries_the_clock_worker_and_sequence_zero() {
    let clock = ManualClock::new();
    let gen = Generator::with_clock(Layout::TWITTER, 9, clock.clone()).unwrap();
    let p = parts(gen.next_id().unwrap());
    assert_eq!(
        p,
        Parts {
            timestamp: tick_of(&clock),
            worker: 9,
            sequence: 0
        }
    );
    let p2 = parts(gen.next_id().unwrap());
    assert_eq!(p2, Parts { sequence: 1, ..p });
    clock.advance(MS * 3);
    assert_eq!(
        parts(gen.next_id().unwrap()),
        Parts {
            timestamp: p.timestamp + 3,
            worker: 9,
            sequence: 0
        }
    );
}

#[test]
fn exhausted_sequence_waits_for_the_next_tick_through_the_clock() {
    let clock = ManualClock::new();
    // Put the clock in the middle of a tick, so the wait is exactly the rest of the tick.
    clock.advance(Duration::from_micros(300));
    let gen = Generator::with_clock(Layout::TWITTER, 1, clock.clone()).unwrap();
    let t0 = tick_of(&clock);
    let ids: Vec<Id> = (0..4096).map(|_| gen.next_id().unwrap()).collect();
    assert!(ids.iter().all(|id| parts(*id).timestamp == t0));
    assert_eq!(clock.slept(), Duration::ZERO, "4096 IDs fit in one tick");

    let next = parts(gen.next_id().unwrap());
    assert_eq!(
        next,
        Parts {
            timestamp: t0 + 1,
            worker: 1,
            sequence: 0
        }
    );
    // The generator asked the clock to sleep until the next tick boundary, no longer.
    let slept = clock.slept();
    assert!(
        slept > Duration::ZERO && slept <= Duration::from_micros(700),
        "{slept:?}"
    );
    assert_eq!(tick_of(&clock), t0 + 1);
}

#[test]
fn borrowing_issues_from_future_ticks_up_to_the_bound_then_waits() {
    let clock = ManualClock::new();
    let gen = Generator::builder(Layout::TWITTER)
        .clock(clock.clone())
        .max_borrow(2)
        .build(1)
        .unwrap();
    // Without a mark, a borrowing generator starts past the 2 ticks a predecessor could
    // have borrowed; once the clock is there, it has its full headroom.
    clock.advance(MS * 3);
    let t0 = tick_of(&clock);
    let ids: Vec<Id> = (0..3 * 4096).map(|_| gen.next_id().unwrap()).collect();
    assert_eq!(
        clock.slept(),
        Duration::ZERO,
        "3 ticks' worth issued without waiting"
    );
    assert_eq!(parts(ids[4095]).timestamp, t0);
    assert_eq!(
        parts(ids[4096]),
        Parts {
            timestamp: t0 + 1,
            worker: 1,
            sequence: 0
        }
    );
    assert_eq!(parts(ids[3 * 4096 - 1]).timestamp, t0 + 2);
    assert!(ids.windows(2).all(|w| w[0] < w[1]));

    // Borrowing is used up: the next ID waits until tick t0+1, so it is at most 2 ahead again.
    let next = parts(gen.next_id().unwrap());
    assert_eq!(
        next,
        Parts {
            timestamp: t0 + 3,
            worker: 1,
            sequence: 0
        }
    );
    assert_eq!(tick_of(&clock), t0 + 1);
    assert!(clock.slept() > Duration::ZERO);
}

#[test]
fn clock_behind_within_tolerance_keeps_issuing_from_the_last_tick() {
    let clock = ManualClock::new();
    let gen = Generator::builder(Layout::TWITTER)
        .clock(clock.clone())
        .backwards_tolerance(Duration::from_millis(10))
        .build(2)
        .unwrap();
    let before: Vec<Id> = (0..100).map(|_| gen.next_id().unwrap()).collect();
    let t0 = parts(before[0]).timestamp;
    clock.set_back(Duration::from_millis(5));

    // No error, no wait: the remaining sequence of tick t0 is used.
    let during = parts(gen.next_id().unwrap());
    assert_eq!(
        during,
        Parts {
            timestamp: t0,
            worker: 2,
            sequence: 100
        }
    );
    assert_eq!(clock.slept(), Duration::ZERO);

    // Use up tick t0; then the generator waits for the clock to reach t0+1 (about 6 ms).
    let rest: Vec<Id> = (0..(4096 - 101)).map(|_| gen.next_id().unwrap()).collect();
    assert_eq!(parts(*rest.last().unwrap()).sequence, 4095);
    let after = parts(gen.next_id().unwrap());
    assert_eq!(
        after,
        Parts {
            timestamp: t0 + 1,
            worker: 2,
            sequence: 0
        }
    );
    assert!(
        clock.slept() >= Duration::from_millis(5),
        "{:?}",
        clock.slept()
    );
    assert!(clock.slept() <= Duration::from_millis(6));

    let mut all = before;
    all.extend(rest);
    assert!(all.windows(2).all(|w| w[0] < w[1]));
}

#[test]
fn clock_behind_beyond_tolerance_is_an_error_until_it_catches_up() {
    let clock = ManualClock::new();
    let gen = Generator::builder(Layout::TWITTER)
        .clock(clock.clone())
        .backwards_tolerance(Duration::from_millis(10))
        .build(3)
        .unwrap();
    let last = gen.next_id().unwrap();
    clock.set_back(Duration::from_secs(2));
    match gen.next_id() {
        Err(Error::ClockMovedBackwards { behind }) => {
            assert!(
                behind >= Duration::from_millis(1999) && behind <= Duration::from_secs(2),
                "{behind:?}"
            )
        }
        other => panic!("expected ClockMovedBackwards, got {other:?}"),
    }
    assert!(gen.next_ids(5).is_err(), "batches too");
    assert_eq!(
        clock.slept(),
        Duration::ZERO,
        "no waiting beyond the tolerance"
    );

    // Back within tolerance: issuing resumes, strictly after the last ID.
    clock.advance(Duration::from_millis(1995));
    let next = gen.next_id().unwrap();
    assert!(next > last);
}

#[test]
fn default_tolerance_rides_out_a_leap_second_step() {
    let clock = ManualClock::new();
    let gen = Generator::with_clock(Layout::TWITTER, 0, clock.clone()).unwrap();
    let mut prev = gen.next_id().unwrap();
    clock.set_back(Duration::from_secs(1));
    for _ in 0..10_000 {
        let id = gen.next_id().unwrap();
        assert!(id > prev);
        prev = id;
    }
    // 10,000 IDs needed 3 ticks; the generator waited for the clock to catch up.
    assert!(clock.slept() >= Duration::from_secs(1));
}

#[test]
fn clock_before_epoch_and_after_layout_end_are_errors() {
    let layout = Layout::new(8, 2, 2, MS, UNIX_EPOCH + Duration::from_secs(1_000)).unwrap();
    let clock = ManualClock::starting_at(Duration::from_secs(999));
    let gen = Generator::with_clock(layout, 1, clock.clone()).unwrap();
    assert!(matches!(gen.next_id(), Err(Error::ClockBeforeEpoch)));

    // 8 timestamp bits of 1 ms: the layout ends 256 ms after its epoch.
    clock.set(Duration::from_secs(1_000) + Duration::from_millis(255));
    let ids: Vec<Id> = (0..4).map(|_| gen.next_id().unwrap()).collect();
    assert_eq!(layout.decode(ids[3]).unwrap().timestamp, 255);
    assert!(matches!(
        gen.next_id(),
        Err(Error::TimestampOverflow { .. })
    ));
    clock.advance(MS);
    assert!(matches!(
        gen.next_id(),
        Err(Error::TimestampOverflow { .. })
    ));
}

#[test]
fn batches_are_consecutive_and_ordered_with_single_ids() {
    let clock = ManualClock::new();
    let gen = Generator::with_clock(Layout::TWITTER, 4, clock.clone()).unwrap();
    let a = gen.next_id().unwrap();
    let batch: Vec<Id> = gen.next_ids(1000).unwrap().collect();
    let b = gen.next_id().unwrap();
    assert_eq!(batch.len(), 1000);
    assert!(a < batch[0] && batch[999] < b);
    assert_eq!(parts(batch[0]).sequence, 1);
    assert_eq!(parts(batch[999]).sequence, 1000);
    assert_eq!(parts(b).sequence, 1001);
    assert_eq!(gen.next_ids(0).unwrap().count(), 0);

    // A batch that does not fit the rest of the tick waits for the next one.
    let big: Vec<Id> = gen.next_ids(4096).unwrap().collect();
    assert_eq!(
        parts(big[0]),
        Parts {
            timestamp: parts(b).timestamp + 1,
            worker: 4,
            sequence: 0
        }
    );
    assert!(big.windows(2).all(|w| w[0] < w[1]));
    let rev: Vec<Id> = gen.next_ids(3).unwrap().rev().collect();
    assert!(rev[0] > rev[1] && rev[1] > rev[2]);
}

#[test]
fn oversized_batch_is_a_clear_error() {
    let gen = Generator::with_clock(Layout::TWITTER, 4, ManualClock::new()).unwrap();
    let err = gen.next_ids(4097).unwrap_err();
    assert!(
        matches!(
            err,
            Error::BatchTooLarge {
                requested: 4097,
                max: 4096
            }
        ),
        "{err}"
    );
    let borrowing = Generator::builder(Layout::TWITTER)
        .clock(ManualClock::new())
        .max_borrow(3)
        .build(4)
        .unwrap();
    assert_eq!(borrowing.max_batch(), 4 * 4096);
    assert_eq!(borrowing.next_ids(4 * 4096).unwrap().len(), 4 * 4096);
}

#[test]
fn worker_ids_are_range_checked() {
    assert!(matches!(
        Generator::new(Layout::JS_SAFE, 32),
        Err(Error::WorkerIdOutOfRange {
            worker: 32,
            max: 31
        })
    ));
    assert!(matches!(
        Generator::new(Layout::JS_SAFE, -1),
        Err(Error::WorkerIdOutOfRange { worker: -1, .. })
    ));
    assert!(Generator::new(Layout::JS_SAFE, 31u16).is_ok());
    assert!(Generator::new(Layout::SONYFLAKE, 65_535u32).is_ok());
}

/// A clock that, while armed, simulates the calling thread being preempted right after each
/// clock read: another caller issues an ID 5 s later, then the stale reading is returned.
struct PreemptedClock {
    inner: ManualClock,
    /// How many more readings to make stale.
    armed: std::sync::atomic::AtomicU32,
    gen: std::sync::OnceLock<std::sync::Weak<Generator<std::sync::Arc<PreemptedClock>>>>,
}

impl Clock for PreemptedClock {
    fn now(&self) -> Duration {
        let reading = self.inner.now();
        let order = std::sync::atomic::Ordering::SeqCst;
        if self
            .armed
            .fetch_update(order, order, |n| n.checked_sub(1))
            .is_ok()
        {
            self.inner.advance(Duration::from_secs(5));
            let gen = self.gen.get().and_then(|g| g.upgrade()).unwrap();
            // The other thread's ID, 5 s in the future of `reading` (its own clock readings
            // are not made stale: park the remaining arms meanwhile).
            let left = self.armed.swap(0, order);
            gen.next_id().unwrap();
            self.armed.store(left, order);
        }
        reading
    }

    fn sleep(&self, duration: Duration) {
        self.inner.sleep(duration)
    }
}

#[test]
fn preemption_between_clock_and_state_is_not_a_clock_step() {
    let clock = std::sync::Arc::new(PreemptedClock {
        inner: ManualClock::new(),
        armed: 0.into(),
        gen: std::sync::OnceLock::new(),
    });
    let gen = std::sync::Arc::new(
        Generator::builder(Layout::TWITTER)
            .clock(std::sync::Arc::clone(&clock))
            .backwards_tolerance(Duration::from_millis(10))
            .build(1)
            .unwrap(),
    );
    clock.gen.set(std::sync::Arc::downgrade(&gen)).unwrap();
    let a = gen.next_id().unwrap();
    // Two stale readings: the inlined fast path's and the first one of the slow path.
    clock.armed.store(2, std::sync::atomic::Ordering::SeqCst);
    // Each clock reading is 5 s older than the state another caller just wrote: the
    // generator must re-read, not report a 5 s backwards step.
    let b = gen.next_id().expect("a stale reading is not a clock step");
    assert!(b > a);
    assert_eq!(clock.inner.slept(), Duration::ZERO);
}

#[test]
fn try_next_id_returns_the_wait_instead_of_sleeping() {
    let clock = ManualClock::new();
    clock.advance(Duration::from_micros(300));
    let gen = Generator::builder(Layout::TWITTER)
        .clock(clock.clone())
        .backwards_tolerance(Duration::from_millis(10))
        .build(6)
        .unwrap();
    let t0 = tick_of(&clock);
    let first: Vec<Id> = gen.next_ids(4096).unwrap().collect();

    // Sequence used up: the rest of the tick, 700 us, and no sleep.
    assert_eq!(
        gen.try_next_id().unwrap(),
        NextId::Wait(Duration::from_micros(700))
    );
    assert_eq!(clock.slept(), Duration::ZERO);
    clock.advance(Duration::from_micros(700));
    let NextId::Ready(id) = gen.try_next_id().unwrap() else {
        panic!("the next tick has begun")
    };
    assert_eq!(
        parts(id),
        Parts {
            timestamp: t0 + 1,
            worker: 6,
            sequence: 0
        }
    );
    assert!(id > first[4095]);

    // Clock 5 ms behind (within tolerance) once tick t0+1 is used up: wait for it to catch up.
    let _ = gen.next_ids(4095).unwrap();
    clock.set_back(Duration::from_millis(5));
    match gen.try_next_id().unwrap() {
        NextId::Wait(d) => assert!(
            d > Duration::from_millis(5) && d <= Duration::from_millis(6),
            "{d:?}"
        ),
        NextId::Ready(id) => panic!("issued {:?} while the clock is behind", parts(id)),
    }
    assert_eq!(clock.slept(), Duration::ZERO);

    // Beyond the tolerance: the same error as next_id.
    clock.set_back(Duration::from_secs(1));
    assert!(matches!(
        gen.try_next_id(),
        Err(Error::ClockMovedBackwards { .. })
    ));
    assert_eq!(clock.slept(), Duration::ZERO, "try_next_id never sleeps");
}
