//! Detection simulator (`ringleader sim detect`): replays synthetic network traces through both detectors and measures time to detect a crash against false downs per hour.
//!
//! The model, on virtual time (seconds from a base instant), runtime-free:
//!
//! - a check sent at `t` is answered after a latency: `steady` 0.5 ms + Exp(mean
//!   0.5 ms); `jitter` log-normal around 5 ms (σ = 1) with 0.2 % stalls of
//!   0.3-1.5 s; a check that takes longer than its timeout fails at the timeout;
//! - `gc`: pauses of 200 ms-2 s (uniform), one every 2 minutes on average
//!   (Poisson); a check sent during a pause is answered when it ends;
//! - `loss`: bursts of 2-20 s, one every 15 minutes on average, in which each
//!   check is lost (never answered) with probability 1/2;
//! - `mixed`: jitter, pauses and bursts together;
//! - a crash, in separate trials: the backend either refuses connections (the
//!   process died: the check fails in one round trip) or stops answering (the host
//!   is gone: the check fails at its timeout), half the trials each.
//!
//! Each detector setting replays the same traces (same pauses, bursts and crash
//! times; the per-check draws come from a stream seeded the same way). The long
//! healthy run gives false suspicions and false downs per hour; the crash trials
//! (a fresh detector, 150-180 s of warm-up, then the crash) give the time to
//! detect. The comparison against rise/fall's defaults is computed from the
//! results, never assumed.
//!
//! ```
//! use ringleader_balancer::detector::sim::{simulate, SimConfig};
//! let config = SimConfig { hours: 0.2, trials: 10, ..SimConfig::default() };
//! let report = simulate(&config)?;
//! assert!(report.rows.iter().any(|r| r.detector == "accrual"));
//! assert!(report.rows.iter().any(|r| r.detector == "rise_fall"));
//! # Ok::<(), ringleader_balancer::Error>(())
//! ```
use super::{Accrual, AccrualConfig, Action, Detector, RiseFall, RiseFallConfig};
use crate::{Error, HealthPolicy};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use rand_distr::{Distribution, Exp, LogNormal};
use serde::Serialize;
use std::fmt::Write as _;
use std::time::{Duration, Instant};

/// A synthetic network condition.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Scenario {
    /// Sub-millisecond, steady answers.
    Steady,
    /// Heavy-tailed latency with rare stalls.
    Jitter,
    /// GC-like pauses of 200 ms-2 s.
    Gc,
    /// Packet-loss bursts.
    Loss,
    /// Jitter, pauses and loss bursts together.
    Mixed,
}

impl Scenario {
    /// Every scenario, in report order.
    pub const ALL: [Scenario; 5] = [
        Scenario::Steady,
        Scenario::Jitter,
        Scenario::Gc,
        Scenario::Loss,
        Scenario::Mixed,
    ];

    /// Its name on the command line and in reports.
    pub const fn name(self) -> &'static str {
        match self {
            Scenario::Steady => "steady",
            Scenario::Jitter => "jitter",
            Scenario::Gc => "gc",
            Scenario::Loss => "loss",
            Scenario::Mixed => "mixed",
        }
    }

    /// Parse a name from [`Self::name`].
    pub fn by_name(name: &str) -> Result<Self, Error> {
        Self::ALL
            .into_iter()
            .find(|s| s.name() == name.trim())
            .ok_or(Error::InvalidConfig {
                field: "scenario",
                reason: format!("unknown `{name}`: expected steady, jitter, gc, loss or mixed"),
            })
    }

    fn jitter(self) -> bool {
        matches!(self, Scenario::Jitter | Scenario::Mixed)
    }
    fn gc(self) -> bool {
        matches!(self, Scenario::Gc | Scenario::Mixed)
    }
    fn loss(self) -> bool {
        matches!(self, Scenario::Loss | Scenario::Mixed)
    }
}

/// One detector setting of the sweep.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Setting {
    /// Rise/fall with these settings.
    RiseFall(RiseFallConfig),
    /// Accrual with these settings.
    Accrual(AccrualConfig),
}

