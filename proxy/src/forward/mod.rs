//! Forwarding one request to an upstream: body handling, the attempt loop, retries and outcomes.
mod body;
pub(crate) mod tunnel;

use crate::config::{HashCompat, HashKey};
use crate::error::Error;
use crate::headers::is_idempotent;
use crate::http1::{BackendBody, ReqBody};
use crate::metrics::Metrics;
use crate::pool::{BackendConns, Checkin, SendError};
use crate::upstream::Upstream;
use body::{Progress, StreamBody, UpstreamBody};
use bytes::Bytes;
use http::header::{HOST, UPGRADE};
use http::request::Parts;
use http::uri::PathAndQuery;
use http::{HeaderMap, HeaderValue, Method, Response, Uri};
use http_body::Body as _;
use http_body_util::BodyExt;
use hyper::body::Incoming;
use ringleader_balancer::RequestCtx;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU32, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::oneshot;

/// A backend's answer, which backend (index into `Upstream::authorities`)
/// gave it, and the connection to return to the pool when its body is done.
pub(crate) type Answer = (Response<BackendBody>, usize, Checkin);

/// Where the request body is between attempts.
enum BodyState {
    /// Replayable: a fresh copy for every attempt.
    Replay(UpstreamBody),
    /// Streamed; `back` returns it if an attempt dropped it unread.
    Stream {
        body: Option<Incoming>,
        back: Option<oneshot::Receiver<Incoming>>,
    },
}

impl BodyState {
    /// The body for the next attempt (with its progress record when it
    /// streams), or `None` if it was (partly) sent already.
    fn take(&mut self, retry_possible: bool) -> Option<(UpstreamBody, Option<Arc<Progress>>)> {
        match self {
            BodyState::Replay(b) => b.try_clone().map(|b| (b, None)),
            BodyState::Stream { body, back } => {
                if body.is_none() {
                    // The previous attempt's body comes back only if nothing was read from it.
                    *body = Some(back.take()?.try_recv().ok()?);
                }
                let inner = body.take()?;
                let progress = Arc::new(Progress::default());
                let stream = if retry_possible {
                    let (s, rx) = StreamBody::tapped(inner, progress.clone());
                    *back = Some(rx);
                    s
                } else {
                    StreamBody::new(inner, progress.clone())
                };
                Some((ReqBody::Stream(stream), Some(progress)))
            }
        }
    }
}

/// Why an attempt's watchdog fired.
enum Stalled {
    /// No response head within `request_timeout` of the request (body included) being sent.
    Upstream,
    /// The backend waited for more request body for `request_timeout`.
    Client,
}

/// Send on `pool` under the attempt's watchdog. A body-less or buffered
/// request gets `t` from now; a streamed one gets `t` after its body ended,
/// and fails as a client stall if the client sends nothing for `t` while the
/// backend waits for it (a slow upload is not an upstream timeout).
async fn send_watched(
    pool: &BackendConns,
    (method, uri, headers, idempotent, upgrade): (&Method, &Uri, &HeaderMap, bool, bool),
    body: UpstreamBody,
    t: Duration,
    progress: Option<&Progress>,
) -> Result<Result<Response<BackendBody>, SendError>, Stalled> {
    let Some(p) = progress else {
        return tokio::time::timeout(
            t,
            pool.send(method, uri, headers, body, idempotent, upgrade),
        )
        .await
        .map_err(|_| Stalled::Upstream);
    };
    let send = pool.send(method, uri, headers, body, idempotent, upgrade);
    tokio::pin!(send);
    let mut wake = Instant::now() + t;
    loop {
        tokio::select! {
            r = &mut send => return Ok(r),
            _ = tokio::time::sleep_until(wake.into()) => {
                let now = Instant::now();
                let due = match p.done_at() {
                    Some(done) => done + t,
                    None => p.last_frame_at() + t,
                };
                if now < due {
                    wake = due;
                    continue;
                }
                return Err(if p.done_at().is_none() && p.waiting_for_client() {
                    Stalled::Client
                } else {
                    Stalled::Upstream
                });
            }
        }
    }
}

