//! Active health checks: HTTP GET (or the gRPC health service) on a fresh connection per check, driven by a failure detector (rise/fall or phi accrual); this proxy's verdict, which the balancer follows and the fleet reads.
use crate::config::DetectorKind;
use crate::config::HealthConfig;
use crate::fleet::verdicts::Verdicts;
use crate::http1::{self, ClientError, Conn, ReqBody};
use crate::pool::{h2_body, h2_connect, h2_request, H2Target, SendError};
use crate::upstream::{Named, Upstream};
use bytes::Bytes;
use http::header::{CONNECTION, HOST, USER_AGENT};
use http::{HeaderMap, HeaderValue, Method, StatusCode, Uri};
use http_body_util::{BodyExt, Empty};
use rand::{Rng, SeedableRng};
use ringleader_balancer::detector::{
    Accrual, AccrualConfig, Action, Detector, RiseFall, RiseFallConfig,
};
use ringleader_balancer::{Balancer, Health, HealthPolicy};
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::io;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpStream;
use tokio::task::JoinHandle;

/// What a check task checks: a task whose key is unchanged by a reload or a
/// membership change keeps running (and counting), one whose key changed is restarted.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct CheckKey {
    /// Balancer id (the address).
    id: String,
    label: Box<str>,
    /// The balancer and the backend's connection pool it uses (by identity: a reload
    /// keeps both when nothing about them changed).
    lb: usize,
    conns: usize,
    /// The `[health]` table, as its `Debug` text.
    health: String,
}

/// The running check tasks of one upstream.
#[derive(Debug, Default)]
pub(crate) struct Checks {
    tasks: BTreeMap<CheckKey, JoinHandle<()>>,
}

impl Checks {
    /// Stop every task.
    pub(crate) fn abort_all(&mut self) {
        std::mem::take(&mut self.tasks)
            .into_values()
            .for_each(|t| t.abort());
    }
}

/// Bring `checks` in line with `up`: one check task per backend (none when it has no
/// `[health]` table). Tasks of backends whose address, name, pool, balancer and
/// `[health]` table are unchanged keep running, so their detector keeps its counts;
/// the others are stopped, and new ones started. This proxy's verdicts on backends
/// no longer checked are forgotten.
pub(crate) fn sync_checks(up: &Upstream, verdicts: &Arc<Verdicts>, checks: &mut Checks) {
    let checked: BTreeSet<&str> = match (&up.config.health, &up.lb) {
        (Some(_), Some(_)) => up.authorities.iter().map(|(id, _)| id.as_str()).collect(),
        _ => BTreeSet::new(),
    };
    verdicts.retain(&up.name, &checked);
    let (Some(h), Some(lb)) = (up.config.health.clone(), up.lb.as_ref()) else {
        checks.abort_all();
        return;
    };
    let health = format!("{h:?}");
    let h = Arc::new(h);
    let mut old = std::mem::take(&mut checks.tasks);
    for (((id, _), label), conns) in up.authorities.iter().zip(&up.labels).zip(&up.conns) {
        let key = CheckKey {
            id: id.clone(),
            label: label.clone(),
            lb: Arc::as_ptr(lb) as usize,
            conns: Arc::as_ptr(conns) as usize,
            health: health.clone(),
        };
        let task = match old.remove(&key) {
            Some(t) if !t.is_finished() => t,
            _ => {
                let target = Target {
                    lb: lb.clone(),
                    id: id.clone(),
                    label: label.clone(),
                    upstream: up.name.clone(),
                    h2: conns.h2_target().cloned(),
                    connect_timeout: conns.connect_timeout(),
                    verdicts: verdicts.clone(),
                };
                tokio::spawn(check_loop(target, h.clone()))
            }
        };
        checks.tasks.insert(key, task);
    }
    old.into_values().for_each(|t| t.abort());
}

/// Hold down at once, in `up`'s balancer, the backends of `readded` (put back in it,
/// as fresh backends, after an objective exclusion) that this proxy's own verdict has
/// down: a fresh backend starts up, and its check task would correct it only at its
/// next check, letting traffic reach a backend this proxy knows is down meanwhile.
pub(crate) fn apply_own_verdicts(up: &Upstream, verdicts: &Verdicts, readded: &BTreeSet<String>) {
    let (Some(h), Some(lb)) = (&up.config.health, &up.lb) else {
        return;
    };
    for id in readded {
        if verdicts.own_verdict(&up.name, id) != Some(true) {
            continue;
        }
        // The balancer moves after `fall` failed reports.
        for _ in 0..=h.fall {
            match lb.backend(id) {
                Some(b) if b.health() != Health::Down => {
                    lb.report_check(id, false);
                }
                _ => break,
            }
        }
    }
}

/// The backend one check task watches, and the names its log lines give it.
struct Target {
    lb: Arc<Balancer>,
    /// Balancer id (the address).
    id: String,
    /// Its name, else its address.
    label: Box<str>,
    upstream: String,
    /// `protocol = "h2c"` / `"h2"`: checks go over HTTP/2 (a connection of their own).
    h2: Option<H2Target>,
    connect_timeout: Duration,
    /// Where this proxy's verdict goes (for /status, and the fleet with `[cluster]`).
    verdicts: Arc<Verdicts>,
}

