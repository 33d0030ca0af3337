//! SVG plot of a reshard simulation: keys moved against the ideal, and load spread.
use std::path::Path;

use plotters::prelude::*;
use ringleader_ring::sim::{Algorithm, Report};

type PlotResult = Result<(), Box<dyn std::error::Error>>;

/// A fixed colour per algorithm, so plots compare across runs.
fn color(alg: Algorithm) -> RGBColor {
    match alg {
        Algorithm::Ring => RGBColor(31, 119, 180),
        Algorithm::Jump => RGBColor(255, 127, 14),
        Algorithm::Maglev => RGBColor(44, 160, 44),
        Algorithm::Rendezvous => RGBColor(148, 103, 189),
        Algorithm::Modulo => RGBColor(214, 39, 40),
        Algorithm::Slots => RGBColor(140, 86, 75),
        Algorithm::Range => RGBColor(23, 190, 207),
        _ => RGBColor(127, 127, 127),
    }
}

const IDEAL: RGBColor = RGBColor(0, 0, 0);

/// Write the plot: bars for a single step, lines over the steps otherwise.
pub(super) fn write_svg(report: &Report, path: &Path) -> PlotResult {
    let root = SVGBackend::new(path, (1400, 620)).into_drawing_area();
    root.fill(&WHITE)?;
    let c = &report.config;
    let first = report.steps.first().ok_or("no steps to plot")?;
    let last = report.steps.last().ok_or("no steps to plot")?;
    let what = if report.steps.len() == 1 {
        first.event.clone()
    } else {
        format!("{} steps", report.steps.len())
    };
    let title = format!(
        "Reshard {} -> {} nodes ({}): {} keys, {}, ring with {} vnodes",
        first.nodes_before,
        last.nodes_after,
        what,
        thousands(c.keys),
        c.distribution,
        c.vnodes
    );
    let root = root.titled(&title, ("sans-serif", 26))?;
    let (left, right) = root.split_horizontally(700);
    if report.steps.len() == 1 {
        let moved: Vec<f64> = first.results.iter().map(|r| r.moved).collect();
        bars(
            &left,
            report,
            "Keys moved, per algorithm",
            "share of keys that changed node",
            &[BarSeries {
                label: "moved",
                alpha: 1.0,
                values: moved,
            }],
            Some(first.ideal),
            true,
            SeriesLabelPosition::UpperLeft,
        )?;
        let excess = |f: fn(&ringleader_ring::sim::AlgoResult) -> f64| -> Vec<f64> {
            first
                .results
                .iter()
                .map(|r| (f(r) - 1.0).max(0.0))
                .collect()
        };
        bars(
            &right,
            report,
            "Busiest node's load above the mean (0% = perfectly even)",
            "peak-to-mean load - 1",
            &[
                BarSeries {
                    label: "before",
                    alpha: 0.35,
                    values: excess(|r| r.peak_to_mean_before),
                },
                BarSeries {
                    label: "after",
                    alpha: 1.0,
                    values: excess(|r| r.peak_to_mean_after),
                },
            ],
            None,
            true,
            SeriesLabelPosition::UpperRight,
        )?;
    } else {
        lines(
            &left,
            report,
            "Keys moved per step (dashed: ideal)",
            "share of keys moved",
            |r| r.moved,
            Some(|s: &ringleader_ring::sim::Step| s.ideal),
            true,
        )?;
        lines(
            &right,
            report,
            "Load spread after each step: busiest / mean",
            "peak-to-mean load",
            |r| r.peak_to_mean_after,
            None,
            false,
        )?;
    }
    root.present()?;
    Ok(())
}

/// `1234567` -> `1,234,567`.
fn thousands(n: usize) -> String {
    let digits = n.to_string();
    let groups: Vec<&str> = digits
        .as_bytes()
        .rchunks(3)
        .rev()
        .map(|g| std::str::from_utf8(g).unwrap_or("?"))
        .collect();
    groups.join(",")
}

fn fmt_value(v: f64, percent: bool) -> String {
    if percent {
        format!("{:.1}%", v * 100.0)
    } else {
        format!("{v:.2}")
    }
}

/// One bar per algorithm and series, grouped by algorithm on the x axis.
struct BarSeries<'a> {
    label: &'a str,
    /// Colour strength: 1.0 solid, lower is lighter.
    alpha: f64,
    values: Vec<f64>,
}