/// The bytes a request's hash key hashes to. Ringleader's own ring hashes a client
/// IP's octets; a compatible placement hashes what the other system does: the
/// address as text (nginx's `$remote_addr`), and for nginx, cookie and query
/// parameter names matched ASCII case-insensitively as its `$cookie_NAME` and
/// `$arg_NAME` do (ngx_http_parse_multi_header_lines and ngx_http_arg compare with
/// ngx_strncasecmp). Values are the raw bytes, not percent-decoded, as in nginx.
fn hash_key_bytes(
    key: &HashKey,
    parts: &Parts,
    peer: SocketAddr,
    compat: Option<HashCompat>,
) -> Option<Bytes> {
    let name_is = |k: &str, name: &str| match compat {
        Some(HashCompat::Nginx) => k.eq_ignore_ascii_case(name),
        _ => k == name,
    };
    match key {
        HashKey::ClientIp if compat.is_some() => Some(Bytes::from(peer.ip().to_string())),
        HashKey::ClientIp => Some(match peer.ip() {
            IpAddr::V4(ip) => Bytes::copy_from_slice(&ip.octets()),
            IpAddr::V6(ip) => Bytes::copy_from_slice(&ip.octets()),
        }),
        HashKey::Header(name) => parts
            .headers
            .get(name)
            .map(|v| Bytes::copy_from_slice(v.as_bytes())),
        HashKey::Path => Some(Bytes::copy_from_slice(parts.uri.path().as_bytes())),
        HashKey::Cookie(name) => parts
            .headers
            .get_all(http::header::COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(';'))
            .filter_map(|c| c.trim().split_once('='))
            .find(|(k, _)| name_is(k, name))
            .map(|(_, v)| Bytes::copy_from_slice(v.as_bytes())),
        HashKey::Query(name) => parts
            .uri
            .query()?
            .split('&')
            .filter_map(|kv| kv.split_once('='))
            .find(|(k, _)| name_is(k, name))
            .map(|(_, v)| Bytes::copy_from_slice(v.as_bytes())),
    }
}

/// Notices whether reporting a failure ejected the backend, to log it with the
/// backend's name and address (the balancer knows only its id).
struct EjectionWatch {
    backend: Arc<ringleader_balancer::Backend>,
    ejections: u64,
}

impl EjectionWatch {
    fn new(pick: &ringleader_balancer::Pick) -> EjectionWatch {
        let backend = pick.backend().clone();
        let ejections = backend.ejections();
        EjectionWatch { backend, ejections }
    }

    /// Log at WARN if the backend was ejected since [`EjectionWatch::new`]; `last`
    /// says what the failure that did it was.
    fn log(&self, up: &Upstream, idx: usize, last: &dyn std::fmt::Display) {
        let n = self.backend.ejections();
        if n <= self.ejections {
            return;
        }
        let who = up.named(idx);
        let p = &up.config.passive;
        tracing::warn!(
            upstream = %up.name,
            backend = %who.label,
            addr = %who.addr,
            "backend {who} ejected (ejection {n}; consecutive_failures = {}, ejection_time = {}), last: {last}",
            p.consecutive_failures,
            humantime::format_duration(p.ejection_time)
        );
    }
}

