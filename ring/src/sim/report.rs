//! Simulation results and their renderings: aligned table, JSON, CSV.
use std::fmt::Write as _;

use serde::Serialize;

use super::{Algorithm, SimConfig};

/// One algorithm's figures for one step.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AlgoResult {
    /// The algorithm.
    pub algorithm: Algorithm,
    /// Fraction of requests whose key changed owner.
    pub moved: f64,
    /// The step's ideal (same for every algorithm): the total-variation
    /// distance between the distributions of load the weights ask for before
    /// and after (each node's weight share), `sum max(0, after - before)`.
    /// It is what a placement that gives every node exactly its share on
    /// both sides must move; it is not a floor for a placement whose real
    /// load misses the shares, which can move less (under Zipf, Rendezvous
    /// moves 5.2% against an ideal of 9.1%, because the joining node drew
    /// fewer hot keys than its share).
    pub ideal: f64,
    /// `moved / ideal`; `None` when nothing had to move.
    pub moved_over_ideal: Option<f64>,
    /// Fraction of requests that moved between two nodes present before and
    /// after with the same weight (0 for a consistent scheme).
    pub between_survivors: f64,
    /// Most loaded node's load over its fair share (its weight's fraction of
    /// all requests), before the change: the peak load per unit of weight over
    /// the mean load per unit of weight.
    pub peak_to_mean_before: f64,
    /// The same after the change.
    pub peak_to_mean_after: f64,
    /// Standard deviation over mean of the load per unit of weight (each
    /// unit of weight counts once, so a weight-9 node counts nine times), before.
    pub cv_before: f64,
    /// The same after.
    pub cv_after: f64,
    /// Nanoseconds per lookup over every key after the change (if measured).
    pub lookup_ns: Option<f64>,
    /// Microseconds to build the after-placement from scratch (if measured).
    pub build_us: Option<f64>,
    /// Heap bytes of the lookup structure per node, after.
    pub bytes_per_node: f64,
    /// Algorithm-specific remark (ring points, slot moves, range splits...).
    pub note: String,
}

/// One cluster change and what every algorithm did.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Step {
    /// 1-based step number.
    pub index: usize,
    /// The change, e.g. `add 1`.
    pub event: String,
    /// Nodes before.
    pub nodes_before: usize,
    /// Nodes after.
    pub nodes_after: usize,
    /// The ideal moved fraction: the total-variation distance between the
    /// weight shares before and after (see [`AlgoResult::ideal`]).
    pub ideal: f64,
    /// One entry per algorithm, in configuration order.
    pub results: Vec<AlgoResult>,
}

impl Step {
    /// The result of `alg` in this step.
    pub fn result(&self, alg: Algorithm) -> Option<&AlgoResult> {
        self.results.iter().find(|r| r.algorithm == alg)
    }
}

/// Totals over all steps, per algorithm.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Summary {
    /// The algorithm.
    pub algorithm: Algorithm,
    /// Sum of moved fractions over the steps (data copied in total).
    pub moved: f64,
    /// Sum of the steps' ideal fractions.
    pub ideal: f64,
    /// Sum of moves between unchanged nodes.
    pub between_survivors: f64,
    /// Worst peak-to-mean after any step.
    pub worst_peak_to_mean: f64,
}

/// The whole simulation result, with three renderings.
///
/// ```
/// use ringleader_ring::sim::{self, Algorithm, SimConfig};
/// let report = sim::run(&SimConfig { keys: 2_000, algorithms: vec![Algorithm::Slots], ..SimConfig::default() })?;
/// assert!(report.to_table().contains("slots"));
/// assert!(report.to_csv().starts_with("step,event"));
/// assert!(report.to_json().contains("\"moved\""));
/// assert_eq!(report.summary[0].between_survivors, 0.0);
/// # Ok::<(), ringleader_ring::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Report {
    /// What was simulated.
    pub config: SimConfig,
    /// Distinct keys (equals `keys` for uniform; fewer for Zipf).
    pub distinct_keys: usize,
    /// One entry per cluster change.
    pub steps: Vec<Step>,
    /// Totals per algorithm over all steps.
    pub summary: Vec<Summary>,
}

fn pct(x: f64) -> String {
    format!("{:.2}%", x * 100.0)
}

fn opt(x: Option<f64>, digits: usize) -> String {
    x.map_or_else(|| "-".to_string(), |v| format!("{v:.digits$}"))
}

