//! [`Maglev`]: Google's Maglev lookup table (prime size M fixed at build, weighted fill).
use crate::error::Error;
use crate::hash::{hash_key, hash_seeded};
use crate::placement::{check_unique, check_weights, Placement};

/// The default table size `M`, prime, for up to 655 nodes: the smaller of
/// the two sizes the Maglev paper evaluates (Eisenbud et al., NSDI 2016),
/// and Envoy's default.
pub const MAGLEV_DEFAULT_TABLE: usize = 65_537;

/// Maglev asks for `M >= 100 x N`: with fewer entries per node, nodes' shares
/// of the table drift apart by more than about 1% (section 3.4).
const ENTRIES_PER_NODE: usize = 100;

/// Maglev hashing (Eisenbud et al., "Maglev: A Fast and Reliable Software
/// Network Load Balancer", NSDI 2016, section 3.4).
///
/// Each node walks its own permutation of a prime-sized table
/// (`offset = h1(node) mod M`, `skip = h2(node) mod (M - 1) + 1`, with h1 and
/// h2 xxh3 under two seeds) and claims its next free entry in turn, nodes
/// taking turns in the order of their bytes whatever order they were given
/// in (so every process that knows the same nodes builds the same table); a key
/// looks up `table[XXH3_64(key) mod M]`. Weights are honoured by credit: per
/// round a node claims `weight / max_weight` entries on average. Lookup is
/// one hash and one load; on a node change a few keys move between
/// survivors (the paper trades that for balance).
///
/// The table size `M` is yours to choose and must stay the same across
/// membership changes: a key's entry is `hash mod M`, so a new `M` moves
/// almost every key. [`Maglev::new`] uses [`MAGLEV_DEFAULT_TABLE`] (65537);
/// [`Maglev::with_table_size`] takes any prime. Either way `M` must be at
/// least 100 times the node count (the paper's rule, section 3.4), so size
/// it for the most nodes you will run: more nodes than `M / 100` is
/// [`Error::TableTooSmall`], never a silent resize.
///
/// ```
/// use ringleader_ring::{Error, Maglev, Placement};
/// let m = Maglev::new(vec![("a".to_string(), 1), ("b".to_string(), 1)])?;
/// assert_eq!(m.table_size(), 65_537);
/// assert!(m.locate(b"k").is_some());
///
/// // 1000 nodes need M >= 100,000: choose a prime that leaves room to grow.
/// let nodes: Vec<(String, u32)> = (0..1000).map(|i| (format!("node-{i}"), 1)).collect();
/// assert!(matches!(Maglev::new(nodes.clone()), Err(Error::TableTooSmall { .. })));
/// let big = Maglev::with_table_size(nodes, 131_071)?;
/// assert_eq!(big.table_size(), 131_071);
/// # Ok::<(), ringleader_ring::Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct Maglev<N> {
    nodes: Vec<(N, u32)>,
    table: Vec<u32>,
    size: usize,
}

impl<N: AsRef<[u8]>> Maglev<N> {
    /// Build with the default table size [`MAGLEV_DEFAULT_TABLE`] (65537), for
    /// at most 655 nodes.
    pub fn new(nodes: Vec<(N, u32)>) -> Result<Self, Error> {
        Self::with_table_size(nodes, MAGLEV_DEFAULT_TABLE)
    }

    /// Build with table size `m`: a prime below 2^32, at least 100 times the
    /// node count. Keep `m` the same when nodes join or leave.
    pub fn with_table_size(mut nodes: Vec<(N, u32)>, m: usize) -> Result<Self, Error> {
        check_weights(&nodes)?;
        check_unique(nodes.iter().map(|(n, _)| n.as_ref()))?;
        if !is_prime(m) || m > u32::MAX as usize {
            return Err(Error::InvalidParameter {
                what: "maglev table size",
                reason: format!("{m} is not a prime below 2^32"),
            });
        }
        let needed = nodes.len().saturating_mul(ENTRIES_PER_NODE);
        if m < needed {
            return Err(Error::TableTooSmall {
                nodes: nodes.len(),
                table_size: m,
                smallest_fit: next_prime(needed),
            });
        }
        // Fill in a canonical order: nodes claim entries in turn, and who
        // goes first wins a contested entry, so every process that knows the
        // same set must walk it in the same order to build the same table.
        nodes.sort_by(|a, b| a.0.as_ref().cmp(b.0.as_ref()));
        let table = populate(&nodes, m);
        Ok(Self {
            nodes,
            table,
            size: m,
        })
    }

