//! Criterion benchmarks of `ringleader::balancer`: `pick` + guard drop for every strategy,
//! at 3, 10 and 100 backends, on one thread and with two threads contending.
//!
//! Run: `cargo bench --bench strategies -- --warm-up-time 1 --measurement-time 3`
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use ringleader::balancer::{BackendSpec, Balancer, BalancerConfig, RequestCtx, StrategyKind};
use std::hint::black_box;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

const SIZES: [usize; 3] = [3, 10, 100];
const KEYS: usize = 1024;

fn balancer(kind: StrategyKind, n: usize) -> Balancer {
    // Unequal weights so the weighted strategies do real work.
    let specs = (0..n)
        .map(|i| {
            BackendSpec::new(
                format!("10.0.{}.{}:8080", i / 256, i % 256),
                1 + (i % 3) as u32,
            )
        })
        .collect();
    let config = BalancerConfig {
        strategy: kind,
        seed: Some(7),
        ..BalancerConfig::default()
    };
    let lb = Balancer::new(specs, config).expect("valid bench config");
    // Give every backend an EWMA sample so least_response_time compares real estimates.
    for i in 0..n {
        if let Some(p) = lb.candidates(&RequestCtx::new()).find(|p| p.index() == i) {
            p.success(Duration::from_micros(500 + 10 * i as u64));
        }
    }
    lb
}

/// The picked index (`usize::MAX` for none), dropping the guard. A plain word for
/// `black_box`: an `Option<usize>` is two words written separately and read back as
/// one 16-byte value, a store-forwarding stall of a few ns that is the harness's,
/// not the balancer's.
#[inline(always)]
fn index(pick: Option<ringleader::balancer::Pick>) -> usize {
    pick.map_or(usize::MAX, |p| p.index())
}

fn keys() -> Vec<[u8; 8]> {
    (0..KEYS as u64)
        .map(|k| k.wrapping_mul(0x9E37_79B9_7F4A_7C15).to_le_bytes())
        .collect()
}

/// The floor of any design where a pick is a counted, `'static` guard: clone an `Arc`,
/// advance a shared cursor, count the request started and finished, drop the `Arc`
/// (five relaxed atomic read-modify-writes, no strategy, no snapshot swap).
fn floor(c: &mut Criterion) {
    struct Counters {
        started: AtomicU64,
        finished: AtomicU64,
    }
    let mut group = c.benchmark_group("pick_drop/floor_arc_guard");
    for n in SIZES {
        let backends: Arc<Vec<Counters>> = Arc::new(
            (0..n)
                .map(|_| Counters {
                    started: AtomicU64::new(0),
                    finished: AtomicU64::new(0),
                })
                .collect(),
        );
        let cursor = AtomicUsize::new(0);
        group.bench_function(BenchmarkId::new("1_thread", n), |b| {
            b.iter(|| {
                let snap = Arc::clone(&backends);
                let i = cursor.fetch_add(1, Relaxed) % n;
                snap[i].started.fetch_add(1, Relaxed);
                snap[i].finished.fetch_add(1, Relaxed);
                black_box(i)
            })
        });
    }
    group.finish();
}

fn single_thread(c: &mut Criterion) {
    let keys = keys();
    for kind in StrategyKind::ALL {
        let mut group = c.benchmark_group(format!("pick_drop/{kind}"));
        for n in SIZES {
            let lb = balancer(kind, n);
            let mut i = 0usize;
            group.bench_function(BenchmarkId::new("1_thread", n), |b| {
                b.iter(|| {
                    i = (i + 1) % KEYS;
                    let pick = lb.pick(&RequestCtx::with_key(&keys[i]));
                    black_box(index(pick))
                })
            });
        }
        group.finish();
    }
}

/// The least-* strategies with every backend busy (1-3 requests held in flight each), so
/// no backend is idle: least connections cannot stop its scan early and looks at all.
fn busy(c: &mut Criterion) {
    for kind in [
        StrategyKind::LeastConnections,
        StrategyKind::LeastResponseTime,
    ] {
        let mut group = c.benchmark_group(format!("pick_drop_busy/{kind}"));
        for n in SIZES {
            let lb = balancer(kind, n);
            let held: Vec<_> = (0..3)
                .flat_map(|round| {
                    lb.candidates(&RequestCtx::new())
                        .filter(move |p| p.index() % 3 >= round)
                        .collect::<Vec<_>>()
                })
                .collect();
            assert!(lb.backends().iter().all(|b| b.in_flight() > 0));
            group.bench_function(BenchmarkId::new("1_thread", n), |b| {
                b.iter(|| black_box(index(lb.pick(&RequestCtx::new()))))
            });
            drop(held);
        }
        group.finish();
    }
}

/// A plain exact least-loaded scan on its own: the lowest `in_flight / weight` over one
/// contiguous array of atomic counters (one relaxed load, a cross-multiplied compare
/// per backend, one dependency chain; no guard, no health check, no snapshot). The
/// yardstick the least-* picks were measured against: their load-table scans go below
/// it at 100 backends with precomputed words and four independent chains.
fn scan_floor(c: &mut Criterion) {
    let mut group = c.benchmark_group("pick_drop_busy/floor_scan");
    for n in SIZES {
        let in_flight: Vec<AtomicU64> =
            (0..n).map(|i| AtomicU64::new(1 + (i % 3) as u64)).collect();
        let weights: Vec<u64> = (0..n).map(|i| 1 + (i % 3) as u64).collect();
        group.bench_function(BenchmarkId::new("1_thread", n), |b| {
            b.iter(|| {
                let (mut best, mut bf, mut bw) = (0usize, u64::MAX, 1u64);
                for (i, (f, &w)) in black_box(&in_flight).iter().zip(&weights).enumerate() {
                    let f = f.load(Relaxed);
                    if f * bw < bf * w {
                        (best, bf, bw) = (i, f, w);
                    }
                }
                black_box(best)
            })
        });
    }
    group.finish();
}

fn two_threads(c: &mut Criterion) {
    let keys = Arc::new(keys());
    for kind in StrategyKind::ALL {
        let mut group = c.benchmark_group(format!("pick_drop/{kind}"));
        for n in SIZES {
            let lb = Arc::new(balancer(kind, n));
            // Each of the two threads does `iters` picks; the time reported is the wall
            // time of both, so it is the per-pick latency each thread sees under contention.
            group.bench_function(BenchmarkId::new("2_threads", n), |b| {
                b.iter_custom(|iters| {
                    let barrier = Barrier::new(2);
                    let work = |offset: usize| {
                        barrier.wait();
                        let start = Instant::now();
                        for j in 0..iters as usize {
                            let key = &keys[(j + offset) % KEYS];
                            black_box(index(lb.pick(&RequestCtx::with_key(key))));
                        }
                        start.elapsed()
                    };
                    std::thread::scope(|s| {
                        let other = s.spawn(|| work(KEYS / 2));
                        let mine = work(0);
                        mine.max(other.join().expect("bench thread"))
                    })
                })
            });
        }
        group.finish();
    }
}

criterion_group!(benches, floor, single_thread, busy, scan_floor, two_threads);
criterion_main!(benches);
