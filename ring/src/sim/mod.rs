//! The reshard simulator: how many keys move, and how even the load is,
//! when a cluster grows, shrinks or is re-weighted — per placement algorithm.
//!
//! Deterministic: keys are named `key-<rank>`, Zipf draws and removal
//! victims come from a seeded SplitMix64, so a configuration always gives
//! the same movement and load figures. Only the timing columns (lookup ns,
//! build µs) vary, and they are left out unless [`SimConfig::measure_time`].
//!
//! ```
//! use ringleader_ring::sim::{self, Algorithm, Event, SimConfig};
//! let report = sim::run(&SimConfig {
//!     algorithms: vec![Algorithm::Ring, Algorithm::Modulo],
//!     nodes: 10,
//!     keys: 20_000,
//!     events: vec![Event::Add(1)],
//!     ..SimConfig::default()
//! })?;
//! let step = &report.steps[0];
//! let ring = step.result(Algorithm::Ring).unwrap();
//! let modulo = step.result(Algorithm::Modulo).unwrap();
//! assert!((ring.ideal - 1.0 / 11.0).abs() < 1e-9);
//! assert!(ring.moved < 0.15 && ring.between_survivors == 0.0);
//! assert!(modulo.moved > 0.8); // about n / (n + 1)
//! println!("{}", report.to_table());
//! # Ok::<(), ringleader_ring::Error>(())
//! ```
use std::fmt;
use std::str::FromStr;
use std::time::Instant;

use serde::Serialize;
use tracing::debug;

use crate::error::Error;

mod report;
mod state;
mod switch;
mod workload;

pub use report::{AlgoResult, Report, Step, Summary};
use state::{Cluster, SimNode, State};
pub use switch::{switch, SwitchConfig, SwitchReport, SwitchResult};
use workload::{SplitMix64, Workload};

/// Largest key count the simulator accepts (memory stays around 100 bytes per key).
pub const MAX_KEYS: usize = 50_000_000;

/// Largest node count the simulator accepts.
pub const MAX_NODES: usize = 10_000;

/// A placement algorithm the simulator compares.
///
/// ```
/// use ringleader_ring::sim::Algorithm;
/// assert_eq!("maglev".parse::<Algorithm>()?, Algorithm::Maglev);
/// assert_eq!(Algorithm::Maglev.to_string(), "maglev");
/// # Ok::<(), ringleader_ring::Error>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum Algorithm {
    /// [`HashRing`](crate::HashRing) with `vnodes` points per unit of weight.
    Ring,
    /// [`Jump`](crate::Jump) consistent hash.
    Jump,
    /// [`Maglev`](crate::Maglev) lookup table. Its size `M` is fixed for
    /// the whole run, as a deployment keeps it: the default 65537, or the
    /// smallest prime `>= 100 x` the largest cluster the run reaches.
    Maglev,
    /// [`Rendezvous`](crate::Rendezvous) (weighted HRW).
    Rendezvous,
    /// [`Modulo`](crate::Modulo): hash mod n.
    Modulo,
    /// [`SlotMap`](crate::SlotMap) with minimum-move rebalancing.
    Slots,
    /// [`RangeMap`](crate::RangeMap) with a split policy and range moves.
    Range,
    /// [`NginxHash`](crate::NginxHash): nginx's `hash $key consistent`
    /// (servers named `node-0`, ... as `server` lines).
    Nginx,
    /// [`Ketama`](crate::Ketama): libketama's continuum.
    Ketama,
    /// [`RedisCluster`](crate::RedisCluster): Redis Cluster slots, laid out
    /// as `redis-cli --cluster create` does, rebalanced with the fewest slot
    /// moves on a change (weights ignored).
    Redis,
}

impl Algorithm {
    /// Every native algorithm, in report order (what `all` means).
    pub const ALL: [Algorithm; 7] = [
        Algorithm::Ring,
        Algorithm::Jump,
        Algorithm::Maglev,
        Algorithm::Rendezvous,
        Algorithm::Modulo,
        Algorithm::Slots,
        Algorithm::Range,
    ];

    /// The placements compatible with other systems ([`Compat`](crate::Compat)).
    pub const COMPAT: [Algorithm; 3] = [Algorithm::Nginx, Algorithm::Ketama, Algorithm::Redis];

