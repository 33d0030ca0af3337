//! Configuration: backend specs, health and ejection policies, the strategy choice, and their validation.
use crate::Error;
use serde::{Deserialize, Serialize};
use std::collections::HashSet;
use std::fmt;
use std::str::FromStr;
use std::time::Duration;

/// One configured backend: a stable id (statistics follow it across updates), an address and a weight.
///
/// ```
/// use ringleader_balancer::BackendSpec;
/// let spec = BackendSpec::new("10.0.0.1:80", 5);
/// assert_eq!(spec.id, spec.addr);
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct BackendSpec {
    /// Stable identity; a backend keeps its statistics across [`Balancer::update`](crate::Balancer::update) while its id and address stay.
    pub id: String,
    /// Address to connect to (opaque to this crate).
    pub addr: String,
    /// Relative weight, at least 1.
    pub weight: u32,
}

impl BackendSpec {
    /// A backend whose id is its address.
    pub fn new(addr: impl Into<String>, weight: u32) -> Self {
        let addr = addr.into();
        Self {
            id: addr.clone(),
            addr,
            weight,
        }
    }
}

/// The closed set of strategies a config can name (`snake_case` in TOML/JSON and on the command line).
///
/// ```
/// use ringleader_balancer::StrategyKind;
/// let kind: StrategyKind = "least_response_time".parse().unwrap();
/// assert_eq!(kind, StrategyKind::LeastResponseTime);
/// assert_eq!(kind.to_string(), "least_response_time");
/// assert!("fastest".parse::<StrategyKind>().is_err());
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StrategyKind {
    /// Each backend in turn (atomic cursor).
    RoundRobin,
    /// nginx's smooth weighted round robin.
    WeightedRoundRobin,
    /// Fewest in-flight requests per unit of weight; ties broken round robin.
    LeastConnections,
    /// Lowest peak-EWMA latency x (in-flight + 1) per unit of weight.
    #[default]
    LeastResponseTime,
    /// Two distinct random choices, the less loaded wins.
    PowerOfTwo,
    /// Weighted random.
    Random,
    /// Consistent hashing of the request key, optionally with bounded load.
    ConsistentHash,
}

impl StrategyKind {
    /// Every strategy, in documentation order.
    pub const ALL: [StrategyKind; 7] = [
        StrategyKind::RoundRobin,
        StrategyKind::WeightedRoundRobin,
        StrategyKind::LeastConnections,
        StrategyKind::LeastResponseTime,
        StrategyKind::PowerOfTwo,
        StrategyKind::Random,
        StrategyKind::ConsistentHash,
    ];

    /// The `snake_case` name used in configs.
    pub const fn name(self) -> &'static str {
        match self {
            StrategyKind::RoundRobin => "round_robin",
            StrategyKind::WeightedRoundRobin => "weighted_round_robin",
            StrategyKind::LeastConnections => "least_connections",
            StrategyKind::LeastResponseTime => "least_response_time",
            StrategyKind::PowerOfTwo => "power_of_two",
            StrategyKind::Random => "random",
            StrategyKind::ConsistentHash => "consistent_hash",
        }
    }
}

impl fmt::Display for StrategyKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for StrategyKind {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self, Error> {
        let t = s.trim();
        StrategyKind::ALL
            .into_iter()
            .find(|k| k.name() == t || k.name().replace('_', "-") == t)
            .ok_or_else(|| Error::UnknownStrategy { name: s.to_owned() })
    }
}

/// The load metric [`StrategyKind::PowerOfTwo`] compares.
///
/// ```
/// use ringleader_balancer::LoadMetric;
/// assert_eq!(LoadMetric::default(), LoadMetric::PeakEwma);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LoadMetric {
    /// In-flight requests per unit of weight (Envoy's least-request P2C).
    InFlight,
    /// Peak EWMA x (in-flight + 1) per unit of weight (Linkerd / Finagle).
    #[default]
    PeakEwma,
}

/// Active health checking: consecutive results needed to change state.
///
/// ```
/// use ringleader_balancer::HealthPolicy;
/// assert_eq!(HealthPolicy::default(), HealthPolicy { rise: 2, fall: 3 });
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct HealthPolicy {
    /// Consecutive passing checks that bring a `Down` backend `Up` (at least 1).
    pub rise: u32,
    /// Consecutive failing checks that take an `Up` backend `Down` (at least 1).
    pub fall: u32,
}

impl Default for HealthPolicy {
    /// HAProxy's defaults: `rise 2`, `fall 3`.
    fn default() -> Self {
        Self { rise: 2, fall: 3 }
    }
}

