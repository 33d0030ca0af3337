//! [`HashRing`]: weighted virtual-node consistent hashing on a sorted `Vec`.
use std::cmp::Ordering;

use crate::error::{node_name, Error};
use crate::hash::{hash_key, vnode_hashes};
use crate::placement::Placement;

/// Default virtual nodes per unit of weight.
pub const DEFAULT_VNODES: u32 = 160;

/// Most ring points one node may own (weight x vnodes); guards against a
/// typo'd weight allocating gigabytes.
pub const MAX_POINTS_PER_NODE: u64 = 1 << 24;

#[derive(Debug, Clone)]
struct Entry<N> {
    node: N,
    weight: u32,
}

/// A consistent-hash ring with weighted virtual nodes.
///
/// Placement is fully defined by the node bytes (`N: AsRef<[u8]>`), their
/// weights and `vnodes`, never by insertion order:
///
/// - node `x` with weight `w` owns `w * vnodes` points, point `i` at
///   `XXH3_64(x ++ u32_le(i))` (see [`hash_vnode`](crate::hash_vnode));
/// - a key hashes to `XXH3_64(key)` and belongs to the first point clockwise
///   whose hash is `>=` the key's hash (wrapping to the first point);
/// - points with equal hashes are ordered by node bytes, then by point index,
///   so a collision resolves the same way whatever the insertion order.
///
/// Points live in a sorted `Vec<u64>` searched by binary search, with the
/// owner of each point in a parallel `Vec<u32>`; a prefix index (one `u32`
/// per power-of-two bucket of the hash's top bits, about one per point)
/// narrows each search to a handful of points. `add`, `remove` and
/// `set_weight` only hash the points of the node that changed and merge them
/// in linear time; the `with_*` variants return a new ring for snapshot-style
/// (`ArcSwap`) updates.
///
/// ```
/// use ringleader_ring::HashRing;
/// let mut ring = HashRing::from_nodes(
///     vec![("a".to_string(), 1), ("b".to_string(), 1), ("c".to_string(), 2)],
///     160,
/// )?;
/// let owner = ring.get(b"user-42").cloned();
/// let reps = ring.replicas(b"user-42", 2);
/// assert_eq!(reps.len(), 2);
/// assert_ne!(reps[0], reps[1]);
/// assert_eq!(Some(reps[0]), owner.as_ref());
/// ring.add("d".to_string(), 1)?;
/// assert_eq!(ring.len(), 4);
/// # Ok::<(), ringleader_ring::Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct HashRing<N> {
    nodes: Vec<Entry<N>>,
    hashes: Vec<u64>,
    owners: Vec<u32>,
    /// `index[b]` = first point whose top `64 - shift` bits are `>= b`; narrows
    /// the binary search to the few points sharing the key's prefix.
    index: Vec<u32>,
    shift: u32,
    vnodes: u32,
}

impl<N: AsRef<[u8]>> HashRing<N> {
    /// An empty ring with `vnodes` points per unit of weight.
    pub fn new(vnodes: u32) -> Result<Self, Error> {
        if vnodes == 0 {
            return Err(Error::ZeroVnodes);
        }
        Ok(Self {
            nodes: Vec::new(),
            hashes: Vec::new(),
            owners: Vec::new(),
            index: Vec::new(),
            shift: 63,
            vnodes,
        })
    }

    /// Build a ring from `(node, weight)` pairs with `vnodes` points per unit
    /// of weight. Errors on weight 0, duplicate nodes or `vnodes == 0`.
    pub fn from_nodes<I>(nodes: I, vnodes: u32) -> Result<Self, Error>
    where
        I: IntoIterator<Item = (N, u32)>,
    {
        let mut ring = Self::new(vnodes)?;
        let entries: Vec<Entry<N>> = nodes
            .into_iter()
            .map(|(node, weight)| Entry { node, weight })
            .collect();
        if entries.len() > u32::MAX as usize {
            return Err(Error::TooManyNodes {
                nodes: entries.len(),
                max: u32::MAX as usize,
            });
        }
        for e in &entries {
            ring.check_weight(e.node.as_ref(), e.weight)?;
        }
        let mut names: Vec<&[u8]> = entries.iter().map(|e| e.node.as_ref()).collect();
        names.sort_unstable();
        if let Some(w) = names.windows(2).find(|w| w[0] == w[1]) {
            return Err(Error::DuplicateNode {
                node: node_name(w[0]),
            });
        }
        let mut points: Vec<(u64, u32, u32)> = Vec::new();
        for (idx, e) in entries.iter().enumerate() {
            let count = e.weight * vnodes;
            points.extend(vnode_hashes(e.node.as_ref(), count).map(|(i, h)| (h, idx as u32, i)));
        }
        points.sort_unstable_by(|a, b| cmp_point(&entries, a, b));
        ring.hashes = points.iter().map(|p| p.0).collect();
        ring.owners = points.iter().map(|p| p.1).collect();
        ring.nodes = entries;
        ring.rebuild_index();
        Ok(ring)
    }

