//! The load table: per-balancer contiguous arrays of the least-* strategies' load words, so an exact scan reads one word per backend from consecutive memory.
//!
//! A least-loaded scan that follows each backend's `Arc` and reads its in-flight,
//! weight, EWMA and health words touches a cache line per backend (docs/benchmarks.md,
//! section balancer, has the measured costs, and the command). Here each backend owns
//! a *slot* for its whole life (so picks made on an old snapshot still settle in the
//! right place after an update), and the slot holds the load already in comparable
//! form:
//!
//! - least connections: the sum, over the backend's outstanding least-connections
//!   picks, of `L / weight` (`L` a common multiple of the weights, see `least.rs`).
//!   Comparing these words is comparing `in_flight / weight` exactly, with no
//!   multiplication in the scan;
//! - least response time: the backend's log-space cost
//!   (`ln(peak EWMA) + ln(in_flight + 1) - ln(weight)`, see `ewma.rs`) as `f64` bits,
//!   rewritten whenever one of its inputs changes. Costs are kept positive, so their
//!   bits order like the numbers.
//!
//! A snapshot whose backends occupy consecutive slots scans them: least response time
//! with [`argmin`] (one pass, four chains that keep where their minimum was), least
//! connections with [`argmin_ties`] (the minimum, then its first occurrence from the
//! rotating start, which ties end early). Any other layout, a backend that may be
//! unavailable (`flagged`), or a word changed under the scan, and the strategy uses
//! its exact per-backend scan instead: same answer, slower.
//!
//! The publish/scan protocol, modelled in `tests/loom.rs`: a flag set after a health
//! change is never lost to a racing clear ([`Slot::flag`], [`Slot::unflag_if`]); a
//! least-response-time word whose writer raced with a change of its inputs is written
//! again, so it is exact once the backend is quiet ([`Slot::store_lrt`]); a scan racing
//! one change answers a minimum of the words before or after it.
// Loom shim: under `RUSTFLAGS="--cfg loom"` the table's atomics and fences are loom's, so
// `tests/loom.rs` (which compiles this file into itself) explores the real protocol.
#[cfg(loom)]
use loom::sync::atomic::{fence, AtomicU64};
use parking_lot::Mutex;
use std::sync::atomic::Ordering::{Acquire, Relaxed, Release, SeqCst};
#[cfg(not(loom))]
use std::sync::atomic::{fence, AtomicU64};
use std::sync::Arc;

/// Slots a balancer's table holds: at least this many, or twice the first backend set
/// (16 KiB of least-connections words and 2 KiB of the others at 256).
pub(crate) const MIN_SLOTS: usize = 256;

/// The slots of one balancer.
#[derive(Debug)]
pub(crate) struct LoadTable {
    /// Each on its own cache line: picks of different backends add to different lines
    /// (dense, two threads picking contended for the lines and measured much slower
    /// per least-connections pick; padding costs a little on one thread).
    lc: Box<[Word]>,
    /// Dense: padding was slower on one thread and no better on two.
    lrt: Box<[AtomicU64]>,
    /// One bit per slot: the backend may be unavailable (down or ejected).
    flagged: Box<[AtomicU64]>,
    used: Mutex<Used>,
}

/// One table word on its own cache line: threads picking different backends do not
/// contend for the same line.
#[derive(Debug)]
#[repr(align(64))]
pub(crate) struct Word(AtomicU64);

impl std::ops::Deref for Word {
    type Target = AtomicU64;
    #[inline]
    fn deref(&self) -> &AtomicU64 {
        &self.0
    }
}

/// Which slots are taken, and a lower bound of the first free one (so that filling a
/// table of n slots costs O(n), not O(n^2)).
#[derive(Debug)]
struct Used {
    taken: Vec<bool>,
    first_free: usize,
}

impl LoadTable {
    /// A table of `slots` slots (rounded up to a multiple of 64).
    pub(crate) fn new(slots: usize) -> Arc<Self> {
        let slots = slots.div_ceil(64).max(1) * 64;
        let words = |n: usize| (0..n).map(|_| AtomicU64::new(0)).collect::<Box<[_]>>();
        let padded = |n: usize| {
            (0..n)
                .map(|_| Word(AtomicU64::new(0)))
                .collect::<Box<[_]>>()
        };
        Arc::new(Self {
            lc: padded(slots),
            lrt: words(slots),
            flagged: words(slots / 64),
            used: Mutex::new(Used {
                taken: vec![false; slots],
                first_free: 0,
            }),
        })
    }