impl Report {
    pub(crate) fn new(config: SimConfig, distinct_keys: usize, steps: Vec<Step>) -> Self {
        let summary = config
            .algorithms
            .iter()
            .map(|&alg| {
                let rs: Vec<&AlgoResult> = steps.iter().filter_map(|s| s.result(alg)).collect();
                Summary {
                    algorithm: alg,
                    moved: rs.iter().map(|r| r.moved).sum(),
                    ideal: rs.iter().map(|r| r.ideal).sum(),
                    between_survivors: rs.iter().map(|r| r.between_survivors).sum(),
                    worst_peak_to_mean: rs.iter().map(|r| r.peak_to_mean_after).fold(0.0, f64::max),
                }
            })
            .collect();
        Self {
            config,
            distinct_keys,
            steps,
            summary,
        }
    }

    /// A human-readable table per step (plus totals when there are several steps).
    pub fn to_table(&self) -> String {
        let c = &self.config;
        let mut out = String::new();
        let _ = writeln!(
            out,
            "{} keys ({} distinct, {}), {} vnodes, {} slots, seed {}",
            c.keys, self.distinct_keys, c.distribution, c.vnodes, c.slots, c.seed
        );
        for s in &self.steps {
            let _ = writeln!(
                out,
                "\nstep {}: {} ({} -> {} nodes), ideal moved {}",
                s.index,
                s.event,
                s.nodes_before,
                s.nodes_after,
                pct(s.ideal)
            );
            let _ = writeln!(
                out,
                "{:<11} {:>8} {:>11} {:>10} {:>15} {:>15} {:>10} {:>10} {:>11}  note",
                "algorithm",
                "moved",
                "moved/ideal",
                "survivors",
                "peak/mean",
                "stddev/mean",
                "lookup ns",
                "build µs",
                "bytes/node"
            );
            for r in &s.results {
                let _ = writeln!(
                    out,
                    "{:<11} {:>8} {:>11} {:>10} {:>15} {:>15} {:>10} {:>10} {:>11.0}  {}",
                    r.algorithm.name(),
                    pct(r.moved),
                    opt(r.moved_over_ideal, 3),
                    pct(r.between_survivors),
                    format!(
                        "{:.3} -> {:.3}",
                        r.peak_to_mean_before, r.peak_to_mean_after
                    ),
                    format!("{:.3} -> {:.3}", r.cv_before, r.cv_after),
                    opt(r.lookup_ns, 1),
                    opt(r.build_us, 0),
                    r.bytes_per_node,
                    r.note
                );
            }
        }
        if self.steps.len() > 1 {
            let _ = writeln!(out, "\ntotal over {} steps", self.steps.len());
            let _ = writeln!(
                out,
                "{:<11} {:>9} {:>9} {:>11} {:>10} {:>15}",
                "algorithm", "moved", "ideal", "moved/ideal", "survivors", "worst peak/mean"
            );
            for t in &self.summary {
                let ratio = if t.ideal > 0.0 {
                    Some(t.moved / t.ideal)
                } else {
                    None
                };
                let _ = writeln!(
                    out,
                    "{:<11} {:>9} {:>9} {:>11} {:>10} {:>15.3}",
                    t.algorithm.name(),
                    pct(t.moved),
                    pct(t.ideal),
                    opt(ratio, 3),
                    pct(t.between_survivors),
                    t.worst_peak_to_mean
                );
            }
        }
        // No trailing spaces when a row has no note.
        out.lines()
            .map(str::trim_end)
            .collect::<Vec<_>>()
            .join("\n")
            + "\n"
    }

    /// Pretty JSON of the whole report (config, steps, summary).
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).unwrap_or_else(|e| format!("{{\"error\": \"{e}\"}}"))
    }

    /// CSV, one row per (step, algorithm), with a header row.
    pub fn to_csv(&self) -> String {
        let mut out = String::from(
            "step,event,nodes_before,nodes_after,algorithm,moved,ideal,moved_over_ideal,between_survivors,\
             peak_to_mean_before,peak_to_mean_after,cv_before,cv_after,lookup_ns,build_us,bytes_per_node,note\n",
        );
        let o = |x: Option<f64>| x.map_or_else(String::new, |v| format!("{v}"));
        for s in &self.steps {
            for r in &s.results {
                let _ = writeln!(
                    out,
                    "{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},\"{}\"",
                    s.index,
                    s.event,
                    s.nodes_before,
                    s.nodes_after,
                    r.algorithm.name(),
                    r.moved,
                    r.ideal,
                    o(r.moved_over_ideal),
                    r.between_survivors,
                    r.peak_to_mean_before,
                    r.peak_to_mean_after,
                    r.cv_before,
                    r.cv_after,
                    o(r.lookup_ns),
                    o(r.build_us),
                    r.bytes_per_node,
                    r.note.replace('"', "\"\"")
                );
            }
        }
        out
    }
}