    /// The compatible placement this names, if it is one.
    pub fn compat(self) -> Option<crate::Compat> {
        match self {
            Algorithm::Nginx => Some(crate::Compat::Nginx),
            Algorithm::Ketama => Some(crate::Compat::Ketama),
            Algorithm::Redis => Some(crate::Compat::Redis),
            _ => None,
        }
    }

    /// The name used on the command line and in reports.
    pub fn name(self) -> &'static str {
        match self {
            Algorithm::Ring => "ring",
            Algorithm::Jump => "jump",
            Algorithm::Maglev => "maglev",
            Algorithm::Rendezvous => "rendezvous",
            Algorithm::Modulo => "modulo",
            Algorithm::Slots => "slots",
            Algorithm::Range => "range",
            Algorithm::Nginx => "nginx",
            Algorithm::Ketama => "ketama",
            Algorithm::Redis => "redis",
        }
    }

    /// Parse a comma-separated list (`"ring,jump"`, or `"all"`); errors on
    /// unknown names, duplicates or an empty list.
    ///
    /// ```
    /// use ringleader_ring::sim::Algorithm;
    /// assert_eq!(Algorithm::parse_list("ring, jump")?, vec![Algorithm::Ring, Algorithm::Jump]);
    /// assert!(Algorithm::parse_list("ring,chord").is_err());
    /// # Ok::<(), ringleader_ring::Error>(())
    /// ```
    pub fn parse_list(s: &str) -> Result<Vec<Algorithm>, Error> {
        if s.trim() == "all" {
            return Ok(Self::ALL.to_vec());
        }
        let mut out = Vec::new();
        for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let a: Algorithm = part.parse()?;
            if out.contains(&a) {
                return Err(Error::InvalidParameter {
                    what: "algorithms",
                    reason: format!("{part:?} is listed twice"),
                });
            }
            out.push(a);
        }
        if out.is_empty() {
            return Err(Error::InvalidParameter {
                what: "algorithms",
                reason: "the list is empty".into(),
            });
        }
        Ok(out)
    }
}

impl fmt::Display for Algorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Algorithm {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self, Error> {
        Self::ALL
            .into_iter()
            .chain(Self::COMPAT)
            .find(|a| a.name() == s)
            .ok_or_else(|| Error::InvalidParameter {
                what: "algorithm",
                reason: format!(
                    "unknown algorithm {s:?} (expected one of: {}, {})",
                    Self::ALL.map(Algorithm::name).join(", "),
                    Self::COMPAT.map(Algorithm::name).join(", ")
                ),
            })
    }
}

/// How requests spread over keys.
///
/// ```
/// use ringleader_ring::sim::KeyDistribution;
/// assert_eq!("zipf".parse::<KeyDistribution>()?, KeyDistribution::Zipf { exponent: 1.1 });
/// assert!("zipf:abc".parse::<KeyDistribution>().is_err());
/// # Ok::<(), ringleader_ring::Error>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
#[serde(rename_all = "lowercase", tag = "kind")]
#[non_exhaustive]
pub enum KeyDistribution {
    /// Every key once.
    Uniform,
    /// `keys` draws from a Zipf law over `keys` ranks (hot keys repeat).
    Zipf {
        /// The exponent `s` (> 0); 1.1 is a common cache workload.
        exponent: f64,
    },
}

impl fmt::Display for KeyDistribution {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KeyDistribution::Uniform => f.write_str("uniform"),
            KeyDistribution::Zipf { exponent } => write!(f, "zipf:{exponent}"),
        }
    }
}

impl FromStr for KeyDistribution {
    type Err = Error;
    /// `uniform`, `zipf` (exponent 1.1) or `zipf:<exponent>`.
    fn from_str(s: &str) -> Result<Self, Error> {
        let bad = |reason: String| Error::InvalidParameter {
            what: "distribution",
            reason,
        };
        match s.trim() {
            "uniform" => Ok(KeyDistribution::Uniform),
            "zipf" => Ok(KeyDistribution::Zipf { exponent: 1.1 }),
            other => {
                let exp = other.strip_prefix("zipf:").ok_or_else(|| {
                    bad(format!(
                        "{other:?} (expected uniform, zipf or zipf:<exponent>)"
                    ))
                })?;
                let exponent: f64 = exp
                    .parse()
                    .map_err(|_| bad(format!("zipf exponent {exp:?} is not a number")))?;
                if !(exponent.is_finite() && exponent > 0.0) {
                    return Err(bad(format!("zipf exponent must be > 0, got {exponent}")));
                }
                Ok(KeyDistribution::Zipf { exponent })
            }
        }
    }
}