    /// The lowest free slot, or `None` when the table is full (the backend then has no
    /// slot and its snapshots scan per backend).
    pub(crate) fn alloc(self: &Arc<Self>) -> Option<Slot> {
        let mut used = self.used.lock();
        let from = used.first_free;
        let index = from + used.taken[from..].iter().position(|u| !u)?;
        used.taken[index] = true;
        used.first_free = index + 1;
        Some(Slot {
            table: Arc::clone(self),
            index: index as u32,
        })
    }

    /// Least-connections words of slots `lo..lo + n`.
    #[inline]
    pub(crate) fn lc_words(&self, lo: usize, n: usize) -> &[Word] {
        &self.lc[lo..lo + n]
    }

    /// Least-response-time words of slots `lo..lo + n`.
    #[inline]
    pub(crate) fn lrt_words(&self, lo: usize, n: usize) -> &[AtomicU64] {
        &self.lrt[lo..lo + n]
    }

    /// Is any slot of `lo..lo + n` flagged as possibly unavailable?
    #[cfg(test)]
    pub(crate) fn any_flagged(&self, lo: usize, n: usize) -> bool {
        self.flags_of(lo, n).any(self)
    }

    /// The flag words and masks covering slots `lo..lo + n` (`n >= 1`), for [`FlagRange::any`].
    pub(crate) fn flags_of(&self, lo: usize, n: usize) -> FlagRange {
        let hi = lo + n;
        let (first, last) = (lo / 64, (hi - 1) / 64);
        let from = lo % 64;
        let to = hi - last * 64; // 1..=64
        let head = u64::MAX << from;
        let tail = if to == 64 { u64::MAX } else { (1u64 << to) - 1 };
        if first == last {
            FlagRange {
                first,
                last,
                head: head & tail,
                tail: head & tail,
            }
        } else {
            FlagRange {
                first,
                last,
                head,
                tail,
            }
        }
    }
}

/// Which flag bits a slot range covers: words `first..=last`, the first and last masked.
#[derive(Debug, Clone, Copy)]
pub(crate) struct FlagRange {
    first: usize,
    last: usize,
    head: u64,
    tail: u64,
}

impl FlagRange {
    /// Is any slot of the range flagged in `table`?
    #[inline]
    pub(crate) fn any(&self, table: &LoadTable) -> bool {
        let f = &table.flagged;
        if f[self.first].load(Relaxed) & self.head != 0
            || f[self.last].load(Relaxed) & self.tail != 0
        {
            return true;
        }
        self.last > self.first + 1
            && f[self.first + 1..self.last]
                .iter()
                .any(|w| w.load(Relaxed) != 0)
    }
}

/// A backend's place in its balancer's [`LoadTable`]; freed when the backend is dropped
/// (no snapshot and no pick holds it any more).
#[derive(Debug)]
pub(crate) struct Slot {
    table: Arc<LoadTable>,
    index: u32,
}

impl Slot {
    /// The table and position.
    #[inline]
    pub(crate) fn at(&self) -> (&Arc<LoadTable>, usize) {
        (&self.table, self.index as usize)
    }

    #[inline]
    pub(crate) fn lc_add(&self, amount: u32) {
        self.table.lc[self.index as usize].fetch_add(u64::from(amount), Relaxed);
    }

    #[inline]
    pub(crate) fn lc_sub(&self, amount: u32) {
        self.table.lc[self.index as usize].fetch_sub(u64::from(amount), Relaxed);
    }

    /// Publish a least-response-time word computed from inputs the caller read
    /// (`Backend::refresh_lrt`, which re-reads them afterwards and writes again if one
    /// changed). `SeqCst` fences on both sides: the one before orders the caller's own
    /// input change before its word, the one after orders the word before the re-read.
    /// With both, of two racing writers the one whose word lands last re-reads the
    /// other's input change and writes again; with `Relaxed` alone a writer could
    /// overwrite a fresh word with a stale one and re-read stale inputs (store-load
    /// reordering, which x86 does too), leaving the word wrong until the backend's
    /// next change: a backend left at `UNMEASURED_BUSY` or at a higher in-flight count
    /// is then starved by the table scans. `tests/loom.rs` finds that interleaving
    /// without the fences.
    #[inline]
    pub(crate) fn store_lrt(&self, bits: u64) {
        fence(SeqCst);
        self.table.lrt[self.index as usize].store(bits, Relaxed);
        fence(SeqCst);
    }

