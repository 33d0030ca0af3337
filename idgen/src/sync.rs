//! Loom shim: the atomics the generator's compare-exchange loop uses, modelled by loom
//! under `RUSTFLAGS="--cfg loom"` and `std` otherwise (as tokio does).
#[cfg(loom)]
pub(crate) use loom::sync::atomic::{AtomicU64, Ordering};
#[cfg(not(loom))]
pub(crate) use std::sync::atomic::{AtomicU64, Ordering};