/// A change to the cluster. Steps run in order, each on the previous result.
///
/// ```
/// use ringleader_ring::sim::Event;
/// assert_eq!(Event::SetWeight { node: 3, weight: 2 }.to_string(), "weight node-3=2");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Event {
    /// `k` new nodes join (weight 1).
    Add(usize),
    /// `k` nodes leave, picked by the seeded RNG.
    Remove(usize),
    /// Node `node-<node>` gets a new weight.
    SetWeight {
        /// The node's number (`node-<node>`).
        node: u32,
        /// Its new weight (> 0).
        weight: u32,
    },
    /// Add nodes one at a time until there are this many (one step each).
    GrowTo(usize),
    /// Remove nodes one at a time until there are this many (one step each).
    ShrinkTo(usize),
}

impl fmt::Display for Event {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Event::Add(k) => write!(f, "add {k}"),
            Event::Remove(k) => write!(f, "remove {k}"),
            Event::SetWeight { node, weight } => write!(f, "weight node-{node}={weight}"),
            Event::GrowTo(n) => write!(f, "grow to {n}"),
            Event::ShrinkTo(n) => write!(f, "shrink to {n}"),
        }
    }
}

/// What to simulate.
///
/// ```
/// use ringleader_ring::sim::{Event, KeyDistribution, SimConfig};
/// let config = SimConfig {
///     nodes: 4,
///     keys: 1_000,
///     distribution: "zipf:1.2".parse::<KeyDistribution>()?,
///     events: vec![Event::Remove(1), Event::GrowTo(6)],
///     ..SimConfig::default()
/// };
/// assert!(config.validate().is_ok());
/// assert!(SimConfig { nodes: 0, ..config }.validate().is_err());
/// # Ok::<(), ringleader_ring::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SimConfig {
    /// Algorithms to compare.
    pub algorithms: Vec<Algorithm>,
    /// Nodes before the first event (named `node-0` ..), weight 1 each.
    pub nodes: usize,
    /// Keys (uniform) or requests drawn (Zipf).
    pub keys: usize,
    /// Ring vnodes per unit of weight.
    pub vnodes: u32,
    /// Slot count for `slots`.
    pub slots: usize,
    /// Target ranges per node for `range` (the split policy scales with it).
    pub ranges_per_node: usize,
    /// Key distribution.
    pub distribution: KeyDistribution,
    /// Events, in order.
    pub events: Vec<Event>,
    /// RNG seed (Zipf draws, removal victims).
    pub seed: u64,
    /// Measure lookup and build times (non-deterministic columns).
    pub measure_time: bool,
}

impl Default for SimConfig {
    /// All algorithms, 10 nodes, 100,000 uniform keys, add 1 node, 160
    /// vnodes, 16384 slots, 16 ranges per node, seed 1, no timing.
    fn default() -> Self {
        Self {
            algorithms: Algorithm::ALL.to_vec(),
            nodes: 10,
            keys: 100_000,
            vnodes: crate::DEFAULT_VNODES,
            slots: crate::DEFAULT_SLOTS,
            ranges_per_node: 16,
            distribution: KeyDistribution::Uniform,
            events: vec![Event::Add(1)],
            seed: 1,
            measure_time: false,
        }
    }
}

impl SimConfig {
    /// Reject configurations the simulator cannot run, with a clear reason.
    pub fn validate(&self) -> Result<(), Error> {
        let bad =
            |what: &'static str, reason: String| Err(Error::InvalidParameter { what, reason });
        if self.nodes == 0 {
            return bad("nodes", "at least 1 node is needed".into());
        }
        if self.nodes > MAX_NODES {
            return bad(
                "nodes",
                format!("{} is above the limit of {MAX_NODES}", self.nodes),
            );
        }
        if self.keys == 0 || self.keys > MAX_KEYS {
            return bad(
                "keys",
                format!("must be within 1..={MAX_KEYS}, got {}", self.keys),
            );
        }
        if self.algorithms.is_empty() {
            return bad("algorithms", "the list is empty".into());
        }
        if self.vnodes == 0 {
            return Err(Error::ZeroVnodes);
        }
        if self.ranges_per_node == 0 {
            return bad("ranges per node", "must be at least 1".into());
        }
        if self.events.is_empty() {
            return bad(
                "events",
                "nothing to simulate (add, remove, weight or grow)".into(),
            );
        }
        if let KeyDistribution::Zipf { exponent } = self.distribution {
            if !(exponent.is_finite() && exponent > 0.0) {
                return bad(
                    "distribution",
                    format!("zipf exponent must be > 0, got {exponent}"),
                );
            }
        }
        Ok(())
    }
}

