//! Deterministic discrete-event simulation of the strategies on modelled backends.
//!
//! The model, on virtual time driven through a [`ManualClock`]:
//!
//! - requests arrive as a Poisson process (exponential gaps, seeded RNG);
//! - each arrival asks a real [`Balancer`] for a [`Pick`], exactly as a
//!   proxy would, so the strategy sees the true in-flight counts and the peak EWMA of
//!   the response times it observed;
//! - a backend is a FIFO queue in front of `workers` parallel servers (M/G/c); service
//!   times are log-normal around the backend's mean, multiplied by a factor drawn
//!   uniformly from `[factor_min, factor_max]` for requests that start service during
//!   the backend's slow period;
//! - when a request completes, the response time the proxy saw (queueing + service)
//!   is fed back with `Pick::success`, and recorded.
//!
//! Nothing in the model knows which strategy runs: every strategy gets the same
//! scenario, seed and arrival process. Reports give p50/p99/p99.9 latency and each
//! backend's share of the requests.
//!
//! ```
//! use ringleader_balancer::{sim::{simulate, Scenario}, StrategyKind};
//! use std::time::Duration;
//! let scenario = Scenario::uniform().with_duration(Duration::from_secs(2));
//! let report = simulate(&scenario, &[StrategyKind::RoundRobin])?;
//! let rr = &report.results[0];
//! assert!(rr.requests > 4_000);
//! assert!(rr.p50_ms < rr.p99_ms);
//! assert!((rr.shares.iter().sum::<f64>() - 100.0).abs() < 1e-6);
//! # Ok::<(), ringleader_balancer::Error>(())
//! ```
use crate::{
    BackendSpec, Balancer, BalancerConfig, Error, ManualClock, Pick, RequestCtx, StrategyKind,
};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use rand_distr::{Distribution, Exp, LogNormal};
use serde::Serialize;
use std::cmp::Ordering;
use std::collections::{BinaryHeap, VecDeque};
use std::fmt::Write as _;
use std::sync::Arc;
use std::time::Duration;

/// A period during which a backend serves requests `factor_min..=factor_max` times slower.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SlowPeriod {
    /// Start, from the beginning of the run.
    #[serde(rename = "start_s", serialize_with = "secs")]
    pub start: Duration,
    /// End, from the beginning of the run.
    #[serde(rename = "end_s", serialize_with = "secs")]
    pub end: Duration,
    /// Smallest slow-down factor.
    pub factor_min: f64,
    /// Largest slow-down factor.
    pub factor_max: f64,
}

/// One modelled backend.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SimBackend {
    /// Id (and address) given to the balancer.
    pub id: String,
    /// Configured weight.
    pub weight: u32,
    /// Requests served in parallel; the rest queue (FIFO).
    pub workers: u32,
    /// Mean service time.
    #[serde(rename = "mean_service_ms", serialize_with = "millis")]
    pub mean_service: Duration,
    /// Optional slow period.
    pub slow: Option<SlowPeriod>,
}

/// A simulation scenario: backends, load, duration and seed.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Scenario {
    /// Name (`slow-backend`, `heterogeneous`, `uniform`).
    pub name: String,
    /// The backends.
    pub backends: Vec<SimBackend>,
    /// Mean arrival rate, requests per second (Poisson).
    pub rate: f64,
    /// Arrivals happen during this long; the run continues until every request finished.
    #[serde(rename = "duration_s", serialize_with = "secs")]
    pub duration: Duration,
    /// Shape (sigma) of the log-normal service-time distribution.
    pub service_sigma: f64,
    /// Distinct request keys (drawn uniformly) for consistent hashing.
    pub keys: u32,
    /// Seed of every random draw.
    pub seed: u64,
    /// Balancer settings (the strategy field is replaced for each strategy run).
    #[serde(skip)]
    pub config: BalancerConfig,
}

fn secs<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_f64(d.as_secs_f64())
}

fn millis<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_f64(d.as_secs_f64() * 1e3)
}

/// Utilization of the default scenarios (arrival rate / total service capacity).
const UTILIZATION: f64 = 0.7;

