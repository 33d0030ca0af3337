//! High-water-mark tests: restarts after the clock moved back never reissue an ID;
//! a corrupt or foreign mark file is a clear error; a mark reserved further ahead is not
//! mistaken for a clock step; borrowing without a mark does not reissue on restart.
mod common;

use std::path::PathBuf;
use std::time::Duration;

use common::{stored_tick, temp_dir};
use ringleader_idgen::{Error, Generator, Id, Layout, ManualClock};

fn generator(
    clock: &ManualClock,
    path: &PathBuf,
    worker: u32,
) -> Result<Generator<ManualClock>, Error> {
    Generator::builder(Layout::TWITTER)
        .clock(clock.clone())
        .high_water_mark(path)
        .build(worker)
}

#[test]
fn restart_after_the_clock_moved_back_never_reissues() {
    let dir = temp_dir("restart");
    let path = dir.path().join("worker-5.hwm");
    let clock = ManualClock::new();
    let first_run: Vec<Id> = {
        let gen = generator(&clock, &path, 5).unwrap();
        let mut ids = Vec::new();
        for _ in 0..50 {
            ids.extend(gen.next_ids(1000).unwrap());
            clock.advance(Duration::from_millis(10));
        }
        ids
    };
    let max_before = *first_run.iter().max().unwrap();

    // The process restarts and the clock stepped back 800 ms (within the tolerance of 1 s):
    // the new generator waits until the clock passes the stored mark, which the first run
    // lowered on drop to its last issued tick, 10 ms before it stopped.
    clock.set_back(Duration::from_millis(800));
    let gen = generator(&clock, &path, 5).unwrap();
    assert!(
        clock.slept() >= Duration::from_millis(790),
        "waited for the clock: {:?}",
        clock.slept()
    );
    let second_run: Vec<Id> = (0..10_000).map(|_| gen.next_id().unwrap()).collect();
    assert!(
        second_run[0] > max_before,
        "{} <= {}",
        second_run[0],
        max_before
    );
    assert!(second_run.windows(2).all(|w| w[0] < w[1]));
}

#[test]
fn without_a_mark_the_same_restart_would_reissue() {
    // The control for the test above: it shows the scenario really produces duplicates
    // when no high-water mark is kept.
    let clock = ManualClock::new();
    let first = Generator::with_clock(Layout::TWITTER, 5, clock.clone()).unwrap();
    let a = first.next_id().unwrap();
    drop(first);
    clock.set_back(Duration::from_millis(800));
    clock.advance(Duration::from_millis(800));
    let second = Generator::with_clock(Layout::TWITTER, 5, clock.clone()).unwrap();
    assert_eq!(
        second.next_id().unwrap(),
        a,
        "same tick, same worker, sequence 0 again"
    );
}

#[test]
fn restart_without_a_mark_does_not_reissue_borrowed_ids() {
    let clock = ManualClock::new();
    let build = || {
        Generator::builder(Layout::TWITTER)
            .clock(clock.clone())
            .max_borrow(5)
            .build(5)
            .unwrap()
    };
    let first = build();
    clock.advance(Duration::from_millis(6)); // the first generator's own start-up skip
                                             // Six ticks' worth at once: five of them borrowed ahead of the clock.
    let first_ids: Vec<Id> = (0..6).flat_map(|_| first.next_ids(4096).unwrap()).collect();
    assert_eq!(clock.slept(), Duration::ZERO, "all borrowed, no wait");
    let last = *first_ids.last().unwrap();
    drop(first);

    // Restart one tick later; the clock is right. The borrowed ticks are still ahead of it.
    clock.advance(Duration::from_millis(1));
    let second = build();
    let next = second.next_id().unwrap();
    assert!(
        next > last,
        "restart reissued a borrowed tick: {:?} <= {:?}",
        Layout::TWITTER.decode(next).unwrap(),
        Layout::TWITTER.decode(last).unwrap()
    );
}

#[test]
fn a_mark_reserved_further_ahead_by_a_crashed_run_is_not_a_clock_step() {
    let dir = temp_dir("ahead");
    let path = dir.path().join("w.hwm");
    let crashed = dir.path().join("crashed.hwm");
    let clock = ManualClock::new();
    // A run with a 10 s reservation; copying its file while it runs gives the file a crash
    // (no clean drop) would leave: a mark 10 s ahead of the clock.
    let long = Generator::builder(Layout::TWITTER)
        .clock(clock.clone())
        .high_water_mark(&path)
        .reserve_ahead(Duration::from_secs(10))
        .build(1)
        .unwrap();
    long.next_id().unwrap();
    std::fs::copy(&path, &crashed).unwrap();
    drop(long);

    // Restarted with the default 2 s reservation and 1 s tolerance, the clock unchanged.
    let err = generator(&clock, &crashed, 1).unwrap_err();
    match &err {
        Error::HighWaterMarkAhead {
            ahead,
            max_wait,
            clock_checked: true,
            ..
        } => {
            assert!(*ahead >= Duration::from_secs(10), "{ahead:?}");
            assert!(*max_wait < Duration::from_secs(4), "{max_wait:?}");
        }
        other => panic!("expected HighWaterMarkAhead, got {other:?}"),
    }
    let text = err.to_string();
    assert!(text.contains("reserved further ahead"), "{text}");
    assert!(text.contains("has not moved back"), "{text}");
    assert_eq!(clock.slept(), Duration::ZERO);

    // The same file with the clock 5 s behind the time it was written: that IS a clock step.
    clock.set_back(Duration::from_secs(5));
    match generator(&clock, &crashed, 1) {
        Err(Error::ClockMovedBackwards { behind }) => {
            assert_eq!(behind, Duration::from_secs(5))
        }
        other => panic!("expected ClockMovedBackwards, got {other:?}"),
    }

    // With a reservation as long as the crashed run's, it waits the mark out instead.
    clock.advance(Duration::from_secs(5));
    let patient = Generator::builder(Layout::TWITTER)
        .clock(clock.clone())
        .high_water_mark(&crashed)
        .reserve_ahead(Duration::from_secs(10))
        .build(1)
        .unwrap();
    assert!(
        clock.slept() >= Duration::from_secs(10),
        "{:?}",
        clock.slept()
    );
    patient.next_id().unwrap();
}

