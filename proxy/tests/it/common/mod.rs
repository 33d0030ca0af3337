//! Helpers shared by the integration tests, each written once: backends and proxy configs,
//! clients and raw sockets, a real etcd, a backend answering like a plain file server, log capture,
//! /status and /metrics readers, bounded waits and load.
mod admin;
mod etcd;
mod file_server;
mod http;
mod logs;
mod proxy;
mod wait;

pub use admin::*;
pub use etcd::*;
pub use file_server::*;
pub use http::*;
pub use logs::*;
pub use proxy::*;
pub use wait::*;