impl Scenario {
    fn with_workers(name: &str, workers: &[u32], mean: Duration) -> Self {
        let backends: Vec<SimBackend> = workers
            .iter()
            .enumerate()
            .map(|(i, &w)| SimBackend {
                id: format!("b{i}"),
                weight: w,
                workers: w,
                mean_service: mean,
                slow: None,
            })
            .collect();
        let capacity: f64 = backends
            .iter()
            .map(|b| f64::from(b.workers) / b.mean_service.as_secs_f64())
            .sum();
        Self {
            name: name.to_owned(),
            backends,
            rate: capacity * UTILIZATION,
            duration: Duration::from_secs(60),
            service_sigma: 0.5,
            keys: 10_000,
            seed: 1,
            config: BalancerConfig::default(),
        }
    }

    /// 10 equal backends (4 workers, 10 ms mean service), 70 % utilization, 60 s.
    pub fn uniform() -> Self {
        let mut s = Self::with_workers("uniform", &[4; 10], Duration::from_millis(10));
        for b in &mut s.backends {
            b.weight = 1;
        }
        s
    }

    /// [`uniform`](Self::uniform), but `b0` is 10-20x slower from 15 s to 45 s (Linkerd's
    /// "Beyond Round Robin" experiment).
    pub fn slow_backend() -> Self {
        let mut s = Self::uniform();
        s.name = "slow-backend".to_owned();
        s.backends[0].slow = Some(SlowPeriod {
            start: Duration::from_secs(15),
            end: Duration::from_secs(45),
            factor_min: 10.0,
            factor_max: 20.0,
        });
        s
    }

    /// 10 backends of unequal capacity (8, 8, 4, 4, 4, 2, 2, 2, 1, 1 workers) with weights
    /// equal to their capacity, 70 % utilization, 60 s.
    pub fn heterogeneous() -> Self {
        Self::with_workers(
            "heterogeneous",
            &[8, 8, 4, 4, 4, 2, 2, 2, 1, 1],
            Duration::from_millis(10),
        )
    }

    /// The scenario called `name`.
    pub fn by_name(name: &str) -> Result<Self, Error> {
        match name {
            "slow-backend" | "slow_backend" => Ok(Self::slow_backend()),
            "heterogeneous" => Ok(Self::heterogeneous()),
            "uniform" => Ok(Self::uniform()),
            _ => Err(Error::UnknownScenario {
                name: name.to_owned(),
            }),
        }
    }

    /// The same scenario over `duration`, slow periods scaled in proportion.
    pub fn with_duration(mut self, duration: Duration) -> Self {
        let ratio = duration.as_secs_f64() / self.duration.as_secs_f64().max(1e-9);
        for b in &mut self.backends {
            if let Some(slow) = &mut b.slow {
                slow.start = slow.start.mul_f64(ratio);
                slow.end = slow.end.mul_f64(ratio);
            }
        }
        self.duration = duration;
        self
    }

    /// The same scenario with another seed.
    pub fn with_seed(mut self, seed: u64) -> Self {
        self.seed = seed;
        self
    }

    fn validate(&self) -> Result<(), Error> {
        let bad = |field: &'static str, reason: &str| {
            Err(Error::InvalidConfig {
                field,
                reason: reason.to_owned(),
            })
        };
        if !(self.rate.is_finite() && self.rate > 0.0) {
            return bad("sim.rate", "must be a positive number");
        }
        if self.duration.is_zero() {
            return bad("sim.duration", "must be greater than zero");
        }
        if !(self.service_sigma.is_finite() && self.service_sigma >= 0.0) {
            return bad("sim.service_sigma", "must be a non-negative number");
        }
        if self.keys == 0 {
            return bad("sim.keys", "must be at least 1");
        }
        for b in &self.backends {
            if b.workers == 0 {
                return bad("sim.workers", "every backend needs at least 1 worker");
            }
            if b.mean_service.is_zero() {
                return bad("sim.mean_service", "must be greater than zero");
            }
            if let Some(s) = &b.slow {
                if !(s.factor_min > 0.0 && s.factor_min <= s.factor_max && s.factor_max.is_finite())
                {
                    return bad("sim.slow.factor", "need 0 < factor_min <= factor_max");
                }
            }
        }
        Ok(())
    }
}

