//! [`RangeMap`]: range sharding over half-open key ranges, versioned, with
//! split/merge and a [`SplitPolicy`] with merge hysteresis.
use std::fmt::Debug;
use std::ops::{Bound, RangeBounds};

use serde::Serialize;

use crate::error::Error;
use crate::placement::Placement;

/// Stable identity of a range: kept by the left half on a split and by the
/// left range on a merge; new ranges get fresh ids.
///
/// ```
/// use ringleader_ring::{RangeId, RangeMap};
/// let mut map = RangeMap::new('a');
/// assert_eq!(map.split(5u8)?, (RangeId(0), RangeId(1)));
/// # Ok::<(), ringleader_ring::Error>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct RangeId(pub u64);

#[derive(Debug, Clone)]
struct Shard<V> {
    id: RangeId,
    owner: V,
}

/// A borrowed view of one range: `[start, end)`, `None` meaning unbounded.
///
/// ```
/// use ringleader_ring::RangeMap;
/// let map = RangeMap::from_splits(vec![10u32], vec!["low", "high"])?;
/// let r = map.range_of(&42);
/// assert_eq!((r.start, r.end, *r.owner), (Some(&10), None, "high"));
/// assert!(r.contains(&10) && !r.contains(&9));
/// # Ok::<(), ringleader_ring::Error>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RangeRef<'a, K, V> {
    /// The range's id.
    pub id: RangeId,
    /// Inclusive start; `None` is the start of the key space.
    pub start: Option<&'a K>,
    /// Exclusive end; `None` is the end of the key space.
    pub end: Option<&'a K>,
    /// The node that owns it.
    pub owner: &'a V,
}

impl<K: Ord, V> RangeRef<'_, K, V> {
    /// True if `key` lies in `[start, end)`.
    pub fn contains(&self, key: &K) -> bool {
        self.start.map_or(true, |s| s <= key) && self.end.map_or(true, |e| key < e)
    }
}

/// Range sharding: the whole key space cut into half-open ranges
/// `[start, end)` by sorted split keys, each range owned by a `V`.
///
/// The map is always total and gap-free (the first range starts at the
/// beginning of the key space, the last one runs to its end). Lookup is a
/// floor search (binary search over the split keys). Every change (split,
/// merge, owner change) bumps [`version`](Self::version), so a router that
/// cached an older version can tell its copy is stale.
///
/// ```
/// use ringleader_ring::RangeMap;
/// let mut map = RangeMap::new("n1");
/// let (left, right) = map.split("m".to_string())?;
/// map.set_owner(right, "n2")?;
/// assert_eq!(map.get(&"apple".to_string()), &"n1");
/// assert_eq!(map.get(&"zebra".to_string()), &"n2");
/// assert_eq!(map.version(), 2);
/// let scan: Vec<_> = map.ranges_overlapping("k".to_string().."p".to_string()).map(|r| r.id).collect();
/// assert_eq!(scan, vec![left, right]);
/// # Ok::<(), ringleader_ring::Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct RangeMap<K, V> {
    /// Strictly increasing; range `i` is `[splits[i-1], splits[i])`.
    splits: Vec<K>,
    shards: Vec<Shard<V>>,
    version: u64,
    next_id: u64,
}

impl<K: Ord + Clone + Debug, V: Clone + PartialEq> RangeMap<K, V> {
    /// One range covering the whole key space, owned by `owner`, version 0.
    pub fn new(owner: V) -> Self {
        Self {
            splits: Vec::new(),
            shards: vec![Shard {
                id: RangeId(0),
                owner,
            }],
            version: 0,
            next_id: 1,
        }
    }

    /// Ranges cut at `splits` (strictly increasing), `owners.len() ==
    /// splits.len() + 1`. Version 0, ids `0..=splits.len()` left to right.
    pub fn from_splits(splits: Vec<K>, owners: Vec<V>) -> Result<Self, Error> {
        if owners.len() != splits.len() + 1 {
            return Err(Error::InvalidSplit {
                reason: format!(
                    "{} split keys need {} owners, got {}",
                    splits.len(),
                    splits.len() + 1,
                    owners.len()
                ),
            });
        }
        if let Some(w) = splits.windows(2).find(|w| w[0] >= w[1]) {
            return Err(Error::InvalidSplit {
                reason: format!(
                    "split keys must increase strictly: {:?} then {:?}",
                    w[0], w[1]
                ),
            });
        }
        let shards: Vec<Shard<V>> = owners
            .into_iter()
            .enumerate()
            .map(|(i, owner)| Shard {
                id: RangeId(i as u64),
                owner,
            })
            .collect();
        Ok(Self {
            next_id: shards.len() as u64,
            splits,
            shards,
            version: 0,
        })
    }

