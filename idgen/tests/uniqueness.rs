//! All cores generating millions of IDs from one generator: no duplicates, and every
//! thread sees strictly increasing IDs.
use std::sync::Arc;
use std::thread;
use std::time::{Duration, UNIX_EPOCH};

use ringleader_idgen::{Clock, Generator, Id, Layout, ManualClock, SystemClock};

fn threads() -> usize {
    thread::available_parallelism()
        .map_or(2, |n| n.get())
        .max(2)
}

/// Run `per_thread` calls of `next` on every core; check per-thread strict monotonicity
/// and global uniqueness; return how many IDs were checked.
fn hammer<C: Clock + 'static>(gen: Generator<C>, per_thread: usize, batch: u64) -> usize {
    let gen = Arc::new(gen);
    let handles: Vec<_> = (0..threads())
        .map(|_| {
            let gen = Arc::clone(&gen);
            thread::spawn(move || {
                let mut ids: Vec<u64> = Vec::with_capacity(per_thread);
                while ids.len() < per_thread {
                    if batch == 1 {
                        ids.push(gen.next_id().unwrap().as_u64());
                    } else {
                        ids.extend(gen.next_ids(batch).unwrap().map(Id::as_u64));
                    }
                }
                ids
            })
        })
        .collect();
    let mut sorted: Vec<Vec<u64>> = Vec::new();
    for h in handles {
        let ids = h.join().unwrap();
        assert!(
            ids.windows(2).all(|w| w[0] < w[1]),
            "per-thread order broken"
        );
        sorted.push(ids);
    }
    // Each thread's list is sorted, so a linear merge finds any duplicate across threads
    // (much faster than a sort in debug builds).
    while sorted.len() > 1 {
        let a = sorted.pop().unwrap();
        let b = sorted.pop().unwrap();
        sorted.push(merge_strict(&a, &b));
    }
    sorted.pop().map_or(0, |all| all.len())
}

/// Merge two strictly increasing lists; panics on an ID present in both.
fn merge_strict(a: &[u64], b: &[u64]) -> Vec<u64> {
    let mut out = Vec::with_capacity(a.len() + b.len());
    let (mut i, mut j) = (0, 0);
    while i < a.len() && j < b.len() {
        assert_ne!(a[i], b[j], "duplicate ID {}", a[i]);
        if a[i] < b[j] {
            out.push(a[i]);
            i += 1;
        } else {
            out.push(b[j]);
            j += 1;
        }
    }
    out.extend_from_slice(&a[i..]);
    out.extend_from_slice(&b[j..]);
    out
}

/// Millions of IDs: 8 M in release, 2 M in debug builds (to keep `cargo test` in seconds).
fn millions() -> usize {
    if cfg!(debug_assertions) {
        2_000_000
    } else {
        8_000_000
    }
}

#[test]
fn system_clock_all_cores_millions_unique() {
    // 22 sequence bits: 4 M IDs per ms, so the real clock never makes threads wait and the
    // test measures contention on the compare-exchange, not the sequence cap.
    let layout = Layout::new(
        41,
        0,
        22,
        Duration::from_millis(1),
        UNIX_EPOCH + Duration::from_secs(1_700_000_000),
    )
    .unwrap();
    let gen = Generator::new(layout, 0).unwrap();
    let n = hammer(gen, millions() / threads(), 1);
    assert!(n >= millions() - threads());
}

#[test]
fn twitter_layout_with_exhaustion_and_waits_unique() {
    // TWITTER on a manual clock: every 4096 IDs the sequence runs out and threads wait
    // through ManualClock::sleep (which advances the shared clock), racing each other.
    let clock = ManualClock::new();
    let gen = Generator::with_clock(Layout::TWITTER, 77, clock.clone()).unwrap();
    hammer(gen, 200_000, 1);
    assert!(clock.slept() > Duration::ZERO);
}

#[test]
fn tiny_sequence_with_borrowing_and_batches_unique() {
    // 4 sequence bits: 16 IDs per tick; borrowing 3 ticks, batches of 7 straddle ticks.
    let layout = Layout::new(
        40,
        3,
        4,
        Duration::from_millis(1),
        UNIX_EPOCH + Duration::from_secs(1_600_000_000),
    )
    .unwrap();
    let clock = ManualClock::new();
    let gen = Generator::builder(layout)
        .clock(clock.clone())
        .max_borrow(3)
        .build(5)
        .unwrap();
    hammer(gen, 100_000, 7);
    let gen = Generator::builder(layout)
        .clock(clock)
        .max_borrow(3)
        .build(5)
        .unwrap();
    hammer(gen, 100_000, 1);
}

#[test]
fn system_clock_twitter_batches_unique() {
    let gen = Generator::builder(Layout::TWITTER)
        .clock(SystemClock)
        .build(3)
        .unwrap();
    hammer(gen, 100_000, 1000);
}