    /// The owner of `key`, `None` when empty.
    #[inline]
    pub fn get(&self, key: &[u8]) -> Option<&N> {
        if self.nodes.is_empty() {
            return None;
        }
        let slot = (hash_key(key) % self.table.len() as u64) as usize;
        Some(&self.nodes[self.table[slot] as usize].0)
    }

    /// Table size `M`, as given at build.
    pub fn table_size(&self) -> usize {
        self.size
    }

    /// The nodes and weights, sorted by node bytes (the fill order).
    pub fn nodes(&self) -> &[(N, u32)] {
        &self.nodes
    }
}

fn populate<N: AsRef<[u8]>>(nodes: &[(N, u32)], m: usize) -> Vec<u32> {
    if nodes.is_empty() {
        return Vec::new();
    }
    let m64 = m as u64;
    let perm: Vec<(u64, u64)> = nodes
        .iter()
        .map(|(n, _)| {
            let offset = hash_seeded(0x6d61_676c_6576_3031, n.as_ref()) % m64;
            let skip = hash_seeded(0x6d61_676c_6576_3032, n.as_ref()) % (m64 - 1).max(1) + 1;
            (offset, skip)
        })
        .collect();
    let max_w = nodes.iter().map(|(_, w)| *w).max().unwrap_or(1).max(1);
    let mut next = vec![0u64; nodes.len()];
    let mut credit = vec![0f64; nodes.len()];
    let mut table = vec![u32::MAX; m];
    let mut filled = 0;
    'outer: loop {
        for (i, &(offset, skip)) in perm.iter().enumerate() {
            credit[i] += f64::from(nodes[i].1) / f64::from(max_w);
            while credit[i] >= 1.0 {
                credit[i] -= 1.0;
                let mut c = (offset + next[i] * skip) % m64;
                while table[c as usize] != u32::MAX {
                    next[i] += 1;
                    c = (offset + next[i] * skip) % m64;
                }
                table[c as usize] = i as u32;
                next[i] += 1;
                filled += 1;
                if filled == m {
                    break 'outer;
                }
            }
        }
    }
    table
}

/// True if `n` is prime (trial division; table sizes are small).
pub(crate) fn is_prime(n: usize) -> bool {
    if n < 2 {
        return false;
    }
    if n % 2 == 0 {
        return n == 2;
    }
    let mut d = 3;
    while d * d <= n {
        if n % d == 0 {
            return false;
        }
        d += 2;
    }
    true
}

/// Smallest prime `>= n`.
pub(crate) fn next_prime(mut n: usize) -> usize {
    while !is_prime(n) {
        n += 1;
    }
    n
}