    /// Index of the range holding `key` (floor search).
    #[inline]
    fn index_of_key(&self, key: &K) -> usize {
        self.splits.partition_point(|s| s <= key)
    }

    fn index_of_id(&self, id: RangeId) -> Result<usize, Error> {
        self.shards
            .iter()
            .position(|s| s.id == id)
            .ok_or_else(|| Error::InvalidParameter {
                what: "range id",
                reason: format!("no range {id:?} in version {}", self.version),
            })
    }

    /// The owner of `key`. The map is total, so there always is one.
    #[inline]
    pub fn get(&self, key: &K) -> &V {
        &self.shards[self.index_of_key(key)].owner
    }

    /// The range holding `key`.
    pub fn range_of(&self, key: &K) -> RangeRef<'_, K, V> {
        self.range_at(self.index_of_key(key))
    }

    /// The range with id `id`, if present.
    pub fn range(&self, id: RangeId) -> Option<RangeRef<'_, K, V>> {
        self.index_of_id(id).ok().map(|i| self.range_at(i))
    }

    fn range_at(&self, i: usize) -> RangeRef<'_, K, V> {
        RangeRef {
            id: self.shards[i].id,
            start: if i == 0 {
                None
            } else {
                Some(&self.splits[i - 1])
            },
            end: self.splits.get(i),
            owner: &self.shards[i].owner,
        }
    }

    /// Every range in key order.
    pub fn iter(&self) -> impl ExactSizeIterator<Item = RangeRef<'_, K, V>> + '_ {
        (0..self.shards.len()).map(move |i| self.range_at(i))
    }

    /// The ranges a scan over `bounds` touches, in key order; empty when
    /// `bounds` is empty.
    pub fn ranges_overlapping<R: RangeBounds<K>>(
        &self,
        bounds: R,
    ) -> impl Iterator<Item = RangeRef<'_, K, V>> + '_ {
        let first = match bounds.start_bound() {
            Bound::Unbounded => 0,
            Bound::Included(s) | Bound::Excluded(s) => self.index_of_key(s),
        };
        // Last range with start < end (or <= end when inclusive).
        let last_plus_one = match bounds.end_bound() {
            Bound::Unbounded => self.shards.len(),
            Bound::Excluded(e) => self.splits.partition_point(|s| s < e) + 1,
            Bound::Included(e) => self.splits.partition_point(|s| s <= e) + 1,
        };
        let empty = match (bounds.start_bound(), bounds.end_bound()) {
            (Bound::Included(s), Bound::Excluded(e)) => s >= e,
            (Bound::Included(s), Bound::Included(e)) => s > e,
            (Bound::Excluded(s), Bound::Excluded(e)) | (Bound::Excluded(s), Bound::Included(e)) => {
                s >= e
            }
            _ => false,
        };
        let end = if empty {
            first
        } else {
            last_plus_one.max(first)
        };
        (first..end).map(move |i| self.range_at(i))
    }

    /// Split the range holding `at` into `[start, at)` (keeps its id) and
    /// `[at, end)` (new id, same owner). Errors if `at` already starts a
    /// range (the left half would be empty).
    pub fn split(&mut self, at: K) -> Result<(RangeId, RangeId), Error> {
        let i = self.index_of_key(&at);
        if i > 0 && self.splits[i - 1] == at {
            return Err(Error::InvalidSplit {
                reason: format!("{at:?} already starts range {:?}", self.shards[i].id),
            });
        }
        let left = self.shards[i].id;
        let right = RangeId(self.next_id);
        self.next_id += 1;
        let owner = self.shards[i].owner.clone();
        self.splits.insert(i, at);
        self.shards.insert(i + 1, Shard { id: right, owner });
        self.version += 1;
        Ok((left, right))
    }

    /// Merge two adjacent ranges (`left` directly before `right`) with the
    /// same owner; the result keeps `left`'s id.
    pub fn merge(&mut self, left: RangeId, right: RangeId) -> Result<RangeId, Error> {
        let i = self.index_of_id(left).map_err(|_| Error::InvalidMerge {
            reason: format!("no range {left:?}"),
        })?;
        if self.shards.get(i + 1).map(|s| s.id) != Some(right) {
            return Err(Error::InvalidMerge {
                reason: format!("{right:?} does not directly follow {left:?}"),
            });
        }
        if self.shards[i].owner != self.shards[i + 1].owner {
            return Err(Error::InvalidMerge {
                reason: format!("{left:?} and {right:?} have different owners; move one first"),
            });
        }
        self.splits.remove(i);
        self.shards.remove(i + 1);
        self.version += 1;
        Ok(left)
    }

    /// Give range `id` to `owner`; returns the previous owner.
    pub fn set_owner(&mut self, id: RangeId, owner: V) -> Result<V, Error> {
        let i = self.index_of_id(id)?;
        let old = std::mem::replace(&mut self.shards[i].owner, owner);
        self.version += 1;
        Ok(old)
    }
}

