//! Consistent hashing of the request key on `ringleader-ring`'s [`HashRing`] (optionally with bounded load), or on a placement compatible with nginx, ketama or Redis Cluster.
use super::{first_from, Cursor, Filter, Strategy};
use crate::{Backend, BalancerConfig, Error, RequestCtx, StrategyKind};
use ringleader_ring::{Compat, CompatPlacement, HashRing, NginxPick};
use std::sync::Arc;

/// A ring node: placed by its name's bytes (the backend id on the native ring,
/// the address on a compatible placement), carrying its index in the snapshot.
#[derive(Debug, Clone)]
struct Node {
    name: String,
    index: usize,
}

impl AsRef<[u8]> for Node {
    fn as_ref(&self) -> &[u8] {
        self.name.as_bytes()
    }
}

/// Where keys are placed.
#[derive(Debug)]
enum Place {
    /// ringleader's own ring (xxh3 points of the backend ids).
    Ring(HashRing<Node>),
    /// A placement compatible with another system, by backend address.
    Compat(CompatPlacement<Node>),
}

/// Consistent hashing: a key always goes to the same backend while the set is stable,
/// and only about `1/n` of the keys move when a backend joins or leaves.
///
/// By default nodes are placed by their id bytes with `config.vnodes` points per unit
/// of weight, so placement is the same in every process. An unavailable owner hands
/// the key to the next distinct backend clockwise. With `config.bounded_load =
/// Some(eps)` a backend takes at most `ceil((1 + eps) * average)` in-flight requests
/// (Mirrokni et al., SODA 2018); the key spills clockwise past a full one. Requests
/// without a key go round robin.
///
/// With `config.hash_compat = Some(..)` keys land where another system puts them,
/// backends being named by their address (nginx's `server` line, ketama's
/// `host:port`) with their weight:
///
/// - [`Compat::Nginx`]: as nginx's `hash $key consistent`, failover included: an
///   unavailable (or already tried) owner hands the key to the server of the next
///   point, for at most 20 points, then round robin; an empty key, or a single
///   backend, goes round robin as in nginx (whose round robin is weighted; this one is not);
/// - [`Compat::Ketama`] and [`Compat::Redis`]: the owner, then the next distinct
///   backends clockwise (Redis: the next backends in list order).
#[derive(Debug)]
pub struct ConsistentHash {
    place: Place,
    bounded: Option<f64>,
    cursor: Cursor,
}

impl ConsistentHash {
    /// Build the ring (or the compatible placement) for `backends`.
    pub fn new(backends: &[Arc<Backend>], config: &BalancerConfig) -> Result<Self, Error> {
        let ring_err = |e: ringleader_ring::Error| Error::Ring(e.to_string());
        let place = match config.hash_compat {
            None => {
                let nodes = backends.iter().enumerate().map(|(index, b)| {
                    let name = b.id().to_owned();
                    (Node { name, index }, b.weight())
                });
                Place::Ring(HashRing::from_nodes(nodes, config.vnodes).map_err(ring_err)?)
            }
            Some(compat) => {
                let nodes = backends
                    .iter()
                    .enumerate()
                    .map(|(index, b)| {
                        let name = b.addr().to_owned();
                        (Node { name, index }, b.weight())
                    })
                    .collect();
                Place::Compat(compat.build(nodes).map_err(ring_err)?)
            }
        };
        Ok(Self {
            place,
            bounded: config.bounded_load,
            cursor: Cursor::new(backends.len()),
        })
    }

    /// The compatible placement in use, if any.
    pub fn compat(&self) -> Option<Compat> {
        match &self.place {
            Place::Ring(_) => None,
            Place::Compat(c) => Some(c.compat()),
        }
    }

