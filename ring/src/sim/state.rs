//! One algorithm's placement during a simulation, and how it reacts to a change.
use super::workload::Workload;
use super::{Algorithm, SimConfig};
use crate::compat::{Compat, CompatPlacement};
use crate::error::Error;
use crate::hashring::HashRing;
use crate::jump::Jump;
use crate::maglev::Maglev;
use crate::modulo::Modulo;
use crate::placement::Placement;
use crate::range::{RangeId, RangeMap, RangeStats, SplitPolicy};
use crate::rendezvous::Rendezvous;
use crate::slots::SlotMap;

/// A simulated node: a numeric id (for counting) and its name `node-<id>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SimNode {
    pub(crate) id: u32,
    name: String,
}

impl SimNode {
    pub(crate) fn new(id: u32) -> Self {
        Self {
            id,
            name: format!("node-{id}"),
        }
    }
}

impl AsRef<[u8]> for SimNode {
    fn as_ref(&self) -> &[u8] {
        self.name.as_bytes()
    }
}

/// A cluster: nodes with weights, in join order.
pub(crate) type Cluster = Vec<(SimNode, u32)>;

/// The placement of one algorithm.
#[derive(Debug, Clone)]
pub(crate) enum State {
    Ring(HashRing<SimNode>),
    Jump(Jump<SimNode>),
    Maglev(Maglev<SimNode>),
    Rendezvous(Rendezvous<SimNode>),
    Modulo(Modulo<SimNode>),
    Slots(SlotMap<SimNode>),
    Range(RangeMap<Vec<u8>, SimNode>),
    Compat(CompatPlacement<SimNode>),
}

impl State {
    /// Build from scratch for `cluster`; Maglev with table size `maglev_table`.
    pub(crate) fn build(
        alg: Algorithm,
        cluster: &Cluster,
        cfg: &SimConfig,
        work: &Workload,
        maglev_table: usize,
    ) -> Result<Self, Error> {
        let names = || cluster.iter().map(|(n, _)| n.clone()).collect::<Vec<_>>();
        Ok(match alg {
            Algorithm::Nginx => State::Compat(Compat::Nginx.build(cluster.clone())?),
            Algorithm::Ketama => State::Compat(Compat::Ketama.build(cluster.clone())?),
            Algorithm::Redis => State::Compat(Compat::Redis.build(cluster.clone())?),
            Algorithm::Ring => State::Ring(HashRing::from_nodes(cluster.clone(), cfg.vnodes)?),
            Algorithm::Jump => State::Jump(Jump::try_new(names())?),
            Algorithm::Maglev => {
                State::Maglev(Maglev::with_table_size(cluster.clone(), maglev_table)?)
            }
            Algorithm::Rendezvous => State::Rendezvous(Rendezvous::new(cluster.clone())?),
            Algorithm::Modulo => State::Modulo(Modulo::new(names())?),
            Algorithm::Slots => State::Slots(SlotMap::new(cluster.clone(), cfg.slots)?),
            Algorithm::Range => {
                let first = cluster.first().ok_or(Error::NoNodes)?.0.clone();
                let mut map = RangeMap::new(first);
                let mut ranges = RangeSim::new(cfg, cluster, work)?;
                ranges.split_all(&mut map, work)?;
                // Initial placement: largest range first onto the least
                // loaded node (LPT), which balances to within one range.
                let mut by_load: Vec<(RangeId, f64)> = map
                    .iter()
                    .map(|r| (r.id, ranges.stats_of(&map, r.id, work).load))
                    .collect();
                by_load.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
                let mut load = vec![0f64; cluster.len()];
                for (id, l) in by_load {
                    let j = argmin_norm(&load, cluster);
                    load[j] += l;
                    map.set_owner(id, cluster[j].0.clone())?;
                }
                // LPT can leave hot ranges unevenly spread: balance once, so
                // the starting point is what a running cluster looks like.
                ranges.transition(&mut map, cluster, work)?;
                State::Range(map)
            }
        })
    }