    fn check_weight(&self, node: &[u8], weight: u32) -> Result<(), Error> {
        if weight == 0 {
            return Err(Error::ZeroWeight {
                node: node_name(node),
            });
        }
        if u64::from(weight) * u64::from(self.vnodes) > MAX_POINTS_PER_NODE {
            return Err(Error::TooManyPoints {
                weight,
                vnodes: self.vnodes,
                max: MAX_POINTS_PER_NODE,
            });
        }
        Ok(())
    }

    fn index_of(&self, node: &[u8]) -> Option<usize> {
        self.nodes.iter().position(|e| e.node.as_ref() == node)
    }

    /// The node owning `key`; `None` on an empty ring.
    #[inline]
    pub fn get(&self, key: &[u8]) -> Option<&N> {
        let i = self.point_for(hash_key(key))?;
        Some(&self.nodes[self.owners[i] as usize].node)
    }

    /// The node owning a key that was already hashed with [`hash_key`](crate::hash_key).
    #[inline]
    pub fn get_hashed(&self, hash: u64) -> Option<&N> {
        let i = self.point_for(hash)?;
        Some(&self.nodes[self.owners[i] as usize].node)
    }

    /// Index of the first point clockwise from `hash`: the prefix index
    /// gives the window of points sharing `hash`'s top bits, a binary search
    /// finishes inside it.
    #[inline]
    fn point_for(&self, hash: u64) -> Option<usize> {
        if self.hashes.is_empty() {
            return None;
        }
        let b = (hash >> self.shift) as usize;
        let (lo, hi) = (self.index[b] as usize, self.index[b + 1] as usize);
        let i = lo + self.hashes[lo..hi].partition_point(|&p| p < hash);
        Some(if i == self.hashes.len() { 0 } else { i })
    }

    /// Rebuild the prefix index: about one bucket per point (at most 2^22).
    fn rebuild_index(&mut self) {
        let n = self.hashes.len();
        let bits = n.next_power_of_two().trailing_zeros().clamp(1, 22);
        self.shift = 64 - bits;
        let buckets = 1usize << bits;
        let mut index = Vec::with_capacity(buckets + 1);
        let mut p = 0usize;
        for b in 0..buckets {
            while p < n && ((self.hashes[p] >> self.shift) as usize) < b {
                p += 1;
            }
            index.push(p as u32);
        }
        index.push(n as u32);
        self.index = index;
    }

