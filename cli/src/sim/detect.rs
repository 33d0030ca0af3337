//! `ringleader sim detect`: failure-detection simulation, rise/fall against φ accrual (table or JSON; optional SVG of time to detect against false downs).
use std::path::{Path, PathBuf};

use plotters::prelude::*;
use ringleader_balancer::detector::sim::{self, Report, Scenario, SimConfig};

use crate::{usage, CliError};

/// Arguments of `ringleader sim detect`.
#[derive(Debug, clap::Args)]
pub struct DetectArgs {
    /// Scenarios, comma-separated: steady, jitter, gc, loss, mixed (default: all).
    #[arg(long, value_delimiter = ',')]
    pub scenarios: Vec<String>,
    /// Hours of healthy simulated time per scenario (false suspicions and downs per hour).
    #[arg(long, default_value_t = 48.0, allow_negative_numbers = true)]
    pub hours: f64,
    /// Crash trials per scenario (time to detect), 1 to 100000, half refusing connections,
    /// half silent.
    #[arg(long, default_value_t = 200, allow_negative_numbers = true)]
    pub trials: u32,
    /// Seed of every random draw (same seed, same result).
    #[arg(long, default_value_t = 1, allow_negative_numbers = true)]
    pub seed: u64,
    /// Scenario of the comparison against rise/fall's defaults, and of the plot.
    #[arg(long, default_value = "mixed")]
    pub goal_scenario: String,
    /// Output format: table | json.
    #[arg(long, default_value = "table")]
    pub format: String,
    /// Also write an SVG plot (time to detect against false downs per hour) to this file.
    #[arg(long, value_name = "FILE")]
    pub svg: Option<PathBuf>,
}

/// Run `ringleader sim detect`.
pub fn run(args: DetectArgs) -> Result<(), CliError> {
    let format = args.format.as_str();
    if !matches!(format, "table" | "json") {
        return Err(usage(
            "--format",
            format!("unknown `{format}`: expected table or json"),
        ));
    }
    // No trials, no time to detect: its mean and p99 would be NaN.
    if !(1..=100_000).contains(&args.trials) {
        return Err(usage(
            "--trials",
            format!("must be within 1..=100000, got {}", args.trials),
        ));
    }
    let goal_scenario =
        Scenario::by_name(&args.goal_scenario).map_err(|e| scenario_error("--goal-scenario", e))?;
    let mut scenarios = if args.scenarios.is_empty() {
        Scenario::ALL.to_vec()
    } else {
        args.scenarios
            .iter()
            .map(|s| Scenario::by_name(s))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| scenario_error("--scenarios", e))?
    };
    if !scenarios.contains(&goal_scenario) {
        scenarios.push(goal_scenario);
    }
    let config = SimConfig {
        scenarios,
        hours: args.hours,
        trials: args.trials,
        seed: args.seed,
        goal_scenario,
        ..SimConfig::default()
    };
    let report = sim::simulate(&config).map_err(|e| match e {
        // The simulator checks `hours` first; its other settings are not the command line's.
        ringleader_balancer::Error::InvalidConfig {
            field: "hours",
            reason,
        } => usage("--hours", reason),
        other => other.into(),
    })?;
    if let Some(path) = &args.svg {
        write_svg(&report, goal_scenario, path)
            .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    }
    let text = match format {
        "json" => serde_json::to_string_pretty(&report)? + "\n",
        _ => report.to_table(),
    };
    crate::out::stdout(|out| Ok(out.write_all(text.as_bytes())?))
}

/// A usage error for `flag` from the simulator's complaint about a scenario name, with its
/// reason alone (its own label is the field's name, `scenario`).
fn scenario_error(flag: &'static str, e: ringleader_balancer::Error) -> CliError {
    match e {
        ringleader_balancer::Error::InvalidConfig { reason, .. } => usage(flag, reason),
        other => usage(flag, other),
    }
}