/// Passive outlier detection: eject a backend after consecutive failures (within
/// `max_percent`) or a refused connection (always), for a doubling, capped time whose
/// multiplier decays while the backend stays healthy.
///
/// ```
/// use ringleader_balancer::EjectionPolicy;
/// use std::time::Duration;
/// let p = EjectionPolicy::default();
/// assert_eq!(p.ejection_time(0), Duration::from_secs(30));
/// assert_eq!(p.ejection_time(1), Duration::from_secs(60));
/// assert_eq!(p.ejection_time(9), Duration::from_secs(300)); // capped
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct EjectionPolicy {
    /// Consecutive failed requests that eject a backend; 0 disables ejection by count
    /// (a refused connection still ejects).
    pub consecutive_failures: u32,
    /// Ejection time of a first ejection; it doubles for each repeated ejection, and
    /// the doubling is undone one step per `base_time` the backend stays healthy.
    pub base_time: Duration,
    /// Cap of the doubling ejection time.
    pub max_time: Duration,
    /// Never eject more than this percentage of the backends for consecutive failures
    /// (0..=100); at least one backend may always be ejected unless this is 0 (as
    /// Envoy does). A refused connection ejects regardless. 0 disables ejection.
    pub max_percent: u32,
}

impl Default for EjectionPolicy {
    /// 5 consecutive failures (Envoy's `consecutive_5xx`), 30 s base time (Envoy's
    /// `base_ejection_time`), 300 s cap (Envoy's `max_ejection_time`), at most 50 % ejected.
    fn default() -> Self {
        Self {
            consecutive_failures: 5,
            base_time: Duration::from_secs(30),
            max_time: Duration::from_secs(300),
            max_percent: 50,
        }
    }
}

impl EjectionPolicy {
    /// Ejection time for a backend ejected `level` times in a row before: `base * 2^level`, capped.
    pub fn ejection_time(&self, level: u32) -> Duration {
        let factor = 1u32.checked_shl(level.min(31)).unwrap_or(u32::MAX);
        self.base_time
            .checked_mul(factor)
            .unwrap_or(self.max_time)
            .min(self.max_time)
    }

    /// How many of `total` backends may be ejected at once.
    pub fn max_ejected(&self, total: usize) -> usize {
        if self.max_percent == 0 || total == 0 {
            return 0;
        }
        (total * self.max_percent.min(100) as usize / 100).max(1)
    }
}

/// Everything a [`Balancer`](crate::Balancer) is configured with besides its backends.
///
/// ```
/// use ringleader_balancer::{BalancerConfig, StrategyKind};
/// let config = BalancerConfig { strategy: StrategyKind::RoundRobin, ..BalancerConfig::default() };
/// assert!(config.validate().is_ok());
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BalancerConfig {
    /// Which strategy picks backends.
    pub strategy: StrategyKind,
    /// Active health checking thresholds.
    pub health: HealthPolicy,
    /// Passive ejection on failures.
    pub ejection: EjectionPolicy,
    /// When every backend is unavailable (down or ejected), pick among all of them
    /// instead of returning none (on by default, as nginx and Envoy do; see
    /// [`Balancer::panic_picks`](crate::Balancer::panic_picks)).
    pub panic_mode: bool,
    /// Time constant of the peak EWMA's decay toward faster samples (and toward zero when idle).
    pub ewma_decay: Duration,
    /// Latency assumed for a backend with no samples yet.
    pub default_rtt: Duration,
    /// Virtual nodes per unit of weight on the consistent-hash ring.
    pub vnodes: u32,
    /// Bounded-load factor epsilon for consistent hashing (a backend takes at most
    /// `ceil((1 + eps) * average)` in-flight requests); `None` = plain consistent hashing.
    pub bounded_load: Option<f64>,
    /// Consistent hashing on a placement compatible with another system (nginx's
    /// `hash $key consistent`, libketama, Redis Cluster slots) instead of the native
    /// ring: backends are placed by their address and weight, so keys stay where that
    /// system put them. `None` = the native ring. Cannot be combined with `bounded_load`.
    #[serde(default)]
    pub hash_compat: Option<ringleader_ring::Compat>,
    /// Load metric compared by power-of-two-choices.
    pub p2c_load: LoadMetric,
    /// Seed of the random strategies; `None` seeds from the operating system.
    pub seed: Option<u64>,
}

impl Default for BalancerConfig {
    /// Least response time; panic mode on; EWMA decay 10 s and default RTT 30 ms
    /// (linkerd2-proxy's defaults); 160 vnodes per weight unit (ketama's 40 points x
    /// 4); no bounded load.
    fn default() -> Self {
        Self {
            strategy: StrategyKind::default(),
            health: HealthPolicy::default(),
            ejection: EjectionPolicy::default(),
            panic_mode: true,
            ewma_decay: Duration::from_secs(10),
            default_rtt: Duration::from_millis(30),
            vnodes: 160,
            bounded_load: None,
            hash_compat: None,
            p2c_load: LoadMetric::default(),
            seed: None,
        }
    }
}