    /// Distinct physical nodes in preference order for `key`: the owner
    /// first, then each next distinct node clockwise. Yields every node once.
    ///
    /// ```
    /// use ringleader_ring::HashRing;
    /// let ring = HashRing::from_nodes(vec![("a".to_string(), 1), ("b".to_string(), 1)], 160)?;
    /// let all: Vec<&String> = ring.candidates(b"k").collect();
    /// assert_eq!(all.len(), 2);
    /// # Ok::<(), ringleader_ring::Error>(())
    /// ```
    pub fn candidates<'a>(&'a self, key: &[u8]) -> Candidates<'a, N> {
        let start = self.point_for(hash_key(key)).unwrap_or(0);
        Candidates {
            ring: self,
            pos: start,
            steps: 0,
            seen: Seen::new(self.nodes.len()),
            found: 0,
        }
    }

    /// Up to `n` distinct physical nodes in preference order (fewer if the
    /// ring has fewer nodes); the first is [`get`](Self::get)'s answer.
    pub fn replicas(&self, key: &[u8], n: usize) -> Vec<&N> {
        let mut out = Vec::with_capacity(n.min(self.nodes.len()));
        out.extend(self.candidates(key).take(n));
        out
    }

    /// Consistent hashing with bounded loads (Mirrokni, Thorup, Zadimoghaddam,
    /// "Consistent Hashing with Bounded Loads", SODA 2018): the first node
    /// clockwise whose current load is below its capacity
    /// `ceil((1 + eps) * (total + 1) * weight / total_weight)`, where `total`
    /// is the sum of `load(node)` over all nodes and `+ 1` counts this request.
    /// With equal weights that is `ceil((1 + eps) * average)`.
    ///
    /// `eps` below 0 or not finite is treated as 0. A node always qualifies
    /// (capacities sum to more than the load), so the answer is `None` only
    /// on an empty ring. `load` is called once per node and once per
    /// candidate.
    ///
    /// ```
    /// use ringleader_ring::HashRing;
    /// let ring = HashRing::from_nodes(vec![("a".to_string(), 1), ("b".to_string(), 1)], 160)?;
    /// let owner = ring.get(b"k").unwrap().clone();
    /// // The owner is saturated: the key spills to the other node.
    /// let spilled = ring.get_bounded(b"k", 0.25, |n: &String| if *n == owner { 10 } else { 0 });
    /// assert_ne!(spilled, Some(&owner));
    /// // No load: the plain owner.
    /// assert_eq!(ring.get_bounded(b"k", 0.25, |_: &String| 0), Some(&owner));
    /// # Ok::<(), ringleader_ring::Error>(())
    /// ```
    pub fn get_bounded<F>(&self, key: &[u8], eps: f64, load: F) -> Option<&N>
    where
        F: Fn(&N) -> u64,
    {
        if self.nodes.is_empty() {
            return None;
        }
        let eps = if eps.is_finite() && eps > 0.0 {
            eps
        } else {
            0.0
        };
        let total: u64 = self
            .nodes
            .iter()
            .map(|e| load(&e.node))
            .fold(0u64, u64::saturating_add)
            .saturating_add(1);
        let total_weight = self.total_weight() as f64;
        let mut fallback = None;
        for (idx, node) in self.candidate_indices(key) {
            let weight = f64::from(self.nodes[idx].weight);
            let cap = ((1.0 + eps) * total as f64 * weight / total_weight).ceil() as u64;
            if load(node) < cap {
                return Some(node);
            }
            fallback.get_or_insert(node);
        }
        // Only reachable when `load` is inconsistent between calls.
        fallback
    }

    fn candidate_indices<'a>(&'a self, key: &[u8]) -> impl Iterator<Item = (usize, &'a N)> + 'a {
        let mut it = self.candidates(key);
        std::iter::from_fn(move || it.next_index().map(|i| (i, &self.nodes[i].node)))
    }

    /// Add a node with `weight`. Only the new node's points are hashed.
    pub fn add(&mut self, node: N, weight: u32) -> Result<(), Error> {
        self.check_weight(node.as_ref(), weight)?;
        if self.index_of(node.as_ref()).is_some() {
            return Err(Error::DuplicateNode {
                node: node_name(node.as_ref()),
            });
        }
        if self.nodes.len() >= u32::MAX as usize {
            return Err(Error::TooManyNodes {
                nodes: self.nodes.len() + 1,
                max: u32::MAX as usize,
            });
        }
        let idx = self.nodes.len() as u32;
        self.nodes.push(Entry { node, weight });
        self.merge_points_of(idx);
        Ok(())
    }

    /// Remove a node (by its bytes) and return it. Only its keys move.
    pub fn remove(&mut self, node: &[u8]) -> Result<N, Error> {
        let idx = self.index_of(node).ok_or_else(|| Error::UnknownNode {
            node: node_name(node),
        })?;
        self.drop_points_of(idx as u32);
        // Node indices above `idx` shift down by one.
        for o in &mut self.owners {
            if *o > idx as u32 {
                *o -= 1;
            }
        }
        self.rebuild_index();
        Ok(self.nodes.remove(idx).node)
    }

    /// Change a node's weight; only that node's points are re-hashed and only
    /// keys to or from that node move.
    pub fn set_weight(&mut self, node: &[u8], weight: u32) -> Result<(), Error> {
        let idx = self.index_of(node).ok_or_else(|| Error::UnknownNode {
            node: node_name(node),
        })?;
        self.check_weight(node, weight)?;
        if self.nodes[idx].weight == weight {
            return Ok(());
        }
        self.drop_points_of(idx as u32);
        self.nodes[idx].weight = weight;
        self.merge_points_of(idx as u32);
        Ok(())
    }

    /// Remove every point owned by node `idx` (indices unchanged).
    fn drop_points_of(&mut self, idx: u32) {
        let mut w = 0;
        for r in 0..self.hashes.len() {
            if self.owners[r] != idx {
                self.hashes[w] = self.hashes[r];
                self.owners[w] = self.owners[r];
                w += 1;
            }
        }
        self.hashes.truncate(w);
        self.owners.truncate(w);
    }

    /// Hash node `idx`'s points and merge them into the sorted arrays.
    fn merge_points_of(&mut self, idx: u32) {
        let e = &self.nodes[idx as usize];
        let count = e.weight * self.vnodes;
        let mut new: Vec<(u64, u32, u32)> = vnode_hashes(e.node.as_ref(), count)
            .map(|(i, h)| (h, idx, i))
            .collect();
        new.sort_unstable_by(|a, b| cmp_point(&self.nodes, a, b));
        let old_h = std::mem::take(&mut self.hashes);
        let old_o = std::mem::take(&mut self.owners);
        let total = old_h.len() + new.len();
        let mut hashes = Vec::with_capacity(total);
        let mut owners = Vec::with_capacity(total);
        let (mut a, mut b) = (0, 0);
        while a < old_h.len() || b < new.len() {
            let take_old = if a == old_h.len() {
                false
            } else if b == new.len() {
                true
            } else {
                // Existing points' vnode index is not stored; the tie-break
                // between two different nodes never needs it.
                let old = (old_h[a], old_o[a], 0);
                cmp_point(&self.nodes, &old, &new[b]) != Ordering::Greater
            };
            if take_old {
                hashes.push(old_h[a]);
                owners.push(old_o[a]);
                a += 1;
            } else {
                hashes.push(new[b].0);
                owners.push(new[b].1);
                b += 1;
            }
        }
        self.hashes = hashes;
        self.owners = owners;
        self.rebuild_index();
    }
}