/// A fixed colour per curve.
fn color(curve: &str) -> RGBColor {
    match curve {
        "accrual phi" => RGBColor(214, 39, 40),
        "accrual confirm" => RGBColor(255, 127, 14),
        "rise_fall 1s" => RGBColor(158, 202, 225),
        "rise_fall 2s" => RGBColor(49, 130, 189),
        "rise_fall 5s" => RGBColor(8, 48, 107),
        _ => RGBColor(127, 127, 127),
    }
}

/// Mean time to detect (x) against false downs per hour (y, log; zero drawn at the
/// floor), one curve per detector and swept setting (rise/fall: per interval,
/// over fall = 1..6; accrual: over φ thresholds, and over `confirm`), defaults ringed.
fn write_svg(
    report: &Report,
    scenario: Scenario,
    path: &Path,
) -> Result<(), Box<dyn std::error::Error>> {
    let rows: Vec<_> = report
        .rows
        .iter()
        .filter(|r| r.scenario == scenario.name() && r.detect_mean_s.is_finite())
        .collect();
    if rows.is_empty() {
        return Err("nothing to plot".into());
    }
    let floor = 0.5 / report.hours;
    let y = |v: f64| v.max(floor);
    let xmax = rows.iter().map(|r| r.detect_mean_s).fold(1.0, f64::max) * 1.1;
    let ymax = rows
        .iter()
        .map(|r| y(r.false_downs_per_hour))
        .fold(floor * 10.0, f64::max)
        * 2.0;
    let root = SVGBackend::new(path, (1000, 640)).into_drawing_area();
    root.fill(&WHITE)?;
    let title = format!(
        "Failure detection on `{}`: {} h healthy, {} crash trials (seed {})",
        scenario.name(),
        report.hours,
        report.trials,
        report.seed
    );
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 22))
        .margin(20)
        .x_label_area_size(50)
        .y_label_area_size(90)
        .build_cartesian_2d(0f64..xmax, (floor / 1.5..ymax).log_scale())?;
    chart
        .configure_mesh()
        .x_desc("mean time to detect a crash (s)")
        .y_desc(format!("false downs per hour (0 drawn at {:.3})", floor))
        .axis_desc_style(("sans-serif", 17))
        .label_style(("sans-serif", 14))
        .draw()?;
    let mut curves: Vec<&str> = Vec::new();
    for r in &rows {
        if !curves.contains(&r.curve.as_str()) {
            curves.push(&r.curve);
        }
    }
    for curve in curves {
        let col = color(curve);
        let mut pts: Vec<(f64, f64, bool, &str)> = rows
            .iter()
            // The default accrual point ends both accrual curves.
            .filter(|r| {
                r.curve == curve
                    || (curve == "accrual confirm" && r.detector == "accrual" && r.default)
            })
            .map(|r| {
                (
                    r.detect_mean_s,
                    y(r.false_downs_per_hour),
                    // Ring and label the default once, on its own curve.
                    r.default && r.curve == curve,
                    r.setting.as_str(),
                )
            })
            .collect();
        pts.sort_by(|a, b| a.0.total_cmp(&b.0));
        chart
            .draw_series(
                LineSeries::new(pts.iter().map(|p| (p.0, p.1)), col.stroke_width(3)).point_size(4),
            )?
            .label(curve)
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], col.stroke_width(3)));
        for p in pts.iter().filter(|p| p.2) {
            chart.draw_series(std::iter::once(Circle::new(
                (p.0, p.1),
                9,
                col.stroke_width(2),
            )))?;
            chart.draw_series(std::iter::once(Text::new(
                format!("default ({})", p.3),
                (p.0, p.1 * 1.35),
                ("sans-serif", 14).into_font().color(&BLACK),
            )))?;
        }
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperRight)
        .label_font(("sans-serif", 15))
        .background_style(WHITE.mix(0.9))
        .border_style(BLACK)
        .draw()?;
    root.present()?;
    Ok(())
}