    /// Backend indices in failover order for `key`, the owner first.
    fn candidates<'a>(&'a self, key: &[u8]) -> Box<dyn Iterator<Item = usize> + 'a> {
        match &self.place {
            Place::Ring(r) => Box::new(r.candidates(key).map(|n| n.index)),
            Place::Compat(c) => Box::new(c.candidates(key).map(|n| n.index)),
        }
    }

    /// A compatible placement's choice among backends `usable` admits; `None`
    /// when not compatible-placed. The inner `None` means round robin (nginx).
    fn compat_pick<F>(&self, key: &[u8], usable: F) -> Option<Option<usize>>
    where
        F: Fn(usize) -> bool,
    {
        let Place::Compat(c) = &self.place else {
            return None;
        };
        Some(match c {
            CompatPlacement::Nginx(h) => match h.pick(key, |n| usable(n.index)) {
                NginxPick::Hashed(n) => Some(n.index),
                _ => None,
            },
            _ => c.candidates(key).map(|n| n.index).find(|&i| usable(i)),
        })
    }

    /// Bounded-load choice among admitted backends only (used when the ring's own
    /// answer, computed over all backends, is unavailable).
    #[cold]
    fn bounded_admitted(
        &self,
        ring: &HashRing<Node>,
        backends: &[Arc<Backend>],
        key: &[u8],
        eps: f64,
        filter: Filter,
    ) -> Option<usize> {
        let admitted = |i: usize| filter.admits(&backends[i]);
        let (mut total, mut weight) = (1u64, 0u64);
        for (i, b) in backends.iter().enumerate() {
            if admitted(i) {
                total += b.in_flight();
                weight += u64::from(b.weight());
            }
        }
        let mut fallback = None;
        for node in ring.candidates(key) {
            let i = node.index;
            if !admitted(i) {
                continue;
            }
            let b = &backends[i];
            let cap = ((1.0 + eps) * total as f64 * f64::from(b.weight()) / weight as f64).ceil();
            if (b.in_flight() as f64) < cap {
                return Some(i);
            }
            fallback.get_or_insert(i);
        }
        fallback
    }
}

impl Strategy for ConsistentHash {
    fn kind(&self) -> StrategyKind {
        StrategyKind::ConsistentHash
    }

    fn pick(
        &self,
        backends: &[Arc<Backend>],
        ctx: &RequestCtx<'_>,
        filter: Filter,
    ) -> Option<usize> {
        let Some(key) = ctx.key() else {
            return first_from(backends, self.cursor.next(), filter);
        };
        let ring = match &self.place {
            Place::Ring(r) => r,
            Place::Compat(_) => {
                let pick = self.compat_pick(key, |i| filter.admits(&backends[i]))?;
                return pick.or_else(|| first_from(backends, self.cursor.next(), filter));
            }
        };
        let owner = match self.bounded {
            None => ring.get(key)?.index,
            Some(eps) => {
                ring.get_bounded(key, eps, |n: &Node| backends[n.index].in_flight())?
                    .index
            }
        };
        if filter.admits(&backends[owner]) {
            return Some(owner);
        }
        match self.bounded {
            None => ring
                .candidates(key)
                .map(|n| n.index)
                .find(|&i| filter.admits(&backends[i])),
            Some(eps) => self.bounded_admitted(ring, backends, key, eps, filter),
        }
    }