impl<N: AsRef<[u8]> + Clone> HashRing<N> {
    /// A new ring with `node` added (this ring is unchanged).
    pub fn with_node(&self, node: N, weight: u32) -> Result<Self, Error> {
        let mut next = self.clone();
        next.add(node, weight)?;
        Ok(next)
    }

    /// A new ring without `node` (this ring is unchanged).
    pub fn without_node(&self, node: &[u8]) -> Result<Self, Error> {
        let mut next = self.clone();
        next.remove(node)?;
        Ok(next)
    }

    /// A new ring with `node`'s weight changed (this ring is unchanged).
    pub fn with_weight(&self, node: &[u8], weight: u32) -> Result<Self, Error> {
        let mut next = self.clone();
        next.set_weight(node, weight)?;
        Ok(next)
    }
}

impl<N> HashRing<N> {
    /// Number of physical nodes.
    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    /// True when the ring has no nodes.
    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    /// Number of points (virtual nodes) on the ring.
    pub fn points(&self) -> usize {
        self.hashes.len()
    }

    /// Virtual nodes per unit of weight.
    pub fn vnodes(&self) -> u32 {
        self.vnodes
    }

    /// Sum of all weights.
    pub fn total_weight(&self) -> u64 {
        self.nodes.iter().map(|e| u64::from(e.weight)).sum()
    }

    /// The nodes and their weights, in insertion order.
    pub fn nodes(&self) -> impl ExactSizeIterator<Item = (&N, u32)> + '_ {
        self.nodes.iter().map(|e| (&e.node, e.weight))
    }

    /// The weight of `node`, if present.
    pub fn weight(&self, node: &[u8]) -> Option<u32>
    where
        N: AsRef<[u8]>,
    {
        self.nodes
            .iter()
            .find(|e| e.node.as_ref() == node)
            .map(|e| e.weight)
    }
}

