//! [`Ketama`]: libketama's continuum, as memcached clients use it.
//!
//! Facts from libketama's `ketama.c` (github.com/RJ/ketama,
//! `ketama_create_continuum`, `ketama_hashi`, `ketama_get_server`):
//!
//! - server `i` with memory (weight) `m_i` out of a total `M` over `n`
//!   servers gets `ks = floorf(pct * 40.0 * (float)n)` hashes, where
//!   `pct = (float)m_i / (float)M`: the share is computed in single
//!   precision, the product in double (`40.0` is a double literal), and the
//!   result rounded back to single precision by `floorf`;
//! - hash `k` (0-based) is `MD5("<addr>-<k>")`; each 16-byte digest gives four
//!   points, bytes `4h..4h+4` read little-endian, so `ks x 4` points;
//! - points are sorted ascending (`qsort`; equal points keep server order
//!   here, as glibc's merge sort does) and never de-duplicated;
//! - a key hashes to the first four bytes of `MD5(key)`, little-endian (the
//!   key is a C string: bytes after a NUL are not hashed) and belongs to the
//!   first point `>=` it, wrapping to the first point.
use md5::{Digest, Md5};

use crate::compat::{CompatCandidates, Continuum};
use crate::error::{node_name, Error};
use crate::placement::{check_unique, check_weights, Placement};

/// Points per server when all weights are equal: 40 MD5 digests x 4 points.
pub const KETAMA_POINTS_PER_SERVER: u32 = 160;

/// libketama's key hash (`ketama_hashi`): the first 4 bytes of `MD5(key)`,
/// little-endian, hashing only the bytes before the first NUL.
///
/// ```
/// // MD5("") = d41d8cd98f00b204e9800998ecf8427e
/// assert_eq!(ringleader_ring::ketama_hash(b""), 0xd98c1dd4);
/// ```
#[inline]
pub fn ketama_hash(key: &[u8]) -> u32 {
    let key = c_string(key);
    let d = Md5::digest(key);
    u32::from_le_bytes([d[0], d[1], d[2], d[3]])
}

/// The bytes a C `strlen` sees.
fn c_string(bytes: &[u8]) -> &[u8] {
    match bytes.iter().position(|&b| b == 0) {
        Some(i) => &bytes[..i],
        None => bytes,
    }
}

/// Number of MD5 digests (4 points each) libketama gives a server with
/// `weight` out of `total` over `servers` servers.
pub(crate) fn hashes_for(weight: u32, total: u64, servers: usize) -> u32 {
    let pct = weight as f32 / total as f32;
    let product = f64::from(pct) * 40.0 * f64::from(servers as f32);
    (product as f32).floor() as u32
}

/// libketama's consistent hash: keys land on the same server as a libketama
/// client for the same server list (addresses as written, e.g.
/// `"10.0.0.1:11211"`) and memory weights. Clients that re-implement ketama
/// may hash other server strings (libmemcached's weighted mode drops the port
/// 11211), and then do not match.
///
/// Unlike nginx, the number of points per server depends on every weight
/// and on the number of servers, so adding a server re-derives all of them
/// (as libketama does when its server file changes).
///
/// ```
/// use ringleader_ring::{Ketama, Placement};
/// let k = Ketama::new(vec![("10.0.0.1:11211".to_string(), 100), ("10.0.0.2:11211".to_string(), 100)])?;
/// assert_eq!(k.point_count(), 320);
/// assert!(k.locate(b"user:42").is_some());
/// # Ok::<(), ringleader_ring::Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct Ketama<N> {
    nodes: Vec<(N, u32)>,
    ring: Continuum,
}

impl<N: AsRef<[u8]>> Ketama<N> {
    /// Place `(server, weight)` pairs in libketama's server-file order.
    /// Errors on weight 0 or a duplicate server; an empty list gives an empty placement.
    pub fn new(nodes: Vec<(N, u32)>) -> Result<Self, Error> {
        check_weights(&nodes)?;
        check_unique(nodes.iter().map(|(n, _)| n.as_ref()))?;
        let mut k = Self {
            nodes,
            ring: Continuum::default(),
        };
        k.rebuild();
        Ok(k)
    }

    fn rebuild(&mut self) {
        let total: u64 = self.nodes.iter().map(|(_, w)| u64::from(*w)).sum();
        let n = self.nodes.len();
        let mut pts = Vec::with_capacity(n * KETAMA_POINTS_PER_SERVER as usize);
        let mut buf = Vec::new();
        for (i, (node, w)) in self.nodes.iter().enumerate() {
            for k in 0..hashes_for(*w, total, n) {
                buf.clear();
                buf.extend_from_slice(node.as_ref());
                buf.extend_from_slice(format!("-{k}").as_bytes());
                let d = Md5::digest(c_string(&buf));
                for h in 0..4 {
                    let p =
                        u32::from_le_bytes([d[4 * h], d[4 * h + 1], d[4 * h + 2], d[4 * h + 3]]);
                    pts.push((p, i as u32));
                }
            }
        }
        self.ring = Continuum::build(pts, false);
    }

    /// The server owning `key`; `None` when empty.
    #[inline]
    pub fn get(&self, key: &[u8]) -> Option<&N> {
        let i = self.ring.find(ketama_hash(key))?;
        Some(&self.nodes[self.ring.owner_at(i) as usize].0)
    }

