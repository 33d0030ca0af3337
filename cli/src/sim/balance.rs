//! `ringleader sim balance`: latency simulation of balancing strategies (table or JSON; optional SVG plot).
use super::plot;
use crate::{usage, CliError};
use ringleader_balancer::sim::{simulate, Scenario};
use ringleader_balancer::StrategyKind;
use std::path::PathBuf;
use std::time::Duration;

/// Arguments of `ringleader sim balance`.
#[derive(Debug, clap::Args)]
pub struct BalanceArgs {
    /// Scenario to simulate: slow-backend | heterogeneous | uniform.
    #[arg(long, default_value = "slow-backend")]
    pub scenario: String,
    /// Output format: table | json.
    #[arg(long, default_value = "table")]
    pub format: String,
    /// Strategies to compare, comma-separated (default: all seven).
    #[arg(long, value_delimiter = ',')]
    pub strategies: Vec<String>,
    /// Seed of every random draw (same seed, same result).
    #[arg(long, default_value_t = 1, allow_negative_numbers = true)]
    pub seed: u64,
    /// Virtual seconds of arrivals, at most 3600 (slow periods scale along).
    #[arg(long, default_value_t = 60.0, allow_negative_numbers = true)]
    pub duration: f64,
    /// Bounded-load epsilon for consistent_hash (e.g. 0.25); plain consistent hashing if absent.
    #[arg(long, allow_negative_numbers = true)]
    pub bounded_load: Option<f64>,
    /// Also write an SVG plot to this file: latency percentiles and backend shares per strategy.
    #[arg(long, value_name = "FILE")]
    pub svg: Option<PathBuf>,
}

/// Run `ringleader sim balance`.
pub fn run(args: BalanceArgs) -> Result<(), CliError> {
    let format = args.format.as_str();
    if !matches!(format, "table" | "json") {
        return Err(usage(
            "--format",
            format!("unknown `{format}`: expected table or json"),
        ));
    }
    if !(args.duration.is_finite() && args.duration > 0.0 && args.duration <= 3_600.0) {
        return Err(usage(
            "--duration",
            format!(
                "must be more than 0 and at most 3600 seconds, got {}",
                args.duration
            ),
        ));
    }
    let strategies = if args.strategies.is_empty() {
        StrategyKind::ALL.to_vec()
    } else {
        args.strategies
            .iter()
            .map(|s| s.parse::<StrategyKind>())
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| usage("--strategies", e))?
    };
    let mut scenario = Scenario::by_name(&args.scenario)
        .map_err(|e| usage("--scenario", e))?
        .with_duration(Duration::from_secs_f64(args.duration))
        .with_seed(args.seed);
    scenario.config.bounded_load = args.bounded_load;
    // Of the settings checked here only bounded_load comes from the command line.
    scenario.config.validate().map_err(|e| match e {
        ringleader_balancer::Error::InvalidConfig {
            field: "bounded_load",
            reason,
        } => usage("--bounded-load", reason),
        other => other.into(),
    })?;
    let report = simulate(&scenario, &strategies)?;
    // The plot first: `ringleader sim balance --svg p.svg | head` still writes it.
    if let Some(path) = &args.svg {
        plot::write_balance_svg(&report, path)
            .map_err(|e| format!("cannot write plot {}: {e}", path.display()))?;
        tracing::info!(path = %path.display(), "plot written");
    }
    let text = match format {
        "json" => serde_json::to_string_pretty(&report)? + "\n",
        _ => report.to_table(),
    };
    crate::out::stdout(|out| Ok(out.write_all(text.as_bytes())?))
}
