//! Criterion benchmarks of `ringleader::ring`: lookups (hashing a 16-byte key
//! included) against the `hashring` crate on the same nodes and keys, the
//! other placements, the placements compatible with nginx, ketama and Redis
//! Cluster beside the native ring (`cargo bench --bench ring -- compat`), and
//! ring build time (the `hashring` peer built with its `batch_add`).
use std::hint::black_box;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use ringleader::ring::{
    HashRing, Jump, Ketama, Maglev, Modulo, NginxHash, RedisCluster, Rendezvous, SlotMap,
    MAGLEV_DEFAULT_TABLE,
};

const VNODES: u32 = 160;

/// Maglev's table size for `n` nodes: the default up to 655 nodes, else the
/// smallest prime >= 100 x 1000 (Maglev needs M >= 100 x nodes).
fn maglev_table(n: usize) -> usize {
    if n * 100 <= MAGLEV_DEFAULT_TABLE {
        MAGLEV_DEFAULT_TABLE
    } else {
        assert!(n <= 1000, "size the table for {n} nodes");
        100_003
    }
}

fn node_names(n: usize) -> Vec<String> {
    (0..n)
        .map(|i| format!("10.0.{}.{}:6379", i / 256, i % 256))
        .collect()
}

/// 4096 distinct 16-byte keys; the benches cycle through them.
fn keys() -> Vec<[u8; 16]> {
    (0..4096u64)
        .map(|i| {
            let mut k = [0u8; 16];
            k[..8].copy_from_slice(&i.wrapping_mul(0x9E37_79B9_7F4A_7C15).to_le_bytes());
            k[8..].copy_from_slice(&(i ^ 0xDEAD_BEEF).to_le_bytes());
            k
        })
        .collect()
}

/// A virtual node for the `hashring` crate (its documented vnode pattern).
#[derive(Debug, Clone, Hash, PartialEq, Eq)]
struct VNode {
    node: usize,
    index: u32,
}

/// The `hashring` crate's ring of `n` nodes x 160 vnodes, built the fast way:
/// one `batch_add` (a single sort), not `add` per vnode (a sort per call).
fn hashring_ring(n: usize) -> hashring::HashRing<VNode> {
    let mut ring = hashring::HashRing::new();
    ring.batch_add(
        (0..n)
            .flat_map(|node| (0..VNODES).map(move |index| VNode { node, index }))
            .collect(),
    );
    ring
}

fn lookup(c: &mut Criterion) {
    let keys = keys();
    let mut g = c.benchmark_group("lookup");
    for n in [10usize, 100, 1000] {
        let nodes: Vec<(String, u32)> = node_names(n).into_iter().map(|s| (s, 1)).collect();
        let ring = HashRing::from_nodes(nodes.clone(), VNODES).expect("valid ring");
        let theirs = hashring_ring(n);
        let mut i = 0usize;
        g.bench_with_input(BenchmarkId::new("ringleader_ring", n), &n, |b, _| {
            b.iter(|| {
                i = (i + 1) & 4095;
                black_box(ring.get(black_box(&keys[i])))
            })
        });
        g.bench_with_input(BenchmarkId::new("hashring_crate", n), &n, |b, _| {
            b.iter(|| {
                i = (i + 1) & 4095;
                black_box(theirs.get(black_box(&keys[i])))
            })
        });
        let jump = Jump::new(node_names(n));
        g.bench_with_input(BenchmarkId::new("jump", n), &n, |b, _| {
            b.iter(|| {
                i = (i + 1) & 4095;
                black_box(jump.get(black_box(&keys[i])))
            })
        });
        let maglev = Maglev::with_table_size(nodes.clone(), maglev_table(n)).expect("valid maglev");
        g.bench_with_input(BenchmarkId::new("maglev", n), &n, |b, _| {
            b.iter(|| {
                i = (i + 1) & 4095;
                black_box(maglev.get(black_box(&keys[i])))
            })
        });
        let hrw = Rendezvous::new(nodes.clone()).expect("valid rendezvous");
        g.bench_with_input(BenchmarkId::new("rendezvous", n), &n, |b, _| {
            b.iter(|| {
                i = (i + 1) & 4095;
                black_box(hrw.get(black_box(&keys[i])))
            })
        });
        let modulo = Modulo::new(node_names(n)).expect("valid modulo");
        g.bench_with_input(BenchmarkId::new("modulo", n), &n, |b, _| {
            b.iter(|| {
                i = (i + 1) & 4095;
                black_box(modulo.get(black_box(&keys[i])))
            })
        });
        let slots = SlotMap::new(nodes, 16384).expect("valid slot map");
        g.bench_with_input(BenchmarkId::new("slots", n), &n, |b, _| {
            b.iter(|| {
                i = (i + 1) & 4095;
                black_box(slots.get(black_box(&keys[i])))
            })
        });
    }
    g.finish();
}

