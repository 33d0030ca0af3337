//! Example: application code sharing one static Snowflake generator between threads, and
//! a latency measurement of `next_id` with and without a high-water mark.
//!
//! Run with `RINGLEADER_WORKER_ID=7 cargo run --example idgen`. The latency mode,
//! `cargo run --release --example idgen -- latency [SECONDS] [DIR] [RESERVE_MS]`, runs 2
//! threads calling `next_id` for SECONDS (default 10) without a mark, then as long with a
//! mark file in DIR (default: the system temp dir) reserving RESERVE_MS ahead (default:
//! the library's 2 s; shorter makes the mark writes more frequent), and prints a latency
//! histogram of each.
use std::path::{Path, PathBuf};
use std::sync::LazyLock;
use std::thread;
use std::time::{Duration, Instant, UNIX_EPOCH};

use ringleader::idgen::{Error, Generator, Id, Layout, WorkerId};

/// One generator per process: the worker id comes from `RINGLEADER_WORKER_ID` (each
/// process/pod gets its own). Unset, this demo falls back to worker 0 and says so: two
/// processes that both do that issue the same IDs.
static IDS: LazyLock<Generator> = LazyLock::new(|| {
    // Set but not a number is an error: refuse rather than guess.
    let worker = WorkerId::from_env_if_set().map(|worker| {
        worker.unwrap_or_else(|| {
            eprintln!("RINGLEADER_WORKER_ID is not set: using worker 0 (fine for one demo process, never for two)");
            WorkerId::new(0)
        })
    });
    worker
        .and_then(|w| Generator::new(Layout::TWITTER, w))
        .unwrap_or_else(|e| {
            eprintln!("cannot start the ID generator: {e}");
            std::process::exit(2)
        })
});

/// What an application would do: give every new record an ID.
fn create_order(item: &str) -> Result<(Id, String), Error> {
    Ok((IDS.next_id()?, item.to_owned()))
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    if args.next().as_deref() == Some("latency") {
        let secs = args.next().map(|s| s.parse()).transpose()?.unwrap_or(10);
        let dir = args
            .next()
            .map(PathBuf::from)
            .unwrap_or_else(std::env::temp_dir);
        let reserve = args.next().map(|s| s.parse()).transpose()?;
        return latency(
            Duration::from_secs(secs),
            &dir,
            reserve.map(Duration::from_millis),
        );
    }
    let handles: Vec<_> = (0..4)
        .map(|t| {
            thread::spawn(move || {
                (0..25_000)
                    .map(|i| create_order(&format!("item-{t}-{i}")).map(|(id, _)| id))
                    .collect::<Result<Vec<Id>, _>>()
            })
        })
        .collect();
    let mut all = Vec::new();
    for h in handles {
        all.extend(h.join().map_err(|_| "worker thread panicked")??);
    }
    let n = all.len();
    all.sort_unstable();
    all.dedup();
    println!("{n} IDs from 4 threads, {} distinct", all.len());

    // Bulk inserts: reserve a batch in one compare-exchange.
    let batch: Vec<Id> = IDS.next_ids(1000)?.collect();
    println!(
        "batch of {} IDs: {} ..= {}",
        batch.len(),
        batch[0],
        batch[999]
    );

    let last = all[all.len() - 1];
    let parts = Layout::TWITTER.decode(last)?;
    println!(
        "last ID {last}: time {}, worker {}, sequence {}",
        humantime_like(Layout::TWITTER.time_of(parts.timestamp)?),
        parts.worker,
        parts.sequence
    );
    Ok(())
}

/// Seconds since the Unix epoch with millisecond precision (no extra dependency).
fn humantime_like(t: std::time::SystemTime) -> String {
    let d = t.duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    format!(
        "{}.{:03}s after the Unix epoch",
        d.as_secs(),
        d.subsec_millis()
    )
}

// ---------- latency mode ----------

/// 41 timestamp bits, 1 worker bit, 21 sequence bits: 2 M IDs per ms, so two threads never
/// run out of sequence and every wait measured is the generator's own (clock, CAS, mark).
fn wide_layout() -> Result<Layout, Error> {
    Layout::new(
        41,
        1,
        21,
        Duration::from_millis(1),
        UNIX_EPOCH + Duration::from_millis(1_288_834_974_657),
    )
}

/// Log-linear histogram of nanoseconds: 8 sub-buckets per power of two (<= 12.5 % wide).
struct Histogram {
    counts: Vec<u64>,
    max: u64,
    n: u64,
}

const SUB: u32 = 3;

impl Histogram {
    fn new() -> Histogram {
        Histogram {
            counts: vec![0; (64 << SUB) as usize],
            max: 0,
            n: 0,
        }
    }

    fn bucket(v: u64) -> usize {
        if v < (1 << SUB) {
            return v as usize;
        }
        let exp = 63 - v.leading_zeros(); // >= SUB
        let sub = (v >> (exp - SUB)) & ((1 << SUB) - 1);
        (((exp - SUB + 1) << SUB) as u64 + sub) as usize
    }

    /// Largest value that falls in bucket `b`.
    fn upper(b: usize) -> u64 {
        let b = b as u64;
        if b < (1 << SUB) {
            return b;
        }
        let exp = (b >> SUB) + u64::from(SUB) - 1;
        let sub = b & ((1 << SUB) - 1);
        ((1u64 << SUB | sub) + 1).saturating_mul(1 << (exp - u64::from(SUB))) - 1
    }

