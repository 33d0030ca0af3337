//! The Prometheus text exposition of `GET /metrics`: the proxy-wide counters, then
//! every upstream's and backend's state, read at scrape time.
use super::{counter, gauge};
use crate::state::Proxy;
use std::fmt::Write as _;

/// A label value escaped for the text format (backslash, double quote, line feed).
fn label(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// All metrics of `proxy` in Prometheus text format.
pub(crate) fn render(proxy: &Proxy) -> String {
    let mut out = String::with_capacity(4096);
    proxy.shared.metrics.render(&mut out);
    let state = proxy.shared.state.load();
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
    if let Some(f) = &proxy.shared.fleet {
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
        proxy.shared.started.elapsed().as_secs(),
    );
    gauge(
        &mut out,
        "ringleader_upstreams",
        "Configured upstreams.",
        state.upstreams.len() as f64,
    );
    out
}
