//! Proxy-wide counters and the latency histogram (Relaxed atomics), rendered as Prometheus text.
pub(crate) mod exposition;

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

/// Upper bounds of the latency histogram buckets, in seconds (Prometheus `le`).
pub(crate) const LATENCY_BUCKETS: [f64; 14] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// Proxy-wide counters. All updates are `Relaxed`: they are statistics, read
/// only for reporting, and order nothing else.
///
/// ```
/// use ringleader_proxy::Metrics;
/// let m = Metrics::default();
/// m.observe(503, std::time::Duration::from_millis(2));
/// let mut text = String::new();
/// m.render(&mut text);
/// assert!(text.contains("ringleader_responses_total{class=\"5xx\"} 1"));
/// ```
#[derive(Debug, Default)]
pub struct Metrics {
    /// Requests received (after routing succeeded or failed).
    pub requests: AtomicU64,
    /// Responses by status class: index 0 = 1xx ... 4 = 5xx.
    pub responses: [AtomicU64; 5],
    /// Retries performed (attempts after the first).
    pub retries: AtomicU64,
    /// Retries skipped because the retry budget was empty.
    pub retries_budget_exhausted: AtomicU64,
    /// Responses the proxy produced itself because no backend was healthy.
    pub no_healthy_backend: AtomicU64,
    /// Client connections accepted.
    pub connections_accepted: AtomicU64,
    /// Client connections currently open.
    pub connections_open: AtomicU64,
    /// Successful config reloads.
    pub reloads: AtomicU64,
    /// Rejected config reloads.
    pub reload_failures: AtomicU64,
    /// Memberships from the cluster applied to an upstream.
    pub membership_updates: AtomicU64,
    /// Requests whose X-Request-Id is a random UUID because no Snowflake ID could
    /// be issued (the worker lease was not confirmed, or the generator failed).
    pub request_id_fallbacks: AtomicU64,
    /// Upgraded connections (WebSocket and other tunnels): opened and open now.
    pub(crate) tunnels: Tunnels,
    latency: Histogram,
}

/// The upgraded connections (tunnels) of the proxy: how many were opened, how many
/// are open, and the signal that closes them at the end of a shutdown's grace.
/// Cheap to clone (each tunnel's task holds one).
#[derive(Debug, Clone)]
pub(crate) struct Tunnels(Arc<TunnelsInner>);

#[derive(Debug)]
struct TunnelsInner {
    opened: AtomicU64,
    open: watch::Sender<u64>,
    closing: watch::Sender<bool>,
}

impl Default for Tunnels {
    fn default() -> Self {
        Tunnels(Arc::new(TunnelsInner {
            opened: AtomicU64::new(0),
            open: watch::Sender::new(0),
            closing: watch::Sender::new(false),
        }))
    }
}

impl Tunnels {
    /// Tunnels opened since start.
    pub(crate) fn opened(&self) -> u64 {
        self.0.opened.load(Relaxed)
    }

    /// Tunnels open now.
    pub(crate) fn open(&self) -> u64 {
        *self.0.open.borrow()
    }

    /// Count a tunnel open until the guard is dropped.
    pub(crate) fn enter(&self) -> TunnelGuard {
        self.0.opened.fetch_add(1, Relaxed);
        self.0.open.send_modify(|n| *n += 1);
        TunnelGuard(self.clone())
    }

    /// Resolves when the tunnels must close (the shutdown grace is over).
    pub(crate) async fn closing(&self) {
        let mut rx = self.0.closing.subscribe();
        let _ = rx.wait_for(|c| *c).await;
    }

    /// Let the open tunnels finish for up to `grace`, then close the rest (they stop
    /// within moments: each one's task drops its sockets). Returns how many were closed.
    pub(crate) async fn drain(&self, grace: Duration) -> u64 {
        let mut rx = self.0.open.subscribe();
        if tokio::time::timeout(grace, rx.wait_for(|n| *n == 0))
            .await
            .is_ok()
        {
            return 0;
        }
        let left = *rx.borrow();
        self.0.closing.send_replace(true);
        let _ = tokio::time::timeout(Duration::from_secs(1), rx.wait_for(|n| *n == 0)).await;
        left
    }
}