/// Expand events into single cluster changes, checking each against the
/// cluster it applies to.
fn plan_steps(cfg: &SimConfig, rng: &mut SplitMix64) -> Result<Vec<(String, Cluster)>, Error> {
    let mut cluster: Cluster = (0..cfg.nodes as u32)
        .map(|i| (SimNode::new(i), 1))
        .collect();
    let mut next_id = cfg.nodes as u32;
    let mut steps = vec![(String::from("initial"), cluster.clone())];
    let bad = |reason: String| Error::InvalidParameter {
        what: "event",
        reason,
    };
    for ev in &cfg.events {
        let singles: Vec<Event> = match *ev {
            Event::GrowTo(n) => {
                if n <= cluster.len() {
                    return Err(bad(format!(
                        "grow to {n}: the cluster already has {} nodes",
                        cluster.len()
                    )));
                }
                vec![Event::Add(1); n - cluster.len()]
            }
            Event::ShrinkTo(n) => {
                if n == 0 || n >= cluster.len() {
                    return Err(bad(format!(
                        "shrink to {n}: must be 1 to {} (the cluster has {} nodes)",
                        cluster.len().saturating_sub(1),
                        cluster.len()
                    )));
                }
                vec![Event::Remove(1); cluster.len() - n]
            }
            other => vec![other],
        };
        for single in singles {
            match single {
                Event::Add(k) => {
                    if k == 0 {
                        return Err(bad("add 0: nothing to add".into()));
                    }
                    if cluster.len() + k > MAX_NODES {
                        return Err(bad(format!(
                            "add {k}: above the limit of {MAX_NODES} nodes"
                        )));
                    }
                    for _ in 0..k {
                        cluster.push((SimNode::new(next_id), 1));
                        next_id += 1;
                    }
                }
                Event::Remove(k) => {
                    if k == 0 || k >= cluster.len() {
                        return Err(bad(format!(
                            "remove {k}: can remove 1 to {} of the {} nodes (at least one must stay)",
                            cluster.len() - 1,
                            cluster.len()
                        )));
                    }
                    // Partial Fisher-Yates: k distinct victims.
                    let mut idx: Vec<usize> = (0..cluster.len()).collect();
                    for i in 0..k {
                        let j = i + rng.below(idx.len() - i);
                        idx.swap(i, j);
                    }
                    let victims: Vec<u32> = idx[..k].iter().map(|&i| cluster[i].0.id).collect();
                    cluster.retain(|(n, _)| !victims.contains(&n.id));
                }
                Event::SetWeight { node, weight } => {
                    if weight == 0 {
                        return Err(Error::ZeroWeight {
                            node: format!("node-{node}"),
                        });
                    }
                    let entry =
                        cluster
                            .iter_mut()
                            .find(|(n, _)| n.id == node)
                            .ok_or_else(|| Error::UnknownNode {
                                node: format!("node-{node}"),
                            })?;
                    entry.1 = weight;
                }
                Event::GrowTo(_) | Event::ShrinkTo(_) => unreachable!("expanded above"),
            }
            steps.push((single.to_string(), cluster.clone()));
        }
    }
    Ok(steps)
}