impl<K, V> RangeMap<K, V> {
    /// Number of ranges.
    pub fn len(&self) -> usize {
        self.shards.len()
    }

    /// Always false: the map has at least one range.
    pub fn is_empty(&self) -> bool {
        self.shards.is_empty()
    }

    /// The version, bumped by every change.
    pub fn version(&self) -> u64 {
        self.version
    }

    /// The split keys, ascending.
    pub fn split_keys(&self) -> &[K] {
        &self.splits
    }
}

/// Byte-string keys route through the [`Placement`] trait by floor lookup.
impl<V: AsRef<[u8]>> Placement for RangeMap<Vec<u8>, V> {
    type Node = V;
    fn algorithm(&self) -> &'static str {
        "range"
    }
    fn locate(&self, key: &[u8]) -> Option<&V> {
        let i = self.splits.partition_point(|s| s.as_slice() <= key);
        Some(&self.shards[i].owner)
    }
    fn node_count(&self) -> usize {
        let mut owners: Vec<&[u8]> = self.shards.iter().map(|s| s.owner.as_ref()).collect();
        owners.sort_unstable();
        owners.dedup();
        owners.len()
    }
    fn heap_bytes(&self) -> usize {
        self.splits.iter().map(|k| k.capacity() + 24).sum::<usize>()
            + self.shards.capacity() * std::mem::size_of::<Shard<V>>()
    }
}

/// Measured size of one range, the input of [`SplitPolicy`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct RangeStats {
    /// Distinct keys in the range.
    pub keys: u64,
    /// Bytes stored in the range.
    pub bytes: u64,
    /// Load (requests per unit of time, or any additive measure).
    pub load: f64,
}

impl RangeStats {
    /// Field-wise sum (the stats of two ranges merged).
    pub fn plus(self, other: RangeStats) -> RangeStats {
        RangeStats {
            keys: self.keys + other.keys,
            bytes: self.bytes + other.bytes,
            load: self.load + other.load,
        }
    }
}

/// When to split or merge ranges, TiKV/CockroachDB style.
///
/// A range splits when any measure exceeds its maximum. Two adjacent ranges
/// merge only when the merged range would stay below `merge_fraction` of
/// *every* maximum: that gap is the hysteresis that stops a range from
/// flapping between split and merge. CockroachDB's defaults are 512 MiB max
/// and 128 MiB min per range (a quarter); TiKV splits regions at 96 MiB and
/// merges below 20 MiB (about a fifth). The default here is a quarter.
///
/// ```
/// use ringleader_ring::{RangeStats, SplitPolicy};
/// let p = SplitPolicy { max_keys: 100, ..SplitPolicy::default() };
/// assert!(p.should_split(&RangeStats { keys: 101, ..Default::default() }));
/// let small = RangeStats { keys: 10, ..Default::default() };
/// assert!(p.should_merge(&small, &small));
/// let half = RangeStats { keys: 50, ..Default::default() };
/// assert!(!p.should_merge(&half, &small)); // 60 > 25: hysteresis keeps them apart
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct SplitPolicy {
    /// Split above this many keys.
    pub max_keys: u64,
    /// Split above this many bytes.
    pub max_bytes: u64,
    /// Split above this load.
    pub max_load: f64,
    /// Merge when the merged range is below this fraction of every maximum
    /// (in `(0, 1)`; smaller means more hysteresis).
    pub merge_fraction: f64,
}

