//! Switching placement: the same nodes and keys placed by one algorithm, then another, and what fraction of keys and load would move.
//!
//! ```
//! use ringleader_ring::sim::{self, Algorithm, SwitchConfig};
//! let report = sim::switch(&SwitchConfig {
//!     from: Algorithm::Nginx,
//!     to: vec![Algorithm::Nginx, Algorithm::Ring],
//!     keys: 20_000,
//!     ..SwitchConfig::default()
//! })?;
//! assert_eq!(report.results[0].moved_keys, 0.0); // nginx -> nginx moves nothing
//! assert!(report.results[1].moved_keys > 0.8); // nginx -> ringleader's ring moves most keys
//! println!("{}", report.to_table());
//! # Ok::<(), ringleader_ring::Error>(())
//! ```
use std::fmt::Write as _;

use serde::Serialize;

use super::state::{Cluster, SimNode, State};
use super::workload::{SplitMix64, Workload};
use super::{load_spread, maglev_table_for, owners_of, Algorithm, KeyDistribution, SimConfig};
use super::{MAX_KEYS, MAX_NODES};
use crate::error::Error;

/// What to compare: `from` against each of `to`, over the same nodes
/// (`node-0`, `node-1`, ...) and the same keys (`key-<rank>`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SwitchConfig {
    /// The placement in use now.
    pub from: Algorithm,
    /// The placements to compare it with (one result each).
    pub to: Vec<Algorithm>,
    /// Nodes, weight 1 unless given in `weights`.
    pub nodes: usize,
    /// `(node number, weight)` overrides, e.g. `(3, 2)` for node-3 at weight 2.
    pub weights: Vec<(u32, u32)>,
    /// Keys (uniform) or requests drawn (Zipf).
    pub keys: usize,
    /// Key distribution (Zipf: load moved differs from keys moved).
    pub distribution: KeyDistribution,
    /// Ring vnodes per unit of weight (`ring`).
    pub vnodes: u32,
    /// Slot count (`slots`).
    pub slots: usize,
    /// Target ranges per node (`range`).
    pub ranges_per_node: usize,
    /// RNG seed (Zipf draws).
    pub seed: u64,
}

impl Default for SwitchConfig {
    /// nginx to ringleader's ring, 10 nodes, 100,000 uniform keys, seed 1.
    fn default() -> Self {
        let sim = SimConfig::default();
        Self {
            from: Algorithm::Nginx,
            to: vec![Algorithm::Ring],
            nodes: sim.nodes,
            weights: Vec::new(),
            keys: sim.keys,
            distribution: sim.distribution,
            vnodes: sim.vnodes,
            slots: sim.slots,
            ranges_per_node: sim.ranges_per_node,
            seed: sim.seed,
        }
    }
}

impl SwitchConfig {
    /// Reject configurations that cannot run, with a clear reason.
    pub fn validate(&self) -> Result<(), Error> {
        let bad = |what: &'static str, reason: String| Error::InvalidParameter { what, reason };
        if self.nodes == 0 || self.nodes > MAX_NODES {
            return Err(bad(
                "nodes",
                format!(
                    "at least 1 node is needed, at most {MAX_NODES}; got {}",
                    self.nodes
                ),
            ));
        }
        if self.keys == 0 || self.keys > MAX_KEYS {
            return Err(bad(
                "keys",
                format!("must be within 1..={MAX_KEYS}, got {}", self.keys),
            ));
        }
        if self.to.is_empty() {
            return Err(bad("to", "no placement to switch to".into()));
        }
        for &(node, weight) in &self.weights {
            if node as usize >= self.nodes {
                return Err(Error::UnknownNode {
                    node: format!("node-{node}"),
                });
            }
            if weight == 0 {
                return Err(Error::ZeroWeight {
                    node: format!("node-{node}"),
                });
            }
        }
        self.sim_config().validate()
    }

    /// The simulator settings the placements are built with.
    fn sim_config(&self) -> SimConfig {
        SimConfig {
            algorithms: self.to.clone(),
            nodes: self.nodes,
            keys: self.keys,
            vnodes: self.vnodes,
            slots: self.slots,
            ranges_per_node: self.ranges_per_node,
            distribution: self.distribution,
            events: vec![super::Event::Add(1)],
            seed: self.seed,
            measure_time: false,
        }
    }