/// Send `parts` + `body` to `up`, retrying per its policy. On success the
/// response head is back; its body still streams from the backend.
///
/// A request carrying `Upgrade` (forwarded as an upgrade by the handler) is
/// retried on another backend only when its connection could not be opened: once
/// sent, a backend may have switched protocols, so it is never sent again.
///
/// Each send to a backend adds one to `attempts` (the access log's count, shared
/// so that a request whose client leaves mid-way is still logged with it).
pub(crate) async fn forward(
    up: &Upstream,
    mut parts: Parts,
    body: Incoming,
    peer: SocketAddr,
    request_timeout: Duration,
    metrics: &Metrics,
    attempts: Option<&AtomicU32>,
) -> Result<Answer, Error> {
    // No backends (a cluster-fed upstream without members): 503.
    let Some(lb) = up.lb.as_deref() else {
        return Err(Error::NoHealthyBackend);
    };
    let policy = &up.retry;
    let idempotent = is_idempotent(&parts.method, &parts.headers);
    let upgrade = parts.headers.contains_key(UPGRADE);
    let retryable = policy.attempts > 0 && idempotent;
    up.budget.deposit();

    let mut body = if body.is_end_stream() {
        BodyState::Replay(ReqBody::Empty)
    } else if idempotent
        && body
            .size_hint()
            .upper()
            .is_some_and(|n| n <= policy.max_body_bytes as u64)
    {
        // Small enough to keep for a retry, or to send again when a pooled connection
        // closes unanswered (see `BackendConns::send`): read it (bounded by its declared length).
        let limited = http_body_util::Limited::new(body, policy.max_body_bytes);
        match tokio::time::timeout(request_timeout, limited.collect()).await {
            Ok(Ok(c)) => BodyState::Replay(ReqBody::Full(c.to_bytes())),
            Ok(Err(e)) => return Err(Error::ClientBody(e)),
            Err(_) => return Err(Error::ClientTimeout),
        }
    } else {
        BodyState::Stream {
            body: Some(body),
            back: None,
        }
    };

    let key = up.hash_key.as_ref().and_then(|k| {
        hash_key_bytes(
            k,
            &parts,
            peer,
            up.config.hash_compat.as_ref().map(|c| *c.get_ref()),
        )
    });
    let ctx = match &key {
        Some(k) => RequestCtx::with_key(k),
        None => RequestCtx::new(),
    };
    // Backends get origin-form targets (`/path?query`).
    let target = if parts.uri.authority().is_some() {
        let mut p = http::uri::Parts::default();
        p.path_and_query = Some(
            parts
                .uri
                .path_and_query()
                .cloned()
                .unwrap_or_else(|| PathAndQuery::from_static("/")),
        );
        Uri::from_parts(p).map_err(|_| Error::BadRequest("request target cannot be forwarded"))?
    } else {
        std::mem::take(&mut parts.uri)
    };
    // An HTTP/1.0 client without Host: each attempt names its backend.
    let name_backend = !parts.headers.contains_key(HOST);

    let mut candidates = lb.candidates(&ctx);
    let mut tries: u32 = 0;
    let mut last_err: Option<Error> = None;
    let mut fallback: Option<Answer> = None;
    loop {
        let Some(pick) = candidates.next() else { break };
        let Some(idx) = up.index_of_pick(&pick) else {
            continue;
        };
        let more = retryable && tries < policy.attempts;
        let Some((this_body, progress)) = body.take(more) else {
            break;
        };
        tries += 1;
        if let Some(a) = attempts {
            a.fetch_add(1, Relaxed);
        }

        if name_backend {
            if let Ok(v) = HeaderValue::from_str(up.authorities[idx].1.as_str()) {
                parts.headers.insert(HOST, v);
            }
        }

        let started = Instant::now();
        let pool = &up.conns[idx];
        let head = (&parts.method, &target, &parts.headers, idempotent, upgrade);
        let outcome =
            send_watched(pool, head, this_body, request_timeout, progress.as_deref()).await;
        let retry_wanted = match outcome {
            Ok(Ok(resp)) => {
                let resp = resp.map(|b| b.with_idle_timeout(request_timeout));
                let checkin = Checkin::new(pool.clone());
                if resp.status().is_server_error() {
                    let watch = EjectionWatch::new(&pick);
                    pick.failure_after(started.elapsed());
                    watch.log(up, idx, &format_args!("answered {}", resp.status()));
                    if more && policy.on_5xx && !upgrade {
                        fallback = Some((resp, idx, checkin));
                        true
                    } else {
                        return Ok((resp, idx, checkin));
                    }
                } else {
                    // In flight until the body ends (see `Checkin`).
                    let checkin = checkin.with_pick(pick, started.elapsed());
                    return Ok((resp, idx, checkin));
                }
            }
            Ok(Err(e)) if e.is_client_body() => {
                // The client's upload failed: not the backend's fault, no retry.
                drop(pick);
                last_err = Some(Error::ClientBody(Box::new(e)));
                false
            }
            Ok(Err(e)) => {
                let watch = EjectionWatch::new(&pick);
                if e.is_refused() {
                    pick.connect_refused();
                } else if e.is_connect() {
                    pick.unreachable_after(started.elapsed());
                } else {
                    pick.failure_after(started.elapsed());
                }
                watch.log(up, idx, &e);
                let retry = more && policy.on_connect_error && (!upgrade || e.is_connect());
                tracing::debug!(
                    upstream = %up.name,
                    backend = %up.labels[idx],
                    addr = %up.authorities[idx].0,
                    "attempt {tries} on {} failed: {e}{}",
                    up.named(idx),
                    if retry { "; retrying on another backend" } else { "" }
                );
                last_err = Some(match e {
                    SendError::ConnectTimeout => Error::UpstreamConnectTimeout,
                    e if e.is_protocol() => Error::UpstreamProtocol(Box::new(e)),
                    e => Error::UpstreamConnect(Box::new(e)),
                });
                retry
            }
            Err(Stalled::Upstream) => {
                let watch = EjectionWatch::new(&pick);
                pick.unreachable_after(started.elapsed());
                watch.log(up, idx, &"no response head within request_timeout");
                let retry = more && policy.on_timeout && !upgrade;
                tracing::debug!(
                    upstream = %up.name,
                    backend = %up.labels[idx],
                    addr = %up.authorities[idx].0,
                    "attempt {tries} on {} timed out{}",
                    up.named(idx),
                    if retry { "; retrying on another backend" } else { "" }
                );
                last_err = Some(Error::UpstreamTimeout);
                retry
            }
            Err(Stalled::Client) => {
                // Not the backend's fault: no outcome recorded, no retry.
                drop(pick);
                last_err = Some(Error::ClientTimeout);
                false
            }
        };
        if !retry_wanted {
            break;
        }
        if !up.budget.try_withdraw() {
            metrics.retries_budget_exhausted.fetch_add(1, Relaxed);
            break;
        }
        metrics.retries.fetch_add(1, Relaxed);
    }
    if let Some(answer) = fallback {
        return Ok(answer);
    }
    Err(last_err.unwrap_or(Error::NoHealthyBackend))
}