/// Result of one strategy on one scenario.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StrategyResult {
    /// The strategy.
    pub strategy: StrategyKind,
    /// Requests completed.
    pub requests: u64,
    /// Mean response time, ms.
    pub mean_ms: f64,
    /// Median response time, ms.
    pub p50_ms: f64,
    /// 99th percentile, ms.
    pub p99_ms: f64,
    /// 99.9th percentile, ms.
    pub p999_ms: f64,
    /// Largest response time, ms.
    pub max_ms: f64,
    /// Percentage of the requests each backend served, in scenario order.
    pub shares: Vec<f64>,
}

/// Results of every simulated strategy on one scenario.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SimReport {
    /// The scenario that ran.
    pub scenario: Scenario,
    /// One result per strategy, in the order asked.
    pub results: Vec<StrategyResult>,
}

impl SimReport {
    /// The result of `kind`, if it ran.
    pub fn get(&self, kind: StrategyKind) -> Option<&StrategyResult> {
        self.results.iter().find(|r| r.strategy == kind)
    }

    /// A plain-text table (the CLI's `--format table`).
    pub fn to_table(&self) -> String {
        let s = &self.scenario;
        let mut out = String::new();
        let _ = write!(
            out,
            "scenario {}: {} backends, {:.0} req/s Poisson for {:.0} s, seed {}",
            s.name,
            s.backends.len(),
            s.rate,
            s.duration.as_secs_f64(),
            s.seed
        );
        if let Some(eps) = s.config.bounded_load {
            let _ = write!(out, ", consistent_hash bounded load eps {eps}");
        }
        out.push('\n');
        let _ = write!(
            out,
            "{:<22} {:>9} {:>9} {:>9} {:>9} {:>9}  share % of",
            "strategy", "requests", "mean ms", "p50 ms", "p99 ms", "p99.9 ms"
        );
        for b in &s.backends {
            let _ = write!(out, " {:>5}", b.id);
        }
        out.push('\n');
        for r in &self.results {
            let _ = write!(
                out,
                "{:<22} {:>9} {:>9.1} {:>9.1} {:>9.1} {:>9.1}            ",
                r.strategy.name(),
                r.requests,
                r.mean_ms,
                r.p50_ms,
                r.p99_ms,
                r.p999_ms
            );
            for share in &r.shares {
                let _ = write!(out, " {share:>5.1}");
            }
            out.push('\n');
        }
        out
    }
}

/// Run `scenario` once per strategy.
pub fn simulate(scenario: &Scenario, strategies: &[StrategyKind]) -> Result<SimReport, Error> {
    let results = strategies
        .iter()
        .map(|&kind| run_one(scenario, kind))
        .collect::<Result<_, _>>()?;
    Ok(SimReport {
        scenario: scenario.clone(),
        results,
    })
}

#[derive(Debug, PartialEq, Eq)]
enum EventKind {
    Arrival,
    Done { job: usize },
}

/// An event at virtual time `t` (ns); `seq` keeps equal times in scheduling order.
#[derive(Debug, PartialEq, Eq)]
struct Event {
    t: u64,
    seq: u64,
    kind: EventKind,
}

impl Ord for Event {
    fn cmp(&self, other: &Self) -> Ordering {
        // Reversed: BinaryHeap is a max-heap and we want the earliest event first.
        (other.t, other.seq).cmp(&(self.t, self.seq))
    }
}

impl PartialOrd for Event {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

struct Job {
    arrival: u64,
    backend: usize,
    pick: Pick,
}

struct Station {
    busy: u32,
    queue: VecDeque<usize>,
}

struct World<'a> {
    scenario: &'a Scenario,
    heap: BinaryHeap<Event>,
    seq: u64,
    jobs: Vec<Option<Job>>,
    free: Vec<usize>,
    stations: Vec<Station>,
    service_rng: SmallRng,
    service: LogNormal<f64>,
}