    fn next_candidate(
        &self,
        backends: &[Arc<Backend>],
        ctx: &RequestCtx<'_>,
        filter: Filter,
        tried: &[usize],
    ) -> Option<usize> {
        let Some(key) = ctx.key() else {
            let start = tried.last().map_or(0, |&i| i + 1);
            return super::rotate(backends.len(), start)
                .find(|&i| !tried.contains(&i) && filter.admits(&backends[i]));
        };
        let usable = |i: usize| !tried.contains(&i) && filter.admits(&backends[i]);
        match self.compat_pick(key, usable) {
            // nginx gave up hashing: round robin among the rest.
            Some(None) => {
                let start = tried.last().map_or(0, |&i| i + 1);
                super::rotate(backends.len(), start).find(|&i| usable(i))
            }
            Some(Some(i)) => Some(i),
            None => self.candidates(key).find(|&i| usable(i)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::strategy::testing::{backends, set_in_flight};

    fn ch(bs: &[Arc<Backend>], bounded: Option<f64>) -> ConsistentHash {
        let cfg = BalancerConfig {
            bounded_load: bounded,
            ..BalancerConfig::default()
        };
        ConsistentHash::new(bs, &cfg).unwrap()
    }

    #[test]
    fn same_key_same_backend_and_failover_is_next_on_ring() {
        let (bs, _c) = backends(&[1, 1, 1, 1]);
        let s = ch(&bs, None);
        let keys: Vec<String> = (0..200).map(|i| format!("user-{i}")).collect();
        let owners: Vec<usize> = keys
            .iter()
            .map(|k| {
                s.pick(&bs, &RequestCtx::with_key(k.as_bytes()), Filter::Available)
                    .unwrap()
            })
            .collect();
        for (k, &o) in keys.iter().zip(&owners) {
            let ctx = RequestCtx::with_key(k.as_bytes());
            assert_eq!(s.pick(&bs, &ctx, Filter::Available), Some(o));
        }
        // Every backend owns some keys.
        for i in 0..4 {
            assert!(owners.contains(&i));
        }
        // Backend 0 goes down: only its keys move, each to its ring successor.
        let p = crate::HealthPolicy { rise: 1, fall: 1 };
        bs[0].report_check(false, &p);
        for (k, &o) in keys.iter().zip(&owners) {
            let ctx = RequestCtx::with_key(k.as_bytes());
            let now = s.pick(&bs, &ctx, Filter::Available).unwrap();
            if o == 0 {
                let second = s.next_candidate(&bs, &ctx, Filter::Any, &[0]).unwrap();
                assert_eq!(now, second);
            } else {
                assert_eq!(now, o);
            }
        }
    }

    #[test]
    fn bounded_load_spills_past_a_full_backend() {
        let (bs, _c) = backends(&[1, 1, 1]);
        let s = ch(&bs, Some(0.25));
        let ctx = RequestCtx::with_key(b"hot-key");
        let owner = s.pick(&bs, &ctx, Filter::Available).unwrap();
        set_in_flight(&bs[owner], 10);
        let spilled = s.pick(&bs, &ctx, Filter::Available).unwrap();
        assert_ne!(spilled, owner);
        // Plain consistent hashing ignores load.
        let plain = ch(&bs, None);
        assert_eq!(plain.pick(&bs, &ctx, Filter::Available), Some(owner));
    }

    /// Backends whose ids differ from their addresses, to show which one places them.
    fn addressed(weights: &[u32]) -> Vec<Arc<Backend>> {
        let clock = Arc::new(crate::clock::ManualClock::new());
        let epoch = crate::Clock::now(&*clock);
        let config = BalancerConfig::default();
        weights
            .iter()
            .enumerate()
            .map(|(i, &w)| {
                let spec = crate::BackendSpec {
                    id: format!("id-{i}"),
                    addr: format!("10.0.0.{}:8080", i + 1),
                    weight: w,
                };
                Arc::new(Backend::new(&spec, &config, clock.clone(), epoch, 0, None))
            })
            .collect()
    }

    fn compat(bs: &[Arc<Backend>], c: Compat) -> ConsistentHash {
        let cfg = BalancerConfig {
            hash_compat: Some(c),
            ..BalancerConfig::default()
        };
        ConsistentHash::new(bs, &cfg).unwrap()
    }

    #[test]
    fn compatible_placements_place_by_address_and_weight() {
        let bs = addressed(&[1, 2, 3, 1]);
        let servers: Vec<(String, u32)> = bs
            .iter()
            .map(|b| (b.addr().to_owned(), b.weight()))
            .collect();
        for c in [Compat::Nginx, Compat::Ketama, Compat::Redis] {
            let s = compat(&bs, c);
            assert_eq!(s.compat(), Some(c));
            let reference = c.build(servers.clone()).unwrap();
            for i in 0..2000 {
                let key = format!("user-{i}");
                let ctx = RequestCtx::with_key(key.as_bytes());
                let got = s.pick(&bs, &ctx, Filter::Available).unwrap();
                let want = ringleader_ring::Placement::locate(&reference, key.as_bytes()).unwrap();
                assert_eq!(bs[got].addr(), want, "{c} key {key}");
            }
        }
    }

    #[test]
    fn nginx_failover_follows_the_points_then_round_robin() {
        let bs = addressed(&[1, 1, 1, 1, 1]);
        let s = compat(&bs, Compat::Nginx);
        let servers: Vec<(String, u32)> = bs.iter().map(|b| (b.addr().to_owned(), 1)).collect();
        let h = ringleader_ring::NginxHash::new(servers).unwrap();
        let p = crate::HealthPolicy { rise: 1, fall: 1 };
        bs[2].report_check(false, &p);
        let down = bs[2].addr().to_owned();
        let mut moved = 0;
        for i in 0..2000 {
            let key = format!("k{i}");
            let ctx = RequestCtx::with_key(key.as_bytes());
            let got = s.pick(&bs, &ctx, Filter::Available).unwrap();
            let NginxPick::Hashed(want) = h.pick(key.as_bytes(), |n| *n != down) else {
                panic!("round robin for {key}");
            };
            assert_eq!(bs[got].addr(), want);
            if h.get(key.as_bytes()) == Some(&down) {
                moved += 1;
            }
            // A retry skips the tried backend the way nginx does.
            let next = s
                .next_candidate(&bs, &ctx, Filter::Available, &[got])
                .unwrap();
            let tried = bs[got].addr().to_owned();
            let NginxPick::Hashed(want) = h.pick(key.as_bytes(), |n| *n != down && *n != tried)
            else {
                panic!("round robin for {key}");
            };
            assert_eq!(bs[next].addr(), want);
        }
        assert!(moved > 200, "{moved}");
        // An empty key goes round robin, as in nginx: every available backend in turn.
        let ctx = RequestCtx::with_key(b"");
        let picks: std::collections::HashSet<usize> = (0..10)
            .map(|_| s.pick(&bs, &ctx, Filter::Available).unwrap())
            .collect();
        assert_eq!(picks.len(), 4);
        assert!(!picks.contains(&2));
    }
}
