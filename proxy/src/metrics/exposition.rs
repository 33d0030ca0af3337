//! The Prometheus text exposition of `GET /metrics`: the proxy-wide counters, then
//! every upstream's and backend's state, read at scrape time.
//!
//! Written by hand rather than through a client library: every value already lives
//! in a `Relaxed` atomic (the proxy's counters, the balancer's backends, the pools),
//! so a scrape only reads and formats them, and the request path pays for nothing
//! but its own `fetch_add`s. The families follow the conventions of HAProxy's and
//! Envoy's exporters: HELP and TYPE per family, `_total` counters, units in names,
//! one 0/1 series per state.
use super::{family, gauge, CHECKS};
use crate::state::Proxy;
use crate::upstream::Upstream;
use ringleader_balancer::{Backend, Health};
use std::fmt::Write as _;
use std::sync::atomic::Ordering::Relaxed;

/// A label value escaped for the text format (backslash, double quote, line feed).
fn label(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// The states of `ringleader_backend_health`, each its own 0/1 series.
const STATES: [&str; 3] = ["up", "down", "ejected"];

fn state_of(h: Health) -> &'static str {
    match h {
        Health::Up => "up",
        Health::Down => "down",
        Health::Ejected { .. } => "ejected",
    }
}

/// One backend's identity as labels: `upstream`, `backend` (what /status and the logs
/// call it: its name, else its address) and `addr` (always its address).
fn backend_labels(uname: &str, up: &Upstream, b: &Backend) -> String {
    format!(
        "upstream=\"{}\",backend=\"{}\",addr=\"{}\"",
        label(uname),
        label(up.label_of(b.id())),
        label(b.addr())
    )
}

/// A per-backend family: HELP, TYPE, then `write` for every backend of every upstream
/// (`write` writes zero or more lines given the backend's labels).
fn per_backend(
    out: &mut String,
    state: &crate::state::State,
    (name, kind, help): (&str, &str, &str),
    mut write: impl FnMut(&mut String, &str, &Upstream, &Backend, &str),
) {
    family(out, name, kind, help);
    for (uname, up) in &state.upstreams {
        for b in &up.backends() {
            let l = backend_labels(uname, up, b);
            write(out, name, up, b, &l);
        }
    }
}

/// One sample line: `name{labels} v`.
fn sample(out: &mut String, name: &str, labels: &str, v: impl std::fmt::Display) {
    let _ = writeln!(out, "{name}{{{labels}}} {v}");
}

/// A per-upstream family: HELP, TYPE and one sample per upstream.
fn per_upstream(
    out: &mut String,
    state: &crate::state::State,
    (name, kind, help): (&str, &str, &str),
    value: impl Fn(&Upstream) -> u64,
) {
    family(out, name, kind, help);
    for (uname, up) in &state.upstreams {
        let _ = writeln!(out, "{name}{{upstream=\"{}\"}} {}", label(uname), value(up));
    }
}

