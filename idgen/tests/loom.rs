//! Loom model of the generator's compare-exchange loop (run with `RUSTFLAGS="--cfg loom"`).
//!
//! The crate's atomics come from `loom::sync::atomic` under `cfg(loom)` (see `src/sync.rs`),
//! so loom explores the interleavings of the real `next_id` / `next_ids` code, including the
//! wait path (ManualClock's `sleep` advances the shared clock), borrowing, and the
//! non-blocking `try_next_id` (which shares the loop but returns its waits).
#![cfg(loom)]

use std::time::{Duration, UNIX_EPOCH};

use loom::sync::Arc;
use loom::thread;
use ringleader_idgen::{Clock, Generator, Id, Layout, ManualClock, NextId};

/// 1 sequence bit: two IDs per tick, so two threads taking two IDs each must exhaust the
/// sequence and wait, racing on both the state and the clock.
fn tiny_layout() -> Layout {
    Layout::new(20, 2, 1, Duration::from_millis(1), UNIX_EPOCH).unwrap()
}

/// `loom::model` with a preemption bound of 3 unless `LOOM_MAX_PREEMPTIONS` says otherwise:
/// unbounded exploration of these models takes tens of minutes, bound 3 about a second.
fn model<F: Fn() + Sync + Send + 'static>(f: F) {
    let mut builder = loom::model::Builder::new();
    if builder.preemption_bound.is_none() {
        builder.preemption_bound = Some(3);
    }
    builder.check(f);
}

fn check(mut all: Vec<Id>, per_thread: &[Vec<Id>]) {
    for ids in per_thread {
        assert!(
            ids.windows(2).all(|w| w[0] < w[1]),
            "per-thread order: {ids:?}"
        );
    }
    let n = all.len();
    all.sort();
    all.dedup();
    assert_eq!(all.len(), n, "duplicate IDs");
}

#[test]
fn concurrent_next_id_is_unique_and_per_thread_increasing() {
    model(|| {
        let clock = ManualClock::starting_at(Duration::from_secs(1));
        let gen = Arc::new(Generator::with_clock(tiny_layout(), 1, clock).unwrap());
        let spawned: Vec<_> = (0..2)
            .map(|_| {
                let gen = Arc::clone(&gen);
                thread::spawn(move || vec![gen.next_id().unwrap(), gen.next_id().unwrap()])
            })
            .collect();
        let mine = vec![gen.next_id().unwrap()];
        let mut per_thread: Vec<Vec<Id>> = spawned.into_iter().map(|h| h.join().unwrap()).collect();
        per_thread.push(mine);
        let all = per_thread.iter().flatten().copied().collect();
        check(all, &per_thread);
    });
}

#[test]
fn batches_and_borrowing_race_with_single_ids() {
    model(|| {
        let clock = ManualClock::starting_at(Duration::from_secs(1));
        let gen = Generator::builder(tiny_layout())
            .clock(clock)
            .max_borrow(1)
            .build(2)
            .unwrap();
        let gen = Arc::new(gen);
        let g = Arc::clone(&gen);
        let batcher = thread::spawn(move || g.next_ids(3).unwrap().collect::<Vec<Id>>());
        let singles = vec![gen.next_id().unwrap(), gen.next_id().unwrap()];
        let batch = batcher.join().unwrap();
        assert_eq!(batch.len(), 3);
        let per_thread = vec![batch, singles];
        let all = per_thread.iter().flatten().copied().collect();
        check(all, &per_thread);
    });
}

#[test]
fn try_next_id_races_next_id() {
    model(|| {
        let clock = ManualClock::starting_at(Duration::from_secs(1));
        let gen = Arc::new(Generator::with_clock(tiny_layout(), 3, clock).unwrap());
        let g = Arc::clone(&gen);
        let polling = thread::spawn(move || {
            let mut ids = Vec::new();
            while ids.len() < 2 {
                match g.try_next_id().unwrap() {
                    NextId::Ready(id) => ids.push(id),
                    // What an async caller's sleep would do: let the clock move on.
                    NextId::Wait(d) => g.clock().sleep(d),
                }
            }
            ids
        });
        let blocking = vec![gen.next_id().unwrap(), gen.next_id().unwrap()];
        let per_thread = vec![polling.join().unwrap(), blocking];
        let all = per_thread.iter().flatten().copied().collect();
        check(all, &per_thread);
    });
}

#[test]
fn seal_counts_every_id_issued_before_it() {
    model(|| {
        let clock = ManualClock::starting_at(Duration::from_secs(1));
        let gen = Arc::new(Generator::with_clock(tiny_layout(), 1, clock).unwrap());
        let g = Arc::clone(&gen);
        let issuing = thread::spawn(move || {
            let mut ids = Vec::new();
            for _ in 0..2 {
                match g.next_id() {
                    Ok(id) => ids.push(id),
                    Err(ringleader_idgen::Error::Fenced) => break,
                    Err(e) => panic!("{e}"),
                }
            }
            ids
        });
        let sealed = gen.seal();
        let ids = issuing.join().unwrap();
        for id in &ids {
            let ts = tiny_layout().decode(*id).unwrap().timestamp;
            assert!(
                sealed.is_some_and(|s| ts <= s),
                "{id:?} issued at {ts}, after seal returned {sealed:?}"
            );
        }
        assert!(matches!(
            gen.next_id(),
            Err(ringleader_idgen::Error::Fenced)
        ));
    });
}