impl Default for SplitPolicy {
    /// No key-count or load limit, 512 MiB per range, merge below a quarter.
    fn default() -> Self {
        Self {
            max_keys: u64::MAX,
            max_bytes: 512 << 20,
            max_load: f64::INFINITY,
            merge_fraction: 0.25,
        }
    }
}

impl SplitPolicy {
    /// Check the parameters: maxima above 0, `merge_fraction` in `(0, 1)`.
    pub fn validate(&self) -> Result<(), Error> {
        if self.max_keys == 0
            || self.max_bytes == 0
            || self.max_load.is_nan()
            || self.max_load <= 0.0
        {
            return Err(Error::InvalidParameter {
                what: "split policy",
                reason: "every maximum must be above 0".into(),
            });
        }
        if !(self.merge_fraction > 0.0 && self.merge_fraction < 1.0) {
            return Err(Error::InvalidParameter {
                what: "split policy",
                reason: format!(
                    "merge_fraction must be in (0, 1), got {}",
                    self.merge_fraction
                ),
            });
        }
        Ok(())
    }

    /// True if a range with `stats` is over any maximum.
    pub fn should_split(&self, stats: &RangeStats) -> bool {
        stats.keys > self.max_keys || stats.bytes > self.max_bytes || stats.load > self.max_load
    }

    /// True if merging ranges `a` and `b` stays well under every maximum.
    pub fn should_merge(&self, a: &RangeStats, b: &RangeStats) -> bool {
        let m = a.plus(*b);
        let f = self.merge_fraction;
        (m.keys as f64) < f * self.max_keys as f64
            && (m.bytes as f64) < f * self.max_bytes as f64
            && m.load < f * self.max_load
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_and_merge_round_trip() {
        let mut map: RangeMap<u32, &str> = RangeMap::new("a");
        let (l, r) = map.split(10).unwrap();
        let (_, r2) = map.split(20).unwrap();
        assert_eq!(map.len(), 3);
        assert_eq!(map.range_of(&15).id, r);
        assert_eq!(map.range_of(&20).id, r2);
        assert_eq!(map.range_of(&9).id, l);
        assert!(matches!(map.split(10), Err(Error::InvalidSplit { .. })));
        assert!(matches!(map.merge(l, r2), Err(Error::InvalidMerge { .. })));
        map.set_owner(r2, "b").unwrap();
        assert!(matches!(map.merge(r, r2), Err(Error::InvalidMerge { .. })));
        assert_eq!(map.merge(l, r).unwrap(), l);
        assert_eq!(map.split_keys(), &[20]);
        assert_eq!(map.version(), 4);
        assert_eq!(map.get(&5), &"a");
        assert_eq!(map.get(&25), &"b");
    }

    #[test]
    fn overlapping_ranges_for_scans() {
        let map = RangeMap::from_splits(vec![10u32, 20, 30], vec!['a', 'b', 'c', 'd']).unwrap();
        let owners =
            |v: Vec<RangeRef<'_, u32, char>>| v.iter().map(|r| *r.owner).collect::<String>();
        assert_eq!(owners(map.ranges_overlapping(12..25).collect()), "bc");
        assert_eq!(owners(map.ranges_overlapping(12..20).collect()), "b");
        assert_eq!(owners(map.ranges_overlapping(12..=20).collect()), "bc");
        assert_eq!(owners(map.ranges_overlapping(..).collect()), "abcd");
        assert_eq!(owners(map.ranges_overlapping(35..).collect()), "d");
        assert_eq!(owners(map.ranges_overlapping(25..25).collect()), "");
        assert_eq!(owners(map.ranges_overlapping(..10).collect()), "a");
    }

    #[test]
    fn from_splits_rejects_bad_input() {
        assert!(RangeMap::from_splits(vec![2u8, 1], vec![0, 0, 0]).is_err());
        assert!(RangeMap::from_splits(vec![1u8, 1], vec![0, 0, 0]).is_err());
        assert!(RangeMap::from_splits(vec![1u8], vec![0]).is_err());
    }

    #[test]
    fn policy_validation() {
        assert!(SplitPolicy::default().validate().is_ok());
        let bad = SplitPolicy {
            merge_fraction: 1.0,
            ..SplitPolicy::default()
        };
        assert!(bad.validate().is_err());
    }
}
