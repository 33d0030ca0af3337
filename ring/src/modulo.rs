//! [`Modulo`]: `hash(key) mod n`, the baseline that moves almost every key on resize.
use crate::error::Error;
use crate::hash::hash_key;
use crate::placement::{check_unique, position_of, push_unique, Placement};

/// `XXH3_64(key) mod n` over a node list. Even load, but adding one node to
/// `n` moves about `n / (n + 1)` of all keys: the comparison point that
/// shows why consistent hashing exists.
///
/// ```
/// use ringleader_ring::{Modulo, Placement};
/// let m = Modulo::new(vec!["a".to_string(), "b".to_string()])?;
/// assert!(m.locate(b"k").is_some());
/// # Ok::<(), ringleader_ring::Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct Modulo<N> {
    nodes: Vec<N>,
}

impl<N: AsRef<[u8]>> Modulo<N> {
    /// A placement over `nodes` (in this order). Errors on duplicates.
    pub fn new(nodes: Vec<N>) -> Result<Self, Error> {
        check_unique(nodes.iter().map(|n| n.as_ref()))?;
        Ok(Self { nodes })
    }

    /// The owner of `key`, `None` when empty.
    #[inline]
    pub fn get(&self, key: &[u8]) -> Option<&N> {
        if self.nodes.is_empty() {
            return None;
        }
        let i = (hash_key(key) % self.nodes.len() as u64) as usize;
        Some(&self.nodes[i])
    }

    /// Append a node.
    pub fn add(&mut self, node: N) -> Result<(), Error> {
        push_unique(&mut self.nodes, node)
    }

    /// Remove a node; later nodes shift down by one.
    pub fn remove(&mut self, node: &[u8]) -> Result<N, Error> {
        let i = position_of(&self.nodes, node)?;
        Ok(self.nodes.remove(i))
    }

    /// The nodes in order.
    pub fn nodes(&self) -> &[N] {
        &self.nodes
    }
}

impl<N: AsRef<[u8]>> Placement for Modulo<N> {
    type Node = N;
    fn algorithm(&self) -> &'static str {
        "modulo"
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