impl<N: AsRef<[u8]>> Placement for Maglev<N> {
    type Node = N;
    fn algorithm(&self) -> &'static str {
        "maglev"
    }
    fn locate(&self, key: &[u8]) -> Option<&N> {
        self.get(key)
    }
    fn node_count(&self) -> usize {
        self.nodes.len()
    }
    fn heap_bytes(&self) -> usize {
        self.table.capacity() * 4 + self.nodes.capacity() * std::mem::size_of::<(N, u32)>()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::rngs::SmallRng;
    use rand::seq::SliceRandom;
    use rand::SeedableRng;

    /// The owner of every table entry, by name.
    fn owners(m: &Maglev<String>) -> Vec<&str> {
        m.table
            .iter()
            .map(|&i| m.nodes[i as usize].0.as_str())
            .collect()
    }

    fn names(n: usize) -> Vec<(String, u32)> {
        (0..n).map(|i| (format!("node-{i}"), 1)).collect()
    }

    #[test]
    fn table_size_is_fixed_and_too_many_nodes_is_an_error() {
        // The default M does not follow the node count...
        assert_eq!(Maglev::new(names(655)).unwrap().table_size(), 65_537);
        assert_eq!(Maglev::new(names(1)).unwrap().table_size(), 65_537);
        // ...so a node more than M / 100 is an error, not a new M.
        assert_eq!(
            Maglev::new(names(656)).err(),
            Some(Error::TableTooSmall {
                nodes: 656,
                table_size: 65_537,
                smallest_fit: 65_609,
            })
        );
        let err = Maglev::new(names(656)).err().map(|e| e.to_string());
        assert_eq!(
            err.as_deref(),
            Some(
                "maglev table size 65537 is too small for 656 nodes (Maglev needs \
                 M >= 100 x nodes; the smallest prime that fits is 65609, choose one \
                 that leaves room to grow and keep it)"
            )
        );
        assert!(matches!(
            Maglev::with_table_size(names(10), 997),
            Err(Error::TableTooSmall { nodes: 10, .. })
        ));
        assert_eq!(
            Maglev::with_table_size(names(10), 1009)
                .unwrap()
                .table_size(),
            1009
        );
        // M must be prime (the permutation needs skip coprime to M).
        assert!(matches!(
            Maglev::with_table_size(names(10), 65_536),
            Err(Error::InvalidParameter { .. })
        ));
        let empty = Maglev::<String>::with_table_size(Vec::new(), 7).unwrap();
        assert_eq!((empty.table_size(), empty.get(b"k")), (7, None));
    }

    /// Fraction of table entries whose owner differs (same M).
    fn changed(a: &Maglev<String>, b: &Maglev<String>) -> f64 {
        assert_eq!(a.table_size(), b.table_size());
        let moved = owners(a)
            .iter()
            .zip(owners(b))
            .filter(|(x, y)| **x != *y)
            .count();
        moved as f64 / a.table_size() as f64
    }

    #[test]
    fn a_node_joining_moves_a_few_times_its_share_with_the_same_m() {
        let a = Maglev::with_table_size(names(655), 131_071).unwrap();
        let b = Maglev::with_table_size(names(656), 131_071).unwrap();
        // The ideal is 1/656 = 0.15% of the entries. Maglev's churn between
        // survivors grows with N / M: about 5x the ideal at 200 entries per
        // node (1.03x at 10 nodes in 65537).
        let frac = changed(&a, &b);
        assert!(frac < 10.0 / 656.0, "{:.3}% of entries moved", frac * 100.0);
        // The same nodes in another M: almost every key moves.
        let c = Maglev::with_table_size(names(656), 131_101).unwrap();
        let keys = 20_000;
        let moved = (0..keys)
            .filter(|i| {
                let k = format!("key-{i}");
                b.get(k.as_bytes()) != c.get(k.as_bytes())
            })
            .count();
        assert!(moved * 10 > keys * 9, "{moved} of {keys} keys moved");
    }

    #[test]
    fn shuffled_inputs_fill_identical_tables() {
        let nodes: Vec<(String, u32)> = (0..10).map(|i| (format!("node-{i}"), 1 + i % 3)).collect();
        let base = Maglev::new(nodes.clone()).unwrap();
        let mut rng = SmallRng::seed_from_u64(7);
        let mut orders = vec![nodes.iter().rev().cloned().collect::<Vec<_>>()];
        for _ in 0..4 {
            let mut shuffled = nodes.clone();
            shuffled.shuffle(&mut rng);
            orders.push(shuffled);
        }
        for order in orders {
            let other = Maglev::new(order.clone()).unwrap();
            let differ = owners(&base)
                .iter()
                .zip(owners(&other))
                .filter(|(a, b)| **a != *b)
                .count();
            assert_eq!(differ, 0, "{differ} entries differ for order {order:?}");
        }
    }
}
