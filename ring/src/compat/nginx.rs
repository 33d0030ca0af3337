//! [`NginxHash`]: the placement of nginx's `hash KEY consistent`, point for point.
//!
//! Facts from nginx's `src/http/modules/ngx_http_upstream_hash_module.c`
//! (release 1.22.1, functions `ngx_http_upstream_init_chash`,
//! `ngx_http_upstream_find_chash_point`, `ngx_http_upstream_init_chash_peer`
//! and `ngx_http_upstream_get_chash_peer`; unchanged in later releases
//! except that a single peer became "fewer than two peers"):
//!
//! - each `server` line contributes `160 x weight` points, derived from the
//!   server as written (`"127.0.0.1:8081"`, `"backend.example:80"`,
//!   `"unix:/tmp/sock"`): the text is split into host and port at the last
//!   `:` when everything after it is digits (a `unix:` prefix is dropped and
//!   there is no port); `base = CRC32(host ++ "\0" ++ port)`; point `j` is the
//!   CRC32 continuing from `base` over the 4 little-endian bytes of point
//!   `j - 1` (0 for the first point) — "compatible with Cache::Memcached::Fast";
//! - the points are sorted and equal values are kept once (the first);
//! - a key hashes to `CRC32(key)` (IEEE, as `ngx_crc32_long`) and belongs to
//!   the first point `>=` that hash, wrapping past the last point;
//! - when that point's server is down, failing or already tried, nginx moves
//!   to the next point, and after 20 such steps (counted over all attempts of
//!   one request) it falls back to round robin; it also uses round robin
//!   when the key is empty or the upstream has a single server.
use crate::compat::{CompatCandidates, Continuum};
use crate::error::{node_name, Error};
use crate::placement::{check_unique, check_weights, Placement};
use crate::MAX_POINTS_PER_NODE;

/// Points per unit of weight in nginx's consistent hash (`peer->weight * 160`).
pub const NGINX_POINTS_PER_WEIGHT: u32 = 160;

/// Points nginx steps past before it gives up hashing and falls back to
/// round robin (`hp->tries > 20`): it examines at most `NGINX_MAX_TRIES + 1`
/// points per request.
pub const NGINX_MAX_TRIES: usize = 20;

/// CRC32 (IEEE 802.3, reflected, as zlib), the hash nginx uses for keys and points.
///
/// ```
/// // The standard check value of CRC-32.
/// assert_eq!(ringleader_ring::nginx_crc32(b"123456789"), 0xCBF4_3926);
/// ```
#[inline]
pub fn nginx_crc32(bytes: &[u8]) -> u32 {
    crc32fast::hash(bytes)
}

/// What nginx does for one request: hash to a server, or round robin.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NginxPick<'a, N> {
    /// The first usable server on the points walked from the key's point.
    Hashed(&'a N),
    /// nginx would use round robin here: empty key, a single server, or no
    /// usable server within [`NGINX_MAX_TRIES`] steps.
    RoundRobin,
}

/// nginx's `hash KEY consistent`: keys land on the same server as in nginx
/// for the same `server` lines (as written, in any order) and weights.
///
/// Server names are the node bytes (`N: AsRef<[u8]>`), exactly as in the
/// `server` directive: `"127.0.0.1:8081"` and `"localhost:8081"` place
/// differently, as they do in nginx. A name that resolves to several
/// addresses is one node here (nginx balances among those addresses).
///
/// ```
/// use ringleader_ring::{NginxHash, NginxPick};
/// let servers = vec![("10.0.0.1:80".to_string(), 1), ("10.0.0.2:80".to_string(), 1)];
/// let h = NginxHash::new(servers)?;
/// let owner = h.get(b"user-1").unwrap();
/// // The owner is down: nginx walks to the next points' server.
/// let next = h.pick(b"user-1", |n| n != owner);
/// assert!(matches!(next, NginxPick::Hashed(n) if n != owner));
/// # Ok::<(), ringleader_ring::Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct NginxHash<N> {
    nodes: Vec<(N, u32)>,
    ring: Continuum,
}

