//! Lock-free, time-sortable 64-bit Snowflake IDs that are never duplicated.
//!
//! An ID is `timestamp | worker | sequence` in at most 63 bits ([`Layout`]; presets
//! [`Layout::TWITTER`], [`Layout::SONYFLAKE`], [`Layout::JS_SAFE`]). A [`Generator`] owns
//! one worker id and hands out strictly increasing IDs from any number of threads without
//! a lock: its last `(tick, sequence)` lives in one `AtomicU64` advanced by
//! compare-exchange. It waits (or borrows a bounded number of future ticks) when a tick's
//! sequence runs out, rides out small backwards clock steps and reports large ones as
//! errors, and can persist a high-water mark so a restart never reissues an ID (the file is
//! locked while its generator lives, and renewed in the background). Async code uses
//! [`Generator::try_next_id`], which never blocks and returns how long to wait instead.
//!
//! Time comes from a [`Clock`]: [`SystemClock`] by default, [`CoarseClock`] for cheaper
//! reads on very hot paths, [`ManualClock`] in tests (its `sleep` advances it, so waits
//! are instant and deterministic). Worker ids come from a [`WorkerIdSource`]: a plain
//! integer, [`WorkerId::from_env`] (`RINGLEADER_WORKER_ID`), or your own (e.g. a lease).
//!
//! ```
//! use ringleader_idgen::{Generator, Id, Layout};
//!
//! let gen = Generator::new(Layout::TWITTER, 42)?;   // worker 42
//! let id: Id = gen.next_id()?;
//! let parts = Layout::TWITTER.decode(id)?;
//! assert_eq!(parts.worker, 42);
//! let text = id.to_string();
//! assert_eq!(text.parse::<Id>()?, id);
//! # Ok::<(), ringleader_idgen::Error>(())
//! ```
#![forbid(unsafe_code)]

mod clock;
mod error;
mod fence;
mod generator;
mod id;
mod layout;
mod mark;
mod persist;
mod sync;
mod worker;

pub use clock::{Clock, CoarseClock, ManualClock, SystemClock};
pub use error::Error;
pub use fence::Fence;
pub use generator::{
    Generator, GeneratorBuilder, IdBatch, NextId, DEFAULT_BACKWARDS_TOLERANCE,
    DEFAULT_RESERVE_AHEAD,
};
pub use id::{id_as_string, Id};
pub use layout::{Layout, Parts};
pub use worker::{EnvWorkerId, WorkerId, WorkerIdSource, WORKER_ID_ENV};