    fn record(&mut self, v: u64) {
        self.counts[Self::bucket(v)] += 1;
        self.max = self.max.max(v);
        self.n += 1;
    }

    fn merge(&mut self, other: &Histogram) {
        for (a, b) in self.counts.iter_mut().zip(&other.counts) {
            *a += b;
        }
        self.max = self.max.max(other.max);
        self.n += other.n;
    }

    /// Upper bound of the bucket holding quantile `q` (never above the exact max).
    fn quantile(&self, q: f64) -> u64 {
        let rank = ((self.n as f64) * q).ceil().max(1.0) as u64;
        let mut seen = 0;
        for (b, c) in self.counts.iter().enumerate() {
            seen += c;
            if seen >= rank {
                return Self::upper(b).min(self.max);
            }
        }
        self.max
    }

    /// Counts per power-of-two range, from 32 ns up.
    fn print(&self, name: &str) {
        println!(
            "{name}: {} calls, p50 {} p99 {} p99.9 {} p99.99 {} max {}",
            self.n,
            fmt_ns(self.quantile(0.5)),
            fmt_ns(self.quantile(0.99)),
            fmt_ns(self.quantile(0.999)),
            fmt_ns(self.quantile(0.9999)),
            fmt_ns(self.max)
        );
        let mut lo = 0u64;
        let mut hi = 32u64;
        let mut b = 0;
        while lo <= self.max {
            let mut c = 0;
            while b < self.counts.len() && Self::upper(b) < hi {
                c += self.counts[b];
                b += 1;
            }
            if c > 0 {
                println!("  {:>9} ..< {:>9}  {c:>12}", fmt_ns(lo), fmt_ns(hi));
            }
            lo = hi;
            hi = hi.saturating_mul(2);
        }
    }
}

fn fmt_ns(ns: u64) -> String {
    if ns < 10_000 {
        format!("{ns} ns")
    } else if ns < 10_000_000 {
        format!("{:.1} us", ns as f64 / 1e3)
    } else {
        format!("{:.1} ms", ns as f64 / 1e6)
    }
}

/// 2 threads calling `gen.next_id()` for `run`, each call timed; merged histogram.
fn measure(gen: &Generator, run: Duration) -> Result<Histogram, Error> {
    let stop = Instant::now() + run;
    let results: Vec<Result<Histogram, Error>> = thread::scope(|s| {
        let handles: Vec<_> = (0..2)
            .map(|_| {
                s.spawn(|| {
                    let mut h = Histogram::new();
                    let mut last = None;
                    loop {
                        // Check the deadline every 1024 calls, outside the timed region.
                        for _ in 0..1024 {
                            let t = Instant::now();
                            let id = gen.next_id()?;
                            let ns = t.elapsed().as_nanos() as u64;
                            h.record(ns);
                            if last >= Some(id) {
                                panic!("IDs out of order on one thread");
                            }
                            last = Some(id);
                        }
                        if Instant::now() >= stop {
                            return Ok(h);
                        }
                    }
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("measuring thread panicked"))
            .collect()
    });
    let mut all = Histogram::new();
    for r in results {
        all.merge(&r?);
    }
    Ok(all)
}

fn latency(
    run: Duration,
    dir: &Path,
    reserve: Option<Duration>,
) -> Result<(), Box<dyn std::error::Error>> {
    let layout = wide_layout()?;
    println!(
        "next_id latency, 2 threads x {run:?}, layout 41/1/21 (sequence never runs out), system clock"
    );
    let plain = Generator::new(layout, 1)?;
    let no_mark = measure(&plain, run)?;
    drop(plain);
    no_mark.print("no mark");

    let path = dir.join(format!(
        "ringleader-idgen-latency-{}.hwm",
        std::process::id()
    ));
    let mut builder = Generator::builder(layout).high_water_mark(&path);
    if let Some(reserve) = reserve {
        builder = builder.reserve_ahead(reserve);
    }
    let marked = builder.build(1)?;
    let with_mark = measure(&marked, run)?;
    drop(marked);
    with_mark.print(&format!(
        "high-water mark in {}, reserve_ahead {}",
        dir.display(),
        reserve.map_or("2s (default)".to_owned(), |r| format!("{r:?}"))
    ));
    for p in [
        path.clone(),
        path.with_extension("hwm.tmp"),
        path.with_extension("hwm.lock"),
    ] {
        let _ = std::fs::remove_file(p);
    }
    println!(
        "ratio with/without mark: p99.9 {:.2}x, max {:.2}x",
        with_mark.quantile(0.999) as f64 / no_mark.quantile(0.999).max(1) as f64,
        with_mark.max as f64 / no_mark.max.max(1) as f64
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::Histogram;

    #[test]
    fn buckets_bound_their_values() {
        for v in [0u64, 1, 7, 8, 9, 15, 16, 100, 1000, 123_456, 1 << 40] {
            let b = Histogram::bucket(v);
            assert!(Histogram::upper(b) >= v, "{v}");
            assert!(b == 0 || Histogram::upper(b - 1) < v, "{v}");
        }
    }
}