/// The points of one server, in nginx's order (see the module docs).
pub(crate) fn server_points(server: &[u8], weight: u32) -> impl Iterator<Item = u32> {
    let (host, port) = split_server(server);
    let mut base = crc32fast::Hasher::new();
    base.update(host);
    base.update(&[0]);
    base.update(port);
    let mut prev = 0u32;
    (0..u64::from(weight) * u64::from(NGINX_POINTS_PER_WEIGHT)).map(move |_| {
        let mut h = base.clone();
        // nginx copies the previous hash's bytes in little-endian order on
        // every platform (its NGX_HAVE_LITTLE_ENDIAN branch).
        h.update(&prev.to_le_bytes());
        prev = h.finalize();
        prev
    })
}

/// Split a `server` address into host and port as nginx's chash init does:
/// `unix:` (any case) -> the path, no port; else the last `:` followed only by
/// digits; else the whole text with no port.
fn split_server(server: &[u8]) -> (&[u8], &[u8]) {
    if server.len() >= 5 && server[..5].eq_ignore_ascii_case(b"unix:") {
        return (&server[5..], &[]);
    }
    for (j, &c) in server.iter().rev().enumerate() {
        if c == b':' {
            let colon = server.len() - j - 1;
            return (&server[..colon], &server[colon + 1..]);
        }
        if !c.is_ascii_digit() {
            break;
        }
    }
    (server, &[])
}

impl<N: AsRef<[u8]>> NginxHash<N> {
    /// Place `(server, weight)` pairs. Errors on weight 0, a duplicate server
    /// or a weight whose points exceed [`MAX_POINTS_PER_NODE`]. An empty list
    /// gives an empty placement.
    pub fn new(nodes: Vec<(N, u32)>) -> Result<Self, Error> {
        check_weights(&nodes)?;
        check_unique(nodes.iter().map(|(n, _)| n.as_ref()))?;
        for (_, w) in &nodes {
            check_points(*w)?;
        }
        let mut h = Self {
            nodes,
            ring: Continuum::default(),
        };
        h.rebuild();
        Ok(h)
    }

    fn rebuild(&mut self) {
        let mut pts = Vec::new();
        for (i, (n, w)) in self.nodes.iter().enumerate() {
            pts.extend(server_points(n.as_ref(), *w).map(|p| (p, i as u32)));
        }
        self.ring = Continuum::build(pts, true);
    }

    /// Index of the key's first point, as `ngx_http_upstream_find_chash_point`.
    #[inline]
    fn start(&self, key: &[u8]) -> Option<usize> {
        self.ring.find(nginx_crc32(key))
    }

    /// The server nginx picks for `key` when every server is up.
    #[inline]
    pub fn get(&self, key: &[u8]) -> Option<&N> {
        let i = self.start(key)?;
        Some(&self.nodes[self.ring.owner_at(i) as usize].0)
    }

    /// The servers of the points nginx examines for `key`, in order: the
    /// key's point and the next [`NGINX_MAX_TRIES`] (wrapping; a server
    /// appears once per point, so usually several times). Empty for an
    /// empty placement.
    pub fn tries<'a>(&'a self, key: &[u8]) -> impl Iterator<Item = &'a N> + 'a {
        let start = self.start(key);
        let count = if start.is_some() {
            NGINX_MAX_TRIES + 1
        } else {
            0
        };
        let start = start.unwrap_or(0);
        (0..count).map(move |t| &self.nodes[self.ring.owner_at(start + t) as usize].0)
    }

    /// What nginx does for `key` given which servers are usable (up, not
    /// failing, not yet tried for this request): the first usable server on
    /// [`tries`](Self::tries), else round robin. An empty key or a single
    /// server is round robin too, as in nginx.
    pub fn pick<F>(&self, key: &[u8], mut usable: F) -> NginxPick<'_, N>
    where
        F: FnMut(&N) -> bool,
    {
        if key.is_empty() || self.nodes.len() < 2 {
            return NginxPick::RoundRobin;
        }
        self.tries(key)
            .find(|n| usable(n))
            .map_or(NginxPick::RoundRobin, NginxPick::Hashed)
    }

    /// Every server once, in the order of the points clockwise from the
    /// key's point (the owner first). nginx itself stops after
    /// [`NGINX_MAX_TRIES`] points (see [`pick`](Self::pick)); this order is
    /// the natural extension for callers that need a full list.
    pub fn candidates<'a>(&'a self, key: &[u8]) -> CompatCandidates<'a, N> {
        CompatCandidates::new(
            self.ring.distinct_from(self.start(key), self.nodes.len()),
            &self.nodes,
        )
    }

    /// Add a server (after the existing ones).
    pub fn add(&mut self, node: N, weight: u32) -> Result<(), Error> {
        if weight == 0 {
            return Err(Error::ZeroWeight {
                node: node_name(node.as_ref()),
            });
        }
        check_points(weight)?;
        if self.nodes.iter().any(|(n, _)| n.as_ref() == node.as_ref()) {
            return Err(Error::DuplicateNode {
                node: node_name(node.as_ref()),
            });
        }
        self.nodes.push((node, weight));
        self.rebuild();
        Ok(())
    }

    /// Remove a server by its name bytes.
    pub fn remove(&mut self, node: &[u8]) -> Result<N, Error> {
        let i = crate::placement::position_of(
            &self
                .nodes
                .iter()
                .map(|(n, _)| n.as_ref())
                .collect::<Vec<_>>(),
            node,
        )?;
        let (n, _) = self.nodes.remove(i);
        self.rebuild();
        Ok(n)
    }

    /// Change a server's weight.
    pub fn set_weight(&mut self, node: &[u8], weight: u32) -> Result<(), Error> {
        if weight == 0 {
            return Err(Error::ZeroWeight {
                node: node_name(node),
            });
        }
        check_points(weight)?;
        let e = self
            .nodes
            .iter_mut()
            .find(|(n, _)| n.as_ref() == node)
            .ok_or_else(|| Error::UnknownNode {
                node: node_name(node),
            })?;
        e.1 = weight;
        self.rebuild();
        Ok(())
    }

    /// The servers and weights, in order.
    pub fn nodes(&self) -> &[(N, u32)] {
        &self.nodes
    }

    /// Number of distinct points on the circle.
    pub fn point_count(&self) -> usize {
        self.ring.len()
    }
}

