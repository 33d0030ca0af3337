//! Demo backends and a proxy on 127.0.0.1:0 over them, from a config written per test.
use ringleader_proxy::{Config, DemoBackend, Server};
use std::net::SocketAddr;
use std::time::Duration;

/// Active health checks every 50 ms, rise 2 fall 2 (the `[upstream.app.health]` table).
pub const FAST_HEALTH: &str =
    "[upstream.app.health]\npath = \"/healthz\"\ninterval = \"50ms\"\ntimeout = \"200ms\"\nrise = 2\nfall = 2\n";

/// Start `n` demo backends named b0, b1, ... with no delay.
pub async fn backends(n: usize) -> Vec<DemoBackend> {
    let mut v = Vec::new();
    for i in 0..n {
        v.push(
            DemoBackend::start(&format!("b{i}"), Duration::ZERO)
                .await
                .unwrap(),
        );
    }
    v
}

/// A config with listeners on port 0, `server_extra` inside `[server]`, one upstream
/// `app` over the backend entries `entries` (TOML inline tables), `upstream_extra`
/// appended inside `[upstream.app]` and `tail` appended at the end (sub-tables).
pub fn config_of(
    server_extra: &str,
    entries: &[String],
    upstream_extra: &str,
    tail: &str,
) -> Config {
    let text = format!(
        "[server]\nlisten = \"127.0.0.1:0\"\nadmin = \"127.0.0.1:0\"\n{server_extra}\n\
         [upstream.app]\nbackends = [{}]\n{upstream_extra}\n{tail}\n",
        entries.join(", ")
    );
    Config::from_toml_str(&text, "test.toml").unwrap_or_else(|e| panic!("{e}\n{text}"))
}

/// [`config_of`] over demo `backends` with the weights given.
pub fn config(
    server_extra: &str,
    backends: &[(&DemoBackend, u32)],
    upstream_extra: &str,
    tail: &str,
) -> Config {
    let entries: Vec<String> = backends
        .iter()
        .map(|(b, w)| format!("{{ addr = \"{}\", weight = {w} }}", b.addr()))
        .collect();
    config_of(server_extra, &entries, upstream_extra, tail)
}

/// [`config_of`] over backends at `addrs`, each with the default weight.
pub fn config_over(
    server_extra: &str,
    addrs: &[SocketAddr],
    upstream_extra: &str,
    tail: &str,
) -> Config {
    let entries: Vec<String> = addrs
        .iter()
        .map(|a| format!("{{ addr = \"{a}\" }}"))
        .collect();
    config_of(server_extra, &entries, upstream_extra, tail)
}

/// [`config`] over the first three of `b`, each at weight 1, no server settings.
pub fn equal_three(b: &[DemoBackend], upstream_extra: &str, tail: &str) -> Config {
    config(
        "",
        &[(&b[0], 1), (&b[1], 1), (&b[2], 1)],
        upstream_extra,
        tail,
    )
}

/// Bind a proxy for `cfg`.
pub async fn start(cfg: Config) -> Server {
    Server::bind(cfg).await.unwrap()
}

/// An address nothing listens on (bound, then closed): connections to it are refused.
pub fn closed_addr() -> SocketAddr {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
}
