//! Stable hashing: xxh3 over explicit bytes, the same in every process and version.
//!
//! - a key hashes to `XXH3_64(key_bytes)` (seed 0);
//! - virtual node `i` of a node hashes to `XXH3_64(node_bytes ++ u32_le(i))`
//!   (seed 0): the index is a fixed-width suffix, so no two (node, i) pairs
//!   share an input.
//!
//! These two rules, plus the tie-break documented on [`crate::HashRing`], are
//! the whole placement of the ring; the golden vectors in the tests pin them.
use twox_hash::XxHash3_64;

/// Hash a key: `XXH3_64(key)` with seed 0.
///
/// ```
/// assert_eq!(ringleader_ring::hash_key(b""), 0x2D06800538D394C2);
/// ```
#[inline]
pub fn hash_key(key: &[u8]) -> u64 {
    XxHash3_64::oneshot(key)
}

/// Hash virtual node `index` of a node named by `node` bytes:
/// `XXH3_64(node ++ u32_le(index))` with seed 0.
pub fn hash_vnode(node: &[u8], index: u32) -> u64 {
    let mut buf = Vec::with_capacity(node.len() + 4);
    buf.extend_from_slice(node);
    buf.extend_from_slice(&index.to_le_bytes());
    XxHash3_64::oneshot(&buf)
}

/// Hashes of virtual nodes `0..count` of one node, reusing one buffer (no
/// allocation per point); equal to [`hash_vnode`] for each index.
pub(crate) fn vnode_hashes(node: &[u8], count: u32) -> impl Iterator<Item = (u32, u64)> + '_ {
    let mut buf = Vec::with_capacity(node.len() + 4);
    buf.extend_from_slice(node);
    buf.extend_from_slice(&[0; 4]);
    let at = node.len();
    (0..count).map(move |i| {
        buf[at..].copy_from_slice(&i.to_le_bytes());
        (i, XxHash3_64::oneshot(&buf))
    })
}

/// Hash bytes with a seed (Maglev's two permutation hashes, Rendezvous node ids).
#[inline]
pub(crate) fn hash_seeded(seed: u64, bytes: &[u8]) -> u64 {
    XxHash3_64::oneshot_with_seed(seed, bytes)
}

/// SplitMix64 finaliser: a cheap bijective mixer for combining two hashes.
/// (Steele, Lea, Flood: "Fast splittable pseudorandom number generators", 2014.)
#[inline]
pub(crate) fn mix64(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}