/// One open tunnel, counted until dropped.
#[derive(Debug)]
pub(crate) struct TunnelGuard(Tunnels);

impl Drop for TunnelGuard {
    fn drop(&mut self) {
        self.0 .0.open.send_modify(|n| *n = n.saturating_sub(1));
    }
}

#[derive(Debug, Default)]
struct Histogram {
    buckets: [AtomicU64; LATENCY_BUCKETS.len()],
    count: AtomicU64,
    sum_micros: AtomicU64,
}

impl Metrics {
    /// Count a response with `status` that took `latency` (request in to response head out).
    pub fn observe(&self, status: u16, latency: Duration) {
        let class = usize::from(status / 100).clamp(1, 5) - 1;
        self.responses[class].fetch_add(1, Relaxed);
        let secs = latency.as_secs_f64();
        // Non-cumulative buckets; summed when rendered.
        if let Some(i) = LATENCY_BUCKETS.iter().position(|&le| secs <= le) {
            self.latency.buckets[i].fetch_add(1, Relaxed);
        }
        self.latency.count.fetch_add(1, Relaxed);
        self.latency.sum_micros.fetch_add(
            latency.as_micros().min(u128::from(u64::MAX)) as u64,
            Relaxed,
        );
    }

    /// Responses counted so far in status class `class` (1..=5).
    pub fn responses_in_class(&self, class: usize) -> u64 {
        self.responses[class.clamp(1, 5) - 1].load(Relaxed)
    }

    /// Append the proxy-wide metrics in Prometheus text format.
    pub fn render(&self, out: &mut String) {
        counter(
            out,
            "ringleader_requests_total",
            "Requests received.",
            self.requests.load(Relaxed),
        );
        let _ = writeln!(
            out,
            "# HELP ringleader_responses_total Responses sent, by status class."
        );
        let _ = writeln!(out, "# TYPE ringleader_responses_total counter");
        for (i, c) in self.responses.iter().enumerate() {
            let _ = writeln!(
                out,
                "ringleader_responses_total{{class=\"{}xx\"}} {}",
                i + 1,
                c.load(Relaxed)
            );
        }
        counter(
            out,
            "ringleader_retries_total",
            "Retries (attempts after the first).",
            self.retries.load(Relaxed),
        );
        counter(
            out,
            "ringleader_retries_budget_exhausted_total",
            "Retries not made because the retry budget was empty.",
            self.retries_budget_exhausted.load(Relaxed),
        );
        counter(
            out,
            "ringleader_no_healthy_backend_total",
            "503s because no backend was available.",
            self.no_healthy_backend.load(Relaxed),
        );
        counter(
            out,
            "ringleader_connections_accepted_total",
            "Client connections accepted.",
            self.connections_accepted.load(Relaxed),
        );
        gauge(
            out,
            "ringleader_connections_open",
            "Client connections open.",
            self.connections_open.load(Relaxed) as f64,
        );
        counter(
            out,
            "ringleader_upgrades_total",
            "Connections upgraded (101 Switching Protocols relayed: WebSocket and others).",
            self.tunnels.opened(),
        );
        gauge(
            out,
            "ringleader_upgraded_connections",
            "Upgraded connections open (bytes copied both ways).",
            self.tunnels.open() as f64,
        );
        counter(
            out,
            "ringleader_reloads_total",
            "Successful config reloads.",
            self.reloads.load(Relaxed),
        );
        counter(
            out,
            "ringleader_reload_failures_total",
            "Rejected config reloads.",
            self.reload_failures.load(Relaxed),
        );
        counter(
            out,
            "ringleader_membership_updates_total",
            "Memberships from the cluster applied to an upstream.",
            self.membership_updates.load(Relaxed),
        );
        counter(
            out,
            "ringleader_request_id_fallbacks_total",
            "X-Request-Ids issued as random UUIDs because no Snowflake ID could be (worker lease not confirmed).",
            self.request_id_fallbacks.load(Relaxed),
        );
        let _ = writeln!(
            out,
            "# HELP ringleader_request_duration_seconds Time from request to response head."
        );
        let _ = writeln!(out, "# TYPE ringleader_request_duration_seconds histogram");
        let mut cumulative = 0;
        for (le, b) in LATENCY_BUCKETS.iter().zip(&self.latency.buckets) {
            cumulative += b.load(Relaxed);
            let _ = writeln!(
                out,
                "ringleader_request_duration_seconds_bucket{{le=\"{le}\"}} {cumulative}"
            );
        }
        let count = self.latency.count.load(Relaxed);
        let _ = writeln!(
            out,
            "ringleader_request_duration_seconds_bucket{{le=\"+Inf\"}} {count}"
        );
        let sum = self.latency.sum_micros.load(Relaxed) as f64 / 1e6;
        let _ = writeln!(out, "ringleader_request_duration_seconds_sum {sum}");
        let _ = writeln!(out, "ringleader_request_duration_seconds_count {count}");
    }
}

