//! [`SlotMap`]: hash sharding through a fixed number of slots, rebalanced by
//! moving whole slots with a minimum-move migration plan.
use serde::Serialize;

use crate::error::{node_name, Error};
use crate::hash::hash_key;
use crate::placement::{check_unique, check_weights, Placement};

/// Default slot count, the same as Redis Cluster.
pub const DEFAULT_SLOTS: usize = 16_384;

/// Largest supported slot count.
pub const MAX_SLOTS: usize = 1 << 24;

/// The bytes of `key` that are hashed for slotting: the content of the first
/// `{...}` hash tag when it is non-empty (Redis Cluster's rule, so
/// `user:{42}:cart` and `user:{42}:profile` share a slot), else the whole key.
///
/// ```
/// use ringleader_ring::hash_tag;
/// assert_eq!(hash_tag(b"user:{42}:cart"), b"42");
/// assert_eq!(hash_tag(b"plain"), b"plain");
/// assert_eq!(hash_tag(b"empty{}tag"), b"empty{}tag");
/// ```
pub fn hash_tag(key: &[u8]) -> &[u8] {
    if let Some(open) = key.iter().position(|&b| b == b'{') {
        if let Some(len) = key[open + 1..].iter().position(|&b| b == b'}') {
            if len > 0 {
                return &key[open + 1..open + 1 + len];
            }
        }
    }
    key
}

/// The slot of `key` among `slots`: `XXH3_64(hash_tag(key)) mod slots`
/// (Redis uses CRC16; this crate uses xxh3 everywhere). 0 when `slots` is 0.
///
/// ```
/// use ringleader_ring::hash_slot;
/// assert_eq!(hash_slot(b"a{x}b", 16384), hash_slot(b"x", 16384));
/// ```
#[inline]
pub fn hash_slot(key: &[u8], slots: usize) -> u32 {
    if slots == 0 {
        return 0;
    }
    let h = hash_key(hash_tag(key));
    if slots.is_power_of_two() {
        // Same value as `h % slots`, without a division.
        (h & (slots as u64 - 1)) as u32
    } else {
        (h % slots as u64) as u32
    }
}

/// One step of a migration plan: move `slot` from node `from` to node `to`.
///
/// ```
/// use ringleader_ring::{SlotMap, SlotMove};
/// let map = SlotMap::new(vec![("a", 1), ("b", 1)], 4)?;
/// let plan = map.rebalance(vec![("a", 1)])?;
/// assert_eq!(plan.moves, vec![SlotMove { slot: 2, from: "b", to: "a" }, SlotMove { slot: 3, from: "b", to: "a" }]);
/// # Ok::<(), ringleader_ring::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SlotMove<N> {
    /// The slot that moves.
    pub slot: u32,
    /// Its owner before.
    pub from: N,
    /// Its owner after.
    pub to: N,
}

/// The result of [`SlotMap::rebalance`]: the new map and how to get there
/// (see [`SlotMove`] for an example).
#[derive(Debug, Clone)]
pub struct Rebalance<N> {
    /// The map after every move is applied.
    pub map: SlotMap<N>,
    /// Slot moves, in slot order; their number is the minimum possible.
    pub moves: Vec<SlotMove<N>>,
}

/// Hash sharding through a fixed slot table (default [`DEFAULT_SLOTS`]).
///
/// A key's slot is [`hash_slot`]; each slot belongs to one node, and each
/// node holds `floor` or `ceil` of its weight's share of the slots.
/// [`rebalance`](Self::rebalance) moves whole slots to fit a new node set
/// and returns a migration plan with the minimum number of moves among all
/// balanced outcomes: slots on removed nodes must move; a surviving node only
/// gives up its surplus over its target; and when shares do not divide
/// evenly, the extra slots go to nodes that already hold them.
///
/// ```
/// use ringleader_ring::SlotMap;
/// let map = SlotMap::new(vec![("a".to_string(), 1), ("b".to_string(), 1)], 16384)?;
/// assert_eq!(map.slot_counts(), vec![8192, 8192]);
/// let plan = map.rebalance(vec![("a".to_string(), 1), ("b".to_string(), 1), ("c".to_string(), 1)])?;
/// assert_eq!(plan.moves.len(), 5461); // 16384 / 3, rounded down: only what "c" needs
/// assert!(plan.moves.iter().all(|m| m.to == "c"));
/// # Ok::<(), ringleader_ring::Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct SlotMap<N> {
    nodes: Vec<(N, u32)>,
    slots: Vec<u32>,
}

