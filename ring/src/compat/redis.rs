//! [`RedisCluster`]: Redis Cluster key slots (CRC16 mod 16384, `{hash tags}`) over a [`SlotMap`].
//!
//! Facts from the Redis Cluster specification ("Keys distribution model"
//! and "Hash tags", redis.io/docs/reference/cluster-spec):
//!
//! - `HASH_SLOT = CRC16(key) mod 16384`, CRC16 being XMODEM (polynomial
//!   0x1021, initial value 0, no reflection, no final xor), whose check value
//!   is `CRC16("123456789") = 0x31C3`;
//! - when the key contains a `{` and a `}` somewhere after it with at least
//!   one byte between the first `{` and the first `}` after it, only those
//!   bytes are hashed (`{user1}.a` -> `user1`); `{}` is not a tag, and only
//!   the first `{` counts (`a{b{c}d}` -> `b{c`); see [`hash_tag`](crate::hash_tag).
//!
//! The initial layout follows `redis-cli --cluster create` (redis-cli.c,
//! `clusterManagerCommandCreate`): with `n` masters, `slots_per_node =
//! 16384 / (float)n`, master `i` takes `first..=lround(cursor +
//! slots_per_node - 1)` with a single-precision `cursor` growing by
//! `slots_per_node`, the last master taking the rest.
use std::ops::RangeInclusive;

use crate::error::{node_name, Error};
use crate::placement::{check_unique, Placement};
use crate::slots::{hash_tag, SlotMap};

/// Redis Cluster's slot count.
pub const REDIS_SLOTS: usize = 16_384;

/// CRC16-XMODEM (CCITT polynomial 0x1021, init 0), as Redis Cluster uses.
///
/// ```
/// // The check value given by the Redis Cluster specification.
/// assert_eq!(ringleader_ring::crc16_xmodem(b"123456789"), 0x31C3);
/// ```
#[inline]
pub fn crc16_xmodem(bytes: &[u8]) -> u16 {
    bytes.iter().fold(0u16, |crc, &b| {
        (crc << 8) ^ CRC16_TABLE[usize::from((crc >> 8) as u8 ^ b)]
    })
}

/// CRC16 of one byte, bit by bit (MSB first, polynomial 0x1021).
const fn crc16_bitwise(byte: u8) -> u16 {
    let mut crc = (byte as u16) << 8;
    let mut i = 0;
    while i < 8 {
        crc = if crc & 0x8000 != 0 {
            (crc << 1) ^ 0x1021
        } else {
            crc << 1
        };
        i += 1;
    }
    crc
}

/// Byte-at-a-time table: `CRC16_TABLE[b]` is the CRC of byte `b`.
const CRC16_TABLE: [u16; 256] = {
    let mut t = [0u16; 256];
    let mut i = 0;
    while i < 256 {
        t[i] = crc16_bitwise(i as u8);
        i += 1;
    }
    t
};

/// The Redis Cluster slot of `key`: `CRC16(hash_tag(key)) mod 16384`, what
/// `CLUSTER KEYSLOT key` answers.
///
/// ```
/// use ringleader_ring::redis_slot;
/// assert_eq!(redis_slot(b"{user1}.following"), redis_slot(b"{user1}.followers"));
/// assert_eq!(redis_slot(b"foo"), 12182);
/// ```
#[inline]
pub fn redis_slot(key: &[u8]) -> u16 {
    crc16_xmodem(hash_tag(key)) % REDIS_SLOTS as u16
}

/// Redis Cluster placement: a key's slot ([`redis_slot`]) and the slot's
/// owner in a [`SlotMap`] of 16384 slots.
///
/// [`new`](Self::new) lays the slots out as `redis-cli --cluster create`
/// does; [`assign`](Self::assign) copies a running cluster's map (from
/// `CLUSTER SHARDS` / `CLUSTER SLOTS`). Redis Cluster has no weights.
///
/// ```
/// use ringleader_ring::{Placement, RedisCluster};
/// let mut c = RedisCluster::new(vec!["10.0.0.1:6379".to_string(), "10.0.0.2:6379".to_string()])?;
/// assert_eq!(c.owner_of_slot(0).unwrap(), "10.0.0.1:6379");
/// c.assign(0..=99, b"10.0.0.2:6379")?;
/// assert_eq!(c.owner_of_slot(0).unwrap(), "10.0.0.2:6379");
/// assert!(c.locate(b"user:{42}").is_some());
/// # Ok::<(), ringleader_ring::Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct RedisCluster<N> {
    map: SlotMap<N>,
}