/// Order of two points `(hash, node index, vnode index)`: by hash, then node
/// bytes, then vnode index, so ties do not depend on insertion order.
fn cmp_point<N: AsRef<[u8]>>(
    nodes: &[Entry<N>],
    a: &(u64, u32, u32),
    b: &(u64, u32, u32),
) -> Ordering {
    a.0.cmp(&b.0)
        .then_with(|| {
            nodes[a.1 as usize]
                .node
                .as_ref()
                .cmp(nodes[b.1 as usize].node.as_ref())
        })
        .then_with(|| a.2.cmp(&b.2))
}

/// Iterator over distinct nodes in preference order, from
/// [`HashRing::candidates`] (which has an example): failover walks it.
#[derive(Debug)]
pub struct Candidates<'a, N> {
    ring: &'a HashRing<N>,
    pos: usize,
    steps: usize,
    seen: Seen,
    found: usize,
}

/// Bitset of nodes already yielded: inline up to 256 nodes (no allocation
/// for the common case), on the heap beyond.
#[derive(Debug)]
enum Seen {
    Inline([u64; 4]),
    Heap(Vec<u64>),
}

impl Seen {
    fn new(nodes: usize) -> Self {
        if nodes <= 256 {
            Seen::Inline([0; 4])
        } else {
            Seen::Heap(vec![0; nodes.div_ceil(64)])
        }
    }

    /// Mark `i`; true if it was not marked before.
    #[inline]
    fn insert(&mut self, i: usize) -> bool {
        let words: &mut [u64] = match self {
            Seen::Inline(w) => w,
            Seen::Heap(w) => w,
        };
        let (word, bit) = (i / 64, 1u64 << (i % 64));
        let fresh = words[word] & bit == 0;
        words[word] |= bit;
        fresh
    }
}

impl<N> Candidates<'_, N> {
    fn next_index(&mut self) -> Option<usize> {
        let ring = self.ring;
        let len = ring.hashes.len();
        while self.found < ring.nodes.len() && self.steps < len {
            let owner = ring.owners[self.pos] as usize;
            self.pos = if self.pos + 1 == len { 0 } else { self.pos + 1 };
            self.steps += 1;
            if self.seen.insert(owner) {
                self.found += 1;
                return Some(owner);
            }
        }
        None
    }
}

impl<'a, N> Iterator for Candidates<'a, N> {
    type Item = &'a N;

    fn next(&mut self) -> Option<&'a N> {
        let ring = self.ring;
        self.next_index().map(|i| &ring.nodes[i].node)
    }
}

impl<N: AsRef<[u8]>> Placement for HashRing<N> {
    type Node = N;