impl Setting {
    /// `rise_fall` or `accrual`.
    pub const fn detector(&self) -> &'static str {
        match self {
            Setting::RiseFall(_) => "rise_fall",
            Setting::Accrual(_) => "accrual",
        }
    }

    /// A short label: `interval=2s fall=3`, `phi=8`.
    pub fn label(&self) -> String {
        match self {
            Setting::RiseFall(c) => format!(
                "interval={}s fall={}",
                c.interval.as_secs_f64(),
                c.policy.fall
            ),
            Setting::Accrual(c) => format!("phi={} confirm={}", c.threshold, c.confirm),
        }
    }

    /// The curve the setting belongs to in the plot: `rise_fall 2s` (over `fall`),
    /// `accrual phi` (over the threshold, `confirm` at its default) or `accrual
    /// confirm` (over `confirm`, the threshold at its default).
    pub fn curve(&self) -> String {
        match self {
            Setting::RiseFall(c) => format!("rise_fall {}s", c.interval.as_secs_f64()),
            Setting::Accrual(c) if c.confirm != AccrualConfig::default().confirm => {
                "accrual confirm".to_owned()
            }
            Setting::Accrual(_) => "accrual phi".to_owned(),
        }
    }

    /// Whether this is the detector's default setting.
    pub fn is_default(&self) -> bool {
        match self {
            Setting::RiseFall(c) => *c == RiseFallConfig::default(),
            Setting::Accrual(c) => *c == AccrualConfig::default(),
        }
    }

    fn build(&self, now: Instant, seed: u64) -> Box<dyn Detector> {
        match self {
            Setting::RiseFall(c) => Box::new(RiseFall::new(*c, now, seed)),
            Setting::Accrual(c) => Box::new(Accrual::new(*c, now, seed)),
        }
    }

    fn validate(&self) -> Result<(), Error> {
        match self {
            Setting::RiseFall(c) => c.validate(),
            Setting::Accrual(c) => c.validate(),
        }
    }
}

/// The default sweep: rise/fall over fall = 1..=6 at intervals 1, 2 and 5 s;
/// accrual (its other settings at their defaults) over φ thresholds 1 to 16, and
/// over `confirm` = 1, 2, 4, 5, 6, 8, 10 at the default threshold.
pub fn default_settings() -> Vec<Setting> {
    let mut out = Vec::new();
    for interval in [1u64, 2, 5] {
        for fall in 1..=6 {
            out.push(Setting::RiseFall(RiseFallConfig {
                interval: Duration::from_secs(interval),
                jitter: Duration::from_secs(interval) / 10,
                policy: HealthPolicy { rise: 2, fall },
                ..RiseFallConfig::default()
            }));
        }
    }
    for threshold in [1.0, 2.0, 3.0, 4.0, 6.0, 8.0, 10.0, 12.0, 16.0] {
        out.push(Setting::Accrual(AccrualConfig {
            threshold,
            ..AccrualConfig::default()
        }));
    }
    for confirm in [1, 2, 4, 5, 6, 8, 10] {
        out.push(Setting::Accrual(AccrualConfig {
            confirm,
            ..AccrualConfig::default()
        }));
    }
    out
}

/// What to simulate.
#[derive(Debug, Clone, PartialEq)]
pub struct SimConfig {
    /// Scenarios to run.
    pub scenarios: Vec<Scenario>,
    /// Detector settings to run on each.
    pub settings: Vec<Setting>,
    /// Hours of healthy simulated time per scenario (false suspicions and downs).
    pub hours: f64,
    /// Crash trials per scenario (time to detect).
    pub trials: u32,
    /// Seed of every random draw.
    pub seed: u64,
    /// The scenario the comparison against rise/fall's defaults is made on.
    pub goal_scenario: Scenario,
}

impl Default for SimConfig {
    /// Every scenario, the default sweep, 48 hours and 200 crash trials each, seed 1, compared on `mixed`.
    fn default() -> Self {
        Self {
            scenarios: Scenario::ALL.to_vec(),
            settings: default_settings(),
            hours: 48.0,
            trials: 200,
            seed: 1,
            goal_scenario: Scenario::Mixed,
        }
    }
}

/// One detector setting on one scenario.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Row {
    /// Scenario name.
    pub scenario: &'static str,
    /// `rise_fall` or `accrual`.
    pub detector: &'static str,
    /// The setting's label.
    pub setting: String,
    /// The plot curve it belongs to.
    pub curve: String,
    /// Whether it is the detector's default.
    pub default: bool,
    /// Mean time from crash to mark-down, seconds (over the trials that detected it).
    pub detect_mean_s: f64,
    /// Same, crashes that refuse connections.
    pub detect_refused_s: f64,
    /// Same, crashes that go silent.
    pub detect_silent_s: f64,
    /// 99th percentile of the time to detect, seconds.
    pub detect_p99_s: f64,
    /// Crash trials not marked down within 120 s.
    pub missed: u32,
    /// Suspicions of a healthy backend per hour.
    pub false_suspicions_per_hour: f64,
    /// Marks-down of a healthy backend per hour.
    pub false_downs_per_hour: f64,
    /// Checks and probes per minute, on the healthy run (the checking cost).
    pub checks_per_minute: f64,
}