    fn flag_bit(&self) -> (&AtomicU64, u64) {
        let i = self.index as usize;
        (&self.table.flagged[i / 64], 1 << (i % 64))
    }

    pub(crate) fn flagged(&self) -> bool {
        let (w, bit) = self.flag_bit();
        w.load(Relaxed) & bit != 0
    }

    /// Mark the backend possibly unavailable. Call *after* the health change. `Release`
    /// pairs with the `Acquire` clear in [`Self::unflag_if`]: the flag word's
    /// read-modify-writes are totally ordered, so a clear either comes before this set
    /// (which then stands) or after it, and then reads the health change (see
    /// `tests/loom.rs`).
    pub(crate) fn flag(&self) {
        let (w, bit) = self.flag_bit();
        w.fetch_or(bit, Release);
    }

    /// Clear the flag, then keep it cleared only if `available()` (read after the clear)
    /// still says so: a health change racing with the clear leaves the flag set.
    pub(crate) fn unflag_if(&self, available: impl Fn() -> bool) {
        let (w, bit) = self.flag_bit();
        w.fetch_and(!bit, Acquire);
        if !available() {
            w.fetch_or(bit, Release);
        }
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let i = self.index as usize;
        self.table.lc[i].store(0, Relaxed);
        self.table.lrt[i].store(0, Relaxed);
        let (w, bit) = self.flag_bit();
        w.fetch_and(!bit, Relaxed);
        let mut used = self.table.used.lock();
        used.taken[i] = false;
        used.first_free = used.first_free.min(i);
    }
}

/// Position of the smallest word, ties to the first at or after `start` going round
/// (round robin among equals, like the per-backend scans).
///
/// One pass over the rotated order in four independent chains, each keeping its
/// smallest word and where it first saw it, then the best of the four. A chain's
/// minimum improves about `ln(len / 4)` times per scan, so its branch is well
/// predicted; branch-free selects measured slower per word. Searching for the minimum
/// in a second pass instead costs a mispredicted loop exit at a different place every
/// pick. Out of line so its code does not depend on the caller's.
#[inline(never)]
pub(crate) fn argmin(words: &[AtomicU64], start: usize) -> Option<usize> {
    let n = words.len();
    let start = if start < n { start } else { 0 };
    let mut mins = [u64::MAX; 4];
    let mut at = [usize::MAX; 4];
    let (head, tail) = words.split_at(start);
    lanes(tail, 0, &mut mins, &mut at);
    lanes(head, tail.len(), &mut mins, &mut at);
    let mut best = 0;
    for k in 1..4 {
        if mins[k] < mins[best] || (mins[k] == mins[best] && at[k] < at[best]) {
            best = k;
        }
    }
    // `at` holds positions in rotated order.
    let r = at[best];
    (r < n).then(|| {
        if r < tail.len() {
            start + r
        } else {
            r - tail.len()
        }
    })
}

/// Fold `words` (rotated positions `base..`) into the four chains.
#[inline(always)]
fn lanes(words: &[AtomicU64], base: usize, mins: &mut [u64; 4], at: &mut [usize; 4]) {
    let chunks = words.chunks_exact(4);
    let rest = chunks.remainder();
    let mut pos = base;
    for c in chunks {
        for k in 0..4 {
            let w = c[k].load(Relaxed);
            if w < mins[k] {
                mins[k] = w;
                at[k] = pos + k;
            }
        }
        pos += 4;
    }
    for (k, w) in rest.iter().enumerate() {
        let w = w.load(Relaxed);
        if w < mins[k] {
            mins[k] = w;
            at[k] = pos + k;
        }
    }
}