    /// The placement after the cluster changes from `before` to `after`,
    /// the way the algorithm really changes (incrementally where it can).
    /// Returns a note for the report.
    pub(crate) fn transition(
        &self,
        before: &Cluster,
        after: &Cluster,
        cfg: &SimConfig,
        work: &Workload,
    ) -> Result<(Self, String), Error> {
        let removed: Vec<&SimNode> = before
            .iter()
            .filter(|(n, _)| !after.iter().any(|(m, _)| m.id == n.id))
            .map(|(n, _)| n)
            .collect();
        let added: Vec<&(SimNode, u32)> = after
            .iter()
            .filter(|(n, _)| !before.iter().any(|(m, _)| m.id == n.id))
            .collect();
        let reweighted: Vec<&(SimNode, u32)> = after
            .iter()
            .filter(|(n, w)| before.iter().any(|(m, v)| m.id == n.id && v != w))
            .collect();
        let weights_ignored = if reweighted.is_empty() {
            String::new()
        } else {
            "weights ignored".to_string()
        };
        Ok(match self {
            State::Ring(ring) => {
                let mut ring = ring.clone();
                for n in &removed {
                    ring.remove(n.as_ref())?;
                }
                for (n, w) in &reweighted {
                    ring.set_weight(n.as_ref(), *w)?;
                }
                for (n, w) in &added {
                    ring.add(n.clone(), *w)?;
                }
                let note = format!("{} points", ring.points());
                (State::Ring(ring), note)
            }
            State::Rendezvous(r) => {
                let mut r = r.clone();
                for n in &removed {
                    r.remove(n.as_ref())?;
                }
                for (n, w) in &reweighted {
                    r.set_weight(n.as_ref(), *w)?;
                }
                for (n, w) in &added {
                    r.add(n.clone(), *w)?;
                }
                (State::Rendezvous(r), String::new())
            }
            State::Jump(j) => {
                let mut j = j.clone();
                for n in &removed {
                    j.remove(n.as_ref())?;
                }
                for (n, _) in &added {
                    j.add(n.clone())?;
                }
                (State::Jump(j), weights_ignored)
            }
            State::Modulo(m) => {
                let mut m = m.clone();
                for n in &removed {
                    m.remove(n.as_ref())?;
                }
                for (n, _) in &added {
                    m.add(n.clone())?;
                }
                (State::Modulo(m), weights_ignored)
            }
            State::Maglev(m) => {
                // Rebuilt for the new membership with the same M, as a
                // deployment would: a new M would move almost every key.
                let m = Maglev::with_table_size(after.clone(), m.table_size())?;
                let note = format!("M = {}", m.table_size());
                (State::Maglev(m), note)
            }
            State::Slots(s) => {
                let plan = s.rebalance(after.clone())?;
                let note = format!("{} of {} slots moved", plan.moves.len(), s.slot_count());
                (State::Slots(plan.map), note)
            }
            State::Range(map) => {
                let mut map = map.clone();
                let mut sim = RangeSim::new(cfg, after, work)?;
                let note = sim.transition(&mut map, after, work)?;
                (State::Range(map), note)
            }
            State::Compat(CompatPlacement::Redis(r)) => {
                // Masters join and leave; slots move with the fewest moves.
                let mut r = r.clone();
                for n in &removed {
                    r.remove(n.as_ref())?;
                }
                for (n, _) in &added {
                    r.add(n.clone())?;
                }
                (State::Compat(CompatPlacement::Redis(r)), weights_ignored)
            }
            State::Compat(c) => {
                // nginx and libketama re-derive every point from the new
                // server list (nginx's unchanged servers keep their points).
                let rebuilt = c.compat().build(after.clone())?;
                (State::Compat(rebuilt), String::new())
            }
        })
    }

    /// Owner id of `key`.
    #[inline]
    pub(crate) fn locate_id(&self, key: &[u8]) -> Option<u32> {
        let node = match self {
            State::Ring(p) => p.locate(key),
            State::Jump(p) => p.locate(key),
            State::Maglev(p) => p.locate(key),
            State::Rendezvous(p) => p.locate(key),
            State::Modulo(p) => p.locate(key),
            State::Slots(p) => p.locate(key),
            State::Range(p) => p.locate(key),
            State::Compat(p) => p.locate(key),
        };
        node.map(|n| n.id)
    }

