//! The crate's one error type: invalid backend sets and configurations.
use thiserror::Error;

/// Everything that can go wrong when building or updating a [`Balancer`](crate::Balancer).
///
/// ```
/// use ringleader_balancer::{Balancer, BalancerConfig, Error};
/// let err = Balancer::new(Vec::new(), BalancerConfig::default()).unwrap_err();
/// assert!(matches!(err, Error::NoBackends));
/// ```
#[derive(Debug, Clone, PartialEq, Error)]
#[non_exhaustive]
pub enum Error {
    /// The backend set is empty.
    #[error("the backend set is empty: configure at least one backend")]
    NoBackends,
    /// More backends than a balancer indexes (`u32::MAX`).
    #[error("{count} backends: a balancer holds at most 4294967295")]
    TooManyBackends {
        /// How many were given.
        count: usize,
    },
    /// A backend has weight zero.
    #[error("backend `{id}` has weight 0: weights must be at least 1")]
    ZeroWeight {
        /// The backend's id.
        id: String,
    },
    /// A backend id is empty.
    #[error("a backend has an empty id")]
    EmptyId,
    /// Two backends share an id.
    #[error("duplicate backend id `{id}`: ids must be unique within a balancer")]
    DuplicateId {
        /// The repeated id.
        id: String,
    },
    /// A strategy name did not parse.
    #[error(
        "unknown strategy `{name}`: expected one of round_robin, weighted_round_robin, \
         least_connections, least_response_time, power_of_two, random, consistent_hash"
    )]
    UnknownStrategy {
        /// The name that was given.
        name: String,
    },
    /// A configuration field is out of range.
    #[error("invalid balancer setting `{field}`: {reason}")]
    InvalidConfig {
        /// The field's name.
        field: &'static str,
        /// Why it is invalid.
        reason: String,
    },
    /// An unknown simulation scenario name.
    #[error("unknown scenario `{name}`: expected one of slow-backend, heterogeneous, uniform")]
    UnknownScenario {
        /// The name that was given.
        name: String,
    },
    /// The consistent-hash ring rejected the backend set.
    #[error("consistent-hash ring: {0}")]
    Ring(String),
}
