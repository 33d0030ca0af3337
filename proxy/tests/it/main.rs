//! End-to-end tests of the proxy, one test binary: real backends and the proxy on 127.0.0.1:0,
//! one module per concern, helpers in `common`.
mod access_log;
mod admin;
mod backend_http;
mod balancing;
mod cluster;
mod common;
mod failover;
mod flap;
mod grpc;
mod h2;
mod headers;
mod health;
mod limits;
mod membership;
mod metrics_prom;
mod names;
mod objective;
mod pool;
mod reload;
mod retries;
mod streaming;
mod tls;
mod trace_context;
mod ui;
mod upgrade;
