//! The request handler: check and route a client's request, forward it, and shape the answer.
use crate::access_log;
use crate::config::AccessLog;
use crate::error::{Error, Result};
use crate::forward::forward;
use crate::forward::tunnel::{self, Tunnel};
use crate::headers::{self, X_REQUEST_ID};
use crate::metrics::Metrics;
use crate::pool::te_trailers;
use crate::response::{error_response, grpc_error_response, options_response, ProxyBody};
use crate::state::Proxy;
use crate::upstream::Upstream;
use http::header::{
    CONNECTION, CONTENT_TYPE, EXPECT, HOST, MAX_FORWARDS, TE, TRAILER, TRANSFER_ENCODING, UPGRADE,
};
use http::{HeaderMap, HeaderValue, Method, Request, Response, StatusCode, Version};
use http_body::Body as _;
use hyper::body::Incoming;
use hyper::upgrade::OnUpgrade;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU32, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

/// Handle one client request.
pub(crate) async fn handle(
    proxy: &Proxy,
    req: Request<Incoming>,
    peer: SocketAddr,
    peer_ip: &HeaderValue,
    scheme: headers::Scheme,
) -> Response<ProxyBody> {
    let start = Instant::now();
    let m = &proxy.shared.metrics;
    m.requests.fetch_add(1, Relaxed);
    // Counts and logs the request once: with the answer, or as a 499 if the client
    // goes first and hyper drops this future.
    let mut outcome = Outcome {
        metrics: m,
        start,
        client: peer,
        kind: AccessLog::Off,
        logged: None,
        done: false,
    };
    let version = req.version();
    let (mut parts, body) = req.into_parts();
    let head_request = parts.method == Method::HEAD;
    // An HTTP/1.0 client keeps its connection only when the answer says
    // `Connection: keep-alive` (RFC 9112 §9.3 and Appendix C.2.2); the backend's is
    // hop-by-hop and stripped, so the proxy says it for itself.
    let keep_alive_10 = version == Version::HTTP_10
        && headers::has_token(&parts.headers, &CONNECTION, b"keep-alive");
    let state = proxy.shared.state.load();
    // Sized as the client sent it, before the proxy adds to it.
    let head_checked = check_head(&parts, state.config.server.max_header_bytes);
    let req_id = match parts.headers.get(&X_REQUEST_ID) {
        Some(v) => v.clone(),
        None => {
            let v = proxy.shared.ids.next(m).await;
            parts.headers.insert(X_REQUEST_ID.clone(), v.clone());
            v
        }
    };

    // An upgrade (WebSocket, ...) is forwarded with its Upgrade field; any other
    // request's `Upgrade` is stripped with the hop-by-hop fields.
    let upgrade = upgrade_requested(&parts.headers, version, body.is_end_stream())
        .and_then(|protocols| Some((protocols, parts.extensions.remove::<OnUpgrade>()?)));
    // A gRPC call gets its failures as gRPC statuses; `te: trailers` (hop-by-hop,
    // stripped) is sent on to an HTTP/2 backend, where gRPC needs it.
    let grpc = parts
        .headers
        .get(CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/grpc"));
    let trailers_ok = parts.headers.get_all(TE).iter().any(te_trailers);
    let access_log = state.config.server.access_log;
    let request_timeout = state.config.server.request_timeout;
    let routed: Result<Arc<Upstream>> = (|| {
        head_checked?;
        if parts.method == Method::CONNECT {
            return Err(Error::BadRequest("CONNECT is not supported"));
        }
        // TRACE echoes the request back, cookies and credentials included (RFC 9110
        // §9.3.8 warns of it): never forwarded, 405 as nginx answers.
        if parts.method == Method::TRACE {
            return Err(Error::MethodNotAllowed("TRACE"));
        }
        // RFC 9112 §3.2: a request target other than CONNECT's is the origin form
        // (`/path`) or the absolute form (`http://host/path`); the authority form is
        // CONNECT's (§3.2.3) and the asterisk form (`OPTIONS *`, §3.2.4) asks about
        // the server, which a proxy cannot answer for its backends: 400, as nginx.
        let uri = &parts.uri;
        let origin_form =
            uri.scheme().is_none() && uri.authority().is_none() && uri.path().starts_with('/');
        let absolute_form =
            matches!(uri.scheme_str(), Some("http" | "https")) && uri.authority().is_some();
        if !origin_form && !absolute_form {
            return Err(Error::BadRequest("invalid request target"));
        }
        // RFC 9112 §3.2: "A server MUST respond with a 400 (Bad Request) status code
        // to any HTTP/1.1 request message that lacks a Host header field and to any
        // request message that contains more than one Host header field line or a
        // Host header field with an invalid field value."
        let mut hosts = parts.headers.get_all(HOST).iter();
        let host_field = hosts.next();
        if hosts.next().is_some() {
            return Err(Error::BadRequest("more than one Host header"));
        }
        let host_field = match host_field {
            Some(h) if headers::is_valid_host(h.as_bytes()) => h.to_str().ok(),
            Some(_) => return Err(Error::BadRequest("invalid Host header")),
            None if version == Version::HTTP_11 => {
                return Err(Error::BadRequest("missing Host header"))
            }
            None => None,
        };
        let host = match parts.uri.authority() {
            Some(a) => {
                // RFC 9110 §4.2.4: a recipient SHOULD treat userinfo in an http(s)
                // URI from an untrusted source as an error; it is never a host.
                if !headers::is_valid_host(a.as_str().as_bytes()) {
                    return Err(Error::BadRequest("invalid authority in the request target"));
                }
                // The authority replaces Host (RFC 9112 §3.2.2).
                Some(a.host())
            }
            None => host_field,
        };
        let host = host.map(headers::host_without_port);
        let route = state.route(host, parts.uri.path()).ok_or(Error::NoRoute)?;
        Ok(route.upstream.clone())
    })();
    drop(state);

    // Where a relayed 101 leads: the client's side of the upgrade and the upstream.
    let mut switching = None;
    outcome.kind = access_log;
    let result = match routed {
        Ok(up) => {
            if let Some(a) = parts.uri.authority() {
                // Absolute form: the authority is the host (RFC 9112 §3.2.2).
                if let Ok(v) = HeaderValue::from_str(a.as_str()) {
                    parts.headers.insert(HOST, v);
                }
            }
            headers::strip_request_hop_by_hop(&mut parts.headers);
            // hyper answered a `100-continue` expectation when the body was first read;
            // sent on, it would have the backend expect to answer it too (nginx drops it).
            parts.headers.remove(EXPECT);
            // RFC 9110 §7.6.2: Max-Forwards counts down at each hop for OPTIONS (TRACE is
            // refused above); at 0 the proxy answers as the final recipient.
            if parts.method == Method::OPTIONS {
                match max_forwards(&parts.headers) {
                    Some(0) => {
                        if access_log.is_on() {
                            let no_body = body.is_end_stream();
                            outcome.logged = Some(Logged::new(&parts, no_body, None, &req_id));
                        }
                        let resp = options_response(req_id);
                        outcome.answered(&resp);
                        return resp;
                    }
                    Some(n) => {
                        parts.headers.insert(MAX_FORWARDS, HeaderValue::from(n - 1));
                    }
                    None => {}
                }
            }
            if up.config.protocol.is_h2() {
                // RFC 9113 §8.2.2: TE may be sent in HTTP/2, with "trailers" only.
                // (HTTP/2 has no Upgrade: an upgrade request goes on without it.)
                if trailers_ok {
                    parts
                        .headers
                        .insert(TE, HeaderValue::from_static("trailers"));
                }
            } else if let Some((protocols, on_upgrade)) = upgrade {
                // RFC 9110 §7.8: Upgrade is hop-by-hop, so the proxy sends its own,
                // naming the protocols the client asked for, with `Connection: upgrade`.
                parts.headers.insert(UPGRADE, protocols);
                parts
                    .headers
                    .insert(CONNECTION, HeaderValue::from_static("upgrade"));
                switching = Some((on_upgrade, up.clone()));
            }
            let host = parts.headers.get(HOST).cloned();
            headers::set_forwarded(&mut parts.headers, peer_ip, scheme, host);
            if access_log.is_on() {
                outcome.logged = Some(Logged::new(
                    &parts,
                    body.is_end_stream(),
                    Some(up.clone()),
                    &req_id,
                ));
            }
            let attempts = outcome.logged.as_ref().map(|l| &l.attempts);
            let res = forward(&up, parts, body, peer, request_timeout, m, attempts).await;
            if let Ok((r, i, _)) = &res {
                m.backend_responses
                    .with(&up.name, &up.authorities[*i].0, |c| {
                        c.count(r.status().as_u16())
                    });
                if let Some(l) = &mut outcome.logged {
                    l.backend = Some(*i);
                }
            }
            res.map(|(r, _, c)| (r, c))
        }
        Err(e) => {
            if access_log.is_on() {
                outcome.logged = Some(Logged::new(&parts, body.is_end_stream(), None, &req_id));
            }
            Err(e)
        }
    };

    let resp = match result {
        Ok((resp, checkin)) if resp.status() == StatusCode::SWITCHING_PROTOCOLS => {
            // Only an upgrade request can get here (an unasked 101 is a 502 in `http1`).
            let (mut rparts, mut rbody) = resp.into_parts();
            match (switching, rbody.take_upgraded()) {
                (Some((on_upgrade, up)), Some(backend)) => {
                    let protocol = rparts.headers.get(UPGRADE).cloned();
                    headers::strip_hop_by_hop(&mut rparts.headers);
                    if let Some(p) = protocol {
                        rparts.headers.insert(UPGRADE, p);
                    }
                    rparts
                        .headers
                        .insert(CONNECTION, HeaderValue::from_static("upgrade"));
                    if !rparts.headers.contains_key(&X_REQUEST_ID) {
                        rparts.headers.insert(X_REQUEST_ID.clone(), req_id);
                    }
                    rparts.version = version;
                    let backend_label = up.index_of(checkin.pool().addr()).map_or_else(
                        || checkin.pool().addr().to_string(),
                        |i| up.labels[i].to_string(),
                    );
                    let t = Tunnel {
                        client: on_upgrade,
                        backend,
                        checkin,
                        idle_timeout: up.config.idle_timeout,
                        upstream: up.name.clone(),
                        backend_label,
                    };
                    tunnel::spawn(t, &m.tunnels);
                    Response::from_parts(rparts, ProxyBody::full(bytes::Bytes::new()))
                }
                _ => error_response(
                    &Error::UpstreamProtocol("unexpected 101 Switching Protocols".into()),
                    req_id,
                    head_request,
                ),
            }
        }
        Ok((resp, checkin)) => {
            let (mut rparts, rbody) = resp.into_parts();
            // Hop-by-hop fields this answer still needs on its next hop. RFC 9110
            // §15.5.22: "The server MUST send an Upgrade header field in a 426
            // response" (HTTP/1.1 only: HTTP/2 has no Upgrade). `Trailer` (not
            // hop-by-hop in RFC 9110 §7.6.1) names the trailers hyper's HTTP/1.1 server
            // writes; only an HTTP/2 backend's body brings trailers to write.
            let upgrade_required = (rparts.status == StatusCode::UPGRADE_REQUIRED
                && version == Version::HTTP_11)
                .then(|| rparts.headers.get(UPGRADE).cloned())
                .flatten();
            let trailer: Vec<HeaderValue> = if rbody.relays_trailers() {
                rparts.headers.get_all(TRAILER).iter().cloned().collect()
            } else {
                Vec::new()
            };
            headers::strip_hop_by_hop(&mut rparts.headers);
            if let Some(u) = upgrade_required {
                rparts.headers.insert(UPGRADE, u);
                rparts
                    .headers
                    .insert(CONNECTION, HeaderValue::from_static("upgrade"));
            }
            for t in trailer {
                rparts.headers.append(TRAILER, t);
            }
            if !rparts.headers.contains_key(&X_REQUEST_ID) {
                rparts.headers.insert(X_REQUEST_ID.clone(), req_id);
            }
            rparts.version = version;
            Response::from_parts(rparts, ProxyBody::upstream(rbody, checkin))
        }
        Err(e) => {
            if matches!(e, Error::NoHealthyBackend) {
                m.no_healthy_backend.fetch_add(1, Relaxed);
            }
            if grpc {
                grpc_error_response(&e, req_id)
            } else {
                error_response(&e, req_id, head_request)
            }
        }
    };
    let mut resp = resp;
    if keep_alive_10 && !resp.headers().contains_key(CONNECTION) {
        resp.headers_mut()
            .insert(CONNECTION, HeaderValue::from_static("keep-alive"));
    }
    outcome.answered(&resp);
    resp
}

/// `Max-Forwards` as a number (RFC 9110 §7.6.2: `1*DIGIT`); `None` when absent or not one.
fn max_forwards(h: &HeaderMap) -> Option<u64> {
    let v = h.get(MAX_FORWARDS)?.to_str().ok()?;
    if v.is_empty() || !v.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    v.parse().ok()
}

/// nginx's status for a request whose client closed the connection before the
/// response went out (`NGX_HTTP_CLIENT_CLOSED_REQUEST` in nginx's
/// `src/http/ngx_http_request.h`); never sent, only logged.
pub(crate) const CLIENT_CLOSED_REQUEST: u16 = 499;

/// The end of one request, counted and logged exactly once: by [`Outcome::answered`]
/// when the response head is ready, else on drop. hyper drops a request's future
/// when its client goes away first (an HTTP/1.1 connection closed, an h2 stream
/// reset); that request is logged with status 499 and the time until then, and
/// counted in `client_aborts`, not among the responses (none was sent).
struct Outcome<'a> {
    metrics: &'a Metrics,
    start: Instant,
    client: SocketAddr,
    kind: AccessLog,
    /// What the access log needs of the request, when it is on.
    logged: Option<Logged>,
    done: bool,
}