fn check_points(weight: u32) -> Result<(), Error> {
    if u64::from(weight) * u64::from(NGINX_POINTS_PER_WEIGHT) > MAX_POINTS_PER_NODE {
        return Err(Error::TooManyPoints {
            weight,
            vnodes: NGINX_POINTS_PER_WEIGHT,
            max: MAX_POINTS_PER_NODE,
        });
    }
    Ok(())
}

impl<N: AsRef<[u8]>> Placement for NginxHash<N> {
    type Node = N;
    fn algorithm(&self) -> &'static str {
        "nginx"
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

    fn servers(ws: &[u32]) -> Vec<(String, u32)> {
        ws.iter()
            .enumerate()
            .map(|(i, &w)| (format!("127.0.0.1:{}", 8081 + i), w))
            .collect()
    }

    #[test]
    fn server_names_split_as_nginx_does() {
        assert_eq!(
            split_server(b"127.0.0.1:8081"),
            (&b"127.0.0.1"[..], &b"8081"[..])
        );
        assert_eq!(split_server(b"backend"), (&b"backend"[..], &b""[..]));
        assert_eq!(split_server(b"unix:/tmp/s"), (&b"/tmp/s"[..], &b""[..]));
        assert_eq!(split_server(b"UNIX:/tmp/s"), (&b"/tmp/s"[..], &b""[..]));
        assert_eq!(split_server(b"[::1]:80"), (&b"[::1]"[..], &b"80"[..]));
        // A non-digit after the last colon: no port.
        assert_eq!(split_server(b"a:b"), (&b"a:b"[..], &b""[..]));
        assert_eq!(split_server(b"host:"), (&b"host"[..], &b""[..]));
    }

    #[test]
    fn points_chain_crc32_over_host_nul_port_and_the_previous_point() {
        let pts: Vec<u32> = server_points(b"127.0.0.1:8081", 1).collect();
        assert_eq!(pts.len(), 160);
        // Independent spelling of the same rule for the first two points.
        let first = nginx_crc32(b"127.0.0.1\x008081\0\0\0\0");
        assert_eq!(pts[0], first);
        let mut second = b"127.0.0.1\x008081".to_vec();
        second.extend_from_slice(&first.to_le_bytes());
        assert_eq!(pts[1], nginx_crc32(&second));
        assert_eq!(server_points(b"x:1", 3).count(), 480);
    }