#[allow(clippy::too_many_arguments)]
fn bars<DB: DrawingBackend>(
    area: &DrawingArea<DB, plotters::coord::Shift>,
    report: &Report,
    caption: &str,
    y_desc: &str,
    series: &[BarSeries<'_>],
    ideal: Option<f64>,
    percent: bool,
    legend_pos: SeriesLabelPosition,
) -> PlotResult
where
    DB::ErrorType: 'static,
{
    let step = &report.steps[0];
    let n = step.results.len();
    let top = series
        .iter()
        .flat_map(|s| s.values.iter().copied())
        .fold(ideal.unwrap_or(0.0), f64::max);
    let ymax = if top > 0.0 { top * 1.2 } else { 0.01 };
    let mut chart = ChartBuilder::on(area)
        .caption(caption, ("sans-serif", 20))
        .margin(20)
        .x_label_area_size(50)
        .y_label_area_size(80)
        .build_cartesian_2d(-0.5f64..(n as f64 - 0.5), 0f64..ymax)?;
    let names: Vec<&str> = step.results.iter().map(|r| r.algorithm.name()).collect();
    chart
        .configure_mesh()
        .disable_x_mesh()
        .x_labels(n + 1)
        .x_desc("algorithm")
        .y_desc(y_desc)
        .axis_desc_style(("sans-serif", 18))
        .label_style(("sans-serif", 15))
        .x_label_formatter(&|x| {
            let i = x.round();
            if (x - i).abs() < 1e-6 && i >= 0.0 {
                names
                    .get(i as usize)
                    .map(|s| s.to_string())
                    .unwrap_or_default()
            } else {
                String::new()
            }
        })
        .y_label_formatter(&|y| fmt_value(*y, percent))
        .draw()?;
    let group = 0.76;
    let width = group / series.len() as f64;
    let label_style =
        ("sans-serif", 14)
            .into_font()
            .color(&BLACK)
            .pos(plotters::style::text_anchor::Pos::new(
                plotters::style::text_anchor::HPos::Center,
                plotters::style::text_anchor::VPos::Bottom,
            ));
    for (k, s) in series.iter().enumerate() {
        for (i, r) in step.results.iter().enumerate() {
            let col = color(r.algorithm).mix(s.alpha);
            let x0 = i as f64 - group / 2.0 + k as f64 * width;
            let v = s.values[i];
            chart.draw_series(std::iter::once(Rectangle::new(
                [(x0 + 0.01, 0.0), (x0 + width - 0.01, v)],
                col.filled(),
            )))?;
            chart.draw_series(std::iter::once(Text::new(
                fmt_value(v, percent),
                (x0 + width / 2.0, v + ymax * 0.008),
                label_style.clone(),
            )))?;
        }
        if series.len() > 1 {
            let alpha = s.alpha;
            chart
                .draw_series(std::iter::empty::<Rectangle<(f64, f64)>>())?
                .label(s.label)
                .legend(move |(x, y)| {
                    Rectangle::new(
                        [(x, y - 6), (x + 14, y + 6)],
                        RGBColor(90, 90, 90).mix(alpha).filled(),
                    )
                });
        }
    }
    if let Some(ideal) = ideal {
        chart
            .draw_series(DashedLineSeries::new(
                vec![(-0.5, ideal), (n as f64 - 0.5, ideal)],
                10,
                6,
                IDEAL.stroke_width(2),
            ))?
            .label(format!("ideal ({})", fmt_value(ideal, percent)))
            .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], IDEAL.stroke_width(2)));
    }
    chart
        .configure_series_labels()
        .position(legend_pos)
        .label_font(("sans-serif", 15))
        .background_style(WHITE.mix(0.9))
        .border_style(BLACK)
        .draw()?;
    Ok(())
}