/// All metrics of `proxy` in Prometheus text format.
pub(crate) fn render(proxy: &Proxy) -> String {
    let mut out = String::with_capacity(8192);
    let m = &proxy.shared.metrics;
    m.render(&mut out);
    let state = proxy.shared.state.load();
    let out = &mut out;
    per_backend(
        out,
        &state,
        (
            "ringleader_backend_in_flight",
            "gauge",
            "Requests in flight per backend.",
        ),
        |out, n, _, b, l| sample(out, n, l, b.in_flight()),
    );
    per_backend(
        out,
        &state,
        (
            "ringleader_backend_up",
            "gauge",
            "1 when the backend is available (up and not ejected).",
        ),
        |out, n, _, b, l| sample(out, n, l, u8::from(b.is_available())),
    );
    per_backend(
        out,
        &state,
        (
            "ringleader_backend_health",
            "gauge",
            "Backend health: one series per state (up, down, ejected), 1 for the current one.",
        ),
        |out, n, _, b, l| {
            let now = state_of(b.health());
            for s in STATES {
                let _ = writeln!(out, "{n}{{{l},state=\"{s}\"}} {}", u8::from(s == now));
            }
        },
    );
    per_backend(
        out,
        &state,
        (
            "ringleader_backend_ewma_seconds",
            "gauge",
            "Peak-EWMA response time per backend.",
        ),
        |out, n, _, b, l| {
            sample(out, n, l, b.ewma().as_secs_f64());
        },
    );
    per_backend(
        out,
        &state,
        (
            "ringleader_backend_requests_total",
            "counter",
            "Requests sent per backend.",
        ),
        |out, n, _, b, l| sample(out, n, l, b.requests()),
    );
    per_backend(
        out,
        &state,
        (
            "ringleader_backend_failures_total",
            "counter",
            "Failed requests per backend (errors, timeouts, 5xx).",
        ),
        |out, n, _, b, l| sample(out, n, l, b.failures()),
    );
    per_backend(
        out,
        &state,
        (
            "ringleader_backend_ejections_total",
            "counter",
            "Passive ejections per backend.",
        ),
        |out, n, _, b, l| sample(out, n, l, b.ejections()),
    );
    per_backend(
        out,
        &state,
        (
            "ringleader_backend_http_responses_total",
            "counter",
            "Responses relayed to clients per backend, by status class (code).",
        ),
        |out, n, up, b, l| {
            // Zeros before the backend's first response.
            let classes = m
                .backend_responses
                .get(&up.name, b.id())
                .unwrap_or_default();
            for (code, v) in classes.get() {
                let _ = writeln!(out, "{n}{{{l},code=\"{code}\"}} {v}");
            }
        },
    );
    per_backend(
        out,
        &state,
        (
            "ringleader_backend_idle_connections",
            "gauge",
            "Idle keep-alive connections pooled per backend.",
        ),
        |out, n, up, b, l| {
            let idle = up.index_of(b.id()).map_or(0, |i| up.conns[i].idle());
            sample(out, n, l, idle as u64)
        },
    );

    // Active checks: only upstreams with a [health] table have them.
    let checked = |up: &Upstream| up.config.health.is_some();
    for (name, help, pick) in [
        (
            "ringleader_backend_checks_total",
            "Active health checks run per backend.",
            true,
        ),
        (
            "ringleader_backend_check_failures_total",
            "Active health checks failed per backend.",
            false,
        ),
    ] {
        per_backend(out, &state, (name, "counter", help), |out, n, up, b, l| {
            if checked(up) {
                let v = CHECKS.get(&up.name, b.id()).map_or(0, |s| {
                    if pick {
                        s.total.load(Relaxed)
                    } else {
                        s.failures.load(Relaxed)
                    }
                });
                sample(out, n, l, v);
            }
        });
    }
    per_backend(
        out,
        &state,
        (
            "ringleader_backend_check_duration_seconds",
            "histogram",
            "Duration of active health checks per backend (connect to verdict).",
        ),
        |out, n, up, b, l| {
            if checked(up) {
                let s = CHECKS.entry(&up.name, b.id());
                s.duration.render(out, n, l);
            }
        },
    );

    // The last check as the balancer's backend keeps it (for /status too).
    per_backend(
        out,
        &state,
        (
            "ringleader_backend_check_last_success",
            "gauge",
            "1 when the backend's last active check passed, 0 when it failed (absent before the first).",
        ),
        |out, n, _, b, l| {
            if let Some((ok, ..)) = b.last_check() {
                sample(out, n, l, u8::from(ok));
            }
        },
    );
    per_backend(
        out,
        &state,
        (
            "ringleader_backend_check_last_duration_seconds",
            "gauge",
            "How long the backend's last active check took.",
        ),
        |out, n, _, b, l| {
            if let Some((.., took)) = b.last_check() {
                sample(out, n, l, took.as_secs_f64());
            }
        },
    );

    per_upstream(
        out,
        &state,
        (
            "ringleader_upstream_panic_picks_total",
            "counter",
            "Backends picked in panic mode (none was available, all were tried).",
        ),
        |up| up.lb.as_ref().map_or(0, |lb| lb.panic_picks()),
    );
    per_upstream(
        out,
        &state,
        (
            "ringleader_upstream_panic",
            "gauge",
            "1 while no backend of the upstream is available and panic mode tries them all.",
        ),
        |up| u64::from(up.lb.as_ref().is_some_and(|lb| lb.in_panic())),
    );
    per_upstream(
        out,
        &state,
        (
            "ringleader_upstream_ejections_active",
            "gauge",
            "Backends of the upstream passively ejected now.",
        ),
        |up| {
            up.backends()
                .iter()
                .filter(|b| matches!(b.health(), Health::Ejected { .. }))
                .count() as u64
        },
    );
    if let Some(f) = &proxy.shared.fleet {
        gauge(
            out,
            "ringleader_cluster_connected",
            "1 while etcd is reachable and every cluster-fed upstream's membership is current (0: serving the last known members).",
            f64::from(u8::from(f.connected())),
        );
        family(
            out,
            "ringleader_cluster_members",
            "gauge",
            "Members of a cluster-fed upstream, as last applied.",
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
    gauge(
        out,
        "ringleader_upstreams",
        "Configured upstreams.",
        state.upstreams.len() as f64,
    );
    std::mem::take(out)
}