/// [`argmin`] for words with many ties (least connections): the minimum in four
/// chains, then a search for its first occurrence from `start`, which ties end early.
/// `None` if the words changed between the passes so that the minimum is gone.
#[inline]
pub(crate) fn argmin_ties(words: &[Word], start: usize) -> Option<usize> {
    let n = words.len();
    let start = if start < n { start } else { 0 };
    let mut mins = [u64::MAX; 4];
    let chunks = words.chunks_exact(4);
    let rest = chunks.remainder();
    for c in chunks {
        for (m, w) in mins.iter_mut().zip(c) {
            *m = (*m).min(w.load(Relaxed));
        }
    }
    let mut min = mins[0].min(mins[1]).min(mins[2].min(mins[3]));
    for w in rest {
        min = min.min(w.load(Relaxed));
    }
    let (head, tail) = words.split_at(start);
    if let Some(i) = tail.iter().position(|w| w.load(Relaxed) == min) {
        return Some(start + i);
    }
    head.iter().position(|w| w.load(Relaxed) == min)
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    fn words(v: &[u64]) -> Vec<AtomicU64> {
        v.iter().map(|&x| AtomicU64::new(x)).collect()
    }

    fn padded(v: &[u64]) -> Vec<Word> {
        v.iter().map(|&x| Word(AtomicU64::new(x))).collect()
    }

    /// The per-element definition: first minimum in rotated order.
    fn naive(v: &[u64], start: usize) -> usize {
        let n = v.len();
        let mut best = start % n;
        for k in 1..n {
            let i = (start + k) % n;
            if v[i] < v[best] {
                best = i;
            }
        }
        best
    }

    #[test]
    fn argmin_is_the_first_minimum_from_start() {
        let mut seed = 0x1234_5678_u64;
        for n in [
            1usize, 2, 3, 4, 5, 7, 8, 9, 63, 64, 65, 100, 127, 128, 129, 300,
        ] {
            for _ in 0..50 {
                let v: Vec<u64> = (0..n)
                    .map(|_| {
                        seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1);
                        (seed >> 33) % 4
                    })
                    .collect();
                let high = v.clone();
                let (w, wh) = (padded(&v), words(&high));
                for start in 0..n {
                    let expect = Some(naive(&v, start));
                    assert_eq!(argmin_ties(&w, start), expect, "{v:?} {start}");
                    assert_eq!(argmin(&wh, start), expect, "{v:?} {start}");
                }
            }
        }
        // A start out of range counts from 0.
        assert_eq!(argmin_ties(&padded(&[5, 1, 1]), 7), Some(1));
        assert_eq!(argmin(&words(&[5, 1, 1]), 7), Some(1));
        assert_eq!(argmin(&[], 0), None);
    }

    #[test]
    fn slots_are_lowest_free_first_and_freed_clean() {
        let t = LoadTable::new(3);
        let a = t.alloc().unwrap();
        let b = t.alloc().unwrap();
        assert_eq!((a.at().1, b.at().1), (0, 1));
        a.lc_add(6);
        a.store_lrt(7);
        a.flag();
        assert!(a.flagged() && t.any_flagged(0, 1) && !t.any_flagged(1, 1));
        drop(a);
        let c = t.alloc().unwrap();
        assert_eq!(c.at().1, 0);
        assert!(!c.flagged());
        assert_eq!(t.lc_words(0, 1)[0].load(Relaxed), 0);
        assert_eq!(t.lrt_words(0, 1)[0].load(Relaxed), 0);
        // 64 slots in all: the rest are taken, then the table is full.
        let rest: Vec<_> = (0..62).map(|_| t.alloc().unwrap()).collect();
        assert!(t.alloc().is_none());
        drop(rest);
    }

    #[test]
    fn flags_cover_ranges_across_words_and_clear_only_when_available() {
        let t = LoadTable::new(200);
        let slots: Vec<_> = (0..200).map(|_| t.alloc().unwrap()).collect();
        slots[130].flag();
        assert!(t.any_flagged(100, 31) && t.any_flagged(130, 1) && t.any_flagged(0, 200));
        assert!(!t.any_flagged(0, 130) && !t.any_flagged(131, 69));
        slots[5].flag();
        assert!(t.any_flagged(5, 1) && t.any_flagged(0, 6) && !t.any_flagged(6, 124));
        slots[5].unflag_if(|| true);
        slots[130].unflag_if(|| false);
        assert!(slots[130].flagged());
        slots[130].unflag_if(|| true);
        assert!(!slots[130].flagged() && !t.any_flagged(0, 200));
    }
}