impl Outcome<'_> {
    fn answered(&mut self, resp: &Response<ProxyBody>) {
        self.done = true;
        self.metrics
            .observe(resp.status().as_u16(), self.start.elapsed());
        if let Some(l) = self.logged.take() {
            let (status, bytes_out) = Logged::answer(&l.method, resp);
            l.emit(self.kind, status, bytes_out, self.client, self.start);
        }
    }
}

impl Drop for Outcome<'_> {
    fn drop(&mut self) {
        if self.done {
            return;
        }
        self.metrics.client_aborts.fetch_add(1, Relaxed);
        if let Some(l) = self.logged.take() {
            l.emit(
                self.kind,
                CLIENT_CLOSED_REQUEST,
                None,
                self.client,
                self.start,
            );
        }
    }
}

/// The parts of a request the access log reports, kept while the request goes on.
struct Logged {
    request_id: HeaderValue,
    method: Method,
    path: String,
    host: Option<HeaderValue>,
    bytes_in: Option<u64>,
    upstream: Option<Arc<Upstream>>,
    /// Index of the backend that answered, in the upstream.
    backend: Option<usize>,
    /// Sends to backends so far (counted by `forward`).
    attempts: AtomicU32,
}

impl Logged {
    fn new(
        parts: &http::request::Parts,
        no_body: bool,
        upstream: Option<Arc<Upstream>>,
        request_id: &HeaderValue,
    ) -> Self {
        Logged {
            request_id: request_id.clone(),
            method: parts.method.clone(),
            path: parts.uri.path().to_string(),
            host: match parts.uri.authority() {
                Some(a) => HeaderValue::from_str(a.as_str()).ok(),
                None => parts.headers.get(HOST).cloned(),
            },
            bytes_in: access_log::declared_length(&parts.headers, no_body),
            upstream,
            backend: None,
            attempts: AtomicU32::new(0),
        }
    }