/// Lookups (key hashing included) of the compatible placements beside the
/// native ring, on the same nodes and keys: nginx (CRC32), ketama (MD5),
/// Redis Cluster (CRC16 slot), ring (xxh3).
fn compat(c: &mut Criterion) {
    let keys = keys();
    let mut g = c.benchmark_group("compat");
    for n in [10usize, 100] {
        let nodes: Vec<(String, u32)> = node_names(n).into_iter().map(|s| (s, 1)).collect();
        let ring = HashRing::from_nodes(nodes.clone(), VNODES).expect("valid ring");
        let nginx = NginxHash::new(nodes.clone()).expect("valid nginx placement");
        let ketama = Ketama::new(nodes).expect("valid ketama placement");
        let redis = RedisCluster::new(node_names(n)).expect("valid cluster");
        let mut i = 0usize;
        g.bench_with_input(BenchmarkId::new("ring", n), &n, |b, _| {
            b.iter(|| {
                i = (i + 1) & 4095;
                black_box(ring.get(black_box(&keys[i])))
            })
        });
        g.bench_with_input(BenchmarkId::new("nginx", n), &n, |b, _| {
            b.iter(|| {
                i = (i + 1) & 4095;
                black_box(nginx.get(black_box(&keys[i])))
            })
        });
        g.bench_with_input(BenchmarkId::new("ketama", n), &n, |b, _| {
            b.iter(|| {
                i = (i + 1) & 4095;
                black_box(ketama.get(black_box(&keys[i])))
            })
        });
        g.bench_with_input(BenchmarkId::new("redis", n), &n, |b, _| {
            b.iter(|| {
                i = (i + 1) & 4095;
                black_box(redis.get(black_box(&keys[i])))
            })
        });
    }
    g.finish();
}

fn replicas(c: &mut Criterion) {
    let keys = keys();
    let nodes: Vec<(String, u32)> = node_names(100).into_iter().map(|s| (s, 1)).collect();
    let ring = HashRing::from_nodes(nodes, VNODES).expect("valid ring");
    let mut i = 0usize;
    c.bench_function("replicas/ringleader_ring/100x3", |b| {
        b.iter(|| {
            i = (i + 1) & 4095;
            black_box(ring.replicas(black_box(&keys[i]), 3))
        })
    });
}

fn build(c: &mut Criterion) {
    let mut g = c.benchmark_group("build_100x160");
    let nodes: Vec<(String, u32)> = node_names(100).into_iter().map(|s| (s, 1)).collect();
    g.bench_function("ringleader_ring", |b| {
        b.iter(|| HashRing::from_nodes(black_box(nodes.clone()), VNODES).expect("valid ring"))
    });
    g.bench_function("hashring_crate", |b| {
        b.iter(|| hashring_ring(black_box(100)))
    });
    let ring = HashRing::from_nodes(nodes.clone(), VNODES).expect("valid ring");
    g.bench_function("ringleader_ring_add_one", |b| {
        b.iter(|| {
            ring.with_node("10.9.9.9:6379".to_string(), 1)
                .expect("new node")
        })
    });
    g.bench_function("maglev", |b| {
        b.iter(|| Maglev::new(black_box(nodes.clone())).expect("valid maglev"))
    });
    g.finish();
}

criterion_group!(benches, lookup, compat, replicas, build);
criterion_main!(benches);
