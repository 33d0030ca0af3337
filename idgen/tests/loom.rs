//! Loom model of the generator's compare-exchange loop (run with `RUSTFLAGS="--cfg loom"`).
#![cfg(loom)]
