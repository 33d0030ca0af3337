//! [`Rendezvous`]: weighted highest-random-weight (HRW) hashing.
use crate::error::{node_name, Error};
use crate::hash::{hash_key, mix64};
use crate::placement::{check_unique, check_weights, Placement};

#[derive(Debug, Clone)]
struct Entry<N> {
    node: N,
    weight: u32,
    /// `XXH3_64(node bytes)`, combined with the key hash per lookup.
    id: u64,
}

/// Rendezvous (highest random weight) hashing with weights.
///
/// Each node scores `mix64(XXH3_64(key) ^ XXH3_64(node))`; the highest score
/// wins (Thaler & Ravishankar, 1998). With weights the score becomes
/// `-weight / ln(u)` for `u` the mixed hash mapped into (0, 1), which gives
/// each node a share proportional to its weight (the "logarithmic method",
/// Schindelhauer & Schomaker 2005). Ties (astronomically rare) go to the
/// smaller node bytes. `O(n)` per lookup, no memory beyond the node list, and
/// only the keys of a node that leaves or joins move.
///
/// ```
/// use ringleader_ring::{Placement, Rendezvous};
/// let r = Rendezvous::new(vec![("a".to_string(), 1), ("b".to_string(), 3)])?;
/// assert!(r.locate(b"k").is_some());
/// # Ok::<(), ringleader_ring::Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct Rendezvous<N> {
    nodes: Vec<Entry<N>>,
    uniform: bool,
}

impl<N: AsRef<[u8]>> Rendezvous<N> {
    /// A placement over `(node, weight)` pairs. Errors on weight 0 or duplicates.
    pub fn new(nodes: Vec<(N, u32)>) -> Result<Self, Error> {
        check_weights(&nodes)?;
        check_unique(nodes.iter().map(|(n, _)| n.as_ref()))?;
        let mut r = Self {
            nodes: nodes
                .into_iter()
                .map(|(node, weight)| Entry {
                    id: hash_key(node.as_ref()),
                    node,
                    weight,
                })
                .collect(),
            uniform: true,
        };
        r.refresh();
        Ok(r)
    }

    fn refresh(&mut self) {
        let first = self.nodes.first().map(|e| e.weight);
        self.uniform = self.nodes.iter().all(|e| Some(e.weight) == first);
    }

    /// The owner of `key`, `None` when empty.
    pub fn get(&self, key: &[u8]) -> Option<&N> {
        let h = hash_key(key);
        let mut best: Option<(&Entry<N>, f64, u64)> = None;
        for e in &self.nodes {
            let m = mix64(h ^ e.id);
            let score = if self.uniform {
                0.0
            } else {
                // u in (0, 1): the top 53 bits plus a half step, never 0 or 1.
                let u = ((m >> 11) as f64 + 0.5) / (1u64 << 53) as f64;
                -f64::from(e.weight) / u.ln()
            };
            let better = match best {
                None => true,
                Some((b, bs, bm)) => {
                    let ord = if self.uniform {
                        m.cmp(&bm)
                    } else {
                        score.total_cmp(&bs)
                    };
                    ord.then_with(|| b.node.as_ref().cmp(e.node.as_ref()))
                        .is_gt()
                }
            };
            if better {
                best = Some((e, score, m));
            }
        }
        best.map(|(e, _, _)| &e.node)
    }

    /// Add a node.
    pub fn add(&mut self, node: N, weight: u32) -> Result<(), Error> {
        if weight == 0 {
            return Err(Error::ZeroWeight {
                node: node_name(node.as_ref()),
            });
        }
        if self.nodes.iter().any(|e| e.node.as_ref() == node.as_ref()) {
            return Err(Error::DuplicateNode {
                node: node_name(node.as_ref()),
            });
        }
        self.nodes.push(Entry {
            id: hash_key(node.as_ref()),
            node,
            weight,
        });
        self.refresh();
        Ok(())
    }

    /// Remove a node.
    pub fn remove(&mut self, node: &[u8]) -> Result<N, Error> {
        let i = self.position(node)?;
        let e = self.nodes.remove(i);
        self.refresh();
        Ok(e.node)
    }

    /// Change a node's weight.
    pub fn set_weight(&mut self, node: &[u8], weight: u32) -> Result<(), Error> {
        if weight == 0 {
            return Err(Error::ZeroWeight {
                node: node_name(node),
            });
        }
        let i = self.position(node)?;
        self.nodes[i].weight = weight;
        self.refresh();
        Ok(())
    }

    fn position(&self, node: &[u8]) -> Result<usize, Error> {
        self.nodes
            .iter()
            .position(|e| e.node.as_ref() == node)
            .ok_or_else(|| Error::UnknownNode {
                node: node_name(node),
            })
    }
}

impl<N: AsRef<[u8]>> Placement for Rendezvous<N> {
    type Node = N;
    fn algorithm(&self) -> &'static str {
        "rendezvous"
    }
    fn locate(&self, key: &[u8]) -> Option<&N> {
        self.get(key)
    }
    fn node_count(&self) -> usize {
        self.nodes.len()
    }
    fn heap_bytes(&self) -> usize {
        self.nodes.capacity() * std::mem::size_of::<Entry<N>>()
    }
}
