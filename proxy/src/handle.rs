//! The request handler: check and route a client's request, forward it, and shape the answer.
use crate::error::{Error, Result};
use crate::forward::forward;
use crate::headers::{self, X_REQUEST_ID};
use crate::response::{error_response, ProxyBody};
use crate::state::Proxy;
use crate::upstream::Upstream;
use http::header::{HOST, TRANSFER_ENCODING};
use http::{HeaderValue, Method, Request, Response, Version};
use hyper::body::Incoming;
use std::net::SocketAddr;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::Instant;

/// Handle one client request.
pub(crate) async fn handle(
    proxy: &Proxy,
    req: Request<Incoming>,
    peer: SocketAddr,
    peer_ip: &HeaderValue,
) -> Response<ProxyBody> {
    let start = Instant::now();
    let m = &proxy.shared.metrics;
    m.requests.fetch_add(1, Relaxed);
    let version = req.version();
    let (mut parts, body) = req.into_parts();
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

    let access_log = state.config.server.access_log;
    let request_timeout = state.config.server.request_timeout;
    let routed: Result<Arc<Upstream>> = (|| {
        head_checked?;
        if parts.method == Method::CONNECT {
            return Err(Error::BadRequest("CONNECT is not supported"));
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
        let absolute = parts.uri.authority().is_some();
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
        let route = state
            .route(host, parts.uri.path(), absolute)
            .ok_or(Error::NoRoute)?;
        Ok(route.upstream.clone())
    })();
    drop(state);

    let result = match routed {
        Ok(up) => {
            if let Some(a) = parts.uri.authority() {
                // Absolute form: the authority is the host (RFC 9112 §3.2.2).
                if let Ok(v) = HeaderValue::from_str(a.as_str()) {
                    parts.headers.insert(HOST, v);
                }
            }
            headers::strip_request_hop_by_hop(&mut parts.headers);
            let host = parts.headers.get(HOST).cloned();
            headers::set_forwarded(&mut parts.headers, peer_ip, host);
            let method = access_log.then(|| parts.method.clone());
            let path = access_log.then(|| parts.uri.path().to_string());
            let res = forward(&up, parts, body, peer, request_timeout, m).await;
            if access_log {
                let (status, backend, addr) = match &res {
                    Ok((r, i, _)) => (
                        r.status().as_u16(),
                        &*up.labels[*i],
                        up.authorities[*i].0.as_str(),
                    ),
                    Err(e) => (e.status().as_u16(), "-", "-"),
                };
                tracing::info!(
                    target: "ringleader::access",
                    method = %method.unwrap_or_default(),
                    path = %path.unwrap_or_default(),
                    status,
                    upstream = %up.name,
                    backend,
                    addr,
                    latency_us = start.elapsed().as_micros() as u64,
                    request_id = req_id.to_str().unwrap_or("-"),
                );
            }
            res.map(|(r, _, c)| (r, c))
        }
        Err(e) => {
            if access_log {
                tracing::info!(
                    target: "ringleader::access",
                    method = %parts.method,
                    path = %parts.uri.path(),
                    status = e.status().as_u16(),
                    upstream = "-",
                    backend = "-",
                    addr = "-",
                    latency_us = start.elapsed().as_micros() as u64,
                    request_id = req_id.to_str().unwrap_or("-"),
                );
            }
            Err(e)
        }
    };

    let resp = match result {
        Ok((resp, checkin)) => {
            let (mut rparts, rbody) = resp.into_parts();
            headers::strip_hop_by_hop(&mut rparts.headers);
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
            error_response(&e, req_id)
        }
    };
    m.observe(resp.status().as_u16(), start.elapsed());
    resp
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
