//! `ringleader sim reshard`: key-migration simulation (table, JSON or CSV; optional SVG plot).
use std::path::PathBuf;

use ringleader_ring::sim::{self, Algorithm, Event, KeyDistribution, SimConfig, SwitchConfig};

use super::plot;
use crate::{usage, CliError};

/// Output format of `ringleader sim reshard`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// Aligned table per step.
    Table,
    /// The whole report as JSON.
    Json,
    /// One CSV row per step and algorithm.
    Csv,
}

/// Arguments of `ringleader sim reshard`.
///
/// Events run in this order: `--remove`, `--weight`, `--add`, `--grow-to`,
/// `--shrink-to`; with none of them the simulation adds one node.
///
/// With `--from`, it simulates switching placement instead: the same nodes
/// (with `--weight`) and keys placed by `--from` and by each of `--to`, and
/// the fraction of keys and of load that would move.
#[derive(Debug, clap::Args)]
pub struct ReshardArgs {
    /// Nodes before the change (named node-0, node-1, ...; weight 1).
    #[arg(long, default_value_t = 10, allow_negative_numbers = true)]
    pub nodes: usize,
    /// Add this many nodes in one step.
    #[arg(long, value_name = "K", allow_negative_numbers = true)]
    pub add: Option<usize>,
    /// Remove this many nodes in one step (victims picked by the seeded RNG).
    #[arg(long, value_name = "K", allow_negative_numbers = true)]
    pub remove: Option<usize>,
    /// Change a node's weight, e.g. `--weight 3=2` sets node-3 to weight 2 (repeatable).
    #[arg(long, value_name = "NODE=WEIGHT", value_parser = parse_weight)]
    pub weight: Vec<(u32, u32)>,
    /// Grow one node at a time up to this many nodes (one step per node).
    #[arg(long, value_name = "N", allow_negative_numbers = true)]
    pub grow_to: Option<usize>,
    /// Shrink one node at a time down to this many nodes (one step per node).
    #[arg(long, value_name = "N", allow_negative_numbers = true)]
    pub shrink_to: Option<usize>,
    /// Keys (uniform) or requests drawn (zipf).
    #[arg(long, default_value_t = 1_000_000, allow_negative_numbers = true)]
    pub keys: usize,
    /// Switch placement instead of resizing: the placement in use now (nginx, ketama,
    /// redis or any of the algorithms), compared with each of `--to`.
    #[arg(long, value_name = "ALG")]
    pub from: Option<String>,
    /// With `--from`: comma-separated placements to switch to.
    #[arg(long, value_name = "ALGS", requires = "from")]
    pub to: Option<String>,
    /// Comma-separated algorithms, or `all`: ring, jump, maglev, rendezvous, modulo, slots, range
    /// (`all`), and the compatible nginx, ketama, redis.
    #[arg(long, default_value = "all")]
    pub algorithms: String,
    /// Ring virtual nodes per unit of weight.
    #[arg(long, default_value_t = 160, allow_negative_numbers = true)]
    pub vnodes: u32,
    /// Slot count for `slots`.
    #[arg(long, default_value_t = 16384, allow_negative_numbers = true)]
    pub slots: usize,
    /// Target ranges per node for `range`.
    #[arg(long, default_value_t = 16, allow_negative_numbers = true)]
    pub ranges_per_node: usize,
    /// Key distribution: `uniform`, `zipf` (s = 1.1) or `zipf:<s>`.
    #[arg(long, default_value = "uniform")]
    pub distribution: String,
    /// RNG seed (Zipf draws, removal victims).
    #[arg(long, default_value_t = 1, allow_negative_numbers = true)]
    pub seed: u64,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Table)]
    pub format: Format,
    /// Also write an SVG plot to this file.
    #[arg(long, value_name = "FILE")]
    pub plot: Option<PathBuf>,
    /// Leave out lookup and build timings (fully reproducible output).
    #[arg(long)]
    pub no_timing: bool,
}

fn parse_weight(s: &str) -> Result<(u32, u32), String> {
    let (node, weight) = s
        .split_once('=')
        .ok_or_else(|| format!("{s:?}: expected NODE=WEIGHT, e.g. 3=2"))?;
    let node = node.trim().trim_start_matches("node-");
    let node: u32 = node
        .parse()
        .map_err(|_| format!("{s:?}: node {node:?} is not a number"))?;
    let weight: u32 = weight
        .trim()
        .parse()
        .map_err(|_| format!("{s:?}: weight {weight:?} is not a whole number"))?;
    if weight == 0 {
        return Err(format!(
            "{s:?}: weight must be at least 1 (use --remove to drop a node)"
        ));
    }
    Ok((node, weight))
}

