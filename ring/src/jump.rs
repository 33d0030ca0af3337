//! [`Jump`]: Lamping & Veach's jump consistent hash over a node list.
use crate::error::Error;
use crate::hash::hash_key;
use crate::placement::{check_unique, position_of, push_unique, Placement};

/// Jump consistent hash: bucket of a 64-bit key among `buckets` buckets.
///
/// Lamping & Veach, "A Fast, Minimal Memory, Consistent Hash Algorithm"
/// (2014), figure 1, including its linear congruential step constant
/// 2862933555777941757. Returns 0 when `buckets` is 0 or 1.
///
/// ```
/// assert_eq!(ringleader_ring::jump_hash(0, 10), 0);
/// assert!(ringleader_ring::jump_hash(42, 10) < 10);
/// ```
#[inline]
pub fn jump_hash(mut key: u64, buckets: u32) -> u32 {
    let mut b: i64 = -1;
    let mut j: i64 = 0;
    while j < i64::from(buckets) {
        b = j;
        key = key.wrapping_mul(2_862_933_555_777_941_757).wrapping_add(1);
        j = ((b + 1) as f64 * ((1u64 << 31) as f64 / ((key >> 33) + 1) as f64)) as i64;
    }
    b.max(0) as u32
}

/// Jump consistent hash over a node list: bucket `jump_hash(XXH3_64(key), n)`.
///
/// No memory beyond the list, near-perfect balance, and adding a node at the
/// end moves only `1 / (n + 1)` of the keys. Its limits: no weights, and
/// only the *last* bucket can leave without moving keys between survivors.
/// [`remove`](Self::remove) moves the last node into the freed bucket, so
/// removing any other node also reshuffles the last node's keys (the
/// simulator counts these as moves between surviving nodes).
///
/// ```
/// use ringleader_ring::{Jump, Placement};
/// let j = Jump::new(vec!["a".to_string(), "b".to_string()]);
/// assert!(j.locate(b"k").is_some());
/// ```
#[derive(Debug, Clone)]
pub struct Jump<N> {
    nodes: Vec<N>,
}

impl<N: AsRef<[u8]>> Jump<N> {
    /// A placement over `nodes`; bucket `i` is `nodes[i]`.
    pub fn new(nodes: Vec<N>) -> Self {
        Self { nodes }
    }

    /// Like [`new`](Self::new) but errors on duplicate nodes.
    pub fn try_new(nodes: Vec<N>) -> Result<Self, Error> {
        check_unique(nodes.iter().map(|n| n.as_ref()))?;
        Ok(Self { nodes })
    }

    /// The owner of `key`, `None` when empty.
    #[inline]
    pub fn get(&self, key: &[u8]) -> Option<&N> {
        if self.nodes.is_empty() {
            return None;
        }
        let n = u32::try_from(self.nodes.len()).unwrap_or(u32::MAX);
        Some(&self.nodes[jump_hash(hash_key(key), n) as usize])
    }

    /// Append a node as the next bucket.
    pub fn add(&mut self, node: N) -> Result<(), Error> {
        push_unique(&mut self.nodes, node)
    }

    /// Remove a node: the last node takes over its bucket.
    pub fn remove(&mut self, node: &[u8]) -> Result<N, Error> {
        let i = position_of(&self.nodes, node)?;
        Ok(self.nodes.swap_remove(i))
    }

    /// The nodes in bucket order.
    pub fn nodes(&self) -> &[N] {
        &self.nodes
    }
}

impl<N: AsRef<[u8]>> Placement for Jump<N> {
    type Node = N;
    fn algorithm(&self) -> &'static str {
        "jump"
    }
    fn locate(&self, key: &[u8]) -> Option<&N> {
        self.get(key)
    }
    fn node_count(&self) -> usize {
        self.nodes.len()
    }
    fn heap_bytes(&self) -> usize {
        self.nodes.capacity() * std::mem::size_of::<N>()
    }
}
