//! Loom model of the load table's publish/scan protocol (run with `RUSTFLAGS="--cfg loom"`).
//!
//! `src/table.rs` is compiled into this test as it is (`#[path]`): under `cfg(loom)` its
//! atomics and fences are loom's, so the real `Slot::{flag, unflag_if, flagged,
//! store_lrt, lc_add, lc_sub}`, `FlagRange::any`, `argmin` and `argmin_ties` run here.
//! The backend side (`src/backend.rs`, which needs a clock, an EWMA and a health cell
//! in std atomics) is mirrored by [`Model`], line by line:
//!
//! - [`Model::refresh_lrt`] is `Backend::refresh_lrt` (same loop of four, same reads,
//!   same `UNMEASURED_BUSY` rule, same re-check of `lrt_base` and in-flight);
//! - [`Model::in_flight`] is `Backend::in_flight` (`finished` first, saturating);
//! - [`Model::sync_flag`] is `Backend::sync_flag`; `up` stands for
//!   `Backend::is_available` (health words read `Relaxed`), `down` for
//!   `HealthCell::report_check(false)` (a `Relaxed` store) followed by `Backend::flag`.
//!
//! The invariants:
//!
//! 1. Flags: once the writers are done, a backend that is unavailable is flagged (a
//!    flag may stay set on an available backend: scans then take the per-backend
//!    path, which clears it). A clear racing with a health change never wins: the
//!    `SeqCst` fences of `flag` and `unflag_if` make either the clear's re-check see
//!    the change, or the set come after the clear. A scan that happens after `flag`
//!    returned sees the flag and does not use the table.
//! 2. Least-response-time words: once the writers are done, the word is exactly
//!    `cost(lrt_base, in_flight, sampled)` of the final inputs ("a writer that sees a
//!    racing change writes again": a writer whose word is the last one written must
//!    have read the final inputs, or see them on its re-check and write again).
//! 3. Scans under one concurrent change: `argmin` answers the first minimum from the
//!    start of the words before or after the change; `argmin_ties` answers a minimum
//!    (not necessarily the first) of the words before or after it, or `None`.
#![cfg(loom)]

#[allow(dead_code)]
#[path = "../src/table.rs"]
mod table;

use loom::sync::atomic::{AtomicBool, AtomicU64};
use loom::sync::Arc;
use loom::thread;
use std::sync::atomic::Ordering::Relaxed;
use table::{argmin, argmin_ties, LoadTable, Slot};

/// `loom::model` with a preemption bound of 3 unless `LOOM_MAX_PREEMPTIONS` says otherwise.
fn model<F: Fn() + Sync + Send + 'static>(f: F) {
    let mut builder = loom::model::Builder::new();
    if builder.preemption_bound.is_none() {
        builder.preemption_bound = Some(3);
    }
    builder.check(f);
}

/// `backend.rs`'s `UNMEASURED_BUSY`.
const UNMEASURED_BUSY: f64 = 1e300;

/// The inputs of one backend's table word, as `backend.rs` keeps them.
struct Model {
    requests: AtomicU64,
    finished: AtomicU64,
    /// `lrt_base` (`f64` bits).
    base: AtomicU64,
    sampled: AtomicBool,
    /// Active up and not ejected.
    up: AtomicBool,
    slot: Slot,
}

impl Model {
    fn new(slot: Slot, in_flight: u64, base: f64, sampled: bool) -> Self {
        let m = Self {
            requests: AtomicU64::new(in_flight),
            finished: AtomicU64::new(0),
            base: AtomicU64::new(base.to_bits()),
            sampled: AtomicBool::new(sampled),
            up: AtomicBool::new(true),
            slot,
        };
        m.slot.store_lrt(m.cost().to_bits());
        m
    }

    fn in_flight(&self) -> u64 {
        let finished = self.finished.load(Relaxed);
        self.requests.load(Relaxed).saturating_sub(finished)
    }

    /// The exact cost of the current inputs.
    fn cost(&self) -> f64 {
        let f = self.in_flight();
        if f != 0 && !self.sampled.load(Relaxed) {
            UNMEASURED_BUSY
        } else {
            f64::from_bits(self.base.load(Relaxed)) + ((f + 1) as f64).ln()
        }
    }

    /// `Backend::refresh_lrt`: its re-check compares `lrt_base`, in-flight and `sampled`.
    fn refresh_lrt(&self) {
        for _ in 0..4 {
            let (base, f) = (self.base.load(Relaxed), self.in_flight());
            let sampled = self.sampled.load(Relaxed);
            let cost = if f != 0 && !sampled {
                UNMEASURED_BUSY
            } else {
                f64::from_bits(base) + ((f + 1) as f64).ln()
            };
            self.slot.store_lrt(cost.to_bits());
            if self.base.load(Relaxed) == base
                && self.in_flight() == f
                && self.sampled.load(Relaxed) == sampled
            {
                return;
            }
        }
    }

    fn word(&self) -> f64 {
        let (t, i) = self.slot.at();
        f64::from_bits(t.lrt_words(i, 1)[0].load(Relaxed))
    }

    /// `Backend::sync_flag`.
    fn sync_flag(&self) {
        if self.slot.flagged() && self.up.load(Relaxed) {
            self.slot.unflag_if(|| self.up.load(Relaxed));
        }
    }

    /// `report_check(false)`: the health change, then `Backend::flag`.
    fn down(&self) {
        self.up.store(false, Relaxed);
        self.slot.flag();
    }
}

