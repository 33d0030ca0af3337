//! ringleader: distributed-systems plumbing as small synchronous crates.
//!
//! This facade re-exports the three libraries under short names:
//!
//! - [`idgen`]: lock-free, time-sortable 64-bit Snowflake IDs;
//! - [`ring`]: consistent-hash ring, hash slots, range shards and a reshard simulator;
//! - [`balancer`]: backends, health and load-balancing strategies on shared state.
//!
//! ```
//! use ringleader::{balancer, idgen, ring};
//! # let _ = (stringify!(idgen), stringify!(ring), stringify!(balancer));
//! ```
#![forbid(unsafe_code)]

pub use ringleader_balancer as balancer;
pub use ringleader_idgen as idgen;
pub use ringleader_ring as ring;

/// The README's examples, compiled and run as doctests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
