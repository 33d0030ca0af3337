//! Helpers shared by the integration tests, each written once: backends and proxy configs,
//! clients and raw sockets, /status and /metrics readers, bounded waits and load.
mod admin;
mod http;
mod proxy;
mod wait;

pub use admin::*;
pub use http::*;
pub use proxy::*;
pub use wait::*;