impl<N: AsRef<[u8]> + Clone> SlotMap<N> {
    /// Assign `slots` slots to `(node, weight)` pairs in contiguous blocks
    /// proportional to weight (largest remainder). Errors on no nodes, weight
    /// 0, duplicates, a slot count outside `1..=MAX_SLOTS` or more nodes than slots.
    pub fn new(nodes: Vec<(N, u32)>, slots: usize) -> Result<Self, Error> {
        validate(&nodes, slots)?;
        let counts = vec![0usize; nodes.len()];
        let targets = targets(&nodes, slots, &counts);
        let mut table = Vec::with_capacity(slots);
        for (i, &t) in targets.iter().enumerate() {
            table.extend(std::iter::repeat(i as u32).take(t));
        }
        Ok(Self {
            nodes,
            slots: table,
        })
    }

    /// The new map for `nodes` and the minimum-move plan from this one.
    /// Nodes are matched by bytes; nodes absent from `nodes` lose all slots.
    pub fn rebalance(&self, nodes: Vec<(N, u32)>) -> Result<Rebalance<N>, Error> {
        validate(&nodes, self.slots.len())?;
        // old index -> new index
        let remap: Vec<Option<u32>> = self
            .nodes
            .iter()
            .map(|(old, _)| {
                nodes
                    .iter()
                    .position(|(n, _)| n.as_ref() == old.as_ref())
                    .map(|i| i as u32)
            })
            .collect();
        let mut counts = vec![0usize; nodes.len()];
        for &s in &self.slots {
            if let Some(j) = remap[s as usize] {
                counts[j as usize] += 1;
            }
        }
        let targets = targets(&nodes, self.slots.len(), &counts);
        // Surplus per new node; slots of removed nodes are all surplus.
        let surplus: Vec<usize> = counts
            .iter()
            .zip(&targets)
            .map(|(&c, &t)| c.saturating_sub(t))
            .collect();
        let mut deficit: Vec<usize> = counts
            .iter()
            .zip(&targets)
            .map(|(&c, &t)| t.saturating_sub(c))
            .collect();
        let mut table: Vec<u32> = Vec::with_capacity(self.slots.len());
        let mut donated: Vec<usize> = Vec::new();
        // Surviving donors give up their highest-numbered slots.
        let mut kept = vec![0usize; nodes.len()];
        for (slot, &s) in self.slots.iter().enumerate() {
            match remap[s as usize] {
                None => {
                    table.push(u32::MAX);
                    donated.push(slot);
                }
                Some(j) => {
                    let j = j as usize;
                    if kept[j] < counts[j] - surplus[j] {
                        kept[j] += 1;
                        table.push(j as u32);
                    } else {
                        table.push(u32::MAX);
                        donated.push(slot);
                    }
                }
            }
        }
        let mut moves = Vec::with_capacity(donated.len());
        let mut receiver = 0usize;
        for slot in donated {
            while deficit[receiver] == 0 {
                receiver += 1;
            }
            deficit[receiver] -= 1;
            table[slot] = receiver as u32;
            moves.push(SlotMove {
                slot: slot as u32,
                from: self.nodes[self.slots[slot] as usize].0.clone(),
                to: nodes[receiver].0.clone(),
            });
        }
        Ok(Rebalance {
            map: SlotMap {
                nodes,
                slots: table,
            },
            moves,
        })
    }
}

impl<N: AsRef<[u8]>> SlotMap<N> {
    /// A map from an explicit table: `slots[s]` is the index in `nodes` of
    /// slot `s`'s owner (every index must be in range; callers check).
    pub(crate) fn from_table(nodes: Vec<(N, u32)>, slots: Vec<u32>) -> Self {
        debug_assert!(slots.iter().all(|&s| (s as usize) < nodes.len()));
        Self { nodes, slots }
    }