    /// Every server once, in point order clockwise from the key's point (the
    /// owner first). libketama has no failover of its own (clients drop a
    /// dead server and rebuild); this is the order such a rebuild approximates.
    pub fn candidates<'a>(&'a self, key: &[u8]) -> CompatCandidates<'a, N> {
        let start = self.ring.find(ketama_hash(key));
        CompatCandidates::new(
            self.ring.distinct_from(start, self.nodes.len()),
            &self.nodes,
        )
    }

    /// Add a server at the end of the list (every server's points are re-derived).
    pub fn add(&mut self, node: N, weight: u32) -> Result<(), Error> {
        if weight == 0 {
            return Err(Error::ZeroWeight {
                node: node_name(node.as_ref()),
            });
        }
        if self.nodes.iter().any(|(n, _)| n.as_ref() == node.as_ref()) {
            return Err(Error::DuplicateNode {
                node: node_name(node.as_ref()),
            });
        }
        self.nodes.push((node, weight));
        self.rebuild();
        Ok(())
    }

    /// Remove a server by its bytes.
    pub fn remove(&mut self, node: &[u8]) -> Result<N, Error> {
        let i = self
            .nodes
            .iter()
            .position(|(n, _)| n.as_ref() == node)
            .ok_or_else(|| Error::UnknownNode {
                node: node_name(node),
            })?;
        let (n, _) = self.nodes.remove(i);
        self.rebuild();
        Ok(n)
    }

    /// The servers and weights, in order.
    pub fn nodes(&self) -> &[(N, u32)] {
        &self.nodes
    }

    /// Number of points on the continuum.
    pub fn point_count(&self) -> usize {
        self.ring.len()
    }
}

impl<N: AsRef<[u8]>> Placement for Ketama<N> {
    type Node = N;
    fn algorithm(&self) -> &'static str {
        "ketama"
    }
    fn locate(&self, key: &[u8]) -> Option<&N> {
        self.get(key)
    }
    fn node_count(&self) -> usize {
        self.nodes.len()
    }
    fn heap_bytes(&self) -> usize {
        self.ring.heap_bytes() + self.nodes.capacity() * std::mem::size_of::<(N, u32)>()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_hash_is_md5_prefix_little_endian() {
        // MD5("a") = 0cc175b9c0f1b6a831c399e269772661
        assert_eq!(ketama_hash(b"a"), 0xb975c10c);
        // A C string stops at NUL.
        assert_eq!(ketama_hash(b"a\0junk"), ketama_hash(b"a"));
    }

    #[test]
    fn points_per_server_follow_the_float_share() {
        // Equal weights: 40 hashes each.
        assert_eq!(hashes_for(1, 3, 3), 40);
        assert_eq!(hashes_for(100, 1000, 10), 40);
        // 1 of 3 with 2 servers: floor(0.333.. * 80) = 26.
        assert_eq!(hashes_for(1, 3, 2), 26);
        assert_eq!(hashes_for(2, 3, 2), 53);
        let k = Ketama::new(vec![("a:1".to_string(), 1), ("b:1".to_string(), 2)]).unwrap();
        assert_eq!(k.point_count(), (26 + 53) * 4);
    }

    #[test]
    fn lookup_is_first_point_at_or_after_and_wraps() {
        let k = Ketama::new(vec![
            ("10.0.0.1:11211".to_string(), 1),
            ("10.0.0.2:11211".to_string(), 1),
            ("10.0.0.3:11211".to_string(), 1),
        ])
        .unwrap();
        let mut all: Vec<(u32, usize)> = Vec::new();
        for (i, (n, _)) in k.nodes().iter().enumerate() {
            for j in 0..40 {
                let d = Md5::digest(format!("{n}-{j}").as_bytes());
                for h in 0..4 {
                    let p = u32::from_le_bytes(d[4 * h..4 * h + 4].try_into().unwrap());
                    all.push((p, i));
                }
            }
        }
        for i in 0..500 {
            let key = format!("key{i}");
            let h = ketama_hash(key.as_bytes());
            let best = all
                .iter()
                .filter(|p| p.0 >= h)
                .min_by_key(|p| p.0)
                .or_else(|| all.iter().min_by_key(|p| p.0))
                .unwrap();
            assert_eq!(k.get(key.as_bytes()), Some(&k.nodes()[best.1].0));
        }
    }

    #[test]
    fn add_and_remove_rebuild_like_a_fresh_list() {
        let mut k = Ketama::new(vec![("a:1".to_string(), 1), ("b:1".to_string(), 1)]).unwrap();
        k.add("c:1".to_string(), 1).unwrap();
        assert_eq!(k.point_count(), 480);
        assert!(k.add("c:1".to_string(), 1).is_err());
        assert!(k.add("d:1".to_string(), 0).is_err());
        k.remove(b"a:1").unwrap();
        let fresh = Ketama::new(vec![("b:1".to_string(), 1), ("c:1".to_string(), 1)]).unwrap();
        for i in 0..1000 {
            let key = format!("k{i}");
            assert_eq!(k.get(key.as_bytes()), fresh.get(key.as_bytes()));
        }
        assert!(k.remove(b"zz").is_err());
        assert_eq!(Ketama::<String>::new(vec![]).unwrap().get(b"k"), None);
    }
}