/// Run the simulation.
pub fn run(cfg: &SimConfig) -> Result<Report, Error> {
    cfg.validate()?;
    let mut rng = SplitMix64::new(cfg.seed);
    let work = Workload::generate(cfg.keys, cfg.distribution, &mut rng)?;
    let clusters = plan_steps(cfg, &mut rng)?;
    debug!(keys = work.len(), steps = clusters.len() - 1, "simulating");

    let largest = clusters.iter().map(|(_, c)| c.len()).max().unwrap_or(0);
    let maglev_table = maglev_table_for(largest);
    let n = work.len();
    let mut states = Vec::with_capacity(cfg.algorithms.len());
    for &alg in &cfg.algorithms {
        let state = State::build(alg, &clusters[0].1, cfg, &work, maglev_table)?;
        let owners = owners_of(&state, &work);
        states.push((alg, state, owners));
    }
    let mut steps = Vec::with_capacity(clusters.len() - 1);
    for (index, pair) in clusters.windows(2).enumerate() {
        let (before, (event, after)) = (&pair[0].1, (&pair[1].0, &pair[1].1));
        let ideal = ideal_moved(before, after);
        let mut results = Vec::with_capacity(states.len());
        for (alg, state, owners) in states.iter_mut() {
            let (next, note) = state.transition(before, after, cfg, &work)?;
            let t = Instant::now();
            let next_owners = owners_of(&next, &work);
            let lookup_ns = t.elapsed().as_nanos() as f64 / n as f64;
            let build_us = if cfg.measure_time {
                let t = Instant::now();
                let fresh = State::build(*alg, after, cfg, &work, maglev_table)?;
                let us = t.elapsed().as_nanos() as f64 / 1e3;
                drop(fresh);
                Some(us)
            } else {
                None
            };
            // Nodes present before and after with the same weight: a key
            // moving between two of them is a move no consistent scheme needs.
            let max_id = after
                .iter()
                .chain(before)
                .map(|(m, _)| m.id)
                .max()
                .unwrap_or(0);
            let mut unchanged = vec![false; max_id as usize + 1];
            for (m, w) in after {
                if before.iter().any(|(o, v)| o.id == m.id && v == w) {
                    unchanged[m.id as usize] = true;
                }
            }
            let is_unchanged = |id: u32| unchanged.get(id as usize).copied().unwrap_or(false);
            let (mut moved, mut stray) = (0u64, 0u64);
            for i in 0..n {
                let (a, b) = (owners[i], next_owners[i]);
                if a != b {
                    moved += work.weights[i];
                    if is_unchanged(a) && is_unchanged(b) {
                        stray += work.weights[i];
                    }
                }
            }
            let total = work.total as f64;
            let moved = moved as f64 / total;
            let (peak_before, cv_before) = load_spread(owners, before, &work);
            let (peak_after, cv_after) = load_spread(&next_owners, after, &work);
            results.push(AlgoResult {
                algorithm: *alg,
                moved,
                ideal,
                moved_over_ideal: if ideal > 0.0 {
                    Some(moved / ideal)
                } else {
                    None
                },
                between_survivors: stray as f64 / total,
                peak_to_mean_before: peak_before,
                peak_to_mean_after: peak_after,
                cv_before,
                cv_after,
                lookup_ns: cfg.measure_time.then_some(lookup_ns),
                build_us,
                bytes_per_node: next.heap_bytes() as f64 / after.len() as f64,
                note,
            });
            *state = next;
            *owners = next_owners;
        }
        steps.push(Step {
            index: index + 1,
            event: event.clone(),
            nodes_before: before.len(),
            nodes_after: after.len(),
            ideal,
            results,
        });
    }
    Ok(Report::new(cfg.clone(), work.len(), steps))
}

/// Maglev's table size for a run whose largest cluster has `nodes` nodes:
/// the default, or the smallest prime that keeps `M >= 100 x nodes`. Chosen
/// once per run, as an operator sizes `M` for the most nodes they will run.
fn maglev_table_for(nodes: usize) -> usize {
    crate::maglev::next_prime(crate::MAGLEV_DEFAULT_TABLE.max(nodes.saturating_mul(100)))
}

/// The owner id of every key (u32::MAX for none, which cannot happen with nodes).
fn owners_of(state: &State, work: &Workload) -> Vec<u32> {
    (0..work.len())
        .map(|i| state.locate_id(work.key(i)).unwrap_or(u32::MAX))
        .collect()
}