impl ReshardArgs {
    /// The library configuration these arguments describe.
    pub fn to_config(&self) -> Result<SimConfig, CliError> {
        let mut events = Vec::new();
        if let Some(k) = self.remove {
            events.push(Event::Remove(k));
        }
        for &(node, weight) in &self.weight {
            events.push(Event::SetWeight { node, weight });
        }
        if let Some(k) = self.add {
            events.push(Event::Add(k));
        }
        if let Some(n) = self.grow_to {
            events.push(Event::GrowTo(n));
        }
        if let Some(n) = self.shrink_to {
            events.push(Event::ShrinkTo(n));
        }
        if events.is_empty() {
            events.push(Event::Add(1));
        }
        let distribution: KeyDistribution = self
            .distribution
            .parse()
            .map_err(|e| flag_error("--distribution", e))?;
        let config = SimConfig {
            algorithms: Algorithm::parse_list(&self.algorithms)
                .map_err(|e| flag_error("--algorithms", e))?,
            nodes: self.nodes,
            keys: self.keys,
            vnodes: self.vnodes,
            slots: self.slots,
            ranges_per_node: self.ranges_per_node,
            distribution,
            events,
            seed: self.seed,
            measure_time: !self.no_timing,
        };
        config.validate().map_err(settings_error)?;
        Ok(config)
    }
}

impl ReshardArgs {
    /// With `--from`: the placement-switch simulation these arguments describe.
    pub fn to_switch_config(&self) -> Result<Option<SwitchConfig>, CliError> {
        let Some(from) = &self.from else {
            return Ok(None);
        };
        if self.add.is_some()
            || self.remove.is_some()
            || self.grow_to.is_some()
            || self.shrink_to.is_some()
        {
            return Err(usage(
                "--from",
                "compares placements over the same nodes: \
                 --add, --remove, --grow-to and --shrink-to do not apply (--weight does)",
            ));
        }
        if self.plot.is_some() {
            return Err(usage("--plot", "--plot is not available with --from"));
        }
        let config = SwitchConfig {
            from: from.trim().parse().map_err(|e| flag_error("--from", e))?,
            to: Algorithm::parse_list(self.to.as_deref().unwrap_or("ring"))
                .map_err(|e| flag_error("--to", e))?,
            nodes: self.nodes,
            weights: self.weight.clone(),
            keys: self.keys,
            distribution: self.distribution.parse()?,
            vnodes: self.vnodes,
            slots: self.slots,
            ranges_per_node: self.ranges_per_node,
            seed: self.seed,
        };
        config.validate().map_err(settings_error)?;
        Ok(Some(config))
    }
}

/// A usage error for `flag` from the simulator's complaint `e`: its reason alone when it
/// has one (the simulator's own label is its field's name, not the flag's).
fn flag_error(flag: &'static str, e: ringleader_ring::Error) -> CliError {
    match e {
        ringleader_ring::Error::InvalidParameter { reason, .. } => usage(flag, reason),
        other => usage(flag, other),
    }
}

/// The flag behind a simulator error about its settings or events, if it is one: those are
/// bad arguments (exit status 2), anything else a runtime failure.
fn flag_of(e: &ringleader_ring::Error) -> Option<&'static str> {
    use ringleader_ring::Error as E;
    Some(match e {
        E::InvalidParameter { what, reason } => match *what {
            "nodes" => "--nodes",
            "keys" => "--keys",
            "algorithms" => "--algorithms",
            "ranges per node" => "--ranges-per-node",
            "distribution" => "--distribution",
            "to" => "--to",
            // The events' reasons start with the event: "grow to 5: ...", "add 0: ...".
            "event" => [
                ("grow to", "--grow-to"),
                ("shrink to", "--shrink-to"),
                ("add", "--add"),
                ("remove", "--remove"),
            ]
            .into_iter()
            .find_map(|(event, flag)| reason.starts_with(event).then_some(flag))?,
            _ => return None,
        },
        E::ZeroVnodes | E::TooManyPoints { .. } => "--vnodes",
        E::InvalidSlotCount { .. } => "--slots",
        E::UnknownNode { .. } | E::ZeroWeight { .. } => "--weight",
        _ => return None,
    })
}

/// `e` as a usage error naming its flag when it is about one, else as it is.
fn settings_error(e: ringleader_ring::Error) -> CliError {
    match flag_of(&e) {
        Some(flag) => flag_error(flag, e),
        None => e.into(),
    }
}