    /// Give `slot` to node index `owner` (both in range; callers check).
    pub(crate) fn set_slot_owner(&mut self, slot: usize, owner: u32) {
        self.slots[slot] = owner;
    }

    /// The owner of `key` (via its slot).
    #[inline]
    pub fn get(&self, key: &[u8]) -> Option<&N> {
        let slot = hash_slot(key, self.slots.len());
        self.owner_of_slot(slot)
    }

    /// The owner of `slot`, `None` if out of range.
    pub fn owner_of_slot(&self, slot: u32) -> Option<&N> {
        let i = *self.slots.get(slot as usize)?;
        self.nodes.get(i as usize).map(|(n, _)| n)
    }

    /// The slot of `key` in this map.
    pub fn slot_of(&self, key: &[u8]) -> u32 {
        hash_slot(key, self.slots.len())
    }

    /// Number of slots.
    pub fn slot_count(&self) -> usize {
        self.slots.len()
    }

    /// Slots held per node, in node order.
    pub fn slot_counts(&self) -> Vec<usize> {
        let mut counts = vec![0usize; self.nodes.len()];
        for &s in &self.slots {
            counts[s as usize] += 1;
        }
        counts
    }

    /// The slots held by `node`, ascending.
    pub fn slots_of(&self, node: &[u8]) -> Result<Vec<u32>, Error> {
        let i = self
            .nodes
            .iter()
            .position(|(n, _)| n.as_ref() == node)
            .ok_or_else(|| Error::UnknownNode {
                node: node_name(node),
            })?;
        Ok((0..self.slots.len() as u32)
            .filter(|&s| self.slots[s as usize] == i as u32)
            .collect())
    }

    /// The nodes and weights.
    pub fn nodes(&self) -> &[(N, u32)] {
        &self.nodes
    }
}

fn validate<N: AsRef<[u8]>>(nodes: &[(N, u32)], slots: usize) -> Result<(), Error> {
    if slots == 0 || slots > MAX_SLOTS {
        return Err(Error::InvalidSlotCount {
            slots,
            max: MAX_SLOTS,
        });
    }
    if nodes.is_empty() {
        return Err(Error::NoNodes);
    }
    if nodes.len() > slots {
        return Err(Error::TooManyNodes {
            nodes: nodes.len(),
            max: slots,
        });
    }
    check_weights(nodes)?;
    check_unique(nodes.iter().map(|(n, _)| n.as_ref()))
}

/// Balanced targets (floor or ceil of each weight share) that keep as many
/// of `counts` (current holdings) in place as possible: the leftover slots
/// after flooring go to nodes with a fractional share, first those holding
/// more than their floor, then by largest fraction, then by node bytes.
pub(crate) fn targets<N: AsRef<[u8]>>(
    nodes: &[(N, u32)],
    slots: usize,
    counts: &[usize],
) -> Vec<usize> {
    let total: u128 = nodes.iter().map(|(_, w)| u128::from(*w)).sum();
    let mut t: Vec<usize> = Vec::with_capacity(nodes.len());
    let mut frac: Vec<u128> = Vec::with_capacity(nodes.len());
    for (_, w) in nodes {
        let exact = slots as u128 * u128::from(*w);
        t.push((exact / total) as usize);
        frac.push(exact % total);
    }
    let assigned: usize = t.iter().sum();
    // Only a node with a fractional share may round up (an exact share is
    // its own floor and ceil).
    let mut order: Vec<usize> = (0..nodes.len()).filter(|&i| frac[i] > 0).collect();
    order.sort_by(|&a, &b| {
        let ka = counts[a] > t[a];
        let kb = counts[b] > t[b];
        kb.cmp(&ka)
            .then(frac[b].cmp(&frac[a]))
            .then_with(|| nodes[a].0.as_ref().cmp(nodes[b].0.as_ref()))
    });
    for &i in order.iter().take(slots - assigned) {
        t[i] += 1;
    }
    t
}