/// The ideal moved fraction: the total-variation distance between the
/// distributions of load the weights ask for before and after, i.e. between
/// the weight shares (1/(n+1) when one node joins n equal ones, k/n when k of
/// n leave). A placement that matches the shares on both sides must move at
/// least this much; one whose real load misses them (hot keys) can move less.
fn ideal_moved(before: &Cluster, after: &Cluster) -> f64 {
    let wb: f64 = before.iter().map(|(_, w)| f64::from(*w)).sum();
    let wa: f64 = after.iter().map(|(_, w)| f64::from(*w)).sum();
    let share = |c: &Cluster, total: f64, id: u32| {
        c.iter()
            .find(|(n, _)| n.id == id)
            .map_or(0.0, |(_, w)| f64::from(*w) / total)
    };
    after
        .iter()
        .map(|(n, _)| (share(after, wa, n.id) - share(before, wb, n.id)).max(0.0))
        .sum()
}

/// Peak-to-mean and stddev/mean of the load per unit of weight.
///
/// Node `i` with weight share `s_i` (its weight over the total) carrying
/// `l_i` of the requests has load per unit of weight `x_i = l_i / (total x s_i)`.
/// Every unit of weight counts once, so the mean is share-weighted:
/// `mean = sum s_i x_i` (the fraction of requests the nodes carry, 1 when
/// every key has an owner), `peak/mean = max x_i / mean` and
/// `stddev = sqrt(sum s_i (x_i - mean)^2)`. With equal weights these are the
/// plain per-node figures; with weights 1:9 carrying 20%/80% of the requests
/// the lighter node is at twice its share: peak/mean 2.0.
fn load_spread(owners: &[u32], cluster: &Cluster, work: &Workload) -> (f64, f64) {
    let max_id = cluster.iter().map(|(n, _)| n.id).max().unwrap_or(0) as usize;
    let mut load = vec![0u64; max_id + 1];
    for (i, &o) in owners.iter().enumerate() {
        if let Some(l) = load.get_mut(o as usize) {
            *l += work.weights[i];
        }
    }
    let total_w: f64 = cluster.iter().map(|(_, w)| f64::from(*w)).sum();
    let total = work.total as f64;
    // (share, load per unit of weight) per node.
    let per_unit: Vec<(f64, f64)> = cluster
        .iter()
        .map(|(n, w)| {
            let share = f64::from(*w) / total_w;
            (share, load[n.id as usize] as f64 / (total * share))
        })
        .collect();
    let mean: f64 = per_unit.iter().map(|(s, x)| s * x).sum();
    if mean <= 0.0 {
        return (0.0, 0.0);
    }
    let peak = per_unit.iter().map(|&(_, x)| x).fold(0.0, f64::max);
    let var: f64 = per_unit.iter().map(|(s, x)| s * (x - mean).powi(2)).sum();
    (peak / mean, var.sqrt() / mean)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Ten keys of one request each; `owners[i]` owns key `i`.
    fn spread(cluster: &[(u32, u32)], owners: &[u32]) -> (f64, f64) {
        let mut rng = SplitMix64::new(1);
        let work = Workload::generate(owners.len(), KeyDistribution::Uniform, &mut rng).unwrap();
        let cluster: Cluster = cluster
            .iter()
            .map(|&(id, w)| (SimNode::new(id), w))
            .collect();
        load_spread(owners, &cluster, &work)
    }

    #[test]
    fn peak_to_mean_is_load_over_fair_share() {
        // Weights 1:9 carrying 20% / 80%: node 0 is at 2x its 10% share.
        let (peak, cv) = spread(&[(0, 1), (1, 9)], &[0, 0, 1, 1, 1, 1, 1, 1, 1, 1]);
        assert!((peak - 2.0).abs() < 1e-12, "peak/mean {peak}");
        // Per unit of weight: 1 unit at 2.0, 9 units at 8/9; stddev 1/3.
        assert!((cv - 1.0 / 3.0).abs() < 1e-12, "stddev/mean {cv}");
        // Exactly the weight shares: perfectly even.
        let (peak, cv) = spread(&[(0, 1), (1, 9)], &[0, 1, 1, 1, 1, 1, 1, 1, 1, 1]);
        assert!(
            (peak - 1.0).abs() < 1e-12 && cv.abs() < 1e-12,
            "{peak} {cv}"
        );
        // Equal weights: the plain per-node figures.
        let (peak, cv) = spread(&[(0, 1), (1, 1)], &[0, 0, 0, 0, 0, 0, 1, 1, 1, 1]);
        assert!(
            (peak - 1.2).abs() < 1e-12 && (cv - 0.2).abs() < 1e-12,
            "{peak} {cv}"
        );
    }
}