    /// Heap bytes of the lookup structure.
    pub(crate) fn heap_bytes(&self) -> usize {
        match self {
            State::Ring(p) => p.heap_bytes(),
            State::Jump(p) => p.heap_bytes(),
            State::Maglev(p) => p.heap_bytes(),
            State::Rendezvous(p) => p.heap_bytes(),
            State::Modulo(p) => p.heap_bytes(),
            State::Slots(p) => p.heap_bytes(),
            State::Range(p) => p.heap_bytes(),
            State::Compat(p) => p.heap_bytes(),
        }
    }
}

/// Index of the node with the lowest load per unit of weight (ties: first).
fn argmin_norm(load: &[f64], cluster: &Cluster) -> usize {
    (0..cluster.len())
        .min_by(|&a, &b| {
            (load[a] / f64::from(cluster[a].1)).total_cmp(&(load[b] / f64::from(cluster[b].1)))
        })
        .unwrap_or(0)
}

/// Range sharding as a cluster manager would run it: a split policy scaled
/// to the cluster (about `ranges_per_node` ranges per node by load and key
/// count), merges with hysteresis, orphaned ranges reassigned, then ranges
/// moved from the most to the least loaded node until every node is within
/// [`REBALANCE_TOLERANCE`] of its share (CockroachDB's rebalancer uses a
/// similar threshold around the mean).
struct RangeSim {
    policy: SplitPolicy,
    splits: usize,
    merges: usize,
}

/// A node may exceed its fair share by this fraction before ranges move.
const REBALANCE_TOLERANCE: f64 = 0.05;

impl RangeSim {
    fn new(cfg: &SimConfig, cluster: &Cluster, work: &Workload) -> Result<Self, Error> {
        let target = (cluster.len() * cfg.ranges_per_node).max(1) as f64;
        let policy = SplitPolicy {
            max_keys: ((work.len() as f64 / target).ceil() as u64).max(1),
            max_bytes: u64::MAX,
            max_load: (work.total as f64 / target).max(1.0),
            merge_fraction: 0.25,
        };
        policy.validate()?;
        Ok(Self {
            policy,
            splits: 0,
            merges: 0,
        })
    }

    /// Sorted-position span `[lo, hi)` of a range.
    fn span(map: &RangeMap<Vec<u8>, SimNode>, id: RangeId, work: &Workload) -> (usize, usize) {
        let Some(r) = map.range(id) else {
            return (0, 0);
        };
        let lo = r.start.map_or(0, |s| work.lower_bound(s));
        let hi = r.end.map_or(work.len(), |e| work.lower_bound(e));
        (lo, hi)
    }

    fn stats_of(
        &self,
        map: &RangeMap<Vec<u8>, SimNode>,
        id: RangeId,
        work: &Workload,
    ) -> RangeStats {
        let (lo, hi) = Self::span(map, id, work);
        RangeStats {
            keys: (hi - lo) as u64,
            bytes: work.prefix_bytes[hi] - work.prefix_bytes[lo],
            load: (work.prefix_load[hi] - work.prefix_load[lo]) as f64,
        }
    }

    /// Split every range over the policy at its load-weighted median key,
    /// until none is over (a range holding one key cannot split).
    fn split_all(
        &mut self,
        map: &mut RangeMap<Vec<u8>, SimNode>,
        work: &Workload,
    ) -> Result<(), Error> {
        let mut todo: Vec<RangeId> = map.iter().map(|r| r.id).collect();
        while let Some(id) = todo.pop() {
            let stats = self.stats_of(map, id, work);
            if !self.policy.should_split(&stats) {
                continue;
            }
            let (lo, hi) = Self::span(map, id, work);
            if hi - lo < 2 {
                continue;
            }
            // Load-weighted median, kept strictly inside (lo, hi).
            let half = work.prefix_load[lo] + (work.prefix_load[hi] - work.prefix_load[lo]) / 2;
            let mid = work.prefix_load[lo..=hi].partition_point(|&p| p <= half) + lo - 1;
            let at = mid.clamp(lo + 1, hi - 1);
            let key: Vec<u8> = work.sorted_key(at).to_vec();
            let (l, r) = RangeMap::split(map, key)?;
            self.splits += 1;
            todo.push(l);
            todo.push(r);
        }
        Ok(())
    }

