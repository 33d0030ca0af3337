//! Readers of the admin listener: /status as JSON, one backend's entry in it, and /metrics counters.
use super::http::{client, get};
use std::net::SocketAddr;

/// GET /status from the admin listener.
pub async fn status(admin: SocketAddr) -> serde_json::Value {
    let a = get(&client(), admin, "/status").await;
    assert_eq!(a.status, 200);
    serde_json::from_str(&a.body).unwrap()
}

/// The /status entry of backend `addr` in upstream `app`, if it is listed.
pub async fn backend_status(admin: SocketAddr, addr: SocketAddr) -> Option<serde_json::Value> {
    status(admin).await["upstreams"]["app"]["backends"]
        .as_array()?
        .iter()
        .find(|b| b["addr"] == addr.to_string())
        .cloned()
}

/// The `health` of backend `addr` in upstream `app` according to /status.
pub async fn health_of(admin: SocketAddr, addr: SocketAddr) -> Option<String> {
    let b = backend_status(admin, addr).await?;
    Some(b["health"].as_str().unwrap_or("").to_string())
}

/// `in_flight` of backend `addr` in upstream `app` according to /status.
pub async fn in_flight_of(admin: SocketAddr, addr: SocketAddr) -> u64 {
    backend_status(admin, addr)
        .await
        .and_then(|b| b["in_flight"].as_u64())
        .expect("backend in /status")
}

/// A counter from /metrics: the first line starting with `name` (which ends with
/// a space, or with its labels).
pub async fn metric(admin: SocketAddr, name: &str) -> u64 {
    let text = get(&client(), admin, "/metrics").await.body;
    text.lines()
        .find_map(|l| l.strip_prefix(name))
        .unwrap_or_else(|| panic!("no {name} in\n{text}"))
        .trim()
        .parse()
        .unwrap()
}

/// Whether backend `addr` in upstream `app` is `available` (in rotation) according to /status.
pub async fn available(admin: SocketAddr, addr: SocketAddr) -> bool {
    backend_status(admin, addr).await.expect("listed")["available"] == true
}