impl<N: AsRef<[u8]>> Placement for SlotMap<N> {
    type Node = N;
    fn algorithm(&self) -> &'static str {
        "slots"
    }
    fn locate(&self, key: &[u8]) -> Option<&N> {
        self.get(key)
    }
    fn node_count(&self) -> usize {
        self.nodes.len()
    }
    fn heap_bytes(&self) -> usize {
        self.slots.capacity() * 4 + self.nodes.capacity() * std::mem::size_of::<(N, u32)>()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nodes(ws: &[u32]) -> Vec<(String, u32)> {
        ws.iter()
            .enumerate()
            .map(|(i, &w)| (format!("n{i}"), w))
            .collect()
    }

    #[test]
    fn initial_assignment_is_balanced_and_contiguous() {
        let map = SlotMap::new(nodes(&[1, 1, 1]), 16384).unwrap();
        assert_eq!(map.slot_counts(), vec![5462, 5461, 5461]);
        assert_eq!(map.owner_of_slot(0), Some(&"n0".to_string()));
        assert_eq!(map.owner_of_slot(16383), Some(&"n2".to_string()));
        let w = SlotMap::new(nodes(&[1, 3]), 1000).unwrap();
        assert_eq!(w.slot_counts(), vec![250, 750]);
    }

    #[test]
    fn bad_input_is_an_error() {
        assert!(matches!(
            SlotMap::<String>::new(vec![], 16),
            Err(Error::NoNodes)
        ));
        assert!(matches!(
            SlotMap::new(nodes(&[1]), 0),
            Err(Error::InvalidSlotCount { .. })
        ));
        assert!(matches!(
            SlotMap::new(nodes(&[1, 1, 1]), 2),
            Err(Error::TooManyNodes { .. })
        ));
        assert!(matches!(
            SlotMap::new(nodes(&[1, 0]), 16),
            Err(Error::ZeroWeight { .. })
        ));
        let map = SlotMap::new(nodes(&[1, 1]), 16).unwrap();
        assert!(matches!(
            map.slots_of(b"nope"),
            Err(Error::UnknownNode { .. })
        ));
    }

    #[test]
    fn removal_moves_only_the_removed_nodes_slots() {
        let map = SlotMap::new(nodes(&[1, 1, 1, 1]), 1024).unwrap();
        let mut after = nodes(&[1, 1, 1, 1]);
        after.remove(1);
        let plan = map.rebalance(after).unwrap();
        assert_eq!(plan.moves.len(), 256);
        assert!(plan.moves.iter().all(|m| m.from == "n1"));
        let counts = plan.map.slot_counts();
        assert_eq!(counts.iter().sum::<usize>(), 1024);
        assert!(counts.iter().all(|&c| c == 341 || c == 342), "{counts:?}");
    }

    #[test]
    fn an_exact_share_never_rounds_up() {
        // Found by proptest: n1 (weight 3 of 6) must hold exactly 67 of 134
        // slots even though it held more before.
        let map = SlotMap::new(vec![("n0".to_string(), 1), ("n1".to_string(), 3)], 134).unwrap();
        let plan = map
            .rebalance(vec![
                ("n1".to_string(), 3),
                ("m0".to_string(), 1),
                ("m1".to_string(), 2),
            ])
            .unwrap();
        assert_eq!(plan.map.slot_counts(), vec![67, 22, 45]);
    }

    #[test]
    fn plan_applied_to_the_old_map_gives_the_new_map() {
        let map = SlotMap::new(nodes(&[1, 2, 1]), 777).unwrap();
        let plan = map.rebalance(nodes(&[3, 2, 1, 1])).unwrap();
        for s in 0..777u32 {
            let before = map.owner_of_slot(s).unwrap();
            let after = plan.map.owner_of_slot(s).unwrap();
            match plan.moves.iter().find(|m| m.slot == s) {
                Some(m) => {
                    assert_eq!((&m.from, &m.to), (before, after));
                    assert_ne!(before, after);
                }
                None => assert_eq!(before, after),
            }
        }
    }
}