#[cfg(test)]
mod tests {
    use super::hash_key_bytes;
    use crate::config::{HashCompat, HashKey};
    use std::net::SocketAddr;

    fn parts(uri: &str, cookie: &str) -> http::request::Parts {
        let (parts, ()) = http::Request::get(uri)
            .header(http::header::COOKIE, cookie)
            .body(())
            .unwrap()
            .into_parts();
        parts
    }

    #[test]
    fn compatible_placements_hash_what_nginx_hashes() {
        let peer: SocketAddr = "10.1.2.3:5555".parse().unwrap();
        let p = parts("/x?K=Upper&k=lower%20x", "SID=abc");
        let bytes =
            |key: &HashKey, compat| hash_key_bytes(key, &p, peer, compat).map(|b| b.to_vec());
        // The own ring: octets, exact names.
        assert_eq!(bytes(&HashKey::ClientIp, None), Some(vec![10, 1, 2, 3]));
        assert_eq!(
            bytes(&HashKey::Query("k".into()), None),
            Some(b"lower%20x".to_vec())
        );
        assert_eq!(bytes(&HashKey::Cookie("sid".into()), None), None);
        // nginx: $remote_addr is text; $arg_k and $cookie_sid match names in any case,
        // the first one wins, values stay raw.
        let nginx = Some(HashCompat::Nginx);
        assert_eq!(bytes(&HashKey::ClientIp, nginx), Some(b"10.1.2.3".to_vec()));
        assert_eq!(
            bytes(&HashKey::Query("k".into()), nginx),
            Some(b"Upper".to_vec())
        );
        assert_eq!(
            bytes(&HashKey::Cookie("sid".into()), nginx),
            Some(b"abc".to_vec())
        );
        // ketama: the text address too, names as written.
        let ketama = Some(HashCompat::Ketama);
        assert_eq!(
            bytes(&HashKey::ClientIp, ketama),
            Some(b"10.1.2.3".to_vec())
        );
        assert_eq!(
            bytes(&HashKey::Query("k".into()), ketama),
            Some(b"lower%20x".to_vec())
        );
    }
}
