//! Proxy-wide counters and the latency histogram (Relaxed atomics), rendered as Prometheus text.
pub(crate) mod exposition;

use arc_swap::ArcSwap;
use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, LazyLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
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
/// assert!(text.contains("ringleader_http_responses_total{code=\"5xx\"} 1"));
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
    /// Requests whose client went away before their response head was ready (the
    /// access log's 499s); not among `responses`.
    pub client_aborts: AtomicU64,
    /// Upgraded connections (WebSocket and other tunnels): opened and open now.
    pub(crate) tunnels: Tunnels,
    /// Responses relayed from each backend, by status class.
    pub(crate) backend_responses: PerBackend<Classes>,
    latency: Histogram,
    /// The process's start, read when the first proxy is made.
    start: ProcessStart,
}

/// `process_start_time_seconds`, taken at construction (see [`process_start_time`]).
#[derive(Debug)]
struct ProcessStart(f64);

impl Default for ProcessStart {
    fn default() -> Self {
        ProcessStart(process_start_time())
    }
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

/// A histogram over [`LATENCY_BUCKETS`]: non-cumulative bucket counts, the last one for
/// values above the top bound, and the sum in microseconds, all `Relaxed`.
///
/// There is no separate count: a scrape derives `le="+Inf"` and `_count` from the
/// buckets it read, in the same pass, so that however observations race the scrape,
/// the cumulative buckets it shows never decrease and end in `+Inf` equal to `_count`
/// (Prometheus' text exposition format: "A histogram must have a bucket with
/// {le="+Inf"}. Its value must be identical to the value of x_count."). The sum is
/// read apart and may be a few observations off.
#[derive(Debug, Default)]
pub(crate) struct Histogram {
    buckets: [AtomicU64; LATENCY_BUCKETS.len() + 1],
    sum_micros: AtomicU64,
}

impl Histogram {
    /// Count one observation of `d`.
    pub(crate) fn observe(&self, d: Duration) {
        let secs = d.as_secs_f64();
        let i = LATENCY_BUCKETS
            .iter()
            .position(|&le| secs <= le)
            .unwrap_or(LATENCY_BUCKETS.len());
        self.buckets[i].fetch_add(1, Relaxed);
        self.sum_micros
            .fetch_add(d.as_micros().min(u128::from(u64::MAX)) as u64, Relaxed);
    }

    /// Append the `_bucket`, `_sum` and `_count` series of `name`, each with `labels`
    /// (`k="v",...`, may be empty) before `le`. No HELP/TYPE lines.
    pub(crate) fn render(&self, out: &mut String, name: &str, labels: &str) {
        let sep = if labels.is_empty() { "" } else { "," };
        // One read of every bucket, before anything is written.
        let counts: [u64; LATENCY_BUCKETS.len() + 1] =
            std::array::from_fn(|i| self.buckets[i].load(Relaxed));
        let mut cumulative = 0u64;
        for (le, n) in LATENCY_BUCKETS.iter().zip(&counts) {
            cumulative += n;
            let _ = writeln!(
                out,
                "{name}_bucket{{{labels}{sep}le=\"{le}\"}} {cumulative}"
            );
        }
        let count = cumulative + counts[LATENCY_BUCKETS.len()];
        let _ = writeln!(out, "{name}_bucket{{{labels}{sep}le=\"+Inf\"}} {count}");
        let sum = self.sum_micros.load(Relaxed) as f64 / 1e6;
        let braces = |out: &mut String, suffix: &str, v: &dyn std::fmt::Display| {
            let _ = if labels.is_empty() {
                writeln!(out, "{name}_{suffix} {v}")
            } else {
                writeln!(out, "{name}_{suffix}{{{labels}}} {v}")
            };
        };
        braces(out, "sum", &sum);
        braces(out, "count", &count);
    }
}

impl Metrics {
    /// Count a response with `status` that took `latency` (request in to response head out).
    pub fn observe(&self, status: u16, latency: Duration) {
        let class = usize::from(status / 100).clamp(1, 5) - 1;
        self.responses[class].fetch_add(1, Relaxed);
        self.latency.observe(latency);
    }

