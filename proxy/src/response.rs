//! The response sent to the client: a backend's body streamed through, or one the proxy made (its error answers, admin pages).
use crate::error::Error;
use crate::headers::X_REQUEST_ID;
use crate::http1::{BackendBody, ClientError};
use crate::pool::Checkin;
use bytes::Bytes;
use http::header::{ALLOW, CONNECTION, CONTENT_LENGTH, CONTENT_TYPE};
use http::{HeaderValue, Response, StatusCode};
use http_body::{Body, Frame, SizeHint};
use http_body_util::Full;
use std::pin::Pin;
use std::task::{Context, Poll};

/// Body of a response sent to the client.
#[derive(Debug)]
// `Upstream` is nearly every response; boxing it would cost an allocation each.
#[allow(clippy::large_enum_variant)]
pub(crate) enum ProxyBody {
    /// A backend's response body, streamed through; its connection returns
    /// to the pool when the body has been read to the end.
    Upstream {
        /// The backend's body.
        body: BackendBody,
        /// Returns the connection to its pool at the end of the body.
        checkin: Option<Checkin>,
    },
    /// A body the proxy made itself (errors, admin pages).
    Full(Full<Bytes>),
}

impl ProxyBody {
    /// A body from static or owned bytes.
    pub(crate) fn full(b: impl Into<Bytes>) -> ProxyBody {
        ProxyBody::Full(Full::new(b.into()))
    }

    /// A backend's body; `checkin` runs once it is read to the end
    /// (at once if it is complete already).
    pub(crate) fn upstream(mut body: BackendBody, checkin: Checkin) -> ProxyBody {
        if body.is_complete() {
            checkin.done(body.take_conn());
            return ProxyBody::Upstream {
                body,
                checkin: None,
            };
        }
        ProxyBody::Upstream {
            body,
            checkin: Some(checkin),
        }
    }
}

impl Body for ProxyBody {
    type Data = Bytes;
    type Error = ClientError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, ClientError>>> {
        match &mut *self {
            ProxyBody::Upstream { body, checkin } => {
                let res = Pin::new(&mut *body).poll_frame(cx);
                match &res {
                    // The end, reported with the last frame or after it.
                    Poll::Ready(None) | Poll::Ready(Some(Ok(_))) if body.is_complete() => {
                        if let Some(c) = checkin.take() {
                            c.done(body.take_conn());
                        }
                    }
                    // An error: the connection is dropped with the body.
                    Poll::Ready(Some(Err(_))) => *checkin = None,
                    _ => {}
                }
                res
            }
            ProxyBody::Full(b) => Pin::new(b)
                .poll_frame(cx)
                .map(|f| f.map(|f| f.map_err(|never| match never {}))),
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            ProxyBody::Upstream { body, .. } => body.is_end_stream(),
            ProxyBody::Full(b) => b.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            ProxyBody::Upstream { body, .. } => body.size_hint(),
            ProxyBody::Full(b) => b.size_hint(),
        }
    }
}

/// The gRPC status for a failure of the proxy's own (codes of the gRPC spec's
/// `statuscodes.md`): UNAVAILABLE (14) when no backend could take the call, the
/// way gRPC's own HTTP mapping reads 502/503; DEADLINE_EXCEEDED (4) for a timeout;
/// UNIMPLEMENTED (12) for no route; RESOURCE_EXHAUSTED (8) for a head over the
/// limits; CANCELLED (1) when the client's side failed; INTERNAL (13) otherwise.
pub(crate) fn grpc_status(e: &Error) -> (u8, &'static str) {
    match e {
        Error::NoHealthyBackend => (14, "no healthy backend"),
        Error::UpstreamConnect(_) => (14, "upstream connection failed"),
        Error::UpstreamProtocol(_) => (13, "upstream protocol error"),
        // A call that never reached a backend was not processed: UNAVAILABLE, which
        // clients may retry ("most likely a transient condition", gRPC's status code
        // guide), as Envoy answers a connect timeout (503 -> 14). A backend that took
        // the call and did not answer in time is DEADLINE_EXCEEDED.
        Error::UpstreamConnectTimeout => (14, "upstream connect timed out"),
        Error::UpstreamTimeout => (4, "upstream timed out"),
        Error::ClientTimeout => (4, "request body timed out"),
        Error::NoRoute => (12, "no route"),
        Error::NotImplemented(_) | Error::MethodNotAllowed(_) => (12, "not implemented"),
        Error::HeadersTooLarge | Error::UriTooLong => (8, "request headers too large"),
        Error::ClientBody(_) => (1, "request body failed"),
        _ => (13, "proxy error"),
    }
}

