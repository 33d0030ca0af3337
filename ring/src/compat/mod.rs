//! Compatible placements: keys land where nginx, libketama or Redis Cluster put them.
//!
//! Switching a fleet from nginx's `hash $key consistent`, a ketama memcached
//! client or a Redis Cluster to ringleader's own [`HashRing`](crate::HashRing)
//! moves most keys, because the ring places nodes with xxh3 points of its own.
//! These placements reproduce the other systems' arithmetic instead, so the
//! switch moves nothing:
//!
//! - [`NginxHash`]: nginx's `hash KEY consistent` (CRC32 points chained per
//!   server name, 160 per unit of weight, with nginx's failover walk);
//! - [`Ketama`]: libketama's continuum (MD5 of `"host:port-i"`, four points
//!   per digest, points by share of the total weight);
//! - [`RedisCluster`]: Redis Cluster key slots (CRC16 mod 16384 with
//!   `{hash tags}`) mapped to nodes through a [`SlotMap`](crate::SlotMap).
//!
//! [`Compat`] names them, and [`Compat::build`] makes one from a weighted
//! node list as a [`CompatPlacement`].
//!
//! ```
//! use ringleader_ring::{Compat, Placement};
//! let servers = vec![("127.0.0.1:8081".to_string(), 1), ("127.0.0.1:8082".to_string(), 2)];
//! let nginx = Compat::Nginx.build(servers)?;
//! assert_eq!(nginx.algorithm(), "nginx");
//! let owner = nginx.locate(b"user-42").unwrap();
//! assert_eq!(nginx.candidates(b"user-42").next(), Some(owner));
//! assert_eq!("ketama".parse::<Compat>()?, Compat::Ketama);
//! # Ok::<(), ringleader_ring::Error>(())
//! ```
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::error::Error;
use crate::placement::Placement;

mod ketama;
mod nginx;
mod redis;

pub use ketama::{ketama_hash, Ketama, KETAMA_POINTS_PER_SERVER};
pub use nginx::{nginx_crc32, NginxHash, NginxPick, NGINX_MAX_TRIES, NGINX_POINTS_PER_WEIGHT};
pub use redis::{crc16_xmodem, redis_slot, RedisCluster, REDIS_SLOTS};

/// The compatible placements, by the name a config or the simulator uses.
///
/// ```
/// use ringleader_ring::Compat;
/// assert_eq!(Compat::Nginx.to_string(), "nginx");
/// assert_eq!(serde_json::to_string(&Compat::Redis).unwrap(), "\"redis\"");
/// assert!("memcached".parse::<Compat>().is_err());
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum Compat {
    /// nginx `hash KEY consistent` ([`NginxHash`]).
    Nginx,
    /// libketama, as memcached clients use it ([`Ketama`]).
    Ketama,
    /// Redis Cluster key slots ([`RedisCluster`]).
    Redis,
}

impl Compat {
    /// Every compatible placement.
    pub const ALL: [Compat; 3] = [Compat::Nginx, Compat::Ketama, Compat::Redis];

    /// The lowercase name (`"nginx"`, `"ketama"`, `"redis"`).
    pub const fn name(self) -> &'static str {
        match self {
            Compat::Nginx => "nginx",
            Compat::Ketama => "ketama",
            Compat::Redis => "redis",
        }
    }

    /// Build this placement over `(node, weight)` pairs, in the order the
    /// other system lists them (nginx's `server` lines, ketama's server file,
    /// the masters given to `redis-cli --cluster create`).
    ///
    /// Weights mean what they mean there: nginx's `weight=`, ketama's memory
    /// share; Redis Cluster has no weights (slots are split evenly, as
    /// `redis-cli --cluster create` does), so they are only checked to be > 0.
    pub fn build<N: AsRef<[u8]>>(self, nodes: Vec<(N, u32)>) -> Result<CompatPlacement<N>, Error> {
        Ok(match self {
            Compat::Nginx => CompatPlacement::Nginx(NginxHash::new(nodes)?),
            Compat::Ketama => CompatPlacement::Ketama(Ketama::new(nodes)?),
            Compat::Redis => {
                crate::placement::check_weights(&nodes)?;
                CompatPlacement::Redis(RedisCluster::new(
                    nodes.into_iter().map(|(n, _)| n).collect(),
                )?)
            }
        })
    }
}

impl fmt::Display for Compat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Compat {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self, Error> {
        let t = s.trim();
        Self::ALL
            .into_iter()
            .find(|c| c.name().eq_ignore_ascii_case(t))
            .ok_or_else(|| Error::InvalidParameter {
                what: "compatible placement",
                reason: format!("unknown placement {s:?} (expected nginx, ketama or redis)"),
            })
    }
}