impl Target {
    /// Whether the balancer has it down by active checks (`None` while it is not in
    /// the balancer: gone, or out of a consistent-hash ring as objectively down).
    fn down(&self) -> Option<bool> {
        self.lb
            .backend(&self.id)
            .map(|b| b.health() == Health::Down)
    }

    /// Liveness failures the balancer counted on live traffic: refused, failed or
    /// timed-out connections and requests not answered in time, never a 5xx answer
    /// (`None` while not in it).
    fn failures(&self) -> Option<u64> {
        self.lb.backend(&self.id).map(|b| b.liveness_failures())
    }

    /// Make the balancer's active state agree with the detector's verdict `down`
    /// (it differs after a backend is put back in a ring as a fresh one, or when an
    /// accrual detector decides): the balancer moves after `fall` failed or `rise`
    /// passed reports, so at most that many are given.
    fn follow(&self, down: bool, h: &HealthConfig) {
        for _ in 0..=h.rise.max(h.fall) {
            match self.down() {
                Some(d) if d != down => {
                    self.lb.report_check(&self.id, !down);
                }
                _ => break,
            }
        }
    }
}

/// What one check got back.
#[derive(Debug)]
pub(crate) enum Outcome {
    /// The backend answered with this status (2xx and 3xx pass).
    Answered(StatusCode),
    /// The TCP connect failed.
    Connect(io::Error),
    /// The exchange failed: reset, closed early, or not HTTP.
    Exchange(ClientError),
    /// No answer within the timeout.
    TimedOut(Duration),
    /// The check request could not be built (path or address not usable in a request).
    Request(http::Error),
    /// The HTTP/2 connection or exchange failed (TLS, handshake, reset).
    Http2(SendError),
    /// The gRPC health service answered with this `grpc-status` (0 = OK) and
    /// serving status (`grpc.health.v1.HealthCheckResponse.status`: 1 = SERVING).
    Grpc { code: u32, serving: u64 },
}

impl Outcome {
    /// 2xx and 3xx pass, as HAProxy's `option httpchk` and nginx's `health_check` judge.
    pub(crate) fn passed(&self) -> bool {
        match self {
            Outcome::Answered(s) => s.is_success() || s.is_redirection(),
            Outcome::Grpc { code, serving } => *code == 0 && *serving == SERVING,
            _ => false,
        }
    }
}

/// An I/O error as a user reads it: "connection refused", "connection reset", ...
fn io_reason(e: &io::Error, f: &mut fmt::Formatter<'_>) -> fmt::Result {
    match e.kind() {
        io::ErrorKind::ConnectionRefused => f.write_str("connection refused"),
        io::ErrorKind::ConnectionReset => f.write_str("connection reset"),
        io::ErrorKind::ConnectionAborted => f.write_str("connection aborted"),
        io::ErrorKind::TimedOut => f.write_str("timed out"),
        io::ErrorKind::UnexpectedEof => f.write_str("connection closed before a response"),
        _ => write!(f, "{e}"),
    }
}

/// The part after `GET /path -> `: `404 Not Found`, `connection refused`, `timed out after 1s`, ...
impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Outcome::Answered(s) => write!(f, "{s}"),
            Outcome::Connect(e) => io_reason(e, f),
            Outcome::Exchange(ClientError::Io(e) | ClientError::Unanswered(e)) => io_reason(e, f),
            Outcome::Exchange(ClientError::Protocol(why)) => write!(f, "bad response ({why})"),
            Outcome::Exchange(e) => write!(f, "{e}"),
            Outcome::TimedOut(t) => write!(f, "timed out after {}", humantime::format_duration(*t)),
            Outcome::Request(e) => write!(f, "cannot send the check: {e}"),
            Outcome::Http2(SendError::Connect(e)) => io_reason(e, f),
            Outcome::Http2(e) => write!(f, "{e}"),
            Outcome::Grpc { code: 0, serving } => f.write_str(match serving {
                1 => "SERVING",
                2 => "NOT_SERVING",
                3 => "SERVICE_UNKNOWN",
                _ => "UNKNOWN",
            }),
            Outcome::Grpc { code, .. } => write!(f, "grpc-status {code}"),
        }
    }
}

/// The detector of one check task: rise/fall or phi accrual (ringleader-balancer's).
enum Det {
    RiseFall(RiseFall),
    /// Boxed: its histories make it several times larger.
    Accrual(Box<Accrual>),
}