impl BalancerConfig {
    /// Check every field's range.
    pub fn validate(&self) -> Result<(), Error> {
        let bad = |field: &'static str, reason: &str| {
            Err(Error::InvalidConfig {
                field,
                reason: reason.to_owned(),
            })
        };
        if self.health.rise == 0 {
            return bad("health.rise", "must be at least 1");
        }
        if self.health.fall == 0 {
            return bad("health.fall", "must be at least 1");
        }
        if self.ejection.max_percent > 100 {
            return bad("ejection.max_percent", "must be between 0 and 100");
        }
        if self.ejection.base_time.is_zero() {
            return bad("ejection.base_time", "must be greater than zero");
        }
        if self.ejection.max_time < self.ejection.base_time {
            return bad("ejection.max_time", "must be at least ejection.base_time");
        }
        if self.ewma_decay.is_zero() {
            return bad("ewma_decay", "must be greater than zero");
        }
        if self.vnodes == 0 {
            return bad("vnodes", "must be at least 1");
        }
        if let Some(eps) = self.bounded_load {
            if !(eps.is_finite() && eps > 0.0) {
                return bad("bounded_load", "must be a finite number greater than 0");
            }
            if self.hash_compat.is_some() {
                return bad(
                    "bounded_load",
                    "cannot be combined with hash_compat (a compatible placement keeps keys \
                     where the other system puts them; bounded load would move them)",
                );
            }
        }
        Ok(())
    }
}

/// Check a backend set: non-empty, non-empty unique ids, weights at least 1.
pub(crate) fn validate_specs(specs: &[BackendSpec]) -> Result<(), Error> {
    if specs.is_empty() {
        return Err(Error::NoBackends);
    }
    if u32::try_from(specs.len()).is_err() {
        return Err(Error::TooManyBackends { count: specs.len() });
    }
    let mut seen = HashSet::with_capacity(specs.len());
    for spec in specs {
        if spec.id.is_empty() {
            return Err(Error::EmptyId);
        }
        if spec.weight == 0 {
            return Err(Error::ZeroWeight {
                id: spec.id.clone(),
            });
        }
        if !seen.insert(spec.id.as_str()) {
            return Err(Error::DuplicateId {
                id: spec.id.clone(),
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strategy_names_round_trip() {
        for kind in StrategyKind::ALL {
            assert_eq!(kind.name().parse::<StrategyKind>().unwrap(), kind);
            let json = serde_json::to_string(&kind).unwrap();
            assert_eq!(json, format!("\"{}\"", kind.name()));
            assert_eq!(serde_json::from_str::<StrategyKind>(&json).unwrap(), kind);
        }
        assert_eq!(
            "power-of-two".parse::<StrategyKind>().unwrap(),
            StrategyKind::PowerOfTwo
        );
        assert!(matches!(
            "leastconn".parse::<StrategyKind>(),
            Err(Error::UnknownStrategy { .. })
        ));
    }

    #[test]
    fn bad_specs_are_errors() {
        assert_eq!(validate_specs(&[]), Err(Error::NoBackends));
        assert!(matches!(
            validate_specs(&[BackendSpec::new("a", 0)]),
            Err(Error::ZeroWeight { .. })
        ));
        assert!(matches!(
            validate_specs(&[BackendSpec::new("a", 1), BackendSpec::new("a", 2)]),
            Err(Error::DuplicateId { .. })
        ));
        assert_eq!(
            validate_specs(&[BackendSpec::new("", 1)]),
            Err(Error::EmptyId)
        );
    }

    #[test]
    fn bad_config_is_an_error() {
        let mut c = BalancerConfig::default();
        c.health.rise = 0;
        assert!(c.validate().is_err());
        let mut c = BalancerConfig::default();
        c.ejection.max_percent = 101;
        assert!(c.validate().is_err());
        let c = BalancerConfig {
            bounded_load: Some(f64::NAN),
            ..BalancerConfig::default()
        };
        assert!(c.validate().is_err());
        let c = BalancerConfig {
            bounded_load: Some(0.25),
            hash_compat: Some(ringleader_ring::Compat::Nginx),
            ..BalancerConfig::default()
        };
        assert!(matches!(
            c.validate(),
            Err(Error::InvalidConfig {
                field: "bounded_load",
                ..
            })
        ));
        let c = BalancerConfig {
            hash_compat: Some(ringleader_ring::Compat::Ketama),
            ..BalancerConfig::default()
        };
        assert!(c.validate().is_ok());
        let json = serde_json::to_string(&c).unwrap();
        assert!(json.contains("\"hash_compat\":\"ketama\""), "{json}");
        assert_eq!(serde_json::from_str::<BalancerConfig>(&json).unwrap(), c);
    }

    #[test]
    fn ejection_allowance() {
        let p = EjectionPolicy::default();
        assert_eq!(p.max_ejected(1), 1);
        assert_eq!(p.max_ejected(4), 2);
        assert_eq!(p.max_ejected(5), 2);
        let none = EjectionPolicy {
            max_percent: 0,
            ..p
        };
        assert_eq!(none.max_ejected(10), 0);
    }
}