    fn cluster(&self) -> Cluster {
        (0..self.nodes as u32)
            .map(|i| {
                let w = self
                    .weights
                    .iter()
                    .rev()
                    .find(|(n, _)| *n == i)
                    .map_or(1, |(_, w)| *w);
                (SimNode::new(i), w)
            })
            .collect()
    }
}

/// One switch: `from` to `to`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SwitchResult {
    /// The placement in use.
    pub from: Algorithm,
    /// The placement switched to.
    pub to: Algorithm,
    /// Fraction of distinct keys whose node changes.
    pub moved_keys: f64,
    /// Fraction of requests whose key's node changes (equal to `moved_keys`
    /// for uniform keys; under Zipf, hot keys count for their draws).
    pub moved_load: f64,
    /// Most loaded node's load over its weight share, under `from`.
    pub peak_to_mean_from: f64,
    /// The same under `to`.
    pub peak_to_mean_to: f64,
}

/// The result of [`switch`].
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SwitchReport {
    /// What was simulated.
    pub config: SwitchConfig,
    /// Distinct keys placed.
    pub distinct_keys: usize,
    /// Requests (sum of key draws).
    pub requests: u64,
    /// One result per `to` placement, in order.
    pub results: Vec<SwitchResult>,
}

impl SwitchReport {
    /// An aligned, human-readable table.
    pub fn to_table(&self) -> String {
        let c = &self.config;
        let mut out = String::new();
        let weights = if c.weights.is_empty() {
            String::from("weight 1 each")
        } else {
            let w: Vec<String> = c
                .weights
                .iter()
                .map(|(n, w)| format!("node-{n}={w}"))
                .collect();
            w.join(" ")
        };
        let _ = writeln!(
            out,
            "switch from {}: {} nodes ({weights}), {} distinct keys, {} requests ({}), seed {}",
            c.from, c.nodes, self.distinct_keys, self.requests, c.distribution, c.seed
        );
        let _ = writeln!(
            out,
            "{:<12} {:>11} {:>11} {:>16} {:>14}",
            "to", "keys moved", "load moved", "peak/mean before", "peak/mean after"
        );
        for r in &self.results {
            let _ = writeln!(
                out,
                "{:<12} {:>10.2}% {:>10.2}% {:>16.3} {:>14.3}",
                r.to.name(),
                r.moved_keys * 100.0,
                r.moved_load * 100.0,
                r.peak_to_mean_from,
                r.peak_to_mean_to
            );
        }
        out
    }

    /// The whole report as JSON.
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}"))
    }

    /// One CSV row per `to` placement, with a header.
    pub fn to_csv(&self) -> String {
        let c = &self.config;
        let mut out = String::from(
            "from,to,nodes,distinct_keys,requests,distribution,seed,moved_keys,moved_load,peak_to_mean_from,peak_to_mean_to\n",
        );
        for r in &self.results {
            let _ = writeln!(
                out,
                "{},{},{},{},{},{},{},{:.6},{:.6},{:.6},{:.6}",
                r.from,
                r.to,
                c.nodes,
                self.distinct_keys,
                self.requests,
                c.distribution,
                c.seed,
                r.moved_keys,
                r.moved_load,
                r.peak_to_mean_from,
                r.peak_to_mean_to
            );
        }
        out
    }
}

