//! `ringleader-ring`: where does a key live, and how much moves when the
//! cluster changes.
//!
//! - [`HashRing`]: weighted virtual-node consistent hashing (xxh3, sorted
//!   `Vec`, binary search), distinct-node [`replicas`](HashRing::replicas)
//!   and opt-in [bounded loads](HashRing::get_bounded);
//! - [`Modulo`], [`Jump`], [`Rendezvous`], [`Maglev`]: the other classic
//!   placements, all behind the [`Placement`] trait;
//! - [`SlotMap`]: hash sharding through 16384 slots (Redis Cluster style,
//!   with `{hash tags}`), rebalanced by a minimum-move migration plan;
//! - [`RangeMap`]: range sharding over half-open key ranges, versioned, with
//!   split/merge and a [`SplitPolicy`] with merge hysteresis;
//! - [`Compat`]: placements that keep keys where nginx (`hash $key
//!   consistent`), libketama or Redis Cluster put them ([`NginxHash`],
//!   [`Ketama`], [`RedisCluster`]), for switching without moving keys;
//! - [`sim`]: the reshard simulator: keys moved against the ideal, moves
//!   between surviving nodes and load spread per algorithm, as a table,
//!   JSON or CSV (the `ringleader sim reshard` subcommand prints it).
//!
//! Hashing is `XXH3_64` over explicit bytes (see [`hash_key`] and
//! [`hash_vnode`]), so placement is identical across processes and versions.
//!
//! ```
//! use ringleader_ring::{HashRing, Placement};
//! let ring = HashRing::from_nodes(
//!     vec![("cache-a".to_string(), 1), ("cache-b".to_string(), 1), ("cache-c".to_string(), 1)],
//!     160,
//! )?;
//! let owner = ring.get(b"user:42").unwrap();
//! let replicas = ring.replicas(b"user:42", 2);
//! assert_eq!(replicas[0], owner);
//! assert_eq!(ring.locate(b"user:42"), Some(owner));
//! # Ok::<(), ringleader_ring::Error>(())
//! ```
#![forbid(unsafe_code)]

mod compat;
mod error;
mod hash;
mod hashring;
mod jump;
mod maglev;
mod modulo;
mod placement;
mod range;
mod rendezvous;
pub mod sim;
mod slots;

pub use compat::{
    crc16_xmodem, ketama_hash, nginx_crc32, redis_slot, Compat, CompatCandidates, CompatPlacement,
    Ketama, NginxHash, NginxPick, RedisCluster, KETAMA_POINTS_PER_SERVER, NGINX_MAX_TRIES,
    NGINX_POINTS_PER_WEIGHT, REDIS_SLOTS,
};
pub use error::Error;
pub use hash::{hash_key, hash_vnode};
pub use hashring::{Candidates, HashRing, DEFAULT_VNODES, MAX_POINTS_PER_NODE};
pub use jump::{jump_hash, Jump};
pub use maglev::{Maglev, MAGLEV_DEFAULT_TABLE};
pub use modulo::Modulo;
pub use placement::Placement;
pub use range::{RangeId, RangeMap, RangeRef, RangeStats, SplitPolicy};
pub use rendezvous::Rendezvous;
pub use slots::{hash_slot, hash_tag, Rebalance, SlotMap, SlotMove, DEFAULT_SLOTS, MAX_SLOTS};