    /// Merge adjacent same-owner ranges that the policy allows (hysteresis).
    fn merge_small(
        &mut self,
        map: &mut RangeMap<Vec<u8>, SimNode>,
        work: &Workload,
    ) -> Result<(), Error> {
        let mut i = 0;
        while i + 1 < map.len() {
            let ids: Vec<(RangeId, u32)> = map
                .iter()
                .skip(i)
                .take(2)
                .map(|r| (r.id, r.owner.id))
                .collect();
            let (a, b) = (ids[0], ids[1]);
            if a.1 == b.1
                && self.policy.should_merge(
                    &self.stats_of(map, a.0, work),
                    &self.stats_of(map, b.0, work),
                )
            {
                map.merge(a.0, b.0)?;
                self.merges += 1;
            } else {
                i += 1;
            }
        }
        Ok(())
    }

    fn transition(
        &mut self,
        map: &mut RangeMap<Vec<u8>, SimNode>,
        after: &Cluster,
        work: &Workload,
    ) -> Result<String, Error> {
        self.split_all(map, work)?;
        self.merge_small(map, work)?;
        let index = |id: u32| after.iter().position(|(n, _)| n.id == id);
        let ranges: Vec<(RangeId, Option<usize>, f64)> = map
            .iter()
            .map(|r| (r.id, index(r.owner.id), self.stats_of(map, r.id, work).load))
            .collect();
        let mut load = vec![0f64; after.len()];
        let mut owned: Vec<Vec<(RangeId, f64)>> = vec![Vec::new(); after.len()];
        let mut orphans = Vec::new();
        for &(id, owner, l) in &ranges {
            match owner {
                Some(j) => {
                    load[j] += l;
                    owned[j].push((id, l));
                }
                None => orphans.push((id, l)),
            }
        }
        let mut moves = 0usize;
        orphans.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
        for (id, l) in orphans {
            let j = argmin_norm(&load, after);
            load[j] += l;
            owned[j].push((id, l));
            map.set_owner(id, after[j].0.clone())?;
            moves += 1;
        }
        let total: f64 = load.iter().sum();
        let total_w: f64 = after.iter().map(|(_, w)| f64::from(*w)).sum();
        let share = |j: usize| total * f64::from(after[j].1) / total_w;
        let (upper, lower) = (1.0 + REBALANCE_TOLERANCE, 1.0 - REBALANCE_TOLERANCE);
        for _ in 0..ranges.len() * 4 {
            let norm = |j: usize| load[j] / share(j);
            let lo = argmin_norm(&load, after);
            // A node over the bound with a single range (one hot key range
            // that cannot split further) cannot be helped by moving ranges.
            let over = (0..after.len()).any(|j| norm(j) > upper && owned[j].len() > 1);
            if !over && norm(lo) >= lower {
                break;
            }
            // The busiest donor with a range whose move narrows the gap
            // between donor and receiver without crossing it (so the spread
            // shrinks every move); the range closest to half the gap wins.
            let mut donors: Vec<usize> = (0..after.len())
                .filter(|&j| j != lo && norm(j) > norm(lo))
                .collect();
            donors.sort_by(|&a, &b| norm(b).total_cmp(&norm(a)).then(a.cmp(&b)));
            let pick = donors.into_iter().find_map(|d| {
                let half_gap = (norm(d) - norm(lo)) / 2.0;
                owned[d]
                    .iter()
                    .enumerate()
                    .filter(|(_, (_, l))| {
                        *l > 0.0
                            && (load[lo] + l) / share(lo) < norm(d)
                            && (load[d] - l) / share(d) > norm(lo)
                    })
                    .min_by(|a, b| {
                        let da = (a.1 .1 / share(lo) - half_gap).abs();
                        let db = (b.1 .1 / share(lo) - half_gap).abs();
                        da.total_cmp(&db).then(a.1 .0.cmp(&b.1 .0))
                    })
                    .map(|(k, _)| (d, k))
            });
            let Some((hi, k)) = pick else { break };
            let (id, l) = owned[hi].swap_remove(k);
            load[hi] -= l;
            load[lo] += l;
            owned[lo].push((id, l));
            map.set_owner(id, after[lo].0.clone())?;
            moves += 1;
        }
        Ok(format!(
            "{} ranges, {} splits, {} merges, {} moves",
            map.len(),
            self.splits,
            self.merges,
            moves
        ))
    }
}
