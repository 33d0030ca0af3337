//! The `ringleader` HTTP reverse proxy: routes, upstreams, health checks,
//! failover and an admin listener (the `ringleader` binary drives it).
//!
//! A config is parsed and validated by [`Config`]; [`Server::bind`] starts
//! the proxy and admin listeners; [`Proxy`] is the handle to reload it and
//! read its state; every failure is an [`Error`]. Balancing and backend
//! health come from `ringleader-balancer`, request IDs from `ringleader-idgen`.
//! With a `[cluster]` table, `ringleader-cluster` leases the request-ID worker id
//! from etcd and feeds upstreams with `backends_from = "cluster"` their members
//! ([`Proxy::set_backends`], applied like a reload).
//!
//! Inside, a request flows one way: `server` (hyper serves the client) ->
//! `handle` (check, route) -> `forward` (attempts, retries) -> `pool`
//! (keep-alive connections) -> `http1` (the proxy's own client); the answer
//! streams back to the client through `response`.
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

mod access_log;
mod admin;
mod config;
mod demo;
mod error;
mod fleet;
mod forward;
mod handle;
mod headers;
mod health;
mod http1;
#[cfg(test)]
mod layering;
mod metrics;
mod pool;
mod request_id;
mod response;
mod ring_lookup;
mod server;
mod state;
mod status_fields;
mod status_page;
mod tls;
mod upstream;

pub use config::{
    AccessLog, BackendConfig, BackendsFrom, ClusterConfig, Config, DetectorKind, HashCompat,
    HashKey, HealthConfig, Http2Config, PassiveConfig, RetryConfig, RetryOn, RouteConfig,
    ServerConfig, TlsCertConfig, UpstreamConfig, UpstreamProtocol,
};
pub use demo::DemoBackend;
pub use error::{Error, Result};
pub use metrics::Metrics;
pub use ringleader_balancer::StrategyKind;
pub use server::Server;
pub use state::Proxy;
