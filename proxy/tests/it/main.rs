//! End-to-end tests of the proxy, one test binary: real backends and the proxy on 127.0.0.1:0,
//! one module per concern, helpers in `common`.
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
mod names;
mod objective;
mod pool;
mod reload;
mod retries;
mod streaming;
mod tls;
mod ui;
mod upgrade;