fn lines<DB: DrawingBackend>(
    area: &DrawingArea<DB, plotters::coord::Shift>,
    report: &Report,
    caption: &str,
    y_desc: &str,
    value: impl Fn(&ringleader_ring::sim::AlgoResult) -> f64,
    ideal: Option<fn(&ringleader_ring::sim::Step) -> f64>,
    percent: bool,
) -> PlotResult
where
    DB::ErrorType: 'static,
{
    let steps = &report.steps;
    let x0 = steps[0].index as f64 - 0.5;
    let x1 = steps[steps.len() - 1].index as f64 + 0.5;
    let mut all: Vec<f64> = steps
        .iter()
        .flat_map(|s| s.results.iter().map(&value))
        .collect();
    if let Some(f) = ideal {
        all.extend(steps.iter().map(f));
    } else {
        all.push(1.0);
    }
    let (lo, hi) = all
        .iter()
        .filter(|v| **v > 0.0)
        .fold((f64::INFINITY, 0f64), |(lo, hi), &v| (lo.min(v), hi.max(v)));
    let lo = if lo.is_finite() { lo } else { 1e-3 };
    let hi = hi.max(lo * 1.01);
    // Far apart (modulo next to consistent schemes): log scale, so the
    // schemes near the ideal stay distinguishable.
    let log = percent && hi / lo > 5.0;
    let labels: Vec<String> = steps
        .iter()
        .map(|s| format!("{}→{}", s.nodes_before, s.nodes_after))
        .collect();
    let x_fmt = |x: &f64| {
        let i = x.round();
        if (x - i).abs() < 1e-6 && i >= 1.0 {
            labels.get(i as usize - 1).cloned().unwrap_or_default()
        } else {
            String::new()
        }
    };
    let x_labels = steps.len().min(12);
    macro_rules! draw {
        ($chart:expr) => {{
            let mut chart = $chart;
            chart
                .configure_mesh()
                .x_desc("step (nodes before → after)")
                .y_desc(y_desc)
                .axis_desc_style(("sans-serif", 18))
                .label_style(("sans-serif", 14))
                .x_labels(x_labels)
                .x_label_formatter(&x_fmt)
                .y_label_formatter(&|y| {
                    // On a log axis only label 1, 2 and 5 times a power of ten.
                    let mantissa = *y / 10f64.powf(y.log10().floor());
                    if !log || [1.0, 2.0, 5.0].iter().any(|m| (mantissa - m).abs() < 1e-6) {
                        fmt_value(*y, percent)
                    } else {
                        String::new()
                    }
                })
                .draw()?;
            for (k, alg) in report.config.algorithms.iter().enumerate() {
                let col = color(*alg);
                let pts: Vec<(f64, f64)> = steps
                    .iter()
                    .map(|s| {
                        (
                            s.index as f64,
                            value(&s.results[k]).max(if log { lo } else { 0.0 }),
                        )
                    })
                    .collect();
                chart
                    .draw_series(LineSeries::new(pts, col.stroke_width(3)).point_size(4))?
                    .label(alg.name())
                    .legend(move |(x, y)| {
                        PathElement::new(vec![(x, y), (x + 20, y)], col.stroke_width(3))
                    });
            }
            let ideal_pts: Vec<(f64, f64)> = match ideal {
                Some(f) => steps.iter().map(|s| (s.index as f64, f(s))).collect(),
                None => vec![(x0, 1.0), (x1, 1.0)],
            };
            chart
                .draw_series(DashedLineSeries::new(
                    ideal_pts,
                    10,
                    6,
                    IDEAL.stroke_width(2),
                ))?
                .label(if ideal.is_some() {
                    "ideal"
                } else {
                    "perfect balance"
                })
                .legend(|(x, y)| {
                    PathElement::new(vec![(x, y), (x + 20, y)], IDEAL.stroke_width(2))
                });
            chart
                .configure_series_labels()
                .position(if log {
                    SeriesLabelPosition::MiddleRight
                } else {
                    SeriesLabelPosition::UpperRight
                })
                .label_font(("sans-serif", 15))
                .background_style(WHITE.mix(0.9))
                .border_style(BLACK)
                .draw()?;
        }};
    }
    let builder = |area| {
        let mut b = ChartBuilder::on(area);
        b.caption(caption, ("sans-serif", 20))
            .margin(20)
            .x_label_area_size(50)
            .y_label_area_size(80);
        b
    };
    if log {
        draw!(builder(area)
            .build_cartesian_2d(x0..x1, ((lo / 1.5)..(hi * 1.3).min(1.0)).log_scale())?);
    } else {
        let top = if percent {
            hi * 1.2
        } else {
            1.0 + (hi - 1.0).max(0.05) * 1.3
        };
        let bottom = if percent { 0.0 } else { lo.min(1.0) - 0.02 };
        draw!(builder(area).build_cartesian_2d(x0..x1, bottom..top)?);
    }
    Ok(())
}

/// A fixed colour per balancing strategy (its place in `StrategyKind::ALL`).
fn strategy_color(kind: ringleader_balancer::StrategyKind) -> RGBColor {
    const PALETTE: [RGBColor; 7] = [
        RGBColor(31, 119, 180),
        RGBColor(255, 127, 14),
        RGBColor(44, 160, 44),
        RGBColor(214, 39, 40),
        RGBColor(148, 103, 189),
        RGBColor(140, 86, 75),
        RGBColor(23, 190, 207),
    ];
    ringleader_balancer::StrategyKind::ALL
        .iter()
        .position(|k| *k == kind)
        .map_or(RGBColor(127, 127, 127), |i| PALETTE[i % PALETTE.len()])
}

