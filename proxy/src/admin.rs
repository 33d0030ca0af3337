//! The admin endpoints: `GET /metrics` (Prometheus text) and `GET /status` (JSON).
use crate::metrics::{counter, gauge};
use crate::response::ProxyBody;
use crate::state::Proxy;
use http::header::CONTENT_TYPE;
use http::{HeaderValue, Method, Request, Response, StatusCode};
use std::fmt::Write as _;

/// Answer one admin request.
pub(crate) fn handle<B>(proxy: &Proxy, req: &Request<B>) -> Response<ProxyBody> {
    let (status, ctype, body) = match (req.method(), req.uri().path()) {
        (&Method::GET, "/metrics") => (
            StatusCode::OK,
            "text/plain; version=0.0.4; charset=utf-8",
            proxy.metrics_text(),
        ),
        (&Method::GET, "/status") => (
            StatusCode::OK,
            "application/json",
            proxy.status_json().to_string(),
        ),
        (&Method::GET, "/") => (
            StatusCode::OK,
            "text/plain; charset=utf-8",
            "ringleader admin: GET /metrics (Prometheus), GET /status (JSON)\n".to_string(),
        ),
        (&Method::GET, _) => (
            StatusCode::NOT_FOUND,
            "text/plain; charset=utf-8",
            "not found\n".to_string(),
        ),
        _ => (
            StatusCode::METHOD_NOT_ALLOWED,
            "text/plain; charset=utf-8",
            "GET only\n".to_string(),
        ),
    };
    let mut r = Response::new(ProxyBody::full(body));
    *r.status_mut() = status;
    r.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(ctype));
    r
}

