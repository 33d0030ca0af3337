//! The fence a worker-id lease puts on a generator, the handover floor (`start_after`) and
//! `seal`, on a ManualClock: no ID at or past the fence's limit, none at or below the floor.
use std::time::Duration;

use ringleader_idgen::{Clock, Error, Fence, Generator, Id, Layout, ManualClock, NextId};

const MS: Duration = Duration::from_millis(1);

fn tick(id: Id) -> u64 {
    Layout::TWITTER.decode(id).unwrap().timestamp
}

fn now_tick(clock: &ManualClock) -> u64 {
    Layout::TWITTER.timestamp_at(clock.now()).unwrap()
}

fn fenced(clock: &ManualClock) -> (Generator<ManualClock>, Fence) {
    let fence = Fence::new();
    let gen = Generator::builder(Layout::TWITTER)
        .clock(clock.clone())
        .fence(fence.clone())
        .build(3)
        .unwrap();
    (gen, fence)
}

#[test]
fn a_new_fence_is_closed_and_allow_until_opens_it() {
    let clock = ManualClock::new();
    let (gen, fence) = fenced(&clock);
    assert!(matches!(gen.next_id(), Err(Error::Fenced)));
    assert!(matches!(gen.try_next_id(), Err(Error::Fenced)));
    assert!(matches!(gen.next_ids(10), Err(Error::Fenced)));
    fence.allow_until(now_tick(&clock) + 1);
    assert_eq!(tick(gen.next_id().unwrap()), now_tick(&clock));
    fence.close();
    assert!(matches!(gen.next_id(), Err(Error::Fenced)));
}

#[test]
fn no_id_reaches_the_limit_even_when_the_sequence_runs_into_it() {
    let clock = ManualClock::new();
    let (gen, fence) = fenced(&clock);
    let limit = now_tick(&clock) + 3;
    fence.allow_until(limit);
    // next_id waits through the manual clock as each tick's sequence runs out; at the
    // limit it must stop with Fenced instead of issuing (or waiting forever).
    let mut issued = 0u64;
    let err = loop {
        match gen.next_id() {
            Ok(id) => {
                assert!(tick(id) < limit, "issued at {} >= limit {limit}", tick(id));
                issued += 1;
            }
            Err(e) => break e,
        }
    };
    assert!(matches!(err, Error::Fenced), "{err}");
    assert_eq!(issued, 3 * 4096, "every ID below the limit was issued");
    // A batch straddling the limit is refused whole.
    fence.allow_until(now_tick(&clock) + 1);
    assert!(matches!(
        gen.next_ids(4096 * 2),
        Err(Error::BatchTooLarge { .. }) | Err(Error::Fenced)
    ));
    // The async form says Fenced too, not "wait".
    clock.advance(MS * 10);
    assert!(matches!(gen.try_next_id(), Err(Error::Fenced)));
    // Renewed: issuing resumes.
    fence.allow_until(now_tick(&clock) + 100);
    assert!(matches!(gen.try_next_id(), Ok(NextId::Ready(_))));
}

#[test]
fn a_backwards_clock_step_does_not_let_a_fenced_generator_issue() {
    let clock = ManualClock::new();
    let (gen, fence) = fenced(&clock);
    let limit = now_tick(&clock) + 2;
    fence.allow_until(limit);
    clock.advance(MS * 2);
    assert!(matches!(gen.next_id(), Err(Error::Fenced)));
    // The limit bounds timestamps, so stepping the clock back re-opens it only below it.
    clock.set_back(MS * 2);
    let id = gen.next_id().unwrap();
    assert!(tick(id) < limit);
}

#[test]
fn start_after_issues_strictly_after_the_floor_with_the_clock_behind() {
    let clock = ManualClock::new();
    let floor = now_tick(&clock) + 500; // the previous holder's clock ran 500 ms ahead
    let gen = Generator::builder(Layout::TWITTER)
        .clock(clock.clone())
        .start_after(floor)
        .build(1)
        .unwrap();
    let first = gen.next_id().unwrap();
    assert_eq!(tick(first), floor + 1);
    // Keeps going above the floor (waiting for the clock once the tick is used up).
    let ids: Vec<Id> = (0..5000).map(|_| gen.next_id().unwrap()).collect();
    assert!(ids.iter().all(|&id| tick(id) > floor && id > first));

    // Behind by more than the tolerance: an error, never an ID at or below the floor.
    let clock = ManualClock::new();
    let floor = now_tick(&clock) + 5_000;
    let gen = Generator::builder(Layout::TWITTER)
        .clock(clock.clone())
        .start_after(floor)
        .build(1)
        .unwrap();
    assert!(matches!(
        gen.next_id(),
        Err(Error::ClockMovedBackwards { .. })
    ));
    clock.advance(Duration::from_secs(5));
    assert!(tick(gen.next_id().unwrap()) > floor);
}

#[test]
fn seal_returns_the_last_timestamp_and_stops_the_generator() {
    let clock = ManualClock::new();
    let gen = Generator::with_clock(Layout::TWITTER, 2, clock.clone()).unwrap();
    assert_eq!(gen.seal(), None, "nothing issued");
    assert!(matches!(gen.next_id(), Err(Error::Fenced)));

    let gen = Generator::with_clock(Layout::TWITTER, 2, clock.clone()).unwrap();
    gen.next_id().unwrap();
    clock.advance(MS * 7);
    let last = gen.next_id().unwrap();
    assert_eq!(gen.seal(), Some(tick(last)));
    assert!(gen.fence().limit() == 0, "seal closes the fence");
    assert!(matches!(gen.next_id(), Err(Error::Fenced)));
    assert!(matches!(gen.try_next_id(), Err(Error::Fenced)));
    assert!(matches!(gen.next_ids(3), Err(Error::Fenced)));

    let floor = now_tick(&clock) + 40;
    let gen = Generator::builder(Layout::TWITTER)
        .clock(clock.clone())
        .start_after(floor)
        .build(2)
        .unwrap();
    assert_eq!(
        gen.seal(),
        Some(floor),
        "the floor bounds what a predecessor issued"
    );
}