impl World<'_> {
    fn schedule(&mut self, t: u64, kind: EventKind) {
        self.seq += 1;
        self.heap.push(Event {
            t,
            seq: self.seq,
            kind,
        });
    }

    /// Start serving `job` at `t` on its backend.
    fn start(&mut self, job: usize, t: u64) {
        let b = match &self.jobs[job] {
            Some(j) => j.backend,
            None => return,
        };
        let spec = &self.scenario.backends[b];
        let mut factor = self.service.sample(&mut self.service_rng);
        if let Some(slow) = &spec.slow {
            let now = Duration::from_nanos(t);
            if now >= slow.start && now < slow.end {
                factor *= self
                    .service_rng
                    .random_range(slow.factor_min..=slow.factor_max);
            }
        }
        let service = (spec.mean_service.as_nanos() as f64 * factor).max(1.0) as u64;
        self.stations[b].busy += 1;
        self.schedule(t + service, EventKind::Done { job });
    }
}

/// Run `scenario` with one strategy.
pub fn run_one(scenario: &Scenario, kind: StrategyKind) -> Result<StrategyResult, Error> {
    scenario.validate()?;
    let specs: Vec<BackendSpec> = scenario
        .backends
        .iter()
        .map(|b| BackendSpec::new(b.id.clone(), b.weight))
        .collect();
    let config = BalancerConfig {
        strategy: kind,
        seed: Some(scenario.seed),
        ..scenario.config.clone()
    };
    let clock = Arc::new(ManualClock::new());
    let lb = Balancer::with_clock(specs, config, clock.clone())?;
    let n = scenario.backends.len();

    let sigma = scenario.service_sigma;
    let invalid = |e: rand_distr::ExpError| Error::InvalidConfig {
        field: "sim.rate",
        reason: e.to_string(),
    };
    // Log-normal with mean 1: mu = -sigma^2 / 2.
    let service =
        LogNormal::new(-sigma * sigma / 2.0, sigma).map_err(|e| Error::InvalidConfig {
            field: "sim.service_sigma",
            reason: e.to_string(),
        })?;
    let gaps = Exp::new(scenario.rate / 1e9).map_err(invalid)?;
    let mut arrival_rng = SmallRng::seed_from_u64(scenario.seed);
    let mut world = World {
        scenario,
        heap: BinaryHeap::new(),
        seq: 0,
        jobs: Vec::new(),
        free: Vec::new(),
        stations: (0..n)
            .map(|_| Station {
                busy: 0,
                queue: VecDeque::new(),
            })
            .collect(),
        service_rng: SmallRng::seed_from_u64(scenario.seed ^ 0x5EED_5EED_5EED_5EED),
        service,
    };
    let end = u64::try_from(scenario.duration.as_nanos()).unwrap_or(u64::MAX);
    let first = gaps.sample(&mut arrival_rng) as u64;
    if first < end {
        world.schedule(first, EventKind::Arrival);
    }

    let mut latencies: Vec<u64> =
        Vec::with_capacity((scenario.rate * scenario.duration.as_secs_f64() * 1.1) as usize);
    let mut served = vec![0u64; n];
    while let Some(ev) = world.heap.pop() {
        clock.set_elapsed(Duration::from_nanos(ev.t));
        match ev.kind {
            EventKind::Arrival => {
                let key = arrival_rng.random_range(0..scenario.keys).to_le_bytes();
                let next = ev.t + gaps.sample(&mut arrival_rng) as u64;
                if next < end {
                    world.schedule(next, EventKind::Arrival);
                }
                // Every backend is healthy in the model, so a pick always exists.
                let Some(pick) = lb.pick(&RequestCtx::with_key(&key)) else {
                    continue;
                };
                let backend = pick.index();
                let job = Job {
                    arrival: ev.t,
                    backend,
                    pick,
                };
                let id = match world.free.pop() {
                    Some(id) => {
                        world.jobs[id] = Some(job);
                        id
                    }
                    None => {
                        world.jobs.push(Some(job));
                        world.jobs.len() - 1
                    }
                };
                let station = &world.stations[backend];
                if station.busy < scenario.backends[backend].workers {
                    world.start(id, ev.t);
                } else {
                    world.stations[backend].queue.push_back(id);
                }
            }
            EventKind::Done { job } => {
                let Some(done) = world.jobs[job].take() else {
                    continue;
                };
                world.free.push(job);
                let latency = ev.t - done.arrival;
                done.pick.success(Duration::from_nanos(latency));
                latencies.push(latency);
                served[done.backend] += 1;
                let station = &mut world.stations[done.backend];
                station.busy -= 1;
                if let Some(next) = station.queue.pop_front() {
                    world.start(next, ev.t);
                }
            }
        }
    }
    Ok(summarize(kind, latencies, &served))
}