/// Write one counter with HELP and TYPE lines.
pub(crate) fn counter(out: &mut String, name: &str, help: &str, v: u64) {
    let _ = writeln!(
        out,
        "# HELP {name} {help}\n# TYPE {name} counter\n{name} {v}"
    );
}

/// Write one gauge with HELP and TYPE lines.
pub(crate) fn gauge(out: &mut String, name: &str, help: &str, v: f64) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} gauge\n{name} {v}");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn tunnels_get_the_grace_then_are_told_to_close() {
        let t = Tunnels::default();
        let (a, b) = (t.enter(), t.enter());
        assert_eq!((t.opened(), t.open()), (2, 2));
        // One ends within the grace, the other is still open at its end.
        let ends = tokio::spawn(async move {
            tokio::time::sleep(Duration::from_secs(1)).await;
            drop(a);
        });
        let closer = t.clone();
        let closed = tokio::spawn(async move {
            closer.closing().await;
            drop(b);
        });
        let start = tokio::time::Instant::now();
        assert_eq!(t.drain(Duration::from_secs(5)).await, 1);
        assert_eq!(start.elapsed(), Duration::from_secs(5));
        ends.await.unwrap();
        closed.await.unwrap();
        assert_eq!((t.opened(), t.open()), (2, 0));
        // Nothing open: no wait.
        let start = tokio::time::Instant::now();
        assert_eq!(Tunnels::default().drain(Duration::from_secs(5)).await, 0);
        assert_eq!(start.elapsed(), Duration::ZERO);
    }

    #[test]
    fn histogram_is_cumulative_and_classes_counted() {
        let m = Metrics::default();
        m.observe(200, Duration::from_micros(300));
        m.observe(503, Duration::from_millis(30));
        m.observe(204, Duration::from_secs(60));
        let mut s = String::new();
        m.render(&mut s);
        assert!(
            s.contains("ringleader_responses_total{class=\"2xx\"} 2"),
            "{s}"
        );
        assert!(
            s.contains("ringleader_responses_total{class=\"5xx\"} 1"),
            "{s}"
        );
        assert!(
            s.contains("ringleader_request_duration_seconds_bucket{le=\"0.0005\"} 1"),
            "{s}"
        );
        assert!(
            s.contains("ringleader_request_duration_seconds_bucket{le=\"0.05\"} 2"),
            "{s}"
        );
        assert!(
            s.contains("ringleader_request_duration_seconds_bucket{le=\"10\"} 2"),
            "{s}"
        );
        assert!(
            s.contains("ringleader_request_duration_seconds_bucket{le=\"+Inf\"} 3"),
            "{s}"
        );
        assert_eq!(m.responses_in_class(5), 1);
    }
}
