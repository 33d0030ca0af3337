//! High-water-mark tests: restarts after the clock moved back never reissue an ID;
//! a corrupt or foreign mark file is a clear error.
use std::path::PathBuf;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use ringleader_idgen::{Error, Generator, Id, Layout, ManualClock};

/// A fresh, empty directory for one test, removed on drop (no tempfile crate needed).
struct TempDir(PathBuf);

impl TempDir {
    fn join(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn temp_dir(name: &str) -> TempDir {
    static N: AtomicU32 = AtomicU32::new(0);
    let dir = std::env::temp_dir().join(format!(
        "ringleader-idgen-{}-{}-{}",
        std::process::id(),
        name,
        N.fetch_add(1, Ordering::Relaxed)
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    TempDir(dir)
}

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

fn stored_tick(path: &PathBuf) -> u64 {
    let text = std::fs::read_to_string(path).unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix("tick "))
        .unwrap()
        .parse()
        .unwrap()
}

#[test]
fn restart_after_the_clock_moved_back_never_reissues() {
    let dir = temp_dir("restart");
    let path = dir.join("worker-5.hwm");
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

    // The process restarts and the clock stepped back 800 ms (within reserve_ahead 2 s +
    // tolerance 1 s): the new generator waits until the clock passes the stored mark.
    clock.set_back(Duration::from_millis(800));
    let gen = generator(&clock, &path, 5).unwrap();
    assert!(
        clock.slept() > Duration::from_millis(800),
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
fn clock_far_behind_the_mark_refuses_to_start() {
    let dir = temp_dir("far");
    let path = dir.join("w.hwm");
    let clock = ManualClock::new();
    generator(&clock, &path, 1).unwrap().next_id().unwrap();
    clock.set_back(Duration::from_secs(3600));
    match generator(&clock, &path, 1) {
        Err(Error::ClockMovedBackwards { behind }) => assert!(behind > Duration::from_secs(3600)),
        other => panic!("expected ClockMovedBackwards, got {other:?}"),
    }
    assert_eq!(clock.slept(), Duration::ZERO);
}

#[test]
fn ids_never_pass_the_durable_mark() {
    let dir = temp_dir("mark");
    let path = dir.join("w.hwm");
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
    // 3 s of clock in 100 ms reservations: about 30 writes, not one per ID.
    assert!((25..=35).contains(&writes), "{writes} writes");
    assert!(!dir.join("w.hwm.tmp").exists(), "temp file renamed away");
}

#[test]
fn corrupt_or_foreign_mark_files_are_clear_errors() {
    let dir = temp_dir("corrupt");
    let path = dir.join("w.hwm");
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
    // The original still works.
    assert!(generator(&clock, &path, 1).is_ok());
}

#[test]
fn unwritable_mark_location_fails_at_build() {
    let dir = temp_dir("io");
    let path = dir.join("missing-subdir").join("w.hwm");
    let err = generator(&ManualClock::new(), &path, 1).unwrap_err();
    assert!(matches!(err, Error::HighWaterMarkIo { .. }), "{err}");
    assert!(err.to_string().contains("missing-subdir"), "{err}");
}