fn one(in_flight: u64, base: f64, sampled: bool) -> Arc<Model> {
    let table = LoadTable::new(64);
    Arc::new(Model::new(table.alloc().unwrap(), in_flight, base, sampled))
}

/// A pick (start, then refresh) races with the end of another (finish, then refresh):
/// the word ends exact.
#[test]
fn lrt_word_is_exact_after_a_racing_pick_and_settle() {
    model(|| {
        let m = one(1, 65.0, true);
        let m2 = Arc::clone(&m);
        let t = thread::spawn(move || {
            m2.requests.fetch_add(1, Relaxed);
            m2.refresh_lrt();
        });
        m.finished.fetch_add(1, Relaxed);
        m.refresh_lrt();
        t.join().unwrap();
        assert_eq!(m.word().to_bits(), m.cost().to_bits(), "stale word");
    });
}

/// The first sample of a never-measured backend (sampled, new base, refresh) races with
/// a pick: the word must not stay at `UNMEASURED_BUSY` (which would starve the backend).
/// Without the re-check of `sampled` in `refresh_lrt`, the picking writer may read the
/// new `lrt_base` but the old `sampled` (two `Relaxed` loads of different words), write
/// `UNMEASURED_BUSY` last and pass its re-check: this model found that.
#[test]
fn lrt_word_is_exact_after_a_first_sample_races_a_pick() {
    model(|| {
        let m = one(1, 65.0, false);
        let m2 = Arc::clone(&m);
        let t = thread::spawn(move || {
            m2.requests.fetch_add(1, Relaxed);
            m2.refresh_lrt();
        });
        // `record_success`: the EWMA (and `sampled`), then `refresh_lrt_base`.
        m.sampled.store(true, Relaxed);
        m.base.store(66.0f64.to_bits(), Relaxed);
        m.refresh_lrt();
        t.join().unwrap();
        assert_eq!(m.word().to_bits(), m.cost().to_bits(), "stale word");
    });
}

/// A backend that was ejected is available again and still flagged; a scan's
/// `sync_flag` clears the flag while an active check takes the backend down.
#[test]
fn a_clear_racing_a_health_change_leaves_the_flag_set() {
    model(|| {
        let m = one(0, 65.0, true);
        m.slot.flag();
        let m2 = Arc::clone(&m);
        let t = thread::spawn(move || m2.down());
        m.sync_flag();
        t.join().unwrap();
        assert!(!m.up.load(Relaxed));
        assert!(m.slot.flagged(), "an unavailable backend lost its flag");
        // A scan after `flag` returned (here: after the join) does not use the table.
        let (table, i) = m.slot.at();
        assert!(table.flags_of(i, 1).any(table));
    });
}

/// Two clears (two scans' `sync_flag`) race with a health change.
#[test]
fn two_clears_racing_a_health_change_leave_the_flag_set() {
    model(|| {
        let m = one(0, 65.0, true);
        m.slot.flag();
        let (m2, m3) = (Arc::clone(&m), Arc::clone(&m));
        let t = thread::spawn(move || m2.down());
        let c = thread::spawn(move || m3.sync_flag());
        m.sync_flag();
        t.join().unwrap();
        c.join().unwrap();
        assert!(m.slot.flagged(), "an unavailable backend lost its flag");
    });
}

/// First minimum from `start` in rotated order.
fn first_min(v: &[u64], start: usize) -> usize {
    let n = v.len();
    (0..n)
        .map(|k| (start + k) % n)
        .fold(start % n, |b, i| if v[i] < v[b] { i } else { b })
}

fn is_min(v: &[u64], i: usize) -> bool {
    v.iter().all(|&w| v[i] <= w)
}

/// A least-connections scan races with a pick's end (`lc_sub`) and another pick
/// (`lc_add`): its answer is a minimum of the words before or after each change.
#[test]
fn scans_racing_a_change_answer_a_minimum_of_before_or_after() {
    for (before, slot, delta, start) in [
        ([1u64, 1, 2], 0usize, -1i64, 1usize),
        ([2, 1, 1], 1, 1, 1),
        ([3, 2, 2], 0, -2, 2),
    ] {
        model(move || {
            let table = LoadTable::new(64);
            let slots: Vec<Slot> = (0..3).map(|_| table.alloc().unwrap()).collect();
            for (s, &w) in slots.iter().zip(&before) {
                s.lc_add(w as u32);
                s.store_lrt(w);
            }
            let mut after = before;
            after[slot] = (after[slot] as i64 + delta) as u64;
            let slots = Arc::new(slots);
            let s2 = Arc::clone(&slots);
            let t = thread::spawn(move || {
                let s = &s2[slot];
                if delta < 0 {
                    s.lc_sub(delta.unsigned_abs() as u32);
                } else {
                    s.lc_add(delta as u32);
                }
                s.store_lrt(after[slot]);
            });
            let lc = argmin_ties(table.lc_words(0, 3), start);
            let lrt = argmin(table.lrt_words(0, 3), start).unwrap();
            t.join().unwrap();
            if let Some(i) = lc {
                assert!(
                    is_min(&before, i) || is_min(&after, i),
                    "{i}: {before:?} -> {after:?}"
                );
            }
            assert!(
                lrt == first_min(&before, start) || lrt == first_min(&after, start),
                "{lrt}: {before:?} -> {after:?}"
            );
        });
    }
}