/// Place the same keys on the same nodes with `from` and with each of `to`,
/// and count what would move if a cluster switched. Deterministic for a
/// given configuration.
pub fn switch(cfg: &SwitchConfig) -> Result<SwitchReport, Error> {
    cfg.validate()?;
    let sim = cfg.sim_config();
    let mut rng = SplitMix64::new(cfg.seed);
    let work = Workload::generate(cfg.keys, cfg.distribution, &mut rng)?;
    let cluster = cfg.cluster();
    let table = maglev_table_for(cluster.len());
    let from = State::build(cfg.from, &cluster, &sim, &work, table)?;
    let from_owners = owners_of(&from, &work);
    let (peak_from, _) = load_spread(&from_owners, &cluster, &work);
    let mut results = Vec::with_capacity(cfg.to.len());
    for &to in &cfg.to {
        let state = State::build(to, &cluster, &sim, &work, table)?;
        let owners = owners_of(&state, &work);
        let (mut keys, mut load) = (0usize, 0u64);
        for (i, (a, b)) in from_owners.iter().zip(&owners).enumerate() {
            if a != b {
                keys += 1;
                load += work.weights[i];
            }
        }
        let (peak_to, _) = load_spread(&owners, &cluster, &work);
        results.push(SwitchResult {
            from: cfg.from,
            to,
            moved_keys: keys as f64 / work.len() as f64,
            moved_load: load as f64 / work.total as f64,
            peak_to_mean_from: peak_from,
            peak_to_mean_to: peak_to,
        });
    }
    Ok(SwitchReport {
        config: cfg.clone(),
        distinct_keys: work.len(),
        requests: work.total,
        results,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(from: Algorithm, to: Vec<Algorithm>) -> SwitchConfig {
        SwitchConfig {
            from,
            to,
            keys: 20_000,
            ..SwitchConfig::default()
        }
    }

    #[test]
    fn switching_to_itself_moves_nothing() {
        let all: Vec<Algorithm> = Algorithm::ALL
            .into_iter()
            .chain(Algorithm::COMPAT)
            .collect();
        for &a in &all {
            let r = switch(&cfg(a, vec![a])).unwrap();
            assert_eq!(r.results[0].moved_keys, 0.0, "{a}");
            assert_eq!(r.results[0].moved_load, 0.0, "{a}");
        }
    }

    #[test]
    fn switching_between_unrelated_placements_moves_about_1_minus_1_over_n() {
        // Independent placements over n equal nodes agree on about 1/n of keys.
        let r = switch(&cfg(
            Algorithm::Nginx,
            vec![Algorithm::Ring, Algorithm::Ketama, Algorithm::Redis],
        ))
        .unwrap();
        for res in &r.results {
            assert!(
                (0.85..0.95).contains(&res.moved_keys),
                "{} -> {}: {}",
                res.from,
                res.to,
                res.moved_keys
            );
            assert_eq!(res.moved_keys, res.moved_load); // uniform keys
        }
    }

    #[test]
    fn zipf_counts_load_and_weights_apply() {
        let r = switch(&SwitchConfig {
            from: Algorithm::Ketama,
            to: vec![Algorithm::Ring],
            keys: 20_000,
            distribution: KeyDistribution::Zipf { exponent: 1.1 },
            weights: vec![(0, 5)],
            ..SwitchConfig::default()
        })
        .unwrap();
        let res = &r.results[0];
        assert!(r.distinct_keys < 20_000);
        assert_eq!(r.requests, 20_000);
        assert_ne!(res.moved_keys, res.moved_load);
        let table = r.to_table();
        assert!(table.contains("node-0=5"), "{table}");
        assert!(table.contains("ring"), "{table}");
        let csv = r.to_csv();
        assert_eq!(csv.lines().count(), 2);
        assert!(csv.lines().nth(1).unwrap().starts_with("ketama,ring,10,"));
        let json: serde_json::Value = serde_json::from_str(&r.to_json()).unwrap();
        assert_eq!(json["results"][0]["to"], "ring");
    }

    #[test]
    fn bad_input_is_an_error() {
        assert!(switch(&SwitchConfig {
            nodes: 0,
            ..SwitchConfig::default()
        })
        .is_err());
        assert!(switch(&cfg(Algorithm::Nginx, vec![])).is_err());
        assert!(matches!(
            switch(&SwitchConfig {
                weights: vec![(99, 2)],
                ..SwitchConfig::default()
            }),
            Err(Error::UnknownNode { .. })
        ));
        assert!(matches!(
            switch(&SwitchConfig {
                weights: vec![(1, 0)],
                ..SwitchConfig::default()
            }),
            Err(Error::ZeroWeight { .. })
        ));
    }
}