/// One of the compatible placements, built by [`Compat::build`].
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum CompatPlacement<N> {
    /// nginx `hash KEY consistent`.
    Nginx(NginxHash<N>),
    /// libketama.
    Ketama(Ketama<N>),
    /// Redis Cluster slots.
    Redis(RedisCluster<N>),
}

impl<N: AsRef<[u8]>> CompatPlacement<N> {
    /// Which placement this is.
    pub fn compat(&self) -> Compat {
        match self {
            CompatPlacement::Nginx(_) => Compat::Nginx,
            CompatPlacement::Ketama(_) => Compat::Ketama,
            CompatPlacement::Redis(_) => Compat::Redis,
        }
    }

    /// Distinct nodes in failover order for `key`, the owner first (see each
    /// placement's `candidates`).
    pub fn candidates<'a>(&'a self, key: &[u8]) -> Box<dyn Iterator<Item = &'a N> + 'a> {
        match self {
            CompatPlacement::Nginx(p) => Box::new(p.candidates(key)),
            CompatPlacement::Ketama(p) => Box::new(p.candidates(key)),
            CompatPlacement::Redis(p) => Box::new(p.candidates(key)),
        }
    }
}

impl<N: AsRef<[u8]> + Clone> CompatPlacement<N> {
    /// Add a node at the end of the list (Redis: slots move to it with the
    /// fewest moves that even the shares).
    pub fn add(&mut self, node: N, weight: u32) -> Result<(), Error> {
        match self {
            CompatPlacement::Nginx(p) => p.add(node, weight),
            CompatPlacement::Ketama(p) => p.add(node, weight),
            CompatPlacement::Redis(p) => {
                if weight == 0 {
                    return Err(Error::ZeroWeight {
                        node: crate::error::node_name(node.as_ref()),
                    });
                }
                p.add(node)
            }
        }
    }

    /// Remove a node by its bytes.
    pub fn remove(&mut self, node: &[u8]) -> Result<N, Error> {
        match self {
            CompatPlacement::Nginx(p) => p.remove(node),
            CompatPlacement::Ketama(p) => p.remove(node),
            CompatPlacement::Redis(p) => p.remove(node),
        }
    }
}

impl<N: AsRef<[u8]>> Placement for CompatPlacement<N> {
    type Node = N;
    fn algorithm(&self) -> &'static str {
        self.compat().name()
    }
    fn locate(&self, key: &[u8]) -> Option<&N> {
        match self {
            CompatPlacement::Nginx(p) => p.locate(key),
            CompatPlacement::Ketama(p) => p.locate(key),
            CompatPlacement::Redis(p) => p.locate(key),
        }
    }
    fn node_count(&self) -> usize {
        match self {
            CompatPlacement::Nginx(p) => p.node_count(),
            CompatPlacement::Ketama(p) => p.node_count(),
            CompatPlacement::Redis(p) => p.node_count(),
        }
    }
    fn heap_bytes(&self) -> usize {
        match self {
            CompatPlacement::Nginx(p) => p.heap_bytes(),
            CompatPlacement::Ketama(p) => p.heap_bytes(),
            CompatPlacement::Redis(p) => p.heap_bytes(),
        }
    }
}

/// A sorted circle of 32-bit points, each owned by a node index: the shape
/// both nginx and libketama use. Equal points keep their insertion order
/// (a stable sort), which is what glibc's `qsort` (a merge sort for arrays
/// that fit its buffer) gives both of them.
#[derive(Debug, Clone, Default)]
pub(crate) struct Continuum {
    points: Vec<u32>,
    owners: Vec<u32>,
}

impl Continuum {
    /// Sort `(point, owner)` pairs, stably; with `dedupe`, keep only the first
    /// of equal points (nginx does; libketama does not).
    pub(crate) fn build(mut pts: Vec<(u32, u32)>, dedupe: bool) -> Self {
        pts.sort_by_key(|p| p.0);
        if dedupe {
            pts.dedup_by_key(|p| p.0);
        }
        Self {
            points: pts.iter().map(|p| p.0).collect(),
            owners: pts.iter().map(|p| p.1).collect(),
        }
    }

    /// Index of the first point `>= hash`, wrapping to 0 past the last point;
    /// `None` when empty.
    #[inline]
    pub(crate) fn find(&self, hash: u32) -> Option<usize> {
        if self.points.is_empty() {
            return None;
        }
        let i = self.points.partition_point(|&p| p < hash);
        Some(if i == self.points.len() { 0 } else { i })
    }

    /// Owner index of point `i % len`.
    #[inline]
    pub(crate) fn owner_at(&self, i: usize) -> u32 {
        self.owners[i % self.owners.len()]
    }

    pub(crate) fn len(&self) -> usize {
        self.points.len()
    }

