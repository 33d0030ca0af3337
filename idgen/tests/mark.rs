//! High-water-mark upkeep: the file's lock (in one process and across two real ones), the
//! renewal made in the background before callers reach the mark, the mark lowered on drop,
//! and `try_next_id` never waiting for the disk.
mod common;

use std::io::{BufRead, BufReader, Read};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::{stored_tick, temp_dir, wait_for};
use ringleader_idgen::{Error, Generator, Layout, ManualClock, NextId, SystemClock};

const MS: Duration = Duration::from_millis(1);

fn marked(
    clock: &ManualClock,
    path: &Path,
    reserve: Duration,
) -> Result<Generator<ManualClock>, Error> {
    Generator::builder(Layout::TWITTER)
        .clock(clock.clone())
        .high_water_mark(path)
        .reserve_ahead(reserve)
        .build(3)
}

fn tick_of(clock: &ManualClock) -> u64 {
    let epoch = Layout::TWITTER
        .epoch()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap();
    ((clock.now() - epoch).as_nanos() / MS.as_nanos()) as u64
}

use ringleader_idgen::Clock;

#[test]
fn a_second_generator_on_the_same_file_is_refused_until_the_first_is_dropped() {
    let dir = temp_dir("lock");
    let path = dir.path().join("w.hwm");
    let clock = ManualClock::new();
    let first = marked(&clock, &path, Duration::from_secs(2)).unwrap();
    let stored = stored_tick(&path);
    let err = marked(&clock, &path, Duration::from_secs(2)).unwrap_err();
    match &err {
        Error::HighWaterMarkLocked { path: p, pid } => {
            assert_eq!(p, &path);
            assert_eq!(*pid, Some(std::process::id()));
        }
        other => panic!("expected HighWaterMarkLocked, got {other:?}"),
    }
    assert!(
        err.to_string()
            .contains(&format!("held by process {}", std::process::id())),
        "{err}"
    );
    assert_eq!(
        stored_tick(&path),
        stored,
        "the refused generator wrote nothing"
    );
    first.next_id().unwrap();
    drop(first);
    marked(&clock, &path, Duration::from_secs(2)).unwrap();
}

/// Environment variable that turns the test below into the lock-holding child process.
const HOLD: &str = "RINGLEADER_IDGEN_TEST_HOLD_MARK";

#[test]
fn a_second_process_on_the_same_file_is_told_the_holders_pid() {
    if let Some(path) = std::env::var_os(HOLD) {
        // Child: hold the mark until the parent closes our stdin.
        let gen = Generator::builder(Layout::TWITTER)
            .high_water_mark(&path)
            .build(9)
            .unwrap();
        gen.next_id().unwrap();
        println!("holding pid {}", std::process::id());
        let _ = std::io::stdin().read_to_end(&mut Vec::new());
        return;
    }
    let dir = temp_dir("lock2");
    let path = dir.path().join("w9.hwm");
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "a_second_process_on_the_same_file_is_told_the_holders_pid",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(HOLD, &path)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let pid: u32 = loop {
        let line = lines
            .next()
            .expect("child exited before holding the mark")
            .unwrap();
        // (libtest's "test <name> ... " precedes it on the same line.)
        if let Some((_, pid)) = line.split_once("holding pid ") {
            break pid.trim().parse().unwrap();
        }
    };
    assert_eq!(pid, child.id());

    let build = || {
        Generator::builder(Layout::TWITTER)
            .clock(SystemClock)
            .high_water_mark(&path)
            .build(9)
    };
    let err = build().unwrap_err();
    assert!(
        matches!(err, Error::HighWaterMarkLocked { pid: Some(p), .. } if p == pid),
        "{err:?}"
    );
    assert!(
        err.to_string().contains(&format!("held by process {pid}")),
        "{err}"
    );

    drop(child.stdin.take()); // the child drops its generator and exits
    assert!(child.wait().unwrap().success());
    let gen = build().expect("free once the holder exited");
    gen.next_id().unwrap();
}

#[test]
fn the_mark_is_renewed_in_the_background_before_callers_reach_it() {
    let dir = temp_dir("renew");
    let path = dir.path().join("w.hwm");
    let clock = ManualClock::new();
    let gen = marked(&clock, &path, 100 * MS).unwrap();
    let t0 = tick_of(&clock);
    assert_eq!(stored_tick(&path), t0 + 100);

    // Past half of the reservation, but not at the mark: the call issues at once...
    clock.advance(60 * MS);
    let id = gen.next_id().unwrap();
    assert_eq!(Layout::TWITTER.decode(id).unwrap().timestamp, t0 + 60);
    // ...and with no further call, the renewer writes a mark a whole reservation ahead.
    wait_for("the renewer to extend the mark", || {
        stored_tick(&path) >= t0 + 160
    });
    assert_eq!(clock.slept(), Duration::ZERO);

    // Steady state: each step crosses the half-way point again; the renewal lands before
    // the clock reaches the mark, so every call is served from the durable reservation.
    for _ in 0..20 {
        let before = stored_tick(&path);
        clock.advance(60 * MS);
        let id = gen.next_id().unwrap();
        let tick = Layout::TWITTER.decode(id).unwrap().timestamp;
        assert!(
            tick <= before,
            "issued {tick} past the mark {before} it found"
        );
        wait_for("the next renewal", || stored_tick(&path) >= tick + 100);
    }
}

#[test]
fn try_next_id_at_the_mark_returns_a_wait_and_leaves_the_write_to_the_renewer() {
    let dir = temp_dir("try");
    let path = dir.path().join("w.hwm");
    let clock = ManualClock::new();
    let gen = marked(&clock, &path, 100 * MS).unwrap();
    let t0 = tick_of(&clock);
    // Jump past the mark with no call in between: no renewal was asked for yet.
    clock.advance(150 * MS);
    match gen.try_next_id().unwrap() {
        NextId::Wait(d) => assert_eq!(d, MS, "one tick"),
        NextId::Ready(id) => panic!("issued {id} past a mark that was not yet renewed"),
    }
    assert_eq!(clock.slept(), Duration::ZERO);
    // The renewer writes the mark meanwhile; callers that retry get IDs once it is durable.
    let mut issued = None;
    wait_for("an ID once the renewer has written the mark", || {
        match gen.try_next_id().unwrap() {
            NextId::Ready(id) => issued = Some(id),
            NextId::Wait(d) => assert_eq!(d, MS),
        }
        issued.is_some()
    });
    let tick = Layout::TWITTER.decode(issued.unwrap()).unwrap().timestamp;
    assert_eq!(tick, t0 + 150);
    assert!(
        tick + 100 <= stored_tick(&path),
        "a whole reservation ahead"
    );
    assert_eq!(clock.slept(), Duration::ZERO);
}

#[test]
fn dropping_lowers_the_mark_so_the_next_start_does_not_wait() {
    let dir = temp_dir("drop");
    let path = dir.path().join("w.hwm");
    let clock = ManualClock::new();
    let gen = marked(&clock, &path, Duration::from_secs(2)).unwrap();
    let last = gen.next_ids(10).unwrap().next_back().unwrap();
    assert!(
        stored_tick(&path) >= tick_of(&clock) + 2000,
        "2 s reserved while running"
    );
    drop(gen);
    assert_eq!(
        stored_tick(&path),
        Layout::TWITTER.decode(last).unwrap().timestamp
    );

    clock.advance(MS);
    let again = marked(&clock, &path, Duration::from_secs(2)).unwrap();
    assert_eq!(
        clock.slept(),
        Duration::ZERO,
        "no reservation left to wait out"
    );
    assert!(again.next_id().unwrap() > last);
}