/// Write the plot of `ringleader sim balance`: per strategy, its latency percentiles
/// (left, log scale) and the share of requests each backend served (right); one line
/// per strategy in both, named in the legend.
pub(super) fn write_balance_svg(
    report: &ringleader_balancer::sim::SimReport,
    path: &Path,
) -> PlotResult {
    if report.results.is_empty() {
        return Err("no strategies to plot".into());
    }
    let root = SVGBackend::new(path, (1400, 620)).into_drawing_area();
    root.fill(&WHITE)?;
    let s = &report.scenario;
    let title = format!(
        "Balancing {}: {} backends, {:.0} req/s for {:.0} s, seed {}",
        s.name,
        s.backends.len(),
        s.rate,
        s.duration.as_secs_f64(),
        s.seed
    );
    let root = root.titled(&title, ("sans-serif", 26))?;
    let (left, right) = root.split_horizontally(700);
    let percentiles = ["p50", "p99", "p99.9", "max"];
    let latency: Vec<(&str, RGBColor, Vec<f64>)> = report
        .results
        .iter()
        .map(|r| {
            (
                r.strategy.name(),
                strategy_color(r.strategy),
                vec![r.p50_ms, r.p99_ms, r.p999_ms, r.max_ms],
            )
        })
        .collect();
    strategy_lines(
        &left,
        "Response time percentiles (log scale)",
        "ms",
        &percentiles,
        &latency,
        true,
    )?;
    let ids: Vec<&str> = s.backends.iter().map(|b| b.id.as_str()).collect();
    let shares: Vec<(&str, RGBColor, Vec<f64>)> = report
        .results
        .iter()
        .map(|r| {
            (
                r.strategy.name(),
                strategy_color(r.strategy),
                r.shares.clone(),
            )
        })
        .collect();
    strategy_lines(
        &right,
        "Requests served per backend",
        "% of requests",
        &ids,
        &shares,
        false,
    )?;
    root.present()?;
    Ok(())
}

/// One line per strategy over the categories `xs` (values aligned with them).
fn strategy_lines<DB: DrawingBackend>(
    area: &DrawingArea<DB, plotters::coord::Shift>,
    caption: &str,
    y_desc: &str,
    xs: &[&str],
    series: &[(&str, RGBColor, Vec<f64>)],
    log: bool,
) -> PlotResult
where
    DB::ErrorType: 'static,
{
    let all = series.iter().flat_map(|s| s.2.iter().copied());
    let (lo, hi) = all
        .filter(|v| v.is_finite() && (*v > 0.0 || !log))
        .fold((f64::INFINITY, 0f64), |(lo, hi), v| (lo.min(v), hi.max(v)));
    let lo = if lo.is_finite() && lo > 0.0 { lo } else { 1e-3 };
    let hi = hi.max(lo * 1.01);
    let x_fmt = |x: &f64| {
        let i = x.round();
        if (x - i).abs() < 1e-6 && i >= 0.0 {
            xs.get(i as usize)
                .map(|s| s.to_string())
                .unwrap_or_default()
        } else {
            String::new()
        }
    };
    let x1 = xs.len().saturating_sub(1) as f64 + 0.3;
    macro_rules! draw {
        ($chart:expr) => {{
            let mut chart = $chart;
            chart
                .configure_mesh()
                .y_desc(y_desc)
                .axis_desc_style(("sans-serif", 18))
                .label_style(("sans-serif", 14))
                .x_labels(xs.len() + 1)
                .x_label_formatter(&x_fmt)
                .y_label_formatter(&|y| {
                    if *y >= 10.0 {
                        format!("{y:.0}")
                    } else {
                        format!("{y:.1}")
                    }
                })
                .draw()?;
            for (name, col, values) in series {
                let col = *col;
                let pts: Vec<(f64, f64)> = values
                    .iter()
                    .enumerate()
                    .map(|(i, v)| (i as f64, if log { v.max(lo) } else { *v }))
                    .collect();
                chart
                    .draw_series(LineSeries::new(pts, col.stroke_width(3)).point_size(4))?
                    .label(*name)
                    .legend(move |(x, y)| {
                        PathElement::new(vec![(x, y), (x + 20, y)], col.stroke_width(3))
                    });
            }
            chart
                .configure_series_labels()
                .position(SeriesLabelPosition::UpperLeft)
                .label_font(("sans-serif", 15))
                .background_style(WHITE.mix(0.9))
                .border_style(BLACK)
                .draw()?;
        }};
    }
    let mut b = ChartBuilder::on(area);
    b.caption(caption, ("sans-serif", 20))
        .margin(20)
        .x_label_area_size(50)
        .y_label_area_size(80);
    if log {
        draw!(b.build_cartesian_2d(-0.3..x1, ((lo / 1.5)..(hi * 2.0)).log_scale())?);
    } else {
        draw!(b.build_cartesian_2d(-0.3..x1, 0.0..hi * 1.2)?);
    }
    Ok(())
}