/// The comparison against rise/fall with its defaults, on one scenario.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Goal {
    /// Scenario it was computed on.
    pub scenario: &'static str,
    /// Rise/fall defaults: mean time to detect and false downs per hour.
    pub rise_fall_detect_s: f64,
    /// See above.
    pub rise_fall_false_downs_per_hour: f64,
    /// Accrual defaults: mean time to detect and false downs per hour (if run).
    pub accrual_default: Option<(f64, f64)>,
    /// Fastest accrual setting with no more false downs than that (label, time to detect).
    pub same_false_downs: Option<(String, f64)>,
    /// Its speed-up over rise/fall (time to detect ratio).
    pub speedup: Option<f64>,
    /// Whether it is at least 2x.
    pub faster_2x: bool,
    /// Accrual setting with the fewest false downs detecting no slower (label, false downs per hour).
    pub same_detect: Option<(String, f64)>,
    /// Rise/fall's false-down rate over it; a zero count is taken at its 95 %
    /// upper bound, 3 events over the hours simulated (the "rule of three").
    pub false_down_ratio: Option<f64>,
    /// Whether that ratio is at least 10.
    pub fewer_10x: bool,
}

/// Everything one run measured.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Report {
    /// Hours of healthy time per scenario.
    pub hours: f64,
    /// Crash trials per scenario.
    pub trials: u32,
    /// The seed.
    pub seed: u64,
    /// One row per scenario and setting.
    pub rows: Vec<Row>,
    /// The comparison (None if the goal scenario or the rise/fall default was not run).
    pub goal: Option<Goal>,
}

/// A crash: connections refused, or no answer at all.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Crash {
    Refused,
    Silent,
}

/// The network and backend over a time span: pauses and loss bursts, sorted.
#[derive(Debug, Clone)]
struct Trace {
    scenario: Scenario,
    pauses: Vec<(f64, f64)>,
    bursts: Vec<(f64, f64)>,
}

/// Mean time between GC pauses, and their range (seconds).
const GC_EVERY: f64 = 120.0;
const GC_PAUSE: (f64, f64) = (0.2, 2.0);
/// Mean time between loss bursts, their length range, and the loss probability inside one.
const LOSS_EVERY: f64 = 900.0;
const LOSS_BURST: (f64, f64) = (2.0, 20.0);
const LOSS_P: f64 = 0.5;
/// Crash trials: warm-up range, then how long the detector has to see it.
const WARMUP: (f64, f64) = (150.0, 180.0);
const TRIAL_WATCH: f64 = 120.0;

impl Trace {
    fn new(scenario: Scenario, span: f64, rng: &mut SmallRng) -> Self {
        let events = |every: f64, len: (f64, f64), rng: &mut SmallRng| {
            let gap = Exp::new(1.0 / every).expect("positive rate");
            let mut t = 0.0;
            let mut out = Vec::new();
            loop {
                t += gap.sample(rng);
                if t >= span {
                    return out;
                }
                let d = rng.random_range(len.0..=len.1);
                out.push((t, t + d));
                t += d;
            }
        };
        Self {
            scenario,
            pauses: if scenario.gc() {
                events(GC_EVERY, GC_PAUSE, rng)
            } else {
                Vec::new()
            },
            bursts: if scenario.loss() {
                events(LOSS_EVERY, LOSS_BURST, rng)
            } else {
                Vec::new()
            },
        }
    }

    /// The interval of `spans` containing `t`, if any (spans sorted, disjoint).
    fn within(spans: &[(f64, f64)], t: f64) -> Option<(f64, f64)> {
        let i = spans.partition_point(|s| s.1 <= t);
        spans.get(i).copied().filter(|s| s.0 <= t)
    }