impl Det {
    /// A detector of `h`, resuming from `down` and the `(passes, fails)` streak
    /// counted so far (see [`RiseFall::resume`], [`Accrual::resume_down`]).
    fn new(
        h: &HealthConfig,
        now: std::time::Instant,
        seed: u64,
        down: bool,
        streak: (u32, u32),
    ) -> Det {
        // Up to 10% of the interval, so checks of many backends do not align.
        let jitter = h.interval / 10;
        match h.detector {
            DetectorKind::RiseFall => Det::RiseFall(RiseFall::resume(
                RiseFallConfig {
                    interval: h.interval,
                    jitter,
                    timeout: h.timeout,
                    policy: HealthPolicy {
                        rise: h.rise,
                        fall: h.fall,
                    },
                },
                now,
                seed,
                !down,
                streak,
            )),
            DetectorKind::Accrual => {
                let d = AccrualConfig::default();
                let config = AccrualConfig {
                    interval: h.interval,
                    jitter,
                    timeout: h.timeout,
                    probe_timeout: d.probe_timeout.min(h.timeout),
                    threshold: h.phi_threshold,
                    min_std_dev: h.min_std_dev,
                    confirm: h.confirm,
                    confirm_interval: h.confirm_interval,
                    first_heartbeat_estimate: h.interval,
                    rise: h.rise,
                    ..d
                };
                Det::Accrual(Box::new(if down {
                    Accrual::resume_down(config, now, seed, streak.0)
                } else {
                    Accrual::new(config, now, seed)
                }))
            }
        }
    }

    fn get(&mut self) -> &mut dyn Detector {
        match self {
            Det::RiseFall(d) => d,
            Det::Accrual(d) => &mut **d,
        }
    }
}

/// Now, on tokio's clock (paused in tests), as the detectors' `std` instant.
fn now() -> std::time::Instant {
    tokio::time::Instant::now().into_std()
}

/// Check `t` forever, as its detector says: rise/fall (a check every interval, down
/// after `fall` failures, up after `rise` passes) or phi accrual (a check every
/// interval; suspicion above `phi_threshold`, or a failure on live traffic, starts up
/// to `confirm` quick probes `confirm_interval` apart: all fail -> down, one passes ->
/// cleared; up again after `rise` passes). The verdict is this proxy's own
/// (subjective): the balancer follows it (the backend leaves this proxy's failover
/// walk, never the ring) and it is published to the fleet with `[cluster]`. A change is
/// logged at WARN with the last answer; every failed check at DEBUG.
async fn check_loop(t: Target, h: Arc<HealthConfig>) {
    let seed = rand::rngs::SmallRng::from_rng(&mut rand::rng()).random::<u64>();
    let accrual = h.detector == DetectorKind::Accrual;
    // A task restarted (its backend's address, pool or `[health]` changed, or it was
    // put back in a ring as a fresh backend) starts from this proxy's last verdict,
    // else the balancer's state, and from the balancer's streak when the two agree:
    // a fresh detector would count from "up, 0 failures", and `follow` would then
    // force the balancer back up with passes that never happened.
    let own = t.verdicts.own_verdict(&t.upstream, &t.id);
    let in_lb =
        t.lb.backend(&t.id)
            .map(|b| (b.health() == Health::Down, b.check_streak()));
    let mut down = own.or(in_lb.map(|(d, _)| d)) == Some(true);
    let streak = match in_lb {
        Some((d, s)) if d == down => s,
        _ => (0, 0),
    };
    let mut det = Det::new(&h, now(), seed, down, streak);
    // Nothing is published before a first check unless something is known.
    let mut published = own.is_some() || down;
    // Consecutive results of this task, for the log lines.
    let (mut passes, mut fails, mut probes_failed) = (0u32, 0u32, 0u32);
    let mut seen_failures = t.failures();
    let mut last: Option<Outcome> = None;
    let what = if h.grpc {
        format!("gRPC {HEALTH_CHECK}")
    } else {
        format!("GET {}", h.path)
    };
    let (upstream, backend, addr, path) = (&*t.upstream, &*t.label, &*t.id, &*what);
    let who = Named {
        label: backend,
        addr,
    };
    let last_text =
        |last: &Option<Outcome>| last.as_ref().map_or_else(String::new, |o| o.to_string());
    loop {
        let was_down = down;
        match det.get().next_action(now()) {
            Action::Wait(until) => {
                // With accrual, failures on live traffic feed the detector: look at the
                // balancer's count at least every confirm_interval.
                let wake = if accrual {
                    until.min(now() + h.confirm_interval)
                } else {
                    until
                };
                tokio::time::sleep_until(wake.into()).await;
                if accrual {
                    let f = t.failures();
                    if let (Some(f), Some(seen)) = (f, seen_failures) {
                        if f > seen {
                            det.get().on_passive_failure(now());
                        }
                    }
                    seen_failures = f;
                }
            }
            Action::Check { confirm, timeout } => {
                let check = async {
                    match &t.h2 {
                        Some(h2) => check_h2(h2, t.connect_timeout, &h.path, h.grpc).await,
                        None => check_once(&t.id, &h.path).await,
                    }
                };
                let started = tokio::time::Instant::now();
                let outcome = match tokio::time::timeout(timeout, check).await {
                    Ok(o) => o,
                    Err(_) => Outcome::TimedOut(timeout),
                };
                let took = started.elapsed();
                let ok = outcome.passed();
                crate::metrics::record_check(&t.upstream, &t.id, ok, took);
                if ok {
                    (passes, fails, probes_failed) = (passes.saturating_add(1), 0, 0);
                } else {
                    (passes, fails) = (0, fails.saturating_add(1));
                    if confirm {
                        probes_failed = probes_failed.saturating_add(1);
                    }
                }
                // Rise/fall: the balancer counts the same results (its progress shows
                // in /status); accrual decides alone and the balancer follows.
                if !accrual {
                    t.lb.report_check(&t.id, ok);
                }
                // The last check (result, when, how long), for /status and the status page.
                if let Some(b) = t.lb.backend(&t.id) {
                    b.record_last_check(ok, &outcome.to_string(), took);
                }
                // A backend that never answered is suspected by the detector itself
                // (its silence counts from the detector's start).
                det.get().on_check(ok, took, now());
                published = true;
                if !ok {
                    tracing::debug!(
                        upstream = %upstream, backend = %backend, addr = %addr,
                        "active check of {who} failed ({fails} in a row, fall = {}): {path} -> {outcome}",
                        h.fall
                    );
                }
                last = Some(outcome);
            }
            Action::MarkDown => down = true,
            Action::MarkUp => down = false,
        }
        if published {
            t.verdicts.set_own(&t.upstream, &t.id, down);
        }
        t.follow(down, &h);
        match (was_down, down) {
            (false, true) if accrual => tracing::warn!(
                upstream = %upstream, backend = %backend, addr = %addr,
                "backend {who} down: suspected (phi threshold {}, or failed requests) and {} confirmation probes failed (confirm = {}), last: {path} -> {}",
                h.phi_threshold,
                probes_failed,
                h.confirm,
                last_text(&last)
            ),
            (false, true) => tracing::warn!(
                upstream = %upstream, backend = %backend, addr = %addr,
                "backend {who} down: {} consecutive failed checks (fall = {}), last: {path} -> {}",
                // A task restarted by a reload may have seen fewer; the detector counted `fall`.
                fails.max(h.fall),
                h.fall,
                last_text(&last)
            ),
            (true, false) => tracing::warn!(
                upstream = %upstream, backend = %backend, addr = %addr,
                "backend {who} up: {} consecutive passed checks (rise = {}), last: {path} -> {}",
                passes.max(h.rise),
                h.rise,
                last_text(&last)
            ),
            _ => {}
        }
    }
}