/// Run `ringleader sim reshard`.
pub fn run(args: ReshardArgs) -> Result<(), CliError> {
    if let Some(config) = args.to_switch_config()? {
        let report = sim::switch(&config).map_err(settings_error)?;
        let text = match args.format {
            Format::Table => report.to_table(),
            Format::Json => report.to_json() + "\n",
            Format::Csv => report.to_csv(),
        };
        return crate::out::stdout(|out| Ok(out.write_all(text.as_bytes())?));
    }
    let config = args.to_config()?;
    // The events are checked against the cluster as it changes, while the simulation runs.
    let report = sim::run(&config).map_err(settings_error)?;
    // The plot first: `ringleader sim reshard --plot p.svg | head` still writes it.
    if let Some(path) = &args.plot {
        plot::write_svg(&report, path)
            .map_err(|e| format!("cannot write plot {}: {e}", path.display()))?;
        tracing::info!(path = %path.display(), "plot written");
    }
    let text = match args.format {
        Format::Table => report.to_table(),
        Format::Json => report.to_json() + "\n",
        Format::Csv => report.to_csv(),
    };
    crate::out::stdout(|out| Ok(out.write_all(text.as_bytes())?))
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    fn args(extra: &[&str]) -> Result<ReshardArgs, clap::Error> {
        let mut argv = vec!["ringleader", "sim", "reshard"];
        argv.extend_from_slice(extra);
        let cli = crate::Cli::try_parse_from(argv)?;
        match cli.command {
            crate::Command::Sim(crate::sim::SimCommand::Reshard(a)) => Ok(a),
            other => panic!("unexpected command {other:?}"),
        }
    }

    #[test]
    fn bad_input_is_a_clear_error() {
        let err = args(&["--nodes", "0"]).unwrap().to_config().unwrap_err();
        assert!(err.to_string().contains("at least 1 node"), "{err}");
        let err = args(&["--algorithms", "ring,chord"])
            .unwrap()
            .to_config()
            .unwrap_err();
        assert!(
            err.to_string().contains("unknown algorithm \"chord\""),
            "{err}"
        );
        let err = args(&["--distribution", "zipf:-1"])
            .unwrap()
            .to_config()
            .unwrap_err();
        assert!(err.to_string().contains("zipf exponent"), "{err}");
        assert!(args(&["--weight", "3=0"]).is_err());
        assert!(args(&["--weight", "x"]).is_err());
        assert!(args(&["--format", "xml"]).is_err());
    }

    #[test]
    fn events_follow_the_documented_order() {
        let a = args(&[
            "--add",
            "2",
            "--remove",
            "1",
            "--weight",
            "node-3=4",
            "--grow-to",
            "20",
        ])
        .unwrap();
        let c = a.to_config().unwrap();
        assert_eq!(
            c.events,
            vec![
                Event::Remove(1),
                Event::SetWeight { node: 3, weight: 4 },
                Event::Add(2),
                Event::GrowTo(20)
            ]
        );
        assert_eq!(
            args(&[]).unwrap().to_config().unwrap().events,
            vec![Event::Add(1)]
        );
    }

    #[test]
    fn from_to_switches_placement_over_the_same_nodes() {
        let a = args(&[
            "--from",
            "nginx",
            "--to",
            "nginx,ring,ketama",
            "--weight",
            "2=3",
        ])
        .unwrap();
        let c = a.to_switch_config().unwrap().unwrap();
        assert_eq!(c.from, Algorithm::Nginx);
        assert_eq!(
            c.to,
            vec![Algorithm::Nginx, Algorithm::Ring, Algorithm::Ketama]
        );
        assert_eq!(c.weights, vec![(2, 3)]);
        let r = sim::switch(&SwitchConfig { keys: 5_000, ..c }).unwrap();
        assert_eq!(r.results[0].moved_keys, 0.0);
        assert!(r.results[1].moved_keys > 0.8);
        // --to defaults to ring; no --from, no switch.
        let c = args(&["--from", "ketama"])
            .unwrap()
            .to_switch_config()
            .unwrap()
            .unwrap();
        assert_eq!(c.to, vec![Algorithm::Ring]);
        assert!(args(&[]).unwrap().to_switch_config().unwrap().is_none());
        // --to needs --from; resize events and bad names are errors.
        assert!(args(&["--to", "ring"]).is_err());
        let err = args(&["--from", "nginx", "--add", "1"])
            .unwrap()
            .to_switch_config()
            .unwrap_err();
        assert!(err.to_string().contains("--add"), "{err}");
        let err = args(&["--from", "haproxy"])
            .unwrap()
            .to_switch_config()
            .unwrap_err();
        assert!(err.to_string().contains("unknown algorithm"), "{err}");
    }

    #[test]
    fn plot_is_written() {
        let dir = std::env::temp_dir().join(format!("ringleader-plot-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("reshard.svg");
        let mut a = args(&[
            "--keys",
            "5000",
            "--nodes",
            "4",
            "--grow-to",
            "6",
            "--no-timing",
        ])
        .unwrap();
        a.plot = Some(path.clone());
        let report = sim::run(&a.to_config().unwrap()).unwrap();
        plot::write_svg(&report, &path).unwrap();
        let svg = std::fs::read_to_string(&path).unwrap();
        assert!(svg.starts_with("<svg"));
        assert!(svg.contains("ideal"));
        assert!(svg.contains("rendezvous"));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