    /// Count a response hyper or the server wrote itself to a request head it could
    /// not read (no request latency to observe).
    pub(crate) fn count_unread(&self, status: u16) {
        // A request too (one that could not be read), so that requests_total is never
        // below the responses.
        self.requests.fetch_add(1, Relaxed);
        let class = usize::from(status / 100).clamp(1, 5) - 1;
        self.responses[class].fetch_add(1, Relaxed);
    }

    /// Responses counted so far in status class `class` (1..=5).
    pub fn responses_in_class(&self, class: usize) -> u64 {
        self.responses[class.clamp(1, 5) - 1].load(Relaxed)
    }

    /// Append the proxy-wide metrics in Prometheus text format.
    pub fn render(&self, out: &mut String) {
        family(
            out,
            "ringleader_build_info",
            "gauge",
            "Always 1; the version of ringleader in a label.",
        );
        let _ = writeln!(
            out,
            "ringleader_build_info{{version=\"{}\"}} 1",
            env!("CARGO_PKG_VERSION")
        );
        gauge(
            out,
            "process_start_time_seconds",
            "Start time of the process since the Unix epoch, in seconds.",
            self.start.0,
        );
        counter(
            out,
            "ringleader_requests_total",
            "Requests received.",
            self.requests.load(Relaxed),
        );
        family(
            out,
            "ringleader_http_responses_total",
            "counter",
            "Responses sent, by status class (code).",
        );
        for (i, c) in self.responses.iter().enumerate() {
            let (n, v) = (i + 1, c.load(Relaxed));
            let _ = writeln!(out, "ringleader_http_responses_total{{code=\"{n}xx\"}} {v}");
        }
        // The same counts under the name and label they had before `code` (deprecated).
        family(
            out,
            "ringleader_responses_total",
            "counter",
            "Responses sent, by status class (deprecated: ringleader_http_responses_total{code}).",
        );
        for (i, c) in self.responses.iter().enumerate() {
            let (n, v) = (i + 1, c.load(Relaxed));
            let _ = writeln!(out, "ringleader_responses_total{{class=\"{n}xx\"}} {v}");
        }
        counter(
            out,
            "ringleader_client_aborts_total",
            "Requests whose client closed the connection or reset the stream before the response head (logged as 499).",
            self.client_aborts.load(Relaxed),
        );
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
        family(
            out,
            "ringleader_request_duration_seconds",
            "histogram",
            "Time from request to response head.",
        );
        self.latency
            .render(out, "ringleader_request_duration_seconds", "");
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

/// Write the HELP and TYPE lines of a family whose samples follow.
pub(crate) fn family(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
}

/// Responses by status class (index 0 = 1xx ... 4 = 5xx), `Relaxed`.
#[derive(Debug, Default)]
pub(crate) struct Classes([AtomicU64; 5]);

impl Classes {
    /// Count one response with `status`.
    pub(crate) fn count(&self, status: u16) {
        self.0[usize::from(status / 100).clamp(1, 5) - 1].fetch_add(1, Relaxed);
    }

    /// `(code label, count)` per class: `("1xx", n)` ... `("5xx", n)`.
    pub(crate) fn get(&self) -> impl Iterator<Item = (&'static str, u64)> + '_ {
        ["1xx", "2xx", "3xx", "4xx", "5xx"]
            .into_iter()
            .zip(&self.0)
            .map(|(code, n)| (code, n.load(Relaxed)))
    }
}

/// Per-backend statistics the balancer does not keep, by upstream name and backend id:
/// looked up without a lock (an `ArcSwap` snapshot, copied whole on the rare insert of
/// a backend seen for the first time), counted with `Relaxed` atomics. Entries outlive
/// reloads, as the balancer's own statistics do; only present backends are exposed.
#[derive(Debug)]
pub(crate) struct PerBackend<T> {
    map: ArcSwap<ByUpstream<T>>,
}

/// Upstream name -> backend id -> entry.
type ByUpstream<T> = HashMap<Box<str>, HashMap<Box<str>, Arc<T>>>;

impl<T> Default for PerBackend<T> {
    fn default() -> Self {
        PerBackend {
            map: ArcSwap::from_pointee(HashMap::new()),
        }
    }
}

impl<T: Default> PerBackend<T> {
    /// The entry of `backend` (its id) in `upstream`, made on first use.
    pub(crate) fn entry(&self, upstream: &str, backend: &str) -> Arc<T> {
        if let Some(t) = self.get(upstream, backend) {
            return t;
        }
        let mut made = None;
        self.map.rcu(|m| {
            let mut m = HashMap::clone(m);
            let t = m
                .entry(upstream.into())
                .or_default()
                .entry(backend.into())
                .or_default()
                .clone();
            made = Some(t);
            m
        });
        made.unwrap_or_default()
    }

    /// Run `f` on the entry of `backend` in `upstream` (made on first use), without
    /// touching the entry's reference count: the request path's way in.
    pub(crate) fn with<R>(&self, upstream: &str, backend: &str, f: impl FnOnce(&T) -> R) -> R {
        if let Some(t) = self.map.load().get(upstream).and_then(|m| m.get(backend)) {
            return f(t);
        }
        f(&self.entry(upstream, backend))
    }

    /// The entry of `backend` in `upstream`, if it was ever made.
    pub(crate) fn get(&self, upstream: &str, backend: &str) -> Option<Arc<T>> {
        self.map.load().get(upstream)?.get(backend).cloned()
    }
}

/// Active health checks of one backend: how many ran, how many failed, how long they took.
#[derive(Debug, Default)]
pub(crate) struct CheckStats {
    pub(crate) total: AtomicU64,
    pub(crate) failures: AtomicU64,
    pub(crate) duration: Histogram,
}

/// Every backend's active-check statistics. Process-wide, because the check tasks know
/// their upstream and backend but not the proxy; keyed by upstream name and backend id
/// (its address), so two proxies in one process share an entry only for the same
/// upstream name and backend address.
pub(crate) static CHECKS: LazyLock<PerBackend<CheckStats>> = LazyLock::new(PerBackend::default);

/// Record one active check of `backend_id` in `upstream`: passed or not, and how long it took.
pub(crate) fn record_check(upstream: &str, backend_id: &str, ok: bool, took: Duration) {
    let s = CHECKS.entry(upstream, backend_id);
    s.total.fetch_add(1, Relaxed);
    if !ok {
        s.failures.fetch_add(1, Relaxed);
    }
    s.duration.observe(took);
}

/// When this process started, in seconds since the Unix epoch (`process_start_time_seconds`).
///
/// On Linux from procfs: the boot time (`btime` in `/proc/stat`) plus the process's
/// `starttime` (field 22 of `/proc/self/stat`, in clock ticks since boot, proc(5)).
/// Ticks are taken as 100 per second: USER_HZ is 100 on Linux (prometheus/procfs,
/// `proc_stat.go`, hard-codes `userHZ = 100` for the same computation, the value "used
/// in all versions of Linux"). Elsewhere, or if procfs cannot be read, the time this
/// was first asked (when the first proxy of the process was made).
pub(crate) fn process_start_time() -> f64 {
    static START: LazyLock<f64> = LazyLock::new(|| {
        procfs_start_time().unwrap_or_else(|| {
            SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0.0, |d| d.as_secs_f64())
        })
    });
    *START
}

fn procfs_start_time() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    let btime = std::fs::read_to_string("/proc/stat").ok()?;
    parse_start_time(&stat, &btime)
}

/// `btime + starttime / 100` from the texts of `/proc/self/stat` and `/proc/stat`.
fn parse_start_time(self_stat: &str, stat: &str) -> Option<f64> {
    // The command name (field 2) is in parentheses and may hold spaces or ')':
    // the fields after the last ')' start at field 3.
    let after = &self_stat[self_stat.rfind(')')? + 1..];
    let ticks: u64 = after.split_whitespace().nth(22 - 3)?.parse().ok()?;
    let btime: u64 = stat
        .lines()
        .find_map(|l| l.strip_prefix("btime "))?
        .trim()
        .parse()
        .ok()?;
    Some(btime as f64 + ticks as f64 / 100.0)
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
    fn process_start_from_procfs_texts() {
        // A command name with spaces and a ')' (field 2 of /proc/self/stat).
        let stat = "4242 (we ird) name) S 1 4242 4242 0 -1 4194560 100 0 0 0 \
                    1 2 0 0 20 0 1 0 12345 1000000 200 18446744073709551615";
        let boot = "cpu  1 2 3\nintr 5\nbtime 1700000000\nprocesses 9\n";
        let t = parse_start_time(stat, boot).unwrap();
        assert!((t - 1_700_000_123.45).abs() < 1e-6, "{t}");
        assert_eq!(parse_start_time(stat, "cpu 1\n"), None);
        assert_eq!(parse_start_time("4242 (x) S 1", boot), None);
        // This process: after boot, not in the future.
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs_f64();
        let start = process_start_time();
        assert!(start <= now && start > 1_000_000_000.0, "{start}");
    }

    #[test]
    fn per_backend_entries_are_made_once_and_found() {
        let p = PerBackend::<Classes>::default();
        assert!(p.get("app", "a:1").is_none());
        p.with("app", "a:1", |c| c.count(204));
        p.with("app", "a:1", |c| c.count(503));
        p.with("app", "b:1", |c| c.count(200));
        let counts: Vec<u64> = p.get("app", "a:1").unwrap().get().map(|(_, n)| n).collect();
        assert_eq!(counts, [0, 1, 0, 0, 1]);
        assert!(p.get("other", "a:1").is_none());
    }

    /// The `(le, value)` of every `_bucket` line of `text`, then `_count`'s value.
    fn buckets_and_count(text: &str) -> (Vec<(String, u64)>, u64) {
        let mut buckets = Vec::new();
        let mut count = None;
        for l in text.lines() {
            let (series, v) = l.rsplit_once(' ').unwrap();
            let name = series.split('{').next().unwrap();
            if let Some(le) = series.split_once("le=\"") {
                buckets.push((le.1.trim_end_matches("\"}").to_string(), v.parse().unwrap()));
            } else if name.ends_with("_count") {
                count = Some(v.parse().unwrap());
            }
        }
        (buckets, count.unwrap())
    }

    #[test]
    fn values_above_the_top_bound_are_only_in_inf_and_count() {
        let h = Histogram::default();
        h.observe(Duration::from_millis(1));
        h.observe(Duration::from_secs(11));
        h.observe(Duration::from_secs(3600));
        let mut s = String::new();
        h.render(&mut s, "h", "");
        let (buckets, count) = buckets_and_count(&s);
        assert_eq!(buckets.len(), LATENCY_BUCKETS.len() + 1);
        assert!(buckets.windows(2).all(|w| w[0].1 <= w[1].1), "{s}");
        assert_eq!(buckets[LATENCY_BUCKETS.len() - 1], ("10".to_string(), 1));
        assert_eq!(buckets[LATENCY_BUCKETS.len()], ("+Inf".to_string(), 3));
        assert_eq!(count, 3, "{s}");
    }

    /// Scrapes racing observations (all within the top bound) see cumulative buckets
    /// that never decrease and end in `+Inf` equal to both the top bucket and `_count`.
    #[test]
    fn a_scrape_racing_observations_is_consistent() {
        use std::sync::atomic::AtomicBool;
        let h = Arc::new(Histogram::default());
        let done = Arc::new(AtomicBool::new(false));
        let observers: Vec<_> = (0..2)
            .map(|_| {
                let (h, done) = (h.clone(), done.clone());
                std::thread::spawn(move || {
                    for i in 0..2_000_000u64 {
                        if done.load(Relaxed) {
                            break;
                        }
                        h.observe(Duration::from_micros(100 + i % 1000));
                    }
                })
            })
            .collect();
        let mut s = String::new();
        for _ in 0..20_000 {
            s.clear();
            h.render(&mut s, "h", "a=\"b\"");
            let (buckets, count) = buckets_and_count(&s);
            let inf = buckets.last().unwrap().1;
            let top = buckets[LATENCY_BUCKETS.len() - 1].1;
            let ok = buckets.windows(2).all(|w| w[0].1 <= w[1].1) && inf == count && inf == top;
            if !ok {
                done.store(true, Relaxed);
            }
            assert!(ok, "{s}");
        }
        done.store(true, Relaxed);
        for o in observers {
            o.join().unwrap();
        }
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
            s.contains("ringleader_http_responses_total{code=\"2xx\"} 2"),
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
