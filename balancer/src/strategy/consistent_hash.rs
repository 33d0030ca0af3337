//! Consistent hashing of the request key on `ringleader-ring`'s [`HashRing`], with optional bounded load.
use super::{first_from, Cursor, Filter, Strategy};
use crate::{Backend, BalancerConfig, Error, RequestCtx, StrategyKind};
use ringleader_ring::HashRing;
use std::sync::Arc;

/// A ring node: placed by the backend id's bytes, carrying its index in the snapshot.
#[derive(Debug, Clone)]
struct Node {
    id: String,
    index: usize,
}

impl AsRef<[u8]> for Node {
    fn as_ref(&self) -> &[u8] {
        self.id.as_bytes()
    }
}

/// Consistent hashing: a key always goes to the same backend while the set is stable,
/// and only about `1/n` of the keys move when a backend joins or leaves.
///
/// Nodes are placed by their id bytes with `config.vnodes` points per unit of weight,
/// so placement is the same in every process. An unavailable owner hands the key to
/// the next distinct backend clockwise. With `config.bounded_load = Some(eps)` a
/// backend takes at most `ceil((1 + eps) * average)` in-flight requests (Mirrokni et
/// al., SODA 2018); the key spills clockwise past a full one. Requests without a key
/// go round robin.
#[derive(Debug)]
pub struct ConsistentHash {
    ring: HashRing<Node>,
    bounded: Option<f64>,
    cursor: Cursor,
}

impl ConsistentHash {
    /// Build the ring for `backends`.
    pub fn new(backends: &[Arc<Backend>], config: &BalancerConfig) -> Result<Self, Error> {
        let nodes = backends.iter().enumerate().map(|(index, b)| {
            (
                Node {
                    id: b.id().to_owned(),
                    index,
                },
                b.weight(),
            )
        });
        let ring =
            HashRing::from_nodes(nodes, config.vnodes).map_err(|e| Error::Ring(e.to_string()))?;
        Ok(Self {
            ring,
            bounded: config.bounded_load,
            cursor: Cursor::new(backends.len()),
        })
    }

    /// Bounded-load choice among admitted backends only (used when the ring's own
    /// answer, computed over all backends, is unavailable).
    #[cold]
    fn bounded_admitted(
        &self,
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
        for node in self.ring.candidates(key) {
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
        let owner = match self.bounded {
            None => self.ring.get(key)?.index,
            Some(eps) => {
                self.ring
                    .get_bounded(key, eps, |n: &Node| backends[n.index].in_flight())?
                    .index
            }
        };
        if filter.admits(&backends[owner]) {
            return Some(owner);
        }
        match self.bounded {
            None => self
                .ring
                .candidates(key)
                .map(|n| n.index)
                .find(|&i| filter.admits(&backends[i])),
            Some(eps) => self.bounded_admitted(backends, key, eps, filter),
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
        self.ring
            .candidates(key)
            .map(|n| n.index)
            .find(|&i| !tried.contains(&i) && filter.admits(&backends[i]))
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
}
