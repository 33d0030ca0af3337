//! The `ringleader` HTTP reverse proxy: routes, upstreams, health checks,
//! failover, an admin listener, and the command line that drives it all.
//!
//! ```
//! use clap::Parser;
//! let cli = ringleader_proxy::cli::Cli::parse_from(["ringleader", "id", "--count", "1"]);
//! # let _ = cli;
//! ```
#![forbid(unsafe_code)]

pub mod cli;