/// One check: connect, `GET path HTTP/1.1` with `Connection: close`, through the
/// proxy's own HTTP/1.1 client (the same head encoder and parser as proxied
/// requests). An answer that is not valid HTTP is an error.
pub(crate) async fn check_once(addr: &str, path: &str) -> Outcome {
    let stream = match TcpStream::connect(addr).await {
        Ok(s) => s,
        Err(e) => return Outcome::Connect(e),
    };
    if let Err(e) = stream.set_nodelay(true) {
        return Outcome::Connect(e);
    }
    let (uri, host) = match (path.parse::<Uri>(), HeaderValue::from_str(addr)) {
        (Ok(u), Ok(h)) => (u, h),
        (Err(e), _) => return Outcome::Request(e.into()),
        (_, Err(e)) => return Outcome::Request(e.into()),
    };
    let mut headers = HeaderMap::with_capacity(3);
    headers.insert(HOST, host);
    headers.insert(USER_AGENT, HeaderValue::from_static("ringleader-health"));
    headers.insert(CONNECTION, HeaderValue::from_static("close"));
    let body = ReqBody::<Empty<Bytes>>::Empty;
    let resp = match http1::exchange(Conn::new(stream), &Method::GET, &uri, &headers, body).await {
        Ok(r) => r,
        Err(e) => return Outcome::Exchange(e),
    };
    let status = resp.status();
    // Read the rest (bounded) so closing does not reset the backend's socket.
    let drain = async {
        let mut body = resp.into_body();
        let mut left = 64 * 1024usize;
        while left > 0 {
            match body.frame().await {
                Some(Ok(f)) => left = left.saturating_sub(f.data_ref().map_or(0, Bytes::len)),
                _ => break,
            }
        }
    };
    let _ = tokio::time::timeout(Duration::from_millis(50), drain).await;
    Outcome::Answered(status)
}

/// The standard gRPC health service's method (grpc/grpc `doc/health-checking.md`).
const HEALTH_CHECK: &str = "/grpc.health.v1.Health/Check";
/// `HealthCheckResponse.ServingStatus.SERVING`.
const SERVING: u64 = 1;