fn summarize(kind: StrategyKind, mut latencies: Vec<u64>, served: &[u64]) -> StrategyResult {
    latencies.sort_unstable();
    let total = latencies.len();
    let ms = |ns: u64| ns as f64 / 1e6;
    // Nearest-rank percentile.
    let pct = |q: f64| {
        if total == 0 {
            return 0.0;
        }
        let rank = ((q * total as f64).ceil() as usize).clamp(1, total);
        ms(latencies[rank - 1])
    };
    let sum: f64 = latencies.iter().map(|&l| l as f64).sum();
    StrategyResult {
        strategy: kind,
        requests: total as u64,
        mean_ms: if total == 0 {
            0.0
        } else {
            sum / total as f64 / 1e6
        },
        p50_ms: pct(0.50),
        p99_ms: pct(0.99),
        p999_ms: pct(0.999),
        max_ms: latencies.last().map_or(0.0, |&l| ms(l)),
        shares: served
            .iter()
            .map(|&s| {
                if total == 0 {
                    0.0
                } else {
                    100.0 * s as f64 / total as f64
                }
            })
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deterministic_for_a_seed() {
        let s = Scenario::uniform().with_duration(Duration::from_millis(500));
        let a = run_one(&s, StrategyKind::PowerOfTwo).unwrap();
        let b = run_one(&s, StrategyKind::PowerOfTwo).unwrap();
        assert_eq!(a, b);
        let c = run_one(&s.clone().with_seed(2), StrategyKind::PowerOfTwo).unwrap();
        assert_ne!(a, c);
    }

    #[test]
    fn uniform_round_robin_spreads_evenly_near_the_service_time() {
        let s = Scenario::uniform().with_duration(Duration::from_secs(2));
        let r = run_one(&s, StrategyKind::RoundRobin).unwrap();
        let expect = s.rate * 2.0;
        assert!(
            (r.requests as f64 - expect).abs() < expect * 0.05,
            "{}",
            r.requests
        );
        for share in &r.shares {
            assert!((share - 10.0).abs() < 0.1, "{:?}", r.shares);
        }
        // 70 % utilization of 4 workers: most requests do not queue.
        assert!(r.p50_ms > 5.0 && r.p50_ms < 15.0, "{r:?}");
    }

    #[test]
    fn one_worker_backend_queues_fifo() {
        // A single worker, deterministic 10 ms service, arrivals far faster than service:
        // the k-th request waits for the k-1 before it.
        let s = Scenario {
            name: "fifo".into(),
            backends: vec![SimBackend {
                id: "only".into(),
                weight: 1,
                workers: 1,
                mean_service: Duration::from_millis(10),
                slow: None,
            }],
            rate: 10_000.0,
            duration: Duration::from_millis(2),
            service_sigma: 0.0,
            keys: 1,
            seed: 3,
            config: BalancerConfig::default(),
        };
        let r = run_one(&s, StrategyKind::RoundRobin).unwrap();
        assert!(r.requests >= 5);
        // The last request waited for every one before it: ~ requests x 10 ms.
        assert!(r.max_ms > (r.requests as f64 - 1.0) * 10.0 - 2.0, "{r:?}");
        assert!(r.max_ms <= r.requests as f64 * 10.0 + 1e-6, "{r:?}");
    }

    #[test]
    fn bad_scenarios_are_errors() {
        assert!(matches!(
            Scenario::by_name("nope"),
            Err(Error::UnknownScenario { .. })
        ));
        let mut s = Scenario::uniform();
        s.rate = 0.0;
        assert!(run_one(&s, StrategyKind::RoundRobin).is_err());
        let mut s = Scenario::uniform();
        s.backends[0].workers = 0;
        assert!(run_one(&s, StrategyKind::RoundRobin).is_err());
        let mut s = Scenario::uniform();
        s.backends.clear();
        assert_eq!(
            run_one(&s, StrategyKind::RoundRobin),
            Err(Error::NoBackends)
        );
    }
}