/// Slot ranges of `n` masters as `redis-cli --cluster create` assigns them.
fn create_layout(n: usize) -> Vec<u32> {
    let slots_per_node = REDIS_SLOTS as f32 / n as f32;
    let mut table = Vec::with_capacity(REDIS_SLOTS);
    let mut first: i64 = 0;
    let mut cursor: f32 = 0.0;
    for i in 0..n {
        // lround: to nearest, halves away from zero (f64::round).
        let mut last = f64::from(cursor + slots_per_node - 1.0).round() as i64;
        if last > REDIS_SLOTS as i64 || i == n - 1 {
            last = REDIS_SLOTS as i64 - 1;
        }
        if last < first {
            last = first;
        }
        for _ in first..=last {
            if table.len() < REDIS_SLOTS {
                table.push(i as u32);
            }
        }
        first = last + 1;
        cursor += slots_per_node;
    }
    table
}

impl<N: AsRef<[u8]>> RedisCluster<N> {
    /// A cluster of `masters` (in the order given to `redis-cli --cluster
    /// create`), slots laid out as redis-cli does. Errors on no masters,
    /// duplicates or more masters than slots.
    pub fn new(masters: Vec<N>) -> Result<Self, Error> {
        if masters.is_empty() {
            return Err(Error::NoNodes);
        }
        if masters.len() > REDIS_SLOTS {
            return Err(Error::TooManyNodes {
                nodes: masters.len(),
                max: REDIS_SLOTS,
            });
        }
        check_unique(masters.iter().map(|n| n.as_ref()))?;
        let table = create_layout(masters.len());
        let nodes = masters.into_iter().map(|n| (n, 1)).collect();
        Ok(Self {
            map: SlotMap::from_table(nodes, table),
        })
    }

    /// Give the slots in `slots` to `node` (as `CLUSTER SETSLOT ... NODE`).
    pub fn assign(&mut self, slots: RangeInclusive<u16>, node: &[u8]) -> Result<(), Error> {
        let owner = self
            .map
            .nodes()
            .iter()
            .position(|(n, _)| n.as_ref() == node)
            .ok_or_else(|| Error::UnknownNode {
                node: node_name(node),
            })?;
        if usize::from(*slots.end()) >= REDIS_SLOTS {
            return Err(Error::InvalidParameter {
                what: "slot range",
                reason: format!("slot {} is not below {REDIS_SLOTS}", slots.end()),
            });
        }
        for s in slots {
            self.map.set_slot_owner(usize::from(s), owner as u32);
        }
        Ok(())
    }

    /// The owner of `key`.
    #[inline]
    pub fn get(&self, key: &[u8]) -> Option<&N> {
        self.map.owner_of_slot(u32::from(redis_slot(key)))
    }

    /// The owner of `slot`.
    pub fn owner_of_slot(&self, slot: u16) -> Option<&N> {
        self.map.owner_of_slot(u32::from(slot))
    }

    /// The owner first, then the other masters in list order after it.
    /// Redis Cluster itself never serves a slot from another master (a
    /// replica is promoted instead); this order is ringleader's, for callers
    /// that need somewhere to go.
    pub fn candidates<'a>(&'a self, key: &[u8]) -> impl Iterator<Item = &'a N> + 'a {
        let nodes = self.map.nodes();
        let owner = self
            .get(key)
            .and_then(|o| nodes.iter().position(|(n, _)| std::ptr::eq(n, o)))
            .unwrap_or(0);
        (0..nodes.len()).map(move |i| &nodes[(owner + i) % nodes.len()].0)
    }

    /// The masters, in order.
    pub fn nodes(&self) -> impl Iterator<Item = &N> {
        self.map.nodes().iter().map(|(n, _)| n)
    }

    /// Slots held per master, in order.
    pub fn slot_counts(&self) -> Vec<usize> {
        self.map.slot_counts()
    }
}

impl<N: AsRef<[u8]> + Clone> RedisCluster<N> {
    /// Add a master and move slots to it with the fewest moves that even
    /// out the shares (what `redis-cli --cluster add-node` followed by
    /// `rebalance` aims at; see [`SlotMap::rebalance`]).
    pub fn add(&mut self, node: N) -> Result<(), Error> {
        let mut nodes = self.map.nodes().to_vec();
        nodes.push((node, 1));
        self.map = self.map.rebalance(nodes)?.map;
        Ok(())
    }