    #[test]
    fn lookup_is_first_point_at_or_after_the_crc32_of_the_key() {
        let h = NginxHash::new(servers(&[1, 2, 1])).unwrap();
        assert_eq!(h.point_count(), 640);
        for i in 0..500 {
            let key = format!("k{i}");
            let hash = nginx_crc32(key.as_bytes());
            // Brute force: smallest point >= hash, else the smallest point.
            let mut all: Vec<(u32, usize)> = Vec::new();
            for (idx, (n, w)) in h.nodes().iter().enumerate() {
                all.extend(server_points(n.as_bytes(), *w).map(|p| (p, idx)));
            }
            let best = all
                .iter()
                .filter(|p| p.0 >= hash)
                .min_by_key(|p| p.0)
                .or_else(|| all.iter().min_by_key(|p| p.0))
                .unwrap();
            assert_eq!(h.get(key.as_bytes()), Some(&h.nodes()[best.1].0));
        }
    }

    #[test]
    fn weight_gives_proportional_share() {
        let h = NginxHash::new(servers(&[1, 3])).unwrap();
        let n = 20_000;
        let heavy = (0..n)
            .filter(|i| h.get(format!("key-{i}").as_bytes()) == Some(&h.nodes()[1].0))
            .count();
        let share = heavy as f64 / n as f64;
        assert!((0.65..0.85).contains(&share), "{share}");
    }

    #[test]
    fn failover_walks_points_then_falls_back_to_round_robin() {
        let h = NginxHash::new(servers(&[1, 1, 1])).unwrap();
        let key = b"user-7";
        let owner = h.get(key).unwrap();
        assert_eq!(h.pick(key, |_| true), NginxPick::Hashed(owner));
        let tries: Vec<&String> = h.tries(key).collect();
        assert_eq!(tries.len(), NGINX_MAX_TRIES + 1);
        assert_eq!(tries[0], owner);
        // Owner down: the first other server along the points.
        let expect = *tries.iter().find(|n| **n != owner).unwrap();
        assert_eq!(h.pick(key, |n| n != owner), NginxPick::Hashed(expect));
        // Nothing usable within 21 points: round robin.
        assert_eq!(h.pick(key, |_| false), NginxPick::RoundRobin);
        // Empty key, single server: round robin, as nginx.
        assert_eq!(h.pick(b"", |_| true), NginxPick::RoundRobin);
        let one = NginxHash::new(servers(&[1])).unwrap();
        assert_eq!(one.pick(key, |_| true), NginxPick::RoundRobin);
        // A server reached only past 21 points is never hashed to.
        let far = h
            .candidates(key)
            .find(|n| !tries.contains(n))
            .map(|n| n.to_string());
        if let Some(far) = far {
            assert_eq!(h.pick(key, |n| *n == far), NginxPick::RoundRobin);
        }
    }

    #[test]
    fn add_remove_and_reweight_match_a_fresh_build() {
        let mut h = NginxHash::new(servers(&[1, 2])).unwrap();
        h.add("127.0.0.1:9000".to_string(), 2).unwrap();
        h.set_weight(b"127.0.0.1:8081", 3).unwrap();
        h.remove(b"127.0.0.1:8082").unwrap();
        let fresh = NginxHash::new(vec![
            ("127.0.0.1:8081".to_string(), 3),
            ("127.0.0.1:9000".to_string(), 2),
        ])
        .unwrap();
        for i in 0..1000 {
            let k = format!("k{i}");
            assert_eq!(h.get(k.as_bytes()), fresh.get(k.as_bytes()));
        }
        assert!(matches!(
            h.add("127.0.0.1:9000".to_string(), 1),
            Err(Error::DuplicateNode { .. })
        ));
        assert!(matches!(
            h.set_weight(b"nope", 1),
            Err(Error::UnknownNode { .. })
        ));
        assert!(matches!(
            h.set_weight(b"127.0.0.1:9000", 0),
            Err(Error::ZeroWeight { .. })
        ));
        assert!(matches!(
            NginxHash::new(vec![("a".to_string(), u32::MAX)]),
            Err(Error::TooManyPoints { .. })
        ));
        let empty = NginxHash::<String>::new(vec![]).unwrap();
        assert_eq!(empty.get(b"k"), None);
        assert_eq!(empty.tries(b"k").count(), 0);
        assert_eq!(empty.candidates(b"k").count(), 0);
    }

    #[test]
    fn server_order_does_not_matter_without_collisions() {
        let a = NginxHash::new(servers(&[1, 2, 3])).unwrap();
        let mut rev = servers(&[1, 2, 3]);
        rev.reverse();
        let b = NginxHash::new(rev).unwrap();
        for i in 0..2000 {
            let k = format!("k{i}");
            assert_eq!(a.get(k.as_bytes()), b.get(k.as_bytes()));
        }
    }
}
