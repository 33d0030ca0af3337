//! The `ringleader` HTTP reverse proxy: routes, upstreams, health checks,
//! failover, an admin listener, and the command line that drives it all.
//!
//! A config is parsed and validated by [`Config`]; [`Server::bind`] starts
//! the proxy and admin listeners; [`Proxy`] is the handle to reload it and
//! read its state. Balancing and backend health come from
//! `ringleader-balancer`, request IDs from `ringleader-idgen`.
//!
//! ```
//! let cfg = ringleader_proxy::Config::from_toml_str(r#"
//!     [server]
//!     listen = "127.0.0.1:0"
//!     admin = "127.0.0.1:0"
//!     [upstream.app]
//!     strategy = "least_connections"
//!     backends = [{ addr = "127.0.0.1:9101" }, { addr = "127.0.0.1:9102", weight = 2 }]
//! "#, "inline.toml").unwrap();
//! assert_eq!(cfg.upstreams["app"].backends.len(), 2);
//!
//! // Errors name the file, line and column.
//! let err = ringleader_proxy::Config::from_toml_str("[server]\nlisten = 80\n", "bad.toml").unwrap_err();
//! assert!(err.to_string().starts_with("bad.toml:2:10:"));
//! ```
#![forbid(unsafe_code)]

mod admin;
mod body;
mod client;
mod config;
pub mod demo;
mod error;
mod forward;
mod headers;
mod health;
mod metrics;
mod pool;
mod proxy;
mod server;
mod upstream;

pub use body::{Progress, ProxyBody, StreamBody, UpstreamBody};
pub use client::{BackendBody, ClientError, Conn, MAX_RESPONSE_HEAD};
pub use config::{
    line_col, BackendConfig, Config, HashKey, HealthConfig, PassiveConfig, RetryConfig, RetryOn,
    RouteConfig, ServerConfig, UpstreamConfig, STRATEGIES,
};
pub use demo::DemoBackend;
pub use error::{Error, Result};
pub use headers::{
    host_without_port, is_idempotent, is_valid_host, set_forwarded, strip_hop_by_hop,
    strip_request_hop_by_hop,
};
pub use health::check_once;
pub use metrics::{Metrics, LATENCY_BUCKETS};
pub use pool::{BackendConns, Checkin, SendError, MAX_IDLE_PER_BACKEND};
pub use proxy::Proxy;
pub use server::Server;
pub use upstream::{RetryBudget, RetryPolicy, Upstream};
