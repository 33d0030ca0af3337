//! `ringleader-balancer`: load-balancing strategies on shared, lock-free backend state.
//!
//! - [`Backend`]: live statistics in atomics — in-flight requests, a peak-sensitive
//!   EWMA of response time, request/failure counters — and a [`Health`] state machine
//!   (active rise/fall checks, passive ejection with capped doubling back-off).
//! - [`Balancer`]: an `ArcSwap` snapshot of backends + [`Strategy`]; [`Balancer::pick`]
//!   returns a [`Pick`] guard that keeps the in-flight count exact on every path,
//!   [`Balancer::candidates`] yields failover choices, [`Balancer::update`] keeps the
//!   statistics of backends that stay.
//! - Strategies ([`StrategyKind`]): round robin, nginx's smooth weighted round robin,
//!   least connections, least response time (peak EWMA), power of two choices,
//!   weighted random and consistent hashing with bounded load.
//! - [`detector`]: failure detectors for active checks, rise/fall and φ accrual with
//!   confirmation probes ([`Detector`], [`Accrual`], [`RiseFall`]).
//! - [`sim`]: a deterministic discrete-event simulator that compares the strategies'
//!   latency on modelled backends (`ringleader sim balance`).
//!
//! Time comes from an injectable [`Clock`]; the random strategies are seeded.
//!
//! ```
//! use ringleader_balancer::{Balancer, BalancerConfig, BackendSpec, RequestCtx, StrategyKind};
//! use std::time::Duration;
//!
//! let specs = vec![BackendSpec::new("10.0.0.1:80", 5), BackendSpec::new("10.0.0.2:80", 1)];
//! let config = BalancerConfig { strategy: StrategyKind::WeightedRoundRobin, ..Default::default() };
//! let lb = Balancer::new(specs, config)?;
//!
//! // Failover: try up to two distinct backends.
//! for pick in lb.candidates(&RequestCtx::new()).take(2) {
//!     // ... send the request to pick.backend().addr() ...
//!     pick.success(Duration::from_millis(3));
//!     break;
//! }
//! assert_eq!(lb.backends()[0].requests(), 1);
//! # Ok::<(), ringleader_balancer::Error>(())
//! ```
#![forbid(unsafe_code)]

mod backend;
mod balancer;
mod clock;
mod config;
pub mod detector;
mod error;
mod ewma;
mod health;
pub mod sim;
mod strategy;
mod table;

pub use backend::Backend;
pub use balancer::{Balancer, Candidates, Pick, RequestCtx};
pub use clock::{Clock, ManualClock, SystemClock};
pub use config::{
    BackendSpec, BalancerConfig, EjectionPolicy, HealthPolicy, LoadMetric, StrategyKind,
};
pub use detector::{Accrual, AccrualConfig, Action, Detector, RiseFall, RiseFallConfig};
pub use error::Error;
pub use health::Health;
pub use strategy::{
    ConsistentHash, Filter, LeastConnections, LeastResponseTime, PowerOfTwo, Random, RoundRobin,
    Strategy, WeightedRoundRobin,
};