    /// Latency of a check sent at `t`, or None if it is never answered.
    fn answer(&self, t: f64, crash: Option<(f64, Crash)>, rng: &mut SmallRng) -> Option<f64> {
        let base = if self.scenario.jitter() {
            if rng.random_bool(0.002) {
                rng.random_range(0.3..1.5)
            } else {
                LogNormal::new(0.005f64.ln(), 1.0)
                    .expect("valid")
                    .sample(rng)
            }
        } else {
            0.0005 + Exp::new(1.0 / 0.0005).expect("valid").sample(rng)
        };
        if let Some((at, kind)) = crash {
            if t >= at {
                return match kind {
                    Crash::Refused => Some(f64::NAN), // fails in one round trip
                    Crash::Silent => None,
                };
            }
        }
        if Self::within(&self.bursts, t).is_some() && rng.random_bool(LOSS_P) {
            return None;
        }
        Some(match Self::within(&self.pauses, t) {
            Some((_, end)) => end - t + base,
            None => base,
        })
    }
}

/// What one detector did on a stretch of trace.
#[derive(Debug, Default)]
struct Outcome {
    downs_before_crash: u32,
    suspicions: u64,
    checks: u64,
    detected_at: Option<f64>,
}

/// Drive a fresh detector from `from` to `until` (seconds) on `trace`.
fn replay(
    setting: &Setting,
    trace: &Trace,
    base: Instant,
    from: f64,
    until: f64,
    crash: Option<(f64, Crash)>,
    seed: u64,
) -> Outcome {
    let secs = |t: f64| base + Duration::from_secs_f64(t);
    let mut rng = SmallRng::seed_from_u64(seed);
    let mut d = setting.build(secs(from), seed);
    let mut now = from;
    let mut out = Outcome::default();
    let crashed = |t: f64| crash.is_some_and(|(at, _)| t >= at);
    while now < until {
        match d.next_action(secs(now)) {
            Action::Wait(t) => {
                let t = t.saturating_duration_since(base).as_secs_f64();
                now = if t > now { t } else { now + 1e-6 };
            }
            Action::Check { timeout, .. } => {
                let timeout = timeout.as_secs_f64();
                let (ok, took) = match trace.answer(now, crash, &mut rng) {
                    Some(l) if l.is_nan() => (false, 0.001),
                    Some(l) if l <= timeout => (true, l),
                    _ => (false, timeout),
                };
                now += took;
                d.on_check(ok, Duration::from_secs_f64(took), secs(now));
            }
            Action::MarkDown => {
                if crashed(now) {
                    out.detected_at = Some(now);
                    break;
                }
                out.downs_before_crash += 1;
            }
            Action::MarkUp => {}
        }
    }
    let s = d.stats();
    out.suspicions = s.suspicions;
    out.checks = s.checks;
    if out.detected_at.is_none() && crash.is_some() && !d.is_up() {
        // Down (falsely) when it crashed: detected at once.
        out.detected_at = crash.map(|c| c.0);
    }
    out
}

fn mean(v: &[f64]) -> f64 {
    if v.is_empty() {
        f64::NAN
    } else {
        v.iter().sum::<f64>() / v.len() as f64
    }
}

fn p99(v: &mut [f64]) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(f64::total_cmp);
    v[((v.len() as f64 * 0.99).ceil() as usize).clamp(1, v.len()) - 1]
}