    /// The status of `resp` (an answer to `method`) and its body length, if known.
    fn answer(method: &Method, resp: &Response<ProxyBody>) -> (u16, Option<u64>) {
        let status = resp.status();
        // RFC 9110 §6.4.1: no content in answers to HEAD, nor in 1xx, 204 or 304.
        let no_body = method == Method::HEAD
            || status.is_informational()
            || status == StatusCode::NO_CONTENT
            || status == StatusCode::NOT_MODIFIED;
        let bytes_out = access_log::declared_length(resp.headers(), no_body)
            .or_else(|| resp.body().size_hint().exact());
        (status.as_u16(), bytes_out)
    }

    fn emit(
        self,
        kind: AccessLog,
        status: u16,
        bytes_out: Option<u64>,
        client: SocketAddr,
        start: Instant,
    ) {
        let duration = start.elapsed();
        let up = self.upstream.as_deref();
        access_log::Entry {
            start: SystemTime::now()
                .checked_sub(duration)
                .unwrap_or(UNIX_EPOCH),
            request_id: Some(&self.request_id),
            method: Some(&self.method),
            path: &self.path,
            host: self.host.as_ref().and_then(|h| h.to_str().ok()),
            status,
            upstream: up.map(|u| u.name.as_str()),
            backend: up
                .zip(self.backend)
                .map(|(u, i)| (&*u.labels[i], u.authorities[i].0.as_str())),
            attempts: self.attempts.load(Relaxed),
            bytes_in: self.bytes_in,
            bytes_out,
            duration,
            client,
        }
        .emit(kind);
    }
}