/// One check over HTTP/2 on a connection of its own: `GET path`, or with `grpc` the
/// health service's `Check` for the whole server (an empty `HealthCheckRequest`:
/// service ""), which passes with `grpc-status` 0 and status SERVING.
pub(crate) async fn check_h2(
    t: &H2Target,
    connect_timeout: Duration,
    path: &str,
    grpc: bool,
) -> Outcome {
    let mut sender = match h2_connect(t, connect_timeout).await {
        Ok(s) => s,
        Err(e) => return Outcome::Http2(e),
    };
    let (method, path, body) = if grpc {
        // A gRPC message: compressed flag 0, length 0 (RFC-less, gRPC's PROTOCOL-HTTP2.md).
        let msg = Bytes::from_static(&[0, 0, 0, 0, 0]);
        (
            Method::POST,
            HEALTH_CHECK,
            ReqBody::<Empty<Bytes>>::Full(msg),
        )
    } else {
        (Method::GET, path, ReqBody::Empty)
    };
    let uri = match path.parse::<Uri>() {
        Ok(u) => u,
        Err(e) => return Outcome::Request(e.into()),
    };
    let mut headers = HeaderMap::with_capacity(3);
    headers.insert(USER_AGENT, HeaderValue::from_static("ringleader-health"));
    if grpc {
        headers.insert(
            http::header::CONTENT_TYPE,
            HeaderValue::from_static("application/grpc"),
        );
        headers.insert(http::header::TE, HeaderValue::from_static("trailers"));
    }
    let req = match h2_request(t, &method, &uri, &headers, h2_body(body)) {
        Ok(r) => r,
        Err(e) => return Outcome::Http2(e),
    };
    if let Err(e) = sender.ready().await {
        return Outcome::Http2(SendError::H2(e));
    }
    let resp = match sender.send_request(req).await {
        Ok(r) => r,
        Err(e) => return Outcome::Http2(SendError::H2(e)),
    };
    let status = resp.status();
    if !grpc || status != StatusCode::OK {
        return Outcome::Answered(status);
    }
    let head_code = grpc_code(resp.headers());
    let body = match resp.into_body().collect().await {
        Ok(b) => b,
        Err(e) => return Outcome::Http2(SendError::H2(e)),
    };
    let code = body
        .trailers()
        .and_then(grpc_code)
        .or(head_code)
        .unwrap_or(u32::MAX);
    let msg = body.to_bytes();
    Outcome::Grpc {
        code,
        serving: msg.get(5..).map_or(0, serving_status),
    }
}

fn grpc_code(h: &HeaderMap) -> Option<u32> {
    h.get("grpc-status")?.to_str().ok()?.parse().ok()
}