fn label(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

impl Proxy {
    /// Every upstream's backends with health, in-flight, EWMA latency and counts, as JSON.
    pub fn status_json(&self) -> serde_json::Value {
        let state = self.shared.state.load();
        let m = &self.shared.metrics;
        let ids = self.shared.ids.status();
        let mut ups = serde_json::Map::new();
        let feeds = self
            .shared
            .fleet
            .as_ref()
            .map(|f| f.upstreams.lock().clone())
            .unwrap_or_default();
        for (name, up) in &state.upstreams {
            let backends: Vec<serde_json::Value> = up
                .backends()
                .iter()
                .map(|b| {
                    serde_json::json!({
                        "id": b.id(),
                        "name": up.label_of(b.id()),
                        "addr": b.addr(),
                        "weight": b.weight(),
                        "health": b.health().to_string(),
                        "available": b.is_available(),
                        "in_flight": b.in_flight(),
                        "ewma_ms": b.ewma().as_secs_f64() * 1e3,
                        "requests": b.requests(),
                        "failures": b.failures(),
                        "ejections": b.ejections(),
                        "idle_connections": up.index_of(b.id()).map_or(0, |i| up.conns[i].idle()),
                        // Upgraded connections (WebSocket and other tunnels) open to it now.
                        "upgraded": up.index_of(b.id()).map_or(0, |i| up.conns[i].upgraded()),
                    })
                })
                .collect();
            // Where the backends come from; for the cluster, the membership applied.
            let from = match (&up.config.backends_from, feeds.get(name)) {
                (Some(_), Some(f)) => serde_json::json!({
                    "cluster": {
                        "connected": f.connected,
                        "revision": f.revision,
                        "members": f.members,
                        "ignored": f.ignored,
                    }
                }),
                (Some(_), None) => serde_json::json!({ "cluster": null }),
                (None, _) => serde_json::json!("file"),
            };
            ups.insert(
                name.clone(),
                serde_json::json!({
                    "backends_from": from,
                    "strategy": up.strategy.to_string(),
                    "active_checks": up.config.health.is_some(),
                    "available": up.lb.as_ref().map_or(0, |lb| lb.available()),
                    // No backend available: requests go to all of them (panic mode).
                    "panic": up.lb.as_ref().is_some_and(|lb| lb.in_panic()),
                    "panic_picks": up.lb.as_ref().map_or(0, |lb| lb.panic_picks()),
                    "backends": backends,
                }),
            );
        }
        serde_json::json!({
            "uptime_secs": self.shared.started.elapsed().as_secs(),
            // X-Request-Id's Snowflake worker (null: none held, see request_ids);
            // `worker_id_defaulted` is true when RINGLEADER_WORKER_ID was unset (then
            // replicas may share request IDs).
            "worker_id": ids.worker,
            "worker_id_defaulted": ids.source == "default",
            // Where the worker id comes from (env | default | cluster), the lease's
            // state, and whether request IDs are random UUIDs now (no Snowflake ID
            // could be issued: lease not taken or not confirmed).
            "request_ids": {
                "worker_source": ids.source,
                "lease": ids.lease,
                "fallback_uuid": ids.fallback,
            },
            // With [cluster]: whether etcd is reachable and every membership current
            // (false: upstreams serve their last known members).
            "cluster": self.shared.fleet.as_ref().map(|f| serde_json::json!({
                "connected": f.connected(),
            })),
            // `[server]` settings a reload changed that wait for a restart.
            "restart_required": self
                .pending_restart()
                .into_iter()
                .map(|p| serde_json::json!({
                    "setting": p.setting,
                    "running": p.running,
                    "configured": p.configured,
                }))
                .collect::<Vec<_>>(),
            "requests": m.requests.load(std::sync::atomic::Ordering::Relaxed),
            "retries": m.retries.load(std::sync::atomic::Ordering::Relaxed),
            // Upgraded connections (WebSocket and other tunnels) open now.
            "upgraded_connections": m.tunnels.open(),
            "upstreams": ups,
        })
    }

    /// All metrics in Prometheus text format.
    pub fn metrics_text(&self) -> String {
        let mut out = String::with_capacity(4096);
        self.shared.metrics.render(&mut out);
        let state = self.shared.state.load();
        let families: [(&str, &str, &str); 7] = [
            (
                "ringleader_backend_in_flight",
                "gauge",
                "Requests in flight per backend.",
            ),
            (
                "ringleader_backend_up",
                "gauge",
                "1 when the backend is available (up and not ejected).",
            ),
            (
                "ringleader_backend_health",
                "gauge",
                "Backend health state (1 for the current state).",
            ),
            (
                "ringleader_backend_ewma_seconds",
                "gauge",
                "Peak-EWMA response time per backend.",
            ),
            (
                "ringleader_backend_requests_total",
                "counter",
                "Requests sent per backend.",
            ),
            (
                "ringleader_backend_failures_total",
                "counter",
                "Failed requests per backend.",
            ),
            (
                "ringleader_backend_ejections_total",
                "counter",
                "Passive ejections per backend.",
            ),
        ];
        for (i, (name, kind, help)) in families.iter().enumerate() {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
            for (uname, up) in &state.upstreams {
                for b in up.backends() {
                    // `backend` is what /status and the logs call it (its name, else
                    // its address), `addr` always its address.
                    let l = format!(
                        "upstream=\"{}\",backend=\"{}\",addr=\"{}\"",
                        label(uname),
                        label(up.label_of(b.id())),
                        label(b.addr())
                    );
                    let _ = match i {
                        0 => writeln!(out, "{name}{{{l}}} {}", b.in_flight()),
                        1 => writeln!(out, "{name}{{{l}}} {}", u8::from(b.is_available())),
                        2 => writeln!(out, "{name}{{{l},state=\"{}\"}} 1", b.health()),
                        3 => writeln!(out, "{name}{{{l}}} {}", b.ewma().as_secs_f64()),
                        4 => writeln!(out, "{name}{{{l}}} {}", b.requests()),
                        5 => writeln!(out, "{name}{{{l}}} {}", b.failures()),
                        _ => writeln!(out, "{name}{{{l}}} {}", b.ejections()),
                    };
                }
            }
        }
        let _ = writeln!(
            out,
            "# HELP ringleader_upstream_panic_picks_total Backends picked in panic mode (none was available, all were tried).\n\
             # TYPE ringleader_upstream_panic_picks_total counter"
        );
        for (uname, up) in &state.upstreams {
            let _ = writeln!(
                out,
                "ringleader_upstream_panic_picks_total{{upstream=\"{}\"}} {}",
                label(uname),
                up.lb.as_ref().map_or(0, |lb| lb.panic_picks())
            );
        }
        let _ = writeln!(
            out,
            "# HELP ringleader_upstream_panic 1 while no backend of the upstream is available and panic mode tries them all.\n\
             # TYPE ringleader_upstream_panic gauge"
        );
        for (uname, up) in &state.upstreams {
            let _ = writeln!(
                out,
                "ringleader_upstream_panic{{upstream=\"{}\"}} {}",
                label(uname),
                u8::from(up.lb.as_ref().is_some_and(|lb| lb.in_panic()))
            );
        }
        if let Some(f) = &self.shared.fleet {
            gauge(
                &mut out,
                "ringleader_cluster_connected",
                "1 while etcd is reachable and every cluster-fed upstream's membership is current (0: serving the last known members).",
                f64::from(u8::from(f.connected())),
            );
            let _ = writeln!(
                out,
                "# HELP ringleader_cluster_members Members of a cluster-fed upstream, as last applied.
                 # TYPE ringleader_cluster_members gauge"
            );
            for (uname, feed) in f.upstreams.lock().iter() {
                let _ = writeln!(
                    out,
                    "ringleader_cluster_members{{upstream=\"{}\"}} {}",
                    label(uname),
                    feed.members
                );
            }
        }
        counter(
            &mut out,
            "ringleader_uptime_seconds_total",
            "Seconds since start.",
            self.shared.started.elapsed().as_secs(),
        );
        gauge(
            &mut out,
            "ringleader_upstreams",
            "Configured upstreams.",
            state.upstreams.len() as f64,
        );
        out
    }
}