/// The protocols of an upgrade the client asks for (RFC 9110 §7.8): an HTTP/1.1
/// request with `Upgrade` and `Connection: upgrade`, and no body (the proxy relays a
/// `101` only where no request body could still be in the way of the new protocol).
fn upgrade_requested(h: &HeaderMap, version: Version, no_body: bool) -> Option<HeaderValue> {
    if version != Version::HTTP_11 || !no_body {
        return None;
    }
    if !headers::has_token(h, &CONNECTION, b"upgrade") {
        return None;
    }
    // Several field lines are one list (RFC 9110 §5.3). `h2c` is left out: the
    // HTTP/1.1 upgrade to cleartext HTTP/2 is deprecated (RFC 9113 §3.1), and relayed
    // it would open a tunnel to the backend past routing and the X-Forwarded-*
    // fields ("h2c smuggling"); h2c clients use prior knowledge, which the proxy serves.
    let protocols: Vec<&[u8]> = h
        .get_all(UPGRADE)
        .iter()
        .flat_map(|v| v.as_bytes().split(|&b| b == b','))
        .map(<[u8]>::trim_ascii)
        .filter(|p| !p.is_empty() && !p.eq_ignore_ascii_case(b"h2c"))
        .collect();
    if protocols.is_empty() {
        return None;
    }
    HeaderValue::from_bytes(&protocols.join(&b", "[..])).ok()
}