#[test]
fn clock_far_behind_the_mark_refuses_to_start() {
    let dir = temp_dir("far");
    let path = dir.path().join("w.hwm");
    let clock = ManualClock::new();
    generator(&clock, &path, 1).unwrap().next_id().unwrap();
    clock.set_back(Duration::from_secs(3600));
    match generator(&clock, &path, 1) {
        Err(Error::ClockMovedBackwards { behind }) => assert!(behind >= Duration::from_secs(3600)),
        other => panic!("expected ClockMovedBackwards, got {other:?}"),
    }
    assert_eq!(clock.slept(), Duration::ZERO);
}

#[test]
fn ids_never_pass_the_durable_mark() {
    let dir = temp_dir("mark");
    let path = dir.path().join("w.hwm");
    let clock = ManualClock::new();
    let gen = Generator::builder(Layout::TWITTER)
        .clock(clock.clone())
        .high_water_mark(&path)
        .reserve_ahead(Duration::from_millis(100))
        .build(1)
        .unwrap();
    let mut writes = 0;
    let mut last_mark = stored_tick(&path);
    for step in 0..1_000 {
        let id = gen.next_id().unwrap();
        let mark = stored_tick(&path);
        assert!(
            Layout::TWITTER.decode(id).unwrap().timestamp <= mark,
            "step {step}"
        );
        if mark != last_mark {
            writes += 1;
            last_mark = mark;
        }
        clock.advance(Duration::from_millis(3));
    }
    // 3 s of clock in 100 ms reservations, renewed when half is used: 30 to 60 writes
    // (depending on how the renewer thread keeps up), not one per ID.
    assert!((25..=65).contains(&writes), "{writes} writes");
    // (Checked once the renewer has stopped: it may be between write and rename before.)
    drop(gen);
    assert!(
        !dir.path().join("w.hwm.tmp").exists(),
        "temp file renamed away"
    );
}

#[test]
fn corrupt_or_foreign_mark_files_are_clear_errors() {
    let dir = temp_dir("corrupt");
    let path = dir.path().join("w.hwm");
    let clock = ManualClock::new();
    generator(&clock, &path, 1).unwrap();
    let good = std::fs::read_to_string(&path).unwrap();

    // A flipped digit in the tick: checksum mismatch.
    let tick = stored_tick(&path).to_string();
    let mut digits = tick.clone().into_bytes();
    digits[0] = if digits[0] == b'1' { b'2' } else { b'1' };
    let tampered = good.replace(
        &format!("tick {tick}"),
        &format!("tick {}", String::from_utf8(digits).unwrap()),
    );
    std::fs::write(&path, tampered).unwrap();
    let err = generator(&clock, &path, 1).unwrap_err();
    assert!(matches!(err, Error::HighWaterMarkCorrupt { .. }), "{err}");
    assert!(err.to_string().contains("checksum"), "{err}");

    // Truncated, and garbage.
    std::fs::write(&path, &good[..good.len() / 2]).unwrap();
    assert!(matches!(
        generator(&clock, &path, 1),
        Err(Error::HighWaterMarkCorrupt { .. })
    ));
    std::fs::write(&path, [0xff, 0xfe, 0x00]).unwrap();
    assert!(matches!(
        generator(&clock, &path, 1),
        Err(Error::HighWaterMarkCorrupt { .. })
    ));

    // Valid file of another worker or layout.
    std::fs::write(&path, &good).unwrap();
    let err = generator(&clock, &path, 2).unwrap_err();
    assert!(err.to_string().contains("different generator"), "{err}");
    let err = Generator::builder(Layout::SONYFLAKE)
        .clock(clock.clone())
        .high_water_mark(&path)
        .build(1)
        .unwrap_err();
    assert!(matches!(err, Error::HighWaterMarkCorrupt { .. }), "{err}");
    // The original still works: the failed builds above left the file as it was.
    generator(&clock, &path, 1).unwrap();
}

#[test]
fn unwritable_mark_location_fails_at_build() {
    let dir = temp_dir("io");
    let path = dir.path().join("missing-subdir").join("w.hwm");
    let err = generator(&ManualClock::new(), &path, 1).unwrap_err();
    assert!(matches!(err, Error::HighWaterMarkIo { .. }), "{err}");
    assert!(err.to_string().contains("missing-subdir"), "{err}");
}