    fn algorithm(&self) -> &'static str {
        "ring"
    }

    fn locate(&self, key: &[u8]) -> Option<&N> {
        self.get(key)
    }

    fn node_count(&self) -> usize {
        self.nodes.len()
    }

    fn heap_bytes(&self) -> usize {
        self.hashes.capacity() * 8
            + self.owners.capacity() * 4
            + self.index.capacity() * 4
            + self.nodes.capacity() * std::mem::size_of::<Entry<N>>()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(n: usize) -> Vec<(String, u32)> {
        (0..n).map(|i| (format!("node-{i}"), 1)).collect()
    }

    fn owners(ring: &HashRing<String>, keys: usize) -> Vec<String> {
        (0..keys)
            .map(|i| ring.get(format!("key-{i}").as_bytes()).unwrap().clone())
            .collect()
    }

    #[test]
    fn empty_ring_answers_none() {
        let ring: HashRing<String> = HashRing::new(160).unwrap();
        assert_eq!(ring.get(b"k"), None);
        assert!(ring.replicas(b"k", 3).is_empty());
        assert_eq!(ring.get_bounded(b"k", 0.25, |_| 0), None);
    }

    #[test]
    fn bad_input_is_an_error() {
        assert_eq!(HashRing::<String>::new(0).unwrap_err(), Error::ZeroVnodes);
        let dup = vec![("a".to_string(), 1), ("a".to_string(), 2)];
        assert!(matches!(
            HashRing::from_nodes(dup, 160),
            Err(Error::DuplicateNode { .. })
        ));
        let mut ring = HashRing::from_nodes(names(2), 160).unwrap();
        assert!(matches!(
            ring.remove(b"zzz"),
            Err(Error::UnknownNode { .. })
        ));
        assert!(matches!(
            ring.set_weight(b"node-0", 0),
            Err(Error::ZeroWeight { .. })
        ));
        assert!(matches!(
            ring.add("node-9".into(), u32::MAX),
            Err(Error::TooManyPoints { .. })
        ));
        assert_eq!(ring.len(), 2);
    }

    #[test]
    fn insertion_order_does_not_matter() {
        let a = HashRing::from_nodes(names(8), 40).unwrap();
        let mut rev = names(8);
        rev.reverse();
        let b = HashRing::from_nodes(rev, 40).unwrap();
        let mut c = HashRing::new(40).unwrap();
        for (n, w) in names(8).into_iter().rev() {
            c.add(n, w).unwrap();
        }
        assert_eq!(a.hashes, b.hashes);
        assert_eq!(owners(&a, 2000), owners(&b, 2000));
        assert_eq!(owners(&a, 2000), owners(&c, 2000));
    }

    #[test]
    fn incremental_changes_equal_a_fresh_build() {
        let mut ring = HashRing::from_nodes(names(6), 50).unwrap();
        ring.remove(b"node-2").unwrap();
        ring.set_weight(b"node-4", 3).unwrap();
        ring.add("node-9".into(), 2).unwrap();
        let fresh = HashRing::from_nodes(
            vec![
                ("node-0".to_string(), 1),
                ("node-1".to_string(), 1),
                ("node-3".to_string(), 1),
                ("node-4".to_string(), 3),
                ("node-5".to_string(), 1),
                ("node-9".to_string(), 2),
            ],
            50,
        )
        .unwrap();
        assert_eq!(ring.points(), fresh.points());
        assert_eq!(owners(&ring, 3000), owners(&fresh, 3000));
    }

    #[test]
    fn replicas_are_distinct_and_start_with_the_owner() {
        let ring = HashRing::from_nodes(names(5), 160).unwrap();
        for i in 0..200 {
            let key = format!("k{i}");
            let reps = ring.replicas(key.as_bytes(), 10);
            assert_eq!(reps.len(), 5);
            assert_eq!(Some(reps[0]), ring.get(key.as_bytes()));
            let mut sorted = reps.clone();
            sorted.sort();
            sorted.dedup();
            assert_eq!(sorted.len(), 5);
        }
    }

    #[test]
    fn replicas_on_large_rings_use_the_heap_bitset() {
        let ring = HashRing::from_nodes(names(300), 2).unwrap();
        let all = ring.replicas(b"k", 1000);
        assert_eq!(all.len(), 300);
        let mut dedup = all.clone();
        dedup.sort();
        dedup.dedup();
        assert_eq!(dedup.len(), 300);
    }

    #[test]
    fn bounded_load_caps_every_node() {
        // Feed 10_000 keys through get_bounded, tracking load: no node may
        // exceed ceil((1 + eps) * average) at any time.
        let ring = HashRing::from_nodes(names(10), 160).unwrap();
        let mut load = std::collections::HashMap::<String, u64>::new();
        let eps = 0.1;
        for i in 0..10_000u64 {
            let key = format!("hot-{}", i % 37); // skewed: only 37 distinct keys
            let node = ring
                .get_bounded(key.as_bytes(), eps, |n| load.get(n).copied().unwrap_or(0))
                .unwrap()
                .clone();
            *load.entry(node).or_default() += 1;
            let cap = ((1.0 + eps) * (i + 1) as f64 / 10.0).ceil() as u64;
            assert!(
                load.values().all(|&l| l <= cap),
                "step {i}: {load:?} cap {cap}"
            );
        }
    }

    #[test]
    fn with_variants_leave_the_original_alone() {
        let ring = HashRing::from_nodes(names(3), 20).unwrap();
        let bigger = ring.with_node("x".into(), 1).unwrap();
        let smaller = ring.without_node(b"node-0").unwrap();
        let heavier = ring.with_weight(b"node-1", 4).unwrap();
        assert_eq!(ring.len(), 3);
        assert_eq!(bigger.len(), 4);
        assert_eq!(smaller.len(), 2);
        assert_eq!(heavier.weight(b"node-1"), Some(4));
        assert_eq!(ring.weight(b"node-1"), Some(1));
        assert_eq!(heavier.points(), 6 * 20);
    }
}