/// `status` (field 1, a varint) of a `HealthCheckResponse` message; 0 (UNKNOWN) when
/// absent, as proto3 leaves a zero value out.
fn serving_status(mut b: &[u8]) -> u64 {
    let varint = |b: &mut &[u8]| -> Option<u64> {
        let mut v = 0u64;
        for shift in (0..64).step_by(7) {
            let (&byte, rest) = b.split_first()?;
            *b = rest;
            v |= u64::from(byte & 0x7f) << shift;
            if byte & 0x80 == 0 {
                return Some(v);
            }
        }
        None
    };
    let mut status = 0;
    while let Some(key) = varint(&mut b) {
        match (key >> 3, key & 7) {
            (1, 0) => status = varint(&mut b).unwrap_or(0),
            (_, 0) => {
                varint(&mut b);
            }
            (_, 2) => {
                let n = varint(&mut b).unwrap_or(u64::MAX) as usize;
                b = b.get(n..).unwrap_or_default();
            }
            _ => break, // not a HealthCheckResponse
        }
    }
    status
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A backend on 127.0.0.1:0 that answers one connection with `answer`, and
    /// hands back the request head it read.
    async fn backend(answer: &'static str) -> (String, tokio::task::JoinHandle<String>) {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap().to_string();
        let task = tokio::spawn(async move {
            let (mut s, _) = l.accept().await.unwrap();
            let mut head = Vec::new();
            let mut buf = [0u8; 1024];
            while !head.ends_with(b"\r\n\r\n") {
                let n = s.read(&mut buf).await.unwrap();
                assert!(n > 0, "request head incomplete");
                head.extend_from_slice(&buf[..n]);
            }
            s.write_all(answer.as_bytes()).await.unwrap();
            String::from_utf8(head).unwrap()
        });
        (addr, task)
    }

    #[tokio::test]
    async fn checks_pass_on_2xx_and_3xx_and_fail_otherwise() {
        for (answer, pass) in [
            ("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok", Some(true)),
            ("HTTP/1.0 302 Found\r\nLocation: /x\r\n\r\n", Some(true)),
            ("HTTP/1.1 204 No Content\r\n\r\n", Some(true)),
            (
                "HTTP/1.1 503 Unavailable\r\nContent-Length: 0\r\n\r\n",
                Some(false),
            ),
            (
                "HTTP/1.1 404 Not Found\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
                Some(false),
            ),
            ("HTTP/2 200\r\n\r\n", None),
            ("HTTP/1.1 2x0 OK\r\n\r\n", None),
            ("SMTP ready\r\n\r\n", None),
        ] {
            let (addr, task) = backend(answer).await;
            let got = check_once(&addr, "/healthz?deep=1").await;
            let got = match got {
                Outcome::Answered(_) => Some(got.passed()),
                _ => None,
            };
            assert_eq!(got, pass, "{answer:?}");
            let head = task.await.unwrap();
            assert!(
                head.starts_with("GET /healthz?deep=1 HTTP/1.1\r\n"),
                "{head:?}"
            );
            assert!(head.contains("connection: close\r\n"), "{head:?}");
            assert!(head.contains(&format!("host: {addr}\r\n")), "{head:?}");
        }
    }

    #[tokio::test]
    async fn outcomes_read_as_what_came_back() {
        let (addr, task) = backend("HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n").await;
        assert_eq!(
            check_once(&addr, "/healthz").await.to_string(),
            "404 Not Found"
        );
        task.await.unwrap();
        let (addr, task) = backend("SMTP ready\r\n\r\n").await;
        let bad = check_once(&addr, "/").await.to_string();
        assert!(bad.starts_with("bad response ("), "{bad}");
        task.await.unwrap();
        // A port nothing listens on: bound, then closed.
        let gone = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .unwrap()
            .local_addr()
            .unwrap()
            .to_string();
        assert_eq!(
            check_once(&gone, "/").await.to_string(),
            "connection refused"
        );
        let reset = Outcome::Exchange(ClientError::Unanswered(
            io::ErrorKind::ConnectionReset.into(),
        ));
        assert_eq!(reset.to_string(), "connection reset");
        let slow = Outcome::TimedOut(Duration::from_millis(1500));
        assert_eq!(slow.to_string(), "timed out after 1s 500ms");
        assert!(!slow.passed() && !reset.passed());
    }

    /// A check task of the backend at `addr` (one backend, upstream "app") with
    /// `h`; its balancer and the verdicts it writes.
    fn accrual_task(
        addr: &str,
        h: HealthConfig,
    ) -> (Arc<Balancer>, Arc<Verdicts>, tokio::task::JoinHandle<()>) {
        let lb = Arc::new(
            Balancer::new(
                vec![ringleader_balancer::BackendSpec::new(addr, 1)],
                ringleader_balancer::BalancerConfig::default(),
            )
            .unwrap(),
        );
        let verdicts = Arc::new(Verdicts::default());
        let t = test_target(&lb, addr, &verdicts);
        (lb, verdicts, tokio::spawn(check_loop(t, Arc::new(h))))
    }

    /// The check target of backend `addr` in upstream `app` of `lb` (HTTP/1.1, 1 s to connect).
    fn test_target(lb: &Arc<Balancer>, addr: &str, verdicts: &Arc<Verdicts>) -> Target {
        Target {
            lb: lb.clone(),
            id: addr.to_string(),
            label: addr.into(),
            upstream: "app".into(),
            h2: None,
            connect_timeout: Duration::from_secs(1),
            verdicts: verdicts.clone(),
        }
    }

    /// Wait (5 s at most) until this proxy's verdict on `addr` is `down`.
    async fn verdict_becomes(verdicts: &Verdicts, addr: &str, down: bool) -> bool {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        while tokio::time::Instant::now() < deadline {
            if verdicts.own_verdict("app", addr) == Some(down) {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        false
    }

    /// A port nothing listens on (bound, then closed).
    async fn closed_port() -> String {
        tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .unwrap()
            .local_addr()
            .unwrap()
            .to_string()
    }

    #[tokio::test]
    async fn accrual_marks_down_a_backend_that_never_answered() {
        let addr = closed_port().await;
        let h = HealthConfig {
            detector: DetectorKind::Accrual,
            interval: Duration::from_millis(50),
            confirm: 2,
            confirm_interval: Duration::from_millis(20),
            ..HealthConfig::default()
        };
        let (lb, verdicts, task) = accrual_task(&addr, h);
        assert!(
            verdict_becomes(&verdicts, &addr, true).await,
            "never marked down"
        );
        // The balancer follows the detector.
        assert_eq!(lb.backends()[0].health(), Health::Down);
        task.abort();
    }

    #[tokio::test]
    async fn accrual_is_fed_by_failures_on_live_traffic() {
        // A backend that answers one check, then is gone.
        let (addr, first) = backend("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n").await;
        // Regular checks every 10 s and a 1 s deviation floor: silence alone would take
        // more than 10 s to raise suspicion.
        let h = HealthConfig {
            detector: DetectorKind::Accrual,
            interval: Duration::from_secs(10),
            min_std_dev: Duration::from_secs(1),
            confirm: 2,
            confirm_interval: Duration::from_millis(20),
            ..HealthConfig::default()
        };
        let (lb, verdicts, task) = accrual_task(&addr, h);
        first.await.unwrap();
        assert!(
            verdict_becomes(&verdicts, &addr, false).await,
            "first check"
        );
        // Requests keep failing: the probes confirm, long before the next regular check.
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        while verdicts.own_verdict("app", &addr) != Some(true) {
            assert!(
                tokio::time::Instant::now() < deadline,
                "not down within 5 s of failing requests"
            );
            lb.pick(&ringleader_balancer::RequestCtx::new())
                .unwrap()
                .connect_refused();
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        task.abort();
    }

    #[tokio::test]
    async fn a_restarted_task_keeps_its_backend_down_until_rise_passes() {
        // One passing check, then refused: rise = 2 is never reached.
        let (addr, first) = backend("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n").await;
        let h = HealthConfig {
            interval: Duration::from_millis(30),
            rise: 2,
            fall: 2,
            ..HealthConfig::default()
        };
        // What an earlier task concluded (a reload or a membership change restarts
        // tasks; a backend put back in a ring is a fresh one in the balancer).
        let (lb, verdicts) = (
            Arc::new(
                Balancer::new(
                    vec![ringleader_balancer::BackendSpec::new(&addr, 1)],
                    ringleader_balancer::BalancerConfig::default(),
                )
                .unwrap(),
            ),
            Arc::new(Verdicts::default()),
        );
        verdicts.set_own("app", &addr, true);
        let t = test_target(&lb, &addr, &verdicts);
        let task = tokio::spawn(check_loop(t, Arc::new(h)));
        first.await.unwrap();
        // Wait for a later, refused check.
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        while lb.backends()[0].last_check().is_none_or(|(ok, ..)| ok) {
            assert!(tokio::time::Instant::now() < deadline, "no second check");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        assert_eq!(verdicts.own_verdict("app", &addr), Some(true));
        assert_eq!(
            lb.backends()[0].health(),
            Health::Down,
            "the balancer follows"
        );
        task.abort();
    }

    /// A backend that accepts every connection and closes it at once (each check
    /// fails with "connection closed before a response"), and how many it accepted.
    async fn closing_backend() -> (String, Arc<std::sync::atomic::AtomicU32>) {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap().to_string();
        let n = Arc::new(std::sync::atomic::AtomicU32::new(0));
        let count = n.clone();
        tokio::spawn(async move {
            while let Ok((s, _)) = l.accept().await {
                count.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                drop(s);
            }
        });
        (addr, n)
    }

    /// Wait (5 s at most) until `cond`, polling every few ms.
    async fn wait_for(what: &str, mut cond: impl FnMut() -> bool) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        while !cond() {
            assert!(tokio::time::Instant::now() < deadline, "{what}");
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    }

    /// The balancer backend `addr` of upstream "app" of `p`.
    fn backend_of(p: &crate::Proxy, addr: &str) -> Arc<ringleader_balancer::Backend> {
        let state = p.shared.state.load();
        state.upstreams["app"]
            .lb
            .as_ref()
            .and_then(|lb| lb.backend(addr))
            .expect("backend in the balancer")
    }

    const RISE_FALL: &str =
        "[upstream.app.health]\ninterval = \"150ms\"\ntimeout = \"100ms\"\nrise = 2\nfall = 3\n";

    #[tokio::test]
    async fn a_restarted_task_resumes_the_balancers_failure_count() {
        let addr = closed_port().await;
        let config = ringleader_balancer::BalancerConfig {
            health: HealthPolicy { rise: 2, fall: 3 },
            ..Default::default()
        };
        let lb = Arc::new(
            Balancer::new(
                vec![ringleader_balancer::BackendSpec::new(&addr, 1)],
                config,
            )
            .unwrap(),
        );
        // An earlier task counted 2 of fall = 3.
        lb.report_check(&addr, false);
        lb.report_check(&addr, false);
        let verdicts = Arc::new(Verdicts::default());
        let t = test_target(&lb, &addr, &verdicts);
        // The next check comes 2 s after the first: only one is seen here.
        let h = HealthConfig {
            interval: Duration::from_secs(2),
            rise: 2,
            fall: 3,
            ..HealthConfig::default()
        };
        let task = tokio::spawn(check_loop(t, Arc::new(h)));
        // The verdict is published (and the balancer follows it) after the first check.
        wait_for("no first check", || {
            verdicts.own_verdict("app", &addr).is_some()
        })
        .await;
        assert_eq!(
            verdicts.own_verdict("app", &addr),
            Some(true),
            "the third failure in a row is down"
        );
        assert_eq!(lb.backends()[0].health(), Health::Down);
        task.abort();
    }

    #[tokio::test]
    async fn a_reload_does_not_reset_the_failure_count() {
        let (addr, accepted) = closing_backend().await;
        let toml = format!("[upstream.app]\nbackends = [{{ addr = \"{addr}\" }}]\n{RISE_FALL}");
        let config = || crate::Config::from_toml_str(&toml, "t.toml").unwrap();
        let p = crate::Proxy::new(config()).unwrap();
        let b = backend_of(&p, &addr);
        wait_for("two failed checks", || b.check_streak() == (0, 2)).await;
        p.reload(config()).unwrap();
        // Once a fourth check started, the third one is counted: down, and it stays so.
        let n = accepted.load(std::sync::atomic::Ordering::SeqCst);
        wait_for("a fourth check", || {
            accepted.load(std::sync::atomic::Ordering::SeqCst) >= n + 2
        })
        .await;
        assert_eq!(b.health(), Health::Down, "down after 3 failed checks");
        let n = accepted.load(std::sync::atomic::Ordering::SeqCst);
        wait_for("two more checks", || {
            accepted.load(std::sync::atomic::Ordering::SeqCst) >= n + 3
        })
        .await;
        assert_eq!(b.health(), Health::Down, "stays down");
        assert_eq!(p.shared.verdicts.own_verdict("app", &addr), Some(true));
        p.stop_health();
    }

    /// The check tasks of upstream "app" of `p`: backend id -> task id.
    fn task_ids(p: &crate::Proxy) -> BTreeMap<String, tokio::task::Id> {
        p.shared.health_tasks.lock()["app"]
            .tasks
            .iter()
            .map(|(k, t)| (k.id.clone(), t.id()))
            .collect()
    }

    #[tokio::test]
    async fn only_the_check_tasks_of_changed_backends_restart() {
        let (a, b) = (closed_port().await, closed_port().await);
        let toml = |b_extra: &str, health: &str| {
            format!(
                "[cluster]\nendpoints = [\"http://127.0.0.1:1\"]\n[upstream.app]\nbackends_from = \"cluster\"\n{health}{b_extra}"
            )
        };
        let config =
            |health: &str| crate::Config::from_toml_str(&toml("", health), "t.toml").unwrap();
        let p = crate::Proxy::new(config(RISE_FALL)).unwrap();
        let member = |x: &str| crate::BackendConfig::new(x, 1, None);
        p.set_backends("app", vec![member(&a)]).unwrap();
        let first = task_ids(&p);
        assert_eq!(first.len(), 1);
        // A member joins: a's task goes on, b's starts.
        p.set_backends("app", vec![member(&a), member(&b)]).unwrap();
        let second = task_ids(&p);
        assert_eq!(second[&a], first[&a]);
        assert_eq!(second.len(), 2);
        // The same config again: nothing restarts.
        p.reload(config(RISE_FALL)).unwrap();
        assert_eq!(task_ids(&p), second);
        // Another [health]: every task restarts.
        p.reload(config(&RISE_FALL.replace("150ms", "200ms")))
            .unwrap();
        let third = task_ids(&p);
        assert!(third[&a] != second[&a] && third[&b] != second[&b]);
        // A member leaves: its task stops, the other goes on.
        p.set_backends("app", vec![member(&b)]).unwrap();
        let fourth = task_ids(&p);
        assert_eq!(fourth.len(), 1);
        assert_eq!(fourth[&b], third[&b]);
        p.stop_health();
    }

    #[tokio::test]
    async fn membership_churn_does_not_keep_a_dead_backend_up() {
        let (dead, _) = closing_backend().await;
        let other = closed_port().await;
        let toml = format!(
            "[cluster]\nendpoints = [\"http://127.0.0.1:1\"]\n[upstream.app]\nbackends_from = \"cluster\"\n{RISE_FALL}"
        );
        let p = crate::Proxy::new(crate::Config::from_toml_str(&toml, "t.toml").unwrap()).unwrap();
        let member = |a: &str| crate::BackendConfig::new(a, 1, None);
        // An unrelated member comes and goes every 50 ms: far faster than fall x
        // interval (450 ms).
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        let mut i = 0u32;
        loop {
            let mut m = vec![member(&dead)];
            if i % 2 == 0 {
                m.push(member(&other));
            }
            p.set_backends("app", m).unwrap();
            i += 1;
            if p.shared.verdicts.own_verdict("app", &dead) == Some(true)
                && backend_of(&p, &dead).health() == Health::Down
            {
                break;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "the dead backend never held down under churn"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        p.stop_health();
    }

    #[tokio::test]
    async fn a_backend_put_back_in_the_ring_keeps_this_proxys_down_verdict() {
        let (a, b) = (closed_port().await, closed_port().await);
        let toml = format!(
            "[upstream.app]\nstrategy = \"consistent_hash\"\nbackends = [{{ addr = \"{a}\" }}, {{ addr = \"{b}\" }}]\n{RISE_FALL}"
        );
        let p = crate::Proxy::new(crate::Config::from_toml_str(&toml, "t.toml").unwrap()).unwrap();
        // No check task runs here: only the exclusion path can hold `a` down.
        p.stop_health();
        p.shared.verdicts.set_own("app", &a, true);
        assert!(p.set_excluded("app", [a.clone()].into()).unwrap());
        let lb = p.shared.state.load().upstreams["app"].lb.clone().unwrap();
        assert!(lb.backend(&a).is_none(), "out of the ring");
        assert!(p.set_excluded("app", BTreeSet::new()).unwrap());
        let lb = p.shared.state.load().upstreams["app"].lb.clone().unwrap();
        assert_eq!(lb.backend(&a).unwrap().health(), Health::Down);
        assert_eq!(lb.backend(&b).unwrap().health(), Health::Up);
    }

    #[test]
    fn the_serving_status_is_read_from_a_health_check_response() {
        assert_eq!(serving_status(&[0x08, 0x01]), SERVING);
        assert_eq!(serving_status(&[0x08, 0x02]), 2);
        assert_eq!(serving_status(&[]), 0, "UNKNOWN is left out in proto3");
        // An unknown length-delimited field before it is skipped.
        assert_eq!(
            serving_status(&[0x12, 0x02, b'h', b'i', 0x08, 0x01]),
            SERVING
        );
        let ok = Outcome::Grpc {
            code: 0,
            serving: 1,
        };
        assert!(ok.passed());
        assert_eq!(ok.to_string(), "SERVING");
        let not = Outcome::Grpc {
            code: 0,
            serving: 2,
        };
        assert!(!not.passed());
        assert_eq!(not.to_string(), "NOT_SERVING");
        let unimplemented = Outcome::Grpc {
            code: 12,
            serving: 0,
        };
        assert!(!unimplemented.passed());
        assert_eq!(unimplemented.to_string(), "grpc-status 12");
    }
}