/// Run the simulation.
pub fn simulate(config: &SimConfig) -> Result<Report, Error> {
    if !(config.hours.is_finite() && config.hours > 0.0 && config.hours <= 1000.0) {
        return Err(Error::InvalidConfig {
            field: "hours",
            reason: format!("must be more than 0 and at most 1000, got {}", config.hours),
        });
    }
    for s in &config.settings {
        s.validate()?;
    }
    let base = Instant::now();
    let healthy = config.hours * 3600.0;
    let trial_len = WARMUP.1 + TRIAL_WATCH;
    let span = healthy + f64::from(config.trials) * trial_len;
    let mut rows = Vec::new();
    for (si, &scenario) in config.scenarios.iter().enumerate() {
        let seed = config.seed ^ (si as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        let mut rng = SmallRng::seed_from_u64(seed);
        let trace = Trace::new(scenario, span, &mut rng);
        let trials: Vec<(f64, f64, Crash)> = (0..config.trials)
            .map(|k| {
                let start = healthy + f64::from(k) * trial_len;
                let at = start + rng.random_range(WARMUP.0..WARMUP.1);
                let kind = if k % 2 == 0 {
                    Crash::Refused
                } else {
                    Crash::Silent
                };
                (start, at, kind)
            })
            .collect();
        for setting in &config.settings {
            let run = replay(setting, &trace, base, 0.0, healthy, None, seed);
            let (mut all, mut refused, mut silent) = (Vec::new(), Vec::new(), Vec::new());
            let mut missed = 0;
            for (k, &(start, at, kind)) in trials.iter().enumerate() {
                let o = replay(
                    setting,
                    &trace,
                    base,
                    start,
                    at + TRIAL_WATCH,
                    Some((at, kind)),
                    seed.wrapping_add(k as u64 + 1),
                );
                match o.detected_at {
                    Some(t) => {
                        all.push(t - at);
                        match kind {
                            Crash::Refused => refused.push(t - at),
                            Crash::Silent => silent.push(t - at),
                        }
                    }
                    None => missed += 1,
                }
            }
            rows.push(Row {
                scenario: scenario.name(),
                detector: setting.detector(),
                setting: setting.label(),
                curve: setting.curve(),
                default: setting.is_default(),
                detect_mean_s: mean(&all),
                detect_refused_s: mean(&refused),
                detect_silent_s: mean(&silent),
                detect_p99_s: p99(&mut all),
                missed,
                false_suspicions_per_hour: run.suspicions as f64 / config.hours,
                false_downs_per_hour: f64::from(run.downs_before_crash) / config.hours,
                checks_per_minute: run.checks as f64 / (healthy / 60.0),
            });
        }
    }
    let goal = goal(&rows, config.goal_scenario, config.hours);
    Ok(Report {
        hours: config.hours,
        trials: config.trials,
        seed: config.seed,
        rows,
        goal,
    })
}

/// Compare accrual's sweep with rise/fall's default on `scenario`.
fn goal(rows: &[Row], scenario: Scenario, hours: f64) -> Option<Goal> {
    let on: Vec<&Row> = rows
        .iter()
        .filter(|r| r.scenario == scenario.name())
        .collect();
    let rf = on.iter().find(|r| r.detector == "rise_fall" && r.default)?;
    let acc: Vec<&&Row> = on
        .iter()
        .filter(|r| r.detector == "accrual" && r.detect_mean_s.is_finite())
        .collect();
    let same_fd = acc
        .iter()
        .filter(|r| r.false_downs_per_hour <= rf.false_downs_per_hour)
        .min_by(|a, b| a.detect_mean_s.total_cmp(&b.detect_mean_s));
    let speedup = same_fd.map(|r| rf.detect_mean_s / r.detect_mean_s);
    let same_detect = acc
        .iter()
        .filter(|r| r.detect_mean_s <= rf.detect_mean_s)
        .min_by(|a, b| a.false_downs_per_hour.total_cmp(&b.false_downs_per_hour));
    let floor = 3.0 / hours;
    let accrual_default = acc
        .iter()
        .find(|r| r.default)
        .map(|r| (r.detect_mean_s, r.false_downs_per_hour));
    let ratio = same_detect.map(|r| rf.false_downs_per_hour / r.false_downs_per_hour.max(floor));
    Some(Goal {
        scenario: scenario.name(),
        rise_fall_detect_s: rf.detect_mean_s,
        rise_fall_false_downs_per_hour: rf.false_downs_per_hour,
        accrual_default,
        same_false_downs: same_fd.map(|r| (r.setting.clone(), r.detect_mean_s)),
        speedup,
        faster_2x: speedup.is_some_and(|s| s >= 2.0),
        same_detect: same_detect.map(|r| (r.setting.clone(), r.false_downs_per_hour)),
        false_down_ratio: ratio,
        fewer_10x: ratio.is_some_and(|r| r >= 10.0),
    })
}

impl Report {
    /// An aligned text table, then the comparison.
    pub fn to_table(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "{} h healthy + {} crash trials per scenario (half refused, half silent), seed {}",
            self.hours, self.trials, self.seed
        );
        let _ = writeln!(
            out,
            "{:<8} {:<10} {:<22} {:>8} {:>8} {:>8} {:>8} {:>7} {:>10} {:>9} {:>8}",
            "scenario",
            "detector",
            "setting",
            "detect s",
            "refused",
            "silent",
            "p99 s",
            "missed",
            "suspect/h",
            "down/h",
            "checks/m"
        );
        for r in &self.rows {
            let _ = writeln!(
                out,
                "{:<8} {:<10} {:<22} {:>8.2} {:>8.2} {:>8.2} {:>8.2} {:>7} {:>10.2} {:>9.3} {:>8.1}",
                r.scenario,
                r.detector,
                format!("{}{}", r.setting, if r.default { " *" } else { "" }),
                r.detect_mean_s,
                r.detect_refused_s,
                r.detect_silent_s,
                r.detect_p99_s,
                r.missed,
                r.false_suspicions_per_hour,
                r.false_downs_per_hour,
                r.checks_per_minute
            );
        }
        out.push_str("(* = default setting)\n");
        if let Some(g) = &self.goal {
            out.push_str(&g.summary());
        }
        out
    }
}