    pub(crate) fn heap_bytes(&self) -> usize {
        (self.points.capacity() + self.owners.capacity()) * 4
    }

    /// Distinct owners clockwise from point `start` (every owner once).
    pub(crate) fn distinct_from(&self, start: Option<usize>, nodes: usize) -> DistinctOwners<'_> {
        DistinctOwners {
            continuum: self,
            pos: start.unwrap_or(0),
            steps: if start.is_some() { 0 } else { self.len() },
            seen: vec![false; nodes],
            left: if start.is_some() { nodes } else { 0 },
        }
    }
}

/// Distinct owner indices in point order; see [`Continuum::distinct_from`].
#[derive(Debug, Clone)]
pub(crate) struct DistinctOwners<'a> {
    continuum: &'a Continuum,
    pos: usize,
    steps: usize,
    seen: Vec<bool>,
    left: usize,
}

impl Iterator for DistinctOwners<'_> {
    type Item = usize;
    fn next(&mut self) -> Option<usize> {
        while self.left > 0 && self.steps < self.continuum.len() {
            let o = self.continuum.owner_at(self.pos) as usize;
            self.pos += 1;
            self.steps += 1;
            if !self.seen[o] {
                self.seen[o] = true;
                self.left -= 1;
                return Some(o);
            }
        }
        None
    }
}

/// Distinct nodes in failover order for one key, from a compatible
/// placement's `candidates`.
#[derive(Debug, Clone)]
pub struct CompatCandidates<'a, N> {
    inner: DistinctOwners<'a>,
    nodes: &'a [(N, u32)],
}

impl<'a, N> CompatCandidates<'a, N> {
    pub(crate) fn new(inner: DistinctOwners<'a>, nodes: &'a [(N, u32)]) -> Self {
        Self { inner, nodes }
    }
}

impl<'a, N> Iterator for CompatCandidates<'a, N> {
    type Item = &'a N;
    fn next(&mut self) -> Option<&'a N> {
        self.inner.next().map(|i| &self.nodes[i].0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for c in Compat::ALL {
            assert_eq!(c.name().parse::<Compat>().unwrap(), c);
            let json = serde_json::to_string(&c).unwrap();
            assert_eq!(serde_json::from_str::<Compat>(&json).unwrap(), c);
        }
        assert_eq!("NGINX".parse::<Compat>().unwrap(), Compat::Nginx);
        assert!(matches!(
            "chord".parse::<Compat>(),
            Err(Error::InvalidParameter { .. })
        ));
    }

    #[test]
    fn continuum_finds_first_point_at_or_after_and_wraps() {
        let c = Continuum::build(vec![(30, 2), (10, 0), (20, 1), (20, 3)], false);
        assert_eq!(c.find(0), Some(0));
        assert_eq!(c.find(10), Some(0));
        assert_eq!(c.find(11), Some(1));
        // Equal points keep insertion order: owner 1 before owner 3.
        assert_eq!(c.owner_at(c.find(20).unwrap()), 1);
        assert_eq!(c.owner_at(2), 3);
        assert_eq!(c.find(31), Some(0));
        let d = Continuum::build(vec![(20, 1), (20, 3)], true);
        assert_eq!(d.len(), 1);
        assert_eq!(d.owner_at(0), 1);
        assert_eq!(Continuum::default().find(5), None);
    }

    #[test]
    fn distinct_owners_visit_every_node_once() {
        let c = Continuum::build(vec![(1, 0), (2, 0), (3, 1), (4, 0), (5, 2)], false);
        let got: Vec<usize> = c.distinct_from(c.find(2), 3).collect();
        assert_eq!(got, vec![0, 1, 2]);
        let got: Vec<usize> = c.distinct_from(c.find(5), 3).collect();
        assert_eq!(got, vec![2, 0, 1]);
        assert_eq!(c.distinct_from(None, 3).count(), 0);
    }

    #[test]
    fn every_compat_builds_and_locates() {
        let nodes = vec![("a:1".to_string(), 1), ("b:2".to_string(), 2)];
        for c in Compat::ALL {
            let mut p = c.build(nodes.clone()).unwrap();
            assert_eq!(p.compat(), c);
            assert_eq!(p.node_count(), 2);
            let owner = p.locate(b"k").unwrap().clone();
            let all: Vec<&String> = p.candidates(b"k").collect();
            assert_eq!(all.len(), 2);
            assert_eq!(all[0], &owner);
            p.add("c:3".to_string(), 1).unwrap();
            assert_eq!(p.node_count(), 3);
            assert!(p.add("c:3".to_string(), 1).is_err());
            assert_eq!(p.remove(b"c:3").unwrap(), "c:3");
            assert!(p.remove(b"zz").is_err());
            assert!(c.build(vec![("x".to_string(), 0)]).is_err());
        }
    }
}