/// Limits and framing of a request head that hyper parsed but does not enforce.
///
/// hyper is given a read buffer of at least `max_head` bytes and no head-size limit
/// of its own, so that a complete head over the limit reaches this check, which tells
/// a request line too long (414, RFC 9112 §3: "A server that receives a
/// request-target longer than any URI it wishes to parse MUST respond with a 414")
/// from a head too large (431). The sizes are counted as hyper received them, less
/// optional whitespace around field values. A head that does not even fit hyper's
/// buffer is answered by the server module (`ClientIo`).
fn check_head(parts: &http::request::Parts, max_head: usize) -> Result<()> {
    // `METHOD SP request-target SP HTTP/1.x CRLF`
    let uri = &parts.uri;
    let target = match (uri.scheme_str(), uri.authority()) {
        (Some(s), Some(a)) => s.len() + 3 + a.as_str().len(),
        _ => 0,
    } + uri.path_and_query().map_or(0, |p| p.as_str().len());
    let line = parts.method.as_str().len() + 1 + target + 1 + 8 + 2;
    if line > max_head {
        return Err(Error::UriTooLong);
    }
    let fields: usize = parts
        .headers
        .iter()
        .map(|(k, v)| k.as_str().len() + 2 + v.len() + 2)
        .sum();
    if line + fields + 2 > max_head {
        return Err(Error::HeadersTooLarge);
    }
    // hyper decodes a final `chunked` (and refuses a request where it is not final)
    // but lets more codings through. RFC 9112 §6.1: "A sender MUST NOT apply the
    // chunked transfer coding more than once to a message body", and "A server that
    // receives a request message with a transfer coding it does not understand
    // SHOULD respond with 501 (Not Implemented)": the proxy would otherwise pass a
    // still-coded body on as if it were plain.
    if parts.headers.contains_key(TRANSFER_ENCODING) {
        let (mut codings, mut chunked) = (0, 0);
        let values = parts.headers.get_all(TRANSFER_ENCODING);
        for coding in values
            .iter()
            .flat_map(|v| v.as_bytes().split(|&b| b == b','))
            .map(<[u8]>::trim_ascii)
            .filter(|t| !t.is_empty())
        {
            codings += 1;
            chunked += usize::from(coding.eq_ignore_ascii_case(b"chunked"));
        }
        if chunked > 1 {
            return Err(Error::BadRequest("chunked applied more than once"));
        }
        if codings != 1 || chunked != 1 {
            return Err(Error::NotImplemented(
                "a transfer coding other than chunked",
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upgrades_are_http11_requests_with_upgrade_and_connection_upgrade_and_no_body() {
        let h = |pairs: &[(&'static str, &'static str)]| {
            let mut m = HeaderMap::new();
            for (k, v) in pairs {
                m.append(*k, HeaderValue::from_static(v));
            }
            m
        };
        let ws = h(&[
            ("connection", "keep-alive, Upgrade"),
            ("upgrade", "websocket"),
        ]);
        assert_eq!(
            upgrade_requested(&ws, Version::HTTP_11, true).unwrap(),
            "websocket"
        );
        assert_eq!(upgrade_requested(&ws, Version::HTTP_10, true), None);
        assert_eq!(upgrade_requested(&ws, Version::HTTP_2, true), None);
        assert_eq!(
            upgrade_requested(&ws, Version::HTTP_11, false),
            None,
            "a body"
        );
        let no_token = h(&[("connection", "keep-alive"), ("upgrade", "websocket")]);
        assert_eq!(upgrade_requested(&no_token, Version::HTTP_11, true), None);
        let no_upgrade = h(&[("connection", "upgrade")]);
        assert_eq!(upgrade_requested(&no_upgrade, Version::HTTP_11, true), None);
        let two = h(&[
            ("connection", "upgrade"),
            ("upgrade", "foo/1"),
            ("upgrade", "websocket"),
        ]);
        assert_eq!(
            upgrade_requested(&two, Version::HTTP_11, true).unwrap(),
            "foo/1, websocket"
        );
    }
}