impl Goal {
    /// Two lines: each half of the goal, with its figures and whether it held.
    pub fn summary(&self) -> String {
        let held = |b: bool| if b { "HELD" } else { "not held" };
        let mut out = String::new();
        let _ = write!(
            out,
            "goal on {}: rise/fall defaults detect in {:.2} s with {:.3} false downs/h.",
            self.scenario, self.rise_fall_detect_s, self.rise_fall_false_downs_per_hour
        );
        if let Some((t, fd)) = self.accrual_default {
            let _ = write!(
                out,
                "\n  accrual defaults: {t:.2} s ({:.2}x faster) with {fd:.3} false downs/h.",
                self.rise_fall_detect_s / t
            );
        }
        out.push_str("\n  same false-down rate: ");
        match (&self.same_false_downs, self.speedup) {
            (Some((label, t)), Some(s)) => {
                let _ = writeln!(
                    out,
                    "accrual {label} detects in {t:.2} s, {s:.2}x faster (goal 2x): {}",
                    held(self.faster_2x)
                );
            }
            _ => out.push_str("no accrual setting has as few false downs: not held\n"),
        }
        out.push_str("  same detection time: ");
        match (&self.same_detect, self.false_down_ratio) {
            (Some((label, fd)), Some(r)) => {
                let _ = writeln!(
                    out,
                    "accrual {label} has {fd:.3} false downs/h, {r:.1}x fewer (goal 10x; zero counted as 3 per run): {}",
                    held(self.fewer_10x)
                );
            }
            _ => out.push_str("no accrual setting detects as fast: not held\n"),
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn traces_are_deterministic_and_model_pauses_and_loss() {
        let mut a = SmallRng::seed_from_u64(5);
        let mut b = SmallRng::seed_from_u64(5);
        let ta = Trace::new(Scenario::Mixed, 36_000.0, &mut a);
        let tb = Trace::new(Scenario::Mixed, 36_000.0, &mut b);
        assert_eq!(ta.pauses, tb.pauses);
        assert!(ta.pauses.len() > 200 && ta.bursts.len() > 20);
        assert!(ta.pauses.iter().all(|(s, e)| e - s >= 0.2 && e - s <= 2.0));
        let (s, e) = ta.pauses[0];
        let l = ta.answer(s, None, &mut a).unwrap();
        assert!(l >= e - s, "answered when the pause ends");
        assert_eq!(ta.answer(e + 0.1, Some((e, Crash::Silent)), &mut a), None);
        assert!(ta
            .answer(e + 0.1, Some((e, Crash::Refused)), &mut a)
            .unwrap()
            .is_nan());
        assert!(Trace::new(Scenario::Steady, 3600.0, &mut a)
            .pauses
            .is_empty());
    }

    #[test]
    fn a_small_run_measures_both_detectors_and_the_goal() {
        let config = SimConfig {
            scenarios: vec![Scenario::Steady, Scenario::Mixed],
            hours: 0.5,
            trials: 20,
            ..SimConfig::default()
        };
        let r = simulate(&config).unwrap();
        assert_eq!(r.rows.len(), 2 * config.settings.len());
        let rf = r
            .rows
            .iter()
            .find(|r| r.scenario == "steady" && r.detector == "rise_fall" && r.default)
            .unwrap();
        // Refused: the next check (within 2.2 s) and two more 2-2.2 s apart.
        assert!(
            rf.detect_refused_s > 4.0 && rf.detect_refused_s < 6.7,
            "{rf:?}"
        );
        assert_eq!(rf.missed, 0);
        assert_eq!(rf.false_downs_per_hour, 0.0);
        let acc = r
            .rows
            .iter()
            .find(|r| r.scenario == "steady" && r.detector == "accrual" && r.default)
            .unwrap();
        assert!(acc.detect_mean_s < rf.detect_mean_s, "{acc:?}");
        assert_eq!(acc.false_downs_per_hour, 0.0);
        let g = r.goal.as_ref().expect("goal computed");
        assert_eq!(g.scenario, "mixed");
        assert!(g.summary().contains("goal on mixed"));
        assert!(r.to_table().contains("accrual"));
    }
}
