//! The admin endpoints (GET and HEAD): `/metrics` (Prometheus text), `/status` (JSON), the status page at `/` and `/ring` (key lookup).
use crate::response::ProxyBody;
use crate::state::Proxy;
use crate::status_fields;
use http::header::{ALLOW, CACHE_CONTROL, CONTENT_TYPE, X_CONTENT_TYPE_OPTIONS};
use http::{HeaderValue, Method, Request, Response, StatusCode};

/// The methods every admin resource allows (the `Allow` of a 405).
const ALLOW_METHODS: &str = "GET, HEAD";

/// Answer one admin request.
///
/// HEAD is answered as GET is: RFC 9110 §9.1, "All general-purpose servers MUST
/// support the methods GET and HEAD"; hyper sends the head of the GET's answer,
/// `Content-Length` included (RFC 9110 §9.3.2: "the server SHOULD send the same
/// header fields in response to a HEAD request as it would have sent if the
/// request method had been GET"), and leaves the body out.
pub(crate) fn handle<B>(proxy: &Proxy, req: &Request<B>) -> Response<ProxyBody> {
    let path = req.uri().path();
    if !matches!(*req.method(), Method::GET | Method::HEAD) {
        // RFC 9110 §15.5.6: "The origin server MUST generate an Allow header field
        // in a 405 response containing a list of the target resource's currently
        // supported methods." /ring answers its errors in JSON.
        let mut r = if path == "/ring" {
            let body = serde_json::json!({ "error": "method not allowed: GET and HEAD only" });
            text(
                StatusCode::METHOD_NOT_ALLOWED,
                "application/json",
                body.to_string(),
            )
        } else {
            text(
                StatusCode::METHOD_NOT_ALLOWED,
                "text/plain; charset=utf-8",
                "GET and HEAD only\n".to_string(),
            )
        };
        r.headers_mut()
            .insert(ALLOW, HeaderValue::from_static(ALLOW_METHODS));
        return r;
    }
    match path {
        "/metrics" => text(
            StatusCode::OK,
            "text/plain; version=0.0.4; charset=utf-8",
            proxy.metrics_text(),
        ),
        "/status" => text(
            StatusCode::OK,
            "application/json",
            proxy.status_json().to_string(),
        ),
        // The live status page, and the key lookup its consistent-hash upstreams use.
        "/" => crate::status_page::page(),
        "/ring" => crate::status_page::ring(proxy, req.uri().query()),
        _ => text(
            StatusCode::NOT_FOUND,
            "text/plain; charset=utf-8",
            "not found\n".to_string(),
        ),
    }
}

fn text(status: StatusCode, ctype: &'static str, body: String) -> Response<ProxyBody> {
    let mut r = Response::new(ProxyBody::full(body));
    *r.status_mut() = status;
    let h = r.headers_mut();
    h.insert(CONTENT_TYPE, HeaderValue::from_static(ctype));
    // Live values, never cached; read as what they say they are (as the status page).
    h.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    r
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
                        "last_check": status_fields::last_check(b),
                        "check_progress": status_fields::check_progress(b, up.config.health.as_ref()),
                        "ejection_left_ms": status_fields::ejection_left_ms(b),
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
                    // Health verdicts per backend: this proxy's (subjective), the fleet's
                    // (objective, by quorum), every proxy's, and whether it is in the ring.
                    "verdicts": self.shared.verdicts.status(name, up.config.health.is_some()),
                    "retry_budget": status_fields::retry_budget(up),
                    "hash_key": status_fields::hash_key(up),
                    "backends": backends,
                }),
            );
        }
        serde_json::json!({
            "version": env!("CARGO_PKG_VERSION"),
            "uptime_secs": self.shared.started.elapsed().as_secs(),
            "last_reload": status_fields::last_reload(self.shared.last_reload.lock().as_ref()),
            "listeners": status_fields::listeners(&self.shared.running),
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
            "cluster": self.shared.fleet.as_ref().map(|f| {
                let v = self.shared.verdicts.view();
                serde_json::json!({
                    "connected": f.connected(),
                    // Health verdicts: "fleet" (a quorum of live proxies) or "local"
                    // (etcd unreachable: this proxy's own stand in).
                    "verdicts": v.source.as_str(),
                    "proxy_id": v.proxy_id,
                    // Down verdicts needed: a number, or "majority" of the live proxies.
                    "health_quorum": v.quorum.map_or_else(|| serde_json::json!("majority"), |q| serde_json::json!(q)),
                })
            }),
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

    /// All metrics in Prometheus text format (see `metrics::exposition`).
    pub fn metrics_text(&self) -> String {
        let mut out = crate::metrics::exposition::render(self);
        // Health verdicts: subjective, objective, quorum, live proxies; backends
        // labelled by the current state's names.
        let state = self.shared.state.load();
        let name_of = |u: &str, id: &str| {
            state
                .upstreams
                .get(u)
                .map_or(id, |up| up.label_of(id))
                .to_string()
        };
        self.shared.verdicts.metrics(&mut out, name_of);
        out
    }
}

#[cfg(test)]
mod tests {
    use crate::fleet::verdicts::{FleetView, Source, UpstreamView};

    /// The verdict families label a backend as every per-backend family does: its
    /// name (else its address) as `backend`, its address as `addr`.
    #[tokio::test]
    async fn verdict_metrics_name_the_backend_and_its_address() {
        let toml = "[upstream.app]\nbackends = [{ addr = \"127.0.0.1:1\", name = \"alpha\" }, \
                    { addr = \"127.0.0.1:2\" }]\n";
        let p = crate::Proxy::new(crate::Config::from_toml_str(toml, "t.toml").unwrap()).unwrap();
        p.stop_health();
        p.shared.verdicts.set_own("app", "127.0.0.1:1", true);
        p.shared.verdicts.set_own("app", "127.0.0.1:2", false);
        p.shared.verdicts.set_view(FleetView {
            source: Source::Fleet,
            upstreams: [(
                "app".to_string(),
                UpstreamView {
                    live: 1,
                    needed: 1,
                    down: ["127.0.0.1:1".to_string()].into(),
                    ..UpstreamView::default()
                },
            )]
            .into(),
            ..FleetView::default()
        });
        let text = p.metrics_text();
        for line in [
            "ringleader_backend_subjective_down{upstream=\"app\",backend=\"alpha\",addr=\"127.0.0.1:1\"} 1",
            "ringleader_backend_subjective_down{upstream=\"app\",backend=\"127.0.0.1:2\",addr=\"127.0.0.1:2\"} 0",
            "ringleader_backend_objective_down{upstream=\"app\",backend=\"alpha\",addr=\"127.0.0.1:1\"} 1",
            "ringleader_backend_objective_down{upstream=\"app\",backend=\"127.0.0.1:2\",addr=\"127.0.0.1:2\"} 0",
        ] {
            assert!(text.lines().any(|l| l == line), "{line}\n{text}");
        }
    }
}
