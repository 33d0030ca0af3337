//! [`Maglev`]: Google's Maglev lookup table (prime-sized, weighted fill).
use crate::error::Error;
use crate::hash::{hash_key, hash_seeded};
use crate::placement::{check_unique, check_weights, Placement};

/// Smallest table size used; the Maglev paper's production value.
pub const MAGLEV_MIN_TABLE: usize = 65_537;

/// Maglev hashing (Eisenbud et al., "Maglev: A Fast and Reliable Software
/// Network Load Balancer", NSDI 2016, section 3.4).
///
/// Each node walks its own permutation of a prime-sized table
/// (`offset = h1(node) mod M`, `skip = h2(node) mod (M - 1) + 1`, with h1 and
/// h2 xxh3 under two seeds) and claims its next free entry in turn, nodes
/// taking turns in the order of their bytes whatever order they were given
/// in (so every process that knows the same nodes builds the same table); a key
/// looks up `table[XXH3_64(key) mod M]`. The default `M` is the smallest
/// prime `>= max(65537, 100 * n + 1)`, the paper's "M > 100 N" rule. Weights
/// are honoured by credit: per round a node claims `weight / max_weight`
/// entries on average. Lookup is one hash and one load; on a node change
/// a few keys move between survivors (the paper trades that for balance).
///
/// ```
/// use ringleader_ring::{Maglev, Placement};
/// let m = Maglev::new(vec![("a".to_string(), 1), ("b".to_string(), 1)])?;
/// assert_eq!(m.table_size(), 65_537);
/// assert!(m.locate(b"k").is_some());
/// # Ok::<(), ringleader_ring::Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct Maglev<N> {
    nodes: Vec<(N, u32)>,
    table: Vec<u32>,
}

impl<N: AsRef<[u8]>> Maglev<N> {
    /// Build with the default table size.
    pub fn new(nodes: Vec<(N, u32)>) -> Result<Self, Error> {
        let m = next_prime(MAGLEV_MIN_TABLE.max(nodes.len().saturating_mul(100) + 1));
        Self::with_table_size(nodes, m)
    }

    /// Build with table size `m`, which must be prime and at least the node count.
    pub fn with_table_size(mut nodes: Vec<(N, u32)>, m: usize) -> Result<Self, Error> {
        check_weights(&nodes)?;
        check_unique(nodes.iter().map(|(n, _)| n.as_ref()))?;
        if !is_prime(m) || m < nodes.len() || m > u32::MAX as usize {
            return Err(Error::InvalidParameter {
                what: "maglev table size",
                reason: format!("{m} must be a prime >= the node count ({})", nodes.len()),
            });
        }
        // Fill in a canonical order: nodes claim entries in turn, and who
        // goes first wins a contested entry, so every process that knows the
        // same set must walk it in the same order to build the same table.
        nodes.sort_by(|a, b| a.0.as_ref().cmp(b.0.as_ref()));
        let table = populate(&nodes, m);
        Ok(Self { nodes, table })
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

    /// Table size `M`.
    pub fn table_size(&self) -> usize {
        self.table.len()
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