/// The answer to a gRPC call the proxy itself fails: HTTP 200 with `grpc-status`
/// and `grpc-message` in a trailers-only response (gRPC over HTTP/2: "Trailers-Only"
/// is a single HEADERS frame ending the stream), never an HTML or text error.
pub(crate) fn grpc_error_response(e: &Error, req_id: HeaderValue) -> Response<ProxyBody> {
    let (code, message) = grpc_status(e);
    let mut r = Response::new(ProxyBody::full(Bytes::new()));
    let h = r.headers_mut();
    h.insert(CONTENT_TYPE, HeaderValue::from_static("application/grpc"));
    h.insert("grpc-status", HeaderValue::from(u16::from(code)));
    h.insert("grpc-message", HeaderValue::from_static(message));
    h.insert(X_REQUEST_ID.clone(), req_id);
    r
}

/// The methods the proxy forwards (the `Allow` of its 405 and of its answer to
/// `OPTIONS` with `Max-Forwards: 0`); TRACE and CONNECT are not among them.
pub(crate) const FORWARDED_METHODS: &str = "GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS";

/// The proxy's own answer to `OPTIONS` with `Max-Forwards: 0` (RFC 9110 §7.6.2: the
/// recipient "MUST NOT forward the request; instead, the recipient MUST respond as
/// the final recipient"): 200, `Allow`, no content.
pub(crate) fn options_response(req_id: HeaderValue) -> Response<ProxyBody> {
    let mut r = Response::new(ProxyBody::full(Bytes::new()));
    let h = r.headers_mut();
    h.insert(ALLOW, HeaderValue::from_static(FORWARDED_METHODS));
    h.insert(CONTENT_LENGTH, HeaderValue::from_static("0"));
    h.insert(X_REQUEST_ID.clone(), req_id);
    r
}

/// The response the proxy sends for a failure of its own (status from [`Error::status`]).
///
/// To a HEAD request (`head`) it has the same fields, `Content-Length` included, and no
/// content: RFC 9110 §9.3.2, "The server SHOULD send the same header fields in response
/// to a HEAD request as it would have sent if the request method had been GET" and
/// "MUST NOT send content in the response". hyper leaves a body out of an HTTP/1.1
/// answer to HEAD, but its HTTP/2 server sends what it is given.
pub(crate) fn error_response(e: &Error, req_id: HeaderValue, head: bool) -> Response<ProxyBody> {
    let status = e.status();
    let reason = match status {
        StatusCode::SERVICE_UNAVAILABLE => "no healthy backend\n",
        StatusCode::BAD_GATEWAY => "bad gateway\n",
        StatusCode::GATEWAY_TIMEOUT => "upstream timed out\n",
        StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE => "request headers too large\n",
        StatusCode::URI_TOO_LONG => "request line too long\n",
        StatusCode::NOT_IMPLEMENTED => "not implemented\n",
        StatusCode::BAD_REQUEST => "bad request\n",
        StatusCode::NOT_FOUND => "no route\n",
        StatusCode::REQUEST_TIMEOUT => "request body timed out\n",
        StatusCode::METHOD_NOT_ALLOWED => "method not allowed\n",
        _ => "proxy error\n",
    };
    let mut r = if head {
        let mut r = Response::new(ProxyBody::full(Bytes::new()));
        r.headers_mut()
            .insert(CONTENT_LENGTH, HeaderValue::from(reason.len()));
        r
    } else {
        Response::new(ProxyBody::full(reason))
    };
    *r.status_mut() = status;
    r.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    r.headers_mut().insert(X_REQUEST_ID.clone(), req_id);
    if status == StatusCode::METHOD_NOT_ALLOWED {
        // RFC 9110 §15.5.6: a 405 "MUST generate an Allow header field".
        r.headers_mut()
            .insert(ALLOW, HeaderValue::from_static(FORWARDED_METHODS));
    }
    if matches!(status.as_u16(), 400 | 414 | 431 | 501) {
        // The request's head or framing was not understood: nothing after it on
        // this connection can be trusted to start a request.
        r.headers_mut()
            .insert(CONNECTION, HeaderValue::from_static("close"));
    }
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grpc_failures_are_grpc_statuses_in_a_200() {
        let id = HeaderValue::from_static("7");
        for (e, code) in [
            (Error::NoHealthyBackend, "14"),
            (Error::UpstreamConnect("refused".into()), "14"),
            (Error::UpstreamTimeout, "4"),
            (Error::UpstreamConnectTimeout, "14"),
            (Error::NoRoute, "12"),
        ] {
            let r = grpc_error_response(&e, id.clone());
            assert_eq!(r.status(), 200);
            assert_eq!(r.headers()["content-type"], "application/grpc");
            assert_eq!(r.headers()["grpc-status"], code, "{e}");
            assert!(r.headers().contains_key("grpc-message"));
            assert!(r.body().is_end_stream(), "trailers-only: no body");
        }
    }
}