    /// Remove a master, handing its slots to the others with the fewest moves.
    pub fn remove(&mut self, node: &[u8]) -> Result<N, Error> {
        let mut nodes = self.map.nodes().to_vec();
        let i = nodes
            .iter()
            .position(|(n, _)| n.as_ref() == node)
            .ok_or_else(|| Error::UnknownNode {
                node: node_name(node),
            })?;
        let (gone, _) = nodes.remove(i);
        self.map = self.map.rebalance(nodes)?.map;
        Ok(gone)
    }
}

impl<N: AsRef<[u8]>> Placement for RedisCluster<N> {
    type Node = N;
    fn algorithm(&self) -> &'static str {
        "redis"
    }
    fn locate(&self, key: &[u8]) -> Option<&N> {
        self.get(key)
    }
    fn node_count(&self) -> usize {
        self.map.nodes().len()
    }
    fn heap_bytes(&self) -> usize {
        self.map.heap_bytes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc16_table_matches_the_bitwise_definition() {
        fn bitwise(bytes: &[u8]) -> u16 {
            let mut crc: u16 = 0;
            for &b in bytes {
                crc ^= u16::from(b) << 8;
                for _ in 0..8 {
                    crc = if crc & 0x8000 != 0 {
                        (crc << 1) ^ 0x1021
                    } else {
                        crc << 1
                    };
                }
            }
            crc
        }
        for len in 0..64usize {
            let data: Vec<u8> = (0..len).map(|i| (i * 37 + len) as u8).collect();
            assert_eq!(crc16_xmodem(&data), bitwise(&data), "{len}");
        }
    }

    #[test]
    fn crc16_check_values() {
        assert_eq!(crc16_xmodem(b"123456789"), 0x31C3);
        assert_eq!(crc16_xmodem(b""), 0);
        assert_eq!(crc16_xmodem(b"A"), 0x58E5);
    }

    #[test]
    fn hash_tags_follow_the_spec() {
        assert_eq!(hash_tag(b"{user1000}.following"), b"user1000");
        assert_eq!(hash_tag(b"foo{}{bar}"), b"foo{}{bar}");
        assert_eq!(hash_tag(b"foo{{bar}}zap"), b"{bar");
        assert_eq!(hash_tag(b"foo{bar}{zap}"), b"bar");
        assert_eq!(hash_tag(b"a{b{c}d}"), b"b{c");
        assert_eq!(hash_tag(b"{}{x}"), b"{}{x}");
        assert_eq!(hash_tag(b"no}tag{"), b"no}tag{");
        assert_eq!(redis_slot(b"{user1}.a"), redis_slot(b"user1"));
    }

    #[test]
    fn create_layout_matches_redis_cli() {
        // redis-cli --cluster create with 3 masters prints
        // 0-5460, 5461-10922, 10923-16383.
        let c = RedisCluster::new(vec!["a", "b", "c"]).unwrap();
        assert_eq!(c.slot_counts(), vec![5461, 5462, 5461]);
        assert_eq!(c.owner_of_slot(5460), Some(&"a"));
        assert_eq!(c.owner_of_slot(5461), Some(&"b"));
        assert_eq!(c.owner_of_slot(10922), Some(&"b"));
        assert_eq!(c.owner_of_slot(10923), Some(&"c"));
        for n in [1usize, 2, 5, 7, 10, 100, 1000] {
            let t = create_layout(n);
            assert_eq!(t.len(), REDIS_SLOTS, "{n}");
            assert!(t.windows(2).all(|w| w[0] <= w[1]));
            assert_eq!(*t.last().unwrap() as usize, n - 1);
        }
    }

    #[test]
    fn assign_add_remove() {
        let mut c = RedisCluster::new(vec!["a".to_string(), "b".to_string()]).unwrap();
        assert!(c.assign(0..=10, b"zz").is_err());
        c.assign(0..=10, b"b").unwrap();
        assert_eq!(c.slot_counts(), vec![8181, 8203]);
        c.add("c".to_string()).unwrap();
        assert_eq!(c.slot_counts().iter().sum::<usize>(), REDIS_SLOTS);
        assert_eq!(c.node_count(), 3);
        assert_eq!(c.remove(b"a").unwrap(), "a");
        assert_eq!(c.slot_counts(), vec![8192, 8192]);
        let owner = c.get(b"k").unwrap().clone();
        let cands: Vec<&String> = c.candidates(b"k").collect();
        assert_eq!(cands.len(), 2);
        assert_eq!(cands[0], &owner);
        assert!(RedisCluster::<String>::new(vec![]).is_err());
    }
}
